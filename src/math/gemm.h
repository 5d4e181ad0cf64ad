/* gemm.h: the one matrix-product interface of btrm. Math layer.
 *
 * Every matrix product of the project goes through btrm_gemm, so that the
 * backend and the input precision are chosen in one place.
 * Row-major, as the rest of btrm stores matrices:
 *   C[m, n] = alpha * op(A)[m, k] · op(B)[k, n] + beta * C
 * where op(A) = A stored [m, k] (lda >= k), or A^T with A stored [k, m]
 * (lda >= m) when trans_a; likewise op(B) from B [k, n] or B^T from [n, k].
 *
 * Backends (docs/performance.md):
 *   fp32  oneDNN's dnnl_sgemm when btrm is built with oneDNN, else CBLAS
 *         (cblas_sgemm of the BLAS configure found); BTRM_GEMM_BACKEND=cblas
 *         in the environment, or btrm_gemm_set_backend, picks CBLAS anyway.
 *   bf16  A and B rounded to bfloat16 (round to nearest even, as
 *         btrm_float_to_bf16), products accumulated and C written in fp32:
 *         oneDNN matmul primitives on plain layouts, created once per shape
 *         and kept in a small cache; where oneDNN has no bf16 matmul for
 *         the CPU, the rounded inputs widened back to fp32 and multiplied by
 *         the fp32 backend ("dnnl_sgemm of bf16 inputs" in the statistics).
 *         Without oneDNN, bf16 is refused.
 * fp32 operands of a bf16 product are rounded into work buffers that grow to
 * the largest operand seen and are kept (btrm_gemm_release frees them).
 *
 * Not thread-safe: one thread of a process calls btrm_gemm (the backends use
 * their own threads inside, btrm_gemm_set_threads of them). */
#ifndef BTRM_GEMM_H
#define BTRM_GEMM_H

#include <stdint.h>

/* GEMM input precisions: fp32, or bf16 inputs (round to nearest even) with
 * fp32 accumulation and output. */
enum btrm_precision { BTRM_PREC_FP32 = 0, BTRM_PREC_BF16 = 1, BTRM_PREC_FP64 = 2 };

/* 0, or a negative BTRM_E* code with the message recorded (a precision the
 * backends compiled in cannot run, a backend failure). */
int btrm_gemm(int precision, int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c,
              int ldc);

/* An operand of btrm_gemm_ex: data of type dtype (BTRM_DTYPE_F32, or
 * BTRM_DTYPE_BF16 for an operand already rounded, e.g. bf16 features or a
 * layer input rounded once and used by two products), stored row-major with
 * leading dimension ld, used transposed when trans. */
typedef struct btrm_gemm_operand {
    const void *data;
    int dtype;
    int trans;
    int ld;
} btrm_gemm_operand;

/* btrm_gemm with typed operands. A bf16 operand needs precision bf16. */
int btrm_gemm_ex(int precision, int m, int n, int k, float alpha, const btrm_gemm_operand *a,
                 const btrm_gemm_operand *b, float beta, float *c, int ldc);

/* The same product in double precision (CBLAS dgemm; the exact solvers of
 * newton and analyze). Recorded in the statistics as precision
 * BTRM_PREC_FP64. 0. */
int btrm_gemm_f64(int trans_a, int trans_b, int m, int n, int k, double alpha, const double *a,
                  int lda, const double *b, int ldb, double beta, double *c, int ldc);

/* A product with a single output column (n = 1) or row (m = 1) in fp32 or
 * fp64 runs as BLAS's gemv, whatever the backend ("cblas_sgemv" in the
 * statistics). */
/* 0 when this build can run GEMMs in precision; otherwise BTRM_EUSAGE with a
 * message that names the missing library. */
int btrm_gemm_supports(int precision);
/* How bf16 products run in this process: "oneDNN bf16 matmul" (oneDNN 2.6:
 * CPUs with AVX-512 and up), or fp32 sgemm of the bf16-rounded inputs where
 * oneDNN has no bf16 matmul for the CPU (AVX2): the same rounding and fp32
 * accumulation, without the speed. */
const char *btrm_gemm_bf16_route(void);
/* "fp32", "bf16" */
const char *btrm_precision_name(int precision);

/* fp32 backends. */
enum btrm_gemm_backend_id { BTRM_GEMM_CBLAS = 0, BTRM_GEMM_ONEDNN = 1 };
/* Whether the backend is compiled in. */
int btrm_gemm_has_backend(int backend);
/* Selects the fp32 backend (0, or BTRM_EUSAGE when not compiled in). */
int btrm_gemm_set_backend(int backend);
/* The fp32 backend in use: "onednn" or "cblas". */
const char *btrm_gemm_backend(void);
/* The libraries behind the backends, e.g. "oneDNN 2.6.3 (OpenMP), CBLAS". */
const char *btrm_gemm_library(void);
/* The instruction set oneDNN dispatches to ("avx512_core_bf16"), or "" without
 * oneDNN. */
const char *btrm_gemm_isa(void);

/* Threads for BLAS and oneDNN (OpenMP) in this process: run.threads. */
void btrm_gemm_set_threads(int threads);

/* Statistics per distinct product (precision, transposes, m, n, k): the
 * implementation that ran it ("brg:avx512_core_bf16" for a oneDNN matmul,
 * "dnnl_sgemm", "cblas_sgemm"), the calls and their wall time. The first
 * BTRM_GEMM_MAX_SHAPES shapes are kept; later ones are counted only in the
 * totals of btrm_gemm_stats_other. */
#define BTRM_GEMM_MAX_SHAPES 48
typedef struct btrm_gemm_stat {
    int precision, trans_a, trans_b, m, n, k;
    char impl[64];
    int64_t calls;
    double seconds;
} btrm_gemm_stat;
/* Copies up to max statistics (in first-call order); returns how many. */
int btrm_gemm_stats(btrm_gemm_stat *out, int max);
/* Calls, seconds and FLOPs of the shapes beyond BTRM_GEMM_MAX_SHAPES. */
void btrm_gemm_stats_other(int64_t *calls, double *seconds, double *flops);
void btrm_gemm_stats_reset(void);

/* Frees the cached primitives and work buffers (they are remade on use). */
void btrm_gemm_release(void);

#endif
