"""Tiny MISP-layout fixtures for the dataprep tests (and checks of the fixtures themselves).

Builders write real files: TextGrids with praatio, WAVs with soundfile, MP4s with
cv2.VideoWriter (mp4v, 25 fps) showing a dark rectangle "mouth", detection JSONs.
"""
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import soundfile as sf
from praatio.data_classes.interval_tier import IntervalTier
from praatio.data_classes.textgrid import Textgrid

SR = 16000
SESSION = "R01_S016017_C02_I1"
SPKS = ("016", "017")
DURATION = 6.0
W, H = 160, 120
# Lip box centre per speaker in the far view; middle views centre at (80, 80).
FAR_LIP = {"016": (50.0, 70.0), "017": (110.0, 70.0)}
LIP_W, LIP_H = 24.0, 12.0

# Utterance times on the 40 ms grid, so ids and frame ranges do not depend on the
# widening rule (tested on its own in test_dataprep_release_naming.py).
INTERVALS = {
    "016": [
        (0.52, 1.72, "你好，今天天气不错。"),
        (2.00, 2.02, "短"),  # too short
        (2.30, 2.90, "<NOISE>"),
        (3.10, 3.50, "呃，嗯"),  # filler only
        (3.92, 5.00, "我们 看 电视 吧!"),
    ],
    "017": [
        (1.24, 2.52, "好的"),
        (2.70, 3.00, "<DEAF>"),
        (3.32, 4.80, "换个频道？"),
        (5.00, 5.20, "。，"),  # empty after punctuation removal
    ],
}


def write_textgrid(path: Path, intervals: Sequence[Tuple[float, float, str]], tier: str = "内容层",
                   encoding: str = "utf-8", xmax: float = DURATION) -> Path:
    """Write a long-format TextGrid with praatio, then re-encode if asked (utf-16 adds a BOM)."""
    tg = Textgrid()
    tg.addTier(IntervalTier(tier, list(intervals), 0.0, xmax))
    path.parent.mkdir(parents=True, exist_ok=True)
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)
    if encoding != "utf-8":
        text = path.read_text(encoding="utf-8")
        path.write_bytes(text.encode(encoding))
    return path


def write_wav(path: Path, n_samples: int, channels_seed: int = 0) -> Path:
    rng = np.random.default_rng(channels_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.1 * rng.standard_normal(n_samples)).astype(np.float32), SR, subtype="PCM_16")
    return path


def mouth_box(centre: Tuple[float, float], frame: int) -> List[float]:
    """The lip box at a frame: the centre drifts 1 px per 10 frames to the right."""
    cx, cy = centre[0] + frame // 10, centre[1]
    return [cx - LIP_W / 2, cy - LIP_H / 2, cx + LIP_W / 2, cy + LIP_H / 2]


def write_video(path: Path, centres: Sequence[Tuple[float, float]], n_frames: int) -> Path:
    """Grey background, one dark rectangle per mouth centre, brightness ramp to tell frames apart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (W, H))
    assert vw.isOpened()
    for i in range(n_frames):
        img = np.full((H, W, 3), 180, np.uint8)
        for c in centres:
            x1, y1, x2, y2 = (int(round(v)) for v in mouth_box(c, i))
            cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (30, 30, 30), -1)
        vw.write(img)
    vw.release()
    return path


def write_detection(path: Path, spk_centres: Dict[str, Tuple[float, float]], n_frames: int,
                    missing: Optional[Dict[str, Sequence[int]]] = None, nested: bool = False) -> Path:
    missing = missing or {}
    frames = {}
    for i in range(n_frames):
        entries = []
        for spk, c in spk_centres.items():
            if i in set(missing.get(spk, ())):
                continue
            lip = mouth_box(c, i)
            entries.append({"id": spk, "x1": lip[0] - 20, "y1": lip[1] - 40, "x2": lip[2] + 20, "y2": lip[3] + 10,
                            "lip": lip})
        if entries:
            frames[str(i)] = entries
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"frames": frames} if nested else frames), encoding="utf-8")
    return path


def make_corpus(root: Path, set_name: str = "train", session: str = SESSION, far_channels: int = 2,
                with_middle: bool = True, with_near: bool = True, encodings: Optional[Dict[str, str]] = None) -> Path:
    """A one-session corpus in the MISP layout; returns root."""
    n_samp = int(DURATION * SR)
    n_frames = int(DURATION * 25)
    encodings = encodings or {}
    for spk, ivs in INTERVALS.items():
        write_textgrid(root / "transcription" / set_name / f"{session}_Near_{spk}.TextGrid", ivs,
                       encoding=encodings.get(spk, "utf-8"))
    for ch in range(1, far_channels + 1):
        write_wav(root / "audio" / set_name / "far" / f"{session}_Far_{ch}.wav", n_samp, ch)
    write_video(root / "video" / set_name / "far" / f"{session}_Far.mp4", list(FAR_LIP.values()), n_frames)
    write_detection(root / "detection" / set_name / "far" / f"{session}_Far.json", FAR_LIP, n_frames)
    if with_middle:
        for ch in (1, 2):
            write_wav(root / "audio" / set_name / "middle" / f"{session}_Middle_{ch}.wav", n_samp, 10 + ch)
        for spk in SPKS:
            stem = f"{session}_Middle_{spk}"
            write_video(root / "video" / set_name / "middle" / f"{stem}.mp4", [(80.0, 80.0)], n_frames)
            write_detection(root / "detection" / set_name / "middle" / f"{stem}.json", {spk: (80.0, 80.0)}, n_frames)
    if with_near:
        for spk in SPKS:
            write_wav(root / "audio" / set_name / "near" / f"{session}_Near_{spk}.wav", n_samp, 20 + int(spk))
    return root


def test_fixture_video_has_expected_frames(tmp_path):
    p = write_video(tmp_path / "v.mp4", [(80.0, 60.0)], 30)
    cap = cv2.VideoCapture(str(p))
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        n += 1
        assert img.shape == (H, W, 3)
    assert n == 30
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 25) < 0.01


def test_fixture_textgrid_utf16_has_bom(tmp_path):
    p = write_textgrid(tmp_path / "a.TextGrid", [(0.0, 1.0, "你好")], encoding="utf-16")
    assert p.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
