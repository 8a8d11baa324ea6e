"""Validator/fixer, split by session and merge back."""
from pathlib import Path

import pytest

from espnet_avsr.bin import split_data_dir as split_cli
from espnet_avsr.bin import validate_data_dir as validate_cli
from espnet_avsr.common.kaldi_dir import load_dir, read_kv, write_kv
from espnet_avsr.dataprep.split import split_data_dir
from espnet_avsr.dataprep.validate import fix_dir, validate_dir


def _write(d: Path, name: str, lines):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text("".join(l + "\n" for l in lines), encoding="utf-8")


def make_dir(d: Path, sessions=("R01_S001002_C01_I0", "R02_S003004_C01_I0", "R03_S005006_C01_I0")) -> Path:
    """A consistent data dir: 2 utterances per session, wavs exist."""
    text, u2s, seg, wav = {}, {}, {}, {}
    for i, sess in enumerate(sessions):
        rec = f"{sess}_Far"
        wavp = d / "wav" / f"{rec}.wav"
        wavp.parent.mkdir(parents=True, exist_ok=True)
        wavp.write_bytes(b"RIFF")
        wav[rec] = str(wavp)
        spk = sess.split("_")[1][1:4]
        for j in range(2):
            s, e = 1.0 + 2 * j, 2.0 + 2 * j + i
            u = f"S{spk}_{sess}_{int(s * 100):06d}-{int(e * 100):06d}"
            text[u], u2s[u], seg[u] = "你好", f"S{spk}", f"{rec} {s:.2f} {e:.2f}"
    for name, kv in (("text", text), ("utt2spk", u2s), ("segments", seg), ("wav.scp", wav)):
        write_kv(d / name, kv)
    from espnet_avsr.common.kaldi_dir import utt2spk_to_spk2utt

    write_kv(d / "spk2utt", utt2spk_to_spk2utt(u2s))
    return d


def test_valid_dir_passes(tmp_path):
    d = make_dir(tmp_path / "x")
    assert validate_dir(d) == []
    assert validate_cli.main([str(d)]) == 0


def test_unsorted_and_inconsistent_detected_then_fixed(tmp_path):
    d = make_dir(tmp_path / "x")
    text = (d / "text").read_text(encoding="utf-8").splitlines()
    # unsorted text, an utterance only in text, a bad segment, stale spk2utt, a dangling recording
    _write(d, "text", list(reversed(text)) + ["S009_R09_S009010_C01_I0_000100-000200 孤儿"])
    seg = (d / "segments").read_text().splitlines()
    bad_utt = seg[1].split()[0]
    seg[1] = f"{bad_utt} R01_S001002_C01_I0_Far 3.00 3.00"
    _write(d, "segments", seg)
    _write(d, "spk2utt", ["S001 " + seg[0].split()[0]])
    probs = validate_dir(d)
    joined = "\n".join(probs)
    assert "not sorted" in joined and str(d / "text") in joined
    assert "in text but not in segments" in joined
    assert "0 <= start < end" in joined
    assert "spk2utt" in joined and "does not match utt2spk" in joined
    assert validate_cli.main([str(d)]) == 1

    dropped = fix_dir(d)
    assert dropped == {
        "S009_R09_S009010_C01_I0_000100-000200": "missing from utt2spk, segments",
        bad_utt: f"'{bad_utt}': need 0 <= start < end, got 3.0 3.0",
    }
    assert validate_dir(d) == []
    assert len(read_kv(d / "text")) == 5
    assert bad_utt not in read_kv(d / "spk2utt")["S001"].split()


def test_duplicates_and_missing_files(tmp_path):
    d = make_dir(tmp_path / "x")
    lines = (d / "utt2spk").read_text().splitlines()
    _write(d, "utt2spk", [lines[0]] + lines)
    wav = read_kv(d / "wav.scp")
    missing_rec = "R03_S005006_C01_I0_Far"
    Path(wav[missing_rec]).unlink()
    probs = "\n".join(validate_dir(d))
    assert "duplicate key" in probs and f"file not found: {wav[missing_rec]}" in probs
    assert validate_cli.main([str(d), "--fix"]) == 0
    assert not any(u.startswith("S005") for u in read_kv(d / "text"))
    assert missing_rec not in read_kv(d / "wav.scp")


def test_split_by_session_and_merge_roundtrip(tmp_path):
    d = make_dir(tmp_path / "x")
    write_kv(d / "utt2video", {u: f"{v.split()[0]} {u[1:4]}" for u, v in read_kv(d / "segments").items()})
    write_kv(d / "video.scp", {r: f"/v/{r}.mp4" for r in read_kv(d / "wav.scp")})
    parts = split_data_dir(d, 2)
    assert [p.name for p in parts] == ["1", "2"] and parts[0].parent.name == "split2"
    seen = {}
    for p in parts:
        assert validate_dir(p, check_files=False) == []
        recs = {v.split()[0] for v in read_kv(p / "segments").values()}
        for r in recs:
            assert r not in seen  # each session in exactly one part
            seen[r] = p
        assert set(read_kv(p / "wav.scp")) == recs
        assert set(read_kv(p / "video.scp")) == recs
    assert len(seen) == 3
    merged = tmp_path / "merged"
    split_cli.main(["--merge", str(merged)] + [str(p) for p in parts])
    orig, back = load_dir(d), load_dir(merged)
    for name in ("text", "utt2spk", "spk2utt", "segments", "wav.scp", "utt2video", "video.scp"):
        assert dict(back[name]) == dict(orig[name]), name
        assert (merged / name).read_text() == (d / name).read_text(), name


def test_split_more_parts_than_sessions_gives_empty_parts(tmp_path):
    d = make_dir(tmp_path / "x", sessions=("R01_S001002_C01_I0",))
    parts = split_data_dir(d, 3)
    sizes = [len(read_kv(p / "text")) for p in parts]
    assert sorted(sizes) == [0, 0, 2]
    with pytest.raises(ValueError, match="usage"):
        split_cli.main([str(d), "x"])
