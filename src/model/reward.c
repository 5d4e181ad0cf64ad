/* reward.c: texts -> features (backbone) -> rewards (head, row by row). */
#include "reward.h"

#include "error.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* The model's own backbone (its /backbone): the base model with the
 * trained tensors, checked against the recorded hashes. */
static int open_own(btrm_reward *r, const char *model_path, const char *spec, int max_texts)
{
    if (spec)
        return btrm_error_set(BTRM_EUSAGE, "%s was trained with its own backbone (%s): drop "
                              "--backbone", model_path, r->ref.spec);
    int present = 0;
    int rc = btrm_ftmodel_open_model(model_path, &r->ref, &r->fm, &r->fm_params,
                                     BTRM_FTMODEL_ENCODE_SEQS, &present);
    if (!rc && btrm_ftmodel_dim(&r->fm) != r->head.dim)
        rc = btrm_error_set(BTRM_EDATA, "%s takes %d features; its backbone %s gives %d",
                            model_path, r->head.dim, r->ref.spec, btrm_ftmodel_dim(&r->fm));
    if (!rc)
        rc = BTRM_CALLOC(r->ids, max_texts);
    if (!rc)
        rc = BTRM_MALLOC(r->lens, max_texts);
    if (!rc)
        rc = btrm_head_ws_init(&r->ws, &r->head, 1);
    if (!rc)
        rc = BTRM_MALLOC(r->features, (size_t)max_texts * (size_t)r->head.dim);
    return rc;
}

/* features[n, dim] of texts through the model's own backbone: tokenized,
 * then forwards of BTRM_FTMODEL_ENCODE_SEQS (invariant: one text each). */
static int own_features(btrm_reward *r, const char *const *texts, size_t n)
{
    const size_t dim = (size_t)r->head.dim;
    int rc = 0;
    size_t made = 0;
    for (; made < n && !rc; made++)
        if ((rc = btrm_ftmodel_tokenize(&r->fm, texts[made], &r->ids[made], &r->lens[made])) &&
            n > 1)
            rc = btrm_error_wrap(rc, "text %zu of the batch", made);
    const int32_t *const *ids = (const int32_t *const *)r->ids;
    if (!rc && r->invariant) {
        for (size_t i = 0; i < n && !rc; i++)
            if ((rc = btrm_ftmodel_encode(&r->fm, r->fm_params, ids + i, r->lens + i, 1,
                                          r->features + i * dim)) && n > 1)
                rc = btrm_error_wrap(rc, "text %zu of the batch", i);
    } else if (!rc) {
        rc = btrm_ftmodel_encode(&r->fm, r->fm_params, ids, r->lens, n, r->features);
    }
    for (size_t i = 0; i < made; i++) {
        free(r->ids[i]);
        r->ids[i] = NULL;
    }
    return rc;
}

int btrm_reward_open(btrm_reward *r, const char *model_path, const char *spec,
                     const struct btrm_config *cfg, int max_texts)
{
    memset(r, 0, sizeof *r);
    if (max_texts < 1)
        return btrm_error_set(BTRM_EUSAGE, "rewards: max_texts must be positive (got %d)",
                              max_texts);
    char full[2 * BTRM_PATH_MAX];
    int rc = btrm_model_read(model_path, &r->head, &r->params, &r->meta);
    if (!rc)
        rc = btrm_model_read_features(model_path, &r->record);
    if (!rc)
        rc = btrm_model_read_backbone(model_path, &r->ref, &r->own);
    if (!rc && r->own) {
        rc = open_own(r, model_path, spec, max_texts);
        if (rc) {
            btrm_reward_close(r);
            return rc;
        }
        r->max_texts = max_texts;
        return 0;
    }
    if (!rc)
        rc = btrm_backbone_spec_for(&r->record, model_path, spec, cfg, full, sizeof full);
    if (!rc && spec && r->record.present && !btrm_feature_record_runnable(&r->record))
        btrm_log_warn("%s was trained on features from '%s', which btrm cannot make again: "
                      "--backbone %s is taken as it is", model_path, r->record.label, spec);
    char what[2 * BTRM_PATH_MAX + 32];
    if (spec)
        snprintf(what, sizeof what, "--backbone %s", spec);
    else
        snprintf(what, sizeof what, "the backbone it records");
    if (!rc)
        rc = btrm_backbone_open_checked(&r->bb, full, r->head.dim, &r->record, model_path,
                                        what);
    if (!rc && r->bb.dim != r->head.dim)
        rc = btrm_error_set(BTRM_EUSAGE, "%s takes %d features; backbone %s gives %d",
                            model_path, r->head.dim, full, r->bb.dim);
    if (!rc)
        rc = btrm_head_ws_init(&r->ws, &r->head, 1);
    if (!rc)
        rc = BTRM_MALLOC(r->features, (size_t)max_texts * (size_t)r->head.dim);
    if (rc) {
        btrm_reward_close(r);
        return rc;
    }
    r->max_texts = max_texts;
    return 0;
}

int btrm_reward_texts(btrm_reward *r, const char *const *texts, size_t n, float *rewards)
{
    if (n > (size_t)r->max_texts)
        return btrm_error_set(BTRM_EUSAGE, "rewards: %zu texts in one call (at most %d)", n,
                              r->max_texts);
    if (n == 0)
        return 0;
    const size_t dim = (size_t)r->head.dim;
    int rc = 0;
    if (r->own) {
        rc = own_features(r, texts, n);
    } else if (r->invariant) {
        for (size_t i = 0; i < n && !rc; i++)
            if ((rc = btrm_backbone_encode(&r->bb, texts + i, 1, r->features + i * dim)) &&
                n > 1)
                rc = btrm_error_wrap(rc, "text %zu of the batch", i);
    } else {
        rc = btrm_backbone_encode(&r->bb, texts, n, r->features);
    }
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        /* reward[1] = head(x[1, D]): one row per call, batch-invariant */
        btrm_head_forward(&r->head, r->params, r->features + i * dim, 1, &r->ws);
        rewards[i] = r->ws.reward[0];
    }
    return 0;
}

int btrm_reward_cost(btrm_reward *r, const char *const *texts, size_t n, int64_t *cost)
{
    for (size_t i = 0; r->own && i < n; i++) {
        int32_t *ids = NULL;
        int len = 0;
        int rc = btrm_ftmodel_tokenize(&r->fm, texts[i], &ids, &len);
        free(ids);
        if (rc)
            return rc;
        cost[i] = len;
    }
    if (r->own)
        return 0;
    if (btrm_backbone_has_cost(&r->bb))
        return btrm_backbone_cost(&r->bb, texts, n, cost);
    for (size_t i = 0; i < n; i++)
        cost[i] = (int64_t)(strlen(texts[i]) / 4 + 1);
    return 0;
}

void btrm_reward_close(btrm_reward *r)
{
    if (!r)
        return;
    btrm_backbone_close(&r->bb);
    btrm_ftmodel_close(&r->fm);
    btrm_head_ws_free(&r->ws);
    free(r->params);
    free(r->features);
    free(r->fm_params);
    free(r->ids);
    free(r->lens);
    memset(r, 0, sizeof *r);
}

const char *btrm_reward_spec(const btrm_reward *r)
{
    return r->own ? r->ref.spec : r->bb.spec;
}
