/* prep.h: preference files (JSONL or JSON arrays, plain or gzip) into pair
 * stores with /texts, /pairs/... and no /features (docs/data-prep.md).
 * Serial, one process; no MPI. Uses jansson, zlib, xxHash, utf8proc, libyaml.
 *
 * A record becomes a prompt (a list of messages) and two responses (lists of
 * messages); each side is rendered with the template (prompt messages, then
 * response messages) into the text a reward model scores. Identical rendered
 * texts are stored once. Records that cannot be used are skipped and counted
 * by reason (btrm_prep_bad). */
#ifndef BTRM_PREP_H
#define BTRM_PREP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Record shapes (--format). */
enum btrm_prep_format {
    BTRM_PREP_AUTO = 0,     /* per record, from the JSON types of the fields */
    BTRM_PREP_HH = 1,       /* chosen/rejected transcripts, prompt = shared prefix */
    BTRM_PREP_PROMPT = 2,   /* prompt + chosen + rejected strings */
    BTRM_PREP_MESSAGES = 3, /* chosen/rejected message lists (+ optional prompt) */
};

/* Why a record was skipped (docs/data-prep.md lists them). */
enum btrm_prep_bad {
    BTRM_PREP_BAD_NOT_JSON = 0,       /* a line (array element) that is not JSON */
    BTRM_PREP_BAD_INVALID_UTF8,       /* bytes that are not UTF-8 */
    BTRM_PREP_BAD_WRONG_TYPE,         /* not an object, or a field of the wrong JSON type */
    BTRM_PREP_BAD_MISSING_FIELD,      /* no chosen / rejected (/ prompt with --format prompt) */
    BTRM_PREP_BAD_UNKNOWN_ROLE,       /* a message role the template has no entry for */
    BTRM_PREP_BAD_EMPTY_RESPONSE,     /* a response with no non-space character */
    BTRM_PREP_BAD_IDENTICAL,          /* chosen and rejected render to the same text */
    BTRM_PREP_BAD_TRUNCATED_GZIP,     /* a gzip stream that ends early or is corrupt */
    BTRM_PREP_N_BAD
};
const char *btrm_prep_bad_name(int reason);

/* The chat template: per role, the text before and after the message content.
 * The built-in one ("<|user|>\n{content}\n", ...) is documented in
 * docs/data-prep.md; a YAML file maps role names to strings containing
 * {content} once. */
#define BTRM_PREP_MAX_ROLES 16
typedef struct btrm_prep_template {
    int n_roles;
    char *role[BTRM_PREP_MAX_ROLES];
    char *before[BTRM_PREP_MAX_ROLES];
    char *after[BTRM_PREP_MAX_ROLES];
} btrm_prep_template;
int btrm_prep_template_default(btrm_prep_template *t);
/* FILE.yaml: a mapping role -> "...{content}..."; errors (BTRM_ECONFIG) give
 * FILE:LINE. */
int btrm_prep_template_load(btrm_prep_template *t, const char *path);
void btrm_prep_template_free(btrm_prep_template *t);
/* *out (malloc'ed) = the text prep stores for a record with a prompt string
 * and a response string: the prompt as one user turn, the response as one
 * assistant turn (what `btrm serve` renders for {"prompt", "response"}). */
int btrm_prep_template_render_pair(const btrm_prep_template *t, const char *prompt,
                                   const char *response, char **out);
/* The template as a JSON object {"role": "before{content}after", ...}; caller
 * owns it. Its compact form with sorted keys is what stores and model files
 * record (feature_record.h). */
json_t *btrm_prep_template_json(const btrm_prep_template *t);
/* The template back from that JSON text (what a model file records); where
 * names it in messages. BTRM_ECONFIG when it is not such an object. */
int btrm_prep_template_from_json(btrm_prep_template *t, const char *json_text,
                                 const char *where);

/* A category map (YAML mapping subset -> category). */
typedef struct btrm_prep_category_map {
    int n;
    char **subset, **category;
} btrm_prep_category_map;
int btrm_prep_category_map_load(btrm_prep_category_map *m, const char *path);
/* The category of subset, or NULL. */
const char *btrm_prep_category_map_get(const btrm_prep_category_map *m, const char *subset);
void btrm_prep_category_map_free(btrm_prep_category_map *m);

/* The HH prefix rule: the length of the prompt of two transcripts, i.e. the
 * end of the last "\n\nAssistant:" that lies inside their longest common
 * prefix; 0 when there is none. */
size_t btrm_prep_hh_prompt_len(const char *chosen, const char *rejected);

enum btrm_prep_split_by { BTRM_PREP_SPLIT_PROMPT = 0, BTRM_PREP_SPLIT_ID = 1 };

typedef struct btrm_prep_opts {
    int format;                     /* enum btrm_prep_format */
    const char *template_path;      /* NULL: the built-in template */
    const char *category_map_path;  /* NULL: categories from the records only */
    int strict;                     /* the first bad record fails (BTRM_EDATA) */
    double split;                   /* train fraction in (0, 1) when valid_path is set */
    int split_by;                   /* enum btrm_prep_split_by */
    const char *valid_path;         /* NULL: no split */
    int max_examples;               /* locations shown per bad-row reason (default 3) */
} btrm_prep_opts;

typedef struct btrm_prep btrm_prep; /* the pairs collected so far */

typedef struct btrm_prep_stats {
    int64_t records;                    /* records seen (blank lines excluded) */
    int64_t pairs;                      /* records kept */
    int64_t texts;                      /* distinct rendered texts */
    int64_t bad[BTRM_PREP_N_BAD];       /* skipped records by reason */
    int64_t bytes;                      /* uncompressed input bytes */
} btrm_prep_stats;

int btrm_prep_init(btrm_prep **prep, const btrm_prep_opts *opts);
/* Reads one input file (format detected from its bytes). 0 unless a hard
 * error (unreadable file, out of memory, a bad record with opts->strict). */
int btrm_prep_read_file(btrm_prep *prep, const char *path);
void btrm_prep_get_stats(const btrm_prep *prep, btrm_prep_stats *stats);
/* Up to opts->max_examples "FILE:LINE: detail" strings for reason; n set. */
const char *const *btrm_prep_examples(const btrm_prep *prep, int reason, int *n);
/* Writes the pair store(s): everything to out_path, or with a split the
 * train side to out_path and the validation side to opts->valid_path. Each
 * file holds only the texts its pairs use. BTRM_EDATA when a side is empty. */
int btrm_prep_write(btrm_prep *prep, const char *out_path, int64_t *n_train,
                    int64_t *n_valid);
/* 1 when the pair with this split key goes to the train side. */
int btrm_prep_split_train(uint64_t key, double split);
void btrm_prep_free(btrm_prep *prep);

/* Access for tests: the collected pairs (indices into texts). */
int64_t btrm_prep_n_pairs(const btrm_prep *prep);
int64_t btrm_prep_n_texts(const btrm_prep *prep);
const char *btrm_prep_text(const btrm_prep *prep, int64_t row);
void btrm_prep_pair(const btrm_prep *prep, int64_t i, int64_t *chosen, int64_t *rejected,
                    const char **id, const char **category, const char **subset,
                    uint64_t *split_key);

/* The whole command: reads inputs, prints the summary (btrm_log_info), writes
 * out_path (and opts->valid_path). 0, or BTRM_EDATA when no usable pair
 * remains, or the first error. */
int btrm_prep_run(const char *const *inputs, int n_inputs, const char *out_path,
                  const btrm_prep_opts *opts);

#endif
