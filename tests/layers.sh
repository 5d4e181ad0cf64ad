#!/bin/bash
# The layered source tree (docs/architecture.md): every quoted include of a
# layer's files names a header of that layer or of a layer it may use; each
# layer's Makefile.am gives its compiler exactly those include folders; the
# MPI-free layers (core, math, model) are compiled with a compiler that does
# not see <mpi.h>, and only io is given HDF5's flags.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
src=$BTRM_SRCDIR/src
# layer: the layers it may include from (itself first)
declare -A allowed=(
    [core]="core"
    [math]="math core"
    [comm]="comm core"
    [io]="io core math comm"
    [model]="model core math io"
    [run]="run core math comm io model"
    [cli]="cli core math comm io model run"
)
layers="core math comm io model run cli"
plan 21

for layer in $layers; do
    bad=""
    for f in "$src/$layer"/*.[ch]; do
        while read -r hdr; do
            found=""
            for dep in ${allowed[$layer]}; do
                [ -f "$src/$dep/$hdr" ] && found=$dep && break
            done
            [ -n "$found" ] || bad="$bad $(basename "$f"):$hdr"
        done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
    done
    [ -z "$bad" ] || diag "$layer includes headers outside {${allowed[$layer]}}:$bad"
    ok "$([ -z "$bad" ]; echo $?)" "$layer: every quoted include is from {${allowed[$layer]}}"
done

# The -I folders of each layer's Makefile.am are exactly its allowed layers.
for layer in $layers; do
    got=$(sed -n '/^AM_CPPFLAGS/,/^[^\t]*$/p' "$src/$layer/Makefile.am" |
          grep -o -- '-I\$(srcdir)[^ \\]*' | sed 's|^-I\$(srcdir)/\.\./||;s|^-I\$(srcdir)$|'"$layer"'|' |
          sort | tr '\n' ' ')
    want=$(printf '%s\n' ${allowed[$layer]} | sort | tr '\n' ' ')
    [ "$got" = "$want" ] || diag "$layer/Makefile.am gives -I {$got}, docs/architecture.md says {$want}"
    ok "$([ "$got" = "$want" ]; echo $?)" "$layer: Makefile.am's include folders are {${allowed[$layer]}}"
done

# HDF5 belongs to io: no other layer's Makefile.am gives HDF5's flags, and no
# file outside io includes <hdf5.h>.
bad=""
for layer in $layers; do
    [ "$layer" = io ] && continue
    grep -q 'HDF5_' "$src/$layer/Makefile.am" && bad="$bad $layer/Makefile.am"
done
[ -z "$bad" ] || diag "HDF5 flags outside io:$bad"
ok "$([ -z "$bad" ]; echo $?)" "only io's Makefile.am has HDF5's flags"
pass_if "only io's files include <hdf5.h>" \
    test -z "$(grep -l '^#include <hdf5.h>' $(for l in $layers; do [ $l = io ] || echo "$src/$l"/*.[ch]; done) "$src"/main.c 2>/dev/null)"

# The MPI-free layers use the plain compiler, and it does not find <mpi.h>.
for layer in core math model; do
    pass_if "$layer: Makefile.am compiles with the plain C compiler (CC = @PLAIN_CC@)" \
        grep -q '^CC = @PLAIN_CC@$' "$src/$layer/Makefile.am"
done
cd "$WORK" || exit 1
printf '#include <mpi.h>\nint main(void) { return 0; }\n' > probe_mpi.c
printf '#include <hdf5.h>\nint main(void) { return 0; }\n' > probe_h5.c
if [ -n "${BTRM_PLAIN_CC:-}" ]; then
    ! $BTRM_PLAIN_CC -c probe_mpi.c -o probe.o 2>/dev/null
    ok $? "the plain C compiler ($BTRM_PLAIN_CC) does not find <mpi.h>"
    ! $BTRM_PLAIN_CC -c probe_h5.c -o probe.o 2>/dev/null
    ok $? "the plain C compiler ($BTRM_PLAIN_CC) does not find <hdf5.h>"
else
    ok 1 "BTRM_PLAIN_CC is set by the test harness"
    ok 1 "BTRM_PLAIN_CC is set by the test harness"
fi
done_testing
