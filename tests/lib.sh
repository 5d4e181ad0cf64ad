# tests/lib.sh: TAP helpers for the shell tests, sourced by tests/*.sh.
# Environment (set by the harness, see Makefile.am): BTRM (the binary),
# BTRM_MPIRUN (tests/mpirun.sh), BTRM_SRCDIR, BTRM_SHARED (../shared).
set -u
: "${BTRM:=$(pwd)/src/btrm}"
: "${BTRM_MPIRUN:=$(pwd)/tests/mpirun.sh}"
: "${BTRM_SRCDIR:=$(pwd)}"
: "${BTRM_SHARED:=$BTRM_SRCDIR/../shared}"
tap_n=0
tap_fail=0

# A scratch directory per test script, removed at exit unless KEEP_WORK is set.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/btrm-test.XXXXXX")
cleanup_work() { [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup_work EXIT

plan() { echo "1..$1"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
ok() { # ok CONDITION_STATUS DESCRIPTION
    tap_n=$((tap_n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $tap_n - $2"; else echo "not ok $tap_n - $2"; tap_fail=$((tap_fail + 1)); fi
}
pass_if() { # pass_if DESCRIPTION COMMAND...: ok when the command succeeds
    local what=$1; shift
    if "$@"; then ok 0 "$what"; else ok 1 "$what"; fi
}
skip() { tap_n=$((tap_n + 1)); echo "ok $tap_n # SKIP $*"; }
done_testing() { [ "$tap_fail" -eq 0 ]; exit $?; }

# run_cmd OUTFILE CMD...: runs CMD, stdout+stderr into OUTFILE, sets $rc.
run_cmd() {
    local out=$1; shift
    rc=0
    "$@" >"$out" 2>&1 </dev/null || rc=$?
}
# expect_rc WANT DESCRIPTION: checks $rc (set by run_cmd).
expect_rc() {
    if [ "$rc" -eq "$1" ]; then ok 0 "$2 (exit $rc)"; else ok 1 "$2 (exit $rc, want $1)"; fi
}
# expect_grep PATTERN FILE DESCRIPTION: extended regex present in file.
expect_grep() {
    if grep -Eq -- "$1" "$2"; then ok 0 "$3"; else ok 1 "$3"; diag "pattern '$1' not in:"; sed 's/^/#   /' "$2" | head -20; fi
}
mpi() { "$BTRM_MPIRUN" "$@"; }
have_python_h5py() { /usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null; }
