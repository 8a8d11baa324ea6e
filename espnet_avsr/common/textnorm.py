"""Text normalisation for character error rate on Mandarin transcripts.

Why one function: references (from TextGrids) and hypotheses (from the decoder) must be
reduced to the same alphabet before they are compared, otherwise punctuation, full-width
forms or ESPnet's ``<space>`` tokens count as errors.

Rules (in order):
  1. Unicode NFKC, which maps full-width letters, digits and punctuation to their
     half-width forms (``ＡＢＣ１`` -> ``ABC1``, ``，`` -> ``,``).
  2. Tags in angle brackets: ``<unk>`` becomes one placeholder character (an unknown token
     is one wrong character, not a missing one); every other tag (``<NOISE>``, ``<DEAF>``,
     ``<space>``, ``<sos/eos>`` ...) is removed.
  3. Latin letters are lower-cased.
  4. Only letters, digits and combining marks are kept; spaces, punctuation, symbols and
     control characters are dropped.
"""

from __future__ import annotations

import re
import unicodedata
from typing import List

UNK_CHAR = "\ufffd"  # one character standing for an <unk> token
_TAG = re.compile(r"<[^<>\s]*>")
_KEEP_CATEGORIES = ("L", "N", "M")


def _replace_tag(match: re.Match) -> str:
    return UNK_CHAR if match.group(0).lower() == "<unk>" else ""


def normalize_text(text: str) -> str:
    """The scoring alphabet of ``text``: a string of characters, no spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = _TAG.sub(_replace_tag, text)
    out = []
    for ch in text.lower():
        if ch == UNK_CHAR or unicodedata.category(ch)[0] in _KEEP_CATEGORIES:
            out.append(ch)
    return "".join(out)


def to_chars(text: str) -> List[str]:
    """Normalised text as a list of scoring units (one per character)."""
    return list(normalize_text(text))
