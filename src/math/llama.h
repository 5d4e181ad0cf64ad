/* llama.h: the forward pass of a Llama-architecture decoder (Llama 1/2/3,
 * TinyLlama, Mistral without sliding window, llama2.c checkpoints) on plain
 * buffers. Math layer: no MPI, no HDF5, no files; the weights are pointers
 * the io layer (llama_model.c) fills from a GGUF file or a llama2.c
 * checkpoint.
 *
 * One block, for x[T, dim] the residual stream of one sequence:
 *   xb = RMSNorm(x) * attn_norm                 RMSNorm(x) = x / sqrt(mean(x^2) + eps)
 *   q = xb Wq^T [T, n_heads*hd], k = xb Wk^T, v = xb Wv^T [T, n_kv*hd]
 *   rotate q, k: within each head, pairs (2j, 2j+1), j < rope_dim/2, by the
 *     angle pos * theta^(-2j/rope_dim) (adjacent pairs: llama2.c and the
 *     GGUF `llama` layout)
 *   per head h (kv head g = h / (n_heads/n_kv)): o_h = softmax(q_h k_g^T /
 *     sqrt(hd) + causal mask) v_g
 *   x += o Wo^T
 *   xb = RMSNorm(x) * ffn_norm;  x += (silu(xb W1^T) * (xb W3^T)) W2^T
 * then h = RMSNorm(x) * output_norm, logits = h Wout^T.
 *
 * Prefill works on a batch of whole sequences at once: every linear layer is
 * one cblas_sgemm over all the batch's tokens [N, dim] (weights stored as
 * F16/BF16/Q8_0 are dequantised one block of rows at a time into a float32
 * scratch, then sgemm), attention is done per sequence and head with sgemm
 * on causal row blocks. A sequence's result does not depend on the other
 * sequences of its batch except through BLAS's blocking (in practice it is
 * bitwise the same; the tests check 1e-6). */
#ifndef BTRM_LLAMA_H
#define BTRM_LLAMA_H

#include <stddef.h>
#include <stdint.h>

/* Weight storage types (values equal ggml's, so the GGUF loader can pass
 * them through). */
enum btrm_llama_wtype {
    BTRM_WT_F32 = 0,
    BTRM_WT_F16 = 1,
    BTRM_WT_Q8_0 = 8, /* blocks of 32: fp16 scale d, 32 int8 q; x = d * q */
    BTRM_WT_BF16 = 30,
};

/* A row-major matrix [rows, cols] (PyTorch's nn.Linear layout [out, in]). */
typedef struct btrm_llama_matrix {
    const void *data;
    int type;          /* BTRM_WT_* */
    int rows, cols;
} btrm_llama_matrix;

typedef struct btrm_llama_layer {
    const float *attn_norm, *ffn_norm; /* [dim] */
    btrm_llama_matrix wq, wk, wv, wo;  /* [q_dim, dim], [kv_dim, dim] x2, [dim, q_dim] */
    btrm_llama_matrix w1, w2, w3;      /* gate [hidden, dim], down [dim, hidden], up [hidden, dim] */
} btrm_llama_layer;

typedef struct btrm_llama_hparams {
    int dim;          /* embedding_length */
    int hidden_dim;   /* feed_forward_length */
    int n_layers;     /* block_count */
    int n_heads;      /* attention.head_count */
    int n_kv_heads;   /* attention.head_count_kv */
    int head_dim;     /* dim / n_heads unless the file says otherwise */
    int rope_dim;     /* rotated dimensions per head (<= head_dim, even) */
    int vocab_size;
    int context;      /* context_length (positions the model was made for) */
    float norm_eps;   /* attention.layer_norm_rms_epsilon */
    float rope_theta; /* rope.freq_base, default 10000 */
} btrm_llama_hparams;

typedef struct btrm_llama_weights {
    btrm_llama_matrix token_embd; /* [vocab, dim] */
    btrm_llama_layer *layers;     /* [n_layers] */
    const float *output_norm;     /* [dim] */
    btrm_llama_matrix output;     /* [vocab, dim]; token_embd when tied */
} btrm_llama_weights;

/* Checks the hyperparameters (positive, divisible, rope_dim even) and that
 * every matrix has its expected shape and a supported type. 0 or BTRM_EDATA
 * naming the first inconsistency. */
int btrm_llama_check(const btrm_llama_hparams *hp, const btrm_llama_weights *w);

/* Work buffers for batches of up to max_tokens tokens in total and
 * sequences of up to max_seq tokens, allocated once (btrm_llama_ws_init),
 * for the weights w (NULL: any weights of these hyperparameters; with w, the
 * dequantisation buffer is left out when every matrix is float32). */
typedef struct btrm_llama_ws {
    int max_tokens, max_seq;
    float *x, *xb;           /* [max_tokens, dim] */
    float *q, *att;          /* [max_tokens, q_dim] */
    float *k, *v;            /* [max_tokens, kv_dim] */
    float *hb, *hb2;         /* [max_tokens, hidden] */
    float *scores;           /* [ATT_ROWS, max_seq] */
    float *wbuf;             /* dequantised rows of a weight [wbuf_rows, max cols];
                              * NULL when every matrix is float32 */
    int wbuf_rows;           /* rows per dequantisation block (may be lowered
                              * after init, as the tests do) */
    float *rope_cos, *rope_sin; /* [max_seq, rope_dim/2] */
    double *pool;            /* [dim] the mean's accumulator */
    int rope_dim, rope_half;
    double flops;            /* floating-point operations since init (counted) */
} btrm_llama_ws;

int btrm_llama_ws_init(btrm_llama_ws *ws, const btrm_llama_hparams *hp,
                       const btrm_llama_weights *w, int max_tokens, int max_seq);
void btrm_llama_ws_free(btrm_llama_ws *ws); /* zeroed or NULL: no-op */

/* Forward of n_seqs sequences, their token ids back to back in ids
 * (lens[s] tokens each, sum <= ws->max_tokens, each in [1, ws->max_seq],
 * positions 0.. within each sequence). Writes, for each sequence, the
 * final-RMSNorm hidden state of its last token to last[s*dim] and/or the
 * mean over its tokens of the final-RMSNorm hidden states to mean[s*dim]
 * (either may be NULL; the mean is summed in double). 0, or BTRM_EDATA for
 * an id outside the vocabulary (naming the sequence and position) or a
 * length out of range. */
int btrm_llama_forward(const btrm_llama_hparams *hp, const btrm_llama_weights *w,
                       btrm_llama_ws *ws, const int32_t *ids, const int *lens, int n_seqs,
                       float *last, float *mean);

/* logits[rows, vocab] = h[rows, dim] Wout^T, h from btrm_llama_forward
 * (rows <= ws->max_tokens). */
void btrm_llama_logits(const btrm_llama_hparams *hp, const btrm_llama_weights *w,
                       btrm_llama_ws *ws, const float *h, int rows, float *logits);

/* Floating-point operations of one forward over sequences of these lengths
 * (linear layers 2*N*in*out, attention 2*2*hd per (query, key) pair kept by
 * the causal mask; norms and activations not counted). */
double btrm_llama_flops(const btrm_llama_hparams *hp, const int *lens, int n_seqs);

/* Row r of a weight as float32 (out[cols]); exposed for the loaders' tests. */
void btrm_llama_dequant_row(const btrm_llama_matrix *m, int r, float *out);
/* IEEE binary16 / bfloat16 -> float32, exact. */
float btrm_llama_f16_to_f32(uint16_t h);
float btrm_llama_bf16_to_f32(uint16_t h);
/* Bytes of one row of a matrix of this type and width (0: unsupported). */
size_t btrm_llama_row_bytes(int type, int cols);

/* The block kernels of btrm_llama_forward, for llama_train.c:
 * out[rows, dim] = x / sqrt(mean(x^2) + eps) * weight (row by row, the sum
 * of squares in double); RoPE in place on x[T, n_heads*hd] of one sequence
 * (positions 0..T-1, ws's tables); causal attention of one sequence of T
 * tokens, q [T, q_dim], k, v [T, kv_dim] (rows of the batch buffers) into
 * att [T, q_dim], with ws->scores as scratch. */
void btrm_llama_rmsnorm(float *out, const float *x, const float *weight, int rows, int dim,
                        float eps);
void btrm_llama_rope(const btrm_llama_ws *ws, float *x, int T, int n_heads, int hd);
void btrm_llama_attention(btrm_llama_ws *ws, const btrm_llama_hparams *hp, const float *q,
                          const float *k, const float *v, float *att, int T);
/* Softmax of each row of a causal block of scores S[nb, keys] in place:
 * row r (query i0 + r) over keys 0..i0+r, the keys after it set to 0. */
void btrm_llama_softmax_causal(float *S, int nb, int keys, int i0);
/* btrm_llama_forward's input checks: 0 and *n_tokens = sum(lens), or
 * BTRM_EDATA naming the sequence (and position) out of range. */
int btrm_llama_batch_check(const btrm_llama_hparams *hp, const btrm_llama_ws *ws,
                           const int32_t *ids, const int *lens, int n_seqs, int *n_tokens);
/* btrm_llama_forward's pooling of the residual stream x[N, dim] after the
 * last block: RMSNorm(x) * norm per token, the last token's into last,
 * the mean over the sequence's tokens (summed in double) into mean (either
 * may be NULL); ws->xb and ws->pool as scratch. */
void btrm_llama_pool(const btrm_llama_hparams *hp, btrm_llama_ws *ws, const float *x,
                     const float *norm, const int *lens, int n_seqs, float *last, float *mean);

#endif
