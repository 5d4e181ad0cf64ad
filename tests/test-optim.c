/* test-optim.c: AdamW and SGD against an independent double implementation of
 * torch's update rules and against closed forms; clipping; schedules. */
#include "config.h"
#include "dtype.h"
#include "optim.h"
#include "rng.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* torch.optim.AdamW, written out in double from its documentation. */
static void ref_adamw(double *p, const double *g, double *m, double *v, int n, double lr,
                      double b1, double b2, double eps, double wd, int t)
{
    for (int i = 0; i < n; i++) {
        p[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        double mhat = m[i] / (1 - pow(b1, t));
        double denom = sqrt(v[i]) / sqrt(1 - pow(b2, t)) + eps;
        p[i] -= lr * mhat / denom;
    }
}

/* torch.optim.SGD (dampening 0, no Nesterov), in double. */
static void ref_sgd(double *p, const double *g, double *buf, int n, double lr, double mom,
                    double wd, int t)
{
    for (int i = 0; i < n; i++) {
        double d = g[i] + wd * p[i];
        if (mom != 0) {
            buf[i] = t == 1 ? d : mom * buf[i] + d;
            d = buf[i];
        }
        p[i] -= lr * d;
    }
}

enum { N = 37 }; /* two blocks of 16 and a tail of 5 */

static double max_rel(const float *got, const double *want, int n)
{
    double scale = 0, err = 0;
    for (int i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (int i = 0; i < n; i++)
        err = fmax(err, fabs(got[i] - want[i]));
    return err / scale;
}

static void test_adamw(void)
{
    float p[N], g[N], m[N] = {0}, v[N] = {0};
    double pd[N], gd[N], md[N] = {0}, vd[N] = {0};
    btrm_rng rng;
    btrm_rng_seed(&rng, 5, 1);
    for (int i = 0; i < N; i++) {
        p[i] = i >= 32 ? p[i - 32] : (float)btrm_rng_normal(&rng);
        pd[i] = p[i];
    }
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-6, wd = 0.1;
    double err_p = 0, err_m = 0, err_v = 0;
    for (int t = 1; t <= 6; t++) {
        for (int i = 0; i < N; i++) {
            /* elements 32..36 (the tail) repeat elements 0..4 (a block) */
            /* magnitudes from 1e-5 (where eps matters) to 3 */
            double mag = i % 4 == 0 ? 1e-5 : 1 + i % 3;
            g[i] = i >= 32 ? g[i - 32] : (float)(btrm_rng_normal(&rng) * mag);
            gd[i] = g[i];
        }
        btrm_optim_adamw(p, g, m, v, N, lr, b1, b2, eps, wd, t);
        ref_adamw(pd, gd, md, vd, N, lr, b1, b2, eps, wd, t);
        err_p = fmax(err_p, max_rel(p, pd, N));
        err_m = fmax(err_m, max_rel(m, md, N));
        err_v = fmax(err_v, max_rel(v, vd, N));
    }
    diag("adamw, 6 steps: max rel err p %.2e, exp_avg %.2e, exp_avg_sq %.2e", err_p, err_m,
         err_v);
    ok(err_p < 1e-6 && err_m < 1e-6 && err_v < 1e-6,
       "adamw (wd 0.1, eps 1e-6) matches the double torch rule for 6 steps");
    ok(memcmp(p, p + 32, 5 * sizeof(float)) == 0 && memcmp(m, m + 32, 5 * sizeof(float)) == 0 &&
           memcmp(v, v + 32, 5 * sizeof(float)) == 0,
       "adamw: the vectorized blocks and the scalar tail give identical bits");

    /* Step 1 in closed form: m_hat = g, v_hat = g^2, so
     * p1 = p0 (1 - lr wd) - lr g / (|g| + eps). */
    float p1 = 2.0f, g1 = -0.5f, m1 = 0, v1 = 0;
    btrm_optim_adamw(&p1, &g1, &m1, &v1, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 1);
    is_double_rel(p1, 2.0 * (1 - 0.1 * 0.01) + 0.1 * 0.5 / (0.5 + 1e-8), 1e-7,
                  "adamw step 1: p = p (1 - lr wd) - lr g / (|g| + eps)");
    is_double_rel(m1, 0.1 * -0.5, 1e-7, "adamw step 1: exp_avg = (1 - b1) g");
    is_double_rel(v1, 0.001 * 0.25, 1e-6, "adamw step 1: exp_avg_sq = (1 - b2) g^2");

    /* Decay is decoupled: a zero gradient only shrinks p by 1 - lr wd. */
    float p2 = 3.0f, g2 = 0.0f, m2 = 0, v2 = 0;
    btrm_optim_adamw(&p2, &g2, &m2, &v2, 1, 0.1, 0.9, 0.999, 1e-8, 0.5, 1);
    is_double_rel(p2, 3.0 * (1 - 0.05), 1e-7, "adamw: zero gradient gives p (1 - lr wd)");
}

static void test_sgd(void)
{
    const double cases[3][2] = {{0.0, 0.0}, {0.0, 0.05}, {0.9, 0.05}}; /* momentum, wd */
    for (int c = 0; c < 3; c++) {
        const double mom = cases[c][0], wd = cases[c][1], lr = 0.1;
        float p[N], g[N], buf[N];
        double pd[N], gd[N], bd[N];
        btrm_rng rng;
        btrm_rng_seed(&rng, 6, (uint64_t)c);
        for (int i = 0; i < N; i++) {
            p[i] = i >= 32 ? p[i - 32] : (float)btrm_rng_normal(&rng);
            pd[i] = p[i];
            buf[i] = 1234.0f; /* garbage: step 1 must overwrite it */
        }
        double err = 0;
        for (int t = 1; t <= 5; t++) {
            for (int i = 0; i < N; i++) {
                g[i] = i >= 32 ? g[i - 32] : (float)btrm_rng_normal(&rng);
                gd[i] = g[i];
            }
            btrm_optim_sgd(p, g, mom != 0 ? buf : NULL, N, lr, mom, wd, t);
            ref_sgd(pd, gd, bd, N, lr, mom, wd, t);
            err = fmax(err, max_rel(p, pd, N));
        }
        diag("sgd momentum %.1f wd %.2f, 5 steps: max rel err %.2e", mom, wd, err);
        ok(err < 1e-6 && memcmp(p, p + 32, 5 * sizeof(float)) == 0,
           "sgd momentum %.1f wd %.2f matches the double torch rule for 5 steps", mom, wd);
    }

    /* closed form: constant g, momentum mu, no decay: after 3 steps
     * buf = g (1 + mu + mu^2), p = p0 - lr g (3 + 2 mu + mu^2) */
    float p = 1.0f, g = 0.25f, buf = 0;
    for (int t = 1; t <= 3; t++)
        btrm_optim_sgd(&p, &g, &buf, 1, 0.5, 0.5, 0.0, t);
    is_double_rel(buf, 0.25 * 1.75, 1e-7, "sgd momentum: buf_3 = g (1 + mu + mu^2)");
    is_double_rel(p, 1.0 - 0.5 * 0.25 * (3 + 1 + 0.25), 1e-7,
                  "sgd momentum: p_3 = p_0 - lr g (3 + 2 mu + mu^2)");
    /* L2 decay enters the gradient: p - lr (g + wd p) */
    float q = 2.0f, h = 0.5f;
    btrm_optim_sgd(&q, &h, NULL, 1, 0.1, 0.0, 0.25, 1);
    is_double_rel(q, 2.0 - 0.1 * (0.5 + 0.25 * 2.0), 1e-7, "sgd: p -= lr (g + wd p)");
}

/* The vectorised update (a clone per ISA, picked at load time) against a
 * plain scalar float loop doing the documented operations in the same order:
 * the bound is 0 ulp (every operation is one IEEE float operation, no fused
 * multiply-add), over a long unaligned buffer with a tail; and the fused
 * gradient scale and sum of squares against separate passes. */
static void test_adamw_vectorised(void)
{
    enum { M = 10007 };
    float *p = malloc(sizeof(float) * (M + 1)), *g = malloc(sizeof(float) * (M + 1));
    float *m = calloc(M + 1, sizeof(float)), *v = calloc(M + 1, sizeof(float));
    float *ps = malloc(sizeof(float) * M), *ms = calloc(M, sizeof(float));
    float *vs = calloc(M, sizeof(float));
    btrm_rng rng;
    btrm_rng_seed(&rng, 8, 2);
    for (int i = 0; i < M; i++)
        ps[i] = p[i + 1] = (float)btrm_rng_normal(&rng);
    const double lr = 3e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
    const float scale = 0.37f;
    int diff = 0, sumsq_same = 1, shadow_bad = 0;
    uint16_t *p16 = malloc(sizeof(uint16_t) * M);
    for (int t = 1; t <= 4; t++) {
        for (int i = 0; i < M; i++)
            g[i + 1] = (float)(btrm_rng_normal(&rng) * (i % 5 == 0 ? 1e-6 : 1.0));
        btrm_optim_pass pass = { .grad_scale = scale, .want_sumsq = 1, .param_bf16 = p16 };
        double s2 = btrm_optim_adamw_pass(p + 1, g + 1, m + 1, v + 1, M, lr, b1, b2, eps, wd, t,
                                          &pass);
        /* the reference: optim.h's rule, one float operation at a time */
        const float decay = (float)(1.0 - lr * wd), w1 = (float)(1.0 - b1), fb2 = (float)b2,
                    w2 = (float)(1.0 - b2), step = (float)(lr / (1.0 - pow(b1, t))),
                    bc2 = (float)sqrt(1.0 - pow(b2, t)), feps = (float)eps;
        float *gsc = malloc(sizeof(float) * M);
        for (int i = 0; i < M; i++) {
            float gi = g[i + 1] * scale;
            gsc[i] = gi;
            ms[i] = ms[i] + w1 * (gi - ms[i]);
            vs[i] = vs[i] * fb2 + w2 * gi * gi;
            float root = sqrtf(vs[i]);
            float den = root / bc2 + feps;
            float q = ms[i] / den;
            float dec = ps[i] * decay;
            ps[i] = dec - step * q;
        }
        sumsq_same &= s2 == btrm_optim_sumsq(gsc, M);
        for (int i = 0; i < M; i++)
            shadow_bad += p16[i] != btrm_float_to_bf16(ps[i]);
        free(gsc);
        diff += memcmp(p + 1, ps, sizeof(float) * M) != 0 ||
                memcmp(m + 1, ms, sizeof(float) * M) != 0 || memcmp(v + 1, vs, sizeof(float) * M) != 0;
    }
    ok(diff == 0, "adamw, vectorised for this CPU, unaligned, 10007 elements, 4 steps: bitwise "
       "equal to the scalar float rule (bound: 0 ulp)");
    ok(sumsq_same, "adamw's fused sum of squares equals btrm_optim_sumsq of the scaled "
       "gradient, bitwise");
    ok(shadow_bad == 0, "adamw's pass writes the updated parameters rounded to bf16 (%d wrong)",
       shadow_bad);
    /* sgd with a scale equals sgd on the pre-scaled gradient */
    float *q1 = malloc(sizeof(float) * M), *q2 = malloc(sizeof(float) * M);
    float *b1buf = calloc(M, sizeof(float)), *b2buf = calloc(M, sizeof(float));
    float *gs = malloc(sizeof(float) * M);
    memcpy(q1, ps, sizeof(float) * M);
    memcpy(q2, ps, sizeof(float) * M);
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < M; i++)
            gs[i] = g[i + 1] * scale;
        btrm_optim_pass pass = { .grad_scale = scale };
        btrm_optim_sgd_pass(q1, g + 1, b1buf, M, 0.1, 0.9, 0.01, t, &pass);
        btrm_optim_sgd(q2, gs, b2buf, M, 0.1, 0.9, 0.01, t);
    }
    ok(!memcmp(q1, q2, sizeof(float) * M) && !memcmp(b1buf, b2buf, sizeof(float) * M),
       "sgd with the scale fused equals sgd on the scaled gradient, bitwise");
    free(p), free(g), free(m), free(v), free(ps), free(ms), free(vs);
    free(q1), free(q2), free(b1buf), free(b2buf), free(gs), free(p16);
}

static void test_table(void)
{
    const btrm_optim_ops *a = btrm_optim_lookup(BTRM_OPTIM_ADAMW);
    const btrm_optim_ops *s = btrm_optim_lookup(BTRM_OPTIM_SGD);
    ok(a && strcmp(a->name, "adamw") == 0 && a->n_state == 2 &&
           strcmp(a->state_names[1], "exp_avg_sq") == 0,
       "lookup(adamw): 2 state buffers exp_avg, exp_avg_sq");
    ok(s && strcmp(s->name, "sgd") == 0 && s->n_state == 1 &&
           strcmp(s->state_names[0], "momentum_buffer") == 0,
       "lookup(sgd): 1 state buffer momentum_buffer");
    ok(btrm_optim_lookup(-1) == NULL && btrm_optim_lookup(2) == NULL,
       "lookup of an unknown type is NULL");

    float p1[N], p2[N], g[N], m1[N] = {0}, v1[N] = {0}, m2[N] = {0}, v2[N] = {0};
    for (int i = 0; i < N; i++) {
        p1[i] = p2[i] = 0.1f * i;
        g[i] = 0.3f - 0.02f * i;
    }
    btrm_optim_hparams hp = {.lr = 1e-3, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6,
                             .weight_decay = 0.02, .momentum = 0};
    float *state[2] = {m2, v2};
    for (int t = 1; t <= 3; t++) {
        btrm_optim_adamw(p1, g, m1, v1, N, 1e-3, 0.8, 0.99, 1e-6, 0.02, t);
        a->step(&hp, t, p2, g, state, N, NULL);
    }
    ok(memcmp(p1, p2, sizeof p1) == 0 && memcmp(v1, v2, sizeof v1) == 0,
       "ops->step(adamw) = btrm_optim_adamw bitwise");
}

static void test_misc(void)
{
    float x[1001];
    double want = 0;
    for (int i = 0; i < 1001; i++) {
        x[i] = (float)(0.001 * i - 0.3);
        want += (double)x[i] * x[i];
    }
    is_double_rel(btrm_optim_sumsq(x, 1001), want, 1e-13, "sumsq in double");
    ok(btrm_optim_sumsq(x, 0) == 0.0, "sumsq of nothing is 0");

    is_double_rel(btrm_optim_clip_coef(10.0, 1.0), 1.0 / (10.0 + 1e-6), 1e-15,
                  "clip: max_norm / (norm + 1e-6)");
    ok(btrm_optim_clip_coef(0.5, 1.0) == 1.0, "clip: coefficient clamped to 1 below max_norm");
    ok(btrm_optim_clip_coef(1e9, 0.0) == 1.0, "clip: max_norm 0 = no clipping");
    ok(isnan(btrm_optim_clip_coef(NAN, 1.0)), "clip: a NaN norm gives NaN (torch keeps it)");
}

static void test_schedules(void)
{
    const int C = BTRM_SCHED_CONSTANT, Li = BTRM_SCHED_LINEAR, Co = BTRM_SCHED_COSINE;
    int good = 1;
    for (int s = 0; s < 3; s++)
        good &= btrm_sched_factor(s, 0, 10, 100) == 0.0 &&
                btrm_sched_factor(s, 5, 10, 100) == 0.5 &&
                btrm_sched_factor(s, 10, 10, 100) == 1.0;
    ok(good, "warmup 10: factor 0 at step 0, 1/2 at 5, 1 at 10 for every schedule");
    ok(btrm_sched_factor(C, 99, 10, 100) == 1.0, "constant: 1 after warmup");
    is_double_rel(btrm_sched_factor(Li, 55, 10, 100), 0.5, 1e-15, "linear: (100-55)/90 at 55");
    is_double_rel(btrm_sched_factor(Li, 99, 10, 100), 1.0 / 90, 1e-15, "linear: 1/90 at 99");
    ok(btrm_sched_factor(Li, 100, 10, 100) == 0.0 && btrm_sched_factor(Li, 130, 10, 100) == 0.0,
       "linear: 0 at the end and after");
    is_double_rel(btrm_sched_factor(Co, 55, 10, 100), 0.5, 1e-15, "cosine: 1/2 half way");
    is_double_rel(btrm_sched_factor(Co, 25, 0, 100), 0.5 * (1 + sqrt(0.5)), 1e-15,
                  "cosine: (1 + cos(pi/4))/2 a quarter of the way");
    is_double_abs(btrm_sched_factor(Co, 100, 10, 100), 0.0, 1e-16, "cosine: 0 at the end");
    good = 1;
    for (int s = 0; s < 3; s++)
        good &= btrm_sched_factor(s, 0, 0, 100) == 1.0;
    ok(good, "no warmup: every schedule starts at 1");
    is_double_rel(btrm_sched_factor(Li, 3, 0, 4), 0.25, 1e-15, "linear without warmup: (4-3)/4");
    ok(isnan(btrm_sched_factor(7, 50, 0, 100)), "unknown schedule: NaN");
}

int main(void)
{
    plan(37);
    test_adamw();
    test_sgd();
    test_adamw_vectorised();
    test_table();
    test_misc();
    test_schedules();
    return done_testing();
}
