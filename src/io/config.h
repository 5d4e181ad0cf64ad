/* config.h: the typed run configuration and its YAML loader.
 *
 * One key table (config.c) describes every key: dotted name, type, default,
 * range and doc string. The YAML loader, --set overrides, `btrm config`
 * (emit) and docs/config.md are all driven by it. This module uses libyaml
 * only: no MPI, no HDF5. */
#ifndef BTRM_CONFIG_H
#define BTRM_CONFIG_H

#include "loss.h"
#include "types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BTRM_MAX_EVAL 16     /* files in data.eval */
#define BTRM_FT_MAX_TARGETS 7 /* model.finetune.targets: q, k, v, o, gate, up, down */

/* embed.bos: follow the model file (tokenizer.ggml.add_bos_token), or force. */
enum { BTRM_BOS_AUTO = 0, BTRM_BOS_OFF = 1, BTRM_BOS_ON = 2 };

typedef struct btrm_config {
    struct {
        char name[BTRM_NAME_MAX];    /* run.name, default "btrm" */
        char out_dir[BTRM_PATH_MAX]; /* run.out_dir, default "runs/<name>" ("" = that) */
        uint64_t seed;               /* run.seed, default 1 */
        int threads;                 /* run.threads: BLAS and oneDNN threads per rank, default 1 */
    } run;
    struct {
        char train[BTRM_PATH_MAX];            /* data.train (required by train) */
        char eval[BTRM_MAX_EVAL][BTRM_PATH_MAX]; /* data.eval: list of pair stores */
        int n_eval;
    } data;
    struct {
        int head;                      /* model.head: linear | mlp */
        int hidden[BTRM_MAX_HIDDEN];   /* model.hidden: [H1, H2, ...] (mlp) */
        int n_hidden;
        int activation;                /* model.activation: gelu | relu | tanh */
        char backbone[BTRM_PATH_MAX];  /* model.backbone: "" (the store's /features), or
                                        * gguf:PATH | llama2c:PATH[,tokenizer=PATH] */
        struct {
            int type;                  /* model.finetune.type: none | lora | top_k */
            int rank;                  /* .rank: LoRA r, default 8 */
            double alpha;              /* .alpha: LoRA alpha, default 16 */
            char targets[BTRM_FT_MAX_TARGETS][8]; /* .targets: q k v o gate up down */
            int n_targets;
            int layers;                /* .layers: the top k blocks; 0 = all */
        } finetune;
    } model;
    struct {
        int type;              /* loss.type: bt | normbt */
        double normbt_ema;     /* loss.normbt.ema: beta in [0,1), default 0.9 */
        double normbt_eps;     /* loss.normbt.eps: > 0, default 1e-6 */
        double normbt_max_weight; /* loss.normbt.max_weight: 0 = none (default) */
        int margin;            /* loss.margin: none | data */
        double center_rewards; /* loss.center_rewards: c >= 0, default 0 */
    } loss;
    struct {
        int type;            /* optim.type: adamw | sgd | newton */
        double lr;           /* optim.lr, default 1e-3 */
        double betas[2];     /* optim.betas, default [0.9, 0.999] */
        double eps;          /* optim.eps, default 1e-8 */
        double weight_decay; /* optim.weight_decay, default 0.01 (adamw) */
        double momentum;     /* optim.momentum (sgd), default 0 */
        int schedule;        /* optim.schedule: constant | linear | cosine */
        int64_t warmup_steps;/* optim.warmup_steps, default 0 */
        double grad_clip;    /* optim.grad_clip: max global L2 norm, 0 = off */
        double tol;          /* optim.tol (newton): stop at ||g|| <= tol ||g_0||, default 1e-8 */
        int64_t max_iter;    /* optim.max_iter (newton): Newton steps at most, default 50 */
    } optim;
    struct {
        int64_t global_batch; /* train.global_batch: pairs per step; 0 = "all" */
        int64_t epochs;       /* train.epochs, default 1 */
        int64_t steps;        /* train.steps: -1 = unset; wins over epochs when set */
        int64_t log_every;    /* train.log_every, default 10 */
        int64_t eval_every;   /* train.eval_every, 0 = only at the end */
        int64_t micro_batch;  /* train.micro_batch: pairs per backbone forward, 0 = all */
        bool recompute;       /* train.recompute: recompute block activations in backward */
        int precision;        /* train.precision: fp32 | bf16 (BTRM_PREC_*, gemm.h) */
    } train;
    struct {
        char dir[BTRM_PATH_MAX]; /* checkpoint.dir, "" = <out_dir>/checkpoints */
        int64_t every;           /* checkpoint.every: steps, 0 = only at the end */
        int keep;                /* checkpoint.keep: newest kept, default 3 */
        bool save_initial;       /* checkpoint.save_initial, default false */
    } checkpoint;
    struct {
        bool shard_optimizer;    /* dist.shard_optimizer, default true */
    } dist;
    struct {                     /* LLM backbones (gguf:, llama2c:) of embed/score */
        int pool;                /* embed.pool: last | mean (BTRM_POOL_*) */
        int max_tokens;          /* embed.max_tokens: 0 = the model's context, default 512 */
        int bos;                 /* embed.bos: BTRM_BOS_*, default auto (the file's) */
        int max_batch_tokens;    /* embed.max_batch_tokens: tokens per forward, default 4096 */
        bool dequantize;         /* embed.dequantize: float32 copies at load, default false */
        int kernel;              /* embed.kernel: auto | dequant | int8 (BTRM_KERNEL_*) */
        int precision;           /* embed.precision: fp32 | bf16 (BTRM_PREC_*, gemm.h) */
    } embed;
} btrm_config;

/* Fills every key with its default (the whole struct is zeroed first, so two
 * configs with the same values are memcmp-equal). */
void btrm_config_defaults(btrm_config *cfg);

/* Fills cfg with the defaults, loads path (NULL: none) following `base:`
 * chains (a base path is relative to the file that names it; data and output
 * paths are kept as written, relative to the working directory), applies
 * n_sets overrides "a.b.c=value" in order, then checks cross-key constraints
 * (an mlp head needs model.hidden). Returns 0, or BTRM_ECONFIG with a message
 * "FILE:LINE:COL: ..." (or "--set 'a.b=c': ...", BTRM_ENOMEM, BTRM_EIO); cfg is
 * then partly loaded. Does not require data.train: see btrm_config_validate. */
int btrm_config_load(btrm_config *cfg, const char *path, const char *const *sets,
                     int n_sets);
/* Applies one --set override ("optim.lr=3e-4", "model.hidden=[1024, 256]",
 * "loss={type: normbt}"); the value is YAML. On error cfg is unchanged. No
 * cross-key check: call btrm_config_validate when done. */
int btrm_config_set(btrm_config *cfg, const char *assignment);
/* Everything a training run needs: every key in its range, cross-key
 * constraints, and the required keys (data.train). */
int btrm_config_validate(const btrm_config *cfg);

/* Writes the fully resolved config as YAML (every key; strings double-quoted,
 * lists in flow style, doubles in shortest round-trip form) that loads back to
 * a memcmp-equal config. */
int btrm_config_emit(const btrm_config *cfg, FILE *out);
/* The same into a malloc'ed string (caller frees). */
int btrm_config_emit_string(const btrm_config *cfg, char **text);
/* Writes docs/config.md's key reference (markdown tables) from the key table
 * (`btrm config --doc-markdown`). */
void btrm_config_doc_markdown(FILE *out);

/* Name of an enum value of a key, for logs and outputs ("normbt", "mlp");
 * "unknown" for a key that is not an enum or a value out of range. */
const char *btrm_config_enum_name(const char *key, int value);

/* The run's output directory: run.out_dir, or "runs/<run.name>" when empty.
 * BTRM_ECONFIG when it does not fit in size bytes. */
int btrm_config_out_dir(const btrm_config *cfg, char *buf, size_t size);
/* checkpoint.dir, or "checkpoints" when empty, under the output directory
 * (an absolute checkpoint.dir stands alone). */
int btrm_config_checkpoint_dir(const btrm_config *cfg, char *buf, size_t size);

/* The loss parameters of cfg's loss.* keys: the one conversion from a config
 * to what the math layer's losses take. cfg NULL: the key table's defaults. */
btrm_loss_params btrm_config_loss_params(const btrm_config *cfg);

#endif
