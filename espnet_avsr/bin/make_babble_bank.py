#!/usr/bin/env python3
"""Held-out babble talkers (voices and text never in training) for the zero-shot noise test.

Example:
    python -m espnet_avsr.bin.make_babble_bank --out exp/babble_bank --seed 0
    python -m espnet_avsr.bin.mix_noise --babble_source exp/babble_bank ...
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from espnet_avsr.common.cli import run_cli
from espnet_avsr.corpus.babble_bank import make_babble_bank
from espnet_avsr.corpus.speech import EspeakError, SyllableSynth


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="data dir to write (wav.scp, utt2spk, wav/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--talkers", type=int, default=12)
    p.add_argument("--utts_per_talker", type=int, default=8)
    p.add_argument("--tts_cache", default=None, help="syllable cache folder (speeds up re-runs)")
    return p


def _body(args: argparse.Namespace) -> None:
    synth = SyllableSynth(cache_dir=Path(args.tts_cache) if args.tts_cache else None)
    out = make_babble_bank(Path(args.out), args.seed, args.talkers, args.utts_per_talker, synth)
    print(f"babble bank: {out}")


def main(cmd: Optional[List[str]] = None) -> None:
    run_cli(get_parser(), _body, cmd, errors=(EspeakError, OSError), prog="make_babble_bank")


if __name__ == "__main__":
    main()
