"""Audio-only decoding latency: MS-Adapter switch vs the full AV path with a zero video.

Builds the model of a training config (default: the CPU demo conf/train_avsr.yaml) with
random weights as an ``ms_adapter`` model, then decodes the same random utterances twice
with ``AVSpeech2Text`` and no video: ``--adapter_switch auto`` (adapters on, video branch
and cross-attention skipped) and ``off`` (base model fed a zero video, every frame
missing). Prints encoder-only and full beam-search latencies side by side as a ratio.

    tools/venv/bin/python bench/bench_adapter.py                      # CPU, tiny
    tools/venv/bin/python bench/bench_adapter.py --device cuda \\
        --config egs2/misp_avsr/avsr1/conf/tuning/train_avsr_conformer_gpu.yaml --seconds 6
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, List

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from espnet_avsr.bin.avsr_inference import AVSpeech2Text
from espnet_avsr.tasks.avsr import AVSRTask

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "egs2/misp_avsr/avsr1/conf/train_avsr.yaml"


def timed(fn: Callable[[], object], device: str, repeats: int) -> List[float]:
    out = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=3.0, help="utterance length")
    p.add_argument("--vocab", type=int, default=500)
    p.add_argument("--utts", type=int, default=3)
    p.add_argument("--beam_size", type=int, default=5)
    p.add_argument("--maxlen", type=int, default=20, help="max decoded tokens (random weights never stop)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rank", type=int, default=8)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.manual_seed(0)

    conf = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    conf["token_list"] = ["<blank>", "<unk>"] + [f"t{i}" for i in range(args.vocab - 3)] + ["<sos/eos>"]
    conf["normalize"] = "utterance_mvn"
    conf["normalize_conf"] = {}
    conf["model"] = "ms_adapter"
    conf["model_conf"] = dict(ctc_weight=0.3, adapter_conf=dict(rank=args.rank, alpha=2 * args.rank))
    tmp = Path(tempfile.mkdtemp(prefix="bench_adapter_"))
    (tmp / "config.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    model = AVSRTask.build_model(argparse.Namespace(**conf))
    model.save_adapters_only = False
    torch.save(model.state_dict(), tmp / "model.pth")

    n = int(args.seconds * 16000) // 640 * 640
    speech = [torch.randn(n) * 0.1 for _ in range(args.utts)]
    t_enc = max(1, ((n // 160 - 1) // 2 - 1) // 2)
    ctx = {}
    for switch in ("auto", "off"):
        s2t = AVSpeech2Text(tmp / "config.yaml", tmp / "model.pth", device=args.device, beam_size=args.beam_size,
                            maxlenratio=args.maxlen / t_enc, adapter_switch=switch)
        ctx[switch] = s2t
    sp = torch.stack(speech).to(args.device)
    sl = torch.full((len(speech),), n, device=args.device)

    def encode(s2t: AVSpeech2Text) -> None:
        with torch.no_grad():
            s2t.model.encode(sp, sl, None, None)

    def decode(s2t: AVSpeech2Text) -> None:
        for x in speech:
            s2t(x, None)

    flops = {}
    for switch, s2t in ctx.items():
        with FlopCounterMode(display=False) as counter:
            encode(s2t)
        flops[switch] = counter.get_total_flops()
        decode(s2t)  # warm-up
    times = {k: {"enc": [], "dec": []} for k in ctx}
    for _ in range(args.repeats):  # interleaved, so background load hits both alike
        for switch, s2t in ctx.items():
            times[switch]["enc"] += timed(lambda: encode(s2t), args.device, 1)
            times[switch]["dec"] += timed(lambda: decode(s2t), args.device, 1)
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in times.items()}
    a, o = med["auto"], med["off"]
    print(f"config {args.config.name}  device {args.device}  {args.utts} utts x {args.seconds:.1f} s  "
          f"beam {args.beam_size}  maxlen {args.maxlen}  medians of {args.repeats}")
    print(f"{'':30s}{'adapter switch':>16s}{'full AV, zero video':>22s}{'ratio':>8s}")
    print(f"{'encoder GFLOPs, batch':30s}{flops['auto'] / 1e9:16.2f}{flops['off'] / 1e9:22.2f}{flops['auto'] / flops['off']:8.2f}")
    print(f"{'encoder, batch [ms]':30s}{a['enc'] * 1e3:16.1f}{o['enc'] * 1e3:22.1f}{a['enc'] / o['enc']:8.2f}")
    print(f"{'decode per utterance [ms]':30s}{a['dec'] / args.utts * 1e3:16.1f}"
          f"{o['dec'] / args.utts * 1e3:22.1f}{a['dec'] / o['dec']:8.2f}")
    print(f"routes taken: auto -> {ctx['auto'].last_route}, off -> {ctx['off'].last_route}")


if __name__ == "__main__":
    main()
