"""AV-Conformer encoder: the paper's fusion encoder built from ESPnet Conformer blocks.


    audio fbank --Conv2dSubsampling(4x)--> 25 fps --+--[N x (dual cross-attn -> Conformer per stream)]
    video feats (front-end, 25 fps) ----------------+                 |
                                                 merge -> M shared Conformer -> after_norm

Two merges (``merge``):

- ``last`` (default): LayerNorm(FFN([a_N; v_N])), the last fusion layer's two streams
  concatenated (``fusion.StreamMerge``).
- ``figure`` (the paper's architecture figure): a_N + FFN([v_0; v_1; ...; v_N]), the FFN fed
  by the video stream entering the fusion layers and the video stream after *every* fusion
  layer (``fusion.MultiLayerMerge``), its output added to the last audio stream. With
  ``return_hidden`` the FFN's inputs are ``merge_in.<k>`` (k = 0..N), what MDA-KD may tap.

Names are chosen so a stock ESPnet ConformerEncoder (A0, ``rel_pos_type: latest``,
``macaron_style: true``) maps onto it: ``embed`` = its ``embed``, ``audio_blocks[i]`` =
its ``encoders[i]`` (i < N), ``shared_blocks[j]`` = its ``encoders[N + j]``,
``after_norm`` = its ``after_norm`` (see ``espnet_avsr.bin.init_avsr``).

Length reconciliation (after subsampling, per utterance): when audio and video lengths
differ by at most ``length_tolerance`` frames both are trimmed to the shorter. Larger
differences raise ``AVLengthMismatchError`` naming the utterance (``on_length_mismatch:
error``, the default) or, with ``on_length_mismatch: repeat_last``, the audio length wins:
longer video is trimmed, shorter video is extended by repeating its last frame and the
added frames are flagged missing (``VideoPresence.reconcile``).

Audio-only route (``forward_audio_only``, used by the MS-Adapter switch): the audio
stream runs through ``audio_blocks`` without cross-attention, an optional ``bridge``
module stands in for the merge FFN, then ``shared_blocks``; the video projection, video
blocks, cross-attention and merge are not computed at all. With ``merge: figure`` no bridge
is needed: dropping the FFN term of a_N + FFN(...) leaves the audio stream, so the route is
the figure's dashed path (audio blocks -> shared blocks) and costs what A0's encoder costs.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet.nets.pytorch_backend.conformer.convolution import ConvolutionModule
from espnet.nets.pytorch_backend.conformer.encoder_layer import EncoderLayer
from espnet.nets.pytorch_backend.nets_utils import get_activation, make_pad_mask
from espnet.nets.pytorch_backend.transformer.attention import RelPositionMultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.embedding import RelPositionalEncoding
from espnet.nets.pytorch_backend.transformer.layer_norm import LayerNorm
from espnet.nets.pytorch_backend.transformer.positionwise_feed_forward import PositionwiseFeedForward
from espnet.nets.pytorch_backend.transformer.subsampling import (
    Conv2dSubsampling,
    TooShortUttError,
    check_short_utt,
)

from espnet_avsr.common.timing import subsampled_length
from espnet_avsr.data.presence import VideoPresence
from espnet_avsr.models.fusion import DualCrossAttention, MultiLayerMerge, StreamMerge

EncoderOutput = Tuple[torch.Tensor, torch.Tensor, Dict[str, torch.Tensor]]
MERGES = ("last", "figure")


class AVLengthMismatchError(ValueError):
    """Audio and video of an utterance disagree by more than the tolerance."""


def reconcile_lengths(
    audio_lengths: torch.Tensor,
    video_lengths: torch.Tensor,
    tolerance: int,
    policy: str = "error",
    utt_ids: Optional[Sequence[str]] = None,
) -> torch.Tensor:
    """Common per-utterance length of both streams (see the module docstring)."""
    diff = (audio_lengths - video_lengths).abs()
    bad = diff > tolerance
    if bool(bad.any()) and policy == "error":
        b = int(torch.nonzero(bad)[0, 0])
        name = utt_ids[b] if utt_ids is not None else f"batch index {b}"
        raise AVLengthMismatchError(
            f"{name}: audio has {int(audio_lengths[b])} frames after subsampling but video has "
            f"{int(video_lengths[b])} (tolerance {tolerance}); check the dump (check_dump) or set "
            "encoder_conf.on_length_mismatch: repeat_last"
        )
    common = torch.minimum(audio_lengths, video_lengths)
    return torch.where(bad, audio_lengths, common)


def encoder_presence(
    video_lengths: torch.Tensor, video_missing: Optional[torch.Tensor], presence: Optional[VideoPresence]
) -> VideoPresence:
    """An encoder's ``VideoPresence``: the model's, or one read from the tensors of a direct call."""
    if presence is None:
        return VideoPresence.from_batch(video_lengths, video_missing)
    if video_missing is not None:
        raise ValueError("give video_missing or presence, not both")
    return presence


def fit_video(video: torch.Tensor, video_lengths: torch.Tensor, lengths: torch.Tensor, t: int) -> torch.Tensor:
    """Trim or extend (repeat last valid frame) each video row to ``lengths``, width ``t``."""
    out = video.new_zeros(video.shape[0], t, *video.shape[2:])
    for b in range(video.shape[0]):
        n = int(min(int(video_lengths[b]), int(lengths[b]), video.shape[1]))
        out[b, :n] = video[b, :n]
        if int(lengths[b]) > n and n > 0:
            out[b, n : int(lengths[b])] = video[b, n - 1]
    return out


def make_conformer_layer(
    d: int,
    attention_heads: int,
    linear_units: int,
    dropout_rate: float,
    attention_dropout_rate: float,
    macaron_style: bool,
    use_cnn_module: bool,
    cnn_module_kernel: int,
    activation_type: str,
    zero_triu: bool,
) -> EncoderLayer:
    """One ESPnet Conformer block (rel-pos attention, macaron FFN, conv module), pre-norm.

    The single recipe for every stream's block, so the blocks of A0, V0 and the AV encoder
    have the same parameter names and shapes and map onto each other.
    """
    activation = get_activation(activation_type)
    return EncoderLayer(
        d,
        RelPositionMultiHeadedAttention(attention_heads, d, attention_dropout_rate, zero_triu),
        PositionwiseFeedForward(d, linear_units, dropout_rate, activation),
        PositionwiseFeedForward(d, linear_units, dropout_rate, activation) if macaron_style else None,
        ConvolutionModule(d, cnn_module_kernel, activation) if use_cnn_module else None,
        dropout_rate,
        True,
        False,
    )


class AVConformerEncoder(AbsEncoder):
    """Dual-stream Conformer with cross-attention fusion (N fusion + M shared layers).

    Args:
        input_size: fbank dimension (80).
        video_input_size: width of the video front-end output (projected if != output_size).
        output_size: d_model.
        num_fusion_blocks: N (cross-attention + per-stream Conformer layers).
        num_shared_blocks: M (Conformer layers after the merge).
        merge: ``last`` or ``figure`` (see the module docstring); ``merge_units`` is its FFN width.
        mask_missing_in_cross_attention: if True, audio does not attend to video frames
            flagged missing; default False, the paper's setting (missing frames are
            zero-filled inputs the model must learn to handle).
        length_tolerance / on_length_mismatch: see the module docstring.
    """

    def __init__(
        self,
        input_size: int,
        video_input_size: int = 256,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_fusion_blocks: int = 3,
        num_shared_blocks: int = 9,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        macaron_style: bool = True,
        use_cnn_module: bool = True,
        cnn_module_kernel: int = 31,
        activation_type: str = "swish",
        zero_triu: bool = False,
        merge_units: Optional[int] = None,
        merge: str = "last",
        mask_missing_in_cross_attention: bool = False,
        length_tolerance: int = 3,
        on_length_mismatch: str = "error",
        max_pos_emb_len: int = 5000,
    ):
        super().__init__()
        if on_length_mismatch not in ("error", "repeat_last"):
            raise ValueError(f"on_length_mismatch must be 'error' or 'repeat_last', got {on_length_mismatch!r}")
        if merge not in MERGES:
            raise ValueError(f"encoder_conf.merge must be one of {MERGES}, got {merge!r}")
        if num_fusion_blocks < 1:
            raise ValueError("num_fusion_blocks must be >= 1 (use ESPnet's ConformerEncoder for audio only)")
        d = output_size
        self._output_size = d
        self.num_fusion_blocks = num_fusion_blocks
        self.num_shared_blocks = num_shared_blocks
        self.merge_type = merge
        self.mask_missing_in_cross_attention = mask_missing_in_cross_attention
        self.length_tolerance = length_tolerance
        self.on_length_mismatch = on_length_mismatch

        # Audio: ESPnet's 4x conv subsampling; the positional encoding is applied after
        # length reconciliation (same maths as ConformerEncoder's embed).
        self.embed = Conv2dSubsampling(input_size, d, dropout_rate, nn.Identity())
        self.audio_pos = RelPositionalEncoding(d, positional_dropout_rate, max_pos_emb_len)
        self.video_proj = nn.Identity() if video_input_size == d else nn.Linear(video_input_size, d)
        self.video_pos = RelPositionalEncoding(d, positional_dropout_rate, max_pos_emb_len)

        def conformer_layer() -> EncoderLayer:
            return make_conformer_layer(d, attention_heads, linear_units, dropout_rate, attention_dropout_rate,
                                        macaron_style, use_cnn_module, cnn_module_kernel, activation_type, zero_triu)

        self.cross_attention = nn.ModuleList(
            [DualCrossAttention(d, attention_heads, dropout_rate, attention_dropout_rate) for _ in range(num_fusion_blocks)]
        )
        self.audio_blocks = nn.ModuleList([conformer_layer() for _ in range(num_fusion_blocks)])
        self.video_blocks = nn.ModuleList([conformer_layer() for _ in range(num_fusion_blocks)])
        if merge == "figure":
            self.merge = MultiLayerMerge(
                d, num_fusion_blocks + 1, merge_units or linear_units, dropout_rate, activation_type
            )
        else:
            self.merge = StreamMerge(d, merge_units or linear_units, dropout_rate, activation_type)
        self.shared_blocks = nn.ModuleList([conformer_layer() for _ in range(num_shared_blocks)])
        self.after_norm = LayerNorm(d)

    def output_size(self) -> int:
        return self._output_size

    def subsample_audio(self, feats: torch.Tensor, feats_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Conv2d subsampling: (B, L, F) -> (B, L', D) and L' per utterance."""
        short, limit = check_short_utt(self.embed, feats.size(1))
        if short:
            raise TooShortUttError(
                f"has {feats.size(1)} frames and is too short for subsampling (needs more than {limit})",
                feats.size(1),
                limit,
            )
        masks = (~make_pad_mask(feats_lengths, maxlen=feats.size(1))[:, None, :]).to(feats.device)
        x, _ = self.embed(feats, masks)
        # lengths by formula (two k=3, s=2 convs): independent of how much padding a batch has
        lengths = subsampled_length(feats_lengths)
        return x, lengths.to(x.device)

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
        """Encode both streams.

        Args:
            feats: (B, L, F) normalised fbank; video_feats: (B, Tv, Dv) front-end output.
            video_missing: (B, Tv) bool, True = frame missing (already filled upstream).
            presence: the model's ``VideoPresence`` of the video, instead of ``video_missing``.
        Returns:
            (out (B, T, D), out_lens (B,), aux). ``aux`` always holds ``video`` (the
            last video stream, (B, T, D)) and ``video_missing`` ((B, T) bool after length
            reconciliation); with ``return_hidden`` also ``audio.<i>``, ``video.<i>``
            (after fusion layer i), ``fusion`` (merged streams, the shared blocks' input),
            ``shared.<j>`` and, with ``merge: figure``, ``merge_in.<k>`` (the FFN's inputs).
        """
        presence = encoder_presence(video_lengths, video_missing, presence)
        audio, audio_lengths = self.subsample_audio(feats, feats_lengths)
        lengths = reconcile_lengths(audio_lengths, video_lengths, self.length_tolerance, self.on_length_mismatch, utt_ids)
        t = int(lengths.max())
        audio = audio[:, :t]
        video = fit_video(self.video_proj(video_feats), video_lengths, lengths, t)
        missing = presence.reconcile(lengths.to(video.device)).missing  # repeat_last's frames are not real video
        valid = ~make_pad_mask(lengths, maxlen=t).to(video.device)

        mask = valid[:, None, :]
        key_mask_video = (mask & ~missing[:, None, :]) if self.mask_missing_in_cross_attention else None

        audio, pos = self.audio_pos(audio)
        video, _ = self.video_pos(video)
        hidden: Dict[str, torch.Tensor] = {}
        figure = self.merge_type == "figure"
        video_streams = [video] if figure else []  # the figure merge's FFN inputs
        for i in range(self.num_fusion_blocks):
            audio, video = self.cross_attention[i](audio, video, mask, key_mask_video)
            (audio, _), _ = self.audio_blocks[i]((audio, pos), mask)
            (video, _), _ = self.video_blocks[i]((video, pos), mask)
            if figure:
                video_streams.append(video)
            if return_hidden:
                hidden[f"audio.{i}"] = audio
                hidden[f"video.{i}"] = video
        if figure:
            x = audio + self.merge(video_streams)
            if return_hidden:
                hidden.update({f"merge_in.{k}": v for k, v in enumerate(video_streams)})
        else:
            x = self.merge(audio, video)
        hidden["video"] = video
        hidden["video_missing"] = missing
        if return_hidden:
            hidden["fusion"] = x
        for j, block in enumerate(self.shared_blocks):
            (x, _), _ = block((x, pos), mask)
            if return_hidden:
                hidden[f"shared.{j}"] = x
        x = self.after_norm(x)
        return x, lengths, hidden

    def forward_audio_only(
        self,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        return_hidden: bool = False,
        bridge: Optional[nn.Module] = None,
    ) -> EncoderOutput:
        """Audio blocks -> ``bridge`` (identity when None) -> shared blocks; no video work.

        ``aux`` mirrors ``forward``: ``video`` is a zero stream (only read by a fusion
        decoder's memory), ``video_missing`` flags every valid frame; with ``return_hidden``
        also ``audio.<i>``, ``fusion`` (the bridge output) and ``shared.<j>``.
        """
        audio, lengths = self.subsample_audio(feats, feats_lengths)
        t = int(lengths.max())
        audio = audio[:, :t]
        valid = ~make_pad_mask(lengths, maxlen=t).to(audio.device)
        mask = valid[:, None, :]
        audio, pos = self.audio_pos(audio)
        hidden: Dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.audio_blocks):
            (audio, _), _ = block((audio, pos), mask)
            if return_hidden:
                hidden[f"audio.{i}"] = audio
        x = audio if bridge is None else bridge(audio)
        hidden["video"] = x.new_zeros(x.shape)
        hidden["video_missing"] = VideoPresence.all_missing(lengths).missing
        if return_hidden:
            hidden["fusion"] = x
        for j, block in enumerate(self.shared_blocks):
            (x, _), _ = block((x, pos), mask)
            if return_hidden:
                hidden[f"shared.{j}"] = x
        x = self.after_norm(x)
        return x, lengths, hidden
