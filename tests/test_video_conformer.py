"""Lip reader V0 (encoder: video_conformer) and the A0+V0 initialisation of an AV model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from espnet_avsr.models.asr_init import map_vsr_to_avsr
from espnet_avsr.models.video_conformer import VideoConformerEncoder

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs2/misp_avsr/avsr1/conf"
TOKENS = ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]


def encoder(**kw) -> VideoConformerEncoder:
    conf = dict(input_size=40, video_input_size=24, output_size=16, attention_heads=2, linear_units=32,
                num_blocks=2, cnn_module_kernel=5, dropout_rate=0.0, positional_dropout_rate=0.0)
    conf.update(kw)
    return VideoConformerEncoder(**conf).eval()


def test_output_runs_at_the_video_rate_and_ignores_audio():
    torch.manual_seed(0)
    enc = encoder()
    v, vl = torch.randn(2, 30, 24), torch.tensor([30, 22])
    out, lens, hid = enc(torch.randn(2, 50, 40), torch.tensor([50, 40]), v, vl, return_hidden=True)
    assert out.shape == (2, 30, 16) and lens.tolist() == [30, 22]
    assert set(hid) >= {"video", "video_missing", "video.0", "video.1"}
    out2, _, _ = enc(torch.randn(2, 90, 40), torch.tensor([90, 70]), v, vl)
    torch.testing.assert_close(out, out2)


def test_padding_does_not_leak_into_a_shorter_utterance():
    torch.manual_seed(0)
    enc = encoder()
    v, vl = torch.randn(2, 30, 24), torch.tensor([30, 22])
    out, _, _ = enc(None, None, v, vl)
    v2 = v.clone()
    v2[1, 22:] = 100.0
    out2, _, _ = enc(None, None, v2, vl)
    torch.testing.assert_close(out[1, :22], out2[1, :22])


def test_no_audio_only_route():
    with pytest.raises(ValueError, match="lip reader"):
        encoder().forward_audio_only(torch.randn(1, 50, 40), torch.tensor([50]))


def build(config: Path, tok: Path):
    from espnet_avsr.tasks.avsr import AVSRTask

    args = AVSRTask.get_parser().parse_args(
        ["--config", str(config), "--token_list", str(tok), "--normalize", "utterance_mvn"]
    )
    return AVSRTask.build_model(args)


@pytest.fixture()
def tokens(tmp_path):
    tok = tmp_path / "tokens.txt"
    tok.write_text("\n".join(TOKENS) + "\n")
    return tok


def test_recipe_v0_config_builds_trains_and_maps_onto_av0(tmp_path, tokens):
    torch.manual_seed(0)
    v0 = build(CONF / "train_vsr.yaml", tokens)
    assert isinstance(v0.encoder, VideoConformerEncoder)
    batch = dict(
        speech=torch.randn(2, 8000), speech_lengths=torch.tensor([8000, 6400]),
        video=torch.randn(2, 12, 88, 88), video_lengths=torch.tensor([12, 10]),
        text=torch.tensor([[2, 3, 4], [2, 3, -1]]), text_lengths=torch.tensor([3, 2]),
    )
    v0.train()
    loss, stats, _ = v0(**batch)
    loss.backward()
    assert torch.isfinite(loss) and stats["loss_ctc"] is not None
    assert v0.video_frontend.stem[0].weight.grad.abs().sum() > 0

    av0 = build(CONF / "train_avsr.yaml", tokens)
    n_fusion = av0.encoder.num_fusion_blocks
    mapped, rep = map_vsr_to_avsr(v0.state_dict(), av0.state_dict(), n_fusion)
    assert not rep.shape_mismatch
    v0s = v0.state_dict()
    for k, v in v0s.items():
        if k.startswith(("video_frontend.", "encoder.video_proj.", "encoder.video_blocks.")):
            torch.testing.assert_close(mapped[k], v)
    # V0's own head and its audio-side leftovers are not copied
    assert not [k for k in mapped if k.startswith(("ctc.", "decoder.", "encoder.after_norm", "frontend.", "normalize."))]
    assert any(k.startswith(f"encoder.video_blocks.{n_fusion - 1}.") for k in mapped)


def test_init_from_asr_with_a_lip_reader(tmp_path, tokens):
    from espnet2.tasks.asr import ASRTask

    from espnet_avsr.bin.init_avsr import init_avsr

    a0_args = ASRTask.get_parser().parse_args(
        ["--config", str(CONF / "train_asr.yaml"), "--token_list", str(tokens), "--normalize", "utterance_mvn"]
    )
    torch.manual_seed(0)
    a0 = ASRTask.build_model(a0_args)
    v0 = build(CONF / "train_vsr.yaml", tokens)
    torch.save(a0.state_dict(), tmp_path / "a0.pth")
    torch.save(v0.state_dict(), tmp_path / "v0.pth")
    init_avsr(str(tmp_path / "a0.pth"), str(CONF / "train_avsr.yaml"), str(tmp_path / "init.pth"),
                  token_list=str(tokens), vsr_model_file=str(tmp_path / "v0.pth"))
    init = torch.load(tmp_path / "init.pth")
    torch.testing.assert_close(init["video_frontend.stem.0.weight"], v0.state_dict()["video_frontend.stem.0.weight"])
    torch.testing.assert_close(init["encoder.audio_blocks.0.feed_forward.w_1.weight"],
                               a0.state_dict()["encoder.encoders.0.feed_forward.w_1.weight"])
    report = (tmp_path / "init.pth.report.txt").read_text()
    assert "V0" in report and "video_frontend.stem.0.weight <- video_frontend.stem.0.weight" in report
    # left as initialised: exactly the fusion pieces neither model has
    left = report.split("# AV tensors left as initialised")[1].split()
    assert left and all(k.startswith(("encoder.cross_attention.", "encoder.merge.")) for k in left)
    # the headline counts what both sources left; each source's line says what it alone misses
    assert report.splitlines()[0].startswith("in all: ") and f"left as initialised: {len(left)};" in report.splitlines()[0]
    per_source = [line for line in report.splitlines() if line.startswith("## ")]
    assert len(per_source) == 2 and all("this source does not cover" in line for line in per_source)

    # a lip reader of another width is refused, naming the file
    other = tmp_path / "v0_other.pth"
    torch.save({k: (v[..., :1] if v.dim() else v) for k, v in v0.state_dict().items()}, other)
    with pytest.raises(ValueError, match="v0_other.pth"):
        init_avsr(str(tmp_path / "a0.pth"), str(CONF / "train_avsr.yaml"), str(tmp_path / "init2.pth"),
                      token_list=str(tokens), vsr_model_file=str(other))


def test_gpu_lip_reader_fits_the_gpu_av_config(tokens):
    """conf/tuning: V0's video side has AV0's sizes, so all of it maps and nothing mismatches."""
    v0 = build(CONF / "tuning/train_vsr_gpu.yaml", tokens)
    av0 = build(CONF / "tuning/train_avsr_conformer_gpu.yaml", tokens)
    mapped, rep = map_vsr_to_avsr(v0.state_dict(), av0.state_dict(), av0.encoder.num_fusion_blocks)
    assert not rep.shape_mismatch
    video_side = [k for k in av0.state_dict() if k.startswith(("video_frontend.", "encoder.video_proj.", "encoder.video_blocks."))]
    assert sorted(mapped) == sorted(video_side)
