/* compute.c: the GEMM engine's settings and record for a run (compute.h). */
#include "compute.h"

#include "error.h"
#include "gemm.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

int btrm_compute_setup(const char *key, int precision, int threads)
{
    int rc = btrm_gemm_supports(precision);
    if (rc)
        return btrm_error_set(BTRM_ECONFIG, "%s: %s: %s", key, btrm_precision_name(precision),
                              btrm_error_msg());
    btrm_gemm_set_threads(threads);
    btrm_gemm_stats_reset();
    if (precision == BTRM_PREC_BF16 && strncmp(btrm_gemm_bf16_route(), "oneDNN", 6) != 0)
        btrm_log_info("compute: %s: bf16 GEMMs run as %s: the same rounding, no speed-up", key,
                      btrm_gemm_bf16_route());
    btrm_log_debug("compute: %s GEMMs, fp32 backend %s, %s%s%s, %d thread%s", 
                   btrm_precision_name(precision), btrm_gemm_backend(), btrm_gemm_library(),
                   btrm_gemm_isa()[0] ? ", oneDNN ISA " : "", btrm_gemm_isa(), threads,
                   threads == 1 ? "" : "s");
    return 0;
}

static const char *op_name(const btrm_gemm_stat *s)
{
    static const char *const ops[4] = { "NN", "NT", "TN", "TT" };
    return ops[2 * s->trans_a + s->trans_b];
}

static double gflops(double flops, double seconds)
{
    return seconds > 0 ? flops / seconds * 1e-9 : 0.0;
}

void btrm_compute_log(void)
{
    btrm_gemm_stat st[BTRM_GEMM_MAX_SHAPES];
    int n = btrm_gemm_stats(st, BTRM_GEMM_MAX_SHAPES);
    for (int i = 0; i < n; i++) {
        const btrm_gemm_stat *s = &st[i];
        double flops = 2.0 * s->m * (double)s->n * s->k * (double)s->calls;
        btrm_log_debug("gemm %s %s %dx%dx%d: %s, %lld calls, %.3f s, %.1f GFLOP/s",
                       btrm_precision_name(s->precision), op_name(s), s->m, s->n, s->k,
                       s->impl, (long long)s->calls, s->seconds, gflops(flops, s->seconds));
    }
    int64_t calls;
    double seconds, flops;
    btrm_gemm_stats_other(&calls, &seconds, &flops);
    if (calls > 0)
        btrm_log_debug("gemm: %lld more calls of other shapes, %.3f s, %.1f GFLOP/s",
                       (long long)calls, seconds, gflops(flops, seconds));
}

json_t *btrm_compute_json(int precision, int threads)
{
    btrm_gemm_stat st[BTRM_GEMM_MAX_SHAPES];
    int n = btrm_gemm_stats(st, BTRM_GEMM_MAX_SHAPES);
    json_t *shapes = json_array();
    for (int i = 0; i < n; i++) {
        const btrm_gemm_stat *s = &st[i];
        double flops = 2.0 * s->m * (double)s->n * s->k * (double)s->calls;
        json_array_append_new(shapes, json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:I, s:f, s:f}",
                                                "precision", btrm_precision_name(s->precision),
                                                "op", op_name(s), "m", s->m, "n", s->n, "k",
                                                s->k, "impl", s->impl, "calls",
                                                (json_int_t)s->calls, "seconds", s->seconds,
                                                "gflops", gflops(flops, s->seconds)));
    }
    int64_t calls;
    double seconds, flops;
    btrm_gemm_stats_other(&calls, &seconds, &flops);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:{s:I, s:f, s:f}}", "backend",
                     btrm_gemm_backend(), "libraries", btrm_gemm_library(), "isa",
                     btrm_gemm_isa(), "precision", btrm_precision_name(precision),
                     "bf16_route", precision == BTRM_PREC_BF16 ? btrm_gemm_bf16_route() : "",
                     "threads",
                     threads, "gemm", shapes, "gemm_other", "calls", (json_int_t)calls,
                     "seconds", seconds, "gflops", gflops(flops, seconds));
}
