#!/bin/bash
# fuzz/triage.sh [HARNESS...]: replays every input of fuzz/findings/<name>/
# (the build directory's) through the libFuzzer build of its harness and
# prints one line per input: the kind of report and the first frame that is
# neither the sanitizers', libFuzzer's nor libc's, marked "btrm" when it is
# in btrm's sources (a finding to fix, then to keep in fuzz/regress/<name>/)
# or "upstream" when it is in a library (libhdf5, libyaml, ...: recorded in
# docs/reliability.md with its input under fuzz/upstream/<name>/).
# Run from the build directory after make fuzz.
set -u
cd "$(dirname "$0")/.." 2>/dev/null || true
[ -d fuzz/findings ] || { echo "triage: no fuzz/findings here (run make fuzz first)" >&2; exit 2; }
harnesses=${*:-$(ls fuzz/findings)}
for h in $harnesses; do
    limit=  # the HDF5 harnesses: malloc NULL above 2 GiB (fuzz.mk's FUZZ_FORK_ARGS)
    case $h in pairs|modelfile|ckpt) limit=-malloc_limit_mb=1000000 ;; esac
    for f in fuzz/findings/$h/*; do
        [ -f "$f" ] || continue
        report=$(ASAN_OPTIONS=detect_leaks=1:detect_odr_violation=0 \
                 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 \
                 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
                 timeout 60 "fuzz/bin/fuzz-$h" -rss_limit_mb=2048 $limit -timeout=25 "$f" 2>&1 </dev/null)
        rc=$?
        kind=$(printf '%s\n' "$report" | grep -aoE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [A-Za-z-]+( [a-z-]+)?|runtime error: .*|property broken: .*' | head -n1)
        [ -n "$kind" ] || kind=$([ $rc -eq 0 ] && echo "no longer fails" || echo "exit $rc")
        frame=$(printf '%s\n' "$report" | grep -aE '^    #[0-9]+ ' |
                grep -avE 'sanitizer|asan_|lsan_|ubsan|fuzzer::|libFuzzer|__interceptor|libc\.so|malloc|calloc|realloc|strdup|memcpy|fuzz/fuzz|in main |_start' |
                head -n1 | sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+ (in )?//; s/ \(BuildId.*//')
        where=upstream
        case $frame in *src/*|*btrm_*) where=btrm ;; esac
        printf '%s %s: %s | %s | %s\n' "$h" "$(basename "$f")" "$where" "$kind" "$frame"
    done
done
