/* safetensors.h: a writer of Hugging Face's safetensors format (io layer).
 *
 * Layout: an 8-byte little-endian unsigned header length N, then N bytes of
 * JSON (UTF-8) mapping each tensor name to {"dtype", "shape",
 * "data_offsets": [begin, end]} and "__metadata__" to an object of strings,
 * padded with spaces so that the data starts at a multiple of 8 bytes, then
 * the tensors' bytes back to back, row-major, little-endian, in the order
 * given, with no gap: offsets are relative to the end of the header. */
#ifndef BTRM_SAFETENSORS_H
#define BTRM_SAFETENSORS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define BTRM_ST_MAX_DIMS 4

typedef struct btrm_st_tensor {
    char name[160];
    const char *dtype;               /* "F32", "F16" or "BF16" */
    int n_dims;
    uint64_t shape[BTRM_ST_MAX_DIMS]; /* outermost first, as torch prints it */
    const void *data;                /* the bytes, row-major */
    /* NULL, or a row order: output row r is source row row_perm[r] of
     * shape[0] rows (how a permuted matrix is written without a copy) */
    const int64_t *row_perm;
} btrm_st_tensor;

/* Bytes of one value of dtype; 0 for a dtype this writer does not know. */
size_t btrm_st_dtype_size(const char *dtype);

/* Writes the tensors to path atomically (temporary name, fsync, rename;
 * nothing left behind on failure). metadata: a JSON object whose values are
 * all strings (the format allows nothing else), or NULL. 0, BTRM_EUSAGE
 * (bad dtype, shape, name or metadata value) or BTRM_EIO naming the file. */
int btrm_safetensors_write(const char *path, const btrm_st_tensor *tensors, int n,
                           const json_t *metadata);

#endif
