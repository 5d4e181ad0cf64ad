/* ckpt.h: checkpoints (format "checkpoint-v1", docs/format.md), written and
 * read collectively through HDF5's MPI-IO driver. io layer.
 *
 * A checkpoint is a model file (same /model group, so `btrm eval` reads it)
 * plus the optimizer moments as flat float32 datasets /optim/exp_avg and
 * /optim/exp_avg_sq [n_params], and /state (step, epoch, position, PRNG seed,
 * NormBT's dbar, optimizer step count, the metrics window). Every rank writes
 * its own contiguous slice [lo, hi) of the flat parameter vector, of every
 * tensor that overlaps it and of the moments; no rank gathers the whole
 * state. Each dataset carries a `crc32` attribute: zlib's crc32 of its
 * little-endian float32 values in row-major order, formed from the ranks'
 * slices with crc32_combine, so a reader with any rank count can verify it. */
#ifndef BTRM_CKPT_H
#define BTRM_CKPT_H

#include "comm.h"
#include "head.h"
#include "modelfile.h"

#include <stdint.h>

#define BTRM_CKPT_WINDOW 10 /* trainer's metrics window, saved as doubles */

typedef struct btrm_ckpt_state {
    int64_t step;          /* completed optimizer steps */
    int64_t epoch;         /* epoch of the next step */
    int64_t in_epoch;      /* index of the next step within its epoch */
    int64_t optim_step;    /* optimizer step count (AdamW's t) */
    uint64_t seed;         /* run.seed: the PRNG state is (seed, epoch) */
    double dbar;           /* NormBT's running mean distance */
    int ranks;             /* rank count at write time */
    int optim_type;        /* BTRM_OPTIM_* */
    double window[BTRM_CKPT_WINDOW];
    char train_file[BTRM_PATH_MAX];
    uint32_t train_crc32;
} btrm_ckpt_state;

typedef struct btrm_ckpt_data {
    const btrm_head *head;
    float *params;         /* the full vector on every rank */
    float *exp_avg;        /* this rank's slice [lo, hi) */
    float *exp_avg_sq;     /* this rank's slice, NULL when the optimizer has none */
    int64_t lo, hi;
    btrm_model_meta meta;
} btrm_ckpt_data;

/* Collective: writes path atomically (temporary name, rename by rank 0).
 * config_text is the resolved config (a root attribute). */
int btrm_ckpt_write(const char *path, const btrm_comm *c, const btrm_ckpt_data *d,
                    const btrm_ckpt_state *st, const char *config_text);

/* Collective: reads path into d (d->head gives the expected shapes; params,
 * exp_avg, exp_avg_sq and lo/hi are set by the caller) and st, verifying every
 * checksum. A shape that differs from d->head is refused (BTRM_EDATA) with a
 * message naming the tensor and both shapes. */
int btrm_ckpt_read(const char *path, const btrm_comm *c, btrm_ckpt_data *d,
                   btrm_ckpt_state *st);

/* Collective: checks the format and every dataset's checksum without a
 * config; fills *st and, when report is not NULL, prints one line per
 * dataset (rank 0). Used by `btrm inspect` and by --resume auto. */
int btrm_ckpt_verify(const char *path, const btrm_comm *c, btrm_ckpt_state *st,
                     int report);

/* "<dir>/step-%08lld.h5" */
void btrm_ckpt_name(char *out, size_t size, const char *dir, int64_t step);

/* Fault injection for tests (fault.h): BTRM_FAULT=ckpt-midway kills rank 0
 * halfway through a checkpoint write (after the tensors, before the moments);
 * ckpt-write acts just before each collective dataset write. */

#endif
