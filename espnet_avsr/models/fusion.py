"""Audio-visual fusion pieces: dual cross-attention and the FFNs that merge the streams.

Kept apart from the encoder so later additions (MS-Adapters skipping the video branch,
KD hooks on fused representations) can find and wrap them by name.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from espnet.nets.pytorch_backend.nets_utils import get_activation
from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.layer_norm import LayerNorm


class DualCrossAttention(nn.Module):
    """Audio queries video and video queries audio (ESPnet MHA), residual add + LayerNorm.

    Both directions read the *input* streams, so the update is symmetric.
    ``key_mask_video`` (B, 1, T) selects which video frames audio may attend to; a row
    with no True entry yields a zero context (ESPnet's masked softmax), so a sample with
    its video entirely masked only keeps the residual path.
    """

    def __init__(self, size: int, heads: int, dropout_rate: float = 0.1, attention_dropout_rate: float = 0.0):
        super().__init__()
        self.attn_a2v = MultiHeadedAttention(heads, size, attention_dropout_rate)
        self.attn_v2a = MultiHeadedAttention(heads, size, attention_dropout_rate)
        self.norm_a = LayerNorm(size)
        self.norm_v = LayerNorm(size)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(
        self,
        audio: torch.Tensor,
        video: torch.Tensor,
        mask: torch.Tensor,
        key_mask_video: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """audio, video: (B, T, D); mask: (B, 1, T) True = valid frame."""
        kv_mask = mask if key_mask_video is None else key_mask_video
        a_ctx = self.attn_a2v(audio, video, video, kv_mask)
        v_ctx = self.attn_v2a(video, audio, audio, mask)
        return self.norm_a(audio + self.dropout(a_ctx)), self.norm_v(video + self.dropout(v_ctx))


class StreamMerge(nn.Module):
    """FFN over the concatenated streams [audio; video] -> d_model, then LayerNorm."""

    def __init__(self, size: int, hidden_units: int, dropout_rate: float = 0.1, activation_type: str = "swish"):
        super().__init__()
        self.ffn = nn.Sequential(
            nn.Linear(2 * size, hidden_units),
            get_activation(activation_type),
            nn.Dropout(dropout_rate),
            nn.Linear(hidden_units, size),
        )
        self.norm = LayerNorm(size)

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return self.norm(self.ffn(torch.cat([audio, video], dim=-1)))


class MultiLayerMerge(nn.Module):
    """The figure's merge FFN: [v_0; v_1; ...; v_N] (stacked on features) -> d_model.

    ``v_0`` is the video stream entering the first fusion layer (front-end output projected
    to d_model), ``v_i`` the video stream after fusion layer i. The encoder adds the output
    to the last fusion layer's audio stream. The last Linear starts at zero, so at init the
    shared blocks read the audio stream alone: an AV model initialised from A0 starts from
    A0's audio path (audio blocks -> shared blocks) up to the cross-attention residuals.
    """

    def __init__(
        self, size: int, num_inputs: int, hidden_units: int, dropout_rate: float = 0.1, activation_type: str = "swish"
    ):
        super().__init__()
        if num_inputs < 1:
            raise ValueError(f"the merge FFN needs at least one input stream, got {num_inputs}")
        self.num_inputs = num_inputs
        self.ffn = nn.Sequential(
            nn.Linear(num_inputs * size, hidden_units),
            get_activation(activation_type),
            nn.Dropout(dropout_rate),
            nn.Linear(hidden_units, size),
        )
        nn.init.zeros_(self.ffn[3].weight)
        nn.init.zeros_(self.ffn[3].bias)

    def forward(self, streams: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(streams) != self.num_inputs:
            raise ValueError(f"the merge FFN was built for {self.num_inputs} streams, got {len(streams)}")
        return self.ffn(torch.cat(list(streams), dim=-1))
