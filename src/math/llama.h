/* llama.h: the forward pass of the decoder-only transformers btrm reads
 * from GGUF files (Llama 1/2/3, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3,
 * Phi-3, llama2.c checkpoints) on plain buffers. Math layer: no MPI, no
 * HDF5, no files; the weights are pointers the io layer (llama_model.c)
 * fills from a file.
 *
 * One block, for x[T, dim] the residual stream of one sequence; the named
 * differences between architectures are hyperparameters or optional
 * weights (NULL: absent), never a second forward:
 *   xb = RMSNorm(x) * attn_norm                 RMSNorm(x) = x / sqrt(mean(x^2) + eps)
 *   q = xb Wq^T + bq [T, n_heads*hd], k = xb Wk^T + bk, v = xb Wv^T + bv [T, n_kv*hd]
 *                                               (biases: qwen2)
 *   q_h = RMSNorm(q_h) * q_norm, k_g likewise   (per head: qwen3, gemma3)
 *   rotate q, k within each head by the angle pos * rope_scale *
 *     theta^(-2j/rope_dim), j < rope_dim/2, on the pairs (2j, 2j+1)
 *     (adjacent: llama) or (j, j + rope_dim/2) (NeoX halves: qwen2/3,
 *     gemma2/3, phi3), as llama.cpp's rope-type table says
 *   per head h (kv head g = h / (n_heads/n_kv)): s = attn_scale q_h k_g^T,
 *     s = cap tanh(s / cap) (attn_softcap: gemma2), causal mask, and on
 *     sliding-window layers only the keys with pos_q - pos_k < window;
 *     o_h = softmax(s) v_g
 *   a = o Wo^T; a = RMSNorm(a) * attn_post_norm (gemma2/3); x += a
 *   xb = RMSNorm(x) * ffn_norm
 *   f = (act(xb W1^T) * (xb W3^T)) W2^T, act = SiLU or GELU-tanh (gemma)
 *   f = RMSNorm(f) * ffn_post_norm (gemma2/3); x += f
 * with x = embedding * embed_scale at the start (gemma: sqrt(dim)), then
 * h = RMSNorm(x) * output_norm, logits = h Wout^T (softcapped: gemma2).
 * Gemma's (1 + w) norm weights arrive with the 1 added (llama.cpp's
 * converter adds it), so every norm here is RMSNorm(x) * w.
 *
 * Prefill works on a batch of whole sequences at once: every linear layer is
 * one btrm_gemm over all the batch's tokens [N, dim] (weights stored in a
 * quantised or half type are dequantised one block of rows at a time into
 * the GEMM's input precision, btrm_llama_ws_set_precision), or with kernel
 * int8 one integer product (qgemm.h) on the weights as stored; attention is
 * done per sequence and head with float32 btrm_gemm on causal row blocks. A sequence's result does not
 * depend on the other sequences of its batch except through BLAS's blocking
 * (in practice it is bitwise the same; the tests check 1e-6). */
#ifndef BTRM_LLAMA_H
#define BTRM_LLAMA_H

#include <stddef.h>
#include <stdint.h>

/* A row-major matrix [rows, cols] (PyTorch's nn.Linear layout [out, in]),
 * stored in one of ggml's types (quant.h: BTRM_Q_*). */
typedef struct btrm_llama_matrix {
    const void *data;
    int type;          /* BTRM_Q_* */
    int rows, cols;
} btrm_llama_matrix;

/* Rows [first, first + rows) of m: a matrix of its own (fused tensors such
 * as Phi-3's attn_qkv are three such views). */
btrm_llama_matrix btrm_llama_rows(const btrm_llama_matrix *m, int first, int rows);

typedef struct btrm_llama_layer {
    const float *attn_norm, *ffn_norm; /* [dim] */
    btrm_llama_matrix wq, wk, wv, wo;  /* [q_dim, dim], [kv_dim, dim] x2, [dim, q_dim] */
    btrm_llama_matrix w1, w2, w3;      /* gate [hidden, dim], down [dim, hidden], up [hidden, dim] */
    /* optional (NULL: absent) */
    const float *bq, *bk, *bv;         /* [q_dim], [kv_dim], [kv_dim]: qwen2 */
    const float *q_norm, *k_norm;      /* [head_dim]: qwen3, gemma3 */
    const float *attn_post_norm, *ffn_post_norm; /* [dim]: gemma2, gemma3 */
} btrm_llama_layer;

/* Feed-forward activations. */
enum { BTRM_FFN_SILU = 0, BTRM_FFN_GELU_TANH = 1 };

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
    /* the named differences; zero values give Llama */
    int rope_neox;          /* 1: rotate (j, j + rope_dim/2) instead of (2j, 2j+1) */
    float rope_scale;       /* positions times this (linear rope scaling); 0 = 1 */
    float rope_theta_local; /* base of sliding-window layers; 0 = rope_theta */
    float rope_scale_local; /* scale of sliding-window layers; 0 = 1 */
    int sliding_window;     /* keys with pos_q - pos_k < window only; 0 = none */
    int swa_period;         /* sliding-window layers: 0 = all; p = those with
                             * l % p < p - 1 (gemma2: 2, gemma3: 6) */
    float embed_scale;      /* token embeddings times this; 0 = 1 */
    float attn_scale;       /* score scale; 0 = 1/sqrt(head_dim) */
    float attn_softcap;     /* 0 = none */
    float final_softcap;    /* logits; 0 = none */
    int ffn_act;            /* BTRM_FFN_* */
} btrm_llama_hparams;

/* Whether layer l uses the sliding window. */
int btrm_llama_layer_is_local(const btrm_llama_hparams *hp, int l);

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
/* The hyperparameters alone (what btrm_llama_check checks first): sizes
 * positive, every width (dim, hidden, heads x head dim) at most
 * BTRM_LLAMA_MAX_WIDTH, so that no product of them overflows an int;
 * heads a multiple of key/value heads; an even rope dimension within the
 * head. A model file's reader calls it before it sizes anything. */
#define BTRM_LLAMA_MAX_WIDTH (1 << 20)
int btrm_llama_check_hparams(const btrm_llama_hparams *hp);

/* Work buffers for batches of up to max_tokens tokens in total and
 * sequences of up to max_seq tokens, allocated once (btrm_llama_ws_init),
 * for the weights w (NULL: any weights of these hyperparameters; with w, the
 * dequantisation buffer is left out when every matrix is float32, and the
 * int8 buffers are made for the weight types present). kernel: BTRM_KERNEL_*
 * (qgemm.h; auto = dequant). */
typedef struct btrm_llama_ws {
    int max_tokens, max_seq;
    int kernel;              /* BTRM_KERNEL_DEQUANT or _INT8 (auto resolved) */
    int prec;                /* GEMM input precision of the linear layers (gemm.h):
                              * BTRM_PREC_FP32, or BTRM_PREC_BF16 through
                              * btrm_llama_ws_set_precision */
    float *x, *xb;           /* [max_tokens, dim] */
    float *q, *att;          /* [max_tokens, q_dim] */
    float *k, *v;            /* [max_tokens, kv_dim] */
    float *hb, *hb2;         /* [max_tokens, hidden] */
    float *scores;           /* [ATT_ROWS, max_seq] */
    void *wbuf;              /* dequantised rows of a weight [wbuf_rows, max cols]
                              * in precision prec; NULL when every matrix is
                              * float32 */
    int wbuf_rows;           /* rows per dequantisation block (may be lowered
                              * after init, as the tests do) */
    float *rope_cos, *rope_sin; /* [max_seq, rope_dim/2] */
    float *rope_cos_local, *rope_sin_local; /* sliding-window layers' (NULL: the same) */
    double *pool;            /* [dim] the mean's accumulator */
    int rope_dim, rope_half;
    /* the int8 path: quantised activations, one per activation layout
     * (Q8_0; Q4_K/Q5_K; Q2_K/Q3_K/Q6_K), made when a weight needs it */
    void *qact[3];           /* btrm_qact * */
    const float *qact_src[3];
    unsigned qact_gen[3];
    unsigned gen;            /* bumped whenever a product's input changes */
    void *qws;               /* btrm_qgemm_ws * */
    /* precision bf16: a linear layer's input rounded to bf16 once
     * [max_tokens, max cols]: x16_len values of x16_src at x16_gen's
     * version of it */
    uint16_t *x16;
    const float *x16_src;
    unsigned x16_gen;
    size_t x16_len;
    double flops;            /* floating-point operations since init (counted) */
} btrm_llama_ws;

int btrm_llama_ws_init(btrm_llama_ws *ws, const btrm_llama_hparams *hp,
                       const btrm_llama_weights *w, int max_tokens, int max_seq, int kernel);
void btrm_llama_ws_free(btrm_llama_ws *ws); /* zeroed or NULL: no-op */
/* Sets the input precision of the linear layers' products (embed.precision).
 * BTRM_PREC_BF16: every product of a linear layer multiplies bf16 weights by
 * the layer's input rounded to bf16 once (q, k, v share it; so do gate and
 * up), accumulating in float32; BF16 matrices are multiplied as they are,
 * any other is dequantised a block of rows at a time into bf16 as it is used
 * (btrm_quant_dequant: exactly to float32, then rounded to nearest even),
 * except the products that kernel int8 takes (Q8_0 and K-quants), which stay
 * integer. Attention, norms and activations stay float32. The work buffers
 * are resized for w (NULL: any weights). 0, BTRM_EUSAGE (this build has no
 * bf16 GEMM: the message names the library) or BTRM_ENOMEM. */
int btrm_llama_ws_set_precision(btrm_llama_ws *ws, const btrm_llama_hparams *hp,
                                const btrm_llama_weights *w, int precision);

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

/* logits[rows, vocab] = h[rows, dim] Wout^T (soft-capped when the model
 * says so), h from btrm_llama_forward (rows <= ws->max_tokens). */
int btrm_llama_logits(const btrm_llama_hparams *hp, const btrm_llama_weights *w,
                      btrm_llama_ws *ws, const float *h, int rows, float *logits);

/* Floating-point operations of one forward over sequences of these lengths
 * (linear layers 2*N*in*out, attention 2*2*hd per (query, key) pair kept by
 * the causal mask and sliding window; norms and activations not counted). */
double btrm_llama_flops(const btrm_llama_hparams *hp, const int *lens, int n_seqs);

/* Row r of a weight as float32 (out[cols]). */
void btrm_llama_dequant_row(const btrm_llama_matrix *m, int r, float *out);
/* Bytes of one row of a matrix of this type and width (0: unsupported or
 * not a whole number of blocks). */
size_t btrm_llama_row_bytes(int type, int cols);

/* The block kernels of btrm_llama_forward, for llama_train.c:
 * out[rows, dim] = x / sqrt(mean(x^2) + eps) * weight (row by row, the sum
 * of squares in double; out may be x); RoPE in place on x[T, n_heads*hd] of
 * one sequence (positions 0..T-1, ws's tables; the style and, for
 * sliding-window layers, the tables of layer `layer`); causal attention of
 * layer `layer` for one sequence of T tokens, q [T, q_dim], k, v [T, kv_dim]
 * (rows of the batch buffers) into att [T, q_dim], with ws->scores as
 * scratch (0 or btrm_gemm's error). */
void btrm_llama_rmsnorm(float *out, const float *x, const float *weight, int rows, int dim,
                        float eps);
void btrm_llama_rope(const btrm_llama_ws *ws, const btrm_llama_hparams *hp, int layer, float *x,
                     int T, int n_heads, int hd);
int btrm_llama_attention(btrm_llama_ws *ws, const btrm_llama_hparams *hp, int layer,
                         const float *q, const float *k, const float *v, float *att, int T);
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
