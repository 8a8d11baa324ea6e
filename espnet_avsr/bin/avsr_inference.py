"""AVSR beam-search decoding (mirrors espnet2.bin.asr_inference) + missing-video simulation.

Python API (notebook friendly)::

    from espnet_avsr.bin.avsr_inference import AVSpeech2Text
    s2t = AVSpeech2Text("exp/avsr/config.yaml", "exp/avsr/valid.acc.ave.pth", beam_size=10)
    # or: s2t = AVSpeech2Text.from_packed("avsr_model.zip")
    text, token, token_int, hyp = s2t(speech, roi_uint8)[0]      # video=None: no video

CLI::

    python -m espnet_avsr.bin.avsr_inference --asr_train_config exp/avsr/config.yaml \
        --asr_model_file exp/avsr/valid.acc.ave.pth --output_dir exp/avsr/decode_dev \
        --data_path_and_name_and_type dump/raw/dev/wav.scp,speech,sound \
        --data_path_and_name_and_type dump/raw/dev/roi.scp,video,npy \
        --missing_rate 0.5 --missing_pattern random --missing_seed 0

Missing frames are simulated per utterance with ``simulate_missing(video, utt_id, ...)``
so every model decoded with the same seed sees the same frames. ``--audio_only`` feeds no
video (every frame missing); so does an utterance the dump kept without any video
(``make_dump --no_roi mark``: zero-length ROI, flagged by the collate). Which frames an
utterance has is its ``VideoPresence`` (the batch's, with the simulation added by ``union``).
Outputs ``<output_dir>/1best_recog/{text,token,token_int,score}``.

MS-Adapters: ``--adapter_file adapters.pth`` (an adapter-only file, or a full
``ms_adapter`` checkpoint) adds adapters to the model of ``--asr_model_file`` (a base AV
model with its own config, or an ``ms_adapter`` config). ``--adapter_switch auto`` (default)
routes an utterance whose video is entirely missing (after the simulation), or absent,
to the adapted audio-only path (encoder *and* beam search); ``off`` always decodes with
the base AV path; ``always`` decodes every utterance audio-only with adapters.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import yaml

from espnet2.fileio.datadir_writer import DatadirWriter
from espnet2.main_funcs.pack_funcs import unpack
from espnet2.text.build_tokenizer import build_tokenizer
from espnet2.text.token_id_converter import TokenIDConverter
from espnet2.torch_utils.device_funcs import to_device
from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
from espnet2.utils import config_argparse
from espnet2.utils.types import str2bool, str2triple_str, str_or_none
from espnet.nets.batch_beam_search import BatchBeamSearch
from espnet.nets.beam_search import BeamSearch, Hypothesis
from espnet.nets.scorer_interface import BatchScorerInterface
from espnet.nets.scorers.length_bonus import LengthBonus

from espnet_avsr.common.checkpoint import load_state_file
from espnet_avsr.common.cli import run_cli
from espnet_avsr.data.missing_video import FILLS, PATTERNS, simulate_missing
from espnet_avsr.data.presence import VideoPresence
from espnet_avsr.models.adapters import check_adapter_only, is_adapter_key
from espnet_avsr.models.cached_decoder import DECODER_SCORERS, use_decoder_scorer
from espnet_avsr.models.ctc_prefix_scan import CTC_SCORERS, build_ctc_scorer
from espnet_avsr.models.ms_adapter import SWITCH_MODES, MSAdapterModel, adapter_conf_for, maybe_adapter_scope
from espnet_avsr.tasks.avsr import AVSRTask

Result = Tuple[Optional[str], List[str], List[int], Hypothesis]


def build_model(
    config_file: Union[Path, str],
    model_file: Union[Path, str, None],
    device: str = "cpu",
    adapter_file: Union[Path, str, None] = None,
) -> Tuple[torch.nn.Module, argparse.Namespace]:
    """Model from a training config + weights, plus MS-Adapters from ``adapter_file``.

    A base (``model: espnet``) config becomes an ``ms_adapter`` model whose adapter_conf
    is read off the adapter file; an adapter-only file given as ``model_file`` is refused
    (its base weights would be random).
    """
    config_file = Path(config_file)
    if not config_file.is_file():
        raise FileNotFoundError(f"training config not found: {config_file}")
    with config_file.open(encoding="utf-8") as f:
        args = argparse.Namespace(**yaml.safe_load(f))
    adapters = None
    if adapter_file is not None:
        adapters = load_state_file(str(adapter_file))
        check_adapter_only(adapters, str(adapter_file))
        adapters = {k: v for k, v in adapters.items() if is_adapter_key(k)}
        if getattr(args, "model", "espnet") != "ms_adapter":
            model_conf = dict(getattr(args, "model_conf", None) or {})
            model_conf["adapter_conf"] = adapter_conf_for(adapters)
            args.model, args.model_conf = "ms_adapter", model_conf
    model = AVSRTask.build_model(args)
    model.to(device)
    if model_file is not None:
        state = load_state_file(str(model_file))
        if state and all(is_adapter_key(k) for k in state):
            raise ValueError(
                f"{model_file}: holds only adapter tensors; pass the base model as --asr_model_file "
                "and this file as --adapter_file"
            )
        result = model.load_state_dict(state, strict=False)
        base_missing = [k for k in result.missing_keys if not is_adapter_key(k)]
        if base_missing:
            raise ValueError(f"{model_file}: does not fit {config_file}; missing e.g. {base_missing[:4]}")
    if adapters is not None:
        model.load_state_dict(adapters, strict=True)
    return model, args


class AVSpeech2Text:
    """Audio (+ video) -> n-best list of (text, token, token_int, hyp)."""

    def __init__(
        self,
        asr_train_config: Union[Path, str],
        asr_model_file: Union[Path, str, None] = None,
        device: str = "cpu",
        beam_size: int = 10,
        ctc_weight: float = 0.3,
        penalty: float = 0.0,
        nbest: int = 1,
        maxlenratio: float = 0.0,
        minlenratio: float = 0.0,
        batch_size: int = 1,
        dtype: str = "float32",
        lm_train_config: Union[Path, str, None] = None,
        lm_file: Union[Path, str, None] = None,
        lm_weight: float = 0.0,
        normalize_length: bool = False,
        adapter_file: Union[Path, str, None] = None,
        adapter_switch: str = "auto",
        ctc_scorer: str = "scan",
        decoder_scorer: str = "cached",
    ):
        if adapter_switch not in SWITCH_MODES:
            raise ValueError(f"adapter_switch must be one of {SWITCH_MODES}, got {adapter_switch!r}")
        model, train_args = build_model(asr_train_config, asr_model_file, device, adapter_file)
        model.to(dtype=getattr(torch, dtype)).eval()
        if isinstance(model, MSAdapterModel):
            model.adapter_switch = adapter_switch
        elif adapter_switch == "always":
            raise ValueError("adapter_switch 'always' needs adapters: pass --adapter_file or an ms_adapter model")
        self.last_route = "av"
        self.model, self.train_args = model, train_args
        self.device, self.dtype = device, dtype
        token_list = model.token_list

        scorers = dict(
            decoder=model.decoder,
            ctc=build_ctc_scorer(ctc_scorer, model.ctc, model.eos),
            length_bonus=LengthBonus(len(token_list)),
        )
        weights = dict(decoder=1.0 - ctc_weight, ctc=ctc_weight, length_bonus=penalty, lm=lm_weight)
        if lm_train_config is not None:
            from espnet2.tasks.lm import LMTask

            lm, _ = LMTask.build_model_from_file(lm_train_config, lm_file, device)
            scorers["lm"] = lm.lm
        beam_search = BeamSearch(
            beam_size=beam_size,
            weights=weights,
            scorers=scorers,
            sos=model.sos,
            eos=model.eos,
            vocab_size=len(token_list),
            token_list=token_list,
            pre_beam_score_key=None if ctc_weight == 1.0 else "full",
            normalize_length=normalize_length,
        )
        if batch_size == 1 and all(isinstance(v, BatchScorerInterface) for v in beam_search.full_scorers.values()):
            beam_search.__class__ = BatchBeamSearch
        use_decoder_scorer(beam_search, decoder_scorer)
        beam_search.to(device=device, dtype=getattr(torch, dtype)).eval()
        self.beam_search = beam_search
        self.maxlenratio, self.minlenratio, self.nbest = maxlenratio, minlenratio, nbest

        self.converter = TokenIDConverter(token_list=token_list)
        token_type = getattr(train_args, "token_type", "char")
        bpemodel = getattr(train_args, "bpemodel", None)
        self.tokenizer = build_tokenizer(token_type=token_type, bpemodel=bpemodel) if token_type else None
        self.preprocess = AVSRTask.build_preprocess_fn(train_args, train=False)

    @classmethod
    def from_packed(cls, zip_path: Union[Path, str], unpack_dir: Union[Path, str, None] = None, **kwargs: Any) -> "AVSpeech2Text":
        """Build from an ``avsr_pack`` archive (unpacked next to it unless ``unpack_dir``)."""
        zip_path = Path(zip_path)
        if not zip_path.exists():
            raise FileNotFoundError(f"packed model not found: {zip_path}")
        out = Path(unpack_dir) if unpack_dir else Path(tempfile.mkdtemp(prefix=zip_path.stem + "_"))
        files = unpack(zip_path, out, use_cache=False)
        return cls(files["asr_train_config"], files.get("asr_model_file"), **kwargs)

    # ---- ESPnet Speech2Text compatibility: its attribute names and from_pretrained
    @property
    def asr_model(self) -> torch.nn.Module:
        return self.model

    @property
    def asr_train_args(self) -> argparse.Namespace:
        return self.train_args

    @classmethod
    def from_pretrained(
        cls, model_tag: Union[Path, str], model_file: Optional[str] = None, unpack_dir: Optional[str] = None, **kwargs: Any
    ) -> "AVSpeech2Text":
        """A packed model (``avsr_pack`` / ``espnet2.bin.pack asr``) or an exp directory (its
        best checkpoint, or ``model_file``; an MS-Adapter run with its base from init_param).
        Beam settings default to ESPnet ``Speech2Text``'s (beam_size 20, ctc_weight 0.5, ...)."""
        from espnet_avsr.bin.avsr_pack import pretrained_files, speech2text_defaults

        files = pretrained_files(str(model_tag), model_file, None if unpack_dir is None else str(unpack_dir))
        return cls(**{**speech2text_defaults(cls.__init__), **files, **kwargs})

    def prepare_video(self, video: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
        """uint8 ROIs -> centre crop + normalisation; float input is taken as already prepared."""
        if isinstance(video, torch.Tensor):
            video = video.cpu().numpy()
        if video.dtype == np.uint8:
            video = self.preprocess.process_video("input", video)
        return torch.as_tensor(np.asarray(video, dtype=np.float32))

    @torch.no_grad()
    def __call__(
        self,
        speech: Union[np.ndarray, torch.Tensor],
        video: Union[np.ndarray, torch.Tensor, None] = None,
        video_missing: Union[np.ndarray, torch.Tensor, None] = None,
    ) -> List[Result]:
        speech = torch.as_tensor(np.asarray(speech, dtype=np.float32) if isinstance(speech, np.ndarray) else speech)
        batch = {
            "speech": speech.unsqueeze(0).to(getattr(torch, self.dtype)),
            "speech_lengths": torch.tensor([speech.size(0)]),
        }
        presence = None  # no video at all
        if video is not None:
            v = self.prepare_video(video)
            batch["video"] = v.unsqueeze(0).to(getattr(torch, self.dtype))
            presence = VideoPresence.of_utterance(v.size(0), video_missing).to(self.device)
        batch = to_device(batch, device=self.device)
        adapted = isinstance(self.model, MSAdapterModel) and bool(self.model.audio_only_rows(1, presence)[0])
        self.last_route = "adapter" if adapted else "av"
        # the decoder adapters must stay on (or off) for the whole beam search
        with maybe_adapter_scope(self.model, adapted):
            enc, enc_lens, aux = self.model.encode(**batch, presence=presence, return_hidden=True)
            hyps = self.beam_search(x=enc[0], maxlenratio=self.maxlenratio, minlenratio=self.minlenratio)
        results = []
        for hyp in hyps[: self.nbest]:
            token_int = [int(t) for t in hyp.yseq[1:-1].tolist() if int(t) != 0]
            token = self.converter.ids2tokens(token_int)
            text = self.tokenizer.tokens2text(token) if self.tokenizer is not None else None
            results.append((text, token, token_int, hyp))
        return results


def inference(
    output_dir: str,
    data_path_and_name_and_type: Sequence[Tuple[str, str, str]],
    asr_train_config: str,
    asr_model_file: Optional[str],
    key_file: Optional[str] = None,
    ngpu: int = 0,
    batch_size: int = 1,
    num_workers: int = 0,
    seed: int = 0,
    missing_rate: float = 0.0,
    missing_pattern: str = "random",
    missing_fill: str = "zeros",
    missing_seed: int = 0,
    audio_only: bool = False,
    allow_variable_data_keys: bool = False,
    **s2t_kwargs: Any,
) -> None:
    """Decode a data dir with the paper's missing-video protocol; write ESPnet-style outputs."""
    if batch_size != 1:
        raise NotImplementedError("batch decoding is not supported; use --batch_size 1")
    set_all_random_seed(seed)
    device = "cuda" if ngpu >= 1 else "cpu"
    s2t = AVSpeech2Text(asr_train_config, asr_model_file, device=device, **s2t_kwargs)
    decode_data(s2t, output_dir, data_path_and_name_and_type, key_file, num_workers, missing_rate,
                missing_pattern, missing_fill, missing_seed, audio_only, allow_variable_data_keys)


def decode_data(
    s2t: "AVSpeech2Text",
    output_dir: str,
    data_path_and_name_and_type: Sequence[Tuple[str, str, str]],
    key_file: Optional[str] = None,
    num_workers: int = 0,
    missing_rate: float = 0.0,
    missing_pattern: str = "random",
    missing_fill: str = "zeros",
    missing_seed: int = 0,
    audio_only: bool = False,
    allow_variable_data_keys: bool = False,
) -> None:
    """Decode one data dir under one missing-video condition with an already built model.

    The loop of ``inference``; ``espnet_avsr.bin.decode_conditions`` calls it once per
    condition so that a model decodes every condition after loading once.
    """
    loader = AVSRTask.build_streaming_iterator(
        data_path_and_name_and_type,
        dtype=s2t.dtype,
        batch_size=1,
        key_file=key_file,
        num_workers=num_workers,
        preprocess_fn=AVSRTask.build_preprocess_fn(s2t.train_args, False),
        collate_fn=AVSRTask.build_collate_fn(s2t.train_args, False),
        allow_variable_data_keys=allow_variable_data_keys,
        inference=True,
    )
    n_missing = n_frames = n_adapted = n_absent = 0
    with DatadirWriter(output_dir) as writer:
        for keys, batch in loader:
            key = keys[0]
            speech = batch["speech"][0, : int(batch["speech_lengths"][0])]
            video = mask = None
            if not audio_only:
                if "video" not in batch:
                    raise ValueError(f"{key}: no video given; pass roi.scp as ',video,npy' or use --audio_only")
                presence = VideoPresence.from_batch(batch["video_lengths"], batch.get("video_missing"))
                if not bool(presence.has_video[0]):
                    n_absent += 1  # the dump's no-video marker: decode as video entirely missing (video=None)
                else:
                    video = batch["video"][0, : presence.width]
                    if missing_rate > 0:
                        video, sim = simulate_missing(video, key, missing_rate, missing_pattern, missing_fill, missing_seed)
                        n_missing += int(sim.sum())
                        presence = presence.union(sim[None])
                    mask = presence.missing[0].numpy()
                    n_frames += int(video.shape[0])
            results = s2t(speech, video, mask)
            n_adapted += s2t.last_route == "adapter"
            for n, (text, token, token_int, hyp) in enumerate(results, 1):
                w = writer[f"{n}best_recog"]
                w["token"][key] = " ".join(token)
                w["token_int"][key] = " ".join(map(str, token_int))
                w["score"][key] = str(float(hyp.score))
                if text is not None:
                    w["text"][key] = text
            logging.info(f"{key}: {results[0][0] if results else ''}")
    if n_frames:
        logging.info(f"simulated missing video frames: {n_missing}/{n_frames}")
    if n_absent:
        logging.info(f"utterances without any video in the dump (decoded as video entirely missing): {n_absent}")
    if isinstance(s2t.model, MSAdapterModel):
        logging.info(f"utterances decoded on the adapter (audio-only) path: {n_adapted}")


def get_parser() -> argparse.ArgumentParser:
    parser = config_argparse.ArgumentParser(
        description="AVSR decoding", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--log_level", default="INFO", choices=("ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"))
    parser.add_argument("--output_dir", type=str, required=True)
    parser.add_argument("--ngpu", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"])
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=1)
    g = parser.add_argument_group("Input data related")
    g.add_argument("--data_path_and_name_and_type", type=str2triple_str, required=True, action="append")
    g.add_argument("--key_file", type=str_or_none)
    g.add_argument("--allow_variable_data_keys", type=str2bool, default=False)
    g = parser.add_argument_group("The model configuration related")
    g.add_argument("--asr_train_config", type=str, required=True)
    g.add_argument("--asr_model_file", type=str, required=True)
    g.add_argument("--adapter_file", type=str_or_none, default=None,
                   help="MS-Adapter weights (adapter-only file or full ms_adapter checkpoint)")
    g.add_argument("--adapter_switch", default="auto", choices=SWITCH_MODES,
                   help="auto: adapters for utterances with no video frame; off: base AV path; always: adapters")
    g.add_argument("--lm_train_config", type=str_or_none)
    g.add_argument("--lm_file", type=str_or_none)
    g = parser.add_argument_group("Beam-search related")
    g.add_argument("--nbest", type=int, default=1)
    g.add_argument("--beam_size", type=int, default=10)
    g.add_argument("--penalty", type=float, default=0.0)
    g.add_argument("--maxlenratio", type=float, default=0.0)
    g.add_argument("--minlenratio", type=float, default=0.0)
    g.add_argument("--ctc_weight", type=float, default=0.3)
    g.add_argument("--lm_weight", type=float, default=0.0)
    g.add_argument("--normalize_length", type=str2bool, default=False)
    g.add_argument("--ctc_scorer", default="scan", choices=CTC_SCORERS,
                   help="CTC prefix scoring: scan (closed form, no loop over frames) or loop (ESPnet's); "
                        "the same scores")
    g.add_argument("--decoder_scorer", default="cached", choices=DECODER_SCORERS,
                   help="decoder scoring: cached (keys/values computed once) or espnet (its batch_score); "
                        "the same scores")
    g = parser.add_argument_group("Missing video simulation")
    g.add_argument("--missing_rate", type=float, default=0.0, help="fraction of video frames dropped")
    g.add_argument("--missing_pattern", default="random", choices=PATTERNS)
    g.add_argument("--missing_fill", default="zeros", choices=FILLS)
    g.add_argument("--missing_seed", type=int, default=0)
    g.add_argument("--audio_only", type=str2bool, default=False, help="feed no video (all frames missing)")
    return parser


def _body(args: argparse.Namespace) -> None:
    kwargs = dict(vars(args))
    kwargs.pop("log_level")
    kwargs.pop("config", None)
    inference(**kwargs)


def main(cmd: Optional[Sequence[str]] = None) -> None:
    run_cli(get_parser(), _body, None if cmd is None else list(cmd), replace_handlers=False)


if __name__ == "__main__":
    main()
