"""Paired bootstrap of two decodes: the interval and probability answer the questions asked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from espnet_avsr.bin import compare_cer
from espnet_avsr.eval.cer import score_corpus
from espnet_avsr.eval.significance import compare_scores, paired_bootstrap


def test_identical_systems_have_a_zero_interval():
    r = paired_bootstrap([3, 0, 5], [3, 0, 5], [10, 4, 6], num_boot=500)
    assert r.cer_a == r.cer_b == pytest.approx(8 / 20)
    assert r.delta == r.ci_low == r.ci_high == 0.0 and r.p_b_better == 0.0


def test_b_better_on_every_utterance_is_certain_and_the_interval_excludes_zero():
    r = paired_bootstrap([5, 4, 6, 3], [2, 1, 3, 0], [10, 10, 10, 10], num_boot=2000)
    assert r.delta == pytest.approx(-0.3)
    assert r.ci_high < 0 and r.p_b_better == 1.0
    assert r.ci_low <= r.delta <= r.ci_high


def test_a_gap_carried_by_one_utterance_is_not_significant():
    """B wins 6 characters on one utterance out of 50: the interval straddles zero."""
    rng = np.random.default_rng(1)
    ea = rng.integers(0, 10, size=50)
    eb = ea.copy()
    eb[0] = max(0, eb[0] - 6)
    r = paired_bootstrap(ea, eb, np.full(50, 12), num_boot=4000, seed=3)
    assert r.delta < 0 and r.ci_low < 0 <= r.ci_high
    assert 0.3 < r.p_b_better < 1.0
    # the same seed gives the same interval
    assert paired_bootstrap(ea, eb, np.full(50, 12), num_boot=4000, seed=3) == r


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap([1, 2], [1], [3, 3])
    with pytest.raises(ValueError, match="reference characters"):
        paired_bootstrap([], [], [])
    a = score_corpus({"u1": "你好", "u2": "再见"}, {"u1": "你好", "u2": "再"})
    b = score_corpus({"u1": "你好"}, {"u1": "你"})
    with pytest.raises(ValueError, match="different utterances"):
        compare_scores(a, b)


def test_cli_scores_both_decodes_and_writes_json(tmp_path, capsys):
    (tmp_path / "text").write_text("u1 今天天气很好\nu2 我们去看电影\nu3 明天见\n", encoding="utf-8")
    (tmp_path / "a").write_text("u1 今天天气\nu2 我们去看\nu3 明天\n", encoding="utf-8")
    (tmp_path / "b").write_text("u1 今天天气很好\nu2 我们去看电影\nu3 明天见\n", encoding="utf-8")
    rec = compare_cer.main(["--ref", str(tmp_path / "text"), "--hyp_a", str(tmp_path / "a"), "--hyp_b",
                            str(tmp_path / "b"), "--name_a", "AV3", "--name_b", "AV5", "--num_boot", "300",
                            "--resample", "utterances", "--out", str(tmp_path / "cmp.json")])
    assert rec["cer_a"] == pytest.approx(5 / 15) and rec["cer_b"] == 0.0 and rec["p_b_better"] == 1.0
    assert json.loads((tmp_path / "cmp.json").read_text(encoding="utf-8"))["name_b"] == "AV5"
    assert "AV3 33.33 vs AV5 0.00" in capsys.readouterr().out
    with pytest.raises(ValueError, match="missing_text"):
        compare_cer.main(["--ref", str(tmp_path / "missing_text"), "--hyp_a", str(tmp_path / "a"),
                          "--hyp_b", str(tmp_path / "b")])


def test_cli_pools_conditions_by_utterance(tmp_path, capsys):
    """Two conditions, A and B one better each: pooled, CERs are the sums and equal."""
    (tmp_path / "text").write_text("u1 今天天气\nu2 我们去看\n", encoding="utf-8")
    for name, content in (("a1", "u1 今天天\nu2 我们去看\n"), ("a2", "u1 今天天气\nu2 我们去看\n"),
                          ("b1", "u1 今天天气\nu2 我们去看\n"), ("b2", "u1 今天天\nu2 我们去看\n")):
        (tmp_path / name).write_text(content, encoding="utf-8")
    t = lambda n: str(tmp_path / n)
    rec = compare_cer.main(["--ref", t("text"), "--hyp_a", t("a1"), t("a2"), "--hyp_b", t("b1"), t("b2"),
                            "--num_boot", "200", "--resample", "utterances"])
    assert rec["cer_a"] == rec["cer_b"] == pytest.approx(1 / 16) and rec["delta"] == 0.0
    assert rec["ci_low"] == rec["ci_high"] == 0.0  # paired by utterance: u1 has 1 error on each side
    with pytest.raises(ValueError, match="pair them one to one"):
        compare_cer.main(["--ref", t("text"), "--hyp_a", t("a1"), t("a2"), "--hyp_b", t("b1")])


def test_cli_resamples_sessions_by_default(tmp_path, capsys):
    """MISP ids, two sessions: B is better only in session R01. Resampling sessions, a draw of
    R02 alone gives a delta of 0, so the interval reaches 0; by utterances it does not."""
    ids = [f"S001_R01_S001002_C01_I0_{i:06d}-{i + 1:06d}" for i in range(4)]
    ids += [f"S003_R02_S003004_C01_I0_{i:06d}-{i + 1:06d}" for i in range(4)]
    ref = {u: "今天天气很好" for u in ids}
    a = {u: ("今天天气" if "R01" in u else "今天天气很好") for u in ids}
    (tmp_path / "text").write_text("".join(f"{u} {t}\n" for u, t in ref.items()), encoding="utf-8")
    (tmp_path / "a").write_text("".join(f"{u} {t}\n" for u, t in a.items()), encoding="utf-8")
    (tmp_path / "b").write_text("".join(f"{u} {t}\n" for u, t in ref.items()), encoding="utf-8")
    args = ["--ref", str(tmp_path / "text"), "--hyp_a", str(tmp_path / "a"), "--hyp_b", str(tmp_path / "b"),
            "--num_boot", "400"]
    sess = compare_cer.main(args)
    utt = compare_cer.main(args + ["--resample", "utterances"])
    assert sess["resample"] == "sessions" and sess["num_sessions"] == 2
    assert sess["delta"] == utt["delta"] == pytest.approx(-8 / 48)
    assert sess["ci_high"] == 0.0 and utt["ci_high"] < 0.0
    assert "2 sessions" in capsys.readouterr().out
    (tmp_path / "plain").write_text("u1 今天\n", encoding="utf-8")
    with pytest.raises(ValueError, match="--resample utterances"):
        compare_cer.main(["--ref", str(tmp_path / "plain"), "--hyp_a", str(tmp_path / "plain"),
                          "--hyp_b", str(tmp_path / "plain")])
