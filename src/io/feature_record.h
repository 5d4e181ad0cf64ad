/* feature_record.h: how features were made (io layer): the backbone, its
 * model file's content hash and the settings that shape its rows. `btrm
 * embed` writes them as attributes of a store's /features (the backbone's
 * describe()), `btrm prep` the chat template into the store's /provenance,
 * `btrm train` copies the training store's record into the model file
 * (model-v2's /features group, docs/format.md), and eval, score, serve and
 * export use the model's record as their defaults and refuse features made
 * another way, with a message naming both.
 *
 * The fields are one table (feature_record.c): a store's /features dataset
 * and a model's /features group carry the same attribute names. A setting
 * that shapes an LLM backbone's rows is recorded with its effective value
 * (embed.bos auto as what the file says, max_tokens as resolved, the kernel
 * that ran, embed.precision). */
#ifndef BTRM_FEATURE_RECORD_H
#define BTRM_FEATURE_RECORD_H

#include "types.h"

#include <jansson.h>
#include <stddef.h>

typedef struct btrm_feature_record {
    int present;                    /* 0: nothing recorded (an older file) */
    char backbone[64];              /* the backbone's name (hash, gguf, llama2c); for
                                     * features btrm did not make, their label (synth) */
    char label[BTRM_NAME_MAX];      /* attribute backbone: "hash-4096", "gguf:m.gguf,..." */
    char spec[2 * BTRM_PATH_MAX];   /* backbone_spec: the spec embed opened (its options
                                     * included, the model file's path absolute); "" */
    char hash[40];                  /* model_hash: XXH3-128 of the backbone's file; "" */
    int dim;                        /* feature width (the hash dimension) */
    char pool[8];                   /* "last", "mean"; "" when not an LLM */
    int bos;                        /* effective BOS: 1, 0; -1 when not an LLM */
    int max_tokens;                 /* tokens kept per text; 0 when not an LLM */
    char kernel[16];                /* products with quantised weights: "dequant", "int8";
                                     * "" when not an LLM */
    char precision[8];              /* GEMM input precision: "fp32", "bf16"; "" when not
                                     * an LLM or recorded before embed.precision was */
    char chat_template[4096];       /* the chat template as JSON {"role":
                                     * "...{content}..."} (sorted keys); "" unknown */
} btrm_feature_record;

/* Zeroes rec and marks the fields unknown (bos -1). */
void btrm_feature_record_clear(btrm_feature_record *rec);
/* Fills rec->backbone from the spec's NAME, else from the label ("hash-4096"
 * -> "hash", "gguf:m.gguf,..." -> "gguf", "synth"), drops the instruction
 * set from the kernel ("int8-avx512vnni" -> "int8": the integer products
 * are exact on every one), and sets rec->present when a backbone is known. */
void btrm_feature_record_finish(btrm_feature_record *rec);
/* The known fields under their attribute names ({"backbone": label,
 * "backbone_spec": ..., "dim": 4096, ...}); NULL when out of memory. */
json_t *btrm_feature_record_to_json(const btrm_feature_record *rec);
/* The fields obj has under those names (what a backbone's describe() gives,
 * with the label as "backbone"), then btrm_feature_record_finish. Values
 * of the wrong type or too long: BTRM_EDATA naming where. */
int btrm_feature_record_from_json(btrm_feature_record *rec, const json_t *obj,
                                  const char *where);
/* 1 when the backbone is one btrm can run again (hash, gguf, llama2c). */
int btrm_feature_record_runnable(const btrm_feature_record *rec);
/* The spec that opens the recorded backbone: rec->spec, or "hash" for hash
 * features recorded before backbone_spec was; NULL when there is none. */
const char *btrm_feature_record_spec(const btrm_feature_record *rec);
/* One line: "hash-4096 (hash, 4096 features)", "gguf:m.gguf,pool=last,
 * max_tokens=512 (gguf, XXH3-128 0123..., 64 features, pool last, bos 1,
 * max_tokens 512, kernel dequant, precision fp32)". */
void btrm_feature_record_describe(const btrm_feature_record *rec, char *out, size_t size);
/* Compares what a and b both record: the backbone, the feature width, the
 * model file's hash, pooling, BOS, max_tokens, the kernel, the precision and (when
 * compare_template) the chat template. 0, or BTRM_EUSAGE with a message
 * naming both sides (a_name, b_name: a file, an option) and what differs. */
int btrm_feature_record_compare(const btrm_feature_record *a, const char *a_name,
                                const btrm_feature_record *b, const char *b_name,
                                int compare_template);

#endif
