#!/bin/bash
# A full disk (docs/reliability.md), on small tmpfs mounts made for the test
# (root; skipped with the reason where mounting is impossible): during a
# 2-rank checkpoint write, during final.h5, and under the outputs of btrm prep
# and btrm embed. Each time: exit 1 within a bounded time, never a hang or a
# crash; the errno message names the path; the previous checkpoint or output
# stays valid and loadable; no partial file is left, under a final name or a
# temporary one; and once there is room again the run resumes to the bits of
# an uninterrupted one.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "mounting a small tmpfs needs root"
mkdir -p "$WORK/probe"
mount -t tmpfs -o size=64k tmpfs "$WORK/probe" 2>/dev/null ||
    skip_all "cannot mount a tmpfs here (no CAP_SYS_ADMIN in this container?)"
umount "$WORK/probe"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 24
cd "$WORK"
LIMIT=120
mounts=()
mount_tmpfs() { mkdir -p "$1" && mount -t tmpfs -o "size=$2" tmpfs "$1" && mounts+=("$1"); }
cleanup_mounts() { local m; for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done; cleanup_work; }
trap cleanup_mounts EXIT
# fill DIR up to LEFT kilobytes free
fill() { local free; free=$(df -k --output=avail "$1" | tail -n1)
         [ "$free" -le "$2" ] || fallocate -l $(( (free - $2) * 1024 )) "$1/filler"; }
leftovers() { find "$1" -name '.*tmp*' | head -n 3; }
h5ok() { /usr/bin/python3 -c "import h5py, sys; h5py.File(sys.argv[1], 'r').visit(lambda n: None)" "$1"; }

"$BTRM" synth train.h5 --pairs 1000 --dim 256 --seed 1 >synth.log 2>&1
cat > run.yaml <<YAML
run: {name: diskfull, seed: 1}
data: {train: train.h5}
model: {head: mlp, hidden: [128]}
loss: {type: normbt}
train: {global_batch: 50, steps: 100, log_every: 20}
checkpoint: {every: 10, keep: 100}
YAML
run_cmd ref.log mpi 2 "$BTRM" train run.yaml --set run.out_dir=ref
expect_rc 0 "the reference run"

# 1. checkpoints of ~400 KB every 10 steps into 2 MB: the disk fills mid-run
mount_tmpfs "$WORK/ck" 2m
run_cmd ck.log timeout $LIMIT "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml --set run.out_dir=ck-out \
    --set checkpoint.dir="$WORK/ck"
expect_rc 1 "a full disk during a checkpoint: exit 1, within $LIMIT s"
expect_grep "$WORK/ck/[.]?step-[0-9]+\.h5.*No space left on device|No space left on device.*$WORK/ck/" \
    ck.log "the message names the checkpoint and the errno"
last=$(readlink ck/latest)
run_cmd ck-inspect.log "$BTRM" inspect "ck/$last"
expect_rc 0 "latest ($last) still verifies"
pass_if "no partial checkpoint is left ($(leftovers ck))" test -z "$(leftovers ck)"
n_ck=$(ls ck | grep -c '^step-')
pass_if "every checkpoint under a final name verifies ($n_ck)" \
    sh -c 'for f in ck/step-*.h5; do "$0" inspect "$f" >/dev/null 2>&1 || exit 1; done' "$BTRM"
mount -o remount,size=16m "$WORK/ck"
run_cmd ck-resume.log timeout $LIMIT "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml \
    --set run.out_dir=ck-out --set checkpoint.dir="$WORK/ck" --resume auto
expect_rc 0 "with room again, --resume auto finishes"
expect_grep "resuming from $WORK/ck/$last" ck-resume.log "from the last good checkpoint"
pass_if "and ends bitwise identical to the reference" cmp -s ref/final.h5 ck-out/final.h5

# 2. final.h5 on a full disk: the previous final.h5 stays
mount_tmpfs "$WORK/fin" 1m
mkdir fin/out
cp ref/final.h5 fin/out/final.h5
cp fin/out/final.h5 final-before.h5
fill fin 16
run_cmd fin.log timeout $LIMIT "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml --set run.out_dir="$WORK/fin/out" \
    --set checkpoint.dir="$WORK/fin-ck" --set run.seed=2
expect_rc 1 "a full disk under final.h5: exit 1 (not a crash), within $LIMIT s"
expect_grep "$WORK/fin/out/[.]?final\.h5.*No space left on device" fin.log \
    "the message names final.h5 and the errno"
pass_if "the previous final.h5 is unchanged" cmp -s final-before.h5 fin/out/final.h5
pass_if "and loads" h5ok fin/out/final.h5
pass_if "no partial file is left ($(leftovers fin))" test -z "$(leftovers fin)"

# 3. btrm prep onto a full disk: the previous output stays
mount_tmpfs "$WORK/prep" 1m
cp "$BTRM_SRCDIR/tests/data/prep/hh.jsonl" hh.jsonl
run_cmd prep1.log "$BTRM" prep hh.jsonl -o prep/hh.h5
expect_rc 0 "btrm prep writes its store"
cp prep/hh.h5 prep-before.h5
for i in 1 2 3 4 5 6 7 8; do cat "$BTRM_SRCDIR/tests/data/prep/hh.jsonl"; done | \
    sed 's/"chosen": "/&again /' > big.jsonl
fill prep 8
run_cmd prep2.log timeout $LIMIT "$BTRM" prep big.jsonl -o prep/hh.h5
expect_rc 1 "btrm prep onto a full disk: exit 1"
expect_grep "prep/[.]?hh\.h5.*No space left on device" prep2.log "the message names the output and the errno"
pass_if "the previous store is unchanged" cmp -s prep-before.h5 prep/hh.h5
pass_if "no partial file is left ($(leftovers prep))" test -z "$(leftovers prep)"

# 4. btrm embed (2 ranks, collective writes) onto a full disk
mount_tmpfs "$WORK/emb" 2m
run_cmd emb1.log mpi 2 "$BTRM" embed prep-before.h5 -o emb/hh.h5 --backbone hash --dim 64
expect_rc 0 "btrm embed writes its store"
cp emb/hh.h5 emb-before.h5
fill emb 8
run_cmd emb2.log timeout $LIMIT "$BTRM_MPIRUN" 2 "$BTRM" embed prep-before.h5 -o emb/hh.h5 \
    --backbone hash --dim 4096
expect_rc 1 "btrm embed onto a full disk: exit 1, within $LIMIT s"
expect_grep "emb/[.]?hh\.h5.*No space left on device" emb2.log "the message names the output and the errno"
pass_if "the previous store is unchanged" cmp -s emb-before.h5 emb/hh.h5
pass_if "no partial file is left ($(leftovers emb))" test -z "$(leftovers emb)"
done_testing
