"""Today's defaults are the model as it was before the figure options (issue 20) existed.

The fingerprints below were recorded by running this file as a script against commit
a851deb, the last commit before ``merge``, ``fill: black``, ``kd_teacher_audio``,
``kd_layers: merge_in``, ``targets: qkv`` and ``bridge: auto`` were added:

    git archive a851deb espnet_avsr | tar -x -C /tmp/pre20
    PYTHONPATH=/tmp/pre20 python tests/test_fidelity_defaults.py

For the plain AV model, the MDA-KD student and the MS-Adapter model built from configs
that name none of those options, with a fixed seed: the state dict (names, shapes, bytes)
and the training loss / encoder output on a fixed batch, random draws included (SpecAugment,
video and audio dropout, the dropout layers). So existing configs and checkpoints load and
train as before; the defaults change only after the dev-set comparison (docs/DESIGN.md §7).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

import pytest
import torch
import yaml

from espnet_avsr.tasks.avsr import AVSRTask

TOKENS = ["<blank>", "<unk>", "a", "b", "c", "d", "<sos/eos>"]
BASE = dict(
    frontend="default",
    frontend_conf=dict(fs=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40),
    specaug="specaug",
    specaug_conf=dict(apply_time_warp=True, time_warp_window=3, apply_freq_mask=True,
                      freq_mask_width_range=[2, 8], num_freq_mask=2, apply_time_mask=True,
                      time_mask_width_range=[2, 5], num_time_mask=2),
    normalize="utterance_mvn",
    video_frontend="resnet18",
    video_frontend_conf=dict(width=2),
    encoder="av_conformer",
    encoder_conf=dict(output_size=32, attention_heads=2, linear_units=48, num_fusion_blocks=2,
                      num_shared_blocks=1, cnn_module_kernel=5, dropout_rate=0.1, positional_dropout_rate=0.1,
                      max_pos_emb_len=64),
    decoder="transformer",
    decoder_conf=dict(attention_heads=2, linear_units=48, num_blocks=1, dropout_rate=0.1,
                      positional_dropout_rate=0.1),
    model="espnet",
    # no fill: the default; audio dropout so the KD teacher's copy of the draw is exercised
    model_conf=dict(ctc_weight=0.3, lsm_weight=0.1, audio_dropout=0.3,
                    video_dropout=dict(prob=1.0, rate=0.5, pattern="random")),
    token_type="char",
)

# recorded at a851deb (see the module docstring)
EXPECTED = {
    "av": dict(layout="f211315ace0b49e89271b42ef91b49543d960f4ce9d80d864ae24729db6d27c4",
               values="bb08f1984b7895ea7288a1d223ab7ce6fb8a220a8e4db80926b4f2e176533c2e",
               enc=464.96917724609375, loss=7.4523844718933105, no_video=463.2830505371094),
    "kd": dict(layout="f211315ace0b49e89271b42ef91b49543d960f4ce9d80d864ae24729db6d27c4",
               values="dc80e2756fc24202b02ef9a772f723be5a41800298f5f6116cc1325151ef3af1",
               loss=24.01746368408203, loss_kd=16.262434005737305),
    "ms": dict(layout="233557f52d4371ef37546c225e8a17c4cdf9190304d7ff4db1d43f696126c64d",
               values="b00078ba9651031ada9b79977d4594ffc0b600a9c3aa77a17e802736c148ea1b",
               enc=470.0921936035156, loss=7.033971786499023),
}


def state_digest(model: torch.nn.Module) -> Dict[str, str]:
    """sha256 of the names + shapes (the checkpoint layout) and of everything (values too)."""
    layout, values = hashlib.sha256(), hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        line = f"{name}:{tuple(t.shape)}:{t.dtype}\n".encode()
        layout.update(line)
        values.update(line)
        values.update(t.detach().cpu().contiguous().numpy().tobytes())
    return dict(layout=layout.hexdigest(), values=values.hexdigest())


def batch() -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    speech = torch.randn(2, 6400, generator=g) * 0.1
    speech[1, 5120:] = 0
    return dict(speech=speech, speech_lengths=torch.tensor([6400, 5120]),
                video=torch.randn(2, 10, 88, 88, generator=g), video_lengths=torch.tensor([10, 8]),
                text=torch.tensor([[2, 3, 4, 5], [3, 4, -1, -1]]), text_lengths=torch.tensor([4, 2]))


def build(conf: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return AVSRTask.build_model(argparse.Namespace(**copy.deepcopy(conf)))


def train_loss(model: torch.nn.Module, seed: int = 1) -> float:
    model.train()
    torch.manual_seed(seed)
    loss, _, _ = model(**batch())
    return float(loss.detach())


def with_options(conf: dict, options: Dict[str, object]) -> dict:
    """``conf`` with dotted keys set (``encoder_conf.merge``, ``model_conf.adapter_conf.targets``)."""
    conf = copy.deepcopy(conf)
    for key, value in options.items():
        *path, leaf = key.split(".")
        node = conf
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return conf


def route(options: Dict[str, object], kind: str) -> Dict[str, object]:
    """The options a model kind takes: KD keys go to the student, adapter keys to the MS-Adapter
    model, the rest (architecture, video dropout) to every model."""
    owner = lambda key: ("kd" if key.startswith("model_conf.kd_")
                         else "ms" if key.startswith("model_conf.adapter_conf.") else None)
    return {k: v for k, v in options.items() if owner(k) in (None, kind)}


def fingerprints(workdir: Path, options: Optional[Dict[str, object]] = None,
                 kinds: Sequence[str] = ("av", "kd", "ms"), forward: bool = True) -> Dict[str, Dict]:
    """What the defaults build and compute, per model kind (run under old and new code alike).

    ``options``: dotted config keys to set (the figure options; the old code knows none);
    ``forward=False``: the state digests only.
    """
    options = options or {}
    conf = with_options(dict(BASE, token_list=list(TOKENS)), route(options, "av"))
    out: Dict[str, Dict] = {}

    av = build(conf)
    out["av"] = state_digest(av)  # as built, before any forward updates BatchNorm statistics
    teacher = copy.deepcopy(av.state_dict())  # the MDA-KD teacher: moved away from the student's start
    for key in teacher:
        if key.startswith("encoder.merge."):
            teacher[key] = teacher[key] + 0.05
    if forward and "av" in kinds:
        b = batch()
        with torch.no_grad():
            av.eval()
            enc, _ = av.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"])
            no_video, _ = av.encode(b["speech"], b["speech_lengths"], None, None)  # the empty-video fill
        out["av"].update(loss=train_loss(av), enc=float(enc.abs().sum()), no_video=float(no_video.abs().sum()))

    if "kd" in kinds:
        (workdir / "config.yaml").write_text(yaml.safe_dump(conf), encoding="utf-8")
        torch.save(teacher, workdir / "teacher.pth")
        kd_conf = with_options(dict(conf, model="mda_kd"), {
            "model_conf.teacher_config": str(workdir / "config.yaml"),
            "model_conf.teacher_model_file": str(workdir / "teacher.pth"), **route(options, "kd")})
        kd = build(kd_conf, seed=2)
        out["kd"] = state_digest(kd)
        if forward:
            kd.train()
            torch.manual_seed(1)
            _, stats = kd.distill(**batch())
            out["kd"].update(loss=float(stats["loss"]), loss_kd=float(stats["loss_kd"]))

    if "ms" in kinds:
        ms_conf = with_options(dict(conf, model="ms_adapter", model_conf=dict(ctc_weight=0.3, lsm_weight=0.1)),
                               {"model_conf.adapter_conf.rank": 2, **route(options, "ms")})
        ms = build(ms_conf, seed=3)
        out["ms"] = state_digest(ms)
        if forward:
            g = torch.Generator().manual_seed(5)
            with torch.no_grad():  # non-zero adapters (and bridge), so the outputs depend on them
                for _, p in sorted(ms.named_parameters()):
                    if p.requires_grad:
                        p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            b = batch()
            with torch.no_grad():
                ms.eval()
                enc, _ = ms.encode(b["speech"], b["speech_lengths"], None, None)
            out["ms"].update(loss=train_loss(ms), enc=float(enc.abs().sum()))
    return {k: v for k, v in out.items() if k in kinds}


def mismatches(got: Dict, want: Dict) -> list:
    """The fingerprint entries that differ (digests exactly, numbers beyond float noise)."""
    bad = [k for k in ("layout", "values") if got[k] != want[k]]
    return bad + [k for k in sorted(set(got) - {"layout", "values"})
                  if got[k] != pytest.approx(want[k], rel=1e-5)]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_defaults_build_and_compute_what_they_did_before_the_figure_options(tmp_path, kind):
    # layout: old checkpoints load; values: same seed, same initial weights; numbers: same
    # forward and random draws (float noise allowed: the visual front-end was re-laid out since)
    assert mismatches(fingerprints(tmp_path, kinds=(kind,))[kind], EXPECTED[kind]) == []


@pytest.mark.parametrize("options, kind, forward, expect", [
    ({"encoder_conf.merge": "figure"}, "av", False, {"layout", "values"}),
    ({"model_conf.video_dropout.fill": "black"}, "av", True, {"loss", "no_video"}),
    ({"model_conf.kd_teacher_audio": "student"}, "kd", True, {"loss", "loss_kd"}),
    ({"model_conf.adapter_conf.targets": "qkv"}, "ms", False, {"layout", "values"}),
    ({"model_conf.adapter_conf.bridge": "skip"}, "ms", False, {"layout", "values"}),
], ids=["merge", "fill", "kd_teacher_audio", "targets", "bridge"])
def test_each_figure_option_moves_the_fingerprint(tmp_path, options, kind, forward, expect):
    """So the test above would notice a default that flipped to the figure's reading."""
    got = fingerprints(tmp_path, options, kinds=(kind,), forward=forward)[kind]
    assert set(mismatches(got, EXPECTED[kind])) == expect


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        json.dump(fingerprints(Path(d)), sys.stdout, indent=4, sort_keys=True)
    print()
