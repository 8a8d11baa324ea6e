"""Bad-input matrix: each row feeds one kind of broken input to the stage that reads it and
asserts a clear error (exception type + the file's path in the message) or a logged,
counted skip with a reason. Summary table: docs/RELIABILITY.md."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
import soundfile as sf

from espnet_avsr.dataprep.dump import make_dump
from espnet_avsr.dataprep.enhance import FrontendConfig, enhance_data_dir
from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import read_kv
from espnet_avsr.dataprep.lip_roi import extract_lip_roi
from espnet_avsr.dataprep.prepare import prepare_misp_data
from espnet_avsr.dataprep.transcripts import read_text_tier
from espnet_avsr.dataprep.validate import validate_dir
from test_dataprep_fixtures import FAR_LIP, SESSION, SR, make_corpus, write_detection, write_video, write_wav

SET = "dev"
FAR_JSON = f"detection/{SET}/far/{SESSION}_Far.json"
U016 = "S016_R01_S016017_C02_I1_000052-000172"  # 0.52-1.72 s


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """One far-field session (2 channels, 4 kept utterances), built once and copied per row."""
    root = tmp_path_factory.mktemp("bad_base")
    make_corpus(root / "c", SET, with_middle=False, with_near=False)
    return root / "c"


def corpus(base: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(base, tmp / "c"))


def prepared(base: Path, tmp: Path):
    root = corpus(base, tmp)
    data = tmp / "dev_far"
    prepare_misp_data(root, SET, "far", data)
    return root, data


def textgrid_text(intervals, xmax: float = 6.0, tier: str = "内容层") -> str:
    """Hand-written long TextGrid (praatio refuses to *write* overlapping/reversed intervals)."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax}",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             f'        name = "{tier}"', "        xmin = 0", f"        xmax = {xmax}",
             f"        intervals: size = {len(intervals)}"]
    for i, (s, e, t) in enumerate(intervals, 1):
        lines += [f"        intervals [{i}]:", f"            xmin = {s}", f"            xmax = {e}", f'            text = "{t}"']
    return "\n".join(lines) + "\n"


def raises_naming(exc, path, fn: Callable, *words):
    with pytest.raises(exc) as e:
        fn()
    msg = str(e.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


# ----------------------------------------------------------------------------- rows
def truncated_mp4(base, tmp):
    root, data = prepared(base, tmp)
    mp4 = root / "video" / SET / "far" / f"{SESSION}_Far.mp4"
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size * 2 // 5])
    raises_naming(DataPrepError, mp4, lambda: extract_lip_roi(data, tmp / "roi"), "corrupt")


def zero_byte_wav(base, tmp):
    root, data = prepared(base, tmp)
    wav = Path(read_kv(data / "wav.scp")[f"{SESSION}_Far"])
    wav.write_bytes(b"")
    raises_naming(DataPrepError, wav, lambda: make_dump(data, tmp / "raw"), "cannot open audio")


def header_only_wav(base, tmp):
    """A valid WAV with 0 samples: every segment is past its end -> counted drops, named."""
    root, data = prepared(base, tmp)
    wav = Path(read_kv(data / "wav.scp")[f"{SESSION}_Far"])
    sf.write(str(wav), np.zeros(0, np.float32), SR, subtype="PCM_16")
    rep = make_dump(data, tmp / "raw")
    assert rep["num_utts"] == 0 and rep["dropped"] == {"segment_beyond_audio": 4}
    assert all(str(wav) in why for why in rep["dropped_utts"].values())


def silent_segment(base, tmp):
    """Digital silence where an utterance should be (a dead channel, a broken mix): dropped
    and counted `silent_audio`, the reason names the wav and the span; the others are kept."""
    root, data = prepared(base, tmp)
    wav = Path(read_kv(data / "wav.scp")[f"{SESSION}_Far"])
    x, sr = sf.read(str(wav), dtype="float32")
    seg = {u: (float(a), float(b)) for u, _, a, b in
           (line.split() for line in (data / "segments").read_text().splitlines())}
    u, (a, b) = sorted(seg.items())[0]
    x[int(a * sr):int(b * sr)] = 0.0
    sf.write(str(wav), x, sr, subtype="PCM_16")
    rep = make_dump(data, tmp / "raw")
    assert rep["dropped"] == {"silent_audio": 1} and rep["num_utts"] == len(seg) - 1
    assert str(wav) in rep["dropped_utts"][u] and f"{a:.2f}" in rep["dropped_utts"][u]


def wrong_sample_rate(base, tmp):
    root, data = prepared(base, tmp)
    wav = Path(read_kv(data / "wav.scp")[f"{SESSION}_Far"])
    sf.write(str(wav), np.zeros(6 * 8000, np.float32), 8000, subtype="PCM_16")
    raises_naming(DataPrepError, wav, lambda: make_dump(data, tmp / "raw"), "16000", "8000")
    raises_naming(DataPrepError, wav, lambda: enhance_data_dir(data, tmp / "enh", FrontendConfig(method="ds")), "16000")


def array_channel_gap(base, tmp):
    root = corpus(base, tmp)
    far = root / "audio" / SET / "far"
    write_wav(far / f"{SESSION}_Far_3.wav", 6 * SR, 3)
    (far / f"{SESSION}_Far_2.wav").unlink()
    raises_naming(DataPrepError, far / f"{SESSION}_Far_2.wav", lambda: prepare_misp_data(root, SET, "far", tmp / "d"),
                  "channel 2 missing")


def array_5_of_6_channels(base, tmp):
    """Two sessions with 6-channel far arrays, one lost its channel 6."""
    root = tmp / "c"
    other = "R02_S016017_C03_I1"
    for s in (SESSION, other):
        make_corpus(root, SET, session=s, far_channels=6, with_middle=False, with_near=False)
    missing = root / "audio" / SET / "far" / f"{other}_Far_6.wav"
    missing.unlink()
    raises_naming(DataPrepError, missing, lambda: prepare_misp_data(root, SET, "far", tmp / "d"),
                  "has 5 channels", "have 6")


def array_channel_lengths_differ(base, tmp):
    root, data = prepared(base, tmp)
    ch2 = root / "audio" / SET / "far" / f"{SESSION}_Far_2.wav"
    write_wav(ch2, 3 * SR, 2)  # half the session
    raises_naming(DataPrepError, ch2, lambda: enhance_data_dir(data, tmp / "enh", FrontendConfig(method="ds")),
                  "differ in length")


def _tg_case(base, tmp, intervals, reason):
    root = corpus(base, tmp)
    tg = root / "transcription" / SET / f"{SESSION}_Near_016.TextGrid"
    tg.write_text(textgrid_text(intervals), encoding="utf-8")
    rep = prepare_misp_data(root, SET, "far", tmp / "d")
    items = [it for it in rep["dropped_items"] if it["reason"] == reason]
    assert rep["dropped"][reason] == 1 and len(items) == 1 and items[0]["file"] == str(tg)
    return rep


def textgrid_overlapping(base, tmp):
    rep = _tg_case(base, tmp, [(0.5, 1.5, "你好"), (1.0, 2.0, "再见"), (2.5, 3.0, "好的")], "overlaps_previous")
    assert rep["num_intervals"] == rep["num_utts"] + rep["num_dropped"]


def textgrid_reversed(base, tmp):
    _tg_case(base, tmp, [(0.5, 1.5, "你好"), (3.0, 2.0, "再见")], "reversed_interval")


def _tg_bytes(base, tmp, raw: bytes):
    root = corpus(base, tmp)
    tg = root / "transcription" / SET / f"{SESSION}_Near_016.TextGrid"
    tg.write_bytes(raw)
    raises_naming(DataPrepError, tg, lambda: read_text_tier(tg), "cannot decode", "UTF-8")
    raises_naming(DataPrepError, tg, lambda: prepare_misp_data(root, SET, "far", tmp / "d"), "cannot decode")


def textgrid_gbk(base, tmp):
    _tg_bytes(base, tmp, textgrid_text([(0.5, 1.5, "你好，看电视")]).encode("gbk"))


def textgrid_latin1(base, tmp):
    raw = textgrid_text([(0.5, 1.5, "café crème")], tier="contenu").encode("latin-1")  # a latin-1 tool
    _tg_bytes(base, tmp, raw + (b"\n" if len(raw) % 2 else b""))  # even length: the UTF-16 trap


def _roi_case(base, tmp, det_text: str):
    root, data = prepared(base, tmp)
    (root / FAR_JSON).write_text(det_text, encoding="utf-8")
    return extract_lip_roi(data, tmp / "roi")


def detection_no_frames(base, tmp):
    rep = _roi_case(base, tmp, "{}")
    assert rep["num_utts"] == 0 and rep["counts"]["few_detections"] == 4
    assert all(v.startswith("few_detections (0/") for v in rep["skipped"].values())


def _det_with(tmp, lip_of) -> str:
    path = write_detection(tmp / "x.json", FAR_LIP, 150)
    frames = json.loads(path.read_text())
    for entries in frames.values():
        for e in entries:
            if e["id"] == "016":
                e["lip"] = lip_of(e["lip"])
    return json.dumps(frames)  # NaN is written as the JSON extension literal NaN


def detection_nan_boxes(base, tmp):
    rep = _roi_case(base, tmp, _det_with(tmp, lambda lip: [float("nan")] * 4))
    assert rep["counts"]["frames_nan_box"] > 0 and rep["counts"]["few_detections"] == 2
    assert U016 in rep["skipped"] and len(read_kv(tmp / "roi" / "roi.scp")) == 2


def detection_outside_image(base, tmp):
    """Boxes far outside the frame: coordinates of another video size, refused naming the JSON."""
    raises_naming(DataPrepError, tmp / "c" / FAR_JSON,
                  lambda: _roi_case(base, tmp, _det_with(tmp, lambda lip: [v + 1000 for v in lip])),
                  "lip boxes reach beyond the video's 160x120 frame")


def video_shorter_than_textgrid(base, tmp):
    root, data = prepared(base, tmp)
    write_video(root / "video" / SET / "far" / f"{SESSION}_Far.mp4", list(FAR_LIP.values()), 60)  # 2.4 s of 6 s
    rep = extract_lip_roi(data, tmp / "roi")
    assert rep["counts"]["beyond_video_end"] == 3 and rep["num_utts"] == 1  # only 0.52-1.72 s fits
    assert all("video has 60" in v for v in rep["skipped"].values())


def utt_in_text_not_in_video(base, tmp):
    root, data = prepared(base, tmp)
    u2v = read_kv(data / "utt2video")
    del u2v[U016]
    (data / "utt2video").write_text("".join(f"{k} {v}\n" for k, v in u2v.items()), encoding="utf-8")
    rep = extract_lip_roi(data, tmp / "roi")
    assert rep["skipped"] == {U016: "no_video"}
    drep = make_dump(data, tmp / "raw", roi_scp=tmp / "roi" / "roi.scp")
    assert drep["dropped_utts"] == {U016: "no_roi"} and drep["num_utts"] == 3


def empty_transcript(base, tmp):
    root, data = prepared(base, tmp)
    text = (data / "text").read_text(encoding="utf-8").splitlines()
    text[0] = text[0].split()[0]  # "utt" with no words
    (data / "text").write_text("\n".join(text) + "\n", encoding="utf-8")
    problems = validate_dir(data)
    assert any(str(data / "text") in p and "empty text" in p for p in problems), problems


def kaldi_text_non_utf8(base, tmp):
    root, data = prepared(base, tmp)
    lines = (data / "text").read_text(encoding="utf-8").splitlines()
    raw = "\n".join(lines[:2]).encode("utf-8") + b"\n" + lines[2].encode("gbk") + b"\n"
    (data / "text").write_bytes(raw)
    raises_naming(DataPrepError, data / "text", lambda: read_kv(data / "text"), "line 3 is not UTF-8")
    raises_naming(DataPrepError, data / "text", lambda: extract_lip_roi(data, tmp / "roi"), "not UTF-8")


def _train(tmp, **over):
    from test_task_avsr import data_args, make_dump, write_config
    from espnet_avsr.bin.avsr_train import main

    d = make_dump(tmp)
    cfg = write_config(tmp / "bad.yaml", **over)
    main([str(a) for a in ["--config", cfg, "--token_list", tmp / "tokens.txt", "--output_dir", tmp / "exp",
                           *data_args(d, "train"), *data_args(d, "valid"), "--max_epoch", 1,
                           "--train_shape_file", d / "wav.scp", "--valid_shape_file", d / "wav.scp"]])
    return cfg


def config_unknown_key(base, tmp, capsys=None):
    with pytest.raises(SystemExit) as e:
        _train(tmp, batch_sizee=3)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: batch_sizee" in err and str(tmp / "bad.yaml") in err, err


def config_unknown_nested_key(base, tmp):
    with pytest.raises(TypeError, match=r"AVConformerEncoder.*unexpected keyword argument 'num_fusion_block'"):
        _train(tmp, encoder_conf=dict(output_size=32, attention_heads=2, num_fusion_block=1))


def config_unknown_class(base, tmp):
    with pytest.raises(ValueError, match=r"--video_frontend must be one of \('resnet18',?.*\): --video_frontend resnet81"):
        _train(tmp, video_frontend="resnet81")


CASES: Dict[str, Callable] = {f.__name__: f for f in [
    truncated_mp4, zero_byte_wav, header_only_wav, silent_segment, wrong_sample_rate, array_channel_gap, array_5_of_6_channels,
    array_channel_lengths_differ, textgrid_overlapping, textgrid_reversed, textgrid_gbk, textgrid_latin1,
    detection_no_frames, detection_nan_boxes, detection_outside_image, video_shorter_than_textgrid,
    utt_in_text_not_in_video, empty_transcript, kaldi_text_non_utf8, config_unknown_key,
    config_unknown_nested_key, config_unknown_class,
]}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input(case, base, tmp_path, capsys):
    fn = CASES[case]
    if case == "config_unknown_key":
        fn(base, tmp_path, capsys)
    else:
        fn(base, tmp_path)
