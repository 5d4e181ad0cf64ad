#!/usr/bin/env bash
# tools/demo.sh: the README's demo. Generates synthetic train and test pair
# stores (fine pairs close together, coarse pairs far apart, label noise),
# trains a linear head with BT and with NormBT on 2 MPI ranks, evaluates both
# on the test set and prints one table. Run from the top of a built tree.
#   BTRM=path/to/btrm  NP=2  OUT=demo-out  tools/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BTRM=${BTRM:-src/btrm}
NP=${NP:-2}
OUT=${OUT:-demo-out}
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun_np() { mpirun -np "$NP" --oversubscribe --bind-to none "$@"; }

mkdir -p "$OUT"
echo "== synthetic data: $OUT/train.h5, $OUT/test.h5"
"$BTRM" synth "$OUT/train.h5" --pairs 20000 --dim 256 --seed 1
"$BTRM" synth "$OUT/test.h5" --pairs 5000 --dim 256 --seed 2
for loss in bt normbt; do
    echo "== training $loss on $NP ranks"
    mpirun_np "$BTRM" train configs/demo/$loss.yaml --set run.out_dir="$OUT/$loss" --quiet
    mpirun_np "$BTRM" eval "$OUT/$loss/final.h5" "$OUT/test.h5" --json "$OUT/$loss/test.json" \
        > "$OUT/$loss/test.txt"
done

# One row per loss from the eval tables: overall, fine, coarse accuracy and
# the share of the gradient carried by the top distance quintile.
row() {
    awk -v name="$1" '
        $1 == "accuracy" { overall = $2 }
        $1 == "category" && $2 == "fine" { fine = $6 }
        $1 == "category" && $2 == "coarse" { coarse = $6 }
        $1 == "q5" { share = $NF }
        END { printf "%-8s %9.4f %9.4f %9.4f %12.4f\n", name, overall, fine, coarse, share }
    ' "$OUT/$1/test.txt"
}
echo
echo "Test set ($OUT/test.h5), linear head, $NP ranks:"
printf "%-8s %9s %9s %9s %12s\n" loss overall fine coarse "top-q share"
row bt
row normbt
echo "(top-q share: share of sum w_i*sigmoid(-dr_i)*d_i carried by the 20% most distant pairs)"
