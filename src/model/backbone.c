/* backbone.c: the table of backbones and the NAME[:ARGS] lookup. Adding a
 * backbone is one file with its btrm_backbone_ops and one row here. */
#include "backbone.h"

#include "error.h"
#include "feature_record.h"

#include <stdio.h>
#include <stdlib.h>
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
    if (!(h->spec = strdup(spec))) {
        btrm_backbone_close(h);
        return btrm_error_set(BTRM_ENOMEM, "out of memory opening backbone %s", spec);
    }
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

int btrm_backbone_record(const btrm_backbone_handle *h, btrm_feature_record *rec)
{
    btrm_feature_record_clear(rec);
    json_t *attrs = json_object();
    int rc = attrs ? btrm_backbone_describe(h, rec->label, sizeof rec->label, attrs)
                   : btrm_error_set(BTRM_ENOMEM, "out of memory");
    if (!rc)
        rc = btrm_feature_record_from_json(rec, attrs, h->spec);
    json_decref(attrs);
    rec->dim = h->dim;
    return rc;
}

/* out = spec with opts after its first argument (NAME:FIRST,opts,REST: the
 * options of REST win); spec unchanged when either has nothing. */
static int insert_options(const char *spec, const char *opts, char *out, size_t size)
{
    const char *args = NULL;
    if (!btrm_backbone_lookup(spec, &args))
        return BTRM_EUSAGE;
    int n;
    if (!args[0] || !opts[0]) {
        n = snprintf(out, size, "%s", spec);
    } else {
        const char *comma = strchr(args, ',');
        size_t head = comma ? (size_t)(comma - spec) : strlen(spec);
        n = snprintf(out, size, "%.*s,%s%s", (int)head, spec, opts, comma ? comma : "");
    }
    if (n < 0 || (size_t)n >= size)
        return btrm_error_set(BTRM_EUSAGE, "backbone spec too long: %s", spec);
    return 0;
}

/* "pool=last,max_tokens=512,bos=1,kernel=dequant,precision=fp32": the settings rec records
 * as backbone options (those it knows). */
static void recorded_options(const btrm_feature_record *rec, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    if (rec->pool[0] && n < size)
        n += (size_t)snprintf(out + n, size - n, ",pool=%s", rec->pool);
    if (rec->max_tokens > 0 && n < size)
        n += (size_t)snprintf(out + n, size - n, ",max_tokens=%d", rec->max_tokens);
    if (rec->bos >= 0 && n < size)
        n += (size_t)snprintf(out + n, size - n, ",bos=%d", rec->bos);
    if (rec->kernel[0] && n < size)
        n += (size_t)snprintf(out + n, size - n, ",kernel=%s", rec->kernel);
    if (rec->precision[0] && n < size)
        snprintf(out + n, size - n, ",precision=%s", rec->precision);
    if (out[0])
        memmove(out, out + 1, strlen(out)); /* the leading comma */
}

int btrm_backbone_spec_for(const btrm_feature_record *rec, const char *model_path,
                           const char *user_spec, const struct btrm_config *cfg, char *out,
                           size_t size)
{
    const char *spec = user_spec ? user_spec : btrm_feature_record_spec(rec);
    if (!spec)
        return btrm_error_set(BTRM_EUSAGE, "%s does not record a backbone btrm can run (%s): "
                              "give --backbone", model_path,
                              rec->present ? rec->label
                                           : "a model file from before btrm recorded how its "
                                             "features were made");
    const char *args = NULL;
    const btrm_backbone_ops *ops = btrm_backbone_lookup(spec, &args);
    if (!ops)
        return BTRM_EUSAGE;
    /* NAME:FIRST, the config's options, the recorded settings, then the
     * spec's own: what the model was trained with wins over the config, and
     * what the user writes wins over both (the recorded spec's own options
     * are the recorded settings already) */
    char opts[2048] = "", recorded[256] = "";
    int rc = cfg && ops->config_args && args[0] ? ops->config_args(cfg, opts, sizeof opts) : 0;
    if (rc)
        return rc;
    if (user_spec && btrm_feature_record_runnable(rec) && !strcmp(rec->backbone, ops->name))
        recorded_options(rec, recorded, sizeof recorded);
    if (recorded[0]) {
        size_t n = strlen(opts);
        snprintf(opts + n, sizeof opts - n, "%s%s", n ? "," : "", recorded);
    }
    return insert_options(spec, opts, out, size);
}

int btrm_backbone_open_checked(btrm_backbone_handle *h, const char *spec, int dim,
                               const btrm_feature_record *rec, const char *model_path,
                               const char *what)
{
    int rc = btrm_backbone_open(h, spec, dim);
    if (rc || !btrm_feature_record_runnable(rec))
        return rc;
    btrm_feature_record got;
    rc = btrm_backbone_record(h, &got);
    if (!rc)
        rc = btrm_feature_record_compare(rec, model_path, &got, what, 0);
    if (rc)
        btrm_backbone_close(h);
    return rc;
}

void btrm_backbone_close(btrm_backbone_handle *h)
{
    if (!h)
        return;
    if (h->ops)
        h->ops->close(h->bb);
    free(h->spec);
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
    char opts[1024] = "";
    int rc = ops->config_args && args[0] ? ops->config_args(cfg, opts, sizeof opts) : 0;
    return rc ? rc : insert_options(spec, opts, out, size);
}
