#!/bin/bash
# bench/llama-bench.sh: the prefill benchmark of bench/llama-results.md.
# Builds bench/llama-bench (make -C bench llama-bench: run `make` first), writes
# the synthetic Llama models (bench/make-llama-gguf.py) into $WORKDIR, and
# runs every case on 1 and 2 ranks with the GEMM reference measured under
# the same conditions, printing markdown table rows.
# Environment: WORKDIR (default /tmp/llama-bench; ~2.3 GB of models),
# BTRM_SHARED (default ../shared), MPIRUN (default tests/mpirun.sh), REPS
# (default 3), SEQ (tokens per sequence, default 512), RANKS (default "1 2"),
# CLOCK (cpu: each rank's process CPU time, robust to other jobs on the
# cores; wall: elapsed time; default cpu), BUILD_ONLY (set: build
# bench/llama-bench and stop; bench/llama-cpp-compare.sh uses it).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKDIR=${WORKDIR:-/tmp/llama-bench}
BTRM_SHARED=${BTRM_SHARED:-$top/../shared}
MPIRUN=${MPIRUN:-$top/tests/mpirun.sh}
REPS=${REPS:-3}
SEQ=${SEQ:-512}
RANKS=${RANKS:-1 2}
CLOCK=${CLOCK:-cpu}
PY=${PYTHON:-/usr/bin/python3}
export BTRM_SHARED
run() { echo "+ $*" >&2; "$@"; }
mkdir -p "$WORKDIR"
run make -C "$top/bench" llama-bench >&2
bench=$top/bench/llama-bench
[ -z "${BUILD_ONLY:-}" ] || exit 0
for t in f32 q8_0; do
    [ -s "$WORKDIR/synth-$t.gguf" ] ||
        run "$PY" "$top/bench/make-llama-gguf.py" "$WORKDIR/synth-$t.gguf" --type $t
done
stories="gguf:$BTRM_SHARED/models/stories260K/stories260K.gguf"
echo "Clock: $CLOCK; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo
echo "| model | weights | ranks x threads | tokens per rank | s | tokens/s | GFLOP/s | per rank | GEMM per rank | % of GEMM |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for np in $RANKS; do
    run "$MPIRUN" "$np" "$bench" --backbone "$stories" --seq "$SEQ" --seqs 8 --reps "$REPS" --sgemm --clock "$CLOCK" --markdown
done
# embed.precision x embed.dequantize (docs/backbones.md's table); precision=bf16
# needs oneDNN (btrm --version says "bf16 yes")
for spec in "synth-f32.gguf" "synth-q8_0.gguf" "synth-q8_0.gguf,dequantize=1" \
            "synth-f32.gguf,precision=bf16" "synth-q8_0.gguf,precision=bf16" \
            "synth-q8_0.gguf,dequantize=1,precision=bf16"; do
    for np in $RANKS; do
        run "$MPIRUN" "$np" "$bench" --backbone "gguf:$WORKDIR/$spec" --seq "$SEQ" --seqs 1 \
            --reps "$REPS" --sgemm --clock "$CLOCK" --markdown
    done
done
if [ -x "$top/bench/sgemm-peak" ]; then
    run "$top/bench/sgemm-peak" --threads 1 --square 4096 --markdown
fi
