"""Registry of AVSR model parts selectable from a config (``model``, ``encoder``, ...).

``AVSRTask`` builds its ClassChoices from here, so an extension (MDA-KD wrapper,
MS-Adapter model) adds a choice by calling ``register("model", "mda_kd", MDAKDModel)`` in
its module and listing that module in ``PLUGIN_MODULES``.

Nothing here may log at import time: a module-level ``logging.debug`` installs a root
handler at WARNING level, and ESPnet's later ``logging.basicConfig`` (INFO, in main_worker)
then does nothing, so training logs lose their progress and epoch results.
"""

from __future__ import annotations

import importlib
from typing import Dict, Type

from espnet2.asr.decoder.transformer_decoder import TransformerDecoder

from espnet_avsr.models.av_conformer import AVConformerEncoder
from espnet_avsr.models.decoders import AVFusionDecoder
from espnet_avsr.models.espnet_model import ESPnetAVSRModel
from espnet_avsr.models.video_conformer import VideoConformerEncoder
from espnet_avsr.models.visual_frontend import ResNet18VideoFrontend

KINDS = ("model", "encoder", "decoder", "video_frontend")

REGISTRY: Dict[str, Dict[str, Type]] = {
    "model": {"espnet": ESPnetAVSRModel},
    "encoder": {"av_conformer": AVConformerEncoder, "video_conformer": VideoConformerEncoder},
    "decoder": {"transformer": TransformerDecoder, "fusion": AVFusionDecoder},
    "video_frontend": {"resnet18": ResNet18VideoFrontend},
}

PLUGIN_MODULES = (
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
    """Import the extension modules so they register their choices."""
    for mod in PLUGIN_MODULES:
        importlib.import_module(mod)
