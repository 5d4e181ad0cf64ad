/* cli_config.c: `btrm config [CONFIG.yaml] [--set KEY=VALUE ...]`: prints the
 * fully resolved config. Runs without MPI (world is MPI_COMM_NULL). */
#include "cli.h"
#include "config.h"
#include "error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: btrm config [CONFIG.yaml] [--set KEY=VALUE ...]\n\n"
            "Prints the fully resolved config as YAML on stdout: every key of every section,\n"
            "after the base: chain of CONFIG.yaml and the --set overrides. The output loads\n"
            "back to the same config, so it can be saved and rerun. Without CONFIG.yaml,\n"
            "prints the defaults (with the overrides).\n\n"
            "Options:\n"
            "  --set KEY=VALUE   override a key after loading; repeatable, applied in order.\n"
            "                    VALUE is YAML, quoted as in a file:\n"
            "                      --set optim.lr=3e-4 --set model.hidden=[1024,256]\n"
            "                      --set run.name='\"my run\"' --set loss={type: normbt}\n"
            "  -h, --help        this help\n\n"
            "Keys, base: inheritance and path rules: docs/config.md.\n"
            "Exit codes: 0 ok; 1 cannot write the output; 2 usage or config error, with\n"
            "'btrm: error: FILE:LINE:COLUMN: ...' on stderr.\n");
}

int btrm_config_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    const char *path = NULL;
    btrm_cli_sets sets = { 0 };
    btrm_config *cfg = NULL;
    int rc = 0, code = 0, end_of_options = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (end_of_options || a[0] != '-' || !a[1]) {
            if (path) {
                code = btrm_cli_usage_error("config", "unexpected argument '%s'", a);
                goto out;
            }
            path = a;
        } else if (!strcmp(a, "--")) {
            end_of_options = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if (!strcmp(a, "--doc-markdown")) { /* hidden: docs/config.md's key table */
            btrm_config_doc_markdown(stdout);
            goto flush;
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            rc = btrm_cli_sets_add(&sets, argv[++i]);
        } else if (!strncmp(a, "--set=", 6)) {
            rc = btrm_cli_sets_add(&sets, a + 6);
        } else {
            code = btrm_cli_usage_error("config", "unknown or incomplete option '%s'", a);
            goto out;
        }
        if (rc)
            goto fail;
    }
    rc = BTRM_CALLOC(cfg, 1);
    if (!rc)
        rc = btrm_config_load(cfg, path, sets.items, sets.n);
    if (!rc)
        rc = btrm_config_emit(cfg, stdout);
    if (rc)
        goto fail;
flush:
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "btrm: error: writing the config to stdout: %s\n", strerror(errno));
        code = BTRM_EXIT_FAILURE;
    }
    goto out;
fail:
    fprintf(stderr, "btrm: error: %s\n", btrm_error_msg());
    code = btrm_error_exit_code(rc);
out:
    free(cfg);
    btrm_cli_sets_free(&sets);
    return code;
}
