"""Does a cheaper decode (CTC greedy) tell the same story as beam search?

Issue 15 allows CTC greedy search for the sweeps only where beam search changes no ordering.
Two decodes of the same models, seeds and conditions are compared here in the two ways the
results are read: every pairwise ordering of mean CERs (models within a condition, conditions
within a model), and every claim's verdict (``espnet_avsr.eval.claims``, same rule, same
bootstrap seed). A pair that is tied in one decode and ordered in the other counts as a flip.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from espnet_avsr.eval.cer import CorpusScore
from espnet_avsr.eval.claims import Claim, evaluate_claims

#: scores[model][condition] = {seed: score}, as ``espnet_avsr.bin.make_claims.load_scores`` reads them
Scores = Mapping[str, Mapping[str, Mapping[int, CorpusScore]]]
Cell = Tuple[str, str]  # (model, condition)


@dataclass
class Flip:
    """Two cells whose order differs between the decodes (CER differences B - A in points)."""

    within: str  # "condition <c>" (two models) or "model <m>" (two conditions)
    first: str
    second: str
    diff_a: float  # CER(first) - CER(second) in decode A, points
    diff_b: float

    def as_dict(self) -> Dict:
        return asdict(self)


def mean_cers(scores: Scores) -> Dict[Cell, float]:
    """Mean over seeds of each cell's corpus CER (a fraction)."""
    return {(m, c): float(np.mean([s.total.cer for s in by_seed.values()]))
            for m, conds in scores.items() for c, by_seed in conds.items() if by_seed}


def _sign(x: float, tol: float) -> int:
    return 0 if abs(x) <= tol else (1 if x > 0 else -1)


def ordering_flips(a: Mapping[Cell, float], b: Mapping[Cell, float], tol: float = 1e-9) -> Tuple[int, List[Flip]]:
    """(number of pairs compared, the pairs whose order differs) over the cells both decodes have."""
    cells = sorted(set(a) & set(b))
    groups: Dict[str, List[Tuple[str, Cell]]] = {}
    for m, c in cells:
        groups.setdefault(f"condition {c}", []).append((m, (m, c)))
        groups.setdefault(f"model {m}", []).append((c, (m, c)))
    n, flips = 0, []
    for within, members in groups.items():
        for (name_x, x), (name_y, y) in combinations(members, 2):
            n += 1
            da, db = a[x] - a[y], b[x] - b[y]
            if _sign(da, tol) != _sign(db, tol):
                flips.append(Flip(within, name_x, name_y, 100 * da, 100 * db))
    return n, flips


def _flat(claims: Sequence[Claim]) -> Dict[str, Claim]:
    out: Dict[str, Claim] = {}
    for c in claims:
        out[c.name] = c
        out.update(_flat(c.parts))
    return out


def verdict_changes(a: Scores, b: Scores, babble_snrs: Sequence[float] = (), num_boot: int = 10000,
                    seed: int = 0) -> List[Dict]:
    """Every claim either decode can judge: name, statement, verdict and B - A under each."""
    ca = _flat(evaluate_claims(a, babble_snrs=babble_snrs, num_boot=num_boot, seed=seed))
    cb = _flat(evaluate_claims(b, babble_snrs=babble_snrs, num_boot=num_boot, seed=seed))
    rows = []
    for name in ca:
        if name not in cb or (ca[name].verdict == "not run" and cb[name].verdict == "not run"):
            continue
        x, y = ca[name], cb[name]
        rows.append(dict(name=name, statement=x.statement, verdict_a=x.verdict, verdict_b=y.verdict,
                         delta_a=x.delta, delta_b=y.delta, same=x.verdict == y.verdict))
    return rows
