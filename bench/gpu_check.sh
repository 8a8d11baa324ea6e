#!/usr/bin/env bash
# One call on a GPU machine: counted FLOPs, step time, FLOP/s and MFU (vs the device's dense
# bf16 peak) of AV, ASR, lip reader and MDA-KD at the paper-size configs (conf/tuning/*_gpu.yaml),
# bf16 autocast, 16 x 8 s per step; then the same AV/ASR pair in fp32 for the AMP gain.
# Results: JSON lines in ${OUT:-bench_out}/gpu_check.jsonl, the device in gpu.txt.
#
#   bench/gpu_check.sh [--batch_size 16] [--seconds 8]        (extra args go to bench_step.py)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench_out}"
mkdir -p "${out}"
py="${PYTHON:-tools/venv/bin/python}"
export PYTHONPATH="${PWD}${PYTHONPATH:+:${PYTHONPATH}}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv > "${out}/gpu.txt" 2>&1 || true
common=(--device cuda --gpu_configs --batch_size 16 --seconds 8 --steps 10 --warmup 3 --json)
# busy fraction over the bf16 run, sampled by nvidia-smi once a second
(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -l 1 > "${out}/util_bf16.txt" 2>/dev/null) &
smi=$!
"${py}" bench/bench_step.py "${common[@]}" --amp bf16 "$@" | tail -n 1 | tee "${out}/gpu_check.jsonl"
kill "${smi}" 2>/dev/null || true
"${py}" bench/bench_step.py "${common[@]}" --amp none --models av asr "$@" | tail -n 1 | tee -a "${out}/gpu_check.jsonl"
awk '{ s += $1; n++ } END { if (n) printf "mean GPU utilisation during the bf16 run: %.1f %% (%d samples)\n", s / n, n }' \
    "${out}/util_bf16.txt" | tee "${out}/util_summary.txt"
