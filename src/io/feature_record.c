/* feature_record.c: how features were made (feature_record.h), and its
 * attributes in HDF5 files (feature_record_h5.h). */
#include "feature_record_h5.h"

#include "error.h"
#include "h5util.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The fields, under the attribute names of a store's /features (what btrm
 * embed writes) and of a model's /features group. An int field is unknown
 * at its `unknown` value and then not written. */
typedef struct field {
    const char *name;
    int is_int;
    size_t offset, size;
    int unknown;
} field;
#define STR_FIELD(name, member) \
    { name, 0, offsetof(btrm_feature_record, member), \
      sizeof(((btrm_feature_record *)0)->member), 0 }
#define INT_FIELD(name, member, unknown) \
    { name, 1, offsetof(btrm_feature_record, member), sizeof(int), unknown }
static const field fields[] = {
    STR_FIELD("backbone", label),
    STR_FIELD("backbone_spec", spec),
    STR_FIELD("model_hash", hash),
    INT_FIELD("dim", dim, 0),
    STR_FIELD("pool", pool),
    INT_FIELD("bos", bos, -1),
    INT_FIELD("max_tokens", max_tokens, 0),
    STR_FIELD("kernel", kernel),
    STR_FIELD("precision", precision),
    STR_FIELD("chat_template", chat_template),
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* Field f of rec (the callers that write through it own rec). */
static char *str_of(const btrm_feature_record *rec, const field *f)
{
    return (char *)rec + f->offset;
}

static int *int_of(const btrm_feature_record *rec, const field *f)
{
    return (int *)((char *)rec + f->offset);
}

/* Whether rec knows field f. */
static int known(const btrm_feature_record *rec, const field *f)
{
    return f->is_int ? *int_of(rec, f) != f->unknown : str_of(rec, f)[0] != '\0';
}

void btrm_feature_record_clear(btrm_feature_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->bos = -1;
}

void btrm_feature_record_finish(btrm_feature_record *rec)
{
    const char *from = rec->spec[0] ? rec->spec : rec->label;
    size_t n = strcspn(from, ":");
    if (!rec->spec[0] && !strncmp(from, "hash-", 5))
        n = 4;
    snprintf(rec->backbone, sizeof rec->backbone, "%.*s", (int)n, from);
    rec->kernel[strcspn(rec->kernel, "-")] = '\0';
    rec->present = rec->backbone[0] != '\0';
}

int btrm_feature_record_runnable(const btrm_feature_record *rec)
{
    return rec->present && (!strcmp(rec->backbone, "hash") || !strcmp(rec->backbone, "gguf") ||
                            !strcmp(rec->backbone, "llama2c"));
}

const char *btrm_feature_record_spec(const btrm_feature_record *rec)
{
    if (!btrm_feature_record_runnable(rec))
        return NULL;
    if (rec->spec[0])
        return rec->spec;
    return !strcmp(rec->backbone, "hash") ? "hash" : NULL;
}

json_t *btrm_feature_record_to_json(const btrm_feature_record *rec)
{
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < N_FIELDS; i++) {
        const field *f = &fields[i];
        if (!known(rec, f))
            continue;
        json_t *v = f->is_int ? json_integer(*int_of(rec, f)) : json_string(str_of(rec, f));
        if (json_object_set_new(obj, f->name, v)) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

int btrm_feature_record_from_json(btrm_feature_record *rec, const json_t *obj,
                                  const char *where)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const field *f = &fields[i];
        json_t *v = json_object_get(obj, f->name);
        if (!v)
            continue;
        if (f->is_int && json_is_integer(v) && json_integer_value(v) >= -1 &&
            json_integer_value(v) <= 1 << 30) {
            *int_of(rec, f) = (int)json_integer_value(v);
        } else if (!f->is_int && json_is_string(v) && strlen(json_string_value(v)) < f->size) {
            memcpy(str_of(rec, f), json_string_value(v), strlen(json_string_value(v)) + 1);
        } else {
            return btrm_error_set(BTRM_EDATA, "%s: %s is not %s", where, f->name,
                                  f->is_int ? "an integer in [-1, 2^30]" : "a short string");
        }
    }
    btrm_feature_record_finish(rec);
    return 0;
}

int btrm_feature_record_write_h5(hid_t obj, const btrm_feature_record *rec)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < N_FIELDS; i++) {
        const field *f = &fields[i];
        if (known(rec, f))
            rc = f->is_int ? btrm_h5_write_attr_int(obj, f->name, *int_of(rec, f))
                           : btrm_h5_write_attr_string(obj, f->name, str_of(rec, f));
    }
    return rc;
}

int btrm_feature_record_read_h5(hid_t obj, btrm_feature_record *rec)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < N_FIELDS; i++) {
        const field *f = &fields[i];
        rc = btrm_h5_has_attr(obj, f->name);
        if (rc == 1)
            rc = f->is_int ? btrm_h5_read_attr_int(obj, f->name, int_of(rec, f))
                           : btrm_h5_read_attr_string(obj, f->name, str_of(rec, f), f->size);
    }
    if (!rc)
        btrm_feature_record_finish(rec);
    return rc;
}

void btrm_feature_record_describe(const btrm_feature_record *rec, char *out, size_t size)
{
    if (!rec->present) {
        snprintf(out, size, "(not recorded)");
        return;
    }
    size_t n = 0;
#define APPEND(...)                                                          \
    do {                                                                     \
        if (n < size) {                                                      \
            int k_ = snprintf(out + n, size - n, __VA_ARGS__);               \
            n = k_ < 0 ? size : n + (size_t)k_;                              \
        }                                                                    \
    } while (0)
    APPEND("%s (%s", rec->label[0] ? rec->label : rec->backbone, rec->backbone);
    if (rec->hash[0])
        APPEND(", XXH3-128 %s", rec->hash);
    if (rec->dim)
        APPEND(", %d features", rec->dim);
    if (rec->pool[0])
        APPEND(", pool %s", rec->pool);
    if (rec->bos >= 0)
        APPEND(", bos %d", rec->bos);
    if (rec->max_tokens)
        APPEND(", max_tokens %d", rec->max_tokens);
    if (rec->kernel[0])
        APPEND(", kernel %s", rec->kernel);
    if (rec->precision[0])
        APPEND(", precision %s", rec->precision);
    APPEND(")");
#undef APPEND
}

int btrm_feature_record_compare(const btrm_feature_record *a, const char *a_name,
                                const btrm_feature_record *b, const char *b_name,
                                int compare_template)
{
    if (!a->present || !b->present)
        return 0;
    char what[256] = "";
    if (strcmp(a->backbone, b->backbone))
        snprintf(what, sizeof what, "backbone %s vs %s", a->backbone, b->backbone);
    else if (a->dim && b->dim && a->dim != b->dim)
        snprintf(what, sizeof what, "%d vs %d features", a->dim, b->dim);
    else if (a->hash[0] && b->hash[0] && strcmp(a->hash, b->hash))
        snprintf(what, sizeof what, "model file XXH3-128 %s vs %s", a->hash, b->hash);
    else if (a->pool[0] && b->pool[0] && strcmp(a->pool, b->pool))
        snprintf(what, sizeof what, "pool %s vs %s", a->pool, b->pool);
    else if (a->bos >= 0 && b->bos >= 0 && a->bos != b->bos)
        snprintf(what, sizeof what, "bos %d vs %d", a->bos, b->bos);
    else if (a->max_tokens && b->max_tokens && a->max_tokens != b->max_tokens)
        snprintf(what, sizeof what, "max_tokens %d vs %d", a->max_tokens, b->max_tokens);
    else if (a->kernel[0] && b->kernel[0] && strcmp(a->kernel, b->kernel))
        snprintf(what, sizeof what, "kernel %s vs %s", a->kernel, b->kernel);
    else if (a->precision[0] && b->precision[0] && strcmp(a->precision, b->precision))
        snprintf(what, sizeof what, "precision %s vs %s", a->precision, b->precision);
    else if (compare_template && a->chat_template[0] && b->chat_template[0] &&
             strcmp(a->chat_template, b->chat_template))
        snprintf(what, sizeof what, "chat template %.100s vs %.100s", a->chat_template,
                 b->chat_template);
    if (!what[0])
        return 0;
    char da[1024], db[1024];
    btrm_feature_record_describe(a, da, sizeof da);
    btrm_feature_record_describe(b, db, sizeof db);
    return btrm_error_set(BTRM_EUSAGE, "features made differently: %s has %s; %s has %s (%s)",
                          a_name, da, b_name, db, what);
}
