#!/bin/bash
# bench/embed-precision.sh: embed.precision x embed.dequantize on a dim-4096
# Llama-shaped model (bench/make-llama-gguf.py: 2 layers, ffn 14336, random
# N(0, 1/in) weights) stored as F32, BF16 and Q8_0 (the same weights): for
# each combination, the prefill speed and the weights' memory (bench/llama-bench,
# 1 rank x 1 thread, 512 tokens) and the error of btrm embed's features
# against the float32 embedding of the F32 file (relative L2 error per row:
# median and max over the texts of tests/data/prep, pool=last), so the table
# of docs/backbones.md can be remade. bf16 needs oneDNN.
# Environment: WORKDIR (default /tmp/embed-precision; ~2.7 GB of models),
# BTRM_SHARED (default ../shared; the tokenizer of stories260K), REPS (3),
# SEQ (512), CLOCK (cpu).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKDIR=${WORKDIR:-/tmp/embed-precision}
export BTRM_SHARED=${BTRM_SHARED:-$top/../shared}
REPS=${REPS:-3}
SEQ=${SEQ:-512}
CLOCK=${CLOCK:-cpu}
PY=${PYTHON:-/usr/bin/python3}
BTRM=$top/src/btrm
run() { echo "+ $*" >&2; "$@"; }
mkdir -p "$WORKDIR"
run make -C "$top/bench" llama-bench >&2
for t in f32 bf16 q8_0; do
    [ -s "$WORKDIR/synth-$t.gguf" ] ||
        run "$PY" "$top/bench/make-llama-gguf.py" "$WORKDIR/synth-$t.gguf" --type $t
done
texts=$WORKDIR/texts.h5
[ -s "$texts" ] || run "$BTRM" prep -q "$top/tests/data/prep/hh.jsonl" \
    "$top/tests/data/prep/rewardbench.json" "$top/tests/data/prep/skywork.jsonl" -o "$texts"
ref=$WORKDIR/ref.h5
[ -s "$ref" ] || run "$BTRM" embed "$texts" -o "$ref" -q --backbone "gguf:$WORKDIR/synth-f32.gguf"
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg); $("$BTRM" --version | tail -1)"
echo "| weights | embed.precision | embed.dequantize | weights in memory (MiB: mapped + owned) | prefill tokens/s | GFLOP/s | % of the GEMM | features vs F32 fp32: median, max relative error per row |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for t in f32 bf16 q8_0; do
    for p in fp32 bf16; do
        for d in 0 1; do
            spec="gguf:$WORKDIR/synth-$t.gguf,precision=$p,dequantize=$d"
            out=$(run "$top/tests/mpirun.sh" 1 "$top/bench/llama-bench" --backbone "$spec" \
                  --seq "$SEQ" --reps "$REPS" --sgemm --clock "$CLOCK")
            echo "$out" >&2
            tps=$(echo "$out" | sed -n 's/.* \([0-9.]*\) tokens\/s, \([0-9.]*\) GFLOP\/s.*/\1/p' | head -1)
            gf=$(echo "$out" | sed -n 's/.* tokens\/s, \([0-9.]*\) GFLOP\/s.*/\1/p' | head -1)
            pct=$(echo "$out" | sed -n 's/.*prefill at \([0-9]*\)% of it.*/\1/p')
            mem=$(echo "$out" | sed -n 's/.*weights: \([0-9]*\) MiB mapped from the file, \([0-9]*\) MiB owned.*/\1 + \2/p')
            feat=$WORKDIR/feat-$t-$p-$d.h5
            run "$BTRM" embed "$texts" -o "$feat" -q --backbone "$spec" >&2
            err=$("$PY" - "$ref" "$feat" <<'PY'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["features"][()].astype(np.float64)
b = h5py.File(sys.argv[2], "r")["features"][()].astype(np.float64)
r = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
print("%.1e, %.1e" % (np.median(r), r.max()))
PY
)
            echo "| ${t^^} | $p | $d | $mem | $tps | $gf | $pct% | $err |"
        done
    done
done
