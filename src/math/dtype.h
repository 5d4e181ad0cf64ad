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
    /* adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; a
     * carry into the exponent is the right result (up to inf). A NaN keeps its
     * top payload bits and becomes quiet. Branch-free (a select), so that
     * loops calling it vectorize. */
    uint32_t rounded = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16;
    uint32_t quiet = (v.u >> 16) | 0x40u;
    return (uint16_t)((v.u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}
/* 16 floats rounded to bf16 as btrm_float_to_bf16 rounds each, on GCC/Clang
 * vector types: one AVX-512 register in a function compiled for AVX-512 (a
 * clone, see BTRM_TARGET_CLONES), two AVX2 or four SSE2 registers elsewhere.
 * Inlined into the vectorised loops that produce bf16 (dtype.c, optim.c). */
#if defined(__GNUC__)
typedef uint32_t btrm_v16u __attribute__((vector_size(64)));
typedef uint16_t btrm_v16h __attribute__((vector_size(32)));
static inline __attribute__((always_inline)) void btrm_bf16_block16(uint16_t *dst,
                                                                    const float *src)
{
    btrm_v16u x;
    __builtin_memcpy(&x, src, sizeof x);
    btrm_v16u rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    btrm_v16u quiet = (x >> 16) | 0x40u;
    btrm_v16u nan = (btrm_v16u)((x & 0x7fffffffu) > 0x7f800000u); /* all ones where NaN */
    btrm_v16h out = __builtin_convertvector((nan & quiet) | (~nan & rounded), btrm_v16h);
    __builtin_memcpy(dst, &out, sizeof out);
}
#else
static inline void btrm_bf16_block16(uint16_t *dst, const float *src)
{
    for (int j = 0; j < 16; j++)
        dst[j] = btrm_float_to_bf16(src[j]);
}
#endif

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
