"""Batch collation for AVSR: ESPnet's CommonCollateFn with video checks.

CommonCollateFn already pads every array along its first axis and emits ``<name>_lengths``
(so ``video`` -> ``video`` (B, T, H, W) + ``video_lengths``); this adds a clear error when
the ROI sizes of a batch disagree, instead of a deep stack trace in ``pad_list``.
"""

from __future__ import annotations

from typing import Collection, Dict, List, Tuple

import numpy as np
import torch

from espnet2.train.collate_fn import CommonCollateFn


class AVCollateFn(CommonCollateFn):
    """CommonCollateFn(float_pad_value=0, int_pad_value=-1) + per-frame shape checks."""

    def __init__(self, video_name: str = "video"):
        super().__init__(float_pad_value=0.0, int_pad_value=-1)
        self.video_name = video_name

    def __call__(
        self, data: Collection[Tuple[str, Dict[str, np.ndarray]]]
    ) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        shapes = {uid: d[self.video_name].shape[1:] for uid, d in data if self.video_name in d}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"video frames differ in size within a batch: {shapes}")
        return super().__call__(data)
