#!/usr/bin/env python3
"""Lip ROI extraction time vs plain decoding time of the same synthetic MP4s.

Generates its own inputs (MP4 mp4v 25 fps with drawn mouths, detection JSON, a
data dir whose utterances cover most of each video), then times
1) decoding every frame with cv2 and 2) `extract_lip_roi`, and prints the ratio.

    tools/venv/bin/python bench/bench_roi.py --videos 2 --seconds 30 --width 1280 --height 720
"""
import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from espnet_avsr.common.kaldi_dir import save_dir  # noqa: E402
from espnet_avsr.dataprep.lip_roi import RoiConfig, extract_lip_roi  # noqa: E402


def make_inputs(work: Path, n_videos: int, seconds: float, width: int, height: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = int(seconds * 25)
    files = {k: {} for k in ("text", "utt2spk", "segments", "wav.scp", "video.scp", "detection.scp", "utt2video")}
    spks = ("001", "002")
    for v in range(n_videos):
        sess = f"R{v + 1:02d}_S001002_C01_I0"
        vid = f"{sess}_Far"
        mp4, js = work / f"{vid}.mp4", work / f"{vid}.json"
        centres = {s: (width * (0.3 + 0.4 * i), height * 0.6) for i, s in enumerate(spks)}
        vw = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
        noise = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
        dets = {}
        for t in range(n):
            img = noise + np.uint8(120)
            entries = []
            for s, (cx, cy) in centres.items():
                open_ = 10 + 8 * np.sin(t / 3.0 + int(s))
                lip = [cx - 30, cy - open_, cx + 30, cy + open_]
                cv2.rectangle(img, (int(lip[0]), int(lip[1])), (int(lip[2]), int(lip[3])), (20, 20, 20), -1)
                if rng.random() > 0.1:
                    entries.append({"id": s, "x1": cx - 80, "y1": cy - 120, "x2": cx + 80, "y2": cy + 40, "lip": lip})
            if entries:
                dets[str(t)] = entries
            vw.write(img)
        vw.release()
        js.write_text(json.dumps(dets))
        files["video.scp"][vid] = str(mp4)
        files["detection.scp"][vid] = str(js)
        files["wav.scp"][vid] = "/dev/null"
        # utterances of 2-6 s for both speakers covering ~70 % of the video each
        for s in spks:
            t = rng.uniform(0, 1.0)
            while True:
                dur = rng.uniform(2, 6)
                if t + dur > seconds:
                    break
                s0, e0 = round(t * 25) / 25, round((t + dur) * 25) / 25
                utt = f"S{s}_{sess}_{int(s0 * 100):06d}-{int(e0 * 100):06d}"
                files["text"][utt] = "你好"
                files["utt2spk"][utt] = f"S{s}"
                files["segments"][utt] = f"{vid} {s0:.2f} {e0:.2f}"
                files["utt2video"][utt] = f"{vid} {s}"
                t += dur + rng.uniform(0.5, 2.5)
    save_dir(work / "data", files)
    return work / "data", [Path(p) for p in files["video.scp"].values()], len(files["text"])


def decode_all(paths) -> int:
    frames = 0
    for p in paths:
        cap = cv2.VideoCapture(str(p))
        while True:
            ok, _ = cap.read()
            if not ok:
                break
            frames += 1
        cap.release()
    return frames


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--repeats", type=int, default=2, help="best of N timings")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        data, videos, n_utts = make_inputs(work, args.videos, args.seconds, args.width, args.height)
        gen = time.perf_counter() - t0
        dec, ext = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            n_frames = decode_all(videos)
            dec.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rep = extract_lip_roi(data, work / f"roi{r}", RoiConfig())
            ext.append(time.perf_counter() - t0)
        d, e = min(dec), min(ext)
        print(f"videos: {args.videos} x {args.seconds:.0f} s at {args.width}x{args.height} "
              f"({n_frames} frames, {n_utts} utterances, {rep['num_utts']} extracted; inputs made in {gen:.1f} s)")
        print(f"plain decode : {d:7.2f} s  ({n_frames / d:7.1f} frames/s)")
        print(f"ROI extract  : {e:7.2f} s  ({n_frames / e:7.1f} frames/s)")
        print(f"ratio extract/decode: {e / d:.2f}")
        print(f"real-time factor of extraction: {e / (args.videos * args.seconds):.3f}")


if __name__ == "__main__":
    main()
