#!/bin/bash
# data-prep/*.py: each converter's pair count matches ../shared/data/README.md,
# every line is a well-formed shape-2 pair, ids are unique, two runs give the
# same bytes, and malformed input fails with the file and line.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
data=$BTRM_SHARED/data
[ -d "$data" ] || skip_all "shared data folder $data not found (data-prep/fetch.sh --data fetches it)"
PY=/usr/bin/python3
[ -x "$PY" ] || skip_all "$PY not found"
prep=$BTRM_SRCDIR/data-prep

# set:pairs:blank chosen:blank rejected (the README's counts; the blank
# responses are real ones in the sources, see data-prep/README.md)
sets="hh-rlhf:2312:4:0 llmbar:734:0:0 xstest:976:0:0 pandalm:894:1:51
      humanevalpack:984:0:0 gsm8k:2429:0:0 truthfulqa:790:0:0"
plan 38
cd "$WORK" || exit 1
mkdir -p a b

# check.py FILE PAIRS BLANK_CHOSEN BLANK_REJECTED: shape 2, counts, no duplicate ids.
cat > check.py <<'PY'
import json, sys
path, want, want_bc, want_br = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
keys = ["prompt", "chosen", "rejected", "subset", "id"]
ids, bad, bc, br, n = set(), [], 0, 0, 0
with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            bad.append("line %d: not JSON: %s" % (n, e)); continue
        if not isinstance(rec, dict) or sorted(rec) != sorted(keys):
            bad.append("line %d: keys %s" % (n, sorted(rec) if isinstance(rec, dict) else rec)); continue
        if not all(isinstance(rec[k], str) for k in keys):
            bad.append("line %d: a field is not a string" % n); continue
        if not (rec["prompt"].strip() and rec["subset"].strip() and rec["id"].strip()):
            bad.append("line %d: blank prompt, subset or id" % n)
        if rec["chosen"] == rec["rejected"]:
            bad.append("line %d: chosen == rejected" % n)
        bc += not rec["chosen"].strip()
        br += not rec["rejected"].strip()
        if rec["id"] in ids:
            bad.append("line %d: duplicate id %s" % (n, rec["id"]))
        ids.add(rec["id"])
if n != want: bad.append("%d pairs, want %d" % (n, want))
if (bc, br) != (want_bc, want_br):
    bad.append("%d blank chosen and %d blank rejected, want %d and %d" % (bc, br, want_bc, want_br))
for b in bad[:10]: print(b)
sys.exit(1 if bad else 0)
PY

for entry in $sets; do
    IFS=: read -r set want blank_c blank_r <<<"$entry"
    run_cmd "a/$set.log" "$PY" "$prep/$set.py" --data-dir "$data" -o "a/$set.jsonl"
    expect_rc 0 "$set.py runs"
    expect_grep "^$set: $want pairs" "a/$set.log" "$set.py reports $want pairs"
    run_cmd "check-$set.log" "$PY" check.py "a/$set.jsonl" "$want" "$blank_c" "$blank_r"
    ok "$rc" "$set: $want well-formed shape-2 pairs, unique ids, $blank_c/$blank_r blank chosen/rejected"
    [ "$rc" -eq 0 ] || diag "$(cat "check-$set.log")"
    # the second run goes through BTRM_SHARED, the default --data-dir
    BTRM_SHARED=$(dirname "$data") "$PY" "$prep/$set.py" -o "b/$set.jsonl" >"b/$set.log" 2>&1
    pass_if "$set: a second run gives byte-identical output" cmp -s "a/$set.jsonl" "b/$set.jsonl"
done

# subsets of the two XSTest halves (README: 456 over 113 safe prompts, 520 over 131 unsafe)
"$PY" - a/xstest.jsonl >xstest-subsets.log 2>&1 <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
got = {}
for s in ("should-respond", "should-refuse"):
    got[s] = (sum(r["subset"] == s for r in recs), len({r["prompt"] for r in recs if r["subset"] == s}))
print(got)
sys.exit(0 if got == {"should-respond": (456, 113), "should-refuse": (520, 131)} else 1)
PY
ok $? "xstest: 456 should-respond pairs over 113 prompts, 520 should-refuse over 131"

cat a/*.jsonl | "$PY" -c '
import json, sys
ids = [json.loads(l)["id"] for l in sys.stdin]
sys.exit(0 if len(ids) == len(set(ids)) == 9119 else 1)'
ok $? "ids are unique across all seven sets (9119 pairs)"

# HH-RLHF: prompt + response gives back each source transcript exactly
"$PY" - "$data/hh-rlhf/harmless-base/test.jsonl.gz" a/hh-rlhf.jsonl <<'PY'
import gzip, json, sys
src = [json.loads(l) for l in gzip.open(sys.argv[1], "rt", encoding="utf-8")]
out = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
good = len(src) == len(out) and all(
    o["prompt"] + o["chosen"] == s["chosen"] and o["prompt"] + o["rejected"] == s["rejected"]
    and o["prompt"].endswith("\n\nAssistant:") for s, o in zip(src, out))
sys.exit(0 if good else 1)
PY
ok $? "hh-rlhf: prompt + chosen/rejected reproduce the source transcripts, prompts end at an Assistant turn"

# Malformed input: a copy of the data with one broken record per format.
mkdir -p bad/gsm8k/grade_school_math/data bad/truthfulqa
src=$data/gsm8k/grade_school_math/data/example_model_solutions.jsonl
bad_jsonl=bad/gsm8k/grade_school_math/data/example_model_solutions.jsonl
{ head -n 4 "$src"; head -n 5 "$src" | tail -n 1 | cut -c1-200; tail -n +6 "$src"; } >$bad_jsonl
echo "old contents" > kept.jsonl
run_cmd bad-gsm8k.log "$PY" "$prep/gsm8k.py" --data-dir bad -o kept.jsonl
expect_rc 1 "gsm8k.py fails on a truncated JSONL line"
expect_grep "example_model_solutions.jsonl: line 5: invalid JSON" bad-gsm8k.log "the error names the file and line 5"
pass_if "a failed run leaves the old output file untouched" grep -qx "old contents" kept.jsonl

# TruthfulQA row 3 (file line 4) gets an unknown Type
sed '4s/^Adversarial,/Sideways,/' "$data/truthfulqa/TruthfulQA.csv" > bad/truthfulqa/TruthfulQA.csv
run_cmd bad-tqa.log "$PY" "$prep/truthfulqa.py" --data-dir bad -o tqa.jsonl
expect_rc 1 "truthfulqa.py fails on a bad Type value"
expect_grep "TruthfulQA.csv: line 4: Type is 'Sideways'" bad-tqa.log "the error names the CSV file and line 4"

run_cmd missing.log "$PY" "$prep/llmbar.py" --data-dir "$WORK/no-such-dir" -o x.jsonl
expect_rc 1 "a missing data folder is an error"
run_cmd usage.log "$PY" "$prep/llmbar.py" --data-dir "$data"
expect_rc 2 "a missing -o is a usage error"
done_testing
