/* head.c: linear and mlp reward heads, forward and pair backward with BLAS. */
#include "head.h"

#include "error.h"
#include "rng.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQRT1_2 0.70710678118654752f      /* 1/sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143268f /* 1/sqrt(2 pi) */

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
        (rc = BTRM_MALLOC(ws->pair_diff, (rows + 1) / 2 * (size_t)head->rep_dim)) < 0 ||
        (rc = BTRM_MALLOC(ws->reward, rows)) < 0)
        goto fail;
    return 0;
fail:
    btrm_head_ws_free(ws);
    return btrm_error_wrap(rc, "head work buffers for %d rows", max_rows);
}

void btrm_head_ws_free(btrm_head_ws *ws)
{
    if (!ws)
        return;
    for (int l = 0; l < BTRM_MAX_LAYERS; l++) {
        free(ws->pre[l]);
        free(ws->act[l]);
    }
    free(ws->delta);
    free(ws->delta_next);
    free(ws->pair_diff);
    free(ws->reward);
    memset(ws, 0, sizeof *ws);
}

float btrm_head_activate(int activation, float z)
{
    switch (activation) {
    case BTRM_ACT_RELU: return z > 0.0f ? z : 0.0f;
    case BTRM_ACT_TANH: return tanhf(z);
    default: /* gelu, exact erf form (torch.nn.GELU(approximate='none')) */
        return 0.5f * z * (1.0f + erff(z * SQRT1_2));
    }
}

/* d act / dz; tanh uses its output a = tanh(z): 1 - a^2. */
static inline float act_grad(int activation, float z, float a)
{
    switch (activation) {
    case BTRM_ACT_RELU: return z > 0.0f ? 1.0f : 0.0f;
    case BTRM_ACT_TANH: return 1.0f - a * a;
    default: {
        /* gelu'(z) = Phi(z) + z phi(z), phi(z) = exp(-z^2/2) / sqrt(2 pi) */
        return 0.5f * (1.0f + erff(z * SQRT1_2)) + z * INV_SQRT_2PI * expf(-0.5f * z * z);
    }
    }
}

float btrm_head_activate_grad(int activation, float z)
{
    return act_grad(activation, z, btrm_head_activate(activation, z));
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
        for (size_t k = 0; k < len; k++)
            a[k] = 0.5f * z[k] * (1.0f + erff(z[k] * SQRT1_2));
        break;
    }
}

void btrm_head_forward(const btrm_head *head, const float *params, const float *x,
                       int rows, btrm_head_ws *ws)
{
    assert(rows <= ws->max_rows);
    if (rows <= 0)
        return;
    const float *in = x;
    for (int l = 0; l + 1 < head->n_layers; l++) {
        const btrm_tensor_view *t = &head->layer[l];
        const int H = t->out, D = t->in;
        float *z = ws->pre[l], *a = ws->act[l];
        const float *W = params + t->weight_off, *b = params + t->bias_off;
        for (int r = 0; r < rows; r++)
            memcpy(z + (size_t)r * H, b, (size_t)H * sizeof *z);
        /* z[rows,H] = in[rows,D] · W[H,D]^T + b */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, H, D, 1.0f, in, D, W, D,
                    1.0f, z, H);
        activate_all(head->activation, z, a, (size_t)rows * H);
        in = a;
    }
    const btrm_tensor_view *o = &head->layer[head->n_layers - 1];
    const float b_out = params[o->bias_off];
    for (int r = 0; r < rows; r++)
        ws->reward[r] = b_out;
    /* reward[rows] = h[rows,R] · w_out[R] + b_out */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, o->in, 1.0f, in, o->in,
                params + o->weight_off, 1, 1.0f, ws->reward, 1);
}

const float *btrm_head_rep(const btrm_head *head, const btrm_head_ws *ws, const float *x)
{
    return head->n_layers == 1 ? x : ws->act[head->n_layers - 2];
}

void btrm_head_pair_distance(const btrm_head *head, const btrm_head_ws *ws,
                             const float *x, int n_pairs, float *dist)
{
    const float *h = btrm_head_rep(head, ws, x);
    const size_t R = (size_t)head->rep_dim;
    for (int i = 0; i < n_pairs; i++) {
        const float *hc = h + (size_t)i * R, *hr = h + (size_t)(n_pairs + i) * R;
        double s = 0.0;
        for (size_t k = 0; k < R; k++) {
            double d = (double)hc[k] - (double)hr[k]; /* exact for floats */
            s += d * d;
        }
        dist[i] = (float)sqrt(s);
    }
}

void btrm_head_pair_backward(const btrm_head *head, const float *params,
                             const float *x, int n_pairs, const float *g_diff,
                             const float *g_sum, btrm_head_ws *ws, float *grad)
{
    const int n = n_pairs, rows = 2 * n_pairs;
    assert(rows <= ws->max_rows);
    if (n <= 0)
        return;
    const int L = head->n_layers;
    const btrm_tensor_view *o = &head->layer[L - 1];
    const int R = o->in;
    const float *h = btrm_head_rep(head, ws, x);
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
    float *P = ws->pair_diff;
    for (int i = 0; i < n; i++) {
        const float *hc = h + (size_t)i * R, *hr = h + (size_t)(n + i) * R;
        float *p = P + (size_t)i * R;
        for (int k = 0; k < R; k++)
            p[k] = hc[k] - hr[k];
    }
    /* grad_w_out[R] += P[n,R]^T · g_diff[n] */
    cblas_sgemv(CblasRowMajor, CblasTrans, n, R, 1.0f, P, R, g_diff, 1, 1.0f,
                grad + o->weight_off, 1);
    if (have_sum) {
        for (int i = 0; i < n; i++) {
            const float *hc = h + (size_t)i * R, *hr = h + (size_t)(n + i) * R;
            float *p = P + (size_t)i * R;
            for (int k = 0; k < R; k++)
                p[k] = hc[k] + hr[k];
        }
        /* grad_w_out[R] += P[n,R]^T · g_sum[n] */
        cblas_sgemv(CblasRowMajor, CblasTrans, n, R, 1.0f, P, R, g_sum, 1, 1.0f,
                    grad + o->weight_off, 1);
    }
    /* out.bias: sum over rows of dL/dr = 2 sum_i g_sum_i; exactly 0 without g_sum. */
    grad[o->bias_off] += (float)(2.0 * sum_g_sum);

    if (L == 1)
        return;

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
            for (int k = 0; k < R; k++)
                delta[base + k] = dr * w_out[k] * act_grad(head->activation, z[base + k],
                                                           a[base + k]);
        }
    }
    for (int l = L - 2; l >= 0; l--) {
        const btrm_tensor_view *t = &head->layer[l];
        const int H = t->out, D = t->in;
        const float *in = l == 0 ? x : ws->act[l - 1];
        /* dW[H,D] += delta[rows,H]^T · in[rows,D] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, D, rows, 1.0f, delta, H, in,
                    D, 1.0f, grad + t->weight_off, D);
        /* db[H] += column sums of delta[rows,H] */
        float *db = grad + t->bias_off;
        for (int r = 0; r < rows; r++) {
            const float *d = delta + (size_t)r * H;
            for (int k = 0; k < H; k++)
                db[k] += d[k];
        }
        if (l == 0)
            break;
        /* delta_prev[rows,D] = delta[rows,H] · W[H,D], then · act'(z_{l-1}) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, H, 1.0f, delta, H,
                    params + t->weight_off, D, 0.0f, delta_prev, D);
        const float *z = ws->pre[l - 1], *a = ws->act[l - 1];
        size_t len = (size_t)rows * D;
        for (size_t k = 0; k < len; k++)
            delta_prev[k] *= act_grad(head->activation, z[k], a[k]);
        float *tmp = delta;
        delta = delta_prev;
        delta_prev = tmp;
    }
}
