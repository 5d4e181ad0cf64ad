/* head.h: reward heads (linear, mlp) on plain float buffers. Math layer: no
 * MPI, no HDF5.
 *
 * Parameters live in one flat float buffer, in this order:
 *   fc0.weight [H1, D], fc0.bias [H1], ..., out.weight [1, H_last], out.bias [1]
 * (a linear head has only `out`, with H_last = D). weight is row-major
 * [out, in], as torch.nn.Linear stores it.
 *
 * Pair layout: a batch of n pairs is 2n rows, rows [0, n) the chosen
 * responses and rows [n, 2n) the rejected ones, pair i = rows (i, n + i). */
#ifndef BTRM_HEAD_H
#define BTRM_HEAD_H

#include "types.h"

#include <stddef.h>
#include <stdint.h>

#define BTRM_MAX_LAYERS (BTRM_MAX_HIDDEN + 1)

typedef struct btrm_tensor_view {
    char name[16];      /* "fc0", ..., "out" */
    int out, in;        /* weight shape [out, in] */
    size_t weight_off;  /* offsets into the flat parameter buffer */
    size_t bias_off;
} btrm_tensor_view;

typedef struct btrm_head {
    int kind;                         /* BTRM_HEAD_LINEAR | BTRM_HEAD_MLP */
    int activation;                   /* BTRM_ACT_* (mlp) */
    int dim;                          /* input width D */
    int n_layers;                     /* linear layers including out */
    int width[BTRM_MAX_LAYERS + 1];   /* width[0] = D, ..., width[n_layers] = 1 */
    btrm_tensor_view layer[BTRM_MAX_LAYERS];
    size_t n_params;
    int rep_dim;                      /* width of h, the input of out */
} btrm_head;

/* Work buffers for up to max_rows rows, allocated once and reused. */
typedef struct btrm_head_ws {
    int max_rows;
    float *pre[BTRM_MAX_LAYERS];  /* pre-activations of hidden layers [rows, H_l] */
    float *act[BTRM_MAX_LAYERS];  /* activations of hidden layers [rows, H_l] */
    float *delta;                 /* backprop scratch [rows, max H] */
    float *delta_next;            /* backprop scratch [rows, max H] */
    float *pair_diff;             /* h_c - h_r and h_c + h_r scratch [rows/2, rep_dim] */
    float *reward;                /* [rows] */
    float *dx;                    /* optional, owned by the caller: when set, the pair
                                   * backward also writes dL/dx [rows, D] here (the
                                   * input gradient a backbone that trains needs) */
} btrm_head_ws;

int btrm_head_init(btrm_head *head, int kind, int activation, int dim,
                   const int *hidden, int n_hidden);
/* PyTorch nn.Linear's default: weight and bias uniform in +-1/sqrt(fan_in),
 * drawn deterministically from seed (tensor by tensor, in buffer order). */
void btrm_head_init_params(const btrm_head *head, float *params, uint64_t seed);

int btrm_head_ws_init(btrm_head_ws *ws, const btrm_head *head, int max_rows);
void btrm_head_ws_free(btrm_head_ws *ws);

/* ws->reward[rows] = head(x[rows, D]); keeps activations for backward. */
void btrm_head_forward(const btrm_head *head, const float *params, const float *x,
                       int rows, btrm_head_ws *ws);
/* The representation h of each row after forward: x itself for linear. */
const float *btrm_head_rep(const btrm_head *head, const btrm_head_ws *ws,
                           const float *x);
/* dist[i] = ||h_c - h_r||_2 for the n_pairs pairs of the last forward
 * (rows i and n_pairs + i), accumulated in double. */
void btrm_head_pair_distance(const btrm_head *head, const btrm_head_ws *ws,
                             const float *x, int n_pairs, float *dist);
/* Accumulates into grad (+=) the gradient of a loss whose derivatives with
 * respect to the rewards are dL/dr_c = g_diff + g_sum, dL/dr_r = -g_diff + g_sum,
 * and, when ws->dx is set, writes (=) the input gradient dL/dx [2 n_pairs, D].
 * out.weight's gradient is formed per pair from (h_c - h_r) and (h_c + h_r),
 * never as a difference of sums (which cancels for close pairs); out.bias's
 * gradient is 2*sum(g_sum), exactly zero without reward centering. */
void btrm_head_pair_backward(const btrm_head *head, const float *params,
                             const float *x, int n_pairs, const float *g_diff,
                             const float *g_sum, btrm_head_ws *ws, float *grad);

/* Activation and its derivative (exposed for tests). */
float btrm_head_activate(int activation, float z);
float btrm_head_activate_grad(int activation, float z);

#endif
