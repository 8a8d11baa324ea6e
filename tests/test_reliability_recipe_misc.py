"""Recipe odds and ends: duplicate model names, the run lock, --skip_bad_videos from run.sh,
paths with spaces, error hints that name logs which exist."""
from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path

from espnet_avsr.common.kaldi_dir import join_paths, read_kv, split_paths
from test_dataprep_fixtures import make_corpus
from test_reliability_losses import RECIPE, SESSIONS, avsr, recipe_corpus


def test_duplicate_model_name_is_refused(tmp_path):
    r = avsr(tmp_path, tmp_path, "--stage", "99", "--models",
             "A0:conf/train_asr.yaml:- AV0:conf/train_avsr.yaml:A0 A0:conf/train_asr.yaml:-")
    assert r.returncode != 0
    assert "model name A0 is declared twice in --models" in r.stderr


def test_second_run_in_one_folder_stops(tmp_path):
    (tmp_path / "exp").mkdir()
    lock = tmp_path / "exp" / ".avsr.lock"
    with open(lock, "a") as f:
        f.write("pid 4242 on somewhere")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run in progress
        r = avsr(tmp_path, tmp_path, "--stage", "99")
        assert r.returncode != 0
        assert f"another avsr.sh run holds {lock} (pid 4242 on somewhere)" in r.stderr
    r = avsr(tmp_path, tmp_path, "--stage", "99")  # released: runs
    assert r.returncode == 0, r.stderr
    assert lock.read_text().startswith("pid ")


def test_paths_with_spaces_in_channels_scp(tmp_path):
    paths = ["/data/MISP 2022/a_Far_0.wav", "/plain/a_Far_1.wav"]
    assert split_paths(join_paths(paths)) == paths
    assert join_paths(paths[1:]) == paths[1]  # plain paths are written as before
    misp = recipe_corpus(tmp_path / "MISP corpus")
    r = avsr(tmp_path, misp, "--stage", "1", "--stop_stage", "2", "--frontend", "first_channel")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    chans = split_paths(read_kv(tmp_path / "data" / "train_far" / "channels.scp")[f"{SESSIONS['train']}_Far"])
    assert len(chans) == 2 and all(Path(c).is_file() for c in chans)
    enhanced = read_kv(tmp_path / "data" / "train_far_first_channel" / "wav.scp")
    assert all(Path(p).is_file() for p in enhanced.values()) and len(enhanced) == 1


def _run_sh(tmp_path, misp, *args):
    cmd = ["./run.sh", "--misp_root", str(misp), "--stage", "1", "--stop_stage", "3", "--frontend", "none",
           *args, "--", "--data_dir", str(tmp_path / "data"), "--dumpdir", str(tmp_path / "dump"),
           "--expdir", str(tmp_path / "exp"), "--max_drop_frac", "0.5", "--test_sets", "dev_far"]
    return subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=300)


def test_run_sh_passes_skip_bad_videos(tmp_path):
    misp = recipe_corpus(tmp_path / "misp")
    second = "R04_S018019_C02_I1"  # a second training session whose video is truncated
    make_corpus(misp, "train", session=second, with_middle=False, with_near=False)
    mp4 = misp / "video" / "train" / "far" / f"{second}_Far.mp4"
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 3])
    r = _run_sh(tmp_path / "a", misp)
    assert r.returncode != 0 and str(mp4) in r.stdout + r.stderr + "".join(
        p.read_text() for p in (tmp_path / "a" / "dump" / "roi" / "train_far" / "log").glob("*.log"))
    r = _run_sh(tmp_path / "b", misp, "--skip_bad_videos", "true")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    skipped = read_kv(tmp_path / "b" / "dump" / "roi" / "train_far" / "roi.scp")
    assert len(skipped) == 4 and all(second not in u for u in skipped)


def test_failed_prep_names_a_log_that_exists(tmp_path):
    misp = recipe_corpus(tmp_path / "misp")
    tg = misp / "transcription" / "dev" / f"{SESSIONS['dev']}_Near_016.TextGrid"
    tg.write_bytes("内容层".encode("gbk") * 3)
    r = avsr(tmp_path, misp, "--stage", "1", "--stop_stage", "1")
    assert r.returncode != 0
    log = tmp_path / "data" / "dev_far" / "log" / "prepare.log"
    assert f"data preparation failed, see {log}" in r.stderr
    assert "cannot decode TextGrid" in log.read_text()
    # a launcher that fails before the job starts writes no log: the hint says so instead of naming it
    out = tmp_path / "data2"
    r = subprocess.run(["local/data.sh", "--misp_root", str(misp), "--name", "train_far", "--data_dir", str(out),
                        "--cmd", "utils/run_local.sh --no_such_option 1"], cwd=RECIPE, capture_output=True, text=True)
    log = out / "train_far" / "log" / "prepare.log"
    assert r.returncode != 0 and not log.exists()
    assert f"no log was written at {log}" in r.stderr and f"see {log}" not in r.stderr


def test_data_sh_refuses_a_set_name_it_cannot_split(tmp_path):
    """local/data.sh takes split and field from espnet_avsr's set-name parser (one rule for both)."""
    for bad in ("eval_farr", "test_far", "evalfar"):
        r = subprocess.run(["local/data.sh", "--misp_root", str(tmp_path), "--name", bad, "--data_dir", str(tmp_path / "d")],
                           cwd=RECIPE, capture_output=True, text=True)
        assert r.returncode != 0 and f"set name '{bad}' is not <split>_<field>" in r.stderr, r.stderr
        assert f"bad --name '{bad}'" in r.stderr and not (tmp_path / "d").exists()
    r = subprocess.run(["local/data.sh", "--misp_root", str(tmp_path), "--name", "dev_middle"],
                       cwd=RECIPE, capture_output=True, text=True)  # a good name gets as far as the corpus check
    assert r.returncode != 0 and f"no {tmp_path}/transcription/dev" in r.stderr, r.stderr
