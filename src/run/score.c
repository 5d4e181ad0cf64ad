/* score.c: `btrm score` (see score.h). */
#include "score.h"

#include "error.h"
#include "fileutil.h"
#include "log.h"
#include "reward.h"

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

/* Scores the batch and writes its lines. */
static int flush(score_batch *b, btrm_reward *rm, float *rewards, FILE *out)
{
    if (b->n == 0)
        return 0;
    int rc = btrm_reward_texts(rm, (const char *const *)b->texts, (size_t)b->n, rewards);
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
 * model's, or its own trained backbone) with the config's embed.* options
 * under the recorded ones. */
static int score(const char *model_path, const char *spec, const btrm_config *cfg,
                 const char *texts_path, const char *out_path, int batch, int invariant)
{
    btrm_reward rm;
    float *rewards = NULL;
    score_batch b = { 0 };
    FILE *in = NULL, *out = stdout;
    char *line = NULL;
    size_t line_cap = 0, line_no = 0;
    int rc = btrm_reward_open(&rm, model_path, spec, cfg, batch);
    rm.invariant = invariant;
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
        if (b.n == b.cap && (rc = flush(&b, &rm, rewards, out))) {
            rc = btrm_error_wrap(rc, "%s: lines %zu..%zu", texts_path, line_no - b.cap + 1,
                                 line_no);
            goto fail;
        }
    }
    if ((rc = flush(&b, &rm, rewards, out)))
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
    btrm_reward_close(&rm);
    return rc;
}

int btrm_score_run(const btrm_score_opts *opts, const btrm_config *cfg)
{
    return score(opts->model_path, opts->backbone, cfg, opts->texts_path, opts->out_path,
                 opts->batch, opts->invariant);
}
