/* tests/test-serve.c: the request parser and response writer of btrm serve
 * (src/run/serve.c) and the rewards of model/reward.c: a text's reward does
 * not depend on the other texts of its call. The HTTP side is tested with
 * real clients in tests/serve.sh. */
#include "tap.h"

#include "error.h"
#include "h5util.h"
#include "head.h"
#include "log.h"
#include "modelfile.h"
#include "prep.h"
#include "reward.h"
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static btrm_prep_template tpl;

/* parse body; returns the status, fills req and msg */
static int parse(const char *body, int max_texts, btrm_serve_request *req, char *msg)
{
    return btrm_serve_parse(body, strlen(body), &tpl, max_texts, req, msg, 512);
}

static void test_parse(void)
{
    btrm_serve_request req;
    char msg[512];
    int st = parse("{\"texts\": [\"a\", \"b c\", \"\"]}", 10, &req, msg);
    ok(st == 0 && req.n == 3 && !strcmp(req.texts[1], "b c") && !strcmp(req.texts[2], ""),
       "texts: three strings, in order");
    btrm_serve_request_free(&req);
    st = parse("{\"query\": [\"q1\"], \"prompts\": [\"p\"], \"labels\": [3], \"extra\": 1}", 10,
               &req, msg);
    ok(st == 0 && req.n == 1 && !strcmp(req.texts[0], "q1"),
       "OpenRLHF's query: prompts, labels and unknown keys ignored");
    btrm_serve_request_free(&req);
    st = parse("{\"pairs\": [{\"prompt\": \"2+2?\", \"response\": \"4\"}]}", 10, &req, msg);
    char *want = NULL;
    btrm_prep_template_render_pair(&tpl, "2+2?", "4", &want);
    ok(st == 0 && req.n == 1 && want && !strcmp(req.texts[0], want),
       "pairs: rendered as btrm prep renders a prompt and a response");
    free(want);
    btrm_serve_request_free(&req);
    st = parse("{\"texts\": []}", 10, &req, msg);
    ok(st == 0 && req.n == 0, "an empty list is a request for no rewards");

    static const struct { const char *body; int status; const char *msg; } bad[] = {
        { "{\"texts\": [\"a\"", 400, "invalid JSON at line 1" },
        { "{\"texts\": [\"\\u0000\"]}", 400, "invalid JSON" },
        { "{\"texts\": [\"\xc3\x28\"]}", 400, "invalid UTF-8" },
        { "[1, 2]", 400, "must be a JSON object (found an array)" },
        { "{}", 400, "the body needs \"texts\"" },
        { "{\"texts\": [], \"pairs\": []}", 400, "found \"texts\" and \"pairs\"" },
        { "{\"texts\": {\"a\": 1}}", 400, "\"texts\" must be an array (found an object)" },
        { "{\"texts\": [\"a\", true]}", 400, "texts[1] must be a string (found a boolean)" },
        { "{\"pairs\": [{\"response\": \"r\"}]}", 400, "pairs[0].prompt must be a string (found nothing)" },
        { "{\"pairs\": [{\"prompt\": \"p\", \"response\": 3}]}", 400,
          "pairs[0].response must be a string (found a number)" },
        { "{\"pairs\": [[]]}", 400, "pairs[0] must be an object" },
        { "{\"texts\": [\"a\", \"a\"], \"texts\": []}", 400, "duplicate object key" },
        { "{\"texts\": [\"1\", \"2\", \"3\"]}", 413, "\"texts\" has 3 items; this server takes at most 2" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = parse(bad[i].body, 2, &req, msg);
        ok(st == bad[i].status && strstr(msg, bad[i].msg) && req.texts == NULL && req.n == 0,
           "refused with %d '%s' (got %d '%s')", bad[i].status, bad[i].msg, st, msg);
    }
}

static void test_rewards_json(void)
{
    float r[3] = { 0.1f, -2.5f, 1.0f / 3.0f };
    char *text = btrm_serve_rewards_json(r, 3);
    is_string(text, "{\"rewards\":[0.100000001,-2.5,0.333333343]}",
              "rewards printed with 9 significant digits, as btrm score prints them");
    float back = text ? strtof(strstr(text, "0.333333343"), NULL) : 0.0f;
    ok(memcmp(&back, &r[2], sizeof back) == 0, "9 digits give the float32 back exactly");
    free(text);
    text = btrm_serve_rewards_json(NULL, 0);
    is_string(text, "{\"rewards\":[]}", "no rewards: an empty list");
    free(text);
}

/* A model of `kind` on 32 features, written to path. */
static int write_model(const char *path, int kind)
{
    btrm_head head;
    int hidden[1] = { 8 };
    int rc = btrm_head_init(&head, kind, BTRM_ACT_GELU, 32, hidden, kind == BTRM_HEAD_MLP);
    float *params = rc ? NULL : calloc(head.n_params, sizeof *params);
    if (!params)
        return -1;
    btrm_head_init_params(&head, params, 11);
    btrm_model_meta meta = { .loss = BTRM_LOSS_BT };
    rc = btrm_model_write(path, &head, params, &meta);
    free(params);
    return rc;
}

static void test_rewards(const char *dir)
{
    static const char *const texts[] = {
        "the cat sat on the mat", "", "über naïve café", "a b c d e f g h i j k l",
        "dog", "the cat sat on the mat", "日本語のテキスト", "x y",
    };
    const size_t n = sizeof texts / sizeof texts[0];
    for (int kind = 0; kind < 2; kind++) {
        char path[600];
        snprintf(path, sizeof path, "%s/model-%d.h5", dir, kind);
        btrm_reward rm;
        int rc = write_model(path, kind);
        if (!rc)
            rc = btrm_reward_open(&rm, path, "hash", NULL, (int)n);
        if (rc) {
            ok(0, "open a %s model on the hash backbone: %s", kind ? "mlp" : "linear",
               btrm_error_msg());
            skip(3, "no model");
            continue;
        }
        float all[8], one[8];
        rc = btrm_reward_texts(&rm, texts, n, all);
        for (size_t i = 0; !rc && i < n; i++)
            rc = btrm_reward_texts(&rm, texts + i, 1, one + i);
        ok(!rc && !memcmp(all, one, sizeof all),
           "%s head: 8 texts in one call give the same bits as one at a time",
           kind ? "mlp" : "linear");
        ok(!rc && !memcmp(&all[0], &all[5], sizeof all[0]),
           "%s head: the same text twice, the same reward", kind ? "mlp" : "linear");
        rm.invariant = 1;
        rc = btrm_reward_texts(&rm, texts, n, one);
        ok(!rc && !memcmp(all, one, sizeof all), "%s head: invariant mode, the same bits",
           kind ? "mlp" : "linear");
        is_int(btrm_reward_texts(&rm, texts, n + 1, one), BTRM_EUSAGE,
               "more texts than max_texts: refused");
        btrm_reward_close(&rm);
    }
    btrm_reward rm;
    int rc = btrm_reward_open(&rm, "/nonexistent/model.h5", "hash", NULL, 4);
    ok(rc != 0 && strstr(btrm_error_msg(), "/nonexistent/model.h5"),
       "a missing model file: an error naming it");
}

int main(void)
{
    plan(4 + 13 + 3 + 8 + 1);
    btrm_log_init(0, BTRM_LOG_QUIET);
    btrm_h5_quiet();
    if (btrm_prep_template_default(&tpl)) {
        skip_all("cannot build the default template");
        return 0;
    }
    char dir[256];
    snprintf(dir, sizeof dir, "%s/btrm-test-serve.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        skip_all("cannot make a temporary directory");
        return 0;
    }
    test_parse();
    test_rewards_json();
    test_rewards(dir);
    btrm_prep_template_free(&tpl);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    return done_testing();
}
