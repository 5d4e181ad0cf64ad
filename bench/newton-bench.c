/* newton-bench.c: timing of optim.type newton's iteration (bench/newton-bench.sh).
 *
 *   mpirun -np P bench/newton-bench --dim D --pairs N [--iters K] [--block NB]
 *   bench/newton-bench --lapack --dim D --pairs N
 *
 * The pairs live in memory (no HDF5 file): rows 2i and 2i+1 are pair i's
 * responses, entries uniform with unit variance drawn from the row index, so
 * every rank fills only the rows of its own pairs, as the node-shared
 * /features would serve them. The first mode runs K Newton iterations of
 * btrm_newton_solve on P ranks and prints one JSON line per iteration with
 * the phase times (form-H, factorise, other); the second forms the same H on
 * one rank with LAPACK-style dsyrk and solves with dposv, the serial
 * reference. OpenBLAS runs one thread per rank. */
#include "comm.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "loss.h"
#include "newton.h"
#include "pairs.h"
#include "rng.h"
#include "scalapack.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int num_threads);

static void fill_row(float *row, int dim, int64_t r)
{
    btrm_rng rng;
    btrm_rng_seed(&rng, 1234, (uint64_t)r);
    const double s = sqrt(12.0);
    for (int j = 0; j < dim; j++)
        row[j] = (float)(s * (btrm_rng_uniform(&rng) - 0.5));
}

typedef struct bench {
    int rank;
    double form, factor, other;
    int n;
} bench;

static void on_iter(void *ctx, const btrm_newton_iter *it)
{
    bench *b = ctx;
    if (b->rank == 0)
        printf("{\"iter\": %d, \"loss\": %.10g, \"grad_norm\": %.3e, \"step\": %g, "
               "\"t_form\": %.3f, \"t_factor\": %.3f, \"t_other\": %.3f}\n", it->iter, it->loss,
               it->grad_norm, it->step, it->t_form, it->t_factor, it->t_other);
    fflush(stdout);
    if (it->iter > 0) {
        b->form += it->t_form;
        b->factor += it->t_factor;
        b->other += it->t_other;
        b->n++;
    }
}

/* Labels from a planted direction with 10% noise. */
static void labels(int64_t n_pairs, int dim, int64_t first, int64_t count, const float *x,
                   int64_t *chosen, int64_t *rejected)
{
    for (int64_t i = 0; i < n_pairs; i++) {
        chosen[i] = 2 * i;
        rejected[i] = 2 * i + 1;
    }
    for (int64_t i = first; i < first + count; i++) {
        const float *a = x + (size_t)2 * i * dim, *b = a + dim;
        double s = 0;
        for (int j = 0; j < dim; j++)
            s += (j % 7 + 1) * ((double)a[j] - b[j]);
        btrm_rng rng;
        btrm_rng_seed(&rng, 99, (uint64_t)i);
        int swap = (s < 0) != (btrm_rng_uniform(&rng) < 0.1);
        chosen[i] = 2 * i + swap;
        rejected[i] = 2 * i + 1 - swap;
    }
}

static int lapack_reference(int dim, int64_t n_pairs, const float *x, const int64_t *chosen,
                            const int64_t *rejected, double lambda)
{
    double *z = malloc(sizeof *z * (size_t)n_pairs * dim), *h = malloc(sizeof *h * dim * dim);
    double *b = malloc(sizeof *b * dim);
    if (!z || !h || !b)
        return 1;
    for (int64_t i = 0; i < n_pairs; i++) {
        const float *a = x + (size_t)chosen[i] * dim, *r = x + (size_t)rejected[i] * dim;
        for (int j = 0; j < dim; j++) /* sqrt(s_i) at w = 0: s_i = 1/4 */
            z[(size_t)i * dim + j] = 0.5 * ((double)a[j] - r[j]);
    }
    for (int j = 0; j < dim; j++)
        b[j] = 1.0;
    double t0 = MPI_Wtime();
    /* h[D, D] lower = (1/N) Z^T Z + lambda I (Z row-major = Z^T column-major) */
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, dim, (int)n_pairs, 1.0 / n_pairs, z, dim,
                0.0, h, dim);
    for (int j = 0; j < dim; j++)
        h[(size_t)j * dim + j] += lambda;
    double t1 = MPI_Wtime();
    int info = 0, one = 1;
    dposv_("L", &dim, &one, h, &dim, b, &dim, &info, 1);
    double t2 = MPI_Wtime();
    printf("{\"lapack\": true, \"dim\": %d, \"pairs\": %lld, \"t_dsyrk\": %.3f, \"t_dposv\": %.3f, "
           "\"info\": %d}\n", dim, (long long)n_pairs, t1 - t0, t2 - t1, info);
    free(z);
    free(h);
    free(b);
    return info != 0;
}

int main(int argc, char **argv)
{
    int dim = 1024, iters = 3, block = 0, lapack = 0;
    long long n_pairs = 50000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dim") && i + 1 < argc)
            dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pairs") && i + 1 < argc)
            n_pairs = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--block") && i + 1 < argc)
            block = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lapack"))
            lapack = 1;
        else {
            fprintf(stderr, "usage: newton-bench [--dim D] [--pairs N] [--iters K] [--block NB] "
                    "[--lapack]\n");
            return 2;
        }
    }
    MPI_Init(&argc, &argv);
    openblas_set_num_threads(1);
    btrm_comm c;
    if (btrm_comm_init(&c, MPI_COMM_WORLD))
        MPI_Abort(MPI_COMM_WORLD, 1);
    btrm_log_init(c.rank, BTRM_LOG_WARN);
    int64_t first, count;
    btrm_comm_block(n_pairs, c.size, c.rank, &first, &count);
    /* calloc: the rows of other ranks' pairs are never touched (no memory) */
    float *x = calloc((size_t)2 * n_pairs * dim, sizeof *x);
    int64_t *chosen = malloc(sizeof *chosen * n_pairs), *rejected = malloc(sizeof *rejected * n_pairs);
    if (!x || !chosen || !rejected)
        MPI_Abort(c.comm, 1);
    int64_t lo = lapack ? 0 : first, n = lapack ? n_pairs : count;
    for (int64_t r = 2 * lo; r < 2 * (lo + n); r++)
        fill_row(x + (size_t)r * dim, dim, r);
    labels(n_pairs, dim, lo, n, x, chosen, rejected);
    int rc = 0;
    if (lapack) {
        rc = c.rank == 0 ? lapack_reference(dim, n_pairs, x, chosen, rejected, 1e-3) : 0;
    } else {
        btrm_pairs data;
        memset(&data, 0, sizeof data);
        snprintf(data.path, sizeof data.path, "(in memory)");
        data.n_pairs = n_pairs;
        data.n_rows = 2 * n_pairs;
        data.dim = dim;
        data.features = x;
        data.chosen = chosen;
        data.rejected = rejected;
        btrm_config cfg;
        btrm_config_defaults(&cfg);
        cfg.optim.type = BTRM_OPTIM_NEWTON;
        cfg.loss.type = BTRM_LOSS_NORMBT;
        cfg.optim.weight_decay = 1e-3;
        cfg.optim.max_iter = iters;
        cfg.optim.tol = 0.0;
        float *w = calloc((size_t)dim, sizeof *w);
        bench b = { .rank = c.rank };
        double dbar = 0, t0 = MPI_Wtime();
        btrm_newton_opts opts = { .block = block };
        rc = btrm_newton_solve_opts(&cfg, &data, &c, w, &dbar, on_iter, &b, &opts);
        if (rc && c.rank == 0)
            fprintf(stderr, "newton: %s\n", btrm_error_msg());
        if (c.rank == 0 && b.n > 0)
            printf("{\"summary\": true, \"ranks\": %d, \"dim\": %d, \"pairs\": %lld, "
                   "\"block\": %d, \"iters\": %d, \"t_form\": %.3f, \"t_factor\": %.3f, "
                   "\"t_other\": %.3f, \"t_iter\": %.3f, \"wall\": %.3f}\n", c.size, dim, n_pairs,
                   block, b.n, b.form / b.n, b.factor / b.n, b.other / b.n,
                   (b.form + b.factor + b.other) / b.n, MPI_Wtime() - t0);
        free(w);
    }
    free(x);
    free(chosen);
    free(rejected);
    btrm_comm_free(&c);
    MPI_Finalize();
    return rc ? 1 : 0;
}
