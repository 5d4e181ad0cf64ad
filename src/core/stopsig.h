/* stopsig.h: stop signals (SIGTERM, SIGUSR1, SIGINT) taken at safe points.
 *
 * A signal handler that runs while a thread executes oneDNN 2.6's JIT GEMM
 * kernels corrupts the heap: those kernels point rsp into a heap buffer, so
 * the kernel pushes the signal frame there (oneDNN issue 4845, fixed in
 * 3.x). A 2-rank fine-tuning run stopped with SIGUSR1 aborted with
 * "corrupted size vs. prev_size" in about one of 20 tries. So the thread
 * that computes blocks the stop signals and polls them between steps or
 * batches; a flag handler stays installed for the threads that do not block
 * them (MPI's, BLAS's), which run no JIT code.
 *
 *     btrm_stopsig ss;
 *     btrm_stopsig_begin(&ss, (int[]){ SIGUSR1, SIGTERM }, 2);
 *     ... threads created here inherit the blocked mask ...
 *     while (!btrm_stopsig_poll(&ss)) step();
 *     btrm_stopsig_end(&ss);
 */
#ifndef BTRM_STOPSIG_H
#define BTRM_STOPSIG_H

#include <signal.h>

#define BTRM_STOPSIG_MAX 4

typedef struct btrm_stopsig {
    int n, sigs[BTRM_STOPSIG_MAX];
    sigset_t set, old_mask;
    struct sigaction old[BTRM_STOPSIG_MAX];
} btrm_stopsig;

/* Installs the flag handler for sigs[0..n) and blocks them in the calling
 * thread (and so in the threads it creates afterwards). */
void btrm_stopsig_begin(btrm_stopsig *s, const int *sigs, int n);
/* The first stop signal received since begin (taken from the pending set
 * when it is pending), or 0. Cheap: one sigpending call. */
int btrm_stopsig_poll(btrm_stopsig *s);
/* The first stop signal received since begin or pending now (any of
 * SIGUSR1, SIGTERM, SIGINT), without taking it: poll still reports it. For
 * the fault-injection point that waits for a signal (fault.h). */
int btrm_stopsig_peek(void);
/* Restores the calling thread's mask and the previous handlers. */
void btrm_stopsig_end(btrm_stopsig *s);

#endif
