#!/usr/bin/env python3
"""MISP TextGrids + audio/video layout -> Kaldi data dir for one set and field."""
import argparse
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.dataprep.prepare import FIELDS, VIDEO_FIELDS, prepare_misp_data


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--misp_root", required=True, help="corpus root (audio/, video/, transcription/, detection/)")
    p.add_argument("--set", dest="set_name", required=True, help="train, dev or eval")
    p.add_argument("--field", required=True, choices=FIELDS, help="audio field")
    p.add_argument("--out", required=True, help="output data dir, e.g. data/train_far")
    p.add_argument(
        "--video_field", default=None, choices=VIDEO_FIELDS,
        help="camera; default: far->far, middle->middle, near->speaker's middle camera else far",
    )
    p.add_argument(
        "--allow_missing_video", default=None, type=lambda s: s.lower() in ("1", "true", "yes"),
        help="keep audio of utterances without video (default: true for eval sets, else false = error)",
    )
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    prepare_misp_data(a.misp_root, a.set_name, a.field, a.out, a.video_field, a.allow_missing_video)
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
