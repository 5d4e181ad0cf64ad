/* h5raw.c: the attribute messages of an object header, and the global heap
 * objects their variable-length strings point to, checked in the file's
 * bytes before libhdf5 decodes them (see h5raw.h).
 *
 * Layouts from the HDF5 File Format Specification 3.0: object header
 * prefixes version 1 and 2 (IV.A.1), header continuation (IV.A.2.q),
 * attribute info (IV.A.2.v), attribute messages 1-3 (IV.A.2.m), datatype
 * (IV.A.2.d) and dataspace (IV.A.2.b) encodings, global heap collections
 * (III.E). The checks are the bounds libhdf5 1.10's decoders assume and do
 * not test; anything btrm's files never hold (shared or dense attributes,
 * compound or enum types) is refused rather than parsed. */
#include "h5raw.h"

#include "error.h"
#include "fileutil.h"
#include "h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    MAX_CHUNKS = 64,                /* object header chunks followed */
    MAX_CHUNK_BYTES = 16 << 20,     /* one chunk */
    MAX_HEAP_BYTES = 64 << 20,      /* one global heap collection */
    MAX_ATTR_VALUES = 1 << 20,      /* values of one attribute */
    MAX_DATASET_STRINGS = 1 << 30,  /* strings of one dataset */
    STRINGS_PER_READ = 1 << 16,     /* a dataset's strings checked per read */
    MAX_OBJECTS = 1 << 16,          /* objects of one file (btrm_h5raw_check_file) */
    MAX_GROUP_DEPTH = 64,           /* nested groups, and B-tree levels */
    MAX_LOCAL_HEAP_BYTES = 16 << 20, /* the link names of one group */
    MAX_DTYPE_DEPTH = 16,           /* nested datatypes (compound, array, enum, vlen) */
    MSG_DATASPACE = 0x01,
    MSG_LINK_INFO = 0x02,
    MSG_DATATYPE = 0x03,
    MSG_FILL_OLD = 0x04,
    MSG_FILL = 0x05,
    MSG_LINK = 0x06,
    MSG_EXTERNAL = 0x07,
    MSG_LAYOUT = 0x08,
    MSG_PIPELINE = 0x0B,
    MSG_ATTRIBUTE = 0x0C,
    MSG_CONTINUATION = 0x10,
    MSG_SYMBOL_TABLE = 0x11,
    MSG_ATTRIBUTE_INFO = 0x15,
    MSG_FLAG_SHARED = 0x02,
};

typedef struct raw_file {
    int fd;
    uint64_t eof;  /* the file's size */
    uint64_t base; /* addresses count from the superblock, after any user block */
    unsigned sa;   /* bytes of an address */
    unsigned ss;   /* bytes of a length */
    const char *where;
    uint64_t chunk_at[MAX_CHUNKS], chunk_len[MAX_CHUNKS]; /* header chunks met */
    int n_chunks;
    /* the last global heap collection checked, kept for the next string */
    uint64_t heap_addr, heap_size;
    uint8_t *heap;
    /* a dataset's datatype, dataspace and layout messages, copied */
    uint8_t *msg[3];
    size_t msg_len[3];
    /* btrm_h5raw_check_file: every object header reachable from the root,
     * each walked once; attributes are left to btrm_h5raw_check_attrs */
    int whole_file;
    unsigned leaf_k, node_k;      /* symbol table node and group B-tree K */
    uint64_t *seen;               /* object header addresses met, + 1 (hash set) */
    size_t seen_cap, n_seen;
    uint64_t *todo;               /* object headers still to walk */
    size_t n_todo, todo_cap;
    uint64_t spent;               /* bytes of structures read (spend) */
} raw_file;

enum { SAVED_DTYPE, SAVED_DSPACE, SAVED_LAYOUT };

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static int undefined_addr(const uint8_t *p, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (p[i] != 0xff)
            return 0;
    return 1;
}

static uint64_t pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

static int refuse(const raw_file *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(const raw_file *f, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return btrm_error_set(BTRM_EDATA, "%s: %s (the file is damaged or crafted; btrm checks "
                          "HDF5 structures before libhdf5 reads them)",
                          f->where, what);
}

/* n bytes at file address addr (relative to the superblock). */
static int raw_read(const raw_file *f, uint64_t addr, uint8_t *buf, size_t n, const char *what)
{
    if (addr > f->eof || n > f->eof - addr || f->base > f->eof - addr - n)
        return refuse(f, "%s at address %llu (%zu bytes) lies past the end of the file "
                      "(%llu bytes)", what, (unsigned long long)addr, n,
                      (unsigned long long)f->eof);
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(f->fd, buf + done, n - done, (off_t)(f->base + addr + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return btrm_error_set(BTRM_EIO, "%s: cannot read %s at address %llu: %s", f->where,
                                  what, (unsigned long long)addr,
                                  got < 0 ? strerror(errno) : "the file shrank");
        done += (size_t)got;
    }
    return 0;
}

/* Records [addr, addr + len) as a header chunk; refuses a chunk that
 * overlaps one met before (a continuation loop hangs libhdf5). */
static int add_chunk(raw_file *f, uint64_t addr, uint64_t len)
{
    if (f->n_chunks == MAX_CHUNKS)
        return refuse(f, "the object header has more than %d chunks", MAX_CHUNKS);
    if (len > MAX_CHUNK_BYTES)
        return refuse(f, "an object header chunk at address %llu claims %llu bytes (at most "
                      "%d)", (unsigned long long)addr, (unsigned long long)len,
                      MAX_CHUNK_BYTES);
    for (int i = 0; i < f->n_chunks; i++)
        if (addr < f->chunk_at[i] + f->chunk_len[i] && f->chunk_at[i] < addr + len)
            return refuse(f, "the object header chunk at address %llu overlaps the one at "
                          "%llu", (unsigned long long)addr,
                          (unsigned long long)f->chunk_at[i]);
    f->chunk_at[f->n_chunks] = addr;
    f->chunk_len[f->n_chunks] = len;
    f->n_chunks++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Attribute messages */

typedef struct dtype_info {
    size_t encoded;   /* bytes of the encoding */
    uint64_t size;    /* bytes of one value in memory */
    int vlen_string;  /* a variable-length string: values live in the global heap */
} dtype_info;

static int check_dtype(const raw_file *f, const uint8_t *p, size_t n, int depth,
                       const char *what, dtype_info *dt)
{
    if (n < 8)
        return refuse(f, "%s: its datatype is %zu bytes, shorter than a datatype "
                      "header", what, n);
    unsigned cls = p[0] & 0x0f, version = p[0] >> 4;
    unsigned bits = (unsigned)le(p + 1, 3);
    uint64_t size = le(p + 4, 4);
    if (version < 1 || version > 4)
        return refuse(f, "%s: datatype version %u", what, version);
    memset(dt, 0, sizeof *dt);
    dt->size = size;
    switch (cls) {
    case 0: { /* fixed-point */
        if (n < 12)
            return refuse(f, "%s: an integer datatype of %zu bytes", what, n);
        unsigned offset = (unsigned)le(p + 8, 2), precision = (unsigned)le(p + 10, 2);
        if ((size != 1 && size != 2 && size != 4 && size != 8) || precision == 0 ||
            offset + precision > 8 * size)
            return refuse(f, "%s: an integer of %llu bytes with %u bits at bit %u",
                          what, (unsigned long long)size, precision, offset);
        dt->encoded = 12;
        return 0;
    }
    case 1: { /* floating-point */
        if (n < 20)
            return refuse(f, "%s: a floating-point datatype of %zu bytes", what, n);
        unsigned offset = (unsigned)le(p + 8, 2), precision = (unsigned)le(p + 10, 2);
        unsigned epos = p[12], esize = p[13], mpos = p[14], msize = p[15];
        if ((size != 2 && size != 4 && size != 8) || precision == 0 ||
            offset + precision > 8 * size || esize == 0 || msize == 0 ||
            epos + esize > 8 * size || mpos + msize > 8 * size)
            return refuse(f, "%s: a floating-point type of %llu bytes with fields "
                          "outside it", what, (unsigned long long)size);
        dt->encoded = 20;
        return 0;
    }
    case 3: /* fixed-length string */
        if (size == 0)
            return refuse(f, "%s: a string type of 0 bytes", what);
        dt->encoded = 8;
        return 0;
    case 9: { /* variable-length */
        if ((bits & 0x0f) != 1 || depth > 0)
            return refuse(f, "%s: a variable-length sequence, which btrm's files "
                          "never hold", what);
        dtype_info base;
        int rc = check_dtype(f, p + 8, n - 8, depth + 1, what, &base);
        if (rc)
            return rc;
        if (base.vlen_string || base.size != 1)
            return refuse(f, "%s: a variable-length string of %llu-byte "
                          "characters", what, (unsigned long long)base.size);
        dt->encoded = 8 + base.encoded;
        dt->vlen_string = 1;
        return 0;
    }
    default:
        return refuse(f, "%s: a datatype of class %u, which btrm's files never "
                      "hold", what, cls);
    }
}

/* *nelem: the number of values of the dataspace encoded in p[0..n). */
static int check_dspace(const raw_file *f, const uint8_t *p, size_t n, const char *what,
                        uint64_t max_values, uint64_t *nelem)
{
    if (n < 4)
        return refuse(f, "%s: its dataspace is %zu bytes", what, n);
    unsigned version = p[0], rank = p[1], flags = p[2];
    size_t head = version == 1 ? 8 : 4;
    if (version < 1 || version > 2 || rank > 32)
        return refuse(f, "%s: dataspace version %u of rank %u", what, version, rank);
    int is_null = version == 2 && p[3] == 2;
    if (version == 2 && (p[3] > 2 || (p[3] != 1 && rank != 0) || (p[3] == 1 && rank == 0)))
        return refuse(f, "%s: dataspace type %u of rank %u", what, p[3], rank);
    size_t need = head + (size_t)rank * f->ss * ((flags & 1) ? 2 : 1);
    if (need > n)
        return refuse(f, "%s: a dataspace of rank %u needs %zu bytes, its message "
                      "has %zu", what, rank, need, n);
    uint64_t count = is_null ? 0 : 1;
    for (unsigned i = 0; i < rank; i++) {
        uint64_t dim = le(p + head + (size_t)i * f->ss, f->ss);
        if (dim > max_values || (dim > 0 && count > max_values / dim))
            return refuse(f, "%s: more than %llu values", what, (unsigned long long)max_values);
        count *= dim;
    }
    *nelem = count;
    return 0;
}

/* Loads the global heap collection at addr into f->heap (unless it is the
 * one there): well-formed, inside the file, away from the object header,
 * every object inside it (libhdf5 1.10 trusts each object's size; free
 * space of 0 bytes makes its decoder loop forever). what names the string. */
static int load_heap(raw_file *f, uint64_t addr, const char *what)
{
    if (f->heap && f->heap_addr == addr)
        return 0;
    free(f->heap);
    f->heap = NULL;
    size_t head = 8 + f->ss, obj_head = 8 + f->ss;
    uint8_t prefix[16];
    int rc = raw_read(f, addr, prefix, head, "a global heap collection");
    if (rc)
        return rc;
    if (memcmp(prefix, "GCOL", 4) != 0 || prefix[4] != 1)
        return refuse(f, "%s: its string points to address %llu, which holds no global heap "
                      "collection", what, (unsigned long long)addr);
    uint64_t size = le(prefix + 8, f->ss);
    if (size < head || size > MAX_HEAP_BYTES)
        return refuse(f, "%s: the global heap collection at address %llu claims %llu bytes",
                      what, (unsigned long long)addr, (unsigned long long)size);
    for (int i = 0; i < f->n_chunks; i++)
        if (addr < f->chunk_at[i] + f->chunk_len[i] && f->chunk_at[i] < addr + size)
            return refuse(f, "%s: the global heap collection at address %llu overlaps the "
                          "object header", what, (unsigned long long)addr);
    uint8_t *heap = NULL;
    rc = BTRM_MALLOC(heap, (size_t)size);
    if (rc)
        return rc;
    rc = raw_read(f, addr, heap, (size_t)size, "a global heap collection");
    for (uint64_t at = head; !rc && at < size && size - at >= obj_head;) {
        unsigned id = (unsigned)le(heap + at, 2);
        uint64_t obj_size = le(heap + at + 8, f->ss);
        /* an object: header and data padded to 8; free space (index 0): all of it */
        uint64_t need = id > 0 ? (obj_size > size ? UINT64_MAX : obj_head + pad8(obj_size))
                               : obj_size;
        if (need < obj_head || need > size - at)
            rc = refuse(f, "%s: object %u at byte %llu of the global heap collection at "
                        "address %llu claims %llu bytes, which do not fit its %llu", what, id,
                        (unsigned long long)at, (unsigned long long)addr,
                        (unsigned long long)obj_size, (unsigned long long)size);
        at += need;
    }
    if (rc) {
        free(heap);
        return rc;
    }
    f->heap = heap;
    f->heap_addr = addr;
    f->heap_size = size;
    return 0;
}

/* The global heap object (collection at addr, index idx) that holds a
 * variable-length string of seq_len bytes: in a well-formed collection
 * (load_heap), and exactly seq_len bytes (H5HG_read copies the object's
 * size into a buffer of the string's). */
static int check_heap_object(raw_file *f, uint64_t addr, unsigned idx, uint64_t seq_len,
                             const char *what)
{
    int rc = load_heap(f, addr, what);
    if (rc)
        return rc;
    size_t obj_head = 8 + f->ss;
    int found = 0;
    uint64_t found_size = 0;
    for (uint64_t at = 8 + f->ss; at < f->heap_size && f->heap_size - at >= obj_head;) {
        unsigned id = (unsigned)le(f->heap + at, 2);
        uint64_t obj_size = le(f->heap + at + 8, f->ss);
        if (id == idx && id > 0) {
            found = 1; /* libhdf5 keeps the last object of an index */
            found_size = obj_size;
        }
        at += id > 0 ? obj_head + pad8(obj_size) : obj_size;
    }
    if (!found)
        return refuse(f, "%s: its string points to object %u of the global heap collection "
                      "at address %llu, which has no such object", what, idx,
                      (unsigned long long)addr);
    if (found_size != seq_len)
        return refuse(f, "%s: its string of %llu bytes points to a global heap object of %llu "
                      "bytes", what, (unsigned long long)seq_len,
                      (unsigned long long)found_size);
    return 0;
}

/* n variable-length strings as stored (length, collection address, index),
 * each checked against its global heap object. */
static int check_strings(raw_file *f, const uint8_t *v, uint64_t n, const char *what)
{
    size_t value_bytes = 4 + f->sa + 4;
    for (uint64_t i = 0; i < n; i++, v += value_bytes) {
        uint64_t seq_len = le(v, 4);
        uint64_t addr = le(v + 4, f->sa), idx = le(v + 4 + f->sa, 4);
        if (addr == 0 || undefined_addr(v + 4, f->sa)) {
            if (seq_len != 0)
                return refuse(f, "%s: a string of %llu bytes with no global heap object",
                              what, (unsigned long long)seq_len);
            continue;
        }
        if (idx > 0xffff)
            return refuse(f, "%s: global heap index %llu", what, (unsigned long long)idx);
        int rc = check_heap_object(f, addr, (unsigned)idx, seq_len, what);
        if (rc)
            return rc;
    }
    return 0;
}

/* One attribute message, m[0..n): its name, datatype, dataspace, data, and
 * the global heap objects of its variable-length strings. */
static int check_attr(raw_file *f, const uint8_t *m, size_t n, unsigned msg_flags)
{
    if (msg_flags & MSG_FLAG_SHARED)
        return refuse(f, "a shared attribute message, which btrm's files never hold");
    if (n < 8)
        return refuse(f, "an attribute message of %zu bytes", n);
    unsigned version = m[0], flags = m[1];
    if (version < 1 || version > 3)
        return refuse(f, "an attribute message of version %u", version);
    if (version >= 2 && (flags & 0x03))
        return refuse(f, "an attribute with a shared datatype or dataspace, which btrm's "
                      "files never hold");
    uint64_t name_len = le(m + 2, 2), dt_len = le(m + 4, 2), ds_len = le(m + 6, 2);
    uint64_t at = version == 3 ? 9 : 8;
    int padded = version == 1;
    uint64_t name_at = at;
    at += padded ? pad8(name_len) : name_len;
    uint64_t dt_at = at;
    at += padded ? pad8(dt_len) : dt_len;
    uint64_t ds_at = at;
    at += padded ? pad8(ds_len) : ds_len;
    if (at > n)
        return refuse(f, "an attribute message of %zu bytes whose name, datatype and "
                      "dataspace need %llu", n, (unsigned long long)at);
    const char *name = (const char *)m + name_at;
    if (name_len == 0 || memchr(name, '\0', name_len) != name + name_len - 1)
        return refuse(f, "an attribute name of %llu bytes that is not one NUL-terminated "
                      "string", (unsigned long long)name_len);
    char attr[72];
    size_t shown = 0;
    for (const char *c = name; *c && shown + 1 < sizeof attr; c++)
        attr[shown++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
    attr[shown] = '\0';
    char what[96];
    snprintf(what, sizeof what, "attribute %s", attr);

    dtype_info dt;
    int rc = check_dtype(f, m + dt_at, (size_t)dt_len, 0, what, &dt);
    if (rc)
        return rc;
    uint64_t nelem = 0;
    rc = check_dspace(f, m + ds_at, (size_t)ds_len, what, MAX_ATTR_VALUES, &nelem);
    if (rc)
        return rc;
    /* a variable-length value in the file: length, collection address, index;
     * libhdf5 sizes the attribute's buffer by the type's size, and copies this */
    uint64_t value_bytes = dt.vlen_string ? 4 + f->sa + 4 : dt.size;
    if (dt.vlen_string && dt.size != value_bytes)
        return refuse(f, "%s: a variable-length string type of %llu bytes (HDF5 writes "
                      "%llu)", what, (unsigned long long)dt.size,
                      (unsigned long long)value_bytes);
    if (nelem * value_bytes > n - at)
        return refuse(f, "%s: %llu values of %llu bytes need %llu bytes, its message "
                      "holds %llu", what, (unsigned long long)nelem,
                      (unsigned long long)value_bytes, (unsigned long long)(nelem * value_bytes),
                      (unsigned long long)(n - at));
    if (!dt.vlen_string)
        return 0;
    return check_strings(f, m + at, nelem, what);
}

/* ------------------------------------------------------------------------ */
/* Whole file (btrm_h5raw_check_file): what libhdf5 1.10 decodes when it
 * opens the file, follows a link or opens a dataset */

/* Counts bytes of structures read by the whole-file walk. A well-formed
 * file reads each structure once (at most its size in all); crafted links
 * or B-tree nodes shared many times over would read the same bytes again
 * and again, so the walk stops at 64 MiB + 4 times the file's size. */
static int spend(raw_file *f, uint64_t bytes)
{
    uint64_t limit = ((uint64_t)64 << 20) + 4 * f->eof;
    f->spent += bytes;
    if (f->spent > limit)
        return refuse(f, "its groups and headers need more than %llu bytes read (structures "
                      "shared many times over)", (unsigned long long)limit);
    return 0;
}

/* The first slot of key in a hash set of cap slots (a power of 2, at most
 * 2^32): the high half of a multiplicative hash, so that aligned
 * addresses spread. */
static size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

/* Marks the object header at addr met; 1 if it was met before. */
static int seen_before(raw_file *f, uint64_t addr, int *rc)
{
    *rc = 0;
    if (f->n_seen * 2 >= f->seen_cap) {
        if (f->n_seen >= MAX_OBJECTS) {
            *rc = refuse(f, "more than %d objects", MAX_OBJECTS);
            return 1;
        }
        size_t cap = f->seen_cap ? 2 * f->seen_cap : 64;
        uint64_t *grown = calloc(cap, sizeof *grown);
        if (!grown) {
            *rc = btrm_error_set(BTRM_ENOMEM, "%s: out of memory", f->where);
            return 1;
        }
        for (size_t i = 0; i < f->seen_cap; i++)
            if (f->seen[i]) {
                size_t j = slot_of(f->seen[i], cap);
                while (grown[j])
                    j = (j + 1) & (cap - 1);
                grown[j] = f->seen[i];
            }
        free(f->seen);
        f->seen = grown;
        f->seen_cap = cap;
    }
    uint64_t key = addr + 1;
    size_t j = slot_of(key, f->seen_cap);
    for (; f->seen[j]; j = (j + 1) & (f->seen_cap - 1))
        if (f->seen[j] == key)
            return 1;
    f->seen[j] = key;
    f->n_seen++;
    return 0;
}

/* Queues the object header a link points to, unless it was met before. */
static int push_object(raw_file *f, uint64_t addr)
{
    int rc = 0;
    if (addr >= f->eof - f->base)
        return refuse(f, "a link points to address %llu, past the end of the file (%llu "
                      "bytes)", (unsigned long long)addr, (unsigned long long)f->eof);
    if (seen_before(f, addr, &rc))
        return rc;
    if (f->n_todo == f->todo_cap) {
        size_t cap = f->todo_cap ? 2 * f->todo_cap : 64;
        uint64_t *grown = realloc(f->todo, cap * sizeof *grown);
        if (!grown)
            return btrm_error_set(BTRM_ENOMEM, "%s: out of memory", f->where);
        f->todo = grown;
        f->todo_cap = cap;
    }
    f->todo[f->n_todo++] = addr;
    return 0;
}

/* Any datatype encoding, p[0..n), as libhdf5 1.10's H5O_dtype_decode reads
 * it without knowing n: every field, member name (strdup'd: it must hold
 * its NUL), enum value and nested type inside n. *used: its bytes. */
static int check_any_dtype(const raw_file *f, const uint8_t *p, size_t n, int depth,
                           size_t *used)
{
    if (depth > MAX_DTYPE_DEPTH)
        return refuse(f, "datatypes nested more than %d deep", MAX_DTYPE_DEPTH);
    if (n < 8)
        return refuse(f, "a datatype of %zu bytes, shorter than its header", n);
    unsigned cls = p[0] & 0x0f, version = p[0] >> 4;
    unsigned bits = (unsigned)le(p + 1, 3);
    uint64_t size = le(p + 4, 4);
    if (version < 1 || version > 4)
        return refuse(f, "datatype version %u", version);
    size_t at = 8, sub = 0;
    int rc = 0;
    switch (cls) {
    case 0: case 4: at += 4; break;   /* integer, bitfield: offset, precision */
    case 1: at += 12; break;          /* float: offset, precision, fields, bias */
    case 2: at += 2; break;           /* time: precision */
    case 3: case 7: break;            /* string, reference */
    case 5: {                         /* opaque: a tag, padded to 8 (copied by length) */
        size_t tag = bits & 0xff;
        if (tag > n - at)
            return refuse(f, "an opaque datatype whose tag of %zu bytes runs past its "
                          "message", tag);
        at += tag;
        break;
    }
    case 6: case 8: {                 /* compound, enum */
        unsigned members = bits & 0xffff;
        if (cls == 8) {
            rc = check_any_dtype(f, p + at, n - at, depth + 1, &sub);
            if (rc)
                return rc;
            at += sub;
        }
        if (members == 0)
            return refuse(f, "%s datatype with no members", cls == 6 ? "a compound" : "an enum");
        for (unsigned i = 0; i < members; i++) {
            const uint8_t *name_end = at < n ? memchr(p + at, '\0', n - at) : NULL;
            if (!name_end)
                return refuse(f, "member %u of %s datatype: its name runs past the message",
                              i, cls == 6 ? "a compound" : "an enum");
            size_t name_len = (size_t)(name_end - (p + at)) + 1;
            at += version < 3 ? (size_t)pad8(name_len) : name_len;
            if (cls == 8)
                continue;
            /* member offset: 4 bytes before version 3, else as many as the size needs */
            size_t off_bytes = 4;
            if (version >= 3)
                for (off_bytes = 1; off_bytes < 4 && size >> (8 * off_bytes); off_bytes++)
                    ;
            if (version == 1)
                off_bytes += 28; /* dimensionality, reserved, permutation, 4 dimensions */
            if (at > n || off_bytes > n - at)
                return refuse(f, "member %u of a compound datatype runs past the message", i);
            at += off_bytes;
            rc = check_any_dtype(f, p + at, n - at, depth + 1, &sub);
            if (rc)
                return rc;
            at += sub;
        }
        if (cls == 8) {
            uint64_t base_size = le(p + 12, 4); /* the base type's size field */
            if (at > n || base_size > (n - at) / members)
                return refuse(f, "an enum datatype's %u values of %llu bytes run past the "
                              "message", members, (unsigned long long)base_size);
            at += (size_t)(members * base_size);
        }
        break;
    }
    case 9:                           /* variable-length: the base type */
        rc = check_any_dtype(f, p + at, n - at, depth + 1, &sub);
        if (rc)
            return rc;
        at += sub;
        break;
    case 10: {                        /* array: rank, dimensions, [permutation], base */
        if (n - at < 4)
            return refuse(f, "an array datatype cut short");
        unsigned rank = p[at];
        size_t dims = version < 3 ? 4 + 8 * (size_t)rank : 1 + 4 * (size_t)rank;
        if (rank == 0 || rank > 32 || dims > n - at)
            return refuse(f, "an array datatype of rank %u", rank);
        at += dims;
        rc = check_any_dtype(f, p + at, n - at, depth + 1, &sub);
        if (rc)
            return rc;
        at += sub;
        break;
    }
    default:
        return refuse(f, "a datatype of class %u", cls);
    }
    if (at > n)
        return refuse(f, "a datatype of class %u needs %zu bytes, its message has %zu", cls, at,
                      n);
    *used = at;
    return 0;
}

/* The fill value messages: a value of the size they claim, inside them. */
static int check_fill(const raw_file *f, unsigned type, const uint8_t *m, size_t n)
{
    size_t at;
    if (type == MSG_FILL_OLD) {
        at = 0;
    } else {
        if (n < 1 || m[0] < 1 || m[0] > 3)
            return refuse(f, "a fill value message of version %u", n ? m[0] : 0);
        /* versions 1, 2: version, allocation time, write time, defined, [size, value];
         * version 3: version, flags, [size, value] */
        size_t head = m[0] < 3 ? 4 : 2;
        if (n < head)
            return refuse(f, "a fill value message of %zu bytes", n);
        if (m[0] < 3 ? !m[3] : !(m[1] & 0x20))
            return 0; /* no value stored */
        at = head;
    }
    if (n < at + 4 || le(m + at, 4) > n - at - 4)
        return refuse(f, "a fill value of %llu bytes runs past its message of %zu",
                      n < at + 4 ? 0ull : (unsigned long long)le(m + at, 4), n);
    return 0;
}

/* The layout message: versions 1 to 4, compact data inside the message,
 * every field inside it. */
static int check_layout(const raw_file *f, const uint8_t *m, size_t n)
{
    if (n < 2 || m[0] < 1 || m[0] > 4)
        return refuse(f, "a layout message of version %u", n ? m[0] : 0);
    unsigned version = m[0];
    if (version < 3) { /* rank, class, 5 reserved, [address], dimensions, [compact data] */
        if (n < 8 || m[1] == 0 || m[1] > 33 || m[2] > 2)
            return refuse(f, "a version %u layout message of rank %u, class %u", version,
                          n >= 2 ? m[1] : 0, n >= 3 ? m[2] : 0);
        size_t at = 8 + (m[2] ? f->sa : 0) + 4 * (size_t)m[1];
        if (at > n || (m[2] == 0 && (n - at < 4 || le(m + at, 4) > n - at - 4)))
            return refuse(f, "a version %u layout message runs past its %zu bytes", version, n);
        return 0;
    }
    unsigned cls = m[1];
    size_t need;
    switch (cls) {
    case 0: /* compact: size, data */
        if (n < 4 || le(m + 2, 2) > n - 4)
            return refuse(f, "compact data of %llu bytes run past its layout message of %zu",
                          n < 4 ? 0ull : (unsigned long long)le(m + 2, 2), n);
        return 0;
    case 1: need = 2 + f->sa + f->ss; break;
    case 2:
        if (version == 3) { /* rank, B-tree address, dimensions */
            if (n < 3 || m[2] < 2 || m[2] > 33)
                return refuse(f, "a chunked layout of rank %u", n >= 3 ? m[2] : 0);
            need = 3 + f->sa + 4 * (size_t)m[2];
        } else { /* flags, rank, dimension bytes, dimensions, index type, index, address */
            if (n < 5 || m[3] < 2 || m[3] > 33 || m[4] < 1 || m[4] > 8)
                return refuse(f, "a version 4 chunked layout message that btrm cannot check");
            size_t at = 5 + (size_t)m[3] * m[4];
            if (at >= n)
                return refuse(f, "a version 4 chunked layout message of %zu bytes", n);
            unsigned index = m[at++];
            static const size_t index_bytes[6] = { 0, 0, 0, 1, 5, 6 };
            if (index < 1 || index > 5)
                return refuse(f, "a chunk index of type %u", index);
            need = at + index_bytes[index] + f->sa;
            if (index == 1 && (m[2] & 0x02))
                need += f->ss + 4; /* a single filtered chunk: its size and filter mask */
        }
        break;
    default:
        return refuse(f, "a layout of class %u, which btrm does not read", cls);
    }
    if (need > n)
        return refuse(f, "a layout message of class %u needs %zu bytes, it has %zu", cls, need,
                      n);
    return 0;
}

/* The filter pipeline: at most 32 filters, each name NUL-terminated inside
 * its field (libhdf5 strlen's it), every value inside the message. */
static int check_pipeline(const raw_file *f, const uint8_t *m, size_t n)
{
    if (n < 2 || m[0] < 1 || m[0] > 2 || m[1] > 32)
        return refuse(f, "a filter pipeline of version %u with %u filters", n ? m[0] : 0,
                      n >= 2 ? m[1] : 0);
    unsigned version = m[0], filters = m[1];
    size_t at = version == 1 ? 8 : 2;
    for (unsigned i = 0; i < filters; i++) {
        /* id, [name length], flags, number of values */
        unsigned id = at <= n && n - at >= 2 ? (unsigned)le(m + at, 2) : 0;
        if (at > n || n - at < (version == 1 || id >= 256 ? 8u : 6u))
            return refuse(f, "filter %u runs past the filter pipeline message", i);
        size_t name_len = 0;
        if (version == 1 || id >= 256) {
            name_len = (size_t)le(m + at + 2, 2);
            at += 2;
        }
        size_t values = (size_t)le(m + at + 4, 2);
        at += 6;
        size_t name_field = version == 1 ? (size_t)pad8(name_len) : name_len;
        if (name_field > n - at || (name_len > 0 && !memchr(m + at, '\0', name_len)))
            return refuse(f, "filter %u: a name of %zu bytes that runs past the message or "
                          "has no NUL", i, name_len);
        at += name_field;
        size_t value_bytes = 4 * values + (version == 1 && (values & 1) ? 4 : 0);
        if (value_bytes > n - at)
            return refuse(f, "filter %u: %zu values run past the message", i, values);
        at += value_bytes;
    }
    return 0;
}

/* A group's local heap (the names of its links): in the file, and its data
 * segment loaded into *data (the caller frees it). */
static int load_local_heap(raw_file *f, uint64_t addr, uint8_t **data, uint64_t *size)
{
    uint8_t prefix[32];
    size_t head = 8 + 2 * (size_t)f->ss + f->sa;
    *data = NULL;
    int rc = raw_read(f, addr, prefix, head, "a group's local heap");
    if (rc)
        return rc;
    if (memcmp(prefix, "HEAP", 4) != 0 || prefix[4] != 0)
        return refuse(f, "address %llu holds no local heap", (unsigned long long)addr);
    uint64_t dsize = le(prefix + 8, f->ss), free_at = le(prefix + 8 + f->ss, f->ss);
    uint64_t daddr = le(prefix + 8 + 2 * f->ss, f->sa);
    if (dsize == 0 || dsize > MAX_LOCAL_HEAP_BYTES)
        return refuse(f, "the local heap at address %llu claims %llu bytes",
                      (unsigned long long)addr, (unsigned long long)dsize);
    rc = spend(f, dsize);
    if (rc)
        return rc;
    rc = BTRM_MALLOC(*data, (size_t)dsize + 1);
    if (rc)
        return rc;
    rc = raw_read(f, daddr, *data, (size_t)dsize, "a local heap's data");
    /* the free list: inside the data, no loop (libhdf5 follows it to the end) */
    uint64_t steps = 0, undefined = f->ss == 8 ? UINT64_MAX : ((uint64_t)1 << (8 * f->ss)) - 1;
    while (!rc && free_at != 1 && free_at != undefined) { /* 1: libhdf5's "no free block" */
        if (free_at > dsize || dsize - free_at < 2 * (uint64_t)f->ss ||
            ++steps > dsize / (2 * f->ss))
            rc = refuse(f, "the free list of the local heap at address %llu leaves its data "
                        "or loops", (unsigned long long)addr);
        else
            free_at = le(*data + free_at, f->ss);
    }
    if (rc) {
        free(*data);
        *data = NULL;
        return rc;
    }
    *size = dsize;
    return 0;
}

/* A NUL-terminated name at offset off of a local heap's data. */
static int heap_name(const raw_file *f, const uint8_t *heap, uint64_t size, uint64_t off)
{
    if (off >= size || !memchr(heap + off, '\0', (size_t)(size - off)))
        return refuse(f, "a link name at offset %llu of a local heap of %llu bytes runs past "
                      "it", (unsigned long long)off, (unsigned long long)size);
    return 0;
}

/* One symbol table entry (a link of an old-style group). */
static int check_entry(raw_file *f, const uint8_t *e, const uint8_t *heap, uint64_t heap_size)
{
    int rc = heap_name(f, heap, heap_size, le(e, f->ss));
    if (rc)
        return rc;
    uint64_t addr = le(e + f->ss, f->sa);
    unsigned cache = (unsigned)le(e + f->ss + f->sa, 4);
    if (cache > 2)
        return refuse(f, "a symbol table entry of cache type %u", cache);
    if (cache == 2) /* a soft link: its value in the heap */
        return heap_name(f, heap, heap_size, le(e + f->ss + f->sa + 8, 4));
    return push_object(f, addr);
}

/* A group's B-tree (version 1, type 0) node at addr, of the given level
 * (-1: the root, any level up to MAX_GROUP_DEPTH), its keys' names, and
 * below it the symbol table nodes and their entries. */
static int check_group_btree(raw_file *f, uint64_t addr, int level, const uint8_t *heap,
                             uint64_t heap_size)
{
    size_t k2 = 2 * (size_t)f->node_k;
    size_t head = 8 + 2 * (size_t)f->sa, size = head + k2 * f->sa + (k2 + 1) * f->ss;
    uint8_t *node = NULL;
    int rc = spend(f, size);
    if (rc)
        return rc;
    rc = BTRM_MALLOC(node, size);
    if (rc)
        return rc;
    rc = raw_read(f, addr, node, size, "a group B-tree node");
    if (rc)
        goto done;
    unsigned entries = (unsigned)le(node + 6, 2);
    if (memcmp(node, "TREE", 4) != 0 || node[4] != 0 ||
        (level >= 0 && node[5] != level) || node[5] >= MAX_GROUP_DEPTH || entries > k2) {
        rc = refuse(f, "address %llu holds no group B-tree node of level %d with at most %zu "
                    "entries", (unsigned long long)addr, level, k2);
        goto done;
    }
    level = node[5];
    for (unsigned i = 0; i <= entries && !rc; i++) {
        const uint8_t *key = node + head + (size_t)i * (f->ss + f->sa);
        rc = heap_name(f, heap, heap_size, le(key, f->ss)); /* libhdf5 compares with each */
        if (rc || i == entries)
            break;
        uint64_t child = le(key + f->ss, f->sa);
        if (level > 0) {
            rc = check_group_btree(f, child, level - 1, heap, heap_size);
            continue;
        }
        /* a symbol table node: SNOD, version 1, its entries */
        size_t entry = (size_t)f->ss + f->sa + 24, snod = 8 + 2 * (size_t)f->leaf_k * entry;
        uint8_t *s = NULL;
        rc = BTRM_MALLOC(s, snod);
        if (rc)
            break;
        rc = raw_read(f, child, s, snod, "a symbol table node");
        unsigned symbols = rc ? 0 : (unsigned)le(s + 6, 2);
        if (!rc && (memcmp(s, "SNOD", 4) != 0 || s[4] != 1 || symbols > 2 * f->leaf_k))
            rc = refuse(f, "address %llu holds no symbol table node of at most %u entries",
                        (unsigned long long)child, 2 * f->leaf_k);
        if (!rc)
            rc = spend(f, snod);
        for (unsigned j = 0; j < symbols && !rc; j++)
            rc = check_entry(f, s + 8 + (size_t)j * entry, heap, heap_size);
        free(s);
    }
done:
    free(node);
    return rc;
}

/* An old-style group: its B-tree and local heap. */
static int check_symbol_table(raw_file *f, uint64_t btree, uint64_t heap_addr)
{
    uint8_t *heap = NULL;
    uint64_t heap_size = 0;
    int rc = load_local_heap(f, heap_addr, &heap, &heap_size);
    if (!rc)
        rc = check_group_btree(f, btree, -1, heap, heap_size);
    free(heap);
    return rc;
}

/* A link message (a new-style compact group): name and value inside it; a
 * hard link's object is queued. */
static int check_link(raw_file *f, const uint8_t *m, size_t n)
{
    if (n < 2 || m[0] != 1)
        return refuse(f, "a link message of version %u", n ? m[0] : 0);
    unsigned flags = m[1];
    size_t at = 2;
    unsigned type = 0;
    if (flags & 0x08) {
        if (at >= n)
            return refuse(f, "a link message cut short");
        type = m[at++];
    }
    at += (flags & 0x04 ? 8 : 0) + (flags & 0x10 ? 1 : 0);
    size_t len_bytes = (size_t)1 << (flags & 3);
    if (at > n || len_bytes > n - at)
        return refuse(f, "a link message cut short");
    uint64_t name_len = le(m + at, (unsigned)len_bytes);
    at += len_bytes;
    if (name_len == 0 || name_len > n - at)
        return refuse(f, "a link name of %llu bytes in a link message of %zu",
                      (unsigned long long)name_len, n);
    at += (size_t)name_len;
    if (type == 0) {
        if (f->sa > n - at)
            return refuse(f, "a hard link message cut short");
        return push_object(f, le(m + at, f->sa));
    }
    if (n - at < 2 || le(m + at, 2) > n - at - 2)
        return refuse(f, "a link of type %u whose value runs past its message", type);
    return 0;
}

/* One message of an object header in the whole-file walk. */
static int check_file_message(raw_file *f, unsigned type, const uint8_t *m, size_t n,
                              unsigned flags)
{
    size_t used = 0;
    if ((flags & MSG_FLAG_SHARED) &&
        (type == MSG_DATATYPE || type == MSG_DATASPACE || type == MSG_FILL ||
         type == MSG_PIPELINE))
        return refuse(f, "a shared header message (type %u), which btrm's files never hold",
                      type);
    switch (type) {
    case MSG_DATATYPE: return check_any_dtype(f, m, n, 0, &used);
    case MSG_DATASPACE: {
        uint64_t nelem = 0;
        return check_dspace(f, m, n, "a dataset", UINT64_MAX, &nelem);
    }
    case MSG_FILL_OLD:
    case MSG_FILL: return check_fill(f, type, m, n);
    case MSG_LAYOUT: return check_layout(f, m, n);
    case MSG_PIPELINE: return check_pipeline(f, m, n);
    case MSG_EXTERNAL:
        return refuse(f, "a dataset stored in external files, which btrm does not read");
    case MSG_LINK: return check_link(f, m, n);
    case MSG_SYMBOL_TABLE:
        if (n < 2 * (size_t)f->sa)
            return refuse(f, "a symbol table message of %zu bytes", n);
        return check_symbol_table(f, le(m, f->sa), le(m + f->sa, f->sa));
    case MSG_LINK_INFO: { /* version, flags, [max creation index], fractal heap address */
        size_t heap_at = 2 + ((n >= 2 && (m[1] & 1)) ? 8 : 0);
        if (n < heap_at + f->sa)
            return refuse(f, "a link info message of %zu bytes", n);
        if (!undefined_addr(m + heap_at, f->sa))
            return refuse(f, "links in dense storage (a fractal heap), which btrm's files "
                          "never use");
        return 0;
    }
    default: return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Object headers */

typedef struct pending {
    uint64_t addr, len;
} pending;

/* The messages of one chunk, c[0..n) of a version 1 or 2 header. */
static int check_messages(raw_file *f, const uint8_t *c, size_t n, int version,
                          int creation_order, pending *next, int *n_next)
{
    size_t head = version == 1 ? 8 : (creation_order ? 6 : 4);
    for (size_t at = 0; n - at >= head;) {
        unsigned type = version == 1 ? (unsigned)le(c + at, 2) : c[at];
        size_t size = version == 1 ? (size_t)le(c + at + 2, 2) : (size_t)le(c + at + 1, 2);
        unsigned flags = version == 1 ? c[at + 4] : c[at + 3];
        const uint8_t *m = c + at + head;
        if (size > n - at - head)
            return refuse(f, "a header message (type %u) of %zu bytes runs past its chunk", type,
                          size);
        int rc = 0;
        if (f->whole_file && type != MSG_CONTINUATION) {
            rc = check_file_message(f, type, m, size, flags);
        } else if (type == MSG_ATTRIBUTE) {
            rc = check_attr(f, m, size, flags);
        } else if (type == MSG_CONTINUATION) {
            if (size < (size_t)f->sa + f->ss)
                return refuse(f, "a header continuation message of %zu bytes", size);
            if (*n_next == MAX_CHUNKS)
                return refuse(f, "the object header has more than %d chunks", MAX_CHUNKS);
            next[*n_next].addr = le(m, f->sa);
            next[*n_next].len = le(m + f->sa, f->ss);
            (*n_next)++;
        } else if (type == MSG_DATATYPE || type == MSG_DATASPACE || type == MSG_LAYOUT) {
            int slot = type == MSG_DATATYPE ? SAVED_DTYPE
                                            : type == MSG_DATASPACE ? SAVED_DSPACE : SAVED_LAYOUT;
            if (f->msg[slot])
                return refuse(f, "two header messages of type %u", type);
            rc = BTRM_MALLOC(f->msg[slot], size + 1);
            if (rc)
                return rc;
            memcpy(f->msg[slot], m, size);
            f->msg_len[slot] = size;
        } else if (type == MSG_ATTRIBUTE_INFO) {
            /* version, flags, [max creation index], fractal heap address */
            size_t heap_at = 2 + ((size >= 2 && (m[1] & 1)) ? 2 : 0);
            if (size < heap_at + f->sa)
                return refuse(f, "an attribute info message of %zu bytes", size);
            if (!undefined_addr(m + heap_at, f->sa))
                return refuse(f, "attributes in dense storage (a fractal heap), which btrm's "
                              "files never use");
        }
        if (rc)
            return rc;
        at += head + size;
    }
    return 0;
}

/* The chunk at p.addr: its prefix (the first chunk) or signature, then its
 * messages; continuations found are appended to next. */
static int check_chunk(raw_file *f, pending p, int first, int *version, int *creation_order,
                       pending *next, int *n_next)
{
    uint8_t prefix[40];
    uint64_t msg_at, msg_len, chunk_len;
    int rc;
    if (first) {
        rc = raw_read(f, p.addr, prefix, 16, "the object header");
        if (rc)
            return rc;
        if (memcmp(prefix, "OHDR", 4) == 0) {
            unsigned hflags = prefix[5];
            if (prefix[4] != 2)
                return refuse(f, "object header version %u", prefix[4]);
            size_t at = 6 + ((hflags & 0x20) ? 16 : 0) + ((hflags & 0x10) ? 4 : 0);
            unsigned width = 1u << (hflags & 3);
            rc = raw_read(f, p.addr, prefix, at + width, "the object header");
            if (rc)
                return rc;
            msg_at = at + width;
            msg_len = le(prefix + at, width);
            chunk_len = msg_at + msg_len + 4; /* and a checksum */
            *version = 2;
            *creation_order = (hflags & 0x04) != 0;
        } else {
            if (prefix[0] != 1)
                return refuse(f, "object header version %u", prefix[0]);
            msg_at = 16;
            msg_len = le(prefix + 8, 4);
            chunk_len = msg_at + msg_len;
            *version = 1;
        }
    } else if (*version == 2) {
        if (p.len < 8)
            return refuse(f, "an object header continuation of %llu bytes",
                          (unsigned long long)p.len);
        rc = raw_read(f, p.addr, prefix, 4, "an object header continuation");
        if (rc)
            return rc;
        if (memcmp(prefix, "OCHK", 4) != 0)
            return refuse(f, "the object header continuation at address %llu has no OCHK "
                          "signature", (unsigned long long)p.addr);
        msg_at = 4;
        msg_len = p.len - 8;
        chunk_len = p.len;
    } else {
        msg_at = 0;
        msg_len = chunk_len = p.len;
    }
    if (p.addr > UINT64_MAX - chunk_len)
        return refuse(f, "an object header chunk at address %llu",
                      (unsigned long long)p.addr);
    rc = add_chunk(f, p.addr, chunk_len);
    if (!rc && f->whole_file)
        rc = spend(f, chunk_len);
    if (rc)
        return rc;
    uint8_t *chunk = NULL;
    rc = BTRM_MALLOC(chunk, (size_t)msg_len + 1);
    if (rc)
        return rc;
    rc = raw_read(f, p.addr + msg_at, chunk, (size_t)msg_len, "an object header chunk");
    if (!rc)
        rc = check_messages(f, chunk, (size_t)msg_len, *version, *creation_order, next,
                            n_next);
    free(chunk);
    return rc;
}

/* The object header at addr: every chunk, every message. */
static int walk_header(raw_file *f, uint64_t addr)
{
    pending chunks[MAX_CHUNKS];
    int n_chunks = 1, version = 0, creation_order = 0, rc = 0;
    chunks[0].addr = addr;
    chunks[0].len = 0;
    f->n_chunks = 0;
    for (int i = 0; i < n_chunks && !rc; i++)
        rc = check_chunk(f, chunks[i], i == 0, &version, &creation_order, chunks, &n_chunks);
    return rc;
}

/* Opens obj's file for reading its bytes and walks obj's object header,
 * checking its attribute messages. 1 (nothing done) for a file open for
 * writing: btrm's own, whose bytes are not all on disk yet. */
static int walk_object(hid_t obj, const char *where, raw_file *f)
{
    hid_t file = -1, fcpl = -1;
    int rc = 0;
    char path[BTRM_PATH_MAX];
    unsigned intent = 0;
    BTRM_CHECK_H5(file = H5Iget_file_id(obj), where);
    BTRM_CHECK_H5(H5Fget_intent(file, &intent), where);
    if (intent & H5F_ACC_RDWR) {
        rc = 1;
        goto fail;
    }
    H5O_info_t info;
    BTRM_CHECK_H5(H5Oget_info2(obj, &info, H5O_INFO_BASIC), where);
    BTRM_CHECK_H5(fcpl = H5Fget_create_plist(file), where);
    size_t sa = 0, ss = 0;
    hsize_t user_block = 0;
    BTRM_CHECK_H5(H5Pget_sizes(fcpl, &sa, &ss), where);
    BTRM_CHECK_H5(H5Pget_userblock(fcpl, &user_block), where);
    if (sa < 2 || sa > 8 || ss < 2 || ss > 8) {
        rc = refuse(f, "addresses of %zu bytes and lengths of %zu (btrm reads 2 to 8)", sa, ss);
        goto fail;
    }
    f->sa = (unsigned)sa;
    f->ss = (unsigned)ss;
    f->base = user_block;
    ssize_t len = H5Fget_name(file, path, sizeof path);
    if (len < 0 || (size_t)len >= sizeof path) {
        rc = btrm_error_set(BTRM_EIO, "%s: cannot get the file's name", where);
        goto fail;
    }
    struct stat st;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0 || fstat(f->fd, &st) != 0) {
        rc = btrm_error_set(BTRM_EIO, "%s: cannot read %s: %s", where, path, strerror(errno));
        goto fail;
    }
    f->eof = (uint64_t)st.st_size;

    rc = walk_header(f, info.addr);
fail:
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (file >= 0)
        H5Fclose(file);
    return rc;
}

static void raw_close(raw_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f->heap);
    free(f->seen);
    free(f->todo);
    for (int i = 0; i < 3; i++)
        free(f->msg[i]);
}

int btrm_h5raw_check_attrs(hid_t obj, const char *where)
{
    raw_file f = {.fd = -1, .where = where};
    int rc = walk_object(obj, where, &f);
    raw_close(&f);
    return rc < 0 ? rc : 0;
}

/* A variable-length string dataset's values, as its layout stores them:
 * compact (in the layout message) or contiguous (at an address); btrm's
 * string datasets are never chunked. */
static int check_dataset_strings(raw_file *f)
{
    if (!f->msg[SAVED_DTYPE] || !f->msg[SAVED_DSPACE] || !f->msg[SAVED_LAYOUT])
        return refuse(f, "a dataset without a datatype, dataspace or layout message");
    dtype_info dt;
    int rc = check_dtype(f, f->msg[SAVED_DTYPE], f->msg_len[SAVED_DTYPE], 0, "the dataset", &dt);
    if (rc || !dt.vlen_string)
        return rc; /* fixed-length strings: no global heap */
    uint64_t nelem = 0;
    rc = check_dspace(f, f->msg[SAVED_DSPACE], f->msg_len[SAVED_DSPACE], "the dataset",
                      MAX_DATASET_STRINGS, &nelem);
    if (rc)
        return rc;
    uint64_t value_bytes = 4 + f->sa + 4, need = nelem * value_bytes;
    if (dt.size != value_bytes)
        return refuse(f, "the dataset: a variable-length string type of %llu bytes (HDF5 "
                      "writes %llu)", (unsigned long long)dt.size,
                      (unsigned long long)value_bytes);
    const uint8_t *l = f->msg[SAVED_LAYOUT];
    size_t n = f->msg_len[SAVED_LAYOUT];
    if (n < 2 || l[0] < 3 || l[0] > 4)
        return refuse(f, "the dataset: a layout message of version %u", n ? l[0] : 0);
    if (l[1] == 0) { /* compact: size, then the values */
        if (n < 4 || le(l + 2, 2) > n - 4 || le(l + 2, 2) < need)
            return refuse(f, "the dataset: %llu strings need %llu bytes, its compact storage "
                          "holds %llu", (unsigned long long)nelem, (unsigned long long)need,
                          (unsigned long long)(n >= 4 ? le(l + 2, 2) : 0));
        return check_strings(f, l + 4, nelem, "the dataset");
    }
    if (l[1] != 1)
        return refuse(f, "the dataset: strings in a layout of class %u, which btrm's files "
                      "never hold", l[1]);
    if (n < 2 + (size_t)f->sa + f->ss)
        return refuse(f, "the dataset: a contiguous layout message of %zu bytes", n);
    if (undefined_addr(l + 2, f->sa))
        return 0; /* never written: the fill value, empty strings */
    uint64_t addr = le(l + 2, f->sa), size = le(l + 2 + f->sa, f->ss);
    if (size < need)
        return refuse(f, "the dataset: %llu strings need %llu bytes, its storage holds %llu",
                      (unsigned long long)nelem, (unsigned long long)need,
                      (unsigned long long)size);
    uint8_t *values = NULL;
    uint64_t per_read = nelem < STRINGS_PER_READ ? nelem : STRINGS_PER_READ;
    rc = BTRM_MALLOC(values, (size_t)(per_read * value_bytes) + 1);
    if (rc)
        return rc;
    for (uint64_t at = 0; !rc && at < nelem; at += per_read) {
        uint64_t k = nelem - at < per_read ? nelem - at : per_read;
        rc = raw_read(f, addr + at * value_bytes, values, (size_t)(k * value_bytes),
                      "the dataset's strings");
        if (!rc)
            rc = check_strings(f, values, k, "the dataset");
    }
    free(values);
    return rc;
}

int btrm_h5raw_check_strings(hid_t dset, const char *where)
{
    raw_file f = {.fd = -1, .where = where};
    int rc = walk_object(dset, where, &f);
    if (rc == 0)
        rc = check_dataset_strings(&f);
    raw_close(&f);
    return rc < 0 ? rc : 0;
}

/* The superblock (versions 0 to 3) at the signature (byte 0, or 512, 1024,
 * ... after a user block): sizes, K values, the root group. 1: leave the
 * file to libhdf5 (no signature, cut short or truncated: it refuses those
 * itself, with its own message). */
static int read_superblock(raw_file *f, uint64_t size, uint64_t *root, uint64_t *btree,
                           uint64_t *heap, int *cached)
{
    static const uint8_t signature[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };
    uint8_t sb[128];
    uint64_t at = 0;
    for (;;) {
        if (at > size || size - at < sizeof sb)
            return 1;
        if (pread(f->fd, sb, sizeof sb, (off_t)at) != (ssize_t)sizeof sb)
            return 1;
        if (memcmp(sb, signature, 8) == 0)
            break;
        at = at ? 2 * at : 512;
    }
    f->base = at;
    f->eof = size;
    unsigned version = sb[8];
    size_t p;
    if (version <= 1) {
        f->sa = sb[13];
        f->ss = sb[14];
        f->leaf_k = (unsigned)le(sb + 16, 2);
        f->node_k = (unsigned)le(sb + 18, 2);
        p = version == 0 ? 24 : 28;
    } else if (version <= 3) {
        f->sa = sb[9];
        f->ss = sb[10];
        f->leaf_k = 4; /* the defaults: no superblock extension changes them */
        f->node_k = 16;
        p = 12;
    } else {
        return refuse(f, "superblock version %u", version);
    }
    if ((f->sa != 2 && f->sa != 4 && f->sa != 8) || (f->ss != 2 && f->ss != 4 && f->ss != 8))
        return refuse(f, "addresses of %u bytes and lengths of %u (btrm reads 2, 4 or 8)",
                      f->sa, f->ss);
    if (f->leaf_k == 0 || f->node_k == 0)
        return refuse(f, "a group B-tree K of 0");
    /* base, free space or extension, end of file, driver info or root */
    uint64_t ext = le(sb + p + f->sa, f->sa), stored_eof = le(sb + p + 2 * f->sa, f->sa);
    int ext_defined = !undefined_addr(sb + p + f->sa, f->sa);
    if (stored_eof > size - at)
        return 1; /* truncated: libhdf5 says so */
    if (version >= 2) {
        if (ext_defined)
            return refuse(f, "a superblock extension at address %llu (file creation settings "
                          "btrm's files never use)", (unsigned long long)ext);
        *root = le(sb + p + 3 * f->sa, f->sa);
        *cached = 0;
        return 0;
    }
    if (!undefined_addr(sb + p + 3 * f->sa, f->sa))
        return refuse(f, "a driver information block (a family or multi file), which btrm "
                      "does not read");
    /* the root group's symbol table entry: name offset, header, cache type, scratch */
    const uint8_t *e = sb + p + 4 * f->sa;
    *root = le(e + f->ss, f->sa);
    unsigned cache = (unsigned)le(e + f->ss + f->sa, 4);
    if (cache > 1)
        return refuse(f, "the root group's entry has cache type %u", cache);
    *cached = cache == 1;
    *btree = le(e + f->ss + f->sa + 8, f->sa);
    *heap = le(e + f->ss + 2 * f->sa + 8, f->sa);
    return 0;
}

int btrm_h5raw_check_file(const char *path)
{
    raw_file f = {.fd = -1, .where = path, .whole_file = 1};
    struct stat st;
    int rc = 0;
    f.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f.fd < 0 || fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto done; /* libhdf5 says why it cannot open it */
    uint64_t root = 0, btree = 0, heap = 0;
    int cached = 0;
    rc = read_superblock(&f, (uint64_t)st.st_size, &root, &btree, &heap, &cached);
    if (rc)
        goto done;
    rc = push_object(&f, root);
    if (!rc && cached) /* libhdf5 checks the cached B-tree and heap on open */
        rc = check_symbol_table(&f, btree, heap);
    while (!rc && f.n_todo > 0)
        rc = walk_header(&f, f.todo[--f.n_todo]);
done:
    raw_close(&f);
    return rc < 0 ? rc : 0;
}
