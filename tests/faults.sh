#!/bin/bash
# Faults during training (docs/reliability.md), injected at exact points with
# BTRM_FAULT (src/core/fault.h), on 2 ranks:
#  - a rank killed with SIGKILL inside the gradient collective, and inside a
#    collective HDF5 checkpoint write: the job ends within a bounded time with
#    a message naming the rank, never hangs, no partial checkpoint carries a
#    final name, and --resume auto continues from the last good checkpoint to
#    the bits of an uninterrupted run;
#  - SIGUSR1 twice, SIGUSR1 or SIGTERM (twice) during a checkpoint write, and
#    SIGTERM or SIGUSR1 before the first step: one checkpoint at the next step
#    boundary, exit 75, and the resumed run ends bitwise identical.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
plan 33
cd "$WORK"
LIMIT=120 # seconds: a run that takes longer has hung
"$BTRM" synth train.h5 --pairs 1000 --dim 16 --seed 3 >synth.log 2>&1
cat > run.yaml <<YAML
run: {name: faults, seed: 9}
data: {train: train.h5}
model: {head: mlp, hidden: [16], activation: tanh}
loss: {type: normbt}
optim: {type: adamw, lr: 0.003, schedule: cosine, warmup_steps: 5, grad_clip: 1.0}
train: {global_batch: 100, steps: 30, log_every: 5}
checkpoint: {every: 10, keep: 5}
YAML
train() { # train LOG OUT FAULT [ARGS...]: 2 ranks under the time limit, sets $rc
    local log=$1 out=$2 fault=$3; shift 3
    run_cmd $log.log env BTRM_FAULT="$fault" timeout $LIMIT "$BTRM_MPIRUN" 2 "$BTRM" train \
        run.yaml --set run.out_dir=$out "$@"
}
# resumes OUT and checks that it continues from STEP to the reference's bits
resume_matches() {
    local out=$1 step=$2
    train $out-resume $out "" --resume auto
    expect_rc 0 "$out: --resume auto finishes the run"
    expect_grep "resuming from $out/checkpoints/step-0*$step.h5 \(step $step\)" $out-resume.log \
        "$out: it resumes from the step-$step checkpoint"
    pass_if "$out: the resumed run ends bitwise identical to an uninterrupted one" \
        cmp -s ref/final.h5 $out/final.h5
}

train ref ref ""
expect_rc 0 "the uninterrupted reference run"

# 1. SIGKILL of rank 1 just before the gradient collective of step 15: rank 0
# waits inside it; the launcher sees the death and ends the job.
train kill-reduce kill-reduce "grad-reduce,rank=1,hit=15"
pass_if "a rank killed in the gradient collective ends the job within $LIMIT s (exit $rc)" \
    test $rc -ne 0 -a $rc -ne 124
expect_grep 'rank 1.*(signal 9|Killed)' kill-reduce.log "the message names the lost rank and SIGKILL"
resume_matches kill-reduce 10

# 2. SIGKILL of rank 1 just before its H5Dwrite of /optim/exp_avg at step 20
# (the 11th collective dataset write: 6 per checkpoint), while rank 0 is
# inside the collective write.
train kill-write kill-write "ckpt-write,rank=1,hit=11"
pass_if "a rank killed in a collective HDF5 write ends the job within $LIMIT s (exit $rc)" \
    test $rc -ne 0 -a $rc -ne 124
expect_grep 'rank 1.*(signal 9|Killed)' kill-write.log "the message names the lost rank"
pass_if "no step-20 checkpoint under its final name" test ! -e kill-write/checkpoints/step-00000020.h5
pass_if "latest still points to step 10" test "$(readlink kill-write/checkpoints/latest)" = step-00000010.h5
run_cmd kill-write-inspect.log "$BTRM" inspect kill-write/checkpoints/step-00000010.h5
expect_rc 0 "the step-10 checkpoint verifies"
resume_matches kill-write 10

# 3. SIGUSR1 twice to the launcher, which forwards both
BTRM_FAULT=step,step=50,action=wait "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml \
    --set run.out_dir=usr1-twice --set train.steps=4000 --set checkpoint.every=0 \
    >usr1-twice.log 2>&1 &
pid=$!
# rank 0 waits at step 50 until the signals land (src/core/fault.h)
for i in $(seq 1 600); do grep -q 'fault injection at step' usr1-twice.log && break; sleep 0.1; done
kill -USR1 $pid; kill -USR1 $pid
( sleep $LIMIT; kill -9 $pid 2>/dev/null ) & guard=$!
wait $pid; rc=$?
kill $guard 2>/dev/null
expect_rc 75 "SIGUSR1 twice: one checkpoint, exit 75"
pass_if "exactly one checkpoint was written" test "$(ls usr1-twice/checkpoints | grep -c '^step-')" -eq 1

# 4. signals while a checkpoint is being written: rank 0 gets SIGUSR1 in the
# middle of the step-10 checkpoint (3rd dataset), rank 1 SIGTERM twice in the
# middle of the step-20 one (9th dataset). The checkpoint completes; the run
# stops after the next step with a second checkpoint.
train usr1-write usr1-write "ckpt-write,action=usr1,hit=3"
expect_rc 75 "SIGUSR1 during a checkpoint write: exit 75"
pass_if "the interrupted step-10 checkpoint completed, and step 11 was saved" \
    test -f usr1-write/checkpoints/step-00000010.h5 -a -f usr1-write/checkpoints/step-00000011.h5
resume_matches usr1-write 11
train term-write term-write "ckpt-write,rank=1,action=term-twice,hit=9"
expect_rc 75 "SIGTERM twice during a checkpoint write: exit 75"
pass_if "the step-20 checkpoint completed, and step 21 was saved" \
    test -f term-write/checkpoints/step-00000020.h5 -a -f term-write/checkpoints/step-00000021.h5
resume_matches term-write 21

# 5. a stop signal before the first step: the run takes one step, saves it
# and stops
train term-first term-first "step,action=term,hit=1"
expect_rc 75 "SIGTERM before the first step: exit 75"
expect_grep '"status": "preempted"' term-first/summary.json "summary.json says preempted"
resume_matches term-first 1
train usr1-first usr1-first "step,rank=1,action=usr1-twice,hit=1"
expect_rc 75 "SIGUSR1 twice on rank 1 before the first step: exit 75"
pass_if "and it saved step 1" test -f usr1-first/checkpoints/step-00000001.h5
done_testing
