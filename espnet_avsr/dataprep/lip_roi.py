"""Lip ROI extraction: MP4 + detection JSON -> per-utterance `(T, 96, 96)` uint8 `.npy`.

Each video is decoded once, sequentially, for all of its utterances (frames no
utterance needs are only grabbed, not converted). Per utterance the speaker's
lip boxes are interpolated over missing frames; utterances with too few real
detections are skipped and counted. Outputs are written atomically and
complete ones are kept on rerun.
"""
import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

import cv2
import numpy as np
from tqdm import tqdm

from espnet_avsr.dataprep.detection import (
    BoxScaleError,
    check_box_scale,
    crop_square,
    interpolate_boxes,
    lip_track,
    load_detections,
)
from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.fileio import atomic_save_npy, atomic_write_json, npy_is_complete
from espnet_avsr.common.kaldi_dir import load_dir, parse_segments, write_kv
from espnet_avsr.common.timing import ROI_SIZE, VIDEO_FPS
from espnet_avsr.dataprep.transcripts import snap_frame

PathLike = Union[str, Path]
FPS_POLICIES = ("refuse", "map")


@dataclass
class RoiConfig:
    """Extraction knobs; defaults follow the MISP baselines."""

    roi_size: int = ROI_SIZE
    min_detect_ratio: float = 0.5
    pad_mode: str = "edge"  # or "zero"
    skip_bad_videos: bool = False
    max_tail_pad: int = 2  # frames an utterance may run past the video end (held)
    fps_policy: str = "refuse"  # video not at 25 fps: "refuse", or "map" 40 ms frames to source frames by time

    def __post_init__(self):
        if self.pad_mode not in ("edge", "zero"):
            raise ValueError(f"pad_mode must be 'edge' or 'zero', got {self.pad_mode!r}")
        if self.fps_policy not in FPS_POLICIES:
            raise ValueError(f"fps_policy must be one of {FPS_POLICIES}, got {self.fps_policy!r}")


@dataclass
class UttJob:
    """One utterance to crop from a video."""

    utt: str
    spk: str
    start: int
    n_frames: int
    out: Path
    boxes: Optional[np.ndarray] = None
    buf: Optional[np.ndarray] = None
    filled: int = 0
    ratio: float = 0.0
    missing_why: Counter = field(default_factory=Counter)


def crop_roi(frame: np.ndarray, box: np.ndarray, roi_size: int = ROI_SIZE, pad_mode: str = "edge") -> np.ndarray:
    """Grey `(roi_size, roi_size)` uint8 crop of a BGR (or grey) frame around a lip box.

    The square has side max(w, h, roi_size); parts outside the image are filled
    by replicating the border (`edge`) or with zeros (`zero`).
    """
    h, w = frame.shape[:2]
    x0, y0, side = crop_square(box, roi_size)
    x1, y1 = x0 + side, y0 + side
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if ix1 <= ix0 or iy1 <= iy0:
        patch = np.zeros((side, side) + frame.shape[2:], dtype=frame.dtype)
    else:
        patch = frame[iy0:iy1, ix0:ix1]
        pads = (iy0 - y0, y1 - iy1, ix0 - x0, x1 - ix1)
        if any(pads):
            border = cv2.BORDER_REPLICATE if pad_mode == "edge" else cv2.BORDER_CONSTANT
            patch = cv2.copyMakeBorder(patch, *pads, border, value=0)
    if patch.ndim == 3:
        patch = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    if side != roi_size:
        patch = cv2.resize(patch, (roi_size, roi_size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(patch, dtype=np.uint8)


def _open_video(path: Path, fps_policy: str = "refuse"):
    """`(capture, width, height, frame count, fps or 0 when unknown)`; other fps than 25 refused unless mapped."""
    if not path.is_file():
        raise DataPrepError(path, "video file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise DataPrepError(path, "cannot open video (corrupt or truncated MP4?)")
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = cap.get(cv2.CAP_PROP_FPS)
    if width <= 0 or height <= 0:
        cap.release()
        raise DataPrepError(path, "video has no readable frame size (corrupt?)")
    if fps and abs(fps - VIDEO_FPS) > 0.5 and fps_policy != "map":
        cap.release()
        raise DataPrepError(
            path, f"{fps:.2f} fps, expected {VIDEO_FPS}: utterances are cut at 40 ms frame numbers, so the lips "
            f"would drift from the audio; convert the video and its detection JSON to {VIDEO_FPS} fps "
            "(--skip_bad_videos skips this video; --video_fps_policy map maps frames by their time)"
        )
    return cap, width, height, count, fps if fps and fps > 0 else 0.0


def _frame_map(fps: float):
    """25 fps frame index -> source frame index, the source frame nearest in time (identity at 25 fps)."""
    if not fps or abs(fps - VIDEO_FPS) <= 0.5:
        return lambda k: k
    return lambda k: int(math.floor(k * fps / VIDEO_FPS + 0.5))


def process_video(
    mp4: Path, det_json: Path, jobs: List[UttJob], cfg: RoiConfig, vid: str, skipped: Dict[str, str], counts: Counter
) -> Dict[str, float]:
    """Extract all jobs of one video; returns `{utt: detect ratio}` of written/kept utts."""
    dets = load_detections(det_json)
    cap, width, height, n_src, fps = _open_video(mp4, cfg.fps_policy)
    src_of = _frame_map(fps)
    n_video = n_src
    if fps and abs(fps - VIDEO_FPS) > 0.5:  # mapped: detections and the frame count in 40 ms frames
        last = max(j.start + j.n_frames for j in jobs)
        dets = {k: dets.get(src_of(k), []) for k in range(last)}
        n_video = int(math.floor(n_src * VIDEO_FPS / fps + 1e-6)) if n_src > 0 else 0
        counts["videos_fps_mapped"] += 1
        logging.warning("%s: %.2f fps, mapping 40 ms frames to the source frames nearest in time", mp4, fps)
    try:
        check_box_scale(dets, width, height, det_json)
    except DataPrepError:
        cap.release()
        raise
    single = "_Middle_" in vid
    kept: Dict[str, float] = {}
    todo: List[UttJob] = []
    try:
        for job in jobs:
            boxes, why = lip_track(dets, job.spk, job.start, job.n_frames, width, height, single)
            for k, v in why.items():
                counts[f"frames_{k}"] += v
            detected = int(np.all(np.isfinite(boxes), axis=1).sum())
            job.ratio = detected / job.n_frames
            if job.ratio < cfg.min_detect_ratio or detected == 0:
                skipped[job.utt] = f"few_detections ({detected}/{job.n_frames} frames detected)"
                counts["few_detections"] += 1
                continue
            if n_video > 0 and job.start + job.n_frames > n_video + cfg.max_tail_pad:
                skipped[job.utt] = f"beyond_video_end (needs frame {job.start + job.n_frames - 1}, video has {n_video})"
                counts["beyond_video_end"] += 1
                continue
            if npy_is_complete(job.out, (job.n_frames, cfg.roi_size, cfg.roi_size)):
                counts["kept_existing"] += 1
                kept[job.utt] = job.ratio
                continue
            job.boxes = interpolate_boxes(boxes)
            todo.append(job)
        if todo:
            _decode_and_crop(cap, mp4, todo, cfg, n_src, src_of)
            for job in todo:
                kept[job.utt] = job.ratio
                counts["written"] += 1
    finally:
        cap.release()
    return kept


def _decode_and_crop(cap, mp4: Path, todo: List[UttJob], cfg: RoiConfig, n_video: int,
                     src_of: Callable[[int], int] = lambda k: k) -> None:
    """Read the video once from frame 0 and fill every job's buffer.

    `src_of` maps a 40 ms frame index to the source frame shown then (identity at
    25 fps); `n_video` counts source frames.
    """
    by_start = defaultdict(list)
    for job in todo:
        by_start[job.start].append(job)
    last = max(j.start + j.n_frames for j in todo)
    active: List[UttJob] = []
    frame = None
    pos = 0  # the source frame the decoder returns next
    have = -1  # the source frame held in `frame`
    for idx in range(last):
        for job in by_start.pop(idx, []):
            job.buf = np.empty((job.n_frames, cfg.roi_size, cfg.roi_size), dtype=np.uint8)
            active.append(job)
        if not active:
            continue
        j = src_of(idx)
        if j > have:
            while pos < j:  # frames no utterance needs are only grabbed
                if not cap.grab():
                    if pos < n_video:
                        raise DataPrepError(
                            mp4, f"decoding failed at frame {pos} (header says {n_video} frames); corrupt video")
                    break
                pos += 1
            ok, img = cap.read() if pos == j else (False, None)
            if ok:
                frame, have, pos = img, j, pos + 1
            elif frame is not None and j >= n_video - 1 and j < n_video + cfg.max_tail_pad:
                logging.debug("%s: frame %d past the end, holding the last frame", mp4, j)
            else:
                raise DataPrepError(
                    mp4, f"decoding failed at frame {j} (header says {n_video} frames); corrupt or truncated video"
                )
        for job in active:
            k = idx - job.start
            job.buf[k] = crop_roi(frame, job.boxes[k], cfg.roi_size, cfg.pad_mode)
            job.filled += 1
        for job in [jb for jb in active if jb.filled == jb.n_frames]:
            atomic_save_npy(job.out, job.buf)
            job.buf = None
            active.remove(job)


def extract_lip_roi(
    data_dir: PathLike, out: PathLike, cfg: RoiConfig = RoiConfig(), scp_dir: Optional[PathLike] = None
) -> Dict:
    """Extract ROIs for every utterance with video in a data dir.

    Writes `out/npy/<utt>.npy`, and in `scp_dir` (default `out`) `roi.scp`,
    `roi_detect_ratio` and `roi_report.json` (counts and skipped utterances with
    reasons). Bad videos raise, or with `cfg.skip_bad_videos` skip their
    utterances with the reason recorded.
    """
    data_dir, out = Path(data_dir), Path(out)
    scp_dir = Path(scp_dir) if scp_dir else out
    files = load_dir(data_dir)
    for need in ("segments", "utt2video", "video.scp", "detection.scp"):
        if need not in files:
            raise DataPrepError(data_dir / need, "file not found (needed for lip ROI extraction)")
    if "utt2speed" in files:
        raise DataPrepError(data_dir / "utt2speed", "speed-perturbed dir: extract ROIs first, then run speed_perturb --roi_scp")
    seg = parse_segments(files["segments"], data_dir / "segments")
    videos: Dict[str, List[UttJob]] = defaultdict(list)
    skipped: Dict[str, str] = {}
    counts: Counter = Counter()
    for utt in files["text"] if "text" in files else seg:
        if utt not in files["utt2video"]:
            skipped[utt] = "no_video"
            counts["no_video"] += 1
            continue
        fields = files["utt2video"][utt].split()
        if len(fields) != 2:
            raise DataPrepError(data_dir / "utt2video", f"{utt}: expected 'video_id speaker', got {fields}")
        vid, spk = fields
        _, s, e = seg[utt]
        start = snap_frame(s)
        n = snap_frame(e) - start
        if n <= 0:
            skipped[utt] = "empty_segment"
            counts["empty_segment"] += 1
            continue
        videos[vid].append(UttJob(utt, spk, start, n, out / "npy" / f"{utt}.npy"))
    ratios: Dict[str, float] = {}
    for vid in tqdm(sorted(videos), desc="lip roi", disable=None):
        if vid not in files["video.scp"]:
            raise DataPrepError(data_dir / "video.scp", f"no entry for video {vid!r}")
        if vid not in files["detection.scp"]:
            raise DataPrepError(data_dir / "detection.scp", f"no entry for video {vid!r}")
        mp4, js = Path(files["video.scp"][vid]), Path(files["detection.scp"][vid])
        try:
            ratios.update(process_video(mp4, js, videos[vid], cfg, vid, skipped, counts))
        except DataPrepError as e:
            if not cfg.skip_bad_videos or (e.path != str(mp4) and not isinstance(e, BoxScaleError)):
                raise
            logging.error("skipping %d utterances of bad video: %s", len(videos[vid]), e)
            for job in videos[vid]:
                if job.utt not in skipped:
                    skipped[job.utt] = f"bad_video: {e.problem}"
                    counts["bad_video"] += 1
                ratios.pop(job.utt, None)
    write_kv(scp_dir / "roi.scp", {u: str((out / "npy" / f"{u}.npy").resolve()) for u in ratios})
    write_kv(scp_dir / "roi_detect_ratio", {u: f"{r:.4f}" for u, r in ratios.items()})
    report = {
        "num_utts": len(ratios),
        "num_skipped": len(skipped),
        "counts": dict(sorted(counts.items())),
        "skipped": dict(sorted(skipped.items())),
    }
    atomic_write_json(scp_dir / "roi_report.json", report)
    logging.info("lip ROI %s: %d utterances, %d skipped %s", data_dir, len(ratios), len(skipped),
                 {k: v for k, v in counts.items() if not k.startswith("frames_")})
    return report
