"""The MISP naming grammar: session ids, recording/video ids, corpus file names, utterance ids.

One grammar for both sides: the generator (``corpus``) writes names with it and data
preparation (``dataprep``) parses them with it, so a name one side writes is a name the
other side reads (docs/DESIGN.md §1-2).

The release is the spec. Session ids are ``R<room>_S<spk><spk>..._C<config>_I<index>``:
a 2-digit room, packed 3-digit speaker ids, a 2-digit config (MISP2022, ``C08``) or a
4-digit one (MISP2021, ``C0001``), and an index (``I0``, ``I2``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

SPLITS = ("train", "dev", "eval")
FIELDS = ("far", "middle", "near")  # the microphone fields: far array, middle array, near headsets
TEXTGRID_TIER = "内容层"  # the transcript tier of every MISP TextGrid

_SESSION = r"R(?P<room>\d{2})_S(?P<spks>(?:\d{3})+)_C(?P<config>\d{2}|\d{4})_I(?P<index>\d+)"
#: A whole session id (use ``fullmatch``); groups hold the digits only.
SESSION_RE = re.compile(_SESSION)
_FILE_RE = re.compile(
    rf"(?P<session>{_SESSION})_(?:"
    r"(?P<far>Far)(?:_(?P<far_ch>\d+))?|(?P<middle>Middle)(?:_(?P<mid_x>\d+))?|"
    r"(?P<near>Near)_(?P<near_spk>\d{3}))"
    r"\.(?P<ext>wav|mp4|TextGrid|json)"
)
_NEAR_STEM_RE = re.compile(rf"(?P<session>{_SESSION})_Near_(?P<spk>\d{{3}})")
_SESSION_PREFIX_RE = re.compile(rf"(?P<session>{_SESSION})")


@dataclass(frozen=True)
class Session:
    """A parsed session id; ``room``/``config``/``index`` keep their letter (``R11``, ``C08``, ``I2``)."""

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


def session_id(room: int, speakers: Sequence[str], config: int, index: int) -> str:
    """``R03_S102103_C05_I1`` from its parts (speaker ids are 3-digit strings)."""
    if not all(len(s) == 3 and s.isdigit() for s in speakers):
        raise ValueError(f"speaker ids must be 3 digits: {list(speakers)}")
    return f"R{room:02d}_S{''.join(speakers)}_C{config:02d}_I{index}"


def parse_session(session: str) -> Session:
    """Parse a session id; ValueError names the id when it does not fit."""
    m = SESSION_RE.fullmatch(session)
    if not m:
        raise ValueError(
            f"not a MISP session id: {session!r} (expected e.g. R11_S193194_C08_I2 or R01_S010011012_C0001_I0)"
        )
    spks = m.group("spks")
    return Session(
        room=f"R{m.group('room')}",
        speakers=tuple(spks[i: i + 3] for i in range(0, len(spks), 3)),
        config=f"C{m.group('config')}",
        index=f"I{m.group('index')}",
    )


def speakers_of(session: str) -> List[str]:
    """The 3-digit speaker ids packed in a session id."""
    return list(parse_session(session).speakers)


def parse_near_stem(stem: str) -> Optional[Tuple[Session, str]]:
    """``R01_S016017_C02_I1_Near_016`` -> (session, ``'016'``); None if the name does not fit."""
    m = _NEAR_STEM_RE.fullmatch(stem)
    if not m:
        return None
    return parse_session(m.group("session")), m.group("spk")


def session_of(name: str) -> Optional[str]:
    """Session id at the start of a recording/video name, else None."""
    m = _SESSION_PREFIX_RE.match(name)
    return m.group("session") if m else None


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


def parse_set_name(name: str) -> Tuple[str, str]:
    """A recipe set ``<split>_<field>`` (``eval_far``) -> ``(split, field)``; stage 1 prepares
    it from ``audio/<split>/<field>``."""
    split, sep, field = name.rpartition("_")
    if not sep or split not in SPLITS or field not in FIELDS:
        raise ValueError(f"set name {name!r} is not <split>_<field> with split in {SPLITS} and field in {FIELDS}")
    return split, field


def far_wav_name(session: str, ch: int) -> str:
    """Far-array channel file (the release numbers channels from 0: ``_Far_0`` .. ``_Far_5``)."""
    return f"{session}_Far_{ch}.wav"


def middle_wav_name(session: str, ch: int) -> str:
    """Middle-array channel file (0-based: ``_Middle_0``, ``_Middle_1``)."""
    return f"{session}_Middle_{ch}.wav"


def near_wav_name(session: str, spk: str) -> str:
    return f"{session}_Near_{spk}.wav"


def far_video_name(session: str) -> str:
    return f"{session}_Far.mp4"


def middle_video_name(session: str, spk: str) -> str:
    return f"{session}_Middle_{spk}.mp4"


def textgrid_name(session: str, spk: str) -> str:
    return f"{session}_Near_{spk}.TextGrid"


def utt_id(spk: str, session: Session, start: float, end: float) -> str:
    """Baseline utterance id: ``S<spk>_<session>_<start*100:06d>-<end*100:06d>``."""
    return f"S{spk}_{session.id}_{int(round(start * 100)):06d}-{int(round(end * 100)):06d}"


_UTT_RE = re.compile(r"^S(?P<spk>[^_]+)_(?P<session>.+)_(?P<start>\d+)-(?P<end>\d+)$")


def parse_utt_id(utt: str) -> Tuple[str, str, int, int]:
    """``S<spk>_<session>_<start>-<end>`` -> (speaker, session, start, end)."""
    m = _UTT_RE.match(utt)
    if m is None:
        raise ValueError(
            f"utterance id {utt!r} does not follow S<spk>_<session>_<start>-<end>; cpCER needs it"
        )
    return m.group("spk"), m.group("session"), int(m.group("start")), int(m.group("end"))


def utt_session(utt_id: str) -> str:
    """The recording session of an utterance id, the unit a session bootstrap resamples
    (``session_of`` reads it from a recording or file name instead)."""
    return parse_utt_id(utt_id)[1]


def speaker_label(spk: str) -> str:
    """Speaker id used in utt2spk (``S016``), a prefix of the utterance ids (Kaldi habit)."""
    return f"S{spk}"
