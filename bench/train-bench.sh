#!/usr/bin/env bash
# bench/train-bench.sh: training throughput of `btrm train` (pairs/s and
# achieved GFLOP/s) for a linear head (D = 4096) and an mlp head
# (4096 -> 1024 -> 1, gelu) at global batch 256, on 1 and 2 ranks, next to
# the sgemm peak of the same BLAS (bench/sgemm-peak) and, run by run in the
# same loop, the PyTorch CPU step of bench/torch_step.py. Prints a markdown
# table for docs/performance.md.
#
# Method: one synthetic pair store (btrm synth, PAIRS pairs of width DIM,
# float32); each configuration runs REPEAT times, interleaved with the torch
# reference, so both see the same machine load. A btrm run logs a metrics
# line every LOG_EVERY steps; the first window is warm-up and is skipped; the
# run's rate is pairs / seconds over the other windows (read from
# metrics.jsonl: pairs_per_s of equal-sized windows, so their harmonic mean).
# The table gives the best and the median run.
#
# FLOPs per pair (docs/performance.md): linear 8 D (forward 2 D and weight
# gradient 2 D per row, 2 rows); mlp 8 D H + 8 H (fc0 forward 2 D H and
# weight gradient 2 D H per row, no input gradient; out forward and
# gradient 2 H each per row). Peak: the best 1-thread GFLOP/s of
# bench/sgemm-peak over its shapes, times the rank count (1 thread per rank).
#
# Environment: BTRM (default src/btrm), BTRM_MPIRUN (default tests/mpirun.sh),
# PYTHON (default /usr/bin/python3; TORCH=0 skips torch), PAIRS (16384),
# DIM (4096), HIDDEN (1024), BATCH (256), RANKS ("1 2"), HEADS ("linear mlp"),
# REPEAT (3), THREADS (BLAS threads per rank, 1), MLP_STEPS (90),
# MLP_LOG_EVERY (10), LINEAR_STEPS (2400), LINEAR_LOG_EVERY (300),
# PEAK (GFLOP/s of one core; measured with bench/sgemm-peak when unset),
# WORK (scratch directory; default a new one under TMPDIR, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BTRM=${BTRM:-$ROOT/src/btrm}
BTRM_MPIRUN=${BTRM_MPIRUN:-$ROOT/tests/mpirun.sh}
PYTHON=${PYTHON:-/usr/bin/python3}
TORCH=${TORCH:-1}
PAIRS=${PAIRS:-16384}
DIM=${DIM:-4096}
HIDDEN=${HIDDEN:-1024}
BATCH=${BATCH:-256}
RANKS=${RANKS:-1 2}
HEADS=${HEADS:-linear mlp}
REPEAT=${REPEAT:-3}
THREADS=${THREADS:-1}
MLP_STEPS=${MLP_STEPS:-90}
MLP_LOG_EVERY=${MLP_LOG_EVERY:-10}
LINEAR_STEPS=${LINEAR_STEPS:-2400}
LINEAR_LOG_EVERY=${LINEAR_LOG_EVERY:-300}
keep_work=${WORK:+1}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/btrm-train-bench.XXXXXX")}
mkdir -p "$WORK"
[ -n "$keep_work" ] || trap 'rm -rf "$WORK"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none

log() { echo "+ $*" >&2; }
calc() { awk "BEGIN { print $* }"; }

echo "# train-bench: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- the sgemm peak of one core
if [ -z "${PEAK:-}" ]; then
    [ -x bench/sgemm-peak ] || make -C bench sgemm-peak >&2
    log bench/sgemm-peak --threads 1 --min-time 1
    bench/sgemm-peak --threads 1 --min-time 1 >"$WORK/peak.txt"
    cat "$WORK/peak.txt" >&2
    PEAK=$(awk '!/^#/ && $(NF-2) == 1 && $(NF-1) > best { best = $(NF-1) } END { print best }' \
        "$WORK/peak.txt")
fi
echo "# sgemm peak, 1 thread: $PEAK GFLOP/s" >&2

# --- data
if [ ! -s "$WORK/train.h5" ]; then
    log "$BTRM" synth "$WORK/train.h5" --pairs "$PAIRS" --dim "$DIM" --seed 1 -q
    "$BTRM" synth "$WORK/train.h5" --pairs "$PAIRS" --dim "$DIM" --seed 1 -q
fi

flops_per_pair() { # head
    if [ "$1" = linear ]; then calc "8 * $DIM"; else calc "8 * $DIM * $HIDDEN + 8 * $HIDDEN"; fi
}

# btrm_run HEAD NP: one run; prints its rate (pairs/s) over windows 2..
btrm_run() {
    local head=$1 np=$2 steps every out="$WORK/run-$1-$2"
    if [ "$head" = linear ]; then steps=$LINEAR_STEPS every=$LINEAR_LOG_EVERY
    else steps=$MLP_STEPS every=$MLP_LOG_EVERY; fi
    rm -rf "$out"
    cat >"$WORK/$head.yaml" <<YAML
run: {name: bench-$head, threads: $THREADS}
data: {train: "$WORK/train.h5"}
model: {head: $head, hidden: [$HIDDEN], activation: gelu}
loss: {type: bt}
train: {global_batch: $BATCH, steps: $steps, log_every: $every}
YAML
    local cmd=("$BTRM_MPIRUN" "$np" "$BTRM" train "$WORK/$head.yaml" -q --set "run.out_dir=\"$out\"")
    log "${cmd[@]}"
    "${cmd[@]}" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; return 1; }
    "$PYTHON" - "$out/metrics.jsonl" <<'PY'
import json, sys
rates = [json.loads(line)["pairs_per_s"] for line in open(sys.argv[1])][1:]
print(len(rates) / sum(1.0 / r for r in rates))
PY
}

torch_run() { # HEAD NP: prints pairs/s of one torch run (best AdamW variant)
    local cmd=("$PYTHON" bench/torch_step.py --head "$1" --dim "$DIM" --hidden "$HIDDEN"
               --batch "$BATCH" --pairs "$PAIRS" --threads "$THREADS" --ranks "$2" --repeat 1)
    if [ "$1" = linear ]; then cmd+=(--steps 600 --warmup 50); else cmd+=(--steps 40 --warmup 5); fi
    log "${cmd[@]}"
    "${cmd[@]}" 2>"$WORK/torch.err" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["pairs_per_s_best"])' ||
        { cat "$WORK/torch.err" >&2; return 1; }
}

stats() { # numbers on stdin -> "best median"
    sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[NR], m }'
}

printf '| head | ranks x threads | implementation | pairs/s best | pairs/s median | GFLOP/s (best) | %% of peak (best) | btrm / torch (best) |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- |\n'
for head in $HEADS; do
    fpp=$(flops_per_pair "$head")
    for np in $RANKS; do
        : >"$WORK/btrm.rates"
        : >"$WORK/torch.rates"
        loads=""
        for _ in $(seq 1 "$REPEAT"); do
            loads="$loads $(cut -d' ' -f1 /proc/loadavg)"
            btrm_run "$head" "$np" >>"$WORK/btrm.rates"
            if [ "$TORCH" = 1 ]; then torch_run "$head" "$np" >>"$WORK/torch.rates"; fi
        done
        echo "# $head np=$np btrm runs: $(tr '\n' ' ' <"$WORK/btrm.rates")(1-min load before each:$loads)" >&2
        read -r b_best b_med < <(stats <"$WORK/btrm.rates")
        peak=$(calc "$PEAK * $np")
        t_best=""
        if [ "$TORCH" = 1 ]; then
            echo "# $head np=$np torch runs: $(tr '\n' ' ' <"$WORK/torch.rates")" >&2
            read -r t_best t_med < <(stats <"$WORK/torch.rates")
        fi
        printf '| %s | %s x %s | btrm | %.0f | %.0f | %.1f | %.0f%% | %s |\n' "$head" "$np" \
            "$THREADS" "$b_best" "$b_med" "$(calc "$b_best * $fpp / 1e9")" \
            "$(calc "100 * $b_best * $fpp / 1e9 / $peak")" \
            "$([ -n "$t_best" ] && printf '%.2f' "$(calc "$b_best / $t_best")" || echo -)"
        if [ -n "$t_best" ]; then
            printf '| %s | %s x %s | torch | %.0f | %.0f | %.1f | %.0f%% | |\n' "$head" "$np" \
                "$THREADS" "$t_best" "$t_med" "$(calc "$t_best * $fpp / 1e9")" \
                "$(calc "100 * $t_best * $fpp / 1e9 / $peak")"
        fi
        echo "$head $np $b_best $b_med ${t_best:-} ${t_med:-}" >>"$WORK/summary.txt"
    done
done
# 2-rank speedups
awk '{ best[$1 " " $2] = $3; tb[$1 " " $2] = $5 }
     END { for (k in best) { split(k, a, " "); if (a[2] == 2 && (a[1] " 1") in best) {
         s = sprintf("# %s: 2 ranks / 1 rank = %.2f (btrm)", a[1], best[k] / best[a[1] " 1"]);
         if (tb[k] != "" && tb[a[1] " 1"] != "") s = s sprintf(", %.2f (torch DDP gloo)", tb[k] / tb[a[1] " 1"]);
         print s } } }' "$WORK/summary.txt"
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
