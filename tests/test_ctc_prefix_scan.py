"""CTC prefix scoring in closed form (models/ctc_prefix_scan.py) gives ESPnet's scores and
hypotheses: its scores equal ``CTCPrefixScoreTH``'s step after step, and beam search with
``--ctc_scorer scan`` returns the hypotheses of ``--ctc_scorer loop``, AV and audio-only."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from espnet.nets.ctc_prefix_score import CTCPrefixScoreTH
from espnet.nets.scorers.ctc import CTCPrefixScorer

from espnet_avsr.models.ctc_prefix_scan import CTCPrefixScanScorer, CTCPrefixScanTH, use_ctc_scorer

LOGZERO = -1e9  # below: ESPnet's logzero (-1e10) give or take what float32 can tell apart


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float = 1e-6) -> float:
    """Max |a - b| over finite scores (float32: its rounding of scores of -300 is 3e-5 a step, and
    ESPnet's loop adds one per frame, hence rtol); both must agree on which scores are logzero."""
    fin = a > LOGZERO
    assert torch.equal(fin, b > LOGZERO), "scan and loop disagree on which scores are impossible"
    diff = (a - b)[fin].abs()
    assert bool((diff <= atol + rtol * b[fin].abs()).all()), float(diff.max())
    return float(diff.max()) if fin.any() else 0.0


def _posteriors(batch: int, frames: int, odim: int, dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # peaky like a trained CTC: large logits, blank often the best label
    logits = torch.randn(batch, frames, odim, generator=g, dtype=torch.float64) * 4
    logits[..., 0] += 3
    return logits.log_softmax(-1).to(dtype)


def _extend(y, best: torch.Tensor, n_hyps: int, odim: int):
    """The prefixes ``index_select_state`` keeps: hypothesis best // odim of each utterance + label."""
    out = []
    for b in range(best.size(0)):
        for w in range(n_hyps):
            i = int(best[b, w])
            out.append(torch.cat([y[b * n_hyps + i // odim], torch.tensor([i % odim])]))
    return out


@pytest.mark.parametrize("frames, lens, dtype, atol", [
    (40, (40, 31), torch.float64, 1e-8),
    (40, (40, 31), torch.float32, 1e-4),
    (97, (97, 97), torch.float32, 1e-4),
    (8, (8, 5), torch.float32, 1e-4),  # prefixes as long as the input: an empty window at the end
])
def test_scores_equal_espnet_over_steps(frames, lens, dtype, atol):
    batch, n_hyps, odim, eos = 2, 4, 13, 12
    x = _posteriors(batch, frames, odim, dtype, seed=frames)
    ref = CTCPrefixScoreTH(x.clone(), torch.tensor(lens), 0, eos)
    new = CTCPrefixScanTH(x.clone(), torch.tensor(lens), 0, eos)
    g = torch.Generator().manual_seed(1)
    y = [torch.tensor([eos])] * (batch * n_hyps)  # <sos> (= eos id), as ESPnet's beam search
    s_ref = s_new = None
    worst = [0.0, 0.0]  # scores, forward variables
    for step in range(9):
        ids = None
        if step % 3 != 0:  # partial scoring: the pre-beam's labels (always the last one here, sometimes)
            ids = torch.stack([torch.randperm(odim, generator=g)[:6] for _ in range(batch * n_hyps)])
        a, st_ref = ref(y, s_ref, ids)
        b, st_new = new(y, s_new, ids)
        worst = [max(worst[0], _close(a, b, atol)), max(worst[1], _close(st_ref[0], st_new[0], atol))]
        # keep n_hyps extensions per utterance, never blank or eos (their states are not kept)
        best = torch.randint(0, n_hyps * odim, (batch, n_hyps), generator=g)
        best = best - best % odim + torch.randint(1, odim - 1, (batch, n_hyps), generator=g)
        if ids is not None and step % 2:  # also labels the pre-beam scored
            pick = ids.view(batch, n_hyps, -1)[:, :, 0].clamp(1, odim - 2)
            best = best - best % odim + pick
        s_ref, s_new = ref.index_select_state(st_ref, best), new.index_select_state(st_new, best)
        y = _extend(y, best, n_hyps, odim)
    print(f"max |scan - loop|: scores {worst[0]:.2e}, forward variables {worst[1]:.2e}")


def test_windowed_scores_equal_espnet():
    # margin > 0 with attention weights: the same start and end frames as ESPnet's
    frames, odim, eos, n_hyps = 50, 9, 8, 3
    x = _posteriors(1, frames, odim, torch.float32, seed=5)
    ref = CTCPrefixScoreTH(x.clone(), torch.tensor([frames]), 0, eos, margin=6)
    new = CTCPrefixScanTH(x.clone(), torch.tensor([frames]), 0, eos, margin=6)
    g = torch.Generator().manual_seed(2)
    y = [torch.tensor([eos])] * n_hyps
    s_ref = s_new = None
    for step in range(6):
        centre = 4 + 7 * step
        att = torch.softmax(-((torch.arange(frames) - centre) ** 2).float() / 4, 0).expand(n_hyps, frames)
        a, st_ref = ref(y, s_ref, None, att)
        b, st_new = new(y, s_new, None, att)
        _close(a, b, 1e-4)
        assert st_ref[2:4] == st_new[2:4]  # f_min, f_max
        best = torch.randint(1, odim - 1, (1, n_hyps), generator=g) + odim * torch.arange(n_hyps)
        s_ref, s_new = ref.index_select_state(st_ref, best), new.index_select_state(st_new, best)
        y = _extend(y, best, n_hyps, odim)


def _scorer_steps(scorer, enc, eos, n_steps=5, n_hyps=3, n_ids=5):
    """The batched interface as BatchBeamSearch drives it: select_state per kept hypothesis."""
    g = torch.Generator().manual_seed(4)
    scorer.batch_init_state(enc)
    y, states, out = torch.tensor([[eos]]), [None], []
    for _ in range(n_steps):
        n = y.size(0)
        ids = torch.stack([torch.randperm(enc.size(-1) - 2, generator=g)[:n_ids] + 1 for _ in range(n)])
        scores, st = scorer.batch_score_partial(y, ids, states, enc)
        out.append(scores)
        prev = torch.arange(n_hyps) % n  # each kept hypothesis: a parent and one of its scored labels
        new = ids[prev, torch.arange(n_hyps) % n_ids]
        states = [scorer.select_state(st, int(i), int(t)) for i, t in zip(prev, new)]
        y = torch.cat([y[prev], new.view(-1, 1)], 1)
    return out


class _IdentityCTC(torch.nn.Module):
    def log_softmax(self, x):
        return torch.log_softmax(x, -1)


def test_scorer_interfaces_equal_espnet():
    odim, eos, frames = 11, 10, 33
    enc = torch.randn(frames, odim, generator=torch.Generator().manual_seed(3)) * 4
    ctc = _IdentityCTC()
    # batched: stacks of per-hypothesis states (BatchBeamSearch)
    loop, scan = (_scorer_steps(cls(ctc, eos), enc, eos) for cls in (CTCPrefixScorer, CTCPrefixScanScorer))
    for a, b in zip(loop, scan):
        _close(a, b, 1e-4)
    g = torch.Generator().manual_seed(5)
    # one hypothesis at a time (ESPnet's BeamSearch): ESPnet's numpy scorer as the reference
    ref, new = CTCPrefixScorer(ctc, eos), CTCPrefixScanScorer(ctc, eos)
    st_ref, st_new = ref.init_state(enc), new.init_state(enc)
    y = torch.tensor([eos])
    for k in range(6):
        ids = torch.randperm(odim, generator=g)[:7]
        a, sr = ref.score_partial(y, ids, st_ref, enc)
        b, sn = new.score_partial(y, ids, st_new, enc)
        _close(a, b, 1e-4)
        j = int(torch.nonzero((ids != 0) & (ids != eos))[k % 3])
        st_ref, st_new = ref.select_state(sr, j), new.select_state(sn, j)
        y = torch.cat([y, ids[j:j + 1]])


# ------------------------------------------------------------------ beam search on tiny models
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from test_decode_conditions import _save_model
    from test_task_avsr import TINY, make_dump

    from espnet_avsr.tasks.avsr import AVSRTask

    tmp = tmp_path_factory.mktemp("ctc_scan")
    d = make_dump(tmp / "a")
    cfg, pth = _save_model(AVSRTask, TINY, tmp / "av", tmp / "a" / "tokens.txt")
    return tmp, d, cfg, pth


def _utts(d):
    for line in (d / "wav.scp").read_text().splitlines():
        utt, wav = line.split()
        speech, _ = sf.read(wav, dtype="float32")
        yield utt, speech, np.load(wav.replace(".wav", ".npy"))


@pytest.mark.parametrize("beam, batched", [(3, True), (6, True), (3, False)])  # 6: no pre-beam (8 labels)
def test_av_beam_search_hypotheses_equal_loop(tiny, beam, batched):
    from espnet.nets.beam_search import BeamSearch

    from espnet_avsr.bin.avsr_inference import AVSpeech2Text

    _, d, cfg, pth = tiny
    s2t = {k: AVSpeech2Text(cfg, pth, beam_size=beam, nbest=3, ctc_scorer=k) for k in ("scan", "loop")}
    assert isinstance(s2t["scan"].beam_search.scorers["ctc"], CTCPrefixScanScorer)
    assert type(s2t["loop"].beam_search.scorers["ctc"]) is CTCPrefixScorer
    if not batched:
        for s in s2t.values():
            s.beam_search.__class__ = BeamSearch
    lengths = 0
    for utt, speech, video in _utts(d):
        mask = np.arange(len(video)) % 3 == 0  # a third of the frames missing
        got = {k: s(speech, video, mask) for k, s in s2t.items()}
        assert [r[2] for r in got["scan"]] == [r[2] for r in got["loop"]], utt
        for a, b in zip(got["scan"], got["loop"]):
            assert abs(float(a[3].score) - float(b[3].score)) < 1e-3, utt
            assert abs(float(a[3].scores["ctc"]) - float(b[3].scores["ctc"])) < 1e-3, utt
        lengths += len(got["scan"][0][2])
    assert lengths > 0  # hypotheses of some tokens, not empty ones


def test_asr_decode_conditions_scan_equals_loop(tiny):
    from test_decode_conditions import TINY_ASR, _outputs, _save_model
    from test_task_avsr import run_cli

    from espnet2.tasks.asr import ASRTask

    tmp, d, _, _ = tiny
    cfg, pth = _save_model(ASRTask, TINY_ASR, tmp / "asr", tmp / "a" / "tokens.txt")
    common = ["--task", "asr", "--asr_train_config", cfg, "--asr_model_file", pth, "--beam_size", 3,
              "--ctc_weight", 0.3, "--nbest", 2]
    for k in ("scan", "loop"):
        run_cli("espnet_avsr.bin.decode_conditions",
                [*common, "--ctc_scorer", k, "--condition", f"out={tmp / ('asr_' + k)},data={d},rate=-"], tmp)
    scan, loop = _outputs(tmp / "asr_scan"), _outputs(tmp / "asr_loop")
    assert scan["token_int"] == loop["token_int"] and scan["text"] == loop["text"]
    number = lambda v: float(v.removeprefix("tensor(").removesuffix(")"))  # noqa: E731 (ESPnet writes tensor(x))
    for a, b in zip(scan["score"].split(), loop["score"].split()):
        if not a.startswith("S001"):
            assert abs(number(a) - number(b)) < 1e-3


def test_use_ctc_scorer_swaps_speech2text_scorer(tiny):
    from espnet2.bin.asr_inference import Speech2Text

    tmp = tiny[0]
    if not (tmp / "asr" / "config.yaml").is_file():
        pytest.skip("needs the ASR model of test_asr_decode_conditions_scan_equals_loop")
    s2t = Speech2Text(str(tmp / "asr" / "config.yaml"), str(tmp / "asr" / "model.pth"), beam_size=3)
    use_ctc_scorer(s2t.beam_search, "scan")
    bs = s2t.beam_search
    assert isinstance(bs.scorers["ctc"], CTCPrefixScanScorer) and bs.part_scorers["ctc"] is bs.scorers["ctc"]
    assert bs.weights["ctc"] == 0.5
    with pytest.raises(ValueError, match="ctc_scorer"):
        use_ctc_scorer(bs, "fast")
