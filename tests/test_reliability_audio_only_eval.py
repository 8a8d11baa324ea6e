"""Evaluation utterances whose face was never found: kept by the dump (zero-length ROI
marker), decoded as video entirely missing; training dumps still drop them."""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from espnet_avsr.bin import make_dump as dump_cli
from espnet_avsr.data.collate import AVCollateFn
from espnet_avsr.dataprep.dump import make_dump as dump_dir
from espnet_avsr.common.kaldi_dir import read_kv, write_kv
from espnet_avsr.dataprep.validate import validate_dir
from test_task_avsr import SENTS, TINY, TOKENS, make_dump as make_test_dump

NO_FACE = 2  # index of the utterance the detector never found


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def data(tmp_path) -> Path:
    """Kaldi dir (one recording per utterance) + a roi.scp that lacks utterance NO_FACE."""
    d = make_test_dump(tmp_path)
    wavs, rois = read_kv(d / "wav.scp"), read_kv(d / "roi.scp")
    utts = sorted(wavs)
    src = tmp_path / "data"
    write_kv(src / "wav.scp", wavs)
    write_kv(src / "text", read_kv(d / "text"))
    write_kv(src / "utt2spk", {u: "S001" for u in utts})
    roi = tmp_path / "roi"
    write_kv(roi / "roi.scp", {u: p for u, p in rois.items() if u != utts[NO_FACE]})
    write_kv(roi / "roi_detect_ratio", {u: "0.9" for u in rois if u != utts[NO_FACE]})
    return tmp_path


def utt(i: int) -> str:
    return f"S001_R01_S001002_C01_I0_{i:06d}-{i + 1:06d}"


def test_eval_dump_keeps_no_video_utterance_train_dump_drops_it(data):
    gone = utt(NO_FACE)
    train = data / "raw_train"
    rep = dump_dir(data / "data", train, roi_scp=data / "roi" / "roi.scp")
    assert rep["dropped"] == {"no_roi": 1} and rep["dropped_utts"] == {gone: "no_roi"}
    assert rep["kept_without_roi"] == 0 and gone not in read_kv(train / "wav.scp")

    ev = data / "raw_eval"
    assert dump_cli.main(["--data", str(data / "data"), "--out", str(ev), "--roi_scp", str(data / "roi" / "roi.scp"),
                          "--no_roi", "mark"]) == 0
    rep = json.loads((ev / "dump_report.json").read_text(encoding="utf-8"))
    assert rep["dropped"] == {} and rep["num_utts"] == len(SENTS)
    assert rep["no_roi_policy"] == "mark" and rep["kept_without_roi"] == 1 and rep["kept_without_roi_utts"] == [gone]
    # every list has every utterance: ESPnet's dataset needs the key in every scp
    for name in ("wav.scp", "text", "utt2spk", "utt2num_samples", "roi.scp", "roi_detect_ratio"):
        assert sorted(read_kv(ev / name)) == [utt(i) for i in range(len(SENTS))], name
    marker = np.load(read_kv(ev / "roi.scp")[gone])
    assert marker.shape == (0, 96, 96) and marker.dtype == np.uint8
    assert read_kv(ev / "roi_detect_ratio")[gone] == "0.0"
    assert read_kv(ev / "roi.scp")[utt(0)] == read_kv(data / "roi" / "roi.scp")[utt(0)]
    assert validate_dir(ev) == []  # audio-only users read wav.scp/text as before

    with pytest.raises(ValueError, match="keep_audio_only contradicts no_roi='mark'"):
        dump_dir(data / "data", data / "x", roi_scp=data / "roi" / "roi.scp", keep_audio_only=True, no_roi="mark")


def test_collate_turns_marker_into_fully_missing_video():
    speech = np.zeros(640 * 7 + 100, np.float32)
    items = [("a", {"speech": np.zeros(640 * 5, np.float32), "video": np.ones((5, 88, 88), np.float32)}),
             ("gone", {"speech": speech, "video": np.zeros((0, 88, 88), np.float32)})]
    _, b = AVCollateFn()(items)
    assert b["video"].shape == (2, 7, 88, 88) and b["video_lengths"].tolist() == [5, 7]
    assert not b["video_missing"][0].any()
    assert b["video_missing"][1].all() and not b["video"][1].any()
    with pytest.raises(ValueError, match="gone: 'video' has no frames .* no 'speech'"):
        AVCollateFn()([("gone", {"video": np.zeros((0, 88, 88), np.float32)})])


def test_validation_batch_with_marker_gives_finite_loss(data):
    """A marked utterance in a dev set used for validation during training."""
    from espnet_avsr.tasks.avsr import AVSRTask

    ev = data / "raw_eval"
    dump_dir(data / "data", ev, roi_scp=data / "roi" / "roi.scp", no_roi="mark")
    args = argparse.Namespace(**{**copy.deepcopy(TINY), "token_list": list(TOKENS)})
    loader = AVSRTask.build_streaming_iterator(
        [(f"{ev}/wav.scp", "speech", "sound"), (f"{ev}/roi.scp", "video", "npy"), (f"{ev}/text", "text", "text")],
        dtype="float32", batch_size=len(SENTS), preprocess_fn=AVSRTask.build_preprocess_fn(args, False),
        collate_fn=AVSRTask.build_collate_fn(args, False), inference=False,
    )
    keys, batch = next(iter(loader))
    assert batch["video_missing"][keys.index(utt(NO_FACE))].sum() == batch["video_lengths"][keys.index(utt(NO_FACE))] > 0
    model = AVSRTask.build_model(args).eval()
    with torch.no_grad():
        loss, stats, _ = model(**batch)
    assert torch.isfinite(loss) and 0 < float(stats["video_missing_rate"]) < 1


def write_model(tmp: Path, **over) -> tuple:
    from espnet_avsr.tasks.avsr import AVSRTask

    conf = copy.deepcopy(TINY)
    conf.update(token_list=list(TOKENS), **over)
    torch.manual_seed(0)
    model = AVSRTask.build_model(argparse.Namespace(**copy.deepcopy(conf)))
    cfg, pth = tmp / "config.yaml", tmp / "model.pth"
    cfg.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    torch.save(model.state_dict(), pth)
    return cfg, pth


def decode(tmp: Path, dump: Path, cfg: Path, pth: Path, name: str, *extra: str) -> dict:
    from espnet_avsr.bin.avsr_inference import main

    out = tmp / name
    main(["--asr_train_config", str(cfg), "--asr_model_file", str(pth), "--output_dir", str(out),
          "--beam_size", "1", "--maxlenratio", "0.3", "--data_path_and_name_and_type", f"{dump}/wav.scp,speech,sound",
          "--data_path_and_name_and_type", f"{dump}/roi.scp,video,npy", *extra])
    return read_kv(out / "1best_recog" / "score")


def test_kept_utterance_decodes_as_fully_missing_video(data, caplog):
    ev = data / "raw_eval"
    dump_dir(data / "data", ev, roi_scp=data / "roi" / "roi.scp", no_roi="mark")
    cfg, pth = write_model(data)
    with caplog.at_level(logging.INFO):
        av = decode(data, ev, cfg, pth, "dec_av")
    assert sorted(av) == [utt(i) for i in range(len(SENTS))]  # nothing lost
    assert "utterances without any video in the dump (decoded as video entirely missing): 1" in caplog.text
    gone = utt(NO_FACE)
    keys = data / "keys"  # the rest on two utterances only (time)
    keys.write_text(f"{utt(0)}\n{gone}\n", encoding="utf-8")
    audio_only = decode(data, ev, cfg, pth, "dec_a", "--audio_only", "true", "--key_file", str(keys))
    assert av[gone] == audio_only[gone]  # same as feeding no video at all
    assert av[utt(0)] != audio_only[utt(0)]  # the others did use their video

    # MS-Adapters switch on for it (and only for it) under --adapter_switch auto
    cfg, pth = write_model(data, model="ms_adapter", model_conf=dict(ctc_weight=0.3, save_adapters_only=False,
                                                                   adapter_conf=dict(rank=2)))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        decode(data, ev, cfg, pth, "dec_ms", "--key_file", str(keys))
    assert "adapter (audio-only) path: 1" in caplog.text
