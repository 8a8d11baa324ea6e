"""Check that dumped audio and lip ROIs agree in length (DESIGN §3).

Per utterance, `num_samples / 640` (40 ms frames) is compared to the ROI's T;
anything off by more than the tolerance, missing on one side or with the wrong
shape/dtype is an outlier. A zero-length ROI is `make_dump --no_roi mark`'s
"no video at all" marker: counted as `video_absent`, not an outlier.
"""
from pathlib import Path
from typing import Dict, List, Union

import numpy as np

from espnet_avsr.common.timing import ROI_SIZE, SAMPLES_PER_FRAME
from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import read_kv

PathLike = Union[str, Path]


def check_dump(dump_dir: PathLike, tolerance: float = 1.0, roi_size: int = ROI_SIZE) -> Dict:
    """Return `{num_utts, num_checked, outliers: [{utt, reason, ...}], max_abs_diff, mean_abs_diff}`."""
    d = Path(dump_dir)
    for need in ("utt2num_samples", "roi.scp"):
        if not (d / need).is_file():
            raise DataPrepError(d / need, "file not found (check_dump needs a dump with video)")
    nsamp = read_kv(d / "utt2num_samples")
    rois = read_kv(d / "roi.scp")
    outliers: List[Dict] = []
    absent: List[str] = []
    diffs = []
    for u in sorted(set(nsamp) | set(rois)):
        if u not in rois:
            outliers.append({"utt": u, "reason": "no_roi"})
            continue
        if u not in nsamp:
            outliers.append({"utt": u, "reason": "no_audio"})
            continue
        try:
            arr = np.load(rois[u], mmap_mode="r")
        except Exception as e:  # noqa: BLE001
            outliers.append({"utt": u, "reason": f"unreadable_roi: {e}"})
            continue
        if arr.ndim != 3 or arr.shape[1:] != (roi_size, roi_size) or arr.dtype != np.uint8:
            outliers.append({"utt": u, "reason": f"bad_roi_shape {arr.shape} {arr.dtype}"})
            continue
        if arr.shape[0] == 0:
            absent.append(u)
            continue
        audio_frames = int(nsamp[u]) / SAMPLES_PER_FRAME
        diff = audio_frames - arr.shape[0]
        diffs.append(abs(diff))
        if abs(diff) > tolerance:
            outliers.append(
                {"utt": u, "reason": "length_mismatch", "audio_frames": round(audio_frames, 2), "video_frames": arr.shape[0], "diff": round(diff, 2)}
            )
    return {
        "dump": str(d),
        "num_utts": len(set(nsamp) | set(rois)),
        "num_checked": len(diffs),
        "tolerance": tolerance,
        "max_abs_diff": float(max(diffs)) if diffs else 0.0,
        "mean_abs_diff": float(np.mean(diffs)) if diffs else 0.0,
        "video_absent": len(absent),
        "video_absent_utts": absent,
        "outliers": outliers,
    }


def format_report(rep: Dict, max_rows: int = 20) -> str:
    """Human-readable summary table for the CLI."""
    lines = [
        f"dump: {rep['dump']}",
        f"{'utterances':<22}{rep['num_utts']:>10}",
        f"{'compared':<22}{rep['num_checked']:>10}",
        f"{'no video (kept)':<22}{rep.get('video_absent', 0):>10}",
        f"{'max |diff| (frames)':<22}{rep['max_abs_diff']:>10.2f}",
        f"{'mean |diff| (frames)':<22}{rep['mean_abs_diff']:>10.3f}",
        f"{'outliers':<22}{len(rep['outliers']):>10}   (tolerance {rep['tolerance']} frames)",
    ]
    if rep["outliers"]:
        lines.append(f"{'utterance':<48} {'reason':<18} {'audio':>8} {'video':>6} {'diff':>7}")
        for o in rep["outliers"][:max_rows]:
            lines.append(
                f"{o['utt']:<48} {o['reason'][:18]:<18} {o.get('audio_frames', ''):>8} {o.get('video_frames', ''):>6} {o.get('diff', ''):>7}"
            )
        if len(rep["outliers"]) > max_rows:
            lines.append(f"... and {len(rep['outliers']) - max_rows} more")
    return "\n".join(lines)
