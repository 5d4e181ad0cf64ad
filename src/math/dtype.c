/* dtype.c: conversions between f32, f16 and bf16 (see dtype.h). */
#include "dtype.h"

#include <string.h>

size_t btrm_dtype_size(int dtype) { return dtype == BTRM_DTYPE_F32 ? 4 : 2; }

const char *btrm_dtype_name(int dtype)
{
    switch (dtype) {
    case BTRM_DTYPE_F32: return "f32";
    case BTRM_DTYPE_F16: return "f16";
    case BTRM_DTYPE_BF16: return "bf16";
    default: return "unknown";
    }
}

int btrm_dtype_parse(const char *name)
{
    static const struct { const char *name; int dtype; } names[] = {
        { "f32", BTRM_DTYPE_F32 },   { "float32", BTRM_DTYPE_F32 },
        { "f16", BTRM_DTYPE_F16 },   { "float16", BTRM_DTYPE_F16 },
        { "bf16", BTRM_DTYPE_BF16 }, { "bfloat16", BTRM_DTYPE_BF16 },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name))
            return names[i].dtype;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* IEEE 754 binary16 <-> binary32 */

float btrm_half_to_float(uint16_t h)
{
    /* Exact and branch-free (after Maratos' FP16 library, as ggml does):
     * normals, inf and NaN (payload kept) by rescaling the shifted bits,
     * subnormals through a magic bias. */
    uint32_t w = (uint32_t)h << 16;
    uint32_t sign = w & 0x80000000u;
    uint32_t two_w = w + w;
    uint32_t bits = (two_w >> 4) + (0xe0u << 23);
    float normalized, denormalized;
    memcpy(&normalized, &bits, 4);
    normalized *= 0x1.0p-112f;
    bits = (two_w >> 17) | (126u << 23);
    memcpy(&denormalized, &bits, 4);
    denormalized -= 0.5f;
    uint32_t nb, db;
    memcpy(&nb, &normalized, 4);
    memcpy(&db, &denormalized, 4);
    uint32_t out = sign | (two_w < (1u << 27) ? db : nb);
    float f;
    memcpy(&f, &out, 4);
    return f;
}

uint16_t btrm_float_to_half(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs >= 0x7f800000u) { /* inf, or NaN (kept quiet, top payload bits kept) */
        if (abs == 0x7f800000u)
            return sign | 0x7c00u;
        return (uint16_t)(sign | 0x7e00u | ((abs & 0x7fffffu) >> 13));
    }
    if (abs >= 0x477ff000u) /* >= 65520 = 65504 + half an ulp: ties to even go up */
        return sign | 0x7c00u;
    if (abs >= 0x38800000u) { /* >= 2^-14: normal half */
        uint32_t h = ((abs >> 23) - 112) << 10 | ((abs >> 13) & 0x3ffu);
        uint32_t rest = abs & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
            h++; /* a carry into the exponent is the right result */
        return (uint16_t)(sign | h);
    }
    if (abs <= 0x33000000u) /* <= 2^-25: rounds to zero (2^-25 itself ties to even 0) */
        return sign;
    /* subnormal half: round(value / 2^-24), value = m * 2^(e - 150) */
    uint32_t e = abs >> 23;
    uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t h = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (h & 1u)))
        h++; /* may become 0x400, the smallest normal: also right */
    return (uint16_t)(sign | h);
}

/* ------------------------------------------------------------------------ */
/* Arrays: blocks of 16 elements in GCC/Clang vector types (one AVX-512
 * register; two AVX2 or four SSE2 registers in the other clones), the same
 * integer arithmetic as the scalar forms, then a scalar tail. */

#if defined(__GNUC__)
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef uint16_t v16h __attribute__((vector_size(32)));

BTRM_TARGET_CLONES
static void bf16_from_f32(uint16_t *restrict dst, const float *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        btrm_bf16_block16(dst + i, src + i);
    for (; i < n; i++)
        dst[i] = btrm_float_to_bf16(src[i]);
}

BTRM_TARGET_CLONES
static void f32_from_bf16(float *restrict dst, const uint16_t *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16h h;
        memcpy(&h, src + i, sizeof h);
        v16u x = __builtin_convertvector(h, v16u) << 16;
        memcpy(dst + i, &x, sizeof x);
    }
    for (; i < n; i++)
        dst[i] = btrm_bf16_to_float(src[i]);
}
#else
static void bf16_from_f32(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = btrm_float_to_bf16(src[i]);
}

static void f32_from_bf16(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = btrm_bf16_to_float(src[i]);
}
#endif

void btrm_dtype_to_f32(float *dst, const void *src, int dtype, size_t n)
{
    switch (dtype) {
    case BTRM_DTYPE_BF16: f32_from_bf16(dst, src, n); break;
    case BTRM_DTYPE_F16: {
        const uint16_t *h = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = btrm_half_to_float(h[i]);
        break;
    }
    default: memmove(dst, src, n * sizeof *dst); break;
    }
}

void btrm_dtype_from_f32(void *dst, int dtype, const float *src, size_t n)
{
    switch (dtype) {
    case BTRM_DTYPE_BF16: bf16_from_f32(dst, src, n); break;
    case BTRM_DTYPE_F16: {
        uint16_t *h = dst;
        for (size_t i = 0; i < n; i++)
            h[i] = btrm_float_to_half(src[i]);
        break;
    }
    default: memmove(dst, src, n * sizeof *src); break;
    }
}

void btrm_dtype_convert(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n)
{
    if (dst_dtype == src_dtype) {
        memmove(dst, src, n * btrm_dtype_size(src_dtype));
    } else if (dst_dtype == BTRM_DTYPE_F32) {
        btrm_dtype_to_f32(dst, src, src_dtype, n);
    } else if (src_dtype == BTRM_DTYPE_F32) {
        btrm_dtype_from_f32(dst, dst_dtype, src, n);
    } else { /* 16 bits to 16 bits through a block of floats */
        enum { BLOCK = 256 };
        float tmp[BLOCK];
        const unsigned char *s = src;
        unsigned char *d = dst;
        for (size_t i = 0; i < n; i += BLOCK) {
            size_t len = n - i < BLOCK ? n - i : BLOCK;
            btrm_dtype_to_f32(tmp, s + 2 * i, src_dtype, len);
            btrm_dtype_from_f32(d + 2 * i, dst_dtype, tmp, len);
        }
    }
}
