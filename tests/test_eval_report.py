"""Reports from a fixture decode tree: paper-layout tables, noise table, dropout study, PNGs."""

import json

import numpy as np
import pytest

from espnet_avsr.bin import make_report as make_report_cli
from espnet_avsr.eval.report import make_report

RATES = [0.0, 0.25, 0.5, 0.75, 1.0]
# the paper's Table 1 (MISP far field) and babble table
PAPER = {
    "AV0": ("no dropout", "A0", [21.14, 23.77, 25.57, 25.87, 26.65]),
    "AV1": ("dropout on every sample", "A0", [23.26, 23.68, 24.27, 24.95, 25.91]),
    "AV2": ("dropout prob 0.5", "A0", [21.72, 22.56, 23.37, 24.46, 25.64]),
    "AV3": ("dropout prob 0.5", "AV0", [21.53, 22.47, 23.65, 24.55, 25.90]),
    "AV5": ("+ MDA-KD", "AV3", [21.11, 21.77, 22.78, 24.02, 25.45]),
    "AV6": ("+ MS-Adapter", "AV5", [21.11, 21.77, 22.78, None, 24.94]),
}
DROPOUT = {0.1: [21.7, 22.6, 23.7, 25.0, 26.1], 0.3: [23.2, 23.1, 23.9, 24.9, 25.9],
           0.5: [23.2, 23.7, 24.2, 25.0, 25.9], 0.7: [25.2, 25.2, 25.2, 25.2, 25.2]}


def _result(root, rel, cer, **meta):
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "result.json").write_text(json.dumps({"cer": cer / 100, "errors": 1, "ref_chars": 1, "meta": meta}), encoding="utf-8")


def _tree(exp):
    _result(exp, "A0/decode/eval_far", 25.13, model="A0", test_set="eval_far", modality="audio", snr="clean")
    _result(exp, "A0/decode/eval_near", 18.10, model="A0", test_set="eval_near")
    for snr, cer in ((0, 33.52), (-2.5, 62.17), (-5, 75.76)):
        _result(exp, f"A0/decode/eval_far_babble_snr{snr}", cer, model="A0", test_set=f"eval_far_babble_snr{snr}", snr=snr, noise="babble")
    for model, (train, init, cers) in PAPER.items():
        for rate, cer in zip(RATES, cers):
            if cer is not None:
                _result(exp, f"{model}/decode/eval_far_miss{rate}", cer, model=model, test_set="eval_far", missing_rate=rate,
                        missing_pattern="random", fill="zeros", snr="clean", train=train, init=init)
    _result(exp, "AV1/decode/eval_near", 17.71, model="AV1", test_set="eval_near", missing_rate=0.0)
    _result(exp, "AV1/decode/eval_far_babble_snr-5", 63.80, model="AV1", test_set="eval_far_babble_snr-5")  # SNR from the name
    _result(exp, "AV6/decode/eval_far_babble_snr0", 26.67, model="AV6", test_set="eval_far_babble_snr0", snr=0, missing_rate=0)
    for d, cers in DROPOUT.items():
        model = f"AVd{d}"
        for rate, cer in zip(RATES, cers):
            _result(exp, f"{model}/decode/eval_far_miss{rate}", cer, model=model, test_set="eval_far", missing_rate=rate,
                    missing_pattern="random", train_dropout=d, init="A0")
        for rate, rel in ((0.0, 11.35 - d), (1.0, 11.65 - d)):
            rd = exp / model / f"relative_miss{rate}"
            rd.mkdir(parents=True)
            (rd / "relative_cer.json").write_text(json.dumps(
                {"relative_cer": rel / 100, "meta": {"model": model, "train_dropout": d, "missing_rate": rate, "test_set": "eval_far"}}))
        sd = exp / model / "similarity"
        sd.mkdir()
        rng = np.random.default_rng(int(d * 10))
        sim = rng.uniform(0.4, 0.6, size=(20, 20)) + np.eye(20) * d
        np.save(sd / "cosine_output__output.npy", sim.astype(np.float32))
        (sd / "rep_similarity.json").write_text(json.dumps({
            "num_samples": 20, "meta": {"model": model, "train_dropout": d},
            "pairs": [{"asr_layer": "output", "avsr_layer": "output", "cka": 0.5 + d / 2, "cosine_file": "cosine_output__output.npy",
                       "diag_contrast": float(d)}]}))
    rd = exp / "AV6" / "relative_miss1.0"  # an adapter model: no video dropout of its own
    rd.mkdir(parents=True)
    (rd / "relative_cer.json").write_text(json.dumps(
        {"relative_cer": 0.2, "meta": {"model": "AV6", "adapter": "true", "missing_rate": 1.0, "test_set": "eval_far"}}))
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
    assert rows["AV3"][1] == "dropout prob 0.5"
    assert rows["AV6"][-5:] == ["21.11", "21.77", "22.78", "-", "24.94"]  # partial tree
    assert rows["AVd0.3"][1] == "dropout 0.3, init A0"
    md = (exp / "RESULTS.md").read_text(encoding="utf-8")
    assert "| A0 | audio only | 25.13 | 25.13 | 25.13 | 25.13 | 25.13 |" in md
    assert "| model | training | 0 | 0.25 | 0.5 | 0.75 | 1.0 |" in md
    assert md.index("| A0 |") < md.index("| AV0 |") < md.index("| AV6 |")


def test_audio_only_decoded_at_every_rate_is_used_as_is(tmp_path):
    exp = tmp_path / "exp"
    for rate, cer in zip(RATES, [25.0, 25.1, 25.2, 25.3, 25.4]):
        _result(exp, f"A0/d{rate}", cer, model="A0", test_set="eval_far", missing_rate=rate)
    _result(exp, "AV0/d0", 21.0, model="AV0", test_set="eval_far", missing_rate=0.0)
    rep = make_report(exp, exp / "RESULTS.md", None)
    rows = {r[0]: r for r in rep.tables["missing/eval_far/random/zeros"].rows}
    assert rows["A0"][-5:] == ["25.00", "25.10", "25.20", "25.30", "25.40"]
    assert rows["AV0"][-5:] == ["21.00", "-", "-", "-", "-"]
    assert not rep.plots


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
    rel = rep.tables["relative_cer"]
    assert rel.header[-2:] == ["test missing 0", "test missing 1.0"]
    assert {r[0]: r[-1] for r in rel.rows}["AVd0.7"] == "10.95"
    assert rel.rows[-1][:2] == ["AV6", "-"] and rel.rows[-1][-1] == "20.00"  # not filed under dropout 0
    assert len(rep.tables["similarity"].rows) == 4
    for name in ("cer_vs_missing_eval_far_random_zeros", "cer_vs_snr", "dropout_cer_vs_missing_eval_far_random_zeros",
                 "relative_cer_vs_dropout", "similarity_vs_dropout"):
        path = rep.plots[name]
        assert path.is_file() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (exp / "RESULTS.md").read_text(encoding="utf-8")
    assert "](plots/similarity_vs_dropout.png)" in md
    assert "broken/decode/result.json: skipped" in md  # a bad file is reported, not lost


def test_cli_regenerates_and_handles_empty_tree(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    rep = make_report_cli.main(["--exp", str(exp), "--log_level", "ERROR"])
    assert rep.tables == {}
    assert "No result.json found yet." in (exp / "RESULTS.md").read_text(encoding="utf-8")
    _result(exp, "A0/d", 25.13, model="A0", test_set="eval_far")
    rep = make_report_cli.main(["--exp", str(exp), "--plots", "none", "--log_level", "ERROR"])
    assert rep.tables["missing/eval_far/random/zeros"].rows[0][0] == "A0"
    with pytest.raises(ValueError, match="not found"):
        make_report_cli.main(["--exp", str(tmp_path / "nope")])


def test_training_description_names_each_kind_of_model():
    from espnet_avsr.eval.report import training_description

    assert training_description({"modality": "video", "init": None}, False) == "video only (lip reader)"
    assert training_description({"modality": "audio"}, True) == "audio only"
    av0 = {"modality": "av", "train_dropout": 0, "init": "A0+V0", "kd": False, "adapter": False}  # as parse_meta reads them
    assert training_description(av0, False) == "no dropout, init A0+V0"
