"""Recipe options that shape the experiment: the dropout study and training threads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"
RUN_LOCAL = RECIPE / "utils" / "run_local.sh"


def _avsr(tmp_path, *args):
    """avsr.sh past its last stage: options are parsed and models derived, nothing runs."""
    stages = [] if "--stage" in args else ["--stage", "99", "--stop_stage", "99"]
    cmd = ["./avsr.sh", *stages, "--expdir", str(tmp_path / "exp"), *args]
    return subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=120)


def test_dropout_study_derives_one_config_per_rate(tmp_path):
    r = _avsr(tmp_path, "--dropout_study_rates", "0.1 0.7")
    assert r.returncode == 0, r.stderr
    base = yaml.safe_load((RECIPE / "conf" / "train_avsr.yaml").read_text(encoding="utf-8"))
    for rate in (0.1, 0.7):
        path = tmp_path / "exp" / "conf" / f"train_avsr_drop_r{rate}.yaml"
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert cfg["model_conf"]["video_dropout"] == {"prob": 1.0, "rate": rate, "pattern": "random", "fill": "zeros"}
        # everything else is the base config, so the study varies only the dropout rate
        cfg["model_conf"]["video_dropout"] = base["model_conf"]["video_dropout"]
        assert cfg == base
    assert sorted(p.name for p in (tmp_path / "exp" / "conf").iterdir()) == [
        "train_avsr_drop_r0.1.yaml", "train_avsr_drop_r0.7.yaml"]


def test_dropout_study_rejects_a_bad_rate(tmp_path):
    r = _avsr(tmp_path, "--dropout_study_rates", "0.3 1.5")
    assert r.returncode != 0
    assert "rate must be in (0, 1], got 1.5" in r.stderr


def test_dropout_study_needs_its_init_model_declared(tmp_path):
    r = _avsr(tmp_path, "--dropout_study_rates", "0.3", "--dropout_study_init", "AV9")
    assert r.returncode != 0
    assert "AVd0.3 refers to 'AV9'" in r.stderr


def test_local_launcher_threads(tmp_path):
    probe = 'echo "threads=${OMP_NUM_THREADS:-unset}"'
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(RUN_LOCAL), "--num_threads", "2", "a.log", probe], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "threads=2" in (tmp_path / "a.log").read_text()
    r = subprocess.run([str(RUN_LOCAL), "b.log", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "threads=1" in (tmp_path / "b.log").read_text()


def test_a0_plus_v0_init_is_checked_before_any_stage_runs(tmp_path):
    """An "X+Y" init must be an audio-only model + a lip reader; a swapped pair fails at parse time."""
    asr, vsr = "A0:conf/train_asr.yaml:-", "V0:conf/train_vsr.yaml:-"
    ok = _avsr(tmp_path, "--stage", "11", "--stop_stage", "7",
               "--models", f"{asr} {vsr} AV0:conf/train_avsr.yaml:A0+V0")
    assert ok.returncode == 0, ok.stderr
    bad = _avsr(tmp_path, "--stage", "11", "--stop_stage", "7",
                "--models", f"{asr} {vsr} AV0:conf/train_avsr.yaml:V0+A0")
    assert bad.returncode != 0
    assert "model AV0: init 'V0+A0' must be <audio-only model>+<lip reader" in bad.stderr
    undeclared = _avsr(tmp_path, "--models", f"{asr} AV0:conf/train_avsr.yaml:A0+V0")
    assert undeclared.returncode != 0 and "AV0 refers to 'V0'" in undeclared.stderr


def test_small_preset_chain_is_a_fair_comparison():
    """AV0's fine-tune is AV3 without dropout and AV5 is AV3 plus KD: same schedule, so the
    table compares dropout and KD, not extra epochs or another learning rate."""
    load = lambda name: yaml.safe_load((RECIPE / "conf" / name).read_text(encoding="utf-8"))
    ft, av3, av5 = load("train_avsr_ft.yaml"), load("train_avsr_drop_p05.yaml"), load("train_avsr_kd.yaml")
    assert ft["model_conf"]["video_dropout"] is None and av3["model_conf"]["video_dropout"]["prob"] == 0.5
    assert {k: v for k, v in ft.items() if k != "model_conf"} == {k: v for k, v in av3.items() if k != "model_conf"}
    assert {k: v for k, v in ft["model_conf"].items() if k != "video_dropout"} == \
        {k: v for k, v in av3["model_conf"].items() if k != "video_dropout"}
    assert {k: v for k, v in av5.items() if k not in ("model", "model_conf")} == \
        {k: v for k, v in av3.items() if k not in ("model", "model_conf")}
    assert av5["model_conf"]["video_dropout"] == av3["model_conf"]["video_dropout"]
    # the preset chains them: AV0pre -> AV0 (fine-tune) -> AV3 / AV5 (teacher AV0)
    run = (RECIPE / "run.sh").read_text(encoding="utf-8")
    small = run[run.index("    small)"):run.index("    bench)")]
    for line in ("AV0pre:conf/train_avsr.yaml:A0+V0", "AV0:conf/train_avsr_ft.yaml:AV0pre",
                 "AV3:conf/train_avsr_drop_p05.yaml:AV0", "AV5:conf/train_avsr_kd.yaml:AV0:AV0"):
        assert line in small, line


def test_seeds_copy_every_chain_within_its_seed(tmp_path):
    models = ("A0:conf/train_asr.yaml:- V0:conf/train_vsr.yaml:- AV0:conf/train_avsr.yaml:A0+V0 "
              "AV5:conf/train_avsr_kd.yaml:AV0:AV0")
    r = _avsr(tmp_path, "--models", models, "--seeds", "0 1")
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in (tmp_path / "exp" / "models.tsv").read_text().splitlines()]
    got = {row[0]: row[1:] for row in rows}
    assert list(got) == ["A0", "V0", "AV0", "AV5", "A0_s1", "V0_s1", "AV0_s1", "AV5_s1"]
    # name: config, init, teacher, seed, base, kind (from the config's keys), study rate
    assert got["AV0"] == ["conf/train_avsr.yaml", "A0+V0", "-", "0", "AV0", "avsr", "-"]
    assert got["AV0_s1"] == ["conf/train_avsr.yaml", "A0_s1+V0_s1", "-", "1", "AV0", "avsr", "-"]
    assert got["AV5_s1"] == ["conf/train_avsr_kd.yaml", "AV0_s1", "AV0_s1", "1", "AV5", "avsr", "-"]
    assert got["A0_s1"][1:4] == ["-", "-", "1"] and got["V0_s1"][5] == "vsr"
    meta = json.loads((tmp_path / "exp" / "AV5_s1" / "meta.json").read_text())  # each model's record, at start
    assert (meta["init"], meta["teacher"], meta["seed"], meta["base"], meta["kd"]) == ("AV0_s1", "AV0_s1", 1, "AV5", "mse")
    plain = _avsr(tmp_path, "--models", "A0:conf/train_asr.yaml:-")
    assert plain.returncode == 0 and (tmp_path / "exp" / "models.tsv").read_text() == \
        "A0\tconf/train_asr.yaml\t-\t-\t-\tA0\tasr\t-\n"
    bad = _avsr(tmp_path, "--models", models, "--seeds", "0 x")
    assert bad.returncode != 0 and "--seeds must be non-negative integers" in bad.stderr


def test_paper_preset_is_the_paper_list_with_two_seeds_and_fair_configs(tmp_path):
    r = subprocess.run(["./run.sh", "--preset", "paper", "--stage", "11", "--stop_stage", "7", "--",
                        "--expdir", str(tmp_path / "exp")], cwd=RECIPE, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {row.split("\t")[0]: row.split("\t")[1:]
            for row in (tmp_path / "exp" / "models.tsv").read_text().splitlines()}
    bases = ["A0", "V0", "AV0", "AV1", "AV2", "AV3", "AV5", "AV6", "AVd0.1", "AVd0.3", "AVd0.5", "AVd0.7"]
    assert sorted(rows) == sorted(bases + [f"{b}_s1" for b in bases])
    assert rows["AV1"][1] == rows["AV2"][1] == rows["AVd0.3"][1] == "A0+V0"  # the same start as AV0
    assert rows["AV3_s1"][1:3] == ["AV0_s1", "-"] and rows["AV5_s1"][1:3] == ["AV0_s1", "AV0_s1"]
    assert rows["AV6"][1] == "AV5"
    load = lambda name: yaml.safe_load((RECIPE / rows[name][0]).read_text(encoding="utf-8")) \
        if not rows[name][0].startswith("/") else yaml.safe_load(Path(rows[name][0]).read_text())
    av0 = load("AV0")
    for name in ("AV0", "AV1", "AV2", "AV3", "AV5", "AVd0.5"):
        assert load(name)["model_conf"]["audio_dropout"] == 0.0, name  # not in the paper
    strip = lambda c: {k: v for k, v in c.items() if k != "model_conf"} | {
        "model_conf": {k: v for k, v in c["model_conf"].items() if k != "video_dropout"}}
    for name in ("AV1", "AV2", "AVd0.5"):  # AV0's schedule: only the dropout differs
        assert strip(load(name)) == strip(av0), name
    av3, av5 = load("AV3"), load("AV5")
    assert av3["max_epoch"] == av5["max_epoch"] and av3["optim_conf"] == av5["optim_conf"]
    assert av3["model_conf"]["video_dropout"] == av5["model_conf"]["video_dropout"]
    # the chain agrees on the figure's merge (issue 20), and the study trains with the frames it is
    # decoded with (the preset decodes black frames)
    assert {load(n)["encoder_conf"]["merge"] for n in ("AV0", "AV1", "AV3", "AV5", "AV6", "AVd0.5")} == {"figure"}
    assert load("AVd0.5")["model_conf"]["video_dropout"]["fill"] == av5["model_conf"]["video_dropout"]["fill"] == "black"
