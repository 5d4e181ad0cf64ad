/* tokenizer.c: SentencePiece-style BPE by scores and byte-level BPE by merge
 * ranks (docs/tokenizers.md defines both exactly).
 *
 * Both algorithms are the same loop over a doubly linked list of symbols
 * (spans of the text, each with its token id once known) and a binary heap of
 * candidate merges of adjacent symbols, best first, ties to the leftmost pair
 * (llama.cpp's llm_tokenizer_spm / llm_tokenizer_bpe, HF tokenizers' BPE
 * word). A heap entry remembers the combined byte length of its pair; it is
 * stale, and skipped, when either symbol has since merged with another (a
 * symbol only grows, so the length no longer adds up) or died. Each merge
 * pushes at most two new candidates, so a text of n bytes costs
 * O(n log n) and at most 3n heap entries.
 *
 * Piece lookup is an open-addressing hash table keyed by XXH3-64 of the
 * piece's bytes; byte-level BPE merges are a second table keyed by the pair
 * of token ids. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "tokenizer.h"

#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

enum { KIND_SPM = 1, KIND_BPE = 2 };

/* Byte-level BPE pre-tokenisers by llama.cpp's tokenizer.ggml.pre names
 * (src/llama-vocab.cpp, llm_tokenizer_bpe: its table of split regexes is
 * the specification). The regexes of one pre-tokenizer are applied in turn:
 * each splits every piece left by the previous one into its matches and
 * the text between them (llama.cpp's unicode_regex_split). */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
#define MAX_RE 6

typedef struct pre_spec {
    const char *names;      /* aliases, '|'-separated: llama.cpp's, then btrm's */
    const char *re[MAX_RE]; /* NULL-terminated */
    int ignore_merges;      /* a pre-token that is a token stays whole */
    int add_bos;            /* llama.cpp's add_bos default for this pre-tokenizer */
    int no_bos;             /* chatglm-bpe: no BOS token at all */
} pre_spec;

static const pre_spec pre_specs[] = {
    { "default", { "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]" }, 0, 0, 0 },
    { "llama3|llama-v3|llama-bpe|falcon3", { RE_LLAMA3 }, 1, 1, 0 },
    { "dbrx|smaug-bpe", { RE_LLAMA3 }, 0, 0, 0 },
    { "deepseek-llm",
      { "[\r\n]",
        /* letters of many scripts (ranges as code points: the characters
         * themselves would be at the mercy of Unicode normalisation) */
        "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
        "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
        "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}"
        "\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}"
        "\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
        "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}"
        "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}"
        "\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}"
        "\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
        "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}"
        "\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}"
        "\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
        "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
        "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}"
        "\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
        "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}"
        "\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}"
        "\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
        "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$",
        RE_CJK, "\\p{N}+" },
      0, 0, 0 },
    { "deepseek-coder", { "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}" }, 0, 0, 0 },
    { "deepseek-v3",
      { "\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
        "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+" },
      0, 0, 0 },
    { "falcon", { "[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]" }, 0, 0, 0 },
    { "starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", { "\\p{N}", RE_GPT2 },
      0, 0, 0 },
    { "gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|"
      "roberta-bpe|mpt|olmo|jais|gpt2",
      { RE_GPT2 }, 0, 0, 0 },
    { "qwen2|deepseek-r1-qwen|stablelm2|megrez", { RE_QWEN2 }, 0, 0, 0 },
    { "poro-chat|bloom|gpt3-finnish", { RE_BLOOM }, 0, 0, 0 },
    { "chatglm-bpe", { RE_LLAMA3 }, 0, 0, 1 },
    { "viking", { RE_BLOOM, "\\p{N}" }, 0, 0, 0 },
    { "tekken",
      { "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}"
        "\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
        "[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
      1, 1, 0 },
    { "chameleon",
      { "<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )",
        "\\p{N}", "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2 },
      0, 1, 0 },
};
#define N_PRE ((int)(sizeof pre_specs / sizeof pre_specs[0]))

/* The spec of a pre-tokenizer name, and the name it is listed under first. */
static const pre_spec *find_pre(const char *name, char *canonical, size_t size)
{
    size_t len = strlen(name);
    for (int i = 0; i < N_PRE; i++) {
        const char *p = pre_specs[i].names;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            if (n == len && !memcmp(p, name, n)) {
                const char *first = pre_specs[i].names;
                const char *end = strchr(first, '|');
                snprintf(canonical, size, "%.*s", (int)(end ? end - first : (long)strlen(first)),
                         first);
                return &pre_specs[i];
            }
            p += n + (bar ? 1 : 0);
        }
    }
    return NULL;
}

void btrm_tok_bpe_pre_names(char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < N_PRE && used + 1 < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? "|" : "", pre_specs[i].names);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    for (char *c = out; *c; c++)
        if (*c == '|')
            *c = ' ';
}

int btrm_tok_bpe_pre_defaults(const char *pre, int *add_bos, int *no_bos)
{
    char canonical[32];
    const pre_spec *sp = find_pre(pre, canonical, sizeof canonical);
    if (!sp)
        return btrm_error_set(BTRM_EDATA, "tokenizer: pre-tokenizer \"%s\" is not supported",
                              pre);
    if (add_bos)
        *add_bos = sp->add_bos;
    if (no_bos)
        *no_bos = sp->no_bos;
    return 0;
}

typedef struct str_slot {
    uint64_t hash;
    int32_t id; /* -1: empty */
} str_slot;

typedef struct pair_slot {
    uint64_t key;   /* left id << 32 | right id */
    int32_t rank;   /* -1: empty */
    int32_t merged; /* the token of the concatenation */
} pair_slot;

struct btrm_tokenizer {
    int kind;
    int n_vocab, bos_id, eos_id, unk_id;
    int add_space_prefix; /* spm: the dummy "▁" before a non-empty text */
    int ignore_merges;    /* bpe: a pre-token that is a token stays whole */
    char name[32];        /* btrm_tok_kind() */
    /* the vocabulary as given: piece_blob + piece_off[id], NUL-terminated */
    char *piece_blob;
    size_t *piece_off;
    uint32_t *piece_len;
    /* the bytes each token stands for (decode): text_blob + text_off[id] */
    char *text_blob;
    size_t *text_off;
    uint32_t *text_len;
    int32_t *types;
    float *scores; /* spm only */
    size_t max_piece_bytes;
    /* string -> id: the text form for spm (only tokens that text can merge
     * into), the alphabet form for bpe (every token) */
    const char *key_blob;
    const size_t *key_off;
    const uint32_t *key_len;
    str_slot *map;
    size_t map_mask;
    size_t max_key_len; /* no longer string can be a token */
    /* spm: the byte-fallback token of byte b; bpe: the token of b's alphabet
     * character; -1 when the vocabulary has none */
    int32_t byte_id[256];
    /* bpe */
    pair_slot *pairs;
    size_t pairs_mask;
    char alpha[256][2]; /* bpe: each byte's alphabet character, UTF-8 */
    uint8_t alpha_len[256];
    pcre2_code *re[MAX_RE]; /* bpe: the pre-tokenizer's regexes, in order */
    int n_re;
    /* tokens matched in the text before tokenisation (control, user-defined
     * and unknown; control and unknown only when asked), longest first */
    int32_t *special;
    int n_special;
    uint8_t *strip; /* per token: 1 lstrip, 2 rstrip the text around it */
};

/* ------------------------------------------------------------------------ */
/* Small helpers. */

static size_t pow2_at_least(size_t n)
{
    size_t cap = 16;
    while (cap < n)
        cap <<= 1;
    return cap;
}

/* splitmix64's finalizer: the hash of a pair key. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Bytes of the UTF-8 character at s (1..4), 1 for an invalid or truncated
 * sequence, so that invalid input still advances byte by byte. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (n > avail)
        return 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    return n;
}

/* The code point of the UTF-8 character at s of n = utf8_len() bytes. */
static uint32_t utf8_decode(const unsigned char *s, size_t n)
{
    if (n == 1)
        return s[0];
    uint32_t cp = s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (s[i] & 0x3F);
    return cp;
}

/* UTF-8 of a code point below U+0800 (the byte alphabet ends at U+0143). */
static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* GPT-2's bytes_to_unicode(): the 188 printable bytes '!'..'~', '¡'..'¬',
 * '®'..'ÿ' are their own code point; the other 68, in byte order, become
 * U+0100, U+0101, ... */
static void byte_alphabet(uint32_t cp_of_byte[256])
{
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp_of_byte[b] = printable ? (uint32_t)b : next++;
    }
}

/* "<0xNN>" (either hex case, as llama2.c's sscanf reads it) -> NN, else -1. */
static int byte_token_value(const char *piece, size_t len)
{
    if (len != 6 || memcmp(piece, "<0x", 3) != 0 || piece[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = piece[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = 16 * v + d;
    }
    return v;
}

/* Reads a whole file; *data is NUL-terminated (not counted in *size). */
static int read_file(const char *path, char **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return btrm_error_set(BTRM_EIO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    int rc = 0;
    if ((rc = BTRM_MALLOC(buf, cap)))
        goto fail;
    for (;;) {
        if (len + 1 >= cap) {
            char *bigger = realloc(buf, 2 * cap);
            if (!bigger) {
                rc = btrm_error_set(BTRM_ENOMEM, "out of memory reading %s", path);
                goto fail;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        rc = btrm_error_set(BTRM_EIO, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return 0;
fail:
    fclose(f);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The string -> id table. */

static int map_find(const btrm_tokenizer *t, const char *s, size_t len)
{
    uint64_t h = XXH3_64bits(s, len);
    for (size_t i = (size_t)h & t->map_mask;; i = (i + 1) & t->map_mask) {
        const str_slot *slot = &t->map[i];
        if (slot->id < 0)
            return -1;
        if (slot->hash == h && t->key_len[slot->id] == len &&
            memcmp(t->key_blob + t->key_off[slot->id], s, len) == 0)
            return slot->id;
    }
}

/* Builds the table over the ids with keep[id] != 0; the first of equal keys
 * wins. */
static int map_build(btrm_tokenizer *t, const unsigned char *keep)
{
    size_t n_keys = 0;
    for (int id = 0; id < t->n_vocab; id++)
        n_keys += keep[id] != 0;
    size_t cap = pow2_at_least(2 * n_keys + 1);
    int rc = BTRM_MALLOC(t->map, cap);
    if (rc)
        return rc;
    t->map_mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        t->map[i].id = -1;
    for (int id = 0; id < t->n_vocab; id++) {
        if (!keep[id])
            continue;
        const char *key = t->key_blob + t->key_off[id];
        size_t len = t->key_len[id];
        if (map_find(t, key, len) >= 0)
            continue;
        if (len > t->max_key_len)
            t->max_key_len = len;
        uint64_t h = XXH3_64bits(key, len);
        size_t i = (size_t)h & t->map_mask;
        while (t->map[i].id >= 0)
            i = (i + 1) & t->map_mask;
        t->map[i].hash = h;
        t->map[i].id = id;
    }
    return 0;
}

static const pair_slot *pair_find(const btrm_tokenizer *t, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = (size_t)mix64(key) & t->pairs_mask;; i = (i + 1) & t->pairs_mask) {
        const pair_slot *slot = &t->pairs[i];
        if (slot->rank < 0)
            return NULL;
        if (slot->key == key)
            return slot;
    }
}

/* ------------------------------------------------------------------------ */
/* Special and added tokens: matched in the text before tokenisation, as
 * llama.cpp's tokenizer_st_partition does. */

static int is_special_type(int type)
{
    return type == BTRM_TOKEN_CONTROL || type == BTRM_TOKEN_USER_DEFINED ||
           type == BTRM_TOKEN_UNKNOWN;
}

typedef struct len_id {
    uint32_t len;
    int32_t id;
} len_id;

static int by_len_desc(const void *a, const void *b)
{
    const len_id *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* t->special = the control, user-defined and unknown tokens with a text,
 * longest first (equal lengths by id). */
static int build_special(btrm_tokenizer *t)
{
    free(t->special);
    t->special = NULL;
    t->n_special = 0;
    len_id *list = NULL;
    int n = 0, rc = BTRM_MALLOC(list, t->n_vocab);
    if (rc)
        return rc;
    for (int id = 0; id < t->n_vocab; id++)
        if (is_special_type(t->types[id]) && t->piece_len[id] > 0)
            list[n++] = (len_id){ t->piece_len[id], id };
    qsort(list, (size_t)n, sizeof *list, by_len_desc);
    if (!t->strip && (rc = BTRM_CALLOC(t->strip, t->n_vocab)))
        goto done;
    if ((rc = BTRM_MALLOC(t->special, n ? n : 1)))
        goto done;
    for (int i = 0; i < n; i++)
        t->special[i] = list[i].id;
    t->n_special = n;
done:
    free(list);
    return rc;
}

int btrm_tok_set_types(btrm_tokenizer *tok, const int32_t *types)
{
    if (!tok || !types)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_set_types: NULL argument");
    for (int id = 0; id < tok->n_vocab; id++)
        if (types[id] < BTRM_TOKEN_UNDEFINED || types[id] > BTRM_TOKEN_BYTE)
            return btrm_error_set(BTRM_EDATA, "tokenizer: token %d has type %d (want 0..6)",
                                  id, (int)types[id]);
    if (tok->kind == KIND_SPM)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_set_types: an spm tokenizer takes its "
                              "types at construction");
    for (int id = 0; id < tok->n_vocab; id++)
        tok->types[id] = id == tok->bos_id || id == tok->eos_id ? BTRM_TOKEN_CONTROL : types[id];
    return build_special(tok);
}

int btrm_tok_set_strip(btrm_tokenizer *tok, int id, int lstrip, int rstrip)
{
    if (!tok || id < 0 || id >= tok->n_vocab || !tok->strip)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_set_strip: token %d outside [0, %d)", id,
                              tok ? tok->n_vocab : 0);
    tok->strip[id] = (uint8_t)((lstrip ? 1 : 0) | (rstrip ? 2 : 0));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Construction shared by both kinds. */

static int tok_new(btrm_tokenizer **out, int kind, const char *const *pieces, int n_vocab,
                   int bos_id, int eos_id)
{
    *out = NULL;
    if (!pieces || n_vocab <= 0)
        return btrm_error_set(BTRM_EUSAGE, "tokenizer: empty vocabulary (n_vocab %d)",
                              n_vocab);
    if (bos_id < -1 || bos_id >= n_vocab || eos_id < -1 || eos_id >= n_vocab)
        return btrm_error_set(BTRM_EUSAGE,
                              "tokenizer: bos id %d or eos id %d outside [-1, %d)",
                              bos_id, eos_id, n_vocab);
    btrm_tokenizer *t = NULL;
    int rc = BTRM_CALLOC(t, 1);
    if (rc)
        return rc;
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->bos_id = bos_id;
    t->eos_id = eos_id;
    t->unk_id = -1;
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    size_t total = 0;
    for (int id = 0; id < n_vocab; id++) {
        if (!pieces[id]) {
            rc = btrm_error_set(BTRM_EDATA, "tokenizer: token %d has no text", id);
            goto fail;
        }
        size_t len = strlen(pieces[id]);
        if (len > UINT32_MAX / 4) {
            rc = btrm_error_set(BTRM_EDATA, "tokenizer: token %d is %zu bytes long", id, len);
            goto fail;
        }
        total += len + 1;
    }
    if ((rc = BTRM_MALLOC(t->piece_blob, total)) || (rc = BTRM_MALLOC(t->piece_off, n_vocab)) ||
        (rc = BTRM_MALLOC(t->piece_len, n_vocab)) || (rc = BTRM_MALLOC(t->text_blob, total)) ||
        (rc = BTRM_MALLOC(t->text_off, n_vocab)) || (rc = BTRM_MALLOC(t->text_len, n_vocab)) ||
        (rc = BTRM_MALLOC(t->types, n_vocab)))
        goto fail;
    size_t off = 0;
    for (int id = 0; id < n_vocab; id++) {
        size_t len = strlen(pieces[id]);
        memcpy(t->piece_blob + off, pieces[id], len + 1);
        t->piece_off[id] = off;
        t->piece_len[id] = (uint32_t)len;
        off += len + 1;
    }
    *out = t;
    return 0;
fail:
    btrm_tok_free(t);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* SentencePiece-style BPE: construction. */

int btrm_tok_spm_from_arrays(btrm_tokenizer **tok, const char *const *pieces,
                             const float *scores, const int32_t *types, int n_vocab,
                             int bos_id, int eos_id)
{
    if (!tok)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_spm_from_arrays: tok is NULL");
    *tok = NULL;
    btrm_tokenizer *t = NULL;
    unsigned char *keep = NULL;
    int rc = tok_new(&t, KIND_SPM, pieces, n_vocab, bos_id, eos_id);
    if (rc)
        return rc;
    t->add_space_prefix = 1;
    snprintf(t->name, sizeof t->name, "spm");
    if ((rc = BTRM_MALLOC(t->scores, n_vocab)) || (rc = BTRM_CALLOC(keep, n_vocab)))
        goto fail;
    size_t off = 0;
    for (int id = 0; id < n_vocab; id++) {
        const char *piece = t->piece_blob + t->piece_off[id];
        size_t len = t->piece_len[id];
        int type;
        if (types) {
            type = types[id];
            if (type < BTRM_TOKEN_UNDEFINED || type > BTRM_TOKEN_BYTE) {
                rc = btrm_error_set(BTRM_EDATA, "tokenizer: token %d has type %d (want 0..6)",
                                    id, type);
                goto fail;
            }
        } else if (id == bos_id || id == eos_id) {
            type = BTRM_TOKEN_CONTROL;
        } else if (byte_token_value(piece, len) >= 0) {
            type = BTRM_TOKEN_BYTE;
        } else if (!strcmp(piece, "<unk>")) {
            type = BTRM_TOKEN_UNKNOWN;
        } else {
            type = BTRM_TOKEN_NORMAL;
        }
        t->types[id] = type;
        t->scores[id] = scores ? scores[id] : 0.0f;
        if (type == BTRM_TOKEN_UNKNOWN && t->unk_id < 0)
            t->unk_id = id;
        char *text = t->text_blob + off;
        size_t text_len = 0;
        if (type == BTRM_TOKEN_BYTE) {
            int b = byte_token_value(piece, len);
            if (b < 0) {
                rc = btrm_error_set(BTRM_EDATA,
                                    "tokenizer: byte token %d is \"%s\", not <0xNN>", id, piece);
                goto fail;
            }
            text[text_len++] = (char)b;
            if (t->byte_id[b] < 0)
                t->byte_id[b] = id;
        } else if (type != BTRM_TOKEN_CONTROL) {
            /* '▁' (E2 96 81) is a space */
            for (size_t i = 0; i < len;) {
                if (i + 3 <= len && !memcmp(piece + i, "\xE2\x96\x81", 3)) {
                    text[text_len++] = ' ';
                    i += 3;
                } else {
                    text[text_len++] = piece[i++];
                }
            }
            keep[id] = text_len > 0 && (type == BTRM_TOKEN_NORMAL ||
                                        type == BTRM_TOKEN_USER_DEFINED ||
                                        type == BTRM_TOKEN_UNDEFINED);
        }
        text[text_len] = '\0';
        t->text_off[id] = off;
        t->text_len[id] = (uint32_t)text_len;
        off += text_len + 1;
        if (text_len > t->max_piece_bytes)
            t->max_piece_bytes = text_len;
    }
    t->key_blob = t->text_blob;
    t->key_off = t->text_off;
    t->key_len = t->text_len;
    if ((rc = map_build(t, keep)) || (rc = build_special(t)))
        goto fail;
    free(keep);
    *tok = t;
    return 0;
fail:
    free(keep);
    btrm_tok_free(t);
    return rc;
}

int btrm_tok_spm_set_space_prefix(btrm_tokenizer *tok, int on)
{
    if (!tok || tok->kind != KIND_SPM)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_spm_set_space_prefix: not an spm tokenizer");
    tok->add_space_prefix = on != 0;
    return 0;
}

int btrm_tok_spm_load_bin(btrm_tokenizer **tok, const char *path, int n_vocab)
{
    if (!tok || !path)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_spm_load_bin: NULL argument");
    *tok = NULL;
    char *data = NULL, *texts = NULL;
    size_t size = 0;
    const char **pieces = NULL;
    float *scores = NULL;
    int rc = read_file(path, &data, &size);
    if (rc)
        return rc;
    int32_t max_len = 0;
    if (size < 4) {
        rc = btrm_error_set(BTRM_EDATA, "%s: %zu bytes, too short for a tokenizer.bin header",
                            path, size);
        goto fail;
    }
    memcpy(&max_len, data, 4);
    if (max_len <= 0) {
        rc = btrm_error_set(BTRM_EDATA, "%s: max_token_length %d is not positive "
                            "(not a llama2.c tokenizer.bin?)", path, (int)max_len);
        goto fail;
    }
    /* count the records (all of them, or check that n_vocab are there) */
    int n = 0;
    size_t pos = 4;
    while (pos < size && (n_vocab <= 0 || n < n_vocab)) {
        int32_t len = 0;
        if (size - pos < 8) {
            rc = btrm_error_set(BTRM_EDATA, "%s: token %d: record header cut at byte %zu",
                                path, n, pos);
            goto fail;
        }
        memcpy(&len, data + pos + 4, 4);
        if (len < 0 || len > max_len || (size_t)len > size - pos - 8) {
            rc = btrm_error_set(BTRM_EDATA, "%s: token %d at byte %zu: length %d outside "
                                "[0, max_token_length %d] or past the end of the file",
                                path, n, pos, (int)len, (int)max_len);
            goto fail;
        }
        pos += 8 + (size_t)len;
        if (n == INT_MAX) {
            rc = btrm_error_set(BTRM_EDATA, "%s: too many tokens", path);
            goto fail;
        }
        n++;
    }
    if (n_vocab > 0 && n < n_vocab) {
        rc = btrm_error_set(BTRM_EDATA, "%s: %d tokens, want %d (--vocab / checkpoint header)",
                            path, n, n_vocab);
        goto fail;
    }
    if (n < 3) {
        rc = btrm_error_set(BTRM_EDATA, "%s: %d tokens; llama2.c's layout needs <unk>, BOS 1, "
                            "EOS 2", path, n);
        goto fail;
    }
    if ((rc = BTRM_MALLOC(pieces, n)) || (rc = BTRM_MALLOC(scores, n)) ||
        (rc = BTRM_MALLOC(texts, pos + (size_t)n)))
        goto fail;
    pos = 4;
    size_t off = 0;
    for (int id = 0; id < n; id++) {
        int32_t len = 0;
        memcpy(&scores[id], data + pos, 4);
        memcpy(&len, data + pos + 4, 4);
        if (memchr(data + pos + 8, '\0', (size_t)len)) {
            rc = btrm_error_set(BTRM_EDATA, "%s: token %d contains a NUL byte", path, id);
            goto fail;
        }
        memcpy(texts + off, data + pos + 8, (size_t)len);
        texts[off + (size_t)len] = '\0';
        pieces[id] = texts + off;
        off += (size_t)len + 1;
        pos += 8 + (size_t)len;
    }
    rc = btrm_tok_spm_from_arrays(tok, pieces, scores, NULL, n, 1, 2);
    if (rc)
        btrm_error_wrap(rc, "%s", path);
fail:
    free(data);
    free(texts);
    free(pieces);
    free(scores);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Byte-level BPE: construction. */

int btrm_tok_bpe_from_arrays(btrm_tokenizer **tok, const char *const *tokens, int n_vocab,
                             const char *const *merges, int n_merges, const char *pre,
                             int bos_id, int eos_id)
{
    if (!tok)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_bpe_from_arrays: tok is NULL");
    *tok = NULL;
    char canonical[32];
    const pre_spec *sp = find_pre(pre ? pre : "gpt-2", canonical, sizeof canonical);
    if (!sp) {
        char known[1024];
        btrm_tok_bpe_pre_names(known, sizeof known);
        return btrm_error_set(BTRM_EDATA, "tokenizer: pre-tokenizer \"%s\" is not supported "
                              "(known: %s)", pre, known);
    }
    int ignore_merges = sp->ignore_merges;
    if (n_merges < 0 || (n_merges > 0 && !merges))
        return btrm_error_set(BTRM_EUSAGE, "tokenizer: %d merges without a merge list",
                              n_merges);
    btrm_tokenizer *t = NULL;
    unsigned char *keep = NULL;
    char *concat = NULL;
    int rc = tok_new(&t, KIND_BPE, tokens, n_vocab, bos_id, eos_id);
    if (rc)
        return rc;
    t->ignore_merges = ignore_merges;
    snprintf(t->name, sizeof t->name, "bpe-%s", pre ? pre : "gpt-2");

    /* the decoded bytes: each alphabet character back to its byte, any other
     * character (added tokens) as its own UTF-8 */
    uint32_t cp_of_byte[256];
    int byte_of_cp[0x144];
    byte_alphabet(cp_of_byte);
    for (int i = 0; i < 0x144; i++)
        byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++)
        byte_of_cp[cp_of_byte[b]] = b;
    size_t off = 0, longest = 0;
    for (int id = 0; id < n_vocab; id++) {
        const unsigned char *piece = (const unsigned char *)t->piece_blob + t->piece_off[id];
        size_t len = t->piece_len[id];
        char *text = t->text_blob + off;
        size_t text_len = 0;
        for (size_t i = 0; i < len;) {
            size_t n = utf8_len(piece + i, len - i);
            uint32_t cp = utf8_decode(piece + i, n);
            if (n > 1 && cp < 0x144 && byte_of_cp[cp] >= 0) {
                text[text_len++] = (char)byte_of_cp[cp];
            } else if (n == 1 && cp < 0x80 && byte_of_cp[cp] >= 0) {
                text[text_len++] = (char)cp;
            } else {
                memcpy(text + text_len, piece + i, n);
                text_len += n;
            }
            i += n;
        }
        text[text_len] = '\0';
        t->text_off[id] = off;
        t->text_len[id] = (uint32_t)text_len;
        off += text_len + 1;
        t->types[id] = id == bos_id || id == eos_id ? BTRM_TOKEN_CONTROL : BTRM_TOKEN_NORMAL;
        if (text_len > t->max_piece_bytes)
            t->max_piece_bytes = text_len;
        if (len > longest)
            longest = len;
    }
    t->key_blob = t->piece_blob;
    t->key_off = t->piece_off;
    t->key_len = t->piece_len;
    if ((rc = BTRM_MALLOC(keep, n_vocab)))
        goto fail;
    memset(keep, 1, (size_t)n_vocab);
    if ((rc = map_build(t, keep)))
        goto fail;
    for (int b = 0; b < 256; b++) {
        t->alpha_len[b] = (uint8_t)utf8_encode(cp_of_byte[b], t->alpha[b]);
        t->byte_id[b] = map_find(t, t->alpha[b], t->alpha_len[b]);
    }

    /* merges: (left id, right id) -> (rank, id of the concatenation) */
    size_t cap = pow2_at_least(2 * (size_t)n_merges + 1);
    if ((rc = BTRM_MALLOC(t->pairs, cap)) || (rc = BTRM_MALLOC(concat, 2 * longest + 1)))
        goto fail;
    t->pairs_mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        t->pairs[i].rank = -1;
    for (int rank = 0; rank < n_merges; rank++) {
        const char *merge = merges[rank];
        const char *space = merge ? strchr(merge, ' ') : NULL;
        if (!space || space == merge || !space[1] || strchr(space + 1, ' ')) {
            rc = btrm_error_set(BTRM_EDATA, "tokenizer: merge %d is \"%s\", not \"LEFT RIGHT\"",
                                rank, merge ? merge : "(null)");
            goto fail;
        }
        size_t left_len = (size_t)(space - merge), right_len = strlen(space + 1);
        int left = map_find(t, merge, left_len);
        int right = map_find(t, space + 1, right_len);
        if (left < 0 || right < 0 || left_len + right_len > 2 * longest)
            continue; /* a part that is no token: the merge can never apply */
        memcpy(concat, merge, left_len);
        memcpy(concat + left_len, space + 1, right_len);
        int merged = map_find(t, concat, left_len + right_len);
        if (merged < 0 || pair_find(t, left, right))
            continue;
        uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
        size_t i = (size_t)mix64(key) & t->pairs_mask;
        while (t->pairs[i].rank >= 0)
            i = (i + 1) & t->pairs_mask;
        t->pairs[i].key = key;
        t->pairs[i].rank = rank;
        t->pairs[i].merged = merged;
    }

    /* the pre-tokeniser: Unicode properties for \p{L}, \p{N}, \s; invalid
     * UTF-8 in a text matches nothing and becomes pieces of its own; '$' is
     * the end of the piece only (ECMAScript's, as llama.cpp's std::regex) */
    for (int i = 0; i < MAX_RE && sp->re[i]; i++) {
        int err = 0;
        PCRE2_SIZE err_off = 0;
        t->re[i] = pcre2_compile((PCRE2_SPTR)sp->re[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF |
                                     PCRE2_DOLLAR_ENDONLY,
                                 &err, &err_off, NULL);
        if (!t->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            rc = btrm_error_set(BTRM_EIO, "tokenizer: PCRE2 cannot compile regex %d of the %s "
                                "pre-tokenizer at offset %zu: %s", i, canonical,
                                (size_t)err_off, (const char *)msg);
            goto fail;
        }
        t->n_re = i + 1;
        (void)pcre2_jit_compile(t->re[i], PCRE2_JIT_COMPLETE); /* else the interpreter */
    }
    if ((rc = build_special(t)))
        goto fail;
    free(keep);
    free(concat);
    *tok = t;
    return 0;
fail:
    free(keep);
    free(concat);
    btrm_tok_free(t);
    return rc;
}

int btrm_tok_bpe_load_files(btrm_tokenizer **tok, const char *encoder_json,
                            const char *vocab_bpe)
{
    if (!tok || !encoder_json || !vocab_bpe)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_bpe_load_files: NULL argument");
    *tok = NULL;
    const char **tokens = NULL, **merges = NULL;
    char *bpe = NULL;
    size_t bpe_size = 0;
    json_error_t jerr;
    int rc = 0;
    errno = 0;
    json_t *enc = json_load_file(encoder_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!enc)
        return btrm_error_set(errno == ENOENT ? BTRM_EIO : BTRM_EDATA, "%s:%d: %s",
                              encoder_json, jerr.line, jerr.text);
    if (!json_is_object(enc) || json_object_size(enc) == 0 ||
        json_object_size(enc) > (size_t)INT_MAX) {
        rc = btrm_error_set(BTRM_EDATA, "%s: want a non-empty object token -> id",
                            encoder_json);
        goto fail;
    }
    int n_vocab = (int)json_object_size(enc);
    if ((rc = BTRM_CALLOC(tokens, n_vocab)))
        goto fail;
    const char *key;
    json_t *value;
    json_object_foreach(enc, key, value)
    {
        json_int_t id = json_is_integer(value) ? json_integer_value(value) : -1;
        if (id < 0 || id >= n_vocab || tokens[id]) {
            rc = btrm_error_set(BTRM_EDATA, "%s: token \"%s\": the id must be an integer in "
                                "[0, %d) that no other token has", encoder_json, key, n_vocab);
            goto fail;
        }
        tokens[id] = key;
    }
    if ((rc = read_file(vocab_bpe, &bpe, &bpe_size)))
        goto fail;
    /* lines: an optional "#version" header, then "LEFT RIGHT"; blank lines
     * (the trailing one) are skipped */
    size_t n_lines = 1;
    for (size_t i = 0; i < bpe_size; i++)
        n_lines += bpe[i] == '\n';
    if (n_lines > (size_t)INT_MAX) {
        rc = btrm_error_set(BTRM_EDATA, "%s: too many lines", vocab_bpe);
        goto fail;
    }
    if ((rc = BTRM_MALLOC(merges, n_lines)))
        goto fail;
    int n_merges = 0, line_no = 0;
    for (char *line = bpe; line && line < bpe + bpe_size;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len && !(line_no == 0 && !strncmp(line, "#version", 8)))
            merges[n_merges++] = line;
        line_no++;
        line = nl ? nl + 1 : NULL;
    }
    const char *eot = "<|endoftext|>";
    int eos = json_is_integer(json_object_get(enc, eot))
                  ? (int)json_integer_value(json_object_get(enc, eot))
                  : -1;
    rc = btrm_tok_bpe_from_arrays(tok, tokens, n_vocab, merges, n_merges, "gpt2", -1, eos);
    if (rc)
        btrm_error_wrap(rc, "%s + %s", encoder_json, vocab_bpe);
fail:
    json_decref(enc);
    free(tokens);
    free(merges);
    free(bpe);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The merge loop. */

typedef struct sym {
    int32_t prev, next; /* neighbours, -1 at the ends */
    uint32_t start, len; /* the span of the text; len 0: merged away */
    int32_t id;          /* its token, -1 for an unknown spm character */
} sym;

typedef struct cand {
    double key;   /* smaller first: -score (spm) or the merge rank (bpe) */
    int32_t left; /* symbol index; ties go to the leftmost pair */
    int32_t right;
    uint32_t len; /* the pair's combined length when pushed */
    int32_t merged;
} cand;

typedef struct work {
    sym *syms;
    cand *heap;
    char *alpha; /* bpe ignore_merges: a pre-token in the byte alphabet */
    size_t cap_syms, cap_alpha;
} work;

static void work_free(work *w)
{
    free(w->syms);
    free(w->heap);
    free(w->alpha);
}

/* Room for n symbols and their 3n candidates. */
static int work_reserve(work *w, size_t n)
{
    if (n <= w->cap_syms)
        return 0;
    size_t cap = w->cap_syms ? w->cap_syms : 64;
    while (cap < n)
        cap *= 2;
    sym *syms = realloc(w->syms, cap * sizeof *syms);
    if (syms)
        w->syms = syms;
    cand *heap = realloc(w->heap, 3 * cap * sizeof *heap);
    if (heap)
        w->heap = heap;
    if (!syms || !heap)
        return btrm_error_set(BTRM_ENOMEM, "tokenizer: out of memory for %zu symbols", cap);
    w->cap_syms = cap;
    return 0;
}

static int cand_before(const cand *a, const cand *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static void heap_push(cand *heap, size_t *n, cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(&c, &heap[parent]))
            break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = c;
}

static cand heap_pop(cand *heap, size_t *n)
{
    cand top = heap[0];
    cand last = heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n)
            break;
        if (child + 1 < *n && cand_before(&heap[child + 1], &heap[child]))
            child++;
        if (!cand_before(&heap[child], &last))
            break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n > 0)
        heap[i] = last;
    return top;
}

/* Pushes the merge of symbols left and right when it makes a token. */
static void push_pair(const btrm_tokenizer *t, const char *base, const sym *syms, int left,
                      int right, cand *heap, size_t *n_heap)
{
    if (left < 0 || right < 0)
        return;
    const sym *l = &syms[left], *r = &syms[right];
    cand c = { 0.0, left, right, l->len + r->len, -1 };
    if (t->kind == KIND_SPM) {
        if (c.len > t->max_key_len)
            return;
        int id = map_find(t, base + l->start, c.len);
        if (id < 0)
            return;
        c.key = -(double)t->scores[id];
        c.merged = id;
    } else {
        const pair_slot *p = pair_find(t, l->id, r->id);
        if (!p)
            return;
        c.key = (double)p->rank;
        c.merged = p->merged;
    }
    heap_push(heap, n_heap, c);
}

/* Merges syms[0..n) (linked in order) until no candidate is left. */
static void merge_all(const btrm_tokenizer *t, const char *base, sym *syms, int n, cand *heap)
{
    size_t n_heap = 0;
    for (int i = 0; i + 1 < n; i++)
        push_pair(t, base, syms, i, i + 1, heap, &n_heap);
    while (n_heap > 0) {
        cand c = heap_pop(heap, &n_heap);
        sym *l = &syms[c.left], *r = &syms[c.right];
        if (l->len == 0 || r->len == 0 || l->next != c.right || l->len + r->len != c.len)
            continue; /* stale */
        l->len += r->len;
        l->id = c.merged;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = c.left;
        r->len = 0;
        push_pair(t, base, syms, l->prev, c.left, heap, &n_heap);
        push_pair(t, base, syms, c.left, l->next, heap, &n_heap);
    }
}

/* ------------------------------------------------------------------------ */
/* Encoding. out has room for one id per byte of text, plus one. */

static int spm_encode(const btrm_tokenizer *t, const char *text, size_t len, int with_prefix,
                      int32_t *out, int *n_out)
{
    char *buf = NULL;
    work w = { 0 };
    int rc = 0;
    if (len == 0)
        return 0;
    size_t prefix = with_prefix ? 1 : 0;
    size_t n_bytes = prefix + len;
    if ((rc = BTRM_MALLOC(buf, n_bytes)) || (rc = work_reserve(&w, n_bytes)))
        goto fail;
    buf[0] = ' ';
    memcpy(buf + prefix, text, len);
    /* the initial symbols: UTF-8 characters */
    int n = 0;
    for (size_t i = 0; i < n_bytes;) {
        size_t char_len = utf8_len((const unsigned char *)buf + i, n_bytes - i);
        sym *s = &w.syms[n];
        s->prev = n - 1;
        s->next = i + char_len < n_bytes ? n + 1 : -1;
        s->start = (uint32_t)i;
        s->len = (uint32_t)char_len;
        s->id = map_find(t, buf + i, char_len);
        n++;
        i += char_len;
    }
    merge_all(t, buf, w.syms, n, w.heap);
    for (int i = 0; i >= 0; i = w.syms[i].next) {
        const sym *s = &w.syms[i];
        if (s->id >= 0) {
            out[(*n_out)++] = s->id;
            continue;
        }
        /* a character the vocabulary lacks: its bytes' tokens, else one <unk> */
        int have_bytes = 1;
        for (uint32_t k = 0; k < s->len; k++)
            have_bytes &= t->byte_id[(unsigned char)buf[s->start + k]] >= 0;
        if (have_bytes) {
            for (uint32_t k = 0; k < s->len; k++)
                out[(*n_out)++] = t->byte_id[(unsigned char)buf[s->start + k]];
        } else if (t->unk_id >= 0) {
            out[(*n_out)++] = t->unk_id;
        } else {
            rc = btrm_error_set(BTRM_EDATA, "tokenizer: the character at text offset %zu "
                                "(%u bytes) has no token, no byte-fallback tokens and there "
                                "is no <unk>", (size_t)s->start - prefix, (unsigned)s->len);
            goto fail;
        }
    }
fail:
    free(buf);
    work_free(&w);
    return rc;
}

/* One pre-token of byte-level BPE. */
static int bpe_word(const btrm_tokenizer *t, const char *word, size_t len, work *w,
                    int32_t *out, int *n_out)
{
    int rc = 0;
    if (t->ignore_merges) {
        if (w->cap_alpha < 2 * len) {
            char *alpha = realloc(w->alpha, 2 * len);
            if (!alpha)
                return btrm_error_set(BTRM_ENOMEM, "tokenizer: out of memory");
            w->alpha = alpha;
            w->cap_alpha = 2 * len;
        }
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char b = (unsigned char)word[i];
            memcpy(w->alpha + n, t->alpha[b], t->alpha_len[b]);
            n += t->alpha_len[b];
        }
        int id = n <= t->max_key_len ? map_find(t, w->alpha, n) : -1;
        if (id >= 0) {
            out[(*n_out)++] = id;
            return 0;
        }
    }
    if ((rc = work_reserve(w, len)))
        return rc;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)word[i];
        sym *s = &w->syms[i];
        s->prev = (int32_t)i - 1;
        s->next = i + 1 < len ? (int32_t)i + 1 : -1;
        s->start = (uint32_t)i;
        s->len = 1;
        s->id = t->byte_id[b];
        if (s->id < 0)
            return btrm_error_set(BTRM_EDATA, "tokenizer: byte 0x%02X has no token in the "
                                  "byte-level vocabulary", b);
    }
    merge_all(t, word, w->syms, (int)len, w->heap);
    for (int i = 0; i >= 0; i = w->syms[i].next)
        out[(*n_out)++] = w->syms[i].id;
    return 0;
}

/* Calls fn on each pre-token of text in order: regex `level` splits the text
 * into its matches and the bytes between them (text no alternative matches:
 * for the one-regex pre-tokenizers only invalid UTF-8), and each part goes
 * through the next regex; after the last one, the parts are the pieces. */
static int pre_split_level(const btrm_tokenizer *t, int level, pcre2_match_data **md,
                           const char *text, size_t len,
                           int (*fn)(const char *piece, size_t len, void *user), void *user)
{
    if (len == 0)
        return 0;
    if (level == t->n_re)
        return fn(text, len, user);
    int rc = 0;
    if (!md[level] &&
        !(md[level] = pcre2_match_data_create_from_pattern(t->re[level], NULL)))
        return btrm_error_set(BTRM_ENOMEM, "tokenizer: out of memory for PCRE2 match data");
    size_t pos = 0;
    while (pos < len) {
        int m = pcre2_match(t->re[level], (PCRE2_SPTR)text, len, pos, 0, md[level], NULL);
        size_t start = len, end = len;
        if (m >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md[level]);
            start = ov[0];
            end = ov[1];
        } else if (m != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            return btrm_error_set(BTRM_EDATA, "tokenizer: pre-tokenising at text offset %zu: "
                                  "%s", pos, (const char *)msg);
        }
        if (start > pos && (rc = pre_split_level(t, level + 1, md, text + pos, start - pos, fn,
                                                 user)))
            return rc;
        if (end == start && start < len) /* an empty match; never loop */
            end = start + 1;
        if (end > start &&
            (rc = pre_split_level(t, level + 1, md, text + start, end - start, fn, user)))
            return rc;
        pos = end;
    }
    return 0;
}

static int pre_split(const btrm_tokenizer *t, const char *text, size_t len,
                     int (*fn)(const char *piece, size_t len, void *user), void *user)
{
    pcre2_match_data *md[MAX_RE] = { 0 };
    int rc = pre_split_level(t, 0, md, text, len, fn, user);
    for (int i = 0; i < MAX_RE; i++)
        pcre2_match_data_free(md[i]);
    return rc;
}

typedef struct bpe_ctx {
    const btrm_tokenizer *t;
    work w;
    int32_t *out;
    int *n_out;
} bpe_ctx;

static int bpe_piece(const char *piece, size_t len, void *user)
{
    bpe_ctx *c = user;
    return bpe_word(c->t, piece, len, &c->w, c->out, c->n_out);
}

static int bpe_encode(const btrm_tokenizer *t, const char *text, size_t len, int32_t *out,
                      int *n_out)
{
    bpe_ctx c = { t, { 0 }, out, n_out };
    int rc = pre_split(t, text, len, bpe_piece, &c);
    work_free(&c.w);
    return rc;
}

int btrm_tok_split(const btrm_tokenizer *tok, const char *text, size_t len,
                   int (*fn)(const char *piece, size_t len, void *user), void *user)
{
    if (!tok || !fn || (!text && len > 0))
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_split: NULL argument");
    if (tok->kind == KIND_SPM)
        return len > 0 ? fn(text, len, user) : 0;
    return pre_split(tok, text, len, fn, user);
}

/* The first occurrence of pat[plen] in text[len], or NULL. */
static const char *find_bytes(const char *text, size_t len, const char *pat, size_t plen)
{
    if (plen == 0 || plen > len)
        return NULL;
    const char *end = text + len - plen + 1;
    for (const char *p = text; p < end; p++) {
        p = memchr(p, pat[0], (size_t)(end - p));
        if (!p)
            return NULL;
        if (!memcmp(p, pat, plen))
            return p;
    }
    return NULL;
}

/* A piece of the text (raw: tokenised) or a special token matched in it. */
typedef struct frag {
    size_t off, len;
    int32_t id; /* -1: raw text */
} frag;

/* The text as fragments: special tokens (control and unknown ones only
 * when parse_special) found in it, longest first, each occurrence split off
 * the raw fragments around it (llama.cpp's tokenizer_st_partition, with its
 * lstrip/rstrip of the whitespace next to a token). *frags malloc'ed. */
static int partition(const btrm_tokenizer *t, const char *text, size_t len, int parse_special,
                     frag **frags, size_t *n_frags)
{
    size_t cap = 8, n = 0;
    frag *f = malloc(cap * sizeof *f);
    if (!f)
        return btrm_error_set(BTRM_ENOMEM, "tokenizer: out of memory");
    if (len > 0)
        f[n++] = (frag){ 0, len, -1 };
    for (int s = 0; s < t->n_special; s++) {
        int32_t id = t->special[s];
        int type = t->types[id];
        if (!parse_special && type != BTRM_TOKEN_USER_DEFINED)
            continue;
        const char *pat = t->piece_blob + t->piece_off[id];
        size_t plen = t->piece_len[id];
        for (size_t i = 0; i < n; i++) {
            if (f[i].id >= 0 || f[i].len < plen)
                continue;
            const char *hit = find_bytes(text + f[i].off, f[i].len, pat, plen);
            if (!hit)
                continue;
            size_t at = (size_t)(hit - text);
            frag left = { f[i].off, at - f[i].off, -1 };
            frag right = { at + plen, f[i].off + f[i].len - (at + plen), -1 };
            if (t->strip[id] & 1)
                while (left.len > 0 && isspace((unsigned char)text[left.off + left.len - 1]))
                    left.len--;
            if (t->strip[id] & 2)
                while (right.len > 0 && isspace((unsigned char)text[right.off])) {
                    right.off++;
                    right.len--;
                }
            /* replace f[i] by left, the token, right (empty parts dropped);
             * the scan goes on with right, at i + 1 or i + 2 */
            frag parts[3];
            int k = 0;
            if (left.len > 0)
                parts[k++] = left;
            parts[k++] = (frag){ at, plen, id };
            if (right.len > 0)
                parts[k++] = right;
            if (n + 2 > cap) {
                frag *bigger = realloc(f, 2 * cap * sizeof *f);
                if (!bigger) {
                    free(f);
                    return btrm_error_set(BTRM_ENOMEM, "tokenizer: out of memory");
                }
                f = bigger;
                cap *= 2;
            }
            memmove(f + i + k, f + i + 1, (n - i - 1) * sizeof *f);
            memcpy(f + i, parts, (size_t)k * sizeof *f);
            n += (size_t)k - 1;
            i += (size_t)k - (right.len > 0 ? 2 : 1); /* the loop's i++ lands on right */
        }
    }
    *frags = f;
    *n_frags = n;
    return 0;
}

int btrm_tok_encode_special(const btrm_tokenizer *tok, const char *text, size_t len,
                            int add_bos, int parse_special, int32_t **ids, int *n_ids)
{
    if (!ids || !n_ids)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_encode: NULL output");
    *ids = NULL;
    *n_ids = 0;
    if (!tok || (!text && len > 0))
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_encode: NULL tokenizer or text");
    if (len > (size_t)INT_MAX / 2 - 2 || len > UINT32_MAX / 3)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_encode: text of %zu bytes is too long",
                              len);
    int32_t *out = NULL;
    frag *frags = NULL;
    size_t n_frags = 0;
    int n = 0;
    /* at most one token per byte, plus a space prefix per fragment, and BOS */
    int rc = BTRM_MALLOC(out, 2 * len + 2);
    if (rc)
        return rc;
    if (add_bos && tok->bos_id >= 0)
        out[n++] = tok->bos_id;
    if ((rc = partition(tok, text, len, parse_special, &frags, &n_frags)))
        goto fail;
    int prev_special = 1; /* spm: the space prefix before the first text, and after a token */
    for (size_t i = 0; i < n_frags && !rc; i++) {
        const frag *f = &frags[i];
        if (f->id >= 0) {
            out[n++] = f->id;
            prev_special = 1;
            continue;
        }
        rc = tok->kind == KIND_SPM
                 ? spm_encode(tok, text + f->off, f->len, tok->add_space_prefix && prev_special,
                              out, &n)
                 : bpe_encode(tok, text + f->off, f->len, out, &n);
        prev_special = 0;
    }
    if (rc)
        goto fail;
    free(frags);
    int32_t *shrunk = realloc(out, (size_t)(n > 0 ? n : 1) * sizeof *out);
    *ids = shrunk ? shrunk : out;
    *n_ids = n;
    return 0;
fail:
    free(frags);
    free(out);
    return rc;
}

int btrm_tok_encode_bytes(const btrm_tokenizer *tok, const char *text, size_t len,
                          int add_bos, int32_t **ids, int *n_ids)
{
    return btrm_tok_encode_special(tok, text, len, add_bos, 0, ids, n_ids);
}

int btrm_tok_encode(const btrm_tokenizer *tok, const char *text, int add_bos, int32_t **ids,
                    int *n_ids)
{
    return btrm_tok_encode_bytes(tok, text, text ? strlen(text) : 0, add_bos, ids, n_ids);
}

/* ------------------------------------------------------------------------ */
/* Decoding and accessors. */

int btrm_tok_decode_piece(const btrm_tokenizer *tok, int prev_id, int id, char *out,
                          size_t size)
{
    if (!tok || id < 0 || id >= tok->n_vocab)
        return btrm_error_set(BTRM_EUSAGE, "tokenizer: token id %d outside [0, %d)", id,
                              tok ? tok->n_vocab : 0);
    const char *s = tok->text_blob + tok->text_off[id];
    size_t n = tok->text_len[id];
    int type = tok->types[id];
    if (type == BTRM_TOKEN_CONTROL)
        n = 0;
    /* the dummy prefix: llama2.c strips a space after BOS; sentencepiece
     * strips it at the start of the text */
    if (tok->kind == KIND_SPM && tok->add_space_prefix && type != BTRM_TOKEN_BYTE && n > 0 &&
        s[0] == ' ' && (prev_id < 0 || prev_id == tok->bos_id)) {
        s++;
        n--;
    }
    if (!out || size <= n)
        return btrm_error_set(BTRM_EUSAGE, "tokenizer: token %d needs %zu bytes, buffer has %zu",
                              id, n + 1, out ? size : 0);
    memcpy(out, s, n);
    out[n] = '\0';
    return (int)n;
}

int btrm_tok_decode(const btrm_tokenizer *tok, const int32_t *ids, int n, char **text,
                    size_t *len)
{
    if (!text || !len)
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_decode: NULL output");
    *text = NULL;
    *len = 0;
    if (!tok || n < 0 || (n > 0 && !ids))
        return btrm_error_set(BTRM_EUSAGE, "btrm_tok_decode: bad arguments");
    size_t cap = 1, used = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return btrm_error_set(BTRM_EUSAGE, "tokenizer: token %d (position %d) outside "
                                  "[0, %d)", ids[i], i, tok->n_vocab);
        cap += tok->text_len[ids[i]];
    }
    char *buf = NULL;
    int rc = BTRM_MALLOC(buf, cap);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        int got = btrm_tok_decode_piece(tok, i > 0 ? ids[i - 1] : -1, ids[i], buf + used,
                                        cap - used);
        if (got < 0) {
            free(buf);
            return got;
        }
        used += (size_t)got;
    }
    buf[used] = '\0';
    *text = buf;
    *len = used;
    return 0;
}

const char *btrm_tok_piece(const btrm_tokenizer *tok, int id)
{
    if (!tok || id < 0 || id >= tok->n_vocab)
        return NULL;
    return tok->piece_blob + tok->piece_off[id];
}

int btrm_tok_type(const btrm_tokenizer *tok, int id)
{
    if (!tok || id < 0 || id >= tok->n_vocab)
        return -1;
    return tok->types[id];
}

int btrm_tok_n_vocab(const btrm_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
int btrm_tok_bos(const btrm_tokenizer *tok) { return tok ? tok->bos_id : -1; }
int btrm_tok_eos(const btrm_tokenizer *tok) { return tok ? tok->eos_id : -1; }
size_t btrm_tok_max_piece_bytes(const btrm_tokenizer *tok) { return tok ? tok->max_piece_bytes : 0; }
const char *btrm_tok_kind(const btrm_tokenizer *tok) { return tok ? tok->name : ""; }

void btrm_tok_free(btrm_tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->piece_blob);
    free(tok->piece_off);
    free(tok->piece_len);
    free(tok->text_blob);
    free(tok->text_off);
    free(tok->text_len);
    free(tok->types);
    free(tok->scores);
    free(tok->map);
    free(tok->pairs);
    for (int i = 0; i < tok->n_re; i++)
        pcre2_code_free(tok->re[i]);
    free(tok->special);
    free(tok->strip);
    free(tok);
}
