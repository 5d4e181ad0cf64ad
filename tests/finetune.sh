#!/bin/bash
# btrm train with model.backbone (docs/training.md, "Fine-tuning the
# backbone"), on stories260K and tiny synthetic GGUF models:
#  - step 0: LoRA, top_k and the frozen backbone score every text bitwise alike
#    (btrm score; btrm eval for LoRA and frozen);
#  - LoRA (linear head, NormBT, micro-batches of 4 pairs: the forward runs
#    several times per step) on 1, 2 and 3 ranks agrees within 1e-4 after 50
#    AdamW steps, top-2 (mlp head, BT) on 1 and 3 ranks after 30; the same
#    rank count twice is bitwise identical; recompute gives bitwise the same
#    model; micro-batches of 1 pair and the whole share give the same SGD
#    step up to summation order;
#  - SIGUSR1 -> checkpoint and exit 75 -> --resume auto ends bitwise identical
#    to an uninterrupted run;
#  - the token-id cache: written once, read by the next run;
#  - train.eval_every: d-quintile gradient shares of the moving representations;
#  - btrm eval, analyze and score of a fine-tuned model file compute the
#    representations themselves; a changed base file is refused (resume, eval);
#  - a Q8_0 base trains (the adapters on a quantised model);
#  - bad input fails on every rank with a clear message and no hang: a
#    backbone spec that does not load, a store without /texts, an unknown
#    target, a non-llama architecture, LoRA rank 0 or larger than the
#    dimension; no final.h5 is left behind.
# Skips when $BTRM_SHARED/models/stories260K is absent.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
M="$BTRM_SHARED/models/stories260K"
[ -f "$M/stories260K.gguf" ] || skip_all "stories260K not found in $M"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 48
cd "$WORK" || exit 1
PY=/usr/bin/python3
t120() { timeout 120 "$@"; }
tmpi() { timeout 120 "$BTRM_MPIRUN" "$@"; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
# the largest max|a-b| / max|a| over the tensors of /model and /backbone
reldiff() {
    "$PY" - "$1" "$2" <<'PY'
import sys
import h5py
import numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
worst = 0.0
for g in ("model", "backbone"):
    if g not in a:
        continue
    names = []
    a[g].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for n in names:
        x, y = a[g][n][()].astype(np.float64), b[g][n][()].astype(np.float64)
        s = np.max(np.abs(x))
        worst = max(worst, np.max(np.abs(x - y)) / s if s > 0 else np.max(np.abs(x - y)))
print("%.3e" % worst)
PY
}
# same_metrics A B: the metrics.jsonl of two runs agree, timing fields aside
same_metrics() {
    local t
    for t in "$1" "$2"; do
        sed -E 's/"(pairs_per_s|tokens_per_s|gflop_per_s|elapsed_s)":[^,}]*//g' "$t/metrics.jsonl" > "$t.metrics"
    done
    [ -s "$1.metrics" ] && cmp -s "$1.metrics" "$2.metrics"
}

"$PY" "$BTRM_SRCDIR/tests/make_text_pairs.py" 96 1 > pairs.jsonl
"$BTRM" prep -q pairs.jsonl -o pairs.h5 > prep.log 2>&1
ok $? "prep 96 synthetic pairs with texts"
GGUF="gguf:$M/stories260K.gguf"
cat > base.yaml <<YAML
run: {name: ft, seed: 5}
data: {train: pairs.h5, eval: [pairs.h5]}
model: {backbone: "$GGUF", finetune: {type: lora, rank: 4}}
embed: {max_tokens: 64}
loss: {type: normbt}
optim: {type: adamw, lr: 0.001, schedule: cosine, warmup_steps: 10, grad_clip: 1.0}
train: {global_batch: 16, steps: 50, log_every: 10, micro_batch: 4, eval_every: 25}
YAML

# --- step 0: every kind scores alike; the token cache
"$PY" -c 'import h5py, json
for i, t in enumerate(h5py.File("pairs.h5")["texts"][()]):
    print(json.dumps({"id": i, "text": t.decode() if isinstance(t, bytes) else t}))' > texts.jsonl
for t in none lora top_k; do
    run_cmd s0-$t.log t120 "$BTRM" train base.yaml --set model.finetune.type=$t \
        --set train.steps=0 --set run.out_dir=s0-$t
    t120 "$BTRM" score s0-$t/final.h5 texts.jsonl > s0-$t.jsonl 2> s0-$t.err
    [ $t = top_k ] || t120 "$BTRM" eval -q s0-$t/final.h5 pairs.h5 --json s0-$t.json > /dev/null 2>&1
done
expect_grep 'token ids cached in .*pairs\.tokens-[0-9a-f]{16}\.h5' s0-none.log \
    "the first run tokenizes and caches the token ids beside the store"
expect_grep 'token ids of pairs.h5 from .*pairs\.tokens-' s0-lora.log \
    "the next run reads them from the cache"
pass_if "the cache is a tokens-v1 file" sh -c "[ \"\$($PY $BTRM_SRCDIR/tests/h5tool.py attr \
    \$(ls pairs.tokens-*.h5) / btrm_format)\" = tokens-v1 ]"
pass_if "step 0: LoRA (B = 0) scores every text bitwise as the frozen backbone" \
    bash -c '[ -s s0-none.jsonl ] && cmp -s s0-none.jsonl s0-lora.jsonl'
pass_if "step 0: top_k (the base weights as masters) scores bitwise the same" \
    cmp -s s0-none.jsonl s0-top_k.jsonl
pass_if "step 0: btrm eval gives the same result for LoRA and the frozen backbone" \
    bash -c '[ -s s0-none.json ] && cmp -s <(grep -v model s0-none.json) <(grep -v model s0-lora.json)'
pass_if "the model file references the base by path and XXH3-128, and holds no base weights" \
    sh -c "[ \"\$($PY $BTRM_SRCDIR/tests/h5tool.py attr s0-lora/final.h5 /backbone model_hash_function)\" = XXH3-128 ] &&
           [ \$(stat -c %s s0-lora/final.h5) -lt 200000 ]"

# --- 1, 2 and 3 ranks; the same rank count twice
for np in 1 2 3; do
    run_cmd lora-$np.log tmpi $np "$BTRM" train base.yaml --set run.out_dir=lora-$np
    expect_rc 0 "LoRA, NormBT, linear head, 2 micro-batches per rank: trains on $np rank(s)"
done
for np in 2 3; do
    d=$(reldiff lora-1/final.h5 lora-$np/final.h5)
    pass_if "LoRA: 1 vs $np ranks after 50 steps, relative difference $d <= 1e-4" le "$d" 1e-4
done
cat > top2.yaml <<YAML
base: base.yaml
model: {head: mlp, hidden: [32], finetune: {type: top_k, layers: 2}}
loss: {type: bt}
train: {steps: 30}
YAML
for np in 1 3; do
    run_cmd top2-$np.log tmpi $np "$BTRM" train top2.yaml --set run.out_dir=top2-$np
done
ok $(grep -q 'done: 30 steps' top2-1.log && grep -q 'done: 30 steps' top2-3.log; echo $?) \
    "top-2 with an mlp head under BT trains on 1 and 3 ranks"
d=$(reldiff top2-1/final.h5 top2-3/final.h5)
pass_if "top-2: 1 vs 3 ranks after 30 steps, relative difference $d <= 1e-4" le "$d" 1e-4
run_cmd lora-2b.log tmpi 2 "$BTRM" train base.yaml --set run.out_dir=lora-2b
pass_if "same config on 2 ranks twice: bitwise-identical final.h5" cmp -s lora-2/final.h5 lora-2b/final.h5
pass_if "... and identical metrics.jsonl and eval.jsonl (timing fields aside)" \
    eval 'same_metrics lora-2 lora-2b && cmp -s lora-2/eval.jsonl lora-2b/eval.jsonl'
# --- train.precision: bf16: the backbone's forward and backward GEMMs in bf16
if "$BTRM" --version | grep -q 'bf16 yes'; then
    for r in a b; do
        run_cmd bf-$r.log tmpi 2 "$BTRM" train base.yaml --set train.precision=bf16 \
            --set run.out_dir=bf-$r
    done
    expect_rc 0 "LoRA under train.precision: bf16 trains on 2 ranks"
    pass_if "... its backbone GEMMs ran in bf16 (summary.json: the backbone's shapes in bf16, by the CPU's route)" \
        "$PY" -c '
import json, sys
c = json.load(open("bf-a/summary.json"))["compute"]
g = [s for s in c["gemm"] if s["precision"] == "bf16"]
# the stories260K backbone: dim 64, hidden 172; the head is linear (fp32 gemv)
bb = [s for s in g if 64 in (s["m"], s["n"], s["k"]) or 172 in (s["m"], s["n"], s["k"])]
# (the evaluations at eval_every run the frozen forward, in fp32)
# oneDNN 2.6 has bf16 matmuls from AVX-512 up; below, the rounded inputs go
# through the fp32 sgemm (gemm.h)
avx512 = c["isa"].startswith("avx512") or "amx" in c["isa"] or "avx10" in c["isa"]
ok = (lambda i: i.startswith(("brg:", "gemm:"))) if avx512 else (lambda i: i == "dnnl_sgemm of bf16 inputs")
sys.exit(not (c["precision"] == "bf16" and len(bb) >= 4 and all(ok(s["impl"]) for s in bb)))'
    d=$(reldiff lora-2/final.h5 bf-a/final.h5)
    # 0.10 measured: 50 steps of lr 1e-3 let bf16-rounded GEMM inputs move the
    # trajectory; a wrong bf16 gradient gives O(1) (tests/test-llama-train.c
    # checks the gradients themselves in fp32)
    acc=$("$PY" "$BTRM_SRCDIR/tests/h5tool.py" json bf-a/eval.jsonl accuracy)
    pass_if "... near the fp32 run after 50 steps but not equal to it (relative difference $d in (0, 0.25]; accuracy $acc >= 0.9)" \
        eval "le $d 0.25 && ! le $d 0 && le 0.9 $acc"
    pass_if "... bitwise repeatable on 2 ranks" \
        eval 'cmp -s bf-a/final.h5 bf-b/final.h5 && same_metrics bf-a bf-b'
else
    for i in 1 2 3 4; do
        skip "built without oneDNN: train.precision bf16 is refused (tests/train-bf16.sh checks the refusal)"
    done
fi
expect_grep '"bt_loss":.*"near_floor":.*"tokens_per_s":.*"gflop_per_s"' lora-1/metrics.jsonl \
    "metrics log the plain BT loss, the near-floor share and the throughput"
"$PY" - lora-1/eval.jsonl > ee.log 2>&1 <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["step"] for r in rows] == [25, 50], [r["step"] for r in rows]
for r in rows:
    q = r["by_distance_quintile"]
    assert len(q) == 5 and abs(sum(b["grad_share"] for b in q) - 1) < 1e-5, q
# the representations moved: d and its quintile edges differ between the evaluations
assert rows[0]["dist_mean"] != rows[1]["dist_mean"], rows
assert [b["hi"] for b in rows[0]["by_distance_quintile"]] != [b["hi"] for b in rows[1]["by_distance_quintile"]]
PY
ok $? "train.eval_every: eval.jsonl has the d-quintile gradient shares of the fine-tuned representations at steps 25 and 50"
[ -s ee.log ] && sed 's/^/#   /' ee.log
acc=$("$PY" "$BTRM_SRCDIR/tests/h5tool.py" json lora-1/eval.jsonl accuracy)
pass_if "the fine-tuned model ranks the held-in pairs (accuracy $acc >= 0.9)" le 0.9 "$acc"
run_cmd rep.log t120 "$BTRM" report lora-1 top2-1 s0-none
ok $([ $rc -eq 0 ] && grep -q '| stories260K.gguf lora r4 | normbt |' rep.log &&
     grep -q '| stories260K.gguf top_k 2 | bt |' rep.log && grep -q '| stories260K.gguf frozen | normbt |' rep.log
     echo $?) "btrm report labels the runs by base model and what of it trained"
[ $rc -eq 0 ] || sed 's/^/#   /' rep.log | head -5
run_cmd rec.log t120 "$BTRM" train base.yaml --set run.out_dir=rec --set train.recompute=true
pass_if "train.recompute: true gives a bitwise-identical model" cmp -s lora-1/final.h5 rec/final.h5
cat > sgd.yaml <<YAML
base: base.yaml
loss: {type: bt}
optim: {type: sgd, lr: 0.05, schedule: constant, warmup_steps: 0, grad_clip: 0}
train: {steps: 1}
YAML
run_cmd m1.log t120 "$BTRM" train sgd.yaml --set run.out_dir=m1 --set train.micro_batch=1
run_cmd m0.log t120 "$BTRM" train sgd.yaml --set run.out_dir=m0 --set train.micro_batch=0
d=$(reldiff m0/final.h5 m1/final.h5)
pass_if "gradient accumulation: 16 micro-batches of 1 pair = one of 16 (SGD step, $d <= 1e-5)" \
    le "$d" 1e-5

# --- eval, analyze, score of the fine-tuned model
run_cmd ev.log tmpi 2 "$BTRM" eval lora-1/final.h5 pairs.h5 --json ev.json
expect_rc 0 "btrm eval of a fine-tuned model (2 ranks) computes the representations itself"
a1=$("$PY" "$BTRM_SRCDIR/tests/h5tool.py" json ev.json loss)
a2=$("$PY" "$BTRM_SRCDIR/tests/h5tool.py" json lora-1/eval.jsonl loss)
pass_if "... its loss $a1 is the training run's final eval loss $a2 (1e-6)" \
    awk "BEGIN { d = $a1 - $a2; exit !(d < 1e-6 && d > -1e-6) }"
run_cmd an.log tmpi 2 "$BTRM" analyze pairs.h5 --model lora-1/final.h5 --top-k 3
expect_rc 0 "btrm analyze --model on the fine-tuned representations"
expect_grep "Gradient norm share by d-quintile" an.log "... reports the d-quintile gradient shares"
t120 "$BTRM" score lora-1/final.h5 texts.jsonl > sc.jsonl 2> sc.err
pass_if "btrm score of the fine-tuned model: one reward per text, differing from step 0" \
    bash -c '[ $(wc -l < sc.jsonl) -eq $(wc -l < texts.jsonl) ] && ! cmp -s sc.jsonl s0-lora.jsonl'
run_cmd scb.log t120 "$BTRM" score lora-1/final.h5 --backbone "$GGUF" texts.jsonl
expect_grep "was trained with its own backbone" scb.log "score refuses a --backbone for such a model"

# --- SIGUSR1, checkpoint, exit 75, resume: bitwise
cat > long.yaml <<YAML
base: base.yaml
train: {steps: 24, log_every: 2}
YAML
run_cmd ref.log tmpi 2 "$BTRM" train long.yaml --set run.out_dir=ref
# rank 0 waits at step 3 until the signal lands (src/core/fault.h)
BTRM_FAULT=step,step=3,action=wait "$BTRM_MPIRUN" 2 "$BTRM" train long.yaml \
    --set run.out_dir=sig >sig.log 2>&1 &
pid=$!
for i in $(seq 1 600); do grep -q 'fault injection at step' sig.log && break; sleep 0.05; done
kill -USR1 $pid
wait $pid; rc=$?
expect_rc 75 "SIGUSR1: the ranks checkpoint and exit 75"
run_cmd sig2.log tmpi 2 "$BTRM" train long.yaml --set run.out_dir=sig --resume auto
expect_grep "resuming from .*sig/checkpoints/step-" sig2.log "--resume auto continues from the signal's checkpoint"
pass_if "stopped and resumed: bitwise identical to the uninterrupted run (adapters, head, metrics)" \
    eval 'cmp -s ref/final.h5 sig/final.h5 && same_metrics ref sig'

# --- a changed base file: resume and eval refuse it
cp "$M/stories260K.gguf" copy.gguf
cat > copy.yaml <<YAML
base: base.yaml
model: {backbone: "gguf:copy.gguf"}
data: {eval: []}
train: {steps: 4}
YAML
run_cmd cp1.log t120 "$BTRM" train copy.yaml --set run.out_dir=cp
"$PY" - <<'PY'
import os
size = os.path.getsize("copy.gguf")
with open("copy.gguf", "r+b") as f:  # one byte of the last tensor's data
    f.seek(size - 3)
    b = f.read(1)
    f.seek(size - 3)
    f.write(bytes([b[0] ^ 0x40]))
PY
run_cmd cp2.log tmpi 2 "$BTRM" train copy.yaml --set run.out_dir=cp --set train.steps=8 --resume auto
pass_if "a resume on a changed base file is refused (exit $rc)" test "$rc" -ne 0
expect_grep "has another content.*a resume needs the same base file" cp2.log "... naming the content hash"
run_cmd cp3.log t120 "$BTRM" eval cp/final.h5 pairs.h5
expect_grep "the base model changed" cp3.log "btrm eval refuses a model whose base file changed"

# --- a quantised base; other architectures
"$PY" - "$M/stories260K.gguf" "$BTRM_SRCDIR/tests" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import gguf_quantize as gq
for arch, name, want in (("llama", "q8.gguf", gq.GGML_Q8_0), ("qwen2", "qwen2.gguf", gq.GGML_F32)):
    gq.synthetic_model(arch, name, dim=64, layers=2, heads=4, kv_heads=2, ffn=128, want=want,
                       vocab_from=sys.argv[1], context=256)
PY
run_cmd q8.log t120 "$BTRM" train base.yaml --set run.out_dir=q8 --set model.backbone=gguf:q8.gguf \
    --set train.steps=5
expect_rc 0 "LoRA on a Q8_0 base model trains (the base stays quantised)"
run_cmd qw.log tmpi 2 "$BTRM" train base.yaml --set run.out_dir=qw --set model.backbone=gguf:qwen2.gguf \
    --set train.steps=2
ok $([ $rc -eq 2 ] && [ $(grep -c "implements the llama architecture only" qw.log) -ge 1 ]; echo $?) \
    "a qwen2 backbone cannot fine-tune: a config error naming the architecture (exit $rc)"
run_cmd qn.log t120 "$BTRM" train base.yaml --set run.out_dir=qn --set model.backbone=gguf:qwen2.gguf \
    --set model.finetune.type=none --set train.steps=2
expect_rc 0 "... but trains a head on its frozen representations"

# --- bad input: every rank, a clear message, no hang
bad() { # bad LOG PATTERN DESCRIPTION ARGS...
    local log=$1 pat=$2 what=$3
    shift 3
    rm -rf bad
    run_cmd $log tmpi 2 "$BTRM" train base.yaml --set run.out_dir=bad --set train.steps=2 "$@"
    ok $([ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -Eq "$pat" $log && [ ! -e bad/final.h5 ]; echo $?) \
        "$what: no final.h5 (exit $rc)"
    [ $rc -ne 0 ] && grep -Eq "$pat" $log || sed 's/^/#   /' $log | head -5
}
bad b1.log "missing.gguf" "a backbone file that does not exist" --set model.backbone=gguf:missing.gguf
bad b2.log "want an LLM, gguf:MODEL.gguf" "a backbone that is not an LLM" --set model.backbone=hash
"$BTRM" synth feat.h5 --pairs 20 --dim 8 --seed 1 > /dev/null 2>&1
bad b3.log "feat.h5 has no /texts" "a pair store without /texts" --set data.train=feat.h5
bad b4.log "'qkv' is not a projection" "an unknown LoRA target" --set "model.finetune.targets=[q, qkv]"
bad b5.log "model.finetune.rank.*0 is out of range" "LoRA rank 0" --set model.finetune.rank=0
bad b6.log "rank = 65 is larger than the dimension of target" "LoRA rank larger than the dimension" \
    --set model.finetune.rank=65
done_testing
