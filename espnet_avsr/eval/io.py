"""Files of the evaluation side: Kaldi ``text``/``*.scp`` readers (over common.kaldi_dir), ``--meta`` parsing and the
score directory writer (``result.json``, ``result.txt``, ``utt_cer.txt``).

``result.json`` is the contract between scoring and reporting::

    {"cer": 0.2113, "errors": 2113, "ref_chars": 10000, "sub": .., "ins": .., "del": ..,
     "num_utts": .., "num_missing_hyp": .., "num_extra_hyp": .., "meta": {...}}

``cer`` is a fraction (reports print it as a percentage).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.experiment import read_facts
from espnet_avsr.common.fileio import atomic_write_json
from espnet_avsr.common.kaldi_dir import read_kv
from espnet_avsr.eval.cer import CorpusScore, ErrorCounts, SessionScore

PathLike = Union[str, os.PathLike]

log = logging.getLogger(__name__)


class EvalInputError(ValueError):
    """A scoring input file is missing or malformed (the message names the file)."""


def read_text(path: PathLike) -> Dict[str, str]:
    """A Kaldi/ESPnet ``text`` file (utt -> transcript; the utt id alone = empty transcript).

    Missing files and duplicate ids raise ``DataPrepError`` naming the file.
    """
    return dict(read_kv(path))


def read_scp(path: PathLike) -> Dict[str, str]:
    """A ``*.scp`` file (key -> path); an entry without a value is an error."""
    out = dict(read_kv(path))
    for key, value in out.items():
        if not value:
            raise DataPrepError(path, f"entry {key!r} has no value")
    return out


def _convert(value: str):
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null", ""):
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        f = float(value)
        return f if math.isfinite(f) else value
    except ValueError:
        return value


def parse_meta(items: Optional[Sequence[str]]) -> Dict[str, object]:
    """``["model=AV0", "missing_rate=0.25"]`` -> ``{"model": "AV0", "missing_rate": 0.25}``.

    Numbers become int/float, true/false booleans, none/null None; anything else stays text
    (``snr=clean``). Items may also be comma separated inside one argument.
    """
    meta: Dict[str, object] = {}
    for item in items or ():
        for piece in str(item).split(","):
            piece = piece.strip()
            if not piece:
                continue
            if "=" not in piece:
                raise ValueError(f"--meta item {piece!r} is not key=value")
            key, value = piece.split("=", 1)
            key = key.strip()
            if not key:
                raise ValueError(f"--meta item {piece!r} has an empty key")
            meta[key] = _convert(value.strip())
    return meta


def add_facts_option(parser) -> None:
    """``--facts``: the files whose facts :func:`score_meta` merges (one spelling for every scoring CLI)."""
    parser.add_argument(
        "--facts",
        nargs="*",
        default=[],
        help="JSON files of recorded facts merged into the meta: the test set's set.json, the decode's "
        "condition.json (espnet_avsr.common.experiment)",
    )


def score_meta(items: Optional[Sequence[str]], facts: Optional[Sequence[PathLike]] = None) -> Dict[str, object]:
    """The meta of a score file: ``--meta`` words plus the facts files their makers wrote
    (``set.json``, ``condition.json``); a key given twice is an error naming it."""
    meta = parse_meta(items)
    recorded = read_facts(facts or ())
    both = sorted(set(meta) & set(recorded))
    if both:
        raise ValueError(f"--meta gives {', '.join(both)}, which the facts files ({', '.join(map(str, facts))}) give too")
    return {**meta, **recorded}


def _pct(x: float) -> str:
    return "inf" if math.isinf(x) else f"{100.0 * x:.2f}"


def summary_lines(title: str, counts: ErrorCounts, unit: str = "Snt") -> List[str]:
    """An sclite-like summary block (percentages of reference characters)."""
    n = max(counts.ref_chars, 1)
    header = f"| {unit:>5} | {'Chr':>8} | {'Corr':>6} | {'Sub':>6} | {'Del':>6} | {'Ins':>6} | {'Err':>6} |"
    row = (
        f"| {counts.num_utts:>5} | {counts.ref_chars:>8} | {100.0 * counts.correct / n:>6.2f} | "
        f"{100.0 * counts.sub / n:>6.2f} | {100.0 * counts.dele / n:>6.2f} | "
        f"{100.0 * counts.ins / n:>6.2f} | {_pct(counts.cer):>6} |"
    )
    bar = "|" + "-" * (len(header) - 2) + "|"
    return [f"## {title}", bar, header, bar, row, bar]


def write_score_dir(
    out_dir: PathLike,
    score: CorpusScore,
    meta: Mapping[str, object],
    ref_path: str,
    hyp_path: str,
    cpcer: Optional[ErrorCounts] = None,
    sessions: Optional[Sequence[SessionScore]] = None,
    json_name: str = "result.json",
    txt_name: str = "result.txt",
    title: str = "CER",
    utt_name: str = "utt_cer.txt",
    extra: Optional[Mapping[str, object]] = None,
) -> Dict:
    """Write the score files and return the JSON record."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = score.as_dict()
    record["ref"] = str(ref_path)
    record["hyp"] = str(hyp_path)
    if cpcer is not None:
        record["cpcer"] = cpcer.cer
        record["cpcer_counts"] = {k: v for k, v in cpcer.as_dict().items() if k != "cer"}
        record["cpcer_counts"]["num_sessions"] = record["cpcer_counts"].pop("num_utts")
    record.update(extra or {})
    record["meta"] = dict(meta)
    atomic_write_json(out / json_name, record)

    lines = [f"# {title}: {hyp_path} against {ref_path}"]
    if meta:
        lines.append("meta: " + " ".join(f"{k}={v}" for k, v in sorted(meta.items())))
    lines.append("")
    lines += summary_lines(title, score.total)
    if cpcer is not None:
        lines.append("")
        lines += summary_lines("cpCER (sessions)", cpcer, unit="Sess")
    lines.append("")
    lines.append(f"missing hypotheses (scored as deletions): {len(score.missing_hyp)}")
    lines += [f"  {u}" for u in score.missing_hyp[:50]]
    if len(score.missing_hyp) > 50:
        lines.append(f"  ... and {len(score.missing_hyp) - 50} more (see utt_cer.txt)")
    lines.append(f"extra hypotheses (no reference, not scored): {len(score.extra_hyp)}")
    lines += [f"  {u}" for u in score.extra_hyp[:50]]
    if len(score.extra_hyp) > 50:
        lines.append(f"  ... and {len(score.extra_hyp) - 50} more")
    (out / txt_name).write_text("\n".join(lines) + "\n", encoding="utf-8")

    with open(out / utt_name, "w", encoding="utf-8") as f:
        f.write("# utt_id ref_chars sub ins del errors cer% status\n")
        for u in score.utts:
            c = u.counts
            status = "MISSING_HYP" if u.missing else "ok"
            f.write(f"{u.utt_id} {c.ref_chars} {c.sub} {c.ins} {c.dele} {c.errors} {_pct(c.cer)} {status}\n")
            f.write(f"  REF: {u.ref}\n  HYP: {'' if u.hyp is None else u.hyp}\n")
        for utt in score.extra_hyp:
            f.write(f"{utt} 0 0 0 0 0 - EXTRA_HYP\n")
    if sessions is not None:
        with open(out / "session_cpcer.txt", "w", encoding="utf-8") as f:
            f.write("# session ref_chars sub ins del errors cpcer% assignment(ref->hyp)\n")
            for s in sessions:
                c = s.counts
                assign = ",".join(f"{r}->{h if h is not None else '-'}" for r, h in sorted(s.assignment.items()))
                f.write(f"{s.session} {c.ref_chars} {c.sub} {c.ins} {c.dele} {c.errors} {_pct(c.cer)} {assign}\n")
    return record


def find_files(root: PathLike, name: str) -> List[Path]:
    """All files called ``name`` under ``root`` (sorted, symlinked dirs followed); hidden folders
    under it (the recipe's ``.report_view``, ``.done``) are skipped, or a view's links would be
    read a second time beside the folders they point to."""
    found: List[Path] = []
    for dirpath, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if name in files:
            found.append(Path(dirpath) / name)
    return sorted(found)


def load_json(path: PathLike) -> Dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise EvalInputError(f"{path}: not valid JSON ({e})") from e
