#!/bin/bash
# More than one node on one machine: BTRM_TEST_RANKS_PER_NODE (src/comm/comm.h)
# splits the node communicator so that 4 ranks act as 2 nodes x 2 ranks, each
# node with its own shared window and its own copy of the features. Training
# on "2 nodes" gives the same bits as on 1 node with the same rank count (the
# arithmetic does not depend on where the features sit), and the same model
# as 1 rank up to summation order; float16 stores and uneven nodes (3 ranks
# as 2 + 1) too; a bad value is refused on every rank.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 13
cd "$WORK"
"$BTRM" synth train.h5 --pairs 1500 --dim 24 --seed 3 >synth.log 2>&1
"$BTRM" synth half.h5 --pairs 1500 --dim 24 --seed 3 --f16 >>synth.log 2>&1
"$BTRM" synth test.h5 --pairs 300 --dim 24 --seed 4 >>synth.log 2>&1
cat > run.yaml <<YAML
run: {name: multinode, seed: 5}
data: {train: train.h5, eval: [test.h5]}
model: {head: mlp, hidden: [16]}
loss: {type: normbt}
optim: {type: adamw, lr: 0.003}
train: {global_batch: 60, steps: 40, log_every: 10}
YAML
train() { # train OUT NP [RANKS_PER_NODE] [--set ...]
    local out=$1 np=$2 k=$3; shift 3
    run_cmd $out.log env BTRM_TEST_RANKS_PER_NODE=$k "$BTRM_MPIRUN" $np "$BTRM" train run.yaml \
        --set run.out_dir=$out "$@"
}
reldiff() { /usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" reldiff "$1" "$2"; }

train one 1 0
expect_rc 0 "1 rank trains"
train flat 4 0
expect_rc 0 "4 ranks on one node train"
expect_grep '4 ranks on 1 node[,)]' flat.log "without the split the 4 ranks share one node"
train split 4 2
expect_rc 0 "4 ranks as 2 nodes x 2 ranks train"
expect_grep '4 ranks on 2 nodes' split.log "BTRM_TEST_RANKS_PER_NODE=2 makes 2 nodes of 4 ranks"
pass_if "2 nodes x 2 ranks and 1 node x 4 ranks: bitwise-identical final.h5" \
    cmp -s flat/final.h5 split/final.h5
d=$(reldiff one/final.h5 split/final.h5)
pass_if "2 nodes x 2 ranks vs 1 rank: relative parameter difference $d <= 1e-4" \
    awk "BEGIN{exit !($d <= 1e-4)}"
acc_one=$(/usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" json one/eval.jsonl accuracy)
acc_split=$(/usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" json split/eval.jsonl accuracy)
pass_if "the evaluation on 2 nodes matches 1 rank (accuracy $acc_split vs $acc_one)" \
    awk "BEGIN{d=$acc_split-$acc_one; exit !(d < 0.005 && d > -0.005)}"

train uneven 3 2 --set data.train=half.h5
expect_rc 0 "3 ranks as nodes of 2 + 1 train on a float16 store"
expect_grep '3 ranks on 2 nodes' uneven.log "3 ranks with 2 per node make 2 nodes"
train uneven1 1 0 --set data.train=half.h5
d=$(reldiff uneven1/final.h5 uneven/final.h5)
pass_if "nodes of 2 + 1 ranks vs 1 rank on float16 features: relative difference $d <= 1e-4" \
    awk "BEGIN{exit !($d <= 1e-4)}"

train bad 2 two
expect_rc 2 "BTRM_TEST_RANKS_PER_NODE=two is a usage error"
expect_grep 'BTRM_TEST_RANKS_PER_NODE=two: want a number of ranks per node' bad.log \
    "the message names the variable and what it wants"
done_testing
