#!/bin/bash
# A model knows how its features were made (docs/format.md, model-v2 and later): btrm
# train copies the training store's record (backbone, spec, model file hash,
# width, pool, BOS, max_tokens, kernel, chat template) into final.h5, and
#  - score and serve use it when --backbone is not given (same rewards as
#    with it), serve renders "pairs" with the recorded chat template;
#  - eval, train (its eval stores), score, serve and export refuse features
#    made another way, with a message naming both sides;
#  - a model-v1 file (no record) still scores with --backbone, and says to
#    give one without it;
#  - on stories260K (GGUF; skipped without $BTRM_SHARED/models): the recorded
#    spec opens the file from another directory, the recorded settings win
#    over the config's embed.* keys, an option written in --backbone that
#    changes the features is refused, export --with-backbone takes the
#    recorded backbone and refuses another file.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
PY=/usr/bin/python3
command -v curl >/dev/null || skip_all "curl not installed (tools/install-deps.sh)"
plan 26
cd "$WORK" || exit 1

"$PY" - <<'PY' > raw.jsonl
import json, random
r = random.Random(11)
words = "good bad helpful rude answer question kind short long clear vague".split()
for i in range(120):
    p = " ".join(r.choice(words) for _ in range(4))
    print(json.dumps({"prompt": p, "chosen": "good helpful " + " ".join(r.choice(words) for _ in range(5)),
                      "rejected": "rude " + " ".join(r.choice(words) for _ in range(5))}))
PY
printf 'user: "[U] {content}"\nassistant: "[A] {content}"\n' > other-template.yaml
"$BTRM" prep raw.jsonl -o p.h5 -q &&
"$BTRM" prep raw.jsonl -o p-other.h5 --template other-template.yaml -q &&
"$BTRM" embed p.h5 -o h.h5 --backbone hash --dim 64 -q &&
"$BTRM" embed p-other.h5 -o h-other.h5 --backbone hash --dim 64 -q ||
    { diag "preparing the stores failed"; exit 1; }
cat > t.yaml <<'YAML'
run: {name: t, out_dir: t}
data: {train: h.h5, eval: [h.h5]}
model: {head: linear}
train: {global_batch: 40, steps: 10}
YAML
run_cmd train.log "$BTRM" train t.yaml -q
expect_rc 0 "train on a hash store"
run_cmd inspect.log "$BTRM" inspect t/final.h5
expect_grep "model-v3" inspect.log "final.h5 is a model-v3"
expect_grep "features: hash-64 \(hash, 64 features\)" inspect.log "... recording its hash features"
expect_grep 'chat template: \{"assistant":"<\|assistant\|>' inspect.log "... and prep's chat template"

# score and serve without --backbone
echo '{"text": "<|user|>\ngood question\n<|assistant|>\ngood helpful clear answer\n"}' > x.jsonl
echo '{"text": "rude vague"}' >> x.jsonl
"$BTRM" score t/final.h5 --backbone hash x.jsonl > with.jsonl 2>score1.log
run_cmd without.jsonl "$BTRM" score t/final.h5 x.jsonl
expect_rc 0 "score without --backbone"
pass_if "... gives the rewards of --backbone hash bit for bit" cmp -s with.jsonl without.jsonl
"$BTRM" serve t/final.h5 --port 0 --port-file port >serve.log 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s port ] && break; sleep 0.1; done
port=$(cat port 2>/dev/null || echo 0)
curl -s --max-time 20 "http://127.0.0.1:$port/info" > info.json
pass_if "serve without --backbone: /info shows the recorded features" "$PY" -c '
import json, sys
d = json.load(open("info.json"))
f = d["features"]
sys.exit(0 if d["backbone"] == "hash" and f["backbone"] == "hash-64" and f["dim"] == 64
         and f["backbone_spec"] == "hash" and "<|user|>" in f["chat_template"] else 1)'
curl -s --max-time 20 -d '{"pairs": [{"prompt": "good question", "response": "good helpful clear answer"}]}' \
    "http://127.0.0.1:$port/score" > pair.json
pass_if "\"pairs\" rendered with the recorded template: the reward of the rendered text" "$PY" -c '
import json, sys
got = json.load(open("pair.json"))["rewards"][0]
want = json.loads(open("with.jsonl").readline())["reward"]
sys.exit(0 if repr(got) == repr(want) else 1)'
kill -TERM $pid; wait $pid
run_cmd tpl.log "$BTRM" serve t/final.h5 --template other-template.yaml --port 0
expect_rc 2 "serve --template with another chat template than the model's: refused"
expect_grep "other-template.yaml is .*\[U\].*but t/final.h5 was trained on texts rendered with" tpl.log "... naming both"

# features made another way are refused
run_cmd e1.log "$BTRM" eval t/final.h5 h-other.h5
expect_rc 2 "eval on a store with another chat template: refused"
expect_grep "features made differently: t/final.h5 has hash-64 .*; h-other.h5 has hash-64 .*\(chat template" e1.log "... naming the model, the store and the template"
sed 's/eval: \[h.h5\]/eval: [h-other.h5]/; s/out_dir: t}/out_dir: t2}/' t.yaml > t2.yaml
run_cmd t2.log "$BTRM" train t2.yaml
expect_rc 2 "train with an eval store of another template: refused"
expect_grep "features made differently: h.h5 has .*; h-other.h5 has" t2.log "... naming both stores"
pass_if "... before anything is written" test ! -e t2/final.h5

# a model-v1 file records nothing
v1=$BTRM_SRCDIR/tests/data/v1/sgd-final.h5
run_cmd v1.log "$BTRM" score "$v1" x.jsonl
expect_rc 2 "a model-v1 file without --backbone"
expect_grep "does not record a backbone btrm can run .*give --backbone" v1.log "... says to give one"
run_cmd v1b.log "$BTRM" score "$v1" --backbone hash x.jsonl
expect_rc 0 "... and scores with --backbone hash"

# an LLM backbone
M="$BTRM_SHARED/models/stories260K"
if [ -f "$M/stories260K.gguf" ]; then
    mkdir -p models && cp "$M/stories260K.gguf" models/s.gguf
    cp models/s.gguf models/copy.gguf
    "$PY" -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 1; open(sys.argv[2], "wb").write(b)' \
        models/s.gguf models/changed.gguf
    "$BTRM" embed p.h5 -o g.h5 --backbone gguf:models/s.gguf,max_tokens=48 -q
    sed 's/h.h5/g.h5/g; s/out_dir: t}/out_dir: g}/' t.yaml > g.yaml
    "$BTRM" train g.yaml -q
    "$BTRM" score g/final.h5 --backbone gguf:models/s.gguf,max_tokens=48 x.jsonl > g-with.jsonl 2>/dev/null
    mkdir -p elsewhere
    ( cd elsewhere && "$BTRM" score ../g/final.h5 ../x.jsonl ) > g-without.jsonl 2> g-without.log
    pass_if "gguf: score without --backbone from another directory = with it, bit for bit" \
        cmp -s g-with.jsonl g-without.jsonl
    "$BTRM" score g/final.h5 x.jsonl --set embed.max_tokens=8 --set run.threads=1 > g-set.jsonl 2>g-set.log
    pass_if "... the recorded max_tokens wins over embed.max_tokens (the config sets the rest)" \
        cmp -s g-with.jsonl g-set.jsonl
    run_cmd g-copy.jsonl "$BTRM" score g/final.h5 --backbone gguf:models/copy.gguf x.jsonl
    pass_if "a copy of the file under another name: accepted, the recorded settings applied" \
        cmp -s g-with.jsonl g-copy.jsonl
    run_cmd g-mean.log "$BTRM" score g/final.h5 --backbone gguf:models/s.gguf,pool=mean x.jsonl
    ok $([ $rc -eq 2 ] && grep -q "(pool last vs mean)" g-mean.log; echo $?) \
       "--backbone ...,pool=mean: refused, naming the pools (exit $rc)"
    run_cmd g-bos.log "$BTRM" score g/final.h5 --backbone gguf:models/s.gguf,bos=0 x.jsonl
    ok $([ $rc -eq 2 ] && grep -q "(bos 1 vs 0)" g-bos.log; echo $?) \
       "--backbone ...,bos=0 where the file's BOS (auto) was 1: refused (exit $rc)"
    run_cmd g-changed.log "$BTRM" score g/final.h5 --backbone gguf:models/changed.gguf x.jsonl
    ok $([ $rc -eq 2 ] && grep -q "model file XXH3-128" g-changed.log; echo $?) \
       "another model file (one bit changed): refused, naming the hashes (exit $rc)"
    run_cmd g-export.log "$BTRM" export g/final.h5 -o exp --with-backbone
    expect_rc 0 "export --with-backbone takes the recorded backbone"
    run_cmd g-export2.log "$BTRM" export g/final.h5 -o exp2 --with-backbone --backbone gguf:models/changed.gguf
    ok $([ $rc -eq 2 ] && grep -q "model file XXH3-128" g-export2.log && [ ! -e exp2/model.safetensors ]; echo $?) \
       "export with another file: refused, nothing written (exit $rc)"
else
    for _ in $(seq 8); do
        skip "stories260K not found in $M (data-prep/fetch.sh --models fetches it)"
    done
fi
done_testing
