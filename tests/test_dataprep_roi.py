"""Lip ROI extraction: detections, interpolation, skips, bad inputs, resumability."""
import json
from pathlib import Path

import numpy as np
import pytest

from espnet_avsr.bin import extract_lip_roi as roi_cli
from espnet_avsr.dataprep.detection import crop_square, interpolate_boxes, lip_track, load_detections
from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import read_kv
from espnet_avsr.dataprep.lip_roi import RoiConfig, crop_roi, extract_lip_roi
from espnet_avsr.dataprep.prepare import prepare_misp_data
from test_dataprep_fixtures import FAR_LIP, SESSION, make_corpus, mouth_box, write_detection

U016 = "S016_R01_S016017_C02_I1_000052-000172"  # frames 13..42 (30 frames)
U017B = "S017_R01_S016017_C02_I1_000332-000480"  # frames 83..119 (37 frames)


def _setup(tmp_path: Path, **det_kwargs):
    root = make_corpus(tmp_path / "c", "dev", with_middle=False, with_near=False)
    if det_kwargs:
        write_detection(root / "detection" / "dev" / "far" / f"{SESSION}_Far.json", FAR_LIP, 150, **det_kwargs)
    data = tmp_path / "dev_far"
    prepare_misp_data(root, "dev", "far", data)
    return root, data


def test_interpolate_boxes_values():
    nan = np.nan
    boxes = np.array([[nan] * 4, [0, 0, 10, 10], [nan] * 4, [nan] * 4, [6, 3, 16, 13], [nan] * 4])
    out = interpolate_boxes(boxes)
    np.testing.assert_allclose(out[0], [0, 0, 10, 10])  # held at the start
    np.testing.assert_allclose(out[2], [2, 1, 12, 11])
    np.testing.assert_allclose(out[3], [4, 2, 14, 12])
    np.testing.assert_allclose(out[5], [6, 3, 16, 13])  # held at the end
    with pytest.raises(ValueError):
        interpolate_boxes(np.full((3, 4), nan))


def test_crop_square_and_padding():
    assert crop_square(np.array([40.0, 40.0, 60.0, 50.0]), 96) == (2, -3, 96)
    assert crop_square(np.array([0.0, 0.0, 120.0, 30.0]), 96) == (0, -45, 120)
    frame = np.full((50, 50, 3), 200, np.uint8)
    frame[:, :25] = 10
    edge = crop_roi(frame, np.array([0.0, 0.0, 10.0, 10.0]), 96, "edge")
    zero = crop_roi(frame, np.array([0.0, 0.0, 10.0, 10.0]), 96, "zero")
    assert edge.shape == zero.shape == (96, 96) and edge.dtype == np.uint8
    assert edge[0, 0] == 10 and zero[0, 0] == 0  # the corner lies outside the image


def test_load_detections_nested_and_validation(tmp_path):
    flat = write_detection(tmp_path / "flat.json", FAR_LIP, 5)
    nested = write_detection(tmp_path / "nested.json", FAR_LIP, 5, nested=True)
    assert load_detections(flat) == load_detections(nested)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"0": [{"id": "016", "lip": [1, 2, 3]}]}))
    with pytest.raises(DataPrepError, match="lip") as e:
        load_detections(bad)
    assert str(bad) in str(e.value)
    bad.write_text(json.dumps({"zero": []}))
    with pytest.raises(DataPrepError, match="not an integer"):
        load_detections(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(DataPrepError, match="expected an object"):
        load_detections(bad)


def test_lip_track_counts_bad_boxes(tmp_path):
    p = tmp_path / "d.json"
    lip = mouth_box(FAR_LIP["016"], 0)
    p.write_text(
        '{"0": [{"id": "016", "lip": [NaN, 1, 2, 3]}], "1": [{"id": 16, "lip": [500, 500, 520, 510]}],'
        ' "2": [{"id": "S016", "lip": %s}], "3": [{"id": "017", "lip": %s}]}' % (json.dumps(lip), json.dumps(lip))
    )
    boxes, why = lip_track(load_detections(p), "016", 0, 5, 160, 120)
    assert why == {"nan_box": 1, "outside_image": 1, "not_detected": 2}
    np.testing.assert_allclose(boxes[2], lip)
    assert np.isnan(boxes[[0, 1, 3, 4]]).all()


def test_extract_far_rois_values_and_ratio(tmp_path):
    # speaker 016 misses frames 20..24 (inside U016): interpolated, ratio 25/30
    root, data = _setup(tmp_path, missing={"016": range(20, 25)}, nested=True)
    out = tmp_path / "roi"
    rep = extract_lip_roi(data, out)
    scp = read_kv(out / "roi.scp")
    assert set(scp) == set(read_kv(data / "text"))
    roi = np.load(scp[U016])
    assert roi.shape == (30, 96, 96) and roi.dtype == np.uint8
    # the mouth (dark) is centred in every frame, including interpolated ones; the background is bright
    assert (roi[:, 44:52, 40:56] < 80).all()
    assert (roi[:, 5:15, 5:15] > 150).all()
    assert float(read_kv(out / "roi_detect_ratio")[U016]) == pytest.approx(25 / 30, abs=1e-3)
    assert rep["counts"]["frames_not_detected"] == 5
    assert np.load(scp[U017B]).shape == (37, 96, 96)


def test_too_few_detections_skipped_and_counted(tmp_path):
    root, data = _setup(tmp_path, missing={"017": range(83, 110)})  # 10/37 detected
    out = tmp_path / "roi"
    rep = roi_cli.main(["--data", str(data), "--out", str(out)])
    assert rep == 0
    report = json.loads((out / "roi_report.json").read_text())
    assert report["counts"]["few_detections"] == 1
    assert report["skipped"][U017B].startswith("few_detections (10/37")
    assert U017B not in read_kv(out / "roi.scp") and len(read_kv(out / "roi.scp")) == 3
    assert not (out / "npy" / f"{U017B}.npy").exists()


def test_corrupt_mp4_error_names_file_or_skips(tmp_path):
    root, data = _setup(tmp_path)
    mp4 = Path(read_kv(data / "video.scp")[f"{SESSION}_Far"])
    raw = mp4.read_bytes()
    mp4.write_bytes(raw[: len(raw) // 2])  # truncated: the moov atom is gone
    with pytest.raises(DataPrepError) as e:
        extract_lip_roi(data, tmp_path / "roi")
    assert str(mp4) in str(e.value) and "corrupt" in str(e.value)
    rep = extract_lip_roi(data, tmp_path / "roi2", RoiConfig(skip_bad_videos=True))
    assert rep["counts"]["bad_video"] == 4 and rep["num_utts"] == 0
    assert all(v.startswith("bad_video") for v in rep["skipped"].values())


def test_missing_json_error(tmp_path):
    root, data = _setup(tmp_path)
    js = Path(read_kv(data / "detection.scp")[f"{SESSION}_Far"])
    js.unlink()
    with pytest.raises(DataPrepError, match="detection JSON not found") as e:
        extract_lip_roi(data, tmp_path / "roi", RoiConfig(skip_bad_videos=True))
    assert str(js) in str(e.value)


def test_resume_keeps_complete_and_redoes_partial(tmp_path):
    root, data = _setup(tmp_path)
    out = tmp_path / "roi"
    extract_lip_roi(data, out)
    npys = sorted((out / "npy").glob("*.npy"))
    assert len(npys) == 4
    reference = {p.name: np.load(p) for p in npys}
    old = {p.name: p.stat().st_mtime_ns for p in npys}
    rep = extract_lip_roi(data, out)
    assert rep["counts"] == {**rep["counts"], "kept_existing": 4} and "written" not in rep["counts"]
    assert {p.name: p.stat().st_mtime_ns for p in npys} == old
    # a half-written file under the final name (e.g. copied in) and a stray temp file
    victim = out / "npy" / f"{U016}.npy"
    victim.write_bytes(victim.read_bytes()[:1000])
    (out / "npy" / f".{U016}.npy.tmp999").write_bytes(b"junk")
    rep = extract_lip_roi(data, out)
    assert rep["counts"]["written"] == 1 and rep["counts"]["kept_existing"] == 3
    np.testing.assert_array_equal(np.load(victim), reference[victim.name])
