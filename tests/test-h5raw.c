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
