"""Rendered talking faces (OpenCV drawing) whose mouths follow the spoken syllables.

A face is drawn from a :class:`FaceStyle` (per-speaker appearance) at a position and
size given by :class:`HeadMotion` (slow drift, nodding, small zoom, blinks), with
the mouth opening / width / rounding taken from a
:class:`~espnet_avsr.corpus.visemes.MouthTrack`. :func:`draw_face` returns the face
box and the lip box of exactly what it drew, which become the detection JSON.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

Box = Tuple[int, int, int, int]  # x1, y1, x2, y2 (pixels, inclusive-exclusive)
_SHIFT = 4
_ONE = 1 << _SHIFT

_SKINS = ((180, 200, 235), (150, 180, 225), (120, 160, 210), (95, 135, 185), (70, 105, 150),
          (160, 190, 240), (135, 165, 200))
_HAIRS = ((20, 20, 25), (30, 40, 60), (40, 60, 90), (110, 110, 115), (200, 200, 205),
          (20, 30, 45), (60, 90, 140))
_SHIRTS = ((160, 60, 40), (40, 40, 160), (60, 140, 60), (200, 200, 200), (40, 40, 40),
           (140, 100, 180), (30, 120, 200), (180, 160, 60))
#: Lip tints (BGR multipliers of the skin colour): always darker and redder than the skin.
_LIPS = ((0.55, 0.5, 0.85), (0.5, 0.45, 0.75), (0.6, 0.55, 0.9), (0.45, 0.42, 0.7), (0.6, 0.5, 0.8))


@dataclass(frozen=True)
class FaceStyle:
    """Per-speaker appearance (colours BGR) and articulation strength."""

    skin: Tuple[int, int, int]
    hair: Tuple[int, int, int]
    shirt: Tuple[int, int, int]
    lips: Tuple[int, int, int]
    size: float  # relative face size (0.85..1.1)
    long_hair: bool
    aspect: float  # face height / width
    articulation: float  # scales mouth opening

    @classmethod
    def random(cls, rng: np.random.Generator,
               articulation: Tuple[float, float] = (0.85, 1.15)) -> "FaceStyle":
        def pick(options):
            return tuple(int(c) for c in options[int(rng.integers(len(options)))])

        skin = pick(_SKINS)
        tint = _LIPS[int(rng.integers(len(_LIPS)))]
        lips = tuple(int(min(255, c * t)) for c, t in zip(skin, tint))
        return cls(
            skin=skin, hair=pick(_HAIRS), shirt=pick(_SHIRTS), lips=lips,
            size=float(rng.uniform(0.85, 1.1)), long_hair=bool(rng.random() < 0.4),
            aspect=float(rng.uniform(1.22, 1.38)), articulation=float(rng.uniform(*articulation)),
        )


@dataclass(frozen=True)
class HeadMotion:
    """Slow head drift, nodding and zoom as sums of sinusoids, plus blink times."""

    amp: np.ndarray  # (3, 2) amplitudes of x, y (face widths) and zoom, two partials each
    freq: np.ndarray  # (3, 2) Hz
    phase: np.ndarray  # (3, 2) rad
    blinks: np.ndarray  # blink start times (s)

    @classmethod
    def random(cls, rng: np.random.Generator, duration: float) -> "HeadMotion":
        amp = np.array([[0.06, 0.03], [0.03, 0.015], [0.03, 0.01]]) * rng.uniform(0.5, 1.5, (3, 2))
        freq = rng.uniform(0.03, 0.25, (3, 2))
        freq[1, 1] = rng.uniform(0.4, 0.9)  # nodding
        phase = rng.uniform(0, 2 * np.pi, (3, 2))
        n_blinks = int(duration / 3.5) + 1
        blinks = np.sort(rng.uniform(0, duration, n_blinks))
        return cls(amp, freq, phase, blinks)

    def at(self, t: np.ndarray) -> np.ndarray:
        """(len(t), 4): dx, dy (face widths), zoom and eye openness at times ``t``."""
        t = np.asarray(t, dtype=np.float64)
        v = (self.amp[None] * np.sin(2 * np.pi * self.freq[None] * t[:, None, None]
                                     + self.phase[None])).sum(2)
        eye = np.ones(len(t))
        for b in self.blinks:  # a 160 ms blink: closing then opening
            inside = (t >= b) & (t < b + 0.16)
            eye[inside] = np.abs(t[inside] - b - 0.08) / 0.08
        return np.column_stack([v[:, 0], v[:, 1], 1.0 + v[:, 2], eye])


def _p(x: float, y: float) -> Tuple[int, int]:
    return int(x * _ONE + 0.5), int(y * _ONE + 0.5)


def _ellipse(img: np.ndarray, c: Tuple[float, float], ax: Tuple[float, float], color,
             thickness: int = -1, start: float = 0, end: float = 360) -> None:
    cv2.ellipse(img, _p(*c), _p(max(ax[0], 0.5), max(ax[1], 0.5)), 0, start, end, color,
                thickness, cv2.LINE_AA, _SHIFT)


def _shade(color, f: float) -> Tuple[int, int, int]:
    return tuple(min(255, max(0, int(c * f))) for c in color)


def _clip_box(x1: float, y1: float, x2: float, y2: float, w: int, h: int) -> Box:
    return (min(w, max(0, math.floor(x1))), min(h, max(0, math.floor(y1))),
            min(w, max(0, math.ceil(x2))), min(h, max(0, math.ceil(y2))))


def draw_face(
    img: np.ndarray,
    cx: float,
    cy: float,
    fw: float,
    style: FaceStyle,
    mouth: np.ndarray,
    eye_open: float = 1.0,
    light: float = 1.0,
) -> Tuple[Box, Box]:
    """Draw a head with face width ``fw`` centred at (cx, cy); return (face box, lip box).

    ``mouth`` is (opening, width, rounding) as fractions of the face width.
    Boxes are clipped to the image.
    """
    h_img, w_img = img.shape[:2]
    fh = fw * style.aspect
    skin = _shade(style.skin, light)
    hair = _shade(style.hair, light)
    # body, neck, hair behind the head
    _ellipse(img, (cx, cy + 1.1 * fh), (1.15 * fw, 0.6 * fh), _shade(style.shirt, light))
    cv2.rectangle(img, _p(cx - 0.2 * fw, cy + 0.3 * fh), _p(cx + 0.2 * fw, cy + 0.75 * fh),
                  _shade(style.skin, 0.85 * light), -1, cv2.LINE_AA, _SHIFT)
    if style.long_hair:
        _ellipse(img, (cx, cy + 0.05 * fh), (0.62 * fw, 0.72 * fh), hair)
    else:
        _ellipse(img, (cx, cy - 0.06 * fh), (0.55 * fw, 0.58 * fh), hair)
    # ears and face
    for sx in (-1, 1):
        _ellipse(img, (cx + sx * 0.49 * fw, cy + 0.02 * fh), (0.07 * fw, 0.11 * fh), _shade(skin, 0.92))
    _ellipse(img, (cx, cy), (0.5 * fw, 0.5 * fh), skin)
    _ellipse(img, (cx, cy - 0.36 * fh), (0.5 * fw, 0.2 * fh), hair, -1, 180, 360)
    # eyes and brows
    for sx in (-1, 1):
        ex, ey = cx + sx * 0.2 * fw, cy - 0.06 * fh
        _ellipse(img, (ex, ey), (0.085 * fw, 0.04 * fh * max(eye_open, 0.08)), (235, 235, 235))
        if eye_open > 0.3:
            _ellipse(img, (ex, ey), (0.035 * fw, 0.035 * fw * min(eye_open, 1.0)), (40, 30, 20))
        cv2.line(img, _p(ex - 0.09 * fw, ey - 0.09 * fh), _p(ex + 0.09 * fw, ey - 0.1 * fh),
                 hair, max(1, int(0.025 * fw)), cv2.LINE_AA, _SHIFT)
    # nose
    nose = np.array([_p(cx, cy - 0.02 * fh), _p(cx - 0.06 * fw, cy + 0.12 * fh),
                     _p(cx + 0.04 * fw, cy + 0.13 * fh)], np.int32)
    cv2.polylines(img, [nose], False, _shade(skin, 0.7), max(1, int(0.015 * fw)), cv2.LINE_AA, _SHIFT)
    # mouth
    opening, width, rounding = (float(v) for v in mouth)
    opening = max(opening * style.articulation, 0.0)
    mx, my = cx, cy + 0.28 * fh
    th = (0.03 + 0.03 * rounding) * fw  # lip thickness
    ax = 0.5 * width * fw * (1 - 0.15 * rounding)
    ay = 0.5 * opening * fw
    lips = _shade(style.lips, light)
    _ellipse(img, (mx, my), (ax + th, ay + th), lips)
    if ay > 0.6:
        _ellipse(img, (mx, my), (ax, ay), (40, 25, 60))
        if rounding < 0.6 and ay > 1.5:
            _ellipse(img, (mx, my - ay), (0.75 * ax, min(0.45 * ay, 0.05 * fw)), (225, 230, 235),
                     -1, 0, 180)
        _ellipse(img, (mx, my), (ax + 0.5 * th, ay + 0.5 * th), lips, max(1, int(round(th))))
    else:
        cv2.line(img, _p(mx - ax, my), _p(mx + ax, my), _shade(lips, 0.5),
                 max(1, int(0.012 * fw)), cv2.LINE_AA, _SHIFT)
    pad = 0.02 * fw
    lip_box = _clip_box(mx - ax - th - pad, my - ay - th - pad, mx + ax + th + pad,
                        my + ay + th + pad, w_img, h_img)
    face_box = _clip_box(cx - 0.56 * fw, cy - 0.56 * fh, cx + 0.56 * fw, cy + 0.52 * fh,
                         w_img, h_img)
    return face_box, lip_box
