"""Beam search against CTC greedy: same orderings, same claim verdicts? (issue 15, item 6)"""
from __future__ import annotations

import json

import numpy as np
import pytest

from espnet_avsr.bin.compare_decode_modes import main as compare
from espnet_avsr.eval.cer import score_corpus
from espnet_avsr.eval.io import write_score_dir
from espnet_avsr.eval.orderings import ordering_flips

from test_claims import _hyps, _refs

# wrong characters per utterance: A0 is audio-only (the same at every rate), AV0 degrades
BEAM = {("A0", "missing=0"): 2.0, ("A0", "missing=1"): 2.0, ("AV0", "missing=0"): 0.5, ("AV0", "missing=1"): 4.0}


def _decodes(tmp_path, name, wrong, refs, seed):
    """A decodes.tsv as stage 11 writes it: base, seed, condition, score dir (two seeds)."""
    rng = np.random.default_rng(seed)
    ref_path = tmp_path / "ref"
    ref_path.write_text("".join(f"{k} {v}\n" for k, v in refs.items()), encoding="utf-8")
    rows, texts = [], {}
    for (base, cond), w in wrong.items():
        for s in (0, 1):
            d = tmp_path / name / f"{base}_{s}_{cond}"
            d.mkdir(parents=True)
            if base == "A0" and (base, s) in texts:  # audio-only: one decode serves every rate
                hyp = texts[(base, s)]
            else:
                hyp = texts[(base, s)] = _hyps(refs, w, rng)
            (d / "text").write_text("".join(f"{k} {v}\n" for k, v in hyp.items()), encoding="utf-8")
            write_score_dir(d / "score", score_corpus(refs, hyp), {}, str(ref_path), str(d / "text"))
            rows.append(f"{base}\t{s}\t{cond}\t{d / 'score'}")
    tsv = tmp_path / f"{name}.tsv"
    tsv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(tsv)


def test_ordering_flips_counts_pairs_and_ties():
    a = {("A0", "m0"): 0.30, ("AV0", "m0"): 0.20, ("A0", "m1"): 0.30, ("AV0", "m1"): 0.40}
    n, flips = ordering_flips(a, dict(a))
    # within m0, within m1 (model pairs); within A0, within AV0 (condition pairs)
    assert n == 4 and flips == []
    b = {**a, ("AV0", "m0"): 0.30}  # AV0 ties A0 at m0: ordered under a, tied under b
    n, flips = ordering_flips(a, b)
    assert n == 4 and [(f.within, f.first, f.second) for f in flips] == [("condition m0", "A0", "AV0")]
    assert flips[0].diff_a == pytest.approx(10.0) and flips[0].diff_b == pytest.approx(0.0)
    c = {**a, ("AV0", "m1"): 0.10}  # AV0 now better without video: two orders change
    assert {f.within for f in ordering_flips(a, c)[1]} == {"condition m1", "model AV0"}


def test_cli_same_story_and_a_changed_one(tmp_path):
    refs = _refs()
    beam = _decodes(tmp_path, "beam", BEAM, refs, seed=1)
    # greedy: every model somewhat worse, the story unchanged
    greedy = _decodes(tmp_path, "greedy", {k: w + 0.5 for k, w in BEAM.items()}, refs, seed=2)
    out = compare(["--a", beam, "--b", greedy, "--num_boot", "300", "--out_json", str(tmp_path / "same.json"),
                   "--out_md", str(tmp_path / "same.md")])
    assert out["same_orderings"] and out["same_verdicts"] and out["pairs"] == 4
    saved = json.loads((tmp_path / "same.json").read_text())
    assert {(c["model"], c["condition"]) for c in saved["cells"]} == set(BEAM)
    assert all(c["cer_b"] > c["cer_a"] for c in saved["cells"])
    verdicts = {c["name"]: (c["verdict_a"], c["verdict_b"]) for c in saved["claims"]}
    assert verdicts["av0_beats_a0"] == ("holds", "holds") and verdicts["av0_bias"] == ("holds", "holds")
    assert "| AV0 | missing=0 |" in (tmp_path / "same.md").read_text()
    # a decode under which AV0 no longer beats A0 with complete video: an order and a verdict change
    worse = _decodes(tmp_path, "worse", {**BEAM, ("AV0", "missing=0"): 3.0}, refs, seed=3)
    out = compare(["--a", beam, "--b", worse, "--num_boot", "300", "--out_json", str(tmp_path / "w.json")])
    assert not out["same_orderings"] and not out["same_verdicts"]
    assert ("condition missing=0", "A0", "AV0") in {(f["within"], f["first"], f["second"]) for f in out["flips"]}
    changed = [c for c in out["claims"] if not c["same"]]
    assert [c["name"] for c in changed] == ["av0_beats_a0"] and changed[0]["verdict_b"] == "contradicted"


def test_cli_refuses_decodes_of_other_models(tmp_path):
    refs = _refs()
    beam = _decodes(tmp_path, "beam", {("A0", "missing=0"): 1.0}, refs, seed=1)
    other = _decodes(tmp_path, "other", {("AV9", "missing=0"): 1.0}, refs, seed=2)
    with pytest.raises(SystemExit, match="share no .model, condition."):
        compare(["--a", beam, "--b", other, "--out_json", str(tmp_path / "x.json")])
