"""AVSRTask: the ESPnet task that ties the AV model and the AV data to ESPnet's trainer.

Mirrors ``espnet2.tasks.asr.ASRTask``: ClassChoices for frontend / specaug / normalize /
video_frontend / encoder / decoder / model / preprocessor, each with ``--<name>`` and
``--<name>_conf``. An unknown class name in a config fails listing the valid choices.

Data names: training needs ``speech`` (sound) and ``text`` and takes ``video`` (npy uint8
(T, 96, 96)) optionally; inference needs ``speech`` and takes ``video`` optionally
(audio-only decoding). ``video`` is optional in training so that MS-Adapters
(``model: ms_adapter``) train on audio-only dumps (wav.scp + text); the AV models raise
a clear error when a batch comes without video.

Every ``<name>_conf`` section goes through ``build_from_conf``: a misspelt key fails with a
``ConfKeyError`` naming the section, the class, the unknown keys and the accepted ones,
instead of the constructor's bare "unexpected keyword argument".
"""

from __future__ import annotations

import argparse
import inspect
import logging
from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Tuple

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
from espnet_avsr.models.adapters import AdapterConfig
from espnet_avsr.models.mda_kd import set_teacher_builder
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


# sub-sections inside a ``*_conf`` that become their own object (``model_conf.adapter_conf``)
NESTED_CONFS: Dict[str, type] = {"adapter_conf": AdapterConfig}


class ConfKeyError(ValueError, TypeError):
    """Unknown key in a ``*_conf`` section. Also a TypeError: what the constructor raised."""


def accepted_keys(klass: type) -> Optional[List[str]]:
    """Keyword names ``klass(...)`` takes, following ``**kwargs`` up the MRO to the base that
    receives them; None when the chain never closes (then nothing can be checked)."""
    names: List[str] = []
    for base in klass.__mro__:
        init = base.__dict__.get("__init__")
        if init is None:
            continue
        if base is object:
            return None
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return sorted(set(names))
    return None


def check_conf_keys(section: str, klass: type, conf: Mapping[str, Any], fixed: Collection[str] = (),
                    config: Optional[str] = None) -> None:
    """Raise ConfKeyError for keys of ``conf`` that ``klass`` does not take (or that the task sets)."""
    where = f" (from {config})" if config else ""
    taken = set(fixed) & set(conf)
    if taken:
        raise ConfKeyError(f"{section}{where}: {sorted(taken)} are set by AVSRTask from other options "
                           f"for {klass.__name__}; remove them from {section}")
    accepted = accepted_keys(klass)
    if accepted is None:
        return
    accepted = [k for k in accepted if k not in fixed]
    unknown = [k for k in conf if k not in accepted]
    if unknown:
        what = "unexpected keyword arguments" if len(unknown) > 1 else "an unexpected keyword argument"
        raise ConfKeyError(
            f"{section}{where}: {klass.__name__} got {what} "
            f"{', '.join(repr(k) for k in unknown)}; accepted keys: {', '.join(accepted)}"
        )
    for key, sub in NESTED_CONFS.items():
        if key in accepted and isinstance(conf.get(key), Mapping):
            check_conf_keys(f"{section}.{key}", sub, conf[key], config=config)


def build_from_conf(args: argparse.Namespace, section: str, klass: type,
                    defaults: Optional[Mapping[str, Any]] = None, **fixed: Any) -> Any:
    """``klass(**fixed, **defaults, **args.<section>)`` after checking the section's keys
    (the one home of that check; ``defaults`` fill keys the section leaves out)."""
    conf = {**(defaults or {}), **(getattr(args, section, None) or {})}
    check_conf_keys(section, klass, conf, fixed, getattr(args, "config", None))
    return klass(**fixed, **conf)


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
        return build_from_conf(
            args,
            "preprocessor_conf",
            klass,
            train=train,
            token_type=getattr(args, "token_type", "char") if use else None,
            token_list=args.token_list if use else None,
            bpemodel=getattr(args, "bpemodel", None),
            non_linguistic_symbols=getattr(args, "non_linguistic_symbols", None),
            text_cleaner=getattr(args, "cleaner", None),
            g2p_type=getattr(args, "g2p", None),
            speech_volume_normalize=getattr(args, "speech_volume_normalize", None),
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
        frontend = build_from_conf(args, "frontend_conf", frontend_choices.get_class(getattr(args, "frontend", "default")))
        input_size = frontend.output_size()
        specaug, normalize = None, None
        if getattr(args, "specaug", None):
            specaug = build_from_conf(args, "specaug_conf", specaug_choices.get_class(args.specaug))
        if getattr(args, "normalize", None):
            normalize = build_from_conf(args, "normalize_conf", normalize_choices.get_class(args.normalize))

        d_model = (getattr(args, "encoder_conf", None) or {}).get("output_size", 256)
        vclass = video_frontend_choices.get_class(getattr(args, "video_frontend", "resnet18"))
        video_frontend = build_from_conf(args, "video_frontend_conf", vclass, defaults={"output_size": d_model})

        encoder = build_from_conf(args, "encoder_conf", encoder_choices.get_class(args.encoder),
                                  input_size=input_size, video_input_size=video_frontend.output_size())
        decoder = build_from_conf(args, "decoder_conf", decoder_choices.get_class(args.decoder),
                                  vocab_size=vocab_size, encoder_output_size=encoder.output_size())
        ctc = build_from_conf(args, "ctc_conf", CTC, odim=vocab_size, encoder_output_size=encoder.output_size())

        model = build_from_conf(
            args,
            "model_conf",
            model_choices.get_class(getattr(args, "model", "espnet")),
            vocab_size=vocab_size,
            token_list=token_list,
            frontend=frontend,
            specaug=specaug,
            normalize=normalize,
            video_frontend=video_frontend,
            encoder=encoder,
            decoder=decoder,
            ctc=ctc,
        )
        if getattr(args, "init", None) is not None:
            initialize(model, args.init)
        return model


# the MDA-KD teacher is an AVSR model built from its config: the task lends models/ its builder
set_teacher_builder(lambda config: AVSRTask.build_model_from_file(config, None, "cpu")[0])
