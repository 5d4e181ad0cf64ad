/* test-gemm.c: btrm_gemm (src/math/gemm.c) against a double-precision
 * reference, for every backend compiled in, every transpose combination,
 * leading dimensions larger than the rows, alpha and beta. bf16 products are
 * checked against a double reference whose inputs are rounded to bf16 exactly
 * as btrm rounds them (btrm_float_to_bf16): what is left is fp32 accumulation
 * error. Also: bf16 operands passed as bf16, the primitive cache under more
 * shapes than it holds, the per-shape statistics, and the refusal of bf16 by
 * a build without oneDNN. */
#include "dtype.h"
#include "error.h"
#include "gemm.h"
#include "rng.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct problem {
    int ta, tb, m, n, k, lda, ldb, ldc;
    float alpha, beta;
    float *a, *b, *c0; /* inputs; C before the product */
} problem;

static void problem_make(problem *p, int ta, int tb, int m, int n, int k, float alpha,
                         float beta, uint64_t seed)
{
    *p = (problem){ .ta = ta, .tb = tb, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta };
    p->lda = (ta ? m : k) + 3;
    p->ldb = (tb ? k : n) + 2;
    p->ldc = n + 1;
    int ra = ta ? k : m, rb = tb ? n : k;
    p->a = malloc(sizeof *p->a * (size_t)ra * p->lda);
    p->b = malloc(sizeof *p->b * (size_t)rb * p->ldb);
    p->c0 = malloc(sizeof *p->c0 * (size_t)m * p->ldc);
    btrm_rng rng;
    btrm_rng_seed(&rng, 7, seed);
    for (int i = 0; i < ra * p->lda; i++)
        p->a[i] = (float)(btrm_rng_uniform(&rng) * 2 - 1);
    for (int i = 0; i < rb * p->ldb; i++)
        p->b[i] = (float)(btrm_rng_uniform(&rng) * 2 - 1);
    for (int i = 0; i < m * p->ldc; i++)
        p->c0[i] = (float)(btrm_rng_uniform(&rng) * 2 - 1);
}

static void problem_free(problem *p)
{
    free(p->a);
    free(p->b);
    free(p->c0);
}

/* ref[m, n] in double; inputs rounded to bf16 first when round_bf16 */
static double *reference(const problem *p, int round_bf16)
{
    double *ref = malloc(sizeof *ref * (size_t)p->m * p->n);
    for (int i = 0; i < p->m; i++)
        for (int j = 0; j < p->n; j++) {
            double s = 0;
            for (int q = 0; q < p->k; q++) {
                float av = p->ta ? p->a[q * p->lda + i] : p->a[i * p->lda + q];
                float bv = p->tb ? p->b[j * p->ldb + q] : p->b[q * p->ldb + j];
                if (round_bf16) {
                    av = btrm_bf16_round(av);
                    bv = btrm_bf16_round(bv);
                }
                s += (double)av * (double)bv;
            }
            ref[i * p->n + j] = p->alpha * s + p->beta * (double)p->c0[i * p->ldc + j];
        }
    return ref;
}

/* max |C - ref| / max |ref| over the m x n block; C must also leave the
 * padding columns of each row alone (else INFINITY). */
static double rel_error(const problem *p, const float *c, const double *ref)
{
    double err = 0, scale = 0;
    for (int i = 0; i < p->m; i++) {
        for (int j = 0; j < p->n; j++) {
            double e = fabs(c[i * p->ldc + j] - ref[i * p->n + j]);
            err = e > err ? e : err;
            scale = fabs(ref[i * p->n + j]) > scale ? fabs(ref[i * p->n + j]) : scale;
        }
        if (c[i * p->ldc + p->n] != p->c0[i * p->ldc + p->n])
            return INFINITY;
    }
    return scale > 0 ? err / scale : err;
}

/* Runs the product in precision; relative error against the reference
 * (bf16: the bf16-rounded reference), INFINITY when btrm_gemm fails. */
static double check(int precision, int ta, int tb, int m, int n, int k, float alpha,
                    float beta)
{
    problem p;
    problem_make(&p, ta, tb, m, n, k, alpha, beta, (uint64_t)(m * 1000 + n * 10 + k));
    float *c = malloc(sizeof *c * (size_t)m * p.ldc);
    memcpy(c, p.c0, sizeof *c * (size_t)m * p.ldc);
    double *ref = reference(&p, precision == BTRM_PREC_BF16);
    int rc = btrm_gemm(precision, ta, tb, m, n, k, alpha, p.a, p.lda, p.b, p.ldb, beta, c,
                       p.ldc);
    double err = rc ? INFINITY : rel_error(&p, c, ref);
    free(c);
    free(ref);
    problem_free(&p);
    return err;
}

static const char *op_name(int ta, int tb)
{
    return ta ? (tb ? "A^T B^T" : "A^T B") : (tb ? "A B^T" : "A B");
}

/* every transpose combination at two shapes (the second with beta != 0) */
static void check_transposes(int precision, double bound, const char *what)
{
    static const int shapes[][3] = { { 17, 33, 65 }, { 64, 128, 256 } };
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            double worst = 0;
            for (int s = 0; s < 2; s++) {
                double e = check(precision, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2],
                                 0.75f, s ? 0.5f : 0.0f);
                worst = e > worst ? e : worst;
            }
            ok(worst < bound, "%s %s: relative error %.2e < %.0e against double", what,
               op_name(ta, tb), worst, bound);
        }
}

/* bf16 operands given as bf16 give the same bits as fp32 operands rounded by
 * btrm_gemm, for A, B or both */
static int bf16_operands_same_bits(void)
{
    problem p;
    problem_make(&p, 1, 0, 40, 24, 72, 1.0f, 1.0f, 99);
    int ra = p.k, rb = p.k;
    uint16_t *ab = malloc(sizeof *ab * (size_t)ra * p.lda);
    uint16_t *bb = malloc(sizeof *bb * (size_t)rb * p.ldb);
    btrm_dtype_from_f32(ab, BTRM_DTYPE_BF16, p.a, (size_t)ra * p.lda);
    btrm_dtype_from_f32(bb, BTRM_DTYPE_BF16, p.b, (size_t)rb * p.ldb);
    size_t cn = (size_t)p.m * p.ldc;
    float *want = malloc(sizeof *want * cn), *got = malloc(sizeof *got * cn);
    memcpy(want, p.c0, sizeof *want * cn);
    int rc = btrm_gemm(BTRM_PREC_BF16, p.ta, p.tb, p.m, p.n, p.k, 1.0f, p.a, p.lda, p.b, p.ldb,
                       1.0f, want, p.ldc);
    int same = rc == 0;
    for (int mode = 1; mode <= 3 && same; mode++) {
        btrm_gemm_operand oa = { p.a, BTRM_DTYPE_F32, p.ta, p.lda };
        btrm_gemm_operand ob = { p.b, BTRM_DTYPE_F32, p.tb, p.ldb };
        if (mode & 1)
            oa = (btrm_gemm_operand){ ab, BTRM_DTYPE_BF16, p.ta, p.lda };
        if (mode & 2)
            ob = (btrm_gemm_operand){ bb, BTRM_DTYPE_BF16, p.tb, p.ldb };
        memcpy(got, p.c0, sizeof *got * cn);
        same = btrm_gemm_ex(BTRM_PREC_BF16, p.m, p.n, p.k, 1.0f, &oa, &ob, 1.0f, got,
                            p.ldc) == 0 &&
               memcmp(got, want, sizeof *got * cn) == 0;
    }
    free(ab), free(bb), free(want), free(got);
    problem_free(&p);
    return same;
}

/* More distinct shapes than the primitive cache holds, twice over: every
 * result right, and the second pass (primitives remade) bitwise equal to the
 * first. */
static int cache_churn(double *worst)
{
    enum { N_SHAPES = 40 };
    float *first[N_SHAPES];
    int same = 1;
    *worst = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int s = 0; s < N_SHAPES; s++) {
            problem p;
            problem_make(&p, s % 2, (s / 2) % 2, 5 + s, 9 + 2 * s, 16 + s, 1.0f, 0.0f,
                         (uint64_t)s);
            size_t cn = (size_t)p.m * p.ldc;
            float *c = malloc(sizeof *c * cn);
            memcpy(c, p.c0, sizeof *c * cn);
            int rc = btrm_gemm(BTRM_PREC_BF16, p.ta, p.tb, p.m, p.n, p.k, 1.0f, p.a, p.lda,
                               p.b, p.ldb, 0.0f, c, p.ldc);
            double *ref = reference(&p, 1);
            double e = rc ? INFINITY : rel_error(&p, c, ref);
            *worst = e > *worst ? e : *worst;
            free(ref);
            if (pass == 0) {
                first[s] = c;
            } else {
                same &= memcmp(c, first[s], sizeof *c * cn) == 0;
                free(c);
                free(first[s]);
            }
            problem_free(&p);
        }
    return same;
}

static int find_stat(int precision, int ta, int tb, int m, int n, int k, btrm_gemm_stat *out)
{
    btrm_gemm_stat st[BTRM_GEMM_MAX_SHAPES];
    int n_st = btrm_gemm_stats(st, BTRM_GEMM_MAX_SHAPES);
    for (int i = 0; i < n_st; i++)
        if (st[i].precision == precision && st[i].trans_a == ta && st[i].trans_b == tb &&
            st[i].m == m && st[i].n == n && st[i].k == k) {
            *out = st[i];
            return 1;
        }
    return 0;
}

int main(void)
{
    int have_dnnl = btrm_gemm_has_backend(BTRM_GEMM_ONEDNN);
    plan(24);
    diag("libraries: %s; oneDNN ISA: %s", btrm_gemm_library(), btrm_gemm_isa());

    /* fp32: every backend compiled in */
    static const int backends[] = { BTRM_GEMM_CBLAS, BTRM_GEMM_ONEDNN };
    for (int i = 0; i < 2; i++) {
        int id = backends[i];
        const char *name = id == BTRM_GEMM_CBLAS ? "cblas" : "onednn";
        if (!btrm_gemm_has_backend(id)) {
            skip(4, "the oneDNN fp32 backend is not compiled in (configure found no oneDNN)");
            continue;
        }
        ok(btrm_gemm_set_backend(id) == 0 && !strcmp(btrm_gemm_backend(), name),
           "select fp32 backend %s", name);
        char what[32];
        snprintf(what, sizeof what, "fp32 %s", name);
        static const int shapes[][3] = { { 17, 33, 65 }, { 64, 128, 256 } };
        double worst = 0;
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int s = 0; s < 2; s++) {
                    double e = check(BTRM_PREC_FP32, ta, tb, shapes[s][0], shapes[s][1],
                                     shapes[s][2], 0.75f, s ? 0.5f : 0.0f);
                    worst = e > worst ? e : worst;
                }
        ok(worst < 1e-5, "%s: every transpose, alpha and beta, padded leading dimensions: "
           "relative error %.2e < 1e-5 against double", what, worst);
        double worst_vec = check(BTRM_PREC_FP32, 0, 0, 1, 1, 1000, 1.0f, 1.0f);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                double e1 = check(BTRM_PREC_FP32, ta, tb, 37, 1, 50, 0.5f, 2.0f);
                double e2 = check(BTRM_PREC_FP32, ta, tb, 1, 29, 50, 1.5f, 0.0f);
                worst_vec = fmax(worst_vec, fmax(e1, e2));
            }
        ok(worst_vec < 1e-5, "%s: one output column or row (gemv), every transpose, and "
           "1 x 1 x 1000: relative error %.2e < 1e-5", what, worst_vec);
        btrm_gemm_stat st;
        int found = find_stat(BTRM_PREC_FP32, 0, 0, 17, 33, 65, &st);
        ok(found && !strcmp(st.impl, id == BTRM_GEMM_CBLAS ? "cblas_sgemm" : "dnnl_sgemm"),
           "%s: the statistics name the implementation that ran (%s)", what,
           found ? st.impl : "none");
        btrm_gemm_stats_reset();
    }
    btrm_gemm_set_backend(have_dnnl ? BTRM_GEMM_ONEDNN : BTRM_GEMM_CBLAS);

    { /* fp64 (newton, analyze): every transpose, and a gemv shape */
        double worst = 0;
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int s = 0; s < 2; s++) {
                    int m = s ? 23 : 31, n = s ? 1 : 19, k = 40;
                    int lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3;
                    double *a = malloc(sizeof *a * (size_t)(ta ? k : m) * lda);
                    double *b = malloc(sizeof *b * (size_t)(tb ? n : k) * ldb);
                    double *cc = malloc(sizeof *cc * (size_t)m * ldc), *ref = malloc(sizeof *ref * (size_t)m * n);
                    for (int i = 0; i < (ta ? k : m) * lda; i++)
                        a[i] = sin(i * 0.37);
                    for (int i = 0; i < (tb ? n : k) * ldb; i++)
                        b[i] = cos(i * 0.11);
                    for (int i = 0; i < m * ldc; i++)
                        cc[i] = 0.25 * i;
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            long double acc = 0;
                            for (int q = 0; q < k; q++)
                                acc += (long double)(ta ? a[q * lda + i] : a[i * lda + q]) *
                                       (tb ? b[j * ldb + q] : b[q * ldb + j]);
                            ref[i * n + j] = (double)(0.5L * acc + 0.25L * (long double)cc[i * ldc + j]);
                        }
                    btrm_gemm_f64(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, cc, ldc);
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++)
                            worst = fmax(worst, fabs(cc[i * ldc + j] - ref[i * n + j]));
                    free(a), free(b), free(cc), free(ref);
                }
        ok(worst < 1e-12, "fp64 products, every transpose, gemm and gemv shapes: max error "
           "%.1e < 1e-12", worst);
    }

    float one = 1, c = 5;
    ok(btrm_gemm(BTRM_PREC_FP32, 0, 0, 0, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &c, 1) == 0 &&
           c == 5, "m = 0 leaves C alone");
    ok(btrm_gemm(BTRM_PREC_FP32, 0, 0, 1, 1, 0, 1.0f, &one, 1, &one, 1, 2.0f, &c, 1) == 0 &&
           c == 10, "k = 0 scales C by beta");
    int rc = btrm_gemm(BTRM_PREC_BF16 + 7, 0, 0, 1, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &c, 1);
    ok(rc == BTRM_EUSAGE, "an unknown precision is refused (%d: %s)", rc, btrm_error_msg());
    uint16_t one_bf16 = btrm_float_to_bf16(1.0f);
    btrm_gemm_operand ob16 = { &one_bf16, BTRM_DTYPE_BF16, 0, 1 }, of32 = { &one, 0, 0, 1 };
    rc = btrm_gemm_ex(BTRM_PREC_FP32, 1, 1, 1, 1.0f, &ob16, &of32, 0.0f, &c, 1);
    ok(rc == BTRM_EUSAGE && strstr(btrm_error_msg(), "bf16"),
       "a bf16 operand in an fp32 product is refused (%s)", btrm_error_msg());

    if (!have_dnnl) {
        rc = btrm_gemm(BTRM_PREC_BF16, 0, 0, 1, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &c, 1);
        ok(rc == BTRM_EUSAGE && strstr(btrm_error_msg(), "oneDNN"),
           "without oneDNN, bf16 is refused naming the library (%s)", btrm_error_msg());
        ok(btrm_gemm_supports(BTRM_PREC_BF16) == BTRM_EUSAGE,
           "btrm_gemm_supports(bf16) refuses too");
        skip(9, "bf16 products need oneDNN, which this build lacks");
        btrm_gemm_release();
        return done_testing();
    }
    ok(btrm_gemm_supports(BTRM_PREC_BF16) == 0, "this build runs bf16 products (ISA %s)",
       btrm_gemm_isa());
    check_transposes(BTRM_PREC_BF16, 1e-5, "bf16 against the bf16-rounded reference,");
    /* the bf16 floor for these inputs: the unrounded reference is ~1e-3 away */
    double vs_exact;
    {
        problem p;
        problem_make(&p, 0, 1, 64, 128, 256, 1.0f, 0.0f, 5);
        float *cc = calloc((size_t)p.m * p.ldc, sizeof *cc);
        memcpy(cc, p.c0, sizeof *cc * (size_t)p.m * p.ldc);
        double *ref = reference(&p, 0);
        rc = btrm_gemm(BTRM_PREC_BF16, 0, 1, p.m, p.n, p.k, 1.0f, p.a, p.lda, p.b, p.ldb, 0.0f,
                       cc, p.ldc);
        vs_exact = rc ? INFINITY : rel_error(&p, cc, ref);
        free(cc);
        free(ref);
        problem_free(&p);
    }
    ok(vs_exact > 1e-5 && vs_exact < 2e-2,
       "bf16 rounds its inputs: %.2e from the unrounded reference (between 1e-5 and 2e-2)",
       vs_exact);
    ok(bf16_operands_same_bits(),
       "bf16 operands passed as bf16 (A, B, both) give the bits of fp32 operands rounded "
       "by btrm_gemm");
    double worst;
    int same = cache_churn(&worst);
    ok(worst < 1e-5, "40 shapes, more than the primitive cache holds, twice: relative error "
       "%.2e < 1e-5", worst);
    ok(same, "the second pass (primitives made again) is bitwise equal to the first");
    /* oneDNN 2.6 has bf16 matmuls from AVX-512 (avx512_core) up; below, btrm
     * multiplies the rounded inputs with the fp32 sgemm */
    const char *isa = btrm_gemm_isa();
    int avx512 = strncmp(isa, "avx512", 6) == 0 || strstr(isa, "amx") || strstr(isa, "avx10");
    int native = strncmp(btrm_gemm_bf16_route(), "oneDNN", 6) == 0;
    ok(native == avx512, "bf16 route for ISA %s: %s", isa, btrm_gemm_bf16_route());
    btrm_gemm_stat st;
    int found = find_stat(BTRM_PREC_BF16, 0, 1, 64, 128, 256, &st);
    int impl_ok = found && (native ? strlen(st.impl) > 0 && !strstr(st.impl, "sgemm")
                                   : !strcmp(st.impl, "dnnl_sgemm of bf16 inputs"));
    ok(impl_ok && st.calls >= 2, "the statistics keep the bf16 route's implementation (%s, "
       "%lld calls)", found ? st.impl : "none", found ? (long long)st.calls : 0LL);
    btrm_gemm_release();
    return done_testing();
}
