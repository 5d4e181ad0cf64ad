/* embed.c: /features for every row of /texts (see embed.h for the phases).
 *
 * The file work (reading /texts, the output store and its collective
 * /features writes) is io's embedfile.h; the store's validity is pairs.h. */
#include "embed.h"

#include "backbone.h"
#include "compute.h"
#include "dtype.h"
#include "error.h"
#include "embedfile.h"
#include "fileutil.h"
#include "log.h"
#include "pairs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Default rows per collective write: about 16 MiB of float32 features per
 * rank, within [16, 4096] rows. */
#define EMBED_BATCH_BYTES (1 << 24)
#define EMBED_BATCH_MIN 16
#define EMBED_BATCH_MAX 4096
/* Default rows per write for backbones that report costs (LLMs): a round
 * then takes seconds, not minutes, so progress lines keep coming. */
#define EMBED_BATCH_COSTLY 64

/* ------------------------------------------------------------------------ */
/* Phase 3's split: which rows each rank encodes */

/* Rank r encodes rows [bounds[r], bounds[r + 1]). Equal row counts
 * (btrm_comm_block), or, when the backbone reports a cost per text (an LLM's
 * token count), contiguous blocks of nearly equal total cost: each rank
 * measures the costs of an equal-count block, every rank gathers all of
 * them and cuts the same prefix sums at r/size of the total. *prefix
 * (n_rows + 1 sums, malloc'ed; NULL without costs) serves the progress line.
 * Collective; every rank returns the same code. */
static int plan_blocks(btrm_backbone_handle *bb, btrm_texts_reader *reader, const char *in_path,
                       int64_t n_rows, int64_t batch, const btrm_comm *c, int64_t *bounds,
                       double **prefix)
{
    *prefix = NULL;
    for (int r = 0; r < c->size; r++) {
        int64_t n_r = 0;
        btrm_comm_block(n_rows, c->size, r, &bounds[r], &n_r);
    }
    bounds[c->size] = n_rows;
    if (!btrm_backbone_has_cost(bb))
        return 0;
    int64_t first = bounds[c->rank], count = bounds[c->rank + 1] - first;
    double *mine = NULL, *all = NULL;
    int64_t *cost = NULL;
    int *counts = NULL;
    int rc = 0;
    if (count > INT32_MAX)
        rc = btrm_error_set(BTRM_EUSAGE, "embed: %lld texts per rank is too many for one "
                            "gather; use more ranks", (long long)count);
    if (!rc && !(rc = BTRM_MALLOC(mine, count ? count : 1)) &&
        !(rc = BTRM_MALLOC(all, n_rows + 1)) && !(rc = BTRM_MALLOC(cost, batch)))
        rc = BTRM_MALLOC(counts, c->size);
    for (int64_t off = 0; !rc && off < count; off += batch) {
        int64_t rows = count - off < batch ? count - off : batch;
        const char *const *texts = NULL;
        rc = btrm_texts_read(reader, first + off, rows, &texts);
        if (!rc)
            rc = btrm_backbone_cost(bb, texts, (size_t)rows, cost);
        if (rc)
            rc = btrm_error_wrap(rc, "%s: /texts rows %lld..%lld", in_path,
                                 (long long)(first + off), (long long)(first + off + rows - 1));
        for (int64_t k = 0; !rc && k < rows; k++)
            mine[off + k] = (double)cost[k];
    }
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = btrm_comm_agree(c, btrm_comm_allgatherv_f64(c, mine, (int)count, all, counts));
    if (!rc) {
        /* all[i] = the cost of rows [0, i), exact in double (integer sums) */
        double total = 0.0;
        for (int64_t i = 0; i < n_rows; i++) {
            double x = all[i];
            all[i] = total;
            total += x;
        }
        all[n_rows] = total;
        for (int r = 1; r < c->size; r++) {
            /* the cut nearest r/size of the total, not before the previous one */
            double target = total * r / c->size;
            int64_t lo = bounds[r - 1], hi = n_rows;
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                if (all[mid] < target)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo > bounds[r - 1] && target - all[lo - 1] < all[lo] - target)
                lo--;
            bounds[r] = lo;
        }
        for (int r = 0; r < c->size; r++)
            btrm_log_debug("embed: rank %d: rows [%lld, %lld), %.0f tokens (split by tokens)", r,
                           (long long)bounds[r], (long long)bounds[r + 1],
                           all[bounds[r + 1]] - all[bounds[r]]);
        *prefix = all;
        all = NULL;
    }
    BTRM_FREE(mine, all, cost, counts);
    return rc;
}

/* ------------------------------------------------------------------------ */

int btrm_embed_run(const btrm_embed_opts *opts, const btrm_comm *c)
{
    btrm_backbone_handle bb;
    btrm_pairs store;
    btrm_texts_reader *reader = NULL;
    btrm_features_writer *ff = NULL;
    float *rows_f32 = NULL;
    uint16_t *rows_16 = NULL; /* float16 or bfloat16 rows */
    int64_t *bounds = NULL;
    double *prefix = NULL;
    char tmp[BTRM_PATH_MAX + 64] = "";
    int64_t n_rows = 0, batch = opts->batch;
    int tmp_made = 0;
    double t0 = btrm_comm_wtime();
    memset(&bb, 0, sizeof bb);
    memset(&store, 0, sizeof store);

    /* 1. backbone on every rank; the input is a pair store with /texts */
    int rc = btrm_comm_agree(c, btrm_backbone_open(&bb, opts->backbone, opts->dim));
    if (rc)
        goto fail;
    if (batch <= 0) {
        batch = EMBED_BATCH_BYTES / (4 * (int64_t)bb.dim);
        batch = batch < EMBED_BATCH_MIN ? EMBED_BATCH_MIN
                : batch > EMBED_BATCH_MAX ? EMBED_BATCH_MAX : batch;
        if (btrm_backbone_has_cost(&bb) && batch > EMBED_BATCH_COSTLY)
            batch = EMBED_BATCH_COSTLY;
    }
    rc = btrm_pairs_open(&store, opts->in_path, c, 0);
    btrm_pairs_close(&store);
    if (rc)
        goto fail;
    rc = btrm_texts_open(&reader, opts->in_path, batch, &n_rows);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    size_t dim = (size_t)bb.dim;
    rc = BTRM_MALLOC(rows_f32, (size_t)batch * dim);
    if (!rc && opts->features_dtype != BTRM_DTYPE_F32)
        rc = BTRM_MALLOC(rows_16, (size_t)batch * dim);
    if (!rc)
        rc = BTRM_MALLOC(bounds, c->size + 1);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    rc = plan_blocks(&bb, reader, opts->in_path, n_rows, batch, c, bounds, &prefix);
    if (rc)
        goto fail;

    btrm_log_debug("embed: %s: %lld texts, backbone %s (dim %d), validated in %.3f s",
                   opts->in_path, (long long)n_rows, opts->backbone, bb.dim,
                   btrm_comm_wtime() - t0);

    /* 2. rank 0 makes the output file under a temporary name */
    if (c->rank == 0) {
        char label[BTRM_NAME_MAX];
        json_t *attrs = json_object();
        btrm_tmp_path(opts->out_path, tmp, sizeof tmp);
        rc = attrs ? btrm_backbone_describe(&bb, label, sizeof label, attrs)
                   : btrm_error_set(BTRM_ENOMEM, "out of memory");
        if (!rc)
            rc = btrm_features_create(opts->in_path, tmp, opts->out_path, n_rows, bb.dim,
                                      opts->features_dtype, label, attrs);
        json_decref(attrs);
        tmp_made = 1;
    }
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = btrm_comm_agree(c, btrm_comm_bcast(c, tmp, sizeof tmp, 0));
    if (rc)
        goto fail;

    btrm_log_debug("embed: %s copied to %s in %.3f s", opts->in_path, tmp,
                   btrm_comm_wtime() - t0);

    /* 3. every rank: its block of rows, batch by batch, collective writes */
    rc = btrm_features_open(&ff, tmp, opts->out_path, opts->features_dtype, c);
    if (rc)
        goto fail;
    int64_t first = bounds[c->rank], count = bounds[c->rank + 1] - first, largest = 0;
    for (int r = 0; r < c->size; r++)
        if (bounds[r + 1] - bounds[r] > largest)
            largest = bounds[r + 1] - bounds[r];
    int64_t rounds = (largest + batch - 1) / batch;
    double t_last = t0, t_encode = 0.0, t_write = 0.0;
    for (int64_t round = 0; round < rounds && !rc; round++) {
        int64_t off = round * batch;
        int64_t rows = count - off < batch ? count - off : batch;
        if (rows < 0)
            rows = 0;
        double t_round = btrm_comm_wtime();
        const char *const *texts = NULL;
        rc = btrm_texts_read(reader, first + off, rows, &texts);
        if (!rc && rows > 0) {
            rc = btrm_backbone_encode(&bb, texts, (size_t)rows, rows_f32);
            /* Find the text that failed, to name its row. */
            for (int64_t k = 0; rc && k < rows; k++) {
                int rc_one = btrm_backbone_encode(&bb, texts + k, 1, rows_f32);
                if (rc_one) {
                    rc = btrm_error_wrap(rc_one, "%s: /texts row %lld", opts->in_path,
                                         (long long)(first + off + k));
                    break;
                }
            }
        }
        if (!rc && rows_16)
            btrm_dtype_from_f32(rows_16, opts->features_dtype, rows_f32, (size_t)rows * dim);
        double t_encoded = btrm_comm_wtime();
        t_encode += t_encoded - t_round;
        rc = btrm_comm_agree(c, rc);
        if (rc)
            break;
        rc = btrm_features_write(ff, first + off, rows, bb.dim,
                                 rows_16 ? (const void *)rows_16 : (const void *)rows_f32);
        rc = btrm_comm_agree(c, rc);
        double t = btrm_comm_wtime();
        t_write += t - t_encoded;
        if (c->rank == 0 && (t - t_last > (btrm_log_is_tty() ? 0.5 : 10.0) ||
                             round + 1 == rounds)) {
            /* rows done on all ranks: each rank has done min(count_r, off + batch) */
            int64_t done = 0;
            double cost_done = 0.0, dt = t - t0 > 0 ? t - t0 : 1e-9;
            for (int r = 0; r < c->size; r++) {
                int64_t n_r = bounds[r + 1] - bounds[r];
                int64_t d_r = n_r < off + batch ? n_r : off + batch;
                done += d_r;
                if (prefix)
                    cost_done += prefix[bounds[r] + d_r] - prefix[bounds[r]];
            }
            if (prefix)
                btrm_log_progress("embed: %lld/%lld texts, %.0f texts/s, %.0f tokens/s",
                                  (long long)done, (long long)n_rows, (double)done / dt,
                                  cost_done / dt);
            else
                btrm_log_progress("embed: %lld/%lld texts, %.0f texts/s", (long long)done,
                                  (long long)n_rows, (double)done / dt);
            t_last = t;
        }
    }
    btrm_log_progress_end();
    btrm_texts_close(reader);
    reader = NULL;
    int close_rc = btrm_features_close(ff);
    ff = NULL;
    if (!rc)
        rc = btrm_comm_agree(c, close_rc);
    if (rc)
        goto fail;

    btrm_log_debug("embed: features written at %.3f s", btrm_comm_wtime() - t0);
    /* per rank: its rows, tokens and encode/write seconds (rank 0 logs) */
    double mine[2] = { t_encode, t_write }, *times = NULL;
    int *counts = NULL;
    if (!(rc = BTRM_MALLOC(times, 2 * (size_t)c->size)) && !(rc = BTRM_MALLOC(counts, c->size)))
        rc = btrm_comm_allgatherv_f64(c, mine, 2, times, counts);
    rc = btrm_comm_agree(c, rc);
    for (int r = 0; !rc && r < c->size; r++) {
        char tokens[48] = "";
        if (prefix)
            snprintf(tokens, sizeof tokens, ", %.0f tokens", prefix[bounds[r + 1]] - prefix[bounds[r]]);
        btrm_log_debug("embed: rank %d: rows [%lld, %lld)%s, encode %.3f s, write %.3f s", r,
                       (long long)bounds[r], (long long)bounds[r + 1], tokens, times[2 * r],
                       times[2 * r + 1]);
    }
    free(times);
    free(counts);
    if (rc)
        goto fail;

    /* 4. publish */
    if (c->rank == 0)
        rc = btrm_file_commit(tmp, opts->out_path);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    tmp_made = 0;
    double seconds = btrm_comm_wtime() - t0;
    char label[BTRM_NAME_MAX];
    json_t *scratch = c->rank == 0 ? json_object() : NULL;
    if (scratch && !btrm_backbone_describe(&bb, label, sizeof label, scratch)) {
        char tokens[64] = "";
        if (prefix)
            snprintf(tokens, sizeof tokens, ", %.0f tokens/s",
                     seconds > 0 ? prefix[n_rows] / seconds : 0.0);
        btrm_log_info("embed: wrote %s: /features [%lld, %d] %s, backbone %s, %d rank%s, "
                      "%.2f s, %.0f texts/s%s", opts->out_path, (long long)n_rows, bb.dim,
                      btrm_dtype_name(opts->features_dtype), label, c->size,
                      c->size == 1 ? "" : "s", seconds,
                      seconds > 0 ? (double)n_rows / seconds : 0.0, tokens);
    }
    json_decref(scratch);
    btrm_compute_log(); /* -v: each GEMM shape of the backbone, its implementation, speed */
fail:
    /* every rank has it open here, or none (btrm_features_open): close collectively */
    btrm_features_close(ff);
    btrm_texts_close(reader);
    if (rc && tmp_made && tmp[0] && c->rank == 0)
        unlink(tmp);
    BTRM_FREE(rows_f32, rows_16, bounds, prefix);
    btrm_backbone_close(&bb);
    return rc;
}
