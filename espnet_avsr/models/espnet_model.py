"""ESPnetAVSRModel: joint CTC/attention AVSR on ESPnet's ASR model machinery.

It subclasses ESPnet's ``ESPnetASRModel`` to reuse its CTC / label-smoothing attention
losses, error calculators and feature extraction; it adds the video front-end, the AV
encoder call and training-time video dropout.

Video dropout runs inside ``forward`` (training mode only) so that a KD wrapper can feed
the teacher the complete video of the very same batch: ``model_conf.video_dropout:
{prob, rate, pattern, fill}`` (see ``espnet_avsr.data.missing_video``). Fills act in the
normalised domain (the preprocessor already normalised): ``zeros`` is a mean-grey frame,
``black`` the value a 0-intensity frame has after normalisation.

Audio dropout (``model_conf.audio_dropout``, per-sample probability, training only) is the
mirror image: the whole utterance's normalised fbank is zeroed, so the sample must be
recognised from the lips. Only samples that keep some video are eligible. Why: on a small
corpus the audio branch memorises the training speakers, and an AV model then fits its
training data through the audio alone and stops reading lips (RESULTS.md, small runs);
modality dropout of the audio is AV-HuBERT's remedy for the same imbalance. ``encode``
takes a given draw (``audio_drop``) so the KD teacher can hear what the student heard.

Which frames exist: ``forward`` and ``encode`` turn the batch's ``video_lengths`` +
``video_missing`` into one ``VideoPresence`` (``data/presence.py``) and hand that on;
video dropout adds its draw to it (``union``), audio dropout and the encoder read it.
"""

from __future__ import annotations

import contextlib

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.abs_decoder import AbsDecoder
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_avsr.data.missing_video import VideoDropoutConfig, apply_batch_missing, batch_dropout_mask, fill_value
from espnet_avsr.data.presence import VideoPresence
from espnet_avsr.common.timing import CROP_SIZE, subsampled_length
from espnet_avsr.models.av_conformer import AVConformerEncoder
from espnet_avsr.models.visual_frontend import AbsVideoFrontend

EncodeResult = Union[
    Tuple[torch.Tensor, torch.Tensor],
    Tuple[torch.Tensor, torch.Tensor, Dict[str, torch.Tensor]],
]


class ESPnetAVSRModel(ESPnetASRModel):
    """Audio + video -> text with a joint CTC/attention objective.

    Args (beyond ESPnetASRModel's):
        video_frontend: lip-ROI front-end producing per-frame d_model features.
        encoder: ``AVConformerEncoder``.
        video_dropout: dict for ``VideoDropoutConfig`` (prob, rate, pattern, fill) or None.
        audio_dropout: per-sample probability that the whole audio is zeroed (training only).
    """

    def __init__(
        self,
        vocab_size: int,
        token_list: Union[Tuple[str, ...], List[str]],
        frontend: Optional[AbsFrontend],
        specaug: Optional[AbsSpecAug],
        normalize: Optional[AbsNormalize],
        video_frontend: AbsVideoFrontend,
        encoder: AVConformerEncoder,
        decoder: Optional[AbsDecoder],
        ctc: CTC,
        ctc_weight: float = 0.3,
        ignore_id: int = -1,
        lsm_weight: float = 0.0,
        length_normalized_loss: bool = False,
        report_cer: bool = True,
        report_wer: bool = True,
        sym_space: str = "<space>",
        sym_blank: str = "<blank>",
        sym_sos: str = "<sos/eos>",
        sym_eos: str = "<sos/eos>",
        extract_feats_in_collect_stats: bool = True,
        video_dropout: Optional[Dict] = None,
        audio_dropout: float = 0.0,
        freeze_video_frontend: bool = False,
    ):
        super().__init__(
            vocab_size=vocab_size,
            token_list=token_list,
            frontend=frontend,
            specaug=specaug,
            normalize=normalize,
            preencoder=None,
            encoder=encoder,
            postencoder=None,
            decoder=decoder,
            ctc=ctc,
            joint_network=None,
            ctc_weight=ctc_weight,
            ignore_id=ignore_id,
            lsm_weight=lsm_weight,
            length_normalized_loss=length_normalized_loss,
            report_cer=report_cer,
            report_wer=report_wer,
            sym_space=sym_space,
            sym_blank=sym_blank,
            sym_sos=sym_sos,
            sym_eos=sym_eos,
            extract_feats_in_collect_stats=extract_feats_in_collect_stats,
        )
        self.video_frontend = video_frontend
        self.video_dropout = VideoDropoutConfig(**video_dropout) if video_dropout else None
        if not 0.0 <= float(audio_dropout) < 1.0:
            raise ValueError(f"audio_dropout must be in [0, 1), got {audio_dropout}")
        self.audio_dropout = float(audio_dropout)
        # A trained lip reader's front-end kept fixed (a CPU economy, stated where used):
        # no gradients, batch-norm statistics frozen, and no autograd graph in the forward.
        self.freeze_video_frontend = bool(freeze_video_frontend)
        if self.freeze_video_frontend:
            for p in self.video_frontend.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "ESPnetAVSRModel":
        super().train(mode)
        if self.freeze_video_frontend:
            self.video_frontend.eval()
        return self

    # ------------------------------------------------------------------ helpers
    def drop_video(self, video: torch.Tensor, video_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training-time video dropout: (filled video, (B, T) missing mask)."""
        cfg = self.video_dropout
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())  # follows torch's seeding
        mask = batch_dropout_mask(video_lengths.tolist(), video.size(1), cfg, np.random.default_rng(seed))
        mask_t = torch.from_numpy(mask).to(video.device)
        return apply_batch_missing(video, mask_t, cfg.fill, cfg.mean, cfg.std), mask_t

    def audio_drop_mask(self, presence: VideoPresence, device: torch.device) -> torch.Tensor:
        """(B,) bool: the samples drawn with ``audio_dropout`` among those that keep some video."""
        return (torch.rand(presence.batch_size, device=device) < self.audio_dropout) & presence.has_video.to(device)

    @staticmethod
    def batch_presence(
        video: Optional[torch.Tensor],
        video_lengths: Optional[torch.Tensor],
        video_missing: Optional[torch.Tensor],
        presence: Optional[VideoPresence],
    ) -> Optional[VideoPresence]:
        """The model boundary: the batch's tensors or a ``VideoPresence`` made from them, not both.

        None when there is no video at all.
        """
        if presence is not None:
            if video_lengths is not None or video_missing is not None:
                raise ValueError("give video_lengths/video_missing or presence, not both")
            if video is None:
                raise ValueError("presence describes a video: pass the video too (video=None means no video)")
            return presence
        if video is None:
            return None
        return VideoPresence.from_batch(video_lengths, video_missing)

    def empty_video(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, VideoPresence]:
        """A video with every frame missing, as long as the subsampled audio (audio-only use).

        Its frames hold what the model's missing frames hold in training: black with
        ``video_dropout.fill: black``, else zero.
        """
        feats, feats_lengths = self._extract_feats(speech, speech_lengths)
        n = subsampled_length(feats_lengths)
        side = getattr(self.video_frontend, "roi_size", CROP_SIZE)
        cfg = self.video_dropout
        value = fill_value("black", cfg.mean, cfg.std) if cfg is not None and cfg.fill == "black" else 0.0
        video = speech.new_full((speech.size(0), int(n.max()), side, side), value, dtype=torch.float32)
        return video, VideoPresence.all_missing(n)

    def audio_features(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Front-end features with SpecAugment (training mode only), before normalisation.

        One draw per call; ``encode(..., audio_feats=...)`` takes such a draw so the MDA-KD
        teacher can hear the student's augmented audio.
        """
        feats, feats_lengths = self._extract_feats(speech, speech_lengths)
        if self.specaug is not None and self.training:
            feats, feats_lengths = self.specaug(feats, feats_lengths)
        return feats, feats_lengths

    # ------------------------------------------------------------------ ESPnet API
    def encode(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        video_missing: Optional[torch.Tensor] = None,
        return_hidden: bool = False,
        utt_ids: Optional[Sequence[str]] = None,
        audio_drop: Optional[torch.Tensor] = None,
        audio_feats: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
        presence: Optional[VideoPresence] = None,
    ) -> EncodeResult:
        """Frontends + AV encoder.

        ``video=None`` means no video at all: ``empty_video`` (every frame missing).
        ``presence``: the ``VideoPresence`` of ``video``, in place of ``video_lengths`` +
        ``video_missing`` (made once by a caller that has already read them).
        ``audio_drop``: (B,) bool, zero these samples' audio whatever the mode; None draws it
        with ``audio_dropout`` in training. The KD teacher gets the student's draw
        (hidden["audio_dropped"] holds the draw used).
        ``audio_feats``: ``audio_features()`` output to use instead of running the front-end
        and SpecAugment here (MDA-KD's ``kd_teacher_audio: student``); still normalised here.
        Returns ``(enc, enc_lens)`` or ``(enc, enc_lens, hidden)`` (DESIGN §5).
        """
        presence = self.batch_presence(video, video_lengths, video_missing, presence)
        if presence is None:
            video, presence = self.empty_video(speech, speech_lengths)
        if audio_feats is None:
            feats, feats_lengths = self.audio_features(speech, speech_lengths)
        else:  # a copy: ESPnet's normalize layers work in place and the caller reuses the draw
            feats, feats_lengths = audio_feats[0].clone(), audio_feats[1]
        if self.normalize is not None:
            feats, feats_lengths = self.normalize(feats, feats_lengths)
        video = video[:, : presence.width]
        if audio_drop is None and self.training and self.audio_dropout > 0:
            audio_drop = self.audio_drop_mask(presence, feats.device)
        if audio_drop is not None:
            audio_drop = audio_drop.to(device=feats.device, dtype=torch.bool)
            if audio_drop.shape != (feats.size(0),):
                raise ValueError(f"audio_drop must be ({feats.size(0)},) bool, got {tuple(audio_drop.shape)}")
            feats = feats.masked_fill(audio_drop[:, None, None], 0.0)
        with torch.no_grad() if self.freeze_video_frontend else contextlib.nullcontext():
            vfeats, vlens = self.video_frontend(video, presence.lengths)
        enc, enc_lens, hidden = self.encoder(
            feats, feats_lengths, vfeats, vlens, presence=presence, return_hidden=return_hidden, utt_ids=utt_ids
        )
        if return_hidden:
            hidden["audio_dropped"] = audio_drop if audio_drop is not None else torch.zeros(
                feats.size(0), dtype=torch.bool, device=feats.device)
            return enc, enc_lens, hidden
        return enc, enc_lens

    def encode_audio_only(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        return_hidden: bool = False,
        bridge: Optional[torch.nn.Module] = None,
    ) -> EncodeResult:
        """Audio front-end + the encoder's audio-only route (no video front-end, no fusion).

        The MS-Adapter switch calls this for samples without video; ``bridge`` replaces
        the merge FFN (see ``AVConformerEncoder.forward_audio_only``).
        """
        feats, feats_lengths = self.audio_features(speech, speech_lengths)
        if self.normalize is not None:
            feats, feats_lengths = self.normalize(feats, feats_lengths)
        enc, enc_lens, hidden = self.encoder.forward_audio_only(
            feats, feats_lengths, return_hidden=return_hidden, bridge=bridge
        )
        if return_hidden:
            return enc, enc_lens, hidden
        return enc, enc_lens

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        text: Optional[torch.Tensor] = None,
        text_lengths: Optional[torch.Tensor] = None,
        video_missing: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Video dropout (training) + encode + CTC/attention losses."""
        if video is None or video_lengths is None:
            # the task lets 'video' be optional so audio-only dumps can train MS-Adapters
            raise ValueError(
                f"{type(self).__name__} needs 'video' in every batch: pass roi.scp as "
                "'<dump>/roi.scp,video,npy' (audio-only data dirs only suit model: ms_adapter)"
            )
        batch_size = speech.shape[0]
        text = self.prepare_text(text, text_lengths)
        presence = VideoPresence.from_batch(video_lengths, video_missing)
        video = video[:, : presence.width]
        video, presence, dropped = self.apply_training_dropout(video, presence)
        enc, enc_lens, aux = self.encode(
            speech, speech_lengths, video, presence=presence, return_hidden=True, utt_ids=kwargs.get("utt_id")
        )
        loss, stats = self.losses(enc, enc_lens, aux, text, text_lengths)
        if video_missing is not None or dropped is not None:  # the stat's key set stays what it was
            stats["video_missing_rate"] = self.missing_rate(enc_lens, aux)
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight

    def prepare_text(self, text: Optional[torch.Tensor], text_lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """Padded targets for the losses: ESPnet's -1 padding -> ignore_id, trimmed to the longest.

        Works on a copy, so a batch reused by another forward (KD teacher, retries) is unchanged.
        """
        if text is None or text_lengths is None:
            raise ValueError(f"{type(self).__name__}.forward needs 'text' (and text_lengths)")
        text = text[:, : int(text_lengths.max())].clone()
        text[text == -1] = self.ignore_id
        return text

    def apply_training_dropout(
        self, video: torch.Tensor, presence: VideoPresence
    ) -> Tuple[torch.Tensor, VideoPresence, Optional[torch.Tensor]]:
        """Training-mode video dropout added to ``presence``.

        Returns ``(video, presence, dropped)``; ``dropped`` (the draw, (B, T) bool) is None
        when no dropout ran. The one place forward and the KD wrapper draw dropout, so both
        use the RNG alike.
        """
        if not (self.training and self.video_dropout is not None and self.video_dropout.prob > 0):
            return video, presence, None
        video, dropped = self.drop_video(video, presence.lengths)
        return video, presence.union(dropped), dropped

    @staticmethod
    def missing_rate(enc_lens: torch.Tensor, aux: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The ``video_missing_rate`` stat: missing frames after the encoder's length reconciliation."""
        return VideoPresence(enc_lens, aux["video_missing"]).missing_fraction()

    def losses(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        aux: Dict[str, torch.Tensor],
        text: torch.Tensor,
        text_lengths: torch.Tensor,
    ) -> Tuple[torch.Tensor, Dict[str, Optional[torch.Tensor]]]:
        """Joint CTC/attention loss on an encoder output (reused by KD wrappers)."""
        stats: Dict[str, Optional[torch.Tensor]] = {}
        loss_ctc = loss_att = None
        if self.ctc_weight != 0.0:
            loss_ctc, cer_ctc = self._calc_ctc_loss(enc, enc_lens, text, text_lengths)
            stats["loss_ctc"] = loss_ctc.detach()
            stats["cer_ctc"] = cer_ctc
        if self.ctc_weight != 1.0:
            loss_att, acc_att, cer_att, wer_att = self._calc_att_loss(
                enc, enc_lens, text, text_lengths
            )
            stats.update(loss_att=loss_att.detach(), acc=acc_att, cer=cer_att, wer=wer_att)
        if loss_att is None:
            loss = loss_ctc
        elif loss_ctc is None:
            loss = loss_att
        else:
            loss = self.ctc_weight * loss_ctc + (1 - self.ctc_weight) * loss_att
        stats["loss"] = loss.detach()
        return loss, stats

    def collect_feats(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        text: Optional[torch.Tensor] = None,
        text_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Dict[str, torch.Tensor]:
        """Audio features for global_mvn statistics (collect_stats)."""
        feats, feats_lengths = self._extract_feats(speech, speech_lengths)
        return {"feats": feats, "feats_lengths": feats_lengths}
