#include "fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fault_spec {
    int parsed, active;
    char point[64];
    int rank;
    long hit, seen;
    char action[16];
} fault_spec;

static fault_spec spec;

/* "POINT[,rank=R][,hit=N][,action=A]"; a malformed value disables injection
 * with a message, so that a typo in a test shows up as a failed test. */
static void parse(void)
{
    spec.parsed = 1;
    spec.hit = 1;
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
    static const char *const actions[] = { "kill", "term", "term-twice", "usr1", "usr1-twice" };
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (!strcmp(spec.action, actions[i]))
            spec.active = 1;
    if (!spec.active)
        fprintf(stderr, "btrm: %s='%s': unknown action '%s'; no fault injected\n",
                BTRM_FAULT_ENV, env, spec.action);
}

void btrm_fault_point(const char *point, int rank)
{
    if (!spec.parsed)
        parse();
    if (!spec.active || rank != spec.rank || strcmp(point, spec.point) != 0 ||
        ++spec.seen != spec.hit)
        return;
    fprintf(stderr, "btrm: rank %d: fault injection at %s (pass %ld): %s\n", rank, point,
            spec.seen, spec.action);
    fflush(stderr);
    const char *a = spec.action;
    int sig = !strncmp(a, "term", 4) ? SIGTERM : !strncmp(a, "usr1", 4) ? SIGUSR1 : SIGKILL;
    raise(sig);
    if (strstr(a, "-twice"))
        raise(sig);
}
