/* llama_train.h: training the Llama backbone itself (LoRA adapters or the
 * top k blocks), the forward with saved activations and the backward pass,
 * on plain buffers. Math layer: no MPI, no HDF5, no files. The block
 * equations are llama.h's; the backward's are in docs/training.md
 * ("Fine-tuning the backbone: the math").
 *
 * What trains (btrm_llama_train_spec):
 *  - BTRM_FT_LORA: W' = W + (alpha / r) B A on the chosen projections
 *    (targets, any of q, k, v, o, gate, up, down) of every block, or of the
 *    top `layers` blocks; A [r, in], B [out, r]. The base W stays as loaded
 *    (any btrm_llama_matrix type, dequantised a block of rows at a time as
 *    llama.c does, also for the transposed product of the backward).
 *    Initialisation (btrm_llama_train_init_params): A uniform in
 *    [-1/sqrt(in), 1/sqrt(in)), B = 0. That is PEFT's and the LoRA paper's
 *    reference code's nn.init.kaiming_uniform_(A, a=sqrt(5)) on A's [r, in]
 *    weight (fan_in = in: gain sqrt(2/(1+5)), bound gain*sqrt(3/fan_in) =
 *    1/sqrt(in); microsoft/LoRA loralib/layers.py, peft
 *    tuners/lora/layer.py reset_lora_parameters). With B = 0 the adapter
 *    adds exact zeros, so the forward is bitwise btrm_llama_forward's.
 *  - BTRM_FT_TOP_K: float32 master copies of every weight and both norms of
 *    the top `layers` blocks and of the final norm, trained in full;
 *    initialised to the (dequantised) base weights. Blocks below stay as
 *    loaded.
 * `layers` = 0 means every block. The token embedding never trains.
 *
 * Parameters and gradients are flat float32 buffers of lt->n_params, owned
 * by the caller (so that the trainer can place them beside the head's in
 * one buffer: one all-reduce, one optimizer loop, one checkpoint dataset),
 * with named tensor views lt->tensors[] (llm.c style), in this order: for
 * each trainable block from the lowest up, LoRA: for each target in the
 * order q k v o gate up down, A then B; top_k: attn_norm, q, k, v, o,
 * ffn_norm, gate, up, down; then (top_k) the final norm.
 *
 * Tensor names are GGUF's with llama.cpp's adapter suffixes, so an export
 * can write a llama.cpp LoRA GGUF as is (A row-major [r, in] is ggml
 * ne = [in, r], B [out, r] is ne = [r, out], general.type "adapter",
 * adapter.type "lora", adapter.lora.alpha) or map them to PEFT / Hugging
 * Face names:
 *   blk.N.attn_q.weight.lora_a   base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight
 *   blk.N.attn_q.weight.lora_b   ... .self_attn.q_proj.lora_B.weight
 *   blk.N.attn_{q,k,v,output}    self_attn.{q,k,v,o}_proj
 *   blk.N.ffn_{gate,up,down}     mlp.{gate,up,down}_proj
 *   blk.N.attn_q.weight          model.layers.N.self_attn.q_proj.weight (top_k)
 *   blk.N.attn_norm.weight       model.layers.N.input_layernorm.weight
 *   blk.N.ffn_norm.weight        model.layers.N.post_attention_layernorm.weight
 *   output_norm.weight           model.norm.weight
 * (btrm_llama_train_proj_gguf / _hf give the per-projection parts; note
 * that Hugging Face Llama checkpoints permute the rows of q and k for their
 * rotate-half RoPE, which an export of top_k q/k weights must undo as
 * llama.cpp's converter does.)
 *
 * Use, per optimizer step (the integration in src/run/train.c):
 *   btrm_llama_train_init(&lt, &spec, &hp, &w);          once
 *   btrm_llama_train_init_params(&lt, &w, params, seed);  once (or load a checkpoint)
 *   btrm_llama_train_ws_init(&ws, &lt, max_tokens, max_seq, recompute, precision);
 *   memset(grads, 0, lt.n_params * sizeof *grads);
 *   for each micro-batch:
 *       btrm_llama_train_forward(&ws, params, ids, lens, n_seqs, pool, h);
 *       ... head forward, loss, dL/dh -> dh[n_seqs, dim] ...
 *       btrm_llama_train_backward(&ws, params, dh, grads);   accumulates
 *   all-reduce grads, optimizer step on params.
 * The weights w and lt must outlive ws; params must not change between a
 * forward and its backward. */
#ifndef BTRM_LLAMA_TRAIN_H
#define BTRM_LLAMA_TRAIN_H

#include "llama.h"
#include "types.h"

#include <stddef.h>
#include <stdint.h>

/* The seven projections of a block, in tensor order. */
enum btrm_llama_proj {
    BTRM_PROJ_Q = 0, BTRM_PROJ_K, BTRM_PROJ_V, BTRM_PROJ_O,
    BTRM_PROJ_GATE, BTRM_PROJ_UP, BTRM_PROJ_DOWN, BTRM_N_PROJ
};
/* LoRA target bits: 1u << BTRM_PROJ_*. */
#define BTRM_LORA_TARGET(p) (1u << (p))
#define BTRM_LORA_ALL ((1u << BTRM_N_PROJ) - 1u)

/* "q", "k", "v", "o", "gate", "up", "down" (the config's target names);
 * "attn_q", ..., "attn_output", "ffn_gate", "ffn_up", "ffn_down" (GGUF);
 * "self_attn.q_proj", ..., "mlp.down_proj" (Hugging Face). NULL outside. */
const char *btrm_llama_train_proj_name(int proj);
const char *btrm_llama_train_proj_gguf(int proj);
const char *btrm_llama_train_proj_hf(int proj);
/* The projection of a target name, or -1. */
int btrm_llama_train_proj_parse(const char *name);

typedef struct btrm_llama_train_spec {
    int type;           /* BTRM_FT_LORA | BTRM_FT_TOP_K (types.h) */
    int layers;         /* the top k blocks train; 0: all of them */
    int rank;           /* LoRA r, 1 <= r <= min(in, out) of every target */
    float alpha;        /* LoRA alpha: the update is (alpha / r) B A */
    unsigned targets;   /* LoRA: BTRM_LORA_TARGET bits, at least one */
} btrm_llama_train_spec;

enum btrm_llama_train_kind {
    BTRM_LT_LORA_A = 0, /* [r, in] */
    BTRM_LT_LORA_B = 1, /* [out, r] */
    BTRM_LT_WEIGHT = 2, /* [out, in], a float32 master of a block's projection */
    BTRM_LT_NORM = 3    /* [1, dim] */
};
/* Norms of a block (the proj field of a BTRM_LT_NORM view). */
enum { BTRM_NORM_ATTN = 0, BTRM_NORM_FFN = 1, BTRM_NORM_OUTPUT = 2 };

typedef struct btrm_llama_train_tensor {
    char name[48];      /* "blk.21.attn_q.weight.lora_a", "output_norm.weight" */
    int kind;           /* BTRM_LT_* */
    int layer;          /* block, -1 for the final norm */
    int proj;           /* BTRM_PROJ_*, or BTRM_NORM_* for a norm */
    int rows, cols;     /* row-major shape */
    size_t offset;      /* into params and grads */
} btrm_llama_train_tensor;

/* The trainable part of a backbone: its tensor views and where each block
 * finds them. */
typedef struct btrm_llama_train {
    btrm_llama_train_spec spec;
    btrm_llama_hparams hp;          /* a copy */
    const btrm_llama_weights *w;    /* the base weights (not owned) */
    int first_layer;                /* lowest trainable block: n_layers - k */
    float lora_scale;               /* alpha / r (LoRA) */
    int n_tensors;
    btrm_llama_train_tensor *tensors;
    size_t n_params;
    /* private: tensor index per (trainable block, slot), -1 when absent;
     * slots: 0..6 LoRA A or top_k weight of proj p, 7..13 LoRA B, 14 attn
     * norm, 15 ffn norm */
    int *slot;
    int output_norm;                /* tensor index of the final norm or -1 */
} btrm_llama_train;

/* Lays out the trainable tensors of spec on the model (hp, w), after
 * checking spec: type LoRA or top_k, 0 <= layers <= n_layers, LoRA rank
 * 1 <= r <= min(in, out) of each target, alpha > 0, targets non-empty and
 * known. BTRM_ECONFIG naming the setting, the value and the limit (e.g.
 * "model.finetune.layers = 9: the model has 5 blocks"). w must outlive lt. */
int btrm_llama_train_init(btrm_llama_train *lt, const btrm_llama_train_spec *spec,
                          const btrm_llama_hparams *hp, const btrm_llama_weights *w);
void btrm_llama_train_free(btrm_llama_train *lt); /* zeroed or NULL: no-op */
/* Index of the tensor called name, or -1. */
int btrm_llama_train_find(const btrm_llama_train *lt, const char *name);

/* Initial parameters (see above), drawn from (seed, BTRM_RNG_STREAM_LORA)
 * tensor by tensor in buffer order. */
void btrm_llama_train_init_params(const btrm_llama_train *lt, float *params, uint64_t seed);

/* Work buffers for batches of up to max_tokens tokens, sequences of up to
 * max_seq, allocated once. Memory, in floats per token of max_tokens
 * (q_dim = n_heads*head_dim, kv_dim = n_kv_heads*head_dim, T trainable
 * blocks, a = r * the LoRA targets, 0 for top_k; r = 1 for top_k):
 *   saved, recompute off: T (2 dim + 2 q_dim + 2 kv_dim + 2 hidden + a) + dim
 *   saved, recompute on:  (T + 1) dim + (dim + 2 q_dim + 2 kv_dim + 2 hidden + a)
 *   scratch:              4 dim + 2 q_dim + 2 kv_dim + 3 hidden + r
 * plus two [min(max_seq, 128), max_seq] attention blocks and llama.c's
 * dequantisation rows (none when every matrix is float32); ws->bytes says
 * the total. recompute: the forward keeps only each trainable block's input
 * and the backward runs that block's forward again (the same calls, so the
 * gradients are bitwise those without).
 * precision: BTRM_PREC_* for every GEMM of the linear layers and of the
 * backward (attention's forward products are llama.c's). 0, BTRM_EUSAGE
 * (sizes, or a precision btrm_gemm cannot run), BTRM_ENOMEM. */
typedef struct btrm_llama_train_ws {
    int max_tokens, max_seq;
    int recompute, precision;
    size_t bytes;                 /* allocated */
    double flops_forward;         /* counted since init (btrm_llama_train_flops) */
    double flops_backward;
    /* private */
    const btrm_llama_train *lt;
    btrm_llama_ws base;           /* llama.c's buffers: frozen forward, scratch */
    int n_train;                  /* trainable blocks */
    struct btrm_llama_train_acts *acts; /* [n_train] saved per block */
    struct btrm_llama_train_acts *shared; /* recompute: the one full set */
    float *x_final;               /* [max_tokens, dim] the last block's output */
    float *dx, *dxn, *dh1;        /* backward scratch */
    float *t_lora;                /* [max_tokens, r] */
    float *scores2;               /* [128, max_seq] dP */
    int *lens;                    /* [max_tokens] the last forward's */
    int n_seqs, n_tokens, pool, have_forward;
} btrm_llama_train_ws;

int btrm_llama_train_ws_init(btrm_llama_train_ws *ws, const btrm_llama_train *lt,
                             int max_tokens, int max_seq, int recompute, int precision);
void btrm_llama_train_ws_free(btrm_llama_train_ws *ws); /* zeroed or NULL: no-op */

/* Forward of n_seqs sequences (token ids back to back, lens[s] each, as
 * btrm_llama_forward takes them) with the parameters params; writes the
 * pooled final-norm states pooled[n_seqs, dim] (pool: BTRM_POOL_LAST or
 * BTRM_POOL_MEAN, as btrm_llama_forward computes them) and keeps what the
 * backward needs. 0, BTRM_EDATA (a length or token id out of range, as
 * btrm_llama_forward), or btrm_gemm's error. */
int btrm_llama_train_forward(btrm_llama_train_ws *ws, const float *params,
                             const int32_t *ids, const int *lens, int n_seqs, int pool,
                             float *pooled);

/* Backward of the last forward: given dpooled[n_seqs, dim] = dL/dpooled,
 * adds dL/dparams to grads[n_params] (accumulating across micro-batches;
 * the caller zeroes grads). params: the same values as the forward's.
 * 0, BTRM_EUSAGE without a forward, or btrm_gemm's error. */
int btrm_llama_train_backward(btrm_llama_train_ws *ws, const float *params,
                              const float *dpooled, float *grads);

/* Floating-point operations of one forward and one backward over these
 * lengths (every GEMM's 2*m*n*k, attention counted over the causal pairs
 * only; norms, RoPE, softmax, SwiGLU not counted): the forward of every
 * block (llama.h's count) plus the adapters; the backward of the trainable
 * blocks: input gradients where a trainable tensor lies below, weight
 * gradients (top_k), the adapters' four products, attention's five
 * products (scores again, dV, dP, dQ, dK), and with recompute one more
 * forward of each trainable block. */
void btrm_llama_train_flops(const btrm_llama_train *lt, const int *lens, int n_seqs,
                            int recompute, double *forward, double *backward);

#endif
