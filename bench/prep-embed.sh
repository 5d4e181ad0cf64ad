#!/usr/bin/env bash
# bench/prep-embed.sh: throughput of `btrm prep` (pairs/s) and `btrm embed`
# with the hash backbone (texts/s) on HH-RLHF harmless-base test (2,312 pairs,
# 4,624 texts, 3.3 MB of JSON), embed at 1 and 2 ranks. Prints a markdown
# table for docs/performance.md.
#
# Environment: BTRM (default src/btrm), BTRM_MPIRUN (default tests/mpirun.sh),
# INPUT (default $BTRM_SHARED/data/hh-rlhf/harmless-base/test.jsonl.gz),
# BTRM_SHARED (default ../shared), REPEAT (best of N runs, default 3),
# RANKS (default "1 2"), DIMS (default "4096 1024"), WORK (scratch directory,
# default a new one under TMPDIR, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
BTRM=${BTRM:-$PWD/src/btrm}
BTRM_MPIRUN=${BTRM_MPIRUN:-$PWD/tests/mpirun.sh}
BTRM_SHARED=${BTRM_SHARED:-$PWD/../shared}
INPUT=${INPUT:-$BTRM_SHARED/data/hh-rlhf/harmless-base/test.jsonl.gz}
REPEAT=${REPEAT:-3}
RANKS=${RANKS:-1 2}
DIMS=${DIMS:-4096 1024}
[ -r "$INPUT" ] || { echo "prep-embed.sh: $INPUT not found (set INPUT or BTRM_SHARED)" >&2; exit 2; }
keep_work=${WORK:+1}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/btrm-bench.XXXXXX")}
[ -n "$keep_work" ] || trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
calc() { awk "BEGIN { print ($1) }"; }
# best_of N CMD...: runs CMD N times, prints the fastest wall time in seconds;
# that run's output is left in $WORK/best.log.
best_of() {
    local n=$1 best="" t0 t1 dt
    shift
    for _ in $(seq 1 "$n"); do
        t0=$(now)
        "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; return 1; }
        t1=$(now)
        dt=$(calc "$t1 - $t0")
        if [ -z "$best" ] || [ "$(calc "$dt < $best")" = 1 ]; then
            best=$dt
            cp "$WORK/last.log" "$WORK/best.log"
        fi
    done
    echo "$best"
}
rate() { calc "int($1 / $2)"; }

echo "btrm prep/embed benchmark: $INPUT, best of $REPEAT, $(nproc) cores" >&2
echo "+ $BTRM prep $INPUT -o $WORK/hh.h5" >&2
t_prep=$(best_of "$REPEAT" "$BTRM" prep "$INPUT" -o "$WORK/hh.h5")
pairs=$(h5ls "$WORK/hh.h5/pairs/chosen" | sed -n 's/.*Dataset {\([0-9]*\)}.*/\1/p')
texts=$(h5ls "$WORK/hh.h5/texts" | sed -n 's/.*Dataset {\([0-9]*\)}.*/\1/p')
bytes=$(gzip -dc "$INPUT" | wc -c)

echo "| step | ranks | dim | wall s (whole command) | throughput |"
echo "| --- | --- | --- | --- | --- |"
printf '| prep (gzip JSONL -> %s pairs, %s texts) | 1 | - | %.3f | %s pairs/s, %.1f MB/s |\n' \
    "$pairs" "$texts" "$t_prep" "$(rate "$pairs" "$t_prep")" "$(calc "$bytes / $t_prep / 1000000")"
for dim in $DIMS; do
    for np in $RANKS; do
        echo "+ $BTRM_MPIRUN $np $BTRM embed $WORK/hh.h5 -o $WORK/e.h5 --backbone hash --dim $dim" >&2
        t=$(best_of "$REPEAT" "$BTRM_MPIRUN" "$np" "$BTRM" embed "$WORK/hh.h5" -o "$WORK/e.h5" \
            --backbone hash --dim "$dim")
        # embed's own timing in that run (from opening the backbone to the
        # rename), without MPI start-up
        inner=$(sed -n 's/.* rank[s]*, \([0-9.]*\) s, \([0-9]*\) texts\/s.*/\1 \2/p' "$WORK/best.log")
        printf '| embed hash (%s texts -> %s MB of float32) | %s | %s | %.3f | %s texts/s (inside btrm: %s s, %s texts/s) |\n' \
            "$texts" "$(calc "int($texts * $dim * 4 / 1000000)")" "$np" "$dim" "$t" \
            "$(rate "$texts" "$t")" "${inner%% *}" "${inner##* }"
    done
done
