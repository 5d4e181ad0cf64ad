#include "comm.h"

#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int btrm_comm_error(int mpi_rc, const char *call, const char *file, int line)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mpi_rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", mpi_rc);
    return btrm_error_set(BTRM_EMPI, "%s:%d: %s failed: %s", file, line, call, text);
}

/* BTRM_TEST_RANKS_PER_NODE (comm.h): node ranks [0, k) form one node, [k, 2k)
 * the next, and so on. The node agrees on k first, so that a rank whose
 * environment lacks the variable cannot leave the others in MPI_Comm_split. */
static int split_node_for_tests(btrm_comm *c)
{
    const char *env = getenv(BTRM_TEST_RANKS_PER_NODE_ENV);
    char *end = NULL;
    long want = env && env[0] ? strtol(env, &end, 10) : 0;
    int bad = env && env[0] && (*end != '\0' || want < 0 || want > 1 << 20);
    int k = bad ? -1 : (int)want, agreed = 0;
    BTRM_CHECK_MPI(MPI_Allreduce(&k, &agreed, 1, MPI_INT, MPI_MIN, c->node));
    if (agreed < 0)
        return btrm_error_set(BTRM_EUSAGE, "%s=%s: want a number of ranks per node (0 = no "
                              "split)", BTRM_TEST_RANKS_PER_NODE_ENV, env ? env : "");
    BTRM_CHECK_MPI(MPI_Allreduce(&k, &agreed, 1, MPI_INT, MPI_MAX, c->node));
    if (agreed == 0 || agreed >= c->node_size)
        return 0;
    MPI_Comm group = MPI_COMM_NULL;
    BTRM_CHECK_MPI(MPI_Comm_split(c->node, c->node_rank / agreed, c->node_rank, &group));
    MPI_Comm_free(&c->node);
    c->node = group;
    BTRM_CHECK_MPI(MPI_Comm_set_errhandler(c->node, MPI_ERRORS_RETURN));
    BTRM_CHECK_MPI(MPI_Comm_rank(c->node, &c->node_rank));
    BTRM_CHECK_MPI(MPI_Comm_size(c->node, &c->node_size));
    return 0;
}

int btrm_comm_init(btrm_comm *c, MPI_Comm parent)
{
    memset(c, 0, sizeof *c);
    c->comm = MPI_COMM_NULL;
    c->node = MPI_COMM_NULL;
    BTRM_CHECK_MPI(MPI_Comm_dup(parent, &c->comm));
    BTRM_CHECK_MPI(MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN));
    BTRM_CHECK_MPI(MPI_Comm_rank(c->comm, &c->rank));
    BTRM_CHECK_MPI(MPI_Comm_size(c->comm, &c->size));
    BTRM_CHECK_MPI(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank,
                                       MPI_INFO_NULL, &c->node));
    BTRM_CHECK_MPI(MPI_Comm_set_errhandler(c->node, MPI_ERRORS_RETURN));
    BTRM_CHECK_MPI(MPI_Comm_rank(c->node, &c->node_rank));
    BTRM_CHECK_MPI(MPI_Comm_size(c->node, &c->node_size));
    int rc = btrm_comm_agree(c, split_node_for_tests(c));
    if (rc)
        return rc;
    int leader = c->node_rank == 0;
    BTRM_CHECK_MPI(MPI_Allreduce(&leader, &c->n_nodes, 1, MPI_INT, MPI_SUM, c->comm));
    return 0;
}

void btrm_comm_free(btrm_comm *c)
{
    if (!c)
        return;
    if (c->node != MPI_COMM_NULL)
        MPI_Comm_free(&c->node);
    if (c->comm != MPI_COMM_NULL)
        MPI_Comm_free(&c->comm);
}

int btrm_comm_agree(const btrm_comm *c, int rc)
{
    /* MINLOC picks the most negative code and, among equals, the lowest rank. */
    struct { int code; int rank; } mine = { rc, c->rank }, worst;
    int mpi_rc = MPI_Allreduce(&mine, &worst, 1, MPI_2INT, MPI_MINLOC, c->comm);
    if (mpi_rc != MPI_SUCCESS)
        btrm_comm_abort(c, BTRM_EMPI, "cannot agree on the outcome (MPI_Allreduce failed)");
    if (worst.code == 0)
        return 0;
    char msg[BTRM_ERROR_MAX];
    if (c->rank == worst.rank)
        snprintf(msg, sizeof msg, "%s", btrm_error_msg());
    mpi_rc = MPI_Bcast(msg, sizeof msg, MPI_CHAR, worst.rank, c->comm);
    if (mpi_rc != MPI_SUCCESS)
        btrm_comm_abort(c, BTRM_EMPI, "cannot share the error of rank %d", worst.rank);
    msg[sizeof msg - 1] = '\0';
    char prefix[32];
    snprintf(prefix, sizeof prefix, "rank %d: ", worst.rank);
    if (c->size > 1 && strncmp(msg, prefix, strlen(prefix)) != 0)
        btrm_error_set(worst.code, "%s%s", prefix, msg);
    else
        btrm_error_set(worst.code, "%s", msg);
    return worst.code;
}

void btrm_comm_abort(const btrm_comm *c, int code, const char *fmt, ...)
{
    char msg[BTRM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int rank = 0;
    if (c && c->comm != MPI_COMM_NULL)
        rank = c->rank;
    else
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    fprintf(stderr, "btrm: rank %d: fatal: %s\n", rank, msg);
    fflush(stderr);
    MPI_Abort(c && c->comm != MPI_COMM_NULL ? c->comm : MPI_COMM_WORLD,
              btrm_error_exit_code(code));
    abort(); /* MPI_Abort does not return; keep _Noreturn honest */
}

static int reduce(const btrm_comm *c, void *buf, size_t n, MPI_Datatype type, MPI_Op op)
{
    /* Counts above INT_MAX go in chunks. */
    size_t elem = 0;
    int size = 0;
    MPI_Type_size(type, &size);
    elem = (size_t)size;
    char *p = buf;
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        BTRM_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, p, chunk, type, op, c->comm));
        p += (size_t)chunk * elem;
        n -= (size_t)chunk;
    }
    return 0;
}

int btrm_comm_allreduce_sum_f32(const btrm_comm *c, float *buf, size_t n)
{
    return reduce(c, buf, n, MPI_FLOAT, MPI_SUM);
}
int btrm_comm_allreduce_sum_f64(const btrm_comm *c, double *buf, size_t n)
{
    return reduce(c, buf, n, MPI_DOUBLE, MPI_SUM);
}
int btrm_comm_allreduce_max_f64(const btrm_comm *c, double *buf, size_t n)
{
    return reduce(c, buf, n, MPI_DOUBLE, MPI_MAX);
}
int btrm_comm_allreduce_sum_i64(const btrm_comm *c, int64_t *buf, size_t n)
{
    return reduce(c, buf, n, MPI_INT64_T, MPI_SUM);
}
int btrm_comm_allreduce_max_int(const btrm_comm *c, int *value)
{
    return reduce(c, value, 1, MPI_INT, MPI_MAX);
}

int btrm_comm_bcast(const btrm_comm *c, void *buf, size_t bytes, int root)
{
    char *p = buf;
    while (bytes > 0) {
        int chunk = bytes > (1u << 30) ? (1 << 30) : (int)bytes;
        BTRM_CHECK_MPI(MPI_Bcast(p, chunk, MPI_BYTE, root, c->comm));
        p += chunk;
        bytes -= (size_t)chunk;
    }
    return 0;
}

int btrm_comm_barrier(const btrm_comm *c)
{
    BTRM_CHECK_MPI(MPI_Barrier(c->comm));
    return 0;
}

/* Gathers n_in values of type from every rank onto all ranks, in rank order. */
static int allgatherv(const btrm_comm *c, const void *in, int n_in, void *out, int *counts,
                      MPI_Datatype type)
{
    int *displs = NULL;
    int rc = BTRM_MALLOC(displs, c->size);
    if (rc)
        return rc;
    int mpi_rc = MPI_Allgather(&n_in, 1, MPI_INT, counts, 1, MPI_INT, c->comm);
    if (mpi_rc == MPI_SUCCESS) {
        int off = 0;
        for (int r = 0; r < c->size; r++) {
            displs[r] = off;
            off += counts[r];
        }
        mpi_rc = MPI_Allgatherv(in, n_in, type, out, counts, displs, type, c->comm);
    }
    free(displs);
    if (mpi_rc != MPI_SUCCESS)
        return btrm_comm_error(mpi_rc, "MPI_Allgatherv", __FILE__, __LINE__);
    return 0;
}

int btrm_comm_allgatherv_f64(const btrm_comm *c, const double *in, int n_in,
                             double *out, int *counts)
{
    return allgatherv(c, in, n_in, out, counts, MPI_DOUBLE);
}

int btrm_comm_allgatherv_i32(const btrm_comm *c, const int32_t *in, int n_in, int32_t *out,
                             int *counts)
{
    return allgatherv(c, in, n_in, out, counts, MPI_INT32_T);
}

int btrm_comm_allgatherv_rows_f32(const btrm_comm *c, float *buf, int row_len,
                                  const int *counts, const int *displs)
{
    MPI_Datatype row;
    BTRM_CHECK_MPI(MPI_Type_contiguous(row_len, MPI_FLOAT, &row));
    int mpi_rc = MPI_Type_commit(&row);
    if (mpi_rc == MPI_SUCCESS)
        mpi_rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, row,
                                c->comm);
    MPI_Type_free(&row);
    if (mpi_rc != MPI_SUCCESS)
        return btrm_comm_error(mpi_rc, "MPI_Allgatherv", __FILE__, __LINE__);
    return 0;
}

int btrm_comm_allgather_u64(const btrm_comm *c, const uint64_t *in, int n, uint64_t *out)
{
    BTRM_CHECK_MPI(MPI_Allgather(in, n, MPI_UINT64_T, out, n, MPI_UINT64_T, c->comm));
    return 0;
}

int btrm_comm_reduce_scatter_f32(const btrm_comm *c, const float *send, float *recv,
                                 const int *counts)
{
    BTRM_CHECK_MPI(MPI_Reduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, c->comm));
    return 0;
}

int btrm_comm_allgatherv_f32(const btrm_comm *c, float *buf, const int *counts,
                             const int *displs)
{
    BTRM_CHECK_MPI(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs,
                                  MPI_FLOAT, c->comm));
    return 0;
}

int btrm_comm_reducer_init(btrm_comm_reducer *r, const btrm_comm *c, float *buf,
                           const size_t *first, const size_t *count, int n_regions,
                           const int *shard_counts, float *shard_out)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->buf = buf;
    r->shard_out = shard_out;
    r->n_regions = n_regions;
    int rc = BTRM_MALLOC(r->first, n_regions);
    if (!rc)
        rc = BTRM_MALLOC(r->count, n_regions);
    if (!rc)
        rc = BTRM_MALLOC(r->req, n_regions);
    if (!rc && shard_counts) {
        rc = BTRM_MALLOC(r->counts, (size_t)n_regions * c->size);
        if (!rc)
            rc = BTRM_MALLOC(r->displs, (size_t)n_regions * c->size);
        if (!rc)
            rc = BTRM_MALLOC(r->shard_lo, c->size + 1);
    }
    if (rc) {
        btrm_comm_reducer_free(r);
        return rc;
    }
    for (int k = 0; k < n_regions; k++) {
        r->first[k] = first[k];
        r->count[k] = count[k];
        r->req[k] = MPI_REQUEST_NULL;
        if (count[k] > INT32_MAX) {
            btrm_comm_reducer_free(r);
            return btrm_error_set(BTRM_ECONFIG, "gradient region of %zu floats: more than "
                                  "2^31 - 1", count[k]);
        }
    }
    if (shard_counts) {
        r->shard_lo[0] = 0;
        for (int p = 0; p < c->size; p++)
            r->shard_lo[p + 1] = r->shard_lo[p] + shard_counts[p];
        /* region k's part of rank p's block, and where it lands in p's shard */
        for (int k = 0; k < n_regions; k++)
            for (int p = 0; p < c->size; p++) {
                int64_t lo = (int64_t)first[k], hi = lo + (int64_t)count[k];
                int64_t a = lo > r->shard_lo[p] ? lo : r->shard_lo[p];
                int64_t b = hi < r->shard_lo[p + 1] ? hi : r->shard_lo[p + 1];
                r->counts[(size_t)k * c->size + p] = b > a ? (int)(b - a) : 0;
                r->displs[(size_t)k * c->size + p] = b > a ? (int)(a - r->shard_lo[p]) : 0;
            }
    }
    return 0;
}

int btrm_comm_reducer_start(btrm_comm_reducer *r, int k)
{
    const btrm_comm *c = r->c;
    float *region = r->buf + r->first[k];
    if (!r->counts) {
        BTRM_CHECK_MPI(MPI_Iallreduce(MPI_IN_PLACE, region, (int)r->count[k], MPI_FLOAT,
                                      MPI_SUM, c->comm, &r->req[k]));
    } else {
        const int *counts = r->counts + (size_t)k * c->size;
        float *out = r->shard_out + r->displs[(size_t)k * c->size + c->rank];
        BTRM_CHECK_MPI(MPI_Ireduce_scatter(region, out, counts, MPI_FLOAT, MPI_SUM, c->comm,
                                           &r->req[k]));
    }
    r->started = k + 1;
    int done;
    BTRM_CHECK_MPI(MPI_Testall(r->started, r->req, &done, MPI_STATUSES_IGNORE));
    return 0;
}

int btrm_comm_reducer_wait(btrm_comm_reducer *r)
{
    BTRM_CHECK_MPI(MPI_Waitall(r->started, r->req, MPI_STATUSES_IGNORE));
    r->started = 0;
    return 0;
}

void btrm_comm_reducer_free(btrm_comm_reducer *r)
{
    if (!r)
        return;
    for (int k = 0; r->req && k < r->started; k++)
        if (r->req[k] != MPI_REQUEST_NULL)
            MPI_Request_free(&r->req[k]);
    free(r->first);
    free(r->count);
    free(r->req);
    free(r->counts);
    free(r->displs);
    free(r->shard_lo);
    memset(r, 0, sizeof *r);
}

static void step_op(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const btrm_comm_step_reduce *a = in;
    btrm_comm_step_reduce *b = inout;
    for (int i = 0; i < *len; i++) {
        b[i].sum = a[i].sum + b[i].sum;
        b[i].min = a[i].min < b[i].min ? a[i].min : b[i].min;
        b[i].flag = a[i].flag > b[i].flag ? a[i].flag : b[i].flag;
    }
}

int btrm_comm_allreduce_step(const btrm_comm *c, btrm_comm_step_reduce *value)
{
    /* Created once per process; MPI_Finalize frees it. */
    static MPI_Datatype type = MPI_DATATYPE_NULL;
    static MPI_Op op = MPI_OP_NULL;
    if (type == MPI_DATATYPE_NULL) {
        BTRM_CHECK_MPI(MPI_Type_contiguous(3, MPI_DOUBLE, &type));
        BTRM_CHECK_MPI(MPI_Type_commit(&type));
        BTRM_CHECK_MPI(MPI_Op_create(step_op, 1, &op));
    }
    btrm_comm_step_reduce out;
    BTRM_CHECK_MPI(MPI_Allreduce(value, &out, 1, type, op, c->comm));
    *value = out;
    return 0;
}

int btrm_comm_shared_alloc(const btrm_comm *c, size_t bytes, btrm_shared *shm)
{
    memset(shm, 0, sizeof *shm);
    shm->win = MPI_WIN_NULL;
    MPI_Aint mine = c->node_rank == 0 ? (MPI_Aint)bytes : 0;
    void *base = NULL;
    BTRM_CHECK_MPI(MPI_Win_allocate_shared(mine, 1, MPI_INFO_NULL, c->node, &base,
                                           &shm->win));
    MPI_Aint size = 0;
    int disp = 0;
    BTRM_CHECK_MPI(MPI_Win_shared_query(shm->win, 0, &size, &disp, &shm->base));
    shm->bytes = bytes;
    /* A passive-target epoch for the window's whole life lets us use
     * MPI_Win_sync + barrier as the memory fence between node ranks. */
    BTRM_CHECK_MPI(MPI_Win_lock_all(MPI_MODE_NOCHECK, shm->win));
    return 0;
}

int btrm_comm_shared_sync(const btrm_comm *c, btrm_shared *shm)
{
    BTRM_CHECK_MPI(MPI_Win_sync(shm->win));
    BTRM_CHECK_MPI(MPI_Barrier(c->node));
    BTRM_CHECK_MPI(MPI_Win_sync(shm->win));
    return 0;
}

void btrm_comm_shared_free(btrm_shared *shm)
{
    if (!shm || shm->win == MPI_WIN_NULL)
        return;
    MPI_Win_unlock_all(shm->win);
    MPI_Win_free(&shm->win);
    shm->base = NULL;
}

void btrm_comm_block(int64_t n, int parts, int part, int64_t *first, int64_t *count)
{
    int64_t base = n / parts, extra = n % parts;
    *count = base + (part < extra ? 1 : 0);
    *first = part * base + (part < extra ? part : extra);
}

double btrm_comm_wtime(void) { return MPI_Wtime(); }
