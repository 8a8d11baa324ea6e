"""Kaldi data directory files: reading, C-locale sorted writing, merging.

A data dir is a folder of `key value...` text files. Which key each file uses
(utterance, recording, video, speaker) is recorded here once, so the validator,
the splitter and the merger agree on it.
"""
import json
import logging
import shlex
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple, Union

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.fileio import atomic_write_text

PathLike = Union[str, Path]

# Files keyed by utterance id (besides wav.scp when there is no `segments`).
UTT_FILES = (
    "text",
    "utt2spk",
    "segments",
    "utt2video",
    "utt2num_samples",
    "utt2dur",
    "utt2speed",
    "roi.scp",
    "roi_detect_ratio",
)
# Files keyed by recording id when `segments` exists.
REC_FILES = ("wav.scp", "channels.scp", "reco2dur")
# Files keyed by video id.
VIDEO_FILES = ("video.scp", "detection.scp")
SPK_FILES = ("spk2utt",)
ALL_FILES = UTT_FILES + REC_FILES + VIDEO_FILES + SPK_FILES


def c_sort_key(key: str) -> bytes:
    """Sort key equal to `LC_ALL=C sort` on the key (byte order of UTF-8)."""
    return key.encode("utf-8")


def join_paths(paths: Sequence[PathLike]) -> str:
    """A `channels.scp` value: paths separated by spaces, shell-quoted when they hold spaces."""
    return " ".join(shlex.quote(str(p)) for p in paths)


def split_paths(value: str) -> List[str]:
    """Inverse of `join_paths` (plain space-separated values read as before)."""
    if "'" in value or '"' in value:
        try:
            return shlex.split(value)
        except ValueError as e:
            raise DataPrepError(None, f"cannot split the path list {value!r} ({e})") from None
    return value.split()


def read_pairs(path: PathLike) -> List[Tuple[str, str]]:
    """Read `key rest-of-line` pairs in file order (duplicates kept, blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataPrepError(path, "file not found")
    pairs = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataPrepError(
                    path, f"line {lineno} is not UTF-8 (byte {raw[e.start:e.start + 1]!r} at column {e.start}); "
                    "re-encode the file as UTF-8"
                ) from None
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            key = parts[0]
            if line[0].isspace():
                raise DataPrepError(path, f"line {lineno} starts with whitespace: {line!r}")
            pairs.append((key, parts[1].strip() if len(parts) > 1 else ""))
    return pairs


def read_kv(path: PathLike) -> "OrderedDict[str, str]":
    """Read a key-value file; a duplicate key is an error naming the file."""
    out: "OrderedDict[str, str]" = OrderedDict()
    for key, value in read_pairs(path):
        if key in out:
            raise DataPrepError(path, f"duplicate key {key!r}")
        out[key] = value
    return out


def write_kv(path: PathLike, items: Union[Mapping[str, str], Iterable[Tuple[str, str]]]) -> None:
    """Write `key value` lines sorted in C byte order (atomic)."""
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    pairs.sort(key=lambda kv: c_sort_key(kv[0]))
    text = "".join(f"{k} {v}\n" if v != "" else f"{k}\n" for k, v in pairs)
    atomic_write_text(path, text)


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> "OrderedDict[str, str]":
    """Invert utt2spk; utterances listed in C order within each speaker."""
    spk2utts: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk, key=c_sort_key):
        spk2utts.setdefault(utt2spk[utt], []).append(utt)
    return OrderedDict((s, " ".join(u)) for s, u in sorted(spk2utts.items(), key=lambda x: c_sort_key(x[0])))


def parse_segments(segments: Mapping[str, str], path: PathLike = "segments") -> Dict[str, Tuple[str, float, float]]:
    """`utt -> (rec, start, end)`; malformed lines are an error naming the file."""
    out = {}
    for utt, rest in segments.items():
        fields = rest.split()
        if len(fields) != 3:
            raise DataPrepError(path, f"utterance {utt!r}: expected 'rec start end', got {rest!r}")
        try:
            out[utt] = (fields[0], float(fields[1]), float(fields[2]))
        except ValueError:
            raise DataPrepError(path, f"utterance {utt!r}: start/end are not numbers: {rest!r}") from None
    return out


def load_dir(data_dir: PathLike) -> Dict[str, "OrderedDict[str, str]"]:
    """Read every known file present in a data dir: `{filename: {key: value}}`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataPrepError(data_dir, "data directory not found")
    return {name: read_kv(data_dir / name) for name in ALL_FILES if (data_dir / name).is_file()}


def save_dir(data_dir: PathLike, files: Mapping[str, Mapping[str, str]], regen_spk2utt: bool = True) -> None:
    """Write files (sorted); spk2utt is rebuilt from utt2spk unless told otherwise."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, kv in files.items():
        if name == "spk2utt" and regen_spk2utt:
            continue
        write_kv(data_dir / name, kv)
    if regen_spk2utt and "utt2spk" in files:
        write_kv(data_dir / "spk2utt", utt2spk_to_spk2utt(files["utt2spk"]))


def utt_keyed_wav(files: Mapping[str, Mapping[str, str]]) -> bool:
    """True when wav.scp is keyed by utterance (no segments file)."""
    return "segments" not in files


def subset_dir(
    files: Mapping[str, Mapping[str, str]], utts: Iterable[str]
) -> Dict[str, "OrderedDict[str, str]"]:
    """Restrict every file to the given utterances and the recordings/videos they use."""
    keep = set(utts)
    out: Dict[str, "OrderedDict[str, str]"] = {}
    for name in UTT_FILES:
        if name in files:
            out[name] = OrderedDict((k, v) for k, v in files[name].items() if k in keep)
    if "segments" in files:
        recs = {out["segments"][u].split()[0] for u in out["segments"]}
    else:
        recs = keep
    for name in REC_FILES:
        if name in files:
            out[name] = OrderedDict((k, v) for k, v in files[name].items() if k in recs)
    if "utt2video" in files:
        vids = {out["utt2video"][u].split()[0] for u in out["utt2video"]}
        for name in VIDEO_FILES:
            if name in files:
                out[name] = OrderedDict((k, v) for k, v in files[name].items() if k in vids)
    else:
        for name in VIDEO_FILES:
            if name in files:
                out[name] = OrderedDict(files[name])
    if "utt2spk" in out:
        out["spk2utt"] = utt2spk_to_spk2utt(out["utt2spk"])
    return out


def copy_dir_files(src: PathLike, dst: PathLike, skip: Sequence[str] = ()) -> None:
    """Copy the known Kaldi files (and reports) from src to dst, except `skip`."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in ALL_FILES:
        if name not in skip and (src / name).is_file():
            shutil.copyfile(src / name, dst / name)


def merge_dirs(parts: Sequence[PathLike], out: PathLike) -> Dict[str, int]:
    """Concatenate same-named key-value files of several dirs into `out`, sorted.

    This is the inverse of `split_data_dir`, used after parallel jobs. Identical
    duplicate lines (e.g. a recording shared by two parts) are merged; conflicting
    values for one key are an error. Also merges `*.scp`/`roi_detect_ratio`-like
    files that are not in the known list, and sums counts in `*report.json`.
    Returns `{filename: number of lines}`.
    """
    parts = [Path(p) for p in parts]
    names = set()
    for p in parts:
        if not p.is_dir():
            raise DataPrepError(p, "part directory not found")
        for f in p.iterdir():
            if f.is_file() and not f.name.startswith(".") and f.suffix != ".json":
                names.add(f.name)
    counts = {}
    merged_files: Dict[str, Dict[str, str]] = {}
    for name in sorted(names):
        merged: Dict[str, str] = {}
        for p in parts:
            if not (p / name).is_file():
                continue
            for key, value in read_pairs(p / name):
                if key in merged and merged[key] != value:
                    if name == "spk2utt":
                        merged[key] = merged[key] + " " + value
                        continue
                    raise DataPrepError(p / name, f"key {key!r} has conflicting values across parts")
                merged[key] = value
        merged_files[name] = merged
    if "utt2spk" in merged_files:
        merged_files["spk2utt"] = utt2spk_to_spk2utt(merged_files["utt2spk"])
    for name, kv in merged_files.items():
        write_kv(Path(out) / name, kv)
        counts[name] = len(kv)
    _merge_reports(parts, Path(out))
    logging.info("merged %d parts into %s: %s", len(parts), out, counts)
    return counts


def _merge_reports(parts: Sequence[Path], out: Path) -> None:
    """Sum the `counts` of same-named JSON reports; concatenate their item lists."""
    names = {f.name for p in parts for f in p.glob("*.json")}
    for name in names:
        total: dict = {}
        for p in parts:
            if not (p / name).is_file():
                continue
            rep = json.loads((p / name).read_text(encoding="utf-8"))
            for k, v in rep.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    total[k] = total.get(k, 0) + v
                elif isinstance(v, dict) and all(isinstance(x, (int, float)) for x in v.values()):
                    d = total.setdefault(k, {})
                    for kk, vv in v.items():
                        d[kk] = d.get(kk, 0) + vv
                elif isinstance(v, dict):
                    total.setdefault(k, {}).update(v)
                elif isinstance(v, list):
                    total.setdefault(k, []).extend(v)
                else:
                    total.setdefault(k, v)
        (out / name).write_text(json.dumps(total, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
