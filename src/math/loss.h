/* loss.h: Bradley-Terry and NormBT pair losses. Math layer.
 *
 * Per pair i: dr_i = r_c - r_r, m_i the margin (0 unless loss.margin: data),
 *   bt:     l_i = softplus(-(dr_i - m_i)) = -log sigmoid(dr_i - m_i)
 *   normbt: l_i = omega_i * softplus(-(dr_i - m_i)),
 *           omega_i = min(dbar / max(d_i, eps), max_weight)  (max_weight 0 = none)
 *           omega_i and dbar are constants for differentiation.
 *   center_rewards c > 0 adds c * (r_c + r_r)^2 per pair (its batch mean).
 * The batch loss is the mean over the global batch: callers pass
 * scale = 1 / global_batch_size so that summed local gradients are exact. */
#ifndef BTRM_LOSS_H
#define BTRM_LOSS_H

#include "types.h"

#include <stdint.h>

typedef struct btrm_loss_params {
    int type;            /* BTRM_LOSS_BT | BTRM_LOSS_NORMBT */
    double eps;          /* normbt epsilon */
    double max_weight;   /* normbt omega cap, 0 = none */
    double center;       /* center_rewards coefficient */
} btrm_loss_params;

/* Sums over the local pairs (double), to be all-reduced by the caller. */
typedef struct btrm_loss_stats {
    double loss_sum;     /* sum of omega_i * l_i + c*(r_c + r_r)^2 */
    double correct;      /* pairs with dr > 0, ties count 1/2 */
    double weight_sum;   /* sum of omega_i (1 for bt) */
    double weight_max;   /* max of omega_i */
    double margin_sum;   /* sum of dr_i */
    double bt_loss_sum;  /* sum of softplus(-(dr_i - m_i)): the plain BT loss, whatever
                          * the loss type (comparable across losses) */
    double near_floor;   /* pairs with d_i < BTRM_LOSS_NEAR_FLOOR * dbar (when dist is
                          * given): representations that (nearly) coincide */
} btrm_loss_stats;

/* A pair counts as near the floor when its distance is below this fraction
 * of the running mean distance (NormBT would weigh it more than 100-fold). */
#define BTRM_LOSS_NEAR_FLOOR 1e-2

/* Numerically stable softplus(x) = log(1 + e^x) and sigmoid. */
double btrm_softplus(double x);
double btrm_sigmoid(double x);

/* omega_i for one pair (1 for bt). */
double btrm_loss_weight(const btrm_loss_params *lp, double dist, double dbar);

/* NormBT's running mean distance: dbar_1 = mu_1 (first = 1),
 * dbar_t = ema * dbar_{t-1} + (1 - ema) * mu_t. */
double btrm_loss_dbar_update(double dbar_prev, int first, double mu, double ema);

/* Forward and backward for n local pairs. margin may be NULL (all zero),
 * dist may be NULL for bt. Writes g_diff[i] = scale * dL_i/d(dr_i) and
 * g_sum[i] = scale * 2c (r_c + r_r) (all zero when c = 0), and adds the
 * unscaled sums to *stats (which the caller zeroes). weights may be NULL;
 * otherwise receives omega_i. */
void btrm_loss_pairs(const btrm_loss_params *lp, int n, const float *r_c,
                     const float *r_r, const float *dist, const float *margin,
                     double dbar, double scale, float *g_diff, float *g_sum,
                     float *weights, btrm_loss_stats *stats);

#endif
