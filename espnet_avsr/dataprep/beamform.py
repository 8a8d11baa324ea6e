"""STFT-domain beamformers for the far/middle microphone arrays.

Delay-and-sum steers with GCC-PHAT time differences of arrival; MVDR is the
Souden (reference-channel, no steering vector) form from speech and noise
spatial covariances, where noise frames come from low energy or from the oracle
activity in `segments`. Arrays are `(D, T, F)` complex STFTs (channels, frames,
bins) as produced by `nara_wpe.utils.stft`.
"""
from typing import Optional

import numpy as np


def gcc_phat_delays(X: np.ndarray, n_fft: int, max_delay: float, ref: int = 0, upsample: int = 8) -> np.ndarray:
    """Delay of each channel relative to `ref` in samples (positive = arrives later).

    The PHAT-weighted cross-spectrum, averaged over frames, is turned into a
    cross-correlation with `upsample`-times finer lag resolution and its peak is
    searched within +-max_delay samples.
    """
    D = X.shape[0]
    cross = np.einsum("dtf,tf->df", X, np.conj(X[ref]))
    cross /= np.maximum(np.abs(cross), 1e-12)
    n = n_fft * upsample
    cc = np.fft.irfft(cross, n=n, axis=-1)  # (D, n), lag k at index k*upsample
    max_lag = int(np.ceil(max_delay * upsample))
    lags = np.arange(-max_lag, max_lag + 1)
    window = cc[:, lags % n]
    delays = lags[np.argmax(window, axis=-1)] / upsample
    delays[ref] = 0.0
    return delays.astype(np.float64)[:D]


def steer(n_fft: int, delays: np.ndarray) -> np.ndarray:
    """Phase factors `(D, F)` that undo per-channel delays (in samples)."""
    k = np.arange(n_fft // 2 + 1)
    return np.exp(2j * np.pi * np.outer(delays, k) / n_fft)


def delay_and_sum(X: np.ndarray, delays: np.ndarray, n_fft: int) -> np.ndarray:
    """Align channels by `delays` and average: `(D, T, F) -> (T, F)`."""
    return np.mean(X * steer(n_fft, delays)[:, None, :], axis=0)


def low_energy_frames(X: np.ndarray, quantile: float = 0.2) -> np.ndarray:
    """Boolean `(T,)`: frames whose total energy is in the lowest `quantile` (noise estimate)."""
    energy = np.sum(np.abs(X) ** 2, axis=(0, 2))
    return energy <= np.quantile(energy, quantile)


def spatial_covariance(X: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """`(F, D, D)` covariance over the selected frames."""
    Xs = X[:, frames, :]
    n = max(int(Xs.shape[1]), 1)
    return np.einsum("dtf,etf->fde", Xs, np.conj(Xs)) / n


def mvdr_souden(
    X: np.ndarray,
    noise_frames: np.ndarray,
    speech_frames: Optional[np.ndarray] = None,
    ref: int = 0,
    diag_load: float = 1e-3,
) -> np.ndarray:
    """Souden MVDR: w = (Pn^-1 Ps) u / tr(Pn^-1 Ps); returns `(T, F)`.

    Ps = P(speech frames) - Pn, kept positive semidefinite by clipping its
    eigenvalues; Pn gets relative diagonal loading for stability.
    """
    D = X.shape[0]
    if speech_frames is None:
        speech_frames = ~noise_frames
    if not noise_frames.any() or not speech_frames.any():
        return X[ref]
    Pn = spatial_covariance(X, noise_frames)
    Px = spatial_covariance(X, speech_frames)
    eye = np.eye(D)[None]
    load = diag_load * np.real(np.trace(Pn, axis1=1, axis2=2))[:, None, None] / D + 1e-10
    Pn = Pn + load * eye
    Ps = Px - Pn
    w_eig, v_eig = np.linalg.eigh(Ps)
    Ps = np.einsum("fde,fe,fge->fdg", v_eig, np.maximum(w_eig, 0.0), np.conj(v_eig))
    num = np.linalg.solve(Pn, Ps)  # (F, D, D)
    tr = np.real(np.trace(num, axis1=1, axis2=2))
    w = num[:, :, ref] / np.maximum(tr, 1e-10)[:, None]  # (F, D)
    return np.einsum("fd,dtf->tf", np.conj(w), X)
