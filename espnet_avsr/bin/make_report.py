#!/usr/bin/env python3
"""Regenerate exp/RESULTS.md (paper-layout tables) and plots from the score files under exp.

A recipe's experiment folder keeps every decode it ever made (one directory per inference tag);
stage 11 links the current settings' decodes into ``exp/.report_view``. Given such a folder, the
report reads the view, as stage 11 does; ``--all_decodes`` scans the whole tree instead (a model
decoded under two settings is then reported once, the other score noted as a duplicate)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, main_exit, run_cli
from espnet_avsr.eval.report import Report, make_report

VIEW = ".report_view"  # avsr.sh stage 11: the current decodes, linked per model


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Tables and plots from exp/**/result.json, relative_cer.json and rep_similarity.json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--exp", default="exp", help="experiment tree to scan")
    parser.add_argument("--out", default=None, help="markdown report (default: EXP/RESULTS.md)")
    parser.add_argument("--plots", default=None, help="directory for PNG figures (default: EXP/plots; 'none' to skip)")
    parser.add_argument("--all_decodes", action="store_true",
                        help="scan every decode under EXP, not the current ones that EXP/.report_view links")
    add_log_level(parser)
    return parser


def _body(args: argparse.Namespace) -> Report:
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    out = args.out or f"{args.exp.rstrip('/')}/RESULTS.md"
    plots = None if (args.plots or "").lower() == "none" else (args.plots or f"{args.exp.rstrip('/')}/plots")
    scan = Path(args.exp) / VIEW
    if args.all_decodes or not scan.is_dir():
        scan = Path(args.exp)
    else:
        logging.info("reading the current decodes linked in %s (--all_decodes: every decode)", scan)
    return make_report(scan, out, plots)


def main(cmd: Optional[List[str]] = None) -> Report:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    main_exit(main)
