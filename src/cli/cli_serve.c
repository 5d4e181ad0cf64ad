/* cli_serve.c: `btrm serve MODEL.h5 [--backbone SPEC] [options]`: the HTTP
 * reward server (run/serve.h, docs/serve.md). One process, no MPI. */
#include "cli.h"
#include "error.h"
#include "log.h"
#include "serve.h"
#include "types.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    btrm_serve_opts d;
    btrm_serve_opts_defaults(&d);
    fprintf(out,
            "Usage: btrm serve MODEL.h5 [--backbone SPEC] [options]\n\n"
            "Serves the rewards of a trained model over HTTP (docs/serve.md) until SIGTERM or\n"
            "SIGINT, then answers the requests it has queued and exits within 5 s.\n\n"
            "  POST /score, POST /get_reward  body {\"texts\": [...]},\n"
            "      {\"pairs\": [{\"prompt\": ..., \"response\": ...}, ...]} (rendered with the\n"
            "      chat template of btrm prep), or OpenRLHF's {\"query\": [...]} (its\n"
            "      \"prompts\" and \"labels\" are ignored); answer {\"rewards\": [...]}\n"
            "  GET /health  {\"status\": \"ok\"};  GET /info  model, backbone, hashes, limits\n\n"
            "Requests from many clients are batched into one backbone call; errors are\n"
            "{\"error\": message} with 400 (bad JSON, types, UTF-8), 404, 405, 408 (slow\n"
            "request), 413 (too large) or 503 (queue full, shutting down).\n\n"
            "Options:\n"
            "  --backbone SPEC        NAME[:ARGS] as for btrm score (default: the one the\n"
            "                         model records; settings not given are the model's;\n"
            "                         a fine-tuned model uses its own base and adapters)\n"
            "  --host ADDR            address to listen on (default %s; 0.0.0.0 for all)\n"
            "  --port N               TCP port (default %d; 0 = any free port)\n"
            "  --port-file FILE       write the port to FILE once listening\n"
            "  --template FILE.yaml   chat template for \"pairs\" (default: the one the\n"
            "                         model's texts were rendered with, else btrm prep's)\n"
            "  --io-threads N         I/O threads (default %d)\n"
            "  --queue N              requests waiting for the engine, at most (default %d)\n"
            "  --max-body BYTES       request body size limit (default %zu)\n"
            "  --max-texts N          texts per request, at most (default %d)\n"
            "  --batch-tokens N       tokens per backbone call (default %d)\n"
            "  --read-timeout S       seconds for a request to arrive (default %d)\n"
            "  --idle-timeout S       seconds a silent connection stays open (default %d)\n"
            "  --invariant            each text through the backbone on its own: a reward is\n"
            "                         the same bits whatever it is batched with (LLM\n"
            "                         backbones are slower; the default packs the texts of\n"
            "                         a batch into shared forward passes)\n"
            "  --config FILE, --set key=value   embed.* keys and run.threads (docs/config.md)\n"
            "  -q, --quiet            warnings and errors only;  -v, --verbose  more\n"
            "  -h, --help             this help\n\n"
            "Exit codes: 0 stopped by a signal, 1 runtime error, 2 usage error.\n",
            d.host, d.port, d.io_threads, d.queue, d.max_body, d.max_texts, d.batch_tokens,
            d.read_timeout, d.idle_timeout);
}

/* --name N: an integer option in [min, max] into *out. */
static int int_option(const char *name, const char *text, long long min, long long max,
                      long long *out)
{
    if (btrm_cli_parse_i64(text, min, max, out))
        return btrm_cli_usage_error("serve", "%s must be an integer in [%lld, %lld] (got '%s')",
                                    name, min, max, text);
    return 0;
}

int btrm_serve_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    btrm_serve_opts o;
    btrm_serve_opts_defaults(&o);
    const char *spec = NULL, *config_path = NULL;
    btrm_cli_sets sets = { 0 };
    int verbosity = BTRM_LOG_INFO, code = 0;
    struct { const char *name; long long min, max; long long value; } ints[] = {
        { "--port", 0, 65535, o.port },
        { "--io-threads", 1, 1024, o.io_threads },
        { "--queue", 1, 1 << 20, o.queue },
        { "--max-body", 2, 1LL << 40, (long long)o.max_body },
        { "--max-texts", 1, 1 << 20, o.max_texts },
        { "--batch-tokens", 1, 1 << 30, o.batch_tokens },
        { "--read-timeout", 1, 86400, o.read_timeout },
        { "--idle-timeout", 1, 86400, o.idle_timeout },
    };
    const int n_ints = (int)(sizeof ints / sizeof ints[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc, matched = 0;
        for (int k = 0; k < n_ints && has_value; k++)
            if (!strcmp(a, ints[k].name)) {
                if ((code = int_option(a, argv[++i], ints[k].min, ints[k].max,
                                       &ints[k].value)))
                    goto out;
                matched = 1;
            }
        if (matched)
            continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if (!strcmp(a, "--backbone") && has_value) {
            spec = argv[++i];
        } else if (!strcmp(a, "--invariant")) {
            o.invariant = 1;
        } else if (!strcmp(a, "--host") && has_value) {
            o.host = argv[++i];
        } else if (!strcmp(a, "--port-file") && has_value) {
            o.port_file = argv[++i];
        } else if (!strcmp(a, "--template") && has_value) {
            o.template_path = argv[++i];
        } else if (btrm_cli_config_option(argc, argv, &i, &config_path, &sets, &verbosity)) {
        } else if (a[0] == '-' && a[1]) {
            code = btrm_cli_usage_error("serve", "unknown or incomplete option '%s'", a);
            goto out;
        } else if (!o.model_path) {
            o.model_path = a;
        } else {
            code = btrm_cli_usage_error("serve", "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!o.model_path) {
        code = btrm_cli_usage_error("serve", "want MODEL.h5 [--backbone SPEC]");
        goto out;
    }
    o.port = (int)ints[0].value;
    o.io_threads = (int)ints[1].value;
    o.queue = (int)ints[2].value;
    o.max_body = (size_t)ints[3].value;
    o.max_texts = (int)ints[4].value;
    o.batch_tokens = (int)ints[5].value;
    o.read_timeout = (int)ints[6].value;
    o.idle_timeout = (int)ints[7].value;
    btrm_log_init(0, verbosity);
    btrm_config *cfg = NULL;
    int rc = btrm_cli_load_config(config_path, &sets, &cfg);
    o.spec = spec;
    o.cfg = cfg;
    if (!rc)
        rc = btrm_serve_run(&o);
    code = btrm_cli_exit(NULL, rc);
    free(cfg);
out:
    btrm_cli_sets_free(&sets);
    return code;
}
