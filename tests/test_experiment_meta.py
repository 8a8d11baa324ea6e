"""Experiment metadata in Python: kinds come from config keys, meta.json and --meta agree."""
import json
from pathlib import Path

import pytest
import yaml

from espnet_avsr.bin import experiment
from espnet_avsr.common.experiment import ConfigError, kind_of_file, model_record

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"


def _cfg(path: Path, **keys) -> str:
    path.write_text(yaml.safe_dump(keys), encoding="utf-8")
    return str(path)


def test_kind_is_read_from_keys_not_names(tmp_path):
    # names that would mislead a file-name rule
    assert kind_of_file(_cfg(tmp_path / "train_asr_av.yaml", encoder="av_conformer")) == "avsr"
    assert kind_of_file(_cfg(tmp_path / "train_avsr_plain.yaml", encoder="conformer")) == "asr"
    assert kind_of_file(_cfg(tmp_path / "a.yaml", encoder="video_conformer", video_frontend="resnet18")) == "vsr"
    assert kind_of_file(_cfg(tmp_path / "b.yaml", model="ms_adapter", encoder="av_conformer")) == "adapter"
    assert kind_of_file(tmp_path / "none.yaml") == "missing"


def test_shipped_configs_have_the_kinds_the_recipe_expects():
    kinds = {p.name: kind_of_file(p) for p in (RECIPE / "conf").glob("train_*.yaml")}
    assert kinds["train_asr.yaml"] == "asr" and kinds["train_vsr.yaml"] == "vsr"
    assert kinds["train_adapter.yaml"] == "adapter"
    assert {kinds[n] for n in kinds if n.startswith("train_avsr")} == {"avsr"}


def test_meta_json_and_score_meta_come_from_one_record(tmp_path, capsys):
    cfg = _cfg(tmp_path / "train_avsr_x.yaml", encoder="av_conformer", model="mda_kd",
               model_conf={"video_dropout": {"prob": 0.5, "rate": [0.2, 0.6]}, "kd_distance": "mse"})
    experiment.main(["meta", "--name", "AV5", "--config", cfg, "--kind", "avsr", "--init", "AV0",
                     "--teacher", "AV0", "--out", str(tmp_path / "AV5" / "meta.json")])
    words = capsys.readouterr().out.split()
    meta = json.loads((tmp_path / "AV5" / "meta.json").read_text())
    assert meta == {"model": "AV5", "modality": "av", "config": "train_avsr_x", "init": "AV0",
                    "train_dropout": "0.2-0.6", "train_dropout_prob": 0.5, "train_dropout_pattern": "random",
                    "kd": "mse", "teacher": "AV0", "adapter": "false"}
    assert words == [f"{k}={v}" for k, v in meta.items()]
    asr = model_record("A0", str(RECIPE / "conf" / "train_asr.yaml"), "asr")
    assert asr.as_dict() == {"model": "A0", "modality": "audio", "config": "train_asr", "init": "none"}


def test_bad_configs_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="a config must be a YAML mapping"):
        kind_of_file(bad)
    with pytest.raises(SystemExit, match="rate must be in"):
        experiment.main(["dropout_config", str(bad), "1.5", str(tmp_path / "o.yaml")])


def test_report_takes_training_settings_from_meta_json(tmp_path):
    from espnet_avsr.eval.report import load_records

    exp = tmp_path / "exp"
    d = exp / "A1" / "decode" / "eval_far"
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"cer": 0.2, "meta": {"test_set": "eval_far", "missing_rate": 0.5}}))
    (exp / "A1" / "meta.json").write_text(json.dumps({"model": "A1", "modality": "av", "train_dropout": 0.3}))
    (rec,), problems = load_records(exp, "result.json", "cer")
    assert not problems and rec.meta["modality"] == "av" and rec.train_dropout == 0.3
    assert rec.meta["missing_rate"] == 0.5  # the score's own meta stays
