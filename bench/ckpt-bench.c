/* bench/ckpt-bench.c: checkpoint write and read bandwidth of btrm_ckpt_write
 * and btrm_ckpt_read (src/io/ckpt.c: collective HDF5 through MPI-IO, crc32 of
 * every dataset, fsync and rename) for a large AdamW state, on however many
 * ranks it is started with.
 *
 * The state is an mlp head D -> H -> 1 (default 4096 -> 24000 -> 1: 98.35 M
 * parameters), so a checkpoint holds params + exp_avg + exp_avg_sq =
 * 3 x 393 MB of float32. As in src/run/train.c with dist.shard_optimizer, every
 * rank holds all the parameters and the moments of its contiguous slice
 * [lo, hi); a write has every rank write its slice of all three, a read has
 * every rank read all the parameters and its slice of the moments.
 *
 * Per repetition:
 *   write       btrm_ckpt_write (temporary file, fsync by rank 0, rename);
 *   read cold   the file's pages are first dropped from the page cache
 *               (fdatasync + posix_fadvise(DONTNEED) on this one file: no
 *               effect on other files), then btrm_ckpt_read;
 *   read warm   btrm_ckpt_read again, from the page cache.
 * Each time is the slowest rank's (barrier before, MPI_Allreduce MAX of the
 * durations after); bandwidth = checkpoint file size / time. The values read
 * back are compared with those written.
 *
 * Build: make -C bench ckpt-bench. Run: mpirun -np P bench/ckpt-bench
 * [--dir DIR] [--dim 4096] [--hidden 24000] [--repeat 3] [--keep].
 * bench/ckpt-bench.sh runs it on 1 and 2 ranks next to dd. */
#define _POSIX_C_SOURCE 200809L
#include "ckpt.h"
#include "comm.h"
#include "error.h"
#include "head.h"
#include "memory.h"

#include <fcntl.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(int32_t)(s >> 32) * 0x1p-31f;
    }
}

static double slowest(MPI_Comm comm, double t)
{
    double max = t;
    MPI_Allreduce(&t, &max, 1, MPI_DOUBLE, MPI_MAX, comm);
    return max;
}

/* Drops the clean pages of path from the page cache (rank 0; the file is
 * shared). */
static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

int main(int argc, char **argv)
{
    btrm_keep_heap(); /* as btrm's main does */
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    int dim = 4096, hidden = 24000, repeat = 3, keep = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc) dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--hidden") && i + 1 < argc) hidden = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--keep")) keep = 1;
        else {
            fprintf(stderr, "usage: ckpt-bench [--dir DIR] [--dim D] [--hidden H] "
                            "[--repeat R] [--keep]\n");
            MPI_Finalize();
            return 2;
        }
    }
    btrm_comm c;
    int rc = btrm_comm_init(&c, MPI_COMM_WORLD);
    btrm_head head;
    if (!rc)
        rc = btrm_head_init(&head, BTRM_HEAD_MLP, BTRM_ACT_GELU, dim, &hidden, 1);
    if (rc) {
        fprintf(stderr, "ckpt-bench: %s\n", btrm_error_msg());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const size_t n = head.n_params;
    int64_t lo, count;
    btrm_comm_block((int64_t)n, c.size, c.rank, &lo, &count);
    const size_t slice = (size_t)count;
    float *params = malloc(n * sizeof *params), *m = malloc(slice * sizeof *m);
    float *v = malloc(slice * sizeof *v), *back = malloc(n * sizeof *back);
    float *back_m = malloc(slice * sizeof *back_m), *back_v = malloc(slice * sizeof *back_v);
    if (!params || !m || !v || !back || !back_m || !back_v) {
        fprintf(stderr, "ckpt-bench: rank %d: out of memory\n", c.rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    fill(params, n, 1);
    fill(m, slice, 2 + (uint64_t)lo);
    fill(v, slice, 3 + (uint64_t)lo);
    memset(back, 0, n * sizeof *back); /* touch every page before timing */
    memset(back_m, 0, slice * sizeof *back_m);
    memset(back_v, 0, slice * sizeof *back_v);

    btrm_ckpt_data d = { .head = &head, .params = params,
                         .optim = btrm_optim_lookup(BTRM_OPTIM_ADAMW), .state = { m, v },
                         .lo = lo, .hi = lo + count, .meta = { .loss = BTRM_LOSS_BT } };
    btrm_ckpt_state st = { .step = 1, .optim_step = 1, .seed = 1, .ranks = c.size,
                           .optim_type = BTRM_OPTIM_ADAMW };
    snprintf(st.train_file, sizeof st.train_file, "ckpt-bench");
    char path[4096];
    snprintf(path, sizeof path, "%s/ckpt-bench-%d.h5", dir, c.size);
    if (c.rank == 0)
        printf("# ckpt-bench: %d rank%s, %zu parameters (mlp %d -> %d -> 1), state %.1f MB "
               "(params + exp_avg + exp_avg_sq), file %s\n", c.size, c.size > 1 ? "s" : "", n,
               dim, hidden, 3.0 * n * 4 / 1e6, path);
    if (c.rank == 0)
        printf("%-4s %10s %10s %12s %10s %12s %10s %12s\n", "rep", "MB", "write s", "write MB/s",
               "cold s", "cold MB/s", "warm s", "warm MB/s");
    for (int r = 0; r < repeat && !rc; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        rc = btrm_ckpt_write(path, &c, &d, &st, "ckpt-bench: no config");
        double t_write = slowest(MPI_COMM_WORLD, MPI_Wtime() - t0);
        if (rc)
            break;
        double mb = 0;
        if (c.rank == 0) {
            struct stat sb;
            mb = stat(path, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
            drop_cache(path);
        }
        MPI_Bcast(&mb, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        double t_read[2];
        for (int warm = 0; warm < 2 && !rc; warm++) {
            btrm_ckpt_data in = d;
            in.params = back;
            in.state[0] = back_m; /* AdamW's exp_avg, exp_avg_sq */
            in.state[1] = back_v;
            btrm_ckpt_state got;
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = MPI_Wtime();
            rc = btrm_ckpt_read(path, &c, &in, &got);
            t_read[warm] = slowest(MPI_COMM_WORLD, MPI_Wtime() - t0);
            int same = !rc && !memcmp(back, params, n * sizeof *back) &&
                       !memcmp(back_m, m, slice * sizeof *m) &&
                       !memcmp(back_v, v, slice * sizeof *v);
            rc = btrm_comm_agree(&c, rc ? rc : same ? 0
                                 : btrm_error_set(BTRM_EDATA, "rank %d: values read back differ",
                                                  c.rank));
        }
        if (!rc && c.rank == 0)
            printf("%-4d %10.1f %10.3f %12.1f %10.3f %12.1f %10.3f %12.1f\n", r + 1, mb, t_write,
                   mb / t_write, t_read[0], mb / t_read[0], t_read[1], mb / t_read[1]);
        fflush(stdout);
    }
    if (rc && c.rank == 0)
        fprintf(stderr, "ckpt-bench: %s\n", btrm_error_msg());
    if (!keep && c.rank == 0)
        unlink(path);
    free(params), free(m), free(v), free(back), free(back_m), free(back_v);
    btrm_comm_free(&c);
    MPI_Finalize();
    return rc ? 1 : 0;
}
