"""AVSRTask end to end: config handling, training CLI (collect_stats + 1 epoch), decoding,
packing, and a tiny model that overfits a few synthetic utterances."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs2/misp_avsr/avsr1/conf"
FS = 16000
TOKENS = ["<blank>", "<unk>", "你", "好", "看", "电", "视", "<sos/eos>"]
SENTS = ["你好", "看电视", "电视好", "你看"]

TINY = dict(
    frontend="default",
    frontend_conf=dict(fs=FS, n_fft=512, win_length=400, hop_length=160, n_mels=40),
    normalize="utterance_mvn",
    video_frontend="resnet18",
    video_frontend_conf=dict(width=2),
    encoder="av_conformer",
    encoder_conf=dict(output_size=32, attention_heads=2, linear_units=64, num_fusion_blocks=1,
                      num_shared_blocks=1, cnn_module_kernel=7, dropout_rate=0.0,
                      positional_dropout_rate=0.0),
    decoder="transformer",
    decoder_conf=dict(attention_heads=2, linear_units=64, num_blocks=1, dropout_rate=0.0,
                      positional_dropout_rate=0.0),
    model="espnet",
    model_conf=dict(ctc_weight=0.3),
    token_type="char",
    optim="adam",
    optim_conf=dict(lr=0.005),
    batch_type="folded",
    batch_size=4,
    num_workers=0,
    num_att_plot=0,
    use_tensorboard=False,
    use_matplotlib=False,
    best_model_criterion=[["train", "loss", "min"]],
    keep_nbest_models=1,
)


def tone_speech(text: str, rng: np.random.Generator) -> np.ndarray:
    """Speech-like audio: each character is a 0.16 s harmonic tone of its own pitch."""
    t = np.arange(int(0.16 * FS)) / FS
    parts = [np.zeros(int(0.08 * FS))]
    for ch in text:
        f0 = 120 + 40 * TOKENS.index(ch)
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * np.hanning(len(t))
        parts.append(tone)
    parts.append(np.zeros(int(0.08 * FS)))
    x = np.concatenate(parts) * 0.2 + 0.003 * rng.standard_normal(sum(map(len, parts)))
    n = (len(x) // 640) * 640  # whole 40 ms video frames
    return x[:n].astype(np.float32)


def make_dump(root: Path, sents=SENTS, seed: int = 0) -> Path:
    """A tiny dump dir (wav.scp, roi.scp -> uint8 (T, 96, 96) npy, text) + token list."""
    rng = np.random.default_rng(seed)
    d = root / "dump"
    (d / "wav").mkdir(parents=True, exist_ok=True)
    wav, roi, txt = [], [], []
    for i, s in enumerate(sents):
        utt = f"S001_R01_S001002_C01_I0_{i:06d}-{i + 1:06d}"
        x = tone_speech(s, rng)
        sf.write(d / "wav" / f"{utt}.wav", x, FS, subtype="PCM_16")
        v = rng.integers(0, 256, size=(len(x) // 640, 96, 96), dtype=np.uint8)
        np.save(d / "wav" / f"{utt}.npy", v)
        wav.append(f"{utt} {d / 'wav' / (utt + '.wav')}")
        roi.append(f"{utt} {d / 'wav' / (utt + '.npy')}")
        txt.append(f"{utt} {s}")
    for name, lines in (("wav.scp", wav), ("roi.scp", roi), ("text", txt)):
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    return d


def data_args(d: Path, prefix: str):
    return [
        f"--{prefix}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
        f"--{prefix}_data_path_and_name_and_type", f"{d}/roi.scp,video,npy",
        f"--{prefix}_data_path_and_name_and_type", f"{d}/text,text,text",
    ]


def run_cli(module: str, args, cwd: Path) -> None:
    """Run a CLI's main(cmd) in this process (saves the ~15 s import of a subprocess)."""
    import importlib

    importlib.import_module(module).main([str(a) for a in args])


def write_config(path: Path, **over) -> Path:
    conf = dict(TINY)
    conf.update(over)
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    return path


def cer(ref: str, hyp: str) -> float:
    import editdistance

    return editdistance.eval(list(ref), list(hyp)) / max(1, len(ref))


# ----------------------------------------------------------------------------- config
def test_print_config_lists_av_choices(tmp_path):
    # A subprocess: ESPnet binds print_config(file=sys.stdout) when abs_task is first
    # imported, so in-process capture depends on which earlier test imported it.
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "espnet_avsr.bin.avsr_train", "--print_config"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout
    conf = yaml.safe_load(out)
    assert conf["encoder"] == "av_conformer"
    assert conf["video_frontend"] == "resnet18"
    assert conf["encoder_conf"]["num_fusion_blocks"] == 3
    assert conf["video_frontend_conf"]["width"] == 64


def test_importing_the_task_leaves_logging_to_espnet():
    # ESPnet configures INFO logging in main_worker with basicConfig, which is a no-op once
    # the root logger has a handler: our imports must not install one (no import-time logging).
    code = ("import logging, espnet_avsr.tasks.avsr, espnet_avsr.bin.avsr_inference, espnet_avsr.bin.avsr_train; "
            "print(len(logging.root.handlers))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "0", r.stdout


def test_unknown_class_in_config_lists_valid_choices(tmp_path):
    d = make_dump(tmp_path)
    cfg = write_config(tmp_path / "bad.yaml", encoder="no_such_encoder")
    with pytest.raises(ValueError, match=r"--encoder must be one of \('av_conformer'"):
        run_cli(
            "espnet_avsr.bin.avsr_train",
            ["--config", cfg, "--token_list", tmp_path / "tokens.txt", "--output_dir", tmp_path / "exp",
             *data_args(d, "train"), *data_args(d, "valid"), "--max_epoch", 1],
            tmp_path,
        )


def test_shipped_configs_build(tmp_path):
    from espnet_avsr.tasks.avsr import AVSRTask

    (tmp_path / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    for name in ("train_avsr.yaml", "tuning/train_avsr_conformer_gpu.yaml"):
        args = AVSRTask.get_parser().parse_args(
            ["--config", str(CONF / name), "--token_list", str(tmp_path / "tokens.txt"), "--normalize", "utterance_mvn"]
        )
        model = AVSRTask.build_model(args)
        enc = model.encoder
        assert enc.num_fusion_blocks + enc.num_shared_blocks == (4 if name == "train_avsr.yaml" else 12)


# ----------------------------------------------------------------------------- CLIs
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """collect_stats + 1 training epoch through the CLI, global_mvn on the collected stats."""
    tmp = tmp_path_factory.mktemp("avsr_cli")
    d = make_dump(tmp)
    cfg = write_config(tmp / "train.yaml")
    stats = tmp / "stats"
    run_cli(
        "espnet_avsr.bin.avsr_train",
        ["--collect_stats", "true", "--config", cfg, "--token_list", tmp / "tokens.txt",
         "--output_dir", stats, *data_args(d, "train"), *data_args(d, "valid"),
         "--train_shape_file", d / "wav.scp", "--valid_shape_file", d / "wav.scp"],
        tmp,
    )
    assert (stats / "train/feats_stats.npz").is_file()
    assert (stats / "train/video_shape").is_file()
    exp = tmp / "exp"
    run_cli(
        "espnet_avsr.bin.avsr_train",
        ["--config", cfg, "--token_list", tmp / "tokens.txt", "--output_dir", exp,
         "--normalize", "global_mvn", "--normalize_conf", f"stats_file={stats / 'train/feats_stats.npz'}",
         "--model_conf", "video_dropout={prob: 0.5, rate: 0.5}",
         *data_args(d, "train"), *data_args(d, "valid"),
         "--train_shape_file", stats / "train/speech_shape", "--valid_shape_file", stats / "valid/speech_shape",
         "--fold_length", 80000, "--max_epoch", 1],
        tmp,
    )
    return tmp, d, exp


def test_train_cli_one_epoch(trained):
    tmp, d, exp = trained
    assert (exp / "1epoch.pth").is_file() and (exp / "config.yaml").is_file()
    conf = yaml.safe_load((exp / "config.yaml").read_text(encoding="utf-8"))
    assert conf["token_list"] == TOKENS
    state = torch.load(exp / "1epoch.pth", map_location="cpu")
    assert any(k.startswith("encoder.cross_attention.0.") for k in state)
    assert "normalize.mean" in state


def test_inference_cli_and_missing_video(trained, monkeypatch):
    import espnet_avsr.bin.avsr_inference as inf

    tmp, d, exp = trained
    base = ["--asr_train_config", exp / "config.yaml", "--asr_model_file", exp / "1epoch.pth",
            "--data_path_and_name_and_type", f"{d}/wav.scp,speech,sound", "--beam_size", 2]
    # spy on the simulation and on what the model is handed: rate 0.5 must really hide frames
    simulated, handed = [], []
    real_sim, real_call = inf.simulate_missing, inf.AVSpeech2Text.__call__

    def sim_spy(video, *a, **k):
        before = torch.as_tensor(np.asarray(video)).clone()
        out, mask = real_sim(video, *a, **k)
        simulated.append((before, torch.as_tensor(np.asarray(out)), np.asarray(mask, dtype=bool)))
        return out, mask

    def call_spy(self, speech, video=None, video_missing=None):
        handed.append(None if video_missing is None else np.asarray(video_missing, dtype=bool))
        return real_call(self, speech, video, video_missing)

    monkeypatch.setattr(inf, "simulate_missing", sim_spy)
    monkeypatch.setattr(inf.AVSpeech2Text, "__call__", call_spy)
    run_cli("espnet_avsr.bin.avsr_inference",
            [*base, "--data_path_and_name_and_type", f"{d}/roi.scp,video,npy", "--output_dir", tmp / "dec",
             "--missing_rate", 0.5, "--missing_pattern", "segment"], tmp)
    monkeypatch.undo()
    assert len(simulated) == len(SENTS) == len(handed)
    for (before, after, mask), given in zip(simulated, handed):
        assert 0 < mask.sum() < len(mask)  # some frames hidden, not all
        assert not torch.equal(before, after)  # the video the model sees changed ...
        assert torch.equal(before[torch.as_tensor(~mask)], after[torch.as_tensor(~mask)])  # ... only where hidden
        assert given is not None and np.array_equal(given, mask)  # and the model is told which frames
    run_cli("espnet_avsr.bin.avsr_inference", [*base, "--audio_only", "true", "--output_dir", tmp / "dec_a"], tmp)
    for out in ("dec", "dec_a"):
        for f in ("text", "token", "score"):
            lines = (tmp / out / "1best_recog" / f).read_text(encoding="utf-8").splitlines()
            assert len(lines) == len(SENTS)
    with pytest.raises(ValueError, match="no video given"):
        run_cli("espnet_avsr.bin.avsr_inference", [*base, "--output_dir", tmp / "dec_x"], tmp)


def test_pack_roundtrip_same_hypothesis(trained):
    from espnet_avsr.bin.avsr_inference import AVSpeech2Text
    from espnet_avsr.bin.avsr_pack import pack_avsr

    tmp, d, exp = trained
    zip_path = pack_avsr(str(exp / "config.yaml"), str(exp / "1epoch.pth"), str(tmp / "packed.zip"))
    raw = AVSpeech2Text(exp / "config.yaml", exp / "1epoch.pth", beam_size=2)
    packed = AVSpeech2Text.from_packed(zip_path, unpack_dir=tmp / "unpacked", beam_size=2)
    utt, wav = (d / "wav.scp").read_text().split("\n")[0].split()
    speech, _ = sf.read(wav, dtype="float32")
    video = np.load(wav.replace(".wav", ".npy"))
    a, b = raw(speech, video)[0], packed(speech, video)[0]
    assert a[2] == b[2] and float(a[3].score) == pytest.approx(float(b[3].score), abs=1e-4)
    conf = yaml.safe_load((tmp / "unpacked/exp/config.yaml").read_text(encoding="utf-8"))
    assert Path(conf["normalize_conf"]["stats_file"]).is_file()  # stats travelled with the zip


# ----------------------------------------------------------------------------- learning
def test_tiny_model_overfits_with_beam_search(tmp_path):
    """A tiny AV model memorises 4 synthetic utterances: CER < 5 % with the real beam search."""
    from espnet_avsr.bin.avsr_inference import AVSpeech2Text
    from espnet_avsr.data.collate import AVCollateFn
    from espnet_avsr.tasks.avsr import AVSRTask

    torch.manual_seed(0)
    d = make_dump(tmp_path)
    cfg = write_config(tmp_path / "train.yaml")
    args = AVSRTask.get_parser().parse_args(["--config", str(cfg), "--token_list", str(tmp_path / "tokens.txt")])
    model = AVSRTask.build_model(args)
    pre = AVSRTask.build_preprocess_fn(args, train=False)
    items = []
    for line_w, line_v, line_t in zip(*(open(d / f, encoding="utf-8").read().splitlines() for f in ("wav.scp", "roi.scp", "text"))):
        utt = line_w.split()[0]
        items.append((utt, pre(utt, {"speech": sf.read(line_w.split()[1], dtype="float32")[0],
                                      "video": np.load(line_v.split()[1]), "text": line_t.split()[1]})))
    _, batch = AVCollateFn()(items)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for step in range(400):
        opt.zero_grad()
        loss, stats, _ = model(**batch)
        loss.backward()
        opt.step()
        if step % 10 == 9 and float(stats["acc"]) == 1.0:
            # converged as decoding sees it: eval mode (BatchNorm running stats, no dropout);
            # a train-mode check alone passed or failed with the CPU thread count
            model.eval()
            with torch.no_grad():
                _, st, _ = model(**batch)
            model.train()
            if float(st["acc"]) == 1.0 and float(st["loss_ctc"]) < 0.1:
                break
    conf = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    conf["token_list"] = TOKENS
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    torch.save(model.state_dict(), tmp_path / "model.pth")
    s2t = AVSpeech2Text(tmp_path / "config.yaml", tmp_path / "model.pth", beam_size=3, ctc_weight=0.3)
    errs = []
    for (utt, item), ref in zip(items, SENTS):
        text = s2t(item["speech"], item["video"])[0][0]
        errs.append(cer(ref, text))
    assert np.mean(errs) < 0.05, errs
