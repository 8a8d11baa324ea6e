"""A bank of held-out babble talkers for the zero-shot noise test.

Why: babble mixed from the training recordings repeats voices and sentences the models
were trained on, so it is not the paper's unseen noise. These talkers have pitches outside
every corpus speaker's range (25-75) and speak off-grammar character strings
(:func:`~espnet_avsr.corpus.text.make_babble_text`), so neither voice nor text was ever in
training, whichever corpus (synthetic or MISP) the models learnt from.

Output: a Kaldi data dir (``wav.scp`` with absolute paths, ``utt2spk``) that
``mix_noise --babble_source`` reads; ``.complete`` marks a finished bank.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from espnet_avsr.common.timing import SAMPLE_RATE
from espnet_avsr.corpus.speech import VOICE_VARIANTS, SyllableSynth, Voice, synthesize
from espnet_avsr.corpus.text import make_babble_text, to_pinyin
from espnet_avsr.corpus.writers import write_wav
from espnet_avsr.corpus import rooms
from espnet_avsr.corpus.plan import SPEAKER_PITCH


def heldout_voices(n: int, seed: int) -> List[Voice]:
    """``n`` voices with pitches outside the corpus speakers' range."""
    rng = np.random.default_rng([seed, 17])
    low = list(range(5, SPEAKER_PITCH[0]))
    high = list(range(SPEAKER_PITCH[1] + 1, 96))
    out = []
    for i in range(n):
        pitch = int(rng.choice(low if i % 2 else high))
        out.append(Voice(VOICE_VARIANTS[int(rng.integers(len(VOICE_VARIANTS)))], pitch,
                         int(rng.integers(150, 211)), float(rng.uniform(-3, 3))))
    return out


def make_babble_bank(out: Path, seed: int = 0, n_talkers: int = 12, utts_per_talker: int = 8,
                     synth: Optional[SyllableSynth] = None) -> Path:
    """Write the bank under ``out`` (skipped when already complete); return ``out``."""
    out = Path(out).resolve()
    if (out / ".complete").is_file():
        return out
    (out / "wav").mkdir(parents=True, exist_ok=True)
    synth = synth or SyllableSynth()
    rng = np.random.default_rng([seed, 18])
    scp, spk = [], []
    for t, voice in enumerate(heldout_voices(n_talkers, seed)):
        name = f"babble{t:02d}"
        for k in range(utts_per_talker):
            utt = f"{name}_{k:02d}"
            wave = np.concatenate([synthesize(synth, voice, to_pinyin(make_babble_text(rng)), rng).wave
                                   for _ in range(3)])
            path = out / "wav" / f"{utt}.wav"
            write_wav(path, rooms.to_int16(wave, 0.5)[0], SAMPLE_RATE)
            scp.append(f"{utt} {path}")
            spk.append(f"{utt} {name}")
    (out / "wav.scp").write_text("\n".join(scp) + "\n", encoding="utf-8")
    (out / "utt2spk").write_text("\n".join(spk) + "\n", encoding="utf-8")
    (out / ".complete").write_text(f"seed {seed}, {n_talkers} talkers x {utts_per_talker}\n", encoding="utf-8")
    return out
