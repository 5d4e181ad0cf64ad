# tests/slurm/lib-slurm.sh: sourced by tests/slurm/*.sh (make check-slurm)
# after tests/lib.sh. Starts the single-node Slurm of tools/slurm-localhost.sh
# (a no-op when it is up; it is left running: `tools/slurm-localhost.sh stop`)
# or skips the test when that cannot be: Slurm not installed, or not root.
# BTRM_TEST_SLURM=existing uses the Slurm already configured instead (its
# default partition, as the current user). Jobs a test submits are cancelled
# when it exits.

slurm_jobs=()
slurm_cleanup() {
    if [ ${#slurm_jobs[@]} -gt 0 ]; then scancel "${slurm_jobs[@]}" 2>/dev/null || true; fi
    cleanup_work
}
trap slurm_cleanup EXIT

slurm_up() {
    local cmd
    for cmd in sbatch squeue scontrol scancel sinfo srun; do
        command -v "$cmd" >/dev/null || skip_all "Slurm is not installed ($cmd not found; tools/install-deps.sh --with-slurm)"
    done
    if [ "${BTRM_TEST_SLURM:-}" = existing ]; then
        sinfo -h >/dev/null 2>&1 || skip_all "BTRM_TEST_SLURM=existing but sinfo does not answer"
    else
        [ "$(id -u)" -eq 0 ] || skip_all "starting the local Slurm (tools/slurm-localhost.sh) needs root; BTRM_TEST_SLURM=existing uses a running one"
        for cmd in slurmctld slurmd munged; do
            command -v "$cmd" >/dev/null || skip_all "$cmd not found (tools/install-deps.sh --with-slurm)"
        done
        if ! bash "$BTRM_SRCDIR/tools/slurm-localhost.sh" start > "$WORK/slurm-start.log" 2>&1; then
            sed 's/^/# /' "$WORK/slurm-start.log"
            echo "Bail out! tools/slurm-localhost.sh start failed"
            exit 1
        fi
    fi
    # Never inherit the job context of a job this test runs inside of.
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^SLURM_')
    export BTRM_SLURM_DIR=$BTRM_SRCDIR/slurm # where btrm sweep points sbatch
    export OMPI_MCA_btl_vader_single_copy_mechanism=none
}

# submit SBATCH_ARGS...: sbatch --parsable, remembering the job for cleanup;
# the job ID on stdout.
submit() {
    local id
    id=$(sbatch --parsable "$@") || return 1
    id=${id%%;*}
    slurm_jobs+=("$id")
    echo "$id"
}

# job_field ID FIELD: FIELD=value of `scontrol show job ID` (first task of an array);
# nothing for an empty ID (a submission that failed), never another job's field
job_field() { [ -n "$1" ] || return 1; scontrol show job "$1" 2>/dev/null | grep -o "\b$2=[^ ]*" | head -n1 | cut -d= -f2-; }

# wait_gone ID TIMEOUT: until no task of job ID is pending or running
wait_gone() {
    [ -n "$1" ] || { diag "no job to wait for: its submission failed"; return 1; }
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
        sleep 1
    done
    diag "job $1 still in the queue after $2 s:" "$(squeue -j "$1" 2>&1)"
    return 1
}
