#!/bin/bash
# The btrm dispatcher: --help and --version, every subcommand's --help,
# unknown commands and options.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
cmds="train eval inspect analyze prep embed score serve export tokenize generate synth config sweep report"
cd "$WORK"
plan $((6 + 3 * $(echo $cmds | wc -w)))
run_cmd help.log "$BTRM" --help
expect_rc 0 "btrm --help"
pass_if "--help lists every command" sh -c "for c in $cmds; do grep -q \"^  \$c \" help.log || exit 1; done"
run_cmd version.log "$BTRM" --version
expect_grep '^btrm [0-9]+\.[0-9]+\.[0-9]+' version.log "btrm --version prints the version"
run_cmd unknown.log "$BTRM" frobnicate
expect_rc 2 "an unknown command exits 2"
# --help and --version start no MPI: they work where MPI_Init fails (an
# MPI component that does not exist), as help2man needs at build time.
export OMPI_MCA_pml=no_such_component
run_cmd nompi-help.log "$BTRM" --help
expect_rc 0 "btrm --help where MPI cannot start"
run_cmd nompi-version.log "$BTRM" --version
expect_rc 0 "btrm --version where MPI cannot start"
for c in $cmds; do
    run_cmd $c-nompi.log "$BTRM" $c --help
    expect_rc 0 "btrm $c --help where MPI cannot start"
done
unset OMPI_MCA_pml
for c in $cmds; do
    run_cmd $c-help.log "$BTRM" $c --help
    expect_grep "^Usage: .*btrm $c" $c-help.log "btrm $c --help prints its usage"
    run_cmd $c-bad.log "$BTRM" $c --no-such-option
    expect_rc 2 "btrm $c with an unknown option exits 2"
done
done_testing
