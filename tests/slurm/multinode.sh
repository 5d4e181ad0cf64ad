#!/bin/bash
# slurm/train.sbatch on 2 nodes (--nodes=2, 2 ranks each): the run sees 2
# nodes (each with its own node-shared copy of the features) and trains the
# same model as 1 rank up to summation order. Needs a Slurm with at least 2
# nodes in its default partition (BTRM_TEST_SLURM=existing on a cluster); the
# single-node Slurm of tools/slurm-localhost.sh skips it. Two slurmd on one
# host (Slurm's MULTIPLE_SLURMD) give Slurm 2 nodes, but Open MPI 4.1 cannot
# run one job's ranks as 2 nodes of one host (PMIx and shared-memory names
# collide), so tests/multinode.sh covers the multi-node logic on one machine
# with BTRM_TEST_RANKS_PER_NODE instead (docs/reliability.md).
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
. "$BTRM_SRCDIR/tests/slurm/lib-slurm.sh"
slurm_up
nodes=$(sinfo -h -N -o '%N %T' 2>/dev/null | awk '$2 ~ /^(idle|mixed|allocated|completing)/' | wc -l)
[ "$nodes" -ge 2 ] || skip_all "the Slurm here offers $nodes usable node(s); --nodes=2 needs 2 (a cluster: BTRM_TEST_SLURM=existing)"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 5
cd "$WORK"
"$BTRM" synth train.h5 --pairs 1500 --dim 24 --seed 3 >synth.log 2>&1
cat > run.yaml <<'YAML'
run: {name: twonodes, seed: 5}
data: {train: train.h5}
model: {head: mlp, hidden: [16]}
loss: {type: normbt}
optim: {type: adamw, lr: 0.003}
train: {global_batch: 60, steps: 40, log_every: 10}
YAML
run_cmd one.log "$BTRM" train run.yaml --set run.out_dir=one -q
expect_rc 0 "the 1-rank reference run"
job=$(submit --nodes=2 --ntasks-per-node=2 --overcommit --time=5 --output=job.out \
    "$BTRM_SRCDIR/slurm/train.sbatch" run.yaml --set run.out_dir=two)
[ -n "$job" ] || diag "the submission failed: every check that needs the job fails"
wait_gone "$job" 300
pass_if "the 2-node job completes ($(job_field "$job" JobState) $(job_field "$job" ExitCode))" \
    test "$(job_field "$job" JobState) $(job_field "$job" ExitCode)" = "COMPLETED 0:0"
expect_grep '4 ranks on 2 nodes' job.out "btrm sees 4 ranks on 2 nodes"
pass_if "it wrote final.h5" test -s two/final.h5
d=$(/usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" reldiff one/final.h5 two/final.h5 2>/dev/null || echo 1)
pass_if "2 nodes x 2 ranks vs 1 rank: relative parameter difference $d <= 1e-4" \
    awk "BEGIN{exit !($d <= 1e-4)}"
done_testing
