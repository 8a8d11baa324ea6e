"""A bound on the utterances a data stage may drop from one set.

Why: every data stage drops some utterances for good reasons (a face never found,
a segment past the end of its audio), but a broken input (detection JSONs without
lip boxes, the wrong video directory) drops nearly all of them and the stage would
still finish. Each stage reads its own report after the parallel parts are merged,
and fails -- printing the per-reason counts -- when the dropped fraction of a set is
above the bound, so the stage is not marked done and nothing downstream trains on
what is left.

Stages and what counts as dropped:
  prep  `prep_report.json`: intervals lost to data errors (overlaps, reversed times,
        duplicate ids); intervals removed by the transcript rules (noise tags, fillers,
        too short) are the corpus's convention and are reported, not bounded.
  roi   utterances of the set's `text` missing from `roi.scp`, by the reason in `roi_report.json`.
  dump  utterances of the source dir's `text` missing from the dump's `wav.scp`, by the reason
        in `dump_report.json` (dev/eval keep utterances without a ROI: not a loss here).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Union

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import read_kv

PathLike = Union[str, Path]
#: Transcript-rule drops of stage 1 (SPEC §3): the corpus's convention, not a loss.
RULE_DROPS = frozenset({"noise_tag", "deaf_tag", "too_short", "empty_text", "filler_only"})
STAGES = ("prep", "roi", "dump")


class DropBoundError(DataPrepError):
    """A stage dropped more of a set than its bound allows."""


@dataclass
class Losses:
    """Dropped utterances of one set in one stage, by reason."""

    stage: str
    n_in: int
    reasons: Counter
    report: Path
    not_bounded: Counter

    @property
    def n_dropped(self) -> int:
        return sum(self.reasons.values())

    @property
    def fraction(self) -> float:
        return self.n_dropped / self.n_in if self.n_in else 0.0

    def summary(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.reasons.items())) or "none"
        s = f"{self.stage}: dropped {self.n_dropped} of {self.n_in} ({100 * self.fraction:.1f} %): {reasons}"
        if self.not_bounded:
            s += "; by the transcript rules (not bounded): " + ", ".join(
                f"{k}={v}" for k, v in sorted(self.not_bounded.items()))
        return s


def _reason_key(reason: str) -> str:
    """`'few_detections (3/40 ...)'` -> `'few_detections'`; `'bad_video: x'` -> `'bad_video'`."""
    return re.split(r"[\s:(]", reason.strip(), maxsplit=1)[0] or "unspecified"


def _load(path: Path) -> Dict:
    if not path.is_file():
        raise DataPrepError(path, "report not found (did the stage finish?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataPrepError(path, f"cannot read report ({e})") from None


def stage_losses(stage: str, out_dir: PathLike, in_dir: PathLike = None) -> Losses:
    """Losses of `stage` whose outputs (and report) are in `out_dir`; `in_dir` holds its input `text`."""
    out_dir = Path(out_dir)
    if stage == "prep":
        rep_path = out_dir / "prep_report.json"
        rep = _load(rep_path)
        dropped = Counter({k: int(v) for k, v in rep.get("dropped", {}).items()})
        rules = Counter({k: v for k, v in dropped.items() if k in RULE_DROPS})
        errors = dropped - rules
        n_in = int(rep.get("num_intervals", 0)) - sum(rules.values())
        return Losses(stage, n_in, errors, rep_path, rules)
    if in_dir is None:
        raise ValueError(f"stage {stage}: the input data dir is needed to count what went in")
    ins = set(read_kv(Path(in_dir) / "text"))
    if stage == "roi":
        rep_path, scp = out_dir / "roi_report.json", out_dir / "roi.scp"
        reasons = _load(rep_path).get("skipped", {})
    elif stage == "dump":
        rep_path, scp = out_dir / "dump_report.json", out_dir / "wav.scp"
        reasons = _load(rep_path).get("dropped_utts", {})
    else:
        raise ValueError(f"unknown stage {stage!r} (one of {STAGES})")
    # What went in and did not come out; parallel parts also report entries of other parts
    # (e.g. `roi_without_audio`), which are not losses of the set.
    lost = ins - (set(read_kv(scp)) if scp.is_file() else set())
    counts = Counter(_reason_key(reasons[u]) if u in reasons else "no_reason_recorded" for u in lost)
    return Losses(stage, len(ins), counts, rep_path, Counter())


def check_losses(losses: Losses, max_frac: float, set_name: str = "") -> None:
    """Raise DropBoundError (naming the report and the reasons) when more than `max_frac` was dropped."""
    if not 0.0 <= max_frac <= 1.0:
        raise ValueError(f"the drop bound must be in [0, 1], got {max_frac}")
    if losses.n_in == 0:
        raise DropBoundError(losses.report, f"{set_name or 'set'}: no utterance went into stage {losses.stage}")
    if losses.fraction > max_frac + 1e-12:
        raise DropBoundError(
            losses.report,
            f"{set_name or 'set'} {losses.summary()}; more than the bound {max_frac:g} "
            "(--max_drop_frac / --max_drop_frac_eval): fix the inputs, or raise the bound if this loss is expected",
        )
