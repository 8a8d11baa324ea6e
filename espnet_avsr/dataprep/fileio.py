"""Atomic writes: a killed job leaves either the old file or the complete new one.

Outputs are written to a temporary name in the same directory and renamed into
place, so resumable stages can trust that any file under its final name is whole.
"""
import json
import os
from pathlib import Path
from typing import Any, Union

import numpy as np
import soundfile as sf

PathLike = Union[str, Path]


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write text (UTF-8) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Write a JSON report atomically (UTF-8, keys sorted, readable)."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: PathLike, array: np.ndarray) -> None:
    """Save one array as .npy atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def atomic_write_wav(path: PathLike, data: np.ndarray, rate: int, subtype: str = "PCM_16") -> int:
    """Write a wav atomically; float input is clipped to [-1, 1] first.

    Returns the number of clipped samples so callers can report them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_clipped = 0
    if np.issubdtype(data.dtype, np.floating):
        n_clipped = int(np.count_nonzero(np.abs(data) > 1.0))
        data = np.clip(data, -1.0, 1.0)
    tmp = _tmp_name(path)
    sf.write(str(tmp), data, rate, subtype=subtype, format="WAV")
    os.replace(tmp, path)
    return n_clipped


def npy_is_complete(path: PathLike, expected_shape: tuple = None) -> bool:
    """True when a .npy file exists, parses and (optionally) has the given shape."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r")
        if expected_shape is not None and tuple(arr.shape) != tuple(expected_shape):
            return False
        # Touch the last element: a truncated file fails here.
        if arr.size:
            _ = arr.reshape(-1)[-1]
        return True
    except Exception:  # noqa: BLE001 - any failure means "redo it"
        return False


def wav_is_complete(path: PathLike, expected_frames: int = None) -> bool:
    """True when a wav file exists, parses and (optionally) has the given length."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001
        return False
    return expected_frames is None or info.frames == expected_frames
