/* modelfile.h: the model file (format "model-v3", docs/format.md). io layer.
 *
 *   attribute /btrm_format = "model-v3" (model-v1 files, without /features,
 *           and model-v2 files, without /backbone, still load)
 *   /model: string attrs head (linear|mlp), activation (gelu|relu|tanh),
 *           loss (bt|normbt); double attrs dist_ema, normbt_eps,
 *           max_weight (0 = none)
 *   /model/<tensor>/weight float32 [out, in], /model/<tensor>/bias float32 [out]
 *   for tensor in fc0, fc1, ..., out (a linear head has only out).
 *   /features (group, optional): how the training features were made
 *           (feature_record.h), under the attribute names of a store's
 *           /features: backbone, backbone_spec, model_hash, dim, pool, bos,
 *           max_tokens, kernel, chat_template (each only when known).
 *   /backbone (model-v3, only for a model trained with model.backbone): the
 *           LLM that computes the representations, referenced by path and content
 *           hash, never copied (attributes: btrm_model_backbone's fields),
 *           and its trained tensors /backbone/<name> float32 [rows, cols]
 *           (llama_train.h's names: LoRA adapters, or top_k blocks).
 *
 * The HDF5 helpers these files share with other io modules are in h5util.h. */
#ifndef BTRM_MODELFILE_H
#define BTRM_MODELFILE_H

#include "feature_record.h"
#include "head.h"
#include "llama_train.h"
#include "loss.h"
#include "types.h"

#include <stddef.h>

/* The LLM backbone of a model: how to recompute its representations. */
typedef struct btrm_model_backbone {
    char spec[2 * BTRM_PATH_MAX];   /* the backbone spec with every option ("gguf:M.gguf,
                                     * pool=last,max_tokens=512,...") */
    char model_file[BTRM_PATH_MAX]; /* the base model as opened */
    char model_hash[33];            /* its XXH3-128, 32 hex digits */
    char tokenizer_hash[33];        /* btrm_tok_hash of its tokenizer */
    char architecture[32];
    int pool;                       /* BTRM_POOL_* */
    int bos;                        /* a BOS token is prepended (resolved) */
    int max_tokens;                 /* tokens kept per text (resolved) */
    int dim;                        /* the representation's width */
    btrm_llama_train_spec ft;       /* what trained (ft.type BTRM_FT_NONE: frozen) */
    /* the trained tensors in the flat parameter vector: lt's views at
     * offset (write); NULL for type none or before the base is opened */
    const btrm_llama_train *lt;
    size_t offset;
} btrm_model_backbone;

typedef struct btrm_model_meta {
    int loss;             /* BTRM_LOSS_* */
    double dist_ema;      /* NormBT's final dbar (mean training distance under bt) */
    double normbt_eps;
    double max_weight;    /* 0 = none */
    const btrm_model_backbone *backbone; /* write: the LLM backbone, or NULL (features) */
    /* write only: how the features were made, or NULL (nothing recorded) */
    const btrm_feature_record *features;
} btrm_model_meta;

/* A model's record of its loss (lp's center is not recorded) and back
 * (center 0: it does not weigh pairs). */
btrm_model_meta btrm_model_meta_of(const btrm_loss_params *lp, double dist_ema);
btrm_loss_params btrm_model_loss_params(const btrm_model_meta *meta);

/* Serial write by one process, atomic (temporary name + rename; nothing is
 * left behind on failure). Identical inputs give identical bytes. With
 * meta->backbone, also /backbone and its tensors (from params at its
 * offset). */
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

/* Serial: the /backbone attributes of a model file or checkpoint into *bb
 * (lt NULL); *present = 0 (and 0 returned) for a model without one. */
int btrm_model_read_backbone(const char *path, btrm_model_backbone *bb, int *present);
/* Serial: the trained tensors of /backbone into params at offset, laid out
 * as lt (the base model opened again and btrm_llama_train_init'ed from
 * bb->ft). A missing tensor or another shape is BTRM_EDATA. */
/* bb as JSON (a new reference, NULL when out of memory): spec, base_model
 * (the path), base_model_hash, hash_function, tokenizer_hash,
 * architecture, pool, bos, max_tokens, dim, finetune (none|lora|top_k);
 * layers for lora and top_k (0: every block); rank, alpha and targets
 * (["q", ...]) for lora. For `btrm serve`'s /info
 * and `btrm export`'s metadata. */
json_t *btrm_model_backbone_to_json(const btrm_model_backbone *bb);
int btrm_model_read_backbone_tensors(const char *path, const btrm_llama_train *lt,
                                     float *params, size_t offset);

#endif
