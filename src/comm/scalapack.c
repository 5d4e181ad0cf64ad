/* scalapack.c: BLACS grids, block-cyclic matrices, the distributed Gram
 * matrix, Cholesky solves and the eigensolver (see scalapack.h). */
#include "scalapack.h"

#include "error.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GRAM_CHUNK 1024 /* rows of Z per dgemm in btrm_grid_gram */
#define GRAM_PANEL 256  /* columns of A formed per pass over Z (whole blocks) */

static int imin(int a, int b) { return a < b ? a : b; }
static int64_t i64max(int64_t a, int64_t b) { return a > b ? a : b; }

static int numroc(int n, int nb, int iproc, int nprocs)
{
    int zero = 0;
    return numroc_(&n, &nb, &iproc, &zero, &nprocs);
}

int btrm_grid_init(btrm_grid *g, const btrm_comm *c)
{
    memset(g, 0, sizeof *g);
    g->c = c;
    g->handle = g->ctxt = -1;
    /* nprow: the largest divisor of size that is <= sqrt(size) */
    int nprow = (int)floor(sqrt((double)c->size));
    while (nprow > 1 && c->size % nprow != 0)
        nprow--;
    g->nprow = nprow;
    g->npcol = c->size / nprow;
    uint64_t *coords = NULL;
    int rc = BTRM_MALLOC(g->prow_of, c->size);
    if (!rc)
        rc = BTRM_MALLOC(g->pcol_of, c->size);
    if (!rc)
        rc = BTRM_MALLOC(coords, c->size);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    /* A BLACS context on c's communicator (not on MPI_COMM_WORLD, which
     * Cblacs_get(-1, 0, ...) would give): its ranks are c's ranks. */
    g->handle = Csys2blacs_handle(c->comm);
    g->ctxt = g->handle;
    Cblacs_gridinit(&g->ctxt, "Row-major", g->nprow, g->npcol);
    int nr = -1, nc = -1;
    Cblacs_gridinfo(g->ctxt, &nr, &nc, &g->myrow, &g->mycol);
    if (nr != g->nprow || nc != g->npcol || g->myrow < 0 || g->mycol < 0)
        rc = btrm_error_set(BTRM_EIO, "BLACS: cannot build a %d x %d process grid on %d "
                            "ranks (got %d x %d)", g->nprow, g->npcol, c->size, nr, nc);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        goto fail;
    uint64_t mine = ((uint64_t)(uint32_t)g->myrow << 32) | (uint32_t)g->mycol;
    rc = btrm_comm_agree(c, btrm_comm_allgather_u64(c, &mine, 1, coords));
    if (rc)
        goto fail;
    for (int r = 0; r < c->size; r++) {
        g->prow_of[r] = (int)(coords[r] >> 32);
        g->pcol_of[r] = (int)(coords[r] & 0xffffffffu);
    }
    free(coords);
    return 0;
fail:
    free(coords);
    btrm_grid_free(g);
    return rc;
}

int btrm_grid_block(const btrm_grid *g, int dim)
{
    int procs = g->nprow > g->npcol ? g->nprow : g->npcol;
    int nb = BTRM_SCALAPACK_BLOCK;
    while (nb > 1 && (int64_t)nb * procs > dim)
        nb /= 2;
    return nb;
}

void btrm_grid_free(btrm_grid *g)
{
    if (!g)
        return;
    if (g->ctxt >= 0 && g->myrow >= 0)
        Cblacs_gridexit(g->ctxt);
    if (g->handle >= 0)
        Cfree_blacs_system_handle(g->handle);
    free(g->prow_of);
    free(g->pcol_of);
    g->prow_of = g->pcol_of = NULL;
    g->ctxt = g->handle = -1;
}

int btrm_dmatrix_l2g(int l, int nb, int myproc, int nprocs)
{
    return (l / nb) * nb * nprocs + myproc * nb + l % nb;
}

int btrm_dmatrix_g2l(int g, int nb, int nprocs, int *owner)
{
    if (owner)
        *owner = (g / nb) % nprocs;
    return (g / nb / nprocs) * nb + g % nb;
}

int btrm_dmatrix_init(btrm_dmatrix *x, const btrm_grid *g, int m, int n, int nb)
{
    memset(x, 0, sizeof *x);
    x->m = m;
    x->n = n;
    x->nb = nb;
    x->local_rows = numroc(m, nb, g->myrow, g->nprow);
    x->local_cols = numroc(n, nb, g->mycol, g->npcol);
    x->lld = x->local_rows > 1 ? x->local_rows : 1;
    int zero = 0, info = 0;
    descinit_(x->desc, &m, &n, &nb, &nb, &zero, &zero, &g->ctxt, &x->lld, &info);
    if (info != 0)
        return btrm_error_set(BTRM_EIO, "descinit: argument %d is invalid for a %d x %d "
                              "matrix with block %d", -info, m, n, nb);
    size_t elems = (size_t)x->lld * (size_t)(x->local_cols > 0 ? x->local_cols : 1);
    return BTRM_CALLOC(x->a, elems);
}

void btrm_dmatrix_free(btrm_dmatrix *x)
{
    if (!x)
        return;
    free(x->a);
    x->a = NULL;
}

void btrm_gram_ws_free(btrm_gram_ws *ws)
{
    if (!ws)
        return;
    BTRM_FREE(ws->panel, ws->scaled, ws->send, ws->recv, ws->counts);
    memset(ws, 0, sizeof *ws);
}

int btrm_gram_ws_init(btrm_gram_ws *ws, const btrm_grid *g, int dim, int nb, int64_t max_rows)
{
    memset(ws, 0, sizeof *ws);
    ws->dim = dim;
    ws->nb = nb;
    ws->max_rows = max_rows;
    /* a panel of whole blocks, about GRAM_PANEL columns wide */
    ws->width = nb * (GRAM_PANEL / nb > 1 ? GRAM_PANEL / nb : 1);
    if (ws->width > dim)
        ws->width = dim;
    int local_rows = numroc(dim, nb, g->myrow, g->nprow);
    size_t panel = (size_t)dim * (size_t)ws->width;
    int rc = BTRM_MALLOC(ws->panel, panel);
    if (!rc)
        rc = BTRM_MALLOC(ws->scaled, (size_t)ws->width * GRAM_CHUNK);
    if (!rc)
        rc = BTRM_MALLOC(ws->send, panel);
    if (!rc)
        rc = BTRM_MALLOC(ws->recv, (size_t)(local_rows > 0 ? local_rows : 1) * ws->width);
    if (!rc)
        rc = BTRM_MALLOC(ws->counts, g->c->size);
    if (rc)
        btrm_gram_ws_free(ws);
    return rc;
}

/* The diagonal entry of a in local column lc, when this process owns it. */
static double *diag_entry(btrm_dmatrix *a, const btrm_grid *g, int lc)
{
    int gc = btrm_dmatrix_l2g(lc, a->nb, g->mycol, g->npcol);
    if (gc >= a->m)
        return NULL;
    int owner = 0;
    int lr = btrm_dmatrix_g2l(gc, a->nb, g->nprow, &owner);
    return owner == g->myrow ? &a->a[lr + (size_t)lc * a->lld] : NULL;
}

void btrm_dmatrix_add_diag(btrm_dmatrix *a, const btrm_grid *g, double shift)
{
    for (int lc = 0; lc < a->local_cols; lc++) {
        double *d = diag_entry(a, g, lc);
        if (d)
            *d += shift;
    }
}

/* The smallest and largest diagonal entries, on every rank. */
static int diag_range(btrm_dmatrix *a, const btrm_grid *g, double *lo, double *hi)
{
    double v[2] = { -HUGE_VAL, -HUGE_VAL }; /* max of -d and of d */
    for (int lc = 0; lc < a->local_cols; lc++) {
        double *d = diag_entry(a, g, lc);
        if (d) {
            v[0] = fmax(v[0], -*d);
            v[1] = fmax(v[1], *d);
        }
    }
    int rc = btrm_comm_allreduce_max_f64(g->c, v, 2);
    if (lo)
        *lo = -v[0];
    if (hi)
        *hi = v[1];
    return rc;
}

/* Packs (pack != 0) or unpacks the blocks of panel columns [j0, j0 + width)
 * that belong to process (prow, pcol): block columns jb with jb % npcol ==
 * pcol, in increasing order, column by column, each column's row blocks ib >=
 * jb with ib % nprow == prow in increasing order - exactly that process's
 * local rows >= jb nb of its local column. Returns the number of doubles. */
static size_t pack_blocks(const btrm_grid *g, int dim, int nb, int j0, int width, int prow,
                          int pcol, const double *panel, double *buf)
{
    const int rows = dim - j0;
    size_t off = 0;
    for (int jb = j0 / nb; jb * nb < j0 + width; jb++) {
        if (jb % g->npcol != pcol)
            continue;
        int cols = imin(nb, dim - jb * nb);
        for (int j = 0; j < cols; j++) {
            const double *col = panel + (size_t)(jb * nb - j0 + j) * rows;
            for (int ib = jb; ib * nb < dim; ib++) {
                if (ib % g->nprow != prow)
                    continue;
                int h = imin(nb, dim - ib * nb);
                memcpy(buf + off, col + (ib * nb - j0), (size_t)h * sizeof *buf);
                off += (size_t)h;
            }
        }
    }
    return off;
}

int btrm_grid_gram(const btrm_grid *g, btrm_gram_ws *ws, const double *z, int64_t n_rows,
                   const double *s, double alpha, double shift, btrm_dmatrix *a,
                   double *max_diag)
{
    const btrm_comm *c = g->c;
    const int dim = ws->dim, nb = ws->nb;
    if (a->m != dim || a->n != dim || a->nb != nb || n_rows > ws->max_rows)
        return btrm_error_set(BTRM_EIO, "btrm_grid_gram: a %d x %d matrix with block %d and "
                              "%lld rows do not match the workspace (%d, %d, %lld rows)",
                              a->m, a->n, a->nb, (long long)n_rows, dim, nb,
                              (long long)ws->max_rows);
    for (int j0 = 0; j0 < dim; j0 += ws->width) {
        const int width = imin(ws->width, dim - j0), rows = dim - j0;
        /* panel[rows, width] = alpha * Z[:, j0:]^T diag(s) Z[:, j0:j0+width]
         * (column-major), lower triangle only: one dgemm for the rows below
         * the panel's diagonal block, one per block column inside it;
         * accumulated over chunks of Z's rows. Z stored row-major [n, dim] is
         * Z^T column-major [dim, n] with leading dimension dim. */
        if (n_rows == 0)
            memset(ws->panel, 0, (size_t)rows * width * sizeof *ws->panel);
        for (int64_t i0 = 0; i0 < n_rows; i0 += GRAM_CHUNK) {
            int k = (int)(n_rows - i0 < GRAM_CHUNK ? n_rows - i0 : GRAM_CHUNK);
            const double *zc = z + (size_t)i0 * dim;
            const double beta = i0 == 0 ? 0.0 : 1.0;
            /* scaled[width, k] = (s_i * Z[i0 + i, j0 + j]) */
            for (int i = 0; i < k; i++) {
                const double *row = zc + (size_t)i * dim + j0;
                double si = s ? s[i0 + i] : 1.0;
                double *out = ws->scaled + (size_t)i * width;
                for (int j = 0; j < width; j++)
                    out[j] = si * row[j];
            }
            if (rows > width) /* panel[width:, :] = Z[:, j0+width:]^T scaled^T */
                cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, rows - width, width, k,
                            alpha, zc + j0 + width, dim, ws->scaled, width, beta,
                            ws->panel + width, rows);
            for (int c0 = 0; c0 < width; c0 += nb) { /* the diagonal block, lower part */
                int cw = imin(nb, width - c0);
                cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, width - c0, cw, k, alpha,
                            zc + j0 + c0, dim, ws->scaled + c0, width, beta,
                            ws->panel + c0 + (size_t)c0 * rows, rows);
            }
        }
        /* one reduce-scatter per panel: every block straight to its owner */
        size_t off = 0;
        for (int r = 0; r < c->size; r++) {
            size_t n = pack_blocks(g, dim, nb, j0, width, g->prow_of[r], g->pcol_of[r],
                                   ws->panel, ws->send + off);
            ws->counts[r] = (int)n;
            off += n;
        }
        BTRM_CHECK_MPI(MPI_Reduce_scatter(ws->send, ws->recv, ws->counts, MPI_DOUBLE, MPI_SUM,
                                          c->comm));
        /* unpack: the same order, into the local columns */
        size_t got = 0;
        for (int jb = j0 / nb; jb * nb < j0 + width; jb++) {
            if (jb % g->npcol != g->mycol)
                continue;
            int lr0 = numroc(jb * nb, nb, g->myrow, g->nprow);
            int lc0 = numroc(jb * nb, nb, g->mycol, g->npcol);
            int h = a->local_rows - lr0, cols = imin(nb, dim - jb * nb);
            for (int j = 0; j < cols && h > 0; j++) {
                memcpy(a->a + lr0 + (size_t)(lc0 + j) * a->lld, ws->recv + got,
                       (size_t)h * sizeof *a->a);
                got += (size_t)h;
            }
        }
    }
    if (shift != 0.0)
        btrm_dmatrix_add_diag(a, g, shift);
    return max_diag ? diag_range(a, g, NULL, max_diag) : 0;
}

int btrm_grid_posv(const btrm_grid *g, btrm_dmatrix *a, btrm_dmatrix *rhs, const double *b,
                   double *x, int *info, double *diag_min, double *diag_max)
{
    const int n = a->m, one = 1;
    /* rhs (n x 1) lives on process column 0 */
    for (int lr = 0; rhs->local_cols > 0 && lr < rhs->local_rows; lr++)
        rhs->a[lr] = b[btrm_dmatrix_l2g(lr, rhs->nb, g->myrow, g->nprow)];
    *info = 0;
    pdposv_("L", &n, &one, a->a, &one, &one, a->desc, rhs->a, &one, &one, rhs->desc, info, 1);
    if (*info < 0)
        return btrm_error_set(BTRM_EIO, "pdposv: argument %d has an illegal value", -*info);
    if (*info > 0)
        return 0; /* the caller decides (the same info on every rank) */
    memset(x, 0, (size_t)n * sizeof *x);
    for (int lr = 0; rhs->local_cols > 0 && lr < rhs->local_rows; lr++)
        x[btrm_dmatrix_l2g(lr, rhs->nb, g->myrow, g->nprow)] = rhs->a[lr];
    /* every entry comes from exactly one rank: the sum is exact */
    int rc = btrm_comm_allreduce_sum_f64(g->c, x, (size_t)n);
    if (!rc && (diag_min || diag_max))
        rc = diag_range(a, g, diag_min, diag_max);
    return rc;
}

int btrm_syevd_lwork_safe(int n, int nb, int myrow, int mycol, int nprow, int npcol)
{
    int64_t np = numroc(n, nb, myrow, nprow), nq = numroc(n, nb, mycol, npcol);
    int64_t n64 = n, nb64 = nb;
    int64_t trilwmin = 3 * n64 + i64max(nb64 * (np + 1), 3 * nb64);
    int64_t query = i64max(1 + 6 * n64 + 2 * np * nq, trilwmin) + 2 * n64;
    /* pdsyevd hands lwork - 2n to pdstedc (whose pdlasrt sorts the vectors)
     * and to pdormtr */
    int64_t ormtr = 2 * n64 + i64max(nb64 * (nb64 - 1) / 2, (np + nq) * nb64) + nb64 * nb64;
    int64_t lasrt = 2 * n64 + i64max(n64, np * (nb64 + nq));
    int64_t safe = i64max(query, i64max(ormtr, lasrt));
    return safe > INT_MAX ? INT_MAX : (int)safe;
}

int btrm_grid_syevd(const btrm_grid *g, btrm_dmatrix *a, double *w, btrm_dmatrix *v,
                    int trust_query, btrm_syevd_info *out)
{
    const int n = a->m, one = 1, query = -1;
    double *work = NULL;
    int *iwork = NULL;
    double wq = 0.0;
    int iwq = 0, info = 0;
    btrm_syevd_info si = { 0 };
    pdsyevd_("V", "L", &n, a->a, &one, &one, a->desc, w, v->a, &one, &one, v->desc, &wq, &query,
             &iwq, &query, &info, 1, 1);
    int rc = 0;
    if (info != 0)
        rc = btrm_error_set(BTRM_EIO, "pdsyevd workspace query: info %d", info);
    si.lwork_queried = (int)wq;
    si.liwork_queried = iwq;
    si.lwork_safe = btrm_syevd_lwork_safe(n, a->nb, g->myrow, g->mycol, g->nprow, g->npcol);
    si.lwork_used = trust_query ? si.lwork_queried
                    : si.lwork_queried > si.lwork_safe ? si.lwork_queried : si.lwork_safe;
    /* pdsyevd's own minimum, and pdlasrt's (larger when nb is large next to n) */
    int liwork_min = 7 * n + 8 * g->npcol + 2;
    if (n + 2 * (a->nb + g->npcol) > liwork_min)
        liwork_min = n + 2 * (a->nb + g->npcol);
    si.liwork_used = trust_query ? iwq : iwq > liwork_min ? iwq : liwork_min;
    if (!rc)
        rc = BTRM_MALLOC(work, si.lwork_used > 0 ? si.lwork_used : 1);
    if (!rc)
        rc = BTRM_MALLOC(iwork, si.liwork_used);
    rc = btrm_comm_agree(g->c, rc);
    if (rc)
        goto fail;
    pdsyevd_("V", "L", &n, a->a, &one, &one, a->desc, w, v->a, &one, &one, v->desc, work,
             &si.lwork_used, iwork, &si.liwork_used, &info, 1, 1);
    if (info != 0)
        rc = btrm_error_set(BTRM_EIO, "pdsyevd failed: info %d (%s)", info,
                            info < 0 ? "an illegal argument"
                                     : "the divide and conquer did not converge");
    rc = btrm_comm_agree(g->c, rc);
    /* When n <= nb, pdstedc solves the tridiagonal problem on the process that
     * holds the matrix only, and the other processes' w keeps the diagonal of
     * the tridiagonal matrix: take the eigenvalues from process (0, 0). */
    if (!rc) {
        int root = 0;
        while (root < g->c->size && (g->prow_of[root] != 0 || g->pcol_of[root] != 0))
            root++;
        rc = btrm_comm_agree(g->c, btrm_comm_bcast(g->c, w, (size_t)n * sizeof *w, root));
    }
fail:
    if (out)
        *out = si;
    free(work);
    free(iwork);
    return rc;
}

int btrm_grid_gather_columns(const btrm_grid *g, const btrm_dmatrix *v, int first, int count,
                             double *out)
{
    const size_t m = (size_t)v->m;
    memset(out, 0, (size_t)count * m * sizeof *out);
    for (int lc = 0; lc < v->local_cols; lc++) {
        int gc = btrm_dmatrix_l2g(lc, v->nb, g->mycol, g->npcol);
        if (gc < first || gc >= first + count)
            continue;
        for (int lr = 0; lr < v->local_rows; lr++)
            out[(size_t)(gc - first) * m + btrm_dmatrix_l2g(lr, v->nb, g->myrow, g->nprow)] =
                v->a[lr + (size_t)lc * v->lld];
    }
    /* each entry has exactly one owner: the sum is exact */
    return btrm_comm_allreduce_sum_f64(g->c, out, (size_t)count * m);
}
