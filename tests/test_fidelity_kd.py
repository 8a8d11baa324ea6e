"""MDA-KD fidelity options: the teacher hears the student's SpecAugment draw
(kd_teacher_audio: student) and KD taps the figure merge's FFN inputs (kd_layers merge_in)."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pytest
import torch
import yaml

from test_mda_kd import TINY, TOKENS, batch, write_model

from espnet_avsr.models.mda_kd import MDAKDModel
from espnet_avsr.tasks.avsr import AVSRTask

SPECAUG = dict(apply_time_warp=True, time_warp_window=3, apply_freq_mask=True, freq_mask_width_range=[5, 10],
               num_freq_mask=2, apply_time_mask=True, time_mask_width_range=[2, 4], num_time_mask=2)
FIGURE = copy.deepcopy(TINY)
FIGURE["encoder_conf"].update(merge="figure", num_fusion_blocks=2)
FIGURE.update(specaug="specaug", specaug_conf=SPECAUG)


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("kd_fig")
    tok = root / "tokens.txt"
    tok.write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    teacher, cfg, pth = write_model(root / "teacher", FIGURE, tokens=tok)
    with torch.no_grad():  # a merge FFN that is not zero, so merge taps and fusion depend on the video
        teacher.encoder.merge.ffn[3].weight.normal_(std=0.1)
    torch.save(teacher.state_dict(), pth)
    return dict(config=cfg, model_file=pth)


def kd_model(teacher_files, **model_conf) -> MDAKDModel:
    conf = yaml.safe_load(Path(teacher_files["config"]).read_text(encoding="utf-8"))
    conf["model"] = "mda_kd"
    conf["model_conf"] = {**conf["model_conf"], "teacher_model_file": str(teacher_files["model_file"]),
                          "teacher_config": str(teacher_files["config"]), "init_student_from_teacher": True,
                          **model_conf}
    torch.manual_seed(1)
    return AVSRTask.build_model(argparse.Namespace(**conf))


def train_without_bn(model: MDAKDModel) -> MDAKDModel:
    """Training mode (SpecAugment on) with BatchNorm in eval: the only other train/eval gap."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def encoder_inputs(student: MDAKDModel, seed: int = 0):
    """(student's, teacher's) normalised audio features as their encoders receive them, + stats."""
    seen = {}
    hooks = [m.encoder.register_forward_pre_hook(lambda mod, a, kw, n=name: seen.__setitem__(n, a[0].clone()),
                                                 with_kwargs=True)
             for name, m in (("student", student), ("teacher", student.teacher()))]
    try:
        torch.manual_seed(seed)
        _, stats = student.distill(**batch())
    finally:
        for h in hooks:
            h.remove()
    return seen["student"], seen["teacher"], stats


def test_teacher_hears_the_students_specaugment_draw(teacher_files):
    student = train_without_bn(kd_model(teacher_files, kd_teacher_audio="student", kd_layers=["fusion", "shared.1"]))
    s, t, stats = encoder_inputs(student)
    torch.testing.assert_close(t, s, rtol=0, atol=0)
    # the draw really augmented: the clean features (eval mode, no SpecAugment) differ
    b = batch()
    with torch.no_grad():
        student.eval()
        clean, lens = student.audio_features(b["speech"], b["speech_lengths"])
        clean, _ = student.normalize(clean, lens)
    assert not torch.allclose(clean, s)
    # student = teacher, complete video, same audio: nothing left to distil
    assert float(stats["loss_kd"]) == pytest.approx(0.0, abs=1e-6)


def test_clean_teacher_audio_is_the_old_behaviour(teacher_files):
    student = train_without_bn(kd_model(teacher_files, kd_layers=["fusion"]))
    assert student.kd_teacher_audio == "clean"
    s, t, stats = encoder_inputs(student)
    assert not torch.allclose(s, t)  # the eval-mode teacher heard the un-augmented audio
    assert float(stats["loss_kd"]) > 1e-4


def test_kd_taps_the_figure_merge_inputs(teacher_files):
    student = kd_model(teacher_files, kd_layers=["merge_in"])
    assert student.kd_layers == ["merge_in.0", "merge_in.1", "merge_in.2"]
    assert kd_model(teacher_files, kd_layers=["merge_in.2", "shared.0"]).kd_layers == ["merge_in.2", "shared.0"]
    student.eval()
    _, stats = student.distill(**batch())
    assert float(stats["loss_kd"]) == pytest.approx(0.0, abs=1e-6)
    # video dropout: the student's front-end stream (merge_in.0, video only) moves away from the teacher's
    student = train_without_bn(kd_model(teacher_files, kd_layers=["merge_in.0"], kd_teacher_audio="student",
                                        video_dropout=dict(prob=1.0, rate=0.5, pattern="random", fill="zeros")))
    torch.manual_seed(0)
    loss, stats = student.distill(**batch())
    assert float(stats["loss_kd"]) > 1e-3
    loss.backward()
    assert student.video_frontend.stem[0].weight.grad is not None


def test_bad_fidelity_options_name_the_problem(teacher_files, tmp_path):
    with pytest.raises(ValueError, match="kd_teacher_audio must be one of"):
        kd_model(teacher_files, kd_teacher_audio="augmented")
    with pytest.raises(ValueError, match=r"merge_in.3.*inputs \['merge_in.0', 'merge_in.1', 'merge_in.2'\]"):
        kd_model(teacher_files, kd_layers=["merge_in.3"])
    tok = tmp_path / "tokens.txt"
    tok.write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    _, cfg, pth = write_model(tmp_path / "last", TINY, tokens=tok)
    with pytest.raises(ValueError, match="need encoder_conf.merge: figure"):
        kd_model(dict(config=cfg, model_file=pth), kd_layers=["merge_in"])
