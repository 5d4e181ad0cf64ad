#include "cli.h"

#include "backbone.h"
#include "config.h"
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

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

int btrm_cli_backbone_spec(const char *spec, const char *config_path, const btrm_cli_sets *sets,
                           char *out, size_t size)
{
    btrm_config *cfg = calloc(1, sizeof *cfg);
    int rc = cfg ? btrm_config_load(cfg, config_path, sets->items, sets->n)
                 : btrm_error_set(BTRM_ENOMEM, "out of memory");
    if (!rc)
        rc = btrm_backbone_spec_with_config(spec, cfg, out, size);
    free(cfg);
    return rc;
}
