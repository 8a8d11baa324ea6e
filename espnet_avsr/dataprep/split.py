"""Split a data dir into N parts by session, for `--nj` parallel jobs.

All utterances of one session (its recordings and videos) land in the same part,
so every MP4 is decoded and every array recording enhanced exactly once. Parts
are balanced greedily by total duration (or utterance count without segments).
"""
import logging
from pathlib import Path
from typing import Dict, List, Union

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.kaldi_dir import c_sort_key, load_dir, parse_segments, save_dir, subset_dir
from espnet_avsr.common.naming import session_of

PathLike = Union[str, Path]


def group_utterances(files: Dict) -> Dict[str, List[str]]:
    """`{group key: utterances}`; the key is the session (else the recording)."""
    groups: Dict[str, List[str]] = {}
    seg = parse_segments(files["segments"]) if "segments" in files else None
    for utt in files["text"] if "text" in files else files["utt2spk"]:
        rec = seg[utt][0] if seg and utt in seg else utt
        key = session_of(rec) or rec
        groups.setdefault(key, []).append(utt)
    return groups


def split_data_dir(data_dir: PathLike, num_parts: int, out_root: PathLike = None) -> List[Path]:
    """Write `data_dir/split<N>/<1..N>/` full data dirs; returns their paths.

    With more parts than sessions some parts are empty (empty files, valid for
    every CLI of this package) and a warning says so.
    """
    if num_parts < 1:
        raise ValueError(f"number of parts must be >= 1, got {num_parts}")
    data_dir = Path(data_dir)
    files = load_dir(data_dir)
    if "text" not in files and "utt2spk" not in files:
        raise DataPrepError(data_dir, "no text or utt2spk; not a data dir")
    groups = group_utterances(files)
    seg = parse_segments(files["segments"]) if "segments" in files else None

    def weight(utts: List[str]) -> float:
        return sum(seg[u][2] - seg[u][1] for u in utts) if seg else float(len(utts))

    loads = [0.0] * num_parts
    assign: List[List[str]] = [[] for _ in range(num_parts)]
    # Heaviest first onto the lightest part; ties broken by key for determinism.
    for key in sorted(groups, key=lambda k: (-weight(groups[k]), c_sort_key(k))):
        j = min(range(num_parts), key=lambda i: (loads[i], i))
        assign[j].extend(groups[key])
        loads[j] += weight(groups[key])
    if len(groups) < num_parts:
        logging.warning("%s: %d sessions for %d parts; %d parts are empty", data_dir, len(groups), num_parts, num_parts - len(groups))
    out_root = Path(out_root) if out_root else data_dir / f"split{num_parts}"
    parts = []
    for j, utts in enumerate(assign, 1):
        part = out_root / str(j)
        sub = subset_dir(files, utts)
        save_dir(part, sub)
        parts.append(part)
    logging.info("%s: split %d groups into %d parts (loads %s)", data_dir, len(groups), num_parts, [round(x, 1) for x in loads])
    return parts
