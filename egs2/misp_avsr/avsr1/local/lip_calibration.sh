#!/usr/bin/env bash
# One point of the lip calibration of --preset paper (issue 15; RESULTS.md, 2026-12-02): the
# paper preset's corpus with other lip-difficulty options (far camera, articulation, occlusion),
# in side folders corpus_<tag> data_<tag> dump_<tag> exp_<tag>; the lip reader V0 (30 epochs,
# conf/paper/train_vsr.yaml) and A0 trained on each seed; then the gate on dev
# (espnet_avsr.bin.lip_gate): V0 at least --margin points worse than A0, and on every seed V0
# with its lips better than V0 with every frame black. Every step skips what is done (the
# recipe's markers), so the same command resumes an interrupted point.
#
#   local/lip_calibration.sh --tag l6 -- --far_face_scale 0.9 --far_downscale 2 --far_blur 1.5 \
#       --far_noise 6 --far_jpeg_quality 30 --articulation 0.4,1.0 --head_motion 2.0 \
#       --light_flicker 0.2 --occlusion_rate 0.1
#
# Options: --tag T (required), --seeds "0 1", --margin 15, --valid_set dev_far,
# --stop_after prep|v0|a0 (stop after that step), --a0_from EXP (the A0 and A0_s<k> dev decodes
# of another point's exp_<tag> instead of training A0 again: its audio is this point's).
# V0 is decoded as soon as it is trained: a seed whose lips beat no black frames fails the point
# there, before A0 is trained. After "--": the make_mini_misp options of this point (they win
# over the calibrated corpus preset's).
# The lip options leave the audio and text byte for byte as they are (their random draws are
# separate; tests/test_corpus_calibration.py), so A0 is the same model at every point.
set -euo pipefail
self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
cd "$(dirname "${self}")/.."

tag=""; seeds="0 1"; margin=15; valid_set=dev_far; stop_after=""; a0_from=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) tag="$2"; shift 2 ;;
        --seeds) seeds="$2"; shift 2 ;;
        --margin) margin="$2"; shift 2 ;;
        --valid_set) valid_set="$2"; shift 2 ;;
        --stop_after) stop_after="$2"; shift 2 ;;
        --a0_from) a0_from="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,21p' "${self}"; exit 0 ;;
        *) echo "$0: unknown option '$1' (--help)" >&2; exit 2 ;;
    esac
done
[[ "${tag}" =~ ^[A-Za-z0-9]+$ ]] || { echo "$0: --tag takes letters and digits (the side folders' suffix), got '${tag}'" >&2; exit 2; }
case "${stop_after}" in ""|prep|v0|a0) ;; *) echo "$0: --stop_after takes prep, v0 or a0, got '${stop_after}'" >&2; exit 2 ;; esac
lips="$*"
exp="exp_${tag}"
if [ -n "${a0_from}" ]; then
    [ -d "${a0_from}/A0" ] || { echo "$0: --a0_from ${a0_from}: no ${a0_from}/A0 (give another point's exp_<tag>)" >&2; exit 2; }
    [ "${a0_from%/}" != "${exp}" ] || { echo "$0: --a0_from is this point's own ${exp}" >&2; exit 2; }
fi
# A point is one set of lip options: the same tag with other options would mix two corpora.
if [ -f "${exp}/lip_options" ] && [ "$(cat "${exp}/lip_options")" != "${lips}" ]; then
    echo "$0: ${exp} was made with lip options '$(cat "${exp}/lip_options")', not '${lips}': use another --tag" >&2
    exit 1
fi
mkdir -p "${exp}"
echo "${lips}" > "${exp}/lip_options"

common=(--preset paper --corpus_dir "corpus_${tag}" --data_dir "data_${tag}" --dumpdir "dump_${tag}"
        --expdir "${exp}" --corpus_args "${lips}" --seeds "${seeds}" --dropout_study_rates ""
        --models "A0:conf/train_asr.yaml:- V0:conf/paper/train_vsr.yaml:-")
banner() { echo "=== lip calibration ${tag}: $* === ($(date '+%F %T'))"; }

banner "corpus, data, lip ROIs, dumps, stats"
./run.sh "${common[@]}" --stop_stage 7
[ "${stop_after}" = prep ] && exit 0
decode() {   # decode <models>: the dev decodes the gate reads (V0 with its lips and with black frames)
    ./run.sh "${common[@]}" --models "$1" --stage 10 --stop_stage 10 --test_sets "${valid_set}" \
        --noise_test_sets none --vsr_missing_rates "0 1.0" --test_missing_fill black
}
# gate <with A0: true|false>: the decode folders stage 10 names from the decode config, the fill
# and the averaged checkpoint, handed to lip_gate; its table goes to exp_<tag>/lip_gate[_v0].md
gate() {
    local s sfx f audio=() lipsd=() black=() labels=() opts=() out="${exp}/lip_gate"
    for s in ${seeds}; do
        sfx=""; [ "${s}" = 0 ] || sfx="_s${s}"
        audio+=("${a0_from:-${exp}}/A0${sfx}/decode_asr_valid.acc.ave/${valid_set}/text")
        lipsd+=("${exp}/V0${sfx}/decode_avsr_fillblack_valid.acc.ave/${valid_set}_miss0_random/text")
        black+=("${exp}/V0${sfx}/decode_avsr_fillblack_valid.acc.ave/${valid_set}_miss1.0_random/text")
        labels+=("${s}")
    done
    if [ "$1" = true ]; then opts=(--audio "${audio[@]}"); else audio=(); out+=_v0; fi
    for f in "${audio[@]}" "${lipsd[@]}" "${black[@]}"; do
        [ -f "${f}" ] || { echo "$0: no decode ${f} (did training end with valid.acc.ave.pth?)" >&2; exit 1; }
    done
    python -m espnet_avsr.bin.lip_gate --ref "dump_${tag}/raw/${valid_set}/text" --seeds "${labels[@]}" \
        "${opts[@]}" --lips "${lipsd[@]}" --black "${black[@]}" --margin "${margin}" \
        --out "${out}.json" | tee "${out}.md"
}
. ./path.sh

banner "lip reader V0, seeds ${seeds} (the unknown first)"
./run.sh "${common[@]}" --stage 9 --stop_stage 9
banner "decode ${valid_set}: V0 with its lips and with every frame black; rule (2) of the gate"
decode "V0:conf/paper/train_vsr.yaml:-"
gate false
if ! python -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["rule2_lips_informative_every_seed"] is not True)' \
        "${exp}/lip_gate_v0.json"; then
    banner "the lips carry nothing on some seed: the point fails without A0 (${exp}/lip_gate_v0.md)"
    exit 0
fi
[ "${stop_after}" = v0 ] && exit 0
if [ -z "${a0_from}" ]; then
    banner "audio-only A0, seeds ${seeds}"
    ./run.sh "${common[@]}" --stage 8 --stop_stage 8
    [ "${stop_after}" = a0 ] && exit 0
    banner "decode ${valid_set}: A0; the gate"
    decode "A0:conf/train_asr.yaml:- V0:conf/paper/train_vsr.yaml:-"
else
    banner "the gate, with the A0 decodes of ${a0_from}"
fi
gate true
