#!/usr/bin/env bash
# Run N tasks of a command as one Slurm array job and wait for it (our own launcher).
#
#   utils/run_slurm.sh [--gpu K] [--mem 8G] [--time 24:00:00] [--partition P]
#                      [--num_threads N] [--max_jobs_run M] [--extra "..."]
#                      JOB=1:N log/name.JOB.log command args-with-JOB
#
# Submits `sbatch --wait --array=1-N[%M] --export=ALL ...` with a generated task
# script under <logdir>/q/; each task writes log/name.<i>.log like run_local.sh.
# Exits 1, naming the failed logs, when any task fails or never ran.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/launcher_common.sh"
launcher_parse "$@" || exit 1

log_dir="$(dirname "${log_pattern}")"
name="$(basename "${log_pattern}")"; name="${name//.JOB/}"; name="${name//JOB/}"; name="${name%.log}"
qdir="${log_dir}/q"
mkdir -p "${qdir}"
qdir="$(cd "${qdir}" && pwd)"
script="${qdir}/${name}.sh"
status_dir="${qdir}/${name}.status"
rm -rf "${status_dir}"; mkdir -p "${status_dir}"

# The task script re-uses run_one_task so logs look the same on every backend.
{
    echo '#!/usr/bin/env bash'
    echo "cd $(printf '%q' "$(pwd)")"
    echo ". $(printf '%q' "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/launcher_common.sh")"
    echo "log_pattern=$(printf '%q' "${log_pattern}")"
    echo "command_line=$(printf '%q' "${command_line}")"
    echo "num_threads=${num_threads}"
    echo "task=\${SLURM_ARRAY_TASK_ID:-${job_first}}"
    echo 'run_one_task "${task}"; rc=$?'
    echo "echo \"\${rc}\" > $(printf '%q' "${status_dir}")/\${task}"
    echo 'exit "${rc}"'
} > "${script}"
chmod +x "${script}"

opts=(--wait --export=ALL "--job-name=${name}" "--output=${qdir}/${name}.%a.out")
if ${job_array}; then
    arr="${job_first}-${job_last}"
    [ "${max_jobs_run}" -gt 0 ] && arr="${arr}%${max_jobs_run}"
    opts+=("--array=${arr}")
else
    opts+=("--array=${job_first}-${job_first}")
fi
[ "${gpu}" -gt 0 ] && opts+=("--gres=gpu:${gpu}")
[ -n "${mem}" ] && opts+=("--mem=${mem}")
[ -n "${time_limit}" ] && opts+=("--time=${time_limit}")
[ -n "${partition}" ] && opts+=("--partition=${partition}")
[ "${num_threads}" -gt 1 ] && opts+=("--cpus-per-task=${num_threads}")
# shellcheck disable=SC2206
[ -n "${extra}" ] && opts+=(${extra})

echo "sbatch ${opts[*]} ${script}" > "${qdir}/${name}.submit"
sbatch "${opts[@]}" "${script}" >> "${qdir}/${name}.submit" 2>&1
sbatch_rc=$?

failed=()
for ((j = job_first; j <= job_last; j++)); do
    rc="$(cat "${status_dir}/${j}" 2>/dev/null || echo missing)"
    [ "${rc}" = 0 ] || failed+=("${log_pattern//JOB/$j} (exit ${rc})")
done
if [ "${#failed[@]}" -gt 0 ] || [ "${sbatch_rc}" -ne 0 ]; then
    echo "$(basename "$0"): sbatch exit ${sbatch_rc}; ${#failed[@]} task(s) failed (see ${qdir}/${name}.submit):" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
exit 0
