#!/bin/bash
# The LLM backbones on the real stories260K model (llama2.c .bin and GGUF):
#  - greedy generation reproduces llama2.c's reference token ids and text;
#  - the .bin and the .gguf give the same hidden states, and both agree with
#    an independent NumPy forward pass (tests/llama_ref.py) to 1e-5;
#  - F16, BF16 and Q8_0 copies (tests/gguf_quantize.py): the kernels are
#    exact (each equals the float32 model of its dequantised weights, row
#    blocks or dequantize=1) and the representations stay within the
#    documented quantisation error;
#  - a GGUF carrying GPT-2's byte-level BPE tokenizes GPT-2's reference texts;
#  - btrm embed on 1, 2 and 3 ranks (features within 1e-6, blocks balanced by
#    token count), attributes, the config keys and the spec options, left
#    truncation, float16 output;
#  - btrm score = the head applied to embed's features;
#  - bad model files and options fail on every rank with a clear message and
#    no hang (timeout 120).
# Skips when $BTRM_SHARED/models/stories260K is absent.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
M="$BTRM_SHARED/models/stories260K"
[ -f "$M/stories260K.bin" ] && [ -f "$M/stories260K.gguf" ] && [ -f "$M/tok512.bin" ] ||
    skip_all "stories260K not found in $M (data-prep/fetch.sh --models fetches it)"
plan 50
cd "$WORK" || exit 1
PY=/usr/bin/python3
have_np() { "$PY" -c 'import numpy' 2>/dev/null; }
BIN="llama2c:$M/stories260K.bin"
GGUF="gguf:$M/stories260K.gguf"
t120() { timeout 120 "$@"; }
# relerr A.jsonl B.jsonl: the largest max|a-b|/max|b| over the lines and keys
relerr() {
    "$PY" - "$1" "$2" <<'PY'
import json, sys
import numpy as np
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and len(a) > 0
print("%.3g" % max(np.max(np.abs(np.array(x[k]) - np.array(y[k]))) / np.max(np.abs(np.array(y[k])))
                   for x, y in zip(a, b) for k in ("last", "mean")))
PY
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

# --- generation: llama2.c's run.c output for "Once upon a time", -t 0 -n 64
want="1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385 328 432 358 394 261 370 432 352 266 268 388 426 338 391 266 267 337 335 312 432 398 312 286 267 414 270 333 415 426 13 438 310"
t120 "$BTRM" generate --backbone "$BIN" "Once upon a time" -n 64 --ids > gen_bin.txt 2>gen_bin.err
ok $([ "$(cat gen_bin.txt)" = "$want" ]; echo $?) "greedy generation from the .bin reproduces llama2.c's 65 token ids"
t120 "$BTRM" generate --backbone "$GGUF" "Once upon a time" -n 64 --ids > gen_gguf.txt 2>gen_gguf.err
ok $([ "$(cat gen_gguf.txt)" = "$want" ]; echo $?) "greedy generation from the .gguf reproduces the same ids"
[ "$(cat gen_gguf.txt)" = "$want" ] || diag "got: $(cat gen_gguf.txt gen_gguf.err)"
printf 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily\n' > want_text.txt
t120 "$BTRM" generate --backbone "$GGUF" "Once upon a time" -n 64 > gen_text.txt 2>&1
pass_if "the decoded text is run.c's 181 bytes" cmp -s gen_text.txt want_text.txt

# --- hidden states: .bin vs .gguf vs the NumPy reference
"$PY" -c 'import random
random.seed(7)
print("1 403 407 261 378 432 383 286 261 376 298 315 421")
print("1")
print(" ".join(str(random.randrange(512)) for _ in range(300)))
print("1 " + " ".join(str(random.randrange(3, 512)) for _ in range(200)))
print(" ".join(str(random.randrange(512)) for _ in range(129)))
print("1 2 3")' > ids.txt 2>/dev/null || printf '1 403 407 261 378\n1\n1 2 3\n' > ids.txt
t120 "$BTRM" generate --backbone "$BIN" --hidden ids.txt > h_bin.jsonl 2>h_bin.err
ok $? "--hidden on the .bin ($(wc -l < ids.txt) sequences of up to 300 tokens, one batch)"
t120 "$BTRM" generate --backbone "$GGUF" --hidden ids.txt > h_gguf.jsonl 2>&1
if have_np; then
    e=$(relerr h_gguf.jsonl h_bin.jsonl)
    pass_if ".bin and .gguf representations agree (relative difference $e <= 1e-6)" le "$e" 1e-6
    run_cmd ref.log "$PY" "$BTRM_SRCDIR/tests/llama_ref.py" "$M/stories260K.bin" ids.txt h_bin.jsonl --tol 1e-5
    expect_rc 0 "an independent NumPy forward pass agrees to 1e-5 ($(tail -n 1 ref.log | sed 's/^# //'))"
else
    pass_if ".bin and .gguf representations agree (bitwise; numpy missing)" cmp -s h_gguf.jsonl h_bin.jsonl
    skip "numpy not installed: no NumPy reference"
fi

# --- F16, BF16, Q8_0 (written by tests/gguf_quantize.py)
if have_np; then
    for t in f16 bf16 q8_0; do
        "$PY" "$BTRM_SRCDIR/tests/gguf_quantize.py" "$M/stories260K.gguf" s_$t.gguf --type $t
        # the same weights, dequantised to float32 by NumPy
        "$PY" "$BTRM_SRCDIR/tests/gguf_quantize.py" s_$t.gguf s_$t-f32.gguf --type f32
        t120 "$BTRM" generate --backbone gguf:s_$t.gguf --hidden ids.txt > h_$t.jsonl 2>h_$t.err
        t120 "$BTRM" generate --backbone gguf:s_$t-f32.gguf --hidden ids.txt > h_$t-f32.jsonl 2>&1
        t120 "$BTRM" generate --backbone gguf:s_$t.gguf,dequantize=1 --hidden ids.txt > h_$t-dq.jsonl 2>&1
        pass_if "$t: row-block dequantisation is exact (bitwise the float32 model of the same weights)" \
            cmp -s h_$t.jsonl h_$t-f32.jsonl
        pass_if "$t: dequantize=1 gives bitwise the same" cmp -s h_$t.jsonl h_$t-dq.jsonl
    done
    # documented bounds (docs/backbones.md); measured 4.5e-4, 5.2e-3, 9.1e-3
    for tb in f16:2e-3 bf16:2e-2 q8_0:5e-2; do
        t=${tb%%:*}; bound=${tb#*:}
        e=$(relerr h_$t.jsonl h_bin.jsonl)
        pass_if "$t: representations within $bound of float32 (relative error $e)" le "$e" "$bound"
    done
    t120 "$BTRM" generate --backbone gguf:s_q8_0.gguf "Once upon a time" -n 64 --ids > gen_q8.txt 2>&1
    ok $([ "$(cat gen_q8.txt)" = "$want" ]; echo $?) "q8_0: greedy generation still gives the reference ids"
else
    for i in $(seq 10); do skip "numpy not installed"; done
fi

# --- a GGUF with GPT-2's byte-level BPE (tokenizer.ggml.model = gpt2): the
# tokenizer glue, on 10 of the 43 reference tokenisations; a tiny random model
G2="$BTRM_SHARED/models/gpt2-tokenizer"
if have_np && [ -f "$G2/encoder.json" ] && [ -f "$G2/vocab.bpe" ]; then
    "$PY" - "$BTRM_SRCDIR/tests" "$G2" gpt2.gguf <<'PY'
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import gguf_quantize as gq
enc = json.load(open(sys.argv[2] + "/encoder.json", encoding="utf-8"))
tokens = [t for t, _ in sorted(enc.items(), key=lambda kv: kv[1])]
merges = [l.rstrip("\n") for l in open(sys.argv[2] + "/vocab.bpe", encoding="utf-8")][1:]
merges = [m for m in merges if m]
dim, ffn, n = 32, 64, len(tokens)
kvs = [("general.architecture", gq.STRING, "llama"), ("llama.embedding_length", gq.U32, dim),
       ("llama.block_count", gq.U32, 1), ("llama.feed_forward_length", gq.U32, ffn),
       ("llama.attention.head_count", gq.U32, 4), ("llama.context_length", gq.U32, 256),
       ("tokenizer.ggml.model", gq.STRING, "gpt2"), ("tokenizer.ggml.pre", gq.STRING, "gpt2"),
       ("tokenizer.ggml.tokens", gq.ARRAY, (gq.STRING, tokens)),
       ("tokenizer.ggml.merges", gq.ARRAY, (gq.STRING, merges)),
       ("tokenizer.ggml.bos_token_id", gq.U32, 50256), ("tokenizer.ggml.eos_token_id", gq.U32, 50256)]
rng = np.random.default_rng(1)
def mat(name, rows, cols):
    return (name, [cols, rows], gq.GGML_F32, (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype("<f4").tobytes())
def vec(name):
    return (name, [dim], gq.GGML_F32, np.ones(dim, dtype="<f4").tobytes())
t = [mat("token_embd.weight", n, dim), vec("output_norm.weight"), vec("blk.0.attn_norm.weight"),
     vec("blk.0.ffn_norm.weight")]
t += [mat("blk.0.attn_%s.weight" % x, dim, dim) for x in ("q", "k", "v", "output")]
t += [mat("blk.0.ffn_gate.weight", ffn, dim), mat("blk.0.ffn_up.weight", ffn, dim),
      mat("blk.0.ffn_down.weight", dim, ffn)]
gq.write_gguf(sys.argv[3], kvs, t)
PY
    bad=0
    head -n 10 "$G2/test-vectors.jsonl" > vectors.jsonl
    while IFS= read -r line; do
        text=$("$PY" -c 'import json, sys; sys.stdout.write(json.loads(sys.argv[1])["text"] + "x")' "$line"); text=${text%x}
        want=$("$PY" -c 'import json, sys; print(" ".join(map(str, json.loads(sys.argv[1])["ids"])))' "$line")
        got=$("$BTRM" generate --backbone gguf:gpt2.gguf,bos=0 --tokenize "$text" 2>&1)
        [ "$got" = "$want" ] || { bad=$((bad + 1)); diag "'$text': got '$got', want '$want'"; }
    done < vectors.jsonl
    ok $bad "a GGUF with tokenizer.ggml.model = gpt2 tokenizes 10 GPT-2 reference texts exactly"
    echo "15496 995" > g2ids.txt
    run_cmd g2h.log "$BTRM" generate --backbone gguf:gpt2.gguf --hidden g2ids.txt
    expect_rc 0 "... and runs its (random, 50257-token) model"
else
    skip "numpy or the GPT-2 tokenizer files missing"; skip "numpy or the GPT-2 tokenizer files missing"
fi

# --- embed on 1, 2, 3 ranks
"$BTRM" prep -q "$BTRM_SRCDIR/tests/data/prep/hh.jsonl" "$BTRM_SRCDIR/tests/data/prep/rewardbench.json" \
    "$BTRM_SRCDIR/tests/data/prep/skywork.jsonl" -o in.h5 >prep.log 2>&1
ok $? "prep the fixtures"
for np in 1 2 3; do
    run_cmd e$np.log t120 "$BTRM_MPIRUN" $np "$BTRM" embed in.h5 -o out$np.h5 --backbone "$GGUF" --batch 7
    expect_rc 0 "embed --backbone gguf:stories260K.gguf on $np rank(s)"
done
expect_grep 'tokens/s' e2.log "embed reports texts/s and tokens/s"
run_cmd split.log t120 "$BTRM_MPIRUN" 3 "$BTRM" embed in.h5 -o split.h5 --backbone "$GGUF" -v
"$PY" - split.log <<'PY' 2>/dev/null
import re, sys
t = [float(m.group(1)) for m in re.finditer(r"rank \d+: rows \[\d+, \d+\), (\d+) tokens \(split by tokens\)", open(sys.argv[1]).read())]
sys.exit(0 if len(t) == 3 and max(t) - min(t) <= 0.25 * sum(t) / 3 else 1)
PY
ok $? "3 ranks get blocks of nearly equal token counts ($(grep -o '[0-9]* tokens (split' split.log | cut -d' ' -f1 | tr '\n' ' '))"
ok $([ "$(grep -Ec 'embed: rank [0-2]: rows \[[0-9]+, [0-9]+\), [0-9]+ tokens, encode [0-9.]+ s, write [0-9.]+ s' split.log)" -eq 3 ]; echo $?) \
   "-v prints each rank's rows, tokens and encode/write seconds"
attr() { h5dump -a "/features/$2" "$1" 2>/dev/null | sed -n 's/^ *(0): *//p' | tr -d '"'; }
ok $([ "$(attr out1.h5 backbone)" = "gguf:stories260K.gguf,pool=last,max_tokens=512" ] &&
     [ "$(attr out1.h5 dim)" = 64 ] && [ "$(attr out1.h5 pool)" = last ] &&
     [ "$(attr out1.h5 max_tokens)" = 512 ] && [ "$(attr out1.h5 model_file)" = "$M/stories260K.gguf" ]; echo $?) \
   "/features names the backbone, model file, pool and max_tokens"
hash=$(attr out1.h5 model_hash)
ok $(echo "$hash" | grep -Eq '^[0-9a-f]{32}$' && [ "$(attr out1.h5 model_hash_function)" = XXH3-128 ]; echo $?) \
   "/features carries the model file's XXH3-128 hash ($hash)"
if have_python_h5py; then
    cmp_feat() { # cmp_feat A.h5 B.h5 TOL: max over rows of ||a-b|| / ||a||
        "$PY" - "$@" <<'PY'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["features"][()].astype(np.float64)
b = h5py.File(sys.argv[2], "r")["features"][()].astype(np.float64)
e = np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1))
print("%.3g" % e)
sys.exit(0 if a.shape == b.shape and e <= float(sys.argv[3]) else 1)
PY
    }
    e2=$(cmp_feat out1.h5 out2.h5 1e-6); r2=$?
    e3=$(cmp_feat out1.h5 out3.h5 1e-6); r3=$?
    ok $r2 "1 and 2 ranks: features agree (relative difference $e2 <= 1e-6)"
    ok $r3 "1 and 3 ranks: features agree (relative difference $e3 <= 1e-6)"
else
    skip "python3 h5py not installed"; skip "python3 h5py not installed"
fi
pass_if "texts and pairs are copied unchanged" sh -c 'h5diff in.h5 out3.h5 /texts /texts && h5diff in.h5 out3.h5 /pairs /pairs'

# the config keys and the spec's options (the spec wins)
run_cmd mean1.log t120 "$BTRM_MPIRUN" 2 "$BTRM" embed in.h5 -o mean1.h5 --backbone "$GGUF,pool=mean"
run_cmd mean2.log t120 "$BTRM_MPIRUN" 2 "$BTRM" embed in.h5 -o mean2.h5 --backbone "$GGUF" --set embed.pool=mean
pass_if "--set embed.pool=mean equals the spec option pool=mean" h5diff mean1.h5 mean2.h5
run_cmd last2.log t120 "$BTRM_MPIRUN" 2 "$BTRM" embed in.h5 -o last2.h5 --backbone "$GGUF,pool=last" --set embed.pool=mean --batch 7
ok $(h5diff -q last2.h5 out2.h5 /features /features && ! h5diff -q mean1.h5 out2.h5 /features /features; echo $?) \
   "pool=last in the spec wins over embed.pool=mean; mean differs from last"
printf 'embed:\n  max_tokens: 8\n  bos: true\n' > trunc.yaml
run_cmd tr.log t120 "$BTRM" embed in.h5 -o tr.h5 --backbone "$GGUF" --config trunc.yaml --f16
expect_rc 0 "embed --config (embed.max_tokens: 8) --f16"
h5dump -H -d /features tr.h5 > tr.txt 2>&1
expect_grep '16-bit little-endian floating-point|H5T_IEEE_F16LE|SIZE 2' tr.txt "--f16 stores float16"
if have_python_h5py; then
    # row 0's text, tokenised as embed does with max_tokens=8: BOS + the last 7 ids
    "$PY" -c 'import h5py, sys; t = h5py.File("in.h5")["texts"][0]; sys.stdout.write(t.decode() if isinstance(t, bytes) else t)' > text0.txt
    text0=$(cat text0.txt; printf x); text0=${text0%x} # keep the trailing newline
    full=$("$BTRM" generate --backbone "$GGUF,max_tokens=0" --tokenize "$text0")
    cut=$("$BTRM" generate --backbone "$GGUF,max_tokens=8" --tokenize "$text0")
    want_cut="1 $(echo "$full" | tr ' ' '\n' | tail -n 7 | tr '\n' ' ' | sed 's/ $//')"
    ok $([ "$cut" = "$want_cut" ] && [ "$(echo "$full" | wc -w)" -gt 8 ]; echo $?) \
       "max_tokens=8 keeps BOS and the last 7 of $(echo "$full" | wc -w) ids"
    echo "$cut" > cut.txt
    "$BTRM" generate --backbone "$GGUF" --hidden cut.txt > cut.jsonl 2>&1
    "$PY" - <<'PY'
import json, sys, h5py, numpy as np
f = h5py.File("tr.h5", "r")["features"][0].astype(np.float64)
h = np.array(json.loads(open("cut.jsonl").readline())["last"])
sys.exit(0 if np.max(np.abs(f - h)) <= 1e-3 * np.max(np.abs(h)) else 1)
PY
    ok $? "embed's row 0 is the hidden state of those 8 ids (within float16 rounding)"
else
    skip "python3 h5py not installed"; skip "python3 h5py not installed"
fi

# --- embed.precision: bf16 (stories260K's F32 weights kept once in bf16; the
# GGUF's Q8_0 copy dequantised into bf16 row blocks): relative error per row
# against float32 bounded, 1 and 2 ranks identical, the key and the spec
# option the same
if "$BTRM" --version | grep -q 'bf16 yes' && have_python_h5py; then
    run_cmd bf1.log t120 "$BTRM" embed in.h5 -o bf1.h5 --backbone "$GGUF" --set embed.precision=bf16
    run_cmd bf2.log t120 "$BTRM_MPIRUN" 2 "$BTRM" embed in.h5 -o bf2.h5 --backbone "$GGUF,precision=bf16"
    e=$(cmp_feat out1.h5 bf1.h5 2e-2); r=$?
    diag "stories260K, embed.precision bf16 vs fp32: largest relative error of a row $e"
    ok $r "bf16 embed of stories260K: relative error per row $e <= 2e-2 against float32"
    "$PY" -c 'import h5py, sys; a = h5py.File("bf1.h5")["features"]; sys.exit(a.attrs["precision"] != b"bf16" and a.attrs["precision"] != "bf16")'
    ok $? "/features records precision bf16"
    e2=$(cmp_feat bf1.h5 bf2.h5 1e-6); r2=$?
    ok $r2 "bf16: 1 and 2 ranks agree ($e2 <= 1e-6); embed.precision and precision=bf16 are the same"
elif ! "$BTRM" --version | grep -q 'bf16 yes'; then
    # without oneDNN: refused before any work, naming the library
    run_cmd bfno.log t120 "$BTRM" embed in.h5 -o bfno.h5 --backbone "$GGUF,precision=bf16"
    expect_rc 2 "without oneDNN, precision=bf16 is a usage error"
    expect_grep 'embed.precision bf16: .*oneDNN' bfno.log "the error names the key and oneDNN"
    pass_if "and leaves no output behind" test ! -e bfno.h5
else
    skip "python3 h5py not installed"; skip "python3 h5py not installed"; skip "python3 h5py not installed"
fi

# --- score: a head trained on the features, applied by btrm score
cat > train.yaml <<EOF
run: {name: llama-score, out_dir: run}
data: {train: out1.h5}
model: {head: linear}
optim: {lr: 0.01}
train: {global_batch: 8, steps: 5, log_every: 5}
EOF
run_cmd train.log t120 "$BTRM_MPIRUN" 1 "$BTRM" train train.yaml -q
expect_rc 0 "train a linear head on the stories260K features"
if have_python_h5py; then
    "$PY" -c 'import h5py, json
for i, t in enumerate(h5py.File("in.h5")["texts"][()]):
    print(json.dumps({"id": i, "text": t.decode() if isinstance(t, bytes) else t}))' > texts.jsonl
    run_cmd score.log t120 "$BTRM" score run/final.h5 --backbone "$GGUF" texts.jsonl -o scores.jsonl --batch 4
    expect_rc 0 "btrm score"
    "$PY" - <<'PY'
import json, sys, h5py, numpy as np
m = h5py.File("run/final.h5", "r")
w, b = m["model/out/weight"][()].astype(np.float64), m["model/out/bias"][()].astype(np.float64)
X = h5py.File("out1.h5", "r")["features"][()].astype(np.float64)
want = X @ w.reshape(-1) + b[0]
got = [json.loads(l) for l in open("scores.jsonl")]
ids_ok = [g["id"] for g in got] == list(range(len(X)))
r = np.array([g["reward"] for g in got])
sys.exit(0 if ids_ok and len(r) == len(X) and np.max(np.abs(r - want)) <= 1e-4 * max(1, np.max(np.abs(want))) else 1)
PY
    ok $? "score = the head on embed's features, one line per text with its id, in order"
else
    skip "python3 h5py not installed"; skip "python3 h5py not installed"
fi
run_cmd dim.log "$BTRM" embed in.h5 -o dim.h5 --backbone "$GGUF" --dim 32
expect_rc 2 "--dim 32 with a 64-wide model: exit 2"

# --- bad model files and options: every rank fails, no output, no hang
head -c 700000 "$M/stories260K.gguf" > trunc.gguf
run_cmd bad1.log t120 "$BTRM_MPIRUN" 3 "$BTRM" embed in.h5 -o bad1.h5 --backbone gguf:trunc.gguf
expect_rc 1 "a truncated GGUF on 3 ranks: exit 1"
expect_grep 'trunc.gguf: tensor blk\.[0-9]+\.[a-z_]+\.weight .*beyond the end of the file' bad1.log \
    "the message names the file and the tensor cut off"
{ printf 'GGUX'; tail -c +5 "$M/stories260K.gguf"; } > magic.gguf
run_cmd bad2.log t120 "$BTRM_MPIRUN" 3 "$BTRM" embed in.h5 -o bad2.h5 --backbone gguf:magic.gguf
ok $([ $rc -eq 1 ] && grep -q 'magic.gguf: not a GGUF file' bad2.log; echo $?) "wrong magic on 3 ranks: exit 1, 'not a GGUF file'"
if have_np; then
    "$PY" "$BTRM_SRCDIR/tests/gguf_quantize.py" "$M/stories260K.gguf" q4.gguf --type f32 --raw-type blk.2.attn_k.weight=20
    run_cmd bad3.log t120 "$BTRM_MPIRUN" 3 "$BTRM" embed in.h5 -o bad3.h5 --backbone gguf:q4.gguf
    ok $([ $rc -eq 1 ] && grep -q 'q4.gguf: tensor blk.2.attn_k.weight has type IQ4_NL, which btrm does not support' bad3.log; echo $?) \
       "an unsupported tensor type (IQ4_NL) on 3 ranks: exit 1, naming the tensor and type"
else
    skip "numpy not installed"
fi
head -c 500000 "$M/stories260K.bin" > trunc.bin
run_cmd bad4.log t120 "$BTRM_MPIRUN" 2 "$BTRM" embed in.h5 -o bad4.h5 --backbone "llama2c:trunc.bin,tokenizer=$M/tok512.bin"
ok $([ $rc -eq 1 ] && grep -q 'trunc.bin: truncated llama2.c checkpoint' bad4.log; echo $?) "a truncated .bin on 2 ranks: exit 1"
run_cmd bad5.log t120 "$BTRM_MPIRUN" 2 "$BTRM" embed in.h5 -o bad5.h5 --backbone "$GGUF,pool=max"
ok $([ $rc -eq 2 ] && grep -q 'pool=max: want last or mean' bad5.log; echo $?) "a bad backbone option: exit 2"
ok $(ls bad*.h5 .*.tmp.* 2>/dev/null | grep -q . ; [ $? -ne 0 ]; echo $?) "failed runs leave no output and no temporary file"
done_testing
