/* embed.h: `btrm embed`, the MPI-parallel orchestrator that computes
 * /features for every row of a pair store's /texts with a backbone.
 *
 * Phases, each ending in btrm_comm_agree (no rank is ever left waiting in a
 * collective call after another failed):
 *   1. every rank opens the backbone; the input is validated as a pair store
 *      (btrm_pairs_open) and must have /texts;
 *   2. rank 0 copies the input, except any old /features, to a temporary file
 *      next to the output (serial HDF5: variable-length strings cannot be
 *      written through MPI-IO in HDF5 1.10) and creates /features
 *      (contiguous, allocated at creation) with its attributes;
 *   3. every rank opens the temporary file with the MPI-IO driver, encodes a
 *      contiguous block of rows (btrm_comm_block; for a backbone that reports
 *      per-text costs, such as an LLM's token counts, blocks of equal total
 *      cost) in batches read from the input, and writes each batch with a
 *      collective H5Dwrite (ranks with nothing left select none);
 *   4. rank 0 renames the temporary file onto the output (atomic).
 * A row depends only on its text, so the file is the same for any number of
 * ranks (for the LLM backbones up to BLAS rounding, about 5e-7 relative:
 * docs/backbones.md). */
#ifndef BTRM_EMBED_H
#define BTRM_EMBED_H

#include "comm.h"

#include <stdint.h>

typedef struct btrm_embed_opts {
    const char *in_path;
    const char *out_path;
    const char *backbone; /* NAME[:ARGS], see backbone.h (cli_embed has already put
                           * the config's embed.* options in) */
    int dim;              /* 0: the backbone's default */
    int features_dtype;   /* /features as BTRM_DTYPE_F32 | F16 | BF16 (dtype.h) */
    int64_t batch;        /* texts per rank per collective write; 0: about
                           * 16 MiB of features, in [16, 4096] rows (at most
                           * 64 for a backbone that reports costs) */
} btrm_embed_opts;

/* Collective over c; every rank returns the same code. */
int btrm_embed_run(const btrm_embed_opts *opts, const btrm_comm *c);

#endif
