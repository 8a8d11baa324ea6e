"""Cost of the figure options (issue 20): parameters and FLOPs, no timing, no training.

Builds the model of a training config with random weights under each option and prints
parameter counts and the FLOPs (``torch.utils.flop_counter``) of one encode of a
``--seconds`` utterance with complete video, and of the MS-Adapter audio-only encode
(adapters on, decoding: merged LoRA weights). What it settles is the "much more
expensive" half of the issue's rule; the accuracy half needs the dev-set runs
(docs/DESIGN.md §7).

    tools/venv/bin/python bench/fidelity_cost.py     # paper-sized GPU config, on CPU (~1 min)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

import torch
from torch.utils.flop_counter import FlopCounterMode

from espnet_avsr.tasks.avsr import AVSRTask

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "egs2/misp_avsr/avsr1/conf/tuning/train_avsr_conformer_gpu.yaml"


def build(config: Path, tokens: Path, extra: List[str]):
    args = AVSRTask.get_parser().parse_args(
        ["--config", str(config), "--token_list", str(tokens), "--normalize", "utterance_mvn", *extra]
    )
    torch.manual_seed(0)
    return AVSRTask.build_model(args).eval()


def gflops(fn: Callable[[], object]) -> float:
    with torch.no_grad():
        fn()  # warm caches (merged LoRA weights)
        with FlopCounterMode(display=False) as c:
            fn()
    return c.get_total_flops() / 1e9


def count(model: torch.nn.Module, prefix: str = "") -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--seconds", type=float, default=4.0)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    tokens = tmp / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>"] + [chr(0x4E00 + i) for i in range(100)] + ["<sos/eos>"]) + "\n",
                      encoding="utf-8")
    n = int(16000 * a.seconds)
    speech, sl = torch.randn(1, n) * 0.1, torch.tensor([n])
    vl = torch.tensor([((n // 160 - 1) // 2 - 1) // 2])
    video = torch.randn(1, int(vl), 88, 88)

    rows: Dict[str, str] = {}
    for merge in ("last", "figure"):
        m = build(a.config, tokens, ["--encoder_conf", f"merge={merge}"])
        rows[f"AV model, merge {merge}"] = (
            f"merge params {count(m, 'encoder.merge.') / 1e6:.3f} M, model {count(m) / 1e6:.2f} M, "
            f"AV encode {gflops(lambda: m.encode(speech, sl, video, vl)):.2f} GFLOPs"
        )
        for targets in ("attention", "qkv"):
            ad = "{rank: 8, alpha: 16, targets: " + targets + "}"
            ms = build(a.config, tokens, ["--encoder_conf", f"merge={merge}", "--model", "ms_adapter",
                                          "--model_conf", f"adapter_conf={ad}"])
            rows[f"MS-Adapter, merge {merge}, targets {targets}"] = (
                f"adapter params {ms.num_adapter_parameters() / 1e3:.1f} k (bridge {ms.adapter_conf.bridge}), "
                f"audio-only encode {gflops(lambda: ms.encode(speech, sl, None, None)):.2f} GFLOPs"
            )
    width = max(map(len, rows))
    print(f"{a.config.name}, {a.seconds:g} s utterance")
    for k, v in rows.items():
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
