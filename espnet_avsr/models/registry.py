"""Registry of AVSR model parts selectable from a config (``model``, ``encoder``, ...).

``AVSRTask`` builds its ClassChoices from here, so an extension (MDA-KD wrapper,
MS-Adapter model) adds a choice by calling ``register("model", "mda_kd", MDAKDModel)`` in
its module and listing that module in ``PLUGIN_MODULES``.

Other packages extend it without editing this file, through Python entry points of the
group ``espnet_avsr.plugins`` (pyproject ``[project.entry-points."espnet_avsr.plugins"]``)::

    "encoder.my_encoder" = "my_pkg.encoders:MyEncoder"   # kind.name = a class: registered
    my_parts = "my_pkg.avsr_parts"                       # a module: imported (it calls register)

Entry points load in ``load_plugins`` (when ``espnet_avsr.tasks.avsr`` is imported, before its
ClassChoices are built); one that fails stops with its name and its distribution.

Nothing here may log at import time: a module-level ``logging.debug`` installs a root
handler at WARNING level, and ESPnet's later ``logging.basicConfig`` (INFO, in main_worker)
then does nothing, so training logs lose their progress and epoch results.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from typing import Dict, Type

from espnet2.asr.decoder.transformer_decoder import TransformerDecoder

from espnet_avsr.models.av_conformer import AVConformerEncoder
from espnet_avsr.models.espnet_model import ESPnetAVSRModel
from espnet_avsr.models.video_conformer import VideoConformerEncoder
from espnet_avsr.models.visual_frontend import ResNet18VideoFrontend

KINDS = ("model", "encoder", "decoder", "video_frontend")

REGISTRY: Dict[str, Dict[str, Type]] = {
    "model": {"espnet": ESPnetAVSRModel},
    "encoder": {"av_conformer": AVConformerEncoder, "video_conformer": VideoConformerEncoder},
    "decoder": {"transformer": TransformerDecoder},
    "video_frontend": {"resnet18": ResNet18VideoFrontend},
}

ENTRY_POINT_GROUP = "espnet_avsr.plugins"

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


class PluginError(RuntimeError):
    """An ``espnet_avsr.plugins`` entry point cannot be loaded or registered."""


def _load_entry_point(ep: "importlib.metadata.EntryPoint") -> None:
    dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown distribution"
    where = f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP}, from {dist})"
    try:
        obj = ep.load()
    except Exception as e:  # noqa: BLE001 - any import error of a third-party plugin: name it
        raise PluginError(f"{where} failed to load: {type(e).__name__}: {e}") from e
    if inspect.ismodule(obj):
        return  # importing it registered its parts
    kind, _, name = ep.name.partition(".")
    if inspect.isclass(obj):
        if kind not in REGISTRY or not name:
            raise PluginError(f"{where}: a class needs a name '<kind>.<choice>' with kind one of {KINDS}")
        register(kind, name, obj)
    elif callable(obj):
        obj()  # a registration function
    else:
        raise PluginError(f"{where}: expected a module, a class or a function, got {type(obj).__name__}")


def load_plugins() -> None:
    """Import the extension modules, then the ``espnet_avsr.plugins`` entry points, so they
    register their choices."""
    for mod in PLUGIN_MODULES:
        importlib.import_module(mod)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _load_entry_point(ep)
