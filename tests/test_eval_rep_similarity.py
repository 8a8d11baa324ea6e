"""rep_similarity glue on real ESPnet models: a stock ESPnet Conformer ASR model (forward
hooks on encoder.encoders[i]) against itself and against a tiny espnet_avsr AV model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet_avsr.bin import rep_similarity

FS = 16000
TOKENS = ["<blank>", "<unk>", "你", "好", "看", "电", "视", "<sos/eos>"]
WIDTH = 32


def _save(model, args, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / "model.pth")
    (out_dir / "config.yaml").write_text(yaml.safe_dump(vars(args), allow_unicode=True), encoding="utf-8")
    return out_dir / "config.yaml", out_dir / "model.pth"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repsim")
    (tmp / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    wav, roi = [], []
    for i in range(5):
        utt = f"S001_R01_S001002_C01_I0_{i * 100:06d}-{i * 100 + 90:06d}"
        n = 640 * int(rng.integers(20, 30))
        x = 0.1 * np.sin(2 * np.pi * (150 + 30 * i) * np.arange(n) / FS) + 0.01 * rng.standard_normal(n)
        sf.write(tmp / f"{utt}.wav", x.astype(np.float32), FS, subtype="PCM_16")
        np.save(tmp / f"{utt}.npy", rng.integers(0, 256, size=(n // 640, 96, 96), dtype=np.uint8))
        wav.append(f"{utt} {tmp / (utt + '.wav')}\n")
        roi.append(f"{utt} {tmp / (utt + '.npy')}\n")
    (tmp / "wav.scp").write_text("".join(wav), encoding="utf-8")
    (tmp / "roi.scp").write_text("".join(roi), encoding="utf-8")

    from espnet2.tasks.asr import ASRTask

    torch.manual_seed(0)
    asr_args = ASRTask.get_parser().parse_args([
        "--token_list", str(tmp / "tokens.txt"), "--token_type", "char", "--normalize", "utterance_mvn",
        "--frontend_conf", "n_fft=512", "--frontend_conf", "hop_length=160", "--frontend_conf", "n_mels=40",
        "--encoder", "conformer", "--encoder_conf", f"output_size={WIDTH}", "--encoder_conf", "attention_heads=2",
        "--encoder_conf", "linear_units=64", "--encoder_conf", "num_blocks=2",
        "--decoder", "transformer", "--decoder_conf", "attention_heads=2", "--decoder_conf", "linear_units=64",
        "--decoder_conf", "num_blocks=1",
    ])
    asr = _save(ASRTask.build_model(asr_args), asr_args, tmp / "asr")
    return tmp, asr


def _av_conf(**encoder_conf) -> dict:
    """A tiny espnet_avsr AV model config (width WIDTH); ``encoder_conf`` adds encoder options."""
    return dict(
        token_type="char", normalize="utterance_mvn",
        frontend_conf=dict(fs=FS, n_fft=512, win_length=400, hop_length=160, n_mels=40),
        video_frontend="resnet18", video_frontend_conf=dict(width=4),
        encoder="av_conformer",
        encoder_conf=dict(output_size=WIDTH, attention_heads=2, linear_units=64, num_fusion_blocks=1, num_shared_blocks=1,
                          cnn_module_kernel=7, **encoder_conf),
        decoder="transformer", decoder_conf=dict(attention_heads=2, linear_units=64, num_blocks=1),
    )


def _base(tmp, asr, out, *extra):
    return ["--asr_train_config", str(asr[0]), "--asr_model_file", str(asr[1]),
            "--data_path_and_name_and_type", f"{tmp}/wav.scp,speech,sound",
            "--batch_size", "2", "--out", str(out), "--log_level", "WARNING", *extra]


def test_asr_model_against_itself_is_identical(setup):
    tmp, asr = setup
    out = tmp / "self"
    res = rep_similarity.main(_base(tmp, asr, out, "--avsr_train_config", str(asr[0]), "--avsr_model_file", str(asr[1]),
                                    "--avsr_task", "asr", "--layers", "output", "encoders.0", "encoders.1:encoders.0",
                                    "--meta", "model=A0_self"))
    assert res["num_samples"] == 5
    by = {(p["asr_layer"], p["avsr_layer"]): p for p in res["pairs"]}
    assert by[("output", "output")]["cka"] == pytest.approx(1.0, abs=1e-6)
    assert by[("encoders.0", "encoders.0")]["cka"] == pytest.approx(1.0, abs=1e-6)
    assert by[("encoders.1", "encoders.0")]["cka"] < 0.9999  # different blocks really differ
    sim = np.load(out / "cosine_output__output.npy")
    assert sim.shape == (5, 5) and np.allclose(np.diag(sim), 1.0, atol=1e-5)
    assert np.array_equal(np.load(out / "pooled_asr_encoders.0.npy"), np.load(out / "pooled_avsr_encoders.0.npy"))
    assert (out / "keys.txt").read_text().split() == sorted((out / "keys.txt").read_text().split())
    saved = json.loads((out / "rep_similarity.json").read_text())
    assert saved["meta"]["model"] == "A0_self" and len(saved["cka_matrix"]) == 3
    assert (out / "cosine_output__output.png").stat().st_size > 1000 and (out / "cka.png").is_file()


def test_a_sample_spans_the_sessions(setup):
    """--num_samples without a key file takes the utterances round-robin over sessions (the
    claims resample sessions), not the first ones of a sorted set."""
    tmp, asr = setup
    lines = (tmp / "wav.scp").read_text(encoding="utf-8").splitlines()
    sessions = ["R01", "R01", "R01", "R02", "R03"]
    scp = tmp / "three_sessions.scp"
    scp.write_text("".join(line.replace("_R01_", f"_{r}_", 1) + "\n" for line, r in zip(lines, sessions)), encoding="utf-8")
    keys = [line.split()[0].replace("_R01_", f"_{r}_", 1) for line, r in zip(lines, sessions)]
    out = tmp / "spread"
    args = _base(tmp, asr, out, "--avsr_train_config", str(asr[0]), "--avsr_model_file", str(asr[1]),
                 "--avsr_task", "asr", "--num_samples", "3")
    args[args.index(f"{tmp}/wav.scp,speech,sound")] = f"{scp},speech,sound"
    res = rep_similarity.main(args)
    assert res["num_samples"] == 3
    assert (out / "sample_keys.scp").read_text().split() == [keys[0], keys[3], keys[4]]
    assert (out / "keys.txt").read_text().split() == [keys[0], keys[3], keys[4]]


def test_asr_against_av_model_with_missing_video(setup):
    tmp, asr = setup
    from espnet_avsr.tasks.avsr import AVSRTask

    conf = _av_conf()
    (tmp / "av.yaml").write_text(yaml.safe_dump(conf), encoding="utf-8")
    torch.manual_seed(1)
    av_args = AVSRTask.get_parser().parse_args(["--config", str(tmp / "av.yaml"), "--token_list", str(tmp / "tokens.txt")])
    av = _save(AVSRTask.build_model(av_args), av_args, tmp / "av")
    out = tmp / "av_out"
    res = rep_similarity.main(_base(tmp, asr, out, "--avsr_train_config", str(av[0]), "--avsr_model_file", str(av[1]),
                                    "--data_path_and_name_and_type", f"{tmp}/roi.scp,video,npy",
                                    "--layers", "output", "encoders.0:fusion", "encoders.1:shared.0",
                                    "--missing_rate", "0.5", "--meta", "model=AVd0.5", "train_dropout=0.5"))
    assert res["avsr_layers"] == ["output", "fusion", "shared.0"]
    assert res["meta"]["missing_rate"] == 0.5
    for p in res["pairs"]:
        assert 0.0 <= p["cka"] <= 1.0 + 1e-9
        assert np.load(out / p["cosine_file"]).shape == (5, 5)
    with pytest.raises(ValueError, match="hidden outputs"):
        rep_similarity.main(_base(tmp, asr, tmp / "bad", "--avsr_train_config", str(av[0]), "--avsr_model_file", str(av[1]),
                                  "--data_path_and_name_and_type", f"{tmp}/roi.scp,video,npy", "--layers", "output:nope"))


def test_utterance_without_lip_rois_enters_as_video_missing(setup):
    """A kept no-ROI utterance (zero-length npy) is encoded as video entirely missing."""
    tmp, asr = setup
    from espnet_avsr.bin.avsr_inference import build_model
    from espnet_avsr.tasks.avsr import AVSRTask

    conf = _av_conf(mask_missing_in_cross_attention=True)
    (tmp / "av_mask.yaml").write_text(yaml.safe_dump(conf), encoding="utf-8")
    torch.manual_seed(2)
    args = AVSRTask.get_parser().parse_args(["--config", str(tmp / "av_mask.yaml"), "--token_list", str(tmp / "tokens.txt")])
    av = _save(AVSRTask.build_model(args), args, tmp / "av_mask")
    lines = (tmp / "roi.scp").read_text().splitlines()
    gone = lines[1].split()[0]
    np.save(tmp / "no_video.npy", np.zeros((0, 96, 96), dtype=np.uint8))
    lines[1] = f"{gone} {tmp / 'no_video.npy'}"
    (tmp / "roi_gone.scp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp / "gone_out"
    rep_similarity.main(_base(tmp, asr, out, "--avsr_train_config", str(av[0]), "--avsr_model_file", str(av[1]),
                              "--data_path_and_name_and_type", f"{tmp}/roi_gone.scp,video,npy", "--batch_size", "1"))
    keys = (out / "keys.txt").read_text().split()
    pooled = np.load(out / "pooled_avsr_output.npy")[keys.index(gone)]

    model, _ = build_model(av[0], av[1])
    model.eval()
    wav = dict(ln.split() for ln in (tmp / "wav.scp").read_text().splitlines())
    x, _ = sf.read(wav[gone], dtype="float32")
    with torch.no_grad():
        enc, _ = model.encode(torch.tensor(x)[None], torch.tensor([len(x)]))  # video=None: every frame missing
    np.testing.assert_allclose(pooled, enc[0].mean(0).numpy(), rtol=1e-4, atol=1e-5)
