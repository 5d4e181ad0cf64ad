/* inspect.c: `btrm inspect` (see inspect.h). */
#include "inspect.h"

#include "gguf_inspect.h"

#include "ckpt.h"
#include "error.h"
#include "feature_record.h"
#include "format.h"
#include "gguf_inspect.h"
#include "modelfile.h"
#include "pairs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int inspect_checkpoint(const char *path, int show_config, const btrm_comm *c)
{
    btrm_ckpt_state st;
    int rc = btrm_ckpt_verify(path, c, &st, 1);
    if (c->rank == 0 && (!rc || st.step > 0)) {
        printf("  step %lld (epoch %lld, step %lld of it), optimizer %s step %lld, "
               "dist_ema %.6g\n", (long long)st.step, (long long)st.epoch,
               (long long)st.in_epoch, btrm_config_enum_name("optim.type", st.optim_type),
               (long long)st.optim_step, st.dbar);
        printf("  written by %d rank%s, run.seed %llu, data %s (crc32 %08x)\n", st.ranks,
               st.ranks == 1 ? "" : "s", (unsigned long long)st.seed, st.train_file,
               (unsigned)st.train_crc32);
    }
    if (!rc && show_config && c->rank == 0) {
        char *text = NULL;
        rc = btrm_ckpt_read_config(path, &text);
        if (!rc)
            printf("  config:\n%s", text);
        free(text);
    }
    return btrm_comm_agree(c, rc);
}

static int describe_model(const char *path)
{
    btrm_head head;
    float *params = NULL;
    btrm_model_meta meta;
    int rc = btrm_model_read(path, &head, &params, &meta);
    if (rc)
        return rc;
    printf("  head %s, activation %s, loss %s, dist_ema %.6g, %zu parameters\n",
           btrm_config_enum_name("model.head", head.kind),
           btrm_config_enum_name("model.activation", head.activation),
           btrm_config_enum_name("loss.type", meta.loss), meta.dist_ema, head.n_params);
    for (int l = 0; l < head.n_layers; l++)
        printf("  /model/%s/weight [%d, %d]  /model/%s/bias [%d]\n", head.layer[l].name,
               head.layer[l].out, head.layer[l].in, head.layer[l].name, head.layer[l].out);
    free(params);
    btrm_feature_record *rec = malloc(sizeof *rec);
    char text[1024];
    rc = rec ? btrm_model_read_features(path, rec) : btrm_error_set(BTRM_ENOMEM, "out of memory");
    if (!rc) {
        btrm_feature_record_describe(rec, text, sizeof text);
        printf("  features: %s\n", text);
        if (rec->spec[0])
            printf("  backbone spec: %s\n", rec->spec);
        if (rec->chat_template[0])
            printf("  chat template: %s\n", rec->chat_template);
    }
    free(rec);
    return rc;
}

static int inspect_pairs(const char *path, const btrm_comm *c)
{
    btrm_pairs p;
    memset(&p, 0, sizeof p);
    int rc = btrm_pairs_open(&p, path, c, BTRM_PAIRS_FEATURES);
    if (!rc && c->rank == 0) {
        printf("  %lld pairs over %lld rows; ", (long long)p.n_pairs, (long long)p.n_rows);
        if (p.dim)
            printf("features [%lld, %d] %s, backbone %s\n", (long long)p.n_rows, p.dim,
                   p.features_dtype == BTRM_DTYPE_F16 ? "float16"
                   : p.features_dtype == BTRM_DTYPE_BF16 ? "bfloat16" : "float32", p.backbone);
        else
            printf("no /features (run btrm embed)\n");
        for (int g = 0; g < p.n_categories; g++)
            printf("  category %d: %s\n", g, p.categories[g]);
        for (int g = 0; g < p.n_subsets; g++)
            printf("  subset %d: %s\n", g, p.subsets[g]);
        printf("  valid: indices in range, no NaN/Inf in used rows\n");
    }
    btrm_pairs_close(&p);
    return rc;
}

int btrm_inspect_run(const char *path, int show_config, const btrm_comm *c)
{
    char tag[BTRM_FORMAT_TAG_MAX], writer[BTRM_FORMAT_TAG_MAX], name[BTRM_FORMAT_TAG_MAX];
    int version = 0;
    if (btrm_gguf_is_gguf(path)) /* an LLM file: rank 0 describes it */
        return btrm_comm_agree(c, c->rank == 0 ? btrm_gguf_inspect(stdout, path) : 0);
    int rc = btrm_format_of_file(path, tag, sizeof tag, writer, sizeof writer);
    rc = btrm_comm_agree(c, rc);
    if (rc)
        return rc;
    if (c->rank == 0)
        printf("%s: %s%s%s\n", path, tag, writer[0] ? ", written by btrm " : "", writer);
    if (btrm_format_parse(tag, name, sizeof name, &version) != 0)
        return btrm_error_set(BTRM_EDATA, "%s: unknown btrm_format '%s'", path, tag);
    /* each reader checks the version it finds */
    if (!strcmp(name, btrm_format_checkpoint.name))
        return inspect_checkpoint(path, show_config, c);
    if (!strcmp(name, btrm_format_model.name))
        return btrm_comm_agree(c, c->rank == 0 ? describe_model(path) : 0);
    if (!strcmp(name, btrm_format_pairs.name))
        return inspect_pairs(path, c);
    return btrm_error_set(BTRM_EDATA, "%s: unknown btrm_format '%s'", path, tag);
}
