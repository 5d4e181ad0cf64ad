/* export.h: `btrm export`, a trained model in Hugging Face's formats
 * (docs/export.md). Orchestrator: reads the model file (io/modelfile.h) and,
 * for a backbone, the GGUF (io/llama_model.h, io/gguf.h), and writes
 * safetensors (io/safetensors.h). One process, no MPI.
 *
 * DIR/model.safetensors holds
 *   - a linear head as `score.weight` [1, D] float32, the name and layout of
 *     Hugging Face's *ForSequenceClassification score layer (which has no
 *     bias: the bias, which cannot change a Bradley-Terry ranking, goes into
 *     __metadata__ as `score.bias`);
 *   - an mlp head as `score.fc0.weight`, `score.fc0.bias`, ...,
 *     `score.out.weight`, `score.out.bias` (float32, [out, in]), with the
 *     activation in __metadata__, and no config.json;
 *   - with the backbone (a GGUF Llama in F32, F16 or BF16, pooled at the last
 *     token), also the `model.*` tensors of LlamaForSequenceClassification,
 *     the query and key rows put back in Hugging Face's order, and
 *     DIR/config.json.
 * A model trained with its own backbone (model.backbone) writes what
 * trained, for the base it records (opened again and checked by hash):
 * LoRA as PEFT's DIR/adapter_model.safetensors + adapter_config.json (the q
 * and k lora_B rows reordered as the base's), top_k as the blocks' model.*
 * tensors in DIR/model.safetensors; the head in DIR/model.safetensors, and
 * DIR/README.md naming the base and its hash. */
#ifndef BTRM_EXPORT_H
#define BTRM_EXPORT_H

#include <stdint.h>

typedef struct btrm_export_opts {
    const char *model_path;
    const char *out_dir;
    const char *format;       /* "safetensors" */
    const char *backbone;     /* backbone spec, or NULL: the one the model records */
    const struct btrm_config *cfg; /* embed.* options under the recorded ones, or NULL */
    int with_backbone;        /* also export the backbone's weights */
} btrm_export_opts;

/* Writes the files (each atomically; the directory is created). 0, or
 * BTRM_EUSAGE (a format, head or backbone export cannot do, named) /
 * BTRM_EDATA / BTRM_EIO with the message set. */
int btrm_export_run(const btrm_export_opts *o);

/* The row order that undoes llama.cpp's converter on a query or key matrix
 * of n_heads heads of head_dim rows: row h*head_dim + t*head_dim/2 + j of
 * the Hugging Face matrix is row h*head_dim + 2j + t of the GGUF one (t in
 * {0, 1}: Hugging Face rotates the two halves of a head, GGUF adjacent
 * pairs). perm has n_heads * head_dim entries. */
void btrm_export_unpermute_rows(int n_heads, int head_dim, int64_t *perm);

#endif
