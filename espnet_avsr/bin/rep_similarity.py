#!/usr/bin/env python3
"""ASR vs AVSR encoder representations: sample x sample cosine matrices and linear CKA."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from espnet_avsr.common.cli import add_log_level, main_exit, run_cli
from espnet_avsr.analysis.representations import TASKS, MissingSpec, collect_pooled, load_model, task_class
from espnet_avsr.eval.io import parse_meta
from espnet_avsr.eval.significance import keys_across_sessions
from espnet_avsr.eval.similarity import parse_layer_pairs, write_similarity


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Similarity of mean-pooled encoder representations of an ASR and an AVSR model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--asr_train_config", help="config.yaml of the stock ESPnet ASR model")
    parser.add_argument("--asr_model_file", required=True)
    parser.add_argument("--avsr_train_config", help="config.yaml of the AVSR model")
    parser.add_argument("--avsr_model_file", required=True)
    parser.add_argument("--avsr_task", choices=TASKS, default="avsr",
                        help="task that builds the second model (asr: compare two ASR models, no video)")
    parser.add_argument("--data_path_and_name_and_type", action="append", required=True,
                        help="e.g. dump/raw/eval_far/wav.scp,speech,sound and dump/raw/eval_far/roi.scp,video,npy")
    parser.add_argument("--key_file", help="only these utterances (first column)")
    parser.add_argument("--layers", nargs="+", default=["output"],
                        help="ASR_LAYER:AVSR_LAYER pairs (a single name means the same on both sides); "
                        "ASR layers: output | encoders.<i>; AVSR layers: output | keys of encode()'s hidden dict")
    parser.add_argument("--num_samples", type=int, default=None,
                        help="this many utterances; without --key_file taken round-robin over the sessions "
                        "(MISP ids; written to OUT/sample_keys.scp), with it the first of the key file")
    parser.add_argument("--plot_samples", type=int, default=16, help="samples shown in the PNG heatmaps")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--missing_rate", type=float, default=0.0, help="test-time missing video frames on the AVSR side")
    parser.add_argument("--missing_pattern", default="random", choices=["random", "segment", "utterance"])
    parser.add_argument("--missing_fill", default="zeros", choices=["zeros", "repeat_last"])
    parser.add_argument("--missing_seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output dir")
    parser.add_argument("--meta", nargs="*", default=[], help="key=value pairs stored in rep_similarity.json "
                        "(e.g. model=AVd0.3 train_dropout=0.3 ref_model=A0)")
    add_log_level(parser)
    return parser


def _sample_keys(scp: str, n: int, out: str) -> str:
    """Spread the sample over the set's sessions (its first n keys would come from a few), so the
    claims can resample sessions; ids that name no session keep the first n."""
    keys = [line.split(maxsplit=1)[0] for line in Path(scp).read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        chosen = keys_across_sessions(keys, n)
    except ValueError as e:
        logging.warning("%s: %s; sampling its first %d utterances", scp, e, n)
        chosen = keys[:n]
    path = Path(out) / "sample_keys.scp"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(k + "\n" for k in chosen), encoding="utf-8")
    return str(path)


def _body(args: argparse.Namespace) -> dict:
    meta = parse_meta(args.meta)
    meta.setdefault("missing_rate", args.missing_rate)
    pairs = parse_layer_pairs(args.layers)
    asr_layers = list(dict.fromkeys(a for a, _ in pairs))
    avsr_layers = list(dict.fromkeys(v for _, v in pairs))

    if args.num_samples and not args.key_file:
        args.key_file = _sample_keys(args.data_path_and_name_and_type[0].split(",")[0], args.num_samples, args.out)
    asr_model, _ = load_model("asr", args.asr_train_config, args.asr_model_file, args.device)
    avsr_model, avsr_args = load_model(args.avsr_task, args.avsr_train_config, args.avsr_model_file, args.device)
    task = task_class(args.avsr_task)
    loader = task.build_streaming_iterator(
        data_path_and_name_and_type=[tuple(s.split(",")) for s in args.data_path_and_name_and_type],
        dtype="float32",
        batch_size=args.batch_size,
        key_file=args.key_file,
        num_workers=args.num_workers,
        preprocess_fn=task.build_preprocess_fn(avsr_args, False),
        collate_fn=task.build_collate_fn(avsr_args, False),
        allow_variable_data_keys=True,
        inference=True,
    )
    rep = collect_pooled(
        loader, asr_model, avsr_model, asr_layers, avsr_layers, avsr_task=args.avsr_task,
        missing=MissingSpec(args.missing_rate, args.missing_pattern, args.missing_fill, args.missing_seed),
        device=args.device, max_samples=args.num_samples,
    )
    result = write_similarity(rep, pairs, args.out, meta=meta, plot_samples=args.plot_samples)
    for rec in result["pairs"]:
        logging.info("%s vs %s: CKA %s, diagonal contrast %s", rec["asr_layer"], rec["avsr_layer"], rec["cka"], rec.get("diag_contrast"))
    return result


def main(cmd: Optional[List[str]] = None) -> dict:
    return run_cli(get_parser(), _body, cmd)


if __name__ == "__main__":
    main_exit(main)
