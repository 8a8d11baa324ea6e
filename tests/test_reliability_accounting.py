"""End-to-end utterance accounting (account_utts) on a fixture recipe dir."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from espnet_avsr.bin import account_utts
from espnet_avsr.dataprep.accounting import account_recipe
from espnet_avsr.dataprep.dump import make_dump
from espnet_avsr.common.kaldi_dir import read_kv, write_kv
from espnet_avsr.dataprep.lip_roi import extract_lip_roi
from espnet_avsr.dataprep.prepare import prepare_misp_data
from test_dataprep_fixtures import FAR_LIP, SESSION, make_corpus, write_detection

U017B = "S017_R01_S016017_C02_I1_000332-000480"  # its lips are undetected -> few_detections


@pytest.fixture()
def recipe(tmp_path) -> Path:
    corpus = make_corpus(tmp_path / "corpus", "dev", with_middle=False, with_near=False)
    write_detection(corpus / "detection" / "dev" / "far" / f"{SESSION}_Far.json", FAR_LIP, 150,
                    missing={"017": range(70, 130)})
    r = tmp_path / "recipe"
    prepare_misp_data(corpus, "dev", "far", r / "data" / "dev_far")
    extract_lip_roi(r / "data" / "dev_far", r / "dump" / "roi" / "dev_far")
    make_dump(r / "data" / "dev_far", r / "dump" / "raw" / "dev_far",
               roi_scp=r / "dump" / "roi" / "dev_far" / "roi.scp")
    hyps = {u: "好" for u in read_kv(r / "dump" / "raw" / "dev_far" / "text")}
    write_kv(r / "exp" / "AV0" / "decode_avsr_valid.acc.ave" / "dev_far_miss0.5_random" / "text", hyps)
    return r


def _row(acc, stage):
    return next(r for r in acc.rows if r.stage.startswith(stage))


def test_complete_pipeline_accounts_for_every_utterance(recipe, capsys):
    acc = account_recipe(recipe)
    assert acc.ok
    prep = _row(acc, "textgrid->data")
    assert (prep.n_in, prep.n_out, prep.n_dropped) == (9, 4, 5)
    assert prep.dropped == {"deaf_tag": 1, "empty_text": 1, "filler_only": 1, "noise_tag": 1, "too_short": 1}
    roi = _row(acc, "data->roi")
    assert (roi.n_in, roi.n_out, roi.dropped) == (4, 3, {"few_detections": 1})
    dump = _row(acc, "data(+roi)->dump")
    assert (dump.n_in, dump.n_out, dump.dropped) == (4, 3, {"no_roi": 1})
    hyp = _row(acc, "dump->hyp AV0")
    assert (hyp.n_in, hyp.n_out, hyp.unexplained) == (3, 3, [])

    out = recipe / "acc.json"
    assert account_utts.main(["--recipe", str(recipe), "--json_out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "few_detections=1" in table and "no_roi=1" in table and "LOST" not in table
    assert json.loads(out.read_text())["ok"] is True


def test_utterance_lost_without_reason_fails_and_is_named(recipe, capsys):
    dec = recipe / "exp" / "AV0" / "decode_avsr_valid.acc.ave" / "dev_far_miss0.5_random" / "text"
    hyps = read_kv(dec)
    lost = sorted(hyps)[0]
    del hyps[lost]
    write_kv(dec, hyps)
    # and one utterance silently removed from the dump (not in dump_report.json)
    raw = recipe / "dump" / "raw" / "dev_far" / "text"
    text = read_kv(raw)
    gone = sorted(text)[-1]
    del text[gone]
    write_kv(raw, text)

    assert account_utts.main(["--recipe", str(recipe)]) == 1
    table = capsys.readouterr().out
    assert f"LOST without a reason: {gone}" in table
    acc = account_recipe(recipe)
    assert _row(acc, "data(+roi)->dump").unexplained == [gone]
    assert lost in _row(acc, "dump->hyp").unexplained


def test_prep_counts_that_do_not_add_up_are_flagged(recipe):
    rep_path = recipe / "data" / "dev_far" / "prep_report.json"
    rep = json.loads(rep_path.read_text())
    rep["num_intervals"] += 2  # two intervals read but neither kept nor dropped
    rep_path.write_text(json.dumps(rep))
    acc = account_recipe(recipe)
    assert not acc.ok and "2 interval(s)" in _row(acc, "textgrid->data").unexplained[0]


def test_no_prepared_set_is_a_clear_error(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(ValueError, match=r"data: no prepared set"):
        account_utts.main(["--recipe", str(tmp_path)])
