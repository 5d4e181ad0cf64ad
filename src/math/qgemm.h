/* qgemm.h: the integer path of the quantised matrix products (embed.kernel
 * int8). Math layer: no files, no MPI.
 *
 *   y[N, R] = x[N, K] . W[R, K]^T   (+ y when beta = 1)
 *
 * with W stored in its file encoding (Q8_0 or a K-quant, quant.h) and x
 * float32. The activations are quantised per block to 8 bits (btrm_qact:
 * blocks of 32 for Q8_0 weights, of 256 for K-quants; a = da * qa with
 * da = max|x| / 127 over the block, qa = round(x / da) in [-127, 127]; for
 * Q8_0 da is then stored in fp16, as ggml's block_q8_0 stores it), the
 * weights are unpacked one tile of rows at a time into unsigned or signed
 * bytes with integer group scales, and every product is an exact integer
 * dot product. Per weight super-block b (the type's 256 values; 32 for
 * Q8_0), for an output (token t, row r):
 *
 *   W's value i = D s_g v_i - M m_g      (group g of 16 or 32 values)
 *   isum = sum_g s_g sum_{i in g} v_i qa_i,  msum = sum_g m_g sum_{i in g} qa_i
 *   T_b  = (D da) (isum - msum)                 when M is D (Q3_K, Q6_K, Q8_0)
 *        = (D da) isum - (M da) msum            otherwise (Q2_K, Q4_K, Q5_K)
 *   y[t, r] = T_0 + T_1 + ...                   in block order, float32
 *
 * isum and msum are exact int32 sums, so the order in which SIMD lanes add
 * them does not matter; the float operations are the same ones in the same
 * order on every instruction set (ISO C: no fused multiply-add). The
 * AVX512-VNNI and AVX2 kernels therefore give bitwise the results of the
 * portable C kernel; which one runs is decided at run time from the CPU
 * (btrm_qgemm_isa_best), or forced for tests (btrm_qgemm_set_isa).
 *
 * Single-threaded: ranks are the parallelism (embed runs one rank per core).
 * The error of the int8 path against the float32 product of the same
 * weights is the activations' 8-bit rounding (docs/backbones.md). */
#ifndef BTRM_QGEMM_H
#define BTRM_QGEMM_H

#include <stddef.h>
#include <stdint.h>

/* embed.kernel */
enum btrm_kernel { BTRM_KERNEL_AUTO = 0, BTRM_KERNEL_DEQUANT = 1, BTRM_KERNEL_INT8 = 2 };

/* Instruction sets of the integer kernels. */
enum btrm_isa { BTRM_ISA_C = 0, BTRM_ISA_AVX2 = 1, BTRM_ISA_AVX512VNNI = 2 };

#define BTRM_QG_TOKENS 16 /* tokens per activation tile */
#define BTRM_QG_ROWS 8    /* weight rows per kernel call */

/* Whether the integer path handles weights of this type (Q8_0, Q2_K..Q6_K). */
int btrm_qgemm_has_int8(int wtype);

/* The best instruction set of this CPU (and build), the one in use, and its
 * name ("c", "avx2", "avx512vnni"). set_isa: 0, or BTRM_EUSAGE when this CPU
 * or build cannot run it. */
int btrm_qgemm_isa_best(void);
int btrm_qgemm_isa(void);
int btrm_qgemm_set_isa(int isa);
const char *btrm_qgemm_isa_name(int isa);

/* Quantised activations for weights of type wtype, up to max_rows rows of
 * cols values (cols a multiple of the weight type's block). Layout, in tiles
 * of BTRM_QG_TOKENS rows (the last tile padded with zeros):
 *   q     int8  [tiles][cols/4][16][4]   four consecutive values per token
 *   d     float [tiles][cols/sb][16]      da per activation block (sb = 32 or 256)
 *   bsum  int32 [tiles][cols/group][16]   sums of qa per weight group */
typedef struct btrm_qact {
    int wtype, cols, max_rows;
    int rows;           /* quantised so far by btrm_qact_quantize */
    int sb, group;      /* values per super-block and per group */
    int8_t *q;
    float *d;
    int32_t *bsum;
} btrm_qact;

int btrm_qact_init(btrm_qact *a, int wtype, int max_rows, int cols);
void btrm_qact_free(btrm_qact *a); /* zeroed or NULL: no-op */
/* a = the 8-bit quantisation of x[rows, cols] (row stride ldx). */
void btrm_qact_quantize(btrm_qact *a, const float *x, int rows, int ldx);

/* Work space of btrm_qgemm: one unpacked tile of weight rows. */
typedef struct btrm_qgemm_ws {
    int cols;
    uint8_t *v;          /* [ROWS][cols] */
    int32_t *s, *m;      /* [ROWS][cols / 16] group scales and mins */
    float *D, *M;        /* [ROWS][cols / 32] */
} btrm_qgemm_ws;

int btrm_qgemm_ws_init(btrm_qgemm_ws *ws, int max_cols);
void btrm_qgemm_ws_free(btrm_qgemm_ws *ws);

/* y[t * ldy + r] (=, or += when beta is 1) sum over the act's cols of
 * x[t] . W[r] for t < a->rows, r < w_rows; W rows of type a->wtype, row r at
 * w + r * row_bytes. beta must be 0 or 1. */
void btrm_qgemm(btrm_qgemm_ws *ws, const btrm_qact *a, const void *w, size_t row_bytes,
                int w_rows, float *y, int ldy, float beta);

#endif
