/* error.c: the last error of this thread (one message per thread: `btrm
 * serve`'s I/O threads and its compute engine each keep their own). */
#include "error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local int last_code;
static _Thread_local char last_msg[BTRM_ERROR_MAX];

int btrm_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    last_code = code;
    return code;
}

int btrm_error_wrap(int code, const char *fmt, ...)
{
    char joined[2 * BTRM_ERROR_MAX + 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(joined, BTRM_ERROR_MAX, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n >= BTRM_ERROR_MAX)
        n = BTRM_ERROR_MAX - 1;
    if (last_msg[0]) {
        memcpy(joined + n, ": ", 2);
        memcpy(joined + n + 2, last_msg, strlen(last_msg) + 1);
    }
    /* keep what fits: the context first, then as much of the cause as fits */
    memcpy(last_msg, joined, BTRM_ERROR_MAX - 1);
    last_msg[BTRM_ERROR_MAX - 1] = '\0';
    last_code = code;
    return code;
}

const char *btrm_error_msg(void) { return last_msg[0] ? last_msg : "no error"; }
int btrm_error_code(void) { return last_code; }

void btrm_error_clear(void)
{
    last_code = 0;
    last_msg[0] = '\0';
}

int btrm_error_exit_code(int code)
{
    switch (code) {
    case BTRM_OK: return BTRM_EXIT_OK;
    case BTRM_ECONFIG:
    case BTRM_EUSAGE: return BTRM_EXIT_USAGE;
    case BTRM_EPREEMPT: return BTRM_EXIT_REQUEUE;
    default: return BTRM_EXIT_FAILURE;
    }
}

const char *btrm_error_name(int code)
{
    switch (code) {
    case BTRM_OK: return "ok";
    case BTRM_EIO: return "runtime error";
    case BTRM_ENOMEM: return "out of memory";
    case BTRM_EDATA: return "data error";
    case BTRM_EMPI: return "MPI error";
    case BTRM_ECONFIG: return "config error";
    case BTRM_EUSAGE: return "usage error";
    case BTRM_EPREEMPT: return "preempted";
    default: return "error";
    }
}

int btrm_alloc_checked(void **ptr, size_t count, size_t size, int zero,
                       const char *file, int line)
{
    *ptr = NULL;
    if (count == 0)
        count = 1;
    if (count > SIZE_MAX / size)
        return btrm_error_set(BTRM_ENOMEM, "%s:%d: allocation of %zu x %zu bytes overflows",
                              file, line, count, size);
    *ptr = zero ? calloc(count, size) : malloc(count * size);
    if (!*ptr)
        return btrm_error_set(BTRM_ENOMEM, "%s:%d: out of memory allocating %zu bytes",
                              file, line, count * size);
    return 0;
}

void btrm_free_each(void *const *ptrs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ptrs[i]);
}
