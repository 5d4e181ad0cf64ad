/* gemm.h: the one matrix-product interface of btrm. Math layer.
 *
 * Every matrix product of the project goes through btrm_gemm, so that the
 * backend (CBLAS today) and the input precision are chosen in one place.
 * Row-major, as the rest of btrm stores matrices:
 *   C[m, n] = alpha * op(A)[m, k] · op(B)[k, n] + beta * C
 * where op(A) = A stored [m, k] (lda >= k), or A^T with A stored [k, m]
 * (lda >= m) when trans_a; likewise op(B) from B [k, n] or B^T from [n, k]. */
#ifndef BTRM_GEMM_H
#define BTRM_GEMM_H

/* GEMM input precisions: fp32, or bf16 inputs (round to nearest even) with
 * fp32 accumulation and output. */
enum btrm_precision { BTRM_PREC_FP32 = 0, BTRM_PREC_BF16 = 1 };

/* 0, or a negative BTRM_E* code with the message recorded (a precision the
 * backends compiled in cannot run). */
int btrm_gemm(int precision, int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c,
              int ldc);

/* The backend's name ("cblas"), for logs and provenance. */
const char *btrm_gemm_backend(void);

#endif
