"""Keys of the recipe's cached data units: what produced an output, so a change reruns it.

Why: a done-marker that records nothing reports stale data as new (another
--misp_root, a fixed detection JSON, new front-end options). A key is a list of
`name=value` lines, one per input, so a changed key can say *what* changed:

  opt.<name>=<value>     an option, kept in clear
  tree.<name>=<digest>   every file under a directory: relative path, size, mtime
  data.<name>=<digest>   the content of a Kaldi data dir's top-level files (not its logs
                         or JSON reports): the upstream unit's output, so an upstream
                         rerun with identical output does not cascade
  files.<name>=<digest>  size and mtime of every file the dir's scp files point at
                         (audio, video, detection JSON, ROI .npy): new audio under the
                         old paths is a change too (`name=dir@wav.scp,channels.scp`: only
                         the files those scp files list)
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple, Union

from espnet_avsr.common.kaldi_dir import read_kv, split_paths

PathLike = Union[str, Path]
SCP_FILES = ("wav.scp", "channels.scp", "video.scp", "detection.scp", "roi.scp")


def _stat(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}\tmissing"
    return f"{path}\t{st.st_size}\t{st.st_mtime_ns}"


def tree_digest(root: PathLike) -> str:
    """Digest of the relative paths, sizes and mtimes under `root` ("absent" when missing)."""
    root = Path(root)
    if not root.is_dir():
        return "absent"
    h = hashlib.md5()
    rows: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in filenames:
            if f.startswith("."):
                continue  # temp files of killed writers
            p = os.path.join(dirpath, f)
            rows.append(_stat(p).replace(str(root), "", 1))
    for r in sorted(rows):
        h.update(r.encode("utf-8", "surrogateescape") + b"\n")
    return f"{len(rows)}:{h.hexdigest()}"


def data_digest(d: PathLike, scps: Sequence[str] = SCP_FILES) -> Tuple[str, str]:
    """`(content digest, digest of the files its `scps` list)` of a data dir's top-level files."""
    d = Path(d)
    if not d.is_dir():
        return "absent", "absent"
    content, refs = hashlib.md5(), hashlib.md5()
    for f in sorted(p for p in d.iterdir() if p.is_file()):
        if f.name.startswith(".") or f.suffix == ".json" or f.name.endswith(".over_bound"):
            continue
        content.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        if f.name in scps:
            for key, value in read_kv(f).items():
                paths = split_paths(value) if f.name == "channels.scp" else [value]
                for p in paths:
                    refs.update(f"{key}\t{_stat(p)}\n".encode("utf-8", "surrogateescape"))
    return content.hexdigest(), refs.hexdigest()


def make_key(opts: Sequence[str] = (), trees: Sequence[str] = (), data: Sequence[str] = ()) -> List[str]:
    """Key lines from `name=value` options, `name=dir` trees and `name=dir` data dirs."""
    def pairs(items: Iterable[str], what: str) -> List[Tuple[str, str]]:
        out = []
        for it in items:
            if "=" not in it:
                raise ValueError(f"{what} {it!r} is not name=value")
            out.append(tuple(it.split("=", 1)))
        return out

    lines = [f"opt.{n}={v}" for n, v in pairs(opts, "--opt")]
    lines += [f"tree.{n}={tree_digest(v)}" for n, v in pairs(trees, "--tree")]
    for n, v in pairs(data, "--data"):
        scps = SCP_FILES
        if "@" in v and all(x.endswith(".scp") for x in v.rsplit("@", 1)[1].split(",")):
            v, only = v.rsplit("@", 1)
            scps = tuple(only.split(","))
        c, r = data_digest(v, scps)
        lines += [f"data.{n}={c}", f"files.{n}={r}"]
    for line in lines:
        if "\n" in line:
            raise ValueError(f"a key line may not contain a newline: {line!r}")
    return lines


def parse_key(text: str) -> Dict[str, str]:
    """Key lines of a marker (other lines ignored) as `{name: value}`."""
    out = {}
    for line in text.splitlines():
        if line.startswith(("opt.", "tree.", "data.", "files.")) and "=" in line:
            n, v = line.split("=", 1)
            out[n] = v
    return out


def key_changes(old: Dict[str, str], new: Dict[str, str]) -> List[str]:
    """What differs, for the log: options with old and new value, other inputs by name."""
    msgs = []
    for n in sorted(set(old) | set(new)):
        if old.get(n) == new.get(n):
            continue
        if n.startswith("opt."):
            msgs.append(f"{n[4:]} {old.get(n, '(unset)')!r} -> {new.get(n, '(unset)')!r}")
        else:
            kind, name = n.split(".", 1)
            what = {"tree": "files under", "data": "content of", "files": "files listed in"}[kind]
            msgs.append(f"{what} {name}")
    return msgs
