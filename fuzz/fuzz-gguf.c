/* fuzz-gguf.c: a GGUF file (from memory) through btrm_gguf_open, every
 * metadata getter, every tensor lookup, the dequantisation of each tensor's
 * first row (quant.h: every type btrm reads) and the tokenizer glue
 * (btrm_gguf_tokenizer, then an encode and a decode). Properties (gguf.h):
 * every tensor the reader accepts lies inside the file, and its first row
 * (btrm_quant_row_bytes) lies inside the tensor. */
#include "fuzz.h"

#include "gguf.h"
#include "quant.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

static const char text[] = "Once upon a time, h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \x01 12345 <s>";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static void read_metadata(const btrm_gguf *g)
{
    for (int i = 0; i < btrm_gguf_n_kv(g); i++) {
        const char *key = btrm_gguf_key(g, i);
        if (!key || btrm_gguf_find_key(g, key) < 0)
            fuzz_fail("metadata key %d cannot be found by its name", i);
        uint32_t u32;
        int64_t i64;
        float f32;
        int b;
        const char *s;
        btrm_gguf_array arr;
        (void)btrm_gguf_get_u32(g, key, &u32);
        (void)btrm_gguf_get_i64(g, key, &i64);
        (void)btrm_gguf_get_f32(g, key, &f32);
        (void)btrm_gguf_get_bool(g, key, &b);
        if (btrm_gguf_get_string(g, key, &s) == 0 && strlen(s) > (size_t)-2)
            fuzz_fail("unterminated string");
        if (btrm_gguf_get_array(g, key, &arr) == 0) {
            volatile size_t sum = 0;
            if (arr.type == BTRM_GGUF_STRING)
                for (uint64_t k = 0; k < arr.count; k++)
                    sum += strlen(((const char *const *)arr.data)[k]);
            else if (arr.count > 0)
                sum += ((const uint8_t *)arr.data)[0];
            (void)sum;
        }
        (void)btrm_gguf_key_type(g, key);
    }
}

/* The first row of a tensor btrm accepts, at most 4096 values. */
static void dequant_row(const btrm_gguf_tensor *t)
{
    static float row[4096];
    if (!t->data || t->n_dims < 1 || !btrm_quant_supported(t->type))
        return;
    if (t->ne[0] < 1 || t->ne[0] > 4096)
        return;
    int64_t n = (int64_t)t->ne[0];
    size_t bytes = btrm_quant_row_bytes(t->type, n);
    if (!bytes)
        return;
    if (bytes > t->bytes)
        fuzz_fail("tensor %s: a row of %lld values is %zu bytes, the tensor %llu", t->name,
                  (long long)n, bytes, (unsigned long long)t->bytes);
    btrm_quant_dequant_f32(t->type, t->data, n, row);
}

static void read_tensors(const btrm_gguf *g)
{
    size_t size = 0;
    const uint8_t *bytes = btrm_gguf_bytes(g, &size);
    for (int i = 0; i < btrm_gguf_n_tensors(g); i++) {
        const btrm_gguf_tensor *t = btrm_gguf_tensor_at(g, i);
        if (btrm_gguf_find_tensor(g, t->name) != t)
            fuzz_fail("tensor %d cannot be found by its name", i);
        if (t->data) {
            const uint8_t *p = t->data;
            if (p < bytes || t->bytes > size || (size_t)(p - bytes) > size - t->bytes)
                fuzz_fail("tensor %s: %llu bytes at offset %lld lie outside the %zu-byte file",
                          t->name, (unsigned long long)t->bytes, (long long)(p - bytes), size);
            if (t->bytes) {
                volatile uint8_t last = p[t->bytes - 1];
                (void)last;
            }
        }
        char name[32];
        (void)btrm_quant_name(t->type, name, sizeof name);
        (void)btrm_gguf_type_name(t->type);
        if (btrm_gguf_tensor_check(g, t->name, t->n_dims, t->ne))
            dequant_row(t);
    }
}

static void use_tokenizer(const btrm_gguf *g)
{
    btrm_tokenizer *tok = NULL;
    int add_bos = 0;
    if (btrm_gguf_tokenizer(g, &tok, &add_bos) != 0)
        return;
    int32_t *ids = NULL;
    int n_ids = 0;
    if (btrm_tok_encode(tok, text, add_bos, &ids, &n_ids) == 0) {
        char *back = NULL;
        size_t len = 0;
        for (int i = 0; i < n_ids; i++)
            if (ids[i] < 0 || ids[i] >= btrm_tok_n_vocab(tok))
                fuzz_fail("token id %d outside the %d tokens", ids[i], btrm_tok_n_vocab(tok));
        if (btrm_tok_decode(tok, ids, n_ids, &back, &len) == 0)
            free(back);
        free(ids);
    }
    btrm_tok_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_file file;
    btrm_gguf *g = NULL;
    if (btrm_gguf_open(&g, fuzz_file_set(&file, "model.gguf", data, size)) != 0)
        return 0;
    (void)btrm_gguf_version(g);
    (void)btrm_gguf_alignment(g);
    (void)btrm_gguf_data_offset(g);
    read_metadata(g);
    read_tensors(g);
    use_tokenizer(g);
    btrm_gguf_close(g);
    return 0;
}
