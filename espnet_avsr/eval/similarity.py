"""ASR vs AVSR representation similarity from pooled arrays: cosine matrices, linear CKA, plots.

Reads what ``analysis/representations.py`` pooled and writes ``rep_similarity.json``, the
matrices and their figures, and reads the pooled arrays back (claims resample them); it
runs no model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet_avsr.common.fileio import atomic_save_npy, atomic_write_json, atomic_write_text
from espnet_avsr.eval.bias import cka_matrix, cosine_matrix, diagonal_contrast, linear_cka
from espnet_avsr.eval.plots import heatmap

log = logging.getLogger(__name__)


def parse_layer_pairs(specs: Sequence[str]) -> List[Tuple[str, str]]:
    """``["encoders.5:shared.2", "output"]`` -> ``[("encoders.5", "shared.2"), ("output", "output")]``."""
    pairs = []
    for spec in specs:
        if spec.count(":") > 1:
            raise ValueError(f"layer pair {spec!r} must be ASR_LAYER:AVSR_LAYER")
        a, _, b = spec.partition(":")
        a, b = a.strip(), (b.strip() or a.strip())
        if not a:
            raise ValueError(f"empty layer name in {spec!r}")
        pairs.append((a, b))
    return pairs


@dataclass
class PooledRepresentations:
    """Mean-pooled ``(N, D)`` representations per layer, rows in ``keys`` order."""

    keys: List[str] = field(default_factory=list)
    asr: Dict[str, List[np.ndarray]] = field(default_factory=dict)
    avsr: Dict[str, List[np.ndarray]] = field(default_factory=dict)

    def stacked(self, side: str) -> Dict[str, np.ndarray]:
        d = self.asr if side == "asr" else self.avsr
        return {k: np.concatenate(v, axis=0) for k, v in d.items()}


SIMILARITY_JSON = "rep_similarity.json"


@dataclass
class PooledSample:
    """What one rep_similarity run pooled: its utterance keys and, per layer pair, the (N, D)
    ASR and AVSR arrays, so a statistic of them can be recomputed on a resample of utterances."""

    keys: List[str]
    pairs: List[Tuple[np.ndarray, np.ndarray]]


def read_pooled(json_path) -> PooledSample:
    """The pooled arrays beside a rep_similarity.json (written by :func:`write_similarity`)."""
    path = Path(json_path)
    rec = json.loads(path.read_text(encoding="utf-8"))
    keys = (path.parent / "keys.txt").read_text(encoding="utf-8").split()
    pairs = []
    for p in rec["pairs"]:
        x, y = (np.load(path.parent / f"pooled_{side}_{_fname(p[side + '_layer'])}.npy")
                for side in ("asr", "avsr"))
        if not len(x) == len(y) == len(keys):
            raise ValueError(f"{path}: {len(keys)} keys but pooled arrays of {len(x)} and {len(y)} rows")
        pairs.append((x, y))
    if not pairs:
        raise ValueError(f"{path}: no layer pairs")
    return PooledSample(keys, pairs)


def _fname(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def write_similarity(
    rep: PooledRepresentations,
    pairs: Sequence[Tuple[str, str]],
    out_dir,
    meta: Optional[dict] = None,
    plot_samples: int = 16,
) -> dict:
    """Cosine matrices (npy + PNG), CKA per pair and across all layers (json), pooled arrays."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    asr, avsr = rep.stacked("asr"), rep.stacked("avsr")
    atomic_write_text(out / "keys.txt", "".join(k + "\n" for k in rep.keys))
    for side, d in (("asr", asr), ("avsr", avsr)):
        for name, arr in d.items():
            atomic_save_npy(out / f"pooled_{side}_{_fname(name)}.npy", arr.astype(np.float32))
    records = []
    for a_name, v_name in pairs:
        x, y = asr[a_name], avsr[v_name]
        rec = {"asr_layer": a_name, "avsr_layer": v_name, "cka": linear_cka(x, y) if len(rep.keys) > 1 else None}
        if x.shape[1] == y.shape[1]:
            sim = cosine_matrix(x, y)
            stem = f"cosine_{_fname(a_name)}__{_fname(v_name)}"
            atomic_save_npy(out / f"{stem}.npy", sim.astype(np.float32))
            k = min(plot_samples, sim.shape[0])
            heatmap(sim[:k, :k], out / f"{stem}.png", title=f"cos(ASR {a_name}, AVSR {v_name})", xlabel="AVSR sample index", ylabel="ASR sample index")
            rec.update(
                cosine_file=f"{stem}.npy",
                cosine_png=f"{stem}.png",
                diag_mean=float(np.mean(np.diag(sim))),
                diag_contrast=diagonal_contrast(sim) if sim.shape[0] > 1 else None,
            )
        else:
            log.warning("%s (%d dims) vs %s (%d dims): no cosine matrix, CKA only", a_name, x.shape[1], v_name, y.shape[1])
        records.append(rec)
    a_layers, v_layers = list(asr), list(avsr)
    result = {
        "num_samples": len(rep.keys),
        "pairs": records,
        "asr_layers": a_layers,
        "avsr_layers": v_layers,
        "cka_matrix": cka_matrix([asr[n] for n in a_layers], [avsr[n] for n in v_layers]).tolist() if len(rep.keys) > 1 else None,
        "meta": dict(meta or {}),
    }
    if result["cka_matrix"] is not None and (len(a_layers) > 1 or len(v_layers) > 1):
        heatmap(np.array(result["cka_matrix"]), out / "cka.png", title="linear CKA (ASR rows, AVSR columns)", vmin=0, vmax=1,
                annotate=True, xticklabels=v_layers, yticklabels=a_layers)
        result["cka_png"] = "cka.png"
    atomic_write_json(out / SIMILARITY_JSON, result)
    return result
