"""Experiment metadata as typed records: what each model of the recipe's list is and how it trained.

Why here and not in the recipe's shell: a model's kind is read from its config's
``model`` / ``encoder`` / ``video_frontend`` keys (never from its name or the config's file
name), and its training settings are written once per model as ``exp/<name>/meta.json``;
the score metadata passed to ``score_cer --meta`` is derived from that same record.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import yaml

from espnet_avsr.common.fileio import atomic_write_text

#: asr: stock ESPnet ASR (A0); vsr: lip reader (encoder: video_conformer); adapter: MS-Adapter
#: (model: ms_adapter); avsr: the AV model; missing: the config file does not exist.
KINDS = ("asr", "vsr", "adapter", "avsr", "missing")
MODALITY = {"asr": "audio", "vsr": "video", "adapter": "av", "avsr": "av"}
META_JSON = "meta.json"


class ConfigError(ValueError):
    """A model config that cannot be read as a YAML mapping."""


def read_config(path: Union[str, Path]) -> Dict[str, Any]:
    """A training config as a dict; ConfigError names the file when it is not a YAML mapping."""
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a readable YAML config ({e})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping, got {type(cfg).__name__}")
    return cfg


def config_value(cfg: Mapping[str, Any], key: str) -> Any:
    """A top-level or dotted nested key (``model_conf.video_dropout``); None when absent."""
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def kind_of(cfg: Mapping[str, Any]) -> str:
    """What a config trains, from its keys: a config of ours names our encoder or video
    front-end (or one of our models); anything else is a stock ESPnet ASR config."""
    if cfg.get("encoder") == "video_conformer":
        return "vsr"
    if cfg.get("model") == "ms_adapter":
        return "adapter"
    if cfg.get("encoder") == "av_conformer" or "video_frontend" in cfg or cfg.get("model") == "mda_kd":
        return "avsr"
    return "asr"


def kind_of_file(path: Union[str, Path]) -> str:
    return kind_of(read_config(path)) if Path(path).is_file() else "missing"


@dataclass
class ModelRecord:
    """One model of the recipe's list and the training settings its config gives it."""

    model: str
    modality: str
    config: str                                # the config's stem, e.g. train_avsr_kd
    init: str = "none"                         # "none", a model name, or "A0+V0"
    study: Optional[str] = None                # "dropout" for models --dropout_study_rates adds
    train_dropout: Optional[Union[float, str]] = None   # a rate, or "lo-hi" for a drawn range
    train_dropout_prob: Optional[float] = None
    train_dropout_pattern: Optional[str] = None
    kd: Optional[str] = None                   # "false", or the KD distance ("true" if unnamed)
    teacher: Optional[str] = None
    adapter: Optional[str] = None              # "true" / "false" for AV models

    def as_dict(self) -> Dict[str, Any]:
        """Set fields only, in the order the score metadata has always listed them."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def meta_args(self) -> str:
        """``key=value`` words for ``score_cer --meta`` (no spaces; commas become ``-``)."""
        return " ".join(f"{k}={str(v).replace(' ', '').replace(',', '-')}" for k, v in self.as_dict().items())


def model_record(name: str, config_path: str, kind: str, init: str = "-", teacher: str = "-",
                 study: Optional[str] = None) -> ModelRecord:
    """The record of one model; ``init`` / ``teacher`` are ``-`` when the list has none."""
    cfg = read_config(config_path)
    mc = cfg.get("model_conf") or {}
    modality = MODALITY[kind]
    rec = ModelRecord(model=name, modality=modality, config=Path(config_path).stem,
                      init="none" if init == "-" else init, study=study)
    adapter = cfg.get("model") == "ms_adapter" or bool(mc.get("adapter_conf"))
    if modality == "av" and not adapter:
        vd = mc.get("video_dropout")
        if not vd:
            rec.train_dropout = 0
        else:
            rate = vd.get("rate", 0)
            rec.train_dropout = "-".join(str(r) for r in rate) if isinstance(rate, (list, tuple)) else rate
            rec.train_dropout_prob = vd.get("prob", 1.0)
            rec.train_dropout_pattern = vd.get("pattern", "random")
    if modality == "av":
        kd = teacher != "-" or cfg.get("model") == "mda_kd"
        rec.kd = (mc.get("kd_distance") or "true") if kd else "false"
        if teacher != "-":
            rec.teacher = teacher
        rec.adapter = "true" if adapter else "false"
    return rec


def write_meta(path: Union[str, Path], record: ModelRecord) -> None:
    atomic_write_text(path, json.dumps(record.as_dict(), ensure_ascii=False, indent=1) + "\n")


def read_meta(path: Union[str, Path]) -> Dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_dropout_study_config(src: Union[str, Path], rate: float, out: Union[str, Path]) -> None:
    """``src`` with video dropout on every sample at ``rate`` (a model of the dropout study)."""
    if not 0.0 < rate <= 1.0:
        raise ConfigError(f"dropout study rate must be in (0, 1], got {rate:g}")
    cfg = read_config(src)
    cfg.setdefault("model_conf", {})["video_dropout"] = {
        "prob": 1.0, "rate": rate, "pattern": "random", "fill": "zeros"}
    header = f"# Dropout study, rate {rate}: {src} with video_dropout on every sample (generated by avsr.sh)\n"
    atomic_write_text(out, header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
