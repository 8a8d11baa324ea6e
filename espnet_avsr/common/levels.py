"""SNR arithmetic shared by the corpus generator and the test-noise mixer.

Why one home: the generator's recorded per-utterance SNRs and the mixer's target SNRs are
compared against each other (calibration, ``cer_by_snr``); both must turn powers into
decibels and decibels into gains the same way. How each side measures the powers (active
speech frames, array channel 0) stays with it.
"""
from __future__ import annotations

import numpy as np


def snr_db(signal_power: float, noise_power: float) -> float:
    """``10 log10(signal / noise)`` in dB (a numpy float, as the callers' arithmetic expects)."""
    return 10 * np.log10(signal_power / noise_power)


def noise_gain(signal_power: float, noise_power: float, target_db: float) -> float:
    """Amplitude gain for the noise so that signal power / scaled-noise power is ``target_db``."""
    return float(np.sqrt(signal_power / (noise_power * 10 ** (target_db / 10))))
