/* test-head.c: linear and mlp heads against an independent double-precision
 * reference (plain loops) and against central finite differences of the
 * float forward; init, accumulation, out.bias exactness, close-pair numerics. */
#include "dtype.h"
#include "head.h"
#include "error.h"
#include "rng.h"
#include "tap.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define M_PI_VALUE 3.14159265358979323846

/* ---------------------------------------------------------------------------
 * The double reference: forward and backward of the head, written from the
 * equations with plain loops (no BLAS, no code shared with head.c). */

static double ref_act(int act, double z)
{
    if (act == BTRM_ACT_RELU)
        return z > 0 ? z : 0;
    if (act == BTRM_ACT_TANH)
        return tanh(z);
    return 0.5 * z * (1.0 + erf(z / sqrt(2.0)));
}

static double ref_act_grad(int act, double z)
{
    if (act == BTRM_ACT_RELU)
        return z > 0 ? 1 : 0;
    if (act == BTRM_ACT_TANH)
        return 1.0 - tanh(z) * tanh(z);
    return 0.5 * (1.0 + erf(z / sqrt(2.0))) + z * exp(-0.5 * z * z) / sqrt(2.0 * M_PI_VALUE);
}


typedef struct ref_net {
    int rows;
    double *a[BTRM_MAX_LAYERS + 1]; /* a[0] = x, a[l+1] = act(z[l]) (hidden) */
    double *z[BTRM_MAX_LAYERS];     /* z[l][rows, width[l+1]]; z[L-1] = reward */
} ref_net;

static void ref_free(ref_net *net)
{
    for (int l = 0; l <= BTRM_MAX_LAYERS; l++)
        free(net->a[l]);
    for (int l = 0; l < BTRM_MAX_LAYERS; l++)
        free(net->z[l]);
    memset(net, 0, sizeof *net);
}

/* x in float, or xd in double when x is NULL */
static void ref_forward_x(const btrm_head *hd, const float *p, const float *x, const double *xd,
                          int rows, ref_net *net)
{
    memset(net, 0, sizeof *net);
    net->rows = rows;
    const int L = hd->n_layers;
    net->a[0] = malloc(sizeof(double) * rows * hd->dim);
    for (int k = 0; k < rows * hd->dim; k++)
        net->a[0][k] = x ? x[k] : xd[k];
    for (int l = 0; l < L; l++) {
        const btrm_tensor_view *t = &hd->layer[l];
        net->z[l] = malloc(sizeof(double) * rows * t->out);
        if (l + 1 < L)
            net->a[l + 1] = malloc(sizeof(double) * rows * t->out);
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < t->out; o++) {
                double s = p[t->bias_off + o];
                for (int i = 0; i < t->in; i++)
                    s += (double)p[t->weight_off + (size_t)o * t->in + i] * net->a[l][r * t->in + i];
                net->z[l][r * t->out + o] = s;
                if (l + 1 < L)
                    net->a[l + 1][r * t->out + o] = ref_act(hd->activation, s);
            }
    }
}

static void ref_forward(const btrm_head *hd, const float *p, const float *x, int rows,
                        ref_net *net)
{
    ref_forward_x(hd, p, x, NULL, rows, net);
}

static double ref_reward(const btrm_head *hd, const ref_net *net, int row)
{
    return net->z[hd->n_layers - 1][row];
}

/* grad = dL/dparams for L = sum_i gd_i (r_c - r_r) + gs_i (r_c + r_r), and
 * dx = dL/dx [2n, D] when not NULL. */
static void ref_backward_x(const btrm_head *hd, const float *p, const ref_net *net, int n,
                           const double *gd, const double *gs, double *grad, double *dx)
{
    const int rows = 2 * n, L = hd->n_layers;
    memset(grad, 0, sizeof(double) * hd->n_params);
    double *delta = malloc(sizeof(double) * rows);
    for (int i = 0; i < n; i++) {
        delta[i] = gd[i] + gs[i];
        delta[n + i] = -gd[i] + gs[i];
    }
    for (int l = L - 1; l >= 0; l--) {
        const btrm_tensor_view *t = &hd->layer[l];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < t->out; o++) {
                double d = delta[r * t->out + o];
                grad[t->bias_off + o] += d;
                for (int i = 0; i < t->in; i++)
                    grad[t->weight_off + (size_t)o * t->in + i] += d * net->a[l][r * t->in + i];
            }
        if (l == 0) {
            for (int r = 0; dx && r < rows; r++)
                for (int i = 0; i < t->in; i++) {
                    double s = 0;
                    for (int o = 0; o < t->out; o++)
                        s += delta[r * t->out + o] * p[t->weight_off + (size_t)o * t->in + i];
                    dx[r * t->in + i] = s;
                }
            break;
        }
        double *prev = calloc((size_t)rows * t->in, sizeof(double));
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < t->in; i++) {
                double s = 0;
                for (int o = 0; o < t->out; o++)
                    s += delta[r * t->out + o] * p[t->weight_off + (size_t)o * t->in + i];
                prev[r * t->in + i] = s * ref_act_grad(hd->activation, net->z[l - 1][r * t->in + i]);
            }
        free(delta);
        delta = prev;
    }
    free(delta);
}

static void ref_backward(const btrm_head *hd, const float *p, const ref_net *net, int n,
                         const double *gd, const double *gs, double *grad)
{
    ref_backward_x(hd, p, net, n, gd, gs, grad, NULL);
}

/* ---------------------------------------------------------------------------
 * Helpers */

static void fill_normal(btrm_rng *rng, float *v, size_t n, double scale)
{
    for (size_t k = 0; k < n; k++)
        v[k] = (float)(scale * btrm_rng_normal(rng));
}

/* The test loss from the float forward, in double. */
static double test_loss(const float *reward, int n, const float *gd, const float *gs)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        double rc = reward[i], rr = reward[n + i];
        s += gd[i] * (rc - rr) + (gs ? gs[i] * (rc + rr) : 0.0);
    }
    return s;
}

static const char *act_name(int act)
{
    return act == BTRM_ACT_RELU ? "relu" : act == BTRM_ACT_TANH ? "tanh" : "gelu";
}

/* One configuration: checks forward and backward against the double reference
 * and every parameter's gradient against central differences. */
static void check_config(int kind, int act, int n_hidden, int use_gsum)
{
    const int D = 12, n = 6, rows = 2 * n;
    const int hidden[2] = {10, 7};
    char what[96];
    if (kind == BTRM_HEAD_LINEAR)
        snprintf(what, sizeof what, "linear%s", use_gsum ? " with g_sum" : "");
    else
        snprintf(what, sizeof what, "mlp %s %s%s", act_name(act), n_hidden == 1 ? "[10]" : "[10, 7]",
                 use_gsum ? " with g_sum" : "");

    btrm_head hd;
    btrm_head_ws ws;
    btrm_head_init(&hd, kind, act, D, hidden, n_hidden);
    btrm_head_ws_init(&ws, &hd, rows);
    const size_t P = hd.n_params;
    float *p = malloc(sizeof(float) * P), *grad = calloc(P, sizeof(float));
    float *x = malloc(sizeof(float) * rows * D), gd[6], gs[6];
    double *ref_grad = malloc(sizeof(double) * P), gdd[6], gsd[6];
    btrm_rng rng;
    btrm_rng_seed(&rng, 100 + kind * 10 + act * 3 + n_hidden, 1);
    btrm_head_init_params(&hd, p, 17);
    /* Larger weights than the default init so that the nonlinearity matters. */
    for (size_t k = 0; k < P; k++)
        p[k] *= 2.0f;
    fill_normal(&rng, x, (size_t)rows * D, 1.0);
    fill_normal(&rng, gd, n, 0.5);
    fill_normal(&rng, gs, n, use_gsum ? 0.3 : 0.0);
    for (int i = 0; i < n; i++) {
        gdd[i] = gd[i];
        gsd[i] = gs[i];
    }

    /* forward and backward against the double reference */
    ref_net net;
    ref_forward(&hd, p, x, rows, &net);
    btrm_head_forward(&hd, p, x, rows, &ws);
    double rmax = 0, rerr = 0;
    for (int r = 0; r < rows; r++) {
        double want = ref_reward(&hd, &net, r);
        rmax = fmax(rmax, fabs(want));
        rerr = fmax(rerr, fabs(ws.reward[r] - want));
    }
    btrm_head_pair_backward(&hd, p, x, n, gd, use_gsum ? gs : NULL, &ws, grad);
    ref_backward(&hd, p, &net, n, gdd, gsd, ref_grad);
    double gmax = 0, gerr = 0, gerr_entry = 0;
    for (size_t k = 0; k < P; k++)
        gmax = fmax(gmax, fabs(ref_grad[k]));
    for (size_t k = 0; k < P; k++) {
        double e = fabs(grad[k] - ref_grad[k]);
        gerr = fmax(gerr, e / gmax);
        gerr_entry = fmax(gerr_entry, e / fmax(fabs(ref_grad[k]), 1e-2 * gmax));
    }
    diag("%s: reward max rel err %.2e; grad max err/max|g| %.2e, per entry %.2e", what,
         rerr / rmax, gerr, gerr_entry);
    ok(rerr <= 1e-5 * rmax && gerr <= 1e-5 && gerr_entry <= 1e-4,
       "%s: forward and backward match the double reference", what);

    /* central differences of the float forward */
    const float h = 1e-2f;
    double fd_err = 0;
    int skipped = 0;
    const int L = hd.n_layers;
    unsigned char *sign = malloc((size_t)rows * 16 * BTRM_MAX_LAYERS);
    for (size_t k = 0; k < P; k++) {
        const float p0 = p[k];
        const float pp = p0 + h, pm = p0 - h;
        p[k] = pp;
        btrm_head_forward(&hd, p, x, rows, &ws);
        double lp = test_loss(ws.reward, n, gd, use_gsum ? gs : NULL);
        /* relu: skip entries whose perturbation crosses a kink */
        size_t ns = 0;
        for (int l = 0; l + 1 < L; l++)
            for (int e = 0; e < rows * hd.width[l + 1]; e++)
                sign[ns++] = ws.pre[l][e] > 0;
        p[k] = pm;
        btrm_head_forward(&hd, p, x, rows, &ws);
        double lm = test_loss(ws.reward, n, gd, use_gsum ? gs : NULL);
        int kink = 0;
        ns = 0;
        for (int l = 0; l + 1 < L; l++)
            for (int e = 0; e < rows * hd.width[l + 1]; e++)
                kink |= sign[ns++] != (ws.pre[l][e] > 0);
        p[k] = p0;
        if (kink && act == BTRM_ACT_RELU) {
            skipped++;
            continue;
        }
        double fd = (lp - lm) / ((double)pp - (double)pm);
        fd_err = fmax(fd_err, fabs(fd - grad[k]) / fmax(fabs(grad[k]), 1e-2 * gmax));
    }
    diag("%s: %zu parameters, finite differences max rel err %.2e (%d skipped at relu kinks)",
         what, P, fd_err, skipped);
    ok(fd_err <= 1e-2, "%s: gradient matches central differences (h = 1e-2)", what);

    free(sign);
    ref_free(&net);
    free(p);
    free(grad);
    free(x);
    free(ref_grad);
    btrm_head_ws_free(&ws);
}

static void test_layout(void)
{
    btrm_head hd;
    const int hidden[2] = {5, 3};
    is_int(btrm_head_init(&hd, BTRM_HEAD_MLP, BTRM_ACT_GELU, 4, hidden, 2), 0,
           "init mlp 4 -> [5, 3] -> 1");
    is_int((long long)hd.n_params, 4 * 5 + 5 + 5 * 3 + 3 + 3 + 1, "mlp n_params = 47");
    ok(hd.n_layers == 3 && hd.rep_dim == 3 && hd.width[0] == 4 && hd.width[3] == 1,
       "mlp widths [4, 5, 3, 1], rep_dim 3");
    ok(strcmp(hd.layer[0].name, "fc0") == 0 && strcmp(hd.layer[1].name, "fc1") == 0 &&
           strcmp(hd.layer[2].name, "out") == 0,
       "tensors named fc0, fc1, out");
    ok(hd.layer[0].weight_off == 0 && hd.layer[0].bias_off == 20 &&
           hd.layer[1].weight_off == 25 && hd.layer[1].bias_off == 40 &&
           hd.layer[2].weight_off == 43 && hd.layer[2].bias_off == 46,
       "buffer order fc0.weight, fc0.bias, fc1.weight, fc1.bias, out.weight, out.bias");
    ok(hd.layer[1].out == 3 && hd.layer[1].in == 5, "fc1.weight is [out 3, in 5]");

    is_int(btrm_head_init(&hd, BTRM_HEAD_LINEAR, BTRM_ACT_GELU, 7, hidden, 2), 0,
           "init linear 7 -> 1 (hidden ignored)");
    ok(hd.n_layers == 1 && hd.n_params == 8 && hd.rep_dim == 7 &&
           strcmp(hd.layer[0].name, "out") == 0 && hd.layer[0].bias_off == 7,
       "linear: only out [1, 7] + bias, rep_dim = D");

    is_int(btrm_head_init(&hd, BTRM_HEAD_MLP, BTRM_ACT_RELU, 4, hidden, 0), BTRM_ECONFIG,
           "mlp without hidden sizes: BTRM_ECONFIG");
    const int bad[1] = {0};
    is_int(btrm_head_init(&hd, BTRM_HEAD_MLP, BTRM_ACT_RELU, 4, bad, 1), BTRM_ECONFIG,
           "hidden size 0: BTRM_ECONFIG");
    is_int(btrm_head_init(&hd, BTRM_HEAD_LINEAR, BTRM_ACT_RELU, 0, NULL, 0), BTRM_ECONFIG,
           "input dimension 0: BTRM_ECONFIG");
    ok(strstr(btrm_error_msg(), "dimension") != NULL, "the error message names the dimension");

    btrm_head_ws_free(NULL);
    btrm_head_ws ws;
    btrm_head_init(&hd, BTRM_HEAD_MLP, BTRM_ACT_RELU, 4, hidden, 2);
    is_int(btrm_head_ws_init(&ws, &hd, 10), 0, "ws_init for 10 rows");
    btrm_head_ws_free(&ws);
    btrm_head_ws zero;
    memset(&zero, 0, sizeof zero);
    ok(memcmp(&ws, &zero, sizeof ws) == 0,
       "ws_free leaves a zeroed struct (so a second ws_free frees nothing)");
    btrm_head_ws_free(&ws); /* under ASan a double free would abort here */
}

static void test_init(void)
{
    btrm_head hd;
    const int hidden[1] = {128};
    btrm_head_init(&hd, BTRM_HEAD_MLP, BTRM_ACT_GELU, 300, hidden, 1);
    float *a = malloc(sizeof(float) * hd.n_params), *b = malloc(sizeof(float) * hd.n_params);
    float *c = malloc(sizeof(float) * hd.n_params);
    btrm_head_init_params(&hd, a, 42);
    btrm_head_init_params(&hd, b, 42);
    btrm_head_init_params(&hd, c, 43);
    ok(memcmp(a, b, sizeof(float) * hd.n_params) == 0, "init is deterministic for a seed");
    ok(memcmp(a, c, sizeof(float) * hd.n_params) != 0, "another seed gives other parameters");
    int inside = 1;
    for (int l = 0; l < hd.n_layers; l++) {
        const btrm_tensor_view *t = &hd.layer[l];
        double bound = 1.0 / sqrt((double)t->in);
        size_t nw = (size_t)t->out * t->in;
        double mx = 0, s2 = 0;
        for (size_t k = 0; k < nw; k++) {
            double w = a[t->weight_off + k];
            inside &= fabs(w) <= (float)bound;
            mx = fmax(mx, fabs(w));
            s2 += w * w;
        }
        for (int k = 0; k < t->out; k++)
            inside &= fabs(a[t->bias_off + k]) <= (float)bound;
        if (nw > 1000) {
            /* U(-b, b): variance b^2 / 3; the extremes reach the bound */
            is_double_rel(s2 / nw, bound * bound / 3, 0.03, "%s.weight variance = bound^2/3",
                          t->name);
            ok(mx > 0.99 * bound, "%s.weight spans the whole range (max %.4f, bound %.4f)",
               t->name, mx, bound);
        }
    }
    ok(inside, "every weight and bias within +-1/sqrt(fan_in)");
    free(a);
    free(b);
    free(c);
}

static void test_activations(void)
{
    is_double_rel(btrm_head_activate(BTRM_ACT_GELU, 1.0f), 0.8413447460685429, 1e-6,
                  "gelu(1) = Phi(1)");
    is_double_rel(btrm_head_activate(BTRM_ACT_GELU, -2.0f), -2.0 * 0.022750131948179195, 1e-5,
                  "gelu(-2) = -2 Phi(-2) (exact erf form, not tanh)");
    is_double_rel(btrm_head_activate_grad(BTRM_ACT_GELU, 0.0f), 0.5, 1e-7, "gelu'(0) = 1/2");
    ok(btrm_head_activate(BTRM_ACT_RELU, -1.5f) == 0.0f &&
           btrm_head_activate(BTRM_ACT_RELU, 2.5f) == 2.5f,
       "relu(-1.5) = 0, relu(2.5) = 2.5");
    is_double_rel(btrm_head_activate(BTRM_ACT_TANH, 0.5f), tanh(0.5), 1e-6, "tanh(0.5)");
    double err = 0;
    for (int act = 0; act < 3; act++)
        for (double z = -3.1; z < 3.1; z += 0.37) {
            double fd = (ref_act(act, z + 1e-6) - ref_act(act, z - 1e-6)) / 2e-6;
            err = fmax(err, fabs(btrm_head_activate_grad(act, (float)z) - fd));
        }
    diag("activation derivatives: max abs err vs double differences %.2e", err);
    ok(err < 1e-5, "activate_grad matches differences of the double activations");
}

/* Accumulation, out.bias exactness, pair distance, rep. */
static void test_backward_properties(void)
{
    const int D = 8, n = 5, rows = 2 * n;
    const int hidden[1] = {6};
    btrm_head hd;
    btrm_head_ws ws;
    btrm_head_init(&hd, BTRM_HEAD_MLP, BTRM_ACT_TANH, D, hidden, 1);
    btrm_head_ws_init(&ws, &hd, rows);
    const size_t P = hd.n_params;
    float *p = malloc(sizeof(float) * P), *g1 = calloc(P, sizeof(float));
    float *g2 = calloc(P, sizeof(float)), *x = malloc(sizeof(float) * rows * D);
    float gd[5], gs[5] = {0, 0, 0, 0, 0}, dist[5];
    btrm_rng rng;
    btrm_rng_seed(&rng, 77, 1);
    btrm_head_init_params(&hd, p, 3);
    fill_normal(&rng, x, (size_t)rows * D, 1.0);
    fill_normal(&rng, gd, n, 1.0);

    btrm_head_forward(&hd, p, x, rows, &ws);
    btrm_head_pair_backward(&hd, p, x, n, gd, NULL, &ws, g1);
    const size_t ob = hd.layer[hd.n_layers - 1].bias_off;
    ok(g1[ob] == 0.0f, "out.bias gradient exactly 0 with g_sum = NULL");
    btrm_head_pair_backward(&hd, p, x, n, gd, gs, &ws, g2);
    ok(g2[ob] == 0.0f, "out.bias gradient exactly 0 with g_sum all zero");
    ok(memcmp(g1, g2, sizeof(float) * P) == 0, "g_sum = NULL and g_sum = 0 agree bitwise");

    btrm_head_pair_backward(&hd, p, x, n, gd, NULL, &ws, g2);
    double err = 0, gmax = 0;
    for (size_t k = 0; k < P; k++) {
        err = fmax(err, fabs(g2[k] - 2.0 * g1[k]));
        gmax = fmax(gmax, fabs(g1[k]));
    }
    ok(err <= 1e-6 * gmax, "backward accumulates (+=): twice gives 2x the gradient (err %.1e)",
       err / gmax);

    fill_normal(&rng, gs, n, 1.0);
    memset(g2, 0, sizeof(float) * P);
    btrm_head_pair_backward(&hd, p, x, n, gd, gs, &ws, g2);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += gs[i];
    is_double_rel(g2[ob], 2 * sum, 1e-6, "out.bias gradient = 2 sum(g_sum)");

    /* representation and pair distance against the double reference */
    ref_net net;
    ref_forward(&hd, p, x, rows, &net);
    const float *h = btrm_head_rep(&hd, &ws, x);
    ok(h == ws.act[0], "mlp representation is the last hidden activation");
    btrm_head_pair_distance(&hd, &ws, x, n, dist);
    double derr = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < hd.rep_dim; k++) {
            double d = net.a[1][i * hd.rep_dim + k] - net.a[1][(n + i) * hd.rep_dim + k];
            s += d * d;
        }
        derr = fmax(derr, fabs(dist[i] - sqrt(s)) / sqrt(s));
    }
    ok(derr < 1e-5, "pair_distance = ||h_c - h_r|| (mlp; rel err %.1e)", derr);
    ref_free(&net);

    btrm_head lin;
    btrm_head_ws lws;
    btrm_head_init(&lin, BTRM_HEAD_LINEAR, 0, D, NULL, 0);
    btrm_head_ws_init(&lws, &lin, rows);
    float lp[9];
    btrm_head_init_params(&lin, lp, 1);
    btrm_head_forward(&lin, lp, x, rows, &lws);
    ok(btrm_head_rep(&lin, &lws, x) == x, "linear representation is the input itself");
    btrm_head_pair_distance(&lin, &lws, x, n, dist);
    derr = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < D; k++) {
            double d = (double)x[i * D + k] - x[(n + i) * D + k];
            s += d * d;
        }
        derr = fmax(derr, fabs(dist[i] - sqrt(s)) / sqrt(s));
    }
    ok(derr < 1e-6, "pair_distance = ||x_c - x_r|| (linear; rel err %.1e)", derr);

    btrm_head_ws_free(&lws);
    btrm_head_ws_free(&ws);
    free(p);
    free(g1);
    free(g2);
    free(x);
}

/* Close pairs at large |h|: out.weight's gradient must come from the pair
 * differences. x_c = x_r + 1e-4 noise with |x| ~ 100. */
static void test_close_pairs(void)
{
    const int D = 32, n = 256, rows = 2 * n;
    btrm_head hd;
    btrm_head_ws ws;
    btrm_head_init(&hd, BTRM_HEAD_LINEAR, 0, D, NULL, 0);
    btrm_head_ws_init(&ws, &hd, rows);
    float *x = malloc(sizeof(float) * rows * D), p[33], grad[33] = {0};
    float *gd = malloc(sizeof(float) * n);
    double ref[32] = {0};
    btrm_rng rng;
    btrm_rng_seed(&rng, 2024, 1);
    btrm_head_init_params(&hd, p, 5);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < D; k++) {
            double base = 100.0 + 10.0 * btrm_rng_normal(&rng);
            x[(n + i) * D + k] = (float)base;
            x[i * D + k] = (float)(base + 1e-4 * btrm_rng_normal(&rng));
        }
    fill_normal(&rng, gd, n, 0.01);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < D; k++)
            ref[k] += gd[i] * ((double)x[i * D + k] - (double)x[(n + i) * D + k]);

    btrm_head_forward(&hd, p, x, rows, &ws);
    btrm_head_pair_backward(&hd, p, x, n, gd, NULL, &ws, grad);

    /* The naive float formula: sum over chosen rows minus sum over rejected. */
    float naive_c[32] = {0}, naive_r[32] = {0};
    /* naive_c[D] = x_c[n,D]^T · gd[n];  naive_r[D] = x_r[n,D]^T · gd[n] */
    cblas_sgemv(CblasRowMajor, CblasTrans, n, D, 1.0f, x, D, gd, 1, 0.0f, naive_c, 1);
    cblas_sgemv(CblasRowMajor, CblasTrans, n, D, 1.0f, x + (size_t)n * D, D, gd, 1, 0.0f,
                naive_r, 1);
    double norm = 0, err = 0, err_naive = 0, worst = 0;
    for (int k = 0; k < D; k++) {
        norm += ref[k] * ref[k];
        err += (grad[k] - ref[k]) * (grad[k] - ref[k]);
        double nv = (double)(naive_c[k] - naive_r[k]);
        err_naive += (nv - ref[k]) * (nv - ref[k]);
    }
    norm = sqrt(norm);
    err = sqrt(err) / norm;
    err_naive = sqrt(err_naive) / norm;
    for (int k = 0; k < D; k++)
        worst = fmax(worst, fabs(grad[k] - ref[k]) / norm);
    diag("close pairs (|h| ~ 100, |h_c - h_r| ~ 1e-4): out.weight grad rel err %.2e "
         "(worst entry %.2e); naive difference of sums %.2e",
         err, worst, err_naive);
    ok(err < 1e-3 && worst < 1e-3, "close pairs: out.weight gradient within 1e-3 of double");
    ok(err_naive > 100 * err, "the difference of sums would be >100x worse (%.1e vs %.1e)",
       err_naive, err);
    btrm_head_ws_free(&ws);
    free(x);
    free(gd);
}

/* The input gradient dL/dx (ws.dx, for a backbone that trains) against the
 * double reference and against central differences of the double reference
 * forward in each input entry (h = 1e-6, double precision throughout), for
 * rows of chosen and rejected responses alike. */
static void check_input_grad(int kind, int act, int n_hidden, int use_gsum)
{
    const int D = 9, n = 4, rows = 2 * n;
    const int hidden[2] = {7, 5};
    char what[96];
    snprintf(what, sizeof what, "%s %s%s", kind == BTRM_HEAD_LINEAR ? "linear" : "mlp",
             kind == BTRM_HEAD_LINEAR ? "" : act_name(act), use_gsum ? " with g_sum" : "");
    btrm_head hd;
    btrm_head_ws ws;
    btrm_head_init(&hd, kind, act, D, hidden, n_hidden);
    btrm_head_ws_init(&ws, &hd, rows);
    const size_t P = hd.n_params, X = (size_t)rows * D;
    float *p = malloc(sizeof(float) * P), *grad = calloc(P, sizeof(float));
    float *x = malloc(sizeof(float) * X), gd[4], gs[4];
    double *xd = malloc(sizeof(double) * X), *ref_dx = malloc(sizeof(double) * X);
    double *ref_grad = malloc(sizeof(double) * P), gdd[4], gsd[4];
    ws.dx = malloc(sizeof(float) * X);
    btrm_rng rng;
    btrm_rng_seed(&rng, 500 + kind * 10 + act * 3 + n_hidden, 2);
    btrm_head_init_params(&hd, p, 23);
    for (size_t k = 0; k < P; k++)
        p[k] *= 2.0f;
    fill_normal(&rng, x, X, 1.0);
    fill_normal(&rng, gd, n, 0.5);
    fill_normal(&rng, gs, n, use_gsum ? 0.3 : 0.0);
    for (int i = 0; i < n; i++) {
        gdd[i] = gd[i];
        gsd[i] = use_gsum ? gs[i] : 0.0;
    }
    for (size_t k = 0; k < X; k++)
        xd[k] = x[k];
    btrm_head_forward(&hd, p, x, rows, &ws);
    btrm_head_pair_backward(&hd, p, x, n, gd, use_gsum ? gs : NULL, &ws, grad);
    ref_net net;
    ref_forward(&hd, p, x, rows, &net);
    ref_backward_x(&hd, p, &net, n, gdd, gsd, ref_grad, ref_dx);
    ref_free(&net);
    double dmax = 0, err_ref = 0, err_fd = 0;
    for (size_t k = 0; k < X; k++)
        dmax = fmax(dmax, fabs(ref_dx[k]));
    const double h = 1e-6;
    for (size_t k = 0; k < X; k++) {
        err_ref = fmax(err_ref, fabs(ws.dx[k] - ref_dx[k]) / dmax);
        double loss[2];
        for (int side = 0; side < 2; side++) {
            double x0 = xd[k];
            xd[k] = x0 + (side ? -h : h);
            ref_forward_x(&hd, p, NULL, xd, rows, &net);
            loss[side] = 0;
            for (int i = 0; i < n; i++) {
                double rc = ref_reward(&hd, &net, i), rr = ref_reward(&hd, &net, n + i);
                loss[side] += gdd[i] * (rc - rr) + gsd[i] * (rc + rr);
            }
            ref_free(&net);
            xd[k] = x0;
        }
        err_fd = fmax(err_fd, fabs((loss[0] - loss[1]) / (2 * h) - ref_dx[k]) / dmax);
    }
    diag("%s: dL/dx max err / max|dx|: %.2e against the double reference, which is %.2e "
         "from central differences in double", what, err_ref, err_fd);
    ok(err_ref <= 1e-5 && err_fd <= 1e-6 && dmax > 0,
       "%s: the input gradient dL/dx matches the double reference and its central differences",
       what);
    /* the gradient of the parameters is unchanged by asking for dx */
    float *grad2 = calloc(P, sizeof(float)), *dx = ws.dx;
    ws.dx = NULL;
    btrm_head_forward(&hd, p, x, rows, &ws);
    btrm_head_pair_backward(&hd, p, x, n, gd, use_gsum ? gs : NULL, &ws, grad2);
    ok(!memcmp(grad, grad2, sizeof(float) * P), "%s: asking for dx leaves the parameter "
       "gradient bitwise the same", what);
    free(grad2);
    free(dx);
    free(p);
    free(grad);
    free(x);
    free(xd);
    free(ref_dx);
    free(ref_grad);
    btrm_head_ws_free(&ws);
}

/* Overlapped reduction support: btrm_head_grad_regions covers the buffer
 * once; backward reports each region in that order, final when reported; with
 * grad_overwrite it writes the gradient into a garbage buffer as accumulation
 * into zeros gives it; row blocks of dW change nothing beyond rounding. */
typedef struct report_log {
    const float *grad;
    size_t n_params;
    float *snapshot; /* the buffer as each region was reported: [n_regions, P] */
    int calls;
} report_log;

static int on_ready(void *ctx, int region)
{
    report_log *r = ctx;
    if (region != r->calls)
        return -99; /* out of order */
    memcpy(r->snapshot + (size_t)region * r->n_params, r->grad, r->n_params * sizeof(float));
    r->calls++;
    return 0;
}

static void test_regions(void)
{
    const int D = 40, n = 8, rows = 2 * n, hidden[2] = { 23, 9 }, blocks = 4;
    btrm_head hd;
    btrm_head_ws ws;
    btrm_head_init(&hd, BTRM_HEAD_MLP, BTRM_ACT_GELU, D, hidden, 2);
    btrm_head_ws_init(&ws, &hd, rows);
    const size_t P = hd.n_params;
    int nr = btrm_head_grad_regions(&hd, blocks, NULL, NULL, 0);
    size_t first[32], count[32];
    btrm_head_grad_regions(&hd, blocks, first, count, 32);
    unsigned char *cover = calloc(P, 1);
    for (int k = 0; k < nr && k < 32; k++)
        for (size_t e = first[k]; e < first[k] + count[k] && e < P; e++)
            cover[e]++;
    int once = nr == 1 + 2 * (blocks + 1);
    for (size_t e = 0; e < P; e++)
        once &= cover[e] == 1;
    ok(once, "grad regions: %d (out, then each hidden layer's %d row blocks and its bias) "
       "cover every parameter exactly once", nr, blocks);

    float *p = malloc(sizeof(float) * P), *x = malloc(sizeof(float) * rows * D);
    float gd[8], gs[8];
    btrm_rng rng;
    btrm_rng_seed(&rng, 77, 1);
    btrm_head_init_params(&hd, p, 3);
    fill_normal(&rng, x, (size_t)rows * D, 1.0);
    fill_normal(&rng, gd, n, 0.5);
    fill_normal(&rng, gs, n, 0.2);
    float *acc = calloc(P, sizeof(float)), *over = malloc(sizeof(float) * P);
    btrm_head_forward(&hd, p, x, rows, &ws);
    btrm_head_pair_backward(&hd, p, x, n, gd, gs, &ws, acc);
    for (size_t k = 0; k < P; k++)
        over[k] = 1e30f; /* garbage: overwrite mode must replace every entry */
    report_log log = { over, P, malloc(sizeof(float) * P * (size_t)nr), 0 };
    ws.grad_overwrite = 1;
    ws.grad_blocks = blocks;
    ws.grad_ready = on_ready;
    ws.grad_ready_ctx = &log;
    int rc = btrm_head_pair_backward(&hd, p, x, n, gd, gs, &ws, over);
    double err = 0, scale = 0;
    for (size_t k = 0; k < P; k++) {
        err = fmax(err, fabs(over[k] - acc[k]));
        scale = fmax(scale, fabs(acc[k]));
    }
    ok(rc == 0 && err <= 1e-6 * scale, "grad_overwrite with %d row blocks writes what "
       "accumulation into zeros gives (max diff %.1e of max %.1e)", blocks, err, scale);
    int final_when_reported = log.calls == nr;
    for (int k = 0; k < nr && final_when_reported; k++)
        final_when_reported = !memcmp(log.snapshot + (size_t)k * P + first[k], over + first[k],
                                      count[k] * sizeof(float));
    ok(final_when_reported, "backward reports the %d regions in order, each final when "
       "reported (%d reports)", nr, log.calls);
    free(cover), free(p), free(x), free(acc), free(over), free(log.snapshot);
    btrm_head_ws_free(&ws);
}

/* A linear head fed bf16 rows (bf16 features read as stored) against the same
 * rows widened to float32: rewards and distances to float rounding (other
 * summation orders), the gradient bitwise (the same operations per element). */
static void test_linear_bf16(void)
{
    const int D = 203, n = 5, rows = 2 * n; /* D: not a multiple of any lane count */
    btrm_head hd;
    btrm_head_ws w32, w16;
    btrm_head_init(&hd, BTRM_HEAD_LINEAR, BTRM_ACT_GELU, D, NULL, 0);
    btrm_head_ws_init(&w32, &hd, rows);
    btrm_head_ws_init(&w16, &hd, rows);
    const size_t P = hd.n_params;
    float *p = malloc(sizeof(float) * P), *x = malloc(sizeof(float) * rows * D);
    uint16_t *x16 = malloc(sizeof(uint16_t) * rows * D);
    float *g32 = calloc(P, sizeof(float)), *g16 = calloc(P, sizeof(float));
    float gd[5], d32[5], d16[5];
    btrm_rng rng;
    btrm_rng_seed(&rng, 91, 1);
    btrm_head_init_params(&hd, p, 5);
    fill_normal(&rng, x, (size_t)rows * D, 1.0);
    btrm_dtype_from_f32(x16, BTRM_DTYPE_BF16, x, (size_t)rows * D);
    btrm_dtype_to_f32(x, x16, BTRM_DTYPE_BF16, (size_t)rows * D); /* the same values */
    fill_normal(&rng, gd, n, 0.5);
    int rc = btrm_head_forward(&hd, p, x, rows, &w32);
    rc |= btrm_head_forward_typed(&hd, p, x16, BTRM_DTYPE_BF16, rows, &w16);
    double rerr = 0, derr = 0;
    for (int r = 0; r < rows; r++)
        rerr = fmax(rerr, fabs(w16.reward[r] - w32.reward[r]) / fmax(fabs(w32.reward[r]), 1e-3));
    btrm_head_pair_distance(&hd, &w32, x, n, d32);
    btrm_head_pair_distance(&hd, &w16, x16, n, d16);
    for (int i = 0; i < n; i++)
        derr = fmax(derr, fabs(d16[i] - d32[i]) / d32[i]);
    rc |= btrm_head_pair_backward(&hd, p, x, n, gd, NULL, &w32, g32);
    rc |= btrm_head_pair_backward_typed(&hd, p, x16, BTRM_DTYPE_BF16, n, gd, NULL, &w16, g16);
    ok(rc == 0 && rerr < 1e-5 && derr < 1e-6,
       "linear head on bf16 rows: rewards (rel %.1e) and distances (rel %.1e) as on their "
       "float32 values", rerr, derr);
    ok(rc == 0 && !memcmp(g16, g32, sizeof(float) * P),
       "linear head on bf16 rows: the gradient is bitwise that of their float32 values");
    btrm_head mlp;
    const int hidden = 4;
    btrm_head_init(&mlp, BTRM_HEAD_MLP, BTRM_ACT_GELU, D, &hidden, 1);
    btrm_head_ws wm;
    btrm_head_ws_init(&wm, &mlp, rows);
    float *pm = calloc(mlp.n_params, sizeof(float));
    rc = btrm_head_forward_typed(&mlp, pm, x16, BTRM_DTYPE_BF16, rows, &wm);
    ok(rc == BTRM_EUSAGE, "an mlp head in fp32 refuses bf16 rows (%s)", btrm_error_msg());
    free(pm);
    btrm_head_ws_free(&wm);
    free(p), free(x), free(x16), free(g32), free(g16);
    btrm_head_ws_free(&w32);
    btrm_head_ws_free(&w16);
}

int main(void)
{
    plan(60 + 12);
    test_layout();
    test_init();
    test_activations();
    check_config(BTRM_HEAD_LINEAR, BTRM_ACT_GELU, 0, 0);
    check_config(BTRM_HEAD_LINEAR, BTRM_ACT_GELU, 0, 1);
    for (int act = 0; act < 3; act++)
        for (int nh = 1; nh <= 2; nh++)
            check_config(BTRM_HEAD_MLP, act, nh, 1);
    check_config(BTRM_HEAD_MLP, BTRM_ACT_GELU, 2, 0);
    test_backward_properties();
    test_close_pairs();
    check_input_grad(BTRM_HEAD_LINEAR, BTRM_ACT_GELU, 0, 0);
    check_input_grad(BTRM_HEAD_LINEAR, BTRM_ACT_GELU, 0, 1);
    check_input_grad(BTRM_HEAD_MLP, BTRM_ACT_GELU, 1, 1);
    check_input_grad(BTRM_HEAD_MLP, BTRM_ACT_TANH, 2, 0);
    check_input_grad(BTRM_HEAD_MLP, BTRM_ACT_RELU, 2, 1);
    check_input_grad(BTRM_HEAD_MLP, BTRM_ACT_GELU, 2, 1);
    test_regions();
    test_linear_bf16();
    return done_testing();
}
