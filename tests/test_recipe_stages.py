"""Stage logic of the recipe: bounds, banners, skip-if-done markers, forced stages."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"
STAGE_LIB = RECIPE / "local" / "stage_lib.sh"

DRIVER = """set -euo pipefail
stage=$1; stop_stage=$2; force_stage=$3; marker_dir=markers
. {lib}
count() {{ echo run >> "count_$1"; touch "out_$1"; }}
half_fails() {{ false; touch out_c; }}   # set -e must stop at `false`
if stage_begin 1 "first"; then unit a out_a count a; stage_end; fi
if stage_begin 2 "second"; then unit b out_b count b; unit b2 out_b2 count b2; stage_end; fi
if stage_begin 3 "third"; then unit c out_c half_fails; stage_end; fi
echo ALL-DRIVER-DONE
"""


def _drive(tmp_path, stage, stop, force=""):
    script = tmp_path / "driver.sh"
    script.write_text(DRIVER.format(lib=shlex.quote(str(STAGE_LIB))))
    return subprocess.run(
        ["bash", str(script), str(stage), str(stop), force], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def _count(tmp_path, unit):
    f = tmp_path / f"count_{unit}"
    return len(f.read_text().split()) if f.exists() else 0


def test_stage_bounds_and_banners(tmp_path):
    r = _drive(tmp_path, 2, 2)
    assert r.returncode == 0, r.stderr
    assert "=== Stage 2: second ===" in r.stdout
    assert "Stage 1" not in r.stdout and "Stage 3" not in r.stdout
    assert "=== Stage 2 finished in" in r.stdout
    assert (_count(tmp_path, "a"), _count(tmp_path, "b"), _count(tmp_path, "b2")) == (0, 1, 1)
    times = (tmp_path / "markers" / "stage_times.tsv").read_text().splitlines()
    assert [t.split("\t")[0] for t in times] == ["2"]


def test_rerun_of_finished_stage_is_a_noop(tmp_path):
    assert _drive(tmp_path, 1, 2).returncode == 0
    assert (tmp_path / "markers" / "stage1" / "a.done").is_file()
    r = _drive(tmp_path, 1, 2)
    assert r.returncode == 0, r.stderr
    assert (_count(tmp_path, "a"), _count(tmp_path, "b"), _count(tmp_path, "b2")) == (1, 1, 1)
    assert r.stdout.count("[skip]") == 3 and "[run]" not in r.stdout


def test_missing_output_reruns_its_unit_only(tmp_path):
    assert _drive(tmp_path, 1, 2).returncode == 0
    (tmp_path / "out_b2").unlink()
    r = _drive(tmp_path, 1, 2)
    assert r.returncode == 0, r.stderr
    assert (_count(tmp_path, "a"), _count(tmp_path, "b"), _count(tmp_path, "b2")) == (1, 1, 2)


def test_force_stage_redoes_that_stage(tmp_path):
    assert _drive(tmp_path, 1, 2).returncode == 0
    r = _drive(tmp_path, 1, 2, force="2")
    assert r.returncode == 0, r.stderr
    assert "--force_stage 2" in r.stdout
    assert (_count(tmp_path, "a"), _count(tmp_path, "b"), _count(tmp_path, "b2")) == (1, 2, 2)


def test_failing_unit_stops_with_its_name_and_leaves_no_marker(tmp_path):
    r = _drive(tmp_path, 1, 3)
    assert r.returncode != 0
    assert "stage 3, c failed" in r.stderr
    assert "ALL-DRIVER-DONE" not in r.stdout
    assert not (tmp_path / "out_c").exists()  # set -e held inside the function
    assert not (tmp_path / "markers" / "stage3" / "c.done").exists()
    assert (tmp_path / "markers" / "stage2" / "b.done").exists()


# ----------------------------------------------------------------------------- avsr.sh itself
def _avsr(tmp_path, *args):
    cmd = [
        "./avsr.sh", "--data_dir", str(tmp_path / "data"), "--dumpdir", str(tmp_path / "dump"),
        "--expdir", str(tmp_path / "exp"), "--speed_perturb_factors", "", *args,
    ]
    return subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=300)


@pytest.fixture
def train_dump(tmp_path):
    d = tmp_path / "dump" / "raw" / "train_far"
    d.mkdir(parents=True)
    (d / "text").write_text("u1 你好世界\nu2 打开电视\n", encoding="utf-8")
    return d


def test_avsr_runs_only_requested_stage_and_skips_when_done(tmp_path, train_dump):
    r = _avsr(tmp_path, "--stage", "6", "--stop_stage", "6")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "=== Stage 6:" in r.stdout
    assert "=== Stage 5:" not in r.stdout and "=== Stage 7:" not in r.stdout
    tokens = tmp_path / "data" / "token_list" / "char" / "tokens.txt"
    toks = tokens.read_text(encoding="utf-8").split()
    assert toks[0] == "<blank>" and toks[-1] == "<sos/eos>"
    assert set("你好世界打开电视") <= set(toks)
    mtime = tokens.stat().st_mtime_ns
    r = _avsr(tmp_path, "--stage", "6", "--stop_stage", "6")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[skip] tokens_char" in r.stdout
    assert tokens.stat().st_mtime_ns == mtime
    r = _avsr(tmp_path, "--stage", "6", "--stop_stage", "6", "--force_stage", "6")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[run] tokens_char" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "AV0:conf/x.yaml:A9"], "refers to 'A9'"),
        (["--models", "broken"], "is not name:config:init"),
        (["--stagee", "1"], "unknown option --stagee"),
        (["--misp_root", "/nonexistent/misp"], "is not a directory"),
        (["--stage", "7", "--models", "A0:conf/no_such.yaml:-"], "conf/no_such.yaml of model A0 does not exist"),
    ],
)
def test_avsr_rejects_bad_settings(tmp_path, args, message):
    r = _avsr(tmp_path, "--stage", "99", *args)
    assert r.returncode != 0
    assert message in r.stderr


def test_avsr_names_a_malformed_model_config(tmp_path):
    """The model list's configs are read once at start: broken YAML stops the recipe naming the file."""
    bad = tmp_path / "train_avsr_broken.yaml"
    bad.write_text("encoder: av_conformer\nmodel_conf: {video_dropout: [\n", encoding="utf-8")
    r = _avsr(tmp_path, "--stage", "99", "--models", f"A0:conf/train_asr.yaml:- AV0:{bad}:A0")
    assert r.returncode != 0
    assert f"model AV0 ('AV0:{bad}:A0'): {bad}: not a readable YAML config" in r.stderr
    assert "cannot use the model list" in r.stderr
    listed = tmp_path / "train_avsr_list.yaml"
    listed.write_text("- encoder\n", encoding="utf-8")
    r = _avsr(tmp_path, "--stage", "99", "--models", f"AV0:{listed}:-")
    assert r.returncode != 0 and f"{listed}: a config must be a YAML mapping, got list" in r.stderr
