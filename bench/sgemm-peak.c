/* bench/sgemm-peak.c: cblas_sgemm GFLOP/s of the linked BLAS at the shapes
 * one mlp training step uses (D = 4096 -> H = 1024, 2B rows per rank), and
 * at a large square shape, on 1 and 2 threads. It is the reference against
 * which bench/train-bench.sh reports "% of peak".
 *
 * Shapes (row-major, as src/math/head.c calls them; `rows` = 2 x the pairs a rank
 * holds: 512 at global batch 256 on 1 rank, 256 on 2 ranks):
 *   fwd     z[rows,H] = x[rows,D] . W[H,D]^T        NoTrans, Trans,   beta 1
 *   bwd-dW  dW[H,D] += delta[rows,H]^T . x[rows,D]  Trans,   NoTrans, beta 1
 *   bwd-dx  dx[rows,D] = delta[rows,H] . W[H,D]     NoTrans, NoTrans, beta 0
 *           (btrm does not compute dx for the first layer, whose input is
 *           the features; listed because a deeper mlp needs it)
 *   square  C[N,N] = A[N,N] . B[N,N]                 N = 4096
 * FLOPs of one call: 2 M N K. Each case runs one untimed call, then
 * repeats for at least --min-time seconds (and at least 3 calls); it prints
 * the best and the median call.
 *
 * --clock cpu times each call with the calling thread's CPU time instead of
 * the wall clock: on a shared machine it leaves out the time other
 * processes held the core. Only meaningful with 1 thread (OpenBLAS then
 * computes in the calling thread); with more, it undercounts.
 *
 * Build: cc -O2 -o bench/sgemm-peak bench/sgemm-peak.c -lopenblas
 * (or `make -C bench`). Usage: bench/sgemm-peak [--threads "1 2"]
 * [--min-time S] [--square N] [--clock wall|cpu] [--markdown]. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-clock.h"

/* The pthread and OpenMP builds of OpenBLAS both export it; other BLAS
 * libraries take their thread count from the environment instead. */
void openblas_set_num_threads(int num_threads) __attribute__((weak));
char *openblas_get_config(void) __attribute__((weak));
char *openblas_get_corename(void) __attribute__((weak));

typedef struct gemm_case {
    const char *name;
    enum CBLAS_TRANSPOSE ta, tb;
    int m, n, k;
    float beta;
} gemm_case;

static float *alloc_filled(size_t n, unsigned seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "sgemm-peak: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) { /* small values: no overflow over many beta = 1 calls */
        seed = seed * 1664525u + 1013904223u;
        p[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 1e-3f;
    }
    return p;
}

/* Runs one case; best and median GFLOP/s. */
static void run_case(const gemm_case *gc, double min_time, double *best, double *median)
{
    const int m = gc->m, n = gc->n, k = gc->k;
    /* row-major: op(A) is [m,k], op(B) is [k,n] */
    const int lda = gc->ta == CblasNoTrans ? k : m;
    const int ldb = gc->tb == CblasNoTrans ? n : k;
    float *a = alloc_filled((size_t)m * k, 1), *b = alloc_filled((size_t)k * n, 2);
    float *c = alloc_filled((size_t)m * n, 3);
    const double flops = 2.0 * m * n * (double)k;
    cblas_sgemm(CblasRowMajor, gc->ta, gc->tb, m, n, k, 1.0f, a, lda, b, ldb, gc->beta, c, n);
    enum { MAX_CALLS = 10000 };
    static double rate[MAX_CALLS];
    int calls = 0;
    double t_start = now();
    while (calls < MAX_CALLS && (calls < 3 || now() - t_start < min_time)) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, gc->ta, gc->tb, m, n, k, 1.0f, a, lda, b, ldb, gc->beta,
                    c, n);
        rate[calls++] = flops / (now() - t0) * 1e-9;
    }
    bench_best_median(rate, calls, best, median);
    free(a);
    free(b);
    free(c);
}

int main(int argc, char **argv)
{
    const char *threads = "1 2";
    double min_time = 1.0;
    int square = 4096, markdown = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = argv[++i];
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc)
            min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--square") && i + 1 < argc)
            square = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--clock") && i + 1 < argc)
            bench_clock = !strcmp(argv[++i], "cpu") ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
        else if (!strcmp(argv[i], "--markdown"))
            markdown = 1;
        else {
            fprintf(stderr, "usage: %s [--threads \"1 2\"] [--min-time S] [--square N] "
                            "[--clock wall|cpu] [--markdown]\n", argv[0]);
            return 2;
        }
    }
    const int D = 4096, H = 1024;
    const gemm_case cases[] = {
        { "fwd      z[512,1024]  = x[512,4096].W^T", CblasNoTrans, CblasTrans, 512, H, D, 1.0f },
        { "bwd-dW   dW[1024,4096] += d[512,1024]^T.x", CblasTrans, CblasNoTrans, H, D, 512, 1.0f },
        { "bwd-dx   dx[512,4096] = d[512,1024].W", CblasNoTrans, CblasNoTrans, 512, D, H, 0.0f },
        { "fwd      z[256,1024]  = x[256,4096].W^T", CblasNoTrans, CblasTrans, 256, H, D, 1.0f },
        { "bwd-dW   dW[1024,4096] += d[256,1024]^T.x", CblasTrans, CblasNoTrans, H, D, 256, 1.0f },
        { "square   C[N,N] = A[N,N].B[N,N]", CblasNoTrans, CblasNoTrans, square, square, square,
          0.0f },
    };
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("%s BLAS: %s; OPENBLAS_CORETYPE=%s; best and median of >= 3 calls over >= %.1f s "
           "per case, %s clock\n", markdown ? "<!-- sgemm-peak -->" : "#",
           openblas_get_config ? openblas_get_config() : "(not OpenBLAS)",
           core ? core : "(unset)", min_time,
           bench_clock_name());
    if (openblas_get_corename)
        printf("%s OpenBLAS core in use: %s\n", markdown ? "<!-- sgemm-peak -->" : "#",
               openblas_get_corename());
    if (markdown) {
        printf("| shape (M x N x K) | threads | best GFLOP/s | median GFLOP/s |\n");
        printf("| --- | --- | --- | --- |\n");
    } else {
        printf("%-44s %7s %7s %6s %6s %8s %8s\n", "case", "M", "N", "K", "thr", "best",
               "median");
    }
    char list[256];
    snprintf(list, sizeof list, "%s", threads);
    for (char *save = NULL, *tok = strtok_r(list, " ,", &save); tok;
         tok = strtok_r(NULL, " ,", &save)) {
        int nt = atoi(tok);
        if (nt < 1)
            continue;
        if (openblas_set_num_threads)
            openblas_set_num_threads(nt);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            double best, median;
            run_case(&cases[i], min_time, &best, &median);
            const gemm_case *gc = &cases[i];
            if (markdown) {
                char name[64];
                snprintf(name, sizeof name, "%.8s", gc->name);
                for (char *p = name + strlen(name); p > name && p[-1] == ' ';)
                    *--p = '\0';
                printf("| %s %d x %d x %d | %d | %.1f | %.1f |\n", name, gc->m, gc->n, gc->k,
                       nt, best, median);
            } else {
                printf("%-44s %7d %7d %6d %6d %8.1f %8.1f\n", gc->name, gc->m, gc->n, gc->k,
                       nt, best, median);
            }
            fflush(stdout);
        }
    }
    return 0;
}
