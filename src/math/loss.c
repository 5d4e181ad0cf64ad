/* loss.c: Bradley-Terry and NormBT pair losses (see loss.h, docs/training.md). */
#include "loss.h"


#include <assert.h>
#include <math.h>

double btrm_softplus(double x)
{
    /* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large |x|. */
    return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

double btrm_sigmoid(double x)
{
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

double btrm_loss_weight(const btrm_loss_params *lp, double dist, double dbar)
{
    if (lp->type != BTRM_LOSS_NORMBT)
        return 1.0;
    /* omega = dbar / max(d, eps), capped at max_weight when max_weight > 0 */
    double omega = dbar / (dist > lp->eps ? dist : lp->eps);
    if (lp->max_weight > 0.0 && omega > lp->max_weight)
        omega = lp->max_weight;
    return omega;
}

double btrm_loss_dbar_update(double dbar_prev, int first, double mu, double ema)
{
    return first ? mu : ema * dbar_prev + (1.0 - ema) * mu;
}

void btrm_loss_pairs(const btrm_loss_params *lp, int n, const float *r_c,
                     const float *r_r, const float *dist, const float *margin,
                     double dbar, double scale, float *g_diff, float *g_sum,
                     float *weights, btrm_loss_stats *stats)
{
    assert(lp->type != BTRM_LOSS_NORMBT || dist);
    const double c = lp->center;
    for (int i = 0; i < n; i++) {
        double dr = (double)r_c[i] - (double)r_r[i];
        double z = dr - (margin ? (double)margin[i] : 0.0);
        double omega = btrm_loss_weight(lp, dist ? (double)dist[i] : 0.0, dbar);
        double s = (double)r_c[i] + (double)r_r[i];
        /* l = omega softplus(-z) + c s^2;  dl/dz = -omega sigmoid(-z);
         * dl/d(r_c + r_r) = 2 c s  (omega, dbar held constant) */
        double bt = btrm_softplus(-z);
        stats->loss_sum += omega * bt + (c != 0.0 ? c * s * s : 0.0);
        stats->bt_loss_sum += bt;
        if (dist && (double)dist[i] < BTRM_LOSS_NEAR_FLOOR * dbar)
            stats->near_floor += 1.0;
        g_diff[i] = (float)(scale * omega * -btrm_sigmoid(-z));
        g_sum[i] = c != 0.0 ? (float)(scale * 2.0 * c * s) : 0.0f; /* exactly 0 */
        if (weights)
            weights[i] = (float)omega;
        stats->correct += dr > 0.0 ? 1.0 : dr == 0.0 ? 0.5 : 0.0;
        stats->weight_sum += omega;
        if (omega > stats->weight_max)
            stats->weight_max = omega;
        stats->margin_sum += dr;
    }
}
