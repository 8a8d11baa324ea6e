"""Missing frames reach every reader as they did before the missing-video contract (issue 17).

The fingerprints below were recorded by running this file as a script against commit
d248adf, the last commit before ``VideoPresence`` replaced the separate readings of
``video_lengths`` + ``video_missing``:

    git archive d248adf espnet_avsr | tar -x -C /tmp/pre17
    PYTHONPATH=/tmp/pre17 python tests/test_fidelity_presence.py

One fixed batch carries every kind of missing frame at once: a sample with some frames
flagged by the batch, one with all of them flagged (the collate's no-video marker), one
whose video is much shorter than its audio (``repeat_last`` invents frames) and a complete
one. Through it: the AV model's training loss and stats (video dropout, audio dropout whose
eligibility needs "has video", cross-attention that masks missing frames), its encoder's
reconciled ``video_missing``, the lip reader, the MDA-KD student and teacher, the MS-Adapter
switch on a mixed batch, beam-search decoding of a dump with a marker and simulated missing
frames (AV and adapter), and the representation extraction. Why: each of these once read
the pair itself; the fingerprint shows the one type changed none of their outputs.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet_avsr.tasks.avsr import AVSRTask

TOKENS = ["<blank>", "<unk>", "a", "b", "c", "d", "<sos/eos>"]
ENCODER = dict(output_size=32, attention_heads=2, linear_units=48, num_fusion_blocks=2, num_shared_blocks=1,
               cnn_module_kernel=5, dropout_rate=0.1, positional_dropout_rate=0.1, max_pos_emb_len=64,
               mask_missing_in_cross_attention=True, on_length_mismatch="repeat_last")
BASE = dict(
    frontend="default",
    frontend_conf=dict(fs=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40),
    specaug=None,
    normalize="utterance_mvn",
    video_frontend="resnet18",
    video_frontend_conf=dict(width=2),
    encoder="av_conformer",
    encoder_conf=ENCODER,
    decoder="transformer",
    decoder_conf=dict(attention_heads=2, linear_units=48, num_blocks=1, dropout_rate=0.1,
                      positional_dropout_rate=0.1),
    model="espnet",
    model_conf=dict(ctc_weight=0.3, lsm_weight=0.1, audio_dropout=0.5,
                    video_dropout=dict(prob=0.5, rate=0.5, pattern="random")),
    token_type="char",
    token_list=TOKENS,
)

# recorded at d248adf (see the module docstring)
EXPECTED: Dict[str, Dict] = {
    "av": {
        "audio_dropped": [
            [True, False, False, True],
            [False, True, False, False],
            [False, True, False, True],
            [True, True, False, True],
            [False, False, False, True],
            [False, True, False, False]
        ],
        "enc": 943.6128540039062,
        "enc_lens": [9, 9, 7, 9],
        "loss": 6.9360222816467285,
        "loss_att": 5.256109237670898,
        "loss_ctc": 10.855818748474121,
        "video_missing": "80de1d26a374e806122087fdf91aa5c0ac0697cd016acfe3881cc7804a92d84f",
        "video_missing_rate": 0.5,
        "video_missing_rows": [0, 4, 7, 6]
    },
    "decode": {
        "av_random": {
            "score": [-12.683250427246094, -9.662590980529785, -12.675437927246094],
            "token_int": "04f28231da5e848e77d2a379bc47e13d5cd444487aec17b3a13b60efb06263dd"
        },
        "call_all": {
            "route": "adapter",
            "score": -11.29118824005127,
            "token_int": [5, 2, 5, 2, 5, 2]
        },
        "call_no_video": {
            "route": "adapter",
            "score": -11.29118824005127,
            "token_int": [5, 2, 5, 2, 5, 2]
        },
        "call_none": {
            "route": "av",
            "score": -12.698287963867188,
            "token_int": [4, 5, 2, 5, 2, 5, 2]
        },
        "call_some": {
            "route": "av",
            "score": -12.69808292388916,
            "token_int": [4, 5, 2, 5, 2, 5, 2]
        },
        "ms_all": {
            "score": [-11.29118824005127, -8.187556266784668, -9.617719650268555],
            "token_int": "ebea5339757e1a634469d0f738a529b76c8d71d45ae3b88901c447600d30e1b3"
        },
        "ms_utterance": {
            "score": [-12.69828987121582, -8.187556266784668, -12.686555862426758],
            "token_int": "812027433010c28f2f293e6609fc54b1a1c35a196e796d8442481468e1bea5dc"
        },
        "plain_segment_black": {
            "score": [-12.67616081237793, -11.214125633239746, -12.680338859558105],
            "token_int": "eff07868ab8d64b028ba62ab22a1c4a9683f552c1f7afb088f8f4a041edefc51"
        }
    },
    "kd": {
        "only_dropped=False": {
            "loss": 25.855361938476562,
            "loss_kd": 18.034713745117188,
            "video_missing_rate": 0.5
        },
        "only_dropped=True": {
            "loss": 21.968151092529297,
            "loss_kd": 14.147502899169922,
            "video_missing_rate": 0.5
        }
    },
    "ms": {
        "always": {
            "enc": 930.1796264648438,
            "enc_lens": [9, 9, 7, 9],
            "rows": [230.62155151367188, 228.65121459960938, 235.07754516601562, 235.82937622070312],
            "video_missing": "076f090965e31ebcc95ad5f812cf074a01e1fddb916e3c2a2dd5e7b4965df7ee"
        },
        "auto": {
            "enc": 888.1359252929688,
            "enc_lens": [9, 9, 7, 9],
            "rows": [235.2530059814453, 234.46466064453125, 182.3018035888672, 236.116455078125],
            "video_missing": "80de1d26a374e806122087fdf91aa5c0ac0697cd016acfe3881cc7804a92d84f"
        },
        "off": {
            "enc": 940.8094482421875,
            "enc_lens": [9, 9, 7, 9],
            "rows": [235.2530059814453, 234.46466064453125, 234.9754180908203, 236.116455078125],
            "video_missing": "80de1d26a374e806122087fdf91aa5c0ac0697cd016acfe3881cc7804a92d84f"
        }
    },
    "rep": {
        "fusion": [24.78085154171438, 24.729207470443924, 24.052677272228593, 25.24364542584711],
        "output": [25.3812720609001, 25.614990533019103, 23.434898181011835, 25.61842434215618]
    },
    "v0": {
        "enc": 1089.2554931640625,
        "loss": 7.44675350189209,
        "video_missing": "ffd9a561c6fcb88661d736cc713f4eb7796470adfb342d08f0f5e34c62a76fc1",
        "video_missing_rate": 0.40625
    }
}


def digest(x) -> str:
    """sha256 of a tensor's / array's shape and bytes (masks, token ids)."""
    a = np.ascontiguousarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))
    return hashlib.sha256(f"{a.shape}{a.dtype}".encode() + a.tobytes()).hexdigest()


def batch() -> Dict[str, torch.Tensor]:
    """Row 0 complete, row 1 frames 2-5 flagged, row 2 every frame flagged (the marker),
    row 3 a 4-frame video under 9 audio frames (repeat_last), frame 1 flagged."""
    g = torch.Generator().manual_seed(11)
    speech = torch.randn(4, 6400, generator=g) * 0.1
    speech[2, 5120:] = 0
    video_lengths = torch.tensor([10, 10, 8, 4])
    video = torch.randn(4, 10, 88, 88, generator=g)
    missing = torch.zeros(4, 10, dtype=torch.bool)
    missing[1, 2:6] = True
    missing[2, :8] = True
    missing[3, 1] = True
    for b, n in enumerate(video_lengths.tolist()):
        video[b, n:] = 0
    video[2, :8] = 0  # the collate's fill for the marker
    return dict(speech=speech, speech_lengths=torch.tensor([6400, 6400, 5120, 6400]), video=video,
                video_lengths=video_lengths, video_missing=missing,
                text=torch.tensor([[2, 3, 4, 5], [3, 4, -1, -1], [2, 2, 3, -1], [5, -1, -1, -1]]),
                text_lengths=torch.tensor([4, 2, 3, 1]))


def build(conf: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return AVSRTask.build_model(argparse.Namespace(**copy.deepcopy(conf)))


def floats(stats: Dict[str, torch.Tensor], keys) -> Dict[str, float]:
    return {k: float(stats[k]) for k in keys}


def av_prints(av: torch.nn.Module) -> Dict:
    b = batch()
    out: Dict = {}
    av.train()
    torch.manual_seed(1)
    _, stats, _ = av(**batch())
    out.update(floats(stats, ("loss", "loss_ctc", "loss_att", "video_missing_rate")))
    drops: List[List[bool]] = []
    for seed in range(6):  # audio dropout only ever takes samples that keep some video
        torch.manual_seed(seed)
        _, _, hid = av.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"], b["video_missing"],
                              return_hidden=True)
        drops.append(hid["audio_dropped"].tolist())
    out["audio_dropped"] = drops
    av.eval()
    with torch.no_grad():
        enc, lens, hid = av.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"],
                                   b["video_missing"], return_hidden=True)
    out.update(enc=float(enc.abs().sum()), enc_lens=lens.tolist(), video_missing=digest(hid["video_missing"]),
               video_missing_rows=hid["video_missing"].sum(1).tolist())
    return out


def v0_prints() -> Dict:
    conf = dict(BASE, encoder="video_conformer",
                encoder_conf=dict(output_size=32, attention_heads=2, linear_units=48, num_blocks=1,
                                  cnn_module_kernel=5, dropout_rate=0.1, positional_dropout_rate=0.1),
                model_conf=dict(ctc_weight=0.3, video_dropout=dict(prob=0.5, rate=0.5)))
    v0 = build(conf, seed=4).train()
    torch.manual_seed(1)
    _, stats, _ = v0(**batch())
    out = floats(stats, ("loss", "video_missing_rate"))
    b = batch()
    v0.eval()
    with torch.no_grad():
        enc, _, hid = v0.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"], b["video_missing"],
                                return_hidden=True)
    out.update(enc=float(enc.abs().sum()), video_missing=digest(hid["video_missing"]))
    return out


def kd_prints(workdir: Path, av: torch.nn.Module) -> Dict:
    (workdir / "config.yaml").write_text(yaml.safe_dump(BASE), encoding="utf-8")
    teacher = {k: v + 0.05 if k.startswith("encoder.merge.") else v for k, v in av.state_dict().items()}
    torch.save(teacher, workdir / "teacher.pth")
    out: Dict = {}
    for only_dropped in (False, True):
        conf = copy.deepcopy(BASE)
        conf.update(model="mda_kd")
        conf["model_conf"].update(teacher_config=str(workdir / "config.yaml"),
                                  teacher_model_file=str(workdir / "teacher.pth"), kd_only_dropped=only_dropped)
        kd = build(conf, seed=2).train()
        torch.manual_seed(1)
        _, stats = kd.distill(**batch())
        out[f"only_dropped={only_dropped}"] = floats(stats, ("loss", "loss_kd", "video_missing_rate"))
    return out


def ms_model(seed: int = 3) -> torch.nn.Module:
    conf = copy.deepcopy(BASE)
    conf.update(model="ms_adapter", model_conf=dict(ctc_weight=0.3, adapter_conf=dict(rank=2)))
    ms = build(conf, seed=seed)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # non-zero adapters (and bridge), so the two paths differ
        for _, p in sorted(ms.named_parameters()):
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return ms.eval()


def ms_prints() -> Dict:
    ms = ms_model()
    b = batch()
    out: Dict = {}
    for switch in ("auto", "off", "always"):
        ms.adapter_switch = switch
        with torch.no_grad():
            enc, lens, hid = ms.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"],
                                       b["video_missing"], return_hidden=True)
        out[switch] = dict(enc=float(enc.abs().sum()), rows=enc.abs().sum(dim=(1, 2)).tolist(),
                           enc_lens=lens.tolist(), video_missing=digest(hid["video_missing"]))
    return out


def write_dump(d: Path) -> Path:
    """Three utterances: complete video, the no-video marker, video two frames short."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    wav, roi = [], []
    for i, (samples, frames) in enumerate([(6400, 10), (5760, 0), (7040, 9)]):
        utt = f"utt{i}"
        sf.write(d / f"{utt}.wav", (rng.standard_normal(samples) * 0.1).astype(np.float32), 16000)
        np.save(d / f"{utt}.npy", rng.integers(0, 256, (frames, 96, 96), dtype=np.uint8))
        wav.append(f"{utt} {d / f'{utt}.wav'}")
        roi.append(f"{utt} {d / f'{utt}.npy'}")
    (d / "wav.scp").write_text("\n".join(wav) + "\n", encoding="utf-8")
    (d / "roi.scp").write_text("\n".join(roi) + "\n", encoding="utf-8")
    return d


def decoded(out_dir: Path) -> Dict[str, str]:
    rec = out_dir / "1best_recog"
    return {f: (rec / f).read_text(encoding="utf-8") for f in ("token_int", "score")}


def decode_prints(workdir: Path, av: torch.nn.Module) -> Dict:
    from espnet_avsr.bin.avsr_inference import AVSpeech2Text, inference

    d = write_dump(workdir / "dump")
    conf = copy.deepcopy(BASE)
    conf["encoder_conf"]["mask_missing_in_cross_attention"] = False  # the default decoding path too
    for name, c in (("av.yaml", BASE), ("av_plain.yaml", conf)):
        (workdir / name).write_text(yaml.safe_dump(c), encoding="utf-8")
    torch.save(av.state_dict(), workdir / "av.pth")
    ms = ms_model()
    ms.save_adapters_only = True
    torch.save(ms.state_dict(), workdir / "adapters.pth")
    data = [(str(d / "wav.scp"), "speech", "sound"), (str(d / "roi.scp"), "video", "npy")]
    runs = {
        "av_random": dict(asr_train_config="av.yaml", missing_rate=0.5),
        "plain_segment_black": dict(asr_train_config="av_plain.yaml", missing_rate=0.5, missing_pattern="segment",
                                    missing_fill="black"),
        "ms_utterance": dict(asr_train_config="av.yaml", missing_rate=0.5, missing_pattern="utterance",
                             adapter_file=str(workdir / "adapters.pth"), missing_seed=3),
        "ms_all": dict(asr_train_config="av.yaml", missing_rate=1.0, adapter_file=str(workdir / "adapters.pth")),
    }
    out: Dict = {}
    # ESPnet's own scorers, as when these prints were recorded: the decode score files are hashed,
    # and our scan/cached scorers equal them to float32 rounding only (their own tests:
    # test_ctc_prefix_scan.py, test_cached_decoder.py); this test is about the missing frames
    reference = dict(ctc_scorer="loop", decoder_scorer="espnet")
    for name, kw in runs.items():
        kw = dict(kw, asr_train_config=str(workdir / kw["asr_train_config"]), **reference)
        inference(str(workdir / name), data, asr_model_file=str(workdir / "av.pth"), beam_size=2, **kw)
        files = decoded(workdir / name)
        # token ids exactly; scores as numbers, since their last digits follow the CPU's float
        # kernels (a new machine's AMD EPYC moved them by ~1e-7 with the same tokens)
        out[name] = {"token_int": hashlib.sha256(files["token_int"].encode()).hexdigest(),
                     "score": [float(line.split()[1]) for line in files["score"].splitlines()]}
    s2t = AVSpeech2Text(workdir / "av.yaml", workdir / "av.pth", beam_size=2,
                        adapter_file=workdir / "adapters.pth", **reference)
    speech = sf.read(str(d / "utt0.wav"), dtype="float32")[0]
    video = np.load(d / "utt0.npy")
    calls = {"none": None, "some": np.arange(10) % 3 == 0, "all": np.ones(10, dtype=bool)}
    for name, mask in calls.items():
        hyp = s2t(speech, video, mask)[0]
        out[f"call_{name}"] = dict(token_int=hyp[2], score=float(hyp[3].score), route=s2t.last_route)
    hyp = s2t(speech, None)[0]
    out["call_no_video"] = dict(token_int=hyp[2], score=float(hyp[3].score), route=s2t.last_route)
    return out


class _StubASR(torch.nn.Module):
    """Stands in for the ASR model of ``collect_pooled``: its 'output' is the raw speech."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Module()
        self.encoder.encoders = torch.nn.ModuleList()

    def encode(self, speech, speech_lengths):
        return speech[:, :, None], speech_lengths


def rep_prints(av: torch.nn.Module) -> Dict:
    from espnet_avsr.analysis.representations import MissingSpec, collect_pooled

    b = batch()
    keys = [f"utt{i}" for i in range(4)]
    av.eval()
    batch_in = {k: b[k] for k in ("speech", "speech_lengths", "video", "video_lengths", "video_missing")}
    rep = collect_pooled([(keys, batch_in)], _StubASR(), av, ["output"], ["output", "fusion"],
                         missing=MissingSpec(rate=0.5, pattern="random", fill="zeros", seed=1))
    return {name: np.abs(np.concatenate(v)).sum(axis=1).tolist() for name, v in sorted(rep.avsr.items())}


def fingerprints(workdir: Path) -> Dict[str, Dict]:
    av = build(BASE)
    parts = {"av": lambda: av_prints(av), "v0": v0_prints, "kd": lambda: kd_prints(workdir, av), "ms": ms_prints,
             "rep": lambda: rep_prints(av), "decode": lambda: decode_prints(workdir, av)}
    out = {}
    for name, part in parts.items():
        t0 = time.perf_counter()
        out[name] = part()
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return out


def same(got, want, path="") -> List[str]:
    """Paths where ``got`` differs from ``want``: floats beyond float noise, anything else exactly."""
    if isinstance(want, dict):
        keys = set(got) | set(want)
        return [p for k in sorted(keys) for p in (same(got.get(k), want.get(k), f"{path}.{k}")
                                                   if k in got and k in want else [f"{path}.{k}"])]
    if isinstance(want, list) and want and isinstance(want[0], float):
        return [] if got == pytest.approx(want, rel=1e-5) else [path]
    if isinstance(want, float):
        return [] if got == pytest.approx(want, rel=1e-5) else [path]
    return [] if got == want else [path]


@pytest.mark.slow
def test_missing_frames_reach_every_reader_as_before(tmp_path):
    got = json.loads(json.dumps(fingerprints(tmp_path)))  # tuples -> lists, as recorded
    assert same(got, EXPECTED) == []


def test_the_fingerprint_sees_the_flags():
    """A reading of the flags that moved would move the fingerprint: with masked cross-attention
    the flagged rows encode differently without their flags, the complete row does not."""
    av = build(BASE).eval()
    b = batch()
    with torch.no_grad():
        enc, lens, hid = av.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"], b["video_missing"],
                                   return_hidden=True)
        bare, _, bare_hid = av.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"],
                                      return_hidden=True)
    moved = [not torch.allclose(enc[i, : int(lens[i])], bare[i, : int(lens[i])]) for i in range(4)]
    assert moved == [False, True, True, True]  # row 3 also has invented frames either way
    assert digest(hid["video_missing"]) != digest(bare_hid["video_missing"])
    assert same({"a": 1.0, "b": "x", "c": [1.0]}, {"a": 1.0, "b": "y", "c": [1.1]}) == [".b", ".c"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        json.dump(fingerprints(Path(d)), sys.stdout, indent=4, sort_keys=True)
    print()
