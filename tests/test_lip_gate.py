"""The lip-calibration gate (espnet_avsr.bin.lip_gate): weak lips pooled, informative lips on
every seed, a clear verdict and clear errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from espnet_avsr.bin.lip_gate import main as lip_gate

SCRIPT = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1" / "local" / "lip_calibration.sh"
CHARS = "我们今天晚上一起看电视好吗你说什么东西"
UTTS = [f"S{s:03d}_R01_S{s:03d}{s + 1:03d}_C01_I0_{i:06d}-{i + 50:06d}" for s in range(1, 9) for i in (0, 100, 200)]


def _ref() -> dict:
    return {u: "".join(CHARS[(k + j) % len(CHARS)] for j in range(10)) for k, u in enumerate(UTTS)}


def _write(path: Path, refs: dict, wrong: int, keep=None) -> str:
    """Hypotheses with the first ``wrong`` characters of each reference substituted."""
    lines = []
    for u, text in refs.items():
        if keep is not None and u not in keep:
            continue
        lines.append(f"{u} {'错' * wrong}{text[wrong:]}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


@pytest.fixture()
def ref(tmp_path):
    refs = _ref()
    p = tmp_path / "text"
    p.write_text("".join(f"{u} {t}\n" for u, t in refs.items()), encoding="utf-8")
    return str(p), refs


def _run(tmp_path, ref, errs, margin=15):
    """errs: per seed (audio, lips, black) substituted characters out of 10."""
    path, refs = ref
    files = {k: [_write(tmp_path / f"{k}{s}", refs, e[i]) for s, e in enumerate(errs)]
             for i, k in enumerate(("audio", "lips", "black"))}
    out = tmp_path / "gate.json"
    result = lip_gate(["--ref", path, "--seeds", *[str(s) for s in range(len(errs))], "--audio", *files["audio"],
                       "--lips", *files["lips"], "--black", *files["black"], "--margin", str(margin),
                       "--num_boot", "500", "--out", str(out), "--log_level", "WARNING"])
    assert json.loads(out.read_text("utf-8"))["passes"] == result["passes"]
    return result


def test_weak_but_informative_lips_on_both_seeds_pass(tmp_path, ref, capsys):
    r = _run(tmp_path, ref, [(2, 4, 9), (3, 5, 9)])
    assert r["passes"] and r["rule1_v0_weak"] and r["rule2_lips_informative_every_seed"]
    assert [row["seeds"] for row in r["rows"]] == ["0", "1", "pooled"]
    pooled = r["rows"][-1]["v0_minus_a0"]
    assert pooled["cer_a"] == pytest.approx(25.0) and pooled["cer_b"] == pytest.approx(45.0)
    assert pooled["delta"] == pytest.approx(20.0) and pooled["ci_low"] == pytest.approx(20.0)
    assert r["rows"][0]["lips_minus_black"]["delta"] == pytest.approx(-50.0)
    out = capsys.readouterr().out
    assert "| pooled | 45.00 | 25.00 | +20.00 [+20.00, +20.00] | 90.00 |" in out and "gate: passes" in out


def test_a_seed_whose_lips_carry_nothing_fails_even_when_the_pooled_lips_help(tmp_path, ref, capsys):
    r = _run(tmp_path, ref, [(2, 4, 9), (2, 9, 9)])
    pooled = r["rows"][-1]["lips_minus_black"]
    assert pooled["ci_high"] < 0  # pooled, seed 0's lips hide seed 1's
    assert r["rule1_v0_weak"] and not r["rule2_lips_informative_every_seed"] and not r["passes"]
    assert r["failing_seeds_rule2"] == ["1"]
    assert "gate: fails: (2) the lips do not beat black frames on seed(s) 1" in capsys.readouterr().out


def test_lips_nearly_as_good_as_the_audio_fail_rule_1(tmp_path, ref, capsys):
    r = _run(tmp_path, ref, [(2, 3, 9), (2, 3, 9)])
    assert r["rows"][-1]["v0_minus_a0"]["delta"] == pytest.approx(10.0)
    assert not r["rule1_v0_weak"] and r["rule2_lips_informative_every_seed"] and not r["passes"]
    assert "(1) V0 is less than 15 points worse than A0" in capsys.readouterr().out
    assert _run(tmp_path, ref, [(2, 3, 9), (2, 3, 9)], margin=10)["passes"]  # the margin is inclusive


def test_without_a0_only_rule_2_is_judged(tmp_path, ref, capsys):
    """Before A0 is trained the gate can already fail (a seed whose lips carry nothing), but it
    cannot pass."""
    path, refs = ref
    lips = [_write(tmp_path / f"lips{s}", refs, e) for s, e in enumerate((4, 9))]
    black = [_write(tmp_path / f"black{s}", refs, 9) for s in range(2)]
    cmd = ["--ref", path, "--seeds", "0", "1", "--black", *black, "--num_boot", "500", "--log_level", "WARNING"]
    r = lip_gate(cmd + ["--lips", *lips])
    assert r["passes"] is False and r["rule1_v0_weak"] is None and r["failing_seeds_rule2"] == ["1"]
    assert all(row["v0_minus_a0"] is None for row in r["rows"])
    out = capsys.readouterr().out
    assert "gate: fails: (1) not judged yet (no A0 decode); (2) the lips do not beat" in out
    assert "| 0 | 40.00 | - | - | 90.00 | -50.00" in out
    r = lip_gate(cmd + ["--lips", lips[0], lips[0]])
    assert r["passes"] is None and r["rule2_lips_informative_every_seed"]
    assert "gate: waits for A0: (1) not judged yet" in capsys.readouterr().out


def test_an_incomplete_decode_or_a_missing_seed_is_refused_by_name(tmp_path, ref):
    path, refs = ref
    full = _write(tmp_path / "full", refs, 1)
    cut = _write(tmp_path / "cut", refs, 1, keep=set(UTTS[:-2]))
    with pytest.raises(ValueError, match=r"cut: 2 reference utterances have no hypothesis"):
        lip_gate(["--ref", path, "--seeds", "0", "--audio", full, "--lips", cut, "--black", full])
    with pytest.raises(ValueError, match="--black has 1 files for 2 seeds"):
        lip_gate(["--ref", path, "--seeds", "0", "1", "--audio", full, full, "--lips", full, full, "--black", full])


@pytest.mark.parametrize("args, message", [
    ([], "--tag takes letters and digits"),
    (["--tag", "l/6"], "--tag takes letters and digits"),
    (["--tag", "l6", "--stop_after", "decode"], "--stop_after takes prep, v0 or a0"),
    (["--tag", "l6", "--frobnicate", "1"], "unknown option '--frobnicate'"),
    (["--tag", "l7", "--a0_from", "/nonexistent/exp_l6"], "--a0_from /nonexistent/exp_l6: no /nonexistent/exp_l6/A0"),
])
def test_the_calibration_script_refuses_bad_options_before_it_runs_anything(args, message):
    r = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_the_calibration_script_prints_its_usage_from_any_directory(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0 and "--a0_from EXP" in r.stdout and "set -euo" not in r.stdout, r.stderr
