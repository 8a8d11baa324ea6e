"""Initialise an AV model from trained parts: the audio side from an ESPnet ASR model (A0), and
optionally the video branch from a lip reader (V0); write init.pth.

    python -m espnet_avsr.bin.init_avsr --asr_model_file exp/asr_a0/valid.acc.ave.pth \
        --asr_train_config exp/asr_a0/config.yaml --avsr_config conf/train_avsr.yaml \
        --out exp/avsr_init/init.pth
    python -m espnet_avsr.bin.avsr_train ... --init_param exp/avsr_init/init.pth

With ``--vsr_model_file exp/V0/valid.acc.ave.pth`` (a lip reader, ``encoder:
video_conformer``) the video branch (visual front-end, projection, first N video blocks)
comes from V0 too; everything else V0 holds (its head, later blocks) is not used.

The file holds only the AV-named tensors taken from A0 (and V0) (ESPnet's ``--init_param`` loads a
partial state dict); mapped / unmapped keys are logged and written to ``<out>.report.txt``.
To initialise an AV model from another AV model (AV0 -> AV3), pass that checkpoint to
``--init_param`` directly.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

import torch
import yaml

from espnet_avsr.common.checkpoint import load_state_file
from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.models.asr_init import MappingReport, map_asr_to_avsr, map_vsr_to_avsr
from espnet_avsr.tasks.avsr import AVSRTask


def build_avsr_model(avsr_config: str, token_list, normalize_conf: Optional[dict]):
    """The AV model described by ``avsr_config`` (only its parameter names/shapes matter)."""
    args = AVSRTask.get_parser().parse_args(["--config", avsr_config])
    args.token_list = token_list
    if args.normalize == "global_mvn" and not (args.normalize_conf or {}).get("stats_file"):
        if normalize_conf and normalize_conf.get("stats_file") and Path(normalize_conf["stats_file"]).is_file():
            args.normalize_conf = dict(normalize_conf)
        else:
            args.normalize = None  # normalize stats come from the AV run's own stats file
    return AVSRTask.build_model(args)


def _report_lines(title: str, rep: MappingReport) -> list:
    lines = [f"## {title}: {rep.summary(per_source=True)}", "", "# mapped (avsr <- source)"]
    lines += [f"{k} <- {v}" for k, v in rep.mapped.items()]
    lines += ["", "# shape mismatch"] + rep.shape_mismatch
    lines += ["", "# unused source tensors"] + rep.unused_asr
    return lines


def init_avsr(asr_model_file: str, avsr_config: str, out: str, asr_train_config: Optional[str] = None,
                  token_list: Optional[str] = None, vsr_model_file: Optional[str] = None):
    """Write the mapped state dict to ``out``; returns the MappingReport of A0 (V0 merged in)."""
    asr_conf = {}
    if asr_train_config:
        with open(asr_train_config, encoding="utf-8") as f:
            asr_conf = yaml.safe_load(f) or {}
    tokens = token_list or asr_conf.get("token_list")
    if tokens is None:
        raise ValueError("init_avsr: give --token_list or --asr_train_config (with token_list)")
    model = build_avsr_model(avsr_config, tokens, asr_conf.get("normalize_conf"))
    asr_state = load_state_file(asr_model_file)
    enc = model.encoder
    avsr_state = model.state_dict()
    mapped, rep = map_asr_to_avsr(asr_state, avsr_state, enc.num_fusion_blocks, enc.num_shared_blocks)
    if not mapped:
        raise ValueError(f"{asr_model_file}: no parameter could be mapped onto {avsr_config}")
    lines = _report_lines(f"A0 {asr_model_file}", rep)
    if vsr_model_file:
        vsr_state = load_state_file(vsr_model_file)
        vmapped, vrep = map_vsr_to_avsr(vsr_state, avsr_state, enc.num_fusion_blocks)
        if vrep.shape_mismatch or not any(k.startswith("video_frontend.") for k in vmapped):
            # half a video branch would be worse than a fresh one
            raise ValueError(
                f"{vsr_model_file}: its video branch does not fit {avsr_config} "
                f"(shape mismatches: {vrep.shape_mismatch[:3]}); is it a lip reader (encoder: video_conformer) "
                "with the same video_frontend_conf and output_size?"
            )
        mapped.update(vmapped)
        rep.mapped.update(vmapped)
        rep.shape_mismatch += vrep.shape_mismatch
        lines += [""] + _report_lines(f"V0 {vsr_model_file}", vrep)
        logging.info("V0: %s", vrep.summary(per_source=True))
    rep.unmapped_avsr = [k for k in avsr_state if k not in mapped]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(mapped, out)
    lines = ["in all: " + rep.summary(), ""] + lines + ["", "# AV tensors left as initialised"] + rep.unmapped_avsr
    Path(str(out) + ".report.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    logging.info(rep.summary())
    if rep.shape_mismatch:
        logging.warning("shape mismatches (source and AV sizes differ?): %s", rep.shape_mismatch[:5])
    return rep


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Map A0 (ESPnet ASR) weights onto an AV-Conformer")
    p.add_argument("--asr_model_file", required=True)
    p.add_argument("--asr_train_config", default=None, help="A0 config.yaml (token_list, normalize stats)")
    p.add_argument("--avsr_config", required=True)
    p.add_argument("--token_list", default=None, help="overrides the A0 config's token list")
    p.add_argument("--vsr_model_file", default=None, help="a lip reader V0 (encoder: video_conformer) for the video branch")
    p.add_argument("--out", required=True)
    add_log_level(p)
    return p


def _body(a: argparse.Namespace) -> None:
    init_avsr(a.asr_model_file, a.avsr_config, a.out, a.asr_train_config, a.token_list, a.vsr_model_file)


def main(cmd: Optional[Sequence[str]] = None) -> None:
    run_cli(get_parser(), _body, None if cmd is None else list(cmd), replace_handlers=False)


if __name__ == "__main__":
    main()
