"""CER scoring: normalisation, hand-computed edit counts, missing/extra hyps, cpCER, CLIs."""

import json
import random

import pytest

from espnet_avsr.bin import relative_cer as relative_cer_cli
from espnet_avsr.bin import score_cer
from espnet_avsr.eval.cer import (
    align_counts,
    best_permutation,
    parse_utt_id,
    score_corpus,
    score_cpcer,
)
from espnet_avsr.eval.io import parse_meta
from espnet_avsr.common.textnorm import UNK_CHAR, normalize_text


def _levenshtein(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_normalize_text():
    assert normalize_text("今天，天气 很好！") == "今天天气很好"
    assert normalize_text("ＡＢＣ１２３。") == "abc123"  # full-width -> half-width, lower case
    assert normalize_text("<NOISE>我们<unk>走 <space> 吧") == f"我们{UNK_CHAR}走吧"
    assert normalize_text("「你好」……“嗯”") == "你好嗯"
    assert normalize_text("   ") == ""


@pytest.mark.parametrize(
    "ref,hyp,sub,ins,dele",
    [
        ("今天天气很好", "今天天气很好", 0, 0, 0),
        ("今天天气很好", "今天天器很好", 1, 0, 0),
        ("今天天气很好", "今天气很好", 0, 0, 1),
        ("今天气很好", "今天天气很好", 0, 1, 0),
        ("我们出去玩", "你们出去玩吧啊", 1, 2, 0),
        ("abcdef", "", 0, 0, 6),
        ("", "abc", 0, 3, 0),
        ("abcd", "xbcde", 1, 1, 0),
        ("打开电视机", "打电视", 0, 0, 2),
    ],
)
def test_align_counts_hand_computed(ref, hyp, sub, ins, dele):
    c = align_counts(list(ref), list(hyp))
    assert (c.sub, c.ins, c.dele) == (sub, ins, dele)
    assert c.ref_chars == len(ref)


def test_align_counts_matches_reference_levenshtein():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("甲乙丙") for _ in range(rng.randint(0, 12))]
        b = [rng.choice("甲乙丙") for _ in range(rng.randint(0, 12))]
        c = align_counts(a, b)
        assert c.errors == _levenshtein(a, b)
        assert c.ref_chars - c.dele + c.ins == len(b)  # counts are those of one valid path


def test_score_corpus_counts_missing_and_reports_extra():
    refs = {"u1": "今天天气很好", "u2": "我们出去玩", "u3": "好的"}
    hyps = {"u1": "今天天器很好", "u2": "我们 出去，玩吧", "u9": "多余"}
    s = score_corpus(refs, hyps)
    assert s.missing_hyp == ["u3"]
    assert s.extra_hyp == ["u9"]
    t = s.total
    assert (t.ref_chars, t.sub, t.ins, t.dele, t.num_utts) == (13, 1, 1, 2, 3)
    assert t.cer == pytest.approx(4 / 13)
    assert next(u for u in s.utts if u.utt_id == "u3").missing


def test_parse_utt_id():
    assert parse_utt_id("S016_R01_S016017_C02_I1_000156-000252") == ("016", "R01_S016017_C02_I1", 156, 252)
    with pytest.raises(ValueError, match="S<spk>"):
        parse_utt_id("not-an-id")


def test_cpcer_takes_minimum_over_speaker_permutations():
    sess = "R01_S001002_C01_I0"
    refs = {
        f"S001_{sess}_000000-000100": "今天天气",
        f"S001_{sess}_000200-000300": "很好",
        f"S002_{sess}_000100-000200": "我们出去玩",
    }
    # diarised hypothesis: speaker labels swapped, one substitution
    hyps = {
        f"S002_{sess}_000000-000100": "今天天气",
        f"S002_{sess}_000200-000300": "很好",
        f"S001_{sess}_000100-000200": "我们出去完",
    }
    total, sessions = score_cpcer(refs, hyps)
    assert total.errors == 1 and total.ref_chars == 11
    assert sessions[0].assignment == {"001": "002", "002": "001"}
    # identity mapping would cost far more: utterance CER with swapped ids is all errors
    assert score_corpus(refs, hyps).total.errors > 1
    # a third, spurious hypothesis speaker is matched to nobody and scored as insertions
    hyps[f"S003_{sess}_000400-000500"] = "啊"
    total, _ = score_cpcer(refs, hyps)
    assert (total.errors, total.ins) == (2, 1)


def test_best_permutation_against_brute_force():
    import itertools

    import numpy as np

    rng = np.random.default_rng(0)
    m = rng.integers(0, 20, size=(4, 4))
    brute = min(sum(m[i, p] for i, p in enumerate(perm)) for perm in itertools.permutations(range(4)))
    assert best_permutation(m)[0] == brute
    big = rng.integers(0, 20, size=(9, 9))  # Hungarian path
    cost, perm = best_permutation(big)
    assert sorted(perm) == list(range(9)) and cost == sum(big[i, p] for i, p in enumerate(perm))


def test_parse_meta():
    meta = parse_meta(["model=AV0", "missing_rate=0.25", "snr=clean", "kd=true,init=A0", "n=3"])
    assert meta == {"model": "AV0", "missing_rate": 0.25, "snr": "clean", "kd": True, "init": "A0", "n": 3}
    with pytest.raises(ValueError, match="key=value"):
        parse_meta(["oops"])


def _write(path, lines):
    path.write_text("".join(f"{k} {v}\n" for k, v in lines), encoding="utf-8")


def test_score_cer_cli_writes_all_files(tmp_path):
    sess = "R01_S001002_C01_I0"
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    _write(ref, [(f"S001_{sess}_000000-000100", "今天天气很好"), (f"S002_{sess}_000100-000200", "我们出去玩"), (f"S001_{sess}_000300-000400", "好的")])
    _write(hyp, [(f"S001_{sess}_000000-000100", "今天天器很好"), (f"S002_{sess}_000100-000200", "我们出去玩吧")])
    out = tmp_path / "score"
    score_cer.main(["--ref", str(ref), "--hyp", str(hyp), "--out", str(out), "--cpcer",
                    "--meta", "model=AV0", "test_set=eval_far", "missing_rate=0.25", "missing_pattern=random", "snr=clean"])
    rec = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert (rec["errors"], rec["ref_chars"], rec["sub"], rec["ins"], rec["del"], rec["num_utts"]) == (4, 13, 1, 1, 2, 3)
    assert rec["cer"] == pytest.approx(4 / 13)
    assert rec["num_missing_hyp"] == 1 and rec["num_extra_hyp"] == 0
    assert rec["meta"] == {"model": "AV0", "test_set": "eval_far", "missing_rate": 0.25, "missing_pattern": "random", "snr": "clean"}
    assert rec["cpcer"] == pytest.approx(4 / 13)
    txt = (out / "result.txt").read_text(encoding="utf-8")
    assert "30.77" in txt and "missing hypotheses (scored as deletions): 1" in txt
    utt = (out / "utt_cer.txt").read_text(encoding="utf-8")
    assert f"S001_{sess}_000300-000400 2 0 0 2 2 100.00 MISSING_HYP" in utt
    assert (out / "session_cpcer.txt").is_file()


def test_score_cer_cli_bad_input_names_file(tmp_path):
    ref = tmp_path / "ref"
    _write(ref, [("u1", "你好"), ("u1", "重复")])
    hyp = tmp_path / "hyp"
    _write(hyp, [("u1", "你好")])
    with pytest.raises(ValueError, match=str(ref)):
        score_cer.main(["--ref", str(ref), "--hyp", str(hyp), "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="not found"):
        score_cer.main(["--ref", str(tmp_path / "nope"), "--hyp", str(hyp), "--out", str(tmp_path / "o")])


def test_relative_cer_cli(tmp_path):
    asr, avsr, other = tmp_path / "asr", tmp_path / "avsr", tmp_path / "other"
    lines = [("u1", "今天天气很好"), ("u2", "我们出去玩")]
    _write(asr, lines)
    _write(avsr, lines)
    _write(other, [("u1", "今天天气真好"), ("u2", "我们出去玩")])
    rec = relative_cer_cli.main(["--ref_hyp", str(asr), "--hyp", str(avsr), "--out", str(tmp_path / "r0"),
                                 "--meta", "model=AVd0.3", "train_dropout=0.3", "missing_rate=1.0"])
    assert rec["relative_cer"] == 0.0
    saved = json.loads((tmp_path / "r0" / "relative_cer.json").read_text(encoding="utf-8"))
    assert saved["relative_cer"] == 0.0 and saved["meta"]["train_dropout"] == 0.3
    rec = relative_cer_cli.main(["--ref_hyp", str(asr), "--hyp", str(other), "--out", str(tmp_path / "r1")])
    assert rec["relative_cer"] == pytest.approx(1 / 11)
