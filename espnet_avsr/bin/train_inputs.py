#!/usr/bin/env python3
"""Refuse to resume (or skip as done) an exp/<name> that was trained with other settings.

    train_inputs --exp exp/AV0 --config conf/train_avsr.yaml --init A0 --teacher - --train_args "--max_epoch 8"
    train_inputs ... --record      # write exp/AV0/train_inputs.json (avsr.sh does this when training starts)
    train_inputs ... --source A0=exp/A0/valid.acc.ave.pth --source V0=exp/V0/valid.acc.ave.pth

Why: ESPnet's --resume continues any checkpoint in the output dir, and then writes the
*new* config.yaml beside the old weights, so a report would label the old model with the
new settings. The settings of a run (the config file's content, init and teacher models,
--train_args) are recorded in train_inputs.json; an exp dir without that record (an older
run) is compared through the config.yaml ESPnet wrote. Exit 0: same settings, or nothing
trained yet; exit 3: they differ (printed one per line); exit 1: bad input.
Changing only keys that a resume may change (max_epoch, num_workers ...) is allowed.
The checkpoints a model starts from or learns from (--source: init models, teacher) are
recorded by content, so an AV model is not kept as done over a retrained A0, V0 or teacher;
a source is compared when both the record and the present have it (records from before this
check have none, and a model stays valid when its init's folder is gone). The training seed
(--seed, what avsr.sh passes ESPnet) is recorded too: a checkpoint of seed 0 is never continued
with seed 1; a record from before this check is compared through the seed of ESPnet's config.yaml.
"""
import argparse
import hashlib
import json
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from espnet_avsr.common.cli import run_cli

RECORD = "train_inputs.json"
#: Keys a resumed run may change without making it another model.
RESUME_OK = frozenset({"max_epoch", "num_workers", "log_interval", "num_att_plot", "keep_nbest_models", "patience"})
#: Keys avsr.sh sets on the command line (teacher, stats): not in the config file.
RECIPE_SET = frozenset({"normalize_conf.stats_file", "model_conf.teacher_model_file", "model_conf.teacher_config"})
CKPT_GLOBS = ("checkpoint.pth", "latest.pth", "*epoch.pth", "valid.*.pth", "train.*.pth")
DIFFERENT = 3
#: Record keys of the source checkpoints: ``source.<model>`` -> "<file name> sha256:<first 16 hex>".
SOURCE = "source."
#: Record key of the training seed (compared where both sides know it, like a source).
SEED = "seed"


def flatten(d, prefix: str = "") -> Dict[str, str]:
    """Nested mapping -> `{dotted.key: json value}` (lists kept whole)."""
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        if d or not prefix:
            return out
    out[prefix.rstrip(".")] = json.dumps(d, sort_keys=True, ensure_ascii=False)
    return out


def train_args_dict(train_args: str) -> Dict[str, str]:
    """`--max_epoch 8 --foo=bar` -> `{'max_epoch': '8', 'foo': 'bar'}` (ESPnet's --name value)."""
    out, toks = {}, shlex.split(train_args)
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.startswith("--"):
            if "=" in t:
                k, v = t[2:].split("=", 1)
            elif i + 1 < len(toks) and not toks[i + 1].startswith("--"):
                k, v, i = t[2:], toks[i + 1], i + 1
            else:
                k, v = t[2:], "true"
            out[k] = v
        i += 1
    return out


def checkpoint_identity(path: Path) -> str:
    """A checkpoint by content (a copy of the folder keeps it; a retrained model changes it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{path.name} sha256:{h.hexdigest()[:16]}"


def parse_sources(items: Sequence[str]) -> Dict[str, Path]:
    """``["A0=exp/A0/valid.acc.ave.pth", ...]`` -> ``{"A0": Path(...)}``; a clear error otherwise."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--source {item!r}: expected <model>=<checkpoint file>")
        if not Path(path).is_file():
            raise ValueError(f"{path}: checkpoint of source model {name} not found")
        out[name] = Path(path)
    return out


def current_inputs(config: Path, init: str, teacher: str, train_args: str,
                   sources: Optional[Dict[str, Path]] = None, seed: Optional[int] = None) -> Dict[str, str]:
    cfg = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    flat = {f"config.{k}": v for k, v in flatten(cfg).items()}
    flat.update({f"train_args.{k}": v for k, v in train_args_dict(train_args).items()})
    flat.update({"init": init, "teacher": teacher})
    flat.update({f"{SOURCE}{m}": checkpoint_identity(p) for m, p in (sources or {}).items()})
    if seed is not None:
        flat[SEED] = str(seed)
    return flat


def saved_seed(exp: Path) -> Optional[str]:
    """The seed in ESPnet's config.yaml of exp (written when a run starts), if it has one."""
    try:
        saved = yaml.safe_load((exp / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return str(saved["seed"]) if isinstance(saved, dict) and saved.get("seed") is not None else None


def _resumable(key: str) -> bool:
    return key.split(".", 1)[-1] in RESUME_OK


def differences(old: Dict[str, str], new: Dict[str, str], keys=None) -> List[str]:
    keys = sorted(set(old) | set(new)) if keys is None else sorted(keys)
    # a source checkpoint or the seed counts where both sides know it (see the module docstring)
    keys = [k for k in keys if not (k.startswith(SOURCE) or k == SEED) or (k in old and k in new)]
    return [f"{k}: {old.get(k, '(absent)')} -> {new.get(k, '(absent)')}"
            for k in keys if old.get(k) != new.get(k) and not _resumable(k)]


def legacy_differences(saved_config: Path, new: Dict[str, str]) -> List[str]:
    """Compare what we would pass (seed included) with the config.yaml ESPnet saved (an exp dir from before the record).

    ESPnet saves every option with its default, so only keys of the new config and
    --train_args are compared, plus the whole of each `*_conf` section the new config
    sets (a key dropped from its model_conf is a change too), less the keys avsr.sh sets.
    """
    saved = flatten(yaml.safe_load(saved_config.read_text(encoding="utf-8")) or {})
    mine = {SEED: new[SEED]} if SEED in new else {}   # ESPnet saves the seed at the top level
    for k, v in new.items():
        if k.startswith("config."):
            mine[k[len("config."):]] = v
        elif k.startswith("train_args."):
            mine[k[len("train_args."):]] = json.dumps(yaml.safe_load(v), sort_keys=True, ensure_ascii=False)
    keys = {k for k in mine if k in saved}
    sections = {k.split(".", 1)[0] for k in mine if k.split(".", 1)[0].endswith("_conf") and "." in k}
    keys |= {k for k in saved if k.split(".", 1)[0] in sections and "." in k and k not in RECIPE_SET}
    return [f"{k}: {saved.get(k, '(absent)')} -> {mine.get(k, '(absent)')}"
            for k in sorted(keys) if saved.get(k) != mine.get(k) and not _resumable(k)]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True, type=Path, help="the model's output dir, exp/<name>")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--init", default="-")
    p.add_argument("--teacher", default="-")
    p.add_argument("--train_args", default="")
    p.add_argument("--source", action="append", default=[], metavar="MODEL=CHECKPOINT",
                   help="a checkpoint the model starts from or learns from (init, teacher); repeatable")
    p.add_argument("--seed", type=int, default=None, help="the training seed ESPnet gets (default: not compared)")
    p.add_argument("--record", action="store_true", help="write the record (training starts now)")
    return p


def _body(a: argparse.Namespace) -> int:
    if not a.config.is_file():
        print(f"{a.config}: training config not found", file=sys.stderr)
        return 1
    new = current_inputs(a.config, a.init, a.teacher, a.train_args, parse_sources(a.source), a.seed)
    if a.record:
        a.exp.mkdir(parents=True, exist_ok=True)
        (a.exp / RECORD).write_text(json.dumps(new, indent=1, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
        return 0
    trained = any(any(a.exp.glob(g)) for g in CKPT_GLOBS)
    if not trained:
        return 0
    if (a.exp / RECORD).is_file():
        old = json.loads((a.exp / RECORD).read_text(encoding="utf-8"))
        seed = None if SEED in old else saved_seed(a.exp)   # a record older than the seed check
        if seed is not None:
            old[SEED] = seed
        diff = differences(old, new)
    elif (a.exp / "config.yaml").is_file():
        diff = legacy_differences(a.exp / "config.yaml", new)
    else:
        diff = []
    for d in diff:
        print(d)
    return DIFFERENT if diff else 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
