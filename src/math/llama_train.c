/* llama_train.c: the Llama forward with saved activations and its backward
 * (equations in docs/training.md, "Fine-tuning the backbone: the math").
 * Every product is one btrm_gemm over all the batch's tokens (attention:
 * per sequence and head, on causal row blocks); the forward uses llama.c's
 * RMSNorm, RoPE and attention kernels, so that with untouched parameters
 * its result is bitwise btrm_llama_forward's. */
#include "llama_train.h"

#include "error.h"
#include "gemm.h"
#include "qgemm.h"
#include "quant.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Query rows per block of the attention backward: scores and dP [ATT_ROWS,
 * keys] (llama.c's forward uses the same). */
#define ATT_ROWS 128
/* Per trainable block: LoRA A (or the top_k weight) of projection p at
 * slot p, LoRA B at 7 + p, the norms at 14 and 15. */
#define SLOT_B 7
#define SLOT_ATTN_NORM 14
#define SLOT_FFN_NORM 15
#define N_SLOTS 16
/* The PRNG stream of the adapters' initialisation ("lora"). */
#define STREAM_LORA UINT64_C(0x6c6f7261)

struct btrm_llama_train_acts {
    float *x_in;              /* [N, dim] the block's input (residual stream) */
    float *q, *k, *v;         /* [N, q_dim], [N, kv_dim] x2; q and k after RoPE */
    float *att;               /* [N, q_dim] attention output, o's input */
    float *x_mid;             /* [N, dim] the residual after attention */
    float *h1, *h3;           /* [N, hidden] gate and up, before SwiGLU */
    float *u[BTRM_N_PROJ];    /* [N, r] x A^T of each LoRA target */
};

static const char *const proj_names[BTRM_N_PROJ] = { "q", "k", "v", "o", "gate", "up", "down" };
static const char *const proj_gguf[BTRM_N_PROJ] = { "attn_q", "attn_k", "attn_v", "attn_output",
                                                    "ffn_gate", "ffn_up", "ffn_down" };
static const char *const proj_hf[BTRM_N_PROJ] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"
};

const char *btrm_llama_train_proj_name(int proj)
{
    return proj >= 0 && proj < BTRM_N_PROJ ? proj_names[proj] : NULL;
}

const char *btrm_llama_train_proj_gguf(int proj)
{
    return proj >= 0 && proj < BTRM_N_PROJ ? proj_gguf[proj] : NULL;
}

const char *btrm_llama_train_proj_hf(int proj)
{
    return proj >= 0 && proj < BTRM_N_PROJ ? proj_hf[proj] : NULL;
}

int btrm_llama_train_proj_parse(const char *name)
{
    for (int p = 0; p < BTRM_N_PROJ; p++)
        if (name && !strcmp(name, proj_names[p]))
            return p;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Layout */

static const btrm_llama_matrix *proj_matrix(const btrm_llama_layer *L, int p)
{
    const btrm_llama_matrix *m[BTRM_N_PROJ] = { &L->wq, &L->wk, &L->wv, &L->wo,
                                                &L->w1, &L->w3, &L->w2 };
    return m[p];
}

/* [out, in] of projection p */
static void proj_shape(const btrm_llama_hparams *hp, int p, int *out, int *in)
{
    int q_dim = hp->n_heads * hp->head_dim, kv_dim = hp->n_kv_heads * hp->head_dim;
    const int outs[BTRM_N_PROJ] = { q_dim, kv_dim, kv_dim, hp->dim, hp->hidden_dim,
                                    hp->hidden_dim, hp->dim };
    const int ins[BTRM_N_PROJ] = { hp->dim, hp->dim, hp->dim, q_dim, hp->dim, hp->dim,
                                   hp->hidden_dim };
    *out = outs[p];
    *in = ins[p];
}

void btrm_llama_train_free(btrm_llama_train *lt)
{
    if (!lt)
        return;
    free(lt->tensors);
    free(lt->slot);
    memset(lt, 0, sizeof *lt);
}

static void add_tensor(btrm_llama_train *lt, int kind, int layer, int proj, int rows, int cols)
{
    btrm_llama_train_tensor *t = &lt->tensors[lt->n_tensors];
    t->kind = kind;
    t->layer = layer;
    t->proj = proj;
    t->rows = rows;
    t->cols = cols;
    t->offset = lt->n_params;
    if (kind == BTRM_LT_NORM) {
        const char *norm = proj == BTRM_NORM_ATTN ? "attn_norm" : "ffn_norm";
        if (layer < 0)
            snprintf(t->name, sizeof t->name, "output_norm.weight");
        else
            snprintf(t->name, sizeof t->name, "blk.%d.%s.weight", layer, norm);
    } else {
        snprintf(t->name, sizeof t->name, "blk.%d.%s.weight%s", layer, proj_gguf[proj],
                 kind == BTRM_LT_LORA_A ? ".lora_a" : kind == BTRM_LT_LORA_B ? ".lora_b" : "");
    }
    if (layer >= 0) {
        int i = layer - lt->first_layer;
        int s = kind == BTRM_LT_NORM ? (proj == BTRM_NORM_ATTN ? SLOT_ATTN_NORM : SLOT_FFN_NORM)
                                     : kind == BTRM_LT_LORA_B ? SLOT_B + proj : proj;
        lt->slot[i * N_SLOTS + s] = lt->n_tensors;
    } else {
        lt->output_norm = lt->n_tensors;
    }
    lt->n_params += (size_t)rows * (size_t)cols;
    lt->n_tensors++;
}

static int check_spec(const btrm_llama_train_spec *spec, const btrm_llama_hparams *hp,
                      const btrm_llama_weights *w)
{
    if (spec->type != BTRM_FT_LORA && spec->type != BTRM_FT_TOP_K)
        return btrm_error_set(BTRM_ECONFIG, "model.finetune.type %d: the backbone trains "
                              "with lora or top_k", spec->type);
    if (spec->layers < 0 || spec->layers > hp->n_layers)
        return btrm_error_set(BTRM_ECONFIG, "model.finetune.layers = %d: the model has %d "
                              "blocks (0 trains all of them)", spec->layers, hp->n_layers);
    /* the backward implements Llama's block: none of the other architectures'
     * named differences (llama.h) */
    int other = hp->rope_neox || hp->sliding_window > 0 || hp->attn_softcap > 0.0f ||
                (hp->embed_scale > 0.0f && hp->embed_scale != 1.0f) || hp->attn_scale > 0.0f ||
                hp->ffn_act != BTRM_FFN_SILU || (hp->rope_scale > 0.0f && hp->rope_scale != 1.0f);
    for (int l = 0; !other && l < hp->n_layers; l++) {
        const btrm_llama_layer *L = &w->layers[l];
        other = L->bq || L->bk || L->bv || L->q_norm || L->k_norm || L->attn_post_norm ||
                L->ffn_post_norm;
    }
    if (other)
        return btrm_error_set(BTRM_ECONFIG, "model.finetune: the backbone's backward pass "
                              "implements the llama architecture only (this model has NeoX "
                              "rotary, a sliding window, soft-caps, biases, q/k norms, "
                              "post-norms or GELU); embed it, or fine-tune a llama model");
    int first = hp->n_layers - (spec->layers ? spec->layers : hp->n_layers);
    if (spec->type == BTRM_FT_LORA) {
        if (!spec->targets)
            return btrm_error_set(BTRM_ECONFIG, "model.finetune.targets is empty (any of q, "
                                  "k, v, o, gate, up, down)");
        if (spec->targets & ~BTRM_LORA_ALL)
            return btrm_error_set(BTRM_ECONFIG, "model.finetune.targets: unknown target bits "
                                  "0x%x", spec->targets & ~BTRM_LORA_ALL);
        if (spec->rank < 1)
            return btrm_error_set(BTRM_ECONFIG, "model.finetune.rank = %d: the LoRA rank must "
                                  "be at least 1", spec->rank);
        if (!(spec->alpha > 0.0f) || !isfinite(spec->alpha))
            return btrm_error_set(BTRM_ECONFIG, "model.finetune.alpha = %g: must be positive",
                                  (double)spec->alpha);
    }
    for (int p = 0; p < BTRM_N_PROJ; p++) {
        int used = spec->type == BTRM_FT_TOP_K || (spec->targets & BTRM_LORA_TARGET(p));
        if (!used)
            continue;
        int out, in;
        proj_shape(hp, p, &out, &in);
        int lim = out < in ? out : in;
        if (spec->type == BTRM_FT_LORA && spec->rank > lim)
            return btrm_error_set(BTRM_ECONFIG, "model.finetune.rank = %d is larger than the "
                                  "dimension of target %s (%s, [%d, %d]): at most %d",
                                  spec->rank, proj_names[p], proj_gguf[p], out, in, lim);
        for (int l = first; l < hp->n_layers; l++)
            if (!proj_matrix(&w->layers[l], p)->data)
                return btrm_error_set(BTRM_ECONFIG, "model.finetune.%s: this model has no "
                                      "%s projection (%s) in block %d",
                                      spec->type == BTRM_FT_LORA ? "targets" : "type = top_k",
                                      proj_names[p], proj_gguf[p], l);
    }
    if (spec->type == BTRM_FT_TOP_K) {
        for (int l = first; l < hp->n_layers; l++)
            if (!w->layers[l].attn_norm || !w->layers[l].ffn_norm)
                return btrm_error_set(BTRM_ECONFIG, "model.finetune.type = top_k: block %d has "
                                      "no norm weights", l);
        if (!w->output_norm)
            return btrm_error_set(BTRM_ECONFIG, "model.finetune.type = top_k: the model has "
                                  "no final norm");
    }
    return 0;
}

int btrm_llama_train_init(btrm_llama_train *lt, const btrm_llama_train_spec *spec,
                          const btrm_llama_hparams *hp, const btrm_llama_weights *w)
{
    memset(lt, 0, sizeof *lt);
    int rc = check_spec(spec, hp, w);
    if (rc)
        return rc;
    lt->spec = *spec;
    lt->hp = *hp;
    lt->w = w;
    int k = spec->layers ? spec->layers : hp->n_layers;
    lt->first_layer = hp->n_layers - k;
    lt->output_norm = -1;
    int per_block = 0;
    if (spec->type == BTRM_FT_LORA) {
        lt->lora_scale = spec->alpha / (float)spec->rank;
        for (int p = 0; p < BTRM_N_PROJ; p++)
            per_block += 2 * !!(spec->targets & BTRM_LORA_TARGET(p));
    } else {
        per_block = BTRM_N_PROJ + 2;
    }
    int n = k * per_block + (spec->type == BTRM_FT_TOP_K);
    if ((rc = BTRM_CALLOC(lt->tensors, n)) || (rc = BTRM_MALLOC(lt->slot, k * N_SLOTS))) {
        btrm_llama_train_free(lt);
        return btrm_error_wrap(rc, "trainable tensors of %d blocks", k);
    }
    for (int i = 0; i < k * N_SLOTS; i++)
        lt->slot[i] = -1;
    for (int l = lt->first_layer; l < hp->n_layers; l++) {
        for (int p = 0; p < BTRM_N_PROJ; p++) {
            int out, in;
            proj_shape(hp, p, &out, &in);
            if (spec->type == BTRM_FT_LORA) {
                if (!(spec->targets & BTRM_LORA_TARGET(p)))
                    continue;
                add_tensor(lt, BTRM_LT_LORA_A, l, p, spec->rank, in);
                add_tensor(lt, BTRM_LT_LORA_B, l, p, out, spec->rank);
            } else {
                if (p == BTRM_PROJ_Q)
                    add_tensor(lt, BTRM_LT_NORM, l, BTRM_NORM_ATTN, 1, hp->dim);
                if (p == BTRM_PROJ_GATE)
                    add_tensor(lt, BTRM_LT_NORM, l, BTRM_NORM_FFN, 1, hp->dim);
                add_tensor(lt, BTRM_LT_WEIGHT, l, p, out, in);
            }
        }
    }
    if (spec->type == BTRM_FT_TOP_K)
        add_tensor(lt, BTRM_LT_NORM, -1, BTRM_NORM_OUTPUT, 1, hp->dim);
    return 0;
}

int btrm_llama_train_find(const btrm_llama_train *lt, const char *name)
{
    for (int i = 0; i < lt->n_tensors; i++)
        if (!strcmp(lt->tensors[i].name, name))
            return i;
    return -1;
}

void btrm_llama_train_init_params(const btrm_llama_train *lt, float *params, uint64_t seed)
{
    btrm_rng rng;
    btrm_rng_seed(&rng, seed, STREAM_LORA);
    for (int i = 0; i < lt->n_tensors; i++) {
        const btrm_llama_train_tensor *t = &lt->tensors[i];
        float *p = params + t->offset;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        if (t->kind == BTRM_LT_LORA_A) {
            /* kaiming_uniform_(A, a = sqrt(5)): bound 1/sqrt(fan_in) */
            double bound = 1.0 / sqrt((double)t->cols);
            for (size_t j = 0; j < n; j++)
                p[j] = (float)((2.0 * btrm_rng_uniform(&rng) - 1.0) * bound);
        } else if (t->kind == BTRM_LT_LORA_B) {
            memset(p, 0, n * sizeof *p);
        } else if (t->kind == BTRM_LT_WEIGHT) {
            const btrm_llama_matrix *m = proj_matrix(&lt->w->layers[t->layer], t->proj);
            for (int r = 0; r < t->rows; r++)
                btrm_llama_dequant_row(m, r, p + (size_t)r * (size_t)t->cols);
        } else {
            const float *g = t->layer < 0 ? lt->w->output_norm
                             : t->proj == BTRM_NORM_ATTN ? lt->w->layers[t->layer].attn_norm
                                                         : lt->w->layers[t->layer].ffn_norm;
            memcpy(p, g, n * sizeof *p);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* What the backward of trainable block i computes */

static int has_slot(const btrm_llama_train *lt, int i, int s)
{
    return lt->slot[i * N_SLOTS + s] >= 0;
}

/* Which input gradients the backward of trainable block i forms: nothing
 * below block i trains when i = 0, so there only what reaches one of its
 * own trainable tensors is computed. */
typedef struct needs {
    int attn;     /* the attention half at all (o's input gradient, attention, RoPE) */
    int qkv_in;   /* q, k, v's input gradient and the attention norm's backward */
    int ffn_in;   /* gate, up's input gradient and the ffn norm's backward */
    int dg;       /* down's input gradient (SwiGLU's backward) */
} needs;

static needs block_needs(const btrm_llama_train *lt, int i)
{
    needs n;
    int attn_params = has_slot(lt, i, SLOT_ATTN_NORM), gate_up = 0;
    for (int p = BTRM_PROJ_Q; p <= BTRM_PROJ_O; p++)
        attn_params |= has_slot(lt, i, p);
    gate_up = has_slot(lt, i, BTRM_PROJ_GATE) || has_slot(lt, i, BTRM_PROJ_UP);
    n.attn = i > 0 || attn_params;
    n.qkv_in = i > 0 || has_slot(lt, i, SLOT_ATTN_NORM);
    n.ffn_in = n.attn || has_slot(lt, i, SLOT_FFN_NORM);
    n.dg = n.ffn_in || gate_up;
    return n;
}

/* ------------------------------------------------------------------------ */
/* FLOPs */

static double attn_pairs(const int *lens, int n_seqs, double *tokens)
{
    double pairs = 0.0, n = 0.0;
    for (int s = 0; s < n_seqs; s++) {
        n += lens[s];
        pairs += 0.5 * (double)lens[s] * (double)(lens[s] + 1);
    }
    *tokens = n;
    return pairs;
}

/* Forward of trainable block i's adapters */
static double lora_forward_flops(const btrm_llama_train *lt, int i, double n)
{
    double f = 0.0;
    for (int p = 0; p < BTRM_N_PROJ; p++)
        if (lt->spec.type == BTRM_FT_LORA && has_slot(lt, i, p)) {
            int out, in;
            proj_shape(&lt->hp, p, &out, &in);
            f += 2.0 * n * lt->spec.rank * ((double)in + out);
        }
    return f;
}

void btrm_llama_train_flops(const btrm_llama_train *lt, const int *lens, int n_seqs,
                            int recompute, double *forward, double *backward)
{
    const btrm_llama_hparams *hp = &lt->hp;
    double n, pairs = attn_pairs(lens, n_seqs, &n);
    int k = hp->n_layers - lt->first_layer;
    double block = btrm_llama_flops(hp, lens, n_seqs) / hp->n_layers; /* one block's forward */
    double attn_bwd = 10.0 * hp->head_dim * hp->n_heads * pairs;
    double fwd = btrm_llama_flops(hp, lens, n_seqs), bwd = 0.0;
    for (int i = 0; i < k; i++) {
        double lora_fwd = lora_forward_flops(lt, i, n);
        fwd += lora_fwd;
        if (recompute) /* the block again, but for down's product (u = g A^T only) */
            bwd += block - 2.0 * n * hp->dim * (double)hp->hidden_dim + lora_fwd -
                   (lt->spec.type == BTRM_FT_LORA && has_slot(lt, i, BTRM_PROJ_DOWN)
                        ? 2.0 * n * lt->spec.rank * hp->dim : 0.0);
        needs nd = block_needs(lt, i);
        if (nd.attn)
            bwd += attn_bwd;
        for (int p = 0; p < BTRM_N_PROJ; p++) {
            int out, in;
            proj_shape(hp, p, &out, &in);
            if (p <= BTRM_PROJ_O && !nd.attn)
                continue;
            double lin = 2.0 * n * (double)out * in;
            int input_grad = p <= BTRM_PROJ_V ? nd.qkv_in : p == BTRM_PROJ_O ? 1
                             : p == BTRM_PROJ_DOWN ? nd.dg : nd.ffn_in;
            if (input_grad)
                bwd += lin;
            if (lt->spec.type == BTRM_FT_TOP_K)
                bwd += lin;
            else if (has_slot(lt, i, p))
                bwd += 2.0 * n * lt->spec.rank * (2.0 * out + in + (input_grad ? in : 0));
        }
    }
    *forward = fwd;
    *backward = bwd;
}

/* ------------------------------------------------------------------------ */
/* Work buffers */

static void acts_free(struct btrm_llama_train_acts *a)
{
    free(a->x_in);
    free(a->q);
    free(a->k);
    free(a->v);
    free(a->att);
    free(a->x_mid);
    free(a->h1);
    free(a->h3);
    for (int p = 0; p < BTRM_N_PROJ; p++)
        free(a->u[p]);
}

void btrm_llama_train_ws_free(btrm_llama_train_ws *ws)
{
    if (!ws)
        return;
    btrm_llama_ws_free(&ws->base);
    for (int i = 0; ws->acts && i < ws->n_train; i++)
        acts_free(&ws->acts[i]);
    free(ws->acts);
    if (ws->shared)
        acts_free(ws->shared);
    free(ws->shared);
    free(ws->x_final);
    free(ws->dx);
    free(ws->dxn);
    free(ws->dh1);
    free(ws->t_lora);
    free(ws->scores2);
    free(ws->lens);
    memset(ws, 0, sizeof *ws);
}

/* Allocates a's buffers for n tokens: x_in when with_input, the rest when
 * with_rest. Adds the bytes to *bytes. */
static int acts_alloc(struct btrm_llama_train_acts *a, const btrm_llama_train *lt, int i,
                      size_t n, int with_input, int with_rest, size_t *bytes)
{
    const btrm_llama_hparams *hp = &lt->hp;
    size_t dim = (size_t)hp->dim, hidden = (size_t)hp->hidden_dim;
    size_t q_dim = (size_t)hp->n_heads * (size_t)hp->head_dim;
    size_t kv_dim = (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    int rc = 0;
    if (with_input) {
        if ((rc = BTRM_MALLOC(a->x_in, n * dim)))
            return rc;
        *bytes += n * dim * sizeof(float);
    }
    if (!with_rest)
        return 0;
    if ((rc = BTRM_MALLOC(a->q, n * q_dim)) || (rc = BTRM_MALLOC(a->k, n * kv_dim)) ||
        (rc = BTRM_MALLOC(a->v, n * kv_dim)) || (rc = BTRM_MALLOC(a->att, n * q_dim)) ||
        (rc = BTRM_MALLOC(a->x_mid, n * dim)) || (rc = BTRM_MALLOC(a->h1, n * hidden)) ||
        (rc = BTRM_MALLOC(a->h3, n * hidden)))
        return rc;
    *bytes += n * (2 * q_dim + 2 * kv_dim + dim + 2 * hidden) * sizeof(float);
    /* recompute's shared set (i < 0) serves every block: an adapter buffer for
     * each projection that any block adapts */
    for (int p = 0; p < BTRM_N_PROJ; p++) {
        int adapted = lt->spec.type == BTRM_FT_LORA &&
                      (i >= 0 ? has_slot(lt, i, p) : !!(lt->spec.targets & BTRM_LORA_TARGET(p)));
        if (!adapted)
            continue;
        if ((rc = BTRM_MALLOC(a->u[p], n * (size_t)lt->spec.rank)))
            return rc;
        *bytes += n * (size_t)lt->spec.rank * sizeof(float);
    }
    return 0;
}

int btrm_llama_train_ws_init(btrm_llama_train_ws *ws, const btrm_llama_train *lt,
                             int max_tokens, int max_seq, int recompute, int precision)
{
    memset(ws, 0, sizeof *ws);
    int rc = btrm_llama_ws_init(&ws->base, &lt->hp, lt->w, max_tokens, max_seq,
                                BTRM_KERNEL_DEQUANT);
    if (rc)
        return rc;
    /* a precision btrm_gemm cannot run fails here, not in the middle of a step */
    float one = 1.0f, out = 0.0f;
    if ((rc = btrm_gemm(precision, 0, 0, 1, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &out, 1))) {
        btrm_llama_ws_free(&ws->base);
        return rc;
    }
    const btrm_llama_hparams *hp = &lt->hp;
    ws->lt = lt;
    ws->max_tokens = max_tokens;
    ws->max_seq = max_seq;
    ws->recompute = !!recompute;
    ws->precision = precision;
    ws->n_train = hp->n_layers - lt->first_layer;
    size_t n = (size_t)max_tokens, dim = (size_t)hp->dim, hidden = (size_t)hp->hidden_dim;
    size_t q_dim = (size_t)hp->n_heads * (size_t)hp->head_dim;
    size_t kv_dim = (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    size_t rank = lt->spec.type == BTRM_FT_LORA ? (size_t)lt->spec.rank : 1;
    size_t att_rows = (size_t)(max_seq < ATT_ROWS ? max_seq : ATT_ROWS);
    /* llama.c's buffers: x, xb, q, att, k, v, hb, hb2, scores, wbuf */
    size_t max_cols = dim > hidden ? dim : hidden;
    max_cols = max_cols > q_dim ? max_cols : q_dim;
    size_t bytes = (n * (2 * dim + 2 * q_dim + 2 * kv_dim + 2 * hidden) +
                    att_rows * (size_t)max_seq + (size_t)ws->base.wbuf_rows * max_cols) *
                   sizeof(float);
    if ((rc = BTRM_CALLOC(ws->acts, ws->n_train)))
        goto fail;
    for (int i = 0; i < ws->n_train; i++)
        if ((rc = acts_alloc(&ws->acts[i], lt, i, n, 1, !ws->recompute, &bytes)))
            goto fail;
    if (ws->recompute && ((rc = BTRM_CALLOC(ws->shared, 1)) ||
                          (rc = acts_alloc(ws->shared, lt, -1, n, 0, 1, &bytes))))
        goto fail;
    if ((rc = BTRM_MALLOC(ws->x_final, n * dim)) || (rc = BTRM_MALLOC(ws->dx, n * dim)) ||
        (rc = BTRM_MALLOC(ws->dxn, n * dim)) || (rc = BTRM_MALLOC(ws->dh1, n * hidden)) ||
        (rc = BTRM_MALLOC(ws->t_lora, n * rank)) ||
        (rc = BTRM_MALLOC(ws->scores2, att_rows * (size_t)max_seq)) ||
        (rc = BTRM_MALLOC(ws->lens, n)))
        goto fail;
    bytes += n * (3 * dim + hidden + rank) * sizeof(float) + att_rows * (size_t)max_seq * sizeof(float);
    ws->bytes = bytes;
    return 0;
fail:
    btrm_llama_train_ws_free(ws);
    return btrm_error_wrap(rc, "training buffers for %d tokens", max_tokens);
}

/* ------------------------------------------------------------------------ */
/* Linear layers: a frozen base weight (any type), a float32 master (top_k),
 * a LoRA adapter on either */

typedef struct lin {
    const btrm_llama_matrix *base; /* used when w is NULL */
    const float *w;                /* top_k master [out, in] */
    float *dw;
    const float *a, *b;            /* LoRA A [r, in], B [out, r] */
    float *da, *db;
    float *u;                      /* [N, r] x A^T, kept from the forward */
    int out, in;
} lin;

static int gemm(const btrm_llama_train_ws *ws, int ta, int tb, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    return btrm_gemm(ws->precision, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Projection p of trainable block i (i < 0: a frozen block l) with views
 * into params and grads (grads may be NULL in the forward). */
static lin get_lin(const btrm_llama_train_ws *ws, int l, int p, const float *params, float *grads,
                   const struct btrm_llama_train_acts *acts)
{
    const btrm_llama_train *lt = ws->lt;
    lin L;
    memset(&L, 0, sizeof L);
    proj_shape(&lt->hp, p, &L.out, &L.in);
    L.base = proj_matrix(&lt->w->layers[l], p);
    int i = l - lt->first_layer;
    if (i < 0)
        return L;
    int ta = lt->slot[i * N_SLOTS + p], tb = lt->slot[i * N_SLOTS + SLOT_B + p];
    if (ta >= 0 && lt->spec.type == BTRM_FT_TOP_K) {
        L.w = params + lt->tensors[ta].offset;
        L.dw = grads ? grads + lt->tensors[ta].offset : NULL;
    } else if (ta >= 0) {
        L.a = params + lt->tensors[ta].offset;
        L.b = params + lt->tensors[tb].offset;
        L.da = grads ? grads + lt->tensors[ta].offset : NULL;
        L.db = grads ? grads + lt->tensors[tb].offset : NULL;
        L.u = acts->u[p];
    }
    return L;
}

/* u[N, r] = x[N, in] A^T, kept for the backward */
static int lora_u(const btrm_llama_train_ws *ws, const lin *L, const float *x, int N)
{
    int r = ws->lt->spec.rank;
    return gemm(ws, 0, 1, N, r, L->in, 1.0f, x, L->in, L->a, L->in, 0.0f, L->u, r);
}

/* The weight W [out, in] of L (the top_k master, else the base weight):
 * y[N, out] = x[N, in] W^T + beta y, or when transposed y[N, in] =
 * x[N, out] W + beta y. A float32 weight is one product; another type is
 * dequantised a block of rows at a time, as llama.c does. */
static int weight_product(const btrm_llama_train_ws *ws, const lin *L, int transposed,
                          const float *x, int N, float *y, float beta)
{
    const btrm_llama_ws *b = &ws->base;
    const float *w32 = L->w ? L->w : L->base->type == BTRM_Q_F32 ? L->base->data : NULL;
    float *wbuf = b->wbuf; /* float32: the forward's GEMM input precision */
    int block = w32 ? L->out : b->wbuf_rows, rc = 0;
    for (int r0 = 0; !rc && r0 < L->out; r0 += block) {
        int nr = L->out - r0 < block ? L->out - r0 : block;
        const float *rows = w32 ? w32 + (size_t)r0 * (size_t)L->in : wbuf;
        for (int r = 0; !w32 && r < nr; r++)
            btrm_llama_dequant_row(L->base, r0 + r, wbuf + (size_t)r * (size_t)L->in);
        if (!transposed) /* y[:, r0:r0+nr] = x rows^T + beta y */
            rc = gemm(ws, 0, 1, N, nr, L->in, 1.0f, x, L->in, rows, L->in, beta, y + r0, L->out);
        else /* y += x[:, r0:r0+nr] rows */
            rc = gemm(ws, 0, 0, N, L->in, nr, 1.0f, x + r0, L->out, rows, L->in,
                      r0 ? 1.0f : beta, y, L->in);
    }
    return rc;
}

/* y[N, out] = x[N, in] W'^T + beta y, W' = W + s B A; keeps u = x A^T */
static int lin_forward(const btrm_llama_train_ws *ws, const lin *L, const float *x, int N,
                       float *y, float beta)
{
    int rc = weight_product(ws, L, 0, x, N, y, beta);
    if (!rc && L->a) {
        /* u[N, r] = x A^T;  y += s u B^T */
        int r = ws->lt->spec.rank;
        rc = lora_u(ws, L, x, N);
        if (!rc)
            rc = gemm(ws, 0, 1, N, L->out, r, ws->lt->lora_scale, L->u, r, L->b, r, 1.0f, y,
                      L->out);
    }
    return rc;
}

/* Given dy[N, out] for y = x W'^T: dW += dy^T x (top_k); dB += s dy^T u,
 * dA += s (dy B)^T x (LoRA); and, when dx is not NULL, dx[N, in] =
 * dy W' + beta dx (W' = W + s B A, never formed: dy W + s (dy B) A). */
static int lin_backward(btrm_llama_train_ws *ws, const lin *L, const float *x, int N,
                        const float *dy, float *dx, float beta)
{
    int rc = 0;
    int r = ws->lt->spec.rank;
    float s = ws->lt->lora_scale;
    if (L->dw) /* dW[out, in] += dy^T x */
        rc = gemm(ws, 1, 0, L->out, L->in, N, 1.0f, dy, L->out, x, L->in, 1.0f, L->dw, L->in);
    if (!rc && L->a) {
        /* dB[out, r] += s dy^T u;  t[N, r] = dy B;  dA[r, in] += s t^T x */
        rc = gemm(ws, 1, 0, L->out, r, N, s, dy, L->out, L->u, r, 1.0f, L->db, r);
        if (!rc)
            rc = gemm(ws, 0, 0, N, r, L->out, 1.0f, dy, L->out, L->b, r, 0.0f, ws->t_lora, r);
        if (!rc)
            rc = gemm(ws, 1, 0, r, L->in, N, s, ws->t_lora, r, x, L->in, 1.0f, L->da, L->in);
    }
    if (rc || !dx)
        return rc;
    rc = weight_product(ws, L, 1, dy, N, dx, beta);
    if (!rc && L->a) /* dx += s t A */
        rc = gemm(ws, 0, 0, N, L->in, r, s, ws->t_lora, r, L->a, L->in, 1.0f, dx, L->in);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Forward */

/* g[n] = silu(h1) h3, llama.c's expression */
static void swiglu(float *g, const float *h1, const float *h3, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        float z = h1[j];
        g[j] = z / (1.0f + expf(-z)) * h3[j];
    }
}

/* The norm weights of block l (params when trainable) */
static const float *norm_weight(const btrm_llama_train *lt, int l, int which, const float *params)
{
    int i = l - lt->first_layer;
    int s = which == BTRM_NORM_ATTN ? SLOT_ATTN_NORM : SLOT_FFN_NORM;
    if (i >= 0 && lt->slot[i * N_SLOTS + s] >= 0)
        return params + lt->tensors[lt->slot[i * N_SLOTS + s]].offset;
    return which == BTRM_NORM_ATTN ? lt->w->layers[l].attn_norm : lt->w->layers[l].ffn_norm;
}

static float *norm_grad(const btrm_llama_train *lt, int l, int which, float *grads)
{
    int i = l - lt->first_layer;
    int s = which == BTRM_NORM_ATTN ? SLOT_ATTN_NORM : SLOT_FFN_NORM;
    int t = i >= 0 ? lt->slot[i * N_SLOTS + s] : -1;
    return t >= 0 ? grads + lt->tensors[t].offset : NULL;
}

/* Block l on a->x_in: a->q, k, v, att, x_mid, h1, h3 (and the adapters'
 * u); then, when x_out is not NULL, x_out = x_mid + SwiGLU(h1, h3) W2'^T
 * (x_out NULL, recompute: only down's adapter input u = SwiGLU(h1, h3) A^T).
 * a->x_mid may be a->x_in and x_out (in place, as llama.c does for the
 * frozen blocks). Scratch: ws->base.xb (normalised input), ws->base.hb. */
static int block_forward(btrm_llama_train_ws *ws, int l, const float *params,
                         const struct btrm_llama_train_acts *a, float *x_out)
{
    const btrm_llama_train *lt = ws->lt;
    const btrm_llama_hparams *hp = &lt->hp;
    btrm_llama_ws *b = &ws->base;
    const int N = ws->n_tokens, dim = hp->dim, hd = hp->head_dim, hidden = hp->hidden_dim;
    const int q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;
    lin L[BTRM_N_PROJ];
    for (int p = 0; p < BTRM_N_PROJ; p++)
        L[p] = get_lin(ws, l, p, params, NULL, a);
    int rc = 0;
    btrm_llama_rmsnorm(b->xb, a->x_in, norm_weight(lt, l, BTRM_NORM_ATTN, params), N, dim,
                       hp->norm_eps);
    /* q[N, q_dim] = xn Wq'^T; k, v [N, kv_dim] */
    if ((rc = lin_forward(ws, &L[BTRM_PROJ_Q], b->xb, N, a->q, 0.0f)) ||
        (rc = lin_forward(ws, &L[BTRM_PROJ_K], b->xb, N, a->k, 0.0f)) ||
        (rc = lin_forward(ws, &L[BTRM_PROJ_V], b->xb, N, a->v, 0.0f)))
        return rc;
    for (int s = 0, off = 0; s < ws->n_seqs; off += ws->lens[s], s++) {
        btrm_llama_rope(b, hp, l, a->q + (size_t)off * q_dim, ws->lens[s], hp->n_heads, hd);
        btrm_llama_rope(b, hp, l, a->k + (size_t)off * kv_dim, ws->lens[s], hp->n_kv_heads, hd);
        if ((rc = btrm_llama_attention(b, hp, l, a->q + (size_t)off * q_dim,
                                       a->k + (size_t)off * kv_dim, a->v + (size_t)off * kv_dim,
                                       a->att + (size_t)off * q_dim, ws->lens[s])))
            return rc;
    }
    /* x_mid = x_in + att Wo'^T */
    if (a->x_mid != a->x_in)
        memcpy(a->x_mid, a->x_in, (size_t)N * (size_t)dim * sizeof *a->x_mid);
    if ((rc = lin_forward(ws, &L[BTRM_PROJ_O], a->att, N, a->x_mid, 1.0f)))
        return rc;
    btrm_llama_rmsnorm(b->xb, a->x_mid, norm_weight(lt, l, BTRM_NORM_FFN, params), N, dim,
                       hp->norm_eps);
    /* h1 = xn W1'^T (gate), h3 = xn W3'^T (up) */
    if ((rc = lin_forward(ws, &L[BTRM_PROJ_GATE], b->xb, N, a->h1, 0.0f)) ||
        (rc = lin_forward(ws, &L[BTRM_PROJ_UP], b->xb, N, a->h3, 0.0f)))
        return rc;
    if (!x_out && !L[BTRM_PROJ_DOWN].a)
        return 0;
    /* g = silu(h1) * h3 (llama.c's expression), x_out = x_mid + g W2'^T */
    swiglu(b->hb, a->h1, a->h3, (size_t)N * (size_t)hidden);
    if (!x_out)
        return lora_u(ws, &L[BTRM_PROJ_DOWN], b->hb, N);
    if (x_out != a->x_mid)
        memcpy(x_out, a->x_mid, (size_t)N * (size_t)dim * sizeof *x_out);
    return lin_forward(ws, &L[BTRM_PROJ_DOWN], b->hb, N, x_out, 1.0f);
}

/* Block i's saved buffers, or with recompute the shared set with its input */
static struct btrm_llama_train_acts block_acts(const btrm_llama_train_ws *ws, int i)
{
    if (!ws->recompute)
        return ws->acts[i];
    struct btrm_llama_train_acts a = *ws->shared;
    a.x_in = ws->acts[i].x_in;
    return a;
}

int btrm_llama_train_forward(btrm_llama_train_ws *ws, const float *params,
                             const int32_t *ids, const int *lens, int n_seqs, int pool,
                             float *pooled)
{
    const btrm_llama_train *lt = ws->lt;
    const btrm_llama_hparams *hp = &lt->hp;
    btrm_llama_ws *b = &ws->base;
    ws->have_forward = 0;
    if (pool != BTRM_POOL_LAST && pool != BTRM_POOL_MEAN)
        return btrm_error_set(BTRM_EUSAGE, "pooling %d: want last or mean", pool);
    int N = 0;
    int rc = btrm_llama_batch_check(hp, b, ids, lens, n_seqs, &N);
    if (rc)
        return rc;
    memcpy(ws->lens, lens, (size_t)n_seqs * sizeof *lens);
    ws->n_seqs = n_seqs;
    ws->n_tokens = N;
    ws->pool = pool;
    const int dim = hp->dim;
    if (N > 0) {
        /* x[N, dim] = token embeddings; the frozen blocks in place in base.x */
        float *x0 = lt->first_layer > 0 ? b->x : ws->acts[0].x_in;
        for (int t = 0; t < N; t++)
            btrm_llama_dequant_row(&lt->w->token_embd, ids[t], x0 + (size_t)t * dim);
        struct btrm_llama_train_acts frozen = { .x_in = b->x, .q = b->q, .k = b->k, .v = b->v,
                                                .att = b->att, .x_mid = b->x, .h1 = b->hb,
                                                .h3 = b->hb2 };
        for (int l = 0; !rc && l < lt->first_layer; l++)
            rc = block_forward(ws, l, params, &frozen, b->x);
        if (!rc && lt->first_layer > 0)
            memcpy(ws->acts[0].x_in, b->x, (size_t)N * (size_t)dim * sizeof *b->x);
        for (int i = 0; !rc && i < ws->n_train; i++) {
            struct btrm_llama_train_acts a = block_acts(ws, i);
            float *x_out = i + 1 < ws->n_train ? ws->acts[i + 1].x_in : ws->x_final;
            rc = block_forward(ws, lt->first_layer + i, params, &a, x_out);
        }
        if (rc)
            return rc;
    }
    /* h = RMSNorm(x) * output_norm, pooled per sequence (as llama.c) */
    const float *gout = lt->output_norm >= 0 ? params + lt->tensors[lt->output_norm].offset
                                             : lt->w->output_norm;
    btrm_llama_pool(hp, b, ws->x_final, gout, lens, n_seqs,
                    pool == BTRM_POOL_LAST ? pooled : NULL, pool == BTRM_POOL_MEAN ? pooled : NULL);
    double fwd, bwd;
    btrm_llama_train_flops(lt, lens, n_seqs, ws->recompute, &fwd, &bwd);
    ws->flops_forward += fwd;
    ws->have_forward = 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Backward */

/* For y = x r g (r = 1/sqrt(mean(x^2) + eps)) over rows of width dim:
 * dx += r (dy g) - x r^3 mean(dy g x) and, when acc is not NULL,
 * acc[dim] += sum over the rows of dy x r (the norm weight's gradient, in
 * double). dy's row stride is dy_ld (0: the same row for every row), each
 * row times dy_scale. */
static void rmsnorm_backward(const float *x, const float *g, const float *dy, size_t dy_ld,
                             float dy_scale, int rows, int dim, float eps, float *dx,
                             double *acc)
{
    for (int t = 0; t < rows; t++) {
        const float *xr = x + (size_t)t * dim, *dyr = dy + (size_t)t * dy_ld;
        float *dxr = dx + (size_t)t * dim;
        double ss = 0.0, dot = 0.0;
        for (int i = 0; i < dim; i++) {
            ss += (double)xr[i] * xr[i];
            dot += (double)dyr[i] * dy_scale * g[i] * xr[i];
        }
        double r = 1.0 / sqrt(ss / dim + (double)eps);
        double c = r * r * r * dot / dim;
        for (int i = 0; i < dim; i++) {
            double dyi = (double)dyr[i] * dy_scale;
            dxr[i] += (float)(r * dyi * g[i] - c * xr[i]);
            if (acc)
                acc[i] += dyi * xr[i] * r;
        }
    }
}

/* grad[dim] += acc[dim] (a norm weight's gradient summed in double) */
static void add_acc(float *grad, const double *acc, int dim)
{
    for (int i = 0; i < dim; i++)
        grad[i] += (float)acc[i];
}

/* The block's norm backward: dx += ..., the norm's gradient when it trains */
static void norm_backward(btrm_llama_train_ws *ws, const float *x, const float *g,
                          const float *dy, float *dgamma)
{
    const btrm_llama_hparams *hp = &ws->lt->hp;
    double *acc = dgamma ? ws->base.pool : NULL;
    if (acc)
        memset(acc, 0, (size_t)hp->dim * sizeof *acc);
    rmsnorm_backward(x, g, dy, (size_t)hp->dim, 1.0f, ws->n_tokens, hp->dim, hp->norm_eps,
                     ws->dx, acc);
    if (acc)
        add_acc(dgamma, acc, hp->dim);
}

/* RoPE's transpose, in place on dx[T, n_heads*hd]: rotation by -angle */
static void rope_backward(const btrm_llama_ws *b, float *dx, int T, int n_heads, int hd)
{
    size_t half = (size_t)(b->rope_half ? b->rope_half : 1);
    for (int t = 0; t < T; t++) {
        const float *c = b->rope_cos + (size_t)t * half, *s = b->rope_sin + (size_t)t * half;
        float *row = dx + (size_t)t * (size_t)n_heads * (size_t)hd;
        for (int h = 0; h < n_heads; h++) {
            float *v = row + (size_t)h * (size_t)hd;
            for (int j = 0; j < b->rope_half; j++) {
                float d0 = v[2 * j], d1 = v[2 * j + 1];
                v[2 * j] = d0 * c[j] + d1 * s[j];
                v[2 * j + 1] = -d0 * s[j] + d1 * c[j];
            }
        }
    }
}

/* Causal attention backward of one sequence of T tokens: given q, k, v
 * (q, k after RoPE) and dO = datt [T, q_dim], writes dq [T, q_dim] and adds
 * to dk, dv [T, kv_dim]. P is recomputed block by block (S = scale q k^T,
 * softmax as the forward), then per block of query rows:
 *   dV += P^T dO;  dP = dO V^T;  dS = P (dP - rowsum(P dP));
 *   dQ = scale dS K;  dK += scale dS^T Q. */
static int attention_backward(btrm_llama_train_ws *ws, const float *q, const float *k,
                              const float *v, const float *datt, float *dq, float *dk, float *dv,
                              int T)
{
    const btrm_llama_hparams *hp = &ws->lt->hp;
    int hd = hp->head_dim, q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;
    int group = hp->n_heads / hp->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    float *S = ws->base.scores, *dP = ws->scores2;
    int rc = 0;
    for (int h = 0; h < hp->n_heads && !rc; h++) {
        int g = h / group;
        size_t qo = (size_t)h * hd, ko = (size_t)g * hd;
        for (int i0 = 0; i0 < T && !rc; i0 += ATT_ROWS) {
            int nb = T - i0 < ATT_ROWS ? T - i0 : ATT_ROWS;
            int keys = i0 + nb;
            const float *qb = q + (size_t)i0 * q_dim + qo, *dob = datt + (size_t)i0 * q_dim + qo;
            /* S[nb, keys] = scale q_h[i0:i0+nb] k_g[0:keys]^T, then P = softmax */
            rc = gemm(ws, 0, 1, nb, keys, hd, scale, qb, q_dim, k + ko, kv_dim, 0.0f, S, keys);
            if (rc)
                break;
            btrm_llama_softmax_causal(S, nb, keys, i0);
            /* dv_g[0:keys] += P^T dO_h;  dP[nb, keys] = dO_h v_g^T */
            rc = gemm(ws, 1, 0, keys, hd, nb, 1.0f, S, keys, dob, q_dim, 1.0f, dv + ko, kv_dim);
            if (!rc)
                rc = gemm(ws, 0, 1, nb, keys, hd, 1.0f, dob, q_dim, v + ko, kv_dim, 0.0f, dP,
                          keys);
            if (rc)
                break;
            /* dS = P (dP - sum_j P dP), in place in dP */
            for (int r = 0; r < nb; r++) {
                const float *pr = S + (size_t)r * keys;
                float *dr = dP + (size_t)r * keys;
                int n_keep = i0 + r + 1;
                double dot = 0.0;
                for (int j = 0; j < n_keep; j++)
                    dot += (double)pr[j] * dr[j];
                for (int j = 0; j < n_keep; j++)
                    dr[j] = pr[j] * (float)((double)dr[j] - dot);
                for (int j = n_keep; j < keys; j++)
                    dr[j] = 0.0f;
            }
            /* dq_h[i0:i0+nb] = scale dS k_g[0:keys];  dk_g[0:keys] += scale dS^T q_h */
            rc = gemm(ws, 0, 0, nb, hd, keys, scale, dP, keys, k + ko, kv_dim, 0.0f,
                      dq + (size_t)i0 * q_dim + qo, q_dim);
            if (!rc)
                rc = gemm(ws, 1, 0, keys, hd, nb, scale, dP, keys, qb, q_dim, 1.0f, dk + ko,
                          kv_dim);
        }
    }
    return rc;
}

/* Trainable block i: on entry ws->dx = dL/d(block output), on exit
 * dL/d(block input) (when a block below needs it); adds the block's
 * parameter gradients. Scratch: base.xb (normalised inputs), base.hb (g),
 * base.hb2 (dg, then dh3), dh1, dxn, base.att (datt), base.q/k/v (dq, dk,
 * dv). */
static int block_backward(btrm_llama_train_ws *ws, int i, const float *params, float *grads)
{
    const btrm_llama_train *lt = ws->lt;
    const btrm_llama_hparams *hp = &lt->hp;
    btrm_llama_ws *b = &ws->base;
    const int l = lt->first_layer + i, N = ws->n_tokens;
    const int dim = hp->dim, hd = hp->head_dim, hidden = hp->hidden_dim;
    const int q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;
    struct btrm_llama_train_acts a = block_acts(ws, i);
    int rc = 0;
    if (ws->recompute && (rc = block_forward(ws, l, params, &a, NULL)))
        return rc;
    lin L[BTRM_N_PROJ];
    for (int p = 0; p < BTRM_N_PROJ; p++)
        L[p] = get_lin(ws, l, p, params, grads, &a);
    needs nd = block_needs(lt, i);

    /* --- SwiGLU feed-forward: x_out = x_mid + g W2'^T, g = silu(h1) h3 */
    const float *g_ffn = norm_weight(lt, l, BTRM_NORM_FFN, params);
    btrm_llama_rmsnorm(b->xb, a.x_mid, g_ffn, N, dim, hp->norm_eps);
    size_t nh = (size_t)N * (size_t)hidden;
    swiglu(b->hb, a.h1, a.h3, nh);
    /* dg[N, hidden] = dx W2' */
    if ((rc = lin_backward(ws, &L[BTRM_PROJ_DOWN], b->hb, N, ws->dx, nd.dg ? b->hb2 : NULL,
                           0.0f)))
        return rc;
    if (!nd.dg)
        return 0;
    /* dh1 = dg h3 silu'(h1), silu'(z) = sig(z) (1 + z (1 - sig(z))); dh3 = dg silu(h1) */
    for (size_t j = 0; j < nh; j++) {
        float z = a.h1[j], sg = 1.0f / (1.0f + expf(-z)), dg = b->hb2[j];
        ws->dh1[j] = dg * a.h3[j] * sg * (1.0f + z * (1.0f - sg));
        b->hb2[j] = dg * z * sg;
    }
    /* dxn[N, dim] = dh1 W1' + dh3 W3' */
    float *dxn_ffn = nd.ffn_in ? ws->dxn : NULL;
    if ((rc = lin_backward(ws, &L[BTRM_PROJ_GATE], b->xb, N, ws->dh1, dxn_ffn, 0.0f)) ||
        (rc = lin_backward(ws, &L[BTRM_PROJ_UP], b->xb, N, b->hb2, dxn_ffn, 1.0f)))
        return rc;
    if (nd.ffn_in)
        norm_backward(ws, a.x_mid, g_ffn, ws->dxn, norm_grad(lt, l, BTRM_NORM_FFN, grads));
    if (!nd.attn)
        return 0;

    /* --- attention: x_mid = x_in + att Wo'^T; datt[N, q_dim] = dx Wo' */
    float *datt = b->att, *dq = b->q, *dk = b->k, *dv = b->v;
    if ((rc = lin_backward(ws, &L[BTRM_PROJ_O], a.att, N, ws->dx, datt, 0.0f)))
        return rc;
    memset(dk, 0, (size_t)N * (size_t)kv_dim * sizeof *dk);
    memset(dv, 0, (size_t)N * (size_t)kv_dim * sizeof *dv);
    for (int s = 0, off = 0; s < ws->n_seqs && !rc; off += ws->lens[s], s++) {
        size_t qo = (size_t)off * q_dim, ko = (size_t)off * kv_dim;
        rc = attention_backward(ws, a.q + qo, a.k + ko, a.v + ko, datt + qo, dq + qo, dk + ko,
                                dv + ko, ws->lens[s]);
        rope_backward(b, dq + qo, ws->lens[s], hp->n_heads, hd);
        rope_backward(b, dk + ko, ws->lens[s], hp->n_kv_heads, hd);
    }
    if (rc)
        return rc;
    /* dxn = dq Wq' + dk Wk' + dv Wv' (when needed); the q, k, v parameters */
    const float *g_attn = norm_weight(lt, l, BTRM_NORM_ATTN, params);
    btrm_llama_rmsnorm(b->xb, a.x_in, g_attn, N, dim, hp->norm_eps);
    float *dxn = nd.qkv_in ? ws->dxn : NULL;
    if ((rc = lin_backward(ws, &L[BTRM_PROJ_Q], b->xb, N, dq, dxn, 0.0f)) ||
        (rc = lin_backward(ws, &L[BTRM_PROJ_K], b->xb, N, dk, dxn, 1.0f)) ||
        (rc = lin_backward(ws, &L[BTRM_PROJ_V], b->xb, N, dv, dxn, 1.0f)))
        return rc;
    if (dxn)
        norm_backward(ws, a.x_in, g_attn, dxn, norm_grad(lt, l, BTRM_NORM_ATTN, grads));
    return 0;
}

int btrm_llama_train_backward(btrm_llama_train_ws *ws, const float *params,
                              const float *dpooled, float *grads)
{
    const btrm_llama_train *lt = ws->lt;
    const btrm_llama_hparams *hp = &lt->hp;
    if (!ws->have_forward)
        return btrm_error_set(BTRM_EUSAGE, "llama backward without a forward");
    const int N = ws->n_tokens, dim = hp->dim;
    if (N == 0)
        return 0;
    /* the final norm: dx[t] for the rows the pooling read */
    const float *gout = lt->output_norm >= 0 ? params + lt->tensors[lt->output_norm].offset
                                             : lt->w->output_norm;
    float *dgout = lt->output_norm >= 0 ? grads + lt->tensors[lt->output_norm].offset : NULL;
    memset(ws->dx, 0, (size_t)N * (size_t)dim * sizeof *ws->dx);
    double *acc = dgout ? ws->base.pool : NULL; /* summed over every sequence */
    if (acc)
        memset(acc, 0, (size_t)dim * sizeof *acc);
    for (int s = 0, off = 0; s < ws->n_seqs; off += ws->lens[s], s++) {
        /* last: the last row gets dpooled; mean: every row gets dpooled / len */
        int len = ws->lens[s], mean = ws->pool == BTRM_POOL_MEAN;
        size_t t0 = (size_t)(mean ? off : off + len - 1) * (size_t)dim;
        rmsnorm_backward(ws->x_final + t0, gout, dpooled + (size_t)s * dim, 0,
                         mean ? 1.0f / (float)len : 1.0f, mean ? len : 1, dim, hp->norm_eps,
                         ws->dx + t0, acc);
    }
    if (acc)
        add_acc(dgout, acc, dim);
    int rc = 0;
    for (int i = ws->n_train - 1; i >= 0 && !rc; i--)
        rc = block_backward(ws, i, params, grads);
    if (rc)
        return rc;
    double fwd, bwd;
    btrm_llama_train_flops(lt, ws->lens, ws->n_seqs, ws->recompute, &fwd, &bwd);
    ws->flops_backward += bwd;
    return 0;
}
