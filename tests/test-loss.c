/* test-loss.c: BT and NormBT losses: gradients against central differences
 * of the loss value, stability, the NormBT per-pair gradient norm (with the
 * head), the weight cap, ties and the running mean distance. */
#include "config.h"
#include "head.h"
#include "loss.h"
#include "rng.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 6 };

/* The batch loss scale * sum_i (omega_i l_i + c s_i^2) at the given rewards. */
static double batch_loss(const btrm_loss_params *lp, const float *rc, const float *rr,
                         const float *dist, const float *margin, double dbar, double scale)
{
    float gd[N], gs[N];
    btrm_loss_stats st = {0};
    btrm_loss_pairs(lp, N, rc, rr, dist, margin, dbar, scale, gd, gs, NULL, &st);
    return scale * st.loss_sum;
}

/* Checks dL/dr_c = g_diff + g_sum and dL/dr_r = -g_diff + g_sum for every pair
 * against central differences in the rewards (omega held by fixed dist). */
static void check_fd(const char *what, const btrm_loss_params *lp, int with_margin)
{
    float rc[N], rr[N], dist[N], margin[N], gd[N], gs[N];
    btrm_rng rng;
    btrm_rng_seed(&rng, 31, (uint64_t)lp->type * 7 + (uint64_t)with_margin);
    for (int i = 0; i < N; i++) {
        rc[i] = (float)(2.0 * btrm_rng_normal(&rng));
        rr[i] = (float)(2.0 * btrm_rng_normal(&rng));
        dist[i] = (float)(0.1 + 3.0 * btrm_rng_uniform(&rng));
        margin[i] = (float)(with_margin ? btrm_rng_uniform(&rng) : 0.0);
    }
    const double dbar = 1.3, scale = 1.0 / 16;
    btrm_loss_stats st = {0};
    btrm_loss_pairs(lp, N, rc, rr, dist, with_margin ? margin : NULL, dbar, scale, gd, gs, NULL,
                    &st);
    double err = 0, gmax = 0;
    for (int i = 0; i < N; i++)
        for (int side = 0; side < 2; side++) {
            float *r = side == 0 ? rc : rr;
            const float r0 = r[i], h = 1e-3f, rp = r0 + h, rm = r0 - h;
            r[i] = rp;
            double lp_ = batch_loss(lp, rc, rr, dist, with_margin ? margin : NULL, dbar, scale);
            r[i] = rm;
            double lm_ = batch_loss(lp, rc, rr, dist, with_margin ? margin : NULL, dbar, scale);
            r[i] = r0;
            double fd = (lp_ - lm_) / ((double)rp - (double)rm);
            double g = side == 0 ? (double)gd[i] + gs[i] : -(double)gd[i] + gs[i];
            err = fmax(err, fabs(fd - g));
            gmax = fmax(gmax, fabs(g));
        }
    diag("%s: max |finite difference - gradient| / max|g| = %.2e", what, err / gmax);
    ok(err <= 1e-5 * gmax, "%s: g_diff, g_sum match central differences of the loss", what);
}

static void test_gradients(void)
{
    btrm_loss_params bt = {BTRM_LOSS_BT, 1e-6, 0, 0};
    btrm_loss_params nbt = {BTRM_LOSS_NORMBT, 1e-6, 0, 0};
    btrm_loss_params nbt_cap = {BTRM_LOSS_NORMBT, 1e-6, 2.0, 0};
    btrm_loss_params bt_c = {BTRM_LOSS_BT, 1e-6, 0, 0.05};
    btrm_loss_params nbt_c = {BTRM_LOSS_NORMBT, 1e-6, 0, 0.05};
    check_fd("bt", &bt, 0);
    check_fd("bt with margin", &bt, 1);
    check_fd("normbt", &nbt, 0);
    check_fd("normbt with margin", &nbt, 1);
    check_fd("normbt with max_weight 2", &nbt_cap, 0);
    check_fd("bt with center_rewards", &bt_c, 0);
    check_fd("normbt with center_rewards and margin", &nbt_c, 1);
}

static void test_values(void)
{
    is_double_rel(btrm_softplus(0.0), log(2.0), 1e-15, "softplus(0) = ln 2");
    is_double_rel(btrm_softplus(1e4), 1e4, 1e-15, "softplus(1e4) = 1e4");
    ok(btrm_softplus(-1e4) == 0.0, "softplus(-1e4) = 0 (underflows, no NaN)");
    is_double_rel(btrm_softplus(-30.0), exp(-30.0), 1e-12, "softplus(-30) = e^-30 to 1e-12");
    is_double_rel(btrm_softplus(30.0), 30.0 + exp(-30.0), 1e-15, "softplus(30) = 30 + e^-30");
    ok(btrm_sigmoid(1e4) == 1.0 && btrm_sigmoid(-1e4) == 0.0 && btrm_sigmoid(0) == 0.5,
       "sigmoid(+-1e4) = 1, 0 and sigmoid(0) = 1/2");
    is_double_rel(btrm_sigmoid(-40.0), exp(-40.0) / (1 + exp(-40.0)), 1e-14,
                  "sigmoid(-40) keeps full relative precision");

    /* huge reward differences: finite loss and gradients */
    btrm_loss_params bt = {BTRM_LOSS_BT, 1e-6, 0, 0};
    float rc[2] = {1e4f, -1e4f}, rr[2] = {0, 0}, gd[2], gs[2];
    btrm_loss_stats st = {0};
    btrm_loss_pairs(&bt, 2, rc, rr, NULL, NULL, 0, 1.0, gd, gs, NULL, &st);
    ok(isfinite(st.loss_sum) && isfinite(gd[0]) && isfinite(gd[1]),
       "dr = +-1e4: finite loss and gradients");
    is_double_rel(st.loss_sum, 1e4, 1e-12, "dr = +1e4 loses ~0, dr = -1e4 loses ~1e4");
    ok(gd[0] == 0.0f && gd[1] == -1.0f, "g_diff = -sigmoid(-dr): 0 at dr = 1e4, -1 at -1e4");
    ok(gs[0] == 0.0f && gs[1] == 0.0f, "g_sum exactly 0 without center_rewards");

    /* one bt pair by hand: dr = 1, margin 0.25, scale 0.5 */
    float c1 = 1.5f, r1 = 0.5f, m1 = 0.25f, g1, s1, w1;
    btrm_loss_stats one = {0};
    btrm_loss_pairs(&bt, 1, &c1, &r1, NULL, &m1, 0, 0.5, &g1, &s1, &w1, &one);
    is_double_rel(one.loss_sum, log1p(exp(-0.75)), 1e-15, "bt: l = softplus(-(dr - m))");
    is_double_rel(g1, -0.5 / (1 + exp(0.75)), 1e-7, "bt: g_diff = -scale sigmoid(-(dr - m))");
    ok(w1 == 1.0f && one.weight_sum == 1.0 && one.weight_max == 1.0, "bt: omega = 1");
    ok(one.margin_sum == 1.0 && one.correct == 1.0, "margin_sum = dr, correct counts dr > 0");

    /* center_rewards by hand: c (r_c + r_r)^2 and g_sum = scale 2c (r_c + r_r) */
    btrm_loss_params btc = {BTRM_LOSS_BT, 1e-6, 0, 0.1};
    btrm_loss_stats cs = {0};
    btrm_loss_pairs(&btc, 1, &c1, &r1, NULL, NULL, 0, 0.5, &g1, &s1, NULL, &cs);
    is_double_rel(cs.loss_sum, log1p(exp(-1.0)) + 0.1 * 4.0, 1e-15,
                  "center: loss adds c (r_c + r_r)^2");
    is_double_rel(s1, 0.5 * 2 * 0.1 * 2.0, 1e-7, "center: g_sum = scale 2c (r_c + r_r)");
}

static void test_normbt_weights(void)
{
    btrm_loss_params nbt = {BTRM_LOSS_NORMBT, 1e-3, 0, 0};
    is_double_rel(btrm_loss_weight(&nbt, 0.5, 2.0), 4.0, 1e-15, "omega = dbar / d");
    is_double_rel(btrm_loss_weight(&nbt, 1e-5, 2.0), 2e3, 1e-12, "omega = dbar / eps when d < eps");
    btrm_loss_params bt = {BTRM_LOSS_BT, 1e-3, 0, 0};
    ok(btrm_loss_weight(&bt, 0.5, 2.0) == 1.0, "bt: omega = 1");

    btrm_loss_params cap = {BTRM_LOSS_NORMBT, 1e-6, 5.0, 0};
    float rc[3] = {1, 2, 3}, rr[3] = {0, 2, 4}, dist[3] = {1e-3f, 1.0f, 0.5f}, gd[3], gs[3], w[3];
    btrm_loss_stats st = {0};
    btrm_loss_pairs(&cap, 3, rc, rr, dist, NULL, 2.0, 1.0, gd, gs, w, &st);
    ok(w[0] == 5.0f && w[1] == 2.0f && w[2] == 4.0f,
       "max_weight 5 caps dbar/d = 2000 to 5 and leaves 2 and 4 (got %g %g %g)", w[0], w[1],
       w[2]);
    is_double_rel(st.weight_max, 5.0, 1e-15, "weight_max = the cap");
    is_double_rel(st.weight_sum, 11.0, 1e-15, "weight_sum = 5 + 2 + 4");
    is_double_rel(st.correct, 1.5, 1e-15, "correct: 1 win, 1 tie (1/2), 1 loss = 1.5");
    is_double_rel(st.margin_sum, 0.0, 1e-15, "margin_sum = 1 + 0 - 1 = 0");
    is_double_rel(st.loss_sum, 5 * log1p(exp(-1.0)) + 2 * log(2.0) + 4 * log1p(exp(1.0)),
                  1e-14, "loss_sum = sum omega_i softplus(-dr_i)");
    is_double_rel(st.bt_loss_sum, log1p(exp(-1.0)) + log(2.0) + log1p(exp(1.0)), 1e-14,
                  "bt_loss_sum = sum softplus(-dr_i), unweighted");
    ok(st.near_floor == 1.0, "near_floor counts d = 1e-3 < 0.01 dbar = 0.02 only (got %g)",
       st.near_floor);
    is_double_rel(gd[1], -2.0 * 0.5, 1e-7, "tie: g_diff = -omega / 2");

    is_double_rel(btrm_loss_dbar_update(123.0, 1, 2.5, 0.9), 2.5, 1e-15, "dbar_1 = mu_1");
    is_double_rel(btrm_loss_dbar_update(2.0, 0, 4.0, 0.9), 0.9 * 2.0 + 0.1 * 4.0, 1e-15,
                  "dbar_t = ema dbar_{t-1} + (1 - ema) mu_t");
}

/* NormBT's point: for a linear head the out.weight gradient of pair i is
 * g_diff_i (h_c - h_r), of norm scale omega_i sigmoid(-dr) d_i = scale
 * sigmoid(-dr) dbar for every pair, while bt's is scale sigmoid(-dr) d_i. */
static void test_normbt_gradient_norm(void)
{
    const int D = 16;
    btrm_head hd;
    btrm_head_ws ws;
    btrm_head_init(&hd, BTRM_HEAD_LINEAR, 0, D, NULL, 0);
    btrm_head_ws_init(&ws, &hd, 2);
    float p[17], x[32], grad[17], dist, gd, gs, rc, rr;
    btrm_head_init_params(&hd, p, 8);
    btrm_rng rng;
    btrm_rng_seed(&rng, 99, 1);
    const double dbar = 0.7, scale = 0.125;
    btrm_loss_params nbt = {BTRM_LOSS_NORMBT, 1e-6, 0, 0};
    btrm_loss_params bt = {BTRM_LOSS_BT, 1e-6, 0, 0};
    const double dists[5] = {1e-3, 0.05, 0.7, 4.0, 90.0};
    double err_n = 0, err_b = 0;
    for (int j = 0; j < 5; j++) {
        /* a pair at distance dists[j] around a random point */
        double dir[16], nrm = 0;
        for (int k = 0; k < D; k++) {
            dir[k] = btrm_rng_normal(&rng);
            nrm += dir[k] * dir[k];
        }
        nrm = sqrt(nrm);
        for (int k = 0; k < D; k++) {
            x[D + k] = (float)btrm_rng_normal(&rng);
            x[k] = (float)(x[D + k] + dists[j] * dir[k] / nrm);
        }
        for (int which = 0; which < 2; which++) {
            const btrm_loss_params *lp = which == 0 ? &nbt : &bt;
            btrm_head_forward(&hd, p, x, 2, &ws);
            btrm_head_pair_distance(&hd, &ws, x, 1, &dist);
            rc = ws.reward[0];
            rr = ws.reward[1];
            btrm_loss_stats st = {0};
            btrm_loss_pairs(lp, 1, &rc, &rr, &dist, NULL, dbar, scale, &gd, &gs, NULL, &st);
            memset(grad, 0, sizeof grad);
            btrm_head_pair_backward(&hd, p, x, 1, &gd, &gs, &ws, grad);
            double g2 = 0;
            for (int k = 0; k < D; k++)
                g2 += (double)grad[k] * grad[k];
            double norm = sqrt(g2) / scale;
            double sig = btrm_sigmoid(-((double)rc - rr));
            if (which == 0)
                err_n = fmax(err_n, fabs(norm - sig * dbar) / (sig * dbar));
            else
                err_b = fmax(err_b, fabs(norm - sig * dist) / (sig * dist));
        }
    }
    diag("per-pair ||grad out.weight|| / scale: normbt rel err vs sigmoid(-dr) dbar %.2e, "
         "bt rel err vs sigmoid(-dr) d %.2e",
         err_n, err_b);
    ok(err_n < 1e-5, "normbt: per-pair gradient norm = sigmoid(-dr) dbar for d from 1e-3 to 90");
    ok(err_b < 1e-5, "bt: per-pair gradient norm = sigmoid(-dr) d");
    btrm_head_ws_free(&ws);
}

int main(void)
{
    plan(40);
    test_gradients();
    test_values();
    test_normbt_weights();
    test_normbt_gradient_norm();
    return done_testing();
}
