"""Tables (paper layout) and plots from a tree of score directories.

Everything is rebuilt from files, so one command regenerates the whole report:

* ``result.json``       (score_cer)       CER of one decode; ``meta`` says which
* ``relative_cer.json`` (relative_cer)    AVSR hyps scored against ASR hyps
* ``rep_similarity.json`` (rep_similarity) cosine matrices and CKA

Every fact comes from a file its maker wrote; nothing is read from a model's or a set's name:

* a model's (kind, modality, training settings) from ``<exp>/<model>/meta.json``
  (:class:`espnet_avsr.common.experiment.ModelRecord`); a model with a score but without a
  readable ``meta.json`` stops the report with an error naming the file;
* a score's from its ``meta``: ``model``; the test set's ``test_set``, ``field``, ``noise``,
  ``snr`` (null = clean), from the dump's ``set.json``; the decode's ``missing_rate`` (null =
  no video fed), ``missing_pattern``, ``missing_fill``, from its ``condition.json``. A score
  whose meta lacks one of them is skipped and listed under Notes.

Order (display only, no fact is read from it): test sets near, middle, far by their recorded
``field``; rows audio-only models first, then ``AV<digits>``, then the rest, names in natural
order.

Tables: (i) per test set and missing pattern, the paper's Table 1 layout: model name first,
training settings second, the missing-rate columns 0 / .25 / .5 / .75 / 1.0 last (audio-only
rows repeat their single value when they were decoded once); (ii) the noise table (models x
clean test sets and SNRs); (iii) the dropout study when models with ``train_dropout`` exist;
(iv) when a model was trained with several seeds (``meta.json`` ``base`` and ``seed``), tables
(i) and (ii) once more, first, one row per model: the mean over its seeds and each seed's value.
Missing cells are ``-``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from espnet_avsr.common.experiment import META_JSON, MetaError, read_meta
from espnet_avsr.eval.io import EvalInputError, find_files, load_json

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

STANDARD_RATES = (0.0, 0.25, 0.5, 0.75, 1.0)
DROPOUT_RATES = (0.1, 0.3, 0.5, 0.7)
MISSING = "-"
FIELD_ORDER = ("near", "middle", "far")  # table and column order of the test sets
#: meta keys a score must have: result.json (CER), relative_cer.json, rep_similarity.json
CER_KEYS = ("model", "test_set", "field", "noise", "snr", "missing_rate")
REL_KEYS = ("model", "test_set", "missing_rate")
SIM_KEYS = ("model",)


# --------------------------------------------------------------------------- loading


@dataclass
class Record:
    """One score file: its value (percent) and the facts its meta records."""

    path: Path
    value: float  # CER or relative CER in percent
    meta: Dict[str, object]
    raw: Dict = field(default_factory=dict)

    @property
    def model(self) -> str:
        return str(self.meta["model"])

    @property
    def test_set(self) -> str:
        return str(self.meta["test_set"])

    @property
    def mic_field(self) -> Optional[str]:
        return self.meta.get("field")

    @property
    def rate(self) -> Optional[float]:
        """The fraction of video frames dropped; None: no video fed (an audio-only model)."""
        r = self.meta["missing_rate"]
        return None if r is None else float(r)

    @property
    def pattern(self) -> Optional[str]:
        return self.meta.get("missing_pattern")

    @property
    def fill(self) -> Optional[str]:
        return self.meta.get("missing_fill")

    @property
    def snr(self) -> Optional[float]:
        """dB of the added noise; None: a clean set."""
        s = self.meta.get("snr")
        return None if s is None else float(s)

    @property
    def noise(self) -> Optional[str]:
        return self.meta.get("noise")


def _check_meta(meta: Dict, keys: Sequence[str]) -> None:
    """The keys a score must record; a missing-video rate also needs its pattern and fill."""
    lacking = [k for k in keys if k not in meta]
    if "missing_rate" in keys and meta.get("missing_rate") is not None:
        lacking += [k for k in ("missing_pattern", "missing_fill") if meta.get(k) is None]
    if lacking:
        raise KeyError(f"its meta lacks {', '.join(lacking)} (scored by an older recipe? redo stage 10)")
    for key in ("missing_rate", "snr"):
        if meta.get(key) is not None and (isinstance(meta[key], bool) or not isinstance(meta[key], (int, float))):
            raise ValueError(f"meta {key} must be a number or null, got {meta[key]!r}")


def load_records(exp: PathLike, name: str, value_key: str, keys: Sequence[str]) -> Tuple[List[Record], List[str]]:
    """All ``name`` files under ``exp`` whose meta has ``keys``; the others are skipped and listed."""
    exp = Path(exp)
    records, problems = [], []
    for path in find_files(exp, name):
        try:
            data = load_json(path)
            value = data[value_key]
            if value is None:
                raise KeyError(value_key)
            meta = data.get("meta")
            if not isinstance(meta, dict):
                raise KeyError("meta")
            _check_meta(meta, keys)
            records.append(Record(path, 100.0 * float(value), dict(meta), data))
        except (EvalInputError, KeyError, TypeError, ValueError) as e:
            msg = f"{path}: skipped ({e.__class__.__name__}: {e})"
            log.warning(msg)
            problems.append(msg)
    return records, problems


def load_similarities(exp: PathLike) -> Tuple[List[Tuple[Path, Dict]], List[str]]:
    out, problems = [], []
    for path in find_files(exp, "rep_similarity.json"):
        try:
            data = load_json(path)
            if not isinstance(data.get("meta"), dict):
                raise KeyError("meta")
            _check_meta(data["meta"], SIM_KEYS)
            out.append((path, data))
        except (EvalInputError, KeyError) as e:
            msg = f"{path}: skipped ({e.__class__.__name__}: {e})"
            log.warning(msg)
            problems.append(msg)
    return out, problems


def load_model_facts(exp: PathLike, model: str) -> Dict[str, object]:
    """``<exp>/<model>/meta.json`` as a dict; a missing or malformed one is an error naming it."""
    path = Path(exp) / model / META_JSON
    rec = read_meta(path)
    if rec.model != model:
        raise MetaError(f"{path}: records model {rec.model!r}, but its scores are those of {model!r}")
    return rec.as_dict()


# --------------------------------------------------------------------------- helpers


def is_audio_only(meta: Dict) -> bool:
    return meta["modality"] == "audio"


def _natural(s: str) -> List:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def model_sort_key(model: str, audio_only: bool) -> Tuple:
    """Audio-only models (A0 ...) first, then AV0, AV1 ... AV6, then the rest; natural order."""
    if audio_only:
        group = 0
    elif re.fullmatch(r"AV\d+", model):
        group = 1
    else:
        group = 2
    return (group, _natural(model))


def fmt(v: Optional[float]) -> str:
    return MISSING if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def rate_labels(items: Sequence[Tuple[Optional[float], str]]) -> List[str]:
    """One label per ``(training dropout, name)``: the rate alone, or the rate with the name where
    another item shares the rate (two seeds of a study rate), or the name where the rate is unknown.
    The dropout table, the dropout figure and the similarity panels all label this way."""
    counts = Counter(d for d, _ in items if d is not None)
    return [name if d is None else f"{d:g}" if counts[d] == 1 else f"{d:g} ({name})" for d, name in items]


def fmt_rate(r: float) -> str:
    """0 / 0.25 / 0.5 / 0.75 / 1.0, as the paper's column heads."""
    if r == 0:
        return "0"
    return f"{r:.1f}" if float(r).is_integer() else f"{r:g}"


def training_description(meta: Dict, audio_only: bool) -> str:
    """The training column, from a model's meta.json: modality, video dropout, init, KD, adapter."""
    parts = []
    if audio_only:
        parts.append("audio only")
    elif meta.get("modality") == "video":
        parts.append("video only (lip reader)")
    if meta.get("train_dropout") is not None:
        d = meta["train_dropout"]
        parts.append("no dropout" if d in (0, 0.0) else f"dropout {d}")
    if meta.get("train_dropout_prob") is not None:
        parts.append(f"prob {meta['train_dropout_prob']}")
    if meta.get("init"):
        parts.append(f"init {meta['init']}")
    kd = meta.get("kd")
    if kd:
        parts.append("+ MDA-KD" if kd is True else f"+ MDA-KD ({kd})")
    if meta.get("adapter"):
        parts.append("+ MS-Adapter")
    return ", ".join(parts) if parts else MISSING


@dataclass
class Table:
    title: str
    header: List[str]
    rows: List[List[str]]
    note: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join("---" for _ in self.header) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"


def _dedupe(records: Sequence, key_fn, duplicates: List[str], path_of=lambda r: r.path) -> "OrderedDict":
    """key -> record; on duplicates keep the last in path order and note it."""
    out: "OrderedDict" = OrderedDict()
    for r in sorted(records, key=lambda r: str(path_of(r))):
        k = key_fn(r)
        if k in out:
            duplicates.append(f"{path_of(r)} replaces {path_of(out[k])} (same {k})")
        out[k] = r
    return out


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    tables: Dict[str, Table] = field(default_factory=OrderedDict)
    plots: Dict[str, Path] = field(default_factory=OrderedDict)
    notes: List[str] = field(default_factory=list)
    markdown: str = ""


class ReportBuilder:
    """Collects the records of an experiment tree and renders tables and plots."""

    def __init__(self, exp: PathLike, plots_dir: Optional[PathLike] = None):
        self.exp = Path(exp)
        if not self.exp.is_dir():
            raise EvalInputError(f"{self.exp}: experiment directory not found")
        self.plots_dir = Path(plots_dir) if plots_dir else None
        self.report = Report()
        cer, p1 = load_records(self.exp, "result.json", "cer", CER_KEYS)
        rel, p2 = load_records(self.exp, "relative_cer.json", "relative_cer", REL_KEYS)
        sims, p3 = load_similarities(self.exp)
        self.report.notes += p1 + p2 + p3
        dups: List[str] = []
        sim_key = lambda x: (str(x[1]["meta"]["model"]), *(x[1]["meta"].get(k) for k in ("test_set", "missing_rate", "ref_model")))
        self.sims = list(_dedupe(sims, sim_key, dups, path_of=lambda x: x[0]).values())
        self.cer = _dedupe(cer, lambda r: (r.model, r.test_set, r.rate, r.pattern, r.fill, r.snr, r.noise), dups)
        self.rel = _dedupe(rel, lambda r: (r.model, r.test_set, r.rate, r.pattern, r.fill, r.snr), dups)
        self.report.notes += [f"duplicate: {d}" for d in dups]
        self._facts: Dict[str, Dict] = {}
        for _, data in self.sims:  # a similarity's model needs its meta.json too
            self.facts(str(data["meta"]["model"]))
        # the models of the tables: those with a CER or relative-CER score
        models = dict.fromkeys(r.model for r in list(self.cer.values()) + list(self.rel.values()))
        self.model_meta: Dict[str, Dict] = {m: self.facts(m) for m in models}
        self.fields: Dict[str, Optional[str]] = {}
        for r in self.cer.values():
            self.fields.setdefault(r.test_set, r.mic_field)

    # -- model facts
    def facts(self, model: str) -> Dict:
        """The model's meta.json, read once."""
        if model not in self._facts:
            self._facts[model] = load_model_facts(self.exp, model)
        return self._facts[model]

    def audio_only(self, model: str) -> bool:
        return is_audio_only(self.model_meta[model])

    def relative_test_sets(self) -> List[str]:
        """The test sets with relative-CER scores (dev and eval are never averaged together)."""
        return sorted({r.test_set for r in self.rel.values()}, key=self._test_set_order)

    def relative_records(self, test_set: str) -> List:
        """The relative-CER scores of one test set."""
        return [r for r in self.rel.values() if r.test_set == test_set]

    def relative_bars(self, test_set: str) -> Tuple["OrderedDict[str, Dict[str, float]]", int]:
        """``{test missing rate: {training dropout: relative CER}}`` on one test set for the figure,
        each bar the mean over the seeds of that study rate (one bar per rate, as in the paper;
        another AV model keeps its own bar), and the most seeds a bar averages."""
        acc: "OrderedDict[str, Dict[str, List[float]]]" = OrderedDict()
        for r in sorted(self.relative_records(test_set), key=lambda r: (-(r.rate or 0.0), self.dropout_of(r.model) or 0.0, _natural(r.model))):
            d, facts = self.dropout_of(r.model), self.facts(r.model)
            study = facts.get("study") == "dropout" and d is not None
            label = f"{d:g}" if study else str(facts.get("base") or r.model)  # a table model: its name
            acc.setdefault(f"test missing {fmt_rate(r.rate or 0.0)}", OrderedDict()).setdefault(label, []).append(r.value)
        bars = OrderedDict((g, OrderedDict((k, float(np.mean(v))) for k, v in b.items())) for g, b in acc.items())
        return bars, max((len(v) for b in acc.values() for v in b.values()), default=0)

    def similarity_panels(self) -> List[Tuple[str, np.ndarray]]:
        """One ``(label, cosine matrix)`` per similarity run for the heatmap grid, ordered by training
        dropout; a label is the dropout rate, with the model's name beside it where two models (two
        seeds of a study rate) share the rate, so their panels are told apart."""
        found = []
        for path, data in sorted(self.sims, key=lambda x: (self.dropout_of(self._sim_model(x)) or 0.0, _natural(self._sim_model(x)))):
            pair = next((p for p in data.get("pairs", []) if p.get("cosine_file")), None)
            if pair is None or not (path.parent / pair["cosine_file"]).is_file():
                continue
            m = np.load(path.parent / pair["cosine_file"])
            k = min(16, m.shape[0])
            model = self._sim_model((path, data))
            found.append((self.dropout_of(model), model, m[:k, :k]))
        return list(zip(rate_labels([(d, model) for d, model, _ in found]), [m for _, _, m in found]))

    def dropout_of(self, model: str) -> Optional[float]:
        """A model's training video-dropout rate (None: not a number, or not an AV model)."""
        return _as_float(self.facts(model).get("train_dropout"))

    def _sim_model(self, item: Tuple[Path, Dict]) -> str:
        return str(item[1]["meta"]["model"])

    def _test_set_order(self, ts: str) -> Tuple:
        f = self.fields.get(ts)
        return (FIELD_ORDER.index(f) if f in FIELD_ORDER else len(FIELD_ORDER), _natural(ts))

    def sorted_models(self, models) -> List[str]:
        return sorted(set(models), key=lambda m: model_sort_key(m, self.audio_only(m)))

    # -- (i) missing-video tables
    def missing_groups(self) -> List[Tuple[str, str, str]]:
        groups = set()
        test_sets = set()
        for r in self.cer.values():
            if r.snr is not None:
                continue
            test_sets.add(r.test_set)
            if r.rate is not None and r.rate > 0 and not self.audio_only(r.model):
                groups.add((r.test_set, r.pattern, r.fill))
        for ts in test_sets:  # a test set decoded only without missing video still gets a table
            if not any(g[0] == ts for g in groups):
                groups.add((ts, "random", "zeros"))
        return sorted(groups, key=lambda g: (self._test_set_order(g[0]), g[1], g[2]))

    def missing_values(self, test_set: str, pattern: str, fill: str) -> Tuple[List[float], "OrderedDict[str, Dict[float, float]]"]:
        """model -> {rate: CER%} for clean audio; rate 0 / undecoded rates of audio-only rows filled."""
        per_model: Dict[str, Dict[Optional[float], float]] = {}
        for r in self.cer.values():
            if r.test_set != test_set or r.snr is not None:
                continue
            no_video_loss = r.rate is None or r.rate == 0
            if not no_video_loss and (r.pattern, r.fill) != (pattern, fill) and not self.audio_only(r.model):
                continue
            per_model.setdefault(r.model, {})[r.rate] = r.value
        rates = sorted(set(STANDARD_RATES) | {k for v in per_model.values() for k in v if k is not None})
        table: "OrderedDict[str, Dict[float, float]]" = OrderedDict()
        for model in self.sorted_models(per_model):
            vals = per_model[model]
            row: Dict[float, float] = {}
            for rate in rates:
                if rate in vals:
                    row[rate] = vals[rate]
                elif rate == 0.0 and None in vals:
                    row[rate] = vals[None]
            if self.audio_only(model):
                # video-independent: one decode stands for every column (as in the paper)
                single = vals.get(None, vals.get(0.0))
                if single is None and len(set(vals.values())) == 1:
                    single = next(iter(vals.values()))
                if single is not None:
                    for rate in rates:
                        row.setdefault(rate, single)
            table[model] = row
        return rates, table

    def missing_table(self, test_set: str, pattern: str, fill: str) -> Table:
        rates, values = self.missing_values(test_set, pattern, fill)
        header = ["model", "training"] + [fmt_rate(r) for r in rates]
        rows = []
        for model, row in values.items():
            rows.append([model, training_description(self.model_meta.get(model, {}), self.audio_only(model))] + [fmt(row.get(r)) for r in rates])
        return Table(
            title=f"CER (%) vs fraction of missing video frames: {test_set}, pattern {pattern}, fill {fill}",
            header=header,
            rows=rows,
            note="Columns: fraction of test video frames dropped. Audio-only rows do not depend on video.",
        )

    # -- (ii) noise table
    def noise_columns(self) -> List[Tuple[str, Tuple]]:
        clean_sets, noisy = set(), set()
        for r in self.cer.values():
            if r.rate not in (None, 0.0):
                continue
            if r.snr is None:
                clean_sets.add(r.test_set)
            else:
                noisy.add((r.noise, r.snr))
        cols = [(ts, ("clean", ts)) for ts in sorted(clean_sets, key=self._test_set_order)]
        cols += [(f"{n} {s:g} dB", ("noisy", n, s)) for n, s in sorted(noisy, key=lambda x: (x[0], -x[1]))]
        return cols

    def _noise_values(self) -> Dict[str, Dict[Tuple, float]]:
        """model -> {noise column key: CER%}, complete video (keys as in noise_columns)."""
        cells: Dict[str, Dict[Tuple, float]] = {}
        for r in self.cer.values():
            if r.rate not in (None, 0.0):
                continue
            key = ("clean", r.test_set) if r.snr is None else ("noisy", r.noise, r.snr)
            cells.setdefault(r.model, {})[key] = r.value
        return cells

    def noise_table(self, cols: List[Tuple[str, Tuple]], cells: Dict[str, Dict[Tuple, float]]) -> Optional[Table]:
        """The table of ``noise_columns`` x ``_noise_values`` (computed once by ``build``)."""
        if not any(c[1][0] == "noisy" for c in cols) and sum(1 for c in cols if c[1][0] == "clean") < 2:
            return None
        rows = [[m] + [fmt(cells[m].get(k)) for _, k in cols] for m in self.sorted_models(cells)]
        return Table(
            title="CER (%) on clean test sets and with zero-shot noise (complete video)",
            header=["model"] + [c for c, _ in cols],
            rows=rows,
        )

    # -- (iii) dropout study
    def dropout_models(self) -> List[str]:
        models = [m for m in self.model_meta if self.dropout_of(m) not in (None, 0.0)]
        if any(meta.get("study") for meta in self.model_meta.values()):
            models = [m for m in models if self.model_meta[m].get("study") == "dropout"]
        return sorted(models, key=lambda m: (self.dropout_of(m), _natural(m)))

    def dropout_curves(self, rates: Sequence[float], values: Dict[str, Dict[float, float]]):
        """The dropout figure's lines: ``(series, hlines, most seeds averaged)``, each line the mean
        over one model's seeds (``seed_groups``): A0's line over A0's seeds, a study rate's over
        its seeds (a seed-1 curve drawn against seed 0's baseline misleads); a point is drawn
        only where every seed of the model was decoded."""
        a0, av0 = self.baselines()
        groups = self.seed_groups(values)
        group_of = {m: (base, ms) for base, ms in groups.items() for m in ms}

        def mean(ms: List[str], r: float) -> Optional[float]:
            got = [values[m].get(r) for m in ms]
            return None if any(v is None for v in got) else float(np.mean(got))

        series, hlines, seeds = OrderedDict(), OrderedDict(), 0
        if a0 in group_of and values[a0]:
            base, ms = group_of[a0]
            r0 = 0.0 if all(0.0 in values[m] for m in ms) else next(iter(values[a0]))
            hlines[f"Baseline(A) {base}"] = mean(ms, r0)
            seeds = len(ms)
        if av0 in group_of:
            base, ms = group_of[av0]
            series[f"Baseline(AV) {base}"] = (list(rates), [mean(ms, r) for r in rates])
            seeds = max(seeds, len(ms))
        study = [groups[b] for b in dict.fromkeys(group_of[m][0] for m in self.dropout_models() if m in group_of)]
        labels = rate_labels([(self.dropout_of(ms[0]), group_of[ms[0]][0]) for ms in study])
        for label, ms in zip(labels, study):
            series[label] = (list(rates), [mean(ms, r) for r in rates])
            seeds = max(seeds, len(ms))
        return series, hlines, seeds

    def baselines(self) -> Tuple[Optional[str], Optional[str]]:
        """(audio-only baseline, no-dropout AV baseline): the first audio-only model and the first
        AV model trained without video dropout, in table order (from meta.json, not names)."""
        models = self.sorted_models(self.model_meta)
        a = next((m for m in models if self.audio_only(m)), None)
        av = next((m for m in models if self.model_meta[m]["modality"] == "av"
                   and self.dropout_of(m) == 0.0), None)
        return a, av

    def relative_table(self, test_set: str) -> Optional[Table]:
        recs = self.relative_records(test_set)
        if not recs:
            return None
        rates = sorted({r.rate or 0.0 for r in recs})
        cells: Dict[str, Dict[float, float]] = {}
        for r in recs:
            cells.setdefault(r.model, {})[r.rate or 0.0] = r.value
        # a model without its own video dropout setting (an MS-Adapter on its base) is "-", last
        drop = {m: self.dropout_of(m) for m in cells}
        ordered = sorted(cells, key=lambda m: (drop[m] is None, drop[m] or 0.0, _natural(m)))
        rows = [
            [m, MISSING if drop[m] is None else fmt_rate(drop[m])] + [fmt(cells[m].get(rt)) for rt in rates]
            for m in ordered
        ]
        return Table(
            title=f"Relative CER (%) on {test_set}: AVSR hypotheses scored against the audio-only model's hypotheses",
            header=["model", "train dropout"] + [f"test missing {fmt_rate(r)}" for r in rates],
            rows=rows,
            note="Lower = closer to the audio-only recogniser (the paper's modality-bias evidence).",
        )

    def similarity_table(self) -> Optional[Table]:
        if not self.sims:
            return None
        rows = []
        for path, data in sorted(self.sims, key=lambda x: (self.dropout_of(self._sim_model(x)) or 0.0, str(x[0]))):
            meta = data["meta"]
            drop = self.dropout_of(str(meta["model"]))
            for p in data.get("pairs", []):
                rows.append([
                    str(meta["model"]),
                    fmt_rate(drop) if drop is not None else MISSING,
                    fmt_rate(_as_float(meta.get("missing_rate")) or 0.0),
                    f"{p.get('asr_layer')} / {p.get('avsr_layer')}",
                    f"{p['cka']:.3f}" if p.get("cka") is not None else MISSING,
                    f"{p['diag_contrast']:.3f}" if p.get("diag_contrast") is not None else MISSING,
                    str(data.get("num_samples", MISSING)),
                ])
        return Table(
            title="ASR vs AVSR representation similarity (mean-pooled encoder outputs)",
            header=["model", "train dropout", "test missing", "layers (ASR / AVSR)", "linear CKA", "diag - offdiag cos", "samples"],
            rows=rows,
        )

    # -- plots
    def _plot(self, name: str, fn, *args, **kw) -> None:
        if self.plots_dir is None:
            return
        try:
            self.report.plots[name] = fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - a broken figure must not lose the tables
            msg = f"plot {name} failed: {e.__class__.__name__}: {e}"
            log.warning(msg)
            self.report.notes.append(msg)

    # -- (iv) over seeds: models trained with --seeds share a meta.json "base"
    def seed_groups(self, models: Sequence[str]) -> "OrderedDict[str, List[str]]":
        """base name -> its models in seed order (a model without a base is its own group)."""
        groups: "OrderedDict[str, List[str]]" = OrderedDict()
        for m in self.sorted_models(models):
            groups.setdefault(str(self.model_meta[m].get("base") or m), []).append(m)
        seed = lambda m: self.model_meta[m].get("seed") or 0
        return OrderedDict((b, sorted(ms, key=seed)) for b, ms in groups.items())

    def seed_table(self, title: str, columns: Sequence[Tuple[str, object]],
                   values: Dict[str, Dict[object, float]], training: bool) -> Optional[Table]:
        """Mean over seeds with every seed's value beside it; None unless a model has 2+ seeds."""
        groups = self.seed_groups(values)
        if not any(len(ms) > 1 for ms in groups.values()):
            return None
        seeds = max(len(ms) for ms in groups.values())
        rows = []
        for base, ms in groups.items():
            cells = [_seed_cell([values[m].get(k) for m in ms]) for _, k in columns]
            lead = [base, training_description(self.model_meta[ms[0]], self.audio_only(ms[0]))] if training else [base]
            rows.append(lead + [str(len(ms))] + cells)
        header = (["model", "training"] if training else ["model"]) + ["seeds"] + [c for c, _ in columns]
        return Table(title=title, header=header, rows=rows,
                     note=f"Each cell: the mean over the model's seeds, then each seed's value in seed order "
                          f"(up to {seeds}; `-` = that seed not decoded). Training settings are the first seed's.")

    def build(self) -> Report:
        from espnet_avsr.eval import plots

        rep = self.report
        pd = self.plots_dir
        for ts, pattern, fill in self.missing_groups():
            t = self.missing_table(ts, pattern, fill)
            rep.tables[f"missing/{ts}/{pattern}/{fill}"] = t
            rates, values = self.missing_values(ts, pattern, fill)
            st = self.seed_table(f"Over seeds: {t.title}", [(fmt_rate(r), r) for r in rates], values, True)
            if st is not None:
                rep.tables[f"seeds/missing/{ts}/{pattern}/{fill}"] = st
            series, hlines = OrderedDict(), OrderedDict()
            for model, row in values.items():
                if self.audio_only(model) and len({round(v, 6) for v in row.values()}) <= 1 and row:
                    hlines[model] = next(iter(row.values()))
                else:
                    series[model] = (rates, [row.get(r) for r in rates])
            if pd is not None and (series or hlines):
                self._plot(f"cer_vs_missing_{ts}_{pattern}_{fill}", plots.line_plot, series, pd / f"cer_vs_missing_{_safe(ts)}_{pattern}_{fill}.png",
                           xlabel="fraction of missing video frames (test)", ylabel="CER (%)", title=f"{ts} ({pattern}, {fill})",
                           hlines=hlines, xticks=rates)
        cols, cells = self.noise_columns(), self._noise_values()
        nt = self.noise_table(cols, cells)
        if nt is not None:
            rep.tables["noise"] = nt
            st = self.seed_table(f"Over seeds: {nt.title}", cols, cells, False)
            if st is not None:
                rep.tables["seeds/noise"] = st
            snr_series = OrderedDict()
            for m in self.sorted_models(cells):
                pts = sorted({k[2]: v for k, v in cells[m].items() if k[0] == "noisy"}.items())
                if pts:
                    snr_series[m] = ([p[0] for p in pts], [p[1] for p in pts])
            if pd is not None and snr_series:
                self._plot("cer_vs_snr", plots.line_plot, snr_series, pd / "cer_vs_snr.png", xlabel="SNR (dB)", ylabel="CER (%)",
                           title="zero-shot noise, complete video")
        self._dropout_study(plots)
        return rep

    def _dropout_study(self, plots) -> None:
        rep, pd = self.report, self.plots_dir
        models = self.dropout_models()
        a0, av0 = self.baselines()
        if models:
            groups = [g for g in self.missing_groups() if any(
                r.model in models and r.test_set == g[0] and (r.pattern, r.fill) == g[1:] for r in self.cer.values())]
            for ts, pattern, fill in groups:
                rates, values = self.missing_values(ts, pattern, fill)
                header = ["train dropout", "model"] + [fmt_rate(r) for r in rates]
                rows = []
                if a0 in values and values[a0]:
                    rows.append(["audio only", a0] + [fmt(values[a0].get(r)) for r in rates])
                if av0 in values:
                    rows.append(["0", av0] + [fmt(values[av0].get(r)) for r in rates])
                for m, label in zip(models, rate_labels([(self.dropout_of(m), m) for m in models])):
                    if m in values:
                        rows.append([label, m] + [fmt(values[m].get(r)) for r in rates])
                rep.tables[f"dropout/{ts}/{pattern}/{fill}"] = Table(
                    title=f"Dropout study, CER (%) vs test missing rate: {ts} ({pattern}, {fill})", header=header, rows=rows)
                if pd is not None:
                    series, hlines, seeds = self.dropout_curves(rates, values)
                    self._plot(f"dropout_cer_vs_missing_{ts}_{pattern}_{fill}", plots.line_plot, series,
                               pd / f"dropout_cer_vs_missing_{_safe(ts)}_{pattern}_{fill}.png",
                               xlabel="fraction of missing video frames (test)", ylabel="CER (%)",
                               title=f"training dropout rates, {ts}" + (f" (mean of {seeds} seeds)" if seeds > 1 else ""),
                               hlines=hlines, xticks=rates)
        for ts in self.relative_test_sets():
            rep.tables[f"relative_cer/{ts}"] = self.relative_table(ts)
            bars, seeds = self.relative_bars(ts)
            if pd is not None:
                self._plot(f"relative_cer_vs_dropout_{ts}", plots.grouped_bars, bars,
                           pd / f"relative_cer_vs_dropout_{_safe(ts)}.png",
                           ylabel="relative CER (%)", xlabel="training dropout rate (bars)",
                           title=f"AVSR vs ASR hypotheses, {ts}" + (f" (mean of {seeds} seeds)" if seeds > 1 else ""))
        st = self.similarity_table()
        if st is not None:
            rep.tables["similarity"] = st
            mats = self.similarity_panels()
            if pd is not None and mats:
                self._plot("similarity_vs_dropout", plots.heatmap_grid, mats, pd / "similarity_vs_dropout.png",
                           title="cos(ASR, AVSR) per training dropout rate")


def _as_float(v) -> Optional[float]:
    try:
        return None if v is None or isinstance(v, bool) else float(v)
    except (TypeError, ValueError):
        return None


def _seed_cell(vals: Sequence[Optional[float]]) -> str:
    """'mean (s0 / s1 ...)' over the decoded seeds; a single seed is just its value."""
    got = [v for v in vals if v is not None]
    if not got:
        return MISSING
    if len(vals) == 1:
        return fmt(got[0])
    return f"{fmt(float(np.mean(got)))} ({' / '.join(fmt(v) for v in vals)})"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def render_markdown(rep: Report, exp: PathLike, out_md: Path) -> str:
    lines = [
        "# Results",
        "",
        f"Generated by `python -m espnet_avsr.bin.make_report` from `{exp}`. CER in %; `-` = not decoded yet.",
        "",
    ]
    sections = [
        ("## Over seeds", "seeds/"),
        ("## Missing video frames", "missing/"),
        ("## Noise robustness", "noise"),
        ("## Dropout study", "dropout/"),
        ("## Modality bias: relative CER", "relative_cer"),
        ("## Modality bias: representation similarity", "similarity"),
    ]
    for heading, prefix in sections:
        keys = [k for k in rep.tables if k.startswith(prefix)]
        if not keys:
            continue
        lines += [heading, ""]
        for k in keys:
            lines.append(rep.tables[k].markdown())
    if rep.plots:
        lines += ["## Figures", ""]
        for name, path in rep.plots.items():
            rel = os.path.relpath(path, out_md.parent)
            lines.append(f"![{name}]({rel})")
            lines.append("")
    if rep.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in rep.notes] + [""]
    if not rep.tables:
        lines += ["No result.json found yet.", ""]
    return "\n".join(lines)


def make_report(exp: PathLike, out_md: PathLike, plots_dir: Optional[PathLike] = None) -> Report:
    """Scan ``exp`` and write ``out_md`` (+ PNGs under ``plots_dir``); returns the report."""
    builder = ReportBuilder(exp, plots_dir)
    rep = builder.build()
    out_md = Path(out_md)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    rep.markdown = render_markdown(rep, exp, out_md)
    from espnet_avsr.common.fileio import atomic_write_text

    atomic_write_text(out_md, rep.markdown)
    if plots_dir is not None:
        _forget_old_plots(Path(plots_dir), rep.plots.values())
    log.info("wrote %s: %d tables, %d figures, %d notes", out_md, len(rep.tables), len(rep.plots), len(rep.notes))
    return rep


PLOTS_MANIFEST = ".report_plots"


def _forget_old_plots(plots_dir: Path, written) -> None:
    """Delete the figures an earlier report wrote and this one did not (a renamed or no longer
    drawn figure would otherwise sit in plots/ looking current). Only files listed in the
    folder's manifest of report-written figures are touched; the manifest then lists this run's."""
    from espnet_avsr.common.fileio import atomic_write_text

    manifest = plots_dir / PLOTS_MANIFEST
    now = sorted({Path(p).name for p in written})
    if manifest.is_file():
        for name in manifest.read_text(encoding="utf-8").split():
            if name not in now and "/" not in name and name.endswith(".png"):
                (plots_dir / name).unlink(missing_ok=True)
    if plots_dir.is_dir():
        atomic_write_text(manifest, "".join(f"{n}\n" for n in now))
