"""The floor every other folder stands on: contracts that have exactly one home.

Timing and sizes (:mod:`.timing`), the MISP naming grammar (:mod:`.naming`), file I/O
(:mod:`.fileio`, :mod:`.kaldi_dir`), errors (:mod:`.errors`), the CLI runner (:mod:`.cli`),
text normalisation (:mod:`.textnorm`), SNR arithmetic (:mod:`.levels`), per-utterance
random generators (:mod:`.seeding`), checkpoint loading (:mod:`.checkpoint`) and the
experiment metadata (:mod:`.experiment`). Nothing here imports another ``espnet_avsr``
folder (``tests/test_layering.py`` enforces it), so any folder may import from here.
"""
