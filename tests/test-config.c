/* test-config.c: the config module: defaults, loading, base: chains, --set,
 * every error class (with FILE:LINE:COL and the key), emit -> load round
 * trips (memcmp-equal), and garbage input (a 10 MB random file, mutated
 * configs) rejected with BTRM_ECONFIG. Data: tests/data/config/ under
 * $BTRM_SRCDIR (default "."). */
#include "config.h"
#include "error.h"
#include "tap.h"

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256], datadir[1024];
static char *created[128];
static int n_created;

/* Writes len bytes of text to tmpdir/name; returns the path (freed at exit). */
static const char *write_file(const char *name, const char *text, size_t len)
{
    char *path = malloc(strlen(tmpdir) + strlen(name) + 2);
    if (!path || n_created == (int)(sizeof created / sizeof created[0]))
        abort();
    sprintf(path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f))
        abort();
    created[n_created++] = path;
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_file(name, text, strlen(text));
}

static const char *data(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", datadir, name);
    return buf;
}

static btrm_config *new_config(void)
{
    btrm_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        abort();
    return cfg;
}

static void test_defaults(void)
{
    btrm_config *cfg = new_config();
    btrm_config_defaults(cfg);
    is_string(cfg->run.name, "btrm", "default run.name");
    is_string(cfg->run.out_dir, "", "default run.out_dir is empty (runs/<name>)");
    is_int((long long)cfg->run.seed, 1, "default run.seed");
    is_int(cfg->run.threads, 1, "default run.threads");
    is_string(cfg->data.train, "", "default data.train is unset");
    is_int(cfg->data.n_eval, 0, "default data.eval is empty");
    is_int(cfg->model.head, BTRM_HEAD_LINEAR, "default model.head linear");
    is_int(cfg->model.n_hidden, 0, "default model.hidden empty");
    is_int(cfg->model.activation, BTRM_ACT_GELU, "default model.activation gelu");
    is_int(cfg->loss.type, BTRM_LOSS_BT, "default loss.type bt");
    is_double_rel(cfg->loss.normbt_ema, 0.9, 0, "default loss.normbt.ema");
    is_double_rel(cfg->loss.normbt_eps, 1e-6, 0, "default loss.normbt.eps");
    ok(cfg->loss.normbt_max_weight == 0, "default loss.normbt.max_weight 0 (no cap)");
    is_int(cfg->loss.margin, BTRM_MARGIN_NONE, "default loss.margin none");
    ok(cfg->loss.center_rewards == 0, "default loss.center_rewards 0");
    is_int(cfg->optim.type, BTRM_OPTIM_ADAMW, "default optim.type adamw");
    is_double_rel(cfg->optim.lr, 1e-3, 0, "default optim.lr");
    ok(cfg->optim.betas[0] == 0.9 && cfg->optim.betas[1] == 0.999, "default optim.betas");
    is_double_rel(cfg->optim.eps, 1e-8, 0, "default optim.eps");
    is_double_rel(cfg->optim.weight_decay, 0.01, 0, "default optim.weight_decay");
    ok(cfg->optim.momentum == 0, "default optim.momentum 0");
    is_int(cfg->optim.schedule, BTRM_SCHED_CONSTANT, "default optim.schedule constant");
    is_int(cfg->optim.warmup_steps, 0, "default optim.warmup_steps");
    ok(cfg->optim.grad_clip == 0, "default optim.grad_clip 0 (off)");
    is_int(cfg->train.global_batch, 256, "default train.global_batch");
    is_int(cfg->train.epochs, 1, "default train.epochs");
    is_int(cfg->train.steps, -1, "default train.steps unset (-1)");
    is_int(cfg->train.log_every, 10, "default train.log_every");
    is_int(cfg->train.eval_every, 0, "default train.eval_every");
    is_string(cfg->checkpoint.dir, "", "default checkpoint.dir empty");
    is_int(cfg->checkpoint.every, 0, "default checkpoint.every");
    is_int(cfg->checkpoint.keep, 3, "default checkpoint.keep");
    ok(!cfg->checkpoint.save_initial, "default checkpoint.save_initial false");
    ok(cfg->dist.shard_optimizer, "default dist.shard_optimizer true");

    btrm_config *again = new_config();
    memset(again, 0xAB, sizeof *again);
    btrm_config_defaults(again);
    ok(!memcmp(cfg, again, sizeof *cfg), "defaults are memcmp-equal whatever the memory held");
    is_int(btrm_config_load(again, NULL, NULL, 0), 0, "loading no file gives the defaults");
    ok(!memcmp(cfg, again, sizeof *cfg), "... memcmp-equal to btrm_config_defaults");

    char dir[64];
    is_int(btrm_config_out_dir(cfg, dir, sizeof dir), 0, "out_dir helper");
    is_string(dir, "runs/btrm", "empty run.out_dir means runs/<run.name>");
    is_int(btrm_config_checkpoint_dir(cfg, dir, sizeof dir), 0, "checkpoint_dir helper");
    is_string(dir, "runs/btrm/checkpoints", "empty checkpoint.dir means <out_dir>/checkpoints");
    is_int(btrm_config_checkpoint_dir(cfg, dir, 12), BTRM_ECONFIG,
           "checkpoint_dir reports truncation");
    free(again);
    free(cfg);
}

static void test_full_file(void)
{
    char path[2048];
    btrm_config *cfg = new_config();
    int rc = btrm_config_load(cfg, data("full.yaml", path, sizeof path), NULL, 0);
    if (!is_int(rc, 0, "full.yaml loads"))
        diag("%s", btrm_error_msg());
    is_string(cfg->run.name, "full-run", "run.name");
    is_string(cfg->run.out_dir, "out/full run", "run.out_dir (plain scalar with a space)");
    ok(cfg->run.seed == UINT64_MAX, "run.seed 2^64-1");
    is_int(cfg->run.threads, 4, "run.threads");
    is_string(cfg->data.train, "data/train.h5", "data.train kept as written (relative to cwd)");
    is_int(cfg->data.n_eval, 2, "data.eval has 2 entries (block list)");
    is_string(cfg->data.eval[0], "data/test.h5", "data.eval[0]");
    is_string(cfg->data.eval[1], "data/odd: name #1.h5", "data.eval[1] (quoted)");
    is_int(cfg->model.head, BTRM_HEAD_MLP, "model.head mlp");
    ok(cfg->model.n_hidden == 2 && cfg->model.hidden[0] == 1024 && cfg->model.hidden[1] == 256,
       "model.hidden [1024, 256]");
    is_int(cfg->model.activation, BTRM_ACT_TANH, "model.activation tanh");
    is_int(cfg->loss.type, BTRM_LOSS_NORMBT, "loss.type normbt");
    ok(cfg->loss.normbt_ema == 0.95, "loss.normbt.ema (flow mapping)");
    ok(cfg->loss.normbt_eps == 1.0e-5, "loss.normbt.eps");
    ok(cfg->loss.normbt_max_weight == 10, "loss.normbt.max_weight");
    is_int(cfg->loss.margin, BTRM_MARGIN_DATA, "loss.margin data");
    ok(cfg->loss.center_rewards == 0.001, "loss.center_rewards");
    is_int(cfg->optim.type, BTRM_OPTIM_SGD, "optim.type sgd");
    ok(cfg->optim.lr == 3e-4, "optim.lr");
    ok(cfg->optim.betas[0] == 0.8 && cfg->optim.betas[1] == 0.99, "optim.betas");
    ok(cfg->optim.eps == 1e-7, "optim.eps");
    ok(cfg->optim.weight_decay == 0.1, "optim.weight_decay");
    ok(cfg->optim.momentum == 0.9, "optim.momentum");
    is_int(cfg->optim.schedule, BTRM_SCHED_COSINE, "optim.schedule cosine");
    is_int(cfg->optim.warmup_steps, 100, "optim.warmup_steps");
    ok(cfg->optim.grad_clip == 1.0, "optim.grad_clip");
    is_int(cfg->train.global_batch, 0, "train.global_batch: all is stored as 0");
    is_int(cfg->train.epochs, 3, "train.epochs");
    is_int(cfg->train.steps, 5000, "train.steps");
    is_int(cfg->train.log_every, 50, "train.log_every");
    is_int(cfg->train.eval_every, 500, "train.eval_every");
    is_int(cfg->train.micro_batch, 4, "train.micro_batch");
    ok(cfg->train.recompute, "train.recompute");
    is_string(cfg->model.backbone, "gguf:models/tiny.gguf,pool=mean", "model.backbone");
    ok(cfg->model.finetune.type == BTRM_FT_LORA && cfg->model.finetune.rank == 4 &&
       cfg->model.finetune.alpha == 8.0 && cfg->model.finetune.layers == 2,
       "model.finetune (flow mapping): lora, rank 4, alpha 8, layers 2");
    ok(cfg->model.finetune.n_targets == 2 && !strcmp(cfg->model.finetune.targets[0], "q") &&
       !strcmp(cfg->model.finetune.targets[1], "v"), "model.finetune.targets [q, v]");
    is_int(cfg->train.precision, 1, "train.precision bf16");
    is_int(cfg->embed.precision, 1, "embed.precision bf16");
    is_string(cfg->checkpoint.dir, "ckpt/it's here", "checkpoint.dir (single-quoted, '' escape)");
    is_int(cfg->checkpoint.every, 1000, "checkpoint.every");
    is_int(cfg->checkpoint.keep, 5, "checkpoint.keep");
    ok(cfg->checkpoint.save_initial, "checkpoint.save_initial");
    ok(!cfg->dist.shard_optimizer, "dist.shard_optimizer");
    is_int(btrm_config_validate(cfg), 0, "full.yaml validates");

    btrm_config *def = new_config();
    btrm_config_defaults(def);
    char *a = NULL, *b = NULL;
    btrm_config_emit_string(cfg, &a);
    btrm_config_emit_string(def, &b);
    /* Every line of the emitted text differs from the defaults' (except the
     * section headers), i.e. full.yaml really sets every key. */
    int same = 0, lines = 0;
    for (char *p = a, *q = b; p && q && *p && *q;) {
        char *pe = strchr(p, '\n'), *qe = strchr(q, '\n');
        if (!pe || !qe)
            break;
        lines += pe[-1] != ':';
        if (pe - p == qe - q && !memcmp(p, q, (size_t)(pe - p)) && pe[-1] != ':')
            same++;
        p = pe + 1;
        q = qe + 1;
    }
    is_int(same, 0, "full.yaml sets every one of the %d keys to a non-default value", lines);
    free(a);
    free(b);
    free(def);
    free(cfg);
}

static void test_base_chain(void)
{
    char path[2048];
    btrm_config *cfg = new_config();
    int rc = btrm_config_load(cfg, data("chain-child.yaml", path, sizeof path), NULL, 0);
    if (!is_int(rc, 0, "chain-child.yaml -> sub/chain-mid.yaml -> chain-root.yaml loads"))
        diag("%s", btrm_error_msg());
    is_string(cfg->run.name, "child", "the including file overrides its base");
    is_int((long long)cfg->run.seed, 7, "a key only in the root comes through the chain");
    ok(cfg->optim.lr == 0.25, "the middle file overrides the root");
    ok(cfg->optim.weight_decay == 0.25, "root-only optim key kept next to mid's optim.lr");
    is_int(cfg->train.epochs, 2, "root train.epochs");
    ok(cfg->model.head == BTRM_HEAD_MLP && cfg->model.n_hidden == 1 && cfg->model.hidden[0] == 64,
       "mid's model section");
    is_int(cfg->loss.type, BTRM_LOSS_NORMBT, "child's own section");
    is_int(cfg->run.threads, 1, "keys set nowhere keep their defaults");

    const char *sets[] = { "optim.lr=0.125", "run.name=set-name", "optim.lr=0.0625" };
    rc = btrm_config_load(cfg, path, sets, 3);
    is_int(rc, 0, "load with --set overrides");
    ok(cfg->optim.lr == 0.0625, "--set overrides apply in order: the last wins");
    is_string(cfg->run.name, "set-name", "--set overrides the file");

    rc = btrm_config_load(cfg, data("cycle-a.yaml", path, sizeof path), NULL, 0);
    is_int(rc, BTRM_ECONFIG, "a base cycle is an error");
    char want[8400], pb[2048];
    snprintf(want, sizeof want, "%s:1:7: base cycle: %s -> %s -> %s",
             data("cycle-b.yaml", pb, sizeof pb), path, pb, path);
    is_string(btrm_error_msg(), want, "the cycle message names the base: and the whole chain");

    const char *self = write_text("self.yaml", "run: {seed: 2}\nbase: self.yaml\n");
    rc = btrm_config_load(cfg, self, NULL, 0);
    snprintf(want, sizeof want, "%s:2:7: base cycle: %s -> %s", self, self, self);
    ok(rc == BTRM_ECONFIG && !strcmp(btrm_error_msg(), want), "a file that is its own base");
    if (rc != BTRM_ECONFIG || strcmp(btrm_error_msg(), want))
        diag("%s", btrm_error_msg());

    rc = btrm_config_load(cfg, data("missing-base.yaml", path, sizeof path), NULL, 0);
    snprintf(want, sizeof want, "%s:4:7: base: cannot open '%s/no-such-base.yaml': "
             "No such file or directory", path, datadir);
    ok(rc == BTRM_ECONFIG, "a missing base file is a config error");
    is_string(btrm_error_msg(), want, "... naming the including file:line:col and the path");

    /* A chain of 40 files: refused at the 32nd's base:. */
    const char *first = NULL;
    for (int i = 0; i < 40; i++) {
        char name[32], text[64];
        snprintf(name, sizeof name, "link-%d.yaml", i);
        snprintf(text, sizeof text, "base: link-%d.yaml\n", i + 1);
        const char *p = write_text(name, text);
        first = first ? first : p;
    }
    rc = btrm_config_load(cfg, first, NULL, 0);
    ok(rc == BTRM_ECONFIG && strstr(btrm_error_msg(), "link-31.yaml:1:7: base: more than 32 "
       "files in the base chain"), "a base chain longer than 32 files is refused");
    if (rc != BTRM_ECONFIG)
        diag("%s", btrm_error_msg());

    const char *two = write_text("two-bases.yaml", "base: a.yaml\nbase: b.yaml\n");
    rc = btrm_config_load(cfg, two, NULL, 0);
    snprintf(want, sizeof want, "%s:2:1: duplicate key 'base'", two);
    is_string(btrm_error_msg(), want, "two base: keys");
    free(cfg);
}

typedef struct error_case {
    const char *what, *yaml, *want; /* want: a format with %s for the file's path */
} error_case;

static const error_case error_cases[] = {
    { "unknown key", "optim:\n  type: adamw\n  lrr: 0.1\n",
      "%s:3:3: unknown key 'optim.lrr'; did you mean 'optim.lr'?" },
    { "unknown section", "optm:\n  lr: 0.1\n",
      "%s:1:1: unknown key 'optm'; did you mean 'optim'?" },
    { "key in the wrong place", "lr: 0.1\n", "%s:1:1: unknown key 'lr'; did you mean 'optim.lr'?" },
    { "unknown nested key", "loss:\n  normbt:\n    emma: 0.5\n",
      "%s:3:5: unknown key 'loss.normbt.emma'; did you mean 'loss.normbt.ema'?" },
    { "unknown key, nothing near", "zzzzzzzzzz: 1\n",
      "%s:1:1: unknown key 'zzzzzzzzzz' (the keys are listed in docs/config.md)" },
    { "base inside a section", "run:\n  base: x.yaml\n",
      "%s:2:3: unknown key 'run.base'" },
    { "not a number", "optim:\n  lr: abc\n", "%s:2:7: optim.lr: expected a number, got 'abc'" },
    { "nan is not a number", "optim: {lr: .nan}\n",
      "%s:1:13: optim.lr: expected a number, got '.nan'" },
    { "not an integer", "train:\n  epochs: 1.5\n",
      "%s:2:11: train.epochs: expected an integer, got '1.5'" },
    { "negative seed", "run: {seed: -1}\n",
      "%s:1:13: run.seed: expected a non-negative integer, got '-1'" },
    { "seed too large", "run: {seed: 18446744073709551616}\n",
      "%s:1:13: run.seed: 18446744073709551616 does not fit in a 64-bit integer" },
    { "int overflow", "run: {threads: 99999999999}\n",
      "%s:1:16: run.threads: 99999999999 does not fit in a 32-bit integer" },
    { "not a bool", "checkpoint: {save_initial: maybe}\n",
      "%s:1:28: checkpoint.save_initial: expected true or false, got 'maybe'" },
    { "bad enum name", "model:\n  head: mpl\n",
      "%s:2:9: model.head: expected one of linear, mlp; got 'mpl' (did you mean 'mlp'?)" },
    { "lr out of range", "optim:\n  lr: 0\n", "%s:2:7: optim.lr: 0 is out of range (must be > 0)" },
    { "ema out of range", "loss:\n  normbt:\n    ema: 1\n",
      "%s:3:10: loss.normbt.ema: 1 is out of range (must be in [0, 1))" },
    { "beta out of range", "optim:\n  betas: [0.9, 1.5]\n",
      "%s:2:16: optim.betas[1]: 1.5 is out of range (must be in [0, 1))" },
    { "betas with one entry", "optim:\n  betas: [0.9]\n",
      "%s:2:10: optim.betas: expected 2 entries, got 1" },
    { "betas as a scalar", "optim:\n  betas: 0.9\n",
      "%s:2:10: optim.betas: expected a list of numbers, got '0.9'" },
    { "global_batch 0", "train: {global_batch: 0}\n",
      "%s:1:23: train.global_batch: 0 is out of range (must be >= 1 or all)" },
    { "global_batch word", "train: {global_batch: everything}\n",
      "%s:1:23: train.global_batch: expected an integer, got 'everything'" },
    { "steps -2", "train: {steps: -2}\n",
      "%s:1:16: train.steps: -2 is out of range (must be >= 0 or -1)" },
    { "threads 0", "run: {threads: 0}\n",
      "%s:1:16: run.threads: 0 is out of range (must be >= 1)" },
    { "too many hidden sizes", "model: {hidden: [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n",
      "%s:1:17: model.hidden: too many entries (9, at most 8)" },
    { "hidden size 0", "model: {head: mlp, hidden: [64, 0]}\n",
      "%s:1:33: model.hidden[1]: 0 is out of range (must be >= 1)" },
    { "mlp without hidden sizes", "model:\n  head: mlp\n",
      "%s:2:9: model.head: 'mlp' needs model.hidden (hidden layer sizes, e.g. [256])" },
    { "empty eval path", "data: {eval: [a.h5, '']}\n",
      "%s:1:21: data.eval[1]: expected a path, got an empty value" },
    { "name with a slash", "run: {name: a/b}\n",
      "%s:1:13: run.name: expected a non-empty name without '/', got 'a/b'" },
    { "empty name", "run: {name: ''}\n",
      "%s:1:13: run.name: expected a non-empty name without '/', got ''" },
    { "NUL in a string", "run: {name: \"a\\0b\"}\n",
      "%s:1:13: run.name: 'a?b' contains a NUL character" },
    { "duplicate key", "run:\n  seed: 1\n  seed: 2\n",
      "%s:3:3: duplicate key 'run.seed' (first given at line 2, column 3)" },
    { "duplicate section", "run: {seed: 1}\nrun: {seed: 2}\n",
      "%s:2:1: duplicate key 'run' (first given at line 1, column 1)" },
    { "dotted key", "optim.lr: 0.1\n", "%s:1:1: invalid key 'optim.lr': write nested mappings" },
    { "list as a key", "? [a]\n: 1\n", "%s:1:3: a key must be a name, got a list" },
    { "section given a value", "optim: 3\n",
      "%s:1:8: 'optim' is a section: expected a mapping of its keys, got a single value" },
    { "key given a mapping", "optim:\n  lr: {a: 1}\n",
      "%s:2:7: optim.lr: expected a number, got a mapping" },
    { "top level is a list", "- run\n- data\n",
      "%s:1:1: the top level must be a mapping of sections (run:, data:, model:, ...), "
      "got a list" },
    { "top level is a scalar", "hello\n", "%s:1:1: the top level must be a mapping" },
    { "YAML syntax error", "run:\n  name: [unclosed\n  seed: 1\n",
      "%s:3:7: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence "
      "at line 2, column 9)" },
    { "bad indentation", "run:\n    name: a\n  seed: 1\n", "%s:3:3: invalid YAML: " },
    { "tab indentation", "run:\n\tname: a\n", "%s:2:1: invalid YAML: " },
    { "undefined alias", "run: {seed: *nope}\n", "%s:1:13: invalid YAML: found undefined alias" },
    { "two documents", "run: {seed: 1}\n---\nrun: {seed: 2}\n",
      "%s:2:1: a second YAML document: a config is one mapping" },
    { "invalid UTF-8", "run:\n  name: caf\xe9\n", "%s:2:12: not YAML text: incomplete UTF-8 "
      "octet sequence" },
    { "control character", "run: {name: a\x01}\n",
      "%s:1:14: not YAML text: control characters are not allowed (byte 0x01)" },
    { "empty file", "", "%s: empty config" },
    { "only comments", "# nothing here\n\n", "%s: empty config" },
    { "only a null", "~\n", "%s: empty config" },
    { "base is a list", "base: [a.yaml]\n", "%s:1:7: base: expected the path of a config file" },
};

static void test_errors(void)
{
    btrm_config *cfg = new_config();
    char name[64], want[4096];
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const error_case *c = &error_cases[i];
        snprintf(name, sizeof name, "error-%zu.yaml", i);
        const char *path = write_text(name, c->yaml);
        int rc = btrm_config_load(cfg, path, NULL, 0);
        snprintf(want, sizeof want, c->want, path);
        ok(rc == BTRM_ECONFIG && !strncmp(btrm_error_msg(), want, strlen(want)),
           "%s: BTRM_ECONFIG, \"%s\"", c->what, want + strlen(path));
        if (rc != BTRM_ECONFIG || strncmp(btrm_error_msg(), want, strlen(want)))
            diag("rc %d, message: %s", rc, btrm_error_msg());
    }

    /* Nesting and length limits. */
    char deep[256] = "run: ";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    const char *path = write_text("deep.yaml", deep);
    snprintf(want, sizeof want, "%s:1:", path);
    ok(btrm_config_load(cfg, path, NULL, 0) == BTRM_ECONFIG &&
       strstr(btrm_error_msg(), "nested deeper than 16 levels") &&
       !strncmp(btrm_error_msg(), want, strlen(want)), "deep nesting is refused at its mark");
    size_t n = 5000;
    char *longpath = malloc(n + 32);
    strcpy(longpath, "data:\n  train: ");
    memset(longpath + strlen(longpath), 'a', n);
    strcpy(longpath + 15 + n, "\n");
    path = write_text("long.yaml", longpath);
    snprintf(want, sizeof want, "%s:2:10: data.train: too long (5000 bytes, at most 4095)", path);
    ok(btrm_config_load(cfg, path, NULL, 0) == BTRM_ECONFIG && !strcmp(btrm_error_msg(), want),
       "a path longer than BTRM_PATH_MAX is refused, not truncated");
    free(longpath);

    int rc = btrm_config_load(cfg, "/nonexistent-dir/x.yaml", NULL, 0);
    ok(rc == BTRM_ECONFIG, "a missing file is a config error");
    is_string(btrm_error_msg(), "cannot open '/nonexistent-dir/x.yaml': No such file or directory",
              "... naming the file and strerror");
    rc = btrm_config_load(cfg, tmpdir, NULL, 0);
    ok(rc == BTRM_ECONFIG && strstr(btrm_error_msg(), "it is a directory"),
       "a directory is refused");
    free(cfg);
}

static void test_set(void)
{
    btrm_config *cfg = new_config(), *before = new_config();
    btrm_config_defaults(cfg);
    is_int(btrm_config_set(cfg, "optim.lr=3e-4"), 0, "--set a scalar");
    ok(cfg->optim.lr == 3e-4, "... optim.lr = 3e-4");
    is_int(btrm_config_set(cfg, "model.hidden=[1024,256]"), 0, "--set a flow list");
    ok(cfg->model.n_hidden == 2 && cfg->model.hidden[0] == 1024 && cfg->model.hidden[1] == 256,
       "... model.hidden = [1024, 256]");
    is_int(btrm_config_set(cfg, "model.hidden=[32]"), 0, "--set a shorter list");
    ok(cfg->model.n_hidden == 1 && cfg->model.hidden[1] == 0, "... clears the old entries");
    is_int(btrm_config_set(cfg, "run.name='my run'"), 0, "--set a quoted string");
    is_string(cfg->run.name, "my run", "... quotes removed as in a file");
    is_int(btrm_config_set(cfg, "data.eval=[a.h5, \"b c.h5\"]"), 0, "--set a list of paths");
    ok(cfg->data.n_eval == 2 && !strcmp(cfg->data.eval[1], "b c.h5"), "... two paths");
    is_int(btrm_config_set(cfg, "data.eval=one.h5"), 0, "--set a list key to one value");
    ok(cfg->data.n_eval == 1 && !strcmp(cfg->data.eval[0], "one.h5"), "... a one-entry list");
    is_int(btrm_config_set(cfg, "data.train=x.h5"), 0, "--set a path");
    is_int(btrm_config_set(cfg, "data.train="), 0, "--set an empty value");
    is_string(cfg->data.train, "", "... unsets a path");
    is_int(btrm_config_set(cfg, "train.global_batch=all"), 0, "--set global_batch=all");
    is_int(cfg->train.global_batch, 0, "... stored as 0");
    is_int(btrm_config_set(cfg, "train.steps=-1"), 0, "--set steps=-1 (unset)");
    is_int(btrm_config_set(cfg, "loss={type: normbt, normbt: {ema: 0.5}}"), 0,
           "--set a section to a mapping");
    ok(cfg->loss.type == BTRM_LOSS_NORMBT && cfg->loss.normbt_ema == 0.5, "... both keys set");
    is_int(btrm_config_set(cfg, "dist.shard_optimizer=off"), 0, "--set a bool (off)");
    ok(!cfg->dist.shard_optimizer, "... false");

    static const struct { const char *set, *want; } bad[] = {
        { "optim.lr=abc", "--set 'optim.lr=abc': expected a number, got 'abc'" },
        { "optim.lrr=1", "--set 'optim.lrr=1': unknown key 'optim.lrr'; did you mean 'optim.lr'?" },
        { "optim.lr", "--set 'optim.lr': expected KEY=VALUE, e.g. --set optim.lr=3e-4" },
        { "=1", "--set '=1': expected KEY=VALUE, e.g. --set optim.lr=3e-4" },
        { "optim.lr=", "--set 'optim.lr=': expected a number, got ''" },
        { "optim.lr=-1", "--set 'optim.lr=-1': -1 is out of range (must be > 0)" },
        { "model.hidden=[64, 0]",
          "--set 'model.hidden=[64, 0]': model.hidden[1]: 0 is out of range (must be >= 1)" },
        { "model.hidden=[1, 2", "--set 'model.hidden=[1, 2': invalid YAML: did not find expected "
          "',' or ']' at the end of the value (while parsing a flow sequence at column 1)" },
        { "run.name=\xff", "--set 'run.name=\xff': not YAML text: invalid leading UTF-8 octet "
          "(byte 0xFF) at column 1" },
        { "optim=3", "--set 'optim=3': 'optim' is a section: expected a mapping of its keys, "
          "e.g. optim={key: value}" },
        { "loss={normbt: {emma: 1}}",
          "--set 'loss={normbt: {emma: 1}}': unknown key 'loss.normbt.emma'; did you mean "
          "'loss.normbt.ema'?" },
        { "base=x.yaml",
          "--set 'base=x.yaml': 'base' is allowed only at the top of a config file" },
        { "optim.betas=[0.9, 0.99, 0.999]",
          "--set 'optim.betas=[0.9, 0.99, 0.999]': too many entries (3, at most 2)" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(before, cfg, sizeof *cfg);
        int rc = btrm_config_set(cfg, bad[i].set);
        ok(rc == BTRM_ECONFIG, "bad --set '%s' is BTRM_ECONFIG", bad[i].set);
        is_string(btrm_error_msg(), bad[i].want, "... with a message naming the override");
        ok(!memcmp(before, cfg, sizeof *cfg), "... and leaves the config unchanged");
    }

    const char *mlp_only[] = { "model.head=mlp" };
    int rc = btrm_config_load(cfg, NULL, mlp_only, 1);
    is_string(rc ? btrm_error_msg() : "", "--set 'model.head=mlp': model.head: 'mlp' needs "
              "model.hidden (hidden layer sizes, e.g. [256])",
              "cross-key errors name the --set that caused them");
    const char *mlp_both[] = { "model.head=mlp", "model.hidden=[32]" };
    is_int(btrm_config_load(cfg, NULL, mlp_both, 2), 0,
           "cross-key checks run after all the overrides");
    const char *bad_in_load[] = { "optim.lr=1", "train.epochs=x" };
    rc = btrm_config_load(cfg, NULL, bad_in_load, 2);
    ok(rc == BTRM_ECONFIG && !strcmp(btrm_error_msg(), "--set 'train.epochs=x': expected an "
       "integer, got 'x'"), "a bad override in btrm_config_load");
    free(before);
    free(cfg);
}

/* emit -> file -> load must give a memcmp-equal config, and emitting that
 * again the same text. */
static int round_trip(const btrm_config *cfg, const char *name)
{
    char *text = NULL, *again = NULL;
    btrm_config *back = new_config();
    int rc = btrm_config_emit_string(cfg, &text);
    if (!rc) {
        const char *path = write_text(name, text);
        rc = btrm_config_load(back, path, NULL, 0);
    }
    if (!rc)
        rc = btrm_config_emit_string(back, &again);
    int same = !rc && !memcmp(cfg, back, sizeof *cfg) && !strcmp(text, again);
    if (!same)
        diag("rc %d (%s); emitted:\n%s", rc, rc ? btrm_error_msg() : "", text ? text : "");
    free(text);
    free(again);
    free(back);
    return same;
}

static void test_round_trip(void)
{
    char path[2048];
    btrm_config *cfg = new_config();
    btrm_config_defaults(cfg);
    ok(round_trip(cfg, "rt-defaults.yaml"), "defaults: emit -> load is memcmp-equal");
    btrm_config_load(cfg, data("full.yaml", path, sizeof path), NULL, 0);
    ok(round_trip(cfg, "rt-full.yaml"), "every key non-default: emit -> load is memcmp-equal");

    /* Strings that need quoting or escapes, numbers that need all 17 digits. */
    static const char *const sets[] = {
        "run.name=\"tab\\there \\\"q\\\" back\\\\slash \\u00e9 \\x85 \\u2028 \\U0001F600 #x: y\"",
        "run.out_dir=\" leading space/- dash: [x] {y} & * ! | > ' % @ `\"",
        "data.train=\"\\x01ctl\\nnew\\rline\\x7f\"",
        "data.eval=[\"-\", \"~\", \"null\", \"123\", \"true\", \"[a]\", \"'q'\", \"\\u00a0\"]",
        "optim.lr=0.1", "optim.eps=1e-300", "optim.betas=[0.30000000000000004, 4.9e-324]",
        "loss.center_rewards=1.7976931348623157e308", "optim.weight_decay=-0",
        "run.seed=0", "optim.warmup_steps=9223372036854775807", "train.steps=-1",
    };
    btrm_config_defaults(cfg);
    int bad = 0;
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (btrm_config_set(cfg, sets[i]) != 0) {
            diag("%s", btrm_error_msg());
            bad++;
        }
    is_int(bad, 0, "odd strings and extreme numbers are accepted");
    is_string(cfg->run.name, "tab\there \"q\" back\\slash \xc3\xa9 \xc2\x85 \xe2\x80\xa8 "
              "\xf0\x9f\x98\x80 #x: y", "YAML escapes decode in --set values");
    ok(round_trip(cfg, "rt-odd.yaml"), "odd strings and extreme numbers round-trip");

    btrm_config_defaults(cfg);
    memset(cfg->data.train, 'p', BTRM_PATH_MAX - 1);
    for (int i = 0; i < BTRM_MAX_EVAL; i++)
        memset(cfg->data.eval[i], 'a' + i, BTRM_PATH_MAX - 1);
    cfg->data.n_eval = BTRM_MAX_EVAL;
    ok(round_trip(cfg, "rt-long.yaml"), "maximal paths and lists round-trip (no line folding)");

    /* emit(FILE) and emit_string agree. */
    char *text = NULL, *file_text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&file_text, &size);
    int rc = btrm_config_emit(cfg, f);
    fclose(f);
    btrm_config_emit_string(cfg, &text);
    ok(!rc && text && file_text && !strcmp(text, file_text), "emit and emit_string agree");
    free(text);
    free(file_text);

    cfg->run.name[0] = '\xff';
    text = (char *)1;
    rc = btrm_config_emit_string(cfg, &text);
    ok(rc != 0 && text == NULL, "a string that is not UTF-8 cannot be emitted (error, no text)");
    like(btrm_error_msg(), "run.name: ", "... and the error names the key");
    free(cfg);
}

static void test_validate_and_names(void)
{
    btrm_config *cfg = new_config();
    btrm_config_defaults(cfg);
    is_int(btrm_config_validate(cfg), BTRM_ECONFIG, "validate: defaults lack data.train");
    like(btrm_error_msg(), "missing required key 'data.train'", "... named as a missing key");
    strcpy(cfg->data.train, "train.h5");
    is_int(btrm_config_validate(cfg), 0, "validate: defaults + data.train pass");
    cfg->optim.lr = 0;
    is_int(btrm_config_validate(cfg), BTRM_ECONFIG, "validate re-checks ranges");
    is_string(btrm_error_msg(), "optim.lr: 0 is out of range (must be > 0)", "... with the range");
    cfg->optim.lr = 1e-3;
    cfg->model.head = BTRM_HEAD_MLP;
    is_int(btrm_config_validate(cfg), BTRM_ECONFIG, "validate: mlp needs hidden sizes");
    like(btrm_error_msg(), "model.head: 'mlp' needs model.hidden", "... says so");
    cfg->model.head = 7;
    is_int(btrm_config_validate(cfg), BTRM_ECONFIG, "validate: enum out of range");
    cfg->model.head = BTRM_HEAD_LINEAR;
    cfg->data.n_eval = BTRM_MAX_EVAL + 1;
    is_int(btrm_config_validate(cfg), BTRM_ECONFIG, "validate: list count out of range");
    cfg->data.n_eval = 0;
    cfg->train.global_batch = 0;
    is_int(btrm_config_validate(cfg), 0, "validate: global_batch 0 (all) is fine");

    is_string(btrm_config_enum_name("loss.type", BTRM_LOSS_NORMBT), "normbt", "enum name normbt");
    is_string(btrm_config_enum_name("loss.type", BTRM_LOSS_BT), "bt", "enum name bt");
    is_string(btrm_config_enum_name("model.head", BTRM_HEAD_MLP), "mlp", "enum name mlp");
    is_string(btrm_config_enum_name("model.activation", BTRM_ACT_TANH), "tanh", "enum name tanh");
    is_string(btrm_config_enum_name("loss.margin", BTRM_MARGIN_DATA), "data", "enum name data");
    is_string(btrm_config_enum_name("optim.type", BTRM_OPTIM_SGD), "sgd", "enum name sgd");
    is_string(btrm_config_enum_name("optim.schedule", BTRM_SCHED_COSINE), "cosine",
              "enum name cosine");
    is_string(btrm_config_enum_name("optim.schedule", 3), "unknown", "enum value out of range");
    is_string(btrm_config_enum_name("optim.lr", 0), "unknown", "not an enum key");

    char *md = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&md, &size);
    btrm_config_doc_markdown(f);
    fclose(f);
    like(md, "### `loss`\n\n| Key | Type | Default | Allowed | Description |", "markdown sections");
    like(md, "| `optim.lr` | number | `1e-3` | > 0 | peak learning rate |",
         "markdown optim.lr row");
    like(md, "| `model.head` | enum | `linear` | `linear`, `mlp` |", "markdown enum row");
    like(md, "| `train.global_batch` | integer | `256` | >= 1 or all |", "markdown special value");
    /* Every key the emitter writes has a row. */
    char *text = NULL;
    btrm_config_emit_string(cfg, &text);
    int rows = 0, missing = 0;
    char section[64] = "", sub[64] = "";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int indent = (int)strspn(line, " ");
        char key[64], row[200];
        if (sscanf(line + indent, "%63[^:]", key) != 1)
            continue;
        if (line[strlen(line) - 1] == ':') {
            snprintf(indent ? sub : section, 64, "%s", key);
            continue;
        }
        snprintf(row, sizeof row, "| `%s.%s%s%s` |", section, indent == 4 ? sub : "",
                 indent == 4 ? "." : "", key);
        rows++;
        if (!strstr(md, row)) {
            missing++;
            diag("no markdown row %s", row);
        }
    }
    ok(rows >= 30 && missing == 0, "the markdown has a row for each of the %d emitted keys", rows);
    free(text);
    free(md);
    free(cfg);
}

/* xorshift64*: a fixed pseudo-random stream for the garbage tests. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_garbage(void)
{
    size_t n = 10u << 20;
    char *junk = malloc(n), path_full[2048], want[512];
    btrm_config *cfg = new_config();
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = next_random();
        memcpy(junk + i, &r, 8);
    }
    const char *path = write_file("garbage.bin", junk, n);
    double t0 = now();
    int rc = btrm_config_load(cfg, path, NULL, 0);
    double seconds = now() - t0;
    is_int(rc, BTRM_ECONFIG, "a 10 MB random file is BTRM_ECONFIG");
    snprintf(want, sizeof want, "%s:1:", path);
    ok(!strncmp(btrm_error_msg(), want, strlen(want)) &&
       strstr(btrm_error_msg(), ": not YAML text: "),
       "... reported at FILE:LINE:COL (%s)", btrm_error_msg());
    ok(seconds < 5, "... quickly (%.3f s)", seconds);

    /* Printable garbage: valid UTF-8, so it reaches the YAML scanner. */
    static const char alphabet[] = "abc:- \n\t[]{},#&*!|>'\"%@`?~\\0123.";
    for (size_t i = 0; i < (1u << 20); i++)
        junk[i] = alphabet[next_random() % (sizeof alphabet - 1)];
    path = write_file("printable.bin", junk, 1u << 20);
    rc = btrm_config_load(cfg, path, NULL, 0);
    ok(rc == BTRM_ECONFIG && !strncmp(btrm_error_msg(), path, strlen(path)),
       "1 MB of printable garbage is BTRM_ECONFIG naming the file");

    /* Mutants of full.yaml: any outcome but a crash, a leak or another code. */
    FILE *f = fopen(data("full.yaml", path_full, sizeof path_full), "rb");
    size_t len = f ? fread(junk, 1, n, f) : 0;
    if (f)
        fclose(f);
    int odd = 0, loaded = 0;
    const char *mutant = NULL;
    for (int m = 0; m < 300; m++) {
        char *copy = malloc(len);
        memcpy(copy, junk, len);
        for (int k = 0; k < 1 + m % 4; k++)
            copy[next_random() % len] = (char)(next_random() & (m % 2 ? 0x7F : 0xFF));
        if (!m)
            mutant = write_file("mutant.yaml", copy, len);
        FILE *out = fopen(mutant, "wb");
        if (!out || fwrite(copy, 1, len, out) != len || fclose(out))
            abort();
        rc = btrm_config_load(cfg, mutant, NULL, 0);
        loaded += rc == 0;
        if (rc != 0 && rc != BTRM_ECONFIG) {
            odd++;
            diag("mutant %d: rc %d: %s", m, rc, btrm_error_msg());
        }
        free(copy);
    }
    ok(odd == 0, "300 mutated configs load or fail with BTRM_ECONFIG (%d loaded)", loaded);
    free(junk);
    free(cfg);
}

int main(void)
{
    const char *srcdir = getenv("BTRM_SRCDIR");
    const char *tmp = getenv("TMPDIR");
    snprintf(datadir, sizeof datadir, "%s/tests/data/config", srcdir ? srcdir : ".");
    snprintf(tmpdir, sizeof tmpdir, "%s/btrm-test-config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpdir)) {
        skip_all("cannot create a temporary directory");
        return 0;
    }
    test_defaults();
    test_full_file();
    test_base_chain();
    test_errors();
    test_set();
    test_round_trip();
    test_validate_and_names();
    test_garbage();
    for (int i = 0; i < n_created; i++) {
        unlink(created[i]);
        free(created[i]);
    }
    rmdir(tmpdir);
    return done_testing();
}
