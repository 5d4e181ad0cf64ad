/* tokcache.c: the token-id cache, format "tokens-v1" (see tokcache.h). */
#include "tokcache.h"

#include "error.h"
#include "fileutil.h"
#include "format.h"
#include "h5util.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>

void btrm_token_ids_free(btrm_token_ids *t)
{
    if (!t)
        return;
    free(t->offsets);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

void btrm_tokcache_key(btrm_tokcache_info *info)
{
    char text[160];
    int n = snprintf(text, sizeof text, "tokens-v1 tokenizer %s texts %s bos %d max_tokens %d",
                     info->tokenizer_hash, info->texts_hash, info->bos, info->max_tokens);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(text, (size_t)n));
    for (int i = 0; i < 16; i++)
        snprintf(info->key + 2 * i, 3, "%02x", c.digest[i]);
}

int btrm_tokcache_path(const char *store, const char *key, char *out, size_t size)
{
    size_t len = strlen(store);
    if (len > 3 && !strcmp(store + len - 3, ".h5"))
        len -= 3;
    int n = snprintf(out, size, "%.*s.tokens-%.16s.h5", (int)len, store, key);
    if (n < 0 || (size_t)n >= size)
        return btrm_error_set(BTRM_EUSAGE, "%s: the token cache's name is too long", store);
    return 0;
}

/* crc32 of the offsets, then the ids, as little-endian bytes (x86's). */
static uint32_t ids_crc(const btrm_token_ids *t)
{
    uint32_t crc = btrm_crc32_update((uint32_t)crc32(0L, Z_NULL, 0), t->offsets,
                                     (size_t)(t->n_rows + 1) * sizeof *t->offsets);
    return btrm_crc32_update(crc, t->ids, (size_t)t->offsets[t->n_rows] * sizeof *t->ids);
}

int btrm_tokcache_write(const char *path, const char *store, const btrm_tokcache_info *info,
                        const btrm_token_ids *t)
{
    btrm_h5_atomic a = { .file = -1 };
    int rc = btrm_h5_create_atomic(&a, path);
    if (rc)
        return rc;
    hsize_t n_off = (hsize_t)t->n_rows + 1, n_ids = (hsize_t)t->offsets[t->n_rows];
    rc = btrm_h5_write_format(a.file, &btrm_format_tokens);
    if (!rc)
        rc = btrm_h5_write_attr_string(a.file, "key", info->key);
    if (!rc)
        rc = btrm_h5_write_attr_string(a.file, "tokenizer_hash", info->tokenizer_hash);
    if (!rc)
        rc = btrm_h5_write_attr_string(a.file, "texts_hash", info->texts_hash);
    if (!rc)
        rc = btrm_h5_write_attr_int(a.file, "bos", info->bos);
    if (!rc)
        rc = btrm_h5_write_attr_int(a.file, "max_tokens", info->max_tokens);
    if (!rc)
        rc = btrm_h5_write_attr_string(a.file, "store", store);
    if (!rc)
        rc = btrm_h5_write_attr_u32(a.file, "crc32", ids_crc(t));
    if (!rc)
        rc = btrm_h5_write_dataset(a.file, path, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, 1,
                                   &n_off, t->offsets);
    if (!rc)
        rc = btrm_h5_write_dataset(a.file, path, "ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 1,
                                   &n_ids, n_ids ? (const void *)t->ids : (const void *)"");
    if (rc) {
        btrm_h5_abort_atomic(&a);
        return rc;
    }
    return btrm_h5_commit_atomic(&a);
}

/* dset's length (a 1-D dataset), or -1 */
static hssize_t length_of(hid_t dset)
{
    hid_t space = H5Dget_space(dset);
    if (space < 0)
        return -1;
    hssize_t n = H5Sget_simple_extent_ndims(space) == 1 ? H5Sget_simple_extent_npoints(space)
                                                        : -1;
    H5Sclose(space);
    return n;
}

static int read_ints(hid_t file, const char *path, const char *name, hid_t mem_type,
                     hssize_t want, void *buf)
{
    int rc = 0;
    hid_t dset = -1;
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return btrm_error_set(BTRM_EDATA, "%s: no dataset /%s", path, name);
    BTRM_CHECK_H5(dset = H5Dopen2(file, name, H5P_DEFAULT), path);
    if (length_of(dset) != want) {
        rc = btrm_error_set(BTRM_EDATA, "%s: /%s has %lld values, expected %lld", path, name,
                            (long long)length_of(dset), (long long)want);
        goto fail;
    }
    if (want > 0)
        BTRM_CHECK_H5(H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), path);
fail:
    if (dset >= 0)
        H5Dclose(dset);
    return rc;
}

int btrm_tokcache_read(const char *path, const btrm_tokcache_info *info, int64_t n_rows,
                       btrm_token_ids *t)
{
    memset(t, 0, sizeof *t);
    btrm_h5_quiet();
    htri_t is_h5 = H5Fis_hdf5(path);
    if (is_h5 <= 0)
        return btrm_error_set(BTRM_EDATA, "%s: %s", path, is_h5 < 0 ? "no such file"
                                                                    : "not an HDF5 file");
    hid_t file = btrm_h5_open_read(path);
    if (file < 0)
        return btrm_h5_open_error(path, "cannot open");
    int version = 0, rc = btrm_h5_check_format(file, path, &btrm_format_tokens, &version);
    char key[64] = "";
    uint32_t crc = 0;
    if (!rc)
        rc = btrm_h5_read_attr_string(file, "key", key, sizeof key);
    if (!rc && strcmp(key, info->key))
        rc = btrm_error_set(BTRM_EDATA, "%s: key %s, expected %s", path, key, info->key);
    if (!rc)
        rc = btrm_h5_read_attr_u32(file, "crc32", &crc);
    if (!rc)
        rc = BTRM_MALLOC(t->offsets, (size_t)n_rows + 1);
    if (!rc)
        rc = read_ints(file, path, "offsets", H5T_NATIVE_INT64, (hssize_t)n_rows + 1, t->offsets);
    if (!rc) {
        t->n_rows = n_rows;
        int ok = t->offsets[0] == 0;
        for (int64_t i = 0; ok && i < n_rows; i++)
            ok = t->offsets[i + 1] >= t->offsets[i];
        if (!ok)
            rc = btrm_error_set(BTRM_EDATA, "%s: /offsets is not non-decreasing from 0", path);
    }
    if (!rc)
        rc = BTRM_MALLOC(t->ids, t->offsets[n_rows] > 0 ? (size_t)t->offsets[n_rows] : 1);
    if (!rc)
        rc = read_ints(file, path, "ids", H5T_NATIVE_INT32, (hssize_t)t->offsets[n_rows], t->ids);
    if (!rc && ids_crc(t) != crc)
        rc = btrm_error_set(BTRM_EDATA, "%s: corrupt (crc32 %08x, stored %08x)", path,
                            (unsigned)ids_crc(t), (unsigned)crc);
    H5Fclose(file);
    if (rc) {
        btrm_token_ids_free(t);
        return rc < 0 && rc != BTRM_ENOMEM ? btrm_error_wrap(BTRM_EDATA, "token cache") : rc;
    }
    return 0;
}
