/* ftmodel.c: an LLM backbone that trains (see ftmodel.h). */
#include "ftmodel.h"

#include "backbone.h"
#include "error.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int btrm_ftmodel_format(const char *spec, int *format, const char **args)
{
    static const struct { const char *prefix; int format; } known[] = {
        { "gguf:", BTRM_LLAMA_GGUF }, { "llama2c:", BTRM_LLAMA_LLAMA2C },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        size_t len = strlen(known[i].prefix);
        if (!strncmp(spec, known[i].prefix, len)) {
            *format = known[i].format;
            *args = spec + len;
            return 0;
        }
    }
    return btrm_error_set(BTRM_ECONFIG, "model.backbone '%s': want an LLM, gguf:MODEL.gguf "
                          "or llama2c:MODEL.bin[,tokenizer=TOK.bin] (other backbones: embed "
                          "the store with btrm embed and train on its /features)", spec);
}

btrm_llama_train_spec btrm_ftmodel_spec_of(const btrm_config *cfg)
{
    btrm_llama_train_spec s = { .type = cfg->model.finetune.type,
                                .layers = cfg->model.finetune.layers,
                                .rank = cfg->model.finetune.rank,
                                .alpha = (float)cfg->model.finetune.alpha };
    for (int i = 0; i < cfg->model.finetune.n_targets; i++) {
        int p = btrm_llama_train_proj_parse(cfg->model.finetune.targets[i]);
        if (p >= 0)
            s.targets |= BTRM_LORA_TARGET(p);
    }
    return s;
}

void btrm_ftmodel_close(btrm_ftmodel *f)
{
    if (!f)
        return;
    btrm_llama_train_ws_free(&f->ws);
    btrm_llama_ws_free(&f->frozen);
    btrm_llama_train_free(&f->lt);
    btrm_llama_embedder_close(&f->e);
    free(f->ids);
    free(f->lens);
    free(f->rows);
    free(f->dpooled);
    memset(f, 0, sizeof *f);
}

int btrm_ftmodel_open(btrm_ftmodel *f, const char *spec, const btrm_config *cfg,
                      const btrm_llama_train_spec *ft)
{
    memset(f, 0, sizeof *f);
    const char *args = NULL;
    int rc = btrm_ftmodel_format(spec, &f->format, &args);
    if (!rc)
        rc = btrm_backbone_spec_with_config(spec, cfg, f->spec, sizeof f->spec);
    if (rc)
        return rc;
    btrm_ftmodel_format(f->spec, &f->format, &args);
    rc = btrm_llama_embedder_open(&f->e, f->format, args, NULL);
    if (rc)
        return btrm_error_wrap(rc, "model.backbone %s", spec);
    btrm_tok_hash(f->e.model->tok, f->tok_hash);
    f->type = ft ? ft->type : BTRM_FT_NONE;
    if (f->type != BTRM_FT_NONE) {
        rc = btrm_llama_train_init(&f->lt, ft, &f->e.model->hp, &f->e.model->w);
        if (rc) {
            rc = btrm_error_wrap(rc, "%s", f->e.opts.path);
            btrm_ftmodel_close(f);
        }
    }
    return rc;
}

int btrm_ftmodel_ws_init(btrm_ftmodel *f, int max_seqs, int recompute, int precision)
{
    int max_tokens = f->e.max_tokens;
    if (max_seqs < 1 || (int64_t)max_seqs * max_tokens > (1 << 30))
        return btrm_error_set(BTRM_ECONFIG, "train.micro_batch: %d sequences of up to %d tokens "
                              "is too many for one forward", max_seqs, max_tokens);
    /* the frozen forward: the embedder's kernels, batches as the trainable one's */
    int rc = f->type == BTRM_FT_NONE
                 ? btrm_llama_ws_init(&f->frozen, &f->e.model->hp, &f->e.model->w,
                                      max_seqs * max_tokens, max_tokens, f->e.opts.kernel)
                 : btrm_llama_train_ws_init(&f->ws, &f->lt, max_seqs * max_tokens, max_tokens,
                                            recompute, precision);
    if (!rc)
        rc = BTRM_MALLOC(f->ids, (size_t)max_seqs * (size_t)max_tokens);
    if (!rc)
        rc = BTRM_MALLOC(f->lens, max_seqs);
    if (!rc)
        rc = BTRM_MALLOC(f->rows, max_seqs);
    if (!rc)
        rc = BTRM_MALLOC(f->dpooled, (size_t)max_seqs * (size_t)btrm_ftmodel_dim(f));
    if (!rc)
        f->max_seqs = max_seqs;
    return rc ? btrm_error_wrap(rc, "backbone work buffers") : 0;
}

size_t btrm_ftmodel_n_params(const btrm_ftmodel *f)
{
    return f->type == BTRM_FT_NONE ? 0 : f->lt.n_params;
}

void btrm_ftmodel_init_params(const btrm_ftmodel *f, float *params, uint64_t seed)
{
    if (f->type != BTRM_FT_NONE)
        btrm_llama_train_init_params(&f->lt, params, seed);
}

int btrm_ftmodel_dim(const btrm_ftmodel *f) { return f->e.model->hp.dim; }
int btrm_ftmodel_max_tokens(const btrm_ftmodel *f) { return f->e.max_tokens; }
int btrm_ftmodel_pool(const btrm_ftmodel *f) { return f->e.opts.pool; }
int btrm_ftmodel_bos(const btrm_ftmodel *f) { return btrm_llama_embedder_bos(&f->e); }
const char *btrm_ftmodel_hash(btrm_ftmodel *f) { return btrm_llama_model_hash(f->e.model); }

int btrm_ftmodel_tokenize(const btrm_ftmodel *f, const char *text, int32_t **ids, int *n_ids)
{
    return btrm_llama_embedder_tokenize(&f->e, text, ids, n_ids);
}

/* The forward takes sequences of at least one token: empty ones (an empty
 * text without BOS) are left out and get the zero row, as in btrm embed;
 * nothing flows back to them. f->lens[k] of the k-th non-empty one. */
int btrm_ftmodel_forward(btrm_ftmodel *f, const float *params, const int32_t *const *ids,
                         const int *lens, int n, float *pooled)
{
    if (n > f->max_seqs)
        return btrm_error_set(BTRM_EUSAGE, "backbone forward of %d sequences: the work "
                              "buffers hold %d", n, f->max_seqs);
    const size_t dim = (size_t)btrm_ftmodel_dim(f);
    int k = 0, tokens = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 0 || lens[i] > f->e.max_tokens)
            return btrm_error_set(BTRM_EDATA, "sequence %d has %d tokens (0 to %d allowed)", i,
                                  lens[i], f->e.max_tokens);
        if (lens[i] == 0)
            continue;
        memcpy(f->ids + tokens, ids[i], (size_t)lens[i] * sizeof *f->ids);
        f->lens[k++] = lens[i];
        tokens += lens[i];
    }
    /* pooled doubles as the compact output: non-empty rows first, then spread
     * out from the back (row i >= its compact index) */
    int mean = f->e.opts.pool == BTRM_POOL_MEAN, rc = 0;
    if (k > 0 && f->type == BTRM_FT_NONE)
        rc = btrm_llama_forward(&f->e.model->hp, &f->e.model->w, &f->frozen, f->ids, f->lens, k,
                                mean ? NULL : pooled, mean ? pooled : NULL);
    else if (k > 0)
        rc = btrm_llama_train_forward(&f->ws, params, f->ids, f->lens, k, f->e.opts.pool,
                                      pooled);
    if (rc)
        return rc;
    for (int i = n - 1, j = k - 1; i >= 0; i--) {
        if (lens[i] == 0)
            memset(pooled + (size_t)i * dim, 0, dim * sizeof *pooled);
        else if (j-- != i)
            memmove(pooled + (size_t)i * dim, pooled + (size_t)(j + 1) * dim,
                    dim * sizeof *pooled);
    }
    /* remember which rows ran, for the backward */
    for (int i = 0, j = 0; i < n; i++)
        if (lens[i] > 0)
            f->rows[j++] = i;
    f->n_run = k;
    f->e.tokens += tokens;
    return 0;
}

int btrm_ftmodel_backward(btrm_ftmodel *f, const float *params, const float *dpooled,
                          float *grads)
{
    if (f->type == BTRM_FT_NONE || f->n_run == 0)
        return 0;
    const size_t dim = (size_t)btrm_ftmodel_dim(f);
    for (int j = 0; j < f->n_run; j++)
        memcpy(f->dpooled + (size_t)j * dim, dpooled + (size_t)f->rows[j] * dim,
               dim * sizeof *f->dpooled);
    return btrm_llama_train_backward(&f->ws, params, f->dpooled, grads);
}

int btrm_ftmodel_encode(btrm_ftmodel *f, const float *params, const int32_t *const *ids,
                        const int *lens, size_t n, float *out)
{
    const size_t dim = (size_t)btrm_ftmodel_dim(f);
    const size_t batch = (size_t)(f->max_seqs < BTRM_FTMODEL_ENCODE_SEQS
                                      ? f->max_seqs : BTRM_FTMODEL_ENCODE_SEQS);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i += batch) {
        int count = (int)(n - i < batch ? n - i : batch);
        rc = btrm_ftmodel_forward(f, params, ids + i, lens + i, count, out + i * dim);
    }
    return rc;
}

int btrm_ftmodel_open_model(const char *model_path, btrm_model_backbone *ref,
                            btrm_ftmodel *fm, float **params, int max_seqs, int *present)
{
    *params = NULL;
    memset(fm, 0, sizeof *fm);
    int rc = btrm_model_read_backbone(model_path, ref, present);
    if (rc || !*present)
        return rc;
    btrm_config *cfg = NULL; /* the recorded spec carries every option */
    rc = BTRM_MALLOC(cfg, 1);
    if (rc)
        return rc;
    btrm_config_defaults(cfg);
    rc = btrm_ftmodel_open(fm, ref->spec, cfg, &ref->ft);
    free(cfg);
    if (rc)
        return btrm_error_wrap(rc, "%s: its backbone", model_path);
    if (strcmp(btrm_ftmodel_hash(fm), ref->model_hash))
        rc = btrm_error_set(BTRM_EDATA, "%s was trained on %s with XXH3-128 %s; that file now "
                            "has %s: the base model changed (restore it, or train again)",
                            model_path, ref->model_file, ref->model_hash, btrm_ftmodel_hash(fm));
    else if (strcmp(fm->tok_hash, ref->tokenizer_hash))
        rc = btrm_error_set(BTRM_EDATA, "%s: the tokenizer of %s is not the one the model was "
                            "trained with", model_path, ref->spec);
    else if (btrm_ftmodel_dim(fm) != ref->dim)
        rc = btrm_error_set(BTRM_EDATA, "%s: its backbone has dim %d, the model records %d",
                            model_path, btrm_ftmodel_dim(fm), ref->dim);
    if (!rc)
        rc = btrm_ftmodel_ws_init(fm, max_seqs, 0, 0);
    size_t n = btrm_ftmodel_n_params(fm);
    if (!rc && n > 0)
        rc = BTRM_MALLOC(*params, n);
    if (!rc && n > 0)
        rc = btrm_model_read_backbone_tensors(model_path, &fm->lt, *params, 0);
    if (rc) {
        free(*params);
        *params = NULL;
        btrm_ftmodel_close(fm);
    }
    return rc;
}
