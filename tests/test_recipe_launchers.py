"""The recipe's job launchers (utils/run_local.sh, utils/run_slurm.sh) and option parser."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"
RUN_LOCAL = RECIPE / "utils" / "run_local.sh"
RUN_SLURM = RECIPE / "utils" / "run_slurm.sh"


def _run(cmd, cwd, env=None, check=False):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=check, timeout=60)


# ----------------------------------------------------------------------------- run_local.sh
def test_local_substitutes_job_and_writes_logs(tmp_path):
    r = _run([str(RUN_LOCAL), "JOB=1:3", "log/echo.JOB.log", "echo", "task JOB", "out.JOB"], tmp_path)
    assert r.returncode == 0, r.stderr
    for j in (1, 2, 3):
        log = (tmp_path / "log" / f"echo.{j}.log").read_text()
        lines = log.splitlines()
        assert lines[0].startswith("# echo") and f"out.{j}" in lines[0]
        assert re.match(r"# Started at .+ \(task %d\)" % j, lines[1])
        assert f"task {j} out.{j}" in lines
        assert re.search(r"# Ended \(code 0\) at .+, elapsed time \d+ seconds", lines[-1])
    assert not (tmp_path / "log" / "echo.4.log").exists()


def test_local_single_string_is_a_shell_line(tmp_path):
    r = _run([str(RUN_LOCAL), "JOB=2:3", "log/p.JOB.log", "echo JOB | tr 0-9 a-j > res.JOB"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "res.2").read_text() == "c\n"
    assert (tmp_path / "res.3").read_text() == "d\n"
    assert not (tmp_path / "res.1").exists()


def test_local_without_job_range_runs_once(tmp_path):
    r = _run([str(RUN_LOCAL), "one.log", "bash", "-c", "echo single"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "single" in (tmp_path / "one.log").read_text()


def test_local_failing_job_fails_launcher_and_names_log(tmp_path):
    r = _run([str(RUN_LOCAL), "JOB=1:3", "log/f.JOB.log", "test JOB -ne 2"], tmp_path)
    assert r.returncode == 1
    assert "log/f.2.log" in r.stderr and "log/f.1.log" not in r.stderr
    assert "1 of 3 task(s) failed" in r.stderr
    assert "# Ended (code 1)" in (tmp_path / "log" / "f.2.log").read_text()
    assert "# Ended (code 0)" in (tmp_path / "log" / "f.3.log").read_text()


def test_local_max_jobs_run_bounds_parallelism(tmp_path):
    # each task records how many tasks are running when it starts
    script = (
        "touch run/JOB; ls run | wc -l > peak.JOB; sleep 0.3; rm run/JOB"
    )
    (tmp_path / "run").mkdir()
    r = _run([str(RUN_LOCAL), "--max_jobs_run", "2", "JOB=1:5", "log/m.JOB.log", script], tmp_path)
    assert r.returncode == 0, r.stderr
    peaks = [int((tmp_path / f"peak.{j}").read_text()) for j in range(1, 6)]
    assert max(peaks) <= 2
    r = _run([str(RUN_LOCAL), "--max_jobs_run", "1", "JOB=1:3", "log/s.JOB.log", script], tmp_path)
    assert r.returncode == 0, r.stderr
    assert [int((tmp_path / f"peak.{j}").read_text()) for j in range(1, 4)] == [1, 1, 1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["JOB=3:1", "log/x.JOB.log", "true"], "empty job range"),
        (["JOB=1:2", "log/x.log", "true"], "must contain JOB"),
        (["--bogus", "1", "x.log", "true"], "unknown option --bogus"),
        (["TASK=1:2", "log/x.TASK.log", "true"], "only the variable name JOB"),
        (["x.log"], "usage"),
    ],
)
def test_local_rejects_bad_calls(tmp_path, args, message):
    r = _run([str(RUN_LOCAL), *args], tmp_path)
    assert r.returncode != 0
    assert message in r.stderr


def test_local_ignores_cluster_options(tmp_path):
    r = _run(
        [str(RUN_LOCAL), "--gpu", "1", "--mem", "4G", "--time", "1:00:00", "--partition", "x",
         "JOB=1:1", "l.JOB.log", "true"],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------- run_slurm.sh
FAKE_SBATCH = r"""#!/usr/bin/env bash
# Fake sbatch for tests: records its argv, then runs the array tasks here, like --wait would.
printf '%s\n' "$@" > "${SBATCH_RECORD}"
array=""; output=""; script=""
for a in "$@"; do
    case "$a" in
        --array=*) array="${a#--array=}" ;;
        --output=*) output="${a#--output=}" ;;
        --*) ;;
        *) script="$a" ;;
    esac
done
range="${array%%%*}"; first="${range%-*}"; last="${range#*-}"
rc=0
for ((i = first; i <= last; i++)); do
    out="${output//%a/$i}"
    SLURM_ARRAY_TASK_ID=$i SLURM_JOB_ID=42 bash "${script}" > "${out}" 2>&1 || rc=1
done
echo "Submitted batch job 42"
exit $rc
"""


@pytest.fixture
def fake_slurm(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    sb = bindir / "sbatch"
    sb.write_text(FAKE_SBATCH)
    sb.chmod(sb.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ)
    env["PATH"] = f"{bindir}:{env['PATH']}"
    env["SBATCH_RECORD"] = str(tmp_path / "sbatch_args.txt")
    env["MY_TEST_VAR"] = "from-env"
    work = tmp_path / "work"
    work.mkdir()
    return work, env, tmp_path / "sbatch_args.txt"


def test_slurm_builds_array_job_with_resources(fake_slurm):
    work, env, record = fake_slurm
    r = _run(
        [str(RUN_SLURM), "--gpu", "2", "--mem", "16G", "--time", "2:00:00", "--partition", "gpuq",
         "--num_threads", "4", "--max_jobs_run", "3",
         "JOB=1:4", "exp/log/train.JOB.log", "echo", "job JOB $MY_TEST_VAR"],
        work, env,
    )
    assert r.returncode == 0, r.stderr
    args = record.read_text().splitlines()
    assert "--wait" in args and "--export=ALL" in args
    assert "--array=1-4%3" in args
    assert "--gres=gpu:2" in args
    assert "--mem=16G" in args and "--time=2:00:00" in args and "--partition=gpuq" in args
    assert "--cpus-per-task=4" in args
    assert "--job-name=train" in args
    script = Path(args[-1])
    assert script.is_file() and script.parent == (work / "exp" / "log" / "q").resolve()
    for j in range(1, 5):
        log = (work / "exp" / "log" / f"train.{j}.log").read_text()
        # the environment reached the task; JOB was substituted; the argv stayed quoted
        assert f"job {j} $MY_TEST_VAR" in log
        assert "# Ended (code 0)" in log


def test_slurm_passes_environment_to_shell_lines(fake_slurm):
    work, env, record = fake_slurm
    r = _run([str(RUN_SLURM), "JOB=1:2", "log/e.JOB.log", "echo $MY_TEST_VAR JOB"], work, env)
    assert r.returncode == 0, r.stderr
    assert "from-env 2" in (work / "log" / "e.2.log").read_text()
    args = record.read_text().splitlines()
    assert "--array=1-2" in args
    assert not any(a.startswith("--gres") for a in args)


def test_slurm_failed_task_fails_and_is_named(fake_slurm):
    work, env, _ = fake_slurm
    r = _run([str(RUN_SLURM), "JOB=1:3", "log/f.JOB.log", "test JOB -ne 3"], work, env)
    assert r.returncode == 1
    assert "log/f.3.log (exit 1)" in r.stderr
    assert "log/f.1.log" not in r.stderr


def test_slurm_task_that_never_ran_is_a_failure(fake_slurm, tmp_path):
    work, env, _ = fake_slurm
    # an sbatch that accepts the job but runs nothing (e.g. cancelled array)
    sb = tmp_path / "bin" / "sbatch"
    sb.write_text("#!/usr/bin/env bash\nexit 0\n")
    r = _run([str(RUN_SLURM), "JOB=1:2", "log/n.JOB.log", "true"], work, env)
    assert r.returncode == 1
    assert "log/n.1.log (exit missing)" in r.stderr


# ----------------------------------------------------------------------------- parse_options.sh
def _parse(tmp_path, *args):
    script = tmp_path / "p.sh"
    script.write_text(
        "set -euo pipefail\n"
        "stage=0\nnj=4\nuse_amp=false\ntest_sets='a b'\nhelp_message='usage: p.sh'\n"
        f". {shlex.quote(str(RECIPE / 'utils' / 'parse_options.sh'))}\n"
        'echo "stage=$stage nj=$nj use_amp=$use_amp test_sets=$test_sets rest=$*"\n'
    )
    return _run(["bash", str(script), *args], tmp_path)


def test_parse_options_sets_variables(tmp_path):
    r = _parse(tmp_path, "--stage", "3", "--nj=8", "--use-amp", "true", "--test_sets", "x y z", "pos1", "--notparsed")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stage=3 nj=8 use_amp=true test_sets=x y z rest=pos1 --notparsed"


def test_parse_options_double_dash_ends_options(tmp_path):
    r = _parse(tmp_path, "--stage", "1", "--", "--nj", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stage=1 nj=4 use_amp=false test_sets=a b rest=--nj 2"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stagee", "3"], "unknown option --stagee"),
        (["--use_amp", "yes"], "takes true or false"),
        (["--nj"], "needs a value"),
    ],
)
def test_parse_options_errors(tmp_path, args, message):
    r = _parse(tmp_path, *args)
    assert r.returncode == 1
    assert message in r.stderr


def test_parse_options_help(tmp_path):
    r = _parse(tmp_path, "--help")
    assert r.returncode == 0 and r.stdout.strip() == "usage: p.sh"
