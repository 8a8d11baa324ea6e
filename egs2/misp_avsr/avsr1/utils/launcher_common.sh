#!/usr/bin/env bash
# Shared parsing for our job launchers (run_local.sh, run_slurm.sh).
#
# Calling convention (Kaldi's):  <launcher> [opts] [JOB=a:b] <log> <command...>
# "JOB" in the log name and in the command is replaced by the task index.
# One command argument = a shell command line (pipes/redirects allowed);
# several arguments = an argv, each argument quoted as given.
# Options accepted by every launcher (a backend ignores what it cannot use):
#   --max_jobs_run N  --gpu K  --mem SIZE  --time HH:MM:SS  --partition P
#   --num_threads N   --extra "sbatch options"

launcher_parse() {
    max_jobs_run=0; gpu=0; mem=""; time_limit=""; partition=""; num_threads=1; extra=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --max_jobs_run|--max-jobs-run) max_jobs_run="$2"; shift 2 ;;
            --gpu) gpu="$2"; shift 2 ;;
            --mem) mem="$2"; shift 2 ;;
            --time) time_limit="$2"; shift 2 ;;
            --partition) partition="$2"; shift 2 ;;
            --num_threads|--num-threads) num_threads="$2"; shift 2 ;;
            --extra) extra="$2"; shift 2 ;;
            --config) shift 2 ;;  # accepted for Kaldi compatibility, unused
            --*) echo "$(basename "$0"): unknown option $1" >&2; return 1 ;;
            *) break ;;
        esac
    done
    job_first=1; job_last=1; job_array=false
    if [[ "${1:-}" =~ ^JOB=([0-9]+):([0-9]+)$ ]]; then
        job_first="${BASH_REMATCH[1]}"; job_last="${BASH_REMATCH[2]}"; job_array=true; shift
        if [ "${job_last}" -lt "${job_first}" ]; then
            echo "$(basename "$0"): empty job range JOB=${job_first}:${job_last}" >&2; return 1
        fi
    elif [[ "${1:-}" =~ ^[A-Za-z_]+=[0-9]+:[0-9]+$ ]]; then
        echo "$(basename "$0"): only the variable name JOB is supported, got $1" >&2; return 1
    fi
    if [ $# -lt 2 ]; then
        echo "usage: $(basename "$0") [opts] [JOB=a:b] <log> <command...>" >&2; return 1
    fi
    log_pattern="$1"; shift
    if $job_array && [[ "${log_pattern}" != *JOB* ]]; then
        echo "$(basename "$0"): log name '${log_pattern}' must contain JOB for an array job" >&2
        return 1
    fi
    if [ $# -eq 1 ]; then
        command_line="$1"
    else
        command_line="$(printf '%q ' "$@")"; command_line="${command_line% }"
    fi
    for v in max_jobs_run gpu num_threads; do
        if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then
            echo "$(basename "$0"): --${v} needs a non-negative integer, got '${!v}'" >&2; return 1
        fi
    done
}

# run_one_task <index>: run the command for one task with its log; return its exit code.
run_one_task() {
    local j="$1" log cmd rc t0 t1
    log="${log_pattern//JOB/$j}"
    cmd="${command_line//JOB/$j}"
    mkdir -p "$(dirname "${log}")"
    t0=$(date +%s)
    {
        echo "# ${cmd}"
        echo "# Started at $(date) on $(hostname) (task ${j})"
    } > "${log}"
    set +e
    # --num_threads N: the task may use N cores (path.sh pins 1 thread per job by default)
    (
        [ "${num_threads}" -gt 1 ] && export OMP_NUM_THREADS="${num_threads}" MKL_NUM_THREADS="${num_threads}"
        bash -c "${cmd}"
    ) >> "${log}" 2>&1 < /dev/null
    rc=$?
    t1=$(date +%s)
    {
        echo "# Accounting: time=$((t1 - t0)) threads=${num_threads}"
        echo "# Ended (code ${rc}) at $(date), elapsed time $((t1 - t0)) seconds"
    } >> "${log}"
    return "${rc}"
}
