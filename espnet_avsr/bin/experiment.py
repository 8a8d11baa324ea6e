#!/usr/bin/env python3
"""Experiment metadata for the recipe (avsr.sh): one CLI instead of parsing in the shell script.

    experiment models --models "A0:conf/a.yaml:- AV0:conf/av.yaml:A0" [--seeds "0 1"]
                      [--dropout_study_rates "0.1 0.3" --dropout_study_config C --dropout_study_init A0
                       --conf_dir exp/conf] [--check_configs] --out exp/models.tsv [--exp exp]
        parse and check the model list; write one row per model to --out (columns: name config
        init teacher seed base kind study_rate, "-" for nothing) and, with --exp, each model's
        exp/<name>/meta.json (every model whose config exists)
    experiment set_info --dumpdir dump/raw SET...    write <dumpdir>/<SET>/set.json of clean test sets
    experiment value CONFIG KEY                      a (dotted) config key, "" when absent
    experiment checkpoints                           the checkpoint names tried, in order (CHECKPOINTS)
    experiment set_name NAME                         "<split> <field>" of a set name (eval_far), or an error
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from espnet_avsr.common.cli import run_cli
from espnet_avsr.common.experiment import (CHECKPOINTS, META_JSON, ConfigError, MetaError, ModelListError, clean_set_info,
                                           config_value, model_list, model_record, read_config, write_meta,
                                           write_models_tsv, write_set_info)
from espnet_avsr.common.naming import parse_set_name


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("models", help="parse and check the model list")
    s.add_argument("--models", required=True, help="name:config:init[:teacher] entries, white-space separated")
    s.add_argument("--seeds", default="", help="training seeds; seed 0 keeps the plain names, seed k > 0 adds models <name>_s<k>")
    s.add_argument("--dropout_study_rates", default="", help="one AVd<rate> model per rate")
    s.add_argument("--dropout_study_config", default="", help="base config of the study models")
    s.add_argument("--dropout_study_init", default="A0", help="init model of the study models")
    s.add_argument("--dropout_study_fill", default="zeros", help="fill of the study models' dropped frames")
    s.add_argument("--conf_dir", default="exp/conf", help="where the study configs are written")
    s.add_argument("--check_configs", action="store_true",
                   help="every config must exist and every init fit its model (training or decoding will run)")
    s.add_argument("--out", required=True, help="models.tsv to write")
    s.add_argument("--exp", default=None, help="write <exp>/<name>/meta.json of every model whose config exists")
    s = sub.add_parser("set_info", help="record the facts of clean test sets")
    s.add_argument("--dumpdir", required=True)
    s.add_argument("sets", nargs="+")
    s = sub.add_parser("value", help="a config value")
    s.add_argument("config")
    s.add_argument("key")
    sub.add_parser("checkpoints", help="the checkpoint names of an exp dir, in the order they are tried")
    s = sub.add_parser("set_name", help="split and field of a recipe set name")
    s.add_argument("name")
    return p


def _body(args: argparse.Namespace) -> None:
    if args.cmd == "value":
        value = config_value(read_config(args.config), args.key)
        print("" if value is None else value)
    elif args.cmd == "checkpoints":
        print("\n".join(CHECKPOINTS))
    elif args.cmd == "set_name":
        print(" ".join(parse_set_name(args.name)))
    elif args.cmd == "set_info":
        for name in args.sets:
            d = Path(args.dumpdir) / name
            if not d.is_dir():
                raise MetaError(f"{d}: no dump of test set {name} (stage 5 makes it)")
            write_set_info(d, clean_set_info(name))
    else:
        specs = model_list(args.models, args.seeds, args.dropout_study_rates, args.dropout_study_config,
                           args.dropout_study_init, args.conf_dir, args.check_configs, args.dropout_study_fill)
        write_models_tsv(args.out, specs)
        if args.exp:
            for s in specs:
                if s.kind != "missing":
                    write_meta(Path(args.exp) / s.name / META_JSON, model_record(s))


def main(cmd: Optional[List[str]] = None) -> None:
    run_cli(get_parser(), _body, cmd, errors=(ConfigError, ModelListError, MetaError, OSError, ValueError), prog="experiment")


if __name__ == "__main__":
    main()
