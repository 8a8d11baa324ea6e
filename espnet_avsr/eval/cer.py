"""Character error rate: edit-distance alignment with substitution/insertion/deletion counts.

The alignment is a Levenshtein dynamic programme (unit costs) that carries, next to the
distance, the numbers of substitutions, insertions and deletions on the chosen path, so the
counts equal what a backtrace would give without storing the full matrix (sessions for cpCER
can be thousands of characters long). Ties prefer substitution/match, then the path with
fewer insertions. One row is vectorised with numpy: the insertion recurrence
``D[j] = min_k (T[k] + j - k)`` is a running minimum of ``T[k] - k``.

cpCER (MISP2022 multi-speaker sessions): per session, every speaker's utterances are joined
in time order, and the reference speakers are matched one-to-one to the hypothesis
speakers so that the summed edit distance is minimal (the minimum over speaker
permutations; unmatched speakers are scored against the empty string).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import editdistance
import numpy as np

from espnet_avsr.common.naming import parse_utt_id
from espnet_avsr.common.textnorm import to_chars

# Distances alone (the speaker-pair matrix of cpCER) come from the C ``editdistance`` package,
# an ESPnet dependency; align_counts stays ours because it also needs the sub/ins/del split.


@dataclass
class ErrorCounts:
    """Edit operations of one or many aligned pairs."""

    ref_chars: int = 0
    sub: int = 0
    ins: int = 0
    dele: int = 0
    num_utts: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.ins + self.dele

    @property
    def correct(self) -> int:
        return self.ref_chars - self.sub - self.dele

    @property
    def cer(self) -> float:
        """Errors / reference characters (0 for an empty, error-free reference; inf if the
        reference is empty and the hypothesis is not)."""
        if self.ref_chars == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.ref_chars

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.ref_chars + other.ref_chars,
            self.sub + other.sub,
            self.ins + other.ins,
            self.dele + other.dele,
            self.num_utts + other.num_utts,
        )

    def as_dict(self) -> Dict[str, float]:
        return {
            "cer": self.cer,
            "errors": self.errors,
            "ref_chars": self.ref_chars,
            "sub": self.sub,
            "ins": self.ins,
            "del": self.dele,
            "num_utts": self.num_utts,
        }


def _codes(seq: Sequence[str], table: Dict[str, int]) -> np.ndarray:
    return np.array([table.setdefault(t, len(table)) for t in seq], dtype=np.int64)


def align_counts(ref: Sequence[str], hyp: Sequence[str]) -> ErrorCounts:
    """Minimum edit distance between token sequences with its sub/ins/del split."""
    n, m = len(ref), len(hyp)
    if n == 0 or m == 0:
        return ErrorCounts(ref_chars=n, ins=m, dele=n, num_utts=1)
    table: Dict[str, int] = {}
    r, h = _codes(ref, table), _codes(hyp, table)
    j = np.arange(m + 1, dtype=np.int64)
    # previous row (i = 0): only insertions
    dist = j.copy()
    sub = np.zeros(m + 1, dtype=np.int64)
    ins = j.copy()
    dele = np.zeros(m + 1, dtype=np.int64)
    big = m + 1
    for i in range(1, n + 1):
        mismatch = (h != r[i - 1]).astype(np.int64)
        # candidates for column j >= 1 without a final insertion: diagonal or deletion
        diag = dist[:-1] + mismatch
        down = dist[1:] + 1
        take_diag = diag <= down
        t_dist = np.empty(m + 1, dtype=np.int64)
        t_sub = np.empty_like(t_dist)
        t_ins = np.empty_like(t_dist)
        t_del = np.empty_like(t_dist)
        t_dist[0], t_sub[0], t_ins[0], t_del[0] = dist[0] + 1, sub[0], ins[0], dele[0] + 1
        t_dist[1:] = np.where(take_diag, diag, down)
        t_sub[1:] = np.where(take_diag, sub[:-1] + mismatch, sub[1:])
        t_ins[1:] = np.where(take_diag, ins[:-1], ins[1:])
        t_del[1:] = np.where(take_diag, dele[:-1], dele[1:] + 1)
        # insertions: D[j] = min_{k<=j} t[k] + (j - k); ties -> largest k (fewest insertions)
        key = (t_dist - j) * big + (m - j)
        best = np.minimum.accumulate(key)
        k = m - (best % big)
        dist = t_dist[k] + (j - k)
        sub = t_sub[k]
        ins = t_ins[k] + (j - k)
        dele = t_del[k]
    return ErrorCounts(ref_chars=n, sub=int(sub[m]), ins=int(ins[m]), dele=int(dele[m]), num_utts=1)


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance only (``editdistance``)."""
    return int(editdistance.eval(list(ref), list(hyp)))


@dataclass
class UttScore:
    utt_id: str
    counts: ErrorCounts
    ref: str
    hyp: Optional[str]  # None when the hypothesis is missing

    @property
    def missing(self) -> bool:
        return self.hyp is None


@dataclass
class CorpusScore:
    """Utterance-level CER over a test set plus the bookkeeping of unmatched ids."""

    total: ErrorCounts
    utts: List[UttScore]
    missing_hyp: List[str] = field(default_factory=list)
    extra_hyp: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict:
        d = self.total.as_dict()
        d["num_missing_hyp"] = len(self.missing_hyp)
        d["num_extra_hyp"] = len(self.extra_hyp)
        return d


def score_corpus(refs: Mapping[str, str], hyps: Mapping[str, str]) -> CorpusScore:
    """CER of ``hyps`` against ``refs`` (both utt -> raw text).

    A reference utterance without a hypothesis is scored as all deletions and listed in
    ``missing_hyp``; hypotheses with no reference are listed in ``extra_hyp`` and not scored.
    """
    total = ErrorCounts()
    utts: List[UttScore] = []
    missing: List[str] = []
    for utt in sorted(refs):
        ref = to_chars(refs[utt])
        if utt in hyps:
            hyp_text: Optional[str] = hyps[utt]
            counts = align_counts(ref, to_chars(hyps[utt]))
        else:
            hyp_text = None
            missing.append(utt)
            counts = align_counts(ref, [])
        total = total + counts
        utts.append(UttScore(utt, counts, "".join(ref), None if hyp_text is None else "".join(to_chars(hyp_text))))
    extra = sorted(set(hyps) - set(refs))
    return CorpusScore(total=total, utts=utts, missing_hyp=missing, extra_hyp=extra)


# ---------------------------------------------------------------------------------- cpCER



def _group_sessions(texts: Mapping[str, str]) -> Dict[str, Dict[str, List[str]]]:
    """session -> speaker -> normalised characters of that speaker's utterances in time order."""
    by: Dict[str, Dict[str, List[Tuple[int, int, str]]]] = {}
    for utt, text in texts.items():
        spk, session, start, end = parse_utt_id(utt)
        by.setdefault(session, {}).setdefault(spk, []).append((start, end, utt))
    out: Dict[str, Dict[str, List[str]]] = {}
    for session, spks in by.items():
        out[session] = {}
        for spk, items in spks.items():
            chars: List[str] = []
            for _, _, utt in sorted(items):
                chars.extend(to_chars(texts[utt]))
            out[session][spk] = chars
    return out


@dataclass
class SessionScore:
    session: str
    counts: ErrorCounts
    assignment: Dict[str, Optional[str]]  # reference speaker -> hypothesis speaker


def best_permutation(pair_errors: np.ndarray) -> Tuple[int, Tuple[int, ...]]:
    """Minimum of sum_i E[i, perm(i)] over permutations of a square error matrix.

    Exhaustive for up to 8 speakers (the MISP case); beyond that the Hungarian algorithm,
    which gives the same minimum because the objective is a sum over matched pairs.
    """
    n = pair_errors.shape[0]
    if pair_errors.shape != (n, n):
        raise ValueError(f"pair error matrix must be square, got {pair_errors.shape}")
    if n == 0:
        return 0, ()
    if n <= 8:
        best_cost, best_perm = None, None
        for perm in itertools.permutations(range(n)):
            cost = int(sum(pair_errors[i, p] for i, p in enumerate(perm)))
            if best_cost is None or cost < best_cost:
                best_cost, best_perm = cost, perm
        return best_cost, best_perm
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(pair_errors)
    perm = tuple(int(c) for _, c in sorted(zip(rows, cols)))
    return int(pair_errors[rows, cols].sum()), perm


def score_session(session: str, ref_spk: Mapping[str, List[str]], hyp_spk: Mapping[str, List[str]]) -> SessionScore:
    """cpCER counts of one session (speaker -> characters on both sides)."""
    ref_ids = sorted(ref_spk)
    hyp_ids = sorted(hyp_spk)
    n = max(len(ref_ids), len(hyp_ids))
    refs = [ref_spk[s] for s in ref_ids] + [[]] * (n - len(ref_ids))
    hyps = [hyp_spk[s] for s in hyp_ids] + [[]] * (n - len(hyp_ids))
    err = np.array([[edit_distance(refs[i], hyps[k]) for k in range(n)] for i in range(n)], dtype=np.int64).reshape(n, n)
    _, perm = best_permutation(err)
    total = ErrorCounts()
    assignment: Dict[str, Optional[str]] = {}
    for i, k in enumerate(perm):
        c = align_counts(refs[i], hyps[k])
        total = total + ErrorCounts(c.ref_chars, c.sub, c.ins, c.dele, 0)
        if i < len(ref_ids):
            assignment[ref_ids[i]] = hyp_ids[k] if k < len(hyp_ids) else None
    total.num_utts = 1
    return SessionScore(session, total, assignment)


def score_cpcer(refs: Mapping[str, str], hyps: Mapping[str, str]) -> Tuple[ErrorCounts, List[SessionScore]]:
    """Concatenated minimum-permutation CER over all sessions (``num_utts`` counts sessions).

    A hypothesis session with no reference counterpart is scored as pure insertions.
    """
    ref_sessions = _group_sessions(refs)
    hyp_sessions = _group_sessions(hyps)
    total = ErrorCounts()
    scores: List[SessionScore] = []
    for session in sorted(set(ref_sessions) | set(hyp_sessions)):
        s = score_session(session, ref_sessions.get(session, {}), hyp_sessions.get(session, {}))
        scores.append(s)
        total = total + s.counts
    return total, scores


def counts_from_dict(d: Mapping) -> ErrorCounts:
    return ErrorCounts(int(d["ref_chars"]), int(d["sub"]), int(d["ins"]), int(d["del"]), int(d.get("num_utts", 0)))


__all__ = [
    "ErrorCounts",
    "UttScore",
    "CorpusScore",
    "SessionScore",
    "align_counts",
    "edit_distance",
    "score_corpus",
    "parse_utt_id",
    "best_permutation",
    "score_session",
    "score_cpcer",
    "counts_from_dict",
]
