/* ftmodel.h: an LLM backbone whose representations btrm computes itself
 * while training (model.backbone), frozen or fine-tuned (model.finetune):
 * the base model (llama_model.h's embedder: file, tokenizer, pooling, BOS,
 * truncation), the trainable tensors' layout and work buffers
 * (llama_train.h), and the forward and backward of batches of token
 * sequences. model layer: no MPI, no HDF5; the trainer (run/train.c) decides
 * which sequences a rank runs, and where their parameters live (a slice of
 * its flat vector).
 *
 * type none runs the frozen forward (btrm_llama_forward); lora and top_k run
 * btrm_llama_train_forward with the parameters given, which at the initial
 * parameters of LoRA (B = 0) gives bitwise the frozen forward's rows: both
 * run the same batches (max_seqs sequences in the order given), so a model
 * scores the same whichever way its representations were made. */
#ifndef BTRM_FTMODEL_H
#define BTRM_FTMODEL_H

#include "config.h"
#include "llama_model.h"
#include "llama_train.h"
#include "modelfile.h"

#include <stddef.h>
#include <stdint.h>

typedef struct btrm_ftmodel {
    btrm_llama_embedder e;         /* the base model and its options */
    char spec[2 * BTRM_PATH_MAX];  /* the backbone spec as opened (config options in) */
    int format;                    /* BTRM_LLAMA_GGUF | BTRM_LLAMA_LLAMA2C */
    int type;                      /* BTRM_FT_* */
    btrm_llama_train lt;           /* the trainable tensors (type != none) */
    btrm_llama_train_ws ws;        /* after btrm_ftmodel_ws_init (type != none) */
    btrm_llama_ws frozen;          /* after btrm_ftmodel_ws_init (type none) */
    int max_seqs;                  /* sequences per forward (ws) */
    int32_t *ids;                  /* [ws.max_tokens] one forward's tokens */
    int *lens;                     /* [max_seqs] */
    int *rows;                     /* [max_seqs] the last forward: row of each sequence
                                    * that ran (empty ones do not) */
    int n_run;
    float *dpooled;                /* [max_seqs, dim] the backward's rows that ran */
    char tok_hash[33];             /* btrm_tok_hash of the tokenizer */
} btrm_ftmodel;

/* The spec's LLM format: "gguf:..." or "llama2c:...", or BTRM_ECONFIG naming
 * what model.backbone accepts. *args points after the colon. */
int btrm_ftmodel_format(const char *spec, int *format, const char **args);

/* Opens the backbone of spec "gguf:PATH[,opt=...]" | "llama2c:PATH[,...]"
 * with cfg's embed.* keys and run.threads under the spec's own options,
 * and, unless ft is NULL or ft->type is none, lays out its trainable
 * tensors (btrm_llama_train_init: the architecture, the targets, the rank
 * and the layers are checked there, with BTRM_ECONFIG naming the key).
 * Errors leave f closed. */
int btrm_ftmodel_open(btrm_ftmodel *f, const char *spec, const btrm_config *cfg,
                      const btrm_llama_train_spec *ft);
void btrm_ftmodel_close(btrm_ftmodel *f); /* zeroed or NULL: no-op */

/* The finetune spec of cfg's model.finetune.* keys. */
btrm_llama_train_spec btrm_ftmodel_spec_of(const btrm_config *cfg);

/* Work buffers for forwards of up to max_seqs sequences of up to the
 * model's max_tokens each (recompute, precision: see
 * btrm_llama_train_ws_init; type none: the frozen forward's, in the
 * embedder's kernel). */
int btrm_ftmodel_ws_init(btrm_ftmodel *f, int max_seqs, int recompute, int precision);

/* Trainable floats (0 for none) and their initial values (from seed). */
size_t btrm_ftmodel_n_params(const btrm_ftmodel *f);
void btrm_ftmodel_init_params(const btrm_ftmodel *f, float *params, uint64_t seed);

int btrm_ftmodel_dim(const btrm_ftmodel *f);
int btrm_ftmodel_max_tokens(const btrm_ftmodel *f); /* the resolved truncation */
int btrm_ftmodel_pool(const btrm_ftmodel *f);
int btrm_ftmodel_bos(const btrm_ftmodel *f);        /* 1 when a BOS token is prepended */
const char *btrm_ftmodel_hash(btrm_ftmodel *f);     /* the base file's XXH3-128 */

/* The token ids of text (BOS, left truncation: the embedder's). */
int btrm_ftmodel_tokenize(const btrm_ftmodel *f, const char *text, int32_t **ids, int *n_ids);

/* One forward of n <= max_seqs sequences (ids[i], lens[i]) with the
 * trainable parameters params: pooled [n, dim]; keeps what the backward
 * needs (type != none). 0, BTRM_EDATA (a token id or length out of range),
 * or the GEMM's error. */
int btrm_ftmodel_forward(btrm_ftmodel *f, const float *params, const int32_t *const *ids,
                         const int *lens, int n, float *pooled);
/* Adds dL/dparams of the last forward to grads, given dpooled [n, dim]. */
int btrm_ftmodel_backward(btrm_ftmodel *f, const float *params, const float *dpooled,
                          float *grads);

/* Representations of any number of sequences (evaluation): forwards of
 * BTRM_FTMODEL_ENCODE_SEQS sequences at a time (max_seqs when fewer), in
 * order, so that evaluation inside `btrm train` and `btrm eval` or `score`
 * run the same batches. out [n, dim]. */
#define BTRM_FTMODEL_ENCODE_SEQS 16
int btrm_ftmodel_encode(btrm_ftmodel *f, const float *params, const int32_t *const *ids,
                        const int *lens, size_t n, float *out);

/* Serial: the backbone of a model file (its /backbone, read into *ref
 * through io/modelfile.h; `btrm eval`, `score` and `serve` use it) opened
 * again from the recorded spec, checked against the recorded content hashes
 * of the base file and its tokenizer (BTRM_EDATA when the file at that path
 * changed), with work buffers for max_seqs sequences and its trained tensors
 * in *params (malloc'ed; NULL for type none). *present = 0 (nothing opened,
 * 0 returned) for a model without a backbone. */
int btrm_ftmodel_open_model(const char *model_path, btrm_model_backbone *ref,
                            btrm_ftmodel *fm, float **params, int max_seqs, int *present);

#endif
