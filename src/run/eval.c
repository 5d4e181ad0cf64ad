/* eval.c: distributed evaluation. Each rank computes per-pair quantities
 * (dr, d, loss) for its contiguous block of pairs; the blocks are gathered in
 * pair order and every summary is computed from the gathered arrays in one
 * fixed order, so the result does not depend on the rank count beyond the
 * forward pass itself. Memory: 3 doubles per pair of the eval set on every
 * rank (24 MB per million pairs). */
#include "eval.h"

#include "error.h"
#include "feature_record.h"
#include "fileutil.h"
#include "format.h"
#include "textrep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_CHUNK 512 /* pairs per forward pass */

void btrm_eval_gather_typed(const btrm_pairs *data, const int64_t *order, int64_t first,
                            int64_t count, void *x, int dtype)
{
    const size_t row = (size_t)data->dim * btrm_dtype_size(dtype);
    unsigned char *out = x;
    for (int64_t k = 0; k < count; k++) {
        int64_t pair = order ? order[first + k] : first + k;
        btrm_pairs_feature_row(data, data->chosen[pair], out + (size_t)k * row, dtype);
        btrm_pairs_feature_row(data, data->rejected[pair], out + (size_t)(count + k) * row,
                               dtype);
    }
}

void btrm_eval_gather(const btrm_pairs *data, const int64_t *order, int64_t first,
                      int64_t count, float *x)
{
    btrm_eval_gather_typed(data, order, first, count, x, BTRM_DTYPE_F32);
}

double btrm_eval_percentile(const double *sorted, int64_t n, double q)
{
    if (n <= 0)
        return 0.0;
    double pos = q * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos);
    if (lo >= n - 1)
        return sorted[n - 1];
    double frac = pos - (double)lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Per-pair quantities of this rank's block: out[3k..3k+2] = dr, d, loss. */
static int eval_local(const btrm_head *head, const float *params, const btrm_pairs *data,
                      int64_t first, int64_t count, double *out)
{
    btrm_head_ws ws = { 0 };
    float *x = NULL, *dist = NULL;
    int chunk = count < EVAL_CHUNK ? (int)(count > 0 ? count : 1) : EVAL_CHUNK;
    int rc = btrm_head_ws_init(&ws, head, 2 * chunk);
    if (!rc)
        rc = BTRM_MALLOC(x, (size_t)2 * chunk * data->dim);
    if (!rc)
        rc = BTRM_MALLOC(dist, chunk);
    if (rc)
        goto fail;
    for (int64_t done = 0; done < count; done += chunk) {
        int n = (int)(count - done < chunk ? count - done : chunk);
        btrm_eval_gather(data, NULL, first + done, n, x);
        /* reward[2n] = head(x[2n, D]) */
        if ((rc = btrm_head_forward(head, params, x, 2 * n, &ws)))
            break;
        btrm_head_pair_distance(head, &ws, x, n, dist);
        for (int k = 0; k < n; k++) {
            int64_t pair = first + done + k;
            double dr = (double)ws.reward[k] - (double)ws.reward[n + k];
            double m = data->margin ? data->margin[pair] : 0.0;
            double *o = out + 3 * (done + k);
            o[0] = dr;
            o[1] = dist[k];
            o[2] = btrm_softplus(-(dr - m));
        }
    }
fail:
    btrm_head_ws_free(&ws);
    free(x);
    free(dist);
    return rc;
}

static double correct_of(double dr) { return dr > 0 ? 1.0 : dr == 0 ? 0.5 : 0.0; }

void btrm_eval_result_free(btrm_eval_result *res)
{
    if (!res)
        return;
    free(res->by_category);
    free(res->by_subset);
    res->by_category = res->by_subset = NULL;
}

int btrm_eval_run(const btrm_head *head, const float *params,
                  const btrm_model_meta *meta, const btrm_pairs *data,
                  const btrm_comm *c, btrm_eval_result *res)
{
    memset(res, 0, sizeof *res);
    const int64_t n_pairs = data->n_pairs;
    int64_t first = 0, count = 0;
    btrm_comm_block(n_pairs, c->size, c->rank, &first, &count);

    double *local = NULL, *all = NULL, *sorted = NULL;
    int *counts = NULL;
    int rc = BTRM_MALLOC(local, 3 * (size_t)(count > 0 ? count : 1));
    if (!rc)
        rc = BTRM_MALLOC(all, 3 * (size_t)(n_pairs > 0 ? n_pairs : 1));
    if (!rc)
        rc = BTRM_MALLOC(sorted, (size_t)(n_pairs > 0 ? n_pairs : 1));
    if (!rc)
        rc = BTRM_MALLOC(counts, c->size);
    if (!rc)
        rc = BTRM_CALLOC(res->by_category, data->n_categories > 0 ? data->n_categories : 1);
    if (!rc)
        rc = BTRM_CALLOC(res->by_subset, data->n_subsets > 0 ? data->n_subsets : 1);
    if (!rc)
        rc = eval_local(head, params, data, first, count, local);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    if (3 * n_pairs > INT32_MAX) {
        rc = btrm_error_set(BTRM_EDATA, "%s: %lld pairs is more than evaluation supports",
                            data->path, (long long)n_pairs);
        goto fail;
    }
    rc = btrm_comm_allgatherv_f64(c, local, (int)(3 * count), all, counts);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;

    res->n_pairs = n_pairs;
    res->n_categories = data->n_categories;
    res->n_subsets = data->n_subsets;
    if (n_pairs == 0)
        goto fail; /* rc == 0: an empty result */

    /* Quintile edges of d: the 20/40/60/80th percentiles of this set's d. */
    for (int64_t i = 0; i < n_pairs; i++)
        sorted[i] = all[3 * i + 1];
    qsort(sorted, (size_t)n_pairs, sizeof *sorted, cmp_double);
    double edge[BTRM_EVAL_QUANTILES + 1];
    edge[0] = sorted[0];
    edge[BTRM_EVAL_QUANTILES] = sorted[n_pairs - 1];
    for (int q = 1; q < BTRM_EVAL_QUANTILES; q++)
        edge[q] = btrm_eval_percentile(sorted, n_pairs, (double)q / BTRM_EVAL_QUANTILES);
    for (int q = 0; q < BTRM_EVAL_QUANTILES; q++) {
        res->bins[q].lo = edge[q];
        res->bins[q].hi = edge[q + 1];
    }

    btrm_loss_params lp = btrm_model_loss_params(meta);
    double correct = 0, loss = 0, margin = 0, dist = 0, share_total = 0;
    double share[BTRM_EVAL_QUANTILES] = { 0 };
    for (int64_t i = 0; i < n_pairs; i++) {
        double dr = all[3 * i], d = all[3 * i + 1], l = all[3 * i + 2];
        double ok = correct_of(dr);
        correct += ok;
        loss += l;
        margin += dr;
        dist += d;
        /* Bins closed on the right, the first one including the minimum. */
        int q = 0;
        while (q < BTRM_EVAL_QUANTILES - 1 && d > edge[q + 1])
            q++;
        res->bins[q].n++;
        res->bins[q].correct += ok;
        double g = btrm_loss_weight(&lp, d, meta->dist_ema) * btrm_sigmoid(-dr) * d;
        share[q] += g;
        share_total += g;
        if (data->category && data->n_categories > 0) {
            res->by_category[data->category[i]].n++;
            res->by_category[data->category[i]].correct += ok;
        }
        if (data->subset && data->n_subsets > 0) {
            res->by_subset[data->subset[i]].n++;
            res->by_subset[data->subset[i]].correct += ok;
        }
    }
    res->accuracy = correct / (double)n_pairs;
    res->loss = loss / (double)n_pairs;
    res->margin_mean = margin / (double)n_pairs;
    res->dist_mean = dist / (double)n_pairs;
    for (int q = 0; q < BTRM_EVAL_QUANTILES; q++)
        res->bins[q].grad_share = share_total > 0 ? share[q] / share_total : 0.0;
fail:
    BTRM_FREE(local, all, sorted, counts);
    if (rc)
        btrm_eval_result_free(res);
    return rc;
}

static json_t *groups_json(const btrm_eval_group *groups, char *const *names, int n)
{
    json_t *obj = json_object();
    for (int g = 0; g < n; g++) {
        double acc = groups[g].n ? groups[g].correct / (double)groups[g].n : 0.0;
        json_object_set_new(obj, names[g],
                            json_pack("{s:I, s:f}", "n", (json_int_t)groups[g].n,
                                      "accuracy", acc));
    }
    return obj;
}

json_t *btrm_eval_to_json(const btrm_eval_result *res, const btrm_pairs *data)
{
    json_t *bins = json_array();
    for (int q = 0; q < BTRM_EVAL_QUANTILES; q++) {
        const btrm_eval_bin *b = &res->bins[q];
        double acc = b->n ? b->correct / (double)b->n : 0.0;
        json_array_append_new(bins, json_pack("{s:f, s:f, s:I, s:f, s:f}", "lo", b->lo,
                                              "hi", b->hi, "n", (json_int_t)b->n,
                                              "accuracy", acc, "grad_share", b->grad_share));
    }
    json_t *doc = json_object();
    btrm_format_json_stamp(doc, &btrm_format_eval);
    json_t *body = json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:o, s:o, s:o}",
                     "file", data->path, "n_pairs", (json_int_t)res->n_pairs,
                     "accuracy", res->accuracy, "loss", res->loss,
                     "margin_mean", res->margin_mean, "dist_mean", res->dist_mean,
                     "by_category", groups_json(res->by_category, data->categories,
                                                res->n_categories),
                     "by_subset", groups_json(res->by_subset, data->subsets, res->n_subsets),
                     "by_distance_quintile", bins);
    json_object_update(doc, body);
    json_decref(body);
    return doc;
}

/* The store's features are made the way the model's were (the backbone, its
 * file, the settings and the chat template, where both record them). */
static int same_features(const char *model_path, const char *data_path)
{
    btrm_feature_record *rec = calloc(2, sizeof *rec);
    int rc = rec ? btrm_model_read_features(model_path, &rec[0])
                 : btrm_error_set(BTRM_ENOMEM, "out of memory");
    if (!rc)
        rc = btrm_pairs_read_features(data_path, &rec[1]);
    if (!rc)
        rc = btrm_feature_record_compare(&rec[0], model_path, &rec[1], data_path, 1);
    free(rec);
    return rc;
}

int btrm_eval_inputs_open(btrm_eval_inputs *in, const char *model_path,
                          const char *data_path, const btrm_comm *c)
{
    int rc = 0;
    memset(in, 0, sizeof *in);
    if (model_path) {
        rc = btrm_comm_agree(c, btrm_model_read(model_path, &in->head, &in->params, &in->meta));
        in->has_model = !rc;
        if (!rc)
            rc = btrm_comm_agree(c, btrm_ftmodel_open_model(model_path, &in->backbone, &in->fm,
                                                            &in->backbone_params,
                                                            BTRM_FTMODEL_ENCODE_SEQS,
                                                            &in->has_backbone));
    }
    if (!rc && in->has_backbone) { /* the representations from the texts */
        rc = btrm_pairs_open(&in->data, data_path, c, 0);
        if (!rc)
            rc = btrm_textrep_tokens(data_path, in->data.n_rows, &in->fm, c, &in->tokens);
        size_t dim = (size_t)btrm_ftmodel_dim(&in->fm);
        if (!rc)
            rc = btrm_comm_agree(c, BTRM_MALLOC(in->features, (size_t)in->data.n_rows * dim));
        if (!rc)
            rc = btrm_textrep_features(&in->fm, in->backbone_params, &in->tokens, c,
                                       in->features);
        in->data.features = in->features;
        in->data.dim = (int)dim;
        in->data.features_dtype = BTRM_DTYPE_F32;
    } else if (!rc) {
        rc = btrm_pairs_open(&in->data, data_path, c,
                             BTRM_PAIRS_FEATURES | BTRM_PAIRS_REQUIRE_FEATURES);
    }
    if (!rc && in->has_model && in->data.dim != in->head.dim)
        rc = btrm_error_set(BTRM_EDATA, "%s: /features has dim %d but the model %s expects %d",
                            data_path, in->data.dim, model_path, in->head.dim);
    if (!rc && in->has_model && c->rank == 0)
        rc = same_features(model_path, data_path);
    return btrm_comm_agree(c, rc);
}

void btrm_eval_inputs_close(btrm_eval_inputs *in)
{
    btrm_pairs_close(&in->data);
    btrm_ftmodel_close(&in->fm);
    btrm_token_ids_free(&in->tokens);
    BTRM_FREE(in->params, in->backbone_params, in->features);
    in->params = in->backbone_params = in->features = NULL;
}

static void print_table(const btrm_eval_result *r, const btrm_pairs *data)
{
    printf("%s: %lld pairs\n", data->path, (long long)r->n_pairs);
    printf("  accuracy %.4f   loss %.4f   margin_mean %.4f   dist_mean %.4g\n", r->accuracy,
           r->loss, r->margin_mean, r->dist_mean);
    for (int g = 0; g < r->n_categories; g++)
        printf("  category %-20s n %-7lld accuracy %.4f\n", data->categories[g],
               (long long)r->by_category[g].n,
               r->by_category[g].n ? r->by_category[g].correct / r->by_category[g].n : 0.0);
    for (int g = 0; g < r->n_subsets; g++)
        printf("  subset   %-20s n %-7lld accuracy %.4f\n", data->subsets[g],
               (long long)r->by_subset[g].n,
               r->by_subset[g].n ? r->by_subset[g].correct / r->by_subset[g].n : 0.0);
    printf("  distance quintile      d range                n  accuracy  grad_share\n");
    for (int q = 0; q < BTRM_EVAL_QUANTILES; q++) {
        const btrm_eval_bin *b = &r->bins[q];
        printf("  q%d  %10.4g .. %-10.4g %9lld  %8.4f  %10.4f\n", q + 1, b->lo, b->hi,
               (long long)b->n, b->n ? b->correct / b->n : 0.0, b->grad_share);
    }
}

static void print_sections(const btrm_eval_sections *s)
{
    printf("  RewardBench sections (fractions; - = no pairs)\n");
    for (int k = 0; k < BTRM_RB_N; k++) {
        if (s->defined[k])
            printf("  section  %-20s n %-7lld score %.4f\n", btrm_rewardbench_names[k],
                   (long long)s->n[k], s->score[k]);
        else
            printf("  section  %-20s n %-7lld score -\n", btrm_rewardbench_names[k],
                   (long long)s->n[k]);
    }
    for (int i = 0; i < s->n_ignored; i++)
        printf("  ignored subset %s (not a RewardBench subset)\n", s->ignored[i]);
}

int btrm_eval_command(const char *model_path, const char *data_path, const char *json_path,
                      int rewardbench, int quiet, const btrm_comm *c)
{
    btrm_eval_inputs in;
    btrm_eval_result res;
    memset(&res, 0, sizeof res);
    btrm_eval_sections sec;
    memset(&sec, 0, sizeof sec);
    int rc = btrm_eval_inputs_open(&in, model_path, data_path, c);
    if (!rc)
        rc = btrm_eval_run(&in.head, in.params, &in.meta, &in.data, c, &res);
    if (!rc && rewardbench)
        rc = btrm_eval_sections_rewardbench(&res, &in.data, &sec);
    if (!rc && c->rank == 0) {
        if (!quiet)
            print_table(&res, &in.data);
        if (!quiet && rewardbench)
            print_sections(&sec);
        if (json_path) {
            json_t *j = btrm_eval_to_json(&res, &in.data);
            json_object_set_new(j, "model", json_string(model_path));
            if (rewardbench) {
                json_t *ignored = json_array();
                for (int i = 0; i < sec.n_ignored; i++)
                    json_array_append_new(ignored, json_string(sec.ignored[i]));
                json_object_set_new(j, "sections", btrm_eval_sections_json(&sec));
                json_object_set_new(j, "sections_ignored", ignored);
            }
            rc = btrm_json_write_atomic(json_path, j);
            json_decref(j);
        }
    }
    rc = btrm_comm_agree(c, rc);
    btrm_eval_sections_free(&sec);
    btrm_eval_result_free(&res);
    btrm_eval_inputs_close(&in);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* RewardBench sections: its own subset names (rewardbench/constants.py's
 * SUBSET_MAPPING; configs/categories/rewardbench.yaml lists the same). */

const char *const btrm_rewardbench_names[BTRM_RB_N] = { "Chat", "Chat Hard", "Safety",
                                                        "Reasoning", "overall" };
static const char *const rb_chat[] = { "alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard",
                                       "mt-bench-easy", "mt-bench-med", NULL };
static const char *const rb_chat_hard[] = { "mt-bench-hard", "llmbar-natural",
                                            "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                                            "llmbar-adver-GPTOut", "llmbar-adver-manual", NULL };
static const char *const rb_safety[] = { "refusals-dangerous", "refusals-offensive",
                                         "xstest-should-refuse", "xstest-should-respond",
                                         "donotanswer", NULL };
static const char *const rb_math[] = { "math-prm", NULL };
static const char *const rb_code[] = { "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python",
                                       "hep-rust", NULL };

static int in_list(const char *const *list, const char *name)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], name))
            return 1;
    return 0;
}

/* Pairs and correct pairs (ties 1/2) over the store's subsets in list. */
static void pool_subsets(const btrm_eval_result *res, const btrm_pairs *data,
                         const char *const *list, int64_t *n, double *correct)
{
    *n = 0;
    *correct = 0;
    for (int g = 0; g < res->n_subsets; g++)
        if (in_list(list, data->subsets[g])) {
            *n += res->by_subset[g].n;
            *correct += res->by_subset[g].correct;
        }
}

int btrm_eval_sections_rewardbench(const btrm_eval_result *res, const btrm_pairs *data,
                                   btrm_eval_sections *out)
{
    memset(out, 0, sizeof *out);
    const char *const *weighted[3] = { rb_chat, rb_chat_hard, rb_safety };
    for (int k = 0; k < 3; k++) {
        double correct;
        pool_subsets(res, data, weighted[k], &out->n[k], &correct);
        out->defined[k] = out->n[k] > 0;
        out->score[k] = out->defined[k] ? correct / (double)out->n[k] : 0.0;
    }
    int64_t n_math, n_code;
    double c_math, c_code;
    pool_subsets(res, data, rb_math, &n_math, &c_math);
    pool_subsets(res, data, rb_code, &n_code, &c_code);
    out->n[BTRM_RB_REASONING] = n_math + n_code;
    out->defined[BTRM_RB_REASONING] = n_math + n_code > 0;
    if (n_math > 0 && n_code > 0)
        out->score[BTRM_RB_REASONING] = 0.5 * (c_math / (double)n_math) +
                                        0.5 * (c_code / (double)n_code);
    else if (n_math + n_code > 0)
        out->score[BTRM_RB_REASONING] = (c_math + c_code) / (double)(n_math + n_code);
    out->defined[BTRM_RB_OVERALL] = 1;
    for (int k = 0; k < BTRM_RB_OVERALL; k++) {
        out->defined[BTRM_RB_OVERALL] &= out->defined[k];
        out->score[BTRM_RB_OVERALL] += 0.25 * out->score[k];
        out->n[BTRM_RB_OVERALL] += out->n[k];
    }
    if (!out->defined[BTRM_RB_OVERALL])
        out->score[BTRM_RB_OVERALL] = 0.0;
    int rc = BTRM_CALLOC(out->ignored, res->n_subsets > 0 ? res->n_subsets : 1);
    for (int g = 0; !rc && g < res->n_subsets; g++) {
        const char *name = data->subsets[g];
        if (res->by_subset[g].n > 0 && !in_list(rb_chat, name) && !in_list(rb_chat_hard, name) &&
            !in_list(rb_safety, name) && !in_list(rb_math, name) && !in_list(rb_code, name))
            out->ignored[out->n_ignored++] = name;
    }
    return rc;
}

void btrm_eval_sections_free(btrm_eval_sections *s)
{
    if (!s)
        return;
    free(s->ignored);
    s->ignored = NULL;
    s->n_ignored = 0;
}

json_t *btrm_eval_sections_json(const btrm_eval_sections *s)
{
    json_t *obj = json_object();
    for (int k = 0; obj && k < BTRM_RB_N; k++)
        json_object_set_new(obj, btrm_rewardbench_names[k],
                            s->defined[k] ? json_real(s->score[k]) : json_null());
    return obj;
}
