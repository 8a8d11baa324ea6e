"""Claims with session-level intervals pooled over seeds (issue 15, deliverable 5)."""
from __future__ import annotations

import numpy as np
import pytest

from espnet_avsr.eval.cer import score_corpus
from espnet_avsr.eval.claims import babble, evaluate_claims, format_claims, missing, verdict
from espnet_avsr.eval.significance import paired_bootstrap, session_bootstrap


def _refs(n_sessions=12, per_session=5):
    refs = {}
    for s in range(n_sessions):
        for u in range(per_session):
            refs[f"S{s:03d}_R01_S{s:03d}002_C01_I{s}_{100 * u:06d}-{100 * u + 90:06d}"] = "今天晚上看电视吗"
    return refs


def _hyps(refs, wrong, rng):
    """Hypotheses with ``wrong`` characters wrong per utterance on average."""
    out = {}
    for k, ref in refs.items():
        chars = list(ref)
        for i in rng.choice(len(chars), min(len(chars), rng.poisson(wrong)), replace=False):
            chars[i] = "错"
        out[k] = "".join(chars)
    return out


def test_verdict_rule():
    assert verdict(-0.05, -0.01, lower=True) == "holds"
    assert verdict(-0.05, 0.01, lower=True) == "within noise"
    assert verdict(0.01, 0.05, lower=True) == "contradicted"
    assert verdict(0.01, 0.05, lower=False) == "holds"


def test_session_bootstrap_is_wider_than_the_utterance_one_when_sessions_differ():
    rng = np.random.default_rng(0)
    refs = _refs()
    # B is better on some sessions, much worse on others: utterances within a session agree
    a = score_corpus(refs, _hyps(refs, 2, rng))
    hb = {}
    for k, ref in refs.items():
        sess = int(k.split("_")[4][1:])
        hb[k] = _hyps({k: ref}, 0 if sess % 2 else 4, rng)[k]
    b = score_corpus(refs, hb)
    per_session = session_bootstrap([(a, b)], num_boot=2000)
    per_utt = paired_bootstrap([u.counts.errors for u in a.utts], [u.counts.errors for u in b.utts],
                               [u.counts.ref_chars for u in a.utts], num_boot=2000)
    assert per_session.num_sessions == 12 and per_session.delta == pytest.approx(per_utt.delta)
    assert per_session.ci_high - per_session.ci_low > 1.2 * (per_utt.ci_high - per_utt.ci_low)


def test_session_bootstrap_pools_seeds_and_refuses_other_utterances():
    rng = np.random.default_rng(1)
    refs = _refs()
    pairs = [(score_corpus(refs, _hyps(refs, 3, rng)), score_corpus(refs, _hyps(refs, 1, rng))) for _ in range(2)]
    boot = session_bootstrap(pairs, num_boot=500)
    assert boot.num_seeds == 2 and boot.ci_high < 0
    errs = sum(s.total.errors for p in pairs for s in p[1:]) - sum(p[0].total.errors for p in pairs)
    assert boot.delta == pytest.approx(errs / (2 * pairs[0][0].total.ref_chars))
    other = score_corpus(dict(list(refs.items())[:-1]), _hyps(dict(list(refs.items())[:-1]), 1, rng))
    with pytest.raises(ValueError, match="same utterances"):
        session_bootstrap([(pairs[0][0], other)])


def test_claims_from_scores():
    rng = np.random.default_rng(2)
    refs = _refs()
    sc = lambda w: [score_corpus(refs, _hyps(refs, w, rng)) for _ in range(2)]  # two seeds
    scores = {
        "A0": {missing(r): sc(2.0) for r in (0, 1)} | {babble(-5): sc(5.0)},
        "AV0": {missing(0): sc(1.0), missing(1): sc(3.0), babble(-5): sc(4.0)},
        "AV6": {missing(1): sc(2.0), babble(-5): sc(1.0)},
    }
    claims = {c.name: c for c in evaluate_claims(scores, babble_snrs=[-5], num_boot=500)}
    assert claims["av0_beats_a0"].verdict == "holds"
    assert claims["av0_bias"].verdict == "holds"
    assert claims["av0_beats_a0"].seeds_b == [s.total.cer for s in scores["AV0"][missing(0)]]
    assert claims["dropout_tradeoff"].verdict == "not run"  # no AV1 decoded
    assert claims["av6_best_babble=-5"].verdict == "holds"
    assert claims["av6_no_worse"].verdict == "within noise"  # same error rate as A0
    table = format_claims(list(claims.values()))
    assert "**holds**" in table and "Verdict rule" in table and "not run" in table


def test_claims_pair_the_seeds_both_sides_have():
    """A model whose second seed is still training is compared on its first seed alone, and
    the claim says so; sides with no seed in common are 'not run', not an error."""
    rng = np.random.default_rng(4)
    refs = _refs()
    a0 = {0: score_corpus(refs, _hyps(refs, 3.0, rng)), 1: score_corpus(refs, _hyps(refs, 3.0, rng))}
    av0 = {0: score_corpus(refs, _hyps(refs, 1.0, rng)), 1: score_corpus(refs, _hyps(refs, 1.0, rng))}
    av1 = {0: score_corpus(refs, _hyps(refs, 2.0, rng))}
    scores = {"A0": {missing(0): a0}, "AV0": {missing(0): av0, missing(1): {1: av0[1]}},
              "AV1": {missing(0): av1, missing(1): {0: av1[0]}}}
    by = {c.name: c for c in evaluate_claims(scores, num_boot=300)}
    assert by["av0_beats_a0"].seeds_a == [a0[0].total.cer, a0[1].total.cer]
    assert "only" not in by["av0_beats_a0"].detail
    cost = by["dropout_tradeoff"].parts[0]
    assert cost.seeds_a == [av0[0].total.cer] and cost.seeds_b == [av1[0].total.cer]
    assert cost.mean_a == pytest.approx(av0[0].total.cer) and "seeds 0 only" in cost.detail
    assert cost.verdict == "holds"  # AV1 has about twice AV0's errors
    robust = by["dropout_tradeoff"].parts[1]
    assert robust.verdict == "not run" and "no seed in common" in robust.detail


def test_relative_cer_trend():
    rng = np.random.default_rng(3)
    refs = _refs()
    rel = {d: [score_corpus(refs, _hyps(refs, w, rng)) for _ in range(2)]
           for d, w in ((0.1, 4.0), (0.3, 3.0), (0.5, 2.0), (0.7, 1.0))}
    claims = evaluate_claims({}, relative={0.0: rel}, similarity={0.1: [0.5, 0.6], 0.3: [0.6, 0.7], 0.7: [0.8, 0.75]},
                             num_boot=300)
    by = {c.name: c for c in claims}
    assert by["relative_cer_falls"].verdict == "holds" and by["relative_cer_falls"].delta < 0
    assert by["similarity_rises"].verdict == "holds"


def _pooled(keys, noise, rng, shared=None):
    from espnet_avsr.eval.similarity import PooledSample
    x = rng.normal(size=(len(keys), 8)) if shared is None else shared
    return PooledSample(list(keys), [(x, x + noise * rng.normal(size=x.shape))])


def test_similarity_trend_resamples_sessions():
    """The similarity trend's interval comes from sessions of the sampled utterances: a clear
    rise holds, a fall is contradicted, one session cannot be resampled."""
    from espnet_avsr.eval.claims import similarity_trend

    rng = np.random.default_rng(6)
    keys = list(_refs())
    rises = {d: [_pooled(keys, n, rng) for _ in range(2)] for d, n in ((0.1, 3.0), (0.3, 1.5), (0.7, 0.3))}
    c = similarity_trend("s", "rises", rises, num_boot=200)
    assert c.verdict == "holds" and c.delta > 0 and c.ci_low > 0 and len(c.seeds_b) == 3
    assert c.seeds_b[0] < c.seeds_b[1] < c.seeds_b[2] and "60 utterances from 12 sessions" in c.detail
    falls = {d: v for d, v in zip((0.7, 0.3, 0.1), rises.values())}
    assert similarity_trend("s", "rises", falls, num_boot=200).verdict == "contradicted"
    flat = {d: [_pooled(keys, 1.0, rng) for _ in range(2)] for d in (0.1, 0.3, 0.7)}
    assert similarity_trend("s", "rises", flat, num_boot=200).verdict == "within noise"
    one = [k for k in keys if k.startswith("S000_")]
    lone = similarity_trend("s", "rises", {d: [_pooled(one, 1.0, rng)] for d in (0.1, 0.3)}, num_boot=50)
    assert lone.verdict == "not run" and "1 session(s)" in lone.detail
    # only the utterances every model was measured on enter (here the last model lacks one)
    part = dict(rises)
    part[0.7] = [_pooled(keys[1:], 0.3, rng) for _ in range(2)]
    assert "59 utterances" in similarity_trend("s", "rises", part, num_boot=50).detail
    # the figure's reading: the diagonal of the cosine matrix brightens (its mean over seeds is
    # diagonal_contrast of each seed's matrix), and it falls when the order is reversed
    from espnet_avsr.eval.bias import cosine_matrix, diagonal_contrast
    d = similarity_trend("s", "rises", rises, num_boot=200, metric="diagonal")
    assert d.verdict == "holds" and d.delta > 0 and "diagonal minus off-diagonal cosine" in d.detail
    x, y = rises[0.1][0].pairs[0]
    x1, y1 = rises[0.1][1].pairs[0]
    assert d.seeds_b[0] == pytest.approx(np.mean([diagonal_contrast(cosine_matrix(x, y)),
                                                  diagonal_contrast(cosine_matrix(x1, y1))]))
    assert similarity_trend("s", "rises", falls, num_boot=200, metric="diagonal").verdict == "contradicted"
    with pytest.raises(ValueError, match="unknown similarity metric 'rsa'"):
        similarity_trend("s", "rises", rises, metric="rsa")


def test_keys_across_sessions_spans_the_sessions():
    from espnet_avsr.common.naming import utt_session
    from espnet_avsr.eval.significance import keys_across_sessions

    keys = list(_refs(n_sessions=6, per_session=5))
    picked = keys_across_sessions(keys, 9)
    assert len(picked) == 9 and {utt_session(k) for k in picked} == {utt_session(k) for k in keys}
    assert picked == [k for k in keys if k in set(picked)]  # in the set's order
    assert keys_across_sessions(keys, 100) == keys
    with pytest.raises(ValueError, match="does not follow"):
        keys_across_sessions(["utt1", "utt2"], 1)


def test_relative_cer_trend_at_both_test_rates():
    """The figure shows relative CER with complete video and with none: the claim holds only
    when it falls at both, and is contradicted when it rises at one."""
    rng = np.random.default_rng(5)
    refs = _refs()
    falls = {d: [score_corpus(refs, _hyps(refs, w, rng)) for _ in range(2)]
             for d, w in ((0.1, 4.0), (0.3, 3.0), (0.7, 1.0))}
    rises = {d: [score_corpus(refs, _hyps(refs, w, rng)) for _ in range(2)]
             for d, w in ((0.1, 1.0), (0.3, 2.5), (0.7, 4.0))}
    both = {c.name: c for c in evaluate_claims({}, relative={0.0: falls, 1.0: falls}, num_boot=300)}
    claim = both["relative_cer_falls"]
    assert claim.verdict == "holds"
    assert [p.name for p in claim.parts] == ["relative_cer_falls_missing=0", "relative_cer_falls_missing=1"]
    mixed = {c.name: c for c in evaluate_claims({}, relative={0.0: falls, 1.0: rises}, num_boot=300)}
    assert [p.verdict for p in mixed["relative_cer_falls"].parts] == ["holds", "contradicted"]
    assert mixed["relative_cer_falls"].verdict == "contradicted"
    assert mixed["relative_cer_falls"].parts[1].delta > 0


def test_make_claims_cli_rescoring_score_dirs(tmp_path, capsys):
    import json

    from espnet_avsr.bin.make_claims import main as make_claims
    from espnet_avsr.eval.io import write_score_dir

    rng = np.random.default_rng(4)
    refs = _refs()
    ref_path = tmp_path / "ref"
    ref_path.write_text("".join(f"{k} {v}\n" for k, v in refs.items()), encoding="utf-8")
    rows = []
    for base, wrong in (("A0", 2.0), ("AV0", 0.5)):
        for seed in (1, 0):
            for cond in ("missing=0", "missing=1"):
                d = tmp_path / f"{base}_{seed}_{cond}"
                d.mkdir()
                hyp = _hyps(refs, wrong if cond == "missing=0" or base == "A0" else 3.0, rng)
                (d / "text").write_text("".join(f"{k} {v}\n" for k, v in hyp.items()), encoding="utf-8")
                write_score_dir(d / "score", score_corpus(refs, hyp), {}, str(ref_path), str(d / "text"))
                rows.append(f"{base}\t{seed}\t{cond}\t{d / 'score'}")
    (tmp_path / "decodes.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    make_claims(["--decodes", str(tmp_path / "decodes.tsv"), "--num_boot", "300",
                 "--out_json", str(tmp_path / "claims.json"), "--out_md", str(tmp_path / "claims.md")])
    claims = {c["name"]: c for c in json.loads((tmp_path / "claims.json").read_text())}
    assert claims["av0_beats_a0"]["verdict"] == "holds" and claims["av0_bias"]["verdict"] == "holds"
    assert len(claims["av0_beats_a0"]["seeds_a"]) == 2
    assert "AV0 < A0 with complete video" in (tmp_path / "claims.md").read_text()
    # the study: relative CER of AVd<rate> against A0's hypotheses, at test missing rates 0 and 1
    a0 = tmp_path / "A0_0_missing=0" / "text"
    rel_rows = []
    for rate, wrong in ((0.1, 3.0), (0.3, 2.0), (0.7, 0.5)):
        for seed in (0, 1):
            for test_rate in (0, 1):
                hyp = tmp_path / f"AVd{rate}_{seed}_{test_rate}"
                hyp.write_text("".join(f"{k} {v}\n" for k, v in _hyps(refs, wrong, rng).items()), encoding="utf-8")
                rel_rows.append(f"{rate}\t{seed}\t{test_rate}\t{a0}\t{hyp}")
    (tmp_path / "relative.tsv").write_text("\n".join(rel_rows) + "\n", encoding="utf-8")
    make_claims(["--decodes", str(tmp_path / "decodes.tsv"), "--relative", str(tmp_path / "relative.tsv"),
                 "--num_boot", "300", "--out_json", str(tmp_path / "claims2.json"), "--out_md", str(tmp_path / "c2.md")])
    rel = {c["name"]: c for c in json.loads((tmp_path / "claims2.json").read_text())}["relative_cer_falls"]
    assert [p["name"] for p in rel["parts"]] == ["relative_cer_falls_missing=0", "relative_cer_falls_missing=1"]
    assert all(p["delta"] < 0 and len(p["seeds_b"]) == 3 for p in rel["parts"])
    (tmp_path / "rel4.tsv").write_text(f"0.1\t0\t{a0}\t{a0}\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="rel4.tsv:1: expected 5 tab-separated columns"):
        make_claims(["--decodes", str(tmp_path / "decodes.tsv"), "--relative", str(tmp_path / "rel4.tsv"),
                     "--out_json", "x", "--out_md", "y"])
    # the study's similarity: rep_similarity.json files bring their pooled arrays to resample
    from espnet_avsr.eval.similarity import PooledRepresentations, write_similarity
    keys = list(refs)
    sim_rows = []
    for rate, noise in ((0.1, 3.0), (0.3, 1.5), (0.7, 0.3)):
        for seed in (0, 1):
            x = rng.normal(size=(len(keys), 8))
            rep = PooledRepresentations(keys=keys, asr={"output": [x]}, avsr={"output": [x + noise * rng.normal(size=x.shape)]})
            out = tmp_path / f"sim_{rate}_{seed}"
            write_similarity(rep, [("output", "output")], out, plot_samples=2)
            sim_rows.append(f"{rate}\t{seed}\t{out / 'rep_similarity.json'}")
    (tmp_path / "similarity.tsv").write_text("\n".join(sim_rows) + "\n", encoding="utf-8")
    make_claims(["--decodes", str(tmp_path / "decodes.tsv"), "--similarity", str(tmp_path / "similarity.tsv"),
                 "--num_boot", "200", "--out_json", str(tmp_path / "claims3.json"), "--out_md", str(tmp_path / "c3.md")])
    both = {c["name"]: c for c in json.loads((tmp_path / "claims3.json").read_text())}["similarity_rises"]
    assert both["verdict"] == "holds" and both["detail"] == "both readings must hold"
    sim, diag = both["parts"]
    assert sim["name"] == "similarity_rises_cka" and diag["name"] == "similarity_rises_diagonal"
    assert diag["verdict"] == "holds" and diag["ci_low"] > 0
    assert sim["verdict"] == "holds" and sim["ci_low"] > 0 and "12 sessions" in sim["detail"]
    first = json.loads((tmp_path / "sim_0.1_0" / "rep_similarity.json").read_text())["pairs"][0]["cka"]
    assert sim["seeds_b"][0] == pytest.approx(np.mean([first, json.loads(
        (tmp_path / "sim_0.1_1" / "rep_similarity.json").read_text())["pairs"][0]["cka"]]), rel=1e-5)
    (tmp_path / "bad.tsv").write_text("A0\t0\tmissing=0\n")
    with pytest.raises(SystemExit, match="expected 4 tab-separated columns"):
        make_claims(["--decodes", str(tmp_path / "bad.tsv"), "--out_json", "x", "--out_md", "y"])
    # the same seed of one model and condition listed twice would count that seed twice
    (tmp_path / "twice.tsv").write_text(rows[0] + "\n" + rows[0] + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="the same seed appears twice"):
        make_claims(["--decodes", str(tmp_path / "twice.tsv"), "--out_json", "x", "--out_md", "y"])
