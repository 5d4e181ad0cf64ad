/* tap.h: a tiny TAP producer for btrm's unit tests (Automake's tap-driver.sh
 * reads it). Header-only; every assertion names what it checks.
 *   plan(n); ok(cond, "what"); is_int(got, want, "what");
 *   is_double_rel(got, want, tol, "what"); is_string(got, want, "what");
 *   skip(n, "why"); skip_all("why"); diag("fmt", ...); return done_testing(); */
#ifndef BTRM_TAP_H
#define BTRM_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count_, tap_failed_, tap_planned_ = -1;

static inline void plan(int n)
{
    tap_planned_ = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static inline void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

static inline int tap_result_(int pass, const char *fmt, va_list ap)
{
    tap_count_++;
    if (!pass)
        tap_failed_++;
    printf("%s %d - ", pass ? "ok" : "not ok", tap_count_);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    return pass;
}

static inline int ok(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = tap_result_(pass, fmt, ap);
    va_end(ap);
    return r;
}

static inline int is_int(long long got, long long want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = tap_result_(got == want, fmt, ap);
    va_end(ap);
    if (!r)
        diag("got %lld, want %lld", got, want);
    return r;
}

/* |got - want| <= tol * max(|want|, tiny); tol is relative. */
static inline int is_double_rel(double got, double want, double tol, const char *fmt, ...)
{
    double scale = fabs(want) > 1e-300 ? fabs(want) : 1e-300;
    int pass = isfinite(got) && fabs(got - want) <= tol * scale;
    va_list ap;
    va_start(ap, fmt);
    int r = tap_result_(pass, fmt, ap);
    va_end(ap);
    if (!r)
        diag("got %.17g, want %.17g (relative error %.3g, tolerance %.3g)", got, want,
             fabs(got - want) / scale, tol);
    return r;
}

static inline int is_double_abs(double got, double want, double tol, const char *fmt, ...)
{
    int pass = isfinite(got) && fabs(got - want) <= tol;
    va_list ap;
    va_start(ap, fmt);
    int r = tap_result_(pass, fmt, ap);
    va_end(ap);
    if (!r)
        diag("got %.17g, want %.17g (absolute error %.3g, tolerance %.3g)", got, want,
             fabs(got - want), tol);
    return r;
}

static inline int is_string(const char *got, const char *want, const char *fmt, ...)
{
    int pass = got && want && strcmp(got, want) == 0;
    va_list ap;
    va_start(ap, fmt);
    int r = tap_result_(pass, fmt, ap);
    va_end(ap);
    if (!r)
        diag("got \"%s\", want \"%s\"", got ? got : "(null)", want ? want : "(null)");
    return r;
}

/* Passes when haystack contains needle. */
static inline int like(const char *haystack, const char *needle, const char *fmt, ...)
{
    int pass = haystack && needle && strstr(haystack, needle) != NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = tap_result_(pass, fmt, ap);
    va_end(ap);
    if (!r)
        diag("\"%s\" does not contain \"%s\"", haystack ? haystack : "(null)", needle);
    return r;
}

static inline void skip(int n, const char *why)
{
    for (int i = 0; i < n; i++) {
        tap_count_++;
        printf("ok %d # SKIP %s\n", tap_count_, why);
    }
    fflush(stdout);
}

static inline void skip_all(const char *why)
{
    printf("1..0 # SKIP %s\n", why);
    fflush(stdout);
}

static inline int done_testing(void)
{
    if (tap_planned_ < 0)
        printf("1..%d\n", tap_count_);
    else if (tap_planned_ != tap_count_)
        diag("planned %d tests but ran %d", tap_planned_, tap_count_);
    fflush(stdout);
    return tap_failed_ || (tap_planned_ >= 0 && tap_planned_ != tap_count_) ? 1 : 0;
}

#endif
