"""Paired bootstrap over utterances: is system B's CER really lower than system A's?

Why: the synthetic test sets have tens of utterances, where one CER point can be a handful of
characters. Resampling whole utterances with replacement, the same draw for both systems
(Bisani & Ney, ICASSP 2004), gives the spread of the CER difference that another test set of
that size would show, so a table row can say whether a gap is more than noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from espnet_avsr.common.naming import utt_session
from espnet_avsr.eval.cer import CorpusScore, ErrorCounts, UttScore


def _difference_line(r, name_a: str, name_b: str, units: str) -> str:
    """One printed line for a bootstrap result (either unit): CERs, B - A, interval, P(B better)."""
    pct = lambda x: f"{100 * x:+.2f}"
    return (
        f"{name_a} {100 * r.cer_a:.2f} vs {name_b} {100 * r.cer_b:.2f}: {name_b}-{name_a} {pct(r.delta)} "
        f"points, {100 * r.ci:.0f} % CI [{pct(r.ci_low)}, {pct(r.ci_high)}], "
        f"P({name_b} better) {r.p_b_better:.3f} ({units}, {r.num_boot} resamples)"
    )


@dataclass
class PairedBootstrap:
    cer_a: float
    cer_b: float
    delta: float  # cer_b - cer_a on the test set itself (negative: B is better)
    ci_low: float  # percentile interval of the resampled delta
    ci_high: float
    p_b_better: float  # share of resamples where B has the lower CER
    num_utts: int
    num_boot: int
    ci: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)

    def line(self, name_a: str = "A", name_b: str = "B") -> str:
        return _difference_line(self, name_a, name_b, f"{self.num_utts} utts")


def paired_bootstrap(
    errors_a: Sequence[int],
    errors_b: Sequence[int],
    ref_chars: Sequence[int],
    num_boot: int = 10000,
    seed: int = 0,
    ci: float = 0.95,
) -> PairedBootstrap:
    """Per-utterance error counts of A and B on the same references -> the bootstrap of B - A."""
    ea, eb, n = (np.asarray(x, dtype=np.float64) for x in (errors_a, errors_b, ref_chars))
    if not (ea.shape == eb.shape == n.shape and ea.ndim == 1):
        raise ValueError(f"paired bootstrap needs equal-length 1-d counts, got {ea.shape}, {eb.shape}, {n.shape}")
    if ea.size == 0 or n.sum() <= 0:
        raise ValueError("paired bootstrap needs at least one utterance with reference characters")
    if num_boot < 1 or not 0.0 < ci < 1.0:
        raise ValueError(f"num_boot must be >= 1 and ci in (0, 1), got {num_boot}, {ci}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, ea.size, size=(num_boot, ea.size))
    chars = n[idx].sum(axis=1)
    chars[chars == 0] = np.nan  # a resample of empty references only: no CER to compare
    d = (eb[idx].sum(axis=1) - ea[idx].sum(axis=1)) / chars
    d = d[np.isfinite(d)]
    alpha = (1.0 - ci) / 2.0
    return PairedBootstrap(
        cer_a=float(ea.sum() / n.sum()),
        cer_b=float(eb.sum() / n.sum()),
        delta=float((eb.sum() - ea.sum()) / n.sum()),
        ci_low=float(np.quantile(d, alpha)),
        ci_high=float(np.quantile(d, 1.0 - alpha)),
        p_b_better=float(np.mean(d < 0)),
        num_utts=int(ea.size),
        num_boot=int(d.size),
        ci=ci,
    )


def compare_scores(a: CorpusScore, b: CorpusScore, **kwargs) -> PairedBootstrap:
    """Paired bootstrap of two ``score_corpus`` results on the same references."""
    ids_a, ids_b = [u.utt_id for u in a.utts], [u.utt_id for u in b.utts]
    if ids_a != ids_b:
        raise ValueError(f"the two scores cover different utterances ({len(ids_a)} vs {len(ids_b)}); "
                         "score both against the same reference text")
    refs_a, refs_b = [u.counts.ref_chars for u in a.utts], [u.counts.ref_chars for u in b.utts]
    if refs_a != refs_b:
        raise ValueError("the two scores have different reference lengths: not the same reference text")
    return paired_bootstrap([u.counts.errors for u in a.utts], [u.counts.errors for u in b.utts], refs_a, **kwargs)


def pool_scores(scores: List[CorpusScore]) -> CorpusScore:
    """Several conditions of one test set (e.g. missing rates) as one score whose utterance
    counts are summed over the conditions, so a bootstrap resamples whole utterances."""
    if not scores:
        raise ValueError("pool_scores needs at least one score")
    ids = [u.utt_id for u in scores[0].utts]
    for s in scores[1:]:
        if [u.utt_id for u in s.utts] != ids:
            raise ValueError("pooled scores must cover the same utterances (one test set, several conditions)")
    utts = [UttScore(utt, sum((s.utts[i].counts for s in scores), ErrorCounts()), scores[0].utts[i].ref, None)
            for i, utt in enumerate(ids)]
    return CorpusScore(total=sum((u.counts for u in utts), ErrorCounts()), utts=utts)


@dataclass
class SessionBootstrap:
    """A CER difference B - A pooled over seeds, with a percentile interval from resampling
    whole sessions (utterances of one session share room, talkers and noise: not independent)."""

    cer_a: float
    cer_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_b_better: float
    num_sessions: int
    num_seeds: int
    num_boot: int
    ci: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)

    def line(self, name_a: str = "A", name_b: str = "B") -> str:
        return _difference_line(self, name_a, name_b, f"{self.num_sessions} sessions, {self.num_seeds} pair(s)")


def keys_across_sessions(keys: Sequence[str], n: int) -> List[str]:
    """``n`` of ``keys`` taken round-robin over their sessions (each session's keys in order),
    returned in the order of ``keys``: a sample of a sorted test set that spans its sessions,
    where its first ``n`` keys would come from a few, so a session bootstrap has sessions to draw."""
    by_session: Dict[str, List[str]] = {}
    for k in keys:
        by_session.setdefault(utt_session(k), []).append(k)
    queues = [by_session[s] for s in sorted(by_session)]
    chosen: set = set()
    depth = 0
    while len(chosen) < min(n, len(keys)):
        for q in queues:
            if depth < len(q) and len(chosen) < n:
                chosen.add(q[depth])
        depth += 1
    return [k for k in keys if k in chosen]


def _session_sums(score: CorpusScore, sessions: List[str]) -> np.ndarray:
    """(errors, ref_chars) summed per session, in the order of ``sessions``."""
    pos = {s: i for i, s in enumerate(sessions)}
    out = np.zeros((2, len(sessions)))
    for u in score.utts:
        i = pos[utt_session(u.utt_id)]
        out[0, i] += u.counts.errors
        out[1, i] += u.counts.ref_chars
    return out


def session_bootstrap(
    pairs: Sequence[Tuple[CorpusScore, CorpusScore]],
    num_boot: int = 10000,
    seed: int = 0,
    ci: float = 0.95,
) -> SessionBootstrap:
    """Paired bootstrap of B - A over sessions, pooled over seeds.

    ``pairs`` holds one (A, B) pair of scores per seed, all on the same test utterances. One
    resample draws sessions with replacement and sums, over every seed, the errors and
    reference characters of the drawn sessions: the interval then covers both the test-set
    sampling and the seeds' spread, as a reader comparing two trained systems needs.
    """
    if not pairs:
        raise ValueError("session_bootstrap needs at least one (A, B) pair of scores")
    ids = [u.utt_id for u in pairs[0][0].utts]
    for a, b in pairs:
        for s in (a, b):
            if [u.utt_id for u in s.utts] != ids:
                raise ValueError("every score of a session bootstrap must cover the same utterances "
                                 "(score all decodes against the same reference text)")
    sessions = sorted({utt_session(u) for u in ids})
    if not sessions:
        raise ValueError("session bootstrap needs at least one utterance")
    if num_boot < 1 or not 0.0 < ci < 1.0:
        raise ValueError(f"num_boot must be >= 1 and ci in (0, 1), got {num_boot}, {ci}")
    ea = sum(_session_sums(a, sessions)[0] for a, _ in pairs)
    eb = sum(_session_sums(b, sessions)[0] for _, b in pairs)
    n = sum(_session_sums(a, sessions)[1] for a, _ in pairs)
    if n.sum() <= 0:
        raise ValueError("session bootstrap needs reference characters")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sessions), size=(num_boot, len(sessions)))
    chars = n[idx].sum(axis=1)
    chars[chars == 0] = np.nan
    d = (eb[idx].sum(axis=1) - ea[idx].sum(axis=1)) / chars
    d = d[np.isfinite(d)]
    alpha = (1.0 - ci) / 2.0
    return SessionBootstrap(
        cer_a=float(ea.sum() / n.sum()), cer_b=float(eb.sum() / n.sum()),
        delta=float((eb.sum() - ea.sum()) / n.sum()),
        ci_low=float(np.quantile(d, alpha)), ci_high=float(np.quantile(d, 1.0 - alpha)),
        p_b_better=float(np.mean(d < 0)), num_sessions=len(sessions), num_seeds=len(pairs),
        num_boot=int(d.size), ci=ci,
    )
