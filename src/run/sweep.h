/* sweep.h: a sweep file (a base config and a grid of overrides) expanded into
 * one resolved config per run, written to a sweep directory that a Slurm array
 * job runs (slurm/sweep.sbatch; task i runs DIR/runs/<iiii>/config.yaml).
 *
 * A sweep file (YAML; docs/sweep.md):
 *
 *   name: normbt-vs-bt              # optional; default: the file name
 *   base: ../backbones/hash-4096.yaml   # a path or a list of paths, merged in order
 *   settings: normbt-vs-bt.yaml     # optional: files merged on top of each base
 *   grid:                           # cartesian product, the last key varies fastest
 *     base: [../backbones/hash-1024.yaml, ../backbones/hash-4096.yaml]
 *     loss.type: [bt, normbt]
 *     run.seed: [1, 2, 3]
 *   zip:                            # optional groups varied together
 *     - {optim.lr: [1e-3, 3e-4], optim.warmup_steps: [0, 100]}
 *
 * Paths of the sweep file (base, settings, grid base values) are relative to
 * its directory. Every run gets run.name = <name>-<iiii> and run.out_dir =
 * DIR/runs/<iiii>. Serial; libyaml, jansson and the config module; no MPI, no
 * HDF5. */
#ifndef BTRM_SWEEP_H
#define BTRM_SWEEP_H

#include "config.h"

#include <stddef.h>

#define BTRM_SWEEP_MAX_RUNS 10000 /* run directories have 4 digits */

typedef struct btrm_sweep_run {
    int index;
    char name[BTRM_NAME_MAX]; /* <sweep name>-<iiii> */
    char *overrides;          /* the run's grid and zip values, "k=v;k=v" ("" for none) */
    char *config_text;        /* the resolved config.yaml (btrm_config_emit_string) */
    char config_hash[17];     /* XXH3-64 of config_text, hex: summary.json's config_hash */
} btrm_sweep_run;

typedef struct btrm_sweep {
    char *path;               /* the sweep file, as given */
    char *out_dir;            /* DIR, trailing slashes removed */
    char name[BTRM_NAME_MAX];
    unsigned char *text;      /* the sweep file's bytes */
    size_t len;
    int n_runs;
    btrm_sweep_run *runs;     /* [n_runs], in index order */
    char hash[17];            /* XXH3-64 of the resolved content (every run's index,
                                 name, overrides and config text), hex */
} btrm_sweep;

/* Reads the sweep file at path, expands the grid and zip groups, resolves
 * every run's config (btrm_config_load + overrides) and validates it
 * (btrm_config_validate). Nothing is written. Errors: BTRM_ECONFIG with
 * "SWEEP:LINE:COL: ..." for the sweep file, or "WHERE: run <iiii> (k=v;...):
 * KEY=VALUE: message" for a value that a run's config refuses; BTRM_EIO,
 * BTRM_ENOMEM. On error sw holds nothing (btrm_sweep_free is still safe). */
int btrm_sweep_load(btrm_sweep *sw, const char *path, const char *out_dir);

/* What btrm_sweep_write did. */
typedef struct btrm_sweep_result {
    int created;       /* 1: DIR held no sweep and was written */
    int n_restored;    /* config.yaml files of an unchanged sweep that were missing */
    int n_finished;    /* runs whose summary.json says status ok */
    char *finished;    /* [n_runs] 1 = finished (malloc'ed; caller frees) */
} btrm_sweep_result;

/* Writes the sweep directory: DIR/runs/<iiii>/config.yaml for every run,
 * DIR/runs.tsv (index, name, overrides), DIR/sweep.yaml (a copy of the sweep
 * file), DIR/logs/ and, last, DIR/sweep.json (format, name, hash, runs) - each
 * file atomically. When DIR already holds a sweep with the same hash, nothing
 * is rewritten (missing run configs are restored); when it holds another one,
 * it is refused (BTRM_ECONFIG) with a message saying what changed. */
int btrm_sweep_write(const btrm_sweep *sw, btrm_sweep_result *result);

/* 1 when run_dir/summary.json exists and says "status": "ok", else 0. */
int btrm_sweep_run_finished(const char *run_dir);

/* "0-3,5,7-9" (Slurm --array syntax) of the indices i < n with skip[i] == 0
 * (skip NULL: all); "" when none. Caller frees. */
char *btrm_sweep_index_ranges(int n, const char *skip);

void btrm_sweep_free(btrm_sweep *sw);
void btrm_sweep_result_free(btrm_sweep_result *result);

#endif
