/* bench/step-bench.c: where the time of one training step goes, phase by
 * phase, on one process without MPI. It calls the same math-layer functions
 * as src/run/train.c's train_step, in the same order, on the same buffer sizes:
 *
 *   gather    2n feature rows copied from a [rows_total, D] table in a random
 *             order, converted from the table's type (--features) to the
 *             type the head takes (btrm_eval_gather_typed's loop)
 *   forward   btrm_head_forward_typed on [2n, D]
 *   distance  btrm_head_pair_distance
 *   loss      btrm_loss_pairs (bt, scale 1/n)
 *   zero      memset of the loss sums (4 floats): backward writes the whole
 *             gradient (ws.grad_overwrite, as train.c sets it)
 *   backward  btrm_head_pair_backward_typed
 *   sumsq     btrm_optim_sumsq: the clipping norm, a pass of its own with
 *             --clip (optim.grad_clip > 0); without, AdamW's pass gives it
 *   adamw     btrm_optim_adamw_pass over all parameters (and the norm; in bf16,
 *             the bf16 copy of the weights the next forward multiplies by)
 *
 * It prints, per phase, the median and the minimum over the timed steps, and
 * the step's GFLOP/s counted as in docs/performance.md. The MPI collectives
 * are not in it (bench/train-bench.sh measures whole runs).
 *
 * Build: make -C bench step-bench (links the layer libraries ../src/LAYER/libbtrm_LAYER.a).
 * Usage: bench/step-bench [--head mlp|linear] [--dim 4096] [--hidden 1024]
 *        [--pairs 256] [--table-rows 32768] [--steps 30] [--threads 1]
 *        [--activation gelu|relu|tanh] [--clock wall|cpu] [--direct]
 *        [--precision fp32|bf16] [--features f32|f16|bf16] [--clip]
 * --precision is train.precision; --features the type of the feature table
 * (a pair store's /features, kept as stored in memory). As in train.c, an mlp
 * head in bf16 gathers its rows as bf16 (they are only a GEMM input), and a
 * linear head reads bf16 features as bf16 rows. 
 * --clock cpu times with this thread's CPU time (CLOCK_THREAD_CPUTIME_ID):
 * on a shared machine it leaves out the time other processes held the core
 * (valid with --threads 1, where OpenBLAS computes in the calling thread). */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "dtype.h"
#include "error.h"
#include "gemm.h"
#include "head.h"
#include "loss.h"
#include "optim.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-clock.h"

enum { GATHER, FORWARD, DISTANCE, LOSS, ZERO, BACKWARD, SUMSQ, ADAMW, N_PHASES };
static const char *phase_name[N_PHASES] = { "gather",   "forward", "distance", "loss",
                                            "zero",     "backward", "sumsq",   "adamw" };

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "step-bench: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}


/* --direct (linear head only): a prototype, not btrm code, of a step that
 * reads the feature rows where they lie instead of gathering them into a
 * [2n, D] block first. Pass 1, per pair: r_c = w.x_c + b, r_r = w.x_r + b and
 * d = ||x_c - x_r|| (double), in one sweep over both rows; pass 2 (after the
 * loss): gw += g_i (x_c - x_r). It measures what src/run/train.c could gain with
 * a head entry point taking row pointers (docs/performance.md). */
#include <emmintrin.h>
static float hsum_ps(__m128 v)
{
    float t[4];
    _mm_storeu_ps(t, v);
    return (t[0] + t[1]) + (t[2] + t[3]);
}
static void direct_forward(const float *const *rows, int n, int D, const float *w, float b,
                           float *reward, float *dist)
{
    for (int i = 0; i < n; i++) {
        const float *xc = rows[i], *xr = rows[n + i];
        __m128 ac = _mm_setzero_ps(), ar = ac;
        __m128d d0 = _mm_setzero_pd(), d1 = d0;
        int k = 0;
        for (; k + 4 <= D; k += 4) {
            __m128 wc = _mm_loadu_ps(w + k), c = _mm_loadu_ps(xc + k), r = _mm_loadu_ps(xr + k);
            ac = _mm_add_ps(ac, _mm_mul_ps(wc, c));
            ar = _mm_add_ps(ar, _mm_mul_ps(wc, r));
            __m128d lo = _mm_sub_pd(_mm_cvtps_pd(c), _mm_cvtps_pd(r));
            __m128d hi = _mm_sub_pd(_mm_cvtps_pd(_mm_movehl_ps(c, c)),
                                    _mm_cvtps_pd(_mm_movehl_ps(r, r)));
            d0 = _mm_add_pd(d0, _mm_mul_pd(lo, lo));
            d1 = _mm_add_pd(d1, _mm_mul_pd(hi, hi));
        }
        double t[4];
        _mm_storeu_pd(t, d0);
        _mm_storeu_pd(t + 2, d1);
        double sq = (t[0] + t[1]) + (t[2] + t[3]);
        float sc = hsum_ps(ac), sr = hsum_ps(ar);
        for (; k < D; k++) {
            sc += w[k] * xc[k];
            sr += w[k] * xr[k];
            double d = (double)xc[k] - (double)xr[k];
            sq += d * d;
        }
        reward[i] = sc + b;
        reward[n + i] = sr + b;
        dist[i] = (float)sqrt(sq);
    }
}
static void direct_backward(const float *const *rows, int n, int D, const float *g_diff,
                            float *gw)
{
    for (int i = 0; i < n; i++) {
        const float *xc = rows[i], *xr = rows[n + i];
        __m128 g = _mm_set1_ps(g_diff[i]);
        int k = 0;
        for (; k + 4 <= D; k += 4)
            _mm_storeu_ps(gw + k, _mm_add_ps(_mm_loadu_ps(gw + k),
                                             _mm_mul_ps(g, _mm_sub_ps(_mm_loadu_ps(xc + k),
                                                                      _mm_loadu_ps(xr + k)))));
        for (; k < D; k++)
            gw[k] += g_diff[i] * (xc[k] - xr[k]);
    }
}

int main(int argc, char **argv)
{
    const char *head_kind = "mlp", *act_name = "gelu";
    int dim = 4096, hidden = 1024, pairs = 256, steps = 30, threads = 1;
    long table_rows = 32768;
    int direct = 0, precision = BTRM_PREC_FP32, table_dtype = BTRM_DTYPE_F32, clip = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--direct")) {
            direct = 1;
            continue;
        }
        if (!strcmp(a, "--clip")) {
            clip = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "step-bench: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--head")) head_kind = v;
        else if (!strcmp(a, "--activation")) act_name = v;
        else if (!strcmp(a, "--dim")) dim = atoi(v);
        else if (!strcmp(a, "--hidden")) hidden = atoi(v);
        else if (!strcmp(a, "--pairs")) pairs = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--table-rows")) table_rows = atol(v);
        else if (!strcmp(a, "--precision"))
            precision = !strcmp(v, "bf16") ? BTRM_PREC_BF16 : BTRM_PREC_FP32;
        else if (!strcmp(a, "--features") && btrm_dtype_parse(v) >= 0)
            table_dtype = btrm_dtype_parse(v);
        else if (!strcmp(a, "--clock"))
            bench_clock = !strcmp(v, "cpu") ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
        else {
            fprintf(stderr, "step-bench: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    btrm_gemm_set_threads(threads);
    int kind = strcmp(head_kind, "linear") ? BTRM_HEAD_MLP : BTRM_HEAD_LINEAR;
    int act = !strcmp(act_name, "relu") ? BTRM_ACT_RELU
              : !strcmp(act_name, "tanh") ? BTRM_ACT_TANH : BTRM_ACT_GELU;
    btrm_head head;
    if (btrm_head_init(&head, kind, act, dim, &hidden, kind == BTRM_HEAD_MLP ? 1 : 0)) {
        fprintf(stderr, "step-bench: bad head\n");
        return 2;
    }
    const int n = pairs, rows = 2 * pairs;
    const size_t np = head.n_params;
    btrm_head_ws ws;
    if (btrm_head_ws_init(&ws, &head, rows) ||
        btrm_head_ws_set_precision(&ws, &head, precision)) {
        fprintf(stderr, "step-bench: %s\n", btrm_error_msg());
        return 1;
    }
    ws.grad_overwrite = 1;
    /* as train.c: bf16 rows for an mlp in bf16, or a linear head on bf16 features */
    const int x_dtype = (precision == BTRM_PREC_BF16 && kind == BTRM_HEAD_MLP) ||
                                (kind == BTRM_HEAD_LINEAR && table_dtype == BTRM_DTYPE_BF16)
                            ? BTRM_DTYPE_BF16 : BTRM_DTYPE_F32;
    const size_t telem = btrm_dtype_size(table_dtype), xelem = btrm_dtype_size(x_dtype);
    float *table = xmalloc((size_t)table_rows * dim * sizeof(float));
    uint64_t s = 42;
    for (size_t k = 0; k < (size_t)table_rows * dim; k++)
        table[k] = (float)((double)lcg(&s) / 9007199254740992.0 * 2.0 - 1.0);
    if (table_dtype != BTRM_DTYPE_F32) /* in place: the narrow copy fits in the front */
        for (size_t r = 0; r < (size_t)table_rows; r++)
            btrm_dtype_from_f32((char *)table + r * dim * telem, table_dtype,
                                table + r * dim, (size_t)dim);
    float *params = xmalloc(np * sizeof *params);
    float *fused = calloc(np + 4, sizeof *fused), *grad = fused + 4;
    float *m = calloc(np, sizeof *m), *v = calloc(np, sizeof *v);
    float *x = xmalloc((size_t)rows * dim * sizeof *x);
    float *dist = xmalloc((size_t)n * sizeof *dist), *g_diff = xmalloc((size_t)n * sizeof(float));
    float *g_sum = xmalloc((size_t)n * sizeof(float));
    long *order = xmalloc((size_t)rows * sizeof *order);
    const float **row_ptr = xmalloc((size_t)rows * sizeof *row_ptr);
    if (!fused || !m || !v)
        return 1;
    btrm_head_init_params(&head, params, 1);
    uint16_t *params_bf16 = NULL; /* as train.c keeps them on one rank */
    if (precision == BTRM_PREC_BF16) {
        params_bf16 = xmalloc(np * sizeof *params_bf16);
        btrm_dtype_from_f32(params_bf16, BTRM_DTYPE_BF16, params, np);
        ws.params_bf16 = params_bf16;
    }
    btrm_loss_params lp = { .type = BTRM_LOSS_BT, .eps = 1e-6 };

    const int warm = 3;
    double *t = xmalloc((size_t)N_PHASES * (size_t)steps * sizeof *t);
    double *total = xmalloc((size_t)steps * sizeof *total);
    double dbar = 0.0;
    for (int step = -warm; step < steps; step++) {
        double tp[N_PHASES + 1];
        for (int r = 0; r < rows; r++)
            order[r] = (long)(lcg(&s) % (uint64_t)table_rows);
        if (direct && kind == BTRM_HEAD_LINEAR) {
            /* gather = building the row pointers; forward+distance fused */
            tp[0] = now();
            for (int r = 0; r < rows; r++)
                row_ptr[r] = table + (size_t)order[r] * dim;
            tp[1] = now();
            direct_forward(row_ptr, n, dim, params, params[dim], ws.reward, dist);
            tp[2] = now();
            double sum = 0.0;
            for (int i = 0; i < n; i++)
                sum += dist[i];
            dbar = btrm_loss_dbar_update(dbar, step == -warm, sum / n, 0.9);
            tp[3] = now();
            btrm_loss_stats st = { 0 };
            btrm_loss_pairs(&lp, n, ws.reward, ws.reward + n, dist, NULL, dbar, 1.0 / n, g_diff,
                            g_sum, NULL, &st);
            tp[4] = now();
            memset(fused, 0, (np + 4) * sizeof *fused);
            tp[5] = now();
            direct_backward(row_ptr, n, dim, g_diff, grad);
            tp[6] = now();
            volatile double sumsq = btrm_optim_sumsq(grad, np);
            (void)sumsq;
            tp[7] = now();
            btrm_optim_adamw(params, grad, m, v, np, 1e-4, 0.9, 0.999, 1e-8, 0.01,
                             step + warm + 1);
            tp[8] = now();
            if (step >= 0) {
                for (int p = 0; p < N_PHASES; p++)
                    t[(size_t)p * steps + step] = tp[p + 1] - tp[p];
                total[step] = tp[N_PHASES] - tp[0];
            }
            continue;
        }
        tp[0] = now();
        for (int r = 0; r < rows; r++)
            btrm_dtype_convert((char *)x + (size_t)r * dim * xelem, x_dtype,
                               (const char *)table + (size_t)order[r] * dim * telem, table_dtype,
                               (size_t)dim);
        tp[1] = now();
        btrm_head_forward_typed(&head, params, x, x_dtype, rows, &ws);
        tp[2] = now();
        btrm_head_pair_distance(&head, &ws, x, n, dist);
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += dist[i];
        dbar = btrm_loss_dbar_update(dbar, step == -warm, sum / n, 0.9);
        tp[3] = now();
        btrm_loss_stats st = { 0 };
        btrm_loss_pairs(&lp, n, ws.reward, ws.reward + n, dist, NULL, dbar, 1.0 / n, g_diff,
                        g_sum, NULL, &st);
        tp[4] = now();
        memset(fused, 0, 4 * sizeof *fused);
        tp[5] = now();
        btrm_head_pair_backward_typed(&head, params, x, x_dtype, n, g_diff, g_sum, &ws, grad);
        tp[6] = now();
        volatile double sumsq = clip ? btrm_optim_sumsq(grad, np) : 0.0;
        tp[7] = now();
        btrm_optim_pass pass = { .grad_scale = 1.0f, .want_sumsq = !clip,
                                 .param_bf16 = params_bf16 };
        sumsq += btrm_optim_adamw_pass(params, grad, m, v, np, 1e-4, 0.9, 0.999, 1e-8, 0.01,
                                       step + warm + 1, &pass);
        tp[8] = now();
        if (step >= 0) {
            for (int p = 0; p < N_PHASES; p++)
                t[(size_t)p * steps + step] = tp[p + 1] - tp[p];
            total[step] = tp[N_PHASES] - tp[0];
        }
    }
    /* FLOPs as in docs/performance.md: each hidden layer l (in -> out) costs
     * 2 rows in out forward and 2 rows in out for dW; layers past the first
     * also 2 rows in out for their input's gradient; the output layer's
     * matrix-vector products (4 rows R) are counted too. */
    double flops = 0.0;
    for (int l = 0; l < head.n_layers; l++) {
        double mnk = (double)rows * head.layer[l].out * head.layer[l].in;
        flops += l + 1 < head.n_layers ? (l == 0 ? 4.0 : 6.0) * mnk : 4.0 * mnk;
    }
    if (direct)
        printf("# --direct: linear step without the gather copy (prototype; forward = "
               "forward+distance fused, distance = 0)\n");
    printf("# step-bench: head %s D=%d%s%d, %d pairs (%d rows), %zu params, %d BLAS thread%s, "
           "%d timed steps after %d warm-up, %s clock; precision %s, %s features, GEMMs: %s "
           "(fp32 backend %s)\n", head_kind, dim,
           kind == BTRM_HEAD_MLP ? " H=" : " ", kind == BTRM_HEAD_MLP ? hidden : 0, n, rows, np,
           threads, threads > 1 ? "s" : "", steps, warm,
           bench_clock_name(), btrm_precision_name(precision),
           btrm_dtype_name(table_dtype), btrm_gemm_library(), btrm_gemm_backend());
    printf("%-10s %10s %10s\n", "phase", "median ms", "min ms");
    double sum_med = 0.0;
    for (int p = 0; p < N_PHASES; p++) {
        double *a = t + (size_t)p * steps;
        qsort(a, (size_t)steps, sizeof *a, cmp_double);
        printf("%-10s %10.3f %10.3f\n", phase_name[p], 1e3 * a[steps / 2], 1e3 * a[0]);
        sum_med += a[steps / 2];
    }
    qsort(total, (size_t)steps, sizeof *total, cmp_double);
    printf("%-10s %10.3f %10.3f\n", "step", 1e3 * total[steps / 2], 1e3 * total[0]);
    printf("# sum of phase medians %.3f ms; %.3f GFLOP per step; median step %.1f GFLOP/s, "
           "%.0f pairs/s; best step %.1f GFLOP/s, %.0f pairs/s\n", 1e3 * sum_med, flops * 1e-9,
           flops / total[steps / 2] * 1e-9, n / total[steps / 2], flops / total[0] * 1e-9,
           n / total[0]);
    /* btrm_gemm's own record (warm-up steps included): per shape, the time
     * inside btrm_gemm, operand rounding to bf16 included */
    btrm_gemm_stat st[BTRM_GEMM_MAX_SHAPES];
    int n_st = btrm_gemm_stats(st, BTRM_GEMM_MAX_SHAPES);
    for (int i = 0; i < n_st; i++)
        printf("# gemm %s %s%s %dx%dx%d: %s, %lld calls, %.3f ms per call, %.1f GFLOP/s\n",
               btrm_precision_name(st[i].precision), st[i].trans_a ? "T" : "N",
               st[i].trans_b ? "T" : "N", st[i].m, st[i].n, st[i].k, st[i].impl,
               (long long)st[i].calls, 1e3 * st[i].seconds / (double)st[i].calls,
               2.0 * st[i].m * (double)st[i].n * st[i].k * (double)st[i].calls /
                   st[i].seconds * 1e-9);
    btrm_head_ws_free(&ws);
    free(params_bf16);
    free(table), free(params), free(fused), free(m), free(v), free(x), free(dist);
    free(g_diff), free(g_sum), free(order), free(t), free(total), free(row_ptr);
    return 0;
}
