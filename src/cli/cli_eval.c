/* cli_eval.c: `btrm eval MODEL.h5 DATA.h5 [--json FILE] [--sections rewardbench]`. */
#include "cli.h"
#include "eval.h"
#include "log.h"

#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mpirun -np P btrm eval MODEL.h5 DATA.h5 [--json FILE] [--sections rewardbench]\n\n"
            "Evaluates a model file on a pair store, distributed over the ranks: pairwise\n"
            "accuracy (ties count 1/2), mean BT loss, mean reward margin, accuracy per\n"
            "category and subset, and accuracy and grad_share per quintile of the\n"
            "representation distance d = ||h_c - h_r||. Prints a table on stdout.\n\n"
            "Options:\n"
            "  --json FILE   also write the result as JSON (docs/format.md)\n"
            "  --sections rewardbench\n"
            "                RewardBench's section scores from its subset names: Chat, Chat\n"
            "                Hard, Safety (subset accuracies weighted by pair counts),\n"
            "                Reasoning (1/2 math-prm + 1/2 the hep-* subsets), overall\n"
            "                (their mean); other subsets are listed as ignored\n"
            "  -q, --quiet   no table, only errors\n"
            "  -h, --help    this help\n");
}

int btrm_eval_main(int argc, char **argv, MPI_Comm world)
{
    const char *model_path = NULL, *data_path = NULL, *json_path = NULL, *sections = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else if (!strcmp(a, "--sections") && i + 1 < argc) {
            sections = argv[++i];
            if (strcmp(sections, "rewardbench"))
                return btrm_cli_usage_error("eval", "--sections %s: the only sections are "
                                            "rewardbench", sections);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-') {
            return btrm_cli_usage_error("eval", "unknown or incomplete option '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else if (!data_path) {
            data_path = a;
        } else {
            return btrm_cli_usage_error("eval", "unexpected argument '%s'", a);
        }
    }
    if (!model_path || !data_path)
        return btrm_cli_usage_error("eval", "need MODEL.h5 and DATA.h5");

    btrm_comm comm;
    btrm_cli_comm_init(&comm, world, quiet ? BTRM_LOG_WARN : BTRM_LOG_INFO);
    return btrm_cli_exit(&comm, btrm_eval_command(model_path, data_path, json_path,
                                                  sections != NULL, quiet, &comm));
}
