#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the `slurm` tests and for trying dlf's Slurm recipes:
#   scripts/slurm_local.sh up       install (apt, as root) and start munge, MariaDB, slurmdbd, slurmctld, slurmd
#   scripts/slurm_local.sh down     stop every daemon `up` started (nothing of it is left running)
#   scripts/slurm_local.sh status   "up" (exit 0) when sinfo answers and the node is idle/mixed/allocated, else "down" (3)
# No systemd: every daemon is started directly. The node is this machine as `slurmd -C` sees it (its CPUs and memory),
# one partition `debug`; proctrack/linuxproc and task/none (no cgroups needed); accounting through slurmdbd on MariaDB
# (submitit polls `sacct`). State, logs and pid files: $DLF_SLURM_STATE (default /var/lib/dlf-slurm); the configs go
# to /etc/slurm (where sbatch, sacct and the daemons look). Only root can run the daemons (and apt).
set -euo pipefail

STATE=${DLF_SLURM_STATE:-/var/lib/dlf-slurm}
ETC=/etc/slurm
DB_PORT=${DLF_SLURM_DB_PORT:-3306}
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: error: $*" >&2; exit 2; }

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for <seconds> <what> <command...>: poll until the command succeeds
    local n=$1 what=$2; shift 2
    for _ in $(seq "$((n * 5))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    die "$what did not come up within ${n} s (logs: $STATE/log/, $STATE/mysql/mariadb.log)"
}

install() {
    local missing=()
    for c in slurmctld slurmd slurmdbd munged mariadbd sbatch sacct; do command -v "$c" >/dev/null || missing+=("$c"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "${missing[*]} not installed and not root: run as root (apt-get install ${PACKAGES[*]})"
    command -v apt-get >/dev/null || die "${missing[*]} not installed and no apt-get: install Slurm 22.05+, munge and MariaDB"
    say "installing ${PACKAGES[*]} (apt)"
    { apt-get install -y -q "${PACKAGES[@]}" || { apt-get update -q && apt-get install -y -q "${PACKAGES[@]}"; }; } \
        >"$STATE/log/apt.log" 2>&1 || die "apt-get install ${PACKAGES[*]} failed: see $STATE/log/apt.log"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
    mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    echo munged >>"$STATE/started"
    wait_for 10 munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
    mkdir -p /run/mysqld "$STATE/mysql" && chown mysql:mysql /run/mysqld "$STATE/mysql"
    if ! pid_alive "$STATE/mysql/mariadb.pid"; then
        [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/log/mariadb-install.log" 2>&1
        # setsid: its own session, so a Ctrl+C of whoever ran `up` does not reach it
        setsid runuser -u mysql -- mariadbd --datadir=/var/lib/mysql --bind-address=127.0.0.1 --port="$DB_PORT" \
            --socket="$STATE/mysql/mysqld.sock" --pid-file="$STATE/mysql/mariadb.pid" --log-error="$STATE/mysql/mariadb.log" \
            </dev/null >/dev/null 2>&1 &
        echo mariadb >>"$STATE/started"
        wait_for 30 MariaDB mariadb --socket="$STATE/mysql/mysqld.sock" -e 'select 1'
    fi
    mariadb --socket="$STATE/mysql/mysqld.sock" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'dlf-slurm';
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'dlf-slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

write_configs() {
    local host node
    host=$(hostname -s)
    node=$(slurmd -C | head -1)  # NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=..
    mkdir -p "$ETC" "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/log"
    chown -R slurm:slurm "$STATE/spool/ctld"
    cat >"$ETC/slurm.conf" <<EOF
# Written by dlf's scripts/slurm_local.sh: a one-node cluster on this machine ($(date -u +%F)).
ClusterName=dlf
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
JobRequeue=1
EnforcePartLimits=ALL
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=30
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$ETC/slurmdbd.conf" <<EOF
# Written by dlf's scripts/slurm_local.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=dlf-slurm
StorageLoc=slurm_acct_db
EOF
    chown slurm:slurm "$ETC/slurmdbd.conf" && chmod 600 "$ETC/slurmdbd.conf"
    chown slurm:slurm "$STATE/log"
}

start_slurm() {
    if ! pid_alive "$STATE/slurmdbd.pid"; then
        slurmdbd && echo slurmdbd >>"$STATE/started"
        wait_for 30 slurmdbd sacctmgr -n show cluster
    fi
    sacctmgr -n show cluster format=cluster | grep -qw dlf || sacctmgr -i add cluster dlf >/dev/null
    if ! pid_alive "$STATE/slurmctld.pid"; then
        slurmctld && echo slurmctld >>"$STATE/started"
        wait_for 30 slurmctld scontrol ping
    fi
    if ! pid_alive "$STATE/slurmd.pid"; then
        slurmd && echo slurmd >>"$STATE/started"
    fi
    wait_for 60 "the node $(hostname -s)" is_up
}

is_up() { sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)'; }

up() {
    mkdir -p "$STATE/log"
    if [ "$(id -u)" != 0 ]; then
        is_up && { say "already up"; return 0; }
        die "only root can start the Slurm daemons (and install them): run scripts/slurm_local.sh up as root"
    fi
    install
    start_munge
    start_mariadb
    write_configs
    start_slurm
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true  # a node left down by an earlier run
    wait_for 30 "the node $(hostname -s)" is_up
    say "up: $(sinfo -h -N -o '%N %c CPUs %m MB %T')"
}

stop_pidfile() {  # stop_pidfile <name> <pid file>: SIGTERM, wait up to 30 s, then SIGKILL
    local pid
    [ -s "$2" ] || return 0
    pid=$(cat "$2")
    kill -0 "$pid" 2>/dev/null || { rm -f "$2"; return 0; }
    kill "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { say "$1 ($pid) ignored SIGTERM: SIGKILL"; kill -9 "$pid"; }
    rm -f "$2"
}

down() {
    [ "$(id -u)" = 0 ] || die "only root can stop the Slurm daemons"
    # the jobs first (their steps are children of slurmstepd), then the daemons, newest first
    command -v scancel >/dev/null && scontrol ping >/dev/null 2>&1 && scancel --full -u "$(id -un)" 2>/dev/null || true
    stop_pidfile slurmd "$STATE/slurmd.pid"
    for p in $(pgrep -x slurmstepd || true); do kill -9 "$p" 2>/dev/null || true; done  # steps of a job slurmd left
    stop_pidfile slurmctld "$STATE/slurmctld.pid"
    stop_pidfile slurmdbd "$STATE/slurmdbd.pid"
    stop_pidfile mariadb "$STATE/mysql/mariadb.pid"
    if grep -qx munged "$STATE/started" 2>/dev/null; then stop_pidfile munged /run/munge/munged.pid; fi
    rm -f "$STATE/started"
    say "down"
}

status() {
    if is_up; then echo "up: $(sinfo -h -N -o '%N %c CPUs %m MB %T')"; return 0; fi
    echo "down"; return 3
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: scripts/slurm_local.sh up|down|status" >&2; exit 2 ;;
esac
