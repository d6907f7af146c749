#!/usr/bin/env bash
# Start a one-node SLURM cluster on 127.0.0.1 for tests and local trials of `snakemake --profile slurm`.
#
# Installs Debian's slurm-wlm, slurmdbd, munge and mariadb-server when missing, writes the
# configs and starts the daemons by hand (no systemd): mariadbd -> munged -> slurmdbd (accounting,
# so `sacct` works) -> slurmctld -> slurmd. The node has this machine's CPUs and memory and two
# fake GPUs (gres on /dev/null and /dev/zero): jobs asking for --gpus=1 are scheduled and get
# CUDA_VISIBLE_DEVICES, which is what the workflow's GPU requests need to be tested.
#
# Idempotent: when the cluster already answers, it only says so. Needs root (Debian 12).
# `--no-install`: exit with status 3 instead of installing missing packages (the tests' fixture
# outside CI). Stop it with scripts/slurm/stop.sh. Logs: /var/log/dataworth-slurm/.
set -euo pipefail
INSTALL=yes
[ "${1:-}" = --no-install ] && INSTALL=no

CLUSTER=dataworth
ACCOUNT=dataworth
PARTITION=main
STATE=/var/lib/dataworth-slurm      # spool, state and pid files of this cluster
LOGS=/var/log/dataworth-slurm
MARKER="# written by dataworth scripts/slurm/start.sh"
DB_PASSWORD=dataworth-local-only    # the database listens on its unix socket only
START=$(date +%s)

say() { echo "slurm: $*"; }
die() { echo "slurm: error: $*" >&2; exit 1; }
# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND until it succeeds or time runs out.
wait_for() {
    local limit=$1 what=$2; shift 2
    for _ in $(seq $((limit * 4))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what did not come up within ${limit}s; see $LOGS/"
}

cluster_answers() { sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && sacct -n -X -S now >/dev/null 2>&1; }
if command -v sinfo >/dev/null && grep -qF "$MARKER" /etc/slurm/slurm.conf 2>/dev/null && cluster_answers; then
    say "already running ($(sinfo -h -o '%N %T'))"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"

# --- packages -----------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v mariadbd >/dev/null || ! command -v sacct >/dev/null; then
    if [ $INSTALL = no ]; then
        echo "slurm: packages missing (slurm-wlm slurmdbd munge mariadb-server); run $0 without --no-install" >&2
        exit 3
    fi
    say "installing slurm-wlm slurmdbd munge mariadb-server"
    t0=$(date +%s)
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurm-wlm slurmdbd munge mariadb-server
    say "installed in $(( $(date +%s) - t0 ))s"
fi

# Never overwrite a real cluster's configuration.
if [ -e /etc/slurm/slurm.conf ] && ! grep -qF "$MARKER" /etc/slurm/slurm.conf; then
    die "/etc/slurm/slurm.conf exists and was not written by this script; refusing to replace it"
fi

mkdir -p "$STATE"/{ctld,d} "$LOGS" /etc/slurm /run/munge /run/mysqld
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld

# --- configuration ------------------------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
# RealMemory a little below the machine's, so slurmd never reports less than configured.
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.95)}' /proc/meminfo)

cat > /etc/slurm/slurm.conf <<CONF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120 s): 10 s
# keeps requeue tests short on this single, idle node.
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups in containers: track processes by parentage, no CPU binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
SchedulerType=sched/backfill
# Accounting through slurmdbd: sacct (the executor plugin's status command) reads it.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
# Requeue allowed (jobs ask with --requeue anyway); a node that restarts comes back by itself.
JobRequeue=1
ReturnToService=2
# Short grace between SIGTERM and SIGKILL (default 30 s) keeps time-limit tests short.
KillWait=10
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

cat > /etc/slurm/gres.conf <<CONF
$MARKER
# Two fake GPUs: any device file works for scheduling and CUDA_VISIBLE_DEVICES.
NodeName=$HOST Name=gpu File=/dev/null
NodeName=$HOST Name=gpu File=/dev/zero
CONF

cat > /etc/slurm/slurmdbd.conf <<CONF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
CONF
chmod 600 /etc/slurm/slurmdbd.conf   # slurmdbd refuses a config others can read

# --- daemons ------------------------------------------------------------------------------------
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# MariaDB on its unix socket only (no TCP port to collide with anything on the machine).
if ! mariadb-admin ping >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$LOGS/mariadb-install.log" 2>&1
    nohup mariadbd --user=mysql --skip-networking --pid-file=/run/mysqld/mysqld.pid \
        >"$LOGS/mariadbd.log" 2>&1 &
    wait_for 30 mariadbd mariadb-admin ping
fi
mariadb <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

if ! running /run/munge/munged.pid; then
    [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
    runuser -u munge -- munged
fi
wait_for 10 munged sh -c 'munge -n | unmunge'

if ! running "$STATE/slurmdbd.pid"; then slurmdbd; fi
wait_for 30 slurmdbd sacctmgr -n list cluster
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
# An account for root, so jobs carry an account as on a real cluster (and the plugin can guess it).
if ! sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT"; then
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=tests organization=dataworth >/dev/null
fi
if ! sacctmgr -n -P list user root format=defaultaccount | grep -qx "$ACCOUNT"; then
    sacctmgr -i add user root account="$ACCOUNT" defaultaccount="$ACCOUNT" >/dev/null
fi

# Job state is kept across restarts (no -c), so job ids never repeat in the accounting database.
if ! running "$STATE/slurmctld.pid"; then slurmctld; fi
wait_for 30 slurmctld scontrol ping
if ! running "$STATE/slurmd.pid"; then slurmd; fi
# A node that was down (e.g. the machine restarted under it) is returned to service.
wait_for 30 "node $HOST" sh -c "sinfo -h -n $HOST -o %T | grep -qvE '^(unknown|not_responding)'"
if sinfo -h -n "$HOST" -o %T | grep -qE 'down|drain'; then
    scontrol update nodename="$HOST" state=resume
fi
wait_for 30 "the cluster (node idle, sacct answering)" cluster_answers
say "up in $(( $(date +%s) - START ))s: $(sinfo -h -o '%P %N %T %c CPUs %m MB %G')"
