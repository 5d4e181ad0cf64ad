/* pairs.h: the pair store (HDF5, format "pairs-v1", docs/format.md). io layer:
 * owns the HDF5 calls for pair stores; takes a btrm_comm for parallel access.
 *
 *   attribute /btrm_format = "pairs-v1"
 *   /features            float32|float16|bfloat16 [M, D]  (attrs backbone, dim); absent
 *                        until embed
 *   /texts               strings [M] (optional)
 *   /pairs/chosen        int64 [N]  row indices into /features
 *   /pairs/rejected      int64 [N]
 *   /pairs/category      int32 [N] + /categories strings (optional)
 *   /pairs/subset        int32 [N] + /subsets strings (optional)
 *   /pairs/margin        float32 [N] (optional)
 *   /pairs/id            strings [N] (optional)
 *   attribute /provenance = how the store was made (optional) */
#ifndef BTRM_PAIRS_H
#define BTRM_PAIRS_H

#include "comm.h"
#include "config.h"
#include "dtype.h"

#include <stdint.h>

enum {
    BTRM_PAIRS_FEATURES = 1u << 0, /* load /features into node-shared memory */
    BTRM_PAIRS_REQUIRE_FEATURES = 1u << 1, /* a store without /features is an error */
};

typedef struct btrm_pairs {
    char path[BTRM_PATH_MAX];
    int64_t n_pairs;
    int64_t n_rows;            /* rows of /features (or /texts) */
    int dim;                   /* D; 0 when there is no /features */
    int features_dtype;        /* BTRM_DTYPE_F32|F16|BF16: /features in the file and in memory */
    char backbone[BTRM_NAME_MAX];
    int64_t *chosen, *rejected;    /* [n_pairs], every rank */
    int32_t *category;             /* [n_pairs] or NULL */
    int32_t *subset;               /* [n_pairs] or NULL */
    float *margin;                 /* [n_pairs] or NULL */
    char **categories; int n_categories;
    char **subsets; int n_subsets;
    btrm_shared features_shm;      /* node-shared [n_rows, dim] of features_dtype */
    const void *features;          /* NULL unless BTRM_PAIRS_FEATURES; read rows with
                                    * btrm_pairs_feature_row */
    uint32_t crc32;                /* zlib crc32 of the whole file (provenance) */
} btrm_pairs;

/* Collective over c. Validates the store: format attribute, dataset ranks and
 * types, indices in [0, n_rows), chosen != rejected, category/subset codes in
 * range, finite margins, and (with BTRM_PAIRS_FEATURES) NaN/Inf in any
 * feature row that a pair uses. Errors (BTRM_EDATA) name the file, the
 * dataset and the row; every rank returns the same code and message, and *p
 * is left closed (p->chosen == NULL). With BTRM_PAIRS_FEATURES, features
 * points at one [n_rows, dim] copy per node in the file's type (float16 and
 * bfloat16 stay 16-bit: half the memory and half the bytes a gather reads):
 * n_rows * dim * 4 (or 2) bytes must fit in a node's memory. Every rank gets
 * its own chosen/rejected/category/subset/margin arrays and names. */
int btrm_pairs_open(btrm_pairs *p, const char *path, const btrm_comm *c, unsigned flags);
/* Frees everything; collective over the node (the shared window) when the
 * features were loaded. NULL and closed stores are fine. */
void btrm_pairs_close(btrm_pairs *p);

/* Row `row` of the loaded /features into out[dim] as out_dtype
 * (BTRM_DTYPE_F32: widened exactly; BTRM_DTYPE_BF16: rounded to nearest
 * even, a copy for a bfloat16 store). */
void btrm_pairs_feature_row(const btrm_pairs *p, int64_t row, void *out, int out_dtype);
/* Serial: the backbone attribute of path's /features (what made the
 * features), without validating the store. BTRM_EDATA when the file cannot
 * be opened, has no /features, or no (or an empty) backbone attribute. */
int btrm_pairs_read_backbone(const char *path, char *label, size_t size);

/* A pair store to write (serial, by one process): what synth and tests make. */
typedef struct btrm_pairs_data {
    int64_t n_pairs, n_rows;
    int dim;
    const float *features;            /* [n_rows, dim] or NULL (no /features) */
    int features_dtype;               /* store /features as BTRM_DTYPE_F32|F16|BF16 */
    const char *backbone;             /* attribute of /features */
    const char *const *texts;         /* [n_rows] or NULL */
    const int64_t *chosen, *rejected; /* [n_pairs] */
    const int32_t *category;          /* [n_pairs] or NULL */
    const char *const *categories; int n_categories;
    const int32_t *subset;            /* [n_pairs] or NULL */
    const char *const *subsets; int n_subsets;
    const float *margin;              /* [n_pairs] or NULL */
    const char *const *ids;           /* [n_pairs] or NULL */
    const char *provenance;           /* root attribute "provenance", or NULL */
} btrm_pairs_data;

/* Writes path atomically (temporary name in the same directory, then rename);
 * nothing is left behind on failure. Identical data give identical bytes.
 * Only the structure is checked (pointers, sizes): the values are written as
 * given and btrm_pairs_open is the gate that validates them. */
int btrm_pairs_write(const char *path, const btrm_pairs_data *data);

/* Serial: how the store's /features were made (feature_record.h), from the
 * attributes btrm embed writes on /features and the chat template btrm prep
 * records in /provenance. rec->present is 0 for a store without /features
 * or whose /features names no backbone. */
struct btrm_feature_record;
int btrm_pairs_read_features(const char *path, struct btrm_feature_record *rec);

#endif
