"""Swapping one named scorer of an ESPnet ``BeamSearch`` that is already built.

ESPnet keeps each scorer under its name in up to four tables (``scorers``, ``full_scorers``,
``part_scorers`` and, for modules, ``nn_dict``); a swap must reach every table that holds the
name, or the search would score with one object and move another to the device.
"""

from __future__ import annotations

from typing import Any


def replace_scorer(beam_search: Any, name: str, new: Any) -> None:
    """Put ``new`` wherever ``beam_search`` holds the scorer ``name`` (its weight and role stay)."""
    for table in ("scorers", "full_scorers", "part_scorers", "nn_dict"):
        held = getattr(beam_search, table, None)
        if held is not None and name in held:
            held[name] = new
