"""Visual front-end: Conv3D stem + ResNet-18 trunk over grey lip ROIs, one vector per frame.

The lip-reading front-end of the paper's figure (and of the MISP baselines): a 5x7x7
spatio-temporal convolution looks at short lip motion, then a 2D ResNet-18 (written here:
torchvision is not a dependency) embeds every frame separately, global average pooling
gives an ``8 * width``-d vector (512 at full width) and a linear layer maps it to
``d_model`` so the video stream can meet the audio stream at 25 fps.

``width`` scales all channels (64 = the standard ResNet-18); small widths keep the CPU
demo fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Tuple

import torch
from torch import nn

from espnet.nets.pytorch_backend.nets_utils import make_pad_mask


class AbsVideoFrontend(nn.Module, ABC):
    """(B, T, H, W) normalised grey frames -> (B, T, D) per-frame features."""

    @abstractmethod
    def output_size(self) -> int: ...

    @abstractmethod
    def forward(self, video: torch.Tensor, video_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]: ...


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
        skip = x if self.downsample is None else self.downsample(x)
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
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
    """

    def __init__(self, output_size: int = 256, width: int = 64, roi_size: int = 88, dropout_rate: float = 0.0):
        super().__init__()
        self.roi_size = roi_size
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

    def forward(self, video: torch.Tensor, video_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """video: (B, T, H, W) float; padded frames never reach the 2D trunk's batch norm."""
        if video.dim() != 4:
            raise ValueError(f"video must be (B, T, H, W), got shape {tuple(video.shape)}")
        b, t = video.shape[:2]
        x = self.stem(video.unsqueeze(1))  # (B, C, T, H', W')
        x = x.transpose(1, 2).reshape(b * t, *x.shape[1:2], *x.shape[3:])  # (B*T, C, H', W')
        valid = (~make_pad_mask(video_lengths, maxlen=t)).to(video.device).reshape(-1)
        feats = x.new_zeros(b * t, self.trunk.out_channels)
        if bool(valid.any()):
            feats[valid] = self.trunk(x[valid])
        return self.proj(feats.view(b, t, -1)), video_lengths
