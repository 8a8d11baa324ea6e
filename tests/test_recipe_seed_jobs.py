"""--seed_jobs: the seeds' training chains run side by side (issue 15, item 6). On the 2-core
machine two one-thread jobs train 1.4-1.7x as fast as one two-thread job (A0 epochs 2.2-2.3 min
each side by side, 1.6-2.0 min alone at 2 threads), and no seed's model inits from or learns
from another seed's, so the paper preset trains its two seeds at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"

# Stands in for the training process only (as in test_recipe_amp): ESPnet's own parser reads the
# recipe's real command line; the stand-in records when it ran, its seed, its init and its threads.
_FAKE_TRAIN = r'''
import json, os, sys, time
from pathlib import Path
module, argv = sys.argv[1], sys.argv[2:]
if module == "espnet2.bin.asr_train":
    from espnet2.tasks.asr import ASRTask as Task
else:
    from espnet_avsr.tasks.avsr import AVSRTask as Task
args = Task.get_parser().parse_args(argv)
out = Path(args.output_dir)
out.mkdir(parents=True, exist_ok=True)
t0 = time.time()
if str(args.seed) == os.environ.get("FAKE_TRAIN_FAIL_SEED"):
    sys.exit("fake training of seed %d fails" % args.seed)
partner_seen = None
meet = os.environ.get("FAKE_TRAIN_MEET")
if meet:  # wait (up to a minute) for the other seed's run of this model: seen only if both run at once
    name = out.name
    partner = name[:-3] if name.endswith("_s1") else name + "_s1"
    (Path(meet) / name).touch()
    deadline = time.time() + 60
    while not (Path(meet) / partner).exists() and time.time() < deadline:
        time.sleep(0.1)
    partner_seen = (Path(meet) / partner).exists()
time.sleep(float(os.environ["FAKE_TRAIN_SECONDS"]))
(out / "run.json").write_text(json.dumps({"start": t0, "end": time.time(), "seed": args.seed, "partner_seen": partner_seen,
                                          "init": args.init_param, "threads": os.environ.get("OMP_NUM_THREADS")}))
(out / "config.yaml").write_text("seed: %d\n" % args.seed)
(out / "latest.pth").write_bytes(b"")
'''

MODELS = "A0:conf/train_asr.yaml:- AV0:conf/train_avsr.yaml:- AV3:conf/train_avsr_drop_p05.yaml:AV0"


@pytest.fixture()
def fake_python(tmp_path):
    probe = tmp_path / "fake_train.py"
    probe.write_text(_FAKE_TRAIN, encoding="utf-8")
    wrapper = tmp_path / "python"
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "${1:-}" = -m ] && { [ "$2" = espnet2.bin.asr_train ] || [ "$2" = espnet_avsr.bin.avsr_train ]; }; then\n'
        f'    m="$2"; shift 2; exec {sys.executable} {probe} "$m" "$@"\n'
        "fi\n"
        f'exec {sys.executable} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper


def _train(tmp_path, fake_python, *args, ok=True, stop=9, fail_seed="", meet=""):
    exp = tmp_path / "exp"
    cmd = ["./avsr.sh", "--stage", "8", "--stop_stage", str(stop), "--python", str(fake_python), "--expdir", str(exp),
           "--models", MODELS, "--seeds", "0 1", *args]
    env = {**os.environ, "PYTHONPATH": str(RECIPE.parents[2]), "FAKE_TRAIN_SECONDS": "2", "FAKE_TRAIN_FAIL_SEED": fail_seed,
           "FAKE_TRAIN_MEET": meet}
    r = subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=300, env=env)
    assert (r.returncode == 0) == ok, r.stdout[-3000:] + r.stderr[-3000:]
    runs = {p.parent.name: json.loads(p.read_text()) for p in exp.glob("*/run.json")}
    return r, runs



def test_seed_chains_train_side_by_side_each_in_order(tmp_path, fake_python):
    # each model's run waits for the other seed's run of it: both see it only if they run at once
    # (start times would be too loose on a loaded machine: the parse alone takes seconds)
    (tmp_path / "meet").mkdir()
    r, runs = _train(tmp_path, fake_python, "--seed_jobs", "2", "--train_threads", "", meet=str(tmp_path / "meet"))
    assert sorted(runs) == ["A0", "A0_s1", "AV0", "AV0_s1", "AV3", "AV3_s1"]
    assert "side by side (2 at once" in r.stdout
    assert all(run["partner_seen"] for run in runs.values()), runs
    for sfx, seed in (("", 0), ("_s1", 1)):  # within a seed: the chain's order, its own seed and init
        assert runs["A0" + sfx]["end"] <= runs["AV0" + sfx]["start"] and runs["AV0" + sfx]["end"] <= runs["AV3" + sfx]["start"]
        assert {runs[m + sfx]["seed"] for m in ("A0", "AV0", "AV3")} == {seed}
        assert runs["AV3" + sfx]["init"] == [str(tmp_path / "exp" / ("AV0" + sfx) / "latest.pth")]
    ncpu = int(subprocess.run(["env", "-u", "OMP_NUM_THREADS", "nproc"], capture_output=True, text=True).stdout)
    threads = {m: int(v["threads"] or 1) for m, v in runs.items()}
    assert set(threads.values()) == {max(1, ncpu // 2)}  # the cores are shared between the two jobs
    again, _ = _train(tmp_path, fake_python, "--seed_jobs", "2")
    assert again.stdout.count("[skip] train_") == 6  # done markers hold in the chains too


def test_one_seed_job_trains_one_model_at_a_time(tmp_path, fake_python):
    _, runs = _train(tmp_path, fake_python, stop=8)
    assert sorted(runs) == ["A0", "A0_s1"] and runs["A0"]["end"] <= runs["A0_s1"]["start"]


def test_a_failing_chain_fails_the_stage(tmp_path, fake_python):
    # seed 1's A0 fails: the stage fails after seed 0's chain has finished its model
    r, runs = _train(tmp_path, fake_python, "--seed_jobs", "2", ok=False, fail_seed="1")
    assert "a seed's training chain failed" in r.stderr and "train_A0_s1 failed" in r.stderr
    assert sorted(runs) == ["A0"]  # seed 0 finished its A0; stage 9 never started
    bad = _train(tmp_path, fake_python, "--seed_jobs", "0", ok=False)[0]
    assert "--seed_jobs takes a positive integer" in bad.stderr


def test_a_model_with_a_trained_twin_links_to_it(tmp_path, fake_python):
    # the study's AVd0.5 has AV1's training inputs (config content, init, seed): not trained twice
    models = "A0:conf/train_asr.yaml:- AV1:conf/paper/train_avsr_drop_all.yaml:-"
    study = ["--dropout_study_config", "conf/paper/train_avsr.yaml", "--dropout_study_init", "-",
             "--dropout_study_rates", "0.5 0.7", "--test_missing_fill", "black", "--seed_jobs", "2"]
    exp = tmp_path / "exp"
    r, runs = _train(tmp_path, fake_python, "--models", models, *study)
    assert sorted(runs) == ["A0", "A0_s1", "AV1", "AV1_s1", "AVd0.5", "AVd0.5_s1", "AVd0.7", "AVd0.7_s1"]
    for sfx, seed in (("", 0), ("_s1", 1)):
        twin, other = exp / ("AVd0.5" + sfx), exp / ("AVd0.7" + sfx)
        assert f"model AVd0.5{sfx}: trained already as AV1{sfx}" in r.stdout + r.stderr
        assert (twin / "latest.pth").stat().st_ino == (exp / ("AV1" + sfx) / "latest.pth").stat().st_ino
        assert runs["AVd0.5" + sfx] == runs["AV1" + sfx] and runs["AV1" + sfx]["seed"] == seed
        assert f"is AV1{sfx}" in (twin / "TWIN.txt").read_text()
        meta = json.loads((twin / "meta.json").read_text())  # its own record, not AV1's
        assert (meta["model"], meta["study"], meta["train_dropout"]) == ("AVd0.5" + sfx, "dropout", 0.5)
        assert not (other / "TWIN.txt").exists()  # rate 0.7 differs from AV1: trained
        assert (other / "latest.pth").stat().st_ino != (exp / ("AV1" + sfx) / "latest.pth").stat().st_ino
    again, _ = _train(tmp_path, fake_python, "--models", models, *study)
    assert again.stdout.count("[skip] train_") == 8 and "trained already" not in again.stdout + again.stderr
