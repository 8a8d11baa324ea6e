"""Typos inside nested ``*_conf`` sections: AVSRTask names section, class, key and the valid keys."""

from __future__ import annotations

import argparse
import copy
import re

import pytest

from espnet_avsr.tasks.avsr import AVSRTask, ConfKeyError, accepted_keys
from test_task_avsr import TINY, TOKENS


def tiny_args(**over) -> argparse.Namespace:
    conf = copy.deepcopy(TINY)
    conf.update(token_list=list(TOKENS), config="conf/typo.yaml", **over)
    return argparse.Namespace(**conf)


def with_key(section: str, **extra) -> dict:
    return {section: {**copy.deepcopy(TINY.get(section, {})), **extra}}


@pytest.mark.parametrize(
    "over, section, klass, bad, listed",
    [
        (with_key("encoder_conf", num_fusion_blokcs=2), "encoder_conf", "AVConformerEncoder",
         "num_fusion_blokcs", "num_fusion_blocks"),
        (with_key("decoder_conf", num_blokcs=1), "decoder_conf", "TransformerDecoder", "num_blokcs", "num_blocks"),
        (with_key("video_frontend_conf", widht=2), "video_frontend_conf", "ResNet18VideoFrontend", "widht", "width"),
        (with_key("frontend_conf", n_mel=40), "frontend_conf", "DefaultFrontend", "n_mel", "n_mels"),
        (dict(ctc_conf=dict(dropout=0.1)), "ctc_conf", "CTC", "dropout", "dropout_rate"),
        # **kwargs models: keys of the base class they forward to are accepted and listed
        (dict(model="mda_kd", model_conf=dict(ctc_weight=0.3, kd_weigth=1.0)), "model_conf", "MDAKDModel",
         "kd_weigth", "kd_weight"),
        (dict(model="ms_adapter", model_conf=dict(adapter_conf=dict(rnak=4))), "model_conf.adapter_conf",
         "AdapterConfig", "rnak", "rank"),
    ],
    ids=["encoder", "decoder", "video_frontend", "frontend", "ctc", "mda_kd_model", "ms_adapter_nested"],
)
def test_unknown_key_names_section_class_key_and_valid_keys(over, section, klass, bad, listed):
    with pytest.raises(ValueError) as info:
        AVSRTask.build_model(tiny_args(**over))
    msg = str(info.value)
    assert isinstance(info.value, ConfKeyError)
    assert msg.startswith(f"{section} (from conf/typo.yaml): {klass} ")
    assert f"'{bad}'" in msg
    accepted = msg.split("accepted keys: ", 1)[1].split(", ")
    assert listed in accepted and bad not in accepted


def test_forwarded_kwargs_are_accepted_and_listed():
    # ctc_weight lives on ESPnetAVSRModel; MDAKDModel takes it through **kwargs
    keys = accepted_keys(__import__("espnet_avsr.models.mda_kd", fromlist=["MDAKDModel"]).MDAKDModel)
    assert {"kd_weight", "ctc_weight", "video_dropout"} <= set(keys)

    class Open:
        def __init__(self, **kwargs):
            pass

    assert accepted_keys(Open) is None  # nothing to check against: left to the class


def test_preprocessor_conf_typo_through_build_preprocess_fn():
    with pytest.raises(ValueError, match=r"preprocessor_conf \(from conf/typo.yaml\): AVSRPreprocessor .*'flip_prb'") as info:
        AVSRTask.build_preprocess_fn(tiny_args(preprocessor_conf=dict(flip_prb=0.5)), train=True)
    accepted = str(info.value).split("accepted keys: ", 1)[1].split(", ")
    # its own keys and CommonPreprocessor's (reached through **kwargs); not the ones the task sets
    assert {"flip_prob", "crop_size", "noise_scp"} <= set(accepted) and "token_list" not in accepted


def test_key_the_task_sets_itself_is_refused_clearly():
    with pytest.raises(ValueError, match=re.escape("encoder_conf (from conf/typo.yaml): ['input_size'] are set by AVSRTask")):
        AVSRTask.build_model(tiny_args(**with_key("encoder_conf", input_size=80)))


def test_valid_config_still_builds():
    model = AVSRTask.build_model(tiny_args(model="ms_adapter", model_conf=dict(ctc_weight=0.3, adapter_conf=dict(rank=2))))
    assert type(model).__name__ == "MSAdapterModel" and model.encoder.output_size() == 32
    pre = AVSRTask.build_preprocess_fn(tiny_args(preprocessor_conf=dict(crop_size=88, flip_prob=0.0)), train=False)
    assert pre.crop_size == 88 and pre.flip_prob == 0.0
