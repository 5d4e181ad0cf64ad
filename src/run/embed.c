/* embed.c: /features for every row of /texts (see embed.h for the phases).
 *
 * The HDF5 calls specific to this command (copying a store, the collective
 * /features write) are kept together in the "output store" section below;
 * everything about the store's validity goes through pairs.h. */
#include "embed.h"

#include "backbone.h"
#include "compute.h"
#include "error.h"
#include "fileutil.h"
#include "h5util.h"
#include "log.h"
#include "pairs.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
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
/* The output store */

typedef struct copy_ctx {
    hid_t dst;
    const char *path;
    int rc;
} copy_ctx;

/* Copies one attribute of the source root group to ctx->dst. */
static herr_t copy_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    copy_ctx *ctx = data;
    int rc = 0;
    hid_t attr = -1, type = -1, mtype = -1, space = -1, out = -1;
    void *buf = NULL;
    int reclaim = 0;
    BTRM_CHECK_H5(attr = H5Aopen(loc, name, H5P_DEFAULT), ctx->path);
    BTRM_CHECK_H5(type = H5Aget_type(attr), ctx->path);
    BTRM_CHECK_H5(space = H5Aget_space(attr), ctx->path);
    BTRM_CHECK_H5(mtype = H5Tget_native_type(type, H5T_DIR_DEFAULT), ctx->path);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    BTRM_CHECK_H5(n, ctx->path);
    rc = BTRM_CALLOC(buf, H5Tget_size(mtype) * (size_t)(n > 0 ? n : 1));
    if (rc)
        goto fail;
    BTRM_CHECK_H5(H5Aread(attr, mtype, buf), ctx->path);
    reclaim = H5Tdetect_class(mtype, H5T_VLEN) > 0 || H5Tis_variable_str(mtype) > 0;
    BTRM_CHECK_H5(out = H5Acreate2(ctx->dst, name, type, space, H5P_DEFAULT, H5P_DEFAULT),
                  ctx->path);
    BTRM_CHECK_H5(H5Awrite(out, mtype, buf), ctx->path);
fail:
    if (reclaim)
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf);
    free(buf);
    if (out >= 0)
        H5Aclose(out);
    if (mtype >= 0)
        H5Tclose(mtype);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (attr >= 0)
        H5Aclose(attr);
    if (rc)
        btrm_error_wrap(rc, "copying root attribute %s", name);
    ctx->rc = rc;
    return rc ? -1 : 0;
}

/* Copies every root link but /features with H5Ocopy (groups recursively). */
static herr_t copy_link(hid_t loc, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    copy_ctx *ctx = data;
    int rc = 0;
    if (!strcmp(name, "features"))
        return 0;
    BTRM_CHECK_H5(H5Ocopy(loc, name, ctx->dst, name, H5P_DEFAULT, H5P_DEFAULT), ctx->path);
fail:
    if (rc)
        btrm_error_wrap(rc, "copying /%s", name);
    ctx->rc = rc;
    return rc ? -1 : 0;
}

/* Writes the backbone's own attributes (a JSON object) on dset. */
static int write_json_attrs(hid_t dset, json_t *attrs)
{
    const char *key;
    json_t *value;
    json_object_foreach(attrs, key, value) {
        int rc = 0;
        if (json_is_string(value))
            rc = btrm_h5_write_attr_string(dset, key, json_string_value(value));
        else if (json_is_integer(value) && json_integer_value(value) >= -2147483647 &&
                 json_integer_value(value) <= 2147483647)
            rc = btrm_h5_write_attr_int(dset, key, (int)json_integer_value(value));
        else if (json_is_number(value))
            rc = btrm_h5_write_attr_double(dset, key, json_number_value(value));
        else if (json_is_boolean(value))
            rc = btrm_h5_write_attr_int(dset, key, json_is_true(value));
        else
            rc = btrm_error_set(BTRM_EIO, "backbone attribute %s has an unsupported type", key);
        if (rc)
            return rc;
    }
    return 0;
}

/* Rank 0, serial: tmp = in without /features, plus an empty (allocated)
 * /features [n_rows, dim] with its attributes. */
static int make_output(const char *in_path, const char *tmp, const char *out_path,
                       int64_t n_rows, const btrm_backbone_handle *bb, int dtype)
{
    int rc = 0;
    hid_t fapl = -1, fcpl = -1, in = -1, out = -1, in_root = -1, out_root = -1;
    hid_t dcpl = -1, space = -1, type = -1, dset = -1;
    json_t *attrs = json_object();
    char label[BTRM_NAME_MAX];
    if (!attrs)
        return btrm_error_set(BTRM_ENOMEM, "out of memory");
    BTRM_CHECK_H5(fapl = btrm_h5_fapl(), in_path);
    BTRM_CHECK_H5(fcpl = btrm_h5_fcpl(), out_path);
    BTRM_CHECK_H5(in = H5Fopen(in_path, H5F_ACC_RDONLY, fapl), in_path);
    out = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (out < 0) {
        rc = btrm_h5_error(out_path, "H5Fcreate", __FILE__, __LINE__);
        rc = btrm_error_wrap(rc, "cannot create %s (temporary file for %s)", tmp, out_path);
        goto fail;
    }
    BTRM_CHECK_H5(in_root = H5Gopen2(in, "/", H5P_DEFAULT), in_path);
    BTRM_CHECK_H5(out_root = H5Gopen2(out, "/", H5P_DEFAULT), out_path);
    copy_ctx ctx = { .dst = out_root, .path = out_path, .rc = 0 };
    hsize_t idx = 0;
    if (H5Aiterate2(in_root, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_attr, &ctx) < 0) {
        rc = ctx.rc ? ctx.rc : btrm_h5_error(in_path, "H5Aiterate2", __FILE__, __LINE__);
        goto fail;
    }
    idx = 0;
    if (H5Literate(in_root, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_link, &ctx) < 0) {
        rc = ctx.rc ? ctx.rc : btrm_h5_error(in_path, "H5Literate", __FILE__, __LINE__);
        goto fail;
    }
    /* /features: contiguous and allocated now, so that the collective writes
     * touch raw data only and no rank allocates space. */
    hsize_t dims[2] = { (hsize_t)n_rows, (hsize_t)bb->dim };
    BTRM_CHECK_H5(space = H5Screate_simple(2, dims, NULL), out_path);
    BTRM_CHECK_H5(dcpl = btrm_h5_dcpl(), out_path);
    BTRM_CHECK_H5(H5Pset_layout(dcpl, H5D_CONTIGUOUS), out_path);
    BTRM_CHECK_H5(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY), out_path);
    BTRM_CHECK_H5(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), out_path);
    BTRM_CHECK_H5(type = btrm_h5_float_type(dtype, H5T_IEEE_F32LE), out_path);
    BTRM_CHECK_H5(dset = H5Dcreate2(out, "features", type, space, H5P_DEFAULT, dcpl,
                                    H5P_DEFAULT), out_path);
    rc = btrm_backbone_describe(bb, label, sizeof label, attrs);
    if (!rc)
        rc = btrm_h5_write_attr_string(dset, "backbone", label);
    if (!rc)
        rc = btrm_h5_write_attr_int(dset, "dim", bb->dim);
    if (!rc)
        rc = write_json_attrs(dset, attrs);
fail:
    json_decref(attrs);
    if (dset >= 0)
        H5Dclose(dset);
    if (type >= 0)
        H5Tclose(type);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    if (out_root >= 0)
        H5Gclose(out_root);
    if (in_root >= 0)
        H5Gclose(in_root);
    if (out >= 0 && H5Fclose(out) < 0 && !rc)
        rc = btrm_h5_error(out_path, "H5Fclose", __FILE__, __LINE__);
    if (in >= 0)
        H5Fclose(in);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (fapl >= 0)
        H5Pclose(fapl);
    return rc;
}

/* Rank 0: fsync tmp and rename it onto path (then fsync the directory). */
static int commit_output(const char *tmp, const char *path)
{
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return btrm_error_set(BTRM_EIO, "cannot flush %s: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return btrm_error_set(BTRM_EIO, "cannot rename %s to %s: %s", tmp, path,
                              strerror(errno));
    char dir[BTRM_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    fd = open(dirname(dir), O_RDONLY);
    if (fd >= 0) {
        fsync(fd); /* best effort: the rename itself durable */
        close(fd);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Reading texts in batches (each rank opens the input serially) */

typedef struct text_reader {
    const char *path;
    hid_t file, dset, space, mtype;
    int variable;      /* variable-length strings (else fixed-length) */
    size_t width;      /* fixed-length strings: bytes per string */
    char **vlen;       /* [batch] */
    char *fixed;       /* [batch * width] */
    char *copies;      /* [batch * (width + 1)]: NUL-terminated fixed strings */
    const char **texts;/* [batch] what encode sees */
    hid_t mspace;      /* the last read's memory space (for the vlen reclaim) */
    int64_t n_read;    /* strings held from the last read (vlen) */
} text_reader;

static void text_reader_close(text_reader *r)
{
    if (r->n_read > 0 && r->variable)
        H5Dvlen_reclaim(r->mtype, r->mspace, H5P_DEFAULT, r->vlen);
    if (r->mspace >= 0)
        H5Sclose(r->mspace);
    if (r->mtype >= 0)
        H5Tclose(r->mtype);
    if (r->space >= 0)
        H5Sclose(r->space);
    if (r->dset >= 0)
        H5Dclose(r->dset);
    if (r->file >= 0)
        H5Fclose(r->file);
    free(r->vlen);
    free(r->fixed);
    free(r->copies);
    free(r->texts);
    memset(r, 0, sizeof *r);
    r->file = r->dset = r->space = r->mtype = r->mspace = -1;
}

static int text_reader_open(text_reader *r, const char *path, int64_t batch, int64_t *n_rows)
{
    int rc = 0;
    hid_t fapl = -1, type = -1;
    memset(r, 0, sizeof *r);
    r->file = r->dset = r->space = r->mtype = r->mspace = -1;
    r->path = path;
    BTRM_CHECK_H5(fapl = btrm_h5_fapl(), path);
    r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (r->file < 0) {
        rc = btrm_error_set(BTRM_EDATA, "cannot open %s as HDF5", path);
        goto fail;
    }
    rc = btrm_h5_exists(r->file, "/texts");
    if (rc == 0)
        rc = btrm_error_set(BTRM_EDATA, "%s has no /texts: embed needs the texts that "
                            "'btrm prep' writes", path);
    if (rc < 0)
        goto fail;
    rc = 0;
    BTRM_CHECK_H5(r->dset = H5Dopen2(r->file, "/texts", H5P_DEFAULT), path);
    BTRM_CHECK_H5(type = H5Dget_type(r->dset), path);
    BTRM_CHECK_H5(r->space = H5Dget_space(r->dset), path);
    if (H5Tget_class(type) != H5T_STRING || H5Sget_simple_extent_ndims(r->space) != 1) {
        rc = btrm_error_set(BTRM_EDATA, "%s: /texts must be a 1-D string dataset", path);
        goto fail;
    }
    hsize_t dims[1];
    BTRM_CHECK_H5(H5Sget_simple_extent_dims(r->space, dims, NULL), path);
    *n_rows = (int64_t)dims[0];
    htri_t variable = H5Tis_variable_str(type);
    BTRM_CHECK_H5(variable, path);
    r->variable = variable > 0;
    if (r->variable) {
        BTRM_CHECK_H5(r->mtype = H5Tcopy(H5T_C_S1), path);
        BTRM_CHECK_H5(H5Tset_size(r->mtype, H5T_VARIABLE), path);
        BTRM_CHECK_H5(H5Tset_cset(r->mtype, H5Tget_cset(type)), path);
        rc = BTRM_CALLOC(r->vlen, batch);
    } else {
        r->width = H5Tget_size(type);
        BTRM_CHECK_H5(r->mtype = H5Tcopy(type), path);
        rc = BTRM_MALLOC(r->fixed, (size_t)batch * r->width + 1);
        if (!rc)
            rc = BTRM_MALLOC(r->copies, (size_t)batch * (r->width + 1));
    }
    if (!rc)
        rc = BTRM_CALLOC(r->texts, batch);
fail:
    if (type >= 0)
        H5Tclose(type);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (rc)
        text_reader_close(r);
    return rc;
}

/* r->texts[0..count) = /texts[first, first + count). */
static int text_reader_read(text_reader *r, int64_t first, int64_t count)
{
    int rc = 0;
    if (r->n_read > 0 && r->variable)
        H5Dvlen_reclaim(r->mtype, r->mspace, H5P_DEFAULT, r->vlen);
    r->n_read = 0;
    if (r->mspace >= 0)
        H5Sclose(r->mspace);
    r->mspace = -1;
    if (count == 0)
        return 0;
    hsize_t start[1] = { (hsize_t)first }, shape[1] = { (hsize_t)count };
    BTRM_CHECK_H5(r->mspace = H5Screate_simple(1, shape, NULL), r->path);
    BTRM_CHECK_H5(H5Sselect_hyperslab(r->space, H5S_SELECT_SET, start, NULL, shape, NULL),
                  r->path);
    if (r->variable) {
        BTRM_CHECK_H5(H5Dread(r->dset, r->mtype, r->mspace, r->space, H5P_DEFAULT, r->vlen),
                      r->path);
        r->n_read = count;
        for (int64_t i = 0; i < count; i++)
            r->texts[i] = r->vlen[i] ? r->vlen[i] : "";
    } else {
        BTRM_CHECK_H5(H5Dread(r->dset, r->mtype, r->mspace, r->space, H5P_DEFAULT, r->fixed),
                      r->path);
        for (int64_t i = 0; i < count; i++) {
            const char *src = r->fixed + (size_t)i * r->width;
            char *dst = r->copies + (size_t)i * (r->width + 1);
            size_t len = strnlen(src, r->width);
            memcpy(dst, src, len);
            dst[len] = '\0';
            r->texts[i] = dst;
        }
    }
fail:
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Phase 3: the collective write */

typedef struct features_file {
    hid_t fapl, file, dset, fspace, mspace, dxpl, mtype;
} features_file;

static void features_close(features_file *f, int *rc, const char *path)
{
    if (f->mspace >= 0)
        H5Sclose(f->mspace);
    if (f->fspace >= 0)
        H5Sclose(f->fspace);
    if (f->dset >= 0)
        H5Dclose(f->dset);
    if (f->mtype >= 0)
        H5Tclose(f->mtype);
    if (f->dxpl >= 0)
        H5Pclose(f->dxpl);
    if (f->file >= 0 && H5Fclose(f->file) < 0 && rc && !*rc)
        *rc = btrm_h5_error(path, "H5Fclose", __FILE__, __LINE__);
    if (f->fapl >= 0)
        H5Pclose(f->fapl);
    f->fapl = f->file = f->dset = f->fspace = f->mspace = f->dxpl = f->mtype = -1;
}

static int features_open(features_file *f, const char *tmp, const char *path, int dtype,
                         const btrm_comm *c)
{
    int rc = 0;
    f->fapl = f->file = f->dset = f->fspace = f->mspace = f->dxpl = f->mtype = -1;
    BTRM_CHECK_H5(f->fapl = H5Pcreate(H5P_FILE_ACCESS), path);
    BTRM_CHECK_H5(H5Pset_fapl_mpio(f->fapl, c->comm, MPI_INFO_NULL), path);
    f->file = H5Fopen(tmp, H5F_ACC_RDWR, f->fapl);
    if (f->file < 0) {
        rc = btrm_h5_error(path, "H5Fopen (MPI-IO)", __FILE__, __LINE__);
        rc = btrm_error_wrap(rc, "cannot open %s with MPI-IO", tmp);
        goto fail;
    }
    BTRM_CHECK_H5(f->dset = H5Dopen2(f->file, "features", H5P_DEFAULT), path);
    BTRM_CHECK_H5(f->fspace = H5Dget_space(f->dset), path);
    BTRM_CHECK_H5(f->dxpl = H5Pcreate(H5P_DATASET_XFER), path);
    BTRM_CHECK_H5(H5Pset_dxpl_mpio(f->dxpl, H5FD_MPIO_COLLECTIVE), path);
    /* Memory type = file type: no conversion, which would make HDF5 quietly
     * fall back to independent I/O. */
    BTRM_CHECK_H5(f->mtype = btrm_h5_float_type(dtype, H5T_NATIVE_FLOAT), path);
fail:
    return rc;
}

/* Rows [first, first + rows) of /features from buf; rows == 0 takes part in
 * the collective call with an empty selection. */
static int features_write(features_file *f, const char *path, int64_t first, int64_t rows,
                          int dim, const void *buf)
{
    int rc = 0;
    if (f->mspace >= 0)
        H5Sclose(f->mspace);
    f->mspace = -1;
    hsize_t start[2] = { (hsize_t)first, 0 }, shape[2] = { (hsize_t)rows, (hsize_t)dim };
    hsize_t one[2] = { 1, (hsize_t)dim };
    if (rows > 0) {
        BTRM_CHECK_H5(f->mspace = H5Screate_simple(2, shape, NULL), path);
        BTRM_CHECK_H5(H5Sselect_hyperslab(f->fspace, H5S_SELECT_SET, start, NULL, shape, NULL),
                      path);
    } else {
        BTRM_CHECK_H5(f->mspace = H5Screate_simple(2, one, NULL), path);
        BTRM_CHECK_H5(H5Sselect_none(f->mspace), path);
        BTRM_CHECK_H5(H5Sselect_none(f->fspace), path);
    }
    BTRM_CHECK_H5(H5Dwrite(f->dset, f->mtype, f->mspace, f->fspace, f->dxpl, buf), path);
    H5D_mpio_actual_io_mode_t mode;
    if (H5Pget_mpio_actual_io_mode(f->dxpl, &mode) >= 0 && mode == H5D_MPIO_NO_COLLECTIVE)
        btrm_log_debug("%s: HDF5 wrote /features independently, not collectively", path);
fail:
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Phase 3's split: which rows each rank encodes */

/* Rank r encodes rows [bounds[r], bounds[r + 1]). Equal row counts
 * (btrm_comm_block), or, when the backbone reports a cost per text (an LLM's
 * token count), contiguous blocks of nearly equal total cost: each rank
 * measures the costs of an equal-count block, every rank gathers all of
 * them and cuts the same prefix sums at r/size of the total. *prefix
 * (n_rows + 1 sums, malloc'ed; NULL without costs) serves the progress line.
 * Collective; every rank returns the same code. */
static int plan_blocks(btrm_backbone_handle *bb, text_reader *reader, const char *in_path,
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
        rc = text_reader_read(reader, first + off, rows);
        if (!rc)
            rc = btrm_backbone_cost(bb, reader->texts, (size_t)rows, cost);
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
    free(mine);
    free(all);
    free(cost);
    free(counts);
    return rc;
}

/* ------------------------------------------------------------------------ */

int btrm_embed_run(const btrm_embed_opts *opts, const btrm_comm *c)
{
    btrm_backbone_handle bb;
    btrm_pairs store;
    text_reader reader;
    features_file ff;
    float *rows_f32 = NULL;
    uint16_t *rows_16 = NULL; /* float16 or bfloat16 rows */
    int64_t *bounds = NULL;
    double *prefix = NULL;
    char tmp[BTRM_PATH_MAX + 64] = "";
    int64_t n_rows = 0, batch = opts->batch;
    int tmp_made = 0, ff_open = 0;
    double t0 = btrm_comm_wtime();
    memset(&bb, 0, sizeof bb);
    memset(&store, 0, sizeof store);
    memset(&reader, 0, sizeof reader);
    reader.file = reader.dset = reader.space = reader.mtype = reader.mspace = -1;
    ff.fapl = ff.file = ff.dset = ff.fspace = ff.mspace = ff.dxpl = ff.mtype = -1;
    btrm_h5_quiet();

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
    rc = text_reader_open(&reader, opts->in_path, batch, &n_rows);
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
    rc = plan_blocks(&bb, &reader, opts->in_path, n_rows, batch, c, bounds, &prefix);
    if (rc)
        goto fail;

    btrm_log_debug("embed: %s: %lld texts, backbone %s (dim %d), validated in %.3f s",
                   opts->in_path, (long long)n_rows, opts->backbone, bb.dim,
                   btrm_comm_wtime() - t0);

    /* 2. rank 0 makes the output file under a temporary name */
    if (c->rank == 0) {
        btrm_tmp_path(opts->out_path, tmp, sizeof tmp);
        rc = make_output(opts->in_path, tmp, opts->out_path, n_rows, &bb, opts->features_dtype);
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
    rc = features_open(&ff, tmp, opts->out_path, opts->features_dtype, c);
    ff_open = 1;
    /* H5Fclose is collective: if the file is open on some ranks only, no
     * orderly way out remains. */
    int not_open = ff.file < 0, any_not_open = not_open;
    if (btrm_comm_allreduce_max_int(c, &any_not_open))
        btrm_comm_abort(c, BTRM_EMPI, "embed: cannot agree on opening %s", tmp);
    if (any_not_open && !not_open)
        btrm_comm_abort(c, BTRM_EIO, "embed: %s opened on some ranks only", tmp);
    rc = btrm_comm_agree(c, rc);
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
        rc = text_reader_read(&reader, first + off, rows);
        if (!rc && rows > 0) {
            rc = btrm_backbone_encode(&bb, reader.texts, (size_t)rows, rows_f32);
            /* Find the text that failed, to name its row. */
            for (int64_t k = 0; rc && k < rows; k++) {
                int rc_one = btrm_backbone_encode(&bb, reader.texts + k, 1, rows_f32);
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
        rc = features_write(&ff, opts->out_path, first + off, rows, bb.dim,
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
    text_reader_close(&reader);
    int close_rc = 0;
    features_close(&ff, &close_rc, opts->out_path);
    ff_open = 0;
    if (!rc)
        rc = btrm_comm_agree(c, close_rc);
    if (rc)
        goto fail;

    btrm_log_debug("embed: features written at %.3f s (encode %.3f s, write %.3f s on "
                   "rank 0)", btrm_comm_wtime() - t0, t_encode, t_write);

    /* 4. publish */
    if (c->rank == 0)
        rc = commit_output(tmp, opts->out_path);
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
    if (ff_open) {
        /* Every rank has it open here (checked above): close collectively. */
        features_close(&ff, NULL, opts->out_path);
    }
    text_reader_close(&reader);
    if (rc && tmp_made && tmp[0] && c->rank == 0)
        unlink(tmp);
    free(rows_f32);
    free(rows_16);
    free(bounds);
    free(prefix);
    btrm_backbone_close(&bb);
    return rc;
}
