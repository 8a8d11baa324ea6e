#!/usr/bin/env python3
"""Split a data dir by session into N parts (data/x/split<N>/<1..N>), or merge parts back.

    split_data_dir data/x 4
    split_data_dir --merge data/y data/x/split4/1 data/x/split4/2 ...   # cat + C sort of every file
"""
import argparse
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.common.kaldi_dir import merge_dirs
from espnet_avsr.dataprep.split import split_data_dir


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("args", nargs="+", help="DATA_DIR N  |  with --merge: PART_DIR...")
    p.add_argument("--merge", metavar="OUT_DIR", default=None, help="merge the given part dirs into OUT_DIR")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    if a.merge:
        merge_dirs(a.args, a.merge)
        return 0
    if len(a.args) != 2 or not a.args[1].isdigit():
        raise ValueError("usage: split_data_dir DATA_DIR N")
    split_data_dir(a.args[0], int(a.args[1]))
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
