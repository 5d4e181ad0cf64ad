/* bench/llama-bench.c: prefill throughput of btrm's Llama forward pass
 * (src/math/llama.c through llama_model.h's embedder) on every rank at once, and
 * the GEMM reference at the model's own FFN shape under the same conditions
 * (same ranks, same threads, the embedder's precision), so "% of peak"
 * compares like with like.
 *
 *   mpirun -np P bench/llama-bench --backbone gguf:MODEL.gguf[,dequantize=1,...]
 *          [--seq L] [--seqs S] [--reps R] [--threads T] [--sgemm] [--clock wall|cpu]
 *          [--markdown]
 *
 * Each rank runs R timed forwards (after one untimed warm-up that also pages
 * the mapped weights in) of S random sequences of L tokens (one batch of S*L
 * tokens: every linear layer is one sgemm with M = S*L). A repetition's time
 * is the slowest rank's (MPI_Allreduce max); the best repetition is
 * reported: aggregate tokens/s = P*S*L / time, GFLOP/s = P * model FLOPs /
 * time, with the FLOPs of btrm_llama_flops (linear layers 2*N*in*out,
 * causal attention 4*hd per kept (query, key) pair and head). With --sgemm,
 * every rank also times btrm_gemm at [S*L, dim] x [hidden, dim]^T (the
 * gate/up projection) in the embedder's precision (fp32: the fp32 backend,
 * dnnl_sgemm with oneDNN; bf16: the bf16 matmul on operands already in bf16)
 * and the best per-rank GFLOP/s is printed next to it. precision=bf16 in the
 * backbone spec selects embed.precision bf16.
 * --clock cpu times each rank by its process CPU time instead of the wall
 * clock (with one BLAS thread per rank this is the compute time, which stays
 * meaningful when other jobs share the cores; the slowest rank still counts).
 *
 * Build (after `make`): see bench/llama-bench.sh, which also writes the
 * synthetic models and runs the cases of bench/llama-results.md. */
#include "dtype.h"
#include "error.h"
#include "gemm.h"
#include "llama_model.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static void usage(void)
{
    fprintf(stderr, "usage: mpirun -np P llama-bench --backbone gguf:M.gguf|llama2c:M.bin[,opts] "
                    "[--seq L] [--seqs S] [--reps R] [--threads T] [--sgemm] [--clock wall|cpu] "
                    "[--markdown]\n");
}

static int use_cpu_clock;

static double now(void)
{
    if (!use_cpu_clock)
        return MPI_Wtime();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* btrm_gemm at C[m, n] = A[m, k] B[n, k]^T in precision (bf16: operands
 * already in bf16, as the prefill's weights and rounded inputs are) */
static double gemm_gflops(int precision, int m, int n, int k, int reps, MPI_Comm comm)
{
    float *a = malloc((size_t)m * k * sizeof *a), *b = malloc((size_t)n * k * sizeof *b);
    float *c = malloc((size_t)m * n * sizeof *c);
    uint16_t *a16 = malloc((size_t)m * k * sizeof *a16), *b16 = malloc((size_t)n * k * sizeof *b16);
    if (!a || !b || !c || !a16 || !b16) {
        free(a), free(b), free(c), free(a16), free(b16);
        return 0.0;
    }
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < (size_t)n * k; i++)
        b[i] = (float)(i % 13) * 0.01f;
    btrm_dtype_from_f32(a16, BTRM_DTYPE_BF16, a, (size_t)m * k);
    btrm_dtype_from_f32(b16, BTRM_DTYPE_BF16, b, (size_t)n * k);
    int bf16 = precision == BTRM_PREC_BF16;
    btrm_gemm_operand oa = { bf16 ? (const void *)a16 : a, bf16 ? BTRM_DTYPE_BF16 : 0, 0, k };
    btrm_gemm_operand ob = { bf16 ? (const void *)b16 : b, bf16 ? BTRM_DTYPE_BF16 : 0, 1, k };
    double best = 1e30;
    for (int r = -1; r < reps; r++) {
        MPI_Barrier(comm);
        double t0 = now();
        btrm_gemm_ex(precision, m, n, k, 1.0f, &oa, &ob, 0.0f, c, n);
        double t = now() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm);
        if (r >= 0 && t < best)
            best = t;
    }
    free(a), free(b), free(c), free(a16), free(b16);
    return 2.0 * m * n * (double)k / best * 1e-9;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *spec = NULL;
    int seq = 512, seqs = 1, reps = 3, threads = 1, do_sgemm = 0, markdown = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backbone") && i + 1 < argc)
            spec = argv[++i];
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc)
            seq = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seqs") && i + 1 < argc)
            seqs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sgemm"))
            do_sgemm = 1;
        else if (!strcmp(argv[i], "--markdown"))
            markdown = 1;
        else if (!strcmp(argv[i], "--clock") && i + 1 < argc)
            use_cpu_clock = !strcmp(argv[++i], "cpu");
        else {
            if (rank == 0)
                usage();
            MPI_Finalize();
            return 2;
        }
    }
    int format = BTRM_LLAMA_GGUF;
    const char *args = NULL;
    if (spec && !strncmp(spec, "gguf:", 5)) {
        args = spec + 5;
    } else if (spec && !strncmp(spec, "llama2c:", 8)) {
        format = BTRM_LLAMA_LLAMA2C;
        args = spec + 8;
    }
    if (!args || seq < 1 || seqs < 1 || reps < 1 || threads < 1) {
        if (rank == 0)
            usage();
        MPI_Finalize();
        return 2;
    }
    btrm_llama_opts base;
    btrm_llama_opts_defaults(&base);
    base.max_tokens = seq;
    base.max_batch_tokens = seq * seqs;
    base.threads = threads;
    btrm_llama_embedder e;
    double t_load = MPI_Wtime();
    int rc = btrm_llama_embedder_open(&e, format, args, &base);
    t_load = MPI_Wtime() - t_load;
    int any = rc != 0;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any) {
        if (rc)
            fprintf(stderr, "llama-bench: rank %d: %s\n", rank, btrm_error_msg());
        MPI_Finalize();
        return 1;
    }
    const btrm_llama_hparams *hp = &e.model->hp;
    int n = seq * seqs;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    int *lens = malloc((size_t)seqs * sizeof *lens);
    float *out = malloc((size_t)seqs * hp->dim * sizeof *out);
    uint64_t state = 12345u + 7919u * (uint64_t)rank;
    for (int i = 0; i < n; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        ids[i] = (int32_t)((state >> 33) % (uint64_t)hp->vocab_size);
    }
    for (int s = 0; s < seqs; s++)
        lens[s] = seq;
    double flops = btrm_llama_flops(hp, lens, seqs), best = 1e30;
    for (int r = -1; r < reps && !rc; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        rc = btrm_llama_forward(hp, &e.model->w, &e.ws, ids, lens, seqs, out, NULL);
        double t = now() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (r >= 0 && t < best)
            best = t;
    }
    const int precision = e.opts.precision;
    double peak = do_sgemm ? gemm_gflops(precision, n, hp->hidden_dim, hp->dim, reps,
                                         MPI_COMM_WORLD)
                           : 0;
    const char *prec_note = precision == BTRM_PREC_BF16 ? ", bf16" : "";
    if (rank == 0) {
        double gf = size * flops / best * 1e-9;
        if (markdown) {
            /* | model | weights | ranks x threads | tokens per rank | s | tokens/s |
             * GFLOP/s | per rank | sgemm per rank | % of sgemm | */
            printf("| %s | %s%s%s | %d x %d | %d x %d | %.3f | %.0f | %.1f | %.1f |",
                   e.model->name, e.model->weight_types,
                   e.opts.dequantize ? " (dequantized)" : "", prec_note, size, threads, seqs,
                   seq, best, size * n / best, gf, gf / size);
            if (do_sgemm)
                printf(" %.1f | %.0f%% |\n", peak, 100.0 * gf / size / peak);
            else
                printf(" - | - |\n");
        } else {
            printf("%s (%s%s%s): dim %d, %d layers, ffn %d; %d rank(s) x %d thread(s), %d x %d "
                   "tokens per rank: best of %d %.3f s, %.0f tokens/s, %.1f GFLOP/s (%.1f per "
                   "rank, %s clock); load %.2f s\n",
                   e.model->name, e.model->weight_types,
                   e.opts.dequantize ? ", dequantized" : "", prec_note,
                   hp->dim, hp->n_layers, hp->hidden_dim, size, threads, seqs, seq, reps, best,
                   size * n / best, gf, gf / size, use_cpu_clock ? "cpu" : "wall", t_load);
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            printf("  weights: %.0f MiB mapped from the file, %.0f MiB owned (converted copies); "
                   "peak resident set of rank 0 %.0f MiB\n", e.model->mapped_bytes / 1048576.0,
                   e.model->owned_bytes / 1048576.0, ru.ru_maxrss / 1024.0);
        }
        if (do_sgemm && !markdown)
            printf("  %s GEMM (%s) [%d, %d] x [%d, %d]^T on every rank at once: %.1f GFLOP/s per "
                   "rank; prefill at %.0f%% of it\n", btrm_precision_name(precision),
                   btrm_gemm_library(), n, hp->dim, hp->hidden_dim, hp->dim, peak,
                   100.0 * gf / size / peak);
    }
    if (rc)
        fprintf(stderr, "llama-bench: rank %d: %s\n", rank, btrm_error_msg());
    free(ids), free(lens), free(out);
    btrm_llama_embedder_close(&e);
    MPI_Finalize();
    return rc ? 1 : 0;
}
