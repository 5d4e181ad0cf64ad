/* test-gguf.c: the GGUF reader on files written here byte by byte (every
 * metadata value type, arrays of every element type including strings,
 * general.alignment, F32/F16/BF16/Q8_0 tensors and an unsupported IQ4_NL one),
 * every truncation of such a file, corrupt headers, tensor lookups and their
 * messages, the tokenizer glue, and the real stories260K.gguf when
 * $BTRM_SHARED has it (header numbers from ../shared/models/README.md, the
 * README's token ids of "Once upon a time"). */
#include "error.h"
#include "gguf.h"
#include "gguf_writer.h"
#include "llama.h"
#include "tap.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint16_t f32_to_f16_bits(float f) /* exact for the values used here */
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, man = x & 0x7fffff;
    if (exp == 0)
        return (uint16_t)sign;
    return (uint16_t)(sign | ((exp - 127 + 15) << 10) | (man >> 13));
}

/* Tensors of the synthetic file: name, type, ne, payload. */
#define ALIGN 64
static const float t_f32[16] = { 1, -2, 3.5f, 0.25f, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, -16 };
static const float t_half[4] = { 1.0f, -0.5f, 65504.0f, 0.000061035156f };
static const float t_bf16[4] = { 1.0f, -0.5f, 65280.0f, 1.5e-38f };

static void build(buf *b, uint32_t version, int include_q4)
{
    memset(b, 0, sizeof *b);
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, include_q4 ? 5 : 4); /* tensors */
    put_u64(b, 19);                 /* metadata keys */
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    float f32 = 1e-5f;
    uint8_t bl = 1;
    int64_t i64 = -5000000000LL;
    double f64 = 3.25;
    put_key(b, "t.u8", BTRM_GGUF_UINT8), put(b, &u8, 1);
    put_key(b, "t.i8", BTRM_GGUF_INT8), put(b, &i8, 1);
    put_key(b, "t.u16", BTRM_GGUF_UINT16), put(b, &u16, 2);
    put_key(b, "t.i16", BTRM_GGUF_INT16), put(b, &i16, 2);
    put_key(b, "t.u32", BTRM_GGUF_UINT32), put_u32(b, 4000000000u);
    put_key(b, "t.i32", BTRM_GGUF_INT32), put(b, &i32, 4);
    put_key(b, "t.f32", BTRM_GGUF_FLOAT32), put(b, &f32, 4);
    put_key(b, "t.bool", BTRM_GGUF_BOOL), put(b, &bl, 1);
    put_key(b, "t.str", BTRM_GGUF_STRING), put_str(b, "héllo");
    put_key(b, "t.u64", BTRM_GGUF_UINT64), put_u64(b, 1ULL << 40);
    put_key(b, "t.i64", BTRM_GGUF_INT64), put(b, &i64, 8);
    put_key(b, "t.f64", BTRM_GGUF_FLOAT64), put(b, &f64, 8);
    /* arrays: strings (one empty), int32 (unaligned in the file), bool */
    put_key(b, "t.strs", BTRM_GGUF_ARRAY), put_u32(b, BTRM_GGUF_STRING), put_u64(b, 3);
    put_str(b, "a"), put_str(b, ""), put_str(b, "▁Once");
    put_key(b, "t.i32s", BTRM_GGUF_ARRAY), put_u32(b, BTRM_GGUF_INT32), put_u64(b, 3);
    int32_t v3[3] = { -1, 2, 1 << 30 };
    put(b, v3, sizeof v3);
    put_key(b, "t.bools", BTRM_GGUF_ARRAY), put_u32(b, BTRM_GGUF_BOOL), put_u64(b, 2);
    uint8_t bb[2] = { 0, 1 };
    put(b, bb, 2);
    put_key(b, "t.f64s", BTRM_GGUF_ARRAY), put_u32(b, BTRM_GGUF_FLOAT64), put_u64(b, 2);
    double dd[2] = { 0.5, -1e300 };
    put(b, dd, sizeof dd);
    put_key(b, "t.u8s", BTRM_GGUF_ARRAY), put_u32(b, BTRM_GGUF_UINT8), put_u64(b, 0);
    put_key(b, "general.alignment", BTRM_GGUF_UINT32), put_u32(b, ALIGN);
    put_key(b, "general.architecture", BTRM_GGUF_STRING), put_str(b, "llama");
    /* tensor infos: f32 [8, 2], f16 [4], bf16 [4], q8_0 [32, 2], iq4_nl [32] */
    uint64_t off = 0;
    put_str(b, "w.f32"), put_u32(b, 2), put_u64(b, 8), put_u64(b, 2), put_u32(b, 0),
        put_u64(b, off);
    off += ALIGN;
    put_str(b, "w.f16"), put_u32(b, 1), put_u64(b, 4), put_u32(b, 1), put_u64(b, off);
    off += ALIGN;
    put_str(b, "w.bf16"), put_u32(b, 1), put_u64(b, 4), put_u32(b, 30), put_u64(b, off);
    off += ALIGN;
    put_str(b, "w.q8"), put_u32(b, 2), put_u64(b, 32), put_u64(b, 2), put_u32(b, 8),
        put_u64(b, off);
    off += 2 * ALIGN;
    if (include_q4)
        put_str(b, "w.q4"), put_u32(b, 1), put_u64(b, 32), put_u32(b, 20), put_u64(b, off);
    pad_to(b, ALIGN);
    /* data */
    put(b, t_f32, sizeof t_f32);
    pad_to(b, ALIGN);
    for (int i = 0; i < 4; i++) {
        uint16_t h = f32_to_f16_bits(t_half[i]);
        put(b, &h, 2);
    }
    pad_to(b, ALIGN);
    for (int i = 0; i < 4; i++) {
        uint32_t x;
        memcpy(&x, &t_bf16[i], 4);
        uint16_t h = (uint16_t)(x >> 16); /* the values are bf16 numbers */
        put(b, &h, 2);
    }
    pad_to(b, ALIGN);
    for (int blk = 0; blk < 2; blk++) { /* d = 0.5 and 2^-10, q = i - 16 */
        uint16_t d = f32_to_f16_bits(blk ? 0.0009765625f : 0.5f);
        put(b, &d, 2);
        for (int i = 0; i < 32; i++) {
            int8_t q = (int8_t)(i - 16);
            put(b, &q, 1);
        }
    }
    if (include_q4) {
        pad_to(b, ALIGN);
        unsigned char q4[18] = { 0 };
        put(b, q4, sizeof q4);
    }
}

/* ------------------------------------------------------------------------ */

static void test_metadata(void)
{
    buf b;
    build(&b, 3, 1);
    const char *path = write_file("all.gguf", b.p, b.n);
    btrm_gguf *g = NULL;
    int rc = btrm_gguf_open(&g, path);
    is_int(rc, 0, "a GGUF v3 file with every value type opens");
    if (rc) {
        diag("%s", btrm_error_msg());
        skip(37, "did not open");
        free(b.p);
        return;
    }
    is_int(btrm_gguf_version(g), 3, "version 3");
    is_int(btrm_gguf_n_kv(g), 19, "19 metadata keys");
    is_int(btrm_gguf_alignment(g), ALIGN, "general.alignment = 64 is honoured");
    ok(btrm_gguf_data_offset(g) % ALIGN == 0 && btrm_gguf_data_offset(g) < b.n,
       "the data section starts on the alignment");
    int64_t i = 0;
    uint32_t u = 0;
    float f = 0;
    int bl = 0;
    const char *s = NULL;
    ok(!btrm_gguf_get_i64(g, "t.u8", &i) && i == 200, "uint8 200");
    ok(!btrm_gguf_get_i64(g, "t.i8", &i) && i == -100, "int8 -100");
    ok(!btrm_gguf_get_i64(g, "t.u16", &i) && i == 60000, "uint16 60000");
    ok(!btrm_gguf_get_i64(g, "t.i16", &i) && i == -30000, "int16 -30000");
    ok(!btrm_gguf_get_u32(g, "t.u32", &u) && u == 4000000000u, "uint32 4e9");
    ok(!btrm_gguf_get_i64(g, "t.i32", &i) && i == -2000000000, "int32 -2e9");
    ok(!btrm_gguf_get_f32(g, "t.f32", &f) && f == 1e-5f, "float32 1e-5");
    ok(!btrm_gguf_get_bool(g, "t.bool", &bl) && bl == 1, "bool true");
    ok(!btrm_gguf_get_string(g, "t.str", &s) && !strcmp(s, "héllo"), "UTF-8 string");
    ok(!btrm_gguf_get_i64(g, "t.u64", &i) && i == (1LL << 40), "uint64 2^40");
    ok(!btrm_gguf_get_i64(g, "t.i64", &i) && i == -5000000000LL, "int64 -5e9");
    ok(!btrm_gguf_get_f32(g, "t.f64", &f) && f == 3.25f, "float64 read as float32");
    is_int(btrm_gguf_get_u32(g, "t.i32", &u), BTRM_EDATA, "a negative int32 is not a uint32");
    like(btrm_error_msg(), "t.i32", "... and the message names the key");
    is_int(btrm_gguf_get_string(g, "t.u8", &s), BTRM_EDATA, "a uint8 is not a string");
    like(btrm_error_msg(), "has type uint8, want string", "... the message names both types");
    is_int(btrm_gguf_get_u32(g, "no.such", &u), BTRM_EDATA, "a missing key is an error");
    like(btrm_error_msg(), "no metadata key no.such", "... naming the key");
    btrm_gguf_array a;
    ok(!btrm_gguf_get_array(g, "t.strs", &a) && a.type == BTRM_GGUF_STRING && a.count == 3 &&
       !strcmp(((const char *const *)a.data)[0], "a") &&
       !strcmp(((const char *const *)a.data)[1], "") &&
       !strcmp(((const char *const *)a.data)[2], "▁Once"),
       "array of strings (one empty) as NUL-terminated strings");
    ok(!btrm_gguf_get_array(g, "t.i32s", &a) && a.type == BTRM_GGUF_INT32 && a.count == 3 &&
       (uintptr_t)a.data % 4 == 0 && ((const int32_t *)a.data)[0] == -1 &&
       ((const int32_t *)a.data)[2] == 1 << 30, "array of int32, aligned in memory");
    ok(!btrm_gguf_get_array(g, "t.bools", &a) && a.count == 2 &&
       ((const uint8_t *)a.data)[1] == 1, "array of bool");
    ok(!btrm_gguf_get_array(g, "t.f64s", &a) && a.type == BTRM_GGUF_FLOAT64 &&
       ((const double *)a.data)[1] == -1e300, "array of float64");
    ok(!btrm_gguf_get_array(g, "t.u8s", &a) && a.count == 0, "an empty array");

    is_int(btrm_gguf_n_tensors(g), 5, "5 tensors");
    const btrm_gguf_tensor *t = btrm_gguf_find_tensor(g, "w.f32");
    ok(t && t->n_dims == 2 && t->ne[0] == 8 && t->ne[1] == 2 && t->n_elements == 16 &&
       t->bytes == 64 && !memcmp(t->data, t_f32, sizeof t_f32), "F32 tensor: shape and data");
    uint64_t ne_f32[2] = { 8, 2 }, ne_any[2] = { 8, 0 }, ne_bad[2] = { 2, 8 };
    ok(btrm_gguf_tensor_check(g, "w.f32", 2, ne_f32) == t &&
       btrm_gguf_tensor_check(g, "w.f32", 2, ne_any) == t, "tensor_check with exact and any sizes");
    ok(!btrm_gguf_tensor_check(g, "w.f32", 2, ne_bad), "tensor_check refuses a transposed shape");
    like(btrm_error_msg(), "w.f32 (F32) has shape ne=[8, 2], want ne=[2, 8]", "... and says so");
    ok(!btrm_gguf_tensor_check(g, "w.nope", 2, ne_f32), "tensor_check: a missing tensor");
    like(btrm_error_msg(), "all.gguf: missing tensor w.nope", "... named with the file");
    uint64_t ne_q4[1] = { 32 };
    ok(!btrm_gguf_tensor_check(g, "w.q4", 1, ne_q4), "tensor_check refuses IQ4_NL");
    like(btrm_error_msg(), "all.gguf: tensor w.q4 has type IQ4_NL, which btrm does not support",
         "... naming the file, the tensor and its type");

    /* the values through llama.h's row dequantisation */
    float row[32];
    btrm_llama_matrix m16 = { btrm_gguf_find_tensor(g, "w.f16")->data, BTRM_Q_F16, 1, 4 };
    btrm_llama_dequant_row(&m16, 0, row);
    ok(!memcmp(row, t_half, sizeof t_half), "F16 row: 1, -0.5, 65504, 2^-14 exactly");
    btrm_llama_matrix mb = { btrm_gguf_find_tensor(g, "w.bf16")->data, BTRM_Q_BF16, 1, 4 };
    btrm_llama_dequant_row(&mb, 0, row);
    uint32_t bits;
    memcpy(&bits, &t_bf16[3], 4);
    float want3;
    bits &= 0xffff0000u;
    memcpy(&want3, &bits, 4);
    ok(row[0] == 1.0f && row[1] == -0.5f && row[2] == 65280.0f && row[3] == want3,
       "BF16 row: the top 16 bits of float32");
    const btrm_gguf_tensor *q8 = btrm_gguf_find_tensor(g, "w.q8");
    btrm_llama_matrix mq = { q8->data, BTRM_Q_Q8_0, 2, 32 };
    int good = q8->bytes == 68;
    for (int r = 0; r < 2; r++) {
        btrm_llama_dequant_row(&mq, r, row);
        for (int k = 0; k < 32; k++)
            good &= row[k] == (r ? 0.0009765625f : 0.5f) * (float)(k - 16);
    }
    ok(good, "Q8_0 rows: d * q for both blocks (34 bytes each)");
    btrm_gguf_close(g);

    /* version 2 reads the same */
    free(b.p);
    build(&b, 2, 0);
    path = write_file("v2.gguf", b.p, b.n);
    rc = btrm_gguf_open(&g, path);
    ok(!rc && btrm_gguf_version(g) == 2 && btrm_gguf_n_tensors(g) == 4, "GGUF v2 opens");
    btrm_gguf_close(g);
    free(b.p);
}

/* Every proper prefix of a valid file is refused with BTRM_EDATA (under
 * ASan this also proves that no read leaves the mapping). */
static void test_truncation(void)
{
    buf b;
    build(&b, 3, 0);
    int all_refused = 1, n_tried = 0;
    for (size_t len = 0; len < b.n; len += len < 600 ? 1 : 7) {
        const char *path = write_file("cut.gguf", b.p, len);
        btrm_gguf *g = NULL;
        int rc = btrm_gguf_open(&g, path);
        n_tried++;
        if (rc != BTRM_EDATA || g) {
            diag("prefix of %zu bytes: rc %d (%s)", len, rc, btrm_error_msg());
            all_refused = 0;
            btrm_gguf_close(g);
            break;
        }
    }
    ok(all_refused, "every truncation of a %zu-byte file is refused (%d prefixes)", b.n, n_tried);
    const char *path = write_file("cut.gguf", b.p, b.n - 1);
    btrm_gguf *g = NULL;
    btrm_gguf_open(&g, path);
    like(btrm_error_msg(), "tensor w.q8 (Q8_0, 68 bytes at data offset 192) lies beyond the end",
         "a file one byte short names the tensor it cuts");
    free(b.p);
}

static int open_patched(const char *what, size_t at, const void *bytes, size_t n)
{
    buf b;
    build(&b, 3, 0);
    memcpy(b.p + at, bytes, n);
    const char *path = write_file("bad.gguf", b.p, b.n);
    btrm_gguf *g = NULL;
    int rc = btrm_gguf_open(&g, path);
    btrm_gguf_close(g);
    free(b.p);
    if (rc != BTRM_EDATA)
        diag("%s: rc %d", what, rc);
    return rc;
}

static size_t find(const buf *b, const char *s)
{
    for (size_t i = 0; i + strlen(s) <= b->n; i++)
        if (!memcmp(b->p + i, s, strlen(s)))
            return i;
    abort();
}

static void test_corrupt(void)
{
    buf ref;
    build(&ref, 3, 0);
    uint32_t v;
    uint64_t big = UINT64_C(1) << 60;
    is_int(open_patched("magic", 0, "GGML", 4), BTRM_EDATA, "wrong magic");
    like(btrm_error_msg(), "not a GGUF file (magic 47 47 4d 4c", "... prints the magic found");
    v = 1;
    is_int(open_patched("v1", 4, &v, 4), BTRM_EDATA, "version 1 is refused");
    like(btrm_error_msg(), "GGUF version 1 is not supported", "... by number");
    is_int(open_patched("n_kv", 16, &big, 8), BTRM_EDATA, "a huge key count, no huge allocation");
    is_int(open_patched("n_tensors", 8, &big, 8), BTRM_EDATA, "a huge tensor count");
    size_t at = find(&ref, "t.str") + 5;
    is_int(open_patched("strlen", at + 4, &big, 8), BTRM_EDATA, "a huge string length");
    v = 3;
    at = find(&ref, "general.alignment") + 17 + 4;
    is_int(open_patched("alignment", at, &v, 4), BTRM_EDATA, "alignment 3 (not a power of 2)");
    like(btrm_error_msg(), "general.alignment must be a uint32 power of two", "... says why");
    v = 99;
    at = find(&ref, "t.u8") + 4;
    is_int(open_patched("type", at, &v, 4), BTRM_EDATA, "an unknown value type");
    v = BTRM_GGUF_ARRAY;
    at = find(&ref, "t.i32s") + 6 + 4;
    is_int(open_patched("nested", at, &v, 4), BTRM_EDATA, "nested arrays are refused");
    v = 5;
    at = find(&ref, "w.f32") + 5;
    is_int(open_patched("n_dims", at, &v, 4), BTRM_EDATA, "5 dimensions are refused");
    uint64_t off = 8;
    at = find(&ref, "w.f16") + 5 + 4 + 8 + 4;
    is_int(open_patched("unaligned", at, &off, 8), BTRM_EDATA, "an unaligned tensor offset");
    like(btrm_error_msg(), "offset 8 is not a multiple of the alignment 64", "... says so");
    off = 1 << 20;
    is_int(open_patched("far", at, &off, 8), BTRM_EDATA, "an offset past the end of the file");
    like(btrm_error_msg(), "w.f16 (F16, 8 bytes at data offset 1048576) lies beyond the end",
         "... names the tensor, its type and offset");
    uint64_t rows = 40;
    at = find(&ref, "w.q8") + 4 + 4;
    is_int(open_patched("ragged", at, &rows, 8), BTRM_EDATA, "Q8_0 rows of 40 values");
    like(btrm_error_msg(), "tensor w.q8 is Q8_0 with rows of 40 values, not a multiple of its "
         "block of 32", "... names the tensor, the type and its block");
    uint32_t q4k = 12; /* w.q8 [32, 2] relabelled Q4_K: rows of 32 are not blocks of 256 */
    at = find(&ref, "w.q8") + 4 + 4 + 8 + 8;
    is_int(open_patched("ragged-k", at, &q4k, 4), BTRM_EDATA, "Q4_K rows of 32 values");
    like(btrm_error_msg(), "tensor w.q8 is Q4_K with rows of 32 values, not a multiple of its "
         "block of 256", "... refused at open, naming the block");
    at = find(&ref, "t.u16");
    is_int(open_patched("dup", at, "t.u8\0", 5), BTRM_EDATA, "a key twice (t.u8 and t.u8\\0..)");
    free(ref.p);
    btrm_gguf *g = NULL;
    is_int(btrm_gguf_open(&g, "/nonexistent/x.gguf"), BTRM_EIO, "a missing file is BTRM_EIO");
    like(btrm_error_msg(), "cannot open model file /nonexistent/x.gguf", "... naming it");
}

/* ------------------------------------------------------------------------ */
/* The real model */

static void test_stories(const char *path)
{
    btrm_gguf *g = NULL;
    int rc = btrm_gguf_open(&g, path);
    is_int(rc, 0, "stories260K.gguf opens");
    if (rc) {
        diag("%s", btrm_error_msg());
        skip(9, "did not open");
        return;
    }
    ok(btrm_gguf_version(g) == 3 && btrm_gguf_n_kv(g) == 19 && btrm_gguf_n_tensors(g) == 48,
       "GGUF v3, 19 keys, 48 tensors (README)");
    ok(btrm_gguf_data_offset(g) == 14176 && btrm_gguf_alignment(g) == 32,
       "data from byte 14176, alignment 32 (README)");
    uint32_t dim = 0, kv = 0;
    float eps = 0;
    const char *arch = NULL;
    ok(!btrm_gguf_get_u32(g, "llama.embedding_length", &dim) && dim == 64 &&
       !btrm_gguf_get_u32(g, "llama.attention.head_count_kv", &kv) && kv == 4 &&
       !btrm_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps) && eps == 1e-5f &&
       !btrm_gguf_get_string(g, "general.architecture", &arch) && !strcmp(arch, "llama"),
       "llama.* hyperparameters");
    btrm_gguf_array a;
    ok(!btrm_gguf_get_array(g, "tokenizer.ggml.tokens", &a) && a.count == 512 &&
       !strcmp(((const char *const *)a.data)[403], "▁Once"), "tokens[403] = \"▁Once\"");
    const btrm_gguf_tensor *t = btrm_gguf_find_tensor(g, "blk.4.ffn_down.weight");
    ok(t && t->type == BTRM_Q_F32 && t->ne[0] == 172 && t->ne[1] == 64,
       "blk.4.ffn_down.weight is F32 ne=[172, 64]");
    btrm_tokenizer *tok = NULL;
    int add_bos = -1;
    rc = btrm_gguf_tokenizer(g, &tok, &add_bos);
    is_int(rc, 0, "the tokenizer glue builds an spm tokenizer");
    int32_t *ids = NULL;
    int n = 0;
    if (!rc)
        rc = btrm_tok_encode(tok, "Once upon a time", 1, &ids, &n);
    ok(!rc && n == 5 && ids[0] == 1 && ids[1] == 403 && ids[2] == 407 && ids[3] == 261 &&
       ids[4] == 378, "\"Once upon a time\" -> 1 403 407 261 378 (README)");
    ok(tok && btrm_tok_bos(tok) == 1 && btrm_tok_eos(tok) == 2 && add_bos == 1,
       "BOS 1, EOS 2, add_bos");
    free(ids);
    btrm_tok_free(tok);
    btrm_gguf_close(g);
}

/* A GGUF without a tokenizer model we know, for the glue's refusal. */
static void test_tokenizer_refused(void)
{
    buf b;
    memset(&b, 0, sizeof b);
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 1);
    put_key(&b, "tokenizer.ggml.model", BTRM_GGUF_STRING), put_str(&b, "bert");
    const char *path = write_file("bert.gguf", b.p, b.n);
    btrm_gguf *g = NULL;
    btrm_tokenizer *tok = NULL;
    int rc = btrm_gguf_open(&g, path);
    if (!rc)
        rc = btrm_gguf_tokenizer(g, &tok, NULL);
    ok(rc == BTRM_EDATA && !tok, "tokenizer.ggml.model = bert is refused");
    like(btrm_error_msg(), "tokenizer.ggml.model = 'bert' is not supported", "... by name");
    btrm_gguf_close(g);
    free(b.p);
}

int main(void)
{
    if (!mkdtemp(tmp_dir)) {
        skip_all("cannot make a temporary directory");
        return 0;
    }
    plan(41 + 2 + 20 + 3 + 9 + 2);
    test_metadata();
    test_truncation();
    test_corrupt();
    const char *shared = getenv("BTRM_SHARED");
    const char *srcdir = getenv("BTRM_SRCDIR");
    char path[4096];
    if (shared && shared[0])
        snprintf(path, sizeof path, "%s/models/stories260K/stories260K.gguf", shared);
    else
        snprintf(path, sizeof path, "%s/../shared/models/stories260K/stories260K.gguf",
                 srcdir ? srcdir : ".");
    if (access(path, R_OK) == 0)
        test_stories(path);
    else
        skip(9, "stories260K.gguf absent (set BTRM_SHARED, or fetch it with data-prep/fetch.sh --models)");
    test_tokenizer_refused();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        diag("could not remove %s", tmp_dir);
    return done_testing();
}
