"""Experiment metadata in Python: the model list parsed into typed records (kinds from config
keys), exp/<name>/meta.json, the test sets' set.json and the decodes' condition.json."""
import json
from pathlib import Path

import pytest
import yaml

from espnet_avsr.bin import experiment
from espnet_avsr.common.experiment import (ConditionInfo, ConfigError, MetaError, ModelListError, SetInfo,
                                           clean_set_info, kind_of_file, model_list, model_record, noisy_set_info,
                                           read_facts, read_meta, read_models_tsv, read_set_info, write_condition_info,
                                           write_models_tsv, write_set_info)

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"


def _cfg(path: Path, **keys) -> str:
    path.write_text(yaml.safe_dump(keys), encoding="utf-8")
    return str(path)


@pytest.fixture
def confs(tmp_path):
    """Configs whose file names say nothing true about them: kinds must come from their keys."""
    return {
        "asr": _cfg(tmp_path / "train_avsr_looks_av.yaml", encoder="conformer"),
        "vsr": _cfg(tmp_path / "lips.yaml", encoder="video_conformer", video_frontend="resnet18"),
        "av": _cfg(tmp_path / "train_asr_looks_audio.yaml", encoder="av_conformer",
                   model_conf={"video_dropout": {"prob": 0.5, "rate": [0.2, 0.6]}}),
        "kd": _cfg(tmp_path / "k.yaml", encoder="av_conformer", model="mda_kd", model_conf={"kd_distance": "mse"}),
        "ad": _cfg(tmp_path / "a.yaml", encoder="av_conformer", model="ms_adapter"),
    }


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


def test_model_list_is_typed_and_seeds_copy_each_chain(confs, tmp_path):
    models = f"A0:{confs['asr']}:- V0:{confs['vsr']} AV0:{confs['av']}:A0+V0 AV5:{confs['kd']}:AV0:AV0 AV6:{confs['ad']}:AV5"
    specs = model_list(models, seeds="0 1", study_rates="0.3", study_config=confs["av"], study_init="A0",
                       conf_dir=tmp_path / "conf", check_configs=True)
    by = {s.name: s for s in specs}
    assert [s.name for s in specs] == ["A0", "V0", "AV0", "AV5", "AV6", "AVd0.3",
                                       "A0_s1", "V0_s1", "AV0_s1", "AV5_s1", "AV6_s1", "AVd0.3_s1"]
    assert [by[n].kind for n in ("A0", "V0", "AV0", "AV5", "AV6")] == ["asr", "vsr", "avsr", "avsr", "adapter"]
    assert by["V0"].init == () and by["V0"].teacher is None  # name:config alone = from scratch
    assert (by["AV5_s1"].init, by["AV5_s1"].teacher, by["AV5_s1"].seed, by["AV5_s1"].base) == (("AV0_s1",), "AV0_s1", 1, "AV5")
    assert (by["AV0_s1"].init_arg, by["AV0"].seed) == ("A0_s1+V0_s1", 0)
    study = by["AVd0.3_s1"]
    assert (study.study, study.study_rate, study.init, study.kind) == ("dropout", "0.3", ("A0_s1",), "avsr")
    derived = yaml.safe_load(Path(study.config).read_text())
    assert Path(study.config) == tmp_path / "conf" / "train_asr_looks_audio_drop_r0.3.yaml"
    assert derived["model_conf"]["video_dropout"] == {"prob": 1.0, "rate": 0.3, "pattern": "random", "fill": "zeros"}
    # a study decoded with black frames trains with them (avsr.sh passes --test_missing_fill)
    black = model_list(models, study_rates="0.3", study_config=confs["av"], conf_dir=tmp_path / "black", study_fill="black")
    assert yaml.safe_load(Path(black[-1].config).read_text())["model_conf"]["video_dropout"]["fill"] == "black"
    with pytest.raises(ConfigError, match="fill must be one of"):
        model_list(models, study_rates="0.3", study_config=confs["av"], conf_dir=tmp_path / "bad", study_fill="grey")
    from espnet_avsr.common.experiment import STUDY_FILLS
    from espnet_avsr.data.missing_video import FILLS
    assert sorted(STUDY_FILLS) == sorted(FILLS)  # the recipe's early check names what the model accepts
    # models.tsv round trip: what avsr.sh reads, "-" for nothing (an empty column would vanish in bash's read)
    write_models_tsv(tmp_path / "models.tsv", specs)
    rows = [r.split("\t") for r in (tmp_path / "models.tsv").read_text().splitlines()]
    assert rows[0] == ["A0", confs["asr"], "-", "-", "0", "A0", "asr", "-"]
    assert rows[-1][2:] == ["A0_s1", "-", "1", "AVd0.3", "avsr", "0.3"]
    back = read_models_tsv(tmp_path / "models.tsv")
    assert [(b.name, b.init, b.teacher, b.seed, b.kind, b.study_rate) for b in back] == \
        [(s.name, s.init, s.teacher, s.seed, s.kind, s.study_rate) for s in specs]
    plain = model_list(f"A0:{confs['asr']}:-")
    assert (plain[0].seed, plain[0].base, plain[0].tsv_row().split("\t")[4]) == (None, "A0", "-")


def test_a_models_name_says_its_seed_whichever_seeds_are_listed(confs):
    """Seed 1 trained alone (a second session finishing one seed) is V0_s1: before, the first
    listed seed kept the plain name, so --seeds 1 resumed seed 0's exp/V0 with seed 1."""
    models = f"A0:{confs['asr']}:- V0:{confs['vsr']} AV0:{confs['av']}:A0+V0"
    alone = {s.name: s for s in model_list(models, seeds="1")}
    assert sorted(alone) == ["A0_s1", "AV0_s1", "V0_s1"]
    assert (alone["AV0_s1"].init, alone["AV0_s1"].seed, alone["AV0_s1"].base) == (("A0_s1", "V0_s1"), 1, "AV0")
    assert sorted(s.name for s in model_list(models, seeds="2 0")) == ["A0", "A0_s2", "AV0", "AV0_s2", "V0", "V0_s2"]
    assert [s.name for s in model_list(models)] == ["A0", "V0", "AV0"]  # no --seeds: ESPnet's seed 0
    with pytest.raises(ModelListError, match="declared twice"):
        model_list(models, seeds="1 01")


@pytest.mark.parametrize("models, extra, message", [
    ("broken", {}, "model spec 'broken' is not name:config:init[:teacher]"),
    ("A0:{asr}:- A0:{asr}:-", {}, "model name A0 is declared twice in --models ('A0:{asr}:-')"),
    ("AV0:{av}:A9", {}, "model AV0 refers to 'A9', which is not declared before it in --models ('AV0:{av}:A9')"),
    ("A0:{asr}:- AV5:{kd}:A0:T9", {}, "model AV5 refers to 'T9'"),
    ("AV0:{av}:A0 A0:{asr}:-", {}, "model AV0 refers to 'A0', which is not declared before it"),
    ("A0:{asr}:- AV0:{av}:A0+V0+X", {}, "init 'A0+V0+X' must be '-', a model name, or <audio-only model>+<lip reader>"),
    ("a/b:{asr}:-", {}, "name 'a/b' may hold letters"),
    ("A0:{asr}:-", {"seeds": "0 x"}, "--seeds must be non-negative integers, got '0 x'"),
    ("A0:{asr}:-", {"study_rates": "0.3 1.5", "study_config": "{av}"}, "dropout study rate must be in (0, 1], got 1.5"),
    ("A0:{asr}:-", {"study_rates": "abc", "study_config": "{av}"}, "--dropout_study_rates: 'abc' is not a number"),
    ("A0:{asr}:-", {"study_rates": "0.3", "study_config": "/no/such.yaml"}, "--dropout_study_config /no/such.yaml does not exist"),
    ("A0:/no/such.yaml:-", {"check_configs": True}, "config /no/such.yaml of model A0 does not exist ('A0:/no/such.yaml:-')"),
    ("AV6:{ad}:-", {"check_configs": True}, "adapter model AV6 needs its base AV model as init"),
    ("A0:{asr}:- V0:{vsr}:- AV0:{av}:V0+A0", {"check_configs": True},
     "model AV0: init 'V0+A0' must be <audio-only model>+<lip reader (encoder: video_conformer)> for an AV model"),
    ("", {}, "--models is empty"),
])
def test_bad_model_lists_name_the_entry(confs, tmp_path, models, extra, message):
    fill = lambda t: t.format(**confs)
    kw = {k: fill(v) if isinstance(v, str) else v for k, v in extra.items()}
    with pytest.raises((ModelListError, ConfigError)) as e:
        model_list(fill(models), conf_dir=tmp_path / "conf", **kw)
    assert fill(message) in str(e.value)


def test_missing_configs_pass_until_training_needs_them(confs):
    """Data-prep-only runs may list configs that do not exist yet (kind "missing")."""
    (spec,) = model_list("A0:/no/such.yaml:-")
    assert spec.kind == "missing"


def test_meta_json_is_the_typed_record_of_the_list(confs, tmp_path):
    specs = model_list(f"A0:{confs['asr']}:- AV0:{confs['av']}:A0 AV5:{confs['kd']}:AV0:AV0 AV6:{confs['ad']}:AV5",
                       study_rates="0.5", study_config=confs["av"], study_init="A0", conf_dir=tmp_path / "conf")
    exp = tmp_path / "exp"
    experiment.main(["models", "--models", f"A0:{confs['asr']}:- AV0:{confs['av']}:A0 AV5:{confs['kd']}:AV0:AV0 "
                     f"AV6:{confs['ad']}:AV5", "--dropout_study_rates", "0.5", "--dropout_study_config", confs["av"],
                     "--conf_dir", str(tmp_path / "conf"), "--out", str(exp / "models.tsv"), "--exp", str(exp)])
    assert [s.name for s in read_models_tsv(exp / "models.tsv")] == [s.name for s in specs]
    meta = {s.name: json.loads((exp / s.name / "meta.json").read_text()) for s in specs}
    assert meta["AV5"] == {"model": "AV5", "kind": "avsr", "modality": "av", "config": "k", "init": "AV0",
                           "teacher": "AV0", "seed": None, "base": "AV5", "study": None, "train_dropout": 0,
                           "train_dropout_prob": None, "train_dropout_pattern": None, "kd": "mse", "adapter": False}
    assert (meta["AV0"]["train_dropout"], meta["AV0"]["train_dropout_prob"], meta["AV0"]["kd"]) == ("0.2-0.6", 0.5, False)
    assert (meta["AV6"]["adapter"], meta["AV6"]["train_dropout"], meta["AV6"]["kind"]) == (True, None, "adapter")
    assert (meta["A0"]["modality"], meta["A0"]["init"], meta["A0"]["kd"]) == ("audio", None, None)
    assert (meta["AVd0.5"]["study"], meta["AVd0.5"]["train_dropout"], meta["AVd0.5"]["init"]) == ("dropout", 0.5, "A0")
    assert read_meta(exp / "AV5" / "meta.json") == model_record(specs[2])


def test_meta_json_problems_name_the_file(tmp_path):
    path = tmp_path / "AV0" / "meta.json"
    with pytest.raises(MetaError, match=f"{path}: missing"):
        read_meta(path)
    path.parent.mkdir()
    # what the recipe wrote before: untyped words ("none", "false") and no kind
    path.write_text(json.dumps({"model": "AV0", "modality": "av", "config": "c", "init": "none", "kd": "false"}))
    with pytest.raises(MetaError, match=f"{path}: lacks kind"):
        read_meta(path)
    good = {"model": "AV0", "kind": "avsr", "modality": "av", "config": "c"}
    for bad, message in (({"adapter": "false"}, "'adapter' must be bool, got 'false'"),
                         ({"kd": "false"}, "'kd' must be true, false or a distance name"),
                         ({"seed": True}, "'seed' must be int, got True"),
                         ({"modality": "audio"}, "kind 'avsr' / modality 'audio'"),
                         ({"train": "free text"}, "unknown key 'train'")):
        path.write_text(json.dumps({**good, **bad}))
        with pytest.raises(MetaError, match=message):
            read_meta(path)
    path.write_text("{")
    with pytest.raises(MetaError, match="not valid JSON"):
        read_meta(path)


def test_set_and_condition_facts(tmp_path):
    assert clean_set_info("eval_far") == SetInfo(test_set="eval_far", field="far", noise="none", snr=None)
    assert clean_set_info("dev_middle").field == "middle"
    with pytest.raises(MetaError, match="'eval_far_babble0' is not <split>_<field>"):
        clean_set_info("eval_far_babble0")
    noisy = noisy_set_info(clean_set_info("eval_near"), "babble", -2.5)
    write_set_info(tmp_path, noisy)
    assert read_set_info(tmp_path) == SetInfo("eval_near", "near", "babble", -2.5)
    (tmp_path / "set.json").write_text(json.dumps({"test_set": "eval_far", "field": "far", "noise": "babble", "snr": None}))
    with pytest.raises(MetaError, match="snr must be null for a clean set and a number for a noisy one"):
        read_set_info(tmp_path)
    with pytest.raises(MetaError, match=f"{tmp_path / 'x' / 'set.json'}: missing"):
        read_set_info(tmp_path / "x")
    write_set_info(tmp_path, noisy)
    write_condition_info(tmp_path / "dec", ConditionInfo(0.5, "random", "zeros", 0))
    facts = read_facts([tmp_path / "set.json", tmp_path / "dec" / "condition.json"])
    assert facts == {"test_set": "eval_near", "field": "near", "noise": "babble", "snr": -2.5,
                     "missing_rate": 0.5, "missing_pattern": "random", "missing_fill": "zeros", "missing_seed": 0}
    with pytest.raises(MetaError, match="'test_set' is given by"):
        read_facts([tmp_path / "set.json", tmp_path / "set.json"])


def test_set_info_cli_records_clean_test_sets(tmp_path):
    (tmp_path / "eval_far").mkdir()
    experiment.main(["set_info", "--dumpdir", str(tmp_path), "eval_far"])
    assert read_set_info(tmp_path / "eval_far") == SetInfo("eval_far", "far")
    with pytest.raises(SystemExit, match=f"{tmp_path / 'dev_far'}: no dump of test set dev_far"):
        experiment.main(["set_info", "--dumpdir", str(tmp_path), "dev_far"])


def test_bad_configs_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="a config must be a YAML mapping"):
        kind_of_file(bad)
    with pytest.raises(SystemExit, match=f"model AV0 \\('AV0:{bad}:-'\\): {bad}: a config must be a YAML mapping"):
        experiment.main(["models", "--models", f"AV0:{bad}:-", "--out", str(tmp_path / "m.tsv")])


def test_report_takes_model_facts_from_meta_json_and_score_facts_from_its_meta(tmp_path):
    from espnet_avsr.eval.report import ReportBuilder

    exp = tmp_path / "exp"
    d = exp / "A1" / "decode" / "eval_far"
    d.mkdir(parents=True)
    facts = {**clean_set_info("eval_far").as_dict(), **ConditionInfo(0.5, "random", "zeros", 0).as_dict()}
    (d / "result.json").write_text(json.dumps({"cer": 0.2, "meta": {"model": "A1", **facts}}))
    (exp / "A1" / "meta.json").write_text(json.dumps({"model": "A1", "kind": "avsr", "modality": "av", "config": "c",
                                                      "train_dropout": 0.3}))
    b = ReportBuilder(exp)
    (rec,) = b.cer.values()
    assert not b.report.notes and rec.rate == 0.5 and rec.snr is None and rec.mic_field == "far"
    assert b.model_meta["A1"]["train_dropout"] == 0.3 and not b.audio_only("A1")  # "A1" is no audio-only name rule
    (exp / "A1" / "meta.json").write_text(json.dumps({"model": "A2", "kind": "asr", "modality": "audio", "config": "c"}))
    with pytest.raises(MetaError, match="records model 'A2', but its scores are those of 'A1'"):
        ReportBuilder(exp)


def test_checkpoint_order_has_one_home(tmp_path):
    """avsr.sh reads the checkpoint order from `experiment checkpoints`; avsr_pack imports the same tuple."""
    from espnet_avsr.bin import avsr_pack
    from espnet_avsr.bin.experiment import main
    from espnet_avsr.common.experiment import CHECKPOINTS
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["checkpoints"])
    assert tuple(buf.getvalue().split()) == CHECKPOINTS and avsr_pack.CHECKPOINTS is CHECKPOINTS
    assert CHECKPOINTS[0] == "valid.acc.ave.pth" and CHECKPOINTS[-1] == "latest.pth"
    recipe = (Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1" / "avsr.sh").read_text()
    assert "valid.loss.best.pth" not in recipe.split("model_checkpoint() {")[1].split("}")[0]
