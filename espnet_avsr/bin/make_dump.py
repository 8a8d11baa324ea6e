#!/usr/bin/env python3
"""The dump training and decoding read: per-utterance 16 kHz wavs (segments cut, speed applied),
utt2num_samples, the ROI scp and, for utterances without lips, the shared no-video marker.

Writes OUT/wav/<utt>.wav and, in --scp_dir (default OUT), wav.scp, utt2num_samples,
text, utt2spk, spk2utt, [roi.scp, roi_detect_ratio] and dump_report.json.
"""
import argparse
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.dataprep.dump import NO_ROI_POLICIES, make_dump


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="data dir (possibly enhanced / speed-perturbed)")
    p.add_argument("--out", required=True, help="dump dir, e.g. dump/raw/train_far")
    p.add_argument("--scp_dir", default=None, help="where the list files go (default OUT)")
    p.add_argument("--roi_scp", default=None, help="roi.scp to attach (see --no_roi for utterances it lacks)")
    p.add_argument("--roi_detect_ratio", default=None, help="default: roi_detect_ratio beside --roi_scp")
    p.add_argument("--no_roi", choices=NO_ROI_POLICIES, default=None,
                   help="utterances absent from --roi_scp: drop (default; training), mark (keep, roi.scp -> "
                        "zero-length ROI = video entirely missing; eval sets), omit (keep, no roi.scp line)")
    p.add_argument("--keep_audio_only", action="store_true", help="same as --no_roi omit")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    make_dump(a.data, a.out, a.roi_scp, a.roi_detect_ratio, a.scp_dir, a.keep_audio_only, a.no_roi)
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
