#!/bin/bash
# The btrm dispatcher: --help and --version, every subcommand's --help,
# unknown commands and options.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
cmds="train eval inspect analyze prep embed score serve export tokenize generate synth config sweep report"
cd "$WORK"
plan $((4 + 2 * $(echo $cmds | wc -w)))
run_cmd help.log "$BTRM" --help
expect_rc 0 "btrm --help"
pass_if "--help lists every command" sh -c "for c in $cmds; do grep -q \"^  \$c \" help.log || exit 1; done"
run_cmd version.log "$BTRM" --version
expect_grep '^btrm [0-9]+\.[0-9]+\.[0-9]+' version.log "btrm --version prints the version"
run_cmd unknown.log "$BTRM" frobnicate
expect_rc 2 "an unknown command exits 2"
for c in $cmds; do
    run_cmd $c-help.log "$BTRM" $c --help
    expect_grep "^Usage: .*btrm $c" $c-help.log "btrm $c --help prints its usage"
    run_cmd $c-bad.log "$BTRM" $c --no-such-option
    expect_rc 2 "btrm $c with an unknown option exits 2"
done
done_testing
