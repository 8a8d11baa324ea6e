"""MS-Adapter: LoRA injection, the audio-only switch, routing, checkpoints, CLI training
and decoding with adapters."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from espnet_avsr.models.adapters import LoRALinear, adapter_conf_from_state_dict, is_adapter_key
from espnet_avsr.models.espnet_model import ESPnetAVSRModel
from espnet_avsr.data.presence import VideoPresence
from espnet_avsr.models.ms_adapter import MSAdapterModel
from espnet_avsr.tasks.avsr import AVSRTask

FS = 16000
TOKENS = ["<blank>", "<unk>", "你", "好", "看", "电", "视", "<sos/eos>"]
SENTS = ["你好", "看电视", "电视好"]
ADAPTER = dict(rank=2, alpha=4.0, dropout=0.0)
CONF = dict(
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
    optim_conf=dict(lr=0.01),
    batch_type="folded",
    batch_size=3,
    num_workers=0,
    num_att_plot=0,
    use_tensorboard=False,
    use_matplotlib=False,
    best_model_criterion=[["train", "loss", "min"]],
    keep_nbest_models=1,
)


def conf(**over) -> dict:
    c = yaml.safe_load(yaml.safe_dump(CONF, allow_unicode=True))  # deep copy
    c["token_list"] = TOKENS
    for k, v in over.items():
        c[k] = v
    return c


def adapter_conf(**adapter) -> dict:
    return conf(model="ms_adapter", model_conf=dict(ctc_weight=0.3, adapter_conf=dict(ADAPTER, **adapter)))


def build(c: dict) -> ESPnetAVSRModel:
    return AVSRTask.build_model(argparse.Namespace(**c)).eval()


def randomise_adapters(model: MSAdapterModel, seed: int = 1) -> None:
    """Non-zero B so the adapters change outputs (B starts at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if is_adapter_key(n):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


@pytest.fixture(scope="module")
def pair():
    """(base model, ms_adapter model on the same base weights with non-zero adapters)."""
    torch.manual_seed(0)
    base = build(conf())
    ms = build(adapter_conf())
    ms.load_state_dict(base.state_dict(), strict=False)
    randomise_adapters(ms)
    return base, ms


def batch(lengths=(9600, 7680), seed=0):
    g = torch.Generator().manual_seed(seed)
    speech = torch.randn(len(lengths), max(lengths), generator=g) * 0.1
    for i, n in enumerate(lengths):
        speech[i, n:] = 0
    vl = torch.tensor([n // 640 for n in lengths])
    video = torch.randn(len(lengths), int(vl.max()), 88, 88, generator=g)
    return speech, torch.tensor(lengths), video, vl


# ----------------------------------------------------------------------------- primitives
def test_lora_linear_off_is_plain_linear_and_b_starts_at_zero():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 6)
    lora = LoRALinear.from_linear(lin, rank=2, alpha=4.0)
    assert lora.weight is lin.weight and float(lora.lora_scaling) == 2.0
    x = torch.randn(3, 8)
    assert torch.equal(lora(x), lin(x))
    lora.lora_active = True
    assert torch.equal(lora(x), lin(x))  # B = 0 at init: H_o = W·H_i
    with torch.no_grad():
        lora.lora_B.weight.fill_(0.5)
    expect = lin(x) + 2.0 * (x @ lora.lora_A.weight.T) @ lora.lora_B.weight.T
    assert torch.allclose(lora(x), expect, atol=1e-6)
    lora.eval()
    with torch.no_grad():  # inference uses the cached merged weight W + s·B·A
        assert torch.allclose(lora(x), expect, atol=1e-5)
        lora.lora_B.weight.fill_(0.0)  # an update invalidates the cache
        assert torch.allclose(lora(x), lin(x), atol=1e-6)
    with pytest.raises(ValueError, match="rank must be >= 1"):
        LoRALinear.from_linear(lin, rank=0, alpha=1.0)


def test_bad_adapter_conf_is_refused():
    with pytest.raises(ValueError, match="targets"):
        build(adapter_conf(targets=["linear_zz"]))
    with pytest.raises(ValueError, match="matched no Linear"):
        build(adapter_conf(blocks=["encoder.no_such_blocks"]))


def test_video_absent_rule(pair):
    _, ms = pair  # the switch reads the batch's VideoPresence (no video at all: None)
    vl = torch.tensor([4, 3, 4])
    missing = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)  # row 1: pad frame
    assert ms.audio_only_rows(3, VideoPresence.from_batch(vl, missing)).tolist() == [True, True, False]
    assert ms.audio_only_rows(3, VideoPresence.from_batch(vl, None)).tolist() == [False, False, False]
    assert ms.audio_only_rows(2, None).tolist() == [True, True]


# ----------------------------------------------------------------------------- switch
def test_adapters_off_outputs_identical_to_base(pair):
    base, ms = pair
    speech, sl, video, vl = batch()
    missing = torch.zeros(2, int(vl.max()), dtype=torch.bool)
    missing[0, :7] = True  # partly missing video: still the AV path
    with torch.no_grad():
        for m in (None, missing):
            a = base.encode(speech, sl, video, vl, m, return_hidden=True)
            b = ms.encode(speech, sl, video, vl, m, return_hidden=True)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            assert torch.equal(a[2]["fusion"], b[2]["fusion"])
        ys = torch.tensor([[7, 2, 3], [7, 4, 5]])
        ylens = torch.tensor([3, 3])
        with ms.adapter_scope(False):
            assert torch.equal(base.decoder(a[0], a[1], ys, ylens)[0], ms.decoder(a[0], a[1], ys, ylens)[0])
        # switch 'off' keeps the base even without video; 'auto' does not
        ms.adapter_switch = "off"
        try:
            assert torch.equal(base.encode(speech, sl, None, None)[0], ms.encode(speech, sl, None, None)[0])
        finally:
            ms.adapter_switch = "auto"
        assert not torch.equal(base.encode(speech, sl, None, None)[0], ms.encode(speech, sl, None, None)[0])


def test_only_adapter_parameters_train(pair):
    _, ms = pair
    trainable = {n: p for n, p in ms.named_parameters() if p.requires_grad}
    assert trainable and all(is_adapter_key(n) for n in trainable)
    d, r = 32, ADAPTER["rank"]
    # 4 attention projections (d x d) in 1 audio + 1 shared block + decoder self/src attn; + bridge
    expected = (2 + 2) * 4 * r * (d + d) + r * 2 * d
    assert sum(p.numel() for p in trainable.values()) == ms.num_adapter_parameters() == expected
    speech, sl, video, vl = batch()
    text = torch.tensor([[2, 3], [4, -1]])
    ms.zero_grad()
    loss, stats, _ = ms(speech, sl, video, vl, text, torch.tensor([2, 1]))
    loss.backward()
    grads = [n for n, p in ms.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert grads and all(is_adapter_key(n) for n in grads)
    assert any(n.startswith("decoder.") for n in grads) and any(n.startswith("audio_bridge.") for n in grads)
    ms.zero_grad()


def test_video_modules_skipped_and_flops_drop(pair):
    _, ms = pair
    calls = {"video_frontend": 0, "video_blocks": 0, "cross_attention": 0, "merge": 0}
    hooks = [ms.video_frontend.register_forward_hook(lambda *a: calls.__setitem__("video_frontend", calls["video_frontend"] + 1))]
    for name in ("video_blocks", "cross_attention"):
        for mod in getattr(ms.encoder, name):
            hooks.append(mod.register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1)))
    hooks.append(ms.encoder.merge.register_forward_hook(lambda *a: calls.__setitem__("merge", calls["merge"] + 1)))
    speech, sl, video, vl = batch()
    all_missing = torch.ones(2, int(vl.max()), dtype=torch.bool)
    try:
        with torch.no_grad():
            for v, l, m in ((None, None, None), (video, vl, all_missing)):
                ms.encode(speech, sl, v, l, m)
                assert calls == dict.fromkeys(calls, 0)
            ms.encode(speech, sl, video, vl)
            assert all(n > 0 for n in calls.values())
            with FlopCounterMode(display=False) as adapted:
                ms.encode(speech, sl, None, None)
            ms.adapter_switch = "off"
            with FlopCounterMode(display=False) as full:
                ms.encode(speech, sl, None, None)
    finally:
        ms.adapter_switch = "auto"
        for h in hooks:
            h.remove()
    assert adapted.get_total_flops() > 0
    assert adapted.get_total_flops() < 0.5 * full.get_total_flops()


def test_mixed_batch_routes_per_sample(pair):
    _, ms = pair
    # the AV samples (0, 2) share a length: the base AV model itself is not padding-invariant
    # (ESPnet's Conformer convolution sees padded frames), routing must add nothing on top
    speech, sl, video, vl = batch(lengths=(9600, 7680, 9600))
    missing = torch.zeros(3, int(vl.max()), dtype=torch.bool)
    missing[1] = True  # sample 1: video gone -> adapters
    missing[2, :5] = True  # sample 2: partly missing -> AV
    with torch.no_grad():
        enc, lens, hid = ms.encode(speech, sl, video, vl, missing, return_hidden=True)
        assert hid["video_missing"][1, : int(lens[1])].all()
        for i in range(3):
            n, t = int(sl[i]), int(vl[i])
            e1, l1 = ms.encode(speech[i : i + 1, :n], sl[i : i + 1], video[i : i + 1, :t], vl[i : i + 1], missing[i : i + 1, :t])
            assert int(lens[i]) == int(l1[0])
            assert torch.allclose(enc[i, : int(l1[0])], e1[0], atol=1e-5), i
            assert enc[i, int(l1[0]) :].abs().sum() == 0


# ----------------------------------------------------------------------------- checkpoints
def test_adapter_only_checkpoint_round_trip(pair, tmp_path):
    from espnet_avsr.bin.avsr_inference import build_model

    base, ms = pair
    torch.save(base.state_dict(), tmp_path / "base.pth")
    adapters = ms.state_dict()  # save_adapters_only: the adapters alone
    assert adapters and all(is_adapter_key(k) for k in adapters)
    assert adapter_conf_from_state_dict(adapters, "audio_bridge.branch")["rank"] == ADAPTER["rank"]
    torch.save(adapters, tmp_path / "adapters.pth")
    ms.save_adapters_only = False
    try:
        torch.save(ms.state_dict(), tmp_path / "full_ms.pth")
    finally:
        ms.save_adapters_only = True
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(conf(), allow_unicode=True), encoding="utf-8")
    (tmp_path / "ms.yaml").write_text(yaml.safe_dump(adapter_conf(), allow_unicode=True), encoding="utf-8")
    speech, sl, video, vl = batch()
    with torch.no_grad():
        ref = ms.encode(speech, sl, None, None)[0]
        for cfg, adapter_file in (("base.yaml", "adapters.pth"), ("base.yaml", "full_ms.pth"), ("ms.yaml", "adapters.pth")):
            model, _ = build_model(tmp_path / cfg, tmp_path / "base.pth", "cpu", tmp_path / adapter_file)
            model.eval()
            assert isinstance(model, MSAdapterModel)
            assert torch.equal(model.encode(speech, sl, None, None)[0], ref), (cfg, adapter_file)
            assert torch.equal(model.encode(speech, sl, video, vl)[0], base.encode(speech, sl, video, vl)[0])
    with pytest.raises(ValueError, match="only adapter tensors"):
        build_model(tmp_path / "ms.yaml", tmp_path / "adapters.pth", "cpu")
    with pytest.raises(ValueError, match="no adapter tensors"):
        build_model(tmp_path / "base.yaml", tmp_path / "base.pth", "cpu", tmp_path / "base.pth")


# ----------------------------------------------------------------------------- CLIs
def tone(text: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.16 * FS)) / FS
    parts = [np.zeros(1280)] + [np.sin(2 * np.pi * (150 + 40 * TOKENS.index(c)) * t) * np.hanning(len(t)) for c in text]
    x = np.concatenate(parts + [np.zeros(1280)]) * 0.2
    x = x + 0.003 * rng.standard_normal(len(x))
    return x[: len(x) // 640 * 640].astype(np.float32)


def make_dump(root: Path, video: bool) -> Path:
    rng = np.random.default_rng(0)
    d = root / ("dump_av" if video else "dump_a")
    d.mkdir(parents=True)
    wav, roi, txt, shape = [], [], [], []
    for i, s in enumerate(SENTS):
        utt = f"S001_R01_S001002_C01_I0_{i:06d}-{i + 1:06d}"
        x = tone(s, rng)
        sf.write(d / f"{utt}.wav", x, FS, subtype="PCM_16")
        wav.append(f"{utt} {d / (utt + '.wav')}")
        txt.append(f"{utt} {s}")
        shape.append(f"{utt} {len(x)}")
        if video:
            np.save(d / f"{utt}.npy", rng.integers(0, 256, (len(x) // 640, 96, 96), dtype=np.uint8))
            roi.append(f"{utt} {d / (utt + '.npy')}")
    files = {"wav.scp": wav, "text": txt, "speech_shape": shape}
    if video:
        files["roi.scp"] = roi
    for name, lines in files.items():
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    return d


def test_adapter_training_cli_on_audio_only_dump_updates_only_adapters(tmp_path):
    from espnet_avsr.bin.avsr_inference import build_model
    from espnet_avsr.bin.avsr_train import main as train_main

    d = make_dump(tmp_path, video=False)
    torch.manual_seed(0)
    base = build(conf())
    torch.save(base.state_dict(), tmp_path / "base.pth")
    cfg = tmp_path / "adapter.yaml"
    c = adapter_conf()
    c.pop("token_list")
    cfg.write_text(yaml.safe_dump(c, allow_unicode=True), encoding="utf-8")
    data = []
    for prefix in ("train", "valid"):
        data += [f"--{prefix}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
                 f"--{prefix}_data_path_and_name_and_type", f"{d}/text,text,text",
                 f"--{prefix}_shape_file", f"{d}/speech_shape"]
    exp = tmp_path / "exp"
    train_main(["--config", str(cfg), "--token_list", str(tmp_path / "tokens.txt"), "--output_dir", str(exp),
                "--init_param", str(tmp_path / "base.pth"), "--max_epoch", "1", "--fold_length", "80000", *data])
    saved = torch.load(exp / "1epoch.pth", map_location="cpu")
    assert saved and all(is_adapter_key(k) for k in saved)  # the checkpoint holds the adapters alone
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in saved.items())  # trained
    model, _ = build_model(exp / "config.yaml", tmp_path / "base.pth", "cpu", exp / "1epoch.pth")
    model.save_adapters_only = False
    model_state = model.state_dict()
    for k, v in base.state_dict().items():
        assert torch.equal(model_state[k], v), k  # base untouched


def test_inference_cli_with_adapter_file_and_all_video_missing(pair, tmp_path, caplog):
    from espnet_avsr.bin.avsr_inference import AVSpeech2Text, main as infer_main

    base, ms = pair
    d = make_dump(tmp_path, video=True)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(conf(), allow_unicode=True), encoding="utf-8")
    torch.save(base.state_dict(), tmp_path / "base.pth")
    torch.save(ms.state_dict(), tmp_path / "adapters.pth")
    common = ["--asr_train_config", str(tmp_path / "base.yaml"), "--asr_model_file", str(tmp_path / "base.pth"),
              "--adapter_file", str(tmp_path / "adapters.pth"), "--beam_size", "2",
              "--data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
              "--data_path_and_name_and_type", f"{d}/roi.scp,video,npy"]
    with caplog.at_level(logging.INFO):
        infer_main([*common, "--output_dir", str(tmp_path / "dec"), "--missing_rate", "1.0"])
    lines = (tmp_path / "dec/1best_recog/token_int").read_text(encoding="utf-8").splitlines()
    assert [ln.split()[0] for ln in lines] == [f"S001_R01_S001002_C01_I0_{i:06d}-{i + 1:06d}" for i in range(3)]
    assert "adapter (audio-only) path: 3" in caplog.text

    s2t = AVSpeech2Text(tmp_path / "base.yaml", tmp_path / "base.pth", beam_size=2,
                        adapter_file=tmp_path / "adapters.pth")
    speech = sf.read(str(d / "S001_R01_S001002_C01_I0_000000-000001.wav"), dtype="float32")[0]
    video = np.load(d / "S001_R01_S001002_C01_I0_000000-000001.npy")
    gone = np.ones(len(video), dtype=bool)
    hyp_gone = s2t(speech, video, gone)[0]
    assert s2t.last_route == "adapter"
    assert s2t(speech, None)[0][2] == hyp_gone[2]  # no video == all frames missing, same route
    s2t(speech, video)
    assert s2t.last_route == "av"
    off = AVSpeech2Text(tmp_path / "base.yaml", tmp_path / "base.pth", beam_size=2,
                        adapter_file=tmp_path / "adapters.pth", adapter_switch="off")
    off(speech, video, gone)
    assert off.last_route == "av"
    with pytest.raises(ValueError, match="needs adapters"):
        AVSpeech2Text(tmp_path / "base.yaml", tmp_path / "base.pth", adapter_switch="always")
