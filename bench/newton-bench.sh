#!/usr/bin/env bash
# bench/newton-bench.sh: optim.type newton (docs/newton.md).
#
# Part 1, one Newton iteration: for D in DIMS and N = PAIRS pairs, the mean
# time of an iteration split into form-H (local dgemm + reduce-scatter into
# the block-cyclic H), factorise (pdposv: Cholesky + solve) and other (loss,
# gradient, line search), on each rank count of RANKS; next to it one rank's
# LAPACK reference on the same H: cblas_dsyrk to form it, dposv to solve.
# The pairs live in memory (bench/newton-bench.c), so no file is written.
#
# Part 2, Newton vs AdamW to the same loss: a `btrm synth` store (CMP_PAIRS
# pairs of dim CMP_DIM, and a test store), BT loss without weight decay (so
# that both minimise the same objective: AdamW's decoupled decay is another
# one), `btrm train` with optim.type newton, then with adamw (full batch,
# cosine schedule) for each step count of ADAM_STEPS. Each model's exact
# full-batch training loss comes from `btrm eval` on the training store; the
# table gives the wall time, the gap to Newton's loss and the test accuracy.
# Part 2 needs a btrm whose train.c runs optim.type newton.
#
# Environment: BTRM (default src/btrm), BTRM_MPIRUN (default tests/mpirun.sh),
# DIMS (default "1024 2048 4096"), PAIRS (50000), RANKS ("1 2"), ITERS
# (Newton iterations timed, default 3; iteration 0 is setup), CMP_PAIRS
# (50000), CMP_DIM (256), CMP_RANKS (2), ADAM_STEPS ("30 100 300 1000 3000"),
# ADAM_LR (0.01), PARTS ("1 2"), WORK (scratch directory; default a new one
# under TMPDIR, removed at the end). OpenBLAS runs one thread per rank.
set -euo pipefail
cd "$(dirname "$0")/.."
BTRM=${BTRM:-$PWD/src/btrm}
BTRM_MPIRUN=${BTRM_MPIRUN:-$PWD/tests/mpirun.sh}
DIMS=${DIMS:-1024 2048 4096}
PAIRS=${PAIRS:-50000}
RANKS=${RANKS:-1 2}
ITERS=${ITERS:-3}
CMP_PAIRS=${CMP_PAIRS:-50000}
CMP_DIM=${CMP_DIM:-256}
CMP_RANKS=${CMP_RANKS:-2}
ADAM_STEPS=${ADAM_STEPS:-30 100 300 1000 3000}
ADAM_LR=${ADAM_LR:-0.01}
PARTS=${PARTS:-1 2}
export OPENBLAS_NUM_THREADS=1
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
keep_work=${WORK:+1}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/btrm-newton-bench.XXXXXX")}
mkdir -p "$WORK"
[ -n "$keep_work" ] || trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
calc() { awk "BEGIN { print ($1) }"; }
json() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }

echo "# btrm newton benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ " $PARTS " == *" 1 "* ]]; then
    # the driver, linked against the layer libraries (docs/architecture.md)
    bin=$WORK/newton-bench
    layers="cli run model io comm math core"
    incs=$(for l in $layers; do printf -- '-Isrc/%s ' "$l"; done)
    archives=$(for l in $layers; do printf -- 'src/%s/libbtrm_%s.a ' "$l" "$l"; done)
    # shellcheck disable=SC2086
    mpicc -std=c11 -O2 -g -Wall -Wextra -D_POSIX_C_SOURCE=200809L $incs \
        $(pkg-config --cflags hdf5-openmpi jansson yaml-0.1) -o "$bin" bench/newton-bench.c \
        $archives $(pkg-config --libs hdf5-openmpi scalapack-openmpi jansson yaml-0.1 \
        libxxhash zlib) $(pkg-config --libs libutf8proc 2>/dev/null) -lopenblas -lm
    echo
    echo "## One Newton iteration, N = $PAIRS pairs (seconds; mean of $ITERS iterations)"
    echo
    echo "| D | ranks | grid | form H | factorise (pdposv) | other | iteration | LAPACK dsyrk | LAPACK dposv |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for dim in $DIMS; do
        "$bin" --lapack --dim "$dim" --pairs "$PAIRS" >"$WORK/lapack-$dim.log" 2>&1
        lf=$(grep '"lapack"' "$WORK/lapack-$dim.log" | json t_dsyrk)
        ls=$(grep '"lapack"' "$WORK/lapack-$dim.log" | json t_dposv)
        for np in $RANKS; do
            "$BTRM_MPIRUN" "$np" "$bin" --dim "$dim" --pairs "$PAIRS" --iters "$ITERS" \
                >"$WORK/newton-$dim-$np.log" 2>&1
            s=$(grep '"summary"' "$WORK/newton-$dim-$np.log")
            grid=$(/usr/bin/python3 -c "import math; p=$np; r=max(d for d in range(1, int(math.isqrt(p)) + 1) if p % d == 0); print('%dx%d' % (r, p // r))")
            printf '| %s | %s | %s | %.2f | %.3f | %.3f | %.2f | %.2f | %.3f |\n' "$dim" "$np" "$grid" \
                "$(echo "$s" | json t_form)" "$(echo "$s" | json t_factor)" \
                "$(echo "$s" | json t_other)" "$(echo "$s" | json t_iter)" "$lf" "$ls"
        done
    done
fi

if [[ " $PARTS " == *" 2 "* ]]; then
    cd "$WORK"
    "$BTRM" synth train.h5 --pairs "$CMP_PAIRS" --dim "$CMP_DIM" --seed 1 >synth.log 2>&1
    "$BTRM" synth test.h5 --pairs 10000 --dim "$CMP_DIM" --seed 2 >>synth.log 2>&1
    cat >base.yaml <<YAML
run: {name: cmp, seed: 1}
data: {train: train.h5}
model: {head: linear}
loss: {type: bt}
optim: {weight_decay: 0.0}
train: {log_every: 100}
YAML
    full_loss() { # full_loss MODEL: exact mean BT loss on train.h5, test accuracy
        "$BTRM_MPIRUN" "$CMP_RANKS" "$BTRM" eval "$1" train.h5 --json tr.json -q
        "$BTRM_MPIRUN" "$CMP_RANKS" "$BTRM" eval "$1" test.h5 --json te.json -q
        echo "$(json loss <tr.json) $(json accuracy <te.json)"
    }
    t0=$(now)
    "$BTRM_MPIRUN" "$CMP_RANKS" "$BTRM" train base.yaml --set run.out_dir=newton \
        --set optim.type=newton --set optim.tol=1e-10 >newton.log 2>&1
    t1=$(now)
    if ! grep -q '"t_factor"' newton/metrics.jsonl 2>/dev/null; then
        echo "newton-bench.sh: $BTRM does not run optim.type newton (train.c hook); part 2 skipped" >&2
        exit 0
    fi
    read -r nloss nacc <<<"$(full_loss newton/final.h5)"
    iters=$(($(grep -c . newton/metrics.jsonl) - 1))
    echo
    echo "## Newton vs AdamW to the same loss: BT, no weight decay, N = $CMP_PAIRS, D = $CMP_DIM, $CMP_RANKS ranks"
    echo
    echo "| optimizer | steps | wall (s) | training loss | loss - Newton's | test accuracy |"
    echo "|---|---|---|---|---|---|"
    printf '| newton | %d iterations | %.2f | %.8f | 0 | %.4f |\n' "$iters" "$(calc "$t1 - $t0")" "$nloss" "$nacc"
    for steps in $ADAM_STEPS; do
        t0=$(now)
        "$BTRM_MPIRUN" "$CMP_RANKS" "$BTRM" train base.yaml --set run.out_dir=adam-$steps \
            --set optim.type=adamw --set optim.lr="$ADAM_LR" --set optim.schedule=cosine \
            --set train.global_batch=all --set train.steps="$steps" >adam-$steps.log 2>&1
        t1=$(now)
        read -r aloss aacc <<<"$(full_loss adam-$steps/final.h5)"
        printf '| adamw (full batch, lr %s cosine) | %d | %.2f | %.8f | %.2e | %.4f |\n' "$ADAM_LR" \
            "$steps" "$(calc "$t1 - $t0")" "$aloss" "$(calc "$aloss - $nloss")" "$aacc"
    done
    echo
    echo "(wall: the whole \`btrm train\` command including start-up; loss: \`btrm eval\` on the training store)"
fi
