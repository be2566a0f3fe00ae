#!/usr/bin/env bash
# Start a single-host SLURM (munge + slurmctld + slurmd) whose files all live under DIR.
#   cluster/localhost/start-slurm.sh [DIR]      (default /tmp/ednn-slurm; needs root)
# Needs Debian's slurm-wlm and munge:
#   apt-get install -y --no-install-recommends slurm-wlm munge
# Prints `export SLURM_CONF=...`; every SLURM client (sbatch, squeue, dask-jobqueue) needs it.
# Stop with cluster/localhost/stop-slurm.sh DIR.
set -euo pipefail
D=$(realpath -m "${1:-/tmp/ednn-slurm}")
mkdir -p "$D"/{etc,run,log,state,spool}
chmod 755 "$D" "$D"/run   # munged refuses a socket path whose directories lack execute for all
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > "$D/etc/slurm.conf" <<CONF
ClusterName=ednn
SlurmctldHost=vm(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/run/munge.socket.2
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
NodeName=vm NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=vm Default=YES MaxTime=INFINITE State=UP
CONF
[ -f "$D/etc/munge.key" ] || mungekey --create --keyfile="$D/etc/munge.key" --bits=1024
chmod 600 "$D/etc/munge.key"
munged --key-file="$D/etc/munge.key" --socket="$D/run/munge.socket.2" \
       --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/run/munged.seed"
export SLURM_CONF="$D/etc/slurm.conf"
slurmctld
slurmd -N vm
for _ in $(seq 60); do   # the node becomes idle after ~5 s
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "start-slurm.sh: the node did not become idle; see $D/log" >&2
exit 1
