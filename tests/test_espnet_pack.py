"""Pack every model kind with espnet2.bin.pack and load it back in a fresh process:
A0 (ESPnet ASR), AV0 (AV), AV5 (MDA-KD student, no teacher inside), AV6 (MS-Adapter merged
with its base). Tiny models at their initialisation: the round trip needs no training."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from espnet_avsr.bin.avsr_inference import AVSpeech2Text
from espnet_avsr.bin.avsr_pack import PackError, main as pack_main, pretrained_files, resolve_model_dir
from espnet_avsr.models.adapters import is_adapter_key
from espnet_avsr.tasks.avsr import AVSRTask

ROOT = Path(__file__).resolve().parents[1]
FS = 16000
TOKENS = ["<blank>", "<unk>", "你", "好", "看", "电", "视", "<sos/eos>"]
DECODE = dict(beam_size=2, ctc_weight=0.3, nbest=2)

AV_CONF = dict(
    frontend="default",
    frontend_conf=dict(fs=FS, n_fft=512, win_length=400, hop_length=160, n_mels=40),
    normalize="global_mvn",
    video_frontend="resnet18",
    video_frontend_conf=dict(width=2),
    encoder="av_conformer",
    encoder_conf=dict(output_size=32, attention_heads=2, linear_units=64, num_fusion_blocks=1, num_shared_blocks=1,
                      cnn_module_kernel=7, dropout_rate=0.0, positional_dropout_rate=0.0),
    decoder="transformer",
    decoder_conf=dict(attention_heads=2, linear_units=64, num_blocks=1, dropout_rate=0.0, positional_dropout_rate=0.0),
    model="espnet",
    model_conf=dict(ctc_weight=0.3),
    token_type="char",
    token_list=TOKENS,
)

# Runs in a fresh interpreter: load each packed model and print its hypotheses as JSON.
LOADER = r"""
import json, sys
import numpy as np
from espnet_avsr.bin.avsr_inference import AVSpeech2Text
from espnet2.bin.asr_inference import Speech2Text
from espnet2.main_funcs.pack_funcs import unpack
job = json.loads(sys.argv[1])
out = {}
for name, spec in job["models"].items():
    if spec["task"] == "asr":
        files = unpack(spec["zip"], spec["unpack"])  # ESPnet's own reader of espnet2.bin.pack archives
        s2t = Speech2Text(files["asr_train_config"], files["asr_model_file"], **job["decode"])
    else:
        s2t = AVSpeech2Text.from_pretrained(spec["zip"], unpack_dir=spec["unpack"], **job["decode"])
        d = AVSpeech2Text.from_pretrained(spec["zip"], unpack_dir=spec["unpack"] + "_defaults")
        out[name + ":defaults"] = [d.beam_search.beam_size, d.beam_search.weights["ctc"], type(d.asr_model).__name__]
    for utt in job["utts"]:
        speech = np.load(utt["speech"])
        video = np.load(utt["video"]) if spec["task"] != "asr" else None
        runs = [("av", video), ("audio", None)] if spec["task"] != "asr" else [("audio", None)]
        for tag, v in runs:
            args = (speech,) if spec["task"] == "asr" else (speech, v)
            out[f"{name}:{utt['id']}:{tag}"] = [r[2] for r in s2t(*args)]
print("RESULT" + json.dumps(out))
"""


def _save(exp: Path, config: dict, state: dict) -> Path:
    exp.mkdir(parents=True, exist_ok=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    torch.save(state, exp / "valid.acc.ave.pth")
    return exp


def _perturbed(state: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: (v + 0.05 * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v for k, v in state.items()}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pack")
    stats = tmp / "stats" / "feats_stats.npz"  # a file the configs point to: must travel in the archive
    stats.parent.mkdir()
    rng = np.random.default_rng(0)
    np.savez(stats, count=np.array(100), sum=rng.normal(size=40) * 100, sum_square=np.full(40, 200.0) + rng.random(40))
    torch.manual_seed(0)
    av_conf = dict(AV_CONF, normalize_conf=dict(stats_file=str(stats)))
    av0 = AVSRTask.build_model(argparse.Namespace(**av_conf))
    exps = {"AV0": _save(tmp / "exp" / "AV0", av_conf, av0.state_dict())}
    # AV5: MDA-KD student of AV0 (its config names the teacher's files, its weights differ)
    kd_conf = dict(av_conf, model="mda_kd", model_conf=dict(
        ctc_weight=0.3, teacher_config=str(exps["AV0"] / "config.yaml"),
        teacher_model_file=str(exps["AV0"] / "valid.acc.ave.pth"), kd_weight=1.0, kd_distance="mse",
        video_dropout=dict(prob=0.5, rate=0.5)))
    exps["AV5"] = _save(tmp / "exp" / "AV5", kd_conf, _perturbed(av0.state_dict(), 1))
    # AV6: MS-Adapters on AV5; the checkpoint holds only the adapters, init_param names the base
    ms_conf = dict(av_conf, model="ms_adapter", init_param=[str(exps["AV5"] / "valid.acc.ave.pth")],
                   model_conf=dict(ctc_weight=0.3, adapter_conf=dict(rank=2, alpha=4.0, dropout=0.0)))
    ms = AVSRTask.build_model(argparse.Namespace(**ms_conf))
    adapters = {k: 0.3 * torch.randn(v.shape) for k, v in ms.state_dict().items() if is_adapter_key(k)}
    assert adapters
    exps["AV6"] = _save(tmp / "exp" / "AV6", ms_conf, adapters)
    # A0: stock ESPnet ASR
    from espnet2.tasks.asr import ASRTask

    (tmp / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    a0_args = ASRTask.get_parser().parse_args([
        "--token_list", str(tmp / "tokens.txt"), "--token_type", "char", "--normalize", "global_mvn",
        "--normalize_conf", f"stats_file={stats}", "--frontend_conf", "n_fft=512", "--frontend_conf", "hop_length=160",
        "--frontend_conf", "n_mels=40", "--encoder", "conformer", "--encoder_conf", "output_size=32",
        "--encoder_conf", "attention_heads=2", "--encoder_conf", "linear_units=64", "--encoder_conf", "num_blocks=1",
        "--decoder", "transformer", "--decoder_conf", "attention_heads=2", "--decoder_conf", "linear_units=64",
        "--decoder_conf", "num_blocks=1"])
    a0 = ASRTask.build_model(a0_args)
    exps["A0"] = _save(tmp / "exp" / "A0", vars(a0_args), a0.state_dict())
    utts = []
    for i, n in enumerate((9600, 6400)):
        speech = (0.1 * rng.standard_normal(n)).astype(np.float32)
        video = rng.integers(0, 256, (n // 640, 96, 96), dtype=np.uint8)
        np.save(tmp / f"u{i}_speech.npy", speech)
        np.save(tmp / f"u{i}_video.npy", video)
        utts.append({"id": f"u{i}", "speech": str(tmp / f"u{i}_speech.npy"), "video": str(tmp / f"u{i}_video.npy")})
    zips = {}
    for name, exp in exps.items():
        zips[name] = exp / f"{name}_valid.acc.ave.zip"
        pack_main(["--asr_train_config", str(exp / "config.yaml"), "--asr_model_file", str(exp / "valid.acc.ave.pth"),
                   "--outpath", str(zips[name])])
    return tmp, exps, zips, utts


def _reference(exps, utts):
    """Hypotheses in this process, straight from the exp directories."""
    from espnet2.bin.asr_inference import Speech2Text

    out = {}
    for name, exp in exps.items():
        if name == "A0":
            s2t = Speech2Text(str(exp / "config.yaml"), str(exp / "valid.acc.ave.pth"), **DECODE)
        else:
            s2t = AVSpeech2Text.from_pretrained(exp, **DECODE)
        for u in utts:
            speech, video = np.load(u["speech"]), np.load(u["video"])
            if name == "A0":
                out[f"{name}:{u['id']}:audio"] = [r[2] for r in s2t(speech)]
            else:
                out[f"{name}:{u['id']}:av"] = [r[2] for r in s2t(speech, video)]
                out[f"{name}:{u['id']}:audio"] = [r[2] for r in s2t(speech, None)]
    return out


@pytest.mark.slow
def test_pack_and_load_in_a_fresh_process_gives_the_same_hypotheses(models):
    tmp, exps, zips, utts = models
    job = {"decode": DECODE, "utts": utts,
           "models": {n: {"zip": str(z), "unpack": str(tmp / f"unpacked_{n}"), "task": "asr" if n == "A0" else "avsr"}
                      for n, z in zips.items()}}
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", LOADER, json.dumps(job)], capture_output=True, text=True, env=env,
                       timeout=600, cwd=tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    fresh = json.loads(r.stdout.split("RESULT", 1)[1])
    ref = _reference(exps, utts)
    for key, hyps in ref.items():
        assert fresh[key] == hyps, key
        assert hyps and all(isinstance(h, list) for h in hyps)
    # AV6 without video takes the adapters: its hypotheses differ from its base AV5's
    assert any(ref[f"AV6:{u['id']}:audio"] != ref[f"AV5:{u['id']}:audio"] for u in utts)
    # Speech2Text's defaults and attribute names
    for name in ("AV0", "AV5", "AV6"):
        assert fresh[f"{name}:defaults"][:2] == [20, 0.5]
    assert fresh["AV5:defaults"][2] == "ESPnetAVSRModel" and fresh["AV6:defaults"][2] == "MSAdapterModel"


def test_archives_are_self_contained(models):
    tmp, exps, zips, utts = models
    for name, z in zips.items():
        with zipfile.ZipFile(z) as zf:
            names = zf.namelist()
            meta = yaml.safe_load(zf.read("meta.yaml"))
            config = yaml.safe_load(zf.read(meta["yaml_files"]["asr_train_config"]))
        assert all(not n.startswith("/") for n in names), names
        assert sorted(names) == ["exp/config.yaml", "exp/files/0_feats_stats.npz", "exp/model.pth", "meta.yaml"], name
        assert config["normalize_conf"]["stats_file"] == "exp/files/0_feats_stats.npz"
        assert "init_param" not in config
        if name == "AV5":  # the student alone: no teacher file, no KD option
            assert config["model"] == "espnet"
            assert not any(k.startswith(("teacher", "kd_")) for k in config["model_conf"])
            assert config["model_conf"]["video_dropout"] == {"prob": 0.5, "rate": 0.5}
        if name == "AV6":
            assert config["model"] == "ms_adapter" and config["model_conf"]["save_adapters_only"] is False
    files = pretrained_files(str(zips["AV6"]), unpack_dir=str(tmp / "check_av6"))
    state = torch.load(files["asr_model_file"], map_location="cpu")
    base = torch.load(exps["AV5"] / "valid.acc.ave.pth", map_location="cpu")
    assert all(torch.equal(state[k], v) for k, v in base.items())  # AV5's weights under the adapters
    assert any(is_adapter_key(k) for k in state)


def test_exp_dir_of_an_adapter_run_resolves_to_base_plus_adapters(models):
    tmp, exps, zips, utts = models
    files = resolve_model_dir(str(exps["AV6"]))
    assert files["asr_model_file"] == str(exps["AV5"] / "valid.acc.ave.pth")
    assert files["adapter_file"] == str(exps["AV6"] / "valid.acc.ave.pth")


def test_pack_errors_name_the_problem(models, tmp_path):
    tmp, exps, zips, utts = models
    cfg = yaml.safe_load((exps["AV6"] / "config.yaml").read_text(encoding="utf-8"))
    cfg.pop("init_param")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(PackError, match="only MS-Adapter tensors.*--base_model_file"):
        pack_main(["--asr_train_config", str(tmp_path / "config.yaml"), "--asr_model_file",
                   str(exps["AV6"] / "valid.acc.ave.pth"), "--outpath", str(tmp_path / "x.zip")])
    with pytest.raises(PackError, match="ESPnet ASR model"):
        AVSpeech2Text.from_pretrained(zips["A0"], unpack_dir=tmp_path / "a0")
    with pytest.raises(FileNotFoundError, match="neither a packed model"):
        AVSpeech2Text.from_pretrained(tmp_path / "nope.zip")
    torch.save({"encoder.bogus": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(PackError, match="do not fit"):
        pack_main(["--asr_train_config", str(exps["AV0"] / "config.yaml"), "--asr_model_file", str(tmp_path / "bad.pth"),
                   "--outpath", str(tmp_path / "y.zip")])


@pytest.mark.slow
def test_recipe_pack_stage_packs_each_model(models, tmp_path):
    """avsr.sh stage 12 on an exp dir: the KD model and the adapter model (its base passed on)."""
    tmp, exps, zips, utts = models
    exp = tmp_path / "exp"
    for name in ("AV0", "AV5", "AV6"):  # the trained models, without the archives made above
        (exp / name).mkdir(parents=True)
        for f in ("config.yaml", "valid.acc.ave.pth"):
            shutil.copyfile(exps[name] / f, exp / name / f)
    # a different AV5 here: AV6's config still names the original in init_param, so the
    # archive holds these weights only if the recipe passes its own AV5 as --base_model_file
    torch.save(_perturbed(torch.load(exp / "AV5" / "valid.acc.ave.pth"), 7), exp / "AV5" / "valid.acc.ave.pth")
    recipe = ROOT / "egs2" / "misp_avsr" / "avsr1"
    spec = "AV0:conf/train_avsr.yaml:- AV5:conf/train_avsr_kd.yaml:AV0:AV0 AV6:conf/train_adapter.yaml:AV5"
    r = subprocess.run(["./avsr.sh", "--stage", "12", "--stop_stage", "12", "--expdir", str(exp),
                        "--models", spec, "--skip_packing", "false"], cwd=recipe, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for name in ("AV0", "AV5", "AV6"):
        with zipfile.ZipFile(exp / name / f"{name}_valid.acc.ave.zip") as zf:
            config = yaml.safe_load(zf.read("exp/config.yaml"))
        assert config["model"] == {"AV0": "espnet", "AV5": "espnet", "AV6": "ms_adapter"}[name]
    files = pretrained_files(str(exp / "AV6" / "AV6_valid.acc.ave.zip"), unpack_dir=str(tmp_path / "u6"))
    state = torch.load(files["asr_model_file"], map_location="cpu")
    base = torch.load(exp / "AV5" / "valid.acc.ave.pth", map_location="cpu")
    assert all(torch.equal(state[k], v) for k, v in base.items())  # the recipe passed AV5 as the base
    (exp / "AV0" / "AV0_valid.acc.ave.zip").unlink()
    r = subprocess.run(["./avsr.sh", "--stage", "12", "--stop_stage", "12", "--expdir", str(exp),
                        "--models", spec], cwd=recipe, capture_output=True, text=True, timeout=600)  # default: skipped
    assert r.returncode == 0 and "=== Stage 12" not in r.stdout
    assert not (exp / "AV0" / "AV0_valid.acc.ave.zip").exists()
