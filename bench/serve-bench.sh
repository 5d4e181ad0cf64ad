#!/bin/bash
# bench/serve-bench.sh: requests/s and latency (p50, p99) of `btrm serve`
# under 1 and 8 concurrent clients (tests/serve_client.py: Python threads,
# keep-alive connections, 1..8 texts per request, every answer checked), for
#   - the hash backbone (D = 4096) with a linear head;
#   - a synthetic Llama GGUF (bench/make-llama-gguf.py; DIM, LAYERS) with the
#     texts of a batch packed into shared forward passes (the default) and
#     with --invariant (one forward per text).
# Texts: HH-RLHF harmless-base transcripts (data-prep/hh-rlhf.py) when
# $BTRM_SHARED/data is there, else synthetic sentences. Prints markdown rows.
# Environment: WORKDIR (default /tmp/serve-bench), CLIENTS ("1 8"), REQUESTS
# (per client, default 300; LLM_REQUESTS default 40), DIM (512), LAYERS (4),
# BTRM (default src/btrm), BTRM_SHARED (default ../shared).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKDIR=${WORKDIR:-/tmp/serve-bench}
CLIENTS=${CLIENTS:-1 8}
REQUESTS=${REQUESTS:-300}
LLM_REQUESTS=${LLM_REQUESTS:-40}
DIM=${DIM:-512}
LAYERS=${LAYERS:-4}
BTRM=${BTRM:-$top/src/btrm}
BTRM_SHARED=${BTRM_SHARED:-$top/../shared}
PY=${PYTHON:-/usr/bin/python3}
export BTRM_SHARED
run() { echo "+ $*" >&2; "$@"; }
mkdir -p "$WORKDIR"
cd "$WORKDIR"
echo "load at start: $(cat /proc/loadavg); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" >&2

# texts: 400 responses
if [ -f "$BTRM_SHARED/data/hh-rlhf/harmless-base/test.jsonl.gz" ]; then
    run "$PY" "$top/data-prep/hh-rlhf.py" --data-dir "$BTRM_SHARED/data" -o hh.jsonl >&2
    "$PY" -c 'import json; [print(json.dumps({"text": json.loads(l)["prompt"] + json.loads(l)["chosen"]})) for l in list(open("hh.jsonl"))[:400]]' > texts.jsonl
    source_texts="HH-RLHF harmless-base transcripts (first 400)"
else
    "$PY" -c 'import json, random
r = random.Random(1); w = "the cat sat on a mat while the dog ran far away and came back".split()
[print(json.dumps({"text": " ".join(r.choice(w) for _ in range(r.randint(5, 200)))})) for _ in range(400)]' > texts.jsonl
    source_texts="synthetic sentences of 5-200 words"
fi
echo "texts: $source_texts; mean $(wc -c < texts.jsonl | awk '{printf "%d", $1/400}') bytes per line" >&2

# a linear head per feature width (what it scores does not matter here)
model() { # model DIM -> head-DIM/final.h5
    [ -s head-$1/final.h5 ] && return
    run "$BTRM" synth train-$1.h5 --pairs 512 --dim "$1" --seed 1 >&2
    printf 'run: {name: b, out_dir: head-%s}\ndata: {train: train-%s.h5}\ntrain: {global_batch: 256, steps: 2}\n' "$1" "$1" > head-$1.yaml
    run "$BTRM" train head-$1.yaml --quiet >&2
}
serve_case() { # serve_case LABEL REQUESTS SCORE_ARGS -- SERVE_ARGS
    local label=$1 requests=$2; shift 2
    local score_args=() serve_args=()
    while [ "$1" != -- ]; do score_args+=("$1"); shift; done; shift
    serve_args=("$@")
    run "$BTRM" score "${score_args[@]}" texts.jsonl > expected.jsonl
    rm -f port
    "$BTRM" serve "${serve_args[@]}" --port 0 --port-file port --quiet &
    local pid=$!
    for _ in $(seq 200); do [ -s port ] && break; sleep 0.1; done
    for c in $CLIENTS; do
        local tol=()
        case $label in *packed*) tol=(--rtol-max 1e-4) ;; esac
        out=$("$PY" "$top/tests/serve_client.py" load "$(cat port)" texts.jsonl expected.jsonl \
              --clients "$c" --requests "$requests" "${tol[@]}")
        echo "$out" | "$PY" -c 'import json, sys
d = json.loads(sys.stdin.readline())
print("| %s | %d | %d | %.1f | %.1f | %.2f | %.2f | %d |" % (sys.argv[1], d["clients"], d["requests"],
      d["requests_per_s"], d["texts_per_s"], d["p50_ms"], d["p99_ms"], d["errors"] + d["mismatches"]))' "$label"
    done
    kill -TERM "$pid"
    wait "$pid"
}

echo "| server | clients | requests | requests/s | texts/s | p50 ms | p99 ms | errors |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
model 4096
serve_case "hash-4096, linear" "$REQUESTS" head-4096/final.h5 --backbone hash -- head-4096/final.h5 --backbone hash
gguf=synth-$DIM-$LAYERS.gguf
[ -s "$gguf" ] || run "$PY" "$top/bench/make-llama-gguf.py" "$gguf" --dim "$DIM" --layers "$LAYERS" \
    --heads 8 --kv-heads 8 --ffn $((DIM * 3)) >&2
model "$DIM"
spec="gguf:$WORKDIR/$gguf,pool=last,max_tokens=256"
serve_case "llama $DIM x $LAYERS, packed" "$LLM_REQUESTS" head-$DIM/final.h5 --backbone "$spec" -- \
    head-$DIM/final.h5 --backbone "$spec"
serve_case "llama $DIM x $LAYERS, --invariant" "$LLM_REQUESTS" head-$DIM/final.h5 --backbone "$spec" --invariant -- \
    head-$DIM/final.h5 --backbone "$spec" --invariant
echo "load at end: $(cat /proc/loadavg)" >&2
