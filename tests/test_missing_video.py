"""Missing-video simulation: exact counts, patterns, reproducibility, fills, batch padding."""

import numpy as np
import pytest
import torch

from espnet_avsr.data.missing_video import (
    VideoDropoutConfig,
    apply_batch_missing,
    apply_missing,
    batch_dropout_mask,
    missing_mask,
    simulate_missing,
    utterance_rng,
)


@pytest.mark.parametrize("pattern", ["random", "segment"])
@pytest.mark.parametrize("num_frames,rate", [(100, 0.25), (100, 0.5), (37, 0.75), (50, 1.0), (11, 0.5), (1, 0.4)])
def test_frame_patterns_drop_exact_fraction(pattern, num_frames, rate):
    for k in range(5):
        mask = missing_mask(num_frames, rate, pattern, utterance_rng(f"u{k}", 3))
        assert mask.dtype == bool and mask.shape == (num_frames,)
        assert mask.sum() == int(round(rate * num_frames))


def test_rate_zero_drops_nothing():
    for pattern in ("random", "segment", "utterance"):
        assert not missing_mask(40, 0.0, pattern, utterance_rng("u", 0)).any()


def test_segment_is_contiguous_and_start_varies():
    starts = set()
    for k in range(30):
        mask = missing_mask(60, 0.3, "segment", utterance_rng(f"utt{k}", 0))
        idx = np.nonzero(mask)[0]
        assert len(idx) == 18
        assert np.all(np.diff(idx) == 1)
        starts.add(int(idx[0]))
    assert len(starts) > 5


def test_utterance_pattern_all_or_nothing_with_expected_rate():
    n_utts, rate = 3000, 0.3
    dropped = 0
    for k in range(n_utts):
        mask = missing_mask(20, rate, "utterance", utterance_rng(f"S001_R01_S001002_C01_I0_{k:06d}-{k + 1:06d}", 7))
        assert mask.all() or not mask.any()
        dropped += bool(mask.all())
    # binomial sd = sqrt(0.3*0.7/3000) ~ 0.0084; 4 sd tolerance
    assert abs(dropped / n_utts - rate) < 0.034
    assert missing_mask(20, 1.0, "utterance", utterance_rng("x", 0)).all()


def test_reproducible_per_seed_and_utt_and_differs_across_utts():
    video = np.arange(80 * 4, dtype=np.float32).reshape(80, 2, 2)
    _, m1 = simulate_missing(video, "uttA", 0.5, "random", "zeros", seed=1)
    _, m2 = simulate_missing(video, "uttA", 0.5, "random", "zeros", seed=1)
    _, m3 = simulate_missing(video, "uttB", 0.5, "random", "zeros", seed=1)
    _, m4 = simulate_missing(video, "uttA", 0.5, "random", "zeros", seed=2)
    assert np.array_equal(m1, m2)
    assert not np.array_equal(m1, m3)
    assert not np.array_equal(m1, m4)


def test_zero_fill_and_repeat_last_values():
    video = np.arange(1, 7, dtype=np.float32)[:, None, None] * np.ones((6, 2, 2), dtype=np.float32)
    mask = np.array([True, False, True, True, False, True])
    zeros = apply_missing(video, mask, "zeros")
    assert zeros[:, 0, 0].tolist() == [0, 2, 0, 0, 5, 0]
    rep = apply_missing(video, mask, "repeat_last")
    # frame 0 has no earlier present frame -> zeros; 2,3 repeat frame 1; 5 repeats frame 4
    assert rep[:, 0, 0].tolist() == [0, 2, 2, 2, 5, 5]
    assert np.array_equal(video[:, 0, 0], np.arange(1, 7))  # input untouched
    t_rep = apply_missing(torch.from_numpy(video), torch.from_numpy(mask), "repeat_last")
    assert isinstance(t_rep, torch.Tensor)
    assert np.array_equal(t_rep.numpy(), rep)


def test_simulate_missing_applies_its_mask():
    video = np.random.default_rng(0).integers(1, 255, size=(40, 3, 3)).astype(np.uint8)
    out, mask = simulate_missing(video, "u1", 0.25, "segment", "zeros", seed=0)
    assert out.dtype == np.uint8
    assert (out[mask] == 0).all() and np.array_equal(out[~mask], video[~mask])


def test_bad_arguments_raise_clear_errors():
    rng = utterance_rng("u", 0)
    with pytest.raises(ValueError, match="pattern"):
        missing_mask(10, 0.5, "blocks", rng)
    with pytest.raises(ValueError, match="rate"):
        missing_mask(10, 1.5, "random", rng)
    with pytest.raises(ValueError, match="fill"):
        apply_missing(np.zeros((3, 2)), np.zeros(3, bool), "noise")
    with pytest.raises(ValueError, match="frames"):
        apply_missing(np.zeros((3, 2)), np.zeros(4, bool), "zeros")
    with pytest.raises(ValueError, match="prob"):
        VideoDropoutConfig(prob=2.0)


def test_batch_dropout_never_marks_padding():
    lengths = [10, 4, 7, 2]
    cfg = VideoDropoutConfig(prob=1.0, rate=(0.3, 1.0), pattern="random", fill="zeros")
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = batch_dropout_mask(lengths, 12, cfg, rng)
        assert mask.shape == (4, 12)
        for b, n in enumerate(lengths):
            assert not mask[b, n:].any()
            assert mask[b, :n].any()  # rate >= 0.3 of >= 2 frames always drops one
    none = batch_dropout_mask(lengths, 12, VideoDropoutConfig(prob=0.0), rng)
    assert not none.any()


def test_apply_batch_missing_matches_per_sample():
    video = torch.arange(1, 2 * 5 + 1, dtype=torch.float32).view(2, 5, 1, 1).expand(2, 5, 2, 2).contiguous()
    mask = torch.tensor([[False, True, True, False, False], [True, False, False, True, False]])
    z = apply_batch_missing(video, mask, "zeros")
    assert z[0, :, 0, 0].tolist() == [1, 0, 0, 4, 5]
    r = apply_batch_missing(video, mask, "repeat_last")
    assert r[0, :, 0, 0].tolist() == [1, 1, 1, 4, 5]
    assert r[1, :, 0, 0].tolist() == [0, 7, 8, 8, 10]
    assert apply_batch_missing(video, torch.zeros_like(mask), "zeros") is video
