"""Synthetic MISP-format corpus generator (``python -m espnet_avsr.bin.make_mini_misp``).

Modules, in the order a session is made:
  text      Mandarin home/TV sentences from templates + pinyin (pypinyin TONE3)
  speech    espeak-ng syllable synthesis with exact character timings
  visemes   viseme classes of syllables and the mouth-shape track
  faces     OpenCV-drawn talking faces with head motion; face/lip boxes
  video     far/middle camera scenes, MP4 writing, detection JSON, lip crops
  rooms     shoebox rooms, RIRs (pyroomacoustics), TV/babble noise, SNR mixing
  writers   atomic WAV / TextGrid (UTF-8 or UTF-16) / JSON writers
  layout    MISP file naming and paths
  session   one session end to end
  plan      speakers, rooms and sessions of all splits from the seed
  generate  parallel, resumable corpus generation and the summary
"""
