/* ckpt.h: checkpoints (format "checkpoint-v3", docs/format.md), written and
 * read collectively through HDF5's MPI-IO driver, and the checkpoint
 * directory (step-%08d.h5 files, the `latest` link, rotation). io layer.
 *
 * A checkpoint is a model file (same /model group, so `btrm eval` reads it)
 * plus the optimizer's state buffers as flat float32 datasets
 * /optim/<name> [n_params], named by the optimizer's table row (AdamW:
 * exp_avg, exp_avg_sq; SGD: momentum_buffer), and /state (step, epoch,
 * position, PRNG seed, NormBT's dbar, optimizer step count, the metrics
 * window). Every rank writes its own contiguous slice [lo, hi) of the flat
 * parameter vector, of every tensor that overlaps it and of the state
 * buffers; no rank gathers the whole state. Each dataset carries a `crc32`
 * attribute: zlib's crc32 of its little-endian float32 values in row-major
 * order, formed from the ranks' slices with crc32_combine, so a reader with
 * any rank count can verify it. A model trained with an LLM backbone also
 * has /backbone (modelfile.h: the base model's reference and the trained
 * adapters or blocks, which follow the head in the flat vector).
 * checkpoint-v2 (a window of 8) and v1 files (SGD's buffer under AdamW's
 * name exp_avg, a window of 10 whose last two are 0) are read as well. */
#ifndef BTRM_CKPT_H
#define BTRM_CKPT_H

#include "comm.h"
#include "head.h"
#include "modelfile.h"
#include "optim.h"

#include <stdint.h>

/* The trainer's metrics window (sums since the last metrics line: steps,
 * pairs, loss, acc, dist, weight, weight_max, margin, bt_loss, near_floor),
 * saved as doubles (v2 saved the first 8). */
#define BTRM_CKPT_WINDOW 10

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
    int version;           /* the file's format version (set by read and verify) */
} btrm_ckpt_state;

typedef struct btrm_ckpt_data {
    const btrm_head *head;
    size_t n_params;       /* the flat vector: the head's, then meta.backbone's tensors
                            * (0: the head's alone) */
    float *params;         /* the full vector on every rank */
    const btrm_optim_ops *optim;                /* names and counts the buffers */
    float *state[BTRM_OPTIM_MAX_STATE];         /* this rank's slice [lo, hi) of each */
    int64_t lo, hi;
    btrm_model_meta meta;
} btrm_ckpt_data;

/* Collective: writes path atomically (temporary name, rename by rank 0).
 * config_text is the resolved config (a root attribute). */
int btrm_ckpt_write(const char *path, const btrm_comm *c, const btrm_ckpt_data *d,
                    const btrm_ckpt_state *st, const char *config_text);

/* Collective: reads path into d (d->head gives the expected shapes, d->optim
 * the optimizer the config trains with, d->meta.backbone the backbone; params,
 * state and lo/hi are set by the caller) and st, verifying every checksum. A
 * shape that differs from d->head, another optimizer, another fine-tuning
 * setup, or a base model whose content hash is not the one the checkpoint
 * was trained on, is refused (BTRM_ECONFIG) with a message naming what
 * differs; an unreadable or corrupt file is BTRM_EDATA. d->meta.backbone is
 * kept (the other meta fields are read). */
int btrm_ckpt_read(const char *path, const btrm_comm *c, btrm_ckpt_data *d,
                   btrm_ckpt_state *st);

/* Collective: checks the format and every dataset's checksum without a
 * config; fills *st and, when report is not NULL, prints one line per
 * dataset (rank 0). Used by `btrm inspect` and by --resume auto. */
int btrm_ckpt_verify(const char *path, const btrm_comm *c, btrm_ckpt_state *st,
                     int report);

/* Serial: the resolved config saved in path (malloc'ed text; caller frees). */
int btrm_ckpt_read_config(const char *path, char **config_text);

/* "<dir>/step-%08lld.h5" */
void btrm_ckpt_name(char *out, size_t size, const char *dir, int64_t step);

/* Rank 0: the checkpoint files of dir (step-%08d.h5), newest first, as
 * malloc'ed paths (*n = 0 when dir does not exist); free with
 * btrm_ckpt_list_free. */
int btrm_ckpt_list(const char *dir, char ***paths, int *n);
void btrm_ckpt_list_free(char **paths, int n);

/* Rank 0, after newest is in place: points dir/latest at it and removes all
 * but the newest keep checkpoints (keep 0: none removed). Failures are
 * warnings: the new checkpoint is already safe. */
void btrm_ckpt_rotate(const char *dir, const char *newest, int keep);

/* Fault injection for tests (fault.h): BTRM_FAULT=ckpt-midway kills rank 0
 * halfway through a checkpoint write (after the tensors, before the moments);
 * ckpt-write acts just before each collective dataset write. */

#endif
