#!/bin/bash
# btrm report on fabricated run directories (summary.json, eval.jsonl,
# config.yaml): mean and sample std over seeds by hand, the best of each
# column, NormBT - BT paired by seed, the backbone label from the training
# store (and "unknown" when it is gone), unfinished runs listed, md and csv.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
plan 26
cd "$WORK"
"$BTRM" synth train.h5 --pairs 200 --dim 8 --seed 1 >synth.log 2>&1

# run DIR LOSS SEED TRAIN STATUS [ACC FINE COARSE]: a run directory as btrm
# train leaves it (config.yaml; summary.json unless STATUS is running/pending)
run() {
    local dir=$1 loss=$2 seed=$3 train=$4 status=$5 acc=${6:-} fine=${7:-} coarse=${8:-}
    mkdir -p "$dir"
    "$BTRM" config --set data.train="$train" --set loss.type="$loss" --set run.seed="$seed" \
        --set run.name="$(basename "$dir")" --set run.out_dir="$dir" > "$dir/config.yaml"
    local eval=null error=""
    if [ -n "$acc" ]; then
        eval='[{"file": "test.h5", "n_pairs": 100, "accuracy": '$acc', "by_category": {"fine": {"n": 50, "accuracy": '$fine'}, "coarse": {"n": 50, "accuracy": '$coarse'}}, "step": 20}]'
    fi
    [ "$status" = failed ] && error=', "error": "file missing.h5: cannot open: No such file or directory"'
    [ "$status" = preempted ] && error=', "error": "stopped by a signal at step 7 of 20 after checkpointing"'
    case $status in
        running) echo '{"step": 10}' > "$dir/metrics.jsonl" ;;
        pending) ;;
        *) cat > "$dir/summary.json" <<JSON
{"status": "$status", "run_name": "$(basename "$dir")", "data": [{"role": "train", "path": "$train", "crc32": ""}], "final_eval": $eval$error}
JSON
    esac
}
mkdir sweep && mkdir sweep/runs
run sweep/runs/0000 bt 1 train.h5 ok 0.60 0.50 0.70
run sweep/runs/0001 bt 2 train.h5 ok 0.70 0.60 0.80
run sweep/runs/0002 bt 3 train.h5 ok 0.80 0.70 0.90
run sweep/runs/0003 normbt 1 train.h5 ok 0.65 0.60 0.70
run sweep/runs/0004 normbt 2 train.h5 ok 0.75 0.70 0.80
run sweep/runs/0005 normbt 3 train.h5 ok 0.95 0.90 1.00
run sweep/runs/0006 bt 1 gone.h5 failed
run sweep/runs/0007 normbt 4 train.h5 running
run sweep/runs/0008 normbt 5 train.h5 pending
run sweep/runs/0009 bt 6 train.h5 preempted
# a run given directly, whose store is gone and whose result is in eval.jsonl only
run other bt 1 gone.h5 ok
echo '{"file": "test.h5", "accuracy": 0.1, "step": 10}' > other/eval.jsonl
echo '{"file": "test.h5", "accuracy": 0.5, "by_category": {"fine": {"n": 1, "accuracy": 0.25}}, "step": 20}' >> other/eval.jsonl

run_cmd md.out "$BTRM" report sweep other sweep/runs/0001
expect_rc 0 "report over a sweep directory and a run directory"
grep -v '^btrm: warning' md.out > report.md
expect_grep '^\| backbone \| loss \| n \| seeds \| accuracy \| coarse \| fine \| category mean \|$' report.md \
    "columns: accuracy, each category (sorted), their mean"
expect_grep '^\| synth \| bt \| 3 \| 1 2 3 \| 70\.00 ± 10\.00 \| 80\.00 ± 10\.00 \| 60\.00 ± 10\.00 \| 70\.00 ± 10\.00 \|$' \
    report.md "synth/bt: mean ± sample std over 3 seeds (the run given twice counted once)"
expect_grep '^\| synth \| normbt \| 3 \| 1 2 3 \| \*\*78\.33 ± 15\.28\*\* \| \*\*83\.33 ± 15\.28\*\* \| \*\*73\.33 ± 15\.28\*\* \| \*\*78\.33 ± 15\.28\*\* \|$' \
    report.md "synth/normbt: hand-computed values, best of every column in bold"
expect_grep '^\| unknown \| bt \| 1 \| 1 \| 50\.00 \| – \| 25\.00 \| 25\.00 \|$' report.md \
    "a gone store gives backbone 'unknown'; eval.jsonl's last step is used without final_eval"
expect_grep "other: cannot read the backbone label \(gone\.h5: No such file or directory\); shown as 'unknown'" \
    md.out "... with a warning naming the store"
expect_grep '^\| synth \| 3 \| \+8\.33 ± 5\.77 \| \+3\.33 ± 5\.77 \| \+13\.33 ± 5\.77 \| \+8\.33 ± 5\.77 \|$' report.md \
    "NormBT - BT per backbone, paired by seed"
pass_if "no NormBT - BT row for a backbone without normbt runs" test "$(grep -c '^| unknown | ' report.md)" -eq 1
expect_grep '^## Runs not in the table \(4\)$' report.md "unfinished runs are listed, not dropped"
expect_grep '^\| sweep/runs/0006 \| failed \| unknown \| bt \| 1 \| file missing\.h5: cannot open' report.md \
    "a failed run with its error"
expect_grep '^\| sweep/runs/0007 \| running \| synth \| normbt \| 4 \| no summary\.json yet' report.md \
    "a running run (metrics.jsonl, no summary.json)"
expect_grep '^\| sweep/runs/0008 \| pending \| synth \| normbt \| 5 \| not started' report.md "a run not started yet"
expect_grep '^\| sweep/runs/0009 \| preempted \| synth \| bt \| 6 \| stopped by a signal' report.md \
    "a preempted run"
expect_grep '^11 runs: 7 ok, 1 failed, 1 preempted, 1 running, 1 pending\. Eval set: file 1 of data\.eval \(test\.h5\)\.$' \
    report.md "the header counts runs by status"

run_cmd md2.out "$BTRM" report sweep/runs/0001 other sweep
pass_if "the order of the arguments does not change the report" cmp -s md.out md2.out

run_cmd csv.out "$BTRM" report sweep other --format csv -q
expect_rc 0 "--format csv"
expect_grep '^table,backbone,loss,n,seeds,accuracy_mean,accuracy_std,accuracy_best,coarse_mean,coarse_std,coarse_best,fine_mean,fine_std,fine_best,category_mean_mean,category_mean_std,category_mean_best,status,run,error$' \
    csv.out "csv header: mean, std and best per column"
expect_grep '^result,synth,bt,3,1 2 3,0\.700000,0\.100000,0,0\.800000,0\.100000,0,0\.600000,0\.100000,0,0\.700000,0\.100000,0,,,$' \
    csv.out "csv result row: fractions"
expect_grep '^result,synth,normbt,3,1 2 3,0\.783333,0\.152753,1,' csv.out "csv: best flag"
expect_grep '^normbt-bt,synth,normbt-bt,3,,0\.083333,0\.057735,,' csv.out "csv: NormBT - BT row"
expect_grep '^unfinished,unknown,bt,,1,,,,,,,,,,,,,failed,sweep/runs/0006,file missing\.h5: cannot open: No such file or directory$' \
    csv.out "csv: an unfinished row with status, run and error"
pass_if "csv rows all have the header's number of fields (RFC 4180 quoting)" /usr/bin/python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
sys.exit(0 if len(rows) == 9 and all(len(r) == len(rows[0]) for r in rows) else 1)' csv.out
pass_if "-q silences the warnings" sh -c "! grep -q warning csv.out"

run_cmd none.out "$BTRM" report synth.log
expect_rc 2 "a file or missing directory is a usage error"
mkdir empty
run_cmd empty.out "$BTRM" report empty
expect_rc 1 "no runs found is an error"
expect_grep 'no runs found' empty.out "... saying so"
done_testing
