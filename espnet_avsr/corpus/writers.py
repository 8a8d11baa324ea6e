"""Atomic writers for the corpus files: WAV (int16), TextGrid (UTF-8/UTF-16), JSON.

Every file goes through :func:`espnet_avsr.common.fileio.atomic_path` (a hidden temp name
in its final folder, then renamed), so a killed run never leaves a half-written file under
a real name. This module only says what the corpus files hold.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence, Tuple

import numpy as np
from praatio import textgrid
from praatio.utilities.constants import Interval

from espnet_avsr.common.fileio import atomic_path, atomic_write_text, atomic_write_wav
from espnet_avsr.common.naming import TEXTGRID_TIER as TIER_NAME


def write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    """Mono int16 WAV."""
    path = Path(path)
    if x.dtype != np.int16 or x.ndim != 1:
        raise ValueError(f"{path}: expected mono int16 samples, got {x.dtype} {x.shape}")
    atomic_write_wav(path, x, sr)


def write_json(path: Path, obj: Any) -> None:
    """Compact, deterministic JSON (keys in insertion order)."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def write_textgrid(
    path: Path,
    intervals: Sequence[Tuple[float, float, str]],
    duration: float,
    encoding: str = "utf-8",
) -> None:
    """Praat TextGrid (long format) with one interval tier named 内容层.

    ``intervals`` are (start, end, text), non-overlapping; gaps become empty
    intervals. ``encoding`` is ``utf-8`` or ``utf-16`` (with BOM), both of which
    MISP ships.
    """
    path = Path(path)
    if encoding not in ("utf-8", "utf-16"):
        raise ValueError(f"{path}: unsupported TextGrid encoding {encoding!r}")
    entries = [Interval(round(s, 3), round(e, 3), t) for s, e, t in sorted(intervals)]
    tg = textgrid.Textgrid(0.0, round(duration, 3))
    tg.addTier(textgrid.IntervalTier(TIER_NAME, entries, 0.0, round(duration, 3)))
    with atomic_path(path) as tmp:
        tg.save(str(tmp), format="long_textgrid", includeBlankSpaces=True,
                minimumIntervalLength=None, reportingMode="error")
        if encoding == "utf-16":
            tmp.write_text(tmp.read_text(encoding="utf-8"), encoding="utf-16")
