/* fuzz-report.c: a run directory through btrm_report_collect and
 * btrm_report_write (markdown and CSV): summary.json (jansson), config.yaml
 * and eval.jsonl. Input: summary.json, optionally followed by FUZZ_SEP and
 * config.yaml, and by FUZZ_SEP and eval.jsonl. A second, fixed run directory
 * sits beside it so that the tables have two rows to group. */
#include "fuzz.h"

#include "error.h"
#include "report.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char runs_dir[512], run_dir[600];
static FILE *devnull;

static const char fixed_summary[] =
    "{\"status\": \"ok\", \"run_name\": \"fixed\", \"data\": [{\"role\": \"train\", "
    "\"path\": \"/nonexistent/train.h5\"}], \"final_eval\": [{\"file\": \"valid.h5\", "
    "\"accuracy\": 0.75, \"by_category\": {\"chat\": {\"accuracy\": 0.5}}}]}\n";
static const char fixed_config[] = "run: {name: fixed, seed: 2}\nloss: {type: normbt}\n";

static void write_file(const char *dir, const char *name, const void *data, size_t size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        fuzz_fail("cannot write %s", path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    char fixed[600];
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", fuzz_tmp_dir());
    snprintf(run_dir, sizeof run_dir, "%s/fuzzed", runs_dir);
    snprintf(fixed, sizeof fixed, "%s/fixed", runs_dir);
    if (mkdir(runs_dir, 0700) || mkdir(run_dir, 0700) || mkdir(fixed, 0700))
        fuzz_fail("cannot make the run directories under %s", runs_dir);
    write_file(fixed, "summary.json", fixed_summary, strlen(fixed_summary));
    write_file(fixed, "config.yaml", fixed_config, strlen(fixed_config));
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        fuzz_fail("cannot open /dev/null");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[3];
    size_t len[3];
    static const char *const names[3] = { "summary.json", "config.yaml", "eval.jsonl" };
    int n = fuzz_split(data, size, part, len, 3);
    for (int i = 0; i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", run_dir, names[i]);
        if (i < n)
            write_file(run_dir, names[i], part[i], len[i]);
        else
            remove(path);
    }
    btrm_report rep;
    const char *dirs[1] = { runs_dir };
    if (btrm_report_collect(&rep, dirs, 1, 0) == 0) {
        if (btrm_report_write(&rep, devnull, BTRM_REPORT_MD) != 0 ||
            btrm_report_write(&rep, devnull, BTRM_REPORT_CSV) != 0)
            fuzz_fail("btrm_report_write: %s", btrm_error_msg());
        btrm_report_free(&rep);
    }
    return 0;
}
