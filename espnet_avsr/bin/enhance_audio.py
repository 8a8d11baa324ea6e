#!/usr/bin/env python3
"""WPE dereverberation + beamforming of far/middle arrays, streamed in blocks.

Writes OUT/<rec>.wav (16 kHz mono) and a data dir (--out_data, default OUT/data)
whose wav.scp points at them; finished recordings are skipped on rerun.
"""
import argparse
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.dataprep.enhance import METHODS, FrontendConfig, enhance_data_dir


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="input data dir (wav.scp + channels.scp)")
    p.add_argument("--out", required=True, help="directory for the enhanced wavs")
    p.add_argument("--out_data", default=None, help="output data dir (default: OUT/data)")
    p.add_argument("--method", default="wpe_ds", choices=METHODS)
    p.add_argument("--taps", type=int, default=10, help="WPE filter taps")
    p.add_argument("--delay", type=int, default=3, help="WPE prediction delay (frames)")
    p.add_argument("--iterations", type=int, default=5, help="WPE iterations")
    p.add_argument("--n_fft", type=int, default=512)
    p.add_argument("--shift", type=int, default=128)
    p.add_argument("--block_s", type=float, default=30.0, help="streaming block length (s)")
    p.add_argument("--overlap_s", type=float, default=2.0, help="cross-faded overlap between blocks (s)")
    p.add_argument("--max_delay_ms", type=float, default=2.0, help="largest inter-mic delay searched by GCC-PHAT")
    p.add_argument("--mvdr_activity", default="energy", choices=("energy", "oracle"),
                   help="MVDR noise frames: lowest-energy frames, or outside `segments` (oracle)")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    cfg = FrontendConfig(
        method=a.method, n_fft=a.n_fft, shift=a.shift, taps=a.taps, delay=a.delay, iterations=a.iterations,
        block_s=a.block_s, overlap_s=a.overlap_s, max_delay_ms=a.max_delay_ms, mvdr_activity=a.mvdr_activity,
    )
    enhance_data_dir(a.data, a.out, cfg, a.out_data)
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
