"""MISP TextGrid transcripts: decoding, the `内容层` tier, and the filtering rules.

The rules (SPEC §3): drop `<NOISE>`/`<DEAF>` intervals, intervals shorter than
0.04 s and filler-only text; normalise the text with the scoring normaliser
(common/textnorm: NFKC, lower case, no punctuation or spaces) so training and
scoring share one alphabet; widen times to the 40 ms video frame grid (start
floored, end ceiled, as ESPnet's misp2021 recipe does, so utterance ids match
the baselines'). Each dropped interval gets a reason so nothing is lost silently.
"""
import codecs
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

from praatio.utilities import textgrid_io

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.naming import TEXTGRID_TIER
from espnet_avsr.common.textnorm import UNK_CHAR, normalize_text
from espnet_avsr.common.timing import VIDEO_FPS

TEXT_TIER = TEXTGRID_TIER
FILLERS = frozenset("呃啊噢嗯唉")
DROP_TAGS = {"<NOISE>": "noise_tag", "<DEAF>": "deaf_tag"}
MIN_DURATION = 0.04
_GRID_EPS = 1e-6  # in frames: 0.48 s * 25 may be 11.999999999999998


@dataclass(frozen=True)
class Interval:
    """One labelled interval of the text tier (times in seconds, raw label)."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Kept:
    """An interval that survived filtering, widened to whole video frames."""

    start_frame: int
    end_frame: int
    text: str

    @property
    def start(self) -> float:
        return self.start_frame / VIDEO_FPS

    @property
    def end(self) -> float:
        return self.end_frame / VIDEO_FPS


def decode_textgrid_bytes(raw: bytes, path: Union[str, Path] = "<bytes>") -> str:
    """Decode a TextGrid: BOM first (UTF-8/UTF-16 LE/BE), then UTF-8, then BOM-less UTF-16.

    praatio's own opener tries UTF-16 first, which can mis-decode an even-length
    UTF-8 file into garbage without raising, so we decode here and hand it text.
    """
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :].decode("utf-8")
    if raw.startswith(codecs.BOM_UTF16_LE) or raw.startswith(codecs.BOM_UTF16_BE):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # BOM-less UTF-16: ASCII-heavy text has NUL in every other byte. Without NULs it is a
    # legacy 8-bit/GBK file, which UTF-16 would "decode" into garbage without raising.
    if len(raw) >= 2 and len(raw) % 2 == 0 and raw.count(0) >= len(raw) // 8:
        even_nuls = raw[0::2].count(0)
        odd_nuls = raw[1::2].count(0)
        enc = "utf-16-le" if odd_nuls > even_nuls else "utf-16-be"
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            pass
    raise DataPrepError(
        path, "cannot decode TextGrid: neither UTF-8 nor UTF-16 (a legacy encoding such as GBK or latin-1? "
        "re-save it as UTF-8)"
    )


def read_text_tier(path: Union[str, Path], tier_name: str = TEXT_TIER) -> List[Interval]:
    """Read the labelled intervals of one tier of a TextGrid file (parsed by praatio)."""
    path = Path(path)
    if not path.is_file():
        raise DataPrepError(path, "TextGrid not found")
    text = decode_textgrid_bytes(path.read_bytes(), path)
    try:
        tg = textgrid_io.parseTextgridStr(text, includeEmptyIntervals=False)
    except Exception as e:  # noqa: BLE001 - praatio raises assorted errors on bad files
        raise DataPrepError(path, f"cannot parse TextGrid ({type(e).__name__}: {e})") from None
    names = [t["name"] for t in tg["tiers"]]
    for tier in tg["tiers"]:
        if tier["name"] == tier_name:
            if tier["class"] != "IntervalTier":
                raise DataPrepError(path, f"tier {tier_name!r} is a {tier['class']}, expected an IntervalTier")
            return [Interval(float(s), float(e), str(lab)) for s, e, lab in tier["entries"]]
    raise DataPrepError(path, f"no tier named {tier_name!r} (tiers: {names})")


def clean_text(label: str) -> str:
    """The transcript of a label in the scoring alphabet (common/textnorm.normalize_text).

    One normaliser for data prep, token list and scoring: full-width forms and upper
    case would otherwise be trained as tokens that scoring maps elsewhere.
    """
    return normalize_text(label).replace(UNK_CHAR, "")


def snap_frame(t: float) -> int:
    """Nearest 40 ms frame index (for times already on the grid, e.g. `segments`)."""
    return int(math.floor(t * VIDEO_FPS + 0.5 + 1e-9))


def floor_frame(t: float) -> int:
    """Last 40 ms frame boundary at or before `t` (utterance start; misp2021 rule)."""
    return int(math.floor(t * VIDEO_FPS + _GRID_EPS))


def ceil_frame(t: float) -> int:
    """First 40 ms frame boundary at or after `t` (utterance end; misp2021 rule)."""
    return int(math.ceil(t * VIDEO_FPS - _GRID_EPS))


def filter_interval(iv: Interval) -> Tuple[Optional[Kept], Optional[str]]:
    """Apply the MISP rules to one interval: `(kept, None)` or `(None, reason)`."""
    for tag, reason in DROP_TAGS.items():
        if tag in iv.label.upper():
            return None, reason
    if iv.end < iv.start:
        return None, "reversed_interval"
    if iv.end - iv.start < MIN_DURATION - 1e-9:
        return None, "too_short"
    text = clean_text(iv.label)
    if not text:
        return None, "empty_text"
    if all(ch in FILLERS for ch in text):
        return None, "filler_only"
    s, e = floor_frame(iv.start), ceil_frame(iv.end)
    if e <= s:
        return None, "empty_after_snap"
    return Kept(s, e, text), None
