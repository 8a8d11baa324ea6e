"""Map an audio-only ESPnet ASR checkpoint (A0) onto an AV-Conformer model's parameters.

A0 is stock ``ESPnetASRModel`` + ``ConformerEncoder`` (``rel_pos_type: latest``). Its
encoder blocks 0..N-1 become the audio blocks of the N fusion layers, blocks N..N+M-1 the
M shared blocks; frontend, normalize, conv subsampling (``embed``), ``after_norm``,
decoder and CTC map by name. Everything video-side stays as initialised, unless a
lip reader (V0, ``encoder: video_conformer``) is given too: ``map_vsr_to_avsr`` copies its
visual front-end, video projection and first N video blocks onto the AV video branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch


@dataclass
class MappingReport:
    mapped: Dict[str, str] = field(default_factory=dict)  # avsr key -> source key
    unused_asr: List[str] = field(default_factory=list)  # source (A0 or V0) keys with no AV counterpart
    unmapped_avsr: List[str] = field(default_factory=list)  # AV keys left at their init
    shape_mismatch: List[str] = field(default_factory=list)

    def summary(self, per_source: bool = False) -> str:
        """One line of counts. ``per_source``: the report of one source (A0 or V0) alone, whose
        uncovered AV tensors may well come from the other source, so they are not "left"."""
        left = "AV tensors this source does not cover" if per_source else "AV tensors left as initialised"
        return (
            f"mapped {len(self.mapped)} tensors; {left}: {len(self.unmapped_avsr)}; "
            f"unused source tensors: {len(self.unused_asr)}; shape mismatches: {len(self.shape_mismatch)}"
        )


_BLOCK = re.compile(r"^encoder\.encoders\.(\d+)\.(.*)$")


def asr_key_to_avsr(key: str, num_fusion_blocks: int, num_shared_blocks: int) -> Optional[str]:
    """The AV parameter name for an A0 parameter name, or None when it has no counterpart."""
    m = _BLOCK.match(key)
    if m:
        i, rest = int(m.group(1)), m.group(2)
        if i < num_fusion_blocks:
            return f"encoder.audio_blocks.{i}.{rest}"
        if i < num_fusion_blocks + num_shared_blocks:
            return f"encoder.shared_blocks.{i - num_fusion_blocks}.{rest}"
        return None
    for prefix in ("frontend.", "normalize.", "encoder.embed.", "encoder.after_norm.", "decoder.", "ctc."):
        if key.startswith(prefix):
            return key
    return None


def _map_onto(
    src_state: Dict[str, torch.Tensor],
    avsr_state: Dict[str, torch.Tensor],
    key_fn: Callable[[str], Optional[str]],
) -> tuple[Dict[str, torch.Tensor], MappingReport]:
    """Copy the source tensors ``key_fn`` names an AV counterpart for (same shape only)."""
    out: Dict[str, torch.Tensor] = {}
    rep = MappingReport()
    for k, v in src_state.items():
        tgt = key_fn(k)
        if tgt is None or tgt not in avsr_state:
            rep.unused_asr.append(k)
            continue
        if tuple(avsr_state[tgt].shape) != tuple(v.shape):
            rep.shape_mismatch.append(f"{k} {tuple(v.shape)} -> {tgt} {tuple(avsr_state[tgt].shape)}")
            continue
        out[tgt] = v.clone()
        rep.mapped[tgt] = k
    rep.unmapped_avsr = [k for k in avsr_state if k not in out]
    return out, rep


def map_asr_to_avsr(
    asr_state: Dict[str, torch.Tensor],
    avsr_state: Dict[str, torch.Tensor],
    num_fusion_blocks: int,
    num_shared_blocks: int,
) -> tuple[Dict[str, torch.Tensor], MappingReport]:
    """Return the AV-named tensors taken from A0 (only those) and a report."""
    return _map_onto(asr_state, avsr_state, lambda k: asr_key_to_avsr(k, num_fusion_blocks, num_shared_blocks))

_VSR_BLOCK = re.compile(r"^encoder\.video_blocks\.(\d+)\.")


def vsr_key_to_avsr(key: str, num_fusion_blocks: int) -> Optional[str]:
    """The AV parameter name for a V0 parameter name (same name), or None (V0's own head)."""
    if key.startswith(("video_frontend.", "encoder.video_proj.")):
        return key
    m = _VSR_BLOCK.match(key)
    if m and int(m.group(1)) < num_fusion_blocks:
        return key
    return None


def map_vsr_to_avsr(
    vsr_state: Dict[str, torch.Tensor],
    avsr_state: Dict[str, torch.Tensor],
    num_fusion_blocks: int,
) -> tuple[Dict[str, torch.Tensor], MappingReport]:
    """The AV-named video-side tensors taken from a lip reader V0, and a report."""
    return _map_onto(vsr_state, avsr_state, lambda k: vsr_key_to_avsr(k, num_fusion_blocks))
