#!/usr/bin/env python3
"""ESPnet token list (<blank>, <unk>, tokens by frequency, <sos/eos>): characters or sentencepiece."""
import argparse
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.dataprep.token_list import make_token_list


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--text", required=True, help="Kaldi text file (utt transcript)")
    p.add_argument("--out", required=True, help="token list to write, e.g. data/token_list/char/tokens.txt")
    p.add_argument("--token_type", default="char", choices=("char", "bpe"))
    p.add_argument("--nbpe", type=int, default=500, help="sentencepiece vocabulary size")
    p.add_argument("--bpe_mode", default="unigram", choices=("unigram", "bpe"))
    p.add_argument("--bpe_model_prefix", default=None, help="default: <dir of OUT>/bpe -> bpe.model")
    p.add_argument("--cutoff", type=int, default=0, help="drop tokens seen this many times or fewer")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    make_token_list(a.text, a.out, a.token_type, a.nbpe, a.bpe_model_prefix, a.bpe_mode, a.cutoff)
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
