/* reward.h: the rewards of texts: a backbone's features, then a trained
 * head, what `btrm score` prints and `btrm serve` answers. Model layer: no
 * MPI, no HDF5 of its own (the model file is read through io/modelfile.h).
 *
 * The head is applied one row at a time, so that a text's reward never
 * depends on which other texts share its batch (a BLAS call on many rows
 * rounds a row differently from a call on one): with a backbone whose
 * features are per text (hash), the same text gives the same bits in
 * `btrm score`, in any batch of `btrm serve`, and under any load.
 *
 * An LLM backbone packs the texts of one call into shared forward passes
 * (faster), and then a text's representation changes with its batch by
 * float32 rounding (about 1e-6 relative on stories260K). With `invariant`
 * set, each text goes through the backbone on its own: its reward is the
 * same bits whatever else is scored with it.
 *
 * A model trained with its own backbone (model.backbone: a fine-tuned or
 * frozen LLM whose file has a /backbone group) computes its representations
 * through ftmodel.h, the base model opened from the recorded spec with the
 * trained LoRA adapters or top-k weights applied (the forward of `btrm
 * eval`), in forwards of BTRM_FTMODEL_ENCODE_SEQS texts in call order. */
#ifndef BTRM_REWARD_H
#define BTRM_REWARD_H

#include "backbone.h"
#include "feature_record.h"
#include "ftmodel.h"
#include "head.h"
#include "modelfile.h"

#include <stddef.h>

typedef struct btrm_reward {
    btrm_backbone_handle bb;
    btrm_head head;
    btrm_model_meta meta;
    float *params;
    btrm_head_ws ws;      /* one row */
    float *features;      /* [max_texts, dim] */
    int max_texts;
    int invariant;        /* one backbone call per text (set after open) */
    btrm_feature_record record; /* how the model's features were made (its file) */
    /* own: the model's own backbone (its /backbone); bb is then unused */
    int own;
    btrm_model_backbone ref;  /* what /backbone records (base path, hash, finetune) */
    btrm_ftmodel fm;
    float *fm_params;         /* the trained tensors (NULL: frozen) */
    int32_t **ids;            /* [max_texts] one call's token ids */
    int *lens;                /* [max_texts] */
} btrm_reward;

/* Reads the model file and opens its backbone: a model with its own
 * backbone (/backbone) opens that one (a spec given is refused, BTRM_EUSAGE;
 * a base file whose content hash is not the recorded one is BTRM_EDATA
 * naming both hashes); otherwise spec NULL means the one the
 * model records (btrm_backbone_spec_for); a spec given gets the recorded
 * settings (pool, max_tokens, bos, kernel, precision) unless it sets them itself, and
 * is refused (BTRM_EUSAGE, naming both) when its features are not made the
 * way the model's were. cfg (may be NULL): the embed.* options below those.
 * The hash backbone takes the head's input width. max_texts: the most texts
 * one btrm_reward_texts call may take. 0, or a negative code with the
 * message naming the model or the backbone; r is zeroed on failure. */
int btrm_reward_open(btrm_reward *r, const char *model_path, const char *spec,
                     const struct btrm_config *cfg, int max_texts);
/* rewards[n] of texts[0..n), n <= max_texts. Errors (BTRM_EDATA) are the
 * backbone's, naming the batch-local text. */
int btrm_reward_texts(btrm_reward *r, const char *const *texts, size_t n, float *rewards);
/* The backbone's cost of each text (its token count) where it has one; the
 * UTF-8 byte count / 4 + 1 otherwise (the hash backbone's work grows with
 * the bytes). */
int btrm_reward_cost(btrm_reward *r, const char *const *texts, size_t n, int64_t *cost);
void btrm_reward_close(btrm_reward *r); /* zeroed or NULL: no-op */
/* The backbone spec the rewards come from (the recorded one for own). */
const char *btrm_reward_spec(const btrm_reward *r);

#endif
