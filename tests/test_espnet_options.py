"""ESPnet habits in the recipe: run.sh forwards avsr.sh options, asr.sh names, --skip_*, a
generated --help with every option and its default."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"


def _run(script, *args, timeout=120):
    return subprocess.run([f"./{script}", *args], cwd=RECIPE, capture_output=True, text=True, timeout=timeout)


def _declared(script):
    """name -> literal default of the options between '# <options>' and '# </options>'."""
    text = (RECIPE / script).read_text(encoding="utf-8")
    block = text.split("# <options>\n", 1)[1].split("# </options>", 1)[0]
    out = {}
    for line in block.splitlines():
        m = re.match(r"^([A-Za-z_]\w*)=(\"[^\"]*\"|\S*)", line)
        if m:
            out[m.group(1)] = m.group(2).strip('"')
    return out


def _shown(stdout):
    return dict(line.split("=", 1) for line in stdout.splitlines() if re.match(r"^\w+=", line))


def test_avsr_help_lists_every_option_with_its_default():
    r = _run("avsr.sh", "--help")
    assert r.returncode == 0, r.stderr
    declared = _declared("avsr.sh")
    assert len(declared) >= 60
    for name, default in declared.items():
        m = re.search(rf"^\s+--{name}( \| --\w+)* \"([^\"]*)\"", r.stdout, re.M)
        assert m, f"--{name} missing from avsr.sh --help"
        if "$" not in default:
            assert m.group(2) == default, name
    assert re.search(r"--decode_nj \| --inference_nj", r.stdout)  # the ESPnet name is listed
    assert "12 pack" in r.stdout


def test_espnet_names_and_skip_switches_resolve(tmp_path):
    r = _run("avsr.sh", "--expdir", str(tmp_path / "exp"), "--skip_stages", "3", "--inference_nj", "3", "--asr_args", "--max_epoch 2",
             "--inference_asr_model", "valid.loss.best.pth", "--inference_config", "conf/decode_avsr.yaml",
             "--skip_train", "true", "--skip_packing", "true", "--show_options", "true")
    assert r.returncode == 0, r.stderr
    v = _shown(r.stdout)
    assert v["decode_nj"] == "3" and v["train_args"] == "--max_epoch 2" and v["best_model"] == "valid.loss.best.pth"
    assert v["asr_decode_config"] == v["avsr_decode_config"] == "conf/decode_avsr.yaml"
    assert v["skip_stages"].split() == ["3", "7", "8", "9", "12"]
    assert not (tmp_path / "exp").exists()  # --show_options exits before anything is written
    r = _run("avsr.sh", "--asr_config", "conf/train_avsr.yaml", "--show_options", "true")
    assert _shown(r.stdout)["models"] == "train_avsr:conf/train_avsr.yaml:-"
    r = _run("avsr.sh", "--use_lm", "true", "--show_options", "true")
    assert r.returncode != 0 and "no language model" in r.stderr
    r = _run("avsr.sh", "--inference_config", "conf/nope.yaml", "--show_options", "true")
    assert r.returncode != 0 and "--inference_config conf/nope.yaml does not exist" in r.stderr


def test_skip_switch_keeps_a_stage_from_running(tmp_path):
    common = ["--stage", "11", "--stop_stage", "11", "--expdir", str(tmp_path / "exp"), "--rep_similarity_samples", "0"]
    r = _run("avsr.sh", *common, "--skip_eval", "true")
    assert r.returncode == 0, r.stderr
    assert "=== Stage" not in r.stdout and not (tmp_path / "exp" / "RESULTS.md").exists()


def test_run_sh_forwards_avsr_options_without_double_dash():
    r = _run("run.sh", "--inference_nj", "5", "--rep_similarity_samples", "0", "--show_options", "true")
    assert r.returncode == 0, r.stderr
    v = _shown(r.stdout)
    assert v["decode_nj"] == "5" and v["rep_similarity_samples"] == "0"
    assert v["nj"] == "2" and v["corpus_preset"] == "closed30"  # the demo preset still applies
    assert v["train_args"] == ""  # the demo trains for the configs' own epochs
    assert v["seed_jobs"] == "1"  # one seed, one training job at a time
    paper = _shown(_run("run.sh", "--preset", "paper", "--show_options", "true").stdout)
    assert paper["seeds"] == "0 1" and paper["seed_jobs"] == "2"  # the two seeds' chains side by side
    r = _run("run.sh", "--asr_args=--max_epoch 3", "--show_options", "true")  # --name=value; overrides the preset
    assert _shown(r.stdout)["train_args"] == "--max_epoch 3"
    r = _run("run.sh", "--", "--rep_similarity_samples", "7", "--show_options", "true")  # "--" still works
    assert _shown(r.stdout)["rep_similarity_samples"] == "7"
    r = _run("run.sh", "--no_such_option", "1", "--show_options", "true")
    assert r.returncode != 0 and "unknown option --no_such_option" in r.stderr


def test_run_sh_help_lists_its_options():
    r = _run("run.sh", "--help")
    assert r.returncode == 0
    for name, default in _declared("run.sh").items():
        assert re.search(rf"^\s+--{name} \"", r.stdout, re.M), name
    assert "./avsr.sh --help" in r.stdout
