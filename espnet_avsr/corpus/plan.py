"""The corpus plan: speakers, rooms and sessions of every split, from the seed alone.

Planning is cheap and runs in the main process; workers then generate sessions
independently. The plan depends only on :class:`CorpusConfig`, so the same seed
and options give the same sessions whatever ``--nj`` is.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from espnet_avsr.corpus.faces import FaceStyle
from espnet_avsr.common.naming import SPLITS, session_id
from espnet_avsr.common.timing import VIDEO_FPS
from espnet_avsr.corpus.rooms import RoomGeometry
from espnet_avsr.corpus.session import GenOptions, SessionSpec, SpeakerSpec
from espnet_avsr.corpus.speech import VOICE_VARIANTS, Voice

#: The TV's announcers (the same in every corpus).
TV_VOICES = (Voice("m4", 45, 185), Voice("f3", 62, 195))


#: espeak pitch range of corpus speakers; held-out babble voices stay outside it.
SPEAKER_PITCH = (25, 75)


class CorpusError(ValueError):
    """Bad corpus options or an unusable output directory."""


@dataclass(frozen=True)
class CorpusConfig:
    """What to generate: size, seed, session shape and the per-session options."""

    hours: float
    seed: int = 0
    session_seconds: float = 300.0
    sessions_per_split: int = 2  # minimum number of sessions in every split
    split_shares: Tuple[float, float, float] = (0.8, 0.1, 0.1)
    min_speakers: int = 2
    max_speakers: int = 4
    speakers_per_hour: float = 2.5
    n_rooms: int = 8
    options: GenOptions = field(default_factory=GenOptions)

    def validate(self) -> None:
        """Raise :class:`CorpusError` with a one-line reason if an option is unusable."""
        o = self.options
        checks = [
            (math.isfinite(self.hours) and self.hours > 0, f"--hours must be > 0, got {self.hours}"),
            (self.session_seconds >= 5, f"--session_seconds must be >= 5, got {self.session_seconds}"),
            (self.sessions_per_split >= 1, f"--sessions_per_split must be >= 1, got {self.sessions_per_split}"),
            (2 <= self.min_speakers <= self.max_speakers <= 6,
             f"need 2 <= --min_speakers <= --max_speakers <= 6, got {self.min_speakers}, {self.max_speakers}"),
            (math.isfinite(self.speakers_per_hour) and self.speakers_per_hour > 0,
             f"--speakers_per_hour must be > 0, got {self.speakers_per_hour}"),
            (1 <= self.n_rooms <= 99, f"--n_rooms must be in 1..99, got {self.n_rooms}"),
            (o.snr_db[0] <= o.snr_db[1], f"--snr_db low > high: {o.snr_db}"),
            (0.1 <= o.rt60[0] <= o.rt60[1] <= 1.5, f"--rt60 must be within 0.1..1.5 s, low <= high: {o.rt60}"),
            (0 <= o.missing_detection_rate < 1,
             f"--missing_detection_rate must be in [0, 1), got {o.missing_detection_rate}"),
            (0 <= o.overlap_prob <= 1, f"--overlap_prob must be in [0, 1], got {o.overlap_prob}"),
            (o.target_snr_db is None or o.target_snr_db[0] <= o.target_snr_db[1],
             f"--target_snr_db low > high: {o.target_snr_db}"),
            (0 <= o.babble_talkers[0] <= o.babble_talkers[1] <= 8,
             f"--babble_talkers must be 0 <= low <= high <= 8, got {o.babble_talkers}"),
            (o.sentence_pool >= 0, f"--sentence_pool must be >= 0, got {o.sentence_pool}"),
            (0 <= o.double_sentence_prob <= 1,
             f"--double_sentence_prob must be in [0, 1], got {o.double_sentence_prob}"),
            (0 < o.articulation[0] <= o.articulation[1] <= 2,
             f"--articulation must be 0 < low <= high <= 2, got {o.articulation}"),
            (0.2 <= o.far_face_scale <= 1.5, f"--far_face_scale must be in [0.2, 1.5], got {o.far_face_scale}"),
            (o.far_blur >= 0 and o.far_noise >= 0 and o.light_flicker >= 0 and o.head_motion >= 0,
             "--far_blur, --far_noise, --light_flicker and --head_motion must be >= 0"),
            (o.far_jpeg_quality == 0 or 1 <= o.far_jpeg_quality <= 100,
             f"--far_jpeg_quality must be 0 (off) or 1..100, got {o.far_jpeg_quality}"),
            (1 <= o.far_downscale <= 8, f"--far_downscale must be in 1..8, got {o.far_downscale}"),
            (0 <= o.occlusion_rate < 1, f"--occlusion_rate must be in [0, 1), got {o.occlusion_rate}"),
            (len(self.split_shares) == 3 and all(x > 0 for x in self.split_shares),
             f"--split_shares must be three positive numbers, got {self.split_shares}"),
        ]
        for name, (w, h) in (("--far_size", o.far_size), ("--middle_size", o.middle_size)):
            checks.append((w >= 64 and h >= 64 and w % 2 == 0 and h % 2 == 0,
                           f"{name} must be even and >= 64 pixels, got {w}x{h}"))
        for ok, msg in checks:
            if not ok:
                raise CorpusError(msg)

    def to_dict(self) -> Dict:
        return asdict(self)


def _split_seconds(cfg: CorpusConfig) -> Dict[str, List[float]]:
    """Session durations per split (multiples of one video frame)."""
    rng = np.random.default_rng([cfg.seed, 1])
    out = {}
    for split, share in zip(SPLITS, cfg.split_shares):
        total = cfg.hours * 3600 * share
        n = max(cfg.sessions_per_split, int(round(total / cfg.session_seconds)))
        w = rng.uniform(0.8, 1.2, n)
        durs = np.maximum(total * w / w.sum(), 5.0)
        out[split] = [round(d * VIDEO_FPS) / VIDEO_FPS for d in durs]
    return out


def _heldout_voices(cfg: CorpusConfig, used: List[Voice], n: int = 16) -> List[Voice]:
    """Babble voices no corpus speaker has: espeak variants left unused when there are
    any, else pitches outside the speakers' range (``SPEAKER_PITCH``)."""
    rng = np.random.default_rng([cfg.seed, 2])
    free = [v for v in VOICE_VARIANTS if v not in {u.variant for u in used}]
    out = []
    for i in range(n):
        if free:
            out.append(Voice(free[i % len(free)], int(rng.integers(SPEAKER_PITCH[0], SPEAKER_PITCH[1] + 1)), int(rng.integers(150, 211)),
                             float(rng.uniform(-3, 3))))
        else:
            pitch = int(rng.choice([rng.integers(5, SPEAKER_PITCH[0]), rng.integers(SPEAKER_PITCH[1] + 1, 96)]))
            variant = VOICE_VARIANTS[int(rng.integers(len(VOICE_VARIANTS)))]
            out.append(Voice(variant, pitch, int(rng.integers(150, 211)), float(rng.uniform(-3, 3))))
    return out


def make_plan(cfg: CorpusConfig) -> List[SessionSpec]:
    """All sessions of the corpus, in a fixed order (their index seeds their content)."""
    cfg.validate()
    rng = np.random.default_rng([cfg.seed, 0])
    durations = _split_seconds(cfg)
    rooms = [RoomGeometry.random(rng, cfg.options.rt60) for _ in range(cfg.n_rooms)]

    # disjoint speaker pools per split
    pool_sizes = {
        s: max(cfg.max_speakers + 1, math.ceil(sum(durations[s]) / 3600 * cfg.speakers_per_hour))
        for s in SPLITS
    }
    ids = rng.choice(np.arange(1, 1000), sum(pool_sizes.values()), replace=False)
    variants = [VOICE_VARIANTS[i] for i in rng.permutation(len(VOICE_VARIANTS))]
    voices = [Voice(variants[i % len(variants)], int(rng.integers(SPEAKER_PITCH[0], SPEAKER_PITCH[1] + 1)), int(rng.integers(150, 211)),
                    float(rng.uniform(-3, 3))) for i in range(len(ids))]
    pools: Dict[str, List[SpeakerSpec]] = {}
    k = 0
    for s in SPLITS:
        pools[s] = [SpeakerSpec(f"{ids[k + j]:03d}", voices[k + j],
                                FaceStyle.random(rng, cfg.options.articulation))
                    for j in range(pool_sizes[s])]
        k += pool_sizes[s]

    heldout = _heldout_voices(cfg, voices) if cfg.options.heldout_babble else None

    specs: List[SessionSpec] = []
    seen: Dict[Tuple[int, Tuple[str, ...], int], int] = {}
    for split in SPLITS:
        pool = pools[split]
        for dur in durations[split]:
            n_spk = int(rng.integers(cfg.min_speakers, cfg.max_speakers + 1))
            chosen = sorted((pool[i] for i in rng.choice(len(pool), n_spk, replace=False)),
                            key=lambda sp: sp.spk)
            others = [sp.voice for sp in pool if sp not in chosen]
            others = [others[i] for i in rng.permutation(len(others))[:4]]
            if heldout is not None:  # drawn from their own stream: the plan is otherwise unchanged
                r = np.random.default_rng([cfg.seed, 3, len(specs)])
                others = [heldout[i] for i in r.permutation(len(heldout))[:4]]
            room = int(rng.integers(1, cfg.n_rooms + 1))
            config = int(rng.integers(1, 7))
            key = (room, tuple(sp.spk for sp in chosen), config)
            index = seen.get(key, 0)
            seen[key] = index + 1
            specs.append(SessionSpec(
                session_id=session_id(room, key[1], config, index),
                split=split, index=len(specs), seed=cfg.seed, duration=dur,
                room=rooms[room - 1], config=config, speakers=tuple(chosen),
                babble_voices=tuple(others), tv_voices=TV_VOICES, options=cfg.options,
            ))
    return specs
