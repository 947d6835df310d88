#!/usr/bin/env bash
# A real SLURM cluster on this machine, for tests and benchmarks of the slurm executor.
#
#   hpc/localslurm/localslurm.sh install   # apt-get the daemons (root; idempotent)
#   hpc/localslurm/localslurm.sh start     # configure + start; prints `export SLURM_CONF=...`
#   hpc/localslurm/localslurm.sh status    # daemons, nodes and queue
#   hpc/localslurm/localslurm.sh env       # just the export line
#   hpc/localslurm/localslurm.sh stop      # stop every daemon started here (by pid file)
#
# What runs: munged, MariaDB + slurmdbd (so `sacct` works: submitit needs it to see a
# cancelled or killed job end), slurmctld, and two slurmd node daemons n1, n2 on
# 127.0.0.1 (ports 6821-6822) so that `sbatch -N2` jobs really span two nodes.
# Everything (config, state, spool, logs, pids, sockets, database) lives in
# $LOCALSLURM_DIR (default /tmp/medaug-slurm: short, for the 107-byte socket limit).
# State survives stop/start, so job ids keep counting up; `reset` wipes it.
#
# Settings that work in a container without systemd or cgroup delegation
# (see shared/notes/feasibility.md): proctrack/linuxproc, task/none, select/cons_tres
# with CR_Core_Memory and DefMemPerCPU (otherwise a job takes a whole node's memory
# and jobs serialise), jobcomp/filetxt for a job-completion log.
#
# Environment knobs: LOCALSLURM_DIR, LOCALSLURM_CPUS (CPUs per node; default
# max(1, nproc/2) so two nodes together never promise more cores than exist),
# LOCALSLURM_MEM (MB per node, default 4000), LOCALSLURM_CTLD_PORT (6817),
# LOCALSLURM_DBD_PORT (6819), LOCALSLURM_DB_PORT (MariaDB, 3307),
# LOCALSLURM_NODE_PORTS (6821-6822), LOCALSLURM_ACCOUNTING (1; 0 skips MariaDB/slurmdbd).
set -euo pipefail

DIR=${LOCALSLURM_DIR:-/tmp/medaug-slurm}
NPROC=$(nproc)
CPUS=${LOCALSLURM_CPUS:-$(( NPROC / 2 > 0 ? NPROC / 2 : 1 ))}
MEM=${LOCALSLURM_MEM:-4000}
CTLD_PORT=${LOCALSLURM_CTLD_PORT:-6817}
DBD_PORT=${LOCALSLURM_DBD_PORT:-6819}
DB_PORT=${LOCALSLURM_DB_PORT:-3307}
NODE_PORTS=${LOCALSLURM_NODE_PORTS:-6821-6822}
ACCOUNTING=${LOCALSLURM_ACCOUNTING:-1}
CLUSTER=medaug
NODES=(n1 n2)
PACKAGES=(slurmctld slurmd slurm-client munge)
DB_PACKAGES=(slurmdbd mariadb-server)

CONF=$DIR/etc/slurm.conf
MUNGE_SOCKET=$DIR/munge/munge.socket
DB_DATA=$DIR/db

log() { echo "localslurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- helpers
pid_alive() {  # pid_alive PIDFILE -> 0 when the process in PIDFILE runs
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND... : poll, never sleep blindly
    local limit=$1 what=$2; shift 2
    local deadline=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        (( $(date +%s) < deadline )) || die "timed out after ${limit}s waiting for $what (logs: $DIR/log)"
        sleep 0.2
    done
}

stop_pidfile() {  # stop_pidfile PIDFILE NAME: TERM, wait, then KILL
    local file=$1 name=$2 pid
    pid_alive "$file" || { rm -f "$file"; return 0; }
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored TERM; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$file"
    log "stopped $name"
}

# ---------------------------------------------------------------- install
cmd_install() {
    local wanted=("${PACKAGES[@]}")
    [[ $ACCOUNTING == 1 ]] && wanted+=("${DB_PACKAGES[@]}")
    local missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if (( ${#missing[@]} == 0 )); then log "packages already installed"; return 0; fi
    [[ $(id -u) == 0 ]] || die "install needs root (apt-get)"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
    # Debian's postinst scripts may start a system MariaDB through init.d; ours runs on its own port.
}

# ---------------------------------------------------------------- configure
write_configs() {
    mkdir -p "$DIR"/{etc,state,log,run,munge,spool}
    for n in "${NODES[@]}"; do mkdir -p "$DIR/spool/slurmd-$n"; done
    local accounting
    if [[ $ACCOUNTING == 1 ]]; then
        accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCKET"
    else
        accounting="AccountingStorageType=accounting_storage/none"
    fi
    cat > "$CONF.tmp" <<EOF
# Written by hpc/localslurm/localslurm.sh: a two-node SLURM on 127.0.0.1 for tests.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$(( MEM / CPUS / 2 ))
ReturnToService=2
SchedulerType=sched/backfill
JobRequeue=1
# What real clusters need for submitit to see preemption coming (hpc/README.md):
SlurmctldParameters=preempt_send_user_signal
KillWait=5
MinJobAge=300
InactiveLimit=0
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
$accounting
NodeName=n[1-2] NodeAddr=127.0.0.1 NodeHostname=localhost Port=[$NODE_PORTS] CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    if [[ $ACCOUNTING == 1 ]]; then
        umask 077
        cat > "$DIR/etc/slurmdbd.conf.tmp" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
        chmod 600 "$DIR/etc/slurmdbd.conf.tmp"
        mv "$DIR/etc/slurmdbd.conf.tmp" "$DIR/etc/slurmdbd.conf"
        umask 022
    fi
}

# ---------------------------------------------------------------- start
start_munge() {
    if pid_alive "$DIR/munge/munged.pid"; then return 0; fi
    if [[ ! -s $DIR/munge/munge.key ]]; then
        if [[ -r /etc/munge/munge.key ]]; then cp /etc/munge/munge.key "$DIR/munge/munge.key"
        else dd if=/dev/urandom bs=1 count=1024 of="$DIR/munge/munge.key" status=none; fi
    fi
    chown -R munge:munge "$DIR/munge"
    chmod 755 "$DIR/munge"; chmod 400 "$DIR/munge/munge.key"
    runuser -u munge -- munged --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" \
        || die "munged did not start (see $DIR/munge/munged.log)"
    wait_for 10 munged munge --socket="$MUNGE_SOCKET" -n
}

start_mariadb() {
    if pid_alive "$DB_DATA/mariadb.pid"; then return 0; fi
    if [[ ! -d $DB_DATA/mysql ]]; then
        mkdir -p "$DB_DATA"; chown mysql:mysql "$DB_DATA"
        mariadb-install-db --user=mysql --datadir="$DB_DATA" --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed (see $DIR/log/mariadb-install.log)"
    fi
    # MariaDB crashes when it cannot write its log/pid: keep them in its own datadir (owned by mysql).
    runuser -u mysql -- mariadbd --no-defaults --datadir="$DB_DATA" --socket="$DB_DATA/mysqld.sock" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$DB_DATA/mariadb.pid" \
        --log-error="$DB_DATA/mariadb.err" --innodb-buffer-pool-size=32M --innodb-log-file-size=8M \
        >/dev/null 2>&1 &
    wait_for 60 MariaDB mariadb --no-defaults --socket="$DB_DATA/mysqld.sock" -u root -e "SELECT 1"
    mariadb --no-defaults --socket="$DB_DATA/mysqld.sock" -u root -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
        FLUSH PRIVILEGES;"
}

start_slurmdbd() {
    if pid_alive "$DIR/run/slurmdbd.pid"; then return 0; fi
    SLURM_CONF=$CONF slurmdbd || die "slurmdbd did not start (see $DIR/log/slurmdbd.log)"
    wait_for 30 slurmdbd env SLURM_CONF="$CONF" sacctmgr -n list cluster
    if ! SLURM_CONF=$CONF sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        SLURM_CONF=$CONF sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
}

nodes_up() {  # both nodes answer and are schedulable (idle/mixed/allocated)
    local states
    states=$(SLURM_CONF=$CONF sinfo -h -N -o "%N %t" 2>/dev/null) || return 1
    for n in "${NODES[@]}"; do
        grep -Eq "^$n (idle|mix|alloc|comp)" <<<"$states" || return 1
    done
}

cmd_start() {
    [[ $(id -u) == 0 ]] || die "start needs root (the daemons run as root/munge/mysql)"
    command -v slurmctld >/dev/null || die "SLURM is not installed: run '$0 install' first"
    write_configs
    start_munge
    if [[ $ACCOUNTING == 1 ]]; then start_mariadb; start_slurmdbd; fi
    if ! pid_alive "$DIR/run/slurmctld.pid"; then
        SLURM_CONF=$CONF slurmctld || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
    fi
    wait_for 30 slurmctld env SLURM_CONF="$CONF" scontrol ping
    for n in "${NODES[@]}"; do
        if ! pid_alive "$DIR/run/slurmd-$n.pid"; then
            SLURM_CONF=$CONF slurmd -N "$n" || die "slurmd $n did not start (see $DIR/log/slurmd-$n.log)"
        fi
    done
    wait_for 60 "nodes ${NODES[*]} to be up" nodes_up
    log "up: cluster $CLUSTER, nodes ${NODES[*]} (CPUs=$CPUS, RealMemory=${MEM}MB each), accounting=$ACCOUNTING"
    cmd_env
}

cmd_env() { echo "export SLURM_CONF=$CONF"; }

cmd_stop() {
    for n in "${NODES[@]}"; do stop_pidfile "$DIR/run/slurmd-$n.pid" "slurmd $n"; done
    stop_pidfile "$DIR/run/slurmctld.pid" slurmctld
    stop_pidfile "$DIR/run/slurmdbd.pid" slurmdbd
    stop_pidfile "$DB_DATA/mariadb.pid" mariadbd
    stop_pidfile "$DIR/munge/munged.pid" munged
}

cmd_status() {
    local rc=0
    for entry in "munged:$DIR/munge/munged.pid" "mariadbd:$DB_DATA/mariadb.pid" "slurmdbd:$DIR/run/slurmdbd.pid" \
                 "slurmctld:$DIR/run/slurmctld.pid" "slurmd-n1:$DIR/run/slurmd-n1.pid" "slurmd-n2:$DIR/run/slurmd-n2.pid"; do
        local name=${entry%%:*} file=${entry#*:}
        if pid_alive "$file"; then echo "$name running (pid $(cat "$file"))"; else echo "$name stopped"; rc=1; fi
    done
    if [[ -f $CONF ]] && SLURM_CONF=$CONF scontrol ping >/dev/null 2>&1; then
        SLURM_CONF=$CONF sinfo -N
        SLURM_CONF=$CONF squeue
    fi
    cmd_env
    return $rc
}

cmd_reset() { cmd_stop; rm -rf "$DIR"; log "removed $DIR"; }

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    reset) cmd_reset ;;
    *) echo "usage: $0 install|start|stop|status|env|reset" >&2; exit 2 ;;
esac
