# fuzz/fuzz.mk: the libFuzzer builds and campaigns of fuzz/fuzz-*.c
# (docs/reliability.md). GNU make. The top Makefile runs it from the build
# directory (`make fuzz`, `make fuzz-merge`) and passes srcdir, FUZZ_CC and
# the libraries' flags. Every source of the layers below cli is compiled here
# a second time with clang, libFuzzer's coverage instrumentation and
# ASan+UBSan; MPI is linked but never initialised.
#
#   make fuzz [FUZZ_SECONDS=60 | FUZZ_RUNS=N] [FUZZ_HARNESSES="config gguf"] [FUZZ_ARGS=...]
#     runs each harness for FUZZ_SECONDS (or FUZZ_RUNS executions) on a working copy of its corpus
#     (fuzz/work/<name>/, seeded from $(srcdir)/fuzz/corpus/<name>/), with its
#     dictionary, one process on one core, and prints libFuzzer's
#     "Done N runs in S second(s)" line per harness. An input that crashes,
#     leaks, hangs (FUZZ_TIMEOUT s; FUZZ_FORK_TIMEOUT for the HDF5 harnesses)
#     or exceeds FUZZ_RSS_MB is written to
#     fuzz/findings/<name>/ and fails the target.
#   make fuzz-merge
#     folds the inputs of fuzz/work/<name>/ that add coverage into
#     $(srcdir)/fuzz/corpus/<name>/ (libFuzzer -merge=1), which make check
#     replays.

FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 25
FUZZ_RSS_MB ?= 2048
FUZZ_ARGS ?=
FUZZ_RUNS ?=
# oneDNN's GEMM layer calls the OpenMP runtime (omp_set_num_threads); clang
# compiles the layers without -fopenmp, so link GCC's runtime, which
# Debian's oneDNN uses, when the project was configured with OpenMP
FUZZ_OPENMP_LIBS = $(if $(FUZZ_OPENMP),-lgomp)
# The HDF5 harnesses run in fork mode: libhdf5 1.10 itself crashes, hangs or
# allocates what a crafted file claims (upstream findings, kept in
# fuzz/findings/<name>/ and sorted by fuzz/triage.sh); fork mode keeps
# fuzzing past them. Fork mode ignores -runs: use FUZZ_SECONDS there.
FUZZ_FORK_HARNESSES = pairs modelfile ckpt
# Their timeout: libhdf5 hangs on some crafted files, and each hang costs the
# whole timeout (a 10-minute `ckpt` campaign spent 14 x 25 s in them); a
# store, model file or checkpoint the harnesses accept takes milliseconds.
FUZZ_FORK_TIMEOUT ?= 5
# A fork-mode job that used no CPU for FUZZ_STALL seconds is killed by
# fuzz/watchdog.sh: libFuzzer's timeout handler can deadlock in ASan's
# malloc, and the campaign would then wait for that job forever.
FUZZ_STALL ?= 45
# -malloc_limit_mb: malloc returns NULL above 2 GiB there, as in production
# (FUZZ_HDF5_ALLOCATOR in fuzz/fuzz.h), instead of libFuzzer calling it an OOM.
FUZZ_FORK_ARGS = -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -malloc_limit_mb=1000000
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS))
ALL_HARNESSES := $(patsubst $(srcdir)/fuzz/fuzz-%.c,%,$(wildcard $(srcdir)/fuzz/fuzz-*.c))
FUZZ_HARNESSES ?= $(ALL_HARNESSES)

# ASan's quarantine at 32 MB instead of 256: with the default every allocation
# got fresh pages and the harnesses ran page-fault bound (half the time in the
# kernel); a use after free within the last 32 MB of frees is still caught.
# Scratch files on /dev/shm when there is one.
FUZZ_ASAN_OPTIONS = detect_leaks=1:detect_odr_violation=0:quarantine_size_mb=32
# Open MPI's own allocations (the pairs and ckpt harnesses run on a singleton
# MPI) are suppressed as in make check; btrm's leaks are still reported.
FUZZ_LSAN_OPTIONS = suppressions=$(abspath $(srcdir))/tests/lsan.supp:print_suppressions=0
# MPI as root (containers, CI), without the single-copy mechanism
export OMPI_ALLOW_RUN_AS_ROOT = 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = 1
export OMPI_MCA_btl_vader_single_copy_mechanism = none
FUZZ_TMPDIR := $(if $(wildcard /dev/shm/.),/dev/shm,$(or $(TMPDIR),/tmp))

FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LAYERS = core math comm io model run
FUZZ_CFLAGS = -std=c11 -g -O1 $(FUZZ_SAN) $(FUZZ_DEFS) -D_POSIX_C_SOURCE=200809L \
	$(addprefix -I$(srcdir)/src/,$(LAYERS)) $(FUZZ_MPI_CFLAGS) $(FUZZ_LIB_CFLAGS)

SRCS := $(foreach l,$(LAYERS),$(wildcard $(srcdir)/src/$(l)/*.c))
OBJS := $(patsubst $(srcdir)/src/%.c,fuzz/build/%.o,$(SRCS))
BINS := $(addprefix fuzz/bin/fuzz-,$(FUZZ_HARNESSES))

all: $(BINS)

fuzz/build/%.o: $(srcdir)/src/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

-include $(OBJS:.o=.d)

fuzz/build/fuzz.o: $(srcdir)/fuzz/fuzz.c $(srcdir)/fuzz/fuzz.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I$(srcdir)/fuzz -fsanitize=fuzzer-no-link -c -o $@ $<

fuzz/build/libbtrm-fuzz.a: $(OBJS)
	rm -f $@
	ar rcs $@ $(OBJS)

fuzz/bin/fuzz-%: $(srcdir)/fuzz/fuzz-%.c $(srcdir)/fuzz/fuzz.h fuzz/build/fuzz.o fuzz/build/libbtrm-fuzz.a
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I$(srcdir)/fuzz -fsanitize=fuzzer -o $@ $< fuzz/build/fuzz.o \
	    fuzz/build/libbtrm-fuzz.a $(FUZZ_LIBS) $(FUZZ_MPI_LIBS) $(FUZZ_OPENMP_LIBS)

# One campaign per harness, one after the other; the summary at the end: the
# executions (libFuzzer's "Done N runs" line, or the last status line in fork
# mode) and the findings.
run: $(BINS)
	@status=0; rm -f fuzz/summary.txt; \
	for h in $(FUZZ_HARNESSES); do \
	    mkdir -p fuzz/work/$$h fuzz/findings/$$h; \
	    if [ -d $(srcdir)/fuzz/corpus/$$h ]; then cp -n $(srcdir)/fuzz/corpus/$$h/* fuzz/work/$$h/ 2>/dev/null; fi; \
	    dict=; [ -f $(srcdir)/fuzz/dict/$$h.dict ] && dict=-dict=$(srcdir)/fuzz/dict/$$h.dict; \
	    limit='$(FUZZ_LIMIT)' fork= timeout=$(FUZZ_TIMEOUT); \
	    case " $(FUZZ_FORK_HARNESSES) " in *" $$h "*) limit=-max_total_time=$(FUZZ_SECONDS) fork='$(FUZZ_FORK_ARGS)' timeout=$(FUZZ_FORK_TIMEOUT);; esac; \
	    before=$$(ls fuzz/findings/$$h | wc -l); \
	    echo "fuzz: $$h, $$limit $$fork (log fuzz/$$h.log)"; \
	    ASAN_OPTIONS=$(FUZZ_ASAN_OPTIONS) LSAN_OPTIONS=$(FUZZ_LSAN_OPTIONS) TMPDIR=$(FUZZ_TMPDIR) \
	    fuzz/bin/fuzz-$$h $$limit $$fork -timeout=$$timeout \
	        -rss_limit_mb=$(FUZZ_RSS_MB) -print_final_stats=1 $$dict \
	        -artifact_prefix=fuzz/findings/$$h/ $(FUZZ_ARGS) fuzz/work/$$h </dev/null >fuzz/$$h.log 2>&1 & \
	    pid=$$!; rm -f fuzz/$$h-watchdog.log; \
	    if [ -n "$$fork" ]; then $(srcdir)/fuzz/watchdog.sh $$pid $(FUZZ_STALL) fuzz/$$h-watchdog.log & fi; \
	    wait $$pid; rc=$$?; \
	    [ -s fuzz/$$h-watchdog.log ] && echo "$$h: $$(wc -l < fuzz/$$h-watchdog.log) job(s) killed by fuzz/watchdog.sh (fuzz/$$h-watchdog.log)"; \
	    new=$$(( $$(ls fuzz/findings/$$h | wc -l) - before )); \
	    done_line=$$(grep -a '^Done [0-9]* runs' fuzz/$$h.log | tail -n 1); \
	    [ -n "$$done_line" ] || done_line=$$(grep -a '^#[0-9]*: cov' fuzz/$$h.log | tail -n 1 | \
	        sed 's/^#\([0-9]*\):.* time: \([0-9]*\)s.*/Done \1 runs in \2 second(s) (fork mode)/'); \
	    if [ $$rc -ne 0 ] || [ -z "$$done_line" ] || [ $$new -gt 0 ]; then \
	        status=1; done_line="$${done_line:-no runs}; exit $$rc, $$new new finding(s) in fuzz/findings/$$h (fuzz/triage.sh), log fuzz/$$h.log"; \
	    fi; \
	    echo "$$h: $$done_line" | tee -a fuzz/summary.txt; \
	done; \
	echo "fuzz: summary in fuzz/summary.txt"; exit $$status

merge: $(BINS)
	@for h in $(FUZZ_HARNESSES); do \
	    mkdir -p $(srcdir)/fuzz/corpus/$$h fuzz/work/$$h; \
	    ASAN_OPTIONS=$(FUZZ_ASAN_OPTIONS) LSAN_OPTIONS=$(FUZZ_LSAN_OPTIONS) TMPDIR=$(FUZZ_TMPDIR) \
	    fuzz/bin/fuzz-$$h -merge=1 -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) \
	        $(srcdir)/fuzz/corpus/$$h fuzz/work/$$h </dev/null >fuzz/$$h-merge.log 2>&1 \
	        || { echo "fuzz-merge: $$h failed, see fuzz/$$h-merge.log"; exit 1; }; \
	    echo "$$h: $$(ls $(srcdir)/fuzz/corpus/$$h | wc -l) inputs in $(srcdir)/fuzz/corpus/$$h"; \
	done

.PHONY: all run merge
