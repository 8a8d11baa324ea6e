"""Speed perturbation of a data dir, keeping the lip ROI timeline in step.

Choice (documented): like `sox speed`, a factor f changes tempo and pitch
together by resampling, so an utterance of N samples becomes ceil(N / f)
samples. The audio is resampled when it is dumped (`make_dump` reads
`utt2speed`); here we only write the data dir. The ROI sequence of T frames is
remapped by nearest frame, T_new = round(T / f), new frame i showing original
frame floor((i + 0.5) * f): no blending, so every frame stays a real image, and
audio and video keep agreeing within one 40 ms frame.
"""
import logging
import math
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.fileio import atomic_save_npy, atomic_write_json, npy_is_complete
from espnet_avsr.common.kaldi_dir import load_dir, read_kv, save_dir

PathLike = Union[str, Path]


def speed_prefix(factor: float) -> str:
    """Utterance/speaker prefix for a factor: '' for 1.0, else `sp<f>-` (e.g. sp0.9-)."""
    return "" if abs(factor - 1.0) < 1e-9 else f"sp{factor:g}-"


def speed_ratio(factor: float) -> Tuple[int, int]:
    """`(up, down)` integers with up/down = 1/factor, for polyphase resampling."""
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    fr = Fraction(factor).limit_denominator(1000)
    return fr.denominator, fr.numerator


def perturbed_length(n_samples: int, factor: float) -> int:
    """Number of samples after speed change (what `scipy.signal.resample_poly` returns)."""
    up, down = speed_ratio(factor)
    return -(-n_samples * up // down)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Speed up (f > 1) or slow down (f < 1) audio by resampling, like `sox speed f`."""
    if abs(factor - 1.0) < 1e-9:
        return x
    from scipy.signal import resample_poly

    up, down = speed_ratio(factor)
    return resample_poly(x, up, down, axis=0)


def roi_index_map(n_frames: int, factor: float) -> np.ndarray:
    """Source frame for each of the round(T / f) output frames (nearest frame)."""
    n_new = max(1, int(math.floor(n_frames / factor + 0.5)))
    idx = np.floor((np.arange(n_new) + 0.5) * factor).astype(np.int64)
    return np.clip(idx, 0, n_frames - 1)


def speed_perturb_dir(
    data_dir: PathLike,
    out: PathLike,
    factors: Sequence[float] = (0.9, 1.0, 1.1),
    roi_scp: Optional[PathLike] = None,
    roi_out: Optional[PathLike] = None,
) -> Dict:
    """Write a data dir holding every utterance once per factor (`sp<f>-` ids).

    Speakers get the same prefix (a speed-changed voice is a different voice).
    `utt2speed` records each utterance's factor for `make_dump`. With `roi_scp`,
    speed-changed ROI `.npy` files go to `roi_out` (default `out/roi`) and
    `out/roi.scp` (+ `roi_detect_ratio` when one sits beside `roi_scp`) list them.
    """
    data_dir, out = Path(data_dir), Path(out)
    files = load_dir(data_dir)
    if "utt2speed" in files:
        raise DataPrepError(data_dir / "utt2speed", "data dir is already speed-perturbed")
    for need in ("text", "utt2spk"):
        if need not in files:
            raise DataPrepError(data_dir / need, "file not found")
    if len(set(factors)) != len(factors):
        raise ValueError(f"duplicate speed factors: {list(factors)}")
    new: Dict[str, "OrderedDict[str, str]"] = {}
    for name in ("text", "utt2spk", "segments", "utt2video"):
        if name in files:
            new[name] = OrderedDict()
    new["utt2speed"] = OrderedDict()
    for f in factors:
        p = speed_prefix(f)
        for name in new:
            if name == "utt2speed":
                continue
            for u, v in files[name].items():
                new[name][p + u] = (p + v) if name == "utt2spk" else v
        for u in files["text"]:
            new["utt2speed"][p + u] = f"{f:g}"
    if "segments" not in files and "wav.scp" in files:
        new["wav.scp"] = OrderedDict((speed_prefix(f) + u, v) for f in factors for u, v in files["wav.scp"].items())
    for name in ("wav.scp", "channels.scp", "video.scp", "detection.scp"):
        if name in files and name not in new:
            new[name] = files[name]
    report = {"factors": [float(f) for f in factors], "num_utts": len(new["text"])}
    if roi_scp is not None:
        roi_scp = Path(roi_scp)
        roi_out = Path(roi_out) if roi_out else out / "roi"
        rois = read_kv(roi_scp)
        ratio_file = roi_scp.parent / "roi_detect_ratio"
        ratios = read_kv(ratio_file) if ratio_file.is_file() else {}
        new_roi, new_ratio = OrderedDict(), OrderedDict()
        n_written = 0
        for f in factors:
            p = speed_prefix(f)
            for u, path in rois.items():
                if u not in files["text"]:
                    continue
                if not p:
                    new_roi[u] = path
                else:
                    dst = roi_out / f"{p}{u}.npy"
                    if not npy_is_complete(dst):
                        try:
                            arr = np.load(path)
                        except Exception as e:  # noqa: BLE001
                            raise DataPrepError(path, f"cannot read ROI array ({e})") from None
                        atomic_save_npy(dst, arr[roi_index_map(len(arr), f)])
                        n_written += 1
                    new_roi[p + u] = str(dst.resolve())
                if u in ratios:
                    new_ratio[p + u] = ratios[u]
        new["roi.scp"] = new_roi
        if new_ratio:
            new["roi_detect_ratio"] = new_ratio
        report["num_roi"] = len(new_roi)
        report["roi_written"] = n_written
    save_dir(out, new)
    atomic_write_json(out / "speed_report.json", report)
    logging.info("speed perturbation %s -> %s: %s", data_dir, out, report)
    return report
