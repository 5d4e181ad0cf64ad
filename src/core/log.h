/* log.h: human-readable logging to stderr. btrm_log_info/warn/debug print on
 * rank 0 only; btrm_log_all prints on every rank with a "rank N" prefix.
 * Machine-readable output goes to files (JSONL), never through here. */
#ifndef BTRM_LOG_H
#define BTRM_LOG_H

enum { BTRM_LOG_QUIET = 0, BTRM_LOG_WARN = 1, BTRM_LOG_INFO = 2, BTRM_LOG_DEBUG = 3 };

void btrm_log_init(int rank, int level);
int btrm_log_level(void);
int btrm_log_rank(void);
void btrm_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void btrm_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void btrm_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void btrm_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void btrm_log_all(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A progress line: redrawn in place on a terminal (rank 0's stderr is a tty),
 * printed as a plain line otherwise. btrm_log_progress_end() finishes it. */
void btrm_log_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void btrm_log_progress_end(void);
int btrm_log_is_tty(void);

#endif
