/* rundir.c: a training run's outputs (see rundir.h). */
#include "rundir.h"

#include "compute.h"
#include "error.h"
#include "fileutil.h"
#include "format.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int btrm_rundir_init(btrm_rundir *r, const btrm_config *cfg, const btrm_comm *c)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->c = c;
    r->t_start = btrm_comm_wtime();
    int rc = btrm_config_out_dir(cfg, r->dir, sizeof r->dir);
    if (!rc && c->rank == 0)
        rc = btrm_mkdir_p(r->dir);
    return btrm_comm_agree(c, rc);
}

/* Keeps the lines of a JSONL log whose "step" is at most max_step (the
 * checkpoint a run resumes from): what the interrupted run wrote past it is
 * dropped. A missing file is an empty log. Rank 0 only. */
static int truncate_log(const char *path, int64_t max_step)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return 0;
    char *kept = NULL, *line = NULL;
    size_t kept_len = 0, cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        json_int_t step = j ? json_integer_value(json_object_get(j, "step")) : max_step + 1;
        json_decref(j);
        if (step > max_step)
            break; /* the log is in step order */
        char *grown = realloc(kept, kept_len + (size_t)n + 1);
        if (!grown) {
            rc = btrm_error_set(BTRM_ENOMEM, "out of memory reading %s", path);
            break;
        }
        kept = grown;
        memcpy(kept + kept_len, line, (size_t)n);
        kept_len += (size_t)n;
    }
    fclose(in);
    free(line);
    if (!rc)
        rc = btrm_write_atomic(path, kept ? kept : "", kept_len);
    free(kept);
    return rc;
}

int btrm_rundir_open_logs(btrm_rundir *r, const char *config_text, int64_t resumed_step)
{
    int rc = 0;
    if (r->c->rank == 0 && config_text) {
        char path[BTRM_PATH_MAX + 64];
        btrm_path_join(path, sizeof path, r->dir, "config.yaml");
        rc = btrm_write_atomic(path, config_text, strlen(config_text));
    }
    if (r->c->rank == 0 && !rc) {
        const char *names[2] = { "metrics.jsonl", "eval.jsonl" };
        FILE **files[2] = { &r->metrics, &r->evals };
        for (int k = 0; k < 2 && !rc; k++) {
            char path[BTRM_PATH_MAX + 64];
            btrm_path_join(path, sizeof path, r->dir, names[k]);
            if (resumed_step >= 0)
                rc = truncate_log(path, resumed_step);
            if (!rc && !(*files[k] = fopen(path, resumed_step >= 0 ? "a" : "w")))
                rc = btrm_error_set(BTRM_EIO, "cannot create %s", path);
        }
    }
    return btrm_comm_agree(r->c, rc);
}

/* One line of a log; a write failure is a warning (the run goes on). */
static void append(FILE *log, const json_t *line, const char *name)
{
    if (btrm_jsonl_write(log, line, name) != 0 || fflush(log) != 0)
        btrm_log_warn("%s", btrm_error_msg());
}

void btrm_rundir_metrics(btrm_rundir *r, json_t *line)
{
    if (r->c->rank != 0 || !line) {
        json_decref(line);
        return;
    }
    append(r->metrics, line, "metrics.jsonl");
    json_decref(r->last_metrics);
    r->last_metrics = line;
}

void btrm_rundir_evals(btrm_rundir *r, json_t *results)
{
    if (r->c->rank != 0 || !results) {
        json_decref(results);
        return;
    }
    size_t i;
    json_t *line;
    json_array_foreach(results, i, line)
        append(r->evals, line, "eval.jsonl");
    json_decref(r->last_evals);
    r->last_evals = results;
}

void btrm_rundir_summary(btrm_rundir *r, const btrm_run_summary *s)
{
    if (!r->c || r->c->rank != 0 || !r->dir[0])
        return;
    const btrm_config *cfg = r->cfg;
    const char *status = s->status_rc == 0 ? "ok"
                         : s->status_rc == BTRM_EPREEMPT ? "preempted" : "failed";
    char hash[17] = "";
    if (s->config_text)
        snprintf(hash, sizeof hash, "%016llx",
                 (unsigned long long)XXH3_64bits(s->config_text, strlen(s->config_text)));
    json_t *data = json_array();
    for (int e = -1; e < cfg->data.n_eval; e++) {
        const btrm_pairs *p = e < 0 ? s->train : &s->eval[e];
        char crc[9] = "";
        if (p->chosen) /* opened: the checksum is known */
            snprintf(crc, sizeof crc, "%08x", (unsigned)p->crc32);
        json_array_append_new(data, json_pack("{s:s, s:s, s:s}", "role", e < 0 ? "train" : "eval",
                                              "path", e < 0 ? cfg->data.train : cfg->data.eval[e],
                                              "crc32", crc));
    }
    json_t *doc = json_object();
    btrm_format_json_stamp(doc, &btrm_format_summary);
    json_t *body = json_pack("{s:s, s:s, s:s, s:o, s:i, s:I, s:I, s:f}",
                                      "status", status, "run_name", cfg->run.name,
                                      "config_hash", hash, "data", data, "ranks", r->c->size,
                                      "steps", (json_int_t)s->steps,
                                      "total_steps", (json_int_t)s->total_steps,
                                      "wall_s", btrm_comm_wtime() - r->t_start);
    json_object_update(doc, body);
    json_decref(body);
    if (s->status_rc != 0)
        json_object_set_new(doc, "error", json_string(btrm_error_msg()));
    json_object_set(doc, "final_metrics", r->last_metrics ? r->last_metrics : json_null());
    json_object_set(doc, "final_eval", r->last_evals ? r->last_evals : json_null());
    json_object_set_new(doc, "dist_ema", json_real(s->dist_ema));
    json_object_set_new(doc, "loss", json_string(btrm_config_enum_name("loss.type", cfg->loss.type)));
    json_object_set_new(doc, "seed", json_integer((json_int_t)cfg->run.seed));
    json_object_set_new(doc, "compute", btrm_compute_json(cfg->train.precision, cfg->run.threads));
    char path[BTRM_PATH_MAX + 64];
    btrm_path_join(path, sizeof path, r->dir, "summary.json");
    int saved_code = btrm_error_code();
    char saved[BTRM_ERROR_MAX];
    snprintf(saved, sizeof saved, "%s", btrm_error_msg());
    if (btrm_mkdir_p(r->dir) == 0 && btrm_json_write_atomic(path, doc) == 0)
        btrm_log_debug("wrote %s", path);
    else
        btrm_log_warn("could not write %s: %s", path, btrm_error_msg());
    btrm_error_set(saved_code, "%s", saved);
    json_decref(doc);
}

void btrm_rundir_close(btrm_rundir *r)
{
    if (r->metrics)
        fclose(r->metrics);
    if (r->evals)
        fclose(r->evals);
    json_decref(r->last_metrics);
    json_decref(r->last_evals);
    r->metrics = r->evals = NULL;
    r->last_metrics = r->last_evals = NULL;
}
