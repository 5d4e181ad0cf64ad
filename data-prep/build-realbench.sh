#!/usr/bin/env bash
# build-realbench.sh: builds RealBench, the real-data train and test pair
# stores, from the seven public preference sets in ../shared/data (see
# data-prep/README.md). Steps, each printed before it runs:
#   1. data-prep/<set>.py for each set -> OUTDIR/jsonl/<set>.jsonl (shape 2)
#   2. btrm prep: all seven -> OUTDIR/realbench-train.h5 + realbench-test.h5,
#      split by a hash of the prompt (no prompt on both sides), categories
#      from configs/categories/realbench.yaml
#   3. btrm embed, hash backbone: -> OUTDIR/realbench-{train,test}-hash<DIM>.h5
set -euo pipefail

usage() {
    cat <<EOF
usage: data-prep/build-realbench.sh [--data-dir DIR] [-o OUTDIR] [--test-frac F] [--no-strict] [--no-embed]

Builds the RealBench pair stores from the shared preference data.

  --data-dir DIR   the shared data folder (default: \$BTRM_SHARED/data, else
                   ../shared/data next to the source tree)
  -o OUTDIR        where to write (default: realbench-out); it gets
                     jsonl/<set>.jsonl                the converters' output
                     realbench-train.h5, realbench-test.h5   text pair stores (btrm prep)
                     realbench-train-hash<DIM>.h5, realbench-test-hash<DIM>.h5
                                                      the same with hash features (btrm embed)
  --test-frac F    fraction of prompts in the test store (default 0.5)
  --no-strict      run btrm prep without --strict
  --no-embed       stop after btrm prep
  -h, --help       this help

Environment: BTRM (the btrm binary, default src/btrm in the source tree, the
installed btrm for an installed copy, else btrm on PATH),
PYTHON (default /usr/bin/python3), MPIRUN (default mpirun, called as
"\$MPIRUN -np \$NP btrm embed ..."), NP (ranks for embed, default 2),
DIM (hash feature dimension, default 4096).
EOF
}

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data_dir=""
out_dir=realbench-out
test_frac=0.5
strict=--strict
embed=1
while [ $# -gt 0 ]; do
    case $1 in
        --data-dir) [ $# -ge 2 ] || { echo "$0: --data-dir needs a value" >&2; exit 2; }; data_dir=$2; shift 2 ;;
        --data-dir=*) data_dir=${1#*=}; shift ;;
        -o|--out-dir) [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }; out_dir=$2; shift 2 ;;
        --test-frac) [ $# -ge 2 ] || { echo "$0: --test-frac needs a value" >&2; exit 2; }; test_frac=$2; shift 2 ;;
        --no-strict) strict=""; shift ;;
        --no-embed) embed=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$0: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$data_dir" ]; then
    if [ -n "${BTRM_SHARED:-}" ]; then data_dir=$BTRM_SHARED/data; else data_dir=$(cd "$top/.." && pwd)/shared/data; fi
fi
[ -d "$data_dir" ] || { echo "$0: data folder '$data_dir' not found (give --data-dir or set BTRM_SHARED)" >&2; exit 2; }
# btrm prep --split takes the train fraction
train_frac=$(awk -v f="$test_frac" 'BEGIN { if (f + 0 > 0 && f + 0 < 1) printf "%.6g", 1 - f; else exit 1 }') ||
    { echo "$0: --test-frac must be a fraction in (0, 1) (got '$test_frac')" >&2; exit 2; }

installed_bindir="" # set by make install to the installed btrm's folder
if [ -z "${BTRM:-}" ]; then
    if [ -x "$top/src/btrm" ]; then BTRM=$top/src/btrm
    elif [ -n "$installed_bindir" ] && [ -x "$installed_bindir/btrm" ]; then BTRM=$installed_bindir/btrm
    else BTRM=$(command -v btrm || echo "$top/src/btrm"); fi
fi
PYTHON=${PYTHON:-/usr/bin/python3}
MPIRUN=${MPIRUN:-mpirun}
NP=${NP:-2}
DIM=${DIM:-4096}
category_map=$top/configs/categories/realbench.yaml
sets="hh-rlhf llmbar xstest pandalm humanevalpack gsm8k truthfulqa"

run() { echo "+ $*"; "$@"; }

mkdir -p "$out_dir/jsonl"
inputs=()
for set in $sets; do
    run "$PYTHON" "$top/data-prep/$set.py" --data-dir "$data_dir" -o "$out_dir/jsonl/$set.jsonl"
    inputs+=("$out_dir/jsonl/$set.jsonl")
done

train=$out_dir/realbench-train.h5
test=$out_dir/realbench-test.h5
# btrm prep --split F keeps a fraction F = 1 - test-frac of the prompts,
# chosen by a hash of the prompt text, in -o and sends the rest to
# --valid-out, so pairs that share a prompt (GSM8K's, XSTest's) stay on one
# side. The default test fraction 0.5 halves every set: with 9,119 pairs in
# all, a smaller test side would leave too few pairs for a per-subset accuracy
# (at 0.5: about 82 per HumanEvalPack language, 23 in LLMBar's Manual set).
run "$BTRM" prep "${inputs[@]}" -o "$train" --category-map "$category_map" \
    --split "$train_frac" --valid-out "$test" --split-by prompt $strict

if [ "$embed" = 1 ]; then
    for part in train test; do
        # shellcheck disable=SC2086  # MPIRUN may be a command with arguments
        run $MPIRUN -np "$NP" "$BTRM" embed "$out_dir/realbench-$part.h5" \
            -o "$out_dir/realbench-$part-hash$DIM.h5" --backbone hash --dim "$DIM"
    done
fi
echo "RealBench in $out_dir:"
ls -l "$out_dir"/realbench-*.h5
