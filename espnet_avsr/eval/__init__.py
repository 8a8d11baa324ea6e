"""Evaluation: reads decode outputs, never trains or decodes.

textnorm         the scoring alphabet (NFKC, tags, punctuation)
cer              edit-distance alignment, corpus CER, cpCER for multi-speaker sessions
io               Kaldi text readers, --meta parsing, result.json / result.txt / utt_cer.txt
noise            zero-shot babble / file noise at a set SNR into a dump dir
bias             modality-bias math: relative CER, cosine matrices, linear CKA
representations  ASR vs AVSR encoder layers, mean-pooled, for rep_similarity
plots            matplotlib (Agg) figures
report           RESULTS.md tables in the paper's layout and the figures
"""
