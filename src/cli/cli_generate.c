/* cli_generate.c: `btrm generate --backbone SPEC PROMPT [-n STEPS]`, greedy
 * generation with a gguf or llama2c backbone's model. A debug tool: it checks
 * the forward pass against known generations (every step recomputes the
 * prefill of the whole sequence, so it also tests the batched prefill at every
 * length). `--hidden IDS.txt` prints the final hidden states of given token
 * sequences instead, for comparisons with a reference implementation. One
 * process, no MPI. */
#include "cli.h"
#include "config.h"
#include "error.h"
#include "llama_model.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
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

/* Splits "gguf:ARGS" / "llama2c:ARGS". */
static int parse_spec(const char *spec, int *format, const char **args)
{
    if (!strncmp(spec, "gguf:", 5)) {
        *format = BTRM_LLAMA_GGUF;
        *args = spec + 5;
    } else if (!strncmp(spec, "llama2c:", 8)) {
        *format = BTRM_LLAMA_LLAMA2C;
        *args = spec + 8;
    } else {
        return btrm_error_set(BTRM_EUSAGE, "--backbone %s: generate needs a language model, "
                              "gguf:MODEL.gguf or llama2c:MODEL.bin", spec);
    }
    return 0;
}

static void print_ids(const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        printf("%s%d", i ? " " : "", (int)ids[i]);
    printf("\n");
}

static int generate(btrm_llama_embedder *e, const char *prompt, int steps, int show_ids)
{
    btrm_llama_model *m = e->model;
    const btrm_llama_hparams *hp = &m->hp;
    int32_t *prompt_ids = NULL, *seq = NULL;
    float *h = NULL, *logits = NULL;
    char *text = NULL;
    size_t text_len = 0;
    int n_prompt = 0;
    int rc = btrm_tok_encode(m->tok, prompt, btrm_tok_bos(m->tok) >= 0, &prompt_ids, &n_prompt);
    if (rc)
        return rc;
    if (n_prompt < 1) {
        rc = btrm_error_set(BTRM_EUSAGE, "the prompt has no tokens and the tokenizer no BOS");
        goto fail;
    }
    if (steps + 1 > e->ws.max_seq || n_prompt > e->ws.max_seq) {
        rc = btrm_error_set(BTRM_EUSAGE, "%d positions do not fit in max_tokens=%d (give "
                            "--set embed.max_tokens=N)", steps + 1 > n_prompt ? steps + 1
                            : n_prompt, e->ws.max_seq);
        goto fail;
    }
    if ((rc = BTRM_MALLOC(seq, steps + 1 > n_prompt ? steps + 1 : n_prompt)) ||
        (rc = BTRM_MALLOC(h, hp->dim)) || (rc = BTRM_MALLOC(logits, hp->vocab_size)))
        goto fail;
    /* llama2.c's loop: position pos feeds token pos and picks token pos+1,
     * forced from the prompt while there is one */
    int n = 1;
    seq[0] = prompt_ids[0];
    for (int pos = 0; pos < steps; pos++) {
        int next;
        if (pos + 1 < n_prompt) {
            next = prompt_ids[pos + 1];
        } else {
            if ((rc = btrm_llama_forward(hp, &m->w, &e->ws, seq, &n, 1, h, NULL)))
                goto fail;
            if ((rc = btrm_llama_logits(hp, &m->w, &e->ws, h, 1, logits)))
                goto fail;
            next = 0;
            for (int v = 1; v < hp->vocab_size; v++)
                if (logits[v] > logits[next])
                    next = v;
            if (next == btrm_tok_bos(m->tok) || next == btrm_tok_eos(m->tok))
                break;
        }
        seq[n++] = next;
    }
    if (show_ids) {
        print_ids(seq, n);
    } else {
        if ((rc = btrm_tok_decode(m->tok, seq, n, &text, &text_len)))
            goto fail;
        fwrite(text, 1, text_len, stdout);
        printf("\n");
    }
    btrm_log_debug("generate: %d positions (%d from the prompt)", n, n_prompt);
fail:
    free(prompt_ids);
    free(seq);
    free(h);
    free(logits);
    free(text);
    return rc;
}

/* Reads one sequence of ids per line. */
static int read_ids(const char *path, int32_t ***seqs, int **lens, size_t *n_seqs)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return btrm_error_set(BTRM_EIO, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, n = 0, seq_cap = 0;
    int rc = 0;
    *seqs = NULL;
    *lens = NULL;
    while (!rc && getline(&line, &cap, f) >= 0) {
        if (n == seq_cap) {
            seq_cap = seq_cap ? 2 * seq_cap : 16;
            int32_t **s = realloc(*seqs, seq_cap * sizeof *s);
            int *l = s ? realloc(*lens, seq_cap * sizeof *l) : NULL;
            if (s)
                *seqs = s;
            if (l)
                *lens = l;
            if (!s || !l) {
                rc = btrm_error_set(BTRM_ENOMEM, "out of memory");
                break;
            }
        }
        int32_t *ids = malloc((strlen(line) / 2 + 1) * sizeof *ids);
        if (!ids) {
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory");
            break;
        }
        int k = 0;
        char *p = line, *end;
        for (;;) {
            long v = strtol(p, &end, 10);
            if (end == p)
                break;
            if (v < INT32_MIN || v > INT32_MAX) {
                rc = btrm_error_set(BTRM_EDATA, "%s:%zu: id %ld out of range", path, n + 1, v);
                break;
            }
            ids[k++] = (int32_t)v;
            p = end;
        }
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p && !rc)
            rc = btrm_error_set(BTRM_EDATA, "%s:%zu: not a list of integers", path, n + 1);
        (*seqs)[n] = ids;
        (*lens)[n++] = k;
    }
    free(line);
    fclose(f);
    *n_seqs = n;
    return rc;
}

static int hidden(btrm_llama_embedder *e, const char *path)
{
    int32_t **seqs = NULL;
    int *lens = NULL;
    size_t n = 0;
    float *last = NULL, *mean = NULL;
    int dim = e->model->hp.dim;
    int rc = read_ids(path, &seqs, &lens, &n);
    if (!rc && ((rc = BTRM_MALLOC(last, n * (size_t)dim + 1)) ||
                (rc = BTRM_MALLOC(mean, n * (size_t)dim + 1))))
        goto fail;
    if (!rc)
        rc = btrm_llama_embedder_run(e, (const int32_t *const *)seqs, lens, n, last, mean);
    for (size_t s = 0; !rc && s < n; s++) {
        const float *rows[2] = { last + s * (size_t)dim, mean + s * (size_t)dim };
        printf("{\"n\": %d", lens[s]);
        for (int k = 0; k < 2; k++) {
            printf(", \"%s\": [", k ? "mean" : "last");
            for (int i = 0; i < dim; i++)
                printf("%s%.9g", i ? ", " : "", (double)rows[k][i]);
            printf("]");
        }
        printf("}\n");
    }
fail:
    for (size_t s = 0; s < n; s++)
        free(seqs[s]);
    free(seqs);
    free(lens);
    free(last);
    free(mean);
    return rc;
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
        } else if (!strcmp(a, "--config") && has_value) {
            config_path = argv[++i];
        } else if (!strcmp(a, "--set") && has_value) {
            btrm_cli_sets_add(&sets, argv[++i]);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            verbosity = BTRM_LOG_WARN;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbosity = BTRM_LOG_DEBUG;
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
    btrm_config *cfg = calloc(1, sizeof *cfg);
    btrm_llama_embedder e;
    memset(&e, 0, sizeof e);
    int format = 0;
    const char *args = NULL;
    int rc = cfg ? btrm_config_load(cfg, config_path, sets.items, sets.n)
                 : btrm_error_set(BTRM_ENOMEM, "out of memory");
    if (!rc)
        rc = parse_spec(spec, &format, &args);
    if (!rc) {
        btrm_llama_opts base;
        btrm_llama_opts_from_config(&base, cfg);
        rc = btrm_llama_embedder_open(&e, format, args, &base);
    }
    if (!rc && tokenize) {
        int32_t *ids = NULL;
        int n = 0;
        rc = btrm_llama_embedder_tokenize(&e, prompt ? prompt : "", &ids, &n);
        if (!rc)
            print_ids(ids, n);
        free(ids);
    } else if (!rc) {
        rc = hidden_path ? hidden(&e, hidden_path) : generate(&e, prompt, (int)steps, show_ids);
    }
    if (rc)
        btrm_log_error("%s", btrm_error_msg());
    code = btrm_error_exit_code(rc);
    btrm_llama_embedder_close(&e);
    free(cfg);
out:
    btrm_cli_sets_free(&sets);
    return code;
}
