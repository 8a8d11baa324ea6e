"""Syllable-by-syllable Mandarin speech from espeak-ng with exact character timings.

Each (voice, syllable) is synthesised once by the ``cmn-latn-pinyin`` voice (many
syllables per espeak-ng call, split at SSML breaks), its silent edges trimmed,
resampled 22050 -> 16000 Hz and cached (in memory and, optionally, on disk so
parallel workers share it). Utterances are concatenations
of cached syllables with small gaps, so the time span of every character is known
to the sample.
"""
from __future__ import annotations

import functools
import io
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
from scipy.signal import firwin, resample_poly

from espnet_avsr.common.timing import SAMPLE_RATE
from espnet_avsr.corpus.text import Token, all_syllables

ESPEAK_RATE = 22050
ESPEAK_VOICE = "cmn-latn-pinyin"

#: espeak-ng voice variants that sound like plausible (distinct) human speakers.
VOICE_VARIANTS: Tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Henrique",
    "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "adam", "antonio",
    "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "grandma",
    "grandpa", "gustave", "iven", "john", "linda", "max", "michel", "miguel", "norbert",
    "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph",
    "travis", "victor", "zac",
)


class EspeakError(RuntimeError):
    """espeak-ng is missing or failed."""


def check_espeak() -> str:
    """Path of espeak-ng, or :class:`EspeakError` if it is not installed or lacks the voice."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EspeakError("espeak-ng not found on PATH (install the Debian package espeak-ng)")
    try:
        out = subprocess.run([exe, "--voices=cmn"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise EspeakError(f"cannot run {exe}: {e}") from e
    if ESPEAK_VOICE not in out.stdout:
        raise EspeakError(f"{exe} has no voice {ESPEAK_VOICE}")
    return exe


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker's voice: espeak variant, pitch (0-99), speed (wpm), gain."""

    variant: str
    pitch: int
    speed: int
    gain_db: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.variant}_p{self.pitch}_s{self.speed}"


@functools.lru_cache(maxsize=1)
def _resample_taps() -> np.ndarray:
    """Low-pass FIR for 22050 -> 16000 Hz (what resample_poly designs), made once."""
    up, down = SAMPLE_RATE // 50, ESPEAK_RATE // 50
    return firwin(2 * 10 * max(up, down) + 1, 1.0 / max(up, down), window=("kaiser", 5.0))


def to_16k(x: np.ndarray) -> np.ndarray:
    """Resample espeak-ng's 22050 Hz output to 16 kHz (polyphase)."""
    return resample_poly(x, SAMPLE_RATE // 50, ESPEAK_RATE // 50,
                         window=_resample_taps()).astype(np.float32)


def _trim(x: np.ndarray, rel_thresh: float = 0.02, frame: int = 80, margin: int = 1) -> np.ndarray:
    """Cut leading/trailing frames whose RMS is below ``rel_thresh`` of the peak RMS."""
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(1))
    loud = np.nonzero(rms > rel_thresh * rms.max())[0]
    if len(loud) == 0:
        return x[:0]
    a = max(loud[0] - margin, 0) * frame
    b = min(loud[-1] + 1 + margin, n) * frame
    return x[a:b]


class SyllableSynth:
    """espeak-ng syllable synthesiser with an in-memory and optional on-disk cache.

    Syllables of the text generator's inventory are made in fixed batches per voice
    (fast, deterministic); any other syllable is made alone.
    """

    def __init__(self, cache_dir: Optional[Path] = None, exe: Optional[str] = None,
                 inventory: Optional[Sequence[str]] = None, batch: int = 150) -> None:
        self.exe = exe or check_espeak()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.inventory: Tuple[str, ...] = tuple(sorted(set(inventory or all_syllables())))
        self.batch = batch
        self._inv: Dict[str, Dict[str, np.ndarray]] = {}
        self._extra: Dict[Tuple[str, str], np.ndarray] = {}

    def _run_espeak(self, voice: Voice, syllable: str) -> np.ndarray:
        cmd = [self.exe, "-v", f"{ESPEAK_VOICE}+{voice.variant}", "-p", str(voice.pitch),
               "-s", str(voice.speed), "-a", "120", "--stdout", syllable]
        try:
            res = subprocess.run(cmd, capture_output=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError) as e:
            raise EspeakError(f"espeak-ng failed on {syllable!r} ({voice.key}): {e}") from e
        wav, sr = sf.read(io.BytesIO(res.stdout), dtype="float32")
        if sr != ESPEAK_RATE:
            raise EspeakError(f"espeak-ng produced {sr} Hz, expected {ESPEAK_RATE}")
        wav = _trim(wav)
        if len(wav) == 0:
            raise EspeakError(f"espeak-ng produced silence for {syllable!r} ({voice.key})")
        return to_16k(wav)

    def _batch_cmd(self, voice: Voice, syllables: Sequence[str], break_ms: int) -> List[str]:
        ssml = "<speak>" + f' <break time="{break_ms}ms"/> '.join(syllables) + "</speak>"
        return [self.exe, "-m", "-v", f"{ESPEAK_VOICE}+{voice.variant}", "-p", str(voice.pitch),
                "-s", str(voice.speed), "-a", "120", "--stdout", ssml]

    def _run_espeak_batches(self, voice: Voice, chunks: Sequence[Sequence[str]],
                            break_ms: int) -> List[Optional[List[np.ndarray]]]:
        """Synthesise chunks of syllables, one concurrent espeak-ng call per chunk.

        Syllables are separated by SSML breaks; espeak-ng renders each as a clause
        followed by silence, so splitting at the long near-zero runs recovers them.
        A chunk whose split does not give one piece per syllable comes back as None.
        """
        try:
            procs = [subprocess.Popen(self._batch_cmd(voice, c, break_ms), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE) for c in chunks]
            outs = [p.communicate(timeout=600) for p in procs]
        except (OSError, subprocess.SubprocessError) as e:
            raise EspeakError(f"espeak-ng failed on a syllable batch ({voice.key}): {e}") from e
        results = []
        for p, (stdout, stderr), chunk in zip(procs, outs, chunks):
            if p.returncode != 0:
                raise EspeakError(f"espeak-ng exited {p.returncode} ({voice.key}): "
                                  f"{stderr.decode(errors='replace').strip()[:200]}")
            results.append(self._split_batch(stdout, chunk))
        return results

    def _split_batch(self, stdout: bytes, syllables: Sequence[str]) -> Optional[List[np.ndarray]]:
        """Cut one batch recording into its syllables (None if the cut is ambiguous)."""
        wav, sr = sf.read(io.BytesIO(stdout), dtype="int16")
        if sr != ESPEAK_RATE:
            raise EspeakError(f"espeak-ng produced {sr} Hz, expected {ESPEAK_RATE}")
        quiet = np.r_[0, (np.abs(wav.astype(np.int32)) <= 2).astype(np.int8), 0]
        edges = np.diff(quiet)
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        # the N-1 longest interior quiet runs are the breaks, if they stand out clearly
        interior = (starts > 0) & (ends < len(wav))
        starts, ends = starts[interior], ends[interior]
        need = len(syllables) - 1
        if len(starts) < need:
            return None
        order = np.argsort(-(ends - starts), kind="stable")
        lengths = (ends - starts)[order]
        shortest = int(lengths[need - 1]) if need > 0 else len(wav)
        runner_up = int(lengths[need]) if len(lengths) > need else 0
        if shortest < 0.04 * ESPEAK_RATE or shortest < 1.5 * runner_up:
            return None
        cuts = sorted(zip(starts[order[:need]].tolist(), ends[order[:need]].tolist()))
        bounds = [0] + [c for ab in cuts for c in ab] + [len(wav)]
        spans = [(bounds[2 * i], bounds[2 * i + 1]) for i in range(len(bounds) // 2)]
        if any(np.abs(wav[a:b]).max(initial=0) <= 2 for a, b in spans):
            return None
        out = []
        for a, b in spans:
            w = _trim(wav[a:b].astype(np.float32) / 32768.0)
            if len(w) == 0:
                return None
            out.append(to_16k(w))
        return out

    def _inventory(self, voice: Voice) -> Dict[str, np.ndarray]:
        """The voice's whole syllable inventory, synthesised in fixed batches.

        espeak-ng's rendering of a clause depends slightly on its neighbours, so the
        batches are always the same (sorted inventory, fixed chunks): the cache content,
        and hence every timing in the corpus, does not depend on which session or
        worker asked first.
        """
        inv = self._inv.get(voice.key)
        if inv is not None:
            return inv
        path = self.cache_dir / f"{voice.key}.npz" if self.cache_dir else None
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    inv = {k: z[k] for k in z.files}
            except (OSError, ValueError):
                inv = None
        if inv is None or set(inv) != set(self.inventory):
            chunks = [list(self.inventory[i:i + self.batch])
                      for i in range(0, len(self.inventory), self.batch)]
            waves = self._run_espeak_batches(voice, chunks, 1000)
            inv = {}
            for chunk, w in zip(chunks, waves):
                if w is None and len(chunk) > 1:  # voices with long tails need longer breaks
                    w = self._run_espeak_batches(voice, [chunk], 2500)[0]
                if w is None:
                    logging.getLogger(__name__).debug("batch split failed for %s", voice.key)
                    w = [self._run_espeak(voice, s) for s in chunk]
                inv.update(zip(chunk, w))
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
                np.savez(tmp, **inv)
                os.replace(tmp, path)
        self._inv[voice.key] = inv
        return inv

    def syllable(self, voice: Voice, syllable: str) -> np.ndarray:
        """Trimmed 16 kHz float waveform of one syllable (cached)."""
        inv = self._inventory(voice)
        wav = inv.get(syllable)
        if wav is None:
            key = (voice.key, syllable)
            wav = self._extra.get(key)
            if wav is None:
                wav = self._extra[key] = self._run_espeak(voice, syllable)
        return wav


@dataclass
class Utterance:
    """A synthesised utterance: waveform and per-character sample spans."""

    wave: np.ndarray  # float32, 16 kHz
    chars: List[Tuple[str, str, int, int]]  # (char, pinyin, start, end) in samples; punct: span 0

    @property
    def syllables(self) -> List[Tuple[int, int, str]]:
        return [(s, e, p) for _, p, s, e in self.chars if p]


def synthesize(
    synth: SyllableSynth,
    voice: Voice,
    tokens: Sequence[Token],
    rng: np.random.Generator,
    gap_range: Tuple[float, float] = (0.0, 0.03),
    pause_range: Tuple[float, float] = (0.15, 0.3),
) -> Utterance:
    """Concatenate syllables (with small gaps, longer pauses at punctuation).

    Trailing punctuation adds no pause, so the utterance ends with its last syllable.
    """
    pieces: List[np.ndarray] = []
    chars: List[Tuple[str, str, int, int]] = []
    pos = 0
    spoken = [i for i, t in enumerate(tokens) if not t.is_punct]
    last_spoken = spoken[-1] if spoken else -1
    for i, tok in enumerate(tokens):
        if tok.is_punct:
            if 0 < i < last_spoken:
                n = int(rng.uniform(*pause_range) * SAMPLE_RATE)
                pieces.append(np.zeros(n, np.float32))
                pos += n
            chars.append((tok.char, "", pos, pos))
            continue
        if chars and chars[-1][1]:
            n = int(rng.uniform(*gap_range) * SAMPLE_RATE)
            pieces.append(np.zeros(n, np.float32))
            pos += n
        w = synth.syllable(voice, tok.pinyin)
        pieces.append(w)
        chars.append((tok.char, tok.pinyin, pos, pos + len(w)))
        pos += len(w)
    wave = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    peak = float(np.abs(wave).max()) if len(wave) else 0.0
    if peak > 0:
        wave = wave * (0.5 * 10 ** (voice.gain_db / 20) / peak)
    return Utterance(wave.astype(np.float32), chars)
