/* test-newton.c: optim.type newton (src/run/newton.c) and the ScaLAPACK glue it
 * uses (src/comm/scalapack.c), against references computed here in double:
 *   - a closed form (D = 1, a fraction q of the pairs agreeing: w* = logit(q)/a);
 *   - bisection on the gradient (D = 1, NormBT weights with a cap, margins);
 *   - a long full-batch gradient descent on the same L2-penalised objective;
 *   - quadratic convergence of the gradient norm near the optimum;
 *   - duplicated feature columns (rank-deficient Z): lambda > 0 converges
 *     with equal weights on the twins; lambda = 0 is reported and shifted;
 *   - the distributed Gram matrix (one and several panels) and Cholesky solve
 *     against serial sums;
 *   - the same optimum on MPI_COMM_SELF and on all ranks, for several block
 *     sizes (run under tests/mpirun.sh with 2 and 3 ranks by tests/newton.sh).
 * Rank 0 prints the TAP stream; the other ranks' failures are counted at the
 * end. */
#include "tap.h"
#include "mpi_fixture.h"

#include "comm.h"
#include "config.h"
#include "error.h"
#include "h5util.h"
#include "log.h"
#include "loss.h"
#include "newton.h"
#include "pairs.h"
#include "rng.h"
#include "scalapack.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ---- problems ------------------------------------------------------------ */

typedef struct problem {
    int n, dim;
    float *x;                 /* [2n, dim]: pair i = rows (2i, 2i+1), chosen first */
    int64_t *chosen, *rejected;
    float *margin;            /* [n] or NULL */
} problem;

static void problem_free(problem *p)
{
    free(p->x);
    free(p->chosen);
    free(p->rejected);
    free(p->margin);
    memset(p, 0, sizeof *p);
}

/* Gaussian responses, labels from a planted direction with label noise
 * (so that the optimum is finite even without weight decay). dup >= 0 makes
 * column dup + 1 a copy of column dup. */
static void make_problem(problem *p, int n, int dim, uint64_t seed, double noise,
                         int margins, int dup)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->dim = dim;
    p->x = calloc((size_t)2 * n * dim, sizeof *p->x);
    p->chosen = calloc((size_t)n, sizeof *p->chosen);
    p->rejected = calloc((size_t)n, sizeof *p->rejected);
    if (margins)
        p->margin = calloc((size_t)n, sizeof *p->margin);
    btrm_rng rng;
    btrm_rng_seed(&rng, seed, 77);
    double *dir_ = calloc((size_t)dim, sizeof *dir_);
    for (int j = 0; j < dim; j++)
        dir_[j] = 1.0 + 0.5 * j;
    for (int i = 0; i < n; i++) {
        float *a = p->x + (size_t)2 * i * dim, *b = a + dim;
        double scale = i % 3 == 0 ? 0.2 : 1.0; /* some close pairs: NormBT weights vary */
        for (int j = 0; j < dim; j++) {
            double centre = btrm_rng_normal(&rng);
            a[j] = (float)(centre + scale * btrm_rng_normal(&rng));
            b[j] = (float)(centre + scale * btrm_rng_normal(&rng));
        }
        if (dup >= 0) {
            a[dup + 1] = a[dup];
            b[dup + 1] = b[dup];
        }
        double sa = 0, sb = 0;
        for (int j = 0; j < dim; j++) {
            sa += dir_[j] * a[j];
            sb += dir_[j] * b[j];
        }
        int swap = (sa < sb) != (btrm_rng_uniform(&rng) < noise);
        p->chosen[i] = 2 * i + (swap ? 1 : 0);
        p->rejected[i] = 2 * i + (swap ? 0 : 1);
        if (margins)
            p->margin[i] = (float)(0.3 * btrm_rng_uniform(&rng));
    }
    free(dir_);
}

/* Rank 0 writes the store; every rank of c opens it. */
static int open_problem(const problem *p, const char *name, const btrm_comm *c, btrm_pairs *out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    if (c == &world) {
        int rc = 0;
        if (world.rank == 0) {
            btrm_pairs_data d = { .n_pairs = p->n, .n_rows = 2 * p->n, .dim = p->dim,
                                  .features = p->x, .chosen = p->chosen,
                                  .rejected = p->rejected, .margin = p->margin };
            rc = btrm_pairs_write(path, &d);
        }
        MPI_Bcast(&rc, 1, MPI_INT, 0, world.comm);
        if (rc)
            return rc;
    }
    return btrm_pairs_open(out, path, c, BTRM_PAIRS_FEATURES | BTRM_PAIRS_REQUIRE_FEATURES);
}

static void newton_config(btrm_config *cfg, int loss_type, double lambda)
{
    btrm_config_defaults(cfg);
    cfg->model.head = BTRM_HEAD_LINEAR;
    cfg->optim.type = BTRM_OPTIM_NEWTON;
    cfg->loss.type = loss_type;
    cfg->optim.weight_decay = lambda;
    cfg->optim.tol = 1e-10;
    cfg->optim.max_iter = 50;
}

/* ---- the reference objective, serial, in double ------------------------- */

/* f(w) and g(w) of newton.h's objective for the whole problem. */
static double ref_loss_grad(const problem *p, const btrm_config *cfg, const double *w,
                            double *g)
{
    const int dim = p->dim;
    double *z = calloc((size_t)dim, sizeof *z), dsum = 0;
    for (int i = 0; i < p->n; i++) {
        const float *a = p->x + (size_t)p->chosen[i] * dim, *b = p->x + (size_t)p->rejected[i] * dim;
        double sq = 0;
        for (int j = 0; j < dim; j++)
            sq += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
        dsum += sqrt(sq);
    }
    double dbar = dsum / p->n, f = 0;
    btrm_loss_params lp = { .type = cfg->loss.type, .eps = cfg->loss.normbt_eps,
                            .max_weight = cfg->loss.normbt_max_weight };
    for (int j = 0; j < dim; j++)
        g[j] = cfg->optim.weight_decay * w[j];
    for (int i = 0; i < p->n; i++) {
        const float *a = p->x + (size_t)p->chosen[i] * dim, *b = p->x + (size_t)p->rejected[i] * dim;
        double u = 0, sq = 0;
        for (int j = 0; j < dim; j++) {
            z[j] = (double)a[j] - b[j];
            u += w[j] * z[j];
            sq += z[j] * z[j];
        }
        if (cfg->loss.margin == BTRM_MARGIN_DATA)
            u -= p->margin[i];
        double omega = btrm_loss_weight(&lp, sqrt(sq), dbar);
        f += omega * btrm_softplus(-u) / p->n;
        double c = -omega * btrm_sigmoid(-u) / p->n;
        for (int j = 0; j < dim; j++)
            g[j] += c * z[j];
    }
    double ww = 0;
    for (int j = 0; j < dim; j++)
        ww += w[j] * w[j];
    free(z);
    return f + 0.5 * cfg->optim.weight_decay * ww;
}

static double norm(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i] * v[i];
    return sqrt(s);
}

/* max |a - b| / max |b| */
static double rel_diff_f(const float *a, const double *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return den > 0 ? num / den : num;
}
static double rel_diff_ff(const float *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

/* ---- running the solver ------------------------------------------------- */

#define MAX_RECORDS 64
typedef struct records {
    int n;
    btrm_newton_iter it[MAX_RECORDS];
} records;

static void record(void *ctx, const btrm_newton_iter *it)
{
    records *r = ctx;
    if (r->n < MAX_RECORDS)
        r->it[r->n++] = *it;
}

static int solve(const btrm_config *cfg, const problem *p, const char *name, const btrm_comm *c,
                 int block, float *w, btrm_newton_result *res, records *rec)
{
    btrm_pairs data;
    memset(&data, 0, sizeof data);
    int rc = open_problem(p, name, c, &data);
    if (rc)
        return rc;
    for (int j = 0; j < p->dim; j++)
        w[j] = 0.0f;
    double dbar = 0;
    btrm_newton_opts opts = { .block = block, .result = res };
    if (rec)
        rec->n = 0;
    rc = btrm_newton_solve_opts(cfg, &data, c, w, &dbar, rec ? record : NULL, rec, &opts);
    btrm_pairs_close(&data);
    return rc;
}

/* ---- tests --------------------------------------------------------------- */

/* D = 1, a fraction q of the pairs with z = +a and the rest z = -a, lambda = 0:
 * g(w) = a (-q sigma(-a w) + (1 - q) sigma(a w)) = 0  <=>  w* = logit(q) / a. */
static void test_closed_form(void)
{
    const int n = 40, agree = 30;
    const double a = 2.0;
    problem p = { .n = n, .dim = 1 };
    p.x = calloc(2 * n, sizeof *p.x);
    p.chosen = calloc(n, sizeof *p.chosen);
    p.rejected = calloc(n, sizeof *p.rejected);
    for (int i = 0; i < n; i++) {
        p.x[2 * i] = (float)(i < agree ? a : 0.0);
        p.x[2 * i + 1] = (float)(i < agree ? 0.0 : a);
        p.chosen[i] = 2 * i;
        p.rejected[i] = 2 * i + 1;
    }
    double want = log((double)agree / (n - agree)) / a;
    for (int type = BTRM_LOSS_BT; type <= BTRM_LOSS_NORMBT; type++) {
        btrm_config cfg;
        newton_config(&cfg, type, 0.0);
        float w = 0;
        btrm_newton_result res;
        int rc = solve(&cfg, &p, "closed", &world, 0, &w, &res, NULL);
        is_int(rc, 0, "closed form (%s): solves", type ? "normbt" : "bt");
        is_double_rel(w, want, 1e-6, "closed form (%s): w* = logit(3/4) / 2 = %.6f",
                      type ? "normbt" : "bt", want);
        ok(res.converged && res.iters <= 8, "closed form (%s): converged in %d steps",
           type ? "normbt" : "bt", res.iters);
    }
    problem_free(&p);
}

/* D = 1 with NormBT weights (capped), margins and weight decay: the root of the
 * monotone gradient by bisection in double. */
static void test_bisection(void)
{
    problem p;
    make_problem(&p, 120, 1, 3, 0.2, 1, -1);
    btrm_config cfg;
    newton_config(&cfg, BTRM_LOSS_NORMBT, 0.01);
    cfg.loss.margin = BTRM_MARGIN_DATA;
    cfg.loss.normbt_max_weight = 3.0;
    double lo = -1, hi = 1, g = 0;
    while (ref_loss_grad(&p, &cfg, &lo, &g), g > 0)
        lo *= 2;
    while (ref_loss_grad(&p, &cfg, &hi, &g), g < 0)
        hi *= 2;
    for (int k = 0; k < 200 && hi - lo > 1e-15 * fabs(hi); k++) {
        double mid = 0.5 * (lo + hi);
        ref_loss_grad(&p, &cfg, &mid, &g);
        if (g > 0)
            hi = mid;
        else
            lo = mid;
    }
    double want = 0.5 * (lo + hi);
    float w = 0;
    btrm_newton_result res;
    int rc = solve(&cfg, &p, "bisect", &world, 0, &w, &res, NULL);
    is_int(rc, 0, "bisection case: solves");
    is_double_rel(w, want, 1e-6, "D = 1, normbt (cap 3), margins, lambda 0.01: w = the "
                  "gradient's root by bisection (%.9f)", want);
    problem_free(&p);
}

/* A small well-conditioned problem: the optimum of a long full-batch gradient
 * descent on the same objective (L2 penalty in the loss, not AdamW's decoupled
 * decay). */
static void test_gradient_descent(void)
{
    problem p;
    make_problem(&p, 300, 6, 5, 0.15, 1, -1);
    btrm_config cfg;
    newton_config(&cfg, BTRM_LOSS_NORMBT, 0.1);
    cfg.loss.margin = BTRM_MARGIN_DATA;
    const int dim = p.dim;
    double w[6] = { 0 }, g[6];
    /* step 1/L with L >= max omega * (1/4) * trace(Z^T Z / N) + lambda */
    double trace = 0, dsum = 0, dmin = HUGE_VAL;
    for (int i = 0; i < p.n; i++) {
        double sq = 0;
        for (int j = 0; j < dim; j++) {
            double z = (double)p.x[p.chosen[i] * dim + j] - p.x[p.rejected[i] * dim + j];
            sq += z * z;
        }
        trace += sq / p.n;
        dsum += sqrt(sq);
        dmin = fmin(dmin, sqrt(sq));
    }
    double omega_max = dsum / p.n / dmin;
    double eta = 1.0 / (0.25 * omega_max * trace + cfg.optim.weight_decay);
    int steps = 0;
    for (; steps < 2000000; steps++) {
        ref_loss_grad(&p, &cfg, w, g);
        if (norm(g, dim) < 1e-12)
            break;
        for (int j = 0; j < dim; j++)
            w[j] -= eta * g[j];
    }
    float wn[6];
    btrm_newton_result res;
    records rec;
    int rc = solve(&cfg, &p, "gd", &world, 0, wn, &res, &rec);
    is_int(rc, 0, "GD case: solves");
    double d = rel_diff_f(wn, w, dim);
    ok(d <= 1e-4, "D = 6, normbt, margins, lambda 0.1: Newton = gradient descent "
       "(%d steps to |g| < 1e-12): relative difference %.2e <= 1e-4", steps, d);
    ok(res.converged && res.iters < 15, "converged in %d Newton steps", res.iters);
    /* the records: iteration 0 first, one per step, loss never increases */
    int mono = rec.n == res.iters + 1 && rec.it[0].iter == 0 && rec.it[0].step == 0.0;
    for (int k = 1; k < rec.n; k++) {
        diag("iteration %d: loss %.17g |g| %.3e step %g", k, rec.it[k].loss,
             rec.it[k].grad_norm, rec.it[k].step);
        /* a full step deep in the quadratic region may tie the loss to rounding */
        mono = mono && rec.it[k].iter == k &&
               rec.it[k].loss <= rec.it[k - 1].loss * (1 + 1e-14) &&
               rec.it[k].step > 0 && rec.it[k].t_form >= 0 && rec.it[k].t_factor >= 0;
    }
    ok(mono, "one record per iteration (%d), iteration 0 first, the loss never increases",
       rec.n);
    double fw = ref_loss_grad(&p, &cfg, w, g);
    is_double_rel(rec.it[rec.n - 1].loss, fw, 1e-12, "the logged final loss is the "
                  "objective at the optimum");
    problem_free(&p);
}

/* Near the optimum the gradient norm falls quadratically:
 * |g_{k+1}| <= C |g_k|^2 over the last steps, and the ratios |g_{k+1}|/|g_k|
 * shrink. */
static void test_quadratic(void)
{
    problem p;
    make_problem(&p, 400, 8, 11, 0.1, 0, -1);
    btrm_config cfg;
    newton_config(&cfg, BTRM_LOSS_BT, 1e-3);
    cfg.optim.tol = 1e-14;
    float w[8];
    btrm_newton_result res;
    records rec;
    int rc = solve(&cfg, &p, "quad", &world, 0, w, &res, &rec);
    is_int(rc, 0, "quadratic case: solves");
    /* full steps with |g| above the rounding floor */
    double g0 = rec.it[0].grad_norm, cmax = 0;
    int pairs = 0, shrinking = 1;
    double prev_ratio = HUGE_VAL;
    for (int k = 1; k + 1 < rec.n; k++) {
        double a = rec.it[k].grad_norm, b = rec.it[k + 1].grad_norm;
        if (rec.it[k + 1].step != 1.0 || a > 0.1 * g0 || b < 1e-13 * g0)
            continue;
        cmax = fmax(cmax, b / (a * a));
        shrinking = shrinking && b / a < prev_ratio;
        prev_ratio = b / a;
        pairs++;
        diag("k=%d |g_k| %.3e |g_k+1| %.3e ratio %.2e C %.2e", k, a, b, b / a, b / (a * a));
    }
    ok(pairs >= 2, "at least two full Newton steps near the optimum (%d)", pairs);
    ok(pairs >= 2 && cmax < 1e3, "quadratic convergence: |g_{k+1}| <= C |g_k|^2 with C = "
       "%.3g < 1e3", cmax);
    ok(pairs >= 2 && shrinking, "superlinear: the ratio |g_{k+1}|/|g_k| shrinks every step");
    ok(res.converged, "reaches |g| <= 1e-14 |g_0| (%.2e) in %d steps",
       res.grad_norm / res.grad_norm0, res.iters);
    problem_free(&p);
}

/* Column 2 duplicated into column 3: Z has rank D - 1. */
static void test_rank_deficient(void)
{
    problem p, q;
    make_problem(&p, 300, 4, 13, 0.2, 0, 2);
    /* the same problem without the twin column */
    make_problem(&q, 300, 4, 13, 0.2, 0, 2);
    q.dim = 3;
    for (int r = 0; r < 2 * q.n; r++)
        for (int j = 0; j < 3; j++)
            q.x[r * 3 + j] = p.x[r * 4 + j];
    btrm_config cfg;
    float w[4], v[3];
    btrm_newton_result res;
    newton_config(&cfg, BTRM_LOSS_BT, 0.05);
    int rc = solve(&cfg, &p, "dup", &world, 0, w, &res, NULL);
    ok(rc == 0 && res.converged && res.regularized == 0, "duplicated features, lambda 0.05: "
       "converges without regularising (%d steps)", res.iters);
    is_double_rel(w[3], w[2], 1e-5, "lambda > 0: the twin columns get equal weights");

    newton_config(&cfg, BTRM_LOSS_BT, 0.0);
    btrm_newton_result res0, resq;
    rc = solve(&cfg, &p, "dup", &world, 0, w, &res0, NULL);
    ok(rc == 0 && res0.regularized > 0, "lambda 0: the singular Hessian is detected and "
       "shifted (reported; %d of %d steps)", res0.regularized, res0.iters);
    ok(res0.grad_norm <= 1e-6 * res0.grad_norm0, "lambda 0: the gradient still vanishes "
       "(%.2e of the initial)", res0.grad_norm / res0.grad_norm0);
    rc = solve(&cfg, &q, "nodup", &world, 0, v, &resq, NULL);
    is_double_rel(res0.loss, resq.loss, 1e-9, "lambda 0: the same minimum loss as without "
                  "the twin column");
    is_double_rel((double)w[2] + w[3], v[2], 1e-4, "lambda 0: the twins' weights sum to the "
                  "merged column's weight");
    problem_free(&p);
    problem_free(&q);
}

/* The ScaLAPACK glue against serial sums: the Gram matrix in every layout,
 * the Cholesky solve, and pdsyevd's eigenpairs with the checked workspace. */
static void test_grid(int dim, const int *blocks, int n_blocks)
{
    const int n = 23;
    btrm_grid g;
    int rc = btrm_grid_init(&g, &world);
    is_int(rc, 0, "BLACS grid %d x %d on %d rank(s)", g.nprow, g.npcol, world.size);
    if (rc)
        return;
    double *z = calloc((size_t)n * dim, sizeof *z), *s = calloc(n, sizeof *s);
    btrm_rng rng;
    btrm_rng_seed(&rng, 99, 1);
    for (int i = 0; i < n * dim; i++)
        z[i] = btrm_rng_normal(&rng);
    for (int i = 0; i < n; i++)
        s[i] = 0.1 + btrm_rng_uniform(&rng);
    double *want = calloc((size_t)dim * dim, sizeof *want);
    for (int a = 0; a < dim; a++)
        for (int b = 0; b < dim; b++) {
            for (int i = 0; i < n; i++)
                want[a * dim + b] += z[i * dim + a] * s[i] * z[i * dim + b] / n;
            want[a * dim + b] += a == b ? 0.5 : 0.0;
        }
    int64_t first, count;
    btrm_comm_block(n, world.size, world.rank, &first, &count);
    double *full = calloc((size_t)dim * dim, sizeof *full), *b = calloc(dim, sizeof *b),
           *x = calloc(dim, sizeof *x);
    for (int j = 0; j < dim; j++)
        b[j] = 1.0 + j;
    for (int k = 0; k < n_blocks; k++) {
        int nb = blocks[k];
        btrm_dmatrix h, rhs;
        btrm_gram_ws ws;
        double max_diag = 0;
        rc = btrm_dmatrix_init(&h, &g, dim, dim, nb);
        rc = rc ? rc : btrm_dmatrix_init(&rhs, &g, dim, 1, nb);
        rc = rc ? rc : btrm_gram_ws_init(&ws, &g, dim, nb, count);
        rc = rc ? rc : btrm_grid_gram(&g, &ws, z + first * dim, count, s + first, 1.0 / n, 0.5, &h,
                                      &max_diag);
        rc = rc ? rc : btrm_grid_gather_columns(&g, &h, 0, dim, full);
        double err = 0, dmax = 0;
        for (int a = 0; a < dim; a++) {
            dmax = fmax(dmax, want[a * dim + a]);
            for (int c = a; c < dim; c++) /* lower triangle: rows c >= column a */
                err = fmax(err, fabs(full[a * dim + c] - want[a * dim + c]));
        }
        ok(rc == 0 && err < 1e-14, "D = %d, block %d: the Gram matrix's lower triangle = the "
           "serial sum (max error %.1e)", dim, nb, err);
        is_double_rel(max_diag, dmax, 1e-14, "D = %d, block %d: its largest diagonal entry", dim,
                      nb);
        int info = -1;
        double lmin = 0, lmax = 0;
        rc = rc ? rc : btrm_grid_posv(&g, &h, &rhs, b, x, &info, &lmin, &lmax);
        double res = 0;
        for (int a = 0; a < dim; a++) {
            double r = -b[a];
            for (int c = 0; c < dim; c++)
                r += want[a * dim + c] * x[c];
            res = fmax(res, fabs(r));
        }
        res /= b[dim - 1]; /* relative to max |b| */
        ok(rc == 0 && info == 0 && res < 1e-13, "D = %d, block %d: pdposv's solution has "
           "relative residual %.1e", dim, nb, res);
        btrm_dmatrix_free(&h);
        btrm_dmatrix_free(&rhs);
        btrm_gram_ws_free(&ws);
    }
    free(z);
    free(s);
    free(want);
    free(full);
    free(b);
    free(x);
    btrm_grid_free(&g);
}

/* The optimum on all ranks (several block sizes) = on one rank. */
static void test_ranks(void)
{
    problem p;
    make_problem(&p, 257, 10, 17, 0.15, 1, -1);
    btrm_config cfg;
    newton_config(&cfg, BTRM_LOSS_NORMBT, 0.02);
    cfg.loss.margin = BTRM_MARGIN_DATA;
    float one[10], many[10];
    btrm_newton_result r1, rp;
    int rc = solve(&cfg, &p, "ranks", &world, 0, many, &rp, NULL); /* writes the file */
    int rc1 = solve(&cfg, &p, "ranks", &self, 0, one, &r1, NULL);
    ok(rc == 0 && rc1 == 0, "solves on MPI_COMM_SELF and on %d rank(s)", world.size);
    double d = rel_diff_ff(many, one, p.dim);
    ok(d <= 1e-6, "%d rank(s) vs 1: relative difference %.1e <= 1e-6", world.size, d);
    const int blocks[] = { 1, 3, 64 };
    for (size_t k = 0; k < sizeof blocks / sizeof *blocks; k++) {
        rc = solve(&cfg, &p, "ranks", &world, blocks[k], many, &rp, NULL);
        d = rel_diff_ff(many, one, p.dim);
        ok(rc == 0 && d <= 1e-6, "%d rank(s), block %d: relative difference %.1e <= 1e-6",
           world.size, blocks[k], d);
    }
    problem_free(&p);
}

static void test_errors(void)
{
    problem p;
    make_problem(&p, 20, 3, 1, 0.1, 0, -1);
    btrm_config cfg;
    float w[3];
    btrm_newton_result res;
    newton_config(&cfg, BTRM_LOSS_BT, 0.1);
    cfg.model.head = BTRM_HEAD_MLP;
    is_int(solve(&cfg, &p, "err", &world, 0, w, &res, NULL), BTRM_ECONFIG, "an mlp head is "
           "refused (BTRM_ECONFIG)");
    newton_config(&cfg, BTRM_LOSS_BT, 0.1);
    cfg.loss.center_rewards = 0.1;
    is_int(solve(&cfg, &p, "err", &world, 0, w, &res, NULL), BTRM_ECONFIG,
           "loss.center_rewards is refused (BTRM_ECONFIG)");
    newton_config(&cfg, BTRM_LOSS_BT, 0.1);
    cfg.loss.margin = BTRM_MARGIN_DATA;
    is_int(solve(&cfg, &p, "err", &world, 0, w, &res, NULL), BTRM_EDATA,
           "loss.margin data without /pairs/margin is refused (BTRM_EDATA)");
    like(btrm_error_msg(), "/pairs/margin", "the message names /pairs/margin");
    btrm_config loaded;
    const char *sets[] = { "optim.type=newton", "model.head=mlp", "model.hidden=[4]" };
    is_int(btrm_config_load(&loaded, NULL, sets, 3), BTRM_ECONFIG,
           "config: optim.type newton with an mlp head is a config error");
    const char *ok_sets[] = { "optim.type=newton", "optim.tol=1e-6", "optim.max_iter=7" };
    int rc = btrm_config_load(&loaded, NULL, ok_sets, 3);
    ok(rc == 0 && loaded.optim.type == BTRM_OPTIM_NEWTON && loaded.optim.tol == 1e-6 &&
       loaded.optim.max_iter == 7, "config: optim.type newton, optim.tol, optim.max_iter");
    btrm_config_defaults(&loaded);
    ok(loaded.optim.tol == 1e-8 && loaded.optim.max_iter == 50,
       "config: defaults optim.tol 1e-8, optim.max_iter 50");
    problem_free(&p);
}

int main(int argc, char **argv)
{
    test_mpi_begin(&argc, &argv, "newton");

    test_closed_form();
    test_bisection();
    test_gradient_descent();
    test_quadratic();
    test_rank_deficient();
    /* one panel (D = 11), and several panels of ~256 columns with partial blocks */
    test_grid(11, (const int[]){ 1, 2, 3, 4, 64 }, 5);
    test_grid(300, (const int[]){ 7, 64 }, 2);
    test_ranks();
    test_errors();

    return test_mpi_end();
}
