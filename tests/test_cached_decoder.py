"""The cached decoder scorer (models/cached_decoder.py) gives ESPnet's decoder scores and
beam-search hypotheses: step by step on a random decoder, and in AV / audio-only beam search
(with the CTC scan's lazy states: the hypotheses of ESPnet's own scorers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from espnet2.asr.decoder.transformer_decoder import TransformerDecoder

from espnet_avsr.models.cached_decoder import CachedDecoderScorer, supports, use_decoder_scorer
from test_ctc_prefix_scan import _utts, tiny  # noqa: F401 (the tiny AV model fixture)


def _decoder(**kw) -> TransformerDecoder:
    torch.manual_seed(0)
    dec = TransformerDecoder(13, 16, attention_heads=2, linear_units=32, num_blocks=2, **kw)
    return dec.eval()


def test_batch_scores_equal_espnet_over_steps():
    dec = _decoder()
    cached = CachedDecoderScorer(dec)
    enc = torch.randn(21, 16, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    cached.batch_init_state(enc)
    ys = torch.tensor([[12]])
    st_ref, st_new = [None], [None]
    with torch.no_grad():
        for step in range(7):
            n = ys.size(0)
            xs = enc.expand(n, *enc.shape)
            ref, out_ref = dec.batch_score(ys, st_ref, xs)
            new, out_new = cached.batch_score(ys, st_new, xs)
            torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-5)
            # the beam keeps some rows (repeats, reordered) and extends each by a label
            keep = torch.randint(0, n, (min(4, n + 2),), generator=g)
            st_ref = [dec.select_state(out_ref, int(i)) for i in keep]
            st_new = [cached.select_state(out_new, int(i)) for i in keep]
            ys = torch.cat([ys[keep], torch.randint(1, 12, (len(keep), 1), generator=g)], 1)


def test_unsupported_decoders_keep_espnet():
    assert supports(_decoder())
    assert not supports(_decoder(concat_after=True))
    with pytest.raises(ValueError, match="plain pre-norm"):
        CachedDecoderScorer(_decoder(normalize_before=False))


@pytest.mark.parametrize("beam", [3, 6])
def test_av_beam_search_hypotheses_equal_espnet(tiny, beam):  # noqa: F811
    from espnet_avsr.bin.avsr_inference import AVSpeech2Text

    _, d, cfg, pth = tiny
    new = AVSpeech2Text(cfg, pth, beam_size=beam, nbest=3)  # defaults: CTC scan, cached decoder
    ref = AVSpeech2Text(cfg, pth, beam_size=beam, nbest=3, ctc_scorer="loop", decoder_scorer="espnet")
    assert isinstance(new.beam_search.full_scorers["decoder"], CachedDecoderScorer)
    assert ref.beam_search.full_scorers["decoder"] is ref.model.decoder
    lengths = 0
    for utt, speech, video in _utts(d):
        for mask in (None, np.arange(len(video)) % 3 == 0, np.ones(len(video), dtype=bool)):
            a, b = new(speech, video, mask), ref(speech, video, mask)
            assert [r[2] for r in a] == [r[2] for r in b], utt
            for x, y in zip(a, b):
                assert abs(float(x[3].score) - float(y[3].score)) < 1e-3, utt
                assert abs(float(x[3].scores["decoder"]) - float(y[3].scores["decoder"])) < 1e-3, utt
            lengths += len(a[0][2])
    assert lengths > 0


def test_use_decoder_scorer_swaps_and_restores(tiny):  # noqa: F811
    from espnet_avsr.bin.avsr_inference import AVSpeech2Text

    _, _, cfg, pth = tiny
    s2t = AVSpeech2Text(cfg, pth, beam_size=3, decoder_scorer="espnet")
    bs = s2t.beam_search
    use_decoder_scorer(bs, "cached")
    assert isinstance(bs.scorers["decoder"], CachedDecoderScorer) and bs.full_scorers["decoder"] is bs.scorers["decoder"]
    use_decoder_scorer(bs, "espnet")
    assert bs.scorers["decoder"] is s2t.model.decoder and bs.nn_dict["decoder"] is s2t.model.decoder
    with pytest.raises(ValueError, match="decoder_scorer"):
        use_decoder_scorer(bs, "fast")
