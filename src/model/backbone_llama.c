/* backbone_llama.c: the `gguf` and `llama2c` backbones, a decoder language
 * model's representation of each text (llama_model.h's embedder: tokens
 * with BOS as the file says, left truncation to max_tokens, batched
 * prefill, the final RMSNorm hidden state of the last token or the mean
 * over tokens). */
#include "backbone.h"

#include "error.h"
#include "fileutil.h"
#include "gemm.h"
#include "llama_model.h"
#include "qgemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct llama_backbone {
    btrm_llama_embedder e;
    int32_t **ids; /* [cap] one batch's token ids */
    int *lens;     /* [cap] */
    size_t cap;
} llama_backbone;

static void llama_close(btrm_backbone *bb)
{
    llama_backbone *b = (llama_backbone *)bb;
    if (!b)
        return;
    btrm_llama_embedder_close(&b->e);
    free(b->ids);
    free(b->lens);
    free(b);
}

static int llama_open(btrm_backbone **bb, const char *args, int dim, int format)
{
    *bb = NULL;
    llama_backbone *b = NULL;
    int rc = BTRM_CALLOC(b, 1);
    if (rc)
        return rc;
    rc = btrm_llama_embedder_open(&b->e, format, args, NULL);
    if (!rc && dim != 0 && dim != b->e.model->hp.dim)
        rc = btrm_error_set(BTRM_EUSAGE, "%s has dimension %d; --dim %d cannot change it",
                            b->e.opts.path, b->e.model->hp.dim, dim);
    if (rc) {
        llama_close((btrm_backbone *)b);
        return rc;
    }
    *bb = (btrm_backbone *)b;
    return 0;
}

static int gguf_open(btrm_backbone **bb, const char *args, int dim)
{
    return llama_open(bb, args, dim, BTRM_LLAMA_GGUF);
}

static int llama2c_open(btrm_backbone **bb, const char *args, int dim)
{
    return llama_open(bb, args, dim, BTRM_LLAMA_LLAMA2C);
}

static int reserve(llama_backbone *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    int32_t **ids = realloc(b->ids, n * sizeof *ids);
    if (ids)
        b->ids = ids;
    int *lens = realloc(b->lens, n * sizeof *lens);
    if (lens)
        b->lens = lens;
    if (!ids || !lens)
        return btrm_error_set(BTRM_ENOMEM, "out of memory (%zu texts)", n);
    b->cap = n;
    return 0;
}

/* b->ids[i], b->lens[i] = the tokens of texts[i], i < n; on failure the
 * ids made so far are freed. */
static int tokenize(llama_backbone *b, const char *const *texts, size_t n)
{
    int rc = reserve(b, n);
    for (size_t i = 0; !rc && i < n; i++) {
        rc = btrm_llama_embedder_tokenize(&b->e, texts[i] ? texts[i] : "", &b->ids[i],
                                          &b->lens[i]);
        if (rc) {
            for (size_t j = 0; j < i; j++)
                free(b->ids[j]);
            if (n > 1)
                rc = btrm_error_wrap(rc, "text %zu of the batch", i);
        }
    }
    return rc;
}

static int llama_encode(btrm_backbone *bb, const char *const *texts, size_t n, float *out)
{
    llama_backbone *b = (llama_backbone *)bb;
    int rc = tokenize(b, texts, n);
    if (rc)
        return rc;
    int mean = b->e.opts.pool == BTRM_POOL_MEAN;
    rc = btrm_llama_embedder_run(&b->e, (const int32_t *const *)b->ids, b->lens, n,
                                 mean ? NULL : out, mean ? out : NULL);
    for (size_t i = 0; i < n; i++)
        free(b->ids[i]);
    return rc;
}

static int llama_cost(btrm_backbone *bb, const char *const *texts, size_t n, int64_t *cost)
{
    llama_backbone *b = (llama_backbone *)bb;
    int rc = tokenize(b, texts, n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        cost[i] = b->lens[i];
        free(b->ids[i]);
    }
    return 0;
}

static int llama_dim(const btrm_backbone *bb)
{
    return ((const llama_backbone *)bb)->e.model->hp.dim;
}

static int llama_describe(const btrm_backbone *bb, char *label, size_t label_size,
                          json_t *attrs)
{
    /* the hash is computed once and cached: describe is logically const */
    llama_backbone *b = (llama_backbone *)bb;
    btrm_llama_model *m = b->e.model;
    const btrm_llama_opts *o = &b->e.opts;
    const char *format = m->format == BTRM_LLAMA_GGUF ? "gguf" : "llama2c";
    const char *pool = o->pool == BTRM_POOL_MEAN ? "mean" : "last";
    const char *base = strrchr(o->path, '/');
    base = base ? base + 1 : o->path;
    snprintf(label, label_size, "%s:%s,pool=%s,max_tokens=%d%s", format, base, pool,
             b->e.max_tokens, o->precision == BTRM_PREC_BF16 ? ",precision=bf16" : "");
    const btrm_llama_hparams *hp = &m->hp;
    /* the kernel that ran: int8 with the instruction set of its integer
     * products, when some matrix takes that path (not float32 or F16 ones) */
    const btrm_llama_ws *ws = &b->e.ws;
    int int8 = ws->kernel == BTRM_KERNEL_INT8 && (ws->qact[0] || ws->qact[1] || ws->qact[2]);
    char kernel[32];
    if (int8)
        snprintf(kernel, sizeof kernel, "int8-%s", btrm_qgemm_isa_name(btrm_qgemm_isa()));
    else
        snprintf(kernel, sizeof kernel, "dequant");
    /* the spec that makes these features again (feature_record.h) */
    char path[BTRM_PATH_MAX], tokenizer[BTRM_PATH_MAX + 16] = "", spec[3 * BTRM_PATH_MAX];
    int rc = btrm_path_absolute(o->path, path, sizeof path);
    if (!rc && m->tokenizer_path[0]) {
        char abs_tok[BTRM_PATH_MAX];
        rc = btrm_path_absolute(m->tokenizer_path, abs_tok, sizeof abs_tok);
        snprintf(tokenizer, sizeof tokenizer, ",tokenizer=%s", abs_tok);
    }
    if (rc)
        return rc;
    snprintf(spec, sizeof spec, "%s:%s,pool=%s,max_tokens=%d,bos=%d,kernel=%s,precision=%s%s",
             format, path, pool, b->e.max_tokens, btrm_llama_embedder_bos(&b->e),
             int8 ? "int8" : "dequant", btrm_precision_name(o->precision), tokenizer);
    json_t *obj = attrs;
    int bad = json_object_set_new(obj, "backbone_spec", json_string(spec)) ||
              json_object_set_new(obj, "model_file", json_string(o->path)) ||
              json_object_set_new(obj, "model_format", json_string(format)) ||
              json_object_set_new(obj, "model_name", json_string(m->name)) ||
              json_object_set_new(obj, "model_hash", json_string(btrm_llama_model_hash(m))) ||
              json_object_set_new(obj, "model_hash_function", json_string("XXH3-128")) ||
              json_object_set_new(obj, "architecture", json_string(m->arch)) ||
              json_object_set_new(obj, "weight_types", json_string(m->weight_types)) ||
              json_object_set_new(obj, "dequantized", json_integer(m->dequantized)) ||
              json_object_set_new(obj, "precision",
                                  json_string(btrm_precision_name(o->precision))) ||
              json_object_set_new(obj, "n_layers", json_integer(hp->n_layers)) ||
              json_object_set_new(obj, "vocab_size", json_integer(hp->vocab_size)) ||
              json_object_set_new(obj, "pool", json_string(pool)) ||
              json_object_set_new(obj, "max_tokens", json_integer(b->e.max_tokens)) ||
              json_object_set_new(obj, "bos", json_integer(btrm_llama_embedder_bos(&b->e))) ||
              json_object_set_new(obj, "kernel", json_string(kernel)) ||
              json_object_set_new(obj, "tokenizer", json_string(btrm_tok_kind(m->tok)));
    if (!bad && m->tokenizer_path[0])
        bad = json_object_set_new(obj, "tokenizer_file", json_string(m->tokenizer_path));
    if (bad)
        return btrm_error_set(BTRM_ENOMEM, "%s backbone: out of memory describing itself",
                              format);
    return 0;
}

static int llama_config_args(const struct btrm_config *cfg, char *out, size_t size)
{
    return btrm_llama_opts_config_args(cfg, out, size);
}

const btrm_backbone_ops btrm_backbone_gguf_ops = {
    .name = "gguf",
    .summary = "a decoder LLM in a GGUF file (llama, qwen2, qwen3, gemma2, gemma3, phi3; "
               "F32..Q8_0, K-quants): gguf:MODEL.gguf",
    .open = gguf_open,
    .encode = llama_encode,
    .dim = llama_dim,
    .describe = llama_describe,
    .close = llama_close,
    .cost = llama_cost,
    .config_args = llama_config_args,
};

const btrm_backbone_ops btrm_backbone_llama2c_ops = {
    .name = "llama2c",
    .summary = "a llama2.c checkpoint: llama2c:MODEL.bin[,tokenizer=TOK.bin]",
    .open = llama2c_open,
    .encode = llama_encode,
    .dim = llama_dim,
    .describe = llama_describe,
    .close = llama_close,
    .cost = llama_cost,
    .config_args = llama_config_args,
};
