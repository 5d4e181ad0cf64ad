/* generate.c: `btrm generate` (see generate.h). */
#include "generate.h"

#include "error.h"
#include "llama_model.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int rc = btrm_tok_encode_special(m->tok, prompt, strlen(prompt), btrm_llama_embedder_bos(e), 1,
                                     &prompt_ids, &n_prompt);
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
    BTRM_FREE(prompt_ids, seq, h, logits, text);
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
    BTRM_FREE(seqs, lens, last, mean);
    return rc;
}

int btrm_generate_run(const btrm_generate_opts *opts, const btrm_config *cfg)
{
    btrm_llama_embedder e;
    memset(&e, 0, sizeof e);
    int format = 0;
    const char *args = NULL;
    int rc = parse_spec(opts->backbone, &format, &args);
    if (!rc) {
        btrm_llama_opts base;
        btrm_llama_opts_from_config(&base, cfg);
        rc = btrm_llama_embedder_open(&e, format, args, &base);
    }
    if (!rc && opts->tokenize) {
        int32_t *ids = NULL;
        int n = 0;
        rc = btrm_llama_embedder_tokenize(&e, opts->prompt ? opts->prompt : "", &ids, &n);
        if (!rc)
            print_ids(ids, n);
        free(ids);
    } else if (!rc) {
        rc = opts->hidden_path ? hidden(&e, opts->hidden_path)
                               : generate(&e, opts->prompt, opts->steps, opts->show_ids);
    }
    btrm_llama_embedder_close(&e);
    return rc;
}
