"""Training-step time of MDA-KD (teacher forward + KD loss) vs the same model without KD.

Both runs use one model config (the student's, with its video dropout), one random batch
and the same weights; the KD run adds the frozen teacher's no-grad forward on the complete
video and the KD distance. Prints median step times (forward + backward + Adam step) side
by side and the KD overhead.

    python bench/bench_kd.py                                    # tiny CPU config
    python bench/bench_kd.py --device cuda --amp bf16 --batch_size 16 --seconds 6 \
        --config egs2/misp_avsr/avsr1/conf/tuning/train_avsr_kd_gpu.yaml
    python bench/bench_kd.py --kd_distance kl --kd_layers ctc decoder
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs2/misp_avsr/avsr1/conf"


def make_batch(bsz: int, seconds: float, vocab: int, device: str, rng: np.random.Generator) -> Dict[str, torch.Tensor]:
    n = int(seconds * 16000) // 640 * 640
    t, chars = n // 640, max(2, int(seconds * 4))
    return {
        "speech": torch.tensor(rng.standard_normal((bsz, n)) * 0.1, dtype=torch.float32, device=device),
        "speech_lengths": torch.full((bsz,), n, dtype=torch.long, device=device),
        "video": torch.tensor(rng.standard_normal((bsz, t, 88, 88)), dtype=torch.float32, device=device),
        "video_lengths": torch.full((bsz,), t, dtype=torch.long, device=device),
        "text": torch.tensor(rng.integers(2, vocab - 1, (bsz, chars)), dtype=torch.long, device=device),
        "text_lengths": torch.full((bsz,), chars, dtype=torch.long, device=device),
    }


def time_steps(model, batch, steps: int, warmup: int, amp: str, device: str) -> List[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
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
        logging.info("step %d: %.3f s", i, time.perf_counter() - t0)
    return times


def main(cmd=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(CONF / "train_avsr_kd.yaml"), help="student config (model: mda_kd)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--vocab_size", type=int, default=500)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--kd_distance", default=None, choices=[None, "mse", "cosine", "kl"])
    p.add_argument("--kd_layers", nargs="+", default=None)
    p.add_argument("--log_level", default="WARNING")
    a = p.parse_args(cmd)
    logging.basicConfig(level=a.log_level)
    from espnet_avsr.tasks.avsr import AVSRTask

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        tokens = Path(d, "tokens.txt")
        tokens.write_text("\n".join(["<blank>", "<unk>"] + [f"t{i}" for i in range(a.vocab_size - 3)] + ["<sos/eos>"]) + "\n")
        base = ["--config", a.config, "--token_list", str(tokens), "--normalize", "utterance_mvn"]
        # the teacher: the same architecture as a plain model, written as the recipe would
        targs = AVSRTask.get_parser().parse_args(base + ["--model", "espnet"])
        targs.model_conf = {k: v for k, v in targs.model_conf.items() if not k.startswith(("kd_", "teacher_", "init_student"))}
        teacher = AVSRTask.build_model(targs)
        torch.save(teacher.state_dict(), Path(d, "teacher.pth"))
        conf = {k: v for k, v in vars(targs).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
        Path(d, "teacher.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")

        kd_opts = ["--model", "mda_kd", "--model_conf", f"teacher_model_file={Path(d, 'teacher.pth')}",
                   "--model_conf", f"teacher_config={Path(d, 'teacher.yaml')}"]
        if a.kd_distance:
            kd_opts += ["--model_conf", f"kd_distance={a.kd_distance}"]
        if a.kd_layers:
            kd_opts += ["--model_conf", f"kd_layers={a.kd_layers}"]
        kargs = AVSRTask.get_parser().parse_args(base + kd_opts)
        student = AVSRTask.build_model(kargs)
        student.load_state_dict(teacher.state_dict(), strict=True)
        plain_args = AVSRTask.get_parser().parse_args(base + ["--model", "espnet"])
        plain_args.model_conf = dict(targs.model_conf)
        plain = AVSRTask.build_model(plain_args)
        plain.load_state_dict(teacher.state_dict(), strict=True)
        del teacher
        student.to(a.device)
        plain.to(a.device)
        student.teacher(torch.device(a.device))  # load now: not part of the timed steps

    batch = make_batch(a.batch_size, a.seconds, a.vocab_size, a.device, rng)
    t_plain = time_steps(plain, batch, a.steps, a.warmup, a.amp, a.device)
    t_kd = time_steps(student, batch, a.steps, a.warmup, a.amp, a.device)
    med_plain, med_kd = float(np.median(t_plain)), float(np.median(t_kd))
    res = {
        "config": Path(a.config).name, "device": a.device, "amp": a.amp, "batch_size": a.batch_size,
        "seconds": a.seconds, "kd_distance": student.kd_distance, "kd_layers": student.kd_layers,
        "params_M": sum(x.numel() for x in plain.parameters()) / 1e6,
        "step_no_kd_s": med_plain, "step_kd_s": med_kd, "kd_overhead": med_kd / med_plain - 1.0,
    }
    if a.device.startswith("cuda"):
        res["max_mem_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    print(f"{'step time (median)':<22}{'without KD':>12}{'with KD':>12}")
    print(f"{'seconds':<22}{med_plain:>12.4f}{med_kd:>12.4f}   (+{100 * res['kd_overhead']:.1f} %: teacher forward + KD)")
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
