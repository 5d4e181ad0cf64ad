/* test-gemm.c: btrm_gemm (src/math/gemm.c) against a double-precision
 * reference, for every transpose combination, leading dimensions larger than
 * the rows, alpha and beta; and the refusal of a precision the build lacks. */
#include "error.h"
#include "gemm.h"
#include "rng.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>

/* max |C - ref| / max |ref| over the m x n block */
static double check(int precision, int ta, int tb, int m, int n, int k, float alpha, float beta)
{
    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
    int ra = ta ? k : m, rb = tb ? n : k;
    float *a = malloc(sizeof *a * (size_t)ra * lda), *b = malloc(sizeof *b * (size_t)rb * ldb);
    float *c = malloc(sizeof *c * (size_t)m * ldc);
    double *ref = malloc(sizeof *ref * (size_t)m * n);
    btrm_rng rng;
    btrm_rng_seed(&rng, 7, (uint64_t)(m * 1000 + n * 10 + k));
    for (int i = 0; i < ra * lda; i++)
        a[i] = (float)(btrm_rng_uniform(&rng) * 2 - 1);
    for (int i = 0; i < rb * ldb; i++)
        b[i] = (float)(btrm_rng_uniform(&rng) * 2 - 1);
    for (int i = 0; i < m * ldc; i++)
        c[i] = (float)(btrm_rng_uniform(&rng) * 2 - 1);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += av * bv;
            }
            ref[i * n + j] = alpha * s + beta * (double)c[i * ldc + j];
        }
    int rc = btrm_gemm(precision, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    double err = rc ? INFINITY : 0, scale = 0;
    for (int i = 0; i < m && !rc; i++)
        for (int j = 0; j < n; j++) {
            double e = fabs(c[i * ldc + j] - ref[i * n + j]);
            err = e > err ? e : err;
            scale = fabs(ref[i * n + j]) > scale ? fabs(ref[i * n + j]) : scale;
        }
    free(a), free(b), free(c), free(ref);
    return scale > 0 ? err / scale : err;
}

int main(void)
{
    plan(9);
    static const int shapes[][3] = { { 17, 33, 65 }, { 64, 128, 256 } };
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            double worst = 0;
            for (int s = 0; s < 2; s++) {
                double e = check(BTRM_PREC_FP32, ta, tb, shapes[s][0], shapes[s][1],
                                 shapes[s][2], 0.75f, s ? 0.5f : 0.0f);
                worst = e > worst ? e : worst;
            }
            ok(worst < 1e-5, "fp32 %s: relative error %.2e < 1e-5 against double (backend %s)",
               ta ? (tb ? "A^T B^T" : "A^T B") : (tb ? "A B^T" : "A B"), worst,
               btrm_gemm_backend());
        }
    ok(check(BTRM_PREC_FP32, 0, 0, 1, 1, 1000, 1.0f, 1.0f) < 1e-5, "a 1 x 1 x 1000 product");
    float one = 1, c = 5;
    ok(btrm_gemm(BTRM_PREC_FP32, 0, 0, 0, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &c, 1) == 0 &&
           c == 5, "m = 0 leaves C alone");
    ok(btrm_gemm(BTRM_PREC_FP32, 0, 0, 1, 1, 0, 1.0f, &one, 1, &one, 1, 2.0f, &c, 1) == 0 &&
           c == 10, "k = 0 scales C by beta");
    int rc = btrm_gemm(BTRM_PREC_BF16 + 7, 0, 0, 1, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &c, 1);
    ok(rc == BTRM_EUSAGE, "an unknown precision is refused (%d: %s)", rc, btrm_error_msg());
    rc = check(BTRM_PREC_BF16, 0, 0, 8, 8, 8, 1.0f, 0.0f) < 1e-2;
    ok(rc || btrm_error_code() == BTRM_EUSAGE,
       "bf16 runs (within bf16 rounding) or is refused by name: %s", btrm_error_msg());
    return done_testing();
}
