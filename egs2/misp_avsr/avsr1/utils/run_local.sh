#!/usr/bin/env bash
# Run N tasks of a command on this machine in parallel (our own launcher).
#
#   utils/run_local.sh [--max_jobs_run N] JOB=1:N log/name.JOB.log command args-with-JOB
#
# Each task's log starts with the command and start time and ends with the exit code.
# Exits 1, naming the failed logs, when any task fails. --gpu/--mem/--time/--partition
# are accepted and ignored so the same $cmd strings work with run_slurm.sh.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/launcher_common.sh"
launcher_parse "$@" || exit 1

status_dir="$(mktemp -d "${TMPDIR:-/tmp}/run_local.XXXXXX")"
trap 'rm -rf "${status_dir}"' EXIT
# Ctrl-C / kill of the launcher ends the tasks it started.
trap 'kill $(jobs -p) 2>/dev/null; exit 130' INT TERM

for ((j = job_first; j <= job_last; j++)); do
    if [ "${max_jobs_run}" -gt 0 ]; then
        while [ "$(jobs -rp | wc -l)" -ge "${max_jobs_run}" ]; do wait -n; done
    fi
    ( run_one_task "${j}"; echo $? > "${status_dir}/${j}" ) &
done
wait

failed=()
for ((j = job_first; j <= job_last; j++)); do
    rc="$(cat "${status_dir}/${j}" 2>/dev/null || echo missing)"
    [ "${rc}" = 0 ] || failed+=("${log_pattern//JOB/$j} (exit ${rc})")
done
if [ "${#failed[@]}" -gt 0 ]; then
    n=$((job_last - job_first + 1))
    echo "$(basename "$0"): ${#failed[@]} of ${n} task(s) failed:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
exit 0
