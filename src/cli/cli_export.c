/* cli_export.c: `btrm export MODEL.h5 -o DIR [--format safetensors]
 * [--with-backbone [--backbone SPEC]]` (run/export.h, docs/export.md). */
#include "cli.h"
#include "error.h"
#include "export.h"
#include "log.h"
#include "types.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: btrm export MODEL.h5 -o DIR [--format safetensors]\n"
            "                   [--with-backbone [--backbone gguf:MODEL.gguf]]\n\n"
            "Writes a trained model in Hugging Face's formats (docs/export.md):\n"
            "DIR/model.safetensors with a linear head as score.weight [1, D] float32 (its\n"
            "bias in __metadata__ as score.bias), an mlp head as score.fc0.weight,\n"
            "score.fc0.bias, ..., score.out.weight, score.out.bias. With --with-backbone\n"
            "(a GGUF Llama in F32, F16 or BF16, pool=last, and a linear head) also the\n"
            "model.* tensors and DIR/config.json of LlamaForSequenceClassification.\n"
            "A fine-tuned model (model.backbone): LoRA as PEFT's adapter_model.safetensors\n"
            "+ adapter_config.json, top_k as the trained blocks' model.* tensors, each with\n"
            "the head and a README.md naming the base model and its XXH3-128.\n\n"
            "Options:\n"
            "  -o, --output DIR       the folder to write (created)\n"
            "  --format safetensors   the format (the only one so far)\n"
            "  --with-backbone        also export the backbone's weights\n"
            "  --backbone SPEC        the backbone (default: the one the model records;\n"
            "                         refused when it makes other features)\n"
            "  --config FILE, --set key=value   embed.* keys (docs/config.md)\n"
            "  -q, --quiet            warnings and errors only;  -v, --verbose  more\n"
            "  -h, --help             this help\n\n"
            "Exit codes: 0 ok, 1 runtime or data error, 2 usage error.\n");
}

int btrm_export_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    btrm_export_opts o = { .format = "safetensors" };
    const char *spec = NULL, *config_path = NULL;
    btrm_cli_sets sets = { 0 };
    int verbosity = BTRM_LOG_INFO, code = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has_value) {
            o.out_dir = argv[++i];
        } else if (!strcmp(a, "--format") && has_value) {
            o.format = argv[++i];
        } else if (!strcmp(a, "--with-backbone")) {
            o.with_backbone = 1;
        } else if (!strcmp(a, "--backbone") && has_value) {
            spec = argv[++i];
        } else if (btrm_cli_config_option(argc, argv, &i, &config_path, &sets, &verbosity)) {
        } else if (a[0] == '-' && a[1]) {
            code = btrm_cli_usage_error("export", "unknown or incomplete option '%s'", a);
            goto out;
        } else if (!o.model_path) {
            o.model_path = a;
        } else {
            code = btrm_cli_usage_error("export", "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!o.model_path || !o.out_dir) {
        code = btrm_cli_usage_error("export", "want MODEL.h5 -o DIR");
        goto out;
    }
    btrm_log_init(0, verbosity);
    btrm_config *cfg = NULL;
    int rc = btrm_cli_load_config(config_path, &sets, &cfg);
    o.backbone = spec;
    o.cfg = cfg;
    if (!rc)
        rc = btrm_export_run(&o);
    code = btrm_cli_exit(NULL, rc);
    free(cfg);
out:
    btrm_cli_sets_free(&sets);
    return code;
}
