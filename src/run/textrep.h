/* textrep.h: a pair store's texts as an LLM backbone sees them, for the runs
 * that compute representations themselves: `btrm train` with
 * model.backbone, and `btrm eval`, `analyze`, `score` of a model trained that
 * way. Orchestrator over the ranks; the backbone is model/ftmodel.h's.
 *
 *  - Token ids: the texts are hashed (XXH3-64 per chunk of 1024 texts, the
 *    chunks' hashes hashed again with XXH3-128, so any rank count gives the
 *    same hash), and with the tokenizer's hash, BOS and truncation form the
 *    key of a cache file beside the store (io/tokcache.h). When it is there
 *    every rank reads it; otherwise each rank tokenizes a contiguous block of
 *    rows, the blocks are gathered, and rank 0 writes the cache (to a
 *    temporary name, renamed: concurrent jobs are safe; a store in a
 *    read-only directory is tokenized again by each run, with a warning).
 *  - Representations: each rank encodes a contiguous block of rows with the
 *    given parameters; the blocks are gathered on every rank. */
#ifndef BTRM_TEXTREP_H
#define BTRM_TEXTREP_H

#include "comm.h"
#include "ftmodel.h"
#include "modelfile.h"
#include "tokcache.h"

#include <stdint.h>

/* Collective: t = the token ids of the n_rows texts of store's /texts
 * (BTRM_EDATA naming the store when it has none, or another row count). */
int btrm_textrep_tokens(const char *store, int64_t n_rows, btrm_ftmodel *fm,
                        const btrm_comm *c, btrm_token_ids *t);

/* Collective: features [t->n_rows, dim] (every rank) = the representations
 * of every text with the backbone's trainable parameters params (NULL for
 * type none). fm's work buffers must be set up (btrm_ftmodel_ws_init). */
int btrm_textrep_features(btrm_ftmodel *fm, const float *params, const btrm_token_ids *t,
                          const btrm_comm *c, float *features);

#endif
