/* score.c: `btrm score` (see score.h). */
#include "score.h"

#include "error.h"
#include "fileutil.h"
#include "log.h"
#include "modelfile.h"
#include "reward.h"
#include "textrep.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct score_batch {
    int n, cap;
    char **texts;
    json_t **ids; /* NULL when a line has none */
} score_batch;

static void batch_clear(score_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        free(b->texts[i]);
        json_decref(b->ids[i]);
    }
    b->n = 0;
}

/* Where the rewards come from: the backbone the model records or one named
 * on the command line (reward.h), or the model file's own (trained)
 * backbone (model.backbone): its representations, then the head. */
typedef struct score_source {
    int own;                /* the model file's /backbone */
    btrm_reward rm;         /* !own */
    btrm_head head;         /* own: */
    btrm_head_ws ws;
    float *params;
    btrm_ftmodel fm;
    float *fm_params;
    float *features;        /* [batch, dim] */
    int32_t **ids;          /* [batch] */
    int *lens;
} score_source;

static int own_rewards(score_source *src, char *const *texts, int n, float *rewards)
{
    int rc = 0, made = 0;
    for (; made < n && !rc; made++)
        rc = btrm_ftmodel_tokenize(&src->fm, texts[made], &src->ids[made], &src->lens[made]);
    if (rc)
        rc = btrm_error_wrap(rc, "text %d of the batch", made - 1);
    if (!rc)
        rc = btrm_ftmodel_encode(&src->fm, src->fm_params, (const int32_t *const *)src->ids,
                                 src->lens, (size_t)n, src->features);
    for (int i = 0; i < made; i++) {
        free(src->ids[i]);
        src->ids[i] = NULL;
    }
    if (!rc)
        rc = btrm_head_forward(&src->head, src->params, src->features, n, &src->ws);
    for (int i = 0; !rc && i < n; i++)
        rewards[i] = src->ws.reward[i];
    return rc;
}

/* Scores the batch and writes its lines. */
static int flush(score_batch *b, score_source *src, float *rewards, FILE *out)
{
    if (b->n == 0)
        return 0;
    int rc = src->own ? own_rewards(src, b->texts, b->n, rewards)
                      : btrm_reward_texts(&src->rm, (const char *const *)b->texts,
                                          (size_t)b->n, rewards);
    if (rc)
        return rc;
    for (int i = 0; i < b->n && !rc; i++) {
        json_t *line = json_object();
        if (!line ||
            (b->ids[i] && json_object_set(line, "id", b->ids[i])) ||
            json_object_set_new(line, "reward", json_real((double)rewards[i])))
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory");
        if (!rc)
            rc = btrm_jsonl_write(out, line, "the scores");
        json_decref(line);
    }
    batch_clear(b);
    return rc;
}

/* The reward of each line of texts_path, through backbone spec (NULL: the
 * model's) with the config's embed.* options under the recorded ones. */
static int score(const char *model_path, const char *spec, const btrm_config *cfg,
                 const char *texts_path, const char *out_path, int batch, int invariant)
{
    score_source src;
    btrm_model_backbone ref;
    btrm_model_meta meta;
    float *rewards = NULL;
    score_batch b = { 0 };
    FILE *in = NULL, *out = stdout;
    char *line = NULL;
    size_t line_cap = 0, line_no = 0;
    memset(&src, 0, sizeof src);
    int rc = btrm_model_read_backbone(model_path, &ref, &src.own);
    if (!rc && src.own && spec)
        rc = btrm_error_set(BTRM_EUSAGE, "%s was trained with its own backbone (%s): drop "
                            "--backbone", model_path, ref.spec);
    if (!rc && !src.own) {
        rc = btrm_reward_open(&src.rm, model_path, spec, cfg, batch);
        src.rm.invariant = invariant;
    }
    if (!rc && src.own) {
        int has_own = 0;
        rc = btrm_model_read(model_path, &src.head, &src.params, &meta);
        if (!rc)
            rc = btrm_textrep_open_model(model_path, &ref, &src.fm, &src.fm_params,
                                         BTRM_FTMODEL_ENCODE_SEQS, &has_own);
        if (!rc && btrm_ftmodel_dim(&src.fm) != src.head.dim)
            rc = btrm_error_set(BTRM_EDATA, "%s takes %d features; its backbone %s gives %d",
                                model_path, src.head.dim, ref.spec, btrm_ftmodel_dim(&src.fm));
        if (!rc && ((rc = BTRM_CALLOC(src.ids, batch)) || (rc = BTRM_MALLOC(src.lens, batch)) ||
                    (rc = btrm_head_ws_init(&src.ws, &src.head, batch)) ||
                    (rc = BTRM_MALLOC(src.features, (size_t)batch * (size_t)src.head.dim))))
            goto fail;
    }
    if (rc)
        goto fail;
    if ((rc = BTRM_MALLOC(rewards, batch)) || (rc = BTRM_CALLOC(b.texts, batch)) ||
        (rc = BTRM_CALLOC(b.ids, batch)))
        goto fail;
    b.cap = batch;
    in = strcmp(texts_path, "-") ? fopen(texts_path, "r") : stdin;
    if (!in) {
        rc = btrm_error_set(BTRM_EIO, "cannot open %s: %s", texts_path, strerror(errno));
        goto fail;
    }
    if (out_path && !(out = fopen(out_path, "w"))) {
        rc = btrm_error_set(BTRM_EIO, "cannot create %s: %s", out_path, strerror(errno));
        goto fail;
    }
    ssize_t len;
    while ((len = getline(&line, &line_cap, in)) >= 0) {
        line_no++;
        if (strspn(line, " \t\r\n") == (size_t)len)
            continue; /* blank line */
        json_error_t jerr;
        json_t *obj = json_loadb(line, (size_t)len, JSON_DISABLE_EOF_CHECK, &jerr);
        json_t *text = obj ? json_object_get(obj, "text") : NULL;
        if (!obj || !json_is_string(text)) {
            rc = btrm_error_set(BTRM_EDATA, "%s:%zu: %s", texts_path, line_no,
                                obj ? "want an object with a string \"text\"" : jerr.text);
            json_decref(obj);
            goto fail;
        }
        json_t *id = json_object_get(obj, "id");
        b.texts[b.n] = strdup(json_string_value(text));
        b.ids[b.n] = id ? json_incref(id) : NULL;
        json_decref(obj);
        if (!b.texts[b.n]) {
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory");
            goto fail;
        }
        b.n++;
        if (b.n == b.cap && (rc = flush(&b, &src, rewards, out))) {
            rc = btrm_error_wrap(rc, "%s: lines %zu..%zu", texts_path, line_no - b.cap + 1,
                                 line_no);
            goto fail;
        }
    }
    if ((rc = flush(&b, &src, rewards, out)))
        rc = btrm_error_wrap(rc, "%s: the last %d lines", texts_path, b.n);
    btrm_log_debug("score: %zu texts", line_no);
fail:
    batch_clear(&b);
    free(b.texts);
    free(b.ids);
    free(line);
    if (in && in != stdin)
        fclose(in);
    if (out && out != stdout && fclose(out) != 0 && !rc)
        rc = btrm_error_set(BTRM_EIO, "cannot write %s", out_path);
    free(rewards);
    if (src.own) {
        btrm_head_ws_free(&src.ws);
        btrm_ftmodel_close(&src.fm);
        BTRM_FREE(src.params, src.fm_params, src.features, src.ids, src.lens);
    } else {
        btrm_reward_close(&src.rm);
    }
    return rc;
}

int btrm_score_run(const btrm_score_opts *opts, const btrm_config *cfg)
{
    return score(opts->model_path, opts->backbone, cfg, opts->texts_path, opts->out_path,
                 opts->batch, opts->invariant);
}
