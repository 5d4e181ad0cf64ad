#!/bin/bash
# Checkpoints and restarts: bitwise-exact resume (1 and 2 ranks), 2 -> 3 ranks,
# SIGUSR1 -> checkpoint + exit 75, kill -9 of a rank, a crash halfway through a
# checkpoint write, truncated and corrupted checkpoints, config mismatches,
# sharded vs replicated optimizer state, datasets of several O_DIRECT blocks.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 48
cd "$WORK"
h5tool() { /usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" "$@"; }
strip() { sed 's/"pairs_per_s":[^,}]*//' "$1"; }
"$BTRM" synth train.h5 --pairs 2000 --dim 24 --seed 3 >synth.log 2>&1
cat > run.yaml <<YAML
run: {name: ck, seed: 9}
data: {train: train.h5}
model: {head: mlp, hidden: [16], activation: tanh}
loss: {type: normbt}
optim: {type: adamw, lr: 0.003, schedule: cosine, warmup_steps: 5, grad_clip: 1.0}
train: {global_batch: 100, steps: 60, log_every: 7}
checkpoint: {every: 20, keep: 5}
YAML

# 1. uninterrupted runs, then resume from step 20 (later files removed)
for np in 1 2; do
    run_cmd full-$np.log mpi $np "$BTRM" train run.yaml --set run.out_dir=full-$np
    expect_rc 0 "uninterrupted run on $np rank(s)"
    pass_if "checkpoints at 20, 40, 60 and a latest link ($np)" test -f full-$np/checkpoints/step-00000040.h5 -a -L full-$np/checkpoints/latest
    cp -r full-$np cut-$np
    rm cut-$np/checkpoints/step-00000040.h5 cut-$np/checkpoints/step-00000060.h5 cut-$np/final.h5
    run_cmd cut-$np.log mpi $np "$BTRM" train run.yaml --set run.out_dir=cut-$np --resume auto
    expect_grep "resuming from .*step-00000020.h5" cut-$np.log "resume auto picks step 20 ($np)"
    pass_if "resumed run ends bitwise identical to the uninterrupted one ($np rank(s))" cmp -s full-$np/final.h5 cut-$np/final.h5
    pass_if "metrics.jsonl identical except timing ($np rank(s))" cmp -s <(strip full-$np/metrics.jsonl) <(strip cut-$np/metrics.jsonl)
done

# 2. a different rank count at resume: 2 -> 3 ranks
cp -r full-2 to3
rm to3/checkpoints/step-00000040.h5 to3/checkpoints/step-00000060.h5 to3/final.h5
run_cmd to3.log mpi 3 "$BTRM" train run.yaml --set run.out_dir=to3 --resume auto
expect_rc 0 "resume a 2-rank checkpoint on 3 ranks"
expect_grep "resuming from .*step-00000020.h5" to3.log "3 ranks resume from the 2-rank step-20 checkpoint"
d=$(h5tool reldiff full-2/final.h5 to3/final.h5)
pass_if "2 -> 3 ranks matches within summation order (relative difference $d <= 1e-4)" awk "BEGIN{exit !($d <= 1e-4)}"

# 3. SIGUSR1: checkpoint at the next step boundary, exit 75, then resume
cat > long.yaml <<YAML
base: run.yaml
train: {steps: 4000, log_every: 50}
checkpoint: {every: 0}
YAML
run_cmd longref.log mpi 2 "$BTRM" train long.yaml --set run.out_dir=longref
# rank 0 waits at step 50 until the signal lands (src/core/fault.h)
BTRM_FAULT=step,step=50,action=wait "$BTRM_MPIRUN" 2 "$BTRM" train long.yaml \
    --set run.out_dir=sig >sig.log 2>&1 &
pid=$!
for i in $(seq 1 600); do grep -q 'fault injection at step' sig.log && break; sleep 0.1; done
kill -USR1 $pid
wait $pid; rc=$?
expect_rc 75 "SIGUSR1 to mpirun: the ranks checkpoint and exit 75"
expect_grep '"status": "preempted"' sig/summary.json "summary.json says preempted"
pass_if "a checkpoint was written by the signal" sh -c 'ls sig/checkpoints/step-*.h5 >/dev/null 2>&1'
run_cmd sig2.log mpi 2 "$BTRM" train long.yaml --set run.out_dir=sig --resume auto
expect_rc 0 "the requeued run resumes and finishes"
expect_grep "resuming from .*sig/checkpoints/step-" sig2.log "it resumed from the signal's checkpoint"
pass_if "signal-interrupted run ends bitwise identical to the uninterrupted one" cmp -s longref/final.h5 sig/final.h5
pass_if "and logs the same metrics (timing aside)" cmp -s <(strip longref/metrics.jsonl) <(strip sig/metrics.jsonl)

# 4. kill -9 of one rank mid-training, then --resume auto
cat > kill.yaml <<YAML
base: run.yaml
train: {steps: 4000, log_every: 50}
checkpoint: {every: 100}
YAML
"$BTRM_MPIRUN" 2 "$BTRM" train kill.yaml --set run.out_dir=kill >kill.log 2>&1 &
pid=$!
for i in $(seq 1 300); do [ -e kill/checkpoints/latest ] && break; sleep 0.1; done
victim=$(pgrep -f "^$BTRM train kill.yaml" | tail -n 1)
kill -9 $victim
wait $pid; rc=$?
pass_if "killing a rank with SIGKILL ends the job (exit $rc)" test $rc -ne 0
run_cmd kill2.log mpi 2 "$BTRM" train kill.yaml --set run.out_dir=kill --resume auto
expect_rc 0 "resume after kill -9"
expect_grep "resuming from .*kill/checkpoints/step-" kill2.log "it resumed from a checkpoint"
run_cmd killref.log mpi 2 "$BTRM" train kill.yaml --set run.out_dir=killref
pass_if "after kill -9 and resume: bitwise identical to an uninterrupted run" cmp -s killref/final.h5 kill/final.h5

# 5. a crash halfway through a checkpoint write leaves the previous one intact
cp -r full-2 fault
rm fault/checkpoints/step-00000040.h5 fault/checkpoints/step-00000060.h5 fault/final.h5
ln -sfn step-00000020.h5 fault/checkpoints/latest
run_cmd fault2.log env BTRM_FAULT=ckpt-midway "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml --set run.out_dir=fault --resume auto
pass_if "fault injection kills the job mid-write (exit $rc)" test $rc -ne 0
pass_if "no step-40 checkpoint under its final name" test ! -e fault/checkpoints/step-00000040.h5
pass_if "latest still points to step 20" test "$(readlink fault/checkpoints/latest)" = step-00000020.h5
run_cmd fault3.log "$BTRM" inspect fault/checkpoints/step-00000020.h5
expect_rc 0 "the previous checkpoint verifies"
run_cmd fault4.log mpi 2 "$BTRM" train run.yaml --set run.out_dir=fault --resume auto
expect_grep "resuming from .*step-00000020.h5" fault4.log "after the crash the run resumes from step 20"
pass_if "and the run resumes from it to the same result" cmp -s full-2/final.h5 fault/final.h5

# 6. truncated and corrupted checkpoints
cp -r full-2 trunc
rm trunc/final.h5
truncate -s 3000 trunc/checkpoints/step-00000060.h5
run_cmd trunc.log mpi 2 "$BTRM" train run.yaml --set run.out_dir=trunc --resume auto
expect_grep "skipping checkpoint .*step-00000060.h5" trunc.log "a truncated newest checkpoint is skipped with a warning naming it"
expect_grep "resuming from .*step-00000040.h5" trunc.log "and the previous one is used"
cp -r full-2 corrupt
off=$(/usr/bin/python3 -c "import h5py; print(h5py.File('corrupt/checkpoints/step-00000060.h5')['optim/exp_avg'].id.get_offset())")
printf '\x5a' | dd of=corrupt/checkpoints/step-00000060.h5 bs=1 seek=$((off + 17)) conv=notrunc 2>/dev/null
run_cmd inspect-bad.log "$BTRM" inspect corrupt/checkpoints/step-00000060.h5
expect_rc 1 "inspect exits 1 on a corrupted byte"
expect_grep "/optim/exp_avg.*BAD" inspect-bad.log "inspect names the corrupt dataset"
run_cmd inspect-bad2.log mpi 3 "$BTRM" inspect corrupt/checkpoints/step-00000060.h5
expect_rc 1 "inspect on 3 ranks detects it too"
run_cmd resume-bad.log mpi 2 "$BTRM" train run.yaml --set run.out_dir=corrupt --resume corrupt/checkpoints/step-00000060.h5
expect_grep "corrupt.*crc32" resume-bad.log "resume from the corrupt file names the checksum failure"
run_cmd inspect-ok.log "$BTRM" inspect full-2/checkpoints/step-00000060.h5
expect_grep "step 60" inspect-ok.log "inspect prints the step"
# a dataset of another type: libhdf5 would convert it through a buffer sized by
# the type (a fuzzed 1.8 GB float type); btrm writes float32 and reads only that
cp -r full-2 f64
/usr/bin/python3 - <<'PY'
import h5py
with h5py.File("f64/checkpoints/step-00000060.h5", "r+") as f:
    g = f["optim"]
    x, attrs = g["exp_avg"][()], dict(g["exp_avg"].attrs)
    del g["exp_avg"]
    d = g.create_dataset("exp_avg", data=x.astype("<f8"))
    for k, v in attrs.items():
        d.attrs[k] = v
PY
run_cmd inspect-f64.log "$BTRM" inspect f64/checkpoints/step-00000060.h5
expect_rc 1 "a float64 dataset in a checkpoint: inspect exits 1"
expect_grep "/optim/exp_avg must be little-endian float32 \(found float64\)" inspect-f64.log "... naming the dataset and its type"

# 7. a checkpoint that does not match the config is refused
cp full-2/config.yaml config-before.yaml
run_cmd mismatch.log mpi 2 "$BTRM" train run.yaml --set run.out_dir=full-2 --set 'model.hidden=[8]' --resume auto
expect_rc 2 "a checkpoint of another model shape is refused (exit 2)"
pass_if "the refused run left the run's config.yaml as it was" cmp -s full-2/config.yaml config-before.yaml
expect_grep "fc0/weight.*\[16, 24\].*\[8, 24\]" mismatch.log "the message says what differs"

# 8. sharded and replicated optimizer state train the same
run_cmd noshard.log mpi 2 "$BTRM" train run.yaml --set run.out_dir=noshard --set dist.shard_optimizer=false
d=$(h5tool reldiff full-2/final.h5 noshard/final.h5)
pass_if "shard_optimizer true vs false: relative difference $d <= 1e-4" awk "BEGIN{exit !($d <= 1e-4)}"
# 9. slabs of several O_DIRECT blocks, moved by four I/O threads per rank
# (src/io/ckpt.c: 8 MiB blocks, 4 threads): 10.5 M parameters, 42 MB a dataset
"$BTRM" synth big.h5 --pairs 64 --dim 4096 --seed 4 >>synth.log 2>&1
cat > big.yaml <<YAML
run: {name: big, seed: 2}
data: {train: big.h5}
model: {head: mlp, hidden: [2560]}
train: {global_batch: 64, steps: 4, log_every: 1}
checkpoint: {every: 2, keep: 5}
YAML
for np in 1 2; do
    run_cmd big-$np.log mpi $np "$BTRM" train big.yaml --set run.out_dir=big-$np
    mkdir -p bigcut-$np/checkpoints
    cp big-$np/checkpoints/step-00000002.h5 bigcut-$np/checkpoints/
    run_cmd bigcut-$np.log mpi $np "$BTRM" train big.yaml --set run.out_dir=bigcut-$np --resume auto
    pass_if "42 MB datasets on $np rank(s): resumed from step 2, bitwise identical" \
        eval "grep -q 'resuming from .*step-00000002.h5' bigcut-$np.log && cmp -s big-$np/final.h5 bigcut-$np/final.h5"
done
run_cmd big-inspect.log "$BTRM" inspect big-2/checkpoints/step-00000002.h5
expect_rc 0 "the 2-rank checkpoint verifies (every dataset's crc32) on 1 rank"
# one byte 20 MiB into exp_avg_sq: its third block, in the second thread's
# run (each thread moves a contiguous run of two 8 MiB blocks here)
off=$(/usr/bin/python3 -c "import h5py; print(h5py.File('big-1/checkpoints/step-00000002.h5')['optim/exp_avg_sq'].id.get_offset())")
printf '\x5a' | dd of=big-1/checkpoints/step-00000002.h5 bs=1 seek=$((off + 20971520 + 3)) conv=notrunc 2>/dev/null
run_cmd big-bad.log mpi 2 "$BTRM" inspect big-1/checkpoints/step-00000002.h5
expect_grep "/optim/exp_avg_sq.*BAD" big-bad.log "a byte changed in its third block is found"
# the parameters are read 1/P per rank and all-gathered: a byte in rank 1's half
cp -r big-2 bigbad-2
rm bigbad-2/final.h5 bigbad-2/checkpoints/step-00000004.h5
off=$(/usr/bin/python3 -c "import h5py; print(h5py.File('bigbad-2/checkpoints/step-00000002.h5')['model/fc0/weight'].id.get_offset())")
printf '\x5a' | dd of=bigbad-2/checkpoints/step-00000002.h5 bs=1 seek=$((off + 30000000)) conv=notrunc 2>/dev/null
run_cmd bigbad-2.log mpi 2 "$BTRM" train big.yaml --set run.out_dir=bigbad-2 --resume bigbad-2/checkpoints/step-00000002.h5
expect_grep "fc0/weight is corrupt: crc32" bigbad-2.log "2 ranks: a byte changed in rank 1's half of the replicated weight is found"
done_testing
