/* serve.h: `btrm serve`, an HTTP reward server for RLHF loops (docs/serve.md).
 * Orchestrator: a trained head on its backbone (model/reward.h) behind
 * libmicrohttpd. One process, no MPI.
 *
 *   POST /score, POST /get_reward   {"texts": [...]}
 *                                   {"pairs": [{"prompt": ..., "response": ...}]}
 *                                   {"query": [...], "prompts": ..., "labels": ...}
 *                                   -> {"rewards": [...]}
 *   GET /health                     -> {"status": "ok"}
 *   GET /info                       -> the model, backbone, hashes, limits, counters
 *
 * Threads: a pool of I/O threads (libmicrohttpd's) reads and parses
 * requests and puts them on one bounded queue (503 when it is full); one
 * compute engine (the calling thread) takes whole requests off the queue,
 * up to a token budget, and scores all their texts in one backbone call.
 * A connection waits suspended while its request is queued, so an I/O
 * thread never blocks on the engine. */
#ifndef BTRM_SERVE_H
#define BTRM_SERVE_H

#include "prep.h"

#include <stddef.h>

typedef struct btrm_serve_opts {
    const char *model_path;
    const char *spec;           /* backbone spec; NULL: the one the model records */
    const struct btrm_config *cfg; /* embed.* options under the recorded ones (or NULL) */
    const char *template_path;  /* chat template for "pairs"; NULL: the model's, else
                                 * prep's built-in */
    const char *host;           /* address to bind (default 127.0.0.1) */
    int port;                   /* 0 = a free port */
    const char *port_file;      /* written with the bound port once listening, or NULL */
    int io_threads;             /* libmicrohttpd's thread pool */
    int queue;                  /* requests waiting for the engine, at most */
    size_t max_body;            /* bytes of one request body, at most (413) */
    int max_texts;              /* texts in one request, at most (413) */
    int batch_tokens;           /* tokens per engine batch (a lone request may exceed it) */
    int read_timeout;           /* seconds from a request's first byte to its last (408) */
    int idle_timeout;           /* seconds a connection may stay silent */
    int invariant;              /* each text its own backbone call (reward.h) */
} btrm_serve_opts;

/* The defaults of the options above (docs/serve.md). */
void btrm_serve_opts_defaults(btrm_serve_opts *o);

/* Serves until SIGTERM or SIGINT, then stops accepting, answers every
 * request already queued and returns within 5 s. 0, or a negative code
 * (the model, backbone or address cannot be used) with the message set.
 * Fault injection for tests: BTRM_FAULT=serve-slow makes the engine wait
 * 0.3 s before each batch, so that the queue fills. */
int btrm_serve_run(const btrm_serve_opts *o);

/* ------------------------------------------------------------------------ */
/* The request body (exposed for tests/test-serve.c). */

typedef struct btrm_serve_request {
    char **texts;               /* [n] malloc'ed UTF-8 strings */
    size_t n;
} btrm_serve_request;

/* Parses a POST body into the texts to score: "texts" as given, "pairs"
 * rendered with template t, OpenRLHF's "query" as given ("prompts" and
 * "labels" accepted and ignored). 0, or the HTTP status of the refusal (400:
 * not JSON, invalid UTF-8, a NUL, wrong types, no or several of
 * texts/pairs/query; 413: more than max_texts texts) with a message in msg
 * that names the field and index. */
int btrm_serve_parse(const char *body, size_t len, const btrm_prep_template *t, int max_texts,
                     btrm_serve_request *req, char *msg, size_t msg_size);
void btrm_serve_request_free(btrm_serve_request *req);

/* The response body {"rewards": [...]}, each reward printed as score
 * prints it (%.9g: the float32 value exactly). malloc'ed; NULL when out of
 * memory. */
char *btrm_serve_rewards_json(const float *rewards, size_t n);

#endif
