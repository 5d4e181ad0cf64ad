#!/bin/bash
# Format versions (docs/format.md, "Versions"): every file btrm writes names
# its format and version and the btrm that wrote it; files of the older
# versions are read (tests/data/v1: written by btrm before the versions,
# including a checkpoint-v1 whose SGD momentum buffer is stored as exp_avg),
# and a newer version is refused with a message naming both btrm versions.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 43
cd "$WORK"
h5tool() { /usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" "$@"; }
strip() { sed 's/"pairs_per_s":[^,}]*//' "$1"; }
after() { awk -v s="$2" 'match($0, /"step":[0-9]+/) && substr($0, RSTART + 7, RLENGTH - 7) + 0 > s' "$1"; }
v1=$BTRM_SRCDIR/tests/data/v1
cp "$v1"/pairs.h5 "$v1"/sgd.yaml "$v1"/adamw.yaml .
version=$("$BTRM" --version | awk 'NR == 1 {print $2}')
# The test files were written by a build whose float32 products were
# OpenBLAS's cblas_sgemm: bitwise comparisons with them hold for that
# arithmetic, so every run here uses btrm_gemm's CBLAS backend (oneDNN's
# dnnl_sgemm rounds differently; docs/performance.md).
export BTRM_GEMM_BACKEND=cblas

# 1. what the writers record
run_cmd synth.log "$BTRM" synth new.h5 --pairs 100 --dim 4 --seed 1
is_attr() { # FILE OBJ NAME WANT DESCRIPTION
    local got
    got=$(h5tool attr "$1" "$2" "$3")
    [ "$got" = "$4" ] || diag "$1 $2 $3 = '$got', want '$4'"
    ok "$([ "$got" = "$4" ]; echo $?)" "$5"
}
is_attr new.h5 / btrm_format pairs-v1 "a pair store says pairs-v1"
is_attr new.h5 / btrm_version "$version" "and the btrm that wrote it"
for opt in sgd adamw; do
    run_cmd $opt.log "$BTRM" train $opt.yaml --set run.out_dir=new-$opt
    expect_rc 0 "a fresh $opt run (1 rank, as the test files were written)"
done
is_attr new-sgd/final.h5 / btrm_format model-v3 "a model file says model-v3"
is_attr new-sgd/final.h5 / btrm_version "$version" "and its btrm"
ck=new-sgd/checkpoints/step-00000012.h5
is_attr $ck / btrm_format checkpoint-v3 "a checkpoint says checkpoint-v3"
is_attr $ck / btrm_version "$version" "and its btrm"
pass_if "an SGD checkpoint stores its buffer as /optim/momentum_buffer" \
    test "$(h5tool datasets $ck optim)" = momentum_buffer
pass_if "an AdamW checkpoint stores /optim/exp_avg and exp_avg_sq" \
    test "$(h5tool datasets new-adamw/checkpoints/step-00000012.h5 optim)" = "exp_avg exp_avg_sq"
pass_if "summary.json says summary-v1 and the btrm" \
    test "$(h5tool json new-sgd/summary.json btrm_format)/$(h5tool json new-sgd/summary.json btrm_version)" = "summary-v1/$version"
pass_if "every eval.jsonl line says eval-v1" \
    test "$(grep -c '"btrm_format":"eval-v1","btrm_version":"'"$version"'"' new-sgd/eval.jsonl)" = 2
run_cmd evaljson.log "$BTRM" eval new-sgd/final.h5 pairs.h5 --json eval.json
pass_if "btrm eval --json says eval-v1" test "$(h5tool json eval.json btrm_format)" = eval-v1

# 2. the files of the first formats are read: the runs btrm wrote before the
#    versions train the same, and their checkpoints resume to the same end
d=$(h5tool reldiff "$v1"/sgd-final.h5 new-sgd/final.h5)
pass_if "this btrm trains what the old one did, bitwise (difference $d)" test "$d" = 0.000e+00
run_cmd evalv1.log "$BTRM" eval "$v1"/sgd-final.h5 pairs.h5 --json eval-old.json
expect_rc 0 "a model-v1 file (no /features record) still evaluates"
pass_if "... to what the model-v3 file of the same training gives" \
    test "$(h5tool json eval-old.json accuracy)/$(h5tool json eval-old.json loss)" = "$(h5tool json eval.json accuracy)/$(h5tool json eval.json loss)"
for opt in sgd adamw; do
    mkdir -p old-$opt/checkpoints
    cp "$v1"/$opt-step-00000012.h5 old-$opt/checkpoints/step-00000012.h5
    is_attr old-$opt/checkpoints/step-00000012.h5 / btrm_format checkpoint-v1 "the $opt test file is a checkpoint-v1"
    run_cmd inspect-$opt.log "$BTRM" inspect old-$opt/checkpoints/step-00000012.h5
    expect_rc 0 "inspect verifies the checkpoint-v1 ($opt)"
    run_cmd resume-$opt.log "$BTRM" train $opt.yaml --set run.out_dir=old-$opt --resume auto
    expect_grep "resuming from .*step-00000012.h5" resume-$opt.log "a $opt checkpoint-v1 resumes"
    d=$(h5tool reldiff new-$opt/final.h5 old-$opt/final.h5)
    pass_if "the resumed $opt run ends bitwise where the uninterrupted one does ($d)" test "$d" = 0.000e+00
    # a checkpoint-v1 (or v2) window holds no bt_loss sum (checkpoint-v3 added
    # it): the first line after the resume has the BT loss of the steps since
    # then only; every other field, and the lines after it, are the same
    no_bt() { sed 's/"bt_loss":[^,}]*//' "$1"; }
    pass_if "and logs the same 3 metrics lines past step 12, the restored window's included, bt_loss aside ($opt)" \
        test "$(after new-$opt/metrics.jsonl 12 | strip /dev/stdin | no_bt /dev/stdin | tee want-$opt)" = "$(strip old-$opt/metrics.jsonl | no_bt /dev/stdin)" -a "$(wc -l < want-$opt)" -eq 3
    pass_if "... and the lines after the first one with bt_loss too ($opt)" \
        test "$(after new-$opt/metrics.jsonl 12 | strip /dev/stdin | tail -n +2)" = "$(strip old-$opt/metrics.jsonl | tail -n +2)"
done
# a checkpoint-v3 of SGD on 2 ranks (each rank reads its shard of momentum_buffer)
run_cmd sgd2.log mpi 2 "$BTRM" train sgd.yaml --set run.out_dir=sgd2
cp -r sgd2 sgd2-cut
rm sgd2-cut/checkpoints/step-00000024.h5 sgd2-cut/final.h5
run_cmd sgd2-res.log mpi 2 "$BTRM" train sgd.yaml --set run.out_dir=sgd2-cut --resume auto
expect_grep "resuming from .*step-00000012.h5" sgd2-res.log "an SGD checkpoint-v3 resumes on 2 ranks"
d=$(h5tool reldiff sgd2/final.h5 sgd2-cut/final.h5)
pass_if "to bitwise the uninterrupted 2-rank run ($d)" test "$d" = 0.000e+00
expect_grep "/optim/exp_avg .*ok" inspect-sgd.log "inspect finds SGD's buffer under its checkpoint-v1 name"
run_cmd eval-old.log "$BTRM" eval "$v1"/sgd-final.h5 pairs.h5
expect_rc 0 "a model file written before the versions is read"
cp -r "$v1"/run oldrun
run_cmd report-old.log "$BTRM" report oldrun --format csv
expect_rc 0 "report reads a summary.json and eval.jsonl without btrm_format"
expect_grep "^result,synth,normbt,1,7,0\.813333," report-old.log "and tabulates the run with its final accuracy (0.8133 in its summary.json)"

# 3. a newer version is refused, naming the btrm that wrote it and what this
#    btrm reads
newer() { # FILE TAG: the file as a newer btrm would write it
    h5tool set-attr "$1" / btrm_format "$2" && h5tool set-attr "$1" / btrm_version 99.0.0
}
cp new.h5 newer-pairs.h5 && newer newer-pairs.h5 pairs-v2
run_cmd np.log "$BTRM" eval new-sgd/final.h5 newer-pairs.h5
expect_rc 2 "a pairs-v2 store is refused"
expect_grep "newer-pairs.h5: format pairs-v2, written by btrm 99.0.0; this btrm \($version\) reads pairs-v1" np.log "the message names both btrm versions"
cp new-sgd/final.h5 newer-model.h5 && newer newer-model.h5 model-v4
run_cmd nm.log "$BTRM" eval newer-model.h5 pairs.h5
expect_grep "format model-v4, written by btrm 99.0.0; this btrm \($version\) reads model-v1 to model-v3" nm.log "a model-v4 file is refused"
mkdir -p newer-ck/checkpoints
cp $ck newer-ck/checkpoints/step-00000012.h5 && newer newer-ck/checkpoints/step-00000012.h5 checkpoint-v4
run_cmd nc.log mpi 2 "$BTRM" train sgd.yaml --set run.out_dir=newer-ck --resume auto
expect_rc 2 "--resume auto stops at a checkpoint-v4 instead of skipping it"
expect_grep "format checkpoint-v4, written by btrm 99.0.0; this btrm \($version\) reads checkpoint-v1 to checkpoint-v3" nc.log "the message says which versions this btrm reads"
pass_if "and the refused run started nothing" test ! -e newer-ck/final.h5
run_cmd ni.log "$BTRM" inspect newer-ck/checkpoints/step-00000012.h5
expect_grep "checkpoint-v4, written by btrm 99.0.0" ni.log "inspect names the newer format too"
cp -r new-sgd newer-run
/usr/bin/python3 - newer-run/summary.json <<'PY'
import json, sys
doc = json.load(open(sys.argv[1])); doc["btrm_format"] = "summary-v2"; doc["btrm_version"] = "99.0.0"
json.dump(doc, open(sys.argv[1], "w"))
PY
run_cmd nr.log "$BTRM" report newer-run
expect_grep "summary.json: format summary-v2, written by btrm 99.0.0; this btrm \($version\) reads summary-v1" nr.log "report names a newer summary.json"
cp -r new-sgd newer-eval
sed -i 's/"eval-v1"/"eval-v2"/' newer-eval/eval.jsonl
/usr/bin/python3 - newer-eval/summary.json <<'PY'
import json, sys
doc = json.load(open(sys.argv[1])); del doc["final_eval"]   # report reads eval.jsonl then
json.dump(doc, open(sys.argv[1], "w"))
PY
run_cmd ne.log "$BTRM" report newer-eval
expect_grep "eval.jsonl: format eval-v2, written by btrm $version; this btrm \($version\) reads eval-v1" ne.log "report names a newer eval.jsonl"
done_testing
