#!/usr/bin/env python3
"""Real-time factor of the far-field front-end (WPE + delay-and-sum / MVDR), streamed.

Simulates a reverberant 6-mic linear array session with pyroomacoustics (speech-
like source, diffuse-ish noise), writes it as 6 wavs and times
`enhance_recording` per method; also prints the correlation with the dry source
as a sanity check of the enhancement and the peak RSS.

    tools/venv/bin/python bench/bench_frontend.py --seconds 60
"""
import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from espnet_avsr.dataprep.enhance import FrontendConfig, enhance_recording  # noqa: E402

SR = 16000


def speech_like(n: int, rng) -> np.ndarray:
    from scipy.signal import lfilter

    env = np.zeros(n)
    t = 0
    while t < n:
        length = int(rng.uniform(0.1, 0.3) * SR)
        seg = np.hanning(length)[: n - t]
        env[t : t + len(seg)] = seg
        t += length + int(rng.uniform(0.02, 0.4) * SR)
    x = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n) * env)
    return x / np.abs(x).max()


def simulate(seconds: float, seed: int = 0):
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    src = speech_like(n, rng)
    e_abs, max_order = pra.inverse_sabine(0.5, [6.0, 5.0, 3.0])
    room = pra.ShoeBox([6.0, 5.0, 3.0], fs=SR, materials=pra.Material(e_abs), max_order=max_order)
    room.add_source([2.0, 3.5, 1.2], signal=src)
    mics = np.array([[3.0 + 0.04 * i - 0.1, 1.0, 1.5] for i in range(6)]).T  # 6 mics, 4 cm spacing
    room.add_microphone_array(mics)
    room.simulate()
    x = room.mic_array.signals[:, :n]
    x = x + 0.01 * np.std(x) * rng.standard_normal(x.shape)
    return src, x / np.abs(x).max() * 0.5


def corr_aligned(y: np.ndarray, src: np.ndarray) -> float:
    from scipy.signal import correlate

    c = correlate(y[: 5 * SR], src[: 5 * SR], mode="full", method="fft")
    lag = int(np.argmax(np.abs(c))) - (5 * SR - 1)
    a, b = (y[lag:], src[: len(y) - lag]) if lag >= 0 else (y[: lag], src[-lag:])
    m = min(len(a), len(b))
    return float(abs(np.dot(a[:m], b[:m])) / np.linalg.norm(a[:m]) / np.linalg.norm(b[:m]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--block_s", type=float, default=30.0)
    ap.add_argument("--methods", nargs="+", default=["ds", "wpe_ds", "wpe_mvdr"])
    args = ap.parse_args()
    t0 = time.perf_counter()
    src, x = simulate(args.seconds)
    print(f"simulated {x.shape[0]} ch x {args.seconds:.0f} s in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for c in range(x.shape[0]):
            p = Path(tmp) / f"R01_S001002_C01_I0_Far_{c + 1}.wav"
            sf.write(str(p), x[c].astype(np.float32), SR, subtype="PCM_16")
            paths.append(p)
        print(f"channel 1 corr. with dry source: {corr_aligned(x[0], src):.3f}")
        print(f"{'method':<12}{'seconds':>9}{'RTF':>8}{'corr':>8}")
        for m in args.methods:
            out = Path(tmp) / f"out_{m}.wav"
            t0 = time.perf_counter()
            enhance_recording(paths, out, FrontendConfig(method=m, block_s=args.block_s))
            dt = time.perf_counter() - t0
            y, _ = sf.read(str(out))
            print(f"{m:<12}{dt:>9.2f}{dt / args.seconds:>8.3f}{corr_aligned(y, src):>8.3f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:.0f} MiB (block {args.block_s:.0f} s, 6 channels)")


if __name__ == "__main__":
    main()
