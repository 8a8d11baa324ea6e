"""The MISP release layout: in which folder each file of a session lives.

The names themselves come from the one grammar in :mod:`espnet_avsr.common.naming`
(docs/DESIGN.md §1), which data preparation parses with.
"""
from __future__ import annotations

from pathlib import Path

from espnet_avsr.common.naming import (SPLITS, far_video_name, far_wav_name, middle_video_name,
                                       middle_wav_name, near_wav_name, textgrid_name)


class Layout:
    """Paths of one session's files under a corpus root."""

    def __init__(self, root: Path, split: str, session: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        self.root, self.split, self.session = Path(root), split, session

    def far_wav(self, ch: int) -> Path:
        """Array channel ``ch`` of the far array; the release numbers channels from 0 (``_Far_0`` .. ``_Far_5``)."""
        return self.root / "audio" / self.split / "far" / far_wav_name(self.session, ch)

    def middle_wav(self, ch: int) -> Path:
        """Middle-array channel ``ch`` (0-based: ``_Middle_0``, ``_Middle_1``)."""
        return self.root / "audio" / self.split / "middle" / middle_wav_name(self.session, ch)

    def near_wav(self, spk: str) -> Path:
        return self.root / "audio" / self.split / "near" / near_wav_name(self.session, spk)

    def far_mp4(self) -> Path:
        return self.root / "video" / self.split / "far" / far_video_name(self.session)

    def middle_mp4(self, spk: str) -> Path:
        return self.root / "video" / self.split / "middle" / middle_video_name(self.session, spk)

    def textgrid(self, spk: str) -> Path:
        return self.root / "transcription" / self.split / textgrid_name(self.session, spk)

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
