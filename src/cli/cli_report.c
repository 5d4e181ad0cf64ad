/* cli_report.c: `btrm report DIR... [--format md|csv]`: one table of the
 * results of runs and sweeps. Serial: world is MPI_COMM_NULL. */
#include "cli.h"
#include "error.h"
#include "log.h"
#include "fileutil.h"
#include "report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: btrm report DIR... [--format md|csv] [-o FILE]\n\n"
            "Tabulates the runs found under each DIR (a run directory, a sweep directory\n"
            "with runs/<iiii>, or a directory holding those, up to two levels down): rows\n"
            "backbone x loss, columns the eval set's overall accuracy, each category's\n"
            "accuracy and their mean, as mean +- sample std over seeds with the best of\n"
            "each column marked; then NormBT - BT per backbone (paired by seed); then every\n"
            "run not in the table (failed, preempted, running, pending) with its error.\n"
            "The backbone is the 'backbone' attribute of the training store's /features\n"
            "(data paths are relative to the directory the runs ran in: run this from\n"
            "there); loss and seed come from each run's config.yaml.\n\n"
            "Options:\n"
            "  --format md|csv   markdown tables (default) or one CSV table (fractions,\n"
            "                    not percent; a 'table' column tells the row kinds apart)\n"
            "  --eval K          tabulate the K-th file of data.eval (default 1)\n"
            "  -o FILE           write to FILE (atomically) instead of stdout\n"
            "  -q, --quiet       no warnings\n"
            "  -h, --help        this help\n\n"
            "docs/sweep.md describes the tables. Exit codes: 0 ok (also when some runs\n"
            "failed: they are listed), 1 no run found or cannot write, 2 usage error.\n");
}

int btrm_report_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    const char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    const char *out_path = NULL;
    int n_dirs = 0, rc = 0, code = 0;
    long long eval_k = 1;
    enum btrm_report_format format = BTRM_REPORT_MD;
    btrm_report rep;
    char *text = NULL;
    size_t len = 0;
    memset(&rep, 0, sizeof rep);
    if (!dirs) {
        fprintf(stderr, "btrm: error: out of memory\n");
        return BTRM_EXIT_FAILURE;
    }
    btrm_log_init(0, BTRM_LOG_INFO);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if (!strcmp(a, "--format") && i + 1 < argc) {
            const char *f = argv[++i];
            if (!strcmp(f, "md") || !strcmp(f, "markdown")) {
                format = BTRM_REPORT_MD;
            } else if (!strcmp(f, "csv")) {
                format = BTRM_REPORT_CSV;
            } else {
                code = btrm_cli_usage_error("report", "--format: expected md or csv, got '%s'", f);
                goto out;
            }
        } else if (!strcmp(a, "--eval") && i + 1 < argc) {
            if (btrm_cli_parse_i64(argv[++i], 1, 16, &eval_k)) {
                code = btrm_cli_usage_error("report", "--eval: expected 1 to 16, got '%s'",
                                            argv[i]);
                goto out;
            }
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out_path = argv[++i];
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            btrm_log_init(0, BTRM_LOG_QUIET);
        } else if (a[0] == '-' && a[1]) {
            code = btrm_cli_usage_error("report", "unknown or incomplete option '%s'", a);
            goto out;
        } else {
            dirs[n_dirs++] = a;
        }
    }
    if (n_dirs == 0) {
        code = btrm_cli_usage_error("report", "missing DIR (a run or sweep directory)");
        goto out;
    }
    rc = btrm_report_collect(&rep, dirs, n_dirs, (int)eval_k - 1);
    if (!rc) {
        FILE *mem = open_memstream(&text, &len);
        if (!mem) {
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory writing the report");
        } else {
            rc = btrm_report_write(&rep, mem, format);
            if (fclose(mem) && !rc)
                rc = btrm_error_set(BTRM_ENOMEM, "out of memory writing the report");
        }
    }
    if (!rc && out_path)
        rc = btrm_write_atomic(out_path, text, len);
    else if (!rc && (fwrite(text, 1, len, stdout) != len || fflush(stdout)))
        rc = btrm_error_set(BTRM_EIO, "writing the report to stdout: %s", strerror(errno));
    if (rc) {
        btrm_log_error("%s", btrm_error_msg());
        code = rc == BTRM_EDATA ? BTRM_EXIT_FAILURE : btrm_error_exit_code(rc);
    }
out:
    free(text);
    btrm_report_free(&rep);
    free(dirs);
    return code;
}
