"""The floor every other folder stands on: contracts that have exactly one home.

Timing and sizes (:mod:`.timing`), the MISP naming grammar (:mod:`.naming`), file I/O
(:mod:`.fileio`, :mod:`.kaldi_dir`), errors (:mod:`.errors`), the CLI runner
(:mod:`.cli`), text normalisation (:mod:`.textnorm`) and the missing-video contract
(:mod:`.video_presence`). Nothing here imports another ``espnet_avsr`` folder
(``tests/test_layering.py`` enforces it), so any folder may import from here.
"""
