#!/usr/bin/env bash
# bench/ckpt-bench.sh: checkpoint write/read bandwidth (bench/ckpt-bench, a
# ~98 M-parameter AdamW state = 3 x 393 MB) on 1 and 2 ranks, next to dd
# writing (conv=fsync) and reading (page cache dropped first; and with
# O_DIRECT, as btrm reads) a file of the same size in the same directory.
# Each repetition runs dd, then ckpt-bench on every rank count, so that all
# see the same disk conditions; the table gives the best and the median
# repetition, and the median over repetitions of btrm / dd in that
# repetition (the disk of a VM varies 2x from one minute to the next: a
# ratio taken side by side is steadier). Prints what it runs and the raw
# outputs on stderr, the markdown table on stdout.
#
# Environment: DIR (directory on the disk to measure; default TMPDIR or /tmp),
# RANKS ("1 2"), REPEAT (3), DIM (4096), HIDDEN (24000), BTRM_MPIRUN
# (default tests/mpirun.sh). Needs about 1.3 GB free on DIR and ~3 GB of memory
# on 2 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-${TMPDIR:-/tmp}}
RANKS=${RANKS:-1 2}
REPEAT=${REPEAT:-3}
DIM=${DIM:-4096}
HIDDEN=${HIDDEN:-24000}
BTRM_MPIRUN=${BTRM_MPIRUN:-$PWD/tests/mpirun.sh}
[ -x bench/ckpt-bench ] || make -C bench ckpt-bench >&2
res=$(mktemp "${TMPDIR:-/tmp}/ckpt-bench.XXXXXX")
trap 'rm -f "$res" "$res.out" "$DIR/ckpt-bench-dd.bin"' EXIT

echo "# ckpt-bench.sh: $(date -u +%Y-%m-%dT%H:%MZ), $DIR on $(df -T "$DIR" | awk 'NR == 2 { print $1, $2 }'), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# the checkpoint's size in MiB (params + 2 moments, float32) for dd
params=$(( DIM * HIDDEN + HIDDEN + HIDDEN + 1 ))
mib=$(( (3 * params * 4 + 1048575) / 1048576 ))

for rep in $(seq 1 "$REPEAT"); do
    echo "+ dd if=/dev/zero of=$DIR/ckpt-bench-dd.bin bs=1M count=$mib conv=fsync" >&2
    w=$(dd if=/dev/zero of="$DIR/ckpt-bench-dd.bin" bs=1M count="$mib" conv=fsync 2>&1 |
        awk '/copied/ { print $1 / $(NF-3) / 1e6 }')
    # drop this file's pages from the page cache, then read it
    dd if="$DIR/ckpt-bench-dd.bin" iflag=nocache count=0 status=none
    echo "+ dd if=$DIR/ckpt-bench-dd.bin of=/dev/null bs=1M" >&2
    r=$(dd if="$DIR/ckpt-bench-dd.bin" of=/dev/null bs=1M 2>&1 |
        awk '/copied/ { print $1 / $(NF-3) / 1e6 }')
    # the same bytes read with O_DIRECT, as btrm reads (the host of a VM may
    # serve the buffered read above from its own cache)
    echo "+ dd if=$DIR/ckpt-bench-dd.bin of=/dev/null bs=8M iflag=direct" >&2
    rd=$(dd if="$DIR/ckpt-bench-dd.bin" of=/dev/null bs=8M iflag=direct 2>&1 |
        awk '/copied/ { print $1 / $(NF-3) / 1e6 }')
    rm -f "$DIR/ckpt-bench-dd.bin"
    echo "# rep $rep dd: write $w MB/s, read (cold) $r MB/s, read O_DIRECT $rd MB/s" >&2
    echo "dd 1 $(awk "BEGIN { print $mib * 1.048576 }") $w $r - $rd" >>"$res"
    for np in $RANKS; do
        echo "+ $BTRM_MPIRUN $np bench/ckpt-bench --dir $DIR --dim $DIM --hidden $HIDDEN --repeat 1" >&2
        "$BTRM_MPIRUN" "$np" bench/ckpt-bench --dir "$DIR" --dim "$DIM" --hidden "$HIDDEN" \
            --repeat 1 >"$res.out"
        cat "$res.out" >&2
        awk -v np="$np" '!/^#/ && $1 ~ /^[0-9]+$/ { print "btrm", np, $2, $4, $6, $8 }' \
            "$res.out" >>"$res"
    done
done

echo "| what | ranks | size MB | write MB/s best (median) | read MB/s, cold, best (median) | read MB/s, page cache, best (median) | write, read cold, read cold O_DIRECT: % of dd (median of the repetitions' ratios) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for key in "dd 1" $(for np in $RANKS; do echo "btrm_$np"; done); do
    what=${key%% *}; np=${key##* }
    [ "$what" = dd ] || { np=${key#btrm_}; what=btrm; }
    awk -v what="$what" -v np="$np" '
        function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                                            if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                                        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        function best(a, n,   i, b) { b = a[1]; for (i = 2; i <= n; i++) if (a[i] > b) b = a[i]; return b }
        $1 == "dd" { d++; dw[d] = $4; dr[d] = $5; dd[d] = $7 }
        $1 == what && $2 == np { n++; mb = $3; w[n] = $4; c[n] = $5; h[n] = $6; o[n] = $7
                                 rw[n] = 100 * $4 / dw[d]; rc[n] = 100 * $5 / dr[d]
                                 rd[n] = 100 * $5 / dd[d] }
        END {
            label = what == "dd" ? "dd bs=1M (write conv=fsync)" : "btrm_ckpt_write / btrm_ckpt_read"
            hot = what == "dd" ? "-" : sprintf("%.0f (%.0f)", best(h, n), med(h, n))
            ratio = what == "dd" ? sprintf("O_DIRECT read (bs=8M): %.0f (%.0f) MB/s", best(o, n), med(o, n)) \
                                 : sprintf("%.0f%%, %.0f%%, %.0f%%", med(rw, n), med(rc, n), med(rd, n))
            printf "| %s | %s | %.0f | %.0f (%.0f) | %.0f (%.0f) | %s | %s |\n", label, np, mb,
                   best(w, n), med(w, n), best(c, n), med(c, n), hot, ratio }' "$res"
done
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
