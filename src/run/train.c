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
 * exits with BTRM_EXIT_REQUEUE. */
#include "train.h"

#include "ckpt.h"
#include "error.h"
#include "eval.h"
#include "fault.h"
#include "fileutil.h"
#include "head.h"
#include "log.h"
#include "loss.h"
#include "modelfile.h"
#include "newton.h"
#include "optim.h"
#include "pairs.h"
#include "rng.h"

#include <cblas.h>
#include <jansson.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
void openblas_set_num_threads(int num_threads);
#endif

enum { STAT_LOSS, STAT_CORRECT, STAT_WEIGHT, STAT_MARGIN, N_STATS };

/* Metrics accumulated between two log lines; saved in checkpoints (as
 * doubles, BTRM_CKPT_WINDOW of them) so a resumed run logs the same lines. */
typedef struct window {
    double steps, pairs, loss, acc, dist, weight, weight_max, margin;
    double t0;
} window;
enum { WINDOW_SAVED = 8 };

static volatile sig_atomic_t stop_signal;
static void on_stop_signal(int sig) { stop_signal = sig; }

typedef struct trainer {
    const btrm_config *cfg;
    const btrm_comm *c;
    char out_dir[BTRM_PATH_MAX];
    btrm_pairs train;
    btrm_pairs eval[BTRM_MAX_EVAL];
    int n_eval;
    btrm_head head;
    btrm_head_ws ws;
    btrm_loss_params lp;
    float *params;
    float *fused, *grad;       /* fused = [N_STATS loss sums | n_params gradient] */
    float *shard_grad;         /* sharded: [N_STATS (rank 0) | hi - lo] */
    float *exp_avg, *exp_avg_sq; /* [hi - lo] sharded, [n_params] otherwise */
    int shard;
    int64_t lo, hi;            /* this rank's slice of the flat parameter vector */
    int *counts, *displs;      /* every rank's slice (all-gather) */
    int *rs_counts;            /* reduce-scatter blocks (rank 0's holds the sums) */
    char ckpt_dir[BTRM_PATH_MAX + 32];
    float *x, *dist, *g_diff, *g_sum, *margin;
    int64_t *perm, perm_epoch;
    int64_t n_pairs, batch, steps_per_epoch, total_steps, max_local;
    int64_t step;              /* completed steps */
    int64_t first_step;        /* the step this process started from (resume) */
    int64_t last_ckpt_step;    /* -1 before the first checkpoint */
    double dbar;
    double last_grad_norm, last_lr;
    window win;
    FILE *metrics, *evals;
    json_t *last_metrics, *last_evals;
    double t_start;
} trainer;

static int setup_outputs(trainer *tr, const btrm_train_opts *opts)
{
    (void)opts;
    int rc = tr->c->rank == 0 ? btrm_mkdir_p(tr->out_dir) : 0;
    return btrm_comm_agree(tr->c, rc);
}

/* Keeps the lines of a JSONL log whose "step" is at most max_step (the
 * checkpoint a run resumes from): what the interrupted run wrote past it is
 * dropped. A missing file is an empty log. Rank 0 only. */
static int truncate_log(const char *path, int64_t max_step)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return 0;
    char *kept = NULL, *line = NULL;
    size_t kept_len = 0, cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        json_int_t step = j ? json_integer_value(json_object_get(j, "step")) : max_step + 1;
        json_decref(j);
        if (step > max_step)
            break; /* the log is in step order */
        char *grown = realloc(kept, kept_len + (size_t)n + 1);
        if (!grown) {
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory reading %s", path);
            break;
        }
        kept = grown;
        memcpy(kept + kept_len, line, (size_t)n);
        kept_len += (size_t)n;
    }
    fclose(in);
    free(line);
    if (!rc)
        rc = btrm_write_atomic(path, kept ? kept : "", kept_len);
    free(kept);
    return rc;
}

/* config.yaml, and metrics.jsonl and eval.jsonl: new files, or, on resume,
 * the lines up to the checkpoint's step followed by the new ones. Written once
 * the run is known to start (a refused resume leaves the directory as it was). */
static int open_logs(trainer *tr, const btrm_train_opts *opts, int64_t resumed_step)
{
    int rc = 0;
    if (tr->c->rank == 0 && opts->config_text) {
        char path[BTRM_PATH_MAX + 64];
        btrm_path_join(path, sizeof path, tr->out_dir, "config.yaml");
        rc = btrm_write_atomic(path, opts->config_text, strlen(opts->config_text));
    }
    if (tr->c->rank == 0 && !rc) {
        const char *names[2] = { "metrics.jsonl", "eval.jsonl" };
        FILE **files[2] = { &tr->metrics, &tr->evals };
        for (int k = 0; k < 2 && !rc; k++) {
            char path[BTRM_PATH_MAX + 64];
            btrm_path_join(path, sizeof path, tr->out_dir, names[k]);
            if (resumed_step >= 0)
                rc = truncate_log(path, resumed_step);
            if (!rc && !(*files[k] = fopen(path, resumed_step >= 0 ? "a" : "w")))
                rc = btrm_error_set(BTRM_EIO, "cannot create %s", path);
        }
    }
    return btrm_comm_agree(tr->c, rc);
}

static int open_data(trainer *tr)
{
    const btrm_config *cfg = tr->cfg;
    unsigned flags = BTRM_PAIRS_FEATURES | BTRM_PAIRS_REQUIRE_FEATURES;
    int rc = btrm_pairs_open(&tr->train, cfg->data.train, tr->c, flags);
    if (rc)
        return rc;
    if (tr->train.n_pairs == 0)
        return btrm_error_set(BTRM_EDATA, "%s: no pairs to train on", cfg->data.train);
    if (cfg->loss.margin == BTRM_MARGIN_DATA && !tr->train.margin)
        return btrm_error_set(BTRM_EDATA, "%s: loss.margin is 'data' but the file has no "
                              "/pairs/margin", cfg->data.train);
    for (int e = 0; e < cfg->data.n_eval; e++) {
        rc = btrm_pairs_open(&tr->eval[e], cfg->data.eval[e], tr->c, flags);
        if (rc)
            return rc;
        tr->n_eval = e + 1;
        if (tr->eval[e].dim != tr->train.dim)
            return btrm_error_set(BTRM_EDATA, "%s: /features has dim %d but the training "
                                  "file %s has dim %d", cfg->data.eval[e], tr->eval[e].dim,
                                  cfg->data.train, tr->train.dim);
    }
    return 0;
}

static int initial_params(trainer *tr, const btrm_train_opts *opts);

static int init_model(trainer *tr, const btrm_train_opts *opts)
{
    const btrm_config *cfg = tr->cfg;
    int rc = btrm_head_init(&tr->head, cfg->model.head, cfg->model.activation,
                            tr->train.dim, cfg->model.hidden,
                            cfg->model.head == BTRM_HEAD_MLP ? cfg->model.n_hidden : 0);
    if (rc)
        return rc;
    size_t n = tr->head.n_params;
    const btrm_comm *c = tr->c;
    tr->shard = cfg->dist.shard_optimizer && c->size > 1;
    if (n + N_STATS > INT32_MAX)
        return btrm_error_set(BTRM_ECONFIG, "the model has %zu parameters; btrm supports "
                              "up to 2^31 - 1", n);
    rc = BTRM_MALLOC(tr->counts, c->size);
    if (!rc)
        rc = BTRM_MALLOC(tr->displs, c->size);
    if (!rc)
        rc = BTRM_MALLOC(tr->rs_counts, c->size);
    if (rc)
        return rc;
    for (int r = 0; r < c->size; r++) {
        int64_t first, count;
        btrm_comm_block((int64_t)n, c->size, r, &first, &count);
        tr->displs[r] = (int)first;
        tr->counts[r] = (int)count;
        tr->rs_counts[r] = (int)count + (r == 0 ? N_STATS : 0);
    }
    tr->lo = tr->displs[c->rank];
    tr->hi = tr->lo + tr->counts[c->rank];
    size_t moments = tr->shard ? (size_t)(tr->hi - tr->lo) : n;
    rc = BTRM_MALLOC(tr->params, n);
    if (!rc)
        rc = BTRM_CALLOC(tr->fused, n + N_STATS);
    if (!rc && tr->shard)
        rc = BTRM_CALLOC(tr->shard_grad, (size_t)(tr->hi - tr->lo) + N_STATS);
    if (!rc)
        rc = BTRM_CALLOC(tr->exp_avg, moments);
    if (!rc && cfg->optim.type == BTRM_OPTIM_ADAMW)
        rc = BTRM_CALLOC(tr->exp_avg_sq, moments);
    if (rc)
        return rc;
    tr->grad = tr->fused + N_STATS;
    return initial_params(tr, opts);
}

/* The parameters of step 0: from run.seed, or from --init MODEL.h5. */
static int initial_params(trainer *tr, const btrm_train_opts *opts)
{
    const btrm_config *cfg = tr->cfg;
    size_t n = tr->head.n_params;
    int rc = 0;
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
                              opts->init_model, tr->train.dim);
    }
    memcpy(tr->params, given_params, n * sizeof *tr->params);
    free(given_params);
    return 0;
}

static int alloc_work(trainer *tr)
{
    const btrm_config *cfg = tr->cfg;
    tr->n_pairs = tr->train.n_pairs;
    tr->batch = cfg->train.global_batch == 0 || cfg->train.global_batch > tr->n_pairs
                    ? tr->n_pairs : cfg->train.global_batch;
    tr->steps_per_epoch = (tr->n_pairs + tr->batch - 1) / tr->batch;
    tr->total_steps = cfg->train.steps >= 0 ? cfg->train.steps
                                             : cfg->train.epochs * tr->steps_per_epoch;
    tr->max_local = (tr->batch + tr->c->size - 1) / tr->c->size;
    int64_t rows = 2 * (tr->max_local > 0 ? tr->max_local : 1);
    if (rows > INT32_MAX / 2)
        return btrm_error_set(BTRM_ECONFIG, "train.global_batch %lld is too large per rank",
                              (long long)tr->batch);
    int rc = btrm_head_ws_init(&tr->ws, &tr->head, (int)rows);
    if (!rc)
        rc = BTRM_MALLOC(tr->x, (size_t)rows * tr->train.dim);
    if (!rc)
        rc = BTRM_MALLOC(tr->dist, rows / 2);
    if (!rc)
        rc = BTRM_MALLOC(tr->g_diff, rows / 2);
    if (!rc)
        rc = BTRM_MALLOC(tr->g_sum, rows / 2);
    if (!rc)
        rc = BTRM_MALLOC(tr->margin, rows / 2);
    if (!rc)
        rc = BTRM_MALLOC(tr->perm, tr->n_pairs);
    tr->perm_epoch = -1;
    tr->lp = (btrm_loss_params){ .type = cfg->loss.type, .eps = cfg->loss.normbt_eps,
                                 .max_weight = cfg->loss.normbt_max_weight,
                                 .center = cfg->loss.center_rewards };
    return rc;
}

/* One optimizer step on the global batch of step tr->step, accumulated into
 * tr->win. Collective. Sets *stop when a rank received a stop signal. */
static int train_step(trainer *tr, int *stop)
{
    const btrm_config *cfg = tr->cfg;
    const btrm_comm *c = tr->c;
    const size_t n_params = tr->head.n_params;
    window *w = &tr->win;
    int64_t epoch = tr->step / tr->steps_per_epoch;
    int64_t in_epoch = tr->step % tr->steps_per_epoch;
    if (epoch != tr->perm_epoch) {
        btrm_rng_permutation(cfg->run.seed, epoch, tr->n_pairs, tr->perm);
        tr->perm_epoch = epoch;
    }
    btrm_fault_point("step", c->rank);
    int64_t batch_first = in_epoch * tr->batch;
    int64_t batch_size = tr->n_pairs - batch_first < tr->batch ? tr->n_pairs - batch_first
                                                               : tr->batch;
    int64_t first = 0, count = 0;
    btrm_comm_block(batch_size, c->size, c->rank, &first, &count);
    const int n = (int)count;

    /* 1-2. forward and distances; mu_t and min d over the whole global batch,
     * and the stop flag, in one collective */
    btrm_comm_step_reduce agreed = { .sum = 0.0, .min = HUGE_VAL, .flag = stop_signal };
    if (n > 0) {
        btrm_eval_gather(&tr->train, tr->perm, batch_first + first, n, tr->x);
        /* reward[2n] = head(x[2n, D]) */
        btrm_head_forward(&tr->head, tr->params, tr->x, 2 * n, &tr->ws);
        btrm_head_pair_distance(&tr->head, &tr->ws, tr->x, n, tr->dist);
        for (int i = 0; i < n; i++) {
            agreed.sum += tr->dist[i];
            if (tr->dist[i] < agreed.min)
                agreed.min = tr->dist[i];
        }
    }
    int rc = btrm_comm_allreduce_step(c, &agreed);
    if (rc)
        return rc;
    *stop = agreed.flag > 0;
    double mu = agreed.sum / (double)batch_size;
    tr->dbar = btrm_loss_dbar_update(tr->dbar, tr->step == 0, mu, cfg->loss.normbt_ema);

    /* 3. loss and backward on the local pairs */
    memset(tr->fused, 0, (n_params + N_STATS) * sizeof *tr->fused);
    btrm_loss_stats st = { 0 };
    if (n > 0) {
        const float *margin = NULL;
        if (cfg->loss.margin == BTRM_MARGIN_DATA) {
            for (int i = 0; i < n; i++)
                tr->margin[i] = tr->train.margin[tr->perm[batch_first + first + i]];
            margin = tr->margin;
        }
        float *r = tr->ws.reward;
        btrm_loss_pairs(&tr->lp, n, r, r + n, tr->dist, margin, tr->dbar,
                        1.0 / (double)batch_size, tr->g_diff, tr->g_sum, NULL, &st);
        btrm_head_pair_backward(&tr->head, tr->params, tr->x, n, tr->g_diff, tr->g_sum,
                                &tr->ws, tr->grad);
    }
    tr->fused[STAT_LOSS] = (float)st.loss_sum;
    tr->fused[STAT_CORRECT] = (float)st.correct;
    tr->fused[STAT_WEIGHT] = (float)st.weight_sum;
    tr->fused[STAT_MARGIN] = (float)st.margin_sum;

    /* 4. one collective over [loss sums | gradient] */
    btrm_fault_point("grad-reduce", c->rank);
    const float *sums;  /* the summed loss sums: rank 0 always has them */
    float *grad;        /* the summed gradient of [lo, hi), or of everything */
    size_t update_n;
    double sumsq;
    if (tr->shard) {
        rc = btrm_comm_reduce_scatter_f32(c, tr->fused, tr->shard_grad, tr->rs_counts);
        if (rc)
            return rc;
        sums = tr->shard_grad;
        grad = tr->shard_grad + (c->rank == 0 ? N_STATS : 0);
        update_n = (size_t)(tr->hi - tr->lo);
        sumsq = btrm_optim_sumsq(grad, update_n);
        rc = btrm_comm_allreduce_sum_f64(c, &sumsq, 1);
        if (rc)
            return rc;
    } else {
        rc = btrm_comm_allreduce_sum_f32(c, tr->fused, n_params + N_STATS);
        if (rc)
            return rc;
        sums = tr->fused;
        grad = tr->grad;
        update_n = n_params;
        sumsq = btrm_optim_sumsq(grad, n_params);
    }

    /* 5. clip by the global norm, schedule, update (the slice or everything) */
    double norm = sqrt(sumsq);
    if (!isfinite(norm)) /* every rank sees the same norm: a collective decision */
        return btrm_error_set(BTRM_EDATA, "step %lld: the gradient norm is %g: the loss "
                              "diverged (lower optim.lr or set optim.grad_clip)",
                              (long long)tr->step + 1, norm);
    double coef = btrm_optim_clip_coef(norm, cfg->optim.grad_clip);
    if (coef < 1.0)
        cblas_sscal((int)update_n, (float)coef, grad, 1);
    double lr = cfg->optim.lr * btrm_sched_factor(cfg->optim.schedule, tr->step,
                                                  cfg->optim.warmup_steps, tr->total_steps);
    float *params = tr->params + (tr->shard ? tr->lo : 0);
    if (cfg->optim.type == BTRM_OPTIM_ADAMW)
        btrm_optim_adamw(params, grad, tr->exp_avg, tr->exp_avg_sq, update_n, lr,
                         cfg->optim.betas[0], cfg->optim.betas[1], cfg->optim.eps,
                         cfg->optim.weight_decay, tr->step + 1);
    else
        btrm_optim_sgd(params, grad, tr->exp_avg, update_n, lr, cfg->optim.momentum,
                       cfg->optim.weight_decay, tr->step + 1);
    if (tr->shard) {
        rc = btrm_comm_allgatherv_f32(c, tr->params, tr->counts, tr->displs);
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
        json_t *m = json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
                              "step", (json_int_t)tr->step,
                              "epoch", (json_int_t)((tr->step - 1) / tr->steps_per_epoch),
                              "loss", w->loss / k, "acc", w->acc / k, "lr", tr->last_lr,
                              "grad_norm", tr->last_grad_norm, "dist_mean", w->dist / k,
                              "dist_ema", tr->dbar, "weight_mean", w->weight / k,
                              "weight_max", w->weight_max, "margin_mean", w->margin / k,
                              "pairs_per_s", secs > 0 ? w->pairs / secs : 0.0);
        char *line = m ? json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                           JSON_REAL_PRECISION(9)) : NULL;
        if (line) {
            fprintf(tr->metrics, "%s\n", line);
            fflush(tr->metrics);
            free(line);
        }
        json_decref(tr->last_metrics);
        tr->last_metrics = m;
        double elapsed = now - tr->t_start;
        double done = (double)(tr->step - tr->first_step);
        double eta = done > 0 ? elapsed / done * (double)(tr->total_steps - tr->step) : 0.0;
        btrm_log_progress("step %lld/%lld  loss %.4f  acc %.3f  %.0f pairs/s  ETA %.0fs",
                          (long long)tr->step, (long long)tr->total_steps, w->loss / k,
                          w->acc / k, secs > 0 ? w->pairs / secs : 0.0, eta);
    }
    memset(w, 0, sizeof *w);
    w->t0 = now;
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
    json_t *m = json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
                          "step", (json_int_t)it->iter, "loss", it->loss, "acc", it->acc,
                          "grad_norm", it->grad_norm, "step_size", it->step,
                          "shift", it->shift, "dist_ema", tr->dbar, "t_form", it->t_form,
                          "t_factor", it->t_factor, "t_other", it->t_other);
    char *line = m ? json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                       JSON_REAL_PRECISION(9)) : NULL;
    if (line) {
        fprintf(tr->metrics, "%s\n", line);
        fflush(tr->metrics);
        free(line);
    }
    json_decref(tr->last_metrics);
    tr->last_metrics = m;
}

/* Full-batch Newton on out.weight (the bias is left as initialised: it
 * cancels in r_c - r_r). No checkpoints: the state is w alone. */
static int newton_train(trainer *tr)
{
    const btrm_tensor_view *out = &tr->head.layer[tr->head.n_layers - 1];
    int rc = btrm_newton_solve(tr->cfg, &tr->train, tr->c, tr->params + out->weight_off,
                               &tr->dbar, newton_log, tr);
    tr->total_steps = tr->step;
    tr->last_ckpt_step = tr->step;
    return rc;
}

static btrm_model_meta model_meta(const trainer *tr)
{
    return (btrm_model_meta){ .loss = tr->cfg->loss.type, .dist_ema = tr->dbar,
                              .normbt_eps = tr->cfg->loss.normbt_eps,
                              .max_weight = tr->cfg->loss.normbt_max_weight };
}

static int run_evals(trainer *tr)
{
    btrm_model_meta meta = model_meta(tr);
    json_t *all = json_array();
    for (int e = 0; e < tr->n_eval; e++) {
        btrm_eval_result res;
        int rc = btrm_eval_run(&tr->head, tr->params, &meta, &tr->eval[e], tr->c, &res);
        if (rc) {
            json_decref(all);
            return rc;
        }
        json_t *j = btrm_eval_to_json(&res, &tr->eval[e]);
        json_object_set_new(j, "step", json_integer(tr->step));
        btrm_log_info("eval %s at step %lld: accuracy %.4f, loss %.4f (%lld pairs)",
                      tr->eval[e].path, (long long)tr->step, res.accuracy, res.loss,
                      (long long)res.n_pairs);
        if (tr->c->rank == 0) {
            char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
            if (line) {
                fprintf(tr->evals, "%s\n", line);
                fflush(tr->evals);
                free(line);
            }
        }
        json_array_append_new(all, j);
        btrm_eval_result_free(&res);
    }
    json_decref(tr->last_evals);
    tr->last_evals = all;
    return 0;
}

/* checkpoint.dir: relative paths are resolved against run.out_dir. */
static void set_ckpt_dir(trainer *tr)
{
    const char *dir = tr->cfg->checkpoint.dir;
    if (!dir[0])
        btrm_path_join(tr->ckpt_dir, sizeof tr->ckpt_dir, tr->out_dir, "checkpoints");
    else
        btrm_path_join(tr->ckpt_dir, sizeof tr->ckpt_dir, tr->out_dir, dir);
}

static btrm_ckpt_data ckpt_data(trainer *tr)
{
    /* Without sharding every rank holds all the moments and writes its slice. */
    int64_t off = tr->shard ? 0 : tr->lo;
    return (btrm_ckpt_data){ .head = &tr->head, .params = tr->params,
                             .exp_avg = tr->exp_avg + off,
                             .exp_avg_sq = tr->exp_avg_sq ? tr->exp_avg_sq + off : NULL,
                             .lo = tr->lo, .hi = tr->hi, .meta = model_meta(tr) };
}

static int is_ckpt_name(const struct dirent *e)
{
    long long step;
    char tail[8];
    return sscanf(e->d_name, "step-%lld.%7s", &step, tail) == 2 && !strcmp(tail, "h5") &&
           strlen(e->d_name) == 16;
}

/* Newest first. Rank 0 only. */
static int list_ckpts(const char *dir, struct dirent ***names)
{
    int n = scandir(dir, names, is_ckpt_name, alphasort);
    if (n < 0)
        return 0; /* no directory yet: no checkpoints */
    for (int i = 0; i < n / 2; i++) {
        struct dirent *t = (*names)[i];
        (*names)[i] = (*names)[n - 1 - i];
        (*names)[n - 1 - i] = t;
    }
    return n;
}

/* After a checkpoint is in place: `latest` -> it, and only the newest
 * checkpoint.keep files kept. Rank 0 only; failures here are warnings. */
static void rotate_ckpts(trainer *tr, const char *newest)
{
    char link[BTRM_PATH_MAX + 64], tmp[BTRM_PATH_MAX + 64];
    const char *base = strrchr(newest, '/') ? strrchr(newest, '/') + 1 : newest;
    snprintf(link, sizeof link, "%s/latest", tr->ckpt_dir);
    snprintf(tmp, sizeof tmp, "%s/.latest.tmp", tr->ckpt_dir);
    unlink(tmp);
    if (symlink(base, tmp) != 0 || rename(tmp, link) != 0)
        btrm_log_warn("cannot update %s: %s", link, strerror(errno));
    struct dirent **names = NULL;
    int n = list_ckpts(tr->ckpt_dir, &names);
    for (int i = 0; i < n; i++) {
        if (tr->cfg->checkpoint.keep > 0 && i >= tr->cfg->checkpoint.keep) {
            char old[BTRM_PATH_MAX + 300];
            snprintf(old, sizeof old, "%s/%s", tr->ckpt_dir, names[i]->d_name);
            if (unlink(old) != 0)
                btrm_log_warn("cannot remove old checkpoint %s: %s", old, strerror(errno));
        }
        free(names[i]);
    }
    free(names);
}

static int save_checkpoint(trainer *tr, const btrm_train_opts *opts)
{
    const btrm_comm *c = tr->c;
    double t0 = btrm_comm_wtime();
    btrm_ckpt_state st = { .step = tr->step, .epoch = tr->step / tr->steps_per_epoch,
                           .in_epoch = tr->step % tr->steps_per_epoch,
                           .optim_step = tr->step, .seed = tr->cfg->run.seed,
                           .dbar = tr->dbar, .ranks = c->size,
                           .optim_type = tr->cfg->optim.type,
                           .train_crc32 = tr->train.crc32 };
    snprintf(st.train_file, sizeof st.train_file, "%s", tr->cfg->data.train);
    /* the window's loss sums live on rank 0 */
    double win[WINDOW_SAVED] = { tr->win.steps, tr->win.pairs, tr->win.loss, tr->win.acc,
                                 tr->win.dist, tr->win.weight, tr->win.weight_max,
                                 tr->win.margin };
    int rc = btrm_comm_bcast(c, win, sizeof win, 0);
    memcpy(st.window, win, sizeof win);
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
        rotate_ckpts(tr, path);
    tr->last_ckpt_step = tr->step;
    btrm_log_info("checkpoint %s (%.2f s)", path, btrm_comm_wtime() - t0);
    return btrm_comm_agree(c, 0);
}

/* Loads one checkpoint into the trainer; BTRM_EDATA when it is unreadable or
 * corrupt, BTRM_ECONFIG when it belongs to another config or data file. */
static int load_checkpoint(trainer *tr, const char *path)
{
    btrm_ckpt_data d = ckpt_data(tr);
    if (!tr->shard) { /* every rank reads all the moments */
        d.exp_avg = tr->exp_avg;
        d.exp_avg_sq = tr->exp_avg_sq;
        d.lo = 0;
        d.hi = (int64_t)tr->head.n_params;
    }
    btrm_ckpt_state st;
    int rc = btrm_ckpt_read(path, tr->c, &d, &st);
    if (rc)
        return rc;
    const btrm_config *cfg = tr->cfg;
    if (st.train_crc32 != tr->train.crc32)
        return btrm_error_set(BTRM_ECONFIG, "%s was written for the data file %s (crc32 %08x); "
                              "the config trains on %s (crc32 %08x)", path, st.train_file,
                              (unsigned)st.train_crc32, cfg->data.train,
                              (unsigned)tr->train.crc32);
    if (st.seed != cfg->run.seed)
        return btrm_error_set(BTRM_ECONFIG, "%s was written with run.seed %llu; the config "
                              "has %llu", path, (unsigned long long)st.seed,
                              (unsigned long long)cfg->run.seed);
    if (st.step > tr->total_steps)
        return btrm_error_set(BTRM_ECONFIG, "%s is at step %lld, past the config's %lld steps",
                              path, (long long)st.step, (long long)tr->total_steps);
    tr->step = tr->first_step = tr->last_ckpt_step = st.step;
    tr->dbar = st.dbar;
    window *w = &tr->win;
    w->steps = st.window[0];
    w->pairs = st.window[1];
    w->loss = st.window[2];
    w->acc = st.window[3];
    w->dist = st.window[4];
    w->weight = st.window[5];
    w->weight_max = st.window[6];
    w->margin = st.window[7];
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
    struct dirent **names = NULL;
    int n = c->rank == 0 ? list_ckpts(tr->ckpt_dir, &names) : 0;
    int rc = btrm_comm_bcast(c, &n, sizeof n, 0);
    for (int i = 0; i < n && !rc && *resumed < 0; i++) {
        char path[BTRM_PATH_MAX + 300] = "";
        if (c->rank == 0)
            snprintf(path, sizeof path, "%s/%s", tr->ckpt_dir, names[i]->d_name);
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
    if (c->rank == 0) {
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
    }
    if (!rc && *resumed < 0) {
        btrm_log_info("--resume auto: no checkpoint in %s; starting from scratch",
                      tr->ckpt_dir);
        /* a failed load may have overwritten part of the state */
        size_t moments = tr->shard ? (size_t)(tr->hi - tr->lo) : tr->head.n_params;
        memset(tr->exp_avg, 0, moments * sizeof *tr->exp_avg);
        if (tr->exp_avg_sq)
            memset(tr->exp_avg_sq, 0, moments * sizeof *tr->exp_avg_sq);
        memset(&tr->win, 0, sizeof tr->win);
        tr->step = tr->first_step = 0;
        tr->last_ckpt_step = -1;
        tr->dbar = 0.0;
        rc = btrm_comm_agree(c, initial_params(tr, opts));
    }
    return rc;
}

static int write_final(trainer *tr)
{
    int rc = 0;
    if (tr->c->rank == 0) {
        char path[BTRM_PATH_MAX + 64];
        btrm_path_join(path, sizeof path, tr->out_dir, "final.h5");
        btrm_model_meta meta = model_meta(tr);
        rc = btrm_model_write(path, &tr->head, tr->params, &meta);
    }
    return btrm_comm_agree(tr->c, rc);
}

static void write_summary(trainer *tr, const btrm_train_opts *opts, int status_rc)
{
    if (tr->c->rank != 0 || !tr->out_dir[0])
        return;
    const btrm_config *cfg = tr->cfg;
    const char *status = status_rc == 0 ? "ok" : status_rc == BTRM_EPREEMPT ? "preempted"
                                                                            : "failed";
    char hash[17] = "";
    if (opts->config_text)
        snprintf(hash, sizeof hash, "%016llx",
                 (unsigned long long)XXH3_64bits(opts->config_text, strlen(opts->config_text)));
    json_t *data = json_array();
    for (int e = -1; e < cfg->data.n_eval; e++) {
        const btrm_pairs *p = e < 0 ? &tr->train : &tr->eval[e];
        char crc[9] = "";
        if (p->chosen) /* opened: the checksum is known */
            snprintf(crc, sizeof crc, "%08x", (unsigned)p->crc32);
        json_array_append_new(data, json_pack("{s:s, s:s, s:s}", "role", e < 0 ? "train" : "eval",
                                              "path", e < 0 ? cfg->data.train : cfg->data.eval[e],
                                              "crc32", crc));
    }
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:I, s:I, s:f}",
                            "status", status, "btrm_version", PACKAGE_VERSION,
                            "run_name", cfg->run.name, "config_hash", hash, "data", data,
                            "ranks", tr->c->size, "steps", (json_int_t)tr->step,
                            "total_steps", (json_int_t)tr->total_steps,
                            "wall_s", btrm_comm_wtime() - tr->t_start);
    if (status_rc != 0)
        json_object_set_new(doc, "error", json_string(btrm_error_msg()));
    json_object_set(doc, "final_metrics", tr->last_metrics ? tr->last_metrics : json_null());
    json_object_set(doc, "final_eval", tr->last_evals ? tr->last_evals : json_null());
    json_object_set_new(doc, "dist_ema", json_real(tr->dbar));
    json_object_set_new(doc, "loss", json_string(btrm_config_enum_name("loss.type", cfg->loss.type)));
    json_object_set_new(doc, "seed", json_integer((json_int_t)cfg->run.seed));
    char path[BTRM_PATH_MAX + 64];
    btrm_path_join(path, sizeof path, tr->out_dir, "summary.json");
    int saved_code = btrm_error_code();
    char saved[BTRM_ERROR_MAX];
    snprintf(saved, sizeof saved, "%s", btrm_error_msg());
    if (btrm_mkdir_p(tr->out_dir) == 0 && btrm_json_write_atomic(path, doc) == 0)
        btrm_log_debug("wrote %s", path);
    else
        btrm_log_warn("could not write %s: %s", path, btrm_error_msg());
    btrm_error_set(saved_code, "%s", saved);
    json_decref(doc);
}

static void trainer_free(trainer *tr)
{
    btrm_pairs_close(&tr->train);
    for (int e = 0; e < tr->n_eval; e++)
        btrm_pairs_close(&tr->eval[e]);
    btrm_head_ws_free(&tr->ws);
    free(tr->params);
    free(tr->fused);
    free(tr->shard_grad);
    free(tr->counts);
    free(tr->displs);
    free(tr->rs_counts);
    free(tr->exp_avg);
    free(tr->exp_avg_sq);
    free(tr->x);
    free(tr->dist);
    free(tr->g_diff);
    free(tr->g_sum);
    free(tr->margin);
    free(tr->perm);
    if (tr->metrics)
        fclose(tr->metrics);
    if (tr->evals)
        fclose(tr->evals);
    json_decref(tr->last_metrics);
    json_decref(tr->last_evals);
}

int btrm_train_run(const btrm_config *cfg, const btrm_train_opts *opts, const btrm_comm *c)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.cfg = cfg;
    tr.c = c;
    tr.last_ckpt_step = -1;
    tr.t_start = btrm_comm_wtime();
    int rc = btrm_config_out_dir(cfg, tr.out_dir, sizeof tr.out_dir);
    set_ckpt_dir(&tr);
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    openblas_set_num_threads(cfg->run.threads);
#endif
    /* SIGUSR1 (Slurm's --signal lead time, forwarded by mpirun) and SIGTERM:
     * checkpoint at the next step boundary and exit for a requeue. SA_RESTART:
     * a signal arriving inside a blocking system call (a write to a network
     * file system, a wait inside MPI or HDF5) restarts the call instead of
     * failing it with EINTR in a library that may not retry. */
    struct sigaction stop_action, old_usr1, old_term;
    memset(&stop_action, 0, sizeof stop_action);
    stop_action.sa_handler = on_stop_signal;
    stop_action.sa_flags = SA_RESTART;
    sigemptyset(&stop_action.sa_mask);
    stop_signal = 0;
    sigaction(SIGUSR1, &stop_action, &old_usr1);
    sigaction(SIGTERM, &stop_action, &old_term);

    int64_t resumed = -1;
    if (!rc)
        rc = setup_outputs(&tr, opts);
    if (!rc)
        rc = btrm_comm_agree(c, open_data(&tr));
    if (!rc)
        rc = btrm_comm_agree(c, init_model(&tr, opts));
    if (!rc)
        rc = btrm_comm_agree(c, alloc_work(&tr));
    if (!rc && opts->resume)
        rc = resume(&tr, opts, &resumed);
    if (!rc)
        rc = open_logs(&tr, opts, resumed);
    if (rc)
        goto done;
    btrm_log_info("training %s head (%zu parameters) with %s on %s: %lld pairs, dim %d, "
                  "global batch %lld, %lld steps, %d rank%s on %d node%s%s",
                  btrm_config_enum_name("model.head", cfg->model.head), tr.head.n_params,
                  btrm_config_enum_name("loss.type", cfg->loss.type), cfg->data.train,
                  (long long)tr.n_pairs, tr.train.dim, (long long)tr.batch,
                  (long long)tr.total_steps, c->size, c->size > 1 ? "s" : "", c->n_nodes,
                  c->n_nodes > 1 ? "s" : "",
                  tr.shard ? ", optimizer sharded" : "");
    tr.win.t0 = btrm_comm_wtime();
    if (resumed < 0 && cfg->checkpoint.save_initial)
        rc = save_checkpoint(&tr, opts);
    int stop = 0;
    if (!rc && cfg->optim.type == BTRM_OPTIM_NEWTON)
        rc = newton_train(&tr);
    while (!rc && cfg->optim.type != BTRM_OPTIM_NEWTON && tr.step < tr.total_steps) {
        rc = train_step(&tr, &stop);
        if (rc == BTRM_EDATA) /* detected alike by every rank */
            break;
        if (rc) /* an MPI failure inside a collective phase: others may be waiting */
            btrm_comm_abort(c, rc, "step %lld: %s", (long long)tr.step, btrm_error_msg());
        if (tr.step % cfg->train.log_every == 0 || tr.step == tr.total_steps)
            log_metrics(&tr);
        if (cfg->train.eval_every > 0 && tr.step % cfg->train.eval_every == 0 &&
            tr.step < tr.total_steps)
            rc = run_evals(&tr);
        if (!rc && tr.step < tr.total_steps &&
            ((cfg->checkpoint.every > 0 && tr.step % cfg->checkpoint.every == 0) || stop))
            rc = save_checkpoint(&tr, opts);
        if (!rc && stop && tr.step < tr.total_steps) {
            btrm_log_progress_end();
            rc = btrm_error_set(BTRM_EPREEMPT, "stopped by a signal at step %lld of %lld after "
                                "checkpointing; run again with --resume auto to continue",
                                (long long)tr.step, (long long)tr.total_steps);
        }
    }
    btrm_log_progress_end();
    if (!rc && tr.total_steps > 0)
        rc = run_evals(&tr);
    if (!rc && tr.last_ckpt_step != tr.step && tr.total_steps > 0)
        rc = save_checkpoint(&tr, opts);
    if (!rc)
        rc = write_final(&tr);
    if (!rc)
        btrm_log_info("done: %lld steps in %.1f s; model in %s/final.h5", (long long)tr.step,
                      btrm_comm_wtime() - tr.t_start, tr.out_dir);
done:
    write_summary(&tr, opts, rc);
    trainer_free(&tr);
    sigaction(SIGUSR1, &old_usr1, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}
