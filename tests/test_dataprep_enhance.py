"""Front-end: GCC-PHAT, WPE + delay-and-sum / MVDR, streaming, data-dir driver."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter

from espnet_avsr.bin import enhance_audio as enhance_cli
from espnet_avsr.dataprep.beamform import gcc_phat_delays
from espnet_avsr.dataprep.enhance import FrontendConfig, block_bounds, process_block, stream_enhance
from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import read_kv, write_kv
from nara_wpe.utils import stft

SR = 16000
DELAYS = (0, 3, 7, 11)


def speech_like(n: int, rng) -> np.ndarray:
    """Bursts of coloured noise with pauses: non-stationary like speech (WPE relies on it)."""
    env = np.zeros(n)
    t = 0
    while t < n:
        length = int(rng.uniform(0.1, 0.3) * SR)
        seg = np.hanning(length)[: n - t]
        env[t : t + len(seg)] = seg
        t += length + int(rng.uniform(0.02, 0.15) * SR)
    x = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n) * env)
    return x / np.abs(x).max()


def reverberant_array(seconds: float = 3.0, seed: int = 0, reverb: float = 0.06):
    """Dry source and a D-channel recording: per-channel delay + exponential reverberant tail."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    src = speech_like(n, rng)
    length = int(0.5 * SR)
    x = np.zeros((len(DELAYS), n))
    for c, d in enumerate(DELAYS):
        h = np.zeros(length)
        h[d] = 1.0
        tail = length - d - 40
        h[d + 40 :] = reverb * rng.standard_normal(tail) * np.exp(-6.9 * np.arange(tail) / (0.6 * SR))
        x[c] = np.convolve(src, h)[:n]
    return src, x + 1e-3 * rng.standard_normal(x.shape)


def corr(a, b):
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def test_gcc_phat_recovers_delays():
    rng = np.random.default_rng(1)
    src = speech_like(SR * 2, rng)
    x = np.stack([np.concatenate([np.zeros(d), src[: len(src) - d]]) for d in DELAYS])
    delays = gcc_phat_delays(stft(x, size=512, shift=128), 512, max_delay=16)
    np.testing.assert_allclose(delays, DELAYS, atol=0.2)


def test_block_bounds_cover_with_overlap():
    b = block_bounds(100, 40, 10)
    assert b[0] == (0, 40) and b[-1][1] == 100
    assert all(s2 == e1 - 10 for (_, e1), (s2, _) in zip(b, b[1:]))
    assert block_bounds(30, 40, 10) == [(0, 30)]


@pytest.mark.parametrize("method", ["wpe_ds", "wpe_mvdr"])
def test_wpe_beamforming_improves_over_channel_one(method):
    src, x = reverberant_array()
    y = process_block(x.copy(), FrontendConfig(method=method, iterations=3))
    assert y.shape == (x.shape[1],) and np.isfinite(y).all()
    base = corr(x[0], src)
    assert corr(y, src) > base + 0.15, (corr(y, src), base)


def test_streaming_equals_whole_for_ds():
    rng = np.random.default_rng(2)
    src = speech_like(SR * 4, rng)
    x = np.stack([np.concatenate([np.zeros(d), src[: len(src) - d]]) for d in DELAYS])
    x += 1e-3 * rng.standard_normal(x.shape)
    whole = process_block(x.copy(), FrontendConfig(method="ds"))
    cfg = FrontendConfig(method="ds", block_s=1.0, overlap_s=0.25)
    chunks = list(stream_enhance(lambda s, e: x[:, s:e].copy(), x.shape[1], cfg))
    streamed = np.concatenate(chunks)
    assert len(chunks) == 5 and streamed.shape == whole.shape
    assert np.max(np.abs(streamed - whole)) < 1e-2 * np.max(np.abs(whole))
    # and aligned DS of delayed copies is the source itself
    assert corr(whole[20:], src[20:]) > 0.99


def _array_dir(tmp_path: Path, seconds: float = 2.0):
    src, x = reverberant_array(seconds, seed=3)
    rec = "R01_S001002_C01_I0_Far"
    paths = []
    for c in range(x.shape[0]):
        p = tmp_path / "audio" / f"{rec}_{c + 1}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), (0.5 * x[c]).astype(np.float32), SR, subtype="PCM_16")
        paths.append(str(p))
    d = tmp_path / "data"
    u = "S001_R01_S001002_C01_I0_000020-000120"
    write_kv(d / "text", {u: "你好"})
    write_kv(d / "utt2spk", {u: "S001"})
    write_kv(d / "spk2utt", {"S001": u})
    write_kv(d / "segments", {u: f"{rec} 0.20 1.20"})
    write_kv(d / "wav.scp", {rec: paths[0]})
    write_kv(d / "channels.scp", {rec: " ".join(paths)})
    return d, rec, x.shape[1]


def test_enhance_data_dir_writes_and_resumes(tmp_path):
    d, rec, n = _array_dir(tmp_path)
    out = tmp_path / "enh"
    args = ["--data", str(d), "--out", str(out), "--method", "wpe_mvdr", "--iterations", "2",
            "--block_s", "1.0", "--overlap_s", "0.25", "--mvdr_activity", "oracle"]
    assert enhance_cli.main(args) == 0
    wav = out / f"{rec}.wav"
    y, sr = sf.read(str(wav))
    assert sr == SR and y.ndim == 1 and len(y) == n and np.isfinite(y).all() and np.abs(y).max() > 0.01
    assert read_kv(out / "data" / "wav.scp")[rec] == str(wav.resolve())
    assert (out / "data" / "segments").read_text() == (d / "segments").read_text()
    mtime = wav.stat().st_mtime_ns
    enhance_cli.main(args)
    assert wav.stat().st_mtime_ns == mtime
    assert json.loads((out / "data" / "enhance_report.json").read_text())["skipped_existing"] == 1
    # a truncated output (killed run) is redone
    sf.write(str(wav), y[:100], SR)
    enhance_cli.main(args)
    assert sf.info(str(wav)).frames == n


def test_enhance_missing_channel_names_file(tmp_path):
    d, rec, n = _array_dir(tmp_path)
    missing = read_kv(d / "channels.scp")[rec].split()[2]
    os.remove(missing)
    with pytest.raises(DataPrepError) as e:
        enhance_cli.main(["--data", str(d), "--out", str(tmp_path / "enh"), "--method", "ds"])
    assert missing in str(e.value)
