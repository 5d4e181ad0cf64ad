/* export.c: `btrm export` (export.h, docs/export.md). */
#include "export.h"

#include "backbone.h"
#include "error.h"
#include "feature_record.h"
#include "fileutil.h"
#include "ftmodel.h"
#include "gguf.h"
#include "head.h"
#include "llama_model.h"
#include "log.h"
#include "modelfile.h"
#include "quant.h"
#include "safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

void btrm_export_unpermute_rows(int n_heads, int head_dim, int64_t *perm)
{
    const int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int t = 0; t < 2; t++)
            for (int j = 0; j < half; j++)
                perm[(int64_t)h * head_dim + t * half + j] = (int64_t)h * head_dim + 2 * j + t;
}

/* A growing list of tensors to write, and the buffers they point into. */
typedef struct tensor_list {
    btrm_st_tensor *t;
    int n, cap;
    int64_t *perms[2 * 4096];  /* row orders, freed at the end */
    int n_perms;
    btrm_llama_model *model;   /* the backbone, mapped while its tensors are written */
} tensor_list;

static btrm_st_tensor *add(tensor_list *l, const char *name, const char *dtype, int n_dims,
                           const uint64_t *shape, const void *data)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        btrm_st_tensor *t = realloc(l->t, (size_t)cap * sizeof *t);
        if (!t) {
            btrm_error_set(BTRM_ENOMEM, "out of memory listing tensors");
            return NULL;
        }
        l->t = t;
        l->cap = cap;
    }
    btrm_st_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        t->shape[d] = shape[d];
    t->data = data;
    return t;
}

static void list_free(tensor_list *l)
{
    for (int i = 0; i < l->n_perms; i++)
        free(l->perms[i]);
    free(l->t);
    btrm_llama_model_close(l->model);
}

static const char *activation_name(int act)
{
    return act == BTRM_ACT_RELU ? "relu" : act == BTRM_ACT_TANH ? "tanh" : "gelu";
}

static int set_string(json_t *obj, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_string(json_t *obj, const char *key, const char *fmt, ...)
{
    char value[BTRM_PATH_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    return json_object_set_new(obj, key, json_string(value))
               ? btrm_error_set(BTRM_ENOMEM, "out of memory writing metadata")
               : 0;
}

/* The head's tensors (float32) and its metadata. */
static int add_head(tensor_list *l, const btrm_head *head, const float *params,
                    const btrm_model_meta *meta, json_t *md)
{
    int rc = set_string(md, "btrm_head", "%s", head->kind == BTRM_HEAD_MLP ? "mlp" : "linear");
    if (!rc)
        rc = set_string(md, "btrm_loss", "%s", meta->loss == BTRM_LOSS_NORMBT ? "normbt" : "bt");
    if (!rc)
        rc = set_string(md, "btrm_dim", "%d", head->dim);
    if (rc)
        return rc;
    if (head->kind == BTRM_HEAD_LINEAR) {
        const btrm_tensor_view *o = &head->layer[0];
        uint64_t shape[2] = { 1, (uint64_t)o->in };
        if (!add(l, "score.weight", "F32", 2, shape, params + o->weight_off))
            return BTRM_ENOMEM;
        /* %.9g: the float32 bias exactly */
        return set_string(md, "score.bias", "%.9g", (double)params[o->bias_off]);
    }
    rc = set_string(md, "btrm_activation", "%s%s", activation_name(head->activation),
                    head->activation == BTRM_ACT_GELU ? " (exact, erf)" : "");
    if (!rc)
        rc = set_string(md, "btrm_reward", "h = act(score.fc0.weight x + score.fc0.bias), ..., "
                        "r = score.out.weight h + score.out.bias");
    for (int k = 0; !rc && k < head->n_layers; k++) {
        const btrm_tensor_view *t = &head->layer[k];
        char name[64];
        uint64_t wshape[2] = { (uint64_t)t->out, (uint64_t)t->in }, bshape[1] = { (uint64_t)t->out };
        snprintf(name, sizeof name, "score.%s.weight", t->name);
        if (!add(l, name, "F32", 2, wshape, params + t->weight_off))
            return BTRM_ENOMEM;
        snprintf(name, sizeof name, "score.%s.bias", t->name);
        if (!add(l, name, "F32", 1, bshape, params + t->bias_off))
            return BTRM_ENOMEM;
    }
    return rc;
}

/* Each field of a JSON object as metadata <prefix><key> (metadata values
 * are strings; arrays are written comma-separated). Steals fields. */
static int add_fields(json_t *md, const char *prefix, json_t *fields)
{
    const char *key;
    json_t *value;
    int rc = fields ? 0 : btrm_error_set(BTRM_ENOMEM, "out of memory writing metadata");
    json_object_foreach(fields, key, value) {
        char name[64], list[256] = "";
        snprintf(name, sizeof name, "%s%s", prefix, key);
        size_t i;
        json_t *item;
        json_array_foreach(value, i, item)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "",
                     json_string_value(item));
        rc = json_is_integer(value) ? set_string(md, name, "%lld",
                                                 (long long)json_integer_value(value))
             : json_is_real(value)  ? set_string(md, name, "%.9g", json_real_value(value))
             : json_is_array(value) ? set_string(md, name, "%s", list)
                                    : set_string(md, name, "%s", json_string_value(value));
        if (rc)
            break;
    }
    json_decref(fields);
    return rc;
}

/* How the features were made, as the model file records it: each field as
 * btrm_features_<attribute>. */
static int add_record(json_t *md, const btrm_feature_record *rec)
{
    return add_fields(md, "btrm_features_",
                      rec->present ? btrm_feature_record_to_json(rec) : json_object());
}

/* ------------------------------------------------------------------------ */
/* The backbone: a GGUF Llama, F32/F16/BF16 */

static const char *st_dtype(int ggml_type)
{
    switch (ggml_type) {
    case BTRM_Q_F32: return "F32";
    case BTRM_Q_F16: return "F16";
    case BTRM_Q_BF16: return "BF16";
    default: return NULL;
    }
}

/* Puts t's rows (n_heads heads of head_dim rows: a query or key matrix, or
 * a LoRA B on one) back in Hugging Face's rotary order. */
static int unpermute(tensor_list *l, btrm_st_tensor *t, int n_heads, int head_dim,
                     const char *file)
{
    int64_t *perm = NULL;
    if (t->n_dims != 2 || t->shape[0] != (uint64_t)n_heads * (uint64_t)head_dim)
        return btrm_error_set(BTRM_EDATA, "%s: %s has %llu rows, not %d heads of %d", file,
                              t->name, (unsigned long long)t->shape[0], n_heads, head_dim);
    if (l->n_perms == (int)(sizeof l->perms / sizeof l->perms[0]))
        return btrm_error_set(BTRM_EUSAGE, "%s: too many layers to export", file);
    int rc = BTRM_MALLOC(perm, t->shape[0]);
    if (rc)
        return rc;
    l->perms[l->n_perms++] = perm;
    btrm_export_unpermute_rows(n_heads, head_dim, perm);
    t->row_perm = perm;
    return 0;
}

/* GGUF tensor gname -> Hugging Face name hname; unperm_heads > 0 puts the
 * rows back in Hugging Face's rotary order. */
static int add_gguf(tensor_list *l, const btrm_gguf *g, const char *gname, const char *hname,
                    int unperm_heads, int head_dim)
{
    const btrm_gguf_tensor *gt = btrm_gguf_find_tensor(g, gname);
    if (!gt)
        return btrm_error_set(BTRM_EDATA, "%s: no tensor %s", btrm_gguf_path(g), gname);
    const char *dtype = st_dtype(gt->type);
    if (!dtype || !gt->data) {
        char tname[32];
        return btrm_error_set(BTRM_EUSAGE, "%s: tensor %s is %s; exporting a backbone needs "
                              "F32, F16 or BF16 weights (export the head alone, or convert "
                              "the model to F16 with llama.cpp first)", btrm_gguf_path(g),
                              gname, btrm_quant_name(gt->type, tname, sizeof tname));
    }
    uint64_t shape[BTRM_GGUF_MAX_DIMS];
    for (int d = 0; d < gt->n_dims; d++)
        shape[d] = gt->ne[gt->n_dims - 1 - d]; /* GGUF lists the innermost first */
    btrm_st_tensor *t = add(l, hname, dtype, gt->n_dims, shape, gt->data);
    if (!t)
        return BTRM_ENOMEM;
    return unperm_heads > 0 ? unpermute(l, t, unperm_heads, head_dim, btrm_gguf_path(g)) : 0;
}

static int64_t gguf_int_or(const btrm_gguf *g, const char *key, int64_t dflt)
{
    int64_t v = dflt;
    if (btrm_gguf_find_key(g, key) >= 0 && btrm_gguf_get_i64(g, key, &v))
        v = dflt;
    return v;
}

/* The shortest decimal that reads back as the float32 f (1e-05, not
 * 9.99999975e-06), as a double for JSON. */
static double short_float(float f)
{
    char text[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)f);
        if (strtof(text, NULL) == f)
            break;
    }
    return strtod(text, NULL);
}

/* config.json for LlamaForSequenceClassification. */
static json_t *hf_config(const btrm_llama_model *m, const btrm_gguf *g, const char *dtype)
{
    const btrm_llama_hparams *hp = &m->hp;
    int64_t bos = gguf_int_or(g, "tokenizer.ggml.bos_token_id", -1);
    int64_t eos = gguf_int_or(g, "tokenizer.ggml.eos_token_id", -1);
    /* the classifier reads the last token before the first pad: a model
     * without a pad token pads with EOS (which btrm never appends) */
    int64_t pad = gguf_int_or(g, "tokenizer.ggml.padding_token_id", -1);
    if (pad < 0 || pad >= hp->vocab_size) /* absent, or -1 stored as uint32 */
        pad = eos >= 0 && eos < hp->vocab_size ? eos : 0;
    if (bos >= hp->vocab_size)
        bos = -1;
    if (eos >= hp->vocab_size)
        eos = -1;
    json_t *c = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:i, s:s, s:b, s:b, s:b, "
        "s:i, s:{s:s}, s:{s:i}, s:I, s:s}",
        "architectures", "LlamaForSequenceClassification", "model_type", "llama",
        "hidden_size", hp->dim, "intermediate_size", hp->hidden_dim,
        "num_hidden_layers", hp->n_layers, "num_attention_heads", hp->n_heads,
        "num_key_value_heads", hp->n_kv_heads, "head_dim", hp->head_dim,
        "max_position_embeddings", hp->context, "rms_norm_eps", short_float(hp->norm_eps),
        "rope_theta", short_float(hp->rope_theta), "vocab_size", hp->vocab_size,
        "hidden_act", "silu", "attention_bias", 0, "mlp_bias", 0, "tie_word_embeddings", 0,
        "num_labels", 1, "id2label", "0", "LABEL_0", "label2id", "LABEL_0", 0,
        "pad_token_id", (json_int_t)pad, "torch_dtype", dtype);
    if (c && bos >= 0)
        json_object_set_new(c, "bos_token_id", json_integer(bos));
    if (c && eos >= 0)
        json_object_set_new(c, "eos_token_id", json_integer(eos));
    return c;
}

/* Refuses the backbone when it makes other features than those the model
 * was trained on (rec): its file's hash, width, BOS and max_tokens. The
 * kernel is the arithmetic of btrm's forward, not part of the weights. */
static int check_backbone(const btrm_feature_record *rec, const char *model_path,
                          btrm_llama_model *m, const btrm_llama_opts *o, const char *spec)
{
    if (!btrm_feature_record_runnable(rec)) {
        if (rec->present)
            btrm_log_warn("%s was trained on features from '%s', which btrm cannot make: the "
                          "backbone %s is exported with it unchecked", model_path, rec->label,
                          spec);
        return 0;
    }
    btrm_feature_record *got = NULL;
    int rc = BTRM_MALLOC(got, 1);
    if (rc)
        return rc;
    btrm_feature_record_clear(got);
    snprintf(got->spec, sizeof got->spec, "%s", spec);
    snprintf(got->hash, sizeof got->hash, "%s", btrm_llama_model_hash(m));
    snprintf(got->pool, sizeof got->pool, "%s", o->pool == BTRM_POOL_MEAN ? "mean" : "last");
    got->dim = m->hp.dim;
    got->bos = btrm_llama_model_bos(m, o->bos);
    got->max_tokens = btrm_llama_opts_max_tokens(o, &m->hp);
    btrm_feature_record_finish(got);
    char what[2 * BTRM_PATH_MAX + 16];
    snprintf(what, sizeof what, "backbone %s", spec);
    rc = btrm_feature_record_compare(rec, model_path, got, what, 0);
    free(got);
    return rc;
}

static int add_backbone(tensor_list *l, const char *spec, const btrm_feature_record *rec,
                        const char *model_path, json_t *md, json_t **config)
{
    const char *args = NULL;
    const btrm_backbone_ops *ops = btrm_backbone_lookup(spec, &args);
    if (!ops)
        return BTRM_EUSAGE;
    if (strcmp(ops->name, "gguf"))
        return btrm_error_set(BTRM_EUSAGE, "--with-backbone: backbone %s: only a GGUF "
                              "backbone's weights can be exported%s", spec,
                              !strcmp(ops->name, "hash")
                                  ? " (the hash backbone has none: the head is the whole model)"
                                  : " (convert a llama2.c checkpoint to GGUF first)");
    btrm_llama_opts o;
    btrm_llama_opts_defaults(&o);
    int rc = btrm_llama_opts_parse(&o, args);
    if (rc)
        return rc;
    if (o.pool != BTRM_POOL_LAST)
        return btrm_error_set(BTRM_EUSAGE, "--with-backbone: backbone %s pools by the mean; "
                              "LlamaForSequenceClassification scores the last token (pool=last)",
                              spec);
    btrm_llama_model *m = NULL;
    if ((rc = btrm_llama_model_open(&m, BTRM_LLAMA_GGUF, o.path, NULL, 0)))
        return rc;
    const btrm_llama_hparams *hp = &m->hp;
    const btrm_gguf *g = m->gguf;
    if ((rc = check_backbone(rec, model_path, m, &o, spec)))
        goto done;
    if (strcmp(m->arch, "llama")) {
        rc = btrm_error_set(BTRM_EUSAGE, "%s: architecture %s; --with-backbone exports "
                            "LlamaForSequenceClassification, from a llama GGUF only (export "
                            "the head alone)", o.path, m->arch);
        goto done;
    }
    if (hp->rope_dim != hp->head_dim || hp->head_dim % 2) {
        rc = btrm_error_set(BTRM_EUSAGE, "%s: rotary embedding on %d of %d dimensions per head "
                            "has no LlamaForSequenceClassification equivalent", o.path,
                            hp->rope_dim, hp->head_dim);
        goto done;
    }
    if (hp->sliding_window > 0) {
        rc = btrm_error_set(BTRM_EUSAGE, "%s: sliding-window attention has no "
                            "LlamaForSequenceClassification equivalent", o.path);
        goto done;
    }
    /* every tensor of the file is one we know: nothing is silently left out
     * but the language-model head, which sequence classification replaces */
    for (int i = 0; i < btrm_gguf_n_tensors(g); i++) {
        const char *name = btrm_gguf_tensor_at(g, i)->name;
        int layer = -1, used = 0;
        char part[64] = "";
        static const char *const parts[] = { "attn_norm", "attn_q", "attn_k", "attn_v",
                                             "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                                             "ffn_down" };
        if (sscanf(name, "blk.%d.%63[^.].weight", &layer, part) == 2)
            for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++)
                used |= !strcmp(part, parts[p]);
        used |= !strcmp(name, "token_embd.weight") || !strcmp(name, "output_norm.weight") ||
                !strcmp(name, "output.weight");
        if (!used) {
            rc = btrm_error_set(BTRM_EUSAGE, "%s: tensor %s has no place in "
                                "LlamaForSequenceClassification", o.path, name);
            goto done;
        }
    }
    static const struct { const char *gguf, *hf; int perm; } map[] = {
        { "attn_norm", "input_layernorm", 0 },   { "attn_q", "self_attn.q_proj", 1 },
        { "attn_k", "self_attn.k_proj", 2 },     { "attn_v", "self_attn.v_proj", 0 },
        { "attn_output", "self_attn.o_proj", 0 }, { "ffn_norm", "post_attention_layernorm", 0 },
        { "ffn_gate", "mlp.gate_proj", 0 },      { "ffn_up", "mlp.up_proj", 0 },
        { "ffn_down", "mlp.down_proj", 0 },
    };
    rc = add_gguf(l, g, "token_embd.weight", "model.embed_tokens.weight", 0, 0);
    for (int layer = 0; !rc && layer < hp->n_layers; layer++)
        for (size_t k = 0; !rc && k < sizeof map / sizeof map[0]; k++) {
            char gname[96], hname[128];
            snprintf(gname, sizeof gname, "blk.%d.%s.weight", layer, map[k].gguf);
            snprintf(hname, sizeof hname, "model.layers.%d.%s.weight", layer, map[k].hf);
            int heads = map[k].perm == 1 ? hp->n_heads : map[k].perm == 2 ? hp->n_kv_heads : 0;
            rc = add_gguf(l, g, gname, hname, heads, hp->head_dim);
        }
    if (!rc)
        rc = add_gguf(l, g, "output_norm.weight", "model.norm.weight", 0, 0);
    if (rc)
        goto done;
    /* the matrices' dtype is the model's torch_dtype (norms may stay F32) */
    const char *dtype = st_dtype(btrm_gguf_find_tensor(g, "blk.0.attn_q.weight")
                                     ? btrm_gguf_find_tensor(g, "blk.0.attn_q.weight")->type
                                     : BTRM_Q_F32);
    const char *torch_dtype = !strcmp(dtype, "F16")    ? "float16"
                              : !strcmp(dtype, "BF16") ? "bfloat16"
                                                       : "float32";
    if (!(*config = hf_config(m, g, torch_dtype))) {
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory writing config.json");
        goto done;
    }
    const char *base = strrchr(o.path, '/');
    rc = set_string(md, "btrm_backbone", "%s", spec);
    if (!rc)
        rc = set_string(md, "btrm_backbone_file", "%s", base ? base + 1 : o.path);
    if (!rc)
        rc = set_string(md, "btrm_backbone_xxh3_128", "%s", btrm_llama_model_hash(m));
    if (!rc)
        rc = set_string(md, "btrm_pool", "last");
    if (!rc)
        rc = set_string(md, "btrm_bos", "%d", btrm_llama_model_bos(m, o.bos));
    if (!rc)
        rc = set_string(md, "btrm_max_tokens", "%d", btrm_llama_opts_max_tokens(&o, hp));
    if (!rc)
        rc = set_string(md, "btrm_reward", "score.weight h + score.bias, h = model.norm of the "
                        "last token's hidden state (tokens: BOS when btrm_bos is 1, then the "
                        "text, left-truncated to btrm_max_tokens)");
done:
    /* the tensors point into the mapping: keep the model open until written */
    if (rc) {
        btrm_llama_model_close(m);
        return rc;
    }
    l->model = m;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* A model trained with its own backbone (model.backbone): its trained
 * tensors under Hugging Face names; LoRA in PEFT's layout */

/* Removes DIR/name left by an earlier export of another kind. */
static int remove_stale(const char *dir, const char *name)
{
    char path[BTRM_PATH_MAX + 32];
    btrm_path_join(path, sizeof path, dir, name);
    if (unlink(path) == 0) {
        btrm_log_info("export: removed %s of an earlier export", path);
        return 0;
    }
    return errno == ENOENT ? 0 : btrm_error_set(BTRM_EIO, "cannot remove the stale %s: %s",
                                                path, strerror(errno));
}

/* The trained tensors of lt (in params) under their Hugging Face names:
 * LoRA A [r, in] and B [out, r] as PEFT saves them for a Llama (B's rows of
 * q and k back in Hugging Face's rotary order, as the base's q and k rows:
 * (P W + s B A) = P (W + s (P^T B) A) for the row permutation P), top_k
 * weights and norms as LlamaForSequenceClassification names them. */
static int add_trained(tensor_list *l, const btrm_llama_train *lt, const float *params,
                       const char *file)
{
    const btrm_llama_hparams *hp = &lt->hp;
    static const char *const norms[] = { [BTRM_NORM_ATTN] = "input_layernorm",
                                         [BTRM_NORM_FFN] = "post_attention_layernorm" };
    for (int i = 0; i < lt->n_tensors; i++) {
        const btrm_llama_train_tensor *tt = &lt->tensors[i];
        const char *proj = btrm_llama_train_proj_hf(tt->proj);
        char name[160];
        uint64_t shape[2] = { (uint64_t)tt->rows, (uint64_t)tt->cols };
        int n_dims = 2, heads = 0;
        if (tt->kind == BTRM_LT_LORA_A || tt->kind == BTRM_LT_LORA_B)
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_%c.weight",
                     tt->layer, proj, tt->kind == BTRM_LT_LORA_A ? 'A' : 'B');
        else if (tt->kind == BTRM_LT_WEIGHT)
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", tt->layer, proj);
        else if (tt->proj == BTRM_NORM_OUTPUT)
            snprintf(name, sizeof name, "model.norm.weight");
        else
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", tt->layer,
                     norms[tt->proj]);
        if (tt->kind == BTRM_LT_NORM) {
            n_dims = 1; /* [dim], as torch's RMSNorm weight */
            shape[0] = (uint64_t)tt->rows * (uint64_t)tt->cols;
        }
        if (tt->kind == BTRM_LT_LORA_B || tt->kind == BTRM_LT_WEIGHT)
            heads = tt->proj == BTRM_PROJ_Q ? hp->n_heads
                    : tt->proj == BTRM_PROJ_K ? hp->n_kv_heads : 0;
        btrm_st_tensor *t = add(l, name, "F32", n_dims, shape, params + tt->offset);
        if (!t)
            return BTRM_ENOMEM;
        int rc = heads ? unpermute(l, t, heads, hp->head_dim, file) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

/* adapter_config.json: PEFT's LoraConfig for sequence classification. */
static json_t *peft_config(const btrm_model_backbone *ref, const btrm_llama_train *lt,
                           int linear_head)
{
    json_t *targets = json_array(), *layers = json_null();
    for (int p = 0; targets && p < BTRM_N_PROJ; p++)
        if (ref->ft.targets & BTRM_LORA_TARGET(p)) {
            const char *hf = strchr(btrm_llama_train_proj_hf(p), '.') + 1; /* q_proj */
            json_array_append_new(targets, json_string(hf));
        }
    if (ref->ft.layers > 0 && ref->ft.layers < lt->hp.n_layers) {
        layers = json_array();
        for (int b = lt->first_layer; layers && b < lt->hp.n_layers; b++)
            json_array_append_new(layers, json_integer(b));
    }
    json_t *c = json_pack("{s:s, s:s, s:s, s:i, s:f, s:f, s:o, s:o, s:s, s:s, s:b, s:b, s:b, "
                          "s:b, s:o, s:n}",
                          "peft_type", "LORA", "task_type", "SEQ_CLS",
                          "base_model_name_or_path", ref->model_file, "r", ref->ft.rank,
                          "lora_alpha", short_float(ref->ft.alpha), "lora_dropout", 0.0,
                          "target_modules", targets, "layers_to_transform", layers,
                          "layers_pattern", "layers", "bias", "none", "fan_in_fan_out", 0,
                          "inference_mode", 1, "use_rslora", 0, "use_dora", 0,
                          "modules_to_save", linear_head ? json_pack("[s]", "score")
                                                         : json_null(),
                          "revision");
    return c;
}

static int write_readme(const char *dir, const btrm_export_opts *o, const char *model_hash,
                        const btrm_model_backbone *ref, const btrm_head *head)
{
    char path[BTRM_PATH_MAX + 32], *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return btrm_error_set(BTRM_ENOMEM, "out of memory writing README.md");
    const int lora = ref->ft.type == BTRM_FT_LORA;
    fprintf(f, "# btrm reward model: %s\n\n", lora ? "LoRA adapter (PEFT)" : "top-k blocks");
    fprintf(f, "Exported by btrm %s from `%s` (XXH3-128 %s).\n\n", PACKAGE_VERSION,
            o->model_path, model_hash);
    fprintf(f, "Base model: `%s`, XXH3-128 `%s` (%s, %d features, pool %s, BOS %s, at most "
            "%d tokens). The files here hold only what trained; they apply to exactly that "
            "base file's weights (in Hugging Face layout: `btrm export --with-backbone` of "
            "a model on it, or the checkpoint it was converted from).\n\n",
            ref->model_file, ref->model_hash, ref->architecture, ref->dim,
            ref->pool == BTRM_POOL_MEAN ? "mean" : "last", ref->bos ? "yes" : "no",
            ref->max_tokens);
    if (lora)
        fprintf(f, "- `adapter_model.safetensors`, `adapter_config.json`: LoRA r = %d, "
                "alpha = %g on the projections listed in target_modules%s, W' = W + "
                "(alpha / r) lora_B lora_A, as PEFT loads it:\n\n"
                "      base = LlamaForSequenceClassification.from_pretrained(BASE, "
                "num_labels=1)\n      model = PeftModel.from_pretrained(base, \"%s\")\n\n",
                ref->ft.rank, (double)ref->ft.alpha,
                ref->ft.layers > 0 ? " of the blocks in layers_to_transform" : "", o->out_dir);
    else
        fprintf(f, "- `model.safetensors`: the float32 weights of the top %d block(s) and "
                "the final norm (model.* names), which replace the base's "
                "(`load_state_dict(..., strict=False)`), with the reward head.\n",
                ref->ft.layers);
    fprintf(f, "- `model.safetensors`: the reward head (%s%s), its bias in __metadata__ as "
            "score.bias.\n", head->kind == BTRM_HEAD_MLP ? "mlp: score.fc0 ... score.out"
                                                         : "linear: score.weight [1, D]",
            lora && head->kind == BTRM_HEAD_LINEAR
                ? "; also in the adapter as base_model.model.score.weight (modules_to_save)"
                : "");
    fclose(f);
    btrm_path_join(path, sizeof path, dir, "README.md");
    int rc = text ? btrm_write_atomic(path, text, size)
                  : btrm_error_set(BTRM_ENOMEM, "out of memory writing README.md");
    free(text);
    return rc;
}

static int export_own(const btrm_export_opts *o, const btrm_head *head, const float *params,
                      const btrm_model_meta *meta, json_t *md, const char *model_hash)
{
    btrm_model_backbone *ref = NULL;
    btrm_ftmodel fm;
    memset(&fm, 0, sizeof fm);
    float *trained = NULL;
    tensor_list adapter, main;
    memset(&adapter, 0, sizeof adapter);
    memset(&main, 0, sizeof main);
    json_t *config = NULL, *amd = NULL;
    char path[BTRM_PATH_MAX + 32];
    int present = 0, rc = BTRM_MALLOC(ref, 1);
    if (!rc && (o->with_backbone || o->backbone))
        rc = btrm_error_set(BTRM_EUSAGE, "%s was trained with its own backbone: export writes "
                            "its trained tensors for the base model it records; drop %s",
                            o->model_path, o->with_backbone ? "--with-backbone" : "--backbone");
    if (!rc)
        rc = btrm_ftmodel_open_model(o->model_path, ref, &fm, &trained, 1, &present);
    if (rc)
        goto done;
    const btrm_llama_hparams *hp = &fm.lt.hp;
    if (ref->ft.type == BTRM_FT_NONE) {
        rc = btrm_error_set(BTRM_EUSAGE, "%s trained a head on the frozen %s: nothing of the "
                            "backbone trained (export the head, with --backbone %s "
                            "--with-backbone for the base's weights)", o->model_path,
                            ref->model_file, ref->spec);
        goto done;
    }
    if (strcmp(ref->architecture, "llama") || hp->rope_dim != hp->head_dim || hp->head_dim % 2) {
        rc = btrm_error_set(BTRM_EUSAGE, "%s: a %s base with rotary embedding on %d of %d "
                            "dimensions per head has no Hugging Face Llama equivalent",
                            o->model_path, ref->architecture, hp->rope_dim, hp->head_dim);
        goto done;
    }
    if (ref->pool == BTRM_POOL_MEAN)
        btrm_log_warn("%s pools by the mean; LlamaForSequenceClassification scores the last "
                      "token: the exported tensors need btrm's mean pooling to give its "
                      "rewards", o->model_path);
    rc = add_fields(md, "btrm_backbone_", btrm_model_backbone_to_json(ref));
    if (!rc)
        rc = btrm_mkdir_p(o->out_dir);
    if (rc)
        goto done;
    const int lora = ref->ft.type == BTRM_FT_LORA;
    if (lora) {
        amd = json_deep_copy(md);
        rc = amd ? add_trained(&adapter, &fm.lt, trained, o->model_path)
                 : btrm_error_set(BTRM_ENOMEM, "out of memory");
        if (!rc && head->kind == BTRM_HEAD_LINEAR) {
            /* PEFT saves modules_to_save without their wrapper's infix */
            uint64_t shape[2] = { 1, (uint64_t)head->dim };
            if (!add(&adapter, "base_model.model.score.weight", "F32", 2, shape,
                     params + head->layer[0].weight_off))
                rc = BTRM_ENOMEM;
            if (!rc)
                rc = set_string(amd, "score.bias", "%.9g",
                                (double)params[head->layer[0].bias_off]);
        }
        if (!rc && !(config = peft_config(ref, &fm.lt, head->kind == BTRM_HEAD_LINEAR)))
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory writing adapter_config.json");
        btrm_path_join(path, sizeof path, o->out_dir, "adapter_model.safetensors");
        if (!rc)
            rc = btrm_safetensors_write(path, adapter.t, adapter.n, amd);
        if (!rc)
            btrm_log_info("export: wrote %s (%d tensors: LoRA r %d on %d block(s))", path,
                          adapter.n, ref->ft.rank, hp->n_layers - fm.lt.first_layer);
        btrm_path_join(path, sizeof path, o->out_dir, "adapter_config.json");
        if (!rc)
            rc = btrm_json_write_atomic(path, config);
    } else {
        rc = add_trained(&main, &fm.lt, trained, o->model_path);
        if (!rc)
            rc = remove_stale(o->out_dir, "adapter_model.safetensors");
        if (!rc)
            rc = remove_stale(o->out_dir, "adapter_config.json");
    }
    if (!rc)
        rc = add_head(&main, head, params, meta, md);
    btrm_path_join(path, sizeof path, o->out_dir, "model.safetensors");
    if (!rc)
        rc = btrm_safetensors_write(path, main.t, main.n, md);
    if (!rc)
        btrm_log_info("export: wrote %s (%d tensors%s)", path, main.n,
                      lora ? ": the head" : ": the top blocks and the head");
    if (!rc)
        rc = remove_stale(o->out_dir, "config.json");
    if (!rc)
        rc = write_readme(o->out_dir, o, model_hash, ref, head);
done:
    btrm_ftmodel_close(&fm);
    list_free(&adapter);
    list_free(&main);
    json_decref(config);
    json_decref(amd);
    free(trained);
    free(ref);
    return rc;
}

/* ------------------------------------------------------------------------ */

int btrm_export_run(const btrm_export_opts *o)
{
    if (strcmp(o->format, "safetensors"))
        return btrm_error_set(BTRM_EUSAGE, "unknown --format %s (known: safetensors)", o->format);
    btrm_head head;
    btrm_model_meta meta;
    float *params = NULL;
    tensor_list l;
    memset(&l, 0, sizeof l);
    json_t *md = json_object(), *config = NULL;
    char hash[33], path[BTRM_PATH_MAX + 32], spec[2 * BTRM_PATH_MAX];
    btrm_feature_record *rec = NULL;
    int rc = md ? btrm_model_read(o->model_path, &head, &params, &meta)
                : btrm_error_set(BTRM_ENOMEM, "out of memory");
    if (!rc)
        rc = BTRM_MALLOC(rec, 1);
    if (!rc)
        rc = btrm_model_read_features(o->model_path, rec);
    if (!rc)
        rc = btrm_file_xxh128(o->model_path, hash);
    if (!rc)
        rc = set_string(md, "format", "pt");
    if (!rc)
        rc = set_string(md, "btrm_version", "%s", PACKAGE_VERSION);
    if (!rc)
        rc = set_string(md, "btrm_model", "%s", o->model_path);
    if (!rc)
        rc = set_string(md, "btrm_model_xxh3_128", "%s", hash);
    if (!rc)
        rc = add_record(md, rec);
    int own = 0;
    btrm_model_backbone *ref = NULL;
    if (!rc)
        rc = BTRM_MALLOC(ref, 1);
    if (!rc)
        rc = btrm_model_read_backbone(o->model_path, ref, &own);
    free(ref);
    if (!rc && own) {
        rc = export_own(o, &head, params, &meta, md, hash);
        goto done;
    }
    if (rc)
        goto done;
    if (o->with_backbone) {
        if (head.kind != BTRM_HEAD_LINEAR) {
            rc = btrm_error_set(BTRM_EUSAGE, "--with-backbone: %s has an mlp head; "
                                "LlamaForSequenceClassification's score layer is linear (export "
                                "the head alone)", o->model_path);
            goto done;
        }
        if ((rc = btrm_backbone_spec_for(rec, o->model_path, o->backbone, o->cfg, spec,
                                         sizeof spec)) ||
            (rc = add_backbone(&l, spec, rec, o->model_path, md, &config)))
            goto done;
        if (l.model->hp.dim != head.dim) {
            rc = btrm_error_set(BTRM_EUSAGE, "%s takes %d features; backbone %s gives %d",
                                o->model_path, head.dim, spec, l.model->hp.dim);
            goto done;
        }
    }
    if ((rc = add_head(&l, &head, params, &meta, md)) || (rc = btrm_mkdir_p(o->out_dir)))
        goto done;
    btrm_path_join(path, sizeof path, o->out_dir, "model.safetensors");
    if ((rc = btrm_safetensors_write(path, l.t, l.n, md)))
        goto done;
    btrm_log_info("export: wrote %s (%d tensors%s)", path, l.n,
                  config ? ", LlamaForSequenceClassification" : "");
    btrm_path_join(path, sizeof path, o->out_dir, "config.json");
    if (config) {
        rc = btrm_json_write_atomic(path, config);
        if (!rc)
            btrm_log_info("export: wrote %s", path);
    } else {
        rc = remove_stale(o->out_dir, "config.json");
    }
    /* a fine-tuned model's adapter, from an earlier export into DIR */
    if (!rc)
        rc = remove_stale(o->out_dir, "adapter_model.safetensors");
    if (!rc)
        rc = remove_stale(o->out_dir, "adapter_config.json");
done:
    free(rec);
    list_free(&l);
    json_decref(md);
    json_decref(config);
    free(params);
    return rc;
}
