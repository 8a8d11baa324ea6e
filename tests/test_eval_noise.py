"""Zero-shot noise mixing: SNR accuracy, determinism, dump-dir copy, resume."""

import numpy as np
import pytest
import soundfile as sf

from espnet_avsr.bin import mix_noise
from espnet_avsr.common.experiment import SetInfo, clean_set_info, read_set_info, write_set_info
from espnet_avsr.dataprep.noise import (
    MixConfig,
    active_speech_power,
    measure_snr,
    mix_at_snr,
    mix_dump_dir,
    read_mix_info,
)

SR = 16000


def _speechlike(rng, seconds=1.5, level=0.2):
    """Syllable-like bursts (modulated harmonics) separated by near-silent pauses."""
    n = int(SR * seconds)
    t = np.arange(n) / SR
    env = np.zeros(n)
    pos = int(0.1 * SR)
    while pos < n - 2000:
        length = int(rng.uniform(0.12, 0.25) * SR)
        env[pos : pos + length] = np.hanning(length)[: max(0, min(length, n - pos))]
        pos += length + int(rng.uniform(0.05, 0.3) * SR)
    f0 = rng.uniform(100, 220)
    voiced = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    return level * env * voiced / np.abs(voiced).max() + 1e-4 * rng.standard_normal(n)


def test_active_power_ignores_pauses():
    tone = 0.5 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)
    with_pause = np.concatenate([tone, np.zeros(SR)])
    assert active_speech_power(with_pause, SR) == pytest.approx(0.125, rel=0.02)
    assert np.mean(with_pause**2) == pytest.approx(0.0625, rel=0.02)


@pytest.mark.parametrize("snr", [10.0, 0.0, -2.5, -5.0])
def test_mix_at_snr_hits_target(snr):
    rng = np.random.default_rng(1)
    speech = _speechlike(rng)
    noise = rng.standard_normal(len(speech))
    mix, scaled, info = mix_at_snr(speech, noise, snr, SR)
    assert abs(measure_snr(speech * info.scale, scaled, SR) - snr) < 0.1
    assert abs(info.snr_measured - snr) < 0.1
    assert np.allclose(mix, info.scale * speech + scaled)
    assert np.abs(mix).max() <= 0.99 + 1e-9


def test_mix_rescales_instead_of_clipping():
    rng = np.random.default_rng(2)
    speech = _speechlike(rng, level=0.9)
    mix, scaled, info = mix_at_snr(speech, rng.standard_normal(len(speech)), -5.0, SR)
    assert info.scale < 1.0
    assert np.abs(mix).max() == pytest.approx(0.99)
    assert abs(measure_snr(speech * info.scale, scaled, SR) + 5.0) < 0.1


def test_silent_speech_gets_no_noise():
    mix, scaled, info = mix_at_snr(np.zeros(1000), np.ones(1000), 0.0, SR)
    assert info.silent and not scaled.any() and not mix.any()


def _make_dump(root, rng, n_utts=4, spk_prefix="S001"):
    root.mkdir(parents=True)
    (root / "wavs").mkdir()
    scp, text, roi, u2s, u2n = [], [], [], [], []
    for i in range(n_utts):
        utt = f"{spk_prefix}_R01_S001002_C01_I0_{i * 200:06d}-{i * 200 + 150:06d}"
        spk = spk_prefix if spk_prefix != "BAB" else f"B{i % 3}"
        x = _speechlike(rng, seconds=rng.uniform(1.0, 1.6))
        path = root / "wavs" / f"{utt}.wav"
        sf.write(path, x, SR, subtype="PCM_16")
        scp.append(f"{utt} {path}\n")
        text.append(f"{utt} 今天天气很好\n")
        roi.append(f"{utt} /some/roi/{utt}.npy\n")
        u2s.append(f"{utt} {spk}\n")
        u2n.append(f"{utt} {len(x)}\n")
    for name, lines in (("wav.scp", scp), ("text", text), ("roi.scp", roi), ("utt2spk", u2s), ("utt2num_samples", u2n)):
        (root / name).write_text("".join(lines), encoding="utf-8")
    (root / "feats_type").write_text("raw\n")
    return root


@pytest.fixture()
def dumps(tmp_path):
    rng = np.random.default_rng(5)
    data = _make_dump(tmp_path / "eval_far", rng, n_utts=4)
    write_set_info(data, clean_set_info("eval_far"))  # what avsr.sh stage 10 records for a test set
    babble = _make_dump(tmp_path / "dev_near", rng, n_utts=6, spk_prefix="BAB")
    return data, babble


def _read_scp(path):
    return dict(line.split(maxsplit=1) for line in path.read_text(encoding="utf-8").splitlines())


def test_mix_dump_dir_babble_end_to_end(dumps, tmp_path):
    data, babble = dumps
    out = tmp_path / "eval_far_babble_snr0"
    cfg = MixConfig(snr=0.0, noise="babble", seed=0, babble_source=str(babble), num_talkers=3)
    summary = mix_dump_dir(data, out, cfg, progress=False)
    assert summary["mixed"] == 4 and summary["resumed"] == 0
    for name in ("text", "roi.scp", "utt2spk", "utt2num_samples", "feats_type"):
        assert (out / name).read_bytes() == (data / name).read_bytes()
    # the copy records what it is: the source's test set and field, with this noise and SNR
    assert read_set_info(out) == SetInfo(test_set="eval_far", field="far", noise="babble", snr=0.0)
    assert read_set_info(data) == SetInfo(test_set="eval_far", field="far")  # the source is left as it was
    src, new = _read_scp(data / "wav.scp"), _read_scp(out / "wav.scp")
    assert set(src) == set(new)
    info = read_mix_info(out / "mix_info")
    mixes = {}
    for utt in src:
        assert new[utt].startswith(str(out))
        speech, _ = sf.read(src[utt])
        mix, rate = sf.read(new[utt])
        assert rate == SR and len(mix) == len(speech)
        scale = float(info[utt]["scale"])
        residual = mix - scale * speech  # the noise that was added (plus 16-bit rounding)
        assert abs(measure_snr(scale * speech, residual, SR) - 0.0) < 0.1
        assert abs(float(info[utt]["snr_measured"])) < 0.1
        assert len(info[utt]["sources"].split(",")) >= 3
        mixes[utt] = residual
    # different utterances get different noise
    a, b = list(mixes.values())[:2]
    n = min(len(a), len(b))
    assert not np.allclose(a[:n], b[:n])

    # deterministic: a second run elsewhere writes identical audio
    out2 = tmp_path / "again"
    mix_dump_dir(data, out2, cfg, progress=False)
    for utt in src:
        assert np.array_equal(sf.read(_read_scp(out2 / "wav.scp")[utt])[0], sf.read(new[utt])[0])

    # resumable: only the removed utterance is mixed again, with the same result
    victim = sorted(src)[1]
    before = sf.read(new[victim])[0]
    (out / "data" / f"{victim}.wav").unlink()
    summary = mix_dump_dir(data, out, cfg, progress=False)
    assert (summary["mixed"], summary["resumed"]) == (1, 3)
    assert np.array_equal(sf.read(new[victim])[0], before)

    # other settings into the same dir are refused
    with pytest.raises(ValueError, match="other settings"):
        mix_dump_dir(data, out, MixConfig(snr=-5.0, noise="babble", seed=0, babble_source=str(babble), num_talkers=3), progress=False)


def test_mix_noise_cli_with_noise_file(dumps, tmp_path):
    data, _ = dumps
    rng = np.random.default_rng(9)
    noise_path = tmp_path / "tv.wav"
    sf.write(noise_path, 0.1 * rng.standard_normal(SR // 2), SR)  # shorter than utts: looped
    out = tmp_path / "eval_far_tv_snr5"
    summary = mix_noise.main(["--data", str(data), "--out", str(out), "--snr", "5", "--noise", "file",
                              "--noise_file", str(noise_path), "--seed", "3", "--log_level", "ERROR"])
    assert summary["mixed"] == 4
    assert read_set_info(out) == SetInfo(test_set="eval_far", field="far", noise="file", snr=5.0)
    for utt, row in read_mix_info(out / "mix_info").items():
        assert abs(float(row["snr_measured"]) - 5.0) < 0.1
    with pytest.raises(ValueError, match="noise_file"):
        mix_noise.main(["--data", str(data), "--out", str(tmp_path / "x"), "--snr", "0", "--noise", "file"])


def test_mix_noise_bad_source_names_file(dumps, tmp_path):
    data, _ = dumps
    with pytest.raises(ValueError, match="missing: babble source not found"):
        mix_dump_dir(data, tmp_path / "o", MixConfig(snr=0, noise="babble", babble_source=str(tmp_path / "missing")), progress=False)


def test_mix_noise_needs_the_source_sets_facts(dumps, tmp_path):
    """The noisy copy's set.json comes from its source's: a dump without one is refused, naming the file."""
    data, babble = dumps
    (data / "set.json").unlink()
    cfg = MixConfig(snr=0.0, noise="babble", seed=0, babble_source=str(babble), num_talkers=3)
    with pytest.raises(ValueError, match=f"{data / 'set.json'}: missing"):
        mix_dump_dir(data, tmp_path / "o", cfg, progress=False)
    (data / "set.json").write_text('{"test_set": "eval_far", "field": "far", "noise": "none"}')
    with pytest.raises(ValueError, match="set.json: expected the keys"):
        mix_dump_dir(data, tmp_path / "o", cfg, progress=False)
    assert not (tmp_path / "o" / "set.json").exists()
