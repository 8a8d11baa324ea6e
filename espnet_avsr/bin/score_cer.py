#!/usr/bin/env python3
"""Score a decode: character error rate (and cpCER) -> result.json, result.txt, utt_cer.txt."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from espnet_avsr.eval.cer import score_corpus, score_cpcer
from espnet_avsr.eval.io import parse_meta, read_text, write_score_dir


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Character error rate of a decode against Kaldi-style reference text",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ref", required=True, help="reference text file (utt transcript)")
    parser.add_argument("--hyp", required=True, help="hypothesis text file (utt transcript)")
    parser.add_argument("--out", required=True, help="output directory for the score files")
    parser.add_argument(
        "--meta",
        nargs="*",
        default=[],
        help="key=value pairs stored in result.json, e.g. model=AV0 test_set=eval_far "
        "missing_rate=0.25 missing_pattern=random snr=clean",
    )
    parser.add_argument(
        "--cpcer",
        action="store_true",
        help="also compute the concatenated minimum-permutation CER per session "
        "(utt ids S<spk>_<session>_<start>-<end>)",
    )
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(cmd: Optional[List[str]] = None) -> dict:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    meta = parse_meta(args.meta)
    refs = read_text(args.ref)
    hyps = read_text(args.hyp)
    score = score_corpus(refs, hyps)
    if score.missing_hyp:
        logging.warning(
            "%d of %d reference utterances have no hypothesis in %s; scored as deletions (first: %s)",
            len(score.missing_hyp), len(refs), args.hyp, score.missing_hyp[0],
        )
    if score.extra_hyp:
        logging.warning(
            "%d hypotheses in %s have no reference in %s; not scored (first: %s)",
            len(score.extra_hyp), args.hyp, args.ref, score.extra_hyp[0],
        )
    cp_total, sessions = None, None
    if args.cpcer:
        try:
            cp_total, sessions = score_cpcer(refs, hyps)
        except ValueError as e:
            raise ValueError(f"--cpcer on {args.ref} / {args.hyp}: {e}") from e
    record = write_score_dir(args.out, score, meta, args.ref, args.hyp, cpcer=cp_total, sessions=sessions)
    msg = f"CER {100 * record['cer']:.2f}% ({record['errors']}/{record['ref_chars']}) -> {args.out}"
    if cp_total is not None:
        msg += f"; cpCER {100 * cp_total.cer:.2f}% over {len(sessions)} sessions"
    logging.info(msg)
    return record


if __name__ == "__main__":
    try:
        main()
    except ValueError as e:  # input errors carry the file name; no stack trace needed
        logging.error("%s", e)
        sys.exit(1)
