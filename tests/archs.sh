#!/bin/bash
# The GGUF architectures on synthetic models with random weights, written by
# tests/gguf_quantize.py --synthetic with each architecture's keys and tensor
# names (llama, qwen2, qwen3, gemma2, gemma3 with linear rope scaling, phi3;
# sliding windows of 7 tokens so that sequences of up to 130 tokens cross them):
#  - btrm's pooled states (last and mean) agree with an independent float64
#    reference of the architecture (tests/llama_ref.py) to 1e-4 per row;
#  - the same model in F16, Q8_0, Q4_K and Q6_K stays within the bounds of
#    docs/backbones.md of the F32 result (relative L2 per row), and each file
#    gives bitwise the states of the F32 file holding its dequantised weights
#    (NumPy's dequantisation; every other block type on llama too);
#  - embed.kernel int8 stays within its documented bound of the dequant path;
#  - BOS follows tokenizer.ggml.add_bos_token unless embed.bos says otherwise;
#  - bad files are refused by name: unknown architecture, unused tensor,
#    missing sliding window, unsupported rope scaling, truncated K-quant data;
#  - btrm inspect describes a model file and what btrm would refuse.
# Skips when numpy or $BTRM_SHARED/models/stories260K (the vocabulary) is absent.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
PY=/usr/bin/python3
V="$BTRM_SHARED/models/stories260K/stories260K.gguf"
[ -f "$V" ] || skip_all "stories260K.gguf (the synthetic models' vocabulary) not found"
"$PY" -c 'import numpy' 2>/dev/null || skip_all "numpy not installed"
ARCHS="llama qwen2 qwen3 gemma2 gemma3 phi3"
plan 75
cd "$WORK" || exit 1
Q="$BTRM_SRCDIR/tests/gguf_quantize.py"
t120() { timeout 120 "$@"; }
# relerr A.jsonl B.jsonl: the largest ||a - b|| / ||b|| over the lines and keys
relerr() {
    "$PY" - "$1" "$2" <<'PY'
import json, sys
import numpy as np
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and len(a) > 0
print("%.3g" % max(np.linalg.norm(np.array(x[k]) - np.array(y[k])) / np.linalg.norm(np.array(y[k]))
                   for x, y in zip(a, b) for k in ("last", "mean")))
PY
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
hidden() { # hidden MODEL[,opts] OUT.jsonl
    t120 "$BTRM" generate --backbone "gguf:$1" --hidden ids.txt > "$2" 2> "$2.err"
}
"$PY" -c 'import random
random.seed(3)
for n in (1, 5, 17, 40, 130):
    print(" ".join(str(random.randrange(512)) for _ in range(n)))' > ids.txt

for a in $ARCHS; do
    case $a in
        gemma2) opts="--layers 4 --window 7" ;;
        gemma3) opts="--layers 6 --window 7 --rope-linear 8" ;;
        phi3) opts="--layers 2 --window 7" ;;
        *) opts="--layers 2" ;;
    esac
    # shellcheck disable=SC2086
    "$PY" "$Q" --synthetic "$a" "$a.gguf" --vocab-from "$V" $opts
    hidden "$a.gguf" "$a.jsonl"
    run_cmd ref-$a.log "$PY" "$BTRM_SRCDIR/tests/llama_ref.py" "$a.gguf" ids.txt "$a.jsonl" --tol 1e-4
    expect_rc 0 "$a: pooled states agree with the float64 reference ($(tail -n 1 ref-$a.log | sed 's/^# //'))"
done

# quantised copies: bounds against F32 (docs/backbones.md) and bitwise exactness
bound() { case $1 in f16) echo 3e-3 ;; q8_0) echo 0.07 ;; q6_k) echo 0.25 ;; q4_k) echo 0.9 ;; esac; }
for a in $ARCHS; do
    for t in f16 q8_0 q4_k q6_k; do
        "$PY" "$Q" "$a.gguf" "$a-$t.gguf" --type $t
        hidden "$a-$t.gguf" "$a-$t.jsonl"
        e=$(relerr "$a-$t.jsonl" "$a.jsonl")
        pass_if "$a $t: within $(bound $t) of F32 (relative error $e)" le "$e" "$(bound $t)"
        if [ $a = llama ] || [ $t = q4_k ]; then
            "$PY" "$Q" "$a-$t.gguf" "$a-$t-f32.gguf" --type f32
            hidden "$a-$t-f32.gguf" "$a-$t-f32.jsonl"
            pass_if "$a $t: bitwise the F32 model of its dequantised weights" cmp -s "$a-$t.jsonl" "$a-$t-f32.jsonl"
        fi
    done
done
for t in q4_0 q4_1 q5_0 q5_1 q2_k q3_k q5_k q8_k; do
    "$PY" "$Q" llama.gguf "llama-$t.gguf" --type $t
    "$PY" "$Q" "llama-$t.gguf" "llama-$t-f32.gguf" --type f32
    hidden "llama-$t.gguf" "llama-$t.jsonl"
    hidden "llama-$t-f32.gguf" "llama-$t-f32.jsonl"
    ok $([ -s "llama-$t.jsonl" ] && cmp -s "llama-$t.jsonl" "llama-$t-f32.jsonl"; echo $?) \
       "llama $t: bitwise the F32 model of its dequantised weights ($(relerr llama-$t.jsonl llama.jsonl) from F32)"
done
# the integer kernels against the dequant path of the same file
for a in $ARCHS; do
    for t in q8_0 q4_k q6_k; do
        hidden "$a-$t.gguf,kernel=int8" "$a-$t-i8.jsonl"
        e=$(relerr "$a-$t-i8.jsonl" "$a-$t.jsonl")
        pass_if "$a $t: kernel=int8 within 0.1 of the dequant path (relative error $e)" le "$e" 0.1
    done
done

# --- BOS: the file decides, embed.bos overrides
t120 "$BTRM" generate --backbone gguf:qwen2.gguf --tokenize "Once upon a time" > bos-file.txt 2>&1
t120 "$BTRM" generate --backbone gguf:qwen2.gguf,bos=1 --tokenize "Once upon a time" > bos-1.txt 2>&1
t120 "$BTRM" generate --backbone gguf:llama.gguf --tokenize "Once upon a time" > bos-llama.txt 2>&1
t120 "$BTRM" generate --backbone gguf:llama.gguf --set embed.bos=false --tokenize "Once upon a time" > bos-0.txt 2>&1
ok $([ "$(cat bos-file.txt)" = "403 407 261 378" ]; echo $?) "add_bos_token = false (qwen2): no BOS by default ($(cat bos-file.txt))"
ok $([ "$(cat bos-1.txt)" = "1 403 407 261 378" ] && [ "$(cat bos-llama.txt)" = "1 403 407 261 378" ]; echo $?) \
   "bos=1 forces BOS; add_bos_token = true (llama) gives BOS"
ok $([ "$(cat bos-0.txt)" = "403 407 261 378" ]; echo $?) "embed.bos=false drops the file's BOS"

# --- refusals, each by name
"$PY" - "$Q" <<'PY'
import sys
sys.path.insert(0, sys.argv[1].rsplit("/", 1)[0])
import gguf_quantize as gq
_, kvs, tensors, al = gq.read_gguf("llama.gguf")
def with_kvs(path, change, drop=(), extra_tensors=()):
    out = [(k, t, change.get(k, v)) for k, t, v in kvs if k not in drop]
    gq.write_gguf(path, out, tensors + list(extra_tensors), al)
with_kvs("mamba.gguf", {"general.architecture": "mamba"})
with_kvs("extra.gguf", {}, extra_tensors=[("blk.0.attn_output.bias", [256], gq.GGML_F32, b"\0" * 1024)])
_, kvs, tensors, al = gq.read_gguf("phi3.gguf")
with_kvs("phi3-nowin.gguf", {}, drop=("phi3.attention.sliding_window",))
_, kvs, tensors, al = gq.read_gguf("qwen2.gguf")
kvs += [("qwen2.rope.scaling.type", gq.STRING, "yarn")]
with_kvs("yarn.gguf", {})
PY
run_cmd r1.log "$BTRM" generate --backbone gguf:mamba.gguf --hidden ids.txt
ok $([ $rc -eq 1 ] && grep -q "mamba.gguf: architecture 'mamba' is not supported (btrm runs llama, qwen2, qwen3, gemma2, gemma3, phi3)" r1.log; echo $?) \
   "an unknown architecture is refused by name, with the list"
run_cmd r2.log "$BTRM" generate --backbone gguf:extra.gguf --hidden ids.txt
ok $([ $rc -eq 1 ] && grep -q "extra.gguf: tensor blk.0.attn_output.bias is not part of btrm's 'llama' forward pass" r2.log; echo $?) \
   "a tensor the forward would not use is refused by name"
run_cmd r3.log "$BTRM" generate --backbone gguf:phi3-nowin.gguf --hidden ids.txt
ok $([ $rc -eq 1 ] && grep -q "missing metadata key phi3.attention.sliding_window" r3.log; echo $?) \
   "phi3 without its sliding window (and no legacy shape) is refused"
run_cmd r4.log "$BTRM" generate --backbone gguf:yarn.gguf --hidden ids.txt
ok $([ $rc -eq 1 ] && grep -q "rope scaling 'yarn' is not supported" r4.log; echo $?) "yarn rope scaling is refused by name"
head -c $(( $(wc -c < llama-q4_k.gguf) / 2 )) llama-q4_k.gguf > cut.gguf
run_cmd r5.log "$BTRM" generate --backbone gguf:cut.gguf --hidden ids.txt
ok $([ $rc -eq 1 ] && grep -Eq "cut.gguf: tensor [a-z0-9_.]+ \(Q4_K, [0-9]+ bytes at data offset [0-9]+\) lies beyond the end of the file" r5.log; echo $?) \
   "a truncated Q4_K file names the tensor cut off and its type"

# --- btrm inspect MODEL.gguf
run_cmd insp.log "$BTRM" inspect phi3-q4_k.gguf
ok $([ $rc -eq 0 ] && grep -q '^  architecture   phi3' insp.log && grep -q '^  Q4_K  .* 10 tensors, 811008 bytes' insp.log &&
     grep -q 'dim 256, 2 layers, 4 heads (2 key/value)' insp.log && grep -q 'sliding window 7 on every layer' insp.log &&
     grep -q '^  tokenizer      spm, 512 tokens' insp.log && grep -q '^  btrm           runs it' insp.log; echo $?) \
   "inspect: architecture, dimensions, tensor types and bytes, tokenizer, runs it (exit 0)"
"$PY" "$Q" llama.gguf iq4.gguf --type q4_k --raw-type blk.0.attn_k.weight=20
run_cmd insp2.log "$BTRM" inspect iq4.gguf
ok $([ $rc -eq 1 ] && grep -q '^  IQ4_NL .*1 tensor: a type btrm does not read' insp2.log &&
     grep -q 'refuses it: .*tensor blk.0.attn_k.weight has type IQ4_NL' insp2.log; echo $?) \
   "inspect: an unread type is listed and the refusal named (exit 1)"
done_testing
