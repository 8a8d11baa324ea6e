"""Evaluation: reads decode outputs and writes tables and plots; never trains, decodes or
prepares data (noise mixing is in ``dataprep/noise.py``, representation extraction in
``analysis/``, the scoring alphabet in ``common/textnorm.py``).

cer              edit-distance alignment, corpus CER, cpCER for multi-speaker sessions
io               Kaldi text readers, --meta parsing, result.json / result.txt / utt_cer.txt
bias             modality-bias math: relative CER, cosine matrices, linear CKA
similarity       ASR vs AVSR pooled representations -> cosine matrices, CKA, figures
plots            matplotlib (Agg) figures
report           RESULTS.md tables in the paper's layout and the figures
"""
