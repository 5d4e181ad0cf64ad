/* test-llama.c: the Llama forward pass (llama.h, math layer) against an
 * independent reference written here: llama2.c's formulation, one token at
 * a time with a key/value cache, in double precision, on a small random
 * model with grouped-query attention, partial rotary embedding (rope_dim <
 * head_dim) and a non-default rope base. Also: batches of sequences (one of
 * them longer than an attention block) agree with the sequences alone; Q8_0
 * weights give bitwise the float32 result of their dequantised values,
 * across several dequantisation blocks; the classifier; every IEEE half
 * converts exactly; the shape checks and input errors. */
#include "dtype.h"
#include "error.h"
#include "gemm.h"
#include "llama.h"
#include "qgemm.h"
#include "quant.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* A random model */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static float uniform(void) /* in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *random_floats(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = scale * uniform();
    return p;
}

typedef struct model {
    btrm_llama_hparams hp;
    btrm_llama_weights w;
    btrm_llama_layer layers[2];
    void *owned[64];
    int n_owned;
} model;

static btrm_llama_matrix matrix(model *m, int rows, int cols)
{
    float *p = random_floats((size_t)rows * cols, 1.0f / sqrtf((float)cols));
    m->owned[m->n_owned++] = p;
    return (btrm_llama_matrix){ p, BTRM_Q_F32, rows, cols };
}

static const float *norm_weight(model *m, int n)
{
    float *p = random_floats((size_t)n, 0.3f);
    for (int i = 0; i < n; i++)
        p[i] += 1.0f;
    m->owned[m->n_owned++] = p;
    return p;
}

static void make_model(model *m, int vocab)
{
    memset(m, 0, sizeof *m);
    m->hp = (btrm_llama_hparams){ .dim = 32, .hidden_dim = 48, .n_layers = 2, .n_heads = 4,
                                  .n_kv_heads = 2, .head_dim = 8, .rope_dim = 4,
                                  .vocab_size = vocab, .context = 256, .norm_eps = 1e-6f,
                                  .rope_theta = 500.0f };
    const btrm_llama_hparams *hp = &m->hp;
    int q = hp->n_heads * hp->head_dim, kv = hp->n_kv_heads * hp->head_dim;
    m->w.token_embd = matrix(m, vocab, hp->dim);
    for (int l = 0; l < hp->n_layers; l++) {
        btrm_llama_layer *L = &m->layers[l];
        L->attn_norm = norm_weight(m, hp->dim);
        L->ffn_norm = norm_weight(m, hp->dim);
        L->wq = matrix(m, q, hp->dim);
        L->wk = matrix(m, kv, hp->dim);
        L->wv = matrix(m, kv, hp->dim);
        L->wo = matrix(m, hp->dim, q);
        L->w1 = matrix(m, hp->hidden_dim, hp->dim);
        L->w2 = matrix(m, hp->dim, hp->hidden_dim);
        L->w3 = matrix(m, hp->hidden_dim, hp->dim);
    }
    m->w.layers = m->layers;
    m->w.output_norm = norm_weight(m, hp->dim);
    m->w.output = matrix(m, vocab, hp->dim); /* untied */
}

static void free_model(model *m)
{
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
}

/* Q8_0 of a float32 matrix (ggml's reference quantizer), and the float32
 * matrix of its dequantised values. */
static uint16_t half_bits(float f) /* round to nearest even, normal range */
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int exp = (int)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (f == 0.0f || exp <= 0)
        return (uint16_t)sign; /* (no subnormal scales in these tests) */
    uint32_t h = ((uint32_t)exp << 10) | (man >> 13), rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

static void quantize(model *m, btrm_llama_matrix *mat, btrm_llama_matrix *deq)
{
    int rows = mat->rows, cols = mat->cols;
    const float *x = mat->data;
    unsigned char *q = malloc((size_t)rows * (cols / 32) * 34);
    float *d = malloc((size_t)rows * cols * sizeof *d);
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < cols / 32; b++) {
            const float *xb = x + (size_t)r * cols + 32 * b;
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
            float scale = amax / 127.0f, inv = scale ? 1.0f / scale : 0.0f;
            unsigned char *blk = q + ((size_t)r * (cols / 32) + b) * 34;
            uint16_t h = half_bits(scale);
            memcpy(blk, &h, 2);
            float ds = btrm_half_to_float(h);
            for (int i = 0; i < 32; i++) {
                signed char qi = (signed char)roundf(xb[i] * inv);
                blk[2 + i] = (unsigned char)qi;
                d[(size_t)r * cols + 32 * b + i] = ds * (float)qi;
            }
        }
    m->owned[m->n_owned++] = q;
    m->owned[m->n_owned++] = d;
    *mat = (btrm_llama_matrix){ q, BTRM_Q_Q8_0, rows, cols };
    *deq = (btrm_llama_matrix){ d, BTRM_Q_F32, rows, cols };
}

/* ------------------------------------------------------------------------ */
/* The reference: token by token, key/value cache, double */

static void ref_matvec(const btrm_llama_matrix *W, const double *x, double *y)
{
    float *row = malloc((size_t)W->cols * sizeof *row);
    for (int r = 0; r < W->rows; r++) {
        btrm_llama_dequant_row(W, r, row);
        double acc = 0;
        for (int c = 0; c < W->cols; c++)
            acc += (double)row[c] * x[c];
        y[r] = acc;
    }
    free(row);
}

static void ref_rmsnorm(double *out, const double *x, const float *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * s * w[i];
}

static void ref_rope(double *v, int n_heads, int hd, int rope_dim, double theta, int pos)
{
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < rope_dim / 2; j++) {
            double a = pos * pow(theta, -2.0 * j / rope_dim);
            double *p = v + h * hd + 2 * j, v0 = p[0], v1 = p[1];
            p[0] = v0 * cos(a) - v1 * sin(a);
            p[1] = v0 * sin(a) + v1 * cos(a);
        }
}

/* last[dim], mean[dim] of one sequence */
static void reference(const model *m, const int32_t *ids, int T, double *last, double *mean)
{
    const btrm_llama_hparams *hp = &m->hp;
    int D = hp->dim, hd = hp->head_dim, q_dim = hp->n_heads * hd, kv = hp->n_kv_heads * hd;
    int H = hp->hidden_dim, L = hp->n_layers;
    double *x = calloc(D, sizeof *x), *xb = calloc(D, sizeof *xb), *q = calloc(q_dim, sizeof *q);
    double *att = calloc(q_dim, sizeof *att), *o = calloc(D, sizeof *o);
    double *h1 = calloc(H, sizeof *h1), *h3 = calloc(H, sizeof *h3);
    double *kc = calloc((size_t)L * T * kv, sizeof *kc), *vc = calloc((size_t)L * T * kv, sizeof *vc);
    double *sc = calloc(T, sizeof *sc), *fin = calloc(D, sizeof *fin);
    float *row = calloc(D, sizeof *row);
    for (int i = 0; i < D; i++)
        mean[i] = 0;
    for (int pos = 0; pos < T; pos++) {
        btrm_llama_dequant_row(&m->w.token_embd, ids[pos], row);
        for (int i = 0; i < D; i++)
            x[i] = row[i];
        for (int l = 0; l < L; l++) {
            const btrm_llama_layer *Lw = &m->w.layers[l];
            double *k = kc + ((size_t)l * T + pos) * kv, *v = vc + ((size_t)l * T + pos) * kv;
            ref_rmsnorm(xb, x, Lw->attn_norm, D, hp->norm_eps);
            ref_matvec(&Lw->wq, xb, q);
            ref_matvec(&Lw->wk, xb, k);
            ref_matvec(&Lw->wv, xb, v);
            ref_rope(q, hp->n_heads, hd, hp->rope_dim, hp->rope_theta, pos);
            ref_rope(k, hp->n_kv_heads, hd, hp->rope_dim, hp->rope_theta, pos);
            for (int h = 0; h < hp->n_heads; h++) {
                int g = h / (hp->n_heads / hp->n_kv_heads);
                double mx = -INFINITY, sum = 0;
                for (int t = 0; t <= pos; t++) {
                    const double *kt = kc + ((size_t)l * T + t) * kv + g * hd;
                    double s = 0;
                    for (int i = 0; i < hd; i++)
                        s += q[h * hd + i] * kt[i];
                    sc[t] = s / sqrt((double)hd);
                    mx = sc[t] > mx ? sc[t] : mx;
                }
                for (int t = 0; t <= pos; t++)
                    sum += (sc[t] = exp(sc[t] - mx));
                for (int i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int t = 0; t <= pos; t++)
                        acc += sc[t] / sum * vc[((size_t)l * T + t) * kv + g * hd + i];
                    att[h * hd + i] = acc;
                }
            }
            ref_matvec(&Lw->wo, att, o);
            for (int i = 0; i < D; i++)
                x[i] += o[i];
            ref_rmsnorm(xb, x, Lw->ffn_norm, D, hp->norm_eps);
            ref_matvec(&Lw->w1, xb, h1);
            ref_matvec(&Lw->w3, xb, h3);
            for (int i = 0; i < H; i++)
                h1[i] = h1[i] / (1 + exp(-h1[i])) * h3[i];
            ref_matvec(&Lw->w2, h1, o);
            for (int i = 0; i < D; i++)
                x[i] += o[i];
        }
        ref_rmsnorm(fin, x, m->w.output_norm, D, hp->norm_eps);
        for (int i = 0; i < D; i++)
            mean[i] += fin[i] / T;
    }
    for (int i = 0; i < D; i++)
        last[i] = fin[i];
    free(x), free(xb), free(q), free(att), free(o), free(h1), free(h3), free(kc), free(vc);
    free(sc), free(fin), free(row);
}

static double rel_err(const float *got, const double *want, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num = fmax(num, fabs(got[i] - want[i]));
        den = fmax(den, fabs(want[i]));
    }
    return num / den;
}

static double rel_err_f(const float *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

/* ------------------------------------------------------------------------ */

#define N_SEQS 3
static const int lens[N_SEQS] = { 150, 1, 37 };

static int32_t *make_ids(int vocab, int *total)
{
    int n = 0;
    for (int s = 0; s < N_SEQS; s++)
        n += lens[s];
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((uniform() + 1.0f) * 0.5f * (float)vocab) % vocab;
    *total = n;
    return ids;
}

static void test_forward(void)
{
    model m;
    make_model(&m, 40);
    is_int(btrm_llama_check(&m.hp, &m.w), 0, "the random model passes btrm_llama_check");
    int total = 0;
    int32_t *ids = make_ids(40, &total);
    btrm_llama_ws ws;
    int rc = btrm_llama_ws_init(&ws, &m.hp, &m.w, 256, 160, BTRM_KERNEL_AUTO);
    is_int(rc, 0, "work buffers for 256 tokens, sequences up to 160");
    int D = m.hp.dim;
    float *last = calloc((size_t)N_SEQS * D, sizeof *last), *mean = calloc((size_t)N_SEQS * D, sizeof *mean);
    float *one_last = calloc(D, sizeof *one_last), *one_mean = calloc(D, sizeof *one_mean);
    double *rl = calloc(D, sizeof *rl), *rm = calloc(D, sizeof *rm);
    rc = btrm_llama_forward(&m.hp, &m.w, &ws, ids, lens, N_SEQS, last, mean);
    is_int(rc, 0, "one forward over a batch of 3 sequences (150, 1, 37 tokens)");
    ok(ws.flops == btrm_llama_flops(&m.hp, lens, N_SEQS), "the work buffers count its flops");
    double worst = 0, worst_batch = 0;
    for (int s = 0, off = 0; s < N_SEQS; off += lens[s], s++) {
        reference(&m, ids + off, lens[s], rl, rm);
        worst = fmax(worst, rel_err(last + s * D, rl, D));
        worst = fmax(worst, rel_err(mean + s * D, rm, D));
        btrm_llama_forward(&m.hp, &m.w, &ws, ids + off, &lens[s], 1, one_last, one_mean);
        worst_batch = fmax(worst_batch, rel_err_f(one_last, last + s * D, D));
        worst_batch = fmax(worst_batch, rel_err_f(one_mean, mean + s * D, D));
    }
    ok(worst <= 1e-5, "last and mean agree with the token-by-token double reference "
       "(relative error %.3g <= 1e-5)", worst);
    ok(worst_batch <= 1e-6, "each sequence alone gives its batched result (difference %.3g "
       "<= 1e-6)", worst_batch);
    /* one token: 2 layers x (2*32*(2*32 + 2*16) + 6*32*48 linear, 4*8*4*1 attention) */
    int one = 1;
    is_double_rel(btrm_llama_flops(&m.hp, &one, 1), 30976.0, 0.0, "flops of one token by hand");

    /* logits of the last hidden state of sequence 0 against a double dot */
    float *logits = malloc((size_t)m.hp.vocab_size * sizeof *logits);
    btrm_llama_logits(&m.hp, &m.w, &ws, last, 1, logits);
    double *want = calloc((size_t)m.hp.vocab_size, sizeof *want);
    float row[64];
    for (int v = 0; v < m.hp.vocab_size; v++) {
        btrm_llama_dequant_row(&m.w.output, v, row);
        for (int i = 0; i < D; i++)
            want[v] += (double)row[i] * last[i];
    }
    double lw = rel_err(logits, want, m.hp.vocab_size);
    ok(lw <= 1e-6, "logits = h . Wout^T (relative error %.3g)", lw);
    free(want);

    /* errors */
    int32_t bad[2] = { 1, 40 };
    int two = 2;
    is_int(btrm_llama_forward(&m.hp, &m.w, &ws, bad, &two, 1, one_last, NULL), BTRM_EDATA,
           "a token id outside the vocabulary");
    like(btrm_error_msg(), "sequence 0, position 1: token id 40 outside the vocabulary [0, 40)",
         "... names the sequence and position");
    int too_long = 161;
    is_int(btrm_llama_forward(&m.hp, &m.w, &ws, ids, &too_long, 1, one_last, NULL), BTRM_EDATA,
           "a sequence longer than the work buffers allow");
    btrm_llama_matrix keep = m.layers[1].wk;
    m.layers[1].wk.rows = 8;
    is_int(btrm_llama_check(&m.hp, &m.w), BTRM_EDATA, "a wrongly shaped weight is refused");
    like(btrm_error_msg(), "layer 1 attention k: shape [8, 32], want [16, 32]", "... naming it");
    m.layers[1].wk = keep;
    m.hp.n_kv_heads = 3;
    is_int(btrm_llama_check(&m.hp, &m.w), BTRM_EDATA, "4 heads over 3 kv heads is refused");
    m.hp.n_kv_heads = 2;

    free(logits);
    free(last), free(mean), free(one_last), free(one_mean), free(rl), free(rm), free(ids);
    btrm_llama_ws_free(&ws);
    free_model(&m);
}

/* Q8_0 almost everywhere (embedding and classifier with 30000 rows,
 * dequantised in blocks of 7000) against the float32 model of the same
 * values. */
static void test_q8(void)
{
    model m, d;
    make_model(&m, 30000);
    d = m;
    d.w.layers = d.layers;
    /* m owns the float32 originals and both quantised and dequantised copies */
    quantize(&m, &m.w.token_embd, &d.w.token_embd);
    quantize(&m, &m.w.output, &d.w.output);
    for (int l = 0; l < 2; l++) {
        btrm_llama_layer *a = &m.layers[l], *b = &d.layers[l];
        quantize(&m, &a->wq, &b->wq);
        quantize(&m, &a->wk, &b->wk);
        quantize(&m, &a->wv, &b->wv);
        quantize(&m, &a->w1, &b->w1);
        quantize(&m, &a->w3, &b->w3);
        /* wo [32, 32] and w2 [32, 48]: w2 stays F32 (48 % 32 != 0), mixed types */
        quantize(&m, &a->wo, &b->wo);
    }
    is_int(btrm_llama_check(&m.hp, &m.w), 0, "the Q8_0 model passes the checks");
    int total = 0;
    int32_t *ids = make_ids(30000, &total);
    btrm_llama_ws wq, wd;
    btrm_llama_ws_init(&wq, &m.hp, &m.w, 256, 160, BTRM_KERNEL_AUTO);
    btrm_llama_ws_init(&wd, &d.hp, &d.w, 256, 160, BTRM_KERNEL_AUTO);
    ok(wq.wbuf && !wd.wbuf, "a dequantisation buffer for the Q8_0 model only");
    wq.wbuf_rows = 7000; /* several blocks, the last one partial */
    int D = m.hp.dim;
    float *a = calloc((size_t)N_SEQS * D, sizeof *a), *b = calloc((size_t)N_SEQS * D, sizeof *b);
    float *la = malloc(30000 * sizeof *la), *lb = malloc(30000 * sizeof *lb);
    int rc = btrm_llama_forward(&m.hp, &m.w, &wq, ids, lens, N_SEQS, a, NULL);
    rc |= btrm_llama_forward(&d.hp, &d.w, &wd, ids, lens, N_SEQS, b, NULL);
    ok(!rc && !memcmp(a, b, (size_t)N_SEQS * D * sizeof *a),
       "Q8_0 forward = the float32 forward of the dequantised weights, bitwise");
    btrm_llama_logits(&m.hp, &m.w, &wq, a, 1, la);
    btrm_llama_logits(&d.hp, &d.w, &wd, b, 1, lb);
    ok(!memcmp(la, lb, 30000 * sizeof *la), "Q8_0 classifier (30000 rows in blocks of 7000) "
       "bitwise, too");
    free(a), free(b), free(la), free(lb), free(ids);
    btrm_llama_ws_free(&wq);
    btrm_llama_ws_free(&wd);
    free_model(&m);
}

/* max |x - y| over max |y| */
static double max_rel_diff(const float *x, const float *y, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)x[i] - y[i]));
        m = fmax(m, fabs((double)y[i]));
    }
    return m > 0 ? d / m : d;
}

/* embed.precision bf16 (btrm_llama_ws_set_precision): the bf16 copy of a
 * matrix, as btrm_llama_model_to_bf16 makes it */
static void to_bf16(model *m, btrm_llama_matrix *mat)
{
    uint16_t *b = malloc((size_t)mat->rows * mat->cols * sizeof *b);
    float *row = malloc((size_t)mat->cols * sizeof *row);
    for (int r = 0; r < mat->rows; r++) {
        btrm_llama_dequant_row(mat, r, row);
        btrm_dtype_from_f32(b + (size_t)r * mat->cols, BTRM_DTYPE_BF16, row, (size_t)mat->cols);
    }
    free(row);
    m->owned[m->n_owned++] = b;
    *mat = (btrm_llama_matrix){ b, BTRM_Q_BF16, mat->rows, mat->cols };
}

static void block_to_bf16(model *m, btrm_llama_layer *L)
{
    btrm_llama_matrix *mats[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3 };
    for (int i = 0; i < 7; i++)
        to_bf16(m, mats[i]);
}

/* bf16 forward of the small model: against the double reference (the bf16
 * rounding error, bounded, and really there); F32 weights dequantised into
 * bf16 row blocks as used give the bits of bf16 copies made up front; Q8_0
 * weights likewise. Then a dim-4096 model (32 heads of 128, 4 kv heads):
 * bf16 against float32, relative error per row bounded. */
static void test_bf16(void)
{
    if (btrm_gemm_supports(BTRM_PREC_BF16)) {
        skip(6, "bf16 GEMMs need oneDNN, which this build lacks");
        return;
    }
    model m, b;
    make_model(&m, 40);
    b = m;
    b.w.layers = b.layers;
    b.n_owned = 0;
    for (int l = 0; l < 2; l++)
        block_to_bf16(&b, &b.layers[l]);
    int total = 0;
    int32_t *ids = make_ids(40, &total);
    btrm_llama_ws wf, wb;
    int rc = btrm_llama_ws_init(&wf, &m.hp, &m.w, 256, 160, BTRM_KERNEL_AUTO);
    rc |= btrm_llama_ws_set_precision(&wf, &m.hp, &m.w, BTRM_PREC_BF16);
    rc |= btrm_llama_ws_init(&wb, &b.hp, &b.w, 256, 160, BTRM_KERNEL_AUTO);
    rc |= btrm_llama_ws_set_precision(&wb, &b.hp, &b.w, BTRM_PREC_BF16);
    wf.wbuf_rows = 20; /* several row blocks of the 32- and 48-row matrices */
    int D = m.hp.dim;
    float *x = calloc((size_t)N_SEQS * D, sizeof *x), *y = calloc((size_t)N_SEQS * D, sizeof *y);
    rc |= btrm_llama_forward(&m.hp, &m.w, &wf, ids, lens, N_SEQS, x, NULL);
    rc |= btrm_llama_forward(&b.hp, &b.w, &wb, ids, lens, N_SEQS, y, NULL);
    /* bitwise through oneDNN's bf16 matmul; through the emulated route (fp32
     * sgemm of the rounded inputs, CPUs below AVX-512) the products per block
     * of rows and for all rows at once differ in summation order only */
    const int native = strncmp(btrm_gemm_bf16_route(), "oneDNN", 6) == 0;
    double blocks_diff = max_rel_diff(x, y, (size_t)N_SEQS * D);
    ok(!rc && (native ? !memcmp(x, y, (size_t)N_SEQS * D * sizeof *x) : blocks_diff <= 1e-6),
       "bf16: F32 weights rounded in row blocks as used = bf16 copies made up front, %s "
       "(%s; max difference %.2e of the largest value)", native ? "bitwise" : "<= 1e-6",
       btrm_gemm_bf16_route(), blocks_diff);
    double worst = 0, *rl = calloc(D, sizeof *rl), *rm = calloc(D, sizeof *rm);
    for (int s = 0, off = 0; s < N_SEQS; off += lens[s], s++) {
        reference(&m, ids + off, lens[s], rl, rm);
        worst = fmax(worst, rel_err(y + (size_t)s * D, rl, D));
    }
    ok(worst > 1e-4 && worst < 3e-2, "bf16 forward vs the double reference: relative error "
       "%.2e, in (1e-4, 3e-2) (bf16 inputs, float32 accumulation)", worst);

    /* Q8_0 in bf16: dequantised into bf16 row blocks = bf16 copies of its values */
    model q, qb;
    make_model(&q, 40);
    qb = q;
    qb.w.layers = qb.layers;
    qb.n_owned = 0;
    for (int l = 0; l < 2; l++) {
        btrm_llama_layer *L = &q.layers[l], *Lb = &qb.layers[l];
        btrm_llama_matrix deq;
        quantize(&q, &L->wq, &deq);
        Lb->wq = L->wq; /* the Q8_0 data, then its bf16 copy */
        to_bf16(&qb, &Lb->wq);
    }
    btrm_llama_ws wq, wqb;
    rc = btrm_llama_ws_init(&wq, &q.hp, &q.w, 256, 160, BTRM_KERNEL_AUTO);
    rc |= btrm_llama_ws_set_precision(&wq, &q.hp, &q.w, BTRM_PREC_BF16);
    rc |= btrm_llama_ws_init(&wqb, &qb.hp, &qb.w, 256, 160, BTRM_KERNEL_AUTO);
    rc |= btrm_llama_ws_set_precision(&wqb, &qb.hp, &qb.w, BTRM_PREC_BF16);
    wq.wbuf_rows = 13;
    rc |= btrm_llama_forward(&q.hp, &q.w, &wq, ids, lens, N_SEQS, x, NULL);
    rc |= btrm_llama_forward(&qb.hp, &qb.w, &wqb, ids, lens, N_SEQS, y, NULL);
    blocks_diff = max_rel_diff(x, y, (size_t)N_SEQS * D);
    ok(!rc && (native ? !memcmp(x, y, (size_t)N_SEQS * D * sizeof *x) : blocks_diff <= 1e-6),
       "bf16: Q8_0 weights dequantised into bf16 row blocks = their bf16 copies, %s (max "
       "difference %.2e)", native ? "bitwise" : "<= 1e-6", blocks_diff);
    btrm_llama_ws_free(&wq), btrm_llama_ws_free(&wqb), btrm_llama_ws_free(&wf);
    btrm_llama_ws_free(&wb);
    free_model(&qb), free_model(&q), free_model(&b), free_model(&m);
    free(x), free(y), free(rl), free(rm), free(ids);

    /* dim 4096: one layer, 32 heads of 128, 4 kv heads, ffn 1024, vocab 64 */
    model big;
    memset(&big, 0, sizeof big);
    big.hp = (btrm_llama_hparams){ .dim = 4096, .hidden_dim = 1024, .n_layers = 1,
                                   .n_heads = 32, .n_kv_heads = 4, .head_dim = 128,
                                   .rope_dim = 128, .vocab_size = 64, .context = 64,
                                   .norm_eps = 1e-5f, .rope_theta = 10000.0f };
    const btrm_llama_hparams *hp = &big.hp;
    big.w.token_embd = matrix(&big, hp->vocab_size, hp->dim);
    btrm_llama_layer *L = &big.layers[0];
    L->attn_norm = norm_weight(&big, hp->dim);
    L->ffn_norm = norm_weight(&big, hp->dim);
    L->wq = matrix(&big, 4096, 4096);
    L->wk = matrix(&big, 512, 4096);
    L->wv = matrix(&big, 512, 4096);
    L->wo = matrix(&big, 4096, 4096);
    L->w1 = matrix(&big, 1024, 4096);
    L->w2 = matrix(&big, 4096, 1024);
    L->w3 = matrix(&big, 1024, 4096);
    big.w.layers = big.layers;
    big.w.output_norm = norm_weight(&big, hp->dim);
    big.w.output = big.w.token_embd;
    const int seq_lens[2] = { 24, 9 };
    int32_t big_ids[33];
    for (int i = 0; i < 33; i++)
        big_ids[i] = (int32_t)(i * 7 % hp->vocab_size);
    float *f32 = calloc(2 * 4096, sizeof *f32), *b16 = calloc(2 * 4096, sizeof *b16);
    btrm_llama_ws w32, w16;
    rc = btrm_llama_ws_init(&w32, hp, &big.w, 64, 64, BTRM_KERNEL_AUTO);
    rc |= btrm_llama_forward(hp, &big.w, &w32, big_ids, seq_lens, 2, f32, NULL);
    block_to_bf16(&big, L);
    rc |= btrm_llama_ws_init(&w16, hp, &big.w, 64, 64, BTRM_KERNEL_AUTO);
    rc |= btrm_llama_ws_set_precision(&w16, hp, &big.w, BTRM_PREC_BF16);
    btrm_gemm_stats_reset();
    rc |= btrm_llama_forward(hp, &big.w, &w16, big_ids, seq_lens, 2, b16, NULL);
    btrm_gemm_stat st[BTRM_GEMM_MAX_SHAPES];
    int n_st = btrm_gemm_stats(st, BTRM_GEMM_MAX_SHAPES), q_bf16 = 0, attn_fp32 = 0;
    for (int i = 0; i < n_st; i++) {
        q_bf16 |= st[i].precision == BTRM_PREC_BF16 && st[i].m == 33 && st[i].n == 4096 &&
                  st[i].k == 4096 && st[i].calls == 2; /* q and o */
        attn_fp32 |= st[i].precision == BTRM_PREC_FP32 && st[i].k == 128; /* q.k^T */
    }
    double row_err[2];
    for (int s = 0; s < 2; s++) {
        double num = 0, den = 0;
        for (int i = 0; i < 4096; i++) {
            double e = (double)b16[s * 4096 + i] - f32[s * 4096 + i];
            num += e * e;
            den += (double)f32[s * 4096 + i] * f32[s * 4096 + i];
        }
        row_err[s] = sqrt(num / den);
    }
    diag("dim 4096, bf16 vs fp32: relative error per row %.2e, %.2e", row_err[0], row_err[1]);
    ok(!rc, "dim 4096: float32 and bf16 forwards run");
    ok(row_err[0] > 1e-4 && row_err[0] < 1e-2 && row_err[1] > 1e-4 && row_err[1] < 1e-2,
       "dim 4096: bf16 against float32, relative L2 error per row %.2e and %.2e in (1e-4, 1e-2)",
       row_err[0], row_err[1]);
    ok(q_bf16 && attn_fp32 && btrm_llama_check(hp, &big.w) == 0,
       "dim 4096: the q and o products (33 x 4096 x 4096) ran in bf16, attention in fp32");
    btrm_llama_ws_free(&w32), btrm_llama_ws_free(&w16);
    free(f32), free(b16);
    free_model(&big);
}

static double half_ref(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    double v = exp == 0 ? ldexp(man, -24) : exp == 31 ? (man ? NAN : INFINITY)
                                                      : ldexp(1024 + man, exp - 25);
    return sign ? -v : v;
}

static void test_half(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = btrm_half_to_float((uint16_t)h);
        double want = half_ref((uint16_t)h);
        if (isnan(want) ? !isnan(got) : (got != want || !signbit(got) != !signbit(want)))
            bad++;
    }
    is_int(bad, 0, "all 65536 IEEE halves convert exactly (subnormals, +-0, Inf, NaN)");
    ok(btrm_bf16_to_float(0x3f80) == 1.0f && btrm_bf16_to_float(0xc2f7) == -123.5f,
       "bfloat16 1 and -123.5");
    ok(btrm_llama_row_bytes(BTRM_Q_Q8_0, 64) == 68 && btrm_llama_row_bytes(BTRM_Q_Q8_0, 48) == 0 &&
       btrm_llama_row_bytes(BTRM_Q_F16, 3) == 6 && btrm_llama_row_bytes(20, 32) == 0 &&
       btrm_llama_row_bytes(BTRM_Q_Q4_K, 512) == 288 && btrm_llama_row_bytes(BTRM_Q_Q4_K, 384) == 0,
       "row sizes: Q8_0 68 bytes per 64, Q4_K 288 per 512; ragged rows and IQ4_NL unsupported");
}

int main(void)
{
    plan(14 + 4 + 3 + 6);
    test_forward();
    test_q8();
    test_bf16();
    test_half();
    return done_testing();
}
