#!/bin/bash
# The same config on 1, 2 and 3 ranks trains the same model up to summation
# order; the same rank count twice gives bitwise-identical files.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 12
cd "$WORK"
"$BTRM" synth train.h5 --pairs 3000 --dim 48 --seed 5 >synth.log 2>&1
cat > linear.yaml <<YAML
run: {name: linear, seed: 7}
data: {train: train.h5}
model: {head: linear}
loss: {type: normbt}
optim: {type: adamw, lr: 0.001, schedule: cosine, warmup_steps: 10, grad_clip: 1.0}
train: {global_batch: 64, steps: 200, log_every: 50}
YAML
cat > mlp.yaml <<YAML
base: linear.yaml
run: {name: mlp}
model: {head: mlp, hidden: [32, 16], activation: gelu}
loss: {type: bt, center_rewards: 0.01}
YAML
for cfg in linear mlp; do
    for np in 1 2 3; do
        run_cmd $cfg-$np.log mpi $np "$BTRM" train $cfg.yaml --set run.out_dir=$cfg-$np
        expect_rc 0 "$cfg head trains on $np rank(s)"
    done
done
tol_linear=1e-5 tol_mlp=1e-4
for cfg in linear mlp; do
    tol=tol_$cfg; tol=${!tol}
    for np in 2 3; do
        d=$(/usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" reldiff $cfg-1/final.h5 $cfg-$np/final.h5)
        pass_if "$cfg: 1 vs $np ranks, relative parameter difference $d <= $tol" \
            awk "BEGIN{exit !($d <= $tol)}"
    done
done
run_cmd again.log mpi 2 "$BTRM" train mlp.yaml --set run.out_dir=mlp-2b
pass_if "same config and rank count twice: bitwise-identical final.h5" cmp -s mlp-2/final.h5 mlp-2b/final.h5
# timing fields aside, the metrics are identical too
strip() { sed 's/"pairs_per_s":[^,}]*//' "$1"; }
pass_if "same config twice: identical metrics.jsonl (timing aside)" \
    cmp -s <(strip mlp-2/metrics.jsonl) <(strip mlp-2b/metrics.jsonl)
done_testing
