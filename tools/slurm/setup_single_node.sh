#!/usr/bin/env bash
# Install (Debian slurm-wlm + munge) and start a one-node Slurm cluster on this host.
#
#   tools/slurm/setup_single_node.sh [--conf_dir /etc/slurm] [--timeout 120]
#
# Idempotent: packages are installed only when missing, the config is rewritten
# from this host's nproc/memory, daemons already running are left alone. Ends
# when `sinfo` shows the node idle; exits non-zero with the daemon logs otherwise.
# Stop everything with tools/slurm/stop_single_node.sh.
set -euo pipefail
conf_dir=/etc/slurm
timeout=120
while [ $# -gt 0 ]; do
    case "$1" in
        --conf_dir) conf_dir="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "$0: unknown option $1" >&2; exit 2 ;;
    esac
done
log() { echo "[slurm-setup] $*" >&2; }
sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"

# 1. packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    ${sudo_} apt-get update -qq
    ${sudo_} apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# 2. munge key + daemon
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    ${sudo_} mkdir -p /etc/munge
    ${sudo_} dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
${sudo_} mkdir -p /run/munge /var/log/munge /var/lib/munge
${sudo_} chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
${sudo_} chmod 0700 /etc/munge /var/log/munge /var/lib/munge
${sudo_} chmod 0755 /run/munge
${sudo_} chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    ${sudo_} -u munge /usr/sbin/munged 2>/dev/null || ${sudo_} runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null || { log "munged does not answer"; exit 1; }
fi

# 3. slurm.conf for this host
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"
state=/var/lib/slurm
${sudo_} mkdir -p "${conf_dir}" "${state}/ctld" "${state}/d" /var/log/slurm /run/slurm
proctrack=proctrack/linuxproc
${sudo_} tee "${conf_dir}/slurm.conf" >/dev/null <<CONF
# Written by tools/slurm/setup_single_node.sh: one node, no cgroups, no accounting.
ClusterName=single
SlurmctldHost=${host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=${state}/ctld
SlurmdSpoolDir=${state}/d
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=${proctrack}
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=5
Waittime=0
MpiDefault=none
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
# No cgroup.conf: with proctrack/linuxproc and task/none slurmd only autodetects cgroups
# (Slurm 22.05 has no "CgroupPlugin=disabled"; writing it makes slurmd refuse to start).
if grep -qs "CgroupPlugin=disabled" "${conf_dir}/cgroup.conf"; then ${sudo_} rm -f "${conf_dir}/cgroup.conf"; fi
log "wrote ${conf_dir}/slurm.conf (node ${host}, ${cpus} CPUs, ${mem_mb} MB)"

# 4. daemons
export SLURM_CONF="${conf_dir}/slurm.conf"
if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
    log "starting slurmctld"
    ${sudo_} /usr/sbin/slurmctld -f "${SLURM_CONF}"
fi
if ! pgrep -x slurmd >/dev/null; then
    log "starting slurmd"
    ${sudo_} /usr/sbin/slurmd -f "${SLURM_CONF}"
fi

# 5. wait for the node to be idle
deadline=$((SECONDS + timeout))
while :; do
    st="$(sinfo -h -n "${host}" -o '%t' 2>/dev/null | head -1 || true)"
    case "${st}" in
        idle|mix|alloc) log "node ${host} is ${st}"; break ;;
        down*|drain*|inval*)
            ${sudo_} scontrol update NodeName="${host}" State=RESUME 2>/dev/null || true ;;
    esac
    if [ "${SECONDS}" -ge "${deadline}" ]; then
        log "node not idle after ${timeout}s (state '${st}'); logs follow"
        tail -n 30 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        exit 1
    fi
    sleep 1
done
sinfo
