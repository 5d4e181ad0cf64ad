#!/bin/bash
# Bad pair stores and configs end the whole job with a clear message on every
# rank count, never a hang (each run is bounded by `timeout`).
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 23
cd "$WORK"
"$BTRM" synth good.h5 --pairs 200 --dim 8 --seed 1 >synth.log 2>&1
"$BTRM" synth dim16.h5 --pairs 50 --dim 16 --seed 2 >>synth.log 2>&1
cat > run.yaml <<YAML
run: {name: errors, out_dir: out}
data: {train: good.h5}
train: {steps: 3}
YAML
h5tool() { /usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" "$@"; }
# kind | pattern the message must match
while IFS='|' read -r kind pattern; do
    h5tool damage good.h5 $kind.h5 $kind
    run_cmd $kind.log timeout 120 "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml --set data.train=$kind.h5
    expect_rc 1 "$kind: exit 1 on 2 ranks"
    expect_grep "$pattern" $kind.log "$kind: message names the problem"
done <<'KINDS'
chosen_eq_rejected|chosen.*rejected.*row|same row
index_out_of_range|out of range
nan_used_row|(NaN|non-finite|not finite)
no_features|btrm embed
no_chosen|/pairs/chosen
wrong_format|btrm_format
chosen_float|/pairs/chosen
length_mismatch|/pairs/rejected
KINDS
h5tool damage good.h5 nan_unused.h5 nan_unused_row
run_cmd nan_unused.log timeout 120 "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml --set data.train=nan_unused.h5
expect_rc 0 "NaN in a row no pair uses is accepted"
run_cmd missing.log timeout 120 "$BTRM_MPIRUN" 3 "$BTRM" train run.yaml --set data.train=nope.h5
expect_rc 1 "missing training file: exit 1 on 3 ranks"
expect_grep "nope.h5" missing.log "missing file is named"
expect_grep '"status": "failed"' out/summary.json "summary.json of the failed run says failed"
run_cmd dim.log timeout 120 "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml --set 'data.eval=[dim16.h5]'
expect_rc 1 "eval file with another feature dim: exit 1"
expect_grep "dim16.h5.*dim 16.*dim 8" dim.log "dim mismatch names both files' dims"
run_cmd cfg.log timeout 120 "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml --set optim.lr=abc
expect_rc 2 "bad --set: exit 2 on 2 ranks"
done_testing
