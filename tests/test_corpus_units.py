"""Unit tests of the corpus generator's parts: text, visemes, faces, speech, writers, CLI errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from praatio import textgrid

from espnet_avsr.bin.make_mini_misp import main as make_mini_misp
from espnet_avsr.corpus.faces import FaceStyle, draw_face
from espnet_avsr.common.naming import parse_name, session_id, speakers_of
from espnet_avsr.corpus.text import (FILLERS, character_inventory, make_sentence, strip_punct,
                                     to_pinyin)
from espnet_avsr.corpus.video import crop_lip, missing_mask
from espnet_avsr.corpus.visemes import (SHAPES, SIL, VISEME_CLASSES, MouthTrack, onset_state,
                                        split_pinyin, syllable_viseme)
from espnet_avsr.corpus.writers import TIER_NAME, write_textgrid


# ---- text -------------------------------------------------------------------------------------

def test_sentences_are_varied_with_a_moderate_inventory():
    rng = np.random.default_rng(0)
    sentences = [make_sentence(rng) for _ in range(300)]
    assert len(set(sentences)) > 250
    inv = character_inventory()
    assert 150 < len(inv) < 500
    assert set("".join(strip_punct(to_pinyin(s)) for s in sentences)) <= set(inv)


def test_to_pinyin_pairs_characters_with_tone3_syllables():
    toks = to_pinyin("嗯，你们吃饭了吗？")
    assert [t.char for t in toks] == list("嗯，你们吃饭了吗？")
    assert [t.pinyin for t in toks] == ["en4", "", "ni3", "men5", "chi1", "fan4", "le5", "ma5", ""]
    assert strip_punct(toks) == "嗯你们吃饭了吗"
    with pytest.raises(ValueError, match="non-Han"):
        to_pinyin("abc")


# ---- visemes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("syl,parts,vis", [
    ("ba1", ("b", "a", 1), "A"), ("yu2", ("", "v", 2), "U"), ("ju4", ("j", "v", 4), "U"),
    ("wo3", ("", "uo", 3), "O"), ("zhi1", ("zh", "ii", 1), "I"), ("gui4", ("g", "uei", 4), "E"),
    ("jiu3", ("j", "iou", 3), "O"), ("lv4", ("l", "v", 4), "U"), ("er2", ("", "er", 2), "E"),
    ("de5", ("d", "e", 5), "E"), ("xing4", ("x", "ing", 4), "I"),
])
def test_split_pinyin_and_viseme(syl, parts, vis):
    assert split_pinyin(syl) == parts
    assert syllable_viseme(syl) == vis


def test_every_generated_syllable_has_a_viseme():
    rng = np.random.default_rng(1)
    for _ in range(200):
        for tok in to_pinyin(make_sentence(rng)):
            if tok.pinyin:
                assert syllable_viseme(tok.pinyin) in VISEME_CLASSES
    assert split_pinyin("ni") == ("n", "i", 5)  # no tone digit: neutral
    with pytest.raises(ValueError):
        split_pinyin("n!3")


def test_mouth_track_closed_in_silence_and_shaped_at_centres():
    sylls = [(1.0, 1.25, "ba1"), (1.27, 1.5, "wu3"), (3.0, 3.3, "xi1")]
    tr = MouthTrack.from_syllables(sylls)
    at = tr.sample(np.array([0.2, 1.125, 1.385, 2.2, 3.15, 5.0]))
    sil = SHAPES[SIL].as_array()
    np.testing.assert_allclose(at[0], sil)
    np.testing.assert_allclose(at[3], sil)
    np.testing.assert_allclose(at[5], sil)
    np.testing.assert_allclose(at[1], SHAPES["A"].as_array(), atol=1e-6)
    np.testing.assert_allclose(at[2], SHAPES["U"].as_array(), atol=1e-6)
    np.testing.assert_allclose(at[4], SHAPES["I"].as_array(), atol=1e-6)
    # lips close at the onset of b/p/m
    assert onset_state("ba1") == "BILABIAL"
    assert tr.sample(np.array([1.02]))[0, 0] < 0.5 * SHAPES["A"].opening
    # smooth: no jumps between consecutive 1 ms samples
    dense = tr.sample(np.arange(0.9, 1.6, 0.001))
    assert np.abs(np.diff(dense, axis=0)).max() < 0.03  # a step would be >= 0.1


# ---- faces and detections -----------------------------------------------------------------------

@pytest.mark.parametrize("vis", ["A", "I", "U", SIL])
def test_lip_box_encloses_the_drawn_mouth(vis):
    rng = np.random.default_rng(3)
    style = FaceStyle.random(rng)
    style = FaceStyle(**{**style.__dict__, "lips": (255, 0, 255), "skin": (0, 200, 0),
                         "hair": (0, 0, 0)})
    img = np.zeros((300, 400, 3), np.uint8)
    face, lip = draw_face(img, 200.5, 140.0, 120.0, style, SHAPES[vis].as_array())
    mask = (img[..., 0] > 150) & (img[..., 2] > 150) & (img[..., 1] < 60)  # lip colour
    ys, xs = np.nonzero(mask)
    assert len(xs) > 20
    x1, y1, x2, y2 = lip
    assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2
    # tight: the mouth fills the box up to the small padding
    assert xs.max() - xs.min() > 0.8 * (x2 - x1) - 2
    assert face[0] <= x1 and face[1] <= y1 and x2 <= face[2] and y2 <= face[3]


def test_mouth_width_follows_viseme():
    style = FaceStyle.random(np.random.default_rng(4))
    widths = {}
    for vis in ("I", "U"):
        img = np.zeros((300, 400, 3), np.uint8)
        _, lip = draw_face(img, 200, 140, 120, style, SHAPES[vis].as_array())
        widths[vis] = lip[2] - lip[0]
    assert widths["I"] > 1.5 * widths["U"]


def test_missing_mask_rate_and_bursts():
    rng = np.random.default_rng(5)
    m = missing_mask(20000, 0.08, rng)
    assert 0.05 < m.mean() < 0.11
    edges = np.diff(np.r_[0, m.astype(int), 0])
    runs = np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0]
    assert runs.max() >= 10 and (runs == 1).sum() > 100
    assert not missing_mask(100, 0.0, rng).any()


def test_crop_lip_square_and_edges():
    img = np.arange(200 * 300, dtype=np.uint8).reshape(200, 300)
    assert crop_lip(img, [10, 10, 40, 30]).shape == (96, 96)
    assert crop_lip(img, [0, 0, 150, 20]).shape == (96, 96)  # side 150 > 96, padded at borders


# ---- names and writers ----------------------------------------------------------------------------

def test_session_ids_and_file_names():
    sid = session_id(3, ["102", "103"], 5, 1)
    assert sid == "R03_S102103_C05_I1"
    assert speakers_of(sid) == ["102", "103"]
    assert parse_name(f"{sid}_Far_6.wav") == {"session": sid, "ext": "wav", "kind": "far", "channel": "6"}
    assert parse_name(f"{sid}_Middle_2.wav")["channel"] == "2"
    assert parse_name(f"{sid}_Middle_103.mp4")["spk"] == "103"
    assert parse_name(f"{sid}_Near_102.TextGrid")["spk"] == "102"
    assert parse_name("R01_S010011012_C0001_I0_Far.mp4")["kind"] == "far"
    assert parse_name(f"{sid}_Near.wav") is None
    assert parse_name("foo.wav") is None
    with pytest.raises(ValueError):
        session_id(1, ["12"], 1, 0)


@pytest.mark.parametrize("enc,bom", [("utf-8", b"File"), ("utf-16", b"\xff\xfe")])
def test_textgrid_round_trip(tmp_path, enc, bom):
    path = tmp_path / "x_Near_001.TextGrid"
    ivs = [(0.5, 1.25, "你好，电视。"), (2.0, 2.02, "嗯"), (3.0, 3.5, "<NOISE>")]
    write_textgrid(path, ivs, 5.0, enc)
    assert path.read_bytes().startswith(bom)
    tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    assert tg.tierNames == (TIER_NAME,)
    got = [(e.start, e.end, e.label) for e in tg.getTier(TIER_NAME).entries]
    assert got == ivs
    assert tg.maxTimestamp == 5.0
    assert list(tmp_path.iterdir()) == [path]


# ---- speech -----------------------------------------------------------------------------------

def test_synthesis_timings_are_exact(tmp_path):
    from espnet_avsr.corpus.speech import SyllableSynth, Voice, synthesize

    synth = SyllableSynth(cache_dir=tmp_path, inventory=["ni3", "hao3", "ma5"])
    voice = Voice("m3", 50, 180)
    rng = np.random.default_rng(0)
    utt = synthesize(synth, voice, to_pinyin("你好，你好吗。"), rng)
    spoken = [c for c in utt.chars if c[1]]
    assert [c[1] for c in spoken] == ["ni3", "hao3", "ni3", "hao3", "ma5"]
    assert spoken[0][2] == 0 and spoken[-1][3] == len(utt.wave)
    for (_, _, a, b), (_, _, c, _) in zip(spoken, spoken[1:]):
        assert a < b <= c
        assert np.abs(utt.wave[a:b]).max() > 0.05  # each span holds sound
    # the pause at the comma is longer than the gap inside a word
    assert spoken[2][2] - spoken[1][3] > spoken[1][2] - spoken[0][3] + 0.1 * 16000
    # the same syllable sounds the same both times, and comes from the cache next time
    n1, n2 = spoken[0], spoken[2]
    assert np.array_equal(utt.wave[n1[2]:n1[3]] / np.abs(utt.wave).max(),
                          utt.wave[n2[2]:n2[3]] / np.abs(utt.wave).max())
    assert (tmp_path / f"{voice.key}.npz").is_file()
    again = SyllableSynth(cache_dir=tmp_path, inventory=["ni3", "hao3", "ma5"])
    assert np.array_equal(again.syllable(voice, "ni3"), synth.syllable(voice, "ni3"))
    assert len(again.syllable(voice, "shu1")) > 800  # outside the inventory: made alone


# ---- CLI errors ---------------------------------------------------------------------------------

def test_negative_hours_is_one_clear_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "espnet_avsr.bin.make_mini_misp", "--out",
                          str(tmp_path / "c"), "--hours", "-1"], capture_output=True, text=True)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--hours must be > 0" in lines[0], res.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("extra,message", [
    (["--far_size", "641x360"], "--far_size must be even"),
    (["--snr_db", "5,0"], "--snr_db low > high"),
    (["--far_size", "big"], "size must look like"),
    (["--nj", "0"], "--nj must be >= 1"),
    (["--speakers_per_hour", "0"], "--speakers_per_hour must be > 0"),
])
def test_bad_options(tmp_path, extra, message):
    with pytest.raises(SystemExit) as e:
        make_mini_misp(["--out", str(tmp_path / "c"), "--hours", "0.01"] + extra)
    assert message in str(e.value.code)


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as e:
        make_mini_misp(["--out", str(blocker / "corpus"), "--hours", "0.01"])
    assert "not writable" in str(e.value.code) and str(blocker) in str(e.value.code)


def test_missing_espeak(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit) as e:
        make_mini_misp(["--out", str(tmp_path / "c"), "--hours", "0.01"])
    assert "espeak-ng not found" in str(e.value.code)


def test_speakers_per_hour_sets_the_speaker_pools():
    from espnet_avsr.bin.make_mini_misp import build_config, get_parser
    from espnet_avsr.corpus.plan import make_plan

    def speakers(extra):
        cfg = build_config(get_parser().parse_args(["--out", "x", "--hours", "1", "--preset", "demo"] + extra))
        plan = make_plan(cfg)
        per_split = {sp: {s.spk for p in plan if p.split == sp for s in p.speakers} for sp in ("train", "dev", "eval")}
        assert not (per_split["train"] & (per_split["dev"] | per_split["eval"]))  # pools stay disjoint
        return per_split

    few, many = speakers([]), speakers(["--speakers_per_hour", "40"])
    assert len(few["train"]) <= 5  # 0.8 h x 2.5/h -> the minimum pool of max_speakers + 1
    assert len(many["train"]) >= 20 > len(few["train"])  # 0.8 h x 40/h = 32 in the pool, most get sessions
