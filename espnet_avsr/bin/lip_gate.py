#!/usr/bin/env python3
"""The lip-calibration gate of the paper's regime (issue 15), read on dev only.

A corpus is in MISP's regime on the video side when its lips are weak but informative:

  (1) the lip reader V0 is at least ``--margin`` CER points worse than the audio-only A0,
      both seeds pooled (MISP: lip reading far behind the far-field audio);
  (2) on **every** seed, V0 with its lips beats the same V0 decoded with every frame black
      (its decoder's grammar alone), the session-bootstrap interval excluding 0. Judged per
      seed, since a seed that learned nothing would give that seed's AV models a useless video
      start, and pooling would hide it behind a seed that learned.

    python -m espnet_avsr.bin.lip_gate --ref dump/raw/dev_far/text --seeds 0 1 \\
        --audio exp/A0/decode_asr_valid.acc.ave/dev_far/text exp/A0_s1/.../dev_far/text \\
        --lips  exp/V0/decode_avsr_fillblack_valid.acc.ave/dev_far_miss0_random/text ... \\
        --black exp/V0/decode_avsr_fillblack_valid.acc.ave/dev_far_miss1.0_random/text ... \\
        --out exp/lip_gate.json

Prints one markdown row per seed and the pooled row; exit status 0 whether or not the gate
passes (the verdict is in the output), 1 on bad input. Without ``--audio`` (A0 not trained yet)
only rule (2) is judged, so a lip reader that learned nothing is known before A0 is trained.
"""

from __future__ import annotations

import argparse
from typing import Dict, List, Optional, Sequence

from espnet_avsr.common.cli import add_log_level, main_exit, run_cli
from espnet_avsr.common.fileio import atomic_write_json
from espnet_avsr.eval.cer import CorpusScore, score_corpus
from espnet_avsr.eval.io import read_text
from espnet_avsr.eval.significance import SessionBootstrap, session_bootstrap


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Is the corpus's lip reader weak (rule 1) but informative on every seed (rule 2)?",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ref", required=True, help="reference text of the dev set")
    parser.add_argument("--seeds", required=True, nargs="+", help="seed labels, one per decode below")
    parser.add_argument("--audio", nargs="+", default=None,
                        help="A0's decode text, one per seed (none: rule (2) only, rule (1) waits for A0)")
    parser.add_argument("--lips", required=True, nargs="+", help="V0's decode text with complete video, one per seed")
    parser.add_argument("--black", required=True, nargs="+", help="V0's decode text with every frame black, one per seed")
    parser.add_argument("--margin", type=float, default=15.0, help="rule (1): V0 at least this many CER points worse than A0")
    parser.add_argument("--num_boot", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--out", default=None, help="also write the rows and the verdict as JSON here")
    add_log_level(parser)
    return parser


def _scores(refs: Dict[str, str], paths: Sequence[str]) -> List[CorpusScore]:
    out = []
    for path in paths:
        score = score_corpus(refs, read_text(path))
        if score.missing_hyp:
            raise ValueError(f"{path}: {len(score.missing_hyp)} reference utterances have no hypothesis "
                             f"(e.g. {score.missing_hyp[0]}); the gate reads complete decodes only")
        out.append(score)
    return out


def _pct(r: SessionBootstrap) -> Dict[str, float]:
    return {k: round(100 * getattr(r, k), 2) for k in ("cer_a", "cer_b", "delta", "ci_low", "ci_high")}


def gate(audio: Optional[Sequence[CorpusScore]], lips: Sequence[CorpusScore], black: Sequence[CorpusScore],
         seeds: Sequence[str], margin: float, num_boot: int = 10000, seed: int = 0) -> dict:
    """Rows per seed and pooled (CER in %), and the verdict of rules (1) and (2); without
    ``audio`` rule (1) is None (not judged) and so is the overall verdict unless (2) fails."""
    rows = []
    groups = [([i], str(s)) for i, s in enumerate(seeds)]
    if len(seeds) > 1:
        groups.append((list(range(len(seeds))), "pooled"))
    for idx, label in groups:
        vs_audio = (None if audio is None else
                    _pct(session_bootstrap([(audio[i], lips[i]) for i in idx], num_boot=num_boot, seed=seed)))
        vs_black = session_bootstrap([(black[i], lips[i]) for i in idx], num_boot=num_boot, seed=seed)
        rows.append({"seeds": label, "v0_minus_a0": vs_audio, "lips_minus_black": _pct(vs_black)})
    pooled = rows[-1]
    rule1 = None if audio is None else pooled["v0_minus_a0"]["delta"] >= margin
    failing = [r["seeds"] for r in rows[:len(seeds)] if r["lips_minus_black"]["ci_high"] >= 0]
    rule2 = not failing
    return {"margin": margin, "rows": rows, "rule1_v0_weak": rule1, "rule2_lips_informative_every_seed": rule2,
            "passes": rule1 if rule2 else False, "failing_seeds_rule2": failing}


def format_table(result: dict) -> str:
    def ci(d):
        return f"{d['delta']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"

    lines = ["| seeds | V0 | A0 | V0 - A0 [95 % session CI] | V0, frames black | lips - black [95 % CI] |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        a, b = r["v0_minus_a0"], r["lips_minus_black"]
        audio = "- | -" if a is None else f"{a['cer_a']:.2f} | {ci(a)}"
        lines.append(f"| {r['seeds']} | {b['cer_b']:.2f} | {audio} | {b['cer_a']:.2f} | {ci(b)} |")
    verdict = {True: "passes", False: "fails", None: "waits for A0"}[result["passes"]]
    why = []
    if result["rule1_v0_weak"] is None:
        why.append("(1) not judged yet (no A0 decode)")
    elif not result["rule1_v0_weak"]:
        why.append(f"(1) V0 is less than {result['margin']:g} points worse than A0")
    if not result["rule2_lips_informative_every_seed"]:
        why.append(f"(2) the lips do not beat black frames on seed(s) {', '.join(result['failing_seeds_rule2'])}")
    lines.append("")
    lines.append(f"gate: {verdict}" + (": " + "; ".join(why) if why else
                                        f": V0 at least {result['margin']:g} points worse than A0, lips informative on every seed"))
    return "\n".join(lines)


def _body(args: argparse.Namespace) -> dict:
    n = len(args.seeds)
    for name in ("audio", "lips", "black"):
        if getattr(args, name) is not None and len(getattr(args, name)) != n:
            raise ValueError(f"--{name} has {len(getattr(args, name))} files for {n} seeds: give one per seed")
    refs = read_text(args.ref)
    audio = None if args.audio is None else _scores(refs, args.audio)
    result = gate(audio, _scores(refs, args.lips), _scores(refs, args.black), args.seeds, args.margin,
                  args.num_boot, args.seed)
    result.update(ref=args.ref, audio=args.audio, lips=args.lips, black=args.black, num_boot=args.num_boot)
    print(format_table(result))
    if args.out:
        atomic_write_json(args.out, result)
    return result


def main(cmd: Optional[List[str]] = None) -> dict:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    main_exit(main)
