/* cli_generate.c: `btrm generate --backbone SPEC PROMPT [-n STEPS]`, greedy
 * generation with a gguf or llama2c backbone's model. A debug tool: it checks
 * the forward pass against known generations (every step recomputes the
 * prefill of the whole sequence, so it also tests the batched prefill at every
 * length). `--hidden IDS.txt` prints the final hidden states of given token
 * sequences instead, for comparisons with a reference implementation. One
 * process, no MPI. */
#include "cli.h"
#include "error.h"
#include "generate.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: btrm generate --backbone gguf:MODEL.gguf|llama2c:MODEL.bin \"PROMPT\" [options]\n"
            "       btrm generate --backbone SPEC --hidden IDS.txt\n\n"
            "Greedy generation (argmax at every step) from PROMPT: BOS, the prompt's\n"
            "tokens, then the most likely next token until STEPS positions are filled\n"
            "(llama2.c's -n) or the model emits BOS or EOS. Prints the text, or with\n"
            "--ids the token ids of positions 0..STEPS on one line.\n\n"
            "With --hidden, reads token sequences (one per line, ids separated by\n"
            "spaces, used as given: no BOS is added, no truncation) and prints one JSON\n"
            "line per sequence: {\"n\": tokens, \"last\": [dim floats], \"mean\": [...]},\n"
            "the final-RMSNorm hidden state of the last token and the mean over tokens.\n\n"
            "With --tokenize, prints the token ids of PROMPT as embed feeds them to the\n"
            "model (BOS per embed.bos, left truncation to embed.max_tokens).\n\n"
            "Options:\n"
            "  --backbone SPEC      gguf:MODEL.gguf[,key=value...] or\n"
            "                       llama2c:MODEL.bin[,tokenizer=TOK.bin,...] (docs/backbones.md)\n"
            "  -n, --steps N        positions to fill, prompt included (default 64)\n"
            "  --ids                print token ids instead of text\n"
            "  --hidden IDS.txt     print hidden states of the sequences in IDS.txt\n"
            "  --tokenize           print the ids embed would feed for PROMPT\n"
            "  --config FILE, --set key=value   embed.* keys and run.threads (docs/config.md)\n"
            "  -q, --quiet          warnings and errors only;  -v, --verbose  more\n"
            "  -h, --help           this help\n\n"
            "Exit codes: 0 ok, 1 runtime or data error, 2 usage error.\n");
}

int btrm_generate_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    const char *spec = NULL, *prompt = NULL, *config_path = NULL, *hidden_path = NULL;
    btrm_cli_sets sets = { 0 };
    int verbosity = BTRM_LOG_INFO, show_ids = 0, tokenize = 0, code = 0;
    long long steps = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if (!strcmp(a, "--backbone") && has_value) {
            spec = argv[++i];
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--steps")) && has_value) {
            if (btrm_cli_parse_i64(argv[++i], 1, 1 << 20, &steps)) {
                code = btrm_cli_usage_error("generate", "-n must be an integer in [1, %d] "
                                            "(got '%s')", 1 << 20, argv[i]);
                goto out;
            }
        } else if (!strcmp(a, "--ids")) {
            show_ids = 1;
        } else if (!strcmp(a, "--tokenize")) {
            tokenize = 1;
        } else if (!strcmp(a, "--hidden") && has_value) {
            hidden_path = argv[++i];
        } else if (btrm_cli_config_option(argc, argv, &i, &config_path, &sets, &verbosity)) {
        } else if (a[0] == '-') {
            code = btrm_cli_usage_error("generate", "unknown or incomplete option '%s'", a);
            goto out;
        } else if (!prompt) {
            prompt = a;
        } else {
            code = btrm_cli_usage_error("generate", "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!spec) {
        code = btrm_cli_usage_error("generate", "missing --backbone gguf:MODEL.gguf or "
                                    "llama2c:MODEL.bin");
        goto out;
    }
    if (!prompt && !hidden_path) {
        code = btrm_cli_usage_error("generate", "missing PROMPT (or --hidden IDS.txt)");
        goto out;
    }
    btrm_log_init(0, verbosity);
    btrm_config *cfg = NULL;
    int rc = btrm_cli_load_config(config_path, &sets, &cfg);
    btrm_generate_opts opts = { .backbone = spec, .prompt = prompt, .hidden_path = hidden_path,
                                .steps = (int)steps, .show_ids = show_ids,
                                .tokenize = tokenize };
    if (!rc)
        rc = btrm_generate_run(&opts, cfg);
    code = btrm_cli_exit(NULL, rc);
    free(cfg);
out:
    btrm_cli_sets_free(&sets);
    return code;
}
