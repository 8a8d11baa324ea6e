"""Pack a trained model of any kind into an ``espnet2.bin.pack asr`` archive.

    python -m espnet_avsr.bin.avsr_pack --asr_train_config exp/AV0/config.yaml \
        --asr_model_file exp/AV0/valid.acc.ave.pth --outpath exp/AV0/AV0_valid.acc.ave.zip

Every kind becomes one self-contained, decodable model:

- audio-only ESPnet ASR (A0), lip reader (V0), AV model (AV0..AV3): config + weights;
- MDA-KD (AV5): the student alone; the config becomes ``model: espnet`` without the KD
  options, so the teacher's files are neither packed nor needed;
- MS-Adapter (AV6): its checkpoints hold only the adapters, so the base weights
  (``--base_model_file``, default: the config's ``init_param``) are merged in and the
  config says ``save_adapters_only: false``.

The config, the weights and every file the config points to (global_mvn stats, bpe model)
are staged as ``exp/...``, the config's paths are rewritten to the staged names, the staged
model is built and loaded strictly (a broken archive fails here, not at a user's), and
``espnet2.bin.pack asr`` writes the archive (``meta.yaml`` with ``asr_train_config`` and
``asr_model_file``), which ``espnet2.main_funcs.pack_funcs.unpack``,
``Speech2Text.from_pretrained`` (A0) and ``AVSpeech2Text.from_pretrained`` read.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import yaml

from espnet2.bin.pack import main as espnet_pack_main

from espnet_avsr.common.cli import add_log_level, run_cli
from espnet_avsr.common.experiment import CHECKPOINTS

# Keys only training uses; init_param would pull a base or teacher checkpoint into the archive,
# config (the training YAML the run started from) a stale copy of the config.
TRAIN_ONLY_KEYS = (
    "train_data_path_and_name_and_type", "valid_data_path_and_name_and_type", "train_shape_file",
    "valid_shape_file", "output_dir", "init_param", "collect_stats", "write_collected_feats", "config",
)


class PackError(ValueError):
    """The model files cannot be packed (the message names the file)."""


def task_of(config: Dict[str, Any]) -> str:
    """``avsr`` for our task's configs (they carry ``video_frontend``), else ESPnet ``asr``."""
    return "avsr" if "video_frontend" in config else "asr"


def _load_config(path: str) -> Dict[str, Any]:
    if not Path(path).is_file():
        raise PackError(f"avsr_pack: no such file: {path}")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise PackError(f"{path}: not a YAML mapping")
    return config


def _init_param_file(config: Dict[str, Any]) -> Optional[str]:
    """The checkpoint of the first ``init_param`` entry (``path[:src[:dst[:exclude]]]``)."""
    init = config.get("init_param") or []
    for entry in [init] if isinstance(init, str) else init:
        path = str(entry).split(":", 1)[0]
        if Path(path).is_file():
            return path
    return None


def _student_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """An ``mda_kd`` config as the plain ``espnet`` model it decodes as (no teacher, no KD)."""
    from espnet_avsr.models.mda_kd import MDAKDModel

    kd_keys = {
        n for n, p in inspect.signature(MDAKDModel.__init__).parameters.items() if p.kind == p.KEYWORD_ONLY
    }
    config = dict(config, model="espnet")
    config["model_conf"] = {k: v for k, v in (config.get("model_conf") or {}).items() if k not in kd_keys}
    return config


def _merged_adapter_state(
    config: Dict[str, Any], asr_model_file: str, base_model_file: Optional[str]
) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor]]:
    """An ``ms_adapter`` config + weights as one full checkpoint (base + adapters)."""
    from espnet_avsr.common.checkpoint import load_state_file
    from espnet_avsr.models.adapters import is_adapter_key

    state = load_state_file(asr_model_file)
    if state and all(is_adapter_key(k) for k in state):
        base_model_file = base_model_file or _init_param_file(config)
        if base_model_file is None:
            raise PackError(
                f"{asr_model_file}: holds only MS-Adapter tensors; pass its base model as --base_model_file "
                "(the config's init_param names no existing file)"
            )
        base = {k: v for k, v in load_state_file(base_model_file).items() if not is_adapter_key(k)}
        state = {**base, **state}
    model_conf = dict(config.get("model_conf") or {}, save_adapters_only=False)
    return dict(config, model_conf=model_conf), state


def _check_loadable(config_path: Path, model_path: Path, task: str) -> None:
    """Build the staged model and load its weights strictly."""
    with open(config_path, encoding="utf-8") as f:
        args = argparse.Namespace(**yaml.safe_load(f))
    if task == "avsr":
        from espnet_avsr.tasks.avsr import AVSRTask as Task
    else:
        from espnet2.tasks.asr import ASRTask as Task
    model = Task.build_model(args)
    try:
        model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=False), strict=True)
    except RuntimeError as e:
        raise PackError(f"{model_path}: the packed weights do not fit the packed config: {str(e)[:500]}") from e


def _stage_files(value: Any, found: Dict[str, str]) -> Any:
    """Replace existing-file strings inside a config by staged names (exp/files/...)."""
    if isinstance(value, dict):
        return {k: _stage_files(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_stage_files(v, found) for v in value]
    if isinstance(value, str) and len(value) < 4096 and "\n" not in value and Path(value).is_file():
        src = str(Path(value).resolve())
        if src not in found:
            found[src] = f"exp/files/{len(found)}_{Path(value).name}"
        return found[src]
    return value


def pack_avsr(
    asr_train_config: str,
    asr_model_file: str,
    outpath: str,
    base_model_file: Optional[str] = None,
    option: Sequence[str] = (),
) -> Path:
    """Write the archive of one model (any kind, see the module doc); returns its path."""
    if not Path(asr_model_file).is_file():
        raise PackError(f"avsr_pack: no such file: {asr_model_file}")
    config = _load_config(asr_train_config)
    task = task_of(config)
    state: Optional[Dict[str, torch.Tensor]] = None
    if task == "avsr" and config.get("model") == "mda_kd":
        config = _student_config(config)
    elif task == "avsr" and config.get("model") == "ms_adapter":
        config, state = _merged_adapter_state(config, asr_model_file, base_model_file)
    elif base_model_file is not None:
        raise PackError(f"{asr_train_config}: --base_model_file is for MS-Adapter (model: ms_adapter) configs only")
    for key in TRAIN_ONLY_KEYS:
        config.pop(key, None)
    found: Dict[str, str] = {}
    config = _stage_files(config, found)
    outpath = Path(outpath).resolve()
    for o in option:
        if not Path(o).exists():
            raise PackError(f"avsr_pack: no such --option file: {o}")
    extra: List[str] = [f"exp/extra/{i}_{Path(o).name}" for i, o in enumerate(option)]
    with tempfile.TemporaryDirectory() as stage:
        st = Path(stage)
        (st / "exp/files").mkdir(parents=True)
        (st / "exp/extra").mkdir()
        # copies, not links: pack() resolves links and would store the targets' absolute paths
        for src, name in found.items():
            shutil.copyfile(src, st / name)
        for src, name in zip(option, extra):
            (shutil.copytree if Path(src).is_dir() else shutil.copyfile)(src, st / name)
        if state is None:
            shutil.copyfile(asr_model_file, st / "exp/model.pth")
        else:
            torch.save(state, st / "exp/model.pth")
        with open(st / "exp/config.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
        cwd = os.getcwd()
        os.chdir(st)  # the staged config's paths and pack()'s archive names are relative to it
        try:
            _check_loadable(Path("exp/config.yaml"), Path("exp/model.pth"), task)
            cmd = ["asr", "--asr_train_config", "exp/config.yaml", "--asr_model_file", "exp/model.pth",
                   "--outpath", str(outpath)]
            for name in list(found.values()) + extra:
                cmd += ["--option", name]
            espnet_pack_main(cmd)
        finally:
            os.chdir(cwd)
    logging.info(f"packed {asr_model_file} ({task}, {len(found)} referenced file(s)) into {outpath}")
    return outpath


def resolve_model_dir(exp_dir: str, model_file: Optional[str] = None) -> Dict[str, Optional[str]]:
    """An exp directory -> AVSpeech2Text arguments: its config.yaml, its checkpoint (the
    first of CHECKPOINTS unless ``model_file``) and, for an MS-Adapter run whose checkpoints
    hold only adapters, the base from ``init_param`` with the checkpoint as ``adapter_file``."""
    d = Path(exp_dir)
    config_path = d / "config.yaml"
    config = _load_config(str(config_path))
    ckpt = Path(model_file) if model_file else next((d / c for c in CHECKPOINTS if (d / c).exists()), None)
    if ckpt is None or not ckpt.exists():
        raise PackError(f"{d}: no checkpoint ({model_file or ', '.join(CHECKPOINTS)}); train the model first")
    out: Dict[str, Optional[str]] = {"asr_train_config": str(config_path), "asr_model_file": str(ckpt)}
    if config.get("model") == "ms_adapter":
        from espnet_avsr.common.checkpoint import load_state_file
        from espnet_avsr.models.adapters import is_adapter_key

        state = load_state_file(str(ckpt))
        if state and all(is_adapter_key(k) for k in state):
            base = _init_param_file(config)
            if base is None:
                raise PackError(f"{config_path}: MS-Adapter checkpoint {ckpt} needs its base model (init_param)")
            out = {"asr_train_config": str(config_path), "asr_model_file": base, "adapter_file": str(ckpt)}
    return out


def speech2text_defaults(target: Any) -> Dict[str, Any]:
    """ESPnet ``Speech2Text``'s defaults for the decoding arguments ``target`` (a callable)
    shares with it (beam_size 20, ctc_weight 0.5, nbest, ...; LM and device excluded)."""
    from espnet2.bin.asr_inference import Speech2Text

    theirs = inspect.signature(Speech2Text.__init__).parameters
    ours = inspect.signature(target).parameters
    skip = {"self", "asr_train_config", "asr_model_file", "lm_train_config", "lm_file", "lm_weight", "device"}
    return {
        k: p.default for k, p in theirs.items()
        if k in ours and k not in skip and p.default is not inspect.Parameter.empty
    }


def pretrained_files(model_tag: str, model_file: Optional[str] = None, unpack_dir: Optional[str] = None) -> Dict[str, Optional[str]]:
    """A packed archive (unpacked to ``unpack_dir`` or a temporary directory) or an exp
    directory -> ``asr_train_config``, ``asr_model_file`` (and ``adapter_file``)."""
    from espnet2.main_funcs.pack_funcs import unpack

    path = Path(model_tag)
    if path.is_dir():
        return resolve_model_dir(str(path), model_file)
    if not path.is_file():
        raise FileNotFoundError(f"{model_tag}: neither a packed model (.zip/.tar.gz) nor an exp directory")
    out = Path(unpack_dir) if unpack_dir else Path(tempfile.mkdtemp(prefix=path.stem + "_"))
    try:
        files = unpack(path, out, use_cache=False)
    except Exception as e:  # noqa: BLE001 - zipfile/tarfile/meta.yaml errors: name the archive
        raise PackError(f"{model_tag}: not a readable espnet2.bin.pack archive ({e})") from e
    if "asr_train_config" not in files or "asr_model_file" not in files:
        raise PackError(f"{model_tag}: the archive's meta.yaml has no asr_train_config/asr_model_file")
    if task_of(_load_config(files["asr_train_config"])) == "asr":
        raise PackError(f"{model_tag}: an ESPnet ASR model; load it with espnet2.bin.asr_inference.Speech2Text")
    return {"asr_train_config": files["asr_train_config"], "asr_model_file": files["asr_model_file"]}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Pack a model (ASR, lip reader, AV, MDA-KD student, MS-Adapter + base) with espnet2.bin.pack",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--asr_train_config", required=True)
    p.add_argument("--asr_model_file", required=True)
    p.add_argument("--base_model_file", default=None,
                   help="MS-Adapter only: the base model checkpoint (default: the config's init_param)")
    p.add_argument("--option", action="append", default=[], help="extra file to put in the archive (e.g. RESULTS.md)")
    p.add_argument("--outpath", required=True, help="output .zip (or .tar.gz)")
    add_log_level(p)
    return p


def _body(args: argparse.Namespace) -> None:
    pack_avsr(args.asr_train_config, args.asr_model_file, args.outpath, args.base_model_file, args.option)


def main(cmd: Optional[Sequence[str]] = None) -> None:
    run_cli(get_parser(), _body, None if cmd is None else list(cmd), errors=(PackError, FileNotFoundError), replace_handlers=False)


if __name__ == "__main__":
    main()
