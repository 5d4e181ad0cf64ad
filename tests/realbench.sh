#!/bin/bash
# data-prep/build-realbench.sh end to end: the seven converters, btrm prep
# (category map, prompt-hash split) and btrm embed (hash backbone) on 2 ranks;
# checks every converted pair lands in exactly one store, with the right
# category, and that no prompt is on both sides.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
data=$BTRM_SHARED/data
[ -d "$data" ] || skip_all "shared data folder $data not found (data-prep/fetch.sh --data fetches it)"
[ -x "$BTRM" ] || skip_all "btrm binary $BTRM not built"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 11
cd "$WORK" || exit 1
DIM=256

# build-realbench.sh calls "$MPIRUN -np N prog ..."; tests/mpirun.sh takes
# "N prog ..." and reads MPIRUN itself (the real launcher), so the wrapper puts
# back the caller's MPIRUN before handing over.
if [ -n "${MPIRUN+set}" ]; then restore="export MPIRUN=$(printf %q "$MPIRUN")"; else restore="unset MPIRUN"; fi
cat > launch <<EOF
#!/bin/bash
[ "\$1" = -np ] && shift
np=\$1; shift
$restore
exec $(printf %q "$BTRM_MPIRUN") "\$np" "\$@"
EOF
chmod +x launch
export BTRM BTRM_MPIRUN
run_cmd build.log env MPIRUN="$WORK/launch" NP=2 DIM=$DIM \
    "$BTRM_SRCDIR/data-prep/build-realbench.sh" --data-dir "$data" -o rb
expect_rc 0 "build-realbench.sh runs"
[ "$rc" -eq 0 ] || diag "$(tail -n 20 build.log)"
pass_if "it writes the text and the embedded train and test stores" \
    test -s rb/realbench-train.h5 -a -s rb/realbench-test.h5 \
    -a -s rb/realbench-train-hash$DIM.h5 -a -s rb/realbench-test-hash$DIM.h5

# check.py MODE: one check over rb/ (the stores) and rb/jsonl/ (the converters' pairs).
cat > check.py <<'PY'
import collections, glob, json, sys
import h5py, numpy as np

mode, dim = sys.argv[1], int(sys.argv[2])
WANT = {"Chat": 894, "Chat Hard": 734, "Safety": 976 + 2312,
        "Reasoning": 984 + 2429, "Factuality": 790}
conv = {}
for path in sorted(glob.glob("rb/jsonl/*.jsonl")):
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        conv[r["id"]] = r

def strs(ds):
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in ds[()]]

def load(path):
    with h5py.File(path, "r") as f:
        out = {"n": f["pairs/chosen"].shape[0]}
        out["cat"] = [strs(f["categories"])[k] for k in f["pairs/category"][()]]
        out["subset"] = [strs(f["subsets"])[k] for k in f["pairs/subset"][()]] if "pairs/subset" in f else None
        out["id"] = strs(f["pairs/id"]) if "pairs/id" in f else None
        out["dim"] = f["features"].shape[1] if "features" in f else None
    return out

fail = []
if mode in ("categories", "ids", "prompts", "fraction", "subsets"):
    tr, te = load("rb/realbench-train.h5"), load("rb/realbench-test.h5")
if mode == "categories":
    got = collections.Counter(tr["cat"]) + collections.Counter(te["cat"])
    print("train+test per category:", dict(got))
    if dict(got) != WANT:
        fail.append("want %s" % WANT)
elif mode in ("ids", "prompts", "subsets"):
    if tr["id"] is None or te["id"] is None:
        fail.append("a store has no /pairs/id")
    elif mode == "ids":
        both = tr["id"] + te["id"]
        dup = [i for i, c in collections.Counter(both).items() if c > 1]
        print("%d ids in the stores, %d converted pairs, %d duplicated" % (len(both), len(conv), len(dup)))
        if dup or set(both) != set(conv):
            fail.append("missing %s; unknown %s; duplicated %s"
                        % (sorted(set(conv) - set(both))[:5], sorted(set(both) - set(conv))[:5], dup[:5]))
    elif mode == "prompts":
        p_tr = {conv[i]["prompt"] for i in tr["id"] if i in conv}
        p_te = {conv[i]["prompt"] for i in te["id"] if i in conv}
        print("%d train prompts, %d test prompts, %d on both sides" % (len(p_tr), len(p_te), len(p_tr & p_te)))
        if p_tr & p_te:
            fail.append("shared prompt: %r" % sorted(p_tr & p_te)[0][:200])
    else:  # subsets: each pair keeps its converter's subset
        if tr["subset"] is None or te["subset"] is None:
            fail.append("a store has no /pairs/subset")
        else:
            wrong = [i for i, s in zip(tr["id"] + te["id"], tr["subset"] + te["subset"])
                     if i in conv and conv[i]["subset"] != s]
            print("%d pairs with a subset other than the converter's" % len(wrong))
            if wrong:
                fail.append("e.g. %s" % wrong[:5])
elif mode == "fraction":
    frac = te["n"] / float(tr["n"] + te["n"])
    print("test side: %d of %d pairs (%.3f)" % (te["n"], tr["n"] + te["n"], frac))
    if not 0.4 <= frac <= 0.6:
        fail.append("want 0.4..0.6 with --test-frac 0.5")
elif mode == "embedded":
    for part in ("train", "test"):
        t, e = load("rb/realbench-%s.h5" % part), load("rb/realbench-%s-hash%d.h5" % (part, dim))
        print("%s: %d pairs, features dim %s" % (part, e["n"], e["dim"]))
        if e["dim"] != dim:
            fail.append("%s: features dim %s, want %d" % (part, e["dim"], dim))
        if e["n"] != t["n"] or e["cat"] != t["cat"]:
            fail.append("%s: the embedded store's pairs or categories differ from the text store's" % part)
for f in fail:
    print("FAIL:", f)
sys.exit(1 if fail else 0)
PY

check() { # check MODE DESCRIPTION
    run_cmd "check-$1.log" /usr/bin/python3 check.py "$1" "$DIM"
    ok "$rc" "$2"
    diag "$(cat "check-$1.log")"
}
check categories "train+test pairs per category: Chat 894, Chat Hard 734, Safety 3288, Reasoning 3413, Factuality 790"
check ids "every converted pair is in exactly one of the two stores (by id)"
check subsets "every pair keeps its converter's subset"
check prompts "no prompt is in both the train and the test store"
check fraction "the test store holds about half of the pairs"
check embedded "the embedded stores have $DIM-dim hash features and the same pairs and categories"
# --test-frac is the test side's share (btrm prep --split takes the train one)
run_cmd build25.log env MPIRUN="$WORK/launch" \
    "$BTRM_SRCDIR/data-prep/build-realbench.sh" --data-dir "$data" -o rb25 --test-frac 0.25 --no-embed
/usr/bin/python3 - >frac25.log 2>&1 <<'PY'
import sys, h5py
n = [h5py.File("rb25/realbench-%s.h5" % p, "r")["pairs/chosen"].shape[0] for p in ("train", "test")]
print("--test-frac 0.25: %d train, %d test pairs" % tuple(n))
sys.exit(0 if 0.15 <= n[1] / float(sum(n)) <= 0.35 else 1)
PY
ok $? "--test-frac 0.25 puts about a quarter of the pairs in the test store"
diag "$(cat frac25.log)"
run_cmd help.log "$BTRM_SRCDIR/data-prep/build-realbench.sh" --help
expect_rc 0 "build-realbench.sh --help"
run_cmd badarg.log "$BTRM_SRCDIR/data-prep/build-realbench.sh" --no-such-option
expect_rc 2 "build-realbench.sh rejects an unknown option"
done_testing
