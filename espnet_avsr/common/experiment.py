"""Experiment metadata as typed records: what each model of the recipe's list is, how it
trained, and what each test set and decode condition is.

Why here and not in the recipe's shell: facts are recorded once, by whoever makes the thing
they describe, and read back from those files; nothing downstream parses a name to recover
them. The contracts, one home each:

* the model list (``run.sh --models``): parsed and checked by :func:`model_list` into
  :class:`ModelSpec` rows; avsr.sh reads them from ``exp/models.tsv`` (:func:`write_models_tsv`).
  A model's kind is read from its config's ``model`` / ``encoder`` / ``video_frontend`` keys
  (:func:`kind_of`), never from its name or the config's file name.
* ``exp/<name>/meta.json`` (:class:`ModelRecord`): the model's training settings, written when
  the list is parsed; the report takes every model fact from it.
* ``<dump>/set.json`` (:class:`SetInfo`): which clean test set a dump is (or was mixed from), its
  microphone field, its noise and SNR; written by the recipe for its test sets and by
  ``mix_noise`` for the noisy copies.
* ``<decode out>/condition.json`` (:class:`ConditionInfo`): the missing-video condition a decode
  ran under, written by ``decode_conditions``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from espnet_avsr.common.fileio import atomic_write_text
from espnet_avsr.common.naming import parse_set_name

PathLike = Union[str, Path]

#: asr: stock ESPnet ASR (A0); vsr: lip reader (encoder: video_conformer); adapter: MS-Adapter
#: (model: ms_adapter); avsr: the AV model; missing: the config file does not exist.
KINDS = ("asr", "vsr", "adapter", "avsr", "missing")
MODALITY = {"asr": "audio", "vsr": "video", "adapter": "av", "avsr": "av"}
META_JSON = "meta.json"
#: Checkpoints of a trained model's exp directory, in the order the recipe decodes, packs and
#: initialises from them when ``--best_model`` is absent (avsr.sh model_checkpoint, avsr_pack).
CHECKPOINTS = ("valid.acc.ave.pth", "valid.acc.best.pth", "valid.loss.ave.pth", "valid.loss.best.pth", "latest.pth")
SET_JSON = "set.json"
CONDITION_JSON = "condition.json"
NOISES = ("none", "babble", "file")
#: What "nothing" is in a models.tsv column (an empty column would vanish in bash's `read`).
NONE = "-"
TSV_COLUMNS = ("name", "config", "init", "teacher", "seed", "base", "kind", "study_rate")


class ConfigError(ValueError):
    """A model config that cannot be read as a YAML mapping."""


class ModelListError(ValueError):
    """A model list entry that is malformed or refers to what the list lacks (names the entry)."""


class MetaError(ValueError):
    """A metadata file that is missing or malformed (names the file)."""


# --------------------------------------------------------------------------- configs


def read_config(path: PathLike) -> Dict[str, Any]:
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


def kind_of_file(path: PathLike) -> str:
    return kind_of(read_config(path)) if Path(path).is_file() else "missing"


# data/missing_video.FILLS, spelled out so that avsr.sh's model-list check needs no torch import
# (tests/test_experiment_meta.py holds the two equal)
STUDY_FILLS = ("zeros", "black", "repeat_last")


def write_dropout_study_config(src: PathLike, rate: float, out: PathLike, fill: str = "zeros") -> None:
    """``src`` with video dropout on every sample at ``rate`` (a model of the dropout study),
    the dropped frames filled with ``fill`` (the recipe passes the fill its decodes use)."""
    if not 0.0 < rate <= 1.0:
        raise ConfigError(f"dropout study rate must be in (0, 1], got {rate:g}")
    if fill not in STUDY_FILLS:
        raise ConfigError(f"dropout study fill must be one of {', '.join(STUDY_FILLS)}, got '{fill}'")
    cfg = read_config(src)
    cfg.setdefault("model_conf", {})["video_dropout"] = {
        "prob": 1.0, "rate": rate, "pattern": "random", "fill": fill}
    header = f"# Dropout study, rate {rate}: {src} with video_dropout on every sample (generated by avsr.sh)\n"
    atomic_write_text(out, header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))


# --------------------------------------------------------------------------- the model list

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the list as it will be trained (seed copies are models of their own)."""

    name: str
    config: str
    init: Tuple[str, ...] = ()          # () from scratch; (A0,) or an AV model; (A0, V0)
    teacher: Optional[str] = None       # the frozen MDA-KD teacher
    kind: str = "missing"               # from the config's keys (KINDS)
    seed: Optional[int] = None          # None: ESPnet's default seed
    base: str = ""                      # the name without its seed suffix
    study_rate: Optional[str] = None    # dropout-study models: the rate as the user wrote it
    token: str = ""                     # the list entry it came from (for messages)

    @property
    def init_arg(self) -> str:
        return "+".join(self.init) if self.init else NONE

    @property
    def teacher_arg(self) -> str:
        return self.teacher or NONE

    @property
    def study(self) -> Optional[str]:
        return "dropout" if self.study_rate is not None else None

    def tsv_row(self) -> str:
        cols = (self.name, self.config, self.init_arg, self.teacher_arg,
                NONE if self.seed is None else str(self.seed), self.base, self.kind, self.study_rate or NONE)
        return "\t".join(cols)


def parse_model_token(token: str) -> ModelSpec:
    """``name:config[:init[:teacher]]`` -> ModelSpec (kind not read yet)."""
    parts = token.split(":")
    if not 2 <= len(parts) <= 4 or not parts[0] or not parts[1]:
        raise ModelListError(f"model spec '{token}' is not name:config:init[:teacher]")
    name, config = parts[0], parts[1]
    init = parts[2] if len(parts) > 2 else ""
    teacher = parts[3] if len(parts) > 3 else ""
    if not _NAME.fullmatch(name):
        raise ModelListError(f"model spec '{token}': name '{name}' may hold letters, digits, '.', '_' and '-' "
                             "only (it names exp/<name> and is joined by '+' in inits)")
    inits: Tuple[str, ...] = ()
    if init not in ("", NONE):
        inits = tuple(init.split("+"))
        if len(inits) > 2 or not all(inits):
            raise ModelListError(f"model spec '{token}': init '{init}' must be '-', a model name, "
                                 "or <audio-only model>+<lip reader>")
    return ModelSpec(name=name, config=config, init=inits, teacher=teacher if teacher not in ("", NONE) else None,
                     base=name, token=token)


def dropout_study_tokens(rates: str, config: PathLike, init: str, conf_dir: PathLike,
                         fill: str = "zeros") -> List[Tuple[str, str]]:
    """Derive one config per rate (``<conf_dir>/<stem>_drop_r<rate>.yaml``); returns
    ``(list entry AVd<rate>:<config>:<init>, rate)`` pairs to append to the list."""
    if not Path(config).is_file():
        raise ModelListError(f"--dropout_study_config {config} does not exist")
    out = []
    for r in rates.split():
        try:
            value = float(r)
        except ValueError:
            raise ModelListError(f"--dropout_study_rates: '{r}' is not a number") from None
        if not math.isfinite(value):
            raise ModelListError(f"--dropout_study_rates: '{r}' is not a finite number")
        cfg = Path(conf_dir) / f"{Path(config).stem}_drop_r{r}.yaml"
        write_dropout_study_config(config, value, cfg, fill)
        out.append((f"AVd{r}:{cfg}:{init}", r))
    return out


def _with_seeds(specs: Sequence[ModelSpec], seeds: str) -> List[ModelSpec]:
    """One copy of the list per seed, each chain (init, teacher) within its seed. The name says
    the seed: seed 0 keeps the plain name (ESPnet's default seed, what no --seeds trains), seed
    k > 0 names the model, its inits and its teacher ``<name>_s<k>``. So ``--seeds 1`` alone
    continues exp/V0_s1, never seed 0's exp/V0."""
    ks = seeds.split()
    if not ks:
        return list(specs)
    if not all(k.isascii() and k.isdigit() for k in ks):
        raise ModelListError(f"--seeds must be non-negative integers, got '{seeds}'")
    out = []
    for k in ks:
        sfx = "" if int(k) == 0 else f"_s{int(k)}"
        for s in specs:
            out.append(ModelSpec(name=s.name + sfx, config=s.config, init=tuple(i + sfx for i in s.init),
                                 teacher=s.teacher + sfx if s.teacher else None, seed=int(k), base=s.name,
                                 study_rate=s.study_rate, token=s.token))
    return out


def model_list(models: str, seeds: str = "", study_rates: str = "", study_config: PathLike = "",
               study_init: str = "A0", conf_dir: PathLike = "exp/conf", check_configs: bool = False,
               study_fill: str = "zeros") -> List[ModelSpec]:
    """The recipe's model list, parsed and checked: entries separated by white space, then the
    dropout-study models, then one copy per seed. ``check_configs`` (stages 7-11 will run)
    also requires every config to exist and every init to fit the model it starts."""
    specs = [parse_model_token(t) for t in models.split()]
    if study_rates.split():
        for token, rate in dropout_study_tokens(study_rates, study_config, study_init, conf_dir, study_fill):
            specs.append(ModelSpec(**{**asdict(parse_model_token(token)), "study_rate": rate}))
    specs = _with_seeds(specs, seeds)
    if not specs:
        raise ModelListError("--models is empty")
    seen: Dict[str, ModelSpec] = {}
    for s in specs:
        if s.name in seen:
            raise ModelListError(f"model name {s.name} is declared twice in --models ('{s.token}'); "
                                 "each name must be unique")
        for ref in s.init + ((s.teacher,) if s.teacher else ()):
            if ref not in seen:
                raise ModelListError(f"model {s.name} refers to '{ref}', which is not declared before it "
                                     f"in --models ('{s.token}')")
        seen[s.name] = s
    typed = []
    for s in specs:
        try:
            kind = kind_of_file(s.config)
        except ConfigError as e:
            raise ModelListError(f"model {s.name} ('{s.token}'): {e}") from None
        typed.append(ModelSpec(**{**asdict(s), "kind": kind}))
    if check_configs:
        _check_configs(typed)
    return typed


def _check_configs(specs: Sequence[ModelSpec]) -> None:
    kinds = {s.name: s.kind for s in specs}
    for s in specs:
        if s.kind == "missing":
            raise ModelListError(f"config {s.config} of model {s.name} does not exist ('{s.token}')")
    for s in specs:
        if s.kind == "adapter" and not s.init:
            raise ModelListError(f"adapter model {s.name} needs its base AV model as init ('{s.token}')")
        if len(s.init) == 2:
            a, v = s.init
            if not (kinds[a] == "asr" and kinds[v] == "vsr" and s.kind not in ("asr", "vsr")):
                raise ModelListError(f"model {s.name}: init '{s.init_arg}' must be <audio-only model>+<lip reader "
                                     "(encoder: video_conformer)> for an AV model")


def write_models_tsv(path: PathLike, specs: Sequence[ModelSpec]) -> None:
    """One row per model, columns TSV_COLUMNS, ``-`` for nothing (what avsr.sh reads)."""
    atomic_write_text(path, "".join(s.tsv_row() + "\n" for s in specs))


def read_models_tsv(path: PathLike) -> List[ModelSpec]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        cols = line.split("\t")
        if len(cols) != len(TSV_COLUMNS):
            raise MetaError(f"{path}:{n}: expected {len(TSV_COLUMNS)} tab-separated columns "
                            f"({' '.join(TSV_COLUMNS)}), got {len(cols)}")
        d = dict(zip(TSV_COLUMNS, (None if c == NONE else c for c in cols)))
        rows.append(ModelSpec(name=d["name"], config=d["config"], init=tuple(d["init"].split("+")) if d["init"] else (),
                              teacher=d["teacher"], kind=d["kind"], seed=None if d["seed"] is None else int(d["seed"]),
                              base=d["base"], study_rate=d["study_rate"], token=f"{path}:{n}"))
    return rows


# --------------------------------------------------------------------------- exp/<name>/meta.json


@dataclass
class ModelRecord:
    """One model of the list and the training settings its config gives it (``meta.json``)."""

    model: str
    kind: str                                  # KINDS, from the config's keys
    modality: str                              # audio | video | av
    config: str                                # the config's stem, e.g. train_avsr_kd
    init: Optional[str] = None                 # None (from scratch), a model name, or "A0+V0"
    teacher: Optional[str] = None
    seed: Optional[int] = None
    base: Optional[str] = None                 # the name without its seed suffix
    study: Optional[str] = None                # "dropout" for the models --dropout_study_rates adds
    train_dropout: Optional[Union[float, str]] = None   # AV models: a rate (0 = none), or "lo-hi" drawn
    train_dropout_prob: Optional[float] = None
    train_dropout_pattern: Optional[str] = None
    kd: Optional[Union[bool, str]] = None      # AV models: False, or the KD distance (True if unnamed)
    adapter: Optional[bool] = None             # AV models

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def model_record(spec: ModelSpec) -> ModelRecord:
    """The record of one model of the list, its settings read from its config."""
    if spec.kind not in MODALITY:
        raise MetaError(f"{spec.config}: config of model {spec.name} does not exist")
    cfg = read_config(spec.config)
    mc = cfg.get("model_conf") or {}
    rec = ModelRecord(model=spec.name, kind=spec.kind, modality=MODALITY[spec.kind], config=Path(spec.config).stem,
                      init=spec.init_arg if spec.init else None, teacher=spec.teacher, seed=spec.seed,
                      base=spec.base or spec.name, study=spec.study)
    if rec.modality != "av":
        return rec
    rec.adapter = cfg.get("model") == "ms_adapter" or bool(mc.get("adapter_conf"))
    if not rec.adapter:
        vd = mc.get("video_dropout")
        if not vd:
            rec.train_dropout = 0
        else:
            rate = vd.get("rate", 0)
            rec.train_dropout = "-".join(str(r) for r in rate) if isinstance(rate, (list, tuple)) else rate
            rec.train_dropout_prob = vd.get("prob", 1.0)
            rec.train_dropout_pattern = vd.get("pattern", "random")
    kd = spec.teacher is not None or cfg.get("model") == "mda_kd"
    rec.kd = (mc.get("kd_distance") or True) if kd else False
    return rec


def write_meta(path: PathLike, record: ModelRecord) -> bool:
    """Write ``meta.json`` unless it already says the same; True when written."""
    text = json.dumps(record.as_dict(), ensure_ascii=False, indent=1) + "\n"
    p = Path(path)
    if p.is_file() and p.read_text(encoding="utf-8") == text:
        return False
    atomic_write_text(p, text)
    return True


_META_TYPES: Dict[str, Tuple[type, ...]] = {
    "model": (str,), "kind": (str,), "modality": (str,), "config": (str,), "init": (str,), "teacher": (str,),
    "seed": (int,), "base": (str,), "study": (str,), "train_dropout": (int, float, str),
    "train_dropout_prob": (int, float), "train_dropout_pattern": (str,), "kd": (bool, str), "adapter": (bool,),
}
_REQUIRED_META = ("model", "kind", "modality", "config")


def _load_json_object(path: Path, what: str) -> Dict[str, Any]:
    if not path.is_file():
        raise MetaError(f"{path}: missing ({what})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MetaError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise MetaError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_meta(path: PathLike) -> ModelRecord:
    """``exp/<name>/meta.json`` as a ModelRecord; MetaError names the file and the problem."""
    path = Path(path)
    data = _load_json_object(path, "the model's record; avsr.sh writes it for every model of its list at start")
    missing = [k for k in _REQUIRED_META if k not in data]
    if missing:
        raise MetaError(f"{path}: lacks {', '.join(missing)} (written by an older avsr.sh? any avsr.sh run "
                        "rewrites it for every model of its list)")
    for key, value in data.items():
        if key not in _META_TYPES:
            raise MetaError(f"{path}: unknown key '{key}'")
        types = _META_TYPES[key]
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise MetaError(f"{path}: '{key}' must be {' or '.join(t.__name__ for t in _META_TYPES[key])}, got {value!r}")
    if data["kind"] not in MODALITY or data["modality"] != MODALITY[data["kind"]]:
        raise MetaError(f"{path}: kind '{data['kind']}' / modality '{data['modality']}' is not one of "
                        + ", ".join(f"{k}/{m}" for k, m in MODALITY.items()))
    if isinstance(data.get("kd"), str) and data["kd"].lower() in ("true", "false", "none"):
        raise MetaError(f"{path}: 'kd' must be true, false or a distance name, got the string {data['kd']!r}")
    return ModelRecord(**data)


# --------------------------------------------------------------------------- <dump>/set.json


@dataclass(frozen=True)
class SetInfo:
    """What a test dump is: the clean set it is or was mixed from, its field, noise and SNR."""

    test_set: str                 # e.g. eval_far (also for eval_far's babble copies)
    field: str                    # far | middle | near
    noise: str = "none"           # NOISES
    snr: Optional[float] = None   # dB of the added noise; None for a clean set

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def clean_set_info(name: str) -> SetInfo:
    """A recipe test set ``<split>_<field>`` (what stage 1 prepared it from)."""
    try:
        _split, field = parse_set_name(name)
    except ValueError as e:
        raise MetaError(str(e)) from None
    return SetInfo(test_set=name, field=field)


def noisy_set_info(source: SetInfo, noise: str, snr: float) -> SetInfo:
    if source.noise != "none":
        raise MetaError(f"a noisy copy of a noisy set ({source}) is not a test condition of this recipe")
    if noise not in NOISES[1:]:
        raise MetaError(f"noise must be one of {NOISES[1:]}, got {noise!r}")
    return SetInfo(test_set=source.test_set, field=source.field, noise=noise, snr=float(snr))


def write_set_info(dump_dir: PathLike, info: SetInfo) -> None:
    atomic_write_text(Path(dump_dir) / SET_JSON, json.dumps(info.as_dict(), ensure_ascii=False, indent=1) + "\n")


def read_set_info(dump_dir: PathLike) -> SetInfo:
    """``<dump>/set.json``; MetaError names the file when it is missing or malformed."""
    path = Path(dump_dir) / SET_JSON
    data = _load_json_object(path, "the test set's facts; avsr.sh stage 10 writes it for its test sets, "
                                   "mix_noise for the noisy copies")
    names = {f.name for f in fields(SetInfo)}
    if set(data) != names:
        raise MetaError(f"{path}: expected the keys {sorted(names)}, got {sorted(data)}")
    if not all(isinstance(data[k], str) and data[k] for k in ("test_set", "field", "noise")) or data["noise"] not in NOISES:
        raise MetaError(f"{path}: test_set and field must be names and noise one of {NOISES}, got {data}")
    snr = data["snr"]
    if (data["noise"] == "none") != (snr is None) or (snr is not None and (isinstance(snr, bool) or not isinstance(snr, (int, float)))):
        raise MetaError(f"{path}: snr must be null for a clean set and a number for a noisy one, got {snr!r}")
    return SetInfo(test_set=data["test_set"], field=data["field"], noise=data["noise"],
                   snr=None if snr is None else float(snr))


# --------------------------------------------------------------------------- <decode>/condition.json


@dataclass(frozen=True)
class ConditionInfo:
    """The missing-video condition of one decode (all None: no video fed, an audio-only model)."""

    missing_rate: Optional[float] = None
    missing_pattern: Optional[str] = None
    missing_fill: Optional[str] = None
    missing_seed: Optional[int] = None

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def write_condition_info(out_dir: PathLike, info: ConditionInfo) -> None:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(out_dir) / CONDITION_JSON, json.dumps(info.as_dict(), indent=1) + "\n")


def read_facts(paths: Sequence[PathLike]) -> Dict[str, Any]:
    """The facts of a score: the union of metadata files (set.json, condition.json), each a
    JSON object of scalars; a key two files both give is an error naming them."""
    facts: Dict[str, Any] = {}
    origin: Dict[str, Path] = {}
    for p in map(Path, paths):
        data = _load_json_object(p, "the facts of this decode")
        for key, value in data.items():
            if isinstance(value, (dict, list)):
                raise MetaError(f"{p}: '{key}' must be a single value, got {type(value).__name__}")
            if key in facts:
                raise MetaError(f"{p}: '{key}' is given by {origin[key]} too")
            facts[key], origin[key] = value, p
    return facts
