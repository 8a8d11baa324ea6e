"""Training-step FLOPs, time and achieved FLOP/s of AV, ASR, lip reader and MDA-KD, side by side.

Every model is built from the recipe configs (AVSRTask / ASRTask) and fed the same random
batch (speech + 25 fps ROIs + text; ASR gets the speech and text only). For each:

* FLOPs of one forward + backward, counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls and convolutions; element-wise ops, norms and the optimizer are free in the count);
* the median time of a training step (forward + backward + Adam step), the models' steps
  interleaved round-robin so load on a shared machine hits all of them alike;
* achieved FLOP/s = FLOPs / step time, and the ratio of each model's FLOP/s to ASR's;
* on a GPU, MFU: achieved FLOP/s over the device's dense bf16 peak (table below).

The KD step's FLOPs include the frozen teacher's no-grad forward; its FLOP/s is over the
whole step. Optionally the AV model's beam-search real-time factor (``--decode_utts``).

    python bench/bench_step.py --json                           # tiny CPU configs
    python bench/bench_step.py --device cuda --amp bf16 --batch_size 16 --seconds 8 --gpu_configs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONF = ROOT / "egs2/misp_avsr/avsr1/conf"
TUNING = CONF / "tuning"

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets.
# Matched against torch.cuda.get_device_name() by substring, first match wins (order matters).
BF16_PEAK_TFLOPS = (
    ("GB200", 2500.0),
    ("B200", 2250.0),
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),       # SXM
    ("H800", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A40", 149.7),
    ("A30", 165.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 6000 Ada", 364.2),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
)


def bf16_peak(device_name: str) -> Optional[float]:
    """Dense bf16 peak FLOP/s of a CUDA device by name, None when it is not in the table."""
    for key, tflops in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops * 1e12
    return None


def write_tokens(path: Path, vocab: int) -> Path:
    path.write_text("\n".join(["<blank>", "<unk>"] + [f"t{i}" for i in range(vocab - 3)] + ["<sos/eos>"]) + "\n")
    return path


def build(task, config: Path, tokens: Path, extra: Optional[List[str]] = None):
    args = task.get_parser().parse_args(
        ["--config", str(config), "--token_list", str(tokens), "--normalize", "utterance_mvn"] + (extra or []))
    return task.build_model(args), args


def build_kd(config: Path, tokens: Path, work: Path):
    """MDA-KD student + its teacher (same architecture, written to disk as the recipe would)."""
    from espnet_avsr.tasks.avsr import AVSRTask

    base = ["--config", str(config), "--token_list", str(tokens), "--normalize", "utterance_mvn"]
    targs = AVSRTask.get_parser().parse_args(base + ["--model", "espnet"])
    targs.model_conf = {k: v for k, v in targs.model_conf.items() if not k.startswith(("kd_", "teacher_", "init_student"))}
    teacher = AVSRTask.build_model(targs)
    torch.save(teacher.state_dict(), work / "teacher.pth")
    conf = {k: v for k, v in vars(targs).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    (work / "teacher.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    kargs = AVSRTask.get_parser().parse_args(base + [
        "--model", "mda_kd", "--model_conf", f"teacher_model_file={work / 'teacher.pth'}",
        "--model_conf", f"teacher_config={work / 'teacher.yaml'}"])
    student = AVSRTask.build_model(kargs)
    student.load_state_dict(teacher.state_dict(), strict=True)
    return student, kargs


def make_batch(bsz: int, seconds: float, vocab: int, device: str, rng: np.random.Generator) -> Dict[str, torch.Tensor]:
    n = int(seconds * 16000) // 640 * 640
    t = n // 640
    chars = max(2, int(seconds * 4))
    return {
        "speech": torch.tensor(rng.standard_normal((bsz, n)) * 0.1, dtype=torch.float32, device=device),
        "speech_lengths": torch.full((bsz,), n, dtype=torch.long, device=device),
        "video": torch.tensor(rng.standard_normal((bsz, t, 88, 88)), dtype=torch.float32, device=device),
        "video_lengths": torch.full((bsz,), t, dtype=torch.long, device=device),
        "text": torch.tensor(rng.integers(2, vocab - 1, (bsz, chars)), dtype=torch.long, device=device),
        "text_lengths": torch.full((bsz,), chars, dtype=torch.long, device=device),
    }


class Stepper:
    """One model's training step: forward + backward + Adam, under the chosen autocast."""

    def __init__(self, model: torch.nn.Module, batch: Dict[str, torch.Tensor], amp: str, device: str):
        self.model, self.batch, self.device = model, batch, device
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-5)
        dev = device.split(":")[0]
        self.ctx: Callable[[], contextlib.AbstractContextManager] = (
            (lambda: torch.autocast(device_type=dev, dtype=torch.bfloat16 if amp == "bf16" else torch.float16))
            if amp != "none" else contextlib.nullcontext)
        model.train()

    def fwd_bwd(self) -> None:
        with self.ctx():
            loss = self.model(**{k: v.clone() for k, v in self.batch.items()})[0]
        loss.backward()

    def step(self) -> float:
        sync = torch.cuda.synchronize if self.device.startswith("cuda") else (lambda: None)
        sync()
        t0 = time.perf_counter()
        self.opt.zero_grad()
        self.fwd_bwd()
        self.opt.step()
        sync()
        return time.perf_counter() - t0

    def count_flops(self) -> int:
        self.opt.zero_grad()
        with FlopCounterMode(display=False) as fc:
            self.fwd_bwd()
        self.opt.zero_grad()
        return int(fc.get_total_flops())


def decode_rtf(model, args, device: str, seconds: float, utts: int, beam: int, rng) -> float:
    from espnet_avsr.bin.avsr_inference import AVSpeech2Text

    with tempfile.TemporaryDirectory() as d:
        conf = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
        Path(d, "config.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
        torch.save(model.state_dict(), Path(d, "model.pth"))
        s2t = AVSpeech2Text(Path(d, "config.yaml"), Path(d, "model.pth"), device=device, beam_size=beam)
    n = int(seconds * 16000) // 640 * 640
    total = 0.0
    for _ in range(utts):
        speech = rng.standard_normal(n).astype(np.float32) * 0.1
        video = rng.integers(0, 256, (n // 640, 96, 96), dtype=np.uint8)
        t0 = time.perf_counter()
        s2t(speech, video)
        total += time.perf_counter() - t0
    return total / (utts * seconds)


def main(cmd=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="AV config (default: conf/train_avsr.yaml)")
    p.add_argument("--asr_config", default=None, help="ASR config (default: conf/train_asr.yaml)")
    p.add_argument("--vsr_config", default=None, help="lip-reader config (default: conf/train_vsr.yaml)")
    p.add_argument("--kd_config", default=None, help="MDA-KD config (default: conf/train_avsr_kd.yaml)")
    p.add_argument("--gpu_configs", action="store_true", help="default to the paper-size conf/tuning/*_gpu.yaml")
    p.add_argument("--models", nargs="+", default=["av", "asr", "vsr", "kd"], choices=["av", "av_frozen", "asr", "vsr", "kd"],
                   help="av_frozen: the AV model with its visual front-end frozen (model_conf "
                        "freeze_video_frontend, the CPU economy of conf/paper)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--vocab_size", type=int, default=500)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--decode_utts", type=int, default=0, help="AV beam-search RTF over this many utterances (0: skip)")
    p.add_argument("--beam_size", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    a = p.parse_args(cmd)
    logging.basicConfig(level="WARNING")
    if a.threads:
        torch.set_num_threads(a.threads)
    from espnet2.tasks.asr import ASRTask

    from espnet_avsr.tasks.avsr import AVSRTask

    def conf(given: Optional[str], cpu: str, gpu: str) -> Path:
        return Path(given) if given else (TUNING / gpu if a.gpu_configs else CONF / cpu)

    paths = {
        "av": conf(a.config, "train_avsr.yaml", "train_avsr_conformer_gpu.yaml"),
        "asr": conf(a.asr_config, "train_asr.yaml", "train_asr_conformer_gpu.yaml"),
        "vsr": conf(a.vsr_config, "train_vsr.yaml", "train_vsr_gpu.yaml"),
        "kd": conf(a.kd_config, "train_avsr_kd.yaml", "train_avsr_kd_gpu.yaml"),
    }
    paths["av_frozen"] = paths["av"]  # the same model, front-end frozen
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    batch = make_batch(a.batch_size, a.seconds, a.vocab_size, a.device, rng)
    models, margs = {}, {}
    with tempfile.TemporaryDirectory() as d:
        tokens = write_tokens(Path(d, "tokens.txt"), a.vocab_size)
        for name in a.models:
            if name == "asr":
                models[name], margs[name] = build(ASRTask, paths[name], tokens)
            elif name == "kd":
                models[name], margs[name] = build_kd(paths[name], tokens, Path(d))
            elif name == "av_frozen":
                models[name], margs[name] = build(AVSRTask, paths[name], tokens,
                                                  ["--model_conf", "freeze_video_frontend=true"])
                assert models[name].freeze_video_frontend
            else:
                models[name], margs[name] = build(AVSRTask, paths[name], tokens)
            models[name].to(a.device)
            if name == "kd":
                models[name].teacher(torch.device(a.device))  # load it now: not part of the timed steps
    steppers = {
        n: Stepper(m, batch if n != "asr" else {k: v for k, v in batch.items() if not k.startswith("video")},
                   a.amp, a.device)
        for n, m in models.items()
    }
    flops = {n: s.count_flops() for n, s in steppers.items()}
    times: Dict[str, List[float]] = {n: [] for n in steppers}
    for i in range(a.warmup + a.steps):  # round-robin: a load spike hits every model alike
        for n, s in steppers.items():
            t = s.step()
            if i >= a.warmup:
                times[n].append(t)
    peak = bf16_peak(torch.cuda.get_device_name(a.device)) if a.device.startswith("cuda") else None
    res: dict = {
        "device": torch.cuda.get_device_name(a.device) if a.device.startswith("cuda") else "cpu",
        "threads": torch.get_num_threads(), "amp": a.amp, "batch_size": a.batch_size, "seconds": a.seconds,
        "steps": a.steps, "bf16_peak_TFLOPs": peak / 1e12 if peak else None, "models": {},
    }
    for n in steppers:
        med = float(np.median(times[n]))
        r = {
            "config": str(paths[n].relative_to(ROOT) if paths[n].is_relative_to(ROOT) else paths[n]),
            "params_M": sum(x.numel() for x in models[n].parameters()) / 1e6,
            "GFLOPs_per_step": flops[n] / 1e9, "step_s": med, "step_s_all": times[n],
            "GFLOP_per_s": flops[n] / med / 1e9,
        }
        if peak:
            r["mfu"] = flops[n] / med / peak
        res["models"][n] = r
    if "asr" in res["models"]:
        asr = res["models"]["asr"]
        for n, r in res["models"].items():
            if n != "asr":
                res[f"flops_ratio_{n}_over_asr"] = r["GFLOPs_per_step"] / asr["GFLOPs_per_step"]
                res[f"time_ratio_{n}_over_asr"] = r["step_s"] / asr["step_s"]
                res[f"flop_s_ratio_{n}_over_asr"] = r["GFLOP_per_s"] / asr["GFLOP_per_s"]
    if a.decode_utts and "av" in models:
        res["decode_rtf_av"] = decode_rtf(models["av"], margs["av"], a.device, a.seconds, a.decode_utts, a.beam_size, rng)
    if not a.json:
        print(f"{'model':<6}{'params M':>10}{'GFLOP/step':>12}{'step s':>10}{'GFLOP/s':>10}"
              f"{'vs ASR':>8}" + (f"{'MFU':>8}" if peak else ""))
        for n, r in res["models"].items():
            rel = res.get(f"flop_s_ratio_{n}_over_asr", 1.0 if n == "asr" else float("nan"))
            print(f"{n:<6}{r['params_M']:>10.2f}{r['GFLOPs_per_step']:>12.2f}{r['step_s']:>10.3f}"
                  f"{r['GFLOP_per_s']:>10.2f}{rel:>8.2f}" + (f"{100 * r['mfu']:>7.1f}%" if peak else ""))
    print(json.dumps(res, indent=None if a.json else 1))
    return res


if __name__ == "__main__":
    main()
