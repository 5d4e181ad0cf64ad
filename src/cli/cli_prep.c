/* cli_prep.c: `btrm prep IN... -o OUT.h5 [options]`. Serial: under mpirun,
 * rank 0 does the work and the other ranks wait for the agreed outcome. */
#include "cli.h"
#include "comm.h"
#include "error.h"
#include "log.h"
#include "prep.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: btrm prep IN... -o OUT.h5 [options]\n\n"
            "Reads preference pairs from JSONL files or JSON arrays (plain or gzip) and\n"
            "writes a pair store with /texts (each distinct prompt+response rendered with\n"
            "the chat template, stored once) and /pairs (no /features: run 'btrm embed').\n"
            "Record shapes, detected per record (docs/data-prep.md):\n"
            "  hh        {\"chosen\": TRANSCRIPT, \"rejected\": TRANSCRIPT}; the prompt is the\n"
            "            shared prefix up to the last common \"\\n\\nAssistant:\" (HH-RLHF)\n"
            "  prompt    {\"prompt\": S, \"chosen\": S, \"rejected\": S} (RewardBench, TRL)\n"
            "  messages  {\"chosen\": [{\"role\",\"content\"}...], \"rejected\": [...]}, optional\n"
            "            \"prompt\" (string or messages) (UltraFeedback, Skywork)\n"
            "Optional fields: id, subset, category, margin or score_chosen/score_rejected.\n\n"
            "Options:\n"
            "  -o, --output OUT.h5     the pair store to write (atomically)\n"
            "  --format F              auto (default), hh, prompt or messages\n"
            "  --template FILE.yaml    chat template: role: \"...{content}...\" per role\n"
            "                          (default <|system|>/<|user|>/<|assistant|>, each\n"
            "                          \"<|role|>\\n{content}\\n\")\n"
            "  --category-map FILE     YAML mapping subset -> category (e.g.\n"
            "                          configs/categories/rewardbench.yaml)\n"
            "  --split F               train fraction in (0,1); needs --valid-out\n"
            "  --valid-out VALID.h5    write the held-out pairs here\n"
            "  --split-by prompt|id    hash the rendered prompt (default: no prompt on both\n"
            "                          sides) or the pair id\n"
            "  --strict                fail (exit 1) at the first bad record\n"
            "  -q, --quiet             warnings and errors only;  -v, --verbose  more\n"
            "  -h, --help              this help\n\n"
            "Bad records (not JSON, invalid UTF-8, wrong types, missing fields, unknown\n"
            "roles, empty or identical responses, truncated gzip) are skipped and counted\n"
            "by reason. Exit codes: 0 ok, 1 no usable pair / --strict failure / I/O error,\n"
            "2 usage error.\n");
}

int btrm_prep_main(int argc, char **argv, MPI_Comm world)
{
    const char **inputs = NULL;
    const char *out_path = NULL;
    int n_inputs = 0, verbosity = BTRM_LOG_INFO, code = 0, have_split = 0;
    btrm_prep_opts opts = { .format = BTRM_PREP_AUTO, .split_by = BTRM_PREP_SPLIT_PROMPT };
    inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) {
        fprintf(stderr, "btrm prep: out of memory\n");
        return BTRM_EXIT_FAILURE;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has_value) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--format") && has_value) {
            const char *f = argv[++i];
            if (!strcmp(f, "auto"))
                opts.format = BTRM_PREP_AUTO;
            else if (!strcmp(f, "hh"))
                opts.format = BTRM_PREP_HH;
            else if (!strcmp(f, "prompt"))
                opts.format = BTRM_PREP_PROMPT;
            else if (!strcmp(f, "messages"))
                opts.format = BTRM_PREP_MESSAGES;
            else {
                code = btrm_cli_usage_error("prep", "--format must be auto, hh, prompt or "
                                            "messages (got '%s')", f);
                goto out;
            }
        } else if (!strcmp(a, "--template") && has_value) {
            opts.template_path = argv[++i];
        } else if (!strcmp(a, "--category-map") && has_value) {
            opts.category_map_path = argv[++i];
        } else if (!strcmp(a, "--split") && has_value) {
            if (btrm_cli_parse_double(argv[++i], &opts.split) || !(opts.split > 0.0) ||
                !(opts.split < 1.0)) {
                code = btrm_cli_usage_error("prep", "--split must be a fraction in (0, 1) "
                                            "(got '%s')", argv[i]);
                goto out;
            }
            have_split = 1;
        } else if (!strcmp(a, "--valid-out") && has_value) {
            opts.valid_path = argv[++i];
        } else if (!strcmp(a, "--split-by") && has_value) {
            const char *by = argv[++i];
            if (!strcmp(by, "prompt"))
                opts.split_by = BTRM_PREP_SPLIT_PROMPT;
            else if (!strcmp(by, "id"))
                opts.split_by = BTRM_PREP_SPLIT_ID;
            else {
                code = btrm_cli_usage_error("prep", "--split-by must be prompt or id (got "
                                            "'%s')", by);
                goto out;
            }
        } else if (!strcmp(a, "--strict")) {
            opts.strict = 1;
        } else if (btrm_cli_verbosity(a, &verbosity)) {
        } else if (a[0] == '-' && a[1] != '\0') {
            code = btrm_cli_usage_error("prep", "unknown or incomplete option '%s'", a);
            goto out;
        } else {
            inputs[n_inputs++] = a;
        }
    }
    if (n_inputs == 0) {
        code = btrm_cli_usage_error("prep", "no input files");
        goto out;
    }
    if (!out_path) {
        code = btrm_cli_usage_error("prep", "missing -o OUT.h5");
        goto out;
    }
    if (have_split != (opts.valid_path != NULL)) {
        code = btrm_cli_usage_error("prep", "--split and --valid-out go together");
        goto out;
    }
    if (opts.valid_path && !strcmp(opts.valid_path, out_path)) {
        code = btrm_cli_usage_error("prep", "--valid-out must differ from -o");
        goto out;
    }

    /* Serial work; under MPI only rank 0 reads and writes. */
    btrm_comm comm;
    int rank = 0, rc = 0;
    if (world != MPI_COMM_NULL) {
        btrm_cli_comm_init(&comm, world, verbosity);
        rank = comm.rank;
    } else {
        btrm_log_init(0, verbosity);
    }
    if (rank == 0)
        rc = btrm_prep_run(inputs, n_inputs, out_path, &opts);
    if (world != MPI_COMM_NULL)
        rc = btrm_comm_agree(&comm, rc);
    code = btrm_cli_exit(world != MPI_COMM_NULL ? &comm : NULL, rc);
out:
    free(inputs);
    return code;
}
