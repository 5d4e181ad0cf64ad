/* test-backbone.c: the backbone table (NAME[:ARGS] lookup), the spec that
 * makes a model's recorded features again and the check of a backbone
 * against that record (feature_record.h), and the hash
 * backbone against an independent recomputation (an ASCII tokenizer written
 * here without utf8proc, its own tf/sign/bucket arithmetic), hard-coded
 * vectors, XXH3 reference values, NFKC/case folding, norms and the zero
 * vector of a text without words. */
#include "backbone.h"
#include "error.h"
#include "feature_record.h"
#include "tap.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

/* ------------------------------------------------------------------------ */
/* The reference: ASCII only. Words = maximal runs of [A-Za-z0-9], lowered;
 * tokens = words and "w1 w2" pairs; for each distinct token (by its bytes)
 * x[h % D] += sign * (1 + ln tf); then x / ||x||. Distinct tokens are found
 * by string comparison, not by hash, and the sum runs in token order, so this
 * shares no code path with backbone_hash.c but XXH3 itself. */
#define REF_MAX_TOKENS 256

static int ref_encode(const char *text, int dim, double *x)
{
    char words[REF_MAX_TOKENS][64];
    int n_words = 0;
    for (const char *p = text; *p;) {
        if (!isalnum((unsigned char)*p)) {
            p++;
            continue;
        }
        int len = 0;
        while (isalnum((unsigned char)*p) && len < 63)
            words[n_words][len++] = (char)tolower((unsigned char)*p++);
        words[n_words++][len] = '\0';
    }
    char tokens[2 * REF_MAX_TOKENS][130];
    int n_tokens = 0;
    for (int i = 0; i < n_words; i++) {
        strcpy(tokens[n_tokens++], words[i]); /* words hold at most 63 bytes */
        if (i > 0) {
            strcpy(tokens[n_tokens], words[i - 1]);
            strcat(tokens[n_tokens], " ");
            strcat(tokens[n_tokens++], words[i]);
        }
    }
    for (int k = 0; k < dim; k++)
        x[k] = 0.0;
    for (int i = 0; i < n_tokens; i++) {
        int seen = 0, tf = 0;
        for (int j = 0; j < i; j++)
            seen |= !strcmp(tokens[j], tokens[i]);
        if (seen)
            continue;
        for (int j = i; j < n_tokens; j++)
            tf += !strcmp(tokens[j], tokens[i]);
        uint64_t h = XXH3_64bits_withSeed(tokens[i], strlen(tokens[i]), BTRM_HASH_SEED);
        double sign = (h & 0x8000000000000000ULL) ? -1.0 : 1.0;
        x[h % (uint64_t)dim] += sign * (1.0 + log((double)tf));
    }
    double norm = 0.0;
    for (int k = 0; k < dim; k++)
        norm += x[k] * x[k];
    norm = sqrt(norm);
    for (int k = 0; k < dim && norm > 0; k++)
        x[k] /= norm;
    return n_tokens;
}

static double max_abs_diff(const float *a, const double *b, int n)
{
    double worst = 0.0;
    for (int i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst;
}

static double max_abs_diff_f(const float *a, const float *b, int n)
{
    double worst = 0.0;
    for (int i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    return worst;
}

static double norm2(const float *x, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

/* Encodes one text with an open handle into out[dim]. */
static int enc(btrm_backbone_handle *h, const char *text, float *out)
{
    const char *texts[1] = { text };
    return btrm_backbone_encode(h, texts, 1, out);
}

/* Words of utf8proc_map(text, NULLTERM|STABLE|COMPOSE|COMPAT|CASEFOLD) (the
 * documented normalisation, through utf8proc's one-call API rather than the
 * backbone's decompose + normalize_utf32), split at code points that are not
 * L*, N* or (inside a word) M*, joined by single spaces. */
static void ref_words(const char *text, char *out, size_t size)
{
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, 0, &mapped,
                                      UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                                          UTF8PROC_COMPAT | UTF8PROC_CASEFOLD);
    size_t used = 0;
    int in_word = 0;
    out[0] = '\0';
    for (utf8proc_ssize_t i = 0; n > 0 && i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(mapped + i, n - i, &cp);
        const char *cat = utf8proc_category_string(cp);
        int letter_digit = cat[0] == 'L' || cat[0] == 'N';
        int word = letter_digit || (in_word && cat[0] == 'M');
        if (word && !in_word && used > 0 && used + 1 < size)
            out[used++] = ' ';
        if (word && used + (size_t)k < size) {
            memcpy(out + used, mapped + i, (size_t)k);
            used += (size_t)k;
        }
        in_word = word;
        i += k;
    }
    out[used] = '\0';
    free(mapped);
}

typedef struct token_list {
    char items[32][128];
    int n;
} token_list;

static void collect(const char *token, size_t len, void *user)
{
    token_list *l = user;
    if (l->n < 32 && len < 128) {
        memcpy(l->items[l->n], token, len);
        l->items[l->n][len] = '\0';
    }
    l->n++;
}

/* btrm_backbone_spec_for: spec_for(rec, user) into out, 0 or the code. */
static int spec_for(const btrm_feature_record *rec, const char *user, char *out, size_t size)
{
    out[0] = '\0';
    return btrm_backbone_spec_for(rec, "m.h5", user, NULL, out, size);
}

static void test_record(void)
{
    /* what a hash backbone records, and the spec made from it */
    btrm_backbone_handle h;
    btrm_feature_record rec, llm;
    char out[512];
    is_int(btrm_backbone_open(&h, "hash", 16), 0, "record: open hash with dim 16");
    is_int(btrm_backbone_record(&h, &rec), 0, "record: a backbone's record");
    ok(rec.present && !strcmp(rec.backbone, "hash") && !strcmp(rec.label, "hash-16") &&
           !strcmp(rec.spec, "hash") && rec.dim == 16 && rec.bos == -1 && !rec.pool[0],
       "record: hash-16: name, label, spec 'hash', 16 features, no LLM settings");
    btrm_backbone_close(&h);
    ok(spec_for(&rec, NULL, out, sizeof out) == 0 && !strcmp(out, "hash"),
       "spec: a hash model opens 'hash' by default");
    is_int(btrm_backbone_open_checked(&h, "hash", 16, &rec, "m.h5", "--backbone hash"), 0,
           "check: the same backbone passes");
    btrm_backbone_close(&h);

    /* an LLM's record: the recorded spec by default, its settings under a
     * spec the user writes, and the user's own options last */
    btrm_feature_record_clear(&llm);
    snprintf(llm.label, sizeof llm.label, "gguf:m.gguf,pool=mean,max_tokens=8");
    snprintf(llm.spec, sizeof llm.spec, "gguf:/models/m.gguf,pool=mean,max_tokens=8,bos=0,"
             "kernel=int8");
    snprintf(llm.pool, sizeof llm.pool, "mean");
    snprintf(llm.kernel, sizeof llm.kernel, "int8");
    snprintf(llm.precision, sizeof llm.precision, "bf16");
    llm.bos = 0;
    llm.max_tokens = 8;
    llm.dim = 64;
    btrm_feature_record_finish(&llm);
    ok(spec_for(&llm, NULL, out, sizeof out) == 0 && !strcmp(out, llm.spec),
       "spec: by default the recorded spec");
    ok(spec_for(&llm, "gguf:copy.gguf", out, sizeof out) == 0 &&
           !strcmp(out,
                   "gguf:copy.gguf,pool=mean,max_tokens=8,bos=0,kernel=int8,precision=bf16"),
       "spec: a user's spec gets the recorded settings");
    ok(spec_for(&llm, "gguf:copy.gguf,pool=last,threads=2", out, sizeof out) == 0 &&
           !strcmp(out, "gguf:copy.gguf,pool=mean,max_tokens=8,bos=0,kernel=int8,precision=bf16,"
                        "pool=last,threads=2"),
       "spec: ... before its own options, which win (then the check refuses pool=last)");
    ok(spec_for(&llm, "hash", out, sizeof out) == 0 && !strcmp(out, "hash"),
       "spec: another backbone gets none of them");
    ok(btrm_backbone_open_checked(&h, "hash", 64, &llm, "m.h5", "--backbone hash") ==
               BTRM_EUSAGE &&
           strstr(btrm_error_msg(), "m.h5 has gguf:m.gguf,pool=mean,max_tokens=8 (gguf") &&
           strstr(btrm_error_msg(), "--backbone hash has hash-64 (hash, 64 features)") &&
           strstr(btrm_error_msg(), "(backbone gguf vs hash)") && !h.ops,
       "check: another backbone is refused, naming the model and the backbone; nothing stays "
       "open");

    /* nothing to open by default */
    btrm_feature_record_clear(&rec);
    ok(spec_for(&rec, NULL, out, sizeof out) == BTRM_EUSAGE &&
           strstr(btrm_error_msg(), "m.h5 does not record a backbone btrm can run") &&
           strstr(btrm_error_msg(), "give --backbone"),
       "spec: a model without a record needs --backbone");
    ok(spec_for(&rec, "gguf:m.gguf,pool=last", out, sizeof out) == 0 &&
           !strcmp(out, "gguf:m.gguf,pool=last"),
       "spec: ... which is taken as it is");
    snprintf(rec.label, sizeof rec.label, "synth");
    btrm_feature_record_finish(&rec);
    ok(spec_for(&rec, NULL, out, sizeof out) == BTRM_EUSAGE &&
           strstr(btrm_error_msg(), "(synth)"),
       "spec: features btrm did not make need --backbone, naming them");
    is_int(btrm_backbone_open_checked(&h, "hash", 8, &rec, "m.h5", "--backbone hash"), 0,
           "check: features btrm did not make are not checked");
    btrm_backbone_close(&h);
}

int main(void)
{
    plan(50);
    test_record();

    /* XXH3 itself: reference values of the xxHash test suite (empty input). */
    is_int((long long)(XXH3_64bits_withSeed("", 0, 0) == 0x2D06800538D394C2ULL), 1,
           "XXH3-64 of the empty input, seed 0, is the published 2D06800538D394C2");

    /* Lookup and NAME:ARGS parsing */
    const char *args = NULL;
    ok(btrm_backbone_lookup("hash", &args) == &btrm_backbone_hash_ops && args[0] == '\0',
       "lookup 'hash' finds the hash table with empty args");
    ok(btrm_backbone_lookup("hash:abc:d", &args) == &btrm_backbone_hash_ops &&
           !strcmp(args, "abc:d"),
       "lookup 'hash:abc:d' splits at the first colon (args 'abc:d')");
    ok(btrm_backbone_lookup("hashx", &args) == NULL && btrm_error_code() == BTRM_EUSAGE &&
           strstr(btrm_error_msg(), "known: hash"),
       "an unknown name is BTRM_EUSAGE and lists the known backbones");
    btrm_backbone_handle h;
    is_int(btrm_backbone_open(&h, "nope:model.gguf", 0), BTRM_EUSAGE,
           "opening a backbone that is not built in fails with BTRM_EUSAGE");
    is_int(btrm_backbone_open(&h, "hash:x", 0), BTRM_EUSAGE,
           "the hash backbone rejects arguments");
    is_int(btrm_backbone_open(&h, "hash", -3), BTRM_EUSAGE, "a negative dim is rejected");
    is_int(btrm_backbone_open(&h, "hash", 0), 0, "hash opens with the default dim");
    is_int(h.dim, BTRM_HASH_DIM_DEFAULT, "the default dim is 4096");
    char label[64];
    json_t *attrs = json_object();
    is_int(btrm_backbone_describe(&h, label, sizeof label, attrs), 0, "describe works");
    is_string(label, "hash-4096", "the label is hash-<dim>");
    ok(json_is_string(json_object_get(attrs, "hash_seed")) &&
           !strcmp(json_string_value(json_object_get(attrs, "hash_seed")), "0x6274726d"),
       "attributes carry the hash seed");
    json_decref(attrs);
    btrm_backbone_close(&h);
    btrm_backbone_close(&h); /* a closed handle is fine */

    /* Tokens */
    token_list tl = { .n = 0 };
    is_int(btrm_hash_tokens("Hello, wörld! 42x", collect, &tl), 0, "tokenize a mixed text");
    ok(tl.n == 5 && !strcmp(tl.items[0], "hello") && !strcmp(tl.items[1], "wörld") &&
           !strcmp(tl.items[2], "hello wörld") && !strcmp(tl.items[3], "42x") &&
           !strcmp(tl.items[4], "wörld 42x"),
       "tokens are hello, wörld, 'hello wörld', 42x, 'wörld 42x' (punctuation separates)");
    tl.n = 0;
    btrm_hash_tokens("\xEF\xBC\xA8\xEF\xBD\x85\xEF\xBD\x8C\xEF\xBD\x8C\xEF\xBD\x8F "
                     "STRASSE \xEF\xAC\x81le", collect, &tl); /* Ｈｅｌｌｏ STRASSE ﬁle */
    ok(tl.n == 5 && !strcmp(tl.items[0], "hello") && !strcmp(tl.items[1], "strasse") &&
           !strcmp(tl.items[3], "file"),
       "NFKC + case folding: fullwidth Ｈｅｌｌｏ -> hello, STRASSE -> strasse, ligature ﬁ -> fi");
    tl.n = 0;
    btrm_hash_tokens("\xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA5\x8D\xE0\xA4\xA6\xE0\xA5\x80",
                     collect, &tl); /* हिन्दी: letters with vowel signs and a virama */
    is_int(tl.n, 1, "combining marks stay inside a word (Devanagari हिन्दी is one token)");
    /* unigrams joined = the words of utf8proc_map's output */
    static const char *const unicode[] = {
        "\xEF\xBC\xA8\xEF\xBD\x85\xEF\xBD\x8C\xEF\xBD\x8C\xEF\xBD\x8F, \xEF\xBC\xB7\xEF\xBC\xAF! " /* Ｈｅｌｌｏ, ＷＯ! */
        "\xC7\x84" "emal \xEF\xAC\x83 Stra\xC3\x9F" "e \xC2\xBD \xE2\x91\xA0 x\xC2\xB2", /* Ǆemal ﬃ Straße ½ ① x² */
        "Ὀδυσσεύς ΣΊΣΥΦΟΣ Дом-2 हिन्दी  caf\x65\xCC\x81\tnaïve_ness 3.14",
    };
    int same = 1;
    for (int u = 0; u < 2; u++) {
        char want[512], got[512] = "";
        ref_words(unicode[u], want, sizeof want);
        tl.n = 0;
        btrm_hash_tokens(unicode[u], collect, &tl);
        size_t used = 0;
        for (int t = 0; t < tl.n && t < 32; t += (t == 0 ? 1 : 2)) /* unigrams: 0, 1, 3, 5... */
            used += (size_t)snprintf(got + used, sizeof got - used, "%s%s", used ? " " : "",
                                     tl.items[t]);
        if (strcmp(got, want)) {
            diag("got  '%s'", got);
            diag("want '%s'", want);
            same = 0;
        }
    }
    ok(same, "the unigrams are the words of utf8proc_map(NFKC, case fold) output");
    tl.n = 0;
    is_int(btrm_hash_tokens("ab\xC3(", collect, &tl), BTRM_EDATA,
           "invalid UTF-8 is BTRM_EDATA");

    /* Vectors against the reference */
    static const char *const texts[] = {
        "The cat sat on the mat.",
        "the the the cat cat",
        "Reward models score responses; NormBT rescales by 1/||h_c - h_r||.",
        "a",
    };
    const int n_texts = (int)(sizeof texts / sizeof texts[0]);
    int dims[2] = { 4096, 16 };
    for (int di = 0; di < 2; di++) {
        int dim = dims[di];
        float *out = calloc((size_t)n_texts * dim, sizeof *out);
        double *ref = calloc((size_t)dim, sizeof *ref);
        is_int(btrm_backbone_open(&h, "hash", dim), 0, "hash opens with dim %d", dim);
        is_int(btrm_backbone_encode(&h, texts, (size_t)n_texts, out), 0,
               "encode a batch of %d texts at dim %d", n_texts, dim);
        double worst = 0.0, worst_norm = 0.0;
        for (int t = 0; t < n_texts; t++) {
            ref_encode(texts[t], dim, ref);
            worst = fmax(worst, max_abs_diff(out + (size_t)t * dim, ref, dim));
            worst_norm = fmax(worst_norm, fabs(norm2(out + (size_t)t * dim, dim) - 1.0));
        }
        ok(worst < 1e-6, "dim %d: every vector matches the independent recomputation "
           "(max |diff| %.2g)", dim, worst);
        ok(worst_norm < 1e-6, "dim %d: every vector has L2 norm 1 (max |norm-1| %.2g)", dim,
           worst_norm);
        if (dim == 16) {
            /* Hard-coded (verified against the reference above and by hand):
             * "the the the cat cat" has the tokens the (tf 3), "the the" (2),
             * "the cat" (1), cat (2), "cat cat" (1), so the nonzero entries
             * are (1 + ln 3) / n, (1 + ln 2) / n (twice) and 1 / n (twice)
             * with n^2 = (1 + ln 3)^2 + 2 (1 + ln 2)^2 + 2, at the buckets and
             * with the signs that XXH3 gives them. */
            const float *x = out + 1 * (size_t)dim;
            static const float want[16] = {
                [0] = 0.287033349f, [4] = -0.602371752f, [7] = 0.48598972f,
                [12] = 0.287033349f, [15] = 0.48598972f,
            };
            ok(max_abs_diff_f(x, want, 16) < 1e-7,
               "dim 16: 'the the the cat cat' is the hard-coded vector");
            double n = sqrt(pow(1 + log(3.0), 2) + 2 * pow(1 + log(2.0), 2) + 2);
            ok(fabs(x[4] + (1 + log(3.0)) / n) < 1e-7 && fabs(x[7] - (1 + log(2.0)) / n) < 1e-7 &&
                   fabs(x[0] - 1 / n) < 1e-7,
               "dim 16: its entries are the closed-form 1+ln(tf) weights over the norm");
        }
        btrm_backbone_close(&h);
        free(out);
        free(ref);
    }

    /* Equivalences and the zero vector */
    is_int(btrm_backbone_open(&h, "hash", 256), 0, "hash opens with dim 256");
    float a[256], b[256];
    enc(&h, "\xEF\xBC\xA8\xEF\xBD\x85\xEF\xBD\x8C\xEF\xBD\x8C\xEF\xBD\x8F world", a);
    enc(&h, "hello WORLD", b);
    ok(max_abs_diff_f(a, b, 256) == 0.0, "'Ｈｅｌｌｏ world' and 'hello WORLD' give the same vector");
    enc(&h, "caf\x65\xCC\x81 au lait", a); /* e + combining acute */
    enc(&h, "caf\xC3\xA9 au lait", b);      /* precomposed é */
    ok(max_abs_diff_f(a, b, 256) == 0.0, "decomposed and precomposed é give the same vector");
    enc(&h, "", a);
    ok(norm2(a, 256) == 0.0, "the empty text gives the zero vector");
    enc(&h, " ... !!! --- ", a);
    ok(norm2(a, 256) == 0.0, "a text without letters or digits gives the zero vector");
    enc(&h, "one two", a);
    enc(&h, "two one", b);
    ok(max_abs_diff_f(a, b, 256) > 0.1, "bigrams make word order matter");
    const char *bad[2] = { "fine", "bro\xFFken" };
    float two[512];
    is_int(btrm_backbone_encode(&h, bad, 2, two), BTRM_EDATA,
           "a batch with invalid UTF-8 fails with BTRM_EDATA");
    like(btrm_error_msg(), "text 1 of the batch", "the error names the text's batch index");
    btrm_backbone_close(&h);
    return done_testing();
}
