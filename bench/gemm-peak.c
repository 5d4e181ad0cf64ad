/* bench/gemm-peak.c: GFLOP/s of every GEMM route btrm can take, side by side
 * in one run, at the shapes of the mlp training step and of a dim-4096 Llama
 * prefill. It gives the peaks that docs/performance.md divides by.
 *
 * Routes, per shape (row-major, as btrm calls them):
 *   openblas     cblas_sgemm of the linked BLAS (OPENBLAS_CORETYPE as the
 *                environment says; these machines set Haswell)
 *   dnnl_sgemm   oneDNN's fp32 GEMM (btrm_gemm's fp32 route with oneDNN)
 *   dnnl_bf16    dnnl_gemm_bf16bf16f32 on plain bf16 layouts: the bf16 peak
 *                of the issue's goals (see below)
 *   btrm_bf16    btrm_gemm_ex on operands already in bf16: the cached oneDNN
 *                matmul primitive btrm runs (its implementation is printed)
 *   btrm_bf16+r  btrm_gemm on fp32 operands: the same plus rounding both
 *                operands to bf16 in the call (what a product whose inputs
 *                change every step pays)
 * Shapes (m x n x k, op):
 *   fwd    z[512,1024] = x[512,4096] W[1024,4096]^T    NT, beta 1 (bias)
 *   dW     dW[1024,4096] = d[512,1024]^T x[512,4096]   TN, beta 0 (gradient)
 *   fwd256, dW256: the same on 256 rows (one of 2 ranks)
 *   q, ffn: a dim-4096 prefill of 512 tokens, x[512,4096] W^T with W
 *           [4096,4096] and [11008,4096] (NT, beta 0)
 * Each route: one untimed call, then calls for at least --min-time seconds
 * (at least 3); best and median GFLOP/s (2 m n k per call).
 *
 * dnnl_gemm_bf16bf16f32 is exported by libdnnl 2.x but declared in no public
 * header (oneDNN's own tests declare it themselves). btrm does not call it:
 * the matmul primitive is as fast at these shapes (see the table) and comes
 * with a documented API and an implementation name. It is declared here, in
 * this one place, only to measure the reference peak; configure checks that
 * it links (HAVE_DNNL_GEMM_BF16 in its summary).
 *
 * Build: make -C bench gemm-peak. Usage: bench/gemm-peak [--min-time S]
 * [--threads N] [--clock wall|cpu] [--markdown] [--shapes fwd,dW,...] */
#define _POSIX_C_SOURCE 200809L
#include "dtype.h"
#include "error.h"
#include "gemm.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-clock.h"

#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
/* exported by libdnnl 2.x, absent from its headers (see above) */
dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N,
                                    dnnl_dim_t K, float alpha, const uint16_t *A,
                                    dnnl_dim_t lda, const uint16_t *B, dnnl_dim_t ldb,
                                    float beta, float *C, dnnl_dim_t ldc);
#endif

typedef struct shape {
    const char *name;
    int ta, tb, m, n, k;
    float beta;
} shape;

enum { OPENBLAS, DNNL_SGEMM, DNNL_BF16, BTRM_BF16, BTRM_BF16_ROUND, N_ROUTES };
static const char *route_name[N_ROUTES] = { "openblas", "dnnl_sgemm", "dnnl_bf16", "btrm_bf16",
                                            "btrm_bf16+r" };

typedef struct operands {
    const shape *s;
    float *a, *b, *c;
    uint16_t *a16, *b16;
    int lda, ldb;
} operands;

static int run(int route, const operands *o)
{
    const shape *s = o->s;
    switch (route) {
    case OPENBLAS:
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                    s->tb ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1.0f, o->a, o->lda,
                    o->b, o->ldb, s->beta, o->c, s->n);
        return 0;
#ifdef HAVE_DNNL
    case DNNL_SGEMM:
        return dnnl_sgemm(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->m, s->n, s->k, 1.0f, o->a,
                          o->lda, o->b, o->ldb, s->beta, o->c, s->n) != dnnl_success;
#ifdef HAVE_DNNL_GEMM_BF16
    case DNNL_BF16:
        return dnnl_gemm_bf16bf16f32(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->m, s->n, s->k,
                                     1.0f, o->a16, o->lda, o->b16, o->ldb, s->beta, o->c,
                                     s->n) != dnnl_success;
#endif
    case BTRM_BF16: {
        btrm_gemm_operand a = { o->a16, BTRM_DTYPE_BF16, s->ta, o->lda };
        btrm_gemm_operand b = { o->b16, BTRM_DTYPE_BF16, s->tb, o->ldb };
        return btrm_gemm_ex(BTRM_PREC_BF16, s->m, s->n, s->k, 1.0f, &a, &b, s->beta, o->c,
                            s->n);
    }
    case BTRM_BF16_ROUND:
        return btrm_gemm(BTRM_PREC_BF16, s->ta, s->tb, s->m, s->n, s->k, 1.0f, o->a, o->lda,
                         o->b, o->ldb, s->beta, o->c, s->n);
#endif
    default: return -1;
    }
}

static float *filled(size_t n, unsigned seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "gemm-peak: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) { /* small values: many beta = 1 calls stay finite */
        seed = seed * 1664525u + 1013904223u;
        p[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 1e-3f;
    }
    return p;
}

/* best and median GFLOP/s of one route; 0 when it is not available */
static int measure(int route, const operands *o, double min_time, double *best, double *median)
{
    const shape *s = o->s;
    const double flops = 2.0 * s->m * (double)s->n * s->k;
    if (run(route, o))
        return -1;
    enum { MAX_CALLS = 10000 };
    static double rate[MAX_CALLS];
    int calls = 0;
    double t_start = now();
    while (calls < MAX_CALLS && (calls < 3 || now() - t_start < min_time)) {
        double t0 = now();
        run(route, o);
        rate[calls++] = flops / (now() - t0) * 1e-9;
    }
    bench_best_median(rate, calls, best, median);
    return 0;
}

static const char *impl_of(const shape *s)
{
    btrm_gemm_stat st[BTRM_GEMM_MAX_SHAPES];
    int n = btrm_gemm_stats(st, BTRM_GEMM_MAX_SHAPES);
    for (int i = 0; i < n; i++)
        if (st[i].precision == BTRM_PREC_BF16 && st[i].m == s->m && st[i].n == s->n &&
            st[i].k == s->k && st[i].trans_a == s->ta && st[i].trans_b == s->tb)
            return strcpy(malloc(sizeof st[i].impl), st[i].impl);
    return NULL;
}

int main(int argc, char **argv)
{
    double min_time = 1.0;
    int threads = 1, markdown = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--min-time") && i + 1 < argc)
            min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--clock") && i + 1 < argc)
            bench_clock = !strcmp(argv[++i], "cpu") ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
        else if (!strcmp(argv[i], "--markdown"))
            markdown = 1;
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--min-time S] [--threads N] [--clock wall|cpu] "
                            "[--markdown] [--shapes fwd,dW,fwd256,dW256,q,ffn]\n", argv[0]);
            return 2;
        }
    }
    btrm_gemm_set_threads(threads);
    static const shape shapes[] = {
        { "fwd", 0, 1, 512, 1024, 4096, 1.0f },    { "dW", 1, 0, 1024, 4096, 512, 0.0f },
        { "fwd256", 0, 1, 256, 1024, 4096, 1.0f }, { "dW256", 1, 0, 1024, 4096, 256, 0.0f },
        { "q", 0, 1, 512, 4096, 4096, 0.0f },      { "ffn", 0, 1, 512, 11008, 4096, 0.0f },
    };
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("%s gemm-peak: %s; oneDNN ISA %s; OPENBLAS_CORETYPE=%s; %d thread%s; best and "
           "median of >= 3 calls over >= %.1f s per route, %s clock\n",
           markdown ? "<!--" : "#", btrm_gemm_library(), btrm_gemm_isa(), core ? core : "(unset)",
           threads, threads > 1 ? "s" : "", min_time,
           bench_clock_name());
    if (markdown)
        printf("-->\n| shape (m x n x k, op, beta) | route | best GFLOP/s | median GFLOP/s |\n"
               "| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        if (only) {
            char list[128];
            int want = 0;
            snprintf(list, sizeof list, "%s", only);
            for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
                 t = strtok_r(NULL, ",", &save))
                want |= !strcmp(t, s->name);
            if (!want)
                continue;
        }
        operands o = { .s = s, .lda = s->ta ? s->m : s->k, .ldb = s->tb ? s->k : s->n };
        size_t na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n;
        o.a = filled(na, 1);
        o.b = filled(nb, 2);
        o.c = filled((size_t)s->m * s->n, 3);
        o.a16 = malloc(na * sizeof *o.a16);
        o.b16 = malloc(nb * sizeof *o.b16);
        btrm_dtype_from_f32(o.a16, BTRM_DTYPE_BF16, o.a, na);
        btrm_dtype_from_f32(o.b16, BTRM_DTYPE_BF16, o.b, nb);
        for (int r = 0; r < N_ROUTES; r++) {
            double best, median;
            if (measure(r, &o, min_time, &best, &median))
                continue;
            char label[96];
            const char *impl = r == BTRM_BF16 ? impl_of(s) : NULL;
            snprintf(label, sizeof label, "%s%s%s%s", route_name[r], impl ? " (" : "",
                     impl ? impl : "", impl ? ")" : "");
            free((void *)impl);
            if (markdown)
                printf("| %s %d x %d x %d, %s%s, %g | %s | %.1f | %.1f |\n", s->name, s->m,
                       s->n, s->k, s->ta ? "T" : "N", s->tb ? "T" : "N", s->beta, label, best,
                       median);
            else
                printf("%-7s %5d x %5d x %5d %s%s beta %g  %-36s best %6.1f  median %6.1f "
                       "GFLOP/s\n", s->name, s->m, s->n, s->k, s->ta ? "T" : "N",
                       s->tb ? "T" : "N", s->beta, label, best, median);
            fflush(stdout);
        }
        free(o.a), free(o.b), free(o.c), free(o.a16), free(o.b16);
    }
    btrm_gemm_release();
    return 0;
}
