#!/bin/bash
# btrm analyze: the unit test program on 2 and 3 ranks (eigenvalues equal one
# rank's), then the command: report, JSON, the same numbers on 1, 2 and 3
# ranks, --model, usage errors, and tools/plot.py on its outputs.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
cd "$WORK"
plan 17
test_analyze="$(dirname "$BTRM")/../tests/test-analyze"
for np in 2 3; do
    run_cmd unit-$np.log mpi $np "$test_analyze"
    expect_rc 0 "tests/test-analyze on $np ranks (eigenvalues and vectors = one rank's)"
    [ "$rc" -eq 0 ] || grep -E '^not ok|^#' unit-$np.log | head -20 | sed 's/^/# /'
done
cd "$WORK"
"$BTRM" synth pairs.h5 --pairs 900 --dim 20 --seed 8 >synth.log 2>&1
for np in 1 2 3; do
    run_cmd an-$np.log mpi $np "$BTRM" analyze pairs.h5 --json an-$np.json --top-k 4
    expect_rc 0 "analyze on $np rank(s)"
done
expect_grep 'category fine' an-1.log "the report has the per-category distances"
expect_grep 'Principal components' an-1.log "the report has the principal components"
# eigenvalues (and everything else) agree across rank counts
same_json() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
ea, eb = a["pca"]["spectrum"], b["pca"]["spectrum"]
bad = max(abs(x - y) for x, y in zip(ea, eb)) / ea[0]
qa, qb = a["distance"]["all"]["quantiles"], b["distance"]["all"]["quantiles"]
print("# eigenvalue difference %.2e, quantiles equal %s" % (bad, qa == qb))
sys.exit(0 if bad <= 1e-6 and qa == qb and len(ea) == len(eb) == 20 else 1)
PY
}
for np in 2 3; do
    pass_if "1 vs $np ranks: the same spectrum (<= 1e-6) and d quantiles" same_json an-1.json an-$np.json
done
/usr/bin/python3 - an-1.json <<'PY' >check.log 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
fine, coarse = (r["distance"]["by_category"][c]["quantiles"][3] for c in ("fine", "coarse"))
top = r["by_distance_quintile"][-1]
ok = fine < 0.2 * coarse and top["grad_share"] > 0.3 and abs(top["grad_share_normbt"] - 0.2) < 0.01
ok = ok and r["pca"]["max_residual"] < 1e-10 and r["grad_share_at"] == "w=0"
print("fine %.3g coarse %.3g top-quintile BT share %.3f NormBT %.3f" %
      (fine, coarse, top["grad_share"], top["grad_share_normbt"]))
sys.exit(0 if ok else 1)
PY
ok $? "JSON: fine pairs closer, the farthest quintile dominates BT's gradient at w = 0 ($(cat check.log))"
cat > run.yaml <<YAML
run: {name: an, out_dir: run}
data: {train: pairs.h5, eval: [pairs.h5]}
optim: {type: adamw, lr: 0.01}
train: {global_batch: 100, steps: 40, log_every: 10}
YAML
"$BTRM" train run.yaml >train.log 2>&1
run_cmd model.log mpi 2 "$BTRM" analyze pairs.h5 --model run/final.h5 --json model.json
expect_rc 0 "analyze --model on 2 ranks"
expect_grep 'at the model' model.log "the gradient shares are at the model"
run_cmd usage.log "$BTRM" analyze
expect_rc 2 "no DATA.h5: usage error"
run_cmd usage2.log "$BTRM" analyze pairs.h5 --top-k zero
expect_rc 2 "a bad --top-k: usage error"
run_cmd missing.log "$BTRM" analyze missing.h5
expect_rc 1 "a missing store: runtime failure"
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    /usr/bin/python3 "$BTRM_SRCDIR/tools/plot.py" analyze an-1.json -o an.png >plot.log 2>&1 &&
    /usr/bin/python3 "$BTRM_SRCDIR/tools/plot.py" curves run -o curves.png >>plot.log 2>&1
    ok $? "tools/plot.py analyze and curves run"
    png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
    pass_if "both are PNG images" eval 'png an.png && png curves.png'
else
    skip "matplotlib not installed"; skip "matplotlib not installed"
fi
done_testing
