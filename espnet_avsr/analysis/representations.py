"""Utterance-level encoder representations of an ASR and an AVSR model on the same data.

Runs models, so it lives beside them and not in ``eval/`` (which only reads decode
outputs): load both models through their ESPnet tasks, run their encoders batch by batch,
take named layers and mean-pool them over valid frames. ``eval/similarity.py`` turns the
pooled arrays into matrices, CKA and plots.

Layer names:
  ESPnet ASR model  ``output`` (encoder output after the final norm) or ``encoders.<i>``
                    (output of Conformer/Transformer block i, read with a forward hook;
                    negative i counts from the end)
  AVSR model        ``output`` or any key of the ``hidden`` dict that
                    ``encode(..., return_hidden=True)`` returns (``fusion``, ``shared.<i>``)
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

from espnet_avsr.data.missing_video import simulate_missing
from espnet_avsr.data.presence import VideoPresence
from espnet_avsr.eval.bias import pooled_mean
from espnet_avsr.eval.similarity import PooledRepresentations
from espnet_avsr.tasks.avsr import AVSRTask

log = logging.getLogger(__name__)

OUTPUT = "output"
TASKS = ("asr", "avsr")


def load_model(task: str, train_config: Optional[str], model_file: Optional[str], device: str = "cpu"):
    """Build a trained model from its ESPnet config + checkpoint: (model, train_args)."""
    if task == "asr":
        from espnet2.tasks.asr import ASRTask as Task
    elif task == "avsr":
        Task = AVSRTask
    else:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    model, train_args = Task.build_model_from_file(train_config, model_file, device)
    model.eval()
    return model, train_args


def task_class(task: str):
    if task == "asr":
        from espnet2.tasks.asr import ASRTask

        return ASRTask
    return AVSRTask


def _block_output(out) -> torch.Tensor:
    """ESPnet encoder layers return ``(x, mask)`` where x may be ``(x, pos_emb)``."""
    x = out[0] if isinstance(out, (tuple, list)) else out
    if isinstance(x, (tuple, list)):
        x = x[0]
    return x


def _block_lengths(out) -> Optional[torch.Tensor]:
    if isinstance(out, (tuple, list)) and len(out) > 1 and isinstance(out[1], torch.Tensor):
        mask = out[1]
        if mask.dim() == 3:  # (B, 1, T)
            return mask.squeeze(1).sum(-1)
    return None


@contextmanager
def encoder_block_taps(model: torch.nn.Module, indices: Sequence[int]) -> Iterator[Dict[int, Tuple[torch.Tensor, Optional[torch.Tensor]]]]:
    """Forward hooks on ``model.encoder.encoders[i]``; yields a dict filled on each forward."""
    blocks = getattr(getattr(model, "encoder", None), "encoders", None)
    if blocks is None:
        raise ValueError(f"{type(model).__name__} has no encoder.encoders blocks to tap")
    n = len(blocks)
    store: Dict[int, Tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
    handles = []
    for i in indices:
        if not -n <= i < n:
            raise ValueError(f"encoder has {n} blocks; encoders.{i} does not exist")

        def hook(_module, _inputs, output, i=i):
            store[i] = (_block_output(output), _block_lengths(output))

        handles.append(blocks[i].register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def _block_index(name: str) -> int:
    prefix = "encoders."
    if not name.startswith(prefix):
        raise ValueError(f"ASR layer {name!r}: use 'output' or 'encoders.<i>'")
    try:
        return int(name[len(prefix):])
    except ValueError:
        raise ValueError(f"ASR layer {name!r}: block index is not an integer") from None


def _scaled_lengths(lens: torch.Tensor, t_layer: int, t_ref: int) -> torch.Tensor:
    if t_layer == t_ref:
        return lens
    return torch.clamp(torch.ceil(lens.float() * t_layer / t_ref).long(), 1, t_layer)


@torch.no_grad()
def asr_layer_outputs(model, speech: torch.Tensor, speech_lengths: torch.Tensor, layers: Sequence[str]) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """Named layer outputs ``(B, T, D)`` with valid lengths from an ESPnet ASR model."""
    indices = sorted({_block_index(n) for n in layers if n != OUTPUT})
    with encoder_block_taps(model, indices) as taps:
        enc, lens = model.encode(speech, speech_lengths)
    if isinstance(enc, tuple):  # interCTC models return (out, intermediate)
        enc = enc[0]
    out: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
    for name in layers:
        if name == OUTPUT:
            out[name] = (enc, lens)
            continue
        x, x_lens = taps[_block_index(name)]
        if x_lens is None:
            x_lens = _scaled_lengths(lens, x.shape[1], enc.shape[1])
        out[name] = (x, x_lens)
    return out


@torch.no_grad()
def avsr_layer_outputs(
    model,
    speech: torch.Tensor,
    speech_lengths: torch.Tensor,
    video: torch.Tensor,
    presence: VideoPresence,
    layers: Sequence[str],
) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """Named layer outputs from an AVSR model's ``encode(..., return_hidden=True)``."""
    enc, lens, hidden = model.encode(speech, speech_lengths, video, presence=presence, return_hidden=True)
    out: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
    for name in layers:
        if name == OUTPUT:
            out[name] = (enc, lens)
        elif name in hidden:
            x = hidden[name]
            out[name] = (x, _scaled_lengths(lens, x.shape[1], enc.shape[1]))
        else:
            raise ValueError(f"AVSR layer {name!r} not among encode()'s hidden outputs {sorted(hidden)} or 'output'")
    return out


def simulate_batch_missing(video: torch.Tensor, video_lengths: torch.Tensor, keys: Sequence[str], rate: float, pattern: str, fill: str, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Test-time missing frames per utterance (same protocol as decoding); padding stays present."""
    video = video.clone()
    missing = torch.zeros(video.shape[:2], dtype=torch.bool, device=video.device)
    for b, key in enumerate(keys):
        n = int(video_lengths[b])
        filled, mask = simulate_missing(video[b, :n], key, rate, pattern, fill, seed)
        video[b, :n] = filled
        missing[b, :n] = torch.as_tensor(mask, device=video.device)
    return video, missing


@dataclass
class MissingSpec:
    rate: float = 0.0
    pattern: str = "random"
    fill: str = "zeros"
    seed: int = 0


def collect_pooled(
    batches,
    asr_model,
    avsr_model,
    asr_layers: Sequence[str],
    avsr_layers: Sequence[str],
    avsr_task: str = "avsr",
    missing: Optional[MissingSpec] = None,
    device: str = "cpu",
    max_samples: Optional[int] = None,
) -> PooledRepresentations:
    """Run both encoders over ``(keys, batch)`` pairs and mean-pool the requested layers."""
    rep = PooledRepresentations()
    for keys, batch in batches:
        if max_samples is not None and len(rep.keys) >= max_samples:
            break
        speech = batch["speech"].to(device)
        speech_lengths = batch["speech_lengths"].to(device)
        a_out = asr_layer_outputs(asr_model, speech, speech_lengths, asr_layers)
        if avsr_task == "avsr":
            if "video" not in batch:
                raise ValueError("the AVSR model needs a video input: add roi.scp,video,npy to --data_path_and_name_and_type")
            video = batch["video"].to(device)
            # frames the data already lacks (an utterance kept without lip ROIs) stay flagged
            presence = VideoPresence.from_batch(batch["video_lengths"].to(device), batch.get("video_missing"))
            if missing is not None and missing.rate > 0:
                video, simulated = simulate_batch_missing(video, presence.lengths, keys, missing.rate, missing.pattern, missing.fill, missing.seed)
                presence = presence.union(simulated)
            v_out = avsr_layer_outputs(avsr_model, speech, speech_lengths, video, presence, avsr_layers)
        else:
            v_out = asr_layer_outputs(avsr_model, speech, speech_lengths, avsr_layers)
        for side, outs in (("asr", a_out), ("avsr", v_out)):
            store = rep.asr if side == "asr" else rep.avsr
            for name, (x, lens) in outs.items():
                store.setdefault(name, []).append(pooled_mean(x.float(), lens))
        rep.keys.extend(keys)
        log.info("encoded %d utterances", len(rep.keys))
    if max_samples is not None and len(rep.keys) > max_samples:
        rep.keys = rep.keys[:max_samples]
        for d in (rep.asr, rep.avsr):
            for name in d:
                d[name] = [np.concatenate(d[name], axis=0)[:max_samples]]
    if not rep.keys:
        raise ValueError("no utterances were encoded (empty data or key file)")
    return rep


