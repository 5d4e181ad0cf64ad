/* compute.h: the compute engine as a run sees it (run layer): the GEMM
 * precision a config asks for, the threads, and the record of what ran (the
 * backend, the ISA oneDNN dispatched to, and per product shape the
 * implementation, calls and speed) for `-v` logs and summary.json. */
#ifndef BTRM_COMPUTE_H
#define BTRM_COMPUTE_H

#include <jansson.h>

/* Checks that this build runs GEMMs in precision (a BTRM_PREC_* value of the
 * config key `key`, e.g. "train.precision"), sets BLAS and oneDNN threads,
 * clears the statistics and logs the engine (debug level). 0, or BTRM_ECONFIG
 * naming the key and the missing library. */
int btrm_compute_setup(const char *key, int precision, int threads);

/* One debug line per product shape recorded since the setup. */
void btrm_compute_log(void);

/* {"backend", "libraries", "isa", "precision", "threads", "gemm": [{"precision",
 *  "op", "m", "n", "k", "impl", "calls", "seconds", "gflops"}...],
 *  "gemm_other": {"calls", "seconds", "gflops"}} (new reference). */
json_t *btrm_compute_json(int precision, int threads);

#endif
