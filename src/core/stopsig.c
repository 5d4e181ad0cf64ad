/* stopsig.c: stop signals taken at safe points (stopsig.h explains why). */
#include "stopsig.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t received;

static void on_stop(int sig)
{
    if (!received)
        received = sig;
}

void btrm_stopsig_begin(btrm_stopsig *s, const int *sigs, int n)
{
    memset(s, 0, sizeof *s);
    s->n = n < BTRM_STOPSIG_MAX ? n : BTRM_STOPSIG_MAX;
    received = 0;
    sigemptyset(&s->set);
    /* SA_RESTART: a signal that reaches another thread inside a system call
     * (a write to a network file system, a wait inside MPI or HDF5) restarts
     * it instead of failing it with EINTR in a library that may not retry */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < s->n; i++) {
        s->sigs[i] = sigs[i];
        sigaddset(&s->set, sigs[i]);
        sigaction(sigs[i], &sa, &s->old[i]);
    }
    pthread_sigmask(SIG_BLOCK, &s->set, &s->old_mask);
}

int btrm_stopsig_poll(btrm_stopsig *s)
{
    sigset_t pending;
    if (!sigpending(&pending))
        for (int i = 0; i < s->n; i++)
            if (sigismember(&pending, s->sigs[i])) {
                const struct timespec now = { 0, 0 };
                int sig = sigtimedwait(&s->set, NULL, &now);
                if (sig > 0 && !received)
                    received = sig;
                break;
            }
    return received;
}

int btrm_stopsig_peek(void)
{
    if (received)
        return received;
    static const int stops[] = { SIGUSR1, SIGTERM, SIGINT };
    sigset_t pending;
    if (!sigpending(&pending))
        for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
            if (sigismember(&pending, stops[i]))
                return stops[i];
    return 0;
}

void btrm_stopsig_end(btrm_stopsig *s)
{
    /* a signal still pending reaches on_stop when unblocked: harmless */
    pthread_sigmask(SIG_SETMASK, &s->old_mask, NULL);
    for (int i = 0; i < s->n; i++)
        sigaction(s->sigs[i], &s->old[i], NULL);
}
