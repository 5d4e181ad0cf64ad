#!/bin/bash
# btrm eval: JSON keys, per-category accuracy, quintile bins, and the same
# numbers on 1, 2 and 3 ranks.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 8
cd "$WORK"
"$BTRM" synth train.h5 --pairs 1000 --dim 16 --seed 21 >synth.log 2>&1
"$BTRM" synth test.h5 --pairs 400 --dim 16 --seed 22 >>synth.log 2>&1
cat > run.yaml <<YAML
run: {name: ev, out_dir: out}
data: {train: train.h5}
loss: {type: normbt}
train: {global_batch: 100, steps: 30}
YAML
"$BTRM" train run.yaml >train.log 2>&1
for np in 1 2 3; do
    run_cmd eval-$np.log mpi $np "$BTRM" eval out/final.h5 test.h5 --json eval-$np.json
    expect_rc 0 "eval on $np rank(s)"
done
# The forward pass of a row may round differently in another BLAS call
# (OpenBLAS kernels treat row blocks and remainders differently), so the
# rank counts agree to float32 rounding, not bit for bit.
same_json() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
def flat(x, p=""):
    if isinstance(x, dict):
        for k, v in x.items(): yield from flat(v, p + "/" + k)
    elif isinstance(x, list):
        for i, v in enumerate(x): yield from flat(v, p + "/%d" % i)
    else:
        yield p, x
a, b = (dict(flat(json.load(open(f)))) for f in sys.argv[1:3])
bad = [k for k in a if k not in b or (isinstance(a[k], (int, float)) and
       abs(a[k] - b[k]) > 1e-6 * max(1.0, abs(a[k]))) or
       (not isinstance(a[k], (int, float)) and a[k] != b[k])]
print("# differing:", bad[:5])
sys.exit(1 if bad or len(a) != len(b) else 0)
PY
}
pass_if "eval JSON on 1 and 2 ranks agrees to 1e-6" same_json eval-1.json eval-2.json
pass_if "eval JSON on 1 and 3 ranks agrees to 1e-6" same_json eval-1.json eval-3.json
/usr/bin/python3 - eval-1.json test.h5 out/final.h5 > oracle.log 2>&1 <<'PY'
# An independent oracle: recompute accuracy, loss, quintile edges and
# grad_share from the model and the features with numpy.
import json, sys
import h5py, numpy as np
res = json.load(open(sys.argv[1]))
with h5py.File(sys.argv[2]) as f:
    X = f["features"][()].astype(np.float64)
    c, r = f["pairs/chosen"][()], f["pairs/rejected"][()]
    cats = [s.decode() if isinstance(s, bytes) else s for s in f["categories"][()]]
    cat = f["pairs/category"][()]
with h5py.File(sys.argv[3]) as f:
    w = f["model/out/weight"][()].astype(np.float64)[0]
    dbar = f["model"].attrs["dist_ema"]; eps = f["model"].attrs["normbt_eps"]
dr = (X[c] - X[r]) @ w
d = np.linalg.norm(X[c] - X[r], axis=1)
acc = np.mean((dr > 0) + 0.5 * (dr == 0))
loss = np.mean(np.logaddexp(0, -dr))
edges = np.percentile(d, [0, 20, 40, 60, 80, 100])
q = np.clip(np.searchsorted(edges[1:-1], d, side="left"), 0, 4)
g = np.minimum(dbar / np.maximum(d, eps), np.inf) / (1 + np.exp(dr)) * d
share = np.array([g[q == k].sum() for k in range(5)]) / g.sum()
bins = res["by_distance_quintile"]
errs = [abs(acc - res["accuracy"]), abs(loss - res["loss"]) / loss]
errs += [abs(bins[k]["grad_share"] - share[k]) for k in range(5)]
errs += [abs(bins[k]["hi"] - edges[k + 1]) / edges[-1] for k in range(5)]
errs += [abs(res["by_category"][cats[k]]["n"] - np.sum(cat == k)) for k in range(len(cats))]
print("max error", max(errs))
sys.exit(0 if max(errs) < 1e-4 else 1)
PY
ok $? "accuracy, loss, quintile edges, grad_share and category counts match a numpy oracle"
pass_if "JSON has the documented keys" /usr/bin/python3 -c "
import json,sys; d=json.load(open('eval-1.json'))
need=['n_pairs','accuracy','loss','margin_mean','by_category','by_subset','by_distance_quintile']
sys.exit(0 if all(k in d for k in need) and len(d['by_distance_quintile'])==5 and all(set(b)>={'lo','hi','n','accuracy','grad_share'} for b in d['by_distance_quintile']) else 1)"
run_cmd table.log "$BTRM" eval out/final.h5 test.h5
expect_grep "category +fine" table.log "the table shows per-category accuracy"
done_testing
