/* fuzz-config.c: the config loader. The input is a config file, optionally
 * followed by FUZZ_SEP and --set assignments, one per line. It goes through
 * btrm_config_load (YAML, base: chains relative to the file, the overrides),
 * btrm_config_validate, and the properties config.h promises:
 *  - btrm_config_set leaves the config unchanged when it refuses a value;
 *  - a config that loads emits YAML that loads back memcmp-equal. */
#include "fuzz.h"

#include "config.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SETS 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static void round_trip(const btrm_config *cfg)
{
    char path[512];
    char *text = NULL;
    btrm_config back;
    if (btrm_config_emit_string(cfg, &text) != 0)
        fuzz_fail("btrm_config_emit_string: %s", btrm_error_msg());
    fuzz_tmp_file(path, sizeof path, "emitted.yaml", text, strlen(text));
    if (btrm_config_load(&back, path, NULL, 0) != 0)
        fuzz_fail("the emitted config does not load back: %s\n%s", btrm_error_msg(), text);
    if (memcmp(cfg, &back, sizeof back) != 0)
        fuzz_fail("the emitted config loads back different:\n%s", text);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[2];
    size_t len[2];
    char path[512];
    char *sets_text = NULL, *sets[MAX_SETS];
    int n_sets = 0;
    btrm_config cfg, before;

    int n_parts = fuzz_split(data, size, part, len, 2);
    fuzz_tmp_file(path, sizeof path, "config.yaml", part[0], len[0]);
    if (n_parts == 2) {
        sets_text = fuzz_strndup(part[1], len[1]);
        for (char *line = strtok(sets_text, "\n"); line && n_sets < MAX_SETS;
             line = strtok(NULL, "\n"))
            sets[n_sets++] = line;
    }

    /* each override alone, over the defaults */
    btrm_config_defaults(&cfg);
    for (int i = 0; i < n_sets; i++) {
        before = cfg;
        if (btrm_config_set(&cfg, sets[i]) != 0 && memcmp(&before, &cfg, sizeof cfg) != 0)
            fuzz_fail("btrm_config_set(\"%s\") refused the value but changed the config",
                      sets[i]);
    }

    /* the file, then the overrides */
    if (btrm_config_load(&cfg, path, (const char *const *)sets, n_sets) == 0) {
        (void)btrm_config_validate(&cfg);
        round_trip(&cfg);
    }
    free(sets_text);
    return 0;
}
