#!/bin/bash
# train.precision: bf16 against a float64 reference (tests/train_ref.py) that
# trains the same mlp head full-batch for 200 steps, once exactly and once
# with every hidden-layer GEMM input rounded to bfloat16 as btrm rounds it.
# The distance between those two references is the floor: the error that
# bf16 inputs cost any implementation. btrm bf16 must be within 10x the floor
# of the exact reference, and much closer to the rounding reference than the
# floor (it rounds what the reference rounds, nothing else); btrm fp32 must
# match the exact reference to float32 accuracy. Then 1, 2 and 3 ranks in
# bf16 agree as they do in fp32, and 2 ranks twice are bitwise identical.
# Distances are between the trained heads as functions: the RMS difference of
# their rewards on the training rows, relative to the RMS reward.
# A linear head on bfloat16 features (read as stored, no oneDNN needed) trains
# as on a float32 store of the same values, on 1 and 2 ranks. Without oneDNN:
# bf16 is refused, naming the library.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
cd "$WORK"
"$BTRM" synth train.h5 --pairs 600 --dim 48 --seed 5 >synth.log 2>&1
cat > mlp.yaml <<YAML
run: {name: bf16, seed: 7}
data: {train: train.h5}
model: {head: mlp, hidden: [32, 16], activation: gelu}
loss: {type: normbt}
optim: {type: adamw, lr: 0.001, schedule: cosine, warmup_steps: 10, grad_clip: 1.0}
train: {global_batch: all, steps: 200, log_every: 50}
YAML
# a linear head on bfloat16 features reads them as stored (no oneDNN needed):
# the same training as on a float32 store of the same values, on 1 and 2 ranks
"$BTRM" synth lin16.h5 --pairs 600 --dim 40 --seed 6 --features-dtype bf16 >>synth.log 2>&1
/usr/bin/python3 - <<'PY'
import shutil, h5py, numpy as np
shutil.copyfile("lin16.h5", "lin32.h5")
with h5py.File("lin32.h5", "r+") as f:
    x = f["features"][()]          # bfloat16 read as float32: exact
    attrs = dict(f["features"].attrs)
    del f["features"]
    d = f.create_dataset("features", data=x.astype(np.float32))
    for k, v in attrs.items():
        d.attrs[k] = v
PY
cat > lin.yaml <<YAML
run: {name: lin16, seed: 3}
model: {head: linear}
loss: {type: normbt}
optim: {type: adamw, lr: 0.003}
train: {global_batch: 64, steps: 100, log_every: 50}
YAML
linear_bf16_features() {
    run_cmd lin16.log "$BTRM" train lin.yaml --set data.train=lin16.h5 --set run.out_dir=lin16
    run_cmd lin32.log "$BTRM" train lin.yaml --set data.train=lin32.h5 --set run.out_dir=lin32
    run_cmd lin16-2.log mpi 2 "$BTRM" train lin.yaml --set data.train=lin16.h5 --set run.out_dir=lin16-2
    d=$(/usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" reldiff lin32/final.h5 lin16/final.h5)
    pass_if "linear head: bf16 features as stored train as their float32 values ($d <= 1e-5)" \
        awk "BEGIN{exit !($d <= 1e-5)}"
    d=$(/usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" reldiff lin16/final.h5 lin16-2/final.h5)
    pass_if "linear head on bf16 features: 1 vs 2 ranks ($d <= 1e-5)" awk "BEGIN{exit !($d <= 1e-5)}"
}
if ! "$BTRM" --version | grep -q 'bf16 yes'; then
    plan 4
    linear_bf16_features
    run_cmd nodnnl.log "$BTRM" train mlp.yaml --set train.precision=bf16 --set run.out_dir=nodnnl
    expect_rc 2 "train.precision: bf16 without oneDNN is a config error"
    expect_grep 'train.precision: bf16: .*oneDNN' nodnnl.log "the error names the key and oneDNN"
    done_testing
    exit
fi
plan 17
linear_bf16_features
REF="/usr/bin/python3 $BTRM_SRCDIR/tests/train_ref.py"
run_cmd init.log "$BTRM" train mlp.yaml --set train.steps=0 --set run.out_dir=init
expect_rc 0 "the initial model (train.steps: 0)"
for p in fp32 bf16; do
    run_cmd $p.log "$BTRM" train mlp.yaml --set train.precision=$p --set run.out_dir=$p -v
    expect_rc 0 "200 full-batch steps in $p on 1 rank"
done
# oneDNN 2.6 has bf16 matmuls (brgemm) from AVX-512 up; below, the rounded
# inputs go through the fp32 sgemm, and the run says so
pass_if "summary.json records bf16, its route and, per GEMM shape, the implementation that ran" \
    /usr/bin/python3 -c '
import json, sys
c = json.load(open("bf16/summary.json"))["compute"]
g = [s for s in c["gemm"] if s["precision"] == "bf16"]
avx512 = c["isa"].startswith("avx512") or "amx" in c["isa"] or "avx10" in c["isa"]
impl = (lambda i: i.startswith("brg:")) if avx512 else (lambda i: i == "dnnl_sgemm of bf16 inputs")
route = "oneDNN bf16 matmul" if avx512 else "fp32 sgemm of bf16-rounded inputs"
sys.exit(not (c["precision"] == "bf16" and c["isa"] and len(g) >= 3 and
              c["bf16_route"].startswith(route) and all(impl(s["impl"]) for s in g)))'

expect_grep 'gemm bf16 NT 1200x32x48: ' bf16.log "-v logs each bf16 GEMM shape"
$REF train.h5 init/final.h5 ref64.h5 --steps 200 --warmup 10 --clip 1.0 >ref.log 2>&1 &&
$REF train.h5 init/final.h5 ref64b.h5 --steps 200 --warmup 10 --clip 1.0 --bf16 >>ref.log 2>&1
ok $? "the float64 references train (exact, and with bf16-rounded GEMM inputs)"
floor=$($REF --compare train.h5 ref64.h5 ref64b.h5)
e32=$($REF --compare train.h5 ref64.h5 fp32/final.h5)
e16=$($REF --compare train.h5 ref64.h5 bf16/final.h5)
e16b=$($REF --compare train.h5 ref64b.h5 bf16/final.h5)
diag "floor (bf16 reference vs exact) $floor; btrm fp32 vs exact $e32; btrm bf16 vs exact $e16; btrm bf16 vs the bf16 reference $e16b"
pass_if "fp32: btrm is within 1e-5 of the exact float64 reference ($e32)" awk "BEGIN{exit !($e32 <= 1e-5)}"
pass_if "bf16: btrm is within 10x the floor ($floor) of the exact reference ($e16)" \
    awk "BEGIN{exit !($floor > 0 && $e16 <= 10 * $floor)}"
pass_if "bf16: btrm is within a quarter of the floor of the bf16-rounding reference ($e16b)" \
    awk "BEGIN{exit !($e16b <= 0.25 * $floor)}"
for np in 2 3; do
    run_cmd bf16-$np.log mpi $np "$BTRM" train mlp.yaml --set train.precision=bf16 --set run.out_dir=bf16-$np
    expect_rc 0 "bf16 on $np ranks"
done
for np in 2 3; do
    d=$($REF --compare train.h5 bf16/final.h5 bf16-$np/final.h5)
    pass_if "bf16: 1 vs $np ranks agree up to summation order ($d <= floor/4 = $floor/4)" \
        awk "BEGIN{exit !($d <= 0.25 * $floor)}"
done
run_cmd again.log mpi 2 "$BTRM" train mlp.yaml --set train.precision=bf16 --set run.out_dir=bf16-2b
pass_if "bf16, same config and rank count twice: bitwise-identical final.h5" \
    cmp -s bf16-2/final.h5 bf16-2b/final.h5
# resume: the bf16 copy of the weights is remade from the checkpoint's float32
# parameters, the same rounding the optimizer's pass gives
run_cmd ck.log "$BTRM" train mlp.yaml --set train.precision=bf16 --set run.out_dir=ck \
    --set train.steps=40 --set checkpoint.every=20
cp -r ck ck-cut
rm ck-cut/checkpoints/step-00000040.h5 ck-cut/final.h5
run_cmd ck2.log "$BTRM" train mlp.yaml --set train.precision=bf16 --set run.out_dir=ck-cut \
    --set train.steps=40 --set checkpoint.every=20 --resume auto
pass_if "bf16: resuming from step 20 ends bitwise identical to the uninterrupted run" \
    cmp -s ck/final.h5 ck-cut/final.h5
done_testing
