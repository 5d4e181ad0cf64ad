/* analyze.c: distances, gradient shares and principal components of a pair
 * store's differences (see analyze.h).
 *
 * Each rank builds z_i (double) for its contiguous block of pairs, from the
 * node-shared features or the model's representation. The per-pair d_i and
 * sigma(-dr_i) are gathered in pair order (16 bytes per pair on every rank)
 * and every distribution and share is computed from the gathered arrays in
 * one fixed order, as btrm eval does. C = (1/N) Z^T Z is formed in
 * block-cyclic layout from the ranks' slices (btrm_grid_gram) and diagonalised
 * by pdsyevd with a checked workspace; the top-k eigenvectors are gathered to
 * every rank, and Z v_j (for the projections and for the residuals
 * ||C v_j - lambda_j v_j||, computed from Z rather than from C) costs one
 * pass over the local rows. */
#include "analyze.h"

#include "error.h"
#include "gemm.h"
#include "eval.h"
#include "fileutil.h"
#include "log.h"
#include "loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 512 /* pairs per forward pass of the model */

const double btrm_analyze_levels[BTRM_ANALYZE_QUANTILES] = { 0.0, 0.05, 0.25, 0.5,
                                                             0.75, 0.95, 1.0 };

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* z rows, d and sigma(-dr) of this rank's pairs [first, first + count):
 * out[2k] = d, out[2k + 1] = sigma(-dr). */
static int build_rows(const btrm_pairs *data, const btrm_head *head, const float *params,
                      int64_t first, int64_t count, double *z, double *out)
{
    if (!head) {
        const size_t dim = (size_t)data->dim;
        float *xc = NULL;
        int rc = BTRM_MALLOC(xc, 2 * dim);
        if (rc)
            return rc;
        float *xr = xc + dim;
        for (int64_t k = 0; k < count; k++) {
            btrm_pairs_feature_row(data, data->chosen[first + k], xc, BTRM_DTYPE_F32);
            btrm_pairs_feature_row(data, data->rejected[first + k], xr, BTRM_DTYPE_F32);
            double *zk = z + (size_t)k * dim, sq = 0.0;
            for (size_t j = 0; j < dim; j++) {
                zk[j] = (double)xc[j] - (double)xr[j];
                sq += zk[j] * zk[j];
            }
            out[2 * k] = sqrt(sq);
            out[2 * k + 1] = 0.5; /* w = 0: dr = 0 */
        }
        free(xc);
        return 0;
    }
    btrm_head_ws ws = { 0 };
    float *x = NULL;
    const size_t rep = (size_t)head->rep_dim;
    int chunk = count < CHUNK ? (int)(count > 0 ? count : 1) : CHUNK;
    int rc = btrm_head_ws_init(&ws, head, 2 * chunk);
    if (!rc)
        rc = BTRM_MALLOC(x, (size_t)2 * chunk * data->dim);
    for (int64_t done = 0; !rc && done < count; done += chunk) {
        int n = (int)(count - done < chunk ? count - done : chunk);
        btrm_eval_gather(data, NULL, first + done, n, x);
        /* reward[2n] = head(x[2n, D]); h[2n, rep] its representation */
        if ((rc = btrm_head_forward(head, params, x, 2 * n, &ws)))
            break;
        const float *h = btrm_head_rep(head, &ws, x);
        for (int k = 0; k < n; k++) {
            double *zk = z + (size_t)(done + k) * rep, sq = 0.0;
            for (size_t j = 0; j < rep; j++) {
                zk[j] = (double)h[(size_t)k * rep + j] - (double)h[(size_t)(n + k) * rep + j];
                sq += zk[j] * zk[j];
            }
            double dr = (double)ws.reward[k] - (double)ws.reward[n + k];
            out[2 * (done + k)] = sqrt(sq);
            out[2 * (done + k) + 1] = btrm_sigmoid(-dr);
        }
    }
    btrm_head_ws_free(&ws);
    free(x);
    return rc;
}

static int hist_bin(const btrm_analyze_result *res, double d)
{
    const double *e = res->hist_edges;
    double lo = e[0], hi = e[BTRM_ANALYZE_HIST];
    double pos = res->hist_log ? (log(d) - log(lo)) / (log(hi) - log(lo))
                               : (d - lo) / (hi - lo);
    int b = (int)floor(pos * BTRM_ANALYZE_HIST);
    return b < 0 ? 0 : b >= BTRM_ANALYZE_HIST ? BTRM_ANALYZE_HIST - 1 : b;
}

/* Quantiles and mean of the d of the pairs with group[i] == g (group NULL:
 * all pairs); scratch holds n_pairs doubles. */
static void distribution(btrm_analyze_result *res, const double *all, int64_t n_pairs,
                         const int32_t *group, int g, double *scratch, btrm_analyze_dist *out)
{
    memset(out, 0, sizeof *out);
    int64_t n = 0;
    double sum = 0.0;
    for (int64_t i = 0; i < n_pairs; i++) {
        if (group && group[i] != g)
            continue;
        double d = all[2 * i];
        scratch[n++] = d;
        sum += d;
        out->hist[hist_bin(res, d)]++;
    }
    out->n = n;
    if (n == 0)
        return;
    out->mean = sum / (double)n;
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_double);
    for (int q = 0; q < BTRM_ANALYZE_QUANTILES; q++)
        out->q[q] = btrm_eval_percentile(scratch, n, btrm_analyze_levels[q]);
}

static void distance_stats(btrm_analyze_result *res, const btrm_pairs *data, const double *all,
                           const btrm_model_meta *meta, double *scratch)
{
    const int64_t n = res->n_pairs;
    double lo = HUGE_VAL, hi = 0.0, sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        lo = fmin(lo, all[2 * i]);
        hi = fmax(hi, all[2 * i]);
        sum += all[2 * i];
    }
    res->dbar = sum / (double)n;
    res->hist_log = lo > 0.0 && hi > lo;
    if (!(hi > lo))
        hi = lo + 1.0;
    for (int b = 0; b <= BTRM_ANALYZE_HIST; b++) {
        double t = (double)b / BTRM_ANALYZE_HIST;
        res->hist_edges[b] = res->hist_log ? exp(log(lo) + t * (log(hi) - log(lo)))
                                           : lo + t * (hi - lo);
    }
    res->hist_edges[0] = lo;
    res->hist_edges[BTRM_ANALYZE_HIST] = hi;
    distribution(res, all, n, NULL, 0, scratch, &res->all);
    for (int g = 0; g < res->n_categories; g++)
        distribution(res, all, n, data->category, g, scratch, &res->by_category[g]);
    for (int g = 0; g < res->n_subsets; g++)
        distribution(res, all, n, data->subset, g, scratch, &res->by_subset[g]);

    /* d-quintiles as in btrm eval: edges at the 20/40/60/80th percentiles */
    for (int64_t i = 0; i < n; i++)
        scratch[i] = all[2 * i];
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_double);
    double edge[BTRM_ANALYZE_BINS + 1];
    edge[0] = scratch[0];
    edge[BTRM_ANALYZE_BINS] = scratch[n - 1];
    for (int q = 1; q < BTRM_ANALYZE_BINS; q++)
        edge[q] = btrm_eval_percentile(scratch, n, (double)q / BTRM_ANALYZE_BINS);
    /* NormBT's weights with the model's eps and cap, or the config's defaults */
    btrm_loss_params lp = meta ? btrm_model_loss_params(meta) : btrm_config_loss_params(NULL);
    lp.type = BTRM_LOSS_NORMBT;
    lp.center = 0.0;
    double bt[BTRM_ANALYZE_BINS] = { 0 }, nbt[BTRM_ANALYZE_BINS] = { 0 }, bt_all = 0, nbt_all = 0;
    for (int q = 0; q < BTRM_ANALYZE_BINS; q++) {
        res->bins[q].lo = edge[q];
        res->bins[q].hi = edge[q + 1];
    }
    for (int64_t i = 0; i < n; i++) {
        double d = all[2 * i], sig = all[2 * i + 1];
        int q = 0;
        while (q < BTRM_ANALYZE_BINS - 1 && d > edge[q + 1])
            q++;
        res->bins[q].n++;
        double gb = sig * d, gn = btrm_loss_weight(&lp, d, res->dbar) * sig * d;
        bt[q] += gb;
        nbt[q] += gn;
        bt_all += gb;
        nbt_all += gn;
    }
    for (int q = 0; q < BTRM_ANALYZE_BINS; q++) {
        res->bins[q].grad_share = bt_all > 0 ? bt[q] / bt_all : 0.0;
        res->bins[q].grad_share_normbt = nbt_all > 0 ? nbt[q] / nbt_all : 0.0;
    }
}

/* Principal components; z[count, dim] holds pairs [first, first + count). */
static int pca(btrm_analyze_result *res, const btrm_pairs *data, const btrm_comm *c,
               const btrm_analyze_opts *opts, const double *z, int64_t first, int64_t count)
{
    const int dim = res->dim, k = res->top_k, n_groups = res->n_categories + 1;
    btrm_grid grid;
    btrm_dmatrix cov = { 0 }, vec = { 0 };
    btrm_gram_ws ws = { 0 };
    double *w = NULL, *y = NULL, *cz = NULL, *proj = NULL;
    int rc = btrm_grid_init(&grid, c);
    if (rc)
        return rc;
    int nb = opts && opts->block > 0 ? opts->block : btrm_grid_block(&grid, dim);
    rc = btrm_dmatrix_init(&cov, &grid, dim, dim, nb);
    if (!rc)
        rc = btrm_dmatrix_init(&vec, &grid, dim, dim, nb);
    if (!rc)
        rc = btrm_gram_ws_init(&ws, &grid, dim, nb, count);
    if (!rc)
        rc = BTRM_MALLOC(w, dim);
    if (!rc)
        rc = BTRM_MALLOC(y, (size_t)(count > 0 ? count : 1) * k);
    if (!rc)
        rc = BTRM_MALLOC(cz, (size_t)dim * k);
    if (!rc)
        rc = BTRM_CALLOC(proj, (size_t)n_groups * k);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    /* C[dim, dim] = (1/N) sum_r Z_r^T Z_r */
    rc = btrm_comm_agree(c, btrm_grid_gram(&grid, &ws, z, count, NULL,
                                           1.0 / (double)res->n_pairs, 0.0, &cov, NULL));
    if (!rc)
        rc = btrm_grid_syevd(&grid, &cov, w, &vec, opts && opts->trust_query, &res->lwork);
    if (rc)
        goto fail;
    if (res->lwork.lwork_queried < res->lwork.lwork_safe)
        btrm_log_debug("pdsyevd's workspace query (%d doubles) is below what its callees "
                       "need (%d): using %d", res->lwork.lwork_queried, res->lwork.lwork_safe,
                       res->lwork.lwork_used);
    for (int j = 0; j < dim; j++)
        res->eigenvalues[j] = w[dim - 1 - j];
    /* the top k: columns dim - k .. dim - 1 (ascending), reversed */
    rc = btrm_comm_agree(c, btrm_grid_gather_columns(&grid, &vec, dim - k, k, cz));
    if (rc)
        goto fail;
    for (int j = 0; j < k; j++) {
        const double *src = cz + (size_t)(k - 1 - j) * dim;
        double *v = res->components + (size_t)j * dim;
        int big = 0;
        for (int i = 0; i < dim; i++)
            if (fabs(src[i]) > fabs(src[big]))
                big = i;
        double sign = src[big] < 0 ? -1.0 : 1.0; /* deterministic sign */
        for (int i = 0; i < dim; i++)
            v[i] = sign * src[i];
    }
    /* y[count, k] = Z[count, dim] V[k, dim]^T */
    if (count > 0)
        btrm_gemm_f64(0, 1, (int)count, k, dim, 1.0, z, dim, res->components, dim, 0.0, y, k);
    for (int64_t i = 0; i < count; i++) {
        int64_t pair = first + i;
        int g = data->category && res->n_categories > 0 ? data->category[pair] : -1;
        for (int j = 0; j < k; j++) {
            double a = fabs(y[(size_t)i * k + j]);
            proj[j] += a; /* row 0: all pairs */
            if (g >= 0)
                proj[(size_t)(g + 1) * k + j] += a;
        }
    }
    /* cz[dim, k] = Z^T y: C v_j = (1/N) sum_r Z_r^T (Z_r v_j) */
    if (count > 0)
        btrm_gemm_f64(1, 0, dim, k, (int)count, 1.0, z, dim, y, k, 0.0, cz, k);
    else
        memset(cz, 0, (size_t)dim * k * sizeof *cz);
    rc = btrm_comm_allreduce_sum_f64(c, cz, (size_t)dim * k);
    if (!rc)
        rc = btrm_comm_allreduce_sum_f64(c, proj, (size_t)n_groups * k);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    double lambda1 = res->eigenvalues[0] > 0 ? res->eigenvalues[0] : 1.0;
    res->max_residual = 0.0;
    for (int j = 0; j < k; j++) {
        double sq = 0.0;
        for (int i = 0; i < dim; i++) {
            double r = cz[(size_t)i * k + j] / (double)res->n_pairs -
                       res->eigenvalues[j] * res->components[(size_t)j * dim + i];
            sq += r * r;
        }
        res->max_residual = fmax(res->max_residual, sqrt(sq) / lambda1);
    }
    for (int j = 0; j < k; j++)
        res->proj_all[j] = proj[j] / (double)res->n_pairs;
    for (int g = 0; g < res->n_categories; g++)
        for (int j = 0; j < k; j++) {
            int64_t ng = res->by_category[g].n;
            res->proj_by_category[(size_t)g * k + j] =
                ng > 0 ? proj[(size_t)(g + 1) * k + j] / (double)ng : 0.0;
        }
    if (res->max_residual > 1e-8)
        btrm_log_warn("analyze: the eigenvectors' largest relative residual "
                      "||C v - lambda v|| / lambda_1 is %.2e", res->max_residual);
fail:
    btrm_dmatrix_free(&cov);
    btrm_dmatrix_free(&vec);
    btrm_gram_ws_free(&ws);
    btrm_grid_free(&grid);
    BTRM_FREE(w, y, cz, proj);
    return rc;
}

void btrm_analyze_result_free(btrm_analyze_result *res)
{
    if (!res)
        return;
    BTRM_FREE(res->by_category, res->by_subset, res->eigenvalues, res->components,
              res->proj_all, res->proj_by_category);
    res->by_category = res->by_subset = NULL;
    res->eigenvalues = res->components = res->proj_all = res->proj_by_category = NULL;
}

int btrm_analyze_run(const btrm_pairs *data, const btrm_head *head, const float *params,
                     const btrm_model_meta *meta, const btrm_comm *c,
                     const btrm_analyze_opts *opts, btrm_analyze_result *res)
{
    memset(res, 0, sizeof *res);
    double *z = NULL, *local = NULL, *all = NULL, *scratch = NULL;
    int *counts = NULL;
    int rc = 0;
    if (!data->features || data->dim < 1)
        rc = btrm_error_set(BTRM_EDATA, "%s: analyze needs /features", data->path);
    else if (data->n_pairs < 1)
        rc = btrm_error_set(BTRM_EDATA, "%s: no pairs to analyze", data->path);
    else if (2 * data->n_pairs > INT32_MAX)
        rc = btrm_error_set(BTRM_EDATA, "%s: %lld pairs is more than analyze supports",
                            data->path, (long long)data->n_pairs);
    else if (head && head->dim != data->dim)
        rc = btrm_error_set(BTRM_EDATA, "%s: /features has dim %d but the model expects %d",
                            data->path, data->dim, head->dim);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        return rc;
    res->n_pairs = data->n_pairs;
    res->dim = head ? head->rep_dim : data->dim;
    res->at_model = head != NULL;
    res->n_categories = data->category ? data->n_categories : 0;
    res->n_subsets = data->subset ? data->n_subsets : 0;
    int top_k = opts && opts->top_k > 0 ? opts->top_k : BTRM_ANALYZE_TOP_K;
    res->top_k = top_k < res->dim ? top_k : res->dim;
    const int dim = res->dim, k = res->top_k;
    int64_t first = 0, count = 0;
    btrm_comm_block(res->n_pairs, c->size, c->rank, &first, &count);
    size_t rows = (size_t)(count > 0 ? count : 1);
    rc = BTRM_MALLOC(z, rows * (size_t)dim);
    if (!rc)
        rc = BTRM_MALLOC(local, 2 * rows);
    if (!rc)
        rc = BTRM_MALLOC(all, 2 * (size_t)res->n_pairs);
    if (!rc)
        rc = BTRM_MALLOC(scratch, (size_t)res->n_pairs);
    if (!rc)
        rc = BTRM_MALLOC(counts, c->size);
    if (!rc)
        rc = BTRM_CALLOC(res->by_category, res->n_categories > 0 ? res->n_categories : 1);
    if (!rc)
        rc = BTRM_CALLOC(res->by_subset, res->n_subsets > 0 ? res->n_subsets : 1);
    if (!rc)
        rc = BTRM_CALLOC(res->eigenvalues, dim);
    if (!rc)
        rc = BTRM_CALLOC(res->components, (size_t)k * dim);
    if (!rc)
        rc = BTRM_CALLOC(res->proj_all, k);
    if (!rc)
        rc = BTRM_CALLOC(res->proj_by_category,
                         (size_t)(res->n_categories > 0 ? res->n_categories : 1) * k);
    if (!rc)
        rc = build_rows(data, head, params, first, count, z, local);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    rc = btrm_comm_agree(c, btrm_comm_allgatherv_f64(c, local, (int)(2 * count), all, counts));
    if (rc)
        goto fail;
    distance_stats(res, data, all, meta, scratch);
    for (int64_t i = 0; i < res->n_pairs; i++)
        res->trace += all[2 * i] * all[2 * i] / (double)res->n_pairs;
    rc = pca(res, data, c, opts, z, first, count);
fail:
    BTRM_FREE(z, local, all, scratch, counts);
    if (rc)
        btrm_analyze_result_free(res);
    return rc;
}

static json_t *doubles_json(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

static json_t *dist_json(const btrm_analyze_dist *d)
{
    json_t *hist = json_array();
    for (int b = 0; b < BTRM_ANALYZE_HIST; b++)
        json_array_append_new(hist, json_integer((json_int_t)d->hist[b]));
    return json_pack("{s:I, s:f, s:o, s:o}", "n", (json_int_t)d->n, "mean", d->mean,
                     "quantiles", doubles_json(d->q, BTRM_ANALYZE_QUANTILES), "hist", hist);
}

json_t *btrm_analyze_to_json(const btrm_analyze_result *res, const btrm_pairs *data,
                             const char *model)
{
    const int k = res->top_k;
    json_t *cats = json_object(), *subs = json_object(), *bins = json_array();
    for (int g = 0; g < res->n_categories; g++)
        json_object_set_new(cats, data->categories[g], dist_json(&res->by_category[g]));
    for (int g = 0; g < res->n_subsets; g++)
        json_object_set_new(subs, data->subsets[g], dist_json(&res->by_subset[g]));
    for (int q = 0; q < BTRM_ANALYZE_BINS; q++) {
        const btrm_analyze_bin *b = &res->bins[q];
        json_array_append_new(bins, json_pack("{s:f, s:f, s:I, s:f, s:f}", "lo", b->lo, "hi",
                                              b->hi, "n", (json_int_t)b->n, "grad_share",
                                              b->grad_share, "grad_share_normbt",
                                              b->grad_share_normbt));
    }
    double *explained = calloc((size_t)k + 1, sizeof *explained);
    double *cumulative = calloc((size_t)k + 1, sizeof *cumulative);
    double cum = 0.0;
    for (int j = 0; j < k && explained && cumulative; j++) {
        explained[j] = res->trace > 0 ? res->eigenvalues[j] / res->trace : 0.0;
        cum += explained[j];
        cumulative[j] = cum;
    }
    json_t *comps = json_array(), *proj_cats = json_object();
    for (int j = 0; j < k; j++)
        json_array_append_new(comps, doubles_json(res->components + (size_t)j * res->dim,
                                                  res->dim));
    for (int g = 0; g < res->n_categories; g++)
        json_object_set_new(proj_cats, data->categories[g],
                            doubles_json(res->proj_by_category + (size_t)g * k, k));
    json_t *pca = json_pack(
        "{s:i, s:f, s:o, s:o, s:o, s:o, s:o, s:{s:o, s:o}, s:f, s:{s:i, s:i, s:i}}", "top_k", k,
        "trace", res->trace, "eigenvalues", doubles_json(res->eigenvalues, k),
        "explained_variance", explained ? doubles_json(explained, k) : json_array(),
        "cumulative", cumulative ? doubles_json(cumulative, k) : json_array(),
        "spectrum", doubles_json(res->eigenvalues, res->dim), "components", comps,
        "mean_abs_projection", "all", doubles_json(res->proj_all, k), "by_category",
        proj_cats, "max_residual", res->max_residual, "pdsyevd_lwork", "queried",
        res->lwork.lwork_queried, "safe", res->lwork.lwork_safe, "used", res->lwork.lwork_used);
    free(explained);
    free(cumulative);
    json_t *hist = json_pack("{s:s, s:o}", "scale", res->hist_log ? "log" : "linear", "edges",
                             doubles_json(res->hist_edges, BTRM_ANALYZE_HIST + 1));
    return json_pack("{s:s, s:o, s:I, s:i, s:s, s:f, s:{s:o, s:o, s:o, s:o, s:o}, s:o, s:o}",
                     "file", data->path, "model", model ? json_string(model) : json_null(),
                     "n_pairs", (json_int_t)res->n_pairs, "dim", res->dim, "grad_share_at",
                     res->at_model ? "model" : "w=0", "dist_mean", res->dbar, "distance",
                     "levels", doubles_json(btrm_analyze_levels, BTRM_ANALYZE_QUANTILES),
                     "all", dist_json(&res->all), "by_category", cats, "by_subset", subs,
                     "histogram", hist, "by_distance_quintile", bins, "pca", pca);
}

static void print_dist(FILE *out, const char *kind, const char *name,
                       const btrm_analyze_dist *d)
{
    fprintf(out, "  %-8s %-14s %8lld %10.4g", kind, name, (long long)d->n, d->mean);
    for (int q = 0; q < BTRM_ANALYZE_QUANTILES; q++)
        fprintf(out, " %9.4g", d->q[q]);
    fputc('\n', out);
}

void btrm_analyze_print(const btrm_analyze_result *res, const btrm_pairs *data, FILE *out)
{
    fprintf(out, "%s: %lld pairs, h of width %d (%s)\n\n", data->path,
            (long long)res->n_pairs, res->dim,
            res->at_model ? "the model's representation" : "the features");
    fprintf(out, "Pair distance d = ||h_c - h_r||\n  %-8s %-14s %8s %10s", "", "", "n", "mean");
    for (int q = 0; q < BTRM_ANALYZE_QUANTILES; q++) {
        char label[16];
        snprintf(label, sizeof label, "p%g", 100 * btrm_analyze_levels[q]);
        fprintf(out, " %9s", label);
    }
    fputc('\n', out);
    print_dist(out, "all", "", &res->all);
    for (int g = 0; g < res->n_categories; g++)
        print_dist(out, "category", data->categories[g], &res->by_category[g]);
    for (int g = 0; g < res->n_subsets; g++)
        print_dist(out, "subset", data->subsets[g], &res->by_subset[g]);

    fprintf(out, "\nGradient norm share by d-quintile (%s)\n",
            res->at_model ? "at the model" : "at w = 0: sigma(-dr) = 1/2 for every pair");
    fprintf(out, "  quintile        d range                n    BT share  NormBT share\n");
    for (int q = 0; q < BTRM_ANALYZE_BINS; q++) {
        const btrm_analyze_bin *b = &res->bins[q];
        fprintf(out, "  q%d  %10.4g .. %-10.4g %10lld  %10.4f  %12.4f\n", q + 1, b->lo, b->hi,
                (long long)b->n, b->grad_share, b->grad_share_normbt);
    }
    const int k = res->top_k;
    fprintf(out, "\nPrincipal components of z = h_c - h_r (C = Z^T Z / N, trace %.4g)\n",
            res->trace);
    fprintf(out, "  (|z.v|: the mean |projection| of the pairs' z on the component)\n");
    fprintf(out, "  %-4s %12s %10s %10s %10s", "k", "eigenvalue", "explained", "cumul.",
            "|z.v| all");
    for (int g = 0; g < res->n_categories; g++)
        fprintf(out, " %10.10s", data->categories[g]);
    fputc('\n', out);
    double cum = 0.0;
    for (int j = 0; j < k; j++) {
        double ex = res->trace > 0 ? res->eigenvalues[j] / res->trace : 0.0;
        cum += ex;
        fprintf(out, "  %-4d %12.5g %10.4f %10.4f %10.4g", j + 1, res->eigenvalues[j], ex, cum,
                res->proj_all[j]);
        for (int g = 0; g < res->n_categories; g++)
            fprintf(out, " %10.4g", res->proj_by_category[(size_t)g * k + j]);
        fputc('\n', out);
    }
    fprintf(out, "  eigenvector residual max ||C v - lambda v|| / lambda_1 = %.2e; pdsyevd "
            "workspace %d doubles (its query said %d)\n", res->max_residual,
            res->lwork.lwork_used, res->lwork.lwork_queried);
}

int btrm_analyze_command(const char *model_path, const char *data_path,
                         const char *json_path, int quiet, const btrm_analyze_opts *opts,
                         const btrm_comm *c)
{
    btrm_eval_inputs in;
    btrm_analyze_result res;
    memset(&res, 0, sizeof res);
    int rc = btrm_eval_inputs_open(&in, model_path, data_path, c);
    if (!rc)
        rc = btrm_analyze_run(&in.data, in.has_model ? &in.head : NULL, in.params,
                              in.has_model ? &in.meta : NULL, c, opts, &res);
    if (!rc && c->rank == 0) {
        if (!quiet)
            btrm_analyze_print(&res, &in.data, stdout);
        if (json_path) {
            json_t *j = btrm_analyze_to_json(&res, &in.data, model_path);
            rc = j ? btrm_json_write_atomic(json_path, j)
                   : btrm_error_set(BTRM_ENOMEM, "out of memory building the JSON report");
            json_decref(j);
        }
    }
    rc = btrm_comm_agree(c, rc);
    btrm_analyze_result_free(&res);
    btrm_eval_inputs_close(&in);
    return rc;
}
