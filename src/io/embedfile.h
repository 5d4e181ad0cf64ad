/* embedfile.h: what `btrm embed` reads and writes: the /texts of a pair store
 * in batches, and its output, a copy of the store with a new /features
 * written collectively through HDF5's MPI-IO driver. io layer.
 *
 * The output is made in two steps: rank 0 creates it under a temporary name
 * (serial HDF5: variable-length strings cannot be written through MPI-IO in
 * HDF5 1.10), copying every root attribute and link of the input but
 * /features, and creating /features contiguous and allocated; then every
 * rank opens it with MPI-IO and writes its rows with collective H5Dwrite
 * calls (ranks with nothing left select none). rank 0 finally renames it
 * into place (btrm_file_commit). */
#ifndef BTRM_EMBEDFILE_H
#define BTRM_EMBEDFILE_H

#include "comm.h"

#include <jansson.h>
#include <stdint.h>

/* Batches of /texts, read serially by one process. */
typedef struct btrm_texts_reader btrm_texts_reader;

/* Opens path's /texts (a 1-D string dataset) for batches of at most batch
 * strings; *n_rows is its length. BTRM_EDATA naming the file otherwise. */
int btrm_texts_open(btrm_texts_reader **r, const char *path, int64_t batch,
                    int64_t *n_rows);
/* *texts = /texts[first, first + count) (count <= batch), valid until the
 * next read or the close. */
int btrm_texts_read(btrm_texts_reader *r, int64_t first, int64_t count,
                    const char *const **texts);
void btrm_texts_close(btrm_texts_reader *r);

/* Rank 0, serial: tmp = in_path without /features, plus /features
 * [n_rows, dim] of dtype (dtype.h: BTRM_DTYPE_F32, F16 or BF16, h5util's
 * btrm_h5_float_type), allocated, with the string
 * attribute backbone = label, the int attribute dim and attrs (a JSON object
 * of strings, integers, numbers and booleans) on it. The root's btrm_format
 * and btrm_version become this btrm's. Errors name out_path. */
int btrm_features_create(const char *in_path, const char *tmp, const char *out_path,
                         int64_t n_rows, int dim, int dtype, const char *label,
                         json_t *attrs);

/* The collective writer of tmp's /features. */
typedef struct btrm_features_writer btrm_features_writer;

/* Collective: opens tmp with MPI-IO. Every rank returns the same code; on
 * failure nothing is left open (a file open on some ranks only, which no
 * collective close could undo, aborts the job). */
int btrm_features_open(btrm_features_writer **w, const char *tmp, const char *out_path,
                       int dtype, const btrm_comm *c);
/* Collective: rows [first, first + rows) of /features from buf (in the
 * dtype of btrm_features_open: the memory type is the file type, so that
 * HDF5 converts nothing and the write stays collective; -v logs a write that
 * HDF5 did independently); rows == 0 takes part with an empty selection. */
int btrm_features_write(btrm_features_writer *w, int64_t first, int64_t rows, int dim,
                        const void *buf);
/* Collective: closes the file (NULL is fine); the code of the close. */
int btrm_features_close(btrm_features_writer *w);

#endif
