"""Stage 1 on a tree written by hand in the MISP release's naming (0-based array channels).

Independent of the corpus generator: the file names below are those of the release
(`R53_S286287288289_C04_I1_Far_0.wav` ... `_Far_5.wav`, `_Middle_0/1.wav`), and the
expected utterance ids follow ESPnet's misp2021 rule (start floored, end ceiled to 40 ms).
"""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import read_kv
from espnet_avsr.dataprep.prepare import prepare_misp_data
from espnet_avsr.dataprep.transcripts import Interval, filter_interval
from test_dataprep_fixtures import SR, write_detection, write_textgrid, write_video, write_wav

S = "R53_S286287288289_C04_I1"
DUR = 4.0
TEXTGRIDS = {
    "286": [(0.50, 1.013, "你好，世界！"), (1.50, 2.20, "<NOISE>"), (2.30, 3.517, "ＡＢＣ一下")],
    "287": [(0.10, 0.90, "嗯"), (1.05, 1.97, "换个 频道。")],
}
EXPECTED = {  # id -> text; 0.50-1.013 s -> 000048-000104 as in the baselines
    f"S286_{S}_000048-000104": "你好世界",
    f"S286_{S}_000228-000352": "abc一下",
    f"S287_{S}_000104-000200": "换个频道",
}


def release_tree(root: Path, split: str = "dev", far=range(6), middle=range(2)) -> Path:
    n_frames = int(DUR * 25)
    for spk, ivs in TEXTGRIDS.items():
        write_textgrid(root / "transcription" / split / f"{S}_Near_{spk}.TextGrid", ivs, xmax=DUR)
        write_wav(root / "audio" / split / "near" / f"{S}_Near_{spk}.wav", int(DUR * SR), int(spk))
        write_video(root / "video" / split / "middle" / f"{S}_Middle_{spk}.mp4", [(80.0, 80.0)], n_frames)
        write_detection(root / "detection" / split / "middle" / f"{S}_Middle_{spk}.json", {spk: (80.0, 80.0)}, n_frames)
    for c in far:
        write_wav(root / "audio" / split / "far" / f"{S}_Far_{c}.wav", int(DUR * SR), c)
    for c in middle:
        write_wav(root / "audio" / split / "middle" / f"{S}_Middle_{c}.wav", int(DUR * SR), 10 + c)
    centres = {"286": (50.0, 70.0), "287": (110.0, 70.0)}
    write_video(root / "video" / split / "far" / f"{S}_Far.mp4", list(centres.values()), n_frames)
    write_detection(root / "detection" / split / "far" / f"{S}_Far.json", centres, n_frames)
    return root


def test_widening_rule_floor_start_ceil_end():
    kept, why = filter_interval(Interval(0.50, 1.013, "x"))
    assert why is None and (kept.start_frame, kept.end_frame) == (12, 26)
    kept, _ = filter_interval(Interval(0.48, 1.04, "x"))  # on the grid: unchanged despite float noise
    assert (kept.start_frame, kept.end_frame) == (12, 26)


@pytest.mark.parametrize("field,rec,n_chan", [("far", f"{S}_Far", 6), ("middle", f"{S}_Middle", 2)])
def test_release_named_tree_loads(tmp_path, field, rec, n_chan):
    root = release_tree(tmp_path / "misp")
    out = tmp_path / f"dev_{field}"
    rep = prepare_misp_data(root, "dev", field, out)
    assert read_kv(out / "text") == EXPECTED
    assert rep["dropped"] == {"filler_only": 1, "noise_tag": 1}
    chans = read_kv(out / "channels.scp")[rec].split()
    tag = "Far" if field == "far" else "Middle"
    assert [Path(c).name for c in chans] == [f"{S}_{tag}_{c}.wav" for c in range(n_chan)]
    assert Path(read_kv(out / "wav.scp")[rec]).name == f"{S}_{tag}_0.wav"
    assert read_kv(out / "segments")[f"S286_{S}_000048-000104"] == f"{rec} 0.48 1.04"


def test_near_field_of_release_tree(tmp_path):
    root = release_tree(tmp_path / "misp")
    prepare_misp_data(root, "dev", "near", tmp_path / "dev_near")
    assert read_kv(tmp_path / "dev_near" / "text") == EXPECTED


def test_one_based_tree_still_loads(tmp_path):
    root = release_tree(tmp_path / "misp", far=range(1, 7))
    prepare_misp_data(root, "dev", "far", tmp_path / "d")
    chans = read_kv(tmp_path / "d" / "channels.scp")[f"{S}_Far"].split()
    assert [Path(c).name for c in chans] == [f"{S}_Far_{c}.wav" for c in range(1, 7)]


def test_gap_in_zero_based_channels_names_missing_file(tmp_path):
    root = release_tree(tmp_path / "misp", far=(0, 1, 2, 4, 5))
    with pytest.raises(DataPrepError, match="channel 3 missing") as e:
        prepare_misp_data(root, "dev", "far", tmp_path / "d")
    assert e.value.path.endswith(f"{S}_Far_3.wav")


def test_channels_not_starting_at_0_or_1_name_channel_0(tmp_path):
    root = release_tree(tmp_path / "misp", far=range(2, 8))
    with pytest.raises(DataPrepError, match="channel 0 missing") as e:
        prepare_misp_data(root, "dev", "far", tmp_path / "d")
    assert e.value.path.endswith(f"{S}_Far_0.wav")


def test_mixed_numbering_between_recordings_is_refused(tmp_path):
    root = release_tree(tmp_path / "misp")
    other = "R54_S290291_C01_I0"
    for spk in ("290", "291"):
        write_textgrid(root / "transcription" / "dev" / f"{other}_Near_{spk}.TextGrid", [(0.5, 1.5, "好的")], xmax=DUR)
    for c in range(1, 7):
        write_wav(root / "audio" / "dev" / "far" / f"{other}_Far_{c}.wav", int(DUR * SR), c)
    with pytest.raises(DataPrepError, match="numbers its channels from") as e:
        prepare_misp_data(root, "dev", "far", tmp_path / "d", allow_missing_video=True)
    assert f"{other}_Far_1.wav" in str(e.value)


def test_stereo_file_as_one_channel_is_refused(tmp_path):
    root = release_tree(tmp_path / "misp")
    ch2 = root / "audio" / "dev" / "far" / f"{S}_Far_2.wav"
    sf.write(str(ch2), np.zeros((int(DUR * SR), 2), np.float32), SR, subtype="PCM_16")
    with pytest.raises(DataPrepError, match="2 channels where one channel is expected") as e:
        prepare_misp_data(root, "dev", "far", tmp_path / "d")
    assert e.value.path == str(ch2)
