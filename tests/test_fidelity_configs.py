"""conf/paper follows the paper's figure wherever issue 20's dev_far study found it no worse
(docs/DESIGN.md section 7), each such line marked FIGURE; conf/fidelity holds that study's
configs, one option each against the config it derives from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
import torch
import yaml

from espnet_avsr.models.adapters import is_adapter_key
from espnet_avsr.tasks.avsr import AVSRTask

CONF = Path(__file__).resolve().parents[1] / "egs2/misp_avsr/avsr1/conf"
MERGE = {"encoder_conf.merge": "figure"}
FILL = {"model_conf.video_dropout.fill": "black"}
# paper preset config -> the figure's readings it carries (the issue-20 decisions)
PAPER = {
    "train_avsr.yaml": MERGE,
    "train_avsr_drop_all.yaml": {**MERGE, **FILL},
    "train_avsr_drop_p05.yaml": {**MERGE, **FILL},
    "train_avsr_drop_p05_ft.yaml": {**MERGE, **FILL},
    "train_avsr_kd.yaml": {**MERGE, **FILL, "model_conf.kd_layers": ["merge_in"],
                           "model_conf.kd_teacher_audio": "student"},
    "train_adapter.yaml": {**MERGE, "model_conf.adapter_conf.targets": "qkv"},
}
# paper preset configs that carry no figure reading, only a choice made on dev_far
DEV_CHOICES = {"train_vsr.yaml": {"max_epoch": 30}}  # RESULTS.md 2026-12-02: V0 at 30 epochs


def flat(node: Any, prefix: str = "") -> Dict[str, Any]:
    """Dotted key -> leaf value (lists are leaves)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: Dict[str, Any] = {}
    for k, v in node.items():
        out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def load(rel: str) -> Dict[str, Any]:
    return yaml.safe_load((CONF / rel).read_text(encoding="utf-8"))


def test_paper_configs_carry_the_decided_figure_readings_marked():
    assert sorted(p.name for p in (CONF / "paper").glob("*.yaml")) == sorted({**PAPER, **DEV_CHOICES})
    for name, changes in PAPER.items():
        cfg = flat(load(f"paper/{name}"))
        assert {k: cfg.get(k, "<absent>") for k in changes} == changes, name
        marked = [line for line in (CONF / "paper" / name).read_text(encoding="utf-8").splitlines()
                  if "# FIGURE:" in line]
        assert len(marked) == len(changes), (name, marked)


def test_paper_adapter_is_the_demo_adapter_with_the_figure_readings_only():
    """AV6 of the paper preset: conf/train_adapter.yaml on the paper chain's merge, Q/K/V targets."""
    paper, base = flat(load("paper/train_adapter.yaml")), flat(load("train_adapter.yaml"))
    differing = {k for k in set(paper) | set(base) if paper.get(k, "<absent>") != base.get(k, "<absent>")}
    assert differing == set(PAPER["train_adapter.yaml"])


def test_paper_dev_choices_differ_from_their_base_config_in_those_options_only():
    """conf/paper/train_vsr.yaml is conf/train_vsr.yaml trained to the epoch count dev chose."""
    for name, changes in DEV_CHOICES.items():
        paper, base = flat(load(f"paper/{name}")), flat(load(name))
        differing = {k: paper.get(k, "<absent>") for k in set(paper) | set(base)
                     if paper.get(k, "<absent>") != base.get(k, "<absent>")}
        assert differing == changes, name
        assert "# FIGURE:" not in (CONF / "paper" / name).read_text(encoding="utf-8")


def build(rel: str, tokens: Path) -> torch.nn.Module:
    args = AVSRTask.get_parser().parse_args(
        ["--config", str(CONF / rel), "--token_list", str(tokens), "--normalize", "utterance_mvn"])
    torch.manual_seed(0)
    return AVSRTask.build_model(args)


def test_paper_configs_build_the_figure_models_and_the_adapter_fits_its_base(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>", "a", "b", "<sos/eos>"]) + "\n", encoding="utf-8")
    kd = build("paper/train_avsr_kd.yaml", tokens)  # the recipe passes the teacher files
    n = kd.encoder.num_fusion_blocks
    assert kd.encoder.merge_type == "figure" and kd.video_dropout.fill == "black"
    assert kd.kd_layers == [f"merge_in.{k}" for k in range(n + 1)] and kd.kd_teacher_audio == "student"
    ms = build("paper/train_adapter.yaml", tokens)
    assert ms.encoder.merge_type == "figure" and ms.audio_bridge is None
    assert {m.rsplit(".", 1)[-1] for m in ms.adapted_modules} == {"linear_q", "linear_k", "linear_v"}
    # AV6 starts from the figure AV5: every base tensor has its place, only adapters are new
    result = ms.load_state_dict(kd.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(is_adapter_key(k) for k in result.missing_keys)


# conf/fidelity: the decision study's configs (local/fidelity_study.sh), one option each against
# the demo-scale config it derives from. Every model pair of the study differs in its option alone.
FREEZE = {"model_conf.freeze_video_frontend": True}     # the KD students train like the demo's AV0
DROP = {"model_conf.video_dropout": "<absent>", "model_conf.video_dropout.prob": 0.5,
        "model_conf.video_dropout.rate": 0.5, "model_conf.video_dropout.pattern": "random"}
STUDY = {
    "merge_figure.yaml": ("train_avsr_v0.yaml", MERGE),
    "drop_zeros.yaml": ("train_avsr_v0.yaml", {**DROP, "model_conf.video_dropout.fill": "zeros"}),
    "drop_black.yaml": ("train_avsr_v0.yaml", {**DROP, **FILL}),
    "kd_clean.yaml": ("train_avsr_kd.yaml", FREEZE),
    "kd_student.yaml": ("train_avsr_kd.yaml", {**FREEZE, "model_conf.kd_teacher_audio": "student"}),
    "kd_fig_fusion.yaml": ("train_avsr_kd.yaml", {**FREEZE, **MERGE}),
    "kd_fig_merge_in.yaml": ("train_avsr_kd.yaml", {**FREEZE, **MERGE, "model_conf.kd_layers": ["merge_in"]}),
    "adapter_qkv.yaml": ("train_adapter.yaml", {"model_conf.adapter_conf.targets": "qkv"}),
    "adapter_fig.yaml": ("train_adapter.yaml", MERGE),
    "adapter_fig_qkv.yaml": ("train_adapter.yaml", {**MERGE, "model_conf.adapter_conf.targets": "qkv"}),
}


def test_every_study_config_is_listed():
    assert sorted(p.name for p in (CONF / "fidelity").glob("*.yaml")) == sorted(STUDY)


@pytest.mark.parametrize("name", sorted(STUDY))
def test_study_config_differs_from_its_source_in_its_option_only(name):
    src, changes = STUDY[name]
    cfg, base = flat(load(f"fidelity/{name}")), flat(load(src))
    differing = {k for k in set(cfg) | set(base) if cfg.get(k, "<absent>") != base.get(k, "<absent>")}
    assert differing == set(changes)
    assert {k: cfg.get(k, "<absent>") for k in changes} == changes
    assert "# FIDELITY:" in (CONF / "fidelity" / name).read_text(encoding="utf-8")


def test_study_pairs_differ_in_one_option():
    """The pairs the study compares: all keys equal but the option under test."""
    pairs = {("drop_zeros.yaml", "drop_black.yaml"): {"model_conf.video_dropout.fill"},
             ("kd_clean.yaml", "kd_student.yaml"): {"model_conf.kd_teacher_audio"},
             ("kd_fig_fusion.yaml", "kd_fig_merge_in.yaml"): {"model_conf.kd_layers"},
             ("adapter_fig.yaml", "adapter_fig_qkv.yaml"): {"model_conf.adapter_conf.targets"}}
    for (a, b), keys in pairs.items():
        fa, fb = flat(load(f"fidelity/{a}")), flat(load(f"fidelity/{b}"))
        assert {k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k)} == keys, (a, b)


def test_study_configs_build(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>", "a", "b", "<sos/eos>"]) + "\n", encoding="utf-8")
    black = build("fidelity/drop_black.yaml", tokens)
    assert black.video_dropout.fill == "black" and black.encoder.merge_type == "last"
    assert build("fidelity/merge_figure.yaml", tokens).encoder.merge_type == "figure"
    mi = build("fidelity/kd_fig_merge_in.yaml", tokens)
    assert mi.kd_layers == [f"merge_in.{k}" for k in range(mi.encoder.num_fusion_blocks + 1)]
    assert not any(p.requires_grad for p in mi.video_frontend.parameters())   # frozen like AV0
    qkv = build("fidelity/adapter_qkv.yaml", tokens)
    assert {m.rsplit(".", 1)[-1] for m in qkv.adapted_modules} == {"linear_q", "linear_k", "linear_v"}
