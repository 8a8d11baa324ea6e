#!/usr/bin/env python3
"""Datasheet of a synthetic MISP-format corpus: hours, speakers, per-utterance SNR, overlap,
mouth-shape ambiguity.

Example:
    python -m espnet_avsr.bin.corpus_report --corpus corpus --json exp/corpus_datasheet.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional

from espnet_avsr.common.cli import run_cli
from espnet_avsr.corpus.datasheet import DatasheetError, format_datasheet, make_datasheet


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus", required=True, help="corpus root written by make_mini_misp")
    p.add_argument("--json", default=None, help="also write the datasheet as JSON here")
    return p


def _body(args: argparse.Namespace) -> None:
    sheet = make_datasheet(Path(args.corpus))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(sheet, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_datasheet(sheet))


def main(cmd: Optional[List[str]] = None) -> None:
    run_cli(get_parser(), _body, cmd, errors=(DatasheetError, OSError, json.JSONDecodeError, KeyError), prog="corpus_report")


if __name__ == "__main__":
    main()
