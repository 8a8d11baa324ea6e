"""Keyed data units: a changed input reruns its unit (naming what changed), --force_stage N redoes N
without reusing kept files, and an interrupted run with other inputs does not leave its partial outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from espnet_avsr.dataprep.cache_key import key_changes, make_key, parse_key
from espnet_avsr.common.kaldi_dir import read_kv
from test_dataprep_fixtures import make_corpus
from test_reliability_losses import SESSIONS, avsr, recipe_corpus


def test_key_names_what_changed(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "text").write_text("u1 你好\n", encoding="utf-8")
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"x")
    (d / "wav.scp").write_text(f"r1 {wav}\n", encoding="utf-8")
    old = parse_key("\n".join(make_key(["frontend=ds"], [f"t={tmp_path}"], [f"src={d}"])))
    assert parse_key("\n".join(make_key(["frontend=ds"], [f"t={tmp_path}"], [f"src={d}"]))) == old
    wav.write_bytes(b"yy")  # new audio under the old path
    new = parse_key("\n".join(make_key(["frontend=mvdr"], [f"t={tmp_path}"], [f"src={d}"])))
    assert key_changes(old, new) == ["files listed in src", "frontend 'ds' -> 'mvdr'", "files under t"]


def test_another_misp_root_reruns_stage1(tmp_path):
    a = recipe_corpus(tmp_path / "a")
    b = tmp_path / "b"
    for split in SESSIONS:
        make_corpus(b, split, session=f"R09_S016017_C0{len(split)}_I{len(split)}", with_middle=False, with_near=False)
    assert avsr(tmp_path, a, "--stage", "1", "--stop_stage", "1").returncode == 0
    r = avsr(tmp_path, b, "--stage", "1", "--stop_stage", "1")
    assert r.returncode == 0, r.stderr
    assert (f"[rerun] prep_train_far: its inputs changed since it was done: misp_root '{a}' -> '{b}'; "
            "files under audio; files under detection; files under transcription; files under video") in r.stdout
    assert all("R09_S016017" in u for u in read_kv(tmp_path / "data" / "train_far" / "text"))
    r = avsr(tmp_path, b, "--stage", "1", "--stop_stage", "1")
    assert r.stdout.count("[skip] prep_") == 2 and "[run]" not in r.stdout


def _npy(tmp_path, utt_part="S016"):
    roi = read_kv(tmp_path / "dump" / "roi" / "train_far" / "roi.scp")
    return np.load(next(p for u, p in sorted(roi.items()) if u.startswith(utt_part)))


@pytest.mark.slow
def test_fixed_detection_json_and_forced_stages_redo_their_outputs(tmp_path):
    misp = recipe_corpus(tmp_path / "misp")
    r = avsr(tmp_path, misp, "--stage", "1", "--stop_stage", "5", "--frontend", "ds")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    before = _npy(tmp_path)
    # fix the detection JSON of the training video: boxes 8 px lower
    js = misp / "detection" / "train" / "far" / f"{SESSIONS['train']}_Far.json"
    frames = json.loads(js.read_text(encoding="utf-8"))
    for entries in frames.values():
        for e in entries:
            e["lip"] = [e["lip"][0], e["lip"][1] + 8, e["lip"][2], e["lip"][3] + 8]
    js.write_text(json.dumps(frames), encoding="utf-8")
    r = avsr(tmp_path, misp, "--stage", "1", "--stop_stage", "5", "--frontend", "ds")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[rerun] roi_train_far: its inputs changed since it was done: files listed in src" in r.stdout
    assert "[skip] roi_dev_far" in r.stdout and "[skip] enhance_train_far_ds" in r.stdout  # no cascade
    assert "[rerun] dump_train_far" in r.stdout and "[skip] dump_dev_far" in r.stdout
    rep = json.loads((tmp_path / "dump" / "roi" / "train_far" / "roi_report.json").read_text())
    assert "kept_existing" not in rep["counts"] and rep["counts"]["written"] == 4
    assert not np.array_equal(_npy(tmp_path), before)

    # new front-end options: stage 2 reruns, and stage 5 dumps the new audio, not the old
    r = avsr(tmp_path, misp, "--stage", "2", "--stop_stage", "5", "--frontend", "ds", "--frontend_args", "--n_fft 256")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[rerun] enhance_train_far_ds: its inputs changed since it was done: frontend_args '' -> '--n_fft 256'" in r.stdout
    assert "[skip] roi_train_far" in r.stdout and "[rerun] dump_train_far" in r.stdout
    enh = sf.read(read_kv(tmp_path / "data" / "train_far_ds" / "wav.scp")[f"{SESSIONS['train']}_Far"])[0]
    seg = read_kv(tmp_path / "data" / "train_far" / "segments")
    dumped = read_kv(tmp_path / "dump" / "raw" / "train_far" / "wav.scp")
    utt = sorted(dumped)[0]
    start = round(float(seg[utt].split()[1]) * 16000)
    x = sf.read(dumped[utt])[0]
    np.testing.assert_allclose(x, enh[start:start + len(x)], atol=1 / 32768)

    # --force_stage 3 really redoes stage 3: every ROI written again, none kept
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "dump" / "roi" / "dev_far" / "npy").iterdir()}
    r = avsr(tmp_path, misp, "--stage", "3", "--stop_stage", "3", "--frontend", "ds", "--frontend_args", "--n_fft 256",
             "--force_stage", "3")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[clear] roi_dev_far" in r.stdout
    rep = json.loads((tmp_path / "dump" / "roi" / "dev_far" / "roi_report.json").read_text())
    assert "kept_existing" not in rep["counts"] and rep["counts"]["written"] == 4
    assert all(p.stat().st_mtime_ns != t for p, t in mtimes.items())


def test_interrupted_unit_with_other_inputs_does_not_resume(tmp_path):
    misp = recipe_corpus(tmp_path / "misp")
    assert avsr(tmp_path, misp, "--stage", "1", "--stop_stage", "3").returncode == 0
    stage3 = tmp_path / "exp" / ".done" / "stage3"
    # simulate a kill: no done-marker, a started key of a run with other options, a partial output
    (stage3 / "roi_dev_far.done").rename(stage3 / "roi_dev_far.started")
    (stage3 / "roi_dev_far.started").write_text("opt.skip_bad_videos=true\n")
    stale = tmp_path / "dump" / "roi" / "dev_far" / "npy" / "stale.npy"
    np.save(stale, np.zeros(1))
    r = avsr(tmp_path, misp, "--stage", "3", "--stop_stage", "3")
    assert r.returncode == 0, r.stderr
    assert "[rerun] roi_dev_far: an unfinished (killed or failed) run had other inputs" in r.stdout
    assert not stale.exists() and (stage3 / "roi_dev_far.done").exists()
    assert not (stage3 / "roi_dev_far.started").exists()


def test_stage0_with_other_corpus_options_does_not_keep_the_old_corpus(tmp_path):
    """Stage 0's marker is keyed too: other --hours reach the generator, which refuses to mix corpora."""
    marker = tmp_path / "exp" / ".done" / "stage0" / "corpus.done"
    marker.parent.mkdir(parents=True)
    (tmp_path / "corpus" / "transcription").mkdir(parents=True)
    marker.write_text("2026-01-01T00:00:00 corpus/transcription\nopt.hours=0.1\nopt.seed=0\nopt.preset=demo\nopt.args=\n")
    r = avsr(tmp_path, "", "--stage", "0", "--stop_stage", "0", "--corpus_dir", str(tmp_path / "corpus"),
             "--hours", "0.1")
    assert r.returncode == 0 and "[skip] corpus" in r.stdout, r.stderr
    (tmp_path / "corpus" / ".mini_misp").mkdir()
    (tmp_path / "corpus" / ".mini_misp" / "options.json").write_text('{"hours": 0.1}')  # the old corpus
    r = avsr(tmp_path, "", "--stage", "0", "--stop_stage", "0", "--corpus_dir", str(tmp_path / "corpus"),
             "--hours", "0.5")
    assert r.returncode != 0
    assert "[rerun] corpus: its inputs changed since it was done: hours '0.1' -> '0.5'" in r.stdout
    assert "holds a corpus made with other options" in (tmp_path / "exp" / "logs" / "make_mini_misp.log").read_text()
