/* qgemm_impl.h: what qgemm.c shares with its instruction-set kernels
 * (qgemm_x86.c). Private to the math layer. */
#ifndef BTRM_QGEMM_IMPL_H
#define BTRM_QGEMM_IMPL_H

#include "qgemm.h"

/* One tile of unpacked weight rows (qgemm.h's equation): row r's value e is
 * v[r * cols + e] (unsigned, or int8 when v_signed), group G's scale and min
 * s[r * n_groups + G], m[...], super-block b's D[r * n_sb + b], M[...]. */
typedef struct qg_tile {
    int rows;     /* valid rows, <= BTRM_QG_ROWS */
    int cols;
    int sb;       /* values per super-block: 32 (Q8_0) or 256 */
    int group;    /* values per group: 16 or 32 */
    int min_is_d; /* M equals D: T = (D da) (isum - msum) */
    int v_signed;
    const uint8_t *v;
    const int32_t *s, *m;
    const float *D, *M;
} qg_tile;

/* out[r][t] = y of row r and token t of activation tile `tile`, for
 * r < w->rows (every t, padding tokens included). */
typedef void (*qg_kernel)(const qg_tile *w, const btrm_qact *a, int tile,
                          float out[BTRM_QG_ROWS][BTRM_QG_TOKENS]);

void btrm_qg_kernel_c(const qg_tile *w, const btrm_qact *a, int tile,
                      float out[BTRM_QG_ROWS][BTRM_QG_TOKENS]);
#if defined(__x86_64__) || defined(__i386__)
#define BTRM_QG_X86 1
void btrm_qg_kernel_avx2(const qg_tile *w, const btrm_qact *a, int tile,
                         float out[BTRM_QG_ROWS][BTRM_QG_TOKENS]);
void btrm_qg_kernel_avx512vnni(const qg_tile *w, const btrm_qact *a, int tile,
                               float out[BTRM_QG_ROWS][BTRM_QG_TOKENS]);
#endif

/* Offsets into the activation arrays of tile `tile`. */
static inline const int8_t *qg_act_q(const btrm_qact *a, int tile, int e)
{
    return a->q + ((size_t)tile * (size_t)(a->cols / 4) + (size_t)(e / 4)) * BTRM_QG_TOKENS * 4;
}
static inline const float *qg_act_d(const btrm_qact *a, int tile, int b)
{
    return a->d + ((size_t)tile * (size_t)(a->cols / a->sb) + (size_t)b) * BTRM_QG_TOKENS;
}
static inline const int32_t *qg_act_bsum(const btrm_qact *a, int tile, int g)
{
    return a->bsum + ((size_t)tile * (size_t)(a->cols / a->group) + (size_t)g) * BTRM_QG_TOKENS;
}

#endif
