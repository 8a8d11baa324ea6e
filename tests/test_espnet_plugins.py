"""Model parts from outside the package: ``espnet_avsr.plugins`` entry points."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from espnet_avsr.models import registry
from espnet_avsr.models.av_conformer import AVConformerEncoder

ROOT = Path(__file__).resolve().parents[1]


def _eps(*specs):
    return [importlib.metadata.EntryPoint(name=n, value=v, group=registry.ENTRY_POINT_GROUP) for n, v in specs]


def test_entry_point_class_is_registered_under_its_kind(monkeypatch):
    eps = _eps(("encoder.ep_test_encoder", "espnet_avsr.models.av_conformer:AVConformerEncoder"))
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: eps if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setitem(registry.REGISTRY, "encoder", dict(registry.REGISTRY["encoder"]))
    registry.load_plugins()
    assert registry.REGISTRY["encoder"]["ep_test_encoder"] is AVConformerEncoder


@pytest.mark.parametrize(
    "spec,message",
    [
        (("encoder.broken", "no_such_module_xyz:Thing"), r"encoder.broken = no_such_module_xyz:Thing .*failed to load: ModuleNotFoundError"),
        (("nokind", "espnet_avsr.models.av_conformer:AVConformerEncoder"), r"'<kind>.<choice>'"),
        (("encoder.x", "espnet_avsr.models.registry:KINDS"), "expected a module, a class or a function, got tuple"),
    ],
)
def test_bad_entry_points_name_themselves(monkeypatch, spec, message):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: _eps(spec))
    monkeypatch.setitem(registry.REGISTRY, "encoder", dict(registry.REGISTRY["encoder"]))
    with pytest.raises(registry.PluginError, match=message):
        registry.load_plugins()


def test_installed_distribution_adds_an_encoder_usable_from_a_config(tmp_path):
    """A real (dist-info) distribution on sys.path; AVSRTask builds its encoder by name in a
    fresh interpreter, with no edit of this package."""
    site = tmp_path / "site"
    (site / "my_avsr_parts-0.1.dist-info").mkdir(parents=True)
    (site / "my_avsr_parts-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: my-avsr-parts\nVersion: 0.1\n", encoding="utf-8")
    (site / "my_avsr_parts-0.1.dist-info" / "entry_points.txt").write_text(
        "[espnet_avsr.plugins]\nencoder.wide_av_conformer = my_avsr_parts:WideAVConformer\n", encoding="utf-8")
    (site / "my_avsr_parts.py").write_text(textwrap.dedent("""
        from espnet_avsr.models.av_conformer import AVConformerEncoder

        class WideAVConformer(AVConformerEncoder):
            \"\"\"A third-party encoder: the AV Conformer under another name.\"\"\"
    """), encoding="utf-8")
    script = textwrap.dedent("""
        import argparse, json
        from espnet_avsr.tasks.avsr import AVSRTask
        conf = dict(
            frontend="default", frontend_conf=dict(n_fft=512, hop_length=160, n_mels=40), normalize="utterance_mvn",
            video_frontend="resnet18", video_frontend_conf=dict(width=2),
            encoder="wide_av_conformer", encoder_conf=dict(output_size=16, attention_heads=2, linear_units=32,
                num_fusion_blocks=1, num_shared_blocks=1, cnn_module_kernel=7),
            decoder="transformer", decoder_conf=dict(attention_heads=2, linear_units=32, num_blocks=1),
            model="espnet", model_conf=dict(ctc_weight=0.3), token_type="char", token_list=["<blank>", "<unk>", "a", "<sos/eos>"])
        model = AVSRTask.build_model(argparse.Namespace(**conf))
        print("RESULT" + json.dumps(type(model.encoder).__name__))
    """)
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{ROOT}", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.split("RESULT", 1)[1]) == "WideAVConformer"
