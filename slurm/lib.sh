# shellcheck shell=bash
# slurm/lib.sh: what train.sbatch and sweep.sbatch share, sourced by both:
# finding btrm, site setup (modules, threads, Open MPI as root), launching
# `btrm train CONFIG --resume auto` on the allocation's ranks in the
# background, forwarding Slurm's signals to it, and requeueing the job when
# btrm exits with 75 (checkpointed, please requeue). Every knob is an
# environment variable documented in slurm/README.md.
#
# Bash runs a trap only between foreground commands, so btrm runs in the
# background and the script waits for it: `wait` returns early (status > 128)
# when a trapped signal arrives, and is called again until btrm has exited.

# The folder of the btrm that `make install` installed next to these scripts
# (PREFIX/bin; make install writes it here), found before btrm on PATH.
btrm_installed_bindir=""

btrm_log() { printf '%s btrm-slurm: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*"; }
btrm_die() { btrm_log "error: $*" >&2; exit 2; }

# The command line, shell-quoted, as it can be pasted into a shell.
btrm_quoted() {
    local out="" word
    for word in "$@"; do
        if [[ $word =~ ^[A-Za-z0-9_./:%@+=,-]+$ ]]; then out+=" $word"; else out+=" $(printf '%q' "$word")"; fi
    done
    printf '%s' "${out# }"
}
btrm_show() { btrm_log "+ $(btrm_quoted "$@")"; }

# 1 when RUN_DIR/summary.json says "status": "ok".
btrm_run_finished() {
    [[ -f $1/summary.json ]] && grep -Eq '"status"[[:space:]]*:[[:space:]]*"ok"' "$1/summary.json"
}

# Site setup: BTRM_SETUP, BTRM_MODULES, BTRM_THREADS, btrm itself, Open MPI
# as root. Sets BTRM and btrm_extra (arguments added to btrm train).
btrm_setup() {
    local home=$1 f
    btrm_extra=()
    if [[ -n ${BTRM_SETUP:-} ]]; then
        [[ -f $BTRM_SETUP ]] || btrm_die "BTRM_SETUP=$BTRM_SETUP: no such file"
        btrm_log "+ source $BTRM_SETUP"
        set +u
        # shellcheck disable=SC1090
        source "$BTRM_SETUP"
        set -u
    fi
    if [[ -n ${BTRM_MODULES:-} ]]; then
        set +u # module init scripts read unset variables
        if ! type module >/dev/null 2>&1; then
            for f in /etc/profile.d/modules.sh /etc/profile.d/lmod.sh /usr/share/lmod/lmod/init/bash \
                     /usr/share/modules/init/bash; do
                # shellcheck disable=SC1090
                [[ -f $f ]] && source "$f" && break
            done
        fi
        type module >/dev/null 2>&1 || btrm_die "BTRM_MODULES is set but there is no 'module' command"
        btrm_log "+ module load $BTRM_MODULES"
        # shellcheck disable=SC2086  # a list of module names
        module load $BTRM_MODULES || btrm_die "module load $BTRM_MODULES failed"
        set -u
    fi
    if [[ -n ${BTRM_THREADS:-} ]]; then
        [[ $BTRM_THREADS =~ ^[1-9][0-9]*$ ]] || btrm_die "BTRM_THREADS=$BTRM_THREADS: expected a positive integer"
        export OMP_NUM_THREADS=$BTRM_THREADS OPENBLAS_NUM_THREADS=$BTRM_THREADS
        btrm_extra+=(--set "run.threads=$BTRM_THREADS")
    elif [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
        export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
        export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
    fi
    if [[ -z ${BTRM:-} ]]; then
        if [[ -x $home/src/btrm ]]; then BTRM=$home/src/btrm
        elif [[ -n $btrm_installed_bindir && -x $btrm_installed_bindir/btrm ]]; then
            BTRM=$btrm_installed_bindir/btrm
        elif command -v btrm >/dev/null 2>&1; then BTRM=$(command -v btrm)
        else btrm_die "btrm not found: set BTRM=/path/to/btrm (not in $home/src, not on PATH)"; fi
    fi
    [[ -x $BTRM ]] || btrm_die "BTRM=$BTRM is not an executable"
    if [[ $(id -u) -eq 0 ]]; then # Open MPI refuses root unless told (containers, CI)
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
}

# The launcher prefix for the allocation's ranks (BTRM_LAUNCHER: srun, mpirun
# or auto = srun --mpi=pmix when Slurm has the pmix plugin, else mpirun).
btrm_launcher() {
    local kind=${BTRM_LAUNCHER:-auto} args
    if [[ $kind == auto ]]; then
        kind=mpirun
        if [[ -n ${SLURM_JOB_ID:-} ]] && srun --mpi=list 2>&1 | grep -qw pmix; then kind=srun; fi
    fi
    case $kind in
        srun)
            read -r -a args <<<"${BTRM_SRUN_ARGS:-}"
            btrm_cmd=(srun "--mpi=${BTRM_SRUN_MPI:-pmix}" --kill-on-bad-exit=1 ${args[@]+"${args[@]}"}) ;;
        mpirun)
            read -r -a args <<<"${BTRM_MPIRUN_ARGS:-}"
            btrm_cmd=("${BTRM_MPIEXEC:-mpirun}" ${args[@]+"${args[@]}"}) ;;
        none) btrm_cmd=() ;; # one process, no launcher (a single rank)
        *) btrm_die "BTRM_LAUNCHER=$kind: expected srun, mpirun, none or auto" ;;
    esac
}

_btrm_child=""
_btrm_signal=""
# USR1 or TERM -> USR1 to the launcher: btrm treats both alike (checkpoint,
# exit 75), and mpirun forwards USR1 to its ranks but answers TERM by killing
# them (exit 1); srun forwards both.
_btrm_forward() {
    _btrm_signal=$1
    if [[ -n $_btrm_child ]]; then
        btrm_log "got SIG$1: sending SIGUSR1 to the launcher (PID $_btrm_child); btrm checkpoints at the next step and exits with 75"
        kill -USR1 "$_btrm_child" 2>/dev/null || true
    else
        btrm_log "got SIG$1 before btrm started"
    fi
}

# btrm_train CONFIG [ARGS...]: runs btrm train CONFIG --resume auto ARGS on
# the allocation's ranks; exits the script with btrm's exit code, except 75
# (checkpointed after a signal): then it requeues the job with scontrol and
# exits 0, unless BTRM_REQUEUE=0, the signal was SIGTERM (Slurm is ending the
# job: cancelled, time limit, or preempted with its own requeue) or the
# requeue failed; then it exits 75.
btrm_train() {
    local config=$1 rc
    shift
    [[ -f $config ]] || btrm_die "config $config: no such file"
    btrm_launcher
    btrm_log "job ${SLURM_JOB_ID:-none}${SLURM_ARRAY_TASK_ID:+ (array task $SLURM_ARRAY_TASK_ID)} on $(hostname -s)," \
        "${SLURM_NTASKS:-?} ranks, restart ${SLURM_RESTART_COUNT:-0}, in $(pwd)"
    local cmd=(${btrm_cmd[@]+"${btrm_cmd[@]}"} "$BTRM" train "$config" --resume auto
               ${btrm_extra[@]+"${btrm_extra[@]}"} "$@")
    trap '_btrm_forward USR1' USR1
    trap '_btrm_forward TERM' TERM
    btrm_show "${cmd[@]}"
    "${cmd[@]}" &
    _btrm_child=$!
    [[ -z $_btrm_signal ]] || kill -USR1 "$_btrm_child" 2>/dev/null || true
    while :; do
        rc=0
        wait "$_btrm_child" || rc=$?
        ((rc > 128)) || break
        # > 128: a trapped signal interrupted wait, or the launcher died of a signal
        if kill -0 "$_btrm_child" 2>/dev/null; then continue; fi
        local again=0
        wait "$_btrm_child" 2>/dev/null || again=$?
        ((again == 127)) || rc=$again # 127: rc was already the launcher's own status
        break
    done
    trap - USR1 TERM
    btrm_log "btrm exited with $rc"
    if ((rc != 75)); then exit "$rc"; fi
    if [[ $_btrm_signal == TERM ]]; then
        btrm_log "checkpointed after SIGTERM: Slurm is ending the job; not requeueing (exit 75)"
        exit 75
    fi
    if [[ ${BTRM_REQUEUE:-1} == 0 || -z ${SLURM_JOB_ID:-} ]]; then
        btrm_log "checkpointed; run the same command again to resume (exit 75)"
        exit 75
    fi
    btrm_show scontrol requeue "$SLURM_JOB_ID"
    if scontrol requeue "$SLURM_JOB_ID"; then
        btrm_log "requeued job $SLURM_JOB_ID: it resumes from its newest checkpoint"
        exit 0
    fi
    btrm_log "scontrol requeue failed: resubmit to resume (exit 75)"
    exit 75
}

# The btrm tree this file belongs to (where src/btrm is looked for):
# BTRM_HOME, else the parent of this file's directory.
btrm_home() {
    if [[ -n ${BTRM_HOME:-} ]]; then echo "$BTRM_HOME"; return; fi
    (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}
