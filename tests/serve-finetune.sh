#!/bin/bash
# btrm serve on models trained with their own backbone (model.backbone,
# model.finetune: LoRA and top_k on stories260K), with curl and
# tests/serve_client.py:
#  - one request of 40 texts: the rewards equal `btrm score`'s bit for bit
#    (the same forwards of 16 texts in the same order, the head row by row);
#  - 4 concurrent clients: packed batches change float32 rounding only (each
#    reward within 1e-5 of the largest |reward|); --invariant: every reward
#    equals `btrm score --invariant` bit for bit;
#  - GET /info reports the fine-tuning: type, rank, alpha, targets, layers,
#    the base model's path and XXH3-128;
#  - a base file whose content changed is refused, naming both hashes; a
#    --backbone for such a model is a usage error.
# Skips when $BTRM_SHARED/models/stories260K is absent.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
PY=/usr/bin/python3
M="$BTRM_SHARED/models/stories260K"
[ -f "$M/stories260K.gguf" ] || skip_all "stories260K not found in $M (data-prep/fetch.sh --models fetches it)"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
command -v curl >/dev/null || skip_all "curl not installed (tools/install-deps.sh)"
plan 19
cd "$WORK" || exit 1
CLIENT="$PY $BTRM_SRCDIR/tests/serve_client.py"
t120() { timeout 120 "$@"; }

"$PY" "$BTRM_SRCDIR/tests/make_text_pairs.py" 64 1 > pairs.jsonl
"$BTRM" prep -q pairs.jsonl -o pairs.h5 > prep.log 2>&1
"$PY" -c 'import h5py, json
for t in h5py.File("pairs.h5")["texts"][()][:40]:
    print(json.dumps({"text": t.decode() if isinstance(t, bytes) else t}))' > texts.jsonl
cp "$M/stories260K.gguf" base.gguf
cat > base.yaml <<YAML
run: {name: ft, seed: 3}
data: {train: pairs.h5}
model: {backbone: "gguf:base.gguf", finetune: {type: lora, rank: 4, alpha: 8, targets: [q, v, gate, down], layers: 3}}
embed: {max_tokens: 64}
loss: {type: normbt}
optim: {type: adamw, lr: 0.01}
train: {global_batch: 16, steps: 10, log_every: 5, micro_batch: 8}
YAML
run_cmd train-lora.log t120 "$BTRM" train base.yaml --set run.out_dir=lora
expect_rc 0 "train a LoRA model (r 4, alpha 8, q v gate down on the top 3 blocks)"
run_cmd train-top.log t120 "$BTRM" train base.yaml --set run.out_dir=top --set model.finetune.type=top_k \
    --set model.finetune.layers=2 --set model.head=mlp --set "model.hidden=[16]"
expect_rc 0 "train a top-2 model with an mlp head"

. "${BTRM_SRCDIR:-.}/tests/serve_lib.sh"
rewards() { "$PY" -c 'import json,sys; [print(repr(r)) for r in json.load(sys.stdin)["rewards"]]'; }
expected() { "$PY" -c 'import json,sys; [print(repr(json.loads(l)["reward"])) for l in open(sys.argv[1])]' "$1"; }
"$PY" -c 'import json; print(json.dumps({"texts": [json.loads(l)["text"] for l in open("texts.jsonl")]}))' > texts.body

for m in lora top; do
    t120 "$BTRM" score $m/final.h5 texts.jsonl > want-$m.jsonl 2> score-$m.log
    t120 "$BTRM" score $m/final.h5 --invariant texts.jsonl > inv-$m.jsonl 2>> score-$m.log
    start $m $m/final.h5
    eval "port=\$PORT_$m"
    pass_if "$m: btrm serve starts on the model's own backbone (port $port)" test "$port" -gt 0
    curl -s --max-time 60 -X POST --data-binary @texts.body "http://127.0.0.1:$port/score" | rewards > got-$m.txt
    expected want-$m.jsonl > want-$m.txt
    pass_if "$m: 40 texts in one request = btrm score's rewards bit for bit" \
        bash -c "[ -s want-$m.txt ] && cmp -s got-$m.txt want-$m.txt"
    run_cmd load-$m.log $CLIENT load $port texts.jsonl want-$m.jsonl --clients 4 --requests 10 --max-batch 8 --rtol-max 1e-5
    expect_rc 0 "$m: 4 clients x 10 requests in packed batches, every reward within 1e-5 of the largest |reward|"
    diag "$(head -n 1 load-$m.log)"
    curl -s --max-time 20 "http://127.0.0.1:$port/info" > info-$m.json
    stop $m
    expect_rc 0 "$m: SIGTERM, exit 0"
done
base_hash=$("$PY" "$BTRM_SRCDIR/tests/h5tool.py" attr lora/final.h5 /backbone model_hash)
pass_if "/info of the LoRA model: finetune lora, rank 4, alpha 8, targets q v gate down, layers 3, the base's path and XXH3-128" \
    "$PY" - info-lora.json "$base_hash" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["trained_backbone"]
want = {"finetune": "lora", "rank": 4, "alpha": 8.0, "targets": ["q", "v", "gate", "down"],
        "layers": 3, "base_model": "base.gguf", "base_model_hash": sys.argv[2],
        "hash_function": "XXH3-128", "architecture": "llama", "pool": "last", "max_tokens": 64}
bad = {k: (t.get(k), v) for k, v in want.items() if t.get(k) != v}
print("# mismatches:", bad) if bad else None
sys.exit(1 if bad or d["backbone_label"] != "base.gguf lora r4" or not d["backbone"].startswith("gguf:base.gguf") else 0)
PY
pass_if "/info of the top-2 model: finetune top_k, layers 2, no LoRA fields, the base's XXH3-128" \
    "$PY" - info-top.json "$base_hash" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["trained_backbone"]
sys.exit(0 if t["finetune"] == "top_k" and t["layers"] == 2 and "rank" not in t and
         t["base_model_hash"] == sys.argv[2] and d["head"] == "mlp" else 1)
PY

# --invariant: each text alone, the same bits as btrm score --invariant
start inv lora/final.h5 --invariant
run_cmd load-inv.log $CLIENT load $PORT_inv texts.jsonl inv-lora.jsonl --clients 4 --requests 10 --max-batch 8
expect_rc 0 "LoRA --invariant: 4 clients x 10 requests, every reward equals btrm score --invariant bit for bit"
stop inv

# --- refusals
run_cmd bb.log t120 "$BTRM" serve lora/final.h5 --backbone "gguf:base.gguf" --port 0
expect_rc 2 "--backbone for a model with its own backbone: usage error"
expect_grep "was trained with its own backbone .*drop --backbone" bb.log "... saying why"
# one byte of the last tensor's data (the test below checks that the hash changed)
printf '\x5a' | dd of=base.gguf bs=1 seek=$(($(stat -c %s base.gguf) - 3)) conv=notrunc 2>/dev/null
run_cmd changed.log t120 "$BTRM" serve lora/final.h5 --port 0
expect_rc 1 "a base file whose content changed: refused (exit 1)"
expect_grep "trained on base.gguf with XXH3-128 $base_hash; that file now has [0-9a-f]{32}" changed.log \
    "... naming the recorded hash and the file's"
pass_if "... and the two hashes differ" bash -c "! grep -q 'now has $base_hash' changed.log"
pass_if "... and nothing listens" bash -c "! grep -q 'at http://' changed.log"
done_testing
