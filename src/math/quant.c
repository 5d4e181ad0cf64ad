/* quant.c: ggml's block encodings (see quant.h for the table). Every
 * dequantisation below evaluates ggml's expression in the same order with
 * float32 operations (the project compiles as ISO C, so the compiler does
 * not contract a * b + c into a fused multiply-add): the values are bitwise
 * those of dequantize_row_*. */
#include "quant.h"

#include "dtype.h"
#include "gemm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define QK4_0 32
#define QK8_0 32

typedef struct type_info {
    const char *name;
    int block, bytes; /* 0: a type btrm does not read */
} type_info;

/* ggml's numbering (ggml.h enum ggml_type); 4 and 5 (Q4_2, Q4_3) were
 * removed from ggml long ago, 31..33 are the repacked in-memory layouts. */
static const type_info types[] = {
    [0] = { "F32", 1, 4 },       [1] = { "F16", 1, 2 },       [2] = { "Q4_0", 32, 18 },
    [3] = { "Q4_1", 32, 20 },    [6] = { "Q5_0", 32, 22 },    [7] = { "Q5_1", 32, 24 },
    [8] = { "Q8_0", 32, 34 },    [9] = { "Q8_1", 0, 0 },      [10] = { "Q2_K", 256, 84 },
    [11] = { "Q3_K", 256, 110 }, [12] = { "Q4_K", 256, 144 }, [13] = { "Q5_K", 256, 176 },
    [14] = { "Q6_K", 256, 210 }, [15] = { "Q8_K", 256, 292 }, [16] = { "IQ2_XXS", 0, 0 },
    [17] = { "IQ2_XS", 0, 0 },   [18] = { "IQ3_XXS", 0, 0 },  [19] = { "IQ1_S", 0, 0 },
    [20] = { "IQ4_NL", 0, 0 },   [21] = { "IQ3_S", 0, 0 },    [22] = { "IQ2_S", 0, 0 },
    [23] = { "IQ4_XS", 0, 0 },   [24] = { "I8", 0, 0 },       [25] = { "I16", 0, 0 },
    [26] = { "I32", 0, 0 },      [27] = { "I64", 0, 0 },      [28] = { "F64", 0, 0 },
    [29] = { "IQ1_M", 0, 0 },    [30] = { "BF16", 1, 2 },     [34] = { "TQ1_0", 0, 0 },
    [35] = { "TQ2_0", 0, 0 },
};
#define N_TYPES ((int)(sizeof types / sizeof types[0]))

static const type_info *info(int type)
{
    return type >= 0 && type < N_TYPES && types[type].name ? &types[type] : NULL;
}

int btrm_quant_supported(int type)
{
    const type_info *t = info(type);
    return t && t->block > 0;
}

int btrm_quant_block(int type) { return btrm_quant_supported(type) ? types[type].block : 0; }
int btrm_quant_block_bytes(int type) { return btrm_quant_supported(type) ? types[type].bytes : 0; }

size_t btrm_quant_row_bytes(int type, int64_t n)
{
    if (!btrm_quant_supported(type) || n < 0 || n % types[type].block)
        return 0;
    return (size_t)(n / types[type].block) * (size_t)types[type].bytes;
}

const char *btrm_quant_name(int type, char *buf, size_t size)
{
    const type_info *t = info(type);
    if (t)
        snprintf(buf, size, "%s", t->name);
    else
        snprintf(buf, size, "type %d", type);
    return buf;
}

const char *btrm_quant_supported_names(void)
{
    return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K";
}

/* ------------------------------------------------------------------------ */
/* Half precision (dtype.h's conversions) */

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return btrm_half_to_float(h);
}

/* ------------------------------------------------------------------------ */
/* One block of each type -> y[block]. */

static void deq_q4_0(const uint8_t *b, float *y)
{
    /* d fp16 | qs[16] */
    float d = f16_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK4_0 / 2; j++) {
        int x0 = (qs[j] & 0x0F) - 8, x1 = (qs[j] >> 4) - 8;
        y[j] = (float)x0 * d;
        y[j + QK4_0 / 2] = (float)x1 * d;
    }
}

static void deq_q4_1(const uint8_t *b, float *y)
{
    /* d fp16 | m fp16 | qs[16] */
    float d = f16_at(b), m = f16_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < QK4_0 / 2; j++) {
        int x0 = qs[j] & 0x0F, x1 = qs[j] >> 4;
        y[j] = (float)x0 * d + m;
        y[j + QK4_0 / 2] = (float)x1 * d + m;
    }
}

/* The 5th bits of Q5_0/Q5_1: bit j of qh for element j (< 16) and bit j + 16
 * for element j + 16. */
static void deq_q5(const uint8_t *qh_bytes, const uint8_t *qs, float d, float m, int offset,
                   float *y)
{
    uint32_t qh;
    memcpy(&qh, qh_bytes, 4);
    for (int j = 0; j < 16; j++) {
        int xh0 = (int)(((qh >> j) << 4) & 0x10);
        int xh1 = (int)((qh >> (j + 12)) & 0x10);
        int x0 = ((qs[j] & 0x0F) | xh0) - offset;
        int x1 = ((qs[j] >> 4) | xh1) - offset;
        if (offset) { /* Q5_0: d * x */
            y[j] = (float)x0 * d;
            y[j + 16] = (float)x1 * d;
        } else { /* Q5_1: d * x + m */
            y[j] = (float)x0 * d + m;
            y[j + 16] = (float)x1 * d + m;
        }
    }
}

static void deq_q5_0(const uint8_t *b, float *y)
{
    /* d fp16 | qh[4] | qs[16] */
    deq_q5(b + 2, b + 6, f16_at(b), 0.0f, 16, y);
}

static void deq_q5_1(const uint8_t *b, float *y)
{
    /* d fp16 | m fp16 | qh[4] | qs[16] */
    deq_q5(b + 4, b + 8, f16_at(b), f16_at(b + 2), 0, y);
}

static void deq_q8_0(const uint8_t *b, float *y)
{
    /* d fp16 | qs int8[32] */
    float d = f16_at(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < QK8_0; j++)
        y[j] = (float)qs[j] * d;
}

static void deq_q2_k(const uint8_t *b, float *y)
{
    /* scales[16] | qs[64] | d fp16 | dmin fp16. Element 128 h + 32 k + 16 c +
     * l (h < 2 halves, k < 4 shifts, c < 2, l < 16) is bits 2k..2k+1 of
     * qs[32 h + 16 c + l], in group 8 h + 2 k + c. */
    const uint8_t *scales = b, *q = b + 16;
    float d = f16_at(b + 80), min = f16_at(b + 82);
    int is = 0;
    for (int n = 0; n < BTRM_QK; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int c = 0; c < 2; c++) {
                uint8_t sc = scales[is++];
                float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)((q[l + 16 * c] >> shift) & 3) - ml;
            }
        }
        q += 32;
    }
}

/* Q3_K's 16 6-bit scales from 12 bytes: scale j's low 4 bits are nibble
 * (j / 8) of scales[j % 8], its high 2 bits are bits 2 (j / 4)..+1 of
 * scales[8 + j % 4]. */
static void q3_k_scales(const uint8_t *packed, int8_t out[16])
{
    for (int j = 0; j < 16; j++) {
        int low = (packed[j % 8] >> (4 * (j / 8))) & 0xF;
        int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((low | (high << 4)) - 32);
    }
}

static void deq_q3_k(const uint8_t *b, float *y)
{
    /* hmask[32] | qs[64] | scales[12] | d fp16. Element 128 h + 32 k + 16 c +
     * l: low bits 2k..2k+1 of qs[32 h + 16 c + l], high bit (set: +0, clear:
     * -4) is bit 4 h + k of hmask[16 c + l]; group 8 h + 2 k + c. */
    const uint8_t *hm = b, *q = b + 32;
    int8_t scales[16];
    q3_k_scales(b + 96, scales);
    float d_all = f16_at(b + 108);
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < BTRM_QK; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int c = 0; c < 2; c++) {
                float dl = d_all * (float)scales[is++];
                for (int l = 0; l < 16; l++) {
                    int v = ((q[l + 16 * c] >> shift) & 3) - ((hm[l + 16 * c] & m) ? 0 : 4);
                    *y++ = dl * (float)v;
                }
            }
            m <<= 1;
        }
        q += 32;
    }
}

/* The 8 6-bit scales and mins of Q4_K/Q5_K from 12 bytes (ggml's
 * get_scale_min_k4): j < 4 in the low 6 bits of q[j] (scale) and q[j + 4]
 * (min); j >= 4 low 4 bits from q[j + 4]'s nibbles, high 2 bits from the top
 * of q[j - 4] (scale) and q[j] (min). */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K: d fp16 | dmin fp16 | scales[12] | qs[128]. Element 64 p + l (l < 32)
 * is the low nibble of qs[32 p + l] in group 2 p, element 64 p + 32 + l its
 * high nibble, in group 2 p + 1. Q5_K: d | dmin | scales[12] | qh[32] |
 * qs[128], the same plus 16 for element 64 p + l when bit 2 p of qh[l] is set
 * (bit 2 p + 1 for 64 p + 32 + l). */
static void deq_q45_k(const uint8_t *b, float *y, int five)
{
    float d = f16_at(b), min = f16_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + (five ? 48 : 16);
    uint8_t u1 = 1, u2 = 2;
    for (int p = 0; p < 4; p++) {
        uint8_t sc, m;
        scale_min_k4(2 * p, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = min * (float)m;
        scale_min_k4(2 * p + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = min * (float)m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((ql[l] & 0xF) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((ql[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
        ql += 32;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

static void deq_q4_k(const uint8_t *b, float *y) { deq_q45_k(b, y, 0); }
static void deq_q5_k(const uint8_t *b, float *y) { deq_q45_k(b, y, 1); }

static void deq_q6_k(const uint8_t *b, float *y)
{
    /* ql[128] | qh[64] | scales int8[16] | d fp16. Element 128 h + 32 k + l
     * (k < 4, l < 32): low 4 bits are the low (k < 2) or high (k >= 2) nibble
     * of ql[64 h + 32 (k % 2) + l], high 2 bits are bits 2k..2k+1 of
     * qh[32 h + l]; group 8 h + 2 k + l / 16. */
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = f16_at(b + 208);
    for (int n = 0; n < BTRM_QK; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is + 0] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

static void deq_q8_k(const uint8_t *b, float *y)
{
    /* d float32 | qs int8[256] | bsums int16[16] */
    float d;
    memcpy(&d, b, 4);
    const int8_t *qs = (const int8_t *)(b + 4);
    for (int j = 0; j < BTRM_QK; j++)
        y[j] = d * (float)qs[j];
}

typedef void (*deq_block_fn)(const uint8_t *b, float *y);

static deq_block_fn block_fn(int type)
{
    switch (type) {
    case BTRM_Q_Q4_0: return deq_q4_0;
    case BTRM_Q_Q4_1: return deq_q4_1;
    case BTRM_Q_Q5_0: return deq_q5_0;
    case BTRM_Q_Q5_1: return deq_q5_1;
    case BTRM_Q_Q8_0: return deq_q8_0;
    case BTRM_Q_Q2_K: return deq_q2_k;
    case BTRM_Q_Q3_K: return deq_q3_k;
    case BTRM_Q_Q4_K: return deq_q4_k;
    case BTRM_Q_Q5_K: return deq_q5_k;
    case BTRM_Q_Q6_K: return deq_q6_k;
    case BTRM_Q_Q8_K: return deq_q8_k;
    default: return NULL;
    }
}

void btrm_quant_dequant_f32(int type, const void *src, int64_t n, float *dst)
{
    const uint8_t *p = src;
    switch (type) {
    case BTRM_Q_F32:
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    case BTRM_Q_F16:
        btrm_dtype_to_f32(dst, src, BTRM_DTYPE_F16, (size_t)n);
        return;
    case BTRM_Q_BF16:
        btrm_dtype_to_f32(dst, src, BTRM_DTYPE_BF16, (size_t)n);
        return;
    default:
        break;
    }
    deq_block_fn fn = block_fn(type);
    if (!fn) {
        memset(dst, 0, (size_t)n * sizeof *dst); /* callers check the type first */
        return;
    }
    int block = types[type].block, bytes = types[type].bytes;
    for (int64_t b = 0; b < n / block; b++)
        fn(p + b * bytes, dst + b * block);
}

void btrm_quant_dequant(int type, const void *src, int64_t n, int prec, void *dst)
{
    if (prec != BTRM_PREC_BF16) {
        btrm_quant_dequant_f32(type, src, n, dst);
        return;
    }
    uint16_t *out = dst;
    if (type == BTRM_Q_BF16) {
        memcpy(out, src, (size_t)n * 2);
        return;
    }
    /* through a float32 block on the stack */
    float tmp[BTRM_QK];
    int block = btrm_quant_block(type);
    int64_t chunk = block > 1 ? block : BTRM_QK;
    size_t stride = btrm_quant_row_bytes(type, chunk);
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i += chunk) {
        int64_t m = n - i < chunk ? n - i : chunk;
        btrm_quant_dequant_f32(type, p + (size_t)(i / chunk) * stride, m, tmp);
        btrm_dtype_from_f32(out + i, BTRM_DTYPE_BF16, tmp, (size_t)m);
    }
}
