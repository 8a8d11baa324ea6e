"""One exception type for bad input files, shared by data prep, scoring and reporting.

Every message names the offending file so users can fix their inputs rather than read a
stack trace.
"""
from pathlib import Path
from typing import Union


class DataPrepError(ValueError):
    """Bad or missing input file; the message says which file and what is wrong."""

    def __init__(self, path: Union[str, Path, None], problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
