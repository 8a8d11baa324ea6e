#!/usr/bin/env bash
# Issue 20's decision study (docs/DESIGN.md section 7): each option where the paper's figure and
# our first reading differ, trained both ways with everything else equal, two seeds, and compared
# on dev_far with a paired bootstrap over sessions (the five missing-video rates and the seeds
# pooled). Demo scale, so that it fits the 2-core machine: the demo corpus (closed 30-sentence
# pool, far SNR 0-10 dB) at 0.3 h with a 0.3 dev share (7 dev sessions; the demo's dev has 2).
#
#   local/fidelity_study.sh [--seeds "0 1"] [--stage data|train|compare]
#
# Seeds train side by side, one CPU thread each, seed k in exp_fid_s<k>/ (avsr.sh holds one lock
# per expdir). Every step is avsr.sh's, so a re-run skips what is done. The table lands in
# exp_fid/decisions.md (and one JSON per comparison beside it).
#
# Comparisons (A = today's default, B = the figure's reading; B - A < 0: the figure is better):
#   merge         AV0 (merge: last)        vs AV0fig (merge: figure)               A0+V0 init
#   fill          AV2z (fill: zeros)       vs AV2b (fill: black, decoded black)    A0+V0 init, video dropout
#   teacher_audio AV5c (clean)             vs AV5s (student's SpecAugment draw)    init and teacher AV0
#   kd_layers     AV5fig (kd on the merge) vs AV5figmi (kd on the merge's inputs)  init and teacher AV0fig
#   targets       AV6fig (q, k, v, out)    vs AV6figq (q, k, v)                    adapters on AV5fig
#   (targets_last AV6a vs AV6q, the same on AV5c: the first reading's merge and its low-rank bridge)
set -euo pipefail
cd "$(dirname "$0")/.."

seeds="0 1"
stage=data
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) seeds="$2"; shift 2 ;;
        --stage) stage="$2"; shift 2 ;;
        *) echo "$0: unknown option $1 (--seeds, --stage data|train|compare)" >&2; exit 1 ;;
    esac
done
case "${stage}" in data|train|compare) ;; *) echo "$0: --stage data|train|compare, got ${stage}" >&2; exit 1 ;; esac

# the demo's corpus preset (closed30) with a larger dev share
common=(--preset demo --hours 0.3 --test_snrs none -- --corpus_args "--split_shares 0.5,0.3,0.2" --test_sets dev_far)

# part 1 answers merge and fill, part 2 (trained after part 1 is decoded) the KD and adapter options
part1="A0:conf/train_asr.yaml:-
V0:conf/train_vsr.yaml:-
AV0:conf/train_avsr_v0.yaml:A0+V0
AV0fig:conf/fidelity/merge_figure.yaml:A0+V0
AV2z:conf/fidelity/drop_zeros.yaml:A0+V0
AV2b:conf/fidelity/drop_black.yaml:A0+V0"
part2="${part1}
AV5c:conf/fidelity/kd_clean.yaml:AV0:AV0
AV5s:conf/fidelity/kd_student.yaml:AV0:AV0
AV6a:conf/train_adapter.yaml:AV5c
AV6q:conf/fidelity/adapter_qkv.yaml:AV5c
AV5fig:conf/fidelity/kd_fig_fusion.yaml:AV0fig:AV0fig
AV5figmi:conf/fidelity/kd_fig_merge_in.yaml:AV0fig:AV0fig
AV6fig:conf/fidelity/adapter_fig.yaml:AV5fig
AV6figq:conf/fidelity/adapter_fig_qkv.yaml:AV5fig"

if [ "${stage}" = data ]; then
    echo "=== fidelity study: corpus and data (stages 0-6) ==="
    ./run.sh --stage 0 --stop_stage 6 "${common[@]}"
    stage=train
fi

one_seed() {   # one_seed <seed>: train and decode both parts for this seed (stages 7-10)
    local args=("${common[@]}" --expdir "exp_fid_s$1" --seeds "$1" --train_threads 1 --nj 1)
    ./run.sh --stage 7 --stop_stage 10 --models "${part1}" "${args[@]}"
    # AV2b was trained with black frames: decode it with black frames too (a _fillblack directory;
    # its init models are listed because the list must hold them, A0's decode is not redone)
    ./run.sh --stage 10 --stop_stage 10 --models "$(grep -E '^(A0|V0|AV2b):' <<< "${part1}")" \
        "${args[@]}" --test_missing_fill black
    ./run.sh --stage 7 --stop_stage 10 --models "${part2}" "${args[@]}"
}

if [ "${stage}" = train ]; then
    echo "=== fidelity study: training seeds ${seeds} side by side (logs exp_fid/seed<k>.log) ==="
    mkdir -p exp_fid
    pids=()
    for s in ${seeds}; do
        one_seed "${s}" > "exp_fid/seed${s}.log" 2>&1 &
        pids+=($!)
    done
    failed=0
    for p in "${pids[@]}"; do wait "${p}" || failed=1; done
    [ "${failed}" = 0 ] || { echo "$0: a seed failed, see exp_fid/seed*.log" >&2; exit 1; }
    stage=compare
fi

# --- compare: pooled paired bootstrap over sessions, B - A, the five rates and the seeds ---------
# shellcheck disable=SC1091
. ./path.sh   # the venv and the plugin on PYTHONPATH
py=python
echo "=== fidelity study: dev_far comparisons -> exp_fid/decisions.md ==="
rates="0 0.25 0.5 0.75 1.0"   # pooled; the adapter rows use 1.0 alone (below it adapters are off: A = B)
hyps() {   # hyps <model> <fill tag or ""> <seeds>: the model's dev_far decodes, every rate, those seeds
    local s r d
    for s in $3; do
        for r in ${rates}; do
            d=$(ls -d exp_fid_s"${s}"/"$1"/decode_avsr"$2"_valid.*/dev_far_miss"${r}"_random 2>/dev/null | head -n 1)
            [ -n "${d}" ] && [ -s "${d}/text" ] || { echo "$0: no dev_far decode of $1 (seed ${s}, rate ${r}${2:+, $2})" >&2; return 1; }
            echo "${d}/text"
        done
    done
}
bootstrap() {   # bootstrap <label> <model A> <fill A> <model B> <fill B> <seeds> <tag>: exp_fid/<label>.<tag>.json
    local a b
    a=$(hyps "$2" "$3" "$6") && b=$(hyps "$4" "$5" "$6") || return 1
    # shellcheck disable=SC2086
    "${py}" -m espnet_avsr.bin.compare_cer --ref data/dev_far/text --hyp_a ${a} --hyp_b ${b} \
        --name_a "$2" --name_b "$4" --out "exp_fid/$1.$7.json" > "exp_fid/$1.$7.log"
}
compare() {   # compare <label> <model A> <fill A> <model B> <fill B>: a table row, pooled and per seed
    local s
    bootstrap "$@" "${seeds}" pooled || { echo "| $1 | not decoded yet |"; return 0; }
    for s in ${seeds}; do bootstrap "$@" "${s}" "seed${s}"; done
    "${py}" - "$1" ${seeds} <<'EOF'
import json, sys
label, seeds = sys.argv[1], sys.argv[2:]
r = json.load(open(f"exp_fid/{label}.pooled.json"))
per = " / ".join(f"{100 * json.load(open(f'exp_fid/{label}.seed{s}.json'))['delta']:+.2f}" for s in seeds)
print(f"| {label} | {r['name_a']} {100 * r['cer_a']:.2f} | {r['name_b']} {100 * r['cer_b']:.2f} "
      f"| {100 * r['delta']:+.2f} [{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}] | {per} | {r['num_sessions']} |")
EOF
}
{
    echo "CER (%) on dev_far, pooled over the missing-video rates ${rates} and the seeds ${seeds} (the adapter"
    echo "rows: 100 % missing alone, where the adapters act; targets_last: on the first reading's merge);"
    echo "B - A < 0: the figure's reading is better. Interval: paired bootstrap over sessions (compare_cer)."
    echo
    echo "| option | A (today) | B (figure) | B - A, 95 % interval | B - A per seed | dev sessions |"
    echo "|---|---|---|---|---|---|"
    compare merge AV0 "" AV0fig ""
    compare fill AV2z "" AV2b "_fillblack"
    compare teacher_audio AV5c "" AV5s ""
    compare kd_layers AV5fig "" AV5figmi ""
    rates=1.0
    compare targets AV6fig "" AV6figq ""
    compare targets_last AV6a "" AV6q ""
} | tee exp_fid/decisions.md
