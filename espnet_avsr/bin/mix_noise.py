#!/usr/bin/env python3
"""Zero-shot noise test sets: a copy of a dump dir with babble or file noise at a given SNR."""

from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, main_exit, run_cli
from espnet_avsr.dataprep.noise import MixConfig, mix_dump_dir


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Mix noise into every utterance of a dump dir at a target SNR (deterministic per utterance)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="input dump dir (wav.scp, roi.scp, text, ...)")
    parser.add_argument("--out", required=True, help="output dump dir (wavs under OUT/data)")
    parser.add_argument("--snr", type=float, required=True, help="target SNR in dB (active speech vs noise power)")
    parser.add_argument("--noise", choices=["babble", "file"], default="babble")
    parser.add_argument("--babble_source", help="data dir (or wav.scp) of held-out speakers for babble")
    parser.add_argument("--num_talkers", type=int, default=6, help="simultaneous babble talkers")
    parser.add_argument("--noise_file", help="noise recording for --noise file")
    parser.add_argument("--seed", type=int, default=0, help="noise is drawn from (seed, utt_id)")
    add_log_level(parser)
    return parser


def _body(args: argparse.Namespace) -> dict:
    if args.noise == "file" and not args.noise_file:
        raise ValueError("--noise file needs --noise_file PATH")
    cfg = MixConfig(
        snr=args.snr,
        noise=args.noise,
        seed=args.seed,
        babble_source=args.babble_source if args.noise == "babble" else None,
        num_talkers=args.num_talkers if args.noise == "babble" else 0,
        noise_file=args.noise_file if args.noise == "file" else None,
    )
    return mix_dump_dir(args.data, args.out, cfg, progress=args.log_level != "ERROR")


def main(cmd: Optional[List[str]] = None) -> dict:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    main_exit(main)
