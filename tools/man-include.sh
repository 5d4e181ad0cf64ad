#!/bin/sh
# tools/man-include.sh BTRM: prints the help2man include file for btrm(1):
# a COMMANDS section with every subcommand's --help text (the commands as
# `btrm --help` lists them), then FILES, ENVIRONMENT and SEE ALSO. Run at
# build time (Makefile.am), so the man page says what the binary says.
# Environment: PKGDATADIR (where make install puts configs/, slurm/,
# data-prep/), BASHCOMPDIR.
set -eu
btrm=$1
pkgdatadir=${PKGDATADIR:-/usr/local/share/btrm}
# roff: escape backslashes; a line that starts with . or ' is protected by \&
roff() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

echo "[COMMANDS]"
printf '%s\n' 'Each command prints this text with \fBbtrm\fR \fIcommand\fR \fB\-\-help\fR.'
"$btrm" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p' | while read -r cmd; do
    printf '.SS "btrm %s"\n.nf\n' "$cmd"
    "$btrm" "$cmd" --help | roff
    printf '.fi\n'
done
cat <<EOF
[FILES]
.TP
.I $pkgdatadir/configs/
example configs: the demo, the backbones, the RealBench and HH-RLHF experiments,
category maps (RealBench, RewardBench)
.TP
.I $pkgdatadir/slurm/
train.sbatch and sweep.sbatch (preemption-safe, requeue on exit 75); they run
the btrm installed next to them
.TP
.I $pkgdatadir/data-prep/
fetch.sh (the real data and models, checksummed), the seven converters,
build-realbench.sh
.TP
.I $pkgdatadir/tools/demo.sh
the demo: BT against NormBT on the real sets (synthetic ones without them)
[ENVIRONMENT]
.TP
.B OPENBLAS_NUM_THREADS
BLAS threads of each rank (run.threads sets it too)
.TP
.B BTRM_SHARED
the shared data and model folder of the tests, the demo and data-prep (filled by
data-prep/fetch.sh)
[SEE ALSO]
.BR mpirun (1),
.BR sbatch (1).
The documentation of the source tree (README.md and docs/): docs/config.md for
every config key, docs/format.md for the files, docs/serve.md, docs/export.md.
EOF
