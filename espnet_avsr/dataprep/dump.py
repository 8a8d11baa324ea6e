"""Dump per-utterance 16 kHz wavs from a data dir (DESIGN §3).

Only the needed sample range of each recording is read (one open file per
recording). Speed factors from `utt2speed` are applied here. With a ROI list,
what happens to an utterance without a ROI (the face detector found too little)
is the `no_roi` policy:

* `drop` (training): dropped, counted `no_roi`, so training sees aligned pairs.
* `mark` (validation / evaluation): kept; roi.scp points it at one shared
  zero-length ROI `OUT/no_video.npy` (uint8 `(0, H, W)`) and roi_detect_ratio
  says 0. The collate turns that into a video with every frame missing, so the
  utterance is decoded (and scored) as "video entirely missing".
* `omit`: kept with no roi.scp entry (audio-only use of the dump; an AV loader
  that reads roi.scp then fails on the missing key).
"""
import logging
from collections import Counter, OrderedDict, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import soundfile as sf
from tqdm import tqdm

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.fileio import atomic_save_npy, atomic_write_json, atomic_write_wav, wav_is_complete
from espnet_avsr.common.kaldi_dir import load_dir, parse_segments, read_kv, utt2spk_to_spk2utt, write_kv
from espnet_avsr.common.timing import ROI_SIZE, SAMPLE_RATE, SAMPLES_PER_FRAME
from espnet_avsr.dataprep.speed import change_speed, perturbed_length

PathLike = Union[str, Path]
NO_ROI_POLICIES = ("drop", "mark", "omit")
ABSENT_VIDEO_NAME = "no_video.npy"


def write_absent_video_marker(out: Path, rois: Dict[str, str]) -> str:
    """The shared zero-length ROI of `mark`, as wide as the set's real ROIs (96 if none)."""
    side: Tuple[int, ...] = (ROI_SIZE, ROI_SIZE)
    first = next(iter(rois.values()), None)
    if first is not None:
        try:
            side = tuple(np.load(first, mmap_mode="r").shape[1:3])
        except Exception as e:  # noqa: BLE001
            raise DataPrepError(first, f"cannot read ROI ({e})") from None
    target = out / ABSENT_VIDEO_NAME
    atomic_save_npy(target, np.zeros((0, *side), dtype=np.uint8))
    return str(target.resolve())


def make_dump(
    data_dir: PathLike,
    out: PathLike,
    roi_scp: Optional[PathLike] = None,
    roi_detect_ratio: Optional[PathLike] = None,
    scp_dir: Optional[PathLike] = None,
    keep_audio_only: bool = False,
    no_roi: Optional[str] = None,
) -> Dict:
    """Write `out/wav/<utt>.wav` and, in `scp_dir` (default `out`), wav.scp,
    utt2num_samples, text, utt2spk, spk2utt (+ roi.scp, roi_detect_ratio) and
    dump_report.json. Existing wavs of the right length are kept (resumable).

    no_roi: `drop` (default), `mark` or `omit`, see the module docstring;
    keep_audio_only is the older spelling of `omit`.
    """
    if no_roi is None:
        no_roi = "omit" if keep_audio_only else "drop"
    elif keep_audio_only and no_roi != "omit":
        raise ValueError(f"keep_audio_only contradicts no_roi={no_roi!r}; pass one of them")
    if no_roi not in NO_ROI_POLICIES:
        raise ValueError(f"no_roi must be one of {NO_ROI_POLICIES}, got {no_roi!r}")
    data_dir, out = Path(data_dir), Path(out)
    scp_dir = Path(scp_dir) if scp_dir else out
    files = load_dir(data_dir)
    for need in ("text", "utt2spk", "wav.scp"):
        if need not in files:
            raise DataPrepError(data_dir / need, "file not found")
    speed = {u: float(v) for u, v in files.get("utt2speed", {}).items()}
    seg = parse_segments(files["segments"], data_dir / "segments") if "segments" in files else None
    utts = list(files["text"])
    drops: Counter = Counter()
    dropped: Dict[str, str] = {}

    rois = rratio = None
    if roi_scp is not None:
        rois = read_kv(roi_scp)
        ratio_path = Path(roi_detect_ratio) if roi_detect_ratio else Path(roi_scp).parent / "roi_detect_ratio"
        rratio = read_kv(ratio_path) if ratio_path.is_file() else {}
        if not rratio:
            logging.warning("%s: no roi_detect_ratio found; dump will lack it", ratio_path)
        for u in rois:
            if u not in files["text"]:
                drops["roi_without_audio"] += 1
                dropped[u] = "roi_without_audio"
        if no_roi == "drop":
            for u in utts:
                if u not in rois:
                    drops["no_roi"] += 1
                    dropped[u] = "no_roi"
            utts = [u for u in utts if u in rois]

    by_rec = defaultdict(list)
    for u in utts:
        if seg is not None:
            if u not in seg:
                raise DataPrepError(data_dir / "segments", f"utterance {u!r} missing")
            by_rec[seg[u][0]].append(u)
        else:
            by_rec[u].append(u)

    num_samples: "OrderedDict[str, str]" = OrderedDict()
    wavs: "OrderedDict[str, str]" = OrderedDict()
    stats = Counter()
    for rec in tqdm(sorted(by_rec), desc="dump", disable=None):
        if rec not in files["wav.scp"]:
            for u in by_rec[rec]:
                drops["recording_not_in_wav_scp"] += 1
                dropped[u] = f"recording {rec} not in wav.scp"
            continue
        path = files["wav.scp"][rec]
        if path.rstrip().endswith("|"):
            raise DataPrepError(data_dir / "wav.scp", f"{rec}: piped commands are not supported, dump needs a file")
        try:
            sfile = sf.SoundFile(path)
        except Exception as e:  # noqa: BLE001
            raise DataPrepError(path, f"cannot open audio ({e})") from None
        with sfile:
            if sfile.samplerate != SAMPLE_RATE:
                raise DataPrepError(path, f"expected {SAMPLE_RATE} Hz, got {sfile.samplerate}")
            for u in by_rec[rec]:
                if seg is not None:
                    s, e = int(round(seg[u][1] * SAMPLE_RATE)), int(round(seg[u][2] * SAMPLE_RATE))
                else:
                    s, e = 0, sfile.frames
                n = e - s
                if e > sfile.frames + SAMPLES_PER_FRAME:
                    drops["segment_beyond_audio"] += 1
                    dropped[u] = f"segment ends at sample {e}, {path} has {sfile.frames}"
                    continue
                f = speed.get(u, 1.0)
                target = out / "wav" / f"{u}.wav"
                n_out = perturbed_length(n, f)
                sfile.seek(s)
                x = sfile.read(min(e, sfile.frames) - s, dtype="float32", always_2d=True)[:, 0]
                if not np.any(x):  # digital silence: a dead channel or a broken mix, never speech
                    drops["silent_audio"] += 1
                    dropped[u] = f"all-zero audio in {path} at {s / SAMPLE_RATE:.2f}-{e / SAMPLE_RATE:.2f} s"
                    continue
                if not wav_is_complete(target, n_out):
                    if len(x) < n:  # a few samples past the end: pad with zeros
                        x = np.pad(x, (0, n - len(x)))
                    y = change_speed(x, f)
                    clipped = atomic_write_wav(target, y.astype(np.float32), SAMPLE_RATE)
                    stats["written"] += 1
                    stats["clipped_samples"] += clipped
                else:
                    stats["kept_existing"] += 1
                wavs[u] = str(target.resolve())
                num_samples[u] = str(n_out)

    kept = set(wavs)
    write_kv(scp_dir / "wav.scp", wavs)
    write_kv(scp_dir / "utt2num_samples", num_samples)
    write_kv(scp_dir / "text", {u: t for u, t in files["text"].items() if u in kept})
    u2s = {u: s for u, s in files["utt2spk"].items() if u in kept}
    write_kv(scp_dir / "utt2spk", u2s)
    write_kv(scp_dir / "spk2utt", utt2spk_to_spk2utt(u2s))
    no_video: List[str] = sorted(u for u in wavs if rois is not None and u not in rois)
    if rois is not None:
        roi_out = {u: p for u, p in rois.items() if u in kept}
        ratio_out = {u: r for u, r in rratio.items() if u in kept and u in rois}
        if no_roi == "mark" and no_video:
            marker = write_absent_video_marker(out, rois)
            roi_out.update((u, marker) for u in no_video)
            ratio_out.update((u, "0.0") for u in no_video)
        write_kv(scp_dir / "roi.scp", roi_out)
        if rratio:
            write_kv(scp_dir / "roi_detect_ratio", ratio_out)
    report = {"num_utts": len(kept), "dropped": dict(drops), "dropped_utts": dropped, **stats}
    if rois is not None:
        # kept without a ROI: `mark` -> decoded as video entirely missing; `omit` -> no roi.scp line
        report.update(no_roi_policy=no_roi, kept_without_roi=len(no_video), kept_without_roi_utts=no_video)
    atomic_write_json(scp_dir / "dump_report.json", report)
    logging.info("dumped %s -> %s: %d utterances (%d without video, %s), dropped %s", data_dir, out, len(kept),
                 len(no_video), no_roi, dict(drops))
    return report
