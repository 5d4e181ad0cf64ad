#!/usr/bin/env bash
# tools/demo.sh: the README's demo. BT against NormBT, a linear head trained
# on 2 MPI ranks, one table at the end:
#  - with the real data (the shared folder's data/, which data-prep/fetch.sh
#    fills): RealBench, the seven public preference sets converted, split by
#    prompt and embedded with the hash backbone (data-prep/build-realbench.sh),
#    trained with configs/experiments/realbench-{bt,normbt}.yaml; accuracy
#    overall, per category, and on the closest fifth of the test pairs;
#  - without it: synthetic stores with fine (close) and coarse (far apart)
#    pairs, trained with configs/demo/{bt,normbt}.yaml.
# Works from a built source tree and from an installed btrm
# (PREFIX/share/btrm/tools/demo.sh). Every file goes to $OUT.
#   OUT=demo-out  NP=2  BTRM=path/to/btrm  BTRM_SHARED=DIR  DEMO_DATA=auto|real|synthetic  tools/demo.sh
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
installed_bindir="" # set by make install to the installed btrm's folder
if [ -z "${BTRM:-}" ]; then
    if [ -x "$top/src/btrm" ]; then BTRM=$top/src/btrm
    elif [ -n "$installed_bindir" ] && [ -x "$installed_bindir/btrm" ]; then BTRM=$installed_bindir/btrm
    elif command -v btrm >/dev/null 2>&1; then BTRM=$(command -v btrm)
    else echo "demo.sh: btrm not found: build it (make) or set BTRM=/path/to/btrm" >&2; exit 2; fi
fi
NP=${NP:-2}
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-/usr/bin/python3}
if [ -n "${BTRM_SHARED:-}" ]; then shared=$BTRM_SHARED; else shared=$(cd "$top/.." && pwd)/shared; fi
mode=${DEMO_DATA:-auto}
if [ "$mode" = auto ]; then
    if [ -d "$shared/data" ] && [ -x "$PY" ]; then mode=real; else mode=synthetic; fi
fi
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun_np() { mpirun -np "$NP" --oversubscribe --bind-to none "$@"; }
start=$(date +%s)

# train_eval LOSS CONFIG TRAIN TEST: trains on NP ranks, evaluates on TEST
train_eval() {
    local loss=$1 config=$2 train=$3 test=$4
    echo "== training $loss on $NP ranks ($config)"
    mpirun_np "$BTRM" train "$config" --quiet --set run.out_dir="$OUT/$loss" \
        --set data.train="$train" --set "data.eval=[$test]"
    mpirun_np "$BTRM" eval "$OUT/$loss/final.h5" "$test" --json "$OUT/$loss/test.json" \
        > "$OUT/$loss/test.txt"
}

if [ "$mode" = real ]; then
    echo "== RealBench: the seven preference sets of $shared/data, hash features"
    DIM=${DIM:-4096}
    BTRM=$BTRM NP=$NP DIM=$DIM MPIRUN="mpirun --oversubscribe --bind-to none" \
        "$top/data-prep/build-realbench.sh" --data-dir "$shared/data" -o "$OUT/realbench" \
        > "$OUT/realbench.log" 2>&1 ||
        { echo "demo.sh: building RealBench failed; see $OUT/realbench.log" >&2; exit 1; }
    train=$OUT/realbench/realbench-train-hash$DIM.h5
    test=$OUT/realbench/realbench-test-hash$DIM.h5
    for loss in bt normbt; do
        train_eval $loss "$top/configs/experiments/realbench-$loss.yaml" "$train" "$test"
    done
    echo
    echo "RealBench test set ($test), hash-$DIM features, linear head, $NP ranks:"
    "$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
res = {loss: json.load(open("%s/%s/test.json" % (out, loss))) for loss in ("bt", "normbt")}
cats = ["Chat", "Chat Hard", "Safety", "Reasoning", "Factuality"]
cats = [c for c in cats if c in res["bt"]["by_category"]] + \
       sorted(c for c in res["bt"]["by_category"] if c not in cats)
head = ["loss", "overall"] + cats + ["closest 1/5"]
rows = []
for loss, r in res.items():
    rows.append([loss, "%.4f" % r["accuracy"]] +
                ["%.4f" % r["by_category"][c]["accuracy"] for c in cats] +
                ["%.4f" % r["by_distance_quintile"][0]["accuracy"]])
width = [max(len(h), 6) for h in head]
print("  ".join(h.rjust(w) if i else h.ljust(8) for i, (h, w) in enumerate(zip(head, width))))
for row in rows:
    print("  ".join(v.rjust(w) if i else v.ljust(8) for i, (v, w) in enumerate(zip(row, width))))
n = res["bt"]["by_distance_quintile"][0]["n"]
print("(closest 1/5: the %d test pairs whose hash representations are closest, where BT's" % n)
print(" gradient is weakest; pairs per category: %s)" %
      ", ".join("%s %d" % (c, res["bt"]["by_category"][c]["n"]) for c in cats))
PY
else
    echo "== synthetic data: $OUT/train.h5, $OUT/test.h5"
    if [ "$mode" = synthetic ] && [ "${DEMO_DATA:-auto}" = auto ]; then
        echo "   (no real data in $shared/data: data-prep/fetch.sh --data gets it, then this demo runs on it)"
    fi
    "$BTRM" synth "$OUT/train.h5" --pairs 20000 --dim 256 --seed 1
    "$BTRM" synth "$OUT/test.h5" --pairs 5000 --dim 256 --seed 2
    for loss in bt normbt; do
        train_eval $loss "$top/configs/demo/$loss.yaml" "$OUT/train.h5" "$OUT/test.h5"
    done
    # One row per loss from the eval tables: overall, fine, coarse accuracy,
    # the closest fifth, and the share of the gradient of the farthest fifth.
    row() {
        awk -v name="$1" '
            $1 == "accuracy" { overall = $2 }
            $1 == "category" && $2 == "fine" { fine = $6 }
            $1 == "category" && $2 == "coarse" { coarse = $6 }
            $1 == "q1" { closest = $(NF - 1) }
            $1 == "q5" { share = $NF }
            END { printf "%-8s %9.4f %9.4f %9.4f %12.4f %12.4f\n", name, overall, fine, coarse, closest, share }
        ' "$OUT/$1/test.txt"
    }
    echo
    echo "Synthetic test set ($OUT/test.h5), linear head, $NP ranks:"
    printf "%-8s %9s %9s %9s %12s %12s\n" loss overall fine coarse "closest 1/5" "top-q share"
    row bt
    row normbt
    echo "(closest 1/5: accuracy on the 20% closest pairs; top-q share: share of"
    echo " sum w_i*sigmoid(-dr_i)*d_i carried by the 20% most distant pairs)"
fi
echo
echo "Files in $OUT: the stores, bt/ and normbt/ (config.yaml, metrics.jsonl, final.h5,"
echo "test.json, test.txt: the full evaluation tables). $(( $(date +%s) - start )) s."
