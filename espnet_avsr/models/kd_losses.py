"""Frame-wise knowledge-distillation distances for MDA-KD, masked over valid frames.

Every distance maps a student / teacher pair of ``(B, T, D)`` tensors to a ``(B, T)``
per-frame distance that is >= 0 and 0 where the two agree:

  mse     mean over D of (s - t)^2                       (hidden representations)
  cosine  1 - cos(s, t)                                  (hidden representations, scale-free)
  kl      T^2 * KL(softmax(t / T) || softmax(s / T))     (logits: CTC or decoder posteriors)

``reduce_frames`` turns the per-frame map into a scalar following ESPnet's loss
convention, so ``kd_weight`` weighs KD against CTC/attention on the same scale: a sum over
each utterance's frames averaged over utterances, or with ``length_normalized`` a mean
over frames.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

DISTANCES = ("mse", "cosine", "kl")


def frame_distance(student: torch.Tensor, teacher: torch.Tensor, kind: str, temperature: float = 1.0) -> torch.Tensor:
    """(B, T, D) x (B, T, D) -> (B, T) distance, computed in float32 (safe under AMP)."""
    if kind not in DISTANCES:
        raise ValueError(f"unknown KD distance {kind!r}; choose one of {DISTANCES}")
    if student.shape != teacher.shape:
        raise ValueError(f"KD student/teacher shapes differ: {tuple(student.shape)} vs {tuple(teacher.shape)}")
    s, t = student.float(), teacher.detach().float()
    if kind == "mse":
        return (s - t).pow(2).mean(dim=-1)
    if kind == "cosine":
        return 1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-8)
    if temperature <= 0:
        raise ValueError(f"kd_temperature must be > 0, got {temperature}")
    log_p_t = F.log_softmax(t / temperature, dim=-1)
    log_p_s = F.log_softmax(s / temperature, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)
    return kl.clamp(min=0.0) * temperature**2  # clamp: float round-off only


def reduce_frames(dist: torch.Tensor, mask: torch.Tensor, length_normalized: bool = False) -> torch.Tensor:
    """Scalar from a (B, T) distance over the frames where ``mask`` is True.

    Utterances with no selected frame take no part; an empty mask gives 0.
    """
    if dist.shape != mask.shape:
        raise ValueError(f"KD distance {tuple(dist.shape)} and mask {tuple(mask.shape)} differ")
    m = mask.to(dist.dtype)
    total = (dist * m).sum()
    if length_normalized:
        return total / m.sum().clamp(min=1.0)
    return total / mask.any(dim=1).sum().clamp(min=1).to(dist.dtype)


def masked_kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    mask: torch.Tensor,
    kind: str,
    temperature: float = 1.0,
    length_normalized: bool = False,
    sample_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """KD distance over valid frames (``mask`` (B, T)) of the selected samples (``sample_mask`` (B,))."""
    if sample_mask is not None:
        mask = mask & sample_mask.to(mask.device)[:, None]
    return reduce_frames(frame_distance(student, teacher, kind, temperature), mask, length_normalized)
