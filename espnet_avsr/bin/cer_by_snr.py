#!/usr/bin/env python3
"""CER of a decode per band of per-utterance far-field SNR (synthetic corpus only).

Why: one calibration corpus with a wide SNR range gives the whole CER-vs-SNR curve of A0,
from which the benchmark's SNR range is chosen (on dev), instead of one corpus per guess.
The SNR of each utterance is the generator's measurement (alignment/<split>/<session>.json);
utterances are matched by speaker, session and start time (within 40 ms).

Example:
    python -m espnet_avsr.bin.cer_by_snr --corpus corpus --split dev --ref data/dev_far/text \\
        --hyp exp/A0/decode_dev_far/text --bands 0,5,10,15,20
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from espnet_avsr.common.cli import run_cli

import numpy as np

from espnet_avsr.common.naming import parse_utt_id
from espnet_avsr.eval.cer import score_corpus
from espnet_avsr.eval.io import read_text


def utterance_snrs(corpus: Path, split: str, array: str = "far") -> Dict[Tuple[str, str], List[Tuple[float, float]]]:
    """(speaker, session) -> [(start seconds, SNR dB)] of the target utterances."""
    out: Dict[Tuple[str, str], List[Tuple[float, float]]] = {}
    files = sorted((corpus / "alignment" / split).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{corpus}/alignment/{split}: no alignment files (a synthetic corpus is needed)")
    for f in files:
        d = json.loads(f.read_text(encoding="utf-8"))
        for spk, evs in d["speakers"].items():
            out[(spk, d["session"])] = [(e["start"], e["snr_db"][array]) for e in evs
                                        if e["kind"] == "speech" and array in e.get("snr_db", {})]
    return out


def cer_by_band(refs: Dict[str, str], hyps: Dict[str, str], snrs, bands: List[float]) -> List[Dict]:
    """One row per band [lo, hi): utterances, characters and CER."""
    band_of: Dict[str, int] = {}
    for utt in refs:
        spk, session, start, _ = parse_utt_id(utt)
        cands = snrs.get((spk, session), [])
        near = [snr for t, snr in cands if abs(t - start / 100) <= 0.045]
        if not near:
            continue
        k = int(np.searchsorted(bands, near[0], side="right")) - 1
        if 0 <= k < len(bands) - 1:
            band_of[utt] = k
    rows = []
    for k in range(len(bands) - 1):
        ids = [u for u, b in band_of.items() if b == k]
        if not ids:
            rows.append({"band": [bands[k], bands[k + 1]], "utts": 0, "chars": 0, "cer": None})
            continue
        s = score_corpus({u: refs[u] for u in ids}, {u: hyps.get(u, "") for u in ids})
        rows.append({"band": [bands[k], bands[k + 1]], "utts": len(ids), "chars": s.total.ref_chars,
                     "cer": round(s.total.cer, 4)})
    rows.append({"unmatched_utts": len(refs) - len(band_of)})
    return rows


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True, type=Path)
    p.add_argument("--split", required=True, choices=["train", "dev", "eval"])
    p.add_argument("--ref", required=True)
    p.add_argument("--hyp", required=True)
    p.add_argument("--array", default="far", choices=["far", "middle"])
    p.add_argument("--bands", default="-10,0,5,10,15,20,30", help="band edges in dB")
    p.add_argument("--json", default=None)
    return p


def _body(args: argparse.Namespace) -> None:
    bands = [float(x) for x in args.bands.split(",")]
    rows = cer_by_band(read_text(args.ref), read_text(args.hyp),
                       utterance_snrs(args.corpus, args.split, args.array), bands)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print("| SNR band (dB) | utts | chars | CER % |\n|---|---|---|---|")
    for r in rows[:-1]:
        cer = "-" if r["cer"] is None else f"{100 * r['cer']:.1f}"
        print(f"| {r['band'][0]:g} .. {r['band'][1]:g} | {r['utts']} | {r['chars']} | {cer} |")
    print(f"({rows[-1]['unmatched_utts']} utterances not matched to an SNR)")


def main(cmd: Optional[List[str]] = None) -> None:
    run_cli(get_parser(), _body, cmd, errors=(OSError, ValueError, KeyError), prog="cer_by_snr")


if __name__ == "__main__":
    main()
