"""Dump, speed perturbation (audio + ROI lengths), token list, check_dump."""
import json

import numpy as np
import pytest
import soundfile as sf

from espnet_avsr.bin import check_dump as check_cli
from espnet_avsr.bin import make_dump as dump_cli
from espnet_avsr.bin import make_token_list as token_cli
from espnet_avsr.bin import speed_perturb as speed_cli
from espnet_avsr.dataprep.dump_check import check_dump
from espnet_avsr.common.kaldi_dir import read_kv
from espnet_avsr.dataprep.lip_roi import extract_lip_roi
from espnet_avsr.dataprep.prepare import prepare_misp_data
from espnet_avsr.dataprep.speed import change_speed, perturbed_length, roi_index_map
from espnet_avsr.dataprep.validate import validate_dir
from test_dataprep_fixtures import FAR_LIP, SESSION, make_corpus, write_detection

U017 = "S017_R01_S016017_C02_I1_000124-000252"  # 1.24 - 2.52 s: 32 frames, 20480 samples


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Far-field data dir with 4 utterances; U017's ROI skipped (too few detections)."""
    tmp = tmp_path_factory.mktemp("dump")
    root = make_corpus(tmp / "c", "train", with_middle=False, with_near=False)
    write_detection(root / "detection" / "train" / "far" / f"{SESSION}_Far.json", FAR_LIP, 150,
                    missing={"017": range(31, 63)})
    data = tmp / "train_far"
    prepare_misp_data(root, "train", "far", data)
    extract_lip_roi(data, tmp / "roi")
    return tmp, data


def test_dump_cuts_segments_and_attaches_roi(prepared, tmp_path):
    tmp, data = prepared
    out = tmp_path / "raw"
    assert dump_cli.main(["--data", str(data), "--out", str(out), "--roi_scp", str(tmp / "roi" / "roi.scp")]) == 0
    ns = read_kv(out / "utt2num_samples")
    assert len(ns) == 3 and U017 not in ns  # dropped: no ROI
    rep = json.loads((out / "dump_report.json").read_text())
    assert rep["dropped"] == {"no_roi": 1} and rep["dropped_utts"] == {U017: "no_roi"}
    u = "S016_R01_S016017_C02_I1_000052-000172"
    assert int(ns[u]) == (172 - 52) * 160
    # the cut equals the recording's range
    rec = read_kv(data / "wav.scp")[f"{SESSION}_Far"]
    full, _ = sf.read(rec, dtype="int16")
    cut, sr = sf.read(read_kv(out / "wav.scp")[u], dtype="int16")
    assert sr == 16000
    np.testing.assert_array_equal(cut, full[52 * 160 : 172 * 160])
    assert set(read_kv(out / "roi.scp")) == set(ns) == set(read_kv(out / "roi_detect_ratio"))
    assert validate_dir(out) == []
    assert check_cli.main(["--dump", str(out)]) == 0
    # keep_audio_only keeps U017 without a ROI
    out2 = tmp_path / "raw2"
    dump_cli.main(["--data", str(data), "--out", str(out2), "--roi_scp", str(tmp / "roi" / "roi.scp"),
                   "--keep_audio_only"])
    assert U017 in read_kv(out2 / "wav.scp") and U017 not in read_kv(out2 / "roi.scp")


def test_speed_perturb_lengths_audio_and_roi(prepared, tmp_path):
    tmp, data = prepared
    sp = tmp_path / "train_far_sp"
    speed_cli.main(["--data", str(data), "--out", str(sp), "--factors", "0.9", "1.0", "1.1",
                    "--roi_scp", str(tmp / "roi" / "roi.scp")])
    text = read_kv(sp / "text")
    assert len(text) == 12
    u = "S016_R01_S016017_C02_I1_000052-000172"  # 30 frames
    assert read_kv(sp / "utt2speed")[f"sp0.9-{u}"] == "0.9"
    assert read_kv(sp / "utt2spk")[f"sp1.1-{u}"] == "sp1.1-S016"
    assert validate_dir(sp) == []
    roi = read_kv(sp / "roi.scp")
    orig = np.load(roi[u])
    slow, fast = np.load(roi[f"sp0.9-{u}"]), np.load(roi[f"sp1.1-{u}"])
    assert orig.shape[0] == 30 and slow.shape[0] == 33 and fast.shape[0] == 27
    np.testing.assert_array_equal(slow[0], orig[0])
    np.testing.assert_array_equal(fast[-1], orig[roi_index_map(30, 1.1)[-1]])
    raw = tmp_path / "raw_sp"
    dump_cli.main(["--data", str(sp), "--out", str(raw), "--roi_scp", str(sp / "roi.scp")])
    ns = read_kv(raw / "utt2num_samples")
    assert int(ns[u]) == 19200
    assert int(ns[f"sp0.9-{u}"]) == perturbed_length(19200, 0.9) == 21334
    assert sf.info(read_kv(raw / "wav.scp")[f"sp1.1-{u}"]).frames == int(ns[f"sp1.1-{u}"]) == 17455
    rep = check_dump(raw)
    assert rep["outliers"] == [] and rep["num_checked"] == 9 and rep["max_abs_diff"] <= 1.0


def test_change_speed_is_resampling():
    t = np.arange(16000) / 16000
    x = np.sin(2 * np.pi * 440 * t)
    y = change_speed(x, 1.1)
    assert len(y) == perturbed_length(16000, 1.1)
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spec) * 16000 / len(y)
    assert abs(peak_hz - 484) < 3  # pitch rises with the speed, like sox speed
    np.testing.assert_array_equal(roi_index_map(10, 1.0), np.arange(10))


def test_check_dump_reports_outliers(tmp_path):
    d = tmp_path / "dump"
    d.mkdir()
    lines_ns, lines_roi = [], []
    for i, (frames, T) in enumerate([(10, 10), (10, 11), (10, 13), (10, 7)]):
        p = tmp_path / f"u{i}.npy"
        np.save(p, np.zeros((T, 96, 96), np.uint8))
        lines_ns.append(f"u{i} {frames * 640}")
        lines_roi.append(f"u{i} {p}")
    np.save(tmp_path / "bad.npy", np.zeros((10, 88, 88), np.uint8))
    lines_roi.append(f"u4 {tmp_path / 'bad.npy'}")
    lines_ns.append("u4 6400")
    lines_ns.append("u5 6400")
    (d / "utt2num_samples").write_text("\n".join(lines_ns) + "\n")
    (d / "roi.scp").write_text("\n".join(lines_roi) + "\n")
    rep = check_dump(d)
    reasons = {o["utt"]: o["reason"] for o in rep["outliers"]}
    assert reasons == {"u2": "length_mismatch", "u3": "length_mismatch", "u4": reasons["u4"], "u5": "no_roi"}
    assert reasons["u4"].startswith("bad_roi_shape")
    assert rep["max_abs_diff"] == 3.0 and rep["num_checked"] == 4
    assert check_cli.main(["--dump", str(d)]) == 1


def test_token_list_char_and_bpe(tmp_path):
    text = tmp_path / "text"
    text.write_text("u1 你好你好\nu2 你们好\nu3 好的\n", encoding="utf-8")
    out = tmp_path / "char" / "tokens.txt"
    token_cli.main(["--text", str(text), "--out", str(out)])
    toks = out.read_text(encoding="utf-8").splitlines()
    assert toks == ["<blank>", "<unk>", "好", "你", "们", "的", "<sos/eos>"]
    bpe_out = tmp_path / "bpe" / "tokens.txt"
    lines = [f"u{i} {s}" for i, s in enumerate(["你好今天天气不错", "我们看电视吧", "换个频道好吗", "今天的节目不错"] * 20)]
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    token_cli.main(["--text", str(text), "--out", str(bpe_out), "--token_type", "bpe", "--nbpe", "30"])
    toks = bpe_out.read_text(encoding="utf-8").splitlines()
    assert toks[0] == "<blank>" and toks[1] == "<unk>" and toks[-1] == "<sos/eos>"
    assert len(toks) == len(set(toks)) and len(toks) > 5
    assert (tmp_path / "bpe" / "bpe.model").is_file()
