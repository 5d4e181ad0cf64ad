/* head.c: linear and mlp reward heads, forward and pair backward; every
 * matrix product through btrm_gemm. */
#include "head.h"

#include "dtype.h"
#include "error.h"
#include "gemm.h"
#include "rng.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int btrm_head_init(btrm_head *head, int kind, int activation, int dim,
                   const int *hidden, int n_hidden)
{
    memset(head, 0, sizeof *head);
    if (kind != BTRM_HEAD_LINEAR && kind != BTRM_HEAD_MLP)
        return btrm_error_set(BTRM_ECONFIG, "model.head: unknown head kind %d", kind);
    if (dim <= 0)
        return btrm_error_set(BTRM_ECONFIG, "head input dimension %d: must be > 0", dim);
    if (kind == BTRM_HEAD_LINEAR) {
        n_hidden = 0; /* a linear head ignores model.hidden */
    } else {
        if (activation != BTRM_ACT_GELU && activation != BTRM_ACT_RELU &&
            activation != BTRM_ACT_TANH)
            return btrm_error_set(BTRM_ECONFIG, "model.activation: unknown activation %d",
                                  activation);
        if (n_hidden < 1 || n_hidden > BTRM_MAX_HIDDEN || !hidden)
            return btrm_error_set(BTRM_ECONFIG,
                                  "model.hidden: an mlp head needs 1 to %d hidden sizes, got %d",
                                  BTRM_MAX_HIDDEN, n_hidden);
        for (int l = 0; l < n_hidden; l++)
            if (hidden[l] <= 0)
                return btrm_error_set(BTRM_ECONFIG, "model.hidden[%d] = %d: must be > 0", l,
                                      hidden[l]);
    }
    head->kind = kind;
    head->activation = activation;
    head->dim = dim;
    head->n_layers = n_hidden + 1;
    head->width[0] = dim;
    for (int l = 0; l < n_hidden; l++)
        head->width[l + 1] = hidden[l];
    head->width[head->n_layers] = 1;
    head->rep_dim = head->width[n_hidden];

    size_t off = 0;
    for (int l = 0; l < head->n_layers; l++) {
        btrm_tensor_view *t = &head->layer[l];
        if (l == head->n_layers - 1)
            snprintf(t->name, sizeof t->name, "out");
        else
            snprintf(t->name, sizeof t->name, "fc%d", l);
        t->out = head->width[l + 1];
        t->in = head->width[l];
        t->weight_off = off;
        off += (size_t)t->out * (size_t)t->in;
        t->bias_off = off;
        off += (size_t)t->out;
    }
    head->n_params = off;
    return 0;
}

void btrm_head_init_params(const btrm_head *head, float *params, uint64_t seed)
{
    /* torch.nn.Linear.reset_parameters: kaiming_uniform_(a = sqrt 5) for the
     * weight is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and so is the bias. */
    btrm_rng rng;
    btrm_rng_seed(&rng, seed, BTRM_RNG_STREAM_INIT);
    for (int l = 0; l < head->n_layers; l++) {
        const btrm_tensor_view *t = &head->layer[l];
        double bound = 1.0 / sqrt((double)t->in);
        size_t nw = (size_t)t->out * (size_t)t->in;
        for (size_t k = 0; k < nw; k++)
            params[t->weight_off + k] = (float)(bound * (2.0 * btrm_rng_uniform(&rng) - 1.0));
        for (int k = 0; k < t->out; k++)
            params[t->bias_off + k] = (float)(bound * (2.0 * btrm_rng_uniform(&rng) - 1.0));
    }
}

int btrm_head_ws_init(btrm_head_ws *ws, const btrm_head *head, int max_rows)
{
    memset(ws, 0, sizeof *ws);
    if (max_rows < 2)
        max_rows = 2;
    ws->max_rows = max_rows;
    size_t rows = (size_t)max_rows;
    size_t max_h = 1;
    int rc;
    for (int l = 0; l + 1 < head->n_layers; l++) {
        size_t h = (size_t)head->width[l + 1];
        if (h > max_h)
            max_h = h;
        if ((rc = BTRM_MALLOC(ws->pre[l], rows * h)) < 0 ||
            (rc = BTRM_MALLOC(ws->act[l], rows * h)) < 0)
            goto fail;
    }
    if ((rc = BTRM_MALLOC(ws->delta, rows * max_h)) < 0 ||
        (rc = BTRM_MALLOC(ws->delta_next, rows * max_h)) < 0 ||
        (rc = BTRM_MALLOC(ws->reward, rows)) < 0)
        goto fail;
    return 0;
fail:
    btrm_head_ws_free(ws);
    return btrm_error_wrap(rc, "head work buffers for %d rows", max_rows);
}

int btrm_head_ws_set_precision(btrm_head_ws *ws, const btrm_head *head, int precision)
{
    int rc = btrm_gemm_supports(precision);
    if (rc)
        return rc;
    ws->precision = precision;
    if (precision != BTRM_PREC_BF16)
        return 0;
    for (int l = 0; l + 1 < head->n_layers; l++)
        if (!ws->in_bf16[l] &&
            (rc = BTRM_MALLOC(ws->in_bf16[l], (size_t)ws->max_rows * head->width[l])) < 0)
            return btrm_error_wrap(rc, "bf16 inputs of layer %d for %d rows", l, ws->max_rows);
    return 0;
}

void btrm_head_ws_free(btrm_head_ws *ws)
{
    if (!ws)
        return;
    for (int l = 0; l < BTRM_MAX_LAYERS; l++) {
        free(ws->pre[l]);
        free(ws->act[l]);
        free(ws->in_bf16[l]);
    }
    free(ws->delta);
    free(ws->delta_next);
    free(ws->pair_diff);
    free(ws->reward);
    memset(ws, 0, sizeof *ws);
}

/* GELU, exact erf form: gelu(z) = z Phi(z), gelu'(z) = Phi(z) + z phi(z), with
 * Phi the standard normal CDF and phi(z) = exp(-z^2/2) / sqrt(2 pi). libm's
 * erff and expf are scalar calls (~10 ns each, ~20 ms of an mlp step at
 * [512, 1024]), so Phi and exp(-z^2/2) are evaluated here with plain float
 * arithmetic that vectorizes (GCC/Clang vector extensions, 16 lanes: one
 * AVX-512 register, or 2 AVX2 / 4 SSE2 registers, the clone picked at run
 * time; a scalar build of the same operations elsewhere, bit-identical lane
 * by lane):
 *   |z| <= 1.5:       Phi = 1/2 + z A(z^2)                A: degree 6
 *   1.5 < |z| <= 6:   Phi = 1 - T (z > 0) or T (z < 0), T = exp(-z^2/2) B(1/(1+|z|)),
 *                     B: degree 7 (T/exp(-z^2/2) is smooth: Mills' ratio)
 *   |z| > 6:          Phi = 1 or 0 (1 - Phi(6) = 1e-9, below float's 1 ulp)
 *   exp(y) = 2^k p(y - k ln2), k = rint(y / ln2), Cody-Waite ln2, p: degree 6.
 * A, B, p are minimax fits (relative error 2.7e-9, 1.3e-8, 1.9e-9), rounded
 * to float. Over every 23rd float in [-9, 9], gelu's absolute error is
 * <= 1.1e-7 and gelu''s <= 1.0e-7 (libm erff/expf: 8.3e-8, 5.9e-8), against
 * 0.5 z erfc(-z/sqrt 2) in double; torch's vectorized float erf is within
 * 1.5e-7. */
#if defined(__GNUC__)
#define GELU_LANES 16
/* The helpers below pass 64-byte vectors by value: they must be inlined into
 * each clone of gelu_span, or a call would pass them by the baseline ABI to
 * code compiled for another (GCC's -Wpsabi). Forced inlining keeps every
 * vector inside one clone. */
#define GELU_INLINE static inline __attribute__((always_inline))
#pragma GCC diagnostic ignored "-Wpsabi" /* warned although every helper is inlined */
typedef float gelu_vf __attribute__((vector_size(64)));
typedef int32_t gelu_vi __attribute__((vector_size(64)));
typedef uint32_t gelu_vu __attribute__((vector_size(64)));
/* comparisons give -1 (true) or 0 per lane */
GELU_INLINE gelu_vf gelu_sel(gelu_vi m, gelu_vf a, gelu_vf b)
{
    return (gelu_vf)((m & (gelu_vi)a) | (~m & (gelu_vi)b));
}
GELU_INLINE gelu_vu gelu_bits(gelu_vf x) { return (gelu_vu)x; }
GELU_INLINE gelu_vf gelu_from_bits(gelu_vu u) { return (gelu_vf)u; }
GELU_INLINE gelu_vf gelu_abs(gelu_vf x) { return (gelu_vf)((gelu_vi)x & 0x7fffffff); }
#else
#define GELU_LANES 1
#define GELU_INLINE static inline
typedef float gelu_vf;
typedef int gelu_vi;
typedef uint32_t gelu_vu;
GELU_INLINE gelu_vf gelu_sel(gelu_vi m, gelu_vf a, gelu_vf b) { return m ? a : b; }
GELU_INLINE gelu_vu gelu_bits(gelu_vf x)
{
    gelu_vu u;
    memcpy(&u, &x, sizeof u);
    return u;
}
GELU_INLINE gelu_vf gelu_from_bits(gelu_vu u)
{
    gelu_vf x;
    memcpy(&x, &u, sizeof x);
    return x;
}
GELU_INLINE gelu_vf gelu_abs(gelu_vf x) { return fabsf(x); }
#endif

/* exp(-s/2) for s = z^2 >= 0; exactly 0 for s >= 174 (below float's normal
 * range). */
GELU_INLINE gelu_vf gelu_gauss(gelu_vf s)
{
    const gelu_vf zero = s - s; /* a broadcast 0 (s is finite or the lane is unused) */
    gelu_vi in_range = s < 174.0f;
    gelu_vf y = gelu_sel(in_range, s, zero + 174.0f) * -0.5f;
    gelu_vf t = y * 1.44269504f + 12582912.0f; /* 1.5 * 2^23: rounds y / ln2 to k */
    gelu_vf k = t - 12582912.0f;
    gelu_vf r = (y - k * 0.693359375f) - k * -2.12194440e-4f; /* ln2 = hi + lo */
    gelu_vf p = r * 1.383684226e-03f + 8.374815807e-03f;
    p = p * r + 4.166822508e-02f;
    p = p * r + 1.666641980e-01f;
    p = p * r + 4.999999106e-01f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    gelu_vf scale = gelu_from_bits((gelu_bits(t) - 0x4B400000u + 127u) << 23); /* 2^k */
    return gelu_sel(in_range, p * scale, zero);
}

/* Phi(z) for |z| <= 1.5, s = z^2 */
GELU_INLINE gelu_vf gelu_cdf_near(gelu_vf z, gelu_vf s)
{
    gelu_vf a = s * 4.115652246e-07f + -8.718372555e-06f;
    a = a * s + 1.143565823e-04f;
    a = a * s + -1.186488778e-03f;
    a = a * s + 9.973241948e-03f;
    a = a * s + -6.649033725e-02f;
    a = a * s + 3.989422917e-01f;
    return z * a + 0.5f;
}

/* Phi(z) for any z, given near = gelu_cdf_near(z, s) and e = gelu_gauss(s) */
GELU_INLINE gelu_vf gelu_cdf_all(gelu_vf z, gelu_vf near, gelu_vf e)
{
    const gelu_vf zero = e - e, one = zero + 1.0f;
    gelu_vf az = gelu_abs(z);
    gelu_vf u = one / (az + 1.0f);
    gelu_vf b = u * 5.887766480e-01f + -2.409216166e+00f;
    b = b * u + 3.569385290e+00f;
    b = b * u + -2.352408886e+00f;
    b = b * u + 3.120936155e-01f;
    b = b * u + 3.618501723e-01f;
    b = b * u + 4.013855755e-01f;
    b = b * u + -6.892324745e-05f;
    gelu_vf tail = e * b;
    gelu_vi positive = z > 0.0f;
    gelu_vf mid = gelu_sel(positive, one - tail, tail);
    gelu_vf far = gelu_sel(positive, one, zero);
    return gelu_sel(az <= 1.5f, near, gelu_sel(az <= 6.0f, mid, far));
}

#define INV_SQRT_2PI_F 0.398942280f /* 1/sqrt(2 pi) */

/* gelu(z) (grad = 0) or gelu'(z) (grad = 1), lane by lane. The tail terms
 * are skipped when every lane has |z| <= 1.5 (the usual case): the selects
 * would discard them, so the result is the same bits either way. */
GELU_INLINE gelu_vf gelu_vec(gelu_vf z, int grad)
{
    gelu_vf s = z * z;
    gelu_vf near = gelu_cdf_near(z, s);
    gelu_vi outside = gelu_abs(z) > 1.5f; /* where gelu_cdf_all does not pick near */
    int any_outside = 0;
#if GELU_LANES > 1
    for (int j = 0; j < GELU_LANES; j++)
        any_outside |= outside[j];
#else
    any_outside = outside;
#endif
    if (!grad && !any_outside)
        return z * near;
    gelu_vf e = gelu_gauss(s);
    gelu_vf cdf = any_outside ? gelu_cdf_all(z, near, e) : near;
    return grad ? cdf + z * (e * INV_SQRT_2PI_F) : z * cdf;
}

/* out[k] = gelu(z[k]) (grad = 0) or gelu'(z[k]) (grad = 1) over len elements;
 * a partial last vector goes through the same code, zero-padded. */
BTRM_TARGET_CLONES
static void gelu_span(const float *z, float *out, size_t len, int grad)
{
    size_t i = 0;
    for (; i + GELU_LANES <= len; i += GELU_LANES) {
        gelu_vf v;
        memcpy(&v, z + i, sizeof v);
        v = gelu_vec(v, grad);
        memcpy(out + i, &v, sizeof v);
    }
    if (i < len) {
        float pad[GELU_LANES] = { 0 };
        gelu_vf v;
        memcpy(pad, z + i, (len - i) * sizeof *pad);
        memcpy(&v, pad, sizeof v);
        v = gelu_vec(v, grad);
        memcpy(pad, &v, sizeof v);
        memcpy(out + i, pad, (len - i) * sizeof *pad);
    }
}

float btrm_head_activate(int activation, float z)
{
    switch (activation) {
    case BTRM_ACT_RELU: return z > 0.0f ? z : 0.0f;
    case BTRM_ACT_TANH: return tanhf(z);
    default: { /* gelu, exact erf form (torch.nn.GELU(approximate='none')) */
        float a;
        gelu_span(&z, &a, 1, 0);
        return a;
    }
    }
}

/* d act / dz for relu and tanh; tanh uses its output a = tanh(z): 1 - a^2.
 * (gelu goes through gelu_span.) */
static inline float act_grad(int activation, float z, float a)
{
    switch (activation) {
    case BTRM_ACT_RELU: return z > 0.0f ? 1.0f : 0.0f;
    default: return 1.0f - a * a;
    }
}

float btrm_head_activate_grad(int activation, float z)
{
    if (activation == BTRM_ACT_GELU) {
        float g;
        gelu_span(&z, &g, 1, 1);
        return g;
    }
    return act_grad(activation, z, btrm_head_activate(activation, z));
}

/* g[k] = act'(z[k]) (a[k] = act(z[k]), for tanh). */
enum { ACT_CHUNK = 256 }; /* act' values held on the stack at a time */
static void activate_grad_all(int activation, const float *z, const float *a, float *g,
                              size_t len)
{
    if (activation == BTRM_ACT_GELU) {
        gelu_span(z, g, len, 1);
        return;
    }
    for (size_t k = 0; k < len; k++)
        g[k] = act_grad(activation, z[k], a[k]);
}

/* a[k] = act(z[k]); the switch outside the loop keeps each loop simple. */
static void activate_all(int activation, const float *z, float *a, size_t len)
{
    switch (activation) {
    case BTRM_ACT_RELU:
        for (size_t k = 0; k < len; k++)
            a[k] = z[k] > 0.0f ? z[k] : 0.0f;
        break;
    case BTRM_ACT_TANH:
        for (size_t k = 0; k < len; k++)
            a[k] = tanhf(z[k]);
        break;
    default:
        gelu_span(z, a, len, 0);
        break;
    }
}

/* Rows of the representation h: float32, or (a linear head fed bf16
 * features) bf16, widened exactly as they are read. The kernels below are
 * written once over both (constant flag, inlined) and compiled per ISA
 * (BTRM_TARGET_CLONES); lanes and orders are fixed, so every clone gives the
 * same bits. */
#define KERNEL static inline __attribute__((always_inline))

KERNEL float rep_at(const void *h, size_t k, int bf16)
{
    return bf16 ? btrm_bf16_to_float(((const uint16_t *)h)[k]) : ((const float *)h)[k];
}

#if defined(__GNUC__)
/* 8 and 16 lanes in vector types: one AVX-512 register per v8d/v16f in that
 * clone, several narrower ones in the others, the same lane arithmetic */
typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef uint16_t v16h __attribute__((vector_size(32)));

KERNEL v8d load8d(const void *h, size_t k) /* 8 floats as doubles */
{
    v8f f;
    memcpy(&f, (const float *)h + k, sizeof f);
    return __builtin_convertvector(f, v8d);
}

KERNEL v16f load16f(const void *h, size_t k, int bf16)
{
    v16f f;
    if (bf16) {
        v16h x;
        memcpy(&x, (const uint16_t *)h + k, sizeof x);
        f = (v16f)(__builtin_convertvector(x, v16u) << 16);
    } else {
        memcpy(&f, (const float *)h + k, sizeof f);
    }
    return f;
}
#endif

/* sum_k (a[k] - b[k])^2 in double over DIST_LANES partial sums, lane = k mod
 * DIST_LANES (bf16 rows: see below), added pairwise at the end: a fixed order
 * (deterministic), not one serial addition chain; (double)a - (double)b is
 * exact for floats. */
enum { DIST_LANES = 8 };
KERNEL double sq_dist_t(const void *a, const void *b, size_t len, int bf16)
{
    double acc[DIST_LANES] = { 0 };
    size_t k = 0;
#if defined(__GNUC__)
    v8d s = { 0 };
    if (bf16) {
        /* 16 bf16 values as 8 words: the low halves (even k) and high halves
         * (odd k) become floats by a shift and a mask, no lane shuffles. The
         * difference of two bf16 values is formed in float: exact unless
         * their exponents differ by more than 16 (then it is the float32
         * rounding of it). Lane j sums k = 16i + 2j in s and k = 16i + 2j + 1
         * in s_odd, added lane by lane after the loop. */
        v8d s_odd = { 0 };
        for (; k + 2 * DIST_LANES <= len; k += 2 * DIST_LANES) {
            v8u wa, wb;
            memcpy(&wa, (const uint16_t *)a + k, sizeof wa);
            memcpy(&wb, (const uint16_t *)b + k, sizeof wb);
            v8d de = __builtin_convertvector((v8f)(wa << 16) - (v8f)(wb << 16), v8d);
            v8d dodd = __builtin_convertvector((v8f)(wa & 0xffff0000u) - (v8f)(wb & 0xffff0000u),
                                               v8d);
            s += de * de;
            s_odd += dodd * dodd;
        }
        s += s_odd;
    } else {
        for (; k + DIST_LANES <= len; k += DIST_LANES) {
            v8d d = load8d(a, k) - load8d(b, k);
            s += d * d;
        }
    }
    memcpy(acc, &s, sizeof acc);
#endif
    for (int j = 0; k < len; k++, j++) { /* fewer than 2 DIST_LANES left */
        double d = (double)rep_at(a, k, bf16) - (double)rep_at(b, k, bf16);
        acc[j % DIST_LANES] += d * d;
    }
    for (int w = DIST_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    return acc[0];
}

BTRM_TARGET_CLONES
static void pair_distances(const void *h, int bf16, int n, size_t R, float *dist)
{
    const size_t elem = bf16 ? 2 : 4;
    const unsigned char *base = h;
    for (int i = 0; i < n; i++) {
        const void *hc = base + (size_t)i * R * elem, *hr = base + (size_t)(n + i) * R * elem;
        dist[i] = (float)sqrt(bf16 ? sq_dist_t(hc, hr, R, 1) : sq_dist_t(hc, hr, R, 0));
    }
}

void btrm_head_pair_distance(const btrm_head *head, const btrm_head_ws *ws, const void *x,
                             int n_pairs, float *dist)
{
    int bf16 = head->n_layers == 1 && ws->x_dtype == BTRM_DTYPE_BF16;
    const void *h = head->n_layers == 1 ? x : ws->act[head->n_layers - 2];
    pair_distances(h, bf16, n_pairs, (size_t)head->rep_dim, dist);
}

/* reward[r] = b + sum_k x[r, k] w[k] for bf16 rows x (a linear head on bf16
 * features): float products and sums over DOT_LANES lanes (lane = k mod
 * DOT_LANES), added pairwise, then b. */
enum { DOT_LANES = 16 };
BTRM_TARGET_CLONES
static void linear_bf16(const uint16_t *x, int rows, int D, const float *restrict w, float b,
                        float *restrict reward)
{
    for (int r = 0; r < rows; r++) {
        const uint16_t *xr = x + (size_t)r * D;
        float acc[DOT_LANES] = { 0 };
        int k = 0;
#if defined(__GNUC__)
        v16f s = { 0 };
        for (; k + DOT_LANES <= D; k += DOT_LANES) {
            v16f wv;
            memcpy(&wv, w + k, sizeof wv);
            s += load16f(xr, (size_t)k, 1) * wv;
        }
        memcpy(acc, &s, sizeof acc);
#endif
        for (int j = 0; k < D; k++, j++)
            acc[j] += btrm_bf16_to_float(xr[k]) * w[k];
        for (int h = DOT_LANES / 2; h > 0; h /= 2)
            for (int j = 0; j < h; j++)
                acc[j] += acc[j + h];
        reward[r] = acc[0] + b;
    }
}

/* gw[R] += sum_i g_i (h_c,i + sign h_r,i), sign = -1 or +1, one pair at a
 * time in pair order (deterministic): one pass over the rows, no [n, R]
 * scratch matrix. Blocks of AXPY_BLOCK let the compiler vectorize. */
enum { AXPY_BLOCK = 16 };
KERNEL void pair_accumulate_t(const void *h, int n, int R, const float *g, float sign,
                              float *restrict gw, int bf16)
{
    const size_t elem = bf16 ? 2 : 4;
    const unsigned char *base = h;
    for (int i = 0; i < n; i++) {
        const void *hc = base + (size_t)i * R * elem, *hr = base + (size_t)(n + i) * R * elem;
        const float gi = g[i];
        int k = 0;
#if defined(__GNUC__)
        for (; k + AXPY_BLOCK <= R; k += AXPY_BLOCK) {
            v16f acc;
            memcpy(&acc, gw + k, sizeof acc);
            acc += gi * (load16f(hc, (size_t)k, bf16) + sign * load16f(hr, (size_t)k, bf16));
            memcpy(gw + k, &acc, sizeof acc);
        }
#endif
        for (; k < R; k++)
            gw[k] += gi * (rep_at(hc, (size_t)k, bf16) + sign * rep_at(hr, (size_t)k, bf16));
    }
}

BTRM_TARGET_CLONES
static void pair_accumulate(const void *h, int bf16, int n, int R, const float *g, float sign,
                            float *restrict gw)
{
    if (bf16)
        pair_accumulate_t(h, n, R, g, sign, gw, 1);
    else
        pair_accumulate_t(h, n, R, g, sign, gw, 0);
}

/* The GEMM operand of hidden layer l's input [rows, width[l]]: x (layer 0)
 * or act[l - 1]; in precision bf16 rounded once into in_bf16[l] (unless x
 * already is bf16), so that the forward product and the weight gradient use
 * the same rounded rows. */
static btrm_gemm_operand layer_input(const btrm_head *head, btrm_head_ws *ws, int l,
                                     const void *x, int x_dtype, int rows, int round)
{
    const int D = head->width[l];
    const void *in = l == 0 ? x : ws->act[l - 1];
    int dtype = l == 0 ? x_dtype : BTRM_DTYPE_F32;
    if (ws->precision == BTRM_PREC_BF16 && dtype == BTRM_DTYPE_F32) {
        if (round)
            btrm_dtype_from_f32(ws->in_bf16[l], BTRM_DTYPE_BF16, in, (size_t)rows * D);
        in = ws->in_bf16[l];
        dtype = BTRM_DTYPE_BF16;
    }
    return (btrm_gemm_operand){ in, dtype, 0, D };
}

/* Layer t's weight [out, in] as a GEMM operand (transposed or not): its bf16
 * copy when the caller keeps one, else the fp32 parameters. */
static btrm_gemm_operand weight_operand(const btrm_head_ws *ws, const float *params,
                                        const btrm_tensor_view *t, int trans)
{
    if (ws->precision == BTRM_PREC_BF16 && ws->params_bf16)
        return (btrm_gemm_operand){ ws->params_bf16 + t->weight_off, BTRM_DTYPE_BF16, trans,
                                    t->in };
    return (btrm_gemm_operand){ params + t->weight_off, BTRM_DTYPE_F32, trans, t->in };
}

static int check_input(const btrm_head *head, const btrm_head_ws *ws, int x_dtype)
{
    if (x_dtype == BTRM_DTYPE_F32)
        return 0;
    if (x_dtype == BTRM_DTYPE_BF16 && (head->n_layers == 1 || ws->precision == BTRM_PREC_BF16))
        return 0;
    return btrm_error_set(BTRM_EUSAGE, "head input of type %s: only a linear head, or an mlp "
                          "head in precision bf16, takes bf16 rows", btrm_dtype_name(x_dtype));
}

int btrm_head_forward_typed(const btrm_head *head, const float *params, const void *x,
                            int x_dtype, int rows, btrm_head_ws *ws)
{
    assert(rows <= ws->max_rows);
    int rc = check_input(head, ws, x_dtype);
    if (rc || rows <= 0)
        return rc;
    const float *in = x;
    for (int l = 0; l + 1 < head->n_layers; l++) {
        const btrm_tensor_view *t = &head->layer[l];
        const int H = t->out, D = t->in;
        float *z = ws->pre[l], *a = ws->act[l];
        const float *b = params + t->bias_off;
        for (int r = 0; r < rows; r++)
            memcpy(z + (size_t)r * H, b, (size_t)H * sizeof *z);
        /* z[rows,H] = in[rows,D] · W[H,D]^T + b */
        btrm_gemm_operand oin = layer_input(head, ws, l, x, x_dtype, rows, 1);
        btrm_gemm_operand ow = weight_operand(ws, params, t, 1);
        if ((rc = btrm_gemm_ex(ws->precision, rows, H, D, 1.0f, &oin, &ow, 1.0f, z, H)))
            return btrm_error_wrap(rc, "head %s forward", t->name);
        activate_all(head->activation, z, a, (size_t)rows * H);
        in = a;
    }
    ws->x_dtype = x_dtype;
    const btrm_tensor_view *o = &head->layer[head->n_layers - 1];
    const float b_out = params[o->bias_off];
    if (head->n_layers == 1 && x_dtype == BTRM_DTYPE_BF16) {
        /* reward[rows] = x[rows,D] · w_out[D] + b_out, bf16 rows widened */
        linear_bf16(x, rows, o->in, params + o->weight_off, b_out, ws->reward);
        return 0;
    }
    for (int r = 0; r < rows; r++)
        ws->reward[r] = b_out;
    /* reward[rows] = h[rows,R] · w_out[R] + b_out (fp32: h is the representation) */
    if ((rc = btrm_gemm(BTRM_PREC_FP32, 0, 0, rows, 1, o->in, 1.0f, in, o->in,
                        params + o->weight_off, 1, 1.0f, ws->reward, 1)))
        return btrm_error_wrap(rc, "head out forward");
    return 0;
}

int btrm_head_forward(const btrm_head *head, const float *params, const float *x, int rows,
                      btrm_head_ws *ws)
{
    return btrm_head_forward_typed(head, params, x, BTRM_DTYPE_F32, rows, ws);
}

const float *btrm_head_rep(const btrm_head *head, const btrm_head_ws *ws, const float *x)
{
    return head->n_layers == 1 ? x : ws->act[head->n_layers - 2];
}

/* d[k] = c * w[k] * d[k] (that order) */
static void scale_by(float *restrict d, const float *restrict w, float c, int len)
{
    int k = 0;
    for (; k + AXPY_BLOCK <= len; k += AXPY_BLOCK)
        for (int j = 0; j < AXPY_BLOCK; j++)
            d[k + j] = c * w[k + j] * d[k + j];
    for (; k < len; k++)
        d[k] = c * w[k] * d[k];
}

/* acc[k] += v[k] */
static void add_to(float *restrict acc, const float *restrict v, int len)
{
    int k = 0;
    for (; k + AXPY_BLOCK <= len; k += AXPY_BLOCK)
        for (int j = 0; j < AXPY_BLOCK; j++)
            acc[k + j] += v[k + j];
    for (; k < len; k++)
        acc[k] += v[k];
}

/* Row blocks of a weight gradient [H, D]: block b is rows [b H / blocks,
 * (b + 1) H / blocks). */
static int block_rows(int H, int blocks, int b) { return (int)((int64_t)b * H / blocks); }

static int clamp_blocks(int blocks, int H) { return blocks < 1 ? 1 : blocks > H ? H : blocks; }

/* Backward's completion order: the out layer (weight and bias), then for each
 * hidden layer from the last, its weight's row blocks and its bias. */
int btrm_head_grad_regions(const btrm_head *head, int blocks, size_t *first, size_t *count,
                           int max)
{
    int n = 0;
#define REGION(f, c)                                                                       \
    do {                                                                                   \
        if (n < max) {                                                                     \
            first[n] = (f);                                                                \
            count[n] = (c);                                                                \
        }                                                                                  \
        n++;                                                                               \
    } while (0)
    const btrm_tensor_view *o = &head->layer[head->n_layers - 1];
    REGION(o->weight_off, (size_t)o->in + 1); /* out.weight and out.bias are adjacent */
    for (int l = head->n_layers - 2; l >= 0; l--) {
        const btrm_tensor_view *t = &head->layer[l];
        int nb = clamp_blocks(blocks, t->out);
        for (int b = 0; b < nb; b++) {
            int r0 = block_rows(t->out, nb, b), r1 = block_rows(t->out, nb, b + 1);
            REGION(t->weight_off + (size_t)r0 * t->in, (size_t)(r1 - r0) * t->in);
        }
        REGION(t->bias_off, (size_t)t->out);
    }
#undef REGION
    return n;
}

static int ready(btrm_head_ws *ws, int *region)
{
    int k = (*region)++;
    return ws->grad_ready ? ws->grad_ready(ws->grad_ready_ctx, k) : 0;
}

int btrm_head_pair_backward_typed(const btrm_head *head, const float *params, const void *x,
                                  int x_dtype, int n_pairs, const float *g_diff,
                                  const float *g_sum, btrm_head_ws *ws, float *grad)
{
    const int n = n_pairs, rows = 2 * n_pairs;
    assert(rows <= ws->max_rows);
    int rc = check_input(head, ws, x_dtype);
    if (rc || n <= 0)
        return rc;
    const int L = head->n_layers;
    const btrm_tensor_view *o = &head->layer[L - 1];
    const int R = o->in;
    const int h_bf16 = L == 1 && x_dtype == BTRM_DTYPE_BF16; /* h is x, bf16 rows */
    const void *h = L == 1 ? x : ws->act[L - 2];
    const float *w_out = params + o->weight_off;

    int have_sum = 0;
    double sum_g_sum = 0.0;
    if (g_sum)
        for (int i = 0; i < n; i++) {
            have_sum |= g_sum[i] != 0.0f;
            sum_g_sum += g_sum[i];
        }

    /* out.weight: dL/dw = sum_i g_diff_i (h_c,i - h_r,i) + g_sum_i (h_c,i + h_r,i),
     * pair by pair. h_c - h_r is exact in float for close pairs (Sterbenz), while
     * sum_i g_i h_c,i - sum_i g_i h_r,i would lose ~log2(|h| / |h_c - h_r|) bits. */
    float *gw = grad + o->weight_off;
    if (ws->grad_overwrite) {
        memset(gw, 0, (size_t)R * sizeof *gw);
        grad[o->bias_off] = 0.0f;
        for (int l = 0; l + 1 < L; l++) /* the weights are written by beta-0 products */
            memset(grad + head->layer[l].bias_off, 0,
                   (size_t)head->layer[l].out * sizeof *grad);
    }
    pair_accumulate(h, h_bf16, n, R, g_diff, -1.0f, gw);
    if (have_sum)
        pair_accumulate(h, h_bf16, n, R, g_sum, 1.0f, gw);
    /* out.bias: sum over rows of dL/dr = 2 sum_i g_sum_i; exactly 0 without g_sum. */
    grad[o->bias_off] += (float)(2.0 * sum_g_sum);
    int region = 0;
    if ((rc = ready(ws, &region)))
        return rc;

    if (L == 1) {
        /* dL/dx[row] = dL/dr[row] w_out */
        for (int r = 0; ws->dx && r < rows; r++) {
            int i = r < n ? r : r - n;
            float gd = r < n ? g_diff[i] : -g_diff[i];
            float dr = g_sum ? gd + g_sum[i] : gd;
            float *dx = ws->dx + (size_t)r * R;
            for (int k = 0; k < R; k++)
                dx[k] = dr * w_out[k];
        }
        return 0;
    }

    /* Last hidden layer: delta[row,k] = dL/dr[row] · w_out[k] · act'(z[row,k]),
     * dL/dr_c = g_diff + g_sum, dL/dr_r = -g_diff + g_sum. */
    float *delta = ws->delta, *delta_prev = ws->delta_next;
    {
        const float *z = ws->pre[L - 2], *a = ws->act[L - 2];
        for (int r = 0; r < rows; r++) {
            int i = r < n ? r : r - n;
            float gd = r < n ? g_diff[i] : -g_diff[i];
            float dr = g_sum ? gd + g_sum[i] : gd;
            size_t base = (size_t)r * R;
            float *d = delta + base;
            activate_grad_all(head->activation, z + base, a + base, d, (size_t)R);
            scale_by(d, w_out, dr, R);
        }
    }
    for (int l = L - 2; l >= 0; l--) {
        const btrm_tensor_view *t = &head->layer[l];
        const int H = t->out, D = t->in;
        /* dW[H,D] += delta[rows,H]^T · in[rows,D] (in: as the forward pass used it),
         * in row blocks of dW when a caller reduces them as they finish */
        btrm_gemm_operand oin = layer_input(head, ws, l, x, x_dtype, rows, 0);
        int nb = clamp_blocks(ws->grad_blocks, H);
        for (int b = 0; b < nb; b++) {
            int r0 = block_rows(H, nb, b), r1 = block_rows(H, nb, b + 1);
            /* dW[r0:r1, D] (+)= delta[rows, r0:r1]^T · in[rows, D] */
            btrm_gemm_operand odelta = { delta + r0, BTRM_DTYPE_F32, 1, H };
            if ((rc = btrm_gemm_ex(ws->precision, r1 - r0, D, rows, 1.0f, &odelta, &oin,
                                   ws->grad_overwrite ? 0.0f : 1.0f,
                                   grad + t->weight_off + (size_t)r0 * D, D)))
                return btrm_error_wrap(rc, "head %s weight gradient", t->name);
            if ((rc = ready(ws, &region)))
                return rc;
        }
        /* db[H] += column sums of delta[rows,H] */
        float *db = grad + t->bias_off;
        for (int r = 0; r < rows; r++)
            add_to(db, delta + (size_t)r * H, H);
        if ((rc = ready(ws, &region)))
            return rc;
        if (l == 0) {
            /* dx[rows,D] = delta[rows,H] · W0[H,D], in fp32 */
            if (ws->dx && (rc = btrm_gemm(BTRM_PREC_FP32, 0, 0, rows, D, H, 1.0f, delta, H,
                                          params + t->weight_off, D, 0.0f, ws->dx, D)))
                return btrm_error_wrap(rc, "head %s input gradient dL/dx", t->name);
            break;
        }
        /* delta_prev[rows,D] = delta[rows,H] · W[H,D], then · act'(z_{l-1}) */
        btrm_gemm_operand od = { delta, BTRM_DTYPE_F32, 0, H };
        btrm_gemm_operand ow = weight_operand(ws, params, t, 0);
        if ((rc = btrm_gemm_ex(ws->precision, rows, D, H, 1.0f, &od, &ow, 0.0f, delta_prev,
                               D)))
            return btrm_error_wrap(rc, "head %s input gradient", t->name);
        const float *z = ws->pre[l - 1], *a = ws->act[l - 1];
        size_t len = (size_t)rows * D;
        for (size_t k0 = 0; k0 < len; k0 += ACT_CHUNK) {
            float g[ACT_CHUNK];
            size_t m = len - k0 < ACT_CHUNK ? len - k0 : ACT_CHUNK;
            activate_grad_all(head->activation, z + k0, a + k0, g, m);
            for (size_t k = 0; k < m; k++)
                delta_prev[k0 + k] *= g[k];
        }
        float *tmp = delta;
        delta = delta_prev;
        delta_prev = tmp;
    }
    return 0;
}

int btrm_head_pair_backward(const btrm_head *head, const float *params, const float *x,
                            int n_pairs, const float *g_diff, const float *g_sum,
                            btrm_head_ws *ws, float *grad)
{
    return btrm_head_pair_backward_typed(head, params, x, BTRM_DTYPE_F32, n_pairs, g_diff,
                                         g_sum, ws, grad);
}
