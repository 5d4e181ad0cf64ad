/* prep.c: preference files into pair stores (see prep.h, docs/data-prep.md).
 *
 * Pipeline per record: bytes (zlib gz* reader, one line or one array element)
 * -> UTF-8 check (utf8proc) -> JSON (jansson) -> prompt + two responses as
 * message lists -> rendered texts (template) -> deduplicated text rows
 * (XXH3-128 + full compare) -> a pair. Bad records are counted by reason and
 * skipped (or fail the run with --strict). */
#include "prep.h"

#include "error.h"
#include "fileutil.h"
#include "log.h"
#include "pairs.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>
#include <xxhash.h>
#include <yaml.h>
#include <zlib.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define HH_HUMAN "\n\nHuman:"
#define HH_ASSISTANT "\n\nAssistant:"
#define SPLIT_SEED 0   /* XXH3-64 seed of the split key */
#define NO_CODE (-1)   /* no category / subset */
#define READ_CHUNK (1 << 20)

static const char *const bad_names[BTRM_PREP_N_BAD] = {
    "not_json",       "invalid_utf8",        "wrong_type",     "missing_field",
    "unknown_role",   "empty_response",      "identical_responses", "truncated_gzip",
};

const char *btrm_prep_bad_name(int reason)
{
    return reason >= 0 && reason < BTRM_PREP_N_BAD ? bad_names[reason] : "?";
}

/* ------------------------------------------------------------------------ */
/* Growable byte buffer */

typedef struct strbuf {
    char *data;
    size_t len, cap;
} strbuf;

static int sb_reserve(strbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return btrm_error_set(BTRM_ENOMEM, "prep: out of memory (%zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return 0;
}

static int sb_append(strbuf *b, const char *s, size_t n)
{
    int rc = sb_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int grow_array(void **items, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t cap_new = *cap ? 2 * *cap : 64;
    while (cap_new < need)
        cap_new *= 2;
    void *p = realloc(*items, cap_new * elem);
    if (!p)
        return btrm_error_set(BTRM_ENOMEM, "prep: out of memory (%zu bytes)", cap_new * elem);
    *items = p;
    *cap = cap_new;
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* Interned strings: rows in first-seen order, found by XXH3-128 with a full
 * compare on a hash hit (so a hash collision can never merge two texts). */

typedef struct strtab {
    char **items;
    size_t *lens;
    XXH128_hash_t *hashes;
    size_t n, cap;
    int64_t *slots; /* open addressing, -1 = empty; a power of two long */
    size_t n_slots;
} strtab;

static int strtab_rehash(strtab *t, size_t n_slots)
{
    int64_t *slots = malloc(n_slots * sizeof *slots);
    if (!slots)
        return btrm_error_set(BTRM_ENOMEM, "prep: out of memory (string index)");
    for (size_t i = 0; i < n_slots; i++)
        slots[i] = -1;
    for (size_t i = 0; i < t->n; i++) {
        size_t s = (size_t)t->hashes[i].low64 & (n_slots - 1);
        while (slots[s] >= 0)
            s = (s + 1) & (n_slots - 1);
        slots[s] = (int64_t)i;
    }
    free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    return 0;
}

/* *row = the row of s (added if new); *added = 1 when it was new. */
static int strtab_intern(strtab *t, const char *s, size_t len, int64_t *row, int *added)
{
    if (2 * (t->n + 1) > t->n_slots) {
        int rc = strtab_rehash(t, t->n_slots ? 2 * t->n_slots : 1024);
        if (rc)
            return rc;
    }
    XXH128_hash_t h = XXH3_128bits(s, len);
    size_t slot = (size_t)h.low64 & (t->n_slots - 1);
    for (; t->slots[slot] >= 0; slot = (slot + 1) & (t->n_slots - 1)) {
        size_t i = (size_t)t->slots[slot];
        if (XXH128_isEqual(t->hashes[i], h) && t->lens[i] == len &&
            memcmp(t->items[i], s, len) == 0) {
            *row = (int64_t)i;
            if (added)
                *added = 0;
            return 0;
        }
    }
    size_t cap = t->cap;
    int rc = grow_array((void **)&t->items, &cap, t->n + 1, sizeof *t->items);
    if (!rc) {
        cap = t->cap;
        rc = grow_array((void **)&t->lens, &cap, t->n + 1, sizeof *t->lens);
    }
    if (!rc) {
        cap = t->cap;
        rc = grow_array((void **)&t->hashes, &cap, t->n + 1, sizeof *t->hashes);
        t->cap = cap;
    }
    if (rc)
        return rc;
    char *copy = dup_n(s, len);
    if (!copy)
        return btrm_error_set(BTRM_ENOMEM, "prep: out of memory (%zu-byte text)", len);
    t->items[t->n] = copy;
    t->lens[t->n] = len;
    t->hashes[t->n] = h;
    t->slots[slot] = (int64_t)t->n;
    *row = (int64_t)t->n++;
    if (added)
        *added = 1;
    return 0;
}

static void strtab_free(strtab *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->items[i]);
    BTRM_FREE(t->items, t->lens, t->hashes, t->slots);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------ */
/* YAML: a flat mapping of strings (templates and category maps) */

typedef int (*yaml_pair_fn)(void *user, const char *key, const char *value, int line,
                            const char *path);

static int yaml_event_error(const char *path, const yaml_event_t *ev, const char *what)
{
    return btrm_error_set(BTRM_ECONFIG, "%s:%zu:%zu: %s", path, ev->start_mark.line + 1,
                          ev->start_mark.column + 1, what);
}

static int load_yaml_mapping(const char *path, yaml_pair_fn fn, void *user)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return btrm_error_set(BTRM_ECONFIG, "cannot open %s: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc = 0, depth = 0, have_event = 0, n_pairs = 0;
    char *key = NULL;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return btrm_error_set(BTRM_ENOMEM, "cannot initialise the YAML parser");
    }
    yaml_parser_set_input_file(&parser, f);
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = btrm_error_set(BTRM_ECONFIG, "%s:%zu:%zu: YAML error: %s", path,
                                parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                parser.problem ? parser.problem : "unknown");
            goto fail;
        }
        have_event = 1;
        if (ev.type == YAML_STREAM_END_EVENT)
            break;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_MAPPING_START_EVENT:
            if (depth++ != 0) {
                rc = yaml_event_error(path, &ev, "expected a flat mapping of strings "
                                                 "(found a nested mapping)");
                goto fail;
            }
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT: {
            if (depth != 1) {
                rc = yaml_event_error(path, &ev, "expected a mapping of strings");
                goto fail;
            }
            const char *text = (const char *)ev.data.scalar.value;
            if (!key) {
                key = strdup(text);
                if (!key) {
                    rc = btrm_error_set(BTRM_ENOMEM, "out of memory reading %s", path);
                    goto fail;
                }
            } else {
                rc = fn(user, key, text, (int)ev.start_mark.line + 1, path);
                free(key);
                key = NULL;
                n_pairs++;
                if (rc)
                    goto fail;
            }
            break;
        }
        default:
            rc = yaml_event_error(path, &ev, "expected a flat mapping of strings "
                                             "(found a sequence, alias or anchor)");
            goto fail;
        }
        yaml_event_delete(&ev);
        have_event = 0;
    }
    if (n_pairs == 0)
        rc = btrm_error_set(BTRM_ECONFIG, "%s: empty mapping", path);
fail:
    if (have_event)
        yaml_event_delete(&ev);
    free(key);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Templates */

static int template_add(btrm_prep_template *t, const char *role, const char *spec,
                        const char *where)
{
    const char *mark = strstr(spec, "{content}");
    if (!mark || strstr(mark + 1, "{content}"))
        return btrm_error_set(BTRM_ECONFIG, "%s: the template of role '%s' must contain "
                              "{content} exactly once", where, role);
    for (int i = 0; i < t->n_roles; i++)
        if (!strcmp(t->role[i], role))
            return btrm_error_set(BTRM_ECONFIG, "%s: role '%s' given twice", where, role);
    if (t->n_roles == BTRM_PREP_MAX_ROLES)
        return btrm_error_set(BTRM_ECONFIG, "%s: more than %d roles", where,
                              BTRM_PREP_MAX_ROLES);
    int i = t->n_roles;
    t->role[i] = strdup(role);
    t->before[i] = dup_n(spec, (size_t)(mark - spec));
    t->after[i] = strdup(mark + strlen("{content}"));
    t->n_roles++;
    if (!t->role[i] || !t->before[i] || !t->after[i])
        return btrm_error_set(BTRM_ENOMEM, "out of memory reading a template");
    return 0;
}

void btrm_prep_template_free(btrm_prep_template *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_roles; i++) {
        free(t->role[i]);
        free(t->before[i]);
        free(t->after[i]);
    }
    memset(t, 0, sizeof *t);
}

int btrm_prep_template_default(btrm_prep_template *t)
{
    memset(t, 0, sizeof *t);
    int rc = template_add(t, "system", "<|system|>\n{content}\n", "built-in template");
    if (!rc)
        rc = template_add(t, "user", "<|user|>\n{content}\n", "built-in template");
    if (!rc)
        rc = template_add(t, "assistant", "<|assistant|>\n{content}\n", "built-in template");
    if (rc)
        btrm_prep_template_free(t);
    return rc;
}

static int template_pair(void *user, const char *key, const char *value, int line,
                         const char *path)
{
    char where[BTRM_PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%d", path, line);
    return template_add(user, key, value, where);
}

int btrm_prep_template_load(btrm_prep_template *t, const char *path)
{
    memset(t, 0, sizeof *t);
    int rc = load_yaml_mapping(path, template_pair, t);
    for (int k = 0; !rc && k < 2; k++) {
        const char *need = k ? "assistant" : "user";
        int found = 0;
        for (int i = 0; i < t->n_roles; i++)
            found |= !strcmp(t->role[i], need);
        if (!found)
            rc = btrm_error_set(BTRM_ECONFIG, "%s: the template needs a '%s' entry", path,
                                need);
    }
    if (rc)
        btrm_prep_template_free(t);
    return rc;
}

static int template_find(const btrm_prep_template *t, const char *role, size_t len)
{
    for (int i = 0; i < t->n_roles; i++)
        if (strlen(t->role[i]) == len && !memcmp(t->role[i], role, len))
            return i;
    return -1;
}

int btrm_prep_template_render_pair(const btrm_prep_template *t, const char *prompt,
                                   const char *response, char **out)
{
    *out = NULL;
    int user = template_find(t, "user", 4), assistant = template_find(t, "assistant", 9);
    if (user < 0 || assistant < 0)
        return btrm_error_set(BTRM_ECONFIG, "the template has no '%s' role",
                              user < 0 ? "user" : "assistant");
    *out = btrm_strdup_printf("%s%s%s%s%s%s", t->before[user], prompt, t->after[user],
                              t->before[assistant], response, t->after[assistant]);
    return *out ? 0 : btrm_error_set(BTRM_ENOMEM, "out of memory rendering a pair");
}

json_t *btrm_prep_template_json(const btrm_prep_template *t)
{
    json_t *obj = json_object();
    for (int i = 0; obj && i < t->n_roles; i++) {
        char *spec = btrm_strdup_printf("%s{content}%s", t->before[i], t->after[i]);
        if (!spec || json_object_set_new(obj, t->role[i], json_string(spec))) {
            free(spec);
            json_decref(obj);
            return NULL;
        }
        free(spec);
    }
    return obj;
}

int btrm_prep_template_from_json(btrm_prep_template *t, const char *json_text,
                                 const char *where)
{
    memset(t, 0, sizeof *t);
    json_t *obj = json_loads(json_text, 0, NULL);
    int rc = json_is_object(obj) ? 0 : btrm_error_set(BTRM_ECONFIG, "%s: the chat template is "
                                                      "not a JSON object", where);
    const char *role;
    json_t *value;
    json_object_foreach(obj, role, value) {
        if (rc)
            break;
        rc = json_is_string(value) ? template_add(t, role, json_string_value(value), where)
                                   : btrm_error_set(BTRM_ECONFIG, "%s: the template of role "
                                                    "'%s' is not a string", where, role);
    }
    json_decref(obj);
    if (rc)
        btrm_prep_template_free(t);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Category maps */

static int category_pair(void *user, const char *key, const char *value, int line,
                         const char *path)
{
    btrm_prep_category_map *m = user;
    if (btrm_prep_category_map_get(m, key))
        return btrm_error_set(BTRM_ECONFIG, "%s:%d: subset '%s' mapped twice", path, line, key);
    if (!value[0])
        return btrm_error_set(BTRM_ECONFIG, "%s:%d: subset '%s' maps to an empty category",
                              path, line, key);
    char **s = realloc(m->subset, (size_t)(m->n + 1) * sizeof *s);
    if (s)
        m->subset = s;
    char **c = realloc(m->category, (size_t)(m->n + 1) * sizeof *c);
    if (c)
        m->category = c;
    if (!s || !c)
        return btrm_error_set(BTRM_ENOMEM, "out of memory reading %s", path);
    m->subset[m->n] = strdup(key);
    m->category[m->n] = strdup(value);
    m->n++;
    if (!m->subset[m->n - 1] || !m->category[m->n - 1])
        return btrm_error_set(BTRM_ENOMEM, "out of memory reading %s", path);
    return 0;
}

int btrm_prep_category_map_load(btrm_prep_category_map *m, const char *path)
{
    memset(m, 0, sizeof *m);
    int rc = load_yaml_mapping(path, category_pair, m);
    if (rc)
        btrm_prep_category_map_free(m);
    return rc;
}

const char *btrm_prep_category_map_get(const btrm_prep_category_map *m, const char *subset)
{
    for (int i = 0; m && i < m->n; i++)
        if (m->subset[i] && !strcmp(m->subset[i], subset))
            return m->category[i];
    return NULL;
}

void btrm_prep_category_map_free(btrm_prep_category_map *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        free(m->subset[i]);
        free(m->category[i]);
    }
    free(m->subset);
    free(m->category);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------ */
/* The HH prefix rule */

size_t btrm_prep_hh_prompt_len(const char *chosen, const char *rejected)
{
    size_t common = 0;
    while (chosen[common] && chosen[common] == rejected[common])
        common++;
    const size_t mlen = strlen(HH_ASSISTANT);
    size_t end = 0;
    for (const char *p = chosen; (p = strstr(p, HH_ASSISTANT)) != NULL; p++) {
        size_t at = (size_t)(p - chosen);
        if (at + mlen > common)
            break;
        end = at + mlen;
    }
    return end;
}

/* ------------------------------------------------------------------------ */
/* Messages of one record: views into the JSON strings or the transcripts. */

typedef struct msg {
    const char *role;
    size_t role_len;
    const char *content;
    size_t len;
} msg;

typedef struct msg_list {
    msg *items;
    size_t n, cap;
} msg_list;

static int msgs_push(msg_list *l, const char *role, size_t role_len, const char *content,
                     size_t len)
{
    int rc = grow_array((void **)&l->items, &l->cap, l->n + 1, sizeof *l->items);
    if (rc)
        return rc;
    l->items[l->n++] = (msg){ role, role_len, content, len };
    return 0;
}

/* Splits an HH transcript piece into turns at "\n\nHuman:" (user) and
 * "\n\nAssistant:" (assistant). Text before the first marker is a turn of
 * first_role, kept when non-empty or when keep_first (then it follows a
 * marker that ended the previous piece). One space after a marker belongs to
 * the marker. */
static int hh_turns(const char *s, size_t len, const char *first_role, int keep_first,
                    msg_list *out)
{
    const char *role = first_role;
    size_t start = 0, pos = 0;
    int first = 1;
    for (;;) {
        const char *h = NULL, *a = NULL;
        /* the next marker at or after pos, within len */
        for (size_t i = pos; i < len && !h && !a; i++) {
            if (s[i] != '\n')
                continue;
            if (len - i >= strlen(HH_HUMAN) && !memcmp(s + i, HH_HUMAN, strlen(HH_HUMAN)))
                h = s + i;
            else if (len - i >= strlen(HH_ASSISTANT) &&
                     !memcmp(s + i, HH_ASSISTANT, strlen(HH_ASSISTANT)))
                a = s + i;
        }
        const char *mark = h ? h : a;
        size_t end = mark ? (size_t)(mark - s) : len;
        const char *content = s + start;
        size_t clen = end - start;
        if ((!first || keep_first) && clen > 0 && content[0] == ' ') {
            content++;
            clen--;
        }
        if (!first || clen > 0 || keep_first) {
            int rc = msgs_push(out, role, strlen(role), content, clen);
            if (rc)
                return rc;
        }
        if (!mark)
            return 0;
        first = 0;
        role = h ? "user" : "assistant";
        start = end + strlen(h ? HH_HUMAN : HH_ASSISTANT);
        pos = start;
    }
}

/* ------------------------------------------------------------------------ */
/* The collection */

typedef struct bad_example {
    char *text[8];
    int n;
} bad_example;

struct btrm_prep {
    btrm_prep_opts opts;
    btrm_prep_template tpl;
    btrm_prep_category_map cmap;
    strtab texts, categories, subsets;
    /* pairs, [n_pairs] each */
    int64_t *chosen, *rejected;
    int32_t *category, *subset;
    float *margin;            /* NaN = none */
    char **ids;
    uint64_t *keys;           /* split keys */
    size_t n_pairs, cap_pairs;
    /* per record scratch */
    msg_list prompt, resp[2];
    int silent_ok;            /* this record's responses may be blank (HH turns) */
    strbuf render[2], prompt_text, line_copy;
    btrm_prep_stats stats;
    bad_example examples[BTRM_PREP_N_BAD];
    char **input_names;
    int n_inputs;
    /* progress */
    double t_start, t_last;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int btrm_prep_init(btrm_prep **out, const btrm_prep_opts *opts)
{
    *out = NULL;
    btrm_prep *p = NULL;
    int rc = BTRM_CALLOC(p, 1);
    if (rc)
        return rc;
    p->opts = *opts;
    if (p->opts.max_examples <= 0)
        p->opts.max_examples = 3;
    if (p->opts.max_examples > 8)
        p->opts.max_examples = 8;
    rc = opts->template_path ? btrm_prep_template_load(&p->tpl, opts->template_path)
                             : btrm_prep_template_default(&p->tpl);
    if (!rc && opts->category_map_path)
        rc = btrm_prep_category_map_load(&p->cmap, opts->category_map_path);
    /* The map's categories come first, in the map's order. */
    for (int i = 0; !rc && i < p->cmap.n; i++) {
        int64_t row;
        rc = strtab_intern(&p->categories, p->cmap.category[i], strlen(p->cmap.category[i]),
                           &row, NULL);
    }
    if (rc) {
        btrm_prep_free(p);
        return rc;
    }
    p->t_start = p->t_last = now_seconds();
    *out = p;
    return 0;
}

void btrm_prep_free(btrm_prep *p)
{
    if (!p)
        return;
    btrm_prep_template_free(&p->tpl);
    btrm_prep_category_map_free(&p->cmap);
    strtab_free(&p->texts);
    strtab_free(&p->categories);
    strtab_free(&p->subsets);
    for (size_t i = 0; i < p->n_pairs; i++)
        free(p->ids[i]);
    BTRM_FREE(p->ids, p->chosen, p->rejected, p->category, p->subset, p->margin, p->keys,
              p->prompt.items, p->resp[0].items, p->resp[1].items, p->render[0].data,
              p->render[1].data, p->prompt_text.data, p->line_copy.data);
    for (int r = 0; r < BTRM_PREP_N_BAD; r++)
        for (int i = 0; i < p->examples[r].n; i++)
            free(p->examples[r].text[i]);
    for (int i = 0; i < p->n_inputs; i++)
        free(p->input_names[i]);
    free(p->input_names);
    free(p);
}

/* Where a record is: for messages and the derived id. */
typedef struct record_loc {
    const char *path;  /* as given on the command line */
    const char *base;  /* its basename */
    long line;         /* 1-based line of the record's first byte */
    long number;       /* JSONL: the line; JSON array: the element, 1-based */
} record_loc;

/* Counts a skipped record; with --strict it is the error. Returns 0 or the
 * strict error. */
static int bad_record(btrm_prep *p, int reason, const record_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad_record(btrm_prep *p, int reason, const record_loc *loc, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    p->stats.bad[reason]++;
    if (p->opts.strict)
        return btrm_error_set(BTRM_EDATA, "%s:%ld: %s: %s (--strict)", loc->path, loc->line,
                              bad_names[reason], detail);
    bad_example *ex = &p->examples[reason];
    if (ex->n < p->opts.max_examples) {
        char text[BTRM_PATH_MAX + 600];
        snprintf(text, sizeof text, "%s:%ld: %s", loc->path, loc->line, detail);
        ex->text[ex->n] = strdup(text);
        if (!ex->text[ex->n])
            return btrm_error_set(BTRM_ENOMEM, "prep: out of memory");
        ex->n++;
    }
    return 0;
}

/* Returns 0 and sets *bad when a bad record was counted (the caller stops
 * working on it), or a hard error. */
#define BAD(reason, ...)                                                         \
    do {                                                                         \
        *bad = 1;                                                                \
        return bad_record(p, (reason), loc, __VA_ARGS__);                        \
    } while (0)

/* A JSON message list into out: [{"role": "...", "content": "..."}, ...]. */
static int json_messages(btrm_prep *p, const json_t *arr, const char *field,
                         const record_loc *loc, msg_list *out, int *bad)
{
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) {
        if (!json_is_object(m))
            BAD(BTRM_PREP_BAD_WRONG_TYPE, "%s[%zu] is not an object", field, i);
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!role || !content)
            BAD(BTRM_PREP_BAD_MISSING_FIELD, "%s[%zu] has no '%s'", field, i,
                role ? "content" : "role");
        if (!json_is_string(role) || !json_is_string(content))
            BAD(BTRM_PREP_BAD_WRONG_TYPE, "%s[%zu].%s is not a string", field, i,
                json_is_string(role) ? "content" : "role");
        int rc = msgs_push(out, json_string_value(role), json_string_length(role),
                           json_string_value(content), json_string_length(content));
        if (rc)
            return rc;
    }
    return 0;
}

static int same_msg(const msg *a, const msg *b)
{
    return a->role_len == b->role_len && a->len == b->len &&
           !memcmp(a->role, b->role, a->role_len) && !memcmp(a->content, b->content, a->len);
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static int all_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_space(s[i]))
            return 0;
    return 1;
}

static int render(btrm_prep *p, const msg_list *l, strbuf *out, const record_loc *loc,
                  const char *side, int *bad)
{
    for (size_t i = 0; i < l->n; i++) {
        const msg *m = &l->items[i];
        int r = template_find(&p->tpl, m->role, m->role_len);
        if (r < 0)
            BAD(BTRM_PREP_BAD_UNKNOWN_ROLE, "%s: role '%.*s' is not in the template", side,
                (int)(m->role_len > 64 ? 64 : m->role_len), m->role);
        int rc = sb_append(out, p->tpl.before[r], strlen(p->tpl.before[r]));
        if (!rc)
            rc = sb_append(out, m->content, m->len);
        if (!rc)
            rc = sb_append(out, p->tpl.after[r], strlen(p->tpl.after[r]));
        if (rc)
            return rc;
    }
    return 0;
}

static const char *json_kind(const json_t *v)
{
    return json_is_string(v) ? "a string" : json_is_array(v) ? "a list" : "another type";
}

/* The prompt and responses of rec in p->prompt and p->resp[0..1]. */
static int record_messages(btrm_prep *p, const json_t *rec, const record_loc *loc, int *bad)
{
    static const char *const sides[2] = { "chosen", "rejected" };
    const json_t *side[2] = { json_object_get(rec, "chosen"), json_object_get(rec, "rejected") };
    const json_t *prompt = json_object_get(rec, "prompt");
    if (json_is_null(prompt))
        prompt = NULL;
    for (int s = 0; s < 2; s++)
        if (!side[s] || json_is_null(side[s]))
            BAD(BTRM_PREP_BAD_MISSING_FIELD, "no '%s' field", sides[s]);
    int format = p->opts.format;
    if (format == BTRM_PREP_AUTO) {
        if (json_is_string(side[0]) && json_is_string(side[1]) && !prompt)
            format = BTRM_PREP_HH;
        else if (!prompt && !(json_is_array(side[0]) && json_is_array(side[1])))
            BAD(BTRM_PREP_BAD_WRONG_TYPE, "chosen and rejected must both be strings or both "
                "message lists (found %s and %s)", json_kind(side[0]), json_kind(side[1]));
    }
    int rc = 0;
    if (format == BTRM_PREP_HH) {
        for (int s = 0; s < 2; s++)
            if (!json_is_string(side[s]))
                BAD(BTRM_PREP_BAD_WRONG_TYPE, "'%s' must be a transcript string (--format hh)",
                    sides[s]);
        const char *c = json_string_value(side[0]), *r = json_string_value(side[1]);
        size_t plen = btrm_prep_hh_prompt_len(c, r);
        /* The response starts with its own assistant turn, which the raters
         * saw even when it is blank ("say nothing" is a real answer). */
        p->silent_ok = plen > 0;
        if (plen > 0)
            rc = hh_turns(c, plen - strlen(HH_ASSISTANT), "user", 0, &p->prompt);
        for (int s = 0; !rc && s < 2; s++) {
            const char *t = s ? r : c;
            size_t tlen = json_string_length(side[s]);
            rc = hh_turns(t + plen, tlen - plen, "assistant", plen > 0, &p->resp[s]);
        }
        return rc;
    }
    if (format == BTRM_PREP_PROMPT) {
        if (!prompt)
            BAD(BTRM_PREP_BAD_MISSING_FIELD, "no 'prompt' field (--format prompt)");
        if (!json_is_string(prompt))
            BAD(BTRM_PREP_BAD_WRONG_TYPE, "'prompt' must be a string (--format prompt)");
    }
    /* prompt (string or messages) + responses (strings or messages). With a
     * prompt, a blank response still renders to a distinct text (the prompt and
     * an empty assistant turn) and is a real answer a rater compared: kept. */
    if (prompt && json_is_string(prompt))
        rc = msgs_push(&p->prompt, "user", 4, json_string_value(prompt),
                       json_string_length(prompt));
    else if (prompt && json_is_array(prompt))
        rc = json_messages(p, prompt, "prompt", loc, &p->prompt, bad);
    else if (prompt)
        BAD(BTRM_PREP_BAD_WRONG_TYPE, "'prompt' must be a string or a message list");
    if (rc || *bad)
        return rc;
    p->silent_ok = p->prompt.n > 0;
    for (int s = 0; s < 2; s++) {
        if (json_is_string(side[s]) && format != BTRM_PREP_MESSAGES)
            rc = msgs_push(&p->resp[s], "assistant", 9, json_string_value(side[s]),
                           json_string_length(side[s]));
        else if (json_is_array(side[s]) && format != BTRM_PREP_PROMPT)
            rc = json_messages(p, side[s], sides[s], loc, &p->resp[s], bad);
        else
            BAD(BTRM_PREP_BAD_WRONG_TYPE, "'%s' must be %s", sides[s],
                format == BTRM_PREP_MESSAGES ? "a message list (--format messages)"
                : format == BTRM_PREP_PROMPT ? "a string (--format prompt)"
                                             : "a string or a message list");
        if (rc || *bad)
            return rc;
    }
    if (prompt) {
        /* Lists that repeat the prompt (UltraFeedback style) drop it. */
        for (int s = 0; s < 2; s++) {
            msg_list *l = &p->resp[s];
            size_t k = 0;
            while (k < p->prompt.n && k < l->n && same_msg(&p->prompt.items[k], &l->items[k]))
                k++;
            if (k == p->prompt.n && k > 0) {
                memmove(l->items, l->items + k, (l->n - k) * sizeof *l->items);
                l->n -= k;
            }
        }
    } else if (json_is_array(side[0]) && json_is_array(side[1])) {
        /* The prompt is the longest common prefix of the two lists, leaving
         * at least one message on each side. */
        msg_list *c = &p->resp[0], *r = &p->resp[1];
        size_t k = 0;
        while (k + 1 < c->n && k + 1 < r->n && same_msg(&c->items[k], &r->items[k]))
            k++;
        for (size_t i = 0; i < k; i++) {
            rc = msgs_push(&p->prompt, c->items[i].role, c->items[i].role_len,
                           c->items[i].content, c->items[i].len);
            if (rc)
                return rc;
        }
        memmove(c->items, c->items + k, (c->n - k) * sizeof *c->items);
        c->n -= k;
        memmove(r->items, r->items + k, (r->n - k) * sizeof *r->items);
        r->n -= k;
    }
    return 0;
}

/* A string field that may be absent; integers are printed. */
static int optional_string(btrm_prep *p, const json_t *rec, const char *field,
                           const record_loc *loc, char *buf, size_t size, const char **out,
                           int *bad)
{
    *out = NULL;
    const json_t *v = json_object_get(rec, field);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        *out = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = buf;
    } else {
        BAD(BTRM_PREP_BAD_WRONG_TYPE, "'%s' must be a string", field);
    }
    return 0;
}

/* margin, or score_chosen - score_rejected; NaN when absent. */
static int record_margin(btrm_prep *p, const json_t *rec, const record_loc *loc, float *out,
                         int *bad)
{
    *out = NAN;
    const json_t *m = json_object_get(rec, "margin");
    const json_t *sc = json_object_get(rec, "score_chosen");
    const json_t *sr = json_object_get(rec, "score_rejected");
    if (m && !json_is_null(m)) {
        if (!json_is_number(m))
            BAD(BTRM_PREP_BAD_WRONG_TYPE, "'margin' must be a number");
        *out = (float)json_number_value(m);
    } else if (sc && sr && !json_is_null(sc) && !json_is_null(sr)) {
        if (!json_is_number(sc) || !json_is_number(sr))
            BAD(BTRM_PREP_BAD_WRONG_TYPE, "'score_chosen' and 'score_rejected' must be numbers");
        *out = (float)(json_number_value(sc) - json_number_value(sr));
    }
    if (!isnan(*out) && !isfinite(*out))
        BAD(BTRM_PREP_BAD_WRONG_TYPE, "the margin is not finite");
    return 0;
}

static int add_pair(btrm_prep *p, int64_t chosen, int64_t rejected, const char *id,
                    int32_t category, int32_t subset, float margin, uint64_t key)
{
    size_t need = p->n_pairs + 1, cap;
    int rc = 0;
#define GROW(arr) \
    if (!rc) { cap = p->cap_pairs; rc = grow_array((void **)&p->arr, &cap, need, sizeof *p->arr); }
    GROW(chosen) GROW(rejected) GROW(category) GROW(subset) GROW(margin) GROW(ids) GROW(keys)
#undef GROW
    if (rc)
        return rc;
    p->cap_pairs = cap;
    size_t i = p->n_pairs;
    p->ids[i] = strdup(id);
    if (!p->ids[i])
        return btrm_error_set(BTRM_ENOMEM, "prep: out of memory");
    p->chosen[i] = chosen;
    p->rejected[i] = rejected;
    p->category[i] = category;
    p->subset[i] = subset;
    p->margin[i] = margin;
    p->keys[i] = key;
    p->n_pairs++;
    return 0;
}

static int intern_code(strtab *t, const char *name, int32_t *code)
{
    *code = NO_CODE;
    if (!name)
        return 0;
    int64_t row;
    int rc = strtab_intern(t, name, strlen(name), &row, NULL);
    if (rc)
        return rc;
    if (row > INT32_MAX)
        return btrm_error_set(BTRM_EDATA, "prep: more than 2^31 category or subset names");
    *code = (int32_t)row;
    return 0;
}

/* One parsed JSON record. */
static int add_record(btrm_prep *p, const json_t *rec, const record_loc *loc)
{
    int bad = 0, rc = 0;
    p->prompt.n = p->resp[0].n = p->resp[1].n = 0;
    p->silent_ok = 0;
    if (!json_is_object(rec))
        return bad_record(p, BTRM_PREP_BAD_WRONG_TYPE, loc, "the record is not a JSON object");
    rc = record_messages(p, rec, loc, &bad);
    if (rc || bad)
        return rc;
    for (int s = 0; s < 2; s++) {
        int empty = !(p->silent_ok && p->resp[s].n > 0);
        for (size_t i = 0; i < p->resp[s].n && empty; i++)
            empty = all_space(p->resp[s].items[i].content, p->resp[s].items[i].len);
        if (empty)
            return bad_record(p, BTRM_PREP_BAD_EMPTY_RESPONSE, loc, "the %s response is empty",
                              s ? "rejected" : "chosen");
    }
    char id_buf[64], subset_buf[64], category_buf[64];
    const char *id = NULL, *subset = NULL, *category = NULL;
    float margin;
    rc = optional_string(p, rec, "id", loc, id_buf, sizeof id_buf, &id, &bad);
    if (!rc && !bad)
        rc = optional_string(p, rec, "subset", loc, subset_buf, sizeof subset_buf, &subset, &bad);
    if (!rc && !bad)
        rc = optional_string(p, rec, "category", loc, category_buf, sizeof category_buf,
                             &category, &bad);
    if (!rc && !bad)
        rc = record_margin(p, rec, loc, &margin, &bad);
    if (rc || bad)
        return rc;
    /* render: prompt, then each response */
    p->prompt_text.len = 0;
    rc = sb_append(&p->prompt_text, "", 0);
    if (!rc)
        rc = render(p, &p->prompt, &p->prompt_text, loc, "prompt", &bad);
    for (int s = 0; !rc && !bad && s < 2; s++) {
        p->render[s].len = 0;
        rc = sb_append(&p->render[s], p->prompt_text.data, p->prompt_text.len);
        if (!rc)
            rc = render(p, &p->resp[s], &p->render[s], loc, s ? "rejected" : "chosen", &bad);
    }
    if (rc || bad)
        return rc;
    if (p->render[0].len == p->render[1].len &&
        !memcmp(p->render[0].data, p->render[1].data, p->render[0].len))
        return bad_record(p, BTRM_PREP_BAD_IDENTICAL, loc,
                          "chosen and rejected are the same text");
    /* the pair */
    if (subset) {
        const char *mapped = btrm_prep_category_map_get(&p->cmap, subset);
        if (mapped)
            category = mapped;
    }
    char derived_id[BTRM_PATH_MAX + 32];
    if (!id) {
        snprintf(derived_id, sizeof derived_id, "%s:%ld", loc->base, loc->number);
        id = derived_id;
    }
    uint64_t key = p->opts.split_by == BTRM_PREP_SPLIT_ID
                       ? XXH3_64bits_withSeed(id, strlen(id), SPLIT_SEED)
                       : XXH3_64bits_withSeed(p->prompt_text.data, p->prompt_text.len,
                                              SPLIT_SEED);
    int64_t rows[2];
    int32_t category_code, subset_code;
    for (int s = 0; !rc && s < 2; s++)
        rc = strtab_intern(&p->texts, p->render[s].data, p->render[s].len, &rows[s], NULL);
    if (!rc)
        rc = intern_code(&p->categories, category, &category_code);
    if (!rc)
        rc = intern_code(&p->subsets, subset, &subset_code);
    if (!rc)
        rc = add_pair(p, rows[0], rows[1], id, category_code, subset_code, margin, key);
    return rc;
}
#undef BAD

/* ------------------------------------------------------------------------ */
/* Reading files */

/* The first invalid UTF-8 byte of s[0..n), or n when it is all valid. */
static size_t utf8_check(const char *s, size_t n)
{
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k < 0)
            return i;
        i += (size_t)k;
    }
    return n;
}

typedef struct reader {
    const char *path;
    gzFile gz;
    int is_gzip;
    char *buf;
    size_t cap, len, pos;
    size_t chunk;        /* bytes per read: 64 KiB, doubling to READ_CHUNK */
    int filled;          /* the last read got all it asked for */
    int eof;             /* no more bytes */
    char error[256];     /* set when the stream ended badly */
} reader;

static int reader_open(reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    FILE *f = fopen(path, "rb");
    if (!f)
        return btrm_error_set(BTRM_EIO, "cannot open %s: %s", path, strerror(errno));
    unsigned char magic[2] = { 0, 0 };
    size_t got = fread(magic, 1, 2, f);
    fclose(f);
    r->is_gzip = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    /* gz* reads plain files unchanged too (transparent mode). */
    r->gz = gzopen(path, "rb");
    if (!r->gz)
        return btrm_error_set(BTRM_EIO, "cannot open %s: %s", path,
                              errno ? strerror(errno) : "zlib out of memory");
    gzbuffer(r->gz, 1 << 17);
    return 0;
}

static void reader_close(reader *r)
{
    if (r->gz)
        gzclose(r->gz);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* Appends more bytes to buf (dropping consumed ones first). 0 or error. */
static int reader_fill(reader *r, btrm_prep_stats *stats)
{
    if (r->eof)
        return 0;
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    /* small files get a small buffer; large ones reach READ_CHUNK reads: the
     * chunk doubles after each read that filled it, and the buffer grows
     * only when less than half a chunk is free */
    if (r->chunk == 0)
        r->chunk = READ_CHUNK / 16;
    else if (r->filled && r->chunk < READ_CHUNK)
        r->chunk *= 2;
    if (r->cap - r->len < r->chunk / 2 + 1) {
        int rc = grow_array((void **)&r->buf, &r->cap, r->len + r->chunk, 1);
        if (rc)
            return rc;
    }
    size_t room = r->cap - r->len - 1;
    unsigned ask = room < READ_CHUNK ? (unsigned)room : READ_CHUNK;
    int n = gzread(r->gz, r->buf + r->len, ask);
    r->filled = n > 0 && (unsigned)n == ask;
    if (n > 0) {
        r->len += (size_t)n;
        stats->bytes += n;
    } else {
        int errnum = Z_OK;
        const char *msg = gzerror(r->gz, &errnum);
        if (n < 0 || errnum != Z_OK)
            snprintf(r->error, sizeof r->error, "%s",
                     errnum == Z_ERRNO ? strerror(errno) : msg ? msg : "read error");
        if (errnum == Z_ERRNO)
            return btrm_error_set(BTRM_EIO, "cannot read %s: %s", r->path, strerror(errno));
        r->eof = 1;
    }
    r->buf[r->len] = '\0';
    return 0;
}

static void progress(btrm_prep *p, const char *path, int force)
{
    double t = now_seconds();
    double every = btrm_log_is_tty() ? 0.5 : 10.0;
    if (!force && t - p->t_last < every)
        return;
    p->t_last = t;
    double dt = t - p->t_start;
    btrm_log_progress("prep: %s: %lld records, %lld pairs, %.0f records/s", path,
                      (long long)p->stats.records, (long long)p->n_pairs,
                      dt > 0 ? (double)p->stats.records / dt : 0.0);
}

/* Parses one record's bytes (s[0..n), with s[n] writable) and adds it. */
static int parse_record(btrm_prep *p, char *s, size_t n, const record_loc *loc)
{
    p->stats.records++;
    size_t bad_at = utf8_check(s, n);
    if (bad_at < n)
        return bad_record(p, BTRM_PREP_BAD_INVALID_UTF8, loc, "invalid UTF-8 at byte %zu",
                          bad_at + 1);
    json_error_t err;
    json_t *rec = json_loadb(s, n, JSON_DECODE_ANY, &err);
    if (!rec)
        return bad_record(p, BTRM_PREP_BAD_NOT_JSON, loc, "%s (column %d)", err.text,
                          err.column);
    int rc = add_record(p, rec, loc);
    json_decref(rec);
    return rc;
}

static int read_jsonl(btrm_prep *p, reader *r, record_loc *loc)
{
    long line = 0;
    for (;;) {
        char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        if (!nl && !r->eof) {
            int rc = reader_fill(r, &p->stats);
            if (rc)
                return rc;
            continue;
        }
        if (!nl && r->pos == r->len)
            break;
        if (!nl && r->error[0])
            break; /* an incomplete last line: counted below */
        size_t end = nl ? (size_t)(nl - r->buf) : r->len;
        char *s = r->buf + r->pos;
        size_t n = end - r->pos;
        r->pos = nl ? end + 1 : r->len;
        loc->line = loc->number = ++line;
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (all_space(s, n))
            continue;
        s[n] = '\0';
        int rc = parse_record(p, s, n, loc);
        if (rc)
            return rc;
        progress(p, r->path, 0);
    }
    if (!r->error[0])
        return 0;
    loc->line = loc->number = line + 1;
    p->stats.records++;
    return bad_record(p, BTRM_PREP_BAD_TRUNCATED_GZIP, loc,
                      "the gzip stream is truncated or corrupt (%s); the rest of the file "
                      "is lost", r->error);
}

static long count_lines(const char *s, size_t from, size_t to)
{
    long n = 0;
    for (size_t i = from; i < to; i++)
        n += s[i] == '\n';
    return n;
}

static size_t skip_space(const char *s, size_t i, size_t n)
{
    while (i < n && is_space(s[i]))
        i++;
    return i;
}

/* A JSON array of records, parsed one element at a time so that each has a
 * line and a bad element is skipped. Bytes that are not UTF-8 are replaced by
 * '?' before parsing (structure is ASCII, so this keeps the elements'
 * boundaries) and the elements that held them are counted as invalid_utf8. */
static int read_json_array(btrm_prep *p, reader *r, record_loc *loc)
{
    int rc = 0;
    while (!r->eof && !rc)
        rc = reader_fill(r, &p->stats);
    if (rc)
        return rc;
    char *s = r->buf + r->pos;
    size_t n = r->len - r->pos;
    size_t *invalid = NULL, n_invalid = 0, cap_invalid = 0;
    for (size_t i = 0; i < n;) {
        size_t at = i + utf8_check(s + i, n - i);
        if (at >= n)
            break;
        rc = grow_array((void **)&invalid, &cap_invalid, n_invalid + 1, sizeof *invalid);
        if (rc)
            return rc;
        invalid[n_invalid++] = at;
        s[at] = '?';
        i = at + 1;
    }
    long line = 1;
    size_t i = skip_space(s, 0, n), counted = 0, next_invalid = 0;
    line += count_lines(s, counted, i);
    counted = i;
    i++; /* '[' */
    long element = 0;
    for (;;) {
        i = skip_space(s, i, n);
        if (i < n && s[i] == ']' && element == 0)
            break;
        line += count_lines(s, counted, i);
        counted = i;
        loc->line = line;
        loc->number = ++element;
        if (i >= n) {
            p->stats.records++;
            if (r->error[0])
                rc = bad_record(p, BTRM_PREP_BAD_TRUNCATED_GZIP, loc,
                                "the gzip stream is truncated or corrupt (%s); the rest of "
                                "the file is lost", r->error);
            else
                rc = bad_record(p, BTRM_PREP_BAD_NOT_JSON, loc,
                                "the JSON array ends early (no closing ']')");
            break;
        }
        json_error_t err;
        json_t *rec = json_loadb(s + i, n - i, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &err);
        p->stats.records++;
        if (!rec) {
            int reason = r->error[0] ? BTRM_PREP_BAD_TRUNCATED_GZIP : BTRM_PREP_BAD_NOT_JSON;
            rc = bad_record(p, reason, loc, "%s (line %d, column %d); the rest of "
                            "the array cannot be located and is skipped", err.text,
                            err.line > 0 ? (int)(line + err.line - 1) : (int)line, err.column);
            break;
        }
        size_t end = i + (size_t)err.position;
        while (next_invalid < n_invalid && invalid[next_invalid] < i)
            next_invalid++;
        if (next_invalid < n_invalid && invalid[next_invalid] < end)
            rc = bad_record(p, BTRM_PREP_BAD_INVALID_UTF8, loc, "invalid UTF-8 at byte %zu "
                            "of the element", invalid[next_invalid] - i + 1);
        else
            rc = add_record(p, rec, loc);
        json_decref(rec);
        if (rc)
            break;
        progress(p, r->path, 0);
        i = skip_space(s, end, n);
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == ']')
            break;
        line += count_lines(s, counted, i);
        counted = i;
        loc->line = line;
        p->stats.records++;
        if (i >= n && r->error[0])
            rc = bad_record(p, BTRM_PREP_BAD_TRUNCATED_GZIP, loc,
                            "the gzip stream is truncated or corrupt (%s); the rest of the "
                            "file is lost", r->error);
        else
            rc = bad_record(p, BTRM_PREP_BAD_NOT_JSON, loc,
                            "expected ',' or ']' after array element %ld; the rest of the "
                            "array is skipped", element);
        break;
    }
    free(invalid);
    return rc;
}

int btrm_prep_read_file(btrm_prep *p, const char *path)
{
    reader r;
    int rc = reader_open(&r, path);
    if (rc) {
        reader_close(&r);
        return rc;
    }
    char **names = realloc(p->input_names, (size_t)(p->n_inputs + 1) * sizeof *names);
    if (!names) {
        reader_close(&r);
        return btrm_error_set(BTRM_ENOMEM, "prep: out of memory");
    }
    p->input_names = names;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    p->input_names[p->n_inputs] = strdup(base);
    if (!p->input_names[p->n_inputs++]) {
        reader_close(&r);
        return btrm_error_set(BTRM_ENOMEM, "prep: out of memory");
    }
    record_loc loc = { .path = path, .base = base, .line = 0, .number = 0 };
    int64_t records_before = p->stats.records, pairs_before = (int64_t)p->n_pairs;
    /* Detect JSON array vs JSONL from the first non-space byte (after an
     * optional UTF-8 byte order mark). */
    size_t i = 0;
    int bom_checked = 0;
    for (;;) {
        if (!bom_checked && (r.len >= 3 || r.eof)) {
            bom_checked = 1;
            if (r.len >= 3 && !memcmp(r.buf, "\xEF\xBB\xBF", 3))
                r.pos = 3;
        }
        i = skip_space(r.buf, r.pos, r.len);
        if (i < r.len || r.eof)
            break;
        rc = reader_fill(&r, &p->stats);
        if (rc)
            goto out;
    }
    int is_array = i < r.len && r.buf[i] == '[';
    if (is_array)
        rc = read_json_array(p, &r, &loc);
    else
        rc = read_jsonl(p, &r, &loc);
    if (rc)
        goto out;
    progress(p, path, 1);
    btrm_log_progress_end();
    btrm_log_info("prep: %s: %lld records (%s %s), %lld pairs kept", path,
                  (long long)(p->stats.records - records_before), r.is_gzip ? "gzip" : "plain",
                  is_array ? "JSON array" : "JSONL",
                  (long long)((int64_t)p->n_pairs - pairs_before));
    if (p->stats.records == records_before)
        btrm_log_warn("prep: %s holds no records", path);
out:
    reader_close(&r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Results */

void btrm_prep_get_stats(const btrm_prep *p, btrm_prep_stats *stats)
{
    *stats = p->stats;
    stats->pairs = (int64_t)p->n_pairs;
    stats->texts = (int64_t)p->texts.n;
}

const char *const *btrm_prep_examples(const btrm_prep *p, int reason, int *n)
{
    *n = p->examples[reason].n;
    return (const char *const *)p->examples[reason].text;
}

int64_t btrm_prep_n_pairs(const btrm_prep *p) { return (int64_t)p->n_pairs; }
int64_t btrm_prep_n_texts(const btrm_prep *p) { return (int64_t)p->texts.n; }
const char *btrm_prep_text(const btrm_prep *p, int64_t row) { return p->texts.items[row]; }

void btrm_prep_pair(const btrm_prep *p, int64_t i, int64_t *chosen, int64_t *rejected,
                    const char **id, const char **category, const char **subset,
                    uint64_t *split_key)
{
    *chosen = p->chosen[i];
    *rejected = p->rejected[i];
    *id = p->ids[i];
    *category = p->category[i] >= 0 ? p->categories.items[p->category[i]] : NULL;
    *subset = p->subset[i] >= 0 ? p->subsets.items[p->subset[i]] : NULL;
    *split_key = p->keys[i];
}

int btrm_prep_split_train(uint64_t key, double split)
{
    /* u = the top 53 bits of the key as a fraction in [0, 1) */
    double u = (double)(key >> 11) * 0x1.0p-53;
    return u < split;
}

/* ------------------------------------------------------------------------ */
/* Writing */

/* Codes of a column, compacted to the names that `side` uses (keeping the
 * table's order); "none" stands for pairs without a name. Returns 0 and sets
 * *n_names = 0 when no pair of the side has a name. */
static int compact_names(const int32_t *codes, const size_t *sel, size_t n_sel,
                         const strtab *t, int32_t *out_codes, const char ***out_names,
                         int *n_names)
{
    int32_t *map = NULL;
    const char **names = NULL;
    int rc = BTRM_MALLOC(map, t->n + 1);
    if (!rc)
        rc = BTRM_MALLOC(names, t->n + 1);
    if (rc)
        goto fail;
    int any = 0, none = 0, n = 0;
    for (size_t k = 0; k < t->n + 1; k++)
        map[k] = -1;
    for (size_t k = 0; k < n_sel; k++) {
        if (codes[sel[k]] >= 0)
            map[codes[sel[k]]] = 0, any = 1;
        else
            none = 1;
    }
    if (!any) {
        *n_names = 0;
        goto fail; /* rc == 0: no column */
    }
    for (size_t k = 0; k < t->n; k++)
        if (map[k] == 0) {
            map[k] = n;
            names[n++] = t->items[k];
        }
    int32_t none_code = -1;
    if (none) {
        /* "none" may already be a real name */
        for (int k = 0; k < n && none_code < 0; k++)
            if (!strcmp(names[k], "none"))
                none_code = k;
        if (none_code < 0) {
            none_code = n;
            names[n++] = "none";
        }
    }
    for (size_t k = 0; k < n_sel; k++)
        out_codes[k] = codes[sel[k]] >= 0 ? map[codes[sel[k]]] : none_code;
    *out_names = names;
    *n_names = n;
    names = NULL;
fail:
    free(map);
    free(names);
    return rc;
}

static char *provenance(const btrm_prep *p, const char *side)
{
    json_t *j = json_object();
    json_t *inputs = json_array();
    for (int i = 0; i < p->n_inputs; i++)
        json_array_append_new(inputs, json_string(p->input_names[i]));
    static const char *const formats[] = { "auto", "hh", "prompt", "messages" };
    json_object_set_new(j, "tool", json_string("btrm prep " PACKAGE_VERSION));
    json_object_set_new(j, "inputs", inputs);
    json_object_set_new(j, "format", json_string(formats[p->opts.format & 3]));
    json_object_set_new(j, "template", json_string(p->opts.template_path
                                                       ? p->opts.template_path : "built-in"));
    json_object_set_new(j, "chat_template", btrm_prep_template_json(&p->tpl));
    if (p->opts.category_map_path)
        json_object_set_new(j, "category_map", json_string(p->opts.category_map_path));
    if (p->opts.valid_path) {
        json_object_set_new(j, "split", json_real(p->opts.split));
        json_object_set_new(j, "split_by", json_string(p->opts.split_by == BTRM_PREP_SPLIT_ID
                                                           ? "id" : "prompt"));
        json_object_set_new(j, "side", json_string(side));
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(j);
    return text;
}

/* Writes the pairs sel[0..n_sel) and the texts they use to path. */
static int write_side(const btrm_prep *p, const char *path, const size_t *sel, size_t n_sel,
                      const char *side, int64_t *n_texts_out)
{
    int64_t *row_map = NULL, *chosen = NULL, *rejected = NULL;
    const char **texts = NULL, **ids = NULL, **cat_names = NULL, **sub_names = NULL;
    int32_t *cat = NULL, *sub = NULL;
    float *margin = NULL;
    char *prov = NULL;
    int n_cat = 0, n_sub = 0, n_margin = 0;
    int rc = BTRM_MALLOC(row_map, p->texts.n + 1);
    if (!rc) rc = BTRM_MALLOC(texts, p->texts.n + 1);
    if (!rc) rc = BTRM_MALLOC(chosen, n_sel);
    if (!rc) rc = BTRM_MALLOC(rejected, n_sel);
    if (!rc) rc = BTRM_MALLOC(ids, n_sel);
    if (!rc) rc = BTRM_MALLOC(cat, n_sel);
    if (!rc) rc = BTRM_MALLOC(sub, n_sel);
    if (!rc) rc = BTRM_MALLOC(margin, n_sel);
    if (rc)
        goto fail;
    /* Rows in order of first use by the side's pairs. */
    int64_t n_rows = 0;
    for (size_t k = 0; k < p->texts.n; k++)
        row_map[k] = -1;
    for (size_t k = 0; k < n_sel; k++) {
        size_t i = sel[k];
        int64_t *dst[2] = { &chosen[k], &rejected[k] };
        int64_t src[2] = { p->chosen[i], p->rejected[i] };
        for (int s = 0; s < 2; s++) {
            if (row_map[src[s]] < 0) {
                row_map[src[s]] = n_rows;
                texts[n_rows++] = p->texts.items[src[s]];
            }
            *dst[s] = row_map[src[s]];
        }
        ids[k] = p->ids[i];
        margin[k] = p->margin[i];
        n_margin += !isnan(p->margin[i]);
    }
    rc = compact_names(p->category, sel, n_sel, &p->categories, cat, &cat_names, &n_cat);
    if (!rc)
        rc = compact_names(p->subset, sel, n_sel, &p->subsets, sub, &sub_names, &n_sub);
    if (rc)
        goto fail;
    if (n_margin > 0 && (size_t)n_margin < n_sel)
        btrm_log_warn("prep: %s: only %d of %zu pairs have a margin (margin or "
                      "score_chosen/score_rejected); /pairs/margin is not written",
                      path, n_margin, n_sel);
    prov = provenance(p, side);
    btrm_pairs_data d = {
        .n_pairs = (int64_t)n_sel,
        .n_rows = n_rows,
        .texts = texts,
        .chosen = chosen,
        .rejected = rejected,
        .category = n_cat ? cat : NULL,
        .categories = cat_names,
        .n_categories = n_cat,
        .subset = n_sub ? sub : NULL,
        .subsets = sub_names,
        .n_subsets = n_sub,
        .margin = (size_t)n_margin == n_sel ? margin : NULL,
        .ids = ids,
        .provenance = prov,
    };
    rc = btrm_pairs_write(path, &d);
    if (!rc)
        *n_texts_out = n_rows;
fail:
    BTRM_FREE(prov, row_map, texts, chosen, rejected, ids, cat, sub, margin, cat_names,
              sub_names);
    return rc;
}

int btrm_prep_write(btrm_prep *p, const char *out_path, int64_t *n_train, int64_t *n_valid)
{
    size_t *train = NULL, *valid = NULL, n_t = 0, n_v = 0;
    char tmp_out[BTRM_PATH_MAX + 64] = "", tmp_valid[BTRM_PATH_MAX + 64] = "";
    int64_t texts_t = 0, texts_v = 0;
    *n_train = *n_valid = 0;
    if (p->n_pairs == 0)
        return btrm_error_set(BTRM_EDATA, "no usable pairs: nothing to write to %s", out_path);
    int rc = BTRM_MALLOC(train, p->n_pairs);
    if (!rc)
        rc = BTRM_MALLOC(valid, p->n_pairs);
    if (rc)
        goto fail;
    for (size_t i = 0; i < p->n_pairs; i++) {
        if (!p->opts.valid_path || btrm_prep_split_train(p->keys[i], p->opts.split))
            train[n_t++] = i;
        else
            valid[n_v++] = i;
    }
    if (!p->opts.valid_path) {
        rc = write_side(p, out_path, train, n_t, "all", &texts_t);
        if (rc)
            goto fail;
        btrm_log_info("prep: wrote %s: %zu pairs, %lld texts", out_path, n_t,
                      (long long)texts_t);
        *n_train = (int64_t)n_t;
        goto fail; /* rc == 0: cleanup */
    }
    if (n_t == 0 || n_v == 0) {
        rc = btrm_error_set(BTRM_EDATA, "--split %g by %s leaves no pairs on the %s side "
                            "(%zu pairs in all): change --split", p->opts.split,
                            p->opts.split_by == BTRM_PREP_SPLIT_ID ? "id" : "prompt",
                            n_t ? "validation" : "train", p->n_pairs);
        goto fail;
    }
    /* Both files are written under temporary names first, then renamed, so a
     * failure leaves neither. */
    btrm_tmp_path(out_path, tmp_out, sizeof tmp_out);
    btrm_tmp_path(p->opts.valid_path, tmp_valid, sizeof tmp_valid);
    if (!strcmp(tmp_out, tmp_valid)) {
        rc = btrm_error_set(BTRM_EUSAGE, "the output and --valid-out are the same file (%s)",
                            out_path);
        tmp_out[0] = tmp_valid[0] = '\0';
        goto fail;
    }
    if (strlen(tmp_out) + 6 > sizeof tmp_out || strlen(tmp_valid) + 6 > sizeof tmp_valid) {
        rc = btrm_error_set(BTRM_EUSAGE, "output file names too long");
        tmp_out[0] = tmp_valid[0] = '\0';
        goto fail;
    }
    strcat(tmp_out, ".prep");
    strcat(tmp_valid, ".prep");
    rc = write_side(p, tmp_out, train, n_t, "train", &texts_t);
    if (!rc)
        rc = write_side(p, tmp_valid, valid, n_v, "valid", &texts_v);
    if (rc)
        goto fail;
    if (rename(tmp_valid, p->opts.valid_path) != 0) {
        rc = btrm_error_set(BTRM_EIO, "cannot rename %s to %s: %s", tmp_valid,
                            p->opts.valid_path, strerror(errno));
        goto fail;
    }
    tmp_valid[0] = '\0';
    if (rename(tmp_out, out_path) != 0) {
        rc = btrm_error_set(BTRM_EIO, "cannot rename %s to %s: %s", tmp_out, out_path,
                            strerror(errno));
        unlink(p->opts.valid_path);
        goto fail;
    }
    tmp_out[0] = '\0';
    btrm_log_info("prep: wrote %s: %zu pairs, %lld texts (train, %.4g of the pairs)",
                  out_path, n_t, (long long)texts_t, (double)n_t / (double)p->n_pairs);
    btrm_log_info("prep: wrote %s: %zu pairs, %lld texts (validation)", p->opts.valid_path,
                  n_v, (long long)texts_v);
    *n_train = (int64_t)n_t;
    *n_valid = (int64_t)n_v;
fail:
    if (tmp_out[0])
        unlink(tmp_out);
    if (tmp_valid[0])
        unlink(tmp_valid);
    free(train);
    free(valid);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The command */

static void print_summary(const btrm_prep *p, int n_inputs, double seconds)
{
    btrm_prep_stats st;
    btrm_prep_get_stats(p, &st);
    btrm_log_info("prep: %lld pairs, %lld distinct texts from %lld records in %d file%s "
                  "(%.2f s, %.0f records/s, %.1f MB/s)",
                  (long long)st.pairs, (long long)st.texts, (long long)st.records, n_inputs,
                  n_inputs == 1 ? "" : "s", seconds,
                  seconds > 0 ? (double)st.records / seconds : 0.0,
                  seconds > 0 ? (double)st.bytes / seconds / 1e6 : 0.0);
    int64_t total_bad = 0;
    for (int r = 0; r < BTRM_PREP_N_BAD; r++)
        total_bad += st.bad[r];
    if (total_bad == 0)
        return;
    btrm_log_warn("prep: skipped %lld of %lld records:", (long long)total_bad,
                  (long long)st.records);
    for (int r = 0; r < BTRM_PREP_N_BAD; r++) {
        if (!st.bad[r])
            continue;
        btrm_log_warn("  %-20s %lld", bad_names[r], (long long)st.bad[r]);
        for (int k = 0; k < p->examples[r].n; k++)
            btrm_log_warn("    %s", p->examples[r].text[k]);
    }
}

int btrm_prep_run(const char *const *inputs, int n_inputs, const char *out_path,
                  const btrm_prep_opts *opts)
{
    btrm_prep *p = NULL;
    double t0 = now_seconds();
    int rc = btrm_prep_init(&p, opts);
    for (int i = 0; !rc && i < n_inputs; i++)
        rc = btrm_prep_read_file(p, inputs[i]);
    btrm_log_progress_end();
    if (rc) {
        if (p && !opts->strict)
            print_summary(p, n_inputs, now_seconds() - t0);
        goto fail;
    }
    print_summary(p, n_inputs, now_seconds() - t0);
    if (btrm_prep_n_pairs(p) == 0) {
        rc = btrm_error_set(BTRM_EDATA, "no usable pairs in %d input file%s: nothing written",
                            n_inputs, n_inputs == 1 ? "" : "s");
        goto fail;
    }
    if (p->cmap.n > 0) {
        /* Subsets the map does not know keep their record's category. */
        for (size_t k = 0; k < p->subsets.n; k++)
            if (!btrm_prep_category_map_get(&p->cmap, p->subsets.items[k]))
                btrm_log_warn("prep: subset '%s' is not in %s", p->subsets.items[k],
                              opts->category_map_path);
    }
    int64_t n_train, n_valid;
    rc = btrm_prep_write(p, out_path, &n_train, &n_valid);
fail:
    btrm_prep_free(p);
    return rc;
}
