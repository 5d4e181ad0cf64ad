/* gemm.c: btrm_gemm over CBLAS (fp32). */
#include "gemm.h"

#include "error.h"

#include <cblas.h>

int btrm_gemm(int precision, int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c,
              int ldc)
{
    if (precision != BTRM_PREC_FP32 && precision != BTRM_PREC_BF16)
        return btrm_error_set(BTRM_EUSAGE, "unknown GEMM precision %d", precision);
    if (precision == BTRM_PREC_BF16)
        return btrm_error_set(BTRM_EUSAGE, "GEMM precision bf16 needs oneDNN, which this "
                              "btrm was built without (configure --with-dnnl)");
    if (m <= 0 || n <= 0)
        return 0;
    /* C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C */
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
    return 0;
}

const char *btrm_gemm_backend(void) { return "cblas"; }
