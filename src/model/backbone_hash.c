/* backbone_hash.c: the `hash` backbone, a lexical baseline (bag of word
 * unigrams and bigrams, signed feature hashing, sublinear tf, L2 norm). It is
 * not a language model: it sees words, not meaning. docs/data-prep.md gives
 * the exact definition; backbone.h the summary.
 *
 * Work buffers (code points, token bytes, the table of distinct tokens, the
 * double accumulator) live in the backbone and grow to the longest text seen,
 * so encoding allocates nothing per text once warm. */
#include "backbone.h"

#include "error.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

/* NFKC + case folding: utf8proc_map's options, minus NULLTERM (we pass the
 * length, which for a NUL-terminated string is the same thing). */
#define NORMALIZE_OPTIONS                                                        \
    (UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD)
#define HASH_DIM_MAX (1 << 24)

typedef struct hash_backbone {
    int dim;
    utf8proc_int32_t *cps; /* normalised code points of one text */
    size_t cps_cap;
    char *bytes;           /* "w1 w2 w3": the words' UTF-8, one space apart */
    size_t bytes_cap;
    /* distinct tokens of one text, in order of first occurrence, found
     * through an open-addressing table of their 64-bit hashes */
    uint64_t *keys;        /* [cap] token hash */
    uint32_t *counts;      /* [cap] tf */
    uint32_t *slot_of;     /* [cap] the table slot of keys[i] (to clear it) */
    size_t n_keys, keys_cap;
    int32_t *table;        /* [table_size] index into keys, -1 = empty */
    size_t table_size;     /* a power of two >= 2 * keys_cap */
    double *acc;           /* [dim] accumulator, zero between texts */
} hash_backbone;

static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t cap_new = *cap ? *cap : 256;
    while (cap_new < need)
        cap_new *= 2;
    void *p = realloc(*buf, cap_new * elem);
    if (!p)
        return btrm_error_set(BTRM_ENOMEM, "hash backbone: out of memory (%zu bytes)",
                              cap_new * elem);
    *buf = p;
    *cap = cap_new;
    return 0;
}

/* Letters and numbers start and continue a word; combining marks continue one
 * (so that scripts with spacing vowel signs keep their words whole). */
static int starts_word(utf8proc_int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}
static int continues_word(utf8proc_int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return starts_word(cp) || (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME);
}

typedef void (*token_fn)(const char *token, size_t len, void *user);

/* Normalises text into h->cps[0..*n_cps) and makes room for its words'
 * bytes. */
static int normalize(hash_backbone *h, const char *text, size_t *n_cps)
{
    size_t len = strlen(text);
    utf8proc_ssize_t n = utf8proc_decompose((const utf8proc_uint8_t *)text,
                                            (utf8proc_ssize_t)len, h->cps,
                                            (utf8proc_ssize_t)h->cps_cap, NORMALIZE_OPTIONS);
    if (n > (utf8proc_ssize_t)h->cps_cap) {
        int rc = grow((void **)&h->cps, &h->cps_cap, (size_t)n, sizeof *h->cps);
        if (rc)
            return rc;
        n = utf8proc_decompose((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, h->cps,
                               (utf8proc_ssize_t)h->cps_cap, NORMALIZE_OPTIONS);
    }
    if (n >= 0)
        n = utf8proc_normalize_utf32(h->cps, n, NORMALIZE_OPTIONS);
    if (n < 0)
        return btrm_error_set(BTRM_EDATA, "%s", utf8proc_errmsg(n));
    *n_cps = (size_t)n;
    /* At most 4 UTF-8 bytes per code point plus one space per word. */
    return grow((void **)&h->bytes, &h->bytes_cap, 5 * (size_t)n + 1, 1);
}

/* Emits the unigrams and bigrams of the normalised h->cps[0..n): word i,
 * then "word(i-1) word(i)". Words are written to h->bytes one space apart, so
 * a bigram is the contiguous span from its first word to its second. */
static void emit_tokens(hash_backbone *h, size_t n, token_fn fn, void *user)
{
    size_t used = 0, prev_start = 0, n_words = 0, i = 0;
    while (i < n) {
        if (!starts_word(h->cps[i])) {
            i++;
            continue;
        }
        if (n_words > 0)
            h->bytes[used++] = ' ';
        size_t start = used;
        while (i < n && continues_word(h->cps[i]))
            used += (size_t)utf8proc_encode_char(h->cps[i++],
                                                 (utf8proc_uint8_t *)h->bytes + used);
        fn(h->bytes + start, used - start, user);
        if (n_words > 0)
            fn(h->bytes + prev_start, used - prev_start, user);
        prev_start = start;
        n_words++;
    }
}

/* Counts one token: a new key, or one more occurrence of a known one. */
static void count_token(const char *token, size_t len, void *user)
{
    hash_backbone *h = user;
    uint64_t key = XXH3_64bits_withSeed(token, len, BTRM_HASH_SEED);
    size_t mask = h->table_size - 1, slot = (size_t)(key ^ (key >> 32)) & mask;
    for (; h->table[slot] >= 0; slot = (slot + 1) & mask)
        if (h->keys[h->table[slot]] == key) {
            h->counts[h->table[slot]]++;
            return;
        }
    h->table[slot] = (int32_t)h->n_keys;
    h->keys[h->n_keys] = key;
    h->counts[h->n_keys] = 1;
    h->slot_of[h->n_keys++] = (uint32_t)slot;
}

/* Room for max_tokens distinct tokens (the table stays at most half full). */
static int reserve_tokens(hash_backbone *h, size_t max_tokens)
{
    if (max_tokens <= h->keys_cap)
        return 0;
    size_t cap = h->keys_cap ? h->keys_cap : 256;
    while (cap < max_tokens)
        cap *= 2;
    if (cap > (size_t)INT32_MAX / 2)
        return btrm_error_set(BTRM_ENOMEM, "hash backbone: text too long (%zu tokens)",
                              max_tokens);
    uint64_t *keys = realloc(h->keys, cap * sizeof *keys);
    if (keys)
        h->keys = keys;
    uint32_t *counts = realloc(h->counts, cap * sizeof *counts);
    if (counts)
        h->counts = counts;
    uint32_t *slot_of = realloc(h->slot_of, cap * sizeof *slot_of);
    if (slot_of)
        h->slot_of = slot_of;
    int32_t *table = realloc(h->table, 2 * cap * sizeof *table);
    if (table)
        h->table = table;
    if (!keys || !counts || !slot_of || !table)
        return btrm_error_set(BTRM_ENOMEM, "hash backbone: out of memory (%zu tokens)", cap);
    for (size_t i = 0; i < 2 * cap; i++)
        h->table[i] = -1;
    h->keys_cap = cap;
    h->table_size = 2 * cap;
    return 0;
}

/* out[dim] = the features of one text. */
static int encode_one(hash_backbone *h, const char *text, float *out)
{
    size_t n = 0;
    int rc = normalize(h, text, &n);
    /* Words are at least one code point apart: n code points hold at most
     * (n + 1) / 2 words, so fewer than n + 1 unigrams and bigrams. */
    if (!rc)
        rc = reserve_tokens(h, n + 1);
    if (rc)
        return rc;
    h->n_keys = 0;
    emit_tokens(h, n, count_token, h);
    /* In order of first occurrence: the sums are the same on every machine. */
    for (size_t i = 0; i < h->n_keys; i++) {
        uint64_t key = h->keys[i];
        double weight = 1.0 + log((double)h->counts[i]);
        h->acc[key % (uint64_t)h->dim] += (key >> 63) ? -weight : weight;
        h->table[h->slot_of[i]] = -1;
    }
    double sumsq = 0.0;
    for (int k = 0; k < h->dim; k++)
        sumsq += h->acc[k] * h->acc[k];
    double scale = sumsq > 0.0 ? 1.0 / sqrt(sumsq) : 0.0;
    for (int k = 0; k < h->dim; k++) {
        out[k] = (float)(h->acc[k] * scale);
        h->acc[k] = 0.0;
    }
    return 0;
}

static void hash_close(btrm_backbone *bb)
{
    hash_backbone *h = (hash_backbone *)bb;
    if (!h)
        return;
    BTRM_FREE(h->cps, h->bytes, h->keys, h->counts, h->slot_of, h->table, h->acc, h);
}

static int hash_open(btrm_backbone **bb, const char *args, int dim)
{
    *bb = NULL;
    if (args && args[0])
        return btrm_error_set(BTRM_EUSAGE, "the hash backbone takes no arguments (got '%s')",
                              args);
    if (dim == 0)
        dim = BTRM_HASH_DIM_DEFAULT;
    if (dim < 1 || dim > HASH_DIM_MAX)
        return btrm_error_set(BTRM_EUSAGE, "hash backbone: dim must be in [1, %d] (got %d)",
                              HASH_DIM_MAX, dim);
    hash_backbone *h = NULL;
    int rc = BTRM_CALLOC(h, 1);
    if (rc)
        return rc;
    h->dim = dim;
    rc = BTRM_CALLOC(h->acc, (size_t)dim);
    if (rc) {
        hash_close((btrm_backbone *)h);
        return rc;
    }
    *bb = (btrm_backbone *)h;
    return 0;
}

static int hash_encode(btrm_backbone *bb, const char *const *texts, size_t n, float *out)
{
    hash_backbone *h = (hash_backbone *)bb;
    for (size_t i = 0; i < n; i++) {
        int rc = encode_one(h, texts[i] ? texts[i] : "", out + i * (size_t)h->dim);
        if (rc && n > 1)
            return btrm_error_wrap(rc, "hash backbone: text %zu of the batch", i);
        if (rc)
            return btrm_error_wrap(rc, "hash backbone");
    }
    return 0;
}

static int hash_dim(const btrm_backbone *bb) { return ((const hash_backbone *)bb)->dim; }

static int hash_describe(const btrm_backbone *bb, char *label, size_t label_size,
                         json_t *attrs)
{
    const hash_backbone *h = (const hash_backbone *)bb;
    snprintf(label, label_size, "hash-%d", h->dim);
    char seed[32];
    snprintf(seed, sizeof seed, "0x%llx", (unsigned long long)BTRM_HASH_SEED);
    char utf8proc[32];
    snprintf(utf8proc, sizeof utf8proc, "%s", utf8proc_version());
    if (json_object_set_new(attrs, "backbone_spec", json_string("hash")) ||
        json_object_set_new(attrs, "hash_function", json_string("XXH3-64")) ||
        json_object_set_new(attrs, "hash_seed", json_string(seed)) ||
        json_object_set_new(attrs, "tokenizer",
                            json_string("utf8proc NFKC+casefold; words = runs of L*/N* (+M*)")) ||
        json_object_set_new(attrs, "ngrams", json_string("unigrams, bigrams \"w1 w2\"")) ||
        json_object_set_new(attrs, "weighting", json_string("signed, 1+ln(tf), L2-normalised")) ||
        json_object_set_new(attrs, "utf8proc_version", json_string(utf8proc)))
        return btrm_error_set(BTRM_ENOMEM, "hash backbone: out of memory describing itself");
    return 0;
}

const btrm_backbone_ops btrm_backbone_hash_ops = {
    .name = "hash",
    .summary = "lexical baseline: hashed word unigrams+bigrams, 1+ln tf, L2 (not an LLM)",
    .open = hash_open,
    .encode = hash_encode,
    .dim = hash_dim,
    .describe = hash_describe,
    .close = hash_close,
};

int btrm_hash_tokens(const char *text, token_fn fn, void *user)
{
    hash_backbone h;
    memset(&h, 0, sizeof h);
    size_t n = 0;
    int rc = normalize(&h, text, &n);
    if (!rc)
        emit_tokens(&h, n, fn, user);
    free(h.cps);
    free(h.bytes);
    return rc;
}
