#!/usr/bin/env python3
"""Key of a cached recipe unit's inputs (see espnet_avsr/dataprep/cache_key.py).

    input_key --opt frontend=ds --tree audio=/misp/audio/train/far --data src=data/train_far \
        --out exp/.done/stage2/enhance_train_far.key [--against exp/.done/stage2/enhance_train_far.done]

Writes the key lines to --out; with --against (a done-marker), prints what changed,
one item per line (nothing when the key matches; everything for a marker without a key).
"""
import argparse
from pathlib import Path
from typing import List, Optional

from espnet_avsr.dataprep.cache_key import key_changes, make_key, parse_key
from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.common.fileio import atomic_write_text


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--opt", action="append", default=[], help="name=value: an option of the unit")
    p.add_argument("--tree", action="append", default=[], help="name=dir: every file under dir (path, size, mtime)")
    p.add_argument("--data", action="append", default=[], help="name=dir: a data dir (content + files it lists)")
    p.add_argument("--out", required=True, help="where to write the key lines")
    p.add_argument("--against", default=None, help="a marker holding the previous key")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    lines = make_key(a.opt, a.tree, a.data)
    atomic_write_text(a.out, "".join(f"{line}\n" for line in lines))
    if a.against and Path(a.against).is_file():
        old = parse_key(Path(a.against).read_text(encoding="utf-8"))
        new = parse_key("\n".join(lines))
        for change in (key_changes(old, new) if old else ["the marker records no key (an older run)"]):
            print(change)
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
