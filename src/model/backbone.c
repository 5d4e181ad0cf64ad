/* backbone.c: the table of backbones and the NAME[:ARGS] lookup. Adding a
 * backbone is one file with its btrm_backbone_ops and one row here. */
#include "backbone.h"

#include "error.h"

#include <stdio.h>
#include <string.h>

const btrm_backbone_ops *const btrm_backbones[] = {
    &btrm_backbone_hash_ops,
    &btrm_backbone_gguf_ops,
    &btrm_backbone_llama2c_ops,
    NULL,
};

void btrm_backbone_names(char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; btrm_backbones[i] && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? ", " : "",
                         btrm_backbones[i]->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

const btrm_backbone_ops *btrm_backbone_lookup(const char *spec, const char **args)
{
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    *args = colon ? colon + 1 : spec + len;
    for (int i = 0; btrm_backbones[i]; i++)
        if (strlen(btrm_backbones[i]->name) == len &&
            !strncmp(btrm_backbones[i]->name, spec, len))
            return btrm_backbones[i];
    char names[256];
    btrm_backbone_names(names, sizeof names);
    btrm_error_set(BTRM_EUSAGE, "unknown backbone '%.*s' (known: %s)", (int)len, spec, names);
    return NULL;
}

int btrm_backbone_open(btrm_backbone_handle *h, const char *spec, int dim)
{
    memset(h, 0, sizeof *h);
    if (dim < 0)
        return btrm_error_set(BTRM_EUSAGE, "backbone %s: dim must be positive (got %d)", spec,
                              dim);
    const char *args = NULL;
    const btrm_backbone_ops *ops = btrm_backbone_lookup(spec, &args);
    if (!ops)
        return BTRM_EUSAGE;
    btrm_backbone *bb = NULL;
    int rc = ops->open(&bb, args, dim);
    if (rc)
        return btrm_error_wrap(rc, "backbone %s", spec);
    h->ops = ops;
    h->bb = bb;
    h->dim = ops->dim(bb);
    return 0;
}

int btrm_backbone_encode(btrm_backbone_handle *h, const char *const *texts, size_t n,
                         float *out)
{
    return h->ops->encode(h->bb, texts, n, out);
}

int btrm_backbone_describe(const btrm_backbone_handle *h, char *label, size_t label_size,
                           json_t *attrs)
{
    return h->ops->describe(h->bb, label, label_size, attrs);
}

void btrm_backbone_close(btrm_backbone_handle *h)
{
    if (!h || !h->ops)
        return;
    h->ops->close(h->bb);
    memset(h, 0, sizeof *h);
}

int btrm_backbone_has_cost(const btrm_backbone_handle *h)
{
    return h && h->ops && h->ops->cost;
}

int btrm_backbone_cost(btrm_backbone_handle *h, const char *const *texts, size_t n,
                       int64_t *cost)
{
    if (!btrm_backbone_has_cost(h))
        return btrm_error_set(BTRM_EUSAGE, "backbone %s reports no costs", h->ops->name);
    return h->ops->cost(h->bb, texts, n, cost);
}

int btrm_backbone_spec_with_config(const char *spec, const struct btrm_config *cfg, char *out,
                                   size_t size)
{
    const char *args = NULL;
    const btrm_backbone_ops *ops = btrm_backbone_lookup(spec, &args);
    if (!ops)
        return BTRM_EUSAGE;
    char opts[1024];
    int n;
    if (!ops->config_args || !args[0]) {
        n = snprintf(out, size, "%s", spec);
    } else {
        int rc = ops->config_args(cfg, opts, sizeof opts);
        if (rc)
            return rc;
        /* NAME:FIRST,<config>,REST */
        const char *comma = strchr(args, ',');
        size_t head = comma ? (size_t)(comma - spec) : strlen(spec);
        n = snprintf(out, size, "%.*s,%s%s", (int)head, spec, opts, comma ? comma : "");
    }
    if (n < 0 || (size_t)n >= size)
        return btrm_error_set(BTRM_EUSAGE, "backbone spec too long: %s", spec);
    return 0;
}
