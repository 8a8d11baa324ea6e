"""MS-Adapter model: switch to an adapted audio-only recogniser when the video is gone.

``MSAdapterModel`` (model choice ``ms_adapter``) is the AV model plus LoRA branches
(``espnet_avsr.models.adapters``) on the audio Conformer blocks, the shared Conformer
blocks and the decoder's self/source attention. Per sample:

- video present (any frame not missing): the base model, adapters off, bit-identical;
- video absent (``VideoPresence.absent``: no frame exists; ``video=None``; or
  ``adapter_switch: always``): adapters on, and the video front-end, video blocks,
  cross-attention and merge FFN are *not computed*. With the encoder's ``merge: figure``
  (shared input = a_N + FFN(video streams)) the audio blocks feed the shared blocks
  directly: dropping the FFN term leaves the audio stream, the figure's dashed path, and
  nothing else runs. With ``merge: last`` (shared input = FFN([a_N; v_N])) the merge has no
  audio-only term, so the audio blocks feed the shared blocks through the ``audio_bridge``
  (identity + zero-initialised low-rank residual, trained with the adapters;
  ``adapter_conf.bridge: skip`` uses the bare identity). At init the bridge is the
  identity, so an AV model initialised from A0 starts from A0's topology (A0's encoder
  layers = audio blocks followed by shared blocks). ``bridge: auto`` (default) picks
  ``skip`` for ``figure`` and ``lowrank`` for ``last``.

A mixed batch is split into its AV and audio-only sub-batches (each trimmed to its own
lengths), run separately and scattered back in order, so a sample's output does not
depend on its batch mates. Beam search of an audio-only sample runs inside
``adapter_scope(True)`` so the decoder adapters are on (``AVSpeech2Text`` does this).

Training: every sample takes the audio-only path (video ignored, may be absent from the
data), everything but the adapters is frozen. Pass the base model with ``--init_param``.
With ``save_adapters_only: true`` (default) the model's ``state_dict()`` holds only the
adapter tensors, so every ESPnet checkpoint (``*epoch.pth``, averaged models,
``checkpoint.pth``) is an adapter file; ``load_state_dict`` accepts such a dict (base
weights stay as they are). ESPnet's ``--save_strategy`` is not used: it only acts together
with ``--use_adapter``, which injects loralib adapters into the whole model.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_avsr.data.presence import VideoPresence
from espnet_avsr.models.adapters import (
    AdapterConfig,
    LowRankBranch,
    adapter_state_dict,
    adapters_active,
    inject_lora,
    is_adapter_key,
)
from espnet_avsr.models.espnet_model import ESPnetAVSRModel, EncodeResult
from espnet_avsr.models.registry import register

SWITCH_MODES = ("auto", "off", "always")


class AudioBridge(nn.Module):
    """Replaces the merge FFN on the audio-only path: x + (alpha/r)·B(A(x)), B = 0 at init."""

    def __init__(self, size: int, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.branch = LowRankBranch(size, size, rank, alpha, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch.update(x)


def _take(x: Optional[torch.Tensor], idx: torch.Tensor, lengths: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Rows ``idx`` of a padded tensor, trimmed to the longest of them."""
    if x is None:
        return None
    x = x[idx.to(x.device)]
    if lengths is not None and x.dim() >= 2 and lengths.numel():
        x = x[:, : int(lengths.max())]
    return x


def _scatter(parts: Sequence[Tuple[torch.Tensor, torch.Tensor]], batch_size: int) -> torch.Tensor:
    """Put (rows, values) pieces back into one zero-padded (B, T, ...) tensor."""
    ref = parts[0][1]
    t = max(v.size(1) for _, v in parts) if ref.dim() >= 2 else None
    shape = (batch_size,) if t is None else (batch_size, t, *ref.shape[2:])
    out = ref.new_zeros(shape)
    for idx, v in parts:
        if t is None:
            out[idx.to(v.device)] = v
        else:
            out[idx.to(v.device), : v.size(1)] = v
    return out


class MSAdapterModel(ESPnetAVSRModel):
    """ESPnetAVSRModel + modality-specific adapters and the audio-only switch.

    Extra args (``model_conf``):
        adapter_conf: dict for ``AdapterConfig`` (rank, alpha, dropout, targets, blocks, bridge);
            ``targets: qkv`` puts the adapters on the query/key/value projections only.
        adapter_switch: ``auto`` (adapters for video-absent samples), ``off`` (always the
            base model, even without video) or ``always`` (every sample audio-only).
        save_adapters_only: make ``state_dict()`` hold only the adapter tensors.
        freeze_base: freeze every non-adapter parameter (default True).
    """

    def __init__(
        self,
        *args,
        adapter_conf: Optional[Dict] = None,
        adapter_switch: str = "auto",
        save_adapters_only: bool = True,
        freeze_base: bool = True,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.adapter_conf = AdapterConfig(**(adapter_conf or {}))
        if self.adapter_conf.bridge == "auto":
            figure = getattr(self.encoder, "merge_type", "last") == "figure"
            self.adapter_conf.bridge = "skip" if figure else "lowrank"
        self.adapter_switch = adapter_switch
        self.adapted_modules: List[str] = inject_lora(self, self.adapter_conf)
        conf = self.adapter_conf
        self.audio_bridge = (
            AudioBridge(self.encoder.output_size(), conf.rank, conf.alpha, conf.dropout)
            if conf.bridge == "lowrank"
            else None
        )
        self.save_adapters_only = save_adapters_only
        if freeze_base:
            for name, p in self.named_parameters():
                p.requires_grad = is_adapter_key(name)
        self._register_state_dict_hook(MSAdapterModel._adapter_only_hook)
        logging.info(
            "MS-Adapter: %d LoRA linears (rank %d, alpha %g), %d adapter parameters",
            len(self.adapted_modules), conf.rank, conf.alpha, self.num_adapter_parameters(),
        )

    # ------------------------------------------------------------------ adapters
    @property
    def adapter_switch(self) -> str:
        return self._adapter_switch

    @adapter_switch.setter
    def adapter_switch(self, mode: str) -> None:
        if mode not in SWITCH_MODES:
            raise ValueError(f"adapter_switch must be one of {SWITCH_MODES}, got {mode!r}")
        self._adapter_switch = mode

    def num_adapter_parameters(self) -> int:
        return sum(p.numel() for n, p in self.named_parameters() if is_adapter_key(n))

    def adapter_state_dict(self) -> Dict[str, torch.Tensor]:
        return adapter_state_dict(self)

    def adapter_scope(self, active: bool) -> "contextlib.AbstractContextManager[None]":
        """Context in which every LoRA branch is on (True) or off (False)."""
        return adapters_active(self, active)

    @staticmethod
    def _adapter_only_hook(module: "MSAdapterModel", state: Dict, prefix: str, local_metadata) -> None:
        if not module.save_adapters_only:
            return
        for key in [k for k in state if k.startswith(prefix)]:
            if not is_adapter_key(key[len(prefix) :]):
                del state[key]

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """Also accepts an adapter-only dict: loads the adapters, leaves the base as is."""
        if state_dict and all(is_adapter_key(k) for k in state_dict):
            expected = set(adapter_state_dict(self))
            missing, unexpected = expected - set(state_dict), set(state_dict) - expected
            if strict and (missing or unexpected):
                raise RuntimeError(
                    f"adapter state dict does not fit this model: missing {sorted(missing)[:4]}, "
                    f"unexpected {sorted(unexpected)[:4]} (different adapter_conf?)"
                )
            return super().load_state_dict(state_dict, strict=False, assign=assign)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ routing
    def audio_only_rows(self, batch_size: int, presence: Optional[VideoPresence]) -> torch.Tensor:
        """(B,) bool on the CPU: which samples take the adapted audio-only path under the switch
        mode; ``presence`` None means no video at all."""
        if self.adapter_switch == "always":
            return torch.ones(batch_size, dtype=torch.bool)
        if self.adapter_switch == "off":
            return torch.zeros(batch_size, dtype=torch.bool)
        if presence is None:
            return torch.ones(batch_size, dtype=torch.bool)
        return presence.absent.cpu()

    def encode_adapted(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, return_hidden: bool = False
    ) -> EncodeResult:
        """Audio-only path with the adapters on (no video work at all)."""
        with self.adapter_scope(True):
            return self.encode_audio_only(speech, speech_lengths, return_hidden=return_hidden, bridge=self.audio_bridge)

    def encode(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        video_missing: Optional[torch.Tensor] = None,
        return_hidden: bool = False,
        utt_ids: Optional[Sequence[str]] = None,
        presence: Optional[VideoPresence] = None,
    ) -> EncodeResult:
        """Route each sample: base AV encode (adapters off) or the adapted audio-only path."""
        b = speech.size(0)
        presence = self.batch_presence(video, video_lengths, video_missing, presence)
        rows = self.audio_only_rows(b, presence)
        if not bool(rows.any()):
            with self.adapter_scope(False):
                return super().encode(speech, speech_lengths, video, return_hidden=return_hidden, utt_ids=utt_ids,
                                      presence=presence)
        if bool(rows.all()):
            return self.encode_adapted(speech, speech_lengths, return_hidden)

        av_idx, ao_idx = torch.nonzero(~rows).squeeze(1), torch.nonzero(rows).squeeze(1)
        av_speech_lens = speech_lengths[av_idx.to(speech_lengths.device)]
        av_presence = presence.rows(av_idx)
        with self.adapter_scope(False):
            av = super().encode(
                _take(speech, av_idx, av_speech_lens),
                av_speech_lens,
                _take(video, av_idx, av_presence.lengths),
                return_hidden=True,
                utt_ids=[utt_ids[i] for i in av_idx.tolist()] if utt_ids is not None else None,
                presence=av_presence,
            )
        ao_speech_lens = speech_lengths[ao_idx.to(speech_lengths.device)]
        ao = self.encode_adapted(_take(speech, ao_idx, ao_speech_lens), ao_speech_lens, True)
        enc = _scatter([(av_idx, av[0]), (ao_idx, ao[0])], b)
        enc_lens = _scatter([(av_idx, av[1]), (ao_idx, ao[1])], b)
        if not return_hidden:
            return enc, enc_lens
        hidden = {
            k: _scatter([(av_idx, av[2][k]), (ao_idx, ao[2][k])], b) for k in av[2] if k in ao[2]
        }
        return enc, enc_lens, hidden

    # ------------------------------------------------------------------ training
    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        text: Optional[torch.Tensor] = None,
        text_lengths: Optional[torch.Tensor] = None,
        video_missing: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Adapter training/validation: every sample audio-only, adapters on (video ignored)."""
        batch_size = speech.shape[0]
        text = self.prepare_text(text, text_lengths)
        with self.adapter_scope(True):
            enc, enc_lens, aux = self.encode_audio_only(speech, speech_lengths, True, bridge=self.audio_bridge)
            loss, stats = self.losses(enc, enc_lens, aux, text, text_lengths)
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight


register("model", "ms_adapter", MSAdapterModel)


def adapter_conf_for(state: Mapping[str, torch.Tensor]) -> Dict:
    """``adapter_conf`` that rebuilds the adapters stored in ``state`` (see adapters.py)."""
    from espnet_avsr.models.adapters import adapter_conf_from_state_dict

    return adapter_conf_from_state_dict(state, bridge_prefix="audio_bridge.branch")


@contextlib.contextmanager
def maybe_adapter_scope(model: nn.Module, active: bool) -> Iterator[None]:
    """``model.adapter_scope(active)`` for an MSAdapterModel, a no-op for other models."""
    if isinstance(model, MSAdapterModel):
        with model.adapter_scope(active):
            yield
    else:
        yield
