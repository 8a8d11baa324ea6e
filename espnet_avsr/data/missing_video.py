"""Missing-video simulation: one home for training-time video dropout and test-time loss.

The same functions serve both uses so that a model trained with dropout pattern X is
evaluated with exactly the same notion of "missing" (the paper's protocol).

A mask is a boolean array over video frames, ``True`` = the frame is missing.
Patterns:
  random     exactly ``round(rate * T)`` frames chosen uniformly without replacement
  segment    one contiguous block of ``round(rate * T)`` frames at a random start
  utterance  all frames missing with probability ``rate`` (else none); over a test set
             ``rate`` is the expected fraction of utterances with no video at all
Fills (what a missing frame becomes), in the normalised domain the model reads:
  zeros        0, i.e. a mean-grey frame (0 after ``(x / 255 - mean) / std``)
  black        ``-mean / std``: what a black (0-intensity) frame becomes after the ROI
               normalisation, the paper's student input (its figure shows black frames)
  repeat_last  the last present frame before it (zeros when no frame before it is present)
``mean`` / ``std`` default to the preprocessor's ``ROI_MEAN`` / ``ROI_STD``; a recipe that
changes ``preprocessor_conf.mean/std`` must give the same values to ``black``.

Test-time masks are seeded per utterance from ``(seed, utt_id)`` with a stable hash, so
every model decoded with the same seed sees the same missing frames.

This module draws masks and fills frames; which frames a sample then has is
``VideoPresence``'s answer (``data/presence.py``: a draw enters it with ``union``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from espnet_avsr.common.seeding import utterance_rng
from espnet_avsr.data.roi_norm import ROI_MEAN, ROI_STD

PATTERNS = ("random", "segment", "utterance")
FILLS = ("zeros", "repeat_last", "black")

Rate = Union[float, Tuple[float, float]]


def _check(pattern: str, fill: Optional[str] = None) -> None:
    if pattern not in PATTERNS:
        raise ValueError(f"unknown missing-video pattern {pattern!r}; choose one of {PATTERNS}")
    if fill is not None and fill not in FILLS:
        raise ValueError(f"unknown missing-video fill {fill!r}; choose one of {FILLS}")


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"missing-video rate must be in [0, 1], got {rate}")


def black_level(mean: float = ROI_MEAN, std: float = ROI_STD) -> float:
    """A 0-intensity pixel after the ROI normalisation ``(x / 255 - mean) / std``."""
    if std <= 0:
        raise ValueError(f"ROI normalisation std must be > 0, got {std}")
    return (0.0 - mean) / std


def fill_value(fill: str, mean: float = ROI_MEAN, std: float = ROI_STD) -> float:
    """The constant a missing frame is set to (``zeros`` / ``black``)."""
    _check("random", fill)
    if fill == "repeat_last":
        raise ValueError("repeat_last fills with earlier frames, not a constant")
    return black_level(mean, std) if fill == "black" else 0.0


def missing_mask(num_frames: int, rate: float, pattern: str, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of length ``num_frames`` with True where the frame is missing."""
    _check(pattern)
    _check_rate(rate)
    mask = np.zeros(num_frames, dtype=bool)
    if num_frames == 0 or rate == 0.0:
        return mask
    if pattern == "utterance":
        if rate >= 1.0 or rng.random() < rate:
            mask[:] = True
        return mask
    n = int(round(rate * num_frames))
    if n == 0:
        return mask
    if pattern == "random":
        mask[rng.choice(num_frames, size=n, replace=False)] = True
    else:  # segment
        start = int(rng.integers(0, num_frames - n + 1))
        mask[start : start + n] = True
    return mask


def _repeat_last_index(mask: np.ndarray) -> np.ndarray:
    """For each frame, the index of the last present frame at or before it (-1 if none)."""
    idx = np.where(~mask, np.arange(len(mask)), -1)
    return np.maximum.accumulate(idx) if len(idx) else idx


def apply_missing(video, mask, fill: str = "zeros", mean: float = ROI_MEAN, std: float = ROI_STD):
    """Return a copy of ``video`` (T, ...) with masked frames replaced by ``fill``.

    Works on numpy arrays and torch tensors; the mask may be numpy or torch. ``mean`` /
    ``std``: the ROI normalisation, used by ``black``.
    """
    _check("random", fill)
    is_torch = isinstance(video, torch.Tensor)
    m = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask, dtype=bool)
    if m.shape[0] != video.shape[0]:
        raise ValueError(f"mask has {m.shape[0]} frames but video has {video.shape[0]}")
    out = video.clone() if is_torch else np.array(video, copy=True)
    if not m.any():
        return out
    if fill in ("zeros", "black"):
        sel = torch.from_numpy(m).to(out.device) if is_torch else m
        out[sel] = fill_value(fill, mean, std)
        return out
    src = _repeat_last_index(m)
    missing = np.nonzero(m)[0]
    have = src[missing] >= 0
    if is_torch:
        dst_t = torch.from_numpy(missing[have]).to(out.device)
        src_t = torch.from_numpy(src[missing[have]]).to(out.device)
        out[dst_t] = video[src_t]
        if (~have).any():
            out[torch.from_numpy(missing[~have]).to(out.device)] = 0
    else:
        out[missing[have]] = video[src[missing[have]]]
        out[missing[~have]] = 0
    return out


def simulate_missing(video, utt_id: str, rate: float, pattern: str = "random", fill: str = "zeros", seed: int = 0):
    """Test-time protocol: deterministic per (seed, utt_id). Returns (video, mask)."""
    mask = missing_mask(video.shape[0], rate, pattern, utterance_rng(utt_id, seed))
    return apply_missing(video, mask, fill), mask


@dataclass
class VideoDropoutConfig:
    """Training-time video dropout (the paper's D_prob and dropout rate).

    prob:    per-sample probability that dropout is applied at all (D_prob)
    rate:    fraction of frames dropped when applied; a (low, high) pair samples it
             uniformly per sample
    pattern: random | segment | utterance
    fill:    zeros | black | repeat_last (see the module docstring)
    mean / std: the ROI normalisation (``preprocessor_conf``), which ``black`` needs
    """

    prob: float = 0.0
    rate: Rate = 0.5
    pattern: str = "random"
    fill: str = "zeros"
    mean: float = ROI_MEAN
    std: float = ROI_STD

    def __post_init__(self):
        _check(self.pattern, self.fill)
        black_level(self.mean, self.std)  # std > 0
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"video dropout prob must be in [0, 1], got {self.prob}")
        rates = self.rate if isinstance(self.rate, (tuple, list)) else (self.rate,)
        for r in rates:
            _check_rate(float(r))

    def sample_rate(self, rng: np.random.Generator) -> float:
        if isinstance(self.rate, (tuple, list)):
            lo, hi = float(self.rate[0]), float(self.rate[1])
            return float(rng.uniform(lo, hi))
        return float(self.rate)


def batch_dropout_mask(
    lengths: Sequence[int],
    max_len: int,
    cfg: VideoDropoutConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """(B, max_len) missing mask for a padded batch; padding frames are never marked."""
    out = np.zeros((len(lengths), max_len), dtype=bool)
    for b, n in enumerate(lengths):
        n = int(n)
        if cfg.prob > 0 and rng.random() < cfg.prob:
            out[b, :n] = missing_mask(n, cfg.sample_rate(rng), cfg.pattern, rng)
    return out


def apply_batch_missing(
    video: torch.Tensor, mask: torch.Tensor, fill: str = "zeros", mean: float = ROI_MEAN, std: float = ROI_STD
) -> torch.Tensor:
    """Apply a (B, T) mask to a padded (B, T, ...) tensor, sample by sample."""
    if not bool(mask.any()):
        return video
    if fill == "zeros":
        keep = (~mask).to(video.dtype).view(*mask.shape, *([1] * (video.dim() - 2)))
        return video * keep
    if fill == "black":
        sel = mask.to(video.device).view(*mask.shape, *([1] * (video.dim() - 2)))
        return video.masked_fill(sel, fill_value(fill, mean, std))
    return torch.stack([apply_missing(video[b], mask[b], fill) for b in range(video.shape[0])])
