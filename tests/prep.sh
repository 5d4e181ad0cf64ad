#!/bin/bash
# btrm prep on the fixtures of tests/data/prep (JSONL, JSON array, gzip,
# message lists), bad records and --strict, exit codes, atomic output (a
# failure leaves no OUT.h5 and no temporary file), the split, and the real
# HH-RLHF harmless-base test file when $BTRM_SHARED has it.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
plan 48
DATA="$BTRM_SRCDIR/tests/data/prep"
cd "$WORK"

# rows FILE DATASET: the length of a 1-D dataset (h5ls prints "Dataset {N}").
rows() { h5ls "$1/$2" 2>/dev/null | sed -n 's/.*Dataset {\([0-9]*\)[,}].*/\1/p'; }
# strings FILE DATASET: the values of a string dataset, one a line.
strings_of() {
    h5dump -y -d "$2" "$1" 2>/dev/null | sed -n '/^ *DATA {/,$p' | grep -o '"[^"]*"' | tr -d '"'
}
no_leftovers() { ! ls -A . | grep -q '\.tmp\.'; }

# --- shapes ---------------------------------------------------------------
run_cmd hh.log "$BTRM" prep "$DATA/hh.jsonl" -o hh.h5
expect_rc 0 "hh transcripts (JSONL)"
ok $([ "$(rows hh.h5 /pairs/chosen)" = 6 ] && [ "$(rows hh.h5 /texts)" = 12 ]; echo $?) \
   "hh: 6 pairs, 12 texts"
pass_if "hh: ids are basename:line" grep -qx 'hh.jsonl:6' <(strings_of hh.h5 /pairs/id)
pass_if "hh: a store from prep has no /features" sh -c '! h5ls hh.h5/features >/dev/null 2>&1'
expect_grep 'hh.jsonl: 6 records \(plain JSONL\)' hh.log "hh: the log names the detected shape"

run_cmd hht.log "$BTRM" prep "$DATA/hh.jsonl" -o hht.h5 --template "$DATA/template-hh.yaml"
expect_rc 0 "hh with the HH template"
if have_python_h5py; then
    /usr/bin/python3 - "$DATA/hh.jsonl" hht.h5 <<'PY'
import json, sys, h5py
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
with h5py.File(sys.argv[2]) as f:
    t = [s.decode() for s in f["texts"][()]]
    c, r = f["pairs/chosen"][()], f["pairs/rejected"][()]
ok = all(t[c[i]] == recs[i]["chosen"] and t[r[i]] == recs[i]["rejected"] for i in range(len(recs)))
sys.exit(0 if ok else 1)
PY
    ok $? "hh + HH template: every text is the original transcript"
else
    skip "python3 h5py not installed"
fi

run_cmd rb.log "$BTRM" prep "$DATA/rewardbench.json" -o rb.h5 \
    --category-map "$BTRM_SRCDIR/configs/categories/rewardbench.yaml"
expect_rc 0 "RewardBench-style JSON array with the RewardBench category map"
expect_grep 'rewardbench.json: 6 records \(plain JSON array\)' rb.log "JSON array detected"
ok $([ "$(strings_of rb.h5 /categories | tr '\n' ,)" = "Chat,Chat Hard,Safety,Reasoning," ]; echo $?) \
   "categories in the map's order: Chat, Chat Hard, Safety, Reasoning"
ok $([ "$(strings_of rb.h5 /pairs/id | head -2 | tr '\n' ,)" = "101,102," ]; echo $?) \
   "integer ids become strings"

gzip -c "$DATA/ultrafeedback.jsonl" > uf.jsonl.gz
run_cmd uf.log "$BTRM" prep uf.jsonl.gz -o ufgz.h5
expect_rc 0 "UltraFeedback-style messages, gzip"
expect_grep 'uf.jsonl.gz: 4 records \(gzip JSONL\)' uf.log "gzip detected by its magic bytes"
"$BTRM" prep "$DATA/ultrafeedback.jsonl" -o uf.h5 >uf-plain.log 2>&1
pass_if "gzip and plain give the same /texts and /pairs" \
    sh -c 'h5diff uf.h5 ufgz.h5 /texts /texts && h5diff uf.h5 ufgz.h5 /pairs/chosen /pairs/chosen && h5diff uf.h5 ufgz.h5 /pairs/margin /pairs/margin'
ok $([ "$(rows uf.h5 /pairs/margin)" = 4 ]; echo $?) "score_chosen - score_rejected become /pairs/margin"

run_cmd sky.log "$BTRM" prep "$DATA/skywork.jsonl" --format messages -o sky.h5
expect_rc 0 "Skywork-style message lists without a prompt (--format messages)"
ok $([ "$(rows sky.h5 /texts)" = 6 ]; echo $?) "skywork: 3 pairs, 6 texts"

run_cmd all.log "$BTRM" prep "$DATA/hh.jsonl" "$DATA/rewardbench.json" uf.jsonl.gz "$DATA/skywork.jsonl" -o all.h5
expect_rc 0 "several inputs of different shapes at once"
ok $([ "$(rows all.h5 /pairs/chosen)" = 19 ]; echo $?) "all: 6 + 6 + 4 + 3 = 19 pairs"

# --- bad records, --strict, exit codes, atomic output ----------------------
run_cmd bad.log "$BTRM" prep "$DATA/bad.jsonl" -o bad.h5
expect_rc 0 "bad records are skipped when some are usable"
ok $([ "$(rows bad.h5 /pairs/chosen)" = 2 ]; echo $?) "bad.jsonl: the 2 good records are kept"
expect_grep 'skipped 7 of 9 records' bad.log "the summary counts the skipped records"
for reason in not_json invalid_utf8 wrong_type missing_field unknown_role empty_response identical_responses; do
    expect_grep "^btrm: warning: +$reason +1\$" bad.log "bad records: $reason counted once"
done
expect_grep 'bad.jsonl:8: invalid UTF-8' bad.log "the location is file:line"

echo "old" > strict.h5
run_cmd strict.log "$BTRM" prep "$DATA/bad.jsonl" -o strict.h5 --strict
expect_rc 1 "--strict: exit 1 at the first bad record"
expect_grep 'bad.jsonl:2: not_json' strict.log "--strict: file:line: reason"
ok $([ "$(cat strict.h5)" = old ] && no_leftovers; echo $?) \
   "--strict failure: the old OUT.h5 is untouched and no temporary file is left"

printf '{"prompt": "a", "chosen": "x", "rejected": "x"}\n\n' > allbad.jsonl
run_cmd allbad.log "$BTRM" prep allbad.jsonl -o allbad.h5
expect_rc 1 "nothing usable: exit 1"
ok $([ ! -e allbad.h5 ] && no_leftovers; echo $?) "nothing usable: no output file"

head -c 3000 < <(for i in $(seq 1 400); do echo "{\"prompt\": \"q$i\", \"chosen\": \"yes $i\", \"rejected\": \"no $i\"}"; done | gzip -c) > trunc.jsonl.gz
run_cmd trunc.log "$BTRM" prep trunc.jsonl.gz -o trunc.h5
expect_rc 0 "a truncated gzip keeps the records before the break"
expect_grep 'truncated_gzip +1' trunc.log "the truncation is counted as truncated_gzip"

run_cmd missing.log "$BTRM" prep nope.jsonl -o missing.h5
expect_rc 1 "a missing input: exit 1"
run_cmd usage1.log "$BTRM" prep -o x.h5
expect_rc 2 "no input: exit 2"
run_cmd usage2.log "$BTRM" prep "$DATA/hh.jsonl" -o x.h5 --split 0.9
expect_rc 2 "--split without --valid-out: exit 2"
run_cmd usage3.log "$BTRM" prep "$DATA/hh.jsonl" -o x.h5 --format yaml
expect_rc 2 "an unknown --format: exit 2"
run_cmd help.log "$BTRM" prep --help
ok $([ "$rc" = 0 ] && grep -q 'Usage: btrm prep' help.log; echo $?) "--help"

# --- split ----------------------------------------------------------------
for i in $(seq 1 40); do for j in 1 2 3; do
    echo "{\"id\": \"g$i-$j\", \"prompt\": \"question $i\", \"chosen\": \"answer $i.$j\", \"rejected\": \"wrong $i\"}"
done; done > groups.jsonl
run_cmd split.log "$BTRM" prep groups.jsonl -o train.h5 --split 0.75 --valid-out valid.h5
expect_rc 0 "--split 0.75 --valid-out"
nt=$(rows train.h5 /pairs/chosen); nv=$(rows valid.h5 /pairs/chosen)
ok $([ $((nt + nv)) = 120 ] && [ "$nv" -gt 0 ]; echo $?) "split: $nt + $nv = 120 pairs"
strings_of train.h5 /pairs/id | sed 's/-.*//' | sort -u > train.groups
strings_of valid.h5 /pairs/id | sed 's/-.*//' | sort -u > valid.groups
ok $([ -s train.groups ] && [ -z "$(comm -12 train.groups valid.groups)" ]; echo $?) \
   "split by prompt: no prompt on both sides"
"$BTRM" prep groups.jsonl -o train2.h5 --split 0.75 --valid-out valid2.h5 >split2.log 2>&1
pass_if "split: deterministic (a second run writes the same stores)" \
    sh -c 'h5diff train.h5 train2.h5 /pairs /pairs && h5diff valid.h5 valid2.h5 /texts /texts'

# --- the real HH-RLHF file ------------------------------------------------
HH="$BTRM_SHARED/data/hh-rlhf/harmless-base/test.jsonl.gz"
if [ -r "$HH" ]; then
    run_cmd real.log "$BTRM" prep "$HH" -o real.h5
    expect_rc 0 "HH-RLHF harmless-base test"
    ok $([ "$(rows real.h5 /pairs/chosen)" = 2312 ]; echo $?) "HH-RLHF harmless-base test: 2,312 pairs"
else
    skip "$HH not present (data-prep/fetch.sh --data)"
    skip "$HH not present (data-prep/fetch.sh --data)"
fi
done_testing
