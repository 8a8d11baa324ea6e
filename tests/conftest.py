"""Fixtures every test module shares."""
import logging

import pytest


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """ESPnet and the CLIs call logging.basicConfig on pytest's per-test stderr; drop those
    handlers afterwards so later tests do not log into a closed stream."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in before:
            root.removeHandler(h)
    for h in before:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)
