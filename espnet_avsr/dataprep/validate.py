"""Check (and repair) a Kaldi data dir before later stages trust it.

Checks: C-locale sorting, duplicate keys, the same utterances in text/utt2spk/
segments, segments pointing at known recordings with 0 <= start < end, spk2utt
matching utt2spk, optional per-utterance files being subsets, referenced files
existing. `fix_dir` sorts, deduplicates, drops inconsistent utterances (each
one reported with its reason) and regenerates spk2utt.
"""
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Union

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import (
    ALL_FILES,
    REC_FILES,
    UTT_FILES,
    VIDEO_FILES,
    c_sort_key,
    read_pairs,
    split_paths,
    subset_dir,
    utt2spk_to_spk2utt,
    write_kv,
)

PathLike = Union[str, Path]
REQUIRED = ("text", "utt2spk", "wav.scp")
# Per-file columns that name files on disk (index in the whitespace-split value).
PATH_FILES = ("wav.scp", "channels.scp", "video.scp", "detection.scp", "roi.scp")


def _paths_in(name: str, value: str) -> List[str]:
    """File paths named by a value (none for piped commands or ark offsets)."""
    value = value.strip()
    if not value or value.endswith("|"):
        return []
    if name == "channels.scp":
        return split_paths(value)
    return [value.split(":")[0] if value.count(":") == 1 and value.split(":")[1].isdigit() else value]


def validate_dir(data_dir: PathLike, check_files: bool = True) -> List[str]:
    """Return a list of human-readable problems (empty = valid)."""
    d = Path(data_dir)
    if not d.is_dir():
        return [f"{d}: data directory not found"]
    problems: List[str] = []
    files: Dict[str, "OrderedDict[str, str]"] = {}
    for name in REQUIRED + ("spk2utt",):
        if not (d / name).is_file():
            problems.append(f"{d / name}: required file missing")
    for name in ALL_FILES:
        p = d / name
        if not p.is_file():
            continue
        try:
            pairs = read_pairs(p)
        except DataPrepError as e:
            problems.append(str(e))
            continue
        keys = [k for k, _ in pairs]
        for a, b in zip(keys, keys[1:]):
            if c_sort_key(a) > c_sort_key(b):
                problems.append(f"{p}: not sorted (LC_ALL=C): {a!r} comes before {b!r}")
                break
        kv: "OrderedDict[str, str]" = OrderedDict()
        for k, v in pairs:
            if k in kv:
                problems.append(f"{p}: duplicate key {k!r}")
            kv[k] = v
        files[name] = kv

    text, utt2spk = files.get("text"), files.get("utt2spk")
    if text is not None and utt2spk is not None:
        problems += _compare_keys(d, "text", text, "utt2spk", utt2spk)
        for u, t in text.items():
            if not t.strip():
                problems.append(f"{d / 'text'}: utterance {u!r} has empty text")
    utts = set(text or utt2spk or {})
    if "segments" in files:
        seg = files["segments"]
        problems += _compare_keys(d, "text" if text is not None else "utt2spk", text or utt2spk or {}, "segments", seg)
        recs = files.get("wav.scp", {})
        for u, v in seg.items():
            problems += [f"{d / 'segments'}: {m}" for m in _segment_problems(u, v, recs)]
    elif "wav.scp" in files and utts:
        problems += _compare_keys(d, "text" if text is not None else "utt2spk", text or utt2spk or {}, "wav.scp", files["wav.scp"])
    if utt2spk is not None and "spk2utt" in files:
        expected = utt2spk_to_spk2utt(utt2spk)
        got = OrderedDict((s, " ".join(sorted(v.split(), key=c_sort_key))) for s, v in files["spk2utt"].items())
        if dict(got) != dict(expected):
            problems.append(f"{d / 'spk2utt'}: does not match utt2spk (regenerate it with --fix)")
    for name in UTT_FILES:
        if name in ("text", "utt2spk", "segments") or name not in files:
            continue
        extra = [u for u in files[name] if u not in utts]
        if extra:
            problems.append(f"{d / name}: {len(extra)} utterances not in text, e.g. {extra[0]!r}")
    if "utt2video" in files:
        vids = files.get("video.scp", {})
        for u, v in files["utt2video"].items():
            fields = v.split()
            if len(fields) != 2:
                problems.append(f"{d / 'utt2video'}: {u!r}: expected 'video_id speaker', got {v!r}")
            elif fields[0] not in vids:
                problems.append(f"{d / 'utt2video'}: {u!r}: video {fields[0]!r} not in video.scp")
    if check_files:
        for name in PATH_FILES:
            for k, v in files.get(name, {}).items():
                for path in _paths_in(name, v):
                    if not Path(path).exists():
                        problems.append(f"{d / name}: {k!r}: file not found: {path}")
    return problems


def _compare_keys(d: Path, na: str, a, nb: str, b) -> List[str]:
    only_a = [k for k in a if k not in b]
    only_b = [k for k in b if k not in a]
    out = []
    if only_a:
        out.append(f"{d}: {len(only_a)} utterances in {na} but not in {nb}, e.g. {only_a[0]!r}")
    if only_b:
        out.append(f"{d}: {len(only_b)} utterances in {nb} but not in {na}, e.g. {only_b[0]!r}")
    return out


def _segment_problems(utt: str, value: str, recs) -> List[str]:
    fields = value.split()
    if len(fields) != 3:
        return [f"{utt!r}: expected 'rec start end', got {value!r}"]
    try:
        start, end = float(fields[1]), float(fields[2])
    except ValueError:
        return [f"{utt!r}: start/end are not numbers: {value!r}"]
    out = []
    if not (0 <= start < end):
        out.append(f"{utt!r}: need 0 <= start < end, got {start} {end}")
    if fields[0] not in recs:
        out.append(f"{utt!r}: recording {fields[0]!r} not in wav.scp")
    return out


def fix_dir(data_dir: PathLike, check_files: bool = True) -> Dict[str, str]:
    """Repair in place; returns `{dropped utterance: reason}` (each also logged)."""
    d = Path(data_dir)
    files: Dict[str, "OrderedDict[str, str]"] = {}
    for name in ALL_FILES:
        if name == "spk2utt" or not (d / name).is_file():
            continue
        kv: "OrderedDict[str, str]" = OrderedDict()
        for k, v in read_pairs(d / name):
            if k in kv:
                logging.warning("%s: dropping duplicate line for key %r", d / name, k)
                continue
            kv[k] = v
        files[name] = kv
    for name in ("text", "utt2spk"):
        if name not in files:
            raise DataPrepError(d / name, "required file missing; cannot fix")
    dropped: Dict[str, str] = {}
    required = ["text", "utt2spk"] + (["segments"] if "segments" in files else ["wav.scp"])
    all_utts = set().union(*(files[n].keys() for n in required))
    for u in sorted(all_utts, key=c_sort_key):
        missing = [n for n in required if u not in files[n]]
        if missing:
            dropped[u] = f"missing from {', '.join(missing)}"
    recs = files.get("wav.scp", {})
    for u, t in files["text"].items():
        if u not in dropped and not t.strip():
            dropped[u] = "empty text"
    if "segments" in files:
        for u, v in files["segments"].items():
            if u not in dropped:
                probs = _segment_problems(u, v, recs)
                if probs:
                    dropped[u] = probs[0]
    if check_files:
        bad_recs = {
            r for r, v in recs.items() if any(not Path(p).exists() for p in _paths_in("wav.scp", v))
        }
        for u in files["text"]:
            if u in dropped:
                continue
            rec = files["segments"][u].split()[0] if "segments" in files else u
            if rec in bad_recs:
                dropped[u] = f"audio file not found: {recs[rec]}"
    for u, why in dropped.items():
        logging.warning("%s: dropping utterance %s: %s", d, u, why)
    keep = [u for u in files["text"] if u not in dropped]
    fixed = subset_dir(files, keep)
    for name in REC_FILES + VIDEO_FILES:
        if name in files:
            gone = set(files[name]) - set(fixed.get(name, {}))
            if gone:
                logging.info("%s: dropping %d unreferenced entries of %s", d, len(gone), name)
    for name, kv in fixed.items():
        write_kv(d / name, kv)
    logging.info("%s: fixed; %d utterances kept, %d dropped", d, len(keep), len(dropped))
    return dropped
