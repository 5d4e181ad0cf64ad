#!/bin/bash
# slurm/train.sbatch and slurm/sweep.sbatch run as plain bash scripts, without
# Slurm: launching through mpirun, forwarding SIGUSR1 and SIGTERM to btrm
# (checkpoint, exit 75, no requeue outside a job), resuming with --resume auto
# to the same bits as an uninterrupted run, and skipping a finished sweep run.
# tests/slurm/*.sh (make check-slurm) run the same scripts under a real Slurm.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
plan 15
cd "$WORK"
# never requeue a job this test happens to run inside of
while read -r var; do unset "$var"; done < <(compgen -e | grep '^SLURM_')
export BTRM_LAUNCHER=mpirun BTRM_MPIRUN_ARGS="-np 2 --oversubscribe --bind-to none"
export OMPI_MCA_btl_vader_single_copy_mechanism=none
train_sbatch=$BTRM_SRCDIR/slurm/train.sbatch
sweep_sbatch=$BTRM_SRCDIR/slurm/sweep.sbatch

"$BTRM" synth train.h5 --pairs 2000 --dim 32 --seed 5 >synth.log 2>&1
"$BTRM" synth test.h5 --pairs 200 --dim 32 --seed 6 >>synth.log 2>&1
cat > long.yaml <<'YAML'
run: {name: long, seed: 3}
data: {train: train.h5}
model: {head: mlp, hidden: [64, 16]}
train: {global_batch: 128, steps: 2000, log_every: 10}
YAML
run_cmd ref.log mpi 2 "$BTRM" train long.yaml --set run.out_dir=ref -q
expect_rc 0 "the uninterrupted reference run"

# wait_line PATTERN LOG: until LOG has a line matching PATTERN (at most 60 s)
wait_line() {
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q "$1" "$2" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# interrupt SIGNAL LOG STEP: runs train.sbatch in the background, sends
# SIGNAL to the script (not to btrm) once training is under way, sets rc.
# Rank 0 waits at step STEP for the signal (BTRM_FAULT action=wait,
# src/core/fault.h): the run cannot end first, however loaded the machine.
interrupt() {
    local pid
    BTRM_FAULT=step,step=$3,action=wait bash "$train_sbatch" long.yaml --set run.out_dir=run \
        > "$2" 2>&1 &
    pid=$!
    wait_line 'fault injection at step' "$2" || diag "rank 0 never reached step $3"
    kill -"$1" "$pid"
    rc=0
    wait "$pid" || rc=$?
}
interrupt USR1 usr1.log 30
expect_rc 75 "SIGUSR1 to train.sbatch: btrm checkpoints and the script exits with 75"
expect_grep 'got SIGUSR1: sending SIGUSR1 to the launcher' usr1.log "the script forwards SIGUSR1 to mpirun"
expect_grep '^.* btrm-slurm: \+ mpirun -np 2 .*btrm train long\.yaml --resume auto --set run\.out_dir=run$' \
    usr1.log "the script prints the command it runs"
expect_grep 'run the same command again to resume \(exit 75\)' usr1.log "outside a job it does not requeue"
pass_if "a checkpoint was written" test -n "$(ls run/checkpoints/)"
interrupt TERM term.log 100
expect_rc 75 "SIGTERM: checkpoint and exit 75 as well"
expect_grep 'resuming from run/checkpoints/step-' term.log "the second start resumed (--resume auto)"
expect_grep 'checkpointed after SIGTERM: Slurm is ending the job; not requeueing' term.log \
    "after SIGTERM the script does not ask for a requeue"
run_cmd last.log bash "$train_sbatch" long.yaml --set run.out_dir=run
expect_rc 0 "the third start finishes the run"
pass_if "final.h5 is bitwise identical to the uninterrupted run" cmp ref/final.h5 run/final.h5
strip() { sed 's/"pairs_per_s":[^,}]*//' "$1"; }
pass_if "metrics.jsonl matches the uninterrupted run's (timings aside)" \
    cmp -s <(strip ref/metrics.jsonl) <(strip run/metrics.jsonl)

# sweep.sbatch outside an array: BTRM_SWEEP_INDEX picks the run
cat > base.yaml <<'YAML'
data: {train: train.h5, eval: [test.h5]}
train: {global_batch: 100, steps: 10}
YAML
printf 'base: base.yaml\ngrid: {loss.type: [bt, normbt]}\n' > s.yaml
"$BTRM" sweep s.yaml -o sw -q > sweep.out
run_cmd sw1.log env BTRM_SWEEP_INDEX=1 bash "$sweep_sbatch" sw
expect_rc 0 "sweep.sbatch runs run 1"
expect_grep '"status": "ok"' sw/runs/0001/summary.json "... to its end, in DIR/runs/0001"
run_cmd sw2.log env BTRM_SWEEP_INDEX=1 bash "$sweep_sbatch" sw
expect_grep 'run 1 is already finished' sw2.log "a finished run is skipped"
done_testing
