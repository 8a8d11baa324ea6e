"""A real single-node Slurm (Debian slurm-wlm + munge): the recipe's run_slurm.sh launcher on a
job array, and the recipe's data stages 1 and 3 (--nj 2) through cmd_backend=slurm.

Skipped, loudly and with the captured error, only when the packages cannot be installed
or the daemons cannot start in this sandbox. The daemons are stopped at the end.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from espnet_avsr.dataprep.accounting import account_recipe
from espnet_avsr.common.kaldi_dir import read_kv
from test_dataprep_fixtures import SESSION, make_corpus

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs2" / "misp_avsr" / "avsr1"
SETUP = ROOT / "tools" / "slurm" / "setup_single_node.sh"
STOP = ROOT / "tools" / "slurm" / "stop_single_node.sh"
SESSION2 = "R02_S016017_C03_I1"


@pytest.fixture(scope="module")
def slurm():
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("SLURM NOT TESTED: no apt-get and no slurm-wlm on this host")
    was_running = subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0
    r = subprocess.run(["bash", str(SETUP), "--timeout", "90"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        msg = f"SLURM NOT TESTED: setup_single_node.sh failed (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
        print(msg, file=sys.stderr)
        subprocess.run(["bash", str(STOP)], capture_output=True)
        pytest.skip(msg)
    yield
    if not was_running:
        subprocess.run(["bash", str(STOP)], capture_output=True, timeout=60)


def _sh(cmd: str, cwd: Path, timeout: int = 300, **env) -> subprocess.CompletedProcess:
    e = dict(os.environ, **env)
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=e)


def test_sinfo_shows_one_idle_node(slurm):
    r = subprocess.run(["sinfo", "-h", "-o", "%D %t %c"], capture_output=True, text=True)
    nodes, state, cpus = r.stdout.split()
    assert nodes == "1" and state in ("idle", "mix", "alloc") and int(cpus) == os.cpu_count()


def test_run_slurm_job_array_runs_every_task(slurm, tmp_path):
    launcher = RECIPE / "utils" / "run_slurm.sh"
    # a script, not an inline line: the launcher replaces the token JOB everywhere, even in $SLURM_JOB_ID
    (tmp_path / "task.sh").write_text('echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $1" > "out.$1"\n')
    r = _sh(f"{launcher} --mem 200M JOB=1:3 log/t.JOB.log bash task.sh JOB", tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [(tmp_path / f"out.{j}").read_text().split() for j in (1, 2, 3)]
    assert len({row[0] for row in rows}) == 1  # one array job
    assert [row[1:] for row in rows] == [["1", "1"], ["2", "2"], ["3", "3"]]  # task id == JOB
    assert "Submitted batch job" in (tmp_path / "log" / "q" / "t.submit").read_text()
    for j in (1, 2, 3):
        assert "Ended (code 0)" in (tmp_path / "log" / f"t.{j}.log").read_text()
    # a failing task fails the launcher and names its log
    r = _sh(f"{launcher} JOB=1:2 log/f.JOB.log 'test JOB = 1'", tmp_path)
    assert r.returncode == 1 and "log/f.2.log" in r.stderr and "log/f.1.log" not in r.stderr


def test_recipe_data_stages_through_slurm(slurm, tmp_path):
    corpus = tmp_path / "corpus"
    for s in (SESSION, SESSION2):
        make_corpus(corpus, "train", session=s, with_middle=False, with_near=False)
    work = tmp_path / "work"
    r = _sh(
        f"./avsr.sh --stage 1 --stop_stage 3 --cmd_backend slurm --nj 2 --misp_root {corpus} "
        f"--train_set train_far --valid_set train_far --test_sets train_far --frontend none "
        f"--speed_perturb_factors '' --data_dir {work}/data --dumpdir {work}/dump --expdir {work}/exp",
        RECIPE, timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    roi = work / "dump" / "roi" / "train_far"
    submit = (roi / "log" / "q" / "extract_lip_roi.submit").read_text()
    assert "--array=1-2" in submit and "Submitted batch job" in submit
    for j in (1, 2):
        assert "Ended (code 0)" in (roi / "log" / f"extract_lip_roi.{j}.log").read_text()
    utts = read_kv(work / "data" / "train_far" / "text")
    assert len(utts) == 8 and set(read_kv(roi / "roi.scp")) == set(utts)
    rep = json.loads((roi / "roi_report.json").read_text())
    assert rep["num_utts"] == 8  # the merged report of both array tasks
    acc = account_recipe(work)
    assert acc.ok, acc.table()
