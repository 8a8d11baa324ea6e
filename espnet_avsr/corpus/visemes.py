"""Viseme classes of Mandarin syllables and the mouth shapes the face renderer draws.

One home for the articulation model: a pinyin syllable is split into initial and
final; the *nucleus* vowel of the final gives the syllable's viseme class (what the
mouth looks like at the syllable centre), the initial gives the onset shape (lips
closed for b/p/m, lower lip tucked for f) and the final's ending gives the offset
shape (spread after -i, rounded after -o/-u, half closed for -n/-ng).
A :class:`MouthTrack` interpolates these key shapes smoothly over time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

#: Syllable viseme classes (the label a lip reader can predict at a syllable centre).
VISEME_CLASSES: Tuple[str, ...] = ("A", "E", "I", "O", "U")
#: Extra mouth states used only inside the track.
SIL = "SIL"
BILABIAL = "BILABIAL"
LABIODENTAL = "LABIODENTAL"

INITIALS: Tuple[str, ...] = (
    "zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h",
    "j", "q", "x", "r", "z", "c", "s",
)


@dataclass(frozen=True)
class MouthShape:
    """Mouth geometry relative to the face width: opening, width and lip rounding (0..1)."""

    opening: float
    width: float
    rounding: float

    def as_array(self) -> np.ndarray:
        return np.array([self.opening, self.width, self.rounding], dtype=np.float64)


#: Mouth shape of every state, as fractions of the face width (rounding is unitless).
SHAPES: Dict[str, MouthShape] = {
    SIL: MouthShape(0.0, 0.34, 0.15),
    BILABIAL: MouthShape(0.0, 0.33, 0.25),
    LABIODENTAL: MouthShape(0.025, 0.36, 0.0),
    "A": MouthShape(0.23, 0.38, 0.15),
    "E": MouthShape(0.11, 0.40, 0.1),
    "I": MouthShape(0.045, 0.48, 0.0),
    "O": MouthShape(0.17, 0.25, 0.75),
    "U": MouthShape(0.075, 0.19, 1.0),
}

_NUCLEUS_CLASS: Dict[str, str] = {
    # finals written after normalisation: ü is "v", the apical -i after z/c/s/zh/ch/sh/r is "ii"
    "a": "A", "ia": "A", "ua": "A", "ai": "A", "uai": "A", "ao": "A", "iao": "A",
    "an": "A", "uan": "A", "ang": "A", "iang": "A", "uang": "A",
    "e": "E", "ei": "E", "uei": "E", "en": "E", "eng": "E", "er": "E", "ie": "E",
    "ve": "E", "ian": "E", "van": "E",
    "i": "I", "ii": "I", "in": "I", "ing": "I",
    "o": "O", "uo": "O", "ou": "O", "iou": "O", "ong": "O", "iong": "O",
    "u": "U", "v": "U", "uen": "U", "vn": "U", "ueng": "U",
}


def split_pinyin(syllable: str) -> Tuple[str, str, int]:
    """Split a TONE3 syllable into (initial, normalised final, tone).

    Normalisation undoes pinyin spelling rules so the final names the sounds:
    y/w glides are folded in (``yu`` -> ``v``, ``wo`` -> ``uo``), ``u`` after j/q/x is
    ``v``, ``ui/iu/un`` are ``uei/iou/uen``, and ``zhi/ci/ri`` get the apical ``ii``.
    """
    m = re.fullmatch(r"([a-zü]+)([1-5]?)", syllable.lower())
    if not m:
        raise ValueError(f"not a pinyin syllable: {syllable!r}")
    body, tone = m.group(1).replace("ü", "v"), int(m.group(2) or 5)
    initial = next((i for i in INITIALS if body.startswith(i) and len(body) > len(i)), "")
    final = body[len(initial):]
    if not initial and body[0] in "yw":
        glide, rest = body[0], body[1:]
        if glide == "y":
            if rest.startswith("u"):
                final = "v" + rest[1:]
            elif rest.startswith("i"):
                final = rest
            else:
                final = "i" + rest
        else:
            final = rest if rest.startswith("u") else "u" + rest
    if initial in ("j", "q", "x") and final.startswith("u"):
        final = "v" + final[1:]
    final = {"ui": "uei", "iu": "iou", "un": "uen"}.get(final, final)
    if initial in ("z", "c", "s", "zh", "ch", "sh", "r") and final == "i":
        final = "ii"
    if final in ("n", "ng", "m"):  # syllabic nasals (嗯 n / ng): a closed-ish mid vowel
        final = "en"
    return initial, final, tone


def syllable_viseme(syllable: str) -> str:
    """Viseme class (one of :data:`VISEME_CLASSES`) of a syllable's nucleus."""
    _, final, _ = split_pinyin(syllable)
    try:
        return _NUCLEUS_CLASS[final]
    except KeyError:
        raise ValueError(f"unknown pinyin final {final!r} in {syllable!r}") from None


def onset_state(syllable: str) -> str:
    """Mouth state at the start of a syllable, from its initial (or glide)."""
    initial, final, _ = split_pinyin(syllable)
    if initial in ("b", "p", "m"):
        return BILABIAL
    if initial == "f":
        return LABIODENTAL
    if final.startswith("u") or final.startswith("v"):
        return "U"
    if final.startswith("i") and len(final) > 1 and final != "ii":
        return "I"
    return syllable_viseme(syllable)


def offset_shape(syllable: str) -> MouthShape:
    """Mouth shape at the end of a syllable, from how its final ends."""
    _, final, _ = split_pinyin(syllable)
    nucleus = SHAPES[syllable_viseme(syllable)]
    if final.endswith("i") and len(final) > 1 and final != "ii":
        target = SHAPES["I"]
    elif final.endswith(("o", "u")) and len(final) > 1:
        target = SHAPES["U"]
    elif final.endswith("ng"):
        return MouthShape(min(nucleus.opening, 0.07), nucleus.width, nucleus.rounding)
    elif final.endswith("n"):
        return MouthShape(min(nucleus.opening, 0.04), nucleus.width, nucleus.rounding)
    else:
        return nucleus
    mix = 0.7
    return MouthShape(*(mix * target.as_array() + (1 - mix) * nucleus.as_array()))


@dataclass
class MouthTrack:
    """Key mouth shapes over time; :meth:`sample` interpolates them smoothly.

    Built from syllable timings; silence is a closed mouth. ``scale`` scales the
    opening (a speaker's articulation strength).
    """

    times: np.ndarray  # (K,) seconds, increasing
    shapes: np.ndarray  # (K, 3) opening, width, rounding

    @classmethod
    def from_syllables(
        cls,
        syllables: Sequence[Tuple[float, float, str]],
        scale: float = 1.0,
        ramp: float = 0.06,
    ) -> "MouthTrack":
        """Key shapes for ``(start, end, pinyin)`` syllables (sorted, non-overlapping)."""
        keys: List[Tuple[float, np.ndarray]] = [(-1.0, SHAPES[SIL].as_array())]
        sil = SHAPES[SIL].as_array()
        prev_end = -1.0
        for start, end, syl in syllables:
            dur = end - start
            if start - prev_end > 2 * ramp:  # back to silence between words/utterances
                keys.append((prev_end + ramp, sil))
                keys.append((start - ramp, sil))
            onset = SHAPES[onset_state(syl)].as_array()
            nucleus = SHAPES[syllable_viseme(syl)].as_array()
            off = offset_shape(syl).as_array()
            keys.append((start + 0.08 * dur, onset))
            keys.append((start + 0.35 * dur, nucleus))
            keys.append((start + 0.65 * dur, nucleus))
            keys.append((start + 0.92 * dur, off))
            prev_end = end
        keys.append((prev_end + ramp, sil))
        times = np.array([k[0] for k in keys])
        shapes = np.stack([k[1] for k in keys]).copy()
        shapes[:, 0] *= scale
        order = np.argsort(times, kind="stable")
        return cls(times[order], shapes[order])

    def sample(self, t: np.ndarray) -> np.ndarray:
        """Shapes ``(len(t), 3)`` at times ``t`` with smoothstep easing between keys."""
        t = np.asarray(t, dtype=np.float64)
        idx = np.clip(np.searchsorted(self.times, t, side="right"), 1, len(self.times) - 1)
        t0, t1 = self.times[idx - 1], self.times[idx]
        u = np.clip((t - t0) / np.maximum(t1 - t0, 1e-9), 0.0, 1.0)
        u = u * u * (3 - 2 * u)
        out = self.shapes[idx - 1] * (1 - u)[:, None] + self.shapes[idx] * u[:, None]
        after = t >= self.times[-1]
        out[after] = self.shapes[-1]
        return out
