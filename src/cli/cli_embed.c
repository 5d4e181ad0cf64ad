/* cli_embed.c: `btrm embed IN.h5 -o OUT.h5 --backbone NAME[:ARGS] [options]`. */
#include "backbone.h"
#include "cli.h"
#include "dtype.h"
#include "comm.h"
#include "config.h"
#include "embed.h"
#include "error.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mpirun -np P btrm embed IN.h5 -o OUT.h5 --backbone NAME[:ARGS] [options]\n\n"
            "Computes /features [rows of /texts, D] for a pair store made by 'btrm prep'\n"
            "and writes the store with them to OUT.h5 (atomically; IN.h5 is not changed\n"
            "unless it is also OUT.h5). The ranks split the texts into contiguous blocks\n"
            "and write their rows collectively with MPI-IO; the file is the same for any\n"
            "number of ranks (LLM backbones: up to float rounding, about 5e-7 relative).\n\n"
            "Backbones:\n");
    for (int i = 0; btrm_backbones[i]; i++)
        fprintf(out, "  %-10s %s\n", btrm_backbones[i]->name, btrm_backbones[i]->summary);
    fprintf(out,
            "  The hash backbone is a lexical baseline (hashed word unigrams and bigrams),\n"
            "  not a language model; docs/data-prep.md defines it exactly. The LLM backbones\n"
            "  take options after the model file: ,pool=last|mean,max_tokens=N,bos=0|1,\n"
            "  max_batch_tokens=N,dequantize=0|1,threads=N (docs/backbones.md).\n\n"
            "Options:\n"
            "  -o, --output OUT.h5       the pair store to write\n"
            "  --backbone NAME[:ARGS]    the backbone (required)\n"
            "  --dim D                   feature dimension (hash: default %d)\n"
            "  --features-dtype f32|f16|bf16\n"
            "                            the type of /features: float32 (default), IEEE\n"
            "                            float16 or bfloat16 (docs/format.md)\n"
            "  --f16                     the same as --features-dtype f16\n"
            "  --batch N                 texts per rank per collective write (default:\n"
            "                            16 MiB of features, 1024 rows at D = 4096; 64\n"
            "                            for the LLM backbones)\n"
            "  --config FILE             embed.* keys (gguf, llama2c: pool, max_tokens, bos,\n"
            "                            max_batch_tokens, dequantize) and run.threads;\n"
            "                            options in the backbone spec win\n"
            "  --set key=value           override one config key (repeatable)\n"
            "  -q, --quiet               warnings and errors only;  -v, --verbose  more\n"
            "  -h, --help                this help\n\n"
            "Exit codes: 0 ok, 1 runtime or data error, 2 usage error.\n",
            BTRM_HASH_DIM_DEFAULT);
}

int btrm_embed_main(int argc, char **argv, MPI_Comm world)
{
    btrm_embed_opts opts = { 0 };
    int verbosity = BTRM_LOG_INFO, code = 0;
    const char *config_path = NULL;
    btrm_cli_sets sets = { 0 };
    for (int i = 1; i < argc && !code; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        long long v = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has_value) {
            opts.out_path = argv[++i];
        } else if (!strcmp(a, "--backbone") && has_value) {
            opts.backbone = argv[++i];
        } else if (!strcmp(a, "--dim") && has_value) {
            if (btrm_cli_parse_i64(argv[++i], 1, 1 << 24, &v))
                code = btrm_cli_usage_error("embed", "--dim must be an integer in [1, %d] "
                                            "(got '%s')", 1 << 24, argv[i]);
            opts.dim = (int)v;
        } else if (!strcmp(a, "--batch") && has_value) {
            if (btrm_cli_parse_i64(argv[++i], 1, 1 << 20, &v))
                code = btrm_cli_usage_error("embed", "--batch must be an integer in [1, %d] "
                                            "(got '%s')", 1 << 20, argv[i]);
            opts.batch = v;
        } else if (!strcmp(a, "--config") && has_value) {
            config_path = argv[++i];
        } else if (!strcmp(a, "--set") && has_value) {
            if (btrm_cli_sets_add(&sets, argv[++i]))
                code = btrm_cli_usage_error("embed", "%s", btrm_error_msg());
        } else if (!strcmp(a, "--f16")) {
            opts.features_dtype = BTRM_DTYPE_F16;
        } else if (!strcmp(a, "--features-dtype") && has_value) {
            opts.features_dtype = btrm_dtype_parse(argv[++i]);
            if (opts.features_dtype < 0)
                code = btrm_cli_usage_error("embed", "--features-dtype must be f32, f16 or "
                                            "bf16 (got '%s')", argv[i]);
        } else if (btrm_cli_verbosity(a, &verbosity)) {
        } else if (a[0] == '-') {
            code = btrm_cli_usage_error("embed", "unknown or incomplete option '%s'", a);
        } else if (!opts.in_path) {
            opts.in_path = a;
        } else {
            code = btrm_cli_usage_error("embed", "unexpected argument '%s'", a);
        }
    }
    if (code)
        goto out;
    if (!opts.in_path) {
        code = btrm_cli_usage_error("embed", "missing IN.h5");
        goto out;
    }
    if (!opts.out_path) {
        code = btrm_cli_usage_error("embed", "missing -o OUT.h5");
        goto out;
    }
    if (!opts.backbone) {
        char names[256];
        btrm_backbone_names(names, sizeof names);
        code = btrm_cli_usage_error("embed", "missing --backbone (one of: %s)", names);
        goto out;
    }

    btrm_comm comm;
    btrm_cli_comm_init(&comm, world, verbosity);
    /* The config's embed.* keys become the backbone's default options. */
    btrm_config *cfg = NULL;
    char *spec = malloc(2 * BTRM_PATH_MAX);
    int rc = spec ? btrm_cli_load_config(config_path, &sets, &cfg)
                  : btrm_error_set(BTRM_ENOMEM, "out of memory");
    if (!rc)
        rc = btrm_backbone_spec_with_config(opts.backbone, cfg, spec, 2 * BTRM_PATH_MAX);
    rc = btrm_comm_agree(&comm, rc);
    if (!rc) {
        opts.backbone = spec;
        rc = btrm_embed_run(&opts, &comm);
    }
    code = btrm_cli_exit(&comm, rc);
    free(spec);
    free(cfg);
out:
    btrm_cli_sets_free(&sets);
    return code;
}
