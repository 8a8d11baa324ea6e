#!/usr/bin/env python3
"""Speed-perturbed copy of a data dir (sp<f>- ids, utt2speed) with matching ROI timelines.

Audio is resampled like `sox speed` (tempo and pitch) when make_dump runs; ROI
sequences are remapped by nearest frame to round(T / f) frames here.
"""
import argparse
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.dataprep.speed import speed_perturb_dir


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="input data dir")
    p.add_argument("--out", required=True, help="output data dir, e.g. data/train_far_sp")
    p.add_argument("--factors", type=float, nargs="+", default=[0.9, 1.0, 1.1])
    p.add_argument("--roi_scp", default=None, help="roi.scp of the input (roi_detect_ratio read beside it)")
    p.add_argument("--roi_out", default=None, help="dir for speed-changed ROI .npy (default OUT/roi)")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    speed_perturb_dir(a.data, a.out, a.factors, a.roi_scp, a.roi_out)
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
