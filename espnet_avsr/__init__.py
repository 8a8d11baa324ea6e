"""misp_avsr: an ESPnet plugin for robust audio-visual speech recognition on MISP.

Subpackages (dependencies flow one way: bin -> tasks -> models, data):
  corpus    synthetic MISP-format corpus generator
  dataprep  TextGrid -> Kaldi data dirs, far-field front-end, lip ROIs, validators
  data      ESPnet preprocessors for video, missing-video simulation
  models    visual front-end, AV-Conformer, decoders, KD wrapper, MS-Adapters
  tasks     AVSRTask, the ESPnet AbsTask that ties them together
  eval      CER scoring, noise mixing, modality-bias metrics, reports
  bin       thin CLIs: python -m espnet_avsr.bin.<name>
"""

__version__ = "0.1.0"
