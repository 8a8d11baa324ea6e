"""Transformer-decoder scoring for beam search that computes each key and value once.

ESPnet's ``TransformerDecoder.batch_score`` recomputes, at every output step and for every
hypothesis of the beam, the source attention's keys and values over the whole encoder output
(the same numbers for all hypotheses and all steps) and the self-attention's keys and values
over the whole prefix. With a small decoder these projections are most of its work:
10 hypotheses x T frames x 2 layers x (K, V) at every step. ``CachedDecoderScorer`` runs the
same layers (their own modules: LoRA adapters, if any, act as before) with

* the source keys/values projected once per utterance (``batch_init_state``) and broadcast
  over the hypotheses;
* the self-attention keys/values of the prefix kept in the state, one new position a step;
* a state that is the step's batch tensors plus a row number (``select_state`` is free,
  the next step gathers the kept rows with one ``index_select`` per tensor).

The arithmetic per position is ESPnet's (same ops in the same order, masks that mask nothing
dropped), so the scores are its scores and the hypotheses are its hypotheses
(``tests/test_cached_decoder.py``). Decoders it does not know (``concat_after``, sequential
attention, SDPA/flash attention, q/k norms) keep ESPnet's ``batch_score``.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import nn

from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.decoder_layer import DecoderLayer
from espnet.nets.scorer_interface import BatchScorerInterface

from espnet_avsr.models.beam_scorers import replace_scorer

#: decoder option values: ``cached`` (this module) or ``espnet`` (ESPnet's batch_score, the reference)
DECODER_SCORERS = ("cached", "espnet")


def _plain_attention(att: nn.Module) -> bool:
    return (type(att) is MultiHeadedAttention and not getattr(att, "use_sdpa", False)
            and not getattr(att, "use_flash_attn", False) and isinstance(att.q_norm, nn.Identity)
            and isinstance(att.k_norm, nn.Identity))


def supports(decoder: nn.Module) -> bool:
    """True when every layer is a plain pre-norm ``DecoderLayer`` this scorer reproduces."""
    layers = getattr(decoder, "decoders", None)
    return (layers is not None and getattr(decoder, "normalize_before", False)
            and hasattr(decoder, "embed") and getattr(decoder, "output_layer", None) is not None
            and all(type(l) is DecoderLayer and l.normalize_before and not l.concat_after
                    and l.sequential_attn is None and _plain_attention(l.self_attn)
                    and _plain_attention(l.src_attn) for l in layers))


def _heads(att: MultiHeadedAttention, x: torch.Tensor) -> torch.Tensor:
    """(B, L, D) -> (B, h, L, d_k)."""
    return x.view(x.size(0), -1, att.h, att.d_k).transpose(1, 2)


def _attend(att: MultiHeadedAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """ESPnet's unmasked attention of a (B, h, 1, d_k) query: (B, 1, D) after ``linear_out``."""
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(att.d_k)
    x = torch.matmul(torch.softmax(scores, dim=-1), v)
    return att.linear_out(x.transpose(1, 2).reshape(q.size(0), 1, att.h * att.d_k))


class _StepState:
    """One step's self-attention keys and values, per layer (B, h, L, d_k), shared by the rows."""

    __slots__ = ("keys", "values")

    def __init__(self, keys: List[torch.Tensor], values: List[torch.Tensor]):
        self.keys, self.values = keys, values


class CachedDecoderScorer(BatchScorerInterface, nn.Module):
    """ESPnet's ``TransformerDecoder`` as a beam-search scorer, keys and values computed once.

    ``score`` (one hypothesis, ESPnet's non-batched ``BeamSearch``) is the decoder's own.
    """

    def __init__(self, decoder: nn.Module):
        super().__init__()
        if not supports(decoder):
            raise ValueError(f"{type(decoder).__name__}: not a plain pre-norm transformer decoder")
        self.decoder = decoder
        self._memory: Optional[List[Tuple[torch.Tensor, torch.Tensor]]] = None
        self._memory_of: Optional[torch.Tensor] = None

    # ---- ScorerInterface: the decoder's own
    def init_state(self, x: torch.Tensor) -> Any:
        return self.decoder.init_state(x)

    def score(self, ys: torch.Tensor, state: Any, x: torch.Tensor) -> Tuple[torch.Tensor, Any]:
        return self.decoder.score(ys, state, x)

    # ---- BatchScorerInterface
    def batch_init_state(self, x: torch.Tensor) -> None:
        """Source keys and values of this utterance's encoder output x (T, D), once per layer."""
        mem = x.unsqueeze(0)
        self._memory = [(_heads(l.src_attn, l.src_attn.linear_k(mem)), _heads(l.src_attn, l.src_attn.linear_v(mem)))
                        for l in self.decoder.decoders]
        self._memory_of = x
        return None

    def batch_score(self, ys: torch.Tensor, states: List[Any], xs: torch.Tensor) -> Tuple[torch.Tensor, List[Any]]:
        """Log-probabilities of the next token (B, V) and each row's state (step state, row)."""
        if self._memory is None or self._memory_of.shape != xs.shape[1:] or (
                states[0] is None and not torch.equal(self._memory_of, xs[0])):
            self.batch_init_state(xs[0])  # called without batch_init_state, or on another input
        n = ys.size(0)
        prev: Optional[_StepState] = None
        if states[0] is not None:
            prev = states[0][0]
            if any(s[0] is not prev for s in states):
                raise ValueError("CachedDecoderScorer: the hypotheses' states come from different steps")
            rows = torch.tensor([s[1] for s in states], device=ys.device)
        x = self.decoder.embed(ys)[:, -1:]  # positional encoding of the new position only
        keys, values = [], []
        for i, (layer, (mk, mv)) in enumerate(zip(self.decoder.decoders, self._memory)):
            sa, ca = layer.self_attn, layer.src_attn
            t = layer.norm1(x)
            k, v = _heads(sa, sa.linear_k(t)), _heads(sa, sa.linear_v(t))
            if prev is not None:
                k = torch.cat([prev.keys[i].index_select(0, rows), k], 2)
                v = torch.cat([prev.values[i].index_select(0, rows), v], 2)
            keys.append(k)
            values.append(v)
            x = x + layer.dropout(_attend(sa, _heads(sa, sa.linear_q(t)), k, v))
            t = layer.norm2(x)
            x = x + layer.dropout(_attend(ca, _heads(ca, ca.linear_q(t)), mk, mv))
            x = x + layer.dropout(layer.feed_forward(layer.norm3(x)))
        y = self.decoder.output_layer(self.decoder.after_norm(x[:, -1]))
        step = _StepState(keys, values)
        return torch.log_softmax(y, dim=-1), [(step, r) for r in range(n)]


def use_decoder_scorer(beam_search: Any, kind: str) -> None:
    """Swap the ``decoder`` scorer of an ESPnet ``BeamSearch`` already built: ``cached``
    (when the decoder is one it reproduces) or ``espnet`` (the decoder itself)."""
    if kind not in DECODER_SCORERS:
        raise ValueError(f"decoder_scorer must be one of {DECODER_SCORERS}, got {kind!r}")
    scorers = getattr(beam_search, "scorers", None)
    if not scorers or "decoder" not in scorers:
        return
    old = scorers["decoder"]
    decoder = old.decoder if isinstance(old, CachedDecoderScorer) else old
    if kind == "cached" and not supports(decoder):
        return
    replace_scorer(beam_search, "decoder", CachedDecoderScorer(decoder) if kind == "cached" else decoder)
