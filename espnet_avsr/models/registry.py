"""Registry of AVSR model parts selectable from a config (``model``, ``encoder``, ...).

``AVSRTask`` builds its ClassChoices from here, so an extension (MDA-KD wrapper,
MS-Adapter model) adds a choice by calling ``register("model", "mda_kd", MDAKDModel)`` in
its module and listing that module in ``PLUGIN_MODULES``; plugin modules that do not
exist yet are skipped.
"""

from __future__ import annotations

import importlib
import logging
from typing import Dict, Type

from espnet2.asr.decoder.transformer_decoder import TransformerDecoder

from espnet_avsr.models.av_conformer import AVConformerEncoder
from espnet_avsr.models.decoders import AVFusionDecoder
from espnet_avsr.models.espnet_model import ESPnetAVSRModel
from espnet_avsr.models.visual_frontend import ResNet18VideoFrontend

KINDS = ("model", "encoder", "decoder", "video_frontend")

REGISTRY: Dict[str, Dict[str, Type]] = {
    "model": {"espnet": ESPnetAVSRModel},
    "encoder": {"av_conformer": AVConformerEncoder},
    "decoder": {"transformer": TransformerDecoder, "fusion": AVFusionDecoder},
    "video_frontend": {"resnet18": ResNet18VideoFrontend},
}

PLUGIN_MODULES = (
    "espnet_avsr.models.kd",
    "espnet_avsr.models.mda_kd",
    "espnet_avsr.models.adapters",
    "espnet_avsr.models.ms_adapter",
)


def register(kind: str, name: str, cls: Type) -> Type:
    """Add a class under ``kind`` (one of KINDS); returns it (usable as a decorator body)."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown registry kind {kind!r}; choose one of {KINDS}")
    REGISTRY[kind][name.lower()] = cls
    return cls


def load_plugins() -> None:
    """Import the optional extension modules so they can register themselves."""
    for mod in PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            logging.debug("AVSR plugin %s not present", mod)
