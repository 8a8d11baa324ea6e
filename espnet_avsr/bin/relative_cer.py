#!/usr/bin/env python3
"""Relative CER: AVSR hypotheses scored against ASR hypotheses (lower = more ASR-like)."""

from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, main_exit, run_cli
from espnet_avsr.eval.bias import relative_cer
from espnet_avsr.eval.io import add_facts_option, read_text, score_meta, write_score_dir

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
        help="key=value pairs stored in the json, e.g. model=AVd0.3 ref_model=A0 (the model's facts are in exp/<model>/meta.json)",
    )
    add_facts_option(parser)
    add_log_level(parser)
    return parser


def _body(args: argparse.Namespace) -> dict:
    meta = score_meta(args.meta, args.facts)
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


def main(cmd: Optional[List[str]] = None) -> dict:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    main_exit(main)
