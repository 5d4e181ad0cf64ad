/* cli_train.c: `btrm train CONFIG.yaml [options]`. */
#include "cli.h"
#include "comm.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "train.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mpirun -np P btrm train CONFIG.yaml [options]\n\n"
            "Trains a reward head on data.train with loss.type (bt or normbt), data-parallel\n"
            "over the MPI ranks; writes config.yaml, metrics.jsonl, eval.jsonl, final.h5 and\n"
            "summary.json to run.out_dir (default runs/<run.name>), and checkpoints every\n"
            "checkpoint.every steps. SIGUSR1 or SIGTERM: checkpoint at the next step and\n"
            "exit with code 75 (checkpointed, please requeue).\n\n"
            "Options:\n"
            "  --set KEY=VALUE   override a config key (repeatable), e.g. --set optim.lr=3e-4\n"
            "  --init MODEL.h5   start from the weights of a model file (same shape)\n"
            "  --resume auto     continue from the newest valid checkpoint of the run, or\n"
            "                    start from scratch when there is none (the same command\n"
            "                    line works for the first run and every restart)\n"
            "  --resume PATH     continue from that checkpoint file\n"
            "  -v, --verbose     more log output;  -q, --quiet  warnings and errors only\n"
            "  -h, --help        this help\n\n"
            "Keys are documented in docs/config.md. Exit codes: 0 ok, 1 runtime failure,\n"
            "2 usage or config error, 75 checkpointed, please requeue.\n");
}

int btrm_train_main(int argc, char **argv, MPI_Comm world)
{
    const char *config_path = NULL, *init_model = NULL, *resume = NULL;
    btrm_cli_sets sets = { 0 };
    int verbosity = BTRM_LOG_INFO, code = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            btrm_cli_sets_add(&sets, argv[++i]);
        } else if (!strncmp(a, "--set=", 6)) {
            btrm_cli_sets_add(&sets, a + 6);
        } else if (!strcmp(a, "--resume") && i + 1 < argc) {
            resume = argv[++i];
        } else if (!strcmp(a, "--init") && i + 1 < argc) {
            init_model = argv[++i];
        } else if (btrm_cli_verbosity(a, &verbosity)) {
        } else if (a[0] == '-') {
            code = btrm_cli_usage_error("train", "unknown or incomplete option '%s'", a);
            goto out;
        } else if (!config_path) {
            config_path = a;
        } else {
            code = btrm_cli_usage_error("train", "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!config_path) {
        code = btrm_cli_usage_error("train", "missing CONFIG.yaml");
        goto out;
    }

    btrm_comm comm;
    btrm_cli_comm_init(&comm, world, verbosity);
    btrm_config *cfg = NULL;
    char *text = NULL;
    int rc = btrm_cli_load_config(config_path, &sets, &cfg);
    if (!rc)
        rc = btrm_config_validate(cfg);
    if (!rc)
        rc = btrm_config_emit_string(cfg, &text);
    rc = btrm_comm_agree(&comm, rc);
    if (!rc) {
        btrm_train_opts opts = { .init_model = init_model, .config_text = text,
                                 .resume = resume };
        rc = btrm_train_run(cfg, &opts, &comm);
    }
    code = btrm_cli_exit(&comm, rc);
    free(text);
    free(cfg);
out:
    btrm_cli_sets_free(&sets);
    return code;
}
