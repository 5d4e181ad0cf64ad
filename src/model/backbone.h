/* backbone.h: backbones turn texts into feature rows (what `btrm embed` writes
 * to /features). A backend family in the IOR style: each backbone is one file
 * with one btrm_backbone_ops table, and one row in backbone.c's list.
 *
 * A backbone is named on the command line as NAME or NAME:ARGS ("hash",
 * "gguf:model.gguf"): the part before the first ':' picks the table, the rest
 * is handed to its open() unchanged. Backbones use no MPI and no HDF5: embed
 * decides which texts a rank encodes and where the rows go. */
#ifndef BTRM_BACKBONE_H
#define BTRM_BACKBONE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct btrm_config;

/* A backend's private state; each backend defines its own struct and casts. */
typedef struct btrm_backbone btrm_backbone;

typedef struct btrm_backbone_ops {
    const char *name;    /* "hash": the NAME of --backbone NAME[:ARGS] */
    const char *summary; /* one line for --help */
    /* args: the text after "NAME:" ("" when there is none). dim: the requested
     * feature dimension, 0 = the backbone's default; a backbone whose size is
     * fixed by its model rejects any other value with BTRM_EUSAGE. */
    int (*open)(btrm_backbone **bb, const char *args, int dim);
    /* out[n, dim] = features of texts[0..n) (NUL-terminated UTF-8). Errors
     * (BTRM_EDATA) name the batch-local index of the text when n > 1. */
    int (*encode)(btrm_backbone *bb, const char *const *texts, size_t n, float *out);
    int (*dim)(const btrm_backbone *bb);
    /* label: the /features `backbone` attribute ("hash-4096"); attrs: a JSON
     * object the backend fills with its own attributes (strings, integers,
     * reals), which embed writes next to `backbone` and `dim`. Among them
     * those of feature_record.h: backbone_spec, the spec that makes the same
     * features again from any directory (its model file's path absolute,
     * the settings that shape features written out with their effective
     * values, nothing else), and the settings themselves. */
    int (*describe)(const btrm_backbone *bb, char *label, size_t label_size,
                    json_t *attrs);
    void (*close)(btrm_backbone *bb);
    /* Optional (NULL when absent). cost[i] = the work of encoding texts[i]
     * (an LLM's token count), for embed to give the ranks contiguous blocks
     * of equal total cost instead of equal row counts. */
    int (*cost)(btrm_backbone *bb, const char *const *texts, size_t n, int64_t *cost);
    /* Optional. Writes the backbone options that the config's keys (embed.*,
     * run.threads) stand for ("pool=last,max_tokens=512,..."), which
     * btrm_backbone_spec_with_config puts between the first argument and
     * the rest, so that options written in the spec win. */
    int (*config_args)(const struct btrm_config *cfg, char *out, size_t size);
} btrm_backbone_ops;

/* The registered backbones, NULL-terminated (backbone.c). */
extern const btrm_backbone_ops *const btrm_backbones[];

/* An open backbone: its table and its state. */
typedef struct btrm_backbone_handle {
    const btrm_backbone_ops *ops;
    btrm_backbone *bb;
    int dim;
    char *spec;  /* the spec it was opened with (malloc'ed) */
} btrm_backbone_handle;

/* True when the backbone reports per-text costs. */
int btrm_backbone_has_cost(const btrm_backbone_handle *h);
int btrm_backbone_cost(btrm_backbone_handle *h, const char *const *texts, size_t n,
                       int64_t *cost);
/* out = spec with the config's options for its backbone inserted after the
 * first argument ("gguf:M.gguf,pool=mean" -> "gguf:M.gguf,<config>,pool=mean");
 * spec unchanged for a backbone without config_args. */
int btrm_backbone_spec_with_config(const char *spec, const struct btrm_config *cfg, char *out,
                                   size_t size);

/* Splits spec "NAME[:ARGS]" and finds NAME's table; NULL (and BTRM_EUSAGE
 * recorded, listing the known names) when there is none. *args points into
 * spec. */
const btrm_backbone_ops *btrm_backbone_lookup(const char *spec, const char **args);
/* Looks spec up and opens it. 0 or a negative code; h is zeroed on failure. */
int btrm_backbone_open(btrm_backbone_handle *h, const char *spec, int dim);
int btrm_backbone_encode(btrm_backbone_handle *h, const char *const *texts, size_t n,
                         float *out);
int btrm_backbone_describe(const btrm_backbone_handle *h, char *label, size_t label_size,
                           json_t *attrs);
/* How this backbone makes features (describe's attributes, its spec and
 * width), as stores and model files record it. */
struct btrm_feature_record;
int btrm_backbone_record(const btrm_backbone_handle *h, struct btrm_feature_record *rec);
/* The spec that makes a model's features again, in out: NAME:FIRST of
 * user_spec (NULL: the recorded spec, btrm_feature_record_spec; BTRM_EUSAGE
 * naming model_path when there is none), the config's options, the
 * recorded settings (pool, max_tokens, bos, kernel, precision; when it is the recorded
 * backbone), then the spec's own options. So the recorded settings win over
 * the config, which sets what does not shape features (threads,
 * max_batch_tokens), and what the user writes wins over both and is then
 * checked by btrm_backbone_open_checked. cfg may be NULL. */
int btrm_backbone_spec_for(const struct btrm_feature_record *rec, const char *model_path,
                           const char *user_spec, const struct btrm_config *cfg, char *out,
                           size_t size);
/* Opens spec and refuses it (BTRM_EUSAGE naming model_path and what, the
 * backbone as the user knows it) when its features are not made the way
 * rec says. dim as for btrm_backbone_open. */
int btrm_backbone_open_checked(btrm_backbone_handle *h, const char *spec, int dim,
                               const struct btrm_feature_record *rec, const char *model_path,
                               const char *what);
/* No-op on a zeroed handle. */
void btrm_backbone_close(btrm_backbone_handle *h);
/* "hash, ..." for help texts and messages. */
void btrm_backbone_names(char *out, size_t size);

/* ------------------------------------------------------------------------ */
/* The hash backbone (backbone_hash.c), a lexical baseline, not a language
 * model; docs/data-prep.md defines it exactly:
 *   text -> utf8proc NFKC + case fold -> words (maximal runs of letters and
 *   numbers, with the combining marks inside them) -> unigrams "w" and bigrams
 *   "w1 w2" -> h = XXH3-64(token bytes, seed BTRM_HASH_SEED) -> for each
 *   distinct h with count tf, in order of first occurrence, in double:
 *   x[h % D] += (h >> 63 ? -1 : +1) * (1 + ln tf) -> x / ||x||_2 as float32
 *   (a text without words gives the zero vector). */
#define BTRM_HASH_DIM_DEFAULT 4096
#define BTRM_HASH_SEED 0x6274726dULL /* "btrm" */
extern const btrm_backbone_ops btrm_backbone_hash_ops;

/* The LLM backbones (backbone_llama.c, llama_model.h): gguf:MODEL.gguf and
 * llama2c:MODEL.bin[,tokenizer=TOK.bin], each [,pool=last|mean,
 * max_tokens=N,bos=0|1,max_batch_tokens=N,dequantize=0|1,threads=N]. */
extern const btrm_backbone_ops btrm_backbone_gguf_ops;
extern const btrm_backbone_ops btrm_backbone_llama2c_ops;

/* The hash backbone's tokenizer, exposed for tests and for the docs' worked
 * example: calls fn(token, len, user) for each unigram and bigram of text in
 * order (unigram i, then bigram (i-1, i)). 0 or BTRM_EDATA (invalid UTF-8). */
int btrm_hash_tokens(const char *text,
                     void (*fn)(const char *token, size_t len, void *user), void *user);

#endif
