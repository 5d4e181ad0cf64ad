/* test-prep.c: btrm prep's reader and writer without MPI: every record shape
 * (JSONL and JSON arrays, plain and gzip), every bad-record reason, the HH
 * prefix rule, text deduplication, templates, category maps, and the
 * train/validation split (deterministic, disjoint by prompt), reading the
 * written stores back with HDF5. */
#include "error.h"
#include "h5util.h"
#include "log.h"
#include "prep.h"
#include "tap.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char dir[256];

/* name in the test's directory; the result lives until the 4th next call. */
static const char *path_of(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_file(const char *name, const char *content)
{
    FILE *f = fopen(path_of(name), "wb");
    fwrite(content, 1, strlen(content), f);
    fclose(f);
}

static void write_gz(const char *name, const char *content)
{
    gzFile g = gzopen(path_of(name), "wb");
    gzwrite(g, content, (unsigned)strlen(content));
    gzclose(g);
}

static btrm_prep_opts default_opts(void)
{
    btrm_prep_opts o = { .format = BTRM_PREP_AUTO, .split_by = BTRM_PREP_SPLIT_PROMPT };
    return o;
}

/* Reads one file into a fresh collection; NULL on a hard error. */
static btrm_prep *read_one(const char *name, const btrm_prep_opts *opts, int *rc_out)
{
    btrm_prep *p = NULL;
    int rc = btrm_prep_init(&p, opts);
    if (!rc)
        rc = btrm_prep_read_file(p, path_of(name));
    if (rc_out)
        *rc_out = rc;
    if (rc && !rc_out) {
        diag("%s: %s", name, btrm_error_msg());
        btrm_prep_free(p);
        return NULL;
    }
    return p;
}

static const char *chosen_text(const btrm_prep *p, int64_t i)
{
    int64_t c, r;
    const char *id, *cat, *sub;
    uint64_t key;
    btrm_prep_pair(p, i, &c, &r, &id, &cat, &sub, &key);
    return btrm_prep_text(p, c);
}

static const char *rejected_text(const btrm_prep *p, int64_t i)
{
    int64_t c, r;
    const char *id, *cat, *sub;
    uint64_t key;
    btrm_prep_pair(p, i, &c, &r, &id, &cat, &sub, &key);
    return btrm_prep_text(p, r);
}

static const char *pair_field(const btrm_prep *p, int64_t i, int which)
{
    int64_t c, r;
    const char *f[3];
    uint64_t key;
    btrm_prep_pair(p, i, &c, &r, &f[0], &f[1], &f[2], &key);
    return f[which] ? f[which] : "(null)";
}

/* Strings of a dataset of a written store (NULL on error); *n set. */
static char **read_h5_strings(const char *file, const char *name, size_t *n)
{
    char **s = NULL;
    *n = 0;
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return NULL;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d >= 0) {
        if (btrm_h5_read_strings(d, &s, n))
            s = NULL;
        H5Dclose(d);
    }
    H5Fclose(f);
    return s;
}

static int64_t *read_h5_i64(const char *file, const char *name, size_t *n)
{
    int64_t *v = NULL;
    *n = 0;
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return NULL;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d >= 0) {
        hid_t sp = H5Dget_space(d);
        hsize_t dims[1] = { 0 };
        H5Sget_simple_extent_dims(sp, dims, NULL);
        *n = (size_t)dims[0];
        v = calloc(*n + 1, sizeof *v);
        H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Sclose(sp);
        H5Dclose(d);
    }
    H5Fclose(f);
    return v;
}

static int h5_has(const char *file, const char *name)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return -1;
    int r = btrm_h5_exists(f, name);
    H5Fclose(f);
    return r;
}

/* ------------------------------------------------------------------------ */

static void test_hh_rule(void)
{
    is_int((long long)btrm_prep_hh_prompt_len("\n\nHuman: hi\n\nAssistant: A",
                                              "\n\nHuman: hi\n\nAssistant: B"),
           (long long)strlen("\n\nHuman: hi\n\nAssistant:"),
           "hh: the prompt ends after the last shared \\n\\nAssistant:");
    const char *c = "\n\nHuman: q\n\nAssistant: a\n\nHuman: y\n\nAssistant: z";
    const char *r = "\n\nHuman: q\n\nAssistant: a\n\nHuman: y\n\nAssistant: w";
    is_int((long long)btrm_prep_hh_prompt_len(c, r), (long long)(strlen(c) - 2),
           "hh: multi-turn, only the last assistant turn differs");
    c = "\n\nHuman: q\n\nAssistant: No. Men\n\nHuman: again\n\nAssistant: ok";
    r = "\n\nHuman: q\n\nAssistant: A drag king";
    is_int((long long)btrm_prep_hh_prompt_len(c, r),
           (long long)strlen("\n\nHuman: q\n\nAssistant:"),
           "hh: transcripts that part inside an assistant turn keep the turn's own marker");
    is_int((long long)btrm_prep_hh_prompt_len("\n\nHuman: q\n\nAssistant: a",
                                              "\n\nHuman: q\n\nAssistant"),
           0, "hh: a marker cut by the end of the common prefix does not count");
    is_int((long long)btrm_prep_hh_prompt_len("just text", "just other"), 0,
           "hh: no marker, no prompt");
}

static void test_shapes(void)
{
    const char *hh =
        "{\"chosen\": \"\\n\\nHuman: hi\\n\\nAssistant: Hello!\", "
        "\"rejected\": \"\\n\\nHuman: hi\\n\\nAssistant: Go away.\"}\n"
        "{\"chosen\": \"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant: d1\", "
        "\"rejected\": \"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant: \"}\n";
    write_file("hh.jsonl", hh);
    write_gz("hh.jsonl.gz", hh);
    btrm_prep_opts o = default_opts();
    for (int gz = 0; gz < 2; gz++) {
        btrm_prep *p = read_one(gz ? "hh.jsonl.gz" : "hh.jsonl", &o, NULL);
        ok(p && btrm_prep_n_pairs(p) == 2 && btrm_prep_n_texts(p) == 4,
           "hh %s: 2 pairs, 4 texts", gz ? "gzip" : "plain");
        if (!p) {
            skip(3, "no collection");
            continue;
        }
        is_string(chosen_text(p, 0), "<|user|>\nhi\n<|assistant|>\nHello!\n",
                  "hh %s: the chosen text is the rendered prompt + response", gz ? "gzip" : "plain");
        is_string(rejected_text(p, 1),
                  "<|user|>\na\n<|assistant|>\nb\n<|user|>\nc\n<|assistant|>\n\n",
                  "hh %s: multi-turn prompt; a silent final turn is kept", gz ? "gzip" : "plain");
        is_string(pair_field(p, 1, 0), gz ? "hh.jsonl.gz:2" : "hh.jsonl:2",
                  "hh %s: the derived id is basename:line", gz ? "gzip" : "plain");
        btrm_prep_free(p);
    }

    /* The HH template gives the original transcripts back. */
    write_file("hh-template.yaml", "# HH-RLHF's own transcript format\n"
                                   "user: \"\\n\\nHuman: {content}\"\n"
                                   "assistant: \"\\n\\nAssistant: {content}\"\n");
    char template_path[512];
    snprintf(template_path, sizeof template_path, "%s", path_of("hh-template.yaml"));
    o.template_path = template_path;
    btrm_prep *p = read_one("hh.jsonl", &o, NULL);
    ok(p && !strcmp(chosen_text(p, 0), "\n\nHuman: hi\n\nAssistant: Hello!") &&
           !strcmp(chosen_text(p, 1), "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d1"),
       "with an HH template the texts are the original transcripts");
    btrm_prep_free(p);
    /* render_pair gives the text prep stores for a prompt and a response */
    btrm_prep_template tpl;
    char *pair_text = NULL;
    int rc = btrm_prep_template_load(&tpl, template_path);
    if (!rc)
        rc = btrm_prep_template_render_pair(&tpl, "hi", " Hello!", &pair_text);
    ok(!rc && !strcmp(pair_text, "\n\nHuman: hi\n\nAssistant:  Hello!"),
       "render_pair with a loaded template: the user turn, then the assistant turn");
    free(pair_text);
    btrm_prep_template_free(&tpl);
    o.template_path = NULL;

    /* prompt shape, JSON array, plain and gzip; ids, subsets, categories */
    const char *arr =
        "[\n"
        "  {\"prompt\": \"2+2?\", \"chosen\": \"4\", \"rejected\": \"5\", \"id\": 17,\n"
        "   \"subset\": \"math-prm\"},\n"
        "  {\"prompt\": \"Hi\", \"chosen\": \"Hello\", \"rejected\": \"Bye\", \"id\": \"x-1\",\n"
        "   \"subset\": \"alpacaeval-easy\", \"category\": \"General\"}\n"
        "]\n";
    write_file("prompt.json", arr);
    write_gz("prompt.json.gz", arr);
    for (int gz = 0; gz < 2; gz++) {
        p = read_one(gz ? "prompt.json.gz" : "prompt.json", &o, NULL);
        ok(p && btrm_prep_n_pairs(p) == 2, "prompt shape, JSON array %s: 2 pairs",
           gz ? "gzip" : "plain");
        char *rendered = NULL;
        btrm_prep_template_default(&tpl);
        btrm_prep_template_render_pair(&tpl, "2+2?", "4", &rendered);
        btrm_prep_template_free(&tpl);
        ok(p && rendered && !strcmp(chosen_text(p, 0), rendered),
           "prompt shape %s: render_pair gives the stored text", gz ? "gzip" : "plain");
        free(rendered);
        ok(p && !strcmp(chosen_text(p, 0), "<|user|>\n2+2?\n<|assistant|>\n4\n") &&
               !strcmp(pair_field(p, 0, 0), "17") && !strcmp(pair_field(p, 1, 0), "x-1") &&
               !strcmp(pair_field(p, 0, 2), "math-prm") &&
               !strcmp(pair_field(p, 1, 1), "General") && !strcmp(pair_field(p, 0, 1), "(null)"),
           "prompt shape %s: texts, integer and string ids, subsets, categories",
           gz ? "gzip" : "plain");
        btrm_prep_free(p);
    }

    /* messages: Skywork (no prompt), UltraFeedback (prompt repeated in the
     * lists), TRL conversational (prompt list, responses only), a system
     * message, and string responses with a message prompt. */
    write_file("messages.jsonl",
               "{\"chosen\": [{\"role\": \"user\", \"content\": \"Q1\"}, {\"role\": \"assistant\", \"content\": \"good\"}],"
               " \"rejected\": [{\"role\": \"user\", \"content\": \"Q1\"}, {\"role\": \"assistant\", \"content\": \"bad\"}]}\n"
               "{\"prompt\": \"Q2\", \"chosen\": [{\"role\": \"user\", \"content\": \"Q2\"}, {\"role\": \"assistant\", \"content\": \"g2\"}],"
               " \"rejected\": [{\"role\": \"user\", \"content\": \"Q2\"}, {\"role\": \"assistant\", \"content\": \"b2\"}],"
               " \"score_chosen\": 8.5, \"score_rejected\": 3}\n"
               "{\"prompt\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Q3\"}],"
               " \"chosen\": [{\"role\": \"assistant\", \"content\": \"g3\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"b3\"}]}\n"
               "{\"prompt\": [{\"role\": \"user\", \"content\": \"Q4\"}], \"chosen\": \"g4\", \"rejected\": \"b4\"}\n");
    p = read_one("messages.jsonl", &o, NULL);
    ok(p && btrm_prep_n_pairs(p) == 4, "messages: 4 pairs");
    if (p && btrm_prep_n_pairs(p) == 4) {
        is_string(chosen_text(p, 0), "<|user|>\nQ1\n<|assistant|>\ngood\n",
                  "messages without prompt: the common prefix is the prompt");
        is_string(rejected_text(p, 1), "<|user|>\nQ2\n<|assistant|>\nb2\n",
                  "messages with a prompt repeated in the lists: it appears once");
        is_string(chosen_text(p, 2),
                  "<|system|>\nBe brief.\n<|user|>\nQ3\n<|assistant|>\ng3\n",
                  "messages with a prompt list and a system message");
        is_string(rejected_text(p, 3), "<|user|>\nQ4\n<|assistant|>\nb4\n",
                  "a message prompt with string responses");
    } else {
        skip(4, "no collection");
    }
    btrm_prep_free(p);

    /* --format forces one shape: hh records are wrong_type under messages */
    o.format = BTRM_PREP_MESSAGES;
    p = read_one("hh.jsonl", &o, NULL);
    btrm_prep_stats st;
    if (p)
        btrm_prep_get_stats(p, &st);
    ok(p && btrm_prep_n_pairs(p) == 0 && st.bad[BTRM_PREP_BAD_WRONG_TYPE] == 2,
       "--format messages rejects transcript strings as wrong_type");
    btrm_prep_free(p);
    o.format = BTRM_PREP_AUTO;

    /* BOM and CRLF */
    write_file("crlf.jsonl", "\xEF\xBB\xBF{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\r\n\r\n"
                             "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"b\"}\r\n");
    p = read_one("crlf.jsonl", &o, NULL);
    ok(p && btrm_prep_n_pairs(p) == 2 && btrm_prep_n_texts(p) == 3,
       "a byte order mark and CRLF line ends are accepted; the shared rejected text is "
       "stored once (3 texts for 2 pairs)");
    ok(p && !strcmp(pair_field(p, 1, 0), "crlf.jsonl:3"),
       "blank lines count for the line number (id crlf.jsonl:3)");
    btrm_prep_free(p);
}

static void test_bad_rows(void)
{
    write_file("bad.jsonl",
               "{\"chosen\": \"x\", \"rejected\": \n"                                       /* 1 not JSON */
               "{\"prompt\": \"p\", \"chosen\": \"caf\xC3\x28\", \"rejected\": \"b\"}\n"     /* 2 invalid UTF-8 */
               "{\"prompt\": \"p\", \"chosen\": 3, \"rejected\": \"b\"}\n"                   /* 3 wrong type */
               "[1, 2]\n"                                                                     /* 4 wrong type */
               "{\"prompt\": \"p\", \"chosen\": \"a\"}\n"                                     /* 5 missing */
               "{\"chosen\": [{\"role\": \"tool\", \"content\": \"a\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"b\"}]}\n" /* 6 role */
               "{\"chosen\": \"  \\n\", \"rejected\": \"b\"}\n"                          /* 7 empty */
               "{\"prompt\": \"p\", \"chosen\": \"same\", \"rejected\": \"same\"}\n"          /* 8 identical */
               "{\"prompt\": \"p\", \"chosen\": \"good\", \"rejected\": \"bad\"}\n"           /* 9 ok */
               "{\"chosen\": [{\"role\": \"user\"}], \"rejected\": []}\n"                     /* 10 missing */
               "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"id\": [1]}\n"); /* 11 wrong type */
    btrm_prep_opts o = default_opts();
    btrm_prep *p = read_one("bad.jsonl", &o, NULL);
    btrm_prep_stats st;
    memset(&st, 0, sizeof st);
    if (p)
        btrm_prep_get_stats(p, &st);
    is_int(st.pairs, 1, "bad rows: one good record of 11");
    is_int(st.records, 11, "bad rows: 11 records seen");
    is_int(st.bad[BTRM_PREP_BAD_NOT_JSON], 1, "bad rows: not_json counted");
    is_int(st.bad[BTRM_PREP_BAD_INVALID_UTF8], 1, "bad rows: invalid_utf8 counted");
    is_int(st.bad[BTRM_PREP_BAD_WRONG_TYPE], 3, "bad rows: wrong_type counted (field, record, id)");
    is_int(st.bad[BTRM_PREP_BAD_MISSING_FIELD], 2, "bad rows: missing_field counted (field, message content)");
    is_int(st.bad[BTRM_PREP_BAD_UNKNOWN_ROLE], 1, "bad rows: unknown_role counted");
    is_int(st.bad[BTRM_PREP_BAD_EMPTY_RESPONSE], 1, "bad rows: empty_response counted");
    is_int(st.bad[BTRM_PREP_BAD_IDENTICAL], 1, "bad rows: identical_responses counted");
    int n = 0;
    const char *const *ex = p ? btrm_prep_examples(p, BTRM_PREP_BAD_WRONG_TYPE, &n) : NULL;
    ok(n == 3 && strstr(ex[0], "bad.jsonl:3:") && strstr(ex[1], "bad.jsonl:4:") &&
           strstr(ex[2], "bad.jsonl:11:"),
       "bad rows: examples give file:line");
    btrm_prep_free(p);

    /* a blank answer to a prompt renders to its own text (prompt + empty turn) */
    write_file("blank.jsonl", "{\"prompt\": \"p\", \"chosen\": \"\", \"rejected\": \"b\"}\n");
    p = read_one("blank.jsonl", &o, NULL);
    memset(&st, 0, sizeof st);
    if (p)
        btrm_prep_get_stats(p, &st);
    is_int(st.pairs, 1, "a blank response to a prompt is kept");
    btrm_prep_free(p);

    /* --strict: the first bad record is the error */
    o.strict = 1;
    int rc = 0;
    p = read_one("bad.jsonl", &o, &rc);
    is_int(rc, BTRM_EDATA, "--strict: the first bad record fails with BTRM_EDATA");
    like(btrm_error_msg(), "bad.jsonl:1: not_json", "--strict: the message is file:line: reason");
    btrm_prep_free(p);
    o.strict = 0;

    /* A truncated gzip stream: the lines before the break are kept. */
    char *many = malloc(200000);
    size_t used = 0;
    for (int i = 0; i < 2000; i++)
        used += (size_t)snprintf(many + used, 200000 - used,
                                 "{\"prompt\": \"q%d\", \"chosen\": \"yes %d\", \"rejected\": \"no %d\"}\n",
                                 i, i * 7919 % 1000, i);
    write_gz("trunc.jsonl.gz", many);
    free(many);
    FILE *f = fopen(path_of("trunc.jsonl.gz"), "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    if (truncate(path_of("trunc.jsonl.gz"), size / 2) != 0)
        diag("truncate failed");
    p = read_one("trunc.jsonl.gz", &o, NULL);
    if (p)
        btrm_prep_get_stats(p, &st);
    ok(p && st.bad[BTRM_PREP_BAD_TRUNCATED_GZIP] == 1 && st.pairs > 100 && st.pairs < 2000,
       "a truncated gzip stream is counted once, the lines before it kept (%lld pairs)",
       p ? (long long)st.pairs : -1LL);
    btrm_prep_free(p);

    /* JSON arrays: a bad element is skipped, invalid UTF-8 in one element
     * does not lose its neighbours, a syntax error ends the file. */
    write_file("bad-array.json",
               "[{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"},\n"
               " {\"prompt\": \"p\", \"chosen\": 1, \"rejected\": \"b\"},\n"
               " {\"prompt\": \"p\", \"chosen\": \"\xFF\", \"rejected\": \"b\"},\n"
               " {\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"b\"},\n"
               " {\"prompt\": \"p\" \"chosen\": \"d\"},\n"
               " {\"prompt\": \"p\", \"chosen\": \"e\", \"rejected\": \"b\"}]\n");
    p = read_one("bad-array.json", &o, NULL);
    if (p)
        btrm_prep_get_stats(p, &st);
    ok(p && st.pairs == 2 && st.bad[BTRM_PREP_BAD_WRONG_TYPE] == 1 &&
           st.bad[BTRM_PREP_BAD_INVALID_UTF8] == 1 && st.bad[BTRM_PREP_BAD_NOT_JSON] == 1,
       "JSON array: wrong_type and invalid_utf8 elements skipped, a syntax error ends it");
    ex = p ? btrm_prep_examples(p, BTRM_PREP_BAD_INVALID_UTF8, &n) : NULL;
    ok(n == 1 && strstr(ex[0], "bad-array.json:3:"), "JSON array: the element's line is "
       "reported (bad-array.json:3)");
    btrm_prep_free(p);

    /* Nothing usable */
    write_file("empty.jsonl", "\n\n");
    p = read_one("empty.jsonl", &o, NULL);
    int64_t nt, nv;
    is_int(p ? btrm_prep_write(p, path_of("never.h5"), &nt, &nv) : -99, BTRM_EDATA,
           "writing no pairs is BTRM_EDATA");
    ok(access(path_of("never.h5"), F_OK) != 0, "and leaves no file");
    btrm_prep_free(p);
}

static void test_templates_and_maps(void)
{
    btrm_prep_template t;
    write_file("bad-template.yaml", "user: \"<u>{content}\"\nassistant: \"<a>\"\n");
    is_int(btrm_prep_template_load(&t, path_of("bad-template.yaml")), BTRM_ECONFIG,
           "a template role without {content} is a config error");
    like(btrm_error_msg(), "bad-template.yaml:2", "the error names file:line");
    write_file("nested.yaml", "user: [a, b]\n");
    is_int(btrm_prep_template_load(&t, path_of("nested.yaml")), BTRM_ECONFIG,
           "a template that is not a flat mapping is a config error");

    write_file("map.yaml", "alpacaeval-easy: Chat\nmath-prm: Reasoning\n"
                           "xstest-should-refuse: Safety\n");
    btrm_prep_category_map m;
    is_int(btrm_prep_category_map_load(&m, path_of("map.yaml")), 0, "a category map loads");
    ok(m.n == 3 && !strcmp(btrm_prep_category_map_get(&m, "math-prm"), "Reasoning") &&
           btrm_prep_category_map_get(&m, "nope") == NULL,
       "the map maps subsets and knows what it does not know");
    btrm_prep_category_map_free(&m);

    btrm_prep_opts o = default_opts();
    char map_path[512];
    snprintf(map_path, sizeof map_path, "%s", path_of("map.yaml"));
    o.category_map_path = map_path;
    btrm_prep *p = read_one("prompt.json", &o, NULL);
    ok(p && !strcmp(pair_field(p, 0, 1), "Reasoning") && !strcmp(pair_field(p, 1, 1), "Chat"),
       "with --category-map the subsets give the categories (the map wins over a category field)");
    btrm_prep_free(p);

    const char *src = getenv("BTRM_SRCDIR");
    if (src) {
        char rb[1024];
        snprintf(rb, sizeof rb, "%s/configs/categories/rewardbench.yaml", src);
        int rc = btrm_prep_category_map_load(&m, rb);
        ok(!rc && m.n == 23 && !strcmp(btrm_prep_category_map_get(&m, "llmbar-adver-GPTOut"), "Chat Hard") &&
               !strcmp(btrm_prep_category_map_get(&m, "hep-rust"), "Reasoning") &&
               !strcmp(btrm_prep_category_map_get(&m, "donotanswer"), "Safety") &&
               !strcmp(btrm_prep_category_map_get(&m, "mt-bench-med"), "Chat"),
           "configs/categories/rewardbench.yaml maps the 23 RewardBench subsets (%d)", m.n);
        btrm_prep_category_map_free(&m);
    } else {
        skip(1, "BTRM_SRCDIR not set");
    }
}

/* 60 prompts with 3 pairs each; the split keeps each prompt on one side. */
static void test_split(void)
{
    char *text = malloc(100000);
    size_t used = 0;
    for (int g = 0; g < 60; g++)
        for (int j = 0; j < 3; j++)
            used += (size_t)snprintf(text + used, 100000 - used,
                                     "{\"id\": \"g%d-%d\", \"prompt\": \"question %d\", "
                                     "\"chosen\": \"answer %d.%d\", \"rejected\": \"wrong %d\"}\n",
                                     g, j, g, g, j, g);
    write_file("groups.jsonl", text);
    free(text);
    btrm_prep_opts o = default_opts();
    o.split = 0.7;
    char valid_path[512];
    snprintf(valid_path, sizeof valid_path, "%s", path_of("valid.h5"));
    o.valid_path = valid_path;
    char *ids_first[2][200];
    size_t n_first[2] = { 0, 0 };
    int deterministic = 1;
    for (int run = 0; run < 2; run++) {
        btrm_prep *p = read_one("groups.jsonl", &o, NULL);
        int64_t nt = 0, nv = 0;
        int rc = p ? btrm_prep_write(p, path_of("train.h5"), &nt, &nv) : -1;
        btrm_prep_free(p);
        if (rc) {
            diag("split: %s", btrm_error_msg());
            deterministic = 0;
            break;
        }
        size_t n[2];
        char **ids[2] = { read_h5_strings(path_of("train.h5"), "/pairs/id", &n[0]),
                          read_h5_strings(path_of("valid.h5"), "/pairs/id", &n[1]) };
        if (run == 0) {
            ok(ids[0] && ids[1] && n[0] + n[1] == 180 && (int64_t)n[0] == nt,
               "split: 180 pairs in all (%zu train, %zu validation)", n[0], n[1]);
            ok(n[0] > 0.5 * 180 && n[0] < 0.9 * 180, "split 0.7: the train side holds "
               "about 70%% of the pairs (%zu)", n[0]);
            /* each group wholly on one side */
            int side_of[60], intact = 1;
            for (int g = 0; g < 60; g++)
                side_of[g] = -1;
            for (int s = 0; s < 2; s++)
                for (size_t i = 0; ids[s] && i < n[s]; i++) {
                    int g = atoi(ids[s][i] + 1);
                    if (side_of[g] >= 0 && side_of[g] != s)
                        intact = 0;
                    side_of[g] = s;
                }
            ok(intact, "split by prompt: no prompt is on both sides");
            /* each file holds only the texts its pairs use */
            size_t n_texts, n_chosen;
            char **texts = read_h5_strings(path_of("valid.h5"), "/texts", &n_texts);
            int64_t *ch = read_h5_i64(path_of("valid.h5"), "/pairs/chosen", &n_chosen);
            int in_range = ch != NULL;
            for (size_t i = 0; ch && i < n_chosen; i++)
                in_range &= ch[i] >= 0 && (size_t)ch[i] < n_texts;
            /* validation: per group one rejected text + 3 chosen texts */
            ok(texts && in_range && n_texts == 4 * (n[1] / 3),
               "the validation file holds exactly its own %zu texts", n_texts);
            ok(h5_has(path_of("valid.h5"), "/features") == 0,
               "a store from prep has no /features");
            btrm_h5_free_strings(texts, n_texts);
            free(ch);
            for (int s = 0; s < 2; s++) {
                for (size_t i = 0; i < n[s]; i++)
                    ids_first[s][i] = strdup(ids[s][i]);
                n_first[s] = n[s];
            }
        } else {
            for (int s = 0; s < 2; s++) {
                deterministic &= n[s] == n_first[s];
                for (size_t i = 0; deterministic && i < n[s]; i++)
                    deterministic &= !strcmp(ids[s][i], ids_first[s][i]);
            }
        }
        for (int s = 0; s < 2; s++)
            btrm_h5_free_strings(ids[s], n[s]);
    }
    ok(deterministic, "split: a second run puts every pair on the same side");
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < n_first[s]; i++)
            free(ids_first[s][i]);

    /* --split-by id hashes ids: groups may be split, and the sides still
     * partition the pairs. */
    o.split_by = BTRM_PREP_SPLIT_ID;
    btrm_prep *p = read_one("groups.jsonl", &o, NULL);
    int split_groups = 0;
    for (int64_t i = 0; p && i + 2 < btrm_prep_n_pairs(p); i += 3) {
        int64_t c, r;
        const char *id, *cat, *sub;
        uint64_t k[3];
        for (int j = 0; j < 3; j++)
            btrm_prep_pair(p, i + j, &c, &r, &id, &cat, &sub, &k[j]);
        int a = btrm_prep_split_train(k[0], 0.7), b = btrm_prep_split_train(k[1], 0.7),
            d = btrm_prep_split_train(k[2], 0.7);
        split_groups += !(a == b && b == d);
    }
    ok(split_groups > 0, "split by id: some prompts land on both sides (%d groups)",
       split_groups);
    btrm_prep_free(p);
}

static void test_dedup_and_margin(void)
{
    write_file("dedup.jsonl",
               "{\"prompt\": \"P\", \"chosen\": \"A\", \"rejected\": \"B\", \"margin\": 2}\n"
               "{\"prompt\": \"P\", \"chosen\": \"A\", \"rejected\": \"C\", \"margin\": 0.5}\n"
               "{\"prompt\": \"Q\", \"chosen\": \"A\", \"rejected\": \"B\", \"margin\": 1}\n");
    btrm_prep_opts o = default_opts();
    btrm_prep *p = read_one("dedup.jsonl", &o, NULL);
    int64_t c0, r0, c1, r1;
    const char *id, *cat, *sub;
    uint64_t k0, k1;
    if (p) {
        btrm_prep_pair(p, 0, &c0, &r0, &id, &cat, &sub, &k0);
        btrm_prep_pair(p, 1, &c1, &r1, &id, &cat, &sub, &k1);
    }
    ok(p && btrm_prep_n_texts(p) == 5 && c0 == c1 && r0 != r1 && k0 == k1,
       "identical rendered texts are stored once (5 texts for 3 pairs, same prompt = same key)");
    int64_t nt, nv;
    ok(p && btrm_prep_write(p, path_of("dedup.h5"), &nt, &nv) == 0 && nt == 3,
       "the deduplicated store is written");
    btrm_prep_free(p);
    ok(h5_has(path_of("dedup.h5"), "/pairs/margin") == 1 &&
           h5_has(path_of("dedup.h5"), "/pairs/category") == 0,
       "margins become /pairs/margin; no categories, no /pairs/category");
}

int main(void)
{
    plan(64);
    btrm_log_init(0, BTRM_LOG_QUIET);
    btrm_h5_quiet();
    snprintf(dir, sizeof dir, "%s/btrm-test-prep.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        skip_all("cannot make a temporary directory");
        return 0;
    }
    test_hh_rule();
    test_shapes();
    test_bad_rows();
    test_templates_and_maps();
    test_split();
    test_dedup_and_margin();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!getenv("KEEP_WORK") && system(cmd) != 0)
        diag("could not remove %s", dir);
    return done_testing();
}
