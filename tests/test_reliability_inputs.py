"""Inputs are checked, not used as given: frame rate, box scale, splits, one text normaliser."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import read_kv
from espnet_avsr.dataprep.lip_roi import RoiConfig, extract_lip_roi
from espnet_avsr.dataprep.prepare import prepare_misp_data
from espnet_avsr.dataprep.token_list import read_texts
from espnet_avsr.common.textnorm import normalize_text
from test_dataprep_fixtures import FAR_LIP, H, SESSION, W, make_corpus, write_detection, write_textgrid

FAR_MP4 = f"video/dev/far/{SESSION}_Far.mp4"
FAR_JSON = f"detection/dev/far/{SESSION}_Far.json"


@pytest.fixture
def prepared(tmp_path):
    root = make_corpus(tmp_path / "c", "dev", with_middle=False, with_near=False)
    data = tmp_path / "dev_far"
    prepare_misp_data(root, "dev", "far", data)
    return root, data


def _write_30fps(path: Path, n_frames: int) -> None:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (W, H))
    for i in range(n_frames):
        vw.write(np.full((H, W, 3), 100 + i % 50, np.uint8))
    vw.release()


def test_video_at_30_fps_is_refused_naming_the_file(prepared, tmp_path):
    root, data = prepared
    _write_30fps(root / FAR_MP4, 180)
    with pytest.raises(DataPrepError, match="30.00 fps, expected 25") as e:
        extract_lip_roi(data, tmp_path / "roi")
    assert e.value.path == str((root / FAR_MP4).resolve())
    rep = extract_lip_roi(data, tmp_path / "roi2", RoiConfig(skip_bad_videos=True))  # or skipped, with the reason
    assert rep["num_utts"] == 0 and all("30.00 fps" in r for r in rep["skipped"].values())


@pytest.mark.parametrize("scale,words", [(2.0, "reach beyond the video's 160x120 frame"),
                                         (0.5, "top-left quarter of the video's 160x120 frame")])
def test_boxes_for_another_frame_size_are_refused(prepared, tmp_path, scale, words):
    root, data = prepared
    js = root / FAR_JSON
    frames = json.loads(js.read_text(encoding="utf-8"))
    for entries in frames.values():
        for e in entries:
            e["lip"] = [v * scale for v in e["lip"]]
    js.write_text(json.dumps(frames), encoding="utf-8")
    with pytest.raises(DataPrepError, match=words) as e:
        extract_lip_roi(data, tmp_path / "roi")
    assert e.value.path == str(js.resolve())
    rep = extract_lip_roi(data, tmp_path / "roi2", RoiConfig(skip_bad_videos=True))  # or that video skipped
    assert rep["num_utts"] == 0 and rep["counts"]["bad_video"] == 4


def test_boxes_in_the_frame_pass(prepared, tmp_path):
    _, data = prepared
    assert extract_lip_roi(data, tmp_path / "roi")["num_utts"] == 4


def test_session_in_two_splits_is_refused(tmp_path):
    root = make_corpus(tmp_path / "c", "train", with_middle=False, with_near=False)
    make_corpus(root, "eval", with_middle=False, with_near=False)  # the same session again
    with pytest.raises(DataPrepError, match=f"session {SESSION} is in set eval and in set train") as e:
        prepare_misp_data(root, "train", "far", tmp_path / "train_far")
    assert e.value.path.endswith(f"eval/{SESSION}_Near_016.TextGrid")


def test_training_text_is_in_the_scoring_alphabet(tmp_path):
    root = make_corpus(tmp_path / "c", "dev", with_middle=False, with_near=False)
    write_textgrid(root / "transcription" / "dev" / f"{SESSION}_Near_016.TextGrid",
                   [(0.52, 1.72, "ＴＶ打开，ＯＫ？"), (2.0, 3.0, "Wi-Fi 密码 ABC１２３")])
    prepare_misp_data(root, "dev", "far", tmp_path / "d")
    text = read_kv(tmp_path / "d" / "text")
    assert sorted(v for k, v in text.items() if k.startswith("S016")) == ["tv打开ok", "wifi密码abc123"]
    for line in read_texts(tmp_path / "d" / "text"):  # what the token list reads
        assert normalize_text(line) == line  # scoring would not change a training transcript


def test_video_at_30_fps_mapped_by_time_when_asked(prepared, tmp_path):
    """--video_fps_policy map: 40 ms frame k shows source frame round(1.2 k), and its detections."""
    root, data = prepared
    n_src = 180  # 6 s at 30 fps; source frame j is uniformly grey at level 20 + j
    vw = cv2.VideoWriter(str(root / FAR_MP4), cv2.VideoWriter_fourcc(*"mp4v"), 30, (W, H))
    for j in range(n_src):
        vw.write(np.full((H, W, 3), 20 + j, np.uint8))
    vw.release()
    # detection frames are source frames: speaker 017's lips are found from 4.0 s (source frame 120) on
    write_detection(root / FAR_JSON, FAR_LIP, n_src, missing={"017": range(0, 120)})
    rep = extract_lip_roi(data, tmp_path / "roi", RoiConfig(fps_policy="map"))
    assert rep["counts"]["videos_fps_mapped"] == 1
    u = "S017_R01_S016017_C02_I1_000332-000480"  # 40 ms frames 83..119 -> source frames 100..143
    assert read_kv(tmp_path / "roi" / "roi_detect_ratio")[u] == f"{20 / 37:.4f}"  # k = 100..119 (>= 4.0 s)
    roi = np.load(read_kv(tmp_path / "roi" / "roi.scp")[u])
    assert roi.shape[0] == 37
    want = 20 + np.floor((83 + np.arange(37)) * 1.2 + 0.5)
    np.testing.assert_allclose(roi.reshape(37, -1).mean(1), want, atol=3)
