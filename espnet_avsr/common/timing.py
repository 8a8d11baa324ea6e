"""Audio/video timing and sizes shared by the generator, data prep, the models and tests.

Why one place: the 40 ms video frame is what lets audio and video meet after the
encoder's 4x subsampling (10 ms fbank hop x 4 = 40 ms = one 25 fps frame); every stage
that cuts, pads or checks a stream relies on the same numbers.
"""
from __future__ import annotations

SAMPLE_RATE = 16000            # Hz, every wav of the corpus and the dumps
VIDEO_FPS = 25                 # frames per second of every video and ROI track
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640 audio samples per 40 ms video frame
SUBSAMPLING = 4                # audio encoder frame rate reduction (two k=3, s=2 convs)
ROI_SIZE = 96                  # side of the dumped grey lip ROI (uint8 (T, 96, 96))
CROP_SIZE = 88                 # side of the crop the video front-end sees


def subsampled_length(feats_lengths):
    """Frames after the Conv2d (two k=3, s=2) subsampling, per utterance.

    Works on ints and integer tensors alike; by formula so it does not depend on how much
    padding a batch has.
    """
    return ((feats_lengths - 1) // 2 - 1) // 2
