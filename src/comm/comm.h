/* comm.h: every MPI call of btrm goes through here.
 *
 * A btrm_comm wraps a communicator (never MPI_COMM_WORLD inside the library:
 * main passes it in) with MPI_ERRORS_RETURN set, plus the node-local
 * communicator used for shared-memory windows. */
#ifndef BTRM_COMM_H
#define BTRM_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct btrm_comm {
    MPI_Comm comm;    /* duplicate of the caller's communicator */
    int rank, size;
    MPI_Comm node;    /* ranks sharing memory with this one */
    int node_rank, node_size;
    int n_nodes;      /* node communicators in comm */
} btrm_comm;

/* Checks an MPI return code; records BTRM_EMPI with the call and location. */
#define BTRM_CHECK_MPI(call)                                                     \
    do {                                                                         \
        int mpi_rc_ = (call);                                                    \
        if (mpi_rc_ != MPI_SUCCESS)                                              \
            return btrm_comm_error(mpi_rc_, #call, __FILE__, __LINE__);          \
    } while (0)
int btrm_comm_error(int mpi_rc, const char *call, const char *file, int line);

/* Test hook: with BTRM_TEST_RANKS_PER_NODE=k in the environment, each node's
 * ranks are split further into groups of k consecutive ranks, each group
 * acting as a node of its own (its own shared window, its own copy of the
 * features), so that one machine tests what several nodes do
 * (tests/multinode.sh). The node takes the largest k any of its ranks sees;
 * unset or 0 means no split. Never needed on a real cluster. */
#define BTRM_TEST_RANKS_PER_NODE_ENV "BTRM_TEST_RANKS_PER_NODE"

int btrm_comm_init(btrm_comm *c, MPI_Comm parent);
void btrm_comm_free(btrm_comm *c);

/* Collective agreement on a return code: every rank passes its own rc and gets
 * back the worst (most negative) one. Ranks that succeeded receive the failing
 * rank's message, prefixed with "rank N: ", so rank 0 can print it. */
int btrm_comm_agree(const btrm_comm *c, int rc);

/* Ends the whole job from one rank when agreement is impossible (another rank
 * may already be gone, or we are inside a collective phase): prints
 * "btrm: rank N: fatal: <msg>" and calls MPI_Abort. */
_Noreturn void btrm_comm_abort(const btrm_comm *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Thin wrappers that return btrm codes (sum in place over all ranks). */
int btrm_comm_allreduce_sum_f32(const btrm_comm *c, float *buf, size_t n);
int btrm_comm_allreduce_sum_f64(const btrm_comm *c, double *buf, size_t n);
int btrm_comm_allreduce_max_f64(const btrm_comm *c, double *buf, size_t n);
int btrm_comm_allreduce_sum_i64(const btrm_comm *c, int64_t *buf, size_t n);
int btrm_comm_allreduce_max_int(const btrm_comm *c, int *value);
int btrm_comm_bcast(const btrm_comm *c, void *buf, size_t bytes, int root);
int btrm_comm_barrier(const btrm_comm *c);
/* Gathers a variable number of doubles from every rank onto all ranks, in rank
 * order: out has room for the total, counts[size] gets each rank's count. */
int btrm_comm_allgatherv_f64(const btrm_comm *c, const double *in, int n_in,
                             double *out, int *counts);

/* The same for int32 values. */
int btrm_comm_allgatherv_i32(const btrm_comm *c, const int32_t *in, int n_in, int32_t *out,
                             int *counts);
/* In-place all-gather of rows of row_len floats: rank p's counts[p] rows at
 * row displs[p] of buf are filled; afterwards every rank has every row (the
 * counts are rows, so buf may hold more than 2^31 floats). */
int btrm_comm_allgatherv_rows_f32(const btrm_comm *c, float *buf, int row_len,
                                  const int *counts, const int *displs);
/* Gathers n uint64 values from every rank onto all ranks, in rank order
 * (out holds n * size values). */
int btrm_comm_allgather_u64(const btrm_comm *c, const uint64_t *in, int n, uint64_t *out);

/* Reduce-scatter of a float buffer: every rank passes the full buffer in
 * send; rank p receives the sum of block p (counts[p] floats, blocks in rank
 * order) in recv. */
int btrm_comm_reduce_scatter_f32(const btrm_comm *c, const float *send, float *recv,
                                 const int *counts);
/* In-place all-gather: rank p's block (counts[p] floats at displs[p]) of buf
 * is already filled; afterwards every rank has every block. */
int btrm_comm_allgatherv_f32(const btrm_comm *c, float *buf, const int *counts,
                             const int *displs);

/* A gradient reduction in regions, overlapped with the backward pass: each
 * region of buf (a contiguous range, fixed at init; every element in exactly
 * one) is reduced by a non-blocking collective started as soon as the caller
 * says the region is final (btrm_comm_reducer_start), so that the reduction of
 * a finished block runs while the next is computed. Open MPI's shared-memory
 * transport has no progress thread: start also tests the requests in flight.
 *   allreduce (shard_counts NULL): every rank gets the sum of every region in
 *     place in buf;
 *   reduce-scatter (shard_counts[size]): rank p gets the sum of its block
 *     [sum(shard_counts[0..p)), + shard_counts[p]) of buf into shard_out,
 *     as btrm_comm_reduce_scatter_f32 gives it; each region's collective
 *     carries only the parts of the ranks' blocks it overlaps.
 * The regions and their collectives are the same every step and on every
 * rank, so the result is bitwise repeatable for a given rank count (for 2
 * ranks every element is one addition a + b, the same in any order). Start
 * the regions in the same order on every rank. */
typedef struct btrm_comm_reducer {
    const btrm_comm *c;
    float *buf, *shard_out;
    int n_regions, started;
    size_t *first, *count;
    int *counts, *displs;   /* reduce-scatter: [n_regions * size] */
    int64_t *shard_lo;      /* reduce-scatter: each rank's block start, [size + 1] */
    MPI_Request *req;
} btrm_comm_reducer;
int btrm_comm_reducer_init(btrm_comm_reducer *r, const btrm_comm *c, float *buf,
                           const size_t *first, const size_t *count, int n_regions,
                           const int *shard_counts, float *shard_out);
/* Starts region k (collective, in the same order on every rank) and tests the
 * requests in flight. */
int btrm_comm_reducer_start(btrm_comm_reducer *r, int k);
/* Waits for every region; the next step starts again from region 0. */
int btrm_comm_reducer_wait(btrm_comm_reducer *r);
void btrm_comm_reducer_free(btrm_comm_reducer *r);

/* The per-step agreement of the trainer in one collective: the sum of a
 * double, the minimum of another and the maximum of an int (a stop flag). */
typedef struct btrm_comm_step_reduce {
    double sum;
    double min;
    double flag; /* max */
} btrm_comm_step_reduce;
int btrm_comm_allreduce_step(const btrm_comm *c, btrm_comm_step_reduce *value);

/* Node-shared memory: one allocation per node, visible to every rank of the
 * node (MPI_Win_allocate_shared on the node communicator). Node rank 0 owns
 * the bytes; the others map them. */
typedef struct btrm_shared {
    MPI_Win win;
    void *base;
    size_t bytes;
} btrm_shared;
int btrm_comm_shared_alloc(const btrm_comm *c, size_t bytes, btrm_shared *shm);
/* Barrier on the node with the memory synchronisation a shared window needs
 * after its ranks wrote into it. */
int btrm_comm_shared_sync(const btrm_comm *c, btrm_shared *shm);
void btrm_comm_shared_free(btrm_shared *shm);

/* Block decomposition: [first, first+count) of n items for `part` of `parts`
 * parts; sizes differ by at most one, larger parts first. */
void btrm_comm_block(int64_t n, int parts, int part, int64_t *first, int64_t *count);

double btrm_comm_wtime(void);

#endif
