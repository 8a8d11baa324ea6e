# Where the MISP corpus lives. Empty = generate the synthetic MISP-format corpus (stage 0).
# Point it at a real MISP2021/MISP2022 release (audio/ video/ transcription/ detection/).
MISP_ROOT="${MISP_ROOT:-}"
