/* gemm.c: btrm_gemm over oneDNN (fp32 dnnl_sgemm, bf16 matmul primitives)
 * and CBLAS (fp32). See gemm.h; the measurements behind the routes are in
 * docs/performance.md ("Compute engine"). */
#include "gemm.h"

#include "dtype.h"
#include "error.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#endif
#ifdef HAVE_DNNL_OMP
#include <omp.h>
#endif
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
void openblas_set_num_threads(int num_threads);
#endif

/* ------------------------------------------------------------------------ */
/* Statistics per shape */

typedef struct stat_table {
    btrm_gemm_stat shape[BTRM_GEMM_MAX_SHAPES];
    int n;
    int64_t other_calls;
    double other_seconds, other_flops;
} stat_table;
static stat_table stats;

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void stat_add(int precision, int ta, int tb, int m, int n, int k, const char *impl,
                     double seconds)
{
    for (int i = 0; i < stats.n; i++) {
        btrm_gemm_stat *s = &stats.shape[i];
        if (s->precision == precision && s->trans_a == ta && s->trans_b == tb && s->m == m &&
            s->n == n && s->k == k && !strcmp(s->impl, impl)) {
            s->calls++;
            s->seconds += seconds;
            return;
        }
    }
    if (stats.n == BTRM_GEMM_MAX_SHAPES) {
        stats.other_calls++;
        stats.other_seconds += seconds;
        stats.other_flops += 2.0 * m * (double)n * k;
        return;
    }
    btrm_gemm_stat *s = &stats.shape[stats.n++];
    *s = (btrm_gemm_stat){ .precision = precision, .trans_a = ta, .trans_b = tb, .m = m,
                           .n = n, .k = k, .calls = 1, .seconds = seconds };
    snprintf(s->impl, sizeof s->impl, "%s", impl);
}

int btrm_gemm_stats(btrm_gemm_stat *out, int max)
{
    int n = stats.n < max ? stats.n : max;
    if (n > 0)
        memcpy(out, stats.shape, (size_t)n * sizeof *out);
    return n;
}

void btrm_gemm_stats_other(int64_t *calls, double *seconds, double *flops)
{
    *calls = stats.other_calls;
    *seconds = stats.other_seconds;
    *flops = stats.other_flops;
}

void btrm_gemm_stats_reset(void) { memset(&stats, 0, sizeof stats); }

/* ------------------------------------------------------------------------ */
/* Backend selection */

#ifdef HAVE_DNNL
static int backend = -1; /* -1: not chosen yet (BTRM_GEMM_BACKEND, else oneDNN) */
#else
static int backend = BTRM_GEMM_CBLAS;
#endif

int btrm_gemm_has_backend(int id)
{
#ifdef HAVE_DNNL
    return id == BTRM_GEMM_CBLAS || id == BTRM_GEMM_ONEDNN;
#else
    return id == BTRM_GEMM_CBLAS;
#endif
}

int btrm_gemm_set_backend(int id)
{
    if (!btrm_gemm_has_backend(id))
        return btrm_error_set(BTRM_EUSAGE, "GEMM backend %s is not compiled into this btrm "
                              "(configure found no oneDNN, or ran with --without-dnnl)",
                              id == BTRM_GEMM_ONEDNN ? "onednn" : "unknown");
    backend = id;
    return 0;
}

static int current_backend(void)
{
    if (backend < 0) {
        const char *env = getenv("BTRM_GEMM_BACKEND");
        backend = env && !strcmp(env, "cblas") ? BTRM_GEMM_CBLAS : BTRM_GEMM_ONEDNN;
    }
    return backend;
}

const char *btrm_gemm_backend(void)
{
    return current_backend() == BTRM_GEMM_ONEDNN ? "onednn" : "cblas";
}

const char *btrm_precision_name(int precision)
{
    switch (precision) {
    case BTRM_PREC_FP32: return "fp32";
    case BTRM_PREC_BF16: return "bf16";
    case BTRM_PREC_FP64: return "fp64";
    default: return "unknown";
    }
}

int btrm_gemm_supports(int precision)
{
    if (precision == BTRM_PREC_FP32)
        return 0;
    if (precision != BTRM_PREC_BF16)
        return btrm_error_set(BTRM_EUSAGE, "unknown GEMM precision %d", precision);
#ifdef HAVE_DNNL
    return 0;
#else
    return btrm_error_set(BTRM_EUSAGE, "GEMM precision bf16 needs oneDNN (libdnnl), which "
                          "this btrm was built without: install libdnnl-dev and configure "
                          "again (or --with-dnnl=DIR)");
#endif
}

void btrm_gemm_set_threads(int threads)
{
    if (threads < 1)
        threads = 1;
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    openblas_set_num_threads(threads);
#endif
#ifdef HAVE_DNNL_OMP
    omp_set_num_threads(threads);
#endif
}

/* ------------------------------------------------------------------------ */
/* CBLAS */

static void run_cblas(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc)
{
    /* C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C */
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* A product with one output column or row is a matrix-vector product:
 * memory bound, BLAS's gemv (any backend). 1 when it ran one. */
static int run_gemv(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc)
{
    if (n == 1) {
        /* c[m] (stride ldc) = alpha op(A)[m, k] · b[k] + beta c; b's stride is ldb
         * down a column of B [k, 1], 1 along the row of B^T [1, k] */
        cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, ta ? k : m, ta ? m : k,
                    alpha, a, lda, b, tb ? 1 : ldb, beta, c, ldc);
        return 1;
    }
    if (m == 1) {
        /* c[n] = alpha op(B)^T[n, k] · a[k] + beta c; a's stride is 1 along the row
         * of A [1, k], lda down the column of A^T */
        cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, tb ? n : k, tb ? k : n,
                    alpha, b, ldb, a, ta ? lda : 1, beta, c, 1);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* oneDNN */

#ifdef HAVE_DNNL
static dnnl_engine_t engine;
static dnnl_stream_t stream;

static int dnnl_fail(dnnl_status_t st, const char *what)
{
    return btrm_error_set(BTRM_EIO, "oneDNN: %s failed (%s)", what, dnnl_status2str(st));
}

static int dnnl_ready(void)
{
    dnnl_status_t st;
    if (!engine && (st = dnnl_engine_create(&engine, dnnl_cpu, 0)) != dnnl_success) {
        engine = NULL;
        return dnnl_fail(st, "creating the CPU engine");
    }
    if (!stream &&
        (st = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags)) != dnnl_success) {
        stream = NULL;
        return dnnl_fail(st, "creating a stream");
    }
    return 0;
}

/* A matmul primitive for one shape, layout and alpha/beta, with memory
 * objects whose data handles are set at each call. */
typedef struct mm_entry {
    int used;
    int ta, tb, m, n, k, lda, ldb, ldc;
    uint32_t alpha_bits, beta_bits;
    uint64_t last_use;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
    char impl[64];
} mm_entry;
/* Primitives kept: the shapes of a training step or of a model's prefill
 * (one per distinct weight shape and batch size) fit with room to spare;
 * the least recently used one is replaced. */
enum { MM_CACHE = 24 };
static mm_entry mm_cache[MM_CACHE];
static uint64_t mm_clock;

static void mm_free(mm_entry *e)
{
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    if (e->src)
        dnnl_memory_destroy(e->src);
    if (e->wei)
        dnnl_memory_destroy(e->wei);
    if (e->dst)
        dnnl_memory_destroy(e->dst);
    memset(e, 0, sizeof *e);
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* md for op(X)[rows, cols] stored row-major with leading dimension ld,
 * transposed when trans. */
static dnnl_status_t plain_md(dnnl_memory_desc_t *md, int rows, int cols, int trans, int ld,
                              dnnl_data_type_t type)
{
    dnnl_dims_t dims = { rows, cols };
    dnnl_dims_t strides = { trans ? 1 : ld, trans ? ld : 1 };
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

static int mm_create(mm_entry *e, float alpha, float beta)
{
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st;
    const char *what = "describing the matmul";
    if ((st = plain_md(&src_md, e->m, e->k, e->ta, e->lda, dnnl_bf16)) ||
        (st = plain_md(&wei_md, e->k, e->n, e->tb, e->ldb, dnnl_bf16)) ||
        (st = plain_md(&dst_md, e->m, e->n, 0, e->ldc, dnnl_f32)) ||
        (st = dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md)))
        goto fail;
    what = "setting alpha and beta";
    if ((st = dnnl_primitive_attr_create(&attr)))
        goto fail;
    if (alpha != 1.0f && (st = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha)))
        goto fail;
    if (beta != 0.0f) {
        if ((st = dnnl_post_ops_create(&post)) || (st = dnnl_post_ops_append_sum(post, beta)) ||
            (st = dnnl_primitive_attr_set_post_ops(attr, post)))
            goto fail;
    }
    what = "creating the matmul primitive";
    if ((st = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL)))
        goto fail;
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
        impl)
        snprintf(e->impl, sizeof e->impl, "%s", impl);
    else
        snprintf(e->impl, sizeof e->impl, "matmul");
    if ((st = dnnl_primitive_create(&e->prim, pd)))
        goto fail;
    what = "creating memory objects";
    if ((st = dnnl_memory_create(&e->src, &src_md, engine, DNNL_MEMORY_NONE)) ||
        (st = dnnl_memory_create(&e->wei, &wei_md, engine, DNNL_MEMORY_NONE)) ||
        (st = dnnl_memory_create(&e->dst, &dst_md, engine, DNNL_MEMORY_NONE)))
        goto fail;
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(post);
    dnnl_primitive_attr_destroy(attr);
    e->used = 1;
    return 0;
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (post)
        dnnl_post_ops_destroy(post);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    char shape[96];
    snprintf(shape, sizeof shape, "%s bf16 matmul %dx%dx%d", what, e->m, e->n, e->k);
    mm_free(e);
    return dnnl_fail(st, shape);
}

static int mm_lookup(int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc,
                     float alpha, float beta, mm_entry **out)
{
    uint32_t ab = float_bits(alpha), bb = float_bits(beta);
    mm_entry *victim = &mm_cache[0];
    for (int i = 0; i < MM_CACHE; i++) {
        mm_entry *e = &mm_cache[i];
        if (e->used && e->ta == ta && e->tb == tb && e->m == m && e->n == n && e->k == k &&
            e->lda == lda && e->ldb == ldb && e->ldc == ldc && e->alpha_bits == ab &&
            e->beta_bits == bb) {
            e->last_use = ++mm_clock;
            *out = e;
            return 0;
        }
        if (!e->used || (victim->used && e->last_use < victim->last_use))
            victim = e;
    }
    mm_free(victim);
    *victim = (mm_entry){ .ta = ta, .tb = tb, .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb,
                          .ldc = ldc, .alpha_bits = ab, .beta_bits = bb };
    int rc = mm_create(victim, alpha, beta);
    if (rc)
        return rc;
    victim->last_use = ++mm_clock;
    *out = victim;
    return 0;
}

static int run_matmul_bf16(int ta, int tb, int m, int n, int k, float alpha, const void *a,
                           int lda, const void *b, int ldb, float beta, float *c, int ldc,
                           const char **impl)
{
    int rc = dnnl_ready();
    mm_entry *e = NULL;
    if (!rc)
        rc = mm_lookup(ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, &e);
    if (rc)
        return rc;
    dnnl_status_t st;
    if ((st = dnnl_memory_set_data_handle(e->src, (void *)a)) ||
        (st = dnnl_memory_set_data_handle(e->wei, (void *)b)) ||
        (st = dnnl_memory_set_data_handle(e->dst, c)))
        return dnnl_fail(st, "setting matmul data handles");
    dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, e->src }, { DNNL_ARG_WEIGHTS, e->wei },
                                { DNNL_ARG_DST, e->dst } };
    if ((st = dnnl_primitive_execute(e->prim, stream, 3, args)) ||
        (st = dnnl_stream_wait(stream)))
        return dnnl_fail(st, "executing a bf16 matmul");
    *impl = e->impl;
    return 0;
}

static int run_dnnl_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                          int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    /* dnnl_sgemm is row-major: C[m, n] = alpha op(A) op(B) + beta C */
    dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b,
                                  ldb, beta, c, ldc);
    return st == dnnl_success ? 0 : dnnl_fail(st, "dnnl_sgemm");
}

/* Whether oneDNN has a bf16 matmul for this CPU: oneDNN 2.6 implements bf16
 * from AVX-512 (avx512_core) up, and answers "unimplemented" on AVX2. 1, 0,
 * or a negative code when oneDNN cannot answer. Asked once. */
static int bf16_native = -1;
static int bf16_matmul_native(void)
{
    if (bf16_native >= 0)
        return bf16_native;
    int rc = dnnl_ready();
    if (rc)
        return rc;
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st;
    if ((st = plain_md(&src_md, 2, 2, 0, 2, dnnl_bf16)) ||
        (st = plain_md(&wei_md, 2, 2, 0, 2, dnnl_bf16)) ||
        (st = plain_md(&dst_md, 2, 2, 0, 2, dnnl_f32)) ||
        (st = dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md)))
        return dnnl_fail(st, "describing a bf16 matmul");
    st = dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL);
    if (st == dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        bf16_native = 1;
    } else if (st == dnnl_unimplemented) {
        bf16_native = 0;
    } else {
        return dnnl_fail(st, "asking for a bf16 matmul");
    }
    return bf16_native;
}
#endif /* HAVE_DNNL */

const char *btrm_gemm_bf16_route(void)
{
#ifdef HAVE_DNNL
    int native = bf16_matmul_native();
    if (native == 1)
        return "oneDNN bf16 matmul";
    if (native == 0)
        return "fp32 sgemm of bf16-rounded inputs (oneDNN has no bf16 matmul for this CPU)";
    return "unknown (oneDNN failed to answer)";
#else
    return "none (built without oneDNN)";
#endif
}

/* ------------------------------------------------------------------------ */
/* bf16 work buffers: the rounded copies of fp32 operands */

typedef struct work_buf {
    void *data;
    size_t cap; /* bytes */
} work_buf;
static work_buf work[2];

/* w holding at least n elements of size bytes each (grown, never shrunk). */
static int work_grow(work_buf *w, size_t n, size_t size)
{
    size_t need = n * size;
    if (need <= w->cap)
        return 0;
    unsigned char *grown = NULL;
    int rc = BTRM_MALLOC(grown, need);
    if (rc)
        return btrm_error_wrap(rc, "bf16 GEMM work buffer of %zu elements", n);
    free(w->data);
    w->data = grown;
    w->cap = need;
    return 0;
}

/* Rounds op's stored matrix [rows, cols] (leading dimension ld) into a
 * compact bf16 copy; *ld_out = cols. */
static int round_operand(work_buf *w, const float *x, int rows, int cols, int ld,
                         const uint16_t **out, int *ld_out)
{
    size_t need = (size_t)rows * (size_t)cols;
    int rc = work_grow(w, need, sizeof(uint16_t));
    if (rc)
        return rc;
    uint16_t *data = w->data;
    if (ld == cols) {
        btrm_dtype_from_f32(data, BTRM_DTYPE_BF16, x, need);
    } else {
        for (int r = 0; r < rows; r++)
            btrm_dtype_from_f32(data + (size_t)r * cols, BTRM_DTYPE_BF16,
                                x + (size_t)r * (size_t)ld, (size_t)cols);
    }
    *out = data;
    *ld_out = cols;
    return 0;
}

#ifdef HAVE_DNNL
/* fp32 work buffers of the emulated bf16 route */
static work_buf wide[2];

/* op's stored matrix [rows, cols] (leading dimension ld, of type dtype)
 * rounded to bf16 and widened back to fp32, compact: *ld_out = cols. */
static int widen_operand(work_buf *w, const btrm_gemm_operand *x, int rows, int cols,
                         const float **out, int *ld_out)
{
    int rc = work_grow(w, (size_t)rows * (size_t)cols, sizeof(float));
    if (rc)
        return rc;
    float *data = w->data;
    for (int r = 0; r < rows; r++) {
        float *dst = data + (size_t)r * cols;
        if (x->dtype == BTRM_DTYPE_BF16) {
            btrm_dtype_to_f32(dst, (const uint16_t *)x->data + (size_t)r * (size_t)x->ld,
                              BTRM_DTYPE_BF16, (size_t)cols);
        } else {
            const float *src = (const float *)x->data + (size_t)r * (size_t)x->ld;
            for (int j = 0; j < cols; j++)
                dst[j] = btrm_bf16_to_float(btrm_float_to_bf16(src[j]));
        }
    }
    *out = data;
    *ld_out = cols;
    return 0;
}

/* A bf16 product where oneDNN has no bf16 matmul: the inputs rounded to bf16
 * exactly as the native route rounds them, the products (exact in fp32: 8 by
 * 8 significant bits) accumulated in fp32 by the fp32 backend. The same
 * arithmetic up to summation order. */
static int run_bf16_emulated(int ta, int tb, int m, int n, int k, float alpha,
                             const btrm_gemm_operand *a, const btrm_gemm_operand *b, float beta,
                             float *c, int ldc, const char **impl)
{
    const float *ad = NULL, *bd = NULL;
    int lda = 0, ldb = 0;
    int rc = widen_operand(&wide[0], a, ta ? k : m, ta ? m : k, &ad, &lda);
    if (!rc)
        rc = widen_operand(&wide[1], b, tb ? n : k, tb ? k : n, &bd, &ldb);
    if (rc)
        return rc;
    if (current_backend() == BTRM_GEMM_ONEDNN) {
        *impl = "dnnl_sgemm of bf16 inputs";
        return run_dnnl_sgemm(ta, tb, m, n, k, alpha, ad, lda, bd, ldb, beta, c, ldc);
    }
    *impl = "cblas_sgemm of bf16 inputs";
    run_cblas(ta, tb, m, n, k, alpha, ad, lda, bd, ldb, beta, c, ldc);
    return 0;
}
#endif

void btrm_gemm_release(void)
{
    for (int i = 0; i < 2; i++) {
        free(work[i].data);
        work[i] = (work_buf){ 0 };
    }
#ifdef HAVE_DNNL
    for (int i = 0; i < 2; i++) {
        free(wide[i].data);
        wide[i] = (work_buf){ 0 };
    }
#endif
#ifdef HAVE_DNNL
    for (int i = 0; i < MM_CACHE; i++)
        mm_free(&mm_cache[i]);
    if (stream)
        dnnl_stream_destroy(stream);
    if (engine)
        dnnl_engine_destroy(engine);
    stream = NULL;
    engine = NULL;
#endif
}

/* ------------------------------------------------------------------------ */

const char *btrm_gemm_library(void)
{
#ifdef HAVE_DNNL
    static char text[64];
    const dnnl_version_t *v = dnnl_version();
    snprintf(text, sizeof text, "oneDNN %d.%d.%d (%s), CBLAS", v->major, v->minor, v->patch,
#ifdef HAVE_DNNL_OMP
             "OpenMP"
#else
             "sequential"
#endif
    );
    return text;
#else
    return "CBLAS";
#endif
}

const char *btrm_gemm_isa(void)
{
#ifdef HAVE_DNNL
    const char *isa = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa());
    if (!isa)
        return "unknown";
    return strncmp(isa, "cpu_isa_", 8) == 0 ? isa + 8 : isa;
#else
    return "";
#endif
}

/* C = beta C (k = 0: no products), beta = 0 clearing NaNs as BLAS does */
static void scale_c(int m, int n, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
}

int btrm_gemm_ex(int precision, int m, int n, int k, float alpha, const btrm_gemm_operand *a,
                 const btrm_gemm_operand *b, float beta, float *c, int ldc)
{
    int rc = btrm_gemm_supports(precision);
    if (rc)
        return rc;
    const int ta = a->trans != 0, tb = b->trans != 0;
    for (int i = 0; i < 2; i++) {
        const btrm_gemm_operand *x = i ? b : a;
        if (x->dtype != BTRM_DTYPE_F32 && x->dtype != BTRM_DTYPE_BF16)
            return btrm_error_set(BTRM_EUSAGE, "GEMM operand %c: type %s is not f32 or bf16",
                                  i ? 'B' : 'A', btrm_dtype_name(x->dtype));
        if (x->dtype == BTRM_DTYPE_BF16 && precision != BTRM_PREC_BF16)
            return btrm_error_set(BTRM_EUSAGE, "GEMM operand %c is bf16: the product must "
                                  "run in precision bf16", i ? 'B' : 'A');
    }
    if (m <= 0 || n <= 0)
        return 0;
    if (k <= 0) {
        scale_c(m, n, beta, c, ldc);
        return 0;
    }
    double t0 = wall_now();
    const char *impl = "cblas_sgemm";
    if (precision == BTRM_PREC_FP32 && run_gemv(ta, tb, m, n, k, alpha, a->data, a->ld, b->data,
                                                b->ld, beta, c, ldc)) {
        impl = "cblas_sgemv";
    } else if (precision == BTRM_PREC_FP32) {
#ifdef HAVE_DNNL
        if (current_backend() == BTRM_GEMM_ONEDNN) {
            impl = "dnnl_sgemm";
            rc = run_dnnl_sgemm(ta, tb, m, n, k, alpha, a->data, a->ld, b->data, b->ld, beta,
                                c, ldc);
        } else
#endif
            run_cblas(ta, tb, m, n, k, alpha, a->data, a->ld, b->data, b->ld, beta, c, ldc);
    } else {
#ifdef HAVE_DNNL
        int native = bf16_matmul_native();
        if (native < 0)
            return native;
        if (!native) {
            rc = run_bf16_emulated(ta, tb, m, n, k, alpha, a, b, beta, c, ldc, &impl);
            if (!rc)
                stat_add(precision, ta, tb, m, n, k, impl, wall_now() - t0);
            return rc;
        }
        /* stored shapes: A [m, k] or [k, m]; B [k, n] or [n, k] */
        const uint16_t *ad = a->data, *bd = b->data;
        int lda = a->ld, ldb = b->ld;
        if (a->dtype == BTRM_DTYPE_F32)
            rc = round_operand(&work[0], a->data, ta ? k : m, ta ? m : k, a->ld, &ad, &lda);
        if (!rc && b->dtype == BTRM_DTYPE_F32)
            rc = round_operand(&work[1], b->data, tb ? n : k, tb ? k : n, b->ld, &bd, &ldb);
        if (!rc)
            rc = run_matmul_bf16(ta, tb, m, n, k, alpha, ad, lda, bd, ldb, beta, c, ldc,
                                 &impl);
#endif
    }
    if (!rc)
        stat_add(precision, ta, tb, m, n, k, impl, wall_now() - t0);
    return rc;
}

int btrm_gemm(int precision, int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c,
              int ldc)
{
    btrm_gemm_operand oa = { a, BTRM_DTYPE_F32, trans_a, lda };
    btrm_gemm_operand ob = { b, BTRM_DTYPE_F32, trans_b, ldb };
    return btrm_gemm_ex(precision, m, n, k, alpha, &oa, &ob, beta, c, ldc);
}

int btrm_gemm_f64(int trans_a, int trans_b, int m, int n, int k, double alpha, const double *a,
                  int lda, const double *b, int ldb, double beta, double *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return 0;
    double t0 = wall_now();
    const char *impl = "cblas_dgemm";
    if (n == 1 && k > 0) { /* see run_gemv */
        cblas_dgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_a ? k : m,
                    trans_a ? m : k, alpha, a, lda, b, trans_b ? 1 : ldb, beta, c, ldc);
        impl = "cblas_dgemv";
    } else if (m == 1 && k > 0) {
        cblas_dgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, trans_b ? n : k,
                    trans_b ? k : n, alpha, b, ldb, a, trans_a ? lda : 1, beta, c, 1);
        impl = "cblas_dgemv";
    } else {
        /* C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C (k = 0: beta C) */
        cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta,
                    c, ldc);
    }
    stat_add(BTRM_PREC_FP64, trans_a != 0, trans_b != 0, m, n, k, impl, wall_now() - t0);
    return 0;
}
