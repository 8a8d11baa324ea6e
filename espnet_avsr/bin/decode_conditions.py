"""Decode every test condition of one model in one process, the model loaded once.

A condition is an output dir, a dump dir (``wav.scp`` [+ ``roi.scp``]), a missing-video rate
and optionally a key file (this job's share of the set). The conditions of a model (its test
sets, their babble-noise copies, every missing rate) used to be one process each, and
ESPnet's start-up (~25 s) and the model build were paid every time.

    python -m espnet_avsr.bin.decode_conditions --task avsr \
        --asr_train_config exp/AV0/config.yaml --asr_model_file exp/AV0/valid.acc.ave.pth \
        --config conf/decode_avsr.yaml --missing_pattern random \
        --condition out=exp/AV0/decode_x/eval_far_miss0.5_random/logdir/output.1,data=dump/raw/eval_far,rate=0.5,keys=k.1.scp \
        --condition out=...,data=dump/raw/eval_far_babble0,rate=0

Several models in one process (one start-up for all): their option lists joined by ``---``,
decoded one model after the other, each model built once.

``--task asr`` decodes a stock ESPnet ASR model with ESPnet's ``Speech2Text`` (rate ``-``).
Every other option is the task's inference option (``espnet_avsr.bin.avsr_inference`` or
``espnet2.bin.asr_inference``, ``--config`` included) and is parsed by that tool's own
parser, so each condition's output is the output of that tool run on it alone (test).

Each condition's output dir also gets ``condition.json``, the missing-video condition it was
decoded under (rate, pattern, fill, seed; all null for an audio-only model), which scoring
records as the score's facts (espnet_avsr.common.experiment.ConditionInfo).

``--mode ctc_greedy`` replaces the beam search by CTC best path (argmax per frame, repeats
merged, blanks dropped): no decoder, no prefix scoring. The beam search is ESPnet's
``BatchBeamSearch`` (the beam vectorised); it decodes one utterance at a time, because
batching utterances would pad them and change the hypotheses of the shorter ones.

``--ctc_scorer scan`` (default) scores CTC prefixes in closed form, without ESPnet's loop over
the encoder frames at every output step (``espnet_avsr.models.ctc_prefix_scan``), for both
tasks (ESPnet's ``Speech2Text`` gets it swapped in after construction); ``loop`` is ESPnet's
own. The hypotheses are the same (test). ``--decoder_scorer cached`` (default) runs the
transformer decoder with its keys and values computed once (``espnet_avsr.models.cached_decoder``);
``espnet`` is the decoder's own ``batch_score``. The hypotheses are the same (test).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from espnet.nets.beam_search import Hypothesis

from espnet_avsr.common.experiment import ConditionInfo, write_condition_info
from espnet_avsr.models.cached_decoder import DECODER_SCORERS, use_decoder_scorer
from espnet_avsr.models.ctc_prefix_scan import CTC_SCORERS, use_ctc_scorer

MODES = ("beam", "ctc_greedy")


@dataclass(frozen=True)
class Condition:
    """One decode: ``out`` output dir, ``data`` dump dir, ``rate`` missing rate (None: as given)."""

    out: Path
    data: Path
    rate: Optional[float]
    keys: Optional[Path] = None


def parse_condition(spec: str) -> Condition:
    """``out=DIR,data=DIR,rate=R|-[,keys=FILE]`` -> Condition; a clear error otherwise."""
    fields: Dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or key not in ("out", "data", "rate", "keys") or not value or key in fields:
            raise argparse.ArgumentTypeError(
                f"--condition {spec!r}: expected out=DIR,data=DIR,rate=R|-[,keys=FILE] ({part!r} is not)")
        fields[key] = value
    missing = {"out", "data", "rate"} - set(fields)
    if missing:
        raise argparse.ArgumentTypeError(f"--condition {spec!r}: missing {', '.join(sorted(missing))}")
    try:
        rate = None if fields["rate"] == "-" else float(fields["rate"])
    except ValueError:
        raise argparse.ArgumentTypeError(f"--condition {spec!r}: rate must be a number or '-'") from None
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"--condition {spec!r}: rate must be in [0, 1]")
    keys = Path(fields["keys"]) if "keys" in fields else None
    return Condition(Path(fields["out"]), Path(fields["data"]), rate, keys)


class CTCGreedySearch(torch.nn.Module):
    """Stands in for a beam search: CTC best path over the encoder output, one hypothesis.

    Called like ESPnet's ``BeamSearch`` (``x``, ``maxlenratio``, ``minlenratio``) and returns
    ``[Hypothesis]`` with ``yseq = [sos, tokens..., eos]`` and the path's log probability.
    """

    def __init__(self, ctc: torch.nn.Module, sos: int, eos: int, blank: int = 0):
        super().__init__()
        self.ctc, self.sos, self.eos, self.blank = ctc, sos, eos, blank
        self.nn_dict = torch.nn.ModuleDict()  # Speech2Text looks for a decoder in it

    def forward(self, x: torch.Tensor, maxlenratio: float = 0.0, minlenratio: float = 0.0) -> List[Hypothesis]:
        logp = self.ctc.log_softmax(x.unsqueeze(0))[0]
        best, ids = logp.max(dim=-1)
        ids = torch.unique_consecutive(ids)
        ids = ids[ids != self.blank]
        yseq = torch.cat([ids.new_tensor([self.sos]), ids, ids.new_tensor([self.eos])])
        score = best.sum()
        return [Hypothesis(yseq=yseq, score=score, scores={"ctc": score}, states={})]


def _split_args(argv: Sequence[str]):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=("avsr", "asr"), required=True)
    p.add_argument("--condition", type=parse_condition, action="append", required=True,
                   help="out=DIR,data=DIR,rate=R|-[,keys=FILE]; repeat for every condition")
    p.add_argument("--mode", choices=MODES, default="beam")
    p.add_argument("--ctc_scorer", choices=CTC_SCORERS, default="scan",
                   help="CTC prefix scoring of the beam search: scan (no loop over frames) or loop (ESPnet's)")
    p.add_argument("--decoder_scorer", choices=DECODER_SCORERS, default="cached",
                   help="decoder scoring of the beam search: cached (keys/values once) or espnet (its batch_score)")
    p.add_argument("--log_level", default="INFO", choices=("ERROR", "WARNING", "INFO", "DEBUG"))
    return p.parse_known_args(argv)


def _task_args(parser: argparse.ArgumentParser, rest: List[str], first: Condition) -> argparse.Namespace:
    """The task tool's own parser over the remaining options (placeholders for per-condition ones)."""
    for opt in ("--output_dir", "--data_path_and_name_and_type", "--key_file", "--missing_rate"):
        if any(a == opt or a.startswith(opt + "=") for a in rest):
            raise SystemExit(f"decode_conditions: {opt} is per condition; give it in --condition")
    return parser.parse_args(rest + ["--output_dir", str(first.out),
                                     "--data_path_and_name_and_type", f"{first.data}/wav.scp,speech,sound"])


def _check_data(c: Condition, video: bool) -> None:
    need = ["wav.scp"] + (["roi.scp"] if video else [])
    for name in need:
        if not (c.data / name).is_file():
            raise FileNotFoundError(f"{c.data / name}: missing (condition out={c.out})")
    if c.keys is not None and not c.keys.is_file():
        raise FileNotFoundError(f"{c.keys}: key file missing (condition out={c.out})")


def decode_avsr(conditions: Sequence[Condition], rest: List[str], mode: str, ctc_scorer: str = "scan",
                decoder_scorer: str = "cached") -> None:
    from espnet2.torch_utils.set_all_random_seed import set_all_random_seed

    from espnet_avsr.bin import avsr_inference as ai

    args = vars(_task_args(ai.get_parser(), rest, conditions[0]))
    args.pop("log_level")
    args.pop("config", None)
    for k in ("output_dir", "data_path_and_name_and_type", "key_file", "missing_rate"):  # per condition
        args.pop(k)
    ngpu, seed, batch_size = args.pop("ngpu"), args.pop("seed"), args.pop("batch_size")
    if batch_size != 1:
        raise NotImplementedError("batch decoding is not supported; use --batch_size 1")
    per_cond = {k: args.pop(k) for k in ("num_workers", "missing_pattern", "missing_fill", "missing_seed",
                                          "audio_only", "allow_variable_data_keys")}
    for c in conditions:
        _check_data(c, video=not per_cond["audio_only"])
    set_all_random_seed(seed)
    args["ctc_scorer"], args["decoder_scorer"] = ctc_scorer, decoder_scorer
    s2t = ai.AVSpeech2Text(device="cuda" if ngpu >= 1 else "cpu", **args)
    if mode == "ctc_greedy":
        model = s2t.model
        s2t.beam_search = CTCGreedySearch(model.ctc, model.sos, model.eos)
    for c in conditions:
        t0 = time.perf_counter()
        set_all_random_seed(seed)
        data = [(str(c.data / "wav.scp"), "speech", "sound")]
        if not per_cond["audio_only"]:
            data.append((str(c.data / "roi.scp"), "video", "npy"))
        ai.decode_data(s2t, str(c.out), data, str(c.keys) if c.keys else None,
                       missing_rate=c.rate or 0.0, **per_cond)
        cond = ConditionInfo() if per_cond["audio_only"] else ConditionInfo(  # audio_only: no video fed
            c.rate or 0.0, per_cond["missing_pattern"], per_cond["missing_fill"], per_cond["missing_seed"])
        write_condition_info(c.out, cond)
        logging.info("decoded %s (missing rate %s) in %.1f s -> %s", c.data, c.rate, time.perf_counter() - t0, c.out)


def decode_asr(conditions: Sequence[Condition], rest: List[str], mode: str, ctc_scorer: str = "scan",
               decoder_scorer: str = "cached") -> None:
    """Stock ESPnet ASR: Speech2Text built as espnet2.bin.asr_inference builds it, the same loop."""
    from espnet2.bin import asr_inference as ei
    from espnet2.fileio.datadir_writer import DatadirWriter
    from espnet2.tasks.asr import ASRTask
    from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
    from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

    args = _task_args(ei.get_parser(), rest, conditions[0])
    if args.batch_size != 1:
        raise NotImplementedError("batch decoding is not supported; use --batch_size 1")
    for c in conditions:
        if c.rate is not None:
            raise ValueError(f"condition out={c.out}: an audio-only model takes rate '-', got {c.rate}")
        _check_data(c, video=False)
    set_all_random_seed(args.seed)
    params = inspect.signature(ei.Speech2Text.__init__).parameters
    kwargs: Dict[str, Any] = {k: v for k, v in vars(args).items() if k in params}
    kwargs["device"] = "cuda" if args.ngpu >= 1 else "cpu"
    s2t = ei.Speech2Text(**kwargs)
    use_ctc_scorer(s2t.beam_search, ctc_scorer)
    use_decoder_scorer(s2t.beam_search, decoder_scorer)
    if mode == "ctc_greedy":
        model = s2t.asr_model
        s2t.beam_search = CTCGreedySearch(model.ctc, model.sos, model.eos)
    for c in conditions:
        t0 = time.perf_counter()
        set_all_random_seed(args.seed)
        loader = ASRTask.build_streaming_iterator(
            [(str(c.data / "wav.scp"), "speech", "sound")], dtype=args.dtype, batch_size=1,
            key_file=str(c.keys) if c.keys else None, num_workers=args.num_workers,
            preprocess_fn=ASRTask.build_preprocess_fn(s2t.asr_train_args, False),
            collate_fn=ASRTask.build_collate_fn(s2t.asr_train_args, False),
            allow_variable_data_keys=args.allow_variable_data_keys, inference=True)
        with DatadirWriter(c.out) as writer:
            for keys, batch in loader:
                batch = {k: v[0] for k, v in batch.items() if not k.endswith("_lengths")}
                try:
                    results = s2t(**batch)
                except TooShortUttError as e:  # as asr_inference: a placeholder hypothesis
                    logging.warning(f"Utterance {keys} {e}")
                    hyp = Hypothesis(score=0.0, scores={}, states={}, yseq=[])
                    results = [[" ", ["<space>"], [2], hyp]] * args.nbest
                if isinstance(results, tuple):
                    results = results[0]
                for n, (text, token, token_int, hyp) in zip(range(1, args.nbest + 1), results):
                    w = writer[f"{n}best_recog"]
                    w["token"][keys[0]] = " ".join(token)
                    w["token_int"][keys[0]] = " ".join(map(str, token_int))
                    w["score"][keys[0]] = str(hyp.score)
                    if text is not None:
                        w["text"][keys[0]] = text
        write_condition_info(c.out, ConditionInfo())  # audio only: no video, no missing frames
        logging.info("decoded %s in %.1f s -> %s", c.data, time.perf_counter() - t0, c.out)


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Options of one model; several models in one process: their option lists joined by ``---``."""
    import sys

    argv = list(sys.argv[1:] if cmd is None else cmd)
    blocks: List[List[str]] = [[]]
    for arg in argv:
        if arg == "---":
            blocks.append([])
        else:
            blocks[-1].append(arg)
    parsed = [_split_args(b) for b in blocks]  # every block checked before the first decode
    outs = [c.out for a, _ in parsed for c in a.condition]
    if len(set(outs)) != len(outs):
        raise SystemExit("decode_conditions: two conditions write the same output dir")
    logging.basicConfig(level=parsed[0][0].log_level,
                        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    for a, rest in parsed:
        (decode_avsr if a.task == "avsr" else decode_asr)(
            a.condition, rest + ["--log_level", a.log_level], a.mode, a.ctc_scorer, a.decoder_scorer)


if __name__ == "__main__":
    main()
