/* h5util.c: HDF5 helpers shared by the io modules (see h5util.h). */
#include "h5util.h"

#include "error.h"
#include "fileutil.h"
#include "h5raw.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Errors */

static herr_t innermost_error(unsigned n, const H5E_error2_t *err, void *data)
{
    /* Walking upward, n == 0 is the most specific entry (where it failed). */
    if (n == 0 && err->desc)
        snprintf(data, 256, "%s", err->desc);
    return 0;
}

int btrm_h5_error(const char *path, const char *call, const char *src, int line)
{
    char hdf5_msg[256] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, hdf5_msg);
    return btrm_error_set(BTRM_EIO, "%s: HDF5 call failed: %s (%s:%d)%s%s", path, call, src,
                          line, hdf5_msg[0] ? ": " : "", hdf5_msg);
}

void btrm_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* "FILE: /object" for messages about obj. */
static void describe(hid_t obj, char *out, size_t size)
{
    char file[BTRM_PATH_MAX] = "?", name[512] = "?";
    if (H5Fget_name(obj, file, sizeof file) < 0)
        snprintf(file, sizeof file, "?");
    if (H5Iget_name(obj, name, sizeof name) <= 0)
        snprintf(name, sizeof name, "?");
    snprintf(out, size, "%s: %s", file, name);
}

/* ------------------------------------------------------------------------ */
/* Property lists */

/* A creation property list of class cls with object time tracking off. */
static hid_t untimed(hid_t cls)
{
    hid_t p = H5Pcreate(cls);
    if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
        H5Pclose(p);
        return -1;
    }
    return p;
}

hid_t btrm_h5_fcpl(void) { return untimed(H5P_FILE_CREATE); }
hid_t btrm_h5_gcpl(void) { return untimed(H5P_GROUP_CREATE); }
hid_t btrm_h5_dcpl(void) { return untimed(H5P_DATASET_CREATE); }

hid_t btrm_h5_fapl(void)
{
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
    if (p < 0)
        return -1;
    /* SEMI: H5Fclose fails while objects are open instead of silently keeping
     * the file open, so a commit never renames a file that is still written. */
    if (H5Pset_fapl_sec2(p) < 0 || H5Pset_fclose_degree(p, H5F_CLOSE_SEMI) < 0) {
        H5Pclose(p);
        return -1;
    }
#if H5_VERSION_GE(1, 10, 7)
    if (H5Pset_file_locking(p, 1, 1) < 0) {
        H5Pclose(p);
        return -1;
    }
#endif
    return p;
}

hid_t btrm_h5_open_read(const char *path)
{
    btrm_h5_quiet();
    btrm_error_clear();
    if (btrm_h5raw_check_file(path) != 0)
        return -1;
    hid_t fapl = btrm_h5_fapl();
    hid_t file = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
    btrm_h5_close(fapl);
    return file;
}

int btrm_h5_open_error(const char *path, const char *what)
{
    if (btrm_error_code() != 0)
        return btrm_error_code(); /* btrm_h5raw_check_file refused it, and said why */
    return btrm_error_set(BTRM_EDATA, "%s: %s", path, what);
}

void btrm_h5_close(hid_t id)
{
    if (id < 0)
        return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

void btrm_h5_close_each(const hid_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        btrm_h5_close(ids[i]);
}

int btrm_h5_exists(hid_t file, const char *path)
{
    char buf[BTRM_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return btrm_error_set(BTRM_EIO, "HDF5 object path too long: %s", path);
    /* H5Lexists fails (rather than returning 0) when an intermediate group is
     * missing, so test each prefix in turn. */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
        if (e < 0) {
            char where[BTRM_PATH_MAX + 600];
            describe(file, where, sizeof where);
            return btrm_error_set(BTRM_EIO, "%s: cannot look up %s", where, buf);
        }
        if (e == 0)
            return 0;
        *p = saved;
        if (saved == '\0')
            return 1;
    }
}

/* ------------------------------------------------------------------------ */
/* Attributes */

static hid_t vlen_string_type(H5T_cset_t cset)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, cset) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

int btrm_h5_has_attr(hid_t obj, const char *name)
{
    char where[BTRM_PATH_MAX + 600];
    describe(obj, where, sizeof where);
    /* libhdf5 decodes every attribute message of obj here, unchecked */
    int rc = btrm_h5raw_check_attrs(obj, where);
    if (rc)
        return rc;
    htri_t e = H5Aexists(obj, name);
    if (e < 0)
        return btrm_error_set(BTRM_EIO, "%s: cannot look up attribute %s", where, name);
    return e > 0;
}

/* Creates (replacing any old one) an attribute of n values (n == 0: a
 * scalar, one value) and writes them. */
static int write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                      const void *value, hsize_t n)
{
    int rc = 0;
    hid_t space = -1, attr = -1;
    char where[BTRM_PATH_MAX + 600];
    describe(obj, where, sizeof where);
    rc = btrm_h5_has_attr(obj, name);
    if (rc < 0)
        return rc;
    if (rc == 1)
        BTRM_CHECK_H5(H5Adelete(obj, name), where);
    rc = 0;
    BTRM_CHECK_H5(space = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR), where);
    BTRM_CHECK_H5(attr = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT),
                  where);
    BTRM_CHECK_H5(H5Awrite(attr, mem_type, value), where);
fail:
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

int btrm_h5_write_attr_string(hid_t obj, const char *name, const char *value)
{
    hid_t type = vlen_string_type(H5T_CSET_UTF8);
    if (type < 0)
        return btrm_h5_error("(string type)", "H5Tcopy", __FILE__, __LINE__);
    int rc = write_attr(obj, name, type, type, &value, 0);
    H5Tclose(type);
    return rc;
}

int btrm_h5_write_attr_double(hid_t obj, const char *name, double value)
{
    return write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, 0);
}

int btrm_h5_write_attr_int(hid_t obj, const char *name, int value)
{
    return write_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT, &value, 0);
}

int btrm_h5_write_attr_i64(hid_t obj, const char *name, int64_t value)
{
    return write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, 0);
}

int btrm_h5_write_attr_u32(hid_t obj, const char *name, uint32_t value)
{
    return write_attr(obj, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, &value, 0);
}

int btrm_h5_write_attr_doubles(hid_t obj, const char *name, const double *values, size_t n)
{
    return write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values, (hsize_t)n);
}

/* Opens attribute name of obj, which must hold elements of class cls: one,
 * or with count != NULL at most *count (set to the number it holds); *attr
 * and *type are returned open. */
static int open_attr_n(hid_t obj, const char *name, H5T_class_t cls, const char *what,
                       size_t *count, hid_t *attr, hid_t *type, char *where,
                       size_t where_size)
{
    int rc = 0;
    hid_t space = -1;
    *attr = *type = -1;
    describe(obj, where, where_size);
    rc = btrm_h5_has_attr(obj, name);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return btrm_error_set(BTRM_EDATA, "%s: missing attribute %s", where, name);
    rc = 0;
    BTRM_CHECK_H5(*attr = H5Aopen(obj, name, H5P_DEFAULT), where);
    BTRM_CHECK_H5(*type = H5Aget_type(*attr), where);
    BTRM_CHECK_H5(space = H5Aget_space(*attr), where);
    H5T_class_t got = H5Tget_class(*type);
    int numeric_ok = cls == H5T_FLOAT && got == H5T_INTEGER; /* 1 is a fine 1.0 */
    if (got != cls && !numeric_ok) {
        char tname[32];
        btrm_h5_type_name(*type, tname, sizeof tname);
        rc = btrm_error_set(BTRM_EDATA, "%s: attribute %s must be %s (found %s)", where, name,
                            what, tname);
        goto fail;
    }
    hssize_t points = H5Sget_simple_extent_npoints(space);
    if (!count && points != 1) {
        rc = btrm_error_set(BTRM_EDATA, "%s: attribute %s must hold one value (found %lld)",
                            where, name, (long long)points);
        goto fail;
    }
    if (count && (points < 0 || (size_t)points > *count)) {
        rc = btrm_error_set(BTRM_EDATA, "%s: attribute %s must hold at most %zu values "
                            "(found %lld)", where, name, *count, (long long)points);
        goto fail;
    }
    if (count)
        *count = (size_t)points;
fail:
    if (space >= 0)
        H5Sclose(space);
    if (rc) {
        if (*type >= 0)
            H5Tclose(*type);
        if (*attr >= 0)
            H5Aclose(*attr);
        *attr = *type = -1;
    }
    return rc;
}

static int open_attr(hid_t obj, const char *name, H5T_class_t cls, const char *what,
                     hid_t *attr, hid_t *type, char *where, size_t where_size)
{
    return open_attr_n(obj, name, cls, what, NULL, attr, type, where, where_size);
}

int btrm_h5_read_attr_string(hid_t obj, const char *name, char *value, size_t size)
{
    char where[BTRM_PATH_MAX + 600];
    hid_t attr = -1, type = -1, mtype = -1, space = -1;
    char *vlen = NULL, *fixed = NULL;
    const char *text = "";
    int rc = open_attr(obj, name, H5T_STRING, "a string", &attr, &type, where, sizeof where);
    if (rc)
        return rc;
    htri_t variable = H5Tis_variable_str(type);
    BTRM_CHECK_H5(variable, where);
    if (variable) {
        BTRM_CHECK_H5(mtype = vlen_string_type(H5Tget_cset(type)), where);
        BTRM_CHECK_H5(H5Aread(attr, mtype, &vlen), where);
        if (vlen)
            text = vlen;
    } else {
        size_t n = H5Tget_size(type);
        rc = BTRM_CALLOC(fixed, n + 1);
        if (rc)
            goto fail;
        BTRM_CHECK_H5(H5Aread(attr, type, fixed), where);
        text = fixed; /* null-padded or null-terminated; fixed[n] ends it */
    }
    if (strlen(text) >= size) {
        rc = btrm_error_set(BTRM_EDATA, "%s: attribute %s is too long (%zu bytes, at most %zu)",
                            where, name, strlen(text), size - 1);
        goto fail;
    }
    memcpy(value, text, strlen(text) + 1);
fail:
    if (vlen) {
        space = H5Screate(H5S_SCALAR);
        if (space >= 0)
            H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, &vlen);
        if (space >= 0)
            H5Sclose(space);
    }
    free(fixed);
    if (mtype >= 0)
        H5Tclose(mtype);
    H5Tclose(type);
    H5Aclose(attr);
    return rc;
}

/* A one-value attribute of class cls read as mem_type. */
static int read_attr_scalar(hid_t obj, const char *name, H5T_class_t cls, const char *what,
                            hid_t mem_type, void *value)
{
    char where[BTRM_PATH_MAX + 600];
    hid_t attr = -1, type = -1;
    int rc = open_attr(obj, name, cls, what, &attr, &type, where, sizeof where);
    if (rc)
        return rc;
    BTRM_CHECK_H5(H5Aread(attr, mem_type, value), where);
fail:
    BTRM_H5_CLOSE(type, attr);
    return rc;
}

int btrm_h5_read_attr_double(hid_t obj, const char *name, double *value)
{
    return read_attr_scalar(obj, name, H5T_FLOAT, "a number", H5T_NATIVE_DOUBLE, value);
}

int btrm_h5_read_attr_i64(hid_t obj, const char *name, int64_t *value)
{
    return read_attr_scalar(obj, name, H5T_INTEGER, "an integer", H5T_NATIVE_INT64, value);
}

/* An integer attribute that must lie in [min, max]. */
static int read_attr_ranged(hid_t obj, const char *name, int64_t min, int64_t max,
                            const char *type_name, int64_t *value)
{
    int rc = btrm_h5_read_attr_i64(obj, name, value);
    if (!rc && (*value < min || *value > max)) {
        char where[BTRM_PATH_MAX + 600];
        describe(obj, where, sizeof where);
        rc = btrm_error_set(BTRM_EDATA, "%s: attribute %s = %lld does not fit %s", where,
                            name, (long long)*value, type_name);
    }
    return rc;
}

int btrm_h5_read_attr_int(hid_t obj, const char *name, int *value)
{
    int64_t v = 0;
    int rc = read_attr_ranged(obj, name, INT32_MIN, INT32_MAX, "an int", &v);
    if (!rc)
        *value = (int)v;
    return rc;
}

int btrm_h5_read_attr_u32(hid_t obj, const char *name, uint32_t *value)
{
    int64_t v = 0;
    int rc = read_attr_ranged(obj, name, 0, UINT32_MAX, "a uint32", &v);
    if (!rc)
        *value = (uint32_t)v;
    return rc;
}

int btrm_h5_read_attr_doubles(hid_t obj, const char *name, double *values, size_t max,
                              size_t *n)
{
    char where[BTRM_PATH_MAX + 600];
    hid_t attr = -1, type = -1;
    *n = max;
    int rc = open_attr_n(obj, name, H5T_FLOAT, "numbers", n, &attr, &type, where,
                         sizeof where);
    if (rc)
        return rc;
    if (*n > 0)
        BTRM_CHECK_H5(H5Aread(attr, H5T_NATIVE_DOUBLE, values), where);
fail:
    H5Tclose(type);
    H5Aclose(attr);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Format tags */

int btrm_h5_write_format(hid_t file, const btrm_format *f)
{
    char tag[BTRM_FORMAT_TAG_MAX];
    btrm_format_tag(f, tag, sizeof tag);
    int rc = btrm_h5_write_attr_string(file, "btrm_format", tag);
    if (!rc)
        rc = btrm_h5_write_attr_string(file, "btrm_version", PACKAGE_VERSION);
    return rc;
}

int btrm_h5_read_format(hid_t file, const char *path, char *tag, size_t tag_size,
                        char *writer, size_t writer_size)
{
    tag[0] = writer[0] = '\0';
    int rc = btrm_h5_has_attr(file, "btrm_format");
    if (rc == 0)
        return btrm_error_set(BTRM_EDATA, "%s: missing root attribute btrm_format: not a "
                              "btrm file", path);
    if (rc < 0)
        return rc;
    rc = btrm_h5_read_attr_string(file, "btrm_format", tag, tag_size);
    if (!rc && btrm_h5_has_attr(file, "btrm_version") == 1 &&
        btrm_h5_read_attr_string(file, "btrm_version", writer, writer_size) != 0)
        writer[0] = '\0'; /* informative only */
    return rc;
}

int btrm_h5_check_format(hid_t file, const char *path, const btrm_format *f, int *version)
{
    char tag[BTRM_FORMAT_TAG_MAX], writer[BTRM_FORMAT_TAG_MAX];
    int rc = btrm_h5_has_attr(file, "btrm_format");
    if (rc == 0) {
        btrm_format_tag(f, tag, sizeof tag);
        return btrm_error_set(BTRM_EDATA, "%s: missing root attribute btrm_format: not a btrm "
                              "%s file (expected btrm_format = \"%s\")", path, f->name, tag);
    }
    if (rc > 0)
        rc = btrm_h5_read_format(file, path, tag, sizeof tag, writer, sizeof writer);
    return rc ? rc : btrm_format_check(f, path, tag, writer, version);
}

/* ------------------------------------------------------------------------ */
/* String datasets */

int btrm_h5_write_strings(hid_t loc, const char *name, const char *const *strings,
                          size_t n)
{
    int rc = 0;
    char where[BTRM_PATH_MAX + 600];
    hid_t type = -1, space = -1, dcpl = -1, dset = -1;
    const char **items = NULL;
    describe(loc, where, sizeof where);
    rc = BTRM_MALLOC(items, n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        items[i] = strings[i] ? strings[i] : "";
    hsize_t dims[1] = { n };
    BTRM_CHECK_H5(type = vlen_string_type(H5T_CSET_UTF8), where);
    BTRM_CHECK_H5(space = H5Screate_simple(1, dims, NULL), where);
    BTRM_CHECK_H5(dcpl = btrm_h5_dcpl(), where);
    BTRM_CHECK_H5(dset = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                  where);
    if (n > 0)
        BTRM_CHECK_H5(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, items), where);
fail:
    BTRM_H5_CLOSE(dset, dcpl, space, type);
    free(items);
    return rc;
}

int btrm_h5_check_stored(hid_t dset, const char *path, const char *name, uint64_t n_values,
                         size_t value_bytes)
{
    int rc = 0;
    hid_t dcpl = -1, file = -1;
    BTRM_CHECK_H5(dcpl = H5Dget_create_plist(dset), path);
    H5D_layout_t layout = H5Pget_layout(dcpl);
    BTRM_CHECK_H5(layout, path);
    if (value_bytes == 0) {
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset %s has a type of 0 bytes (the file is "
                            "damaged or crafted)", path, name);
        goto fail;
    }
    if ((layout != H5D_CONTIGUOUS && layout != H5D_COMPACT) || n_values == 0)
        goto fail;
    uint64_t bytes = n_values > UINT64_MAX / value_bytes ? UINT64_MAX : n_values * value_bytes;
    if (layout == H5D_COMPACT) {
        /* the values are inside the object header: libhdf5 1.10 reads what the
         * shape claims from a smaller (even empty) compact buffer */
        hsize_t stored = H5Dget_storage_size(dset);
        if (stored < bytes)
            rc = btrm_error_set(BTRM_EDATA, "%s: dataset %s: its shape holds %llu values of "
                                "%zu bytes (%llu bytes), but its compact storage has %llu "
                                "(the file is damaged or crafted)", path, name,
                                (unsigned long long)n_values, value_bytes,
                                (unsigned long long)bytes, (unsigned long long)stored);
        goto fail;
    }
    haddr_t offset = H5Dget_offset(dset);
    hsize_t file_size = 0;
    BTRM_CHECK_H5(file = H5Iget_file_id(dset), path);
    BTRM_CHECK_H5(H5Fget_filesize(file, &file_size), path);
    if (offset == HADDR_UNDEF || offset > file_size || bytes > file_size - offset ||
        H5Dget_storage_size(dset) < bytes)
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset %s: its shape holds %llu values of %zu "
                            "bytes (%llu bytes), which the file (%llu bytes) does not hold%s: "
                            "the file is truncated or damaged", path, name,
                            (unsigned long long)n_values, value_bytes,
                            (unsigned long long)bytes, (unsigned long long)file_size,
                            offset == HADDR_UNDEF ? " (no values were ever written)" : "");
fail:
    if (file >= 0)
        H5Fclose(file);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return rc;
}

void btrm_h5_free_strings(char **strings, size_t n)
{
    if (!strings)
        return;
    for (size_t i = 0; i < n; i++)
        free(strings[i]);
    free(strings);
}

int btrm_h5_read_strings(hid_t dset, char ***strings, size_t *n_out)
{
    int rc = 0;
    char where[BTRM_PATH_MAX + 600];
    hid_t type = -1, mtype = -1, space = -1;
    char **vlen = NULL, *fixed = NULL, **out = NULL;
    size_t n = 0, width = 0;
    int vlen_read = 0;
    *strings = NULL;
    *n_out = 0;
    describe(dset, where, sizeof where);
    rc = btrm_h5raw_check_strings(dset, where); /* before H5Dread reads the global heap */
    if (rc)
        return rc;
    BTRM_CHECK_H5(type = H5Dget_type(dset), where);
    BTRM_CHECK_H5(space = H5Dget_space(dset), where);
    if (H5Tget_class(type) != H5T_STRING || H5Sget_simple_extent_ndims(space) != 1) {
        char tname[32];
        btrm_h5_type_name(type, tname, sizeof tname);
        rc = btrm_error_set(BTRM_EDATA, "%s must be a string dataset of rank 1 (found %s of "
                            "rank %d)", where, tname, H5Sget_simple_extent_ndims(space));
        goto fail;
    }
    hsize_t dims[1];
    BTRM_CHECK_H5(H5Sget_simple_extent_dims(space, dims, NULL), where);
    n = (size_t)dims[0];
    rc = BTRM_CALLOC(out, n);
    if (rc)
        goto fail;
    htri_t variable = H5Tis_variable_str(type);
    BTRM_CHECK_H5(variable, where);
    if (variable) {
        rc = BTRM_CALLOC(vlen, n);
        if (rc)
            goto fail;
        BTRM_CHECK_H5(mtype = vlen_string_type(H5Tget_cset(type)), where);
        if (n > 0)
            BTRM_CHECK_H5(H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, vlen), where);
        vlen_read = 1;
    } else {
        width = H5Tget_size(type);
        rc = BTRM_MALLOC(fixed, n * width + 1);
        if (rc)
            goto fail;
        /* The file type as memory type: strings need no conversion. */
        if (n > 0)
            BTRM_CHECK_H5(H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, fixed), where);
    }
    for (size_t i = 0; i < n; i++) {
        const char *src = variable ? (vlen[i] ? vlen[i] : "") : fixed + i * width;
        size_t len = variable ? strlen(src) : strnlen(src, width);
        rc = BTRM_MALLOC(out[i], len + 1);
        if (rc)
            goto fail;
        memcpy(out[i], src, len);
        out[i][len] = '\0';
    }
    *strings = out;
    *n_out = n;
    out = NULL;
fail:
    if (vlen_read)
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, vlen);
    btrm_h5_free_strings(out, n);
    free(vlen);
    free(fixed);
    BTRM_H5_CLOSE(mtype, space, type);
    return rc;
}

void btrm_h5_type_name(hid_t type, char *out, size_t size)
{
    size_t bits = 8 * H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        snprintf(out, size, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT: snprintf(out, size, "float%zu", bits); break;
    case H5T_STRING: snprintf(out, size, "string"); break;
    case H5T_COMPOUND: snprintf(out, size, "compound"); break;
    case H5T_ENUM: snprintf(out, size, "enum"); break;
    case H5T_ARRAY: snprintf(out, size, "array"); break;
    case H5T_VLEN: snprintf(out, size, "vlen"); break;
    case H5T_OPAQUE: snprintf(out, size, "opaque"); break;
    case H5T_BITFIELD: snprintf(out, size, "bitfield"); break;
    case H5T_REFERENCE: snprintf(out, size, "reference"); break;
    default: snprintf(out, size, "unknown type"); break;
    }
}

/* ------------------------------------------------------------------------ */
/* Atomic files */

int btrm_h5_create_atomic(btrm_h5_atomic *a, const char *path)
{
    int rc = 0;
    hid_t fcpl = -1, fapl = -1;
    memset(a, 0, sizeof *a);
    a->file = -1;
    if (strlen(path) >= sizeof a->path)
        return btrm_error_set(BTRM_EIO, "file name too long: %s", path);
    memcpy(a->path, path, strlen(path) + 1);
    btrm_tmp_path(path, a->tmp, sizeof a->tmp);
    btrm_h5_quiet();
    BTRM_CHECK_H5(fcpl = btrm_h5_fcpl(), path);
    BTRM_CHECK_H5(fapl = btrm_h5_fapl(), path);
    a->file = H5Fcreate(a->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (a->file < 0) {
        rc = btrm_h5_error(path, "H5Fcreate", __FILE__, __LINE__);
        rc = btrm_error_wrap(rc, "cannot create %s (temporary file for %s)", a->tmp, path);
        unlink(a->tmp);
        a->tmp[0] = '\0';
    }
fail:
    if (fapl >= 0)
        H5Pclose(fapl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    return rc;
}

int btrm_h5_commit_atomic(btrm_h5_atomic *a)
{
    int rc = 0;
    if (a->file < 0 || !a->tmp[0])
        return btrm_error_set(BTRM_EIO, "%s: commit of a file that is not open", a->path);
    herr_t closed = H5Fclose(a->file);
    a->file = -1;
    if (closed < 0) {
        rc = btrm_h5_error(a->path, "H5Fclose", __FILE__, __LINE__);
        unlink(a->tmp);
    } else {
        rc = btrm_file_commit(a->tmp, a->path);
    }
    a->tmp[0] = '\0';
    return rc;
}

uint64_t btrm_h5_reserve_bytes(uint64_t data_bytes, uint64_t n_objects)
{
    /* superblock, root group, heaps: well under 64 KiB; an object header with
     * its attributes is a few hundred bytes; 1/64 for what the estimate missed */
    return data_bytes + data_bytes / 64 + 1024 * n_objects + (64u << 10);
}

int btrm_h5_reserve_atomic(btrm_h5_atomic *a, uint64_t bytes)
{
    int rc = btrm_file_reserve(a->tmp, bytes);
    if (rc) {
        rc = btrm_error_wrap(rc, "cannot write %s", a->path);
        btrm_h5_abort_atomic(a);
    }
    return rc;
}

void btrm_h5_abort_atomic(btrm_h5_atomic *a)
{
    if (!a)
        return;
    if (a->file >= 0)
        H5Fclose(a->file);
    a->file = -1;
    if (a->tmp[0])
        unlink(a->tmp);
    a->tmp[0] = '\0';
}

int btrm_h5_write_dataset(hid_t loc, const char *path, const char *name, hid_t file_type,
                          hid_t mem_type, int rank, const hsize_t *dims, const void *data)
{
    int rc = 0;
    hid_t space = -1, dcpl = -1, dset = -1;
    hsize_t n = rank == 2 ? dims[0] * dims[1] : dims[0];
    BTRM_CHECK_H5(space = H5Screate_simple(rank, dims, NULL), path);
    BTRM_CHECK_H5(dcpl = btrm_h5_dcpl(), path);
    BTRM_CHECK_H5(dset = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, dcpl,
                                    H5P_DEFAULT), path);
    if (n > 0)
        BTRM_CHECK_H5(H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path);
fail:
    BTRM_H5_CLOSE(dset, dcpl, space);
    return rc;
}

/* base reshaped into a 16-bit float: fields, then size (H5Tset_size refuses a
 * size that cuts the current fields), then the bias */
static hid_t float16_type(hid_t base, size_t epos, size_t esize, size_t msize, size_t ebias)
{
    hid_t t = H5Tcopy(base);
    if (t < 0)
        return -1;
    if (H5Tset_fields(t, 15, epos, esize, 0, msize) < 0 || H5Tset_size(t, 2) < 0 ||
        H5Tset_ebias(t, ebias) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

hid_t btrm_h5_half_type(hid_t base) { return float16_type(base, 10, 5, 10, 15); }

hid_t btrm_h5_bf16_type(hid_t base) { return float16_type(base, 7, 8, 7, 127); }

hid_t btrm_h5_float_type(int dtype, hid_t base)
{
    switch (dtype) {
    case BTRM_DTYPE_F16: return btrm_h5_half_type(base);
    case BTRM_DTYPE_BF16: return btrm_h5_bf16_type(base);
    default: return H5Tcopy(base);
    }
}

int btrm_h5_float_dtype(hid_t type, int *swap)
{
    size_t spos, epos, esize, mpos, msize;
    *swap = 0;
    if (H5Tget_class(type) != H5T_FLOAT ||
        H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0)
        return -1;
    size_t size = H5Tget_size(type), ebias = H5Tget_ebias(type);
    int dtype = -1;
    if (size == 4 && spos == 31 && epos == 23 && esize == 8 && mpos == 0 && msize == 23 &&
        ebias == 127)
        dtype = BTRM_DTYPE_F32;
    else if (size == 2 && spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
             ebias == 15)
        dtype = BTRM_DTYPE_F16;
    else if (size == 2 && spos == 15 && epos == 7 && esize == 8 && mpos == 0 && msize == 7 &&
             ebias == 127)
        dtype = BTRM_DTYPE_BF16;
    if (dtype >= 0)
        *swap = H5Tget_order(type) != H5Tget_order(H5T_NATIVE_FLOAT);
    return dtype;
}
