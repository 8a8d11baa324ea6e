"""AVSRTrainer: ESPnet's Trainer plus accounting and a stop rule for non-finite batches.

ESPnet's `Trainer.train_one_epoch` already skips the optimizer step when the
gradient norm is not finite, but only logs a warning per batch and stops only
when *every* step of an epoch was invalid. A run that silently skips most of its
batches (e.g. a corrupt feature file, a diverging model) wastes days on a
cluster. This trainer counts skipped update steps and non-finite losses per
epoch, logs them, writes `<output_dir>/nonfinite_report.json`, and raises
`NonFiniteTrainingError` once more than `--max_nonfinite_batches` consecutive
steps, or more than `--max_nonfinite_fraction` of an epoch's steps, were skipped.

A forward with a non-finite loss also has its buffer updates (BatchNorm running
statistics) undone, since ESPnet's skip leaves them poisoned by NaN.

It observes ESPnet's loop instead of copying it: a forward hook sees each loss,
an optimizer step hook sees each real update, and a wrapper around the batch
iterator tells, at the next batch, whether the previous update point was skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from typeguard import typechecked

from espnet2.train.trainer import Trainer, TrainerOptions
from espnet2.utils.build_dataclass import build_dataclass


class NonFiniteTrainingError(RuntimeError):
    """Too many batches had a non-finite loss or gradient; training was stopped."""


@dataclasses.dataclass
class AVSRTrainerOptions(TrainerOptions):
    max_nonfinite_batches: int
    max_nonfinite_fraction: float


@dataclasses.dataclass
class NonFiniteCounter:
    """Per-epoch counts kept by the hooks (one instance per epoch)."""

    accum_grad: int = 1
    max_consecutive: int = 20
    batches: int = 0
    utterances: int = 0
    update_points: int = 0
    steps: int = 0
    skipped: int = 0
    nonfinite_loss: int = 0
    consecutive: int = 0
    max_seen_consecutive: int = 0
    skipped_utts: List[str] = dataclasses.field(default_factory=list)
    _last_steps: int = 0
    _last_utts: Sequence[str] = ()

    def on_step(self, *_args) -> None:
        self.steps += 1

    def on_loss(self, loss: torch.Tensor) -> bool:
        """Count a non-finite loss; True when it was one."""
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            self.nonfinite_loss += 1
            return True
        return False


    def settle_previous(self) -> None:
        """Called before each new batch (and at epoch end): was the last update point skipped?"""
        if self.batches == 0 or self.batches % self.accum_grad != 0:
            return
        if self.update_points * self.accum_grad >= self.batches:
            return  # already settled
        self.update_points += 1
        if self.steps > self._last_steps:
            self.consecutive = 0
        else:
            self.skipped += 1
            self.consecutive += 1
            self.max_seen_consecutive = max(self.max_seen_consecutive, self.consecutive)
            if len(self.skipped_utts) < 50:
                self.skipped_utts.extend(list(self._last_utts)[:5])
        self._last_steps = self.steps

    def as_dict(self) -> Dict:
        return {
            "batches": self.batches,
            "utterances": self.utterances,
            "update_points": self.update_points,
            "optimizer_steps": self.steps,
            "skipped_updates": self.skipped,
            "nonfinite_loss_batches": self.nonfinite_loss,
            "max_consecutive_skipped": self.max_seen_consecutive,
            "example_utts": self.skipped_utts[:20],
        }


class BufferGuard:
    """Undo buffer updates (BatchNorm running stats) made by a forward with a non-finite loss.

    ESPnet skips the optimizer step for such a batch, but the forward pass has
    already folded the NaNs into every BatchNorm's running mean/var, which would
    make the saved model output NaN in eval mode. Buffers are small, so a copy
    per forward is cheap.
    """

    def __init__(self, model: torch.nn.Module):
        self.buffers = [b for b in model.buffers() if b is not None]
        self.saved: List[torch.Tensor] = []
        self.pending = False

    def snapshot(self) -> None:
        if not self.pending:  # keep the last good values until they are restored
            self.saved = [b.detach().clone() for b in self.buffers]

    def restore_if_pending(self) -> None:
        if not self.pending:
            return
        self.pending = False
        with torch.no_grad():
            for b, s in zip(self.buffers, self.saved):
                b.copy_(s)
        logging.warning("non-finite loss: restored %d model buffers (BatchNorm statistics) to their values "
                        "before this batch", len(self.buffers))


def _loss_of(output) -> Optional[torch.Tensor]:
    if isinstance(output, dict):
        return output.get("loss")
    if isinstance(output, (tuple, list)) and output:
        return output[0]
    return None


class AVSRTrainer(Trainer):
    """ESPnet Trainer that counts and bounds skipped non-finite batches."""

    @classmethod
    @typechecked
    def build_options(cls, args: argparse.Namespace) -> TrainerOptions:
        return build_dataclass(AVSRTrainerOptions, args)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group("Non-finite batches (AVSRTrainer)")
        group.add_argument(
            "--max_nonfinite_batches",
            type=int,
            default=20,
            help="Stop training when more than this many consecutive update steps had a non-finite "
            "loss/gradient (skipped). 0 or less disables the check.",
        )
        group.add_argument(
            "--max_nonfinite_fraction",
            type=float,
            default=0.5,
            help="Stop training when more than this fraction of an epoch's update steps were skipped "
            "as non-finite (checked at the end of each epoch). 1.0 disables the check.",
        )

    @classmethod
    def train_one_epoch(
        cls,
        model: torch.nn.Module,
        iterator: Iterable[Tuple[List[str], Dict[str, torch.Tensor]]],
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers,
        scaler,
        reporter,
        summary_writer,
        options: TrainerOptions,
        distributed_option,
    ) -> bool:
        max_consec = getattr(options, "max_nonfinite_batches", 20)
        max_frac = getattr(options, "max_nonfinite_fraction", 1.0)
        counter = NonFiniteCounter(accum_grad=max(1, options.accum_grad), max_consecutive=max_consec)
        handles = [opt.register_step_post_hook(counter.on_step) for opt in optimizers]
        guard = BufferGuard(model)
        handles.append(model.register_forward_pre_hook(lambda _m, _i: guard.snapshot()))

        def after_forward(_m, _i, out):
            if counter.on_loss(_loss_of(out)):
                guard.pending = True  # restored after backward: autograd may still need the buffers

        handles.append(model.register_forward_hook(after_forward))

        def watched() -> Iterator:
            for utt_id, batch in iterator:
                guard.restore_if_pending()
                counter.settle_previous()
                cls._check_consecutive(counter, max_consec)
                counter.batches += 1
                counter.utterances += len(utt_id)
                counter._last_utts = utt_id
                yield utt_id, batch
            guard.restore_if_pending()
            counter.settle_previous()
            cls._check_consecutive(counter, max_consec)

        try:
            all_invalid = super().train_one_epoch(
                model, watched(), optimizers, schedulers, scaler, reporter, summary_writer, options,
                distributed_option,
            )
        finally:
            for h in handles:
                h.remove()
        epoch = reporter.epoch
        stats = counter.as_dict()
        cls._write_report(options, distributed_option, epoch, stats)
        level = logging.WARNING if counter.skipped or counter.nonfinite_loss else logging.INFO
        logging.log(
            level,
            "epoch %d: %d of %d update steps skipped (non-finite loss/grad), %d batches with non-finite loss",
            epoch, counter.skipped, counter.update_points, counter.nonfinite_loss,
        )
        if counter.update_points and counter.skipped / counter.update_points > max_frac:
            raise NonFiniteTrainingError(
                f"epoch {epoch}: {counter.skipped} of {counter.update_points} update steps had a non-finite "
                f"loss or gradient (> --max_nonfinite_fraction {max_frac}); stopping. First affected "
                f"utterances: {stats['example_utts'][:5]}. See {Path(options.output_dir) / 'nonfinite_report.json'}"
            )
        return all_invalid

    @staticmethod
    def _check_consecutive(counter: NonFiniteCounter, max_consec: int) -> None:
        if max_consec > 0 and counter.consecutive > max_consec:
            raise NonFiniteTrainingError(
                f"{counter.consecutive} consecutive update steps had a non-finite loss or gradient "
                f"(> --max_nonfinite_batches {max_consec}); stopping. Recent utterances: "
                f"{counter.skipped_utts[-5:]}"
            )

    @staticmethod
    def _write_report(options, distributed_option, epoch: int, stats: Dict) -> None:
        """Append this epoch's counts to `<output_dir>/nonfinite_report.json` (rank r > 0 of a
        distributed run: `nonfinite_report.rank<r>.json`, each rank sees its own shard)."""
        rank = getattr(distributed_option, "dist_rank", None) if getattr(distributed_option, "distributed", False) else None
        name = "nonfinite_report.json" if rank in (0, None) else f"nonfinite_report.rank{rank}.json"
        path = Path(options.output_dir) / name
        report = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        report[str(epoch)] = stats
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
