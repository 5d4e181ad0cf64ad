/* fuzz-sweep.c: a sweep file through btrm_sweep_load (grid and zip
 * expansion, every run's config resolved and validated; nothing written).
 * Two base configs sit next to it (base.yaml, other.yaml) so that grids over
 * base: resolve. */
#include "fuzz.h"

#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char base_yaml[] =
    "data: {train: train.h5, eval: [valid.h5]}\n"
    "model: {head: mlp, hidden: [8]}\n"
    "train: {global_batch: 4, steps: 2}\n";
static const char other_yaml[] =
    "base: base.yaml\n"
    "loss: {type: normbt}\n"
    "optim: {lr: 3e-4}\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char path[512];
    fuzz_quiet();
    fuzz_tmp_file(path, sizeof path, "base.yaml", base_yaml, strlen(base_yaml));
    fuzz_tmp_file(path, sizeof path, "other.yaml", other_yaml, strlen(other_yaml));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512], out_dir[512];
    btrm_sweep sw;
    fuzz_tmp_file(path, sizeof path, "sweep.yaml", data, size);
    snprintf(out_dir, sizeof out_dir, "%s/out", fuzz_tmp_dir());
    if (btrm_sweep_load(&sw, path, out_dir) == 0) {
        for (int i = 0; i < sw.n_runs; i++)
            if (!sw.runs[i].config_text || !sw.runs[i].overrides)
                fuzz_fail("run %d of a loaded sweep has no config text", i);
        char *ranges = btrm_sweep_index_ranges(sw.n_runs, NULL);
        free(ranges);
    }
    btrm_sweep_free(&sw);
    return 0;
}
