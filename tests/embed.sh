#!/bin/bash
# btrm embed with the hash backbone: 1, 2 and 3 ranks write the same file
# (h5diff compares every dataset and attribute), float16, more ranks than
# texts, in-place re-embedding, and errors on several ranks that end with a
# non-zero exit, no output and no hang (each run bounded by timeout 120).
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
plan 36
DATA="$BTRM_SRCDIR/tests/data/prep"
cd "$WORK"
no_leftovers() { ! ls -A . | grep -q '\.tmp\.'; }
attr() { h5dump -a "$2" "$1" 2>/dev/null | sed -n 's/^ *(0): *//p' | tr -d '"'; }
emb() { timeout 120 "$BTRM_MPIRUN" "$@"; }

"$BTRM" prep -q "$DATA/hh.jsonl" "$DATA/rewardbench.json" "$DATA/skywork.jsonl" -o in.h5 \
    --category-map "$BTRM_SRCDIR/configs/categories/rewardbench.yaml" >prep.log 2>&1
ok $? "prep the fixtures"

for np in 1 2 3; do
    run_cmd e$np.log emb $np "$BTRM" embed in.h5 -o out$np.h5 --backbone hash
    expect_rc 0 "embed on $np rank(s)"
done
run_cmd diff12.log h5diff out1.h5 out2.h5
ok $rc "1 and 2 ranks: identical files (every dataset and attribute)"
run_cmd diff13.log h5diff out1.h5 out3.h5
ok $rc "1 and 3 ranks: identical files"
ok $([ "$(attr out3.h5 /features/backbone)" = hash-4096 ] && [ "$(attr out3.h5 /features/dim)" = 4096 ]; echo $?) \
   "/features has backbone = hash-4096 and dim = 4096"
ok $([ "$(attr out3.h5 /features/hash_function)" = XXH3-64 ]; echo $?) \
   "/features carries the hash backbone's own attributes"
h5dump -H -d /features out1.h5 > features.txt 2>&1
expect_grep 'H5T_IEEE_F32LE' features.txt "/features is float32"
expect_grep 'SIMPLE \{ \( 30, 4096 \)' features.txt "/features has one row per text (30 x 4096)"
pass_if "texts, pairs and categories are copied unchanged" \
    sh -c 'h5diff in.h5 out1.h5 /texts /texts && h5diff in.h5 out1.h5 /pairs /pairs && h5diff in.h5 out1.h5 /categories /categories'
expect_grep 'texts/s' e1.log "the log reports texts/s"
if have_python_h5py; then
    /usr/bin/python3 - out1.h5 <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as f:
    X = f["features"][()].astype(np.float64)
n = np.linalg.norm(X, axis=1)
sys.exit(0 if np.all(np.abs(n - 1) < 1e-5) and np.all(np.isfinite(X)) else 1)
PY
    ok $? "every row has L2 norm 1"
else
    skip "python3 h5py not installed"
fi

# float16 and a small --dim on 1 and 2 ranks, small batches (many rounds)
run_cmd f1.log emb 1 "$BTRM" embed in.h5 -o f1.h5 --backbone hash --dim 256 --f16 --batch 4
expect_rc 0 "--f16 --dim 256 on 1 rank"
run_cmd f2.log emb 2 "$BTRM" embed in.h5 -o f2.h5 --backbone hash --dim 256 --f16 --batch 3
expect_rc 0 "--f16 --dim 256 on 2 ranks, another batch size"
run_cmd difff.log h5diff f1.h5 f2.h5
ok $rc "float16: identical on 1 and 2 ranks and for any batch size"
h5dump -H -d /features f1.h5 > f16.txt 2>&1
expect_grep '16-bit little-endian floating-point|H5T_IEEE_F16LE|SIZE 2' f16.txt "--f16 stores a 16-bit float type"

# bfloat16 on 1 and 2 ranks: the same file, the float32 features rounded to
# nearest even, written collectively (memory type = file type)
run_cmd b1.log emb 1 "$BTRM" embed in.h5 -o b1.h5 --backbone hash --dim 256 --features-dtype bf16 -v
expect_rc 0 "--features-dtype bf16 on 1 rank"
run_cmd b2.log emb 2 "$BTRM" embed in.h5 -o b2.h5 --backbone hash --dim 256 --features-dtype bf16 --batch 3 -v
expect_rc 0 "--features-dtype bf16 on 2 ranks"
run_cmd diffb.log h5diff b1.h5 b2.h5
ok $rc "bfloat16: identical on 1 and 2 ranks"
! grep -q 'independently' b1.log b2.log
ok $? "bfloat16 rows are written with collective MPI-IO (no HDF5 conversion)"
"$BTRM" embed in.h5 -o f32.h5 --backbone hash --dim 256 -q >f32.log 2>&1
if have_python_h5py; then
    /usr/bin/python3 - f32.h5 b1.h5 <<'PY'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["features"][()]
b = h5py.File(sys.argv[2], "r")["features"]
# round to nearest even at bit 16 of the float32 pattern
u = a.view(np.uint32).astype(np.uint64)
r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
want = r.astype(np.uint32).view(np.float32)
ok = b.dtype == np.float32 and b.shape == a.shape and np.array_equal(b[()], want)
sys.exit(0 if ok else 1)
PY
    ok $? "h5py reads the bfloat16 /features as float32: the float32 features rounded to nearest even"
else
    skip "python3 h5py not installed"
fi
run_cmd bad.log "$BTRM" embed in.h5 -o bad.h5 --backbone hash --features-dtype f64
expect_rc 2 "--features-dtype f64 is a usage error"

# more ranks than texts: ranks with no rows take part with empty selections
printf '{"prompt": "a", "chosen": "b", "rejected": "c"}\n' > tiny.jsonl
"$BTRM" prep -q tiny.jsonl -o tiny.h5 >/dev/null 2>&1
run_cmd tiny3.log emb 3 "$BTRM" embed tiny.h5 -o tiny3.h5 --backbone hash --dim 32
expect_rc 0 "2 texts on 3 ranks"
"$BTRM" embed tiny.h5 -o tiny1.h5 --backbone hash --dim 32 >tiny1.log 2>&1
run_cmd difft.log h5diff tiny1.h5 tiny3.h5
ok $rc "2 texts: 3 ranks write what 1 rank writes"

# in place, replacing an older /features
cp out1.h5 again.h5
run_cmd again.log emb 2 "$BTRM" embed again.h5 -o again.h5 --backbone hash --dim 64
expect_rc 0 "re-embedding a store in place"
h5dump -H -d /features again.h5 > again.txt 2>&1
ok $(grep -q 'SIMPLE { ( 30, 64 )' again.txt && no_leftovers; echo $?) \
   "the old /features is replaced (30 x 64), no temporary file left"

# errors on several ranks: non-zero exit, no output, no hang
run_cmd unk.log emb 3 "$BTRM" embed in.h5 -o unk.h5 --backbone nope
expect_rc 2 "unknown backbone on 3 ranks: exit 2"
expect_grep "unknown backbone 'nope' \(known: hash, gguf, llama2c\)" unk.log "the message lists the known backbones"
"$BTRM" embed in.h5 -o x.h5 >usage.log 2>&1; rc=$?
expect_rc 2 "missing --backbone: exit 2"
h5copy -i in.h5 -o notexts.h5 -s /pairs -d /pairs >/dev/null 2>&1 || true
run_cmd notexts.log emb 3 "$BTRM" embed notexts.h5 -o nt.h5 --backbone hash
expect_rc 1 "a store without /texts on 3 ranks: exit 1"
run_cmd missing.log emb 2 "$BTRM" embed nope.h5 -o m.h5 --backbone hash
expect_rc 1 "a missing input on 2 ranks: exit 1"
ok $([ ! -e unk.h5 ] && [ ! -e nt.h5 ] && [ ! -e m.h5 ] && no_leftovers; echo $?) \
   "failed runs leave no output and no temporary file"

# A text that fails to encode in the last rank's block (invalid UTF-8, which
# prep never writes): every rank stops at the same collective step.
if have_python_h5py; then
    /usr/bin/python3 - in.h5 badtext.h5 <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    t = f["texts"]
    t[t.shape[0] - 1] = b"caf\xc3("
PY
    run_cmd badtext.log emb 3 "$BTRM" embed badtext.h5 -o bt.h5 --backbone hash --batch 2
    expect_rc 1 "an undecodable text in rank 2's block: exit 1 on 3 ranks"
    expect_grep 'badtext.h5: /texts row 29: hash backbone: Invalid UTF-8' badtext.log \
        "the message names the /texts row and the reason"
    # /texts as fixed-length strings (as h5py writes numpy 'S' arrays)
    /usr/bin/python3 - in.h5 fixed.h5 <<'PY'
import shutil, sys, h5py, numpy as np
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    t = f["texts"][()]
    del f["texts"]
    f.create_dataset("texts", data=np.array(t, dtype="S%d" % max(len(x) for x in t)))
PY
    run_cmd fixed.log emb 2 "$BTRM" embed fixed.h5 -o fixedout.h5 --backbone hash
    pass_if "fixed-length /texts give the same /features as variable-length ones" \
        h5diff fixedout.h5 out1.h5 /features /features
else
    skip "python3 h5py not installed"
    skip "python3 h5py not installed"
    skip "python3 h5py not installed"
fi
done_testing
