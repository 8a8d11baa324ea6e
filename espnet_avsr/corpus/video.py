"""Far (all speakers) and middle (one speaker) camera views, MP4 writing and detections.

A :class:`Scene` holds a static background and the people in it; rendering a frame
draws every face at its current head pose and mouth shape and returns the boxes of
what was drawn. :func:`render_video` writes the MP4 (25 fps, ``mp4v``) and returns
the per-frame boxes; :func:`detections` turns them into MISP detection JSON with a
realistic share of missing detections (isolated misses and bursts).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from espnet_avsr.common.timing import VIDEO_FPS
from espnet_avsr.corpus.faces import Box, FaceStyle, HeadMotion, draw_face
from espnet_avsr.corpus.visemes import MouthTrack



class VideoWriteError(RuntimeError):
    """An MP4 could not be written or does not read back correctly."""


@dataclass
class Person:
    """A speaker placed in a scene."""

    spk: str
    style: FaceStyle
    motion: HeadMotion
    track: MouthTrack
    cx: float  # base centre (pixels)
    cy: float
    fw: float  # base face width (pixels)


@dataclass
class Scene:
    """A camera view: static background + people + lighting (+ optional flickering TV)."""

    background: np.ndarray  # (H, W, 3) uint8 BGR
    people: List[Person]
    light: float = 1.0
    tv_box: Optional[Tuple[int, int, int, int]] = None
    tv_seed: int = 0
    #: per person, per frame: the mouth is hidden behind a hand (the detector still fires)
    occluded: Optional[List[np.ndarray]] = None
    #: per-frame brightness factor (lamps, TV light, clouds); None = steady
    flicker: Optional[np.ndarray] = None
    #: camera degradation applied to the finished frame (blur, noise, compression)
    camera: Optional["Camera"] = None
    _frame: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._frame = np.empty_like(self.background)

    @property
    def size(self) -> Tuple[int, int]:
        return self.background.shape[1], self.background.shape[0]

    def prepare(self, n_frames: int) -> None:
        """Precompute every person's head pose and mouth shape for all frames."""
        t = np.arange(n_frames) / VIDEO_FPS
        self._pose = [p.motion.at(t) for p in self.people]
        self._mouth = [p.track.sample(t) for p in self.people]

    def render(self, i: int) -> Tuple[np.ndarray, Dict[str, Tuple[Box, Box]]]:
        """Frame ``i`` (after :meth:`prepare`) and ``{spk: (face box, lip box)}``.

        The frame buffer is reused between calls.
        """
        frame = self._frame
        np.copyto(frame, self.background)
        if self.tv_box is not None:
            x1, y1, x2, y2 = self.tv_box
            k = int(i / VIDEO_FPS * 2)  # the TV picture changes twice a second
            col = np.random.default_rng([self.tv_seed, k]).integers(40, 220, 3)
            frame[y1:y2, x1:x2] = (col * self.light).astype(np.uint8)
        boxes: Dict[str, Tuple[Box, Box]] = {}
        for p, pose, mouth in zip(self.people, self._pose, self._mouth):
            dx, dy, zoom, eye = pose[i]
            boxes[p.spk] = draw_face(frame, p.cx + dx * p.fw, p.cy + dy * p.fw, p.fw * zoom,
                                     p.style, mouth[i], eye, self.light)
        if self.occluded is not None:
            for p, occ in zip(self.people, self.occluded):
                if occ[i] and p.spk in boxes:
                    draw_hand(frame, boxes[p.spk][1], p.style.skin, self.light)
        if self.flicker is not None:
            cv2.convertScaleAbs(frame, frame, alpha=float(self.flicker[i]))
        if self.camera is not None:
            frame = self.camera.apply(frame)
        return frame, boxes


def draw_hand(frame: np.ndarray, lip: Box, skin: Tuple[int, int, int], light: float) -> None:
    """A hand (skin-coloured blob with knuckle lines) over the mouth at box ``lip``."""
    x1, y1, x2, y2 = lip
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    ax, ay = 0.75 * (x2 - x1) + 2, 0.9 * (y2 - y1) + 2
    col = tuple(int(min(255, c * 0.93 * light)) for c in skin)
    cv2.ellipse(frame, (int(cx), int(cy + 0.2 * ay)), (int(ax), int(ay)), 0, 0, 360, col, -1, cv2.LINE_AA)
    dark = tuple(int(c * 0.7) for c in col)
    for k in (-1, 0, 1):
        x = int(cx + k * ax / 3)
        cv2.line(frame, (x, int(cy - 0.5 * ay)), (x, int(cy + 0.6 * ay)), dark, 1, cv2.LINE_AA)


@dataclass
class Camera:
    """A poor far camera: low effective resolution, blur (optics, focus), sensor noise and
    JPEG-like compression. The frame is degraded at 1/``downscale`` of its size and scaled
    back, which is what a small sensor behind a wide lens gives (and 4x cheaper at 2)."""

    blur: float = 0.0  # sigma in full-frame pixels
    noise: float = 0.0  # std, grey levels
    jpeg_quality: int = 0  # 0 = off
    downscale: int = 1
    seed: int = 0
    _bank: Optional[List[Tuple[np.ndarray, np.ndarray]]] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def active(self) -> bool:
        return self.blur > 0 or self.noise > 0 or self.jpeg_quality > 0 or self.downscale > 1

    def _noise(self, shape: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
        """One of 8 pre-drawn noise fields as (positive, negative) uint8 parts, so adding it
        is two saturating uint8 operations instead of a float round trip."""
        if self._bank is None or self._bank[0][0].shape != shape:
            self._bank = []
            for _ in range(8):
                n = np.rint(self._rng.standard_normal(shape[:2]) * self.noise)
                n = np.repeat(n[..., None], shape[2], axis=2) if len(shape) == 3 else n
                self._bank.append((np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)))
        return self._bank[int(self._rng.integers(len(self._bank)))]

    def apply(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        small = frame
        if self.downscale > 1:
            small = cv2.resize(frame, (w // self.downscale, h // self.downscale), interpolation=cv2.INTER_AREA)
        if self.blur > 0:
            small = cv2.GaussianBlur(small, (0, 0), self.blur / self.downscale)
        if self.noise > 0:
            pos, neg = self._noise(small.shape)
            small = cv2.subtract(cv2.add(small, pos), neg)
        if self.jpeg_quality > 0:
            ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise VideoWriteError("JPEG encoding of a frame failed")
            small = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if small is not frame and small.shape[:2] != (h, w):
            small = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return small


def flicker_track(n_frames: int, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame brightness factors around 1: slow drifts plus a few lamp switches."""
    t = np.arange(n_frames) / VIDEO_FPS
    f = np.ones(n_frames)
    for _ in range(2):
        f += 0.5 * amount * np.sin(2 * np.pi * rng.uniform(0.02, 0.3) * t + rng.uniform(0, 2 * np.pi))
    for _ in range(rng.poisson(n_frames / VIDEO_FPS / 60)):  # about one switch a minute
        f[int(rng.integers(n_frames)):] *= 1 + amount * rng.choice([-1, 1])
    return np.clip(f, 0.3, 1.6)


def make_background(rng: np.random.Generator, size: Tuple[int, int], light: float,
                    with_tv: bool) -> Tuple[np.ndarray, Optional[Tuple[int, int, int, int]]]:
    """A living-room backdrop: wall gradient, floor, sofa, maybe a TV on the wall."""
    w, h = size
    wall = rng.integers(120, 220, 3).astype(np.float32)
    grad = np.linspace(1.0, 0.8, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(wall[None, None, :] * grad, (h, w, 3)).copy()
    floor_y = int(h * 0.78)
    img[floor_y:] = rng.integers(40, 120, 3)
    sofa = rng.integers(30, 160, 3)
    img[int(h * 0.55):floor_y + int(h * 0.05), : w] = sofa
    img = np.clip(img * light, 0, 255).astype(np.uint8)
    tv_box = None
    if with_tv:
        tw, th = int(w * 0.12), int(h * 0.14)
        x1 = int(rng.uniform(0.02, 0.86) * w)
        y1 = int(h * 0.05)
        cv2.rectangle(img, (x1 - 4, y1 - 4), (x1 + tw + 4, y1 + th + 4), (20, 20, 20), -1)
        tv_box = (x1, y1, x1 + tw, y1 + th)
    return img, tv_box


def far_layout(n: int, size: Tuple[int, int], styles: Sequence[FaceStyle],
               rng: np.random.Generator) -> List[Tuple[float, float, float]]:
    """(cx, cy, face width) of ``n`` people side by side in a wide view."""
    w, h = size
    panel = w / n
    out = []
    for i, st in enumerate(styles):
        fw = min(0.42 * panel, 0.26 * h) * st.size
        cx = panel * (i + 0.5) + rng.uniform(-0.08, 0.08) * panel
        cy = h * rng.uniform(0.40, 0.48)
        out.append((cx, cy, fw))
    return out


def middle_layout(size: Tuple[int, int], style: FaceStyle,
                  rng: np.random.Generator) -> Tuple[float, float, float]:
    """(cx, cy, face width) of one person filling a middle-camera view."""
    w, h = size
    fw = 0.42 * h * style.size
    return w * rng.uniform(0.42, 0.58), h * rng.uniform(0.40, 0.46), fw


def render_video(scene: Scene, n_frames: int, path: Path) -> List[Dict[str, Tuple[Box, Box]]]:
    """Write ``n_frames`` at 25 fps to ``path`` (via a temp name, then renamed).

    Returns the boxes drawn in every frame. Raises :class:`VideoWriteError` if the
    writer cannot open or the file does not read back with ``n_frames`` frames.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.mp4")
    w, h = scene.size
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (w, h))
    if not writer.isOpened():
        raise VideoWriteError(f"{tmp}: cv2.VideoWriter could not open (mp4v, {w}x{h})")
    boxes = []
    scene.prepare(n_frames)
    try:
        for i in range(n_frames):
            frame, b = scene.render(i)
            writer.write(frame)
            boxes.append(b)
    finally:
        writer.release()
    cap = cv2.VideoCapture(str(tmp))
    got = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    if got != n_frames:
        raise VideoWriteError(f"{tmp}: wrote {n_frames} frames but it reads back {got}")
    os.replace(tmp, path)
    return boxes


def missing_mask(n_frames: int, rate: float, rng: np.random.Generator,
                 burst_share: float = 0.6, mean_burst: float = 12.0) -> np.ndarray:
    """Boolean mask of frames whose detection is missing: about ``rate`` of all frames,
    ``burst_share`` of them in bursts (geometric lengths, mean ``mean_burst`` frames)."""
    miss = np.zeros(n_frames, bool)
    if rate <= 0 or n_frames == 0:
        return miss
    n_bursts = rng.poisson(rate * burst_share * n_frames / mean_burst)
    for _ in range(n_bursts):
        start = int(rng.integers(n_frames))
        length = int(rng.geometric(1.0 / mean_burst))
        miss[start:start + length] = True
    miss |= rng.random(n_frames) < rate * (1 - burst_share)
    return miss


def detections(
    boxes: Sequence[Dict[str, Tuple[Box, Box]]],
    rate: float,
    rng: np.random.Generator,
    nested: bool,
) -> Dict:
    """MISP detection JSON: ``{"<frame>": [{"id", "x1", "y1", "x2", "y2", "lip"}]}``.

    Each person misses about ``rate`` of frames (video-level rate jittered 0.5-1.5x).
    A frame with nobody detected is sometimes an empty list and sometimes absent.
    ``nested`` wraps the dict under a top-level ``"frames"`` key (raw-file variant).
    """
    spks = sorted({s for b in boxes for s in b})
    masks = {s: missing_mask(len(boxes), rate * rng.uniform(0.5, 1.5), rng) for s in spks}
    absent_style = rng.random(len(boxes)) < 0.5
    frames: Dict[str, List[Dict]] = {}
    for i, b in enumerate(boxes):
        entries = []
        for s in spks:
            if s not in b or masks[s][i]:
                continue
            (x1, y1, x2, y2), lip = b[s]
            if x2 <= x1 or y2 <= y1 or lip[2] <= lip[0] or lip[3] <= lip[1]:
                continue  # face left the picture
            entries.append({"id": s, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "lip": list(lip)})
        if entries or not absent_style[i]:
            frames[str(i)] = entries
    return {"frames": frames} if nested else frames


def crop_lip(frame: np.ndarray, lip: Sequence[int], out: int = 96) -> np.ndarray:
    """Square grey crop of side max(w, h, 96) centred on a lip box, resized to ``out``.

    The MISP baseline's ROI rule; used by the corpus tests to check that the lip
    boxes point at the drawn mouths.
    """
    x1, y1, x2, y2 = (int(v) for v in lip)
    side = max(x2 - x1, y2 - y1, 96)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a, b = int(round(cx - side / 2)), int(round(cy - side / 2))
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    pad = np.pad(grey, side, mode="edge")
    crop = pad[b + side:b + 2 * side, a + side:a + 2 * side]
    return cv2.resize(crop, (out, out), interpolation=cv2.INTER_AREA)
