"""End to end: the whole recipe on a tiny synthetic corpus, 1-epoch models, one missing rate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs2" / "misp_avsr" / "avsr1"
TEXT_TIER = "内容层"


def _tier_intervals(path: Path) -> int:
    """Labelled intervals of the text tier, counted independently of dataprep (praatio)."""
    from praatio import textgrid

    raw = path.read_bytes()
    enc = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    tmp = path.with_suffix(".utf8.tmp")
    try:
        tmp.write_text(raw.decode(enc), encoding="utf-8")
        tg = textgrid.openTextgrid(str(tmp), includeEmptyIntervals=False)
    finally:
        tmp.unlink(missing_ok=True)
    return sum(1 for e in tg.getTier(TEXT_TIER).entries if e.label.strip())


def _lines(path: Path) -> list:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_recipe_end_to_end(tmp_path):
    work = tmp_path
    cmd = [
        "./run.sh", "--hours", "0.01", "--nj", "2", "--frontend", "first_channel",
        # AV0 takes its video branch from the lip reader V0 (init A0+V0); AVd0.5 from A0 alone
        "--models", "A0:conf/train_asr.yaml:- V0:conf/train_vsr.yaml:- AV0:conf/train_avsr.yaml:A0+V0",
        "--test_missing_rates", "0.5", "--test_snrs", "0",
        "--",
        "--corpus_preset", "tiny", "--rep_similarity_samples", "0",
        "--corpus_dir", str(work / "corpus"), "--data_dir", str(work / "data"),
        "--dumpdir", str(work / "dump"), "--expdir", str(work / "exp"),
        "--train_args", "--max_epoch 1", "--decode_nj", "1",
        "--dropout_study_rates", "0.5",   # one dropout-study model, so the study figures are drawn
    ]
    r = subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=880)
    assert r.returncode == 0, f"recipe failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
    for n in range(0, 12):
        if n == 4:  # speed perturbation is off in this run
            continue
        assert f"=== Stage {n}:" in r.stdout, f"stage {n} did not run"

    # data dirs validate and hold every TextGrid interval that was not dropped
    for name in ("train_far", "dev_far", "eval_far"):
        d = work / "data" / name
        v = subprocess.run(
            [sys.executable, "-m", "espnet_avsr.bin.validate_data_dir", str(d)],
            cwd=ROOT, capture_output=True, text=True,
        )
        assert v.returncode == 0, v.stderr
        report = json.loads((d / "prep_report.json").read_text())
        set_ = name.split("_")[0]
        tgs = sorted((work / "corpus" / "transcription" / set_).glob("*.TextGrid"))
        assert tgs
        n_intervals = sum(_tier_intervals(p) for p in tgs)
        assert n_intervals == report["num_intervals"]
        n_utts = len(_lines(d / "text"))
        assert n_utts == n_intervals - report["num_dropped"] > 0
        dumped = len(_lines(work / "dump" / "raw" / name / "wav.scp"))
        assert 0 < dumped <= n_utts

    # every decode was scored, and the report has a row per model
    def decoded(model: str, cond: str) -> Path:  # exp/<model>/<inference tag>/<condition>: one tag per model
        found = sorted((work / "exp" / model).glob(f"decode_*/{cond}/score_cer/result.json"))
        assert len(found) == 1, (model, cond, found)
        return found[0]

    res_a0 = decoded("A0", "eval_far")
    res_av0 = decoded("AV0", "eval_far_miss0.5_random")
    res_noise = decoded("AV0", "eval_far_babble0_miss0_random")
    assert res_av0.parents[2].name.startswith("decode_avsr_valid.") and res_a0.parents[2].name.startswith("decode_asr_valid.")
    for res in (res_a0, res_av0, res_noise):
        rec = json.loads(res.read_text())
        assert 0.0 <= rec["cer"] and rec["num_utts"] > 0
    # a score records its own facts (model name, test set, condition); the model's are in exp/<name>/meta.json
    model_meta = lambda m: json.loads((work / "exp" / m / "meta.json").read_text())
    meta = json.loads(res_av0.read_text())["meta"]
    assert meta == {"model": "AV0", "test_set": "eval_far", "field": "far", "noise": "none", "snr": None,
                    "missing_rate": 0.5, "missing_pattern": "random", "missing_fill": "zeros", "missing_seed": 0}
    assert (model_meta("AV0")["init"], model_meta("AV0")["train_dropout"], model_meta("AV0")["kind"]) == ("A0+V0", 0, "avsr")
    assert json.loads(res_a0.read_text())["meta"]["missing_rate"] is None  # audio only: no video fed
    assert "V0" in (work / "exp" / "AV0" / "init.pth.report.txt").read_text()
    # the lip reader decodes complete video of the clean test set only
    v0_decodes = sorted(p.parent.name for p in (work / "exp" / "V0").glob("decode_*/*/score_cer"))
    assert v0_decodes == ["eval_far_miss0_random"], v0_decodes
    v0_meta = json.loads(decoded("V0", v0_decodes[0]).read_text())["meta"]
    assert (model_meta("V0")["modality"], v0_meta["missing_rate"]) == ("video", 0)
    noise = json.loads(res_noise.read_text())["meta"]
    assert (noise["test_set"], noise["noise"], noise["snr"]) == ("eval_far", "babble", 0)  # from the noisy set's set.json
    # ESPnet's INFO progress reaches every training log (a plugin logging at import time once
    # left the AV logs without a single line of progress)
    for model in ("A0", "V0", "AV0", "AVd0.5"):
        assert "1epoch results" in (work / "exp" / model / "train.log").read_text(encoding="utf-8"), model
    study = model_meta("AVd0.5")
    assert (study["study"], study["train_dropout"], study["train_dropout_prob"], study["init"]) == ("dropout", 0.5, 1.0, "A0")
    for png in ("dropout_cer_vs_missing_eval_far_random_zeros.png", "relative_cer_vs_dropout_eval_far.png"):
        assert (work / "exp" / "plots" / png).stat().st_size > 1000, png
    results = (work / "exp" / "RESULTS.md").read_text(encoding="utf-8")
    assert re.search(r"^\|\s*A0\s*\|", results, re.M), results
    assert re.search(r"^\|\s*AV0\s*\|", results, re.M), results
    assert re.search(r"^\|\s*V0\s*\|\s*video only \(lip reader\)", results, re.M), results
    # the claims table (stage 11): from the current decodes; AV0 was decoded at 50 % missing only
    claims = {c["name"]: c for c in json.loads((work / "exp" / "claims.json").read_text(encoding="utf-8"))}
    assert claims["av0_beats_a0"]["verdict"] == "not run" and "AV0 (missing=0)" in claims["av0_beats_a0"]["detail"]
    assert claims["av0_bias"]["verdict"] == "not run"
    rows = (work / "exp" / "claims_inputs" / "decodes.tsv").read_text().splitlines()
    assert "A0\t0\tmissing=0.5\t" in "\n".join(rows) and any(r.startswith("AV0\t0\tmissing=0.5\t") for r in rows)
    assert "Verdict rule" in (work / "exp" / "CLAIMS.md").read_text(encoding="utf-8")

    # re-running the finished recipe is a no-op apart from the report
    r2 = subprocess.run(cmd[:1] + ["--stage", "1", "--stop_stage", "10"] + cmd[1:], cwd=RECIPE,
                        capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "[run]" not in r2.stdout and "[skip] train_AV0" in r2.stdout
