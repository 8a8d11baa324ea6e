"""TextGrid -> Kaldi data dir: filtering rules, encodings, ids, snapping, missing files."""
import json
from pathlib import Path

import pytest

from espnet_avsr.bin import prepare_misp_data as prep_cli
from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import read_kv
from espnet_avsr.dataprep.prepare import prepare_misp_data
from espnet_avsr.common.naming import parse_near_stem, parse_session, utt_id
from espnet_avsr.dataprep.transcripts import Interval, clean_text, decode_textgrid_bytes, filter_interval, read_text_tier
from espnet_avsr.dataprep.validate import validate_dir
from test_dataprep_fixtures import SESSION, make_corpus, write_textgrid


def test_parse_session_both_styles():
    s = parse_session("R11_S193194_C08_I2")
    assert (s.room, s.speakers, s.config, s.index) == ("R11", ("193", "194"), "C08", "I2")
    s = parse_session("R01_S010011012_C0001_I0")
    assert s.speakers == ("010", "011", "012") and s.config == "C0001" and s.id == "R01_S010011012_C0001_I0"
    assert parse_near_stem("R01_S016017_C02_I1_Near_017")[1] == "017"
    with pytest.raises(ValueError, match="R1_S16"):
        parse_session("R1_S16_C2")


def test_utt_id_format_and_snapping():
    kept, reason = filter_interval(Interval(1.23, 2.51, "好的"))
    assert reason is None
    assert (kept.start_frame, kept.end_frame) == (30, 63)  # start floored 1.20 s, end ceiled 2.52 s
    uid = utt_id("017", parse_session(SESSION), kept.start, kept.end)
    assert uid == "S017_R01_S016017_C02_I1_000120-000252"


@pytest.mark.parametrize(
    "label,start,end,reason",
    [
        ("<NOISE>", 0.0, 1.0, "noise_tag"),
        ("<DEAF>", 0.0, 1.0, "deaf_tag"),
        ("你好", 0.0, 0.03, "too_short"),
        ("呃嗯啊", 0.0, 1.0, "filler_only"),
        ("噢，唉。", 0.0, 1.0, "filler_only"),
        ("，。！", 0.0, 1.0, "empty_text"),
    ],
)
def test_filter_rules(label, start, end, reason):
    kept, why = filter_interval(Interval(start, end, label))
    assert kept is None and why == reason


def test_clean_text_strips_punctuation_and_spaces():
    assert clean_text("我们 看 电视 吧!") == "我们看电视吧"
    assert clean_text("“你好”，（真的）？...ok") == "你好真的ok"
    kept, why = filter_interval(Interval(0.0, 1.0, "呃，好的"))  # filler inside a sentence is kept
    assert why is None and kept.text == "呃好的"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_textgrid_encodings(tmp_path, encoding):
    p = write_textgrid(tmp_path / "x.TextGrid", [(0.5, 1.5, "电视节目")], encoding=encoding)
    ivs = read_text_tier(p)
    assert [(iv.start, iv.end, iv.label) for iv in ivs] == [(0.5, 1.5, "电视节目")]


def test_decode_rejects_garbage(tmp_path):
    with pytest.raises(DataPrepError, match="cannot decode"):
        decode_textgrid_bytes(b"\xff\xd8\xff" * 3, tmp_path / "bad.TextGrid")


def test_textgrid_without_tier_names_file(tmp_path):
    p = write_textgrid(tmp_path / "R01_S016017_C02_I1_Near_016.TextGrid", [(0.0, 1.0, "好")], tier="words")
    with pytest.raises(DataPrepError) as e:
        read_text_tier(p)
    assert str(p) in str(e.value) and "内容层" in str(e.value)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("misp")
    make_corpus(root, "train", encodings={"017": "utf-16"})
    return root


def test_prepare_far(corpus, tmp_path):
    out = tmp_path / "train_far"
    rep = prepare_misp_data(corpus, "train", "far", out)
    text = read_kv(out / "text")
    assert dict(text) == {
        "S016_R01_S016017_C02_I1_000052-000172": "你好今天天气不错",
        "S016_R01_S016017_C02_I1_000392-000500": "我们看电视吧",
        "S017_R01_S016017_C02_I1_000124-000252": "好的",
        "S017_R01_S016017_C02_I1_000332-000480": "换个频道",
    }
    assert list(text) == sorted(text, key=lambda k: k.encode())
    assert rep["dropped"] == {"deaf_tag": 1, "empty_text": 1, "filler_only": 1, "noise_tag": 1, "too_short": 1}
    assert rep["num_utts"] == 4 and rep["num_intervals"] == 9
    on_disk = json.loads((out / "prep_report.json").read_text(encoding="utf-8"))
    assert on_disk["dropped"] == rep["dropped"] and len(on_disk["dropped_items"]) == 5
    seg = read_kv(out / "segments")
    assert seg["S017_R01_S016017_C02_I1_000124-000252"] == f"{SESSION}_Far 1.24 2.52"
    chans = read_kv(out / "channels.scp")[f"{SESSION}_Far"].split()
    assert [Path(c).name for c in chans] == [f"{SESSION}_Far_1.wav", f"{SESSION}_Far_2.wav"]
    assert Path(read_kv(out / "wav.scp")[f"{SESSION}_Far"]).name == f"{SESSION}_Far_1.wav"
    assert read_kv(out / "utt2video")["S017_R01_S016017_C02_I1_000124-000252"] == f"{SESSION}_Far 017"
    assert read_kv(out / "utt2spk")["S017_R01_S016017_C02_I1_000124-000252"] == "S017"
    assert set(read_kv(out / "video.scp")) == {f"{SESSION}_Far"}
    assert validate_dir(out) == []


def test_prepare_near_uses_middle_camera_then_far(corpus, tmp_path):
    out = tmp_path / "train_near"
    prepare_misp_data(corpus, "train", "near", out)
    u2v = read_kv(out / "utt2video")
    assert u2v["S016_R01_S016017_C02_I1_000052-000172"] == f"{SESSION}_Middle_016 016"
    assert read_kv(out / "segments")["S016_R01_S016017_C02_I1_000052-000172"].split()[0] == f"{SESSION}_Near_016"
    assert "channels.scp" not in [p.name for p in out.iterdir()]
    assert validate_dir(out) == []
    # Without middle videos the far camera is used.
    root = tmp_path / "nomid"
    make_corpus(root, "dev")
    for p in (root / "video" / "dev" / "middle").iterdir():
        p.unlink()
    prepare_misp_data(root, "dev", "near", tmp_path / "dev_near")
    assert set(v.split()[0] for v in read_kv(tmp_path / "dev_near" / "utt2video").values()) == {f"{SESSION}_Far"}


def test_missing_video_eval_kept_train_error(tmp_path):
    root = make_corpus(tmp_path / "c", "eval", with_middle=False, with_near=False)
    (root / "video" / "eval" / "far" / f"{SESSION}_Far.mp4").unlink()
    rep = prepare_misp_data(root, "eval", "far", tmp_path / "eval_far")
    assert rep["num_no_video"] == 4 and len(read_kv(tmp_path / "eval_far" / "text")) == 4
    assert (tmp_path / "eval_far" / "utt2video").read_text() == ""
    root2 = make_corpus(tmp_path / "c2", "train", with_middle=False, with_near=False)
    mp4 = root2 / "video" / "train" / "far" / f"{SESSION}_Far.mp4"
    mp4.unlink()
    with pytest.raises(DataPrepError) as e:
        prepare_misp_data(root2, "train", "far", tmp_path / "train_far")
    assert str(mp4) in str(e.value)


def test_missing_audio_and_tier_errors(tmp_path):
    root = make_corpus(tmp_path / "c", "dev", with_middle=False, with_near=False)
    with pytest.raises(DataPrepError, match="near-field audio missing") as e:
        prepare_misp_data(root, "dev", "near", tmp_path / "x")
    assert f"{SESSION}_Near_016.wav" in str(e.value)
    with pytest.raises(DataPrepError, match="no middle-field audio"):
        prepare_misp_data(root, "dev", "middle", tmp_path / "y")
    bad = write_textgrid(root / "transcription" / "dev" / f"{SESSION}_Near_017.TextGrid", [(0, 1, "好")], tier="x")
    with pytest.raises(DataPrepError) as e:
        prepare_misp_data(root, "dev", "far", tmp_path / "z")
    assert str(bad) in str(e.value)


def test_cli_runs_and_missing_json_is_recorded(tmp_path):
    root = make_corpus(tmp_path / "c", "dev", with_middle=False, with_near=False)
    js = root / "detection" / "dev" / "far" / f"{SESSION}_Far.json"
    js.unlink()
    out = tmp_path / "dev_far"
    assert prep_cli.main(["--misp_root", str(root), "--set", "dev", "--field", "far", "--out", str(out)]) == 0
    rep = json.loads((out / "prep_report.json").read_text(encoding="utf-8"))
    assert rep["missing_detection_json"] == [str(js.resolve())]
