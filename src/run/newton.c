/* newton.c: full-batch Newton's method with an Armijo line search for a
 * linear head (see newton.h and docs/newton.md).
 *
 * Rank p holds Z_p = the rows z_i = x_c,i - x_r,i (double) of its contiguous
 * block of pairs (btrm_comm_block), built once from the node-shared features.
 * Per iteration:
 *   1. u = Z_p w - m, the local loss sum and Z_p^T c (c_i = -omega_i
 *      sigma(-u_i) / N); one all-reduce of [gradient | loss] (D + 1 doubles);
 *   2. s_i = omega_i sigma(u_i) sigma(-u_i); H = (1/N) sum_p Z_p^T diag(s) Z_p
 *      + lambda I formed block column by block column straight into the
 *      block-cyclic layout (btrm_grid_gram: local dgemm, then one
 *      MPI_Reduce_scatter per block column into the owners);
 *   3. H p = -g by pdposv; p replicated by one all-reduce (D doubles);
 *   4. v = Z_p p; the loss along w + t p costs O(N/P) per trial and one
 *      all-reduce of a double; t = 1, 1/2, ... until Armijo's condition holds.
 * Every decision (step length, stopping, shifts) is taken from all-reduced
 * values, so all ranks take the same one. */
#include "newton.h"

#include "error.h"
#include "gemm.h"
#include "log.h"
#include "loss.h"
#include "scalapack.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ARMIJO_C 1e-4        /* sufficient decrease: f(w + tp) <= f + c t g.p */
#define MAX_HALVINGS 40      /* t down to 2^-40 */
/* Below this predicted decrease (relative to the loss) the loss cannot
 * resolve Armijo's test; the iterate is deep in Newton's quadratic region and
 * the full step is taken. */
#define ROUNDING_DECREASE 1e-10
/* (min L_kk / max L_kk)^2, a cheap estimate of 1 / cond(H), below which H is
 * treated as singular and shifted. */
#define RCOND_MIN 1e-12
#define SHIFT_START 1e-10    /* first shift, times the largest diagonal entry of H */
#define SHIFT_GROWTH 100.0

typedef struct solver {
    const btrm_config *cfg;
    const btrm_comm *c;
    int dim;
    int64_t n_pairs, first, count;
    double lambda, inv_n;
    double *z;                   /* [count, dim] this rank's z_i */
    double *omega, *margin;      /* [count] (margin NULL: none) */
    double *u, *v, *s, *coef;    /* [count] */
    double *w, *g, *p, *trial;   /* [dim] */
    double *reduce;              /* [dim + 2]: gradient | loss | correct pairs */
    btrm_grid grid;
    int have_grid;
    btrm_dmatrix h, rhs;
    btrm_gram_ws ws;
} solver;

static double dot(const double *a, const double *b, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* The pairs' difference rows, distances, d-bar and weights. */
static int build_rows(solver *sv, const btrm_pairs *data, double *dbar)
{
    const btrm_config *cfg = sv->cfg;
    const size_t dim = (size_t)sv->dim;
    double dist_sum = 0.0;
    float *xc = NULL;
    int rc = BTRM_MALLOC(xc, 2 * dim);
    if (rc)
        return rc;
    float *xr = xc + dim;
    for (int64_t k = 0; k < sv->count; k++) {
        int64_t pair = sv->first + k;
        btrm_pairs_feature_row(data, data->chosen[pair], xc, BTRM_DTYPE_F32);
        btrm_pairs_feature_row(data, data->rejected[pair], xr, BTRM_DTYPE_F32);
        double *zk = sv->z + (size_t)k * dim, sq = 0.0;
        for (size_t j = 0; j < dim; j++) {
            zk[j] = (double)xc[j] - (double)xr[j]; /* exact: two floats */
            sq += zk[j] * zk[j];
        }
        sv->omega[k] = sqrt(sq); /* d_i for now */
        dist_sum += sv->omega[k];
        if (sv->margin)
            sv->margin[k] = data->margin[pair];
    }
    free(xc);
    rc = btrm_comm_allreduce_sum_f64(sv->c, &dist_sum, 1);
    if (rc)
        return rc;
    *dbar = dist_sum / (double)sv->n_pairs;
    btrm_loss_params lp = btrm_config_loss_params(cfg);
    for (int64_t k = 0; k < sv->count; k++)
        sv->omega[k] = btrm_loss_weight(&lp, sv->omega[k], *dbar);
    return 0;
}

/* f(w), g(w) and the accuracy; leaves u = Z w - m for the Hessian and the
 * line search. */
static int evaluate(solver *sv, const double *w, double *loss, double *g, double *acc)
{
    const int dim = sv->dim, n = (int)sv->count;
    double local = 0.0, correct = 0.0;
    if (n > 0) {
        /* u[n] = Z[n, D] w[D] */
        btrm_gemm_f64(0, 0, n, 1, dim, 1.0, sv->z, dim, w, 1, 0.0, sv->u, 1);
        for (int i = 0; i < n; i++) {
            double dr = sv->u[i]; /* r_c - r_r */
            correct += dr > 0.0 ? 1.0 : dr == 0.0 ? 0.5 : 0.0;
            if (sv->margin)
                sv->u[i] -= sv->margin[i];
            local += sv->omega[i] * btrm_softplus(-sv->u[i]);
            sv->coef[i] = -sv->omega[i] * btrm_sigmoid(-sv->u[i]) * sv->inv_n;
        }
        /* reduce[D] = Z[n, D]^T coef[n] */
        btrm_gemm_f64(1, 0, dim, 1, n, 1.0, sv->z, dim, sv->coef, 1, 0.0, sv->reduce, 1);
    } else {
        memset(sv->reduce, 0, (size_t)dim * sizeof *sv->reduce);
    }
    sv->reduce[dim] = local;
    sv->reduce[dim + 1] = correct;
    int rc = btrm_comm_allreduce_sum_f64(sv->c, sv->reduce, (size_t)dim + 2);
    if (rc)
        return rc;
    for (int j = 0; j < dim; j++)
        g[j] = sv->reduce[j] + sv->lambda * w[j];
    *loss = sv->reduce[dim] * sv->inv_n + 0.5 * sv->lambda * dot(w, w, dim);
    *acc = sv->reduce[dim + 1] * sv->inv_n;
    return 0;
}

/* f(w + t p), with u = Z w - m and v = Z p already known. */
static int loss_along(solver *sv, double t, double *loss)
{
    const int dim = sv->dim;
    double local = 0.0;
    for (int64_t i = 0; i < sv->count; i++)
        local += sv->omega[i] * btrm_softplus(-(sv->u[i] + t * sv->v[i]));
    int rc = btrm_comm_allreduce_sum_f64(sv->c, &local, 1);
    if (rc)
        return rc;
    for (int j = 0; j < dim; j++)
        sv->trial[j] = sv->w[j] + t * sv->p[j];
    *loss = local * sv->inv_n + 0.5 * sv->lambda * dot(sv->trial, sv->trial, dim);
    return 0;
}

/* Solves (H + shift I) p = -g, forming H; raises *shift when H is not
 * positive definite or is singular to working precision. Adds the seconds
 * spent to *t_form and *t_factor. */
static int newton_direction(solver *sv, const double *g, double *shift, int *warned,
                            double *t_form, double *t_factor)
{
    const int dim = sv->dim;
    for (int64_t i = 0; i < sv->count; i++) {
        double sp = btrm_sigmoid(sv->u[i]);
        sv->s[i] = sv->omega[i] * sp * (1.0 - sp);
    }
    for (int j = 0; j < dim; j++)
        sv->trial[j] = -g[j];
    for (;;) {
        double t0 = btrm_comm_wtime(), max_diag = 0.0;
        int rc = btrm_grid_gram(&sv->grid, &sv->ws, sv->z, sv->count, sv->s, sv->inv_n,
                                sv->lambda + *shift, &sv->h, &max_diag);
        double t1 = btrm_comm_wtime();
        *t_form += t1 - t0;
        if (rc)
            return rc;
        int info = 0;
        double lmin = 0.0, lmax = 0.0;
        rc = btrm_grid_posv(&sv->grid, &sv->h, &sv->rhs, sv->trial, sv->p, &info, &lmin, &lmax);
        *t_factor += btrm_comm_wtime() - t1;
        if (rc)
            return rc;
        double rcond = info == 0 && lmax > 0.0 ? (lmin / lmax) * (lmin / lmax) : 0.0;
        if (info == 0 && rcond >= RCOND_MIN)
            return 0;
        if (!(max_diag > 0.0) || !isfinite(max_diag))
            return btrm_error_set(BTRM_EDATA, "newton: the Hessian's largest diagonal entry is "
                                  "%g: all pairs have z = x_c - x_r = 0 or the loss overflowed",
                                  max_diag);
        double next = *shift == 0.0 ? SHIFT_START * max_diag : *shift * SHIFT_GROWTH;
        if (next > max_diag)
            return btrm_error_set(BTRM_EIO, "newton: cannot factorise the Hessian even with "
                                  "%g added to its diagonal (largest entry %g)", *shift,
                                  max_diag);
        if (!*warned) {
            const char *why = info > 0 ? "is not positive definite (Cholesky failed)"
                                       : "is singular to working precision";
            if (sv->lambda == 0.0)
                btrm_log_warn("newton: the Hessian %s (1/cond ~ %.1e) with optim.weight_decay "
                              "= 0: Z = x_c - x_r has rank < D (duplicated or collinear "
                              "features) or the data are separable, so the minimiser is not "
                              "unique or not finite. Solving with H + %.3g I (the step "
                              "then has no component in H's null space); set "
                              "optim.weight_decay > 0 for a unique optimum.",
                              why, rcond, next);
            else
                btrm_log_warn("newton: the Hessian %s (1/cond ~ %.1e) although "
                              "optim.weight_decay = %g; solving with H + %.3g I",
                              why, rcond, sv->lambda, next);
            *warned = 1;
        }
        *shift = next;
    }
}

static void solver_free(solver *sv)
{
    BTRM_FREE(sv->z, sv->omega, sv->margin, sv->u, sv->v, sv->s, sv->coef, sv->w, sv->g, sv->p,
              sv->trial, sv->reduce);
    btrm_dmatrix_free(&sv->h);
    btrm_dmatrix_free(&sv->rhs);
    btrm_gram_ws_free(&sv->ws);
    if (sv->have_grid)
        btrm_grid_free(&sv->grid);
}

static int check_inputs(const btrm_config *cfg, const btrm_pairs *data)
{
    if (cfg->model.head != BTRM_HEAD_LINEAR)
        return btrm_error_set(BTRM_ECONFIG, "optim.type 'newton' needs model.head 'linear'");
    if (cfg->loss.center_rewards != 0.0)
        return btrm_error_set(BTRM_ECONFIG, "optim.type 'newton' does not support "
                              "loss.center_rewards (its penalty involves the bias and "
                              "x_c + x_r); set it to 0");
    if (!data->features || data->dim < 1)
        return btrm_error_set(BTRM_EDATA, "%s: newton needs the features (open the store "
                              "with BTRM_PAIRS_FEATURES)", data->path);
    if (data->n_pairs < 1)
        return btrm_error_set(BTRM_EDATA, "%s: no pairs to train on", data->path);
    if (cfg->loss.margin == BTRM_MARGIN_DATA && !data->margin)
        return btrm_error_set(BTRM_EDATA, "%s: loss.margin is 'data' but the file has no "
                              "/pairs/margin", data->path);
    if (data->dim > (1 << 26) || data->n_pairs > INT32_MAX)
        return btrm_error_set(BTRM_EDATA, "%s: %lld pairs of dim %d is beyond newton's "
                              "limits", data->path, (long long)data->n_pairs, data->dim);
    return 0;
}

int btrm_newton_solve(const btrm_config *cfg, const btrm_pairs *data, const btrm_comm *c,
                      float *w, double *dbar, btrm_newton_log_fn log, void *ctx)
{
    return btrm_newton_solve_opts(cfg, data, c, w, dbar, log, ctx, NULL);
}

int btrm_newton_solve_opts(const btrm_config *cfg, const btrm_pairs *data, const btrm_comm *c,
                           float *w_io, double *dbar, btrm_newton_log_fn log, void *ctx,
                           const btrm_newton_opts *opts)
{
    double t_start = btrm_comm_wtime();
    solver sv;
    memset(&sv, 0, sizeof sv);
    btrm_newton_result res = { 0 };
    sv.cfg = cfg;
    sv.c = c;
    /* the same on every rank (config and pair arrays are replicated) */
    int rc = btrm_comm_agree(c, check_inputs(cfg, data));
    if (rc)
        goto fail;
    const int dim = sv.dim = data->dim;
    sv.n_pairs = data->n_pairs;
    sv.inv_n = 1.0 / (double)sv.n_pairs;
    sv.lambda = cfg->optim.weight_decay;
    btrm_comm_block(sv.n_pairs, c->size, c->rank, &sv.first, &sv.count);
    size_t rows = (size_t)(sv.count > 0 ? sv.count : 1);
    rc = BTRM_MALLOC(sv.z, rows * (size_t)dim);
    if (!rc)
        rc = BTRM_MALLOC(sv.omega, rows);
    if (!rc && cfg->loss.margin == BTRM_MARGIN_DATA)
        rc = BTRM_MALLOC(sv.margin, rows);
    if (!rc)
        rc = BTRM_MALLOC(sv.u, rows);
    if (!rc)
        rc = BTRM_MALLOC(sv.v, rows);
    if (!rc)
        rc = BTRM_MALLOC(sv.s, rows);
    if (!rc)
        rc = BTRM_MALLOC(sv.coef, rows);
    if (!rc)
        rc = BTRM_MALLOC(sv.w, dim);
    if (!rc)
        rc = BTRM_MALLOC(sv.g, dim);
    if (!rc)
        rc = BTRM_MALLOC(sv.p, dim);
    if (!rc)
        rc = BTRM_MALLOC(sv.trial, dim);
    if (!rc)
        rc = BTRM_MALLOC(sv.reduce, (size_t)dim + 2);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    rc = btrm_grid_init(&sv.grid, c);
    if (rc)
        goto fail;
    sv.have_grid = 1;
    int nb = opts && opts->block > 0 ? opts->block : btrm_grid_block(&sv.grid, dim);
    rc = btrm_dmatrix_init(&sv.h, &sv.grid, dim, dim, nb);
    if (!rc)
        rc = btrm_dmatrix_init(&sv.rhs, &sv.grid, dim, 1, nb);
    if (!rc)
        rc = btrm_gram_ws_init(&sv.ws, &sv.grid, dim, nb, sv.count);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    rc = btrm_comm_agree(c, build_rows(&sv, data, dbar));
    if (rc)
        goto fail;
    for (int j = 0; j < dim; j++)
        sv.w[j] = w_io[j];

    double loss = 0.0, acc = 0.0;
    rc = btrm_comm_agree(c, evaluate(&sv, sv.w, &loss, sv.g, &acc));
    if (rc)
        goto fail;
    double gnorm = sqrt(dot(sv.g, sv.g, dim));
    res.grad_norm0 = gnorm;
    btrm_newton_iter it = { .iter = 0, .loss = loss, .grad_norm = gnorm, .step = 0.0,
                            .acc = acc, .t_other = btrm_comm_wtime() - t_start };
    btrm_log_info("newton: %lld pairs, dim %d, %s, weight_decay %g, %d x %d grid, block %d; "
                  "loss %.6g, |g| %.3e", (long long)sv.n_pairs, dim,
                  btrm_config_enum_name("loss.type", cfg->loss.type), sv.lambda,
                  sv.grid.nprow, sv.grid.npcol, nb, loss, gnorm);
    if (log)
        log(ctx, &it);
    if (!isfinite(loss) || !isfinite(gnorm)) {
        rc = btrm_error_set(BTRM_EDATA, "newton: the initial loss (%g) or gradient norm (%g) "
                            "is not finite", loss, gnorm);
        goto fail;
    }
    const double target = cfg->optim.tol * gnorm;
    res.converged = gnorm <= target;
    double shift = 0.0;
    int warned = 0;
    for (int k = 1; k <= cfg->optim.max_iter && !res.converged; k++) {
        double t0 = btrm_comm_wtime(), t_form = 0.0, t_factor = 0.0;
        rc = newton_direction(&sv, sv.g, &shift, &warned, &t_form, &t_factor);
        rc = btrm_comm_agree(c, rc);
        if (rc)
            goto fail;
        if (shift > 0.0) /* sticky: a singular H stays singular */
            res.regularized++;

        /* Armijo backtracking along p (the loss is evaluated in O(N/P) per t) */
        double dg = dot(sv.g, sv.p, dim), step = 1.0, trial_loss = loss;
        if (!(dg < 0.0)) {
            btrm_log_warn("newton: step %d: the Newton direction is not a descent direction "
                          "(g.p = %g); stopping", k, dg);
            res.stalled = 1;
            break;
        }
        if (sv.count > 0)
            /* v[n] = Z[n, D] p[D] */
            btrm_gemm_f64(0, 0, (int)sv.count, 1, dim, 1.0, sv.z, dim, sv.p, 1, 0.0, sv.v, 1);
        int accepted = -dg <= ROUNDING_DECREASE * fabs(loss);
        for (int h = 0; !accepted && h <= MAX_HALVINGS; h++) {
            rc = btrm_comm_agree(c, loss_along(&sv, step, &trial_loss));
            if (rc)
                goto fail;
            if (trial_loss <= loss + ARMIJO_C * step * dg)
                accepted = 1;
            else
                step *= 0.5;
        }
        if (!accepted) {
            btrm_log_warn("newton: step %d: no step along the Newton direction decreases the "
                          "loss (|g| = %.3e): the rounding level; stopping", k, gnorm);
            res.stalled = 1;
            break;
        }
        for (int j = 0; j < dim; j++)
            sv.w[j] += step * sv.p[j];
        rc = btrm_comm_agree(c, evaluate(&sv, sv.w, &loss, sv.g, &acc));
        if (rc)
            goto fail;
        gnorm = sqrt(dot(sv.g, sv.g, dim));
        res.iters = k;
        double t_all = btrm_comm_wtime() - t0;
        it = (btrm_newton_iter){ .iter = k, .loss = loss, .grad_norm = gnorm, .step = step,
                                 .acc = acc, .t_form = t_form, .t_factor = t_factor,
                                 .t_other = t_all - t_form - t_factor, .shift = shift };
        btrm_log_info("newton %d: loss %.10g  |g| %.3e  step %g  (form %.3f s, factor %.3f s, "
                      "other %.3f s)", k, loss, gnorm, step, t_form, t_factor, it.t_other);
        if (log)
            log(ctx, &it);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            rc = btrm_error_set(BTRM_EDATA, "newton: step %d: the loss (%g) or gradient norm "
                                "(%g) is not finite", k, loss, gnorm);
            goto fail;
        }
        res.converged = gnorm <= target;
    }
    res.loss = loss;
    res.grad_norm = gnorm;
    if (res.converged)
        btrm_log_info("newton: converged in %d step%s: loss %.10g, |g| %.3e (%.1e of the "
                      "initial)", res.iters, res.iters == 1 ? "" : "s", loss, gnorm,
                      res.grad_norm0 > 0 ? gnorm / res.grad_norm0 : 0.0);
    else if (!res.stalled)
        btrm_log_warn("newton: not converged after optim.max_iter = %lld steps: |g| = %.3e, "
                      "%.1e of the initial (optim.tol %g)", (long long)cfg->optim.max_iter,
                      gnorm, res.grad_norm0 > 0 ? gnorm / res.grad_norm0 : 0.0,
                      cfg->optim.tol);
    for (int j = 0; j < dim; j++)
        w_io[j] = (float)sv.w[j];
fail:
    if (opts && opts->result)
        *opts->result = res;
    solver_free(&sv);
    return rc;
}
