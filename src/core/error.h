/* error.h: return codes and the last error message of this process.
 *
 * Every fallible function returns 0 or a negative BTRM_E* code and records a
 * message with btrm_error_set(). The message says where (file, dataset, row,
 * config key) and what was expected. Orchestrators agree on the worst code
 * across ranks (btrm_comm_agree) and rank 0 prints it. */
#ifndef BTRM_ERROR_H
#define BTRM_ERROR_H

#include <stddef.h>
#include <stdio.h>

enum {
    BTRM_OK = 0,
    BTRM_EIO = -1,      /* runtime failure: file, HDF5, MPI, numerics */
    BTRM_ENOMEM = -2,   /* allocation failed */
    BTRM_EDATA = -3,    /* invalid input data (pair store, model file) */
    BTRM_EMPI = -4,     /* an MPI call failed */
    BTRM_ECONFIG = -5,  /* bad config file or --set override */
    BTRM_EUSAGE = -6,   /* bad command line */
    BTRM_EPREEMPT = -7, /* stopped by a signal after checkpointing */
};

/* Process exit codes (documented in README.md and docs/). */
enum {
    BTRM_EXIT_OK = 0,
    BTRM_EXIT_FAILURE = 1,
    BTRM_EXIT_USAGE = 2,   /* usage or config error */
    BTRM_EXIT_REQUEUE = 75 /* EX_TEMPFAIL: checkpointed, please requeue */
};

#define BTRM_ERROR_MAX 2048

/* Records code and message (printf format); returns code, so that
 * `return btrm_error_set(BTRM_EDATA, "...")` reads naturally. */
int btrm_error_set(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes the current message ("context: message"), keeping the code. */
int btrm_error_wrap(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *btrm_error_msg(void);
int btrm_error_code(void);
void btrm_error_clear(void);
/* Maps a return code to the process exit code. */
int btrm_error_exit_code(int code);
const char *btrm_error_name(int code);

/* Memory helpers that record BTRM_ENOMEM with the caller's location. */
#define BTRM_MALLOC(ptr, count)                                                  \
    btrm_alloc_checked((void **)&(ptr), (size_t)(count), sizeof(*(ptr)), 0,       \
                       __FILE__, __LINE__)
#define BTRM_CALLOC(ptr, count)                                                  \
    btrm_alloc_checked((void **)&(ptr), (size_t)(count), sizeof(*(ptr)), 1,       \
                       __FILE__, __LINE__)
int btrm_alloc_checked(void **ptr, size_t count, size_t size, int zero,
                       const char *file, int line);

/* free() of each pointer given (NULL ones are fine): the end of a _free or
 * cleanup path, BTRM_FREE(ws->x, ws->y, buf). */
#define BTRM_FREE(...)                                                           \
    btrm_free_each((void *[]){ __VA_ARGS__ },                                    \
                   sizeof((void *[]){ __VA_ARGS__ }) / sizeof(void *))
void btrm_free_each(void *const *ptrs, size_t n);

#endif
