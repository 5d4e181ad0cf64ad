/* test-pairs.c: the io layer: pair stores (pairs-v1), model files (model-v3
 * and the model-v2 and model-v1 they still read), how features were made (the record in
 * both, feature_record.h),
 * IEEE half conversions and `btrm synth`.
 *
 * Runs as an MPI singleton in `make check`; under `mpirun -np P` the
 * collective opens run on every rank (the features then live in a shared
 * window written by several ranks). Files are written by rank 0 only. Rank 0
 * prints the TAP stream; the other ranks' checks are counted and reported by
 * rank 0 at the end. */
#include "tap.h"
#include "mpi_fixture.h"

#include "cli.h"
#include "comm.h"
#include "error.h"
#include "feature_record.h"
#include "fileutil.h"
#include "h5util.h"
#include "head.h"
#include "modelfile.h"
#include "pairs.h"
#include "rng.h"
#include "synth.h"

#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static const char *in_dir(const char *name)
{
    static char buf[8][512];
    static int next;
    char *out = buf[next++ % 8];
    snprintf(out, 512, "%s/%s", dir, name);
    return out;
}

static int read_file(const char *path, unsigned char **bytes, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *bytes = malloc((size_t)n + 1);
    *size = fread(*bytes, 1, (size_t)n, f);
    fclose(f);
    return *size == (size_t)n ? 0 : -1;
}

static int same_bytes(const char *a, const char *b)
{
    unsigned char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = read_file(a, &x, &nx) == 0 && read_file(b, &y, &ny) == 0 && nx == ny &&
               memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

static uint32_t crc_of_file(const char *path)
{
    unsigned char *x = NULL;
    size_t n = 0;
    uint32_t crc = 0;
    if (read_file(path, &x, &n) == 0)
        crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), x, (uInt)n);
    free(x);
    return crc;
}

/* Number of temporary files (".*.tmp.*") left in the test directory. */
static int leftover_tmp_files(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] == '.' && strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void sync_ranks(void) { MPI_Barrier(world.comm); }

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ------------------------------------------------------------------------ */
/* A small valid store: 12 rows of dim 5, 5 pairs over rows 0..9 (rows 10
 * and 11 unused), every optional dataset present. */

enum { ROWS = 12, DIM = 5, PAIRS = 5 };

typedef struct store {
    float features[ROWS * DIM];
    int64_t chosen[PAIRS], rejected[PAIRS];
    int32_t category[PAIRS], subset[PAIRS];
    float margin[PAIRS];
    btrm_pairs_data data;
} store;

static const char *const texts[ROWS] = { "response 0", "réponse 1", "2", "3", "4", "5",
                                          "6", "7", "8", "9", "unused 10", "unused 11" };
static const char *const ids[PAIRS] = { "p0", "p1", "p2", "p3", "p4" };
static const char *const categories[2] = { "fine", "coarse" };
static const char *const subsets[3] = { "alpha", "beta", "gamma" };

static void store_init(store *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < ROWS * DIM; i++)
        s->features[i] = (float)(i % 7) * 0.37f - (float)(i / 7) * 1.25f;
    for (int i = 0; i < PAIRS; i++) {
        s->chosen[i] = 2 * i + (i % 2);
        s->rejected[i] = 2 * i + 1 - (i % 2);
        s->category[i] = i % 2;
        s->subset[i] = (i * 2) % 3;
        s->margin[i] = 0.5f * (float)i;
    }
    s->data = (btrm_pairs_data){
        .n_pairs = PAIRS, .n_rows = ROWS, .dim = DIM, .features = s->features,
        .backbone = "test-backbone", .texts = texts, .chosen = s->chosen,
        .rejected = s->rejected, .category = s->category, .categories = categories,
        .n_categories = 2, .subset = s->subset, .subsets = subsets, .n_subsets = 3,
        .margin = s->margin, .ids = ids, .provenance = "test-pairs",
    };
}

/* Rank 0 writes; every rank waits for the file. */
static int write_store(const char *path, const btrm_pairs_data *d)
{
    int rc = 0;
    if (world.rank == 0)
        rc = btrm_pairs_write(path, d);
    MPI_Bcast(&rc, 1, MPI_INT, 0, world.comm);
    return rc;
}

/* row-major float copy of every feature row of an open store */
static void features_as_f32(const btrm_pairs *p, float *out)
{
    for (int64_t r = 0; r < p->n_rows; r++)
        btrm_pairs_feature_row(p, r, out + (size_t)r * p->dim, BTRM_DTYPE_F32);
}

static void test_round_trip(int dtype)
{
    store s;
    store_init(&s);
    int narrow = dtype != BTRM_DTYPE_F32;
    if (narrow) {
        /* edge values in used rows, inf/NaN in unused rows (allowed) */
        s.features[0] = dtype == BTRM_DTYPE_F16 ? 65504.0f : 3.0e38f;
        s.features[1] = -s.features[0];
        s.features[2] = dtype == BTRM_DTYPE_F16 ? ldexpf(1, -24) : ldexpf(1, -133);
        s.features[3] = dtype == BTRM_DTYPE_F16 ? 1023 * ldexpf(1, -24) : 127 * ldexpf(1, -133);
        s.features[4] = -0.0f;
        s.features[5] = 1.0f / 3.0f;
        s.features[6] = dtype == BTRM_DTYPE_F16 ? 1e-9f : 1e-45f;
        s.features[10 * DIM + 1] = INFINITY;
        s.features[11 * DIM + 3] = NAN;
        s.data.features_dtype = dtype;
    }
    const char *tag = dtype == BTRM_DTYPE_F16 ? "float16" : narrow ? "bfloat16" : "float32";
    char name[32];
    snprintf(name, sizeof name, "rt-%s.h5", btrm_dtype_name(dtype));
    const char *path = in_dir(name);
    is_int(write_store(path, &s.data), 0, "%s: write a store with every optional dataset", tag);
    btrm_pairs p;
    int rc = btrm_pairs_open(&p, path, &world, BTRM_PAIRS_FEATURES | BTRM_PAIRS_REQUIRE_FEATURES);
    if (!is_int(rc, 0, "%s: open it back", tag)) {
        diag("%s", btrm_error_msg());
        return;
    }
    is_int(p.n_pairs, PAIRS, "%s: n_pairs", tag);
    is_int(p.n_rows, ROWS, "%s: n_rows", tag);
    is_int(p.dim, DIM, "%s: dim", tag);
    is_int(p.features_dtype, dtype, "%s: features_dtype (kept in memory as stored)", tag);
    is_string(p.backbone, "test-backbone", "%s: backbone attribute", tag);
    ok(!memcmp(p.chosen, s.chosen, sizeof s.chosen) &&
       !memcmp(p.rejected, s.rejected, sizeof s.rejected), "%s: chosen and rejected", tag);
    ok(p.category && !memcmp(p.category, s.category, sizeof s.category) &&
       p.n_categories == 2 && !strcmp(p.categories[0], "fine") &&
       !strcmp(p.categories[1], "coarse"), "%s: category codes and names", tag);
    ok(p.subset && !memcmp(p.subset, s.subset, sizeof s.subset) && p.n_subsets == 3 &&
       !strcmp(p.subsets[2], "gamma"), "%s: subset codes and names", tag);
    ok(p.margin && !memcmp(p.margin, s.margin, sizeof s.margin), "%s: margins", tag);
    is_int(p.crc32, world.rank == 0 ? crc_of_file(path) : p.crc32,
           "%s: crc32 is zlib's crc32 of the file's bytes", tag);
    float got[ROWS * DIM];
    features_as_f32(&p, got);
    int bad = 0, bad_raw = 0;
    for (int i = 0; i < ROWS * DIM; i++) {
        float want = s.features[i];
        uint16_t raw16 = 0;
        if (dtype == BTRM_DTYPE_F16)
            want = btrm_half_to_float(raw16 = btrm_float_to_half(want));
        else if (dtype == BTRM_DTYPE_BF16)
            want = btrm_bf16_to_float(raw16 = btrm_float_to_bf16(want));
        bad += isnan(want) ? !isnan(got[i]) : bits_of(want) != bits_of(got[i]);
        if (narrow)
            bad_raw += !isnan(want) && ((const uint16_t *)p.features)[i] != raw16;
    }
    is_int(bad, 0, "%s: every feature value bitwise as stored (after rounding)", tag);
    if (narrow) {
        is_int(bad_raw, 0, "%s: the node's copy holds the file's 16-bit values", tag);
        ok(got[0] == s.features[0] || (dtype == BTRM_DTYPE_BF16 &&
                                        got[0] == btrm_bf16_round(s.features[0])),
           "%s: the largest values round-trip", tag);
        ok(got[2] == s.features[2] && got[3] == s.features[3], "%s: subnormals exact", tag);
        ok(got[4] == 0 && signbit(got[4]), "%s: -0 keeps its sign", tag);
        ok(got[6] == 0, "%s: a value below the smallest subnormal underflows to 0", tag);
        ok(isinf(got[10 * DIM + 1]) && isnan(got[11 * DIM + 3]),
           "%s: inf and NaN in unused rows are kept and accepted", tag);
        uint16_t row16[DIM];
        btrm_pairs_feature_row(&p, 1, row16, BTRM_DTYPE_BF16);
        int same16 = 1;
        for (int j = 0; j < DIM; j++)
            same16 &= row16[j] == btrm_float_to_bf16(got[DIM + j]);
        ok(same16, "%s: a row read as bf16 is the row rounded to bf16", tag);
    }
    btrm_pairs_close(&p);
    ok(p.chosen == NULL && p.features == NULL, "%s: close clears the store", tag);
    btrm_pairs_close(&p); /* twice is fine */
    btrm_pairs_close(NULL);

    rc = btrm_pairs_open(&p, path, &world, 0);
    ok(rc == 0 && p.features == NULL && p.dim == DIM && p.n_pairs == PAIRS,
       "%s: open without BTRM_PAIRS_FEATURES: indices only", tag);
    btrm_pairs_close(&p);
}

static void test_writer(void)
{
    store s;
    store_init(&s);
    is_int(write_store(in_dir("same-a.h5"), &s.data), 0, "write a store");
    is_int(write_store(in_dir("same-b.h5"), &s.data), 0, "write it again under another name");
    if (world.rank == 0) {
        ok(same_bytes(in_dir("same-a.h5"), in_dir("same-b.h5")),
           "identical content gives identical bytes (no timestamps)");
        int rc = btrm_pairs_write(in_dir("no-such-dir/x.h5"), &s.data);
        ok(rc == BTRM_EIO && strstr(btrm_error_msg(), "no-such-dir"),
           "writing into a missing directory fails naming it");
        btrm_pairs_data bad = s.data;
        bad.dim = 0;
        rc = btrm_pairs_write(in_dir("bad.h5"), &bad);
        ok(rc == BTRM_EDATA && access(in_dir("bad.h5"), F_OK) != 0,
           "features without a dim are refused and nothing is written");
        is_int(leftover_tmp_files(), 0, "no temporary file is left behind");
        /* An h5py-style reader sees the documented layout. */
        hid_t f = H5Fopen(in_dir("same-a.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
        char text[64] = "";
        btrm_h5_read_attr_string(f, "btrm_format", text, sizeof text);
        is_string(text, "pairs-v1", "root attribute btrm_format");
        hid_t d = H5Dopen2(f, "/pairs/chosen", H5P_DEFAULT), t = H5Dget_type(d);
        ok(H5Tequal(t, H5T_STD_I64LE) > 0, "/pairs/chosen is int64");
        H5Tclose(t);
        H5Dclose(d);
        d = H5Dopen2(f, "/texts", H5P_DEFAULT);
        t = H5Dget_type(d);
        ok(H5Tis_variable_str(t) > 0 && H5Tget_cset(t) == H5T_CSET_UTF8,
           "/texts is variable-length UTF-8");
        char **strings = NULL;
        size_t n = 0;
        btrm_h5_read_strings(d, &strings, &n);
        ok(n == ROWS && !strcmp(strings[1], "réponse 1"), "/texts reads back (UTF-8 kept)");
        btrm_h5_free_strings(strings, n);
        H5Tclose(t);
        H5Dclose(d);
        H5Fclose(f);
    } else {
        skip(9, "rank 0 checks the files");
    }
}

/* ------------------------------------------------------------------------ */
/* Damaging a good store with plain HDF5 calls (rank 0). */

static void replace_dataset(const char *path, const char *name, hid_t type, int rank,
                            const hsize_t *dims, const void *data)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (btrm_h5_exists(f, name) == 1)
        H5Ldelete(f, name, H5P_DEFAULT);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        diag("replace_dataset %s: write failed", name);
    H5Dclose(d);
    H5Sclose(space);
    H5Fclose(f);
}

static void delete_object(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (H5Ldelete(f, name, H5P_DEFAULT) < 0)
        diag("delete_object %s failed", name);
    H5Fclose(f);
}

static void set_attr(const char *path, const char *object, const char *attr,
                     const char *value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t o = H5Oopen(f, object, H5P_DEFAULT);
    if (value)
        btrm_h5_write_attr_string(o, attr, value);
    else
        H5Adelete(o, attr);
    H5Oclose(o);
    H5Fclose(f);
}

static void set_attr_int(const char *path, const char *object, const char *attr, int value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t o = H5Oopen(f, object, H5P_DEFAULT);
    btrm_h5_write_attr_int(o, attr, value);
    H5Oclose(o);
    H5Fclose(f);
}

enum damage_kind {
    GOOD, NO_FORMAT, WRONG_FORMAT, NO_CHOSEN, CHOSEN_FLOAT, CHOSEN_2D, LENGTH_MISMATCH,
    INDEX_HIGH, INDEX_NEGATIVE, SAME_ROW, CATEGORY_RANGE, SUBSET_RANGE, NO_CATEGORY_NAMES,
    MARGIN_NAN, NAN_USED, INF_USED_LATE, NAN_UNUSED, NO_FEATURES_TEXTS, NO_FEATURES_AT_ALL,
    FEATURES_F64, FEATURES_1D, FEATURES_F16_ODD, DIM_ATTR, TEXTS_LENGTH, NOT_HDF5, N_DAMAGE
};

static void make_damaged(const char *path, int kind)
{
    store s;
    store_init(&s);
    switch (kind) {
    case INDEX_HIGH: s.rejected[2] = ROWS; break;
    case INDEX_NEGATIVE: s.chosen[0] = -1; break;
    case SAME_ROW: s.chosen[3] = s.rejected[3]; break;
    case CATEGORY_RANGE: s.category[1] = 2; break;
    case SUBSET_RANGE: s.subset[4] = -1; break;
    case MARGIN_NAN: s.margin[2] = NAN; break;
    case NAN_USED: s.features[3 * DIM + 2] = NAN; break;        /* row 3: pair 1 */
    case INF_USED_LATE: s.features[9 * DIM + 4] = -INFINITY; break; /* last rank's rows */
    case NAN_UNUSED: s.features[11 * DIM + 0] = NAN; break;
    case NO_FEATURES_TEXTS: s.data.features = NULL; break;
    default: break;
    }
    if (kind == NOT_HDF5) {
        FILE *f = fopen(path, "w");
        fputs("chosen,rejected\n0,1\n", f);
        fclose(f);
        return;
    }
    if (btrm_pairs_write(path, &s.data) != 0)
        diag("make_damaged: %s", btrm_error_msg());
    double f64[ROWS * DIM] = { 0 };
    int64_t i64[2 * PAIRS] = { 0 };
    uint16_t bf16[ROWS * DIM] = { 0 };
    hsize_t dims[2] = { PAIRS, 2 };
    switch (kind) {
    case NO_FORMAT: set_attr(path, "/", "btrm_format", NULL); break;
    case WRONG_FORMAT: set_attr(path, "/", "btrm_format", "model-v1"); break;
    case NO_CHOSEN: delete_object(path, "/pairs/chosen"); break;
    case CHOSEN_FLOAT:
        for (int i = 0; i < PAIRS; i++)
            f64[i] = (double)s.chosen[i];
        replace_dataset(path, "/pairs/chosen", H5T_IEEE_F64LE, 1, dims, f64);
        break;
    case CHOSEN_2D: replace_dataset(path, "/pairs/chosen", H5T_STD_I64LE, 2, dims, i64); break;
    case LENGTH_MISMATCH:
        dims[0] = PAIRS - 1;
        replace_dataset(path, "/pairs/rejected", H5T_STD_I64LE, 1, dims, s.rejected);
        break;
    case NO_CATEGORY_NAMES: delete_object(path, "/categories"); break;
    case NO_FEATURES_AT_ALL:
        delete_object(path, "/features");
        delete_object(path, "/texts");
        break;
    case FEATURES_F64:
        dims[0] = ROWS;
        dims[1] = DIM;
        replace_dataset(path, "/features", H5T_IEEE_F64LE, 2, dims, f64);
        break;
    case FEATURES_1D:
        dims[0] = ROWS * DIM;
        replace_dataset(path, "/features", H5T_IEEE_F32LE, 1, dims, s.features);
        break;
    case FEATURES_F16_ODD: { /* a 16-bit float with 6 exponent bits: neither half nor bf16 */
        hid_t t = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t, 15, 9, 6, 0, 9);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 31);
        dims[0] = ROWS;
        dims[1] = DIM;
        replace_dataset(path, "/features", t, 2, dims, bf16);
        H5Tclose(t);
        break;
    }
    case DIM_ATTR: set_attr_int(path, "/features", "dim", 7); break;
    case TEXTS_LENGTH: {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        dims[0] = ROWS - 1;
        replace_dataset(path, "/texts", t, 1, dims, texts);
        H5Tclose(t);
        break;
    }
    default: break;
    }
}

static void expect_error(int kind, const char *name, unsigned flags, const char *needle,
                         const char *needle2)
{
    const char *path = in_dir(name);
    if (world.rank == 0)
        make_damaged(path, kind);
    sync_ranks();
    btrm_pairs p;
    int rc = btrm_pairs_open(&p, path, &world, flags);
    int pass = rc == BTRM_EDATA && strstr(btrm_error_msg(), needle) &&
               (!needle2 || strstr(btrm_error_msg(), needle2)) && strstr(btrm_error_msg(), path) &&
               p.chosen == NULL && p.features == NULL;
    ok(pass, "%s: BTRM_EDATA naming the file and \"%s\"", name, needle);
    if (!pass)
        diag("rc %d: %s", rc, btrm_error_msg());
    btrm_pairs_close(&p);
}

static void test_validation(void)
{
    const unsigned all = BTRM_PAIRS_FEATURES | BTRM_PAIRS_REQUIRE_FEATURES;
    btrm_pairs p;
    int rc = btrm_pairs_open(&p, in_dir("missing.h5"), &world, all);
    ok(rc == BTRM_EDATA && strstr(btrm_error_msg(), "missing.h5") &&
       strstr(btrm_error_msg(), "No such file"), "a missing file: BTRM_EDATA naming it");
    expect_error(NOT_HDF5, "text.h5", all, "is not an HDF5 file", NULL);
    expect_error(NO_FORMAT, "noformat.h5", all, "missing root attribute btrm_format", NULL);
    expect_error(WRONG_FORMAT, "wrongformat.h5", all,
                 "btrm_format is \"model-v1\", expected \"pairs-v1\"", NULL);
    expect_error(NO_CHOSEN, "nochosen.h5", all, "missing dataset /pairs/chosen", NULL);
    expect_error(CHOSEN_FLOAT, "chosenfloat.h5", all, "dataset /pairs/chosen must be an "
                 "integer dataset of rank 1 (found float64 of rank 1)", NULL);
    expect_error(CHOSEN_2D, "chosen2d.h5", all, "/pairs/chosen must be an integer dataset "
                 "of rank 1 (found int64 of rank 2)", NULL);
    expect_error(LENGTH_MISMATCH, "length.h5", all, "dataset /pairs/rejected has 4 rows but "
                 "/pairs/chosen has 5", NULL);
    expect_error(INDEX_HIGH, "high.h5", all, "dataset /pairs/rejected row 2: index 12 out of "
                 "range [0, 12)", NULL);
    expect_error(INDEX_NEGATIVE, "negative.h5", all, "dataset /pairs/chosen row 0: index -1 "
                 "out of range", NULL);
    expect_error(SAME_ROW, "same.h5", all, "/pairs/chosen and /pairs/rejected row 3: both "
                 "are /features row 6", NULL);
    expect_error(CATEGORY_RANGE, "category.h5", all, "dataset /pairs/category row 1: code 2 "
                 "out of range [0, 2) of /categories", NULL);
    expect_error(SUBSET_RANGE, "subset.h5", all, "dataset /pairs/subset row 4: code -1 out "
                 "of range [0, 3)", NULL);
    expect_error(NO_CATEGORY_NAMES, "nonames.h5", all, "/pairs/category needs the names "
                 "dataset /categories", NULL);
    expect_error(MARGIN_NAN, "margin.h5", all, "dataset /pairs/margin row 2: not finite",
                 NULL);
    expect_error(NAN_USED, "nan.h5", all, "dataset /features row 3 column 2: non-finite "
                 "value (NaN)", "pair 1 uses (/pairs/chosen)");
    expect_error(INF_USED_LATE, "inf.h5", all, "dataset /features row 9 column 4: non-finite "
                 "value (-Inf)", "pair 4");
    expect_error(NO_FEATURES_TEXTS, "textsonly.h5", all, "has no /features: run `btrm embed` "
                 "first", NULL);
    expect_error(NO_FEATURES_AT_ALL, "nothing.h5", BTRM_PAIRS_FEATURES,
                 "has neither /features nor /texts", NULL);
    expect_error(FEATURES_F64, "f64.h5", all, "dataset /features must be float32, IEEE "
                 "float16 or bfloat16 (found float64)", NULL);
    expect_error(FEATURES_1D, "f1d.h5", all, "dataset /features must be a float32, float16 "
                 "or bfloat16 dataset of rank 2 (found float32 of rank 1)", NULL);
    expect_error(FEATURES_F16_ODD, "f16odd.h5", all, "neither IEEE binary16 nor bfloat16",
                 NULL);
    expect_error(DIM_ATTR, "dimattr.h5", all, "/features has attribute dim = 7 but 5 columns",
                 NULL);
    expect_error(TEXTS_LENGTH, "textslen.h5", all, "dataset /texts has 11 rows but /features "
                 "has 12", NULL);

    /* Accepted: NaN in a row no pair uses; a store of texts without features
     * when features are not required. */
    if (world.rank == 0)
        make_damaged(in_dir("nanunused.h5"), NAN_UNUSED);
    sync_ranks();
    rc = btrm_pairs_open(&p, in_dir("nanunused.h5"), &world, all);
    float row11[DIM];
    if (rc == 0)
        btrm_pairs_feature_row(&p, 11, row11, BTRM_DTYPE_F32);
    ok(rc == 0 && isnan(row11[0]), "NaN in an unused row is accepted");
    btrm_pairs_close(&p);
    rc = btrm_pairs_open(&p, in_dir("textsonly.h5"), &world, BTRM_PAIRS_FEATURES);
    ok(rc == 0 && p.features == NULL && p.dim == 0 && p.n_rows == ROWS && p.n_pairs == PAIRS,
       "texts without features open when features are not required (n_rows from /texts)");
    btrm_pairs_close(&p);
}

/* ------------------------------------------------------------------------ */
/* Model files */

static void fill_params(float *params, size_t n, uint64_t seed)
{
    btrm_rng rng;
    btrm_rng_seed(&rng, seed, 7);
    for (size_t i = 0; i < n; i++)
        params[i] = (float)btrm_rng_normal(&rng);
}

static int model_error(const char *path, const char *needle)
{
    btrm_head head;
    float *params = (float *)&head; /* must come back NULL */
    btrm_model_meta meta;
    int rc = btrm_model_read(path, &head, &params, &meta);
    int pass = rc == BTRM_EDATA && params == NULL && strstr(btrm_error_msg(), needle) &&
               strstr(btrm_error_msg(), path);
    if (!pass)
        diag("rc %d: %s", rc, btrm_error_msg());
    return pass;
}

/* a and b differ (templates not compared), and the message says needle. */
static int refused_for(const btrm_feature_record *a, const btrm_feature_record *b,
                       const char *needle)
{
    return btrm_feature_record_compare(a, "a", b, "b", 0) == BTRM_EUSAGE &&
           strstr(btrm_error_msg(), needle) != NULL;
}

static void test_model(void)
{
    btrm_head head, back;
    const int hidden[2] = { 5, 3 };
    btrm_head_init(&head, BTRM_HEAD_MLP, BTRM_ACT_RELU, 6, hidden, 2);
    float *params = malloc(head.n_params * sizeof *params), *got = NULL;
    fill_params(params, head.n_params, 3);
    btrm_model_meta meta = { .loss = BTRM_LOSS_NORMBT, .dist_ema = 0.8125, .normbt_eps = 1e-6,
                             .max_weight = 10 }, meta_back;
    const char *path = in_dir("model.h5");
    is_int(btrm_model_write(path, &head, params, &meta), 0, "model: write an mlp head");
    int rc = btrm_model_read(path, &back, &got, &meta_back);
    is_int(rc, 0, "model: read it back");
    if (rc)
        diag("%s", btrm_error_msg());
    ok(!rc && back.kind == BTRM_HEAD_MLP && back.activation == BTRM_ACT_RELU && back.dim == 6 &&
       back.n_layers == 3 && !memcmp(back.width, head.width, sizeof head.width) &&
       back.n_params == head.n_params, "model: the head's kind, activation and shapes");
    ok(got && !memcmp(got, params, head.n_params * sizeof *params),
       "model: parameters bitwise identical");
    ok(meta_back.loss == BTRM_LOSS_NORMBT && meta_back.dist_ema == 0.8125 &&
       meta_back.normbt_eps == 1e-6 && meta_back.max_weight == 10,
       "model: loss, dist_ema, normbt_eps, max_weight");
    free(got);
    got = NULL;
    is_int(btrm_model_write(in_dir("model-b.h5"), &head, params, &meta), 0,
           "model: write it again");
    ok(same_bytes(path, in_dir("model-b.h5")), "model: identical bytes for identical content");

    /* The documented layout, with plain HDF5 calls. */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t model = H5Gopen2(f, "model", H5P_DEFAULT);
    char text[64] = "";
    int layout = btrm_h5_read_attr_string(f, "btrm_format", text, sizeof text) == 0 &&
                 !strcmp(text, "model-v3");
    layout &= btrm_h5_read_attr_string(model, "head", text, sizeof text) == 0 &&
              !strcmp(text, "mlp");
    layout &= btrm_h5_read_attr_string(model, "activation", text, sizeof text) == 0 &&
              !strcmp(text, "relu");
    layout &= btrm_h5_read_attr_string(model, "loss", text, sizeof text) == 0 &&
              !strcmp(text, "normbt");
    const struct { const char *name; int rank; hsize_t d0, d1; } want[] = {
        { "fc0/weight", 2, 5, 6 }, { "fc0/bias", 1, 5, 0 }, { "fc1/weight", 2, 3, 5 },
        { "fc1/bias", 1, 3, 0 },   { "out/weight", 2, 1, 3 }, { "out/bias", 1, 1, 0 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        hid_t d = H5Dopen2(model, want[i].name, H5P_DEFAULT);
        hid_t s = H5Dget_space(d), t = H5Dget_type(d);
        hsize_t dims[2] = { 0, 0 };
        layout &= H5Sget_simple_extent_dims(s, dims, NULL) == want[i].rank &&
                  dims[0] == want[i].d0 && (want[i].rank == 1 || dims[1] == want[i].d1) &&
                  H5Tequal(t, H5T_IEEE_F32LE) > 0;
        H5Tclose(t);
        H5Sclose(s);
        H5Dclose(d);
    }
    float w0[5 * 6];
    hid_t d = H5Dopen2(model, "fc0/weight", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w0);
    H5Dclose(d);
    layout &= !memcmp(w0, params + head.layer[0].weight_off, sizeof w0);
    H5Gclose(model);
    H5Fclose(f);
    ok(layout, "model: /model attributes and fc0, fc1, out tensors [out, in] float32, "
       "fc0/weight row-major as in the flat buffer");

    btrm_head lin;
    btrm_head_init(&lin, BTRM_HEAD_LINEAR, BTRM_ACT_GELU, 4, NULL, 0);
    float lin_params[5] = { 1, -2, 3.5f, 0.25f, -0.125f };
    meta.loss = BTRM_LOSS_BT;
    rc = btrm_model_write(in_dir("linear.h5"), &lin, lin_params, &meta);
    rc = rc ? rc : btrm_model_read(in_dir("linear.h5"), &back, &got, &meta_back);
    ok(!rc && back.kind == BTRM_HEAD_LINEAR && back.n_layers == 1 && back.dim == 4 && got &&
       !memcmp(got, lin_params, sizeof lin_params) && meta_back.loss == BTRM_LOSS_BT,
       "model: a linear head round-trips");
    free(got);
    got = NULL;

    /* Errors */
    ok(model_error(in_dir("nomodel.h5"), "missing or unreadable"), "model: missing file");
    ok(model_error(in_dir("rt-f32.h5"), "btrm_format is \"pairs-v1\", expected \"model-v3\""),
       "model: a pair store is not a model");
    const char *bad = in_dir("model-bad.h5");
    float junk[4 * 4] = { 0 };
    hsize_t dims[2] = { 3, 4 };
    btrm_model_write(bad, &head, params, &meta);
    replace_dataset(bad, "/model/fc1/weight", H5T_IEEE_F32LE, 2, dims, junk);
    ok(model_error(bad, "dataset /model/fc1/weight is [3, 4] but the layer before it has 5 "
                   "outputs"), "model: a broken chain names the tensor");
    btrm_model_write(bad, &head, params, &meta);
    dims[0] = 2;
    dims[1] = 3;
    replace_dataset(bad, "/model/out/weight", H5T_IEEE_F32LE, 2, dims, junk);
    ok(model_error(bad, "the reward layer must have 1 output"), "model: out with 2 outputs");
    btrm_model_write(bad, &head, params, &meta);
    delete_object(bad, "/model/out/bias");
    ok(model_error(bad, "missing dataset /model/out/bias"), "model: a missing bias");
    btrm_model_write(bad, &head, params, &meta);
    set_attr(bad, "/model", "head", "linear");
    ok(model_error(bad, "head is \"linear\" but the file has 2 hidden layers"),
       "model: head attribute against the tensors");
    btrm_model_write(bad, &head, params, &meta);
    set_attr(bad, "/model", "activation", "swish");
    ok(model_error(bad, "activation is \"swish\" (expected one of gelu, relu, tanh)"),
       "model: unknown activation");
    btrm_model_write(bad, &head, params, &meta);
    set_attr(bad, "/model", "loss", NULL);
    ok(model_error(bad, "missing attribute loss"), "model: a missing attribute");
    btrm_model_write(bad, &head, params, &meta);
    dims[0] = 3;
    replace_dataset(bad, "/model/fc7", H5T_IEEE_F32LE, 1, dims, junk);
    ok(model_error(bad, "unexpected /model/fc7"), "model: a stray tensor");
    is_int(leftover_tmp_files(), 0, "model: no temporary file left behind");
    free(params);
}

/* ------------------------------------------------------------------------ */
/* How features were made: stores, model files, comparisons */

static int same_record(const btrm_feature_record *a, const btrm_feature_record *b)
{
    return a->present == b->present && !strcmp(a->backbone, b->backbone) &&
           !strcmp(a->label, b->label) && !strcmp(a->spec, b->spec) &&
           !strcmp(a->hash, b->hash) && a->dim == b->dim && !strcmp(a->pool, b->pool) &&
           a->bos == b->bos && a->max_tokens == b->max_tokens &&
           !strcmp(a->kernel, b->kernel) && !strcmp(a->precision, b->precision) &&
           !strcmp(a->chat_template, b->chat_template);
}

static void test_feature_record(void)
{
    store s;
    store_init(&s);
    btrm_feature_record rec, back, other;

    /* a store without embed's attributes: its label only */
    const char *plain = in_dir("rec-plain.h5");
    btrm_pairs_write(plain, &s.data);
    is_int(btrm_pairs_read_features(plain, &rec), 0, "record: read a store's record");
    ok(rec.present && !strcmp(rec.backbone, "test-backbone") && rec.dim == DIM &&
           !rec.spec[0] && rec.bos == -1 && !rec.chat_template[0],
       "record: a store with a label only (and a provenance that is not JSON): that label, "
       "its width, nothing else");
    ok(!btrm_feature_record_runnable(&rec) && !btrm_feature_record_spec(&rec),
       "record: features btrm did not make cannot be made again");
    s.data.features = NULL;
    s.data.dim = 0;
    btrm_pairs_write(in_dir("rec-nofeat.h5"), &s.data);
    is_int(btrm_pairs_read_features(in_dir("rec-nofeat.h5"), &rec), 0,
           "record: a store without /features reads");
    ok(!rec.present, "record: ... and records nothing");
    store_init(&s);
    s.data.backbone = "hash-16";
    btrm_pairs_write(in_dir("rec-hash.h5"), &s.data);
    btrm_pairs_read_features(in_dir("rec-hash.h5"), &rec);
    ok(!strcmp(rec.backbone, "hash") && btrm_feature_record_spec(&rec) &&
           !strcmp(btrm_feature_record_spec(&rec), "hash"),
       "record: hash features labelled before backbone_spec was recorded open as 'hash'");

    /* a store as btrm prep and btrm embed (an LLM backbone) leave it */
    const char *full = in_dir("rec-full.h5");
    s.data.backbone = "gguf:m.gguf,pool=mean,max_tokens=8";
    s.data.provenance = "{\"tool\": \"btrm prep\", \"chat_template\": "
                        "{\"user\": \"U: {content}\\n\", \"assistant\": \"A: {content}\"}}";
    btrm_pairs_write(full, &s.data);
    set_attr(full, "/features", "backbone_spec",
             "gguf:/models/m.gguf,pool=mean,max_tokens=8,bos=0,kernel=int8");
    set_attr(full, "/features", "model_hash", "0123456789abcdef0123456789abcdef");
    set_attr(full, "/features", "pool", "mean");
    set_attr(full, "/features", "kernel", "int8-avx2");
    set_attr(full, "/features", "precision", "bf16");
    set_attr_int(full, "/features", "bos", 0);
    set_attr_int(full, "/features", "max_tokens", 8);
    is_int(btrm_pairs_read_features(full, &rec), 0, "record: read an embedded store's record");
    ok(rec.present && !strcmp(rec.backbone, "gguf") &&
           !strcmp(rec.label, "gguf:m.gguf,pool=mean,max_tokens=8") &&
           !strcmp(rec.hash, "0123456789abcdef0123456789abcdef") && rec.dim == DIM &&
           !strcmp(rec.pool, "mean") && rec.bos == 0 && rec.max_tokens == 8,
       "record: backbone, label, hash, width, pool, bos, max_tokens");
    is_string(rec.kernel, "int8", "record: the kernel without its instruction set");
    is_string(rec.precision, "bf16", "record: the GEMM precision");
    is_string(rec.chat_template, "{\"assistant\":\"A: {content}\",\"user\":\"U: {content}\\n\"}",
              "record: the chat template of the provenance, compact with sorted keys");
    ok(btrm_feature_record_runnable(&rec) && btrm_feature_record_spec(&rec) == rec.spec,
       "record: an LLM's features can be made again from the recorded spec");

    /* JSON: the same fields under the same names */
    json_t *j = btrm_feature_record_to_json(&rec);
    btrm_feature_record_clear(&back);
    ok(j && btrm_feature_record_from_json(&back, j, "json") == 0 && same_record(&rec, &back),
       "record: JSON round trip");
    ok(j && json_integer_value(json_object_get(j, "bos")) == 0 &&
           !json_object_get(j, "nonexistent") && json_object_size(j) == 10,
       "record: every known field is in the JSON, bos 0 included");
    json_object_set_new(j, "dim", json_string("wide"));
    ok(btrm_feature_record_from_json(&back, j, "attrs") == BTRM_EDATA &&
           strstr(btrm_error_msg(), "attrs: dim is not an integer"),
       "record: a field of the wrong type is refused, naming it");
    json_decref(j);

    /* the model file: model-v3 (and v2) carry the record, model-v1 still reads */
    btrm_head head;
    btrm_head_init(&head, BTRM_HEAD_LINEAR, BTRM_ACT_GELU, DIM, NULL, 0);
    float *params = calloc(head.n_params, sizeof *params), *got = NULL;
    btrm_model_meta meta = { .loss = BTRM_LOSS_BT, .features = &rec }, meta_back;
    const char *model = in_dir("rec-model.h5");
    is_int(btrm_model_write(model, &head, params, &meta), 0, "record: write a model with one");
    is_int(btrm_model_read_features(model, &back), 0, "record: read it back");
    ok(same_record(&rec, &back), "record: every field round-trips through the model file");
    {   /* a model-v2 file (before /backbone) with the record reads as before */
        btrm_model_backbone bb;
        int has_bb = -1;
        set_attr(model, "/", "btrm_format", "model-v2");
        ok(btrm_model_read(model, &head, &got, &meta_back) == 0 &&
               btrm_model_read_features(model, &back) == 0 && same_record(&rec, &back) &&
               btrm_model_read_backbone(model, &bb, &has_bb) == 0 && has_bb == 0,
           "record: a model-v2 file loads with its record and no backbone");
        free(got);
        got = NULL;
        btrm_model_write(model, &head, params, &meta);
    }
    char text[256] = "";
    hid_t f = H5Fopen(model, H5F_ACC_RDONLY, H5P_DEFAULT), g = H5Gopen2(f, "features", H5P_DEFAULT);
    ok(btrm_h5_read_attr_string(g, "backbone_spec", text, sizeof text) == 0 &&
           !strcmp(text, rec.spec) && btrm_h5_has_attr(g, "chat_template") == 1,
       "record: stored as attributes of /features under the store's names");
    H5Gclose(g);
    H5Fclose(f);
    meta.features = NULL;
    btrm_model_write(model, &head, params, &meta);
    is_int(btrm_model_read_features(model, &back), 0, "record: a model without one reads");
    ok(!back.present, "record: ... and records nothing");
    set_attr(model, "/", "btrm_format", "model-v1");
    ok(btrm_model_read(model, &head, &got, &meta_back) == 0 &&
           btrm_model_read_features(model, &back) == 0 && !back.present,
       "record: a model-v1 file loads and records nothing");
    free(got);
    meta.features = &rec;
    btrm_model_write(model, &head, params, &meta);
    set_attr(model, "/features", "backbone", NULL);
    set_attr(model, "/features", "backbone_spec", NULL);
    ok(btrm_model_read_features(model, &back) == BTRM_EDATA && strstr(btrm_error_msg(), model) &&
           strstr(btrm_error_msg(), "names no backbone"),
       "record: a /features group without a backbone is refused, naming the file");
    free(params);

    /* comparisons name both sides and what differs */
    other = rec;
    is_int(btrm_feature_record_compare(&rec, "a.h5", &other, "b.h5", 1), 0,
           "compare: the same record agrees");
    snprintf(other.pool, sizeof other.pool, "last");
    ok(btrm_feature_record_compare(&rec, "a.h5", &other, "b.h5", 1) == BTRM_EUSAGE &&
           strstr(btrm_error_msg(), "a.h5 has gguf:m.gguf") && strstr(btrm_error_msg(), "b.h5 has") &&
           strstr(btrm_error_msg(), "(pool mean vs last)"),
       "compare: another pool is refused, naming both files and the difference");
    other = rec;
    other.bos = 1;
    ok(refused_for(&rec, &other, "(bos 0 vs 1)"), "compare: another BOS");
    other = rec;
    snprintf(other.hash, sizeof other.hash, "ffff");
    ok(refused_for(&rec, &other, "model file XXH3-128"), "compare: another model file");
    other = rec;
    snprintf(other.kernel, sizeof other.kernel, "dequant");
    ok(refused_for(&rec, &other, "(kernel int8 vs dequant)"), "compare: another kernel");
    other = rec;
    snprintf(other.precision, sizeof other.precision, "fp32");
    ok(refused_for(&rec, &other, "(precision bf16 vs fp32)"), "compare: another precision");
    other = rec;
    other.max_tokens = 9;
    ok(refused_for(&rec, &other, "(max_tokens 8 vs 9)"), "compare: another max_tokens");
    other = rec;
    snprintf(other.chat_template, sizeof other.chat_template, "{}");
    ok(btrm_feature_record_compare(&rec, "a", &other, "b", 0) == 0 &&
           btrm_feature_record_compare(&rec, "a", &other, "b", 1) == BTRM_EUSAGE &&
           strstr(btrm_error_msg(), "chat template"),
       "compare: another chat template only where templates are compared");
    other = rec;
    other.pool[0] = '\0';
    other.kernel[0] = '\0';
    other.precision[0] = '\0';
    other.chat_template[0] = '\0';
    is_int(btrm_feature_record_compare(&rec, "a", &other, "b", 1), 0,
           "compare: what one side does not record is not compared");
    btrm_feature_record_clear(&other);
    is_int(btrm_feature_record_compare(&rec, "a", &other, "b", 1), 0,
           "compare: a side that records nothing agrees with anything");
    btrm_pairs_read_features(in_dir("rec-hash.h5"), &other);
    ok(btrm_feature_record_compare(&rec, "a", &other, "b", 1) == BTRM_EUSAGE &&
           strstr(btrm_error_msg(), "(backbone gguf vs hash)"), "compare: another backbone");
}

/* ------------------------------------------------------------------------ */
/* Synthetic data */

static double pair_dot(const btrm_synth *s, int64_t i, const float *row_c, const float *row_r)
{
    (void)i;
    double d = 0;
    for (int j = 0; j < s->dim; j++)
        d += s->w_star[j] * ((double)row_c[j] - (double)row_r[j]);
    return d;
}

static void test_synth_memory(void)
{
    btrm_synth_params sp;
    btrm_synth_defaults(&sp);
    sp.n_pairs = 2000;
    sp.dim = 16;
    btrm_synth s;
    is_int(btrm_synth_generate(&s, &sp), 0, "synth: generate 2000 pairs");
    double norm = 0, dist[2] = { 0, 0 };
    int64_t count[2] = { 0, 0 }, label_bad = 0;
    for (int j = 0; j < s.dim; j++)
        norm += s.w_star[j] * s.w_star[j];
    for (int64_t i = 0; i < s.n_pairs; i++) {
        const float *c = s.features + s.chosen[i] * s.dim, *r = s.features + s.rejected[i] * s.dim;
        double d2 = 0;
        for (int j = 0; j < s.dim; j++)
            d2 += ((double)c[j] - r[j]) * ((double)c[j] - r[j]);
        dist[s.category[i]] += sqrt(d2);
        count[s.category[i]]++;
        double dr = pair_dot(&s, i, c, r);
        label_bad += s.subset[i] == BTRM_SYNTH_FLIPPED ? dr > 0 : dr < 0;
    }
    is_double_rel(norm, 1.0, 1e-12, "synth: w* is a unit vector");
    is_int(count[BTRM_SYNTH_FINE], 1000, "synth: exactly fine_frac of the pairs are fine");
    double ratio = (dist[0] / count[0]) / (dist[1] / count[1]);
    ok(ratio > 0.07 && ratio < 0.13, "synth: fine pairs are ~fine_scale (0.1) times closer than "
       "coarse ones (ratio of mean distances %.3f)", ratio);
    ok(s.n_flipped > 150 && s.n_flipped < 250, "synth: ~noise (10%%) of the labels swapped "
       "(%lld of 2000)", (long long)s.n_flipped);
    is_int(label_bad, 0, "synth: clean pairs prefer the higher w*.x, swapped ones the lower");
    btrm_synth_free(&s);

    sp.separable = 1;
    sp.noise = 0;
    is_int(btrm_synth_generate(&s, &sp), 0, "synth: generate separable pairs");
    int64_t gap_bad = 0;
    for (int64_t i = 0; i < s.n_pairs; i++) {
        const float *c = s.features + s.chosen[i] * s.dim, *r = s.features + s.rejected[i] * s.dim;
        double scale = s.category[i] == BTRM_SYNTH_FINE ? sp.fine_scale * sp.spread : sp.spread;
        gap_bad += pair_dot(&s, i, c, r) < sp.gap * sqrt(2.0) * scale * (1 - 1e-4);
    }
    ok(s.n_flipped == 0 && gap_bad == 0, "synth: separable pairs have no swaps and a gap "
       ">= gap * sd along w* (%lld below)", (long long)gap_bad);
    btrm_synth_free(&s);

    btrm_synth_defaults(&sp);
    sp.noise = 0.7;
    is_int(btrm_synth_check(&sp), BTRM_EUSAGE, "synth: --noise 0.7 is refused");
}

static int run_synth(const char *const *args, int n)
{
    char *argv[32];
    argv[0] = "synth";
    for (int i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    fflush(stderr);
    return btrm_synth_main(n + 1, argv, MPI_COMM_NULL);
}

static void test_synth_cli(void)
{
    const char *a[] = { in_dir("s1.h5"), "--pairs", "300", "--dim", "8", "--seed", "5", "-q" };
    const char *b[] = { in_dir("s2.h5"), "--pairs=300", "--dim=8", "--seed=5", "--quiet" };
    const char *c[] = { in_dir("s3.h5"), "--pairs", "300", "--dim", "8", "--seed", "6", "-q" };
    const char *t[] = { in_dir("s4.h5"), "--pairs", "300", "--dim", "8", "--seed", "5",
                        "--task-seed", "2", "-q" };
    const char *m[] = { in_dir("s5.h5"), "--pairs", "300", "--dim", "8", "--seed", "5",
                        "--margins", "--f16", "--separable", "-q" };
    ok(run_synth(a, 8) == 0 && run_synth(b, 5) == 0 && run_synth(c, 8) == 0 &&
       run_synth(t, 10) == 0 && run_synth(m, 11) == 0, "synth CLI: five stores written");
    ok(same_bytes(in_dir("s1.h5"), in_dir("s2.h5")), "synth: the same seed gives identical "
       "bytes");
    ok(!same_bytes(in_dir("s1.h5"), in_dir("s3.h5")), "synth: another --seed differs");
    ok(!same_bytes(in_dir("s1.h5"), in_dir("s4.h5")), "synth: another --task-seed differs");
    is_int(leftover_tmp_files(), 0, "synth: no temporary file left behind");

    const char *usage[][3] = {
        { "--noise", "0.7", NULL }, { "--pairs", "0", NULL }, { "--dim", "x", NULL },
        { "--bogus", NULL, NULL },  { "--separable", "--noise", "0.1" }, { "--pairs", NULL, NULL },
    };
    int all_two = 1;
    FILE *saved = fdopen(dup(fileno(stderr)), "w");
    freopen("/dev/null", "w", stderr); /* the usage messages are expected */
    for (size_t k = 0; k < sizeof usage / sizeof usage[0]; k++) {
        const char *args[4] = { in_dir("u.h5"), usage[k][0], usage[k][1], usage[k][2] };
        int n = 1 + (usage[k][0] != NULL) + (usage[k][1] != NULL) + (usage[k][2] != NULL);
        all_two &= run_synth(args, n) == BTRM_EXIT_USAGE;
    }
    all_two &= run_synth(NULL, 0) == BTRM_EXIT_USAGE;
    fflush(stderr);
    dup2(fileno(saved), fileno(stderr));
    fclose(saved);
    ok(all_two && access(in_dir("u.h5"), F_OK) != 0, "synth: bad options exit 2 and write "
       "nothing");
}

static void test_synth_open(void)
{
    btrm_pairs p;
    int rc = btrm_pairs_open(&p, in_dir("s5.h5"), &world,
                             BTRM_PAIRS_FEATURES | BTRM_PAIRS_REQUIRE_FEATURES);
    ok(rc == 0 && p.n_pairs == 300 && p.n_rows == 600 && p.dim == 8 &&
       p.features_dtype == BTRM_DTYPE_F16 &&
       p.margin && p.n_categories == 2 && !strcmp(p.categories[0], "fine") &&
       p.n_subsets == 2 && !strcmp(p.backbone, "synth"),
       "synth: a float16 store with margins opens with its categories and subsets");
    if (rc)
        diag("%s", btrm_error_msg());
    btrm_synth_params sp;
    btrm_synth_defaults(&sp);
    sp.n_pairs = 300;
    sp.dim = 8;
    sp.seed = 5;
    sp.separable = 1;
    sp.noise = 0;
    sp.margins = 1;
    btrm_synth s;
    btrm_synth_generate(&s, &sp);
    ok(!rc && !memcmp(p.margin, s.margin, 300 * sizeof(float)) &&
       !memcmp(p.chosen, s.chosen, 300 * sizeof(int64_t)),
       "synth: the file holds what btrm_synth_generate makes");
    btrm_synth_free(&s);
    btrm_pairs_close(&p);
}

/* btrm_crc32_update (libdeflate) gives zlib's crc32, whole or in pieces. */
static void test_crc32(void)
{
    enum { N = (3 << 20) + 13 };
    unsigned char *b = malloc(N);
    uint64_t s = 42;
    for (size_t i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (unsigned char)(s >> 56);
    }
    uint32_t want = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, N);
    is_int(btrm_crc32_update(0, b, N), want, "crc32 of 3 MiB + 13 bytes equals zlib's");
    size_t cuts[] = { 0, 1, 7, 64, 4095, 65537, 1 << 20, N - 1, N };
    uint32_t c = 0;
    for (size_t k = 0; k + 1 < sizeof cuts / sizeof cuts[0]; k++)
        c = btrm_crc32_update(c, b + cuts[k], cuts[k + 1] - cuts[k]);
    is_int(c, want, "... and in 8 pieces of odd sizes");
    is_int(btrm_crc32_update(0, b, 0), 0, "crc32 of nothing is 0");
    is_int(btrm_crc32_update(0, "123456789", 9), 0xCBF43926u,
           "crc32(\"123456789\") is the CRC-32 check value cbf43926");
    free(b);
}

int main(int argc, char **argv)
{
    test_mpi_begin(&argc, &argv, "pairs");

    test_round_trip(BTRM_DTYPE_F32);
    test_round_trip(BTRM_DTYPE_F16);
    test_round_trip(BTRM_DTYPE_BF16);
    test_writer();
    test_validation();
    if (world.rank == 0) {
        test_crc32();
        test_model();
        test_feature_record();
        test_synth_memory();
        test_synth_cli();
    }
    sync_ranks();
    test_synth_open();

    return test_mpi_end();
}
