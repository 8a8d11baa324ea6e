"""Scoring through NIST sclite (Debian ``sctk``), the scorer of ESPnet's ``asr.sh``.

ESPnet writes ``score_cer/{ref,hyp}.trn`` (characters separated by spaces, then
``(<spk>-<utt>)``) and ``result.txt`` = ``sclite -r ref.trn trn -h hyp.trn trn -i rm -o all
stdout``; its ``scripts/utils/show_asr_result.sh`` greps the ``Sum/Avg`` line of that file.
We write the same files, so ESPnet's summaries work on our decode directories.

sclite aligns with weights sub 4, ins 3, del 3 (not unit costs), so on rare pathological
pairs its error count can exceed the Levenshtein minimum of ``eval.cer``; on ordinary
decodes both agree (tests/test_espnet_sclite.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

from espnet_avsr.eval.cer import CorpusScore, ErrorCounts

PathLike = Union[str, os.PathLike]

# Where Debian's sctk puts the binary (/usr/bin/sctk is only a dispatcher script).
DEBIAN_SCLITE = "/usr/lib/sctk/bin/sclite"

_SUM_RE = re.compile(r"^\s*\|\s*Sum\s*\|\s*(\d+)\s+(\d+)\s*\|\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\|")


class ScliteError(RuntimeError):
    """sclite failed or wrote a report we cannot read (the message names the file)."""


@dataclass
class ScliteResult:
    counts: ErrorCounts  # sub/ins/del over all scored utterances, as sclite aligned them
    sentence_errors: int
    report: str  # the full ``-o all stdout`` text (result.txt)


def find_sclite() -> Optional[str]:
    """``$SCLITE``, then ``sclite`` on PATH, then Debian's location; None when absent."""
    for cand in (os.environ.get("SCLITE"), shutil.which("sclite"), DEBIAN_SCLITE):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def _trn_id(utt: str, spk: str) -> str:
    # sclite's "rm" ids are (<speaker>-<rest>): the speaker part must not hold a '-'
    return f"({spk.replace('-', '_')}-{utt})"


def write_trn(path: PathLike, chars: Mapping[str, List[str]], utt2spk: Mapping[str, str]) -> None:
    """One line per utterance: the characters separated by spaces, then ``(spk-utt)``."""
    with open(path, "w", encoding="utf-8") as f:
        for utt in sorted(chars):
            tokens = " ".join(chars[utt])
            f.write(f"{tokens} {_trn_id(utt, utt2spk.get(utt, utt))}\n" if tokens else f"{_trn_id(utt, utt2spk.get(utt, utt))}\n")


def parse_sum(report: str, source: str = "result.txt") -> ScliteResult:
    """Counts from the ``| Sum |`` row of sclite's absolute-count (rsum) table."""
    for line in report.splitlines():
        m = _SUM_RE.match(line)
        if m:
            snt, ref, _corr, sub, dele, ins, _err, serr = (int(g) for g in m.groups())
            counts = ErrorCounts(ref_chars=ref, sub=sub, ins=ins, dele=dele, num_utts=snt)
            return ScliteResult(counts=counts, sentence_errors=serr, report=report)
    raise ScliteError(f"{source}: no '| Sum |' count row in the sclite report (need -o all or rsum)")


def score_with_sclite(
    score: CorpusScore,
    out_dir: PathLike,
    utt2spk: Optional[Mapping[str, str]] = None,
    sclite: Optional[str] = None,
) -> ScliteResult:
    """Write ``ref.trn``/``hyp.trn`` for the scored utterances of ``score`` and run sclite.

    The utterances are those of ``score`` (normalised characters): a missing hypothesis is an
    empty line (all deletions), hypotheses without a reference are left out, as in eval.cer.
    """
    sclite = sclite or find_sclite()
    if sclite is None:
        raise ScliteError("sclite not found (install Debian 'sctk' or set $SCLITE)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spk: Dict[str, str] = dict(utt2spk or {})
    write_trn(out / "ref.trn", {u.utt_id: list(u.ref) for u in score.utts}, spk)
    write_trn(out / "hyp.trn", {u.utt_id: list(u.hyp or "") for u in score.utts}, spk)
    cmd = [sclite, "-r", str(out / "ref.trn"), "trn", "-h", str(out / "hyp.trn"), "trn", "-i", "rm", "-o", "all", "stdout"]
    proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        raise ScliteError(f"{sclite} failed on {out / 'hyp.trn'} (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return parse_sum(proc.stdout, source=f"sclite report for {out / 'hyp.trn'}")


def sum_avg_block(counts: ErrorCounts, sentence_errors: int, system: str) -> List[str]:
    """An sclite-shaped percentage table with its ``Sum/Avg`` row (the fallback's result.txt
    head, so ``show_asr_result.sh`` reads builtin scores too)."""
    n = max(counts.ref_chars, 1)
    pct = [100.0 * x / n for x in (counts.correct, counts.sub, counts.dele, counts.ins, counts.errors)]
    serr = 100.0 * sentence_errors / max(counts.num_utts, 1)
    bar = "       |" + "-" * 64 + "|"
    return [
        "                     SYSTEM SUMMARY PERCENTAGES by SPEAKER (builtin scorer, sclite absent)",
        f"       | {system[:62]:^62} |",
        bar,
        "       | SPKR   | # Snt # Wrd | Corr    Sub    Del    Ins    Err  S.Err |",
        bar,
        f"       | Sum/Avg|{counts.num_utts:>5}  {counts.ref_chars:>5} |"
        + "".join(f"{p:>6.1f} " for p in pct)
        + f"{serr:>6.1f} |",
        bar,
    ]


__all__ = ["DEBIAN_SCLITE", "ScliteError", "ScliteResult", "find_sclite", "write_trn", "parse_sum",
           "score_with_sclite", "sum_avg_block"]
