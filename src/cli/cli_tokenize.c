/* cli_tokenize.c: `btrm tokenize MODEL TEXT...`: the token ids and pieces of
 * each text under a tokenizer (tokenizer.h), one line per text, as text or
 * JSON lines. Serial: no MPI. */
#include "cli.h"
#include "error.h"
#include "gguf.h"
#include "log.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: btrm tokenize [options] MODEL TEXT...\n\n"
            "Prints the token ids and pieces of each TEXT, one line per text:\n"
            "  IDS<TAB>PIECES   ids separated by spaces, then each piece (the vocabulary\n"
            "                   entry, e.g. \"▁Once\", \"Ġworld\", \"<0x0A>\") as a C string\n"
            "With --json, one JSON object per line: {\"text\": ..., \"ids\": [...],\n"
            "\"pieces\": [...]} (invalid UTF-8 is written as U+FFFD).\n\n"
            "MODEL:\n"
            "  PATH                       llama2.c tokenizer.bin (SentencePiece BPE by\n"
            "                             scores, byte fallback; BOS 1, EOS 2)\n"
            "  gpt2:ENCODER_JSON,VOCAB_BPE  GPT-2 byte-level BPE (no BOS)\n"
            "  gpt2:DIR, or DIR           DIR/encoder.json and DIR/vocab.bpe\n"
            "  gguf:PATH, or PATH.gguf    the tokenizer in a GGUF file's metadata\n\n"
            "Options:\n"
            "  --json       JSON lines instead of text\n"
            "  --no-bos     do not prepend the BOS token (default: prepend it when the\n"
            "               tokenizer has one; GGUF: tokenizer.ggml.add_bos_token)\n"
            "  --special    recognise control tokens written in the text (<|im_start|>,\n"
            "               <s>, ...) as embed does; user-defined tokens always are\n"
            "  --vocab N    read the first N records of a tokenizer.bin (default: all of\n"
            "               them, to the end of the file)\n"
            "  --           the arguments after it are texts, even if they start with '-'\n"
            "  -h, --help   this help\n\n"
            "Algorithms and their sources of truth: docs/tokenizers.md.\n"
            "Exit codes: 0 ok, 1 unreadable or invalid model file, 2 usage error.\n");
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int load_gpt2(btrm_tokenizer **tok, const char *spec)
{
    char enc[4096], bpe[4096];
    const char *comma = strchr(spec, ',');
    if (comma) {
        snprintf(enc, sizeof enc, "%.*s", (int)(comma - spec), spec);
        snprintf(bpe, sizeof bpe, "%s", comma + 1);
    } else {
        snprintf(enc, sizeof enc, "%s/encoder.json", spec);
        snprintf(bpe, sizeof bpe, "%s/vocab.bpe", spec);
    }
    return btrm_tok_bpe_load_files(tok, enc, bpe);
}

static int load_gguf(btrm_tokenizer **tok, const char *path, int *add_bos)
{
    btrm_gguf *g = NULL;
    int rc = btrm_gguf_open(&g, path);
    if (!rc)
        rc = btrm_gguf_tokenizer(g, tok, add_bos);
    btrm_gguf_close(g);
    return rc;
}

/* MODEL -> tokenizer; *add_bos is the model's default. */
static int load_model(btrm_tokenizer **tok, const char *model, int n_vocab, int *add_bos)
{
    *add_bos = 1;
    if (!strncmp(model, "gpt2:", 5))
        return load_gpt2(tok, model + 5);
    if (!strncmp(model, "gguf:", 5))
        return load_gguf(tok, model + 5, add_bos);
    if (is_dir(model))
        return load_gpt2(tok, model);
    if (ends_with(model, ".gguf"))
        return load_gguf(tok, model, add_bos);
    return btrm_tok_spm_load_bin(tok, model, n_vocab);
}

/* A C string literal: \" \\ \n \t \r, other control bytes as \xNN. */
static void put_c_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\t': fputs("\\t", out); break;
        case '\r': fputs("\\r", out); break;
        default:
            if (*p < 0x20 || *p == 0x7F)
                fprintf(out, "\\x%02X", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs,
 * surrogates or code points past U+10FFFF), 0 when there is none. */
static size_t utf8_valid(const unsigned char *s)
{
    unsigned c = s[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* A JSON string; invalid UTF-8 bytes become U+FFFD. */
static void put_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc((int)c, out);
            p++;
        } else if (c < 0x20) {
            const char *esc = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
            if (esc)
                fputs(esc, out);
            else
                fprintf(out, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            fputc((int)c, out);
            p++;
        } else {
            size_t n = utf8_valid(p);
            if (n) {
                fwrite(p, 1, n, out);
                p += n;
            } else {
                fputs("\\ufffd", out);
                p++;
            }
        }
    }
    fputc('"', out);
}

static void print_line(FILE *out, const btrm_tokenizer *tok, const char *text,
                       const int32_t *ids, int n, int json)
{
    if (json) {
        fputs("{\"text\": ", out);
        put_json_string(out, text);
        fputs(", \"ids\": [", out);
        for (int i = 0; i < n; i++)
            fprintf(out, "%s%d", i ? ", " : "", (int)ids[i]);
        fputs("], \"pieces\": [", out);
        for (int i = 0; i < n; i++) {
            if (i)
                fputs(", ", out);
            put_json_string(out, btrm_tok_piece(tok, ids[i]));
        }
        fputs("]}\n", out);
        return;
    }
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%d", i ? " " : "", (int)ids[i]);
    fputc('\t', out);
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(' ', out);
        put_c_string(out, btrm_tok_piece(tok, ids[i]));
    }
    fputc('\n', out);
}

/* The command line: options anywhere, MODEL first, then the texts in argv
 * order. -1 when the run goes on, else the exit code (help, usage error). */
static int parse_args(int argc, char **argv, const char **model, const char **texts,
                      int *n_texts, int *json, int *no_bos, int *special, int *n_vocab)
{
    int options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (!*model)
                *model = arg;
            else
                texts[(*n_texts)++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            options_done = 1;
        } else if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return BTRM_EXIT_OK;
        } else if (!strcmp(arg, "--json")) {
            *json = 1;
        } else if (!strcmp(arg, "--no-bos")) {
            *no_bos = 1;
        } else if (!strcmp(arg, "--special")) {
            *special = 1;
        } else if (!strcmp(arg, "--vocab") || !strncmp(arg, "--vocab=", 8)) {
            const char *value = arg[7] == '=' ? arg + 8 : i + 1 < argc ? argv[++i] : NULL;
            long long v = 0;
            if (!value)
                return btrm_cli_usage_error("tokenize", "option --vocab needs a value");
            if (btrm_cli_parse_i64(value, 1, 1 << 30, &v))
                return btrm_cli_usage_error("tokenize", "bad value '%s' for --vocab", value);
            *n_vocab = (int)v;
        } else {
            return btrm_cli_usage_error("tokenize", "unknown option '%s'", arg);
        }
    }
    if (!*model)
        return btrm_cli_usage_error("tokenize", "missing MODEL and TEXT");
    if (*n_texts == 0)
        return btrm_cli_usage_error("tokenize", "missing TEXT (one or more texts to tokenize)");
    if (*n_vocab > 0 && (!strncmp(*model, "gpt2:", 5) || !strncmp(*model, "gguf:", 5) ||
                         is_dir(*model) || ends_with(*model, ".gguf")))
        return btrm_cli_usage_error("tokenize", "--vocab applies to a tokenizer.bin only");
    return -1;
}

int btrm_tokenize_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    const char *model = NULL;
    int json = 0, no_bos = 0, special = 0, n_vocab = 0, n_texts = 0;
    const char **texts = calloc((size_t)argc, sizeof *texts);
    if (!texts) {
        btrm_log_error("tokenize: out of memory");
        return BTRM_EXIT_FAILURE;
    }
    int code = parse_args(argc, argv, &model, texts, &n_texts, &json, &no_bos, &special,
                          &n_vocab);
    if (code >= 0) {
        free(texts);
        return code;
    }

    btrm_tokenizer *tok = NULL;
    int add_bos = 1;
    int rc = load_model(&tok, model, n_vocab, &add_bos);
    if (rc) {
        btrm_log_error("tokenize: %s", btrm_error_msg());
        free(texts);
        return btrm_error_exit_code(rc);
    }
    if (no_bos)
        add_bos = 0;
    for (int t = 0; t < n_texts; t++) {
        int32_t *ids = NULL;
        int n = 0;
        if ((rc = btrm_tok_encode_special(tok, texts[t], strlen(texts[t]), add_bos, special,
                                          &ids, &n))) {
            btrm_log_error("tokenize: text %d: %s", t + 1, btrm_error_msg());
            break;
        }
        print_line(stdout, tok, texts[t], ids, n, json);
        free(ids);
    }
    btrm_tok_free(tok);
    free(texts);
    if (!rc && (fflush(stdout) || ferror(stdout))) {
        btrm_log_error("tokenize: cannot write to standard output");
        rc = BTRM_EIO;
    }
    return rc ? btrm_error_exit_code(rc) : BTRM_EXIT_OK;
}
