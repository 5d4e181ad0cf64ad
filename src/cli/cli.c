/* cli.c: what the subcommands share (see cli.h). */
#include "cli.h"

#include "error.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int btrm_cli_sets_add(btrm_cli_sets *sets, const char *assignment)
{
    if (sets->n == sets->cap) {
        int cap = sets->cap ? 2 * sets->cap : 8;
        const char **items = realloc(sets->items, (size_t)cap * sizeof *items);
        if (!items)
            return btrm_error_set(BTRM_ENOMEM, "out of memory collecting --set options");
        sets->items = items;
        sets->cap = cap;
    }
    sets->items[sets->n++] = assignment;
    return 0;
}

void btrm_cli_sets_free(btrm_cli_sets *sets)
{
    if (!sets)
        return;
    free(sets->items);
    sets->items = NULL;
    sets->n = sets->cap = 0;
}

int btrm_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "btrm %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'btrm %s --help'.\n", cmd);
    va_end(ap);
    return BTRM_EXIT_USAGE;
}

int btrm_cli_parse_i64(const char *text, long long min, long long max, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int btrm_cli_parse_double(const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int btrm_cli_verbosity(const char *arg, int *verbosity)
{
    if (!strcmp(arg, "-v") || !strcmp(arg, "--verbose"))
        *verbosity = BTRM_LOG_DEBUG;
    else if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet"))
        *verbosity = BTRM_LOG_WARN;
    else
        return 0;
    return 1;
}

int btrm_cli_config_option(int argc, char **argv, int *i, const char **config_path,
                           btrm_cli_sets *sets, int *verbosity)
{
    const char *a = argv[*i];
    int has_value = *i + 1 < argc;
    if (!strcmp(a, "--config") && has_value)
        *config_path = argv[++*i];
    else if (!strcmp(a, "--set") && has_value)
        btrm_cli_sets_add(sets, argv[++*i]);
    else
        return btrm_cli_verbosity(a, verbosity);
    return 1;
}

void btrm_cli_comm_init(btrm_comm *comm, MPI_Comm world, int verbosity)
{
    int rc = btrm_comm_init(comm, world);
    if (rc)
        btrm_comm_abort(NULL, rc, "%s", btrm_error_msg());
    btrm_log_init(comm->rank, verbosity);
}

int btrm_cli_exit(btrm_comm *comm, int rc)
{
    if (rc == BTRM_EPREEMPT)
        btrm_log_warn("%s", btrm_error_msg());
    else if (rc)
        btrm_log_error("%s", btrm_error_msg());
    if (comm)
        btrm_comm_free(comm);
    return btrm_error_exit_code(rc);
}

int btrm_cli_load_config(const char *path, const btrm_cli_sets *sets, btrm_config **cfg)
{
    *cfg = calloc(1, sizeof **cfg);
    if (!*cfg)
        return btrm_error_set(BTRM_ENOMEM, "out of memory");
    return btrm_config_load(*cfg, path, sets->items, sets->n);
}
