/* llama_model.c: loading decoder models from GGUF and llama2.c files, the
 * backbone options, and the embedder (see llama_model.h). */
#include "llama_model.h"

#include "error.h"
#include "gemm.h"
#include "gguf.h"
#include "qgemm.h"
#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* Sequences per forward call at most (bounds the pooled-output buffers). */
#define EMBED_MAX_SEQS 256
#define OPTS_MAX_TOKENS_DEFAULT 512
#define OPTS_MAX_BATCH_TOKENS_DEFAULT 4096
#define LLAMA2C_HEADER_BYTES 28
#define LLAMA2C_MAGIC 0x616b3432 /* "ak42": llama2.c's newer (v1/v2) exports */

/* ------------------------------------------------------------------------ */
/* Memory the model owns (float32 copies) */

static int own_bytes(btrm_llama_model *m, size_t bytes, void **out);

static int own_alloc(btrm_llama_model *m, size_t n_floats, float **out)
{
    void *p = NULL;
    int rc = own_bytes(m, n_floats * sizeof(float), &p);
    if (rc)
        return btrm_error_wrap(rc, "%s: %zu MiB of float32 weights", m->path,
                               n_floats * 4 >> 20);
    *out = p;
    return 0;
}

static int own_bytes(btrm_llama_model *m, size_t bytes, void **out)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **p = realloc(m->owned, (size_t)cap * sizeof *p);
        if (!p)
            return btrm_error_set(BTRM_ENOMEM, "out of memory");
        m->owned = p;
        m->cap_owned = cap;
    }
    unsigned char *buf = NULL;
    int rc = BTRM_MALLOC(buf, bytes ? bytes : 1);
    if (rc)
        return rc;
    m->owned[m->n_owned++] = buf;
    m->owned_bytes += bytes;
    *out = buf;
    return 0;
}

/* mat -> a float32 copy (dequantize=1). */
static int to_f32(btrm_llama_model *m, btrm_llama_matrix *mat)
{
    if (mat->type == BTRM_Q_F32)
        return 0;
    float *buf = NULL;
    int rc = own_alloc(m, (size_t)mat->rows * (size_t)mat->cols, &buf);
    if (rc)
        return rc;
    for (int r = 0; r < mat->rows; r++)
        btrm_llama_dequant_row(mat, r, buf + (size_t)r * (size_t)mat->cols);
    mat->data = buf;
    mat->type = BTRM_Q_F32;
    return 0;
}

/* mat -> a bf16 copy (embed.precision: bf16), rounded to nearest even from
 * its exact float32 value (btrm_quant_dequant into bf16), one row at a time. */
static int to_bf16(btrm_llama_model *m, btrm_llama_matrix *mat)
{
    if (mat->type == BTRM_Q_BF16)
        return 0;
    size_t cols = (size_t)mat->cols, row_bytes = btrm_quant_row_bytes(mat->type, mat->cols);
    void *buf = NULL;
    int rc = own_bytes(m, (size_t)mat->rows * cols * sizeof(uint16_t), &buf);
    if (rc)
        return btrm_error_wrap(rc, "%s: %zu MiB of bf16 weights", m->path,
                               (size_t)mat->rows * cols * 2 >> 20);
    uint16_t *out = buf;
    for (int r = 0; r < mat->rows; r++)
        btrm_quant_dequant(mat->type, (const unsigned char *)mat->data + (size_t)r * row_bytes,
                           mat->cols, BTRM_PREC_BF16, out + (size_t)r * cols);
    mat->data = out;
    mat->type = BTRM_Q_BF16;
    return 0;
}

int btrm_llama_model_to_bf16(btrm_llama_model *m, int quantized_too)
{
    int rc = 0;
    for (int l = 0; !rc && l < m->hp.n_layers; l++) {
        btrm_llama_layer *L = &m->w.layers[l];
        btrm_llama_matrix *mats[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3 };
        for (int i = 0; i < 7 && !rc; i++) {
            int t = mats[i]->type;
            if (t == BTRM_Q_F32 || t == BTRM_Q_F16 || quantized_too)
                rc = to_bf16(m, mats[i]);
        }
    }
    m->dequantized = m->dequantized || quantized_too;
    return rc;
}

void btrm_llama_model_close(btrm_llama_model *m)
{
    if (!m)
        return;
    btrm_tok_free(m->tok);
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->w.layers);
    free(m->used);
    btrm_gguf_close(m->gguf);
    if (m->map)
        munmap(m->map, m->map_size);
    free(m);
}

static void note_type(btrm_llama_model *m, int type)
{
    char name[32];
    btrm_quant_name(type, name, sizeof name);
    char *p = m->weight_types;
    size_t len = strlen(name);
    for (const char *s = p; (s = strstr(s, name)); s += len)
        if ((s == p || s[-1] == '+') && (s[len] == '\0' || s[len] == '+'))
            return;
    size_t used = strlen(p);
    snprintf(p + used, sizeof m->weight_types - used, "%s%s", used ? "+" : "", name);
}

/* ------------------------------------------------------------------------ */
/* GGUF */

/* The architectures: what differs from Llama, by name (llama.h). Keys are
 * "<arch>.<name>" as llama.cpp's converter writes them; rope styles follow
 * llama.cpp's rope-type table (llama_model_rope_type). */
typedef struct arch_spec {
    const char *name;
    const char *summary;   /* for messages and docs */
    int rope_neox;         /* NeoX halves instead of adjacent pairs */
    int qkv_bias;          /* attn_{q,k,v}.bias required */
    int qk_norm;           /* attn_q_norm / attn_k_norm per head */
    int post_norms;        /* post_attention_norm, post_ffw_norm */
    int gemma;             /* embeddings * sqrt(dim), GELU-tanh, query scale */
    int fused;             /* attn_qkv and a [2 * ffn, dim] ffn_up (phi3) */
    int swa;               /* sliding window: 0 ignored, 1 every layer when set,
                            * n > 1 layers l % n < n - 1, window required */
} arch_spec;

static const arch_spec archs[] = {
    { "llama", "Llama 1/2/3, TinyLlama, Mistral, llama2.c models", 0, 0, 0, 0, 0, 0, 1 },
    { "qwen2", "Qwen2, Qwen2.5", 1, 1, 0, 0, 0, 0, 0 },
    { "qwen3", "Qwen3 (dense)", 1, 0, 1, 0, 0, 0, 0 },
    { "gemma2", "Gemma 2", 1, 0, 0, 1, 1, 0, 2 },
    { "gemma3", "Gemma 3 (text)", 1, 0, 1, 1, 1, 0, 6 },
    { "phi3", "Phi-3, Phi-3.5, Phi-4 (dense)", 1, 0, 0, 0, 0, 1, 1 },
};
#define N_ARCHS ((int)(sizeof archs / sizeof archs[0]))

void btrm_llama_arch_names(char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < N_ARCHS && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? ", " : "", archs[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* "<arch>.<name>" */
static const char *akey(const btrm_llama_model *m, const char *name)
{
    static _Thread_local char buf[160];
    snprintf(buf, sizeof buf, "%s.%s", m->arch, name);
    return buf;
}

static int gguf_int(const btrm_gguf *g, const char *key, int def, int *out)
{
    if (btrm_gguf_find_key(g, key) < 0) {
        if (def < 0)
            return btrm_error_set(BTRM_EDATA, "%s: missing metadata key %s", btrm_gguf_path(g),
                                  key);
        *out = def;
        return 0;
    }
    uint32_t v = 0;
    int rc = btrm_gguf_get_u32(g, key, &v);
    if (!rc && v > (1u << 30))
        rc = btrm_error_set(BTRM_EDATA, "%s: %s = %u is implausibly large", btrm_gguf_path(g),
                            key, v);
    if (!rc)
        *out = (int)v;
    return rc;
}

static int gguf_float(const btrm_gguf *g, const char *key, float def, float *out)
{
    if (btrm_gguf_find_key(g, key) < 0) {
        *out = def;
        return 0;
    }
    return btrm_gguf_get_f32(g, key, out);
}

/* Marks tensor t as used (every tensor of the file must be, see
 * check_all_used). */
static void mark_used(btrm_llama_model *m, const btrm_gguf_tensor *t)
{
    int n = btrm_gguf_n_tensors(m->gguf);
    for (int i = 0; i < n; i++)
        if (btrm_gguf_tensor_at(m->gguf, i) == t)
            m->used[i] = 1;
}

/* A matrix tensor [rows, cols] (GGUF ne = {cols, rows}). */
static int gguf_matrix(btrm_llama_model *m, const char *name, int rows, int cols,
                       btrm_llama_matrix *mat)
{
    uint64_t ne[2] = { (uint64_t)cols, (uint64_t)rows };
    const btrm_gguf_tensor *t = btrm_gguf_tensor_check(m->gguf, name, 2, ne);
    if (!t)
        return BTRM_EDATA;
    mark_used(m, t);
    mat->data = t->data;
    mat->type = t->type;
    mat->rows = rows;
    mat->cols = cols;
    note_type(m, t->type);
    return m->dequantized ? to_f32(m, mat) : 0;
}

/* A vector tensor [n] as float32 (converted once when stored otherwise);
 * *out NULL when optional and absent. */
static int gguf_vector(btrm_llama_model *m, const char *name, int n, int optional,
                       const float **out)
{
    *out = NULL;
    if (optional && !btrm_gguf_find_tensor(m->gguf, name))
        return 0;
    uint64_t ne[1] = { (uint64_t)n };
    const btrm_gguf_tensor *t = btrm_gguf_tensor_check(m->gguf, name, 1, ne);
    if (!t)
        return BTRM_EDATA;
    mark_used(m, t);
    if (t->type == BTRM_Q_F32) {
        *out = t->data;
        return 0;
    }
    btrm_llama_matrix row = { .data = t->data, .type = t->type, .rows = 1, .cols = n };
    float *buf = NULL;
    int rc = own_alloc(m, (size_t)n, &buf);
    if (rc)
        return rc;
    btrm_llama_dequant_row(&row, 0, buf);
    *out = buf;
    return 0;
}

/* Hyperparameters of the architecture a from the <arch>.* keys. */
static int gguf_hparams(btrm_llama_model *m, const arch_spec *a)
{
    const btrm_gguf *g = m->gguf;
    btrm_llama_hparams *hp = &m->hp;
    int experts = 0, rc;
    if ((rc = gguf_int(g, akey(m, "embedding_length"), -1, &hp->dim)) ||
        (rc = gguf_int(g, akey(m, "block_count"), -1, &hp->n_layers)) ||
        (rc = gguf_int(g, akey(m, "feed_forward_length"), -1, &hp->hidden_dim)) ||
        (rc = gguf_int(g, akey(m, "attention.head_count"), -1, &hp->n_heads)) ||
        (rc = gguf_int(g, akey(m, "attention.head_count_kv"), hp->n_heads, &hp->n_kv_heads)) ||
        (rc = gguf_int(g, akey(m, "context_length"), 2048, &hp->context)) ||
        (rc = gguf_int(g, akey(m, "expert_count"), 0, &experts)) ||
        (rc = gguf_float(g, akey(m, "attention.layer_norm_rms_epsilon"), 1e-5f, &hp->norm_eps)) ||
        (rc = gguf_float(g, akey(m, "rope.freq_base"), 10000.0f, &hp->rope_theta)))
        return rc;
    if (experts > 0)
        return btrm_error_set(BTRM_EDATA, "%s: a mixture-of-experts model (%s = %d) is not "
                              "supported", m->path, akey(m, "expert_count"), experts);
    if (hp->n_heads < 1 || hp->dim < 1)
        return btrm_error_set(BTRM_EDATA, "%s: %s %d and head_count %d must be positive",
                              m->path, akey(m, "embedding_length"), hp->dim, hp->n_heads);
    int key_len = 0, value_len = 0;
    if ((rc = gguf_int(g, akey(m, "attention.key_length"), hp->dim / hp->n_heads, &key_len)) ||
        (rc = gguf_int(g, akey(m, "attention.value_length"), key_len, &value_len)))
        return rc;
    if (key_len != value_len)
        return btrm_error_set(BTRM_EDATA, "%s: key length %d != value length %d is not "
                              "supported", m->path, key_len, value_len);
    hp->head_dim = key_len;
    if ((rc = gguf_int(g, akey(m, "rope.dimension_count"), hp->head_dim, &hp->rope_dim)))
        return rc;
    hp->rope_neox = a->rope_neox;

    /* rope scaling: none, or linear (gemma3: its global layers only) */
    float factor = 0.0f;
    if (btrm_gguf_find_key(g, akey(m, "rope.scaling.type")) >= 0) {
        const char *scaling = NULL;
        if ((rc = btrm_gguf_get_string(g, akey(m, "rope.scaling.type"), &scaling)))
            return rc;
        if (!strcmp(scaling, "linear")) {
            if ((rc = gguf_float(g, akey(m, "rope.scaling.factor"), 0.0f, &factor)))
                return rc;
        } else if (strcmp(scaling, "none")) {
            return btrm_error_set(BTRM_EDATA, "%s: rope scaling '%s' is not supported (btrm "
                                  "reads none and linear)", m->path, scaling);
        }
    } else if ((rc = gguf_float(g, akey(m, "rope.scale_linear"), 0.0f, &factor))) {
        return rc;
    }
    if (factor < 0.0f || (factor > 0.0f && !(factor < 1e6f)))
        return btrm_error_set(BTRM_EDATA, "%s: rope scaling factor %g", m->path, (double)factor);
    hp->rope_scale = factor > 0.0f ? 1.0f / factor : 1.0f;
    if (btrm_gguf_find_tensor(g, "rope_freqs.weight") ||
        btrm_gguf_find_tensor(g, "rope_factors_long.weight") ||
        btrm_gguf_find_tensor(g, "rope_factors_short.weight"))
        return btrm_error_set(BTRM_EDATA, "%s: per-frequency rope factors (rope_freqs / "
                              "rope_factors_long tensors: Llama 3.1 or LongRoPE scaling) are "
                              "not supported", m->path);

    /* sliding window */
    int window = 0;
    int has_window = btrm_gguf_find_key(g, akey(m, "attention.sliding_window")) >= 0;
    if (has_window && (rc = gguf_int(g, akey(m, "attention.sliding_window"), 0, &window)))
        return rc;
    if (a->swa == 2 && !has_window)
        window = 4096; /* llama.cpp's Gemma 2 default */
    if (a->swa == 6 && !has_window)
        return btrm_error_set(BTRM_EDATA, "%s: missing metadata key %s", m->path,
                              akey(m, "attention.sliding_window"));
    if (!strcmp(a->name, "phi3") && !has_window) {
        /* llama.cpp's defaults for files written before the key existed */
        if ((hp->n_layers == 32 || hp->n_layers == 40) && hp->context == 4096)
            window = 2047;
        else if (hp->n_layers == 32 && hp->n_kv_heads == 32 && hp->context == 131072)
            window = 262144;
        else if (hp->n_layers == 40 && hp->context == 131072)
            window = 131072;
        else
            return btrm_error_set(BTRM_EDATA, "%s: missing metadata key %s", m->path,
                                  akey(m, "attention.sliding_window"));
    }
    if (a->swa) {
        hp->sliding_window = window;
        hp->swa_period = a->swa > 1 ? a->swa : 0;
    }

    if (a->gemma) {
        hp->embed_scale = sqrtf((float)hp->dim);
        hp->ffn_act = BTRM_FFN_GELU_TANH;
        /* llama.cpp (after gemma_pytorch's config): the 27B models (46 or 62
         * layers) scale queries by 1/sqrt(dim / heads), the others by
         * 1/sqrt(key_length) */
        int big = a->swa == 2 ? hp->n_layers == 46 : hp->n_layers == 62;
        hp->attn_scale = 1.0f / sqrtf((float)(big ? hp->dim / hp->n_heads : hp->head_dim));
    }
    if (a->swa == 2) {
        if ((rc = gguf_float(g, akey(m, "attn_logit_softcapping"), 50.0f, &hp->attn_softcap)) ||
            (rc = gguf_float(g, akey(m, "final_logit_softcapping"), 30.0f, &hp->final_softcap)))
            return rc;
    }
    if (a->swa == 6) {
        /* local layers: base 10000, no scaling; global: the file's */
        hp->rope_theta_local = 10000.0f;
        hp->rope_scale_local = 1.0f;
    }
    return 0;
}

/* Tensors: token_embd, output_norm, output (absent: tied), and per block
 * the architecture's set (llama.h). */
static int gguf_tensors(btrm_llama_model *m, const arch_spec *a)
{
    const btrm_gguf *g = m->gguf;
    btrm_llama_hparams *hp = &m->hp;
    uint64_t any[2] = { (uint64_t)hp->dim, 0 };
    const btrm_gguf_tensor *te = btrm_gguf_tensor_check(g, "token_embd.weight", 2, any);
    if (!te)
        return BTRM_EDATA;
    if (te->ne[1] > (1u << 30))
        return btrm_error_set(BTRM_EDATA, "%s: vocabulary of %llu tokens", m->path,
                              (unsigned long long)te->ne[1]);
    hp->vocab_size = (int)te->ne[1];
    if (hp->n_layers > 4096)
        return btrm_error_set(BTRM_EDATA, "%s: %d layers", m->path, hp->n_layers);
    /* before any product of the widths below */
    int rc = btrm_llama_check_hparams(hp);
    if (rc)
        return btrm_error_wrap(rc, "%s", m->path);
    if ((rc = BTRM_CALLOC(m->w.layers, hp->n_layers)))
        return rc;
    if ((rc = gguf_matrix(m, "token_embd.weight", hp->vocab_size, hp->dim, &m->w.token_embd)) ||
        (rc = gguf_vector(m, "output_norm.weight", hp->dim, 0, &m->w.output_norm)))
        return rc;
    if (btrm_gguf_find_tensor(g, "output.weight"))
        rc = gguf_matrix(m, "output.weight", hp->vocab_size, hp->dim, &m->w.output);
    else
        m->w.output = m->w.token_embd; /* tied */
    if (rc)
        return rc;
    int hd = hp->head_dim, q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;
    for (int l = 0; l < hp->n_layers && !rc; l++) {
        btrm_llama_layer *L = &m->w.layers[l];
        char name[96];
#define TENSOR(s) (snprintf(name, sizeof name, "blk.%d." s, l), name)
        if ((rc = gguf_vector(m, TENSOR("attn_norm.weight"), hp->dim, 0, &L->attn_norm)) ||
            (rc = gguf_vector(m, TENSOR("ffn_norm.weight"), hp->dim, 0, &L->ffn_norm)) ||
            (rc = gguf_matrix(m, TENSOR("attn_output.weight"), hp->dim, q_dim, &L->wo)) ||
            (rc = gguf_matrix(m, TENSOR("ffn_down.weight"), hp->dim, hp->hidden_dim, &L->w2)))
            break;
        if (a->fused && btrm_gguf_find_tensor(g, TENSOR("attn_qkv.weight"))) {
            btrm_llama_matrix qkv;
            if ((rc = gguf_matrix(m, name, q_dim + 2 * kv_dim, hp->dim, &qkv)))
                break;
            L->wq = btrm_llama_rows(&qkv, 0, q_dim);
            L->wk = btrm_llama_rows(&qkv, q_dim, kv_dim);
            L->wv = btrm_llama_rows(&qkv, q_dim + kv_dim, kv_dim);
        } else if ((rc = gguf_matrix(m, TENSOR("attn_q.weight"), q_dim, hp->dim, &L->wq)) ||
                   (rc = gguf_matrix(m, TENSOR("attn_k.weight"), kv_dim, hp->dim, &L->wk)) ||
                   (rc = gguf_matrix(m, TENSOR("attn_v.weight"), kv_dim, hp->dim, &L->wv))) {
            break;
        }
        if (a->fused) { /* ffn_up = [gate; up], no ffn_gate */
            btrm_llama_matrix up;
            if ((rc = gguf_matrix(m, TENSOR("ffn_up.weight"), 2 * hp->hidden_dim, hp->dim, &up)))
                break;
            L->w1 = btrm_llama_rows(&up, 0, hp->hidden_dim);
            L->w3 = btrm_llama_rows(&up, hp->hidden_dim, hp->hidden_dim);
        } else if ((rc = gguf_matrix(m, TENSOR("ffn_gate.weight"), hp->hidden_dim, hp->dim,
                                     &L->w1)) ||
                   (rc = gguf_matrix(m, TENSOR("ffn_up.weight"), hp->hidden_dim, hp->dim,
                                     &L->w3))) {
            break;
        }
        /* q/k/v biases: required by qwen2, used wherever present */
        int opt = !a->qkv_bias;
        if ((rc = gguf_vector(m, TENSOR("attn_q.bias"), q_dim, opt, &L->bq)) ||
            (rc = gguf_vector(m, TENSOR("attn_k.bias"), kv_dim, opt, &L->bk)) ||
            (rc = gguf_vector(m, TENSOR("attn_v.bias"), kv_dim, opt, &L->bv)))
            break;
        if (a->qk_norm &&
            ((rc = gguf_vector(m, TENSOR("attn_q_norm.weight"), hd, 0, &L->q_norm)) ||
             (rc = gguf_vector(m, TENSOR("attn_k_norm.weight"), hd, 0, &L->k_norm))))
            break;
        if (a->post_norms &&
            ((rc = gguf_vector(m, TENSOR("post_attention_norm.weight"), hp->dim, 0,
                               &L->attn_post_norm)) ||
             (rc = gguf_vector(m, TENSOR("post_ffw_norm.weight"), hp->dim, 0,
                               &L->ffn_post_norm))))
            break;
#undef TENSOR
    }
    return rc;
}

/* Every tensor of the file must be one the forward uses: an unknown one
 * (a bias btrm does not add, an extra norm) would otherwise be ignored
 * silently and give wrong representations. */
static int check_all_used(btrm_llama_model *m)
{
    int n = btrm_gguf_n_tensors(m->gguf);
    for (int i = 0; i < n; i++)
        if (!m->used[i])
            return btrm_error_set(BTRM_EDATA, "%s: tensor %s is not part of btrm's '%s' "
                                  "forward pass (a variant btrm does not implement)", m->path,
                                  btrm_gguf_tensor_at(m->gguf, i)->name, m->arch);
    return 0;
}

static int open_gguf(btrm_llama_model *m)
{
    btrm_gguf *g = NULL;
    int rc = btrm_gguf_open(&g, m->path);
    if (rc)
        return rc;
    m->gguf = g;
    btrm_gguf_bytes(g, &m->mapped_bytes);
    const char *arch = NULL, *name = NULL;
    if ((rc = btrm_gguf_get_string(g, "general.architecture", &arch)))
        return rc;
    const arch_spec *a = NULL;
    for (int i = 0; i < N_ARCHS; i++)
        if (!strcmp(arch, archs[i].name))
            a = &archs[i];
    if (!a) {
        char known[128];
        btrm_llama_arch_names(known, sizeof known);
        return btrm_error_set(BTRM_EDATA, "%s: architecture '%s' is not supported (btrm runs "
                              "%s)", m->path, arch, known);
    }
    snprintf(m->arch, sizeof m->arch, "%s", a->name);
    if (btrm_gguf_find_key(g, "general.name") >= 0 &&
        !btrm_gguf_get_string(g, "general.name", &name))
        snprintf(m->name, sizeof m->name, "%s", name);
    if ((rc = BTRM_CALLOC(m->used, btrm_gguf_n_tensors(g) ? btrm_gguf_n_tensors(g) : 1)) ||
        (rc = gguf_hparams(m, a)) || (rc = gguf_tensors(m, a)) || (rc = check_all_used(m)))
        return rc;
    return btrm_gguf_tokenizer(g, &m->tok, &m->add_bos);
}

/* ------------------------------------------------------------------------ */
/* llama2.c legacy checkpoints */

static int find_tokenizer(btrm_llama_model *m, const char *given, int vocab)
{
    if (given && given[0]) {
        snprintf(m->tokenizer_path, sizeof m->tokenizer_path, "%s", given);
        return 0;
    }
    char dir_buf[BTRM_PATH_MAX];
    snprintf(dir_buf, sizeof dir_buf, "%s", m->path);
    const char *dir = dirname(dir_buf);
    char cand[2][BTRM_PATH_MAX + 32];
    snprintf(cand[0], sizeof cand[0], "%s/tokenizer.bin", dir);
    snprintf(cand[1], sizeof cand[1], "%s/tok%d.bin", dir, vocab);
    for (int i = 0; i < 2; i++)
        if (access(cand[i], R_OK) == 0) {
            if (strlen(cand[i]) >= sizeof m->tokenizer_path)
                break;
            memcpy(m->tokenizer_path, cand[i], strlen(cand[i]) + 1);
            return 0;
        }
    return btrm_error_set(BTRM_EUSAGE, "%s: no tokenizer given and neither %s nor %s exists "
                          "(give llama2c:MODEL.bin,tokenizer=PATH)", m->path, cand[0], cand[1]);
}

static int open_llama2c(btrm_llama_model *m, const char *tokenizer_path)
{
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return btrm_error_set(BTRM_EIO, "cannot open model file %s: %s", m->path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || st.st_size < LLAMA2C_HEADER_BYTES) {
        close(fd);
        return btrm_error_set(BTRM_EDATA, "%s: not a llama2.c checkpoint (%s)", m->path,
                              S_ISREG(st.st_mode) ? "shorter than its 28-byte header"
                                                  : "not a regular file");
    }
    m->map_size = (size_t)st.st_size;
    m->map = mmap(NULL, m->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m->map == MAP_FAILED) {
        m->map = NULL;
        return btrm_error_set(BTRM_EIO, "cannot map %s: %s", m->path, strerror(errno));
    }
    m->mapped_bytes = m->map_size;
    int32_t h[7];
    memcpy(h, m->map, sizeof h);
    if (h[0] == LLAMA2C_MAGIC)
        return btrm_error_set(BTRM_EDATA, "%s: a llama2.c version 1/2 export (magic \"ak42\"); "
                              "btrm reads the legacy format (export.py --version 0)", m->path);
    if (!memcmp(m->map, "GGUF", 4))
        return btrm_error_set(BTRM_EDATA, "%s: a GGUF file; use --backbone gguf:%s", m->path,
                              m->path);
    int dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv = h[4];
    /* a negative vocab_size means an untied classifier; INT32_MIN has no
     * positive counterpart and is refused below as vocab 0 */
    int vocab = h[5] == INT32_MIN ? 0 : h[5] < 0 ? -h[5] : h[5], seq_len = h[6];
    int shared = h[5] > 0;
    const int lim = 1 << 20;
    if (dim < 1 || dim > lim || hidden < 1 || hidden > lim || n_layers < 1 ||
        n_layers > 4096 || n_heads < 1 || n_heads > dim || n_kv < 1 || n_kv > n_heads ||
        vocab < 1 || vocab > lim || seq_len < 1 || seq_len > lim ||
        dim % n_heads)
        return btrm_error_set(BTRM_EDATA, "%s: not a llama2.c checkpoint: implausible header "
                              "(dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d, "
                              "seq_len %d)", m->path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    int head = dim / n_heads, kv_dim = n_kv * head;
    uint64_t L = (uint64_t)n_layers, D = (uint64_t)dim, H = (uint64_t)hidden;
    uint64_t floats = (uint64_t)vocab * D + L * D + L * D * D + 2 * L * D * (uint64_t)kv_dim +
                      L * D * D + L * D + 3 * L * D * H + D +
                      (uint64_t)seq_len * (uint64_t)head + (shared ? 0 : (uint64_t)vocab * D);
    uint64_t want = LLAMA2C_HEADER_BYTES + 4 * floats;
    if ((uint64_t)m->map_size != want)
        return btrm_error_set(BTRM_EDATA, "%s: %s llama2.c checkpoint: %zu bytes, the header "
                              "(dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, seq_len %d) "
                              "needs %llu", m->path,
                              (uint64_t)m->map_size < want ? "truncated" : "oversized",
                              m->map_size, dim, hidden, n_layers, n_heads, n_kv, h[5], seq_len,
                              (unsigned long long)want);
    btrm_llama_hparams *hp = &m->hp;
    *hp = (btrm_llama_hparams){ .dim = dim, .hidden_dim = hidden, .n_layers = n_layers,
                                .n_heads = n_heads, .n_kv_heads = n_kv, .head_dim = head,
                                .rope_dim = head, .vocab_size = vocab, .context = seq_len,
                                .norm_eps = 1e-5f, .rope_theta = 10000.0f };
    int rc = BTRM_CALLOC(m->w.layers, n_layers);
    if (rc)
        return rc;
    const float *p = (const float *)((const char *)m->map + LLAMA2C_HEADER_BYTES);
    const float *emb = p;
    p += (size_t)vocab * D;
    const float *rms_att = p;
    p += L * D;
    const float *wq = p;
    p += L * D * D;
    const float *wk = p;
    p += L * D * (uint64_t)kv_dim;
    const float *wv = p;
    p += L * D * (uint64_t)kv_dim;
    const float *wo = p;
    p += L * D * D;
    const float *rms_ffn = p;
    p += L * D;
    const float *w1 = p;
    p += L * D * H;
    const float *w2 = p;
    p += L * D * H;
    const float *w3 = p;
    p += L * D * H;
    m->w.output_norm = p;
    p += D;
    p += (size_t)seq_len * (size_t)head; /* freq_cis_real, freq_cis_imag: unused */
    m->w.token_embd = (btrm_llama_matrix){ emb, BTRM_Q_F32, vocab, dim };
    m->w.output = shared ? m->w.token_embd : (btrm_llama_matrix){ p, BTRM_Q_F32, vocab, dim };
    for (int l = 0; l < n_layers; l++) {
        btrm_llama_layer *Lw = &m->w.layers[l];
        size_t li = (size_t)l;
        Lw->attn_norm = rms_att + li * D;
        Lw->ffn_norm = rms_ffn + li * D;
        Lw->wq = (btrm_llama_matrix){ wq + li * D * D, BTRM_Q_F32, dim, dim };
        Lw->wk = (btrm_llama_matrix){ wk + li * D * kv_dim, BTRM_Q_F32, kv_dim, dim };
        Lw->wv = (btrm_llama_matrix){ wv + li * D * kv_dim, BTRM_Q_F32, kv_dim, dim };
        Lw->wo = (btrm_llama_matrix){ wo + li * D * D, BTRM_Q_F32, dim, dim };
        Lw->w1 = (btrm_llama_matrix){ w1 + li * D * H, BTRM_Q_F32, hidden, dim };
        Lw->w2 = (btrm_llama_matrix){ w2 + li * D * H, BTRM_Q_F32, dim, hidden };
        Lw->w3 = (btrm_llama_matrix){ w3 + li * D * H, BTRM_Q_F32, hidden, dim };
    }
    note_type(m, BTRM_Q_F32);
    snprintf(m->arch, sizeof m->arch, "llama");
    m->add_bos = 1;
    if ((rc = find_tokenizer(m, tokenizer_path, vocab)))
        return rc;
    rc = btrm_tok_spm_load_bin(&m->tok, m->tokenizer_path, vocab);
    return rc ? btrm_error_wrap(rc, "%s: tokenizer", m->path) : 0;
}

int btrm_llama_model_open(btrm_llama_model **out, int format, const char *path,
                          const char *tokenizer_path, int dequantize)
{
    *out = NULL;
    btrm_llama_model *m = NULL;
    int rc = BTRM_CALLOC(m, 1);
    if (rc)
        return rc;
    m->format = format;
    m->dequantized = dequantize != 0;
    if (snprintf(m->path, sizeof m->path, "%s", path) >= (int)sizeof m->path) {
        rc = btrm_error_set(BTRM_EUSAGE, "model path too long");
        goto fail;
    }
    if (format == BTRM_LLAMA_GGUF && tokenizer_path && tokenizer_path[0]) {
        rc = btrm_error_set(BTRM_EUSAGE, "%s: a GGUF file carries its own tokenizer "
                            "(tokenizer= is for llama2c)", path);
        goto fail;
    }
    rc = format == BTRM_LLAMA_GGUF ? open_gguf(m) : open_llama2c(m, tokenizer_path);
    if (rc)
        goto fail;
    if (!m->name[0]) {
        char buf[BTRM_PATH_MAX];
        snprintf(buf, sizeof buf, "%s", path);
        snprintf(m->name, sizeof m->name, "%s", basename(buf));
    }
    if ((rc = btrm_llama_check(&m->hp, &m->w))) {
        rc = btrm_error_wrap(rc, "%s", path);
        goto fail;
    }
    int n_tok = btrm_tok_n_vocab(m->tok);
    if (n_tok > m->hp.vocab_size) {
        rc = btrm_error_set(BTRM_EDATA, "%s: the tokenizer has %d tokens, the model's "
                            "embedding %d", path, n_tok, m->hp.vocab_size);
        goto fail;
    }
    *out = m;
    return 0;
fail:
    btrm_llama_model_close(m);
    return rc;
}

const char *btrm_llama_model_hash(btrm_llama_model *m)
{
    if (!m->hash[0]) {
        size_t size = 0;
        const void *bytes = m->gguf ? btrm_gguf_bytes(m->gguf, &size) : m->map;
        if (!m->gguf)
            size = m->map_size;
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits(bytes, size));
        for (int i = 0; i < 16; i++)
            snprintf(m->hash + 2 * i, 3, "%02x", c.digest[i]);
    }
    return m->hash;
}

/* ------------------------------------------------------------------------ */
/* Options */

void btrm_llama_opts_defaults(btrm_llama_opts *o)
{
    memset(o, 0, sizeof *o);
    o->pool = BTRM_POOL_LAST;
    o->max_tokens = OPTS_MAX_TOKENS_DEFAULT;
    o->bos = -1;
    o->max_batch_tokens = OPTS_MAX_BATCH_TOKENS_DEFAULT;
    o->dequantize = 0;
    o->kernel = BTRM_KERNEL_AUTO;
    o->threads = 1;
    o->precision = BTRM_PREC_FP32;
}

void btrm_llama_opts_from_config(btrm_llama_opts *o, const btrm_config *cfg)
{
    btrm_llama_opts_defaults(o);
    o->pool = cfg->embed.pool;
    o->max_tokens = cfg->embed.max_tokens;
    o->bos = cfg->embed.bos == BTRM_BOS_AUTO ? -1 : cfg->embed.bos == BTRM_BOS_ON;
    o->max_batch_tokens = cfg->embed.max_batch_tokens;
    o->dequantize = cfg->embed.dequantize;
    o->kernel = cfg->embed.kernel;
    o->threads = cfg->run.threads;
    o->precision = cfg->embed.precision;
}

int btrm_llama_opts_config_args(const btrm_config *cfg, char *out, size_t size)
{
    static const char *const bos[] = { "auto", "0", "1" };
    static const char *const kernel[] = { "auto", "dequant", "int8" };
    int n = snprintf(out, size, "pool=%s,max_tokens=%d,bos=%s,max_batch_tokens=%d,"
                     "dequantize=%d,kernel=%s,threads=%d,precision=%s",
                     cfg->embed.pool == BTRM_POOL_MEAN ? "mean" : "last", cfg->embed.max_tokens,
                     bos[cfg->embed.bos], cfg->embed.max_batch_tokens,
                     cfg->embed.dequantize ? 1 : 0, kernel[cfg->embed.kernel], cfg->run.threads,
                     btrm_precision_name(cfg->embed.precision));
    if (n < 0 || (size_t)n >= size)
        return btrm_error_set(BTRM_EUSAGE, "backbone options too long");
    return 0;
}

static int parse_int(const char *key, const char *value, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < lo || v > hi)
        return btrm_error_set(BTRM_EUSAGE, "backbone option %s=%s: want an integer in [%d, %d]",
                              key, value, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_bool(const char *key, const char *value, int *out)
{
    if (!strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no")) {
        *out = 0;
        return 0;
    }
    return btrm_error_set(BTRM_EUSAGE, "backbone option %s=%s: want 0 or 1", key, value);
}

int btrm_llama_opts_parse(btrm_llama_opts *o, const char *args)
{
    char buf[2 * BTRM_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", args ? args : "") >= (int)sizeof buf)
        return btrm_error_set(BTRM_EUSAGE, "backbone arguments too long");
    char *save = NULL, *field = strtok_r(buf, ",", &save);
    if (!field || strchr(field, '=') || !args || args[0] == ',')
        return btrm_error_set(BTRM_EUSAGE, "the model file is missing: want "
                              "gguf:MODEL.gguf[,key=value...] or llama2c:MODEL.bin[,...]");
    snprintf(o->path, sizeof o->path, "%s", field);
    int rc = 0;
    while (!rc && (field = strtok_r(NULL, ",", &save))) {
        char *eq = strchr(field, '=');
        if (!eq)
            return btrm_error_set(BTRM_EUSAGE, "backbone option '%s': want key=value", field);
        *eq = '\0';
        const char *key = field, *value = eq + 1;
        if (!strcmp(key, "pool")) {
            if (!strcmp(value, "last"))
                o->pool = BTRM_POOL_LAST;
            else if (!strcmp(value, "mean"))
                o->pool = BTRM_POOL_MEAN;
            else
                rc = btrm_error_set(BTRM_EUSAGE, "backbone option pool=%s: want last or mean",
                                    value);
        } else if (!strcmp(key, "max_tokens")) {
            rc = parse_int(key, value, 0, 1 << 20, &o->max_tokens);
        } else if (!strcmp(key, "bos")) {
            if (!strcmp(value, "auto"))
                o->bos = -1;
            else
                rc = parse_bool(key, value, &o->bos);
        } else if (!strcmp(key, "max_batch_tokens")) {
            rc = parse_int(key, value, 1, 1 << 24, &o->max_batch_tokens);
        } else if (!strcmp(key, "dequantize")) {
            rc = parse_bool(key, value, &o->dequantize);
        } else if (!strcmp(key, "kernel")) {
            static const char *const names[] = { "auto", "dequant", "int8" };
            int k = -1;
            for (int i = 0; i < 3; i++)
                if (!strcmp(value, names[i]))
                    k = i;
            if (k < 0)
                rc = btrm_error_set(BTRM_EUSAGE, "backbone option kernel=%s: want auto, "
                                    "dequant or int8", value);
            else
                o->kernel = k;
        } else if (!strcmp(key, "threads")) {
            rc = parse_int(key, value, 1, 1024, &o->threads);
        } else if (!strcmp(key, "precision")) {
            if (!strcmp(value, "fp32"))
                o->precision = BTRM_PREC_FP32;
            else if (!strcmp(value, "bf16"))
                o->precision = BTRM_PREC_BF16;
            else
                rc = btrm_error_set(BTRM_EUSAGE, "backbone option precision=%s: want fp32 or "
                                    "bf16", value);
        } else if (!strcmp(key, "tokenizer")) {
            snprintf(o->tokenizer, sizeof o->tokenizer, "%s", value);
        } else {
            rc = btrm_error_set(BTRM_EUSAGE, "unknown backbone option '%s' (known: pool, "
                                "max_tokens, bos, max_batch_tokens, dequantize, kernel, "
                                "threads, precision, tokenizer)", key);
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The embedder */

void btrm_llama_embedder_close(btrm_llama_embedder *e)
{
    if (!e)
        return;
    btrm_llama_model_close(e->model);
    btrm_llama_ws_free(&e->ws);
    free(e->ids);
    free(e->lens);
    free(e->slot);
    free(e->out_last);
    free(e->out_mean);
    memset(e, 0, sizeof *e);
}

int btrm_llama_embedder_open(btrm_llama_embedder *e, int format, const char *args,
                             const btrm_llama_opts *base)
{
    memset(e, 0, sizeof *e);
    if (base)
        e->opts = *base;
    else
        btrm_llama_opts_defaults(&e->opts);
    int rc = btrm_llama_opts_parse(&e->opts, args);
    if (rc)
        return rc;
    const btrm_llama_opts *o = &e->opts;
    if (format == BTRM_LLAMA_GGUF && o->tokenizer[0])
        return btrm_error_set(BTRM_EUSAGE, "tokenizer= is for llama2c checkpoints; a GGUF "
                              "file carries its own tokenizer");
    /* bf16: F32/F16/BF16 weights once in bf16, quantised ones too with
     * dequantize, else dequantised into bf16 row blocks as they are used */
    const int bf16 = o->precision == BTRM_PREC_BF16;
    if (bf16 && (rc = btrm_gemm_supports(BTRM_PREC_BF16)))
        return btrm_error_wrap(rc, "embed.precision bf16");
    if ((rc = btrm_llama_model_open(&e->model, format, o->path, o->tokenizer,
                                    bf16 ? 0 : o->dequantize)))
        return rc;
    if (bf16 && (rc = btrm_llama_model_to_bf16(e->model, o->dequantize)))
        goto fail;
    const btrm_llama_hparams *hp = &e->model->hp;
    /* 0 or more than the model was made for: its context length */
    e->max_tokens = btrm_llama_opts_max_tokens(o, hp);
    btrm_gemm_set_threads(o->threads);
    int batch_tokens = o->max_batch_tokens > e->max_tokens ? o->max_batch_tokens : e->max_tokens;
    if ((rc = btrm_llama_ws_init(&e->ws, hp, &e->model->w, batch_tokens, e->max_tokens,
                                 o->kernel)) ||
        (rc = btrm_llama_ws_set_precision(&e->ws, hp, &e->model->w, o->precision)))
        goto fail;
    e->max_seqs = batch_tokens < EMBED_MAX_SEQS ? batch_tokens : EMBED_MAX_SEQS;
    size_t dim = (size_t)hp->dim;
    if ((rc = BTRM_MALLOC(e->ids, batch_tokens)) || (rc = BTRM_MALLOC(e->lens, e->max_seqs)) ||
        (rc = BTRM_MALLOC(e->slot, e->max_seqs)) ||
        (rc = BTRM_MALLOC(e->out_last, (size_t)e->max_seqs * dim)) ||
        (rc = BTRM_MALLOC(e->out_mean, (size_t)e->max_seqs * dim)))
        goto fail;
    return 0;
fail:
    btrm_llama_embedder_close(e);
    return rc;
}

int btrm_llama_opts_max_tokens(const btrm_llama_opts *o, const btrm_llama_hparams *hp)
{
    return o->max_tokens && o->max_tokens < hp->context ? o->max_tokens : hp->context;
}

int btrm_llama_model_bos(const btrm_llama_model *m, int bos)
{
    int want = bos < 0 ? m->add_bos : bos;
    return want && btrm_tok_bos(m->tok) >= 0;
}

int btrm_llama_embedder_bos(const btrm_llama_embedder *e)
{
    return btrm_llama_model_bos(e->model, e->opts.bos);
}

int btrm_llama_embedder_tokenize(const btrm_llama_embedder *e, const char *text,
                                 int32_t **ids, int *n_ids)
{
    const btrm_tokenizer *tok = e->model->tok;
    int with_bos = btrm_llama_embedder_bos(e);
    int rc = btrm_tok_encode_special(tok, text, strlen(text), with_bos, 1, ids, n_ids);
    if (rc)
        return rc;
    int n = *n_ids, keep = e->max_tokens;
    if (n > keep) {
        /* keep the end: [BOS] + the last keep - 1 ids, or the last keep */
        int head = with_bos ? 1 : 0;
        memmove(*ids + head, *ids + (n - (keep - head)), (size_t)(keep - head) * sizeof **ids);
        *n_ids = keep;
    }
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Order for batching: longer sequences first, then by index (deterministic). */
typedef struct seq_key {
    int len;
    size_t index;
} seq_key;

static int by_length(const void *a, const void *b)
{
    const seq_key *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

int btrm_llama_embedder_run(btrm_llama_embedder *e, const int32_t *const *ids,
                            const int *lens, size_t n, float *last, float *mean)
{
    const btrm_llama_hparams *hp = &e->model->hp;
    size_t dim = (size_t)hp->dim;
    seq_key *order = NULL;
    int rc = BTRM_MALLOC(order, n ? n : 1);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        order[i] = (seq_key){ lens[i], i };
        if (lens[i] < 0 || lens[i] > e->max_tokens)
            rc = btrm_error_set(BTRM_EDATA, "text %zu: %d tokens (0 to %d allowed)", i, lens[i],
                                e->max_tokens);
        for (int p = 0; !rc && p < lens[i]; p++)
            if (ids[i][p] < 0 || ids[i][p] >= hp->vocab_size)
                rc = btrm_error_set(BTRM_EDATA, "text %zu, position %d: token id %d outside "
                                    "the model's vocabulary [0, %d)", i, p, (int)ids[i][p],
                                    hp->vocab_size);
    }
    if (rc) {
        free(order);
        return rc;
    }
    qsort(order, n, sizeof *order, by_length);
    double t0 = now();
    size_t i = 0;
    while (i < n && !rc) {
        int k = 0, tokens = 0;
        for (; i < n && order[i].len == 0; i++) { /* nothing to run: zero vector */
            if (last)
                memset(last + order[i].index * dim, 0, dim * sizeof *last);
            if (mean)
                memset(mean + order[i].index * dim, 0, dim * sizeof *mean);
        }
        while (i < n && k < e->max_seqs && order[i].len > 0 &&
               tokens + order[i].len <= e->ws.max_tokens) {
            size_t s = order[i++].index;
            memcpy(e->ids + tokens, ids[s], (size_t)lens[s] * sizeof *e->ids);
            e->lens[k] = lens[s];
            e->slot[k++] = s;
            tokens += lens[s];
        }
        if (k == 0)
            continue;
        rc = btrm_llama_forward(hp, &e->model->w, &e->ws, e->ids, e->lens, k,
                                last ? e->out_last : NULL, mean ? e->out_mean : NULL);
        for (int b = 0; !rc && b < k; b++) {
            if (last)
                memcpy(last + e->slot[b] * dim, e->out_last + (size_t)b * dim,
                       dim * sizeof *last);
            if (mean)
                memcpy(mean + e->slot[b] * dim, e->out_mean + (size_t)b * dim,
                       dim * sizeof *mean);
        }
        e->tokens += tokens;
    }
    e->seconds += now() - t0;
    free(order);
    return rc;
}
