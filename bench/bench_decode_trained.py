"""Decoding real-time factor of *trained* models, with the settings the result tables use.

``bench_decode.py`` times the stage-10 process layout with random weights (whose beam search
runs to the maximum length). This one answers the other question: how fast does a trained
model decode, per second of audio, under the recipe's decode config? For every model given it
decodes the same ``--utts`` utterances of a dump set, in one process after the model is built
(start-up is excluded and reported apart), under:

* beam search with ``--decode_config`` (ESPnet's ``BatchBeamSearch``, CTC prefix scoring),
* CTC greedy search (``decode_conditions --mode ctc_greedy``),

an AV model at 0 % and 100 % missing video, an audio-only model (stock ESPnet ``Speech2Text``)
once. RTF = decode wall time / audio seconds; the encoder's share and the CTC prefix scorer's
(``batch_score_partial``) are timed apart.

``--setups scan/cached scan/espnet loop/espnet`` times the beam search under each
``CTC/DECODER`` scorer pair side by side (CTC prefix scorer ``scan``, ours, or ``loop``,
ESPnet's; decoder scorer ``cached``, ours, or ``espnet``, its ``batch_score``): every
utterance is decoded under each, in rotating order, and the row gives every RTF, the first
setup's RTF over each other's and whether the texts are the same.

    OMP_NUM_THREADS=1 tools/venv/bin/python bench/bench_decode_trained.py \\
        --exp egs2/misp_avsr/avsr1/exp/A0 egs2/misp_avsr/avsr1/exp/AV0 \\
        --data egs2/misp_avsr/avsr1/dump/raw/eval_far --utts 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONF = ROOT / "egs2/misp_avsr/avsr1/conf"


def load_utts(data: Path, n: int) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    from espnet_avsr.common.kaldi_dir import read_kv

    wav = read_kv(data / "wav.scp")
    roi = read_kv(data / "roi.scp") if (data / "roi.scp").is_file() else {}
    out = []
    for key in sorted(wav)[:n]:
        speech, rate = sf.read(wav[key], dtype="float32")
        if rate != 16000:
            raise ValueError(f"{wav[key]}: {rate} Hz, expected 16000")
        video = np.load(roi[key]) if key in roi else None
        out.append((key, speech, video))
    return out


def is_av(exp: Path) -> bool:
    from espnet_avsr.bin.avsr_pack import task_of

    return task_of(yaml.safe_load((exp / "config.yaml").read_text())) == "avsr"


def build(exp: Path, decode_config: Path, av: bool):
    """(decoder object, model) as the recipe's decoding builds them."""
    dconf = yaml.safe_load(decode_config.read_text()) or {}
    kw = dict(beam_size=dconf.get("beam_size", 10), ctc_weight=dconf.get("ctc_weight", 0.3),
              penalty=dconf.get("penalty", 0.0), maxlenratio=dconf.get("maxlenratio", 0.0),
              minlenratio=dconf.get("minlenratio", 0.0), nbest=1)
    from espnet_avsr.bin.avsr_pack import resolve_model_dir

    files = resolve_model_dir(str(exp))  # the checkpoint the recipe decodes (and an MS-Adapter's base)
    if av:
        from espnet_avsr.bin.avsr_inference import AVSpeech2Text

        s2t = AVSpeech2Text(**files, **kw)
        return s2t, s2t.model
    from espnet2.bin.asr_inference import Speech2Text

    s2t = Speech2Text(**files, lm_weight=0.0, **kw)
    return s2t, s2t.asr_model


def time_condition(s2t, model, utts, av: bool, missing: float, greedy: bool,
                   setups: Tuple[str, ...] = ()) -> Dict[str, Dict[str, float]]:
    """{decoder: timings}: ``greedy``, or one entry per ``CTC/DECODER`` setup (none given: as built)."""
    from espnet_avsr.bin.decode_conditions import CTCGreedySearch
    from espnet_avsr.models.cached_decoder import use_decoder_scorer
    from espnet_avsr.models.ctc_prefix_scan import use_ctc_scorer

    beam = s2t.beam_search
    if greedy:
        s2t.beam_search = CTCGreedySearch(model.ctc, model.sos, model.eos)
        kinds: Tuple[str, ...] = ("greedy",)
    else:
        kinds = tuple(setups) or ("as built",)
    acc = {k: {"enc": 0.0, "ctc": 0.0, "total": 0.0, "hyps": []} for k in kinds}
    cur = acc[kinds[0]]
    orig_encode = model.encode

    def timed(fn, key):  # the share of one part of each call
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            cur[key] += time.perf_counter() - t
            return out
        return wrapper

    model.encode = timed(orig_encode, "enc")
    try:
        for i, (key, speech, video) in enumerate(utts):
            for kind in kinds[i % len(kinds):] + kinds[:i % len(kinds)]:  # rotating order: load drifts hit all
                cur = acc[kind]
                if "/" in kind:
                    ctc_kind, dec_kind = kind.split("/")
                    use_ctc_scorer(s2t.beam_search, ctc_kind)
                    use_decoder_scorer(s2t.beam_search, dec_kind)
                ctc = getattr(s2t.beam_search, "scorers", {}).get("ctc")
                if ctc is not None:
                    ctc.batch_score_partial = timed(type(ctc).batch_score_partial.__get__(ctc), "ctc")
                t = time.perf_counter()
                if av:
                    mask = None if missing == 0 or video is None else np.ones(len(video), dtype=bool)
                    res = s2t(speech, video, mask)
                else:
                    res = s2t(torch.from_numpy(speech))
                cur["total"] += time.perf_counter() - t
                cur["hyps"].append(res[0][0] if res else "")
    finally:
        model.encode = orig_encode
        s2t.beam_search = beam
    audio = sum(len(s) for _, s, _ in utts) / 16000
    return {k: {"rtf": v["total"] / audio, "encoder_rtf": v["enc"] / audio, "ctc_rtf": v["ctc"] / audio,
                "decode_s": v["total"], "audio_s": audio, "hyps": v["hyps"]} for k, v in acc.items()}


def setup_arg(value: str) -> str:
    """``CTC/DECODER`` (e.g. ``scan/cached``), checked against the scorer names."""
    from espnet_avsr.models.cached_decoder import DECODER_SCORERS
    from espnet_avsr.models.ctc_prefix_scan import CTC_SCORERS

    ctc, _, dec = value.partition("/")
    if ctc not in CTC_SCORERS or dec not in DECODER_SCORERS:
        raise argparse.ArgumentTypeError(f"{value!r}: expected CTC/DECODER, CTC in {CTC_SCORERS}, "
                                          f"DECODER in {DECODER_SCORERS}")
    return value


def main(cmd=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", type=Path, nargs="+", required=True, help="trained model dirs (config.yaml + *.pth)")
    p.add_argument("--data", type=Path, required=True, help="dump dir with wav.scp (and roi.scp)")
    p.add_argument("--utts", type=int, default=20)
    p.add_argument("--decode_config", type=Path, default=None,
                   help="default: conf/decode_avsr.yaml (AV) / conf/decode_asr.yaml (audio-only)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--setups", nargs="+", default=["scan/cached"], type=setup_arg,
                   help="CTC/DECODER scorers of the beam search (scan|loop / cached|espnet); several: "
                        "timed side by side (first = rtf_beam)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(cmd)
    torch.set_num_threads(a.threads)
    exps = [e.resolve() for e in a.exp]
    data = a.data.resolve()
    os.chdir(exps[0].parent.parent)  # configs and scp files hold paths relative to the recipe dir
    utts = load_utts(data, a.utts)
    rows = []
    for exp in exps:
        av = is_av(exp)
        dconf = a.decode_config or CONF / ("decode_avsr.yaml" if av else "decode_asr.yaml")
        t = time.perf_counter()
        s2t, model = build(exp, dconf, av)
        startup = time.perf_counter() - t
        for missing in ((0.0, 1.0) if av else (0.0,)):
            beams = time_condition(s2t, model, utts, av, missing, greedy=False, setups=tuple(a.setups))
            greedy = time_condition(s2t, model, utts, av, missing, greedy=True)["greedy"]
            beam = beams[a.setups[0]]
            same = sum(x == y for x, y in zip(beam["hyps"], greedy["hyps"]))
            row = {"model": exp.name, "av": av, "missing": missing, "decode_config": dconf.name,
                   "build_s": round(startup, 2), "audio_s": round(beam["audio_s"], 1),
                   "rtf_beam": round(beam["rtf"], 4), "rtf_ctc_greedy": round(greedy["rtf"], 4),
                   "encoder_rtf": round(greedy["encoder_rtf"], 4),
                   "ctc_share_beam": round(beam["ctc_rtf"] / beam["rtf"], 3),
                   "beam_over_greedy": round(beam["rtf"] / greedy["rtf"], 2),
                   "same_text_greedy_vs_beam": f"{same}/{len(utts)}"}
            for k, v in beams.items():  # every scorer timed, side by side
                row[f"rtf_beam_{k}"] = round(v["rtf"], 4)
                row[f"ctc_share_{k}"] = round(v["ctc_rtf"] / v["rtf"], 3)
            (k1, v1), *others = beams.items()
            for k2, v2 in others:
                row[f"rtf_{k1}_over_{k2}"] = round(v1["rtf"] / v2["rtf"], 3)
                row[f"same_text_{k1}_vs_{k2}"] = f"{sum(x == y for x, y in zip(v1['hyps'], v2['hyps']))}/{len(utts)}"
            rows.append(row)
    res = {"data": str(a.data), "utts": len(utts), "threads": torch.get_num_threads(), "rows": rows}
    if a.json:
        print(json.dumps(res))
    else:
        print(f"{len(utts)} utterances of {a.data}, {torch.get_num_threads()} thread(s)")
        cols = ["model", "missing", "rtf_beam", "rtf_ctc_greedy", "encoder_rtf", "ctc_share_beam",
                "beam_over_greedy", "same_text_greedy_vs_beam", "build_s"]
        cols += [c for c in rows[0] if c not in cols and c.startswith(("rtf_", "ctc_share_", "same_text_"))]
        print("\t".join(cols))
        for r in rows:
            print("\t".join(str(r.get(c, "")) for c in cols))
    return res


if __name__ == "__main__":
    main()
