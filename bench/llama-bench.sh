#!/bin/bash
# bench/llama-bench.sh: the prefill benchmark of bench/llama-results.md.
# Builds bench/llama-bench (against the layer libraries src/*/libbtrm_*.a: run `make` first), writes
# the synthetic Llama models (bench/make-llama-gguf.py) into $WORKDIR, and
# runs every case on 1 and 2 ranks with the sgemm reference measured under
# the same conditions, printing markdown table rows.
# Environment: WORKDIR (default /tmp/llama-bench; ~2.3 GB of models),
# BTRM_SHARED (default ../shared), MPIRUN (default tests/mpirun.sh), REPS
# (default 3), SEQ (tokens per sequence, default 512), RANKS (default "1 2"),
# CLOCK (cpu: each rank's process CPU time, robust to other jobs on the
# cores; wall: elapsed time; default cpu), BUILD_ONLY (set: build
# $WORKDIR/llama-bench and stop; bench/llama-cpp-compare.sh uses it).
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
bench=$WORKDIR/llama-bench
# the layer libraries in link order, and their include folders (docs/architecture.md)
layers="cli run model io comm math core"
incs=$(for l in $layers; do printf -- '-I%s/src/%s ' "$top" "$l"; done)
archives=$(for l in $layers; do printf -- '%s/src/%s/libbtrm_%s.a ' "$top" "$l" "$l"; done)
if [ ! -x "$bench" ] || [ "$top/bench/llama-bench.c" -nt "$bench" ] || [ "$top/src/io/libbtrm_io.a" -nt "$bench" ]; then
    # shellcheck disable=SC2086
    run mpicc -std=c11 -O2 -g -Wall -Wextra -D_POSIX_C_SOURCE=200809L $incs \
        -o "$bench" "$top/bench/llama-bench.c" $archives \
        $(pkg-config --cflags --libs hdf5-openmpi scalapack-openmpi jansson yaml-0.1 libxxhash zlib libutf8proc libpcre2-8) \
        -lopenblas -lm
fi
[ -z "${BUILD_ONLY:-}" ] || exit 0
for t in f32 q8_0; do
    [ -s "$WORKDIR/synth-$t.gguf" ] ||
        run "$PY" "$top/bench/make-llama-gguf.py" "$WORKDIR/synth-$t.gguf" --type $t
done
stories="gguf:$BTRM_SHARED/models/stories260K/stories260K.gguf"
echo "Clock: $CLOCK; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo
echo "| model | weights | ranks x threads | tokens per rank | s | tokens/s | GFLOP/s | per rank | sgemm per rank | % of sgemm |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for np in $RANKS; do
    run "$MPIRUN" "$np" "$bench" --backbone "$stories" --seq "$SEQ" --seqs 8 --reps "$REPS" --sgemm --clock "$CLOCK" --markdown
done
for spec in "synth-f32.gguf" "synth-q8_0.gguf" "synth-q8_0.gguf,dequantize=1"; do
    for np in $RANKS; do
        run "$MPIRUN" "$np" "$bench" --backbone "gguf:$WORKDIR/$spec" --seq "$SEQ" --seqs 1 \
            --reps "$REPS" --sgemm --clock "$CLOCK" --markdown
    done
done
if [ -x "$top/bench/sgemm-peak" ]; then
    run "$top/bench/sgemm-peak" --threads 1 --square 4096 --markdown
fi
