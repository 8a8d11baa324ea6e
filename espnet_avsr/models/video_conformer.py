"""Video-only Conformer encoder: the lip-reading model (V0) that pre-trains the video branch.

Why: an AV model initialised from A0 already fits its training data through the audio
branch, so a freshly initialised visual front-end gets almost no gradient and the model
learns to ignore the lips (see RESULTS.md, 2026-11-23 small run). Real AVSR recipes
(MISP baselines, Auto-AVSR) therefore start the video side from a trained lip reader.
V0 is that lip reader, trained with the same task, data and joint CTC/attention loss.

Parameter names follow ``AVConformerEncoder``'s video side (``video_proj``,
``video_blocks.<i>``), so ``espnet_avsr.models.asr_init.map_vsr_to_avsr`` copies V0's visual front-end,
projection and first N blocks onto an AV model's video branch by name.
The audio features the task passes in are ignored; output runs at the video frame rate.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
from torch import nn

from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet.nets.pytorch_backend.transformer.embedding import RelPositionalEncoding
from espnet.nets.pytorch_backend.transformer.layer_norm import LayerNorm

from espnet_avsr.data.presence import VideoPresence
from espnet_avsr.models.av_conformer import EncoderOutput, encoder_presence, make_conformer_layer


class VideoConformerEncoder(AbsEncoder):
    """ESPnet Conformer blocks over visual front-end features (B, T, Dv) -> (B, T, D)."""

    def __init__(
        self,
        input_size: int,
        video_input_size: int = 256,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 2,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        macaron_style: bool = True,
        use_cnn_module: bool = True,
        cnn_module_kernel: int = 31,
        activation_type: str = "swish",
        zero_triu: bool = False,
        max_pos_emb_len: int = 5000,
    ):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        d = output_size
        self._output_size = d
        self.num_blocks = num_blocks
        self.video_proj = nn.Identity() if video_input_size == d else nn.Linear(video_input_size, d)
        self.video_pos = RelPositionalEncoding(d, positional_dropout_rate, max_pos_emb_len)
        self.video_blocks = nn.ModuleList(
            [
                make_conformer_layer(d, attention_heads, linear_units, dropout_rate, attention_dropout_rate,
                                     macaron_style, use_cnn_module, cnn_module_kernel, activation_type, zero_triu)
                for _ in range(num_blocks)
            ]
        )
        self.after_norm = LayerNorm(d)

    def output_size(self) -> int:
        return self._output_size

    def forward(
        self,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        video_feats: torch.Tensor,
        video_lengths: torch.Tensor,
        video_missing: Optional[torch.Tensor] = None,
        return_hidden: bool = False,
        utt_ids: Optional[Sequence[str]] = None,
        presence: Optional[VideoPresence] = None,
    ) -> EncoderOutput:
        """Same call as ``AVConformerEncoder.forward``; ``feats`` are not used.

        ``aux`` holds ``video`` (the output stream) and ``video_missing`` like the AV encoder,
        and with ``return_hidden`` also ``video.<i>`` after block i.
        """
        presence = encoder_presence(video_lengths, video_missing, presence)
        t = int(video_lengths.max())
        x = self.video_proj(video_feats[:, :t])
        valid = ~make_pad_mask(video_lengths, maxlen=t).to(x.device)
        x = x.masked_fill(~valid[..., None], 0.0)  # padding content never reaches valid frames
        missing = presence.missing.to(x.device)
        mask = valid[:, None, :]
        x, pos = self.video_pos(x)
        hidden: Dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.video_blocks):
            (x, _), _ = block((x, pos), mask)
            if return_hidden:
                hidden[f"video.{i}"] = x
        x = self.after_norm(x)
        hidden["video"] = x
        hidden["video_missing"] = missing
        return x, video_lengths.to(x.device), hidden

    def forward_audio_only(self, *args, **kwargs) -> EncoderOutput:
        raise ValueError("VideoConformerEncoder is a lip reader: it has no audio-only route (MS-Adapters need an AV encoder)")
