"""AVSRTask outside the MISP recipe: a plain data dir (wav.scp, text, roi.scp; no MISP ids),
the README's "Use the task in your own recipe" commands: token list, collect stats, train,
decode, score, pack and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

FS = 16000
SENTS = {"spkA-0001": "abc", "spkA-0002": "cab", "spkB-0001": "bca", "spkB-0002": "acb"}

CONFIG = dict(
    frontend="default",
    frontend_conf=dict(fs=FS, n_fft=512, win_length=400, hop_length=160, n_mels=40),
    normalize="global_mvn",
    video_frontend="resnet18",
    video_frontend_conf=dict(width=2),
    encoder="av_conformer",
    encoder_conf=dict(output_size=32, attention_heads=2, linear_units=64, num_fusion_blocks=1, num_shared_blocks=1,
                      cnn_module_kernel=7),
    decoder="transformer",
    decoder_conf=dict(attention_heads=2, linear_units=64, num_blocks=1),
    model="espnet",
    model_conf=dict(ctc_weight=0.3),
    optim="adam",
    optim_conf=dict(lr=0.005),
    batch_type="folded",
    batch_size=2,
    max_epoch=2,
    num_workers=0,
    num_att_plot=0,
    use_tensorboard=False,
    use_matplotlib=False,
    best_model_criterion=[["valid", "acc", "max"]],
    keep_nbest_models=1,
)


def _data_dir(root: Path) -> Path:
    """A corpus that is not MISP: speaker-dash ids, letters, 25 fps lip crops as .npy."""
    rng = np.random.default_rng(0)
    d = root / "data" / "train"
    d.mkdir(parents=True)
    wav, roi, text, utt2spk = [], [], [], []
    for utt, sent in SENTS.items():
        t = np.arange(int(0.2 * FS)) / FS
        x = np.concatenate([np.sin(2 * np.pi * (200 + 100 * "abc".index(c)) * t) for c in sent]) * 0.3
        x = (x + 0.01 * rng.standard_normal(len(x)))[: len(x) // 640 * 640].astype(np.float32)
        sf.write(d / f"{utt}.wav", x, FS, subtype="PCM_16")
        np.save(d / f"{utt}.npy", rng.integers(0, 256, (len(x) // 640, 96, 96), dtype=np.uint8))
        wav.append(f"{utt} {d / (utt + '.wav')}")
        roi.append(f"{utt} {d / (utt + '.npy')}")
        text.append(f"{utt} {sent}")
        utt2spk.append(f"{utt} {utt.split('-')[0]}")
    for name, lines in (("wav.scp", wav), ("roi.scp", roi), ("text", text), ("utt2spk", utt2spk)):
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


@pytest.mark.slow
def test_train_decode_score_and_pack_on_a_non_misp_data_dir(tmp_path):
    from espnet2.bin.tokenize_text import main as tokenize_main

    from espnet_avsr.bin import avsr_inference, avsr_pack, avsr_train, score_cer

    d = _data_dir(tmp_path)
    tokens = tmp_path / "tokens.txt"
    tokenize_main(["--token_type", "char", "-f", "2-", "--input", str(d / "text"), "--output", str(tokens),
                   "--write_vocabulary", "true", "--add_symbol", "<blank>:0", "--add_symbol", "<unk>:1",
                   "--add_symbol", "<sos/eos>:-1"])
    assert tokens.read_text(encoding="utf-8").split() == ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    data = []
    for split in ("train", "valid"):
        data += [f"--{split}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
                 f"--{split}_data_path_and_name_and_type", f"{d}/roi.scp,video,npy",
                 f"--{split}_data_path_and_name_and_type", f"{d}/text,text,text"]
    common = ["--config", str(config), "--token_type", "char", "--token_list", str(tokens), *data]
    stats = tmp_path / "exp" / "stats"
    avsr_train.main([*common, "--collect_stats", "true", "--normalize", "none", "--output_dir", str(stats),
                     "--train_shape_file", f"{d}/wav.scp", "--valid_shape_file", f"{d}/wav.scp"])
    for f in ("feats_stats.npz", "speech_shape", "text_shape", "video_shape"):
        assert (stats / "train" / f).is_file(), f
    exp = tmp_path / "exp" / "avsr"
    shapes = []
    for split in ("train", "valid"):
        for f in ("speech_shape", "text_shape", "video_shape"):
            shapes += [f"--{split}_shape_file", str(stats / split / f)]
    avsr_train.main([*common, *shapes, "--normalize_conf", f"stats_file={stats}/train/feats_stats.npz",
                     "--fold_length", "80000", "--fold_length", "150", "--fold_length", "125", "--output_dir", str(exp)])
    assert (exp / "2epoch.pth").is_file() and (exp / "valid.acc.best.pth").exists()

    decode = tmp_path / "decode"
    avsr_inference.main(["--asr_train_config", str(exp / "config.yaml"), "--asr_model_file", str(exp / "valid.acc.best.pth"),
                         "--data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
                         "--data_path_and_name_and_type", f"{d}/roi.scp,video,npy",
                         "--beam_size", "2", "--output_dir", str(decode)])
    hyp = decode / "1best_recog" / "text"
    hyps = dict((line.split(" ", 1) + [""])[:2] for line in hyp.read_text(encoding="utf-8").splitlines())
    assert sorted(hyps) == sorted(SENTS)
    rec = score_cer.main(["--ref", str(d / "text"), "--hyp", str(hyp), "--out", str(decode / "score_cer")])
    assert rec["ref_chars"] == 12 and rec["num_utts"] == 4 and rec["num_missing_hyp"] == 0
    assert 0.0 <= rec["cer"] and "Sum/Avg" in (decode / "score_cer" / "result.txt").read_text(encoding="utf-8")

    # the trained model packed and loaded back gives the decoded hypotheses
    archive = tmp_path / "avsr.zip"
    avsr_pack.main(["--asr_train_config", str(exp / "config.yaml"), "--asr_model_file", str(exp / "valid.acc.best.pth"),
                    "--outpath", str(archive)])
    s2t = avsr_inference.AVSpeech2Text.from_pretrained(archive, unpack_dir=tmp_path / "unpacked", beam_size=2, ctc_weight=0.3)
    utt = "spkA-0001"
    speech, _ = sf.read(d / f"{utt}.wav", dtype="float32")
    text = s2t(speech, np.load(d / f"{utt}.npy"))[0][0]
    assert text == hyps[utt].strip()
