"""Stage 10/11 decode directories (issue 18): named by an inference tag derived from the decode
settings, so a changed setting decodes into a new directory, and the report reads only the
decodes of the current settings. One decode process per model and job (decode_conditions)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_decode_conditions import _save_model
from test_task_avsr import TINY, make_dump

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "misp_avsr" / "avsr1"


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return _make_exp(tmp_path_factory.mktemp("recipe_decode"))


def _make_exp(tmp: Path) -> Path:
    """A trained-looking AV model (random weights) and a dumped test set, as stage 10 expects them."""
    from espnet_avsr.tasks.avsr import AVSRTask

    src = make_dump(tmp / "src")
    (tmp / "dump" / "raw").mkdir(parents=True)
    os.symlink(src, tmp / "dump" / "raw" / "eval_far")
    cfg, pth = _save_model(AVSRTask, TINY, tmp / "exp" / "AV0", tmp / "src" / "tokens.txt")
    pth.rename(pth.with_name("valid.acc.ave.pth"))
    (tmp / "decode.yaml").write_text(yaml.safe_dump({"beam_size": 2, "ctc_weight": 0.3, "nbest": 1}))
    return tmp


def _run(tmp, *args, stop=11):
    cmd = ["./avsr.sh", "--stage", "10", "--stop_stage", str(stop), "--expdir", str(tmp / "exp"),
           "--dumpdir", str(tmp / "dump"), "--models", f"AV0:{tmp / 'exp' / 'AV0' / 'train.yaml'}:-",
           "--test_sets", "eval_far", "--test_missing_rates", "0 1.0", "--test_snrs", "",
           "--rep_similarity_samples", "0", "--decode_nj", "1", "--avsr_decode_config", str(tmp / "decode.yaml"), *args]
    r = subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def _decode(tmp: Path, models: str, *args) -> str:
    """Stage 10 alone over tmp/exp and tmp/dump: eval_far, no babble, one job, tmp/decode.yaml
    for every model."""
    cmd = ["./avsr.sh", "--stage", "10", "--stop_stage", "10", "--expdir", str(tmp / "exp"),
           "--dumpdir", str(tmp / "dump"), "--models", models, "--test_sets", "eval_far", "--test_snrs", "",
           "--decode_nj", "1", "--asr_decode_config", str(tmp / "decode.yaml"),
           "--avsr_decode_config", str(tmp / "decode.yaml"), *args]
    r = subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def _view(tmp) -> dict:
    """The decode dirs the report sees (beside them the model's meta.json, checked here)."""
    view = tmp / "exp" / ".report_view" / "AV0"
    links = {p.name: Path(os.readlink(p)).relative_to(tmp / "exp" / "AV0").as_posix() for p in view.iterdir()}
    assert links.pop("meta.json") == "meta.json"
    return links


@pytest.mark.slow
def test_changed_decode_settings_get_a_new_dir_and_the_report_uses_it(exp):
    out = _run(exp, "--inference_args", "--maxlenratio 0.5", "--decode_nj", "2")
    # tag: decode config name + the args (ESPnet's rule) + the checkpoint file
    old = exp / "exp" / "AV0" / "decode_maxlenratio0.5_valid.acc.ave"
    tagged = sorted(p.name for p in (exp / "exp" / "AV0").glob("decode*"))
    assert tagged == ["decode_maxlenratio0.5_valid.acc.ave"], tagged
    for rate in ("0", "1.0"):
        res = json.loads((old / f"eval_far_miss{rate}_random" / "score_cer" / "result.json").read_text())
        assert res["num_utts"] == 4 and res["meta"]["missing_rate"] == float(rate)
    assert out.count("one process each for all models") == 1  # both conditions in one decode run
    assert len(list((exp / "exp" / "logs").glob("decode.*.log"))) == 2  # one process per job
    assert _view(exp) == {f"eval_far_miss{r}_random": f"{old.name}/eval_far_miss{r}_random" for r in ("0", "1.0")}

    # the same settings again: nothing is decoded
    again = _run(exp, "--inference_args", "--maxlenratio 0.5", stop=10)
    assert "[skip] decode AV0" in again and "one process each" not in again
    # --noise_test_sets none: no babble set is mixed, whatever --test_snrs says
    quiet = _run(exp, "--inference_args", "--maxlenratio 0.5", "--test_snrs", "0",
                 "--noise_test_sets", "none", stop=10)
    assert "babble SNRs: none" in quiet and "[skip] decode AV0" in quiet
    assert sorted(p.name for p in (exp / "dump" / "raw").iterdir()) == ["eval_far"]

    # another setting: a new directory, and the report reads it, not the old one
    _run(exp, "--inference_args", "--maxlenratio 0.4")
    new = exp / "exp" / "AV0" / "decode_maxlenratio0.4_valid.acc.ave"
    assert (new / "eval_far_miss0_random" / "score_cer" / "result.json").is_file()
    assert old.is_dir()  # earlier results are kept, just not reported
    assert _view(exp) == {f"eval_far_miss{r}_random": f"{new.name}/eval_far_miss{r}_random" for r in ("0", "1.0")}
    assert (exp / "exp" / "RESULTS.md").is_file()

    # the decode config edited in place (same name, same tag): its settings record redoes the decode
    (exp / "decode.yaml").write_text(yaml.safe_dump({"beam_size": 3, "ctc_weight": 0.3, "nbest": 1}))
    edited = _run(exp, "--inference_args", "--maxlenratio 0.4", stop=10)
    assert "decode settings of AV0 changed" in edited and "one process each for all models" in edited
    assert "beam_size: 3" in (new / "decode_settings").read_text()

    # the experiment folder copied elsewhere (file times kept): its decodes are still valid, since
    # a checkpoint is recorded as <model>/<file>; a record with a folder path in front (as written
    # before) reads the same, while another checkpoint time still redoes the decode
    settings = new / "decode_settings"
    assert "checkpoint AV0/valid.acc.ave.pth " in settings.read_text()
    moved = exp / "moved"
    shutil.copytree(exp / "exp", moved / "exp", symlinks=True)
    os.symlink(exp / "dump", moved / "dump")
    same = ("--inference_args", "--maxlenratio 0.4", "--avsr_decode_config", str(exp / "decode.yaml"))
    out = _run(moved, *same, stop=10)
    assert "[skip] decode AV0" in out and "changed" not in out
    old_style = moved / "exp" / "AV0" / new.name / "decode_settings"
    old_style.write_text(old_style.read_text().replace("checkpoint AV0/", "checkpoint /elsewhere/exp/AV0/"))
    assert "[skip] decode AV0" in _run(moved, *same, stop=10)
    ckpt = moved / "exp" / "AV0" / "valid.acc.ave.pth"
    os.utime(ckpt, (ckpt.stat().st_atime, ckpt.stat().st_mtime + 100))
    assert "decode settings of AV0 changed" in _run(moved, *same, stop=10)


@pytest.mark.slow
def test_a_decode_stopped_before_scoring_is_scored_not_decoded_again(tmp_path):
    """A run cut after some conditions were decoded (every job wrote its condition.json) scores
    those on the next run and decodes only the rest; another job count decodes again."""
    exp = _make_exp(tmp_path)
    _run(exp, stop=10)
    root = exp / "exp" / "AV0" / "decode_valid.acc.ave"
    done, cut = root / "eval_far_miss0_random", root / "eval_far_miss1.0_random"
    for d in (done, cut):  # the cut came before scoring; the 1.0 condition was mid-decode
        shutil.rmtree(d / "score_cer")
    (cut / "logdir" / "output.1" / "condition.json").unlink()
    hyp = done / "logdir" / "output.1" / "1best_recog" / "text"
    before = hyp.stat().st_mtime_ns
    out = _run(exp, stop=10)
    assert "decode AV0 eval_far 0: decoded by an earlier run that stopped before scoring it" in out
    assert "decoding 1 condition(s)" in out and "decode AV0 eval_far 1.0: decoded by" not in out
    assert hyp.stat().st_mtime_ns == before
    for d in (done, cut):
        assert json.loads((d / "score_cer" / "result.json").read_text())["num_utts"] == 4
    shutil.rmtree(done / "score_cer")
    out = _run(exp, "--decode_nj", "2", stop=10)  # other key shares: its outputs do not fit
    assert "decoding 1 condition(s) in 2 job(s)" in out and "decoded by an earlier run" not in out
    assert hyp.stat().st_mtime_ns != before and (done / "logdir" / "output.2" / "condition.json").is_file()


@pytest.mark.slow
def test_a_missing_video_setting_redecodes_the_av_model_only(tmp_path):
    """--test_missing_fill black gives the AV model a new decode directory and leaves the
    audio-only model's decode alone (its settings hold no missing-video line)."""
    from espnet2.tasks.asr import ASRTask
    from espnet_avsr.tasks.avsr import AVSRTask
    from test_decode_conditions import TINY_ASR

    src = make_dump(tmp_path / "src")
    (tmp_path / "dump" / "raw").mkdir(parents=True)
    os.symlink(src, tmp_path / "dump" / "raw" / "eval_far")
    for task, conf, name in ((ASRTask, TINY_ASR, "A0"), (AVSRTask, TINY, "AV0")):
        _, pth = _save_model(task, conf, tmp_path / "exp" / name, tmp_path / "src" / "tokens.txt")
        pth.rename(pth.with_name("valid.acc.ave.pth"))
    (tmp_path / "decode.yaml").write_text(yaml.safe_dump({"beam_size": 2, "ctc_weight": 0.3, "nbest": 1}))
    models = f"A0:{tmp_path / 'exp' / 'A0' / 'train.yaml'}:-\nAV0:{tmp_path / 'exp' / 'AV0' / 'train.yaml'}:-"

    def run(*args):
        return _decode(tmp_path, models, "--test_missing_rates", "1.0", *args)

    run()
    a0 = tmp_path / "exp" / "A0" / "decode_valid.acc.ave" / "eval_far" / "text"
    before = a0.stat().st_mtime_ns
    out = run("--test_missing_fill", "black")
    assert "decode settings of A0 changed" not in out and "[skip] decode A0" in out
    assert a0.stat().st_mtime_ns == before
    black = tmp_path / "exp" / "AV0" / "decode_fillblack_valid.acc.ave" / "eval_far_miss1.0_random"
    assert json.loads((black / "score_cer" / "result.json").read_text())["meta"]["missing_fill"] == "black"
    assert (tmp_path / "exp" / "AV0" / "decode_valid.acc.ave" / "eval_far_miss1.0_random" / "text").is_file()


@pytest.mark.slow
def test_a_lip_reader_decodes_with_complete_video_unless_asked_for_black_frames(tmp_path):
    """A lip reader is decoded with complete video only; --vsr_missing_rates "0 1.0" with
    --test_missing_fill black adds the same model with every frame black (its decoder's grammar
    alone, the control of the lip calibration), into the fill's own decode directory."""
    from espnet_avsr.tasks.avsr import AVSRTask

    src = make_dump(tmp_path / "src")
    (tmp_path / "dump" / "raw").mkdir(parents=True)
    os.symlink(src, tmp_path / "dump" / "raw" / "eval_far")
    v0 = dict(TINY, encoder="video_conformer",
              encoder_conf=dict(output_size=32, attention_heads=2, linear_units=64, num_blocks=1,
                                cnn_module_kernel=7, dropout_rate=0.0, positional_dropout_rate=0.0))
    _, pth = _save_model(AVSRTask, v0, tmp_path / "exp" / "V0", tmp_path / "src" / "tokens.txt")
    pth.rename(pth.with_name("valid.acc.ave.pth"))
    (tmp_path / "decode.yaml").write_text(yaml.safe_dump({"beam_size": 2, "ctc_weight": 0.3, "nbest": 1}))

    def run(*args):
        return _decode(tmp_path, f"V0:{tmp_path / 'exp' / 'V0' / 'train.yaml'}:-", "--test_missing_rates", "0 0.5", *args)

    run()  # the AV models' test rates do not apply to a lip reader
    plain = tmp_path / "exp" / "V0" / "decode_valid.acc.ave"
    assert sorted(p.name for p in plain.glob("eval_far*")) == ["eval_far_miss0_random"]
    run("--vsr_missing_rates", "0 1.0", "--test_missing_fill", "black")
    black = tmp_path / "exp" / "V0" / "decode_fillblack_valid.acc.ave"
    assert sorted(p.name for p in black.glob("eval_far*")) == ["eval_far_miss0_random", "eval_far_miss1.0_random"]
    for name, rate in (("0", 0.0), ("1.0", 1.0)):
        res = json.loads((black / f"eval_far_miss{name}_random" / "score_cer" / "result.json").read_text())
        assert res["num_utts"] == 4
        assert res["meta"]["missing_rate"] == rate and res["meta"]["missing_fill"] == "black"


@pytest.mark.slow
def test_claims_take_the_study_relative_cer_at_test_rates_0_and_1(tmp_path):
    """Stage 11 hands make_claims the dropout study's relative CER (AVd<rate> against A0's
    hypotheses) with complete video and with none, as the paper's figure shows it, and the
    claim has one part per test rate; the 0.5 decode is not a part of it. The study models are
    not decoded under babble (no claim reads it); A0 is. With dev and eval, the claims and the
    similarity matrices they read are on eval (the last test set), dev gets no matrices."""
    from espnet2.tasks.asr import ASRTask
    from espnet_avsr.tasks.avsr import AVSRTask
    from test_decode_conditions import TINY_ASR

    src = make_dump(tmp_path / "src")
    (tmp_path / "dump" / "raw").mkdir(parents=True)
    os.symlink(src, tmp_path / "dump" / "raw" / "eval_far")
    os.symlink(make_dump(tmp_path / "src_dev", seed=1), tmp_path / "dump" / "raw" / "dev_far")
    exp = tmp_path / "exp"
    for task, conf, name in ((ASRTask, TINY_ASR, "A0"), (AVSRTask, TINY, "AVd0.1"), (AVSRTask, TINY, "AVd0.3")):
        _, pth = _save_model(task, conf, exp / name, tmp_path / "src" / "tokens.txt")
        pth.rename(pth.with_name("valid.acc.ave.pth"))
    (tmp_path / "decode.yaml").write_text(yaml.safe_dump({"beam_size": 2, "ctc_weight": 0.3, "nbest": 1}))
    cmd = ["./avsr.sh", "--stage", "10", "--stop_stage", "11", "--expdir", str(exp), "--dumpdir", str(tmp_path / "dump"),
           "--models", f"A0:{exp / 'A0' / 'train.yaml'}:-", "--dropout_study_rates", "0.1 0.3",
           "--dropout_study_config", str(exp / "AVd0.1" / "train.yaml"), "--dropout_study_init", "A0",
           "--test_sets", "dev_far eval_far", "--noise_test_sets", "eval_far", "--test_missing_rates", "0 0.5 1.0",
           "--test_snrs", "0", "--babble_source", str(src), "--rep_similarity_samples", "2", "--decode_nj", "1",
           "--asr_decode_config", str(tmp_path / "decode.yaml"), "--avsr_decode_config", str(tmp_path / "decode.yaml")]
    r = subprocess.run(cmd, cwd=RECIPE, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (exp / "A0" / "decode_valid.acc.ave" / "eval_far_babble0" / "score_cer" / "result.json").is_file()
    for name in ("AVd0.1", "AVd0.3"):
        decoded = {p.name for p in (exp / name).glob("decode*/*")}
        assert "eval_far_miss0_random" in decoded and not any("babble" in d for d in decoded), decoded
    rows = [line.split("\t") for line in (exp / "claims_inputs" / "relative.tsv").read_text().splitlines()]
    a0_text = str(exp / "A0" / "decode_valid.acc.ave" / "eval_far" / "text")
    assert sorted((d, s, t) for d, s, t, _, _ in rows) == [("0.1", "0", "0"), ("0.1", "0", "1"),
                                                          ("0.3", "0", "0"), ("0.3", "0", "1")]
    assert all(ref == a0_text and Path(hyp).is_file() for _, _, _, ref, hyp in rows)
    assert {Path(hyp).parent.name for *_, hyp in rows} == {"eval_far_miss0_random", "eval_far_miss1.0_random"}
    claims = {c["name"]: c for c in json.loads((exp / "claims.json").read_text())}
    parts = claims["relative_cer_falls"]["parts"]
    assert [p["name"] for p in parts] == ["relative_cer_falls_missing=0", "relative_cer_falls_missing=1"]
    assert all(p["a"] == "training dropout 0.1/0.3" and len(p["seeds_b"]) == 2 for p in parts)
    sims = [line.split("\t") for line in (exp / "claims_inputs" / "similarity.tsv").read_text().splitlines()]
    assert sorted((d, Path(f).parent.name) for d, _, f in sims) == [("0.1", "rep_similarity_eval_far"),
                                                                    ("0.3", "rep_similarity_eval_far")]
    assert not list(exp.glob("*/rep_similarity_dev_far")) and "similarity_rises" in claims
    # dev gets its own claims (to set beside eval's): dev's decodes, no babble, no similarity
    dev = {c["name"]: c for c in json.loads((exp / "claims_dev_far.json").read_text())}
    dev_rows = [line.split("\t") for line in (exp / "claims_inputs_dev_far" / "decodes.tsv").read_text().splitlines()]
    assert dev_rows and all("/dev_far" in d and "babble" not in c for _, _, c, d in dev_rows)
    assert {Path(hyp).parent.name for *_, hyp in (line.split("\t") for line in
            (exp / "claims_inputs_dev_far" / "relative.tsv").read_text().splitlines())} == \
        {"dev_far_miss0_random", "dev_far_miss1.0_random"}
    assert "relative_cer_falls" in dev and "similarity_rises" not in dev
    assert not any(n.startswith("av6_best_babble") for n in dev)
    assert any(n.startswith("av6_best_babble") for n in claims)
    assert "relative CER" in (exp / "CLAIMS_dev_far.md").read_text(encoding="utf-8")
