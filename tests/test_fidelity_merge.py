"""The figure's merge (encoder_conf.merge: figure): a_N + FFN([v_0; ...; v_N]), its hidden taps,
the unchanged old merge, and the MS-Adapter path that skips the video branch, the
cross-attentions and the FFN with no bridge (hooks, gradients, FLOPs)."""

from __future__ import annotations

import argparse

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask

from espnet_avsr.models.adapters import is_adapter_key
from espnet_avsr.models.av_conformer import AVConformerEncoder
from espnet_avsr.models.fusion import MultiLayerMerge
from espnet_avsr.models.ms_adapter import MSAdapterModel
from espnet_avsr.tasks.avsr import AVSRTask

D = 32
ENC = dict(input_size=40, video_input_size=D, output_size=D, attention_heads=2, linear_units=64,
           num_fusion_blocks=3, num_shared_blocks=2, cnn_module_kernel=5, dropout_rate=0.0,
           positional_dropout_rate=0.0)


def encoder(**kw) -> AVConformerEncoder:
    torch.manual_seed(0)
    return AVConformerEncoder(**{**ENC, **kw}).eval()


def feats(lengths, dim=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(lengths), max(lengths), dim, generator=g), torch.tensor(lengths)


def randomise(module: torch.nn.Module, seed: int = 3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


# ----------------------------------------------------------------------------- encoder
def test_figure_merge_adds_ffn_of_every_video_stream_to_the_last_audio_stream():
    enc = encoder(merge="figure")
    assert isinstance(enc.merge, MultiLayerMerge)
    assert enc.merge.ffn[0].in_features == (ENC["num_fusion_blocks"] + 1) * D
    a, al = feats([101, 81])
    v, vl = feats([25, 20], D, seed=1)
    # at init the FFN's last Linear is zero: the shared blocks read the audio stream alone
    _, _, hid = enc(a, al, v, vl, return_hidden=True)
    torch.testing.assert_close(hid["fusion"], hid["audio.2"])

    randomise(enc.merge)
    seen = {}
    enc.merge.register_forward_hook(lambda m, args, out: seen.update(inp=args[0], out=out))
    out, lens, hid = enc(a, al, v, vl, return_hidden=True)
    assert out.shape == (2, 24, D) and lens.tolist() == [24, 19]
    keys = [f"merge_in.{k}" for k in range(4)]
    assert all(hid[k].shape == (2, 24, D) for k in keys)
    for i in range(3):  # the FFN's inputs are v_0 (entering fusion layer 0) and each layer's video
        assert torch.equal(hid[f"merge_in.{i + 1}"], hid[f"video.{i}"])
    assert [t.data_ptr() for t in seen["inp"]] == [hid[k].data_ptr() for k in keys]
    torch.testing.assert_close(hid["fusion"], hid["audio.2"] + seen["out"])
    assert not torch.allclose(hid["fusion"], hid["audio.2"])
    # every stream feeds the merge: perturbing v_0's input (the video) moves the FFN output
    _, _, hid2 = enc(a, al, v + 1.0, vl, return_hidden=True)
    assert not torch.allclose(hid2["fusion"] - hid2["audio.2"], hid["fusion"] - hid["audio.2"])


def test_last_merge_keeps_its_parameter_names_and_has_no_merge_taps():
    enc = encoder()
    assert enc.merge_type == "last"
    assert sorted(k for k in enc.state_dict() if k.startswith("merge.")) == [
        "merge.ffn.0.bias", "merge.ffn.0.weight", "merge.ffn.3.bias", "merge.ffn.3.weight",
        "merge.norm.bias", "merge.norm.weight",
    ]
    _, _, hid = enc(*feats([101]), *feats([25], D), return_hidden=True)
    assert not any(k.startswith("merge_in.") for k in hid)
    fig = encoder(merge="figure")
    assert sorted(k for k in fig.state_dict() if k.startswith("merge.")) == [
        "merge.ffn.0.bias", "merge.ffn.0.weight", "merge.ffn.3.bias", "merge.ffn.3.weight",
    ]
    with pytest.raises(ValueError, match="encoder_conf.merge must be one of"):
        encoder(merge="sum")


# ----------------------------------------------------------------------------- MS-Adapter path
CONF = dict(
    frontend="default",
    frontend_conf=dict(fs=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40),
    normalize="utterance_mvn",
    video_frontend="resnet18",
    video_frontend_conf=dict(width=2),
    encoder="av_conformer",
    encoder_conf=dict(output_size=D, attention_heads=2, linear_units=64, num_fusion_blocks=2,
                      num_shared_blocks=2, cnn_module_kernel=7, dropout_rate=0.0,
                      positional_dropout_rate=0.0, merge="figure"),
    decoder="transformer",
    decoder_conf=dict(attention_heads=2, linear_units=64, num_blocks=1, dropout_rate=0.0,
                      positional_dropout_rate=0.0),
    model="ms_adapter",
    model_conf=dict(ctc_weight=0.3, freeze_base=False, adapter_conf=dict(rank=2, alpha=4.0, targets="qkv")),
    token_list=["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"],
    token_type="char",
)
VIDEO_SIDE = ("video_frontend", "encoder.video_proj", "encoder.video_pos", "encoder.video_blocks",
              "encoder.cross_attention", "encoder.merge")


def build(**model_conf) -> MSAdapterModel:
    c = yaml.safe_load(yaml.safe_dump(CONF))
    c["model_conf"].update(model_conf)
    torch.manual_seed(0)
    return AVSRTask.build_model(argparse.Namespace(**c))


def speech_batch():
    g = torch.Generator().manual_seed(0)
    speech = torch.randn(2, 9600, generator=g) * 0.1
    speech[1, 7680:] = 0
    return speech, torch.tensor([9600, 7680])


def test_figure_adapter_path_runs_audio_and_shared_blocks_only():
    ms = build()
    assert ms.adapter_conf.bridge == "skip" and ms.audio_bridge is None
    assert not any(k.startswith("audio_bridge") for k in ms.state_dict())
    for n, p in ms.named_parameters():  # non-zero adapters, so the path really uses them
        if is_adapter_key(n):
            torch.nn.init.normal_(p, std=0.1)
    calls = {name: 0 for name in VIDEO_SIDE}
    hooks = [ms.get_submodule(name).register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1))
             for name in VIDEO_SIDE]
    speech, sl = speech_batch()
    text, tl = torch.tensor([[2, 3, 4], [3, 4, -1]]), torch.tensor([3, 2])
    try:
        ms.train()
        loss, _, _ = ms(speech, sl, None, None, text, tl)  # adapter training: every sample audio-only
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    assert calls == dict.fromkeys(VIDEO_SIDE, 0)
    for n, p in ms.named_parameters():
        if n.startswith(VIDEO_SIDE):
            assert p.requires_grad and p.grad is None, n  # trainable, yet untouched
    grads = {n for n, p in ms.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("encoder.audio_blocks.") and is_adapter_key(n) for n in grads)
    assert any(n.startswith("encoder.shared_blocks.") and is_adapter_key(n) for n in grads)
    assert any(n.startswith("decoder.decoders.") and is_adapter_key(n) for n in grads)


def test_figure_adapter_path_costs_what_the_audio_path_costs():
    """Decoding FLOPs of the adapted audio-only encode equal those of the audio front-end,
    audio blocks and shared blocks run alone (adapters on), and those of a stock ESPnet
    ConformerEncoder with N + M blocks (A0's encoder) on the same features."""
    ms = build().eval()
    for n, p in ms.named_parameters():
        if is_adapter_key(n):
            torch.nn.init.normal_(p, std=0.1)
    speech, sl = speech_batch()

    def flops(fn) -> int:
        with torch.no_grad():
            fn()  # warm the adapters' merged-weight cache (computed once per weight update)
            with FlopCounterMode(display=False) as counter:
                fn()
        return counter.get_total_flops()

    def blocks_alone():
        """The figure's dashed path by hand: features -> audio blocks -> shared blocks."""
        enc = ms.encoder
        feats, flens = ms.normalize(*ms._extract_feats(speech, sl))
        x, lens = enc.subsample_audio(feats, flens)
        mask = ~make_pad_mask(lens, maxlen=x.size(1))[:, None, :]
        x, pos = enc.audio_pos(x)
        for block in [*enc.audio_blocks, *enc.shared_blocks]:
            (x, _), _ = block((x, pos), mask)
        return enc.after_norm(x)

    enc_conf = CONF["encoder_conf"]
    a0 = ConformerEncoder(40, output_size=D, attention_heads=2, linear_units=64,
                          num_blocks=enc_conf["num_fusion_blocks"] + enc_conf["num_shared_blocks"],
                          cnn_module_kernel=7, macaron_style=True, use_cnn_module=True,
                          rel_pos_type="latest", pos_enc_layer_type="rel_pos",
                          selfattention_layer_type="rel_selfattn", activation_type="swish").eval()

    adapted = flops(lambda: ms.encode(speech, sl, None, None))
    with ms.adapter_scope(True):
        torch.testing.assert_close(blocks_alone(), ms.encode(speech, sl, None, None)[0])
        alone = flops(blocks_alone)
    a0_path = flops(lambda: a0(*ms.normalize(*ms._extract_feats(speech, sl))))
    assert adapted == alone == a0_path > 0


def test_bridge_auto_keeps_the_lowrank_bridge_for_the_last_merge():
    c = yaml.safe_load(yaml.safe_dump(CONF))
    c["encoder_conf"]["merge"] = "last"
    torch.manual_seed(0)
    ms = AVSRTask.build_model(argparse.Namespace(**c))
    assert ms.adapter_conf.bridge == "lowrank" and ms.audio_bridge is not None
    assert build(adapter_conf=dict(rank=2, alpha=4.0, bridge="lowrank")).audio_bridge is not None


def test_shipped_configs_build_with_the_figure_options(tmp_path):
    """The recipe's configs take every fidelity option from the command line (as a run would)."""
    from pathlib import Path

    conf_dir = Path(__file__).resolve().parents[1] / "egs2/misp_avsr/avsr1/conf"
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(CONF["token_list"]) + "\n", encoding="utf-8")

    def parse(name, *extra):
        args = AVSRTask.get_parser().parse_args(
            ["--config", str(conf_dir / name), "--token_list", str(tokens), "--normalize", "utterance_mvn",
             "--encoder_conf", "merge=figure", *extra])
        return AVSRTask.build_model(args)

    kd = parse("train_avsr_kd.yaml", "--model_conf", "kd_layers=merge_in", "--model_conf", "kd_teacher_audio=student",
               "--model_conf", "video_dropout={prob: 0.5, rate: 0.5, pattern: random, fill: black}")
    assert kd.encoder.merge_type == "figure" and kd.kd_layers == ["merge_in.0", "merge_in.1", "merge_in.2"]
    assert kd.kd_teacher_audio == "student" and kd.video_dropout.fill == "black"
    ms = parse("train_adapter.yaml")
    assert ms.audio_bridge is None and ms.adapter_conf.bridge == "skip"


def test_figure_mixed_batch_av_rows_are_the_base_model_and_absent_rows_the_audio_path():
    c = yaml.safe_load(yaml.safe_dump(CONF))
    c["model"], c["model_conf"] = "espnet", dict(ctc_weight=0.3)
    torch.manual_seed(0)
    base = AVSRTask.build_model(argparse.Namespace(**c)).eval()
    randomise(base.encoder.merge)  # a non-zero FFN, so the AV rows really depend on it
    ms = build().eval()
    ms.load_state_dict(base.state_dict(), strict=False)
    for n, p in ms.named_parameters():
        if is_adapter_key(n):
            torch.nn.init.normal_(p, std=0.1)
    speech, sl = speech_batch()
    vl = torch.tensor([15, 12])
    video = torch.randn(2, 15, 88, 88, generator=torch.Generator().manual_seed(1))
    missing = torch.zeros(2, 15, dtype=torch.bool)
    missing[1] = True  # row 1: video absent -> adapted audio path
    with torch.no_grad():
        enc, lens = ms.encode(speech, sl, video, vl, missing)
        ref_av, ref_lens = base.encode(speech[:1], sl[:1], video[:1], vl[:1], missing[:1])
        ref_ao, _ = ms.encode(speech[1:, :7680], sl[1:], None, None)
    assert torch.equal(enc[0, : ref_lens[0]], ref_av[0]) and int(lens[0]) == int(ref_lens[0])
    torch.testing.assert_close(enc[1, : lens[1]], ref_ao[0])
    with torch.no_grad(), ms.adapter_scope(False):
        plain, _ = ms.encode_audio_only(speech[1:, :7680], sl[1:])
    assert not torch.allclose(plain, ref_ao)  # the adapters were on for the absent row
