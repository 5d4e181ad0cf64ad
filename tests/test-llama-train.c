/* test-llama-train.c: training the Llama backbone (llama_train.h, math
 * layer): LoRA and top_k.
 *  - the gradient of every trainable tensor kind (LoRA A and B on each
 *    target, top_k weights, both block norms, the final norm) against
 *    central finite differences of a float64 reference forward written here
 *    from the equations (plain loops, sequence by sequence, no code shared
 *    with llama.c or llama_train.c), through a scalar loss of the pooled
 *    outputs (BT on pairs of a random linear head plus a random linear term
 *    per sequence, so that d(pooled) is a full matrix); 1, 2 and 3 blocks,
 *    n_heads/n_kv 1, 2 and 4, partial RoPE, lengths 1 to 140 mixed in one
 *    batch, pooling last and mean;
 *  - with B = 0 (or untouched top_k weights) the forward is bitwise
 *    btrm_llama_forward's; recompute gives bitwise the same gradients;
 *    backward accumulates; Q8_0 and F16 base weights give the gradients of
 *    the float32 model of their dequantised values;
 *  - the layout (names, shapes, order), the initialisation, the FLOP count;
 *  - error paths: a target the model lacks, rank 0, a rank above a target's
 *    dimension, k above the block count;
 *  - on stories260K (skipped when absent, or without python3 + torch): one
 *    training step, then the loss and every gradient against an
 *    independent float64 torch autograd reference (tests/llama_train_ref.py).
 *
 * Bounds, relative to the largest |reference| of the tensor (or group of
 * tensors): the gradients 1e-4 against central differences (step 1e-5 in
 * double: their own error is below 1e-9) and against the oracle, measured
 * at most 1.5e-6 and 4.3e-6; the pooled states and the loss 1e-5, measured
 * 2e-7 and 4e-7. */
#include "error.h"
#include "gemm.h"
#include "llama.h"
#include "llama_model.h"
#include "llama_train.h"
#include "pairs.h"
#include "qgemm.h"
#include "quant.h"
#include "rng.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FD_TOL 1e-4
#define FWD_TOL 1e-5
#define FD_STEP 1e-5

/* ------------------------------------------------------------------------ */
/* A random model */

static btrm_rng rng;

static float *random_floats(size_t n, double scale)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(scale * (2.0 * btrm_rng_uniform(&rng) - 1.0));
    return p;
}

typedef struct model {
    btrm_llama_hparams hp;
    btrm_llama_weights w;
    btrm_llama_layer layers[4];
    void *owned[128];
    int n_owned;
} model;

static void *own(model *m, void *p)
{
    m->owned[m->n_owned++] = p;
    return p;
}

static btrm_llama_matrix matrix(model *m, int rows, int cols)
{
    float *p = own(m, random_floats((size_t)rows * cols, 1.0 / sqrt((double)cols)));
    return (btrm_llama_matrix){ p, BTRM_Q_F32, rows, cols };
}

static const float *norm_vec(model *m, int n)
{
    float *p = own(m, random_floats((size_t)n, 0.3));
    for (int i = 0; i < n; i++)
        p[i] += 1.0f;
    return p;
}

typedef struct shape {
    int dim, hidden, n_layers, n_heads, n_kv, head_dim, rope_dim;
    float theta;
} shape;

static void make_model(model *m, shape s, int vocab)
{
    memset(m, 0, sizeof *m);
    m->hp = (btrm_llama_hparams){ .dim = s.dim, .hidden_dim = s.hidden, .n_layers = s.n_layers,
                                  .n_heads = s.n_heads, .n_kv_heads = s.n_kv,
                                  .head_dim = s.head_dim, .rope_dim = s.rope_dim,
                                  .vocab_size = vocab, .context = 512, .norm_eps = 1e-5f,
                                  .rope_theta = s.theta };
    int q = s.n_heads * s.head_dim, kv = s.n_kv * s.head_dim;
    /* embeddings of norm ~1 per row, as trained models have */
    m->w.token_embd = matrix(m, vocab, s.dim);
    float *e = (float *)m->w.token_embd.data;
    for (size_t i = 0; i < (size_t)vocab * s.dim; i++)
        e[i] *= sqrtf((float)s.dim) * 0.5f;
    for (int l = 0; l < s.n_layers; l++) {
        btrm_llama_layer *L = &m->layers[l];
        L->attn_norm = norm_vec(m, s.dim);
        L->ffn_norm = norm_vec(m, s.dim);
        L->wq = matrix(m, q, s.dim);
        L->wk = matrix(m, kv, s.dim);
        L->wv = matrix(m, kv, s.dim);
        L->wo = matrix(m, s.dim, q);
        L->w1 = matrix(m, s.hidden, s.dim);
        L->w2 = matrix(m, s.dim, s.hidden);
        L->w3 = matrix(m, s.hidden, s.dim);
    }
    m->w.layers = m->layers;
    m->w.output_norm = norm_vec(m, s.dim);
    m->w.output = m->w.token_embd;
}

static void free_model(model *m)
{
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    m->n_owned = 0;
}

static int32_t *random_ids(int n, int vocab)
{
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)btrm_rng_below(&rng, (uint64_t)vocab);
    return ids;
}

static int sum_int(const int *v, int n)
{
    int s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* ------------------------------------------------------------------------ */
/* The test loss: L = sum_i softplus(-(v.h_i - v.h_{np+i})) over the np =
 * n/2 pairs (i, np + i), plus sum_s c_s.h_s */

typedef struct loss_head {
    int dim, n;
    double *v, *c; /* [dim], [n, dim] */
} loss_head;

static void loss_head_init(loss_head *lh, int dim, int n)
{
    lh->dim = dim;
    lh->n = n;
    lh->v = malloc((size_t)dim * sizeof *lh->v);
    lh->c = malloc((size_t)dim * n * sizeof *lh->c);
    for (int i = 0; i < dim; i++)
        lh->v[i] = 2.0 * btrm_rng_uniform(&rng) - 1.0;
    for (int i = 0; i < dim * n; i++)
        lh->c[i] = 0.3 * (2.0 * btrm_rng_uniform(&rng) - 1.0);
}

static void loss_head_free(loss_head *lh)
{
    free(lh->v);
    free(lh->c);
}

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static double vdot(const double *v, const double *h, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += v[i] * h[i];
    return s;
}

/* L(h[n, dim]) and, when dh is not NULL, dL/dh */
static double test_loss(const loss_head *lh, const double *h, double *dh)
{
    int dim = lh->dim, n = lh->n, np = n / 2;
    double L = 0;
    for (int s = 0; s < n; s++) {
        L += vdot(lh->c + (size_t)s * dim, h + (size_t)s * dim, dim);
        if (dh)
            for (int i = 0; i < dim; i++)
                dh[(size_t)s * dim + i] = lh->c[(size_t)s * dim + i];
    }
    for (int p = 0; p < np; p++) {
        const double *hc = h + (size_t)p * dim, *hr = h + (size_t)(np + p) * dim;
        double dr = vdot(lh->v, hc, dim) - vdot(lh->v, hr, dim);
        L += softplus(-dr);
        if (dh)
            for (int i = 0; i < dim; i++) {
                dh[(size_t)p * dim + i] -= sigmoid(-dr) * lh->v[i];
                dh[(size_t)(np + p) * dim + i] += sigmoid(-dr) * lh->v[i];
            }
    }
    return L;
}

/* ------------------------------------------------------------------------ */
/* The float64 reference forward: plain loops from the equations of
 * llama.h, one sequence at a time, the effective weights formed explicitly
 * (W + (alpha/r) B A, or the top_k masters) from the double parameters P. */

typedef struct ref_weights {
    double *w[4][BTRM_N_PROJ]; /* effective [out, in] per block and projection */
    double *attn_norm[4], *ffn_norm[4], *out_norm;
} ref_weights;

static const char *const gguf_proj[BTRM_N_PROJ] = { "attn_q", "attn_k", "attn_v", "attn_output",
                                                    "ffn_gate", "ffn_up", "ffn_down" };

static const btrm_llama_matrix *layer_matrix(const btrm_llama_layer *L, int p)
{
    switch (p) {
    case 0: return &L->wq;
    case 1: return &L->wk;
    case 2: return &L->wv;
    case 3: return &L->wo;
    case 4: return &L->w1;
    case 5: return &L->w3;
    default: return &L->w2;
    }
}

/* The view of a tensor by name, -1 when absent */
static long tensor_at(const btrm_llama_train *lt, const char *fmt, int layer, const char *proj)
{
    char name[64];
    snprintf(name, sizeof name, fmt, layer, proj);
    int i = btrm_llama_train_find(lt, name);
    return i < 0 ? -1 : (long)lt->tensors[i].offset;
}

static double *norm_copy(const float *base, const double *P, long off, int dim)
{
    double *g = malloc((size_t)dim * sizeof *g);
    for (int i = 0; i < dim; i++)
        g[i] = off >= 0 ? P[off + i] : base[i];
    return g;
}

static void ref_weights_build(ref_weights *rw, const model *m, const btrm_llama_train *lt,
                              const double *P)
{
    const btrm_llama_hparams *hp = &m->hp;
    memset(rw, 0, sizeof *rw);
    double s = lt->spec.alpha / lt->spec.rank;
    int r = lt->spec.rank;
    float *row = malloc((size_t)(hp->dim + hp->hidden_dim + 4 * hp->n_heads * hp->head_dim) *
                        sizeof *row);
    for (int l = 0; l < hp->n_layers; l++) {
        for (int p = 0; p < BTRM_N_PROJ; p++) {
            const btrm_llama_matrix *W = layer_matrix(&m->layers[l], p);
            int out = W->rows, in = W->cols;
            double *e = rw->w[l][p] = malloc((size_t)out * in * sizeof *e);
            long wt = tensor_at(lt, "blk.%d.%s.weight", l, gguf_proj[p]);
            for (int o = 0; o < out; o++) {
                btrm_llama_dequant_row(W, o, row);
                for (int i = 0; i < in; i++)
                    e[(size_t)o * in + i] = wt >= 0 ? P[wt + (long)o * in + i] : row[i];
            }
            long a = tensor_at(lt, "blk.%d.%s.weight.lora_a", l, gguf_proj[p]);
            long b = tensor_at(lt, "blk.%d.%s.weight.lora_b", l, gguf_proj[p]);
            if (a >= 0 && b >= 0)
                for (int o = 0; o < out; o++)
                    for (int i = 0; i < in; i++) {
                        double acc = 0;
                        for (int k = 0; k < r; k++)
                            acc += P[b + (long)o * r + k] * P[a + (long)k * in + i];
                        e[(size_t)o * in + i] += s * acc;
                    }
        }
        rw->attn_norm[l] = norm_copy(m->layers[l].attn_norm, P,
                                     tensor_at(lt, "blk.%d.attn_norm.weight%s", l, ""), hp->dim);
        rw->ffn_norm[l] = norm_copy(m->layers[l].ffn_norm, P,
                                    tensor_at(lt, "blk.%d.ffn_norm.weight%s", l, ""), hp->dim);
    }
    int on = btrm_llama_train_find(lt, "output_norm.weight");
    rw->out_norm = norm_copy(m->w.output_norm, P, on < 0 ? -1 : (long)lt->tensors[on].offset,
                             hp->dim);
    free(row);
}

static void ref_weights_free(ref_weights *rw, int n_layers)
{
    for (int l = 0; l < n_layers; l++) {
        for (int p = 0; p < BTRM_N_PROJ; p++)
            free(rw->w[l][p]);
        free(rw->attn_norm[l]);
        free(rw->ffn_norm[l]);
    }
    free(rw->out_norm);
}

static void ref_rmsnorm(double *out, const double *x, const double *g, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * r * g[i];
}

/* y[out] = W[out, in] x[in] */
static void ref_matvec(const double *W, const double *x, double *y, int out, int in)
{
    for (int o = 0; o < out; o++) {
        double acc = 0;
        for (int i = 0; i < in; i++)
            acc += W[(size_t)o * in + i] * x[i];
        y[o] = acc;
    }
}

/* The pooled states h[n_seqs, dim] */
static void ref_forward(const model *m, const ref_weights *rw, const int32_t *ids,
                        const int *lens, int n_seqs, int pool, double *h)
{
    const btrm_llama_hparams *hp = &m->hp;
    int D = hp->dim, F = hp->hidden_dim, hd = hp->head_dim, Hq = hp->n_heads;
    int qd = Hq * hd, kvd = hp->n_kv_heads * hd, group = Hq / hp->n_kv_heads;
    int Tmax = 0;
    for (int s = 0; s < n_seqs; s++)
        Tmax = lens[s] > Tmax ? lens[s] : Tmax;
    double *x = malloc((size_t)Tmax * D * sizeof *x), *xn = malloc((size_t)D * sizeof *xn);
    double *q = malloc((size_t)Tmax * qd * sizeof *q), *k = malloc((size_t)Tmax * kvd * sizeof *k);
    double *v = malloc((size_t)Tmax * kvd * sizeof *v), *att = malloc((size_t)qd * sizeof *att);
    double *o = malloc((size_t)D * sizeof *o), *h1 = malloc((size_t)F * sizeof *h1);
    double *h3 = malloc((size_t)F * sizeof *h3), *p = malloc((size_t)Tmax * sizeof *p);
    double *attall = malloc((size_t)Tmax * qd * sizeof *attall);
    float *row = malloc((size_t)D * sizeof *row);
    for (int s = 0, off = 0; s < n_seqs; off += lens[s], s++) {
        int T = lens[s];
        for (int t = 0; t < T; t++) {
            btrm_llama_dequant_row(&m->w.token_embd, ids[off + t], row);
            for (int i = 0; i < D; i++)
                x[(size_t)t * D + i] = row[i];
        }
        for (int l = 0; l < hp->n_layers; l++) {
            for (int t = 0; t < T; t++) {
                ref_rmsnorm(xn, x + (size_t)t * D, rw->attn_norm[l], D, hp->norm_eps);
                ref_matvec(rw->w[l][0], xn, q + (size_t)t * qd, qd, D);
                ref_matvec(rw->w[l][1], xn, k + (size_t)t * kvd, kvd, D);
                ref_matvec(rw->w[l][2], xn, v + (size_t)t * kvd, kvd, D);
                /* RoPE: pairs (2j, 2j+1) of each head, angle t * theta^(-2j/rope_dim) */
                for (int which = 0; which < 2; which++) {
                    double *vec = which ? k + (size_t)t * kvd : q + (size_t)t * qd;
                    int nh = which ? hp->n_kv_heads : Hq;
                    for (int hh = 0; hh < nh; hh++)
                        for (int j = 0; j < hp->rope_dim / 2; j++) {
                            double ang = t * pow((double)hp->rope_theta, -2.0 * j / hp->rope_dim);
                            double *pp = vec + hh * hd + 2 * j, a0 = pp[0], a1 = pp[1];
                            pp[0] = a0 * cos(ang) - a1 * sin(ang);
                            pp[1] = a0 * sin(ang) + a1 * cos(ang);
                        }
                }
            }
            for (int t = 0; t < T; t++) {
                for (int hh = 0; hh < Hq; hh++) {
                    int g = hh / group;
                    double mx = -INFINITY, sum = 0;
                    for (int u = 0; u <= t; u++) {
                        double sc = 0;
                        for (int i = 0; i < hd; i++)
                            sc += q[(size_t)t * qd + hh * hd + i] * k[(size_t)u * kvd + g * hd + i];
                        p[u] = sc / sqrt((double)hd);
                        mx = p[u] > mx ? p[u] : mx;
                    }
                    for (int u = 0; u <= t; u++)
                        sum += (p[u] = exp(p[u] - mx));
                    for (int i = 0; i < hd; i++) {
                        double acc = 0;
                        for (int u = 0; u <= t; u++)
                            acc += p[u] / sum * v[(size_t)u * kvd + g * hd + i];
                        attall[(size_t)t * qd + hh * hd + i] = acc;
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                double *xt = x + (size_t)t * D;
                for (int i = 0; i < qd; i++)
                    att[i] = attall[(size_t)t * qd + i];
                ref_matvec(rw->w[l][3], att, o, D, qd);
                for (int i = 0; i < D; i++)
                    xt[i] += o[i];
                ref_rmsnorm(xn, xt, rw->ffn_norm[l], D, hp->norm_eps);
                ref_matvec(rw->w[l][4], xn, h1, F, D);
                ref_matvec(rw->w[l][5], xn, h3, F, D);
                for (int i = 0; i < F; i++)
                    h1[i] = h1[i] / (1.0 + exp(-h1[i])) * h3[i];
                ref_matvec(rw->w[l][6], h1, o, D, F);
                for (int i = 0; i < D; i++)
                    xt[i] += o[i];
            }
        }
        double *hs = h + (size_t)s * D;
        for (int i = 0; i < D; i++)
            hs[i] = 0;
        for (int t = pool == BTRM_POOL_LAST ? T - 1 : 0; t < T; t++) {
            ref_rmsnorm(xn, x + (size_t)t * D, rw->out_norm, D, hp->norm_eps);
            for (int i = 0; i < D; i++)
                hs[i] += pool == BTRM_POOL_LAST ? xn[i] : xn[i] / T;
        }
    }
    free(x), free(xn), free(q), free(k), free(v), free(att), free(o), free(h1), free(h3);
    free(p), free(attall), free(row);
}

typedef struct problem {
    const model *m;
    const btrm_llama_train *lt;
    const int32_t *ids;
    const int *lens;
    int n_seqs, pool;
    const loss_head *lh;
} problem;

static double ref_loss(const problem *pb, const double *P, double *pooled)
{
    ref_weights rw;
    ref_weights_build(&rw, pb->m, pb->lt, P);
    double *h = pooled ? pooled : malloc((size_t)pb->n_seqs * pb->m->hp.dim * sizeof *h);
    ref_forward(pb->m, &rw, pb->ids, pb->lens, pb->n_seqs, pb->pool, h);
    double L = test_loss(pb->lh, h, NULL);
    if (!pooled)
        free(h);
    ref_weights_free(&rw, pb->m->hp.n_layers);
    return L;
}

/* ------------------------------------------------------------------------ */
/* The C side: forward, dL/dpooled from its pooled output, backward */

static int c_step(btrm_llama_train_ws *ws, const problem *pb, const float *params, float *pooled,
                  float *grads)
{
    int D = pb->m->hp.dim, n = pb->n_seqs;
    int rc = btrm_llama_train_forward(ws, params, pb->ids, pb->lens, n, pb->pool, pooled);
    if (rc)
        return rc;
    double *h = calloc((size_t)n * D, sizeof *h), *dh = calloc((size_t)n * D, sizeof *dh);
    float *dpooled = malloc((size_t)n * D * sizeof *dpooled);
    for (int i = 0; i < n * D; i++)
        h[i] = pooled[i];
    test_loss(pb->lh, h, dh);
    for (int i = 0; i < n * D; i++)
        dpooled[i] = (float)dh[i];
    rc = btrm_llama_train_backward(ws, params, dpooled, grads);
    free(h), free(dh), free(dpooled);
    return rc;
}

/* Random parameters: LoRA A and B both non-zero (B = 0 would make A's
 * gradient zero), top_k weights perturbed from the base. */
static void randomize_params(const btrm_llama_train *lt, float *params)
{
    btrm_llama_train_init_params(lt, params, 11);
    for (int t = 0; t < lt->n_tensors; t++) {
        const btrm_llama_train_tensor *v = &lt->tensors[t];
        float *p = params + v->offset;
        size_t n = (size_t)v->rows * v->cols;
        for (size_t j = 0; j < n; j++) {
            double u = 2.0 * btrm_rng_uniform(&rng) - 1.0;
            if (v->kind == BTRM_LT_LORA_B)
                p[j] = (float)(0.5 * u / sqrt((double)v->cols));
            else
                p[j] += (float)(0.1 * u * (fabs(p[j]) + 0.1));
        }
    }
}

static const char *kind_name(int kind)
{
    return kind == BTRM_LT_LORA_A ? "LoRA A" : kind == BTRM_LT_LORA_B ? "LoRA B"
           : kind == BTRM_LT_WEIGHT ? "weight" : "norm";
}

typedef struct fd_config {
    const char *what;
    shape s;
    btrm_llama_train_spec spec;
    int pool, n_seqs, lens[8];
    int recompute;
    int max_fd; /* elements checked per tensor (evenly spaced), 0: all */
} fd_config;

/* One configuration: forward against the reference, then every tensor's
 * gradient against central differences; one assertion per (kind,
 * projection) with the worst tensor of that group. */
static void check_fd(const fd_config *cf)
{
    model m;
    make_model(&m, cf->s, 23);
    btrm_llama_train lt;
    int rc = btrm_llama_train_init(&lt, &cf->spec, &m.hp, &m.w);
    if (!ok(rc == 0, "%s: layout", cf->what)) {
        diag("%s", btrm_error_msg());
        free_model(&m);
        return;
    }
    int N = sum_int(cf->lens, cf->n_seqs), D = m.hp.dim, maxT = 0;
    for (int s = 0; s < cf->n_seqs; s++)
        maxT = cf->lens[s] > maxT ? cf->lens[s] : maxT;
    int32_t *ids = random_ids(N, 23);
    loss_head lh;
    loss_head_init(&lh, D, cf->n_seqs);
    problem pb = { &m, &lt, ids, cf->lens, cf->n_seqs, cf->pool, &lh };
    float *params = malloc(lt.n_params * sizeof *params);
    float *grads = calloc(lt.n_params, sizeof *grads);
    float *pooled = malloc((size_t)cf->n_seqs * D * sizeof *pooled);
    double *P = malloc(lt.n_params * sizeof *P), *href = malloc((size_t)cf->n_seqs * D * sizeof *href);
    randomize_params(&lt, params);
    for (size_t j = 0; j < lt.n_params; j++)
        P[j] = params[j];
    btrm_llama_train_ws ws;
    rc = btrm_llama_train_ws_init(&ws, &lt, N + 3, maxT, cf->recompute, BTRM_PREC_FP32);
    if (!rc)
        rc = c_step(&ws, &pb, params, pooled, grads);
    ok(rc == 0, "%s: forward and backward run", cf->what);
    ref_loss(&pb, P, href);
    double num = 0, den = 0;
    for (int i = 0; i < cf->n_seqs * D; i++) {
        num = fmax(num, fabs(pooled[i] - href[i]));
        den = fmax(den, fabs(href[i]));
    }
    ok(num <= FWD_TOL * den, "%s: pooled states = the float64 reference (relative error %.2g)",
       cf->what, num / den);

    /* groups: (kind, proj) for LoRA and weights; norms by kind of norm */
    double worst[4][BTRM_N_PROJ], wscale[4][BTRM_N_PROJ];
    int seen[4][BTRM_N_PROJ];
    memset(seen, 0, sizeof seen);
    for (int t = 0; t < lt.n_tensors; t++) {
        const btrm_llama_train_tensor *v = &lt.tensors[t];
        size_t n = (size_t)v->rows * v->cols;
        size_t step = cf->max_fd && n > (size_t)cf->max_fd ? n / (size_t)cf->max_fd : 1;
        double err = 0, scale = 0;
        for (size_t j = 0; j < n; j += step) {
            size_t at = v->offset + j;
            double keep = P[at];
            P[at] = keep + FD_STEP;
            double lp = ref_loss(&pb, P, NULL);
            P[at] = keep - FD_STEP;
            double lm = ref_loss(&pb, P, NULL);
            P[at] = keep;
            double fd = (lp - lm) / (2 * FD_STEP);
            err = fmax(err, fabs(grads[at] - fd));
            scale = fmax(scale, fabs(fd));
        }
        int k = v->kind, p = v->kind == BTRM_LT_NORM ? v->proj : v->proj;
        double rel = err / fmax(scale, 1e-30);
        if (!seen[k][p] || rel > worst[k][p] / fmax(wscale[k][p], 1e-30)) {
            worst[k][p] = err;
            wscale[k][p] = scale;
        }
        seen[k][p]++;
    }
    for (int k = 0; k < 4; k++)
        for (int p = 0; p < BTRM_N_PROJ; p++) {
            if (!seen[k][p])
                continue;
            const char *what = k == BTRM_LT_NORM
                                   ? (p == BTRM_NORM_ATTN ? "attn_norm" : p == BTRM_NORM_FFN
                                                                              ? "ffn_norm" : "output_norm")
                                   : btrm_llama_train_proj_name(p);
            double rel = worst[k][p] / fmax(wscale[k][p], 1e-30);
            /* (with one token per sequence q and k do not matter: both are 0) */
            ok(rel <= FD_TOL && (wscale[k][p] > 0 || worst[k][p] == 0),
               "%s: %s %s gradient (%d tensor%s) = central differences (max error %.2g of "
               "max |g| %.2g)", cf->what, kind_name(k), what, seen[k][p],
               seen[k][p] > 1 ? "s" : "", rel, wscale[k][p]);
        }
    btrm_llama_train_ws_free(&ws);
    btrm_llama_train_free(&lt);
    loss_head_free(&lh);
    free(params), free(grads), free(pooled), free(P), free(href), free(ids);
    free_model(&m);
}

static void test_fd(void)
{
    const fd_config cfgs[] = {
        { "LoRA all targets, 2 blocks, GQA 2, last",
          { 16, 24, 2, 4, 2, 4, 4, 10000.0f },
          { BTRM_FT_LORA, 0, 3, 6.0f, BTRM_LORA_ALL }, BTRM_POOL_LAST, 4, { 5, 1, 3, 7 }, 0, 0 },
        { "LoRA q,v top 1 of 3, MHA, mean",
          { 12, 20, 3, 4, 4, 4, 4, 10000.0f },
          { BTRM_FT_LORA, 1, 2, 4.0f, BTRM_LORA_TARGET(BTRM_PROJ_Q) | BTRM_LORA_TARGET(BTRM_PROJ_V) },
          BTRM_POOL_MEAN, 5, { 1, 4, 6, 2, 3 }, 0, 0 },
        { "LoRA o,down top 2 of 3, GQA 4, last",
          { 12, 20, 3, 4, 1, 4, 4, 10000.0f },
          { BTRM_FT_LORA, 2, 2, 2.0f, BTRM_LORA_TARGET(BTRM_PROJ_O) | BTRM_LORA_TARGET(BTRM_PROJ_DOWN) },
          BTRM_POOL_LAST, 4, { 3, 6, 1, 4 }, 0, 0 },
        { "top_k 1 of 2, GQA 4, last",
          { 12, 20, 2, 4, 1, 4, 4, 10000.0f },
          { BTRM_FT_TOP_K, 1, 0, 0.0f, 0 }, BTRM_POOL_LAST, 4, { 4, 1, 6, 2 }, 0, 0 },
        { "top_k 2 of 3, GQA 2, partial RoPE, mean",
          { 12, 16, 3, 4, 2, 4, 2, 500.0f },
          { BTRM_FT_TOP_K, 2, 0, 0.0f, 0 }, BTRM_POOL_MEAN, 2, { 7, 3 }, 0, 0 },
        { "LoRA all targets, 1 block, GQA 4, one token, mean",
          { 16, 24, 1, 4, 1, 4, 4, 10000.0f },
          { BTRM_FT_LORA, 0, 2, 2.0f, BTRM_LORA_ALL }, BTRM_POOL_MEAN, 1, { 1 }, 0, 0 },
        { "LoRA all targets, 2 blocks, 140 + 9 tokens (two attention blocks), recompute, mean",
          { 8, 12, 2, 2, 1, 4, 4, 10000.0f },
          { BTRM_FT_LORA, 0, 2, 2.0f, BTRM_LORA_ALL }, BTRM_POOL_MEAN, 2, { 140, 9 }, 1, 6 },
        { "top_k all of 2, 140 + 9 tokens, recompute, last",
          { 8, 12, 2, 2, 1, 4, 4, 10000.0f },
          { BTRM_FT_TOP_K, 0, 0, 0.0f, 0 }, BTRM_POOL_LAST, 2, { 9, 140 }, 1, 4 },
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        check_fd(&cfgs[i]);
}

/* ------------------------------------------------------------------------ */
/* Bitwise: untouched parameters give btrm_llama_forward's pooled states */

static int forward_equal(const model *m, const btrm_llama_train_spec *spec, int pool,
                         int wbuf_rows, const char *what)
{
    btrm_llama_train lt;
    int rc = btrm_llama_train_init(&lt, spec, &m->hp, &m->w);
    const int lens[3] = { 150, 1, 37 };
    int N = sum_int(lens, 3), D = m->hp.dim;
    int32_t *ids = random_ids(N, m->hp.vocab_size);
    float *a = malloc((size_t)3 * D * sizeof *a), *b = malloc((size_t)3 * D * sizeof *b);
    float *params = malloc((lt.n_params ? lt.n_params : 1) * sizeof *params);
    btrm_llama_ws ws;
    btrm_llama_train_ws tws;
    if (!rc) {
        btrm_llama_train_init_params(&lt, params, 5);
        rc = btrm_llama_ws_init(&ws, &m->hp, &m->w, N, 150, BTRM_KERNEL_DEQUANT);
    }
    if (!rc && (rc = btrm_llama_train_ws_init(&tws, &lt, N, 150, 0, BTRM_PREC_FP32)))
        btrm_llama_ws_free(&ws);
    int same = 0;
    if (!rc) {
        if (wbuf_rows) {
            ws.wbuf_rows = wbuf_rows;
            tws.base.wbuf_rows = wbuf_rows;
        }
        rc = btrm_llama_forward(&m->hp, &m->w, &ws, ids, lens, 3,
                                pool == BTRM_POOL_LAST ? a : NULL, pool == BTRM_POOL_MEAN ? a : NULL);
        if (!rc)
            rc = btrm_llama_train_forward(&tws, params, ids, lens, 3, pool, b);
        same = !rc && !memcmp(a, b, (size_t)3 * D * sizeof *a);
        btrm_llama_ws_free(&ws);
        btrm_llama_train_ws_free(&tws);
    }
    ok(same, "%s: bitwise btrm_llama_forward's pooled states", what);
    if (rc)
        diag("%s", btrm_error_msg());
    btrm_llama_train_free(&lt);
    free(a), free(b), free(params), free(ids);
    return same;
}

/* Stores *mat as type (Q8_0 or F16) in m; *deq becomes the float32 matrix
 * of the stored values. */
static void requantize(model *m, btrm_llama_matrix *mat, btrm_llama_matrix *deq, int type)
{
    int rows = mat->rows, cols = mat->cols;
    const float *x = mat->data;
    size_t row_bytes = btrm_llama_row_bytes(type, cols);
    unsigned char *q = own(m, malloc((size_t)rows * row_bytes));
    float *d = own(m, malloc((size_t)rows * cols * sizeof *d));
    for (int r = 0; r < rows; r++) {
        unsigned char *qr = q + (size_t)r * row_bytes;
        const float *xr = x + (size_t)r * cols;
        if (type == BTRM_Q_F16) {
            for (int i = 0; i < cols; i++) {
                uint16_t h = btrm_float_to_half(xr[i]);
                memcpy(qr + 2 * i, &h, 2);
            }
        } else {
            for (int b = 0; b < cols / 32; b++) {
                float amax = 0;
                for (int i = 0; i < 32; i++)
                    amax = fabsf(xr[32 * b + i]) > amax ? fabsf(xr[32 * b + i]) : amax;
                float scale = amax / 127.0f, inv = scale ? 1.0f / scale : 0.0f;
                uint16_t h = btrm_float_to_half(scale);
                memcpy(qr + 34 * b, &h, 2);
                for (int i = 0; i < 32; i++)
                    qr[34 * b + 2 + i] = (unsigned char)(signed char)roundf(xr[32 * b + i] * inv);
            }
        }
    }
    *mat = (btrm_llama_matrix){ q, type, rows, cols };
    for (int r = 0; r < rows; r++)
        btrm_llama_dequant_row(mat, r, d + (size_t)r * cols);
    *deq = (btrm_llama_matrix){ d, BTRM_Q_F32, rows, cols };
}

static void test_bitwise(void)
{
    model m;
    make_model(&m, (shape){ 32, 64, 3, 4, 2, 8, 8, 10000.0f }, 300);
    btrm_llama_train_spec lora = { BTRM_FT_LORA, 2, 4, 8.0f, BTRM_LORA_ALL };
    btrm_llama_train_spec lora_all = { BTRM_FT_LORA, 0, 4, 8.0f, BTRM_LORA_ALL };
    btrm_llama_train_spec topk = { BTRM_FT_TOP_K, 2, 0, 0.0f, 0 };
    forward_equal(&m, &lora, BTRM_POOL_LAST, 0, "LoRA (B = 0) on the top 2 of 3 blocks, last");
    forward_equal(&m, &lora_all, BTRM_POOL_MEAN, 0, "LoRA (B = 0) on every block, mean");
    forward_equal(&m, &topk, BTRM_POOL_LAST, 0, "top_k 2 of 3, untouched float32 masters, last");
    forward_equal(&m, &topk, BTRM_POOL_MEAN, 0, "top_k 2 of 3, mean");
    /* quantised base weights, several dequantisation blocks */
    btrm_llama_matrix d;
    for (int l = 0; l < 3; l++) {
        btrm_llama_layer *L = &m.layers[l];
        requantize(&m, &L->wq, &d, BTRM_Q_Q8_0);
        requantize(&m, &L->wk, &d, BTRM_Q_F16);
        requantize(&m, &L->w1, &d, BTRM_Q_Q8_0);
        requantize(&m, &L->w2, &d, BTRM_Q_Q8_0);
    }
    requantize(&m, &m.w.token_embd, &d, BTRM_Q_Q8_0);
    forward_equal(&m, &lora, BTRM_POOL_MEAN, 7, "LoRA (B = 0) on Q8_0 and F16 weights in blocks "
                  "of 7 rows, mean");
    free_model(&m);
}

/* ------------------------------------------------------------------------ */
/* Recompute, accumulation, micro-batches, quantised base weights */

typedef struct run {
    btrm_llama_train lt;
    btrm_llama_train_ws ws;
    float *params, *grads, *pooled;
} run;

static int run_init(run *r, const model *m, const btrm_llama_train_spec *spec, int max_tokens,
                    int max_seq, int recompute)
{
    memset(r, 0, sizeof *r);
    int rc = btrm_llama_train_init(&r->lt, spec, &m->hp, &m->w);
    if (rc)
        return rc;
    rc = btrm_llama_train_ws_init(&r->ws, &r->lt, max_tokens, max_seq, recompute, BTRM_PREC_FP32);
    r->params = malloc(r->lt.n_params * sizeof *r->params);
    r->grads = calloc(r->lt.n_params, sizeof *r->grads);
    r->pooled = malloc((size_t)max_tokens * m->hp.dim * sizeof *r->pooled);
    return rc;
}

static void run_free(run *r)
{
    btrm_llama_train_ws_free(&r->ws);
    btrm_llama_train_free(&r->lt);
    free(r->params), free(r->grads), free(r->pooled);
}

static double grad_rel_diff(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

static void test_recompute_accumulate(void)
{
    model m;
    make_model(&m, (shape){ 16, 24, 3, 4, 2, 4, 4, 10000.0f }, 50);
    const int lens[4] = { 9, 1, 130, 4 };
    int N = sum_int(lens, 4);
    int32_t *ids = random_ids(N, 50);
    loss_head lh;
    loss_head_init(&lh, m.hp.dim, 4);
    const btrm_llama_train_spec specs[2] = { { BTRM_FT_LORA, 2, 3, 5.0f, BTRM_LORA_ALL },
                                             { BTRM_FT_TOP_K, 2, 0, 0.0f, 0 } };
    for (int k = 0; k < 2; k++) {
        const char *what = k ? "top_k 2 of 3" : "LoRA top 2 of 3";
        run a, b;
        int rc = run_init(&a, &m, &specs[k], N, 130, 0);
        rc |= run_init(&b, &m, &specs[k], N, 130, 1);
        randomize_params(&a.lt, a.params);
        memcpy(b.params, a.params, a.lt.n_params * sizeof *a.params);
        problem pb = { &m, &a.lt, ids, lens, 4, BTRM_POOL_MEAN, &lh };
        rc |= c_step(&a.ws, &pb, a.params, a.pooled, a.grads);
        rc |= c_step(&b.ws, &pb, b.params, b.pooled, b.grads);
        ok(!rc && !memcmp(a.pooled, b.pooled, (size_t)4 * m.hp.dim * sizeof(float)) &&
               !memcmp(a.grads, b.grads, a.lt.n_params * sizeof(float)),
           "%s: recompute gives bitwise the same pooled states and gradients", what);
        /* llama_train.h's memory per token: dim 16, q_dim 16, kv_dim 8, hidden 24,
         * T = 2, a = 3 * 7 (LoRA) or 0, r = 3 or 1; two [128, 130] blocks */
        size_t blk = 2 * 16 + 2 * 16 + 2 * 8 + 2 * 24 + (k ? 0 : 21), r = k ? 1 : 3;
        size_t scratch = 4 * 16 + 2 * 16 + 2 * 8 + 3 * 24 + r, fixed = 2 * 128 * 130;
        size_t want_a = 4 * ((size_t)N * (2 * blk + 16 + scratch) + fixed);
        size_t want_b = 4 * ((size_t)N * (3 * 16 + blk - 16 + scratch) + fixed);
        ok(a.ws.bytes == want_a && b.ws.bytes == want_b,
           "%s: memory as documented: %zu bytes, %zu with recompute", what, want_a, want_b);
        /* a second backward of the same micro-batch doubles the gradients: up to
         * the fp32 rounding of the accumulating GEMMs (beta = 1), which add C
         * where the kernel chooses (oneDNN's AVX2 sgemm splits K across its
         * threads and adds each part to C: (g + p1) + p2, not g + g) */
        float *twice = malloc(a.lt.n_params * sizeof *twice);
        for (size_t i = 0; i < a.lt.n_params; i++)
            twice[i] = 2.0f * a.grads[i];
        rc = c_step(&a.ws, &pb, a.params, a.pooled, a.grads);
        double dmax = 0, gmax = 0;
        for (size_t i = 0; i < a.lt.n_params; i++) {
            dmax = fmax(dmax, fabs((double)a.grads[i] - twice[i]));
            gmax = fmax(gmax, fabs((double)twice[i]));
        }
        ok(!rc && gmax > 0 && dmax <= 1e-6 * gmax,
           "%s: backward accumulates into grads (twice the same micro-batch = 2 g: max "
           "difference %.2e of max |2 g| %.2e, <= 1e-6 of it)", what, dmax, gmax);
        /* micro-batches: the batch as two halves, gradients summed, = the whole batch
         * (the loss is a sum over sequences, pairs (0, 2) and (1, 3) kept whole) */
        memset(b.grads, 0, b.lt.n_params * sizeof *b.grads);
        memset(a.grads, 0, a.lt.n_params * sizeof *a.grads);
        rc = c_step(&a.ws, &pb, a.params, a.pooled, a.grads);
        const int order[4] = { 0, 2, 1, 3 };
        int offs[4];
        for (int s = 0, o = 0; s < 4; o += lens[s], s++)
            offs[s] = o;
        for (int half = 0; half < 2 && !rc; half++) {
            int s0 = order[2 * half], s1 = order[2 * half + 1];
            int hl[2] = { lens[s0], lens[s1] };
            int32_t *hid = malloc((size_t)(hl[0] + hl[1]) * sizeof *hid);
            memcpy(hid, ids + offs[s0], (size_t)hl[0] * sizeof *hid);
            memcpy(hid + hl[0], ids + offs[s1], (size_t)hl[1] * sizeof *hid);
            loss_head hh = { m.hp.dim, 2, lh.v, malloc((size_t)2 * m.hp.dim * sizeof(double)) };
            memcpy(hh.c, lh.c + (size_t)s0 * m.hp.dim, (size_t)m.hp.dim * sizeof(double));
            memcpy(hh.c + m.hp.dim, lh.c + (size_t)s1 * m.hp.dim, (size_t)m.hp.dim * sizeof(double));
            problem ph = { &m, &a.lt, hid, hl, 2, BTRM_POOL_MEAN, &hh };
            rc = c_step(&b.ws, &ph, b.params, b.pooled, b.grads);
            free(hid);
            free(hh.c);
        }
        double e = grad_rel_diff(b.grads, a.grads, a.lt.n_params);
        ok(!rc && e <= 1e-5, "%s: two micro-batches accumulate to the whole batch's gradient "
           "(relative difference %.2g <= 1e-5)", what, e);
        free(twice);
        run_free(&a);
        run_free(&b);
    }
    loss_head_free(&lh);
    free(ids);
    free_model(&m);
}

/* Q8_0 / F16 base weights against the float32 model of their values: the
 * input gradients through the frozen quantised weights (dequantised in row
 * blocks for the transposed product) match within float32 rounding. */
static void test_quantized(void)
{
    for (int type = 0; type < 2; type++) {
        int wt = type ? BTRM_Q_F16 : BTRM_Q_Q8_0;
        model q, d;
        make_model(&q, (shape){ 32, 64, 2, 4, 2, 8, 8, 10000.0f }, 40);
        d = q;
        d.n_owned = 0;
        d.w.layers = d.layers;
        for (int l = 0; l < 2; l++)
            for (int p = 0; p < BTRM_N_PROJ; p++)
                requantize(&q, (btrm_llama_matrix *)layer_matrix(&q.layers[l], p),
                           (btrm_llama_matrix *)layer_matrix(&d.layers[l], p), wt);
        const int lens[3] = { 6, 1, 11 };
        int32_t *ids = random_ids(18, 40);
        loss_head lh;
        loss_head_init(&lh, 32, 3);
        /* LoRA on q and up of the top block only: every gradient passes back
         * through the frozen weights of both blocks */
        btrm_llama_train_spec spec = { BTRM_FT_LORA, 0, 2, 4.0f,
                                       BTRM_LORA_TARGET(BTRM_PROJ_Q) | BTRM_LORA_TARGET(BTRM_PROJ_UP) };
        run a, b;
        int rc = run_init(&a, &q, &spec, 18, 11, 0) | run_init(&b, &d, &spec, 18, 11, 0);
        a.ws.base.wbuf_rows = 5; /* several blocks, the last one partial */
        randomize_params(&a.lt, a.params);
        memcpy(b.params, a.params, a.lt.n_params * sizeof *a.params);
        problem pa = { &q, &a.lt, ids, lens, 3, BTRM_POOL_LAST, &lh };
        problem pd = { &d, &b.lt, ids, lens, 3, BTRM_POOL_LAST, &lh };
        rc |= c_step(&a.ws, &pa, a.params, a.pooled, a.grads);
        rc |= c_step(&b.ws, &pd, b.params, b.pooled, b.grads);
        double e = grad_rel_diff(a.grads, b.grads, a.lt.n_params);
        ok(!rc && e <= 1e-6, "%s base weights (dequantised in blocks of 5 rows): gradients = "
           "those of the float32 model of the same values (relative difference %.2g <= 1e-6)",
           type ? "F16" : "Q8_0", e);
        /* the layer-0 LoRA gradients exist only through the transposed products */
        int t0 = btrm_llama_train_find(&a.lt, "blk.0.attn_q.weight.lora_a");
        double g0 = 0;
        for (int i = 0; t0 >= 0 && i < a.lt.tensors[t0].rows * a.lt.tensors[t0].cols; i++)
            g0 = fmax(g0, fabs(a.grads[a.lt.tensors[t0].offset + i]));
        ok(g0 > 0, "%s: ... including block 0's, reached through block 1's frozen weights "
           "(max |g| %.2g)", type ? "F16" : "Q8_0", g0);
        run_free(&a);
        run_free(&b);
        loss_head_free(&lh);
        free(ids);
        free_model(&q);
    }
}

/* ------------------------------------------------------------------------ */
/* Layout, initialisation, FLOPs, errors */

static void test_layout(void)
{
    model m;
    make_model(&m, (shape){ 16, 24, 3, 4, 2, 4, 4, 10000.0f }, 20);
    btrm_llama_train lt;
    btrm_llama_train_spec spec = { BTRM_FT_LORA, 2, 3, 6.0f, BTRM_LORA_ALL };
    int rc = btrm_llama_train_init(&lt, &spec, &m.hp, &m.w);
    /* per block: q [3,16]+[16,3], k, v [3,16]+[8,3], o [3,16]+[16,3], gate, up
     * [3,16]+[24,3], down [3,24]+[16,3] */
    size_t per = 2 * 96 + 2 * 72 + 2 * 120 + 3 * 24 + 16 * 3;
    ok(!rc && lt.n_tensors == 28 && lt.n_params == 2 * per && lt.first_layer == 1 &&
           lt.lora_scale == 2.0f,
       "LoRA r=3 on 7 targets of the top 2 blocks: 28 tensors, %zu parameters, scale 2", 2 * per);
    const btrm_llama_train_tensor *t = lt.tensors;
    ok(!rc && !strcmp(t[0].name, "blk.1.attn_q.weight.lora_a") && t[0].rows == 3 &&
           t[0].cols == 16 && t[0].offset == 0 && !strcmp(t[1].name, "blk.1.attn_q.weight.lora_b") &&
           t[1].rows == 16 && t[1].cols == 3 && t[1].offset == 48 &&
           !strcmp(t[7].name, "blk.1.attn_output.weight.lora_b") &&
           !strcmp(t[27].name, "blk.2.ffn_down.weight.lora_b") && t[27].rows == 16 &&
           t[27].offset + 48 == lt.n_params,
       "names and shapes: blk.N.<gguf>.weight.lora_a [r, in], .lora_b [out, r], in order");
    ok(btrm_llama_train_find(&lt, "blk.2.ffn_up.weight.lora_a") == 24 &&
           btrm_llama_train_find(&lt, "blk.0.attn_q.weight.lora_a") == -1,
       "find by name; the frozen block 0 has none");
    float *p = malloc(lt.n_params * sizeof *p), *p2 = malloc(lt.n_params * sizeof *p2);
    btrm_llama_train_init_params(&lt, p, 42);
    btrm_llama_train_init_params(&lt, p2, 42);
    int a_ok = 1, b_zero = 1;
    double amax = 0;
    for (int i = 0; i < lt.n_tensors; i++) {
        const btrm_llama_train_tensor *v = &lt.tensors[i];
        double bound = 1.0 / sqrt((double)v->cols), tmax = 0;
        for (int j = 0; j < v->rows * v->cols; j++) {
            float x = p[v->offset + j];
            if (v->kind == BTRM_LT_LORA_B)
                b_zero &= x == 0.0f;
            else {
                a_ok &= fabs(x) <= bound;
                tmax = fmax(tmax, fabs(x) / bound);
            }
        }
        if (v->kind == BTRM_LT_LORA_A)
            amax = fmax(amax, tmax);
    }
    ok(a_ok && amax > 0.9 && b_zero && !memcmp(p, p2, lt.n_params * sizeof *p),
       "init: A uniform within 1/sqrt(in) (largest |A| sqrt(in) = %.3f), B = 0, "
       "deterministic from the seed", amax);
    btrm_llama_train_free(&lt);

    btrm_llama_train_spec top = { BTRM_FT_TOP_K, 1, 0, 0.0f, 0 };
    rc = btrm_llama_train_init(&lt, &top, &m.hp, &m.w);
    size_t want = 16 + 16 * 16 + 2 * 8 * 16 + 16 * 16 + 16 + 3 * 24 * 16 + 16;
    ok(!rc && lt.n_tensors == 10 && lt.n_params == want &&
           !strcmp(lt.tensors[0].name, "blk.2.attn_norm.weight") &&
           !strcmp(lt.tensors[1].name, "blk.2.attn_q.weight") &&
           !strcmp(lt.tensors[5].name, "blk.2.ffn_norm.weight") &&
           !strcmp(lt.tensors[8].name, "blk.2.ffn_down.weight") &&
           !strcmp(lt.tensors[9].name, "output_norm.weight") && lt.tensors[9].layer == -1,
       "top_k 1: the top block's norms and 7 weights in GGUF names, then output_norm "
       "(%zu parameters)", want);
    float *tp = realloc(p, lt.n_params * sizeof *tp);
    p = tp;
    btrm_llama_train_init_params(&lt, p, 1);
    int q = btrm_llama_train_find(&lt, "blk.2.ffn_up.weight");
    ok(!memcmp(p + lt.tensors[q].offset, m.layers[2].w3.data, 24 * 16 * sizeof *p) &&
           !memcmp(p + lt.tensors[9].offset, m.w.output_norm, 16 * sizeof *p),
       "init: top_k masters are the base weights");
    /* FLOPs: one token, top_k of a 1-block model, by hand */
    btrm_llama_train_free(&lt);
    free(p), free(p2);

    is_string(btrm_llama_train_proj_name(BTRM_PROJ_GATE), "gate", "target names");
    ok(btrm_llama_train_proj_parse("down") == BTRM_PROJ_DOWN &&
           btrm_llama_train_proj_parse("w9") == -1 &&
           !strcmp(btrm_llama_train_proj_hf(BTRM_PROJ_O), "self_attn.o_proj") &&
           !strcmp(btrm_llama_train_proj_gguf(BTRM_PROJ_UP), "ffn_up") &&
           btrm_llama_train_proj_gguf(7) == NULL,
       "target parsing and the GGUF / Hugging Face names");
    free_model(&m);
}

static void test_flops(void)
{
    model m;
    make_model(&m, (shape){ 16, 24, 2, 4, 2, 4, 4, 10000.0f }, 20);
    const int lens[2] = { 3, 5 };
    /* LoRA r=2 on q and down of the top block: forward = llama's + 2*N*r*(in+out) per target */
    btrm_llama_train_spec spec = { BTRM_FT_LORA, 1, 2, 2.0f,
                                   BTRM_LORA_TARGET(BTRM_PROJ_Q) | BTRM_LORA_TARGET(BTRM_PROJ_DOWN) };
    btrm_llama_train lt;
    btrm_llama_train_init(&lt, &spec, &m.hp, &m.w);
    double f, b;
    btrm_llama_train_flops(&lt, lens, 2, 0, &f, &b);
    double N = 8, pairs = 6 + 15;
    double want_f = btrm_llama_flops(&m.hp, lens, 2) + 2 * N * 2 * (16 + 16) + 2 * N * 2 * (24 + 16);
    /* backward of the top block (block 0 of the trainable ones: q, k, v input
     * gradients not needed): down, gate, up, o input gradients; attention
     * 10*hd*heads*pairs; LoRA q: dB, t (2N*16*2 each), dA (2N*2*16); LoRA down:
     * dB, t (2N*16*2 each), dA and dx (2N*2*24 each) */
    double want_b = 2 * N * (16 * 24 * 3 + 16 * 16) + 10.0 * 4 * 4 * pairs +
                    2 * N * 2 * (2 * 16 + 16) + 2 * N * 2 * (2 * 16 + 2 * 24);
    ok(f == want_f && b == want_b, "FLOPs of LoRA on q and down by hand (forward %.0f, "
       "backward %.0f)", want_f, want_b);
    double f2, b2;
    btrm_llama_train_flops(&lt, lens, 2, 1, &f2, &b2);
    ok(f2 == f && b2 == b + btrm_llama_flops(&m.hp, lens, 2) / 2 - 2 * N * 16 * 24 +
                               2 * N * 2 * (32 + 40) - 2 * N * 2 * 16,
       "recompute adds one forward of the trainable block but for down's product");
    btrm_llama_train_ws ws;
    float *params = malloc(lt.n_params * sizeof *params), *grads = calloc(lt.n_params, sizeof *grads);
    float pooled[32], dp[32];
    btrm_llama_train_init_params(&lt, params, 3);
    for (int i = 0; i < 32; i++)
        dp[i] = 1.0f;
    int32_t ids[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    int rc = btrm_llama_train_ws_init(&ws, &lt, 8, 5, 0, BTRM_PREC_FP32);
    rc |= btrm_llama_train_forward(&ws, params, ids, lens, 2, BTRM_POOL_LAST, pooled);
    rc |= btrm_llama_train_backward(&ws, params, dp, grads);
    ok(!rc && ws.flops_forward == f && ws.flops_backward == b,
       "the work buffers count a forward and a backward");
    btrm_llama_train_ws_free(&ws);
    btrm_llama_train_free(&lt);
    free(params), free(grads);
    free_model(&m);
}

static void test_errors(void)
{
    model m;
    make_model(&m, (shape){ 16, 24, 3, 4, 2, 4, 4, 10000.0f }, 20);
    btrm_llama_train lt;
    btrm_llama_train_spec s = { BTRM_FT_LORA, 0, 0, 8.0f, BTRM_LORA_ALL };
    is_int(btrm_llama_train_init(&lt, &s, &m.hp, &m.w), BTRM_ECONFIG, "LoRA rank 0 is refused");
    like(btrm_error_msg(), "model.finetune.rank = 0: the LoRA rank must be at least 1", "... saying so");
    s.rank = 9;
    is_int(btrm_llama_train_init(&lt, &s, &m.hp, &m.w), BTRM_ECONFIG,
           "rank 9 with 8-wide k and v projections is refused");
    like(btrm_error_msg(), "model.finetune.rank = 9 is larger than the dimension of target k "
         "(attn_k, [8, 16]): at most 8", "... naming the target and its shape");
    s.rank = 17;
    s.targets = BTRM_LORA_TARGET(BTRM_PROJ_Q);
    is_int(btrm_llama_train_init(&lt, &s, &m.hp, &m.w), BTRM_ECONFIG,
           "rank 17 on q with dim 16 is refused");
    s.rank = 2;
    s.layers = 4;
    is_int(btrm_llama_train_init(&lt, &s, &m.hp, &m.w), BTRM_ECONFIG, "layers 4 of a 3-block "
           "model is refused");
    like(btrm_error_msg(), "model.finetune.layers = 4: the model has 3 blocks", "... saying so");
    btrm_llama_train_spec t = { BTRM_FT_TOP_K, 5, 0, 0.0f, 0 };
    is_int(btrm_llama_train_init(&lt, &t, &m.hp, &m.w), BTRM_ECONFIG, "top_k 5 of 3 is refused");
    s.layers = 1;
    s.targets = 0;
    is_int(btrm_llama_train_init(&lt, &s, &m.hp, &m.w), BTRM_ECONFIG, "no targets is refused");
    s.targets = BTRM_LORA_ALL;
    s.alpha = 0.0f;
    is_int(btrm_llama_train_init(&lt, &s, &m.hp, &m.w), BTRM_ECONFIG, "alpha 0 is refused");
    s.alpha = 4.0f;
    /* a model without a gate projection (as an architecture whose MLP has none) */
    btrm_llama_matrix keep = m.layers[2].w1;
    m.layers[2].w1.data = NULL;
    s.targets = BTRM_LORA_TARGET(BTRM_PROJ_GATE);
    is_int(btrm_llama_train_init(&lt, &s, &m.hp, &m.w), BTRM_ECONFIG,
           "a target the model lacks is refused");
    like(btrm_error_msg(), "model.finetune.targets: this model has no gate projection (ffn_gate) "
         "in block 2", "... naming the target and the block");
    s.targets = BTRM_LORA_TARGET(BTRM_PROJ_Q);
    /* the backward pass is the llama architecture's: the others' features are refused */
    m.hp.rope_neox = 1;
    is_int(btrm_llama_train_init(&lt, &s, &m.hp, &m.w), BTRM_ECONFIG,
           "a model with NeoX rotary (qwen2, phi3, gemma) is refused for fine-tuning");
    like(btrm_error_msg(), "implements the llama architecture only", "... saying so");
    m.hp.rope_neox = 0;
    ok(btrm_llama_train_init(&lt, &s, &m.hp, &m.w) == 0, "... other targets still work");
    m.layers[2].w1 = keep;
    btrm_llama_train_ws ws;
    is_int(btrm_llama_train_ws_init(&ws, &lt, 8, 8, 0, 7), BTRM_EUSAGE,
           "a GEMM precision btrm_gemm does not know is refused at init");
    int rc = btrm_llama_train_ws_init(&ws, &lt, 8, 8, 0, BTRM_PREC_FP32);
    float *params = malloc(lt.n_params * sizeof *params), pooled[32];
    btrm_llama_train_init_params(&lt, params, 1);
    is_int(btrm_llama_train_backward(&ws, params, pooled, params), BTRM_EUSAGE,
           "backward before any forward is refused");
    int32_t ids[3] = { 1, 20, 2 };
    int lens[1] = { 3 };
    is_int(btrm_llama_train_forward(&ws, params, ids, lens, 1, BTRM_POOL_LAST, pooled), BTRM_EDATA,
           "a token id outside the vocabulary");
    like(btrm_error_msg(), "sequence 0, position 1: token id 20 outside the vocabulary [0, 20)",
         "... names the sequence and position");
    lens[0] = 9;
    is_int(!rc ? btrm_llama_train_forward(&ws, params, ids, lens, 1, BTRM_POOL_LAST, pooled) : rc,
           BTRM_EDATA, "a sequence longer than the work buffers");
    free(params);
    btrm_llama_train_ws_free(&ws);
    btrm_llama_train_free(&lt);
    free_model(&m);
}

/* ------------------------------------------------------------------------ */
/* stories260K against tests/llama_train_ref.py (float64 torch autograd) */

static int write_f32(const char *dir, const char *name, const float *v, size_t n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(v, sizeof *v, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

/* One optimizer step (SGD, so that B is no longer 0), then the loss and
 * every gradient of the next step, written for the oracle. */
static int stories_case(const btrm_llama_model *sm, const btrm_llama_train_spec *spec, int pool,
                        const char *dir, const char *name)
{
    btrm_llama_train lt;
    int rc = btrm_llama_train_init(&lt, spec, &sm->hp, &sm->w);
    if (rc)
        return rc;
    const int lens[4] = { 37, 1, 150, 12 };
    int N = sum_int(lens, 4), D = sm->hp.dim;
    int32_t *ids = random_ids(N, sm->hp.vocab_size);
    loss_head lh;
    loss_head_init(&lh, D, 4);
    model shim; /* problem wants a model; only hp and w are read */
    memset(&shim, 0, sizeof shim);
    shim.hp = sm->hp;
    problem pb = { &shim, &lt, ids, lens, 4, pool, &lh };
    btrm_llama_train_ws ws;
    float *params = malloc(lt.n_params * sizeof *params), *grads = calloc(lt.n_params, sizeof *grads);
    float *pooled = malloc((size_t)4 * D * sizeof *pooled);
    rc = btrm_llama_train_ws_init(&ws, &lt, N, 150, 0, BTRM_PREC_FP32);
    if (!rc) {
        btrm_llama_train_init_params(&lt, params, 2024);
        rc = c_step(&ws, &pb, params, pooled, grads);
    }
    if (!rc) {
        /* SGD with a step that moves B to about the size of A's scale */
        double gmax = 0;
        for (size_t i = 0; i < lt.n_params; i++)
            gmax = fmax(gmax, fabs(grads[i]));
        float lr = (float)(0.05 / gmax);
        for (size_t i = 0; i < lt.n_params; i++)
            params[i] -= lr * grads[i];
        memset(grads, 0, lt.n_params * sizeof *grads);
        rc = c_step(&ws, &pb, params, pooled, grads);
    }
    if (!rc) {
        double *h = malloc((size_t)4 * D * sizeof *h);
        for (int i = 0; i < 4 * D; i++)
            h[i] = pooled[i];
        double L = test_loss(&lh, h, NULL);
        free(h);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.json", dir, name);
        FILE *f = fopen(path, "w");
        if (!f)
            rc = -1;
        else {
            fprintf(f, "{\"type\": \"%s\", \"rank\": %d, \"alpha\": %.9g, \"first_layer\": %d, "
                    "\"pool\": \"%s\", \"loss\": %.17g,\n \"lens\": [",
                    spec->type == BTRM_FT_LORA ? "lora" : "top_k", spec->rank, (double)spec->alpha,
                    lt.first_layer, pool == BTRM_POOL_LAST ? "last" : "mean", L);
            for (int s = 0; s < 4; s++)
                fprintf(f, "%s%d", s ? ", " : "", lens[s]);
            fprintf(f, "],\n \"ids\": [");
            for (int i = 0; i < N; i++)
                fprintf(f, "%s%d", i ? ", " : "", (int)ids[i]);
            fprintf(f, "],\n \"v\": [");
            for (int i = 0; i < D; i++)
                fprintf(f, "%s%.17g", i ? ", " : "", lh.v[i]);
            fprintf(f, "],\n \"c\": [");
            for (int i = 0; i < 4 * D; i++)
                fprintf(f, "%s%.17g", i ? ", " : "", lh.c[i]);
            fprintf(f, "],\n \"tensors\": [");
            for (int t = 0; t < lt.n_tensors; t++)
                fprintf(f, "%s\n  {\"name\": \"%s\", \"offset\": %zu, \"rows\": %d, \"cols\": %d}",
                        t ? "," : "", lt.tensors[t].name, lt.tensors[t].offset,
                        lt.tensors[t].rows, lt.tensors[t].cols);
            fprintf(f, "]}\n");
            rc = fclose(f) ? -1 : 0;
        }
        rc = rc ? rc : write_f32(dir, strcat(strcpy(path, name), ".params"), params, lt.n_params);
        rc = rc ? rc : write_f32(dir, strcat(strcpy(path, name), ".grads"), grads, lt.n_params);
        rc = rc ? rc : write_f32(dir, strcat(strcpy(path, name), ".pooled"), pooled, (size_t)4 * D);
    }
    btrm_llama_train_ws_free(&ws);
    btrm_llama_train_free(&lt);
    loss_head_free(&lh);
    free(params), free(grads), free(pooled), free(ids);
    return rc;
}

static void test_stories(void)
{
    const char *shared = getenv("BTRM_SHARED");
    const char *srcdir = getenv("BTRM_SRCDIR");
    char path[4200], cmd[9000];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin",
             shared ? shared : "../shared");
    if (access(path, R_OK)) {
        skip(7, "stories260K not found (BTRM_SHARED/models/stories260K)");
        return;
    }
    if (system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1")) {
        skip(7, "/usr/bin/python3 with torch and numpy not available: no float64 oracle");
        return;
    }
    btrm_llama_model *sm = NULL;
    int rc = btrm_llama_model_open(&sm, BTRM_LLAMA_LLAMA2C, path, NULL, 0);
    if (!ok(rc == 0, "open stories260K.bin")) {
        diag("%s", btrm_error_msg());
        skip(6, "model did not open");
        return;
    }
    char dir[] = "/tmp/btrm-llama-train-XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "a temporary folder for the oracle");
        skip(5, "no temporary folder");
        btrm_llama_model_close(sm);
        return;
    }
    btrm_llama_train_spec lora = { BTRM_FT_LORA, 3, 4, 8.0f, BTRM_LORA_ALL };
    btrm_llama_train_spec topk = { BTRM_FT_TOP_K, 2, 0, 0.0f, 0 };
    rc = stories_case(sm, &lora, BTRM_POOL_LAST, dir, "lora");
    rc |= stories_case(sm, &topk, BTRM_POOL_MEAN, dir, "topk");
    ok(rc == 0, "stories260K: one SGD step, then a forward and backward of LoRA r=4 on every "
       "target of the top 3 of 5 blocks (last) and of top_k 2 (mean), 4 sequences of 1 to 150 "
       "tokens");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/llama_train_ref.py %s %s lora topk",
             srcdir ? srcdir : ".", path, dir);
    FILE *p = popen(cmd, "r");
    /* the oracle prints: CASE loss REL | CASE pooled REL | CASE KIND REL (worst tensor) */
    double worst[2][6];
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 6; k++)
            worst[c][k] = -1;
    static const char *const keys[6] = { "loss", "pooled", "lora_a", "lora_b", "weight", "norm" };
    char line[512];
    while (p && fgets(line, sizeof line, p)) {
        char cs[32], key[32];
        double rel;
        if (sscanf(line, "%31s %31s %lf", cs, key, &rel) != 3) {
            diag("oracle: %s", line);
            continue;
        }
        int c = !strcmp(cs, "topk");
        for (int k = 0; k < 6; k++)
            if (!strcmp(key, keys[k]))
                worst[c][k] = fmax(worst[c][k], rel);
    }
    int prc = p ? pclose(p) : -1;
    ok(prc == 0, "the float64 oracle ran (tests/llama_train_ref.py)");
    /* measured: loss 4e-7, pooled 4e-7, gradients <= 4.3e-6 */
    ok(worst[0][0] >= 0 && worst[0][0] <= 1e-5 && worst[1][0] >= 0 && worst[1][0] <= 1e-5,
       "loss = the oracle's (relative error %.2g LoRA, %.2g top_k; <= 1e-5)", worst[0][0],
       worst[1][0]);
    ok(worst[0][1] >= 0 && worst[0][1] <= 1e-5 && worst[1][1] >= 0 && worst[1][1] <= 1e-5,
       "pooled states = the oracle's (%.2g, %.2g; <= 1e-5)", worst[0][1], worst[1][1]);
    ok(worst[0][2] >= 0 && worst[0][2] <= 1e-4 && worst[0][3] >= 0 && worst[0][3] <= 1e-4,
       "every LoRA A and B gradient (7 targets x 3 blocks) = the oracle's (worst tensor: A "
       "%.2g, B %.2g of its max |g|; <= 1e-4)", worst[0][2], worst[0][3]);
    ok(worst[1][4] >= 0 && worst[1][4] <= 1e-4 && worst[1][5] >= 0 && worst[1][5] <= 1e-4,
       "every top_k weight and norm gradient = the oracle's (weights %.2g, norms %.2g; "
       "<= 1e-4)", worst[1][4], worst[1][5]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd))
        diag("could not remove %s", dir);
    btrm_llama_model_close(sm);
}

int main(void)
{
    btrm_rng_seed(&rng, 1234, 0);
    test_layout();
    test_flops();
    test_errors();
    test_bitwise();
    test_recompute_accumulate();
    test_quantized();
    test_fd();
    test_stories();
    return done_testing();
}
