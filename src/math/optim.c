/* optim.c: AdamW and SGD with PyTorch semantics, gradient clipping and
 * learning-rate schedules (see optim.h, docs/training.md).
 *
 * The updates are memory bound (AdamW reads p, g, m, v and writes p, m, v once
 * per element), so each is one pass with the per-step scalars computed once in
 * double and rounded to float, as PyTorch rounds Python scalars to the tensor's
 * dtype; the element math is float, like torch's float32 CPU kernels. */
#include "optim.h"

#include "dtype.h"
#include "types.h"

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* AdamW's per-step constants, rounded to float once per step. */
typedef struct adamw_k {
    float decay;    /* 1 - lr wd */
    float w1;       /* 1 - b1: torch's m.lerp_(g, 1 - b1) = m + (1 - b1)(g - m)
                     * (its form for b1 > 0.5; other b1 agree to rounding) */
    float b2, w2;   /* b2, 1 - b2 */
    float step;     /* lr / (1 - b1^t) */
    float bc2_sqrt; /* sqrt(1 - b2^t) */
    float eps;
    float scale;    /* the gradient's factor (clipping), applied first */
} adamw_k;

/* The element update, in this order for every element and every clone:
 *   g = scale g;  m = m + w1 (g - m);  v = v b2 + w2 g g;
 *   p = p decay - step (m / (sqrt(v) / bc2_sqrt + eps))
 * Each operation is one IEEE float operation (no fused multiply-add: C11
 * mode keeps -ffp-contract off; sqrtf is the correctly rounded instruction
 * under -fno-math-errno), so the vector clones give the bits of this scalar
 * code. */
static inline void adamw_one(const adamw_k *k, float *p, float g, float *m, float *v)
{
    g = g * k->scale;
    *m = *m + k->w1 * (g - *m);
    *v = *v * k->b2 + k->w2 * g * g;
    *p = *p * k->decay - k->step * (*m / (sqrtf(*v) / k->bc2_sqrt + k->eps));
}

/* One pass over the four arrays (memory bound: p, g, m, v read, p, m, v
 * written once), in blocks of OPTIM_BLOCK elements whose fixed trip count
 * lets -O2 vectorize them: 16 floats, one AVX-512 register in the clone that
 * runs on such CPUs (BTRM_TARGET_CLONES, dtype.h). What the pass adds (the
 * sum of squares, the bf16 copy of p) is computed on the block in registers,
 * hidden behind the memory traffic; each combination is its own loop
 * (constant flags, inlined). Sum of squares lanes: lane = index mod
 * SUMSQ_LANES, each in index order, added pairwise at the end. */
#define OPTIM_BLOCK 16
enum { SUMSQ_LANES = 8 };
static double lanes_total(double *acc)
{
    for (int w = SUMSQ_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    return acc[0];
}

static inline __attribute__((always_inline)) void
adamw_loop(const adamw_k *k, float *restrict p, const float *restrict g, float *restrict m,
           float *restrict v, size_t n, double *restrict acc, uint16_t *restrict p16,
           const int with_sumsq, const int with_bf16)
{
    double a[SUMSQ_LANES] = { 0 };
    size_t i = 0;
    for (; i + OPTIM_BLOCK <= n; i += OPTIM_BLOCK) {
        if (with_sumsq)
            for (int h = 0; h < OPTIM_BLOCK; h += SUMSQ_LANES)
                for (int j = 0; j < SUMSQ_LANES; j++) { /* index i + h + j: lane j */
                    float gs = g[i + h + j] * k->scale;
                    a[j] += (double)gs * (double)gs;
                }
        for (int j = 0; j < OPTIM_BLOCK; j++)
            adamw_one(k, p + i + j, g[i + j], m + i + j, v + i + j);
        if (with_bf16)
            btrm_bf16_block16(p16 + i, p + i);
    }
    for (int j = 0; i < n; i++, j++) {
        if (with_sumsq) {
            float gs = g[i] * k->scale;
            a[j % SUMSQ_LANES] += (double)gs * (double)gs;
        }
        adamw_one(k, p + i, g[i], m + i, v + i);
        if (with_bf16)
            p16[i] = btrm_float_to_bf16(p[i]);
    }
    if (with_sumsq)
        memcpy(acc, a, sizeof a);
}

BTRM_TARGET_CLONES
static void adamw_run(const adamw_k *k, float *restrict p, const float *restrict g,
                      float *restrict m, float *restrict v, size_t n, double *restrict acc,
                      uint16_t *restrict p16)
{
    if (acc && p16)
        adamw_loop(k, p, g, m, v, n, acc, p16, 1, 1);
    else if (acc)
        adamw_loop(k, p, g, m, v, n, acc, NULL, 1, 0);
    else if (p16)
        adamw_loop(k, p, g, m, v, n, NULL, p16, 0, 1);
    else
        adamw_loop(k, p, g, m, v, n, NULL, NULL, 0, 0);
}

/* SGD over len elements. mode 0: no momentum; 1: first step, buf = d;
 * 2: buf = momentum buf + d. g = scale g, d = g + wd p, then p -= lr d
 * (torch's order). */
typedef struct sgd_k {
    float scale, lr, wd, mom;
    int mode;
} sgd_k;
static inline void sgd_span(const sgd_k *k, float *restrict p, const float *restrict g,
                            float *restrict buf, size_t len)
{
    for (size_t j = 0; j < len; j++) {
        float d = g[j] * k->scale + k->wd * p[j];
        if (k->mode == 2)
            d = buf[j] * k->mom + d;
        if (k->mode != 0)
            buf[j] = d;
        p[j] = p[j] - k->lr * d;
    }
}

/* Fixed-size blocks so that -O2 vectorizes, then the tail. */
BTRM_TARGET_CLONES
static void sgd_run(const sgd_k *k, float *restrict p, const float *restrict g,
                    float *restrict buf, size_t n)
{
    size_t i = 0;
    for (; i + OPTIM_BLOCK <= n; i += OPTIM_BLOCK)
        sgd_span(k, p + i, g + i, buf ? buf + i : NULL, OPTIM_BLOCK);
    sgd_span(k, p + i, g + i, buf ? buf + i : NULL, n - i);
}

/* acc[lane] += (scale x)^2 over x[len] (len a multiple of SUMSQ_LANES except
 * at the very end), continuing the lanes of earlier calls */
BTRM_TARGET_CLONES
static void lanes_add(double *restrict acc, const float *restrict x, size_t len, float scale)
{
    double a[SUMSQ_LANES];
    memcpy(a, acc, sizeof a);
    size_t i = 0;
    for (; i + SUMSQ_LANES <= len; i += SUMSQ_LANES)
        for (int j = 0; j < SUMSQ_LANES; j++) {
            float s = x[i + j] * scale;
            a[j] += (double)s * (double)s;
        }
    for (int j = 0; i < len; i++, j++) {
        float s = x[i] * scale;
        a[j] += (double)s * (double)s;
    }
    memcpy(acc, a, sizeof a);
}

/* SGD's pass runs in chunks small enough to stay in cache, so that the sum
 * of squares (which reads the chunk's gradient first) and the bf16 copy of
 * the updated parameters (which reads them after) cost no second trip to
 * memory. */
enum { PASS_CHUNK = 2048 }; /* a multiple of OPTIM_BLOCK and SUMSQ_LANES */

double btrm_optim_adamw_pass(float *param, const float *grad, float *exp_avg,
                             float *exp_avg_sq, size_t n, double lr, double beta1, double beta2,
                             double eps, double weight_decay, int64_t t,
                             const btrm_optim_pass *pass)
{
    /* torch: p *= 1 - lr wd; m = m + (1-b1)(g - m); v = b2 v + (1-b2) g g;
     * p -= lr/(1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
    const adamw_k k = {
        .decay = (float)(1.0 - lr * weight_decay),
        .w1 = (float)(1.0 - beta1),
        .b2 = (float)beta2,
        .w2 = (float)(1.0 - beta2),
        .step = (float)(lr / (1.0 - pow(beta1, (double)t))),
        .bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)t)),
        .eps = (float)eps,
        .scale = pass ? pass->grad_scale : 1.0f,
    };
    double acc[SUMSQ_LANES] = { 0 };
    const int want = pass && pass->want_sumsq;
    adamw_run(&k, param, grad, exp_avg, exp_avg_sq, n, want ? acc : NULL,
              pass ? pass->param_bf16 : NULL);
    return want ? lanes_total(acc) : 0.0;
}

void btrm_optim_adamw(float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                      size_t n, double lr, double beta1, double beta2, double eps,
                      double weight_decay, int64_t t)
{
    btrm_optim_adamw_pass(param, grad, exp_avg, exp_avg_sq, n, lr, beta1, beta2, eps,
                          weight_decay, t, NULL);
}

double btrm_optim_sgd_pass(float *param, const float *grad, float *momentum_buf, size_t n,
                           double lr, double momentum, double weight_decay, int64_t t,
                           const btrm_optim_pass *pass)
{
    /* torch: the momentum buffer starts as a copy of the first gradient */
    const sgd_k k = { .scale = pass ? pass->grad_scale : 1.0f, .lr = (float)lr,
                      .wd = (float)weight_decay, .mom = (float)momentum,
                      .mode = momentum == 0.0 ? 0 : t <= 1 ? 1 : 2 };
    const float scale = k.scale;
    float *buf = k.mode ? momentum_buf : NULL;
    double acc[SUMSQ_LANES] = { 0 };
    for (size_t off = 0; off < n; off += PASS_CHUNK) {
        size_t len = n - off < PASS_CHUNK ? n - off : PASS_CHUNK;
        if (pass && pass->want_sumsq)
            lanes_add(acc, grad + off, len, scale);
        sgd_run(&k, param + off, grad + off, buf ? buf + off : NULL, len);
        if (pass && pass->param_bf16)
            btrm_dtype_from_f32(pass->param_bf16 + off, BTRM_DTYPE_BF16, param + off, len);
    }
    return pass && pass->want_sumsq ? lanes_total(acc) : 0.0;
}

void btrm_optim_sgd(float *param, const float *grad, float *momentum_buf, size_t n, double lr,
                    double momentum, double weight_decay, int64_t t)
{
    btrm_optim_sgd_pass(param, grad, momentum_buf, n, lr, momentum, weight_decay, t, NULL);
}

static double adamw_step(const btrm_optim_hparams *hp, int64_t t, float *param,
                         const float *grad, float *const *state, size_t n,
                         const btrm_optim_pass *pass)
{
    return btrm_optim_adamw_pass(param, grad, state[0], state[1], n, hp->lr, hp->beta1,
                                 hp->beta2, hp->eps, hp->weight_decay, t, pass);
}

static double sgd_step(const btrm_optim_hparams *hp, int64_t t, float *param, const float *grad,
                       float *const *state, size_t n, const btrm_optim_pass *pass)
{
    return btrm_optim_sgd_pass(param, grad, state[0], n, hp->lr, hp->momentum, hp->weight_decay,
                               t, pass);
}

static const btrm_optim_ops optim_table[] = {
    [BTRM_OPTIM_ADAMW] = {"adamw", 2, {"exp_avg", "exp_avg_sq"}, adamw_step},
    [BTRM_OPTIM_SGD] = {"sgd", 1, {"momentum_buffer", NULL}, sgd_step},
};

const btrm_optim_ops *btrm_optim_lookup(int type)
{
    if (type < 0 || type >= (int)(sizeof optim_table / sizeof optim_table[0]))
        return NULL;
    return &optim_table[type];
}

/* Sum of squares in double over SUMSQ_LANES partial sums (lanes_total's
 * order, as the optimizer passes compute it): a fixed order (deterministic),
 * not serialised on one addition chain. With SSE2 the lanes live in vector
 * registers (2 doubles each); elsewhere the same lanes are plain doubles, so
 * both give the same bits. */
double btrm_optim_sumsq(const float *x, size_t n)
{
    double acc[SUMSQ_LANES] = { 0 };
    size_t i = 0;
#if defined(__SSE2__)
    __m128d a0 = _mm_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + SUMSQ_LANES <= n; i += SUMSQ_LANES) {
        __m128 f0 = _mm_loadu_ps(x + i), f1 = _mm_loadu_ps(x + i + 4);
        __m128d x0 = _mm_cvtps_pd(f0), x1 = _mm_cvtps_pd(_mm_movehl_ps(f0, f0));
        __m128d x2 = _mm_cvtps_pd(f1), x3 = _mm_cvtps_pd(_mm_movehl_ps(f1, f1));
        a0 = _mm_add_pd(a0, _mm_mul_pd(x0, x0));
        a1 = _mm_add_pd(a1, _mm_mul_pd(x1, x1));
        a2 = _mm_add_pd(a2, _mm_mul_pd(x2, x2));
        a3 = _mm_add_pd(a3, _mm_mul_pd(x3, x3));
    }
    _mm_storeu_pd(acc, a0);
    _mm_storeu_pd(acc + 2, a1);
    _mm_storeu_pd(acc + 4, a2);
    _mm_storeu_pd(acc + 6, a3);
#else
    for (; i + SUMSQ_LANES <= n; i += SUMSQ_LANES)
        for (int j = 0; j < SUMSQ_LANES; j++)
            acc[j] += (double)x[i + j] * (double)x[i + j];
#endif
    for (int j = 0; i < n; i++, j++)
        acc[j] += (double)x[i] * (double)x[i];
    return lanes_total(acc);
}

double btrm_optim_clip_coef(double total_norm, double max_norm)
{
    if (max_norm <= 0.0)
        return 1.0;
    double coef = max_norm / (total_norm + 1e-6);
    /* torch.clamp(coef, max=1) keeps a NaN norm's NaN: the caller must see it. */
    return isnan(coef) || coef < 1.0 ? coef : 1.0;
}

double btrm_sched_factor(int schedule, int64_t step, int64_t warmup, int64_t total)
{
    if (step < warmup)
        return (double)step / (double)(warmup > 1 ? warmup : 1);
    const double span = (double)(total - warmup > 1 ? total - warmup : 1);
    switch (schedule) {
    case BTRM_SCHED_CONSTANT: return 1.0;
    case BTRM_SCHED_LINEAR: return fmax(0.0, (double)(total - step) / span);
    case BTRM_SCHED_COSINE: {
        const double pi = 3.14159265358979323846;
        double progress = (double)(step - warmup) / span;
        /* num_cycles = 0.5: cos(pi * 2 * 0.5 * progress) */
        return fmax(0.0, 0.5 * (1.0 + cos(pi * progress)));
    }
    default: return NAN;
    }
}
