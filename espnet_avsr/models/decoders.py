"""Decoders for the AV model: ESPnet's TransformerDecoder, plus a video-aware fusion decoder.

``AVFusionDecoder`` is ESPnet's TransformerDecoder whose every layer gets one more
cross-attention, to the final *video stream* of the AV encoder (pre-norm, residual). Its
output projection starts at zero, so a fusion decoder initialised from an audio-only
TransformerDecoder (A0) initially computes exactly what A0's decoder computes.

ESPnet's scorers pass one memory tensor to a decoder, so the fusion decoder takes the
concatenation ``[encoder_out ; video_stream]`` along the feature axis, ``(B, T, 2D)``;
``ESPnetAVSRModel.decoder_memory`` builds it and ``MemorySliceCTC`` lets ESPnet's
``CTCPrefixScorer`` read only the encoder half during beam search.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.layer_norm import LayerNorm
from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask


class AVFusionDecoder(TransformerDecoder):
    """TransformerDecoder + per-layer cross-attention to the video stream.

    Same arguments as ESPnet's ``TransformerDecoder``; ``encoder_output_size`` is d_model
    (the memory it receives is 2 * d_model wide).
    """

    uses_video_memory = True

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        self_attention_dropout_rate: float = 0.0,
        src_attention_dropout_rate: float = 0.0,
        input_layer: str = "embed",
        use_output_layer: bool = True,
        normalize_before: bool = True,
        concat_after: bool = False,
    ):
        super().__init__(
            vocab_size=vocab_size,
            encoder_output_size=encoder_output_size,
            attention_heads=attention_heads,
            linear_units=linear_units,
            num_blocks=num_blocks,
            dropout_rate=dropout_rate,
            positional_dropout_rate=positional_dropout_rate,
            self_attention_dropout_rate=self_attention_dropout_rate,
            src_attention_dropout_rate=src_attention_dropout_rate,
            input_layer=input_layer,
            use_output_layer=use_output_layer,
            normalize_before=normalize_before,
            concat_after=concat_after,
            use_flash_attn=False,
        )
        d = encoder_output_size
        self.d_model = d
        self.video_attn = nn.ModuleList(
            [MultiHeadedAttention(attention_heads, d, src_attention_dropout_rate) for _ in range(num_blocks)]
        )
        self.video_norm = nn.ModuleList([LayerNorm(d) for _ in range(num_blocks)])
        self.video_dropout = nn.Dropout(dropout_rate)
        for att in self.video_attn:
            nn.init.zeros_(att.linear_out.weight)
            nn.init.zeros_(att.linear_out.bias)

    def _split(self, memory: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if memory.size(-1) != 2 * self.d_model:
            raise ValueError(
                f"AVFusionDecoder expects memory [encoder_out; video] of width {2 * self.d_model}, "
                f"got {memory.size(-1)}"
            )
        return memory[..., : self.d_model], memory[..., self.d_model :]

    def _video_step(self, i: int, x: torch.Tensor, video: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        return x + self.video_dropout(self.video_attn[i](self.video_norm[i](x), video, video, mask))

    def forward(
        self,
        hs_pad: torch.Tensor,
        hlens: torch.Tensor,
        ys_in_pad: torch.Tensor,
        ys_in_lens: torch.Tensor,
        return_hs: bool = False,
        return_all_hs: bool = False,
    ):
        enc, video = self._split(hs_pad)
        tgt_mask = (~make_pad_mask(ys_in_lens)[:, None, :]).to(ys_in_pad.device)
        tgt_mask = tgt_mask & subsequent_mask(tgt_mask.size(-1), device=tgt_mask.device).unsqueeze(0)
        mem_mask = (~make_pad_mask(hlens, maxlen=enc.size(1)))[:, None, :].to(enc.device)
        x = self.embed(ys_in_pad)
        all_hs = []
        for i, layer in enumerate(self.decoders):
            x, tgt_mask, _, _ = layer(x, tgt_mask, enc, mem_mask)
            x = self._video_step(i, x, video, mem_mask)
            all_hs.append(x)
        if self.normalize_before:
            x = self.after_norm(x)
        hidden = x
        if self.output_layer is not None:
            x = self.output_layer(x)
        olens = tgt_mask.sum(1)
        if return_hs:
            return (x, hidden), olens
        if return_all_hs:
            return (x, all_hs), olens
        return x, olens

    def forward_one_step(
        self,
        tgt: torch.Tensor,
        tgt_mask: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor = None,
        *,
        cache: List[torch.Tensor] = None,
        return_hs: bool = False,
    ):
        enc, video = self._split(memory)
        x = self.embed(tgt)
        if cache is None:
            cache = [None] * len(self.decoders)
        new_cache = []
        for i, (c, layer) in enumerate(zip(cache, self.decoders)):
            x, tgt_mask, _, _ = layer(x, tgt_mask, enc, memory_mask, cache=c)
            if c is None:
                x = self._video_step(i, x, video, memory_mask)
            else:
                x = torch.cat([x[:, :-1], self._video_step(i, x[:, -1:], video, memory_mask)], dim=1)
            new_cache.append(x)
        y = self.after_norm(x[:, -1]) if self.normalize_before else x[:, -1]
        hidden = y
        if self.output_layer is not None:
            y = torch.log_softmax(self.output_layer(y), dim=-1)
        if return_hs:
            return (y, hidden), new_cache
        return y, new_cache


class MemorySliceCTC(nn.Module):
    """Expose ``log_softmax`` of a CTC head over the first ``size`` features of a memory.

    Lets ESPnet's ``CTCPrefixScorer`` share the beam search's concatenated memory.
    """

    def __init__(self, ctc: CTC, size: int):
        super().__init__()
        self.ctc = ctc
        self.size = size

    def log_softmax(self, x: torch.Tensor) -> torch.Tensor:
        return self.ctc.log_softmax(x[..., : self.size])
