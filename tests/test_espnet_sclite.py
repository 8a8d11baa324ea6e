"""Scoring the ESPnet way: sclite's result.txt (Sum/Avg row), agreement with our CER, fallback."""

import json
import random
import re

import editdistance
import pytest

from espnet_avsr.bin import score_cer
from espnet_avsr.eval.cer import align_counts, score_corpus
from espnet_avsr.eval.sclite import find_sclite, parse_sum, score_with_sclite

needs_sclite = pytest.mark.skipif(find_sclite() is None, reason="sclite absent (tools/install.sh installs Debian sctk)")

SESS = "R01_S001002_C01_I0"
CHARS = "今天气很好我们出去玩吧的打开电视机早上中午晚饭了没有是不"


def _write(path, pairs):
    path.write_text("".join(f"{k} {v}\n" for k, v in pairs), encoding="utf-8")


def _fixture(tmp_path, n=40, seed=0):
    """Reference sentences and hypotheses with a few typical decoding errors each."""
    rng = random.Random(seed)
    refs, hyps = [], []
    for i in range(n):
        utt = f"S00{i % 3 + 1}_{SESS}_{i * 100:06d}-{i * 100 + 90:06d}"
        ref = [rng.choice(CHARS) for _ in range(rng.randint(3, 15))]
        hyp = list(ref)
        for _ in range(rng.randint(0, 3)):
            op = rng.choice("sid")
            k = rng.randrange(len(hyp) + 1)
            if op == "s" and k < len(hyp):
                hyp[k] = rng.choice(CHARS)
            elif op == "i":
                hyp.insert(k, rng.choice(CHARS))
            elif op == "d" and k < len(hyp):
                del hyp[k]
        refs.append((utt, "".join(ref)))
        if i != 7:  # one missing hypothesis: all deletions for both scorers
            hyps.append((utt, "".join(hyp)))
    hyps.append(("S009_extra_000000-000001", "多余"))  # no reference: not scored by either
    ref_p, hyp_p = tmp_path / "text", tmp_path / "hyp"
    _write(ref_p, refs)
    _write(hyp_p, hyps)
    return ref_p, hyp_p, dict(refs), dict(hyps)


def test_align_counts_distance_is_editdistance():
    rng = random.Random(1)
    for _ in range(200):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        assert align_counts(a, b).errors == editdistance.eval(a, b)


@needs_sclite
def test_sclite_agrees_with_builtin_cer_on_fixtures(tmp_path):
    ref_p, hyp_p, refs, hyps = _fixture(tmp_path)
    ours = score_corpus(refs, hyps)
    sc = score_with_sclite(ours, tmp_path / "sc")
    assert sc.counts.ref_chars == ours.total.ref_chars
    assert sc.counts.num_utts == ours.total.num_utts == len(refs)
    assert sc.counts.errors == ours.total.errors
    assert sc.sentence_errors == sum(1 for u in ours.utts if u.counts.errors)
    # per utterance too: sclite's "Scores: (#C #S #D #I)" lines against our counts
    per = {m.group(1): tuple(map(int, m.group(2).split()))
           for m in re.finditer(r"id: \(\S+?-(\S+)\)\nScores: \(#C #S #D #I\) ([\d ]+)\n", sc.report)}
    assert len(per) == len(refs)
    for u in ours.utts:
        c, s, d, i = per[u.utt_id.lower()]  # sclite lower-cases ids
        assert s + d + i == u.counts.errors, u.utt_id
        assert c + s + d == u.counts.ref_chars
    lines = (tmp_path / "sc" / "ref.trn").read_text(encoding="utf-8").splitlines()
    first = f"S001_{SESS}_000000-000090"
    assert lines[0] == " ".join(refs[first]) + f" (S001_{SESS}_000000_000090-{first})"  # (spk-utt), no utt2spk


@needs_sclite
def test_score_cer_writes_espnet_result_txt_with_sclite(tmp_path):
    ref_p, hyp_p, refs, hyps = _fixture(tmp_path)
    (tmp_path / "utt2spk").write_text("".join(f"{u} {u.split('_')[0]}\n" for u in sorted(refs)), encoding="utf-8")
    out = tmp_path / "score_cer"
    rec = score_cer.main(["--ref", str(ref_p), "--hyp", str(hyp_p), "--out", str(out), "--scorer", "sclite"])
    txt = (out / "result.txt").read_text(encoding="utf-8")
    avg = [line for line in txt.splitlines() if "Avg" in line]
    assert len(avg) == 1 and "Sum/Avg" in avg[0]  # what show_asr_result.sh greps
    # its columns as show_asr_result.sh turns them into a table row: Snt Wrd Corr Sub Del Ins Err S.Err
    cols = [c for c in re.sub(r" +", "|", avg[0].replace("|", " ").replace("Sum/Avg", "")).split("|") if c]
    assert int(cols[0]) == len(refs) and int(cols[1]) == rec["ref_chars"]
    assert float(cols[6]) == pytest.approx(100 * rec["cer"], abs=0.05)
    assert rec["scorer"] == "sclite" and rec["sclite"]["errors"] == rec["errors"]
    assert re.search(r"\|\s*s001\s*\|", txt)  # per-speaker rows from utt2spk next to the reference
    assert (out / "ref.trn").is_file() and (out / "hyp.trn").is_file()
    assert "missing hypotheses (scored as deletions): 1" in txt  # our summary follows sclite's


def test_builtin_fallback_writes_a_sum_avg_row(tmp_path):
    ref_p, hyp_p, refs, hyps = _fixture(tmp_path, n=10)
    out = tmp_path / "score_cer"
    rec = score_cer.main(["--ref", str(ref_p), "--hyp", str(hyp_p), "--out", str(out), "--scorer", "builtin"])
    assert rec["scorer"] == "builtin" and "sclite" not in rec
    avg = [line for line in (out / "result.txt").read_text(encoding="utf-8").splitlines() if "Avg" in line]
    assert len(avg) == 1
    cols = [c for c in re.sub(r" +", "|", avg[0].replace("|", " ").replace("Sum/Avg", "")).split("|") if c]
    assert int(cols[0]) == 10 and int(cols[1]) == rec["ref_chars"]
    assert float(cols[6]) == pytest.approx(100 * rec["cer"], abs=0.05)
    assert json.loads((out / "result.json").read_text(encoding="utf-8"))["scorer"] == "builtin"


def test_scorer_sclite_without_sclite_is_a_clear_error(tmp_path, monkeypatch):
    ref_p, hyp_p, _, _ = _fixture(tmp_path, n=3)
    monkeypatch.setattr(score_cer, "find_sclite", lambda: None)
    with pytest.raises(ValueError, match="sclite not found"):
        score_cer.main(["--ref", str(ref_p), "--hyp", str(hyp_p), "--out", str(tmp_path / "o"), "--scorer", "sclite"])


def test_parse_sum_names_the_report_without_counts():
    with pytest.raises(RuntimeError, match="my_report.*Sum"):
        parse_sum("no table here", source="my_report")
