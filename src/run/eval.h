/* eval.h: evaluation of a reward head on a pair store, distributed over the
 * ranks: pairwise accuracy, loss, margin, accuracy per category and subset,
 * and accuracy and gradient share per quintile of the representation
 * distance d = ||h_c - h_r||. Orchestrator: uses head (math), pairs (io) and
 * comm. */
#ifndef BTRM_EVAL_H
#define BTRM_EVAL_H

#include "comm.h"
#include "ftmodel.h"
#include "head.h"
#include "loss.h"
#include "modelfile.h"
#include "pairs.h"
#include "tokcache.h"

#include <jansson.h>

#define BTRM_EVAL_QUANTILES 5

typedef struct btrm_eval_group {
    int64_t n;
    double correct;            /* ties count 1/2 */
} btrm_eval_group;

typedef struct btrm_eval_bin {
    double lo, hi;             /* d range: [lo, hi] for the first bin, (lo, hi] after */
    int64_t n;
    double correct;
    double grad_share;         /* share of sum_i w_i sigma(-dr_i) d_i */
} btrm_eval_bin;

typedef struct btrm_eval_result {
    int64_t n_pairs;
    double accuracy;           /* ties count 1/2 */
    double loss;               /* mean of -log sigmoid(dr - m), unweighted */
    double margin_mean;        /* mean dr */
    double dist_mean;          /* mean d */
    btrm_eval_group *by_category;  /* [n_categories] */
    btrm_eval_group *by_subset;    /* [n_subsets] */
    int n_categories, n_subsets;
    btrm_eval_bin bins[BTRM_EVAL_QUANTILES];
} btrm_eval_result;

/* Copies the feature rows of pairs[first, first+count) of a pair list into
 * x[2*count, D]: the chosen rows first, then the rejected rows (head.h's pair
 * layout). order == NULL means the identity (pair k is pair first + k). */
void btrm_eval_gather(const btrm_pairs *data, const int64_t *order, int64_t first,
                      int64_t count, float *x);
/* The same into rows of dtype (BTRM_DTYPE_F32, or BTRM_DTYPE_BF16 for a bf16
 * GEMM input), converted from the store's type as they are copied. */
void btrm_eval_gather_typed(const btrm_pairs *data, const int64_t *order, int64_t first,
                            int64_t count, void *x, int dtype);

/* Collective: evaluates head/params on data (every rank takes a contiguous
 * block of pairs). meta gives the loss the model was trained with (for the
 * weights in grad_share) and dbar. Every rank gets the same result. */
int btrm_eval_run(const btrm_head *head, const float *params,
                  const btrm_model_meta *meta, const btrm_pairs *data,
                  const btrm_comm *c, btrm_eval_result *res);
void btrm_eval_result_free(btrm_eval_result *res);

/* The JSON object of docs/format.md ("eval result"); caller owns it. */
json_t *btrm_eval_to_json(const btrm_eval_result *res, const btrm_pairs *data);

/* RewardBench's section scores (Lambert et al. 2024; docs/format.md) from
 * the accuracy of each subset named as RewardBench names them: Chat, Chat
 * Hard and Safety are the accuracies of their subsets weighted by the
 * store's pair counts; Reasoning is 1/2 math-prm + 1/2 the count-weighted
 * accuracy of the six hep-* subsets (the half that has pairs alone, when
 * the other has none); overall is the mean of the four (undefined unless
 * all four are). A section without pairs is undefined. Subsets of the store
 * outside the four sections are ignored and listed. */
enum { BTRM_RB_CHAT = 0, BTRM_RB_CHAT_HARD, BTRM_RB_SAFETY, BTRM_RB_REASONING,
       BTRM_RB_OVERALL, BTRM_RB_N };
extern const char *const btrm_rewardbench_names[BTRM_RB_N]; /* "Chat", ..., "overall" */
typedef struct btrm_eval_sections {
    double score[BTRM_RB_N];
    int defined[BTRM_RB_N];
    int64_t n[BTRM_RB_N];          /* pairs counted (overall: all four) */
    const char **ignored;          /* subsets with pairs outside the sections */
    int n_ignored;
} btrm_eval_sections;
int btrm_eval_sections_rewardbench(const btrm_eval_result *res, const btrm_pairs *data,
                                   btrm_eval_sections *out);
void btrm_eval_sections_free(btrm_eval_sections *s);
/* {"Chat": x, ..., "overall": x} (null where undefined); caller owns it. */
json_t *btrm_eval_sections_json(const btrm_eval_sections *s);

/* A model file and a pair store opened for evaluation: the model on every
 * rank (when model_path is not NULL), the store with its features; for a
 * model trained with model.backbone, the features are the backbone's
 * representations of the store's texts (computed over the ranks, with its
 * trained adapters or blocks), so the store needs /texts, not /features. */
typedef struct btrm_eval_inputs {
    int has_model;
    btrm_head head;
    float *params;
    btrm_model_meta meta;
    btrm_pairs data;
    int has_backbone;
    btrm_model_backbone backbone;
    btrm_ftmodel fm;
    float *backbone_params;  /* the trained tensors (NULL for a frozen backbone) */
    btrm_token_ids tokens;
    float *features;         /* [n_rows, dim]: data.features */
} btrm_eval_inputs;
/* Collective: opens both; BTRM_EDATA when the store's dim is not the
 * model's (or it has no /texts for a model with a backbone), or when the
 * backbone's base file changed since training; BTRM_EUSAGE (naming both)
 * when the model records that its features were made another way than the
 * store's (feature_record.h). Every rank returns the same code; close in
 * any case. */
int btrm_eval_inputs_open(btrm_eval_inputs *in, const char *model_path,
                          const char *data_path, const btrm_comm *c);
void btrm_eval_inputs_close(btrm_eval_inputs *in);

/* `btrm eval`: evaluates model_path on data_path; rank 0 prints the table
 * (unless quiet) and writes the JSON result to json_path (when not NULL),
 * with RewardBench's sections when rewardbench is set. Collective; every
 * rank returns the same code. */
int btrm_eval_command(const char *model_path, const char *data_path, const char *json_path,
                      int rewardbench, int quiet, const btrm_comm *c);

/* Percentile of sorted values with linear interpolation (numpy's default). */
double btrm_eval_percentile(const double *sorted, int64_t n, double q);

#endif
