"""Per-utterance random generators: the same draw for an utterance in every process and run.

Why: test-time conditions (simulated missing frames, mixed-in noise) must be identical for
every model compared on them, whatever order or job split decodes the utterances.
"""
import hashlib

import numpy as np


def utterance_rng(utt_id: str, seed: int = 0) -> np.random.Generator:
    """A generator that depends only on (seed, utt_id), stable across processes."""
    digest = hashlib.sha256(f"{seed}:{utt_id}".encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))
