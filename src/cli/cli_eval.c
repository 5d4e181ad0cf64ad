/* cli_eval.c: `btrm eval MODEL.h5 DATA.h5 [--json FILE]`. */
#include "cli.h"
#include "comm.h"
#include "error.h"
#include "eval.h"
#include "fileutil.h"
#include "log.h"
#include "modelfile.h"
#include "pairs.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mpirun -np P btrm eval MODEL.h5 DATA.h5 [--json FILE] [--sections rewardbench]\n\n"
            "Evaluates a model file on a pair store, distributed over the ranks: pairwise\n"
            "accuracy (ties count 1/2), mean BT loss, mean reward margin, accuracy per\n"
            "category and subset, and accuracy and grad_share per quintile of the\n"
            "representation distance d = ||h_c - h_r||. Prints a table on stdout.\n\n"
            "Options:\n"
            "  --json FILE   also write the result as JSON (docs/format.md)\n"
            "  --sections rewardbench\n"
            "                RewardBench's section scores from its subset names: Chat, Chat\n"
            "                Hard, Safety (subset accuracies weighted by pair counts),\n"
            "                Reasoning (1/2 math-prm + 1/2 the hep-* subsets), overall\n"
            "                (their mean); other subsets are listed as ignored\n"
            "  -q, --quiet   no table, only errors\n"
            "  -h, --help    this help\n");
}

static void print_sections(const btrm_eval_sections *s)
{
    printf("  RewardBench sections (fractions; - = no pairs)\n");
    for (int k = 0; k < BTRM_RB_N; k++) {
        if (s->defined[k])
            printf("  section  %-20s n %-7lld score %.4f\n", btrm_rewardbench_names[k],
                   (long long)s->n[k], s->score[k]);
        else
            printf("  section  %-20s n %-7lld score -\n", btrm_rewardbench_names[k],
                   (long long)s->n[k]);
    }
    for (int i = 0; i < s->n_ignored; i++)
        printf("  ignored subset %s (not a RewardBench subset)\n", s->ignored[i]);
}

static void print_table(const btrm_eval_result *r, const btrm_pairs *data)
{
    printf("%s: %lld pairs\n", data->path, (long long)r->n_pairs);
    printf("  accuracy %.4f   loss %.4f   margin_mean %.4f   dist_mean %.4g\n", r->accuracy,
           r->loss, r->margin_mean, r->dist_mean);
    for (int g = 0; g < r->n_categories; g++)
        printf("  category %-20s n %-7lld accuracy %.4f\n", data->categories[g],
               (long long)r->by_category[g].n,
               r->by_category[g].n ? r->by_category[g].correct / r->by_category[g].n : 0.0);
    for (int g = 0; g < r->n_subsets; g++)
        printf("  subset   %-20s n %-7lld accuracy %.4f\n", data->subsets[g],
               (long long)r->by_subset[g].n,
               r->by_subset[g].n ? r->by_subset[g].correct / r->by_subset[g].n : 0.0);
    printf("  distance quintile      d range                n  accuracy  grad_share\n");
    for (int q = 0; q < BTRM_EVAL_QUANTILES; q++) {
        const btrm_eval_bin *b = &r->bins[q];
        printf("  q%d  %10.4g .. %-10.4g %9lld  %8.4f  %10.4f\n", q + 1, b->lo, b->hi,
               (long long)b->n, b->n ? b->correct / b->n : 0.0, b->grad_share);
    }
}

int btrm_eval_main(int argc, char **argv, MPI_Comm world)
{
    const char *model_path = NULL, *data_path = NULL, *json_path = NULL, *sections = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else if (!strcmp(a, "--sections") && i + 1 < argc) {
            sections = argv[++i];
            if (strcmp(sections, "rewardbench"))
                return btrm_cli_usage_error("eval", "--sections %s: the only sections are "
                                            "rewardbench", sections);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-') {
            return btrm_cli_usage_error("eval", "unknown or incomplete option '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else if (!data_path) {
            data_path = a;
        } else {
            return btrm_cli_usage_error("eval", "unexpected argument '%s'", a);
        }
    }
    if (!model_path || !data_path)
        return btrm_cli_usage_error("eval", "need MODEL.h5 and DATA.h5");

    btrm_comm comm;
    int rc = btrm_comm_init(&comm, world);
    if (rc)
        btrm_comm_abort(NULL, rc, "%s", btrm_error_msg());
    btrm_log_init(comm.rank, quiet ? BTRM_LOG_WARN : BTRM_LOG_INFO);

    btrm_head head;
    float *params = NULL;
    btrm_model_meta meta;
    btrm_pairs data;
    memset(&data, 0, sizeof data);
    btrm_eval_result res;
    memset(&res, 0, sizeof res);
    rc = btrm_comm_agree(&comm, btrm_model_read(model_path, &head, &params, &meta));
    if (!rc)
        rc = btrm_pairs_open(&data, data_path, &comm,
                             BTRM_PAIRS_FEATURES | BTRM_PAIRS_REQUIRE_FEATURES);
    if (!rc && data.dim != head.dim)
        rc = btrm_error_set(BTRM_EDATA, "%s: /features has dim %d but the model %s expects %d",
                            data_path, data.dim, model_path, head.dim);
    rc = btrm_comm_agree(&comm, rc);
    if (!rc)
        rc = btrm_eval_run(&head, params, &meta, &data, &comm, &res);
    btrm_eval_sections sec;
    memset(&sec, 0, sizeof sec);
    if (!rc && sections)
        rc = btrm_eval_sections_rewardbench(&res, &data, &sec);
    if (!rc && comm.rank == 0) {
        if (!quiet)
            print_table(&res, &data);
        if (!quiet && sections)
            print_sections(&sec);
        if (json_path) {
            json_t *j = btrm_eval_to_json(&res, &data);
            json_object_set_new(j, "model", json_string(model_path));
            if (sections) {
                json_t *ignored = json_array();
                for (int i = 0; i < sec.n_ignored; i++)
                    json_array_append_new(ignored, json_string(sec.ignored[i]));
                json_object_set_new(j, "sections", btrm_eval_sections_json(&sec));
                json_object_set_new(j, "sections_ignored", ignored);
            }
            rc = btrm_json_write_atomic(json_path, j);
            json_decref(j);
        }
    }
    btrm_eval_sections_free(&sec);
    rc = btrm_comm_agree(&comm, rc);
    if (rc && comm.rank == 0)
        btrm_log_error("%s", btrm_error_msg());
    btrm_eval_result_free(&res);
    btrm_pairs_close(&data);
    free(params);
    btrm_comm_free(&comm);
    return btrm_error_exit_code(rc);
}
