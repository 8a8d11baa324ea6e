"""Visual front-end: Conv3D stem + ResNet-18 trunk over grey lip ROIs, one vector per frame.

The lip-reading front-end of the paper's figure (and of the MISP baselines): a 5x7x7
spatio-temporal convolution looks at short lip motion, then a 2D ResNet-18 (written here:
torchvision is not a dependency) embeds every frame separately, global average pooling
gives an ``8 * width``-d vector (512 at full width) and a linear layer maps it to
``d_model`` so the video stream can meet the audio stream at 25 fps.

``width`` scales all channels (64 = the standard ResNet-18); small widths keep the CPU
demo fast.

Speed (same maths, same parameter names and shapes as the plain modules):

* the 5x7x7 Conv3d (one input channel, temporal stride 1) runs as a Conv2d over the
  5 temporally shifted copies of every frame, its batch norm and the (1, 3, 3) max pool
  as 2D ops over (B*T) frames: no (B, C, T, H, W) layout, no transpose, no max_pool3d;
* ``channels_last``: the frames in NHWC, the layout oneDNN and cuDNN run fastest (about
  1.4x on the CPU for this front-end's forward + backward); the weights keep their layout;
* a strided 1x1 convolution (the downsampling skip) runs as subsampling + 1x1 conv: the
  same numbers, and it avoids a crash of oneDNN's NHWC backward for channel counts that
  are not a multiple of 8 (torch 2.11 CPU);
* in eval mode each conv + batch norm pair runs as one conv with the norm folded into its
  weights (legal only with frozen statistics, so never in training);
* without gradients (decoding, a frozen front-end) the stem's max pool is the maximum of
  strided slices (``strided_max_pool2d``): the same values, 2-4x faster than torch's CPU
  ``max_pool2d``, which also writes an index per output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from espnet.nets.pytorch_backend.nets_utils import make_pad_mask

from espnet_avsr.common.timing import CROP_SIZE


class AbsVideoFrontend(nn.Module, ABC):
    """(B, T, H, W) normalised grey frames -> (B, T, D) per-frame features."""

    @abstractmethod
    def output_size(self) -> int: ...

    @abstractmethod
    def forward(self, video: torch.Tensor, video_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]: ...


def fold_bn(weight: torch.Tensor, bias: Optional[torch.Tensor], bn: nn.modules.batchnorm._BatchNorm):
    """Conv weight and bias with an eval-mode batch norm folded in: bn(conv(x)) == conv'(x)."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    b = bn.bias - bn.running_mean * scale
    return w, (b if bias is None else b + bias * scale)


def conv_bn(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """bn(conv(x)); one folded conv when the norm uses its running statistics (eval)."""
    w, b, stride = conv.weight, conv.bias, conv.stride
    if conv.kernel_size == (1, 1) and conv.padding == (0, 0) and stride != (1, 1):
        x, stride = x[:, :, :: stride[0], :: stride[1]], (1, 1)  # 1x1 conv: subsample first
    if bn.training or not bn.track_running_stats or bn.running_var is None:
        return bn(F.conv2d(x, w, b, stride, conv.padding, conv.dilation, conv.groups))
    w, b = fold_bn(w, b, bn)
    return F.conv2d(x, w, b, stride, conv.padding, conv.dilation, conv.groups)


def strided_max_pool2d(x: torch.Tensor, kernel: Tuple[int, int], stride: Tuple[int, int],
                       padding: Tuple[int, int]) -> torch.Tensor:
    """``F.max_pool2d(x, kernel, stride, padding)`` (no dilation, no ceil mode) as elementwise
    maxima of strided slices: exact (a max picks a value), but not for gradients (ties)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    x = F.pad(x, (pw, pw, ph, ph), value=float("-inf"))
    ho, wo = (x.size(2) - kh) // sh + 1, (x.size(3) - kw) // sw + 1
    rows = x[:, :, 0 : sh * (ho - 1) + 1 : sh]
    for i in range(1, kh):
        rows = torch.maximum(rows, x[:, :, i : i + sh * (ho - 1) + 1 : sh])
    out = rows[..., 0 : sw * (wo - 1) + 1 : sw]
    for j in range(1, kw):
        out = torch.maximum(out, rows[..., j : j + sw * (wo - 1) + 1 : sw])
    return out


def batch_norm_any_dim(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """``bn`` (of any dimensionality) applied to x (N, C, ...): the statistics are per channel
    over every other dimension either way, so a BatchNorm3d's module serves a 2D layout."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_batch = bn.training or (bn.running_mean is None and bn.running_var is None)
    track = not bn.training or bn.track_running_stats
    return F.batch_norm(x, bn.running_mean if track else None, bn.running_var if track else None,
                        bn.weight, bn.bias, use_batch, factor, bn.eps)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with batch norm and an identity (or 1x1) skip."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else conv_bn(x, self.downsample[0], self.downsample[1])
        y = self.act(conv_bn(x, self.conv1, self.bn1))
        y = conv_bn(y, self.conv2, self.bn2)
        return self.act(y + skip)


class ResNet18Trunk(nn.Module):
    """The four stages of ResNet-18 ([2, 2, 2, 2] basic blocks) + global average pooling."""

    def __init__(self, in_ch: int, width: int = 64, blocks: Tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        stages = []
        ch = in_ch
        for i, n in enumerate(blocks):
            out = width * (2**i)
            layers = [BasicBlock(ch, out, stride=1 if i == 0 else 2)]
            layers += [BasicBlock(out, out) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            ch = out
        self.stages = nn.Sequential(*stages)
        self.out_channels = ch
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(x)).flatten(1)


class ResNet18VideoFrontend(AbsVideoFrontend):
    """Conv3D(5x7x7) + ResNet-18 per frame + linear to ``output_size``.

    Args:
        output_size: d_model of the encoder (the video stream width).
        width: channels of the first ResNet stage (64 = standard ResNet-18, 512-d output).
        roi_size: expected square ROI side (88 after cropping); used to synthesise an
            empty video when a caller gives none.
        channels_last: run the convolutions in NHWC (faster; the same numbers up to
            float rounding). False keeps PyTorch's default NCHW layout.
    """

    def __init__(
        self,
        output_size: int = 256,
        width: int = 64,
        roi_size: int = CROP_SIZE,
        dropout_rate: float = 0.0,
        channels_last: bool = True,
    ):
        super().__init__()
        self.roi_size = roi_size
        self.channels_last = channels_last
        self.stem = nn.Sequential(
            nn.Conv3d(1, width, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        self.trunk = ResNet18Trunk(width, width)
        self.proj = nn.Sequential(nn.Linear(self.trunk.out_channels, output_size), nn.Dropout(dropout_rate))
        self._output_size = output_size

    def output_size(self) -> int:
        return self._output_size

    def stem_frames(self, video: torch.Tensor) -> torch.Tensor:
        """The stem over (B, T, H, W) video as 2D ops: (B*T, C, H/4, W/4), frame-major.

        Equal to ``self.stem(video.unsqueeze(1))`` transposed to frames (test): the
        Conv3d's k temporal taps become k input channels of a Conv2d over the zero-padded,
        temporally shifted frames; batch norm statistics span the same (B, T, H, W) values.
        """
        conv, bn, act, pool = self.stem
        b, t, h, w = video.shape
        k, pad = conv.kernel_size[0], conv.padding[0]
        if conv.stride[0] != 1 or k != 2 * pad + 1 or conv.in_channels != 1:
            raise ValueError("the 2D stem needs a one-channel Conv3d with temporal stride 1 and 'same' padding")
        shifted = F.pad(video, (0, 0, 0, 0, pad, pad)).unfold(1, k, 1)  # (B, T, H, W, k)
        if self.channels_last:  # one copy straight into NHWC
            x = shifted.reshape(b * t, h, w, k).permute(0, 3, 1, 2)
        else:
            x = shifted.permute(0, 1, 4, 2, 3).reshape(b * t, k, h, w)
        weight = conv.weight.flatten(1, 2)  # (C, 1, k, kh, kw) -> (C, k, kh, kw)
        if self.training or bn.running_var is None:
            x = F.conv2d(x, weight, conv.bias, conv.stride[1:], conv.padding[1:])
            x = batch_norm_any_dim(x, bn)
        else:
            weight, bias = fold_bn(weight, conv.bias, bn)
            x = F.conv2d(x, weight, bias, conv.stride[1:], conv.padding[1:])
        # max pool before ReLU: the two commute (both monotone), and ReLU then sees 1/4 of the values
        pool_args = (pool.kernel_size[1:], pool.stride[1:], pool.padding[1:])
        if x.requires_grad or pool.dilation not in (1, (1, 1, 1)) or pool.ceil_mode:
            x = F.max_pool2d(x, *pool_args)
        else:
            x = strided_max_pool2d(x, *pool_args)
        return act(x)

    def forward(self, video: torch.Tensor, video_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """video: (B, T, H, W) float; padded frames never reach the 2D trunk's batch norm."""
        if video.dim() != 4:
            raise ValueError(f"video must be (B, T, H, W), got shape {tuple(video.shape)}")
        b, t = video.shape[:2]
        x = self.stem_frames(video)  # (B*T, C, H', W')
        valid = (~make_pad_mask(video_lengths, maxlen=t)).to(video.device).reshape(-1)
        if bool(valid.all()):  # no padding: no gather, no scatter
            feats = self.trunk(x)
        else:
            feats = x.new_zeros(b * t, self.trunk.out_channels)
            if bool(valid.any()):
                feats[valid] = self.trunk(x[valid])
        return self.proj(feats.view(b, t, -1)), video_lengths
