#!/usr/bin/env python3
"""MP4 + detection JSON -> per-utterance grey lip ROI .npy (T, 96, 96) uint8 + roi.scp.

Writes OUT/npy/<utt>.npy and, in --scp_dir (default OUT), roi.scp, roi_detect_ratio and
roi_report.json. For split parts give each job its own --scp_dir and merge with
`split_data_dir --merge`.
"""
import argparse
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.common.timing import ROI_SIZE
from espnet_avsr.dataprep.lip_roi import FPS_POLICIES, RoiConfig, extract_lip_roi


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="data dir with segments, utt2video, video.scp, detection.scp")
    p.add_argument("--out", required=True, help="output dir, e.g. dump/roi/train_far")
    p.add_argument("--scp_dir", default=None, help="where roi.scp/roi_detect_ratio/report go (default OUT)")
    p.add_argument("--roi_size", type=int, default=ROI_SIZE)
    p.add_argument("--min_detect_ratio", type=float, default=0.5,
                   help="skip utterances with a smaller fraction of detected frames")
    p.add_argument("--pad_mode", default="edge", choices=("edge", "zero"), help="fill for crops leaving the image")
    p.add_argument("--skip_bad_videos", action="store_true",
                   help="skip (and report) utterances of corrupt videos instead of failing")
    p.add_argument("--video_fps_policy", default="refuse", choices=FPS_POLICIES,
                   help="a video not at 25 fps: refuse it, or map 40 ms frames to its frames nearest in time")
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> int:
    cfg = RoiConfig(roi_size=a.roi_size, min_detect_ratio=a.min_detect_ratio, pad_mode=a.pad_mode,
                    skip_bad_videos=a.skip_bad_videos, fps_policy=a.video_fps_policy)
    extract_lip_roi(a.data, a.out, cfg, a.scp_dir)
    return 0


def main(cmd: Optional[List[str]] = None) -> int:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    raise SystemExit(main())
