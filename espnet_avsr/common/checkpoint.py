"""Reading a model checkpoint into a state dict: the one loader every caller uses.

Why one: a checkpoint reaches us as a plain state dict (``*epoch.pth``, averaged models),
as ESPnet's trainer ``checkpoint.pth`` (weights under ``"model"``) or a deepspeed layout
(``"module"``); each reader unwrapping its own subset meant a file one tool took, another
refused.
"""
from __future__ import annotations

from typing import Dict

import torch


def load_state_file(path: str) -> Dict[str, torch.Tensor]:
    """torch.load a checkpoint on CPU and return its state dict; errors name the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"adapter/model file not found: {path}") from None
    except Exception as e:  # noqa: BLE001 - name the file whatever torch complains about
        raise ValueError(f"{path}: cannot be read as a torch checkpoint ({e})") from e
    for key in ("model", "module"):  # ESPnet checkpoint.pth / deepspeed layouts
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state
