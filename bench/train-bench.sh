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
# gradient 2 H each per row). Peaks (1 thread, times the rank count):
# OpenBLAS's cblas_sgemm (the best of bench/sgemm-peak's shapes) for the
# fp32-cblas variant; with oneDNN, bench/gemm-peak at the step's two shapes
# (on the rank's rows): dnnl_sgemm's best for fp32, dnnl_gemm_bf16bf16f32's
# best (the larger of the two shapes) for bf16.
#
# Variants: BTRM_VARIANTS lists btrm runs as PRECISION[:FEATURES] with
# PRECISION fp32 (oneDNN when built with it), fp32-cblas (fp32 through
# OpenBLAS: BTRM_GEMM_BACKEND=cblas) or bf16 (train.precision), FEATURES f32
# (default) or bf16 (a bfloat16 copy of the store); TORCH_VARIANTS lists torch
# runs: fp32, bf16 (torch.autocast bf16). LOSS (bt | normbt) sets both.
#
# Environment: BTRM (default src/btrm), BTRM_MPIRUN (default tests/mpirun.sh),
# PYTHON (default /usr/bin/python3; TORCH=0 skips torch), PAIRS (16384),
# DIM (4096), HIDDEN (1024), BATCH (256), RANKS ("1 2"), HEADS ("linear mlp"),
# REPEAT (3), THREADS (BLAS threads per rank, 1), MLP_STEPS (90),
# MLP_LOG_EVERY (10), LINEAR_STEPS (2400), LINEAR_LOG_EVERY (300),
# LOSS (bt), BTRM_VARIANTS ("fp32"), TORCH_VARIANTS ("fp32"),
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
LOSS=${LOSS:-bt}
BTRM_VARIANTS=${BTRM_VARIANTS:-fp32}
TORCH_VARIANTS=${TORCH_VARIANTS:-fp32}
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

# --- oneDNN peaks at the step's shapes (rows per rank = 2 x BATCH / np)
gemm_peak() { # ROUTE NP: the best GFLOP/s of a gemm-peak route at the step's shapes
    local shapes=fwd,dW
    [ "$2" = 2 ] && shapes=fwd256,dW256
    [ -s "$WORK/gemm-$2.txt" ] || {
        [ -x bench/gemm-peak ] || make -C bench gemm-peak >&2
        log bench/gemm-peak --min-time 1 --shapes "$shapes"
        bench/gemm-peak --min-time 1 --shapes "$shapes" >"$WORK/gemm-$2.txt"
        cat "$WORK/gemm-$2.txt" >&2
    }
    awk -v r="$1" '!/^#/ && $10 == r { for (i = 1; i <= NF; i++) if ($i == "best") v = $(i + 1)
                   if (v > best) best = v } END { print best + 0 }' "$WORK/gemm-$2.txt"
}

# --- data
if [ ! -s "$WORK/train.h5" ]; then
    log "$BTRM" synth "$WORK/train.h5" --pairs "$PAIRS" --dim "$DIM" --seed 1 -q
    "$BTRM" synth "$WORK/train.h5" --pairs "$PAIRS" --dim "$DIM" --seed 1 -q
fi
case " $BTRM_VARIANTS " in *:bf16*)
    [ -s "$WORK/train-bf16.h5" ] || {
        log "$BTRM" synth "$WORK/train-bf16.h5" --pairs "$PAIRS" --dim "$DIM" --seed 1 --features-dtype bf16 -q
        "$BTRM" synth "$WORK/train-bf16.h5" --pairs "$PAIRS" --dim "$DIM" --seed 1 --features-dtype bf16 -q
    } ;;
esac

flops_per_pair() { # head
    if [ "$1" = linear ]; then calc "8 * $DIM"; else calc "8 * $DIM * $HIDDEN + 8 * $HIDDEN"; fi
}

# btrm_run HEAD NP [VARIANT]: one run; prints its rate (pairs/s) over windows 2..
btrm_run() {
    local head=$1 np=$2 variant=${3:-fp32} steps every out="$WORK/run-$1-$2"
    local precision=${variant%%:*} feat=f32 data="$WORK/train.h5" backend=
    case $variant in *:*) feat=${variant#*:} ;; esac
    [ "$feat" = bf16 ] && data="$WORK/train-bf16.h5"
    [ "$precision" = fp32-cblas ] && precision=fp32 backend=cblas
    if [ "$head" = linear ]; then steps=$LINEAR_STEPS every=$LINEAR_LOG_EVERY
    else steps=$MLP_STEPS every=$MLP_LOG_EVERY; fi
    rm -rf "$out"
    cat >"$WORK/$head.yaml" <<YAML
run: {name: bench-$head, threads: $THREADS}
data: {train: "$data"}
model: {head: $head, hidden: [$HIDDEN], activation: gelu}
loss: {type: $LOSS}
train: {global_batch: $BATCH, steps: $steps, log_every: $every, precision: $precision}
YAML
    local cmd=(env BTRM_GEMM_BACKEND="$backend" "$BTRM_MPIRUN" "$np" "$BTRM" train "$WORK/$head.yaml" -q --set "run.out_dir=\"$out\"")
    log "${cmd[@]}"
    "${cmd[@]}" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; return 1; }
    "$PYTHON" - "$out/metrics.jsonl" <<'PY'
import json, sys
rates = [json.loads(line)["pairs_per_s"] for line in open(sys.argv[1])][1:]
print(len(rates) / sum(1.0 / r for r in rates))
PY
}

torch_run() { # HEAD NP [fp32|bf16]: prints pairs/s of one torch run (best AdamW variant)
    local cmd=("$PYTHON" bench/torch_step.py --head "$1" --dim "$DIM" --hidden "$HIDDEN"
               --batch "$BATCH" --pairs "$PAIRS" --threads "$THREADS" --ranks "$2" --repeat 1
               --loss "$LOSS")
    [ "${3:-fp32}" = bf16 ] && cmd+=(--autocast bf16)
    if [ "$1" = linear ]; then cmd+=(--steps 600 --warmup 50); else cmd+=(--steps 40 --warmup 5); fi
    log "${cmd[@]}"
    "${cmd[@]}" 2>"$WORK/torch.err" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["pairs_per_s_best"])' ||
        { cat "$WORK/torch.err" >&2; return 1; }
}

stats() { # numbers on stdin -> "best median"
    sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[NR], m }'
}

peak_of() { # VARIANT NP: the 1-thread peak its GFLOP/s are divided by
    case ${1%%:*} in
        fp32-cblas) echo "$PEAK" ;;
        bf16) gemm_peak dnnl_bf16 "$2" ;;
        *) if "$BTRM" --version | grep -q oneDNN; then gemm_peak dnnl_sgemm "$2"; else echo "$PEAK"; fi ;;
    esac
}

printf '| head | ranks x threads | implementation | pairs/s best | pairs/s median | GFLOP/s (best) | %% of peak (best) | / torch fp32 (best) |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- |\n'
for head in $HEADS; do
    fpp=$(flops_per_pair "$head")
    for np in $RANKS; do
        loads=""
        for v in $BTRM_VARIANTS; do : >"$WORK/btrm-${v/:/_}.rates"; done
        for v in $TORCH_VARIANTS; do : >"$WORK/torch-$v.rates"; done
        for _ in $(seq 1 "$REPEAT"); do
            loads="$loads $(cut -d' ' -f1 /proc/loadavg)"
            for v in $BTRM_VARIANTS; do btrm_run "$head" "$np" "$v" >>"$WORK/btrm-${v/:/_}.rates"; done
            if [ "$TORCH" = 1 ]; then
                for v in $TORCH_VARIANTS; do torch_run "$head" "$np" "$v" >>"$WORK/torch-$v.rates"; done
            fi
        done
        t_best=""
        if [ "$TORCH" = 1 ] && [ -s "$WORK/torch-fp32.rates" ]; then
            read -r t_best t_med < <(stats <"$WORK/torch-fp32.rates")
        fi
        for v in $BTRM_VARIANTS; do
            f="$WORK/btrm-${v/:/_}.rates"
            echo "# $head np=$np btrm $v runs: $(tr '\n' ' ' <"$f")(1-min load before each:$loads)" >&2
            read -r b_best b_med < <(stats <"$f")
            peak=$(calc "$(peak_of "$v" "$np") * $np")
            printf '| %s | %s x %s | btrm %s | %.0f | %.0f | %.1f | %.0f%% of %.0f | %s |\n' "$head" \
                "$np" "$THREADS" "$v" "$b_best" "$b_med" "$(calc "$b_best * $fpp / 1e9")" \
                "$(calc "100 * $b_best * $fpp / 1e9 / $peak")" "$peak" \
                "$([ -n "$t_best" ] && printf '%.2f' "$(calc "$b_best / $t_best")" || echo -)"
            echo "$head $np btrm-$v $b_best $b_med" >>"$WORK/summary.txt"
        done
        if [ "$TORCH" = 1 ]; then
            for v in $TORCH_VARIANTS; do
                echo "# $head np=$np torch $v runs: $(tr '\n' ' ' <"$WORK/torch-$v.rates")" >&2
                read -r tv_best tv_med < <(stats <"$WORK/torch-$v.rates")
                printf '| %s | %s x %s | torch %s | %.0f | %.0f | %.1f | | %.2f |\n' "$head" "$np" \
                    "$THREADS" "$([ "$v" = bf16 ] && echo "autocast bf16" || echo fp32)" \
                    "$tv_best" "$tv_med" "$(calc "$tv_best * $fpp / 1e9")" "$(calc "$tv_best / $t_best")"
                echo "$head $np torch-$v $tv_best $tv_med" >>"$WORK/summary.txt"
            done
        fi
    done
done
# 2-rank speedups, per implementation
awk '{ best[$1 " " $3 " " $2] = $4 }
     END { for (k in best) { split(k, a, " "); if (a[3] == 2 && (a[1] " " a[2] " 1") in best)
         printf "# %s %s: 2 ranks / 1 rank = %.2f\n", a[1], a[2], best[k] / best[a[1] " " a[2] " 1"] } }' \
    "$WORK/summary.txt"
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
