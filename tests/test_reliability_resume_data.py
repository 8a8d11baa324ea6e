"""A data stage killed with SIGKILL mid-way and rerun: no duplicates, no partial outputs kept,
outputs identical to an uninterrupted run (enhance_audio, WPE + delay-and-sum)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_avsr.bin import enhance_audio as enhance_cli
from espnet_avsr.common.kaldi_dir import read_kv
from espnet_avsr.dataprep.prepare import prepare_misp_data
from test_dataprep_fixtures import make_corpus

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = ("R01_S016017_C02_I1", "R02_S016017_C03_I1", "R03_S016017_C04_I1")
ARGS = ["--method", "wpe_ds", "--iterations", "2", "--block_s", "4", "--overlap_s", "1"]


def test_enhance_killed_midway_resumes_to_identical_outputs(tmp_path):
    corpus = tmp_path / "c"
    for s in SESSIONS:
        make_corpus(corpus, "dev", session=s, with_middle=False, with_near=False)
    data = tmp_path / "dev_far"
    prepare_misp_data(corpus, "dev", "far", data)

    ref = tmp_path / "ref"
    assert enhance_cli.main(["--data", str(data), "--out", str(ref), *ARGS]) == 0

    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "espnet_avsr.bin.enhance_audio", "--data", str(data),
                             "--out", str(out), *ARGS], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while not list(out.glob("*.wav")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in out.glob("*.wav"))
    assert 1 <= len(done) < len(SESSIONS), f"kill came too late: {done}"
    assert not (out / "data" / "wav.scp").exists()

    assert enhance_cli.main(["--data", str(data), "--out", str(out), *ARGS]) == 0
    rep = (out / "data" / "enhance_report.json").read_text()
    assert '"skipped_existing": %d' % len(done) in rep  # finished recordings were not redone
    a, b = read_kv(ref / "data" / "wav.scp"), read_kv(out / "data" / "wav.scp")  # read_kv rejects duplicate keys
    assert sorted(a) == sorted(b) == sorted(f"{s}_Far" for s in SESSIONS)
    for rec in a:
        xa, _ = sf.read(a[rec], dtype="int16")
        xb, _ = sf.read(b[rec], dtype="int16")
        np.testing.assert_array_equal(xa, xb)
    finals = sorted(p.name for p in out.glob("*.wav"))
    assert finals == sorted(f"{s}_Far.wav" for s in SESSIONS)
    # The killed writer's temp file (".<rec>.wav.tmp<pid>") may remain; it is never listed in wav.scp.
    leftovers = [p.name for p in out.glob(".*.tmp*")]
    assert all(".wav.tmp" in n for n in leftovers) and len(leftovers) <= 1
