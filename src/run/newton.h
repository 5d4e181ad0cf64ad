/* newton.h: full-batch Newton's method for a linear reward head
 * (`optim.type: newton`, docs/newton.md). Orchestrator: reads the features of
 * this rank's contiguous block of pairs (pairs), forms the Hessian in
 * ScaLAPACK's block-cyclic layout and solves with it (scalapack), reduces the
 * loss and gradient (comm).
 *
 * On fixed features the (Norm)BT objective of a linear head is convex:
 *
 *   L(w) = (1/N) sum_i omega_i softplus(m_i - w.z_i) + (lambda/2) ||w||^2
 *
 * with z_i = x_c,i - x_r,i (the bias cancels in r_c - r_r and stays at its
 * initial value), m_i the margins (loss.margin: data; else 0), lambda =
 * optim.weight_decay, omega_i = 1 (bt) or min(dbar / max(d_i, eps),
 * max_weight) (normbt, with d_i = ||z_i|| and dbar their mean over all N
 * pairs: constants, since the features are). With u_i = w.z_i - m_i:
 *
 *   g = -(1/N) sum_i omega_i sigma(-u_i) z_i + lambda w
 *   H =  (1/N) Z^T diag(s) Z + lambda I,   s_i = omega_i sigma(u_i) sigma(-u_i)
 *
 * Each iteration solves H p = -g (pdposv) and takes w + t p with the first t
 * in 1, 1/2, 1/4, ... that satisfies Armijo's condition. Work and memory per
 * rank: the rank's N/P rows of Z in double (8 N D / P bytes) and its part of
 * H (8 D^2 / P bytes); no rank holds the whole of Z or H. */
#ifndef BTRM_NEWTON_H
#define BTRM_NEWTON_H

#include "comm.h"
#include "config.h"
#include "pairs.h"

#include <stdint.h>

/* One iteration's record. Iteration 0 is the starting point (step 0, only
 * t_other: the first loss and gradient); iteration k >= 1 reports the loss
 * and gradient norm after the k-th Newton step. Times are this rank's wall
 * clock in seconds: t_form forms H (including a re-formation after a failed
 * factorisation), t_factor is pdposv (Cholesky and solve), t_other the rest
 * (loss and gradient, line search, gathering the step). */
typedef struct btrm_newton_iter {
    int iter;
    double loss, grad_norm, step;
    double acc;    /* training accuracy at the iterate: w.z_i > 0, ties 1/2 */
    double t_form, t_factor, t_other;
    double shift;  /* mu added to H's diagonal for this step (0: none, see docs) */
} btrm_newton_iter;

/* Called on every rank, collectively, after each iteration (the values are
 * the same on every rank except the times). */
typedef void (*btrm_newton_log_fn)(void *ctx, const btrm_newton_iter *it);

/* What a solve ended with (the same on every rank). */
typedef struct btrm_newton_result {
    int iters;            /* Newton steps taken */
    int converged;        /* ||g|| <= optim.tol ||g_0|| */
    int stalled;          /* the line search found no decrease: rounding level */
    int regularized;      /* steps solved with a shifted H (singular or indefinite) */
    double loss, grad_norm, grad_norm0;
} btrm_newton_result;

typedef struct btrm_newton_opts {
    int block;                    /* block size nb of H's layout; 0 = automatic */
    btrm_newton_result *result;   /* out, or NULL */
} btrm_newton_opts;

/* Collective over c. cfg: loss.* (type, margin, normbt.eps, max_weight),
 * optim.weight_decay, optim.tol, optim.max_iter; model.head must be linear and
 * loss.center_rewards 0 (BTRM_ECONFIG otherwise). data must be opened with
 * BTRM_PAIRS_FEATURES. w[D] (float, out.weight): in, the initial weights; out,
 * the optimum (rounded to float; the iteration runs in double). *dbar gets
 * the mean pair distance (NormBT's d-bar; also under bt). log may be NULL.
 * Every rank returns the same code. Not converging within optim.max_iter is
 * not an error (a warning; result->converged says so). */
int btrm_newton_solve(const btrm_config *cfg, const btrm_pairs *data, const btrm_comm *c,
                      float *w, double *dbar, btrm_newton_log_fn log, void *ctx);
/* The same, with options (tests, benchmarks); opts may be NULL. */
int btrm_newton_solve_opts(const btrm_config *cfg, const btrm_pairs *data, const btrm_comm *c,
                           float *w, double *dbar, btrm_newton_log_fn log, void *ctx,
                           const btrm_newton_opts *opts);

#endif
