/* test-tokenizer.c: the tokenizers (tokenizer.c) against independent
 * references:
 *  - GPT-2 byte-level BPE: the 43 reference tokenisations of
 *    $BTRM_SHARED/models/gpt2-tokenizer/test-vectors.jsonl (tiktoken's gpt2
 *    ids), and their decoding back to the text;
 *  - SentencePiece BPE on stories260K's tok512.bin: llama2.c's own encode()
 *    re-implemented here the way run.c writes it (linear lookups, O(n^2)
 *    rescans for the best pair, byte fallback as byte + 3), compared on fixed
 *    and pseudo-random texts; the README's prompt ids for "Once upon a time";
 *    the README's 65 generated ids decoding to llama2.c's printed story;
 *    round trips with leading, trailing and repeated spaces and newlines;
 *    byte fallback on emoji and CJK; BOS/EOS; the same vocabulary written with
 *    '▁' (the GGUF form) giving the same ids;
 *  - hand-checked toy vocabularies: the Llama 3 and GPT-2 pre-tokenisation
 *    (digits in groups of up to 3, case-insensitive contractions), merge
 *    ranks, Llama 3's ignore_merges, spm scores, <unk>, errors;
 *  - 100 KB texts (normal, one 100 KB word, 100 KB of spaces) finish fast.
 * Tests that need the shared model files skip when they are absent. */
#define _POSIX_C_SOURCE 200809L
#include "error.h"
#include "tap.h"
#include "tokenizer.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_GPT2_VECTORS 43

#define DIR_MAX 2048
static char shared_dir[DIR_MAX];

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void shared_path(char *out, size_t size, const char *rel)
{
    snprintf(out, size, "%s/models/%s", shared_dir, rel);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ids_equal(const int32_t *got, int n_got, const int32_t *want, int n_want)
{
    if (n_got != n_want)
        return 0;
    for (int i = 0; i < n_got; i++)
        if (got[i] != want[i])
            return 0;
    return 1;
}

static void diag_ids(const char *what, const int32_t *ids, int n)
{
    char line[1024];
    size_t used = 0;
    line[0] = '\0';
    for (int i = 0; i < n && used + 16 < sizeof line; i++)
        used += (size_t)snprintf(line + used, sizeof line - used, " %d", (int)ids[i]);
    diag("%s:%s", what, line);
}

/* Encodes and returns the ids (or NULL with *n = -1 on error). */
static int32_t *enc(const btrm_tokenizer *tok, const char *text, int add_bos, int *n)
{
    int32_t *ids = NULL;
    if (btrm_tok_encode(tok, text, add_bos, &ids, n)) {
        diag("encode failed: %s", btrm_error_msg());
        *n = -1;
        return NULL;
    }
    return ids;
}

static int encodes_to(const btrm_tokenizer *tok, const char *text, int add_bos,
                      const int32_t *want, int n_want)
{
    int n = 0;
    int32_t *ids = enc(tok, text, add_bos, &n);
    int pass = ids && ids_equal(ids, n, want, n_want);
    if (!pass) {
        diag_ids("got ", ids, n);
        diag_ids("want", want, n_want);
    }
    free(ids);
    return pass;
}

/* encode -> decode_piece one by one (prev = previous id, -1 first) -> text. */
static int round_trips(const btrm_tokenizer *tok, const char *text, int add_bos)
{
    int n = 0;
    int32_t *ids = enc(tok, text, add_bos, &n);
    if (!ids)
        return 0;
    size_t cap = strlen(text) + 1, used = 0;
    char *out = malloc(cap), piece[256];
    int pass = out != NULL;
    for (int i = 0; pass && i < n; i++) {
        int got = btrm_tok_decode_piece(tok, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        if (got < 0 || used + (size_t)got >= cap) {
            pass = 0;
            break;
        }
        memcpy(out + used, piece, (size_t)got);
        used += (size_t)got;
    }
    pass = pass && used == strlen(text) && memcmp(out, text, used) == 0;
    if (!pass)
        diag("round trip of \"%s\" gave \"%.*s\"", text, (int)used, out ? out : "");
    free(out);
    free(ids);
    return pass;
}

/* ------------------------------------------------------------------------ */
/* llama2.c's encode() (run.c at 350e04fe), rewritten from its description:
 * vocab is tokenizer.bin's pieces, lookups are linear string compares over
 * the whole vocabulary. */
typedef struct ref_vocab {
    char **pieces;
    float *scores;
    int n;
} ref_vocab;

static int ref_load(ref_vocab *v, const char *path)
{
    memset(v, 0, sizeof *v);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int32_t max_len = 0;
    int rc = fread(&max_len, 4, 1, f) == 1 ? 0 : -1;
    int cap = 0;
    while (!rc) {
        float score;
        int32_t len;
        if (fread(&score, 4, 1, f) != 1)
            break;
        if (fread(&len, 4, 1, f) != 1 || len < 0 || len > max_len) {
            rc = -1;
            break;
        }
        if (v->n == cap) {
            cap = cap ? 2 * cap : 512;
            v->pieces = realloc(v->pieces, (size_t)cap * sizeof *v->pieces);
            v->scores = realloc(v->scores, (size_t)cap * sizeof *v->scores);
        }
        v->pieces[v->n] = calloc((size_t)len + 1, 1);
        if (fread(v->pieces[v->n], 1, (size_t)len, f) != (size_t)len)
            rc = -1;
        v->scores[v->n++] = score;
    }
    fclose(f);
    return rc;
}

static void ref_free(ref_vocab *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->pieces[i]);
    free(v->pieces);
    free(v->scores);
}

static int ref_lookup(const ref_vocab *v, const char *s)
{
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->pieces[i], s))
            return i;
    return -1;
}

static int ref_encode(const ref_vocab *v, const char *text, int bos, int32_t *tokens)
{
    int n = 0;
    char buf[64];
    if (bos)
        tokens[n++] = 1;
    if (text[0])
        tokens[n++] = ref_lookup(v, " ");
    size_t len = 0;
    for (const char *c = text; *c; c++) {
        /* llama2.c: a byte and the continuation bytes after it, up to 4 */
        if ((*c & 0xC0) != 0x80)
            len = 0;
        buf[len++] = *c;
        buf[len] = '\0';
        if ((*(c + 1) & 0xC0) == 0x80 && len < 4)
            continue;
        int id = ref_lookup(v, buf);
        if (id != -1) {
            tokens[n++] = id;
        } else {
            for (size_t i = 0; i < len; i++)
                tokens[n++] = (unsigned char)buf[i] + 3;
        }
        len = 0;
    }
    for (;;) {
        float best_score = -1e10f;
        int best_id = -1, best_idx = -1;
        for (int i = 0; i + 1 < n; i++) {
            char pair[128];
            snprintf(pair, sizeof pair, "%s%s", v->pieces[tokens[i]], v->pieces[tokens[i + 1]]);
            int id = ref_lookup(v, pair);
            if (id != -1 && v->scores[id] > best_score) {
                best_score = v->scores[id];
                best_id = id;
                best_idx = i;
            }
        }
        if (best_idx == -1)
            break;
        tokens[best_idx] = best_id;
        for (int i = best_idx + 1; i + 1 < n; i++)
            tokens[i] = tokens[i + 1];
        n--;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* A byte-level vocabulary: the 256 alphabet characters (token id = byte),
 * then the extra tokens given. */
typedef struct toy_bpe {
    char alphabet[256][3];
    const char *tokens[300];
    int n;
} toy_bpe;

static void toy_bpe_init(toy_bpe *t, const char *const *extra, int n_extra)
{
    unsigned next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = printable ? (unsigned)b : next++;
        if (cp < 0x80) {
            t->alphabet[b][0] = (char)cp;
            t->alphabet[b][1] = '\0';
        } else {
            t->alphabet[b][0] = (char)(0xC0 | (cp >> 6));
            t->alphabet[b][1] = (char)(0x80 | (cp & 0x3F));
            t->alphabet[b][2] = '\0';
        }
        t->tokens[b] = t->alphabet[b];
    }
    for (int i = 0; i < n_extra; i++)
        t->tokens[256 + i] = extra[i];
    t->n = 256 + n_extra;
}

typedef struct pieces {
    char text[1024];
    size_t used;
} pieces;

/* Joins the pre-tokens with '|'. */
static int collect(const char *piece, size_t len, void *user)
{
    pieces *p = user;
    if (p->used + len + 2 >= sizeof p->text)
        return -1;
    if (p->used)
        p->text[p->used++] = '|';
    memcpy(p->text + p->used, piece, len);
    p->used += len;
    p->text[p->used] = '\0';
    return 0;
}

static const char *split(const btrm_tokenizer *tok, const char *text, pieces *p)
{
    p->used = 0;
    p->text[0] = '\0';
    if (btrm_tok_split(tok, text, strlen(text), collect, p))
        return "(error)";
    return p->text;
}

static void test_pretokenizers(void)
{
    toy_bpe toy;
    toy_bpe_init(&toy, NULL, 0);
    btrm_tokenizer *l3 = NULL, *g2 = NULL;
    int rc = btrm_tok_bpe_from_arrays(&l3, toy.tokens, toy.n, NULL, 0, "llama-bpe", -1, -1);
    rc |= btrm_tok_bpe_from_arrays(&g2, toy.tokens, toy.n, NULL, 0, "gpt2", -1, -1);
    ok(rc == 0, "byte-alphabet toy vocabularies build with the llama-bpe and gpt2 patterns");
    pieces p;
    /* expected splits hand-checked against the patterns (and against Python's
     * regex module's findall with the same patterns) */
    is_string(split(l3, "1234567 89", &p), "123|456|7| |89",
              "llama-bpe: digits in groups of up to 3, a space is not joined to digits");
    is_string(split(g2, "1234567 89", &p), "1234567| 89", "gpt2: a digit run is one piece");
    is_string(split(l3, "I'M HERE'S THEY'LL we'Ve", &p), "I|'M| HERE|'S| THEY|'LL| we|'Ve",
              "llama-bpe: contractions match in any case");
    is_string(split(g2, "I'M HERE'S they'll", &p), "I|'|M| HERE|'|S| they|'ll",
              "gpt2: upper-case contractions are punctuation plus letters");
    is_string(split(g2, "it's", &p), "it|'s", "gpt2: a lower-case contraction is its own piece");
    is_string(split(l3, "hello\n\nworld  x\t", &p), "hello|\n\n|world| | x|\t",
              "llama-bpe: newline runs, whitespace before a word, trailing whitespace");
    is_string(split(l3, "(x)...\n\n", &p), "(x|)...\n\n",
              "llama-bpe: one non-letter joins the letters, punctuation takes the newlines");
    is_string(split(g2, "a  b\n\n", &p), "a| | b|\n\n",
              "gpt2: the last space of a run goes to the next word");
    is_string(split(l3, "été 漢字12", &p), "été| 漢字|12", "llama-bpe: Unicode letters");
    is_string(split(l3, "a\xff" "b", &p), "a|\xff|b", "invalid UTF-8 becomes a piece of its own");
    btrm_tok_free(l3);
    btrm_tok_free(g2);
}

/* llama.cpp's multi-regex pre-tokenizers, hand-checked: each regex splits
 * the pieces of the previous one into matches and the text between them. */
static void test_multi_regex(void)
{
    toy_bpe toy;
    toy_bpe_init(&toy, NULL, 0);
    btrm_tokenizer *def = NULL, *fal = NULL, *sc = NULL, *qw = NULL, *ds = NULL;
    int rc = btrm_tok_bpe_from_arrays(&def, toy.tokens, toy.n, NULL, 0, "default", -1, -1);
    rc |= btrm_tok_bpe_from_arrays(&fal, toy.tokens, toy.n, NULL, 0, "falcon", -1, -1);
    rc |= btrm_tok_bpe_from_arrays(&sc, toy.tokens, toy.n, NULL, 0, "starcoder", -1, -1);
    rc |= btrm_tok_bpe_from_arrays(&qw, toy.tokens, toy.n, NULL, 0, "qwen2", -1, -1);
    rc |= btrm_tok_bpe_from_arrays(&ds, toy.tokens, toy.n, NULL, 0, "deepseek-llm", -1, -1);
    ok(rc == 0, "the default, falcon, starcoder, qwen2 and deepseek-llm pre-tokenizers build");
    pieces p;
    /* default: punctuation runs, then GPT-2's, then digit runs, then 3 digits */
    is_string(split(def, "x=1234567!? ab", &p), "x|=|123|456|7|!?| ab",
              "default: punctuation runs first, digits in threes");
    /* falcon: no digit-run regex, so " 1234567" keeps its space and the
     * three-digit split applies inside it */
    is_string(split(fal, "a 1234567.", &p), "a| |123|456|7|.",
              "falcon: the space before digits and three-digit groups");
    is_string(split(sc, "x 2024ab", &p), "x| |2|0|2|4|ab", "starcoder: one digit per piece");
    is_string(split(qw, "I'M 2024 x", &p), "I|'M| |2|0|2|4| x", "qwen2: contractions any case, "
              "single digits");
    is_string(split(ds, "ab\ncd 12  ", &p), "ab|\n|cd| |12|  ",
              "deepseek-llm: newlines alone, letters, a trailing space run ($ = end of piece), "
              "digits");
    btrm_tokenizer *bad = NULL;
    is_int(btrm_tok_bpe_from_arrays(&bad, toy.tokens, toy.n, NULL, 0, "qwen9", -1, -1), BTRM_EDATA,
           "an unknown pre-tokenizer is BTRM_EDATA");
    like(btrm_error_msg(), "pre-tokenizer \"qwen9\" is not supported (known: default llama3",
         "... naming it and the known ones");
    int add_bos = -1, no_bos = -1;
    ok(!btrm_tok_bpe_pre_defaults("llama-bpe", &add_bos, &no_bos) && add_bos == 1 && !no_bos &&
       !btrm_tok_bpe_pre_defaults("chatglm-bpe", &add_bos, &no_bos) && add_bos == 0 && no_bos,
       "llama.cpp's BOS defaults by pre-tokenizer (llama-bpe adds one, chatglm-bpe has none)");
    btrm_tok_free(def);
    btrm_tok_free(fal);
    btrm_tok_free(sc);
    btrm_tok_free(qw);
    btrm_tok_free(ds);
}

/* Special and added tokens split off the text before tokenisation. */
static void test_special(void)
{
    static const char *const extra[] = { "<|a|>", "<|ab|>", "<u>", "ab" };
    toy_bpe toy;
    toy_bpe_init(&toy, extra, 4);
    static const char *const merges[] = { "a b" };
    btrm_tokenizer *t = NULL;
    int32_t types[260];
    for (int i = 0; i < 260; i++)
        types[i] = BTRM_TOKEN_NORMAL;
    types[256] = types[257] = BTRM_TOKEN_CONTROL;
    types[258] = BTRM_TOKEN_USER_DEFINED;
    int rc = btrm_tok_bpe_from_arrays(&t, toy.tokens, toy.n, merges, 1, "gpt-2", -1, 256);
    rc |= btrm_tok_set_types(t, types);
    ok(!rc, "a toy vocabulary with control tokens <|a|>, <|ab|> and a user-defined <u>");
    int32_t *ids = NULL;
    int n = 0;
    const char *text = "x<u>ab<|ab|> <|a|>";
    rc = btrm_tok_encode_special(t, text, strlen(text), 0, 0, &ids, &n);
    /* without parse_special: <u> is split off, the control tokens are text */
    ok(!rc && n >= 3 && ids[0] == 'x' && ids[1] == 258 && ids[2] == 259 && ids[3] == '<',
       "user-defined tokens are recognised without parse_special, control tokens are not");
    free(ids);
    rc = btrm_tok_encode_special(t, text, strlen(text), 0, 1, &ids, &n);
    ok(!rc && n == 6 && ids[0] == 'x' && ids[1] == 258 && ids[2] == 259 && ids[3] == 257 &&
       ids[4] == ' ' && ids[5] == 256, "parse_special: <|ab|> (the longest first) and <|a|> become their ids");
    free(ids);
    btrm_tok_set_strip(t, 257, 0, 1);
    rc = btrm_tok_encode_special(t, text, strlen(text), 0, 1, &ids, &n);
    ok(!rc && n == 5 && ids[3] == 257 && ids[4] == 256, "rstrip drops the space after <|ab|>");
    free(ids);
    is_int(btrm_tok_set_strip(t, 999, 1, 0), BTRM_EUSAGE, "strip of a token out of range");
    btrm_tok_free(t);

    /* spm: the space prefix comes back after each special token */
    static const char *const sp[] = { "<unk>", "<s>", "</s>", "▁", "a", "<x>", "▁a" };
    static const float scores[] = { 0, 0, 0, -1, -2, 0, -1 };
    static const int32_t st[] = { 2, 3, 3, 1, 1, 4, 1 };
    rc = btrm_tok_spm_from_arrays(&t, sp, scores, st, 7, 1, 2);
    rc |= btrm_tok_encode_special(t, "a<x>a", 5, 1, 0, &ids, &n);
    ok(!rc && n == 4 && ids[0] == 1 && ids[1] == 6 && ids[2] == 5 && ids[3] == 6,
       "spm: [BOS] ▁a <x> ▁a (the prefix after a special token)");
    free(ids);
    btrm_tok_free(t);
}

static void test_bpe_merges(void)
{
    /* ids 256.. : "ab", "bc", "abc", "abcd" (never made by a merge) */
    static const char *const extra[] = { "ab", "bc", "abc", "xyz" };
    toy_bpe toy;
    toy_bpe_init(&toy, extra, 4);
    static const char *const merges_ab_first[] = { "a b", "ab c", "b c" };
    static const char *const merges_bc_first[] = { "b c", "a b", "ab c" };
    btrm_tokenizer *t = NULL;
    int rc = btrm_tok_bpe_from_arrays(&t, toy.tokens, toy.n, merges_ab_first, 3, "gpt2", -1, 259);
    ok(rc == 0, "toy BPE builds (merges a b, ab c, b c)");
    int32_t want_abc[] = { 258 };
    ok(encodes_to(t, "abc", 0, want_abc, 1), "\"abc\": a+b first, then ab+c = \"abc\"");
    int32_t want_abcbc[] = { 258, 257 };
    ok(encodes_to(t, "abcbc", 0, want_abcbc, 2), "\"abcbc\" -> abc, bc");
    int32_t want_aaa[] = { 'a', 'a', 'a' };
    ok(encodes_to(t, "aaa", 0, want_aaa, 3), "no merge: one token per byte");
    int32_t want_xyz[] = { 'x', 'y', 'z' };
    ok(encodes_to(t, "xyz", 1, want_xyz, 3),
       "gpt2: a token no merge reaches is not used; no BOS when there is none");
    ok(btrm_tok_type(t, 259) == BTRM_TOKEN_CONTROL && btrm_tok_eos(t) == 259 &&
           btrm_tok_bos(t) == -1,
       "eos is a control token, bos -1");
    btrm_tok_free(t);
    rc = btrm_tok_bpe_from_arrays(&t, toy.tokens, toy.n, merges_bc_first, 3, "gpt2", -1, -1);
    int32_t want_a_bc[] = { 'a', 257 };
    ok(rc == 0 && encodes_to(t, "abc", 0, want_a_bc, 2),
       "rank order decides: b+c first leaves a, bc (no \"a bc\" merge)");
    btrm_tok_free(t);
    rc = btrm_tok_bpe_from_arrays(&t, toy.tokens, toy.n, merges_bc_first, 3, "llama-bpe", -1, -1);
    int32_t want_xyz_whole[] = { 259 };
    ok(rc == 0 && encodes_to(t, "xyz", 0, want_xyz_whole, 1) &&
           encodes_to(t, "abc", 0, want_abc, 1),
       "llama-bpe ignore_merges: a pre-token that is a token stays whole");
    char buf[8];
    ok(!strcmp(btrm_tok_piece(t, ' '), "\xC4\xA0") &&
           btrm_tok_decode_piece(t, -1, ' ', buf, sizeof buf) == 1 && buf[0] == ' ',
       "byte 0x20's token is \"Ġ\" (U+0120) and decodes to a space");
    btrm_tok_free(t);

    static const char *const bad_merge[] = { "a b", "ab" };
    rc = btrm_tok_bpe_from_arrays(&t, toy.tokens, toy.n, bad_merge, 2, "gpt2", -1, -1);
    ok(rc == BTRM_EDATA && t == NULL, "a merge without a space is BTRM_EDATA (%s)",
       btrm_error_msg());
    rc = btrm_tok_bpe_from_arrays(&t, toy.tokens, toy.n, NULL, 0, "qwen9", -1, -1);
    ok(rc == BTRM_EDATA && t == NULL, "an unknown pre-tokenizer is BTRM_EDATA (%s)",
       btrm_error_msg());
    rc = btrm_tok_bpe_from_arrays(&t, toy.tokens, 0, NULL, 0, "gpt2", -1, -1);
    ok(rc == BTRM_EUSAGE && t == NULL, "an empty vocabulary is BTRM_EUSAGE");
    rc = btrm_tok_bpe_from_arrays(&t, toy.tokens, toy.n, NULL, 0, "gpt2", toy.n, -1);
    ok(rc == BTRM_EUSAGE && t == NULL, "a bos id past the vocabulary is BTRM_EUSAGE");
}

/* A handmade SentencePiece vocabulary with '▁' pieces and types. */
static void test_spm_toy(void)
{
    const char *pieces[256 + 10];
    float scores[256 + 10];
    int32_t types[256 + 10];
    char bytes[256][8];
    pieces[0] = "<unk>";
    pieces[1] = "<s>";
    pieces[2] = "</s>";
    types[0] = BTRM_TOKEN_UNKNOWN;
    types[1] = types[2] = BTRM_TOKEN_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        pieces[3 + b] = bytes[b];
        types[3 + b] = BTRM_TOKEN_BYTE;
    }
    /* 259 ▁, 260 a, 261 b, 262 ab, 263 ▁a, 264 ▁ab, 265 ba */
    const char *normal[] = { "\xE2\x96\x81", "a", "b", "ab", "\xE2\x96\x81" "a",
                             "\xE2\x96\x81" "ab", "ba" };
    float normal_scores[] = { -10, -11, -12, -1, -2, -3, -0.5f };
    for (int i = 0; i < 7; i++) {
        pieces[259 + i] = normal[i];
        scores[259 + i] = normal_scores[i];
        types[259 + i] = BTRM_TOKEN_NORMAL;
    }
    for (int i = 0; i < 259; i++)
        scores[i] = 0;
    btrm_tokenizer *t = NULL;
    int rc = btrm_tok_spm_from_arrays(&t, pieces, scores, types, 266, 1, 2);
    ok(rc == 0, "a '▁' SentencePiece vocabulary with types builds");
    /* "aba" -> ▁,a,b,a; candidates ▁a (-2), ab (-1), ba (-0.5): ba merges
     * first -> ▁,a,ba; then ▁a (-2) -> ▁a, ba */
    int32_t want_aba[] = { 1, 263, 265 };
    ok(encodes_to(t, "aba", 1, want_aba, 3), "\"aba\": the best score merges first (ba)");
    int32_t want_ab[] = { 264 };
    /* ▁,a,b: ab (-1) beats ▁a (-2); then ▁+ab = ▁ab */
    ok(encodes_to(t, "ab", 0, want_ab, 1), "\"ab\" -> ab first, then ▁ab");
    /* "c" is not in the vocabulary: its byte */
    int32_t want_c[] = { 259, 3 + 'c' };
    ok(encodes_to(t, "c", 0, want_c, 2), "an unknown character falls back to its byte");
    char buf[16];
    ok(btrm_tok_decode_piece(t, 1, 264, buf, sizeof buf) == 2 && !strcmp(buf, "ab"),
       "▁ab after BOS decodes to \"ab\"");
    ok(btrm_tok_decode_piece(t, 260, 264, buf, sizeof buf) == 3 && !strcmp(buf, " ab"),
       "▁ab after another token decodes to \" ab\"");
    ok(btrm_tok_decode_piece(t, 1, 1, buf, sizeof buf) == 0 &&
           btrm_tok_decode_piece(t, 5, 2, buf, sizeof buf) == 0,
       "BOS and EOS (control) decode to nothing");
    ok(btrm_tok_decode_piece(t, 1, 3 + ' ', buf, sizeof buf) == 1 && buf[0] == ' ',
       "the byte token <0x20> after BOS keeps its space");
    ok(btrm_tok_decode_piece(t, 1, 266, buf, sizeof buf) == BTRM_EUSAGE &&
           btrm_tok_decode_piece(t, 260, 264, buf, 3) == BTRM_EUSAGE,
       "decode: id out of range and a too small buffer are BTRM_EUSAGE");
    int32_t want_ab_noprefix[] = { 262 };
    ok(btrm_tok_spm_set_space_prefix(t, 0) == 0 && encodes_to(t, "ab", 0, want_ab_noprefix, 1) &&
           btrm_tok_decode_piece(t, -1, 264, buf, sizeof buf) == 3,
       "without the space prefix: \"ab\" -> ab, and ▁ab keeps its space when decoded");
    btrm_tok_free(t);

    /* no byte tokens: <unk> for the whole character; no <unk>: an error */
    rc = btrm_tok_spm_from_arrays(&t, normal, normal_scores, NULL, 7, -1, -1);
    int n = 0;
    int32_t *ids = NULL;
    rc = rc ? rc : btrm_tok_encode(t, "a\xC3\xA9", 0, &ids, &n);
    ok(rc == BTRM_EDATA && ids == NULL, "no byte tokens and no <unk>: BTRM_EDATA (%s)",
       btrm_error_msg());
    btrm_tok_free(t);
    const char *with_unk[] = { "<unk>", "\xE2\x96\x81", "a" };
    float unk_scores[] = { 0, -1, -2 };
    rc = btrm_tok_spm_from_arrays(&t, with_unk, unk_scores, NULL, 3, -1, -1);
    int32_t want_unk[] = { 1, 2, 0 };
    ok(rc == 0 && encodes_to(t, "a\xC3\xA9", 0, want_unk, 3),
       "no byte tokens: one <unk> for a two-byte character");
    btrm_tok_free(t);
    int32_t bad_types[] = { 2, 1, 9 };
    rc = btrm_tok_spm_from_arrays(&t, with_unk, unk_scores, bad_types, 3, -1, -1);
    ok(rc == BTRM_EDATA && t == NULL, "a token type outside 0..6 is BTRM_EDATA");
}

/* ------------------------------------------------------------------------ */
/* stories260K's tok512.bin. */

static const char *const spm_texts[] = {
    "Once upon a time",
    "Once upon a time, there was a little girl named Lily.",
    "",
    " ",
    "  ",
    " leading space",
    "trailing space ",
    "trailing spaces   ",
    "two  spaces and   three",
    "line one\nline two\n\nline four\n",
    "\n",
    "\n\nHuman: hi\n\nAssistant: hello!",
    "tab\there",
    "emoji \xF0\x9F\x99\x82 and \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
    "CJK \xE6\xBC\xA2\xE5\xAD\x97 \xE3\x81\x8B\xE3\x81\xAA",
    "caf\xC3\xA9 na\xC3\xAFve",
    "<s> and </s> and <unk> and <0x41> are text",
    "\"Lily!\" she said. 'Why?' 123 4567",
};
#define N_SPM_TEXTS (int)(sizeof spm_texts / sizeof spm_texts[0])

/* Pseudo-random texts from TinyStories-like fragments. */
static void random_text(uint64_t *state, char *out, size_t size)
{
    static const char *const frag[] = {
        "Once", "upon", "a", "time", "Lily", "the", "park", "ball", "She", "he", "said",
        ",", ".", "!", "?", "\n", " ", "  ", "caf\xC3\xA9", "\xE6\xBC\xA2", "\xF0\x9F\x99\x82",
        "'", "\"", "ing", "ed", "un", "s", "x", "Q", "42",
    };
    size_t used = 0;
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    int n = (int)((*state >> 33) % 24);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *f = frag[(*state >> 33) % (sizeof frag / sizeof frag[0])];
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *sep = (*state >> 40) % 3 ? " " : "";
        if (used + strlen(f) + 2 >= size)
            break;
        used += (size_t)snprintf(out + used, size - used, "%s%s", sep, f);
    }
}

static void test_spm_bin(const char *tok_path)
{
    btrm_tokenizer *t = NULL;
    int rc = btrm_tok_spm_load_bin(&t, tok_path, 0);
    ok(rc == 0, "tok512.bin loads (%s)", rc ? btrm_error_msg() : "ok");
    if (rc) {
        skip(16, "tok512.bin did not load");
        return;
    }
    ok(btrm_tok_n_vocab(t) == 512 && btrm_tok_bos(t) == 1 && btrm_tok_eos(t) == 2 &&
           !strcmp(btrm_tok_kind(t), "spm"),
       "512 tokens to the end of the file, BOS 1, EOS 2");
    ok(!strcmp(btrm_tok_piece(t, 403), " Once") && !strcmp(btrm_tok_piece(t, 1), "\n<s>\n") &&
           !strcmp(btrm_tok_piece(t, 13), "<0x0A>") && btrm_tok_piece(t, 512) == NULL,
       "pieces as stored: 403 \" Once\", 1 \"\\n<s>\\n\", 13 <0x0A>, 512 none");

    /* the README's prompt: BOS, " Once", " upon", " a", " time" */
    int32_t want_prompt[] = { 1, 403, 407, 261, 378 };
    ok(encodes_to(t, "Once upon a time", 1, want_prompt, 5),
       "\"Once upon a time\" -> 1 403 407 261 378 (models/README.md's run)");

    /* llama2.c's encode on fixed and random texts */
    ref_vocab ref;
    if (ref_load(&ref, tok_path)) {
        ok(0, "the reference reads tok512.bin");
        ref_free(&ref);
    } else {
        int mismatches = 0, checked = 0;
        int32_t want[1024];
        char text[512];
        uint64_t state = 20240601;
        for (int i = 0; i < N_SPM_TEXTS + 300; i++) {
            const char *s = text;
            if (i < N_SPM_TEXTS)
                s = spm_texts[i];
            else
                random_text(&state, text, sizeof text);
            for (int bos = 0; bos <= 1; bos++) {
                int n_want = ref_encode(&ref, s, bos, want);
                checked++;
                if (!encodes_to(t, s, bos, want, n_want)) {
                    if (++mismatches < 4)
                        diag("text \"%s\" (bos %d) differs from llama2.c's encode", s, bos);
                }
            }
        }
        ok(mismatches == 0, "%d encodings (fixed and pseudo-random texts, with and without "
           "BOS) equal llama2.c's encode()", checked);
        ref_free(&ref);
    }

    /* round trips: decode_piece after the previous id gives back the text */
    int bad = 0;
    for (int i = 0; i < N_SPM_TEXTS; i++)
        bad += !round_trips(t, spm_texts[i], 1);
    ok(bad == 0, "encode with BOS -> decode_piece -> the text, for %d texts with leading, "
       "trailing, repeated spaces and newlines", N_SPM_TEXTS);
    bad = 0;
    for (int i = 0; i < N_SPM_TEXTS; i++)
        bad += !round_trips(t, spm_texts[i], 0);
    ok(bad == 0, "the same without BOS (prev_id -1 strips the dummy prefix)");

    /* byte fallback: U+1F642 and two CJK characters become their bytes + 3 */
    int32_t want_emoji[] = { 1, 410, 0xF0 + 3, 0x9F + 3, 0x99 + 3, 0x82 + 3 };
    ok(encodes_to(t, "\xF0\x9F\x99\x82", 1, want_emoji, 6),
       "emoji U+1F642 -> the dummy space, then <0xF0> <0x9F> <0x99> <0x82>");
    int n = 0;
    int32_t *ids = enc(t, "\xE6\xBC\xA2\xE5\xAD\x97", 1, &n);
    int32_t want_cjk[] = { 1, 410, 0xE6 + 3, 0xBC + 3, 0xA2 + 3, 0xE5 + 3, 0xAD + 3, 0x97 + 3 };
    char *text = NULL;
    size_t len = 0;
    ok(ids && ids_equal(ids, n, want_cjk, 8) && btrm_tok_decode(t, ids, n, &text, &len) == 0 &&
           len == 6 && !memcmp(text, "\xE6\xBC\xA2\xE5\xAD\x97", 6),
       "CJK \"漢字\" -> six byte tokens that decode back to the UTF-8");
    free(ids);
    free(text);

    /* BOS / EOS */
    int32_t want_bos_only[] = { 1 };
    ok(encodes_to(t, "", 1, want_bos_only, 1) && encodes_to(t, "", 0, NULL, 0),
       "the empty text: [BOS] with add_bos, [] without (no dummy prefix)");
    ids = enc(t, "Once", 0, &n);
    ok(ids && n == 1 && ids[0] == 403, "add_bos 0: no BOS, \"Once\" -> 403");
    free(ids);
    char piece[64];
    ok(btrm_tok_decode_piece(t, 1, 403, piece, sizeof piece) == 4 && !strcmp(piece, "Once") &&
           btrm_tok_decode_piece(t, 261, 403, piece, sizeof piece) == 5 &&
           btrm_tok_decode_piece(t, 403, 2, piece, sizeof piece) == 0 &&
           btrm_tok_decode_piece(t, 403, 13, piece, sizeof piece) == 1 && piece[0] == '\n',
       "decode: \"Once\" after BOS, \" Once\" after a token, EOS empty, <0x0A> a newline");

    /* the README's greedy run: 65 ids decode to llama2.c's printed text */
    static const int32_t run_ids[] = {
        1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
        401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328,
        432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335,
        312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310,
    };
    const char *story = "Once upon a time, there was a little girl named Lily. She loved to "
                        "play outside in the park. One day, she saw a big, red ball. She "
                        "wanted to play with it, but it was too high.\nLily";
    text = NULL;
    rc = btrm_tok_decode(t, run_ids, 65, &text, &len);
    is_string(rc == 0 ? text : NULL, story,
              "the README's 65 generated ids decode to llama2.c's printed story");
    free(text);

    /* the same vocabulary in the GGUF form: '▁' for spaces, explicit types */
    int n_vocab = btrm_tok_n_vocab(t);
    char **pieces = calloc((size_t)n_vocab, sizeof *pieces);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    ref_vocab rv;
    rc = ref_load(&rv, tok_path);
    for (int id = 0; !rc && id < n_vocab; id++) {
        const char *p = id == 1 ? "<s>" : id == 2 ? "</s>" : rv.pieces[id];
        pieces[id] = calloc(3 * strlen(p) + 1, 1);
        for (char *o = pieces[id]; *p; p++) {
            if (*p == ' ') {
                memcpy(o, "\xE2\x96\x81", 3);
                o += 3;
            } else {
                *o++ = *p;
            }
        }
        scores[id] = rv.scores[id];
        types[id] = id == 0 ? 2 : id <= 2 ? 3 : id <= 258 ? 6 : 1;
    }
    btrm_tokenizer *g = NULL;
    rc = rc ? rc : btrm_tok_spm_from_arrays(&g, (const char *const *)pieces, scores, types,
                                             n_vocab, 1, 2);
    bad = rc != 0;
    uint64_t state = 7;
    char rtext[512];
    for (int i = 0; !rc && i < N_SPM_TEXTS + 100; i++) {
        const char *s = rtext;
        if (i < N_SPM_TEXTS)
            s = spm_texts[i];
        else
            random_text(&state, rtext, sizeof rtext);
        int n_a = 0, n_b = 0;
        int32_t *a = enc(t, s, 1, &n_a), *b = enc(g, s, 1, &n_b);
        bad += !a || !b || !ids_equal(a, n_a, b, n_b);
        free(a);
        free(b);
    }
    ok(bad == 0, "the '▁' form with types (as in stories260K.gguf) encodes like tok512.bin");
    ok(g && !strcmp(btrm_tok_piece(g, 403), "\xE2\x96\x81Once") &&
           btrm_tok_decode_piece(g, 261, 403, piece, sizeof piece) == 5 &&
           !strcmp(piece, " Once"),
       "btrm_tok_piece keeps '▁'; decode_piece turns it into a space");
    btrm_tok_free(g);
    for (int id = 0; id < n_vocab; id++)
        free(pieces[id]);
    free(pieces);
    free(scores);
    free(types);
    ref_free(&rv);

    /* --vocab: fewer records than asked is an error, fewer than present is fine */
    btrm_tokenizer *small = NULL;
    rc = btrm_tok_spm_load_bin(&small, tok_path, 600);
    ok(rc == BTRM_EDATA && small == NULL, "n_vocab 600 on a 512-token file is BTRM_EDATA (%s)",
       btrm_error_msg());
    rc = btrm_tok_spm_load_bin(&small, tok_path, 300);
    ok(rc == 0 && btrm_tok_n_vocab(small) == 300, "n_vocab 300 reads the first 300 records");
    btrm_tok_free(small);
    btrm_tok_free(t);
}

static void test_spm_files(void)
{
    btrm_tokenizer *t = NULL;
    int rc = btrm_tok_spm_load_bin(&t, "/nonexistent/tok.bin", 0);
    ok(rc == BTRM_EIO && t == NULL, "a missing tokenizer.bin is BTRM_EIO (%s)",
       btrm_error_msg());
    char path[] = "/tmp/btrm-test-tok-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (f) {
        int32_t hdr[] = { 4, 0, 3 }; /* max_len 4, score 0.0, len 3 ... cut */
        fwrite(hdr, sizeof hdr, 1, f);
        fwrite("ab", 1, 2, f);
        fclose(f);
    }
    rc = btrm_tok_spm_load_bin(&t, path, 0);
    ok(rc == BTRM_EDATA && t == NULL, "a truncated tokenizer.bin is BTRM_EDATA (%s)",
       btrm_error_msg());
    unlink(path);
}

/* ------------------------------------------------------------------------ */
/* GPT-2. */

static void test_gpt2(const char *dir)
{
    char enc_path[DIR_MAX + 128], bpe_path[DIR_MAX + 128], vec_path[DIR_MAX + 128];
    snprintf(enc_path, sizeof enc_path, "%s/encoder.json", dir);
    snprintf(bpe_path, sizeof bpe_path, "%s/vocab.bpe", dir);
    snprintf(vec_path, sizeof vec_path, "%s/test-vectors.jsonl", dir);
    btrm_tokenizer *t = NULL;
    int rc = btrm_tok_bpe_load_files(&t, enc_path, bpe_path);
    ok(rc == 0, "GPT-2 encoder.json + vocab.bpe load (%s)", rc ? btrm_error_msg() : "ok");
    FILE *f = fopen(vec_path, "r");
    if (rc || !f) {
        skip(N_GPT2_VECTORS + 4, "GPT-2 files did not load");
        if (f)
            fclose(f);
        btrm_tok_free(t);
        return;
    }
    ok(btrm_tok_n_vocab(t) == 50257 && btrm_tok_eos(t) == 50256 && btrm_tok_bos(t) == -1 &&
           !strcmp(btrm_tok_piece(t, 995), "\xC4\xA0world"),
       "50257 tokens, EOS <|endoftext|> 50256, no BOS, 995 = \"Ġworld\"");
    char line[65536];
    int n_vectors = 0, bad_decode = 0;
    while (n_vectors < N_GPT2_VECTORS && fgets(line, sizeof line, f)) {
        json_error_t jerr;
        json_t *doc = json_loads(line, 0, &jerr);
        const char *text = json_string_value(json_object_get(doc, "text"));
        json_t *want = json_object_get(doc, "ids");
        if (!text || !json_is_array(want)) {
            ok(0, "vector %d parses", n_vectors + 1);
            json_decref(doc);
            n_vectors++;
            continue;
        }
        int n_want = (int)json_array_size(want);
        int32_t *want_ids = calloc((size_t)n_want + 1, sizeof *want_ids);
        for (int i = 0; i < n_want; i++)
            want_ids[i] = (int32_t)json_integer_value(json_array_get(want, i));
        char shown[48];
        snprintf(shown, sizeof shown, "%.40s", text);
        for (char *c = shown; *c; c++)
            if (*c == '\n' || *c == '\t' || *c == '#')
                *c = ' ';
        ok(encodes_to(t, text, 1, want_ids, n_want), "GPT-2 vector %d (%d ids): \"%s\"",
           n_vectors + 1, n_want, shown);
        char *back = NULL;
        size_t len = 0;
        if (btrm_tok_decode(t, want_ids, n_want, &back, &len) || len != strlen(text) ||
            memcmp(back, text, len))
            bad_decode++;
        free(back);
        free(want_ids);
        json_decref(doc);
        n_vectors++;
    }
    fclose(f);
    if (n_vectors < N_GPT2_VECTORS)
        skip(N_GPT2_VECTORS - n_vectors, "test-vectors.jsonl has fewer lines");
    ok(n_vectors == N_GPT2_VECTORS && bad_decode == 0,
       "all %d reference id lists decode back to their texts", n_vectors);
    ok(round_trips(t, "caf\xC3\xA9 \xF0\x9F\x99\x82 \xE6\xBC\xA2\xE5\xAD\x97\n\n  x", 0),
       "GPT-2: decode_piece one by one rebuilds UTF-8 split across tokens");
    btrm_tok_free(t);

    rc = btrm_tok_bpe_load_files(&t, enc_path, "/nonexistent/vocab.bpe");
    ok(rc == BTRM_EIO && t == NULL, "a missing vocab.bpe is BTRM_EIO (%s)", btrm_error_msg());
}

/* ------------------------------------------------------------------------ */
/* Long texts: no quadratic blow-up. */

static int timed_encode(const btrm_tokenizer *t, const char *text, double *seconds, int *n)
{
    int32_t *ids = NULL;
    double t0 = now_s();
    int rc = btrm_tok_encode(t, text, 1, &ids, n);
    *seconds = now_s() - t0;
    char *back = NULL;
    size_t len = 0;
    /* the decoded ids must give the text back */
    if (!rc)
        rc = btrm_tok_decode(t, ids, *n, &back, &len);
    if (!rc && (len != strlen(text) || memcmp(back, text, len)))
        rc = -1;
    free(back);
    free(ids);
    return rc;
}

static void test_long(const char *tok_path, const char *gpt2_dir)
{
    const size_t size = 100 * 1024;
    char *prose = malloc(size + 1), *word = malloc(size + 1), *spaces = malloc(size + 2);
    const char *sentence = "Once upon a time, Lily saw a big red ball in the park. "
                           "She said \"hello\" \xF0\x9F\x99\x82 \xE6\xBC\xA2 2024!\n";
    size_t slen = strlen(sentence);
    for (size_t i = 0; i < size; i++) {
        prose[i] = sentence[i % slen];
        word[i] = "abcdefghij"[i % 10];
        spaces[i] = ' ';
    }
    size_t cut = size - size % slen; /* whole sentences: valid UTF-8 */
    prose[cut] = '\0';
    word[size] = '\0';
    spaces[size] = 'x';
    spaces[size + 1] = '\0';
    const double limit = 5.0; /* generous for sanitizer builds; typical: milliseconds */
    btrm_tokenizer *t = NULL;
    if (btrm_tok_spm_load_bin(&t, tok_path, 0) == 0) {
        double s1, s2, s3;
        int n1, n2, n3;
        int rc = timed_encode(t, prose, &s1, &n1) | timed_encode(t, word, &s2, &n2) |
                 timed_encode(t, spaces, &s3, &n3);
        diag("spm, 100 KB: prose %.3f s (%d ids), one word %.3f s (%d), spaces %.3f s (%d)",
             s1, n1, s2, n2, s3, n3);
        ok(rc == 0 && s1 < limit && s2 < limit && s3 < limit,
           "spm: three 100 KB texts encode and round-trip within %.0f s each", limit);
    } else {
        skip(1, "tok512.bin absent");
    }
    btrm_tok_free(t);
    t = NULL;
    char enc_path[DIR_MAX + 128], bpe_path[DIR_MAX + 128];
    snprintf(enc_path, sizeof enc_path, "%s/encoder.json", gpt2_dir);
    snprintf(bpe_path, sizeof bpe_path, "%s/vocab.bpe", gpt2_dir);
    if (btrm_tok_bpe_load_files(&t, enc_path, bpe_path) == 0) {
        double s1, s2, s3;
        int n1, n2, n3;
        int rc = timed_encode(t, prose, &s1, &n1) | timed_encode(t, word, &s2, &n2) |
                 timed_encode(t, spaces, &s3, &n3);
        diag("gpt2, 100 KB: prose %.3f s (%d ids), one word %.3f s (%d), spaces %.3f s (%d)",
             s1, n1, s2, n2, s3, n3);
        ok(rc == 0 && s1 < limit && s2 < limit && s3 < limit,
           "gpt2: three 100 KB texts encode and round-trip within %.0f s each", limit);
    } else {
        skip(1, "GPT-2 files absent");
    }
    btrm_tok_free(t);
    free(prose);
    free(word);
    free(spaces);
}

int main(void)
{
    const char *shared = getenv("BTRM_SHARED");
    const char *srcdir = getenv("BTRM_SRCDIR");
    if (shared && shared[0])
        snprintf(shared_dir, sizeof shared_dir, "%s", shared);
    else
        snprintf(shared_dir, sizeof shared_dir, "%s/../shared", srcdir ? srcdir : ".");
    char tok_path[DIR_MAX + 64], gpt2_dir[DIR_MAX + 64], vec_path[DIR_MAX + 128];
    shared_path(tok_path, sizeof tok_path, "stories260K/tok512.bin");
    shared_path(gpt2_dir, sizeof gpt2_dir, "gpt2-tokenizer");
    snprintf(vec_path, sizeof vec_path, "%s/test-vectors.jsonl", gpt2_dir);

    plan(39 + 17 + N_GPT2_VECTORS + 5 + 2 + 9 + 6);
    test_pretokenizers();
    test_multi_regex();
    test_special();
    test_bpe_merges();
    test_spm_toy();
    test_spm_files();
    if (file_exists(tok_path)) {
        test_spm_bin(tok_path);
    } else {
        diag("%s absent", tok_path);
        skip(17, "stories260K/tok512.bin absent (set BTRM_SHARED, or fetch it with data-prep/fetch.sh --models)");
    }
    if (file_exists(vec_path)) {
        test_gpt2(gpt2_dir);
    } else {
        diag("%s absent", vec_path);
        skip(N_GPT2_VECTORS + 5, "gpt2-tokenizer files absent (set BTRM_SHARED, or fetch it with data-prep/fetch.sh --models)");
    }
    test_long(tok_path, gpt2_dir);
    return done_testing();
}
