"""Reports from a fixture decode tree: paper-layout tables, noise table, dropout study, PNGs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from espnet_avsr.bin import make_report as make_report_cli
from espnet_avsr.common.experiment import (META_JSON, MODALITY, ConditionInfo, ModelRecord, SetInfo, clean_set_info,
                                           noisy_set_info, write_meta)
from espnet_avsr.eval.report import make_report

RATES = [0.0, 0.25, 0.5, 0.75, 1.0]
# the paper's Table 1 (MISP far field) and babble table; each model's meta.json facts
PAPER = {
    "AV0": (dict(train_dropout=0, init="A0"), [21.14, 23.77, 25.57, 25.87, 26.65]),
    "AV1": (dict(train_dropout="0.1-0.5", train_dropout_prob=1.0, init="A0"), [23.26, 23.68, 24.27, 24.95, 25.91]),
    "AV2": (dict(train_dropout="0.1-0.5", train_dropout_prob=0.5, init="A0"), [21.72, 22.56, 23.37, 24.46, 25.64]),
    "AV3": (dict(train_dropout="0.1-0.5", train_dropout_prob=0.5, init="AV0"), [21.53, 22.47, 23.65, 24.55, 25.90]),
    "AV5": (dict(train_dropout="0.1-0.5", train_dropout_prob=0.5, init="AV3", kd="mse", teacher="AV0"),
            [21.11, 21.77, 22.78, 24.02, 25.45]),
    "AV6": (dict(init="AV5", kind="adapter", adapter=True), [21.11, 21.77, 22.78, None, 24.94]),
}
DROPOUT = {0.1: [21.7, 22.6, 23.7, 25.0, 26.1], 0.3: [23.2, 23.1, 23.9, 24.9, 25.9],
           0.5: [23.2, 23.7, 24.2, 25.0, 25.9], 0.7: [25.2, 25.2, 25.2, 25.2, 25.2]}


def _model(exp, model, kind="avsr", **facts):
    """exp/<model>/meta.json as avsr.sh writes it (an AV model: no KD and no adapter unless said)."""
    if MODALITY[kind] == "av":
        facts = {"kd": False, "adapter": False, **facts}
    write_meta(exp / model / META_JSON, ModelRecord(model=model, kind=kind, modality=MODALITY[kind],
                                                   config=f"train_{model}", **facts))


def _facts(test_set="eval_far", rate=None, snr=None, pattern="random", fill="zeros", field=None):
    """A score's facts: the test set's (set.json) and the decode condition's (condition.json)."""
    info = clean_set_info(test_set) if field is None else SetInfo(test_set, field)
    if snr is not None:
        info = noisy_set_info(info, "babble", snr)
    cond = ConditionInfo() if rate is None else ConditionInfo(rate, pattern, fill, 0)
    return {**info.as_dict(), **cond.as_dict()}


def _result(root, rel, cer, model, **facts):
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    meta = {"model": model, **_facts(**facts)}
    (d / "result.json").write_text(json.dumps({"cer": cer / 100, "errors": 1, "ref_chars": 1, "meta": meta}), encoding="utf-8")


def _relative(root, rel, value, model, rate):
    rd = root / rel
    rd.mkdir(parents=True)
    meta = {"model": model, "ref_model": "A0", **_facts(rate=rate)}
    (rd / "relative_cer.json").write_text(json.dumps({"relative_cer": value / 100, "meta": meta}))


def _tree(exp):
    _model(exp, "A0", kind="asr")
    _result(exp, "A0/decode/eval_far", 25.13, "A0")
    _result(exp, "A0/decode/eval_near", 18.10, "A0", test_set="eval_near")
    for snr, cer in ((0, 33.52), (-2.5, 62.17), (-5, 75.76)):
        _result(exp, f"A0/decode/eval_far_babble{snr}", cer, "A0", snr=snr)
    for model, (facts, cers) in PAPER.items():
        _model(exp, model, **facts)
        for rate, cer in zip(RATES, cers):
            if cer is not None:
                _result(exp, f"{model}/decode/eval_far_miss{rate}", cer, model, rate=rate)
    _result(exp, "AV1/decode/eval_near_miss0.0", 17.71, "AV1", test_set="eval_near", rate=0.0)
    _result(exp, "AV1/decode/eval_far_babble-5", 63.80, "AV1", snr=-5, rate=0.0)
    _result(exp, "AV6/decode/eval_far_babble0", 26.67, "AV6", snr=0, rate=0.0)
    for d, cers in DROPOUT.items():
        model = f"AVd{d}"
        _model(exp, model, study="dropout", train_dropout=d, train_dropout_prob=1.0, init="A0")
        for rate, cer in zip(RATES, cers):
            _result(exp, f"{model}/decode/eval_far_miss{rate}", cer, model, rate=rate)
        for rate, rel in ((0.0, 11.35 - d), (1.0, 11.65 - d)):
            _relative(exp, f"{model}/relative_miss{rate}", rel, model, rate)
        sd = exp / model / "similarity"
        sd.mkdir()
        rng = np.random.default_rng(int(d * 10))
        sim = rng.uniform(0.4, 0.6, size=(20, 20)) + np.eye(20) * d
        np.save(sd / "cosine_output__output.npy", sim.astype(np.float32))
        (sd / "rep_similarity.json").write_text(json.dumps({
            "num_samples": 20, "meta": {"model": model, "test_set": "eval_far", "ref_model": "A0", "missing_rate": 0.0},
            "pairs": [{"asr_layer": "output", "avsr_layer": "output", "cka": 0.5 + d / 2, "cosine_file": "cosine_output__output.npy",
                       "diag_contrast": float(d)}]}))
    _relative(exp, "AV6/relative_miss1.0", 20.0, "AV6", 1.0)  # an adapter model: no video dropout of its own
    bad = exp / "broken" / "decode"
    bad.mkdir(parents=True)
    (bad / "result.json").write_text("{not json")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    exp = tmp_path_factory.mktemp("report") / "exp"
    _tree(exp)
    rep = make_report(exp, exp / "RESULTS.md", exp / "plots")
    return exp, rep


def test_paper_layout_table(report):
    exp, rep = report
    table = rep.tables["missing/eval_far/random/zeros"]
    assert table.header[:2] == ["model", "training"]
    assert table.header[-5:] == ["0", "0.25", "0.5", "0.75", "1.0"]
    names = [r[0] for r in table.rows]
    assert names[:7] == ["A0", "AV0", "AV1", "AV2", "AV3", "AV5", "AV6"]
    rows = {r[0]: r for r in table.rows}
    assert rows["A0"][-5:] == ["25.13"] * 5  # audio-only decoded once, repeated as in the paper
    assert rows["A0"][1] == "audio only"
    assert rows["AV0"][-5:] == ["21.14", "23.77", "25.57", "25.87", "26.65"]
    assert rows["AV3"][1] == "dropout 0.1-0.5, prob 0.5, init AV0"
    assert rows["AV5"][1] == "dropout 0.1-0.5, prob 0.5, init AV3, + MDA-KD (mse)"
    assert rows["AV6"][1] == "init AV5, + MS-Adapter"
    assert rows["AV6"][-5:] == ["21.11", "21.77", "22.78", "-", "24.94"]  # partial tree
    assert rows["AVd0.3"][1] == "dropout 0.3, prob 1.0, init A0"
    md = (exp / "RESULTS.md").read_text(encoding="utf-8")
    assert "| A0 | audio only | 25.13 | 25.13 | 25.13 | 25.13 | 25.13 |" in md
    assert "| model | training | 0 | 0.25 | 0.5 | 0.75 | 1.0 |" in md
    assert md.index("| A0 |") < md.index("| AV0 |") < md.index("| AV6 |")


def test_audio_only_decoded_at_every_rate_is_used_as_is(tmp_path):
    exp = tmp_path / "exp"
    _model(exp, "A0", kind="asr")
    _model(exp, "AV0", train_dropout=0)
    for rate, cer in zip(RATES, [25.0, 25.1, 25.2, 25.3, 25.4]):
        _result(exp, f"A0/d{rate}", cer, "A0", rate=rate)
    _result(exp, "AV0/d0", 21.0, "AV0", rate=0.0)
    rep = make_report(exp, exp / "RESULTS.md", None)
    rows = {r[0]: r for r in rep.tables["missing/eval_far/random/zeros"].rows}
    assert rows["A0"][-5:] == ["25.00", "25.10", "25.20", "25.30", "25.40"]
    assert rows["AV0"][-5:] == ["21.00", "-", "-", "-", "-"]
    assert not rep.plots


def test_seed_tables_give_the_mean_and_each_seed(tmp_path):
    """Models trained with --seeds (meta.json base/seed) get a first section: one row per model,
    the mean over its seeds and each seed's value; a seed not decoded yet shows '-'."""
    exp = tmp_path / "exp"
    _model(exp, "A0", kind="asr", seed=0, base="A0")
    _model(exp, "A0_s1", kind="asr", seed=1, base="A0")
    _model(exp, "AV0", train_dropout=0, init="A0+V0", seed=0, base="AV0")
    _model(exp, "AV0_s1", train_dropout=0, init="A0_s1+V0_s1", seed=1, base="AV0")
    _model(exp, "AV1", train_dropout=0.5, init="A0+V0", seed=0, base="AV1")
    _result(exp, "A0/d", 29.0, "A0")
    _result(exp, "A0_s1/d", 31.0, "A0_s1")
    _result(exp, "A0/b", 80.0, "A0", snr=0.0)
    _result(exp, "A0_s1/b", 90.0, "A0_s1", snr=0.0)
    for m, v0, v1 in (("AV0", 14.0, 50.0), ("AV0_s1", 16.0, 54.0), ("AV1", 20.0, 30.0)):
        _result(exp, f"{m}/d0", v0, m, rate=0.0)
        _result(exp, f"{m}/d1", v1, m, rate=1.0)
    _result(exp, "AV0/b", 40.0, "AV0", snr=0.0, rate=0.0)
    rep = make_report(exp, exp / "RESULTS.md", None)
    t = rep.tables["seeds/missing/eval_far/random/zeros"]
    assert t.header[:3] == ["model", "training", "seeds"] and t.header[-1] == "1.0"
    rows = {r[0]: r for r in t.rows}
    assert list(rows) == ["A0", "AV0", "AV1"]
    assert rows["A0"][2] == "2" and rows["A0"][3] == "30.00 (29.00 / 31.00)"
    assert rows["AV0"][3] == "15.00 (14.00 / 16.00)" and rows["AV0"][-1] == "52.00 (50.00 / 54.00)"
    assert rows["AV0"][1] == "no dropout, init A0+V0"
    assert rows["AV1"][2] == "1" and rows["AV1"][3] == "20.00"
    n = {r[0]: r for r in rep.tables["seeds/noise"].rows}
    assert n["A0"][-1] == "85.00 (80.00 / 90.00)" and n["AV0"][-1] == "40.00 (40.00 / -)"
    md = (exp / "RESULTS.md").read_text()
    assert md.index("## Over seeds") < md.index("## Missing video frames")
    # one seed per model: no such section
    one = tmp_path / "one"
    _model(one, "A0", kind="asr")
    _result(one, "A0/d", 29.0, "A0")
    assert not any(k.startswith("seeds/") for k in make_report(one, one / "RESULTS.md", None).tables)


def test_noise_table(report):
    _, rep = report
    t = rep.tables["noise"]
    assert t.header == ["model", "eval_near", "eval_far", "babble 0 dB", "babble -2.5 dB", "babble -5 dB"]
    rows = {r[0]: r for r in t.rows}
    assert rows["A0"][1:] == ["18.10", "25.13", "33.52", "62.17", "75.76"]
    assert rows["AV1"][1:] == ["17.71", "23.26", "-", "-", "63.80"]
    assert rows["AV6"][1:] == ["-", "21.11", "26.67", "-", "-"]
    assert t.rows[0][0] == "A0"


def test_dropout_study_tables_and_plots(report):
    exp, rep = report
    d = rep.tables["dropout/eval_far/random/zeros"]
    assert [r[0] for r in d.rows] == ["audio only", "0", "0.1", "0.3", "0.5", "0.7"]
    assert d.rows[0][1] == "A0" and d.rows[1][1] == "AV0"
    rel = rep.tables["relative_cer/eval_far"]
    assert rel.header[-2:] == ["test missing 0", "test missing 1.0"]
    assert {r[0]: r[-1] for r in rel.rows}["AVd0.7"] == "10.95"
    assert rel.rows[-1][:2] == ["AV6", "-"] and rel.rows[-1][-1] == "20.00"  # not filed under dropout 0
    assert len(rep.tables["similarity"].rows) == 4
    for name in ("cer_vs_missing_eval_far_random_zeros", "cer_vs_snr", "dropout_cer_vs_missing_eval_far_random_zeros",
                 "relative_cer_vs_dropout_eval_far", "similarity_vs_dropout"):
        path = rep.plots[name]
        assert path.is_file() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (exp / "RESULTS.md").read_text(encoding="utf-8")
    assert "](plots/similarity_vs_dropout.png)" in md
    assert "broken/decode/result.json: skipped" in md  # a bad file is reported, not lost


def test_relative_cer_bars_average_the_seeds_of_a_rate(tmp_path):
    """Two seeds of a study rate give one bar, their mean (the last seed used to replace the
    first); an AV model outside the study with the same dropout keeps its own bar."""
    exp = tmp_path / "exp"
    _model(exp, "A0", kind="asr")
    for m, seed in (("AVd0.1", 0), ("AVd0.1_s1", 1)):
        _model(exp, m, study="dropout", train_dropout=0.1, train_dropout_prob=1.0, init="A0", seed=seed, base="AVd0.1")
    _model(exp, "AV1", train_dropout=0.1, init="A0", seed=0, base="AV1")
    for m, v in (("AVd0.1", 48.6), ("AVd0.1_s1", 23.8), ("AV1", 30.0)):
        _relative(exp, f"{m}/relative_miss1.0", v, m, 1.0)
    rep = make_report(exp, exp / "RESULTS.md", exp / "plots")
    from espnet_avsr.eval.report import ReportBuilder
    bars, seeds = ReportBuilder(exp).relative_bars("eval_far")
    assert seeds == 2 and bars["test missing 1.0"]["0.1"] == pytest.approx(36.2)
    assert bars["test missing 1.0"]["AV1"] == pytest.approx(30.0)
    assert rep.plots["relative_cer_vs_dropout_eval_far"].is_file()


def test_relative_cer_of_dev_and_eval_stay_apart(tmp_path):
    """With dev and eval decoded, each set has its own relative-CER table and figure (they were
    one table where the last record read won, and one figure averaging dev and eval as seeds)."""
    exp = tmp_path / "exp"
    _model(exp, "A0", kind="asr")
    for m, seed in (("AVd0.1", 0), ("AVd0.1_s1", 1)):
        _model(exp, m, study="dropout", train_dropout=0.1, train_dropout_prob=1.0, init="A0", seed=seed, base="AVd0.1")
    for ts, (v0, v1) in (("dev_far", (10.0, 20.0)), ("eval_far", (40.0, 50.0))):
        for m, v in (("AVd0.1", v0), ("AVd0.1_s1", v1)):
            rd = exp / m / f"relative_{ts}"
            rd.mkdir(parents=True)
            meta = {"model": m, "ref_model": "A0", **_facts(test_set=ts, rate=1.0)}
            (rd / "relative_cer.json").write_text(json.dumps({"relative_cer": v / 100, "meta": meta}))
    rep = make_report(exp, exp / "RESULTS.md", exp / "plots")
    from espnet_avsr.eval.report import ReportBuilder
    b = ReportBuilder(exp)
    assert b.relative_test_sets() == ["dev_far", "eval_far"]
    for ts, mean in (("dev_far", 15.0), ("eval_far", 45.0)):
        bars, seeds = b.relative_bars(ts)
        assert seeds == 2 and bars["test missing 1.0"]["0.1"] == pytest.approx(mean)
        rows = {r[0]: r[-1] for r in rep.tables[f"relative_cer/{ts}"].rows}
        assert rows["AVd0.1"] == {"dev_far": "10.00", "eval_far": "40.00"}[ts]
        assert rep.plots[f"relative_cer_vs_dropout_{ts}"].is_file()
    assert "Relative CER (%) on dev_far" in (exp / "RESULTS.md").read_text(encoding="utf-8")


def test_dropout_figure_draws_the_mean_over_seeds(tmp_path):
    """With two seeds the dropout figure draws one line per study rate and one A0 line, each the
    mean over seeds (seed 1's curves were drawn against seed 0's A0 line); a rate a seed has not
    decoded is a gap, not one seed's value."""
    exp = tmp_path / "exp"
    for m, seed, cer in (("A0", 0, 26.0), ("A0_s1", 1, 32.0)):
        _model(exp, m, kind="asr", seed=seed, base="A0")
        _result(exp, f"{m}/d", cer, m)
    curves = {"AVd0.1": (18.0, 50.0), "AVd0.1_s1": (26.0, 30.0), "AVd0.3": (19.0, 28.0), "AVd0.3_s1": (29.0, None)}
    for m, (c0, c1) in curves.items():
        d = float(m[3:6])
        _model(exp, m, study="dropout", train_dropout=d, train_dropout_prob=1.0, init="A0",
               seed=int(m.endswith("_s1")), base=m.split("_")[0])
        _result(exp, f"{m}/d0", c0, m, rate=0.0)
        if c1 is not None:
            _result(exp, f"{m}/d1", c1, m, rate=1.0)
    from espnet_avsr.eval.report import ReportBuilder
    b = ReportBuilder(exp)
    rates, values = b.missing_values("eval_far", "random", "zeros")
    series, hlines, seeds = b.dropout_curves(rates, values)
    assert seeds == 2 and hlines == {"Baseline(A) A0": pytest.approx(29.0)}
    assert list(series) == ["0.1", "0.3"]
    assert rates[0] == 0.0 and rates[-1] == 1.0
    assert series["0.1"][1][0] == pytest.approx(22.0) and series["0.1"][1][-1] == pytest.approx(40.0)
    assert series["0.3"][1][0] == pytest.approx(24.0) and series["0.3"][1][-1] is None
    rep = make_report(exp, exp / "RESULTS.md", exp / "plots")
    assert rep.plots["dropout_cer_vs_missing_eval_far_random_zeros"].is_file()
    assert [r[1] for r in rep.tables["dropout/eval_far/random/zeros"].rows] == ["A0", "AVd0.1", "AVd0.1_s1", "AVd0.3", "AVd0.3_s1"]
    assert [r[0] for r in rep.tables["dropout/eval_far/random/zeros"].rows] == [
        "audio only", "0.1 (AVd0.1)", "0.1 (AVd0.1_s1)", "0.3 (AVd0.3)", "0.3 (AVd0.3_s1)"]


def test_rate_labels_name_a_model_only_where_its_rate_is_shared():
    from espnet_avsr.eval.report import rate_labels
    assert rate_labels([(0.1, "AVd0.1"), (0.3, "AVd0.3"), (0.1, "AVd0.1_s1"), (None, "AV6"), (0.5, "x")]) == [
        "0.1 (AVd0.1)", "0.3", "0.1 (AVd0.1_s1)", "AV6", "0.5"]
    assert rate_labels([]) == []


def test_similarity_panels_tell_the_seeds_of_a_rate_apart(tmp_path):
    """Two seeds of a study rate get two heatmap panels labelled with their models (both were
    labelled '0.1'); a rate with one model keeps the bare rate; a run without its matrix is left out."""
    exp = tmp_path / "exp"
    _model(exp, "A0", kind="asr")
    for m, d, seed in (("AVd0.1", 0.1, 0), ("AVd0.1_s1", 0.1, 1), ("AVd0.3", 0.3, 0), ("AVd0.5", 0.5, 0)):
        _model(exp, m, study="dropout", train_dropout=d, train_dropout_prob=1.0, init="A0", seed=seed, base=m.split("_")[0])
        sd = exp / m / "similarity"
        sd.mkdir()
        if m != "AVd0.5":
            np.save(sd / "cos.npy", np.full((20, 20), d + seed, dtype=np.float32))
        (sd / "rep_similarity.json").write_text(json.dumps({
            "num_samples": 20, "meta": {"model": m, "test_set": "eval_far", "ref_model": "A0", "missing_rate": 0.0},
            "pairs": [{"asr_layer": "output", "avsr_layer": "output", "cka": 0.5, "cosine_file": "cos.npy"}]}))
    from espnet_avsr.eval.report import ReportBuilder
    panels = ReportBuilder(exp).similarity_panels()
    assert [lab for lab, _ in panels] == ["0.1 (AVd0.1)", "0.1 (AVd0.1_s1)", "0.3"]
    assert panels[1][1].shape == (16, 16) and float(panels[1][1][0, 0]) == pytest.approx(1.1)
    rep = make_report(exp, exp / "RESULTS.md", exp / "plots")
    assert rep.plots["similarity_vs_dropout"].is_file()


def test_cli_reads_the_recipes_view_of_current_decodes(tmp_path):
    """Given a recipe's experiment folder, the CLI reports the decodes stage 11 linked into
    .report_view (an older decode setting's score is not read), and the links are not read a
    second time; --all_decodes scans every decode and notes the duplicate it drops."""
    import os
    exp = tmp_path / "exp"
    _model(exp, "A0", kind="asr")
    _model(exp, "AV0", train_dropout=0, init="A0")
    _result(exp, "A0/decode_asr/eval_far", 30.0, "A0")
    _result(exp, "AV0/decode_old/eval_far_miss0", 11.0, "AV0", rate=0.0)
    _result(exp, "AV0/decode_new/eval_far_miss0", 22.0, "AV0", rate=0.0)
    sd = exp / "AV0" / "rep_similarity_eval_far"
    sd.mkdir()
    (sd / "rep_similarity.json").write_text(json.dumps({
        "num_samples": 4, "meta": {"model": "AV0", "test_set": "eval_far", "ref_model": "A0", "missing_rate": 0.0},
        "pairs": [{"asr_layer": "output", "avsr_layer": "output", "cka": 0.8}]}))
    view = exp / ".report_view"
    for model, dirs in (("A0", ["decode_asr/eval_far"]), ("AV0", ["decode_new/eval_far_miss0", "rep_similarity_eval_far"])):
        (view / model).mkdir(parents=True)
        os.symlink(exp / model / "meta.json", view / model / "meta.json")
        for d in dirs:
            os.symlink(exp / model / d, view / model / Path(d).name)
    rep = make_report_cli.main(["--exp", str(exp), "--plots", "none", "--log_level", "ERROR"])
    rows = {r[0]: r for r in rep.tables["missing/eval_far/random/zeros"].rows}
    assert rows["AV0"][2] == "22.00" and not any(n.startswith("duplicate") for n in rep.notes)
    assert len(rep.tables["similarity"].rows) == 1
    assert "| AV0 |" in (exp / "RESULTS.md").read_text(encoding="utf-8")
    every = make_report_cli.main(["--exp", str(exp), "--plots", "none", "--all_decodes", "--log_level", "ERROR"])
    assert len(every.tables["similarity"].rows) == 1  # the view's link is not a second run
    dup = [n for n in every.notes if n.startswith("duplicate")]
    assert len(dup) == 1 and "decode_new" in dup[0] and "decode_old" in dup[0]


def test_cli_regenerates_and_handles_empty_tree(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    rep = make_report_cli.main(["--exp", str(exp), "--log_level", "ERROR"])
    assert rep.tables == {}
    assert "No result.json found yet." in (exp / "RESULTS.md").read_text(encoding="utf-8")
    _model(exp, "A0", kind="asr")
    _result(exp, "A0/d", 25.13, "A0")
    rep = make_report_cli.main(["--exp", str(exp), "--plots", "none", "--log_level", "ERROR"])
    assert rep.tables["missing/eval_far/random/zeros"].rows[0][0] == "A0"
    with pytest.raises(ValueError, match="not found"):
        make_report_cli.main(["--exp", str(tmp_path / "nope")])


def test_training_description_names_each_kind_of_model():
    from espnet_avsr.eval.report import training_description

    assert training_description({"modality": "video", "init": None}, False) == "video only (lip reader)"
    assert training_description({"modality": "audio"}, True) == "audio only"
    av0 = {"modality": "av", "train_dropout": 0, "init": "A0+V0", "kd": False, "adapter": False}  # as meta.json holds them
    assert training_description(av0, False) == "no dropout, init A0+V0"


def test_facts_come_from_files_not_names(tmp_path):
    """Audio-only comes from meta.json's modality, a set's field (table order) from set.json,
    an SNR from the score's meta: names that say otherwise change nothing."""
    exp = tmp_path / "exp"
    _model(exp, "AV9", kind="asr")  # an audio-only model with an AV-looking name
    _model(exp, "A7", train_dropout=0)  # an AV model named like an audio-only one
    _result(exp, "AV9/d", 30.0, "AV9", test_set="zz_set", field="near")
    _result(exp, "AV9/d_clean_snr5", 31.0, "AV9", test_set="aa_set", field="far")  # clean, whatever its dir says
    _result(exp, "A7/d0", 20.0, "A7", test_set="aa_set", field="far", rate=0.0)
    _result(exp, "A7/d1", 29.0, "A7", test_set="aa_set", field="far", rate=1.0)
    rep = make_report(exp, exp / "RESULTS.md", None)
    rows = {r[0]: r for r in rep.tables["missing/aa_set/random/zeros"].rows}
    assert rows["AV9"][1:3] == ["audio only", "31.00"] and rows["AV9"][-1] == "31.00"  # repeated: video-independent
    assert rows["A7"][1] == "no dropout" and rows["A7"][-1] == "29.00"
    assert list(rows) == ["AV9", "A7"]  # audio-only rows first
    assert list(rep.tables)[:2] == ["missing/zz_set/random/zeros", "missing/aa_set/random/zeros"]  # near before far
    assert rep.tables["noise"].header == ["model", "zz_set", "aa_set"]


def test_a_score_without_its_facts_is_skipped_and_listed(tmp_path):
    """A result.json of the old recipe (snr and field not recorded, the SNR only in the set's
    name) is not guessed from: it is skipped, and Notes say which file lacks what."""
    exp = tmp_path / "exp"
    _model(exp, "A0", kind="asr")
    _result(exp, "A0/d", 25.0, "A0")
    old = exp / "A0" / "decode_old" / "eval_far_babble_snr-5"
    old.mkdir(parents=True)
    (old / "result.json").write_text(json.dumps({"cer": 0.7, "meta": {
        "model": "A0", "test_set": "eval_far_babble_snr-5", "missing_rate": None, "modality": "audio"}}))
    rate_only = exp / "A0" / "decode_old" / "miss"
    rate_only.mkdir(parents=True)
    (rate_only / "result.json").write_text(json.dumps({"cer": 0.3, "meta": {"model": "A0", **_facts(rate=0.5), "missing_fill": None}}))
    rep = make_report(exp, exp / "RESULTS.md", None)
    assert "noise" not in rep.tables and list(rep.tables) == ["missing/eval_far/random/zeros"]
    md = (exp / "RESULTS.md").read_text(encoding="utf-8")
    assert f"{old / 'result.json'}: skipped (KeyError: 'its meta lacks field, noise, snr" in md
    assert f"{rate_only / 'result.json'}: skipped (KeyError: 'its meta lacks missing_fill" in md


def test_a_model_without_meta_json_stops_the_report_naming_it(tmp_path):
    exp = tmp_path / "exp"
    _model(exp, "A0", kind="asr")
    _result(exp, "A0/d", 25.0, "A0")
    _result(exp, "AV0/d", 21.0, "AV0", rate=0.0)
    with pytest.raises(ValueError, match=f"{exp / 'AV0' / 'meta.json'}: missing"):
        make_report(exp, exp / "RESULTS.md", None)
    # the CLI: one line naming the file, exit 1
    r = subprocess.run([sys.executable, "-m", "espnet_avsr.bin.make_report", "--exp", str(exp), "--plots", "none"],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert r.returncode == 1 and f"{exp / 'AV0' / 'meta.json'}: missing" in r.stderr


def test_a_figure_no_longer_drawn_is_removed_and_other_files_are_kept(tmp_path):
    """The report deletes the figures its earlier run wrote and this run does not (e.g. one
    renamed per test set), and nothing else in plots/."""
    exp, plots_dir = tmp_path / "exp", tmp_path / "exp" / "plots"
    _model(exp, "A0", kind="asr")
    for m, seed in (("AVd0.1", 0), ("AVd0.3", 0)):
        _model(exp, m, study="dropout", train_dropout=float(m[3:]), train_dropout_prob=1.0, init="A0", seed=seed, base=m)
        _relative(exp, f"{m}/relative_miss1.0", 20.0, m, 1.0)
    first = make_report(exp, exp / "RESULTS.md", plots_dir)
    drawn = first.plots["relative_cer_vs_dropout_eval_far"]
    mine = plots_dir / "my_notes.png"
    mine.write_bytes(b"x")
    stale = plots_dir / "relative_cer_vs_dropout.png"  # as an older report named it
    stale.write_bytes(b"x")
    (plots_dir / ".report_plots").write_text((plots_dir / ".report_plots").read_text() + stale.name + "\n")
    for m in ("AVd0.1", "AVd0.3"):  # the relative CER goes: its figure is not drawn any more
        shutil.rmtree(exp / m / "relative_miss1.0")
    _result(exp, "A0/d", 25.0, "A0")
    second = make_report(exp, exp / "RESULTS.md", plots_dir)
    assert "relative_cer_vs_dropout_eval_far" not in second.plots
    assert not drawn.exists() and not stale.exists() and mine.exists()
    assert (plots_dir / ".report_plots").read_text().split() == sorted(p.name for p in second.plots.values())
