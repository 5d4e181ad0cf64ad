/* rundir.h: a training run's output directory (docs/format.md, "Run
 * outputs"): config.yaml, metrics.jsonl and eval.jsonl (a resumed run keeps
 * the lines up to its checkpoint's step), and summary.json. Orchestration
 * layer: rank 0 writes; calls marked collective are made by every rank. */
#ifndef BTRM_RUNDIR_H
#define BTRM_RUNDIR_H

#include "comm.h"
#include "config.h"
#include "pairs.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

typedef struct btrm_rundir {
    const btrm_config *cfg;
    const btrm_comm *c;
    char dir[BTRM_PATH_MAX];      /* run.out_dir, or runs/<run.name> */
    FILE *metrics, *evals;        /* rank 0, once the logs are open */
    json_t *last_metrics;         /* the last metrics line (summary's final_metrics) */
    json_t *last_evals;           /* the last eval results, an array (final_eval) */
    double t_start;               /* btrm_comm_wtime() at init */
} btrm_rundir;

/* Collective: the directory of cfg's run, created by rank 0. */
int btrm_rundir_init(btrm_rundir *r, const btrm_config *cfg, const btrm_comm *c);

/* Collective: writes config.yaml (when config_text is not NULL) and opens
 * metrics.jsonl and eval.jsonl: new files, or, when resumed_step >= 0, the
 * lines whose step is at most resumed_step followed by the new ones. Called
 * once the run is known to start, so a refused resume leaves the directory
 * as it was. */
int btrm_rundir_open_logs(btrm_rundir *r, const char *config_text, int64_t resumed_step);

/* Rank 0: appends line to metrics.jsonl and keeps it as the last metrics
 * (takes the reference). Other ranks: drops it. */
void btrm_rundir_metrics(btrm_rundir *r, json_t *line);
/* Rank 0: appends each result of the array to eval.jsonl and keeps the
 * array as the last evals (takes the reference). */
void btrm_rundir_evals(btrm_rundir *r, json_t *results);

/* What summary.json reports besides the config and the last logs. */
typedef struct btrm_run_summary {
    int status_rc;                /* 0, BTRM_EPREEMPT or the failure (its message) */
    const char *config_text;      /* hashed into config_hash; may be NULL */
    const btrm_pairs *train;      /* the stores (crc32 when opened) */
    const btrm_pairs *eval;       /* [cfg->data.n_eval] */
    int64_t steps, total_steps;
    double dist_ema;
} btrm_run_summary;

/* Rank 0: writes summary.json (format summary-v1) atomically; a failure is
 * a warning and leaves the recorded error message as it was. */
void btrm_rundir_summary(btrm_rundir *r, const btrm_run_summary *s);

void btrm_rundir_close(btrm_rundir *r);

#endif
