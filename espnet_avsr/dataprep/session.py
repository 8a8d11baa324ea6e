"""MISP session ids and the file/recording/video names derived from them.

Both id styles exist: MISP2022 `R11_S193194_C08_I2` and MISP2021
`R01_S010011012_C0001_I0`. Speaker ids are 3 digits packed after `S`.
"""
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

SESSION_RE = re.compile(r"^(?P<room>R\d+)_S(?P<spks>(?:\d{3})+)_(?P<config>C\d+)_(?P<index>I\d+)$")
# `<session>_Near_<spk>.TextGrid` and friends.
NEAR_FILE_RE = re.compile(r"^(?P<session>R\d+_S\d+_C\d+_I\d+)_Near_(?P<spk>\d{3})$")


@dataclass(frozen=True)
class Session:
    """A parsed session id."""

    room: str
    speakers: Tuple[str, ...]
    config: str
    index: str

    @property
    def id(self) -> str:
        return f"{self.room}_S{''.join(self.speakers)}_{self.config}_{self.index}"

    def far_rec(self) -> str:
        return f"{self.id}_Far"

    def middle_rec(self) -> str:
        return f"{self.id}_Middle"

    def near_rec(self, spk: str) -> str:
        return f"{self.id}_Near_{spk}"

    def far_video(self) -> str:
        return f"{self.id}_Far"

    def middle_video(self, spk: str) -> str:
        return f"{self.id}_Middle_{spk}"


def parse_session(session_id: str) -> Session:
    """Parse a session id; ValueError names the id when it does not fit."""
    m = SESSION_RE.match(session_id)
    if not m:
        raise ValueError(
            f"not a MISP session id: {session_id!r} (expected e.g. R11_S193194_C08_I2 or R01_S010011012_C0001_I0)"
        )
    spks = m.group("spks")
    return Session(
        room=m.group("room"),
        speakers=tuple(spks[i : i + 3] for i in range(0, len(spks), 3)),
        config=m.group("config"),
        index=m.group("index"),
    )


def parse_near_stem(stem: str) -> Optional[Tuple[Session, str]]:
    """`R01_S016017_C02_I1_Near_016` -> (session, '016'); None if the name does not fit."""
    m = NEAR_FILE_RE.match(stem)
    if not m:
        return None
    return parse_session(m.group("session")), m.group("spk")


def session_of(name: str) -> Optional[str]:
    """Session id at the start of a recording/video/utterance-free name, else None."""
    m = re.match(r"^(R\d+_S\d+_C\d+_I\d+)", name)
    return m.group(1) if m else None


def utt_id(spk: str, session: Session, start: float, end: float) -> str:
    """Baseline utterance id: `S<spk>_<session>_<start*100:06d>-<end*100:06d>`."""
    return f"S{spk}_{session.id}_{int(round(start * 100)):06d}-{int(round(end * 100)):06d}"


def speaker_label(spk: str) -> str:
    """Speaker id used in utt2spk (`S016`), a prefix of the utterance ids (Kaldi habit)."""
    return f"S{spk}"


def session_speakers(session_id: str) -> List[str]:
    return list(parse_session(session_id).speakers)
