"""MDA-KD: Multimodal Distribution Approximation with Knowledge Distillation (``model: mda_kd``).

A frozen teacher AVSR model sees each training batch with its complete video; the
student (this model, normally initialised from the teacher) sees the same batch after
training-time video dropout (``model_conf.video_dropout``). The loss is the plain joint
CTC/attention loss of the student plus ``kd_weight`` x a KD distance pulling the
student's multimodal representations (``kd_layers`` of ``encode(..., return_hidden=True)``,
e.g. ``fusion``, ``shared.1``, or with the encoder's ``merge: figure`` the merge FFN's
inputs ``merge_in.<k>``, all of them with ``merge_in``) or posteriors (``ctc`` / ``decoder``
with ``kl``) toward the teacher's, over valid frames only.

What differs between the teacher's input and the student's, exactly:

- the video: complete for the teacher, after video dropout for the student (the point);
  one ``VideoPresence`` of the batch, the student's with the dropout draw added;
- the audio dropout draw: never, the teacher gets the student's audio-zeroed samples
  (a teacher that hears audio the student lost would ask for a representation no lip
  reading can reach, and KD would fight the CTC/attention losses on those samples);
- SpecAugment: with ``kd_teacher_audio: student`` never, the teacher hears the student's
  augmented features (same draw, normalised by the teacher's own ``normalize``); with
  ``kd_teacher_audio: clean`` (default, pending the dev-set decision, docs/DESIGN.md) the
  eval-mode teacher hears the un-augmented audio, so KD also pulls the student toward
  what the masked time/frequency bands held;
- the weights' mode: the teacher runs in eval mode (no dropout, BatchNorm running stats),
  the student in training mode.

The teacher is deliberately *not* a submodule: it lives in a plain list, so the state
dict, ``.to()``, ``.train()`` and DDP see only the student. A checkpoint of this model is
therefore a plain ``ESPnetAVSRModel`` checkpoint (decode it with ``model: espnet`` or
with this model's own config.yaml). The teacher is built lazily on the first training
forward (``AVSRTask.build_model_from_file``, strict weight load, eval mode,
``requires_grad_(False)``) and follows the student's device; decoding never loads it.
Without teacher files the model is the plain model (KD off, logged).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch

from espnet.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_avsr.common.checkpoint import load_state_file
from espnet_avsr.data.presence import VideoPresence
from espnet_avsr.models.espnet_model import ESPnetAVSRModel
from espnet_avsr.models.kd_losses import DISTANCES, masked_kd_loss
from espnet_avsr.models.registry import register

POSTERIORS = ("ctc", "decoder")
TEACHER_AUDIO = ("clean", "student")
MERGE_TAPS = "merge_in"  # kd_layers shorthand: every input of the figure merge's FFN
DEFAULT_LAYERS = {"mse": ["fusion"], "cosine": ["fusion"], "kl": ["ctc"]}


class TeacherError(ValueError):
    """The MDA-KD teacher files are missing, unreadable or do not fit the student."""


#: Builds an untrained model from a config.yaml on CPU. Injected by the task that owns the
#: model registry (``tasks/avsr.py`` sets it on import), so ``models/`` imports nothing above it.
TeacherBuilder = Callable[[str], torch.nn.Module]
_teacher_builder: Optional[TeacherBuilder] = None


def set_teacher_builder(builder: TeacherBuilder) -> None:
    """Install the function that builds a teacher from its config (the task calls this)."""
    global _teacher_builder
    _teacher_builder = builder


def load_teacher(config: Union[str, Path], model_file: Union[str, Path],
                 builder: Optional[TeacherBuilder] = None) -> ESPnetAVSRModel:
    """Build a frozen AVSR teacher on CPU; weights are loaded strictly (no silent misses)."""
    for what, path in (("teacher_config", config), ("teacher_model_file", model_file)):
        if not Path(path).is_file():
            raise TeacherError(f"MDA-KD {what} not found: {path}")
    builder = builder or _teacher_builder
    if builder is None:
        raise TeacherError("MDA-KD: no teacher builder installed (import espnet_avsr.tasks.avsr first)")
    teacher = builder(str(config))
    if not isinstance(teacher, ESPnetAVSRModel):
        raise TeacherError(f"{config}: the MDA-KD teacher must be an AVSR model, got {type(teacher).__name__}")
    state = load_state_file(str(model_file))
    try:
        teacher.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise TeacherError(f"{model_file}: weights do not fit the teacher built from {config}: {e}") from e
    teacher.eval().requires_grad_(False)
    logging.info("MDA-KD teacher loaded from %s (%s)", model_file, config)
    return teacher


class MDAKDModel(ESPnetAVSRModel):
    """Student AVSR model trained with KD from a frozen complete-video teacher.

    Args (beyond ESPnetAVSRModel's, all from ``model_conf``):
        teacher_model_file / teacher_config: the teacher's checkpoint and config.yaml
            (the recipe passes them for ``name:config:init:teacher`` lines).
        kd_weight: lambda in  loss = CTC/attention + lambda x KD.
        kd_distance: mse | cosine (hidden layers) | kl (posteriors, ``kd_temperature``).
        kd_layers: hidden keys (``fusion``, ``shared.<j>``, ``audio.<i>``, ...; with the
            encoder's ``merge: figure`` also ``merge_in.<k>``, k = 0..N, or ``merge_in`` for
            all N + 1 FFN inputs) or, for kl, ``ctc`` and/or ``decoder``; several layers are
            averaged.
        kd_teacher_audio: ``clean`` (the eval-mode teacher runs no SpecAugment) or ``student``
            (the teacher hears the student's SpecAugment draw); see the module docstring.
        kd_only_dropped: KD only on samples whose video had frames dropped.
        init_student_from_teacher: copy the teacher's weights into the student now
            (alternative to the recipe's ``--init_param <teacher checkpoint>``).
    """

    def __init__(
        self,
        *args,
        teacher_model_file: Optional[str] = None,
        teacher_config: Optional[str] = None,
        kd_weight: float = 1.0,
        kd_distance: str = "mse",
        kd_layers: Union[str, Sequence[str], None] = None,
        kd_temperature: float = 1.0,
        kd_only_dropped: bool = False,
        kd_teacher_audio: str = "clean",
        init_student_from_teacher: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if kd_teacher_audio not in TEACHER_AUDIO:
            raise ValueError(f"model_conf.kd_teacher_audio must be one of {TEACHER_AUDIO}, got {kd_teacher_audio!r}")
        if kd_distance not in DISTANCES:
            raise ValueError(f"model_conf.kd_distance must be one of {DISTANCES}, got {kd_distance!r}")
        if kd_weight < 0:
            raise ValueError(f"model_conf.kd_weight must be >= 0, got {kd_weight}")
        if kd_temperature <= 0:
            raise ValueError(f"model_conf.kd_temperature must be > 0, got {kd_temperature}")
        layers = [kd_layers] if isinstance(kd_layers, str) else list(kd_layers or DEFAULT_LAYERS[kd_distance])
        if not layers:
            raise ValueError("model_conf.kd_layers is empty")
        layers = self._expand_merge_taps(layers)
        posterior = [k for k in layers if k in POSTERIORS]
        if kd_distance == "kl" and len(posterior) != len(layers):
            raise ValueError(f"kd_distance kl compares posteriors: kd_layers must be within {POSTERIORS}, got {layers}")
        if kd_distance != "kl" and posterior:
            raise ValueError(f"kd_distance {kd_distance} compares hidden layers; {posterior} need kd_distance kl")
        if "decoder" in layers and (self.decoder is None or self.ctc_weight == 1.0):
            raise ValueError("kd_layers 'decoder' needs an attention decoder (ctc_weight < 1)")
        if (teacher_model_file is None) != (teacher_config is None):
            raise ValueError(
                "MDA-KD needs both model_conf.teacher_model_file and model_conf.teacher_config "
                f"(got teacher_model_file={teacher_model_file!r}, teacher_config={teacher_config!r})"
            )
        self.teacher_model_file = teacher_model_file
        self.teacher_config = teacher_config
        self.kd_weight = float(kd_weight)
        self.kd_distance = kd_distance
        self.kd_layers = layers
        self.kd_temperature = float(kd_temperature)
        self.kd_only_dropped = bool(kd_only_dropped)
        self.kd_teacher_audio = kd_teacher_audio
        # KD follows the CTC/attention normalisation (see kd_losses.reduce_frames)
        self.kd_length_normalized = bool(kwargs.get("length_normalized_loss", False))
        self._teacher: List[ESPnetAVSRModel] = []  # a plain list: never a registered submodule

        missing: List[str] = []
        if not self.kd_enabled:
            logging.warning(
                "MDA-KD: no teacher_model_file/teacher_config in model_conf; KD is off and the "
                "model trains and decodes as the plain AVSR model"
            )
        else:
            missing = [p for p in (teacher_model_file, teacher_config) if not Path(p).is_file()]
            if missing:  # fine for decoding from config.yaml; training will fail clearly
                logging.warning("MDA-KD: teacher files not found (%s); training with KD will fail", ", ".join(missing))
        if init_student_from_teacher:
            if self.kd_enabled and not missing:
                self.copy_teacher_weights()
            else:
                logging.warning("MDA-KD: init_student_from_teacher ignored: teacher files are not available")

    def _expand_merge_taps(self, layers: List[str]) -> List[str]:
        """``merge_in`` -> ``merge_in.0`` .. ``merge_in.N``; check ``merge_in.<k>`` fits the encoder."""
        taps = [k for k in layers if k == MERGE_TAPS or k.startswith(MERGE_TAPS + ".")]
        if not taps:
            return layers
        if getattr(self.encoder, "merge_type", None) != "figure":
            raise ValueError(
                f"kd_layers {taps} are the inputs of the figure merge's FFN: they need encoder_conf.merge: figure"
            )
        n = self.encoder.num_fusion_blocks + 1
        valid = [f"{MERGE_TAPS}.{k}" for k in range(n)]
        out: List[str] = []
        for key in layers:
            expanded = valid if key == MERGE_TAPS else [key]
            bad = [k for k in expanded if k.startswith(MERGE_TAPS) and k not in valid]
            if bad:
                raise ValueError(f"kd_layers {bad}: this encoder's merge FFN has inputs {valid}")
            out.extend(k for k in expanded if k not in out)
        return out

    # ------------------------------------------------------------------ teacher
    @property
    def kd_enabled(self) -> bool:
        return self.teacher_model_file is not None and self.teacher_config is not None

    def teacher(self, device: Optional[torch.device] = None) -> ESPnetAVSRModel:
        """The frozen teacher (loaded on first use), in eval mode, on ``device``."""
        if not self._teacher:
            t = load_teacher(self.teacher_config, self.teacher_model_file)
            if list(t.token_list) != list(self.token_list):
                raise TeacherError(f"{self.teacher_config}: the teacher's token list differs from the student's")
            self._teacher.append(t)
        t = self._teacher[0]
        if device is not None and next(t.parameters()).device != torch.device(device):
            t.to(device)
        return t.eval()

    def copy_teacher_weights(self) -> None:
        """Student := teacher (same architecture required)."""
        try:
            self.load_state_dict(self.teacher().state_dict(), strict=True)
        except RuntimeError as e:
            raise TeacherError(f"{self.teacher_config}: the teacher does not have the student's architecture: {e}") from e
        logging.info("MDA-KD: student initialised from the teacher %s", self.teacher_model_file)

    # ------------------------------------------------------------------ training
    @contextlib.contextmanager
    def _capture_decoder_logits(self, store: Dict[str, torch.Tensor]) -> Iterator[None]:
        """Keep the student's attention-decoder logits from the loss computation (no re-run)."""
        if "decoder" not in self.kd_layers:
            yield
            return

        def hook(module, inputs, output):
            store["decoder"] = output[0]

        handle = self.decoder.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def _teacher_views(
        self,
        teacher: ESPnetAVSRModel,
        batch: Tuple[torch.Tensor, torch.Tensor, torch.Tensor, VideoPresence],
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        utt_ids: Optional[Sequence[str]],
        audio_drop: Optional[torch.Tensor] = None,
        audio_feats: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """One no-grad teacher pass on the complete video: the compared tensors + enc lengths."""
        speech, speech_lengths, video, presence = batch
        with torch.no_grad():
            enc, lens, hidden = teacher.encode(
                speech, speech_lengths, video, return_hidden=True, utt_ids=utt_ids,
                audio_drop=audio_drop, audio_feats=audio_feats, presence=presence,
            )
            views: Dict[str, torch.Tensor] = {}
            for key in self.kd_layers:
                if key == "ctc":
                    views[key] = teacher.ctc.ctc_lo(enc)
                elif key == "decoder":
                    ys_in, _ = add_sos_eos(text, teacher.sos, teacher.eos, teacher.ignore_id)
                    views[key], _ = teacher.decoder(enc, lens, ys_in, text_lengths + 1)
                elif key in hidden:
                    views[key] = hidden[key]
                else:
                    avail = sorted(k for k in hidden if k not in ("video", "video_missing", "audio_dropped"))
                    raise ValueError(f"kd_layers key {key!r} is not an encoder hidden state; available: {avail}")
        return views, lens

    def _check_same_frontend(self, teacher: ESPnetAVSRModel) -> None:
        """The student's features only fit a teacher with the same audio front-end."""
        mine, theirs = self.frontend, teacher.frontend
        same = type(mine) is type(theirs) and (
            mine is None or mine.output_size() == theirs.output_size()
        )
        if not same:
            raise TeacherError(
                f"{self.teacher_config}: kd_teacher_audio: student needs the teacher's audio front-end to be the "
                f"student's ({type(theirs).__name__} vs {type(mine).__name__}); use kd_teacher_audio: clean"
            )

    def kd_loss(
        self,
        student: Dict[str, torch.Tensor],
        teacher: Dict[str, torch.Tensor],
        enc_lens: torch.Tensor,
        text_lengths: torch.Tensor,
        dropped: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """Average over ``kd_layers`` of the masked distance (see ``kd_losses``)."""
        sample_mask = None
        if self.kd_only_dropped:
            n = next(iter(student.values())).size(0)
            sample_mask = dropped.any(dim=1) if dropped is not None else torch.zeros(n, dtype=torch.bool)
        total = None
        for key in self.kd_layers:
            s, t = student[key], teacher[key]
            lengths = text_lengths + 1 if key == "decoder" else enc_lens
            valid = ~make_pad_mask(lengths, maxlen=s.size(1)).to(s.device)
            d = masked_kd_loss(
                s, t, valid, self.kd_distance, self.kd_temperature, self.kd_length_normalized, sample_mask
            )
            total = d if total is None else total + d
        return total / len(self.kd_layers)

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: torch.Tensor,
        video_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        video_missing: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Training with a teacher goes through ``distill``; validation and KD-off models
        take the plain model's path (no teacher forward)."""
        if not (self.training and self.kd_enabled):
            return super().forward(
                speech, speech_lengths, video, video_lengths, text, text_lengths, video_missing=video_missing, **kwargs
            )
        batch_size = speech.shape[0]
        loss, stats = self.distill(
            speech, speech_lengths, video, video_lengths, text, text_lengths, video_missing, kwargs.get("utt_id")
        )
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight

    def distill(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: torch.Tensor,
        video_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        video_missing: Optional[torch.Tensor] = None,
        utt_ids: Optional[Sequence[str]] = None,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Video dropout (training mode) -> teacher on the complete video -> student -> CTC/att + KD.

        Works in either mode (in eval mode: no dropout, e.g. to measure the KD distance).
        Returns ``(loss, stats)`` with ``loss_kd``, ``loss_asr`` and the plain stats.
        """
        if not self.kd_enabled:
            raise TeacherError("MDA-KD: distill() needs model_conf.teacher_model_file and teacher_config")
        text = self.prepare_text(text, text_lengths)
        presence = VideoPresence.from_batch(video_lengths, video_missing)
        video = video[:, : presence.width]
        complete, complete_presence = video, presence
        # same order of RNG use as ESPnetAVSRModel.forward: video dropout, the student's specaug,
        # its audio dropout; the eval-mode teacher draws no random numbers
        video, presence, dropped = self.apply_training_dropout(video, presence)
        audio_feats = self.audio_features(speech, speech_lengths) if self.kd_teacher_audio == "student" else None

        s_views: Dict[str, torch.Tensor] = {}
        enc, enc_lens, aux = self.encode(
            speech, speech_lengths, video, return_hidden=True, utt_ids=utt_ids, audio_feats=audio_feats,
            presence=presence,
        )
        with self._capture_decoder_logits(s_views):
            loss_asr, stats = self.losses(enc, enc_lens, aux, text, text_lengths)

        # the teacher sees the complete video and gets the student's audio-dropout draw (and with
        # kd_teacher_audio: student its SpecAugment draw): see the module docstring. Loaded only
        # now: building the teacher on the first step must not shift the student's draws.
        teacher = self.teacher(speech.device)
        if audio_feats is not None:
            self._check_same_frontend(teacher)
        t_views, t_lens = self._teacher_views(
            teacher, (speech, speech_lengths, complete, complete_presence), text, text_lengths, utt_ids,
            audio_drop=aux["audio_dropped"], audio_feats=audio_feats,
        )
        if not torch.equal(t_lens.to(enc_lens.device), enc_lens):
            raise RuntimeError(f"MDA-KD: teacher/student encoder lengths differ ({t_lens.tolist()} vs {enc_lens.tolist()})")
        for key in self.kd_layers:
            if key == "ctc":
                s_views[key] = self.ctc.ctc_lo(enc)
            elif key != "decoder":
                s_views[key] = aux[key]
        loss_kd = self.kd_loss(s_views, t_views, enc_lens, text_lengths, dropped)
        loss = loss_asr + self.kd_weight * loss_kd

        stats["loss_asr"] = loss_asr.detach()
        stats["loss_kd"] = loss_kd.detach()
        stats["loss"] = loss.detach()
        if video_missing is not None or dropped is not None:
            stats["video_missing_rate"] = self.missing_rate(enc_lens, aux)
        return loss, stats


register("model", "mda_kd", MDAKDModel)
