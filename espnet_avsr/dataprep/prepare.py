"""MISP release layout -> one Kaldi data dir per set and field (DESIGN §1-2).

Reads the per-speaker TextGrids, applies the transcript rules, and pairs each
utterance with its recording (far/middle array or near headset), its video and
the video's detection JSON. Every dropped interval and every utterance without
video is counted in `prep_report.json`.
"""
import logging
import re
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import soundfile as sf

from espnet_avsr.common.errors import DataPrepError
from espnet_avsr.common.fileio import atomic_write_json
from espnet_avsr.common.kaldi_dir import join_paths, save_dir
from espnet_avsr.common.naming import FIELDS, Session, parse_near_stem, speaker_label, utt_id
from espnet_avsr.dataprep.transcripts import TEXT_TIER, filter_interval, read_text_tier

PathLike = Union[str, Path]
VIDEO_FIELDS = ("far", "middle")


def _array_channels(audio_dir: Path, session: Session, tag: str) -> Tuple[List[Path], int]:
    """Channel files `<session>_<tag>_<ch>.wav` sorted by channel number, and the first number.

    The release numbers channels from 0 (`_Far_0.wav` .. `_Far_5.wav`); 1-based trees are
    accepted too. Any other start or a gap is an error naming the missing file.
    """
    pat = re.compile(rf"^{re.escape(session.id)}_{tag}_(\d+)\.wav$")
    found = []
    if audio_dir.is_dir():
        for p in audio_dir.iterdir():
            m = pat.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    found.sort()
    numbers = [n for n, _ in found]
    if not numbers:
        return [], 0
    base = numbers[0]
    if base > 1:
        raise DataPrepError(
            audio_dir / f"{session.id}_{tag}_0.wav",
            f"channel 0 missing (found channels {numbers}); an array's channels are numbered from 0 (or 1)",
        )
    if len(set(numbers)) != len(numbers):
        raise DataPrepError(audio_dir, f"{session.id}_{tag}: a channel number appears twice ({numbers})")
    if numbers != list(range(base, base + len(numbers))):
        gap = next(n for n in range(base, numbers[-1] + 1) if n not in numbers)
        raise DataPrepError(
            audio_dir / f"{session.id}_{tag}_{gap}.wav",
            f"channel {gap} missing (found channels {numbers}); an array needs channels {base}..N without gaps",
        )
    return [p for _, p in found], base


def _check_mono(path: Path) -> None:
    """One channel per file: a stereo file in a channel's place would be read as its first channel."""
    try:
        info = sf.info(str(path))
    except Exception as e:  # noqa: BLE001 - soundfile raises several types on bad files
        raise DataPrepError(path, f"cannot read audio header ({e})") from None
    if info.channels != 1:
        raise DataPrepError(
            path, f"has {info.channels} channels where one channel is expected (MISP stores each "
            "array channel and each headset in its own mono file)"
        )


def _recording(
    root: Path, set_name: str, field: str, session: Session, spk: str
) -> Tuple[str, Path, List[Path], int]:
    """`(rec_id, wav path, channel paths, first channel number)` for one speaker; error if absent."""
    audio_dir = root / "audio" / set_name / field
    if field == "near":
        path = audio_dir / f"{session.near_rec(spk)}.wav"
        if not path.is_file():
            raise DataPrepError(path, f"near-field audio missing for speaker {spk} of session {session.id}")
        _check_mono(path)
        return session.near_rec(spk), path, [path], 0
    tag = "Far" if field == "far" else "Middle"
    chans, base = _array_channels(audio_dir, session, tag)
    if not chans:
        raise DataPrepError(
            audio_dir / f"{session.id}_{tag}_0.wav", f"no {field}-field audio for session {session.id}"
        )
    for c in chans:
        _check_mono(c)
    rec = session.far_rec() if field == "far" else session.middle_rec()
    return rec, chans[0], chans, base


def _video(root: Path, set_name: str, video_field: str, session: Session, spk: str) -> Tuple[str, Path, Path]:
    """`(video_id, mp4 path, detection json path)` for one speaker in one camera."""
    vid = session.far_video() if video_field == "far" else session.middle_video(spk)
    mp4 = root / "video" / set_name / video_field / f"{vid}.mp4"
    js = root / "detection" / set_name / video_field / f"{vid}.json"
    return vid, mp4, js


def _check_split_disjoint(root: Path, set_name: str, sessions: Dict[str, Path]) -> None:
    """A session in two splits (e.g. train and eval) would leak test speech into training."""
    tr = root / "transcription"
    for other in sorted(p for p in tr.iterdir() if p.is_dir() and p.name != set_name):
        for tg in sorted(other.iterdir()):
            parsed = parse_near_stem(tg.stem) if tg.suffix.lower() == ".textgrid" else None
            if parsed is not None and parsed[0].id in sessions:
                raise DataPrepError(
                    tg, f"session {parsed[0].id} is in set {other.name} and in set {set_name} "
                    f"({sessions[parsed[0].id]}); a session belongs to one split"
                )


def default_video_fields(field: str) -> Tuple[str, ...]:
    """Camera preference per audio field: near uses the speaker's middle camera, else far."""
    return {"far": ("far",), "middle": ("middle",), "near": ("middle", "far")}[field]


def prepare_misp_data(
    misp_root: PathLike,
    set_name: str,
    field: str,
    out: PathLike,
    video_field: Optional[str] = None,
    allow_missing_video: Optional[bool] = None,
    tier: str = TEXT_TIER,
) -> Dict:
    """Write the data dir `out` for one set/field and return the report dict.

    allow_missing_video: keep audio of utterances whose video file is missing
    (recorded in the report). Defaults to True for `eval` (as the MISP rules
    allow), False elsewhere, where a missing video is an error naming the file.
    """
    root = Path(misp_root)
    out = Path(out)
    if field not in FIELDS:
        raise ValueError(f"--field must be one of {FIELDS}, got {field!r}")
    if video_field is not None and video_field not in VIDEO_FIELDS:
        raise ValueError(f"--video_field must be one of {VIDEO_FIELDS}, got {video_field!r}")
    if allow_missing_video is None:
        allow_missing_video = set_name.startswith("eval")
    vfields = (video_field,) if video_field else default_video_fields(field)

    tg_dir = root / "transcription" / set_name
    if not tg_dir.is_dir():
        raise DataPrepError(tg_dir, "transcription directory not found")
    textgrids = sorted(p for p in tg_dir.iterdir() if p.suffix.lower() == ".textgrid")
    if not textgrids:
        raise DataPrepError(tg_dir, "no .TextGrid files")

    files: Dict[str, "OrderedDict[str, str]"] = {
        n: OrderedDict()
        for n in ("text", "utt2spk", "segments", "wav.scp", "video.scp", "detection.scp", "utt2video")
    }
    if field != "near":
        files["channels.scp"] = OrderedDict()
    drops: Counter = Counter()
    drop_items: List[Dict] = []
    no_video: List[str] = []
    missing_json: List[str] = []
    sessions: Dict[str, Path] = {}
    n_intervals = 0
    n_chans: Dict[str, Tuple[int, Path, int]] = {}

    for tg_path in textgrids:
        parsed = parse_near_stem(tg_path.stem)
        if parsed is None:
            raise DataPrepError(tg_path, "file name is not <session>_Near_<spk>.TextGrid")
        session, spk = parsed
        if spk not in session.speakers:
            logging.warning("%s: speaker %s is not among the session's speakers %s", tg_path, spk, session.speakers)
        sessions.setdefault(session.id, tg_path)
        rec, wav, chans, base = _recording(root, set_name, field, session, spk)
        intervals = read_text_tier(tg_path, tier)
        kept_utts = []
        prev_end = float("-inf")
        for iv in intervals:
            n_intervals += 1
            kept, reason = filter_interval(iv)
            if kept is not None and iv.start < prev_end - 1e-9:
                kept, reason = None, "overlaps_previous"
            if kept is not None:
                prev_end = max(prev_end, iv.end)
            if kept is not None:
                uid = utt_id(spk, session, kept.start, kept.end)
                if uid in files["text"]:
                    reason = "duplicate_id"
            if reason is not None:
                drops[reason] += 1
                drop_items.append(
                    {"file": str(tg_path), "start": iv.start, "end": iv.end, "label": iv.label, "reason": reason}
                )
                logging.debug("drop %s [%.3f, %.3f] %r: %s", tg_path.name, iv.start, iv.end, iv.label, reason)
                continue
            files["text"][uid] = kept.text
            files["utt2spk"][uid] = speaker_label(spk)
            files["segments"][uid] = f"{rec} {kept.start:.2f} {kept.end:.2f}"
            kept_utts.append(uid)
        if not kept_utts:
            continue
        files["wav.scp"][rec] = str(wav.resolve())
        if "channels.scp" in files:
            files["channels.scp"][rec] = join_paths([c.resolve() for c in chans])
            n_chans[rec] = (len(chans), chans[0], base)

        chosen = None
        for vf in vfields:
            vid, mp4, js = _video(root, set_name, vf, session, spk)
            if mp4.is_file():
                chosen = (vid, mp4, js)
                break
        if chosen is None:
            vid, mp4, _ = _video(root, set_name, vfields[-1], session, spk)
            if not allow_missing_video:
                raise DataPrepError(
                    mp4, f"video missing for speaker {spk} (set {set_name}); pass --allow_missing_video to keep audio only"
                )
            logging.warning("%s: video missing, keeping %d utterances audio-only", mp4, len(kept_utts))
            no_video.extend(kept_utts)
            continue
        vid, mp4, js = chosen
        files["video.scp"][vid] = str(mp4.resolve())
        files["detection.scp"][vid] = str(js.resolve())
        if not js.is_file() and str(js) not in missing_json:
            logging.warning("%s: detection JSON missing (lip ROI extraction will fail for %s)", js, vid)
            missing_json.append(str(js))
        for uid in kept_utts:
            files["utt2video"][uid] = f"{vid} {spk}"

    _check_split_disjoint(root, set_name, sessions)
    if not files["text"]:
        raise DataPrepError(tg_dir, f"no utterance survived filtering ({dict(drops)})")
    counts = Counter(n for n, _, _ in n_chans.values())
    if len(counts) > 1:  # e.g. one far array with 5 of its 6 channels
        usual = counts.most_common(1)[0][0]
        rec, (n, first, base) = min(n_chans.items(), key=lambda kv: (kv[1][0] == usual, kv[1][0]))
        raise DataPrepError(
            first.parent / f"{rec}_{base + n}.wav" if n < usual else first,
            f"recording {rec} has {n} channels, other {field} recordings have {usual} (channel counts {dict(counts)})",
        )
    bases = Counter(b for _, _, b in n_chans.values())
    if len(bases) > 1:  # one array renamed 1-based among 0-based ones: the channel order would differ
        usual = bases.most_common(1)[0][0]
        rec, (_, first, base) = next(kv for kv in sorted(n_chans.items()) if kv[1][2] != usual)
        raise DataPrepError(
            first, f"recording {rec} numbers its channels from {base}, other {field} recordings from {usual}"
        )
    save_dir(out, files)
    report = {
        "set": set_name,
        "field": field,
        "num_sessions": len(sessions),
        "num_intervals": n_intervals,
        "num_utts": len(files["text"]),
        "dropped": dict(sorted(drops.items())),
        "num_dropped": sum(drops.values()),
        "dropped_items": drop_items,
        "num_no_video": len(no_video),
        "no_video_utts": sorted(no_video),
        "missing_detection_json": sorted(missing_json),
    }
    atomic_write_json(out / "prep_report.json", report)
    logging.info(
        "%s/%s: %d utterances from %d sessions; dropped %d intervals %s; %d without video",
        set_name, field, report["num_utts"], len(sessions), report["num_dropped"], report["dropped"], len(no_video),
    )
    return report
