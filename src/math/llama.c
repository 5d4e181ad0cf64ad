/* llama.c: the Llama forward pass (equations in llama.h). Every linear layer
 * is one sgemm over all the tokens of a batch; only RMSNorm, RoPE, softmax
 * and SwiGLU's gate are loops, each one pass over its rows. */
#include "llama.h"

#include "error.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Query rows per attention block: scores [ATT_ROWS, keys] per sgemm, and the
 * causal mask lets a block skip every key after its last query. */
#define ATT_ROWS 128
/* Dequantised weight rows per sgemm: up to 64 MiB of float32 (never more
 * than the largest matrix). Each sgemm call packs the activations [N, in]
 * again, a memory-bound copy of N*in floats for 2*N*in*rows flops: with
 * 4 MiB blocks (73 rows of a 14336-wide matrix) Q8_0 prefill took 23% longer
 * than float32 at dim 4096, with 64 MiB blocks (1170 rows) no longer
 * (bench/llama-results.md). */
#define WBUF_FLOATS (1 << 24)

float btrm_llama_f16_to_f32(uint16_t h)
{
    /* Exact, branch-light (after Maratos' FP16 library, as ggml does):
     * normals by rescaling the shifted bits, subnormals through a magic
     * bias, Inf/NaN by the exponent offset. */
    uint32_t w = (uint32_t)h << 16;
    uint32_t sign = w & UINT32_C(0x80000000);
    uint32_t two_w = w + w;
    uint32_t bits = (two_w >> 4) + (UINT32_C(0xE0) << 23);
    float normalized, denormalized;
    memcpy(&normalized, &bits, 4);
    normalized *= 0x1.0p-112f;
    bits = (two_w >> 17) | (UINT32_C(126) << 23);
    memcpy(&denormalized, &bits, 4);
    denormalized -= 0.5f;
    uint32_t nb, db;
    memcpy(&nb, &normalized, 4);
    memcpy(&db, &denormalized, 4);
    uint32_t out = sign | (two_w < (UINT32_C(1) << 27) ? db : nb);
    float f;
    memcpy(&f, &out, 4);
    return f;
}

float btrm_llama_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

size_t btrm_llama_row_bytes(int type, int cols)
{
    switch (type) {
    case BTRM_WT_F32: return 4 * (size_t)cols;
    case BTRM_WT_F16: case BTRM_WT_BF16: return 2 * (size_t)cols;
    case BTRM_WT_Q8_0: return cols % 32 ? 0 : (size_t)cols / 32 * 34;
    default: return 0;
    }
}

void btrm_llama_dequant_row(const btrm_llama_matrix *m, int r, float *out)
{
    const unsigned char *row =
        (const unsigned char *)m->data + (size_t)r * btrm_llama_row_bytes(m->type, m->cols);
    int n = m->cols;
    switch (m->type) {
    case BTRM_WT_F32:
        memcpy(out, row, (size_t)n * sizeof *out);
        break;
    case BTRM_WT_F16:
        for (int i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, row + 2 * (size_t)i, 2);
            out[i] = btrm_llama_f16_to_f32(h);
        }
        break;
    case BTRM_WT_BF16:
        for (int i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, row + 2 * (size_t)i, 2);
            out[i] = btrm_llama_bf16_to_f32(h);
        }
        break;
    case BTRM_WT_Q8_0:
        for (int b = 0; b < n / 32; b++) {
            const unsigned char *blk = row + 34 * (size_t)b;
            uint16_t dh;
            memcpy(&dh, blk, 2);
            float d = btrm_llama_f16_to_f32(dh);
            const signed char *q = (const signed char *)(blk + 2);
            float *o = out + 32 * b;
            for (int i = 0; i < 32; i++)
                o[i] = d * (float)q[i];
        }
        break;
    default:
        memset(out, 0, (size_t)n * sizeof *out); /* refused by btrm_llama_check */
    }
}

/* ------------------------------------------------------------------------ */

static int check_matrix(const btrm_llama_matrix *m, const char *name, int layer, int rows,
                        int cols)
{
    char where[32] = "";
    if (layer >= 0)
        snprintf(where, sizeof where, "layer %d ", layer);
    if (!m->data)
        return btrm_error_set(BTRM_EDATA, "%s%s: missing", where, name);
    if (m->rows != rows || m->cols != cols)
        return btrm_error_set(BTRM_EDATA, "%s%s: shape [%d, %d], want [%d, %d]", where, name,
                              m->rows, m->cols, rows, cols);
    if (!btrm_llama_row_bytes(m->type, cols))
        return btrm_error_set(BTRM_EDATA, "%s%s: weight type %d is not supported with %d "
                              "columns", where, name, m->type, cols);
    return 0;
}

int btrm_llama_check(const btrm_llama_hparams *hp, const btrm_llama_weights *w)
{
    if (hp->dim < 1 || hp->hidden_dim < 1 || hp->n_layers < 1 || hp->n_heads < 1 ||
        hp->n_kv_heads < 1 || hp->head_dim < 1 || hp->vocab_size < 1 || hp->context < 1)
        return btrm_error_set(BTRM_EDATA, "hyperparameters must be positive (dim %d, hidden "
                              "%d, layers %d, heads %d, kv heads %d, head dim %d, vocab %d, "
                              "context %d)", hp->dim, hp->hidden_dim, hp->n_layers,
                              hp->n_heads, hp->n_kv_heads, hp->head_dim, hp->vocab_size,
                              hp->context);
    if (hp->n_heads % hp->n_kv_heads)
        return btrm_error_set(BTRM_EDATA, "%d attention heads are not a multiple of %d "
                              "key/value heads", hp->n_heads, hp->n_kv_heads);
    if (hp->rope_dim < 0 || hp->rope_dim > hp->head_dim || hp->rope_dim % 2)
        return btrm_error_set(BTRM_EDATA, "rope dimension %d must be even and at most the "
                              "head dimension %d", hp->rope_dim, hp->head_dim);
    if (!(hp->norm_eps > 0.0f) || !(hp->rope_theta > 0.0f))
        return btrm_error_set(BTRM_EDATA, "RMSNorm epsilon (%g) and rope base (%g) must be "
                              "positive", (double)hp->norm_eps, (double)hp->rope_theta);
    int q_dim = hp->n_heads * hp->head_dim, kv_dim = hp->n_kv_heads * hp->head_dim;
    int rc = check_matrix(&w->token_embd, "token embedding", -1, hp->vocab_size, hp->dim);
    if (!rc)
        rc = check_matrix(&w->output, "output (classifier)", -1, hp->vocab_size, hp->dim);
    if (!rc && !w->output_norm)
        rc = btrm_error_set(BTRM_EDATA, "output norm: missing");
    for (int l = 0; !rc && l < hp->n_layers; l++) {
        const btrm_llama_layer *L = &w->layers[l];
        if (!L->attn_norm || !L->ffn_norm)
            rc = btrm_error_set(BTRM_EDATA, "layer %d: missing norm weight", l);
        if (!rc)
            rc = check_matrix(&L->wq, "attention q", l, q_dim, hp->dim);
        if (!rc)
            rc = check_matrix(&L->wk, "attention k", l, kv_dim, hp->dim);
        if (!rc)
            rc = check_matrix(&L->wv, "attention v", l, kv_dim, hp->dim);
        if (!rc)
            rc = check_matrix(&L->wo, "attention output", l, hp->dim, q_dim);
        if (!rc)
            rc = check_matrix(&L->w1, "ffn gate", l, hp->hidden_dim, hp->dim);
        if (!rc)
            rc = check_matrix(&L->w2, "ffn down", l, hp->dim, hp->hidden_dim);
        if (!rc)
            rc = check_matrix(&L->w3, "ffn up", l, hp->hidden_dim, hp->dim);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */

void btrm_llama_ws_free(btrm_llama_ws *ws)
{
    if (!ws)
        return;
    free(ws->x);
    free(ws->xb);
    free(ws->q);
    free(ws->att);
    free(ws->k);
    free(ws->v);
    free(ws->hb);
    free(ws->hb2);
    free(ws->scores);
    free(ws->wbuf);
    free(ws->rope_cos);
    free(ws->rope_sin);
    free(ws->pool);
    memset(ws, 0, sizeof *ws);
}

static int max_int(int a, int b) { return a > b ? a : b; }

/* Whether any matrix of w needs dequantising (w NULL: assume so). */
static int any_quantized(const btrm_llama_hparams *hp, const btrm_llama_weights *w)
{
    if (!w)
        return 1;
    int any = w->token_embd.type != BTRM_WT_F32 || w->output.type != BTRM_WT_F32;
    for (int l = 0; l < hp->n_layers && !any; l++) {
        const btrm_llama_layer *L = &w->layers[l];
        const btrm_llama_matrix *m[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3 };
        for (int i = 0; i < 7; i++)
            any |= m[i]->type != BTRM_WT_F32;
    }
    return any;
}

int btrm_llama_ws_init(btrm_llama_ws *ws, const btrm_llama_hparams *hp,
                       const btrm_llama_weights *w, int max_tokens, int max_seq)
{
    memset(ws, 0, sizeof *ws);
    if (max_tokens < 1 || max_seq < 1 || max_seq > max_tokens)
        return btrm_error_set(BTRM_EUSAGE, "llama work buffers: need 1 <= max_seq (%d) <= "
                              "max_tokens (%d)", max_seq, max_tokens);
    size_t n = (size_t)max_tokens;
    size_t q_dim = (size_t)hp->n_heads * (size_t)hp->head_dim;
    size_t kv_dim = (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    int max_cols = max_int(max_int(hp->dim, hp->hidden_dim), (int)q_dim);
    int max_rows = max_int(max_int(hp->dim, hp->hidden_dim), max_int((int)q_dim, hp->vocab_size));
    ws->wbuf_rows = WBUF_FLOATS / max_cols;
    if (ws->wbuf_rows < 32)
        ws->wbuf_rows = 32;
    if (ws->wbuf_rows > max_rows)
        ws->wbuf_rows = max_rows;
    if (!any_quantized(hp, w))
        ws->wbuf_rows = 0;
    ws->max_tokens = max_tokens;
    ws->max_seq = max_seq;
    ws->rope_dim = hp->rope_dim;
    ws->rope_half = hp->rope_dim / 2;
    int att_rows = max_seq < ATT_ROWS ? max_seq : ATT_ROWS;
    size_t half = (size_t)(ws->rope_half ? ws->rope_half : 1);
    int rc = 0;
    if ((rc = BTRM_MALLOC(ws->x, n * (size_t)hp->dim)) ||
        (rc = BTRM_MALLOC(ws->xb, n * (size_t)hp->dim)) ||
        (rc = BTRM_MALLOC(ws->q, n * q_dim)) || (rc = BTRM_MALLOC(ws->att, n * q_dim)) ||
        (rc = BTRM_MALLOC(ws->k, n * kv_dim)) || (rc = BTRM_MALLOC(ws->v, n * kv_dim)) ||
        (rc = BTRM_MALLOC(ws->hb, n * (size_t)hp->hidden_dim)) ||
        (rc = BTRM_MALLOC(ws->hb2, n * (size_t)hp->hidden_dim)) ||
        (rc = BTRM_MALLOC(ws->scores, (size_t)att_rows * (size_t)max_seq)) ||
        (ws->wbuf_rows &&
         (rc = BTRM_MALLOC(ws->wbuf, (size_t)ws->wbuf_rows * (size_t)max_cols))) ||
        (rc = BTRM_MALLOC(ws->rope_cos, (size_t)max_seq * half)) ||
        (rc = BTRM_MALLOC(ws->rope_sin, (size_t)max_seq * half)) ||
        (rc = BTRM_MALLOC(ws->pool, (size_t)hp->dim))) {
        btrm_llama_ws_free(ws);
        return btrm_error_wrap(rc, "llama work buffers for %d tokens", max_tokens);
    }
    /* cos/sin of pos * theta^(-2j/rope_dim), computed in double */
    for (int pos = 0; pos < max_seq; pos++)
        for (int j = 0; j < ws->rope_half; j++) {
            double freq = pow((double)hp->rope_theta, -2.0 * j / (double)hp->rope_dim);
            double angle = pos * freq;
            ws->rope_cos[(size_t)pos * half + (size_t)j] = (float)cos(angle);
            ws->rope_sin[(size_t)pos * half + (size_t)j] = (float)sin(angle);
        }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Kernels */

/* y[N, W.rows] (row stride ldy) = x[N, W.cols] . W^T + beta * y */
static void matmul(btrm_llama_ws *ws, const float *x, int N, const btrm_llama_matrix *W,
                   float *y, int ldy, float beta)
{
    if (W->type == BTRM_WT_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, W->rows, W->cols, 1.0f, x,
                    W->cols, (const float *)W->data, W->cols, beta, y, ldy);
        return;
    }
    for (int r0 = 0; r0 < W->rows; r0 += ws->wbuf_rows) {
        int nr = W->rows - r0 < ws->wbuf_rows ? W->rows - r0 : ws->wbuf_rows;
        for (int r = 0; r < nr; r++)
            btrm_llama_dequant_row(W, r0 + r, ws->wbuf + (size_t)r * (size_t)W->cols);
        /* y[:, r0:r0+nr] = x . wbuf[nr, cols]^T + beta y */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, nr, W->cols, 1.0f, x, W->cols,
                    ws->wbuf, W->cols, beta, y + r0, ldy);
    }
}

/* out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, rows of width dim */
static void rmsnorm(float *out, const float *x, const float *weight, int rows, int dim,
                    float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * (size_t)dim;
        float *o = out + (size_t)r * (size_t)dim;
        double ss = 0.0;
        for (int i = 0; i < dim; i++)
            ss += (double)xr[i] * (double)xr[i];
        float scale = (float)(1.0 / sqrt(ss / dim + (double)eps));
        for (int i = 0; i < dim; i++)
            o[i] = xr[i] * scale * weight[i];
    }
}

/* Rotates the adjacent pairs of every head of x[T, n_heads*hd] (one
 * sequence, positions 0..T-1). */
static void rope(const btrm_llama_ws *ws, float *x, int T, int n_heads, int hd)
{
    size_t half = (size_t)(ws->rope_half ? ws->rope_half : 1);
    for (int t = 0; t < T; t++) {
        const float *c = ws->rope_cos + (size_t)t * half, *s = ws->rope_sin + (size_t)t * half;
        float *row = x + (size_t)t * (size_t)n_heads * (size_t)hd;
        for (int h = 0; h < n_heads; h++) {
            float *v = row + (size_t)h * (size_t)hd;
            for (int j = 0; j < ws->rope_half; j++) {
                float v0 = v[2 * j], v1 = v[2 * j + 1];
                v[2 * j] = v0 * c[j] - v1 * s[j];
                v[2 * j + 1] = v0 * s[j] + v1 * c[j];
            }
        }
    }
}

void btrm_llama_softmax_causal(float *S, int nb, int keys, int i0)
{
    for (int r = 0; r < nb; r++) {
        float *row = S + (size_t)r * keys;
        int n_keep = i0 + r + 1;
        float mx = row[0];
        for (int j = 1; j < n_keep; j++)
            mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < n_keep; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < n_keep; j++)
            row[j] *= inv;
        for (int j = n_keep; j < keys; j++)
            row[j] = 0.0f;
    }
}

/* Causal attention of one sequence of T tokens: q [T, q_dim], k, v
 * [T, kv_dim] (rows of the batch buffers), into att [T, q_dim]. */
static void attention(btrm_llama_ws *ws, const btrm_llama_hparams *hp, const float *q,
                      const float *k, const float *v, float *att, int T)
{
    int hd = hp->head_dim, q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;
    int group = hp->n_heads / hp->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < hp->n_heads; h++) {
        int g = h / group;
        const float *qh = q + (size_t)h * hd, *kg = k + (size_t)g * hd, *vg = v + (size_t)g * hd;
        for (int i0 = 0; i0 < T; i0 += ATT_ROWS) {
            int nb = T - i0 < ATT_ROWS ? T - i0 : ATT_ROWS;
            int keys = i0 + nb; /* queries i0..i0+nb-1 see keys 0..i */
            float *S = ws->scores;
            /* S[nb, keys] = scale * q_h[i0:i0+nb] . k_g[0:keys]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, keys, hd, scale,
                        qh + (size_t)i0 * q_dim, q_dim, kg, kv_dim, 0.0f, S, keys);
            btrm_llama_softmax_causal(S, nb, keys, i0);
            /* att_h[i0:i0+nb] = S[nb, keys] . v_g[0:keys] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, hd, keys, 1.0f, S, keys,
                        vg, kv_dim, 0.0f, att + (size_t)i0 * q_dim + (size_t)h * hd, q_dim);
        }
    }
}

double btrm_llama_flops(const btrm_llama_hparams *hp, const int *lens, int n_seqs)
{
    double n = 0.0, pairs = 0.0;
    for (int s = 0; s < n_seqs; s++) {
        n += lens[s];
        pairs += 0.5 * (double)lens[s] * (double)(lens[s] + 1);
    }
    double q_dim = (double)hp->n_heads * hp->head_dim, kv_dim = (double)hp->n_kv_heads * hp->head_dim;
    double per_token = 2.0 * hp->dim * (2.0 * q_dim + 2.0 * kv_dim) +
                       2.0 * 3.0 * hp->dim * (double)hp->hidden_dim;
    double attn = 2.0 * 2.0 * hp->head_dim * hp->n_heads * pairs;
    return hp->n_layers * (n * per_token + attn);
}

int btrm_llama_batch_check(const btrm_llama_hparams *hp, const btrm_llama_ws *ws,
                           const int32_t *ids, const int *lens, int n_seqs, int *n_tokens)
{
    int N = 0;
    for (int s = 0; s < n_seqs; s++) {
        if (lens[s] < 1 || lens[s] > ws->max_seq)
            return btrm_error_set(BTRM_EDATA, "sequence %d has %d tokens (1 to %d allowed)", s,
                                  lens[s], ws->max_seq);
        if (lens[s] > ws->max_tokens - N)
            return btrm_error_set(BTRM_EDATA, "batch of %d sequences has more than %d tokens",
                                  n_seqs, ws->max_tokens);
        N += lens[s];
    }
    for (int s = 0, t = 0; s < n_seqs; s++)
        for (int p = 0; p < lens[s]; p++, t++)
            if (ids[t] < 0 || ids[t] >= hp->vocab_size)
                return btrm_error_set(BTRM_EDATA, "sequence %d, position %d: token id %d "
                                      "outside the vocabulary [0, %d)", s, p, (int)ids[t],
                                      hp->vocab_size);
    *n_tokens = N;
    return 0;
}

void btrm_llama_pool(const btrm_llama_hparams *hp, btrm_llama_ws *ws, const float *x,
                     const float *norm, const int *lens, int n_seqs, float *last, float *mean)
{
    const int dim = hp->dim;
    for (int s = 0, off = 0; s < n_seqs; off += lens[s], s++) {
        const float *xs = x + (size_t)off * dim;
        float *hs = ws->xb + (size_t)off * dim;
        if (mean) {
            rmsnorm(hs, xs, norm, lens[s], dim, hp->norm_eps);
            memset(ws->pool, 0, (size_t)dim * sizeof *ws->pool);
            for (int t = 0; t < lens[s]; t++)
                for (int i = 0; i < dim; i++)
                    ws->pool[i] += hs[(size_t)t * dim + (size_t)i];
            for (int i = 0; i < dim; i++)
                mean[(size_t)s * dim + (size_t)i] = (float)(ws->pool[i] / lens[s]);
        }
        if (last) {
            size_t t_last = (size_t)(lens[s] - 1) * (size_t)dim;
            rmsnorm(last + (size_t)s * dim, xs + t_last, norm, 1, dim, hp->norm_eps);
        }
    }
}

int btrm_llama_forward(const btrm_llama_hparams *hp, const btrm_llama_weights *w,
                       btrm_llama_ws *ws, const int32_t *ids, const int *lens, int n_seqs,
                       float *last, float *mean)
{
    int N = 0;
    int rc = btrm_llama_batch_check(hp, ws, ids, lens, n_seqs, &N);
    if (rc || N == 0)
        return rc;
    const int dim = hp->dim, hidden = hp->hidden_dim, hd = hp->head_dim;
    const int q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;

    /* x[N, dim] = token embeddings */
    for (int t = 0; t < N; t++)
        btrm_llama_dequant_row(&w->token_embd, ids[t], ws->x + (size_t)t * dim);

    for (int l = 0; l < hp->n_layers; l++) {
        const btrm_llama_layer *L = &w->layers[l];
        rmsnorm(ws->xb, ws->x, L->attn_norm, N, dim, hp->norm_eps);
        /* q[N, q_dim] = xb Wq^T; k, v [N, kv_dim] = xb Wk^T, xb Wv^T */
        matmul(ws, ws->xb, N, &L->wq, ws->q, q_dim, 0.0f);
        matmul(ws, ws->xb, N, &L->wk, ws->k, kv_dim, 0.0f);
        matmul(ws, ws->xb, N, &L->wv, ws->v, kv_dim, 0.0f);
        for (int s = 0, off = 0; s < n_seqs; off += lens[s], s++) {
            rope(ws, ws->q + (size_t)off * q_dim, lens[s], hp->n_heads, hd);
            rope(ws, ws->k + (size_t)off * kv_dim, lens[s], hp->n_kv_heads, hd);
            attention(ws, hp, ws->q + (size_t)off * q_dim, ws->k + (size_t)off * kv_dim,
                      ws->v + (size_t)off * kv_dim, ws->att + (size_t)off * q_dim, lens[s]);
        }
        /* x[N, dim] += att Wo^T */
        matmul(ws, ws->att, N, &L->wo, ws->x, dim, 1.0f);

        rmsnorm(ws->xb, ws->x, L->ffn_norm, N, dim, hp->norm_eps);
        /* hb = xb W1^T (gate), hb2 = xb W3^T (up), hb = silu(hb) * hb2 */
        matmul(ws, ws->xb, N, &L->w1, ws->hb, hidden, 0.0f);
        matmul(ws, ws->xb, N, &L->w3, ws->hb2, hidden, 0.0f);
        size_t nh = (size_t)N * (size_t)hidden;
        for (size_t i = 0; i < nh; i++) {
            float z = ws->hb[i];
            ws->hb[i] = z / (1.0f + expf(-z)) * ws->hb2[i];
        }
        /* x += hb W2^T */
        matmul(ws, ws->hb, N, &L->w2, ws->x, dim, 1.0f);
    }

    /* h = RMSNorm(x) * output_norm, pooled per sequence */
    btrm_llama_pool(hp, ws, ws->x, w->output_norm, lens, n_seqs, last, mean);
    ws->flops += btrm_llama_flops(hp, lens, n_seqs);
    return 0;
}

void btrm_llama_logits(const btrm_llama_hparams *hp, const btrm_llama_weights *w,
                       btrm_llama_ws *ws, const float *h, int rows, float *logits)
{
    /* logits[rows, vocab] = h[rows, dim] Wout^T */
    matmul(ws, h, rows, &w->output, logits, hp->vocab_size, 0.0f);
}

/* ------------------------------------------------------------------------ */
/* The kernels above, for llama_train.c's forward (the same calls, so that
 * its result is bitwise btrm_llama_forward's). */

void btrm_llama_rmsnorm(float *out, const float *x, const float *weight, int rows, int dim,
                        float eps)
{
    rmsnorm(out, x, weight, rows, dim, eps);
}

void btrm_llama_rope(const btrm_llama_ws *ws, float *x, int T, int n_heads, int hd)
{
    rope(ws, x, T, n_heads, hd);
}

void btrm_llama_attention(btrm_llama_ws *ws, const btrm_llama_hparams *hp, const float *q,
                          const float *k, const float *v, float *att, int T)
{
    attention(ws, hp, q, k, v, att, T);
}
