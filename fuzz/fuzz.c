/* fuzz.c: the helpers of fuzz.h. */
#define _GNU_SOURCE /* memfd_create, nftw */
#include "fuzz.h"

#include "comm.h"
#include "h5util.h"
#include "log.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_LSAN 1
#endif
#endif
#ifdef FUZZ_LSAN
#include <sanitizer/lsan_interface.h>
#endif

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: property broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

const char *fuzz_file_set(fuzz_file *f, const char *name, const void *data, size_t size)
{
    if (f->path[0] == '\0') {
        f->fd = memfd_create(name, 0);
        if (f->fd < 0)
            fuzz_fail("memfd_create(%s) failed", name);
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    }
    if (ftruncate(f->fd, 0) != 0)
        fuzz_fail("ftruncate(%s) failed", f->path);
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(f->fd, (const char *)data + done, size - done, (off_t)done);
        if (n <= 0)
            fuzz_fail("writing %s failed", f->path);
        done += (size_t)n;
    }
    return f->path;
}

int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max)
{
    const size_t sep = strlen(FUZZ_SEP);
    int n = 0;
    const uint8_t *at = data, *end = data + size;
    while (n < max - 1) {
        const uint8_t *hit = size >= sep ? memmem(at, (size_t)(end - at), FUZZ_SEP, sep) : NULL;
        if (!hit)
            break;
        part[n] = at;
        len[n++] = (size_t)(hit - at);
        at = hit + sep;
    }
    part[n] = at;
    len[n++] = (size_t)(end - at);
    for (int i = n; i < max; i++) {
        part[i] = end;
        len[i] = 0;
    }
    return n;
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        fuzz_fail("out of memory");
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static char tmp_dir[256];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_tmp_dir(void)
{
    if (tmp_dir[0])
        nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_tmp_dir(void)
{
    if (!tmp_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp_dir, sizeof tmp_dir, "%s/btrm-fuzz.XXXXXX", base && base[0] ? base : "/tmp");
        if (!mkdtemp(tmp_dir))
            fuzz_fail("mkdtemp(%s) failed", tmp_dir);
        atexit(remove_tmp_dir);
    }
    return tmp_dir;
}

void fuzz_tmp_file(char *path, size_t cap, const char *name, const void *data, size_t size)
{
    if ((size_t)snprintf(path, cap, "%s/%s", fuzz_tmp_dir(), name) >= cap)
        fuzz_fail("path too long for %s", name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        fuzz_fail("cannot write %s", path);
}

void fuzz_quiet(void)
{
    btrm_log_init(0, BTRM_LOG_QUIET);
    btrm_h5_quiet();
}

static btrm_comm self_comm;
static int have_self_comm;

static void finalize_mpi(void)
{
#ifdef FUZZ_LSAN
    __lsan_disable(); /* what MPI_Finalize leaves is Open MPI's (as at start-up) */
#endif
    btrm_comm_free(&self_comm);
    MPI_Finalize();
}

const btrm_comm *fuzz_comm_self(void)
{
    if (!have_self_comm) {
        /* Open MPI keeps what it allocates at start-up for the whole process
         * (and its frames cannot be unwound for suppressions): not ours to
         * report. Leaks during the runs are still found. */
#ifdef FUZZ_LSAN
        __lsan_disable();
#endif
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS ||
            btrm_comm_init(&self_comm, MPI_COMM_SELF) != 0)
            fuzz_fail("cannot start MPI on MPI_COMM_SELF");
#ifdef FUZZ_LSAN
        __lsan_enable();
#endif
        have_self_comm = 1;
        atexit(finalize_mpi);
    }
    return &self_comm;
}
