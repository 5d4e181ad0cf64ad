/* llama_model.h: decoder language models from files, and the embedder that
 * turns texts into representations with them (the `gguf` and `llama2c`
 * backbones, `btrm generate`). io layer: it owns the model files; the
 * arithmetic is llama.h's and qgemm.h's, the tokenizers tokenizer.h's. No
 * MPI, no HDF5.
 *
 * Two file formats:
 *  - GGUF v2/v3 (gguf.h) with general.architecture llama, qwen2, qwen3,
 *    gemma2, gemma3 or phi3: hyperparameters from the <arch>.* metadata,
 *    tensors token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v (phi3:
 *    attn_qkv), attn_output, ffn_norm, ffn_gate, ffn_up (phi3: gate and up
 *    fused), ffn_down} and each architecture's extras (docs/backbones.md),
 *    output_norm, output (optional: tied to token_embd), in any type of
 *    quant.h; the tokenizer from tokenizer.ggml.*;
 *  - llama2.c's legacy checkpoint (.bin): 7 int32 (dim, hidden_dim,
 *    n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
 *    vocab_size means an untied classifier at the end), then float32 arrays,
 *    with its tokenizer.bin.
 * Weights stay in the read-only mapping of the file (page cache shared by
 * the ranks of a node) unless dequantize is set, which makes float32 copies
 * of every quantised or half-precision matrix once at load. */
#ifndef BTRM_LLAMA_MODEL_H
#define BTRM_LLAMA_MODEL_H

#include "config.h"
#include "llama.h"
#include "tokenizer.h"

#include <stddef.h>
#include <stdint.h>

enum btrm_llama_format { BTRM_LLAMA_GGUF = 0, BTRM_LLAMA_LLAMA2C = 1 };

typedef struct btrm_gguf btrm_gguf;

typedef struct btrm_llama_model {
    int format;                     /* BTRM_LLAMA_* */
    char path[BTRM_PATH_MAX];
    char tokenizer_path[BTRM_PATH_MAX]; /* llama2c: the tokenizer.bin used */
    char name[BTRM_NAME_MAX];       /* general.name, else the file's base name */
    char arch[32];                  /* general.architecture ("llama" for llama2c) */
    char weight_types[96];          /* "F32", "Q4_K+Q6_K+F32", ... as stored */
    btrm_llama_hparams hp;
    btrm_llama_weights w;
    btrm_tokenizer *tok;
    int add_bos;                    /* the file's tokenizer.ggml.add_bos_token (or its
                                     * tokenizer's default): embed.bos auto */
    int dequantized;                /* matrices converted at load (to float32, or to
                                     * bf16 by btrm_llama_model_to_bf16) */
    size_t mapped_bytes;            /* the file, mapped */
    size_t owned_bytes;             /* float32 copies made at load */
    /* private */
    btrm_gguf *gguf;
    unsigned char *used;            /* [n_tensors]: read by the forward */
    void *map;
    size_t map_size;
    void **owned;
    int n_owned, cap_owned;
    char hash[33];                  /* XXH3-128 of the file, hex, computed lazily */
} btrm_llama_model;

/* Opens path as format (tokenizer_path: llama2c only, "" or NULL = the
 * model's directory's tokenizer.bin, else tok<vocab>.bin there, llama2.c's
 * naming). Errors (BTRM_EIO cannot read, BTRM_EDATA bad file, with the file,
 * the tensor and its type in the message) leave *m NULL. */
int btrm_llama_model_open(btrm_llama_model **m, int format, const char *path,
                          const char *tokenizer_path, int dequantize);
void btrm_llama_model_close(btrm_llama_model *m); /* NULL: no-op */
/* embed.precision bf16: each block matrix (q, k, v, o, gate, down, up) stored
 * as F32 or F16, and with quantized_too also every quantised one, replaced by
 * an owned bf16 copy (btrm_quant_dequant's bf16 output: rounded to nearest
 * even from its exact float32 value; owned_bytes grows); BF16 matrices stay
 * as mapped. The token embedding and the classifier keep their types. */
int btrm_llama_model_to_bf16(btrm_llama_model *m, int quantized_too);
/* "llama, qwen2, ..." the architectures btrm runs. */
void btrm_llama_arch_names(char *out, size_t size);
/* The file's content hash, XXH3-128 as 32 lowercase hex digits (the
 * canonical big-endian form xxhsum prints). */
const char *btrm_llama_model_hash(btrm_llama_model *m);
/* Whether texts start with BOS under the option bos (-1 auto: the file's
 * add_bos_token; 0; 1): 1 when wanted and the tokenizer has one. */
int btrm_llama_model_bos(const btrm_llama_model *m, int bos);

/* ------------------------------------------------------------------------ */
/* Options: the embed.* config keys, and the backbone argument string
 * "PATH[,key=value...]" whose keys override them: pool=last|mean,
 * max_tokens=N (0, or more than the model's context length: that length),
 * bos=auto|0|1 (auto: as the file says), max_batch_tokens=N,
 * dequantize=0|1, kernel=auto|dequant|int8, threads=N (BLAS and oneDNN
 * threads), precision=fp32|bf16 (embed.precision), tokenizer=PATH (llama2c). */

typedef struct btrm_llama_opts {
    char path[BTRM_PATH_MAX];
    char tokenizer[BTRM_PATH_MAX];
    int pool;
    int max_tokens;
    int bos;               /* -1: auto (the file's add_bos_token), 0, 1 */
    int max_batch_tokens;
    int dequantize;
    int kernel;            /* BTRM_KERNEL_* (qgemm.h) */
    int threads;
    int precision;         /* BTRM_PREC_FP32 | BTRM_PREC_BF16 (gemm.h) */
} btrm_llama_opts;

/* The defaults of the embed.* keys (config.c's table). */
void btrm_llama_opts_defaults(btrm_llama_opts *o);
/* The same from a loaded config (embed.*, run.threads). */
void btrm_llama_opts_from_config(btrm_llama_opts *o, const btrm_config *cfg);
/* Parses "PATH[,key=value...]" over o. BTRM_EUSAGE naming the bad part. */
int btrm_llama_opts_parse(btrm_llama_opts *o, const char *args);
/* The tokens kept per text under o for a model of hp: o->max_tokens, or the
 * context length when it is 0 or larger. */
int btrm_llama_opts_max_tokens(const btrm_llama_opts *o, const btrm_llama_hparams *hp);
/* "pool=last,max_tokens=512,..." of the config's keys (for a backbone spec). */
int btrm_llama_opts_config_args(const btrm_config *cfg, char *out, size_t size);

/* ------------------------------------------------------------------------ */
/* The embedder: texts -> token ids (BOS, left truncation) -> batched
 * forward -> pooled representation [dim]. Work buffers are allocated once at
 * open, for max(max_batch_tokens, max_tokens) tokens. */
typedef struct btrm_llama_embedder {
    btrm_llama_model *model;
    btrm_llama_opts opts;
    int max_tokens;        /* resolved: the longest sequence kept */
    btrm_llama_ws ws;
    /* per batch: sequences in forward order, their outputs */
    int max_seqs;
    int32_t *ids;          /* [ws.max_tokens] */
    int *lens;             /* [max_seqs] */
    size_t *slot;          /* [max_seqs]: the caller's index of each */
    float *out_last, *out_mean; /* [max_seqs, dim] */
    double tokens, seconds; /* totals, for throughput */
} btrm_llama_embedder;

/* format + "PATH[,key=value...]" over the defaults in *base (NULL: the
 * built-in defaults). */
int btrm_llama_embedder_open(btrm_llama_embedder *e, int format, const char *args,
                             const btrm_llama_opts *base);
void btrm_llama_embedder_close(btrm_llama_embedder *e);
/* *ids (malloc'ed) = the tokens of text as they enter the model: BOS when
 * btrm_llama_embedder_bos() and the tokenizer has one, then the text's
 * tokens (control tokens written in the text, such as <|im_start|>, are
 * recognised), truncated from the left to max_tokens (BOS kept). */
int btrm_llama_embedder_bos(const btrm_llama_embedder *e);
int btrm_llama_embedder_tokenize(const btrm_llama_embedder *e, const char *text,
                                 int32_t **ids, int *n_ids);
/* Representations of n token sequences (ids[i], lens[i]; a sequence with no
 * tokens gives the zero vector): sequences are sorted by length and run in
 * batches of at most ws.max_tokens tokens. last and/or mean [n, dim] (either
 * may be NULL). */
int btrm_llama_embedder_run(btrm_llama_embedder *e, const int32_t *const *ids,
                            const int *lens, size_t n, float *last, float *mean);

#endif
