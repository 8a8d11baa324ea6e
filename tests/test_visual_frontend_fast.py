"""The fast visual front-end path (2D stem, channels_last, eval-time conv+BN folding)
computes what the plain modules compute: outputs, gradients and batch-norm statistics.
In float64, so a tight tolerance separates a wrong formula from summation order."""

from __future__ import annotations

import copy

import pytest
import torch

from espnet.nets.pytorch_backend.nets_utils import make_pad_mask

from espnet_avsr.models.visual_frontend import ResNet18VideoFrontend


def reference_forward(fe: ResNet18VideoFrontend, video: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The front-end as plain module calls: Conv3d stem, transpose to frames, unfused blocks."""
    b, t = video.shape[:2]
    x = fe.stem(video.unsqueeze(1))
    x = x.transpose(1, 2).reshape(b * t, x.shape[1], *x.shape[3:])
    valid = (~make_pad_mask(lengths, maxlen=t)).reshape(-1)

    def block(m, y):
        skip = y if m.downsample is None else m.downsample(y)
        z = m.act(m.bn1(m.conv1(y)))
        return m.act(m.bn2(m.conv2(z)) + skip)

    def trunk(y):
        for stage in fe.trunk.stages:
            for m in stage:
                y = block(m, y)
        return fe.trunk.pool(y).flatten(1)

    feats = x.new_zeros(b * t, fe.trunk.out_channels)
    feats[valid] = trunk(x[valid])
    return fe.proj(feats.view(b, t, -1))


def _pair(channels_last: bool):
    torch.manual_seed(0)
    fe = ResNet18VideoFrontend(output_size=16, width=4, channels_last=channels_last).double()
    with torch.no_grad():  # non-trivial running statistics and affine parameters for eval
        for m in fe.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return fe, copy.deepcopy(fe)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("lengths", [[9, 9], [9, 6]])
def test_train_step_matches_plain_modules(channels_last, lengths):
    fast, ref = _pair(channels_last)
    fast.train(), ref.train()
    video = torch.randn(2, 9, 88, 88, dtype=torch.float64)
    lens = torch.tensor(lengths)
    y_fast, _ = fast(video, lens)
    y_ref = reference_forward(ref, video, lens)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-9, atol=1e-9)
    g = torch.randn_like(y_ref)
    (y_fast * g).sum().backward()
    (y_ref * g).sum().backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-9, msg=lambda m: f"{name}: {m}")
    for (name, b), c in zip(fast.named_buffers(), ref.buffers()):
        torch.testing.assert_close(b, c, rtol=1e-9, atol=1e-9, msg=lambda m: f"{name}: {m}")
    assert int(fast.stem[1].num_batches_tracked) == 1


def test_eval_folds_batch_norm_into_the_convs():
    fast, ref = _pair(True)
    fast.eval(), ref.eval()
    video = torch.randn(2, 7, 88, 88, dtype=torch.float64)
    lens = torch.tensor([7, 5])
    with torch.no_grad():
        y_fast, _ = fast(video, lens)
        y_ref = reference_forward(ref, video, lens)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-9, atol=1e-9)
    # frozen statistics: eval changes no buffer
    for b, c in zip(fast.buffers(), ref.buffers()):
        assert torch.equal(b, c)


def test_checkpoint_is_layout_independent():
    """The layout is not in the checkpoint: an NHWC front-end's weights load into an NCHW one."""
    fast, _ = _pair(True)
    plain = ResNet18VideoFrontend(output_size=16, width=4, channels_last=False).double()
    plain.load_state_dict(fast.state_dict(), strict=True)
    fast.eval(), plain.eval()
    video = torch.randn(1, 5, 88, 88, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fast(video, torch.tensor([5]))[0], plain(video, torch.tensor([5]))[0])


@pytest.mark.parametrize("shape", [(3, 4, 44, 44), (2, 3, 21, 17)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_strided_max_pool_equals_max_pool2d(shape, channels_last):
    """Decoding's max pool (no gradients) returns torch's values exactly, plateaus included."""
    from espnet_avsr.models.visual_frontend import strided_max_pool2d

    x = torch.randn(*shape)
    x[0, :, 3:9, 2:12] = 0.25  # a constant region (a filled frame): ties everywhere
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(strided_max_pool2d(x, (3, 3), (2, 2), (1, 1)), torch.nn.functional.max_pool2d(x, 3, 2, 1))
