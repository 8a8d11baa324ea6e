# Job launchers. cmd_backend=local runs tasks on this machine, slurm submits array jobs.
# Choose with `./run.sh --cmd_backend slurm` or `export cmd_backend=slurm`.
# Options every launcher accepts: --gpu K --mem SIZE --time HH:MM:SS --partition P
# --max_jobs_run N --num_threads N (local ignores what it cannot use).
cmd_backend="${cmd_backend:-local}"
case "${cmd_backend}" in
    local)
        train_cmd="utils/run_local.sh"
        decode_cmd="utils/run_local.sh"
        cuda_cmd="utils/run_local.sh"
        ;;
    slurm)
        slurm_partition="${slurm_partition:-}"
        _p=""; [ -n "${slurm_partition}" ] && _p="--partition ${slurm_partition}"
        train_cmd="utils/run_slurm.sh --mem 8G --time 24:00:00 ${_p}"
        decode_cmd="utils/run_slurm.sh --mem 8G --time 4:00:00 ${_p}"
        cuda_cmd="utils/run_slurm.sh --mem 32G --time 72:00:00 ${_p}"
        unset _p
        ;;
    *)
        echo "cmd.sh: unknown cmd_backend '${cmd_backend}' (local|slurm)" >&2
        return 1 2>/dev/null || exit 1
        ;;
esac
