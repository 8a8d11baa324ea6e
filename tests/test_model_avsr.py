"""AV-Conformer model pieces: shapes, masks, length reconciliation, missing video, video
dropout, preprocessing/collation and A0 -> AV initialisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
from espnet2.asr.frontend.default import DefaultFrontend
from espnet2.layers.utterance_mvn import UtteranceMVN

from espnet_avsr.data.collate import AVCollateFn
from espnet_avsr.data.presence import VideoPresence
from espnet_avsr.data.video_preprocessor import AVSRPreprocessor, VideoFormatError
from espnet_avsr.models.av_conformer import AVConformerEncoder, AVLengthMismatchError
from espnet_avsr.models.espnet_model import ESPnetAVSRModel
from espnet_avsr.models.visual_frontend import ResNet18VideoFrontend

ROOT = Path(__file__).resolve().parents[1]
TOKENS = ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]
D = 32


def encoder(**kw) -> AVConformerEncoder:
    conf = dict(input_size=40, video_input_size=D, output_size=D, attention_heads=2, linear_units=64,
                num_fusion_blocks=2, num_shared_blocks=1, cnn_module_kernel=5, dropout_rate=0.0,
                positional_dropout_rate=0.0)
    conf.update(kw)
    return AVConformerEncoder(**conf).eval()


def model(decoder_cls=TransformerDecoder, **model_conf) -> ESPnetAVSRModel:
    torch.manual_seed(0)
    dec = decoder_cls(vocab_size=len(TOKENS), encoder_output_size=D, attention_heads=2, linear_units=64, num_blocks=1)
    return ESPnetAVSRModel(
        vocab_size=len(TOKENS), token_list=TOKENS,
        frontend=DefaultFrontend(fs=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40),
        specaug=None, normalize=UtteranceMVN(),
        video_frontend=ResNet18VideoFrontend(output_size=D, width=4),
        encoder=encoder(), decoder=dec, ctc=CTC(len(TOKENS), D), **model_conf,
    )


def feats(lengths, dim=40):
    x = torch.randn(len(lengths), max(lengths), dim)
    return x, torch.tensor(lengths)


# ----------------------------------------------------------------------------- encoder
def test_encoder_shapes_and_hidden():
    enc = encoder()
    a, al = feats([101, 81])  # -> 24, 19 frames after 4x subsampling
    v, vl = feats([25, 20], D)
    out, lens, hid = enc(a, al, v, vl, return_hidden=True)
    assert out.shape == (2, 24, D) and lens.tolist() == [24, 19]
    for k in ("audio.0", "video.1", "fusion", "shared.0", "video"):
        assert hid[k].shape == (2, 24, D)
    assert hid["video_missing"].shape == (2, 24) and not hid["video_missing"].any()


def test_length_tolerance_trims_and_large_mismatch_names_the_utterance():
    enc = encoder(length_tolerance=3)
    a, al = feats([101])  # 24 frames
    out, lens, _ = enc(a, al, *feats([27], D))  # 3 more video frames: trimmed
    assert lens.tolist() == [24] and out.shape[1] == 24
    with pytest.raises(AVLengthMismatchError, match="utt_x.*24 frames.*video has 30"):
        enc(a, al, *feats([30], D), utt_ids=["utt_x"])


def test_repeat_last_extends_short_video_and_flags_it_missing():
    enc = encoder(on_length_mismatch="repeat_last")
    a, al = feats([101])
    out, lens, hid = enc(a, al, *feats([10], D), return_hidden=True)
    assert lens.tolist() == [24]
    assert hid["video_missing"][0, :10].sum() == 0 and hid["video_missing"][0, 10:].all()


def test_padded_video_frames_do_not_leak_into_the_output():
    enc = encoder()
    a, al = feats([101, 81])
    v, vl = feats([25, 20], D)
    out, lens, _ = enc(a, al, v, vl)
    v2 = v.clone()
    v2[1, 20:] = 1e3  # garbage in the padding of utterance 1
    out2, _, _ = enc(a, al, v2, vl)
    assert lens.tolist() == [24, 19]
    torch.testing.assert_close(out, out2)


def test_missing_mask_in_cross_attention_removes_video_influence():
    enc = encoder(mask_missing_in_cross_attention=True, num_fusion_blocks=1)
    a, al = feats([101])
    missing = torch.ones(1, 25, dtype=torch.bool)
    o1, _, h1 = enc(a, al, *feats([25], D), video_missing=missing, return_hidden=True)
    o2, _, h2 = enc(a, al, *feats([25], D), video_missing=missing, return_hidden=True)
    torch.testing.assert_close(h1["audio.0"], h2["audio.0"])  # audio stream blind to video
    assert not torch.allclose(h1["video.0"], h2["video.0"])


# ----------------------------------------------------------------------------- model
def batch(bsz=2):
    rng = np.random.default_rng(0)
    speech = torch.tensor(rng.standard_normal((bsz, 16000)), dtype=torch.float32)
    return dict(
        speech=speech, speech_lengths=torch.tensor([16000, 12800][:bsz]),
        video=torch.randn(bsz, 25, 88, 88), video_lengths=torch.tensor([25, 20][:bsz]),
        text=torch.tensor([[2, 3, 4], [2, 3, -1]][:bsz]), text_lengths=torch.tensor([3, 2][:bsz]),
    )


def test_forward_backward_every_path():
    m = model(TransformerDecoder).train()
    loss, stats, w = m(**batch())
    loss.backward()
    assert torch.isfinite(loss) and stats["loss_att"] is not None and stats["loss_ctc"] is not None
    assert m.video_frontend.stem[0].weight.grad is not None
    assert m.encoder.cross_attention[0].attn_a2v.linear_q.weight.grad.abs().sum() > 0
    m.eval()
    enc, lens = m.encode(batch()["speech"], batch()["speech_lengths"])  # video=None: all missing
    assert enc.shape == (2, 24, D) and lens.tolist() == [24, 19]


def test_all_missing_video_equals_no_video():
    m = model().eval()
    b = batch(1)
    with torch.no_grad():
        e0, _ = m.encode(b["speech"], b["speech_lengths"])
        zero = torch.zeros(1, 24, 88, 88)
        e1, _ = m.encode(b["speech"], b["speech_lengths"], zero, torch.tensor([24]), torch.ones(1, 24, dtype=torch.bool))
    torch.testing.assert_close(e0, e1)


def test_video_dropout_only_in_training():
    m = model(video_dropout=dict(prob=1.0, rate=1.0, pattern="random", fill="zeros"))
    seen = {}

    def spy(mod, args, kwargs):
        seen["video"] = args[2].clone()
        seen["missing"] = kwargs["presence"].missing

    m.encoder.register_forward_pre_hook(spy, with_kwargs=True)
    b = batch()
    m.train()
    _, stats, _ = m(**{k: v.clone() for k, v in b.items()})
    assert seen["missing"][0].all()
    assert float(stats["video_missing_rate"]) == pytest.approx(1.0)
    m.eval()
    with torch.no_grad():
        _, stats, _ = m(**{k: v.clone() for k, v in b.items()})
    assert not seen["missing"].any() and "video_missing_rate" not in stats  # no flags, no stat


# ----------------------------------------------------------------------------- data
def test_preprocessor_crop_flip_normalise():
    roi = np.full((5, 96, 96), 255, dtype=np.uint8)
    roi[:, :, :48] = 0
    ev = AVSRPreprocessor(train=False)("u", {"video": roi})["video"]
    assert ev.shape == (5, 88, 88) and ev.dtype == np.float32
    assert ev[0, 0, 0] == pytest.approx((0 - 0.421) / 0.165)
    assert ev[0, 0, -1] == pytest.approx((1 - 0.421) / 0.165)
    tr = AVSRPreprocessor(train=True, flip_prob=1.0)
    out = tr("u", {"video": roi})["video"]
    assert out[0, 0, 0] == pytest.approx((1 - 0.421) / 0.165)  # flipped
    masked = AVSRPreprocessor(train=True, time_mask_num=3, time_mask_max_frames=4)("u", {"video": np.full((50, 96, 96), 9, np.uint8)})["video"]
    assert (masked.reshape(50, -1) == 0).all(axis=1).sum() > 0
    with pytest.raises(VideoFormatError, match="bad_utt"):
        AVSRPreprocessor(train=False)("bad_utt", {"video": np.zeros((5, 64, 64), np.uint8)})


def test_collate_pads_video_and_gives_lengths():
    items = [("a", {"speech": np.zeros(640 * 5, np.float32), "video": np.ones((5, 88, 88), np.float32)}),
             ("b", {"speech": np.zeros(640 * 3, np.float32), "video": np.ones((3, 88, 88), np.float32)})]
    _, b = AVCollateFn()(items)
    assert b["video"].shape == (2, 5, 88, 88) and b["video_lengths"].tolist() == [5, 3]
    assert b["video"][1, 3:].abs().sum() == 0
    with pytest.raises(ValueError, match="differ in size"):
        AVCollateFn()([items[0], ("c", {"speech": np.zeros(10, np.float32), "video": np.ones((3, 96, 96), np.float32)})])


# ----------------------------------------------------------------------------- A0 init
def test_init_from_asr_copies_audio_blocks(tmp_path):
    from espnet2.tasks.asr import ASRTask

    from espnet_avsr.bin.init_avsr import init_avsr
    from espnet_avsr.tasks.avsr import AVSRTask

    conf = ROOT / "egs2/misp_avsr/avsr1/conf"
    tok = tmp_path / "tokens.txt"
    tok.write_text("\n".join(TOKENS) + "\n")
    a0_args = ASRTask.get_parser().parse_args(
        ["--config", str(conf / "train_asr.yaml"), "--token_list", str(tok), "--normalize", "utterance_mvn"]
    )
    a0 = ASRTask.build_model(a0_args)
    torch.save(a0.state_dict(), tmp_path / "a0.pth")
    rep = init_avsr(str(tmp_path / "a0.pth"), str(conf / "train_avsr.yaml"), str(tmp_path / "init.pth"), token_list=str(tok))
    assert not rep.shape_mismatch
    assert not [k for k in rep.unused_asr if k.startswith(("encoder.", "decoder.", "ctc."))]

    args = AVSRTask.get_parser().parse_args(
        ["--config", str(conf / "train_avsr.yaml"), "--token_list", str(tok), "--normalize", "utterance_mvn"]
    )
    av = AVSRTask.build_model(args)
    av.load_state_dict(torch.load(tmp_path / "init.pth"), strict=False)
    a0s, avs = a0.state_dict(), av.state_dict()
    for k, v in avs.items():
        if k.startswith("encoder.audio_blocks.1."):
            torch.testing.assert_close(v, a0s[k.replace("audio_blocks.1", "encoders.1")])
        if k.startswith("encoder.shared_blocks.1."):
            torch.testing.assert_close(v, a0s[k.replace("shared_blocks.1", "encoders.3")])
    torch.testing.assert_close(avs["decoder.output_layer.weight"], a0s["decoder.output_layer.weight"])
    # with no video, the AV embed + audio block 0 compute what A0's do
    a0.eval(), av.eval()
    x = torch.randn(1, 101, 80)
    l = torch.tensor([101])
    ea, _ = a0.encoder.embed(x, None)
    eb, _ = av.encoder.embed(x, None)
    torch.testing.assert_close(ea[0], av.encoder.audio_pos(eb)[0])


# ----------------------------------------------------------------------------- audio dropout
def test_audio_dropout_zeroes_whole_utterances_in_training_only():
    m = model(audio_dropout=0.5).train()
    feats = torch.randn(64, 30, 40)
    lens = torch.full((64,), 8)
    torch.manual_seed(0)
    drop = m.audio_drop_mask(VideoPresence.from_batch(lens), feats.device)
    assert drop.dtype == torch.bool and drop.shape == (64,)
    assert 16 <= int(drop.sum()) <= 48
    # a sample whose video is entirely missing keeps its audio
    missing = torch.zeros(64, 8, dtype=torch.bool)
    missing[:32] = True
    torch.manual_seed(0)
    drop = m.audio_drop_mask(VideoPresence.from_batch(lens, missing), feats.device)
    assert not bool(drop[:32].any()) and bool(drop[32:].any())
    # encode zeroes exactly the drawn samples' whole utterances: hidden["audio_dropped"]
    b = batch()
    seen = {}
    m.encoder.register_forward_pre_hook(lambda mod, a, kw: seen.__setitem__("feats", a[0].clone()), with_kwargs=True)
    torch.manual_seed(0)
    _, _, hidden = m.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"], return_hidden=True)
    zeroed = (seen["feats"] == 0).flatten(1).all(dim=1)
    assert torch.equal(zeroed, hidden["audio_dropped"])
    given = torch.tensor([True] + [False] * (len(b["speech"]) - 1))
    m.eval()  # a given draw applies in eval mode too (the KD teacher's case)
    _, _, hidden = m.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"], return_hidden=True,
                            audio_drop=given)
    assert torch.equal(hidden["audio_dropped"], given) and bool((seen["feats"][0] == 0).all())
    assert not bool((seen["feats"][1:] == 0).flatten(1).all(dim=1).any())
    m.train()
    # eval mode: encode never drops audio, so the output does not depend on the RNG
    m.eval()
    b = batch()
    e1, _ = m.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"])
    torch.manual_seed(123)
    e2, _ = m.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"])
    torch.testing.assert_close(e1, e2)
    with pytest.raises(ValueError, match="audio_dropout"):
        model(audio_dropout=1.0)


def test_audio_dropout_makes_the_output_depend_on_video_only():
    """With the audio dropped, changing the speech does not change the encoder output."""
    m = model(audio_dropout=0.999).train()
    for mod in m.modules():  # deterministic apart from the audio dropout draw
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    b = batch()
    torch.manual_seed(0)
    e1, _ = m.encode(b["speech"], b["speech_lengths"], b["video"], b["video_lengths"])
    torch.manual_seed(0)
    e2, _ = m.encode(b["speech"] * 3 + 0.5, b["speech_lengths"], b["video"], b["video_lengths"])
    torch.testing.assert_close(e1, e2)


def test_frozen_video_frontend_keeps_weights_and_statistics_and_trains_the_rest():
    m = model(freeze_video_frontend=True).train()
    assert not m.video_frontend.training and m.encoder.training  # train() keeps the front-end in eval
    before = {k: v.clone() for k, v in m.video_frontend.state_dict().items()}
    enc_before = m.encoder.cross_attention[0].attn_a2v.linear_q.weight.clone()
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    loss, _, _ = m(**batch())
    loss.backward()
    assert all(p.grad is None for p in m.video_frontend.parameters())
    opt.step()
    for k, v in m.video_frontend.state_dict().items():  # weights and BN running stats alike
        torch.testing.assert_close(v, before[k], msg=k)
    assert not torch.equal(m.encoder.cross_attention[0].attn_a2v.linear_q.weight, enc_before)
    # the unfrozen model's front-end does learn (the test above would pass if nothing trained)
    m2 = model().train()
    m2(**batch())[0].backward()
    assert m2.video_frontend.stem[0].weight.grad.abs().sum() > 0
