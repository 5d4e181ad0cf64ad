/* serve.c: `btrm serve` (serve.h, docs/serve.md).
 *
 * A request's life: the access handler (an I/O thread) collects the body,
 * parses it into texts and appends a job to the queue, then suspends the
 * connection; the engine (the thread that called btrm_serve_run) takes jobs
 * off the queue up to the token budget, scores their texts in one call,
 * stores each job's rewards and resumes its connection; the handler, called
 * again, sends the rewards. The completion callback frees the request. A
 * job belongs to its suspended connection, which only the engine resumes,
 * so the engine may read a queued job without the lock. */
#include "serve.h"

#include "error.h"
#include "fileutil.h"
#include "log.h"
#include "reward.h"
#include "stopsig.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define HTTP_OK 200
#define HTTP_BAD_REQUEST 400
#define HTTP_NOT_FOUND 404
#define HTTP_METHOD_NOT_ALLOWED 405
#define HTTP_TIMEOUT 408
#define HTTP_TOO_LARGE 413
#define HTTP_INTERNAL 500
#define HTTP_UNAVAILABLE 503

#define STOP_SECONDS 4.5 /* from the signal to the end of the drain */

void btrm_serve_opts_defaults(btrm_serve_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8000;
    o->io_threads = 4;
    o->queue = 256;
    o->max_body = 16u << 20;
    o->max_texts = 1024;
    o->batch_tokens = 16384;
    o->read_timeout = 30;
    o->idle_timeout = 60;
}

/* ------------------------------------------------------------------------ */
/* Request bodies */

void btrm_serve_request_free(btrm_serve_request *req)
{
    if (!req)
        return;
    for (size_t i = 0; i < req->n; i++)
        free(req->texts[i]);
    free(req->texts);
    req->texts = NULL;
    req->n = 0;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

#define REFUSE(status, ...)                                                      \
    do {                                                                         \
        snprintf(msg, msg_size, __VA_ARGS__);                                    \
        code = (status);                                                         \
        goto done;                                                               \
    } while (0)

int btrm_serve_parse(const char *body, size_t len, const btrm_prep_template *t, int max_texts,
                     btrm_serve_request *req, char *msg, size_t msg_size)
{
    memset(req, 0, sizeof *req);
    msg[0] = '\0';
    int code = 0;
    json_error_t jerr;
    /* jansson refuses invalid UTF-8 and (without JSON_ALLOW_NUL) \u0000 */
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        REFUSE(HTTP_BAD_REQUEST, "%s at line %d, column %d: %s",
               strstr(jerr.text, "decode byte") ? "invalid UTF-8" : "invalid JSON", jerr.line,
               jerr.column, jerr.text);
    if (!json_is_object(doc))
        REFUSE(HTTP_BAD_REQUEST, "the body must be a JSON object (found %s)", json_kind(doc));
    static const char *const keys[3] = { "texts", "pairs", "query" };
    const char *key = NULL;
    json_t *list = NULL;
    for (int k = 0; k < 3; k++) {
        json_t *v = json_object_get(doc, keys[k]);
        if (!v)
            continue;
        if (key)
            REFUSE(HTTP_BAD_REQUEST, "give one of \"texts\", \"pairs\" or \"query\" "
                   "(found \"%s\" and \"%s\")", key, keys[k]);
        key = keys[k];
        list = v;
    }
    if (!key)
        REFUSE(HTTP_BAD_REQUEST, "the body needs \"texts\": [...], \"pairs\": [{\"prompt\", "
               "\"response\"}, ...] or \"query\": [...]");
    if (!json_is_array(list))
        REFUSE(HTTP_BAD_REQUEST, "\"%s\" must be an array (found %s)", key, json_kind(list));
    size_t n = json_array_size(list);
    if (n > (size_t)max_texts)
        REFUSE(HTTP_TOO_LARGE, "\"%s\" has %zu items; this server takes at most %d per request",
               key, n, max_texts);
    if (n > 0 && !(req->texts = calloc(n, sizeof *req->texts)))
        REFUSE(HTTP_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(list, i);
        if (key[0] != 'p') {
            if (!json_is_string(item))
                REFUSE(HTTP_BAD_REQUEST, "%s[%zu] must be a string (found %s)", key, i,
                       json_kind(item));
            req->texts[i] = strdup(json_string_value(item));
        } else {
            json_t *prompt = json_is_object(item) ? json_object_get(item, "prompt") : NULL;
            json_t *response = json_is_object(item) ? json_object_get(item, "response") : NULL;
            if (!json_is_object(item))
                REFUSE(HTTP_BAD_REQUEST, "pairs[%zu] must be an object {\"prompt\": ..., "
                       "\"response\": ...} (found %s)", i, json_kind(item));
            if (!json_is_string(prompt) || !json_is_string(response))
                REFUSE(HTTP_BAD_REQUEST, "pairs[%zu].%s must be a string (found %s)", i,
                       json_is_string(prompt) ? "response" : "prompt",
                       json_is_string(prompt) ? (response ? json_kind(response) : "nothing")
                                              : (prompt ? json_kind(prompt) : "nothing"));
            if (btrm_prep_template_render_pair(t, json_string_value(prompt),
                                               json_string_value(response), &req->texts[i]))
                REFUSE(HTTP_INTERNAL, "pairs[%zu]: %s", i, btrm_error_msg());
        }
        if (!req->texts[i])
            REFUSE(HTTP_INTERNAL, "out of memory");
        req->n = i + 1;
    }
    req->n = n;
done:
    json_decref(doc);
    if (code)
        btrm_serve_request_free(req);
    return code;
}

char *btrm_serve_rewards_json(const float *rewards, size_t n)
{
    json_t *list = json_array();
    json_t *doc = json_pack("{s:o}", "rewards", list);
    for (size_t i = 0; doc && i < n; i++)
        if (json_array_append_new(list, json_real((double)rewards[i]))) {
            json_decref(doc);
            return NULL;
        }
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(doc);
    return text;
}

/* ------------------------------------------------------------------------ */
/* The server */

typedef struct job {
    struct MHD_Connection *conn;
    btrm_serve_request req;
    float *rewards;           /* [req.n] */
    int64_t cost;             /* tokens; -1 until the engine computes it */
    int status;               /* 0 while queued; then the HTTP status */
    char error[512];
    struct job *next;
} job;

enum route { ROUTE_NONE = 0, ROUTE_SCORE, ROUTE_HEALTH, ROUTE_INFO };

typedef struct request {
    int route;
    char *body;
    size_t len, cap;
    int too_large, timed_out, queued;
    struct timespec start;
    job job;
} request;

typedef struct server {
    const btrm_serve_opts *o;
    btrm_reward rm;
    btrm_prep_template tpl;
    struct MHD_Daemon *daemon;
    json_t *info;             /* /info without the counters */
    pthread_mutex_t lock;
    pthread_cond_t cond;      /* jobs queued, requests completed */
    job *head, *tail;
    int queued;               /* jobs in the queue */
    int stopping;
    int in_flight;            /* requests begun and not yet completed */
    /* counters (under lock) */
    long long requests, texts, batches, busy, refused;
} server;

/* SIGTERM or SIGINT received (polled by the engine, stopsig.h), or SIGTERM
 * set by the engine itself when it cannot run */
static volatile sig_atomic_t stop_signal;
static btrm_stopsig stop_signals;

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + 1e-9 * (double)(now.tv_nsec - t0->tv_nsec);
}

/* Queues a response whose body is text (taken over). */
static enum MHD_Result respond(server *s, struct MHD_Connection *conn, int status, char *text)
{
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    pthread_mutex_lock(&s->lock);
    int stopping = s->stopping;
    if (status != HTTP_OK)
        s->refused++;
    pthread_mutex_unlock(&s->lock);
    if (stopping)
        MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result respond_error(server *s, struct MHD_Connection *conn, int status,
                                     const char *message)
{
    json_t *doc = json_pack("{s:s, s:i}", "error", message, "status", status);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return respond(s, conn, status, text);
}

static enum MHD_Result respond_json(server *s, struct MHD_Connection *conn, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(doc);
    return respond(s, conn, HTTP_OK, text);
}

static json_t *info_json(server *s)
{
    json_t *doc = json_deep_copy(s->info);
    pthread_mutex_lock(&s->lock);
    json_t *stats = json_pack("{s:I, s:I, s:I, s:I, s:I, s:i}", "requests",
                              (json_int_t)s->requests, "texts", (json_int_t)s->texts,
                              "batches", (json_int_t)s->batches, "refused_busy",
                              (json_int_t)s->busy, "refused", (json_int_t)s->refused,
                              "queued", s->queued);
    pthread_mutex_unlock(&s->lock);
    if (doc && stats)
        json_object_set_new(doc, "stats", stats);
    else
        json_decref(stats);
    return doc;
}

/* The last call of a POST: parse and queue, or refuse. */
static enum MHD_Result finish_upload(server *s, struct MHD_Connection *conn, request *r)
{
    char msg[512];
    if (r->timed_out) {
        snprintf(msg, sizeof msg, "the request took more than %d s to arrive",
                 s->o->read_timeout);
        return respond_error(s, conn, HTTP_TIMEOUT, msg);
    }
    if (r->too_large) {
        snprintf(msg, sizeof msg, "the body is larger than %zu bytes", s->o->max_body);
        return respond_error(s, conn, HTTP_TOO_LARGE, msg);
    }
    job *j = &r->job;
    int status = btrm_serve_parse(r->body ? r->body : "", r->len, &s->tpl, s->o->max_texts,
                                  &j->req, msg, sizeof msg);
    free(r->body);
    r->body = NULL;
    if (status)
        return respond_error(s, conn, status, msg);
    if (j->req.n == 0)
        return respond(s, conn, HTTP_OK, btrm_serve_rewards_json(NULL, 0));
    if (!(j->rewards = malloc(j->req.n * sizeof *j->rewards)))
        return respond_error(s, conn, HTTP_INTERNAL, "out of memory");
    j->conn = conn;
    j->cost = -1;
    pthread_mutex_lock(&s->lock);
    int refuse = s->stopping ? 1 : s->queued >= s->o->queue ? 2 : 0;
    if (!refuse) {
        if (s->tail)
            s->tail->next = j;
        else
            s->head = j;
        s->tail = j;
        s->queued++;
        r->queued = 1;
        /* suspended under the lock: the engine cannot see the job before */
        MHD_suspend_connection(conn);
        pthread_cond_broadcast(&s->cond);
    } else if (refuse == 2) {
        s->busy++;
    }
    pthread_mutex_unlock(&s->lock);
    if (refuse == 1)
        return respond_error(s, conn, HTTP_UNAVAILABLE, "the server is shutting down");
    if (refuse == 2) {
        snprintf(msg, sizeof msg, "busy: %d requests are waiting; retry later", s->o->queue);
        return respond_error(s, conn, HTTP_UNAVAILABLE, msg);
    }
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version,
                              const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    server *s = cls;
    request *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        *con_cls = r;
        clock_gettime(CLOCK_MONOTONIC, &r->start);
        pthread_mutex_lock(&s->lock);
        s->in_flight++;
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
        if (!strcmp(url, "/score") || !strcmp(url, "/get_reward")) {
            r->route = ROUTE_SCORE;
            if (!post)
                return respond_error(s, conn, HTTP_METHOD_NOT_ALLOWED,
                                     "use POST with a JSON body");
        } else if (!strcmp(url, "/health") || !strcmp(url, "/info")) {
            r->route = url[1] == 'h' ? ROUTE_HEALTH : ROUTE_INFO;
            if (!get)
                return respond_error(s, conn, HTTP_METHOD_NOT_ALLOWED, "use GET");
        } else {
            char msg[300];
            snprintf(msg, sizeof msg, "no such endpoint %.200s (POST /score, POST /get_reward, "
                     "GET /health, GET /info)", url);
            return respond_error(s, conn, HTTP_NOT_FOUND, msg);
        }
        if (stopping)
            return respond_error(s, conn, HTTP_UNAVAILABLE, "the server is shutting down");
        if (r->route == ROUTE_SCORE) {
            const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                             "Content-Length");
            if (length && strtoull(length, NULL, 10) > s->o->max_body) {
                char msg[128];
                snprintf(msg, sizeof msg, "the body is larger than %zu bytes", s->o->max_body);
                return respond_error(s, conn, HTTP_TOO_LARGE, msg);
            }
            return MHD_YES; /* the body follows */
        }
        if (r->route == ROUTE_HEALTH)
            return respond_json(s, conn, json_pack("{s:s}", "status", "ok"));
        return respond_json(s, conn, info_json(s));
    }
    if (r->route != ROUTE_SCORE) {
        *upload_size = 0; /* a body on a GET: ignored */
        return MHD_YES;
    }
    if (*upload_size) {
        if (seconds_since(&r->start) > s->o->read_timeout) {
            /* libmicrohttpd cannot answer in the middle of a body: close */
            btrm_log_debug("serve: a request body took more than %d s; connection closed",
                           s->o->read_timeout);
            return MHD_NO;
        }
        if (!r->too_large && r->len + *upload_size > s->o->max_body) {
            r->too_large = 1; /* the rest is read and dropped, then 413 */
            free(r->body);
            r->body = NULL;
        }
        if (!r->too_large) {
            if (r->len + *upload_size > r->cap) {
                size_t cap = r->cap ? r->cap : 4096;
                while (cap < r->len + *upload_size)
                    cap *= 2;
                char *body = realloc(r->body, cap);
                if (!body)
                    return MHD_NO;
                r->body = body;
                r->cap = cap;
            }
            memcpy(r->body + r->len, upload, *upload_size);
            r->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->queued && !r->too_large && seconds_since(&r->start) > s->o->read_timeout)
        r->timed_out = 1;
    if (!r->queued)
        return finish_upload(s, conn, r);
    /* resumed by the engine: the job is done */
    job *j = &r->job;
    if (j->status != HTTP_OK)
        return respond_error(s, conn, j->status, j->error);
    return respond(s, conn, HTTP_OK, btrm_serve_rewards_json(j->rewards, j->req.n));
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode why)
{
    (void)conn;
    (void)why;
    server *s = cls;
    request *r = *con_cls;
    if (!r)
        return;
    free(r->body);
    btrm_serve_request_free(&r->job.req);
    free(r->job.rewards);
    free(r);
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    s->in_flight--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------------ */
/* The engine */

/* Resumes a job's connection with its status set. */
static void finish_job(server *s, job *j, int status, const char *error)
{
    j->status = status;
    if (error)
        snprintf(j->error, sizeof j->error, "%s", error);
    pthread_mutex_lock(&s->lock);
    if (status == HTTP_OK) {
        s->requests++;
        s->texts += (long long)j->req.n;
    }
    pthread_mutex_unlock(&s->lock);
    MHD_resume_connection(j->conn);
}

/* Scores jobs batch[0..n) in one backbone call; when that fails, each job
 * alone, so that one bad text fails only its own request. */
static void run_batch(server *s, job **batch, int n, const char **texts, float *rewards)
{
    size_t total = 0;
    for (int b = 0; b < n; b++)
        for (size_t i = 0; i < batch[b]->req.n; i++)
            texts[total++] = batch[b]->req.texts[i];
    int rc = btrm_reward_texts(&s->rm, texts, total, rewards);
    pthread_mutex_lock(&s->lock);
    s->batches++;
    pthread_mutex_unlock(&s->lock);
    if (!rc) {
        size_t at = 0;
        for (int b = 0; b < n; b++) {
            memcpy(batch[b]->rewards, rewards + at, batch[b]->req.n * sizeof *rewards);
            at += batch[b]->req.n;
            finish_job(s, batch[b], HTTP_OK, NULL);
        }
        return;
    }
    if (n == 1) {
        btrm_log_debug("serve: a request failed: %s", btrm_error_msg());
        finish_job(s, batch[0], rc == BTRM_ENOMEM || rc == BTRM_EIO ? HTTP_INTERNAL
                                                                    : HTTP_BAD_REQUEST,
                   btrm_error_msg());
        return;
    }
    for (int b = 0; b < n; b++)
        run_batch(s, &batch[b], 1, texts, rewards);
}

/* Takes the jobs of the next batch off the queue: whole jobs while their
 * texts fit max_texts and their tokens the budget (the first always). */
static int next_batch(server *s, job **batch, int cap)
{
    int n = 0;
    int64_t tokens = 0;
    size_t texts = 0;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        job *j = s->head;
        pthread_mutex_unlock(&s->lock);
        if (!j || n == cap)
            break;
        if (j->cost < 0) {
            /* tokenising happens here, in the engine, which owns the backbone */
            int64_t *cost = malloc(j->req.n * sizeof *cost);
            j->cost = 0;
            if (cost && !btrm_reward_cost(&s->rm, (const char *const *)j->req.texts, j->req.n,
                                          cost))
                for (size_t i = 0; i < j->req.n; i++)
                    j->cost += cost[i];
            free(cost);
        }
        if (n > 0 && (tokens + j->cost > s->o->batch_tokens ||
                      texts + j->req.n > (size_t)s->o->max_texts))
            break;
        pthread_mutex_lock(&s->lock);
        s->head = j->next;
        if (!s->head)
            s->tail = NULL;
        s->queued--;
        pthread_mutex_unlock(&s->lock);
        j->next = NULL;
        batch[n++] = j;
        tokens += j->cost;
        texts += j->req.n;
    }
    return n;
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void wait_cond(server *s, double seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = until.tv_nsec + (long)(seconds * 1e9);
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&s->cond, &s->lock, &until);
}

static void engine(server *s)
{
    const int cap = s->o->queue + 1;
    job **batch = calloc((size_t)cap, sizeof *batch);
    const char **texts = calloc((size_t)s->o->max_texts, sizeof *texts);
    float *rewards = calloc((size_t)s->o->max_texts, sizeof *rewards);
    if (!batch || !texts || !rewards) {
        btrm_log_error("serve: out of memory for the engine's buffers");
        stop_signal = SIGTERM;
    }
    double deadline = 0;
    int quiesced = 0;
    const char *fault = getenv("BTRM_FAULT");
    const int slow = fault && !strcmp(fault, "serve-slow");
    for (;;) {
        pthread_mutex_lock(&s->lock);
        for (;;) { /* a signal is seen within 50 ms or one batch */
            if (!stop_signal)
                stop_signal = btrm_stopsig_poll(&stop_signals);
            if (s->head || stop_signal || s->stopping)
                break;
            wait_cond(s, 0.05);
        }
        if (stop_signal && !s->stopping) {
            s->stopping = 1;
            deadline = now_seconds() + STOP_SECONDS;
            btrm_log_info("serve: %s received: answering the %d queued request(s), then "
                          "stopping", strsignal(stop_signal), s->queued);
        }
        int empty = !s->head, stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping) {
            if (!quiesced && s->daemon) {
                MHD_socket fd = MHD_quiesce_daemon(s->daemon); /* no new connections */
                if (fd != MHD_INVALID_SOCKET)
                    close(fd);
                quiesced = 1;
            }
            if (empty || now_seconds() > deadline || !batch)
                break;
        }
        if (slow)
            nanosleep(&(struct timespec){ .tv_nsec = 300000000L }, NULL);
        int n = next_batch(s, batch, cap);
        if (n > 0)
            run_batch(s, batch, n, texts, rewards);
    }
    /* Past the deadline: whatever is still queued is answered 503. */
    for (;;) {
        pthread_mutex_lock(&s->lock);
        job *j = s->head;
        if (j) {
            s->head = j->next;
            s->queued--;
        }
        pthread_mutex_unlock(&s->lock);
        if (!j)
            break;
        finish_job(s, j, HTTP_UNAVAILABLE, "the server stopped before this request's turn");
    }
    s->tail = NULL;
    /* Let the answers go out: until every request begun has completed. */
    pthread_mutex_lock(&s->lock);
    while (s->in_flight > 0 && now_seconds() < deadline + 0.4)
        wait_cond(s, 0.02);
    if (s->in_flight > 0)
        btrm_log_warn("serve: %d request(s) still open at exit", s->in_flight);
    pthread_mutex_unlock(&s->lock);
    free(batch);
    free(texts);
    free(rewards);
}

/* ------------------------------------------------------------------------ */

/* The chat template for "pairs": the one given (refused when the model
 * records another), else the model's, else prep's built-in one. */
static int load_template(btrm_prep_template *t, const char *path,
                         const btrm_feature_record *rec, const char *model_path)
{
    if (!path)
        return rec->chat_template[0]
                   ? btrm_prep_template_from_json(t, rec->chat_template, model_path)
                   : btrm_prep_template_default(t);
    int rc = btrm_prep_template_load(t, path);
    json_t *j = rc ? NULL : btrm_prep_template_json(t);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!rc && !text)
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory");
    if (!rc && rec->chat_template[0] && strcmp(text, rec->chat_template))
        rc = btrm_error_set(BTRM_EUSAGE, "--template %s is %s, but %s was trained on texts "
                            "rendered with %s", path, text, model_path, rec->chat_template);
    free(text);
    if (rc)
        btrm_prep_template_free(t);
    return rc;
}

static int build_info(server *s)
{
    const btrm_serve_opts *o = s->o;
    char model_hash[33], label[512];
    json_t *attrs = json_object();
    int rc = btrm_file_xxh128(o->model_path, model_hash);
    if (!rc && !s->rm.own)
        rc = btrm_backbone_describe(&s->rm.bb, label, sizeof label, attrs);
    if (rc) {
        json_decref(attrs);
        return rc;
    }
    /* the model's own backbone: the base file and what of it trained */
    json_t *own = s->rm.own ? btrm_model_backbone_to_json(&s->rm.ref) : json_null();
    if (s->rm.own) {
        const btrm_model_backbone *ref = &s->rm.ref;
        const char *base = strrchr(ref->model_file, '/');
        int n = snprintf(label, sizeof label, "%s ", base ? base + 1 : ref->model_file);
        if (ref->ft.type == BTRM_FT_LORA)
            snprintf(label + n, sizeof label - (size_t)n, "lora r%d", ref->ft.rank);
        else if (ref->ft.type == BTRM_FT_TOP_K)
            snprintf(label + n, sizeof label - (size_t)n, "top_k %d", ref->ft.layers);
        else
            snprintf(label + n, sizeof label - (size_t)n, "frozen");
    }
    /* how the model's features were made, as its file records it */
    json_t *features = s->rm.record.present ? btrm_feature_record_to_json(&s->rm.record)
                                              : json_null();
    s->info = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:{s:I, "
                        "s:i, s:i, s:i, s:i, s:i, s:i}}",
                        "btrm_version", PACKAGE_VERSION,
                        "model", o->model_path, "model_hash", model_hash,
                        "model_hash_function", "XXH3-128",
                        "head", s->rm.head.kind == BTRM_HEAD_MLP ? "mlp" : "linear",
                        "dim", s->rm.head.dim,
                        "backbone", btrm_reward_spec(&s->rm), "backbone_label", label,
                        "backbone_attrs", attrs, "features", features, "trained_backbone", own,
                        "template", btrm_prep_template_json(&s->tpl), "invariant", o->invariant,
                        "limits", "max_body", (json_int_t)o->max_body,
                        "max_texts", o->max_texts, "queue", o->queue,
                        "batch_tokens", o->batch_tokens, "read_timeout_s", o->read_timeout,
                        "idle_timeout_s", o->idle_timeout, "io_threads", o->io_threads);
    return s->info ? 0 : btrm_error_set(BTRM_ENOMEM, "out of memory describing the server");
}

static int resolve(const char *host, int port, struct sockaddr_storage *addr, int *ipv6)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int e = getaddrinfo(host, service, &hints, &res);
    if (e)
        return btrm_error_set(BTRM_EUSAGE, "--host %s: %s", host, gai_strerror(e));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *ipv6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

/* libmicrohttpd's own messages (a connection closed by a read timeout, a
 * client gone) are details: debug level. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (btrm_log_level() < BTRM_LOG_DEBUG)
        return;
    char text[512];
    vsnprintf(text, sizeof text, fmt, ap);
    text[strcspn(text, "\n")] = '\0';
    btrm_log_debug("serve: libmicrohttpd: %s", text);
}

static int start(server *s)
{
    const btrm_serve_opts *o = s->o;
    struct sockaddr_storage addr;
    int ipv6 = 0;
    int rc = resolve(o->host, o->port, &addr, &ipv6);
    if (rc)
        return rc;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | (ipv6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->io_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout,
        MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_END);
    if (!s->daemon)
        return btrm_error_set(BTRM_EIO, "cannot listen on %s port %d (in use, or not an "
                              "address of this machine)", o->host, o->port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon,
                                                           MHD_DAEMON_INFO_BIND_PORT);
    int port = info ? (int)info->port : o->port;
    btrm_log_info("serve: %s on %s (head %s, %d features) at http://%s%s%s:%d/score",
                  o->model_path, btrm_reward_spec(&s->rm), s->rm.head.kind == BTRM_HEAD_MLP ? "mlp" : "linear",
                  s->rm.head.dim, ipv6 ? "[" : "", o->host, ipv6 ? "]" : "", port);
    if (o->port_file) {
        char text[32];
        int len = snprintf(text, sizeof text, "%d\n", port);
        rc = btrm_write_atomic(o->port_file, text, (size_t)len);
    }
    return rc;
}

static int check_opts(const btrm_serve_opts *o)
{
    if (o->io_threads < 1 || o->queue < 1 || o->max_texts < 1 || o->batch_tokens < 1 ||
        o->read_timeout < 1 || o->idle_timeout < 1 || o->max_body < 2 || o->port < 0 ||
        o->port > 65535)
        return btrm_error_set(BTRM_EUSAGE, "serve: every limit must be positive and the port "
                              "in [0, 65535]");
    return 0;
}

int btrm_serve_run(const btrm_serve_opts *o)
{
    server s;
    memset(&s, 0, sizeof s);
    s.o = o;
    int rc = check_opts(o);
    if (rc)
        return rc;
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    rc = btrm_reward_open(&s.rm, o->model_path, o->spec, o->cfg, o->max_texts);
    s.rm.invariant = o->invariant;
    if (!rc)
        rc = load_template(&s.tpl, o->template_path, &s.rm.record, o->model_path);
    if (!rc)
        rc = build_info(&s);
    /* SIGTERM and SIGINT stay blocked in every thread (libmicrohttpd's
     * inherit the mask): the engine polls them between batches, so no
     * handler runs inside a GEMM kernel (stopsig.h) or an I/O thread's
     * system call. SIGPIPE is ignored: a client that hung up is an error on
     * its connection only. */
    struct sigaction sa, old_pipe;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, &old_pipe);
    stop_signal = 0;
    btrm_stopsig_begin(&stop_signals, (const int[]){ SIGTERM, SIGINT }, 2);
    if (!rc)
        rc = start(&s);
    if (!rc) {
        engine(&s);
        btrm_log_info("serve: stopped after %lld request(s), %lld text(s) in %lld batch(es); "
                      "%lld refused as busy", s.requests, s.texts, s.batches, s.busy);
    }
    if (s.daemon)
        MHD_stop_daemon(s.daemon);
    btrm_stopsig_end(&stop_signals);
    sigaction(SIGPIPE, &old_pipe, NULL);
    json_decref(s.info);
    btrm_reward_close(&s.rm);
    btrm_prep_template_free(&s.tpl);
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    return rc;
}
