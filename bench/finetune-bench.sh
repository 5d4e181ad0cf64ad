#!/usr/bin/env bash
# bench/finetune-bench.sh: end-to-end throughput of `btrm train` with
# model.backbone (docs/training.md): tokens/s and achieved GFLOP/s of the
# backbone's forward + backward, as the run logs them in metrics.jsonl
# (tokens_per_s, gflop_per_s: btrm_llama_train_flops of each step's micro-
# batches over the step's wall time, so the head, the loss, the collective
# and the optimizer count as overhead), for LoRA r = 16 on all seven
# projections and top_k 1, on 1 and 2 ranks, next to the GEMM peak of the
# same backend and precision (1 thread, times the rank count; see below).
# Prints a markdown table for docs/performance.md.
#
# Model: a synthetic 2-block Llama GGUF (bench/make-llama-gguf.py, F32, random
# weights) of width DIM (2048: TinyLlama's block, hidden 5632, 32 heads, 4 kv
# heads; 4096: Llama 2 7B's, hidden 11008, 32/32). Data: PAIRS synthetic text
# pairs (tests/make_text_pairs.py), each text cut to its last TOKENS tokens.
# The first metrics window is warm-up and skipped; a run's rate is the mean of
# the other windows (equal-sized windows of tokens: the harmonic mean of
# tokens_per_s, and gflop_per_s likewise).
#
# Environment: BTRM (default src/btrm), BTRM_MPIRUN (default tests/mpirun.sh),
# PYTHON (/usr/bin/python3), BTRM_SHARED (../shared: the vocabulary of
# stories260K), DIMS ("2048"), MODES ("lora top_k"), RANKS ("1 2"), BATCH
# (global batch in pairs, 8), MICRO (train.micro_batch, 2), STEPS (6),
# LOG_EVERY (2), TOKENS (embed.max_tokens, 128), PAIRS (64), PRECISION
# (train.precision: fp32 or bf16; default unset = fp32), PEAK (GFLOP/s of
# one core; measured when unset), WORK
# (scratch directory; default a new one under TMPDIR, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BTRM=${BTRM:-$ROOT/src/btrm}
BTRM_MPIRUN=${BTRM_MPIRUN:-$ROOT/tests/mpirun.sh}
PYTHON=${PYTHON:-/usr/bin/python3}
BTRM_SHARED=${BTRM_SHARED:-$ROOT/../shared}
DIMS=${DIMS:-2048}
MODES=${MODES:-lora top_k}
RANKS=${RANKS:-1 2}
BATCH=${BATCH:-8}
MICRO=${MICRO:-2}
STEPS=${STEPS:-6}
LOG_EVERY=${LOG_EVERY:-2}
TOKENS=${TOKENS:-128}
PAIRS=${PAIRS:-64}
PRECISION=${PRECISION:-}
keep_work=${WORK:+1}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/btrm-finetune-bench.XXXXXX")}
mkdir -p "$WORK"
[ -n "$keep_work" ] || trap 'rm -rf "$WORK"' EXIT

log() { echo "+ $*" >&2; }
calc() { awk "BEGIN { print $* }"; }

echo "# finetune-bench: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# the GEMM peak of the backend and precision the run uses, 1 thread: with
# oneDNN, bench/gemm-peak at a dim-4096 prefill's shapes (q: 512 x 4096 x 4096,
# ffn: 512 x 11008 x 4096), dnnl_sgemm for fp32 and dnnl_gemm_bf16bf16f32 on
# plain layouts for bf16 (the compute-engine issue's definition); without
# oneDNN, the sgemm peak of the BLAS (bench/sgemm-peak)
if [ -z "${PEAK:-}" ]; then
    if "$BTRM" --version | grep -q oneDNN; then
        route=dnnl_sgemm
        [ "$PRECISION" = bf16 ] && route=dnnl_bf16
        [ -x bench/gemm-peak ] || make -C bench gemm-peak >&2
        log bench/gemm-peak --min-time 1 --shapes q,ffn
        bench/gemm-peak --min-time 1 --shapes q,ffn >"$WORK/peak.txt"
        cat "$WORK/peak.txt" >&2
        PEAK=$(awk -v r="$route" '!/^#/ && $10 == r { for (i = 1; i <= NF; i++) if ($i == "best") v = $(i + 1)
                   if (v > best) best = v } END { print best + 0 }' "$WORK/peak.txt")
    else
        route=sgemm
        [ -x bench/sgemm-peak ] || make -C bench sgemm-peak >&2
        log bench/sgemm-peak --threads 1 --min-time 1
        bench/sgemm-peak --threads 1 --min-time 1 >"$WORK/peak.txt"
        PEAK=$(awk '!/^#/ && $(NF-2) == 1 && $(NF-1) > best { best = $(NF-1) } END { print best }' \
            "$WORK/peak.txt")
    fi
fi
echo "# GEMM peak (${route:-given}), 1 thread: $PEAK GFLOP/s" >&2

# texts long enough to fill TOKENS tokens: the synthetic pairs, each repeated
if [ ! -s "$WORK/pairs.h5" ]; then
    "$PYTHON" tests/make_text_pairs.py "$PAIRS" 1 | "$PYTHON" -c '
import json, sys
n = int(sys.argv[1])
for line in sys.stdin:
    p = json.loads(line)
    print(json.dumps({k: v + (" The end." + v) * n for k, v in p.items()}))' $((TOKENS / 40 + 1)) \
        >"$WORK/pairs.jsonl"
    "$BTRM" prep -q "$WORK/pairs.jsonl" -o "$WORK/pairs.h5" >&2
fi

printf '| dim | mode | precision | ranks | tokens/s | GFLOP/s | GEMM peak GFLOP/s | %% of peak | 1-min load |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for dim in $DIMS; do
    if [ "$dim" -ge 4096 ]; then ffn=11008 kv=32; else ffn=$((dim * 11 / 4)) kv=4; fi
    model="$WORK/llama-$dim.gguf"
    if [ ! -s "$model" ]; then
        log bench/make-llama-gguf.py "$model" --dim "$dim" --layers 2 --heads 32 --kv-heads $kv --ffn $ffn --type f32
        "$PYTHON" bench/make-llama-gguf.py "$model" --dim "$dim" --layers 2 --heads 32 \
            --kv-heads $kv --ffn $ffn --type f32 \
            --vocab-from "$BTRM_SHARED/models/stories260K/stories260K.gguf" >&2
    fi
    for mode in $MODES; do
        if [ "$mode" = lora ]; then ft="{type: lora, rank: 16, alpha: 32}"; else ft="{type: top_k, layers: 1}"; fi
        for np in $RANKS; do
            out="$WORK/run-$dim-$mode-$np"
            rm -rf "$out"
            cat >"$WORK/run.yaml" <<YAML
run: {name: finetune-bench, threads: 1}
data: {train: "$WORK/pairs.h5"}
model: {backbone: "gguf:$model", finetune: $ft}
embed: {max_tokens: $TOKENS}
loss: {type: bt}
train: {global_batch: $BATCH, micro_batch: $MICRO, steps: $STEPS, log_every: $LOG_EVERY${PRECISION:+, precision: $PRECISION}}
checkpoint: {every: 0}
YAML
            load=$(cut -d' ' -f1 /proc/loadavg)
            cmd=("$BTRM_MPIRUN" "$np" "$BTRM" train "$WORK/run.yaml" -q --set "run.out_dir=\"$out\"")
            log "${cmd[@]}"
            "${cmd[@]}" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; exit 1; }
            read -r tps gfs < <("$PYTHON" - "$out/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])][1:]
hm = lambda k: len(rows) / sum(1.0 / r[k] for r in rows)
print(hm("tokens_per_s"), hm("gflop_per_s"))
PY
)
            peak=$(calc "$PEAK * $np")
            printf '| %s | %s | %s | %s | %.0f | %.1f | %.1f | %.0f%% | %s |\n' "$dim" \
                "$([ "$mode" = lora ] && echo "LoRA r=16" || echo "top_k 1")" "${PRECISION:-fp32}" \
                "$np" "$tps" "$gfs" \
                "$peak" "$(calc "100 * $gfs / $peak")" "$load"
        done
    done
done
