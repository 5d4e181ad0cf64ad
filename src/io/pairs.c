/* pairs.c: the pair store, format "pairs-v1" (docs/format.md).
 *
 * btrm_pairs_open runs in collective phases, each ending in btrm_comm_agree,
 * so that a failure on one rank never leaves the others waiting inside a
 * collective call:
 *   1. rank 0 checksums the file (crc32), opens it serially and validates
 *      everything except the feature values, reading the small datasets
 *      (pairs, category/subset codes and names, margins);
 *   2. rank 0 broadcasts them; every rank keeps its own copy;
 *   3. with BTRM_PAIRS_FEATURES, /features goes into node-shared memory: one
 *      copy of [n_rows, dim] per node, not per rank, in the file's type. Every rank opens
 *      the file with the MPI-IO driver on the job's communicator and reads a
 *      contiguous block of rows (its part of its node's rows) with
 *      collective H5Dread calls, into its part of the shared window. Every
 *      rank of the file communicator takes part in each call (those with
 *      nothing left select none), as HDF5 1.10's collective reads require.
 *      Collective reads let MPI-IO read each byte from the file system once
 *      and forward it to every node that needs it (two-phase I/O), instead of
 *      every node reading the whole array. float16 and bfloat16 rows are
 *      read in the file's own type (no HDF5 conversion, which would silently
 *      turn the read independent) and stay 16-bit in memory; readers convert
 *      the rows they use (btrm_pairs_feature_row). Each rank then checks its
 *      rows for NaN/Inf where a pair uses them.
 *
 * Memory: a node holds n_rows * dim * 4 bytes of float32 features (2 bytes
 * for float16 and bfloat16), plus 8 bytes per pair for the indices on every
 * rank. */
#include "pairs.h"

#include "error.h"
#include "feature_record_h5.h"
#include "fileutil.h"
#include "h5raw.h"
#include "h5util.h"
#include "log.h"
#include "memory.h"

#include <errno.h>
#include <hdf5.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* File bytes per collective H5Dread call: keeps every MPI-IO request far
 * below 2 GiB (the int count limit) whatever the store's size. */
#define READ_BYTES_PER_CALL ((size_t)1 << 29)

/* ------------------------------------------------------------------------ */
/* Phase 1: rank 0 validates the store and reads the small datasets. */

/* What rank 0 learns and broadcasts (homogeneous ranks: sent as bytes). */
typedef struct pairs_header {
    int64_t n_pairs, n_rows;
    int32_t dim, features_dtype, has_features, has_category, has_subset, has_margin;
    int32_t n_categories, n_subsets;
    uint32_t crc32;
    uint64_t names_bytes; /* category then subset names, each NUL-terminated */
    char backbone[BTRM_NAME_MAX];
} pairs_header;

static int file_crc32(const char *path, uint32_t *crc_out)
{
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return btrm_error_set(BTRM_EDATA, "cannot open pair store %s: %s", path,
                              strerror(errno));
    int rc = BTRM_MALLOC(buf, CHUNK);
    uint32_t crc = 0;
    size_t got;
    while (!rc && (got = fread(buf, 1, CHUNK, f)) > 0)
        crc = btrm_crc32_update(crc, buf, got);
    if (!rc && ferror(f))
        rc = btrm_error_set(BTRM_EIO, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    free(buf);
    *crc_out = (uint32_t)crc;
    return rc;
}

/* Opens dataset name, which must exist, be of class cls and have rank `rank`
 * ("an integer dataset of rank 1"); dims gets its shape. */
static int open_checked(hid_t file, const char *path, const char *name, H5T_class_t cls,
                        int rank, const char *what, hid_t *dset, hsize_t dims[2])
{
    int rc = btrm_h5_exists(file, name);
    hid_t type = -1, space = -1;
    *dset = -1;
    if (rc < 0)
        return rc;
    if (rc == 0)
        return btrm_error_set(BTRM_EDATA, "%s: missing dataset %s", path, name);
    rc = 0;
    *dset = H5Dopen2(file, name, H5P_DEFAULT);
    if (*dset < 0)
        return btrm_error_set(BTRM_EDATA, "%s: %s is not a dataset", path, name);
    BTRM_CHECK_H5(type = H5Dget_type(*dset), path);
    BTRM_CHECK_H5(space = H5Dget_space(*dset), path);
    int got_rank = H5Sget_simple_extent_ndims(space);
    if (H5Tget_class(type) != cls || got_rank != rank) {
        char tname[32];
        btrm_h5_type_name(type, tname, sizeof tname);
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset %s must be %s of rank %d (found %s of "
                            "rank %d)", path, name, what, rank, tname, got_rank);
        goto fail;
    }
    BTRM_CHECK_H5(H5Sget_simple_extent_dims(space, dims, NULL), path);
    /* the values the shape claims must be in the file before anyone allocates
     * them: a truncated copy, or a crafted shape of 2^31 rows */
    uint64_t values = dims[0];
    if (rank == 2 && dims[1] > 0)
        values = dims[0] > UINT64_MAX / dims[1] ? UINT64_MAX : dims[0] * dims[1];
    rc = btrm_h5_check_stored(*dset, path, name, values, H5Tget_size(type));
fail:
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (rc && *dset >= 0) {
        H5Dclose(*dset);
        *dset = -1;
    }
    return rc;
}

/* Reads a whole 1-D column into a new buffer of elem-byte values in mem_type.
 * Its length must be *n_pairs (/pairs/chosen's), or sets it when negative. */
static int read_column(hid_t file, const char *path, const char *name, H5T_class_t cls,
                       const char *what, int64_t *n_pairs_io, hid_t mem_type, size_t elem,
                       void **out)
{
    hid_t dset = -1;
    hsize_t dims[2];
    char *buf = NULL;
    *out = NULL;
    int rc = open_checked(file, path, name, cls, 1, what, &dset, dims);
    if (rc)
        return rc;
    if (*n_pairs_io < 0)
        *n_pairs_io = (int64_t)dims[0];
    const int64_t n_pairs = *n_pairs_io;
    if ((int64_t)dims[0] != n_pairs) {
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset %s has %llu rows but /pairs/chosen has "
                            "%lld", path, name, (unsigned long long)dims[0],
                            (long long)n_pairs);
        goto fail;
    }
    rc = BTRM_MALLOC(buf, (size_t)n_pairs * elem);
    if (rc)
        goto fail;
    if (n_pairs > 0)
        BTRM_CHECK_H5(H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), path);
    *out = buf;
    buf = NULL;
fail:
    free(buf);
    H5Dclose(dset);
    return rc;
}

/* /features: float32, IEEE float16 or bfloat16, [M, D]; optional attributes.
 * A 4-byte float of another layout is converted to float32 by HDF5. */
static int check_features(hid_t file, const char *path, pairs_header *h)
{
    hid_t dset = -1, type = -1;
    hsize_t dims[2];
    int rc = open_checked(file, path, "/features", H5T_FLOAT, 2, "a float32, float16 or "
                          "bfloat16 dataset", &dset, dims);
    if (rc)
        return rc;
    BTRM_CHECK_H5(type = H5Dget_type(dset), path);
    int swap;
    int dtype = btrm_h5_float_dtype(type, &swap);
    if (H5Tget_size(type) == 4) {
        h->features_dtype = BTRM_DTYPE_F32;
    } else if (dtype == BTRM_DTYPE_F16 || dtype == BTRM_DTYPE_BF16) {
        h->features_dtype = dtype;
    } else if (H5Tget_size(type) == 2) {
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset /features must be float32, IEEE float16 "
                            "or bfloat16 (found a 16-bit float that is neither IEEE binary16 "
                            "nor bfloat16: docs/format.md gives both layouts)", path);
        goto fail;
    } else {
        char tname[32];
        btrm_h5_type_name(type, tname, sizeof tname);
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset /features must be float32, IEEE float16 "
                            "or bfloat16 (found %s)", path, tname);
        goto fail;
    }
    if (dims[1] == 0 || dims[1] > INT_MAX || dims[0] > (hsize_t)INT64_MAX ||
        dims[0] > SIZE_MAX / sizeof(float) / dims[1]) {
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset /features has an unusable shape "
                            "[%llu, %llu]", path, (unsigned long long)dims[0],
                            (unsigned long long)dims[1]);
        goto fail;
    }
    h->has_features = 1;
    h->n_rows = (int64_t)dims[0];
    h->dim = (int32_t)dims[1];
    rc = btrm_h5_has_attr(dset, "backbone");
    if (rc == 1)
        rc = btrm_h5_read_attr_string(dset, "backbone", h->backbone, sizeof h->backbone);
    if (rc < 0)
        goto fail;
    rc = btrm_h5_has_attr(dset, "dim");
    if (rc == 1) {
        int dim_attr = 0;
        rc = btrm_h5_read_attr_int(dset, "dim", &dim_attr);
        if (!rc && dim_attr != h->dim)
            rc = btrm_error_set(BTRM_EDATA, "%s: /features has attribute dim = %d but %d "
                                "columns", path, dim_attr, h->dim);
    }
    if (rc < 0)
        goto fail;
    rc = 0;
fail:
    if (type >= 0)
        H5Tclose(type);
    H5Dclose(dset);
    return rc;
}

/* Codes in [0, n_names) with their names dataset (/categories, /subsets). */
static int read_coded(hid_t file, const char *path, const char *codes_name,
                      const char *names_name, int64_t n_pairs, int32_t **codes,
                      char ***names, int32_t *n_names)
{
    hid_t dset = -1;
    size_t n = 0;
    int rc = read_column(file, path, codes_name, H5T_INTEGER, "an integer dataset", &n_pairs,
                         H5T_NATIVE_INT32, sizeof(int32_t), (void **)codes);
    if (rc)
        return rc;
    rc = btrm_h5_exists(file, names_name);
    if (rc == 0)
        return btrm_error_set(BTRM_EDATA, "%s: dataset %s needs the names dataset %s, "
                              "which is missing", path, codes_name, names_name);
    if (rc < 0)
        return rc;
    rc = 0;
    BTRM_CHECK_H5(dset = H5Dopen2(file, names_name, H5P_DEFAULT), path);
    rc = btrm_h5_read_strings(dset, names, &n);
    if (rc)
        goto fail;
    if (n > INT32_MAX) {
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset %s has too many names", path, names_name);
        goto fail;
    }
    *n_names = (int32_t)n;
    for (int64_t i = 0; i < n_pairs; i++)
        if ((*codes)[i] < 0 || (*codes)[i] >= *n_names) {
            rc = btrm_error_set(BTRM_EDATA, "%s: dataset %s row %lld: code %d out of range "
                                "[0, %d) of %s", path, codes_name, (long long)i,
                                (int)(*codes)[i], (int)*n_names, names_name);
            goto fail;
        }
fail:
    if (dset >= 0)
        H5Dclose(dset);
    return rc;
}

static int check_pair_rows(const btrm_pairs *p, const char *rows_of)
{
    for (int64_t i = 0; i < p->n_pairs; i++) {
        const int64_t idx[2] = { p->chosen[i], p->rejected[i] };
        for (int k = 0; k < 2; k++)
            if (idx[k] < 0 || idx[k] >= p->n_rows)
                return btrm_error_set(BTRM_EDATA, "%s: dataset /pairs/%s row %lld: index "
                                      "%lld out of range [0, %lld) of %s rows", p->path,
                                      k ? "rejected" : "chosen", (long long)i,
                                      (long long)idx[k], (long long)p->n_rows, rows_of);
        if (idx[0] == idx[1])
            return btrm_error_set(BTRM_EDATA, "%s: datasets /pairs/chosen and "
                                  "/pairs/rejected row %lld: both are %s row %lld (a pair "
                                  "compares two different responses)", p->path,
                                  (long long)i, rows_of, (long long)idx[0]);
    }
    return 0;
}

/* Packs the names into one NUL-separated blob for the broadcast. */
static int pack_names(const btrm_pairs *p, char **blob, uint64_t *bytes)
{
    size_t total = 0;
    for (int i = 0; i < p->n_categories; i++)
        total += strlen(p->categories[i]) + 1;
    for (int i = 0; i < p->n_subsets; i++)
        total += strlen(p->subsets[i]) + 1;
    int rc = BTRM_MALLOC(*blob, total);
    if (rc)
        return rc;
    char *at = *blob;
    for (int i = 0; i < p->n_categories; i++)
        at = stpcpy(at, p->categories[i]) + 1;
    for (int i = 0; i < p->n_subsets; i++)
        at = stpcpy(at, p->subsets[i]) + 1;
    *bytes = total;
    return 0;
}

static int read_metadata(btrm_pairs *p, unsigned flags, pairs_header *h, char **blob)
{
    const char *path = p->path;
    hid_t fapl = -1, file = -1, dset = -1;
    hsize_t dims[2];
    int rc = file_crc32(path, &h->crc32);
    if (rc)
        return rc;
    htri_t is_h5 = H5Fis_hdf5(path);
    if (is_h5 <= 0)
        return btrm_error_set(BTRM_EDATA, "%s is not an HDF5 file", path);
    rc = btrm_h5raw_check_file(path);
    if (rc)
        return rc;
    BTRM_CHECK_H5(fapl = btrm_h5_fapl(), path);
    BTRM_CHECK_H5(file = H5Fopen(path, H5F_ACC_RDONLY, fapl), path);

    int version = 0;
    rc = btrm_h5_check_format(file, path, &btrm_format_pairs, &version);
    if (rc)
        goto fail;

    rc = btrm_h5_exists(file, "/features");
    if (rc == 0 && (flags & BTRM_PAIRS_REQUIRE_FEATURES))
        rc = btrm_error_set(BTRM_EDATA, "%s has no /features: run `btrm embed` first", path);
    if (rc < 0)
        goto fail;
    if (rc == 1 && (rc = check_features(file, path, h)) != 0)
        goto fail;

    rc = btrm_h5_exists(file, "/texts");
    if (rc < 0)
        goto fail;
    if (rc == 1) {
        rc = open_checked(file, path, "/texts", H5T_STRING, 1, "a string dataset", &dset,
                          dims);
        if (rc)
            goto fail;
        H5Dclose(dset);
        dset = -1;
        if (h->has_features && (int64_t)dims[0] != h->n_rows) {
            rc = btrm_error_set(BTRM_EDATA, "%s: dataset /texts has %llu rows but /features "
                                "has %lld", path, (unsigned long long)dims[0],
                                (long long)h->n_rows);
            goto fail;
        }
        h->n_rows = (int64_t)dims[0];
    } else if (!h->has_features) {
        rc = btrm_error_set(BTRM_EDATA, "%s has neither /features nor /texts: the pair "
                            "indices refer to nothing", path);
        goto fail;
    }
    p->n_rows = h->n_rows;

    p->n_pairs = -1; /* /pairs/chosen sets the length the others must have */
    rc = read_column(file, path, "/pairs/chosen", H5T_INTEGER, "an integer dataset",
                     &p->n_pairs, H5T_NATIVE_INT64, sizeof(int64_t), (void **)&p->chosen);
    if (p->n_pairs < 0)
        p->n_pairs = 0;
    h->n_pairs = p->n_pairs;
    if (!rc)
        rc = read_column(file, path, "/pairs/rejected", H5T_INTEGER, "an integer dataset",
                         &p->n_pairs, H5T_NATIVE_INT64, sizeof(int64_t),
                         (void **)&p->rejected);
    if (!rc)
        rc = check_pair_rows(p, h->has_features ? "/features" : "/texts");
    if (rc)
        goto fail;

    rc = btrm_h5_exists(file, "/pairs/category");
    if (rc == 1) {
        h->has_category = 1;
        rc = read_coded(file, path, "/pairs/category", "/categories", p->n_pairs,
                        &p->category, &p->categories, &h->n_categories);
        p->n_categories = h->n_categories;
    }
    if (rc < 0)
        goto fail;
    rc = btrm_h5_exists(file, "/pairs/subset");
    if (rc == 1) {
        h->has_subset = 1;
        rc = read_coded(file, path, "/pairs/subset", "/subsets", p->n_pairs, &p->subset,
                        &p->subsets, &h->n_subsets);
        p->n_subsets = h->n_subsets;
    }
    if (rc < 0)
        goto fail;
    rc = btrm_h5_exists(file, "/pairs/margin");
    if (rc == 1) {
        h->has_margin = 1;
        rc = read_column(file, path, "/pairs/margin", H5T_FLOAT, "a float dataset",
                         &p->n_pairs, H5T_NATIVE_FLOAT, sizeof(float), (void **)&p->margin);
        for (int64_t i = 0; !rc && i < p->n_pairs; i++)
            if (!isfinite(p->margin[i]))
                rc = btrm_error_set(BTRM_EDATA, "%s: dataset /pairs/margin row %lld: not "
                                    "finite (%g)", path, (long long)i, p->margin[i]);
    }
    if (rc < 0)
        goto fail;
    rc = btrm_h5_exists(file, "/pairs/id");
    if (rc == 1) {
        rc = open_checked(file, path, "/pairs/id", H5T_STRING, 1, "a string dataset", &dset,
                          dims);
        if (!rc && (int64_t)dims[0] != p->n_pairs)
            rc = btrm_error_set(BTRM_EDATA, "%s: dataset /pairs/id has %llu rows but "
                                "/pairs/chosen has %lld", path, (unsigned long long)dims[0],
                                (long long)p->n_pairs);
    }
    if (rc < 0)
        goto fail;
    rc = pack_names(p, blob, &h->names_bytes);
fail:
    BTRM_H5_CLOSE(dset, file, fapl);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Phase 2: broadcast */

/* A failed broadcast leaves the ranks in different collectives: there is no
 * agreeing any more, so end the job (comm.h). */
static void bcast_or_abort(const btrm_comm *c, void *buf, size_t bytes)
{
    if (btrm_comm_bcast(c, buf, bytes, 0) != 0)
        btrm_comm_abort(c, BTRM_EMPI, "broadcasting the pair store: %s", btrm_error_msg());
}

static int unpack_names(const char *blob, uint64_t bytes, int n, char ***names)
{
    int rc = BTRM_CALLOC(*names, n);
    const char *at = blob, *end = blob + bytes;
    for (int i = 0; !rc && i < n; i++) {
        size_t len = strnlen(at, (size_t)(end - at));
        rc = BTRM_MALLOC((*names)[i], len + 1);
        if (!rc) {
            memcpy((*names)[i], at, len);
            (*names)[i][len] = '\0';
            at += len + (at + len < end);
        }
    }
    return rc;
}

static int share_metadata(btrm_pairs *p, const btrm_comm *c, pairs_header *h, char **blob)
{
    bcast_or_abort(c, h, sizeof *h);
    h->backbone[sizeof h->backbone - 1] = '\0';
    int rc = 0;
    const size_t n = (size_t)h->n_pairs;
    if (c->rank != 0) {
        rc = BTRM_MALLOC(p->chosen, n);
        if (!rc)
            rc = BTRM_MALLOC(p->rejected, n);
        if (!rc && h->has_category)
            rc = BTRM_MALLOC(p->category, n);
        if (!rc && h->has_subset)
            rc = BTRM_MALLOC(p->subset, n);
        if (!rc && h->has_margin)
            rc = BTRM_MALLOC(p->margin, n);
        if (!rc)
            rc = BTRM_MALLOC(*blob, h->names_bytes);
    }
    rc = btrm_comm_agree(c, rc);
    if (rc)
        return rc;
    bcast_or_abort(c, p->chosen, n * sizeof *p->chosen);
    bcast_or_abort(c, p->rejected, n * sizeof *p->rejected);
    if (h->has_category)
        bcast_or_abort(c, p->category, n * sizeof *p->category);
    if (h->has_subset)
        bcast_or_abort(c, p->subset, n * sizeof *p->subset);
    if (h->has_margin)
        bcast_or_abort(c, p->margin, n * sizeof *p->margin);
    bcast_or_abort(c, *blob, h->names_bytes);
    p->n_pairs = h->n_pairs;
    p->n_rows = h->n_rows;
    p->dim = h->has_features ? h->dim : 0;
    p->features_dtype = h->features_dtype;
    p->crc32 = h->crc32;
    memcpy(p->backbone, h->backbone, sizeof p->backbone);
    if (c->rank != 0) {
        p->n_categories = h->n_categories;
        p->n_subsets = h->n_subsets;
        rc = unpack_names(*blob, h->names_bytes, p->n_categories, &p->categories);
        if (!rc) {
            size_t skip = 0;
            for (int i = 0; i < p->n_categories; i++)
                skip += strlen(p->categories[i]) + 1;
            rc = unpack_names(*blob + skip, h->names_bytes - skip, p->n_subsets,
                              &p->subsets);
        }
    }
    return btrm_comm_agree(c, rc);
}

/* ------------------------------------------------------------------------ */
/* Phase 3: features into node-shared memory */

typedef struct feature_reader {
    hid_t fapl, file, dset, fspace, dxpl, mem_type;
    int swap; /* 16-bit floats stored in the other byte order: swap after reading */
} feature_reader;

static int reader_open(feature_reader *r, const btrm_pairs *p, const btrm_comm *c)
{
    int rc = 0;
    const char *path = p->path;
    hid_t type = -1;
    hsize_t dims[2] = { 0, 0 };
    BTRM_CHECK_H5(r->fapl = H5Pcreate(H5P_FILE_ACCESS), path);
    BTRM_CHECK_H5(H5Pset_fapl_mpio(r->fapl, c->comm, MPI_INFO_NULL), path);
    /* Metadata reads by one rank, broadcast to the others: no metadata storm
     * on the file system at scale. Every rank then makes the same metadata
     * calls below, as that mode requires. */
    BTRM_CHECK_H5(H5Pset_all_coll_metadata_ops(r->fapl, 1), path);
    BTRM_CHECK_H5(r->file = H5Fopen(path, H5F_ACC_RDONLY, r->fapl), path);
    BTRM_CHECK_H5(r->dset = H5Dopen2(r->file, "/features", H5P_DEFAULT), path);
    BTRM_CHECK_H5(r->fspace = H5Dget_space(r->dset), path);
    BTRM_CHECK_H5(type = H5Dget_type(r->dset), path);
    int swap = 0, dtype = btrm_h5_float_dtype(type, &swap);
    int same_type = p->features_dtype == BTRM_DTYPE_F32 ? H5Tget_size(type) == 4
                                                         : dtype == p->features_dtype;
    if (H5Sget_simple_extent_ndims(r->fspace) != 2 ||
        H5Sget_simple_extent_dims(r->fspace, dims, NULL) < 0 ||
        (int64_t)dims[0] != p->n_rows || dims[1] != (hsize_t)p->dim || !same_type) {
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset /features changed while it was being "
                            "opened", path);
        goto fail;
    }
    if (p->features_dtype != BTRM_DTYPE_F32) {
        BTRM_CHECK_H5(r->mem_type = H5Tcopy(type), path); /* no conversion */
        r->swap = swap;
    } else {
        BTRM_CHECK_H5(r->mem_type = H5Tcopy(H5T_NATIVE_FLOAT), path);
    }
    BTRM_CHECK_H5(r->dxpl = H5Pcreate(H5P_DATASET_XFER), path);
    BTRM_CHECK_H5(H5Pset_dxpl_mpio(r->dxpl, H5FD_MPIO_COLLECTIVE), path);
fail:
    if (type >= 0)
        H5Tclose(type);
    return rc;
}

/* Closes what reader_open opened; H5Fclose is collective (MPI-IO). */
static void reader_close(feature_reader *r)
{
    BTRM_H5_CLOSE(r->dxpl, r->mem_type, r->fspace, r->dset, r->file, r->fapl);
}

static void swap_bytes16(uint16_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (uint16_t)(v[i] << 8 | v[i] >> 8);
}

/* n_calls collective H5Dread calls on every rank (the same number on all);
 * this rank's rows [first, first+count) go rows_per_call at a time. After a
 * failure the rank keeps taking part with empty selections, so the others
 * never wait for it. */
static int reader_read(feature_reader *r, btrm_pairs *p, int64_t first, int64_t count,
                       int64_t rows_per_call, int n_calls)
{
    int rc = 0, failed = 0;
    const size_t dim = (size_t)p->dim, elem = btrm_dtype_size(p->features_dtype);
    unsigned char *base = p->features_shm.base;
    float dummy[1];
    for (int k = 0; k < n_calls; k++) {
        int64_t done = (int64_t)k * rows_per_call;
        int64_t rows = failed || done >= count ? 0
                       : (count - done < rows_per_call ? count - done : rows_per_call);
        hsize_t start[2] = { (hsize_t)(first + done), 0 };
        hsize_t shape[2] = { rows > 0 ? (hsize_t)rows : 1, dim };
        void *dest = rows > 0 ? base + (size_t)(first + done) * dim * elem : (void *)dummy;
        hid_t mspace = H5Screate_simple(2, shape, NULL);
        herr_t sel = mspace < 0 ? -1
                     : rows > 0 ? H5Sselect_hyperslab(r->fspace, H5S_SELECT_SET, start, NULL,
                                                      shape, NULL)
                                : H5Sselect_none(r->fspace);
        if (sel >= 0 && rows == 0)
            sel = H5Sselect_none(mspace);
        if (sel < 0) { /* take part anyway, with nothing selected */
            H5Sselect_none(r->fspace);
            if (mspace >= 0)
                H5Sselect_none(mspace);
        }
        herr_t got = H5Dread(r->dset, r->mem_type, mspace >= 0 ? mspace : H5S_ALL, r->fspace,
                             r->dxpl, dest);
        if (mspace >= 0)
            H5Sclose(mspace);
        if ((sel < 0 || got < 0) && !failed) {
            rc = btrm_h5_error(p->path, "H5Dread(/features)", __FILE__, __LINE__);
            failed = 1;
            continue;
        }
        if (r->swap && rows > 0 && !failed)
            swap_bytes16(dest, (size_t)rows * dim);
    }
    H5D_mpio_actual_io_mode_t mode;
    if (n_calls > 0 && H5Pget_mpio_actual_io_mode(r->dxpl, &mode) >= 0 &&
        mode == H5D_MPIO_NO_COLLECTIVE)
        btrm_log_debug("%s: HDF5 read /features independently, not collectively",
                       p->path);
    return rc;
}

/* Whether element j of a row of dtype is NaN or Inf; sets *what. */
static int not_finite(const void *row, int dtype, size_t j, const char **what)
{
    float v;
    uint16_t h;
    switch (dtype) {
    case BTRM_DTYPE_F16:
        memcpy(&h, (const uint16_t *)row + j, sizeof h);
        if ((h & 0x7c00u) != 0x7c00u)
            return 0;
        v = btrm_half_to_float(h);
        break;
    case BTRM_DTYPE_BF16:
        memcpy(&h, (const uint16_t *)row + j, sizeof h);
        if ((h & 0x7f80u) != 0x7f80u)
            return 0;
        v = btrm_bf16_to_float(h);
        break;
    default:
        memcpy(&v, (const float *)row + j, sizeof v);
        if (isfinite(v))
            return 0;
        break;
    }
    *what = isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf";
    return 1;
}

/* NaN/Inf in this rank's rows [first, first+count) where a pair uses them. */
static int check_finite(const btrm_pairs *p, int64_t first, int64_t count)
{
    unsigned char *used = NULL;
    int rc = BTRM_CALLOC(used, count);
    if (rc)
        return rc;
    for (int64_t i = 0; i < p->n_pairs; i++) {
        if (p->chosen[i] >= first && p->chosen[i] < first + count)
            used[p->chosen[i] - first] = 1;
        if (p->rejected[i] >= first && p->rejected[i] < first + count)
            used[p->rejected[i] - first] = 1;
    }
    const size_t dim = (size_t)p->dim, elem = btrm_dtype_size(p->features_dtype);
    for (int64_t r = 0; r < count && !rc; r++) {
        if (!used[r])
            continue;
        const unsigned char *row = (const unsigned char *)p->features +
                                   (size_t)(first + r) * dim * elem;
        const char *what = NULL;
        for (size_t j = 0; j < dim; j++) {
            if (!not_finite(row, p->features_dtype, j, &what))
                continue;
            int64_t row_index = first + r, pair = 0;
            while (pair < p->n_pairs - 1 && p->chosen[pair] != row_index &&
                   p->rejected[pair] != row_index)
                pair++;
            const char *side = p->chosen[pair] == row_index ? "chosen" : "rejected";
            rc = btrm_error_set(BTRM_EDATA, "%s: dataset /features row %lld column %zu: "
                                "non-finite value (%s) in a row that pair %lld uses "
                                "(/pairs/%s)", p->path, (long long)row_index, j, what,
                                (long long)pair, side);
            break;
        }
    }
    free(used);
    return rc;
}

static int load_features(btrm_pairs *p, const btrm_comm *c)
{
    const size_t dim = (size_t)p->dim;
    const size_t elem = btrm_dtype_size(p->features_dtype);
    int64_t first, count;
    btrm_comm_block(p->n_rows, c->node_size, c->node_rank, &first, &count);
    int64_t rows_per_call = (int64_t)(READ_BYTES_PER_CALL / (dim * elem));
    if (rows_per_call < 1)
        rows_per_call = 1;
    int64_t calls = (count + rows_per_call - 1) / rows_per_call;
    int n_calls = calls > INT_MAX ? INT_MAX : (int)calls;

    /* Refused before anything is allocated when it cannot fit: the kernel's
     * OOM killer or the batch system's cgroup would end the job half-way. */
    const uint64_t need = (uint64_t)p->n_rows * dim * elem;
    uint64_t avail = UINT64_MAX;
    char what[700];
    int rc = 0;
    if (c->node_rank == 0 && btrm_memory_available(&avail, what, sizeof what) == 0 &&
        need > avail)
        rc = btrm_error_set(BTRM_ENOMEM, "%s: /features needs %llu bytes of memory on each "
                            "node (%lld rows x %d columns x %zu bytes) but %llu bytes are "
                            "available (%s)", p->path, (unsigned long long)need,
                            (long long)p->n_rows, p->dim, (size_t)elem,
                            (unsigned long long)avail, what);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        return rc;
    rc = btrm_comm_shared_alloc(c, (size_t)p->n_rows * dim * elem, &p->features_shm);
    if (!rc)
        p->features = p->features_shm.base;
    rc = btrm_comm_agree(c, rc);
    if (rc)
        return rc;
    if (btrm_comm_allreduce_max_int(c, &n_calls) != 0)
        btrm_comm_abort(c, BTRM_EMPI, "reading %s: %s", p->path, btrm_error_msg());

    feature_reader r = { -1, -1, -1, -1, -1, -1, 0 };
    rc = reader_open(&r, p, c);
    rc = btrm_comm_agree(c, rc);
    if (!rc) {
        rc = reader_read(&r, p, first, count, rows_per_call, n_calls);
        rc = btrm_comm_agree(c, rc);
    }
    reader_close(&r);
    if (rc)
        return rc;
    rc = check_finite(p, first, count);
    if (btrm_comm_shared_sync(c, &p->features_shm) != 0)
        btrm_comm_abort(c, BTRM_EMPI, "reading %s: %s", p->path, btrm_error_msg());
    return btrm_comm_agree(c, rc);
}

void btrm_pairs_feature_row(const btrm_pairs *p, int64_t row, void *out, int out_dtype)
{
    const size_t dim = (size_t)p->dim, elem = btrm_dtype_size(p->features_dtype);
    const unsigned char *src = (const unsigned char *)p->features + (size_t)row * dim * elem;
    btrm_dtype_convert(out, out_dtype, src, p->features_dtype, dim);
}

/* ------------------------------------------------------------------------ */

int btrm_pairs_open(btrm_pairs *p, const char *path, const btrm_comm *c, unsigned flags)
{
    pairs_header h;
    char *blob = NULL;
    memset(p, 0, sizeof *p);
    p->features_shm.win = MPI_WIN_NULL;
    memset(&h, 0, sizeof h);
    if (strlen(path) >= sizeof p->path)
        return btrm_error_set(BTRM_EDATA, "pair store name too long: %s", path);
    memcpy(p->path, path, strlen(path) + 1);
    btrm_h5_quiet();

    int rc = 0;
    if (c->rank == 0)
        rc = read_metadata(p, flags, &h, &blob);
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = share_metadata(p, c, &h, &blob);
    if (!rc && (flags & BTRM_PAIRS_FEATURES) && h.has_features && h.n_rows > 0)
        rc = load_features(p, c);
    free(blob);
    if (rc) {
        btrm_pairs_close(p);
        return rc;
    }
    btrm_log_debug("%s: %lld pairs, %lld rows, dim %d, %s features, crc32 %08x", p->path,
                   (long long)p->n_pairs, (long long)p->n_rows, p->dim,
                   btrm_dtype_name(p->features_dtype), (unsigned)p->crc32);
    return 0;
}

void btrm_pairs_close(btrm_pairs *p)
{
    if (!p)
        return;
    BTRM_FREE(p->chosen, p->rejected, p->category, p->subset, p->margin);
    btrm_h5_free_strings(p->categories, (size_t)(p->categories ? p->n_categories : 0));
    btrm_h5_free_strings(p->subsets, (size_t)(p->subsets ? p->n_subsets : 0));
    if (p->features)
        btrm_comm_shared_free(&p->features_shm);
    memset(p, 0, sizeof *p);
    p->features_shm.win = MPI_WIN_NULL;
}

/* ------------------------------------------------------------------------ */
/* Writing (serial) */

static int write_column(hid_t group, const char *path, const char *name, hid_t file_type,
                        hid_t mem_type, const void *data, int64_t n)
{
    hsize_t dims[1] = { (hsize_t)n };
    return btrm_h5_write_dataset(group, path, name, file_type, mem_type, 1, dims, data);
}

/* /features, contiguous (read in row blocks by MPI-IO); float16 and bfloat16
 * are rounded here in blocks of rows (so no second full copy is needed) and
 * written with a memory type equal to the file type. */
static int write_features(hid_t file, const char *path, const btrm_pairs_data *d)
{
    int rc = 0;
    hid_t space = -1, dcpl = -1, dset = -1, ftype = -1, mtype = -1, mspace = -1;
    uint16_t *narrow = NULL;
    const size_t dim = (size_t)d->dim;
    const int dtype = d->features_dtype;
    hsize_t dims[2] = { (hsize_t)d->n_rows, dim };
    BTRM_CHECK_H5(space = H5Screate_simple(2, dims, NULL), path);
    BTRM_CHECK_H5(dcpl = btrm_h5_dcpl(), path);
    BTRM_CHECK_H5(ftype = btrm_h5_float_type(dtype, H5T_IEEE_F32LE), path);
    BTRM_CHECK_H5(mtype = btrm_h5_float_type(dtype, H5T_NATIVE_FLOAT), path);
    BTRM_CHECK_H5(dset = H5Dcreate2(file, "features", ftype, space, H5P_DEFAULT, dcpl,
                                    H5P_DEFAULT), path);
    if (d->n_rows > 0 && dtype == BTRM_DTYPE_F32)
        BTRM_CHECK_H5(H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->features),
                      path);
    if (d->n_rows > 0 && dtype != BTRM_DTYPE_F32) {
        int64_t block = (int64_t)((1 << 22) / dim);
        if (block < 1)
            block = 1;
        if (block > d->n_rows)
            block = d->n_rows;
        rc = BTRM_MALLOC(narrow, (size_t)block * dim);
        if (rc)
            goto fail;
        for (int64_t row = 0; row < d->n_rows; row += block) {
            int64_t rows = d->n_rows - row < block ? d->n_rows - row : block;
            btrm_dtype_from_f32(narrow, dtype, d->features + (size_t)row * dim,
                                (size_t)rows * dim);
            hsize_t start[2] = { (hsize_t)row, 0 }, shape[2] = { (hsize_t)rows, dim };
            BTRM_CHECK_H5(mspace = H5Screate_simple(2, shape, NULL), path);
            BTRM_CHECK_H5(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, shape, NULL),
                          path);
            BTRM_CHECK_H5(H5Dwrite(dset, mtype, mspace, space, H5P_DEFAULT, narrow), path);
            H5Sclose(mspace);
            mspace = -1;
        }
    }
    rc = btrm_h5_write_attr_string(dset, "backbone", d->backbone ? d->backbone : "");
    if (!rc)
        rc = btrm_h5_write_attr_int(dset, "dim", d->dim);
fail:
    free(narrow);
    BTRM_H5_CLOSE(mspace, dset, mtype, ftype, dcpl, space);
    return rc;
}

static int check_data(const char *path, const btrm_pairs_data *d)
{
    const char *bad = NULL;
    if (d->n_pairs < 0 || d->n_rows < 0)
        bad = "negative n_pairs or n_rows";
    else if (d->n_pairs > 0 && (!d->chosen || !d->rejected))
        bad = "no chosen/rejected indices";
    else if (d->features && d->dim <= 0)
        bad = "features without a positive dim";
    else if (d->features_dtype != BTRM_DTYPE_F32 && d->features_dtype != BTRM_DTYPE_F16 &&
             d->features_dtype != BTRM_DTYPE_BF16)
        bad = "an unknown features dtype";
    else if (d->category && (!d->categories || d->n_categories <= 0))
        bad = "category codes without category names";
    else if (d->subset && (!d->subsets || d->n_subsets <= 0))
        bad = "subset codes without subset names";
    else if (!d->features && !d->texts)
        bad = "neither features nor texts";
    if (bad)
        return btrm_error_set(BTRM_EDATA, "%s: cannot write this pair store: %s", path, bad);
    return 0;
}

/* The bytes the store will take (btrm_h5_reserve_bytes): each string is a
 * 16-byte reference in its dataset and its bytes plus a 16-byte header,
 * aligned to 8, in a global heap. */
static uint64_t strings_bytes(const char *const *s, int64_t n)
{
    uint64_t total = 0;
    for (int64_t i = 0; s && i < n; i++)
        total += 32 + ((s[i] ? strlen(s[i]) : 0) + 7) / 8 * 8;
    return total;
}

static uint64_t store_bytes(const btrm_pairs_data *d)
{
    uint64_t n = (uint64_t)d->n_pairs, bytes = 0;
    if (d->features)
        bytes += (uint64_t)d->n_rows * (uint64_t)d->dim * btrm_dtype_size(d->features_dtype);
    bytes += strings_bytes(d->texts, d->n_rows) + strings_bytes(d->ids, d->n_pairs);
    bytes += strings_bytes(d->categories, d->category ? d->n_categories : 0);
    bytes += strings_bytes(d->subsets, d->subset ? d->n_subsets : 0);
    bytes += n * 16 + (d->category ? n * 4 : 0) + (d->subset ? n * 4 : 0) +
             (d->margin ? n * 4 : 0);
    bytes += d->provenance ? strlen(d->provenance) : 0;
    return btrm_h5_reserve_bytes(bytes, 16);
}

int btrm_pairs_write(const char *path, const btrm_pairs_data *d)
{
    btrm_h5_atomic a = { .file = -1 };
    hid_t gcpl = -1, group = -1;
    int rc = check_data(path, d);
    if (rc)
        return rc;
    rc = btrm_h5_create_atomic(&a, path);
    if (!rc)
        rc = btrm_h5_reserve_atomic(&a, store_bytes(d));
    if (rc)
        return rc;
    rc = btrm_h5_write_format(a.file, &btrm_format_pairs);
    if (!rc && d->provenance)
        rc = btrm_h5_write_attr_string(a.file, "provenance", d->provenance);
    if (!rc && d->features)
        rc = write_features(a.file, path, d);
    if (!rc && d->texts)
        rc = btrm_h5_write_strings(a.file, "texts", d->texts, (size_t)d->n_rows);
    if (!rc && d->category)
        rc = btrm_h5_write_strings(a.file, "categories", d->categories,
                                   (size_t)d->n_categories);
    if (!rc && d->subset)
        rc = btrm_h5_write_strings(a.file, "subsets", d->subsets, (size_t)d->n_subsets);
    if (rc)
        goto fail;
    BTRM_CHECK_H5(gcpl = btrm_h5_gcpl(), path);
    BTRM_CHECK_H5(group = H5Gcreate2(a.file, "pairs", H5P_DEFAULT, gcpl, H5P_DEFAULT), path);
    rc = write_column(group, path, "chosen", H5T_STD_I64LE, H5T_NATIVE_INT64, d->chosen,
                      d->n_pairs);
    if (!rc)
        rc = write_column(group, path, "rejected", H5T_STD_I64LE, H5T_NATIVE_INT64,
                          d->rejected, d->n_pairs);
    if (!rc && d->category)
        rc = write_column(group, path, "category", H5T_STD_I32LE, H5T_NATIVE_INT32,
                          d->category, d->n_pairs);
    if (!rc && d->subset)
        rc = write_column(group, path, "subset", H5T_STD_I32LE, H5T_NATIVE_INT32, d->subset,
                          d->n_pairs);
    if (!rc && d->margin)
        rc = write_column(group, path, "margin", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, d->margin,
                          d->n_pairs);
    if (!rc && d->ids)
        rc = btrm_h5_write_strings(group, "id", d->ids, (size_t)d->n_pairs);
    if (rc)
        goto fail;
    BTRM_H5_CLOSE(group, gcpl); /* everything closed before the file is */
    return btrm_h5_commit_atomic(&a);
fail:
    if (group >= 0)
        H5Gclose(group);
    if (gcpl >= 0)
        H5Pclose(gcpl);
    btrm_h5_abort_atomic(&a);
    return rc;
}

int btrm_pairs_read_backbone(const char *path, char *label, size_t size)
{
    int rc = 0;
    hid_t file = btrm_h5_open_read(path), dset = -1;
    label[0] = '\0';
    if (file >= 0)
        dset = H5Dopen2(file, "/features", H5P_DEFAULT);
    if (file < 0)
        rc = btrm_h5_open_error(path, "not an HDF5 file btrm can open");
    else if (dset < 0)
        rc = btrm_error_set(BTRM_EDATA, "%s has no /features", path);
    else if (btrm_h5_has_attr(dset, "backbone") != 1)
        rc = btrm_error_set(BTRM_EDATA, "%s: /features has no backbone attribute", path);
    else if ((rc = btrm_h5_read_attr_string(dset, "backbone", label, size)) == 0 && !label[0])
        rc = btrm_error_set(BTRM_EDATA, "%s: empty label", path);
    else if (rc)
        rc = btrm_error_wrap(rc, "%s", path);
    btrm_h5_close(dset);
    btrm_h5_close(file);
    return rc;
}

/* The chat template btrm prep rendered the texts with: its provenance's
 * "chat_template" object, as compact JSON with sorted keys ("" when the
 * store has none: made by another tool, or before prep recorded it). */
static int read_chat_template(hid_t file, const char *path, char *out, size_t size)
{
    enum { PROVENANCE_MAX = 1 << 16 };
    char *prov = NULL;
    out[0] = '\0';
    int rc = btrm_h5_has_attr(file, "provenance");
    if (rc != 1 || (rc = BTRM_MALLOC(prov, PROVENANCE_MAX)))
        return rc;
    /* a provenance btrm did not write (too long, not JSON) says nothing */
    if (btrm_h5_read_attr_string(file, "provenance", prov, PROVENANCE_MAX) != 0) {
        btrm_error_clear();
    } else {
        json_t *j = json_loads(prov, 0, NULL);
        json_t *tpl = json_object_get(j, "chat_template");
        char *text = json_is_object(tpl) ? json_dumps(tpl, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        if (text && strlen(text) >= size)
            rc = btrm_error_set(BTRM_EDATA, "%s: the chat template in /provenance is longer "
                                "than %zu bytes", path, size - 1);
        else if (text)
            memcpy(out, text, strlen(text) + 1);
        free(text);
        json_decref(j);
    }
    free(prov);
    return rc;
}

int btrm_pairs_read_features(const char *path, btrm_feature_record *rec)
{
    btrm_feature_record_clear(rec);
    hid_t file = btrm_h5_open_read(path), dset = -1, space = -1;
    if (file < 0)
        return btrm_h5_open_error(path, "not an HDF5 file btrm can open");
    int rc = btrm_h5_exists(file, "/features");
    if (rc <= 0)
        goto fail; /* no features: nothing recorded */
    rc = 0;
    BTRM_CHECK_H5(dset = H5Dopen2(file, "features", H5P_DEFAULT), path);
    if ((rc = btrm_feature_record_read_h5(dset, rec))) {
        rc = btrm_error_wrap(rc, "%s: /features", path);
        goto fail;
    }
    hsize_t dims[2] = { 0, 0 };
    BTRM_CHECK_H5(space = H5Dget_space(dset), path);
    if (H5Sget_simple_extent_ndims(space) == 2)
        BTRM_CHECK_H5(H5Sget_simple_extent_dims(space, dims, NULL), path);
    rec->dim = (int)dims[1];
    rc = read_chat_template(file, path, rec->chat_template, sizeof rec->chat_template);
fail:
    BTRM_H5_CLOSE(space, dset, file);
    if (rc < 0)
        rec->present = 0;
    return rc < 0 ? rc : 0;
}
