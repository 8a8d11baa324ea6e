"""Simulated living rooms: microphone arrays, room impulse responses, noise, mixing.

A shoebox room (pyroomacoustics image-source method) holds the speakers on a sofa,
a 6-mic linear far-field array on the TV wall, a 2-mic middle array on the table,
a TV and a few babble talkers. RIRs are computed once per session for every source
and convolved with whole source signals (``scipy.signal.oaconvolve``). Noise (TV =
speech + music-like tones, babble = other synthetic speech, plus a little ambient
noise) is scaled to a target SNR at the first microphone of each array.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyroomacoustics as pra
from scipy.signal import lfilter, oaconvolve

from espnet_avsr.common.levels import noise_gain, snr_db
from espnet_avsr.common.timing import SAMPLE_RATE

N_FAR = 6
N_MIDDLE = 2
#: Image-source order cap; keeps RIR computation around a second per session.
MAX_ORDER = 30


@dataclass(frozen=True)
class RoomGeometry:
    """Room size, target RT60 and where the arrays, TV and sofa are."""

    dims: Tuple[float, float, float]
    rt60: float
    far_center: Tuple[float, float, float]
    far_spacing: float
    middle_center: Tuple[float, float, float]
    middle_spacing: float
    tv_pos: Tuple[float, float, float]
    sofa_y: float

    @classmethod
    def random(cls, rng: np.random.Generator, rt60_range: Tuple[float, float]) -> "RoomGeometry":
        L, W, H = rng.uniform(4.5, 7.0), rng.uniform(3.6, 5.5), rng.uniform(2.6, 3.2)
        sofa_y = W - rng.uniform(0.6, 0.9)
        return cls(
            dims=(L, W, H),
            rt60=float(rng.uniform(*rt60_range)),
            far_center=(L / 2 + rng.uniform(-0.3, 0.3), 0.25, 1.4),
            far_spacing=0.05,
            middle_center=(L / 2 + rng.uniform(-0.4, 0.4), sofa_y - rng.uniform(0.8, 1.3), 0.75),
            middle_spacing=0.1,
            tv_pos=(L / 2 + rng.uniform(-1.0, 1.0), 0.2, 1.2),
            sofa_y=sofa_y,
        )

    def mic_positions(self, with_middle: bool) -> np.ndarray:
        """(3, M) microphone coordinates: 6 far mics (+ 2 middle mics)."""
        fx, fy, fz = self.far_center
        off = (np.arange(N_FAR) - (N_FAR - 1) / 2) * self.far_spacing
        far = np.stack([fx + off, np.full(N_FAR, fy), np.full(N_FAR, fz)])
        if not with_middle:
            return far
        mx, my, mz = self.middle_center
        moff = (np.arange(N_MIDDLE) - (N_MIDDLE - 1) / 2) * self.middle_spacing
        middle = np.stack([mx + moff, np.full(N_MIDDLE, my), np.full(N_MIDDLE, mz)])
        return np.concatenate([far, middle], axis=1)

    def speaker_positions(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 3) seated talkers along the sofa, sorted left to right (x)."""
        L = self.dims[0]
        xs = np.sort(L / 2 + (np.arange(n) - (n - 1) / 2) * rng.uniform(0.6, 0.9)
                     + rng.uniform(-0.1, 0.1, n))
        xs = np.clip(xs, 0.4, L - 0.4)
        ys = self.sofa_y + rng.uniform(-0.15, 0.15, n)
        zs = rng.uniform(1.05, 1.25, n)
        return np.stack([xs, ys, zs], axis=1)

    def random_positions(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 3) positions anywhere in the room (babble talkers), away from walls."""
        L, W, _ = self.dims
        return np.stack([rng.uniform(0.5, L - 0.5, n), rng.uniform(0.8, W - 0.5, n),
                         rng.uniform(1.0, 1.7, n)], axis=1)


def compute_rirs(geom: RoomGeometry, sources: np.ndarray, mics: np.ndarray) -> List[List[np.ndarray]]:
    """RIRs ``[source][mic]`` at 16 kHz for a shoebox room with the target RT60."""
    e_abs, max_order = pra.inverse_sabine(geom.rt60, list(geom.dims))
    room = pra.ShoeBox(list(geom.dims), fs=SAMPLE_RATE, materials=pra.Material(e_abs),
                       max_order=int(min(max_order, MAX_ORDER)))
    for s in sources:
        room.add_source(list(s))
    room.add_microphone_array(mics)
    room.compute_rir()
    return [[np.asarray(room.rir[m][s], np.float32) for m in range(mics.shape[1])]
            for s in range(len(sources))]


def convolve(dry: np.ndarray, rirs: Sequence[np.ndarray], n: int) -> np.ndarray:
    """(M, n) reverberant images of one dry source through M RIRs (overlap-add FFT)."""
    L = max(len(r) for r in rirs)
    h = np.zeros((len(rirs), L), np.float32)
    for i, r in enumerate(rirs):
        h[i, :len(r)] = r
    out = oaconvolve(dry[None, :n].astype(np.float32), h, axes=1)[:, :n]
    if out.shape[1] < n:
        out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
    return out.astype(np.float32)


#: One source event's reverberant image: (start sample, (M, L) array).
Image = Tuple[int, np.ndarray]


def event_image(wave: np.ndarray, rirs: Sequence[np.ndarray], start: int, n: int) -> Image:
    """The (M, L) image of one event starting at ``start``, reverberation tail included,
    cut at the session end ``n``."""
    length = min(len(wave) + max(len(r) for r in rirs) - 1, n - start)
    return start, convolve(wave, rirs, length)


def sum_images(images: Sequence[Optional[Image]], gains: Sequence[float], channels: slice,
               n: int) -> np.ndarray:
    """Sum of gain-scaled event images on ``channels``: (len(channels), n)."""
    out = None
    for img, g in zip(images, gains):
        if img is None:
            continue
        start, x = img
        x = x[channels]
        if out is None:
            out = np.zeros((x.shape[0], n), np.float32)
        out[:, start:start + x.shape[1]] += g * x
    if out is None:
        raise ValueError("no event with audio in this session")
    return out


def _mic_total(images, gains, noise: np.ndarray, ch: int) -> np.ndarray:
    total = noise.astype(np.float64)
    for img, g in zip(images, gains):
        if img is not None:
            start, x = img
            total[start:start + x.shape[1]] += g * x[ch]
    return total


def utterance_snrs(images: Sequence[Optional[Image]], gains: Sequence[float],
                   spans: Sequence[Tuple[int, int]], noise: np.ndarray, ch: int,
                   n: int) -> List[Optional[float]]:
    """SNR (dB) of every event at microphone ``ch`` over its annotated span, against
    everything else that microphone hears there: noise, other talkers and the tails of
    earlier events. ``noise`` is that microphone's noise signal. None for silent events."""
    total = _mic_total(images, gains, noise, ch)
    out: List[Optional[float]] = []
    for img, g, (a, b) in zip(images, gains, spans):
        if img is None or b <= a:
            out.append(None)
            continue
        start, x = img
        own = np.zeros(b - a)
        seg = x[ch, a - start:b - start]
        own[:len(seg)] = g * seg
        rest = total[a:b] - own
        out.append(round(snr_db(power(own), power(rest)), 2))
    return out


def utterance_gains(images: Sequence[Optional[Image]], spans: Sequence[Tuple[int, int]],
                    noise0: np.ndarray, targets: Dict[int, float], n: int,
                    max_iterations: int = 40, tol_db: float = 0.01,
                    max_boost_db: float = 6.0) -> List[float]:
    """Per-event gains so that event ``i`` in ``targets`` sits at ``targets[i]`` dB at mic 0
    against everything else there (noise, other talkers, earlier reverberation tails):
    fixed-point passes until no gain moves by ``tol_db``.

    Two utterances that overlap with high targets cannot both be above each other: the
    passes would raise both gains without end (they did, and one event then filled the
    int16 range and the rest of the session rounded to silence). So each gain starts from
    what the noise alone calls for and never rises more than ``max_boost_db`` above it; such
    utterances end below their targets, and :func:`utterance_snrs` reports what was reached.
    Events not in ``targets`` (fillers, coughs) take the median gain of the targeted ones."""
    gains = [1.0] * len(images)
    if not targets:
        return gains
    segs = {}
    for i in targets:  # each target's own image at mic 0 over its span
        start, x = images[i]
        a, b = spans[i]
        segs[i] = x[0, a - start:b - start].astype(np.float64)

    def gain_against(i: int, background: np.ndarray) -> float:
        """Gain putting event i at its target over ``background`` (mic 0, its span)."""
        return float(np.sqrt(power(background) * 10 ** (targets[i] / 10) / power(segs[i])))

    noise = noise0.astype(np.float64)
    ceiling = {}
    for i in targets:
        a = spans[i][0]
        gains[i] = gain_against(i, noise[a:a + len(segs[i])])
        ceiling[i] = gains[i] * 10 ** (max_boost_db / 20)
    for _ in range(max_iterations):
        total = _mic_total(images, gains, noise0, 0)
        new = list(gains)
        for i in targets:
            a = spans[i][0]
            rest = total[a:a + len(segs[i])] - gains[i] * segs[i]
            new[i] = min(gain_against(i, rest), ceiling[i])
        med = float(np.median([new[i] for i in targets]))
        new = [new[i] if i in targets else (med if images[i] is not None else 1.0)
               for i in range(len(images))]
        change = max(abs(20 * np.log10(a / b)) for a, b in zip(new, gains))
        gains = new
        if change < tol_db:
            break
    return gains


def music(n: int, rng: np.random.Generator) -> np.ndarray:
    """Music-like signal: a pentatonic melody of harmonic tones over a slow chord."""
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n, np.float32)
    base = 220.0 * 2 ** (rng.integers(-3, 4) / 12)
    scale = np.array([0, 2, 4, 7, 9, 12, 14, 16])
    pos = 0
    while pos < n:
        dur = int(rng.choice([0.2, 0.25, 0.4, 0.5]) * SAMPLE_RATE)
        f0 = base * 2 ** (scale[rng.integers(len(scale))] / 12)
        seg = t[: min(dur, n - pos)]
        env = np.exp(-seg * rng.uniform(3, 8)) * np.minimum(seg / 0.01, 1.0)
        tone = sum(np.sin(2 * np.pi * f0 * k * seg) / k ** 1.5 for k in (1, 2, 3, 4))
        out[pos:pos + len(seg)] += (env * tone).astype(np.float32)
        pos += dur
    chord = sum(np.sin(2 * np.pi * base / 2 * r * t) for r in (1.0, 1.26, 1.5))
    return out + 0.15 * chord.astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Approximately 1/f noise (Kellet's filter) for the ambient hum of a room."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1, -2.494956002, 2.017265875, -0.522189400]
    return lfilter(b, a, rng.standard_normal(n)).astype(np.float32)


def power(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean power of ``x`` (over ``mask`` samples if given)."""
    if mask is not None and mask.any():
        x = x[..., mask]
    return float(np.mean(np.square(x, dtype=np.float64))) + 1e-12


def scale_to_snr(speech: np.ndarray, noise: np.ndarray, target_db: float, active: np.ndarray) -> float:
    """Gain for ``noise`` so that active-speech power / noise power at mic 0 is ``target_db``."""
    ps = power(speech[0], active)
    pn = power(noise[0])
    return noise_gain(ps, pn, target_db)


def to_int16(x: np.ndarray, peak: float = 0.7) -> Tuple[np.ndarray, float]:
    """Scale all channels by one gain so the peak is ``peak`` of full scale; int16."""
    m = float(np.abs(x).max()) if x.size else 0.0
    g = peak / m if m > 0 else 1.0
    return np.round(x * g * 32767).clip(-32768, 32767).astype(np.int16), g


def noise_config(config: int) -> Dict[str, bool]:
    """Meaning of the session configuration id C01..C06: TV on, babble, night lighting."""
    c = (config - 1) % 6
    return {"tv": c % 3 in (0, 2), "babble": c % 3 in (1, 2), "night": c >= 3}
