/* optim.h: optimizer updates and learning-rate schedules over flat float
 * buffers, with PyTorch semantics (see docs/training.md). Math layer.
 * Each update is one fused pass over its slice of the buffers, so a rank can
 * update just its shard. */
#ifndef BTRM_OPTIM_H
#define BTRM_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* torch.optim.AdamW, step t >= 1 (1-based), one parameter group:
 *   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
void btrm_optim_adamw(float *param, const float *grad, float *exp_avg,
                      float *exp_avg_sq, size_t n, double lr, double beta1,
                      double beta2, double eps, double weight_decay, int64_t t);

/* torch.optim.SGD (dampening 0, no Nesterov), step t >= 1:
 *   g += wd p;  buf = g (t = 1) else momentum buf + g;  p -= lr buf
 * (buf is used only when momentum != 0). */
void btrm_optim_sgd(float *param, const float *grad, float *momentum_buf, size_t n,
                    double lr, double momentum, double weight_decay, int64_t t);

/* What an optimizer pass does besides the update, in the same pass over
 * memory (the arrays are walked in cache-sized chunks). */
typedef struct btrm_optim_pass {
    float grad_scale;      /* the gradient is multiplied by it first (the clipping
                            * coefficient; a float multiply per element), 1 = none */
    int want_sumsq;        /* return the scaled gradient's sum of squares
                            * (btrm_optim_sumsq's bits) */
    uint16_t *param_bf16;  /* NULL, or [n]: the updated parameters rounded to bf16
                            * (btrm_float_to_bf16), for bf16 GEMMs */
} btrm_optim_pass;

/* btrm_optim_adamw / btrm_optim_sgd with a pass (NULL = the plain update).
 * The updates run vectorised for the CPU they run on (baseline, AVX2 or
 * AVX-512, picked at load time) and give the same bits on each. Return the
 * sum of squares when asked, else 0. */
double btrm_optim_adamw_pass(float *param, const float *grad, float *exp_avg,
                             float *exp_avg_sq, size_t n, double lr, double beta1, double beta2,
                             double eps, double weight_decay, int64_t t,
                             const btrm_optim_pass *pass);
double btrm_optim_sgd_pass(float *param, const float *grad, float *momentum_buf, size_t n,
                           double lr, double momentum, double weight_decay, int64_t t,
                           const btrm_optim_pass *pass);

/* One step's hyperparameters (optim.* keys; lr already multiplied by the
 * schedule factor). */
typedef struct btrm_optim_hparams {
    double lr, beta1, beta2, eps, weight_decay, momentum;
} btrm_optim_hparams;

/* The optimizers as a table (a backend family): each keeps n_state buffers of
 * n floats per parameter, zero before step 1, named as torch names its state
 * (checkpoints store each buffer under its name). */
#define BTRM_OPTIM_MAX_STATE 2
typedef struct btrm_optim_ops {
    const char *name;              /* optim.type: "adamw" | "sgd" */
    int n_state;                   /* 2 (adamw) | 1 (sgd; unused without momentum) */
    const char *state_names[BTRM_OPTIM_MAX_STATE]; /* "exp_avg", "exp_avg_sq" |
                                                    * "momentum_buffer" */
    /* btrm_optim_<name>_pass on the state buffers (pass NULL: the plain
     * update); the sum of squares when the pass asks for it, else 0 */
    double (*step)(const btrm_optim_hparams *hp, int64_t t, float *param, const float *grad,
                   float *const *state, size_t n, const btrm_optim_pass *pass);
} btrm_optim_ops;

/* The ops of BTRM_OPTIM_ADAMW | BTRM_OPTIM_SGD; NULL for another value. */
const btrm_optim_ops *btrm_optim_lookup(int type);

/* Sum of squares of a buffer in double (for the global grad norm). */
double btrm_optim_sumsq(const float *x, size_t n);

/* torch.nn.utils.clip_grad_norm_: coefficient min(1, max_norm / (norm + 1e-6));
 * 1 when max_norm <= 0. Multiply the gradient by it. */
double btrm_optim_clip_coef(double total_norm, double max_norm);

/* Learning rate multiplier of transformers' schedulers after `step`
 * completed optimizer steps (0-based index of the step about to be taken):
 *   warmup: step / max(1, warmup) while step < warmup
 *   constant: 1;  linear: max(0, (total - step) / max(1, total - warmup))
 *   cosine: max(0, 0.5 (1 + cos(pi * progress))),
 *           progress = (step - warmup) / max(1, total - warmup) */
double btrm_sched_factor(int schedule, int64_t step, int64_t warmup, int64_t total);

#endif
