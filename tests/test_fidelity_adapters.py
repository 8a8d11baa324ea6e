"""Adapters on the query/key/value projections only (the figure's W_{K,Q,V}): which modules
carry them, for the audio, shared and decoder blocks, and the adapter file round trip."""

from __future__ import annotations

import argparse
import re

import pytest
import torch
import yaml

from espnet_avsr.models.adapters import AdapterConfig, LoRALinear, adapter_conf_from_state_dict
from espnet_avsr.models.ms_adapter import MSAdapterModel
from espnet_avsr.tasks.avsr import AVSRTask

from test_fidelity_merge import CONF


def build(merge: str = "figure", **adapter) -> MSAdapterModel:
    c = yaml.safe_load(yaml.safe_dump(CONF))
    c["encoder_conf"]["merge"] = merge
    c["model_conf"] = dict(ctc_weight=0.3, adapter_conf=dict(rank=2, alpha=4.0, **adapter))
    torch.manual_seed(0)
    return AVSRTask.build_model(argparse.Namespace(**c))


def expected(projections, n_audio=2, n_shared=2, n_dec=1):
    names = set()
    for blocks, n, attns in (("encoder.audio_blocks", n_audio, ["self_attn"]),
                             ("encoder.shared_blocks", n_shared, ["self_attn"]),
                             ("decoder.decoders", n_dec, ["self_attn", "src_attn"])):
        names |= {f"{blocks}.{i}.{a}.{p}" for i in range(n) for a in attns for p in projections}
    return names


def test_qkv_adapters_sit_on_query_key_value_of_audio_shared_and_decoder_blocks():
    ms = build(targets="qkv")
    qkv = expected(["linear_q", "linear_k", "linear_v"])
    assert set(ms.adapted_modules) == qkv
    assert {n for n, m in ms.named_modules() if isinstance(m, LoRALinear)} == qkv
    assert not any(re.search(r"(linear_out|linear_pos|w_[12])$", n) for n in ms.adapted_modules)
    # the explicit list is the same thing; the default keeps the output projection (old behaviour)
    assert set(build(targets=["linear_q", "linear_k", "linear_v"]).adapted_modules) == qkv
    assert set(build().adapted_modules) == expected(["linear_q", "linear_k", "linear_v", "linear_out"])
    assert set(build(targets="attention").adapted_modules) == set(build().adapted_modules)


def test_qkv_adapter_file_describes_itself():
    ms = build(targets="qkv")
    conf = adapter_conf_from_state_dict(ms.adapter_state_dict())
    assert conf["targets"] == ["linear_k", "linear_q", "linear_v"] and conf["bridge"] == "skip"
    assert set(build(**{k: v for k, v in conf.items() if k not in ("rank", "alpha")}).adapted_modules) == set(
        ms.adapted_modules)


def test_unknown_target_shorthand_is_refused():
    with pytest.raises(ValueError, match="'qv' is no shorthand"):
        AdapterConfig(targets="qv")
    with pytest.raises(ValueError, match="bridge must be one of"):
        AdapterConfig(bridge="ffn")
