/* scalapack.h: dense symmetric matrices in ScaLAPACK's 2-D block-cyclic layout
 * on a BLACS process grid built from a btrm_comm, and the distributed
 * operations btrm needs on them (docs/newton.md):
 *
 *   - the Gram matrix  A = alpha * Z^T diag(s) Z + shift * I  of row slices Z
 *     (each rank holds a contiguous block of rows; no rank holds all of Z or
 *     all of A): every rank multiplies its slice (dgemm, one panel of about
 *     256 columns of A's lower triangle at a time) and the partial blocks are
 *     summed straight into their owners with one MPI_Reduce_scatter per panel;
 *   - Cholesky solves (pdposv) with a replicated right-hand side;
 *   - the symmetric eigensolver pdsyevd with a checked workspace.
 *
 * comm layer for BLACS: this module owns every BLACS/ScaLAPACK call and the
 * MPI collectives that move block-cyclic data (an orchestrator never sees a
 * descriptor). The C prototypes of BLACS, the PBLAS tools and the ScaLAPACK
 * and LAPACK drivers below are not shipped by Debian's libscalapack-openmpi:
 * they are declared here. Fortran routines take their CHARACTER arguments'
 * lengths as trailing hidden size_t arguments (gfortran's ABI), which we pass. */
#ifndef BTRM_SCALAPACK_H
#define BTRM_SCALAPACK_H

#include "comm.h"

#include <stddef.h>
#include <stdint.h>

/* ---- BLACS (C interface) ---------------------------------------------- */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_get(int context, int what, int *value);
void Cblacs_gridinit(int *context, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int context);
void Cblacs_pcoord(int context, int pnum, int *prow, int *pcol);

/* ---- ScaLAPACK tools and drivers (Fortran interface) ------------------- */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc,
            const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ictxt, const int *lld,
               int *info);
void pdposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *ia,
             const int *ja, const int *desca, double *b, const int *ib, const int *jb,
             const int *descb, int *info, size_t uplo_len);
void pdpotrf_(const char *uplo, const int *n, double *a, const int *ia, const int *ja,
              const int *desca, int *info, size_t uplo_len);
void pdsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *ia,
              const int *ja, const int *desca, double *w, double *z, const int *iz,
              const int *jz, const int *descz, double *work, const int *lwork, int *iwork,
              const int *liwork, int *info, size_t jobz_len, size_t uplo_len);

/* ---- LAPACK (serial references for tests and benchmarks) --------------- */
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
            double *b, const int *ldb, int *info, size_t uplo_len);
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork,
             int *info, size_t jobz_len, size_t uplo_len);

#define BTRM_SCALAPACK_BLOCK 64 /* default block size nb of the block-cyclic layout */

/* A BLACS process grid over all the ranks of a btrm_comm: nprow x npcol =
 * size, as square as the rank count allows (nprow the largest divisor of size
 * that is <= sqrt(size): 1x1, 1x2, 1x3, 2x2, 2x3, ...), row-major. */
typedef struct btrm_grid {
    const btrm_comm *c;
    int handle;            /* BLACS system handle of c->comm; -1 = none */
    int ctxt;              /* BLACS context; -1 = none */
    int nprow, npcol, myrow, mycol;
    int *prow_of, *pcol_of; /* [size]: grid coordinates of every rank of c */
} btrm_grid;

/* Collective over c. */
int btrm_grid_init(btrm_grid *g, const btrm_comm *c);
/* The default block size for a dim x dim matrix on g: BTRM_SCALAPACK_BLOCK,
 * halved while that leaves a process row or column of the grid without a
 * block (small dim), so that small matrices are still spread out. */
int btrm_grid_block(const btrm_grid *g, int dim);
/* Collective (the BLACS context is freed with MPI_Comm_free). NULL and a
 * grid whose init failed are fine. */
void btrm_grid_free(btrm_grid *g);

/* A dense m x n matrix (square nb x nb blocks, first block on process (0, 0))
 * in block-cyclic layout: this process's local_rows x local_cols part,
 * column-major with leading dimension lld. */
typedef struct btrm_dmatrix {
    int m, n, nb;
    int local_rows, local_cols, lld;
    int desc[9];
    double *a;
} btrm_dmatrix;

/* Allocates (zeroed) an m x n matrix on g. Local. */
int btrm_dmatrix_init(btrm_dmatrix *x, const btrm_grid *g, int m, int n, int nb);
void btrm_dmatrix_free(btrm_dmatrix *x);
/* The global index of local row (or column) l, and the local index of a
 * global one with the process that owns it. */
int btrm_dmatrix_l2g(int l, int nb, int myproc, int nprocs);
int btrm_dmatrix_g2l(int g, int nb, int nprocs, int *owner);

/* Work buffers for btrm_grid_gram, allocated once for row slices of up to
 * max_rows rows of width dim. */
typedef struct btrm_gram_ws {
    int dim, nb;
    int width;         /* panel width: whole blocks, about 256 columns */
    int64_t max_rows;
    double *panel;     /* [dim, width] column-major: this rank's partial panel */
    double *scaled;    /* [width, 1024] s_i-scaled rows of the panel's columns */
    double *send;      /* [dim * width] the panel packed by destination rank */
    double *recv;      /* [local_rows * width] this rank's summed blocks */
    int *counts;       /* [size] MPI_Reduce_scatter counts */
} btrm_gram_ws;

int btrm_gram_ws_init(btrm_gram_ws *ws, const btrm_grid *g, int dim, int nb,
                      int64_t max_rows);
void btrm_gram_ws_free(btrm_gram_ws *ws);

/* Collective. a (dim x dim, block size ws->nb) receives the lower triangle
 * (diagonal blocks whole) of
 *     A = alpha * sum over ranks of Z_r^T diag(s_r) Z_r + shift * I
 * where Z_r = z[n_rows, dim] is rank r's slice (row-major, one row per pair)
 * and s_r its row weights (NULL = all 1). Blocks strictly above the diagonal
 * are left as they are (btrm_dmatrix_init zeroes them; the routines here read
 * the lower triangle only). *max_diag (may be NULL) gets the largest diagonal
 * entry, the same on every rank. For a fixed rank count the sums are done in
 * a fixed order. */
int btrm_grid_gram(const btrm_grid *g, btrm_gram_ws *ws, const double *z, int64_t n_rows,
                   const double *s, double alpha, double shift, btrm_dmatrix *a,
                   double *max_diag);

/* Local: adds shift to the diagonal entries of a that this process owns. */
void btrm_dmatrix_add_diag(btrm_dmatrix *a, const btrm_grid *g, double shift);

/* Collective. Solves A x = b by Cholesky (pdposv, lower triangle of a; a is
 * overwritten by the factor L). b[dim] is replicated on every rank on entry;
 * on return x[dim] is the solution on every rank. rhs is a dim x 1 work
 * matrix (btrm_dmatrix_init(rhs, g, dim, 1, nb)). *info is pdposv's: > 0 when
 * the leading minor of that order is not positive definite (x is then
 * unset). With info == 0, *diag_min and *diag_max (may be NULL) get the
 * smallest and largest diagonal entries of L, the same on every rank. */
int btrm_grid_posv(const btrm_grid *g, btrm_dmatrix *a, btrm_dmatrix *rhs, const double *b,
                   double *x, int *info, double *diag_min, double *diag_max);

/* pdsyevd's workspace: what its query (lwork = -1) returns, and what its
 * callees need (see btrm_syevd_lwork_safe). */
typedef struct btrm_syevd_info {
    int lwork_queried, lwork_safe, lwork_used;
    int liwork_queried, liwork_used;
} btrm_syevd_info;

/* The workspace that pdsyevd's callees need on process (myrow, mycol) for an
 * n x n matrix with block size nb on an nprow x npcol grid. pdsyevd's own
 * query returns max(1 + 6n + 2 np nq, 3n + max(nb (np + 1), 3 nb)) + 2n and
 * passes lwork - 2n to pdormtr, which needs
 *   max(nb (nb - 1) / 2, (mp0 + nq0) nb) + nb^2    (mp0 ~ np, nq0 ~ nq)
 * - more than the query when np nq is small next to nb (small n, large nb,
 * or a process holding few columns). Too little and pdormtr refuses with a
 * PXERBLA message while pdsyevd still returns info = 0 with the eigenvectors
 * of the tridiagonal matrix, not of A. We use
 *   2n + max(nb (nb - 1) / 2, (np + nq) nb) + nb^2 + max(query formula). */
int btrm_syevd_lwork_safe(int n, int nb, int myrow, int mycol, int nprow, int npcol);

/* Collective. All eigenvalues (ascending, w[n], the same on every rank) and
 * eigenvectors (the columns of v, block-cyclic like a) of the symmetric
 * matrix a (lower triangle; destroyed). trust_query != 0 uses pdsyevd's
 * queried workspace as is (only for tests that show why we do not). *info
 * (may be NULL) reports the sizes. BTRM_EIO when pdsyevd fails. */
int btrm_grid_syevd(const btrm_grid *g, btrm_dmatrix *a, double *w, btrm_dmatrix *v,
                    int trust_query, btrm_syevd_info *info);

/* Collective. Copies columns [first, first + count) of v to out[count, m]
 * (row k = column first + k) on every rank. */
int btrm_grid_gather_columns(const btrm_grid *g, const btrm_dmatrix *v, int first, int count,
                             double *out);

#endif
