/* test-h5raw.c: btrm's check of HDF5 attribute structures in a file's bytes
 * (src/io/h5raw.h), before libhdf5 decodes them. Files written by libhdf5
 * (object header versions 1 and 2, one to forty attributes, continuation
 * chunks) pass and read back; each damage that crashed or hung libhdf5
 * 1.10.8 under fuzzing (docs/reliability.md) is made by hand in a good file
 * and refused with a message that names it, before libhdf5 reads it. */
#include "tap.h"
#include "mpi_fixture.h"

#include "embedfile.h"
#include "h5raw.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *in_dir(const char *name)
{
    static char buf[4][512];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, 512, "%s/%s", dir, name);
    return out;
}

/* A file whose root holds btrm_format (a variable-length string), dim (an
 * integer), hist (3 doubles) and n_more attributes a0.. (integers); latest:
 * the newest format (object header version 2, attribute messages 3), else
 * libhdf5's default (version 1, as btrm writes). */
static void make_file(const char *path, int latest, int n_more)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (latest)
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    const double hist[3] = {1.5, 2.5, 3.5};
    int rc = btrm_h5_write_attr_string(root, "btrm_format", "pairs-v1");
    rc = rc ? rc : btrm_h5_write_attr_int(root, "dim", 64);
    rc = rc ? rc : btrm_h5_write_attr_doubles(root, "hist", hist, 3);
    for (int i = 0; i < n_more && !rc; i++) {
        char name[16];
        snprintf(name, sizeof name, "a%d", i);
        rc = btrm_h5_write_attr_int(root, name, i);
    }
    if (rc)
        diag("writing %s: %s", path, btrm_error_msg());
    H5Gclose(root);
    H5Fclose(file);
    H5Pclose(fapl);
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*size);
    if (fread(b, 1, *size, f) != *size)
        *size = 0;
    fclose(f);
    return b;
}

static void spill(const char *path, const unsigned char *b, size_t size)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, size, f);
    fclose(f);
}

static size_t find(const unsigned char *b, size_t size, const void *what, size_t n)
{
    for (size_t i = 0; i + n <= size; i++)
        if (!memcmp(b + i, what, n))
            return i;
    return SIZE_MAX;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The check on the root group of path: 0 or the error; msg gets the message. */
static int check(const char *path, char *msg, size_t msg_size)
{
    btrm_error_clear();
    hid_t file = btrm_h5_open_read(path);
    if (file < 0) {
        snprintf(msg, msg_size, "libhdf5 cannot open it");
        return -100;
    }
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    int rc = btrm_h5raw_check_attrs(root, "T: /");
    snprintf(msg, msg_size, "%s", rc ? btrm_error_msg() : "");
    H5Gclose(root);
    H5Fclose(file);
    return rc;
}

static void expect_refused(const char *path, const char *needle, const char *what)
{
    char msg[1024];
    int rc = check(path, msg, sizeof msg);
    ok(rc == BTRM_EDATA && strstr(msg, needle) != NULL, "%s: refused (\"%s\")", what, needle);
    if (rc != BTRM_EDATA || !strstr(msg, needle))
        diag("rc %d: %s", rc, msg);
}

static void test_good_files(void)
{
    const int versions[2] = {0, 1};
    const int counts[3] = {0, 5, 40};
    for (int v = 0; v < 2; v++)
        for (int c = 0; c < 3 - v; c++) { /* latest: more than 8 are dense (test_dense) */
            const char *path = in_dir("good.h5");
            make_file(path, versions[v], counts[c]);
            char msg[1024];
            int rc = check(path, msg, sizeof msg);
            ok(rc == 0, "%s format, %d attributes: passes", versions[v] ? "latest" : "default",
               3 + counts[c]);
            if (rc)
                diag("%s", msg);
            hid_t file = btrm_h5_open_read(path);
            hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
            char value[32] = "";
            int dim = 0, last = -1;
            int rr = btrm_h5_read_attr_string(root, "btrm_format", value, sizeof value);
            rr = rr ? rr : btrm_h5_read_attr_int(root, "dim", &dim);
            if (counts[c] && !rr) {
                char name[16];
                snprintf(name, sizeof name, "a%d", counts[c] - 1);
                rr = btrm_h5_read_attr_int(root, name, &last);
            }
            ok(rr == 0 && strcmp(value, "pairs-v1") == 0 && dim == 64 &&
                   (counts[c] == 0 || last == counts[c] - 1),
               "  and reads back through h5util");
            H5Gclose(root);
            H5Fclose(file);
        }
}

/* Damage in the global heap: what H5HG_read and the heap's decoder trust. */
static void test_heap(void)
{
    const char *good = in_dir("heap.h5"), *bad = in_dir("heap-bad.h5");
    make_file(good, 0, 0);
    size_t size;
    unsigned char *b = slurp(good, &size);
    size_t gcol = find(b, size, "GCOL", 4);
    ok(gcol != SIZE_MAX, "the file has a global heap collection");
    if (gcol == SIZE_MAX) {
        free(b);
        return;
    }
    /* object 1 (the string "pairs-v1", 8 bytes) at +16: index, refs, reserved, size */
    unsigned char *obj = b + gcol + 16;
    ok(obj[0] == 1 && obj[8] == 8, "object 1 holds the 8-byte string");
    unsigned char *save = malloc(size);
    memcpy(save, b, size);

    put_le(obj + 8, (uint64_t)1 << 40, 8);
    spill(bad, b, size);
    expect_refused(bad, "claims 1099511627776 bytes", "a heap object larger than its collection");

    memcpy(b, save, size);
    put_le(obj + 16 + 8 + 8, 0, 8); /* the free-space object after it: 0 bytes (a hang) */
    spill(bad, b, size);
    expect_refused(bad, "object 0 at byte 40", "free space of 0 bytes (libhdf5 loops)");

    memcpy(b, save, size);
    put_le(obj, 7, 2);
    spill(bad, b, size);
    expect_refused(bad, "points to object 1 of the global heap collection",
                   "a string pointing to an object that is not there");

    memcpy(b, save, size);
    put_le(obj + 8, 7, 8);
    spill(bad, b, size);
    expect_refused(bad, "string of 8 bytes points to a global heap object of 7 bytes",
                   "a heap object shorter than its string");

    memcpy(b, save, size);
    memcpy(b + gcol, "GCOX", 4);
    spill(bad, b, size);
    expect_refused(bad, "which holds no global heap collection", "a collection without GCOL");

    memcpy(b, save, size);
    put_le(b + gcol + 8, size, 8);
    spill(bad, b, size);
    expect_refused(bad, "lies past the end of the file", "a collection past the end of the file");
    free(save);
    free(b);
}

/* Damage in an attribute message: what H5Aexists and H5Aread trust. */
static void test_messages(void)
{
    const char *good = in_dir("msg.h5"), *bad = in_dir("msg-bad.h5");
    make_file(good, 0, 0);
    size_t size;
    unsigned char *b = slurp(good, &size);
    unsigned char *save = malloc(size);
    memcpy(save, b, size);
    /* version 1: version, reserved, name size, datatype size, dataspace size, name */
    size_t name = find(b, size, "btrm_format", 12);
    size_t dim = find(b, size, "dim", 4);
    ok(name != SIZE_MAX && dim != SIZE_MAX && b[name - 8] == 1 && b[name - 6] == 12,
       "btrm_format is a version 1 attribute message");
    if (name == SIZE_MAX || dim == SIZE_MAX) {
        free(save);
        free(b);
        return;
    }
    b[name + 11] = 'X';
    spill(bad, b, size);
    expect_refused(bad, "not one NUL-terminated string", "an attribute name without its NUL");

    memcpy(b, save, size);
    put_le(b + name - 6, 0xffff, 2);
    spill(bad, b, size);
    expect_refused(bad, "whose name, datatype and dataspace need", "a name longer than its message");

    memcpy(b, save, size);
    unsigned char *dt = b + name + 16; /* the name padded to 8 */
    ok((dt[0] & 0x0f) == 9 && dt[4] == 16, "btrm_format's datatype is a 16-byte vlen string");
    dt[4] = 15;
    spill(bad, b, size);
    expect_refused(bad, "a variable-length string type of 15 bytes",
                   "a vlen string type of 15 bytes (H5A__read overflows)");

    memcpy(b, save, size);
    dt = b + name + 16;
    dt[0] = (unsigned char)((dt[0] & 0xf0) | 6);
    spill(bad, b, size);
    expect_refused(bad, "a datatype of class 6", "a compound datatype");

    memcpy(b, save, size);
    dt = b + dim + 8; /* "dim" padded to 8: an integer type of 12 bytes, padded to 16 */
    ok((dt[0] & 0x0f) == 0, "dim's datatype is an integer");
    put_le(dt + 10, 200, 2);
    spill(bad, b, size);
    expect_refused(bad, "an integer of 4 bytes with 200 bits", "an integer wider than its size");

    memcpy(b, save, size);
    unsigned char *ds = b + dim + 8 + 16; /* a scalar, version 1 */
    ok(ds[0] == 1 && ds[1] == 0, "dim's dataspace is a version 1 scalar");
    ds[1] = 1;
    spill(bad, b, size);
    expect_refused(bad, "a dataspace of rank 1 needs 16 bytes",
                   "a dataspace whose dimensions run past it");

    memcpy(b, save, size);
    put_le(b + dim - 8 + 4, 4, 2); /* dim's datatype 4 bytes: the value runs past */
    spill(bad, b, size);
    expect_refused(bad, "datatype is 4 bytes", "a datatype cut short");
    free(save);
    free(b);
}

/* A continuation that points back into the header: libhdf5 follows it. */
static void test_continuation_loop(void)
{
    const char *good = in_dir("cont.h5"), *bad = in_dir("cont-bad.h5");
    make_file(good, 0, 40);
    hid_t file = btrm_h5_open_read(good);
    H5O_info_t info;
    H5Oget_info2(file, &info, H5O_INFO_BASIC);
    H5Fclose(file);
    size_t size;
    unsigned char *b = slurp(good, &size);
    /* version 1 header: 16-byte prefix, then messages: type, size, flags, 3 reserved */
    size_t at = (size_t)info.addr + 16, end = at + (size_t)b[info.addr + 8] +
                                                  ((size_t)b[info.addr + 9] << 8);
    size_t cont = SIZE_MAX;
    while (at + 8 <= end && at + 8 <= size) {
        unsigned type = b[at] | b[at + 1] << 8, len = b[at + 2] | b[at + 3] << 8;
        if (type == 0x10)
            cont = at + 8;
        at += 8 + len;
    }
    ok(cont != SIZE_MAX, "40 attributes need a header continuation");
    if (cont != SIZE_MAX) {
        put_le(b + cont, info.addr, 8);
        spill(bad, b, size);
        /* libhdf5 1.10 reads every chunk of a header when it opens the object and
         * refuses this one itself; btrm's own check stands behind it */
        char msg[1024];
        int rc = check(bad, msg, sizeof msg);
        ok(rc == -100 || (rc == BTRM_EDATA && strstr(msg, "overlaps the one at")),
           "a continuation back into the header: refused, no hang (%s)", msg);
        /* and a name damaged in the continuation chunk is found there */
        unsigned char *saved = slurp(good, &size);
        size_t a39 = find(saved, size, "a39", 4);
        saved[a39 + 3] = 'X';
        spill(bad, saved, size);
        expect_refused(bad, "not one NUL-terminated string",
                       "an attribute in a continuation chunk");
        free(saved);
    }
    free(b);
}

/* Dense attribute storage (a fractal heap) is refused: btrm never writes it. */
static void test_dense(void)
{
    const char *path = in_dir("dense.h5");
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_attr_phase_change(gcpl, 0, 0);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    hid_t g = H5Gcreate2(file, "g", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    btrm_h5_write_attr_int(g, "x", 1);
    H5Gclose(g);
    H5Fclose(file);
    H5Pclose(gcpl);
    H5Pclose(fapl);
    file = btrm_h5_open_read(path);
    g = H5Gopen2(file, "g", H5P_DEFAULT);
    int rc = btrm_h5raw_check_attrs(g, "T: /g");
    ok(rc == BTRM_EDATA && strstr(btrm_error_msg(), "dense storage"),
       "attributes in dense storage: refused");
    int x = 0;
    ok(btrm_h5_read_attr_int(g, "x", &x) == BTRM_EDATA, "  and h5util does not read them");
    H5Gclose(g);
    H5Fclose(file);
}

/* A string dataset (/subsets of a pair store): its global heap objects are
 * checked before H5Dread reads them. */
static void test_string_dataset(void)
{
    const char *good = in_dir("strings.h5"), *bad = in_dir("strings-bad.h5");
    hid_t file = H5Fcreate(good, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const char *const names[3] = { "math", "code-review", "chat" };
    int rc = btrm_h5_write_strings(file, "subsets", names, 3);
    H5Fclose(file);
    char **got = NULL;
    size_t n = 0;
    file = btrm_h5_open_read(good);
    hid_t dset = H5Dopen2(file, "subsets", H5P_DEFAULT);
    rc = rc ? rc : btrm_h5_read_strings(dset, &got, &n);
    ok(rc == 0 && n == 3 && !strcmp(got[1], "code-review"),
       "a string dataset passes and reads back");
    btrm_h5_free_strings(got, n);
    H5Dclose(dset);
    H5Fclose(file);

    size_t size;
    unsigned char *b = slurp(good, &size);
    size_t obj = find(b, size, "code-review", 11);
    ok(obj != SIZE_MAX && obj >= 16, "the strings are in the global heap");
    if (obj == SIZE_MAX || obj < 16) {
        free(b);
        return;
    }
    put_le(b + obj - 8, 12, 8); /* its object: 12 bytes for a string of 11 */
    spill(bad, b, size);
    file = btrm_h5_open_read(bad);
    dset = H5Dopen2(file, "subsets", H5P_DEFAULT);
    got = NULL;
    rc = btrm_h5_read_strings(dset, &got, &n);
    ok(rc == BTRM_EDATA && strstr(btrm_error_msg(), "/subsets: the dataset: its string of 11 "
                                  "bytes points to a global heap object of 12 bytes") && !got,
       "a heap object longer than its string: refused before H5Dread (%s)", btrm_error_msg());
    H5Dclose(dset);
    H5Fclose(file);

    /* /texts, which `btrm embed` reads in batches: checked when it opens */
    hid_t out = H5Fcreate(good, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    rc = btrm_h5_write_strings(out, "texts", names, 3);
    H5Fclose(out);
    btrm_texts_reader *r = NULL;
    int64_t rows = 0;
    rc = rc ? rc : btrm_texts_open(&r, good, 2, &rows);
    ok(rc == 0 && rows == 3, "/texts opens for embedding");
    btrm_texts_close(r);
    free(b);
    b = slurp(good, &size);
    obj = find(b, size, "code-review", 11);
    r = NULL;
    if (obj != SIZE_MAX && obj >= 16) {
        put_le(b + obj - 8, 1 << 20, 8);
        spill(bad, b, size);
        rc = btrm_texts_open(&r, bad, 2, &rows);
    }
    ok(rc == BTRM_EDATA && strstr(btrm_error_msg(), "/texts: the dataset: object") && !r,
       "/texts with a heap object past its collection: refused when it opens (%s)",
       btrm_error_msg());
    btrm_texts_close(r);
    free(b);
}

/* btrm_h5_check_stored: a contiguous dataset's shape must lie in the file. */
static void test_stored(void)
{
    const char *path = in_dir("stored.h5");
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 4096;
    hid_t space = H5Screate_simple(1, &n, NULL);
    float *x = calloc(n, sizeof *x);
    hid_t d = H5Dcreate2(file, "written", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Dclose(d);
    H5Dclose(H5Dcreate2(file, "never", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                        H5P_DEFAULT));
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk = 512;
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_deflate(dcpl, 6);
    d = H5Dcreate2(file, "deflated", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
    free(x);

    file = btrm_h5_open_read(path);
    d = H5Dopen2(file, "written", H5P_DEFAULT);
    ok(btrm_h5_check_stored(d, path, "/written", n, 4) == 0, "a written dataset is in the file");
    int rc = btrm_h5_check_stored(d, path, "/written", n * 1000, 4);
    ok(rc == BTRM_EDATA && strstr(btrm_error_msg(), "/written: its shape holds 4096000 values "
                                  "of 4 bytes (16384000 bytes), which the file"),
       "a shape larger than the file: refused (%s)", btrm_error_msg());
    H5Dclose(d);
    d = H5Dopen2(file, "never", H5P_DEFAULT);
    rc = btrm_h5_check_stored(d, path, "/never", n, 4);
    ok(rc == BTRM_EDATA && strstr(btrm_error_msg(), "no values were ever written"),
       "a dataset never written: refused");
    H5Dclose(d);
    d = H5Dopen2(file, "deflated", H5P_DEFAULT);
    ok(btrm_h5_check_stored(d, path, "/deflated", n, 4) == 0,
       "a compressed dataset (stored smaller than its shape) passes");
    H5Dclose(d);
    H5Fclose(file);
}

/* ------------------------------------------------------------------------ */
/* btrm_h5raw_check_file: the whole file, before H5Fopen */

enum { ENUM_NO = 1, ENUM_YES = 2 };
static const int32_t FILL_MARK = 0x5aa5f00f, COMPACT_MARK = 0x3cc3e11e;

/* A file with every kind of object and datatype btrm's users might write:
 * groups nested and linked back, 300 links in one group (a B-tree of two
 * levels in the default format; latest: 8 links, no dense storage),
 * contiguous, compact and chunked datasets (deflate, shuffle, fletcher32),
 * a fill value, compound, array, enum, opaque, string and sequence types,
 * a soft link. userblock: 512 bytes before the superblock. */
static void make_kinds(const char *path, int latest, int userblock)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (latest)
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    if (userblock)
        H5Pset_userblock(fcpl, 512);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    hid_t g = H5Gcreate2(file, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t h = H5Gcreate2(g, "h", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Lcreate_hard(file, "/", h, "up", H5P_DEFAULT, H5P_DEFAULT);
    H5Lcreate_soft("/g/h/nowhere", g, "soft", H5P_DEFAULT, H5P_DEFAULT);
    hid_t many = H5Gcreate2(file, "many", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    for (int i = 0; i < (latest ? 6 : 300); i++) {
        char name[32];
        snprintf(name, sizeof name, "link-%03d", i);
        H5Lcreate_hard(file, "/g", many, name, H5P_DEFAULT, H5P_DEFAULT);
    }
    hsize_t n = 64;
    hid_t space = H5Screate_simple(1, &n, NULL), scalar = H5Screate(H5S_SCALAR);
    int32_t v[64];
    for (int i = 0; i < 64; i++)
        v[i] = i == 5 ? COMPACT_MARK : i;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_fill_value(dcpl, H5T_NATIVE_INT32, &FILL_MARK);
    hid_t d = H5Dcreate2(g, "contiguous", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Pclose(dcpl);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_layout(dcpl, H5D_COMPACT);
    d = H5Dcreate2(file, "compact", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Pclose(dcpl);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk = 16;
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 6);
    H5Pset_fletcher32(dcpl);
    d = H5Dcreate2(file, "chunked", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Pclose(dcpl);

    hsize_t three = 3;
    hid_t arr = H5Tarray_create2(H5T_IEEE_F64LE, 1, &three);
    hid_t cmp = H5Tcreate(H5T_COMPOUND, 4 + 24);
    H5Tinsert(cmp, "compound_a", 0, H5T_STD_I32LE);
    H5Tinsert(cmp, "compound_b", 4, arr);
    hid_t en = H5Tenum_create(H5T_STD_I8LE);
    signed char e0 = ENUM_NO, e1 = ENUM_YES;
    H5Tenum_insert(en, "enum_no_member", &e0);
    H5Tenum_insert(en, "enum_yes_member", &e1);
    hid_t op = H5Tcreate(H5T_OPAQUE, 4);
    H5Tset_tag(op, "opaque-tag");
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 12);
    hid_t seq = H5Tvlen_create(H5T_STD_I16LE);
    const hid_t types[5] = { cmp, en, op, str, seq };
    const char *names[5] = { "compound", "enum", "opaque", "string", "sequence" };
    for (int i = 0; i < 5; i++) {
        d = H5Dcreate2(g, names[i], types[i], scalar, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dclose(d);
        H5Tclose(types[i]);
    }
    H5Tclose(arr);
    const char *const texts[2] = { "chat", "code" };
    btrm_h5_write_strings(h, "texts", texts, 2);
    H5Sclose(space);
    H5Sclose(scalar);
    H5Gclose(many);
    H5Gclose(h);
    H5Gclose(g);
    H5Fclose(file);
    H5Pclose(fcpl);
    H5Pclose(fapl);
}

static void expect_file_refused(const char *path, const char *needle, const char *what)
{
    btrm_error_clear();
    int rc = btrm_h5raw_check_file(path);
    ok(rc == BTRM_EDATA && strstr(btrm_error_msg(), needle) != NULL, "%s: refused (\"%s\")",
       what, needle);
    if (rc != BTRM_EDATA || !strstr(btrm_error_msg(), needle))
        diag("rc %d: %s", rc, btrm_error_msg());
}

/* b with value (width bytes, little-endian) written at byte at, into
 * kinds-bad.h5: refused with needle in the message. */
static void expect_damage_refused(const unsigned char *b, size_t size, size_t at, uint64_t value,
                                  int width, const char *needle, const char *what)
{
    const char *bad = in_dir("kinds-bad.h5");
    unsigned char *c = malloc(size);
    memcpy(c, b, size);
    put_le(c + at, value, width);
    spill(bad, c, size);
    free(c);
    expect_file_refused(bad, needle, what);
}

/* The datatype message (version 1 header) that holds the encoding at enc:
 * the end of its data. */
static size_t message_end(const unsigned char *b, size_t enc)
{
    return enc + (size_t)(b[enc - 6] | b[enc - 5] << 8);
}

static void test_whole_file(void)
{
    const char *good = in_dir("kinds.h5"), *bad = in_dir("kinds-bad.h5");
    for (int latest = 0; latest < 2; latest++)
        for (int userblock = 0; userblock < 2; userblock++) {
            make_kinds(good, latest, userblock);
            btrm_error_clear();
            int rc = btrm_h5raw_check_file(good);
            hid_t file = rc ? -1 : btrm_h5_open_read(good);
            hid_t d = file >= 0 ? H5Dopen2(file, "/many/link-005/h/up/compact", H5P_DEFAULT) : -1;
            int32_t v[64] = { 0 };
            herr_t read = d >= 0 ? H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v)
                                 : -1;
            ok(rc == 0 && read >= 0 && v[5] == COMPACT_MARK,
               "%s format%s, every kind of object and type: passes, and reads through a "
               "link cycle", latest ? "latest" : "default", userblock ? ", a user block" : "");
            if (rc)
                diag("%s", btrm_error_msg());
            btrm_h5_close(d);
            btrm_h5_close(file);
        }
    ok(btrm_h5raw_check_file(in_dir("no-such-file.h5")) == 0,
       "a missing file is left to libhdf5 (which says so)");

    make_kinds(good, 0, 0);
    size_t size;
    unsigned char *b = slurp(good, &size), *c = malloc(size);

    /* the three structures that crashed libhdf5 1.10.8 under fuzzing */
    size_t heap = find(b, size, "HEAP", 4);
    expect_damage_refused(b, size, heap + 8, UINT64_MAX - 1, 8,
                          "claims 18446744073709551614 bytes", "a local heap of 2^64 - 2 "
                          "bytes (memcpy of a negative size in H5Lexists)");
    btrm_error_clear();
    ok(btrm_h5_open_read(bad) < 0 && strstr(btrm_error_msg(), "local heap"),
       "  btrm_h5_open_read refuses it before H5Fopen, saying why");

    size_t yes = find(b, size, "enum_yes_member", 15);
    size_t enc = find(b, size, "enum_no_member", 14) - 20; /* header, base type */
    memcpy(c, b, size);
    memset(c + yes + 15, 'x', message_end(c, enc) - yes - 15);
    spill(bad, c, size);
    expect_file_refused(bad, "member 1 of an enum datatype: its name runs past the message",
                        "an enum member's name without its NUL (heap-buffer-overflow in "
                        "H5Dopen2)");
    free(b);
    make_file(good, 0, 40); /* the root header continues in a second chunk */
    b = slurp(good, &size);
    free(c);
    c = malloc(size);
    memcpy(c, b, size);
    const unsigned char cont_head[4] = { 0x10, 0, 16, 0 };
    size_t cont = find(c, size, cont_head, 4);
    memset(c + cont + 8, 0xff, 8);
    spill(bad, c, size);
    expect_file_refused(bad, "an object header chunk at address 18446744073709551615",
                        "the root header continued at the undefined address (SEGV in "
                        "H5Fopen)");
    free(b);
    free(c);

    /* the other structures the check reads */
    make_kinds(good, 0, 0);
    b = slurp(good, &size);
    size_t snod = find(b, size, "SNOD", 4), tree = find(b, size, "TREE", 4);
    expect_damage_refused(b, size, snod + 8, 1ull << 40, 8, "a link name at offset 1099511627776",
                          "a link name past its heap");
    expect_damage_refused(b, size, tree + 6, 1000, 2, "holds no group B-tree node",
                          "a B-tree node of 1000 entries");
    expect_damage_refused(b, size, tree + 5, 200, 1, "holds no group B-tree node",
                          "a B-tree node of level 200");
    expect_damage_refused(b, size, snod + 6, 1000, 2, "holds no symbol table node",
                          "a symbol table node of 1000 entries");
    size_t deflate = find(b, size, "deflate", 8); /* with its NUL */
    expect_damage_refused(b, size, deflate + 7, 'X', 1, "a name of 8 bytes that runs past the "
                          "message or has no NUL", "a filter name without its NUL");
    size_t fill = find(b, size, &FILL_MARK, 4);
    expect_damage_refused(b, size, fill - 4, 1000, 4, "a fill value of 1000 bytes runs past",
                          "a fill value past its message");
    size_t compact = SIZE_MAX; /* the layout message: version 3, compact, 256 bytes */
    for (size_t at = 24; at + 4 <= size && compact == SIZE_MAX; at++)
        if (!memcmp(b + at, &COMPACT_MARK, 4) && b[at - 24] == 3 && b[at - 23] == 0 &&
            b[at - 22] == 0 && b[at - 21] == 1)
            compact = at - 20;
    expect_damage_refused(b, size, compact - 2, 60000, 2, "compact data of 60000 bytes",
                          "compact data past the layout message");
    size_t tag = find(b, size, "opaque-tag", 11);
    expect_damage_refused(b, size, tag - 7, 248, 1, "an opaque datatype whose tag of 248 "
                          "bytes runs past", "an opaque tag longer than its message");
    size_t member = find(b, size, "compound_b", 11);
    /* a group B-tree of 31 levels whose node has both children at one node
     * below: 2^31 paths to one symbol table node (libhdf5 would iterate them
     * all); the walk stops at its budget */
    {
        enum { LEVELS = 31, NODE = 8 + 16 + 32 * 8 + 33 * 8 }; /* K = 16, 8-byte fields */
        unsigned char *big = malloc(size + LEVELS * NODE);
        memcpy(big, b, size);
        unsigned char stab[16];
        memcpy(stab, b + 0x50, 16); /* the root's B-tree and heap, as its header says too */
        for (int l = 0; l < LEVELS; l++) {
            unsigned char *node = big + size + (size_t)l * NODE;
            memset(node, 0, NODE);
            memcpy(node, "TREE", 4);
            node[5] = (unsigned char)(LEVELS - 1 - l);
            put_le(node + 6, 2, 2);
            memset(node + 8, 0xff, 16); /* no siblings */
            uint64_t child = l + 1 < LEVELS ? size + (uint64_t)(l + 1) * NODE : snod;
            put_le(node + 24 + 8, child, 8);      /* key 0 (offset 0: ""), child 0 */
            put_le(node + 24 + 16 + 8, child, 8); /* key 1, child 1; key 2 */
        }
        for (size_t at = 0; at + 16 <= size; at++)
            if (!memcmp(big + at, stab, 16))
                put_le(big + at, size, 8);
        spill(bad, big, size + LEVELS * NODE);
        free(big);
        alarm(60); /* without the budget, the walk would take years: fail, not hang */
        expect_file_refused(bad, "structures shared many times over",
                            "a B-tree of 31 levels that reaches one node 2^31 times");
        alarm(0);
    }
    size_t array = member + 16; /* the member's type: an array (class 10) after its offset */
    while (array < member + 48 && (b[array] & 0x0f) != 10)
        array++;
    expect_damage_refused(b, size, array + 8, 0, 1, "an array datatype of rank 0",
                          "a compound member's array type of rank 0");
    free(b);

    /* what btrm does not read: refused, and named */
    hid_t file = H5Fcreate(bad, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_external(dcpl, "elsewhere.bin", 0, 256);
    hsize_t n = 64;
    hid_t space = H5Screate_simple(1, &n, NULL);
    H5Dclose(H5Dcreate2(file, "x", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Pclose(dcpl);
    H5Fclose(file);
    expect_file_refused(bad, "stored in external files", "a dataset in external files");
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    file = H5Fcreate(bad, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    for (int i = 0; i < 9; i++) {
        char name[16];
        snprintf(name, sizeof name, "d%d", i);
        H5Dclose(H5Dcreate2(file, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                            H5P_DEFAULT));
    }
    H5Fclose(file);
    expect_file_refused(bad, "links in dense storage", "latest format, 9 links in a group");
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_shared_mesg_nindexes(fcpl, 1);
    H5Pset_shared_mesg_index(fcpl, 0, H5O_SHMESG_DTYPE_FLAG, 16);
    file = H5Fcreate(bad, H5F_ACC_TRUNC, fcpl, fapl);
    H5Fclose(file);
    expect_file_refused(bad, "a superblock extension", "shared object header messages");
    H5Pclose(fcpl);
    H5Pclose(fapl);
    H5Sclose(space);
}

/* A file open for writing is btrm's own: nothing is read from disk. */
static void test_writing(void)
{
    const char *path = in_dir("rw.h5");
    make_file(path, 0, 0);
    hid_t fapl = btrm_h5_fapl();
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    btrm_h5_write_attr_int(root, "late", 3);
    int late = 0;
    ok(btrm_h5_read_attr_int(root, "late", &late) == 0 && late == 3,
       "an attribute not yet on disk reads in a file open for writing");
    H5Gclose(root);
    H5Fclose(file);
    H5Pclose(fapl);
}

int main(int argc, char **argv)
{
    test_mpi_begin(&argc, &argv, "h5raw");
    if (world.rank == 0) {
        test_good_files();
        test_whole_file();
        test_heap();
        test_messages();
        test_continuation_loop();
        test_dense();
        test_string_dataset();
        test_stored();
        test_writing();
    }
    return test_mpi_end();
}
