/* gguf_inspect.c: `btrm inspect MODEL.gguf` (gguf_inspect.h). The container
 * is described from the GGUF reader; the model from btrm's own loader, so
 * that what it says btrm refuses is exactly what `btrm embed` would refuse. */
#include "gguf_inspect.h"

#include "error.h"
#include "gguf.h"
#include "llama_model.h"
#include "qgemm.h"
#include "quant.h"
#include "tokenizer.h"

#include <stdint.h>
#include <string.h>

int btrm_gguf_is_gguf(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4] = { 0 };
    int yes = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f)
        fclose(f);
    return yes;
}

#define MAX_TYPES 64

typedef struct type_stat {
    int count;
    uint64_t bytes, values;
} type_stat;

static void print_types(FILE *out, const btrm_gguf *g)
{
    type_stat st[MAX_TYPES] = { { 0 } };
    int other = 0;
    uint64_t total = 0, params = 0;
    for (int i = 0; i < btrm_gguf_n_tensors(g); i++) {
        const btrm_gguf_tensor *t = btrm_gguf_tensor_at(g, i);
        params += t->n_elements;
        if (t->type < 0 || t->type >= MAX_TYPES) {
            other++;
            continue;
        }
        st[t->type].count++;
        st[t->type].bytes += t->bytes;
        st[t->type].values += t->n_elements;
        total += t->bytes;
    }
    fprintf(out, "  parameters     %.3f M in %d tensors\n", (double)params / 1e6,
            btrm_gguf_n_tensors(g));
    for (int type = 0; type < MAX_TYPES; type++) {
        if (!st[type].count)
            continue;
        char name[32];
        btrm_quant_name(type, name, sizeof name);
        if (btrm_quant_supported(type))
            fprintf(out, "  %-14s %d tensor%s, %llu bytes (%.1f%%), %.2f bits per value%s\n", name,
                    st[type].count, st[type].count == 1 ? "" : "s",
                    (unsigned long long)st[type].bytes,
                    total ? 100.0 * (double)st[type].bytes / (double)total : 0.0,
                    st[type].values ? 8.0 * (double)st[type].bytes / (double)st[type].values : 0.0,
                    btrm_qgemm_has_int8(type) ? "; int8 kernel" : "");
        else
            fprintf(out, "  %-14s %d tensor%s: a type btrm does not read\n", name, st[type].count,
                    st[type].count == 1 ? "" : "s");
    }
    if (other)
        fprintf(out, "  %-14s %d tensor%s of unknown type numbers\n", "?", other,
                other == 1 ? "" : "s");
}

static void print_model(FILE *out, const btrm_llama_model *m)
{
    const btrm_llama_hparams *hp = &m->hp;
    fprintf(out, "  dimensions     dim %d, %d layers, %d heads (%d key/value), head dim %d, "
            "ffn %d, vocabulary %d, context %d\n", hp->dim, hp->n_layers, hp->n_heads,
            hp->n_kv_heads, hp->head_dim, hp->hidden_dim, hp->vocab_size, hp->context);
    fprintf(out, "  attention      rope %s on %d of %d dims, base %g%s", hp->rope_neox ?
            "NeoX halves" : "adjacent pairs", hp->rope_dim, hp->head_dim, (double)hp->rope_theta,
            hp->rope_scale != 1.0f ? " (linear scaling)" : "");
    if (hp->sliding_window > 0)
        fprintf(out, "; sliding window %d on %s", hp->sliding_window,
                hp->swa_period ? "some layers" : "every layer");
    if (hp->attn_softcap > 0.0f)
        fprintf(out, "; soft-cap %g", (double)hp->attn_softcap);
    fprintf(out, "\n");
    const btrm_tokenizer *tok = m->tok;
    fprintf(out, "  tokenizer      %s, %d tokens, BOS %d (%s by default), EOS %d\n",
            btrm_tok_kind(tok), btrm_tok_n_vocab(tok), btrm_tok_bos(tok),
            m->add_bos ? "added" : "not added", btrm_tok_eos(tok));
    fprintf(out, "  weights        %s, mapped (%zu bytes)\n", m->weight_types, m->mapped_bytes);
}

int btrm_gguf_inspect(FILE *out, const char *path)
{
    btrm_gguf *g = NULL;
    int rc = btrm_gguf_open(&g, path);
    if (rc) {
        fprintf(out, "%s: not a GGUF file btrm can read: %s\n", path, btrm_error_msg());
        return rc;
    }
    size_t size = 0;
    btrm_gguf_bytes(g, &size);
    fprintf(out, "%s: GGUF v%d, %d metadata keys, %d tensors, %zu bytes\n", path,
            btrm_gguf_version(g), btrm_gguf_n_kv(g), btrm_gguf_n_tensors(g), size);
    const char *arch = "(none)", *name = "";
    if (btrm_gguf_find_key(g, "general.architecture") >= 0)
        btrm_gguf_get_string(g, "general.architecture", &arch);
    if (btrm_gguf_find_key(g, "general.name") >= 0)
        btrm_gguf_get_string(g, "general.name", &name);
    fprintf(out, "  architecture   %s%s%s\n", arch, name[0] ? ", " : "", name);
    print_types(out, g);

    btrm_llama_model *m = NULL;
    rc = btrm_llama_model_open(&m, BTRM_LLAMA_GGUF, path, NULL, 0);
    if (!rc) {
        print_model(out, m);
        fprintf(out, "  btrm           runs it: embed.kernel dequant for every type, int8 for "
                "Q8_0 and the K-quants\n");
        btrm_llama_model_close(m);
        btrm_gguf_close(g);
        return 0;
    }
    char why[1024];
    snprintf(why, sizeof why, "%s", btrm_error_msg());
    /* the tokenizer on its own, for what it is worth */
    btrm_tokenizer *tok = NULL;
    int add_bos = 0;
    if (!btrm_gguf_tokenizer(g, &tok, &add_bos))
        fprintf(out, "  tokenizer      %s, %d tokens, BOS %d (%s by default), EOS %d\n",
                btrm_tok_kind(tok), btrm_tok_n_vocab(tok), btrm_tok_bos(tok),
                add_bos ? "added" : "not added", btrm_tok_eos(tok));
    else
        fprintf(out, "  tokenizer      refused: %s\n", btrm_error_msg());
    btrm_tok_free(tok);
    btrm_gguf_close(g);
    fprintf(out, "  btrm           refuses it: %s\n", why);
    return btrm_error_set(BTRM_EDATA, "%s", why);
}
