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
    int precision;                /* BTRM_PREC_* of the hidden layers' GEMMs (gemm.h) */
    int x_dtype;                  /* the type of the last forward's x (dtype.h) */
    int grad_overwrite;           /* backward writes grad (=) instead of adding (+=):
                                   * no zeroing pass, and beta 0 in the dW products */
    /* Optional: called by backward each time a region of grad is final, in the
     * order btrm_head_grad_regions lists them (region = its index there), so
     * that a caller can start reducing it while backward goes on. grad_blocks
     * (>= 1) splits each weight gradient into that many row blocks. A nonzero
     * return stops backward, which returns it. */
    int (*grad_ready)(void *ctx, int region);
    void *grad_ready_ctx;
    int grad_blocks;
    uint16_t *in_bf16[BTRM_MAX_LAYERS]; /* precision bf16: each hidden layer's input
                                   * [rows, width[l]] rounded once, for forward and dW */
    const uint16_t *params_bf16;  /* precision bf16, optional: the parameters rounded to
                                   * bf16 (same offsets), kept in step with them by the
                                   * caller (btrm_optim_pass.param_bf16); NULL: the
                                   * weights are rounded in each product */
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

/* Precision fp32. */
int btrm_head_ws_init(btrm_head_ws *ws, const btrm_head *head, int max_rows);
/* The precision of the hidden layers' matrix products: BTRM_PREC_FP32, or
 * BTRM_PREC_BF16 (inputs rounded to bf16, fp32 accumulation; the output
 * layer, the activations, the distances and every gradient stay fp32). 0 or
 * BTRM_EUSAGE (this build cannot run it) or BTRM_ENOMEM. */
int btrm_head_ws_set_precision(btrm_head_ws *ws, const btrm_head *head, int precision);
void btrm_head_ws_free(btrm_head_ws *ws);

/* ws->reward[rows] = head(x[rows, D]); keeps activations for backward.
 * 0, or the error of a matrix product (gemm.h). */
int btrm_head_forward(const btrm_head *head, const float *params, const float *x, int rows,
                      btrm_head_ws *ws);
/* The same with x of type x_dtype (dtype.h): BTRM_DTYPE_F32, or
 * BTRM_DTYPE_BF16 for an mlp head in precision bf16 (x is then only a GEMM
 * input) or for a linear head (bf16 features read as they are stored: h = x,
 * widened exactly in the forward, distance and gradient kernels). The
 * backward pass of these rows gets the same x. */
int btrm_head_forward_typed(const btrm_head *head, const float *params, const void *x,
                            int x_dtype, int rows, btrm_head_ws *ws);
/* The representation h of each row after forward: x itself for linear. */
const float *btrm_head_rep(const btrm_head *head, const btrm_head_ws *ws,
                           const float *x);
/* dist[i] = ||h_c - h_r||_2 for the n_pairs pairs of the last forward
 * (rows i and n_pairs + i), accumulated in double; x is the last forward's
 * input, of the type it had (a linear head's h is x: bf16 rows are widened
 * exactly, so the distance is that of the float32 values they hold). */
void btrm_head_pair_distance(const btrm_head *head, const btrm_head_ws *ws,
                             const void *x, int n_pairs, float *dist);
/* Accumulates into grad (+=; with ws->grad_overwrite, writes it) the gradient
 * of a loss whose derivatives with
 * respect to the rewards are dL/dr_c = g_diff + g_sum, dL/dr_r = -g_diff + g_sum,
 * and, when ws->dx is set, writes (=) the input gradient dL/dx [2 n_pairs, D]
 * (in fp32 whatever ws->precision).
 * out.weight's gradient is formed per pair from (h_c - h_r) and (h_c + h_r),
 * never as a difference of sums (which cancels for close pairs); out.bias's
 * gradient is 2*sum(g_sum), exactly zero without reward centering. */
int btrm_head_pair_backward(const btrm_head *head, const float *params, const float *x,
                            int n_pairs, const float *g_diff, const float *g_sum,
                            btrm_head_ws *ws, float *grad);
int btrm_head_pair_backward_typed(const btrm_head *head, const float *params, const void *x,
                                  int x_dtype, int n_pairs, const float *g_diff,
                                  const float *g_sum, btrm_head_ws *ws, float *grad);

/* The regions of the flat gradient in the order btrm_head_pair_backward
 * finishes them, with each weight gradient in `blocks` row blocks: first[i],
 * count[i] (elements). Writes at most max; returns how many there are (every
 * element of the buffer is in exactly one). */
int btrm_head_grad_regions(const btrm_head *head, int blocks, size_t *first, size_t *count,
                           int max);

/* Activation and its derivative (exposed for tests). */
float btrm_head_activate(int activation, float z);
float btrm_head_activate_grad(int activation, float z);

#endif
