/* synth.c: synthetic pairs with a planted linear reward (model in synth.h). */
#include "synth.h"

#include "error.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* PRNG streams ("synw", "synp", "sync", "synx"): apart from the math
 * layer's (rng.h), so a run.seed equal to --seed draws nothing in common. */
#define STREAM_TASK UINT64_C(0x73796e77)
#define STREAM_PROMPTS UINT64_C(0x73796e70)
#define STREAM_CATEGORIES UINT64_C(0x73796e63)
#define STREAM_PAIRS UINT64_C(0x73796e78)

const char *const btrm_synth_categories[2] = { "fine", "coarse" };
const char *const btrm_synth_subsets[2] = { "clean", "flipped" };

void btrm_synth_defaults(btrm_synth_params *sp)
{
    *sp = (btrm_synth_params){
        .n_pairs = 4000, .dim = 64, .seed = 1, .task_seed = 1, .n_prompts = 100,
        .fine_frac = 0.5, .fine_scale = 0.1, .spread = 1.0, .prompt_std = 1.0,
        .noise = 0.1, .separable = 0, .gap = 0.5, .margins = 0,
    };
}

int btrm_synth_check(const btrm_synth_params *sp)
{
    if (sp->n_pairs < 1 || sp->n_pairs > (INT64_C(1) << 40))
        return btrm_error_set(BTRM_EUSAGE, "--pairs %lld: must be in [1, 2^40]",
                              (long long)sp->n_pairs);
    if (sp->dim < 1 || sp->dim > (1 << 20))
        return btrm_error_set(BTRM_EUSAGE, "--dim %d: must be in [1, 2^20]", sp->dim);
    if (sp->n_prompts < 1)
        return btrm_error_set(BTRM_EUSAGE, "--prompts %d: must be >= 1", sp->n_prompts);
    if (!(sp->fine_frac >= 0 && sp->fine_frac <= 1))
        return btrm_error_set(BTRM_EUSAGE, "--fine-frac %g: must be in [0, 1]", sp->fine_frac);
    if (!(sp->fine_scale > 0 && sp->fine_scale <= 1))
        return btrm_error_set(BTRM_EUSAGE, "--fine-scale %g: must be in (0, 1]",
                              sp->fine_scale);
    if (!(sp->spread > 0 && isfinite(sp->spread)))
        return btrm_error_set(BTRM_EUSAGE, "--spread %g: must be > 0", sp->spread);
    if (!(sp->prompt_std >= 0 && isfinite(sp->prompt_std)))
        return btrm_error_set(BTRM_EUSAGE, "--prompt-std %g: must be >= 0", sp->prompt_std);
    if (!(sp->noise >= 0 && sp->noise <= 0.5))
        return btrm_error_set(BTRM_EUSAGE, "--noise %g: must be in [0, 0.5]", sp->noise);
    if (sp->separable && sp->noise != 0)
        return btrm_error_set(BTRM_EUSAGE, "--separable has no label noise: drop --noise %g",
                              sp->noise);
    if (!(sp->gap > 0 && isfinite(sp->gap)))
        return btrm_error_set(BTRM_EUSAGE, "--gap %g: must be > 0", sp->gap);
    if ((uint64_t)sp->n_pairs * 2 > SIZE_MAX / sizeof(float) / (uint64_t)sp->dim)
        return btrm_error_set(BTRM_EUSAGE, "--pairs %lld --dim %d: too large for memory",
                              (long long)sp->n_pairs, sp->dim);
    return 0;
}

void btrm_synth_free(btrm_synth *s)
{
    if (!s)
        return;
    BTRM_FREE(s->features, s->chosen, s->rejected, s->category, s->subset, s->margin,
              s->w_star);
    memset(s, 0, sizeof *s);
}

static double dot(const double *a, const double *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

int btrm_synth_generate(btrm_synth *s, const btrm_synth_params *sp)
{
    memset(s, 0, sizeof *s);
    int rc = btrm_synth_check(sp);
    if (rc)
        return rc;
    const int dim = sp->dim;
    const int64_t n = sp->n_pairs;
    const double noise = sp->separable ? 0.0 : sp->noise;
    double *centres = NULL, *xa = NULL, *xb = NULL;
    int64_t *order = NULL;
    s->n_pairs = n;
    s->n_rows = 2 * n;
    s->dim = dim;
    rc = BTRM_MALLOC(s->features, (size_t)s->n_rows * dim);
    if (!rc)
        rc = BTRM_MALLOC(s->chosen, n);
    if (!rc)
        rc = BTRM_MALLOC(s->rejected, n);
    if (!rc)
        rc = BTRM_MALLOC(s->category, n);
    if (!rc)
        rc = BTRM_MALLOC(s->subset, n);
    if (!rc && sp->margins)
        rc = BTRM_MALLOC(s->margin, n);
    if (!rc)
        rc = BTRM_MALLOC(s->w_star, dim);
    if (!rc)
        rc = BTRM_MALLOC(centres, (size_t)sp->n_prompts * dim);
    if (!rc)
        rc = BTRM_MALLOC(xa, dim);
    if (!rc)
        rc = BTRM_MALLOC(xb, dim);
    if (!rc)
        rc = BTRM_MALLOC(order, n);
    if (rc)
        goto fail;

    /* w*: a uniformly random direction (normalised Gaussian). */
    btrm_rng rng;
    btrm_rng_seed(&rng, sp->task_seed, STREAM_TASK);
    double norm = 0;
    do {
        for (int j = 0; j < dim; j++)
            s->w_star[j] = btrm_rng_normal(&rng);
        norm = sqrt(dot(s->w_star, s->w_star, dim));
    } while (norm == 0);
    for (int j = 0; j < dim; j++)
        s->w_star[j] /= norm;

    btrm_rng_seed(&rng, sp->seed, STREAM_PROMPTS);
    for (size_t i = 0; i < (size_t)sp->n_prompts * dim; i++)
        centres[i] = sp->prompt_std * btrm_rng_normal(&rng);

    /* Exactly round(fine_frac * n) fine pairs, at random positions
     * (Fisher-Yates on the pair indices; the first n_fine are fine). */
    s->n_fine = llround(sp->fine_frac * (double)n);
    btrm_rng_seed(&rng, sp->seed, STREAM_CATEGORIES);
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)btrm_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int64_t i = 0; i < n; i++)
        s->category[order[i]] = i < s->n_fine ? BTRM_SYNTH_FINE : BTRM_SYNTH_COARSE;

    btrm_rng_seed(&rng, sp->seed, STREAM_PAIRS);
    for (int64_t i = 0; i < n; i++) {
        const int fine = s->category[i] == BTRM_SYNTH_FINE;
        const double *c = centres + (size_t)btrm_rng_below(&rng, (uint64_t)sp->n_prompts) * dim;
        const double scale = fine ? sp->fine_scale * sp->spread : sp->spread;
        for (int j = 0; j < dim; j++) {
            double m = c[j] + (fine ? sp->spread * btrm_rng_normal(&rng) : 0.0);
            xa[j] = m + scale * btrm_rng_normal(&rng);
            xb[j] = m + scale * btrm_rng_normal(&rng);
        }
        double diff = dot(s->w_star, xa, dim) - dot(s->w_star, xb, dim);
        if (sp->separable) {
            /* sd of w*.(x_a - x_b) is sqrt(2) * scale (w* is a unit vector) */
            double want = sp->gap * sqrt(2.0) * scale;
            if (fabs(diff) < want) {
                double t = ((diff >= 0 ? want : -want) - diff) / 2;
                for (int j = 0; j < dim; j++) {
                    xa[j] += t * s->w_star[j];
                    xb[j] -= t * s->w_star[j];
                }
                diff = diff >= 0 ? want : -want;
            }
        }
        /* one uniform per pair whatever the noise: the same seed gives the
         * same responses at every noise level */
        const int flip = btrm_rng_uniform(&rng) < noise;
        const int a_wins = (diff >= 0) != flip;
        float *ra = s->features + (size_t)(2 * i) * dim;
        float *rb = ra + dim;
        for (int j = 0; j < dim; j++) {
            ra[j] = (float)xa[j];
            rb[j] = (float)xb[j];
        }
        s->chosen[i] = a_wins ? 2 * i : 2 * i + 1;
        s->rejected[i] = a_wins ? 2 * i + 1 : 2 * i;
        s->subset[i] = flip ? BTRM_SYNTH_FLIPPED : BTRM_SYNTH_CLEAN;
        s->n_flipped += flip;
        if (s->margin)
            s->margin[i] = (float)fabs(diff);
    }
fail:
    BTRM_FREE(centres, xa, xb, order);
    if (rc)
        btrm_synth_free(s);
    return rc;
}
