#!/bin/bash
# Resources that run out (docs/reliability.md): a pair store whose features
# do not fit in the node's memory is refused before anything is allocated,
# with the bytes it needs and the bytes available, whether the bound is the
# machine's MemAvailable or a memory cgroup's limit (what Slurm's
# task/cgroup sets). The stores are sparse HDF5 files: they claim gigabytes
# of features and hold kilobytes.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
have_python_h5py || skip_all "python3 h5py/numpy not installed (tools/install-deps.sh --with-python)"
plan 8
cd "$WORK"
h5tool() { /usr/bin/python3 "$BTRM_SRCDIR/tests/h5tool.py" "$@"; }
"$BTRM" synth small.h5 --pairs 200 --dim 8 --seed 1 >synth.log 2>&1
cat > run.yaml <<YAML
run: {name: resources, out_dir: out}
data: {train: big.h5}
model: {head: linear}
loss: {type: bt}
train: {global_batch: 100, steps: 2}
YAML

# 1. more than the machine has: twice MemTotal of float32 features
total=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) * 1024 ))
rows=$(( total / (4096 * 4) * 2 ))
h5tool inflate small.h5 big.h5 $rows 4096
run_cmd machine.log timeout 120 "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml
expect_rc 1 "a store of $((rows * 4096 * 4)) feature bytes on a machine of $total bytes: exit 1"
expect_grep "big.h5: /features needs $((rows * 4096 * 4)) bytes of memory on each node \($rows rows x 4096 columns.*but [0-9]+ bytes are available \(MemAvailable\)" \
    machine.log "the message gives the bytes needed and the bytes available"
pass_if "nothing was trained" test ! -e out/final.h5

# 2. more than a memory cgroup allows (cgroup v1 or v2, as root)
cg=""
for base in /sys/fs/cgroup/memory /sys/fs/cgroup/unified /sys/fs/cgroup; do
    if [ -w "$base" ] && mkdir "$base/btrm-test-$$" 2>/dev/null; then
        cg=$base/btrm-test-$$
        if [ -e "$cg/memory.limit_in_bytes" ]; then echo 512M >"$cg/memory.limit_in_bytes"
        elif [ -e "$cg/memory.max" ]; then echo 512M >"$cg/memory.max"
        else rmdir "$cg"; cg=""; continue; fi
        break
    fi
done
if [ -z "$cg" ]; then
    skip "cannot create a memory cgroup here (needs root and a writable cgroup v1 memory or v2 hierarchy)"
    skip "cannot create a memory cgroup here"
    skip "cannot create a memory cgroup here"
    skip "cannot create a memory cgroup here"
    skip "cannot create a memory cgroup here"
else
    trap 'rmdir "$cg" 2>/dev/null; cleanup_work' EXIT
    in_cgroup() { sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cg" "$@"; }
    h5tool inflate small.h5 big.h5 40000 4096   # 655 MB of features > 512 MiB
    run_cmd cgroup.log in_cgroup timeout 120 "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml
    expect_rc 1 "655 MB of features under a 512 MiB memory cgroup: exit 1"
    expect_grep "needs 655360000 bytes of memory on each node .* but [0-9]+ bytes are available \(memory cgroup /btrm-test-$$: limit 536870912, used [0-9]+\)" \
        cgroup.log "the message names the cgroup, its limit and its usage"
    h5tool inflate small.h5 big.h5 4000 4096     # 65 MB fits
    run_cmd fits.log in_cgroup timeout 120 "$BTRM_MPIRUN" 2 "$BTRM" train run.yaml
    expect_rc 0 "65 MB of features under the same cgroup train"
    pass_if "and write a model" test -s out/final.h5
    pass_if "no process is left in the cgroup" test -z "$(cat "$cg/cgroup.procs")"
fi
done_testing
