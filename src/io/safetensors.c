/* safetensors.c: the safetensors writer (safetensors.h). */
#include "safetensors.h"

#include "error.h"
#include "fileutil.h"
#include "types.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t btrm_st_dtype_size(const char *dtype)
{
    if (!strcmp(dtype, "F32"))
        return 4;
    if (!strcmp(dtype, "F16") || !strcmp(dtype, "BF16"))
        return 2;
    return 0;
}

static uint64_t tensor_bytes(const btrm_st_tensor *t)
{
    uint64_t n = btrm_st_dtype_size(t->dtype);
    for (int d = 0; d < t->n_dims; d++)
        n *= t->shape[d];
    return n;
}

/* The header: JSON padded with spaces to a multiple of 8 bytes. */
static char *header(const btrm_st_tensor *t, int n, const json_t *metadata, size_t *len)
{
    json_t *doc = json_object();
    if (metadata)
        json_object_set(doc, "__metadata__", (json_t *)metadata);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < t[i].n_dims; d++)
            json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d]));
        uint64_t bytes = tensor_bytes(&t[i]);
        json_object_set_new(doc, t[i].name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", t[i].dtype, "shape", shape,
                                      "data_offsets", (json_int_t)at,
                                      (json_int_t)(at + bytes)));
        at += bytes;
    }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!text)
        return NULL;
    size_t raw = strlen(text), padded = (raw + 7) / 8 * 8;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        return NULL;
    }
    memset(out + raw, ' ', padded - raw);
    out[padded] = '\0';
    *len = padded;
    return out;
}

static int check(const btrm_st_tensor *t, int n, const json_t *metadata, const char *path)
{
    for (int i = 0; i < n; i++) {
        if (!t[i].name[0] || !strcmp(t[i].name, "__metadata__") || !t[i].data ||
            !btrm_st_dtype_size(t[i].dtype) || t[i].n_dims < 1 ||
            t[i].n_dims > BTRM_ST_MAX_DIMS)
            return btrm_error_set(BTRM_EUSAGE, "%s: tensor %d ('%s', %s, %d dims) cannot be "
                                  "written", path, i, t[i].name, t[i].dtype, t[i].n_dims);
        for (uint64_t r = 0; t[i].row_perm && r < t[i].shape[0]; r++)
            if (t[i].row_perm[r] < 0 || (uint64_t)t[i].row_perm[r] >= t[i].shape[0])
                return btrm_error_set(BTRM_EUSAGE, "%s: tensor %s: row order out of range",
                                      path, t[i].name);
        for (int j = 0; j < i; j++)
            if (!strcmp(t[i].name, t[j].name))
                return btrm_error_set(BTRM_EUSAGE, "%s: tensor name %s given twice", path,
                                      t[i].name);
    }
    if (!metadata)
        return 0;
    if (!json_is_object(metadata))
        return btrm_error_set(BTRM_EUSAGE, "%s: __metadata__ must be an object", path);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)metadata, key, value) {
        if (!json_is_string(value))
            return btrm_error_set(BTRM_EUSAGE, "%s: __metadata__ value of '%s' is not a "
                                  "string (safetensors allows only strings)", path, key);
    }
    return 0;
}

static int write_all(FILE *f, const void *bytes, uint64_t size)
{
    return size == 0 || fwrite(bytes, 1, size, f) == size ? 0 : -1;
}

int btrm_safetensors_write(const char *path, const btrm_st_tensor *tensors, int n,
                           const json_t *metadata)
{
    int rc = check(tensors, n, metadata, path);
    if (rc)
        return rc;
    size_t hlen = 0;
    char *head = header(tensors, n, metadata, &hlen);
    if (!head)
        return btrm_error_set(BTRM_ENOMEM, "%s: out of memory writing the header", path);
    char tmp[BTRM_PATH_MAX + 64];
    btrm_tmp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(head);
        return btrm_error_set(BTRM_EIO, "cannot create %s: %s", tmp, strerror(errno));
    }
    unsigned char len8[8];
    for (int b = 0; b < 8; b++)
        len8[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
    int bad = write_all(f, len8, 8) || write_all(f, head, hlen);
    for (int i = 0; i < n && !bad; i++) {
        const btrm_st_tensor *t = &tensors[i];
        uint64_t bytes = tensor_bytes(t);
        if (!t->row_perm) {
            bad = write_all(f, t->data, bytes);
            continue;
        }
        uint64_t row = t->shape[0] ? bytes / t->shape[0] : 0;
        for (uint64_t r = 0; r < t->shape[0] && !bad; r++)
            bad = write_all(f, (const char *)t->data + (uint64_t)t->row_perm[r] * row, row);
    }
    free(head);
    int e = errno;
    if (bad || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        e = errno;
        bad = 1;
    }
    if (fclose(f) != 0 && !bad) {
        e = errno;
        bad = 1;
    }
    if (!bad && rename(tmp, path) != 0) {
        e = errno;
        bad = 1;
    }
    if (bad) {
        unlink(tmp);
        return btrm_error_set(BTRM_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}
