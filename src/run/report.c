/* report.c: `btrm report`: runs -> tables (report.h, docs/sweep.md). */
#include "report.h"

#include "config.h"
#include "error.h"
#include "fileutil.h"
#include "format.h"
#include "log.h"
#include "pairs.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DEPTH 2 /* a sweep directory's runs are DIR/runs/<iiii> */


static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int has_file(const char *dir, const char *name)
{
    char path[BTRM_PATH_MAX + 64];
    struct stat st;
    return btrm_path_join(path, sizeof path, dir, name) == 0 && stat(path, &st) == 0;
}

/* ---------------------------------------------------------------------------
 * Finding runs */

static int is_run_dir(const char *dir)
{
    return has_file(dir, "summary.json") || has_file(dir, "config.yaml") ||
           has_file(dir, "metrics.jsonl");
}

static int add_dir(btrm_report *rep, int *cap, const char *dir)
{
    if (rep->n_runs == *cap) {
        int grown_cap = *cap ? 2 * *cap : 64;
        btrm_report_run *grown = realloc(rep->runs, (size_t)grown_cap * sizeof *grown);
        if (!grown)
            return btrm_error_set(BTRM_ENOMEM, "out of memory collecting runs");
        rep->runs = grown;
        *cap = grown_cap;
    }
    btrm_report_run *run = &rep->runs[rep->n_runs];
    memset(run, 0, sizeof *run);
    if (!(run->dir = strdup(dir)))
        return btrm_error_set(BTRM_ENOMEM, "out of memory collecting runs");
    rep->n_runs++;
    return 0;
}

static int find_runs(btrm_report *rep, int *cap, const char *dir, int depth)
{
    if (is_run_dir(dir))
        return add_dir(rep, cap, dir);
    if (depth >= MAX_DEPTH)
        return 0;
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort), rc = 0;
    if (n < 0) {
        if (depth == 0)
            return btrm_error_set(BTRM_EIO, "cannot list %s: %s", dir, strerror(errno));
        btrm_log_warn("cannot list %s: %s; skipped", dir, strerror(errno));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (!rc && name[0] != '.' && strcmp(name, "checkpoints") && strcmp(name, "logs")) {
            char *sub = btrm_strdup_printf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
            if (!sub)
                rc = btrm_error_set(BTRM_ENOMEM, "out of memory collecting runs");
            else if (is_dir(sub))
                rc = find_runs(rep, cap, sub, depth + 1);
            free(sub);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Reading one run */

typedef struct label_cache {
    char **paths, **labels;
    int n, cap;
} label_cache;

/* The backbone attribute of path's /features ("unknown" with a warning, once
 * per file, when it cannot be read). */
static const char *backbone_label(label_cache *cache, const char *path, const char *run_dir)
{
    for (int i = 0; i < cache->n; i++)
        if (!strcmp(cache->paths[i], path))
            return cache->labels[i];
    char label[BTRM_NAME_MAX] = "unknown", why[BTRM_PATH_MAX + BTRM_ERROR_MAX] = "";
    struct stat st;
    if (!path[0]) {
        snprintf(why, sizeof why, "no data.train");
    } else if (stat(path, &st) != 0) {
        snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
    } else if (btrm_pairs_read_backbone(path, label, sizeof label) != 0) {
        snprintf(why, sizeof why, "%s", btrm_error_msg());
        snprintf(label, sizeof label, "unknown");
    }
    if (why[0])
        btrm_log_warn("%s: cannot read the backbone label (%s); shown as 'unknown'", run_dir, why);
    if (cache->n == cache->cap) {
        int cap = cache->cap ? 2 * cache->cap : 16;
        char **p = realloc(cache->paths, (size_t)cap * sizeof *p);
        if (p)
            cache->paths = p;
        char **l = realloc(cache->labels, (size_t)cap * sizeof *l);
        if (l)
            cache->labels = l;
        if (!p || !l)
            return NULL;
        cache->cap = cap;
    }
    char *kept_path = strdup(path), *kept_label = strdup(label);
    if (!kept_path || !kept_label) {
        free(kept_path);
        free(kept_label);
        return NULL;
    }
    cache->paths[cache->n] = kept_path;
    cache->labels[cache->n++] = kept_label;
    return kept_label;
}

static void label_cache_free(label_cache *cache)
{
    for (int i = 0; i < cache->n; i++) {
        free(cache->paths[i]);
        free(cache->labels[i]);
    }
    free(cache->paths);
    free(cache->labels);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* accuracy, file and by_category of one eval result. */
static int take_eval(btrm_report_run *run, const json_t *res)
{
    const json_t *acc = json_object_get(res, "accuracy");
    if (!json_is_number(acc))
        return 0;
    run->accuracy = json_number_value(acc);
    const char *file = json_string_value(json_object_get(res, "file"));
    free(run->eval_file);
    if (!(run->eval_file = strdup(file ? file : "")))
        return BTRM_ENOMEM;
    const json_t *cats = json_object_get(res, "by_category");
    size_t n = json_is_object(cats) ? json_object_size(cats) : 0;
    if (n) {
        run->cat_names = calloc(n, sizeof *run->cat_names);
        run->cat_acc = calloc(n, sizeof *run->cat_acc);
        if (!run->cat_names || !run->cat_acc)
            return BTRM_ENOMEM;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)cats, key, val) {
            const json_t *a = json_object_get(val, "accuracy");
            if (!json_is_number(a))
                continue;
            if (!(run->cat_names[run->n_cats] = strdup(key)))
                return BTRM_ENOMEM;
            run->n_cats++;
        }
        qsort(run->cat_names, (size_t)run->n_cats, sizeof *run->cat_names, cmp_str);
        for (int c = 0; c < run->n_cats; c++)
            run->cat_acc[c] = json_number_value(
                json_object_get(json_object_get(cats, run->cat_names[c]), "accuracy"));
    }
    run->has_eval = 1;
    return 0;
}

/* The eval results of the last step in eval.jsonl, number eval_index. */
static int eval_from_jsonl(btrm_report_run *run, int eval_index)
{
    char path[BTRM_PATH_MAX + 64];
    if (btrm_path_join(path, sizeof path, run->dir, "eval.jsonl"))
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    long long last_step = -1;
    int index = 0, rc = 0;
    json_t *chosen = NULL;
    int version = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *res = json_loads(line, 0, NULL);
        if (res && btrm_format_json_check(&btrm_format_eval, path, res, &version) != 0) {
            btrm_log_warn("%s: %s", run->dir, btrm_error_msg());
            json_decref(res);
            json_decref(chosen);
            chosen = NULL;
            break;
        }
        const json_t *step = json_object_get(res, "step");
        if (json_is_integer(step)) {
            long long s = json_integer_value(step);
            if (s != last_step) {
                last_step = s;
                index = 0;
            }
            if (index++ == eval_index) {
                json_decref(chosen);
                chosen = json_incref(res);
            }
        }
        json_decref(res);
    }
    free(line);
    fclose(f);
    if (chosen) {
        const json_t *step = json_object_get(chosen, "step");
        if (json_integer_value(step) == last_step)
            rc = take_eval(run, chosen);
        json_decref(chosen);
    }
    return rc;
}

static int set_str(char **field, const char *value)
{
    free(*field);
    *field = strdup(value ? value : "");
    return *field ? 0 : BTRM_ENOMEM;
}

static int read_run(btrm_report_run *run, int eval_index, btrm_config *cfg, label_cache *cache)
{
    char path[BTRM_PATH_MAX + 64];
    json_error_t jerr;
    json_t *summary = NULL;
    int rc = 0, have_cfg = 0, version = 0;
    const char *train = NULL, *status = NULL, *error = NULL;

    btrm_path_join(path, sizeof path, run->dir, "config.yaml");
    if (has_file(run->dir, "config.yaml")) {
        have_cfg = btrm_config_load(cfg, path, NULL, 0) == 0;
        if (!have_cfg)
            btrm_log_warn("%s: %s", run->dir, btrm_error_msg());
    }
    btrm_path_join(path, sizeof path, run->dir, "summary.json");
    char why[BTRM_PATH_MAX + 300] = "";
    if (has_file(run->dir, "summary.json")) {
        summary = json_load_file(path, 0, &jerr);
        if (!summary) {
            status = "unreadable";
            snprintf(why, sizeof why, "%s:%d: %s", path, jerr.line, jerr.text);
            error = why;
        } else if (btrm_format_json_check(&btrm_format_summary, path, summary, &version)) {
            status = "unreadable";
            snprintf(why, sizeof why, "%s", btrm_error_msg());
            error = why;
        } else {
            status = json_string_value(json_object_get(summary, "status"));
            error = json_string_value(json_object_get(summary, "error"));
            if (!status) {
                status = "unreadable";
                error = "summary.json has no status";
            }
        }
    } else {
        char ckpt[BTRM_PATH_MAX + 64];
        btrm_path_join(ckpt, sizeof ckpt, run->dir, "checkpoints");
        int started = has_file(run->dir, "metrics.jsonl") || is_dir(ckpt);
        status = started ? "running" : "pending";
        error = started ? "no summary.json yet: still running, or killed before writing one"
                        : "not started (no summary.json, no metrics.jsonl)";
    }
    rc = set_str(&run->status, status);
    if (!rc)
        rc = set_str(&run->error, strcmp(status, "ok") ? (error ? error : "") : "");

    const char *name = json_string_value(json_object_get(summary, "run_name"));
    if (!rc)
        rc = set_str(&run->name, name ? name : have_cfg ? cfg->run.name : "");
    if (!rc)
        rc = set_str(&run->loss, have_cfg ? btrm_config_enum_name("loss.type", cfg->loss.type)
                                          : "unknown");
    run->has_seed = have_cfg;
    run->seed = have_cfg ? cfg->run.seed : 0;

    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(summary, "data"), i, d) {
        const char *role = json_string_value(json_object_get(d, "role"));
        if (role && !strcmp(role, "train") && !train)
            train = json_string_value(json_object_get(d, "path"));
    }
    if (!train && have_cfg)
        train = cfg->data.train;
    const char *label = train ? backbone_label(cache, train, run->dir) : "unknown";
    if (!train)
        btrm_log_warn("%s: no training store known (no summary.json data, no config.yaml); "
                      "backbone shown as 'unknown'", run->dir);
    if (!rc)
        rc = label ? set_str(&run->backbone, label) : BTRM_ENOMEM;

    if (!rc && !strcmp(status, "ok")) {
        const json_t *evals = json_object_get(summary, "final_eval");
        if (json_is_array(evals) && json_array_size(evals) > (size_t)eval_index)
            rc = take_eval(run, json_array_get(evals, (size_t)eval_index));
        if (!rc && !run->has_eval)
            rc = eval_from_jsonl(run, eval_index);
        if (!rc && !run->has_eval)
            rc = set_str(&run->error, eval_index ? "no eval result for that data.eval file"
                                                 : "no eval result (empty data.eval?)");
    }
    json_decref(summary);
    return rc ? btrm_error_set(BTRM_ENOMEM, "out of memory reading %s", run->dir) : 0;
}

static void run_free(btrm_report_run *run)
{
    BTRM_FREE(run->dir, run->name, run->status, run->error, run->backbone, run->loss,
              run->eval_file);
    for (int c = 0; c < run->n_cats; c++)
        free(run->cat_names[c]);
    free(run->cat_names);
    free(run->cat_acc);
}

void btrm_report_free(btrm_report *rep)
{
    if (!rep)
        return;
    for (int r = 0; r < rep->n_runs; r++)
        run_free(&rep->runs[r]);
    free(rep->runs);
    memset(rep, 0, sizeof *rep);
}

static int cmp_run_dir(const void *a, const void *b)
{
    return strcmp(((const btrm_report_run *)a)->dir, ((const btrm_report_run *)b)->dir);
}

int btrm_report_collect(btrm_report *rep, const char *const *dirs, int n_dirs, int eval_index)
{
    memset(rep, 0, sizeof *rep);
    rep->eval_index = eval_index;
    int cap = 0, rc = 0;
    label_cache cache = { 0 };
    btrm_config *cfg = NULL;
    uint64_t *ids = NULL; /* (st_dev, st_ino) of each kept run */
    for (int d = 0; d < n_dirs && !rc; d++) {
        if (!is_dir(dirs[d]))
            rc = btrm_error_set(BTRM_EUSAGE, "%s: %s", dirs[d],
                                errno == ENOENT ? "no such directory" : "not a directory");
        else
            rc = find_runs(rep, &cap, dirs[d], 0);
    }
    if (!rc && rep->n_runs == 0)
        rc = btrm_error_set(BTRM_EDATA, "no runs found (directories with summary.json, "
                            "config.yaml or metrics.jsonl, up to %d levels down)", MAX_DEPTH);
    if (rc)
        goto fail;
    /* the same run reached twice (DIR and DIR/runs/0003) is read once */
    qsort(rep->runs, (size_t)rep->n_runs, sizeof *rep->runs, cmp_run_dir);
    rc = BTRM_CALLOC(ids, 2 * (size_t)rep->n_runs);
    int kept = 0;
    for (int r = 0; r < rep->n_runs && !rc; r++) {
        struct stat st;
        int dup = 0;
        ids[2 * kept] = ids[2 * kept + 1] = UINT64_MAX; /* unknown: never a duplicate */
        if (stat(rep->runs[r].dir, &st) == 0) {
            for (int k = 0; k < kept && !dup; k++)
                dup = ids[2 * k] == (uint64_t)st.st_dev && ids[2 * k + 1] == (uint64_t)st.st_ino;
            ids[2 * kept] = (uint64_t)st.st_dev;
            ids[2 * kept + 1] = (uint64_t)st.st_ino;
        }
        if (dup) {
            run_free(&rep->runs[r]);
            continue;
        }
        rep->runs[kept++] = rep->runs[r];
    }
    rep->n_runs = kept;
    if (!rc)
        rc = BTRM_CALLOC(cfg, 1);
    for (int r = 0; r < rep->n_runs && !rc; r++)
        rc = read_run(&rep->runs[r], eval_index, cfg, &cache);
fail:
    free(ids);
    free(cfg);
    label_cache_free(&cache);
    if (rc)
        btrm_report_free(rep);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Tables */

typedef struct stat1 {
    double mean, std; /* std: sample (n - 1), NAN when n < 2 */
    int n;
} stat1;

static stat1 stats(const double *v, int n)
{
    stat1 s = { NAN, NAN, n };
    if (n < 1)
        return s;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    s.mean = sum / n;
    if (n > 1) {
        double ss = 0.0;
        for (int i = 0; i < n; i++)
            ss += (v[i] - s.mean) * (v[i] - s.mean);
        s.std = sqrt(ss / (n - 1));
    }
    return s;
}

typedef struct table {
    int n_cols;          /* accuracy, categories..., category mean */
    char **cols;         /* column names (categories point into the runs) */
    int n_cats;
    int n_groups;
    int *group_first;    /* [n_groups + 1] offsets into members */
    int *members;        /* run indices with an eval result, grouped */
    stat1 *cells;        /* [n_groups][n_cols] */
    int *best;           /* [n_groups][n_cols] 1 = best mean of its column */
} table;

/* The value of column c for run r (0: accuracy, 1..n_cats: a category,
 * n_cats + 1: the mean of the run's categories); 0 when the run has none. */
static int run_value(const table *t, const btrm_report_run *run, int c, double *out)
{
    if (c == 0) {
        *out = run->accuracy;
        return 1;
    }
    if (c <= t->n_cats) {
        for (int k = 0; k < run->n_cats; k++)
            if (!strcmp(run->cat_names[k], t->cols[c])) {
                *out = run->cat_acc[k];
                return 1;
            }
        return 0;
    }
    if (run->n_cats == 0)
        return 0;
    double sum = 0.0;
    for (int k = 0; k < run->n_cats; k++)
        sum += run->cat_acc[k];
    *out = sum / run->n_cats;
    return 1;
}

static const btrm_report_run *const *sort_runs; /* for cmp_group (qsort has no context) */

static int cmp_group(const void *a, const void *b)
{
    const btrm_report_run *x = sort_runs[*(const int *)a], *y = sort_runs[*(const int *)b];
    int c = strcmp(x->backbone, y->backbone);
    if (!c)
        c = strcmp(x->loss, y->loss);
    if (!c)
        c = x->seed < y->seed ? -1 : x->seed > y->seed;
    if (!c)
        c = strcmp(x->dir, y->dir);
    return c;
}

static void table_free(table *t)
{
    BTRM_FREE(t->cols, t->group_first, t->members, t->cells, t->best);
}

static int build_table(const btrm_report *rep, table *t)
{
    memset(t, 0, sizeof *t);
    int n_cat_max = 0, n_members = 0;
    for (int r = 0; r < rep->n_runs; r++)
        if (rep->runs[r].has_eval) {
            n_cat_max += rep->runs[r].n_cats;
            n_members++;
        }
    t->cols = calloc((size_t)n_cat_max + 2, sizeof *t->cols);
    t->members = calloc((size_t)n_members + 1, sizeof *t->members);
    t->group_first = calloc((size_t)n_members + 2, sizeof *t->group_first);
    if (!t->cols || !t->members || !t->group_first)
        return btrm_error_set(BTRM_ENOMEM, "out of memory building the report");
    /* columns: the union of the categories, sorted by name */
    t->cols[0] = "accuracy";
    for (int r = 0; r < rep->n_runs; r++)
        for (int k = 0; rep->runs[r].has_eval && k < rep->runs[r].n_cats; k++) {
            int found = 0;
            for (int c = 1; c <= t->n_cats && !found; c++)
                found = !strcmp(t->cols[c], rep->runs[r].cat_names[k]);
            if (!found)
                t->cols[1 + t->n_cats++] = rep->runs[r].cat_names[k];
        }
    qsort(t->cols + 1, (size_t)t->n_cats, sizeof *t->cols, cmp_str);
    t->n_cols = 1 + t->n_cats;
    if (t->n_cats)
        t->cols[t->n_cols++] = "category mean";

    /* groups: runs with an eval result by (backbone, loss), then seed */
    const btrm_report_run **ptrs = calloc((size_t)rep->n_runs + 1, sizeof *ptrs);
    if (!ptrs)
        return btrm_error_set(BTRM_ENOMEM, "out of memory building the report");
    for (int r = 0; r < rep->n_runs; r++)
        ptrs[r] = &rep->runs[r];
    int m = 0;
    for (int r = 0; r < rep->n_runs; r++)
        if (rep->runs[r].has_eval)
            t->members[m++] = r;
    sort_runs = ptrs;
    qsort(t->members, (size_t)m, sizeof *t->members, cmp_group);
    sort_runs = NULL;
    free(ptrs);
    for (int i = 0; i < m; i++) {
        const btrm_report_run *x = &rep->runs[t->members[i]];
        const btrm_report_run *prev = i ? &rep->runs[t->members[i - 1]] : NULL;
        if (!prev || strcmp(x->backbone, prev->backbone) || strcmp(x->loss, prev->loss))
            t->group_first[t->n_groups++] = i;
    }
    t->group_first[t->n_groups] = m;

    t->cells = calloc((size_t)t->n_groups * (size_t)t->n_cols + 1, sizeof *t->cells);
    t->best = calloc((size_t)t->n_groups * (size_t)t->n_cols + 1, sizeof *t->best);
    double *values = calloc((size_t)m + 1, sizeof *values);
    if (!t->cells || !t->best || !values) {
        free(values);
        return btrm_error_set(BTRM_ENOMEM, "out of memory building the report");
    }
    for (int g = 0; g < t->n_groups; g++)
        for (int c = 0; c < t->n_cols; c++) {
            int n = 0;
            for (int i = t->group_first[g]; i < t->group_first[g + 1]; i++)
                n += run_value(t, &rep->runs[t->members[i]], c, &values[n]);
            t->cells[g * t->n_cols + c] = stats(values, n);
        }
    free(values);
    for (int c = 0; c < t->n_cols; c++) {
        double top = -INFINITY;
        for (int g = 0; g < t->n_groups; g++)
            if (t->cells[g * t->n_cols + c].n > 0 && t->cells[g * t->n_cols + c].mean > top)
                top = t->cells[g * t->n_cols + c].mean;
        for (int g = 0; g < t->n_groups && t->n_groups > 1; g++)
            t->best[g * t->n_cols + c] =
                t->cells[g * t->n_cols + c].n > 0 && t->cells[g * t->n_cols + c].mean == top;
    }
    return 0;
}

/* NormBT - BT for backbone group pair (g_bt, g_nb), column c: the per-seed
 * differences over the seeds both ran (paired), else the difference of the
 * means (paired = 0). */
static stat1 diff_cell(const btrm_report *rep, const table *t, int g_bt, int g_nb, int c,
                       int *paired)
{
    int n_bt = t->group_first[g_bt + 1] - t->group_first[g_bt];
    double *d = calloc((size_t)n_bt + 1, sizeof *d);
    int n = 0;
    for (int i = t->group_first[g_bt]; d && i < t->group_first[g_bt + 1]; i++) {
        const btrm_report_run *a = &rep->runs[t->members[i]];
        if (i > t->group_first[g_bt] && rep->runs[t->members[i - 1]].seed == a->seed)
            continue; /* the first run of each seed */
        for (int j = t->group_first[g_nb]; j < t->group_first[g_nb + 1]; j++) {
            const btrm_report_run *b = &rep->runs[t->members[j]];
            double va, vb;
            if (!a->has_seed || !b->has_seed || b->seed != a->seed)
                continue;
            if (run_value(t, a, c, &va) && run_value(t, b, c, &vb))
                d[n++] = vb - va;
            break;
        }
    }
    stat1 s;
    *paired = n > 0;
    if (n > 0) {
        s = stats(d, n);
    } else {
        const stat1 *x = &t->cells[g_bt * t->n_cols + c], *y = &t->cells[g_nb * t->n_cols + c];
        s = (stat1){ y->mean - x->mean, NAN, x->n && y->n ? 0 : -1 };
        if (!(x->n && y->n))
            s.mean = NAN;
    }
    free(d);
    return s;
}

/* Markdown cell text: '|' escaped, line breaks as spaces. */
static void md_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n' || *s == '\r' || *s == '\t')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

static void csv_text(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void seeds_text(const btrm_report *rep, const table *t, int g, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = t->group_first[g]; i < t->group_first[g + 1] && used < size; i++) {
        const btrm_report_run *run = &rep->runs[t->members[i]];
        int n = run->has_seed ? snprintf(buf + used, size - used, "%s%llu", used ? " " : "",
                                         (unsigned long long)run->seed)
                              : snprintf(buf + used, size - used, "%s?", used ? " " : "");
        used += n > 0 ? (size_t)n : 0;
    }
}

static int find_group(const btrm_report *rep, const table *t, const char *backbone,
                      const char *loss)
{
    for (int g = 0; g < t->n_groups; g++) {
        const btrm_report_run *run = &rep->runs[t->members[t->group_first[g]]];
        if (!strcmp(run->backbone, backbone) && !strcmp(run->loss, loss))
            return g;
    }
    return -1;
}

static void write_md(const btrm_report *rep, const table *t, FILE *out)
{
    int counts[6] = { 0 }, n_unfinished = 0;
    const char *kinds[6] = { "ok", "failed", "preempted", "running", "pending", "other" };
    for (int r = 0; r < rep->n_runs; r++) {
        const btrm_report_run *run = &rep->runs[r];
        int k = 0;
        while (k < 5 && strcmp(run->status, kinds[k]))
            k++;
        counts[k]++;
        n_unfinished += !run->has_eval;
    }
    fprintf(out, "# btrm report\n\n%d run%s:", rep->n_runs, rep->n_runs == 1 ? "" : "s");
    for (int k = 0, first = 1; k < 6; k++)
        if (counts[k]) {
            fprintf(out, "%s %d %s", first ? "" : ",", counts[k], kinds[k]);
            first = 0;
        }
    fprintf(out, ". Eval set: file %d of data.eval", rep->eval_index + 1);
    /* the distinct eval files, in run order */
    int n_files = 0;
    for (int r = 0; r < rep->n_runs; r++) {
        const btrm_report_run *run = &rep->runs[r];
        int seen = !run->has_eval;
        for (int q = 0; q < r && !seen; q++)
            seen = rep->runs[q].has_eval && !strcmp(rep->runs[q].eval_file, run->eval_file);
        if (seen)
            continue;
        fputs(n_files++ ? ", " : " (", out);
        md_text(out, run->eval_file);
    }
    if (n_files)
        fputs(")", out);
    fputs(".\n\n", out);

    if (t->n_groups > 0) {
        fputs("## Accuracy (%)\n\nMean ± sample standard deviation over the runs of each row "
              "(n runs, their seeds); **bold**: the best mean of its column", out);
        if (t->n_cats)
            fputs("; one column per category of the eval set, and their unweighted mean "
                  "(RewardBench-style score)", out);
        fputs(".\n\n| backbone | loss | n | seeds |", out);
        for (int c = 0; c < t->n_cols; c++) {
            fputc(' ', out);
            md_text(out, t->cols[c]);
            fputs(" |", out);
        }
        fputs("\n|---|---|--:|---|", out);
        for (int c = 0; c < t->n_cols; c++)
            fputs("--:|", out);
        fputc('\n', out);
        for (int g = 0; g < t->n_groups; g++) {
            const btrm_report_run *first = &rep->runs[t->members[t->group_first[g]]];
            int n = t->group_first[g + 1] - t->group_first[g];
            char seeds[256];
            seeds_text(rep, t, g, seeds, sizeof seeds);
            fputs("| ", out);
            md_text(out, first->backbone);
            fputs(" | ", out);
            md_text(out, first->loss);
            fprintf(out, " | %d | %s |", n, seeds);
            for (int c = 0; c < t->n_cols; c++) {
                const stat1 *s = &t->cells[g * t->n_cols + c];
                const char *b = t->best[g * t->n_cols + c] ? "**" : "";
                char only[32] = "";
                if (s->n > 0 && s->n != n)
                    snprintf(only, sizeof only, " (n=%d)", s->n);
                if (s->n == 0)
                    fputs(" – |", out);
                else if (s->n == 1)
                    fprintf(out, " %s%.2f%s%s |", b, 100 * s->mean, b, only);
                else
                    fprintf(out, " %s%.2f ± %.2f%s%s |", b, 100 * s->mean, 100 * s->std, b,
                            only);
            }
            fputc('\n', out);
        }
        fputc('\n', out);

        /* NormBT - BT, one row per backbone that has both */
        int printed = 0;
        for (int g = 0; g < t->n_groups; g++) {
            const btrm_report_run *first = &rep->runs[t->members[t->group_first[g]]];
            if (strcmp(first->loss, "bt"))
                continue;
            int g_nb = find_group(rep, t, first->backbone, "normbt");
            if (g_nb < 0)
                continue;
            if (!printed++) {
                fputs("## NormBT − BT per backbone (percentage points)\n\nMean ± sample "
                      "standard deviation of the per-seed differences normbt − bt over the "
                      "seeds both losses ran (n pairs); without common seeds, the difference "
                      "of the means.\n\n| backbone | n |", out);
                for (int c = 0; c < t->n_cols; c++) {
                    fputc(' ', out);
                    md_text(out, t->cols[c]);
                    fputs(" |", out);
                }
                fputs("\n|---|--:|", out);
                for (int c = 0; c < t->n_cols; c++)
                    fputs("--:|", out);
                fputc('\n', out);
            }
            fputs("| ", out);
            md_text(out, first->backbone);
            int paired = 0;
            stat1 acc = diff_cell(rep, t, g, g_nb, 0, &paired);
            if (paired)
                fprintf(out, " | %d |", acc.n);
            else
                fputs(" | unpaired |", out);
            for (int c = 0; c < t->n_cols; c++) {
                stat1 s = diff_cell(rep, t, g, g_nb, c, &paired);
                if (isnan(s.mean))
                    fputs(" – |", out);
                else if (isnan(s.std))
                    fprintf(out, " %+.2f |", 100 * s.mean);
                else
                    fprintf(out, " %+.2f ± %.2f |", 100 * s.mean, 100 * s.std);
            }
            fputc('\n', out);
        }
        if (printed)
            fputc('\n', out);
    }

    if (n_unfinished) {
        fprintf(out, "## Runs not in the table (%d)\n\n| run | status | backbone | loss | seed "
                "| error |\n|---|---|---|---|--:|---|\n", n_unfinished);
        for (int r = 0; r < rep->n_runs; r++) {
            const btrm_report_run *run = &rep->runs[r];
            if (run->has_eval)
                continue;
            fputs("| ", out);
            md_text(out, run->dir);
            fputs(" | ", out);
            md_text(out, run->status);
            fputs(" | ", out);
            md_text(out, run->backbone);
            fputs(" | ", out);
            md_text(out, run->loss);
            if (run->has_seed)
                fprintf(out, " | %llu | ", (unsigned long long)run->seed);
            else
                fputs(" | ? | ", out);
            md_text(out, run->error);
            fputs(" |\n", out);
        }
    }
}

static void csv_number(FILE *out, double v)
{
    if (!isnan(v))
        fprintf(out, "%.6f", v);
}

static void write_csv(const btrm_report *rep, const table *t, FILE *out)
{
    fputs("table,backbone,loss,n,seeds", out);
    for (int c = 0; c < t->n_cols; c++) {
        const char *suffix[3] = { "_mean", "_std", "_best" };
        for (int k = 0; k < 3; k++) {
            int is_mean = t->n_cats && c == t->n_cols - 1;
            char *name = btrm_strdup_printf("%s%s", is_mean ? "category_mean" : t->cols[c], suffix[k]);
            fputc(',', out);
            csv_text(out, name ? name : "?");
            free(name);
        }
    }
    fputs(",status,run,error\n", out);
    for (int g = 0; g < t->n_groups; g++) {
        const btrm_report_run *first = &rep->runs[t->members[t->group_first[g]]];
        char seeds[256];
        seeds_text(rep, t, g, seeds, sizeof seeds);
        fputs("result,", out);
        csv_text(out, first->backbone);
        fputc(',', out);
        csv_text(out, first->loss);
        fprintf(out, ",%d,%s", t->group_first[g + 1] - t->group_first[g], seeds);
        for (int c = 0; c < t->n_cols; c++) {
            const stat1 *s = &t->cells[g * t->n_cols + c];
            fputc(',', out);
            csv_number(out, s->n ? s->mean : NAN);
            fputc(',', out);
            csv_number(out, s->std);
            fprintf(out, ",%d", t->best[g * t->n_cols + c]);
        }
        fputs(",,,\n", out);
    }
    for (int g = 0; g < t->n_groups; g++) {
        const btrm_report_run *first = &rep->runs[t->members[t->group_first[g]]];
        int g_nb = strcmp(first->loss, "bt") ? -1 : find_group(rep, t, first->backbone, "normbt");
        if (g_nb < 0)
            continue;
        int paired = 0;
        stat1 acc = diff_cell(rep, t, g, g_nb, 0, &paired);
        fputs("normbt-bt,", out);
        csv_text(out, first->backbone);
        fputs(",normbt-bt,", out);
        if (paired)
            fprintf(out, "%d", acc.n);
        fputc(',', out);
        for (int c = 0; c < t->n_cols; c++) {
            stat1 s = diff_cell(rep, t, g, g_nb, c, &paired);
            fputc(',', out);
            csv_number(out, s.mean);
            fputc(',', out);
            csv_number(out, s.std);
            fputc(',', out);
        }
        fputs(",,,\n", out);
    }
    for (int r = 0; r < rep->n_runs; r++) {
        const btrm_report_run *run = &rep->runs[r];
        if (run->has_eval)
            continue;
        fputs("unfinished,", out);
        csv_text(out, run->backbone);
        fputc(',', out);
        csv_text(out, run->loss);
        fputs(",,", out);
        if (run->has_seed)
            fprintf(out, "%llu", (unsigned long long)run->seed);
        for (int c = 0; c < t->n_cols; c++)
            fputs(",,,", out);
        fputc(',', out);
        csv_text(out, run->status);
        fputc(',', out);
        csv_text(out, run->dir);
        fputc(',', out);
        csv_text(out, run->error);
        fputc('\n', out);
    }
}

int btrm_report_write(const btrm_report *rep, FILE *out, enum btrm_report_format format)
{
    table t;
    int rc = build_table(rep, &t);
    if (!rc) {
        if (format == BTRM_REPORT_CSV)
            write_csv(rep, &t, out);
        else
            write_md(rep, &t, out);
    }
    table_free(&t);
    return rc;
}
