#!/usr/bin/env python3
"""Regenerate exp/RESULTS.md (paper-layout tables) and plots from every score file under exp."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from espnet_avsr.eval.report import Report, make_report


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Tables and plots from exp/**/result.json, relative_cer.json and rep_similarity.json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--exp", default="exp", help="experiment tree to scan")
    parser.add_argument("--out", default=None, help="markdown report (default: EXP/RESULTS.md)")
    parser.add_argument("--plots", default=None, help="directory for PNG figures (default: EXP/plots; 'none' to skip)")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(cmd: Optional[List[str]] = None) -> Report:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    out = args.out or f"{args.exp.rstrip('/')}/RESULTS.md"
    plots = None if (args.plots or "").lower() == "none" else (args.plots or f"{args.exp.rstrip('/')}/plots")
    return make_report(args.exp, out, plots)


if __name__ == "__main__":
    try:
        main()
    except ValueError as e:
        logging.error("%s", e)
        sys.exit(1)
