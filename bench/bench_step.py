"""Training-step time of the AV-Conformer vs stock ESPnet ASR Conformer, and decode RTF.

Both models are built from the recipe configs (AVSRTask / ASRTask), fed the same random
batch (speech + 25 fps ROIs + text), and timed over forward + backward + optimizer step.
Prints per-step times, their ratio AV / ASR, and the real-time factor of AV beam search.

    python bench/bench_step.py                                  # tiny CPU configs
    python bench/bench_step.py --device cuda --amp bf16 \
        --config egs2/misp_avsr/avsr1/conf/tuning/train_avsr_conformer_gpu.yaml \
        --asr_config egs2/misp_avsr/avsr1/conf/tuning/train_asr_conformer_gpu.yaml --batch_size 16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs2/misp_avsr/avsr1/conf"


def build(task, config: Path, tokens: Path, device: str):
    args = task.get_parser().parse_args(["--config", str(config), "--token_list", str(tokens), "--normalize", "utterance_mvn"])
    model = task.build_model(args).to(device)
    return model, args


def make_batch(bsz: int, seconds: float, vocab: int, device: str, rng: np.random.Generator):
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


def time_steps(model, batch, steps: int, warmup: int, amp: str, device: str) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    ctx = (
        torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
        if amp != "none" else contextlib.nullcontext()
    )
    times = []
    for i in range(warmup + steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad()
        with ctx:
            loss, _, _ = model(**{k: v.clone() for k, v in batch.items()})
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


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
    p.add_argument("--config", default=str(CONF / "train_avsr.yaml"))
    p.add_argument("--asr_config", default=str(CONF / "train_asr.yaml"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--vocab_size", type=int, default=500)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--decode_utts", type=int, default=2)
    p.add_argument("--beam_size", type=int, default=10)
    a = p.parse_args(cmd)
    logging.basicConfig(level="WARNING")
    from espnet2.tasks.asr import ASRTask

    from espnet_avsr.tasks.avsr import AVSRTask

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        tokens = Path(d, "tokens.txt")
        tokens.write_text("\n".join(["<blank>", "<unk>"] + [f"t{i}" for i in range(a.vocab_size - 3)] + ["<sos/eos>"]) + "\n")
        av, av_args = build(AVSRTask, Path(a.config), tokens, a.device)
        asr, _ = build(ASRTask, Path(a.asr_config), tokens, a.device)
    batch = make_batch(a.batch_size, a.seconds, a.vocab_size, a.device, rng)
    asr_batch = {k: v for k, v in batch.items() if not k.startswith("video")}
    t_av = time_steps(av, batch, a.steps, a.warmup, a.amp, a.device)
    t_asr = time_steps(asr, asr_batch, a.steps, a.warmup, a.amp, a.device)
    rtf = decode_rtf(av, av_args, a.device, a.seconds, a.decode_utts, a.beam_size, rng)
    res = {
        "device": a.device, "amp": a.amp, "batch_size": a.batch_size, "seconds": a.seconds,
        "params_av_M": sum(x.numel() for x in av.parameters()) / 1e6,
        "params_asr_M": sum(x.numel() for x in asr.parameters()) / 1e6,
        "step_av_s": t_av, "step_asr_s": t_asr, "ratio_av_over_asr": t_av / t_asr, "decode_rtf_av": rtf,
    }
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
