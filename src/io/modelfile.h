/* modelfile.h: the model file (format "model-v2", docs/format.md). io layer.
 *
 *   attribute /btrm_format = "model-v2" (model-v1 files, without /features,
 *           still load)
 *   /model: string attrs head (linear|mlp), activation (gelu|relu|tanh),
 *           loss (bt|normbt); double attrs dist_ema, normbt_eps,
 *           max_weight (0 = none)
 *   /model/<tensor>/weight float32 [out, in], /model/<tensor>/bias float32 [out]
 *   for tensor in fc0, fc1, ..., out (a linear head has only out).
 *   /features (group, optional): how the training features were made
 *           (feature_record.h), under the attribute names of a store's
 *           /features: backbone, backbone_spec, model_hash, dim, pool, bos,
 *           max_tokens, kernel, chat_template (each only when known).
 *
 * The HDF5 helpers these files share with other io modules are in h5util.h. */
#ifndef BTRM_MODELFILE_H
#define BTRM_MODELFILE_H

#include "feature_record.h"
#include "head.h"
#include "loss.h"

typedef struct btrm_model_meta {
    int loss;             /* BTRM_LOSS_* */
    double dist_ema;      /* NormBT's final dbar (mean training distance under bt) */
    double normbt_eps;
    double max_weight;    /* 0 = none */
    /* write only: how the features were made, or NULL (nothing recorded) */
    const btrm_feature_record *features;
} btrm_model_meta;

/* A model's record of its loss (lp's center is not recorded) and back
 * (center 0: it does not weigh pairs). */
btrm_model_meta btrm_model_meta_of(const btrm_loss_params *lp, double dist_ema);
btrm_loss_params btrm_model_loss_params(const btrm_model_meta *meta);

/* Serial write by one process, atomic (temporary name + rename; nothing is
 * left behind on failure). Identical inputs give identical bytes. */
int btrm_model_write(const char *path, const btrm_head *head, const float *params,
                     const btrm_model_meta *meta);
/* Serial read: builds *head from the tensors present (fc0..fcK, out) with
 * btrm_head_init and allocates *params (head->n_params floats; caller frees;
 * NULL on failure). Errors (BTRM_EDATA) name the file and dataset. */
int btrm_model_read(const char *path, btrm_head *head, float **params,
                    btrm_model_meta *meta);
/* Serial read of /features: rec->present is 0 when the file records nothing
 * (model-v1, a checkpoint, or a model trained on a store without a record).
 * Errors (BTRM_EDATA) name the file. */
int btrm_model_read_features(const char *path, btrm_feature_record *rec);

#endif
