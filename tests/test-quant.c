/* test-quant.c: ggml's tensor encodings (src/math/quant.h).
 *  - hand-made blocks of every type (pseudo-random bytes, chosen scales)
 *    dequantised by the library equal, bitwise, a test-side implementation
 *    of ggml's formulas written element by element from the layouts of
 *    ggml-common.h (ggml_ref below);
 *  - the bf16 destination is the float32 value rounded to nearest even;
 *  - a quantiser of the test's own (the recipes of tests/gguf_quantize.py)
 *    round-trips random rows of every type within the bound documented for
 *    it (bound_of);
 *  - half-precision conversions both ways, row sizes, names. */
#include "dtype.h"
#include "gemm.h"
#include "quant.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t lcg = 88172645463325252ULL;
static uint32_t rnd(void)
{
    lcg ^= lcg << 13;
    lcg ^= lcg >> 7;
    lcg ^= lcg << 17;
    return (uint32_t)(lcg >> 16);
}
static float frand(void) { return (float)(rnd() % 2000001) / 1000000.0f - 1.0f; }

/* An exact binary16 decoder written from the IEEE definition. */
static float half(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (float)((h >> 15) ? -v : v);
}
static float h_at(const uint8_t *p) { return half((uint16_t)(p[0] | p[1] << 8)); }
static void put_h(uint8_t *p, uint16_t h) { p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8); }

/* ------------------------------------------------------------------------ */
/* ggml's formulas, one element at a time. Each returns element e of the
 * block at b, computed with the same float32 operations in the same order as
 * ggml's dequantize_row_*. */

static float ref_q4_0(const uint8_t *b, int e)
{
    int byte = b[2 + e % 16], q = e < 16 ? byte & 15 : byte >> 4;
    return (float)(q - 8) * h_at(b);
}
static float ref_q4_1(const uint8_t *b, int e)
{
    int byte = b[4 + e % 16], q = e < 16 ? byte & 15 : byte >> 4;
    return (float)q * h_at(b) + h_at(b + 2);
}
static int q5_value(const uint8_t *qh, const uint8_t *qs, int e)
{
    uint32_t bits = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
                    (uint32_t)qh[3] << 24;
    int byte = qs[e % 16], low = e < 16 ? byte & 15 : byte >> 4;
    return low | (int)((bits >> e) & 1) << 4;
}
static float ref_q5_0(const uint8_t *b, int e) { return (float)(q5_value(b + 2, b + 6, e) - 16) * h_at(b); }
static float ref_q5_1(const uint8_t *b, int e)
{
    return (float)q5_value(b + 4, b + 8, e) * h_at(b) + h_at(b + 2);
}
static float ref_q8_0(const uint8_t *b, int e) { return (float)(int8_t)b[2 + e] * h_at(b); }

static float ref_q2_k(const uint8_t *b, int e)
{
    /* scales[16] qs[64] d dmin; element 128h + 32k + 16c + l */
    int h = e / 128, k = e % 128 / 32, c = e % 32 / 16, l = e % 16;
    int q = (b[16 + 32 * h + 16 * c + l] >> (2 * k)) & 3, sc = b[e / 16];
    float dl = h_at(b + 80) * (float)(sc & 15), ml = h_at(b + 82) * (float)(sc >> 4);
    return dl * (float)q - ml;
}
static float ref_q3_k(const uint8_t *b, int e)
{
    /* hmask[32] qs[64] scales[12] d */
    int h = e / 128, k = e % 128 / 32, c = e % 32 / 16, l = e % 16, j = e / 16;
    int low = (b[32 + 32 * h + 16 * c + l] >> (2 * k)) & 3;
    int high = (b[16 * c + l] >> (4 * h + k)) & 1;
    int s = ((b[96 + j % 8] >> (4 * (j / 8))) & 15) | ((b[104 + j % 4] >> (2 * (j / 4))) & 3) << 4;
    float dl = h_at(b + 108) * (float)(s - 32);
    return dl * (float)(low - (high ? 0 : 4));
}
static void ref_k4_scale(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}
static float ref_q45_k(const uint8_t *b, int e, int five)
{
    /* d dmin scales[12] (qh[32]) qs[128]; element 64p + 32half + l */
    int p = e / 64, hf = e % 64 / 32, l = e % 32, sc, m;
    const uint8_t *qs = b + (five ? 48 : 16);
    int q = hf ? qs[32 * p + l] >> 4 : qs[32 * p + l] & 15;
    if (five && (b[16 + l] >> (2 * p + hf)) & 1)
        q += 16;
    ref_k4_scale(b + 4, 2 * p + hf, &sc, &m);
    float d1 = h_at(b) * (float)sc, m1 = h_at(b + 2) * (float)m;
    return d1 * (float)q - m1;
}
static float ref_q4_k(const uint8_t *b, int e) { return ref_q45_k(b, e, 0); }
static float ref_q5_k(const uint8_t *b, int e) { return ref_q45_k(b, e, 1); }
static float ref_q6_k(const uint8_t *b, int e)
{
    /* ql[128] qh[64] scales[16] d; element 128h + 32k + l */
    int h = e / 128, k = e % 128 / 32, l = e % 32;
    int byte = b[64 * h + 32 * (k % 2) + l];
    int q = ((k < 2 ? byte & 15 : byte >> 4) | ((b[128 + 32 * h + l] >> (2 * k)) & 3) << 4) - 32;
    return h_at(b + 208) * (float)(int8_t)b[192 + e / 16] * (float)q;
}
static float ref_q8_k(const uint8_t *b, int e)
{
    float d;
    memcpy(&d, b, 4);
    return d * (float)(int8_t)b[4 + e];
}

typedef struct tcase {
    int type;
    const char *name;
    int block, bytes;
    float (*ref)(const uint8_t *b, int e);
    int scale_at[2]; /* byte offsets of fp16 scales to set (-1: none) */
} tcase;

static const tcase cases[] = {
    { BTRM_Q_Q4_0, "Q4_0", 32, 18, ref_q4_0, { 0, -1 } },
    { BTRM_Q_Q4_1, "Q4_1", 32, 20, ref_q4_1, { 0, 2 } },
    { BTRM_Q_Q5_0, "Q5_0", 32, 22, ref_q5_0, { 0, -1 } },
    { BTRM_Q_Q5_1, "Q5_1", 32, 24, ref_q5_1, { 0, 2 } },
    { BTRM_Q_Q8_0, "Q8_0", 32, 34, ref_q8_0, { 0, -1 } },
    { BTRM_Q_Q2_K, "Q2_K", 256, 84, ref_q2_k, { 80, 82 } },
    { BTRM_Q_Q3_K, "Q3_K", 256, 110, ref_q3_k, { 108, -1 } },
    { BTRM_Q_Q4_K, "Q4_K", 256, 144, ref_q4_k, { 0, 2 } },
    { BTRM_Q_Q5_K, "Q5_K", 256, 176, ref_q5_k, { 0, 2 } },
    { BTRM_Q_Q6_K, "Q6_K", 256, 210, ref_q6_k, { 208, -1 } },
    { BTRM_Q_Q8_K, "Q8_K", 256, 292, ref_q8_k, { -1, -1 } },
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static void test_hand_made(void)
{
    enum { BLOCKS = 7 };
    for (int c = 0; c < N_CASES; c++) {
        const tcase *t = &cases[c];
        uint8_t *raw = malloc((size_t)BLOCKS * (size_t)t->bytes);
        float *got = malloc((size_t)BLOCKS * (size_t)t->block * sizeof *got);
        uint16_t *got16 = malloc((size_t)BLOCKS * (size_t)t->block * sizeof *got16);
        for (int i = 0; i < BLOCKS * t->bytes; i++)
            raw[i] = (uint8_t)rnd();
        /* scales: finite, of both signs and several magnitudes (one block
         * with a zero scale, one with a subnormal) */
        static const uint16_t scales[BLOCKS] = { 0x2e66, 0xa3d7, 0x0000, 0x0203,
                                                 0x3c00, 0x1f00, 0xb400 };
        for (int b = 0; b < BLOCKS; b++) {
            uint8_t *blk = raw + (size_t)b * (size_t)t->bytes;
            for (int s = 0; s < 2; s++)
                if (t->scale_at[s] >= 0)
                    put_h(blk + t->scale_at[s], scales[(b + 3 * s) % BLOCKS]);
            if (t->type == BTRM_Q_Q8_K) {
                float d = 0.001f * (float)(b - 3);
                memcpy(blk, &d, 4);
            }
        }
        int n = BLOCKS * t->block;
        btrm_quant_dequant_f32(t->type, raw, n, got);
        btrm_quant_dequant(t->type, raw, n, BTRM_PREC_BF16, got16);
        int same = 1, same16 = 1, first_bad = -1;
        for (int i = 0; i < n; i++) {
            float want = t->ref(raw + (size_t)(i / t->block) * (size_t)t->bytes, i % t->block);
            if (memcmp(&want, &got[i], 4)) {
                same = 0;
                if (first_bad < 0)
                    first_bad = i;
            }
            same16 &= got16[i] == btrm_float_to_bf16(want);
        }
        ok(same, "%s: %d hand-made blocks dequantise to ggml's formulas, bitwise%s", t->name,
           BLOCKS, same ? "" : " (NOT)");
        if (!same)
            diag("first difference at value %d: got %.9g, want %.9g", first_bad, got[first_bad],
                 t->ref(raw + (size_t)(first_bad / t->block) * (size_t)t->bytes,
                        first_bad % t->block));
        ok(same16, "%s: the bf16 destination is each value rounded to nearest even", t->name);
        is_int((int)btrm_quant_row_bytes(t->type, 2 * t->block), 2 * t->bytes,
               "%s: %d bytes per block of %d", t->name, t->bytes, t->block);
        is_int((int)btrm_quant_row_bytes(t->type, t->block + 16), 0,
               "%s: a row that is not whole blocks has no size", t->name);
        free(raw);
        free(got);
        free(got16);
    }
}

/* ------------------------------------------------------------------------ */
/* The test's quantiser (tests/gguf_quantize.py's recipes) and the bound of
 * each type's error, relative to max|x| over the block (32 values) or
 * super-block (256), from the recipe:
 *  symmetric, L levels each side (Q4_0 7, Q5_0 15, Q8_K 127):
 *      |err| <= d/2 = max/(2L), times (1 + 2^-10) for the fp16 scale; Q8_0
 *      rounds x/d with the float32 d and stores fp16(d): + 127 |fp16(d) - d|;
 *  affine (Q4_1, Q5_1; 2^b - 1 steps over max - min <= 2 max):
 *      |err| <= (max - min)/(2 (2^b - 1)) + fp16 rounding of d and m;
 *  K affine (Q2_K 3 steps / 4-bit scales, Q4_K 15 / 6-bit, Q5_K 31 / 6-bit):
 *      the group scale is a multiple of d = max scale / S (S = 15 or 63),
 *      off by up to d/2 from the ideal one, which can clip the top value by
 *      steps * d/2, and the min by dmin/2 likewise: |err| <= range/(2 steps)
 *      + range/(2 S) + max/(2 S), range <= 2 max;
 *  K symmetric (Q3_K: q in -4..3, 6-bit scales; Q6_K: -32..31, 8-bit):
 *      |err| <= scale/2 + (L + 1) d/2 with scale = max/L, d = max/(L S). */
static double bound_of(int type)
{
    const double f16 = 1.0 + 1.0 / 1024;
    switch (type) {
    case BTRM_Q_Q8_0: return (0.5 + 127.0 / 2048) / 127; /* q from d, read with fp16(d) */
    case BTRM_Q_Q8_K: return 1.0 / 254;
    case BTRM_Q_Q4_0: return f16 / 14;
    case BTRM_Q_Q5_0: return f16 / 30;
    case BTRM_Q_Q4_1: return f16 * 2 / 30 + 2.0 / 2048;
    case BTRM_Q_Q5_1: return f16 * 2 / 62 + 2.0 / 2048;
    case BTRM_Q_Q2_K: return f16 * (2.0 / 6 + 2.0 / 30 + 1.0 / 30);
    case BTRM_Q_Q4_K: return f16 * (2.0 / 30 + 2.0 / 126 + 1.0 / 126);
    case BTRM_Q_Q5_K: return f16 * (2.0 / 62 + 2.0 / 126 + 1.0 / 126);
    case BTRM_Q_Q3_K: return f16 * (1.0 / 6 + 4.0 / (3 * 62));
    case BTRM_Q_Q6_K: return f16 * (1.0 / 62 + 32.0 / (31 * 254));
    default: return 0;
    }
}

static float roundaway(float v) { return truncf(v + copysignf(0.5f, v)); }
static float inv(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }
static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }
static float stored_half(float v) { return btrm_half_to_float(btrm_float_to_half(v)); }

static float amax_of(const float *x, int n)
{
    float m = 0;
    for (int i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* The 32 codes of a Q4/Q5 block: low nibbles as qs[16] (element j and
 * j + 16 in byte j), and for 5 bits the fifth bits as the u32 qh. */
static void pack_q45(const int *q, uint8_t *qs, uint8_t *qh)
{
    uint32_t bits = 0;
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
    for (int i = 0; i < 32; i++)
        bits |= (uint32_t)((q[i] >> 4) & 1) << i;
    for (int i = 0; qh && i < 4; i++)
        qh[i] = (uint8_t)(bits >> (8 * i));
}

/* Q4_0 / Q5_0 / Q8_0 (bits 4, 5, 8) */
static void quant_sym32(const float *x, uint8_t *b, int bits)
{
    int L = bits == 8 ? 127 : (1 << (bits - 1)) - 1, off = bits == 8 ? 0 : L + 1;
    float d = amax_of(x, 32) / (float)L;
    if (bits != 8)
        d = stored_half(d);
    put_h(b, btrm_float_to_half(d));
    int q[32];
    for (int i = 0; i < 32; i++)
        q[i] = (int)clampf(roundaway(x[i] * inv(d)) + (float)off, bits == 8 ? -127 : 0,
                           bits == 8 ? 127 : (float)(2 * L + 1));
    if (bits == 8) {
        for (int i = 0; i < 32; i++)
            b[2 + i] = (uint8_t)(int8_t)q[i];
        return;
    }
    pack_q45(q, b + (bits == 5 ? 6 : 2), bits == 5 ? b + 2 : NULL);
}

/* Q4_1 / Q5_1 */
static void quant_affine32(const float *x, uint8_t *b, int bits)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < 32; i++)
        lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    int top = (1 << bits) - 1;
    float d = stored_half((hi - lo) / (float)top), m = stored_half(lo);
    put_h(b, btrm_float_to_half(d));
    put_h(b + 2, btrm_float_to_half(m));
    int q[32];
    for (int i = 0; i < 32; i++)
        q[i] = (int)clampf(roundaway((x[i] - m) * inv(d)), 0, (float)top);
    pack_q45(q, b + (bits == 5 ? 8 : 4), bits == 5 ? b + 4 : NULL);
}

/* The K affine recipe: groups of `group`, q in 0..steps, scales and mins
 * as multiples (0..top) of fp16 d and dmin. */
static void kq_affine(const float *x, int group, int steps, int top, float *d, float *dmin,
                      int *sc, int *m, int *q)
{
    int ng = 256 / group;
    float scale[16], mins[16], max_scale = 0, max_min = 0;
    for (int g = 0; g < ng; g++) {
        float lo = 0, hi = x[g * group];
        for (int i = 0; i < group; i++)
            lo = fminf(lo, x[g * group + i]), hi = fmaxf(hi, x[g * group + i]);
        scale[g] = (hi - lo) / (float)steps;
        mins[g] = -lo;
        max_scale = fmaxf(max_scale, scale[g]);
        max_min = fmaxf(max_min, mins[g]);
    }
    *d = stored_half(max_scale / (float)top);
    *dmin = stored_half(max_min / (float)top);
    for (int g = 0; g < ng; g++) {
        sc[g] = (int)clampf(roundaway(scale[g] * inv(*d)), 0, (float)top);
        m[g] = (int)clampf(roundaway(mins[g] * inv(*dmin)), 0, (float)top);
        float ds = *d * (float)sc[g], dm = *dmin * (float)m[g];
        for (int i = 0; i < group; i++)
            q[g * group + i] = (int)clampf(roundaway((x[g * group + i] + dm) * inv(ds)), 0,
                                           (float)steps);
    }
}

/* The K symmetric recipe: 16 groups of 16, q in -(L+1)..L, signed scales. */
static void kq_sym(const float *x, int L, int S, float *d, int *sc, int *q)
{
    float scale[16], max_scale = 0;
    for (int g = 0; g < 16; g++) {
        scale[g] = amax_of(x + 16 * g, 16) / (float)L;
        max_scale = fmaxf(max_scale, scale[g]);
    }
    *d = stored_half(max_scale / (float)S);
    for (int g = 0; g < 16; g++) {
        sc[g] = (int)clampf(roundaway(scale[g] * inv(*d)), (float)-S, (float)S);
        float ds = *d * (float)sc[g];
        for (int i = 0; i < 16; i++)
            q[16 * g + i] = (int)clampf(roundaway(x[16 * g + i] * inv(ds)), (float)(-L - 1),
                                        (float)L);
    }
}

static void quant_q2_k(const float *x, uint8_t *b)
{
    float d, dmin;
    int sc[16], m[16], q[256];
    kq_affine(x, 16, 3, 15, &d, &dmin, sc, m, q);
    memset(b, 0, 84);
    for (int g = 0; g < 16; g++)
        b[g] = (uint8_t)(sc[g] | m[g] << 4);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, k = e % 128 / 32, c = e % 32 / 16, l = e % 16;
        b[16 + 32 * h + 16 * c + l] |= (uint8_t)(q[e] << (2 * k));
    }
    put_h(b + 80, btrm_float_to_half(d));
    put_h(b + 82, btrm_float_to_half(dmin));
}

static void pack_k4_scales(const int *sc, const int *m, uint8_t *s)
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

static void quant_q45_k(const float *x, uint8_t *b, int five)
{
    float d, dmin;
    int sc[8], m[8], q[256];
    kq_affine(x, 32, five ? 31 : 15, 63, &d, &dmin, sc, m, q);
    memset(b, 0, five ? 176 : 144);
    put_h(b, btrm_float_to_half(d));
    put_h(b + 2, btrm_float_to_half(dmin));
    pack_k4_scales(sc, m, b + 4);
    uint8_t *qs = b + (five ? 48 : 16);
    for (int e = 0; e < 256; e++) {
        int p = e / 64, hf = e % 64 / 32, l = e % 32;
        qs[32 * p + l] |= (uint8_t)((q[e] & 15) << (4 * hf));
        if (five)
            b[16 + l] |= (uint8_t)(((q[e] >> 4) & 1) << (2 * p + hf));
    }
}

static void quant_q3_k(const float *x, uint8_t *b)
{
    float d;
    int sc[16], q[256];
    kq_sym(x, 3, 31, &d, sc, q);
    memset(b, 0, 110);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, k = e % 128 / 32, c = e % 32 / 16, l = e % 16, u = q[e] + 4;
        b[32 + 32 * h + 16 * c + l] |= (uint8_t)((u & 3) << (2 * k));
        b[16 * c + l] |= (uint8_t)(((u >> 2) & 1) << (4 * h + k));
    }
    for (int j = 0; j < 16; j++) {
        int s = sc[j] + 32;
        b[96 + j % 8] |= (uint8_t)((s & 15) << (4 * (j / 8)));
        b[104 + j % 4] |= (uint8_t)(((s >> 4) & 3) << (2 * (j / 4)));
    }
    put_h(b + 108, btrm_float_to_half(d));
}

static void quant_q6_k(const float *x, uint8_t *b)
{
    float d;
    int sc[16], q[256];
    kq_sym(x, 31, 127, &d, sc, q);
    memset(b, 0, 210);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, k = e % 128 / 32, l = e % 32, u = q[e] + 32;
        b[64 * h + 32 * (k % 2) + l] |= (uint8_t)((u & 15) << (k < 2 ? 0 : 4));
        b[128 + 32 * h + l] |= (uint8_t)(((u >> 4) & 3) << (2 * k));
    }
    for (int g = 0; g < 16; g++)
        b[192 + g] = (uint8_t)(int8_t)sc[g];
    put_h(b + 208, btrm_float_to_half(d));
}

static void quant_q8_k(const float *x, uint8_t *b)
{
    float d = amax_of(x, 256) / 127.0f;
    memcpy(b, &d, 4);
    int16_t sums[16] = { 0 };
    for (int i = 0; i < 256; i++) {
        int q = (int)clampf(roundaway(x[i] * inv(d)), -127, 127);
        b[4 + i] = (uint8_t)(int8_t)q;
        sums[i / 16] = (int16_t)(sums[i / 16] + q);
    }
    memcpy(b + 260, sums, sizeof sums);
}

static void quantize(int type, const float *x, uint8_t *b)
{
    switch (type) {
    case BTRM_Q_Q4_0: quant_sym32(x, b, 4); break;
    case BTRM_Q_Q5_0: quant_sym32(x, b, 5); break;
    case BTRM_Q_Q8_0: quant_sym32(x, b, 8); break;
    case BTRM_Q_Q4_1: quant_affine32(x, b, 4); break;
    case BTRM_Q_Q5_1: quant_affine32(x, b, 5); break;
    case BTRM_Q_Q2_K: quant_q2_k(x, b); break;
    case BTRM_Q_Q3_K: quant_q3_k(x, b); break;
    case BTRM_Q_Q4_K: quant_q45_k(x, b, 0); break;
    case BTRM_Q_Q5_K: quant_q45_k(x, b, 1); break;
    case BTRM_Q_Q6_K: quant_q6_k(x, b); break;
    case BTRM_Q_Q8_K: quant_q8_k(x, b); break;
    default: break;
    }
}

static void test_round_trip(void)
{
    enum { ROWS = 24, COLS = 1024 };
    float *x = malloc(ROWS * COLS * sizeof *x), *y = malloc(ROWS * COLS * sizeof *y);
    for (int c = 0; c < N_CASES; c++) {
        const tcase *t = &cases[c];
        size_t row_bytes = btrm_quant_row_bytes(t->type, COLS);
        uint8_t *raw = malloc(ROWS * row_bytes);
        /* rows of several shapes: uniform, normal-ish with outliers, all
         * positive, one constant, one zero */
        for (int r = 0; r < ROWS; r++)
            for (int i = 0; i < COLS; i++) {
                float v = frand();
                if (r % 4 == 1)
                    v = (frand() + frand() + frand()) * (i % 97 == 0 ? 8.0f : 1.0f);
                if (r % 4 == 2)
                    v = 0.5f + 0.25f * v;
                if (r == 3)
                    v = 0.375f;
                if (r == 7)
                    v = 0.0f;
                x[r * COLS + i] = v * (float)(1 + r % 5) * 0.1f;
            }
        for (int r = 0; r < ROWS; r++)
            for (int b = 0; b < COLS / t->block; b++)
                quantize(t->type, x + r * COLS + b * t->block,
                         raw + r * row_bytes + (size_t)b * (size_t)t->bytes);
        for (int r = 0; r < ROWS; r++)
            btrm_quant_dequant_f32(t->type, raw + r * row_bytes, COLS, y + r * COLS);
        double worst = 0, bound = bound_of(t->type);
        for (int b = 0; b < ROWS * COLS / t->block; b++) {
            const float *xb = x + b * t->block, *yb = y + b * t->block;
            double am = amax_of(xb, t->block), e = 0;
            for (int i = 0; i < t->block; i++)
                e = fmax(e, fabs((double)yb[i] - xb[i]));
            worst = fmax(worst, am > 0 ? e / am : e);
        }
        ok(worst <= bound, "%s: %d random rows of %d round-trip within %.4f of each block's "
           "max|x| (worst %.4f)", t->name, ROWS, COLS, bound, worst);
        free(raw);
    }
    free(x);
    free(y);
}

static void test_halves(void)
{
    /* every finite half survives float32 and back; float32 values round to
     * nearest even; bf16 likewise */
    int all = 1;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t x = (uint16_t)h;
        float f = btrm_half_to_float(x);
        if ((x & 0x7c00) == 0x7c00)
            continue;
        all &= btrm_float_to_half(f) == x;
    }
    ok(all, "every finite half -> float32 -> half is the identity");
    ok(btrm_float_to_half(1.0f + 0x1p-11f) == 0x3c00 && btrm_float_to_half(1.0f + 0x1.8p-11f) == 0x3c01 &&
       btrm_float_to_half(1.0f + 3 * 0x1p-11f) == 0x3c02 && btrm_float_to_half(70000.0f) == 0x7c00 &&
       btrm_float_to_half(-0x1p-25f) == 0x8000 && (btrm_float_to_half(NAN) & 0x7e00) == 0x7e00,
       "float32 -> half: ties to even, overflow to Inf, underflow to -0, NaN stays NaN");
    ok(btrm_float_to_bf16(1.0f + 0x1p-8f) == 0x3f80 && btrm_float_to_bf16(1.0f + 0x1.8p-8f) == 0x3f81 &&
       btrm_float_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82 &&
       btrm_float_to_bf16(-2.0f) == 0xc000 && (btrm_float_to_bf16(NAN) & 0x7fc0) == 0x7fc0,
       "float32 -> bfloat16: ties to even, NaN stays NaN");
    char buf[32];
    ok(!strcmp(btrm_quant_name(BTRM_Q_Q4_K, buf, sizeof buf), "Q4_K") &&
       !strcmp(btrm_quant_name(17, buf, sizeof buf), "IQ2_XS") &&
       !strcmp(btrm_quant_name(99, buf, sizeof buf), "type 99") &&
       !btrm_quant_supported(17) && btrm_quant_supported(BTRM_Q_Q6_K),
       "type names (known, unread, unknown) and support");
}

int main(void)
{
    plan(4 * N_CASES + N_CASES + 4);
    test_hand_made();
    test_round_trip();
    test_halves();
    return done_testing();
}
