"""Batch collation for AVSR: ESPnet's CommonCollateFn with video checks.

CommonCollateFn already pads every array along its first axis and emits ``<name>_lengths``
(so ``video`` -> ``video`` (B, T, H, W) + ``video_lengths``); this adds a clear error when
the ROI sizes of a batch disagree, instead of a deep stack trace in ``pad_list``.

A zero-length video is the dump's "no video at all" marker (``make_dump --no_roi mark``
keeps evaluation utterances whose face was never found). It becomes zero frames (the
missing-frame fill) as long as the audio, flagged in ``video_missing`` (B, T) bool, so the
model decodes the utterance as video entirely missing (and MS-Adapters switch on). Which
frames exist is ``VideoPresence``'s to say (``data/presence.py``): the flags are its
``from_absent`` reading of the marker.
Every batch with video carries ``video_missing`` (all False without markers): ESPnet's
collect_stats lists the keys of one batch per job and expects them in all.
"""

from __future__ import annotations

from typing import Collection, Dict, List, Tuple

import numpy as np
import torch

from espnet2.train.collate_fn import CommonCollateFn

from espnet_avsr.common.timing import SAMPLES_PER_FRAME
from espnet_avsr.data.presence import VideoPresence, is_no_video_marker


class AVCollateFn(CommonCollateFn):
    """CommonCollateFn(float_pad_value=0, int_pad_value=-1) + per-frame shape checks + absent video."""

    def __init__(self, video_name: str = "video", speech_name: str = "speech", frame_samples: int = SAMPLES_PER_FRAME):
        super().__init__(float_pad_value=0.0, int_pad_value=-1)
        self.video_name = video_name
        self.speech_name = speech_name
        self.frame_samples = frame_samples

    def absent_as_missing(self, uid: str, d: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """A (0, H, W) video -> zeros with one frame per 40 ms of audio (see module doc)."""
        if self.speech_name not in d:
            raise ValueError(
                f"{uid}: '{self.video_name}' has no frames (the dump's no-video marker) and there is no "
                f"'{self.speech_name}' to give the missing video a length"
            )
        video = d[self.video_name]
        frames = max(1, int(round(d[self.speech_name].shape[0] / self.frame_samples)))
        return {**d, self.video_name: np.zeros((frames, *video.shape[1:]), dtype=video.dtype)}

    def __call__(
        self, data: Collection[Tuple[str, Dict[str, np.ndarray]]]
    ) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        shapes = {uid: d[self.video_name].shape[1:] for uid, d in data if self.video_name in d}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"video frames differ in size within a batch: {shapes}")
        absent = [self.video_name in d and is_no_video_marker(d[self.video_name]) for _, d in data]
        data = [(uid, self.absent_as_missing(uid, d) if gone else d) for (uid, d), gone in zip(data, absent)]
        uids, batch = super().__call__(data)
        if self.video_name not in batch:
            return uids, batch
        presence = VideoPresence.from_absent(batch[f"{self.video_name}_lengths"], torch.tensor(absent))
        batch[f"{self.video_name}_missing"] = presence.missing
        return uids, batch
