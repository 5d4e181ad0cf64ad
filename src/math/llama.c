/* llama.c: the decoder forward pass (equations in llama.h). Every linear
 * layer is one btrm_gemm over all the tokens of a batch (or one integer
 * product, qgemm.h); only the norms, RoPE, softmax and the FFN gate are
 * loops, each one pass over its rows. */
#include "llama.h"

#include "dtype.h"
#include "error.h"
#include "gemm.h"
#include "qgemm.h"
#include "quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Query rows per attention block: scores [ATT_ROWS, keys] per product, and
 * the causal mask lets a block skip every key after its last query. */
#define ATT_ROWS 128
/* Dequantised weight rows per product: up to 64 MiB of float32 (never more
 * than the largest matrix). Each sgemm call packs the activations [N, in]
 * again, a memory-bound copy of N*in floats for 2*N*in*rows flops: with
 * 4 MiB blocks (73 rows of a 14336-wide matrix) Q8_0 prefill took 23% longer
 * than float32 at dim 4096, with 64 MiB blocks (1170 rows) no longer
 * (bench/llama-results.md). */
#define WBUF_FLOATS (1 << 24)

size_t btrm_llama_row_bytes(int type, int cols) { return btrm_quant_row_bytes(type, cols); }

btrm_llama_matrix btrm_llama_rows(const btrm_llama_matrix *m, int first, int rows)
{
    btrm_llama_matrix v = *m;
    v.data = (const unsigned char *)m->data +
             (size_t)first * btrm_quant_row_bytes(m->type, m->cols);
    v.rows = rows;
    return v;
}

void btrm_llama_dequant_row(const btrm_llama_matrix *m, int r, float *out)
{
    const unsigned char *row =
        (const unsigned char *)m->data + (size_t)r * btrm_quant_row_bytes(m->type, m->cols);
    btrm_quant_dequant_f32(m->type, row, m->cols, out);
}

int btrm_llama_layer_is_local(const btrm_llama_hparams *hp, int l)
{
    if (hp->sliding_window <= 0)
        return 0;
    return hp->swa_period <= 0 || l % hp->swa_period < hp->swa_period - 1;
}

/* ------------------------------------------------------------------------ */

static int check_matrix(const btrm_llama_matrix *m, const char *name, int layer, int rows,
                        int cols)
{
    char where[32] = "", tn[32];
    if (layer >= 0)
        snprintf(where, sizeof where, "layer %d ", layer);
    if (!m->data)
        return btrm_error_set(BTRM_EDATA, "%s%s: missing", where, name);
    if (m->rows != rows || m->cols != cols)
        return btrm_error_set(BTRM_EDATA, "%s%s: shape [%d, %d], want [%d, %d]", where, name,
                              m->rows, m->cols, rows, cols);
    if (!btrm_quant_row_bytes(m->type, cols))
        return btrm_error_set(BTRM_EDATA, "%s%s: weight type %s is not supported with %d "
                              "columns (rows must be whole blocks of %d)", where, name,
                              btrm_quant_name(m->type, tn, sizeof tn), cols,
                              btrm_quant_block(m->type));
    return 0;
}

int btrm_llama_check_hparams(const btrm_llama_hparams *hp)
{
    if (hp->dim < 1 || hp->hidden_dim < 1 || hp->n_layers < 1 || hp->n_heads < 1 ||
        hp->n_kv_heads < 1 || hp->head_dim < 1 || hp->vocab_size < 1 || hp->context < 1)
        return btrm_error_set(BTRM_EDATA, "hyperparameters must be positive (dim %d, hidden "
                              "%d, layers %d, heads %d, kv heads %d, head dim %d, vocab %d, "
                              "context %d)", hp->dim, hp->hidden_dim, hp->n_layers,
                              hp->n_heads, hp->n_kv_heads, hp->head_dim, hp->vocab_size,
                              hp->context);
    const int lim = BTRM_LLAMA_MAX_WIDTH;
    if (hp->dim > lim || hp->hidden_dim > lim || hp->head_dim > lim ||
        hp->n_heads > lim / hp->head_dim || hp->vocab_size > (1 << 30) || hp->n_layers > 4096)
        return btrm_error_set(BTRM_EDATA, "implausible hyperparameters (dim %d, hidden %d, "
                              "layers %d, heads %d x head dim %d, vocab %d): widths are at most "
                              "%d", hp->dim, hp->hidden_dim, hp->n_layers, hp->n_heads,
                              hp->head_dim, hp->vocab_size, lim);
    if (hp->n_heads % hp->n_kv_heads)
        return btrm_error_set(BTRM_EDATA, "%d attention heads are not a multiple of %d "
                              "key/value heads", hp->n_heads, hp->n_kv_heads);
    if (hp->rope_dim < 0 || hp->rope_dim > hp->head_dim || hp->rope_dim % 2)
        return btrm_error_set(BTRM_EDATA, "rope dimension %d must be even and at most the "
                              "head dimension %d", hp->rope_dim, hp->head_dim);
    if (!(hp->norm_eps > 0.0f) || !(hp->rope_theta > 0.0f) || hp->rope_scale < 0.0f ||
        hp->rope_theta_local < 0.0f || hp->rope_scale_local < 0.0f)
        return btrm_error_set(BTRM_EDATA, "RMSNorm epsilon (%g), rope base (%g) and rope "
                              "scale (%g) must be positive", (double)hp->norm_eps,
                              (double)hp->rope_theta, (double)hp->rope_scale);
    if (hp->sliding_window < 0 || hp->swa_period < 0 || hp->attn_softcap < 0.0f ||
        hp->final_softcap < 0.0f || hp->attn_scale < 0.0f || hp->embed_scale < 0.0f)
        return btrm_error_set(BTRM_EDATA, "negative sliding window (%d), soft-cap (%g, %g) or "
                              "scale (%g, %g)", hp->sliding_window, (double)hp->attn_softcap,
                              (double)hp->final_softcap, (double)hp->attn_scale,
                              (double)hp->embed_scale);
    if (hp->ffn_act != BTRM_FFN_SILU && hp->ffn_act != BTRM_FFN_GELU_TANH)
        return btrm_error_set(BTRM_EDATA, "unknown feed-forward activation %d", hp->ffn_act);
    return 0;
}

int btrm_llama_check(const btrm_llama_hparams *hp, const btrm_llama_weights *w)
{
    int rc = btrm_llama_check_hparams(hp);
    if (rc)
        return rc;
    int q_dim = hp->n_heads * hp->head_dim, kv_dim = hp->n_kv_heads * hp->head_dim;
    rc = check_matrix(&w->token_embd, "token embedding", -1, hp->vocab_size, hp->dim);
    if (!rc)
        rc = check_matrix(&w->output, "output (classifier)", -1, hp->vocab_size, hp->dim);
    if (!rc && !w->output_norm)
        rc = btrm_error_set(BTRM_EDATA, "output norm: missing");
    for (int l = 0; !rc && l < hp->n_layers; l++) {
        const btrm_llama_layer *L = &w->layers[l];
        if (!L->attn_norm || !L->ffn_norm)
            rc = btrm_error_set(BTRM_EDATA, "layer %d: missing norm weight", l);
        if (!rc && (!L->q_norm) != (!L->k_norm))
            rc = btrm_error_set(BTRM_EDATA, "layer %d: a q norm without a k norm or the "
                                "reverse", l);
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

/* The activation layout class of a weight type for the int8 path (-1: none). */
static int qclass(int type)
{
    switch (type) {
    case BTRM_Q_Q8_0: return 0;
    case BTRM_Q_Q4_K: case BTRM_Q_Q5_K: return 1;
    case BTRM_Q_Q2_K: case BTRM_Q_Q3_K: case BTRM_Q_Q6_K: return 2;
    default: return -1;
    }
}

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
    free(ws->rope_cos_local);
    free(ws->rope_sin_local);
    free(ws->pool);
    for (int c = 0; c < 3; c++) {
        btrm_qact_free(ws->qact[c]);
        free(ws->qact[c]);
    }
    btrm_qgemm_ws_free(ws->qws);
    free(ws->qws);
    free(ws->x16);
    memset(ws, 0, sizeof *ws);
}

static int max_int(int a, int b) { return a > b ? a : b; }

/* Calls fn on every matrix of w. */
static void each_matrix(const btrm_llama_hparams *hp, const btrm_llama_weights *w,
                        void (*fn)(const btrm_llama_matrix *m, void *user), void *user)
{
    fn(&w->output, user);
    for (int l = 0; l < hp->n_layers; l++) {
        const btrm_llama_layer *L = &w->layers[l];
        const btrm_llama_matrix *m[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3 };
        for (int i = 0; i < 7; i++)
            fn(m[i], user);
    }
}

typedef struct needs {
    int kernel;
    int prec;         /* the GEMM input precision: BF16 matrices need no
                       * dequantising in bf16, F32 ones none in fp32 */
    int dequant;      /* some product dequantises */
    int qclass[3];    /* the int8 path needs this activation layout */
    int qcols[3];     /* ... for inputs of up to this width */
} needs;

static void note_matrix(const btrm_llama_matrix *m, void *user)
{
    needs *n = user;
    int c = qclass(m->type);
    if (n->kernel == BTRM_KERNEL_INT8 && c >= 0) {
        n->qclass[c] = 1;
        n->qcols[c] = max_int(n->qcols[c], m->cols);
    } else if (m->type != (n->prec == BTRM_PREC_BF16 ? BTRM_Q_BF16 : BTRM_Q_F32)) {
        n->dequant = 1;
    }
}

/* Rows per dequantisation block for elements of elem bytes: WBUF_FLOATS *
 * 4 bytes, at least 32 rows, at most the largest matrix's rows. */
static int wbuf_rows(const btrm_llama_hparams *hp, size_t elem)
{
    int q_dim = hp->n_heads * hp->head_dim, kv_dim = hp->n_kv_heads * hp->head_dim;
    int max_cols = max_int(max_int(hp->dim, hp->hidden_dim), q_dim);
    int max_rows = max_int(max_int(hp->dim, 2 * hp->hidden_dim),
                           max_int(q_dim + 2 * kv_dim, hp->vocab_size));
    int rows = (int)((size_t)WBUF_FLOATS * sizeof(float) / elem / (size_t)max_cols);
    return rows < 32 ? 32 : rows > max_rows ? max_rows : rows;
}

static void rope_table(float *cs, float *sn, int max_seq, int rope_dim, double theta,
                       double scale)
{
    /* cos/sin of pos * scale * theta^(-2j/rope_dim), computed in double */
    int half = rope_dim / 2;
    for (int pos = 0; pos < max_seq; pos++)
        for (int j = 0; j < half; j++) {
            double angle = pos * scale * pow(theta, -2.0 * j / (double)rope_dim);
            cs[(size_t)pos * (size_t)half + (size_t)j] = (float)cos(angle);
            sn[(size_t)pos * (size_t)half + (size_t)j] = (float)sin(angle);
        }
}

int btrm_llama_ws_init(btrm_llama_ws *ws, const btrm_llama_hparams *hp,
                       const btrm_llama_weights *w, int max_tokens, int max_seq, int kernel)
{
    memset(ws, 0, sizeof *ws);
    if (max_tokens < 1 || max_seq < 1 || max_seq > max_tokens)
        return btrm_error_set(BTRM_EUSAGE, "llama work buffers: need 1 <= max_seq (%d) <= "
                              "max_tokens (%d)", max_seq, max_tokens);
    if (kernel < BTRM_KERNEL_AUTO || kernel > BTRM_KERNEL_INT8)
        return btrm_error_set(BTRM_EUSAGE, "llama work buffers: unknown kernel %d", kernel);
    ws->kernel = kernel == BTRM_KERNEL_INT8 ? BTRM_KERNEL_INT8 : BTRM_KERNEL_DEQUANT;
    ws->prec = BTRM_PREC_FP32;
    size_t n = (size_t)max_tokens;
    size_t q_dim = (size_t)hp->n_heads * (size_t)hp->head_dim;
    size_t kv_dim = (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    int max_cols = max_int(max_int(hp->dim, hp->hidden_dim), (int)q_dim);
    needs nd = { .kernel = ws->kernel, .prec = BTRM_PREC_FP32, .dequant = !w };
    if (w) {
        each_matrix(hp, w, note_matrix, &nd);
    } else if (ws->kernel == BTRM_KERNEL_INT8) {
        for (int c = 0; c < 3; c++)
            nd.qclass[c] = 1, nd.qcols[c] = max_cols;
    }
    ws->wbuf_rows = nd.dequant ? wbuf_rows(hp, sizeof(float)) : 0;
    ws->max_tokens = max_tokens;
    ws->max_seq = max_seq;
    ws->rope_dim = hp->rope_dim;
    ws->rope_half = hp->rope_dim / 2;
    int att_rows = max_seq < ATT_ROWS ? max_seq : ATT_ROWS;
    size_t half = (size_t)(ws->rope_half ? ws->rope_half : 1);
    double scale = hp->rope_scale > 0.0f ? hp->rope_scale : 1.0;
    double theta_l = hp->rope_theta_local > 0.0f ? hp->rope_theta_local : hp->rope_theta;
    double scale_l = hp->rope_scale_local > 0.0f ? hp->rope_scale_local : 1.0;
    int local_table = hp->sliding_window > 0 &&
                      (theta_l != (double)hp->rope_theta || scale_l != scale);
    int rc = 0;
    if ((rc = BTRM_MALLOC(ws->x, n * (size_t)hp->dim)) ||
        (rc = BTRM_MALLOC(ws->xb, n * (size_t)hp->dim)) ||
        (rc = BTRM_MALLOC(ws->q, n * q_dim)) || (rc = BTRM_MALLOC(ws->att, n * q_dim)) ||
        (rc = BTRM_MALLOC(ws->k, n * kv_dim)) || (rc = BTRM_MALLOC(ws->v, n * kv_dim)) ||
        (rc = BTRM_MALLOC(ws->hb, n * (size_t)hp->hidden_dim)) ||
        (rc = BTRM_MALLOC(ws->hb2, n * (size_t)hp->hidden_dim)) ||
        (rc = BTRM_MALLOC(ws->scores, (size_t)att_rows * (size_t)max_seq)) ||
        (ws->wbuf_rows &&
         (rc = btrm_alloc_checked(&ws->wbuf, (size_t)ws->wbuf_rows * (size_t)max_cols,
                                  sizeof(float), 0, __FILE__, __LINE__))) ||
        (rc = BTRM_MALLOC(ws->rope_cos, (size_t)max_seq * half)) ||
        (rc = BTRM_MALLOC(ws->rope_sin, (size_t)max_seq * half)) ||
        (local_table && ((rc = BTRM_MALLOC(ws->rope_cos_local, (size_t)max_seq * half)) ||
                         (rc = BTRM_MALLOC(ws->rope_sin_local, (size_t)max_seq * half)))) ||
        (rc = BTRM_MALLOC(ws->pool, (size_t)hp->dim)))
        goto fail;
    for (int c = 0; c < 3; c++) {
        if (!nd.qclass[c])
            continue;
        btrm_qact *a = NULL;
        if ((rc = BTRM_CALLOC(a, 1)))
            goto fail;
        ws->qact[c] = a;
        static const int class_type[3] = { BTRM_Q_Q8_0, BTRM_Q_Q4_K, BTRM_Q_Q6_K };
        if ((rc = btrm_qact_init(a, class_type[c], max_tokens, nd.qcols[c])))
            goto fail;
    }
    if (nd.qclass[0] || nd.qclass[1] || nd.qclass[2]) {
        btrm_qgemm_ws *qws = NULL;
        if ((rc = BTRM_CALLOC(qws, 1)))
            goto fail;
        ws->qws = qws;
        if ((rc = btrm_qgemm_ws_init(qws, max_cols)))
            goto fail;
    }
    rope_table(ws->rope_cos, ws->rope_sin, max_seq, hp->rope_dim, hp->rope_theta, scale);
    if (local_table)
        rope_table(ws->rope_cos_local, ws->rope_sin_local, max_seq, hp->rope_dim, theta_l,
                   scale_l);
    return 0;
fail:
    btrm_llama_ws_free(ws);
    return btrm_error_wrap(rc, "llama work buffers for %d tokens", max_tokens);
}

int btrm_llama_ws_set_precision(btrm_llama_ws *ws, const btrm_llama_hparams *hp,
                                const btrm_llama_weights *w, int precision)
{
    int rc = btrm_gemm_supports(precision);
    if (rc)
        return rc;
    int max_cols = max_int(max_int(hp->dim, hp->hidden_dim), hp->n_heads * hp->head_dim);
    needs nd = { .kernel = ws->kernel, .prec = precision, .dequant = !w };
    if (w)
        each_matrix(hp, w, note_matrix, &nd);
    /* the dequantisation buffer for this precision (none when every product
     * multiplies its weights as stored) */
    size_t elem = precision == BTRM_PREC_BF16 ? sizeof(uint16_t) : sizeof(float);
    free(ws->wbuf);
    ws->wbuf = NULL;
    ws->wbuf_rows = nd.dequant ? wbuf_rows(hp, elem) : 0;
    if (ws->wbuf_rows && (rc = btrm_alloc_checked(&ws->wbuf, (size_t)ws->wbuf_rows *
                                                  (size_t)max_cols, elem, 0, __FILE__, __LINE__)))
        return btrm_error_wrap(rc, "llama dequantisation buffer");
    if (precision == BTRM_PREC_BF16 && !ws->x16 &&
        (rc = BTRM_MALLOC(ws->x16, (size_t)ws->max_tokens * (size_t)max_cols)))
        return btrm_error_wrap(rc, "llama bf16 activations for %d tokens", ws->max_tokens);
    ws->prec = precision;
    ws->x16_src = NULL;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Kernels */

/* y[N, W.rows] (row stride ldy) = x[N, W.cols] . W^T + beta * y; x is
 * ws->gen's version of that buffer (the int8 path quantises it once, the
 * bf16 path rounds it once). */
static int matmul(btrm_llama_ws *ws, const float *x, int N, const btrm_llama_matrix *W,
                  float *y, int ldy, float beta)
{
    const int bf16 = ws->prec == BTRM_PREC_BF16;
    if (W->type == BTRM_Q_F32 && !bf16)
        return btrm_gemm(BTRM_PREC_FP32, 0, 1, N, W->rows, W->cols, 1.0f, x, W->cols,
                         (const float *)W->data, W->cols, beta, y, ldy);
    int c = qclass(W->type);
    if (ws->kernel == BTRM_KERNEL_INT8 && c >= 0 && ws->qact[c]) {
        btrm_qact *a = ws->qact[c];
        if (ws->qact_src[c] != x || ws->qact_gen[c] != ws->gen || a->rows != N ||
            a->cols != W->cols) {
            a->cols = W->cols;
            btrm_qact_quantize(a, x, N, W->cols);
            ws->qact_src[c] = x;
            ws->qact_gen[c] = ws->gen;
        }
        btrm_qgemm(ws->qws, a, W->data, btrm_quant_row_bytes(W->type, W->cols), W->rows, y,
                   ldy, beta);
        return 0;
    }
    /* the input as the product takes it: float32, or rounded to bf16 once */
    btrm_gemm_operand ox = { x, BTRM_DTYPE_F32, 0, W->cols };
    if (bf16) {
        size_t len = (size_t)N * (size_t)W->cols;
        if (ws->x16_src != x || ws->x16_gen != ws->gen || ws->x16_len != len) {
            btrm_dtype_from_f32(ws->x16, BTRM_DTYPE_BF16, x, len);
            ws->x16_src = x;
            ws->x16_gen = ws->gen;
            ws->x16_len = len;
        }
        ox = (btrm_gemm_operand){ ws->x16, BTRM_DTYPE_BF16, 0, W->cols };
        if (W->type == BTRM_Q_BF16) {
            btrm_gemm_operand ow = { W->data, BTRM_DTYPE_BF16, 1, W->cols };
            return btrm_gemm_ex(BTRM_PREC_BF16, N, W->rows, W->cols, 1.0f, &ox, &ow, beta, y,
                                ldy);
        }
    }
    size_t elem = bf16 ? 2 : 4;
    size_t row_bytes = btrm_quant_row_bytes(W->type, W->cols);
    for (int r0 = 0; r0 < W->rows; r0 += ws->wbuf_rows) {
        int nr = W->rows - r0 < ws->wbuf_rows ? W->rows - r0 : ws->wbuf_rows;
        for (int r = 0; r < nr; r++)
            btrm_quant_dequant(W->type, (const unsigned char *)W->data + (size_t)(r0 + r) * row_bytes,
                               W->cols, ws->prec,
                               (unsigned char *)ws->wbuf + (size_t)r * (size_t)W->cols * elem);
        /* y[:, r0:r0+nr] = x . wbuf[nr, cols]^T + beta y */
        btrm_gemm_operand ow = { ws->wbuf, bf16 ? BTRM_DTYPE_BF16 : BTRM_DTYPE_F32, 1, W->cols };
        int rc = btrm_gemm_ex(ws->prec, N, nr, W->cols, 1.0f, &ox, &ow, beta, y + r0, ldy);
        if (rc)
            return rc;
    }
    return 0;
}

/* out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, rows of width dim
 * (out may be x) */
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

/* y[N, n] += b[n] */
static void add_bias(float *y, const float *b, int N, int n)
{
    if (!b)
        return;
    for (int t = 0; t < N; t++)
        for (int i = 0; i < n; i++)
            y[(size_t)t * (size_t)n + (size_t)i] += b[i];
}

/* Rotates every head of x[T, n_heads*hd] (one sequence, positions 0..T-1):
 * adjacent pairs (2j, 2j+1), or NeoX halves (j, j + rope_dim/2). */
static void rope(const btrm_llama_ws *ws, int neox, int local, float *x, int T, int n_heads,
                 int hd)
{
    size_t half = (size_t)(ws->rope_half ? ws->rope_half : 1);
    const float *cs = local && ws->rope_cos_local ? ws->rope_cos_local : ws->rope_cos;
    const float *sn = local && ws->rope_sin_local ? ws->rope_sin_local : ws->rope_sin;
    int stride = neox ? 1 : 2, offset = neox ? ws->rope_half : 1;
    for (int t = 0; t < T; t++) {
        const float *c = cs + (size_t)t * half, *s = sn + (size_t)t * half;
        float *row = x + (size_t)t * (size_t)n_heads * (size_t)hd;
        for (int h = 0; h < n_heads; h++) {
            float *v = row + (size_t)h * (size_t)hd;
            for (int j = 0; j < ws->rope_half; j++) {
                float *p0 = v + stride * j, *p1 = p0 + offset;
                float v0 = *p0, v1 = *p1;
                *p0 = v0 * c[j] - v1 * s[j];
                *p1 = v0 * s[j] + v1 * c[j];
            }
        }
    }
}

/* Softmax of each row of a block of scores S[nb, keys] in place: row r is
 * query i0 + r, column j key k0 + j; the row keeps the keys up to its query
 * and, with window > 0, from i0 + r - window + 1 on (soft-capped first when
 * cap > 0); the others become 0. */
static void softmax_rows(float *S, int nb, int keys, int i0, int k0, int window, float cap)
{
    for (int r = 0; r < nb; r++) {
        float *row = S + (size_t)r * keys;
        int i = i0 + r;
        int lo = window > 0 && i - window + 1 > k0 ? i - window + 1 - k0 : 0;
        int hi = i - k0 + 1; /* keys [lo, hi) of the row */
        if (cap > 0.0f)
            for (int j = lo; j < hi; j++)
                row[j] = cap * tanhf(row[j] / cap);
        float mx = row[lo];
        for (int j = lo + 1; j < hi; j++)
            mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0;
        for (int j = lo; j < hi; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < keys; j++)
            row[j] = j >= lo && j < hi ? row[j] * inv : 0.0f;
    }
}

void btrm_llama_softmax_causal(float *S, int nb, int keys, int i0)
{
    softmax_rows(S, nb, keys, i0, 0, 0, 0.0f);
}

/* Causal attention of one sequence of T tokens: q [T, q_dim], k, v
 * [T, kv_dim] (rows of the batch buffers), into att [T, q_dim]; window > 0:
 * query i sees keys i - window + 1 .. i only. */
static int attention(btrm_llama_ws *ws, const btrm_llama_hparams *hp, const float *q,
                     const float *k, const float *v, float *att, int T, int window)
{
    int hd = hp->head_dim, q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;
    int group = hp->n_heads / hp->n_kv_heads;
    float scale = hp->attn_scale > 0.0f ? hp->attn_scale : 1.0f / sqrtf((float)hd);
    float cap = hp->attn_softcap;
    for (int h = 0; h < hp->n_heads; h++) {
        int g = h / group;
        const float *qh = q + (size_t)h * hd, *kg = k + (size_t)g * hd, *vg = v + (size_t)g * hd;
        for (int i0 = 0; i0 < T; i0 += ATT_ROWS) {
            int nb = T - i0 < ATT_ROWS ? T - i0 : ATT_ROWS;
            /* queries i0..i0+nb-1 see keys k0..i (k0 >= i - window + 1) */
            int k0 = window > 0 && i0 - window + 1 > 0 ? i0 - window + 1 : 0;
            int keys = i0 + nb - k0;
            float *S = ws->scores;
            /* S[nb, keys] = scale * q_h[i0:i0+nb] . k_g[k0:k0+keys]^T */
            int rc = btrm_gemm(BTRM_PREC_FP32, 0, 1, nb, keys, hd, scale, qh + (size_t)i0 * q_dim,
                               q_dim, kg + (size_t)k0 * kv_dim, kv_dim, 0.0f, S, keys);
            if (rc)
                return rc;
            softmax_rows(S, nb, keys, i0, k0, window, cap);
            /* att_h[i0:i0+nb] = S[nb, keys] . v_g[k0:k0+keys] */
            rc = btrm_gemm(BTRM_PREC_FP32, 0, 0, nb, hd, keys, 1.0f, S, keys,
                           vg + (size_t)k0 * kv_dim, kv_dim, 0.0f,
                           att + (size_t)i0 * q_dim + (size_t)h * hd, q_dim);
            if (rc)
                return rc;
        }
    }
    return 0;
}

void btrm_llama_rmsnorm(float *out, const float *x, const float *weight, int rows, int dim,
                        float eps)
{
    rmsnorm(out, x, weight, rows, dim, eps);
}

void btrm_llama_rope(const btrm_llama_ws *ws, const btrm_llama_hparams *hp, int layer, float *x,
                     int T, int n_heads, int hd)
{
    rope(ws, hp->rope_neox, btrm_llama_layer_is_local(hp, layer), x, T, n_heads, hd);
}

int btrm_llama_attention(btrm_llama_ws *ws, const btrm_llama_hparams *hp, int layer,
                         const float *q, const float *k, const float *v, float *att, int T)
{
    return attention(ws, hp, q, k, v, att, T,
                     btrm_llama_layer_is_local(hp, layer) ? hp->sliding_window : 0);
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

double btrm_llama_flops(const btrm_llama_hparams *hp, const int *lens, int n_seqs)
{
    double n = 0.0, pairs = 0.0, pairs_local = 0.0;
    double w = hp->sliding_window;
    for (int s = 0; s < n_seqs; s++) {
        double T = lens[s];
        n += T;
        pairs += 0.5 * T * (T + 1);
        /* query i keeps min(i + 1, window) keys */
        double m = w > 0 && w < T ? w : T;
        pairs_local += 0.5 * m * (m + 1) + (T - m) * m;
    }
    double q_dim = (double)hp->n_heads * hp->head_dim, kv_dim = (double)hp->n_kv_heads * hp->head_dim;
    double per_token = 2.0 * hp->dim * (2.0 * q_dim + 2.0 * kv_dim) +
                       2.0 * 3.0 * hp->dim * (double)hp->hidden_dim;
    double total = 0.0;
    for (int l = 0; l < hp->n_layers; l++)
        total += n * per_token + 2.0 * 2.0 * hp->head_dim * hp->n_heads *
                                     (btrm_llama_layer_is_local(hp, l) ? pairs_local : pairs);
    return total;
}

static float gelu_tanh(float x)
{
    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's
     * gelu(approximate="tanh") */
    const float c = 0.7978845608028654f;
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

int btrm_llama_forward(const btrm_llama_hparams *hp, const btrm_llama_weights *w,
                       btrm_llama_ws *ws, const int32_t *ids, const int *lens, int n_seqs,
                       float *last, float *mean)
{
    int N = 0;
    int rc = btrm_llama_batch_check(hp, ws, ids, lens, n_seqs, &N);
    if (rc)
        return rc;
    if (N == 0)
        return 0;
    const int dim = hp->dim, hidden = hp->hidden_dim, hd = hp->head_dim;
    const int q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;

    /* x[N, dim] = token embeddings (* embed_scale) */
    for (int t = 0; t < N; t++)
        btrm_llama_dequant_row(&w->token_embd, ids[t], ws->x + (size_t)t * dim);
    if (hp->embed_scale > 0.0f && hp->embed_scale != 1.0f)
        for (size_t i = 0; i < (size_t)N * (size_t)dim; i++)
            ws->x[i] *= hp->embed_scale;

    for (int l = 0; l < hp->n_layers && !rc; l++) {
        const btrm_llama_layer *L = &w->layers[l];
        int local = btrm_llama_layer_is_local(hp, l);
        rmsnorm(ws->xb, ws->x, L->attn_norm, N, dim, hp->norm_eps);
        ws->gen++;
        /* q[N, q_dim] = xb Wq^T + bq; k, v [N, kv_dim] = xb Wk^T + bk, xb Wv^T + bv */
        if ((rc = matmul(ws, ws->xb, N, &L->wq, ws->q, q_dim, 0.0f)) ||
            (rc = matmul(ws, ws->xb, N, &L->wk, ws->k, kv_dim, 0.0f)) ||
            (rc = matmul(ws, ws->xb, N, &L->wv, ws->v, kv_dim, 0.0f)))
            break;
        add_bias(ws->q, L->bq, N, q_dim);
        add_bias(ws->k, L->bk, N, kv_dim);
        add_bias(ws->v, L->bv, N, kv_dim);
        if (L->q_norm) { /* per head: rows of head_dim */
            rmsnorm(ws->q, ws->q, L->q_norm, N * hp->n_heads, hd, hp->norm_eps);
            rmsnorm(ws->k, ws->k, L->k_norm, N * hp->n_kv_heads, hd, hp->norm_eps);
        }
        for (int s = 0, off = 0; s < n_seqs && !rc; off += lens[s], s++) {
            rope(ws, hp->rope_neox, local, ws->q + (size_t)off * q_dim, lens[s], hp->n_heads, hd);
            rope(ws, hp->rope_neox, local, ws->k + (size_t)off * kv_dim, lens[s], hp->n_kv_heads,
                 hd);
            rc = attention(ws, hp, ws->q + (size_t)off * q_dim, ws->k + (size_t)off * kv_dim,
                           ws->v + (size_t)off * kv_dim, ws->att + (size_t)off * q_dim, lens[s],
                           local ? hp->sliding_window : 0);
        }
        ws->gen++;
        if (rc)
            break;
        if (L->attn_post_norm) {
            /* xb = RMSNorm(att Wo^T) * post_norm; x += xb */
            if ((rc = matmul(ws, ws->att, N, &L->wo, ws->xb, dim, 0.0f)))
                break;
            rmsnorm(ws->xb, ws->xb, L->attn_post_norm, N, dim, hp->norm_eps);
            for (size_t i = 0; i < (size_t)N * (size_t)dim; i++)
                ws->x[i] += ws->xb[i];
        } else if ((rc = matmul(ws, ws->att, N, &L->wo, ws->x, dim, 1.0f))) { /* x += att Wo^T */
            break;
        }

        rmsnorm(ws->xb, ws->x, L->ffn_norm, N, dim, hp->norm_eps);
        ws->gen++;
        /* hb = xb W1^T (gate), hb2 = xb W3^T (up), hb = act(hb) * hb2 */
        if ((rc = matmul(ws, ws->xb, N, &L->w1, ws->hb, hidden, 0.0f)) ||
            (rc = matmul(ws, ws->xb, N, &L->w3, ws->hb2, hidden, 0.0f)))
            break;
        size_t nh = (size_t)N * (size_t)hidden;
        if (hp->ffn_act == BTRM_FFN_GELU_TANH) {
            for (size_t i = 0; i < nh; i++)
                ws->hb[i] = gelu_tanh(ws->hb[i]) * ws->hb2[i];
        } else {
            for (size_t i = 0; i < nh; i++) {
                float z = ws->hb[i];
                ws->hb[i] = z / (1.0f + expf(-z)) * ws->hb2[i];
            }
        }
        ws->gen++;
        if (L->ffn_post_norm) {
            /* xb = RMSNorm(hb W2^T) * post_norm; x += xb */
            if ((rc = matmul(ws, ws->hb, N, &L->w2, ws->xb, dim, 0.0f)))
                break;
            rmsnorm(ws->xb, ws->xb, L->ffn_post_norm, N, dim, hp->norm_eps);
            for (size_t i = 0; i < (size_t)N * (size_t)dim; i++)
                ws->x[i] += ws->xb[i];
        } else if ((rc = matmul(ws, ws->hb, N, &L->w2, ws->x, dim, 1.0f))) { /* x += hb W2^T */
            break;
        }
    }
    if (rc)
        return rc;

    /* h = RMSNorm(x) * output_norm, pooled per sequence */
    btrm_llama_pool(hp, ws, ws->x, w->output_norm, lens, n_seqs, last, mean);
    ws->gen++;
    ws->flops += btrm_llama_flops(hp, lens, n_seqs);
    return 0;
}

int btrm_llama_logits(const btrm_llama_hparams *hp, const btrm_llama_weights *w,
                      btrm_llama_ws *ws, const float *h, int rows, float *logits)
{
    /* logits[rows, vocab] = h[rows, dim] Wout^T */
    ws->gen++;
    int rc = matmul(ws, h, rows, &w->output, logits, hp->vocab_size, 0.0f);
    float cap = hp->final_softcap;
    if (!rc && cap > 0.0f)
        for (size_t i = 0; i < (size_t)rows * (size_t)hp->vocab_size; i++)
            logits[i] = cap * tanhf(logits[i] / cap);
    return rc;
}
