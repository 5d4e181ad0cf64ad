/* gguf_writer.h: a little GGUF writer for the unit tests (test-gguf.c,
 * test-model.c): bytes appended to a growing buffer, little-endian as the
 * host (the reader refuses big-endian hosts anyway). */
#ifndef BTRM_TEST_GGUF_WRITER_H
#define BTRM_TEST_GGUF_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_key(buf *b, const char *key, uint32_t type)
{
    put_str(b, key);
    put_u32(b, type);
}
static void pad_to(buf *b, size_t align)
{
    static const unsigned char zero[64];
    while (b->n % align)
        put(b, zero, 1);
}

/* The test's scratch directory (mkdtemp'ed by main) and a file in it. */
static char tmp_dir[] = "/tmp/btrm-test-gguf.XXXXXX";

static const char *write_file(const char *name, const void *bytes, size_t n)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(bytes, 1, n, f) != n) || fclose(f))
        abort();
    return path;
}

#endif
