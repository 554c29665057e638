#!/usr/bin/env bash
# launchers/local-cluster.sh: bring a real single-node SLURM cluster up or down on a
# Debian/Ubuntu machine, for trying the SLURM launcher on one box and for CI.
#
#   sudo bash launchers/local-cluster.sh up       install if needed, start from fresh state, wait
#   sudo bash launchers/local-cluster.sh down     stop what `up` started (by pid file, never by name)
#   bash launchers/local-cluster.sh status        exit 0 iff daemons run, node usable, sacct works
#   eval "$(bash launchers/local-cluster.sh env)" client settings (only for a non-default conf dir)
#
# Daemons (root, private to this script, state under $IMIX_SLURM_DIR):
#   munged (own key + socket) -> mariadbd (own datadir, 127.0.0.1:$DB_PORT) -> slurmdbd
#   -> slurmctld -> slurmd.  Accounting (slurmdbd) is required: submitit reads job states
#   with sacct.  Every `up` wipes Slurm state and the accounting DB (job ids restart at 1).
# See launchers/README.md for the settings and the pitfalls.
set -Eeuo pipefail

STATE=${IMIX_SLURM_DIR:-/var/spool/imix-slurm}
CONF_DIR=${IMIX_SLURM_CONF_DIR:-/etc/slurm}
WAIT_S=${IMIX_SLURM_TIMEOUT:-60}
APT_WAIT_S=${IMIX_SLURM_APT_TIMEOUT:-1200}
DB_PORT=${IMIX_SLURM_DB_PORT:-3307}
CTLD_PORT=${IMIX_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${IMIX_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${IMIX_SLURM_DBD_PORT:-6819}
CPUS=${IMIX_SLURM_CPUS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}   # nproc obeys OMP_NUM_THREADS
MEM_MB=${IMIX_SLURM_MEMORY_MB:-}
CLUSTER=local NODE=localhost PARTITION=debug

RUN=$STATE/run LOGS=$STATE/log
MUNGE_SOCKET=$RUN/munge.socket DB_SOCKET=$RUN/mysqld.sock
SLURM_CONF_PATH=$CONF_DIR/slurm.conf DBD_CONF_PATH=$CONF_DIR/slurmdbd.conf
ORDER=(munged mariadbd slurmdbd slurmctld slurmd)
STAMP="# written by imix-sweeps launchers/local-cluster.sh"

export SLURM_CONF=$SLURM_CONF_PATH
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH=$SYSTEM_PATH:$PATH DEBIAN_FRONTEND=noninteractive LC_ALL=C

say() { printf 'local-cluster: %s\n' "$*" >&2; }
fail() { printf 'local-cluster: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes
pid_of() {   # pid of daemon $1 from its pid file, if alive and really that daemon (not a zombie)
    local f=$RUN/$1.pid pid st
    [[ -r $f ]] || return 1
    pid=$(tr -dc 0-9 <"$f"); [[ -n $pid ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $st != Z && $st != X ]] || return 1
    echo "$pid"
}

gone() {   # process $1 no longer runs (zombies count as gone: some PID 1s reap slowly)
    local st
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 0
    [[ $st == Z || $st == X ]]
}

retry() {   # retry DESC CMD...: run CMD every 0.5 s until it succeeds, at most $WAIT_S seconds
    local what=$1; shift
    local until=$((SECONDS + WAIT_S)) cap=(timeout 15)
    [[ $(type -t "$1") == function ]] && cap=()
    until "${cap[@]}" "$@" >/dev/null 2>&1; do
        ((SECONDS < until)) || fail "gave up after ${WAIT_S}s waiting for $what"
        sleep 0.5
    done
}

# Start a daemon detached: own session, clean environment, no inherited stdio or lock fd
# (an inherited pipe makes `up | tee` and subprocess.run(capture_output=True) hang).
spawn() {
    local background=0; [[ $1 == --background ]] && { background=1; shift; }
    local name=$1; shift
    local cmd=(env -i PATH="$SYSTEM_PATH" HOME=/root LANG=C.UTF-8 SLURM_CONF="$SLURM_CONF" setsid "$@")
    if ((background)); then
        (exec "${cmd[@]}" </dev/null >>"$LOGS/$name.out" 2>&1 9>&-) &
    else
        "${cmd[@]}" </dev/null >>"$LOGS/$name.out" 2>&1 9>&-
    fi
}

ctld_ping() { [[ $(timeout 15 scontrol ping 2>/dev/null) == *"is UP"* ]]; }

show_logs() {
    local f
    for f in "$LOGS"/*.log "$LOGS"/*.out; do
        [[ -s $f ]] || continue
        printf '\n--- %s (last 25 lines) ---\n' "$f" >&2
        tail -n 25 "$f" >&2
    done
}

# ---------------------------------------------------------------- packages
install_packages() {
    local -A need=([slurmctld]=slurm-wlm [slurmd]=slurm-wlm [sinfo]=slurm-wlm [slurmdbd]=slurmdbd
                   [munged]=munge [mariadbd]=mariadb-server [mariadb-install-db]=mariadb-server
                   [mariadb]=mariadb-client)
    local bin pkgs=() p policy=0
    for bin in "${!need[@]}"; do command -v "$bin" >/dev/null || pkgs+=("${need[$bin]}"); done
    ((${#pkgs[@]})) || return 0
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    say "installing ${pkgs[*]} (apt log: $STATE/apt.log)"
    apt_get() { timeout "$APT_WAIT_S" apt-get -y -q -o DPkg::Lock::Timeout=120 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" \
        >>"$STATE/apt.log" 2>&1 9>&-; }
    # The packages' maintainer scripts must not start the system munge/mariadb/slurm services.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy=1
    fi
    for p in "${pkgs[@]}"; do   # update the lists only when a package has no candidate
        if [[ $(apt-cache policy "$p" 2>/dev/null) != *"Candidate: "[!\(]* ]]; then
            apt_get update || { ((policy)) && rm -f /usr/sbin/policy-rc.d; fail "apt-get update failed"; }
            break
        fi
    done
    if ! apt_get install --no-install-recommends "${pkgs[@]}"; then   # stale lists: update, retry once
        if ! { apt_get update && apt_get install --no-install-recommends "${pkgs[@]}"; }; then
            ((policy)) && rm -f /usr/sbin/policy-rc.d
            tail -n 30 "$STATE/apt.log" >&2
            fail "apt-get install ${pkgs[*]} failed"
        fi
    fi
    ((policy)) && rm -f /usr/sbin/policy-rc.d
    return 0
}

# ---------------------------------------------------------------- configs
write_configs() {
    [[ -n $MEM_MB ]] || MEM_MB=$(awk '/^MemAvailable:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$CONF_DIR"
    local f
    for f in "$SLURM_CONF_PATH" "$DBD_CONF_PATH"; do   # never overwrite a config we did not write
        if [[ -s $f ]] && ! grep -qF "$STAMP" "$f"; then
            mv "$f" "$f.bak.$(date +%s)"; say "kept the existing $f as $f.bak.*"
        fi
    done
    cat >"$SLURM_CONF_PATH" <<CONF
$STAMP (rewritten by every 'up')
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire=10: a requeued job restarts after ~11 s instead of ~2 min.
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# slurmdbd connections take the munge socket from here (not from AuthInfo).
AccountingStoragePass=$MUNGE_SOCKET
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
    chmod 644 "$SLURM_CONF_PATH"
    DB_PASSWORD=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (umask 077; cat >"$DBD_CONF_PATH" <<CONF
$STAMP (rewritten by every 'up')
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
CONF
    )
    chown root:root "$DBD_CONF_PATH"; chmod 600 "$DBD_CONF_PATH"   # slurmdbd insists on this
}

# ---------------------------------------------------------------- daemons
start_munged() {
    local key=$STATE/munge/munge.key
    mkdir -p "$STATE/munge"; chmod 700 "$STATE/munge"
    [[ -s $key ]] || mungekey --create --keyfile="$key" 2>/dev/null ||
        dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
    chmod 600 "$key"
    spawn munged munged --force --socket="$MUNGE_SOCKET" --key-file="$key" \
        --pid-file="$RUN/munged.pid" --log-file="$LOGS/munged.log" \
        --seed-file="$STATE/munge/munged.seed" || fail "munged did not start"
    retry "munge" bash -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'"
}

start_mariadbd() {
    mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql" --skip-test-db \
        --auth-root-authentication-method=socket >"$LOGS/mariadb-install.log" 2>&1 9>&- ||
        fail "mariadb-install-db failed (see $LOGS/mariadb-install.log)"
    spawn --background mariadbd mariadbd --no-defaults --user=root --datadir="$STATE/mysql" \
        --socket="$DB_SOCKET" --pid-file="$RUN/mariadbd.pid" --port="$DB_PORT" \
        --bind-address=127.0.0.1 --skip-name-resolve --log-error="$LOGS/mariadbd.log" \
        --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900
    retry "mariadbd" mariadb-admin --no-defaults --socket="$DB_SOCKET" -uroot ping
    retry "mariadbd pid file" pid_of mariadbd
    chmod 644 "$RUN/mariadbd.pid"   # so that `status` works for non-root users
    mariadb --no-defaults --socket="$DB_SOCKET" -uroot <<SQL || fail "could not create the accounting DB"
CREATE DATABASE slurm_acct_db;
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

start_slurmdbd() {
    spawn slurmdbd slurmdbd || fail "slurmdbd did not start"
    retry "slurmdbd" sacctmgr -n list cluster
    if [[ $'\n'$(timeout 15 sacctmgr -n -P list cluster format=cluster)$'\n' != *$'\n'$CLUSTER$'\n'* ]]; then
        timeout 15 sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail "sacctmgr add cluster failed"
    fi
}

start_slurmctld() {
    spawn slurmctld slurmctld || fail "slurmctld did not start"
    retry "slurmctld" ctld_ping
}

start_slurmd() {
    spawn slurmd slurmd -N "$NODE" || fail "slurmd did not start"
    local state until=$((SECONDS + WAIT_S))
    while state=$(timeout 15 sinfo -h -n "$NODE" -o %T 2>/dev/null) || true; [[ $state != idle ]]; do
        [[ $state == inval* || $state == drain* ]] &&   # e.g. RealMemory above what slurmd sees
            fail "node $NODE is '$state': $(sinfo -h -n "$NODE" -o %E 2>/dev/null)"
        ((SECONDS < until)) || fail "node $NODE not idle after ${WAIT_S}s (state '${state:-?}')"
        sleep 0.5
    done
}

stop_one() {
    local name=$1 pid until
    if pid=$(pid_of "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        until=$((SECONDS + WAIT_S))
        while ! gone "$pid" && ((SECONDS < until)); do sleep 0.2; done
        if ! gone "$pid"; then
            say "$name (pid $pid) ignored SIGTERM; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            until=$((SECONDS + 10))
            while ! gone "$pid" && ((SECONDS < until)); do sleep 0.2; done
        fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$RUN/$name.pid"
}

cancel_jobs() {   # let slurmd reap the job steps before it stops
    pid_of slurmctld >/dev/null && pid_of slurmd >/dev/null || return 0
    local ids until
    ids=$(timeout 15 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || return 0
    [[ -n ${ids// /} ]] || return 0
    say "cancelling jobs $ids"
    # shellcheck disable=SC2086
    timeout 15 scancel $ids 2>/dev/null || true
    until=$((SECONDS + WAIT_S))
    while [[ -n $(timeout 15 squeue -h -o %A 2>/dev/null) ]] && ((SECONDS < until)); do sleep 0.5; done
}

# ---------------------------------------------------------------- commands
cmd_down() {
    local i
    cancel_jobs
    for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do stop_one "${ORDER[i]}"; done
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock" "$DB_SOCKET"
}

cleanup_on_error() {
    local rc=$?
    if [[ $rc != 0 && ${STARTING:-0} == 1 ]]; then
        STARTING=0
        show_logs
        say "'up' failed (exit $rc); stopping what it started. Logs: $LOGS"
        cmd_down || true
    fi
    exit "$rc"
}

cmd_up() {
    local t0=$SECONDS d p
    command -v apt-get >/dev/null || fail "needs a Debian/Ubuntu machine (apt-get)"
    install_packages
    cmd_down
    for p in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$DB_PORT"; do
        if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null; then
            fail "port $p is taken by a process this script did not start; stop it or set IMIX_SLURM_*_PORT"
        fi
    done
    rm -rf "$STATE/slurmctld" "$STATE/slurmd" "$STATE/mysql" "$RUN" "$LOGS.prev"
    [[ -d $LOGS ]] && mv "$LOGS" "$LOGS.prev"
    mkdir -p "$STATE/slurmctld" "$STATE/slurmd" "$RUN" "$LOGS"
    chmod 755 "$STATE" "$RUN" "$LOGS"
    STARTING=1
    write_configs
    for d in "${ORDER[@]}"; do
        "start_$d"
        say "started $d (pid $(pid_of "$d" || echo '?'))"
    done
    retry "sacct" sacct -a -n -X
    retry "slurmctld to register with slurmdbd" \
        bash -c "[[ -n \$(sacctmgr -n -P list cluster $CLUSTER format=ControlHost) ]]"
    for d in "${ORDER[@]}"; do pid_of "$d" >/dev/null || fail "$d died"; done
    STARTING=0
    printf 'local-cluster: up in %ss: %s, partition=%s node=%s CPUs=%s RealMemory=%sMB, SLURM_CONF=%s, logs in %s\n' \
        "$((SECONDS - t0))" "$(sinfo -V)" "$PARTITION" "$NODE" "$CPUS" "$MEM_MB" "$SLURM_CONF_PATH" "$LOGS"
}

cmd_status() {
    local d pid bad=0 state
    for d in "${ORDER[@]}"; do
        if pid=$(pid_of "$d"); then echo "$d: running (pid $pid)"; else echo "$d: not running"; bad=1; fi
    done
    if ctld_ping; then   # sinfo alone retries for ~10 s when slurmctld is down
        state=$(timeout 15 sinfo -h -n "$NODE" -o %T 2>/dev/null) || state=unreachable
    else
        state="unknown (slurmctld does not answer)"
    fi
    echo "node $NODE: ${state:-unknown}"
    [[ $state =~ ^(idle|mixed|allocated|completing)$ ]] || bad=1
    if timeout 15 sacct -a -n -X >/dev/null 2>&1; then echo "sacct: ok"; else echo "sacct: failing"; bad=1; fi
    if ((bad)); then echo "local-cluster: down"; else echo "local-cluster: up"; fi
    return "$bad"
}

main() {
    case ${1:-} in
        up | down) ;;
        status) cmd_status; return ;;
        env) echo "export SLURM_CONF=$SLURM_CONF_PATH"; return ;;
        *) echo "usage: $0 {up|down|status|env}" >&2; return 2 ;;
    esac
    [[ $(id -u) == 0 ]] || fail "'$1' must run as root"
    mkdir -p "$STATE" "$RUN"
    exec 9>"$STATE/.lock"   # one up/down at a time; the daemons never inherit fd 9
    flock -w "$((WAIT_S * 5))" 9 || fail "another local-cluster.sh holds $STATE/.lock"
    trap cleanup_on_error EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    "cmd_$1"
}

main "$@"
