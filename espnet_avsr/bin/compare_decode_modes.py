#!/usr/bin/env python3
"""Compare two decodes of the same models (beam search against CTC greedy): same orderings?

Issue 15 lets the sweeps use CTC greedy search only where beam search changes no ordering.
Stage 11 lists the decodes it reads in ``exp/claims_inputs/decodes.tsv``; keep one list per
decode mode and compare them:

    ./run.sh ... --stage 10 --stop_stage 11                      # beam search (default)
    cp exp/claims_inputs/decodes.tsv exp/decodes_beam.tsv
    ./run.sh ... --stage 10 --stop_stage 11 --decode_mode ctc_greedy
    python -m espnet_avsr.bin.compare_decode_modes --a exp/decodes_beam.tsv \\
        --b exp/claims_inputs/decodes.tsv --labels beam ctc_greedy --babble_snrs "5 0 -5" \\
        --out_json exp/decode_modes.json --out_md exp/DECODE_MODES.md

Prints the mean CER of every (model, condition) under both, the pairs whose order differs
(models within a condition, conditions within a model), and every claim's verdict under both.
Exit status 0 either way (the answer is ``same_orderings`` / ``same_verdicts`` in the JSON).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional

from espnet_avsr.bin.make_claims import add_claim_options, load_scores
from espnet_avsr.common.cli import main_exit, run_cli
from espnet_avsr.common.fileio import atomic_write_json
from espnet_avsr.eval.orderings import mean_cers, ordering_flips, verdict_changes


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--a", required=True, help="decodes.tsv of the reference decode (beam search)")
    p.add_argument("--b", required=True, help="decodes.tsv of the cheaper decode (CTC greedy)")
    p.add_argument("--labels", nargs=2, default=["beam", "ctc_greedy"], metavar=("A", "B"))
    add_claim_options(p)  # --babble_snrs, --num_boot, --seed (the same bootstrap for both decodes)
    p.add_argument("--out_json", required=True)
    p.add_argument("--out_md", default=None)
    return p


def _body(args: argparse.Namespace) -> Dict:
    la, lb = args.labels
    sa, sb = load_scores(args.a), load_scores(args.b)
    ca, cb = mean_cers(sa), mean_cers(sb)
    common = sorted(set(ca) & set(cb))
    if not common:
        raise ValueError(f"{args.a} and {args.b} share no (model, condition): not decodes of the same models")
    n_pairs, flips = ordering_flips(ca, cb)
    snrs = [float(x) for x in args.babble_snrs.split()]
    claims = verdict_changes(sa, sb, snrs, args.num_boot, args.seed)
    result = dict(
        labels=[la, lb], cells=[dict(model=m, condition=c, cer_a=ca[(m, c)], cer_b=cb[(m, c)]) for m, c in common],
        only_a=[f"{m} {c}" for m, c in sorted(set(ca) - set(cb))],
        only_b=[f"{m} {c}" for m, c in sorted(set(cb) - set(ca))],
        pairs=n_pairs, flips=[f.as_dict() for f in flips], claims=claims,
        same_orderings=not flips, same_verdicts=all(c["same"] for c in claims),
    )
    atomic_write_json(args.out_json, result)
    md = format_markdown(result)
    if args.out_md:
        Path(args.out_md).write_text(md + "\n", encoding="utf-8")
    print(md)
    return result


def format_markdown(r: Dict) -> str:
    la, lb = r["labels"]
    pct = lambda x: "-" if x is None else f"{100 * x:.2f}"
    signed = lambda x: "-" if x is None else f"{100 * x:+.2f}"
    lines = [f"| model | condition | {la} | {lb} | {lb} - {la} |", "|---|---|---|---|---|"]
    lines += [f"| {c['model']} | {c['condition']} | {pct(c['cer_a'])} | {pct(c['cer_b'])} | "
              f"{signed(c['cer_b'] - c['cer_a'])} |" for c in r["cells"]]
    lines += ["", f"Orderings: {r['pairs']} pairs (models within a condition, conditions within a model), "
                  f"{len(r['flips'])} in another order under {lb}."]
    if r["flips"]:
        lines += ["", f"| within | first | second | first - second, {la} | same, {lb} |", "|---|---|---|---|---|"]
        lines += [f"| {f['within']} | {f['first']} | {f['second']} | {f['diff_a']:+.2f} | {f['diff_b']:+.2f} |"
                  for f in r["flips"]]
    if r["claims"]:
        lines += ["", f"| claim | {la}: B - A | verdict | {lb}: B - A | verdict | same |", "|---|---|---|---|---|---|"]
        lines += [f"| {c['statement']} | {signed(c['delta_a'])} | {c['verdict_a']} | {signed(c['delta_b'])} | "
                  f"{c['verdict_b']} | {'yes' if c['same'] else '**no**'} |" for c in r["claims"]]
    for side, label in (("only_a", la), ("only_b", lb)):
        if r[side]:
            lines += ["", f"Decoded under {label} only (not compared): {', '.join(r[side])}"]
    return "\n".join(lines)


def main(cmd: Optional[List[str]] = None) -> Dict:
    return run_cli(get_parser(), _body, cmd, errors=(OSError, ValueError, KeyError), prog="compare_decode_modes")


if __name__ == "__main__":
    main_exit(main)
