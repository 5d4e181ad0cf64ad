/* generate.h: `btrm generate`, greedy generation with a gguf or llama2c
 * model (a debug tool: every step recomputes the prefill of the whole
 * sequence, so it also tests the batched prefill at every length), the
 * final hidden states of given token sequences, or the token ids embed
 * feeds for a prompt. Orchestrator over llama_model (io) and the Llama math.
 * One process, no MPI; output on stdout. */
#ifndef BTRM_GENERATE_H
#define BTRM_GENERATE_H

#include "config.h"

typedef struct btrm_generate_opts {
    const char *backbone;     /* gguf:MODEL.gguf[,...] or llama2c:MODEL.bin[,...] */
    const char *prompt;       /* generate or tokenize this (may be NULL with hidden_path) */
    const char *hidden_path;  /* token sequences, one per line: print their hidden states */
    int steps;                /* positions to fill, prompt included */
    int show_ids;             /* print token ids instead of text */
    int tokenize;             /* print the ids embed would feed for prompt */
} btrm_generate_opts;

/* cfg gives the embed.* keys and run.threads. */
int btrm_generate_run(const btrm_generate_opts *opts, const btrm_config *cfg);

#endif
