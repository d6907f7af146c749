#!/usr/bin/env bash
# Stop the one-node cluster that scripts/slurm/start.sh started (only the processes it started,
# found by their pid files). Idempotent. Packages, configs and the accounting database stay, so
# the next start.sh is quick. Queued and running jobs are cancelled first.
set -uo pipefail

STATE=/var/lib/dataworth-slurm

# stop NAME PIDFILE: SIGTERM, then wait up to 20 s for the process to exit.
stop() {
    local name=$1 pidfile=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "slurm: $name ($pid) did not stop; killing it" >&2
            kill -9 "$pid"
        fi
        echo "slurm: stopped $name"
    fi
    rm -f "$pidfile"
}

[ "$(id -u)" = 0 ] || { echo "slurm: error: run as root" >&2; exit 1; }
if [ -s "$STATE/slurmctld.pid" ] && command -v scancel >/dev/null; then
    scancel --user=root --full 2>/dev/null || true
fi
stop slurmd "$STATE/slurmd.pid"
stop slurmctld "$STATE/slurmctld.pid"
stop slurmdbd "$STATE/slurmdbd.pid"
stop munged /run/munge/munged.pid
stop mariadbd /run/mysqld/mysqld.pid
exit 0
