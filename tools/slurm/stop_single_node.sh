#!/usr/bin/env bash
# Stop the daemons started by setup_single_node.sh (slurmd, slurmctld, munged) by pid file.
set -u
sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
stop_pid() {  # stop_pid <pidfile> <name>
    local f="$1" pid
    [ -s "$f" ] || return 0
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
        ${sudo_} kill "$pid"
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && ${sudo_} kill -9 "$pid"
        echo "[slurm-stop] stopped $2 (pid $pid)" >&2
    fi
    ${sudo_} rm -f "$f"
}
stop_pid /run/slurm/slurmd.pid slurmd
stop_pid /run/slurm/slurmctld.pid slurmctld
stop_pid /run/munge/munged.pid munged
exit 0
