#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static int log_rank;
static int log_level = BTRM_LOG_INFO;
static int progress_open;

void btrm_log_init(int rank, int level)
{
    log_rank = rank;
    log_level = level;
}

int btrm_log_level(void) { return log_level; }
int btrm_log_rank(void) { return log_rank; }
int btrm_log_is_tty(void) { return isatty(STDERR_FILENO); }

static void vlog(int level, int all, const char *tag, const char *fmt, va_list ap)
{
    if (level > log_level || (!all && log_rank != 0))
        return;
    if (progress_open)
        btrm_log_progress_end();
    if (all)
        fprintf(stderr, "btrm[rank %d]: %s", log_rank, tag);
    else
        fprintf(stderr, "btrm: %s", tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

#define DEFINE_LOG(fn, level, all, tag)                                          \
    void fn(const char *fmt, ...)                                                \
    {                                                                            \
        va_list ap;                                                              \
        va_start(ap, fmt);                                                       \
        vlog(level, all, tag, fmt, ap);                                          \
        va_end(ap);                                                              \
    }
/* Errors print whatever the level: a failure must never be silent. */
DEFINE_LOG(btrm_log_error, BTRM_LOG_QUIET, 0, "error: ")
DEFINE_LOG(btrm_log_warn, BTRM_LOG_WARN, 0, "warning: ")
DEFINE_LOG(btrm_log_info, BTRM_LOG_INFO, 0, "")
DEFINE_LOG(btrm_log_debug, BTRM_LOG_DEBUG, 0, "debug: ")
DEFINE_LOG(btrm_log_all, BTRM_LOG_QUIET, 1, "")

void btrm_log_progress(const char *fmt, ...)
{
    if (log_rank != 0 || log_level < BTRM_LOG_INFO)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (btrm_log_is_tty()) {
        fputs("\r\033[K", stderr);
        vfprintf(stderr, fmt, ap);
        progress_open = 1;
    } else {
        fputs("btrm: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
    fflush(stderr);
}

void btrm_log_progress_end(void)
{
    if (progress_open) {
        fputc('\n', stderr);
        progress_open = 0;
    }
}
