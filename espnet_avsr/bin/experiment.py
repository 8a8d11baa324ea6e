#!/usr/bin/env python3
"""Experiment metadata for the recipe (avsr.sh): one CLI instead of Python inside the shell script.

    experiment value CONFIG KEY            a (dotted) config key, "" when absent
    experiment kinds CONFIG...             asr | vsr | adapter | avsr | missing, one line each
    experiment dropout_config SRC RATE OUT a dropout-study config derived from SRC
    experiment meta --name N --config C --kind K [--init I] [--teacher T] [--study S] [--out meta.json]
                                           writes exp/<N>/meta.json, prints score_cer's --meta words
"""
from __future__ import annotations

import argparse
from typing import List, Optional

from espnet_avsr.common.cli import run_cli
from espnet_avsr.common.experiment import (KINDS, ConfigError, config_value, kind_of_file, model_record,
                                           read_config, write_dropout_study_config, write_meta)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("value", help="a config value")
    s.add_argument("config")
    s.add_argument("key")
    s = sub.add_parser("kinds", help="what each config trains")
    s.add_argument("configs", nargs="*")
    s = sub.add_parser("dropout_config", help="derive a dropout-study config")
    s.add_argument("src")
    s.add_argument("rate", type=float)
    s.add_argument("out")
    s = sub.add_parser("meta", help="a model's training metadata")
    s.add_argument("--name", required=True)
    s.add_argument("--config", required=True)
    s.add_argument("--kind", required=True, choices=[k for k in KINDS if k != "missing"])
    s.add_argument("--init", default="-")
    s.add_argument("--teacher", default="-")
    s.add_argument("--study", default=None)
    s.add_argument("--out", default=None, help="meta.json to write")
    return p


def _body(args: argparse.Namespace) -> None:
    if args.cmd == "value":
        value = config_value(read_config(args.config), args.key)
        print("" if value is None else value)
    elif args.cmd == "kinds":
        for path in args.configs:
            print(kind_of_file(path))
    elif args.cmd == "dropout_config":
        write_dropout_study_config(args.src, args.rate, args.out)
    else:
        rec = model_record(args.name, args.config, args.kind, args.init, args.teacher, args.study)
        if args.out:
            write_meta(args.out, rec)
        print(rec.meta_args())


def main(cmd: Optional[List[str]] = None) -> None:
    run_cli(get_parser(), _body, cmd, errors=(ConfigError, OSError), prog="experiment")


if __name__ == "__main__":
    main()
