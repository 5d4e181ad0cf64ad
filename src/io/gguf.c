/* gguf.c: the GGUF reader (see gguf.h for the layout). Parsing goes through
 * a cursor that checks every read against the end of the mapping; counts are
 * checked against the bytes left before anything is allocated for them, so a
 * corrupt header cannot make us allocate terabytes. */
#include "gguf.h"

#include "error.h"
#include "tokenizer.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"

typedef struct kv {
    char *key;
    int type;
    union {
        uint64_t u;   /* unsigned integers */
        int64_t i;    /* signed integers and bool */
        double f;     /* float32 / float64 */
        char *s;      /* string */
    } v;
    btrm_gguf_array arr; /* array: data owned (numbers malloc'ed; strings: */
    char *arena;         /* pointer array in arr.data, bytes in arena) */
} kv;

struct btrm_gguf {
    char *path;
    int fd;
    const uint8_t *map;
    size_t size;
    int version;
    uint32_t alignment;
    uint64_t data_offset;
    int n_kv;
    kv *kvs;
    int n_tensors;
    btrm_gguf_tensor *tensors;
    char *names; /* tensor names, NUL-terminated, back to back */
};

typedef struct cursor {
    const uint8_t *p, *end;
    const uint8_t *base;
    const char *path;
} cursor;

static size_t left(const cursor *c) { return (size_t)(c->end - c->p); }

static int truncated(const cursor *c, const char *what)
{
    return btrm_error_set(BTRM_EDATA, "%s: truncated or corrupt GGUF file: %s at byte %zu "
                          "runs past the end of the file (%zu bytes)", c->path, what,
                          (size_t)(c->p - c->base), (size_t)(c->end - c->base));
}

static int take(cursor *c, void *out, size_t n, const char *what)
{
    if (left(c) < n)
        return truncated(c, what);
    memcpy(out, c->p, n);
    c->p += n;
    return 0;
}

static int take_u32(cursor *c, uint32_t *v, const char *what) { return take(c, v, 4, what); }
static int take_u64(cursor *c, uint64_t *v, const char *what) { return take(c, v, 8, what); }

/* A string: u64 length + bytes; *s points into the mapping (not terminated). */
static int take_string(cursor *c, const char **s, uint64_t *len, const char *what)
{
    int rc = take_u64(c, len, what);
    if (rc)
        return rc;
    if (*len > left(c))
        return truncated(c, what);
    *s = (const char *)c->p;
    c->p += *len;
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Size in the file of one scalar of a fixed-size type; 0 for string/array. */
static size_t scalar_size(int type)
{
    switch (type) {
    case BTRM_GGUF_UINT8: case BTRM_GGUF_INT8: case BTRM_GGUF_BOOL: return 1;
    case BTRM_GGUF_UINT16: case BTRM_GGUF_INT16: return 2;
    case BTRM_GGUF_UINT32: case BTRM_GGUF_INT32: case BTRM_GGUF_FLOAT32: return 4;
    case BTRM_GGUF_UINT64: case BTRM_GGUF_INT64: case BTRM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *const gguf_type_names[] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

const char *btrm_gguf_type_name(int type)
{
    if (type >= 0 && type < (int)(sizeof gguf_type_names / sizeof gguf_type_names[0]))
        return gguf_type_names[type];
    return "unknown";
}

/* Reads count values of element type `type` into a new aligned buffer. */
static int take_array(cursor *c, kv *e, const char *key)
{
    uint32_t type = 0;
    uint64_t count = 0;
    int rc = take_u32(c, &type, key);
    if (!rc)
        rc = take_u64(c, &count, key);
    if (rc)
        return rc;
    e->arr.type = (int)type;
    e->arr.count = count;
    if (type == BTRM_GGUF_STRING) {
        /* each string takes at least its 8-byte length */
        if (count > left(c) / 8)
            return truncated(c, key);
        const uint8_t *start = c->p;
        size_t bytes = 0;
        for (uint64_t k = 0; k < count; k++) {
            const char *s;
            uint64_t len;
            if ((rc = take_string(c, &s, &len, key)))
                return rc;
            bytes += len + 1;
        }
        const char **ptrs = malloc((count ? count : 1) * sizeof *ptrs);
        e->arena = malloc(bytes ? bytes : 1);
        e->arr.data = ptrs;
        if (!ptrs || !e->arena)
            return btrm_error_set(BTRM_ENOMEM, "%s: out of memory reading %s (%llu strings)",
                                  c->path, key, (unsigned long long)count);
        cursor again = *c;
        again.p = start;
        size_t used = 0;
        for (uint64_t k = 0; k < count; k++) {
            const char *s;
            uint64_t len;
            take_string(&again, &s, &len, key); /* cannot fail: checked above */
            memcpy(e->arena + used, s, len);
            e->arena[used + len] = '\0';
            ptrs[k] = e->arena + used;
            used += len + 1;
        }
        return 0;
    }
    size_t elem = scalar_size((int)type);
    if (elem == 0)
        return btrm_error_set(BTRM_EDATA, "%s: metadata key %s: arrays of %s are not "
                              "supported", c->path, key, btrm_gguf_type_name((int)type));
    if (count > left(c) / elem)
        return truncated(c, key);
    void *data = malloc(count ? count * elem : 1);
    if (!data)
        return btrm_error_set(BTRM_ENOMEM, "%s: out of memory reading %s", c->path, key);
    memcpy(data, c->p, count * elem);
    c->p += count * elem;
    e->arr.data = data;
    return 0;
}

static int take_value(cursor *c, kv *e)
{
    uint32_t type = 0;
    int rc = take_u32(c, &type, e->key);
    if (rc)
        return rc;
    e->type = (int)type;
    uint8_t b[8];
    switch (type) {
    case BTRM_GGUF_UINT8: rc = take(c, b, 1, e->key); e->v.u = b[0]; break;
    case BTRM_GGUF_BOOL: rc = take(c, b, 1, e->key); e->v.i = b[0] != 0; break;
    case BTRM_GGUF_INT8: { int8_t x; rc = take(c, &x, 1, e->key); e->v.i = x; break; }
    case BTRM_GGUF_UINT16: { uint16_t x; rc = take(c, &x, 2, e->key); e->v.u = x; break; }
    case BTRM_GGUF_INT16: { int16_t x; rc = take(c, &x, 2, e->key); e->v.i = x; break; }
    case BTRM_GGUF_UINT32: { uint32_t x; rc = take(c, &x, 4, e->key); e->v.u = x; break; }
    case BTRM_GGUF_INT32: { int32_t x; rc = take(c, &x, 4, e->key); e->v.i = x; break; }
    case BTRM_GGUF_UINT64: { uint64_t x; rc = take(c, &x, 8, e->key); e->v.u = x; break; }
    case BTRM_GGUF_INT64: { int64_t x; rc = take(c, &x, 8, e->key); e->v.i = x; break; }
    case BTRM_GGUF_FLOAT32: { float x; rc = take(c, &x, 4, e->key); e->v.f = x; break; }
    case BTRM_GGUF_FLOAT64: { double x; rc = take(c, &x, 8, e->key); e->v.f = x; break; }
    case BTRM_GGUF_STRING: {
        const char *s;
        uint64_t len;
        rc = take_string(c, &s, &len, e->key);
        if (!rc && !(e->v.s = dup_n(s, (size_t)len)))
            rc = btrm_error_set(BTRM_ENOMEM, "%s: out of memory", c->path);
        break;
    }
    case BTRM_GGUF_ARRAY: rc = take_array(c, e, e->key); break;
    default:
        rc = btrm_error_set(BTRM_EDATA, "%s: metadata key %s has unknown value type %u "
                            "(corrupt file?)", c->path, e->key, type);
    }
    return rc;
}

static void free_kv(kv *e)
{
    free(e->key);
    if (e->type == BTRM_GGUF_STRING)
        free(e->v.s);
    if (e->type == BTRM_GGUF_ARRAY)
        free((void *)e->arr.data);
    free(e->arena);
}

void btrm_gguf_close(btrm_gguf *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_kv; i++)
        free_kv(&g->kvs[i]);
    free(g->kvs);
    free(g->tensors);
    free(g->names);
    if (g->map && g->map != MAP_FAILED)
        munmap((void *)g->map, g->size);
    if (g->fd >= 0)
        close(g->fd);
    free(g->path);
    free(g);
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Parses the tensor infos at c; names are copied into g->names. */
static int parse_tensors(btrm_gguf *g, cursor *c, uint64_t n_tensors)
{
    /* name length (8) + n_dims (4) + type (4) + offset (8) at least */
    if (n_tensors > left(c) / 24)
        return truncated(c, "tensor count");
    int rc = BTRM_CALLOC(g->tensors, n_tensors ? n_tensors : 1);
    if (rc)
        return rc;
    /* First pass for the names' total size, second to fill. */
    const uint8_t *start = c->p;
    size_t name_bytes = 0;
    for (uint64_t t = 0; t < n_tensors; t++) {
        const char *s;
        uint64_t len, ne;
        uint32_t n_dims, type;
        if ((rc = take_string(c, &s, &len, "tensor name")))
            return rc;
        name_bytes += len + 1;
        if ((rc = take_u32(c, &n_dims, "tensor dimension count")))
            return rc;
        if (n_dims < 1 || n_dims > BTRM_GGUF_MAX_DIMS)
            return btrm_error_set(BTRM_EDATA, "%s: tensor %.*s has %u dimensions (1 to %d "
                                  "allowed)", g->path, (int)(len < 200 ? len : 200), s, n_dims,
                                  BTRM_GGUF_MAX_DIMS);
        for (uint32_t d = 0; d < n_dims; d++)
            if ((rc = take_u64(c, &ne, "tensor dimensions")))
                return rc;
        if ((rc = take_u32(c, &type, "tensor type")) || (rc = take_u64(c, &ne, "tensor offset")))
            return rc;
    }
    g->names = malloc(name_bytes ? name_bytes : 1);
    if (!g->names)
        return btrm_error_set(BTRM_ENOMEM, "%s: out of memory", g->path);
    c->p = start;
    size_t used = 0;
    for (uint64_t t = 0; t < n_tensors; t++) {
        btrm_gguf_tensor *ti = &g->tensors[t];
        const char *s;
        uint64_t len;
        uint32_t n_dims, type;
        take_string(c, &s, &len, "tensor name");
        memcpy(g->names + used, s, len);
        g->names[used + len] = '\0';
        ti->name = g->names + used;
        used += len + 1;
        take_u32(c, &n_dims, "tensor dimension count");
        ti->n_dims = (int)n_dims;
        ti->n_elements = 1;
        for (int d = 0; d < BTRM_GGUF_MAX_DIMS; d++)
            ti->ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            take_u64(c, &ti->ne[d], "tensor dimensions");
            if (ti->ne[d] == 0 || ti->ne[d] > (UINT64_C(1) << 40) ||
                ti->n_elements > (UINT64_C(1) << 50) / ti->ne[d])
                return btrm_error_set(BTRM_EDATA, "%s: tensor %s: dimension %u is %llu "
                                      "(corrupt file?)", g->path, ti->name, d,
                                      (unsigned long long)ti->ne[d]);
            ti->n_elements *= ti->ne[d];
        }
        take_u32(c, &type, "tensor type");
        ti->type = (int)type;
        take_u64(c, &ti->offset, "tensor offset");
        if (btrm_quant_supported(ti->type) && ti->ne[0] % (uint64_t)btrm_quant_block(ti->type)) {
            char tn[32];
            return btrm_error_set(BTRM_EDATA, "%s: tensor %s is %s with rows of %llu values, "
                                  "not a multiple of its block of %d", g->path, ti->name,
                                  btrm_quant_name(ti->type, tn, sizeof tn),
                                  (unsigned long long)ti->ne[0], btrm_quant_block(ti->type));
        }
        ti->bytes = btrm_quant_row_bytes(ti->type, (int64_t)ti->ne[0]) *
                    (ti->n_elements / ti->ne[0]);
    }
    for (uint64_t t = 0; t < n_tensors; t++)
        for (uint64_t u = 0; u < t; u++)
            if (!strcmp(g->tensors[t].name, g->tensors[u].name))
                return btrm_error_set(BTRM_EDATA, "%s: tensor %s appears twice", g->path,
                                      g->tensors[t].name);
    g->n_tensors = (int)n_tensors;
    return 0;
}

int btrm_gguf_open(btrm_gguf **out, const char *path)
{
    *out = NULL;
    if (!host_is_little_endian())
        return btrm_error_set(BTRM_EDATA, "%s: GGUF files are little-endian; this host is "
                              "not", path);
    btrm_gguf *g = NULL;
    int rc = BTRM_CALLOC(g, 1);
    if (rc)
        return rc;
    g->fd = -1;
    g->alignment = BTRM_GGUF_DEFAULT_ALIGNMENT;
    if (!(g->path = dup_n(path, strlen(path)))) {
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory");
        goto fail;
    }
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (g->fd < 0 || fstat(g->fd, &st) != 0) {
        rc = btrm_error_set(BTRM_EIO, "cannot open model file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 24) {
        rc = btrm_error_set(BTRM_EDATA, "%s: not a GGUF file (%s)", path,
                            S_ISREG(st.st_mode) ? "shorter than a GGUF header" :
                            "not a regular file");
        goto fail;
    }
    g->size = (size_t)st.st_size;
    g->map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, g->fd, 0);
    if (g->map == MAP_FAILED) {
        g->map = NULL;
        rc = btrm_error_set(BTRM_EIO, "cannot map %s (%zu bytes): %s", path, g->size,
                            strerror(errno));
        goto fail;
    }
    cursor c = { .p = g->map, .end = g->map + g->size, .base = g->map, .path = path };
    if (memcmp(c.p, GGUF_MAGIC, 4)) {
        rc = btrm_error_set(BTRM_EDATA, "%s: not a GGUF file (magic %02x %02x %02x %02x, want "
                            "\"GGUF\")", path, c.p[0], c.p[1], c.p[2], c.p[3]);
        goto fail;
    }
    c.p += 4;
    uint32_t version = 0;
    uint64_t n_tensors = 0, n_kv = 0;
    take_u32(&c, &version, "version");
    if (version != 2 && version != 3) {
        rc = btrm_error_set(BTRM_EDATA, "%s: GGUF version %u is not supported (2 and 3 are)",
                            path, version);
        goto fail;
    }
    g->version = (int)version;
    take_u64(&c, &n_tensors, "tensor count");
    if ((rc = take_u64(&c, &n_kv, "metadata count")))
        goto fail;
    /* key length (8) + type (4) + the smallest value (1) at least */
    if (n_kv > left(&c) / 13 || n_tensors > INT32_MAX) {
        rc = truncated(&c, "metadata count");
        goto fail;
    }
    if ((rc = BTRM_CALLOC(g->kvs, n_kv ? n_kv : 1)))
        goto fail;
    for (uint64_t i = 0; i < n_kv; i++) {
        kv *e = &g->kvs[i];
        const char *s;
        uint64_t len;
        if ((rc = take_string(&c, &s, &len, "metadata key")))
            goto fail;
        g->n_kv = (int)i + 1; /* so that close frees what this one holds */
        if (!(e->key = dup_n(s, (size_t)len))) {
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory");
            goto fail;
        }
        if ((rc = take_value(&c, e)))
            goto fail;
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->kvs[j].key, e->key)) {
                rc = btrm_error_set(BTRM_EDATA, "%s: metadata key %s appears twice", path,
                                    e->key);
                goto fail;
            }
    }
    int ia = btrm_gguf_find_key(g, "general.alignment");
    if (ia >= 0) {
        const kv *e = &g->kvs[ia];
        if (e->type != BTRM_GGUF_UINT32 || e->v.u == 0 || (e->v.u & (e->v.u - 1))) {
            rc = btrm_error_set(BTRM_EDATA, "%s: general.alignment must be a uint32 power of "
                                "two (got type %s, value %llu)", path,
                                btrm_gguf_type_name(e->type), (unsigned long long)e->v.u);
            goto fail;
        }
        g->alignment = (uint32_t)e->v.u;
    }
    if ((rc = parse_tensors(g, &c, n_tensors)))
        goto fail;
    uint64_t pos = (uint64_t)(c.p - c.base);
    g->data_offset = (pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->data_offset > g->size && n_tensors > 0) {
        rc = btrm_error_set(BTRM_EDATA, "%s: truncated GGUF file: the tensor data would start "
                            "at byte %llu, the file has %zu bytes", path,
                            (unsigned long long)g->data_offset, g->size);
        goto fail;
    }
    uint64_t data_size = g->data_offset <= g->size ? g->size - g->data_offset : 0;
    for (int t = 0; t < g->n_tensors; t++) {
        btrm_gguf_tensor *ti = &g->tensors[t];
        if (ti->offset % g->alignment) {
            rc = btrm_error_set(BTRM_EDATA, "%s: tensor %s: offset %llu is not a multiple of "
                                "the alignment %u", path, ti->name,
                                (unsigned long long)ti->offset, g->alignment);
            goto fail;
        }
        if (ti->bytes == 0)
            continue; /* unsupported type: refused when someone asks for it */
        if (ti->offset > data_size || ti->bytes > data_size - ti->offset) {
            char tn[32];
            rc = btrm_error_set(BTRM_EDATA, "%s: tensor %s (%s, %llu bytes at data offset %llu) "
                                "lies beyond the end of the file (%llu bytes of tensor data): "
                                "truncated file?", path, ti->name,
                                btrm_quant_name(ti->type, tn, sizeof tn),
                                (unsigned long long)ti->bytes, (unsigned long long)ti->offset,
                                (unsigned long long)data_size);
            goto fail;
        }
        ti->data = g->map + g->data_offset + ti->offset;
    }
    *out = g;
    return 0;
fail:
    btrm_gguf_close(g);
    return rc;
}

const char *btrm_gguf_path(const btrm_gguf *g) { return g->path; }
int btrm_gguf_version(const btrm_gguf *g) { return g->version; }
uint32_t btrm_gguf_alignment(const btrm_gguf *g) { return g->alignment; }
uint64_t btrm_gguf_data_offset(const btrm_gguf *g) { return g->data_offset; }
const void *btrm_gguf_bytes(const btrm_gguf *g, size_t *size)
{
    *size = g->size;
    return g->map;
}
int btrm_gguf_n_kv(const btrm_gguf *g) { return g->n_kv; }
const char *btrm_gguf_key(const btrm_gguf *g, int i)
{
    return i >= 0 && i < g->n_kv ? g->kvs[i].key : NULL;
}

int btrm_gguf_find_key(const btrm_gguf *g, const char *key)
{
    for (int i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kvs[i].key, key))
            return i;
    return -1;
}

int btrm_gguf_key_type(const btrm_gguf *g, const char *key)
{
    int i = btrm_gguf_find_key(g, key);
    return i < 0 ? -1 : g->kvs[i].type;
}

static int lookup(const btrm_gguf *g, const char *key, const kv **e)
{
    int i = btrm_gguf_find_key(g, key);
    if (i < 0)
        return btrm_error_set(BTRM_EDATA, "%s: no metadata key %s", g->path, key);
    *e = &g->kvs[i];
    return 0;
}

static int wrong_type(const btrm_gguf *g, const kv *e, const char *want)
{
    return btrm_error_set(BTRM_EDATA, "%s: metadata key %s has type %s, want %s", g->path,
                          e->key, btrm_gguf_type_name(e->type), want);
}

static int is_unsigned(int t)
{
    return t == BTRM_GGUF_UINT8 || t == BTRM_GGUF_UINT16 || t == BTRM_GGUF_UINT32 ||
           t == BTRM_GGUF_UINT64;
}
static int is_signed(int t)
{
    return t == BTRM_GGUF_INT8 || t == BTRM_GGUF_INT16 || t == BTRM_GGUF_INT32 ||
           t == BTRM_GGUF_INT64;
}

int btrm_gguf_get_i64(const btrm_gguf *g, const char *key, int64_t *value)
{
    const kv *e = NULL;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (is_unsigned(e->type)) {
        if (e->v.u > (uint64_t)INT64_MAX)
            return btrm_error_set(BTRM_EDATA, "%s: metadata key %s = %llu is out of range",
                                  g->path, key, (unsigned long long)e->v.u);
        *value = (int64_t)e->v.u;
        return 0;
    }
    if (is_signed(e->type)) {
        *value = e->v.i;
        return 0;
    }
    return wrong_type(g, e, "an integer");
}

int btrm_gguf_get_u32(const btrm_gguf *g, const char *key, uint32_t *value)
{
    int64_t v = 0;
    int rc = btrm_gguf_get_i64(g, key, &v);
    if (rc)
        return rc;
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return btrm_error_set(BTRM_EDATA, "%s: metadata key %s = %lld is out of the uint32 "
                              "range", g->path, key, (long long)v);
    *value = (uint32_t)v;
    return 0;
}

int btrm_gguf_get_f32(const btrm_gguf *g, const char *key, float *value)
{
    const kv *e = NULL;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (e->type != BTRM_GGUF_FLOAT32 && e->type != BTRM_GGUF_FLOAT64)
        return wrong_type(g, e, "float32");
    *value = (float)e->v.f;
    return 0;
}

int btrm_gguf_get_bool(const btrm_gguf *g, const char *key, int *value)
{
    const kv *e = NULL;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (e->type != BTRM_GGUF_BOOL)
        return wrong_type(g, e, "bool");
    *value = (int)e->v.i;
    return 0;
}

int btrm_gguf_get_string(const btrm_gguf *g, const char *key, const char **value)
{
    const kv *e = NULL;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (e->type != BTRM_GGUF_STRING)
        return wrong_type(g, e, "string");
    *value = e->v.s;
    return 0;
}

int btrm_gguf_get_array(const btrm_gguf *g, const char *key, btrm_gguf_array *value)
{
    const kv *e = NULL;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (e->type != BTRM_GGUF_ARRAY)
        return wrong_type(g, e, "array");
    *value = e->arr;
    return 0;
}

int btrm_gguf_n_tensors(const btrm_gguf *g) { return g->n_tensors; }

const btrm_gguf_tensor *btrm_gguf_tensor_at(const btrm_gguf *g, int i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const btrm_gguf_tensor *btrm_gguf_find_tensor(const btrm_gguf *g, const char *name)
{
    for (int i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

static void shape_text(char *buf, size_t size, int n_dims, const uint64_t *ne)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int d = 0; d < n_dims && used < size; d++) {
        int n = snprintf(buf + used, size - used, "%s%llu", d ? ", " : "[",
                         (unsigned long long)ne[d]);
        if (n < 0)
            return;
        used += (size_t)n;
    }
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

const btrm_gguf_tensor *btrm_gguf_tensor_check(const btrm_gguf *g, const char *name,
                                               int n_dims, const uint64_t *want_ne)
{
    const btrm_gguf_tensor *t = btrm_gguf_find_tensor(g, name);
    char tn[32], got[96], want[96];
    if (!t) {
        btrm_error_set(BTRM_EDATA, "%s: missing tensor %s", g->path, name);
        return NULL;
    }
    if (!t->data) {
        btrm_error_set(BTRM_EDATA, "%s: tensor %s has type %s, which btrm does not support "
                       "(supported: %s)", g->path, name, btrm_quant_name(t->type, tn, sizeof tn),
                       btrm_quant_supported_names());
        return NULL;
    }
    int same = t->n_dims == n_dims;
    for (int d = 0; same && d < n_dims; d++)
        same = !want_ne[d] || want_ne[d] == t->ne[d];
    if (!same) {
        shape_text(got, sizeof got, t->n_dims, t->ne);
        shape_text(want, sizeof want, n_dims, want_ne);
        btrm_error_set(BTRM_EDATA, "%s: tensor %s (%s) has shape ne=%s, want ne=%s (0 = any)",
                       g->path, name, btrm_quant_name(t->type, tn, sizeof tn), got, want);
        return NULL;
    }
    return t;
}

/* ------------------------------------------------------------------------ */
/* The tokenizer glue */

/* An optional array key of the wanted element type and count; *data NULL
 * when absent. */
static int optional_array(const btrm_gguf *g, const char *key, int type, uint64_t count,
                          const void **data)
{
    *data = NULL;
    if (btrm_gguf_find_key(g, key) < 0)
        return 0;
    btrm_gguf_array a;
    int rc = btrm_gguf_get_array(g, key, &a);
    if (rc)
        return rc;
    if (a.type != type || a.count != count)
        return btrm_error_set(BTRM_EDATA, "%s: %s is an array of %llu %s, want %llu %s",
                              g->path, key, (unsigned long long)a.count,
                              btrm_gguf_type_name(a.type), (unsigned long long)count,
                              btrm_gguf_type_name(type));
    *data = a.data;
    return 0;
}

static int optional_id(const btrm_gguf *g, const char *key, int *id)
{
    *id = -1;
    if (btrm_gguf_find_key(g, key) < 0)
        return 0;
    uint32_t v = 0;
    int rc = btrm_gguf_get_u32(g, key, &v);
    if (!rc && v > INT32_MAX)
        rc = btrm_error_set(BTRM_EDATA, "%s: %s = %u is out of range", g->path, key, v);
    if (!rc)
        *id = (int)v;
    return rc;
}

/* llama.cpp's per-model token attributes (llama-vocab.cpp, load): a model
 * whose general.name contains "phi-3" or "phi3" strips the whitespace right
 * of its special tokens, except <unk>, <s> and <|endoftext|>. */
static int phi3_strip(const btrm_gguf *g, btrm_tokenizer *tok)
{
    const char *name = NULL;
    if (btrm_gguf_find_key(g, "general.name") < 0 ||
        btrm_gguf_get_string(g, "general.name", &name))
        return 0;
    char lower[256];
    size_t n = strlen(name) < sizeof lower - 1 ? strlen(name) : sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[n] = '\0';
    if (!strstr(lower, "phi-3") && !strstr(lower, "phi3"))
        return 0;
    for (int id = 0; id < btrm_tok_n_vocab(tok); id++) {
        int type = btrm_tok_type(tok, id);
        const char *piece = btrm_tok_piece(tok, id);
        if (type != BTRM_TOKEN_CONTROL && type != BTRM_TOKEN_USER_DEFINED &&
            type != BTRM_TOKEN_UNKNOWN)
            continue;
        int keep = !strcmp(piece, "<unk>") || !strcmp(piece, "<s>") ||
                   !strcmp(piece, "<|endoftext|>");
        int rc = btrm_tok_set_strip(tok, id, 0, !keep);
        if (rc)
            return rc;
    }
    return 0;
}

int btrm_gguf_tokenizer(const btrm_gguf *g, btrm_tokenizer **tok, int *add_bos)
{
    *tok = NULL;
    const char *model = NULL;
    btrm_gguf_array tokens;
    int rc = btrm_gguf_get_string(g, "tokenizer.ggml.model", &model);
    if (rc)
        return btrm_error_wrap(rc, "GGUF tokenizer");
    int is_spm = !strcmp(model, "llama"), is_bpe = !strcmp(model, "gpt2");
    if (!is_spm && !is_bpe)
        return btrm_error_set(BTRM_EDATA, "%s: tokenizer.ggml.model = '%s' is not supported "
                              "(btrm reads 'llama' SentencePiece BPE and 'gpt2' byte-level BPE)",
                              g->path, model);
    if ((rc = btrm_gguf_get_array(g, "tokenizer.ggml.tokens", &tokens)))
        return rc;
    if (tokens.type != BTRM_GGUF_STRING || tokens.count == 0 || tokens.count > INT32_MAX)
        return btrm_error_set(BTRM_EDATA, "%s: tokenizer.ggml.tokens must be a non-empty array "
                              "of strings (got %llu %s)", g->path,
                              (unsigned long long)tokens.count, btrm_gguf_type_name(tokens.type));
    int n_vocab = (int)tokens.count, bos = -1, eos = -1;
    const void *types = NULL;
    if ((rc = optional_id(g, "tokenizer.ggml.bos_token_id", &bos)) ||
        (rc = optional_id(g, "tokenizer.ggml.eos_token_id", &eos)) ||
        (rc = optional_array(g, "tokenizer.ggml.token_type", BTRM_GGUF_INT32, tokens.count,
                             &types)))
        return rc;
    const char *pre = "default";
    int want_bos = is_spm, no_bos = 0;
    if (is_spm) {
        /* llama.cpp's SentencePiece defaults: BOS 1, EOS 2 */
        if (btrm_gguf_find_key(g, "tokenizer.ggml.bos_token_id") < 0 && n_vocab > 1)
            bos = 1;
        if (btrm_gguf_find_key(g, "tokenizer.ggml.eos_token_id") < 0 && n_vocab > 2)
            eos = 2;
    } else {
        /* absent: llama.cpp's "default" (with a warning there) */
        if (btrm_gguf_find_key(g, "tokenizer.ggml.pre") >= 0 &&
            (rc = btrm_gguf_get_string(g, "tokenizer.ggml.pre", &pre)))
            return rc;
        if ((rc = btrm_tok_bpe_pre_defaults(pre, &want_bos, &no_bos))) {
            char known[1024];
            btrm_tok_bpe_pre_names(known, sizeof known);
            return btrm_error_set(BTRM_EDATA, "%s: tokenizer.ggml.pre = '%s' is not a "
                                  "pre-tokenizer btrm knows (known: %s)", g->path, pre, known);
        }
        if (no_bos)
            bos = -1;
    }
    if (bos >= n_vocab || eos >= n_vocab)
        return btrm_error_set(BTRM_EDATA, "%s: BOS id %d or EOS id %d outside the %d tokens",
                              g->path, bos, eos, n_vocab);
    if (btrm_gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0 &&
        (rc = btrm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &want_bos)))
        return rc;
    if (is_spm) {
        const void *scores = NULL;
        int space_prefix = 1;
        if ((rc = optional_array(g, "tokenizer.ggml.scores", BTRM_GGUF_FLOAT32, tokens.count,
                                 &scores)))
            return rc;
        if (btrm_gguf_find_key(g, "tokenizer.ggml.add_space_prefix") >= 0 &&
            (rc = btrm_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &space_prefix)))
            return rc;
        rc = btrm_tok_spm_from_arrays(tok, (const char *const *)tokens.data, scores, types,
                                      n_vocab, bos, eos);
        if (!rc && !space_prefix)
            rc = btrm_tok_spm_set_space_prefix(*tok, 0);
    } else {
        btrm_gguf_array merges;
        if ((rc = btrm_gguf_get_array(g, "tokenizer.ggml.merges", &merges)))
            return rc;
        if (merges.type != BTRM_GGUF_STRING || merges.count > INT32_MAX)
            return btrm_error_set(BTRM_EDATA, "%s: tokenizer.ggml.merges must be an array of "
                                  "strings", g->path);
        rc = btrm_tok_bpe_from_arrays(tok, (const char *const *)tokens.data, n_vocab,
                                      (const char *const *)merges.data, (int)merges.count, pre,
                                      bos, eos);
        if (!rc && types)
            rc = btrm_tok_set_types(*tok, types);
    }
    if (!rc)
        rc = phi3_strip(g, *tok);
    if (rc) {
        btrm_tok_free(*tok);
        *tok = NULL;
        return btrm_error_wrap(rc, "%s: tokenizer", g->path);
    }
    if (add_bos)
        *add_bos = want_bos;
    return 0;
}
