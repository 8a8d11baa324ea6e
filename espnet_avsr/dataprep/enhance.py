"""Far/middle-field front-end: WPE dereverberation then beamforming, streamed.

Sessions are processed in overlapping blocks read with soundfile, so memory is
bounded by block length x channels, not by session length. Each block is
dereverberated (nara_wpe, STFT 512/128) and beamformed to one channel; blocks
are joined by a linear cross-fade over their overlap. Outputs are written to a
temporary file and renamed, and finished recordings are skipped on rerun.
"""
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf
from nara_wpe.utils import istft, stft
from nara_wpe.wpe import wpe_v6
from tqdm import tqdm

from espnet_avsr.dataprep.beamform import delay_and_sum, gcc_phat_delays, low_energy_frames, mvdr_souden
from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.fileio import atomic_write_json, wav_is_complete
from espnet_avsr.common.timing import SAMPLE_RATE
from espnet_avsr.common.kaldi_dir import copy_dir_files, load_dir, parse_segments, split_paths, write_kv

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional; only speed is affected
    threadpool_limits = None

PathLike = Union[str, Path]
METHODS = ("wpe_ds", "wpe_mvdr", "ds", "mvdr", "first_channel")
MAX_LENGTH_MISMATCH = SAMPLE_RATE // 2  # channels of one array may differ by < 0.5 s (trimmed ends)


@dataclass
class FrontendConfig:
    """Knobs of the front-end; defaults follow the MISP baselines."""

    method: str = "wpe_ds"
    n_fft: int = 512
    shift: int = 128
    taps: int = 10
    delay: int = 3
    iterations: int = 5
    block_s: float = 30.0
    overlap_s: float = 2.0
    max_delay_ms: float = 2.0
    mvdr_activity: str = "energy"  # or "oracle" (speech = inside `segments`)
    noise_quantile: float = 0.2

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.mvdr_activity not in ("energy", "oracle"):
            raise ValueError(f"mvdr_activity must be 'energy' or 'oracle', got {self.mvdr_activity!r}")
        if self.overlap_s * 2 > self.block_s:
            raise ValueError("block_s must be at least twice overlap_s")


def wpe_dereverb(X: np.ndarray, taps: int, delay: int, iterations: int) -> np.ndarray:
    """nara_wpe WPE on a `(D, T, F)` STFT, one frequency at a time.

    Looping over contiguous per-bin `(D, T)` slices keeps memory at one bin's
    statistics and lets BLAS see contiguous operands (nara_wpe's batched
    `wpe_v8` on a transposed view was several times slower here).
    """
    out = np.empty_like(X)
    with _single_thread_blas():
        for f in range(X.shape[2]):
            out[:, :, f] = wpe_v6(
                np.ascontiguousarray(X[:, :, f]), taps=taps, delay=delay, iterations=iterations, statistics_mode="full"
            )
    return out


def _single_thread_blas():
    """Tiny per-bin matrices: multi-threaded BLAS only adds contention (10x slower on 2 busy cores)."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def process_block(
    x: np.ndarray, cfg: FrontendConfig, sr: int = SAMPLE_RATE, activity: Optional[np.ndarray] = None
) -> np.ndarray:
    """Enhance one block `(D, N)` float -> `(N,)`.

    activity: optional boolean per-sample speech activity `(N,)` for oracle MVDR.
    """
    D, N = x.shape
    if cfg.method == "first_channel" or D == 1 and cfg.method in ("ds", "mvdr"):
        return x[0].copy()
    X = stft(x, size=cfg.n_fft, shift=cfg.shift)  # (D, T, F)
    if cfg.method.startswith("wpe"):
        Y = wpe_dereverb(X, cfg.taps, cfg.delay, cfg.iterations)
    else:
        Y = X
    if D == 1:
        Z = Y[0]
    elif cfg.method.endswith("ds"):
        delays = gcc_phat_delays(Y, cfg.n_fft, max_delay=cfg.max_delay_ms * sr / 1000.0)
        Z = delay_and_sum(Y, delays, cfg.n_fft)
    else:
        noise = None
        if activity is not None and cfg.mvdr_activity == "oracle":
            noise = ~_frame_activity(activity, Y.shape[1], cfg)
            if noise.sum() < 10 or (~noise).sum() < 10:
                noise = None
        if noise is None:
            noise = low_energy_frames(Y, cfg.noise_quantile)
        Z = mvdr_souden(Y, noise)
    z = istft(Z, size=cfg.n_fft, shift=cfg.shift)
    if len(z) < N:
        z = np.pad(z, (0, N - len(z)))
    return z[:N]


def _frame_activity(activity: np.ndarray, n_frames: int, cfg: FrontendConfig) -> np.ndarray:
    """Per-STFT-frame activity from per-sample activity (frame centre; nara_wpe fading pads size-shift)."""
    pad = cfg.n_fft - cfg.shift
    centres = np.arange(n_frames) * cfg.shift + cfg.n_fft // 2 - pad
    centres = np.clip(centres, 0, len(activity) - 1)
    return activity[centres]


def block_bounds(n_samples: int, block: int, overlap: int) -> List[Tuple[int, int]]:
    """Block `[start, end)` list covering n_samples with the given overlap."""
    if n_samples <= block:
        return [(0, n_samples)]
    hop = block - overlap
    bounds = []
    s = 0
    while s + block < n_samples:
        bounds.append((s, s + block))
        s += hop
    bounds.append((s, n_samples))
    return bounds


def stream_enhance(
    read: Callable[[int, int], np.ndarray],
    n_samples: int,
    cfg: FrontendConfig,
    sr: int = SAMPLE_RATE,
    activity: Optional[Callable[[int, int], np.ndarray]] = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive enhanced chunks; `read(s, e)` returns `(D, e-s)` float.

    Overlapping blocks are cross-faded linearly, so the output is continuous and
    its length equals n_samples.
    """
    block = int(round(cfg.block_s * sr))
    overlap = int(round(cfg.overlap_s * sr))
    bounds = block_bounds(n_samples, block, overlap)
    fade_in = (np.arange(overlap) + 0.5) / max(overlap, 1)
    pending: Optional[np.ndarray] = None
    for i, (s, e) in enumerate(bounds):
        act = activity(s, e) if activity is not None else None
        y = process_block(read(s, e), cfg, sr, act)
        if pending is not None:
            y[:overlap] = pending + y[:overlap] * fade_in
        if i + 1 < len(bounds):
            nxt = bounds[i + 1][0] - s
            yield y[:nxt]
            pending = y[nxt : nxt + overlap] * (1.0 - fade_in)
        else:
            yield y


class ArrayReader:
    """Reads sample ranges of several single-channel files as one `(D, n)` array."""

    def __init__(self, paths: Sequence[PathLike]):
        self.paths = [Path(p) for p in paths]
        self.files = []
        for p in self.paths:
            if not p.is_file():
                self.close()
                raise DataPrepError(p, "audio file not found")
            try:
                self.files.append(sf.SoundFile(str(p)))
            except Exception as e:  # noqa: BLE001
                self.close()
                raise DataPrepError(p, f"cannot open audio ({e})") from None
        rates = {f.samplerate for f in self.files}
        if rates != {SAMPLE_RATE}:
            bad = next(p for p, f in zip(self.paths, self.files) if f.samplerate != SAMPLE_RATE)
            self.close()
            raise DataPrepError(bad, f"expected {SAMPLE_RATE} Hz audio, got rates {sorted(rates)}")
        lengths = [f.frames for f in self.files]
        self.n_samples = min(lengths)
        if max(lengths) - self.n_samples > MAX_LENGTH_MISMATCH:
            short = self.paths[lengths.index(self.n_samples)]
            self.close()
            raise DataPrepError(
                short, f"array channels differ in length by more than {MAX_LENGTH_MISMATCH} samples: {lengths} "
                f"(truncated channel?)"
            )
        if max(lengths) != self.n_samples:
            logging.warning("%s: channel lengths differ %s; using the shortest", self.paths[0], lengths)

    def read(self, start: int, end: int) -> np.ndarray:
        out = np.empty((len(self.files), end - start), dtype=np.float64)
        for d, f in enumerate(self.files):
            f.seek(start)
            chunk = f.read(end - start, dtype="float64", always_2d=True)
            if chunk.shape[0] != end - start:
                raise DataPrepError(self.paths[d], f"short read at samples {start}-{end}")
            out[d] = chunk[:, 0]
        return out

    def close(self) -> None:
        for f in self.files:
            f.close()


def enhance_recording(
    channel_paths: Sequence[PathLike],
    out_path: PathLike,
    cfg: FrontendConfig,
    segments: Sequence[Tuple[float, float]] = (),
) -> Dict:
    """Enhance one recording into a 16 kHz mono PCM_16 wav (atomic); returns stats."""
    out_path = Path(out_path)
    reader = ArrayReader(channel_paths)
    try:
        n = reader.n_samples
        activity_fn = None
        if cfg.mvdr_activity == "oracle" and segments:
            act = np.zeros(n, dtype=bool)
            for s, e in segments:
                act[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)] = True
            activity_fn = lambda s, e: act[s:e]  # noqa: E731
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(f".{out_path.name}.tmp{os.getpid()}")
        clipped = 0
        written = 0
        with sf.SoundFile(str(tmp), "w", SAMPLE_RATE, 1, subtype="PCM_16", format="WAV") as fout:
            for chunk in stream_enhance(reader.read, n, cfg, SAMPLE_RATE, activity_fn):
                clipped += int(np.count_nonzero(np.abs(chunk) > 1.0))
                fout.write(np.clip(chunk, -1.0, 1.0))
                written += len(chunk)
        os.replace(tmp, out_path)
    finally:
        reader.close()
    if clipped:
        logging.warning("%s: %d samples clipped", out_path, clipped)
    return {"samples": written, "clipped": clipped, "channels": len(channel_paths)}


def enhance_data_dir(
    data_dir: PathLike, out: PathLike, cfg: FrontendConfig, out_data: Optional[PathLike] = None
) -> Dict:
    """Enhance every recording of a data dir into `out/<rec>.wav`; write a data dir
    (`out_data`, default `out/data`) whose wav.scp points at them.

    Recordings with one channel only (near field) are passed through unchanged.
    Finished outputs (right length) are skipped, so a killed run resumes.
    """
    data_dir, out = Path(data_dir), Path(out)
    out_data = Path(out_data) if out_data else out / "data"
    files = load_dir(data_dir)
    if "wav.scp" not in files:
        raise DataPrepError(data_dir / "wav.scp", "file not found")
    chans = {r: split_paths(v) for r, v in files.get("channels.scp", {}).items()}
    seg_by_rec: Dict[str, List[Tuple[float, float]]] = {}
    if "segments" in files:
        for rec, s, e in parse_segments(files["segments"], data_dir / "segments").values():
            seg_by_rec.setdefault(rec, []).append((s, e))
    new_wav = {}
    stats = {"done": 0, "skipped_existing": 0, "passthrough": 0, "clipped_samples": 0, "audio_seconds": 0.0}
    for rec, wav in tqdm(list(files["wav.scp"].items()), desc="enhance", disable=None):
        paths = chans.get(rec, [wav])
        if len(paths) == 1 and cfg.method != "first_channel":
            new_wav[rec] = wav
            stats["passthrough"] += 1
            continue
        target = out / f"{rec}.wav"
        probe = ArrayReader(paths)
        n = probe.n_samples
        probe.close()
        new_wav[rec] = str(target.resolve())
        if wav_is_complete(target, n):
            stats["skipped_existing"] += 1
            logging.info("%s: already enhanced, skipping", target)
            continue
        res = enhance_recording(paths, target, cfg, seg_by_rec.get(rec, ()))
        stats["done"] += 1
        stats["clipped_samples"] += res["clipped"]
        stats["audio_seconds"] += res["samples"] / SAMPLE_RATE
    copy_dir_files(data_dir, out_data, skip=("wav.scp",))
    write_kv(out_data / "wav.scp", new_wav)
    atomic_write_json(out_data / "enhance_report.json", {"method": cfg.method, **stats})
    logging.info("enhanced %s -> %s: %s", data_dir, out_data, stats)
    return stats
