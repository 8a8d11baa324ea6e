"""MISP lip detection JSON: loading, validation, per-speaker lip-box tracks.

Format (DESIGN §1): `{"<frame>": [{"id": spk, "x1", "y1", "x2", "y2", "lip": [lx1, ly1, lx2, ly2]}, ...]}`,
optionally nested under a top-level `"frames"` key. Structural errors are a
`DataPrepError` naming the file; unusable boxes (NaN, empty, outside the image)
are counted and treated as missing detections, then filled by linear
interpolation (held constant at the edges).
"""
import json
import math
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from espnet_avsr.common.errors import DataPrepError

PathLike = Union[str, Path]
Detections = Dict[int, List[dict]]


def load_detections(path: PathLike) -> Detections:
    """Read and validate one detection JSON; returns `{frame: [entry, ...]}`."""
    path = Path(path)
    if not path.is_file():
        raise DataPrepError(path, "detection JSON not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataPrepError(path, f"invalid JSON ({e})") from None
    if isinstance(raw, dict) and isinstance(raw.get("frames"), dict):
        raw = raw["frames"]
    if not isinstance(raw, dict):
        raise DataPrepError(path, f"expected an object mapping frame index -> detections, got {type(raw).__name__}")
    out: Detections = {}
    for key, entries in raw.items():
        try:
            frame = int(key)
        except (TypeError, ValueError):
            raise DataPrepError(path, f"frame key {key!r} is not an integer") from None
        if entries is None:
            entries = []
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list):
            raise DataPrepError(path, f"frame {key}: expected a list of detections, got {type(entries).__name__}")
        for e in entries:
            if not isinstance(e, dict):
                raise DataPrepError(path, f"frame {key}: detection is not an object: {e!r}")
            lip = e.get("lip")
            if lip is not None and (not isinstance(lip, (list, tuple)) or len(lip) != 4):
                raise DataPrepError(path, f"frame {key}: 'lip' must be [x1, y1, x2, y2], got {lip!r}")
        out[frame] = entries
    return out


def _norm_spk(x) -> str:
    s = str(x).strip()
    if s[:1] in ("S", "s"):
        s = s[1:]
    return str(int(s)) if s.isdigit() else s


def select_entry(entries: List[dict], spk: str, single_speaker: bool) -> Optional[dict]:
    """The entry of speaker `spk` (ids compared as numbers: 16 == '016' == 'S016').

    In single-speaker (middle camera) videos a lone entry is taken whatever its id.
    """
    want = _norm_spk(spk)
    for e in entries:
        if "id" in e and _norm_spk(e["id"]) == want:
            return e
    if single_speaker and len(entries) == 1:
        return entries[0]
    return None


def check_box(lip, width: int, height: int) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """`(box, None)` for a usable lip box, else `(None, reason)`."""
    if lip is None:
        return None, "no_lip_box"
    try:
        box = np.asarray([float(v) for v in lip], dtype=np.float64)
    except (TypeError, ValueError):
        return None, "nan_box"
    if not np.all(np.isfinite(box)):
        return None, "nan_box"
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        return None, "empty_box"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return None, "outside_image"
    return box, None


def lip_track(
    dets: Detections,
    spk: str,
    start: int,
    n_frames: int,
    width: int,
    height: int,
    single_speaker: bool = False,
) -> Tuple[np.ndarray, Counter]:
    """Lip boxes `(n_frames, 4)` for frames `start..start+n_frames-1`, NaN where missing.

    Returns the boxes and a Counter of why frames were missing.
    """
    boxes = np.full((n_frames, 4), np.nan)
    why: Counter = Counter()
    for i in range(n_frames):
        entries = dets.get(start + i) or []
        e = select_entry(entries, spk, single_speaker)
        if e is None:
            why["not_detected"] += 1
            continue
        box, reason = check_box(e.get("lip"), width, height)
        if box is None:
            why[reason] += 1
            continue
        boxes[i] = box
    return boxes, why


class BoxScaleError(DataPrepError):
    """Lip boxes that do not fit the video's frame size (skippable like a bad video)."""


def check_box_scale(dets: Detections, width: int, height: int, path: PathLike,
                    margin: float = 0.1, max_share: float = 0.05) -> None:
    """Refuse a detection JSON whose lip boxes were made for another frame size.

    Detectors do not report boxes far outside the image, so boxes reaching more than
    `margin` of the frame beyond it (in more than `max_share` of them) mean coordinates
    of a larger video; all boxes inside the top-left quarter mean a half-size one.
    Either would crop the wrong pixels without a word.
    """
    lips = [e.get("lip") for entries in dets.values() for e in entries if e.get("lip") is not None]
    try:
        arr = np.asarray(lips, dtype=np.float64).reshape(-1, 4)
    except (TypeError, ValueError):
        return  # non-numeric boxes are counted per frame by check_box
    arr = arr[np.all(np.isfinite(arr), axis=1)]
    n = len(arr)
    if n == 0:
        return
    x1, y1, x2, y2 = arr.T
    beyond = (x1 < -margin * width) | (y1 < -margin * height) | (x2 > (1 + margin) * width) | (y2 > (1 + margin) * height)
    size = f"the video's {width}x{height} frame"
    reach = f"x {x1.min():.0f}..{x2.max():.0f}, y {y1.min():.0f}..{y2.max():.0f}"
    if beyond.sum() > max(1, max_share * n):
        raise BoxScaleError(
            path, f"{int(beyond.sum())} of {n} lip boxes reach beyond {size} ({reach}): "
            "coordinates for another video size? Detections must be in the video's own pixels (--skip_bad_videos skips this video)"
        )
    if n >= 25 and x2.max() <= width / 2 and y2.max() <= height / 2:
        raise BoxScaleError(
            path, f"all {n} lip boxes lie in the top-left quarter of {size} ({reach}): "
            "coordinates for a half-size video? Detections must be in the video's own pixels (--skip_bad_videos skips this video)"
        )


def interpolate_boxes(boxes: np.ndarray) -> np.ndarray:
    """Fill NaN rows by linear interpolation between detected frames, held at the edges.

    Raises ValueError when no frame is detected (nothing to interpolate from).
    """
    ok = np.all(np.isfinite(boxes), axis=1)
    if not ok.any():
        raise ValueError("no detected frame to interpolate from")
    t = np.arange(len(boxes))
    out = boxes.copy()
    for c in range(boxes.shape[1]):
        out[:, c] = np.interp(t, t[ok], boxes[ok, c])  # np.interp holds the end values
    return out


def crop_square(box: np.ndarray, min_side: int) -> Tuple[int, int, int]:
    """Square crop `(x0, y0, side)` of side max(w, h, min_side) centred on the box."""
    x1, y1, x2, y2 = box
    side = int(math.ceil(max(x2 - x1, y2 - y1, min_side)))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return int(math.floor(cx - side / 2.0 + 0.5)), int(math.floor(cy - side / 2.0 + 0.5)), side
