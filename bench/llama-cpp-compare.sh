#!/bin/bash
# bench/llama-cpp-compare.sh: btrm's prefill next to llama.cpp's on the same
# GGUF files, same machine, same run, and the agreement of their
# representations (docs/performance.md, docs/backbones.md).
#
# llama.cpp is not part of btrm: build it from its public source as its
# README says (CPU only) and point LLAMA_CPP_BIN at the folder holding its
# llama-bench and llama-embedding binaries. Without LLAMA_CPP_BIN the btrm
# columns are measured alone.
#
# Speed: synthetic Llama-shaped models with random weights, dim 4096, 2
# layers, 32 heads / 8 kv heads, ffn 14336 (bench/make-llama-gguf.py), in each
# of TYPES. For P in RANKS, round after round (ROUNDS), every case is run
# once, in turn: btrm (bench/llama-bench: one sequence of 512 tokens per rank,
# P ranks of one BLAS thread, embed.kernel dequant and, for Q8_0 and the
# K-quants, int8) and llama-bench's prompt processing of 512 tokens (-p 512
# -n 0) with P threads. Each case keeps its best round (the others lost time
# to other jobs on the machine); throughput is tokens/s over all ranks, and
# GFLOP/s uses btrm's count of the model's flops for both programs.
#
# Agreement (AGREE=1, default): small synthetic models of the architectures
# this llama.cpp knows (llama, qwen2, phi3; gemma2 with 26 layers, the only
# depths it accepts), the pooled last-token state of three texts from
# `btrm generate --hidden` against llama-embedding --pooling last with an F32
# KV cache and no normalisation; the Llama model also in F16, Q8_0, Q4_K, Q6_K
# with both btrm kernels.
#
# Environment: LLAMA_CPP_BIN, WORKDIR (default /tmp/llama-bench; ~2 GB of
# models), BTRM_SHARED (default ../shared), TYPES (default "f16 q8_0 q4_k
# q6_k"), RANKS (default "1 2"), ROUNDS (default 3), SEQ (default 512),
# SPEED (default 1; 0 skips the speed part), AGREE (default 1), MPIRUN
# (default tests/mpirun.sh).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKDIR=${WORKDIR:-/tmp/llama-bench}
BTRM_SHARED=${BTRM_SHARED:-$top/../shared}
TYPES=${TYPES:-f16 q8_0 q4_k q6_k}
RANKS=${RANKS:-1 2}
ROUNDS=${ROUNDS:-3}
SEQ=${SEQ:-512}
AGREE=${AGREE:-1}
SPEED=${SPEED:-1}
MPIRUN=${MPIRUN:-$top/tests/mpirun.sh}
LLAMA_CPP_BIN=${LLAMA_CPP_BIN:-}
PY=${PYTHON:-/usr/bin/python3}
export BTRM_SHARED OMP_NUM_THREADS=1
run() { echo "+ $*" >&2; "$@"; }
mkdir -p "$WORKDIR"
BUILD_ONLY=1 WORKDIR="$WORKDIR" "$top/bench/llama-bench.sh"
vocab="$BTRM_SHARED/models/stories260K/stories260K.gguf"
for t in $TYPES; do
    [ "$SPEED" = 1 ] || break
    [ -s "$WORKDIR/synth-$t.gguf" ] ||
        run "$PY" "$top/bench/make-llama-gguf.py" "$WORKDIR/synth-$t.gguf" --type "$t" --vocab-from "$vocab"
done
int8_types="q8_0 q2_k q3_k q4_k q5_k q6_k"
echo "Machine: $(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$LLAMA_CPP_BIN" ] || echo "llama.cpp binaries: $LLAMA_CPP_BIN"
results=$WORKDIR/compare.tsv
[ "$SPEED" = 1 ] || RANKS=""
: > "$results"
for np in $RANKS; do
    for round in $(seq "$ROUNDS"); do
        for t in $TYPES; do
            kernels=dequant
            case " $int8_types " in *" $t "*) kernels="dequant int8" ;; esac
            for k in $kernels; do
                line=$("$MPIRUN" "$np" "$top/bench/llama-bench" --backbone "gguf:$WORKDIR/synth-$t.gguf,kernel=$k" \
                       --seq "$SEQ" --seqs 1 --reps 1 --clock wall)
                tps=$(echo "$line" | sed -n 's/.*s, \([0-9.]*\) tokens\/s, \([0-9.]*\) GFLOP\/s.*/\1 \2/p')
                echo "$np	$t	btrm-$k	$tps" | tr ' ' '\t' >> "$results"
            done
            if [ -n "$LLAMA_CPP_BIN" ]; then
                tps=$(timeout 900 "$LLAMA_CPP_BIN/llama-bench" -m "$WORKDIR/synth-$t.gguf" -p "$SEQ" -n 0 -t "$np" -r 1 -o csv 2>/dev/null |
                      awk -F, 'NR > 1 { gsub(/"/, ""); print $(NF - 1) }' | tail -n 1)
                echo "$np	$t	llama.cpp	$tps	" >> "$results"
            fi
        done
    done
done
echo "Load after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ ! -s "$results" ] || "$PY" - "$results" <<'PY'
import sys, collections
best = collections.defaultdict(float)
gflop_per_token = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    np_, t, who, tps = f[0], f[1], f[2], float(f[3] or 0)
    best[(np_, t, who)] = max(best[(np_, t, who)], tps)
    if who.startswith("btrm") and len(f) > 4 and f[4]:
        gflop_per_token[t] = float(f[4]) / tps
print()
print("| weights | ranks (btrm) / threads (llama.cpp) | btrm dequant | btrm int8 | llama.cpp pp%s | int8 / llama.cpp | dequant / llama.cpp |" % "512")
print("| --- | --- | --- | --- | --- | --- | --- |")
for (np_, t) in sorted({(k[0], k[1]) for k in best}, key=lambda k: (k[1], k[0])):
    g = gflop_per_token.get(t, 0)
    cell = lambda who: ("%.0f tok/s (%.0f GFLOP/s)" % (best[(np_, t, who)], best[(np_, t, who)] * g)
                        if best.get((np_, t, who)) else "-")
    ref = best.get((np_, t, "llama.cpp"), 0)
    ratio = lambda who: "%.2fx" % (best[(np_, t, who)] / ref) if ref and best.get((np_, t, who)) else "-"
    print(f"| {t.upper()} | {np_} | {cell('btrm-dequant')} | {cell('btrm-int8')} | {cell('llama.cpp')} | "
          f"{ratio('btrm-int8')} | {ratio('btrm-dequant')} |")
PY

[ "$AGREE" = 1 ] && [ -n "$LLAMA_CPP_BIN" ] || exit 0
echo
echo "| model | btrm kernel | texts | relative L2 difference of the last-token state, worst |"
echo "| --- | --- | --- | --- |"
agree() { # agree MODEL.gguf [kernel]
    "$PY" - "$LLAMA_CPP_BIN" "$top/src/btrm" "$@" <<'PY'
import json, subprocess, sys
import numpy as np
lbin, btrm, model = sys.argv[1:4]
opts = "".join("," + o for o in sys.argv[4:])
texts = ["Once upon a time there was a little girl",
         "The cat sat on the mat and looked at the big red ball.",
         "Lily and Tom went to the park. They played with a ball and had fun all day long."]
worst = 0.0
for t in texts:
    p = subprocess.run([lbin + "/llama-embedding", "-m", model, "--pooling", "last", "--embd-normalize", "-1",
                        "-ctk", "f32", "-ctv", "f32", "-c", "512", "-b", "512", "-ub", "512", "-t", "1",
                        "--embd-output-format", "json", "-p", t], capture_output=True, text=True, check=True,
                       timeout=300)
    ref = np.array(json.loads(p.stdout)["data"][0]["embedding"])
    ids = subprocess.run([btrm, "generate", "--backbone", "gguf:" + model + opts, "--tokenize", t],
                         capture_output=True, text=True, check=True).stdout
    open("ids.txt", "w").write(ids)
    h = subprocess.run([btrm, "generate", "--backbone", "gguf:" + model + opts, "--hidden", "ids.txt"],
                       capture_output=True, text=True, check=True).stdout
    got = np.array(json.loads(h)["last"])
    worst = max(worst, np.linalg.norm(got - ref) / np.linalg.norm(ref))
print(f"| {model.rsplit('/', 1)[-1]} | {opts.lstrip(',') or 'dequant'} | {len(texts)} | {worst:.2g} |")
PY
}
cd "$WORKDIR"
for a in llama qwen2 phi3 gemma2; do
    layers=2; [ $a = gemma2 ] && layers=26
    extra=""; case $a in phi3|gemma2) extra="--window 7" ;; esac
    # shellcheck disable=SC2086
    run "$PY" "$top/tests/gguf_quantize.py" --synthetic $a agree-$a.gguf --vocab-from "$vocab" --layers $layers $extra
    agree "$WORKDIR/agree-$a.gguf"
done
for t in f16 q8_0 q4_k q6_k; do
    run "$PY" "$top/tests/gguf_quantize.py" agree-llama.gguf agree-llama-$t.gguf --type $t
    agree "$WORKDIR/agree-llama-$t.gguf"
    [ $t = f16 ] || agree "$WORKDIR/agree-llama-$t.gguf" kernel=int8
done
