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
    MSG_DATASPACE = 0x01,
    MSG_DATATYPE = 0x03,
    MSG_LAYOUT = 0x08,
    MSG_ATTRIBUTE = 0x0C,
    MSG_CONTINUATION = 0x10,
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
                          "HDF5 attribute structures before libhdf5 reads them)",
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
        if (dim > max_values || count * dim > max_values)
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
        if (type == MSG_ATTRIBUTE) {
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

    pending chunks[MAX_CHUNKS];
    int n_chunks = 1, version = 0, creation_order = 0;
    chunks[0].addr = info.addr;
    chunks[0].len = 0;
    for (int i = 0; i < n_chunks && !rc; i++)
        rc = check_chunk(f, chunks[i], i == 0, &version, &creation_order, chunks, &n_chunks);
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
