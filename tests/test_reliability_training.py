"""Training reliability through ESPnet's real trainer: resume after SIGKILL, non-finite
batches (AVSRTrainer), and CPU DDP with 2 gloo processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from test_task_avsr import FS, SENTS, data_args, make_dump, write_config

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def train_args(tmp: Path, d: Path, out: Path, *extra) -> list:
    # Augmentation on (random crop, flip, time mask): AVSRPreprocessor draws from np.random,
    # which ESPnet seeds per epoch, so the resume test below is exact with it.
    cfg = write_config(tmp / "train.yaml", batch_size=1, seed=7, batch_type="unsorted",
                       preprocessor_conf=dict(crop_size=88, flip_prob=0.5, time_mask_num=1, time_mask_max_frames=3),
                       video_frontend_conf=dict(width=2))
    return [str(a) for a in [
        "--config", cfg, "--token_list", tmp / "tokens.txt", "--output_dir", out,
        *data_args(d, "train"), *data_args(d, "valid"), "--train_shape_file", d / "wav.scp", "--valid_shape_file", d / "wav.scp",
        "--ngpu", 0, "--num_workers", 0, *extra,
    ]]


def train_in_process(args) -> None:
    """Same thread count as the subprocess runs (OMP_NUM_THREADS=1): float sums depend on it."""
    from espnet_avsr.bin.avsr_train import main

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main(args)
    finally:
        torch.set_num_threads(n)


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = f"{ROOT}{os.pathsep}{e.get('PYTHONPATH', '')}"
    e["OMP_NUM_THREADS"] = "1"
    return e


def final_state(exp: Path, epoch: int) -> dict:
    return torch.load(exp / f"{epoch}epoch.pth", map_location="cpu")


# ----------------------------------------------------------------------------- resume
def test_training_resume_after_sigkill_matches_uninterrupted(tmp_path):
    d = make_dump(tmp_path, sents=SENTS * 2)
    ref = tmp_path / "ref"
    keep = ("--keep_nbest_models", 3)  # keep 1epoch.pth: the kill watches for it
    train_in_process(train_args(tmp_path, d, ref, "--max_epoch", 3, *keep))

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [PY, "-m", "espnet_avsr.bin.avsr_train", *train_args(tmp_path, d, killed, "--max_epoch", 3, *keep)],
        env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 240
    # latest.pth -> 1epoch.pth is linked after that file is fully written (torch.save is not atomic)
    while not (killed / "latest.pth").is_symlink():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "first epoch checkpoint never appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ckpt = torch.load(killed / "checkpoint.pth", map_location="cpu", weights_only=False)
    done_epochs = ckpt["reporter"]["epoch"]
    assert 1 <= done_epochs < 3, f"kill came too late (epoch {done_epochs}); the resume would be vacuous"
    assert not (killed / "3epoch.pth").exists()

    train_in_process(train_args(tmp_path, d, killed, "--max_epoch", 3, *keep, "--resume", "true"))
    a, b = final_state(ref, 3), final_state(killed, 3)
    assert a.keys() == b.keys()
    # CPU, num_workers 0, per-epoch seeding: ESPnet's resume is bit-exact here.
    diffs = {k: (a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].is_floating_point()}
    assert max(diffs.values()) == 0.0, sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
    # and training did change the parameters
    first = final_state(ref, 1)
    assert first.keys() == a.keys()
    assert any(not torch.equal(first[k], a[k]) for k in a if a[k].is_floating_point())


# ----------------------------------------------------------------------------- augmentation seeding
def _augmented_batches(epoch: int, num_workers: int) -> list:
    """Train-mode AVSRPreprocessor through ESPnet's own iterator factory (its worker seeding)."""
    from espnet2.iterators.sequence_iter_factory import SequenceIterFactory

    from espnet_avsr.data.collate import AVCollateFn
    from espnet_avsr.data.video_preprocessor import AVSRPreprocessor

    pre = AVSRPreprocessor(train=True, flip_prob=0.5, time_mask_num=1, time_mask_max_frames=3)
    rois = {f"u{i}": np.random.default_rng(i).integers(0, 256, (6, 96, 96), dtype=np.uint8) for i in range(6)}

    class Roi(torch.utils.data.Dataset):
        def __getitem__(self, uid):
            return uid, pre(uid, {"video": rois[uid]})

        def __len__(self):
            return len(rois)

    factory = SequenceIterFactory(Roi(), [["u0", "u1"], ["u2", "u3"], ["u4", "u5"]], seed=7,
                                  num_workers=num_workers, collate_fn=AVCollateFn())
    np.random.seed(7 + epoch)  # what the trainer's set_all_random_seed(seed + epoch) does
    return [batch["video"] for _, batch in factory.build_iter(epoch)]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_augmentation_is_reproducible_under_espnet_seeding(num_workers):
    a, b, other = _augmented_batches(1, num_workers), _augmented_batches(1, num_workers), _augmented_batches(2, num_workers)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, other))  # it is random: epochs differ


def test_eval_preprocessing_is_deterministic_and_draws_nothing():
    from espnet_avsr.data.video_preprocessor import AVSRPreprocessor

    roi = np.random.default_rng(0).integers(0, 256, (4, 96, 96), dtype=np.uint8)
    np.random.seed(3)
    before = np.random.get_state()[1].copy()
    x = AVSRPreprocessor(train=False)("u", {"video": roi})["video"]
    assert np.array_equal(np.random.get_state()[1], before)  # eval leaves the global state alone
    np.testing.assert_allclose(x, (roi[:, 4:92, 4:92] / 255.0 - 0.421) / 0.165, rtol=1e-5)  # centre crop


# ----------------------------------------------------------------------------- non-finite
def poison(d: Path, utt_index: int) -> str:
    """Rewrite one utterance's wav as float WAV containing NaN samples."""
    line = (d / "wav.scp").read_text(encoding="utf-8").splitlines()[utt_index]
    utt, path = line.split(maxsplit=1)
    x, sr = sf.read(path, dtype="float32")
    x[len(x) // 3: len(x) // 3 + 400] = np.nan
    sf.write(path, x, sr, subtype="FLOAT")
    return utt


def test_nonfinite_batches_are_counted_and_skipped(tmp_path):
    d = make_dump(tmp_path)
    bad = poison(d, 1)
    out = tmp_path / "exp"
    train_in_process(train_args(tmp_path, d, out, "--max_epoch", 2, "--max_nonfinite_batches", 3))
    rep = json.loads((out / "nonfinite_report.json").read_text(encoding="utf-8"))
    assert set(rep) == {"1", "2"}
    for ep in ("1", "2"):
        assert rep[ep]["batches"] == len(SENTS)
        assert rep[ep]["skipped_updates"] == 1
        assert rep[ep]["nonfinite_loss_batches"] == 1
        assert rep[ep]["optimizer_steps"] == len(SENTS) - 1
        assert bad in rep[ep]["example_utts"]
    state = final_state(out, 2)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_too_many_nonfinite_batches_stop_training_with_clear_error(tmp_path):
    from espnet_avsr.tasks.trainer import NonFiniteTrainingError

    d = make_dump(tmp_path)
    for i in range(len(SENTS)):
        poison(d, i)
    out = tmp_path / "exp"
    with pytest.raises(NonFiniteTrainingError, match=r"3 consecutive update steps had a non-finite .*--max_nonfinite_batches 2"):
        train_in_process(train_args(tmp_path, d, out, "--max_epoch", 2, "--max_nonfinite_batches", 2))
    assert not (out / "1epoch.pth").exists()


def test_nonfinite_fraction_stops_at_epoch_end(tmp_path):
    from espnet_avsr.tasks.trainer import NonFiniteTrainingError

    d = make_dump(tmp_path)
    poison(d, 0)
    poison(d, 2)
    out = tmp_path / "exp"
    with pytest.raises(NonFiniteTrainingError, match=r"epoch 1: 2 of 4 update steps .*--max_nonfinite_fraction 0.25"):
        train_in_process(train_args(tmp_path, d, out, "--max_epoch", 2, "--max_nonfinite_batches", 10,
                                    "--max_nonfinite_fraction", 0.25))


# ----------------------------------------------------------------------------- DDP
def test_cpu_ddp_two_gloo_processes(tmp_path):
    """ESPnet's multiprocessing mode needs GPUs (it turns itself off for ngpu 0), but its
    external-launcher mode works on CPU: 2 processes, --dist_rank r, gloo, file:// init."""
    d = make_dump(tmp_path)
    out = tmp_path / "exp"
    init = f"file://{tmp_path / 'dist_init'}"
    procs = []
    for rank in (0, 1):
        args = train_args(tmp_path, d, out, "--max_epoch", 1, "--multiprocessing_distributed", "false",
                          "--dist_backend", "gloo", "--dist_world_size", 2, "--dist_rank", rank,
                          "--dist_init_method", init, "--batch_size", 2)
        procs.append(subprocess.Popen([PY, "-m", "espnet_avsr.bin.avsr_train", *args], env=env(),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    logs = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        logs.append(err.decode(errors="replace"))
    for rank, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {rank}:\n{log[-3000:]}"
    assert (out / "1epoch.pth").is_file()
    # AVSRTrainer's per-rank counts: each rank trained on its half of every batch of 2
    reps = [json.loads((out / name).read_text())["1"]
            for name in ("nonfinite_report.json", "nonfinite_report.rank1.json")]
    for rep in reps:
        assert rep["utterances"] == len(SENTS) // 2 and rep["optimizer_steps"] == rep["batches"] == 2
