#!/usr/bin/env python3
"""Is one decode's CER really lower than another's? A paired bootstrap over sessions.

    python -m espnet_avsr.bin.compare_cer --ref data/eval_far/text \
        --hyp_a exp/AV3/decode_eval_far_miss0.25_random/text --name_a AV3 \
        --hyp_b exp/AV5/decode_eval_far_miss0.25_random/text --name_b AV5

Several ``--hyp_a`` with as many ``--hyp_b`` (e.g. every missing rate, or every seed: A of
seed k against B of seed k) are pooled: errors are summed over the pairs and whole units are
resampled. The unit is the recording session by default (utterances of one session share
room, talkers and noise, so they are not independent; the session comes from the MISP
utterance id), as in the claims table; ``--resample utterances`` gives the older, narrower
interval over utterances.
"""

from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, main_exit, run_cli
from espnet_avsr.common.fileio import atomic_write_json
from espnet_avsr.eval.cer import score_corpus
from espnet_avsr.eval.io import read_text
from espnet_avsr.common.naming import utt_session
from espnet_avsr.eval.significance import compare_scores, pool_scores, session_bootstrap


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Paired bootstrap (resampled sessions) of the CER difference of two decodes of one test set",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ref", required=True, help="reference text (utt transcript)")
    parser.add_argument("--hyp_a", required=True, nargs="+", help="decode text(s) of system A (the baseline)")
    parser.add_argument("--hyp_b", required=True, nargs="+", help="decode text(s) of system B, one per --hyp_a")
    parser.add_argument("--name_a", default="A")
    parser.add_argument("--name_b", default="B")
    parser.add_argument("--resample", choices=("sessions", "utterances"), default="sessions",
                        help="what one bootstrap draw resamples (sessions: from MISP utterance ids)")
    parser.add_argument("--num_boot", type=int, default=10000)
    parser.add_argument("--ci", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the result as JSON here")
    add_log_level(parser)
    return parser


def _body(args: argparse.Namespace) -> dict:
    if len(args.hyp_a) != len(args.hyp_b):
        raise ValueError(f"--hyp_a has {len(args.hyp_a)} files and --hyp_b {len(args.hyp_b)}: pair them one to one")
    refs = read_text(args.ref)
    scores = {"a": [], "b": []}
    for side, paths in (("a", args.hyp_a), ("b", args.hyp_b)):
        for path in paths:
            score = score_corpus(refs, read_text(path))
            if score.missing_hyp:
                logging.warning("%s: %d reference utterances have no hypothesis (scored as deletions)", path, len(score.missing_hyp))
            scores[side].append(score)
    if args.resample == "sessions":
        try:
            [utt_session(u.utt_id) for u in scores["a"][0].utts]
        except ValueError as e:
            raise ValueError(f"{args.ref}: {e}; give --resample utterances for ids without a session") from None
        result = session_bootstrap(list(zip(scores["a"], scores["b"])), num_boot=args.num_boot, seed=args.seed,
                                   ci=args.ci)
    else:
        result = compare_scores(pool_scores(scores["a"]), pool_scores(scores["b"]),
                                num_boot=args.num_boot, seed=args.seed, ci=args.ci)
    print(result.line(args.name_a, args.name_b))
    record = {"name_a": args.name_a, "name_b": args.name_b, "hyp_a": args.hyp_a, "hyp_b": args.hyp_b,
              "resample": args.resample, **result.as_dict()}
    if args.out:
        atomic_write_json(args.out, record)
    return record


def main(cmd: Optional[List[str]] = None) -> dict:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    main_exit(main)
