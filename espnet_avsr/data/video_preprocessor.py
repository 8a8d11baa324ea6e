"""AVSR preprocessor: ESPnet's CommonPreprocessor (audio, text tokens) + lip-ROI handling.

Video arrives as the dumped uint8 ``(T, 96, 96)`` grey ROIs (DESIGN §3). Training takes a
random ``crop_size`` crop, a horizontal flip with probability ``flip_prob`` and optional
time masking; evaluation takes the centre crop. Frames become float32
``(x / 255 - mean) / std`` so that a zero-filled (missing) frame is 0 in this domain.

Training randomness comes from numpy's global state, which ESPnet seeds: the trainer calls
``set_all_random_seed(seed + epoch)`` before every epoch and each DataLoader worker runs
``np.random.seed(seed + epoch + worker_id)``. So ``--seed`` reproduces the augmented
batches and a resumed run draws what an uninterrupted one would. Eval draws nothing.
"""

from __future__ import annotations

from typing import Dict, Optional, Union

import numpy as np

from espnet2.train.preprocessor import CommonPreprocessor

from espnet_avsr.common.timing import CROP_SIZE
from espnet_avsr.data.roi_norm import ROI_MEAN, ROI_STD  # noqa: F401 - also re-exported here


class VideoFormatError(ValueError):
    """A video array that is not (T, H, W) grey frames at least crop_size wide."""


def seeded_rng() -> np.random.Generator:
    """A Generator drawn from np.random's global state (one draw per call), see module doc."""
    return np.random.default_rng(np.random.randint(0, 2**63 - 1, dtype=np.int64))


def crop_video(video: np.ndarray, size: int, train: bool, rng: Optional[np.random.Generator]) -> np.ndarray:
    """Random (train) or centre (eval) square crop of a (T, H, W) array."""
    h, w = video.shape[1:3]
    if train:
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    else:
        top, left = (h - size) // 2, (w - size) // 2
    return video[:, top : top + size, left : left + size]


def time_mask(video: np.ndarray, num_masks: int, max_width: int, rng: np.random.Generator) -> np.ndarray:
    """Zero ``num_masks`` random spans of up to ``max_width`` frames (normalised domain)."""
    t = video.shape[0]
    for _ in range(num_masks):
        width = int(rng.integers(0, max_width + 1))
        if width == 0 or width >= t:
            continue
        start = int(rng.integers(0, t - width + 1))
        video[start : start + width] = 0.0
    return video


class AVSRPreprocessor(CommonPreprocessor):
    """CommonPreprocessor plus the ``video`` entry (see the module docstring).

    Extra args: video_name, crop_size (88), flip_prob (0.5), time_mask_num (0),
    time_mask_max_frames (10), mean / std of the pixel normalisation.
    """

    def __init__(
        self,
        train: bool,
        video_name: str = "video",
        crop_size: int = CROP_SIZE,
        flip_prob: float = 0.5,
        time_mask_num: int = 0,
        time_mask_max_frames: int = 10,
        mean: float = ROI_MEAN,
        std: float = ROI_STD,
        **kwargs,
    ):
        super().__init__(train=train, **kwargs)
        self.video_name = video_name
        self.crop_size = crop_size
        self.flip_prob = flip_prob
        self.time_mask_num = time_mask_num
        self.time_mask_max_frames = time_mask_max_frames
        self.mean = mean
        self.std = std

    def process_video(self, uid: str, video: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W) [or (T, H, W, 1)] -> float32 (T, crop, crop), normalised."""
        if video.ndim == 4 and video.shape[-1] == 1:
            video = video[..., 0]
        if video.ndim != 3:
            raise VideoFormatError(f"{uid}: video must be (T, H, W) grey ROIs, got shape {video.shape}")
        if min(video.shape[1:]) < self.crop_size:
            raise VideoFormatError(f"{uid}: ROI {video.shape[1:]} is smaller than crop_size {self.crop_size}")
        rng = seeded_rng() if self.train else None
        x = crop_video(video, self.crop_size, self.train, rng)
        if self.train and rng.random() < self.flip_prob:
            x = x[:, :, ::-1]
        scale = 255.0 if video.dtype == np.uint8 else 1.0
        x = ((x.astype(np.float32) / scale) - self.mean) / self.std
        if self.train and self.time_mask_num > 0:
            x = time_mask(x, self.time_mask_num, self.time_mask_max_frames, rng)
        return np.ascontiguousarray(x, dtype=np.float32)

    def __call__(self, uid: str, data: Dict[str, Union[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        data = super().__call__(uid, data)
        if self.video_name in data:
            data[self.video_name] = self.process_video(uid, data[self.video_name])
        return data
