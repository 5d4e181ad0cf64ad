#define _GNU_SOURCE /* fallocate, FALLOC_FL_KEEP_SIZE */
#include "fileutil.h"

#include "error.h"
#include "types.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libdeflate.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

int btrm_mkdir_p(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return btrm_error_set(BTRM_EIO, "directory name too long: %s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return btrm_error_set(BTRM_EIO, "cannot create directory %s: %s", path,
                                  strerror(errno));
        *p = '/';
    }
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return btrm_error_set(BTRM_EIO, "cannot create directory %s: %s", path,
                              strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return btrm_error_set(BTRM_EIO, "%s exists and is not a directory", path);
    return 0;
}

void btrm_tmp_path(const char *path, char *tmp, size_t size)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    snprintf(tmp, size, "%s/.%s.tmp.%ld", dirname(a), basename(b), (long)getpid());
}

int btrm_file_reserve(const char *path, uint64_t bytes)
{
    if (bytes == 0)
        return 0;
    if (bytes > (uint64_t)INT64_MAX)
        return btrm_error_set(BTRM_EIO, "%s: cannot reserve %llu bytes: %s", path,
                              (unsigned long long)bytes, strerror(EFBIG));
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return btrm_error_set(BTRM_EIO, "cannot open %s: %s", path, strerror(errno));
    int r, e = 0;
    do
        r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes);
    while (r != 0 && errno == EINTR);
    if (r != 0)
        e = errno;
    if (r != 0 && (e == EOPNOTSUPP || e == ENOSYS)) {
        /* no reservation here (some NFS, older Lustre): check the room at least */
        struct statvfs vfs;
        e = 0;
        if (fstatvfs(fd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < bytes)
            e = ENOSPC;
    }
    close(fd);
    if (e)
        return btrm_error_set(BTRM_EIO, "%s: cannot reserve %llu bytes: %s", path,
                              (unsigned long long)bytes, strerror(e));
    return 0;
}

/* Flushes a file's (or directory's) data to stable storage; for a regular
 * file, first gives back the reserved blocks past its end (btrm_file_reserve):
 * a truncation to its own size frees them. */
static int sync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        int w = open(path, O_WRONLY);
        if (w >= 0) {
            int t = ftruncate(w, st.st_size); /* on failure they stay reserved: no harm */
            (void)t;
            close(w);
        }
    }
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

int btrm_file_commit(const char *tmp, const char *path)
{
    int rc = 0;
    if (sync_path(tmp) != 0)
        rc = btrm_error_set(BTRM_EIO, "cannot flush %s: %s", tmp, strerror(errno));
    else if (rename(tmp, path) != 0)
        rc = btrm_error_set(BTRM_EIO, "cannot rename %s to %s: %s", tmp, path,
                            strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    /* Best effort: make the rename itself durable. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    sync_path(dirname(dir));
    return 0;
}

int btrm_write_atomic(const char *path, const void *bytes, size_t size)
{
    char tmp[4200];
    btrm_tmp_path(path, tmp, sizeof tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return btrm_error_set(BTRM_EIO, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = bytes;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return btrm_error_set(BTRM_EIO, "cannot write %s: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return btrm_error_set(BTRM_EIO, "cannot write %s: %s", tmp, strerror(e));
    }
    return btrm_file_commit(tmp, path);
}

int btrm_json_write_atomic(const char *path, const json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (!text)
        return btrm_error_set(BTRM_ENOMEM, "cannot serialise JSON for %s", path);
    size_t n = strlen(text);
    char *with_nl = realloc(text, n + 2);
    if (!with_nl) {
        free(text);
        return btrm_error_set(BTRM_ENOMEM, "out of memory writing %s", path);
    }
    with_nl[n] = '\n';
    with_nl[n + 1] = '\0';
    int rc = btrm_write_atomic(path, with_nl, n + 1);
    free(with_nl);
    return rc;
}

int btrm_jsonl_write(FILE *out, const json_t *obj, const char *what)
{
    if (!obj || json_dumpf(obj, out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) ||
        fputc('\n', out) == EOF)
        return btrm_error_set(BTRM_EIO, "cannot write %s", what);
    return 0;
}

int btrm_path_absolute(const char *path, char *out, size_t size)
{
    char cwd[BTRM_PATH_MAX];
    if (path[0] != '/' && !getcwd(cwd, sizeof cwd))
        return btrm_error_set(BTRM_EIO, "cannot name the current directory: %s", strerror(errno));
    return btrm_path_join(out, size, path[0] == '/' ? "" : cwd,
                          strncmp(path, "./", 2) ? path : path + 2);
}

int btrm_path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = name[0] == '/' || !dir[0] ? snprintf(out, size, "%s", name)
                                       : snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return btrm_error_set(BTRM_EIO, "path too long: %s/%s", dir, name);
    return 0;
}

char *btrm_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int btrm_read_file(const char *path, long max_bytes, const char *what, unsigned char **text,
                   size_t *len, struct stat *st_out)
{
    struct stat st = { 0 };
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return btrm_error_set(BTRM_ECONFIG, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0) {
        rc = btrm_error_set(BTRM_EIO, "cannot stat '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = btrm_error_set(BTRM_ECONFIG, "cannot read '%s': it is a directory", path);
        goto fail;
    }
    if (S_ISREG(st.st_mode) && st.st_size > max_bytes) {
        rc = btrm_error_set(BTRM_ECONFIG, "'%s' is larger than %ld MiB: not a %s",
                            path, max_bytes >> 20, what);
        goto fail;
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            unsigned char *grown = realloc(buf, cap + 1);
            if (!grown) {
                rc = btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", path);
                goto fail;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > (size_t)max_bytes) {
            rc = btrm_error_set(BTRM_ECONFIG, "'%s' is larger than %ld MiB: not a %s",
                                path, max_bytes >> 20, what);
            goto fail;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        rc = btrm_error_set(BTRM_EIO, "error reading '%s': %s", path, strerror(errno));
        goto fail;
    }
    buf[n] = '\0';
    if (st_out)
        *st_out = st;
    *text = buf;
    *len = n;
    buf = NULL;
fail:
    free(buf);
    fclose(f);
    return rc;
}

uint32_t btrm_crc32_update(uint32_t crc, const void *bytes, size_t size)
{
    /* libdeflate's crc32 is zlib's (same polynomial, same pre- and
     * post-conditioning) at 2-3 times the speed: it folds with PCLMULQDQ,
     * which Debian 12's zlib 1.2.13 does not (docs/performance.md) */
    return libdeflate_crc32(crc, bytes, size);
}

int btrm_file_xxh128(const char *path, char hex[33])
{
    hex[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return btrm_error_set(BTRM_EIO, "cannot open %s: %s", path, strerror(errno));
    XXH3_state_t *st = XXH3_createState();
    int rc = st && XXH3_128bits_reset(st) == XXH_OK
                 ? 0
                 : btrm_error_set(BTRM_ENOMEM, "out of memory hashing %s", path);
    static _Thread_local char block[1 << 16];
    size_t got;
    while (!rc && (got = fread(block, 1, sizeof block, f)) > 0)
        if (XXH3_128bits_update(st, block, got) != XXH_OK)
            rc = btrm_error_set(BTRM_EIO, "cannot hash %s", path);
    if (!rc && ferror(f))
        rc = btrm_error_set(BTRM_EIO, "cannot read %s", path);
    if (!rc) {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", c.digest[i]);
    }
    XXH3_freeState(st);
    fclose(f);
    return rc;
}
