/* modelfile.c: the model file, format "model-v3" (docs/format.md): a head's
 * tensors as float32 datasets /model/<tensor>/{weight,bias} with the head
 * kind, activation and loss as attributes, how its features were made as
 * the attributes of /features, and (model-v3) for a model trained on an LLM
 * backbone the backbone's reference and trained tensors under /backbone,
 * readable by h5py with nothing but these names. */
#include "modelfile_h5.h"

#include "error.h"
#include "feature_record_h5.h"
#include "h5raw.h"
#include "h5util.h"

#include <hdf5.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The format's names for the enums (part of the file format, hence here). */
static const char *const head_names[] = { [BTRM_HEAD_LINEAR] = "linear",
                                          [BTRM_HEAD_MLP] = "mlp" };
static const char *const activation_names[] = { [BTRM_ACT_GELU] = "gelu",
                                                [BTRM_ACT_RELU] = "relu",
                                                [BTRM_ACT_TANH] = "tanh" };
static const char *const loss_names[] = { [BTRM_LOSS_BT] = "bt", [BTRM_LOSS_NORMBT] = "normbt" };
static const char *const finetune_names[] = { [BTRM_FT_NONE] = "none", [BTRM_FT_LORA] = "lora",
                                              [BTRM_FT_TOP_K] = "top_k" };
static const char *const pool_names[] = { [BTRM_POOL_LAST] = "last", [BTRM_POOL_MEAN] = "mean" };
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int n, int value)
{
    return value >= 0 && value < n ? names[value] : NULL;
}

/* The value of attribute attr of /model among names (BTRM_EDATA otherwise). */
static int read_enum(hid_t model, const char *path, const char *attr,
                     const char *const *names, int n, int *value)
{
    char text[64];
    int rc = btrm_h5_read_attr_string(model, attr, text, sizeof text);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        if (!strcmp(text, names[i])) {
            *value = i;
            return 0;
        }
    char known[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 names[i]);
    return btrm_error_set(BTRM_EDATA, "%s: /model attribute %s is \"%s\" (expected one of "
                          "%s)", path, attr, text, known);
}

void btrm_model_tensor_name(char *out, size_t size, int layer, int n_layers)
{
    if (layer == n_layers - 1)
        snprintf(out, size, "out");
    else
        snprintf(out, size, "fc%d", layer);
}

btrm_model_meta btrm_model_meta_of(const btrm_loss_params *lp, double dist_ema)
{
    return (btrm_model_meta){ .loss = lp->type, .dist_ema = dist_ema, .normbt_eps = lp->eps,
                              .max_weight = lp->max_weight };
}

btrm_loss_params btrm_model_loss_params(const btrm_model_meta *meta)
{
    return (btrm_loss_params){ .type = meta->loss, .eps = meta->normbt_eps,
                               .max_weight = meta->max_weight };
}

/* ------------------------------------------------------------------------ */

static int write_tensor(hid_t group, const char *path, const char *name, int rank,
                        const hsize_t *dims, const float *data)
{
    return btrm_h5_write_dataset(group, path, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rank,
                                 dims, data);
}

int btrm_model_group_create(hid_t file, const char *path, const btrm_head *head,
                            const btrm_model_meta *meta, hid_t *model)
{
    int rc = 0;
    hid_t gcpl = -1;
    const char *head_name = name_of(head_names, COUNT(head_names), head->kind);
    const char *act_name = name_of(activation_names, COUNT(activation_names),
                                   head->activation);
    const char *loss_name = name_of(loss_names, COUNT(loss_names), meta->loss);
    *model = -1;
    if (!head_name || !loss_name || (!act_name && head->kind == BTRM_HEAD_MLP))
        return btrm_error_set(BTRM_EDATA, "%s: cannot write a model with head %d, "
                              "activation %d, loss %d", path, head->kind, head->activation,
                              meta->loss);
    if (!act_name)
        act_name = activation_names[BTRM_ACT_GELU]; /* a linear head has none: any is fine */
    BTRM_CHECK_H5(gcpl = btrm_h5_gcpl(), path);
    BTRM_CHECK_H5(*model = H5Gcreate2(file, "model", H5P_DEFAULT, gcpl, H5P_DEFAULT), path);
    rc = btrm_h5_write_attr_string(*model, "head", head_name);
    if (!rc)
        rc = btrm_h5_write_attr_string(*model, "activation", act_name);
    if (!rc)
        rc = btrm_h5_write_attr_string(*model, "loss", loss_name);
    if (!rc)
        rc = btrm_h5_write_attr_double(*model, "dist_ema", meta->dist_ema);
    if (!rc)
        rc = btrm_h5_write_attr_double(*model, "normbt_eps", meta->normbt_eps);
    if (!rc)
        rc = btrm_h5_write_attr_double(*model, "max_weight", meta->max_weight);
fail:
    if (gcpl >= 0)
        H5Pclose(gcpl);
    if (rc && *model >= 0) {
        H5Gclose(*model);
        *model = -1;
    }
    return rc;
}

int btrm_model_group_read_attrs(hid_t model, const char *path, int *kind, int *activation,
                                btrm_model_meta *meta)
{
    int loss = 0;
    int rc = read_enum(model, path, "head", head_names, COUNT(head_names), kind);
    if (!rc)
        rc = read_enum(model, path, "activation", activation_names, COUNT(activation_names),
                       activation);
    if (!rc)
        rc = read_enum(model, path, "loss", loss_names, COUNT(loss_names), &loss);
    if (!rc)
        rc = btrm_h5_read_attr_double(model, "dist_ema", &meta->dist_ema);
    if (!rc)
        rc = btrm_h5_read_attr_double(model, "normbt_eps", &meta->normbt_eps);
    if (!rc)
        rc = btrm_h5_read_attr_double(model, "max_weight", &meta->max_weight);
    if (rc)
        return rc;
    meta->loss = loss;
    if (!isfinite(meta->dist_ema) || meta->dist_ema < 0 || !isfinite(meta->normbt_eps) ||
        meta->normbt_eps < 0 || !isfinite(meta->max_weight) || meta->max_weight < 0)
        return btrm_error_set(BTRM_EDATA, "%s: /model attributes dist_ema = %g, normbt_eps = "
                              "%g, max_weight = %g: each must be finite and >= 0", path,
                              meta->dist_ema, meta->normbt_eps, meta->max_weight);
    return 0;
}

int btrm_model_write(const char *path, const btrm_head *head, const float *params,
                     const btrm_model_meta *meta)
{
    btrm_h5_atomic a = { .file = -1 };
    hid_t gcpl = -1, model = -1, group = -1;
    if (head->n_layers < 1 || head->n_layers > BTRM_MAX_LAYERS || !params)
        return btrm_error_set(BTRM_EDATA, "%s: cannot write a head with %d layers", path,
                              head->n_layers);
    int rc = btrm_h5_create_atomic(&a, path);
    if (!rc)
        rc = btrm_h5_reserve_atomic(&a, btrm_h5_reserve_bytes(4 * (uint64_t)head->n_params,
                                                              4 * (uint64_t)head->n_layers + 16));
    if (rc)
        return rc;
    rc = btrm_h5_write_format(a.file, &btrm_format_model);
    if (!rc)
        rc = btrm_model_group_create(a.file, path, head, meta, &model);
    if (rc)
        goto fail;
    BTRM_CHECK_H5(gcpl = btrm_h5_gcpl(), path);
    for (int l = 0; l < head->n_layers; l++) {
        const btrm_tensor_view *t = &head->layer[l];
        char name[16];
        btrm_model_tensor_name(name, sizeof name, l, head->n_layers);
        hsize_t wdims[2] = { (hsize_t)t->out, (hsize_t)t->in }, bdims[1] = { (hsize_t)t->out };
        BTRM_CHECK_H5(group = H5Gcreate2(model, name, H5P_DEFAULT, gcpl, H5P_DEFAULT), path);
        rc = write_tensor(group, path, "weight", 2, wdims, params + t->weight_off);
        if (!rc)
            rc = write_tensor(group, path, "bias", 1, bdims, params + t->bias_off);
        if (rc)
            goto fail;
        H5Gclose(group);
        group = -1;
    }
    const btrm_model_backbone *bb = meta->backbone;
    if (bb) {
        rc = btrm_model_backbone_create(a.file, path, bb, &group);
        for (int i = 0; !rc && bb->lt && i < bb->lt->n_tensors; i++) {
            const btrm_llama_train_tensor *t = &bb->lt->tensors[i];
            hsize_t dims[2] = { (hsize_t)t->rows, (hsize_t)t->cols };
            rc = write_tensor(group, path, t->name, 2, dims, params + bb->offset + t->offset);
        }
        if (rc)
            goto fail;
        H5Gclose(group);
        group = -1;
    }
    if (meta->features && meta->features->present) {
        BTRM_CHECK_H5(group = H5Gcreate2(a.file, "features", H5P_DEFAULT, gcpl, H5P_DEFAULT),
                      path);
        if ((rc = btrm_feature_record_write_h5(group, meta->features)))
            goto fail;
    }
    BTRM_H5_CLOSE(group, model, gcpl); /* everything closed before the file is */
    return btrm_h5_commit_atomic(&a);
fail:
    BTRM_H5_CLOSE(group, model, gcpl);
    btrm_h5_abort_atomic(&a);
    return rc;
}

/* ------------------------------------------------------------------------ */

/* The dataset of a tensor: /model/<tensor>/<part>, or /backbone/<tensor>
 * (part NULL), named in messages as where/name. */
static const char *tensor_dataset(char *name, size_t size, const char *tensor,
                                  const char *part)
{
    if (part)
        snprintf(name, size, "%s/%s", tensor, part);
    else
        snprintf(name, size, "%s", tensor);
    return part ? "/model" : "/backbone";
}

/* Shape of a tensor's float dataset of the given rank. */
static int tensor_shape(hid_t model, const char *path, const char *tensor, const char *part,
                        int rank, hsize_t dims[2])
{
    char name[96];
    const char *where = tensor_dataset(name, sizeof name, tensor, part);
    int rc = 0;
    hid_t dset = -1, type = -1, space = -1;
    htri_t exists = H5Lexists(model, name, H5P_DEFAULT);
    if (exists <= 0)
        return btrm_error_set(BTRM_EDATA, "%s: missing dataset %s/%s", path, where, name);
    BTRM_CHECK_H5(dset = H5Dopen2(model, name, H5P_DEFAULT), path);
    BTRM_CHECK_H5(type = H5Dget_type(dset), path);
    BTRM_CHECK_H5(space = H5Dget_space(dset), path);
    int got = H5Sget_simple_extent_ndims(space);
    /* at most 8 bytes a value: libhdf5 converts through a buffer sized by the
     * type (a crafted 1.8 GB float) */
    if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) > 8 || got != rank) {
        char tname[32];
        btrm_h5_type_name(type, tname, sizeof tname);
        rc = btrm_error_set(BTRM_EDATA, "%s: dataset %s/%s must be a float dataset of "
                            "rank %d (found %s of rank %d)", path, where, name, rank, tname, got);
        goto fail;
    }
    BTRM_CHECK_H5(H5Sget_simple_extent_dims(space, dims, NULL), path);
    {
        uint64_t values = dims[0];
        if (rank == 2)
            values = dims[1] && dims[0] > UINT64_MAX / dims[1] ? UINT64_MAX : dims[0] * dims[1];
        char what[160];
        snprintf(what, sizeof what, "%s/%s", where, name);
        rc = btrm_h5_check_stored(dset, path, what, values, H5Tget_size(type));
    }
fail:
    BTRM_H5_CLOSE(space, type, dset);
    return rc;
}

static int read_tensor(hid_t model, const char *path, const char *tensor, const char *part,
                       float *out)
{
    char name[96];
    tensor_dataset(name, sizeof name, tensor, part);
    int rc = 0;
    hid_t dset = -1;
    BTRM_CHECK_H5(dset = H5Dopen2(model, name, H5P_DEFAULT), path);
    BTRM_CHECK_H5(H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), path);
fail:
    if (dset >= 0)
        H5Dclose(dset);
    return rc;
}

/* Every link in /model is fc0..fc(n_fc-1) or out; names the first stray one. */
static int check_members(hid_t model, const char *path, int n_fc)
{
    int rc = 0;
    H5G_info_t info;
    BTRM_CHECK_H5(H5Gget_info(model, &info), path);
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[64] = "";
        if (H5Lget_name_by_idx(model, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            continue;
        int k = -1;
        char extra;
        int is_fc = sscanf(name, "fc%d%c", &k, &extra) == 1 && k >= 0 && k < n_fc;
        if (!is_fc && strcmp(name, "out") != 0)
            return btrm_error_set(BTRM_EDATA, "%s: unexpected /model/%s (tensors are fc0..fc%d "
                                  "and out, consecutive)", path, name, n_fc - 1);
    }
fail:
    return rc;
}

/* ------------------------------------------------------------------------ */
/* /backbone */

int btrm_model_backbone_create(hid_t file, const char *path, const btrm_model_backbone *bb,
                               hid_t *group)
{
    int rc = 0;
    hid_t gcpl = -1;
    const char *ft = name_of(finetune_names, COUNT(finetune_names), bb->ft.type);
    const char *pool = name_of(pool_names, COUNT(pool_names), bb->pool);
    *group = -1;
    if (!ft || !pool)
        return btrm_error_set(BTRM_EDATA, "%s: cannot write a backbone with finetune type %d, "
                              "pool %d", path, bb->ft.type, bb->pool);
    char targets[64] = "";
    for (int p = 0; p < BTRM_N_PROJ; p++)
        if (bb->ft.targets & BTRM_LORA_TARGET(p))
            snprintf(targets + strlen(targets), sizeof targets - strlen(targets), "%s%s",
                     targets[0] ? "," : "", btrm_llama_train_proj_name(p));
    BTRM_CHECK_H5(gcpl = btrm_h5_gcpl(), path);
    BTRM_CHECK_H5(*group = H5Gcreate2(file, "backbone", H5P_DEFAULT, gcpl, H5P_DEFAULT), path);
    struct { const char *name; const char *value; } strs[] = {
        { "spec", bb->spec }, { "model_file", bb->model_file }, { "model_hash", bb->model_hash },
        { "model_hash_function", "XXH3-128" }, { "tokenizer_hash", bb->tokenizer_hash },
        { "architecture", bb->architecture }, { "pool", pool }, { "finetune", ft },
        { "targets", targets },
    };
    for (size_t k = 0; k < sizeof strs / sizeof strs[0] && !rc; k++)
        rc = btrm_h5_write_attr_string(*group, strs[k].name, strs[k].value);
    struct { const char *name; int value; } ints[] = {
        { "bos", bb->bos }, { "max_tokens", bb->max_tokens }, { "dim", bb->dim },
        { "rank", bb->ft.rank }, { "layers", bb->ft.layers },
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !rc; k++)
        rc = btrm_h5_write_attr_int(*group, ints[k].name, ints[k].value);
    if (!rc)
        rc = btrm_h5_write_attr_double(*group, "alpha", bb->ft.alpha);
fail:
    if (gcpl >= 0)
        H5Pclose(gcpl);
    if (rc && *group >= 0) {
        H5Gclose(*group);
        *group = -1;
    }
    return rc;
}

int btrm_model_backbone_read_attrs(hid_t group, const char *path, btrm_model_backbone *bb)
{
    memset(bb, 0, sizeof *bb);
    char targets[128] = "", hash_fn[32] = "";
    double alpha = 0;
    struct { const char *name; char *out; size_t size; } strs[] = {
        { "spec", bb->spec, sizeof bb->spec },
        { "model_file", bb->model_file, sizeof bb->model_file },
        { "model_hash", bb->model_hash, sizeof bb->model_hash },
        { "model_hash_function", hash_fn, sizeof hash_fn },
        { "tokenizer_hash", bb->tokenizer_hash, sizeof bb->tokenizer_hash },
        { "architecture", bb->architecture, sizeof bb->architecture },
        { "targets", targets, sizeof targets },
    };
    int rc = 0;
    for (size_t k = 0; k < sizeof strs / sizeof strs[0] && !rc; k++)
        rc = btrm_h5_read_attr_string(group, strs[k].name, strs[k].out, strs[k].size);
    if (!rc)
        rc = read_enum(group, path, "pool", pool_names, COUNT(pool_names), &bb->pool);
    if (!rc)
        rc = read_enum(group, path, "finetune", finetune_names, COUNT(finetune_names),
                       &bb->ft.type);
    struct { const char *name; int *out; } ints[] = {
        { "bos", &bb->bos }, { "max_tokens", &bb->max_tokens }, { "dim", &bb->dim },
        { "rank", &bb->ft.rank }, { "layers", &bb->ft.layers },
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !rc; k++)
        rc = btrm_h5_read_attr_int(group, ints[k].name, ints[k].out);
    if (!rc)
        rc = btrm_h5_read_attr_double(group, "alpha", &alpha);
    if (rc)
        return btrm_error_wrap(rc, "%s: /backbone", path);
    bb->ft.alpha = (float)alpha;
    char *save = NULL;
    for (char *t = strtok_r(targets, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int p = btrm_llama_train_proj_parse(t);
        if (p < 0)
            return btrm_error_set(BTRM_EDATA, "%s: /backbone attribute targets names '%s', not "
                                  "a projection", path, t);
        bb->ft.targets |= BTRM_LORA_TARGET(p);
    }
    if (strcmp(hash_fn, "XXH3-128") || strlen(bb->model_hash) != 32 || bb->dim < 1 ||
        bb->max_tokens < 1)
        return btrm_error_set(BTRM_EDATA, "%s: /backbone: model_hash %s (%s), dim %d, "
                              "max_tokens %d: want a 32-digit XXH3-128 and positive sizes",
                              path, bb->model_hash, hash_fn, bb->dim, bb->max_tokens);
    return 0;
}

/* Opens path for reading with its format checked (a model file or a
 * checkpoint: both hold /model and, since model-v3 and checkpoint-v3,
 * /backbone). */
static int open_model_file(const char *path, hid_t *fapl, hid_t *file, int *version)
{
    int rc = 0;
    *fapl = *file = -1;
    btrm_h5_quiet();
    htri_t is_h5 = H5Fis_hdf5(path);
    if (is_h5 <= 0)
        return btrm_error_set(BTRM_EDATA, "%s: %s", path, is_h5 < 0 ? "cannot open the model "
                              "file (missing or unreadable)" : "not an HDF5 file");
    rc = btrm_h5raw_check_file(path);
    if (rc)
        return rc;
    BTRM_CHECK_H5(*fapl = btrm_h5_fapl(), path);
    BTRM_CHECK_H5(*file = H5Fopen(path, H5F_ACC_RDONLY, *fapl), path);
    char tag[BTRM_FORMAT_TAG_MAX] = "", writer[BTRM_FORMAT_TAG_MAX], name[BTRM_FORMAT_TAG_MAX];
    int is_ckpt = btrm_h5_has_attr(*file, "btrm_format") == 1 &&
                  btrm_h5_read_format(*file, path, tag, sizeof tag, writer, sizeof writer) == 0 &&
                  btrm_format_parse(tag, name, sizeof name, version) == 0 &&
                  !strcmp(name, btrm_format_checkpoint.name);
    rc = btrm_h5_check_format(*file, path, is_ckpt ? &btrm_format_checkpoint
                                                   : &btrm_format_model, version);
fail:
    return rc;
}

int btrm_model_read_backbone(const char *path, btrm_model_backbone *bb, int *present)
{
    hid_t fapl = -1, file = -1, group = -1;
    int version = 0;
    *present = 0;
    memset(bb, 0, sizeof *bb);
    int rc = open_model_file(path, &fapl, &file, &version);
    if (!rc) {
        rc = btrm_h5_exists(file, "/backbone");
        *present = rc > 0;
        rc = rc < 0 ? rc : 0;
    }
    if (!rc && *present) {
        group = H5Gopen2(file, "backbone", H5P_DEFAULT);
        rc = group < 0 ? btrm_h5_error(path, "H5Gopen2", __FILE__, __LINE__)
                       : btrm_model_backbone_read_attrs(group, path, bb);
    }
    BTRM_H5_CLOSE(group, file, fapl);
    return rc;
}

int btrm_model_read_backbone_tensors(const char *path, const btrm_llama_train *lt,
                                     float *params, size_t offset)
{
    hid_t fapl = -1, file = -1, group = -1;
    int version = 0;
    int rc = open_model_file(path, &fapl, &file, &version);
    if (!rc && btrm_h5_exists(file, "/backbone") != 1)
        rc = btrm_error_set(BTRM_EDATA, "%s: no /backbone", path);
    if (!rc && (group = H5Gopen2(file, "backbone", H5P_DEFAULT)) < 0)
        rc = btrm_h5_error(path, "H5Gopen2", __FILE__, __LINE__);
    for (int i = 0; !rc && i < lt->n_tensors; i++) {
        const btrm_llama_train_tensor *t = &lt->tensors[i];
        hsize_t dims[2];
        rc = tensor_shape(group, path, t->name, NULL, 2, dims);
        if (!rc && (dims[0] != (hsize_t)t->rows || dims[1] != (hsize_t)t->cols))
            rc = btrm_error_set(BTRM_EDATA, "%s: /backbone/%s is [%llu, %llu], the model's "
                                "tensor is [%d, %d]", path, t->name, (unsigned long long)dims[0],
                                (unsigned long long)dims[1], t->rows, t->cols);
        if (!rc)
            rc = read_tensor(group, path, t->name, NULL, params + offset + t->offset);
    }
    BTRM_H5_CLOSE(group, file, fapl);
    return rc;
}

/* ------------------------------------------------------------------------ */

int btrm_model_read(const char *path, btrm_head *head, float **params,
                    btrm_model_meta *meta)
{
    hid_t fapl = -1, file = -1, model = -1;
    int rc = 0, kind = 0, activation = 0;
    int hidden[BTRM_MAX_HIDDEN], n_fc = 0, dim = 0;
    float *buf = NULL;
    *params = NULL;
    memset(meta, 0, sizeof *meta);
    /* A checkpoint holds the same /model group and is a valid model too. */
    int version = 0;
    rc = open_model_file(path, &fapl, &file, &version);
    if (rc)
        goto fail;
    rc = btrm_h5_exists(file, "/model");
    if (rc == 0)
        rc = btrm_error_set(BTRM_EDATA, "%s: missing group /model", path);
    if (rc < 0)
        goto fail;
    rc = 0;
    BTRM_CHECK_H5(model = H5Gopen2(file, "model", H5P_DEFAULT), path);
    rc = btrm_model_group_read_attrs(model, path, &kind, &activation, meta);
    if (rc)
        goto fail;

    /* The chain fc0 -> fc1 -> ... -> out, read off the tensors present. */
    for (;;) {
        char name[16];
        snprintf(name, sizeof name, "fc%d", n_fc);
        htri_t e = H5Lexists(model, name, H5P_DEFAULT);
        BTRM_CHECK_H5(e, path);
        if (!e)
            break;
        if (n_fc == BTRM_MAX_HIDDEN) {
            rc = btrm_error_set(BTRM_EDATA, "%s: /model has more than %d hidden layers", path,
                                BTRM_MAX_HIDDEN);
            goto fail;
        }
        n_fc++;
    }
    rc = check_members(model, path, n_fc);
    if (rc)
        goto fail;
    if ((kind == BTRM_HEAD_LINEAR) != (n_fc == 0)) {
        rc = btrm_error_set(BTRM_EDATA, "%s: /model attribute head is \"%s\" but the file has "
                            "%d hidden layers (fc0..)", path, head_names[kind], n_fc);
        goto fail;
    }
    int in_width = 0;
    for (int l = 0; l <= n_fc; l++) {
        char name[16];
        hsize_t w[2], b[2];
        btrm_model_tensor_name(name, sizeof name, l, n_fc + 1);
        rc = tensor_shape(model, path, name, "weight", 2, w);
        if (!rc)
            rc = tensor_shape(model, path, name, "bias", 1, b);
        if (rc)
            goto fail;
        if (w[0] == 0 || w[1] == 0 || w[0] > INT32_MAX || w[1] > INT32_MAX) {
            rc = btrm_error_set(BTRM_EDATA, "%s: dataset /model/%s/weight has an unusable "
                                "shape [%llu, %llu]", path, name, (unsigned long long)w[0],
                                (unsigned long long)w[1]);
            goto fail;
        }
        if (l == 0)
            dim = (int)w[1];
        else if ((int)w[1] != in_width) {
            rc = btrm_error_set(BTRM_EDATA, "%s: dataset /model/%s/weight is [%llu, %llu] but "
                                "the layer before it has %d outputs", path, name,
                                (unsigned long long)w[0], (unsigned long long)w[1], in_width);
            goto fail;
        }
        if (l == n_fc && w[0] != 1) {
            rc = btrm_error_set(BTRM_EDATA, "%s: dataset /model/out/weight is [%llu, %llu]: "
                                "the reward layer must have 1 output", path,
                                (unsigned long long)w[0], (unsigned long long)w[1]);
            goto fail;
        }
        if (b[0] != w[0]) {
            rc = btrm_error_set(BTRM_EDATA, "%s: dataset /model/%s/bias has %llu value(s) but "
                                "weight has %llu rows", path, name, (unsigned long long)b[0],
                                (unsigned long long)w[0]);
            goto fail;
        }
        if (l < n_fc)
            hidden[l] = (int)w[0];
        in_width = (int)w[0];
    }
    rc = btrm_head_init(head, kind, activation, dim, hidden, n_fc);
    if (rc) {
        rc = btrm_error_wrap(BTRM_EDATA, "%s: the model in /model is not a valid head", path);
        goto fail;
    }
    rc = BTRM_MALLOC(buf, head->n_params);
    if (rc)
        goto fail;
    for (int l = 0; l < head->n_layers && !rc; l++) {
        char name[16];
        btrm_model_tensor_name(name, sizeof name, l, head->n_layers);
        rc = read_tensor(model, path, name, "weight", buf + head->layer[l].weight_off);
        if (!rc)
            rc = read_tensor(model, path, name, "bias", buf + head->layer[l].bias_off);
    }
    if (rc)
        goto fail;
    *params = buf;
    buf = NULL;
fail:
    free(buf);
    BTRM_H5_CLOSE(model, file, fapl);
    return rc;
}

int btrm_model_read_features(const char *path, btrm_feature_record *rec)
{
    btrm_feature_record_clear(rec);
    hid_t file = btrm_h5_open_read(path), group = -1;
    if (file < 0)
        return btrm_h5_open_error(path, "cannot open the model file (missing, unreadable "
                                  "or not HDF5)");
    int rc = btrm_h5_exists(file, "/features");
    if (rc > 0) {
        rc = 0;
        BTRM_CHECK_H5(group = H5Gopen2(file, "features", H5P_DEFAULT), path);
        rc = btrm_feature_record_read_h5(group, rec);
        if (rc)
            rc = btrm_error_wrap(rc, "%s: /features", path);
        else if (!rec->present)
            rc = btrm_error_set(BTRM_EDATA, "%s: /features names no backbone (attributes "
                                "backbone or backbone_spec)", path);
    }
fail:
    BTRM_H5_CLOSE(group, file);
    return rc < 0 ? rc : 0;
}

json_t *btrm_model_backbone_to_json(const btrm_model_backbone *bb)
{
    const char *ft = name_of(finetune_names, COUNT(finetune_names), bb->ft.type);
    const char *pool = name_of(pool_names, COUNT(pool_names), bb->pool);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:s}",
                          "spec", bb->spec, "base_model", bb->model_file,
                          "base_model_hash", bb->model_hash, "hash_function", "XXH3-128",
                          "tokenizer_hash", bb->tokenizer_hash,
                          "architecture", bb->architecture, "pool", pool ? pool : "unknown",
                          "bos", bb->bos, "max_tokens", bb->max_tokens, "dim", bb->dim,
                          "finetune", ft ? ft : "unknown");
    json_t *targets = json_array();
    for (int p = 0; targets && p < BTRM_N_PROJ; p++)
        if (bb->ft.targets & BTRM_LORA_TARGET(p))
            json_array_append_new(targets, json_string(btrm_llama_train_proj_name(p)));
    if (j && targets && bb->ft.type != BTRM_FT_NONE)
        json_object_set_new(j, "layers", json_integer(bb->ft.layers));
    if (j && targets && bb->ft.type == BTRM_FT_LORA) {
        json_object_set_new(j, "rank", json_integer(bb->ft.rank));
        json_object_set_new(j, "alpha", json_real(bb->ft.alpha));
        json_object_set(j, "targets", targets);
    }
    if (!targets) {
        json_decref(j);
        j = NULL;
    }
    json_decref(targets);
    return j;
}
