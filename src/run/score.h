/* score.h: `btrm score`: the reward of each text of a JSONL file, from a
 * backbone's features and a trained head (model/reward.h: the head one row
 * at a time, so that a text's reward is what `btrm serve` answers for it).
 * One process, no MPI. */
#ifndef BTRM_SCORE_H
#define BTRM_SCORE_H

#include "config.h"

#define BTRM_SCORE_BATCH_DEFAULT 64

typedef struct btrm_score_opts {
    const char *model_path;   /* a model file (btrm train's final.h5) */
    const char *backbone;     /* NAME[:ARGS], or NULL: the one the model records
                               * (reward.h: btrm_reward_open); NULL for a model
                               * that carries its own backbone (model.backbone) */
    const char *texts_path;   /* JSON lines {"text": ..., "id": ...}; "-" = stdin */
    const char *out_path;     /* NULL: stdout */
    int batch;                /* texts per backbone call */
    int invariant;            /* each text through the backbone on its own */
} btrm_score_opts;

/* Reads {"text": ...} lines (blank lines skipped, other keys ignored, "id"
 * copied) and writes one line {"reward": r} or {"id": ..., "reward": r}
 * per text, in order. The config's embed.* keys set the backbone's options
 * below the model's recorded settings. Errors name the file and line; a
 * backbone that makes features another way than the model's is refused. */
int btrm_score_run(const btrm_score_opts *opts, const btrm_config *cfg);

#endif
