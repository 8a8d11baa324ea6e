"""The recipe must not override use_amp from a training config (issue 16): ESPnet's command line
wins over the config, so a hard-coded --use_amp false made every *_gpu.yaml train in fp32."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"

# Stands in for the training process only: parses the recipe's real command line with the
# task's real ESPnet parser (the --config file as defaults, options on top, as ESPnet does) and
# writes <output_dir>/config.yaml from the parsed namespace, as ESPnet's trainer does.
_FAKE_TRAIN = r'''
import sys, yaml
from pathlib import Path
module, argv = sys.argv[1], sys.argv[2:]
if module == "espnet2.bin.asr_train":
    from espnet2.tasks.asr import ASRTask as Task
else:
    from espnet_avsr.tasks.avsr import AVSRTask as Task
args = Task.get_parser().parse_args(argv)
out = Path(args.output_dir)
out.mkdir(parents=True, exist_ok=True)
(out / "config.yaml").write_text(yaml.safe_dump({"use_amp": args.use_amp, "argv": argv}))
(out / "latest.pth").write_bytes(b"")
'''


@pytest.fixture()
def fake_python(tmp_path):
    """A `python` for --python: the real interpreter, except that training is only parsed."""
    probe = tmp_path / "fake_train.py"
    probe.write_text(_FAKE_TRAIN, encoding="utf-8")
    wrapper = tmp_path / "python"
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "${1:-}" = -m ] && { [ "$2" = espnet2.bin.asr_train ] || [ "$2" = espnet_avsr.bin.avsr_train ]; }; then\n'
        f'    m="$2"; shift 2; exec {sys.executable} {probe} "$m" "$@"\n'
        "fi\n"
        f'exec {sys.executable} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper


MODELS = {"A0": "A0:conf/tuning/train_asr_conformer_gpu.yaml:-",
          "AV0": "AV0:conf/tuning/train_avsr_conformer_gpu.yaml:-"}


def _train(tmp_path, fake_python, *args, names=("A0", "AV0")):
    """Stages 8-9 of the recipe for ``names``; returns {model: its config.yaml as parsed by ESPnet}."""
    cmd = ["./avsr.sh", "--stage", "8", "--stop_stage", "9", "--python", str(fake_python),
           "--expdir", str(tmp_path / "exp"), "--models", " ".join(MODELS[n] for n in names), *args]
    env = {**os.environ, "PYTHONPATH": str(RECIPE.parents[2])}
    r = subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr + "".join(
        p.read_text() for p in (tmp_path / "exp").glob("*/train.log"))
    return {m: yaml.safe_load((tmp_path / "exp" / m / "config.yaml").read_text()) for m in names}


def test_recipe_keeps_use_amp_of_the_config(tmp_path, fake_python):
    for name in ("train_asr_conformer_gpu.yaml", "train_avsr_conformer_gpu.yaml"):
        assert yaml.safe_load((RECIPE / "conf" / "tuning" / name).read_text())["use_amp"] is True
    got = _train(tmp_path, fake_python)
    for m, cfg in got.items():
        assert cfg["use_amp"] is True, f"{m}: the recipe's command line turned off the config's use_amp"
        assert "--use_amp" not in cfg["argv"]


def test_explicit_use_amp_overrides_the_config(tmp_path, fake_python):
    got = _train(tmp_path, fake_python, "--use_amp", "false", names=("A0",))
    assert got["A0"]["use_amp"] is False and got["A0"]["argv"].count("--use_amp") == 1


def test_use_amp_rejects_other_values(tmp_path):
    r = subprocess.run(["./avsr.sh", "--stage", "99", "--expdir", str(tmp_path / "exp"), "--use_amp", "yes"],
                       cwd=RECIPE, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--use_amp takes true or false" in r.stderr
