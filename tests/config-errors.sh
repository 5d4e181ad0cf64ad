#!/bin/bash
# `btrm config` on bad configs: exit 2 and "btrm: error: FILE:LINE:COLUMN: ..."
# on stderr (nothing on stdout) for each class of error; on good configs, exit
# 0 and output that `btrm config` turns into the same bytes again. Also checks
# that docs/config.md's key table is the one the key table generates.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
D="$BTRM_SRCDIR/tests/data/config"
cd "$WORK"

# expect_error DESCRIPTION MESSAGE ARGS...: `btrm config ARGS` exits 2 with
# exactly the line "btrm: error: MESSAGE" on stderr and nothing on stdout.
expect_error() {
    local what=$1 want="btrm: error: $2"; shift 2
    rc=0
    "$BTRM" config "$@" >out.log 2>err.log || rc=$?
    expect_rc 2 "$what"
    if grep -qxF -- "$want" err.log && [ ! -s out.log ]; then
        ok 0 "$what: message"
    else
        ok 1 "$what: message"
        diag "want: $want" "got:"
        sed 's/^/#   /' err.log | head -5
    fi
}

expect_error "bad --set value" "--set 'optim.lr=abc': expected a number, got 'abc'" \
    "$D/full.yaml" --set optim.lr=abc
expect_error "unknown --set key" \
    "--set 'optim.lrr=0.1': unknown key 'optim.lrr'; did you mean 'optim.lr'?" \
    "$D/full.yaml" --set optim.lrr=0.1
expect_error "bad --set list entry" \
    "--set 'model.hidden=[64, 0]': model.hidden[1]: 0 is out of range (must be >= 1)" \
    --set 'model.hidden=[64, 0]'
expect_error "--set without =" "--set 'optim.lr': expected KEY=VALUE, e.g. --set optim.lr=3e-4" \
    --set optim.lr
expect_error "unknown key with a suggestion" \
    "$D/typo.yaml:4:3: unknown key 'optim.lrr'; did you mean 'optim.lr'?" "$D/typo.yaml"
expect_error "wrong type" "$D/bad-value.yaml:2:7: optim.lr: expected a number, got 'abc'" \
    "$D/bad-value.yaml"
expect_error "missing base" "$D/missing-base.yaml:4:7: base: cannot open \
'$D/no-such-base.yaml': No such file or directory" "$D/missing-base.yaml"
expect_error "base cycle" \
    "$D/cycle-b.yaml:1:7: base cycle: $D/cycle-a.yaml -> $D/cycle-b.yaml -> $D/cycle-a.yaml" \
    "$D/cycle-a.yaml"
expect_error "top level not a mapping" "$D/not-mapping.yaml:1:1: the top level must be a \
mapping of sections (run:, data:, model:, ...), got a list" "$D/not-mapping.yaml"
expect_error "YAML syntax error" "$D/syntax.yaml:3:7: invalid YAML: did not find expected ',' \
or ']' (while parsing a flow sequence at line 2, column 9)" "$D/syntax.yaml"
expect_error "empty file" "$D/empty.yaml: empty config" "$D/empty.yaml"
expect_error "missing file" "cannot open 'no-such.yaml': No such file or directory" no-such.yaml
printf '\211HDF\r\n\032\n\0\0\0\0' >model.h5
expect_error "non-YAML (HDF5) file" \
    "model.h5:1:1: not YAML text: invalid leading UTF-8 octet (byte 0x89)" model.h5

# 10 MiB of garbage: a fixed permutation of the 256 byte values, repeated.
for i in $(seq 0 255); do printf "\\$(printf %03o $(((i * 167 + 131) % 256)))"; done >chunk
for i in $(seq 12); do cat chunk chunk >chunk2 && mv chunk2 chunk; done
for i in $(seq 10); do cat chunk; done >garbage.bin
rm -f chunk
start=$(date +%s%N)
expect_error "10 MiB of garbage" \
    "garbage.bin:1:1: not YAML text: invalid leading UTF-8 octet (byte 0x83)" garbage.bin
ms=$((($(date +%s%N) - start) / 1000000))
pass_if "10 MiB of garbage is rejected in under 5 s (${ms} ms)" [ "$ms" -lt 5000 ]
rm -f garbage.bin

# Usage errors and help.
run_cmd two.log "$BTRM" config "$D/full.yaml" "$D/typo.yaml"
expect_rc 2 "two config files are a usage error"
expect_grep "^Try 'btrm config --help'" two.log "... with a hint"
run_cmd help.log "$BTRM" config --help
expect_rc 0 "btrm config --help"
expect_grep "--set KEY=VALUE" help.log "--help explains --set"
expect_grep "Exit codes: 0 ok" help.log "--help lists the exit codes"

# Round trips: btrm config's output, fed back, gives the same bytes.
round_trip() { # round_trip NAME ARGS...
    local name=$1; shift
    rc=0
    "$BTRM" config "$@" >"$name.1.yaml" 2>"$name.err" || rc=$?
    expect_rc 0 "btrm config $name"
    rc=0
    "$BTRM" config "$name.1.yaml" >"$name.2.yaml" 2>>"$name.err" || rc=$?
    if [ "$rc" -eq 0 ] && cmp -s "$name.1.yaml" "$name.2.yaml"; then
        ok 0 "$name: output round-trips byte for byte"
    else
        ok 1 "$name: output round-trips byte for byte"
        sed 's/^/#   /' "$name.err" | head -5
        diff "$name.1.yaml" "$name.2.yaml" | head -10 | sed 's/^/#   /'
    fi
}
round_trip defaults
round_trip full "$D/full.yaml"
round_trip chain "$D/chain-child.yaml" --set optim.lr=0.125
round_trip odd "$D/full.yaml" --set 'run.name="a \"b\"\t\\ é\u2028 #: x"' \
    --set 'data.eval=["-", "~", "null", "[x]", "new\nline"]' --set optim.eps=1e-300
expect_grep '^  name: "child"$' chain.1.yaml "the including file overrides its base"
expect_grep '^  lr: 0\.125$' chain.1.yaml "--set overrides the file"
expect_grep '^  seed: 7$' chain.1.yaml "keys come through the base chain"
expect_grep '^  global_batch: all$' full.1.yaml "global_batch: all is written as all"
lines=$(grep -c ':' defaults.1.yaml)
pass_if "the defaults list every key ($lines lines)" [ "$lines" -ge 40 ]

if [ -w /dev/full ]; then
    rc=0
    "$BTRM" config "$D/full.yaml" >/dev/full 2>full.err || rc=$?
    expect_rc 1 "a failed write of the output exits 1"
else
    skip "no /dev/full"
fi

# docs/config.md's key table is generated: btrm config --doc-markdown.
run_cmd table.md "$BTRM" config --doc-markdown
expect_rc 0 "btrm config --doc-markdown"
sed -n '/^<!-- BEGIN KEY TABLE/,/^<!-- END KEY TABLE/p' "$BTRM_SRCDIR/docs/config.md" |
    sed '1d;$d' >docs-table.md
if [ -s docs-table.md ] && cmp -s table.md docs-table.md; then
    ok 0 "docs/config.md's key table matches the key table"
else
    ok 1 "docs/config.md's key table matches the key table"
    diag "regenerate it: tools/update-config-doc.sh"
    diff docs-table.md table.md | head -10 | sed 's/^/#   /'
fi

plan "$tap_n"
done_testing
