/* bench/bench-clock.h: the clock and the order statistics the C benchmarks
 * share. --clock cpu (bench_clock = CLOCK_THREAD_CPUTIME_ID) times with the
 * calling thread's CPU time: on a shared machine it leaves out the time other
 * processes held the core (valid for 1-thread work in the calling thread). */
#ifndef BTRM_BENCH_CLOCK_H
#define BTRM_BENCH_CLOCK_H

#include <stdlib.h>
#include <time.h>

static clockid_t bench_clock = CLOCK_MONOTONIC;

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[n] (n >= 1); *best = the largest, *median. */
static inline void bench_best_median(double *v, int n, double *best, double *median)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *best = v[n - 1];
    *median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline const char *bench_clock_name(void)
{
    return bench_clock == CLOCK_MONOTONIC ? "wall" : "thread CPU";
}

#endif
