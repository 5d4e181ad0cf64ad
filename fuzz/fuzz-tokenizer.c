/* fuzz-tokenizer.c: tokenizer files and texts (tokenizer.h).
 *
 * Input: one mode byte, then:
 *  mode % 4 == 0: a llama2.c tokenizer.bin (btrm_tok_spm_load_bin; bit 2:
 *                 read exactly 300 records instead of all), then fixed texts;
 *  mode % 4 == 1: GPT-2's encoder.json, FUZZ_SEP, vocab.bpe
 *                 (btrm_tok_bpe_load_files), then fixed texts;
 *  mode % 4 == 2: a text for a fixed SentencePiece tokenizer with byte
 *                 fallback (bit 2: no dummy-prefix space);
 *  mode % 4 == 3: a text for a fixed byte-level BPE tokenizer with the
 *                 pre-tokenizer (mode >> 2) of btrm_tok_bpe_pre_names' list
 *                 (modulo its length: GPT-2's, Llama 3's, Qwen2's, ...).
 * Every text is also encoded with parse_special (control tokens written in
 * the text become their ids).
 * Properties: ids lie in the vocabulary; every piece decodes into a buffer of
 * btrm_tok_max_piece_bytes() + 1; the pre-tokenizer's pieces concatenate to
 * the text; and decode(encode(text)) == text for the byte-level BPE, and for
 * SentencePiece when the text has no U+2581 (which SentencePiece cannot tell
 * from a space). */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"

#include "error.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static btrm_tokenizer *spm, *spm_no_prefix;
/* one fixed BPE tokenizer per pre-tokenizer name, made when first used */
enum { MAX_PRE = 64 };
static char pre_names[2048];
static const char *pre[MAX_PRE];
static int n_pre;
static btrm_tokenizer *bpe[MAX_PRE];

static const char *const fixed_texts[] = {
    "", " ", "Once upon a time", "  two  spaces\tand\ttabs\n\nnewlines ",
    "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80", "\xff\xfe invalid \xc3",
    "I'm 12345 <s> </s> <|endoftext|>",
};

/* ------------------------------------------------------------------------ */
/* The fixed tokenizers */

static void add_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static btrm_tokenizer *make_spm(int space_prefix)
{
    static const char *const words[] = {
        "\xe2\x96\x81", "\xe2\x96\x81t", "h", "e", "he", "\xe2\x96\x81the", "\xe2\x96\x81" "a",
        "a", "n", "an", "\xc3\xa9", "\xe2\x96\x81\xe2\x96\x81", "\xe4\xb8\x96", "o", "on",
        "\xe2\x96\x81on", "ce", "\xe2\x96\x81Once",
    };
    enum { N_WORDS = sizeof words / sizeof words[0], N = 3 + 256 + N_WORDS };
    static char bytes[256][8];
    const char *pieces[N];
    float scores[N];
    pieces[0] = "<unk>", pieces[1] = "<s>", pieces[2] = "</s>";
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        pieces[3 + b] = bytes[b];
    }
    for (int i = 0; i < N_WORDS; i++)
        pieces[3 + 256 + i] = words[i];
    for (int i = 0; i < N; i++)
        scores[i] = i < 3 + 256 ? 0.0f : -(float)(i % 7);
    btrm_tokenizer *tok = NULL;
    if (btrm_tok_spm_from_arrays(&tok, pieces, scores, NULL, N, 1, 2) != 0 ||
        btrm_tok_spm_set_space_prefix(tok, space_prefix) != 0)
        fuzz_fail("fixed SentencePiece tokenizer: %s", btrm_error_msg());
    return tok;
}

/* GPT-2's alphabet (bytes_to_unicode) plus a few merges */
static btrm_tokenizer *make_bpe(const char *pre_name)
{
    static const char *const merges[] = {
        "\xc4\xa0 t", "h e", "\xc4\xa0t he", "a n", "i n", "\xc4\xa0 a", "o n", "\xc4\xa0 \xc4\xa0",
        "1 2", "12 3",
    };
    static const char *const merged[] = {
        "\xc4\xa0t", "he", "\xc4\xa0the", "an", "in", "\xc4\xa0" "a", "on", "\xc4\xa0\xc4\xa0",
        "12", "123", "<|endoftext|>",
    };
    enum { N_MERGES = sizeof merges / sizeof merges[0],
           N = 256 + sizeof merged / sizeof merged[0] };
    static char alphabet[256][4];
    const char *tokens[N];
    unsigned next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        add_utf8(alphabet[b], printable ? (unsigned)b : next++);
        tokens[b] = alphabet[b];
    }
    for (int i = 256; i < N; i++)
        tokens[i] = merged[i - 256];
    btrm_tokenizer *tok = NULL;
    if (btrm_tok_bpe_from_arrays(&tok, tokens, N, merges, N_MERGES, pre_name, -1, N - 1) != 0)
        fuzz_fail("fixed BPE tokenizer: %s", btrm_error_msg());
    return tok;
}

static void free_fixed(void)
{
    btrm_tok_free(spm);
    btrm_tok_free(spm_no_prefix);
    for (int i = 0; i < n_pre; i++)
        btrm_tok_free(bpe[i]);
}

static const btrm_tokenizer *bpe_for(unsigned index)
{
    index %= (unsigned)n_pre;
    if (!bpe[index])
        bpe[index] = make_bpe(pre[index]);
    return bpe[index];
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    spm = make_spm(1);
    spm_no_prefix = make_spm(0);
    btrm_tok_bpe_pre_names(pre_names, sizeof pre_names);
    for (char *name = strtok(pre_names, " "); name && n_pre < MAX_PRE; name = strtok(NULL, " "))
        pre[n_pre++] = name;
    if (n_pre == 0)
        fuzz_fail("no pre-tokenizer names");
    atexit(free_fixed);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Checks */

typedef struct joined {
    const char *text;
    size_t len, at;
} joined;

static int check_piece(const char *piece, size_t len, void *user)
{
    joined *j = user;
    if (len == 0 || j->at + len > j->len || memcmp(j->text + j->at, piece, len) != 0 ||
        piece != j->text + j->at)
        fuzz_fail("pre-tokenizer piece at byte %zu (%zu bytes) is not the next part of the "
                  "text", j->at, len);
    j->at += len;
    return 0;
}

/* Encodes text[0..len), checks ids, pieces and the split; returns 1 and
 * *back (malloc'ed) when decode worked. */
static int encode_decode(const btrm_tokenizer *tok, const char *text, size_t len, char **back,
                         size_t *back_len)
{
    int32_t *ids = NULL;
    int n_ids = 0;
    *back = NULL;
    joined j = { text, len, 0 };
    if (btrm_tok_split(tok, text, len, check_piece, &j) == 0 && j.at != len)
        fuzz_fail("the pre-tokenizer's pieces cover %zu of %zu bytes", j.at, len);
    if (btrm_tok_encode_bytes(tok, text, len, 1, &ids, &n_ids) != 0)
        return 0;
    const int n_vocab = btrm_tok_n_vocab(tok);
    const size_t max_piece = btrm_tok_max_piece_bytes(tok);
    char *piece = malloc(max_piece + 1);
    if (!piece)
        fuzz_fail("out of memory");
    for (int i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= n_vocab)
            fuzz_fail("token id %d outside the %d tokens", ids[i], n_vocab);
        int n = btrm_tok_decode_piece(tok, i ? ids[i - 1] : -1, ids[i], piece, max_piece + 1);
        if (n < 0 || (size_t)n > max_piece)
            fuzz_fail("token %d does not decode into btrm_tok_max_piece_bytes() + 1 = %zu "
                      "bytes: %s", ids[i], max_piece + 1, btrm_error_msg());
    }
    free(piece);
    int32_t *special = NULL;
    int n_special = 0;
    if (btrm_tok_encode_special(tok, text, len, 1, 1, &special, &n_special) == 0) {
        for (int i = 0; i < n_special; i++)
            if (special[i] < 0 || special[i] >= n_vocab)
                fuzz_fail("token id %d (parse_special) outside the %d tokens", special[i],
                          n_vocab);
        free(special);
    }
    /* the ids without the BOS that add_bos put first */
    const int skip = n_ids > 0 && btrm_tok_bos(tok) >= 0 && ids[0] == btrm_tok_bos(tok);
    int ok = btrm_tok_decode(tok, ids + skip, n_ids - skip, back, back_len) == 0;
    free(ids);
    return ok;
}

static void exercise(const btrm_tokenizer *tok)
{
    for (size_t i = 0; i < sizeof fixed_texts / sizeof fixed_texts[0]; i++) {
        char *back = NULL;
        size_t back_len = 0;
        encode_decode(tok, fixed_texts[i], strlen(fixed_texts[i]), &back, &back_len);
        free(back);
    }
    for (int id = 0; id < btrm_tok_n_vocab(tok); id++)
        if (!btrm_tok_piece(tok, id) || btrm_tok_type(tok, id) < 0)
            fuzz_fail("token %d has no piece or type", id);
    (void)btrm_tok_kind(tok);
}

static void round_trip(const btrm_tokenizer *tok, const uint8_t *data, size_t size, int exact)
{
    char *back = NULL;
    size_t back_len = 0;
    if (!encode_decode(tok, (const char *)data, size, &back, &back_len))
        fuzz_fail("encode or decode refused a text: %s", btrm_error_msg());
    if (exact && (back_len != size || memcmp(back, data, size) != 0))
        fuzz_fail("decode(encode(text)) differs from the %zu-byte text (%zu bytes back)", size,
                  back_len);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_file first, second;
    if (size < 1)
        return 0;
    const unsigned mode = data[0];
    data++, size--;
    btrm_tokenizer *tok = NULL;
    switch (mode % 4) {
    case 0:
        if (btrm_tok_spm_load_bin(&tok, fuzz_file_set(&first, "tokenizer.bin", data, size),
                                  (mode & 4u) ? 300 : 0) == 0)
            exercise(tok);
        break;
    case 1: {
        const uint8_t *part[2];
        size_t len[2];
        fuzz_split(data, size, part, len, 2);
        const char *enc = fuzz_file_set(&first, "encoder.json", part[0], len[0]);
        if (btrm_tok_bpe_load_files(&tok, enc, fuzz_file_set(&second, "vocab.bpe", part[1],
                                                             len[1])) == 0)
            exercise(tok);
        break;
    }
    case 2:
        round_trip((mode & 4u) ? spm_no_prefix : spm, data, size,
                   memmem(data, size, "\xe2\x96\x81", 3) == NULL);
        break;
    default:
        round_trip(bpe_for(mode >> 2), data, size, 1);
        break;
    }
    btrm_tok_free(tok);
    return 0;
}
