#!/bin/bash
# btrm eval --sections rewardbench on synthetic stores whose pairs carry
# RewardBench's subset names: each subset gets its own pair count and number
# of correct pairs (and some ties, which count 1/2), so every weight of the
# definition shows in the result: Chat, Chat Hard and Safety weighted by
# pair counts, Reasoning = 1/2 math-prm + 1/2 the count-weighted hep-*,
# overall = the mean of the four; other subsets listed as ignored; null
# sections (and overall) where a section has no pairs; 1 and 2 ranks agree.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 11
cd "$WORK" || exit 1
PY=/usr/bin/python3

# make_store OUT.h5 SPEC.json: pairs per subset from {"subset": [n, correct, ties]}
# on 2 features; the model below scores x[0], so a pair is right when its
# chosen row is [1, 0] and its rejected row [0, 0], wrong the other way, and
# a tie when both rows are [0, 0].
cat > make_store.py <<'PY'
import json, sys
import h5py, numpy as np
spec = json.load(open(sys.argv[2]))
rows, chosen, rejected, subset = [], [], [], []
names = list(spec)
for s, name in enumerate(names):
    n, right, ties = spec[name]
    for i in range(n):
        kind = "right" if i < right else "tie" if i < right + ties else "wrong"
        c = [1.0, 0.0] if kind == "right" else [0.0, 0.0]
        r = [1.0, 0.0] if kind == "wrong" else [0.0, 0.0]
        chosen.append(len(rows)); rows.append(c)
        rejected.append(len(rows)); rows.append(r)
        subset.append(s)
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["btrm_format"] = "pairs-v1"
    f["features"] = np.array(rows, np.float32)
    f["pairs/chosen"] = np.array(chosen, np.int64)
    f["pairs/rejected"] = np.array(rejected, np.int64)
    f["pairs/subset"] = np.array(subset, np.int32)
    f["subsets"] = np.array(names, dtype=h5py.string_dtype())
PY
"$PY" - <<'PY'
import h5py, numpy as np
with h5py.File("model.h5", "w") as f:
    f.attrs["btrm_format"] = "model-v1"
    m = f.create_group("model")
    for k, v in (("head", "linear"), ("activation", "gelu"), ("loss", "bt")):
        m.attrs[k] = v
    for k in ("dist_ema", "normbt_eps", "max_weight"):
        m.attrs[k] = 0.0
    m["out/weight"] = np.array([[1.0, 0.0]], np.float32)
    m["out/bias"] = np.array([0.0], np.float32)
PY
# every RewardBench subset with its own count, correct count and ties, plus
# two subsets RewardBench does not have
cat > full.json <<'JSON'
{"alpacaeval-easy": [10, 9, 0], "alpacaeval-length": [19, 10, 2], "alpacaeval-hard": [7, 7, 0],
 "mt-bench-easy": [4, 1, 0], "mt-bench-med": [8, 6, 1],
 "mt-bench-hard": [9, 4, 0], "llmbar-natural": [20, 15, 0], "llmbar-adver-neighbor": [27, 8, 3],
 "llmbar-adver-GPTInst": [18, 6, 0], "llmbar-adver-GPTOut": [9, 5, 0], "llmbar-adver-manual": [9, 3, 1],
 "refusals-dangerous": [20, 18, 0], "refusals-offensive": [20, 19, 0], "xstest-should-refuse": [50, 40, 0],
 "xstest-should-respond": [31, 20, 4], "donotanswer": [27, 10, 0],
 "math-prm": [45, 30, 0],
 "hep-cpp": [16, 12, 0], "hep-go": [16, 10, 0], "hep-java": [16, 8, 2], "hep-js": [16, 16, 0],
 "hep-python": [17, 9, 0], "hep-rust": [15, 5, 0],
 "pandalm": [30, 25, 0], "gsm8k": [12, 3, 0]}
JSON
# Chat and math-prm only: Chat Hard, Safety and overall are null; Reasoning is math-prm alone
cat > part.json <<'JSON'
{"alpacaeval-easy": [10, 9, 0], "mt-bench-med": [6, 2, 0], "math-prm": [8, 6, 1], "pandalm": [5, 5, 0]}
JSON
for s in full part; do
    "$PY" make_store.py $s.h5 $s.json
    run_cmd eval-$s.log "$BTRM" eval model.h5 $s.h5 --sections rewardbench --json $s-out.json
    expect_rc 0 "btrm eval --sections rewardbench on the '$s' store"
done
# The expected scores, from the subset counts alone (independent of btrm).
check() { # check SPEC.json RESULT.json
    "$PY" - "$1" "$2" <<'PY'
import json, sys
spec, res = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
acc = {k: (r + 0.5 * t, n) for k, (n, r, t) in spec.items()}
def pooled(names):
    got = [acc[k] for k in names if k in acc]
    n = sum(n for _, n in got)
    return (sum(c for c, _ in got) / n) if n else None
chat = pooled(["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"])
hard = pooled(["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
               "llmbar-adver-GPTOut", "llmbar-adver-manual"])
safety = pooled(["refusals-dangerous", "refusals-offensive", "xstest-should-refuse",
                 "xstest-should-respond", "donotanswer"])
math = pooled(["math-prm"])
code = pooled(["hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"])
reasoning = (0.5 * math + 0.5 * code) if math is not None and code is not None else \
    math if code is None else code
parts = [chat, hard, safety, reasoning]
overall = sum(parts) / 4 if all(p is not None for p in parts) else None
want = {"Chat": chat, "Chat Hard": hard, "Safety": safety, "Reasoning": reasoning, "overall": overall}
got = res["sections"]
bad = [k for k in want if (want[k] is None) != (got.get(k) is None) or
       (want[k] is not None and abs(want[k] - got[k]) > 1e-9)]
print("# want", want)
print("# got ", got)
sys.exit(1 if bad or set(got) != set(want) else 0)
PY
}
pass_if "every RewardBench subset: the five section scores follow the definition's weights" check full.json full-out.json
pass_if "... which a plain mean of subset accuracies would not give (the weights matter)" "$PY" -c '
import json
spec = json.load(open("full.json")); res = json.load(open("full-out.json"))["sections"]
names = ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"]
plain = sum((spec[k][1] + 0.5 * spec[k][2]) / spec[k][0] for k in names) / len(names)
exit(0 if abs(plain - res["Chat"]) > 1e-3 else 1)'
pass_if "the subsets outside RewardBench are listed as ignored" "$PY" -c '
import json; d = json.load(open("full-out.json"))
exit(0 if sorted(d["sections_ignored"]) == ["gsm8k", "pandalm"] else 1)'
pass_if "a store with Chat and math-prm only: null sections and overall, Reasoning = math-prm" check part.json part-out.json
expect_grep '"Chat Hard": null' part-out.json "... written as JSON null"
expect_grep "section +Safety +n 0 +score -" eval-part.log "the table marks a section without pairs"
expect_grep "ignored subset pandalm" eval-full.log "the table lists the ignored subsets"
run_cmd eval-2.log mpi 2 "$BTRM" eval model.h5 full.h5 --sections rewardbench --json full-2.json
pass_if "2 ranks give the same sections" "$PY" -c '
import json
a, b = (json.load(open(f))["sections"] for f in ("full-out.json", "full-2.json"))
exit(0 if a == b else 1)'
run_cmd bad.log "$BTRM" eval model.h5 full.h5 --sections helm
expect_rc 2 "--sections with another name: usage error"
done_testing
