#!/bin/bash
# The whole pipeline on real data: HH-RLHF harmless-base (../shared/data) ->
# shape-2 JSONL -> btrm prep (category map, prompt-hash split) -> btrm embed
# (hash, 2 ranks) -> btrm train configs/experiments/hh-harmless.yaml (2 ranks)
# -> evaluation with per-category accuracy.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
hh=$BTRM_SHARED/data/hh-rlhf/harmless-base/test.jsonl.gz
[ -f "$hh" ] || skip_all "no $hh (the shared data folder is absent: data-prep/fetch.sh --data fetches it)"
plan 12
cd "$WORK"
run_cmd conv.log /usr/bin/python3 "$BTRM_SRCDIR/data-prep/hh-rlhf.py" --data-dir "$BTRM_SHARED/data" -o hh.jsonl
expect_rc 0 "the HH-RLHF converter"
run_cmd prep.log "$BTRM" prep hh.jsonl --category-map "$BTRM_SRCDIR/configs/categories/realbench.yaml" \
    --split 0.8 --valid-out hh-test-text.h5 -o hh-train-text.h5
expect_rc 0 "btrm prep with a category map and a split"
for side in train test; do
    run_cmd embed-$side.log mpi 2 "$BTRM" embed hh-$side-text.h5 -o hh-$side.h5 --backbone hash --dim 1024
    expect_rc 0 "btrm embed $side on 2 ranks"
done
count() { "$BTRM" inspect "$1" | sed -n 's/^  \([0-9]*\) pairs over.*/\1/p'; }
n_train=$(count hh-train.h5) n_test=$(count hh-test.h5)
pass_if "train + test = 2312 pairs ($n_train + $n_test)" test $((n_train + n_test)) -eq 2312
pass_if "the split keeps most pairs for training" test "$n_train" -gt "$n_test"
run_cmd train.log mpi 2 "$BTRM" train "$BTRM_SRCDIR/configs/experiments/hh-harmless.yaml" \
    --set data.train=hh-train.h5 --set 'data.eval=[hh-test.h5]' --set run.out_dir=out --set train.epochs=1
expect_rc 0 "btrm train configs/experiments/hh-harmless.yaml on 2 ranks"
expect_grep '"status": "ok"' out/summary.json "the run finished"
last=$(tail -n 1 out/eval.jsonl)
echo "$last" > last.json
expect_grep "\"n_pairs\": *$n_test," last.json "the evaluation covers every test pair"
expect_grep '"by_category": *\{"Safety": *\{"n": *'"$n_test"', *"accuracy": *[0-9.]+' last.json \
    "accuracy is reported per category (Safety)"
acc=$(sed 's/.*"n_pairs": *[0-9]*, *"accuracy": *\([0-9.]*\),.*/\1/' last.json)
pass_if "test accuracy $acc is a real number in (0.4, 1]" awk "BEGIN{exit !($acc > 0.4 && $acc <= 1)}"
run_cmd eval.log mpi 2 "$BTRM" eval out/final.h5 hh-test.h5
expect_grep "category Safety" eval.log "btrm eval prints the category"
done_testing
