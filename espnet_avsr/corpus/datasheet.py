"""The corpus datasheet: what a synthetic corpus is made of, measured from its files.

Reads the generator's per-session alignment files (``alignment/<split>/<session>.json``:
every event's kind, times, text, per-character visemes and the per-utterance SNR at
each array) and its options. It answers the calibration questions of SPEC.md section
4: how loud is the target against everything else at the far array, how much speech
overlaps, how many speakers each split has, and how much the mouths alone tell.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List

import numpy as np

from espnet_avsr.common.naming import SPLITS

#: Events that put a voice on the audio (a cough is a sound too, but not a talker).
VOICED = ("speech", "filler", "deaf")
PERCENTILES = (5, 25, 50, 75, 95)


class DatasheetError(ValueError):
    """The folder is not a corpus written by the generator."""


def _sessions(root: Path, split: str) -> List[Dict]:
    files = sorted((root / "alignment" / split).glob("*.json"))
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def _overlaps(session: Dict) -> List[bool]:
    """For each speech utterance of the session: does another talker's voice overlap it?"""
    spans = [(spk, e["start"], e["end"], e["kind"]) for spk, evs in session["speakers"].items()
             for e in evs]
    out = []
    for spk, a, b, kind in spans:
        if kind != "speech":
            continue
        out.append(any(o != spk and k in VOICED and s < b and e > a for o, s, e, k in spans))
    return out


def _unique_mouth_share(texts: Dict[str, str]) -> float:
    """Share of distinct sentences whose mouth-shape (viseme) sequence no other has."""
    by_shape = Counter(texts.values())
    return sum(by_shape[v] == 1 for v in texts.values()) / max(1, len(texts))


def make_datasheet(root: Path) -> Dict:
    """Measure the corpus under ``root``; raise :class:`DatasheetError` if it has no alignments."""
    root = Path(root)
    if not (root / "alignment").is_dir():
        raise DatasheetError(f"{root}: no alignment/ folder; the datasheet reads what the synthetic "
                             "corpus generator writes (make_mini_misp), not a MISP release")
    options_file = root / ".mini_misp" / "options.json"
    options = json.loads(options_file.read_text(encoding="utf-8")) if options_file.is_file() else {}
    sheet: Dict = {"corpus": str(root), "options": options, "splits": {}}
    all_texts: Dict[str, str] = {}
    speakers_of: Dict[str, set] = {}
    for split in SPLITS:
        sessions = _sessions(root, split)
        if not sessions:
            continue
        snr = defaultdict(list)
        spk, chars, utts, speech_s, overlap = set(), 0, 0, 0.0, []
        texts: Dict[str, str] = {}
        for s in sessions:
            overlap += _overlaps(s)
            for sp, evs in s["speakers"].items():
                spk.add(sp)
                for e in evs:
                    if e["kind"] != "speech":
                        continue
                    utts += 1
                    speech_s += e["end"] - e["start"]
                    chars += sum(1 for c in e["chars"] if c[1])
                    for arr, v in (e.get("snr_db") or {}).items():
                        snr[arr].append(v)
                    text = "".join(c[0] for c in e["chars"] if c[1])
                    texts[text] = " ".join(c[4] for c in e["chars"] if c[1])
        all_texts.update(texts)
        speakers_of[split] = spk
        sheet["splits"][split] = {
            "sessions": len(sessions),
            "hours": round(sum(s["duration"] for s in sessions) / 3600, 4),
            "speech_hours": round(speech_s / 3600, 4),
            "speakers": len(spk),
            "utterances": utts,
            "characters": chars,
            "overlap_ratio": round(float(np.mean(overlap)) if overlap else 0.0, 4),
            "snr_db": {arr: dict(zip((f"p{p}" for p in PERCENTILES),
                                     (round(float(x), 2) for x in np.percentile(v, PERCENTILES))))
                       for arr, v in sorted(snr.items()) if v},
            "distinct_sentences": len(texts),
            "unique_mouth_share": round(_unique_mouth_share(texts), 4),
        }
    if not sheet["splits"]:
        raise DatasheetError(f"{root}/alignment holds no session files")
    sheet["distinct_sentences"] = len(all_texts)
    sheet["unique_mouth_share"] = round(_unique_mouth_share(all_texts), 4)
    sheet["eval_speakers_unseen"] = not speakers_of.get("eval", set()) & speakers_of.get("train", set())
    return sheet


def format_datasheet(sheet: Dict) -> str:
    """Markdown tables of the datasheet (what RESULTS.md quotes)."""
    lines = [f"Corpus datasheet: `{sheet['corpus']}`", "",
             "| split | sessions | hours | speech h | speakers | utts | chars | overlap | "
             "far SNR p5/p50/p95 (dB) | middle SNR p50 | near SNR p50 | distinct sentences | unique mouth seq. |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for split, v in sheet["splits"].items():
        far = v["snr_db"].get("far", {})
        mid = v["snr_db"].get("middle", {})
        far_s = "/".join(f"{far[k]:.1f}" for k in ("p5", "p50", "p95")) if far else "-"
        mid_s = f"{mid['p50']:.1f}" if mid else "-"
        near = v["snr_db"].get("near", {})
        near_s = f"{near['p50']:.1f}" if near else "-"
        lines.append(f"| {split} | {v['sessions']} | {v['hours']:.3f} | {v['speech_hours']:.3f} | "
                     f"{v['speakers']} | {v['utterances']} | {v['characters']} | "
                     f"{100 * v['overlap_ratio']:.1f} % | {far_s} | {mid_s} | {near_s} | "
                     f"{v['distinct_sentences']} | {100 * v['unique_mouth_share']:.1f} % |")
    lines += ["", f"All splits: {sheet['distinct_sentences']} distinct sentences, "
              f"{100 * sheet['unique_mouth_share']:.1f} % with a mouth-shape sequence no other has; "
              f"eval speakers unseen in training: {'yes' if sheet['eval_speakers_unseen'] else 'NO'}."]
    o = sheet.get("options", {}).get("options")
    if o:
        keys = ("snr_db", "target_snr_db", "rt60", "overlap_prob", "babble_talkers", "heldout_babble",
                "far_size", "far_face_scale", "far_downscale", "far_blur", "far_noise", "far_jpeg_quality", "articulation",
                "head_motion", "light_flicker", "occlusion_rate", "missing_detection_rate", "sentence_pool")
        lines.append("Generation options: " + ", ".join(f"{k}={o[k]}" for k in keys if k in o))
    return "\n".join(lines)
