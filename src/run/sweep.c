/* sweep.c: sweep files -> one resolved config per run, and the sweep
 * directory that slurm/sweep.sbatch runs (sweep.h, docs/sweep.md).
 *
 * Each run's config is built by the config module alone, from the same texts
 * a user could type: btrm_config_load(first base file, overrides) where the
 * overrides are, in order,
 *   1. the keys of the other base files and of the settings files, each file
 *      (and its own base: chain) flattened into "section.key=value" leaves;
 *   2. the run's grid and zip values, "key=value" with the value's YAML text;
 *   3. run.name and run.out_dir.
 * So a sweep run is exactly `btrm config FIRST --set ...` and every error
 * message comes from the config module; this file only adds where the
 * offending value was written and which run it belongs to. */
#include "sweep.h"

#include "error.h"
#include "fileutil.h"
#include "format.h"
#include "log.h"
#include "yamlfile.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <yaml.h>

#define MAX_CHAIN 32               /* files in a base: chain */
#define MAX_SHOWN_CHANGES 6        /* differences listed when a sweep changed */
#define SWEEP_FORMAT "sweep-v1"

/* ---------------------------------------------------------------------------
 * A growable string */

typedef struct strbuf {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_putn(strbuf *b, const char *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->oom = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *p) { sb_putn(b, p, strlen(p)); }

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_putn(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_putn(b, big, (size_t)n);
    free(big);
}

/* The string (never NULL: "" when empty), or NULL when memory ran out. */
static char *sb_take(strbuf *b)
{
    if (!b->oom && !b->s)
        sb_putn(b, "", 0);
    char *s = b->oom ? NULL : b->s;
    if (b->oom)
        free(b->s);
    memset(b, 0, sizeof *b);
    return s;
}

/* ---------------------------------------------------------------------------
 * Overrides: "key=value" texts with the place their value was written */

typedef struct set_item {
    char *text;  /* "key=value" */
    char *where; /* "FILE:LINE:COL" of the value */
} set_item;

typedef struct set_list {
    set_item *items;
    int n, cap;
} set_list;

static int sets_add(set_list *l, char *text, char *where)
{
    if (!text || !where)
        goto oom;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        set_item *items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items)
            goto oom;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = (set_item){ text, where };
    return 0;
oom:
    free(text);
    free(where);
    return btrm_error_set(BTRM_ENOMEM, "out of memory expanding the sweep");
}

static void sets_free(set_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->items[i].text);
        free(l->items[i].where);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}


static char *where_of(const char *file, yaml_mark_t mark)
{
    return btrm_strdup_printf("%s:%zu:%zu", file, mark.line + 1, mark.column + 1);
}

/* ---------------------------------------------------------------------------
 * YAML: files, documents, and a node's text as a --set value */

static int read_file(const char *path, unsigned char **text, size_t *len, struct stat *st_out)
{
    return btrm_yaml_read_file(path, "YAML file for btrm", text, len, st_out);
}

static int parse_doc(const char *file, const unsigned char *text, size_t len,
                     yaml_document_t *doc, int *have_doc)
{
    btrm_yaml_src src = { .file = file, .what = "a sweep file", .text = text, .len = len };
    return btrm_yaml_load(&src, doc, have_doc);
}

/* Whether a plain scalar must be quoted to read back as the same string when
 * it stands alone (a --set value) or inside a flow collection. */
static int needs_quotes(const char *s, size_t len, int in_flow)
{
    if (len == 0)
        return 0;
    if (strlen(s) != len)
        return 1;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    if (s[0] == ' ' || s[len - 1] == ' ' || strchr("#&*!|>'\"%@`", s[0]))
        return 1;
    if (strchr("-?:", s[0]) && (len == 1 || s[1] == ' '))
        return 1;
    if (strstr(s, ": ") || strstr(s, " #") || s[len - 1] == ':')
        return 1;
    return in_flow && strpbrk(s, ",[]{}") != NULL;
}

static void put_quoted(strbuf *b, const char *s, size_t len)
{
    sb_putn(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            sb_putn(b, esc, 2);
        } else if (c == '\n') {
            sb_puts(b, "\\n");
        } else if (c == '\t') {
            sb_puts(b, "\\t");
        } else if (c == '\r') {
            sb_puts(b, "\\r");
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\x%02X", c);
        } else {
            sb_putn(b, (const char *)&c, 1);
        }
    }
    sb_putn(b, "\"", 1);
}

/* The node as one line of YAML that reads back to the same value: plain
 * scalars keep their text, quoted and block scalars are double-quoted,
 * collections are written in flow style. */
static void put_node(strbuf *b, yaml_document_t *doc, const yaml_node_t *n, int in_flow)
{
    if (!n) {
        sb_puts(b, in_flow ? "~" : "");
        return;
    }
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !needs_quotes(s, len, in_flow))
            sb_putn(b, len || !in_flow ? s : "~", len || !in_flow ? len : 1);
        else
            put_quoted(b, s, len);
    } else if (n->type == YAML_SEQUENCE_NODE) {
        sb_putn(b, "[", 1);
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++) {
            if (it > n->data.sequence.items.start)
                sb_puts(b, ", ");
            put_node(b, doc, yaml_document_get_node(doc, *it), 1);
        }
        sb_putn(b, "]", 1);
    } else if (n->type == YAML_MAPPING_NODE) {
        sb_putn(b, "{", 1);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            if (p > n->data.mapping.pairs.start)
                sb_puts(b, ", ");
            put_node(b, doc, yaml_document_get_node(doc, p->key), 1);
            sb_puts(b, ": ");
            put_node(b, doc, yaml_document_get_node(doc, p->value), 1);
        }
        sb_putn(b, "}", 1);
    }
}

static char *node_text(yaml_document_t *doc, const yaml_node_t *n)
{
    strbuf b = { 0 };
    put_node(&b, doc, n, 0);
    return sb_take(&b);
}

/* A mapping's keys must be distinct non-empty names. */
static int check_keys(const char *file, yaml_document_t *doc, const yaml_node_t *map)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        const char *key = btrm_yaml_scalar(kn);
        if (!key || !key[0] || strlen(key) != kn->data.scalar.length)
            return btrm_error_set(BTRM_ECONFIG, "%s:%zu:%zu: a key must be a non-empty name, "
                                  "got %s", file, kn->start_mark.line + 1,
                                  kn->start_mark.column + 1, key ? "an empty one" : btrm_yaml_node_kind(kn));
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *prev = yaml_document_get_node(doc, q->key);
            if (!strcmp(btrm_yaml_scalar(prev), key))
                return btrm_error_set(BTRM_ECONFIG, "%s:%zu:%zu: duplicate key '%s' (first "
                                      "given at line %zu, column %zu)", file,
                                      kn->start_mark.line + 1, kn->start_mark.column + 1, key,
                                      prev->start_mark.line + 1, prev->start_mark.column + 1);
        }
    }
    return 0;
}

/* A path named in file: relative to file's directory unless absolute. */
static char *resolve_path(const char *file, const char *path)
{
    const char *slash = strrchr(file, '/');
    if (path[0] == '/' || !slash)
        return strdup(path);
    return btrm_strdup_printf("%.*s%s", (int)(slash - file) + 1, file, path);
}

/* ---------------------------------------------------------------------------
 * Config files flattened into overrides (for every base file but the first,
 * and for settings files) */

typedef struct chain {
    dev_t dev[MAX_CHAIN];
    ino_t ino[MAX_CHAIN];
    char *names[MAX_CHAIN];
    int n;
} chain;

static int flatten_file(const char *path, set_list *out, chain *ch);

static int flatten_mapping(const char *file, yaml_document_t *doc, const yaml_node_t *map,
                           const char *prefix, set_list *out)
{
    int rc = check_keys(file, doc, map);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         !rc && p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        const char *key = btrm_yaml_scalar(kn);
        if (!prefix && !strcmp(key, "base"))
            continue; /* followed by flatten_file */
        if (strchr(key, '.'))
            return btrm_error_set(BTRM_ECONFIG, "%s:%zu:%zu: invalid key '%s': write nested "
                                  "mappings (optim: {lr: 0.1}), not dotted keys", file,
                                  kn->start_mark.line + 1, kn->start_mark.column + 1, key);
        char *full = prefix ? btrm_strdup_printf("%s.%s", prefix, key) : strdup(key);
        if (!full)
            return btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", file);
        if (vn && vn->type == YAML_MAPPING_NODE) {
            rc = flatten_mapping(file, doc, vn, full, out);
        } else if (prefix || !btrm_yaml_is_null(vn)) { /* an empty section at the top is ignored */
            char *value = node_text(doc, vn);
            rc = sets_add(out, value ? btrm_strdup_printf("%s=%s", full, value) : NULL,
                          where_of(file, vn ? vn->start_mark : kn->end_mark));
            free(value);
        }
        free(full);
    }
    return rc;
}

static int flatten_file(const char *path, set_list *out, chain *ch)
{
    unsigned char *text = NULL;
    size_t len = 0;
    struct stat st;
    yaml_document_t doc;
    int have_doc = 0, pushed = 0;
    int rc = read_file(path, &text, &len, &st);
    if (rc)
        return rc;
    for (int i = 0; i < ch->n; i++) {
        if (ch->dev[i] != st.st_dev || ch->ino[i] != st.st_ino)
            continue;
        strbuf b = { 0 };
        for (int j = 0; j < ch->n; j++)
            sb_printf(&b, "%s -> ", ch->names[j]);
        sb_puts(&b, path);
        char *shown = sb_take(&b);
        rc = btrm_error_set(BTRM_ECONFIG, "base cycle: %s", shown ? shown : path);
        free(shown);
        goto fail;
    }
    if (ch->n == MAX_CHAIN) {
        rc = btrm_error_set(BTRM_ECONFIG, "%s: more than %d files in the base chain", path,
                            MAX_CHAIN);
        goto fail;
    }
    ch->dev[ch->n] = st.st_dev;
    ch->ino[ch->n] = st.st_ino;
    ch->names[ch->n++] = (char *)path;
    pushed = 1;
    rc = parse_doc(path, text, len, &doc, &have_doc);
    if (rc)
        goto fail;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (btrm_yaml_is_null(root)) {
        rc = btrm_error_set(BTRM_ECONFIG, "%s: empty config", path);
        goto fail;
    }
    if (root->type != YAML_MAPPING_NODE) {
        rc = btrm_error_set(BTRM_ECONFIG, "%s:%zu:%zu: the top level must be a mapping of "
                            "sections (run:, data:, model:, ...), got %s", path,
                            root->start_mark.line + 1, root->start_mark.column + 1,
                            btrm_yaml_node_kind(root));
        goto fail;
    }
    rc = check_keys(path, &doc, root);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         !rc && p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
        if (strcmp(btrm_yaml_scalar(yaml_document_get_node(&doc, p->key)), "base"))
            continue;
        const char *base = btrm_yaml_scalar(vn);
        if (!base || btrm_yaml_is_null(vn)) {
            rc = btrm_error_set(BTRM_ECONFIG, "%s:%zu:%zu: base: expected the path of a config "
                                "file", path, vn->start_mark.line + 1, vn->start_mark.column + 1);
            break;
        }
        char *resolved = resolve_path(path, base);
        rc = resolved ? flatten_file(resolved, out, ch)
                      : btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", path);
        if (rc && rc != BTRM_ENOMEM && strncmp(btrm_error_msg(), resolved, strlen(resolved)))
            btrm_error_wrap(rc, "%s:%zu:%zu: base", path, vn->start_mark.line + 1,
                            vn->start_mark.column + 1);
        free(resolved);
    }
    if (!rc)
        rc = flatten_mapping(path, &doc, root, NULL, out);
fail:
    if (pushed)
        ch->n--;
    if (have_doc)
        yaml_document_delete(&doc);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The parsed sweep: layers of config files, axes of values */

typedef struct layer {
    char *first;       /* the config file btrm_config_load reads; NULL: defaults */
    char *first_where; /* where the sweep names it */
    set_list rest;     /* the other files of the list, flattened */
} layer;

typedef struct axis_value {
    char *text;  /* the value as a --set value */
    char *where; /* SWEEP:LINE:COL */
    layer base;  /* key `base` only */
} axis_value;

typedef struct axis {
    int n_keys, n_values;
    char **keys;
    axis_value *values; /* [n_keys][n_values] */
} axis;

typedef struct spec {
    const char *path;
    layer base;
    set_list settings;
    axis *axes;
    int n_axes;
} spec;

static void layer_free(layer *l)
{
    free(l->first);
    free(l->first_where);
    sets_free(&l->rest);
}

static void spec_free(spec *sp)
{
    layer_free(&sp->base);
    sets_free(&sp->settings);
    for (int a = 0; a < sp->n_axes; a++) {
        axis *ax = &sp->axes[a];
        for (int k = 0; ax->keys && k < ax->n_keys; k++)
            free(ax->keys[k]);
        for (int v = 0; ax->values && v < ax->n_keys * ax->n_values; v++) {
            free(ax->values[v].text);
            free(ax->values[v].where);
            layer_free(&ax->values[v].base);
        }
        free(ax->keys);
        free(ax->values);
    }
    free(sp->axes);
    memset(sp, 0, sizeof *sp);
}

/* "FILE:LINE:COL: message" at node n. */
#define fail_node(path, n, ...)                                                  \
    btrm_yaml_fail(&(btrm_yaml_src){ .file = (path) }, (n)->start_mark, __VA_ARGS__)

/* A path or a list of paths (relative to the sweep file) -> a layer. */
static int parse_layer(const char *file, yaml_document_t *doc, const yaml_node_t *n,
                       const char *what, layer *out)
{
    const yaml_node_t *items[MAX_CHAIN];
    int n_items = 0, rc = 0;
    if (n && n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++) {
            if (n_items == MAX_CHAIN)
                return fail_node(file, n, "%s: more than %d files", what, MAX_CHAIN);
            items[n_items++] = yaml_document_get_node(doc, *it);
        }
    } else if (n) {
        items[n_items++] = n;
    }
    if (n_items == 0)
        return fail_node(file, n, "%s: expected a config file or a list of them", what);
    chain ch = { .n = 0 };
    for (int i = 0; i < n_items && !rc; i++) {
        const char *path = btrm_yaml_scalar(items[i]);
        if (!path || btrm_yaml_is_null(items[i]) || strlen(path) != items[i]->data.scalar.length)
            return fail_node(file, items[i], "%s: expected the path of a config file, got %s",
                             what, path ? "nothing" : btrm_yaml_node_kind(items[i]));
        char *resolved = resolve_path(file, path);
        if (!resolved)
            return btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", file);
        if (i == 0) {
            out->first = resolved;
            out->first_where = where_of(file, items[i]->start_mark);
            if (!out->first_where)
                return btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", file);
            /* read it now so that a missing file is reported where it is named */
            FILE *f = fopen(resolved, "rb");
            if (!f)
                return fail_node(file, items[i], "%s: cannot open '%s': %s", what, resolved,
                                 strerror(errno));
            fclose(f);
            continue;
        }
        rc = flatten_file(resolved, &out->rest, &ch);
        if (rc && rc != BTRM_ENOMEM)
            btrm_error_wrap(rc, "%s:%zu:%zu: %s", file, items[i]->start_mark.line + 1,
                            items[i]->start_mark.column + 1, what);
        free(resolved);
    }
    return rc;
}

/* A settings list: every file flattened, in order. */
static int parse_settings(const char *file, yaml_document_t *doc, const yaml_node_t *n,
                          set_list *out)
{
    layer tmp = { 0 };
    /* the same as a layer whose first file is flattened too */
    int rc = parse_layer(file, doc, n, "settings", &tmp);
    if (!rc) {
        chain ch = { .n = 0 };
        rc = flatten_file(tmp.first, out, &ch);
        if (rc && rc != BTRM_ENOMEM)
            btrm_error_wrap(rc, "%s: settings", tmp.first_where);
        for (int i = 0; !rc && i < tmp.rest.n; i++) {
            rc = sets_add(out, tmp.rest.items[i].text, tmp.rest.items[i].where);
            tmp.rest.items[i].text = tmp.rest.items[i].where = NULL;
        }
    }
    layer_free(&tmp);
    return rc;
}

static int key_used(const spec *sp, const char *key)
{
    for (int a = 0; a < sp->n_axes; a++)
        for (int k = 0; k < sp->axes[a].n_keys; k++)
            if (sp->axes[a].keys[k] && !strcmp(sp->axes[a].keys[k], key))
                return 1;
    return 0;
}

/* Adds an axis of n_keys keys (grid: 1; zip group: its keys), each with a list
 * of values of the same length. */
static int parse_axis(spec *sp, yaml_document_t *doc, const yaml_node_pair_t *first, int n_keys, const char *what)
{
    const char *file = sp->path;
    axis *grown = realloc(sp->axes, (size_t)(sp->n_axes + 1) * sizeof *grown);
    if (!grown)
        return btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", file);
    sp->axes = grown;
    axis *ax = &sp->axes[sp->n_axes++];
    memset(ax, 0, sizeof *ax);
    const yaml_node_t *first_list = yaml_document_get_node(doc, first->value);
    ax->n_values = first_list && first_list->type == YAML_SEQUENCE_NODE
                       ? (int)(first_list->data.sequence.items.top -
                               first_list->data.sequence.items.start)
                       : 0;
    ax->keys = calloc((size_t)n_keys, sizeof *ax->keys);
    ax->values = calloc((size_t)n_keys * (size_t)(ax->n_values ? ax->n_values : 1),
                        sizeof *ax->values);
    if (!ax->keys || !ax->values)
        return btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", file);
    ax->n_keys = n_keys;
    for (int k = 0; k < n_keys; k++) {
        const yaml_node_t *kn = yaml_document_get_node(doc, first[k].key);
        const yaml_node_t *list = yaml_document_get_node(doc, first[k].value);
        const char *key = btrm_yaml_scalar(kn);
        if (!strcmp(key, "run.name") || !strcmp(key, "run.out_dir"))
            return fail_node(file, kn, "%s: '%s' is set by the sweep for every run "
                             "(<name>-<index>, DIR/runs/<index>)", what, key);
        if (key_used(sp, key))
            return fail_node(file, kn, "%s: '%s' is varied twice (in grid and in a zip group, "
                             "or in two zip groups)", what, key);
        if (!list || list->type != YAML_SEQUENCE_NODE ||
            list->data.sequence.items.top == list->data.sequence.items.start)
            return fail_node(file, list ? list : kn, "%s: %s: expected a non-empty list of "
                             "values, e.g. [1, 2, 3]%s", what, key,
                             list && list->type != YAML_SEQUENCE_NODE
                                 ? "; write [[256], [512]] to vary a list-valued key"
                                 : "");
        int n_values = (int)(list->data.sequence.items.top - list->data.sequence.items.start);
        if (n_values != ax->n_values)
            return fail_node(file, list, "%s: %s has %d values but %s has %d: the lists of "
                             "a zip group are varied together and must have the same length",
                             what, key, n_values, btrm_yaml_scalar(yaml_document_get_node(doc, first->key)),
                             ax->n_values);
        if (!(ax->keys[k] = strdup(key)))
            return btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", file);
        for (int v = 0; v < n_values; v++) {
            const yaml_node_t *vn =
                yaml_document_get_node(doc, list->data.sequence.items.start[v]);
            axis_value *val = &ax->values[k * ax->n_values + v];
            val->text = node_text(doc, vn);
            val->where = where_of(file, vn->start_mark);
            if (!val->text || !val->where)
                return btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", file);
            if (!strcmp(key, "base")) {
                int rc = parse_layer(file, doc, vn, "base", &val->base);
                if (rc)
                    return rc;
            }
        }
    }
    return 0;
}

static int parse_zip(spec *sp, yaml_document_t *doc, const yaml_node_t *n)
{
    const yaml_node_t *groups[256];
    int n_groups = 0;
    if (n->type == YAML_MAPPING_NODE) {
        groups[n_groups++] = n;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++) {
            if (n_groups == 256)
                return fail_node(sp->path, n, "zip: more than 256 groups");
            groups[n_groups++] = yaml_document_get_node(doc, *it);
        }
    } else if (!btrm_yaml_is_null(n)) {
        return fail_node(sp->path, n, "zip: expected a list of groups, each a mapping of keys "
                         "to lists of the same length, e.g. [{optim.lr: [1e-3, 3e-4], "
                         "optim.warmup_steps: [0, 100]}]");
    }
    for (int g = 0; g < n_groups; g++) {
        const yaml_node_t *map = groups[g];
        if (map->type != YAML_MAPPING_NODE ||
            map->data.mapping.pairs.top == map->data.mapping.pairs.start)
            return fail_node(sp->path, map, "zip: a group must be a non-empty mapping of keys to "
                             "lists of the same length, got %s", btrm_yaml_node_kind(map));
        int rc = check_keys(sp->path, doc, map);
        if (!rc)
            rc = parse_axis(sp, doc, map->data.mapping.pairs.start,
                            (int)(map->data.mapping.pairs.top - map->data.mapping.pairs.start),
                            "zip");
        if (rc)
            return rc;
    }
    return 0;
}

/* The sweep's name: non-empty, no '/', short enough for <name>-<iiii>. */
static int check_name(const char *file, const yaml_node_t *n, const char *name)
{
    size_t len = strlen(name), ctrl = 0;
    for (size_t i = 0; i < len; i++)
        ctrl |= (unsigned char)name[i] < 0x20 || name[i] == 0x7f;
    if (!len || ctrl || strchr(name, '/') || len + 6 > BTRM_NAME_MAX - 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "name: must be a non-empty name without '/' or control "
                 "characters, of at most %d bytes", BTRM_NAME_MAX - 7);
        return n ? fail_node(file, n, "%s", msg)
                 : btrm_error_set(BTRM_ECONFIG, "%s: %s (give name: in the sweep file)", file,
                                  msg);
    }
    return 0;
}

/* name: the file name without .yaml/.yml and .sweep. */
static void default_name(const char *path, char *name, size_t size)
{
    const char *slash = strrchr(path, '/');
    snprintf(name, size, "%s", slash ? slash + 1 : path);
    size_t len = strlen(name);
    const char *ext[] = { ".yaml", ".yml", ".sweep" };
    for (size_t e = 0; e < sizeof ext / sizeof ext[0]; e++) {
        size_t n = strlen(ext[e]);
        if (len > n && !strcmp(name + len - n, ext[e]))
            name[len -= n] = '\0';
    }
}

static int parse_spec(spec *sp, btrm_sweep *sw)
{
    yaml_document_t doc;
    int have_doc = 0, have_name = 0;
    const char *file = sw->path;
    int rc = parse_doc(file, sw->text, sw->len, &doc, &have_doc);
    if (rc)
        return rc;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (btrm_yaml_is_null(root)) {
        rc = btrm_error_set(BTRM_ECONFIG, "%s: empty sweep file", file);
        goto fail;
    }
    if (root->type != YAML_MAPPING_NODE) {
        rc = fail_node(file, root, "a sweep is a mapping (name:, base:, settings:, grid:, zip:), "
                       "got %s", btrm_yaml_node_kind(root));
        goto fail;
    }
    rc = check_keys(file, &doc, root);
    const yaml_node_t *grid = NULL, *zip = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         !rc && p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
        const char *key = btrm_yaml_scalar(kn);
        if (!strcmp(key, "name")) {
            const char *name = btrm_yaml_scalar(vn);
            if (!name || btrm_yaml_is_null(vn)) {
                rc = fail_node(file, vn, "name: expected a name, got %s",
                               name ? "nothing" : btrm_yaml_node_kind(vn));
            } else if (!(rc = check_name(file, vn, name))) {
                snprintf(sw->name, sizeof sw->name, "%s", name);
                have_name = 1;
            }
        } else if (!strcmp(key, "base")) {
            rc = parse_layer(file, &doc, vn, "base", &sp->base);
        } else if (!strcmp(key, "settings")) {
            rc = parse_settings(file, &doc, vn, &sp->settings);
        } else if (!strcmp(key, "grid")) {
            grid = vn;
        } else if (!strcmp(key, "zip")) {
            zip = vn;
        } else {
            rc = fail_node(file, kn, "unknown key '%s' (a sweep has name, base, settings, grid "
                           "and zip)", key);
        }
    }
    if (!rc && grid && !btrm_yaml_is_null(grid)) {
        if (grid->type != YAML_MAPPING_NODE)
            rc = fail_node(file, grid, "grid: expected a mapping of keys to lists of values, "
                           "e.g. {loss.type: [bt, normbt], run.seed: [1, 2, 3]}");
        else
            rc = check_keys(file, &doc, grid);
        for (yaml_node_pair_t *p = grid->data.mapping.pairs.start;
             !rc && p < grid->data.mapping.pairs.top; p++)
            rc = parse_axis(sp, &doc, p, 1, "grid");
    }
    if (!rc && zip)
        rc = parse_zip(sp, &doc, zip);
    if (!rc && !have_name) {
        default_name(file, sw->name, sizeof sw->name);
        rc = check_name(file, NULL, sw->name);
    }
fail:
    if (have_doc)
        yaml_document_delete(&doc);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Runs */

static void hex64(uint64_t h, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* Rewrites the config module's error for run r with where the offending
 * value was written: "WHERE: run <iiii> (overrides): KEY=VALUE: message".
 * from_load: the error came from btrm_config_load (else from validate). */
static int run_error(int rc, const btrm_sweep *sw, int r, const char *overrides,
                     const char *const *texts, char *const *wheres, int n_sets,
                     const char *base_where, int from_load)
{
    char msg[BTRM_ERROR_MAX];
    snprintf(msg, sizeof msg, "%s", btrm_error_msg());
    const char *shown = overrides[0] ? overrides : "no overrides";
    for (int i = 0; i < n_sets; i++) {
        size_t n = strlen(texts[i]);
        if (!strncmp(msg, "--set '", 7) && !strncmp(msg + 7, texts[i], n) &&
            !strncmp(msg + 7 + n, "': ", 3))
            return btrm_error_set(rc, "%s: run %04d (%s): %s: %s", wheres[i], r, shown,
                                  texts[i], msg + 7 + n + 3);
    }
    if (from_load && base_where)
        return btrm_error_set(rc, "%s: run %04d (%s): base: %s", base_where, r, shown, msg);
    return btrm_error_set(rc, "%s: run %04d (%s): %s", sw->path, r, shown, msg);
}

/* The run's overrides: "key=value" texts and where each was written. */
typedef struct run_sets {
    const char **texts;
    char **wheres;
    char **owned; /* texts made here */
    int n, n_owned;
} run_sets;

static int run_sets_push(run_sets *s, char *owned, const char *text, char *where)
{
    if (owned)
        s->owned[s->n_owned++] = owned;
    else if (!text)
        return btrm_error_set(BTRM_ENOMEM, "out of memory expanding the sweep");
    s->texts[s->n] = owned ? owned : text;
    s->wheres[s->n++] = where;
    return 0;
}

static int resolve_run(const spec *sp, btrm_sweep *sw, int r, btrm_config *cfg)
{
    btrm_sweep_run *run = &sw->runs[r];
    const layer *base = &sp->base;
    run_sets s = { 0 };
    strbuf over = { 0 }, q = { 0 };
    int rc = 0, max_sets = sp->base.rest.n + sp->settings.n + 2, pos[256], stride = 1;
    for (int a = 0; a < sp->n_axes; a++) {
        const axis *ax = &sp->axes[a];
        max_sets += ax->n_keys;
        for (int v = 0; v < ax->n_keys * ax->n_values; v++)
            max_sets += ax->values[v].base.rest.n;
    }
    s.texts = calloc((size_t)max_sets, sizeof *s.texts);
    s.wheres = calloc((size_t)max_sets, sizeof *s.wheres);
    s.owned = calloc((size_t)max_sets, sizeof *s.owned);
    if (!s.texts || !s.wheres || !s.owned) {
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory expanding the sweep");
        goto fail;
    }
    run->index = r;
    if (snprintf(run->name, sizeof run->name, "%s-%04d", sw->name, r) >= (int)sizeof run->name) {
        rc = btrm_error_set(BTRM_ECONFIG, "%s: name '%s' too long", sw->path, sw->name);
        goto fail;
    }

    /* the position of run r on each axis: the last axis varies fastest */
    for (int a = sp->n_axes - 1; a >= 0; a--) {
        pos[a] = (r / stride) % sp->axes[a].n_values;
        stride *= sp->axes[a].n_values;
    }
    for (int a = 0; a < sp->n_axes; a++)
        for (int k = 0; k < sp->axes[a].n_keys; k++) {
            const axis_value *v = &sp->axes[a].values[k * sp->axes[a].n_values + pos[a]];
            sb_printf(&over, "%s%s=%s", over.len ? ";" : "", sp->axes[a].keys[k], v->text);
            if (v->base.first)
                base = &v->base;
        }
    if (!(run->overrides = sb_take(&over))) {
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory expanding the sweep");
        goto fail;
    }
    /* 1. the other base files and the settings files; 2. the grid's values */
    for (int i = 0; i < base->rest.n && !rc; i++)
        rc = run_sets_push(&s, NULL, base->rest.items[i].text, base->rest.items[i].where);
    for (int i = 0; i < sp->settings.n && !rc; i++)
        rc = run_sets_push(&s, NULL, sp->settings.items[i].text, sp->settings.items[i].where);
    for (int a = 0; a < sp->n_axes && !rc; a++)
        for (int k = 0; k < sp->axes[a].n_keys && !rc; k++) {
            const axis_value *v = &sp->axes[a].values[k * sp->axes[a].n_values + pos[a]];
            if (strcmp(sp->axes[a].keys[k], "base"))
                rc = run_sets_push(&s, btrm_strdup_printf("%s=%s", sp->axes[a].keys[k], v->text), NULL,
                                   v->where);
        }
    /* 3. the run's name and directory */
    sb_puts(&q, "run.name=");
    put_quoted(&q, run->name, strlen(run->name));
    if (!rc)
        rc = run_sets_push(&s, sb_take(&q), NULL, sw->path);
    char dir[BTRM_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/runs/%04d", sw->out_dir, r);
    sb_puts(&q, "run.out_dir=");
    put_quoted(&q, dir, strlen(dir));
    if (!rc)
        rc = run_sets_push(&s, sb_take(&q), NULL, sw->path);
    if (rc)
        goto fail;

    rc = btrm_config_load(cfg, base->first, s.texts, s.n);
    int from_load = rc != 0;
    if (!rc)
        rc = btrm_config_validate(cfg);
    if (rc && rc != BTRM_ENOMEM)
        rc = run_error(rc, sw, r, run->overrides, s.texts, s.wheres, s.n, base->first_where,
                       from_load);
    if (!rc)
        rc = btrm_config_emit_string(cfg, &run->config_text);
    if (!rc)
        hex64(XXH3_64bits(run->config_text, strlen(run->config_text)), run->config_hash);
fail:
    free(over.s);
    free(q.s);
    for (int i = 0; i < s.n_owned; i++)
        free(s.owned[i]);
    free(s.owned);
    free(s.texts);
    free(s.wheres);
    return rc;
}

void btrm_sweep_free(btrm_sweep *sw)
{
    if (!sw)
        return;
    for (int r = 0; sw->runs && r < sw->n_runs; r++) {
        free(sw->runs[r].overrides);
        free(sw->runs[r].config_text);
    }
    BTRM_FREE(sw->runs, sw->path, sw->out_dir, sw->text);
    memset(sw, 0, sizeof *sw);
}

int btrm_sweep_load(btrm_sweep *sw, const char *path, const char *out_dir)
{
    spec sp;
    btrm_config *cfg = NULL;
    XXH3_state_t *state = NULL;
    memset(sw, 0, sizeof *sw);
    memset(&sp, 0, sizeof sp);
    int rc = 0;
    size_t dir_len = strlen(out_dir);
    while (dir_len > 1 && out_dir[dir_len - 1] == '/')
        dir_len--;
    if (!dir_len) {
        rc = btrm_error_set(BTRM_EUSAGE, "the sweep directory is an empty path");
        goto fail;
    }
    sw->path = strdup(path);
    sw->out_dir = strndup(out_dir, dir_len);
    if (!sw->path || !sw->out_dir) {
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", path);
        goto fail;
    }
    if (dir_len + 16 > BTRM_PATH_MAX) {
        rc = btrm_error_set(BTRM_EUSAGE, "sweep directory name too long (%zu bytes)", dir_len);
        goto fail;
    }
    rc = read_file(path, &sw->text, &sw->len, NULL);
    if (!rc) {
        sp.path = sw->path;
        rc = parse_spec(&sp, sw);
    }
    if (rc)
        goto fail;
    long long total = 1;
    for (int a = 0; a < sp.n_axes; a++) {
        total *= sp.axes[a].n_values;
        if (total > BTRM_SWEEP_MAX_RUNS || sp.n_axes > 256) {
            rc = btrm_error_set(BTRM_ECONFIG, "%s: more than %d runs (run directories have 4 "
                                "digits): split the sweep", path, BTRM_SWEEP_MAX_RUNS);
            goto fail;
        }
    }
    sw->n_runs = (int)total;
    rc = BTRM_CALLOC(sw->runs, sw->n_runs);
    if (!rc)
        rc = BTRM_CALLOC(cfg, 1);
    if (rc)
        goto fail;
    for (int r = 0; r < sw->n_runs && !rc; r++)
        rc = resolve_run(&sp, sw, r, cfg);
    if (rc)
        goto fail;
    /* the resolved content: what the runs are, not how the file spells it */
    if (!(state = XXH3_createState()) || XXH3_64bits_reset(state) == XXH_ERROR) {
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory hashing the sweep");
        goto fail;
    }
    for (int r = 0; r < sw->n_runs; r++) {
        const btrm_sweep_run *run = &sw->runs[r];
        char head[64];
        int n = snprintf(head, sizeof head, "%d\t", r);
        XXH3_64bits_update(state, head, (size_t)n);
        XXH3_64bits_update(state, run->name, strlen(run->name) + 1);
        XXH3_64bits_update(state, run->overrides, strlen(run->overrides) + 1);
        XXH3_64bits_update(state, run->config_text, strlen(run->config_text) + 1);
    }
    hex64(XXH3_64bits_digest(state), sw->hash);
fail:
    XXH3_freeState(state);
    free(cfg);
    spec_free(&sp);
    if (rc)
        btrm_sweep_free(sw);
    return rc;
}

void btrm_sweep_result_free(btrm_sweep_result *result)
{
    if (!result)
        return;
    free(result->finished);
    memset(result, 0, sizeof *result);
}

/* ---------------------------------------------------------------------------
 * The sweep directory */

int btrm_sweep_run_finished(const char *run_dir)
{
    char path[BTRM_PATH_MAX + 32];
    if (btrm_path_join(path, sizeof path, run_dir, "summary.json"))
        return 0;
    json_t *doc = json_load_file(path, 0, NULL);
    const char *status = json_string_value(json_object_get(doc, "status"));
    int version = 0;
    /* a summary of a newer format may not mean what this btrm reads */
    int ok = status && !strcmp(status, "ok") &&
             btrm_format_json_check(&btrm_format_summary, path, doc, &version) == 0;
    json_decref(doc);
    return ok;
}

char *btrm_sweep_index_ranges(int n, const char *skip)
{
    strbuf b = { 0 };
    for (int i = 0; i < n; i++) {
        if (skip && skip[i])
            continue;
        int j = i;
        while (j + 1 < n && !(skip && skip[j + 1]))
            j++;
        if (j == i)
            sb_printf(&b, "%s%d", b.len ? "," : "", i);
        else
            sb_printf(&b, "%s%d-%d", b.len ? "," : "", i, j);
        i = j;
    }
    return sb_take(&b);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A resolved config as (dotted key, value) lines: the emitter writes one key
 * per line, sections as "name:" and two spaces per level. */
typedef struct kv {
    char key[160];
    char value[256];
} kv;

static int config_lines(const char *text, kv **out, int *n_out)
{
    kv *lines = NULL;
    int n = 0, cap = 0;
    char stack[8][64] = { { 0 } };
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t indent = strspn(p, " ");
        const char *colon = memchr(p, ':', len);
        int level = (int)(indent / 2);
        if (colon && level < 8) {
            snprintf(stack[level], sizeof stack[level], "%.*s", (int)(colon - p - indent),
                     p + indent);
            const char *value = colon + 1 + (colon + 1 < p + len && colon[1] == ' ');
            if (value < p + len) {
                if (n == cap) {
                    cap = cap ? 2 * cap : 64;
                    kv *grown = realloc(lines, (size_t)cap * sizeof *grown);
                    if (!grown) {
                        free(lines);
                        return btrm_error_set(BTRM_ENOMEM, "out of memory comparing configs");
                    }
                    lines = grown;
                }
                strbuf key = { 0 };
                for (int l = 0; l <= level; l++)
                    sb_printf(&key, "%s%s", l ? "." : "", stack[l]);
                snprintf(lines[n].key, sizeof lines[n].key, "%s", key.s ? key.s : "?");
                free(key.s);
                snprintf(lines[n].value, sizeof lines[n].value, "%.*s",
                         (int)(p + len - value), value);
                n++;
            }
        }
        p += len + (end != NULL);
    }
    *out = lines;
    *n_out = n;
    return 0;
}

/* "optim.lr: 0.001 -> 0.0003; train.steps: 100 -> 200" */
static void describe_config_diff(strbuf *b, const char *old_text, const char *new_text)
{
    kv *old = NULL, *cur = NULL;
    int n_old = 0, n_cur = 0, shown = 0;
    if (config_lines(old_text, &old, &n_old) || config_lines(new_text, &cur, &n_cur)) {
        sb_puts(b, "the resolved config differs");
        goto out;
    }
    for (int i = 0; i < n_cur; i++) {
        const char *before = "(absent)";
        for (int j = 0; j < n_old; j++)
            if (!strcmp(old[j].key, cur[i].key))
                before = old[j].value;
        if (!strcmp(before, cur[i].value))
            continue;
        if (shown++ < 4)
            sb_printf(b, "%s%s: %s -> %s", shown > 1 ? "; " : "", cur[i].key, before,
                      cur[i].value);
    }
    for (int j = 0; j < n_old; j++) {
        int found = 0;
        for (int i = 0; i < n_cur && !found; i++)
            found = !strcmp(old[j].key, cur[i].key);
        if (!found && shown++ < 4)
            sb_printf(b, "%s%s: %s -> (absent)", shown > 1 ? "; " : "", old[j].key,
                      old[j].value);
    }
    if (shown > 4)
        sb_printf(b, "; and %d more keys", shown - 4);
    if (!shown)
        sb_puts(b, "the resolved config differs (in formatting only)");
out:
    free(old);
    free(cur);
}

static void run_dir(const btrm_sweep *sw, int r, char *out, size_t size)
{
    snprintf(out, size, "%s/runs/%04d", sw->out_dir, r);
}

/* The k=v pairs of a ";"-joined override list that differ: "run.seed=2 ->
 * run.seed=3". Values holding ';' are compared as whole lists. */
static void describe_overrides_diff(strbuf *b, const char *old, const char *cur)
{
    char *a = strdup(old), *c = strdup(cur);
    char *pa[64], *pc[64];
    int na = 0, nc = 0, shown = 0;
    if (!a || !c)
        goto whole;
    for (char *save = NULL, *t = strtok_r(a, ";", &save); t && na < 64; t = strtok_r(NULL, ";", &save))
        pa[na++] = t;
    for (char *save = NULL, *t = strtok_r(c, ";", &save); t && nc < 64; t = strtok_r(NULL, ";", &save))
        pc[nc++] = t;
    if (na != nc || na == 64)
        goto whole;
    for (int i = 0; i < na; i++) {
        if (!strcmp(pa[i], pc[i]))
            continue;
        sb_printf(b, "%s%s -> %s", shown++ ? "; " : "", pa[i], pc[i]);
    }
    free(a);
    free(c);
    return;
whole:
    sb_printf(b, "overrides %s -> %s", old, cur);
    free(a);
    free(c);
}

/* What differs between the sweep in DIR (its sweep.json, doc) and sw. */
static int refuse_changed(const btrm_sweep *sw, const json_t *doc, const char *json_path)
{
    strbuf b = { 0 };
    const char *old_name = json_string_value(json_object_get(doc, "name"));
    const char *old_sweep = json_string_value(json_object_get(doc, "sweep"));
    const json_t *runs = json_object_get(doc, "runs");
    int n_old = (int)json_array_size(runs), listed = 0, more = 0;
    sb_printf(&b, "%s holds a different sweep (written from %s, %d runs) than %s now "
              "resolves to (%d runs); nothing was changed. What differs:", sw->out_dir,
              old_sweep ? old_sweep : "?", n_old, sw->path, sw->n_runs);
    if (old_name && strcmp(old_name, sw->name))
        sb_printf(&b, "\n  name: %s -> %s", old_name, sw->name), listed++;
    if (n_old != sw->n_runs)
        sb_printf(&b, "\n  runs: %d -> %d", n_old, sw->n_runs), listed++;
    for (int r = 0; r < sw->n_runs && r < n_old; r++) {
        const json_t *run = json_array_get(runs, (size_t)r);
        const char *over = json_string_value(json_object_get(run, "overrides"));
        const char *hash = json_string_value(json_object_get(run, "config_hash"));
        const btrm_sweep_run *cur = &sw->runs[r];
        if (over && !strcmp(over, cur->overrides) && hash && !strcmp(hash, cur->config_hash))
            continue;
        if (listed >= MAX_SHOWN_CHANGES) {
            more++;
            continue;
        }
        listed++;
        if (!over || strcmp(over, cur->overrides)) {
            sb_printf(&b, "\n  run %04d: ", r);
            describe_overrides_diff(&b, over ? over : "", cur->overrides);
            continue;
        }
        sb_printf(&b, "\n  run %04d (%s): ", r, cur->overrides[0] ? cur->overrides : "no overrides");
        char dir[BTRM_PATH_MAX + 16], path[BTRM_PATH_MAX + 32];
        unsigned char *old_text = NULL;
        size_t len = 0;
        run_dir(sw, r, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/config.yaml", dir);
        if (read_file(path, &old_text, &len, NULL) == 0) {
            describe_config_diff(&b, (const char *)old_text, cur->config_text);
            free(old_text);
        } else {
            sb_printf(&b, "its config differs (config_hash %s -> %s)", hash ? hash : "?",
                      cur->config_hash);
        }
    }
    if (more)
        sb_printf(&b, "\n  ... and %d more runs", more);
    if (!listed)
        sb_printf(&b, "\n  the content hash in %s", json_path);
    sb_printf(&b, "\nWrite the new sweep to another directory, or remove %s to start over.",
              sw->out_dir);
    char *msg = sb_take(&b);
    int rc = btrm_error_set(BTRM_ECONFIG, "%s", msg ? msg : "the sweep changed");
    free(msg);
    return rc;
}

/* DIR must be absent, empty, or hold only what a sweep writes. */
static int check_foreign(const btrm_sweep *sw)
{
    static const char *const own[] = { "runs", "logs", "runs.tsv", "sweep.yaml", "sweep.json" };
    DIR *d = opendir(sw->out_dir);
    if (!d)
        return errno == ENOENT ? 0
                               : btrm_error_set(BTRM_EIO, "cannot open %s: %s", sw->out_dir,
                                                strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int mine = 0;
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
            mine |= !strcmp(e->d_name, own[i]);
        if (!mine)
            rc = btrm_error_set(BTRM_ECONFIG, "%s exists and is not a sweep directory (it holds "
                                "'%s'): give a new or empty directory", sw->out_dir, e->d_name);
    }
    closedir(d);
    return rc;
}

static int write_text(const char *path, const char *text)
{
    return btrm_write_atomic(path, text, strlen(text));
}

static int write_runs_tsv(const btrm_sweep *sw)
{
    char path[BTRM_PATH_MAX + 32];
    strbuf b = { 0 };
    sb_puts(&b, "index\tname\toverrides\n");
    for (int r = 0; r < sw->n_runs; r++)
        sb_printf(&b, "%d\t%s\t%s\n", r, sw->runs[r].name, sw->runs[r].overrides);
    char *text = sb_take(&b);
    if (!text)
        return btrm_error_set(BTRM_ENOMEM, "out of memory writing runs.tsv");
    snprintf(path, sizeof path, "%s/runs.tsv", sw->out_dir);
    int rc = write_text(path, text);
    free(text);
    return rc;
}

static int write_sweep_json(const btrm_sweep *sw)
{
    char path[BTRM_PATH_MAX + 32];
    json_t *runs = json_array();
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o}", "format", SWEEP_FORMAT, "name",
                            sw->name, "sweep", sw->path, "hash", sw->hash, "n_runs", sw->n_runs,
                            "runs", runs);
    int rc = doc ? 0 : btrm_error_set(BTRM_ENOMEM, "out of memory writing sweep.json");
    for (int r = 0; r < sw->n_runs && !rc; r++) {
        const btrm_sweep_run *run = &sw->runs[r];
        if (json_array_append_new(runs, json_pack("{s:i, s:s, s:s, s:s}", "index", r, "name",
                                                  run->name, "overrides", run->overrides,
                                                  "config_hash", run->config_hash)))
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory writing sweep.json");
    }
    snprintf(path, sizeof path, "%s/sweep.json", sw->out_dir);
    if (!rc)
        rc = btrm_json_write_atomic(path, doc);
    json_decref(doc);
    return rc;
}

int btrm_sweep_write(const btrm_sweep *sw, btrm_sweep_result *result)
{
    char path[BTRM_PATH_MAX + 32], dir[BTRM_PATH_MAX + 16];
    json_t *old = NULL;
    unsigned char *text = NULL;
    size_t len = 0;
    int rc = 0;
    memset(result, 0, sizeof *result);
    if (!(result->finished = calloc((size_t)sw->n_runs, 1)))
        return btrm_error_set(BTRM_ENOMEM, "out of memory writing the sweep");

    snprintf(path, sizeof path, "%s/sweep.json", sw->out_dir);
    if (file_exists(path)) {
        json_error_t jerr;
        old = json_load_file(path, 0, &jerr);
        const char *format = json_string_value(json_object_get(old, "format"));
        const char *hash = json_string_value(json_object_get(old, "hash"));
        if (!old || !format || strcmp(format, SWEEP_FORMAT) || !hash) {
            rc = btrm_error_set(BTRM_ECONFIG, "%s:%d: not a btrm sweep record (%s): remove %s "
                                "or give another directory", path, old ? 1 : jerr.line,
                                old ? "no format \"" SWEEP_FORMAT "\" or hash" : jerr.text,
                                sw->out_dir);
            goto fail;
        }
        if (strcmp(hash, sw->hash)) {
            rc = refuse_changed(sw, old, path);
            goto fail;
        }
    } else {
        rc = check_foreign(sw);
        /* an interrupted write of this sweep is completed; anything else refused */
        for (int r = 0; r < sw->n_runs && !rc; r++) {
            run_dir(sw, r, dir, sizeof dir);
            snprintf(path, sizeof path, "%s/config.yaml", dir);
            if (!file_exists(path))
                continue;
            rc = read_file(path, &text, &len, NULL);
            if (!rc && strcmp((const char *)text, sw->runs[r].config_text)) {
                strbuf b = { 0 };
                describe_config_diff(&b, (const char *)text, sw->runs[r].config_text);
                rc = btrm_error_set(BTRM_ECONFIG, "%s holds a different config than run %04d "
                                    "(%s) of %s: %s; nothing was changed", path, r,
                                    sw->runs[r].overrides, sw->path, b.s ? b.s : "?");
                free(b.s);
            }
            free(text);
            text = NULL;
        }
        result->created = 1;
    }
    if (rc)
        goto fail;

    snprintf(path, sizeof path, "%s/logs", sw->out_dir);
    rc = btrm_mkdir_p(path);
    for (int r = 0; r < sw->n_runs && !rc; r++) {
        run_dir(sw, r, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/config.yaml", dir);
        if (file_exists(path)) {
            result->finished[r] = (char)btrm_sweep_run_finished(dir);
            result->n_finished += result->finished[r];
            continue; /* same sweep: kept as it is (btrm train rewrites it alike) */
        }
        rc = btrm_mkdir_p(dir);
        if (!rc)
            rc = write_text(path, sw->runs[r].config_text);
        if (!rc && !result->created) {
            btrm_log_info("restored %s", path);
            result->n_restored++;
        }
    }
    if (rc)
        goto fail;
    /* an unchanged sweep gets back only what is missing; sweep.json is the
     * record of what was written, never rewritten */
    snprintf(path, sizeof path, "%s/runs.tsv", sw->out_dir);
    if (result->created || !file_exists(path)) {
        rc = write_runs_tsv(sw);
        if (!rc && !result->created)
            btrm_log_info("restored %s", path);
    }
    snprintf(path, sizeof path, "%s/sweep.yaml", sw->out_dir);
    if (!rc && (result->created || !file_exists(path)))
        rc = btrm_write_atomic(path, sw->text, sw->len);
    if (!rc && result->created)
        rc = write_sweep_json(sw); /* last: its presence means the sweep is complete */
fail:
    json_decref(old);
    free(text);
    return rc;
}
