"""Bounded losses: a data stage that drops too much of a set stops, prints the reasons, is not marked done."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from espnet_avsr.common.fileio import atomic_write_json
from espnet_avsr.dataprep.losses import DropBoundError, check_losses, stage_losses
from test_dataprep_fixtures import make_corpus

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"
SESSIONS = {"train": "R01_S016017_C02_I1", "dev": "R02_S016017_C03_I1"}


def recipe_corpus(root: Path) -> Path:
    """Far-field train and dev, one session each (4 utterances per set); dev doubles as the test set."""
    for split, s in SESSIONS.items():
        make_corpus(root, split, session=s, with_middle=False, with_near=False)
    return root


def avsr(tmp_path: Path, misp: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = ["./avsr.sh", "--misp_root", str(misp), "--data_dir", str(tmp_path / "data"),
           "--dumpdir", str(tmp_path / "dump"), "--expdir", str(tmp_path / "exp"), "--nj", "1",
           "--frontend", "none", "--speed_perturb_factors", "", "--test_sets", "dev_far", *args]
    return subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=timeout)


def _kv(path: Path, rows) -> None:
    path.write_text("".join(f"{k} {v}\n" for k, v in rows), encoding="utf-8")


def test_check_losses_counts_reasons_and_bounds(tmp_path):
    (tmp_path / "in").mkdir()
    _kv(tmp_path / "in" / "text", [(f"u{i}", "好") for i in range(10)])
    out = tmp_path / "roi"
    atomic_write_json(out / "roi_report.json", {"skipped": {"u1": "few_detections (0/9 frames)", "u2": "no_video",
                                                            "u3": "few_detections (1/9 frames)",
                                                            "u4": "few_detections (2/9 frames)"}})
    _kv(out / "roi.scp", [(f"u{i}", f"/x/u{i}.npy") for i in (0, 4, 5, 6, 7, 8)])  # u4 kept by another part
    losses = stage_losses("roi", out, tmp_path / "in")
    assert (losses.n_in, losses.n_dropped, dict(losses.reasons)) == (
        10, 4, {"few_detections": 2, "no_video": 1, "no_reason_recorded": 1})  # u9: lost without a reason
    check_losses(losses, 0.4)  # 40 % is within a 0.4 bound
    with pytest.raises(DropBoundError, match=r"dropped 4 of 10 \(40.0 %\): few_detections=2, no_reason_recorded=1, "
                                             r"no_video=1") as e:
        check_losses(losses, 0.2, "dev_far")
    assert e.value.path == str(out / "roi_report.json")


def test_prep_bounds_data_errors_not_transcript_rules(tmp_path):
    atomic_write_json(tmp_path / "prep_report.json", {"num_intervals": 10, "dropped": {
        "noise_tag": 4, "filler_only": 2, "overlaps_previous": 1}})
    losses = stage_losses("prep", tmp_path)
    assert (losses.n_in, losses.n_dropped) == (4, 1)  # rule drops are not losses
    assert "noise_tag=4" in losses.summary()
    with pytest.raises(DropBoundError, match="overlaps_previous=1"):
        check_losses(losses, 0.2)


def _no_lip_boxes(misp: Path, split: str) -> None:
    js = misp / "detection" / split / "far" / f"{SESSIONS[split]}_Far.json"
    frames = json.loads(js.read_text(encoding="utf-8"))
    for entries in frames.values():
        for e in entries:
            e.pop("lip", None)
    js.write_text(json.dumps(frames), encoding="utf-8")


def test_stage3_stops_when_the_training_set_loses_its_rois(tmp_path):
    misp = recipe_corpus(tmp_path / "misp")
    _no_lip_boxes(misp, "train")
    r = avsr(tmp_path, misp, "--stage", "1", "--stop_stage", "5")
    assert r.returncode != 0
    assert "train_far roi: dropped 4 of 4 (100.0 %): few_detections=4" in r.stdout + r.stderr
    assert "stage 3, roi_train_far failed" in r.stderr
    assert not (tmp_path / "exp" / ".done" / "stage3" / "roi_train_far.done").exists()
    assert not (tmp_path / "dump" / "roi" / "train_far" / "roi.scp").exists()
    assert (tmp_path / "dump" / "roi" / "train_far" / "roi.scp.over_bound").exists()
    assert "=== Stage 5" not in r.stdout
    # a looser bound lets stage 3 pass; stage 5 then stops: the training dump would drop them all
    r = avsr(tmp_path, misp, "--stage", "3", "--stop_stage", "3", "--max_drop_frac", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "exp" / ".done" / "stage3" / "roi_train_far.done").exists()
    r = avsr(tmp_path, misp, "--stage", "5", "--stop_stage", "5")
    assert r.returncode != 0 and "train_far dump: dropped 4 of 4 (100.0 %): no_roi=4" in r.stdout + r.stderr
    assert "stage 5, dump_train_far failed" in r.stderr
