/* config.c: the key table, the YAML loader (files, base: chains, --set) and
 * the emitter.
 *
 * Every key is one row of keys[] below: dotted name, type, default (YAML
 * text, parsed by the same code as a --set value), doc string, where it lives
 * in btrm_config, and its range. Defaults, the loader, --set, the emitter,
 * btrm_config_validate and the markdown reference all walk that table, so
 * adding a key (or a section: a new prefix) is adding a row.
 *
 * Files are parsed with libyaml in two passes: an event scan that bounds the
 * nesting depth and node count (so a garbage or hostile file fails fast and
 * small) and reports syntax errors with their mark, then the document loader,
 * whose node marks name the FILE:LINE:COLUMN of every later error. */
#include "config.h"

#include "error.h"
#include "fileutil.h"
#include "llama_train.h"
#include "yamlfile.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_CHAIN 32               /* files in a base: chain */
#define EXCERPT_MAX 64             /* bytes of a bad value quoted in a message */
#define SUGGEST_MAX 128            /* longer names get no "did you mean" */
#define RANGE_MAX 128              /* the text of a range: "in [0, 1)" */

enum key_type {
    T_NAME,        /* string: non-empty, no '/' */
    T_PATH,        /* string: a file or directory name, may be empty */
    T_INT,         /* int */
    T_I64,         /* int64_t */
    T_U64,         /* uint64_t */
    T_DOUBLE,      /* double, finite */
    T_BOOL,        /* bool */
    T_ENUM,        /* int: index into names */
    T_INT_LIST,    /* int[max_count] */
    T_DOUBLE_LIST, /* double[max_count] */
    T_PATH_LIST,   /* char[max_count][size / max_count] */
    T_NAME_LIST,   /* char[max_count][size / max_count], each a T_NAME */
};

enum { B_LO = 1, B_LO_OPEN = 2, B_HI = 4, B_HI_OPEN = 8 };

typedef struct key_def {
    const char *name; /* dotted: section.key or section.sub.key */
    enum key_type type;
    const char *def;  /* default, as YAML text */
    const char *doc;
    size_t offset, size;         /* the field in btrm_config */
    int max_count, min_count;    /* lists */
    int counted;                 /* lists: the count lives at count_offset */
    size_t count_offset;
    double lo, hi;               /* numbers and list entries, see bounds */
    unsigned bounds;
    const char *const *names;    /* enums, NULL-terminated */
    int has_special;             /* also allowed: special_value, */
    int64_t special_value;
    const char *special_word;    /* written as this word when not NULL */
} key_def;

#define FIELD(f) (((btrm_config *)0)->f)
#define AT(f) .offset = offsetof(btrm_config, f), .size = sizeof(FIELD(f))
#define LIST(f, n)                                                                \
    AT(f), .max_count = (int)(sizeof(FIELD(f)) / sizeof(FIELD(f)[0])), .counted = 1, \
        .count_offset = offsetof(btrm_config, n)
#define PAIR(f) AT(f), .max_count = 2, .min_count = 2
#define GE(x) .lo = (x), .bounds = B_LO
#define GT(x) .lo = (x), .bounds = B_LO | B_LO_OPEN
#define UNIT_OPEN .lo = 0, .hi = 1, .bounds = B_LO | B_HI | B_HI_OPEN
#define NAMES(...) .names = (const char *const[]){ __VA_ARGS__, NULL }

/* Sections must be contiguous (the emitter opens each mapping once); enum
 * names are in the order of the enum values in config.h. */
static const key_def keys[] = {
    { "run.name", T_NAME, "\"btrm\"", "name of the run; the default output directory is "
      "`runs/<name>`", AT(run.name) },
    { "run.out_dir", T_PATH, "\"\"", "output directory (config, metrics, model); `\"\"` = "
      "`runs/<run.name>`", AT(run.out_dir) },
    { "run.seed", T_U64, "1", "seed of the initialization and of the shuffling", AT(run.seed) },
    { "run.threads", T_INT, "1", "BLAS and oneDNN (OpenMP) threads per MPI rank", AT(run.threads),
      GE(1) },
    { "data.train", T_PATH, "\"\"", "training pair store (HDF5); required by `btrm train`",
      AT(data.train) },
    { "data.eval", T_PATH_LIST, "[]", "pair stores evaluated during and after training",
      LIST(data.eval, data.n_eval) },
    { "model.head", T_ENUM, "linear", "reward head on the representations", AT(model.head),
      NAMES("linear", "mlp") },
    { "model.hidden", T_INT_LIST, "[]", "hidden layer sizes of an `mlp` head, e.g. `[1024, 256]`",
      LIST(model.hidden, model.n_hidden), GE(1) },
    { "model.activation", T_ENUM, "gelu", "activation of the `mlp` head's hidden layers",
      AT(model.activation), NAMES("gelu", "relu", "tanh") },
    { "model.backbone", T_PATH, "\"\"", "where the representations come from: `\"\"` = the "
      "pair store's /features; `gguf:PATH` or `llama2c:PATH[,tokenizer=PATH]` = an LLM run "
      "on the store's /texts (the spec of `btrm embed`; the `embed.*` keys apply)",
      AT(model.backbone) },
    { "model.finetune.type", T_ENUM, "none", "what of `model.backbone` trains with the head: "
      "`none` (frozen), `lora` adapters, or the `top_k` blocks in full (docs/training.md)",
      AT(model.finetune.type), NAMES("none", "lora", "top_k") },
    { "model.finetune.rank", T_INT, "8", "LoRA rank r (at most the smallest dimension of a "
      "target)", AT(model.finetune.rank), GE(1) },
    { "model.finetune.alpha", T_DOUBLE, "16", "LoRA alpha: the update is (alpha / r) B A",
      AT(model.finetune.alpha), GT(0) },
    { "model.finetune.targets", T_NAME_LIST, "[q, k, v, o, gate, up, down]", "the projections "
      "LoRA adapts", LIST(model.finetune.targets, model.finetune.n_targets) },
    { "model.finetune.layers", T_INT, "0", "the top k transformer blocks that train (LoRA or "
      "top_k); 0 = all of them", AT(model.finetune.layers), GE(0) },
    { "loss.type", T_ENUM, "bt", "`bt`: Bradley-Terry, -log sigmoid(r_c - r_r); `normbt`: each "
      "pair's loss scaled by mean distance / its distance", AT(loss.type), NAMES("bt", "normbt") },
    { "loss.normbt.ema", T_DOUBLE, "0.9", "EMA factor of NormBT's running mean distance",
      AT(loss.normbt_ema), UNIT_OPEN },
    { "loss.normbt.eps", T_DOUBLE, "1e-6", "floor of a pair's distance in NormBT's weight",
      AT(loss.normbt_eps), GT(0) },
    { "loss.normbt.max_weight", T_DOUBLE, "0", "cap on a pair's NormBT weight; 0 = no cap",
      AT(loss.normbt_max_weight), GE(0) },
    { "loss.margin", T_ENUM, "none", "`data`: subtract the pair store's /pairs/margin from "
      "r_c - r_r", AT(loss.margin), NAMES("none", "data") },
    { "loss.center_rewards", T_DOUBLE, "0", "coefficient c of the penalty c (r_c + r_r)^2 that "
      "centers rewards at 0", AT(loss.center_rewards), GE(0) },
    { "optim.type", T_ENUM, "adamw", "optimizer, with PyTorch's semantics; `newton`: "
      "full-batch Newton on a linear head (docs/newton.md)", AT(optim.type),
      NAMES("adamw", "sgd", "newton") },
    { "optim.lr", T_DOUBLE, "1e-3", "peak learning rate", AT(optim.lr), GT(0) },
    { "optim.betas", T_DOUBLE_LIST, "[0.9, 0.999]", "AdamW's [beta1, beta2]", PAIR(optim.betas),
      UNIT_OPEN },
    { "optim.eps", T_DOUBLE, "1e-8", "AdamW's epsilon", AT(optim.eps), GT(0) },
    { "optim.weight_decay", T_DOUBLE, "0.01", "decoupled weight decay (adamw), L2 penalty (sgd)",
      AT(optim.weight_decay), GE(0) },
    { "optim.momentum", T_DOUBLE, "0", "SGD momentum", AT(optim.momentum), UNIT_OPEN },
    { "optim.schedule", T_ENUM, "constant", "learning-rate schedule after the warmup",
      AT(optim.schedule), NAMES("constant", "linear", "cosine") },
    { "optim.warmup_steps", T_I64, "0", "steps of linear warmup from 0 to `optim.lr`",
      AT(optim.warmup_steps), GE(0) },
    { "optim.grad_clip", T_DOUBLE, "0", "maximum global L2 norm of the gradient; 0 = off",
      AT(optim.grad_clip), GE(0) },
    { "optim.tol", T_DOUBLE, "1e-8", "`newton`: stop when the gradient norm is at most tol "
      "times the initial one", AT(optim.tol), GE(0) },
    { "optim.max_iter", T_I64, "50", "`newton`: maximum Newton steps", AT(optim.max_iter),
      GE(1) },
    { "train.global_batch", T_I64, "256", "pairs per optimizer step, split over the ranks; "
      "`all` = the whole training set", AT(train.global_batch), GE(1), .has_special = 1,
      .special_value = 0, .special_word = "all" },
    { "train.epochs", T_I64, "1", "passes over the training set (when `train.steps` is unset)",
      AT(train.epochs), GE(1) },
    { "train.steps", T_I64, "-1", "optimizer steps; -1 = unset; wins over `train.epochs`; "
      "0 = write the initial model as `final.h5` and exit", AT(train.steps), GE(0), .has_special = 1, .special_value = -1 },
    { "train.log_every", T_I64, "10", "steps between metric lines", AT(train.log_every), GE(1) },
    { "train.eval_every", T_I64, "0", "steps between evaluations of `data.eval`; 0 = at the end",
      AT(train.eval_every), GE(0) },
    { "train.micro_batch", T_I64, "8", "pairs per backbone forward and backward on a rank "
      "(`model.backbone`): bounds the activation memory; gradients accumulate up to the "
      "rank's share of `train.global_batch`; 0 = the whole share", AT(train.micro_batch),
      GE(0) },
    { "train.recompute", T_BOOL, "false", "keep only each trainable block's input and run its "
      "forward again in the backward (less memory, about one more forward of those blocks)",
      AT(train.recompute) },
    { "train.precision", T_ENUM, "fp32", "input precision of the head's matrix products: `bf16` "
      "rounds their inputs to bfloat16 (fp32 accumulation, fp32 master weights, optimizer, "
      "loss and NormBT distances); needs oneDNN (below AVX-512: fp32 sgemm of the "
      "rounded inputs, no speed-up)", AT(train.precision), NAMES("fp32", "bf16") },
    { "checkpoint.dir", T_PATH, "\"\"", "checkpoint directory; `\"\"` = "
      "`<run.out_dir>/checkpoints`", AT(checkpoint.dir) },
    { "checkpoint.every", T_I64, "0", "steps between checkpoints; 0 = only at the end",
      AT(checkpoint.every), GE(0) },
    { "checkpoint.keep", T_INT, "3", "newest checkpoints kept", AT(checkpoint.keep), GE(1) },
    { "checkpoint.save_initial", T_BOOL, "false", "also checkpoint the initial model (step 0)",
      AT(checkpoint.save_initial) },
    { "dist.shard_optimizer", T_BOOL, "true", "shard the optimizer state over the ranks "
      "(ZeRO-1)", AT(dist.shard_optimizer) },
    { "embed.pool", T_ENUM, "last", "representation of a text (LLM backbones): the "
      "final-norm hidden state of its `last` token, or the `mean` over its tokens",
      AT(embed.pool), NAMES("last", "mean") },
    { "embed.max_tokens", T_INT, "512", "tokens kept per text, truncating from the left (BOS "
      "kept); 0 (or more than the model's context length) = that length", AT(embed.max_tokens),
      GE(0) },
    { "embed.bos", T_ENUM, "auto", "prepend the tokenizer's BOS token: `auto` as the model "
      "file says (tokenizer.ggml.add_bos_token, else its tokenizer's default), or always "
      "(`true`) or never (`false`)", AT(embed.bos), NAMES("auto", "false", "true") },
    { "embed.max_batch_tokens", T_INT, "4096", "tokens per forward batch (texts sorted by "
      "length); sizes the work buffers", AT(embed.max_batch_tokens), GE(1) },
    { "embed.dequantize", T_BOOL, "false", "convert quantised and half weights to float32 once at "
      "load (faster, 2-4x the memory) instead of row blocks in each product",
      AT(embed.dequantize) },
    { "embed.kernel", T_ENUM, "auto", "products with quantised weights: `dequant` (row "
      "blocks to float32, then GEMM; exact), `int8` (Q8_0 and K-quants: 8-bit activations, "
      "integer dot products; docs/backbones.md has its error); `auto` = dequant",
      AT(embed.kernel), NAMES("auto", "dequant", "int8") },
    { "embed.precision", T_ENUM, "fp32", "input precision of the backbone's weight products: "
      "`bf16` keeps the weights once in bfloat16 and rounds the activations (fp32 "
      "accumulation); needs oneDNN (below AVX-512: fp32 sgemm of the rounded inputs, "
      "no speed-up)", AT(embed.precision), NAMES("fp32", "bf16") },
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

/* Where a --set override or a YAML text comes from, for messages. */
typedef struct source {
    const char *file;       /* config file, or NULL for --set */
    const char *assignment; /* the whole --set text */
    const char *set_key;    /* its key: not repeated in its messages */
    const unsigned char *text;
    size_t len;
} source;

/* Where a key got its value (for cross-key errors). */
typedef struct origin {
    const char *where; /* file (line > 0) or --set assignment; NULL = default */
    size_t line, column;
} origin;

typedef struct load_ctx {
    btrm_config *cfg;
    origin origins[N_KEYS];
    char *shown[MAX_CHAIN];    /* files of the base chain, outermost first */
    dev_t dev[MAX_CHAIN];      /* their identity, for cycle detection */
    ino_t ino[MAX_CHAIN];
    int n_files;
} load_ctx;

/* ---------------------------------------------------------------------------
 * Small helpers */

static int is_list(enum key_type t) { return t >= T_INT_LIST; }

static enum key_type elem_type(enum key_type t)
{
    return t == T_INT_LIST      ? T_INT
           : t == T_DOUBLE_LIST ? T_DOUBLE
           : t == T_PATH_LIST   ? T_PATH
           : t == T_NAME_LIST   ? T_NAME
                                : t;
}

static size_t elem_size(const key_def *k)
{
    return is_list(k->type) ? k->size / (size_t)k->max_count : k->size;
}

static int find_key(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].name, name))
            return i;
    return -1;
}

/* A section is a proper prefix of some key: "loss", "loss.normbt". */
static int is_section(const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < N_KEYS; i++)
        if (!strncmp(keys[i].name, name, n) && keys[i].name[n] == '.')
            return 1;
    return 0;
}

/* Copies at most EXCERPT_MAX bytes of text for a message, control bytes as
 * '?', "..." when cut (never inside a UTF-8 sequence). */
static const char *excerpt(char *buf, size_t size, const char *text, size_t len)
{
    size_t n = len < EXCERPT_MAX ? len : EXCERPT_MAX;
    if (n >= size - 4)
        n = size - 4;
    while (n < len && n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[i] = c < 0x20 || c == 0x7F ? '?' : (char)c;
    }
    strcpy(buf + n, n < len ? "..." : "");
    return buf;
}

/* Edit distance counting a swap of neighbours as one edit ("mpl" -> "mlp");
 * b (a table name) is at most SUGGEST_MAX bytes. Rows i-2, i-1, i. SIZE_MAX
 * when the lengths differ by more than 3, the farthest suggest_limit
 * accepts (the distance is at least the difference): a long name costs no
 * quadratic work per key. */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    size_t rows[3][SUGGEST_MAX + 1];
    if (nb > SUGGEST_MAX || na > nb + 3 || nb > na + 3)
        return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++)
        rows[0][j] = rows[1][j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t *two = rows[(i + 1) % 3], *prev = rows[(i + 2) % 3], *cur = rows[i % 3];
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                two[j - 2] + 1 < best)
                best = two[j - 2] + 1;
            cur[j] = best;
        }
    }
    return rows[na % 3][nb];
}

static size_t suggest_limit(size_t n) { return n <= 4 ? 1 : n <= 8 ? 2 : 3; }

/* The key or section nearest to name, or "" when none is near. */
static void suggest_key(const char *name, char *out, size_t size)
{
    size_t n = strlen(name), best = SIZE_MAX;
    out[0] = '\0';
    if (n > SUGGEST_MAX)
        return;
    for (int i = 0; i < N_KEYS; i++)
        for (const char *p = keys[i].name;; p++) {
            if (*p == '.' || *p == '\0') {
                size_t len = (size_t)(p - keys[i].name);
                size_t d = edit_distance(name, n, keys[i].name, len);
                if (d < best && d <= suggest_limit(n)) {
                    best = d;
                    snprintf(out, size, "%.*s", (int)len, keys[i].name);
                }
            }
            if (!*p)
                break;
        }
    if (out[0])
        return;
    /* "lr" at the top level, "optim.momentun": match the last component. */
    const char *last = strrchr(name, '.');
    last = last ? last + 1 : name;
    size_t nl = strlen(last);
    for (int i = 0; i < N_KEYS; i++) {
        const char *leaf = strrchr(keys[i].name, '.') + 1;
        size_t d = edit_distance(last, nl, leaf, strlen(leaf));
        if (d < best && d <= suggest_limit(nl) - (nl <= 4)) {
            best = d;
            snprintf(out, size, "%s", keys[i].name);
        }
    }
}

/* "in [0, 1)", "> 0", ">= 1 or all": the range of a number or list entry. */
static const char *range_text(const key_def *k, char *buf, size_t size)
{
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, "%g", k->lo);
    snprintf(hi, sizeof hi, "%g", k->hi);
    if ((k->bounds & B_LO) && (k->bounds & B_HI))
        snprintf(buf, size, "in %c%s, %s%c", k->bounds & B_LO_OPEN ? '(' : '[', lo, hi,
                 k->bounds & B_HI_OPEN ? ')' : ']');
    else if (k->bounds & B_LO)
        snprintf(buf, size, "%s %s", k->bounds & B_LO_OPEN ? ">" : ">=", lo);
    else if (k->bounds & B_HI)
        snprintf(buf, size, "%s %s", k->bounds & B_HI_OPEN ? "<" : "<=", hi);
    else
        snprintf(buf, size, "any");
    if (k->has_special) {
        size_t used = strlen(buf);
        if (k->special_word)
            snprintf(buf + used, size - used, " or %s", k->special_word);
        else
            snprintf(buf + used, size - used, " or %" PRId64, k->special_value);
    }
    return buf;
}

/* Whether v is in k's range; special_ok also admits k's special value. */
static int in_range(const key_def *k, double v, int special_ok)
{
    if (special_ok && k->has_special && v == (double)k->special_value)
        return 1;
    if ((k->bounds & B_LO) && (k->bounds & B_LO_OPEN ? !(v > k->lo) : !(v >= k->lo)))
        return 0;
    if ((k->bounds & B_HI) && (k->bounds & B_HI_OPEN ? !(v < k->hi) : !(v <= k->hi)))
        return 0;
    return 1;
}

static const char *expected(enum key_type t)
{
    switch (t) {
    case T_NAME: return "a name";
    case T_PATH: return "a path";
    case T_INT:
    case T_I64: return "an integer";
    case T_U64: return "a non-negative integer";
    case T_DOUBLE: return "a number";
    case T_BOOL: return "true or false";
    case T_ENUM: return "a name";
    case T_INT_LIST: return "a list of integers";
    case T_DOUBLE_LIST: return "a list of numbers";
    case T_PATH_LIST: return "a list of paths";
    case T_NAME_LIST: return "a list of names";
    }
    return "a value";
}

static btrm_yaml_src yaml_src(const source *src)
{
    return (btrm_yaml_src){ .file = src->file, .assignment = src->assignment,
                            .what = "a config", .text = src->text, .len = src->len };
}

/* Records "FILE:LINE:COL: KEY: message" or "--set 'A': message". */
static int fail_at(const source *src, yaml_mark_t mark, const char *key, int index,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail_at(const source *src, yaml_mark_t mark, const char *key, int index,
                   const char *fmt, ...)
{
    char msg[BTRM_ERROR_MAX], what[160] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (key && index >= 0)
        snprintf(what, sizeof what, "%s[%d]: ", key, index);
    else if (key && (src->file || !src->set_key || strcmp(key, src->set_key)))
        snprintf(what, sizeof what, "%s: ", key);
    btrm_yaml_src y = yaml_src(src);
    return btrm_yaml_fail(&y, mark, "%s%s", what, msg);
}

/* ---------------------------------------------------------------------------
 * Values: one scalar into its typed slot */

static int parse_int64(const char *s, int64_t *out)
{
    const char *p = s + (*s == '-' || *s == '+');
    if (!*p || strspn(p, "0123456789") != strlen(p))
        return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno)
        return -2;
    *out = v;
    return 0;
}

static int parse_elem(const source *src, const key_def *k, enum key_type type, int index,
                      const yaml_node_t *n, void *dst, size_t dst_size)
{
    yaml_mark_t mark = n ? n->start_mark : (yaml_mark_t){ 0, 0, 0 };
    const char *text = "";
    size_t len = 0;
    char shown[EXCERPT_MAX + 8], range[RANGE_MAX];
    if (n && n->type != YAML_SCALAR_NODE)
        return fail_at(src, mark, k->name, index, "expected %s, got %s", expected(type),
                       btrm_yaml_node_kind(n));
    if (n) {
        text = (const char *)n->data.scalar.value;
        len = n->data.scalar.length;
    }
    excerpt(shown, sizeof shown, text, len);
    if (memchr(text, '\0', len))
        return fail_at(src, mark, k->name, index, "'%s' contains a NUL character", shown);
    if (type == T_PATH && btrm_yaml_is_null(n))
        len = 0;
    if (type == T_PATH && k->type == T_PATH_LIST && !len)
        return fail_at(src, mark, k->name, index, "expected a path, got an empty value");
    switch (type) {
    case T_NAME:
    case T_PATH:
        if (len >= dst_size)
            return fail_at(src, mark, k->name, index, "too long (%zu bytes, at most %zu)", len,
                           dst_size - 1);
        if (type == T_NAME && (!len || btrm_yaml_is_null(n) || memchr(text, '/', len) ||
                               !strcmp(text, ".") || !strcmp(text, "..")))
            return fail_at(src, mark, k->name, index,
                           "expected a non-empty name without '/', got '%s'", shown);
        memset(dst, 0, dst_size);
        memcpy(dst, text, len);
        return 0;
    case T_BOOL: {
        static const char *const yes[] = { "true", "yes", "on" };
        static const char *const no[] = { "false", "no", "off" };
        for (int i = 0; i < 3; i++) {
            if (!strcasecmp(text, yes[i]) || !strcasecmp(text, no[i])) {
                *(bool *)dst = !strcasecmp(text, yes[i]);
                return 0;
            }
        }
        return fail_at(src, mark, k->name, index, "expected true or false, got '%s'", shown);
    }
    case T_ENUM: {
        char list[256] = "", near[64] = "";
        size_t best = SIZE_MAX;
        for (int i = 0; k->names[i]; i++) {
            if (!strcmp(text, k->names[i])) {
                *(int *)dst = i;
                return 0;
            }
            size_t used = strlen(list), d = edit_distance(text, len, k->names[i],
                                                           strlen(k->names[i]));
            snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", k->names[i]);
            if (len <= SUGGEST_MAX && d < best && d <= suggest_limit(len)) {
                best = d;
                snprintf(near, sizeof near, " (did you mean '%s'?)", k->names[i]);
            }
        }
        return fail_at(src, mark, k->name, index, "expected one of %s; got '%s'%s", list, shown,
                       near);
    }
    case T_INT:
    case T_I64: {
        int64_t v;
        if (k->special_word && !strcmp(text, k->special_word)) {
            v = k->special_value;
        } else {
            int bad = parse_int64(text, &v);
            if (bad == -1)
                return fail_at(src, mark, k->name, index, "expected an integer, got '%s'", shown);
            if (bad || (type == T_INT && (v < INT_MIN || v > INT_MAX)))
                return fail_at(src, mark, k->name, index, "%s does not fit in a %d-bit integer",
                               shown, type == T_INT ? (int)sizeof(int) * 8 : 64);
            if (!in_range(k, (double)v, !k->special_word))
                return fail_at(src, mark, k->name, index, "%s is out of range (must be %s)",
                               shown, range_text(k, range, sizeof range));
        }
        if (type == T_INT)
            *(int *)dst = (int)v;
        else
            *(int64_t *)dst = v;
        return 0;
    }
    case T_U64: {
        if (!len || strspn(text, "0123456789") != len)
            return fail_at(src, mark, k->name, index, "expected a non-negative integer, got '%s'",
                           shown);
        errno = 0;
        unsigned long long v = strtoull(text, NULL, 10);
        if (errno)
            return fail_at(src, mark, k->name, index, "%s does not fit in a 64-bit integer",
                           shown);
        *(uint64_t *)dst = v;
        return 0;
    }
    case T_DOUBLE: {
        /* Decimal numbers only: strtod alone would take "inf", "nan", hex. */
        char *end = NULL;
        if (!len || strspn(text, "0123456789.eE+-") != len)
            return fail_at(src, mark, k->name, index, "expected a number, got '%s'", shown);
        errno = 0;
        double v = strtod(text, &end);
        if (*end || end == text)
            return fail_at(src, mark, k->name, index, "expected a number, got '%s'", shown);
        if (!isfinite(v))
            return fail_at(src, mark, k->name, index, "%s is too large", shown);
        if (!in_range(k, v, 1))
            return fail_at(src, mark, k->name, index, "%s is out of range (must be %s)", shown,
                           range_text(k, range, sizeof range));
        *(double *)dst = v;
        return 0;
    }
    default:
        return btrm_error_set(BTRM_ECONFIG, "%s: bad key type", k->name);
    }
}

/* Parses node into a zeroed copy of k's field and stores it only when the
 * whole value is valid, so a failed --set leaves the config unchanged. */
static int apply_node(const source *src, const key_def *k, yaml_document_t *doc,
                      yaml_node_t *n, btrm_config *cfg)
{
    unsigned char *tmp = NULL;
    int count = 0, rc = BTRM_CALLOC(tmp, k->size);
    if (rc)
        return rc;
    if (!is_list(k->type)) {
        rc = parse_elem(src, k, k->type, -1, n, tmp, k->size);
    } else if (n && n->type == YAML_SEQUENCE_NODE) {
        yaml_node_item_t *items = n->data.sequence.items.start;
        count = (int)(n->data.sequence.items.top - items);
        if (count > k->max_count) {
            rc = fail_at(src, n->start_mark, k->name, -1, "too many entries (%d, at most %d)",
                         count, k->max_count);
            goto fail;
        }
        for (int i = 0; i < count && !rc; i++)
            rc = parse_elem(src, k, elem_type(k->type), i, yaml_document_get_node(doc, items[i]),
                            tmp + (size_t)i * elem_size(k), elem_size(k));
    } else if (n && n->type == YAML_MAPPING_NODE) {
        rc = fail_at(src, n->start_mark, k->name, -1, "expected %s, got a mapping",
                     expected(k->type));
    } else if (!btrm_yaml_is_null(n) && k->min_count <= 1) { /* one value: a one-entry list */
        count = 1;
        rc = parse_elem(src, k, elem_type(k->type), -1, n, tmp, elem_size(k));
    } else if (!btrm_yaml_is_null(n)) {
        char shown[EXCERPT_MAX + 8];
        rc = fail_at(src, n->start_mark, k->name, -1, "expected %s, got '%s'", expected(k->type),
                     excerpt(shown, sizeof shown, (const char *)n->data.scalar.value,
                             n->data.scalar.length));
    }
    if (!rc && is_list(k->type) && count < k->min_count)
        rc = fail_at(src, n ? n->start_mark : (yaml_mark_t){ 0, 0, 0 }, k->name, -1,
                     "expected %d entries, got %d", k->min_count, count);
    if (rc)
        goto fail;
    memcpy((char *)cfg + k->offset, tmp, k->size);
    if (k->counted)
        *(int *)((char *)cfg + k->count_offset) = count;
fail:
    free(tmp);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Parsing YAML text */

static int parse_yaml(const source *src, yaml_document_t *doc, int *have_doc)
{
    btrm_yaml_src y = yaml_src(src);
    return btrm_yaml_load(&y, doc, have_doc);
}

static void set_origin(load_ctx *ctx, int idx, const source *src, yaml_mark_t mark)
{
    if (!ctx)
        return;
    ctx->origins[idx] = src->file ? (origin){ src->file, mark.line + 1, mark.column + 1 }
                                  : (origin){ src->assignment, 0, 0 };
}

static int unknown_key(const source *src, yaml_mark_t mark, const char *name)
{
    char shown[EXCERPT_MAX + 8], near[SUGGEST_MAX + 1];
    excerpt(shown, sizeof shown, name, strlen(name));
    if (!strcmp(name, "base"))
        return fail_at(src, mark, NULL, -1, "'base' is allowed only at the top of a config file");
    suggest_key(name, near, sizeof near);
    if (near[0])
        return fail_at(src, mark, NULL, -1, "unknown key '%s'; did you mean '%s'?", shown, near);
    return fail_at(src, mark, NULL, -1, "unknown key '%s' (the keys are listed in docs/config.md)",
                   shown);
}

static char *join_key(const char *prefix, const char *key, size_t key_len)
{
    size_t np = prefix ? strlen(prefix) + 1 : 0;
    char *full = malloc(np + key_len + 1);
    if (!full)
        return NULL;
    if (prefix) {
        memcpy(full, prefix, np - 1);
        full[np - 1] = '.';
    }
    memcpy(full + np, key, key_len);
    full[np + key_len] = '\0';
    return full;
}

/* Applies the keys of mapping map, whose keys sit under prefix (NULL at the
 * top). `base` at the top is handled by load_file. */
static int walk_mapping(load_ctx *ctx, btrm_config *cfg, const source *src, yaml_document_t *doc,
                        yaml_node_t *map, const char *prefix)
{
    yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    int n_pairs = (int)(map->data.mapping.pairs.top - pairs);
    char shown[EXCERPT_MAX + 8];
    for (int i = 0; i < n_pairs; i++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pairs[i].key);
        yaml_node_t *vn = yaml_document_get_node(doc, pairs[i].value);
        if (kn->type != YAML_SCALAR_NODE)
            return fail_at(src, kn->start_mark, NULL, -1, "a key must be a name, got %s",
                           btrm_yaml_node_kind(kn));
        const char *key = (const char *)kn->data.scalar.value;
        size_t key_len = kn->data.scalar.length;
        if (!prefix && !strcmp(key, "base") && src->file)
            continue;
        excerpt(shown, sizeof shown, key, key_len);
        if (!key_len || memchr(key, '\0', key_len) || memchr(key, '.', key_len))
            return fail_at(src, kn->start_mark, NULL, -1, "invalid key '%s': write nested "
                           "mappings (optim: {lr: 0.1}), not dotted or empty keys", shown);
        for (int j = 0; j < i; j++) {
            yaml_node_t *prev = yaml_document_get_node(doc, pairs[j].key);
            if (prev->data.scalar.length == key_len &&
                !memcmp(prev->data.scalar.value, key, key_len))
                return fail_at(src, kn->start_mark, NULL, -1,
                               "duplicate key '%s%s%s' (first given at line %zu, column %zu)",
                               prefix ? prefix : "", prefix ? "." : "", shown,
                               prev->start_mark.line + 1, prev->start_mark.column + 1);
        }
        char *full = join_key(prefix, key, key_len);
        if (!full)
            return btrm_error_set(BTRM_ENOMEM, "out of memory reading the config");
        int rc = 0, idx = find_key(full);
        if (idx >= 0) {
            rc = apply_node(src, &keys[idx], doc, vn, cfg);
            if (!rc)
                set_origin(ctx, idx, src, vn->start_mark);
        } else if (is_section(full)) {
            if (vn->type == YAML_MAPPING_NODE)
                rc = walk_mapping(ctx, cfg, src, doc, vn, full);
            else if (!btrm_yaml_is_null(vn))
                rc = fail_at(src, vn->start_mark, NULL, -1, "'%s' is a section: expected a "
                             "mapping of its keys, got %s", full,
                             btrm_yaml_node_kind(vn));
        } else {
            rc = unknown_key(src, kn->start_mark, full);
        }
        free(full);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Files and base: chains */

static int read_file(const char *path, unsigned char **text, size_t *len, struct stat *st_out)
{
    return btrm_yaml_read_file(path, "config file", text, len, st_out);
}

/* base: paths are relative to the directory of the file that names them. */
static char *resolve_base(const char *including, const char *base)
{
    const char *slash = strrchr(including, '/');
    size_t dir = base[0] == '/' || !slash ? 0 : (size_t)(slash - including) + 1;
    size_t n = strlen(base);
    char *path = malloc(dir + n + 1);
    if (path) {
        memcpy(path, including, dir);
        memcpy(path + dir, base, n + 1);
    }
    return path;
}

/* Loads the file path (owned by ctx from here on): its base first, then its
 * own keys. inc/inc_mark: the `base:` that named it, NULL for the top file. */
static int load_file(load_ctx *ctx, char *path, const source *inc, yaml_mark_t inc_mark)
{
    source src = { .file = path };
    unsigned char *text = NULL;
    yaml_document_t doc;
    struct stat st = { 0 };
    int have_doc = 0, me = ctx->n_files++;
    ctx->shown[me] = path;
    int rc = read_file(path, &text, &src.len, &st);
    if (rc) {
        if (inc)
            btrm_error_wrap(rc, "%s:%zu:%zu: base", inc->file, inc_mark.line + 1,
                            inc_mark.column + 1);
        goto fail;
    }
    src.text = text;
    ctx->dev[me] = st.st_dev;
    ctx->ino[me] = st.st_ino;
    for (int i = 0; i < me; i++) {
        if (ctx->dev[i] != st.st_dev || ctx->ino[i] != st.st_ino)
            continue;
        char chain[BTRM_ERROR_MAX] = "";
        for (int j = 0; j <= me; j++) {
            size_t used = strlen(chain);
            snprintf(chain + used, sizeof chain - used, "%s%s", j ? " -> " : "", ctx->shown[j]);
        }
        rc = fail_at(inc, inc_mark, NULL, -1, "base cycle: %s", chain);
        goto fail;
    }
    rc = parse_yaml(&src, &doc, &have_doc);
    if (rc)
        goto fail;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (btrm_yaml_is_null(root)) {
        rc = btrm_error_set(BTRM_ECONFIG, "%s: empty config", path);
        goto fail;
    }
    if (root->type != YAML_MAPPING_NODE) {
        rc = fail_at(&src, root->start_mark, NULL, -1, "the top level must be a mapping of "
                     "sections (run:, data:, model:, ...), got %s", btrm_yaml_node_kind(root));
        goto fail;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
        if (kn->type != YAML_SCALAR_NODE || strcmp((const char *)kn->data.scalar.value, "base"))
            continue;
        for (yaml_node_pair_t *q = p + 1; q < root->data.mapping.pairs.top; q++) {
            yaml_node_t *again = yaml_document_get_node(&doc, q->key);
            if (again->type == YAML_SCALAR_NODE &&
                !strcmp((const char *)again->data.scalar.value, "base")) {
                rc = fail_at(&src, again->start_mark, NULL, -1, "duplicate key 'base'");
                goto fail;
            }
        }
        if (vn->type != YAML_SCALAR_NODE || btrm_yaml_is_null(vn) ||
            strlen((const char *)vn->data.scalar.value) != vn->data.scalar.length) {
            rc = fail_at(&src, vn->start_mark, "base", -1, "expected the path of a config file");
            goto fail;
        }
        if (ctx->n_files == MAX_CHAIN) {
            rc = fail_at(&src, vn->start_mark, "base", -1, "more than %d files in the base chain",
                         MAX_CHAIN);
            goto fail;
        }
        char *base = resolve_base(path, (const char *)vn->data.scalar.value);
        rc = base ? load_file(ctx, base, &src, vn->start_mark)
                  : btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", path);
        if (rc)
            goto fail;
        break;
    }
    rc = walk_mapping(ctx, ctx->cfg, &src, &doc, root, NULL);
fail:
    if (have_doc)
        yaml_document_delete(&doc);
    free(text);
    return rc;
}

/* One "a.b.c=value" override; ctx may be NULL (no origins recorded). */
static int apply_assignment(load_ctx *ctx, btrm_config *cfg, const char *assignment)
{
    source src = { .assignment = assignment };
    yaml_document_t doc;
    int have_doc = 0, rc = 0;
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return btrm_error_set(BTRM_ECONFIG, "--set '%s': expected KEY=VALUE, e.g. "
                              "--set optim.lr=3e-4", assignment);
    char *key = strndup(assignment, (size_t)(eq - assignment));
    if (!key)
        return btrm_error_set(BTRM_ENOMEM, "out of memory applying --set");
    src.set_key = key;
    src.text = (const unsigned char *)eq + 1;
    src.len = strlen(eq + 1);
    int idx = find_key(key);
    if (idx < 0 && !is_section(key)) {
        rc = unknown_key(&src, (yaml_mark_t){ 0, 0, 0 }, key);
        goto fail;
    }
    rc = parse_yaml(&src, &doc, &have_doc);
    if (rc)
        goto fail;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (idx >= 0) {
        rc = apply_node(&src, &keys[idx], &doc, root, cfg);
        if (!rc)
            set_origin(ctx, idx, &src, (yaml_mark_t){ 0, 0, 0 });
    } else if (root && root->type == YAML_MAPPING_NODE) {
        rc = walk_mapping(ctx, cfg, &src, &doc, root, key);
    } else {
        rc = fail_at(&src, (yaml_mark_t){ 0, 0, 0 }, NULL, -1, "'%s' is a section: expected a "
                     "mapping of its keys, e.g. %s={key: value}", key, key);
    }
fail:
    if (have_doc)
        yaml_document_delete(&doc);
    free(key);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Checks on a whole config */

static int fail_origin(const origin *origins, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_origin(const origin *origins, const char *key, const char *fmt, ...)
{
    char msg[BTRM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const origin *o = origins ? &origins[find_key(key)] : NULL;
    if (o && o->where && o->line)
        return btrm_error_set(BTRM_ECONFIG, "%s:%zu:%zu: %s: %s", o->where, o->line, o->column,
                              key, msg);
    if (o && o->where)
        return btrm_error_set(BTRM_ECONFIG, "--set '%s': %s: %s", o->where, key, msg);
    return btrm_error_set(BTRM_ECONFIG, "%s: %s", key, msg);
}

/* Constraints between keys (origins may be NULL). */
static int check_keys(const btrm_config *cfg, const origin *origins)
{
    if (cfg->model.head == BTRM_HEAD_MLP && cfg->model.n_hidden < 1)
        return fail_origin(origins, "model.head", "'mlp' needs model.hidden (hidden layer "
                           "sizes, e.g. [256])");
    if (cfg->optim.type == BTRM_OPTIM_NEWTON && cfg->model.head != BTRM_HEAD_LINEAR)
        return fail_origin(origins, "optim.type", "'newton' needs model.head 'linear' (the "
                           "objective is convex only for a linear head)");
    for (int i = 0; i < cfg->model.finetune.n_targets; i++) {
        const char *t = cfg->model.finetune.targets[i];
        if (btrm_llama_train_proj_parse(t) < 0)
            return fail_origin(origins, "model.finetune.targets", "'%s' is not a projection "
                               "(known: q, k, v, o, gate, up, down)", t);
        for (int j = 0; j < i; j++)
            if (!strcmp(t, cfg->model.finetune.targets[j]))
                return fail_origin(origins, "model.finetune.targets", "'%s' is listed twice", t);
    }
    if (cfg->model.finetune.type != BTRM_FT_NONE && !cfg->model.backbone[0])
        return fail_origin(origins, "model.finetune.type", "'%s' trains a backbone: set "
                           "model.backbone (gguf:PATH or llama2c:PATH)",
                           btrm_config_enum_name("model.finetune.type",
                                                 cfg->model.finetune.type));
    if (cfg->model.finetune.type == BTRM_FT_LORA && cfg->model.finetune.n_targets < 1)
        return fail_origin(origins, "model.finetune.targets", "LoRA needs at least one target");
    if (cfg->model.finetune.type != BTRM_FT_NONE && cfg->optim.type == BTRM_OPTIM_NEWTON)
        return fail_origin(origins, "optim.type", "'newton' trains a linear head on fixed "
                           "representations; to fine-tune the backbone use adamw or sgd");
    return 0;
}

/* Re-checks one stored value against the table (for configs built in code). */
static int check_stored(const btrm_config *cfg, const key_def *k)
{
    const char *field = (const char *)cfg + k->offset;
    int count = !is_list(k->type) ? 1
                : k->counted      ? *(const int *)((const char *)cfg + k->count_offset)
                                  : k->max_count;
    char range[RANGE_MAX];
    if (is_list(k->type) && (count < k->min_count || count > k->max_count))
        return btrm_error_set(BTRM_ECONFIG, "%s: %d entries (must be %d to %d)", k->name, count,
                              k->min_count, k->max_count);
    for (int i = 0; i < count; i++) {
        const char *p = field + (size_t)i * elem_size(k);
        double v = 0;
        switch (elem_type(k->type)) {
        case T_NAME:
        case T_PATH:
            if (!memchr(p, '\0', elem_size(k)))
                return btrm_error_set(BTRM_ECONFIG, "%s: not NUL-terminated", k->name);
            if (elem_type(k->type) == T_NAME && (!p[0] || strchr(p, '/')))
                return btrm_error_set(BTRM_ECONFIG, "%s: must be a non-empty name without '/'",
                                      k->name);
            continue;
        case T_ENUM: {
            int n_names = 0, e = *(const int *)p;
            while (k->names[n_names])
                n_names++;
            if (e < 0 || e >= n_names)
                return btrm_error_set(BTRM_ECONFIG, "%s: invalid value %d", k->name, e);
            continue;
        }
        case T_INT: v = *(const int *)p; break;
        case T_I64: v = (double)*(const int64_t *)p; break;
        case T_DOUBLE: v = *(const double *)p; break;
        default: continue;
        }
        if (!isfinite(v) || !in_range(k, v, 1))
            return btrm_error_set(BTRM_ECONFIG, "%s: %.17g is out of range (must be %s)", k->name,
                                  v, range_text(k, range, sizeof range));
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Public API */

/* The table's defaults, parsed once (one small YAML document per key) and
 * copied afterwards: a sweep or a report loads hundreds of configs. */
static void parse_defaults(btrm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < N_KEYS; i++) {
        source src = { .assignment = keys[i].def, .set_key = keys[i].name,
                       .text = (const unsigned char *)keys[i].def, .len = strlen(keys[i].def) };
        yaml_document_t doc;
        int have_doc = 0, rc = parse_yaml(&src, &doc, &have_doc);
        if (!rc)
            rc = apply_node(&src, &keys[i], &doc, yaml_document_get_root_node(&doc), cfg);
        if (have_doc)
            yaml_document_delete(&doc);
        if (rc) { /* a bad table row or no memory at start-up: nothing sensible to return */
            fprintf(stderr, "btrm: default of %s: %s\n", keys[i].name, btrm_error_msg());
            abort();
        }
    }
}

void btrm_config_defaults(btrm_config *cfg)
{
    static btrm_config defaults;
    static int parsed;
    if (!parsed) {
        parse_defaults(&defaults);
        parsed = 1;
    }
    memcpy(cfg, &defaults, sizeof *cfg); /* padding included: configs compare with memcmp */
}

int btrm_config_load(btrm_config *cfg, const char *path, const char *const *sets, int n_sets)
{
    load_ctx *ctx = NULL;
    int rc = BTRM_CALLOC(ctx, 1);
    if (rc)
        return rc;
    ctx->cfg = cfg;
    btrm_config_defaults(cfg);
    if (path) {
        char *top = strdup(path);
        rc = top ? load_file(ctx, top, NULL, (yaml_mark_t){ 0, 0, 0 })
                 : btrm_error_set(BTRM_ENOMEM, "out of memory reading '%s'", path);
    }
    for (int i = 0; i < n_sets && !rc; i++)
        rc = apply_assignment(ctx, cfg, sets[i]);
    if (!rc)
        rc = check_keys(cfg, ctx->origins);
    for (int i = 0; i < ctx->n_files; i++)
        free(ctx->shown[i]);
    free(ctx);
    return rc;
}

int btrm_config_set(btrm_config *cfg, const char *assignment)
{
    /* on a copy: a mapping value ("loss={type: normbt, bad: 1}") may fail
     * after some of its keys were applied, and cfg must stay unchanged */
    btrm_config *tmp = NULL;
    int rc = BTRM_MALLOC(tmp, 1);
    if (rc)
        return rc;
    memcpy(tmp, cfg, sizeof *tmp);
    rc = apply_assignment(NULL, tmp, assignment);
    if (!rc)
        memcpy(cfg, tmp, sizeof *cfg);
    free(tmp);
    return rc;
}

int btrm_config_validate(const btrm_config *cfg)
{
    for (int i = 0; i < N_KEYS; i++) {
        int rc = check_stored(cfg, &keys[i]);
        if (rc)
            return rc;
    }
    int rc = check_keys(cfg, NULL);
    if (rc)
        return rc;
    if (!cfg->data.train[0])
        return btrm_error_set(BTRM_ECONFIG, "missing required key 'data.train' (the training "
                              "pair store): give it in the config file or with "
                              "--set data.train=PATH");
    return 0;
}

const char *btrm_config_enum_name(const char *key, int value)
{
    int idx = find_key(key);
    if (idx < 0 || keys[idx].type != T_ENUM || value < 0)
        return "unknown";
    for (int i = 0; keys[idx].names[i]; i++)
        if (i == value)
            return keys[idx].names[i];
    return "unknown";
}

int btrm_config_out_dir(const btrm_config *cfg, char *buf, size_t size)
{
    int n = cfg->run.out_dir[0] ? snprintf(buf, size, "%s", cfg->run.out_dir)
                                : snprintf(buf, size, "runs/%s", cfg->run.name);
    if (n < 0 || (size_t)n >= size)
        return btrm_error_set(BTRM_ECONFIG, "run.out_dir: the output directory is longer than "
                              "%zu bytes", size - 1);
    return 0;
}

int btrm_config_checkpoint_dir(const btrm_config *cfg, char *buf, size_t size)
{
    char out_dir[BTRM_PATH_MAX];
    const char *dir = cfg->checkpoint.dir[0] ? cfg->checkpoint.dir : "checkpoints";
    int rc = btrm_config_out_dir(cfg, out_dir, sizeof out_dir);
    if (!rc && btrm_path_join(buf, size, out_dir, dir) != 0)
        rc = btrm_error_set(BTRM_ECONFIG, "checkpoint.dir: the checkpoint directory is "
                            "longer than %zu bytes", size - 1);
    return rc;
}

btrm_loss_params btrm_config_loss_params(const btrm_config *cfg)
{
    btrm_config *defaults = NULL;
    if (!cfg) {
        if (BTRM_MALLOC(defaults, 1) != 0) { /* no memory at start-up */
            fprintf(stderr, "btrm: %s\n", btrm_error_msg());
            abort();
        }
        btrm_config_defaults(defaults);
        cfg = defaults;
    }
    btrm_loss_params lp = { .type = cfg->loss.type, .eps = cfg->loss.normbt_eps,
                            .max_weight = cfg->loss.normbt_max_weight,
                            .center = cfg->loss.center_rewards };
    free(defaults);
    return lp;
}

/* ---------------------------------------------------------------------------
 * Emitting */

/* The shortest %g text that reads back as exactly v ("10", not "1e+01"). */
static void format_double(double v, char *buf, size_t size)
{
    char text[40];
    size_t best = SIZE_MAX;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) == v && strlen(text) < best) {
            best = strlen(text);
            snprintf(buf, size, "%s", text);
        }
    }
}

/* Scalar text of entry i of k (plain style unless *quoted). */
static const char *format_elem(const btrm_config *cfg, const key_def *k, int i, char *buf,
                               size_t size, int *quoted)
{
    const char *p = (const char *)cfg + k->offset + (size_t)i * elem_size(k);
    *quoted = 0;
    switch (elem_type(k->type)) {
    case T_NAME:
    case T_PATH: *quoted = 1; return p;
    case T_INT: snprintf(buf, size, "%d", *(const int *)p); break;
    case T_I64: {
        int64_t v = *(const int64_t *)p;
        if (k->special_word && k->has_special && v == k->special_value)
            return k->special_word;
        snprintf(buf, size, "%" PRId64, v);
        break;
    }
    case T_U64: snprintf(buf, size, "%" PRIu64, *(const uint64_t *)p); break;
    case T_DOUBLE: format_double(*(const double *)p, buf, size); break;
    case T_BOOL: return *(const bool *)p ? "true" : "false";
    case T_ENUM: return btrm_config_enum_name(k->name, *(const int *)p);
    default: return "";
    }
    return buf;
}

static int emit_event(yaml_emitter_t *em, yaml_event_t *ev, int made)
{
    if (!made)
        return btrm_error_set(BTRM_ECONFIG, "cannot emit the config: a value is not valid UTF-8");
    if (!yaml_emitter_emit(em, ev))
        return btrm_error_set(em->error == YAML_MEMORY_ERROR ? BTRM_ENOMEM : BTRM_EIO,
                              "writing the config: %s%s%s", em->problem ? em->problem : "error",
                              em->error == YAML_WRITER_ERROR ? ": " : "",
                              em->error == YAML_WRITER_ERROR ? strerror(errno) : "");
    return 0;
}

static int emit_scalar(yaml_emitter_t *em, const char *text, size_t len, int quoted)
{
    yaml_event_t ev;
    return emit_event(em, &ev, yaml_scalar_event_initialize(
                                   &ev, NULL, NULL, (yaml_char_t *)text, (int)len, !quoted, quoted,
                                   quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                          : YAML_PLAIN_SCALAR_STYLE));
}

static int emit_value(yaml_emitter_t *em, const btrm_config *cfg, const key_def *k)
{
    char buf[64];
    int quoted, rc = 0, count = 1;
    yaml_event_t ev;
    if (is_list(k->type)) {
        count = k->counted ? *(const int *)((const char *)cfg + k->count_offset) : k->max_count;
        if (count < 0 || count > k->max_count)
            return btrm_error_set(BTRM_ECONFIG, "%s: %d entries (at most %d)", k->name, count,
                                  k->max_count);
        rc = emit_event(em, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                                      YAML_FLOW_SEQUENCE_STYLE));
    }
    for (int i = 0; i < count && !rc; i++) {
        const char *text = format_elem(cfg, k, i, buf, sizeof buf, &quoted);
        rc = emit_scalar(em, text, quoted ? strnlen(text, elem_size(k)) : strlen(text), quoted);
    }
    if (!rc && is_list(k->type))
        rc = emit_event(em, &ev, yaml_sequence_end_event_initialize(&ev));
    return rc;
}

int btrm_config_emit(const btrm_config *cfg, FILE *out)
{
    yaml_emitter_t em;
    yaml_event_t ev;
    const char *open[8]; /* open section mappings: pointers into the previous key's name */
    size_t open_len[8];
    int n_open = 0, rc;
    if (!yaml_emitter_initialize(&em))
        return btrm_error_set(BTRM_ENOMEM, "out of memory starting the YAML emitter");
    yaml_emitter_set_output_file(&em, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    rc = emit_event(&em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    if (!rc)
        rc = emit_event(&em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    if (!rc)
        rc = emit_event(&em, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                                      YAML_BLOCK_MAPPING_STYLE));
    for (int i = 0; i < N_KEYS && !rc; i++) {
        /* Sections of this key: the components before its last dot. */
        const char *comp[8];
        size_t comp_len[8];
        int n_comp = 0, common = 0;
        for (const char *p = keys[i].name, *dot; (dot = strchr(p, '.')) && n_comp < 8;
             p = dot + 1) {
            comp[n_comp] = p;
            comp_len[n_comp++] = (size_t)(dot - p);
        }
        while (common < n_open && common < n_comp && open_len[common] == comp_len[common] &&
               !memcmp(open[common], comp[common], comp_len[common]))
            common++;
        for (; n_open > common && !rc; n_open--)
            rc = emit_event(&em, &ev, yaml_mapping_end_event_initialize(&ev));
        for (; n_open < n_comp && !rc; n_open++) {
            open[n_open] = comp[n_open];
            open_len[n_open] = comp_len[n_open];
            rc = emit_scalar(&em, comp[n_open], comp_len[n_open], 0);
            if (!rc)
                rc = emit_event(&em, &ev, yaml_mapping_start_event_initialize(
                                              &ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
        }
        const char *leaf = strrchr(keys[i].name, '.') + 1;
        if (!rc)
            rc = emit_scalar(&em, leaf, strlen(leaf), 0);
        if (!rc && (rc = emit_value(&em, cfg, &keys[i])) != 0)
            btrm_error_wrap(rc, "%s", keys[i].name);
    }
    for (; n_open >= 0 && !rc; n_open--) /* the sections, then the top mapping */
        rc = emit_event(&em, &ev, yaml_mapping_end_event_initialize(&ev));
    if (!rc)
        rc = emit_event(&em, &ev, yaml_document_end_event_initialize(&ev, 1));
    if (!rc)
        rc = emit_event(&em, &ev, yaml_stream_end_event_initialize(&ev));
    if (!rc && !yaml_emitter_flush(&em))
        rc = btrm_error_set(BTRM_EIO, "writing the config: %s", strerror(errno));
    yaml_emitter_delete(&em);
    return rc;
}

int btrm_config_emit_string(const btrm_config *cfg, char **text)
{
    char *buf = NULL;
    size_t size = 0;
    *text = NULL;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return btrm_error_set(BTRM_ENOMEM, "out of memory emitting the config");
    int rc = btrm_config_emit(cfg, f);
    if (fclose(f) && !rc)
        rc = btrm_error_set(BTRM_ENOMEM, "out of memory emitting the config");
    if (rc)
        free(buf);
    else
        *text = buf;
    return rc;
}

/* ---------------------------------------------------------------------------
 * The markdown key reference (docs/config.md) */

static void md_cell(FILE *out, const char *text)
{
    for (; *text; text++) {
        if (*text == '|')
            fputc('\\', out);
        fputc(*text, out);
    }
}

void btrm_config_doc_markdown(FILE *out)
{
    static const char *const type_names[] = {
        [T_NAME] = "string", [T_PATH] = "path", [T_INT] = "integer", [T_I64] = "integer",
        [T_U64] = "integer", [T_DOUBLE] = "number", [T_BOOL] = "bool", [T_ENUM] = "enum",
        [T_INT_LIST] = "list of integers", [T_DOUBLE_LIST] = "list of numbers",
        [T_PATH_LIST] = "list of paths", [T_NAME_LIST] = "list of names",
    };
    size_t section_len = 0;
    const char *section = NULL;
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &keys[i];
        size_t len = (size_t)(strchr(k->name, '.') - k->name);
        if (!section || len != section_len || strncmp(section, k->name, len)) {
            section = k->name;
            section_len = len;
            fprintf(out, "%s### `%.*s`\n\n| Key | Type | Default | Allowed | Description |\n"
                         "|---|---|---|---|---|\n", i ? "\n" : "", (int)len, k->name);
        }
        char allowed[256], range[RANGE_MAX];
        switch (k->type) {
        case T_NAME:
            snprintf(allowed, sizeof allowed, "non-empty, no `/`, at most %zu bytes", k->size - 1);
            break;
        case T_PATH: snprintf(allowed, sizeof allowed, "at most %zu bytes", k->size - 1); break;
        case T_U64: snprintf(allowed, sizeof allowed, "0 to 2^64-1"); break;
        case T_BOOL: snprintf(allowed, sizeof allowed, "`true`, `false`"); break;
        case T_ENUM:
            allowed[0] = '\0';
            for (int j = 0; k->names[j]; j++) {
                size_t used = strlen(allowed);
                snprintf(allowed + used, sizeof allowed - used, "%s`%s`", j ? ", " : "",
                         k->names[j]);
            }
            break;
        case T_INT_LIST:
        case T_DOUBLE_LIST:
        case T_PATH_LIST:
        case T_NAME_LIST:
            if (k->min_count == k->max_count)
                snprintf(allowed, sizeof allowed, "%d entries", k->max_count);
            else
                snprintf(allowed, sizeof allowed, "at most %d entries", k->max_count);
            if (k->type == T_PATH_LIST || k->type == T_NAME_LIST) {
                size_t used = strlen(allowed);
                snprintf(allowed + used, sizeof allowed - used, " of at most %zu bytes",
                         elem_size(k) - 1);
            } else if (k->bounds) {
                size_t used = strlen(allowed);
                snprintf(allowed + used, sizeof allowed - used, ", each %s",
                         range_text(k, range, sizeof range));
            }
            break;
        default: snprintf(allowed, sizeof allowed, "%s", range_text(k, range, sizeof range));
        }
        fprintf(out, "| `%s` | %s | `%s` | ", k->name, type_names[k->type], k->def);
        md_cell(out, allowed);
        fputs(" | ", out);
        md_cell(out, k->doc);
        fputs(" |\n", out);
    }
}
