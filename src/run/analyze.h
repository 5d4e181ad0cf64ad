/* analyze.h: `btrm analyze`, the distance bias of a pair store made visible
 * before (or after) training (docs/newton.md, "btrm analyze"). Orchestrator:
 * each rank reads its contiguous block of pairs (pairs), runs the head when a
 * model is given (head), forms the second-moment matrix of the pair
 * differences in block-cyclic layout and diagonalises it (scalapack), and
 * reduces the statistics (comm).
 *
 * With h the representation of a response (the features for a linear head or
 * without a model; the input of `out` for an mlp model) and z_i = h_c,i -
 * h_r,i:
 *   - the distribution of d_i = ||z_i||: quantiles, mean, a histogram, overall
 *     and per category and subset;
 *   - the share of the BT gradient norm sum_i sigma(-dr_i) d_i carried by each
 *     d-quintile (and NormBT's, with omega_i d_i in place of d_i), at the
 *     model, or at w = 0 where sigma(-dr_i) = 1/2 for every pair;
 *   - the principal components of the z_i: C = (1/N) Z^T Z (uncentred) by
 *     pdsyevd, its top-k eigenvalues, explained variance lambda_j / trace C,
 *     and each category's mean |z.v_j| on the top components. */
#ifndef BTRM_ANALYZE_H
#define BTRM_ANALYZE_H

#include "comm.h"
#include "head.h"
#include "modelfile.h"
#include "pairs.h"
#include "scalapack.h"

#include <jansson.h>
#include <stdio.h>

#define BTRM_ANALYZE_QUANTILES 7   /* levels 0, 5, 25, 50, 75, 95, 100 % */
#define BTRM_ANALYZE_BINS 5        /* d-quintiles, as in btrm eval */
#define BTRM_ANALYZE_HIST 40       /* histogram bins of d */
#define BTRM_ANALYZE_TOP_K 10      /* default principal components */

extern const double btrm_analyze_levels[BTRM_ANALYZE_QUANTILES];

typedef struct btrm_analyze_dist {
    int64_t n;
    double mean;
    double q[BTRM_ANALYZE_QUANTILES];
    int64_t hist[BTRM_ANALYZE_HIST];  /* counts between the result's hist_edges */
} btrm_analyze_dist;

typedef struct btrm_analyze_bin {
    double lo, hi;             /* d range: [lo, hi] for the first bin, (lo, hi] after */
    int64_t n;
    double grad_share;         /* share of sum_i sigma(-dr_i) d_i (BT) */
    double grad_share_normbt;  /* share of sum_i omega_i sigma(-dr_i) d_i */
} btrm_analyze_bin;

typedef struct btrm_analyze_opts {
    int top_k;        /* principal components reported; 0 = BTRM_ANALYZE_TOP_K */
    int block;        /* block size of C's layout; 0 = btrm_grid_block */
    int trust_query;  /* tests only: use pdsyevd's queried workspace as is */
} btrm_analyze_opts;

typedef struct btrm_analyze_result {
    int64_t n_pairs;
    int dim;                       /* width of h */
    int at_model;                  /* 1: sigma(-dr) from the model; 0: at w = 0 */
    double dbar;                   /* mean d */
    btrm_analyze_dist all;
    btrm_analyze_dist *by_category, *by_subset; /* [n_categories], [n_subsets] */
    int n_categories, n_subsets;
    double hist_edges[BTRM_ANALYZE_HIST + 1];
    int hist_log;                  /* edges spaced logarithmically (min d > 0) */
    btrm_analyze_bin bins[BTRM_ANALYZE_BINS];
    int top_k;
    double trace;                  /* trace C = mean d^2 */
    double *eigenvalues;           /* [dim], descending */
    double *components;            /* [top_k, dim]: v_j, unit, largest |entry| positive */
    double *proj_all;              /* [top_k]: mean |z.v_j| over all pairs */
    double *proj_by_category;      /* [n_categories, top_k] */
    double max_residual;           /* max_j ||C v_j - lambda_j v_j|| / lambda_1 (top-k) */
    btrm_syevd_info lwork;         /* rank 0's pdsyevd workspace */
} btrm_analyze_result;

/* Collective over c. head and params may be NULL (h = the features); meta
 * (may be NULL) gives NormBT's eps and cap for grad_share_normbt (defaults
 * otherwise; d-bar is always this set's mean d). data must be opened with
 * BTRM_PAIRS_FEATURES, and its dim must be head->dim. Every rank gets the
 * same result. */
int btrm_analyze_run(const btrm_pairs *data, const btrm_head *head, const float *params,
                     const btrm_model_meta *meta, const btrm_comm *c,
                     const btrm_analyze_opts *opts, btrm_analyze_result *res);
void btrm_analyze_result_free(btrm_analyze_result *res);

/* The JSON document of docs/newton.md; caller owns it. model may be NULL. */
json_t *btrm_analyze_to_json(const btrm_analyze_result *res, const btrm_pairs *data,
                             const char *model);
/* The readable report. */
void btrm_analyze_print(const btrm_analyze_result *res, const btrm_pairs *data, FILE *out);

/* `btrm analyze`: analyzes data_path (through model_path's head when it is
 * not NULL); rank 0 prints the report (unless quiet) and writes the JSON
 * document to json_path (when not NULL). Collective; every rank returns the
 * same code. */
int btrm_analyze_command(const char *model_path, const char *data_path,
                         const char *json_path, int quiet, const btrm_analyze_opts *opts,
                         const btrm_comm *c);

#endif
