/* dtype.h: the element types btrm stores and computes with, and the
 * conversions between them. Math layer.
 *
 *   f32   IEEE binary32: parameters, activations, every accumulation
 *   f16   IEEE binary16: feature stores (1 sign, 5 exponent, 10 fraction bits)
 *   bf16  bfloat16: the upper half of a binary32 (1 sign, 8 exponent, 7
 *         fraction bits): GEMM inputs in precision bf16, feature stores
 *
 * Every narrowing conversion rounds to nearest, ties to even; subnormals are
 * kept (not flushed to zero); a NaN stays a NaN (quiet); overflow gives inf.
 * Widening is exact. The array forms give the same bits as the scalar forms
 * element by element; they are compiled for several instruction sets and
 * pick one at run time (GCC target_clones). */
#ifndef BTRM_DTYPE_H
#define BTRM_DTYPE_H

#include <stddef.h>
#include <stdint.h>

/* Compile a function for baseline x86-64, AVX2 and AVX-512 and pick one at
 * load time by the CPU's features (the build itself targets baseline
 * x86-64). Without -ffp-contract (C11 mode) no clone fuses a multiply and an
 * add, so every clone gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define BTRM_TARGET_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define BTRM_TARGET_CLONES
#endif

enum btrm_dtype { BTRM_DTYPE_F32 = 0, BTRM_DTYPE_F16 = 1, BTRM_DTYPE_BF16 = 2 };

/* Bytes per element: 4, 2, 2. */
size_t btrm_dtype_size(int dtype);
/* "f32", "f16", "bf16" */
const char *btrm_dtype_name(int dtype);
/* The dtype named by name ("f32", "f16", "bf16"; also "float32", "float16",
 * "bfloat16"), or -1. */
int btrm_dtype_parse(const char *name);

/* IEEE half <-> float. */
float btrm_half_to_float(uint16_t h);
uint16_t btrm_float_to_half(float f);

/* bfloat16 <-> float. */
static inline float btrm_bf16_to_float(uint16_t b)
{
    union { uint32_t u; float f; } v = { .u = (uint32_t)b << 16 };
    return v.f;
}
static inline uint16_t btrm_float_to_bf16(float f)
{
    union { float f; uint32_t u; } v = { .f = f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep the top payload bits, quiet */
        return (uint16_t)((v.u >> 16) | 0x40u);
    /* adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; a
     * carry into the exponent is the right result (up to inf) */
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
/* f rounded to bf16 and back: what a bf16 GEMM multiplies. */
static inline float btrm_bf16_round(float f) { return btrm_bf16_to_float(btrm_float_to_bf16(f)); }

/* dst[n] (f32) = src[n] of type dtype, widened exactly. */
void btrm_dtype_to_f32(float *dst, const void *src, int dtype, size_t n);
/* dst[n] of type dtype = src[n] (f32), rounded as above. */
void btrm_dtype_from_f32(void *dst, int dtype, const float *src, size_t n);
/* dst[n] of type dst_dtype = src[n] of type src_dtype: a copy for equal
 * types, else widened to f32 (exact) and rounded to dst_dtype. */
void btrm_dtype_convert(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n);

#endif
