"""Generate one recording session: dialogue, audio arrays, videos, TextGrids, detections.

A session is fully determined by its :class:`SessionSpec` (which carries the corpus
seed and the session index): independent random streams drive the dialogue, the
room, the noise, the video and the detections, so e.g. a different video size does
not change the words or their timings.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.signal import lfilter

from espnet_avsr.corpus import rooms, video
from espnet_avsr.corpus.faces import FaceStyle, HeadMotion
from espnet_avsr.corpus.layout import Layout
from espnet_avsr.common.levels import snr_db
from espnet_avsr.common.timing import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS
from espnet_avsr.corpus.speech import SyllableSynth, Voice, synthesize
from espnet_avsr.corpus.text import FILLERS, Token, make_babble_text, make_sentence, to_pinyin
from espnet_avsr.corpus.visemes import MouthTrack, syllable_viseme
from espnet_avsr.corpus.writers import write_json, write_textgrid, write_wav

log = logging.getLogger(__name__)

#: Event kinds of the dialogue and their probabilities.
KINDS = ("speech", "filler", "noise", "deaf", "short")
KIND_P = (0.74, 0.08, 0.08, 0.02, 0.08)


@dataclass(frozen=True)
class GenOptions:
    """Corpus-wide generation settings (everything but sizes and seed)."""

    far_size: Tuple[int, int] = (1920, 1080)
    middle_size: Tuple[int, int] = (1280, 720)
    snr_db: Tuple[float, float] = (0.0, 5.0)
    middle_snr_offset: float = 5.0
    rt60: Tuple[float, float] = (0.3, 0.7)
    missing_detection_rate: float = 0.07
    overlap_prob: float = 0.15
    crosstalk_db: float = -25.0
    nested_json_share: float = 0.3
    utf16_share: float = 0.3
    # ---- calibration knobs (defaults = the original generator) --------------------------
    #: Per-utterance SNR (dB) of each target utterance at far mic 0 against every other
    #: source there (TV, babble, ambient, other talkers). None: one SNR per session
    #: (``snr_db``) against all talkers together.
    target_snr_db: Optional[Tuple[float, float]] = None
    babble_talkers: Tuple[int, int] = (3, 5)
    #: Babble and TV from voices no corpus speaker has and from text off the sentence grammar.
    heldout_babble: bool = False
    #: Chance that an utterance is two sentences (0 = single-sentence utterances).
    double_sentence_prob: float = 0.25
    #: Size of a closed set of grammar sentences shared by every split (0 = the open
    #: grammar). A closed set lets a minutes-long CPU demo learn; never for the benchmark.
    sentence_pool: int = 0
    # lip difficulty
    articulation: Tuple[float, float] = (0.85, 1.15)  # per-speaker mouth-opening scale
    far_face_scale: float = 1.0  # face size in the far view (smaller = fewer mouth pixels)
    far_blur: float = 0.0  # Gaussian blur sigma (pixels) of the far camera
    far_jpeg_quality: int = 0  # 0 = off, else a JPEG round trip per far frame (compression)
    far_downscale: int = 1  # the far camera's effective resolution is 1/this of its frame size
    far_noise: float = 0.0  # far-camera sensor noise std (grey levels)
    head_motion: float = 1.0  # head drift / nod / zoom amplitude scale
    light_flicker: float = 0.0  # slow lighting changes, relative amplitude
    occlusion_rate: float = 0.0  # share of frames with the mouth hidden (a hand), in bursts


@dataclass(frozen=True)
class SpeakerSpec:
    """A corpus speaker: 3-digit id, voice and face."""

    spk: str
    voice: Voice
    style: FaceStyle


@dataclass(frozen=True)
class SessionSpec:
    """Everything needed to generate one session reproducibly."""

    session_id: str
    split: str
    index: int
    seed: int
    duration: float  # seconds, a multiple of 40 ms
    room: rooms.RoomGeometry
    config: int
    speakers: Tuple[SpeakerSpec, ...]
    babble_voices: Tuple[Voice, ...]
    tv_voices: Tuple[Voice, ...]
    options: GenOptions = field(default_factory=GenOptions)

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * VIDEO_FPS))

    @property
    def n_samples(self) -> int:
        return self.n_frames * SAMPLES_PER_FRAME

    @property
    def has_middle_near(self) -> bool:
        return self.split != "eval"


@dataclass
class Event:
    """One annotated interval of one speaker."""

    spk: int  # index into spec.speakers
    kind: str
    start: int  # samples
    end: int
    text: str
    chars: List[Tuple[str, str, int, int]] = field(default_factory=list)  # absolute samples
    wave: Optional[np.ndarray] = None


def _noise_burst(rng: np.random.Generator) -> np.ndarray:
    """A cough/knock-like burst: coloured noise under a fast-attack envelope."""
    n = int(rng.uniform(0.15, 0.45) * SAMPLE_RATE)
    x = lfilter([1.0], [1.0, -rng.uniform(0.3, 0.9)], rng.standard_normal(n))
    env = np.exp(-np.arange(n) / (n / rng.uniform(2, 5))) * np.minimum(np.arange(n) / 80.0, 1.0)
    x = x * env
    return (0.4 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def sentence_pool(seed: int, size: int) -> Tuple[str, ...]:
    """The closed sentence set of a corpus: ``size`` distinct grammar sentences drawn from
    the corpus seed alone, so train, dev and eval share it."""
    rng = np.random.default_rng([seed, 77])
    pool: List[str] = []
    seen = set()
    while len(pool) < size:
        s = make_sentence(rng)
        if s not in seen:
            seen.add(s)
            pool.append(s)
    return tuple(pool)


def _sentence_drawer(spec: SessionSpec) -> Callable[[np.random.Generator], str]:
    """The open grammar, or a uniform draw from the corpus's closed sentence pool."""
    if spec.options.sentence_pool <= 0:
        return make_sentence
    pool = sentence_pool(spec.seed, spec.options.sentence_pool)
    return lambda rng: pool[int(rng.integers(len(pool)))]


def _check_audible(pcm0: np.ndarray, events: Sequence["Event"], session: str, array: str) -> None:
    """Every target utterance must be audible at the array's first microphone once the
    session is scaled to int16; one event with a runaway gain once silenced the rest."""
    for e in events:
        if e.kind == "speech" and np.abs(pcm0[e.start:e.end]).max(initial=0) < 8:
            raise RuntimeError(f"session {session}: the {array} array's utterance at "
                               f"{e.start / SAMPLE_RATE:.2f}-{e.end / SAMPLE_RATE:.2f} s is "
                               "silent after int16 scaling (a level out of range)")


def plan_dialogue(spec: SessionSpec, synth: SyllableSynth, rng: np.random.Generator) -> List[Event]:
    """Turn-taking dialogue filling the session: utterances, fillers, noises, overlaps."""
    n_spk = len(spec.speakers)
    limit = spec.n_samples - int(0.3 * SAMPLE_RATE)
    free = [0] * n_spk  # sample where each speaker may speak again
    events: List[Event] = []
    cursor = int(rng.uniform(0.3, 1.0) * SAMPLE_RATE)
    last_start, last_spk = 0, -1
    fails = 0
    draw = _sentence_drawer(spec)
    while fails < 5:
        if last_spk < 0 or rng.random() < 0.2:
            spk = int(rng.integers(n_spk))
        else:
            spk = int((last_spk + rng.integers(1, n_spk)) % n_spk)
        kind = str(rng.choice(KINDS, p=KIND_P))
        voice = spec.speakers[spk].voice
        if kind == "short":
            # an annotation sliver (< 40 ms) that dataprep must drop; no audio
            start = cursor + int(rng.uniform(0.05, 0.2) * SAMPLE_RATE)
            dur = int(rng.uniform(0.012, 0.035) * SAMPLE_RATE)
            if start < free[spk] or start + dur > limit:
                fails += 1
                continue
            text = str(rng.choice(["嗯", "啊", "好", "对", "<NOISE>"]))
            events.append(Event(spk, kind, start, start + dur, text))
            free[spk] = start + dur + int(0.1 * SAMPLE_RATE)
            cursor = start + dur
            continue
        if kind == "noise":
            wave, text, chars = _noise_burst(rng), "<NOISE>", []
        else:
            if kind == "filler":
                sentence = str(rng.choice(FILLERS)) + str(rng.choice(["。", "？", ""]))
            else:
                sentence = draw(rng)
                if rng.random() < spec.options.double_sentence_prob:
                    sentence += draw(rng)
            tokens: List[Token] = to_pinyin(sentence)
            utt = synthesize(synth, voice, tokens, rng)
            wave, chars = utt.wave, utt.chars
            text = "<DEAF>" if kind == "deaf" else sentence
        dur = len(wave)
        if events and spk != last_spk and rng.random() < spec.options.overlap_prob:
            back = int(rng.uniform(0.2, 0.8) * SAMPLE_RATE)
            start = max(cursor - back, last_start + int(0.3 * SAMPLE_RATE))
        else:
            start = cursor + int(rng.uniform(0.15, 1.2) * SAMPLE_RATE)
        start = max(start, free[spk] + int(0.2 * SAMPLE_RATE))
        if start + dur > limit:
            fails += 1
            continue
        chars = [(c, p, a + start, b + start) for c, p, a, b in chars]
        events.append(Event(spk, kind, start, start + dur, text, chars, wave))
        free[spk] = start + dur
        cursor = max(cursor, start + dur)
        last_start, last_spk = start, spk
    return events


def _stream_speech(synth: SyllableSynth, voices: Sequence[Voice], n: int,
                   rng: np.random.Generator, pause: Tuple[float, float],
                   heldout_text: bool = False) -> np.ndarray:
    """Continuous speech of ``n`` samples by ``voices`` taking turns (TV or babble talker).

    ``heldout_text``: strings of the inventory's characters instead of grammar sentences,
    so babble never says what the recogniser is trained to expect.
    """
    out = np.zeros(n, np.float32)
    pos = int(rng.uniform(0, 1.0) * SAMPLE_RATE)
    sentence = make_babble_text if heldout_text else make_sentence
    while pos < n:
        voice = voices[int(rng.integers(len(voices)))]
        w = synthesize(synth, voice, to_pinyin(sentence(rng)), rng).wave
        w = w[: n - pos]
        out[pos:pos + len(w)] += w
        pos += len(w) + int(rng.uniform(*pause) * SAMPLE_RATE)
    return out


def _tv_signal(synth: SyllableSynth, spec: SessionSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """TV sound: programme segments of speech, music, or speech over music."""
    speech = _stream_speech(synth, spec.tv_voices, n, rng, (0.2, 0.8), spec.options.heldout_babble)
    mus = rooms.music(n, rng)
    mus *= np.sqrt(rooms.power(speech) / rooms.power(mus))
    out = np.zeros(n, np.float32)
    pos = 0
    while pos < n:
        seg = int(rng.uniform(4, 15) * SAMPLE_RATE)
        kind = rng.integers(3)
        sl = slice(pos, min(pos + seg, n))
        if kind == 0:
            out[sl] = speech[sl]
        elif kind == 1:
            out[sl] = mus[sl]
        else:
            out[sl] = speech[sl] + 0.4 * mus[sl]
        pos += seg
    return out


def _textgrid_intervals(events: Sequence[Event], spk: int) -> List[Tuple[float, float, str]]:
    return [(e.start / SAMPLE_RATE, e.end / SAMPLE_RATE, e.text) for e in events if e.spk == spk]


def generate_session(spec: SessionSpec, root, synth: SyllableSynth) -> Dict:
    """Write all files of one session under ``root``; return its statistics."""
    ss = np.random.SeedSequence([spec.seed, spec.index])
    r_text, r_room, r_noise, r_video, r_det, r_file = (np.random.default_rng(s) for s in ss.spawn(6))
    opts = spec.options
    lay = Layout(root, spec.split, spec.session_id)
    lay.make_dirs(spec.has_middle_near)
    lay.remove_temps()
    n = spec.n_samples
    n_spk = len(spec.speakers)

    # ---- dialogue and dry speech ----------------------------------------------------
    events = plan_dialogue(spec, synth, r_text)
    active = np.zeros(n, bool)
    for e in events:
        if e.wave is not None and e.kind in ("speech", "filler", "deaf"):
            active[e.start:e.end] = True

    # ---- room acoustics ---------------------------------------------------------------
    cfg = rooms.noise_config(spec.config)
    geom = spec.room
    spk_pos = geom.speaker_positions(n_spk, r_room)
    n_babble = int(r_room.integers(opts.babble_talkers[0], opts.babble_talkers[1] + 1)) if cfg["babble"] else 0
    sources = [spk_pos]
    if cfg["tv"]:
        sources.append(np.array([geom.tv_pos]))
    if n_babble:
        sources.append(geom.random_positions(n_babble, r_room))
    src = np.concatenate(sources, axis=0)
    mics = geom.mic_positions(spec.has_middle_near)
    rirs = rooms.compute_rirs(geom, src, mics)
    m = mics.shape[1]
    # every voiced event's reverberant image, so each utterance's level can be set and measured
    images = [rooms.event_image(e.wave, rirs[e.spk], e.start, n) if e.wave is not None else None
              for e in events]
    noise_img = np.zeros((m, n), np.float32)
    k = n_spk
    if cfg["tv"]:
        noise_img += rooms.convolve(_tv_signal(synth, spec, n, r_noise), rirs[k], n)
        k += 1
    for b in range(n_babble):
        talker = _stream_speech(synth, spec.babble_voices, n, r_noise, (0.1, 0.6), opts.heldout_babble)
        noise_img += rooms.convolve(talker, rirs[k + b], n)
    ambient = np.stack([rooms.pink_noise(n, r_noise) for _ in range(m)])
    ambient *= np.sqrt(0.05 * rooms.power(noise_img) / rooms.power(ambient))
    noise_img += ambient

    far_snr = float(r_noise.uniform(*opts.snr_db))
    far = slice(0, rooms.N_FAR)
    spans = [(e.start, e.end) for e in events]
    gains = [1.0] * len(events)
    speech_far = rooms.sum_images(images, gains, far, n)
    noise_img[far] *= rooms.scale_to_snr(speech_far, noise_img[far], far_snr, active)
    if opts.target_snr_db is not None:
        # a separate stream: the calibration draw changes no other random choice
        r_snr = np.random.default_rng([spec.seed, spec.index, 7])
        targets = {i: float(r_snr.uniform(*opts.target_snr_db))
                   for i, e in enumerate(events) if e.kind == "speech"}
        gains = rooms.utterance_gains(images, spans, noise_img[0], targets, n)
        speech_far = rooms.sum_images(images, gains, far, n)
    snrs = {"far": rooms.utterance_snrs(images, gains, spans, noise_img[0], 0, n)}
    arrays = {"far": (far, speech_far)}
    if spec.has_middle_near:
        mid = slice(rooms.N_FAR, m)
        speech_mid = rooms.sum_images(images, gains, mid, n)
        # the middle array sits nearer the sofa: the far array's session SNR plus an offset
        achieved = snr_db(rooms.power(speech_far[0], active), rooms.power(noise_img[0]))
        noise_img[mid] *= rooms.scale_to_snr(speech_mid, noise_img[mid],
                                             achieved + opts.middle_snr_offset, active)
        snrs["middle"] = rooms.utterance_snrs(images, gains, spans, noise_img[rooms.N_FAR], rooms.N_FAR, n)
        arrays["middle"] = (mid, speech_mid)
    for name, (sl, speech) in arrays.items():
        pcm, _ = rooms.to_int16(speech + noise_img[sl])
        _check_audible(pcm[0], events, spec.session_id, name)
        for c in range(pcm.shape[0]):
            path = lay.far_wav(c) if name == "far" else lay.middle_wav(c)
            write_wav(path, pcm[c], SAMPLE_RATE)
    del images, noise_img, ambient, arrays
    if spec.has_middle_near:
        dry = np.zeros((n_spk, n), np.float32)
        for e, g in zip(events, gains):
            if e.wave is not None:
                dry[e.spk, e.start:e.end] += g * e.wave
        xt = 10 ** (opts.crosstalk_db / 20)
        total = dry.sum(0)
        snrs["near"] = [None] * len(events)  # the wearer's speech against crosstalk and the floor
        for i, s in enumerate(spec.speakers):
            near = dry[i] * (1 - xt) + xt * total
            near += 10 ** (-55 / 20) * r_noise.standard_normal(n).astype(np.float32)
            for j, e in enumerate(events):
                if e.kind == "speech" and e.spk == i and e.end > e.start:
                    own = dry[i, e.start:e.end]
                    snrs["near"][j] = round(float(snr_db(rooms.power(own), rooms.power(near[e.start:e.end] - own))), 2)
            write_wav(lay.near_wav(s.spk), rooms.to_int16(near, 0.5)[0], SAMPLE_RATE)

    # ---- transcripts and alignment ----------------------------------------------------
    for i, s in enumerate(spec.speakers):
        enc = "utf-16" if r_file.random() < opts.utf16_share else "utf-8"
        write_textgrid(lay.textgrid(s.spk), _textgrid_intervals(events, i), spec.duration, enc)
    align = {
        "session": spec.session_id, "sample_rate": SAMPLE_RATE, "duration": spec.duration,
        "speakers": {
            s.spk: [
                {"kind": e.kind, "start": e.start / SAMPLE_RATE, "end": e.end / SAMPLE_RATE,
                 "text": e.text,
                 "snr_db": {a: snrs[a][j] for a in snrs if snrs[a][j] is not None},
                 "chars": [[c, p, a / SAMPLE_RATE, b / SAMPLE_RATE, syllable_viseme(p) if p else ""]
                           for c, p, a, b in e.chars]}
                for j, e in enumerate(events) if e.spk == i
            ]
            for i, s in enumerate(spec.speakers)
        },
    }
    write_json(lay.alignment(), align)

    # ---- video and detections -----------------------------------------------------------
    motions = [HeadMotion.random(r_video, spec.duration) for _ in spec.speakers]
    if opts.head_motion != 1.0:
        motions = [replace(mo, amp=mo.amp * opts.head_motion) for mo in motions]
    tracks = [
        MouthTrack.from_syllables(
            [(a / SAMPLE_RATE, b / SAMPLE_RATE, p) for e in events if e.spk == i
             for _, p, a, b in e.chars if p])
        for i in range(n_spk)
    ]
    # lip-difficulty draws come from their own stream, so the defaults reproduce old corpora
    r_vis = np.random.default_rng([spec.seed, spec.index, 8])
    occluded = ([video.missing_mask(spec.n_frames, opts.occlusion_rate, r_vis) for _ in spec.speakers]
                if opts.occlusion_rate > 0 else None)
    flicker = video.flicker_track(spec.n_frames, opts.light_flicker, r_vis) if opts.light_flicker > 0 else None
    light = 0.65 if cfg["night"] else 1.0
    far_bg, tv_box = video.make_background(r_video, opts.far_size, light, cfg["tv"])
    layout = video.far_layout(n_spk, opts.far_size, [s.style for s in spec.speakers], r_video)
    people = [video.Person(s.spk, s.style, motions[i], tracks[i], layout[i][0], layout[i][1],
                           layout[i][2] * opts.far_face_scale)
              for i, s in enumerate(spec.speakers)]
    camera = video.Camera(opts.far_blur, opts.far_noise, opts.far_jpeg_quality, opts.far_downscale,
                          int(r_vis.integers(1 << 30)))
    views = [(lay.far_mp4(), video.Scene(far_bg, people, light, tv_box, int(r_video.integers(1 << 30)),
                                         occluded, flicker, camera if camera.active else None))]
    if spec.has_middle_near:
        for i, s in enumerate(spec.speakers):
            bg, _ = video.make_background(r_video, opts.middle_size, light, False)
            cx, cy, fw = video.middle_layout(opts.middle_size, s.style, r_video)
            person = video.Person(s.spk, s.style, motions[i], tracks[i], cx, cy, fw)
            views.append((lay.middle_mp4(s.spk), video.Scene(
                bg, [person], light, occluded=None if occluded is None else [occluded[i]],
                flicker=flicker)))
    missing = []
    for path, scene in views:
        boxes = video.render_video(scene, spec.n_frames, path)
        det = video.detections(boxes, opts.missing_detection_rate, r_det,
                               nested=bool(r_det.random() < opts.nested_json_share))
        write_json(lay.detection(path), det)
        frames = det["frames"] if "frames" in det else det
        found = sum(len(v) for v in frames.values())
        missing.append(1.0 - found / max(1, spec.n_frames * len(scene.people)))

    kept = [e for e in events if e.kind == "speech"]
    return {
        "session": spec.session_id,
        "split": spec.split,
        "duration": spec.duration,
        "speakers": [s.spk for s in spec.speakers],
        "utterances": len(kept),
        "characters": sum(sum(1 for _, p, _, _ in e.chars if p) for e in kept),
        "speech_seconds": round(sum(e.end - e.start for e in kept) / SAMPLE_RATE, 3),
        "fillers": sum(e.kind == "filler" for e in events),
        "noise_intervals": sum(e.kind == "noise" for e in events),
        "deaf_intervals": sum(e.kind == "deaf" for e in events),
        "short_intervals": sum(e.kind == "short" for e in events),
        "far_snr_db": round(far_snr, 2),
        "utterance_far_snr_db": [snrs["far"][j] for j, e in enumerate(events) if e.kind == "speech"],
        "rt60": round(geom.rt60, 3),
        "config": spec.config,
        "tv": cfg["tv"],
        "babble": cfg["babble"],
        "missing_detection_share": round(float(np.mean(missing)), 4),
    }
