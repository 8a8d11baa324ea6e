"""Pack a trained AVSR model into an espnet2.bin.pack-compatible zip.

    python -m espnet_avsr.bin.avsr_pack --asr_train_config exp/avsr/config.yaml \
        --asr_model_file exp/avsr/valid.acc.ave.pth --outpath exp/avsr/packed.zip

The config, the model and every file the config points to (global_mvn stats, bpe model,
token list if given as a path) are copied into a staging tree ``exp/...``, the config's
paths are rewritten to it, and ``espnet2.main_funcs.pack_funcs.pack`` writes the archive
(``meta.yaml`` with ``asr_train_config`` / ``asr_model_file``), so both
``espnet2.main_funcs.pack_funcs.unpack`` and ``AVSpeech2Text.from_packed`` read it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import yaml

from espnet2.main_funcs.pack_funcs import pack


def _referenced_files(value: Any, found: Dict[str, str]) -> Any:
    """Replace existing-file strings inside a config by staged names (exp/files/...)."""
    if isinstance(value, dict):
        return {k: _referenced_files(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_referenced_files(v, found) for v in value]
    if isinstance(value, str) and len(value) < 4096 and "\n" not in value and Path(value).is_file():
        src = str(Path(value).resolve())
        if src not in found:
            found[src] = f"exp/files/{len(found)}_{Path(value).name}"
        return found[src]
    return value


def pack_avsr(asr_train_config: str, asr_model_file: str, outpath: str) -> Path:
    """Write the archive; returns its path."""
    for f in (asr_train_config, asr_model_file):
        if not Path(f).is_file():
            raise FileNotFoundError(f"avsr_pack: no such file: {f}")
    with open(asr_train_config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise ValueError(f"{asr_train_config}: not a YAML mapping")
    for key in ("train_data_path_and_name_and_type", "valid_data_path_and_name_and_type",
                "train_shape_file", "valid_shape_file", "output_dir"):
        config.pop(key, None)  # training-only paths, meaningless elsewhere
    found: Dict[str, str] = {}
    config = _referenced_files(config, found)
    outpath = Path(outpath).resolve()
    with tempfile.TemporaryDirectory() as stage:
        st = Path(stage)
        (st / "exp/files").mkdir(parents=True)
        for src, name in found.items():
            shutil.copyfile(src, st / name)
        shutil.copyfile(asr_model_file, st / "exp/model.pth")
        with open(st / "exp/config.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
        cwd = os.getcwd()
        os.chdir(st)
        try:
            pack(
                files={"asr_model_file": "exp/model.pth"},
                yaml_files={"asr_train_config": "exp/config.yaml"},
                option=list(found.values()),
                outpath=str(outpath),
            )
        finally:
            os.chdir(cwd)
    logging.info(f"packed {len(found)} referenced file(s) into {outpath}")
    return outpath


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Pack an AVSR model (espnet2.bin.pack format)")
    p.add_argument("--asr_train_config", required=True)
    p.add_argument("--asr_model_file", required=True)
    p.add_argument("--outpath", required=True, help="output .zip (or .tar.gz)")
    return p


def main(cmd: Optional[Sequence[str]] = None) -> None:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s: %(message)s")
    args = get_parser().parse_args(cmd)
    pack_avsr(args.asr_train_config, args.asr_model_file, args.outpath)


if __name__ == "__main__":
    main()
