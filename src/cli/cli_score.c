/* cli_score.c: `btrm score MODEL.h5 --backbone SPEC TEXTS.jsonl`: the reward
 * of each text, from a backbone's features and a trained head. One process,
 * no MPI. Reads JSON lines {"text": ...} (other keys ignored, "id" copied to
 * the output) and writes one JSON line {"reward": r} (or {"id": ...,
 * "reward": r}) per input line, in order. */
#include "backbone.h"
#include "cli.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "reward.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_BATCH_DEFAULT 64

static void usage(FILE *out)
{
    char names[256];
    btrm_backbone_names(names, sizeof names);
    fprintf(out,
            "Usage: btrm score MODEL.h5 --backbone SPEC TEXTS.jsonl [options]\n\n"
            "Prints the reward of each text of TEXTS.jsonl (one {\"text\": ...} object per\n"
            "line, blank lines skipped; \"-\" reads stdin) as one JSON line {\"reward\": r}\n"
            "per text, in order ({\"id\": ..., \"reward\": r} when the input has an \"id\").\n"
            "The features come from the backbone the model was trained on (backbones:\n"
            "%s; see docs/backbones.md), the head from MODEL.h5 (btrm\n"
            "train's final.h5).\n\n"
            "Options:\n"
            "  --backbone SPEC        NAME[:ARGS], e.g. gguf:MODEL.gguf,pool=last (required)\n"
            "  -o, --output FILE      write the JSON lines to FILE instead of stdout\n"
            "  --batch N              texts per backbone call (default %d)\n"
            "  --invariant            each text through the backbone on its own: a reward\n"
            "                         does not depend on --batch (LLM backbones are slower)\n"
            "  --config FILE, --set key=value   embed.* keys and run.threads (docs/config.md)\n"
            "  -q, --quiet            warnings and errors only;  -v, --verbose  more\n"
            "  -h, --help             this help\n\n"
            "Exit codes: 0 ok, 1 runtime or data error, 2 usage error.\n",
            names, SCORE_BATCH_DEFAULT);
}

typedef struct score_batch {
    int n, cap;
    char **texts;
    json_t **ids; /* NULL when a line has none */
} score_batch;

static void batch_clear(score_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        free(b->texts[i]);
        json_decref(b->ids[i]);
    }
    b->n = 0;
}

/* Scores the batch and writes its lines. */
static int flush(score_batch *b, btrm_reward *rm, float *rewards, FILE *out)
{
    if (b->n == 0)
        return 0;
    int rc = btrm_reward_texts(rm, (const char *const *)b->texts, (size_t)b->n, rewards);
    if (rc)
        return rc;
    for (int i = 0; i < b->n && !rc; i++) {
        json_t *line = json_object();
        if (!line ||
            (b->ids[i] && json_object_set(line, "id", b->ids[i])) ||
            json_object_set_new(line, "reward", json_real((double)rewards[i])) ||
            json_dumpf(line, out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) ||
            fputc('\n', out) == EOF)
            rc = btrm_error_set(BTRM_EIO, "cannot write the scores");
        json_decref(line);
    }
    batch_clear(b);
    return rc;
}

static int run(const char *model_path, const char *spec, const char *texts_path,
               const char *out_path, int batch, int invariant)
{
    btrm_reward rm;
    float *rewards = NULL;
    score_batch b = { 0 };
    FILE *in = NULL, *out = stdout;
    char *line = NULL;
    size_t line_cap = 0, line_no = 0;
    int rc = btrm_reward_open(&rm, model_path, spec, batch);
    if (rc)
        goto fail;
    rm.invariant = invariant;
    if ((rc = BTRM_MALLOC(rewards, batch)) || (rc = BTRM_CALLOC(b.texts, batch)) ||
        (rc = BTRM_CALLOC(b.ids, batch)))
        goto fail;
    b.cap = batch;
    in = strcmp(texts_path, "-") ? fopen(texts_path, "r") : stdin;
    if (!in) {
        rc = btrm_error_set(BTRM_EIO, "cannot open %s: %s", texts_path, strerror(errno));
        goto fail;
    }
    if (out_path && !(out = fopen(out_path, "w"))) {
        rc = btrm_error_set(BTRM_EIO, "cannot create %s: %s", out_path, strerror(errno));
        goto fail;
    }
    ssize_t len;
    while ((len = getline(&line, &line_cap, in)) >= 0) {
        line_no++;
        if (strspn(line, " \t\r\n") == (size_t)len)
            continue; /* blank line */
        json_error_t jerr;
        json_t *obj = json_loadb(line, (size_t)len, JSON_DISABLE_EOF_CHECK, &jerr);
        json_t *text = obj ? json_object_get(obj, "text") : NULL;
        if (!obj || !json_is_string(text)) {
            rc = btrm_error_set(BTRM_EDATA, "%s:%zu: %s", texts_path, line_no,
                                obj ? "want an object with a string \"text\"" : jerr.text);
            json_decref(obj);
            goto fail;
        }
        json_t *id = json_object_get(obj, "id");
        b.texts[b.n] = strdup(json_string_value(text));
        b.ids[b.n] = id ? json_incref(id) : NULL;
        json_decref(obj);
        if (!b.texts[b.n]) {
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory");
            goto fail;
        }
        b.n++;
        if (b.n == b.cap && (rc = flush(&b, &rm, rewards, out))) {
            rc = btrm_error_wrap(rc, "%s: lines %zu..%zu", texts_path, line_no - b.cap + 1,
                                 line_no);
            goto fail;
        }
    }
    if ((rc = flush(&b, &rm, rewards, out)))
        rc = btrm_error_wrap(rc, "%s: the last %d lines", texts_path, b.n);
    btrm_log_debug("score: %zu texts", line_no);
fail:
    batch_clear(&b);
    free(b.texts);
    free(b.ids);
    free(line);
    if (in && in != stdin)
        fclose(in);
    if (out && out != stdout && fclose(out) != 0 && !rc)
        rc = btrm_error_set(BTRM_EIO, "cannot write %s", out_path);
    free(rewards);
    btrm_reward_close(&rm);
    return rc;
}

int btrm_score_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    const char *model_path = NULL, *texts_path = NULL, *spec = NULL, *out_path = NULL;
    const char *config_path = NULL;
    btrm_cli_sets sets = { 0 };
    int verbosity = BTRM_LOG_INFO, code = 0, invariant = 0;
    long long batch = SCORE_BATCH_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto out;
        } else if (!strcmp(a, "--backbone") && has_value) {
            spec = argv[++i];
        } else if (!strcmp(a, "--invariant")) {
            invariant = 1;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has_value) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--batch") && has_value) {
            if (btrm_cli_parse_i64(argv[++i], 1, 1 << 16, &batch)) {
                code = btrm_cli_usage_error("score", "--batch must be an integer in [1, %d] "
                                            "(got '%s')", 1 << 16, argv[i]);
                goto out;
            }
        } else if (!strcmp(a, "--config") && has_value) {
            config_path = argv[++i];
        } else if (!strcmp(a, "--set") && has_value) {
            btrm_cli_sets_add(&sets, argv[++i]);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            verbosity = BTRM_LOG_WARN;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbosity = BTRM_LOG_DEBUG;
        } else if (a[0] == '-' && a[1]) {
            code = btrm_cli_usage_error("score", "unknown or incomplete option '%s'", a);
            goto out;
        } else if (!model_path) {
            model_path = a;
        } else if (!texts_path) {
            texts_path = a;
        } else {
            code = btrm_cli_usage_error("score", "unexpected argument '%s'", a);
            goto out;
        }
    }
    if (!model_path || !texts_path || !spec) {
        code = btrm_cli_usage_error("score", "want MODEL.h5 --backbone SPEC TEXTS.jsonl");
        goto out;
    }
    btrm_log_init(0, verbosity);
    char full_spec[2 * BTRM_PATH_MAX];
    int rc = btrm_cli_backbone_spec(spec, config_path, &sets, full_spec, sizeof full_spec);
    if (!rc)
        rc = run(model_path, full_spec, texts_path, out_path, (int)batch, invariant);
    if (rc)
        btrm_log_error("%s", btrm_error_msg());
    code = btrm_error_exit_code(rc);
out:
    btrm_cli_sets_free(&sets);
    return code;
}
