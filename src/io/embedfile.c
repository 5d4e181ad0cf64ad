/* embedfile.c: btrm embed's input texts and output store (see embedfile.h). */
#include "embedfile.h"

#include "error.h"
#include "fileutil.h"
#include "h5raw.h"
#include "h5util.h"
#include "log.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    BTRM_H5_CLOSE(out, mtype, space, type, attr);
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

int btrm_features_create(const char *in_path, const char *tmp, const char *out_path,
                         int64_t n_rows, int dim, int dtype, const char *label,
                         json_t *attrs)
{
    int rc = 0;
    hid_t fapl = -1, fcpl = -1, in = -1, out = -1, in_root = -1, out_root = -1;
    hid_t dcpl = -1, space = -1, type = -1, dset = -1;
    btrm_h5_quiet();
    BTRM_CHECK_H5(fapl = btrm_h5_fapl(), in_path);
    BTRM_CHECK_H5(fcpl = btrm_h5_fcpl(), out_path);
    rc = btrm_h5raw_check_file(in_path);
    if (rc)
        goto fail;
    BTRM_CHECK_H5(in = H5Fopen(in_path, H5F_ACC_RDONLY, fapl), in_path);
    out = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (out < 0) {
        rc = btrm_h5_error(out_path, "H5Fcreate", __FILE__, __LINE__);
        rc = btrm_error_wrap(rc, "cannot create %s (temporary file for %s)", tmp, out_path);
        goto fail;
    }
    /* the space of the copy and of /features, before any rank writes: the
     * collective writes then cannot fail for lack of space on some ranks */
    struct stat in_st;
    uint64_t in_bytes = stat(in_path, &in_st) == 0 ? (uint64_t)in_st.st_size : 0;
    rc = btrm_file_reserve(tmp, btrm_h5_reserve_bytes(
                                    in_bytes + (uint64_t)n_rows * (uint64_t)dim * btrm_dtype_size(dtype), 16));
    if (rc) {
        rc = btrm_error_wrap(rc, "cannot write %s", out_path);
        goto fail;
    }
    BTRM_CHECK_H5(in_root = H5Gopen2(in, "/", H5P_DEFAULT), in_path);
    BTRM_CHECK_H5(out_root = H5Gopen2(out, "/", H5P_DEFAULT), out_path);
    rc = btrm_h5raw_check_attrs(in_root, in_path);
    if (rc)
        goto fail;
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
    rc = btrm_h5_write_format(out_root, &btrm_format_pairs);
    if (rc)
        goto fail;
    hsize_t dims[2] = { (hsize_t)n_rows, (hsize_t)dim };
    BTRM_CHECK_H5(space = H5Screate_simple(2, dims, NULL), out_path);
    BTRM_CHECK_H5(dcpl = btrm_h5_dcpl(), out_path);
    BTRM_CHECK_H5(H5Pset_layout(dcpl, H5D_CONTIGUOUS), out_path);
    BTRM_CHECK_H5(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY), out_path);
    BTRM_CHECK_H5(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), out_path);
    BTRM_CHECK_H5(type = btrm_h5_float_type(dtype, H5T_IEEE_F32LE), out_path);
    BTRM_CHECK_H5(dset = H5Dcreate2(out, "features", type, space, H5P_DEFAULT, dcpl,
                                    H5P_DEFAULT), out_path);
    rc = btrm_h5_write_attr_string(dset, "backbone", label);
    if (!rc)
        rc = btrm_h5_write_attr_int(dset, "dim", dim);
    if (!rc && attrs)
        rc = write_json_attrs(dset, attrs);
fail:
    BTRM_H5_CLOSE(dset, type, dcpl, space, out_root, in_root);
    if (out >= 0 && H5Fclose(out) < 0 && !rc)
        rc = btrm_h5_error(out_path, "H5Fclose", __FILE__, __LINE__);
    BTRM_H5_CLOSE(in, fcpl, fapl);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading texts in batches (each rank opens the input serially) */

struct btrm_texts_reader {
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
};

void btrm_texts_close(btrm_texts_reader *r)
{
    if (!r)
        return;
    if (r->n_read > 0 && r->variable)
        H5Dvlen_reclaim(r->mtype, r->mspace, H5P_DEFAULT, r->vlen);
    BTRM_H5_CLOSE(r->mspace, r->mtype, r->space, r->dset, r->file);
    BTRM_FREE(r->vlen, r->fixed, r->copies, r->texts, r);
}

int btrm_texts_open(btrm_texts_reader **out, const char *path, int64_t batch,
                    int64_t *n_rows)
{
    int rc = 0;
    hid_t fapl = -1, type = -1;
    btrm_texts_reader *r = NULL;
    *out = NULL;
    btrm_h5_quiet();
    rc = BTRM_CALLOC(r, 1);
    if (rc)
        return rc;
    r->file = r->dset = r->space = r->mtype = r->mspace = -1;
    r->path = path;
    rc = btrm_h5raw_check_file(path);
    if (rc)
        goto fail;
    BTRM_CHECK_H5(fapl = btrm_h5_fapl(), path);
    r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (r->file < 0) {
        rc = btrm_error_set(BTRM_EDATA, "cannot open %s as HDF5", path);
        goto fail;
    }
    rc = btrm_h5_exists(r->file, "/texts");
    if (rc == 0)
        rc = btrm_error_set(BTRM_EDATA, "%s has no /texts: an LLM backbone reads the texts that "
                            "'btrm prep' writes", path);
    if (rc < 0)
        goto fail;
    rc = 0;
    BTRM_CHECK_H5(r->dset = H5Dopen2(r->file, "/texts", H5P_DEFAULT), path);
    {
        char where[BTRM_PATH_MAX + 16];
        snprintf(where, sizeof where, "%s: /texts", path);
        rc = btrm_h5raw_check_strings(r->dset, where); /* before H5Dread reads the heap */
        if (rc)
            goto fail;
    }
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
        btrm_texts_close(r);
    else
        *out = r;
    return rc;
}

int btrm_texts_read(btrm_texts_reader *r, int64_t first, int64_t count,
                    const char *const **texts)
{
    int rc = 0;
    *texts = r->texts;
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

struct btrm_features_writer {
    const char *path;
    hid_t fapl, file, dset, fspace, mspace, dxpl, mtype;
};

static void features_close(btrm_features_writer *f, int *rc, const char *path)
{
    BTRM_H5_CLOSE(f->mspace, f->fspace, f->dset, f->mtype, f->dxpl);
    if (f->file >= 0 && H5Fclose(f->file) < 0 && rc && !*rc)
        *rc = btrm_h5_error(path, "H5Fclose", __FILE__, __LINE__);
    if (f->fapl >= 0)
        H5Pclose(f->fapl);
    f->fapl = f->file = f->dset = f->fspace = f->mspace = f->dxpl = f->mtype = -1;
}

static int features_open(btrm_features_writer *f, const char *tmp, const char *path, int dtype,
                         const btrm_comm *c)
{
    int rc = 0;
    f->path = path;
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

int btrm_features_write(btrm_features_writer *f, int64_t first, int64_t rows, int dim,
                        const void *buf)
{
    int rc = 0;
    const char *path = f->path;
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

int btrm_features_open(btrm_features_writer **w, const char *tmp, const char *out_path,
                       int dtype, const btrm_comm *c)
{
    btrm_features_writer *f = NULL;
    *w = NULL;
    int rc = btrm_comm_agree(c, BTRM_CALLOC(f, 1));
    if (rc) {
        free(f);
        return rc;
    }
    rc = features_open(f, tmp, out_path, dtype, c);
    /* H5Fclose is collective: if the file is open on some ranks only, no
     * orderly way out remains. */
    int not_open = f->file < 0, any_not_open = not_open;
    if (btrm_comm_allreduce_max_int(c, &any_not_open))
        btrm_comm_abort(c, BTRM_EMPI, "embed: cannot agree on opening %s", tmp);
    if (any_not_open && !not_open)
        btrm_comm_abort(c, BTRM_EIO, "embed: %s opened on some ranks only", tmp);
    rc = btrm_comm_agree(c, rc);
    if (rc) {
        features_close(f, NULL, out_path); /* every rank has it open, or none */
        free(f);
        return rc;
    }
    *w = f;
    return 0;
}

int btrm_features_close(btrm_features_writer *f)
{
    int rc = 0;
    if (!f)
        return 0;
    features_close(f, &rc, f->path);
    free(f);
    return rc;
}
