/* ckpt.c: collective checkpoint write and read (see ckpt.h).
 *
 * Every collective HDF5 call (file create/open/close, dataset and attribute
 * creation, collective transfers) is made by every rank in the same order.
 * Rank-local failures inside a phase are agreed on (btrm_comm_agree) before
 * the next collective call, so a failing rank never leaves the others waiting. */
#define _GNU_SOURCE /* O_DIRECT */
#include "ckpt.h"

#include "error.h"
#include "fault.h"
#include "fileutil.h"
#include "h5raw.h"
#include "h5util.h"
#include "log.h"
#include "modelfile_h5.h"

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

void btrm_ckpt_name(char *out, size_t size, const char *dir, int64_t step)
{
    snprintf(out, size, "%s/step-%08lld.h5", dir, (long long)step);
}

static hid_t open_parallel(const char *path, const btrm_comm *c, int create)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), file = H5I_INVALID_HID;
    if (fapl < 0)
        return fapl;
    if (H5Pset_fapl_mpio(fapl, c->comm, MPI_INFO_NULL) >= 0 &&
        H5Pset_all_coll_metadata_ops(fapl, 1) >= 0 && H5Pset_coll_metadata_write(fapl, 1) >= 0) {
        if (create) {
            hid_t fcpl = btrm_h5_fcpl();
            file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
            H5Pclose(fcpl);
        } else {
            file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        }
    }
    H5Pclose(fapl);
    return file;
}

/* Selects the flat element range [a, b) of a row-major dataset of rank 1 or 2
 * (a partial first row, whole rows, a partial last row). */
static herr_t select_range(hid_t space, hsize_t a, hsize_t b)
{
    hsize_t dims[2] = { 0, 1 };
    int nd = H5Sget_simple_extent_dims(space, dims, NULL);
    if (nd < 0 || H5Sselect_none(space) < 0)
        return -1;
    if (a >= b)
        return 0;
    if (nd == 1) {
        hsize_t start = a, count = b - a;
        return H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &count, NULL);
    }
    hsize_t cols = dims[1];
    hsize_t r0 = a / cols, c0 = a % cols, r1 = b / cols, c1 = b % cols;
    if (r0 == r1) {
        hsize_t start[2] = { r0, c0 }, count[2] = { 1, c1 - c0 };
        return H5Sselect_hyperslab(space, H5S_SELECT_OR, start, NULL, count, NULL);
    }
    if (c0 > 0) {
        hsize_t start[2] = { r0, c0 }, count[2] = { 1, cols - c0 };
        if (H5Sselect_hyperslab(space, H5S_SELECT_OR, start, NULL, count, NULL) < 0)
            return -1;
        r0++;
    }
    if (r1 > r0) {
        hsize_t start[2] = { r0, 0 }, count[2] = { r1 - r0, cols };
        if (H5Sselect_hyperslab(space, H5S_SELECT_OR, start, NULL, count, NULL) < 0)
            return -1;
    }
    if (c1 > 0) {
        hsize_t start[2] = { r1, 0 }, count[2] = { 1, c1 };
        if (H5Sselect_hyperslab(space, H5S_SELECT_OR, start, NULL, count, NULL) < 0)
            return -1;
    }
    return 0;
}

/* Collective transfer of the flat range [a, b) of dset to or from buf. */
static herr_t transfer(hid_t dset, int writing, hsize_t a, hsize_t b, float *buf)
{
    hid_t fspace = H5Dget_space(dset), mspace = -1, dxpl = -1;
    herr_t st = -1;
    hsize_t n = b > a ? b - a : 0, one = n ? n : 1;
    if (fspace < 0 || select_range(fspace, a, b) < 0)
        goto out;
    mspace = H5Screate_simple(1, &one, NULL);
    if (mspace < 0 || (n == 0 && H5Sselect_none(mspace) < 0))
        goto out;
    dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0)
        goto out;
    float dummy = 0;
    st = writing ? H5Dwrite(dset, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, n ? buf : &dummy)
                 : H5Dread(dset, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, n ? buf : &dummy);
out:
    BTRM_H5_CLOSE(dxpl, mspace, fspace);
    return st;
}

/* The CRC of a whole dataset from every rank's slice (in rank order). */
static int combine_crc(const btrm_comm *c, uint32_t crc, uint64_t len, uint32_t *whole)
{
    uint64_t mine[2] = { crc, len }, *all = NULL;
    int rc = BTRM_MALLOC(all, 2 * (size_t)c->size);
    if (!rc)
        rc = btrm_comm_allgather_u64(c, mine, 2, all);
    if (!rc) {
        uLong total = crc32(0L, Z_NULL, 0);
        for (int r = 0; r < c->size; r++)
            total = crc32_combine(total, (uLong)all[2 * r], (z_off_t)all[2 * r + 1]);
        *whole = (uint32_t)total;
    }
    free(all);
    return rc;
}

static uint32_t crc_of(const float *x, size_t n)
{
    /* x86 and every platform btrm targets store float32 little-endian. */
    return btrm_crc32_update((uint32_t)crc32(0L, Z_NULL, 0), x, n * sizeof *x);
}

/* Raw data go between the file and memory with plain pread/pwrite in blocks
 * of BULK_BLOCK bytes, through O_DIRECT where the file system allows it
 * (docs/performance.md, "Checkpoint bandwidth: the cause"). */
#define BULK_BLOCK ((size_t)8 << 20)
#define BULK_ALIGN ((uint64_t)4096)

/* One rank's part of a dataset: bytes at file offset `offset` from buf. */
typedef struct slab {
    uint64_t offset;
    const float *buf;
    size_t bytes;
} slab;

/* pwrite or pread of all n bytes at offset through fd (short transfers
 * continue); 0, errno, or -1 for an unexpected end of file. Sets no error
 * message, so the I/O threads may call it (error.c keeps it per thread). */
static int io_rest(int writing, int fd, char *p, size_t n, uint64_t offset)
{
    while (n > 0) {
        ssize_t r = writing ? pwrite(fd, p, n, (off_t)offset) : pread(fd, p, n, (off_t)offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? errno : -1;
        p += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
    return 0;
}

/* The error of a failed transfer (io_rest's code). */
static int io_error(int writing, const char *path, int err)
{
    return btrm_error_set(BTRM_EIO, "cannot %s %s: %s", writing ? "write" : "read", path,
                          err > 0 ? strerror(err) : "unexpected end of file");
}

/* io_rest with the error message. */
static int io_all(int writing, int fd, char *p, size_t bytes, uint64_t offset,
                  const char *path)
{
    int err = io_rest(writing, fd, p, bytes, offset);
    return err ? io_error(writing, path, err) : 0;
}

/* Four threads move the O_DIRECT blocks of a slab (32 MiB of bounce
 * buffers per rank): with one request in flight at a time the virtual disk
 * measured here read 0.9-1.1 GB/s, with four 1.6-1.9 GB/s, and wrote 10-30%
 * faster. Each thread moves one contiguous quarter of the slab (four
 * sequential streams): on 1 rank that wrote faster than blocks dealt to
 * the threads in turn in 8 of 10 paired runs, median 15%; on 2 ranks the
 * same (docs/performance.md). */
#define BULK_THREADS 4

/* One thread's share of a slab's aligned middle: the blocks of [from, to).
 * Failures are recorded, not reported: the error message is the calling
 * thread's (error.c keeps it per thread). */
typedef struct bulk_part {
    int writing, fd, dfd;
    char *base;           /* memory of file offset `at` */
    uint64_t at, from, to;
    char *bounce;
    int err;              /* errno of the first failure; -1: unexpected end of file */
    int no_direct;        /* the file system refused O_DIRECT (EINVAL) */
} bulk_part;

static void *bulk_run(void *arg)
{
    bulk_part *j = arg;
    for (uint64_t off = j->from; off < j->to && !j->err; off += BULK_BLOCK) {
        size_t n = (size_t)(j->to - off < BULK_BLOCK ? j->to - off : BULK_BLOCK);
        char *mem = j->base + (off - j->at);
        if (j->writing)
            memcpy(j->bounce, mem, n);
        ssize_t r;
        do
            r = j->writing ? pwrite(j->dfd, j->bounce, n, (off_t)off)
                           : pread(j->dfd, j->bounce, n, (off_t)off);
        while (r < 0 && errno == EINTR);
        if (r < 0 && errno == EINVAL) {
            j->no_direct = 1;
            return NULL;
        }
        if (r <= 0) {
            j->err = r < 0 ? errno : -1;
            return NULL;
        }
        if (!j->writing)
            memcpy(mem, j->bounce, (size_t)r);
        if ((size_t)r < n) /* short (a full disk, the end of the file): the rest buffered */
            j->err = io_rest(j->writing, j->fd, mem + r, n - (size_t)r, off + (uint64_t)r);
    }
    return NULL;
}

/* Transfers a slab between memory and the file: the BULK_ALIGN-aligned
 * middle through dfd (the file opened with O_DIRECT, -1 when it could not
 * be) by way of the aligned bounce buffers (BULK_THREADS of BULK_BLOCK
 * bytes), the unaligned ends (shared with a neighbouring rank's slab or
 * HDF5's metadata) through fd. Where the file system refuses an O_DIRECT
 * transfer (EINVAL), the middle goes through fd and *dfd becomes -1. */
static int io_slab(int writing, int fd, int *dfd, char *bounce, const slab *s,
                   const char *path)
{
    char *p = (char *)s->buf;
    uint64_t a = s->offset, b = s->offset + s->bytes;
    uint64_t mid_a = (a + BULK_ALIGN - 1) / BULK_ALIGN * BULK_ALIGN;
    uint64_t mid_b = b / BULK_ALIGN * BULK_ALIGN;
    if (*dfd < 0 || mid_b <= mid_a)
        return io_all(writing, fd, p, s->bytes, a, path);
    int rc = io_all(writing, fd, p, (size_t)(mid_a - a), a, path);
    if (rc)
        return rc;
    bulk_part parts[BULK_THREADS];
    pthread_t threads[BULK_THREADS];
    int started[BULK_THREADS] = { 0 };
    /* bytes of each part: whole blocks, so that every part starts aligned */
    uint64_t blocks = (mid_b - mid_a + BULK_BLOCK - 1) / BULK_BLOCK;
    uint64_t per = (blocks + BULK_THREADS - 1) / BULK_THREADS * BULK_BLOCK;
    for (int t = 0; t < BULK_THREADS; t++) {
        uint64_t from = mid_a + (uint64_t)t * per < mid_b ? mid_a + (uint64_t)t * per : mid_b;
        uint64_t to = mid_b - from > per ? from + per : mid_b;
        parts[t] = (bulk_part){ .writing = writing, .fd = fd, .dfd = *dfd, .base = p, .at = a,
                                .from = from, .to = to,
                                .bounce = bounce + (size_t)t * BULK_BLOCK };
        /* the caller takes part 0, and any part whose thread did not start */
        if (t > 0 && from < to)
            started[t] = pthread_create(&threads[t], NULL, bulk_run, &parts[t]) == 0;
    }
    for (int t = 0; t < BULK_THREADS; t++)
        if (!started[t])
            bulk_run(&parts[t]);
    int no_direct = 0, err = 0;
    for (int t = 0; t < BULK_THREADS; t++) {
        if (started[t])
            pthread_join(threads[t], NULL);
        no_direct |= parts[t].no_direct;
        if (!err)
            err = parts[t].err;
    }
    if (no_direct && !err) { /* no O_DIRECT here after all: all of the middle buffered */
        close(*dfd);
        *dfd = -1;
        return io_all(writing, fd, p, s->bytes, a, path);
    }
    if (err)
        return io_error(writing, path, err);
    return io_all(writing, fd, p + (mid_b - a), (size_t)(b - mid_b), mid_b, path);
}

/* Opens path for the transfers of io_slab: *fd buffered, *dfd with O_DIRECT
 * (-1 where the file system refuses it), *bounce aligned (BULK_THREADS
 * blocks). */
static int open_bulk(int writing, const char *path, int *fd, int *dfd, char **bounce)
{
    int flags = writing ? O_WRONLY : O_RDONLY;
    *dfd = -1;
    *bounce = NULL;
    *fd = open(path, flags);
    if (*fd < 0)
        return btrm_error_set(BTRM_EIO, "cannot open %s: %s", path, strerror(errno));
    if (posix_memalign((void **)bounce, BULK_ALIGN, BULK_THREADS * BULK_BLOCK) != 0)
        *bounce = NULL; /* buffered transfers only */
    else
        *dfd = open(path, flags | O_DIRECT);
    return 0;
}

static void close_bulk(int dfd, char *bounce)
{
    if (dfd >= 0)
        close(dfd);
    free(bounce);
}

/* Every rank writes its slabs of the (closed) HDF5 file path and flushes
 * them; `midway` is the number of slabs before the ckpt-midway fault point. */
static int write_slabs(const btrm_comm *c, const char *path, const slab *slabs, int n,
                       int midway)
{
    char *bounce = NULL;
    int fd = -1, dfd = -1;
    int rc = open_bulk(1, path, &fd, &dfd, &bounce);
    for (int i = 0; i < n && !rc; i++) {
        if (i == midway)
            btrm_fault_point("ckpt-midway", c->rank);
        btrm_fault_point("ckpt-write", c->rank);
        rc = io_slab(1, fd, &dfd, bounce, &slabs[i], path);
    }
    if (!rc && fdatasync(fd) != 0)
        rc = btrm_error_set(BTRM_EIO, "cannot flush %s: %s", path, strerror(errno));
    close_bulk(dfd, bounce);
    if (fd >= 0 && close(fd) != 0 && !rc)
        rc = btrm_error_set(BTRM_EIO, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

/* Reads the flat range [a, b) of dset straight from the file with pread
 * when its data are one contiguous, unfiltered run of little-endian float32
 * inside the file; returns 1 when it cannot (the caller reads through HDF5),
 * 0 when read, or an error code. */
static int read_raw(hid_t dset, const char *path, hsize_t a, hsize_t b, float *buf)
{
    hid_t dcpl = H5Dget_create_plist(dset), type = H5Dget_type(dset);
    int raw = dcpl >= 0 && type >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS &&
              H5Pget_nfilters(dcpl) == 0 && H5Pget_external_count(dcpl) == 0 &&
              H5Tequal(type, H5T_IEEE_F32LE) > 0;
    BTRM_H5_CLOSE(type, dcpl);
    haddr_t at = raw ? H5Dget_offset(dset) : HADDR_UNDEF;
    if (at == HADDR_UNDEF)
        return 1;
    slab sl = { .offset = (uint64_t)at + (uint64_t)a * sizeof(float), .buf = buf,
                .bytes = b > a ? (size_t)(b - a) * sizeof(float) : 0 };
    char *bounce = NULL;
    int fd = -1, dfd = -1;
    int rc = open_bulk(0, path, &fd, &dfd, &bounce);
    struct stat sb;
    if (!rc && (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size < sl.offset + sl.bytes))
        rc = btrm_error_set(BTRM_EDATA, "%s: truncated: a dataset ends at byte %llu, the file "
                            "has %lld", path, (unsigned long long)(sl.offset + sl.bytes),
                            (long long)sb.st_size);
    if (!rc)
        rc = io_slab(0, fd, &dfd, bounce, &sl, path);
    close_bulk(dfd, bounce);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Creates the contiguous dataset name [dims] under loc with its space
 * allocated now and never filled, writes its crc32 attribute (from every
 * rank's slice [a, b) of the flat range, buf[0] being element a) and
 * describes this rank's slice in *out; the data are written later
 * (write_slabs), after the file is closed. */
static int create_dataset(const btrm_comm *c, hid_t loc, const char *name, int nd,
                          const hsize_t *dims, hsize_t a, hsize_t b, const float *buf,
                          const char *path, slab *out)
{
    int rc = 0;
    hid_t space = -1, dcpl = -1, dset = -1;
    space = H5Screate_simple(nd, dims, NULL);
    dcpl = btrm_h5_dcpl();
    BTRM_CHECK_H5(space, path);
    BTRM_CHECK_H5(dcpl, path);
    BTRM_CHECK_H5(H5Pset_layout(dcpl, H5D_CONTIGUOUS), path);
    BTRM_CHECK_H5(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY), path);
    BTRM_CHECK_H5(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), path);
    dset = H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    BTRM_CHECK_H5(dset, path);
    haddr_t at = H5Dget_offset(dset);
    if (at == HADDR_UNDEF) {
        rc = btrm_error_set(BTRM_EIO, "%s: dataset %s has no storage after creation", path,
                            name);
        goto fail;
    }
    *out = (slab){ .offset = (uint64_t)at + (uint64_t)a * sizeof(float), .buf = buf,
                   .bytes = b > a ? (size_t)(b - a) * sizeof(float) : 0 };
    uint32_t crc = 0;
    rc = combine_crc(c, b > a ? crc_of(buf, b - a) : 0, b > a ? (b - a) * sizeof(float) : 0,
                     &crc);
    if (rc)
        goto fail;
    rc = btrm_h5_write_attr_u32(dset, "crc32", crc);
fail:
    BTRM_H5_CLOSE(dset, dcpl, space);
    return rc;
}

static hsize_t max_u(hsize_t a, hsize_t b) { return a > b ? a : b; }
static hsize_t min_u(hsize_t a, hsize_t b) { return a < b ? a : b; }

/* The /state attributes that are int64_t fields of btrm_ckpt_state. */
static const struct {
    const char *name;
    size_t offset;
} state_i64[] = {
    { "step", offsetof(btrm_ckpt_state, step) },
    { "epoch", offsetof(btrm_ckpt_state, epoch) },
    { "in_epoch", offsetof(btrm_ckpt_state, in_epoch) },
    { "optim_step", offsetof(btrm_ckpt_state, optim_step) },
};
#define N_STATE_I64 (sizeof state_i64 / sizeof state_i64[0])

static int64_t *state_i64_field(const btrm_ckpt_state *st, size_t k)
{
    return (int64_t *)((char *)st + state_i64[k].offset);
}

static int write_state(hid_t file, const btrm_ckpt_state *st, const char *path)
{
    int rc = 0;
    hid_t g = -1, gcpl = -1;
    BTRM_CHECK_H5(gcpl = btrm_h5_gcpl(), path);
    BTRM_CHECK_H5(g = H5Gcreate2(file, "state", H5P_DEFAULT, gcpl, H5P_DEFAULT), path);
    for (size_t k = 0; k < N_STATE_I64 && !rc; k++)
        rc = btrm_h5_write_attr_i64(g, state_i64[k].name, *state_i64_field(st, k));
    if (!rc)
        rc = btrm_h5_write_attr_i64(g, "seed", (int64_t)st->seed);
    if (!rc)
        rc = btrm_h5_write_attr_i64(g, "ranks", st->ranks);
    if (!rc)
        rc = btrm_h5_write_attr_i64(g, "optim_type", st->optim_type);
    if (!rc)
        rc = btrm_h5_write_attr_double(g, "dbar", st->dbar);
    if (!rc)
        rc = btrm_h5_write_attr_doubles(g, "window", st->window, BTRM_CKPT_WINDOW);
    if (!rc)
        rc = btrm_h5_write_attr_string(g, "train_file", st->train_file);
    if (!rc)
        rc = btrm_h5_write_attr_i64(g, "train_crc32", st->train_crc32);
fail:
    BTRM_H5_CLOSE(g, gcpl);
    return rc;
}

/* The dataset names of an optimizer's state buffers in a file of the given
 * version: checkpoint-v1 stored them as AdamW's (exp_avg, exp_avg_sq) for
 * every optimizer, SGD's momentum buffer included. */
static const char *state_name(const btrm_optim_ops *ops, int version, int k)
{
    static const char *const v1_names[BTRM_OPTIM_MAX_STATE] = { "exp_avg", "exp_avg_sq" };
    return version == 1 ? v1_names[k] : ops->state_names[k];
}

int btrm_ckpt_write(const char *path, const btrm_comm *c, const btrm_ckpt_data *d,
                    const btrm_ckpt_state *st, const char *config_text)
{
    /* the temporary name is a dot file in the same directory */
    char tmp[BTRM_PATH_MAX + 64];
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp", (int)(slash - path), path, slash + 1);
    else
        snprintf(tmp, sizeof tmp, ".%s.tmp", path);
    btrm_h5_quiet();
    int rc = 0, n_slabs = 0;
    hid_t file = -1, model = -1, group = -1, optim = -1, gcpl = -1;
    const btrm_head *head = d->head;
    int n_state = d->optim ? d->optim->n_state : 0;
    /* the flat vector: the head's and, with a fine-tuned backbone, its
     * trained tensors (one dataset each) */
    uint64_t n_flat = d->n_params ? (uint64_t)d->n_params : (uint64_t)head->n_params;
    uint64_t n_bb = d->meta.backbone && d->meta.backbone->lt
                        ? (uint64_t)d->meta.backbone->lt->n_tensors : 0;
    slab *slabs = NULL;
    rc = btrm_comm_agree(c, BTRM_CALLOC(slabs, 2 * (size_t)head->n_layers + (size_t)n_bb +
                                                   (size_t)n_state));
    if (rc)
        return rc;
    file = open_parallel(tmp, c, 1);
    BTRM_CHECK_H5(file, tmp);
    /* The disk space first, decided together: a write that fails for lack of
     * space inside libhdf5 fails on some ranks only, and the others wait in
     * the next collective call forever (the 2-rank hang on a full tmpfs). */
    if (c->rank == 0)
        rc = btrm_file_reserve(tmp, btrm_h5_reserve_bytes(
                                        4 * n_flat * (uint64_t)(1 + n_state) +
                                            (config_text ? strlen(config_text) : 0),
                                        3 * (uint64_t)head->n_layers + n_bb +
                                            (uint64_t)n_state + 32));
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    /* HDF5 writes the structure (datasets with their space, crc32s, /state);
     * the data follow once it is closed (write_slabs). */
    BTRM_CHECK_H5(gcpl = btrm_h5_gcpl(), tmp);
    rc = btrm_h5_write_format(file, &btrm_format_checkpoint);
    if (!rc)
        rc = btrm_h5_write_attr_string(file, "config", config_text ? config_text : "");
    if (!rc)
        rc = btrm_model_group_create(file, tmp, head, &d->meta, &model);
    if (rc)
        goto fail;
    for (int l = 0; l < head->n_layers; l++) {
        const btrm_tensor_view *t = &head->layer[l];
        group = H5Gcreate2(model, t->name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
        BTRM_CHECK_H5(group, tmp);
        struct { const char *name; size_t off; hsize_t dims[2]; int nd; } parts[2] = {
            { "weight", t->weight_off, { (hsize_t)t->out, (hsize_t)t->in }, 2 },
            { "bias", t->bias_off, { (hsize_t)t->out, 0 }, 1 },
        };
        for (int k = 0; k < 2; k++) {
            hsize_t size = parts[k].nd == 2 ? parts[k].dims[0] * parts[k].dims[1]
                                            : parts[k].dims[0];
            hsize_t off = parts[k].off;
            /* this rank's slice of the flat vector, clipped to the tensor */
            hsize_t a = max_u((hsize_t)d->lo, off), b = min_u((hsize_t)d->hi, off + size);
            if (b < a)
                b = a;
            rc = create_dataset(c, group, parts[k].name, parts[k].nd, parts[k].dims, a - off,
                                b - off, d->params + a, tmp, &slabs[n_slabs++]);
            if (rc)
                goto fail;
        }
        H5Gclose(group);
        group = -1;
    }
    const btrm_model_backbone *bb = d->meta.backbone;
    if (bb) {
        rc = btrm_model_backbone_create(file, tmp, bb, &group);
        for (int i = 0; !rc && bb->lt && i < bb->lt->n_tensors; i++) {
            const btrm_llama_train_tensor *t = &bb->lt->tensors[i];
            hsize_t dims[2] = { (hsize_t)t->rows, (hsize_t)t->cols };
            hsize_t size = dims[0] * dims[1], off = bb->offset + t->offset;
            hsize_t a = max_u((hsize_t)d->lo, off), b = min_u((hsize_t)d->hi, off + size);
            if (b < a)
                b = a;
            rc = create_dataset(c, group, t->name, 2, dims, a - off, b - off, d->params + a,
                                tmp, &slabs[n_slabs++]);
        }
        if (rc)
            goto fail;
        H5Gclose(group);
        group = -1;
    }
    int midway = n_slabs;
    optim = H5Gcreate2(file, "optim", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    BTRM_CHECK_H5(optim, tmp);
    hsize_t n = n_flat;
    for (int k = 0; k < n_state && !rc; k++)
        rc = create_dataset(c, optim, d->optim->state_names[k], 1, &n, (hsize_t)d->lo,
                            (hsize_t)d->hi, d->state[k], tmp, &slabs[n_slabs++]);
    if (!rc)
        rc = write_state(file, st, tmp);
    BTRM_H5_CLOSE(gcpl, optim, model);
    gcpl = optim = model = -1;
    if (H5Fclose(file) < 0 && !rc)
        rc = btrm_h5_error(tmp, "H5Fclose", __FILE__, __LINE__);
    file = -1;
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = write_slabs(c, tmp, slabs, n_slabs, midway);
fail:
    BTRM_H5_CLOSE(gcpl, optim, group, model);
    if (file >= 0 && H5Fclose(file) < 0 && !rc)
        rc = btrm_h5_error(tmp, "H5Fclose", __FILE__, __LINE__);
    free(slabs);
    rc = btrm_comm_agree(c, rc);
    if (c->rank == 0) {
        /* durable before it becomes visible under its final name */
        if (!rc)
            rc = btrm_file_commit(tmp, path);
        else
            unlink(tmp);
    }
    return btrm_comm_agree(c, rc);
}

/* Reads the flat slice [a, b) of dataset loc/name into buf and checks the
 * whole dataset's crc32 from the ranks' slices. want_n: expected element count. */
static int read_dataset(const btrm_comm *c, hid_t loc, const char *name, hsize_t want_n,
                        int want_nd, const hsize_t *want_dims, hsize_t a, hsize_t b,
                        int replicated, float *buf, const char *path, const char *what)
{
    int rc = 0;
    int *counts = NULL, *displs = NULL; /* a split read's pieces */
    hid_t dset = -1, space = -1;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) {
        rc = btrm_error_set(BTRM_EDATA, "%s: checkpoint has no dataset %s", path, what);
        goto fail;
    }
    dset = H5Dopen2(loc, name, H5P_DEFAULT);
    BTRM_CHECK_H5(dset, path);
    /* btrm writes little-endian float32, read without conversion: libhdf5
     * converts other types through a buffer sized by the type (a crafted 1.8 GB
     * float), and a fuzzed conversion read crashed inside H5Dread (SEGV in
     * H5VM_memcpyvv, fuzz/regress/ckpt/conversion-read-1d6e09bb) */
    hid_t type = H5Dget_type(dset);
    BTRM_CHECK_H5(type, path);
    int is_f32 = H5Tequal(type, H5T_IEEE_F32LE) > 0;
    char tname[32];
    btrm_h5_type_name(type, tname, sizeof tname);
    H5Tclose(type);
    if (!is_f32) {
        rc = btrm_error_set(BTRM_EDATA, "%s: %s must be little-endian float32 (found %s)", path, what, tname);
        goto fail;
    }
    space = H5Dget_space(dset);
    BTRM_CHECK_H5(space, path);
    hsize_t dims[2] = { 0, 0 };
    int nd = H5Sget_simple_extent_dims(space, dims, NULL);
    hsize_t n = nd == 2 ? dims[0] * dims[1] : nd == 1 ? dims[0] : 0;
    if (want_dims && (nd != want_nd || dims[0] != want_dims[0] ||
                      (nd == 2 && dims[1] != want_dims[1]))) {
        char got[64], want[64];
        snprintf(got, sizeof got, nd == 2 ? "[%llu, %llu]" : "[%llu]",
                 (unsigned long long)dims[0], (unsigned long long)dims[1]);
        snprintf(want, sizeof want, want_nd == 2 ? "[%llu, %llu]" : "[%llu]",
                 (unsigned long long)want_dims[0], (unsigned long long)want_dims[1]);
        rc = btrm_error_set(BTRM_ECONFIG, "%s: %s has shape %s but the config's model needs %s",
                            path, what, got, want);
        goto fail;
    }
    if (n != want_n) {
        rc = btrm_error_set(BTRM_EDATA, "%s: %s has %llu values, expected %llu", path, what,
                            (unsigned long long)n, (unsigned long long)want_n);
        goto fail;
    }
    /* A replicated dataset (every rank wants all of it) is read in 1/P
     * pieces and all-gathered: the disk then delivers the file's size, not
     * P times the parameters. The choice depends on metadata only. */
    int split = replicated && c->size > 1 && n <= (hsize_t)INT_MAX;
    hsize_t ra = a, rb = b;
    if (split && !(rc = BTRM_MALLOC(counts, (size_t)c->size)) &&
        !(rc = BTRM_MALLOC(displs, (size_t)c->size))) {
        for (int r = 0; r < c->size; r++) {
            int64_t first = 0, count = 0;
            btrm_comm_block((int64_t)n, c->size, r, &first, &count);
            counts[r] = (int)count;
            displs[r] = (int)first;
        }
        ra = (hsize_t)displs[c->rank];
        rb = ra + (hsize_t)counts[c->rank];
    }
    if (split && (rc = btrm_comm_agree(c, rc)) != 0) /* before a collective H5Dread */
        goto fail;
    /* the same answer on every rank: it depends on the file's metadata only */
    rc = read_raw(dset, path, ra, rb, buf + (ra - a));
    if (rc == 1) {
        rc = 0;
        split = 0;
        ra = a;
        rb = b;
        if (transfer(dset, 0, a, b, buf) < 0) /* no jump: the agreement below */
            rc = btrm_h5_error(path, "H5Dread", __FILE__, __LINE__);
    }
    /* a failed read is this rank's alone: agree before the collectives below */
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    uint32_t stored = 0, crc = 0;
    rc = btrm_h5_read_attr_u32(dset, "crc32", &stored);
    if (rc)
        goto fail;
    if (replicated && !split) /* every rank read the whole dataset */
        crc = crc_of(buf, n);
    else
        rc = combine_crc(c, rb > ra ? crc_of(buf + (ra - a), rb - ra) : 0,
                         rb > ra ? (rb - ra) * sizeof(float) : 0, &crc);
    if (!rc && crc != stored)
        rc = btrm_error_set(BTRM_EDATA, "%s: %s is corrupt: crc32 %08x, stored %08x", path,
                            what, (unsigned)crc, (unsigned)stored);
    if (!rc && split)
        rc = btrm_comm_allgatherv_f32(c, buf, counts, displs);
fail:
    free(counts);
    free(displs);
    if (space >= 0)
        H5Sclose(space);
    if (dset >= 0)
        H5Dclose(dset);
    return rc;
}

static int read_state(hid_t file, btrm_ckpt_state *st, const char *path)
{
    int rc = 0;
    hid_t g = -1;
    int version = st->version;
    memset(st, 0, sizeof *st);
    st->version = version;
    if (H5Lexists(file, "state", H5P_DEFAULT) <= 0)
        return btrm_error_set(BTRM_EDATA, "%s: checkpoint has no /state", path);
    g = H5Gopen2(file, "state", H5P_DEFAULT);
    BTRM_CHECK_H5(g, path);
    int64_t seed = 0, ranks = 0, optim = 0, crc = 0;
    /* checkpoint-v1 saved 10 doubles, the last two always 0, v2 the first 8 */
    double window[BTRM_CKPT_WINDOW + 2] = { 0 };
    size_t n_window = 0;
    for (size_t k = 0; k < N_STATE_I64 && !rc; k++)
        rc = btrm_h5_read_attr_i64(g, state_i64[k].name, state_i64_field(st, k));
    if (!rc)
        rc = btrm_h5_read_attr_i64(g, "seed", &seed);
    if (!rc)
        rc = btrm_h5_read_attr_i64(g, "ranks", &ranks);
    if (!rc)
        rc = btrm_h5_read_attr_i64(g, "optim_type", &optim);
    if (!rc)
        rc = btrm_h5_read_attr_double(g, "dbar", &st->dbar);
    if (!rc)
        rc = btrm_h5_read_attr_doubles(g, "window", window, BTRM_CKPT_WINDOW + 2, &n_window);
    if (!rc && n_window < 8)
        rc = btrm_error_set(BTRM_EDATA, "%s: /state attribute window has %zu values, expected "
                            "%d", path, n_window, BTRM_CKPT_WINDOW);
    if (!rc)
        rc = btrm_h5_read_attr_i64(g, "train_crc32", &crc);
    if (!rc)
        rc = btrm_h5_read_attr_string(g, "train_file", st->train_file, sizeof st->train_file);
    memcpy(st->window, window, sizeof st->window);
    st->seed = (uint64_t)seed;
    st->ranks = (int)ranks;
    st->optim_type = (int)optim;
    st->train_crc32 = (uint32_t)crc;
fail:
    if (g >= 0)
        H5Gclose(g);
    return rc;
}

/* The format check and /state, agreed on; every rank returns the same code. */
static int open_checked(const char *path, const btrm_comm *c, hid_t *file,
                        btrm_ckpt_state *st)
{
    *file = -1;
    /* rank 0 reads the file's structure once (btrm_h5raw_check_file) */
    int checked = btrm_comm_agree(c, c->rank == 0 ? btrm_h5raw_check_file(path) : 0);
    if (checked)
        return checked;
    *file = open_parallel(path, c, 0);
    if (*file < 0)
        return btrm_comm_agree(c, btrm_error_set(BTRM_EDATA, "%s: cannot open as HDF5 "
                                                 "(missing, truncated or not HDF5)", path));
    st->version = 0;
    int rc = btrm_comm_agree(c, btrm_h5_check_format(*file, path, &btrm_format_checkpoint,
                                                     &st->version));
    if (!rc)
        rc = btrm_comm_agree(c, read_state(*file, st, path));
    return rc;
}

/* /backbone against the trainer's (d->meta.backbone): the same base file
 * (content hash) and tokenizer, the same fine-tuning setup; then its
 * tensors, whole on every rank. Collective reads; the comparisons give every
 * rank the same answer (the same file). */
static int read_backbone(const btrm_comm *c, hid_t file, const char *path,
                         const btrm_ckpt_data *d)
{
    const btrm_model_backbone *want = d->meta.backbone;
    int has = btrm_h5_exists(file, "/backbone");
    if (has < 0)
        return has;
    if (!want && !has)
        return 0;
    if (!want || !has)
        return btrm_error_set(BTRM_ECONFIG, "%s was written %s model.backbone; the config "
                              "trains %s one", path, has ? "with" : "without",
                              want ? "with" : "without");
    btrm_model_backbone got;
    hid_t group = H5Gopen2(file, "backbone", H5P_DEFAULT);
    if (group < 0)
        return btrm_h5_error(path, "H5Gopen2", __FILE__, __LINE__);
    int rc = btrm_model_backbone_read_attrs(group, path, &got);
    if (!rc && strcmp(got.model_hash, want->model_hash))
        rc = btrm_error_set(BTRM_ECONFIG, "%s was trained on the base model %s (XXH3-128 %s); "
                            "%s has another content (XXH3-128 %s): a resume needs the same "
                            "base file", path, got.model_file, got.model_hash, want->model_file,
                            want->model_hash);
    if (!rc && strcmp(got.tokenizer_hash, want->tokenizer_hash))
        rc = btrm_error_set(BTRM_ECONFIG, "%s: the backbone's tokenizer differs from the one "
                            "it was trained with (%s)", path, want->spec);
    if (!rc && (got.ft.type != want->ft.type || got.ft.layers != want->ft.layers ||
                (want->ft.type == BTRM_FT_LORA &&
                 (got.ft.rank != want->ft.rank || got.ft.alpha != want->ft.alpha ||
                  got.ft.targets != want->ft.targets))))
        rc = btrm_error_set(BTRM_ECONFIG, "%s was trained with model.finetune type %d, rank "
                            "%d, alpha %g, layers %d, targets 0x%x; the config has type %d, "
                            "rank %d, alpha %g, layers %d, targets 0x%x", path, got.ft.type,
                            got.ft.rank, (double)got.ft.alpha, got.ft.layers, got.ft.targets,
                            want->ft.type, want->ft.rank, (double)want->ft.alpha,
                            want->ft.layers, want->ft.targets);
    if (!rc && (got.pool != want->pool || got.bos != want->bos ||
                got.max_tokens != want->max_tokens))
        rc = btrm_error_set(BTRM_ECONFIG, "%s: the backbone's pool %d, bos %d, max_tokens %d "
                            "differ from the config's %d, %d, %d", path, got.pool, got.bos,
                            got.max_tokens, want->pool, want->bos, want->max_tokens);
    rc = btrm_comm_agree(c, rc);
    for (int i = 0; !rc && want->lt && i < want->lt->n_tensors; i++) {
        const btrm_llama_train_tensor *t = &want->lt->tensors[i];
        hsize_t dims[2] = { (hsize_t)t->rows, (hsize_t)t->cols };
        char what[96];
        snprintf(what, sizeof what, "/backbone/%s", t->name);
        rc = read_dataset(c, group, t->name, dims[0] * dims[1], 2, dims, 0, dims[0] * dims[1], 1,
                          d->params + want->offset + t->offset, path, what);
        rc = btrm_comm_agree(c, rc);
    }
    H5Gclose(group);
    return rc;
}

int btrm_ckpt_read(const char *path, const btrm_comm *c, btrm_ckpt_data *d,
                   btrm_ckpt_state *st)
{
    btrm_h5_quiet();
    hid_t file = -1, model = -1, group = -1, optim = -1;
    int rc = open_checked(path, c, &file, st);
    if (rc)
        goto fail;
    model = H5Gopen2(file, "model", H5P_DEFAULT);
    BTRM_CHECK_H5(model, path);
    int kind = 0, activation = 0;
    rc = btrm_comm_agree(c, btrm_model_group_read_attrs(model, path, &kind, &activation,
                                                        &d->meta));
    if (rc)
        goto fail;
    const btrm_head *head = d->head;
    for (int l = 0; l < head->n_layers && !rc; l++) {
        const btrm_tensor_view *t = &head->layer[l];
        char what[64];
        if (H5Lexists(model, t->name, H5P_DEFAULT) <= 0) {
            rc = btrm_comm_agree(c, btrm_error_set(BTRM_ECONFIG, "%s: checkpoint has no "
                                 "/model/%s but the config's model does", path, t->name));
            break;
        }
        group = H5Gopen2(model, t->name, H5P_DEFAULT);
        BTRM_CHECK_H5(group, path);
        hsize_t wdims[2] = { (hsize_t)t->out, (hsize_t)t->in }, bdims[1] = { (hsize_t)t->out };
        snprintf(what, sizeof what, "/model/%s/weight", t->name);
        /* every rank needs the whole parameter vector */
        rc = read_dataset(c, group, "weight", wdims[0] * wdims[1], 2, wdims, 0,
                          wdims[0] * wdims[1], 1, d->params + t->weight_off, path, what);
        rc = btrm_comm_agree(c, rc);
        if (!rc) {
            snprintf(what, sizeof what, "/model/%s/bias", t->name);
            rc = read_dataset(c, group, "bias", bdims[0], 1, bdims, 0, bdims[0], 1,
                              d->params + t->bias_off, path, what);
            rc = btrm_comm_agree(c, rc);
        }
        H5Gclose(group);
        group = -1;
    }
    if (rc)
        goto fail;
    rc = btrm_comm_agree(c, read_backbone(c, file, path, d));
    if (rc)
        goto fail;
    if (btrm_optim_lookup(st->optim_type) != d->optim) {
        rc = btrm_comm_agree(c, btrm_error_set(BTRM_ECONFIG, "%s: written by optim.type %s, the "
                             "config says %s", path,
                             btrm_config_enum_name("optim.type", st->optim_type),
                             d->optim ? d->optim->name : "newton"));
        goto fail;
    }
    optim = H5Gopen2(file, "optim", H5P_DEFAULT);
    BTRM_CHECK_H5(optim, path);
    hsize_t n = d->n_params ? d->n_params : head->n_params;
    int whole = d->lo == 0 && (hsize_t)d->hi == n; /* a replicated state */
    for (int k = 0; d->optim && k < d->optim->n_state && !rc; k++) {
        const char *name = state_name(d->optim, st->version, k);
        char what[64];
        snprintf(what, sizeof what, "/optim/%s", name);
        rc = read_dataset(c, optim, name, n, 1, NULL, (hsize_t)d->lo, (hsize_t)d->hi, whole,
                          d->state[k], path, what);
        rc = btrm_comm_agree(c, rc);
    }
fail:
    BTRM_H5_CLOSE(optim, group, model, file);
    return btrm_comm_agree(c, rc);
}

/* Verifies one dataset's checksum by slices (any rank count). */
static int verify_dataset(const btrm_comm *c, hid_t loc, const char *name, const char *what,
                          const char *path, int report)
{
    hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
    if (dset < 0)
        return btrm_error_set(BTRM_EDATA, "%s: cannot open %s", path, what);
    hid_t space = H5Dget_space(dset);
    hsize_t dims[2] = { 0, 1 };
    int nd = H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    hsize_t n = nd == 2 ? dims[0] * dims[1] : dims[0];
    /* the values the shape claims are in the file before a buffer that size */
    int rc = btrm_h5_check_stored(dset, path, what, n, sizeof(float));
    H5Dclose(dset);
    int64_t first = 0, count = 0;
    btrm_comm_block((int64_t)n, c->size, c->rank, &first, &count);
    float *buf = NULL;
    if (!rc)
        rc = BTRM_MALLOC(buf, count > 0 ? count : 1);
    rc = btrm_comm_agree(c, rc);
    if (!rc)
        rc = read_dataset(c, loc, name, n, nd, nd == 2 ? dims : NULL, (hsize_t)first,
                          (hsize_t)(first + count), 0, buf, path, what);
    rc = btrm_comm_agree(c, rc);
    free(buf);
    if (report && c->rank == 0)
    {
        char shape[64];
        if (nd == 2)
            snprintf(shape, sizeof shape, "[%llu, %llu]", (unsigned long long)dims[0],
                     (unsigned long long)dims[1]);
        else
            snprintf(shape, sizeof shape, "[%llu]", (unsigned long long)dims[0]);
        /* a refusal says why: a crc32 mismatch, or a type or size that is not a
         * checkpoint's */
        if (rc)
            printf("  %-26s %-16s BAD: %s\n", what, shape, btrm_error_msg());
        else
            printf("  %-26s %-16s float32  crc32 ok\n", what, shape);
    }
    return rc;
}

int btrm_ckpt_verify(const char *path, const btrm_comm *c, btrm_ckpt_state *st, int report)
{
    btrm_h5_quiet();
    int rc = 0, bad = 0;
    hid_t file = -1, model = -1, group = -1, optim = -1;
    char first_error[BTRM_ERROR_MAX] = "";
    rc = open_checked(path, c, &file, st);
    if (rc)
        goto fail;
    /* the tensors fc0, fc1, ..., then out */
    model = H5Gopen2(file, "model", H5P_DEFAULT);
    BTRM_CHECK_H5(model, path);
    for (int k = 0;; k++) {
        char name[64], what[128];
        snprintf(name, sizeof name, "fc%d", k);
        if (H5Lexists(model, name, H5P_DEFAULT) <= 0)
            snprintf(name, sizeof name, "out");
        group = H5Gopen2(model, name, H5P_DEFAULT);
        BTRM_CHECK_H5(group, path);
        for (int p = 0; p < 2; p++) {
            const char *part = p ? "bias" : "weight";
            snprintf(what, sizeof what, "/model/%s/%s", name, part);
            if (verify_dataset(c, group, part, what, path, report) && !bad++)
                snprintf(first_error, sizeof first_error, "%s", btrm_error_msg());
        }
        H5Gclose(group);
        group = -1;
        if (!strcmp(name, "out"))
            break;
    }
    /* the backbone's trained tensors */
    if (btrm_h5_exists(file, "/backbone") == 1) {
        group = H5Gopen2(file, "backbone", H5P_DEFAULT);
        BTRM_CHECK_H5(group, path);
        H5G_info_t info;
        BTRM_CHECK_H5(H5Gget_info(group, &info), path);
        for (hsize_t i = 0; i < info.nlinks; i++) {
            char name[96] = "", what[128];
            if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                   H5P_DEFAULT) < 0)
                continue;
            snprintf(what, sizeof what, "/backbone/%s", name);
            if (verify_dataset(c, group, name, what, path, report) && !bad++)
                snprintf(first_error, sizeof first_error, "%s", btrm_error_msg());
        }
        H5Gclose(group);
        group = -1;
    }
    /* the optimizer's state buffers, by the names of its version */
    const btrm_optim_ops *ops = btrm_optim_lookup(st->optim_type);
    optim = H5Gopen2(file, "optim", H5P_DEFAULT);
    BTRM_CHECK_H5(optim, path);
    for (int k = 0; ops && k < ops->n_state; k++) {
        const char *name = state_name(ops, st->version, k);
        char what[128];
        snprintf(what, sizeof what, "/optim/%s", name);
        if (verify_dataset(c, optim, name, what, path, report) && !bad++)
            snprintf(first_error, sizeof first_error, "%s", btrm_error_msg());
    }
    if (bad)
        rc = btrm_error_set(BTRM_EDATA, "%s", first_error);
fail:
    BTRM_H5_CLOSE(optim, group, model, file);
    return btrm_comm_agree(c, rc);
}

int btrm_ckpt_read_config(const char *path, char **config_text)
{
    *config_text = NULL;
    hid_t file = btrm_h5_open_read(path);
    if (file < 0)
        return btrm_h5_open_error(path, "cannot open");
    size_t size = 1 << 20; /* config.c refuses larger config files */
    char *text = malloc(size);
    int rc = text ? btrm_h5_read_attr_string(file, "config", text, size)
                  : btrm_error_set(BTRM_ENOMEM, "out of memory");
    H5Fclose(file);
    if (rc)
        free(text);
    else
        *config_text = text;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The checkpoint directory */

static int is_ckpt_name(const struct dirent *e)
{
    long long step;
    char tail[8];
    return sscanf(e->d_name, "step-%lld.%7s", &step, tail) == 2 && !strcmp(tail, "h5") &&
           strlen(e->d_name) == 16;
}

void btrm_ckpt_list_free(char **paths, int n)
{
    for (int i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
}

int btrm_ckpt_list(const char *dir, char ***paths, int *n_out)
{
    struct dirent **names = NULL;
    *paths = NULL;
    *n_out = 0;
    int n = scandir(dir, &names, is_ckpt_name, alphasort);
    if (n < 0)
        return 0; /* no directory yet: no checkpoints */
    int rc = BTRM_CALLOC(*paths, n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        /* newest first: the names sort by step */
        if (!rc && !((*paths)[i] = btrm_strdup_printf("%s/%s", dir, names[n - 1 - i]->d_name)))
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory listing %s", dir);
        free(names[n - 1 - i]);
    }
    free(names);
    if (rc) {
        btrm_ckpt_list_free(*paths, n);
        *paths = NULL;
        return rc;
    }
    *n_out = n;
    return 0;
}

void btrm_ckpt_rotate(const char *dir, const char *newest, int keep)
{
    char link[BTRM_PATH_MAX + 64], tmp[BTRM_PATH_MAX + 64];
    const char *base = strrchr(newest, '/') ? strrchr(newest, '/') + 1 : newest;
    snprintf(link, sizeof link, "%s/latest", dir);
    snprintf(tmp, sizeof tmp, "%s/.latest.tmp", dir);
    unlink(tmp);
    if (symlink(base, tmp) != 0 || rename(tmp, link) != 0)
        btrm_log_warn("cannot update %s: %s", link, strerror(errno));
    char **paths = NULL;
    int n = 0;
    if (btrm_ckpt_list(dir, &paths, &n) != 0)
        btrm_log_warn("cannot list %s to remove old checkpoints: %s", dir, btrm_error_msg());
    for (int i = keep > 0 ? keep : n; i < n; i++)
        if (unlink(paths[i]) != 0)
            btrm_log_warn("cannot remove old checkpoint %s: %s", paths[i], strerror(errno));
    btrm_ckpt_list_free(paths, n);
}
