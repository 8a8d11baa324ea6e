"""Which video frames exist, per sample: the missing-video contract in one type.

Five places meet a missing frame: the dump's no-video marker, the collate, training-time
video dropout, the encoder's length reconciliation with the audio (frames ``repeat_last``
invents) and the test-time simulation. Each of them writes into, or reads, a
``VideoPresence``; no other module interprets ``video_missing`` (``tests/test_video_presence.py``
checks the source for it). Why: the MS-Adapter switch, audio dropout, the encoders and
decoding must agree on which frames a sample has; each reading the tensors itself, they had
begun to drift (a mask narrower than its video: ``frames_present`` took the frames past it
as present, the encoder repeated the last flag over them).

A batch carries ``video_lengths`` (B,) and ``video_missing`` (B, T) bool (True = missing, its
content is a fill). ESPnet's collate and trainer pass tensors in a dict, so the model makes
a ``VideoPresence`` from that pair once, at its boundary (``from_batch``), and hands the
object on. The rules, stated here only:

- a frame exists when it lies within its sample's length and is not flagged; flags past a
  sample's length are ignored, frames past the flags' width exist;
- a sample has video when at least one of its frames exists, else its video is absent
  (the MS-Adapter switch turns on; audio dropout spares it);
- a zero-length video is the dump's no-video marker (``make_dump --no_roi mark``): the
  collate gives it as many frames as the audio, every one missing (``from_absent``);
- more missing frames (a dropout draw, a test-time simulation) are a ``union``;
- after length reconciliation with the audio (``reconcile``) kept frames keep their flags
  and frames past the video's own end (invented by ``repeat_last``) are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

Flags = Union[torch.Tensor, np.ndarray, Sequence[bool]]


def is_no_video_marker(video: np.ndarray) -> bool:
    """The dump's "no video at all" marker: a ROI array with zero frames."""
    return video.shape[0] == 0


def _positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) bool: True where a frame lies within its sample's length."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def _to_width(flags: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width): ``flags`` cut or padded with False (not flagged)."""
    if flags.size(1) >= width:
        return flags[:, :width]
    return torch.cat([flags, flags.new_zeros(flags.size(0), width - flags.size(1))], dim=1)


def _width(lengths: torch.Tensor) -> int:
    return int(lengths.max()) if lengths.numel() else 0


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value
class VideoPresence:
    """Per sample, which video frames exist.

    lengths: (B,) frames each sample's video has (after ``reconcile``: the common length).
    missing: (B, max(lengths)) bool, True = the frame is missing; never True past a length.
    Build it with ``from_batch`` / ``of_utterance`` / ``from_absent`` / ``all_missing``;
    the plain constructor trusts its arguments to follow these rules (shapes are checked).
    """

    lengths: torch.Tensor
    missing: torch.Tensor

    def __post_init__(self):
        if self.lengths.dim() != 1 or self.missing.dim() != 2 or self.missing.size(0) != self.lengths.size(0):
            raise ValueError(
                f"VideoPresence needs lengths (B,) and missing (B, T); got {tuple(self.lengths.shape)} "
                f"and {tuple(self.missing.shape)}"
            )
        if self.missing.dtype != torch.bool:
            raise ValueError(f"VideoPresence.missing must be bool, got {self.missing.dtype}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_batch(cls, video_lengths: torch.Tensor, video_missing: Optional[torch.Tensor] = None) -> "VideoPresence":
        """The one reading of a batch's ``video_lengths`` + ``video_missing`` (on the lengths' device)."""
        if video_lengths is None:
            raise ValueError("a video needs its video_lengths to say which frames exist")
        lengths = video_lengths
        width = _width(lengths)
        inside = _positions(lengths, width)
        if video_missing is None:
            return cls(lengths, torch.zeros_like(inside))
        if video_missing.dim() != 2 or video_missing.size(0) != lengths.size(0):
            raise ValueError(
                f"video_missing must be (B, T) for {lengths.size(0)} samples, got {tuple(video_missing.shape)}"
            )
        return cls(lengths, _to_width(video_missing.to(lengths.device).bool(), width) & inside)

    @classmethod
    def of_utterance(cls, num_frames: int, missing: Optional[Flags] = None) -> "VideoPresence":
        """One utterance of ``num_frames`` frames with optional per-frame flags (array-like)."""
        flags = None if missing is None else torch.as_tensor(np.asarray(missing, dtype=bool)).reshape(1, -1)
        return cls.from_batch(torch.tensor([int(num_frames)]), flags)

    @classmethod
    def from_absent(cls, lengths: torch.Tensor, absent: torch.Tensor) -> "VideoPresence":
        """The collate's reading: samples flagged ``absent`` (the marker) miss every frame, the rest none."""
        inside = _positions(lengths, _width(lengths))
        return cls(lengths, inside & absent.to(device=lengths.device, dtype=torch.bool)[:, None])

    @classmethod
    def all_missing(cls, lengths: torch.Tensor) -> "VideoPresence":
        """No video at all (``video=None``, the audio-only route): every frame within ``lengths`` missing."""
        return cls(lengths, _positions(lengths, _width(lengths)))

    # ------------------------------------------------------------------ answers
    @property
    def batch_size(self) -> int:
        return self.lengths.size(0)

    @property
    def width(self) -> int:
        """Frames of the longest sample: the padded video's length."""
        return self.missing.size(1)

    @property
    def valid(self) -> torch.Tensor:
        """(B, T) bool: within each sample's length (present or missing)."""
        return _positions(self.lengths.to(self.missing.device), self.width)

    @property
    def present(self) -> torch.Tensor:
        """(B, T) bool: the frames that exist."""
        return self.valid & ~self.missing

    @property
    def has_video(self) -> torch.Tensor:
        """(B,) bool: at least one frame exists."""
        return self.present.any(dim=1)

    @property
    def absent(self) -> torch.Tensor:
        """(B,) bool: no frame exists (the MS-Adapter switch keys on this)."""
        return ~self.has_video

    def missing_fraction(self) -> torch.Tensor:
        """Missing frames over all frames of the batch (a training statistic)."""
        return self.missing.float().sum() / self.lengths.sum().clamp(min=1)

    # ------------------------------------------------------------------ new presences
    def union(self, flags: Flags) -> "VideoPresence":
        """These frames missing as well (a dropout draw, a test-time simulation): (B, T') flags."""
        extra = torch.as_tensor(flags).to(device=self.missing.device, dtype=torch.bool)
        if extra.dim() != 2 or extra.size(0) != self.batch_size:
            raise ValueError(f"union needs (B, T) flags for {self.batch_size} samples, got {tuple(extra.shape)}")
        return VideoPresence(self.lengths, (self.missing | _to_width(extra, self.width)) & self.valid)

    def rows(self, index: torch.Tensor) -> "VideoPresence":
        """The samples ``index`` (a sub-batch), trimmed to the longest of them."""
        lengths = self.lengths[index.to(self.lengths.device)]
        return VideoPresence(lengths, self.missing[index.to(self.missing.device), : _width(lengths)])

    def reconcile(self, lengths: torch.Tensor) -> "VideoPresence":
        """After length reconciliation with the audio: ``lengths`` per sample (on their device).

        Frames within both streams keep their flags; frames past the video's own end, which
        ``repeat_last`` invented to reach the audio's length, are missing.
        """
        width = _width(lengths)
        kept = _positions(lengths, width)
        invented = ~_positions(self.lengths.to(lengths.device), width)
        return VideoPresence(lengths, (_to_width(self.missing.to(lengths.device), width) | invented) & kept)

    def to(self, device: Union[str, torch.device]) -> "VideoPresence":
        return VideoPresence(self.lengths.to(device), self.missing.to(device))
