"""AVSRTask: the ESPnet task that ties the AV model and the AV data to ESPnet's trainer.

Mirrors ``espnet2.tasks.asr.ASRTask``: ClassChoices for frontend / specaug / normalize /
video_frontend / encoder / decoder / model / preprocessor, each with ``--<name>`` and
``--<name>_conf``. An unknown class name in a config fails listing the valid choices.

Data names: training needs ``speech`` (sound) and ``text`` and takes ``video`` (npy uint8
(T, 96, 96)) optionally; inference needs ``speech`` and takes ``video`` optionally
(audio-only decoding). ``video`` is optional in training so that MS-Adapters
(``model: ms_adapter``) train on audio-only dumps (wav.scp + text); the AV models raise
a clear error when a batch comes without video.
"""

from __future__ import annotations

import argparse
import logging
from typing import Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import torch
from typeguard import typechecked

from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.abs_decoder import AbsDecoder
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.frontend.default import DefaultFrontend
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.asr.specaug.specaug import SpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.layers.global_mvn import GlobalMVN
from espnet2.layers.utterance_mvn import UtteranceMVN
from espnet2.tasks.abs_task import AbsTask
from espnet2.torch_utils.initialize import initialize
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.train.class_choices import ClassChoices
from espnet2.train.preprocessor import AbsPreprocessor
from espnet2.train.trainer import Trainer
from espnet2.utils.get_default_kwargs import get_default_kwargs
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import float_or_none, str2bool, str_or_none

from espnet_avsr.data.collate import AVCollateFn
from espnet_avsr.data.video_preprocessor import AVSRPreprocessor
from espnet_avsr.models.registry import REGISTRY, load_plugins
from espnet_avsr.models.visual_frontend import AbsVideoFrontend
from espnet_avsr.tasks.trainer import AVSRTrainer

load_plugins()

frontend_choices = ClassChoices("frontend", classes=dict(default=DefaultFrontend), type_check=AbsFrontend, default="default")
specaug_choices = ClassChoices(
    "specaug", classes=dict(specaug=SpecAug), type_check=AbsSpecAug, default=None, optional=True
)
normalize_choices = ClassChoices(
    "normalize",
    classes=dict(global_mvn=GlobalMVN, utterance_mvn=UtteranceMVN),
    type_check=AbsNormalize,
    default="utterance_mvn",
    optional=True,
)
video_frontend_choices = ClassChoices(
    "video_frontend", classes=REGISTRY["video_frontend"], type_check=AbsVideoFrontend, default="resnet18"
)
encoder_choices = ClassChoices("encoder", classes=REGISTRY["encoder"], type_check=AbsEncoder, default="av_conformer")
decoder_choices = ClassChoices("decoder", classes=REGISTRY["decoder"], type_check=AbsDecoder, default="transformer")
model_choices = ClassChoices("model", classes=REGISTRY["model"], type_check=AbsESPnetModel, default="espnet")
preprocessor_choices = ClassChoices(
    "preprocessor", classes=dict(default=AVSRPreprocessor), type_check=AbsPreprocessor, default="default"
)


class AVSRTask(AbsTask):
    """Audio-visual speech recognition on ESPnet's AbsTask (training, collect_stats, ...)."""

    num_optimizers: int = 1

    class_choices_list = [
        frontend_choices,
        specaug_choices,
        normalize_choices,
        video_frontend_choices,
        encoder_choices,
        decoder_choices,
        model_choices,
        preprocessor_choices,
    ]

    trainer = AVSRTrainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        required = parser.get_default("required")
        required += ["token_list"]
        group.add_argument("--token_list", type=str_or_none, default=None, help="A text mapping int-id to token")
        group.add_argument(
            "--init",
            type=lambda x: str_or_none(x.lower()),
            default=None,
            choices=["chainer", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", None],
            help="The initialization method",
        )
        group.add_argument(
            "--ctc_conf", action=NestedDictAction, default=get_default_kwargs(CTC), help="Keyword arguments for CTC"
        )

        group = parser.add_argument_group(description="Preprocess related")
        group.add_argument("--use_preprocessor", type=str2bool, default=True, help="Tokenise text in the data loader")
        group.add_argument(
            "--token_type", type=str, default="char", choices=["bpe", "char", "word", "phn"], help="Text token unit"
        )
        group.add_argument("--bpemodel", type=str_or_none, default=None, help="sentencepiece model (token_type=bpe)")
        group.add_argument("--non_linguistic_symbols", type=str_or_none, default=None, help="non-linguistic symbols file")
        group.add_argument("--cleaner", type=str_or_none, default=None, choices=[None, "tacotron", "jaconv"], help="Text cleaner")
        group.add_argument("--g2p", type=str_or_none, default=None, help="g2p method for token_type=phn")
        group.add_argument(
            "--speech_volume_normalize", type=float_or_none, default=None, help="Scale max amplitude to this value"
        )

        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    @typechecked
    def build_collate_fn(cls, args: argparse.Namespace, train: bool) -> Callable[
        [Collection[Tuple[str, Dict[str, np.ndarray]]]],
        Tuple[List[str], Dict[str, torch.Tensor]],
    ]:
        # int pad -1: 0 is the CTC blank
        return AVCollateFn()

    @classmethod
    @typechecked
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.array]], Dict[str, np.ndarray]]]:
        """Always built: the uint8 ROIs must become normalised float crops in any case."""
        use = getattr(args, "use_preprocessor", True)
        klass = preprocessor_choices.get_class(getattr(args, "preprocessor", "default"))
        return klass(
            train=train,
            token_type=getattr(args, "token_type", "char") if use else None,
            token_list=args.token_list if use else None,
            bpemodel=getattr(args, "bpemodel", None),
            non_linguistic_symbols=getattr(args, "non_linguistic_symbols", None),
            text_cleaner=getattr(args, "cleaner", None),
            g2p_type=getattr(args, "g2p", None),
            speech_volume_normalize=getattr(args, "speech_volume_normalize", None),
            **getattr(args, "preprocessor_conf", {}),
        )

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",) if inference else ("speech", "text")

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("video",)

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> AbsESPnetModel:
        if isinstance(args.token_list, str):
            with open(args.token_list, encoding="utf-8") as f:
                token_list = [line.rstrip() for line in f]
            args.token_list = list(token_list)  # keep the config portable
        elif isinstance(args.token_list, (tuple, list)):
            token_list = list(args.token_list)
        else:
            raise RuntimeError("token_list must be a file path or a list")
        vocab_size = len(token_list)
        logging.info(f"Vocabulary size: {vocab_size}")

        # getattr: configs written by hand (not by the trainer) may omit optional parts
        frontend = frontend_choices.get_class(getattr(args, "frontend", "default"))(**getattr(args, "frontend_conf", {}))
        input_size = frontend.output_size()
        specaug, normalize = None, None
        if getattr(args, "specaug", None):
            specaug = specaug_choices.get_class(args.specaug)(**getattr(args, "specaug_conf", {}))
        if getattr(args, "normalize", None):
            normalize = normalize_choices.get_class(args.normalize)(**getattr(args, "normalize_conf", {}))

        d_model = args.encoder_conf.get("output_size", 256)
        vconf = dict(getattr(args, "video_frontend_conf", {}))
        vconf.setdefault("output_size", d_model)
        video_frontend = video_frontend_choices.get_class(getattr(args, "video_frontend", "resnet18"))(**vconf)

        encoder = encoder_choices.get_class(args.encoder)(
            input_size=input_size, video_input_size=video_frontend.output_size(), **args.encoder_conf
        )
        decoder = decoder_choices.get_class(args.decoder)(
            vocab_size=vocab_size, encoder_output_size=encoder.output_size(), **args.decoder_conf
        )
        ctc = CTC(odim=vocab_size, encoder_output_size=encoder.output_size(), **getattr(args, "ctc_conf", {}))

        model = model_choices.get_class(getattr(args, "model", "espnet"))(
            vocab_size=vocab_size,
            token_list=token_list,
            frontend=frontend,
            specaug=specaug,
            normalize=normalize,
            video_frontend=video_frontend,
            encoder=encoder,
            decoder=decoder,
            ctc=ctc,
            **getattr(args, "model_conf", {}),
        )
        if getattr(args, "init", None) is not None:
            initialize(model, args.init)
        return model
