/* report.h: the results of many runs in one table (`btrm report`).
 *
 * Collects every run found under the given directories (a run directory, a
 * sweep directory with runs/<iiii>, or a directory of those, up to two levels
 * down): its status and error (summary.json), loss and seed (config.yaml),
 * the backbone label (the `backbone` attribute of /features in the training
 * store, read with HDF5) and its final eval result (summary.json's
 * final_eval, else the last step of eval.jsonl). Tabulates rows backbone x
 * loss, columns overall accuracy, each category's accuracy and their mean, as
 * mean +- sample std over seeds; the NormBT - BT difference per backbone; and
 * lists the runs that are not finished (failed, preempted, running, pending,
 * no eval result). Serial; io layer (jansson, HDF5). docs/sweep.md. */
#ifndef BTRM_REPORT_H
#define BTRM_REPORT_H

#include <stdint.h>
#include <stdio.h>

enum btrm_report_format { BTRM_REPORT_MD = 0, BTRM_REPORT_CSV = 1 };

typedef struct btrm_report_run {
    char *dir;        /* the run directory, as found */
    char *name;       /* run.name ("" when unknown) */
    char *status;     /* ok, failed, preempted, running, pending */
    char *error;      /* why it is not in the table ("" when it is) */
    char *backbone;   /* the training store's /features backbone, or "unknown" */
    char *loss;       /* loss.type, or "unknown" */
    char *eval_file;  /* the eval result's file ("" when none) */
    uint64_t seed;    /* run.seed */
    int has_seed, has_eval;
    double accuracy;  /* of the eval result */
    int n_cats;
    char **cat_names; /* by_category, sorted by name */
    double *cat_acc;
} btrm_report_run;

typedef struct btrm_report {
    btrm_report_run *runs; /* sorted by directory */
    int n_runs;
    int eval_index;        /* which file of data.eval the table shows */
} btrm_report;

/* Finds and reads the runs under dirs. eval_index: the position in data.eval
 * of the eval set to tabulate (0 = the first). Unreadable parts of a run give
 * warnings and "unknown" fields, not errors. BTRM_EUSAGE when a directory does
 * not exist, BTRM_EDATA when no run is found, BTRM_ENOMEM. */
int btrm_report_collect(btrm_report *rep, const char *const *dirs, int n_dirs, int eval_index);

/* Writes the tables (docs/sweep.md): markdown or CSV. */
int btrm_report_write(const btrm_report *rep, FILE *out, enum btrm_report_format format);

void btrm_report_free(btrm_report *rep);

#endif
