"""LoRA primitives for the MS-Adapter: a switchable low-rank Linear, injection, state dicts.

    H_o = W·H_i + b + (alpha / r) · B(A(dropout(H_i)))      (B zero-initialised)

Why hand-rolled and not a library:

- ``loralib`` (what ESPnet's ``--use_adapter`` / ``espnet2/layers/create_adapter_fn.py``
  use) merges B·A into W when the model goes to ``eval()`` (unless ``merge_weights=False``)
  and has no way to turn the branch off at run time, so one model cannot serve both the
  AV path (bit-identical base model) and the adapted audio-only path. ESPnet's
  ``--use_adapter`` is all-or-nothing for the whole model and its ``--save_strategy``
  only works together with it; loralib is not even installed in this stack.
- ``peft`` can mix adapters per sample, but it pulls in ``transformers``/``accelerate``
  and hooks HF-style model forwards; our switch also has to skip whole video modules,
  which no LoRA library does, so the routing is ours anyway.

The branch here is ~30 lines: ``LoRALinear`` subclasses ``nn.Linear`` and keeps the
base ``weight``/``bias`` parameters (the very same tensors, same state-dict keys), so a
base checkpoint loads unchanged and the adapter keys (``lora_A``, ``lora_B``,
``lora_scaling``) can be saved and loaded on their own. With ``lora_active = False`` its
forward is exactly ``nn.Linear.forward`` (``F.linear(x, W, b)``), i.e. bit-identical.
In eval mode without autograd an active branch uses a cached merged weight
W + (alpha/r)·B·A (loralib's merge, but kept beside W, so switching off stays exact):
beam search then costs what the base decoder costs.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

# module-name suffixes an adapter may wrap: attention projections and FFN linears
ATTENTION_TARGETS = ("linear_q", "linear_k", "linear_v", "linear_out")
FFN_TARGETS = ("w_1", "w_2")
# ``targets`` shorthands: ``qkv`` is the figure's W_{K,Q,V}; ``attention`` adds the output projection
TARGET_PRESETS = {"qkv": ["linear_q", "linear_k", "linear_v"], "attention": list(ATTENTION_TARGETS)}
BRIDGES = ("auto", "lowrank", "skip")
ADAPTER_KEY = re.compile(r"(^|\.)(lora_A|lora_B|lora_scaling)(\.|$)")


def is_adapter_key(key: str) -> bool:
    """True for state-dict keys that belong to an adapter (LoRA branch or bridge)."""
    return bool(ADAPTER_KEY.search(key))


class LowRankBranch(nn.Module):
    """(alpha / r) · B(A(dropout(x))) with B = 0 at init (the LoRA update)."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"adapter rank must be >= 1, got {rank}")
        self.lora_A = nn.Linear(in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, out_features, bias=False)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.register_buffer("lora_scaling", torch.tensor(float(alpha) / rank))
        nn.init.kaiming_uniform_(self.lora_A.weight, a=5**0.5)
        nn.init.zeros_(self.lora_B.weight)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        return self.lora_B(self.lora_A(self.lora_dropout(x))) * self.lora_scaling


class LoRALinear(nn.Linear):
    """``nn.Linear`` + a low-rank branch that is only added while ``lora_active``."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, dropout: float = 0.0, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.lora_A = nn.Linear(in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, out_features, bias=False)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.register_buffer("lora_scaling", torch.tensor(float(alpha) / rank))
        nn.init.kaiming_uniform_(self.lora_A.weight, a=5**0.5)
        nn.init.zeros_(self.lora_B.weight)
        self.lora_active = False

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> "LoRALinear":
        """Wrap an existing Linear, sharing its weight/bias Parameters (no copy)."""
        if rank < 1:
            raise ValueError(f"adapter rank must be >= 1, got {rank}")
        new = cls(linear.in_features, linear.out_features, rank, alpha, dropout, bias=linear.bias is not None)
        new.weight = linear.weight
        new.bias = linear.bias
        return new.to(device=linear.weight.device, dtype=linear.weight.dtype)

    @property
    def rank(self) -> int:
        return self.lora_A.out_features

    def merged_weight(self) -> torch.Tensor:
        """W + (alpha/r)·B·A, cached until any of the three tensors changes (inference only)."""
        key = (self.weight._version, self.lora_A.weight._version, self.lora_B.weight._version,
               self.weight.data_ptr(), self.lora_A.weight.data_ptr(), self.lora_B.weight.data_ptr())
        cached = getattr(self, "_merged", None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                w = self.weight + (self.lora_B.weight @ self.lora_A.weight) * self.lora_scaling
            self._merged = cached = (key, w)
        return cached[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.lora_active:
            return F.linear(x, self.weight, self.bias)
        if not self.training and not torch.is_grad_enabled():
            # inference: one matmul with the merged weight (beam search calls this per step)
            return F.linear(x, self.merged_weight(), self.bias)
        y = F.linear(x, self.weight, self.bias)
        return y + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.lora_scaling


@dataclass
class AdapterConfig:
    """``model_conf.adapter_conf``: where the LoRA branches go and how big they are.

    blocks: module-name prefixes (relative to the model) whose Linears get adapters.
    targets: Linear names inside them (``linear_q/k/v/out``; add ``w_1``/``w_2`` for FFNs), or
        a shorthand: ``qkv`` (the figure's W_{K,Q,V}: query, key and value projections only)
        or ``attention`` (those plus ``linear_out``, the default list).
    bridge: what replaces the merge FFN on the audio-only path: ``lowrank`` (identity +
        a zero-initialised low-rank residual, trained with the adapters), ``skip`` (none) or
        ``auto`` (``skip`` for the encoder's ``merge: figure``, whose audio stream needs no
        bridge, else ``lowrank``; resolved by ``MSAdapterModel``).
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: Union[str, List[str]] = field(default_factory=lambda: list(ATTENTION_TARGETS))  # a list after init
    blocks: List[str] = field(
        default_factory=lambda: ["encoder.audio_blocks", "encoder.shared_blocks", "decoder.decoders"]
    )
    bridge: str = "auto"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"adapter_conf.rank must be >= 1, got {self.rank}")
        if self.bridge not in BRIDGES:
            raise ValueError(f"adapter_conf.bridge must be one of {BRIDGES}, got {self.bridge!r}")
        if isinstance(self.targets, str):
            if self.targets not in TARGET_PRESETS:
                raise ValueError(
                    f"adapter_conf.targets {self.targets!r} is no shorthand ({sorted(TARGET_PRESETS)}); "
                    f"or give a list from {ATTENTION_TARGETS + FFN_TARGETS}"
                )
            self.targets = list(TARGET_PRESETS[self.targets])
        bad = [t for t in self.targets if t not in ATTENTION_TARGETS + FFN_TARGETS]
        if bad:
            raise ValueError(f"adapter_conf.targets {bad} unknown; choose from {ATTENTION_TARGETS + FFN_TARGETS}")


def _selected(name: str, blocks: Sequence[str], targets: Sequence[str]) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf in targets and any(name.startswith(b + ".") for b in blocks)


def inject_lora(model: nn.Module, conf: AdapterConfig) -> List[str]:
    """Replace the selected ``nn.Linear`` modules of ``model`` by ``LoRALinear`` in place.

    Returns the names replaced; raises if nothing matched (a config typo must not train
    a model with no adapters).
    """
    names = [
        n for n, m in model.named_modules()
        if type(m) is nn.Linear and _selected(n, conf.blocks, conf.targets)
    ]
    if not names:
        raise ValueError(f"adapter_conf matched no Linear layer (blocks={conf.blocks}, targets={conf.targets})")
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, leaf, LoRALinear.from_linear(getattr(parent, leaf), conf.rank, conf.alpha, conf.dropout))
    return names


def lora_modules(model: nn.Module) -> Iterator[LoRALinear]:
    return (m for m in model.modules() if isinstance(m, LoRALinear))


def set_adapters_active(model: nn.Module, active: bool) -> None:
    for m in lora_modules(model):
        m.lora_active = active


@contextlib.contextmanager
def adapters_active(model: nn.Module, active: bool) -> Iterator[None]:
    """Turn every LoRA branch of ``model`` on/off for the block, restoring the old states."""
    mods = list(lora_modules(model))
    before = [m.lora_active for m in mods]
    for m in mods:
        m.lora_active = active
    try:
        yield
    finally:
        for m, b in zip(mods, before):
            m.lora_active = b


def adapter_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Only the adapter tensors of ``model``'s state dict (what an adapter file holds)."""
    return {k: v for k, v in model.state_dict().items() if is_adapter_key(k)}


def adapter_conf_from_state_dict(state: Mapping[str, torch.Tensor], bridge_prefix: str = "audio_bridge") -> Dict:
    """Recover ``adapter_conf`` (rank, alpha, targets, blocks, bridge) from an adapter file.

    Adapter files are self-describing: the module names give blocks x targets, ``lora_A``
    the rank and ``lora_scaling`` alpha / rank.
    """
    modules = sorted({k.rsplit(".lora_A.weight", 1)[0] for k in state if k.endswith(".lora_A.weight")})
    lora = [m for m in modules if m != bridge_prefix]
    if not lora:
        raise ValueError("no LoRA adapter tensors (keys '*.lora_A.weight') in the state dict")
    ranks = {int(state[f"{m}.lora_A.weight"].shape[0]) for m in lora}
    scalings = {round(float(state[f"{m}.lora_scaling"]), 6) for m in lora if f"{m}.lora_scaling" in state}
    if len(ranks) != 1 or len(scalings) > 1:
        raise ValueError(f"adapter tensors disagree on rank {sorted(ranks)} / scaling {sorted(scalings)}")
    rank = ranks.pop()
    scaling = scalings.pop() if scalings else 1.0
    blocks = sorted({re.sub(r"\.\d+\..*$", "", m) for m in lora})
    targets = sorted({m.rsplit(".", 1)[-1] for m in lora})
    return dict(
        rank=rank,
        alpha=scaling * rank,
        targets=targets,
        blocks=blocks,
        bridge="lowrank" if bridge_prefix in modules else "skip",
    )


def check_adapter_only(state: Mapping[str, torch.Tensor], path: Optional[str] = None) -> None:
    """Raise if ``state`` has no adapter tensors (e.g. a base checkpoint given as adapter file)."""
    if not any(is_adapter_key(k) for k in state):
        raise ValueError(f"{path or 'state dict'}: holds no adapter tensors (lora_A/lora_B); is it an ms_adapter checkpoint?")
