/* cli_analyze.c: `btrm analyze DATA.h5 [--model MODEL.h5] [--json FILE] [--top-k K]`. */
#include "analyze.h"
#include "cli.h"
#include "comm.h"
#include "error.h"
#include "fileutil.h"
#include "gemm.h"
#include "log.h"
#include "modelfile.h"
#include "pairs.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mpirun -np P btrm analyze DATA.h5 [options]\n\n"
            "Makes the distance bias of a pair store visible, before or after training,\n"
            "distributed over the ranks. With h the features (or, with --model, the\n"
            "model's representation: the input of its `out` layer) and z = h_c - h_r:\n"
            "  - the distribution of d = ||z|| (quantiles 0/5/25/50/75/95/100 %%, mean),\n"
            "    overall and per category and subset;\n"
            "  - the share of the BT gradient norm carried by each d-quintile, at the\n"
            "    model or at w = 0 (where sigma(-dr) = 1/2 for every pair), and NormBT's;\n"
            "  - the principal components of z (ScaLAPACK pdsyevd on C = Z^T Z / N): top-k\n"
            "    eigenvalues, explained variance, each category's mean |z.v| on them.\n"
            "Prints a report on stdout (docs/newton.md).\n\n"
            "Options:\n"
            "  --model MODEL.h5  use the model's representation and rewards\n"
            "  --json FILE       also write the result as JSON (tools/plot.py analyze FILE)\n"
            "  --top-k K         principal components reported (default %d)\n"
            "  --block NB        block size of the block-cyclic layout (default: 64, less\n"
            "                    for a small dimension)\n"
            "  --threads T       BLAS threads per rank (default 1)\n"
            "  -q, --quiet       no report, only errors;  -v, --verbose  more log output\n"
            "  -h, --help        this help\n\n"
            "Exit codes: 0 ok, 1 runtime failure, 2 usage error.\n",
            BTRM_ANALYZE_TOP_K);
}

int btrm_analyze_main(int argc, char **argv, MPI_Comm world)
{
    const char *data_path = NULL, *model_path = NULL, *json_path = NULL;
    int quiet = 0, verbosity = BTRM_LOG_INFO;
    long long top_k = BTRM_ANALYZE_TOP_K, block = 0, threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--model") && i + 1 < argc) {
            model_path = argv[++i];
        } else if (!strcmp(a, "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else if (!strcmp(a, "--top-k") && i + 1 < argc) {
            if (btrm_cli_parse_i64(argv[++i], 1, 1000000, &top_k))
                return btrm_cli_usage_error("analyze", "--top-k: expected a positive integer, "
                                            "got '%s'", argv[i]);
        } else if (!strcmp(a, "--block") && i + 1 < argc) {
            if (btrm_cli_parse_i64(argv[++i], 1, 4096, &block))
                return btrm_cli_usage_error("analyze", "--block: expected an integer in "
                                            "[1, 4096], got '%s'", argv[i]);
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (btrm_cli_parse_i64(argv[++i], 1, 1024, &threads))
                return btrm_cli_usage_error("analyze", "--threads: expected a positive "
                                            "integer, got '%s'", argv[i]);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
            verbosity = BTRM_LOG_WARN;
        } else if (btrm_cli_verbosity(a, &verbosity)) {
        } else if (a[0] == '-') {
            return btrm_cli_usage_error("analyze", "unknown or incomplete option '%s'", a);
        } else if (!data_path) {
            data_path = a;
        } else {
            return btrm_cli_usage_error("analyze", "unexpected argument '%s'", a);
        }
    }
    if (!data_path)
        return btrm_cli_usage_error("analyze", "need DATA.h5");
    btrm_gemm_set_threads((int)threads);

    btrm_comm comm;
    btrm_cli_comm_init(&comm, world, verbosity);
    btrm_analyze_opts opts = { .top_k = (int)top_k, .block = (int)block };
    return btrm_cli_exit(&comm, btrm_analyze_command(model_path, data_path, json_path, quiet,
                                                     &opts, &comm));
}
