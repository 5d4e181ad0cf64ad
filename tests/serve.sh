#!/bin/bash
# btrm serve with real HTTP clients (curl and tests/serve_client.py, Python's
# standard library):
#  - /health, /info; the rewards of "texts", OpenRLHF's "query" (on /score
#    and /get_reward) and "pairs" equal `btrm score`'s bit for bit on the
#    hash backbone (linear and mlp heads), "pairs" rendered as `btrm prep`
#    renders a prompt and a response;
#  - 8 concurrent clients x 500 requests: no error, no lost or mixed-up
#    response, and requests batched together;
#  - every kind of bad request: 400 (bad JSON, invalid UTF-8, NUL, wrong
#    types, missing or extra keys) with a message, 404, 405, 413 (texts,
#    Content-Length, chunked body), a slow body and an idle connection closed;
#  - a full queue answers 503; SIGTERM answers what was queued and exits 0
#    within 5 s; 127.0.0.1 by default; usage errors;
#  - stories260K (GGUF): one request = btrm score's batch bit for bit; under
#    8 concurrent clients the packed batches change float32 rounding (within
#    1e-5 of the largest reward, about 1e-6 measured); with --invariant every
#    reward equals `btrm score --invariant` bit for bit (skipped without
#    $BTRM_SHARED/models).
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
PY=/usr/bin/python3
command -v curl >/dev/null || skip_all "curl not installed (tools/install-deps.sh)"
plan 52
cd "$WORK" || exit 1
CLIENT="$PY $BTRM_SRCDIR/tests/serve_client.py"

# --- models: a linear and an mlp head on 64 hash features
"$BTRM" synth train.h5 --pairs 600 --dim 64 --seed 5 >synth.log 2>&1
for head in linear mlp; do
    cat > $head.yaml <<YAML
run: {name: $head, out_dir: $head}
data: {train: train.h5}
model: {head: $head, hidden: [16]}
train: {global_batch: 100, steps: 20}
YAML
    "$BTRM" train $head.yaml >train-$head.log 2>&1
done
# texts: words, accents, CJK, an emoji, empty, long
"$PY" - <<'PY' > texts.jsonl
import json, random
r = random.Random(3)
words = "the cat sat on a mat while dog ran far away quick brown fox über naïve 日本語 🙂 reward".split()
for i in range(200):
    n = r.choice([0, 1, 3, 10, 40, 300])
    print(json.dumps({"text": " ".join(r.choice(words) for _ in range(n))}, ensure_ascii=False))
PY
for head in linear mlp; do
    "$BTRM" score $head/final.h5 --backbone hash texts.jsonl > expected-$head.jsonl 2>score-$head.log
done

. "${BTRM_SRCDIR:-.}/tests/serve_lib.sh"
# http PORT METHOD PATH [curl args...]: prints "STATUS BODY"
http() {
    local port=$1 method=$2 path=$3; shift 3
    curl -s --max-time 20 -o body.out -w '%{http_code}' -X "$method" "$@" \
        "http://127.0.0.1:$port$path" > code.out
    echo "$(cat code.out) $(cat body.out)"
}
# rewards of a response body, one per line, as printed (%.9g)
rewards() { "$PY" -c 'import json,sys; [print(repr(r)) for r in json.loads(sys.stdin.read().split(" ",1)[1])["rewards"]]'; }
expected() { "$PY" -c 'import json,sys; [print(repr(json.loads(l)["reward"])) for l in open(sys.argv[1])]' "$1"; }
texts_json() { "$PY" -c 'import json,sys; print(json.dumps({sys.argv[2]: [json.loads(l)["text"] for l in open(sys.argv[1])], **({"prompts": ["p"], "labels": [1]} if sys.argv[2] == "query" else {})}))' "$1" "$2"; }

start main linear/final.h5 --backbone hash
pass_if "btrm serve starts and writes its port (${PORT_main})" test "$PORT_main" -gt 0
expect_grep "at http://127\.0\.0\.1:$PORT_main/score" serve-main.log "it listens on 127.0.0.1 by default"
r=$(http $PORT_main GET /health)
pass_if "GET /health: 200 {\"status\":\"ok\"} ($r)" test "$r" = '200 {"status":"ok"}'
http $PORT_main GET /info > info.out
pass_if "GET /info: the model, its XXH3-128, the backbone, limits and counters" "$PY" -c '
import json, sys
code, body = open("info.out").read().split(" ", 1)
d = json.loads(body)
ok = (code == "200" and d["model"] == "linear/final.h5" and len(d["model_hash"]) == 32 and
      d["backbone"] == "hash" and d["backbone_label"] == "hash-64" and d["head"] == "linear" and
      d["dim"] == 64 and d["limits"]["max_texts"] > 0 and "requests" in d["stats"] and
      "{content}" in d["template"]["user"])
sys.exit(0 if ok else 1)'

texts_json texts.jsonl texts > texts.body
http $PORT_main POST /score -H 'Content-Type: application/json' --data-binary @texts.body | rewards > got-texts.txt
expected expected-linear.jsonl > want-linear.txt
pass_if "200 texts in one request: the rewards equal btrm score's bit for bit" cmp -s got-texts.txt want-linear.txt
texts_json texts.jsonl query > query.body
http $PORT_main POST /get_reward --data-binary @query.body | rewards > got-query.txt
pass_if "OpenRLHF's {query, prompts, labels} on /get_reward: the same rewards" cmp -s got-query.txt want-linear.txt
http $PORT_main POST /score --data-binary @query.body | rewards > got-query2.txt
pass_if "... and on /score" cmp -s got-query2.txt want-linear.txt
r=$(http $PORT_main POST /score -d '{"texts": []}')
pass_if "an empty list: 200 {\"rewards\":[]} ($r)" test "$r" = '200 {"rewards":[]}'

# pairs: rendered as btrm prep renders prompt + response
"$PY" - <<'PY' > pairs.jsonl
import json
for i, (p, c, r) in enumerate([("What is 2+2?", "4", "5"), ("Say hi", "Hello there!", "Go away."),
                               ("Übersetze: cat", "Katze", "Hund"), ("", " a leading space", "x"),
                               ("multi\nline\nprompt", "answer\nwith lines", "no")]):
    print(json.dumps({"prompt": p, "chosen": c, "rejected": r, "id": str(i)}, ensure_ascii=False))
PY
"$BTRM" prep pairs.jsonl -o pairs.h5 >prep.log 2>&1
if have_python_h5py; then
    "$PY" - <<'PY' > pairs-texts.jsonl
import json, h5py
with h5py.File("pairs.h5") as f:
    texts = f["texts"].asstr()[()]
    for c in f["pairs/chosen"][()]:
        print(json.dumps({"text": texts[c]}, ensure_ascii=False))
PY
    "$BTRM" score linear/final.h5 --backbone hash pairs-texts.jsonl > want-pairs.jsonl 2>>score-linear.log
    "$PY" -c 'import json; print(json.dumps({"pairs": [{"prompt": d["prompt"], "response": d["chosen"]} for d in map(json.loads, open("pairs.jsonl"))]}))' > pairs.body
    http $PORT_main POST /score --data-binary @pairs.body | rewards > got-pairs.txt
    expected want-pairs.jsonl > want-pairs.txt
    pass_if "pairs: the rewards of btrm prep's texts for the same prompt and response" \
        cmp -s got-pairs.txt want-pairs.txt
else
    skip "python3 h5py not installed (tools/install-deps.sh --with-python)"
fi

# --- 8 concurrent clients x 500 requests
run_cmd load.log $CLIENT load $PORT_main texts.jsonl expected-linear.jsonl --clients 8 --requests 500
expect_rc 0 "8 clients x 500 requests: every answer arrives and matches btrm score bit for bit"
diag "$(head -n 1 load.log)"
http $PORT_main GET /info > info2.out
pass_if "requests from concurrent clients share batches" "$PY" -c '
import json
s = json.loads(open("info2.out").read().split(" ", 1)[1])["stats"]
print("#", s)
exit(0 if s["requests"] >= 4003 and s["batches"] < s["requests"] else 1)'

# --- bad requests
bad() { # bad WANT_CODE PATTERN DESCRIPTION CURL_ARGS...
    local want=$1 pattern=$2 what=$3; shift 3
    local r; r=$(http $PORT_main POST /score "$@")
    if [ "${r%% *}" = "$want" ] && printf '%s' "$r" | grep -Eq -- "$pattern"; then ok 0 "$what: $want"
    else ok 1 "$what: want $want /$pattern/, got: $r"; fi
}
bad 400 '"error":"invalid JSON at line 1, column' "malformed JSON" -d '{"texts": ["a",'
printf '{"texts": ["ok", "bad \xff\xfe byte"]}' > utf8.body
bad 400 'invalid UTF-8' "invalid UTF-8 in a string" --data-binary @utf8.body
bad 400 'error' "a NUL character (\\u0000)" -d '{"texts": ["a\u0000b"]}'
bad 400 'must be a JSON object \(found an array\)' "a body that is not an object" -d '["a"]'
bad 400 'needs \\"texts\\"' "no texts, pairs or query" -d '{"text": "a"}'
bad 400 'give one of .*texts.* and .*query' "texts and query together" -d '{"texts": ["a"], "query": ["b"]}'
bad 400 '\\"texts\\" must be an array \(found a string\)' "texts as a string" -d '{"texts": "a"}'
bad 400 'texts\[1\] must be a string \(found a number\)' "a number among texts" -d '{"texts": ["a", 2]}'
bad 400 'query\[0\] must be a string \(found null\)' "a null query" -d '{"query": [null]}'
bad 400 'pairs\[0\]\.response must be a string \(found nothing\)' "a pair without response" -d '{"pairs": [{"prompt": "a"}]}'
bad 400 'pairs\[1\] must be an object' "a pair that is a string" -d '{"pairs": [{"prompt": "a", "response": "b"}, "c"]}'
r=$(http $PORT_main GET /score)
pass_if "GET /score: 405 ($r)" test "${r%% *}" = 405
r=$(http $PORT_main POST /health -d '{}')
pass_if "POST /health: 405 ($r)" test "${r%% *}" = 405
r=$(http $PORT_main GET /nowhere)
pass_if "an unknown path: 404 with the endpoints named ($r)" sh -c "test '${r%% *}' = 404 && echo '$r' | grep -q /get_reward"
stop main
expect_rc 0 "SIGTERM: btrm serve exits 0"

start small linear/final.h5 --backbone hash --max-texts 4 --max-body 4096 --read-timeout 1 --idle-timeout 2
PORT_main=$PORT_small
bad 413 'at most 4 per request' "5 texts with --max-texts 4" -d '{"texts": ["a", "b", "c", "d", "e"]}'
head -c 5000 /dev/zero | tr '\0' a | sed 's/^/{"texts": ["/; s/$/"]}/' > big.body
bad 413 'larger than 4096 bytes' "a 5 kB body with --max-body 4096 (Content-Length)" --data-binary @big.body
bad 413 'larger than 4096 bytes' "the same body chunked (no Content-Length)" -H 'Transfer-Encoding: chunked' --data-binary @big.body
r=$(http $PORT_small POST /score -d '{"texts": ["still serving"]}')
pass_if "the server still answers after refusals ($r)" test "${r%% *}" = 200
t0=$(date +%s.%N)
res=$($CLIENT trickle $PORT_small 6)
t1=$(date +%s.%N)
pass_if "a body trickling in for more than --read-timeout 1 is cut off ($res after $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s)" \
    sh -c "test '$res' = closed && awk 'BEGIN{exit !($t1 - $t0 < 4)}'"
res=$($CLIENT idle $PORT_small 6)
pass_if "an idle connection is closed after --idle-timeout 2 ($res)" test "$res" = closed
stop small
expect_rc 0 "SIGTERM after refusals: exit 0"

# --- a full queue answers 503; SIGTERM answers what was queued
export BTRM_FAULT=serve-slow
start busy linear/final.h5 --backbone hash --queue 1
$CLIENT burst $PORT_busy 8 '{"texts": ["a b", "c d"]}' > burst.out
n200=$(grep -c '^200 {"rewards":\[' burst.out) n503=$(grep -c '^503 .*busy' burst.out)
pass_if "8 requests at once with --queue 1: $n503 answered 503 busy, $n200 answered with 2 rewards" \
    test $((n200 + n503)) -eq 8 -a "$n503" -ge 1 -a "$n200" -ge 1
stop busy
start drain linear/final.h5 --backbone hash --queue 16
$CLIENT burst $PORT_drain 6 '{"texts": ["x y z"]}' > drain.out &
client=$!
sleep 0.5
t0=$(date +%s.%N)
stop drain
t1=$(date +%s.%N)
wait $client
expect_rc 0 "SIGTERM with requests queued: exit 0"
pass_if "... within 5 s ($(awk "BEGIN{printf \"%.2f\", $t1-$t0}") s)" awk "BEGIN{exit !($t1 - $t0 < 5)}"
pass_if "... after answering all 6 queued requests with their reward ($(grep -c '^200' drain.out) x 200)" \
    test "$(grep -c '^200 {"rewards":\[[-0-9.e]*\]}$' drain.out)" -eq 6
expect_grep "answering the [0-9]+ queued request" serve-drain.log "... and it says so"
unset BTRM_FAULT

# --- the mlp head, bit for bit
start mlp mlp/final.h5 --backbone hash
http $PORT_mlp POST /score --data-binary @texts.body | rewards > got-mlp.txt
expected expected-mlp.jsonl > want-mlp.txt
pass_if "mlp head: the rewards equal btrm score's bit for bit" cmp -s got-mlp.txt want-mlp.txt
run_cmd load-mlp.log $CLIENT load $PORT_mlp texts.jsonl expected-mlp.jsonl --clients 8 --requests 50
expect_rc 0 "mlp head: 8 clients x 50 requests, every answer exact"
stop mlp

# --- usage and startup errors
run_cmd nobb.log "$BTRM" serve linear/final.h5
expect_rc 2 "no --backbone: usage error"
run_cmd nomodel.log "$BTRM" serve missing.h5 --backbone hash --port 0
expect_rc 1 "a missing model file: exit 1"
expect_grep "missing.h5" nomodel.log "... naming the file"
start taken linear/final.h5 --backbone hash
run_cmd taken.log timeout 20 "$BTRM" serve linear/final.h5 --backbone hash --port "$PORT_taken"
expect_rc 1 "a port in use: exit 1"
expect_grep "cannot listen on 127.0.0.1 port $PORT_taken" taken.log "... naming the address and port"
stop taken
run_cmd badport.log "$BTRM" serve linear/final.h5 --backbone hash --port 70000
expect_rc 2 "--port 70000: usage error"

# --- an LLM backbone: stories260K
M="$BTRM_SHARED/models/stories260K"
if [ -f "$M/stories260K.gguf" ]; then
    GGUF="gguf:$M/stories260K.gguf,pool=last"
    "$BTRM" synth llm.h5 --pairs 300 --dim 64 --seed 7 >>synth.log 2>&1
    cat > llm.yaml <<YAML
run: {name: llm, out_dir: llm}
data: {train: llm.h5}
train: {global_batch: 100, steps: 10}
YAML
    "$BTRM" train llm.yaml >train-llm.log 2>&1
    "$PY" -c 'import json,sys; [print(l, end="") for l in [l for l in open("texts.jsonl") if len(json.loads(l)["text"].split()) <= 40][:60]]' > llm-texts.jsonl
    "$BTRM" score llm/final.h5 --backbone "$GGUF" llm-texts.jsonl > expected-llm.jsonl 2>score-llm.log
    start llm llm/final.h5 --backbone "$GGUF"
    texts_json llm-texts.jsonl texts > llm.body
    http $PORT_llm POST /score --data-binary @llm.body | rewards > got-llm.txt
    expected expected-llm.jsonl > want-llm.txt
    pass_if "stories260K: 60 texts in one request = btrm score's one batch of the same texts, bit for bit" \
        cmp -s got-llm.txt want-llm.txt
    run_cmd load-llm.log $CLIENT load $PORT_llm llm-texts.jsonl expected-llm.jsonl --clients 8 --requests 20 --rtol-max 1e-5
    expect_rc 0 "stories260K, packed batches: 8 clients x 20 requests, every reward within 1e-5 of the largest |reward|"
    diag "$(head -n 1 load-llm.log)"
    stop llm
    expect_rc 0 "stories260K server: SIGTERM, exit 0"
    "$BTRM" score llm/final.h5 --backbone "$GGUF" --invariant --batch 1 llm-texts.jsonl > inv-1.jsonl 2>>score-llm.log
    "$BTRM" score llm/final.h5 --backbone "$GGUF" --invariant --batch 64 llm-texts.jsonl > inv-64.jsonl 2>>score-llm.log
    pass_if "btrm score --invariant: --batch 1 and --batch 64 give the same bits" cmp -s inv-1.jsonl inv-64.jsonl
    start inv llm/final.h5 --backbone "$GGUF" --invariant
    run_cmd load-inv.log $CLIENT load $PORT_inv llm-texts.jsonl inv-1.jsonl --clients 8 --requests 20
    expect_rc 0 "stories260K --invariant: 8 clients x 20 requests, every reward equals btrm score --invariant bit for bit"
    stop inv
    expect_rc 0 "--invariant server: SIGTERM, exit 0"
else
    for _ in 1 2 3 4 5 6; do skip "stories260K not found in $M (data-prep/fetch.sh --models fetches it)"; done
fi
done_testing
