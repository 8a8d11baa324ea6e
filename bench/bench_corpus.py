#!/usr/bin/env python3
"""Throughput of the synthetic MISP corpus generator.

Generates a corpus into a fresh folder and prints seconds of recording generated per
second of wall time, overall and per core (worker), plus the CPU split between the
stages of one session. Use it to size big runs: hours_wall = hours / (rate_per_core * nj).

    python bench/bench_corpus.py --preset bench --hours 0.05 --nj 2
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from espnet_avsr.bin.make_mini_misp import build_config, get_parser  # noqa: E402
from espnet_avsr.corpus.generate import make_corpus  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and its finished children (espeak-ng)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="bench")
    p.add_argument("--hours", type=float, default=0.05)
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--session_seconds", type=float, default=None)
    p.add_argument("--keep", default=None, help="write the corpus here and keep it")
    p.add_argument("--warm_tts", action="store_true",
                   help="synthesise the voices first (measures steady-state throughput)")
    args = p.parse_args()

    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_corpus_"))
    cli = ["--out", str(out), "--hours", str(args.hours), "--seed", str(args.seed),
           "--nj", str(args.nj), "--preset", args.preset]
    if args.session_seconds:
        cli += ["--session_seconds", str(args.session_seconds)]
    cfg = build_config(get_parser().parse_args(cli))
    tts = Path(tempfile.mkdtemp(prefix="bench_tts_"))
    try:
        if args.warm_tts:
            from espnet_avsr.corpus.plan import make_plan
            from espnet_avsr.corpus.speech import SyllableSynth

            synth = SyllableSynth(cache_dir=tts)
            voices = {v for s in make_plan(cfg) for v in
                      [x.voice for x in s.speakers] + list(s.babble_voices) + list(s.tv_voices)}
            for v in sorted(voices, key=lambda v: v.key):
                synth.syllable(v, "a1")
        t0, c0 = time.time(), _cpu()
        summary = make_corpus(out, cfg, nj=args.nj, progress=False, tts_cache=tts)
        wall, cpu = time.time() - t0, _cpu() - c0
    finally:
        shutil.rmtree(tts, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    audio_s = summary["hours"] * 3600
    result = {
        "preset": args.preset,
        "far_size": list(cfg.options.far_size),
        "middle_size": list(cfg.options.middle_size),
        "nj": args.nj,
        "hours": summary["hours"],
        "sessions": len(summary["sessions"]),
        "wall_s": round(wall, 1),
        "audio_s_per_wall_s": round(audio_s / wall, 3),
        "audio_s_per_wall_s_per_core": round(audio_s / wall / args.nj, 3),
        "hours_per_hour_on_16_cores": round(audio_s / wall / args.nj * 16, 2),
        "warm_tts": args.warm_tts,
        # CPU-time rate (this process + espeak-ng): independent of machine load; nj=1 only
        "audio_s_per_cpu_s": round(audio_s / cpu, 3) if args.nj == 1 else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
