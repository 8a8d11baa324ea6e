"""misp_avsr: an ESPnet plugin for robust audio-visual speech recognition on MISP.

Subpackages (layering in docs/DESIGN.md §0, enforced by tests/test_layering.py):
  common    shared contracts: timing, MISP naming, file I/O, errors, CLI runner, metadata
  corpus    synthetic MISP-format corpus generator
  dataprep  TextGrid -> Kaldi data dirs, far-field front-end, lip ROIs, dumps, test noise
  data      ESPnet preprocessors for video, missing-video simulation
  models    visual front-end, AV-Conformer, KD wrapper, MS-Adapters
  tasks     AVSRTask, the ESPnet AbsTask that ties them together
  analysis  runs trained models for analyses (representation similarity)
  eval      CER scoring, modality-bias metrics, reports (reads decode outputs only)
  bin       thin CLIs: python -m espnet_avsr.bin.<name>
"""

__version__ = "0.1.0"
