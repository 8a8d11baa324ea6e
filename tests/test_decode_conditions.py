"""One process decodes every condition of a model (decode_conditions): its outputs equal the
single-condition tools' (avsr_inference, espnet2 asr_inference) run on each condition alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet_avsr.common.experiment import read_facts
from test_task_avsr import TINY, make_dump, run_cli

TINY_ASR = dict(
    frontend="default",
    frontend_conf=dict(fs=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40),
    normalize="utterance_mvn",
    encoder="conformer",
    encoder_conf=dict(output_size=32, attention_heads=2, linear_units=64, num_blocks=1, cnn_module_kernel=7,
                      input_layer="conv2d", rel_pos_type="latest", pos_enc_layer_type="rel_pos",
                      selfattention_layer_type="rel_selfattn"),
    decoder="transformer",
    decoder_conf=dict(attention_heads=2, linear_units=64, num_blocks=1),
    token_type="char",
)


def _save_model(task, conf: dict, root: Path, tokens: Path):
    torch.manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    args = task.get_parser().parse_args(["--config", str(root / "train.yaml"), "--token_list", str(tokens)])
    model = task.build_model(args)
    for p in model.parameters():  # larger weights: hypotheses of a few tokens, not empty ones
        p.data.mul_(3.0)
    keep = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    (root / "config.yaml").write_text(yaml.safe_dump(keep, allow_unicode=True), encoding="utf-8")
    torch.save(model.state_dict(), root / "model.pth")
    return root / "config.yaml", root / "model.pth"


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dec_cond")
    a = make_dump(tmp / "a")
    b = make_dump(tmp / "b", sents=["看你", "好电视"], seed=1)
    keys = tmp / "keys.scp"  # a share of set a, as a recipe job gets
    keys.write_text("".join(line.split()[0] + "\n" for line in (a / "wav.scp").read_text().splitlines()[::2]))
    return tmp, a, b, keys


def _outputs(d: Path) -> dict:
    return {f: (d / "1best_recog" / f).read_text(encoding="utf-8") for f in ("text", "token", "token_int", "score")}


def test_avsr_conditions_equal_one_at_a_time(sets):
    from espnet_avsr.tasks.avsr import AVSRTask

    tmp, a, b, keys = sets
    cfg, pth = _save_model(AVSRTask, TINY, tmp / "av", tmp / "a" / "tokens.txt")
    common = ["--asr_train_config", cfg, "--asr_model_file", pth, "--beam_size", 3,
              "--missing_pattern", "segment", "--missing_seed", 7]
    conds = [(a, None, "0"), (a, None, "0.5"), (a, keys, "0.25"), (b, None, "1.0")]
    for i, (d, k, rate) in enumerate(conds):
        run_cli("espnet_avsr.bin.avsr_inference", [
            *common, "--output_dir", tmp / f"one{i}", "--missing_rate", rate,
            "--data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
            "--data_path_and_name_and_type", f"{d}/roi.scp,video,npy", *(["--key_file", k] if k else [])], tmp)
    specs = []
    for i, (d, k, rate) in enumerate(conds):
        specs += ["--condition", f"out={tmp / f'all{i}'},data={d},rate={rate}" + (f",keys={k}" if k else "")]
    run_cli("espnet_avsr.bin.decode_conditions", ["--task", "avsr", *specs, *common], tmp)
    texts = set()
    for i in range(len(conds)):
        one, all_ = _outputs(tmp / f"one{i}"), _outputs(tmp / f"all{i}")
        assert one == all_, f"condition {i} differs"
        texts.add(one["text"])
    assert len(texts) == len(conds)  # the conditions really differ (else the test shows nothing)
    assert len(_outputs(tmp / "all2")["text"].splitlines()) == 2  # the key file's share only
    # each output records the condition it was decoded under (what scoring reads, not the dir name)
    assert [read_facts([tmp / f"all{i}" / "condition.json"]) for i in (0, 2)] == [
        {"missing_rate": rate, "missing_pattern": "segment", "missing_fill": "zeros", "missing_seed": 7}
        for rate in (0.0, 0.25)]


def test_asr_conditions_equal_espnet_asr_inference(sets):
    from espnet2.tasks.asr import ASRTask

    tmp, a, b, _ = sets
    cfg, pth = _save_model(ASRTask, TINY_ASR, tmp / "asr", tmp / "a" / "tokens.txt")
    common = ["--asr_train_config", cfg, "--asr_model_file", pth, "--beam_size", 3, "--ctc_weight", 0.3]
    for i, d in enumerate((a, b)):
        run_cli("espnet2.bin.asr_inference", [*common, "--output_dir", tmp / f"asr_one{i}",
                                              "--data_path_and_name_and_type", f"{d}/wav.scp,speech,sound"], tmp)
    run_cli("espnet_avsr.bin.decode_conditions", [
        "--task", "asr", "--condition", f"out={tmp / 'asr_all0'},data={a},rate=-",
        "--condition", f"out={tmp / 'asr_all1'},data={b},rate=-", *common], tmp)
    for i in range(2):
        assert _outputs(tmp / f"asr_one{i}") == _outputs(tmp / f"asr_all{i}")
    assert set(read_facts([tmp / "asr_all0" / "condition.json"]).values()) == {None}  # no video fed
    # two models in one process ("---" between their options): the same outputs again
    av = ["--asr_train_config", tmp / "av" / "config.yaml", "--asr_model_file", tmp / "av" / "model.pth",
          "--beam_size", 3, "--missing_pattern", "segment", "--missing_seed", 7]
    run_cli("espnet_avsr.bin.decode_conditions", [
        "--task", "asr", "--condition", f"out={tmp / 'two_asr'},data={b},rate=-", *common, "---",
        "--task", "avsr", "--condition", f"out={tmp / 'two_av'},data={b},rate=1.0", *av], tmp)
    assert _outputs(tmp / "two_asr") == _outputs(tmp / "asr_one1")
    assert _outputs(tmp / "two_av") == _outputs(tmp / "one3")


def test_ctc_greedy_is_the_best_path(sets):
    from espnet_avsr.bin.avsr_inference import AVSpeech2Text

    tmp, a, _, _ = sets
    cfg, pth = tmp / "av" / "config.yaml", tmp / "av" / "model.pth"
    if not cfg.is_file():
        pytest.skip("needs the AV model of test_avsr_conditions_equal_one_at_a_time")
    run_cli("espnet_avsr.bin.decode_conditions", [
        "--task", "avsr", "--mode", "ctc_greedy", "--condition", f"out={tmp / 'greedy'},data={a},rate=0",
        "--asr_train_config", cfg, "--asr_model_file", pth], tmp)
    got = dict(line.split(maxsplit=1) if " " in line else (line, "")
               for line in _outputs(tmp / "greedy")["token_int"].splitlines())
    s2t = AVSpeech2Text(cfg, pth)
    for line in (a / "wav.scp").read_text().splitlines():
        utt, wav = line.split()
        speech, _ = sf.read(wav, dtype="float32")
        video = s2t.prepare_video(np.load(wav.replace(".wav", ".npy")))
        with torch.no_grad():
            enc, _ = s2t.model.encode(torch.as_tensor(speech)[None], torch.tensor([len(speech)]),
                                           video[None], torch.tensor([video.shape[0]]))
            ids = s2t.model.ctc.argmax(enc)[0].tolist()
        path = [t for i, t in enumerate(ids) if t != 0 and (i == 0 or t != ids[i - 1])]
        assert got[utt].split() == [str(t) for t in path], utt


@pytest.mark.parametrize("spec, message", [
    ("out=x,data=y", "missing rate"),
    ("out=x,data=y,rate=2", "rate must be in [0, 1]"),
    ("out=x,data=y,rate=a", "rate must be a number"),
    ("out=x,dta=y,rate=0", "is not"),
])
def test_bad_condition_is_named(spec, message):
    import argparse

    from espnet_avsr.bin.decode_conditions import parse_condition

    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_condition(spec)
