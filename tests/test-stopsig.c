/* test-stopsig.c: stop signals taken at safe points (src/core/stopsig.h).
 * While begun, SIGUSR1 and SIGTERM never run a handler in the computing
 * thread: they stay pending until btrm_stopsig_poll takes them; end restores
 * the thread's mask and the previous handlers. */
#include "stopsig.h"
#include "tap.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t handled;
static void mark(int sig) { handled = sig; }

static int pending(int sig)
{
    sigset_t p;
    sigpending(&p);
    return sigismember(&p, sig);
}

static int blocked(int sig)
{
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    return sigismember(&m, sig);
}

int main(void)
{
    /* a handler of the caller's, to be restored by end */
    struct sigaction sa, got;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = mark;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    btrm_stopsig ss;
    btrm_stopsig_begin(&ss, (const int[]){ SIGUSR1, SIGTERM }, 2);
    ok(blocked(SIGUSR1) && blocked(SIGTERM), "begin blocks SIGUSR1 and SIGTERM in this thread");
    ok(btrm_stopsig_poll(&ss) == 0, "nothing received: poll gives 0");

    raise(SIGUSR1);
    ok(!handled, "a raised SIGUSR1 runs no handler in this thread");
    ok(pending(SIGUSR1), "... it is pending");
    ok(btrm_stopsig_poll(&ss) == SIGUSR1, "poll takes it: SIGUSR1");
    ok(!pending(SIGUSR1), "... and it is no longer pending");

    raise(SIGTERM);
    ok(btrm_stopsig_poll(&ss) == SIGUSR1, "a later SIGTERM: poll still reports the first signal");
    ok(!pending(SIGTERM), "... and takes the SIGTERM too");
    ok(!handled, "no handler ran");

    btrm_stopsig_end(&ss);
    ok(!blocked(SIGUSR1) && !blocked(SIGTERM), "end restores the mask");
    sigaction(SIGUSR1, NULL, &got);
    ok(got.sa_handler == mark, "end restores the previous SIGUSR1 handler");
    raise(SIGTERM);
    ok(handled == SIGTERM, "after end a SIGTERM reaches the previous handler");

    /* begin again: the received signal of the last round is forgotten */
    btrm_stopsig_begin(&ss, (const int[]){ SIGUSR1 }, 1);
    ok(btrm_stopsig_poll(&ss) == 0, "a new begin starts with nothing received");
    btrm_stopsig_end(&ss);

    /* peek (fault.h's action=wait) sees a pending signal without taking it */
    btrm_stopsig_begin(&ss, (const int[]){ SIGUSR1, SIGTERM }, 2);
    ok(btrm_stopsig_peek() == 0, "peek: nothing pending, nothing received");
    raise(SIGTERM);
    ok(btrm_stopsig_peek() == SIGTERM, "peek sees a pending SIGTERM");
    ok(pending(SIGTERM), "... and leaves it pending");
    ok(btrm_stopsig_poll(&ss) == SIGTERM, "poll still takes it");
    ok(btrm_stopsig_peek() == SIGTERM, "after poll, peek reports the received signal");
    btrm_stopsig_end(&ss);
    return done_testing();
}
