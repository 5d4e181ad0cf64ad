/* cli_inspect.c: `btrm inspect FILE.h5`: what a btrm file is and whether it
 * is intact. Checkpoints have their checksums verified collectively (exit 1
 * on a bad one); model files and pair stores are described and validated. */
#include "ckpt.h"
#include "cli.h"
#include "comm.h"
#include "error.h"
#include "h5util.h"
#include "log.h"
#include "modelfile.h"
#include "pairs.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: [mpirun -np P] btrm inspect FILE.h5 [--config]\n\n"
            "Prints what a btrm file is (pair store, model file or checkpoint) and checks it:\n"
            "a pair store is validated (indices, NaN/Inf in used rows), a checkpoint has\n"
            "the crc32 of every dataset verified (on any number of ranks). Exit 0 when the\n"
            "file is intact, 1 when it is not.\n\n"
            "Options:\n"
            "  --config     also print a checkpoint's resolved config\n"
            "  -h, --help   this help\n");
}

/* The btrm_format attribute of path ("" when absent or unreadable). */
static int read_format(const char *path, char *format, size_t size)
{
    btrm_h5_quiet();
    format[0] = '\0';
    hid_t fapl = btrm_h5_fapl();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (file < 0)
        return btrm_error_set(BTRM_EDATA, "%s: cannot open as HDF5 (missing, truncated or "
                              "not HDF5)", path);
    int rc = btrm_h5_read_attr_string(file, "btrm_format", format, size);
    H5Fclose(file);
    if (rc)
        return btrm_error_set(BTRM_EDATA, "%s: no btrm_format attribute: not a btrm file", path);
    return 0;
}

static int inspect_model(const char *path)
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
    return 0;
}

static int print_config(const char *path)
{
    hid_t fapl = btrm_h5_fapl();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (file < 0)
        return btrm_error_set(BTRM_EDATA, "%s: cannot open", path);
    size_t size = 1 << 20;
    char *text = malloc(size);
    int rc = text ? btrm_h5_read_attr_string(file, "config", text, size)
                  : btrm_error_set(BTRM_ENOMEM, "out of memory");
    if (!rc)
        printf("  config:\n%s", text);
    free(text);
    H5Fclose(file);
    return rc;
}

int btrm_inspect_main(int argc, char **argv, MPI_Comm world)
{
    const char *path = NULL;
    int show_config = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--config")) {
            show_config = 1;
        } else if (argv[i][0] == '-') {
            return btrm_cli_usage_error("inspect", "unknown option '%s'", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return btrm_cli_usage_error("inspect", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!path)
        return btrm_cli_usage_error("inspect", "missing FILE.h5");

    btrm_comm comm;
    int rc = btrm_comm_init(&comm, world);
    if (rc)
        btrm_comm_abort(NULL, rc, "%s", btrm_error_msg());
    btrm_log_init(comm.rank, BTRM_LOG_INFO);
    char format[64];
    rc = btrm_comm_agree(&comm, read_format(path, format, sizeof format));
    if (!rc && comm.rank == 0)
        printf("%s: %s\n", path, format);
    if (rc) {
        /* nothing more to say */
    } else if (!strcmp(format, "checkpoint-v1")) {
        btrm_ckpt_state st;
        rc = btrm_ckpt_verify(path, &comm, &st, 1);
        if (comm.rank == 0 && (!rc || st.step > 0)) {
            printf("  step %lld (epoch %lld, step %lld of it), optimizer %s step %lld, "
                   "dist_ema %.6g\n", (long long)st.step, (long long)st.epoch,
                   (long long)st.in_epoch, btrm_config_enum_name("optim.type", st.optim_type),
                   (long long)st.optim_step, st.dbar);
            printf("  written by %d rank%s, run.seed %llu, data %s (crc32 %08x)\n", st.ranks,
                   st.ranks == 1 ? "" : "s", (unsigned long long)st.seed, st.train_file,
                   (unsigned)st.train_crc32);
        }
        if (!rc && show_config && comm.rank == 0)
            rc = print_config(path);
        rc = btrm_comm_agree(&comm, rc);
    } else if (!strcmp(format, "model-v1")) {
        rc = btrm_comm_agree(&comm, comm.rank == 0 ? inspect_model(path) : 0);
    } else if (!strcmp(format, "pairs-v1")) {
        btrm_pairs p;
        memset(&p, 0, sizeof p);
        rc = btrm_pairs_open(&p, path, &comm, BTRM_PAIRS_FEATURES);
        if (!rc && comm.rank == 0) {
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
    } else {
        rc = btrm_error_set(BTRM_EDATA, "%s: unknown btrm_format '%s'", path, format);
    }
    if (rc && comm.rank == 0)
        btrm_log_error("%s", btrm_error_msg());
    btrm_comm_free(&comm);
    return btrm_error_exit_code(rc);
}
