#!/usr/bin/env python3
"""Regenerate exp/RESULTS.md (paper-layout tables) and plots from every score file under exp."""

from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, main_exit, run_cli
from espnet_avsr.eval.report import Report, make_report


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Tables and plots from exp/**/result.json, relative_cer.json and rep_similarity.json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--exp", default="exp", help="experiment tree to scan")
    parser.add_argument("--out", default=None, help="markdown report (default: EXP/RESULTS.md)")
    parser.add_argument("--plots", default=None, help="directory for PNG figures (default: EXP/plots; 'none' to skip)")
    add_log_level(parser)
    return parser


def _body(args: argparse.Namespace) -> Report:
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    out = args.out or f"{args.exp.rstrip('/')}/RESULTS.md"
    plots = None if (args.plots or "").lower() == "none" else (args.plots or f"{args.exp.rstrip('/')}/plots")
    return make_report(args.exp, out, plots)


def main(cmd: Optional[List[str]] = None) -> Report:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    main_exit(main)
