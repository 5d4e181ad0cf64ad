#include "fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stopsig.h"

typedef struct fault_spec {
    int parsed, active;
    char point[64];
    int rank;
    long hit, seen, at_step; /* at_step: -1 = any */
    char action[16];
} fault_spec;

static fault_spec spec;

/* action=wait gives up after this many seconds */
#define WAIT_S 120

/* "POINT[,rank=R][,hit=N][,action=A]"; a malformed value disables injection
 * with a message, so that a typo in a test shows up as a failed test. */
static void parse(void)
{
    spec.parsed = 1;
    spec.hit = 1;
    spec.at_step = -1;
    snprintf(spec.action, sizeof spec.action, "kill");
    const char *env = getenv(BTRM_FAULT_ENV);
    if (!env || !env[0])
        return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", env);
    char *save = NULL;
    char *tok = strtok_r(buf, ",", &save);
    snprintf(spec.point, sizeof spec.point, "%s", tok ? tok : "");
    while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
        char *end = NULL;
        if (!strncmp(tok, "rank=", 5)) {
            spec.rank = (int)strtol(tok + 5, &end, 10);
        } else if (!strncmp(tok, "step=", 5)) {
            spec.at_step = strtol(tok + 5, &end, 10);
            if (spec.at_step < 0)
                end = NULL;
        } else if (!strncmp(tok, "hit=", 4)) {
            spec.hit = strtol(tok + 4, &end, 10);
        } else if (!strncmp(tok, "action=", 7)) {
            snprintf(spec.action, sizeof spec.action, "%s", tok + 7);
            end = tok + strlen(tok);
        }
        if (!end || *end || spec.hit < 1) {
            fprintf(stderr, "btrm: %s='%s': cannot parse '%s'; no fault injected\n",
                    BTRM_FAULT_ENV, env, tok);
            return;
        }
    }
    static const char *const actions[] = { "kill", "term", "term-twice", "usr1", "usr1-twice",
                                           "wait" };
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (!strcmp(spec.action, actions[i]))
            spec.active = 1;
    if (!spec.active)
        fprintf(stderr, "btrm: %s='%s': unknown action '%s'; no fault injected\n",
                BTRM_FAULT_ENV, env, spec.action);
}

void btrm_fault_point(const char *point, int rank) { btrm_fault_point_at(point, rank, -1); }

void btrm_fault_point_at(const char *point, int rank, long step)
{
    if (!spec.parsed)
        parse();
    if (!spec.active || rank != spec.rank || strcmp(point, spec.point) != 0 ||
        (spec.at_step >= 0 && step != spec.at_step) || ++spec.seen != spec.hit)
        return;
    fprintf(stderr, "btrm: rank %d: fault injection at %s (pass %ld): %s\n", rank, point,
            spec.seen, spec.action);
    fflush(stderr);
    const char *a = spec.action;
    if (!strcmp(a, "wait")) {
        /* until a stop signal reaches this process (at most WAIT_S), so
         * that a test's signal lands before the run can end */
        for (int i = 0; i < WAIT_S * 100 && !btrm_stopsig_peek(); i++)
            nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
        if (!btrm_stopsig_peek())
            fprintf(stderr, "btrm: rank %d: no stop signal after %d s at %s; going on\n", rank,
                    WAIT_S, point);
        return;
    }
    int sig = !strncmp(a, "term", 4) ? SIGTERM : !strncmp(a, "usr1", 4) ? SIGUSR1 : SIGKILL;
    raise(sig);
    if (strstr(a, "-twice"))
        raise(sig);
}
