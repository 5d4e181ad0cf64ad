/* train.h: the data-parallel trainer (docs/training.md, "Data parallelism").
 * Orchestrator: reads the pair stores (pairs), runs the head and loss (math)
 * on this rank's slice of every global batch, all-reduces gradients (comm),
 * updates, evaluates and writes the run's outputs. */
#ifndef BTRM_TRAIN_H
#define BTRM_TRAIN_H

#include "comm.h"
#include "config.h"

typedef struct btrm_train_opts {
    const char *init_model;   /* --init MODEL.h5: start from these weights, or NULL */
    const char *config_text;  /* the resolved config as YAML (config.yaml, hash) */
    const char *resume;       /* --resume: "auto", a checkpoint path, or NULL */
} btrm_train_opts;

/* Collective over c. Returns 0 or the agreed error code (the same on every
 * rank); rank 0 has written summary.json with the outcome whenever it could. */
int btrm_train_run(const btrm_config *cfg, const btrm_train_opts *opts,
                   const btrm_comm *c);

#endif
