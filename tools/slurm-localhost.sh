#!/usr/bin/env bash
# tools/slurm-localhost.sh (copied from the project's CI kit, so that the tree
# builds and tests without it): a real single-node Slurm on this machine (munged + slurmctld
# + slurmd from Debian 12's slurm-wlm 22.05), for testing the Slurm scripts.
#
# Usage: slurm-localhost.sh start|stop|status
#   start   writes /etc/slurm/slurm.conf for this host, creates the munge key if
#           absent, starts the daemons, waits (SLURM_LOCALHOST_WAIT s, default 60)
#           until sinfo shows the node idle. Returns 0 when it is; when not, prints
#           the daemon logs, stops what it started and returns 1. A no-op when
#           already up. Each start begins with an empty queue (slurmctld -c).
#   stop    cancels remaining jobs, then stops only the daemons this script
#           started (PIDs recorded in /run/slurm-localhost), by PID.
#   status  the daemons' PIDs, sinfo and squeue; exit 0 when up, 1 when not.
# start and stop need root (they re-run themselves through sudo otherwise) and
# slurm-wlm + munge (tools/install-deps.sh --with-slurm). Files: /etc/slurm/slurm.conf
# (a slurm.conf not written by this script is kept as slurm.conf.orig), state and
# spool in /var/spool/slurm/{ctld,d}, logs in /var/log/slurm/, PIDs in
# /run/slurm-localhost/.
#
# Configuration, chosen to work inside a container (no systemd, no cgroups):
#   node `hostname -s` at 127.0.0.1, CPUs = getconf _NPROCESSORS_ONLN, which ignores OMP_NUM_THREADS (sockets/cores/threads from
#   slurmd -C), RealMemory = total memory - 1024 MB; one partition "debug",
#   Default=YES MaxTime=INFINITE; SelectType=select/cons_tres CR_Core (memory is
#   not a consumable: jobs need no --mem); ProctrackType=proctrack/linuxproc,
#   TaskPlugin=task/none, JobAcctGatherType=jobacct_gather/none (no cgroup plugin
#   is loaded, so no cgroup.conf is needed); no accounting database (sacct does
#   not work: use squeue / scontrol show job; finished jobs stay visible for
#   MinJobAge=300 s); SlurmUser=root; MpiDefault=none; JobRequeue=1;
#   EnforcePartLimits=ALL (a job asking for more than the node has is refused at
#   submission instead of pending forever with Reason=PartitionConfig);
#   AuthInfo=cred_expire=30 (a requeued job may start again after 30 s instead
#   of Slurm's default 120 s); SchedulerParameters=sched_interval=5,bf_interval=5
#   (pending jobs start within seconds); KillWait=10; MailProg=/bin/true.
#
# Verified here (Debian 12, Slurm 22.05.8, Open MPI 4.1.4, in a container, as root):
#   - sbatch --wrap hostname: runs, output in slurm-<id>.out; sbatch --wait blocks
#     until the job ends and returns its exit code.
#   - sbatch --array=0-3: four tasks, SLURM_ARRAY_TASK_ID 0..3, one output file each.
#   - Signals. `scancel --signal=USR1 --batch JOBID` reaches the batch shell's trap;
#     `scancel --signal=USR1 JOBID` reaches the srun-launched tasks, not the
#     batch shell. `sbatch --time=2 --signal=B:USR1@60` delivered USR1 to the
#     batch shell 61-75 s before the limit (Slurm may send it up to 60 s early),
#     and the time-limit SIGTERM came 15-29 s after the limit (limits are checked
#     every 30 s). `--signal=USR1@N` without B: goes to the job steps instead.
#     Bash runs a trap only once the foreground command ends: run the work in
#     the background and `wait` for it. mpirun forwards SIGUSR1 to its ranks
#     ("mpirun: Forwarding signal 10 to job"), so a batch shell can trap USR1
#     and `kill -USR1` its mpirun.
#   - Requeue. `scontrol requeue JOBID` on a running job (or
#     `scontrol requeue $SLURM_JOB_ID` from inside it) kills the batch script
#     ("CANCELLED ... DUE TO JOB REQUEUE"); the job pends for cred_expire (30 s),
#     runs again with SLURM_RESTART_COUNT=1 (unset in the first run), same job ID.
#     `scontrol update jobid=JOBID starttime=now` makes it eligible at once.
#   - MPI. In `sbatch -n 2`, `mpirun ./prog` (OMPI_ALLOW_RUN_AS_ROOT=1
#     OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 as root) starts 2 ranks from the
#     allocation. `srun --mpi=list`: pmix (pmix_v4), none, cray_shasta, pmi2.
#     `srun --mpi=pmix -n 2 ./prog` works, inside sbatch and from a shell, and
#     needs no run-as-root variables; `--mpi=pmi2` and the default (none) fail in
#     MPI_Init: Debian's Open MPI has PMIx, not Slurm's PMI-2.
#   - 3 ranks on 2 CPUs: `sbatch -n 3` is refused ("More processors requested
#     than permitted"); `sbatch -n 3 --overcommit` runs mpirun (3 ranks, no
#     --oversubscribe needed) and srun --mpi=pmix with 3 ranks.
#   - stop with a job running cancels it; stop then start again works (new, empty
#     queue); start when up is a no-op; a missing munge key is created; a munged
#     already running is reused and left running by stop.
#   munged.log shows "Info: Unauthorized credential for client UID=0" when the
#   daemons start and jobs launch; it is harmless (everything above passed).
set -euo pipefail

conf=/etc/slurm/slurm.conf
piddir=/run/slurm-localhost
spool=/var/spool/slurm
logdir=/var/log/slurm
munge_key=/etc/munge/munge.key
wait_s=${SLURM_LOCALHOST_WAIT:-60}
marker="# written by slurm-localhost.sh"
host=$(hostname -s)

say() { echo "slurm-localhost: $*"; }
die() { echo "slurm-localhost: $*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

# True when process $1 exists and is not a zombie (a daemon's exited fork can
# linger as a zombie here: PID 1 of a container may be slow to reap it).
pid_running() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $st && $st != Z* ]]
}

# The PID recorded for daemon $1, if that process is alive and is that daemon.
recorded_pid() {
    local f=$piddir/$1.pid pid comm
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$1"* ]] && pid_running "$pid" || return 1
    echo "$pid"
}

# A live $1 process that this script did not start, waiting up to 5 s for one
# that is on its way out.
foreign_pid() {
    local i pid
    for ((i = 0; i < 25; i++)); do
        pid=$(ps -C "$1" -o pid=,stat= | awk '$2 !~ /^Z/ {print $1; exit}')
        [[ -z $pid ]] && return 1
        sleep 0.2
    done
    echo "$pid"
}

node_state() { sinfo -h -n "$host" -o %T 2>/dev/null | head -n1; }

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

show_logs() {
    local f
    for f in "$logdir/slurmctld.log" "$logdir/slurmd.log" /var/log/munge/munged.log; do
        [[ -f $f ]] || continue
        echo "---- $f (last 40 lines)" >&2
        tail -n 40 "$f" >&2
    done
}

# A failed start: say why, show the logs, stop what this script started, exit 1.
fail_start() {
    echo "slurm-localhost: $*" >&2
    show_logs
    cmd_stop >&2
    exit 1
}

write_conf() {
    local cpus mem total layout hw
    cpus=$(getconf _NPROCESSORS_ONLN)  # not nproc: it obeys OMP_NUM_THREADS
    total=$(free -m | awk '/^Mem:/ {print $2}')
    mem=$(( total > 2048 ? total - 1024 : total / 2 ))
    layout="CPUs=$cpus"
    hw=$(slurmd -C 2>/dev/null | head -n1 || true)
    if [[ $hw =~ CPUs=([0-9]+).*SocketsPerBoard=([0-9]+).*CoresPerSocket=([0-9]+).*ThreadsPerCore=([0-9]+) ]] &&
       (( BASH_REMATCH[1] == cpus )); then
        layout="CPUs=$cpus Sockets=${BASH_REMATCH[2]} CoresPerSocket=${BASH_REMATCH[3]} ThreadsPerCore=${BASH_REMATCH[4]}"
    fi
    if [[ -f $conf ]] && ! grep -qF "$marker" "$conf" && [[ ! -e $conf.orig ]]; then
        cp -p "$conf" "$conf.orig"
        say "kept the previous $conf as $conf.orig"
    fi
    mkdir -p "$(dirname "$conf")"
    cat >"$conf.tmp" <<EOF
$marker: single-node Slurm for tests.
ClusterName=localhost
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$spool/ctld
SlurmdSpoolDir=$spool/d
SlurmctldPidFile=$piddir/slurmctld.pid
SlurmdPidFile=$piddir/slurmd.pid
SlurmctldLogFile=$logdir/slurmctld.log
SlurmdLogFile=$logdir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in a container.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
# Look at pending jobs every 5 s (defaults 60 s and 30 s): quicker tests.
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
EnforcePartLimits=ALL
JobRequeue=1
ReturnToService=2
KillWait=10
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=30
MailProg=/bin/true
MinJobAge=300
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 $layout RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$conf.tmp" "$conf"
    chmod 0644 "$conf"
}

start_munge() {
    if recorded_pid munged >/dev/null; then return 0; fi
    if munge_works; then
        say "using the munged already running (not started by this script)"
        return 0
    fi
    if [[ ! -s $munge_key ]]; then
        install -d -o munge -g munge -m 0700 "$(dirname "$munge_key")"
        mungekey --create --keyfile="$munge_key"
        chown munge:munge "$munge_key"
        chmod 0400 "$munge_key"
        say "created $munge_key"
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s /run/munge/munged.pid ]] && munge_works && break
        sleep 0.2
    done
    if ! { [[ -s /run/munge/munged.pid ]] && munge_works; }; then
        fail_start "munged did not start"
    fi
    cp /run/munge/munged.pid "$piddir/munged.pid"
}

start_daemon() { # name, command...
    local name=$1 pid
    shift
    if recorded_pid "$name" >/dev/null; then return 0; fi
    if pid=$(foreign_pid "$name"); then
        fail_start "a $name not started by this script is running (PID $pid): stop it first"
    fi
    [[ -f $logdir/$name.log ]] && mv -f "$logdir/$name.log" "$logdir/$name.log.old"
    rm -f "$piddir/$name.pid"
    "$@" || fail_start "$name failed to start"
    local i
    for ((i = 0; i < 50; i++)); do
        recorded_pid "$name" >/dev/null && return 0
        sleep 0.2
    done
    fail_start "$name did not write its PID file $piddir/$name.pid"
}

cmd_start() {
    local d
    for d in munged slurmctld slurmd sinfo squeue scontrol mungekey; do
        command -v "$d" >/dev/null ||
            die "$d not found: install slurm-wlm and munge (tools/install-deps.sh --with-slurm)"
    done
    if recorded_pid slurmctld >/dev/null && recorded_pid slurmd >/dev/null &&
       [[ $(node_state) == @(idle|mixed|allocated|completing)* ]]; then
        say "already running (node $host $(node_state))"
        return 0
    fi
    install -d -m 0755 "$piddir" "$logdir" "$spool"
    install -d -m 0700 "$spool/ctld" "$spool/d"
    start_munge
    write_conf
    if recorded_pid slurmctld >/dev/null; then
        scontrol reconfigure
    else
        start_daemon slurmctld slurmctld -c
    fi
    start_daemon slurmd slurmd

    local deadline=$((SECONDS + wait_s)) state=""
    while ((SECONDS < deadline)); do
        state=$(node_state)
        case $state in
            idle*) say "up: node $host idle ($(getconf _NPROCESSORS_ONLN) CPUs), partition debug"; return 0 ;;
            down*|drain*|fail*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    sinfo -N -l >&2 || true
    scontrol show node "$host" >&2 || true
    fail_start "node $host not idle after ${wait_s}s (state: ${state:-no answer})"
}

cmd_stop() {
    local name pid i jobs stopped=0
    if recorded_pid slurmctld >/dev/null; then
        jobs=$(squeue -h -o %A 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 30; i++)); do
                [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break
                sleep 1
            done
        fi
    fi
    for name in slurmd slurmctld munged; do
        pid=$(recorded_pid "$name") || { rm -f "$piddir/$name.pid"; continue; }
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            pid_running "$pid" || break
            sleep 0.1
        done
        if pid_running "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$piddir/$name.pid"
        say "stopped $name (PID $pid)"
        stopped=1
    done
    ((stopped)) || say "nothing to stop"
    local left
    left=$(ps -C slurmstepd -o pid=,stat= | awk '$2 !~ /^Z/ {printf "%s ", $1}') || true # ps fails when there is none
    [[ -z $left ]] || say "note: slurmstepd still running (PIDs $left)"
    return 0
}

cmd_status() {
    local name pid up=1
    for name in munged slurmctld slurmd; do
        if pid=$(recorded_pid "$name"); then
            echo "$name: running (PID $pid)"
        elif [[ $name == munged ]] && munge_works; then
            echo "munged: running (not started by this script)"
        else
            echo "$name: not running"
            up=0
        fi
    done
    if ((up)); then
        sinfo
        squeue
        return 0
    fi
    return 1
}

case ${1:-} in
    start|stop|status) ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
if [[ $1 != status && $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "needs root (or sudo)"
    exec sudo SLURM_LOCALHOST_WAIT="$wait_s" "$0" "$@"
fi
shopt -s extglob
"cmd_$1"
