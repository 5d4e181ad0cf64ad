#!/bin/bash
# make install into a temporary prefix: btrm runs from there; btrm(1) has
# every subcommand's --help; the bash completion completes subcommands,
# options and config keys; configs/, slurm/, data-prep/ and the demo are
# under PREFIX/share/btrm as in the source tree (executables executable);
# the installed Slurm scripts, build-realbench.sh and the demo find the
# installed btrm with the build tree and PATH out of the way; btrm sweep
# points at the installed sweep.sbatch. (make installcheck runs the demo.)
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
build=$(cd "$(dirname "$BTRM")/.." && pwd)
[ -f "$build/Makefile" ] || skip_all "no Makefile next to $BTRM"
plan 13
cd "$WORK" || exit 1
P=$WORK/prefix
run_cmd install.log make -C "$build" install prefix="$P"
expect_rc 0 "make install prefix=$P"
run_cmd version.log env -i PATH=/usr/bin:/bin "$P/bin/btrm" --version
expect_grep "^btrm [0-9]" version.log "the installed btrm runs"
man=$P/share/man/man1/btrm.1
if command -v help2man >/dev/null; then
    pass_if "btrm(1) is installed" test -s "$man"
    MANWIDTH=200 man -l "$man" > man.txt 2>/dev/null
    missing=""
    for c in $("$BTRM" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p'); do
        grep -q "^   btrm $c$" man.txt || missing="$missing $c"
        grep -q "Usage: .*btrm $c" man.txt || missing="$missing $c(usage)"
    done
    pass_if "the man page has every subcommand's --help${missing:+ (missing:$missing)}" test -z "$missing"
else
    skip "help2man not installed (tools/install-deps.sh)"
    skip "help2man not installed"
fi
comp=$P/share/bash-completion/completions/btrm
complete_words() { # WORD...: the completions of the last word
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _btrm; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"
}
got=$(complete_words btrm se)
pass_if "bash completion: subcommands (btrm se -> $got)" test "$got" = serve
got=$(complete_words btrm train x.yaml --set optim.l)
pass_if "bash completion: config keys after --set ($got)" test "$got" = optim.lr=
got=$(complete_words btrm serve m.h5 --inv)
pass_if "bash completion: a command's options ($got)" test "$got" = --invariant
diff_tree() { # the installed copy of a source folder: same files, same bytes but lines rewritten by install
    local dir=$1 f bad=""
    for f in $(cd "$BTRM_SRCDIR" && git ls-files "$dir" 2>/dev/null || (cd "$BTRM_SRCDIR" && find "$dir" -type f)); do
        [ -f "$P/share/btrm/$f" ] || { bad="$bad $f"; continue; }
        diff -q <(grep -v 'installed_bindir=' "$BTRM_SRCDIR/$f") <(grep -v 'installed_bindir=' "$P/share/btrm/$f") >/dev/null ||
            bad="$bad $f(differs)"
        [ ! -x "$BTRM_SRCDIR/$f" ] || [ -x "$P/share/btrm/$f" ] || bad="$bad $f(not executable)"
    done
    echo "$bad"
}
bad="$(diff_tree configs)$(diff_tree slurm)$(diff_tree data-prep)"
pass_if "configs/, slurm/, data-prep/ installed under share/btrm as in the source tree${bad:+ (bad:$bad)}" test -z "$bad"
pass_if "the demo is installed as share/btrm/tools/demo.sh" test -x "$P/share/btrm/tools/demo.sh"
# the installed scripts find the installed btrm: no build tree, btrm not on PATH
source_lib() {
    env -i HOME="$WORK" PATH=/usr/bin:/bin bash -c "set -euo pipefail; source '$P/share/btrm/slurm/lib.sh'; btrm_setup '$P/share/btrm'; echo \"\$BTRM\""
}
got=$(source_lib 2>&1)
pass_if "the installed slurm/lib.sh finds the installed btrm ($got)" test "$got" = "$P/bin/btrm"
pass_if "the installed demo and build-realbench.sh know where btrm is" \
    sh -c "grep -q '^installed_bindir=\"$P/bin\"' '$P/share/btrm/tools/demo.sh' && grep -q '^installed_bindir=\"$P/bin\"' '$P/share/btrm/data-prep/build-realbench.sh'"
"$BTRM" synth t.h5 --pairs 50 --dim 4 >synth.log 2>&1
printf 'run: {name: s}\ndata: {train: t.h5}\n' > base.yaml
printf 'name: s\nbase: base.yaml\ngrid:\n  loss.type: [bt, normbt]\n' > sweep.yaml
run_cmd sweep.log env -u BTRM_SLURM_DIR "$P/bin/btrm" sweep sweep.yaml -o sw
expect_grep " (prefix|$P)/share/btrm/slurm/sweep.sbatch sw$" sweep.log "btrm sweep names the installed sweep.sbatch"
run_cmd uninstall.log make -C "$build" uninstall prefix="$P"
pass_if "make uninstall removes every file" sh -c "test \"\$(find '$P' -type f | wc -l)\" -eq 0"
done_testing
