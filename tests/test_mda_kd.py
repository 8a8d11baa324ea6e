"""MDA-KD (model: mda_kd): loss equivalence with the plain model, a frozen teacher outside
the state dict, KD distances and masking, plain-model checkpoints, and the recipe config."""

from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from espnet_avsr.models.espnet_model import ESPnetAVSRModel
from espnet_avsr.models.kd_losses import frame_distance, masked_kd_loss, reduce_frames
from espnet_avsr.models.mda_kd import MDAKDModel, TeacherError
from espnet_avsr.tasks.avsr import AVSRTask

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs2/misp_avsr/avsr1/conf"
TOKENS = ["<blank>", "<unk>", "a", "b", "c", "d", "<sos/eos>"]
DROP_HALF = dict(prob=1.0, rate=0.5, pattern="random", fill="zeros")

TINY = dict(
    frontend="default",
    frontend_conf=dict(fs=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40),
    normalize="utterance_mvn",
    video_frontend="resnet18",
    video_frontend_conf=dict(width=2),
    encoder="av_conformer",
    encoder_conf=dict(output_size=32, attention_heads=2, linear_units=64, num_fusion_blocks=1,
                      num_shared_blocks=2, cnn_module_kernel=7, dropout_rate=0.0, positional_dropout_rate=0.0),
    decoder="transformer",
    decoder_conf=dict(attention_heads=2, linear_units=64, num_blocks=1, dropout_rate=0.0,
                      positional_dropout_rate=0.0),
    model="espnet",
    model_conf=dict(ctc_weight=0.3, lsm_weight=0.1),
    token_type="char",
)


def write_model(d: Path, conf: dict, model=None, tokens: Path = None, seed: int = 0):
    """config.yaml (as the trainer writes it) + weights; returns (model, config, weights)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "conf_in.yaml").write_text(yaml.safe_dump(conf), encoding="utf-8")
    args = AVSRTask.get_parser().parse_args(["--config", str(d / "conf_in.yaml"), "--token_list", str(tokens)])
    torch.manual_seed(seed)
    built = AVSRTask.build_model(args)
    if model is None:
        model = built
    dump = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    (d / "config.yaml").write_text(yaml.safe_dump(dump, allow_unicode=True), encoding="utf-8")
    torch.save(model.state_dict(), d / "model.pth")
    return model, d / "config.yaml", d / "model.pth"


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("kd")
    tok = root / "tokens.txt"
    tok.write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    teacher, cfg, pth = write_model(root / "teacher", TINY, tokens=tok)
    return dict(root=root, tokens=tok, config=cfg, model_file=pth, state=teacher.state_dict())


def build(teacher_files, model="mda_kd", **model_conf) -> ESPnetAVSRModel:
    """A model from the teacher's config.yaml with another model / model_conf (as the recipe does)."""
    conf = yaml.safe_load(Path(teacher_files["config"]).read_text(encoding="utf-8"))
    conf["model"] = model
    conf["model_conf"] = {**conf["model_conf"], **model_conf}
    torch.manual_seed(1)
    return AVSRTask.build_model(argparse.Namespace(**conf))


def kd_model(teacher_files, **kw) -> MDAKDModel:
    conf = dict(teacher_model_file=str(teacher_files["model_file"]), teacher_config=str(teacher_files["config"]),
                init_student_from_teacher=True)
    conf.update(kw)
    return build(teacher_files, **conf)


def batch():
    rng = np.random.default_rng(0)
    return dict(
        speech=torch.tensor(rng.standard_normal((2, 8000)) * 0.1, dtype=torch.float32),
        speech_lengths=torch.tensor([8000, 6400]),  # 12 and 9 frames after subsampling
        video=torch.tensor(rng.standard_normal((2, 12, 88, 88)), dtype=torch.float32),
        video_lengths=torch.tensor([12, 10]),
        text=torch.tensor([[2, 3, 4, 5], [3, 4, -1, -1]]),
        text_lengths=torch.tensor([4, 2]),
    )


def step(model, seed=0):
    torch.manual_seed(seed)
    return model(**copy.deepcopy(batch()))


# ----------------------------------------------------------------------------- distances
@pytest.mark.parametrize("kind", ["mse", "cosine", "kl"])
def test_distance_nonnegative_zero_on_identity_and_masked(kind):
    torch.manual_seed(0)
    s, t = torch.randn(2, 6, 5), torch.randn(2, 6, 5)
    d = frame_distance(s, t, kind, temperature=2.0)
    assert d.shape == (2, 6) and (d >= 0).all() and (d > 1e-4).all()
    assert frame_distance(t, t, kind).abs().max() < 1e-5
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    s2 = s.clone()
    s2[1, 3:] = 100.0  # garbage in padding
    full = masked_kd_loss(s, t, mask, kind)
    assert torch.allclose(full, masked_kd_loss(s2, t, mask, kind))
    assert not torch.allclose(full, masked_kd_loss(s2, t, torch.ones_like(mask), kind))
    # utterance convention: per-utterance sums averaged over utterances
    assert torch.allclose(full, (d * 0 + frame_distance(s, t, kind))[mask].sum() / 2)
    assert torch.allclose(reduce_frames(frame_distance(s, t, kind), mask, True), frame_distance(s, t, kind)[mask].mean())


def test_distance_properties_and_errors():
    s, t = torch.randn(1, 4, 8), torch.randn(1, 4, 8)
    assert torch.allclose(frame_distance(3 * s, s, "cosine"), torch.zeros(1, 4), atol=1e-6)  # scale-free
    assert (frame_distance(3 * s, s, "mse") > 0).all()
    assert torch.allclose(frame_distance(s, t, "mse"), ((s - t) ** 2).mean(-1))
    # kl: KL(teacher || student) of softened posteriors, times T^2
    p_t, log_p_s = torch.softmax(t / 2, -1), torch.log_softmax(s / 2, -1)
    ref = (p_t * (p_t.log() - log_p_s)).sum(-1) * 4
    assert torch.allclose(frame_distance(s, t, "kl", temperature=2.0), ref, atol=1e-6)
    assert masked_kd_loss(s, t, torch.zeros(1, 4, dtype=torch.bool), "mse") == 0  # nothing selected
    with pytest.raises(ValueError, match="unknown KD distance"):
        frame_distance(s, t, "l1")
    with pytest.raises(ValueError, match="shapes differ"):
        frame_distance(s, t[:, :3], "mse")


# ----------------------------------------------------------------------------- model
def test_lambda0_equals_plain_model_with_the_same_dropout_mask(teacher_files):
    student = kd_model(teacher_files, kd_weight=0.0, video_dropout=DROP_HALF).train()
    plain = build(teacher_files, model="espnet", video_dropout=DROP_HALF).train()
    plain.load_state_dict(student.state_dict(), strict=True)
    masks = []
    for m in (student, plain):
        m.encoder.register_forward_pre_hook(lambda mod, a, kw: masks.append(kw["presence"].missing.clone()), with_kwargs=True)
    loss_s, stats_s, _ = step(student, seed=3)
    loss_p, stats_p, _ = step(plain, seed=3)
    assert len(masks) == 2 and masks[0].any() and torch.equal(masks[0], masks[1])
    torch.testing.assert_close(loss_s, loss_p)
    for k in ("loss_ctc", "loss_att", "acc"):
        torch.testing.assert_close(stats_s[k], stats_p[k])
    assert float(stats_s["loss_kd"]) > 0  # the teacher did run; lambda 0 only mutes it


def test_teacher_is_frozen_outside_the_state_dict_and_unchanged_by_training(teacher_files):
    student = kd_model(teacher_files, kd_weight=1.0, video_dropout=DROP_HALF).train()
    teacher = student.teacher()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert not {id(p) for p in teacher.parameters()} & {id(p) for p in student.parameters()}
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    s_before = {k: v.clone() for k, v in student.state_dict().items()}
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for i in range(2):
        opt.zero_grad()
        loss, stats, _ = step(student, seed=i)
        loss.backward()
        opt.step()
        assert torch.isfinite(stats["loss_kd"]) and torch.isfinite(loss)
    assert all(p.grad is None for p in teacher.parameters())
    assert not teacher.training  # student.train() does not reach it
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(v, s_before[k]) for k, v in student.state_dict().items())
    assert set(student.state_dict()) == set(teacher_files["state"])  # keys of the plain model


@pytest.mark.parametrize("distance,layers", [("mse", ["fusion"]), ("cosine", ["fusion", "shared.1"]), ("kl", ["ctc", "decoder"])])
def test_kd_is_zero_when_the_student_is_the_teacher_and_video_is_complete(teacher_files, distance, layers):
    student = kd_model(teacher_files, kd_distance=distance, kd_layers=layers, kd_temperature=2.0).eval()
    b = batch()
    loss, stats = student.distill(**b)
    assert float(stats["loss_kd"]) == pytest.approx(0.0, abs=1e-5)
    torch.testing.assert_close(loss, stats["loss_asr"])
    # once the student moves, KD is positive and differentiable
    with torch.no_grad():
        student.encoder.merge.norm.bias.add_(0.5)
        student.ctc.ctc_lo.bias.add_(torch.linspace(0, 1, len(TOKENS)))
        student.decoder.output_layer.bias.add_(torch.linspace(0, 1, len(TOKENS)))
    loss, stats = student.distill(**b)
    assert float(stats["loss_kd"]) > 1e-3
    loss.backward()
    assert student.encoder.embed.conv[0].weight.grad is not None


def test_teacher_hears_the_students_audio_dropout(teacher_files):
    """With audio dropout the teacher gets the student's draw: the two differ only in the video,
    so a student that is the teacher has no KD loss even on audio-dropped samples."""
    student = kd_model(teacher_files, audio_dropout=0.9).train()
    for m in student.modules():  # BatchNorm (ResNet, Conformer conv): the only other train/eval gap
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    feats = {}
    for name, m in (("student", student), ("teacher", student.teacher())):
        m.encoder.register_forward_pre_hook(lambda mod, a, kw, name=name: feats.__setitem__(name, a[0].clone()),
                                            with_kwargs=True)
    torch.manual_seed(0)
    loss, stats = student.distill(**batch())
    zeroed = (feats["student"] == 0).flatten(1).all(dim=1)
    assert bool(zeroed.any())  # at least one sample is recognised from the lips alone
    torch.testing.assert_close(feats["teacher"], feats["student"])
    assert float(stats["loss_kd"]) == pytest.approx(0.0, abs=1e-5)


def test_kd_only_dropped_ignores_undropped_samples(teacher_files):
    student = kd_model(teacher_files, kd_only_dropped=True)
    torch.manual_seed(0)
    s = {"fusion": torch.randn(2, 5, 32)}
    t = {"fusion": s["fusion"].clone()}
    t["fusion"][1] += 10.0  # undropped sample 1 is far from its teacher
    t["fusion"][0, :2] += 1.0
    lens, tl = torch.tensor([5, 4]), torch.tensor([2, 2])
    dropped = torch.zeros(2, 5, dtype=torch.bool)
    dropped[0, 1] = True
    only = student.kd_loss(s, t, lens, tl, dropped)
    assert float(only) == pytest.approx(2.0)  # sample 0: two frames with MSE 1.0
    student.kd_only_dropped = False
    assert float(student.kd_loss(s, t, lens, tl, dropped)) > 100
    # in training, a batch without dropped samples gets no KD at all
    student.kd_only_dropped = True
    student.train()
    _, stats, _ = step(student)
    assert float(stats["loss_kd"]) == 0.0 and float(stats["loss"]) > 0


def test_checkpoint_loads_into_plain_model_and_decodes_identically(teacher_files, tmp_path, caplog):
    from espnet_avsr.bin.avsr_inference import AVSpeech2Text

    student = kd_model(teacher_files, video_dropout=DROP_HALF).train()
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for i in range(2):
        opt.zero_grad()
        step(student, seed=i)[0].backward()
        opt.step()
    sd = student.state_dict()
    assert not [k for k in sd if "teacher" in k]
    assert set(sd) == set(teacher_files["state"])
    plain = build(teacher_files, model="espnet")
    plain.load_state_dict(sd, strict=True)

    torch.save(sd, tmp_path / "student.pth")
    kd_conf = yaml.safe_load(Path(teacher_files["config"]).read_text(encoding="utf-8"))
    kd_conf["model"] = "mda_kd"
    kd_conf["model_conf"] = {**kd_conf["model_conf"], "teacher_model_file": str(teacher_files["model_file"]),
                             "teacher_config": str(teacher_files["config"]), "kd_weight": 1.0}
    (tmp_path / "kd.yaml").write_text(yaml.safe_dump(kd_conf), encoding="utf-8")
    off_conf = copy.deepcopy(kd_conf)
    del off_conf["model_conf"]["teacher_model_file"], off_conf["model_conf"]["teacher_config"]
    (tmp_path / "off.yaml").write_text(yaml.safe_dump(off_conf), encoding="utf-8")

    b = batch()
    speech, video = b["speech"][0].numpy(), b["video"][0].numpy()
    results = []
    for cfg in (teacher_files["config"], tmp_path / "kd.yaml", tmp_path / "off.yaml"):
        with caplog.at_level(logging.WARNING):
            s2t = AVSpeech2Text(cfg, tmp_path / "student.pth", beam_size=2, maxlenratio=0.3)
        hyp = s2t(speech, video)[0]
        results.append((hyp[2], float(hyp[3].score)))
        if isinstance(s2t.model, MDAKDModel):
            assert s2t.model._teacher == []  # decoding never loads the teacher
    assert results[0] == results[1] == results[2]
    assert "KD is off" in caplog.text
    with torch.no_grad():
        e1 = student.eval().encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"])[0]
        e2 = plain.eval().encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"])[0]
    torch.testing.assert_close(e1, e2)


def test_recipe_config_builds_with_teacher_files_from_the_command_line(tmp_path):
    """conf/train_avsr_kd.yaml + the recipe's --model_conf teacher options, teacher from conf/train_avsr.yaml."""
    tok = tmp_path / "tokens.txt"
    tok.write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    targs = AVSRTask.get_parser().parse_args(
        ["--config", str(CONF / "train_avsr.yaml"), "--token_list", str(tok), "--normalize", "utterance_mvn"]
    )
    torch.manual_seed(0)
    teacher = AVSRTask.build_model(targs)
    torch.save(teacher.state_dict(), tmp_path / "valid.acc.ave.pth")
    dump = {k: v for k, v in vars(targs).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(dump, allow_unicode=True), encoding="utf-8")

    args = AVSRTask.get_parser().parse_args([
        "--config", str(CONF / "train_avsr_kd.yaml"), "--token_list", str(tok), "--normalize", "utterance_mvn",
        "--model_conf", f"teacher_model_file={tmp_path / 'valid.acc.ave.pth'}",
        "--model_conf", f"teacher_config={tmp_path / 'config.yaml'}",
    ])
    assert args.model == "mda_kd" and args.model_conf["video_dropout"]["prob"] == 0.5  # merged, not replaced
    args.model_conf["init_student_from_teacher"] = True
    student = AVSRTask.build_model(args)
    assert isinstance(student, MDAKDModel) and student.kd_enabled
    assert (student.kd_distance, student.kd_layers, student.kd_weight) == ("mse", ["fusion"], 1.0)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, student.state_dict()[k]), k
    student.train()
    torch.manual_seed(0)
    b = batch()
    loss, stats, _ = student(**b)
    loss.backward()
    assert torch.isfinite(loss) and float(stats["loss_kd"]) >= 0
    assert "loss_kd" in stats and "loss_att" in stats and "loss_ctc" in stats


def test_configuration_errors_name_the_problem(teacher_files, tmp_path, caplog):
    with pytest.raises(ValueError, match="kd_distance must be one of"):
        kd_model(teacher_files, kd_distance="l2")
    with pytest.raises(ValueError, match="need kd_distance kl"):
        kd_model(teacher_files, kd_layers=["ctc"])
    with pytest.raises(ValueError, match="kd_layers must be within"):
        kd_model(teacher_files, kd_distance="kl", kd_layers=["fusion"])
    with pytest.raises(ValueError, match="needs both"):
        build(teacher_files, teacher_model_file=str(teacher_files["model_file"]))
    # a missing teacher file is only a warning at build time (decoding) but fails training clearly
    with caplog.at_level(logging.WARNING):
        m = build(teacher_files, teacher_model_file=str(tmp_path / "gone.pth"), teacher_config=str(teacher_files["config"]))
    assert "gone.pth" in caplog.text
    with pytest.raises(TeacherError, match="gone.pth"):
        step(m.train())
    # a teacher whose weights do not fit its config
    torch.save({"encoder.bogus": torch.zeros(1)}, tmp_path / "bad.pth")
    m = build(teacher_files, teacher_model_file=str(tmp_path / "bad.pth"), teacher_config=str(teacher_files["config"]))
    with pytest.raises(TeacherError, match="bad.pth.*do not fit"):
        step(m.train())
    # an unknown hidden key lists the available ones
    m = kd_model(teacher_files, kd_layers=["shared.7"])
    with pytest.raises(ValueError, match="shared.7.*available.*fusion"):
        step(m.train())
