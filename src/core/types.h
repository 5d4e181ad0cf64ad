/* types.h: the domain's enumerations and limits, shared by every layer.
 *
 * The config module (io/config.h) maps these values to and from their names
 * ("normbt", "mlp", ...); the math layer uses them without knowing about
 * configuration files. */
#ifndef BTRM_TYPES_H
#define BTRM_TYPES_H

#define BTRM_PATH_MAX 4096
#define BTRM_NAME_MAX 256
#define BTRM_MAX_HIDDEN 8    /* hidden layers of an mlp head */

enum btrm_head_kind { BTRM_HEAD_LINEAR = 0, BTRM_HEAD_MLP = 1 };
enum btrm_activation { BTRM_ACT_GELU = 0, BTRM_ACT_RELU = 1, BTRM_ACT_TANH = 2 };
enum btrm_loss_kind { BTRM_LOSS_BT = 0, BTRM_LOSS_NORMBT = 1 };
enum btrm_margin_kind { BTRM_MARGIN_NONE = 0, BTRM_MARGIN_DATA = 1 };
enum btrm_optim_kind { BTRM_OPTIM_ADAMW = 0, BTRM_OPTIM_SGD = 1, BTRM_OPTIM_NEWTON = 2 };
enum btrm_schedule_kind { BTRM_SCHED_CONSTANT = 0, BTRM_SCHED_LINEAR = 1, BTRM_SCHED_COSINE = 2 };
/* How an LLM backbone pools a sequence's final hidden states into one row. */
enum btrm_pool { BTRM_POOL_LAST = 0, BTRM_POOL_MEAN = 1 };
/* What of an LLM backbone trains (model.finetune.type): nothing, LoRA adapters,
 * or the top k blocks in full. */
enum btrm_finetune { BTRM_FT_NONE = 0, BTRM_FT_LORA = 1, BTRM_FT_TOP_K = 2 };

#endif
