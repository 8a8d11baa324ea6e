#!/usr/bin/env python3
"""Audio/video frame agreement of a dump (num_samples/640 vs ROI T); exit 1 on outliers."""
import argparse
import json
import logging
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.common.timing import ROI_SIZE
from espnet_avsr.dataprep.dump_check import check_dump, format_report


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dump", required=True, help="dump dir with utt2num_samples and roi.scp")
    p.add_argument("--tolerance", type=float, default=1.0, help="allowed |audio - video| in 40 ms frames")
    p.add_argument("--roi_size", type=int, default=ROI_SIZE)
    p.add_argument("--json_out", default=None, help="also write the full report as JSON")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    rep = check_dump(a.dump, a.tolerance, a.roi_size)
    print(format_report(rep))
    if a.json_out:
        with open(a.json_out, "w", encoding="utf-8") as f:
            json.dump(rep, f, indent=2, ensure_ascii=False)
    if rep["outliers"]:
        logging.error("%s: %d outliers beyond %.1f frame(s)", a.dump, len(rep["outliers"]), a.tolerance)
        return 1
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
