#!/usr/bin/env python3
"""Relative CER: AVSR hypotheses scored against ASR hypotheses (lower = more ASR-like)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from espnet_avsr.eval.bias import relative_cer
from espnet_avsr.eval.io import parse_meta, read_text, write_score_dir

JSON_NAME = "relative_cer.json"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="CER of AVSR hypotheses with the ASR hypotheses of the same utterances as reference",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ref_hyp", required=True, help="ASR (audio-only) decode text, used as reference")
    parser.add_argument("--hyp", required=True, help="AVSR decode text")
    parser.add_argument("--out", required=True, help="output dir: relative_cer.json, relative_cer.txt, utt_relative_cer.txt")
    parser.add_argument(
        "--meta",
        nargs="*",
        default=[],
        help="key=value pairs stored in the json, e.g. model=AVd0.3 ref_model=A0 train_dropout=0.3 missing_rate=1.0",
    )
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(cmd: Optional[List[str]] = None) -> dict:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    meta = parse_meta(args.meta)
    asr, avsr = read_text(args.ref_hyp), read_text(args.hyp)
    score = relative_cer(asr, avsr)
    if score.missing_hyp or score.extra_hyp:
        logging.warning(
            "utterance sets differ: %d ASR utts lack an AVSR hypothesis (scored as deletions), %d AVSR utts lack an ASR one",
            len(score.missing_hyp), len(score.extra_hyp),
        )
    record = write_score_dir(
        args.out, score, meta, args.ref_hyp, args.hyp,
        json_name=JSON_NAME, txt_name="relative_cer.txt", title="relative CER",
        utt_name="utt_relative_cer.txt", extra={"metric": "relative_cer", "relative_cer": score.total.cer},
    )
    logging.info("relative CER %.2f%% -> %s", 100 * record["relative_cer"], args.out)
    return record


if __name__ == "__main__":
    try:
        main()
    except ValueError as e:
        logging.error("%s", e)
        sys.exit(1)
