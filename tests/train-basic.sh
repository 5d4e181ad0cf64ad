#!/bin/bash
# btrm train end to end on synthetic data: outputs, learning, steps: 0, --init.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
plan 16
cd "$WORK"
"$BTRM" synth train.h5 --pairs 2000 --dim 32 --seed 11 --separable >synth.log 2>&1
"$BTRM" synth test.h5 --pairs 500 --dim 32 --seed 12 --separable >>synth.log 2>&1
cat > run.yaml <<YAML
run: {name: basic, out_dir: out, seed: 3}
data: {train: train.h5, eval: [test.h5]}
model: {head: linear}
loss: {type: bt}
optim: {type: adamw, lr: 0.05, weight_decay: 0.0}
train: {global_batch: 100, epochs: 5, log_every: 10, eval_every: 50}
YAML
run_cmd train.log mpi 2 "$BTRM" train run.yaml
expect_rc 0 "train on 2 ranks succeeds"
for f in config.yaml metrics.jsonl eval.jsonl final.h5 summary.json; do
    pass_if "out/$f written" test -s "out/$f"
done
pass_if "metrics.jsonl has one line per 10 steps (100 steps)" test "$(wc -l <out/metrics.jsonl)" -eq 10
pass_if "metrics lines carry every documented key" \
    grep -q '"step": *100.*"epoch".*"loss".*"acc".*"lr".*"grad_norm".*"dist_mean".*"dist_ema".*"weight_mean".*"weight_max".*"pairs_per_s"' out/metrics.jsonl
pass_if "eval.jsonl has the step-50 and final evaluations" test "$(wc -l <out/eval.jsonl)" -eq 2
expect_grep '"status": "ok"' out/summary.json "summary.json says ok"
expect_grep '"ranks": 2' out/summary.json "summary.json records the rank count"
acc=$(sed -n '$p' out/eval.jsonl | sed 's/.*"accuracy": *\([0-9.e-]*\).*"loss".*/\1/' | head -c 12)
pass_if "separable data reaches >= 95% test accuracy (got $acc)" awk "BEGIN{exit !($acc >= 0.95)}"
run_cmd cfg.log "$BTRM" config out/config.yaml
pass_if "the written config.yaml loads back to the same config" cmp -s cfg.log out/config.yaml

run_cmd zero.log "$BTRM" train run.yaml --set train.steps=0 --set run.out_dir=zero
expect_rc 0 "train.steps: 0 succeeds"
pass_if "train.steps: 0 writes the initial model as final.h5" test -s zero/final.h5
run_cmd init.log mpi 2 "$BTRM" train run.yaml --init out/final.h5 --set run.out_dir=init --set train.steps=1 --set optim.lr=1e-12
loss_of() { sed -n '$p' "$1" | sed 's/.*"loss": *\([0-9.e+-]*\).*/\1/'; }
l1=$(loss_of out/eval.jsonl) l2=$(loss_of init/eval.jsonl)
pass_if "--init starts from the given weights (test loss $l2 == $l1 after a no-op step)" \
    awk "BEGIN{d=($l2-$l1)/$l1; exit !(d < 1e-3 && d > -1e-3)}"
done_testing
