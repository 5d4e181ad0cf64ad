/* fuzz.h: what the fuzz harnesses share (docs/reliability.md).
 *
 * Each harness fuzz/fuzz-<name>.c defines LLVMFuzzerTestOneInput (and may
 * define LLVMFuzzerInitialize) and calls btrm's public functions on the
 * bytes it is given. The same source builds two ways:
 *  - with clang -fsanitize=fuzzer,address,undefined for `make fuzz`
 *    (fuzz/fuzz.mk), where libFuzzer supplies main();
 *  - with the project's compiler and fuzz/replay.c's main() for `make check`,
 *    which replays the seed corpus and every input that ever crashed.
 * The parsers are serial and run without MPI; the collective HDF5 readers
 * (pair stores, checkpoints) run on MPI_COMM_SELF of a singleton MPI
 * (fuzz_comm_self), through the same MPI-IO path as a job's ranks. A harness frees
 * everything it allocates (LeakSanitizer stays on), and aborts when btrm
 * breaks one of its own documented properties, so that the property becomes
 * a finding. */
#ifndef BTRM_FUZZ_H
#define BTRM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A file in memory (memfd_create): btrm's path-based readers open it as
 * "/proc/self/fd/N", so no disk is touched. One per role, reused across runs. */
typedef struct fuzz_file {
    int fd;
    char path[64];
} fuzz_file;
/* Replaces the file's content with data[0..size). Aborts on failure. */
const char *fuzz_file_set(fuzz_file *f, const char *name, const void *data, size_t size);

/* Writes data[0..size) to <fuzz_tmp_dir()>/name, for readers that resolve
 * paths relative to the file (config base: chains, sweep files); path gets
 * the file's path. Aborts on failure. */
void fuzz_tmp_file(char *path, size_t cap, const char *name, const void *data, size_t size);

/* Splits data at each FUZZ_SEP into at most max parts (the last part keeps
 * any further separators); returns the number of parts (>= 1). */
#define FUZZ_SEP "\n@@@\n"
int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max);

/* A NUL-terminated malloc'ed copy (aborts when out of memory). */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* A private scratch directory (created on first use, removed at exit). */
const char *fuzz_tmp_dir(void);

/* Fails the run loudly: a broken property is a finding. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A btrm_comm over MPI_COMM_SELF, for the readers that take a communicator
 * (pair stores, checkpoints): MPI is initialised once, as a singleton (no
 * launcher), on the first call, and finalised at exit. */
struct btrm_comm;
const struct btrm_comm *fuzz_comm_self(void);

/* For the HDF5 harnesses: a crafted file makes libhdf5 ask malloc for what
 * its headers claim (H5C_protect: terabytes). In production malloc returns
 * NULL and libhdf5 fails cleanly; under ASan the request aborted the run as
 * a finding that is none. This gives ASan malloc's production behaviour
 * (NULL, above 2 GiB) in every build of the harness (libFuzzer, triage,
 * replay); btrm's own allocations are checked the same way (BTRM_MALLOC). */
#define FUZZ_HDF5_ALLOCATOR                                                   \
    const char *__asan_default_options(void);                                \
    const char *__asan_default_options(void)                                 \
    {                                                                         \
        return "allocator_may_return_null=1:max_allocation_size_mb=2048";     \
    }

/* Silences btrm's log and HDF5's error stack printing. */
void fuzz_quiet(void);

#endif
