"""Zero-shot noise: mix babble (or a noise recording) into a dump at a set SNR.

The paper's robustness test adds babble the models never saw in training. To make the
test repeatable across models, every utterance's noise is drawn from a generator seeded by
``(seed, utt_id)``, so the n-th model sees the very same noisy waveform as the first.

SNR definition: ``10 log10(P_speech / P_noise)`` where ``P_speech`` is the mean power of
the *active* speech frames (pauses would otherwise lower the speech level and with it the
real SNR) and ``P_noise`` the mean power of the noise over the whole utterance. Active
frames (20 ms) are those whose level lies above
``max(peak - dynamic_range_db, floor + floor_fraction * (peak - floor))`` (levels in dB;
peak = loudest frame, floor = 10th-percentile frame), a simple stand-in for ITU-T P.56.
If the mixture would clip, speech and noise are scaled down together, which keeps the SNR.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import soundfile as sf
from tqdm import tqdm

from espnet_avsr.common.seeding import utterance_rng
from espnet_avsr.common import levels
from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.experiment import SET_JSON, noisy_set_info, read_set_info, write_set_info
from espnet_avsr.common.fileio import atomic_write_json, atomic_write_text, atomic_write_wav, wav_is_complete
from espnet_avsr.common.kaldi_dir import read_kv, write_kv

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

_EPS = 1e-20


# --------------------------------------------------------------------------- levels and SNR


def frame_powers(x: np.ndarray, frame_len: int) -> np.ndarray:
    """Mean square of consecutive non-overlapping frames (the tail frame included)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a mono signal, got shape {x.shape}")
    if len(x) == 0:
        return np.zeros(0)
    n_full = len(x) // frame_len
    powers = []
    if n_full:
        powers.append(np.mean(x[: n_full * frame_len].reshape(n_full, frame_len) ** 2, axis=1))
    if len(x) > n_full * frame_len:
        powers.append(np.array([np.mean(x[n_full * frame_len :] ** 2)]))
    return np.concatenate(powers)


def active_mask(
    x: np.ndarray,
    sample_rate: int = 16000,
    frame_ms: float = 20.0,
    dynamic_range_db: float = 40.0,
    floor_fraction: float = 0.5,
) -> np.ndarray:
    """Per-frame boolean: is this frame active speech (see the module docstring)."""
    frame_len = max(1, int(round(sample_rate * frame_ms / 1000.0)))
    p = frame_powers(x, frame_len)
    if len(p) == 0 or p.max() <= _EPS:
        return np.zeros(len(p), dtype=bool)
    level = 10.0 * np.log10(p + _EPS)
    peak = level.max()
    floor = np.percentile(level, 10)
    threshold = max(peak - dynamic_range_db, floor + floor_fraction * (peak - floor))
    return level >= threshold


def active_speech_power(x: np.ndarray, sample_rate: int = 16000, frame_ms: float = 20.0, **kw) -> float:
    """Mean power of the active frames of ``x`` (0.0 for a silent signal)."""
    frame_len = max(1, int(round(sample_rate * frame_ms / 1000.0)))
    p = frame_powers(x, frame_len)
    mask = active_mask(x, sample_rate, frame_ms, **kw)
    if not mask.any():
        return 0.0
    # weight the (possibly short) tail frame by its length
    lengths = np.full(len(p), frame_len, dtype=np.float64)
    lengths[-1] = len(x) - frame_len * (len(p) - 1)
    return float(np.sum(p[mask] * lengths[mask]) / np.sum(lengths[mask]))


def noise_power(n: np.ndarray) -> float:
    n = np.asarray(n, dtype=np.float64)
    return float(np.mean(n**2)) if len(n) else 0.0


def measure_snr(speech: np.ndarray, noise: np.ndarray, sample_rate: int = 16000) -> float:
    """SNR in dB by this module's definition (active speech power over noise power)."""
    ps, pn = active_speech_power(speech, sample_rate), noise_power(noise)
    if ps <= 0:
        return float("-inf")
    if pn <= 0:
        return float("inf")
    return float(levels.snr_db(ps, pn))


@dataclass
class MixInfo:
    snr_target: float
    snr_measured: float
    noise_gain: float  # applied to the noise before the anti-clipping scale
    scale: float  # applied to speech and noise together (1.0 unless it would clip)
    silent: bool = False
    sources: List[str] = field(default_factory=list)


def mix_at_snr(
    speech: np.ndarray,
    noise: np.ndarray,
    snr_db: float,
    sample_rate: int = 16000,
    peak_limit: float = 0.99,
) -> Tuple[np.ndarray, np.ndarray, MixInfo]:
    """Return ``(mixture, scaled_noise, info)`` with ``mixture = scale * speech + scaled_noise``.

    A silent speech signal gets no noise (SNR undefined); ``info.silent`` says so.
    """
    speech = np.asarray(speech, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if speech.shape != noise.shape:
        raise ValueError(f"speech {speech.shape} and noise {noise.shape} must have the same shape")
    ps, pn = active_speech_power(speech, sample_rate), noise_power(noise)
    if ps <= 0.0:
        return speech.copy(), np.zeros_like(speech), MixInfo(snr_db, float("nan"), 0.0, 1.0, silent=True)
    if pn <= 0.0:
        raise ValueError("the noise segment is silent; cannot reach a finite SNR")
    gain = levels.noise_gain(ps, pn, snr_db)
    scaled = gain * noise
    mix = speech + scaled
    peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
    scale = 1.0 if peak <= peak_limit else peak_limit / peak
    if scale != 1.0:
        mix = mix * scale
        scaled = scaled * scale
    measured = measure_snr(speech * scale, scaled, sample_rate)
    return mix, scaled, MixInfo(float(snr_db), measured, gain, scale)


# --------------------------------------------------------------------------- noise sources


def read_audio(path: str, what: str = "audio") -> Tuple[np.ndarray, int]:
    """Mono float64 samples and rate from a wav path (the ``sound`` type of ESPnet dumps)."""
    if path.rstrip().endswith("|"):
        raise DataPrepError(path, f"{what}: pipe commands are not supported, dump to wav first")
    try:
        data, rate = sf.read(path, dtype="float64", always_2d=True)
    except Exception as e:  # noqa: BLE001 - soundfile raises several types
        raise DataPrepError(path, f"{what}: cannot read audio ({e})") from None
    return data[:, 0], int(rate)


def _stream(rng: np.random.Generator, length: int, pick) -> Tuple[np.ndarray, List[str]]:
    """Concatenate clips from ``pick()`` until ``length`` samples, cut at a random offset."""
    pieces: List[np.ndarray] = []
    names: List[str] = []
    total = 0
    while total < length or not pieces:
        name, clip = pick()
        if len(clip) == 0:
            continue
        pieces.append(clip)
        names.append(name)
        total += len(clip)
    stream = np.concatenate(pieces)
    start = int(rng.integers(0, len(stream) - length + 1))
    return stream[start : start + length], names


class BabbleNoise:
    """Babble from a pool of held-out utterances: ``num_talkers`` simultaneous speakers.

    Talkers are distinct speakers when ``utt2spk`` is known (and never the target
    speaker); each talker's stream is normalised to unit active power before summing.
    """

    def __init__(self, wav_scp: Mapping[str, str], utt2spk: Optional[Mapping[str, str]] = None, num_talkers: int = 6, cache_size: int = 128):
        if num_talkers < 1:
            raise ValueError(f"num_talkers must be >= 1, got {num_talkers}")
        if not wav_scp:
            raise ValueError("the babble source has no utterances")
        self.wav_scp = dict(wav_scp)
        self.num_talkers = num_talkers
        spk_of = dict(utt2spk) if utt2spk else {u: u for u in self.wav_scp}
        self.by_spk: "OrderedDict[str, List[str]]" = OrderedDict()
        for utt in sorted(self.wav_scp):
            self.by_spk.setdefault(spk_of.get(utt, utt), []).append(utt)
        self._cache: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._cache_size = cache_size
        self.sample_rate: Optional[int] = None

    def describe(self) -> str:
        return f"babble({self.num_talkers} talkers from {len(self.wav_scp)} utts, {len(self.by_spk)} speakers)"

    def _load(self, utt: str) -> np.ndarray:
        if utt in self._cache:
            self._cache.move_to_end(utt)
            return self._cache[utt]
        x, rate = read_audio(self.wav_scp[utt], "babble source")
        if self.sample_rate is None:
            self.sample_rate = rate
        elif rate != self.sample_rate:
            raise DataPrepError(self.wav_scp[utt], f"sample rate {rate} differs from {self.sample_rate} of the other babble sources")
        self._cache[utt] = x
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return x

    def draw(self, length: int, rng: np.random.Generator, sample_rate: int, exclude_spk: Optional[str] = None) -> Tuple[np.ndarray, List[str]]:
        speakers = [s for s in self.by_spk if s != exclude_spk] or list(self.by_spk)
        if len(speakers) >= self.num_talkers:
            chosen = [speakers[i] for i in rng.choice(len(speakers), size=self.num_talkers, replace=False)]
        else:
            chosen = [speakers[i] for i in rng.integers(0, len(speakers), size=self.num_talkers)]
        out = np.zeros(length, dtype=np.float64)
        used: List[str] = []
        for spk in chosen:
            utts = self.by_spk[spk]

            def pick(utts=utts):
                utt = utts[int(rng.integers(0, len(utts)))]
                return utt, self._load(utt)

            talker, names = _stream(rng, length, pick)
            if self.sample_rate != sample_rate:
                raise DataPrepError(self.wav_scp[names[0]], f"babble sample rate {self.sample_rate} != speech rate {sample_rate}")
            p = active_speech_power(talker, sample_rate)
            if p > 0:
                out += talker / np.sqrt(p)
            used.extend(names)
        return out, used


class FileNoise:
    """A noise recording, looped and cut at a random offset per utterance."""

    def __init__(self, path: PathLike):
        self.path = str(path)
        self.noise, self.sample_rate = read_audio(self.path, "noise file")
        if noise_power(self.noise) <= 0:
            raise DataPrepError(self.path, "noise file is silent")

    def describe(self) -> str:
        return f"file({self.path})"

    def draw(self, length: int, rng: np.random.Generator, sample_rate: int, exclude_spk: Optional[str] = None) -> Tuple[np.ndarray, List[str]]:
        if sample_rate != self.sample_rate:
            raise DataPrepError(self.path, f"sample rate {self.sample_rate} != speech rate {sample_rate}")
        seg, _ = _stream(rng, length, lambda: (Path(self.path).name, self.noise))
        return seg, [Path(self.path).name]


# --------------------------------------------------------------------------- dump dirs


@dataclass
class MixConfig:
    snr: float
    noise: str  # babble | file
    seed: int = 0
    babble_source: Optional[str] = None
    num_talkers: int = 6
    noise_file: Optional[str] = None


INFO_NAME = "mix_info"
CONFIG_NAME = "mix_noise.json"
_PARTIAL = ".mix_info.partial"


def _safe_name(utt: str) -> str:
    if not utt or "/" in utt or utt.startswith("."):
        raise ValueError(f"utterance id {utt!r} cannot be used as a file name")
    return utt


def build_noise(cfg: MixConfig):
    if cfg.noise == "babble":
        if not cfg.babble_source:
            raise ValueError("--noise babble needs --babble_source (a data dir with wav.scp of held-out speakers)")
        src = Path(cfg.babble_source)
        if not src.exists():
            raise DataPrepError(src, "babble source not found (expected a data dir with wav.scp, or a wav.scp file)")
        scp = src / "wav.scp" if src.is_dir() else src
        wav_scp = dict(read_kv(scp))
        utt2spk = dict(read_kv(src / "utt2spk")) if src.is_dir() and (src / "utt2spk").is_file() else None
        return BabbleNoise(wav_scp, utt2spk, cfg.num_talkers)
    if cfg.noise == "file":
        if not cfg.noise_file:
            raise ValueError("--noise file needs --noise_file")
        return FileNoise(cfg.noise_file)
    raise ValueError(f"unknown noise type {cfg.noise!r}; choose babble or file")


def mix_dump_dir(data_dir: PathLike, out_dir: PathLike, cfg: MixConfig, progress: bool = True) -> Dict[str, object]:
    """Write a noisy copy of a dump dir: new wavs under ``out/data``, ``wav.scp`` rewritten,
    every other top-level file copied unchanged, ``mix_info`` with per-utterance SNRs, and
    last ``set.json``: the source's test set and field with this noise and SNR (the source
    dump must have its own ``set.json``; scoring reads the facts from there, not from names).

    Resumable: utterances whose wav is complete and logged are not mixed again.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if data_dir.resolve() == out_dir.resolve():
        raise ValueError(f"--out must differ from --data ({data_dir})")
    wav_scp = dict(read_kv(data_dir / "wav.scp"))
    utt2spk = dict(read_kv(data_dir / "utt2spk")) if (data_dir / "utt2spk").is_file() else {}
    set_info = noisy_set_info(read_set_info(data_dir), cfg.noise, cfg.snr)
    (out_dir / SET_JSON).unlink(missing_ok=True)  # written last: its presence marks a finished set
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_record = asdict(cfg)
    cfg_record["data"] = str(data_dir)
    cfg_path = out_dir / CONFIG_NAME
    if cfg_path.is_file():
        with open(cfg_path, encoding="utf-8") as f:
            old = json.load(f)
        if old != cfg_record:
            raise ValueError(
                f"{cfg_path}: {out_dir} was made with other settings ({old}); "
                f"remove it or choose another --out"
            )
    atomic_write_json(cfg_path, cfg_record)

    for item in sorted(data_dir.iterdir()):
        if item.is_file() and item.name not in ("wav.scp", INFO_NAME, CONFIG_NAME, _PARTIAL, SET_JSON):
            shutil.copyfile(item, out_dir / item.name)
        elif item.is_dir():
            log.info("not copying sub-directory %s (scp files keep pointing to the originals)", item)

    done: Dict[str, str] = {}
    partial = out_dir / _PARTIAL
    for log_file in (out_dir / INFO_NAME, partial):  # a finished run, then an interrupted one
        if log_file.is_file():
            for line in log_file.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    done[line.split(maxsplit=1)[0]] = line
    noise_src = build_noise(cfg)
    wav_dir = out_dir / "data"
    new_scp: Dict[str, str] = {}
    counts = {"mixed": 0, "resumed": 0, "silent": 0, "clip_rescaled": 0}
    utts = sorted(wav_scp)
    iterator = tqdm(utts, desc=f"mix {cfg.noise} {cfg.snr:g} dB", unit="utt", mininterval=5) if progress else utts
    with open(partial, "a", encoding="utf-8") as plog:
        for utt in iterator:
            out_wav = wav_dir / f"{_safe_name(utt)}.wav"
            new_scp[utt] = os.path.join(str(out_dir), "data", f"{utt}.wav")
            if utt in done:
                try:
                    n_in = sf.info(wav_scp[utt]).frames
                except Exception:  # noqa: BLE001
                    n_in = None
                if wav_is_complete(out_wav, n_in):
                    counts["resumed"] += 1
                    continue
            speech, rate = read_audio(wav_scp[utt], f"wav.scp of {data_dir}, utterance {utt}")
            subtype = sf.info(wav_scp[utt]).subtype
            rng = utterance_rng(f"mix_noise:{utt}", cfg.seed)
            noise, sources = noise_src.draw(len(speech), rng, rate, exclude_spk=utt2spk.get(utt))
            mix, _, info = mix_at_snr(speech, noise, cfg.snr, rate)
            if info.silent:
                counts["silent"] += 1
                log.warning("%s: silent utterance, written without noise (SNR undefined)", utt)
            if info.scale != 1.0:
                counts["clip_rescaled"] += 1
            atomic_write_wav(out_wav, mix, rate, subtype=subtype if subtype in ("PCM_16", "PCM_24", "PCM_32", "FLOAT") else "PCM_16")
            line = (
                f"{utt} snr_target={info.snr_target:g} snr_measured={info.snr_measured:.3f} "
                f"noise_gain={info.noise_gain:.6g} scale={info.scale:.6g} silent={int(info.silent)} "
                f"sources={','.join(sources[:16])}"
            )
            plog.write(line + "\n")
            plog.flush()
            done[utt] = line
            counts["mixed"] += 1
    write_kv(out_dir / "wav.scp", new_scp)
    atomic_write_text(out_dir / INFO_NAME, "".join(done[u] + "\n" for u in utts if u in done))
    partial.unlink()
    write_set_info(out_dir, set_info)
    summary = {"utts": len(utts), **counts, "noise": noise_src.describe(), "snr": cfg.snr, "out": str(out_dir)}
    log.info("mix_noise: %s", summary)
    return summary


def read_mix_info(path: PathLike) -> Dict[str, Dict[str, str]]:
    """``mix_info`` -> utt -> {field: value}."""
    out: Dict[str, Dict[str, str]] = {}
    for utt, rest in read_kv(path).items():
        out[utt] = dict(kv.split("=", 1) for kv in rest.split())
    return out


__all__ = [
    "frame_powers",
    "active_mask",
    "active_speech_power",
    "noise_power",
    "measure_snr",
    "MixInfo",
    "mix_at_snr",
    "BabbleNoise",
    "FileNoise",
    "MixConfig",
    "build_noise",
    "mix_dump_dir",
    "read_mix_info",
]
