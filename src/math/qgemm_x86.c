/* qgemm_x86.c: the AVX2 and AVX512-VNNI kernels of the integer path. Each
 * function is compiled for its instruction set (target attribute) and only
 * called when the CPU has it (qgemm.c's run-time check), so the rest of
 * btrm stays portable.
 *
 * Both compute qgemm.h's equation with tokens in SIMD lanes: a vector holds
 * one value for each of 16 (AVX512) or 8 (AVX2) tokens, four consecutive
 * activation bytes per token and lane, and four weight bytes of one row are
 * broadcast to every lane. vpdpbusd (AVX512-VNNI) or vpmaddubsw + vpmaddwd
 * (AVX2) add the four products into the lane's int32: exact, as are the
 * group-scale products (vpmulld). The float part is the C kernel's
 * operations, lane by lane, in the same order, so the results are bitwise
 * the C kernel's. */
#include "qgemm_impl.h"

#ifdef BTRM_QG_X86

#include <immintrin.h>
#include <string.h>

#define R BTRM_QG_ROWS
#define T BTRM_QG_TOKENS
/* The per-row loops must unroll for the accumulators to live in registers. */
#define UNROLL _Pragma("GCC unroll 8")

static inline int32_t load4(const uint8_t *p)
{
    int32_t x;
    memcpy(&x, p, 4);
    return x;
}

/* ------------------------------------------------------------------------ */
/* AVX512-VNNI: 8 rows x 16 tokens; rows beyond w->rows compute garbage that
 * is never stored (the work space is zero-initialised memory). Q8_0 arrives
 * unsigned (q + 128, m = 128; qgemm.c's unpack). */

__attribute__((target("avx512f,avx512bw,avx512vnni")))
void btrm_qg_kernel_avx512vnni(const qg_tile *w, const btrm_qact *a, int tile,
                               float out[BTRM_QG_ROWS][BTRM_QG_TOKENS])
{
    const int cols = w->cols, group = w->group, n_sb = cols / w->sb, gps = w->sb / group;
    const int n_groups = cols / group;
    const uint8_t *v = w->v;
    __m512 acc[R];
    UNROLL
    for (int r = 0; r < R; r++)
        acc[r] = _mm512_setzero_ps();
    for (int b = 0; b < n_sb; b++) {
        __m512i isum[R];
        UNROLL
        for (int r = 0; r < R; r++)
            isum[r] = _mm512_setzero_si512();
        for (int g = b * gps; g < (b + 1) * gps; g++) {
            const int8_t *aq = qg_act_q(a, tile, g * group);
            __m512i gacc[R];
            UNROLL
            for (int r = 0; r < R; r++)
                gacc[r] = _mm512_setzero_si512();
            for (int k = 0; k < group; k += 4) {
                __m512i av = _mm512_loadu_si512((const void *)(aq + 16 * k));
                const uint8_t *vk = v + g * group + k;
                UNROLL
                for (int r = 0; r < R; r++)
                    gacc[r] = _mm512_dpbusd_epi32(gacc[r],
                                                  _mm512_set1_epi32(load4(vk + (size_t)r * cols)),
                                                  av);
            }
            UNROLL
            for (int r = 0; r < R; r++)
                isum[r] = _mm512_add_epi32(
                    isum[r], _mm512_mullo_epi32(gacc[r], _mm512_set1_epi32(w->s[r * n_groups + g])));
            if (w->min_is_d) {
                __m512i bs = _mm512_loadu_si512((const void *)qg_act_bsum(a, tile, g));
                UNROLL
                for (int r = 0; r < R; r++)
                    isum[r] = _mm512_sub_epi32(
                        isum[r], _mm512_mullo_epi32(bs, _mm512_set1_epi32(w->m[r * n_groups + g])));
            }
        }
        __m512 da = _mm512_loadu_ps(qg_act_d(a, tile, b));
        if (w->min_is_d) {
            UNROLL
            for (int r = 0; r < R; r++) {
                __m512 Dd = _mm512_mul_ps(_mm512_set1_ps(w->D[r * n_sb + b]), da);
                acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(Dd, _mm512_cvtepi32_ps(isum[r])));
            }
            continue;
        }
        /* T = (D da) isum - (M da) msum, msum one row at a time */
        __m512 t1[R];
        UNROLL
        for (int r = 0; r < R; r++)
            t1[r] = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(w->D[r * n_sb + b]), da),
                                  _mm512_cvtepi32_ps(isum[r]));
        UNROLL
        for (int r = 0; r < R; r++) {
            __m512i msum = _mm512_setzero_si512();
            for (int g = b * gps; g < (b + 1) * gps; g++)
                msum = _mm512_add_epi32(
                    msum, _mm512_mullo_epi32(_mm512_loadu_si512((const void *)qg_act_bsum(a, tile, g)),
                                             _mm512_set1_epi32(w->m[r * n_groups + g])));
            __m512 Md = _mm512_mul_ps(_mm512_set1_ps(w->M[r * n_sb + b]), da);
            __m512 t = _mm512_sub_ps(t1[r], _mm512_mul_ps(Md, _mm512_cvtepi32_ps(msum)));
            acc[r] = _mm512_add_ps(acc[r], t);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        _mm512_storeu_ps(out[r], acc[r]);
}

/* ------------------------------------------------------------------------ */
/* AVX2: 4 rows x 8 tokens per pass (16 registers), four passes per tile.
 * Unsigned weights (K-quants, at most 63) go straight into vpmaddubsw (no
 * 16-bit saturation: 63 * 127 * 2 < 32767); signed Q8_0 weights through
 * the sign trick |w| * (a sign(w)) (128 * 127 * 2 < 32767). */

#define R2 4
#define T2 8

__attribute__((target("avx2")))
static void avx2_pass(const qg_tile *w, const btrm_qact *a, int tile, int r0, int half,
                      float out[BTRM_QG_ROWS][BTRM_QG_TOKENS])
{
    const int cols = w->cols, group = w->group, n_sb = cols / w->sb, gps = w->sb / group;
    const int n_groups = cols / group;
    const uint8_t *v = w->v + (size_t)r0 * (size_t)cols;
    const int32_t *s = w->s + r0 * n_groups, *m = w->m + r0 * n_groups;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[R2];
    UNROLL
    for (int r = 0; r < R2; r++)
        acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < n_sb; b++) {
        __m256i isum[R2];
        UNROLL
        for (int r = 0; r < R2; r++)
            isum[r] = _mm256_setzero_si256();
        for (int g = b * gps; g < (b + 1) * gps; g++) {
            const int8_t *aq = qg_act_q(a, tile, g * group) + 4 * T2 * half;
            __m256i gacc[R2];
            UNROLL
            for (int r = 0; r < R2; r++)
                gacc[r] = _mm256_setzero_si256();
            for (int k = 0; k < group; k += 4) {
                __m256i av = _mm256_loadu_si256((const __m256i *)(aq + 16 * k));
                const uint8_t *vk = v + g * group + k;
                UNROLL
                for (int r = 0; r < R2; r++) {
                    __m256i wv = _mm256_set1_epi32(load4(vk + (size_t)r * cols));
                    __m256i p16 = w->v_signed
                                      ? _mm256_maddubs_epi16(_mm256_abs_epi8(wv),
                                                             _mm256_sign_epi8(av, wv))
                                      : _mm256_maddubs_epi16(wv, av);
                    gacc[r] = _mm256_add_epi32(gacc[r], _mm256_madd_epi16(p16, ones));
                }
            }
            UNROLL
            for (int r = 0; r < R2; r++)
                isum[r] = _mm256_add_epi32(
                    isum[r], _mm256_mullo_epi32(gacc[r], _mm256_set1_epi32(s[r * n_groups + g])));
            if (w->min_is_d) {
                __m256i bs = _mm256_loadu_si256(
                    (const __m256i *)(qg_act_bsum(a, tile, g) + T2 * half));
                UNROLL
                for (int r = 0; r < R2; r++)
                    isum[r] = _mm256_sub_epi32(
                        isum[r], _mm256_mullo_epi32(bs, _mm256_set1_epi32(m[r * n_groups + g])));
            }
        }
        __m256 da = _mm256_loadu_ps(qg_act_d(a, tile, b) + T2 * half);
        if (w->min_is_d) {
            UNROLL
            for (int r = 0; r < R2; r++) {
                __m256 Dd = _mm256_mul_ps(_mm256_set1_ps(w->D[(r0 + r) * n_sb + b]), da);
                acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(Dd, _mm256_cvtepi32_ps(isum[r])));
            }
            continue;
        }
        __m256 t1[R2];
        UNROLL
        for (int r = 0; r < R2; r++)
            t1[r] = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(w->D[(r0 + r) * n_sb + b]), da),
                                  _mm256_cvtepi32_ps(isum[r]));
        UNROLL
        for (int r = 0; r < R2; r++) {
            __m256i msum = _mm256_setzero_si256();
            for (int g = b * gps; g < (b + 1) * gps; g++)
                msum = _mm256_add_epi32(
                    msum, _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)(
                                                 qg_act_bsum(a, tile, g) + T2 * half)),
                                             _mm256_set1_epi32(m[r * n_groups + g])));
            __m256 Md = _mm256_mul_ps(_mm256_set1_ps(w->M[(r0 + r) * n_sb + b]), da);
            __m256 t = _mm256_sub_ps(t1[r], _mm256_mul_ps(Md, _mm256_cvtepi32_ps(msum)));
            acc[r] = _mm256_add_ps(acc[r], t);
        }
    }
    UNROLL
    for (int r = 0; r < R2; r++)
        _mm256_storeu_ps(out[r0 + r] + T2 * half, acc[r]);
}

void btrm_qg_kernel_avx2(const qg_tile *w, const btrm_qact *a, int tile,
                         float out[BTRM_QG_ROWS][BTRM_QG_TOKENS])
{
    for (int r0 = 0; r0 < w->rows; r0 += R2)
        for (int half = 0; half < T / T2; half++)
            avx2_pass(w, a, tile, r0, half, out);
}

#endif
