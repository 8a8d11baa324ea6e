"""End-to-end tests of the synthetic MISP corpus: layout, determinism, resume, lip information."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest
import soundfile as sf
from praatio import textgrid

from espnet_avsr.bin.make_mini_misp import main as make_mini_misp
from espnet_avsr.common.naming import SESSION_RE, parse_name, speakers_of
from espnet_avsr.corpus.text import FILLERS, PUNCTUATION
from espnet_avsr.common.timing import VIDEO_FPS as FPS
from espnet_avsr.corpus.video import crop_lip
from espnet_avsr.corpus.visemes import VISEME_CLASSES

TINY = ["--preset", "tiny", "--no_progress", "--log_level", "WARNING"]


@pytest.fixture(scope="module")
def tts_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tts_cache")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tts_cache) -> Path:
    out = tmp_path_factory.mktemp("minimisp") / "corpus"
    make_mini_misp(["--out", str(out), "--hours", "0.02", "--seed", "11", "--nj", "2",
                    "--tts_cache", str(tts_cache), "--max_speakers", "3"] + TINY)
    return out


def _frames(det: Dict) -> Dict:
    return det["frames"] if isinstance(det.get("frames"), dict) else det


def _sessions(root: Path) -> List[Tuple[str, str]]:
    return [tuple(x) for x in json.loads((root / "summary.json").read_text("utf-8"))["sessions"]]


def test_file_names_follow_misp_rules(corpus):
    files = [p for sub in ("audio", "video", "transcription", "detection")
             for p in (corpus / sub).rglob("*") if p.is_file()]
    assert files
    for p in files:
        info = parse_name(p.name)
        assert info is not None, p
        rel = p.relative_to(corpus).parts
        assert rel[1] in ("train", "dev", "eval"), p
        if rel[0] in ("audio", "video", "detection"):
            assert rel[2] == info["kind"], p
        assert not p.name.startswith("."), f"leftover temp file {p}"
    # eval ships far audio/video only; detections only for far
    for sub in ("audio", "video", "detection"):
        assert sorted(d.name for d in (corpus / sub / "eval").iterdir()) == ["far"]


def test_sessions_and_splits(corpus):
    sessions = _sessions(corpus)
    names = [s for s, _ in sessions]
    assert len(names) == len(set(names))
    assert {sp for _, sp in sessions} == {"train", "dev", "eval"}
    for s, _ in sessions:
        assert SESSION_RE.fullmatch(s), s
        assert 2 <= len(speakers_of(s)) <= 4
    summary = json.loads((corpus / "summary.json").read_text("utf-8"))
    assert summary["hours"] == pytest.approx(0.02, rel=0.3)
    assert summary["splits"]["train"]["utterances"] > 0
    assert (corpus / "summary.txt").read_text("utf-8").startswith("mini-MISP corpus")


def test_audio_and_video_shapes(corpus):
    for session, split in _sessions(corpus):
        spks = speakers_of(session)
        wavs = [corpus / "audio" / split / "far" / f"{session}_Far_{c}.wav" for c in range(6)]
        if split != "eval":
            wavs += [corpus / "audio" / split / "middle" / f"{session}_Middle_{c}.wav" for c in (0, 1)]
            wavs += [corpus / "audio" / split / "near" / f"{session}_Near_{s}.wav" for s in spks]
        else:
            assert not list((corpus / "audio" / split).rglob(f"{session}_Middle_*"))
        assert not (corpus / "audio" / split / "far" / f"{session}_Far_6.wav").exists()
        lengths = set()
        for w in wavs:
            info = sf.info(str(w))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), w
            lengths.add(info.frames)
        assert len(lengths) == 1
        n_samples = lengths.pop()
        assert n_samples % 640 == 0
        far = sf.read(str(wavs[0]), dtype="int16")[0]
        assert np.abs(far).max() > 1000  # not silent
        videos = [corpus / "video" / split / "far" / f"{session}_Far.mp4"]
        if split != "eval":
            videos += [corpus / "video" / split / "middle" / f"{session}_Middle_{s}.mp4" for s in spks]
        for v in videos:
            cap = cv2.VideoCapture(str(v))
            assert cap.isOpened(), v
            assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
            n = 0
            while cap.read()[0]:
                n += 1
            assert n == n_samples // 640, v


def test_textgrids(corpus):
    encodings, texts, short = set(), [], 0
    for session, split in _sessions(corpus):
        for spk in speakers_of(session):
            path = corpus / "transcription" / split / f"{session}_Near_{spk}.TextGrid"
            raw = path.read_bytes()
            encodings.add("utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8")
            tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
            assert tg.tierNames == ("内容层",)
            entries = tg.getTier("内容层").entries
            prev_end = 0.0
            for e in entries:
                assert prev_end <= e.start < e.end <= tg.maxTimestamp + 1e-9
                prev_end = e.end
                texts.append(e.label)
                short += (e.end - e.start) < 0.04
    assert encodings == {"utf-8", "utf-16"}
    assert "<NOISE>" in texts
    assert any(t.strip(PUNCTUATION) in FILLERS for t in texts)
    assert short > 0
    assert any(c in t for t in texts for c in PUNCTUATION)
    assert len(set(texts)) > 10


def test_detection_json(corpus):
    nested, flat, missing, total, bursts = 0, 0, 0, 0, 0
    for det_path in (corpus / "detection").rglob("*.json"):
        split, field = det_path.parts[-3], det_path.parts[-2]
        info = parse_name(det_path.name)
        raw = json.loads(det_path.read_text("utf-8"))
        if "frames" in raw:
            nested += 1
            assert set(raw) == {"frames"}
        else:
            flat += 1
        frames = _frames(raw)
        video = corpus / "video" / split / field / f"{det_path.stem}.mp4"
        cap = cv2.VideoCapture(str(video))
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        spks = speakers_of(info["session"]) if field == "far" else [info["spk"]]
        seen = {s: np.zeros(n_frames, bool) for s in spks}
        for key, entries in frames.items():
            i = int(key)
            assert 0 <= i < n_frames
            assert isinstance(entries, list)
            for d in entries:
                assert set(d) == {"id", "x1", "y1", "x2", "y2", "lip"}
                assert d["id"] in spks
                assert 0 <= d["x1"] < d["x2"] <= w and 0 <= d["y1"] < d["y2"] <= h
                lx1, ly1, lx2, ly2 = d["lip"]
                assert d["x1"] <= lx1 < lx2 <= d["x2"] and d["y1"] <= ly1 < ly2 <= d["y2"]
                seen[d["id"]][i] = True
        for s, m in seen.items():
            missing += int((~m).sum())
            total += len(m)
            runs = np.diff(np.r_[0, (~m).astype(int), 0])
            lengths = np.nonzero(runs == -1)[0] - np.nonzero(runs == 1)[0]
            bursts += int((lengths >= 3).sum())
    assert nested > 0 and flat > 0
    assert 0.02 < missing / total < 0.15
    assert bursts > 0


def _lip_samples(root: Path, splits, shift_up: float = 0.0):
    """Grey lip crops at syllable centres and the syllables' viseme classes.

    ``shift_up`` moves the crop up by that many crop sides (a control away from the mouth).
    """
    X, y = [], []
    for split in splits:
        for field in ("far", "middle"):
            for mp4 in sorted((root / "video" / split / field).glob("*.mp4")):
                info = parse_name(mp4.name)
                det = _frames(json.loads(
                    (root / "detection" / split / field / f"{mp4.stem}.json").read_text("utf-8")))
                align = json.loads((root / "alignment" / split / f"{info['session']}.json").read_text("utf-8"))
                want: Dict[int, list] = {}
                for spk, events in align["speakers"].items():
                    if field == "middle" and spk != info["spk"]:
                        continue
                    for e in events:
                        for _, p, a, b, vis in e["chars"]:
                            if p:
                                want.setdefault(int(round((a + b) / 2 * FPS)), []).append((spk, vis))
                cap = cv2.VideoCapture(str(mp4))
                i = 0
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    for spk, vis in want.get(i, []):
                        hits = [d for d in det.get(str(i), []) if d["id"] == spk]
                        if not hits:
                            continue
                        d = hits[0]
                        lip = np.array(d["lip"], float)
                        side = max(lip[2] - lip[0], lip[3] - lip[1], 96)
                        lip[[1, 3]] -= shift_up * side
                        roi = cv2.resize(crop_lip(frame, lip), (24, 24), interpolation=cv2.INTER_AREA)
                        v = roi.astype(np.float32).ravel()
                        X.append((v - v.mean()) / (v.std() + 1e-6))
                        y.append(VISEME_CLASSES.index(vis))
                    i += 1
    return np.array(X), np.array(y)


def test_lip_rois_carry_viseme_information(corpus):
    from sklearn.linear_model import RidgeClassifier

    # train on train-split speakers, test on the unseen dev/eval speakers
    Xtr, ytr = _lip_samples(corpus, ["train"])
    Xte, yte = _lip_samples(corpus, ["dev", "eval"])
    assert len(Xtr) > 100 and len(Xte) > 30
    assert len(set(ytr.tolist())) == len(VISEME_CLASSES)
    acc = (RidgeClassifier(alpha=100.0).fit(Xtr, ytr).predict(Xte) == yte).mean()
    chance = 1.0 / len(VISEME_CLASSES)
    majority = np.bincount(yte).max() / len(yte)
    assert acc > 2 * chance and acc > majority + 0.15, (acc, majority)
    # control: the same classifier on crops one crop-side above the lips learns little
    Xtr_e, ytr_e = _lip_samples(corpus, ["train"], shift_up=1.0)
    Xte_e, yte_e = _lip_samples(corpus, ["dev", "eval"], shift_up=1.0)
    acc_eyes = (RidgeClassifier(alpha=100.0).fit(Xtr_e, ytr_e).predict(Xte_e) == yte_e).mean()
    assert acc > acc_eyes + 0.2, (acc, acc_eyes)


# ---- determinism and resume -------------------------------------------------------------------

SMALL = ["--hours", "0.004", "--sessions_per_split", "1", "--max_speakers", "2"] + TINY


def _digest(root: Path, patterns=("*.TextGrid", "*.json", "*.wav")) -> Dict[str, bytes]:
    out = {}
    for sub in ("transcription", "detection", "alignment", "audio"):
        for pat in patterns:
            for p in (root / sub).rglob(pat):
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, tts_cache):
    base = tmp_path_factory.mktemp("seeded")
    runs = {}
    for name, seed, nj in (("a", 5, 1), ("b", 5, 2), ("c", 6, 1)):
        make_mini_misp(["--out", str(base / name), "--seed", str(seed), "--nj", str(nj),
                        "--tts_cache", str(tts_cache)] + SMALL)
        runs[name] = base / name
    return runs


def test_same_seed_is_byte_identical(seeded):
    a, b = _digest(seeded["a"]), _digest(seeded["b"])
    assert any(k.endswith(".TextGrid") for k in a) and any(k.endswith(".json") for k in a)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_other_seed_differs(seeded):
    a, c = _digest(seeded["a"], ("*.TextGrid",)), _digest(seeded["c"], ("*.TextGrid",))
    assert sorted(a.values()) != sorted(c.values())
    assert a.keys() != c.keys()  # other speakers / rooms in the session ids


def test_rerun_is_noop_and_killed_sessions_are_redone(seeded, tts_cache, capsys):
    root = seeded["a"]
    args = ["--out", str(root), "--seed", "5", "--nj", "1", "--tts_cache", str(tts_cache)] + SMALL
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.TextGrid")}
    make_mini_misp(args)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.TextGrid")} == before

    # simulate a run killed inside one session: no done marker, a missing and a temp file
    session, split = _sessions(root)[0]
    victim = root / "audio" / split / "far" / f"{session}_Far_3.wav"
    reference = victim.read_bytes()
    victim.unlink()
    (victim.parent / f".{session}_Far_4.tmp.wav").write_bytes(b"partial")
    (root / ".mini_misp" / "done" / f"{session}.json").unlink()
    (root / ".mini_misp" / "complete").unlink()
    other = next(p for p in before if session not in p.name)
    make_mini_misp(args)
    assert victim.read_bytes() == reference
    assert not list(victim.parent.glob(".*tmp*"))
    assert other.stat().st_mtime_ns == before[other]
    assert (root / ".mini_misp" / "complete").is_file()

    # other options into the same folder are refused
    with pytest.raises(SystemExit) as e:
        make_mini_misp(["--out", str(root), "--seed", "7", "--nj", "1"] + SMALL)
    assert "other options" in str(e.value.code)
