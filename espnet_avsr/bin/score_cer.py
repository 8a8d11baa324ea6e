#!/usr/bin/env python3
"""Score a decode: character error rate (and cpCER) -> result.json, result.txt, utt_cer.txt.

With sclite installed (Debian ``sctk``; ``--scorer auto``), result.txt is ESPnet's layout:
sclite's ``-o all`` report (its ``Sum/Avg`` row is what ``show_asr_result.sh`` reads) next to
``ref.trn``/``hyp.trn``, followed by our own summary. Without sclite the builtin scorer writes
an sclite-shaped ``Sum/Avg`` table instead. result.json always holds the builtin
(Levenshtein) counts, plus sclite's under ``"sclite"`` when it ran.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, main_exit, run_cli
from espnet_avsr.eval.cer import score_corpus, score_cpcer
from espnet_avsr.eval.io import add_facts_option, read_text, score_meta, write_score_dir
from espnet_avsr.eval.sclite import ScliteError, find_sclite, score_with_sclite, sum_avg_block


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
        help="key=value pairs stored in result.json, e.g. model=AV0 (the model's facts are in "
        "exp/<model>/meta.json, the test set's and the decode's in --facts)",
    )
    parser.add_argument(
        "--cpcer",
        action="store_true",
        help="also compute the concatenated minimum-permutation CER per session "
        "(utt ids S<spk>_<session>_<start>-<end>)",
    )
    parser.add_argument(
        "--scorer",
        default="auto",
        choices=["auto", "sclite", "builtin"],
        help="auto: sclite when installed, else builtin; sclite: fail without it",
    )
    parser.add_argument(
        "--utt2spk",
        default=None,
        help="speakers for sclite's per-speaker table (default: utt2spk next to --ref, if any)",
    )
    add_facts_option(parser)
    add_log_level(parser)
    return parser


def _body(args: argparse.Namespace) -> dict:
    meta = score_meta(args.meta, args.facts)
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
    sclite = find_sclite() if args.scorer != "builtin" else None
    if args.scorer == "sclite" and sclite is None:
        raise ValueError("--scorer sclite: sclite not found (install Debian 'sctk' or set $SCLITE)")
    sc = None
    if sclite is not None:
        utt2spk_path = Path(args.utt2spk) if args.utt2spk else Path(args.ref).parent / "utt2spk"
        utt2spk = read_text(utt2spk_path) if (args.utt2spk or utt2spk_path.is_file()) else None
        try:
            sc = score_with_sclite(score, args.out, utt2spk=utt2spk, sclite=sclite)
        except ScliteError as e:
            if args.scorer == "sclite":
                raise ValueError(str(e)) from e
            logging.warning("%s; falling back to the builtin scorer", e)
    extra = {"scorer": "builtin"}
    if sc is not None:
        extra = {"scorer": "sclite", "sclite": {k: v for k, v in sc.counts.as_dict().items()}}
        extra["sclite"]["sentence_errors"] = sc.sentence_errors
        if sc.counts.errors != score.total.errors:
            logging.warning(
                "sclite counts %d errors, the builtin Levenshtein %d (sclite weighs sub 4, ins/del 3); "
                "result.json keeps the builtin counts", sc.counts.errors, score.total.errors,
            )
    record = write_score_dir(args.out, score, meta, args.ref, args.hyp, cpcer=cp_total, sessions=sessions, extra=extra)
    if sc is not None:
        head = sc.report.rstrip("\n").splitlines()
    else:
        serr = sum(1 for u in score.utts if u.counts.errors > 0)
        head = sum_avg_block(score.total, serr, args.hyp)
    txt = Path(args.out) / "result.txt"
    txt.write_text("\n".join(head) + "\n\n" + txt.read_text(encoding="utf-8"), encoding="utf-8")
    msg = f"CER {100 * record['cer']:.2f}% ({record['errors']}/{record['ref_chars']}, {extra['scorer']}) -> {args.out}"
    if cp_total is not None:
        msg += f"; cpCER {100 * cp_total.cer:.2f}% over {len(sessions)} sessions"
    logging.info(msg)
    return record


def main(cmd: Optional[List[str]] = None) -> dict:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    main_exit(main)
