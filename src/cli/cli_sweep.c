/* cli_sweep.c: `btrm sweep SWEEP.yaml -o DIR`: expands a sweep into one
 * resolved config per run and prints the sbatch line that runs them as a
 * Slurm array (slurm/sweep.sbatch). Serial: world is MPI_COMM_NULL. */
#include "cli.h"
#include "error.h"
#include "log.h"
#include "sweep.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_RUNNING 8

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: btrm sweep SWEEP.yaml -o DIR [options]\n\n"
            "Expands a sweep (a base config and a grid of overrides) into one resolved,\n"
            "validated config per run: DIR/runs/<iiii>/config.yaml, with run.name\n"
            "<name>-<iiii> and run.out_dir DIR/runs/<iiii>, plus DIR/runs.tsv (index,\n"
            "name, overrides), DIR/sweep.yaml and DIR/sweep.json. A value that a run's\n"
            "config refuses fails the whole sweep before anything is written. Running it\n"
            "again on the same DIR is a no-op when the sweep resolves to the same runs, and\n"
            "is refused, saying what changed, when it does not.\n\n"
            "Prints on stdout the sbatch command that runs the unfinished runs as a Slurm\n"
            "array (task i = run i; slurm/sweep.sbatch), nothing when all are finished.\n\n"
            "Options:\n"
            "  -o, --out-dir DIR    the sweep directory (required)\n"
            "  --max-running K      array tasks running at once, sbatch --array=...%%K\n"
            "                       (default %d)\n"
            "  --dry-run            resolve and check every run, print runs.tsv on stdout,\n"
            "                       write nothing\n"
            "  -q, --quiet          warnings and errors only;  -v, --verbose  more\n"
            "  -h, --help           this help\n\n"
            "The sweep file format: docs/sweep.md. Exit codes: 0 ok, 1 cannot write,\n"
            "2 usage error, bad sweep or config value, or DIR holds another sweep.\n",
            DEFAULT_MAX_RUNNING);
}

/* text, single-quoted for a POSIX shell when it needs to be. */
static void shell_word(FILE *out, const char *text)
{
    if (text[0] && strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789_./:%@+=,-") == strlen(text)) {
        fputs(text, out);
        return;
    }
    fputc('\'', out);
    for (const char *p = text; *p; p++) {
        if (*p == '\'')
            fputs("'\\''", out);
        else
            fputc(*p, out);
    }
    fputc('\'', out);
}

/* slurm/sweep.sbatch of the tree this binary was built in, or of the
 * installation it belongs to (PREFIX/bin/btrm -> PREFIX/share/btrm/slurm;
 * BTRM_SLURM_DIR overrides), relative to the working directory when it lies
 * below it; "slurm/sweep.sbatch" when it cannot be found. */
static void find_script(char *out, size_t size)
{
    char exe[PATH_MAX], cwd[PATH_MAX], path[PATH_MAX + 64];
    const char *dir = getenv("BTRM_SLURM_DIR");
    snprintf(out, size, "slurm/sweep.sbatch");
    if (dir && dir[0]) {
        snprintf(out, size, "%s/sweep.sbatch", dir);
        return;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    for (int up = 0; up < 2; up++) { /* <tree>/src/btrm -> <tree> */
        char *slash = strrchr(exe, '/');
        if (!slash)
            return;
        *slash = '\0';
    }
    struct stat st;
    snprintf(path, sizeof path, "%s/slurm/sweep.sbatch", exe);
    if (stat(path, &st) != 0)
        snprintf(path, sizeof path, "%s/share/btrm/slurm/sweep.sbatch", exe);
    if (stat(path, &st) != 0)
        return;
    size_t len = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
    if (len && !strncmp(path, cwd, len) && path[len] == '/')
        snprintf(out, size, "%s", path + len + 1);
    else
        snprintf(out, size, "%s", path);
}

int btrm_sweep_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    const char *path = NULL, *out_dir = NULL;
    long long max_running = DEFAULT_MAX_RUNNING;
    int dry_run = 0, verbosity = BTRM_LOG_INFO, rc = 0;
    btrm_sweep sw;
    btrm_sweep_result result;
    memset(&sw, 0, sizeof sw);
    memset(&result, 0, sizeof result);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--out-dir")) && i + 1 < argc) {
            out_dir = argv[++i];
        } else if (!strncmp(a, "--out-dir=", 10)) {
            out_dir = a + 10;
        } else if (!strcmp(a, "--max-running") && i + 1 < argc) {
            if (btrm_cli_parse_i64(argv[++i], 1, 100000, &max_running))
                return btrm_cli_usage_error("sweep", "--max-running: expected a positive "
                                            "integer, got '%s'", argv[i]);
        } else if (!strcmp(a, "--dry-run")) {
            dry_run = 1;
        } else if (btrm_cli_verbosity(a, &verbosity)) {
        } else if (a[0] == '-' && a[1]) {
            return btrm_cli_usage_error("sweep", "unknown or incomplete option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            return btrm_cli_usage_error("sweep", "unexpected argument '%s'", a);
        }
    }
    if (!path)
        return btrm_cli_usage_error("sweep", "missing SWEEP.yaml");
    if (!out_dir)
        return btrm_cli_usage_error("sweep", "missing -o DIR (the sweep directory)");
    btrm_log_init(0, verbosity);

    rc = btrm_sweep_load(&sw, path, out_dir);
    if (rc)
        goto fail;
    if (dry_run) {
        printf("index\tname\toverrides\n");
        for (int r = 0; r < sw.n_runs; r++)
            printf("%d\t%s\t%s\n", r, sw.runs[r].name, sw.runs[r].overrides);
        btrm_log_info("sweep %s: %d runs resolved and valid (dry run: nothing written)", sw.name,
                      sw.n_runs);
        goto flush;
    }
    rc = btrm_sweep_write(&sw, &result);
    if (rc)
        goto fail;
    if (result.created)
        btrm_log_info("sweep %s: wrote %d runs to %s (runs.tsv, runs/<iiii>/config.yaml)",
                      sw.name, sw.n_runs, sw.out_dir);
    else
        btrm_log_info("sweep %s: %s already holds this sweep (%d runs, %d finished); nothing "
                      "rewritten%s", sw.name, sw.out_dir, sw.n_runs, result.n_finished,
                      result.n_restored ? " (missing run configs restored)" : "");
    if (result.n_finished == sw.n_runs) {
        btrm_log_info("all %d runs are finished: `btrm report %s` tabulates them", sw.n_runs,
                      sw.out_dir);
        goto flush;
    }
    char *ranges = btrm_sweep_index_ranges(sw.n_runs, result.finished);
    if (!ranges) {
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory");
        goto fail;
    }
    char script[PATH_MAX + 64], logs[BTRM_PATH_MAX + 32], job[BTRM_NAME_MAX + 16];
    find_script(script, sizeof script);
    snprintf(logs, sizeof logs, "--output=%s/logs/%%A_%%a.out", sw.out_dir);
    snprintf(job, sizeof job, "--job-name=%s", sw.name);
    btrm_log_info("submit the %d unfinished run%s as a Slurm array (add -n/-N/--time/-p "
                  "as your cluster needs; slurm/README.md):", sw.n_runs - result.n_finished,
                  sw.n_runs - result.n_finished == 1 ? "" : "s");
    printf("sbatch --array=%s%%%lld ", ranges, max_running);
    shell_word(stdout, job);
    fputc(' ', stdout);
    shell_word(stdout, logs);
    fputc(' ', stdout);
    shell_word(stdout, script);
    fputc(' ', stdout);
    shell_word(stdout, sw.out_dir);
    fputc('\n', stdout);
    free(ranges);
flush:
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "btrm: error: writing to stdout: %s\n", strerror(errno));
        rc = BTRM_EIO;
    }
    btrm_sweep_result_free(&result);
    btrm_sweep_free(&sw);
    return btrm_error_exit_code(rc);
fail:
    btrm_log_error("%s", btrm_error_msg());
    btrm_sweep_result_free(&result);
    btrm_sweep_free(&sw);
    return btrm_error_exit_code(rc);
}
