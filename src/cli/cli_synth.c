/* cli_synth.c: `btrm synth OUT.h5 [options]`: generates a synthetic pair
 * store (synth.c) and writes it (pairs.c). Serial: no MPI. */
#include "cli.h"
#include "error.h"
#include "log.h"
#include "pairs.h"
#include "synth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    btrm_synth_params d;
    btrm_synth_defaults(&d);
    fprintf(out,
            "Usage: btrm synth OUT.h5 [options]\n\n"
            "Writes a synthetic pair store (format pairs-v1) with a planted linear reward:\n"
            "a unit direction w* (from --task-seed), K prompt centres c_k ~ N(0, s_p^2 I),\n"
            "and per pair two responses around a prompt centre. Coarse pairs: x_a, x_b =\n"
            "c_k + s N(0, I). Fine pairs: m = c_k + s N(0, I), x_a, x_b = m + f s N(0, I),\n"
            "so their difference is f times smaller. The chosen response is the one with\n"
            "the higher w*.x, swapped with probability --noise (for both categories\n"
            "alike). Categories: fine, coarse; subsets: clean, flipped (label swapped).\n"
            "Rows 2i and 2i+1 are pair i's responses. The output is deterministic: the\n"
            "same options give the same bytes. Use one --task-seed and different --seed\n"
            "values for train and test splits of the same task.\n\n"
            "Options:\n"
            "  --pairs N        pairs (default %lld)\n"
            "  --dim D          feature dimension (default %d)\n"
            "  --seed S         seed of prompts, responses, categories, labels (default %llu)\n"
            "  --task-seed T    seed of the planted direction w* (default %llu)\n"
            "  --prompts K      prompt centres (default %d)\n"
            "  --fine-frac F    share of fine pairs, in [0, 1] (default %g)\n"
            "  --fine-scale f   fine spread / coarse spread, in (0, 1] (default %g)\n"
            "  --spread s       std of a coarse response around its centre (default %g)\n"
            "  --prompt-std s_p std of the prompt centres (default %g)\n"
            "  --noise P        label swap probability, in [0, 0.5] (default %g)\n"
            "  --separable      no label noise, and pairs closer than --gap along w* are\n"
            "                   moved apart along w* to exactly the gap\n"
            "  --gap G          separable gap in standard deviations of the category's\n"
            "                   w*.(x_a - x_b) (default %g)\n"
            "  --margins        write /pairs/margin = |w*.(x_chosen - x_rejected)|\n"
            "  --features-dtype f32|f16|bf16\n"
            "                   the type of /features: float32 (default), IEEE float16\n"
            "                   or bfloat16 (docs/format.md)\n"
            "  --f16            the same as --features-dtype f16\n"
            "  -q, --quiet      no summary line\n"
            "  -h, --help       this help\n\n"
            "Exit codes: 0 ok, 1 write failure, 2 usage error.\n",
            (long long)d.n_pairs, d.dim, (unsigned long long)d.seed,
            (unsigned long long)d.task_seed, d.n_prompts, d.fine_frac, d.fine_scale, d.spread,
            d.prompt_std, d.noise, d.gap);
}

static int parse_u64(const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (!text[0] || text[0] == '-' || text[0] == '+')
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* The shortest of %.15g and %.17g that reads back as x. */
static const char *number(char *buf, size_t size, double x)
{
    snprintf(buf, size, "%.15g", x);
    if (strtod(buf, NULL) != x)
        snprintf(buf, size, "%.17g", x);
    return buf;
}

/* The provenance attribute: every parameter, so the file says how to remake it. */
static void describe(char *out, size_t size, const btrm_synth_params *sp, int dtype)
{
    char v[6][32];
    snprintf(out, size,
             "btrm synth --pairs %lld --dim %d --seed %llu --task-seed %llu --prompts %d "
             "--fine-frac %s --fine-scale %s --spread %s --prompt-std %s --noise %s%s "
             "--gap %s%s%s%s",
             (long long)sp->n_pairs, sp->dim, (unsigned long long)sp->seed,
             (unsigned long long)sp->task_seed, sp->n_prompts,
             number(v[0], sizeof v[0], sp->fine_frac), number(v[1], sizeof v[1], sp->fine_scale),
             number(v[2], sizeof v[2], sp->spread), number(v[3], sizeof v[3], sp->prompt_std),
             number(v[4], sizeof v[4], sp->noise), sp->separable ? " --separable" : "",
             number(v[5], sizeof v[5], sp->gap), sp->margins ? " --margins" : "",
             dtype != BTRM_DTYPE_F32 ? " --features-dtype " : "",
             dtype != BTRM_DTYPE_F32 ? btrm_dtype_name(dtype) : "");
}

int btrm_synth_main(int argc, char **argv, MPI_Comm world)
{
    (void)world;
    btrm_synth_params sp;
    btrm_synth_defaults(&sp);
    const char *out = NULL;
    int dtype = BTRM_DTYPE_F32, quiet = 0, noise_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return BTRM_EXIT_OK;
        }
        if (!strcmp(arg, "--separable")) {
            sp.separable = 1;
            continue;
        }
        if (!strcmp(arg, "--margins")) {
            sp.margins = 1;
            continue;
        }
        if (!strcmp(arg, "--f16")) {
            dtype = BTRM_DTYPE_F16;
            continue;
        }
        if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (arg[0] != '-' || !strcmp(arg, "-")) {
            if (out)
                return btrm_cli_usage_error("synth", "one output file expected, got '%s' "
                                            "and '%s'", out, arg);
            out = arg;
            continue;
        }
        /* --name VALUE or --name=VALUE */
        char name[32];
        const char *value = NULL;
        const char *eq = strchr(arg, '=');
        if (eq && (size_t)(eq - arg) < sizeof name) {
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = '\0';
            value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
        }
        static const char *const valued[] = { "--pairs", "--dim", "--seed", "--task-seed",
                                              "--prompts", "--fine-frac", "--fine-scale",
                                              "--spread", "--prompt-std", "--noise", "--gap",
                                              "--features-dtype" };
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            known |= !strcmp(name, valued[k]);
        if (!known)
            return btrm_cli_usage_error("synth", "unknown option '%s'", arg);
        if (!value) {
            if (i + 1 >= argc)
                return btrm_cli_usage_error("synth", "option %s needs a value", name);
            value = argv[++i];
        }
        long long v = 0;
        double x = 0;
        uint64_t u = 0;
        int bad = 0;
        if (!strcmp(name, "--features-dtype")) {
            dtype = btrm_dtype_parse(value);
            bad = dtype < 0;
        } else if (!strcmp(name, "--pairs")) {
            bad = btrm_cli_parse_i64(value, 1, INT64_C(1) << 40, &v);
            sp.n_pairs = v;
        } else if (!strcmp(name, "--dim")) {
            bad = btrm_cli_parse_i64(value, 1, 1 << 20, &v);
            sp.dim = (int)v;
        } else if (!strcmp(name, "--prompts")) {
            bad = btrm_cli_parse_i64(value, 1, 1 << 30, &v);
            sp.n_prompts = (int)v;
        } else if (!strcmp(name, "--seed")) {
            bad = parse_u64(value, &u);
            sp.seed = u;
        } else if (!strcmp(name, "--task-seed")) {
            bad = parse_u64(value, &u);
            sp.task_seed = u;
        } else {
            bad = btrm_cli_parse_double(value, &x);
            if (!strcmp(name, "--fine-frac"))
                sp.fine_frac = x;
            else if (!strcmp(name, "--fine-scale"))
                sp.fine_scale = x;
            else if (!strcmp(name, "--spread"))
                sp.spread = x;
            else if (!strcmp(name, "--prompt-std"))
                sp.prompt_std = x;
            else if (!strcmp(name, "--noise")) {
                sp.noise = x;
                noise_given = 1;
            } else
                sp.gap = x;
        }
        if (bad)
            return btrm_cli_usage_error("synth", "bad value '%s' for %s", value, name);
    }
    if (!out)
        return btrm_cli_usage_error("synth", "missing the output file OUT.h5");
    if (sp.separable && !noise_given)
        sp.noise = 0;
    if (btrm_synth_check(&sp) != 0)
        return btrm_cli_usage_error("synth", "%s", btrm_error_msg());

    btrm_synth s;
    int rc = btrm_synth_generate(&s, &sp);
    if (!rc) {
        char provenance[1024];
        describe(provenance, sizeof provenance, &sp, dtype);
        btrm_pairs_data data = {
            .n_pairs = s.n_pairs, .n_rows = s.n_rows, .dim = s.dim,
            .features = s.features, .features_dtype = dtype, .backbone = "synth",
            .chosen = s.chosen, .rejected = s.rejected,
            .category = s.category, .categories = btrm_synth_categories, .n_categories = 2,
            .subset = s.subset, .subsets = btrm_synth_subsets, .n_subsets = 2,
            .margin = s.margin, .provenance = provenance,
        };
        rc = btrm_pairs_write(out, &data);
    }
    if (rc) {
        btrm_log_error("synth: %s", btrm_error_msg());
        btrm_synth_free(&s);
        return btrm_error_exit_code(rc);
    }
    if (!quiet)
        btrm_log_info("wrote %s: %lld pairs (%lld fine, %lld coarse), %lld rows x %d %s, "
                      "%lld labels swapped", out, (long long)s.n_pairs, (long long)s.n_fine,
                      (long long)(s.n_pairs - s.n_fine), (long long)s.n_rows, s.dim,
                      btrm_dtype_name(dtype), (long long)s.n_flipped);
    btrm_synth_free(&s);
    return BTRM_EXIT_OK;
}
