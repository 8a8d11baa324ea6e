#!/usr/bin/env python3
"""Check a Kaldi data dir (sorting, consistency, files); `--fix` repairs it in place."""
import argparse
import logging
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.dataprep.validate import fix_dir, validate_dir


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data_dir", help="data dir to check")
    p.add_argument("--fix", action="store_true", help="sort, regenerate spk2utt, drop inconsistent utterances")
    p.add_argument("--no_check_files", action="store_true", help="do not check that referenced files exist")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    check = not a.no_check_files
    if a.fix:
        dropped = fix_dir(a.data_dir, check_files=check)
        logging.info("%s: --fix dropped %d utterances", a.data_dir, len(dropped))
    problems = validate_dir(a.data_dir, check_files=check)
    for msg in problems:
        logging.error("%s", msg)
    if problems:
        logging.error("%s: %d problems (run with --fix to repair)", a.data_dir, len(problems))
        return 1
    logging.info("%s: OK", a.data_dir)
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
