"""An exp/<name> trained with other settings is never resumed or skipped as done under new ones."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from espnet_avsr.bin import train_inputs as ti
from test_reliability_losses import avsr

CFG = {"encoder": "av_conformer", "model_conf": {"ctc_weight": 0.3, "video_dropout": {"prob": 0.5, "rate": 0.5}}}


def _cfg(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _trained(exp: Path, cfg: Path, train_args: str = "--max_epoch 8") -> None:
    assert ti.main(["--record", "--exp", str(exp), "--config", str(cfg), "--train_args", train_args]) == 0
    (exp / "checkpoint.pth").write_bytes(b"weights")
    (exp / "config.yaml").write_text("stale", encoding="utf-8")


def test_record_and_compare(tmp_path, capsys):
    exp = tmp_path / "exp" / "AV0"
    cfg = _cfg(tmp_path / "train_avsr.yaml", CFG)
    assert ti.main(["--exp", str(exp), "--config", str(cfg)]) == 0  # nothing trained yet
    _trained(exp, cfg)
    assert ti.main(["--exp", str(exp), "--config", str(cfg), "--train_args", "--max_epoch 8"]) == 0
    assert ti.main(["--exp", str(exp), "--config", str(cfg), "--train_args", "--max_epoch 20"]) == 0  # resume longer
    capsys.readouterr()
    other = _cfg(tmp_path / "train_avsr_nodrop.yaml", {"encoder": "av_conformer", "model_conf": {"ctc_weight": 0.3}})
    assert ti.main(["--exp", str(exp), "--config", str(other), "--train_args", "--max_epoch 8 --seed 3",
                    "--init", "A0"]) == ti.DIFFERENT
    out = capsys.readouterr().out.splitlines()
    assert out == ['config.model_conf.video_dropout.prob: 0.5 -> (absent)',
                   'config.model_conf.video_dropout.rate: 0.5 -> (absent)', "init: - -> A0",
                   "train_args.seed: (absent) -> 3"]


def test_older_exp_dir_is_compared_through_espnet_config(tmp_path, capsys):
    exp = tmp_path / "AV0"
    exp.mkdir()
    (exp / "valid.acc.ave.pth").write_bytes(b"w")
    saved = dict(CFG, max_epoch=8, seed=0, batch_size=20)
    (exp / "config.yaml").write_text(yaml.safe_dump(saved), encoding="utf-8")
    cfg = _cfg(tmp_path / "c.yaml", CFG)
    assert ti.main(["--exp", str(exp), "--config", str(cfg), "--train_args", "--max_epoch 3"]) == 0
    new = json.loads(json.dumps(CFG))
    new["model_conf"]["video_dropout"]["rate"] = 0.3
    cfg = _cfg(tmp_path / "c.yaml", new)
    assert ti.main(["--exp", str(exp), "--config", str(cfg), "--train_args", "--batch_size 8"]) == ti.DIFFERENT
    assert capsys.readouterr().out.splitlines() == ["batch_size: 20 -> 8", "model_conf.video_dropout.rate: 0.5 -> 0.3"]
    # the dropout removed from model_conf: the keys ESPnet saved under it are reported
    cfg = _cfg(tmp_path / "c.yaml", {"encoder": "av_conformer", "model_conf": {"ctc_weight": 0.3}})
    assert ti.main(["--exp", str(exp), "--config", str(cfg)]) == ti.DIFFERENT
    assert capsys.readouterr().out.splitlines() == ["model_conf.video_dropout.prob: 0.5 -> (absent)",
                                                    "model_conf.video_dropout.rate: 0.5 -> (absent)"]


def test_stage9_stops_on_a_changed_config_and_train_fresh_moves_it_aside(tmp_path):
    cfg = _cfg(tmp_path / "train_avsr_x.yaml", CFG)
    exp = tmp_path / "exp" / "AV0"
    _trained(exp, cfg, "")
    marker = tmp_path / "exp" / ".done" / "stage9" / "train_AV0.done"
    marker.parent.mkdir(parents=True)
    marker.write_text("done\n")
    r = avsr(tmp_path, tmp_path, "--stage", "9", "--stop_stage", "9", "--models", f"AV0:{cfg}:-")
    assert r.returncode == 0, r.stderr
    assert "[skip] train_AV0" in r.stdout  # same settings: done
    _cfg(cfg, {"encoder": "av_conformer", "model_conf": {"ctc_weight": 0.3}})  # the config changed under its name
    r = avsr(tmp_path, tmp_path, "--stage", "9", "--stop_stage", "9", "--force_stage", "9", "--models", f"AV0:{cfg}:-")
    assert r.returncode != 0
    assert "config.model_conf.video_dropout.rate: 0.5 -> (absent)" in r.stderr
    assert f"model AV0: {exp} was trained with other settings (listed above)" in r.stderr
    assert (exp / "checkpoint.pth").read_bytes() == b"weights" and "[run] train_AV0" not in r.stdout
    r = avsr(tmp_path, tmp_path, "--stage", "9", "--stop_stage", "9", "--models", f"AV0:{cfg}:-",
             "--train_fresh", "true")
    moved = list((tmp_path / "exp").glob("AV0.replaced_*"))
    assert len(moved) == 1 and (moved[0] / "checkpoint.pth").read_bytes() == b"weights"
    assert "[run] train_AV0" in r.stdout  # trained afresh (fails here: no data, which is not this test's point)
    assert json.loads((exp / "train_inputs.json").read_text())["config.model_conf.ctc_weight"] == "0.3"
    # meta.json describes the list's model (the new config), so it stays with the new run
    assert json.loads((exp / "meta.json").read_text())["train_dropout"] == 0 and not (moved[0] / "meta.json").exists()


def test_resumed_training_keeps_the_earlier_logs(tmp_path):
    """A run resumed from its checkpoint writes a new train.log; the earlier ones (their per-epoch
    results) are kept as train.1.log, train.2.log, ..."""
    cfg = _cfg(tmp_path / "train_avsr_x.yaml", CFG)
    exp = tmp_path / "exp" / "AV0"
    _trained(exp, cfg, "")
    (exp / "train.log").write_text("6epoch results: first run\n", encoding="utf-8")
    for run in (1, 2):
        r = avsr(tmp_path, tmp_path, "--stage", "9", "--stop_stage", "9", "--models", f"AV0:{cfg}:-")
        assert "[run] train_AV0" in r.stdout and r.returncode != 0  # resumed (fails: no data here)
        assert (exp / "train.log").is_file() and (exp / f"train.{run}.log").is_file()
    assert (exp / "train.1.log").read_text(encoding="utf-8") == "6epoch results: first run\n"
    assert (exp / "train.2.log").read_text(encoding="utf-8") != "6epoch results: first run\n"
    assert (exp / "checkpoint.pth").read_bytes() == b"weights"


def test_source_checkpoints_are_recorded_by_content(tmp_path, capsys):
    """A retrained init or teacher (same file name, new weights) makes the model another one; a
    copy of the folder does not; a record from before sources were kept, or an init whose folder
    is gone, is compared on the rest."""
    exp, cfg = tmp_path / "exp" / "AV1", _cfg(tmp_path / "c.yaml", CFG)
    a0 = tmp_path / "exp" / "A0" / "valid.acc.ave.pth"
    a0.parent.mkdir(parents=True)
    a0.write_bytes(b"A0 weights")
    args = ["--exp", str(exp), "--config", str(cfg), "--init", "A0", "--source", f"A0={a0}"]
    assert ti.main(["--record", *args]) == 0
    (exp / "checkpoint.pth").write_bytes(b"weights")
    record = json.loads((exp / "train_inputs.json").read_text())
    assert record["source.A0"] == "valid.acc.ave.pth sha256:" + hashlib.sha256(b"A0 weights").hexdigest()[:16]
    assert ti.main(args) == 0
    copy = tmp_path / "copy" / "valid.acc.ave.pth"
    copy.parent.mkdir()
    copy.write_bytes(a0.read_bytes())
    assert ti.main([*args[:-1], f"A0={copy}"]) == 0  # same content elsewhere
    capsys.readouterr()
    a0.write_bytes(b"A0 retrained")
    assert ti.main(args) == ti.DIFFERENT
    assert capsys.readouterr().out.splitlines() == [
        f"source.A0: {record['source.A0']} -> valid.acc.ave.pth sha256:{hashlib.sha256(b'A0 retrained').hexdigest()[:16]}"]
    assert ti.main(args[:-2]) == 0  # A0's folder gone: nothing to compare it with
    del record["source.A0"]
    (exp / "train_inputs.json").write_text(json.dumps(record))
    assert ti.main(args) == 0  # recorded before sources were kept


def test_a_bad_source_is_a_clear_error(tmp_path):
    cfg = _cfg(tmp_path / "c.yaml", CFG)
    base = ["--exp", str(tmp_path / "AV1"), "--config", str(cfg), "--record"]
    with pytest.raises(ValueError, match=r"--source 'A0': expected <model>=<checkpoint file>"):
        ti.main([*base, "--source", "A0"])
    with pytest.raises(ValueError, match=r"nope\.pth: checkpoint of source model A0 not found"):
        ti.main([*base, "--source", f"A0={tmp_path / 'nope.pth'}"])


def test_stage9_stops_when_the_init_model_was_retrained(tmp_path):
    """AV1 starts from AV0: after AV0 is retrained (its checkpoint's content changes), AV1 is not
    kept as done; --train_fresh moves it aside and trains it again."""
    cfg = _cfg(tmp_path / "train_avsr_x.yaml", CFG)
    exp = tmp_path / "exp"
    av0 = exp / "AV0"
    _trained(av0, cfg, "")
    (av0 / "valid.acc.ave.pth").write_bytes(b"AV0 weights")
    assert ti.main(["--record", "--exp", str(exp / "AV1"), "--config", str(cfg), "--init", "AV0",
                    "--source", f"AV0={av0 / 'valid.acc.ave.pth'}"]) == 0
    (exp / "AV1" / "checkpoint.pth").write_bytes(b"weights")
    (exp / "AV1" / "valid.acc.ave.pth").write_bytes(b"AV1 weights")
    (exp / "AV1" / "config.yaml").write_text("stale", encoding="utf-8")
    for m in ("AV0", "AV1"):
        marker = exp / ".done" / "stage9" / f"train_{m}.done"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("done\n")
    models = ["--models", f"AV0:{cfg}:- AV1:{cfg}:AV0"]
    r = avsr(tmp_path, tmp_path, "--stage", "9", "--stop_stage", "9", *models)
    assert r.returncode == 0, r.stderr
    assert "[skip] train_AV1" in r.stdout  # AV0 as it was: done
    (av0 / "valid.acc.ave.pth").write_bytes(b"AV0 retrained")
    r = avsr(tmp_path, tmp_path, "--stage", "9", "--stop_stage", "9", *models)
    assert r.returncode != 0
    assert "source.AV0: valid.acc.ave.pth sha256:" in r.stderr
    assert f"model AV1: {exp / 'AV1'} was trained with other settings (listed above)" in r.stderr
    assert (exp / "AV1" / "valid.acc.ave.pth").read_bytes() == b"AV1 weights"
    r = avsr(tmp_path, tmp_path, "--stage", "9", "--stop_stage", "9", *models, "--train_fresh", "true")
    assert len(list(exp.glob("AV1.replaced_*"))) == 1 and "[run] train_AV1" in r.stdout


def test_a_checkpoint_is_never_continued_with_another_seed(tmp_path, capsys):
    """The seed is part of what a model is: recorded when training starts, compared when both
    sides know it; a record older than the check is compared through ESPnet's config.yaml."""
    exp, cfg = tmp_path / "exp" / "V0", _cfg(tmp_path / "c.yaml", CFG)
    args = ["--exp", str(exp), "--config", str(cfg)]
    assert ti.main(["--record", *args, "--seed", "0"]) == 0
    (exp / "checkpoint.pth").write_bytes(b"weights")
    assert json.loads((exp / "train_inputs.json").read_text())["seed"] == "0"
    assert ti.main([*args, "--seed", "0"]) == 0 and ti.main(args) == 0  # same seed; no seed given
    capsys.readouterr()
    assert ti.main([*args, "--seed", "1"]) == ti.DIFFERENT
    assert capsys.readouterr().out.splitlines() == ["seed: 0 -> 1"]
    record = json.loads((exp / "train_inputs.json").read_text())
    del record["seed"]
    (exp / "train_inputs.json").write_text(json.dumps(record))
    assert ti.main([*args, "--seed", "1"]) == 0  # an old record, no config.yaml: nothing to compare
    (exp / "config.yaml").write_text(yaml.safe_dump({"seed": 0}), encoding="utf-8")
    assert ti.main([*args, "--seed", "1"]) == ti.DIFFERENT and ti.main([*args, "--seed", "0"]) == 0
    (exp / "train_inputs.json").unlink()  # an exp dir from before the record: config.yaml alone
    capsys.readouterr()
    assert ti.main([*args, "--seed", "1"]) == ti.DIFFERENT
    assert capsys.readouterr().out.splitlines()[-1] == "seed: 0 -> 1"


def test_stage9_refuses_to_continue_a_checkpoint_with_another_seed(tmp_path):
    """Seed 1's V0_s1 holding a seed-0 checkpoint (say, copied by hand) is not resumed."""
    cfg = _cfg(tmp_path / "train_avsr_x.yaml", CFG)
    exp = tmp_path / "exp" / "AV0_s1"
    assert ti.main(["--record", "--exp", str(exp), "--config", str(cfg), "--seed", "0"]) == 0
    (exp / "checkpoint.pth").write_bytes(b"weights")
    r = avsr(tmp_path, tmp_path, "--stage", "9", "--stop_stage", "9", "--models", f"AV0:{cfg}:-", "--seeds", "1")
    assert r.returncode != 0 and "seed: 0 -> 1" in r.stderr
    assert f"model AV0_s1: {exp} was trained with other settings (listed above)" in r.stderr
    assert "[run] train_AV0_s1" not in r.stdout and (exp / "checkpoint.pth").read_bytes() == b"weights"
    assert not (tmp_path / "exp" / "AV0").exists()  # seed 1 alone is named AV0_s1, never AV0
