/* cli_score.c: `btrm score MODEL.h5 [--backbone SPEC] TEXTS.jsonl`: the reward
 * of each text, from a backbone's features and a trained head. One process,
 * no MPI. Reads JSON lines {"text": ...} (other keys ignored, "id" copied to
 * the output) and writes one JSON line {"reward": r} (or {"id": ...,
 * "reward": r}) per input line, in order. */
#include "backbone.h"
#include "cli.h"
#include "error.h"
#include "log.h"
#include "score.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    char names[256];
    btrm_backbone_names(names, sizeof names);
    fprintf(out,
            "Usage: btrm score MODEL.h5 [--backbone SPEC] TEXTS.jsonl [options]\n\n"
            "Prints the reward of each text of TEXTS.jsonl (one {\"text\": ...} object per\n"
            "line, blank lines skipped; \"-\" reads stdin) as one JSON line {\"reward\": r}\n"
            "per text, in order ({\"id\": ..., \"reward\": r} when the input has an \"id\").\n"
            "The features come from the backbone the model was trained on, as MODEL.h5\n"
            "(btrm train's final.h5) records it with its settings (backbones: %s;\n"
            "docs/backbones.md); a backbone that makes features another way is refused.\n"
            "A model trained with model.backbone (docs/training.md) carries its backbone\n"
            "(its base file by path and hash, and the trained adapters or blocks): then\n"
            "no --backbone is given.\n\n"
            "Options:\n"
            "  --backbone SPEC        NAME[:ARGS], e.g. gguf:MODEL.gguf (default: the model's;\n"
            "                         settings it does not write are the model's)\n"
            "  -o, --output FILE      write the JSON lines to FILE instead of stdout\n"
            "  --batch N              texts per backbone call (default %d)\n"
            "  --invariant            each text through the backbone on its own: a reward\n"
            "                         does not depend on --batch (LLM backbones are slower)\n"
            "  --config FILE, --set key=value   embed.* keys and run.threads (docs/config.md)\n"
            "  -q, --quiet            warnings and errors only;  -v, --verbose  more\n"
            "  -h, --help             this help\n\n"
            "Exit codes: 0 ok, 1 runtime or data error, 2 usage error.\n",
            names, BTRM_SCORE_BATCH_DEFAULT);
}

int btrm_score_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    const char *model_path = NULL, *texts_path = NULL, *spec = NULL, *out_path = NULL;
    const char *config_path = NULL;
    btrm_cli_sets sets = { 0 };
    int verbosity = BTRM_LOG_INFO, code = 0, invariant = 0;
    long long batch = BTRM_SCORE_BATCH_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if (!strcmp(a, "--backbone") && has_value) {
            spec = argv[++i];
        } else if (!strcmp(a, "--invariant")) {
            invariant = 1;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has_value) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--batch") && has_value) {
            if (btrm_cli_parse_i64(argv[++i], 1, 1 << 16, &batch)) {
                code = btrm_cli_usage_error("score", "--batch must be an integer in [1, %d] "
                                            "(got '%s')", 1 << 16, argv[i]);
                goto out;
            }
        } else if (btrm_cli_config_option(argc, argv, &i, &config_path, &sets, &verbosity)) {
        } else if (a[0] == '-' && a[1]) {
            code = btrm_cli_usage_error("score", "unknown or incomplete option '%s'", a);
            goto out;
        } else if (!model_path) {
            model_path = a;
        } else if (!texts_path) {
            texts_path = a;
        } else {
            code = btrm_cli_usage_error("score", "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!model_path || !texts_path) {
        code = btrm_cli_usage_error("score", "want MODEL.h5 [--backbone SPEC] TEXTS.jsonl");
        goto out;
    }
    btrm_log_init(0, verbosity);
    btrm_config *cfg = NULL;
    int rc = btrm_cli_load_config(config_path, &sets, &cfg);
    btrm_score_opts opts = { .model_path = model_path, .backbone = spec,
                             .texts_path = texts_path, .out_path = out_path,
                             .batch = (int)batch, .invariant = invariant };
    if (!rc)
        rc = btrm_score_run(&opts, cfg);
    code = btrm_cli_exit(NULL, rc);
    free(cfg);
out:
    btrm_cli_sets_free(&sets);
    return code;
}
