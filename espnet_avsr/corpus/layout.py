"""The MISP release layout: where each file of a session lives and how it is named.

One home for the naming rules (docs/DESIGN.md §1) on the writing side, plus a
parser for file names so tests and validators can check a tree.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Optional, Sequence

SPLITS = ("train", "dev", "eval")
#: Session id: room, packed 3-digit speaker ids, configuration, index (MISP2022 or MISP2021 style).
SESSION_RE = re.compile(r"R(?P<room>\d{2})_S(?P<spks>(?:\d{3})+)_C(?P<config>\d{2}|\d{4})_I(?P<index>\d+)")
_FILE_RE = re.compile(
    rf"(?P<session>{SESSION_RE.pattern})_(?:"
    r"(?P<far>Far)(?:_(?P<far_ch>\d+))?|(?P<middle>Middle)(?:_(?P<mid_x>\d+))?|"
    r"(?P<near>Near)_(?P<near_spk>\d{3}))"
    r"\.(?P<ext>wav|mp4|TextGrid|json)"
)


def session_id(room: int, speakers: Sequence[str], config: int, index: int) -> str:
    """``R03_S102103_C05_I1`` from its parts (speaker ids are 3-digit strings)."""
    if not all(len(s) == 3 and s.isdigit() for s in speakers):
        raise ValueError(f"speaker ids must be 3 digits: {list(speakers)}")
    return f"R{room:02d}_S{''.join(speakers)}_C{config:02d}_I{index}"


def speakers_of(session: str) -> list:
    """The 3-digit speaker ids packed in a session id."""
    m = SESSION_RE.fullmatch(session)
    if not m:
        raise ValueError(f"not a MISP session id: {session!r}")
    s = m.group("spks")
    return [s[i:i + 3] for i in range(0, len(s), 3)]


def parse_name(name: str) -> Optional[Dict[str, str]]:
    """Fields of a corpus file name, or None if it does not follow the MISP rules.

    Keys: session, kind (far/middle/near), ext, and channel (far/middle wav) or spk
    (near, middle mp4, TextGrid).
    """
    m = _FILE_RE.fullmatch(name)
    if not m:
        return None
    out = {"session": m.group("session"), "ext": m.group("ext")}
    if m.group("far"):
        out["kind"] = "far"
        if m.group("far_ch"):
            out["channel"] = m.group("far_ch")
    elif m.group("middle"):
        out["kind"] = "middle"
        if m.group("mid_x"):
            out["spk" if out["ext"] in ("mp4", "json") else "channel"] = m.group("mid_x")
    else:
        out["kind"] = "near"
        out["spk"] = m.group("near_spk")
    return out


class Layout:
    """Paths of one session's files under a corpus root."""

    def __init__(self, root: Path, split: str, session: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        self.root, self.split, self.session = Path(root), split, session

    def far_wav(self, ch: int) -> Path:
        """Array channel ``ch`` of the far array; the release numbers channels from 0 (``_Far_0`` .. ``_Far_5``)."""
        return self.root / "audio" / self.split / "far" / f"{self.session}_Far_{ch}.wav"

    def middle_wav(self, ch: int) -> Path:
        """Middle-array channel ``ch`` (0-based: ``_Middle_0``, ``_Middle_1``)."""
        return self.root / "audio" / self.split / "middle" / f"{self.session}_Middle_{ch}.wav"

    def near_wav(self, spk: str) -> Path:
        return self.root / "audio" / self.split / "near" / f"{self.session}_Near_{spk}.wav"

    def far_mp4(self) -> Path:
        return self.root / "video" / self.split / "far" / f"{self.session}_Far.mp4"

    def middle_mp4(self, spk: str) -> Path:
        return self.root / "video" / self.split / "middle" / f"{self.session}_Middle_{spk}.mp4"

    def textgrid(self, spk: str) -> Path:
        return self.root / "transcription" / self.split / f"{self.session}_Near_{spk}.TextGrid"

    def detection(self, video: Path) -> Path:
        field = "far" if video.stem.endswith("_Far") else "middle"
        return self.root / "detection" / self.split / field / f"{video.stem}.json"

    def alignment(self) -> Path:
        """Character-level timings (not part of MISP; for analysis and tests)."""
        return self.root / "alignment" / self.split / f"{self.session}.json"

    def remove_temps(self) -> None:
        """Delete hidden temp files a killed run left for this session."""
        for sub in ("audio", "video", "transcription", "detection", "alignment"):
            base = self.root / sub / self.split
            if base.is_dir():
                for tmp in base.rglob(f".{self.session}*.tmp*"):
                    tmp.unlink(missing_ok=True)

    def make_dirs(self, with_middle_near: bool) -> None:
        dirs = [self.far_wav(0).parent, self.far_mp4().parent, self.textgrid("000").parent,
                self.root / "detection" / self.split / "far", self.alignment().parent]
        if with_middle_near:
            dirs += [self.middle_wav(0).parent, self.near_wav("000").parent,
                     self.middle_mp4("000").parent, self.root / "detection" / self.split / "middle"]
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
