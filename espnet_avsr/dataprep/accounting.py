"""End-to-end utterance accounting for a recipe dir: no utterance may vanish without a reason.

Each data stage records what it dropped and why (`prep_report.json`,
`roi_report.json`, `dump_report.json`). This module follows every prepared set
through the stages of `egs2/misp_avsr/avsr1` and compares, per stage, the
utterances that went in with those that came out plus those dropped with a
recorded reason:

    TextGrid intervals -> data/<set> (prep_report) -> dump/roi/<set> (roi_report)
    -> dump/raw/<set> (dump_report) -> exp/<model>/decode_<tag>/<set>*/text (hyps)

An utterance missing from a stage's output and absent from its drop list is
"unexplained"; any unexplained loss makes `account_recipe(...).ok` False.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Union

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import read_kv

PathLike = Union[str, Path]


@dataclass
class StageCount:
    """Counts of one stage for one set."""

    set: str
    stage: str
    n_in: int
    n_out: int
    dropped: Dict[str, int] = field(default_factory=dict)
    unexplained: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)
    note: str = ""

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())


@dataclass
class Accounting:
    rows: List[StageCount]

    @property
    def ok(self) -> bool:
        return not any(r.unexplained for r in self.rows)

    def table(self) -> str:
        """A plain-text table, one line per (set, stage)."""
        head = f"{'set':<22} {'stage':<28} {'in':>6} {'out':>6} {'dropped':>7} {'lost':>5}  reasons / notes"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(r.dropped.items()))
            extra = "; ".join(x for x in (reasons, r.note) if x)
            lines.append(
                f"{r.set:<22} {r.stage:<28} {r.n_in:>6} {r.n_out:>6} {r.n_dropped:>7} {len(r.unexplained):>5}  {extra}"
            )
            if r.unexplained:
                lines.append(f"{'':<22}   LOST without a reason: {', '.join(r.unexplained[:10])}"
                             + (" ..." if len(r.unexplained) > 10 else ""))
        return "\n".join(lines)

    def as_dict(self) -> Dict:
        return {
            "ok": self.ok,
            "rows": [
                {"set": r.set, "stage": r.stage, "in": r.n_in, "out": r.n_out, "dropped": r.dropped,
                 "unexplained": r.unexplained, "extra": r.extra, "note": r.note}
                for r in self.rows
            ],
        }


def _load_json(path: Path) -> Dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataPrepError(path, f"cannot read report ({e})") from None


def _reason_key(reason: str) -> str:
    """`'few_detections (3/40 ...)'` -> `'few_detections'`; `'bad_video: ...'` -> `'bad_video'`."""
    return re.split(r"[\s:(]", reason.strip(), maxsplit=1)[0] or "unspecified"


def compare_ids(set_name: str, stage: str, ins: Iterable[str], outs: Iterable[str],
                dropped: Dict[str, str], note: str = "") -> StageCount:
    """Utterance-level comparison: in = out + dropped-with-reason, else the rest is unexplained."""
    ins_s: Set[str] = set(ins)
    outs_s: Set[str] = set(outs)
    drop = {u: r for u, r in dropped.items() if u in ins_s and u not in outs_s}
    lost = sorted(ins_s - outs_s - set(drop))
    extra = sorted(outs_s - ins_s)
    reasons = Counter(_reason_key(r) for r in drop.values())
    return StageCount(set_name, stage, len(ins_s), len(outs_s & ins_s), dict(reasons), lost, extra, note)


def _prep_row(set_name: str, d: Path) -> StageCount:
    rep_path = d / "prep_report.json"
    if not rep_path.is_file():
        return StageCount(set_name, "textgrid->data", 0, 0, note=f"no {rep_path.name}: not checked")
    rep = _load_json(rep_path)
    n_in, n_out = int(rep.get("num_intervals", 0)), len(read_kv(d / "text"))
    dropped = {k: int(v) for k, v in rep.get("dropped", {}).items()}
    gap = n_in - n_out - sum(dropped.values())
    row = StageCount(set_name, "textgrid->data", n_in, n_out, dropped)
    if gap > 0:
        row.unexplained = [f"<{gap} interval(s) of {d / 'text'}>"]
    if rep.get("num_no_video"):
        row.note = f"{rep['num_no_video']} kept audio-only (no video)"
    return row


def account_set(recipe: Path, set_name: str, data_dir: str = "data", dumpdir: str = "dump",
                expdir: str = "exp") -> List[StageCount]:
    """All stage rows of one prepared set (`<set>_<field>`, e.g. `dev_far`)."""
    rows: List[StageCount] = []
    d = recipe / data_dir / set_name
    rows.append(_prep_row(set_name, d))
    utts = list(read_kv(d / "text"))

    roi_dir = recipe / dumpdir / "roi" / set_name
    roi_utts: Optional[Set[str]] = None
    if (roi_dir / "roi.scp").is_file():
        rep_path = roi_dir / "roi_report.json"
        skipped = _load_json(rep_path).get("skipped", {}) if rep_path.is_file() else {}
        roi_utts = set(read_kv(roi_dir / "roi.scp"))
        note = "" if rep_path.is_file() else f"no {rep_path.name}: drop reasons unknown"
        rows.append(compare_ids(set_name, "data->roi", utts, roi_utts, skipped, note))
    else:
        rows.append(StageCount(set_name, "data->roi", len(utts), 0, note="not run yet"))

    raw = recipe / dumpdir / "raw" / set_name
    if (raw / "text").is_file():
        rep_path = raw / "dump_report.json"
        rep = _load_json(rep_path) if rep_path.is_file() else {}
        dropped = dict(rep.get("dropped_utts", {}))
        dump_utts = list(read_kv(raw / "text"))
        note = "" if rep_path.is_file() else f"no {rep_path.name}: drop reasons unknown"
        rows.append(compare_ids(set_name, "data(+roi)->dump", utts, dump_utts, dropped, note))
        # exp/<model>/decode_<inference tag>/<set>[_miss...]/text, and the older exp/<model>/decode_<set>[_miss...]/text
        decodes = [(d, d.parent.name[len(set_name):], d.parent.parent.parent.name)
                   for d in sorted((recipe / expdir).glob(f"*/decode_*/{set_name}*/text"))]
        decodes += [(d, d.parent.name[len(f"decode_{set_name}"):], d.parent.parent.name)
                    for d in sorted((recipe / expdir).glob(f"*/decode_{set_name}*/text"))]
        for dec, suffix, model in decodes:
            if suffix and not suffix.startswith("_miss"):
                continue  # decode of another set sharing the prefix (e.g. dev_far_babble5)
            hyps = read_kv(dec)
            rows.append(compare_ids(set_name, f"dump->hyp {model}", dump_utts, hyps, {},
                                    note=str(dec.relative_to(recipe))))
    elif (recipe / dumpdir / "raw" / f"{set_name}_sp").is_dir():
        rows.append(StageCount(set_name, "data(+roi)->dump", len(utts), 0,
                               note="speed-perturbed dump (<set>_sp): ids differ, not compared"))
    else:
        rows.append(StageCount(set_name, "data(+roi)->dump", len(utts), 0, note="not run yet"))
    return rows


def find_sets(recipe: Path, data_dir: str = "data") -> List[str]:
    """Prepared sets: data dirs with a prep_report.json (enhanced copies and token lists excluded)."""
    return sorted(p.parent.name for p in (recipe / data_dir).glob("*/prep_report.json"))


def account_recipe(recipe: PathLike, sets: Optional[Iterable[str]] = None, data_dir: str = "data",
                   dumpdir: str = "dump", expdir: str = "exp") -> Accounting:
    """Account every (or the given) prepared set of a recipe dir."""
    recipe = Path(recipe)
    sets = list(sets) if sets else find_sets(recipe, data_dir)
    if not sets:
        raise DataPrepError(recipe / data_dir, "no prepared set (no */prep_report.json) to account for")
    rows: List[StageCount] = []
    for s in sets:
        rows.extend(account_set(recipe, s, data_dir, dumpdir, expdir))
    acc = Accounting(rows)
    for r in rows:
        if r.unexplained:
            logging.error("%s %s: %d utterance(s) lost without a recorded reason", r.set, r.stage, len(r.unexplained))
        if r.extra:
            logging.warning("%s %s: %d utterance(s) appeared that were not in the input", r.set, r.stage, len(r.extra))
    return acc
