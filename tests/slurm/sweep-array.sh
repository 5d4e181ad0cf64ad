#!/bin/bash
# A 4-run sweep (loss x seed) submitted with the line btrm sweep prints, as a
# Slurm array through slurm/sweep.sbatch; every run finishes and btrm report
# lists all four; a finished run submitted again is skipped.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
. "$BTRM_SRCDIR/tests/slurm/lib-slurm.sh"
slurm_up
plan 12
cd "$WORK"
"$BTRM" synth train.h5 --pairs 600 --dim 16 --seed 1 >synth.log 2>&1
"$BTRM" synth test.h5 --pairs 300 --dim 16 --seed 2 >>synth.log 2>&1
cat > base.yaml <<'YAML'
data: {train: train.h5, eval: [test.h5]}
optim: {lr: 0.01}
train: {global_batch: 100, steps: 30, log_every: 10}
YAML
cat > four.sweep.yaml <<'YAML'
base: base.yaml
grid:
  loss.type: [bt, normbt]
  run.seed: [1, 2]
YAML
run_cmd sweep.out "$BTRM" sweep four.sweep.yaml -o sw --max-running 4
expect_rc 0 "btrm sweep writes 4 runs"
line=$(grep '^sbatch ' sweep.out)
expect_grep "^sbatch --array=0-3%4 --job-name=four --output=sw/logs/%A_%a\.out $BTRM_SRCDIR/slurm/sweep\.sbatch sw\$" \
    sweep.out "it prints the sbatch line"
# the printed line, with this machine's sizes: one rank per task, a time limit
read -r -a words <<<"$line"
t0=$SECONDS
job=$(submit --ntasks=1 --time=5 "${words[@]:1}")
ok $? "the array is submitted (job ${job:-none})"
wait_gone "$job" 240
ok $? "every task leaves the queue ($((SECONDS - t0)) s)"
states=$(scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z]*' | sort | uniq -c | tr -s ' ')
pass_if "all 4 tasks COMPLETED (${states:-no record})" test "$states" = " 4 JobState=COMPLETED"
n_ok=$(grep -l '"status": "ok"' sw/runs/*/summary.json 2>/dev/null | wc -l)
pass_if "every run's summary.json says ok ($n_ok of 4)" test "$n_ok" -eq 4
expect_grep 'btrm-slurm: \+ .*btrm train sw/runs/0003/config\.yaml --resume auto' sw/logs/"${job}"_3.out \
    "task 3 ran run 3 through sweep.sbatch"
run_cmd report.md "$BTRM" report sw
expect_grep '^4 runs: 4 ok\.' report.md "btrm report lists all four runs"
expect_grep '^\| synth \| bt \| 2 \| 1 2 \| ' report.md "... the bt row over seeds 1 and 2"
expect_grep '^\| synth \| normbt \| 2 \| 1 2 \| ' report.md "... and the normbt row"
run_cmd again.out "$BTRM" sweep four.sweep.yaml -o sw
expect_grep 'all 4 runs are finished' again.out "btrm sweep again: nothing left to submit"
job2=$(submit --ntasks=1 --time=5 --array=2 --output=sw/logs/again-%a.out \
    "$BTRM_SRCDIR/slurm/sweep.sbatch" sw)
wait_gone "$job2" 120
expect_grep 'run 2 is already finished' sw/logs/again-2.out "a finished run submitted again is skipped"
done_testing
