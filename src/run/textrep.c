/* textrep.c: token ids (cached) and representations of a store's texts
 * over the ranks (see textrep.h). */
#include "textrep.h"

#include "embedfile.h"
#include "error.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

enum { HASH_CHUNK = 1024, READ_BATCH = 256 };

/* Row counts [first, first + count) of every rank (MPI counts and
 * displacements), for n rows in blocks. */
static int row_blocks(const btrm_comm *c, int64_t n, int *counts, int *displs)
{
    if (n > INT32_MAX)
        return btrm_error_set(BTRM_EDATA, "%lld texts: more than btrm gathers at once (2^31)",
                              (long long)n);
    for (int r = 0; r < c->size; r++) {
        int64_t first, count;
        btrm_comm_block(n, c->size, r, &first, &count);
        displs[r] = (int)first;
        counts[r] = (int)count;
    }
    return 0;
}

/* out[33] = the texts' hash: XXH3-64 of each chunk of HASH_CHUNK texts
 * (each text as its 8-byte length, then its bytes), the chunks' hashes in
 * order hashed with XXH3-128 after the row count. */
static int hash_texts(btrm_texts_reader *rd, int64_t n_rows, const btrm_comm *c, char out[33])
{
    int64_t n_chunks = (n_rows + HASH_CHUNK - 1) / HASH_CHUNK, first = 0, count = 0;
    btrm_comm_block(n_chunks, c->size, c->rank, &first, &count);
    uint64_t *mine = NULL;
    int32_t *all = NULL;
    int *counts = NULL;
    int rc = BTRM_MALLOC(mine, count > 0 ? count : 1);
    if (!rc)
        rc = BTRM_MALLOC(all, 2 * (n_chunks > 0 ? n_chunks : 1) + 2);
    if (!rc)
        rc = BTRM_MALLOC(counts, c->size);
    XXH3_state_t *st = XXH3_createState();
    if (!rc && !st)
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory hashing the texts");
    for (int64_t k = 0; !rc && k < count; k++) {
        int64_t lo = (first + k) * HASH_CHUNK;
        int64_t hi = lo + HASH_CHUNK < n_rows ? lo + HASH_CHUNK : n_rows;
        XXH3_64bits_reset(st);
        for (int64_t i = lo; !rc && i < hi; i += READ_BATCH) {
            int64_t m = hi - i < READ_BATCH ? hi - i : READ_BATCH;
            const char *const *texts = NULL;
            rc = btrm_texts_read(rd, i, m, &texts);
            for (int64_t j = 0; !rc && j < m; j++) {
                uint64_t len = strlen(texts[j]);
                XXH3_64bits_update(st, &len, sizeof len);
                XXH3_64bits_update(st, texts[j], len);
            }
        }
        mine[k] = XXH3_64bits_digest(st);
    }
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = btrm_comm_allgatherv_i32(c, (const int32_t *)mine, (int)(2 * count), all, counts);
    if (!rc) {
        XXH3_128bits_reset(st);
        uint64_t n = (uint64_t)n_rows;
        XXH3_128bits_update(st, &n, sizeof n);
        XXH3_128bits_update(st, all, (size_t)n_chunks * sizeof(uint64_t));
        XXH128_canonical_t h;
        XXH128_canonicalFromHash(&h, XXH3_128bits_digest(st));
        for (int i = 0; i < 16; i++)
            snprintf(out + 2 * i, 3, "%02x", h.digest[i]);
    }
    if (st)
        XXH3_freeState(st);
    BTRM_FREE(mine, all, counts);
    return rc;
}

/* Every rank tokenizes its block of rows; the blocks are gathered into t. */
static int tokenize_all(btrm_texts_reader *rd, int64_t n_rows, btrm_ftmodel *fm,
                        const btrm_comm *c, btrm_token_ids *t)
{
    int *counts = NULL, *displs = NULL, *id_counts = NULL;
    int32_t *lens = NULL, *all_lens = NULL, *mine = NULL;
    size_t n_mine = 0, cap = 0;
    int rc = BTRM_MALLOC(counts, c->size);
    if (!rc)
        rc = BTRM_MALLOC(displs, c->size);
    if (!rc)
        rc = BTRM_MALLOC(id_counts, c->size);
    if (!rc)
        rc = row_blocks(c, n_rows, counts, displs);
    const int64_t first = displs ? displs[c->rank] : 0, count = counts ? counts[c->rank] : 0;
    if (!rc)
        rc = BTRM_MALLOC(lens, count > 0 ? count : 1);
    if (!rc)
        rc = BTRM_MALLOC(all_lens, n_rows > 0 ? n_rows : 1);
    double t0 = btrm_comm_wtime();
    for (int64_t i = 0; !rc && i < count; i += READ_BATCH) {
        int64_t m = count - i < READ_BATCH ? count - i : READ_BATCH;
        const char *const *texts = NULL;
        rc = btrm_texts_read(rd, first + i, m, &texts);
        for (int64_t j = 0; !rc && j < m; j++) {
            int32_t *ids = NULL;
            int n = 0;
            rc = btrm_ftmodel_tokenize(fm, texts[j], &ids, &n);
            if (rc) {
                rc = btrm_error_wrap(rc, "text %lld", (long long)(first + i + j));
                break;
            }
            if (n_mine + (size_t)n > cap) {
                size_t want = 2 * (n_mine + (size_t)n) + 1024;
                int32_t *grown = realloc(mine, want * sizeof *mine);
                if (!grown)
                    rc = btrm_error_set(BTRM_ENOMEM, "out of memory for the token ids");
                else {
                    mine = grown;
                    cap = want;
                }
            }
            if (!rc) {
                memcpy(mine + n_mine, ids, (size_t)n * sizeof *ids);
                n_mine += (size_t)n;
                lens[i + j] = n;
            }
            free(ids);
        }
        if (c->rank == 0)
            btrm_log_progress("tokenizing: %lld of %lld texts on rank 0", (long long)(i + m),
                              (long long)count);
    }
    btrm_log_progress_end();
    if (!rc && n_mine > INT32_MAX)
        rc = btrm_error_set(BTRM_EDATA, "rank %d's texts have %zu tokens: more than btrm "
                            "gathers at once (2^31)", c->rank, n_mine);
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = btrm_comm_allgatherv_i32(c, lens, (int)count, all_lens, id_counts);
    int64_t total = 0;
    for (int64_t i = 0; !rc && i < n_rows; i++)
        total += all_lens[i];
    if (!rc && total > INT32_MAX)
        rc = btrm_error_set(BTRM_EDATA, "%lld tokens: more than btrm gathers at once (2^31)",
                            (long long)total);
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = BTRM_MALLOC(t->offsets, (size_t)n_rows + 1);
    if (!rc)
        rc = BTRM_MALLOC(t->ids, total > 0 ? (size_t)total : 1);
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = btrm_comm_allgatherv_i32(c, mine ? mine : (int32_t *)lens, (int)n_mine, t->ids,
                                      id_counts);
    if (!rc) {
        t->n_rows = n_rows;
        t->offsets[0] = 0;
        for (int64_t i = 0; i < n_rows; i++)
            t->offsets[i + 1] = t->offsets[i] + all_lens[i];
        btrm_log_info("tokenized %lld texts (%lld tokens) in %.1f s", (long long)n_rows,
                      (long long)total, btrm_comm_wtime() - t0);
    } else {
        btrm_token_ids_free(t);
    }
    BTRM_FREE(counts, displs, id_counts, lens, all_lens, mine);
    return rc;
}

int btrm_textrep_tokens(const char *store, int64_t n_rows, btrm_ftmodel *fm,
                        const btrm_comm *c, btrm_token_ids *t)
{
    memset(t, 0, sizeof *t);
    btrm_texts_reader *rd = NULL;
    int64_t n_texts = 0;
    int rc = btrm_texts_open(&rd, store, READ_BATCH, &n_texts);
    if (!rc && n_texts != n_rows)
        rc = btrm_error_set(BTRM_EDATA, "%s: /texts has %lld rows, the pairs index %lld",
                            store, (long long)n_texts, (long long)n_rows);
    rc = btrm_comm_agree(c, rc);
    btrm_tokcache_info info = { .bos = btrm_ftmodel_bos(fm),
                                .max_tokens = btrm_ftmodel_max_tokens(fm) };
    snprintf(info.tokenizer_hash, sizeof info.tokenizer_hash, "%s", fm->tok_hash);
    if (!rc)
        rc = hash_texts(rd, n_rows, c, info.texts_hash);
    char path[BTRM_PATH_MAX + 64];
    if (!rc) {
        btrm_tokcache_key(&info);
        rc = btrm_comm_agree(c, btrm_tokcache_path(store, info.key, path, sizeof path));
    }
    if (rc) {
        btrm_texts_close(rd);
        return rc;
    }
    /* the cache: rank 0 looks first, so that a missing file costs one probe */
    int found = c->rank == 0 && btrm_tokcache_read(path, &info, n_rows, t) == 0;
    if (c->rank == 0 && !found)
        btrm_log_debug("token cache: %s", btrm_error_msg());
    rc = btrm_comm_bcast(c, &found, sizeof found, 0);
    if (!rc && found && c->rank != 0)
        rc = btrm_tokcache_read(path, &info, n_rows, t);
    rc = btrm_comm_agree(c, rc);
    if (!rc && found) {
        btrm_log_info("token ids of %s from %s (%lld tokens)", store, path,
                      (long long)t->offsets[n_rows]);
    } else if (!rc) {
        rc = tokenize_all(rd, n_rows, fm, c, t);
        if (!rc && c->rank == 0) {
            if (btrm_tokcache_write(path, store, &info, t) == 0)
                btrm_log_info("token ids cached in %s", path);
            else
                btrm_log_warn("cannot cache the token ids (%s); the next run tokenizes again",
                              btrm_error_msg());
        }
    }
    btrm_texts_close(rd);
    if (rc)
        btrm_token_ids_free(t);
    return rc;
}

int btrm_textrep_features(btrm_ftmodel *fm, const float *params, const btrm_token_ids *t,
                          const btrm_comm *c, float *features)
{
    const size_t dim = (size_t)btrm_ftmodel_dim(fm);
    int *counts = NULL, *displs = NULL, *lens = NULL;
    const int32_t **ids = NULL;
    int rc = BTRM_MALLOC(counts, c->size);
    if (!rc)
        rc = BTRM_MALLOC(displs, c->size);
    if (!rc)
        rc = row_blocks(c, t->n_rows, counts, displs);
    const int64_t first = displs ? displs[c->rank] : 0, count = counts ? counts[c->rank] : 0;
    if (!rc)
        rc = BTRM_MALLOC(ids, count > 0 ? count : 1);
    if (!rc)
        rc = BTRM_MALLOC(lens, count > 0 ? count : 1);
    for (int64_t i = 0; !rc && i < count; i++) {
        ids[i] = t->ids + t->offsets[first + i];
        lens[i] = (int)(t->offsets[first + i + 1] - t->offsets[first + i]);
    }
    if (!rc && count > 0)
        rc = btrm_ftmodel_encode(fm, params, ids, lens, (size_t)count,
                                 features + (size_t)first * dim);
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = btrm_comm_allgatherv_rows_f32(c, features, (int)dim, counts, displs);
    free((void *)ids);
    BTRM_FREE(counts, displs, lens);
    return rc;
}
