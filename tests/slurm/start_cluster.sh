#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine for the SLURM tests (tests/integration/test_compare_slurm.py).
# Uses a cluster that answers already; otherwise, as root: installs Debian's slurm-wlm and munge when missing,
# writes a one-node slurm.conf for this host (its real CPU count and memory), starts munged, slurmctld and slurmd
# directly (no systemd) and waits until sinfo shows the node idle. Exits non-zero, saying why, when it cannot;
# the tests then skip with that reason. Never touches a slurm.conf it did not write.
set -uo pipefail
MARK="# written by nnunet-archs tests/slurm/start_cluster.sh"
CONF=/etc/slurm/slurm.conf
STATE=/var/spool/nnunet-archs-slurm
LOGS=/var/log/nnunet-archs-slurm

if sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; then
    echo "a SLURM cluster answers already: $(sinfo -h -o '%P %D %T' | head -1)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "no SLURM cluster answers, and starting one needs root" >&2
    exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurm-wlm and munge (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q slurm-wlm munge; } >/tmp/nnunet-archs-slurm-apt.log 2>&1 || {
        echo "apt-get install slurm-wlm munge failed; see /tmp/nnunet-archs-slurm-apt.log" >&2; exit 1; }
fi
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "$CONF exists and was not written by this script; not touching it" >&2
    exit 1
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEMORY_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm "$STATE/slurmctld" "$STATE/slurmd" "$LOGS" /run/munge /run/slurm
cat > "$CONF" <<CONF
$MARK
ClusterName=nnunetarchs
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
# finished jobs stay visible to scontrol for 10 minutes; a cancelled job gets 5 s between SIGTERM and SIGKILL
MinJobAge=600
KillWait=5
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c munged || munged --force || {
    echo "munged did not start" >&2; exit 1; }
pgrep -x slurmctld >/dev/null || slurmctld || { echo "slurmctld did not start; see $LOGS/slurmctld.log" >&2; exit 1; }
pgrep -x slurmd >/dev/null || slurmd || { echo "slurmd did not start; see $LOGS/slurmd.log" >&2; exit 1; }

for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^idle'; then
        echo "SLURM cluster up: $(sinfo -h -o 'partition %P, %D node(s), %c CPUs, %T')"
        exit 0
    fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1
    sleep 1
done
echo "the node did not become idle within 60 s: $(sinfo 2>&1 | tail -2); see $LOGS" >&2
exit 1
