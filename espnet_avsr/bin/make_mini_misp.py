#!/usr/bin/env python3
"""Generate a synthetic MISP-format AVSR corpus (audio arrays, videos, TextGrids, detections).

Example:
    python -m espnet_avsr.bin.make_mini_misp --out corpus --hours 0.2 --seed 0 --nj 2 --preset demo
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional, Tuple

from espnet_avsr.corpus.generate import format_summary, make_corpus
from espnet_avsr.corpus.plan import CorpusConfig, CorpusError
from espnet_avsr.corpus.session import GenOptions
from espnet_avsr.corpus.speech import EspeakError

#: Presets fill options the user did not give. full = MISP camera sizes.
PRESETS = {
    "full": {"far_size": "1920x1080", "middle_size": "1280x720", "session_seconds": 300.0},
    "bench": {"far_size": "1280x720", "middle_size": "640x360", "session_seconds": 300.0},
    "demo": {"far_size": "1280x720", "middle_size": "640x360", "session_seconds": 90.0},
    "tiny": {"far_size": "640x360", "middle_size": "640x360", "session_seconds": 15.0},
}


def _size(text: str) -> Tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CorpusError(f"size must look like 1920x1080, got {text!r}") from None
    return w, h


def _range(text: str, name: str) -> Tuple[float, float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise CorpusError(f"{name} must be a number or LOW,HIGH, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2:
        raise CorpusError(f"{name} must be a number or LOW,HIGH, got {text!r}")
    return vals[0], vals[1]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Generate a synthetic Mandarin AVSR corpus in the MISP release layout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", required=True, help="corpus root (MISP layout is written below it)")
    p.add_argument("--hours", type=float, required=True, help="total recording hours over all splits")
    p.add_argument("--seed", type=int, default=0, help="same seed and options -> same corpus")
    p.add_argument("--nj", type=int, default=1, help="parallel worker processes (over sessions)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="full",
                   help="defaults for sizes and session length: full (MISP 1080p/720p), "
                        "bench, demo (smaller video, 90 s sessions), tiny (tests)")
    p.add_argument("--far_size", default=None, help="far camera WxH (preset if unset)")
    p.add_argument("--middle_size", default=None, help="middle camera WxH (preset if unset)")
    p.add_argument("--session_seconds", type=float, default=None, help="mean session length")
    p.add_argument("--sessions_per_split", type=int, default=2, help="minimum sessions per split")
    p.add_argument("--min_speakers", type=int, default=2)
    p.add_argument("--max_speakers", type=int, default=4)
    p.add_argument("--speakers_per_hour", type=float, default=2.5,
                   help="speaker pool per split: this many per hour of the split (at least "
                        "max_speakers + 1); small corpora need more to generalise to unseen speakers")
    p.add_argument("--snr_db", default="0,5", help="far-field SNR (dB): value or LOW,HIGH")
    p.add_argument("--middle_snr_offset", type=float, default=5.0, help="middle SNR = far SNR + this")
    p.add_argument("--rt60", default="0.3,0.7", help="room reverberation time range (s)")
    p.add_argument("--missing_detection_rate", type=float, default=0.07,
                   help="mean share of video frames without a lip detection")
    p.add_argument("--overlap_prob", type=float, default=0.15, help="chance a turn overlaps the last")
    p.add_argument("--tts_cache", default=None,
                   help="folder to keep synthesised syllables in between runs (speeds up re-runs)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def build_config(args: argparse.Namespace) -> CorpusConfig:
    """Options + preset -> :class:`CorpusConfig` (raises CorpusError on bad values)."""
    preset = PRESETS[args.preset]
    options = GenOptions(
        far_size=_size(args.far_size or preset["far_size"]),
        middle_size=_size(args.middle_size or preset["middle_size"]),
        snr_db=_range(args.snr_db, "--snr_db"),
        middle_snr_offset=args.middle_snr_offset,
        rt60=_range(args.rt60, "--rt60"),
        missing_detection_rate=args.missing_detection_rate,
        overlap_prob=args.overlap_prob,
    )
    return CorpusConfig(
        hours=args.hours, seed=args.seed,
        session_seconds=args.session_seconds or preset["session_seconds"],
        sessions_per_split=args.sessions_per_split,
        min_speakers=args.min_speakers, max_speakers=args.max_speakers,
        speakers_per_hour=args.speakers_per_hour, options=options,
    )


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    try:
        cfg = build_config(args)
        summary = make_corpus(args.out, cfg, nj=args.nj, progress=not args.no_progress,
                              tts_cache=args.tts_cache)
    except (CorpusError, EspeakError) as e:
        sys.exit(f"make_mini_misp: error: {e}")
    except KeyboardInterrupt:
        sys.exit("make_mini_misp: interrupted; re-run the same command to finish")
    print(format_summary(summary))


if __name__ == "__main__":
    main()
