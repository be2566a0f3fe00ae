#!/usr/bin/env bash
# Stop the single-host SLURM started by start-slurm.sh DIR (cancels every job first).
set -uo pipefail
D=$(realpath -m "${1:-/tmp/ednn-slurm}")
export SLURM_CONF="$D/etc/slurm.conf"
scancel --user="$(id -un)" 2>/dev/null || true
for name in slurmd slurmctld munged; do
    pidfile="$D/run/$name.pid"
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        rm -f "$pidfile"
    fi
done
