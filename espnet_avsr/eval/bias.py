"""Modality-bias metrics: relative CER, pooled-representation cosine matrices, linear CKA.

The paper's evidence that video dropout makes an AVSR model "more like" an audio-only one:

* relative CER: the AVSR hypotheses scored with the ASR hypotheses as the reference
  (lower = closer to what the audio-only model says);
* a sample x sample cosine-similarity matrix between utterance-level (mean-pooled)
  representations of the ASR and the AVSR encoders; a brighter diagonal means each
  utterance is represented alike by both models;
* linear CKA (Kornblith et al., ICML 2019) per layer, a single number in [0, 1] that is
  invariant to orthogonal transforms and isotropic scaling of either representation.

All functions here are pure: arrays in, arrays or numbers out.
"""

from __future__ import annotations

import sys
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from espnet_avsr.eval.cer import CorpusScore, score_corpus

ArrayLike = Union[np.ndarray, "torch.Tensor", Sequence]


def _np(x: ArrayLike) -> np.ndarray:
    # torch is not imported here: relative_cer and make_claims run once per decode in stage 11 and
    # would pay its ~2 s import each time; a tensor passed in means torch is loaded already
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def relative_cer(asr_hyps: Mapping[str, str], avsr_hyps: Mapping[str, str]) -> CorpusScore:
    """CER of the AVSR hypotheses with the ASR hypotheses as the reference."""
    return score_corpus(asr_hyps, avsr_hyps)


def pooled_mean(x: ArrayLike, lengths: Optional[ArrayLike] = None) -> np.ndarray:
    """(B, T, D) frames -> (B, D) means over the first ``lengths[b]`` frames of each sample."""
    arr = _np(x)
    if arr.ndim != 3:
        raise ValueError(f"expected (B, T, D) frames, got shape {arr.shape}")
    b, t, _ = arr.shape
    lens = np.full(b, t, dtype=np.int64) if lengths is None else _np(lengths).astype(np.int64).reshape(-1)
    if lens.shape[0] != b:
        raise ValueError(f"{lens.shape[0]} lengths for a batch of {b}")
    if (lens < 1).any() or (lens > t).any():
        raise ValueError(f"lengths must be in [1, {t}], got {lens.tolist()}")
    valid = (np.arange(t)[None, :] < lens[:, None]).astype(np.float64)
    return (arr * valid[:, :, None]).sum(axis=1) / lens[:, None]


def cosine_matrix(a: ArrayLike, b: ArrayLike, eps: float = 1e-12) -> np.ndarray:
    """``M[i, j] = cos(a_i, b_j)`` for (N, D) and (M, D) row vectors."""
    a, b = _np(a), _np(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"expected 2-D (samples, dims) arrays, got {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"cosine similarity needs equal feature sizes, got {a.shape[1]} and {b.shape[1]} "
            "(compare layers of the same width, or use CKA)"
        )
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), eps)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), eps)
    return an @ bn.T


def linear_cka(x: ArrayLike, y: ArrayLike) -> float:
    """Linear CKA between (N, D1) and (N, D2) representations of the same N samples.

    ``CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred Xc, Yc.
    """
    x, y = _np(x), _np(y)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"expected 2-D (samples, dims) arrays, got {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same samples on both sides, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError("CKA needs at least 2 samples")
    xc = x - x.mean(axis=0, keepdims=True)
    yc = y - y.mean(axis=0, keepdims=True)
    # Gram form is cheaper when samples < dims
    if xc.shape[0] < max(xc.shape[1], yc.shape[1]):
        kx, ky = xc @ xc.T, yc @ yc.T
        hsic_xy = float(np.sum(kx * ky))
        hsic_xx = float(np.sum(kx * kx))
        hsic_yy = float(np.sum(ky * ky))
    else:
        hsic_xy = float(np.linalg.norm(yc.T @ xc, "fro") ** 2)
        hsic_xx = float(np.linalg.norm(xc.T @ xc, "fro") ** 2)
        hsic_yy = float(np.linalg.norm(yc.T @ yc, "fro") ** 2)
    denom = np.sqrt(hsic_xx) * np.sqrt(hsic_yy)
    if denom <= 0:
        raise ValueError("CKA is undefined for a constant representation")
    return hsic_xy / denom


def cka_matrix(xs: Sequence[ArrayLike], ys: Sequence[ArrayLike]) -> np.ndarray:
    """``C[i, j] = linear_cka(xs[i], ys[j])`` (e.g. every ASR layer against every AVSR layer)."""
    return np.array([[linear_cka(x, y) for y in ys] for x in xs], dtype=np.float64).reshape(len(xs), len(ys))


def row_contrast(sim: ArrayLike) -> np.ndarray:
    """Per row i: ``sim[i, i]`` minus the mean of the row's off-diagonal entries (one sample's
    similarity to its own counterpart against the others'); their mean is :func:`diagonal_contrast`,
    and a per-row value can be resampled (claims' session bootstrap)."""
    m = _np(sim)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"expected a square matrix of at least 2 x 2, got {m.shape}")
    d = np.diag(m)
    return d - (m.sum(1) - d) / (m.shape[0] - 1)


def diagonal_contrast(sim: ArrayLike) -> float:
    """Mean diagonal minus mean off-diagonal similarity: how "bright" the diagonal is."""
    return float(np.mean(row_contrast(sim)))
