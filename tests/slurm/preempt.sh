#!/bin/bash
# Preemption under Slurm: slurm/train.sbatch (mpirun launcher) gets SIGUSR1
# (scancel --signal=USR1 --batch, as --signal=B:USR1@T sends it), btrm
# checkpoints and exits 75, the script requeues the job, the job runs again
# (restart 1), resumes, and finishes with final.h5 bitwise identical to an
# uninterrupted run of the same config on as many ranks.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
. "$BTRM_SRCDIR/tests/slurm/lib-slurm.sh"
slurm_up
plan 11
cd "$WORK"
"$BTRM" synth train.h5 --pairs 4000 --dim 64 --seed 5 >synth.log 2>&1
cat > long.yaml <<'YAML'
run: {name: long, seed: 3}
data: {train: train.h5}
model: {head: mlp, hidden: [128, 32]}
train: {global_batch: 128, steps: 600, log_every: 20}
YAML
run_cmd ref.log mpi 2 "$BTRM" train long.yaml --set run.out_dir=ref -q
expect_rc 0 "the uninterrupted reference run (2 ranks)"

t0=$SECONDS
# rank 0 waits at step 60 until the signal lands (src/core/fault.h), so the
# run cannot end first on a loaded machine; the requeued job starts past it
job=$(BTRM_LAUNCHER=mpirun BTRM_FAULT=step,step=60,action=wait submit --ntasks=2 --time=5 \
    --output=job.out "$BTRM_SRCDIR/slurm/train.sbatch" long.yaml --set run.out_dir=run)
ok $? "train.sbatch submitted (job ${job:-none})"
# without a job every check below must fail, quickly: no waiting for nothing
[ -n "$job" ] || diag "the submission failed: every check that needs the job fails"
for ((i = 0; i < 1200 && ${#job}; i++)); do grep -q 'fault injection at step' job.out 2>/dev/null && break; sleep 0.1; done
pass_if "training is under way (step 60 after $((SECONDS - t0)) s)" grep -q 'fault injection at step' job.out
[ -z "$job" ] || scancel --signal=USR1 --batch "$job"
# the script requeues the job; skip the requeue delay (cred_expire) once it pends
requeued=1
for ((i = 0; i < 120 && ${#job}; i++)); do
    if [ "$(job_field "$job" Restarts)" = 1 ] && [ "$(job_field "$job" JobState)" = PENDING ]; then
        # not within the second of the requeue: slurmd refuses a launch whose
        # credential is no newer (in whole seconds) than the revocation of the
        # job's last one ("Killing non-startable batch JobId=N: Job credential
        # revoked", seen once in 2026-12 when the start came 60 ms after it)
        sleep 2
        scontrol update jobid="$job" starttime=now 2>/dev/null
        requeued=0
        break
    fi
    sleep 0.5
done
ok $requeued "the job is requeued (Restarts=1) after $((SECONDS - t0)) s"
deadline=$((SECONDS + 240))
while [ -n "$job" ] && [ $SECONDS -lt $deadline ]; do
    case $(job_field "$job" JobState) in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
    sleep 1
done
state=$(job_field "$job" JobState)
pass_if "the requeued job completes (JobState=${state:-none}, $((SECONDS - t0)) s)" test "$state" = COMPLETED
expect_grep 'got SIGUSR1: sending SIGUSR1 to the launcher' job.out "the batch script got USR1 and forwarded it"
expect_grep 'btrm-slurm: btrm exited with 75' job.out "btrm checkpointed and exited with 75"
expect_grep "btrm-slurm: \\+ scontrol requeue $job" job.out "the script requeued its job"
expect_grep 'restart 1, ' job.out "the job ran again (SLURM_RESTART_COUNT=1)"
expect_grep 'btrm: resuming from run/checkpoints/step-' job.out "... and resumed from the checkpoint"
pass_if "final.h5 is bitwise identical to the uninterrupted run" cmp ref/final.h5 run/final.h5
[ -f run/final.h5 ] || sed 's/^/# /' job.out
done_testing
