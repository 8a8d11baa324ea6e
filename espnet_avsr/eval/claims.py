"""The paper's claims, computed: each ordering with every seed's numbers, a session-level
paired bootstrap interval pooled over seeds, and a verdict from one stated rule.

Verdict rule (``VERDICT_RULE``): a claim that B is lower than A *holds* when the whole 95 %
interval of B - A lies below 0, is *contradicted* when it lies above 0, and is *within
noise* when it contains 0 (mirrored for "higher"). Wording in RESULTS.md follows the verdict:
"suggestive" at most for a claim within noise.

Inputs are scores already computed from decode outputs: ``scores[model][condition]`` holds
the per-seed :class:`CorpusScore` of that model on that condition (same test set), either as
a ``{seed: score}`` mapping or as a list in seed order (seeds 0, 1, ...), with conditions named
``missing=<rate>`` and ``babble=<snr>``. A comparison pairs the seeds both sides have, so a
table whose second seed of one model is still training still compares the first (and says so).
``relative[test_rate][dropout]`` holds the study models' per-seed relative-CER scores (AVSR
hypotheses against A0's) at a test missing rate (the paper's figure: 0 and 1), and
``similarity[dropout]`` their per-seed ASR/AVSR representation similarities: pooled samples
(:class:`~espnet_avsr.eval.similarity.PooledSample`, resampled by session) or bare numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from espnet_avsr.eval.cer import CorpusScore
from espnet_avsr.eval.bias import cosine_matrix, linear_cka, row_contrast
from espnet_avsr.common.naming import utt_session
from espnet_avsr.eval.significance import pool_scores, session_bootstrap
from espnet_avsr.eval.similarity import PooledSample

SeedScores = Union[Mapping[int, CorpusScore], Sequence[CorpusScore]]
Scores = Mapping[str, Mapping[str, SeedScores]]
VERDICT_RULE = ("holds: the 95 % session-bootstrap interval of the difference excludes 0 in the "
                "claimed direction; contradicted: it excludes 0 in the other direction; "
                "within noise: it contains 0")
RATES = ("0", "0.25", "0.5", "0.75", "1")


def missing(rate) -> str:
    return f"missing={float(rate):g}"


def babble(snr) -> str:
    return f"babble={float(snr):g}"


@dataclass
class Claim:
    """One claim and what the numbers say about it."""

    name: str
    statement: str
    verdict: str  # holds | within noise | contradicted | not run
    a: str = ""
    b: str = ""
    mean_a: Optional[float] = None  # CER (fraction), mean over seeds
    mean_b: Optional[float] = None
    seeds_a: List[float] = field(default_factory=list)
    seeds_b: List[float] = field(default_factory=list)
    delta: Optional[float] = None  # pooled over seeds: B - A (or a slope for trends)
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    detail: str = ""
    parts: List["Claim"] = field(default_factory=list)

    def as_dict(self) -> Dict:
        return asdict(self)


def verdict(ci_low: float, ci_high: float, lower: bool) -> str:
    """The stated rule: B lower than A (``lower``) holds when the interval of B - A is < 0."""
    if (ci_high < 0) if lower else (ci_low > 0):
        return "holds"
    if (ci_low > 0) if lower else (ci_high < 0):
        return "contradicted"
    return "within noise"


def _get(scores: Scores, model: str, cond: str) -> Optional[Dict[int, CorpusScore]]:
    """``{seed: score}`` of one model and condition (a list counts as seeds 0, 1, ...)."""
    got = scores.get(model, {}).get(cond)
    if not got:
        return None
    return dict(got) if isinstance(got, Mapping) else dict(enumerate(got))


def compare(name: str, statement: str, scores: Scores, a: Tuple[str, str], b: Tuple[str, str],
            lower: bool, num_boot: int = 10000, seed: int = 0) -> Claim:
    """Claim "model b[0] on condition b[1] is lower (``lower``) / higher than a" with its interval,
    over the seeds both have (means and per-seed values too, so the pairs stay paired)."""
    sa, sb = _get(scores, *a), _get(scores, *b)
    label = lambda x: f"{x[0]} ({x[1]})"
    if sa is None or sb is None:
        lacking = [label(x) for x, s in ((a, sa), (b, sb)) if s is None]
        return Claim(name, statement, "not run", label(a), label(b), detail="no decode of " + ", ".join(lacking))
    common = sorted(set(sa) & set(sb))
    if not common:
        return Claim(name, statement, "not run", label(a), label(b),
                     detail=f"no seed in common: {label(a)} has seeds {sorted(sa)}, {label(b)} {sorted(sb)}")
    pa, pb = [sa[k] for k in common], [sb[k] for k in common]
    boot = session_bootstrap(list(zip(pa, pb)), num_boot=num_boot, seed=seed)
    detail = f"{boot.num_sessions} sessions x {boot.num_seeds} seeds"
    unpaired = sorted((set(sa) | set(sb)) - set(common))
    if unpaired:
        detail += (f" (seeds {', '.join(map(str, common))} only: seed(s) {', '.join(map(str, unpaired))} "
                   f"decoded for one side alone)")
    return Claim(
        name, statement, verdict(boot.ci_low, boot.ci_high, lower), label(a), label(b),
        mean_a=float(np.mean([s.total.cer for s in pa])), mean_b=float(np.mean([s.total.cer for s in pb])),
        seeds_a=[s.total.cer for s in pa], seeds_b=[s.total.cer for s in pb],
        delta=boot.delta, ci_low=boot.ci_low, ci_high=boot.ci_high, detail=detail,
    )


def _pooled(scores: Scores, models: Sequence[str], conds: Sequence[str]) -> Dict[str, Dict[str, Dict[int, CorpusScore]]]:
    """Per model and seed, its scores over ``conds`` pooled into one (seeds decoded on every cond)."""
    out: Dict[str, Dict[str, Dict[int, CorpusScore]]] = {}
    for m in models:
        per = [_get(scores, m, c) for c in conds]
        if all(p is not None for p in per):
            seeds = sorted(set.intersection(*(set(p) for p in per)))
            if seeds:
                out[m] = {"pooled": {k: pool_scores([p[k] for p in per]) for k in seeds}}
    return out


def _combine(name: str, statement: str, parts: List[Claim], rule: str) -> Claim:
    """A claim made of parts: holds when every part holds, contradicted when any is."""
    verdicts = [p.verdict for p in parts]
    if "not run" in verdicts:
        v = "not run"
    elif "contradicted" in verdicts:
        v = "contradicted"
    elif all(x == "holds" for x in verdicts):
        v = "holds"
    else:
        v = "within noise"
    return Claim(name, statement, v, detail=rule, parts=parts)


def trend(name: str, statement: str, rel: Mapping[float, Sequence[CorpusScore]], falls: bool,
          num_boot: int = 10000, seed: int = 0) -> Claim:
    """Least-squares slope of a per-model score (e.g. relative CER) against training dropout,
    pooled over seeds, with a session bootstrap of the slope."""
    xs = sorted(rel)
    if len(xs) < 2:
        return Claim(name, statement, "not run", detail="needs at least two dropout rates")
    ids = [u.utt_id for u in rel[xs[0]][0].utts]
    sessions = sorted({utt_session(u) for u in ids})
    pos = {s: i for i, s in enumerate(sessions)}
    err = np.zeros((len(xs), len(sessions)))
    ref = np.zeros((len(xs), len(sessions)))
    seeds = []
    for i, x in enumerate(xs):
        seeds.append([s.total.cer for s in rel[x]])
        for s in rel[x]:
            for u in s.utts:
                err[i, pos[utt_session(u.utt_id)]] += u.counts.errors
                ref[i, pos[utt_session(u.utt_id)]] += u.counts.ref_chars
    x = np.asarray(xs, float)
    slope = lambda e, r: float(np.polyfit(x, e / np.maximum(r, 1e-9), 1)[0])
    point = slope(err.sum(1), ref.sum(1))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sessions), size=(num_boot, len(sessions)))
    boots = np.array([slope(err[:, k].sum(1), ref[:, k].sum(1)) for k in idx])
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return Claim(name, statement, verdict(float(lo), float(hi), falls),
                 a="training dropout " + "/".join(f"{v:g}" for v in xs),
                 seeds_b=[float(np.mean(s)) for s in seeds], delta=point, ci_low=float(lo), ci_high=float(hi),
                 detail="slope per unit of dropout; seeds_b = mean over seeds at each rate; "
                        f"{len(sessions)} sessions")


SIMILARITY_METRICS = {
    "cka": "linear CKA",
    "diagonal": "diagonal minus off-diagonal cosine",
}


def similarity_trend(name: str, statement: str, reps: Mapping[float, Sequence[PooledSample]],
                     num_boot: int = 10000, seed: int = 0, metric: str = "cka") -> Claim:
    """Least-squares slope of an ASR/AVSR similarity (mean over layer pairs and seeds) against
    training dropout, with a bootstrap that resamples sessions of the sampled utterances (the
    utterances every model was measured on). ``metric``: ``cka``, linear CKA recomputed on every
    resample; ``diagonal``, the mean over resampled utterances of their cosine with their own
    AVSR representation minus their mean cosine with the others' (the figure's "brighter
    diagonal"; each utterance's contrast is taken against the whole sample once)."""
    if metric not in SIMILARITY_METRICS:
        raise ValueError(f"unknown similarity metric {metric!r}; choose from {sorted(SIMILARITY_METRICS)}")
    xs = sorted(reps)
    a = "training dropout " + "/".join(f"{v:g}" for v in xs)
    if len(xs) < 2:
        return Claim(name, statement, "not run", a=a, detail="needs at least two dropout rates")
    samples = [s for x in xs for s in reps[x]]
    common = set(samples[0].keys).intersection(*(s.keys for s in samples[1:]))
    keys = [k for k in samples[0].keys if k in common]
    rows = [{k: i for i, k in enumerate(s.keys)} for s in samples]
    sessions: Dict[str, List[str]] = {}
    for k in keys:
        sessions.setdefault(utt_session(k), []).append(k)
    names = sorted(sessions)
    if len(keys) < 2 or len(names) < 2:
        return Claim(name, statement, "not run", a=a,
                     detail=f"{len(keys)} shared utterances from {len(names)} session(s): a session bootstrap needs two")
    # per sample and session, the rows of that session's utterances: in the sample's own arrays
    # (cka) or in the shared key order (diagonal, whose per-utterance contrasts are computed once)
    if metric == "cka":
        index = [[np.array([r[k] for k in sessions[n]]) for n in names] for r in rows]
        stat = lambda j, idx: float(np.mean([linear_cka(p[idx], q[idx]) for p, q in samples[j].pairs]))
    else:
        pos = {k: i for i, k in enumerate(keys)}
        index = [[np.array([pos[k] for k in sessions[n]]) for n in names]] * len(samples)
        shared = [np.array([r[k] for k in keys]) for r in rows]
        contrast = [np.mean([row_contrast(cosine_matrix(p[sh], q[sh])) for p, q in smp.pairs], axis=0)
                    for smp, sh in zip(samples, shared)]
        stat = lambda j, idx: float(np.mean(contrast[j][idx]))
    x = np.asarray(xs, float)

    def slope(draw: Sequence[int]) -> Tuple[float, List[float]]:
        sims, j = [], 0
        for v in xs:
            per_seed = []
            for _ in reps[v]:
                per_seed.append(stat(j, np.concatenate([index[j][d] for d in draw])))
                j += 1
            sims.append(per_seed)
        return float(np.polyfit(x, [np.mean(p) for p in sims], 1)[0]), [float(np.mean(p)) for p in sims]

    point, means = slope(range(len(names)))
    rng = np.random.default_rng(seed)
    boots = np.array([slope(d)[0] for d in rng.integers(0, len(names), size=(num_boot, len(names)))])
    lo, hi = np.quantile(boots, [0.025, 0.975])
    label = SIMILARITY_METRICS[metric]
    return Claim(name, statement, verdict(float(lo), float(hi), False), a=a, seeds_b=means, delta=point,
                 ci_low=float(lo), ci_high=float(hi),
                 detail=f"slope of {label} per unit of dropout; seeds_b = mean {label} over seeds at each rate; "
                        f"{len(keys)} utterances from {len(names)} sessions, sessions resampled")


def evaluate_claims(scores: Scores,
                    relative: Optional[Mapping[float, Mapping[float, Sequence[CorpusScore]]]] = None,
                    similarity: Optional[Mapping[float, Sequence[Union[float, PooledSample]]]] = None,
                    babble_snrs: Sequence[float] = (), num_boot: int = 10000, seed: int = 0) -> List[Claim]:
    """Every claim of the paper that the available decodes can speak to, in the paper's order."""
    kw = dict(num_boot=num_boot, seed=seed)
    m0, m1 = missing(0), missing(1)
    claims = [
        compare("av0_beats_a0", "AV0 < A0 with complete video", scores, ("A0", m0), ("AV0", m0), True, **kw),
        compare("av0_bias", "AV0 > A0 with all video missing (modality bias)", scores,
                ("A0", m1), ("AV0", m1), False, **kw),
        _combine("dropout_tradeoff", "video dropout trades complete-video CER for robustness (AV1 vs AV0)", [
            compare("av1_costs", "AV1 > AV0 at 0 % missing", scores, ("AV0", m0), ("AV1", m0), False, **kw),
            compare("av1_robust", "AV1 < AV0 at 100 % missing", scores, ("AV0", m1), ("AV1", m1), True, **kw),
        ], "both parts must hold"),
    ]
    rates = [missing(r) for r in RATES]
    per_rate = [compare(f"av5_vs_av3_{r}", f"AV5 <= AV3 at {r}", scores, ("AV3", r), ("AV5", r), True, **kw)
                for r in rates]
    pooled = _pooled(scores, ("AV3", "AV5"), rates)
    per_rate.append(compare("av5_vs_av3_pooled", "AV5 <= AV3 pooled over missing rates", pooled,
                            ("AV3", "pooled"), ("AV5", "pooled"), True, **kw))
    claims.append(_combine("mda_kd", "MDA-KD (AV5) <= dropout alone (AV3) at every rate and pooled",
                           per_rate, "every rate and the pooled comparison must hold"))
    claims.append(compare("av6_no_worse", "AV6 <= A0 with all video missing", scores, ("A0", m1), ("AV6", m1),
                          True, **kw))
    others = sorted(m for m in scores if m != "AV6" and not m.startswith("AVd") and m != "V0")
    for snr in babble_snrs:
        c = babble(snr)
        parts = [compare(f"av6_vs_{o}_{c}", f"AV6 < {o} under {c} dB", scores, (o, c), ("AV6", c), True, **kw)
                 for o in others]
        claims.append(_combine(f"av6_best_{c}", f"AV6 best under unseen babble at {snr:g} dB", parts,
                               "AV6 must be lower than every other model"))
    if relative:  # one trend per test missing rate (the figure: 1.0 and 0.0), all must hold
        statement = "relative CER (AVSR vs A0 hypotheses) falls as training dropout rises"
        parts = [trend("relative_cer_falls" + ("" if len(relative) == 1 else f"_{missing(r)}"),
                       f"{statement}, {missing(r)} at test", relative[r], True, **kw) for r in sorted(relative)]
        claims.append(parts[0] if len(parts) == 1 else _combine(
            "relative_cer_falls", statement, parts, "every test missing rate must hold"))
    if similarity and all(isinstance(v, PooledSample) for vs in similarity.values() for v in vs):
        # two readings, both must hold: linear CKA (a summary of the whole sample) and the
        # figure's own, the brightness of the cosine matrix's diagonal
        claims.append(_combine("similarity_rises", "ASR/AVSR representation similarity rises with training dropout", [
            similarity_trend("similarity_rises_cka", "linear CKA rises", similarity, metric="cka", **kw),
            similarity_trend("similarity_rises_diagonal", "the cosine matrix's diagonal brightens (diagonal "
                             "minus off-diagonal)", similarity, metric="diagonal", **kw),
        ], "both readings must hold"))
    elif similarity:  # bare numbers: no utterances to resample, the sign of each seed's correlation
        xs = sorted(similarity)
        per_seed = np.array([similarity[x] for x in xs], float)  # (rates, seeds)
        rho = [float(np.corrcoef(xs, per_seed[:, k])[0, 1]) for k in range(per_seed.shape[1])]
        v = "holds" if all(r > 0 for r in rho) else ("contradicted" if all(r < 0 for r in rho) else "within noise")
        claims.append(Claim("similarity_rises", "ASR/AVSR representation similarity rises with training dropout",
                            v, a="training dropout " + "/".join(f"{x:g}" for x in xs),
                            seeds_b=[float(np.mean(similarity[x])) for x in xs], delta=float(np.mean(rho)),
                            detail="delta = mean over seeds of the correlation of similarity with dropout; "
                                   "verdict: holds when every seed's correlation is positive (no session "
                                   "interval: similarity is one statistic over a sample)"))
    return claims


def _pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def format_claims(claims: Sequence[Claim]) -> str:
    """Markdown: one row per claim (and per part), with intervals in CER points."""
    lines = ["| claim | A | B | A (mean; seeds) | B (mean; seeds) | B - A | 95 % CI | verdict |",
             "|---|---|---|---|---|---|---|---|"]

    def row(c: Claim, indent: str = "") -> None:
        seeds = lambda xs: "; ".join(_pct(x) for x in xs)
        ci = "-" if c.ci_low is None else f"[{100 * c.ci_low:+.2f}, {100 * c.ci_high:+.2f}]"
        delta = "-" if c.delta is None else f"{100 * c.delta:+.2f}"
        lines.append(f"| {indent}{c.statement} | {c.a} | {c.b} | {_pct(c.mean_a)} ({seeds(c.seeds_a)}) | "
                     f"{_pct(c.mean_b)} ({seeds(c.seeds_b)}) | {delta} | {ci} | **{c.verdict}** |")
        for p in c.parts:
            row(p, indent + "&nbsp;&nbsp;")

    for c in claims:
        row(c)
    lines += ["", f"Verdict rule: {VERDICT_RULE}. Intervals resample whole test sessions, pooled over seeds."]
    return "\n".join(lines)
