"""Atomic writes: a killed job leaves either the old file or the complete new one.

Outputs are written to a hidden temporary name in the same directory and renamed into
place, so resumable stages (data prep, the corpus generator) can trust that any file
under its final name is whole. The one home of that mechanism.
"""
import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np
import soundfile as sf

PathLike = Union[str, Path]


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Write a JSON report atomically (UTF-8, keys sorted, readable)."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: PathLike, array: np.ndarray) -> None:
    """Save one array as .npy atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def atomic_write_wav(path: PathLike, data: np.ndarray, rate: int, subtype: str = "PCM_16") -> int:
    """Write a wav atomically; float input is clipped to [-1, 1] first.

    Returns the number of clipped samples so callers can report them.
    """
    n_clipped = 0
    if np.issubdtype(data.dtype, np.floating):
        n_clipped = int(np.count_nonzero(np.abs(data) > 1.0))
        data = np.clip(data, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, rate, subtype=subtype, format="WAV")
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
