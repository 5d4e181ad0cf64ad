/* bench/llama-train-bench.c: training throughput of the Llama backbone
 * (src/math/llama_train.h: forward with saved activations + backward) on a
 * synthetic Llama-shaped model held in memory, next to btrm_gemm's peak at
 * the same shapes in the same run. Math layer only: no MPI, no files.
 *
 * Models (random float32 weights, 2 blocks, vocabulary 1000):
 *   dim 2048: hidden 5632, 32 heads, 4 kv heads (TinyLlama's block)
 *   dim 4096: hidden 11008, 32 heads, 32 kv heads (Llama 2 7B's block)
 * Modes: LoRA r = 16 (alpha 32) on all seven projections of both blocks,
 * and top_k 1 (the top block and the final norm in full).
 * One step = one forward of --seqs sequences of --seq-len tokens (the
 * batch layout of train.micro_batch pairs) + its backward from a random
 * d(pooled), last-token pooling. FLOPs from btrm_llama_train_flops (every
 * GEMM's 2mnk, attention over the causal pairs).
 *
 * The GEMM peak: btrm_gemm GFLOP/s of the three products of the largest
 * linear layer (the FFN, N = tokens): forward y = x W^T [N, hidden, dim],
 * input gradient dx = dy W [N, dim, hidden], weight gradient dW += dy^T x
 * [hidden, dim, N]; "peak" is the best of them.
 *
 * Times: each measure is the best and the median of --reps repetitions
 * (after one untimed step), wall clock and the calling thread's CPU time
 * (with 1 thread OpenBLAS computes in the calling thread, so CPU time
 * leaves out what other processes took on a shared machine).
 *
 * Build: make -C bench llama-train-bench (after `make`). Usage:
 *   bench/llama-train-bench [--dims "2048 4096"] [--seqs 4] [--seq-len 128]
 *       [--reps 3] [--threads 1] [--recompute 0|1] [--precision fp32|bf16]
 *       [--modes "lora top1"] */
#define _POSIX_C_SOURCE 200809L
#include "error.h"
#include "gemm.h"
#include "llama.h"
#include "llama_train.h"
#include "quant.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int num_threads) __attribute__((weak));
char *openblas_get_corename(void) __attribute__((weak));

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double best_of(const double *v, int n)
{
    double b = v[0];
    for (int i = 1; i < n; i++)
        b = v[i] < b ? v[i] : b;
    return b;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "llama-train-bench: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static btrm_rng rng;

static float *random_floats(size_t n, double scale)
{
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(scale * (2.0 * btrm_rng_uniform(&rng) - 1.0));
    return p;
}

typedef struct synth {
    btrm_llama_hparams hp;
    btrm_llama_weights w;
    btrm_llama_layer layers[2];
    float *owned[32];
    int n_owned;
} synth;

static btrm_llama_matrix synth_matrix(synth *m, int rows, int cols)
{
    float *p = random_floats((size_t)rows * cols, 1.0 / sqrt((double)cols));
    m->owned[m->n_owned++] = p;
    return (btrm_llama_matrix){ p, BTRM_Q_F32, rows, cols };
}

static float *synth_norm(synth *m, int n)
{
    float *p = random_floats((size_t)n, 0.1);
    for (int i = 0; i < n; i++)
        p[i] += 1.0f;
    m->owned[m->n_owned++] = p;
    return p;
}

static void synth_init(synth *m, int dim)
{
    memset(m, 0, sizeof *m);
    int hidden = dim == 2048 ? 5632 : dim == 4096 ? 11008 : (dim * 8 / 3 + 63) / 64 * 64;
    int kv = dim == 2048 ? 4 : 32;
    m->hp = (btrm_llama_hparams){ .dim = dim, .hidden_dim = hidden, .n_layers = 2,
                                  .n_heads = 32, .n_kv_heads = kv, .head_dim = dim / 32,
                                  .rope_dim = dim / 32, .vocab_size = 1000, .context = 4096,
                                  .norm_eps = 1e-5f, .rope_theta = 10000.0f };
    int q = dim, kvd = kv * (dim / 32);
    m->w.token_embd = synth_matrix(m, 1000, dim);
    for (int l = 0; l < 2; l++) {
        btrm_llama_layer *L = &m->layers[l];
        L->attn_norm = synth_norm(m, dim);
        L->ffn_norm = synth_norm(m, dim);
        L->wq = synth_matrix(m, q, dim);
        L->wk = synth_matrix(m, kvd, dim);
        L->wv = synth_matrix(m, kvd, dim);
        L->wo = synth_matrix(m, dim, q);
        L->w1 = synth_matrix(m, hidden, dim);
        L->w2 = synth_matrix(m, dim, hidden);
        L->w3 = synth_matrix(m, hidden, dim);
    }
    m->w.layers = m->layers;
    m->w.output_norm = synth_norm(m, dim);
    m->w.output = m->w.token_embd;
}

static void synth_free(synth *m)
{
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    m->n_owned = 0;
}

/* btrm_gemm GFLOP/s (best of reps after one untimed call, wall and CPU);
 * 0 or btrm_gemm's error */
static int gemm_rate(int precision, int ta, int tb, int M, int N, int K, int reps,
                      double *wall_best, double *cpu_best)
{
    int lda = ta ? M : K, ldb = tb ? K : N;
    float *a = random_floats((size_t)M * K, 1e-2), *b = random_floats((size_t)K * N, 1e-2);
    float *c = random_floats((size_t)M * N, 1e-2);
    double flops = 2.0 * M * N * (double)K;
    int rc = btrm_gemm(precision, ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
    if (rc) {
        free(a), free(b), free(c);
        return rc;
    }
    double *tw = xmalloc((size_t)reps * sizeof *tw), *tc = xmalloc((size_t)reps * sizeof *tc);
    for (int r = 0; r < reps; r++) {
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        btrm_gemm(precision, ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
        tc[r] = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        tw[r] = clock_s(CLOCK_MONOTONIC) - w0;
    }
    *wall_best = flops / best_of(tw, reps) * 1e-9;
    *cpu_best = flops / best_of(tc, reps) * 1e-9;
    free(a), free(b), free(c), free(tw), free(tc);
    return 0;
}

static int run_mode(synth *m, const char *mode, int seqs, int seq_len, int reps, int recompute,
                    int precision, double peak_wall, double peak_cpu)
{
    btrm_llama_train_spec spec = { BTRM_FT_LORA, 0, 16, 32.0f, BTRM_LORA_ALL };
    if (!strcmp(mode, "top1"))
        spec = (btrm_llama_train_spec){ BTRM_FT_TOP_K, 1, 0, 0.0f, 0 };
    else if (strcmp(mode, "lora")) {
        fprintf(stderr, "llama-train-bench: mode %s: want lora or top1\n", mode);
        return 2;
    }
    btrm_llama_train lt;
    btrm_llama_train_ws ws;
    int rc = btrm_llama_train_init(&lt, &spec, &m->hp, &m->w);
    int N = seqs * seq_len, dim = m->hp.dim;
    if (!rc)
        rc = btrm_llama_train_ws_init(&ws, &lt, N, seq_len, recompute, precision);
    if (rc) {
        fprintf(stderr, "llama-train-bench: %s\n", btrm_error_msg());
        btrm_llama_train_free(&lt);
        return 1;
    }
    float *params = xmalloc(lt.n_params * sizeof *params);
    float *grads = xmalloc(lt.n_params * sizeof *grads);
    btrm_llama_train_init_params(&lt, params, 1);
    /* B = 0 makes no difference to the work; give it values anyway */
    for (int t = 0; t < lt.n_tensors; t++)
        if (lt.tensors[t].kind == BTRM_LT_LORA_B)
            for (size_t j = 0; j < (size_t)lt.tensors[t].rows * lt.tensors[t].cols; j++)
                params[lt.tensors[t].offset + j] = (float)(1e-3 * btrm_rng_normal(&rng));
    memset(grads, 0, lt.n_params * sizeof *grads);
    int32_t *ids = xmalloc((size_t)N * sizeof *ids);
    int *lens = xmalloc((size_t)seqs * sizeof *lens);
    for (int i = 0; i < N; i++)
        ids[i] = (int32_t)btrm_rng_below(&rng, 1000);
    for (int s = 0; s < seqs; s++)
        lens[s] = seq_len;
    float *pooled = xmalloc((size_t)seqs * dim * sizeof *pooled);
    float *dpooled = random_floats((size_t)seqs * dim, 1.0);
    double fwd_flops, bwd_flops;
    btrm_llama_train_flops(&lt, lens, seqs, recompute, &fwd_flops, &bwd_flops);
    double *tfw = xmalloc((size_t)reps * sizeof(double)), *tfc = xmalloc((size_t)reps * sizeof(double));
    double *tbw = xmalloc((size_t)reps * sizeof(double)), *tbc = xmalloc((size_t)reps * sizeof(double));
    double *tsw = xmalloc((size_t)reps * sizeof(double)), *tsc = xmalloc((size_t)reps * sizeof(double));
    for (int r = -1; r < reps && !rc; r++) {
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        rc = btrm_llama_train_forward(&ws, params, ids, lens, seqs, BTRM_POOL_LAST, pooled);
        double w1 = clock_s(CLOCK_MONOTONIC), c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (!rc)
            rc = btrm_llama_train_backward(&ws, params, dpooled, grads);
        double w2 = clock_s(CLOCK_MONOTONIC), c2 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (r >= 0) {
            tfw[r] = w1 - w0, tfc[r] = c1 - c0, tbw[r] = w2 - w1, tbc[r] = c2 - c1;
            tsw[r] = w2 - w0, tsc[r] = c2 - c0;
        }
    }
    if (rc) {
        fprintf(stderr, "llama-train-bench: %s\n", btrm_error_msg());
    } else {
        double flops = fwd_flops + bwd_flops;
        double bw = best_of(tsw, reps), bc = best_of(tsc, reps);
        double mw = median(tsw, reps), mc = median(tsc, reps);
        printf("| %d | %s%s | %d x %d | %.3f | %.3f | %.2f / %.2f | %.2f / %.2f | %.0f / %.0f | "
               "%.1f / %.1f | %.1f / %.1f | %.0f%% / %.0f%% | %.0f%% |\n",
               dim, mode, recompute ? " (recompute)" : "", seqs, seq_len, fwd_flops * 1e-9,
               bwd_flops * 1e-9, best_of(tfw, reps), best_of(tfc, reps), best_of(tbw, reps),
               best_of(tbc, reps), N / bw, N / bc, flops / bw * 1e-9, flops / bc * 1e-9,
               peak_wall, peak_cpu, 100.0 * flops / bw * 1e-9 / peak_wall,
               100.0 * flops / bc * 1e-9 / peak_cpu, 100.0 * flops / mc * 1e-9 / peak_cpu);
        printf("<!-- %d %s: step median wall %.2f s, cpu %.2f s; memory %.0f MiB of work "
               "buffers, %zu trainable parameters -->\n", dim, mode, mw, mc,
               (double)ws.bytes / 1048576.0, lt.n_params);
        fflush(stdout);
    }
    free(tfw), free(tfc), free(tbw), free(tbc), free(tsw), free(tsc);
    free(params), free(grads), free(ids), free(lens), free(pooled), free(dpooled);
    btrm_llama_train_ws_free(&ws);
    btrm_llama_train_free(&lt);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *dims = "2048 4096", *modes = "lora top1";
    int seqs = 4, seq_len = 128, reps = 3, threads = 1, recompute = 0;
    int precision = BTRM_PREC_FP32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dims") && i + 1 < argc)
            dims = argv[++i];
        else if (!strcmp(argv[i], "--modes") && i + 1 < argc)
            modes = argv[++i];
        else if (!strcmp(argv[i], "--seqs") && i + 1 < argc)
            seqs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq-len") && i + 1 < argc)
            seq_len = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--recompute") && i + 1 < argc)
            recompute = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc)
            precision = !strcmp(argv[++i], "bf16") ? BTRM_PREC_BF16 : BTRM_PREC_FP32;
        else {
            fprintf(stderr, "usage: %s [--dims \"2048 4096\"] [--modes \"lora top1\"] "
                            "[--seqs 4] [--seq-len 128] [--reps 3] [--threads 1] "
                            "[--recompute 0|1] [--precision fp32|bf16]\n", argv[0]);
            return 2;
        }
    }
    if (seqs < 1 || seq_len < 1 || reps < 1 || threads < 1) {
        fprintf(stderr, "llama-train-bench: --seqs, --seq-len, --reps, --threads must be >= 1\n");
        return 2;
    }
    if (openblas_set_num_threads)
        openblas_set_num_threads(threads);
    btrm_rng_seed(&rng, 7, 0);
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("<!-- llama-train-bench: btrm_gemm backend %s, precision %s, %d thread(s), "
           "OPENBLAS_CORETYPE=%s, OpenBLAS core %s; best of %d steps after 1 untimed -->\n",
           btrm_gemm_backend(), precision == BTRM_PREC_BF16 ? "bf16" : "fp32", threads,
           core ? core : "(unset)", openblas_get_corename ? openblas_get_corename() : "?",
           reps);
    printf("| dim | mode | seqs x tokens | fwd GFLOP | bwd GFLOP | fwd s wall / cpu | "
           "bwd s wall / cpu | tokens/s wall / cpu | GFLOP/s wall / cpu | GEMM peak "
           "wall / cpu | %% of peak wall / cpu | %% median cpu |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    fflush(stdout);
    char list[256];
    snprintf(list, sizeof list, "%s", dims);
    int rc = 0;
    for (char *save = NULL, *tok = strtok_r(list, " ,", &save); tok && !rc;
         tok = strtok_r(NULL, " ,", &save)) {
        int dim = atoi(tok);
        if (dim < 64 || dim % 32) {
            fprintf(stderr, "llama-train-bench: dim %d: want a multiple of 32, >= 64\n", dim);
            return 2;
        }
        synth m;
        synth_init(&m, dim);
        int N = seqs * seq_len, H = m.hp.hidden_dim;
        double pw[3], pc[3];
        if (gemm_rate(precision, 0, 1, N, H, dim, reps + 2, &pw[0], &pc[0]) || /* y = x W^T */
            gemm_rate(precision, 0, 0, N, dim, H, reps + 2, &pw[1], &pc[1]) || /* dx = dy W */
            gemm_rate(precision, 1, 0, H, dim, N, reps + 2, &pw[2], &pc[2])) { /* dW += dy^T x */
            fprintf(stderr, "llama-train-bench: %s\n", btrm_error_msg());
            synth_free(&m);
            return 1;
        }
        printf("<!-- dim %d btrm_gemm GFLOP/s wall/cpu: y=xW^T [%d,%d,%d] %.1f/%.1f, "
               "dx=dyW [%d,%d,%d] %.1f/%.1f, dW=dy^Tx [%d,%d,%d] %.1f/%.1f -->\n", dim, N, H,
               dim, pw[0], pc[0], N, dim, H, pw[1], pc[1], H, dim, N, pw[2], pc[2]);
        double peak_w = fmax(pw[0], fmax(pw[1], pw[2])), peak_c = fmax(pc[0], fmax(pc[1], pc[2]));
        char mlist[128];
        snprintf(mlist, sizeof mlist, "%s", modes);
        for (char *s2 = NULL, *mode = strtok_r(mlist, " ,", &s2); mode && !rc;
             mode = strtok_r(NULL, " ,", &s2))
            rc = run_mode(&m, mode, seqs, seq_len, reps, recompute, precision, peak_w, peak_c);
        synth_free(&m);
    }
    return rc;
}
