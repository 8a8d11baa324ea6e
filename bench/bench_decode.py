"""Stage-10 style decoding before/after: one process per condition vs one process per model.

Builds an AV model from a recipe config (random weights: no trained model is needed, so
hypotheses run long; a trained model stops earlier), a synthetic dump of ``--utts``
utterances and the conditions of stage 10 for one AV model (every missing rate of the test
set + complete video on ``--noise_sets`` more sets). Times

* before: ``avsr_inference`` once per condition, each a fresh process (start-up, model build);
* after: one ``decode_conditions`` process for all of them (beam search, then CTC greedy),

checks that before and after wrote the same text for every condition, and prints wall times,
their ratio and real-time factors (decode wall time / audio seconds decoded).

    tools/venv/bin/python bench/bench_decode.py --utts 8 --seconds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONF = ROOT / "egs2/misp_avsr/avsr1/conf"


def make_set(d: Path, utts: int, seconds: float, rng: np.random.Generator) -> None:
    (d / "wav").mkdir(parents=True)
    wav, roi = [], []
    n = int(seconds * 16000) // 640 * 640
    for i in range(utts):
        utt = f"S001_R01_S001002_C01_I0_{i:06d}-{i + 1:06d}"
        sf.write(d / "wav" / f"{utt}.wav", (rng.standard_normal(n) * 0.1).astype(np.float32), 16000, subtype="PCM_16")
        np.save(d / "wav" / f"{utt}.npy", rng.integers(0, 256, (n // 640, 96, 96), dtype=np.uint8))
        wav.append(f"{utt} {d / 'wav' / (utt + '.wav')}")
        roi.append(f"{utt} {d / 'wav' / (utt + '.npy')}")
    (d / "wav.scp").write_text("\n".join(wav) + "\n")
    (d / "roi.scp").write_text("\n".join(roi) + "\n")


def run(cmd, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - t0


def main(cmd=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(CONF / "train_avsr.yaml"))
    p.add_argument("--decode_config", default=str(CONF / "decode_avsr.yaml"))
    p.add_argument("--utts", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rates", default="0 0.25 0.5 0.75 1.0")
    p.add_argument("--noise_sets", type=int, default=2, help="extra sets decoded with complete video")
    p.add_argument("--vocab_size", type=int, default=500)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(cmd)
    from espnet_avsr.tasks.avsr import AVSRTask

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokens = tmp / "tokens.txt"
        tokens.write_text("\n".join(["<blank>", "<unk>"] + [f"t{i}" for i in range(a.vocab_size - 3)] + ["<sos/eos>"]) + "\n")
        args = AVSRTask.get_parser().parse_args(["--config", a.config, "--token_list", str(tokens),
                                                 "--normalize", "utterance_mvn"])
        model = AVSRTask.build_model(args)
        keep = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
        (tmp / "config.yaml").write_text(yaml.safe_dump(keep, allow_unicode=True))
        torch.save(model.state_dict(), tmp / "model.pth")
        sets = [tmp / "set0"] + [tmp / f"noise{i}" for i in range(a.noise_sets)]
        for s in sets:
            make_set(s, a.utts, a.seconds, rng)
        conds = [(sets[0], r) for r in a.rates.split()] + [(s, "0") for s in sets[1:]]
        model_args = ["--asr_train_config", str(tmp / "config.yaml"), "--asr_model_file", str(tmp / "model.pth"),
                      "--config", a.decode_config, "--log_level", "WARNING"]
        before = 0.0
        for i, (s, r) in enumerate(conds):
            before += run([py, "-m", "espnet_avsr.bin.avsr_inference", *model_args, "--output_dir", str(tmp / f"one{i}"),
                           "--data_path_and_name_and_type", f"{s}/wav.scp,speech,sound",
                           "--data_path_and_name_and_type", f"{s}/roi.scp,video,npy", "--missing_rate", r],
                          tmp / f"one{i}.log")
        specs = []
        for i, (s, r) in enumerate(conds):
            specs += ["--condition", f"out={tmp / f'all{i}'},data={s},rate={r}"]
        after = run([py, "-m", "espnet_avsr.bin.decode_conditions", "--task", "avsr", *specs, *model_args],
                    tmp / "all.log")
        gspecs = [x.replace("/all", "/greedy") for x in specs]
        greedy = run([py, "-m", "espnet_avsr.bin.decode_conditions", "--task", "avsr", "--mode", "ctc_greedy",
                      *gspecs, *model_args], tmp / "greedy.log")
        same = all((tmp / f"one{i}/1best_recog/text").read_text() == (tmp / f"all{i}/1best_recog/text").read_text()
                   for i in range(len(conds)))
    audio = len(conds) * a.utts * a.seconds
    res = {
        "config": Path(a.config).name, "decode_config": Path(a.decode_config).name, "conditions": len(conds),
        "utts_per_condition": a.utts, "seconds_per_utt": a.seconds, "threads": torch.get_num_threads(),
        "before_one_process_per_condition_s": before, "after_one_process_s": after,
        "speedup": before / after, "identical_text": same,
        "rtf_before": before / audio, "rtf_after_beam": after / audio, "rtf_after_ctc_greedy": greedy / audio,
    }
    print(json.dumps(res, indent=None if a.json else 1))
    return res


if __name__ == "__main__":
    main()
