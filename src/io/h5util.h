/* h5util.h: small HDF5 helpers shared by the io modules (pairs, modelfile,
 * checkpoints): error reporting, timestamp-free property lists (identical
 * content gives identical bytes), string and numeric attributes, string
 * datasets, and atomic file creation (a temporary name in the same directory,
 * renamed into place on success). io layer.
 *
 * Messages name the file and the object; HDF5's own error stack printing is
 * turned off (btrm_h5_quiet) and its innermost message is appended to ours. */
#ifndef BTRM_H5UTIL_H
#define BTRM_H5UTIL_H

#include "config.h"
#include "dtype.h"
#include "format.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Checks an HDF5 return value (negative = failure): records BTRM_EIO naming
 * the file, the call and its location plus HDF5's message, then jumps to the
 * caller's `fail:` label with the code in the caller's `int rc`. */
#define BTRM_CHECK_H5(call, path)                                                \
    do {                                                                         \
        if ((call) < 0) {                                                        \
            rc = btrm_h5_error((path), #call, __FILE__, __LINE__);               \
            goto fail;                                                           \
        }                                                                        \
    } while (0)
int btrm_h5_error(const char *path, const char *call, const char *src, int line);

/* Silences HDF5's automatic error stack printing (we report our own). */
void btrm_h5_quiet(void);

/* Property lists with object time tracking off, so that identical content
 * gives identical bytes. Caller closes them with H5Pclose. */
hid_t btrm_h5_fcpl(void);
hid_t btrm_h5_gcpl(void);
hid_t btrm_h5_dcpl(void);
/* Serial file access (sec2). File locking stays on but is skipped on file
 * systems without flock (some Lustre/NFS mounts) where HDF5 allows it. */
hid_t btrm_h5_fapl(void);

/* Opens path read-only, serially (btrm_h5_fapl), with HDF5's error printing
 * off, after btrm_h5raw_check_file; negative when it cannot or the check
 * refused the file (then btrm_error_msg says why). */
hid_t btrm_h5_open_read(const char *path);

/* The error to return when btrm_h5_open_read failed: the check's, when it
 * refused the file, else BTRM_EDATA "PATH: what". */
int btrm_h5_open_error(const char *path, const char *what);

/* Closes any HDF5 identifier (file, group, dataset, dataspace, datatype,
 * attribute, property list); a negative one is ignored. For cleanup paths
 * where a close's failure changes nothing. */
void btrm_h5_close(hid_t id);
/* btrm_h5_close of each identifier given, in order: BTRM_H5_CLOSE(dset, space). */
#define BTRM_H5_CLOSE(...)                                                       \
    btrm_h5_close_each((const hid_t[]){ __VA_ARGS__ },                           \
                       sizeof((const hid_t[]){ __VA_ARGS__ }) / sizeof(hid_t))
void btrm_h5_close_each(const hid_t *ids, size_t n);

/* 1 when every component of an absolute path ("/pairs/chosen") exists, 0 when
 * one is missing, negative (BTRM_EIO recorded) on error. */
int btrm_h5_exists(hid_t file, const char *path);

/* Attributes on obj (a file, group or dataset). Strings are scalar,
 * variable-length UTF-8 (what h5py reads as str); reading also accepts
 * fixed-length strings. Errors (BTRM_EDATA) name the file and object. */
int btrm_h5_write_attr_string(hid_t obj, const char *name, const char *value);
int btrm_h5_read_attr_string(hid_t obj, const char *name, char *value, size_t size);
int btrm_h5_write_attr_double(hid_t obj, const char *name, double value);
int btrm_h5_read_attr_double(hid_t obj, const char *name, double *value);
int btrm_h5_write_attr_int(hid_t obj, const char *name, int value);
int btrm_h5_read_attr_int(hid_t obj, const char *name, int *value);
int btrm_h5_write_attr_i64(hid_t obj, const char *name, int64_t value);
int btrm_h5_read_attr_i64(hid_t obj, const char *name, int64_t *value);
int btrm_h5_write_attr_u32(hid_t obj, const char *name, uint32_t value);
int btrm_h5_read_attr_u32(hid_t obj, const char *name, uint32_t *value);
/* A 1-D attribute of n doubles; reading accepts at most max values and sets
 * *n to the number read. */
int btrm_h5_write_attr_doubles(hid_t obj, const char *name, const double *values, size_t n);
int btrm_h5_read_attr_doubles(hid_t obj, const char *name, double *values, size_t max,
                              size_t *n);
/* 1 when obj has the attribute, 0 when not, negative on error. */
int btrm_h5_has_attr(hid_t obj, const char *name);

/* The format tag (format.h): writes the root attributes btrm_format
 * ("<name>-v<version>") and btrm_version (this btrm) on file. */
int btrm_h5_write_format(hid_t file, const btrm_format *f);
/* Reads them (writer "" when btrm_version is absent); BTRM_EDATA when
 * btrm_format is missing. */
int btrm_h5_read_format(hid_t file, const char *path, char *tag, size_t tag_size,
                        char *writer, size_t writer_size);
/* Reads and checks them against f (btrm_format_check); *version is the
 * file's version. */
int btrm_h5_check_format(hid_t file, const char *path, const btrm_format *f, int *version);

/* A 1-D dataset of variable-length UTF-8 strings (NULL entries are written
 * as ""). */
int btrm_h5_write_strings(hid_t loc, const char *name, const char *const *strings,
                          size_t n);
/* Reads a 1-D string dataset (variable or fixed length) into *strings
 * (n malloc'ed strings in one malloc'ed array; free with btrm_h5_free_strings). */
int btrm_h5_read_strings(hid_t dset, char ***strings, size_t *n);
void btrm_h5_free_strings(char **strings, size_t n);

/* For a contiguous dataset (btrm's): n_values of value_bytes each must be
 * stored inside the file, so that a truncated copy or a crafted shape is
 * refused (BTRM_EDATA naming path, name, the bytes claimed and the file's
 * size) before anything that size is allocated. A compact dataset's storage
 * must hold them too (libhdf5 1.10 reads past a short one), and a type of 0
 * bytes is refused. Chunked layouts, whose stored bytes need not match the
 * shape (compression), pass. */
int btrm_h5_check_stored(hid_t dset, const char *path, const char *name, uint64_t n_values,
                         size_t value_bytes);

/* Creates dataset name [dims] (rank 1 or 2) under loc with file_type, writes
 * data (mem_type) serially, without timestamps. Errors name path. */
int btrm_h5_write_dataset(hid_t loc, const char *path, const char *name, hid_t file_type,
                          hid_t mem_type, int rank, const hsize_t *dims, const void *data);

/* An IEEE binary16 type in the byte order of base (H5T_IEEE_F32LE for files,
 * H5T_NATIVE_FLOAT for memory), as h5py builds float16; caller closes it. */
hid_t btrm_h5_half_type(hid_t base);
/* bfloat16: base (an IEEE binary32 type) cut to its upper 16 bits: sign at
 * bit 15, 8 exponent bits at bit 7, 7 mantissa bits at bit 0, bias 127.
 * h5py reads it as float32 values and h5dump prints numbers
 * (docs/format.md). Caller closes it. */
hid_t btrm_h5_bf16_type(hid_t base);
/* The HDF5 type of a dtype (dtype.h) in the byte order of base; caller
 * closes it. */
hid_t btrm_h5_float_type(int dtype, hid_t base);
/* The dtype of an HDF5 float type: BTRM_DTYPE_F32 (IEEE binary32),
 * BTRM_DTYPE_F16 (IEEE binary16), BTRM_DTYPE_BF16 (the type above), or -1
 * for any other; *swap is set when its byte order is not the machine's. */
int btrm_h5_float_dtype(hid_t type, int *swap);

/* "float32", "float16", "int64", "uint8", "string", "compound", ... */
void btrm_h5_type_name(hid_t type, char *out, size_t size);

/* Atomic creation: create makes "<dir>/.<base>.tmp.<pid>" with btrm_h5_fcpl;
 * commit closes it, fsyncs it and renames it onto path; abort closes and
 * removes the temporary file (a no-op after a commit or on a zeroed struct
 * whose file is -1). */
typedef struct btrm_h5_atomic {
    char path[BTRM_PATH_MAX];
    char tmp[BTRM_PATH_MAX + 64];
    hid_t file;
} btrm_h5_atomic;
int btrm_h5_create_atomic(btrm_h5_atomic *a, const char *path);
int btrm_h5_commit_atomic(btrm_h5_atomic *a);
/* Reserves bytes of disk space for the temporary file (btrm_file_reserve)
 * before its data are written; on failure aborts it (nothing is left) and
 * returns BTRM_EIO naming path. */
int btrm_h5_reserve_atomic(btrm_h5_atomic *a, uint64_t bytes);
/* The bytes to reserve for an HDF5 file holding data_bytes of datasets and
 * n_objects groups, datasets and attributes: the data plus headroom for
 * HDF5's metadata. */
uint64_t btrm_h5_reserve_bytes(uint64_t data_bytes, uint64_t n_objects);
void btrm_h5_abort_atomic(btrm_h5_atomic *a);

#endif
