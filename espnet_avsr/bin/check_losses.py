#!/usr/bin/env python3
"""Stop a data stage that dropped too much of a set (see espnet_avsr/dataprep/losses.py).

    check_losses --stage roi --out dump/roi/train_far --in data/train_far --max_frac 0.2 --set train_far

Prints the per-reason counts; exits 1 (naming the report) when the dropped fraction
is above --max_frac, so avsr.sh does not mark the stage done.
"""
import argparse
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.dataprep.losses import STAGES, check_losses, stage_losses


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--out", required=True, help="the stage's output dir (holds its report)")
    p.add_argument("--in", dest="in_dir", default=None, help="the stage's input data dir (its text); not for prep")
    p.add_argument("--max_frac", type=float, required=True, help="largest fraction of the set that may be dropped")
    p.add_argument("--set", default="", help="set name for the messages")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    losses = stage_losses(a.stage, a.out, a.in_dir)
    print(f"{a.set or a.out} {losses.summary()} (bound {a.max_frac:g})")
    check_losses(losses, a.max_frac, a.set)
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
