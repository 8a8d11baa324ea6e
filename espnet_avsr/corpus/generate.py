"""Generate a whole synthetic MISP-format corpus in parallel, resumably.

State lives in ``<out>/.mini_misp/``: ``options.json`` (what the corpus is made
with; a re-run with other options into the same folder is refused), one
``done/<session>.json`` per finished session (its statistics), and ``complete``
once the summary is written. A re-run into a complete folder is a no-op; a run
that was killed redoes only the sessions without a done marker.
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional

from espnet_avsr.common.naming import SPLITS
from espnet_avsr.corpus.plan import CorpusConfig, CorpusError, make_plan
from espnet_avsr.corpus.session import SessionSpec, generate_session
from espnet_avsr.corpus.speech import SyllableSynth, check_espeak
from espnet_avsr.corpus.writers import write_json

log = logging.getLogger(__name__)
STATE_DIR = ".mini_misp"

_SYNTH: Optional[SyllableSynth] = None


def _init_worker(cache_dir: str, single_thread: bool) -> None:
    global _SYNTH
    if single_thread:
        import cv2

        cv2.setNumThreads(1)
    _SYNTH = SyllableSynth(cache_dir=Path(cache_dir))


def _run_session(args) -> Dict:
    spec, root = args
    assert _SYNTH is not None
    try:
        stats = generate_session(spec, root, _SYNTH)
    except Exception as e:  # re-raised in the parent with the session named
        raise RuntimeError(f"session {spec.session_id} ({spec.split}) failed: {type(e).__name__}: {e}") from None
    write_json(Path(root) / STATE_DIR / "done" / f"{spec.session_id}.json", stats)
    return stats


def _check_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / STATE_DIR / "done").mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out / STATE_DIR)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CorpusError(f"output directory {out} is not writable: {e.strerror or e}") from None


def _check_options(out: Path, cfg: CorpusConfig) -> None:
    """Refuse to mix corpora made with different options in one folder."""
    path = out / STATE_DIR / "options.json"
    want = json.loads(json.dumps(cfg.to_dict()))
    if path.is_file():
        have = json.loads(path.read_text(encoding="utf-8"))
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise CorpusError(f"{out} holds a corpus made with other options ({', '.join(diff)}); "
                              "use a fresh --out or the same options")
    else:
        write_json(path, want)


def summarize(stats: List[Dict], cfg: CorpusConfig) -> Dict:
    """Hours, sessions, utterances and speakers per split."""
    splits: Dict[str, Dict] = OrderedDict()
    for split in SPLITS:
        rows = [s for s in stats if s["split"] == split]
        spk = sorted({x for s in rows for x in s["speakers"]})
        splits[split] = {
            "sessions": len(rows),
            "hours": round(sum(s["duration"] for s in rows) / 3600, 4),
            "speech_hours": round(sum(s["speech_seconds"] for s in rows) / 3600, 4),
            "utterances": sum(s["utterances"] for s in rows),
            "characters": sum(s["characters"] for s in rows),
            "n_speakers": len(spk),
            "speakers": spk,
            "fields": ["far"] if split == "eval" else ["far", "middle", "near"],
            "far_snr_db": [min((s["far_snr_db"] for s in rows), default=None),
                           max((s["far_snr_db"] for s in rows), default=None)],
            "missing_detection_share": round(
                sum(s["missing_detection_share"] for s in rows) / max(1, len(rows)), 4),
        }
    return {
        "seed": cfg.seed,
        "hours_requested": cfg.hours,
        "hours": round(sum(v["hours"] for v in splits.values()), 4),
        "utterances": sum(v["utterances"] for v in splits.values()),
        "splits": splits,
        "sessions": sorted((s["session"], s["split"]) for s in stats),
        "config": cfg.to_dict(),
    }


def format_summary(summary: Dict) -> str:
    """A short human-readable table of the summary."""
    lines = [f"mini-MISP corpus (seed {summary['seed']}): {summary['hours']:.3f} h, "
             f"{summary['utterances']} utterances",
             f"{'split':6s} {'sessions':>8s} {'hours':>8s} {'speech_h':>8s} {'utts':>6s} "
             f"{'chars':>7s} {'spk':>4s}  fields"]
    for split, v in summary["splits"].items():
        lines.append(f"{split:6s} {v['sessions']:8d} {v['hours']:8.3f} {v['speech_hours']:8.3f} "
                     f"{v['utterances']:6d} {v['characters']:7d} {v['n_speakers']:4d}  "
                     f"{'/'.join(v['fields'])}")
    return "\n".join(lines)


def make_corpus(out: Path, cfg: CorpusConfig, nj: int = 1, progress: bool = True,
                tts_cache: Optional[Path] = None) -> Dict:
    """Generate (or finish) the corpus under ``out``; return the summary dict.

    ``tts_cache`` keeps synthesised syllables between runs (by default they live in
    the state folder and are deleted when the corpus is complete).
    """
    out = Path(out)
    cfg.validate()
    if nj < 1:
        raise CorpusError(f"--nj must be >= 1, got {nj}")
    check_espeak()
    _check_out_dir(out)
    _check_options(out, cfg)
    state = out / STATE_DIR
    if (state / "complete").is_file() and (out / "summary.json").is_file():
        log.info("%s is already complete; nothing to do", out)
        return json.loads((out / "summary.json").read_text(encoding="utf-8"))

    specs = make_plan(cfg)
    todo = [s for s in specs if not (state / "done" / f"{s.session_id}.json").is_file()]
    log.info("%d sessions planned, %d to generate, %d jobs", len(specs), len(todo), nj)
    cache = Path(tts_cache) if tts_cache else state / "tts_cache"
    t0 = time.time()
    jobs = [(s, str(out)) for s in sorted(todo, key=lambda s: -s.duration)]
    try:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="session", disable=not progress, dynamic_ncols=True)
        if nj == 1 or len(jobs) <= 1:
            _init_worker(str(cache), False)
            for j in jobs:
                _run_session(j)
                bar.update()
        else:
            # forkserver: forking a parent that already runs OpenCV/BLAS threads can deadlock
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["espnet_avsr.corpus.session"])
            with ctx.Pool(min(nj, len(jobs)), initializer=_init_worker,
                          initargs=(str(cache), True)) as pool:
                for _ in pool.imap_unordered(_run_session, jobs):
                    bar.update()
        bar.close()
    except RuntimeError as e:
        raise CorpusError(str(e)) from None
    log.info("generated %d sessions in %.1f s", len(jobs), time.time() - t0)

    stats = [json.loads((state / "done" / f"{s.session_id}.json").read_text(encoding="utf-8"))
             for s in specs]
    summary = summarize(stats, cfg)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    (out / "summary.txt").write_text(format_summary(summary) + "\n", encoding="utf-8")
    if not tts_cache:
        shutil.rmtree(cache, ignore_errors=True)
    (state / "complete").write_text("ok\n", encoding="utf-8")
    return summary
