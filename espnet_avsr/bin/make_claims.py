#!/usr/bin/env python3
"""The paper's claims with session-level intervals pooled over seeds: exp/claims.json + a
markdown table (issue 15; rule in espnet_avsr.eval.claims.VERDICT_RULE).

Inputs are tab-separated lists the recipe writes in stage 11 (only decodes of the current
models and settings are listed, so nothing stale enters):

    --decodes   base  seed  condition  score_dir     (condition: missing=<rate> | babble=<snr>)
    --relative  dropout  seed  test_rate  asr_hyp_text  avsr_hyp_text
                                        (relative CER of the study models at a test missing rate)
    --similarity dropout seed value|rep_similarity.json      (ASR/AVSR similarity of the study; a
                                  json brings its pooled arrays: CKA with a session bootstrap)

Each score dir's result.json names its reference and hypothesis texts; they are re-scored
per utterance here, since the interval resamples sessions of utterances.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from espnet_avsr.common.cli import run_cli
from espnet_avsr.eval.bias import relative_cer
from espnet_avsr.eval.cer import CorpusScore, score_corpus
from espnet_avsr.eval.claims import evaluate_claims, format_claims
from espnet_avsr.eval.io import read_text
from espnet_avsr.eval.similarity import PooledSample, read_pooled


def _rows(path: Optional[str], width: int) -> List[List[str]]:
    if not path:
        return []
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != width:
            raise ValueError(f"{path}:{n}: expected {width} tab-separated columns, got {len(cols)}")
        out.append(cols)
    return out


def _refuse_duplicate_seeds(items: List[Tuple[int, object]]) -> None:
    """Two rows for one seed would weigh that seed twice in the pooled bootstrap."""
    seeds = [s for s, _ in items]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the same seed appears twice: {sorted(seeds)}")


def _by_seed(items: List[Tuple[int, object]]) -> List:
    _refuse_duplicate_seeds(items)
    return [x for _, x in sorted(items, key=lambda t: t[0])]


def load_scores(decodes: str) -> Dict[str, Dict[str, Dict[int, CorpusScore]]]:
    """scores[base][condition] = {seed: score}: a model whose other seed is still training
    keeps the seeds it has, and claims pair the seeds both sides have."""
    acc: Dict[Tuple[str, str], List[Tuple[int, CorpusScore]]] = defaultdict(list)
    for base, seed, cond, score_dir in _rows(decodes, 4):
        result = Path(score_dir) / "result.json"
        if not result.is_file():
            raise FileNotFoundError(f"{result}: no score (decode {base} seed {seed} {cond} not finished?)")
        rec = json.loads(result.read_text(encoding="utf-8"))
        acc[(base, cond)].append((int(seed), score_corpus(read_text(rec["ref"]), read_text(rec["hyp"]))))
    scores: Dict[str, Dict[str, Dict[int, CorpusScore]]] = defaultdict(dict)
    for (base, cond), items in acc.items():
        _refuse_duplicate_seeds(items)
        scores[base][cond] = dict(items)
    return scores


def _similarity(value: str) -> Union[float, PooledSample]:
    """A number, or the pooled arrays beside a rep_similarity.json (the claim recomputes their
    linear CKA on resampled sessions)."""
    try:
        return float(value)
    except ValueError:
        return read_pooled(value)


def add_claim_options(p: argparse.ArgumentParser) -> None:
    """What the claims are judged with besides the decodes (compare_decode_modes judges them too)."""
    p.add_argument("--babble_snrs", default="", help="babble SNRs decoded, e.g. '5 0 -5'")
    p.add_argument("--num_boot", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--decodes", required=True)
    p.add_argument("--relative", default=None)
    p.add_argument("--similarity", default=None)
    add_claim_options(p)
    p.add_argument("--out_json", required=True)
    p.add_argument("--out_md", required=True)
    return p


def _body(args: argparse.Namespace) -> None:
    scores = load_scores(args.decodes)
    rel_acc: Dict[float, Dict[float, List[Tuple[int, CorpusScore]]]] = defaultdict(lambda: defaultdict(list))
    for rate, seed, test_rate, asr, avsr in _rows(args.relative, 5):
        rel_acc[float(test_rate)][float(rate)].append((int(seed), relative_cer(read_text(asr), read_text(avsr))))
    sim_acc: Dict[float, List[Tuple[int, object]]] = defaultdict(list)
    for rate, seed, value in _rows(args.similarity, 3):
        sim_acc[float(rate)].append((int(seed), _similarity(value)))
    claims = evaluate_claims(
        scores, relative={t: {k: _by_seed(v) for k, v in by.items()} for t, by in rel_acc.items()} or None,
        similarity={k: _by_seed(v) for k, v in sim_acc.items()} or None,
        babble_snrs=[float(x) for x in args.babble_snrs.split()], num_boot=args.num_boot, seed=args.seed)
    Path(args.out_json).write_text(json.dumps([c.as_dict() for c in claims], indent=1) + "\n", encoding="utf-8")
    md = format_claims(claims)
    Path(args.out_md).write_text(md + "\n", encoding="utf-8")
    print(md)


def main(cmd: Optional[List[str]] = None) -> None:
    run_cli(get_parser(), _body, cmd, errors=(OSError, ValueError, KeyError), prog="make_claims")


if __name__ == "__main__":
    main()
