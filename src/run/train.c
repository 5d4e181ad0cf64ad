/* train.c: the data-parallel training loop.
 *
 * Step t (0-based) of the run belongs to epoch e = t / steps_per_epoch and is
 * global batch k = t % steps_per_epoch of that epoch: the contiguous slice
 * [k*B, min((k+1)*B, N)) of the epoch's permutation of the N pairs, drawn from
 * (run.seed, e) by every rank alike (no communication). Rank p computes on its
 * contiguous sub-slice (btrm_comm_block). Per step:
 *   1. gather the sub-slice's chosen and rejected feature rows, forward;
 *   2. d_i = ||h_c - h_r||; all-reduce sum d_i: mu_t = sum / B_t, then
 *      NormBT's dbar_t (every rank alike);
 *   3. loss and dL/dr with scale 1/B_t; backward into the local gradient;
 *   4. one collective over the fused float buffer [loss sums | gradient], so
 *      the gradient is the mean over the global batch: an all-reduce
 *      (dist.shard_optimizer: false), or a reduce-scatter that leaves rank p
 *      the sum of its contiguous slice [lo_p, hi_p) of the flat vector (rank 0's
 *      block also holds the loss sums);
 *   5. global-norm clipping, learning rate from the schedule, optimizer update:
 *      of the whole replicated vector, or of the rank's slice with the AdamW
 *      moments of that slice only (ZeRO stage 1), then an all-gather of the
 *      parameters.
 * The first collective of a step also carries the stop flag set by SIGUSR1 or
 * SIGTERM, so every rank stops at the same step boundary, checkpoints and
 * exits with BTRM_EXIT_REQUEUE.
 *
 * With model.backbone the representations come from an LLM run on the
 * store's texts (model/ftmodel.h, run/textrep.h): frozen (finetune.type
 * none), they are computed once for every row and stand in for /features;
 * trained (lora, top_k), step 1 runs the backbone's forward on micro-batches
 * of train.micro_batch pairs, and step 3 its backward from the head's input
 * gradient, accumulating into the same flat gradient [head | backbone]. NormBT
 * needs every pair's distance before any loss: with more than one
 * micro-batch on a rank the forward runs twice (distances first, then again
 * for the backward); BT and single micro-batches run it once. */
#include "train.h"

#include "ckpt.h"
#include "compute.h"
#include "dtype.h"
#include "error.h"
#include "eval.h"
#include "fault.h"
#include "feature_record.h"
#include "fileutil.h"
#include "gemm.h"
#include "head.h"
#include "log.h"
#include "loss.h"
#include "modelfile.h"
#include "newton.h"
#include "optim.h"
#include "pairs.h"
#include "rng.h"
#include "rundir.h"
#include "stopsig.h"
#include "textrep.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STAT_LOSS, STAT_CORRECT, STAT_WEIGHT, STAT_MARGIN, STAT_BT_LOSS, STAT_NEAR_FLOOR,
       STAT_TOKENS, STAT_GFLOP, N_STATS };

/* Metrics accumulated between two log lines; the sums before t0 are saved
 * in checkpoints (BTRM_CKPT_WINDOW doubles) so a resumed run logs the same
 * lines. */
typedef struct window {
    double steps, pairs, loss, acc, dist, weight, weight_max, margin, bt_loss, near_floor;
    double t0;
} window;
_Static_assert(offsetof(window, t0) == BTRM_CKPT_WINDOW * sizeof(double),
               "the checkpointed window is the doubles before t0");


typedef struct trainer {
    btrm_stopsig stopsig;  /* SIGUSR1/SIGTERM, polled once a step */
    const btrm_config *cfg;
    const btrm_comm *c;
    /* the pair stores and the schedule of global batches */
    struct {
        btrm_pairs train;
        btrm_pairs eval[BTRM_MAX_EVAL];
        int n_eval;
        int64_t n_pairs, batch, steps_per_epoch, total_steps;
        int64_t *perm, perm_epoch; /* the permutation of epoch perm_epoch */
        btrm_feature_record *features; /* rank 0: how the training store's features were
                                        * made, what final.h5 records */
    } data;
    /* the model: a head over a flat parameter vector [head | backbone], and its
     * loss */
    btrm_head head;
    float *params;
    size_t n_params;           /* the head's and the backbone's trainable floats */
    btrm_loss_params lp;
    /* model.backbone: the LLM, the token ids of the stores' texts, and (type
     * none) the representations computed once */
    struct {
        int on, trains;        /* model.backbone set; finetune.type lora | top_k */
        btrm_ftmodel fm;
        btrm_model_backbone ref; /* the model file's /backbone */
        btrm_token_ids tokens[BTRM_MAX_EVAL + 1]; /* [0] data.train, [1 + e] data.eval[e] */
        float *features[BTRM_MAX_EVAL + 1];       /* the same stores' representations */
        int micro;             /* pairs per forward */
        const int32_t **ids;   /* [2 micro] one forward's sequences */
        int *lens;
        float *dx;             /* [2 micro, dim] dL/dh from the head */
        double win_tokens, win_gflop; /* since the last metrics line (not checkpointed:
                                       * throughput, a timing field) */
        double n_tokens, gflop, seconds; /* the run's, for the throughput line */
    } bb;
    /* one step's buffers, sized for the largest local batch */
    struct {
        btrm_head_ws ws;
        float *x, *dist, *g_diff, *g_sum, *margin;
        int x_dtype;           /* of x: bf16 when x is only a bf16 GEMM input (mlp, bf16)
                                * or a linear head reads bf16 features as stored */
        uint16_t *params_bf16; /* train.precision bf16, unsharded: the parameters rounded
                                * to bf16, written by the optimizer's pass (head.h) */
    } work;
    /* the gradient exchange: this rank's slice [lo, hi) of the flat vector */
    struct {
        int shard;             /* dist.shard_optimizer on more than one rank */
        int64_t lo, hi;
        int *counts, *displs;  /* every rank's slice (all-gather) */
        int *rs_counts;        /* reduce-scatter blocks (rank 0's holds the sums) */
        float *fused, *grad;   /* fused = [N_STATS loss sums | n_params gradient] */
        float *shard_grad;     /* sharded: [N_STATS (rank 0) | hi - lo] */
        btrm_comm_reducer reducer; /* 2+ ranks: [loss sums | gradient] reduced in regions
                                    * as backward finishes them (region 0: the loss sums) */
    } dp;
    /* the optimizer (NULL ops for optim.type newton) and its state buffers,
     * [hi - lo] sharded, [n_params] otherwise */
    struct {
        const btrm_optim_ops *ops;
        btrm_optim_hparams hp; /* optim.*; lr is set per step from the schedule */
        float *state[BTRM_OPTIM_MAX_STATE];
    } optim;
    /* progress */
    int64_t step;              /* completed steps */
    int64_t first_step;        /* the step this process started from (resume) */
    double dbar;
    double last_grad_norm, last_lr;
    window win;
    /* outputs */
    btrm_rundir out;
    char ckpt_dir[BTRM_PATH_MAX];
    int64_t last_ckpt_step;    /* -1 before the first checkpoint */
} trainer;

/* How the training store's features were made (what final.h5 records), and
 * that every evaluation store's were made the same way. Rank 0. */
static int same_features(const btrm_config *cfg, btrm_feature_record *train)
{
    btrm_feature_record *other = malloc(sizeof *other);
    int rc = other ? btrm_pairs_read_features(cfg->data.train, train)
                   : btrm_error_set(BTRM_ENOMEM, "out of memory");
    for (int e = 0; !rc && e < cfg->data.n_eval; e++) {
        rc = btrm_pairs_read_features(cfg->data.eval[e], other);
        if (!rc)
            rc = btrm_feature_record_compare(train, cfg->data.train, other, cfg->data.eval[e],
                                             1);
    }
    free(other);
    return rc;
}

static int open_data(trainer *tr)
{
    const btrm_config *cfg = tr->cfg;
    unsigned flags = BTRM_PAIRS_FEATURES | BTRM_PAIRS_REQUIRE_FEATURES;
    if (tr->bb.on) /* the representations come from the texts */
        flags = 0;
    int rc = btrm_pairs_open(&tr->data.train, cfg->data.train, tr->c, flags);
    if (rc)
        return rc;
    if (tr->data.train.n_pairs == 0)
        return btrm_error_set(BTRM_EDATA, "%s: no pairs to train on", cfg->data.train);
    if (cfg->loss.margin == BTRM_MARGIN_DATA && !tr->data.train.margin)
        return btrm_error_set(BTRM_EDATA, "%s: loss.margin is 'data' but the file has no "
                              "/pairs/margin", cfg->data.train);
    for (int e = 0; e < cfg->data.n_eval; e++) {
        rc = btrm_pairs_open(&tr->data.eval[e], cfg->data.eval[e], tr->c, flags);
        if (rc)
            return rc;
        tr->data.n_eval = e + 1;
        if (!tr->bb.on && tr->data.eval[e].dim != tr->data.train.dim)
            return btrm_error_set(BTRM_EDATA, "%s: /features has dim %d but the training "
                                  "file %s has dim %d", cfg->data.eval[e], tr->data.eval[e].dim,
                                  cfg->data.train, tr->data.train.dim);
    }
    if (tr->c->rank != 0)
        return 0;
    rc = BTRM_MALLOC(tr->data.features, 1);
    return rc ? rc : same_features(cfg, tr->data.features);
}

/* The stores' representations with the backbone's current parameters:
 * every row of store k (0: data.train, 1 + e: data.eval[e]) into
 * bb.features[k], which stands in for its /features. Collective. */
static int backbone_features(trainer *tr, int k)
{
    btrm_pairs *p = k == 0 ? &tr->data.train : &tr->data.eval[k - 1];
    const float *params = tr->bb.trains ? tr->params + tr->head.n_params : NULL;
    int rc = btrm_textrep_features(&tr->bb.fm, params, &tr->bb.tokens[k], tr->c,
                                   tr->bb.features[k]);
    p->features = tr->bb.features[k];
    p->features_dtype = BTRM_DTYPE_F32;
    p->dim = btrm_ftmodel_dim(&tr->bb.fm);
    return rc;
}

/* model.backbone: opens the LLM on every rank, reads (or makes) the token ids
 * of every store's texts and, for a frozen backbone, computes every row's
 * representation once. Collective; every rank returns the same code. */
static int open_backbone(trainer *tr)
{
    const btrm_config *cfg = tr->cfg;
    const btrm_comm *c = tr->c;
    btrm_llama_train_spec ft = btrm_ftmodel_spec_of(cfg);
    int rc = btrm_comm_agree(c, btrm_ftmodel_open(&tr->bb.fm, cfg->model.backbone, cfg, &ft));
    if (rc)
        return rc;
    btrm_ftmodel *fm = &tr->bb.fm;
    const int dim = btrm_ftmodel_dim(fm);
    btrm_model_backbone *ref = &tr->bb.ref;
    snprintf(ref->spec, sizeof ref->spec, "%s", fm->spec);
    snprintf(ref->model_file, sizeof ref->model_file, "%s", fm->e.opts.path);
    snprintf(ref->model_hash, sizeof ref->model_hash, "%s", btrm_ftmodel_hash(fm));
    snprintf(ref->tokenizer_hash, sizeof ref->tokenizer_hash, "%s", fm->tok_hash);
    snprintf(ref->architecture, sizeof ref->architecture, "%s", fm->e.model->arch);
    ref->pool = btrm_ftmodel_pool(fm);
    ref->bos = btrm_ftmodel_bos(fm);
    ref->max_tokens = btrm_ftmodel_max_tokens(fm);
    ref->dim = dim;
    ref->ft = tr->bb.trains ? ft : (btrm_llama_train_spec){ .type = BTRM_FT_NONE };
    ref->lt = tr->bb.trains ? &fm->lt : NULL;
    btrm_log_info("backbone %s: %s, dim %d, %d blocks, %s; %s (%zu trainable floats)",
                  fm->e.opts.path, fm->e.model->arch, dim, fm->e.model->hp.n_layers,
                  fm->e.model->weight_types,
                  btrm_config_enum_name("model.finetune.type", cfg->model.finetune.type),
                  btrm_ftmodel_n_params(fm));
    if (!tr->bb.trains) /* the frozen forward's batches: those of btrm eval */
        rc = btrm_comm_agree(c, btrm_ftmodel_ws_init(fm, BTRM_FTMODEL_ENCODE_SEQS, 0, 0));
    for (int k = 0; k <= tr->data.n_eval && !rc; k++) {
        const btrm_pairs *p = k == 0 ? &tr->data.train : &tr->data.eval[k - 1];
        rc = btrm_textrep_tokens(p->path, p->n_rows, fm, c, &tr->bb.tokens[k]);
        if (!rc)
            rc = btrm_comm_agree(c, BTRM_MALLOC(tr->bb.features[k],
                                                (size_t)p->n_rows * (size_t)dim));
    }
    /* a frozen backbone: every row once, then training runs as on /features */
    for (int k = 0; k <= tr->data.n_eval && !rc && !tr->bb.trains; k++) {
        double t0 = btrm_comm_wtime();
        rc = backbone_features(tr, k);
        const btrm_pairs *p = k == 0 ? &tr->data.train : &tr->data.eval[k - 1];
        if (!rc)
            btrm_log_info("representations of %s: %lld texts in %.1f s", p->path,
                          (long long)p->n_rows, btrm_comm_wtime() - t0);
    }
    if (!rc && tr->bb.trains) /* head dim: the representations' width */
        tr->data.train.dim = dim;
    return rc;
}

static int initial_params(trainer *tr, const btrm_train_opts *opts);
static int setup_reducer(trainer *tr);

/* The optimizer's state: n floats per buffer, zero before step 1. */
static size_t state_len(const trainer *tr)
{
    return tr->dp.shard ? (size_t)(tr->dp.hi - tr->dp.lo) : tr->n_params;
}

static int init_model(trainer *tr, const btrm_train_opts *opts)
{
    const btrm_config *cfg = tr->cfg;
    int rc = btrm_head_init(&tr->head, cfg->model.head, cfg->model.activation,
                            tr->data.train.dim, cfg->model.hidden,
                            cfg->model.head == BTRM_HEAD_MLP ? cfg->model.n_hidden : 0);
    if (rc)
        return rc;
    tr->n_params = tr->head.n_params + (tr->bb.trains ? btrm_ftmodel_n_params(&tr->bb.fm) : 0);
    tr->bb.ref.offset = tr->head.n_params;
    size_t n = tr->n_params;
    const btrm_comm *c = tr->c;
    tr->dp.shard = cfg->dist.shard_optimizer && c->size > 1;
    if (n + N_STATS > INT32_MAX)
        return btrm_error_set(BTRM_ECONFIG, "the model has %zu parameters; btrm supports "
                              "up to 2^31 - 1", n);
    rc = BTRM_MALLOC(tr->dp.counts, c->size);
    if (!rc)
        rc = BTRM_MALLOC(tr->dp.displs, c->size);
    if (!rc)
        rc = BTRM_MALLOC(tr->dp.rs_counts, c->size);
    if (rc)
        return rc;
    for (int r = 0; r < c->size; r++) {
        int64_t first, count;
        btrm_comm_block((int64_t)n, c->size, r, &first, &count);
        tr->dp.displs[r] = (int)first;
        tr->dp.counts[r] = (int)count;
        tr->dp.rs_counts[r] = (int)count + (r == 0 ? N_STATS : 0);
    }
    tr->dp.lo = tr->dp.displs[c->rank];
    tr->dp.hi = tr->dp.lo + tr->dp.counts[c->rank];
    rc = BTRM_MALLOC(tr->params, n);
    if (!rc)
        rc = BTRM_CALLOC(tr->dp.fused, n + N_STATS);
    if (!rc && tr->dp.shard)
        rc = BTRM_CALLOC(tr->dp.shard_grad, (size_t)(tr->dp.hi - tr->dp.lo) + N_STATS);
    tr->optim.ops = btrm_optim_lookup(cfg->optim.type);
    tr->optim.hp = (btrm_optim_hparams){ .lr = cfg->optim.lr, .beta1 = cfg->optim.betas[0],
                                         .beta2 = cfg->optim.betas[1], .eps = cfg->optim.eps,
                                         .weight_decay = cfg->optim.weight_decay,
                                         .momentum = cfg->optim.momentum };
    for (int k = 0; tr->optim.ops && k < tr->optim.ops->n_state && !rc; k++)
        rc = BTRM_CALLOC(tr->optim.state[k], state_len(tr));
    if (rc)
        return rc;
    tr->dp.grad = tr->dp.fused + N_STATS;
    return initial_params(tr, opts);
}

/* The parameters of step 0: from run.seed, or from --init MODEL.h5. */
static int initial_params(trainer *tr, const btrm_train_opts *opts)
{
    const btrm_config *cfg = tr->cfg;
    size_t n = tr->head.n_params;
    int rc = 0;
    if (tr->bb.trains) /* the adapters or blocks from the seed (LoRA: B = 0) */
        btrm_ftmodel_init_params(&tr->bb.fm, tr->params + n, cfg->run.seed);
    if (!opts->init_model) {
        btrm_head_init_params(&tr->head, tr->params, cfg->run.seed);
        return 0;
    }
    btrm_head given;
    float *given_params = NULL;
    btrm_model_meta meta;
    rc = btrm_model_read(opts->init_model, &given, &given_params, &meta);
    if (rc)
        return rc;
    if (given.n_layers != tr->head.n_layers || given.kind != tr->head.kind ||
        memcmp(given.width, tr->head.width, sizeof given.width) != 0) {
        free(given_params);
        return btrm_error_set(BTRM_EDATA, "--init %s: the model's shape does not match the "
                              "config (model.head, model.hidden and the features' dim %d)",
                              opts->init_model, tr->data.train.dim);
    }
    memcpy(tr->params, given_params, n * sizeof *tr->params);
    free(given_params);
    /* a model with the same trained backbone: its adapters or blocks too */
    btrm_model_backbone got;
    int present = 0;
    if (tr->bb.trains && !(rc = btrm_model_read_backbone(opts->init_model, &got, &present)) &&
        present && got.ft.type == tr->bb.ref.ft.type) {
        if (strcmp(got.model_hash, tr->bb.ref.model_hash) ||
            memcmp(&got.ft, &tr->bb.ref.ft, sizeof got.ft))
            return btrm_error_set(BTRM_EDATA, "--init %s: its backbone (%s, %s) was trained "
                                  "on another base model or with another model.finetune",
                                  opts->init_model, got.model_file, got.model_hash);
        rc = btrm_model_read_backbone_tensors(opts->init_model, &tr->bb.fm.lt, tr->params, n);
    }
    return rc;
}

static int alloc_work(trainer *tr)
{
    const btrm_config *cfg = tr->cfg;
    tr->data.n_pairs = tr->data.train.n_pairs;
    tr->data.batch = cfg->train.global_batch == 0 || cfg->train.global_batch > tr->data.n_pairs
                         ? tr->data.n_pairs : cfg->train.global_batch;
    tr->data.steps_per_epoch = (tr->data.n_pairs + tr->data.batch - 1) / tr->data.batch;
    tr->data.total_steps = cfg->train.steps >= 0 ? cfg->train.steps
                                                 : cfg->train.epochs * tr->data.steps_per_epoch;
    int64_t max_local = (tr->data.batch + tr->c->size - 1) / tr->c->size;
    int64_t rows = 2 * (max_local > 0 ? max_local : 1);
    if (rows > INT32_MAX / 2)
        return btrm_error_set(BTRM_ECONFIG, "train.global_batch %lld is too large per rank",
                              (long long)tr->data.batch);
    int rc = 0;
    if (tr->bb.trains) { /* the head runs one micro-batch at a time */
        int64_t micro = cfg->train.micro_batch;
        tr->bb.micro = (int)(micro > 0 && micro < max_local ? micro : rows / 2);
        int seqs = 2 * tr->bb.micro;
        rc = btrm_ftmodel_ws_init(&tr->bb.fm, seqs, cfg->train.recompute,
                                   cfg->train.precision);
        if (!rc)
            rc = BTRM_MALLOC(tr->bb.ids, seqs);
        if (!rc)
            rc = BTRM_MALLOC(tr->bb.lens, seqs);
        if (!rc)
            rc = BTRM_MALLOC(tr->bb.dx, (size_t)seqs * tr->data.train.dim);
        if (!rc)
            btrm_log_info("backbone: micro-batches of %d pairs (up to %d tokens), %.1f MiB of "
                          "work buffers per rank%s", tr->bb.micro, tr->bb.fm.ws.max_tokens,
                          (double)tr->bb.fm.ws.bytes / (1 << 20),
                          cfg->train.recompute ? ", blocks recomputed" : "");
        rows = seqs;
    }
    if (!rc)
        rc = btrm_head_ws_init(&tr->work.ws, &tr->head, (int)rows);
    tr->work.ws.dx = tr->bb.dx;
    if (!rc)
        rc = btrm_head_ws_set_precision(&tr->work.ws, &tr->head, cfg->train.precision);
    /* x in bf16 where that loses nothing: an mlp in bf16 (x is only a GEMM
     * input), or a linear head on bf16 features (read as stored) */
    int linear_bf16 = tr->head.n_layers == 1 &&
                      tr->data.train.features_dtype == BTRM_DTYPE_BF16;
    tr->work.x_dtype = !tr->bb.trains && ((cfg->train.precision == BTRM_PREC_BF16 &&
                                           tr->head.n_layers > 1) || linear_bf16)
                           ? BTRM_DTYPE_BF16 : BTRM_DTYPE_F32; /* the backbone's rows: fp32 */
    /* one micro-batch: backward writes the gradient; several accumulate */
    tr->work.ws.grad_overwrite = !tr->bb.trains;
    if (!rc)
        rc = setup_reducer(tr);
    /* bf16 weights kept by the optimizer's pass (unsharded: it updates them all) */
    if (!rc && cfg->train.precision == BTRM_PREC_BF16 && !tr->dp.shard)
        rc = BTRM_MALLOC(tr->work.params_bf16, tr->n_params); /* the optimizer's n */
    if (!rc)
        rc = BTRM_MALLOC(tr->work.x, (size_t)rows * tr->data.train.dim);
    rows = 2 * (max_local > 0 ? max_local : 1); /* distances and loss terms: every local pair */
    if (!rc)
        rc = BTRM_MALLOC(tr->work.dist, rows / 2);
    if (!rc)
        rc = BTRM_MALLOC(tr->work.g_diff, rows / 2);
    if (!rc)
        rc = BTRM_MALLOC(tr->work.g_sum, rows / 2);
    if (!rc)
        rc = BTRM_MALLOC(tr->work.margin, rows / 2);
    if (!rc)
        rc = BTRM_MALLOC(tr->data.perm, tr->data.n_pairs);
    tr->data.perm_epoch = -1;
    tr->lp = btrm_config_loss_params(cfg);
    return rc;
}

/* The forward of pairs [off, off + m) of this rank's slice, which starts at
 * position base of the epoch's permutation: x[2m, D] (the chosen rows, then
 * the rejected ones: from /features as work.x_dtype, or from the backbone's
 * forward in fp32), the head's forward, and the pairs' distances into
 * dist + off. */
static int forward_pairs(trainer *tr, int64_t base, int off, int m)
{
    if (!tr->bb.trains) {
        btrm_eval_gather_typed(&tr->data.train, tr->data.perm, base + off, m, tr->work.x,
                               tr->work.x_dtype);
    } else {
        const btrm_token_ids *t = &tr->bb.tokens[0];
        for (int k = 0; k < m; k++) {
            int64_t pair = tr->data.perm[base + off + k];
            int64_t row[2] = { tr->data.train.chosen[pair], tr->data.train.rejected[pair] };
            for (int side = 0; side < 2; side++) {
                int s = side * m + k;
                tr->bb.ids[s] = t->ids + t->offsets[row[side]];
                tr->bb.lens[s] = (int)(t->offsets[row[side] + 1] - t->offsets[row[side]]);
            }
        }
        /* x[2m, D] = backbone(texts) */
        int rc = btrm_ftmodel_forward(&tr->bb.fm, tr->params + tr->head.n_params, tr->bb.ids,
                                      tr->bb.lens, 2 * m, tr->work.x);
        if (rc)
            return rc;
    }
    /* reward[2m] = head(x[2m, D]) */
    int rc = btrm_head_forward_typed(&tr->head, tr->params, tr->work.x, tr->work.x_dtype,
                                     2 * m, &tr->work.ws);
    if (rc)
        return rc;
    btrm_head_pair_distance(&tr->head, &tr->work.ws, tr->work.x, m, tr->work.dist + off);
    return 0;
}

/* The loss of pairs [off, off + m) after their forward: g_diff, g_sum. */
static void loss_pairs(trainer *tr, int off, int m, const float *margin, double scale,
                       btrm_loss_stats *st)
{
    float *r = tr->work.ws.reward;
    btrm_loss_pairs(&tr->lp, m, r, r + m, tr->work.dist + off, margin ? margin + off : NULL,
                    tr->dbar, scale, tr->work.g_diff + off, tr->work.g_sum + off, NULL, st);
}

/* The backward of pairs [off, off + m) after their loss: the head's gradient
 * and, for a backbone that trains, its input gradient dL/dx (ws.dx) back
 * through the backbone, into the fused buffer after the head's. */
static int grad_pairs(trainer *tr, int off, int m)
{
    int rc = btrm_head_pair_backward_typed(&tr->head, tr->params, tr->work.x, tr->work.x_dtype,
                                           m, tr->work.g_diff + off, tr->work.g_sum + off,
                                           &tr->work.ws, tr->dp.grad);
    if (rc || !tr->bb.trains)
        return rc;
    return btrm_ftmodel_backward(&tr->bb.fm, tr->params + tr->head.n_params, tr->bb.dx,
                                 tr->dp.grad + tr->head.n_params);
}

/* A non-finite global gradient norm (every rank sees the same one: a
 * collective decision) ends the run. */
static int check_norm(const trainer *tr, double sumsq)
{
    double norm = sqrt(sumsq);
    if (isfinite(norm))
        return 0;
    return btrm_error_set(BTRM_EDATA, "step %lld: the gradient norm is %g: the loss diverged "
                          "(lower optim.lr or set optim.grad_clip)", (long long)tr->step + 1,
                          norm);
}

/* backward finished gradient region `region` (head.h): reduce it now */
static int grad_ready(void *ctx, int region)
{
    trainer *tr = ctx;
    return btrm_comm_reducer_start(&tr->dp.reducer, region + 1);
}

/* 2+ ranks: the regions of [loss sums | gradient] reduced as backward
 * finishes them; each weight gradient in GRAD_BLOCKS row blocks. */
enum { GRAD_BLOCKS = 8 };
static int setup_reducer(trainer *tr)
{
    /* a backbone that trains accumulates micro-batches into [head | backbone]:
     * one fused collective after the last (train_step, 4.) */
    if (tr->c->size < 2 || tr->bb.trains)
        return 0;
    int n = btrm_head_grad_regions(&tr->head, GRAD_BLOCKS, NULL, NULL, 0);
    size_t *first = NULL, *count = NULL;
    int rc = BTRM_MALLOC(first, n + 1);
    if (!rc)
        rc = BTRM_MALLOC(count, n + 1);
    if (!rc) {
        btrm_head_grad_regions(&tr->head, GRAD_BLOCKS, first + 1, count + 1, n);
        first[0] = 0; /* the loss sums */
        count[0] = N_STATS;
        for (int k = 1; k <= n; k++)
            first[k] += N_STATS;
        rc = btrm_comm_reducer_init(&tr->dp.reducer, tr->c, tr->dp.fused, first, count, n + 1,
                                    tr->dp.shard ? tr->dp.rs_counts : NULL, tr->dp.shard_grad);
    }
    BTRM_FREE(first, count);
    tr->work.ws.grad_ready = grad_ready;
    tr->work.ws.grad_ready_ctx = tr;
    tr->work.ws.grad_blocks = GRAD_BLOCKS;
    return rc;
}

/* One optimizer step on the global batch of step tr->step, accumulated into
 * tr->win. Collective. Sets *stop when a rank received a stop signal. */
static int train_step(trainer *tr, int *stop)
{
    const btrm_config *cfg = tr->cfg;
    const btrm_comm *c = tr->c;
    const size_t n_params = tr->n_params;
    window *w = &tr->win;
    int64_t epoch = tr->step / tr->data.steps_per_epoch;
    int64_t in_epoch = tr->step % tr->data.steps_per_epoch;
    if (epoch != tr->data.perm_epoch) {
        btrm_rng_permutation(cfg->run.seed, epoch, tr->data.n_pairs, tr->data.perm);
        tr->data.perm_epoch = epoch;
    }
    btrm_fault_point_at("step", c->rank, (long)tr->step);
    int64_t batch_first = in_epoch * tr->data.batch;
    int64_t batch_size = tr->data.n_pairs - batch_first < tr->data.batch ? tr->data.n_pairs - batch_first
                                                               : tr->data.batch;
    int64_t first = 0, count = 0;
    btrm_comm_block(batch_size, c->size, c->rank, &first, &count);
    const int n = (int)count;
    const int64_t base = batch_first + first;
    const double scale = 1.0 / (double)batch_size;
    /* micro-batches: the whole slice for stored features or a frozen backbone */
    const int micro = tr->bb.trains ? tr->bb.micro : (n > 0 ? n : 1);
    const int n_micro = (n + micro - 1) / micro;
    const int keep = n_micro <= 1;  /* one forward: its activations stay for the backward */
    const int early = keep || cfg->loss.type == BTRM_LOSS_NORMBT; /* distances first */
    const float *margin = NULL;
    if (n > 0 && cfg->loss.margin == BTRM_MARGIN_DATA) {
        for (int i = 0; i < n; i++)
            tr->work.margin[i] = tr->data.train.margin[tr->data.perm[base + i]];
        margin = tr->work.margin;
    }
    /* with ws.grad_overwrite (one micro-batch) backward writes the whole
     * gradient; otherwise micro-batches accumulate into zeros */
    memset(tr->dp.fused, 0, (tr->work.ws.grad_overwrite && n > 0 ? 0 : n_params) *
                                sizeof *tr->dp.fused + sizeof(float) * N_STATS);
    btrm_loss_stats st = { 0 };
    int rc = 0;
    double t_step = btrm_comm_wtime();
    double flops0 = tr->bb.fm.ws.flops_forward + tr->bb.fm.ws.flops_backward;

    /* 1-2. forward and distances (with BT on several micro-batches, also the
     * loss and backward: they do not need d-bar); mu_t and min d over the
     * whole global batch, and the stop flag, in one collective */
    for (int off = 0; off < n && !rc; off += micro) {
        int m = n - off < micro ? n - off : micro;
        rc = forward_pairs(tr, base, off, m);
        if (!rc && !early) {
            loss_pairs(tr, off, m, margin, scale, &st);
            rc = grad_pairs(tr, off, m);
        }
    }
    if (rc)
        return rc;
    btrm_comm_step_reduce agreed = { .sum = 0.0, .min = HUGE_VAL, .flag = btrm_stopsig_poll(&tr->stopsig) };
    for (int i = 0; i < n; i++) {
        agreed.sum += tr->work.dist[i];
        if (tr->work.dist[i] < agreed.min)
            agreed.min = tr->work.dist[i];
    }
    rc = btrm_comm_allreduce_step(c, &agreed);
    if (rc)
        return rc;
    *stop = agreed.flag > 0;
    double mu = agreed.sum / (double)batch_size;
    tr->dbar = btrm_loss_dbar_update(tr->dbar, tr->step == 0, mu, cfg->loss.normbt_ema);

    /* 3. loss and backward on the local pairs (the forward again when it
     * ran on several micro-batches). With the overlapped reducer (2+ ranks,
     * one micro-batch) the loss sums come first: their reduction starts, then
     * each region backward finishes (4.) */
    btrm_comm_reducer *red = tr->dp.reducer.n_regions ? &tr->dp.reducer : NULL;
    for (int off = 0; early && off < n && !rc; off += micro) {
        int m = n - off < micro ? n - off : micro;
        if (!keep)
            rc = forward_pairs(tr, base, off, m);
        if (!rc)
            loss_pairs(tr, off, m, margin, scale, &st);
        if (!rc && !red)
            rc = grad_pairs(tr, off, m);
    }
    if (rc)
        return rc;
    st.near_floor = 0; /* against this step's d-bar, whichever path ran */
    for (int i = 0; i < n; i++)
        st.near_floor += tr->work.dist[i] < BTRM_LOSS_NEAR_FLOOR * tr->dbar;
    tr->dp.fused[STAT_LOSS] = (float)st.loss_sum;
    tr->dp.fused[STAT_CORRECT] = (float)st.correct;
    tr->dp.fused[STAT_WEIGHT] = (float)st.weight_sum;
    tr->dp.fused[STAT_MARGIN] = (float)st.margin_sum;
    tr->dp.fused[STAT_BT_LOSS] = (float)st.bt_loss_sum;
    tr->dp.fused[STAT_NEAR_FLOOR] = (float)st.near_floor;
    if (tr->bb.trains) { /* throughput: tokens through forward and backward, their FLOPs */
        const btrm_token_ids *t = &tr->bb.tokens[0];
        double tokens = 0;
        for (int i = 0; i < n; i++) {
            int64_t pair = tr->data.perm[base + i];
            int64_t rc_ = tr->data.train.chosen[pair], rr = tr->data.train.rejected[pair];
            tokens += (double)(t->offsets[rc_ + 1] - t->offsets[rc_] + t->offsets[rr + 1] -
                               t->offsets[rr]);
        }
        tr->dp.fused[STAT_TOKENS] = (float)tokens;
        tr->dp.fused[STAT_GFLOP] =
            (float)((tr->bb.fm.ws.flops_forward + tr->bb.fm.ws.flops_backward - flops0) * 1e-9);
    }
    if (red && (rc = btrm_comm_reducer_start(red, 0)))
        return rc;
    if (red && n > 0)
        rc = grad_pairs(tr, 0, n); /* one micro-batch (red: no backbone that trains) */
    for (int k = 1; red && n == 0 && !rc && k < red->n_regions; k++)
        rc = btrm_comm_reducer_start(red, k); /* no pairs here: zeros, in the same order */
    if (rc)
        return rc;

    /* 4. the collective over [loss sums | gradient]: all-reduce, or
     * reduce-scatter to each rank's slice */
    btrm_fault_point("grad-reduce", c->rank);
    const float *sums;  /* the summed loss sums: rank 0 always has them */
    float *grad;        /* the summed gradient of [lo, hi), or of everything */
    size_t update_n;
    if (red)
        rc = btrm_comm_reducer_wait(red);
    else if (tr->dp.shard)
        rc = btrm_comm_reduce_scatter_f32(c, tr->dp.fused, tr->dp.shard_grad, tr->dp.rs_counts);
    else
        rc = btrm_comm_allreduce_sum_f32(c, tr->dp.fused, n_params + N_STATS);
    if (rc)
        return rc;
    if (tr->dp.shard) {
        sums = tr->dp.shard_grad;
        grad = tr->dp.shard_grad + (c->rank == 0 ? N_STATS : 0);
        update_n = (size_t)(tr->dp.hi - tr->dp.lo);
    } else {
        sums = tr->dp.fused;
        grad = tr->dp.grad;
        update_n = n_params;
    }

    /* 5. clip by the global norm, schedule, update (the slice or everything).
     * Without clipping, the optimizer's pass also gives the norm (logged, and
     * checked after the update: a non-finite one still ends the run). */
    int norm_after = cfg->optim.grad_clip <= 0.0;
    double sumsq = norm_after ? 0.0 : btrm_optim_sumsq(grad, update_n), coef = 1.0;
    if (!norm_after) {
        if (tr->dp.shard && (rc = btrm_comm_allreduce_sum_f64(c, &sumsq, 1)))
            return rc;
        if ((rc = check_norm(tr, sumsq)))
            return rc;
        coef = btrm_optim_clip_coef(sqrt(sumsq), cfg->optim.grad_clip);
    }
    double lr = cfg->optim.lr * btrm_sched_factor(cfg->optim.schedule, tr->step,
                                                  cfg->optim.warmup_steps, tr->data.total_steps);
    float *params = tr->params + (tr->dp.shard ? tr->dp.lo : 0);
    btrm_optim_hparams hp = tr->optim.hp;
    hp.lr = lr;
    btrm_optim_pass pass = { .grad_scale = (float)coef, .want_sumsq = norm_after,
                             .param_bf16 = tr->work.params_bf16 };
    double s2 = tr->optim.ops->step(&hp, tr->step + 1, params, grad, tr->optim.state, update_n,
                                    &pass);
    if (norm_after) {
        sumsq = s2;
        if (tr->dp.shard && (rc = btrm_comm_allreduce_sum_f64(c, &sumsq, 1)))
            return rc;
        if ((rc = check_norm(tr, sumsq)))
            return rc;
    }
    double norm = sqrt(sumsq);
    if (tr->dp.shard) {
        rc = btrm_comm_allgatherv_f32(c, tr->params, tr->dp.counts, tr->dp.displs);
        if (rc)
            return rc;
    }
    tr->last_grad_norm = norm;
    tr->last_lr = lr;

    /* the window: loss sums are meaningful on rank 0 (the only one that logs) */
    double bs = (double)batch_size;
    double weight_max = agreed.min < HUGE_VAL ? btrm_loss_weight(&tr->lp, agreed.min, tr->dbar)
                                              : 1.0;
    w->steps += 1;
    w->pairs += bs;
    w->loss += sums[STAT_LOSS] / bs;
    w->acc += sums[STAT_CORRECT] / bs;
    w->weight += sums[STAT_WEIGHT] / bs;
    w->margin += sums[STAT_MARGIN] / bs;
    w->bt_loss += sums[STAT_BT_LOSS] / bs;
    w->near_floor += sums[STAT_NEAR_FLOOR] / bs;
    tr->bb.win_tokens += sums[STAT_TOKENS];
    tr->bb.win_gflop += sums[STAT_GFLOP];
    tr->bb.n_tokens += sums[STAT_TOKENS];
    tr->bb.gflop += sums[STAT_GFLOP];
    tr->bb.seconds += btrm_comm_wtime() - t_step;
    w->dist += mu;
    if (weight_max > w->weight_max)
        w->weight_max = weight_max;
    tr->step++;
    return 0;
}

static void log_metrics(trainer *tr)
{
    window *w = &tr->win;
    double now = btrm_comm_wtime();
    double secs = now - w->t0;
    double k = w->steps > 0 ? w->steps : 1.0;
    if (tr->c->rank == 0) {
        json_t *m = json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
                              "s:f, s:f}",
                              "step", (json_int_t)tr->step,
                              "epoch", (json_int_t)((tr->step - 1) / tr->data.steps_per_epoch),
                              "loss", w->loss / k, "bt_loss", w->bt_loss / k,
                              "acc", w->acc / k, "lr", tr->last_lr,
                              "grad_norm", tr->last_grad_norm, "dist_mean", w->dist / k,
                              "dist_ema", tr->dbar, "weight_mean", w->weight / k,
                              "weight_max", w->weight_max, "near_floor", w->near_floor / k,
                              "margin_mean", w->margin / k,
                              "pairs_per_s", secs > 0 ? w->pairs / secs : 0.0);
        if (tr->bb.trains) { /* the backbone's throughput, end to end (timing fields) */
            json_object_set_new(m, "tokens_per_s",
                                json_real(secs > 0 ? tr->bb.win_tokens / secs : 0.0));
            json_object_set_new(m, "gflop_per_s",
                                json_real(secs > 0 ? tr->bb.win_gflop / secs : 0.0));
        }
        btrm_rundir_metrics(&tr->out, m);
        double elapsed = now - tr->out.t_start;
        double done = (double)(tr->step - tr->first_step);
        double eta = done > 0 ? elapsed / done * (double)(tr->data.total_steps - tr->step) : 0.0;
        btrm_log_progress("step %lld/%lld  loss %.4f  acc %.3f  %.0f pairs/s  ETA %.0fs",
                          (long long)tr->step, (long long)tr->data.total_steps, w->loss / k,
                          w->acc / k, secs > 0 ? w->pairs / secs : 0.0, eta);
    }
    memset(w, 0, sizeof *w);
    w->t0 = now;
    tr->bb.win_tokens = tr->bb.win_gflop = 0;
}

/* optim.type newton: one metrics.jsonl line per Newton iteration (0 = the
 * starting point). Collective callback; rank 0 writes. */
static void newton_log(void *ctx, const btrm_newton_iter *it)
{
    trainer *tr = ctx;
    tr->step = it->iter;
    tr->last_grad_norm = it->grad_norm;
    if (tr->c->rank != 0)
        return;
    btrm_rundir_metrics(&tr->out,
                        json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
                                  "step", (json_int_t)it->iter, "loss", it->loss, "acc", it->acc,
                                  "grad_norm", it->grad_norm, "step_size", it->step,
                                  "shift", it->shift, "dist_ema", tr->dbar, "t_form",
                                  it->t_form, "t_factor", it->t_factor, "t_other",
                                  it->t_other));
}

/* Full-batch Newton on out.weight (the bias is left as initialised: it
 * cancels in r_c - r_r). No checkpoints: the state is w alone. */
static int newton_train(trainer *tr)
{
    const btrm_tensor_view *out = &tr->head.layer[tr->head.n_layers - 1];
    int rc = btrm_newton_solve(tr->cfg, &tr->data.train, tr->c, tr->params + out->weight_off,
                               &tr->dbar, newton_log, tr);
    tr->data.total_steps = tr->step;
    tr->last_ckpt_step = tr->step;
    return rc;
}

/* The model file's record of the loss and, with model.backbone, of the
 * backbone (its reference and trained tensors). */
static btrm_model_meta model_meta(const trainer *tr)
{
    btrm_model_meta meta = btrm_model_meta_of(&tr->lp, tr->dbar);
    meta.backbone = tr->bb.on ? &tr->bb.ref : NULL;
    /* how the stored features were made: none used with model.backbone */
    meta.features = tr->bb.on ? NULL : tr->data.features;
    return meta;
}

static int run_evals(trainer *tr)
{
    btrm_model_meta meta = model_meta(tr);
    json_t *all = json_array();
    for (int e = 0; e < tr->data.n_eval; e++) {
        btrm_eval_result res;
        /* a backbone that trains: the eval texts' representations now */
        int rc = tr->bb.trains ? backbone_features(tr, 1 + e) : 0;
        if (rc) {
            json_decref(all);
            return rc;
        }
        rc = btrm_eval_run(&tr->head, tr->params, &meta, &tr->data.eval[e], tr->c, &res);
        if (rc) {
            json_decref(all);
            return rc;
        }
        json_t *j = btrm_eval_to_json(&res, &tr->data.eval[e]);
        json_object_set_new(j, "step", json_integer(tr->step));
        btrm_log_info("eval %s at step %lld: accuracy %.4f, loss %.4f (%lld pairs)",
                      tr->data.eval[e].path, (long long)tr->step, res.accuracy, res.loss,
                      (long long)res.n_pairs);
        json_array_append_new(all, j);
        btrm_eval_result_free(&res);
    }
    btrm_rundir_evals(&tr->out, all);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Checkpoints */

/* This rank's part of a checkpoint: its slice [lo, hi) of the parameters
 * and of the optimizer's state (without sharding every rank holds all of
 * the state and writes its slice). */
static btrm_ckpt_data ckpt_data(trainer *tr)
{
    int64_t off = tr->dp.shard ? 0 : tr->dp.lo;
    btrm_ckpt_data d = { .head = &tr->head, .n_params = tr->n_params, .params = tr->params,
                         .optim = tr->optim.ops, .lo = tr->dp.lo, .hi = tr->dp.hi,
                         .meta = model_meta(tr) };
    for (int k = 0; tr->optim.ops && k < tr->optim.ops->n_state; k++)
        d.state[k] = tr->optim.state[k] + off;
    return d;
}

static int save_checkpoint(trainer *tr, const btrm_train_opts *opts)
{
    const btrm_comm *c = tr->c;
    double t0 = btrm_comm_wtime();
    btrm_ckpt_state st = { .step = tr->step, .epoch = tr->step / tr->data.steps_per_epoch,
                           .in_epoch = tr->step % tr->data.steps_per_epoch,
                           .optim_step = tr->step, .seed = tr->cfg->run.seed,
                           .dbar = tr->dbar, .ranks = c->size,
                           .optim_type = tr->cfg->optim.type,
                           .train_crc32 = tr->data.train.crc32 };
    snprintf(st.train_file, sizeof st.train_file, "%s", tr->cfg->data.train);
    /* the window's loss sums live on rank 0 */
    memcpy(st.window, &tr->win, sizeof st.window);
    int rc = btrm_comm_bcast(c, st.window, sizeof st.window, 0);
    char path[BTRM_PATH_MAX + 32];
    btrm_ckpt_name(path, sizeof path, tr->ckpt_dir, tr->step);
    if (!rc && c->rank == 0)
        rc = btrm_mkdir_p(tr->ckpt_dir);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        return rc;
    btrm_ckpt_data d = ckpt_data(tr);
    rc = btrm_ckpt_write(path, c, &d, &st, opts->config_text);
    if (rc)
        return btrm_error_wrap(rc, "checkpoint at step %lld", (long long)tr->step);
    if (c->rank == 0)
        btrm_ckpt_rotate(tr->ckpt_dir, path, tr->cfg->checkpoint.keep);
    tr->last_ckpt_step = tr->step;
    btrm_log_info("checkpoint %s (%.2f s)", path, btrm_comm_wtime() - t0);
    return btrm_comm_agree(c, 0);
}

/* Loads one checkpoint into the trainer; BTRM_EDATA when it is unreadable or
 * corrupt, BTRM_ECONFIG when it belongs to another config or data file. */
static int load_checkpoint(trainer *tr, const char *path)
{
    btrm_ckpt_data d = ckpt_data(tr);
    if (!tr->dp.shard) { /* every rank reads all of the state */
        for (int k = 0; tr->optim.ops && k < tr->optim.ops->n_state; k++)
            d.state[k] = tr->optim.state[k];
        d.lo = 0;
        d.hi = (int64_t)tr->n_params;
    }
    btrm_ckpt_state st;
    int rc = btrm_ckpt_read(path, tr->c, &d, &st);
    if (rc)
        return rc;
    const btrm_config *cfg = tr->cfg;
    if (st.train_crc32 != tr->data.train.crc32)
        return btrm_error_set(BTRM_ECONFIG, "%s was written for the data file %s (crc32 %08x); "
                              "the config trains on %s (crc32 %08x)", path, st.train_file,
                              (unsigned)st.train_crc32, cfg->data.train,
                              (unsigned)tr->data.train.crc32);
    if (st.seed != cfg->run.seed)
        return btrm_error_set(BTRM_ECONFIG, "%s was written with run.seed %llu; the config "
                              "has %llu", path, (unsigned long long)st.seed,
                              (unsigned long long)cfg->run.seed);
    if (st.step > tr->data.total_steps)
        return btrm_error_set(BTRM_ECONFIG, "%s is at step %lld, past the config's %lld steps",
                              path, (long long)st.step, (long long)tr->data.total_steps);
    tr->step = tr->first_step = tr->last_ckpt_step = st.step;
    tr->dbar = st.dbar;
    memcpy(&tr->win, st.window, sizeof st.window);
    if (st.ranks != tr->c->size)
        btrm_log_info("%s was written by %d ranks; resuming on %d (the optimizer shards "
                      "are re-cut)", path, st.ranks, tr->c->size);
    return 0;
}

/* --resume auto: the newest checkpoint that loads, skipping corrupt ones;
 * --resume PATH: that one. Sets *resumed to the step, or -1 (from scratch). */
static int resume(trainer *tr, const btrm_train_opts *opts, int64_t *resumed)
{
    const btrm_comm *c = tr->c;
    *resumed = -1;
    if (strcmp(opts->resume, "auto") != 0) {
        int rc = load_checkpoint(tr, opts->resume);
        rc = btrm_comm_agree(c, rc);
        if (!rc)
            *resumed = tr->step;
        return rc;
    }
    char **paths = NULL;
    int n = 0;
    int rc = c->rank == 0 ? btrm_ckpt_list(tr->ckpt_dir, &paths, &n) : 0;
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = btrm_comm_bcast(c, &n, sizeof n, 0);
    for (int i = 0; i < n && !rc && *resumed < 0; i++) {
        char path[BTRM_PATH_MAX + 300] = "";
        if (c->rank == 0)
            snprintf(path, sizeof path, "%s", paths[i]);
        rc = btrm_comm_bcast(c, path, sizeof path, 0);
        if (rc)
            break;
        rc = btrm_comm_agree(c, load_checkpoint(tr, path));
        if (rc == BTRM_EDATA) { /* unreadable or corrupt: try the next older one */
            btrm_log_warn("skipping checkpoint %s: %s", path, btrm_error_msg());
            rc = 0;
        } else if (!rc) {
            *resumed = tr->step;
            btrm_log_info("resuming from %s (step %lld)", path, (long long)tr->step);
        }
    }
    btrm_ckpt_list_free(paths, n);
    if (!rc && *resumed < 0) {
        btrm_log_info("--resume auto: no checkpoint in %s; starting from scratch",
                      tr->ckpt_dir);
        /* a failed load may have overwritten part of the state */
        for (int k = 0; tr->optim.ops && k < tr->optim.ops->n_state; k++)
            memset(tr->optim.state[k], 0, state_len(tr) * sizeof *tr->optim.state[k]);
        memset(&tr->win, 0, sizeof tr->win);
        tr->step = tr->first_step = 0;
        tr->last_ckpt_step = -1;
        tr->dbar = 0.0;
        rc = btrm_comm_agree(c, initial_params(tr, opts));
    }
    return rc;
}

/* ------------------------------------------------------------------------ */

static int write_final(trainer *tr)
{
    int rc = 0;
    if (tr->c->rank == 0) {
        char path[BTRM_PATH_MAX + 64];
        btrm_path_join(path, sizeof path, tr->out.dir, "final.h5");
        btrm_model_meta meta = model_meta(tr);
        rc = btrm_model_write(path, &tr->head, tr->params, &meta);
    }
    return btrm_comm_agree(tr->c, rc);
}

static void trainer_free(trainer *tr)
{
    btrm_pairs_close(&tr->data.train);
    for (int e = 0; e < tr->data.n_eval; e++)
        btrm_pairs_close(&tr->data.eval[e]);
    free(tr->data.perm);
    free(tr->data.features);
    btrm_head_ws_free(&tr->work.ws);
    btrm_comm_reducer_free(&tr->dp.reducer);
    BTRM_FREE(tr->work.x, tr->work.dist, tr->work.g_diff, tr->work.g_sum, tr->work.margin,
              tr->params, tr->dp.fused, tr->dp.shard_grad, tr->dp.counts, tr->dp.displs,
              tr->dp.rs_counts, tr->work.params_bf16);
    for (int k = 0; k < BTRM_OPTIM_MAX_STATE; k++)
        free(tr->optim.state[k]);
    for (int k = 0; k <= BTRM_MAX_EVAL; k++) {
        btrm_token_ids_free(&tr->bb.tokens[k]);
        free(tr->bb.features[k]);
    }
    free((void *)tr->bb.ids);
    BTRM_FREE(tr->bb.lens, tr->bb.dx);
    btrm_ftmodel_close(&tr->bb.fm);
    btrm_rundir_close(&tr->out);
}

int btrm_train_run(const btrm_config *cfg, const btrm_train_opts *opts, const btrm_comm *c)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.cfg = cfg;
    tr.c = c;
    tr.last_ckpt_step = -1;
    int rc = btrm_config_checkpoint_dir(cfg, tr.ckpt_dir, sizeof tr.ckpt_dir);
    /* SIGUSR1 (Slurm's --signal lead time, forwarded by mpirun) and SIGTERM:
     * checkpoint at the next step boundary and exit for a requeue. Blocked in
     * this thread (and the OpenMP threads it starts) and polled once a step:
     * a handler inside oneDNN's JIT GEMM corrupts the heap (stopsig.h). */
    btrm_stopsig_begin(&tr.stopsig, (const int[]){ SIGUSR1, SIGTERM }, 2);

    int64_t resumed = -1;
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = btrm_comm_agree(c, btrm_compute_setup("train.precision", cfg->train.precision,
                                                   cfg->run.threads));
    if (!rc)
        rc = btrm_rundir_init(&tr.out, cfg, c);
    tr.bb.on = cfg->model.backbone[0] != '\0';
    tr.bb.trains = tr.bb.on && cfg->model.finetune.type != BTRM_FT_NONE;
    if (!rc)
        rc = btrm_comm_agree(c, open_data(&tr));
    if (!rc && tr.bb.on)
        rc = open_backbone(&tr);
    if (!rc)
        rc = btrm_comm_agree(c, init_model(&tr, opts));
    if (!rc)
        rc = btrm_comm_agree(c, alloc_work(&tr));
    if (!rc && opts->resume)
        rc = resume(&tr, opts, &resumed);
    if (!rc)
        rc = btrm_rundir_open_logs(&tr.out, opts->config_text, resumed);
    if (rc)
        goto done;
    btrm_log_info("training %s head (%zu parameters)%s%s with %s on %s: %lld pairs, dim %d, "
                  "global batch %lld, %lld steps, %d rank%s on %d node%s%s",
                  btrm_config_enum_name("model.head", cfg->model.head), tr.head.n_params,
                  tr.bb.trains ? " and the backbone's " : "",
                  tr.bb.trains ? btrm_config_enum_name("model.finetune.type",
                                                       cfg->model.finetune.type) : "",
                  btrm_config_enum_name("loss.type", cfg->loss.type), cfg->data.train,
                  (long long)tr.data.n_pairs, tr.data.train.dim, (long long)tr.data.batch,
                  (long long)tr.data.total_steps, c->size, c->size > 1 ? "s" : "", c->n_nodes,
                  c->n_nodes > 1 ? "s" : "", tr.dp.shard ? ", optimizer sharded" : "");
    if (tr.work.params_bf16) { /* from here on the optimizer keeps them in step */
        btrm_dtype_from_f32(tr.work.params_bf16, BTRM_DTYPE_BF16, tr.params, tr.head.n_params);
        tr.work.ws.params_bf16 = tr.work.params_bf16;
    }
    tr.win.t0 = btrm_comm_wtime();
    if (resumed < 0 && cfg->checkpoint.save_initial)
        rc = save_checkpoint(&tr, opts);
    int stop = 0;
    if (!rc && !tr.optim.ops)
        rc = newton_train(&tr);
    while (!rc && tr.optim.ops && tr.step < tr.data.total_steps) {
        rc = train_step(&tr, &stop);
        if (rc == BTRM_EDATA) /* detected alike by every rank */
            break;
        if (rc) /* an MPI failure inside a collective phase: others may be waiting */
            btrm_comm_abort(c, rc, "step %lld: %s", (long long)tr.step, btrm_error_msg());
        if (tr.step % cfg->train.log_every == 0 || tr.step == tr.data.total_steps)
            log_metrics(&tr);
        if (cfg->train.eval_every > 0 && tr.step % cfg->train.eval_every == 0 &&
            tr.step < tr.data.total_steps)
            rc = run_evals(&tr);
        if (!rc && tr.step < tr.data.total_steps &&
            ((cfg->checkpoint.every > 0 && tr.step % cfg->checkpoint.every == 0) || stop))
            rc = save_checkpoint(&tr, opts);
        if (!rc && stop && tr.step < tr.data.total_steps) {
            btrm_log_progress_end();
            rc = btrm_error_set(BTRM_EPREEMPT, "stopped by a signal at step %lld of %lld after "
                                "checkpointing; run again with --resume auto to continue",
                                (long long)tr.step, (long long)tr.data.total_steps);
        }
    }
    btrm_log_progress_end();
    if (!rc && tr.data.total_steps > 0)
        rc = run_evals(&tr);
    if (!rc && tr.last_ckpt_step != tr.step && tr.data.total_steps > 0)
        rc = save_checkpoint(&tr, opts);
    if (!rc)
        rc = write_final(&tr);
    if (!rc && tr.bb.trains && tr.bb.seconds > 0)
        btrm_log_info("backbone training: %.0f tokens/s, %.2f GFLOP/s over %.1f s of steps "
                      "(%d rank%s, forward and backward, end to end)",
                      tr.bb.n_tokens / tr.bb.seconds, tr.bb.gflop / tr.bb.seconds, tr.bb.seconds,
                      c->size, c->size > 1 ? "s" : "");
    if (!rc)
        btrm_log_info("done: %lld steps in %.1f s; model in %s/final.h5", (long long)tr.step,
                      btrm_comm_wtime() - tr.out.t_start, tr.out.dir);
    btrm_compute_log();
done:
    btrm_rundir_summary(&tr.out, &(btrm_run_summary){
                                     .status_rc = rc, .config_text = opts->config_text,
                                     .train = &tr.data.train, .eval = tr.data.eval,
                                     .steps = tr.step, .total_steps = tr.data.total_steps,
                                     .dist_ema = tr.dbar });
    btrm_stopsig_end(&tr.stopsig);
    trainer_free(&tr);
    return rc;
}
