#!/bin/bash
# optim.type newton: the unit test program on 2 and 3 ranks (the optimum on all
# ranks = on MPI_COMM_SELF, the block-cyclic Gram matrix and solve in 1x2 and
# 1x3 grids), then `btrm train` end to end on 1, 2 and 3 ranks: the same
# optimum, one metrics line per Newton iteration, convergence, and config
# errors.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
cd "$WORK"
plan 15
test_newton="$(dirname "$BTRM")/../tests/test-newton"
for np in 2 3; do
    run_cmd unit-$np.log mpi $np "$test_newton"
    expect_rc 0 "tests/test-newton on $np ranks (same optimum as one rank, grids 1x$np)"
    [ "$rc" -eq 0 ] || grep -E '^not ok|^#' unit-$np.log | head -20 | sed 's/^/# /'
done
cd "$WORK"
"$BTRM" synth train.h5 --pairs 2000 --dim 24 --seed 3 --margins >synth.log 2>&1
"$BTRM" synth test.h5 --pairs 500 --dim 24 --seed 4 >>synth.log 2>&1
cat > newton.yaml <<YAML
run: {name: nt, seed: 3}
data: {train: train.h5, eval: [test.h5]}
model: {head: linear}
loss: {type: normbt, margin: data}
optim: {type: newton, weight_decay: 0.001, tol: 1e-9}
YAML
run_cmd probe.log "$BTRM" train newton.yaml --set run.out_dir=probe
pass_if "btrm train runs optim.type newton (per-iteration phase timings logged)" \
    grep -q '"t_factor"' probe/metrics.jsonl
for np in 1 2 3; do
    run_cmd train-$np.log mpi $np "$BTRM" train newton.yaml --set run.out_dir=nt-$np
    expect_rc 0 "newton trains on $np rank(s)"
done
expect_grep 'newton: converged in [0-9]+ steps' train-1.log "converges (optim.tol 1e-9)"
steps=$(grep -c . nt-1/metrics.jsonl)
last=$(tail -n 1 nt-1/metrics.jsonl)
pass_if "metrics.jsonl: one line per iteration from 0 ($steps lines, <= 15)" \
    test "$steps" -ge 3 -a "$steps" -le 15
case $last in *'"step_size":1.0'*'"t_form":'*'"t_factor":'*'"t_other":'*) r=0 ;; *) r=1 ;; esac
ok $r "metrics lines carry step_size and the phase times"
expect_grep '"status": "ok"' nt-1/summary.json "summary.json status ok"
pass_if "eval.jsonl written at the end" test -s nt-1/eval.jsonl
if have_python_h5py; then
    for np in 2 3; do
        d=$(/usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" reldiff nt-1/final.h5 nt-$np/final.h5)
        pass_if "1 vs $np ranks: relative parameter difference $d <= 1e-6" \
            awk "BEGIN{exit !($d <= 1e-6)}"
    done
else
    skip "python3 h5py/numpy not installed"; skip "python3 h5py/numpy not installed"
fi
run_cmd mlp.log "$BTRM" train newton.yaml --set run.out_dir=mlp --set model.head=mlp \
    --set 'model.hidden=[8]'
expect_rc 2 "newton with an mlp head is a config error"
expect_grep "needs model.head 'linear'" mlp.log "the message says newton needs a linear head"
done_testing
