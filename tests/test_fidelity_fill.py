"""Black-frame fill: a missing frame holds what a 0-intensity ROI becomes after the
preprocessor's normalisation (the paper's black student frames), not 0 (mean grey)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from espnet_avsr.data.missing_video import (
    FILLS,
    VideoDropoutConfig,
    apply_batch_missing,
    apply_missing,
    black_level,
    simulate_missing,
)
from espnet_avsr.data.roi_norm import ROI_MEAN, ROI_STD
from espnet_avsr.data.video_preprocessor import AVSRPreprocessor

from test_model_avsr import batch, model


def preprocessed_black(**conf) -> float:
    """The value the eval preprocessor gives a black uint8 ROI."""
    pre = AVSRPreprocessor(train=False, **conf)
    x = pre.process_video("u", np.zeros((3, 96, 96), dtype=np.uint8))
    assert np.ptp(x) == 0
    return float(x.flat[0])


def test_black_is_the_normalised_zero_intensity_frame():
    assert black_level() == pytest.approx(-ROI_MEAN / ROI_STD) == pytest.approx(-2.5515, abs=1e-4)
    assert black_level() == pytest.approx(preprocessed_black(), abs=1e-6)
    assert black_level(0.5, 0.25) == pytest.approx(preprocessed_black(mean=0.5, std=0.25), abs=1e-6)
    assert "black" in FILLS
    with pytest.raises(ValueError, match="std must be > 0"):
        VideoDropoutConfig(prob=1.0, fill="black", std=0.0)


def test_black_fill_sets_missing_frames_only():
    video = torch.randn(6, 4, 4)
    mask = np.array([0, 1, 0, 1, 1, 0], dtype=bool)
    out = apply_missing(video, mask, "black")
    assert torch.all(out[torch.from_numpy(mask)] == black_level())
    assert torch.equal(out[torch.from_numpy(~mask)], video[torch.from_numpy(~mask)])
    np.testing.assert_allclose(apply_missing(video.numpy(), mask, "black", 0.5, 0.25)[1], -2.0)
    batch_mask = torch.tensor([[True, False, False], [False, True, True]])
    b = apply_batch_missing(torch.randn(2, 3, 4, 4), batch_mask, "black")
    assert torch.all(b[batch_mask] == black_level()) and not torch.any(b[~batch_mask] == black_level())
    filled, m = simulate_missing(video, "utt1", 0.5, fill="black")
    assert m.sum() == 3 and torch.all(filled[torch.from_numpy(m)] == black_level())


def test_model_drops_to_black_frames_in_training_and_empty_video_is_black():
    m = model(video_dropout=dict(prob=1.0, rate=0.5, pattern="random", fill="black")).train()
    seen = {}
    m.video_frontend.register_forward_pre_hook(lambda mod, args: seen.__setitem__("video", args[0].clone()))
    torch.manual_seed(0)
    b = batch()
    m(**b)
    frames = seen["video"].flatten(2)
    black = (frames == black_level()).all(dim=2)
    assert black[0].sum() == round(0.5 * 25) and black[1, :20].sum() == 10  # dropped frames, per utterance
    assert torch.equal(frames[~black], b["video"][:, : frames.size(1)].flatten(2)[~black])
    video, presence = m.empty_video(b["speech"], b["speech_lengths"])
    assert torch.all(video == black_level()) and presence.missing[0].all() and presence.absent.all()
    assert torch.all(model().empty_video(b["speech"], b["speech_lengths"])[0] == 0)  # default: zeros
