#!/bin/bash
# A run that fails under Slurm (its training store does not exist): the job
# exits with btrm's code 1, is not requeued, and btrm report lists the run as
# failed with its error next to a finished one.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
. "$BTRM_SRCDIR/tests/slurm/lib-slurm.sh"
slurm_up
plan 7
cd "$WORK"
"$BTRM" synth train.h5 --pairs 300 --dim 8 --seed 1 >synth.log 2>&1
cat > good.yaml <<'YAML'
run: {name: good, out_dir: runs/good}
data: {train: train.h5, eval: [train.h5]}
train: {global_batch: 100, steps: 10}
YAML
cat > bad.yaml <<'YAML'
run: {name: bad, out_dir: runs/bad}
data: {train: no-such-store.h5}
train: {global_batch: 100, steps: 10}
YAML
good=$(submit --ntasks=1 --time=5 --output=good.out "$BTRM_SRCDIR/slurm/train.sbatch" good.yaml)
bad=$(submit --ntasks=1 --time=5 --output=bad.out "$BTRM_SRCDIR/slurm/train.sbatch" bad.yaml)
pass_if "both jobs submitted" test -n "$good" -a -n "$bad"
wait_gone "$good" 120 && wait_gone "$bad" 120
ok $? "both jobs end"
pass_if "the bad run's job FAILED with exit code 1:0 ($(job_field "$bad" JobState) $(job_field "$bad" ExitCode))" \
    test "$(job_field "$bad" JobState) $(job_field "$bad" ExitCode)" = "FAILED 1:0"
pass_if "... and was not requeued (Restarts=$(job_field "$bad" Restarts))" test "$(job_field "$bad" Restarts)" = 0
run_cmd report.md "$BTRM" report runs
expect_grep '^2 runs: 1 ok, 1 failed\.' report.md "btrm report counts the failed run"
expect_grep '^\| runs/bad \| failed \| unknown \| (bt|unknown) \| (1|\?) \| .*no-such-store\.h5' report.md \
    "... and lists it with its error"
expect_grep '^\| synth \| bt \| 1 \| 1 \| ' report.md "... next to the finished run"
done_testing
