/* bench/comm-bench.c: the collectives of one data-parallel training step on
 * the gradient of an mlp 4096 -> 1024 -> 1 (4,196,353 parameters + the 4 loss
 * sums, float32), as src/run/train.c issues them, and a hand-written
 * alternative:
 *   reduce_scatter  MPI_Reduce_scatter, rank blocks as btrm_comm_block cuts
 *                   them (dist.shard_optimizer: true)
 *   allgatherv      MPI_Allgatherv in place of the updated parameters
 *   allreduce       MPI_Allreduce in place (dist.shard_optimizer: false)
 *   ring_rs         reduce-scatter as P - 1 rounds of MPI_Sendrecv of one
 *                   block to the next rank and a local sum (a fixed order, so
 *                   deterministic for a given rank count)
 * Each is timed over --iters calls after a barrier (the slowest rank's time);
 * it prints the best and the median call in ms, and the bandwidth as the
 * bytes of the whole vector / time.
 *
 * Build: make -C bench comm-bench. Run: tests/mpirun.sh 2 bench/comm-bench
 * [--n FLOATS] [--iters 20]. */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Ring reduce-scatter of send[n] into recv[counts[rank]]: in round k rank r
 * sends its running sum of block (r - k - 1) mod P to r + 1 and adds the block
 * it receives from r - 1 to its own contribution. */
static void ring_reduce_scatter(const float *send, float *recv, float *acc, float *tmp,
                                const int *counts, const int *displs, MPI_Comm comm)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    int blk = (rank + size - 1) % size; /* the block this rank starts */
    memcpy(acc, send + displs[blk], (size_t)counts[blk] * sizeof *acc);
    for (int k = 1; k < size; k++) {
        int in_blk = (rank + size - 1 - k) % size;
        MPI_Sendrecv(acc, counts[blk], MPI_FLOAT, next, k, tmp, counts[in_blk], MPI_FLOAT, prev,
                     k, comm, MPI_STATUS_IGNORE);
        const float *mine = send + displs[in_blk];
        float *out = k == size - 1 ? recv : acc;
        for (int i = 0; i < counts[in_blk]; i++)
            out[i] = tmp[i] + mine[i];
        blk = in_blk;
    }
    if (size == 1)
        memcpy(recv, send, (size_t)counts[0] * sizeof *recv);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int n = 4196353 + 4, iters = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
    }
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int *counts = malloc((size_t)size * sizeof *counts), *displs = malloc((size_t)size * sizeof *displs);
    for (int r = 0, off = 0; r < size; r++) {
        counts[r] = n / size + (r < n % size);
        displs[r] = off;
        off += counts[r];
    }
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    float *acc = malloc((size_t)counts[0] * sizeof *acc), *tmp = malloc((size_t)counts[0] * sizeof *tmp);
    for (int i = 0; i < n; i++)
        a[i] = (float)(i % 97) * 0.01f;
    memset(b, 0, (size_t)n * sizeof *b);
    const char *names[4] = { "reduce_scatter", "allgatherv", "allreduce", "ring_rs" };
    double *t = malloc((size_t)iters * sizeof *t);
    if (rank == 0)
        printf("# comm-bench: %d ranks, %d floats (%.1f MB), %d calls each\n%-16s %9s %9s %10s\n",
               size, n, n * 4e-6, iters, "collective", "best ms", "median ms", "best GB/s");
    for (int c = 0; c < 4; c++) {
        for (int it = -2; it < iters; it++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            switch (c) {
            case 0: MPI_Reduce_scatter(a, b, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); break;
            case 1:
                MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, counts, displs, MPI_FLOAT,
                               MPI_COMM_WORLD);
                break;
            case 2: MPI_Allreduce(MPI_IN_PLACE, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); break;
            default: ring_reduce_scatter(a, b, acc, tmp, counts, displs, MPI_COMM_WORLD); break;
            }
            double dt = MPI_Wtime() - t0, worst = dt;
            MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (it >= 0)
                t[it] = worst;
            if (c == 2) /* keep the values bounded */
                memset(b, 0, (size_t)n * sizeof *b);
        }
        qsort(t, (size_t)iters, sizeof *t, cmp_double);
        if (rank == 0)
            printf("%-16s %9.2f %9.2f %10.2f\n", names[c], t[0] * 1e3, t[iters / 2] * 1e3,
                   n * 4e-9 / t[0]);
    }
    free(a), free(b), free(acc), free(tmp), free(t), free(counts), free(displs);
    MPI_Finalize();
    return 0;
}
