/* synth.h: synthetic preference pairs with a planted linear reward, for
 * `btrm synth` and tests. Math layer: generates into memory (no MPI, no
 * HDF5); cli_synth.c writes the result with btrm_pairs_write.
 *
 * The model (docs/format.md, `btrm synth --help`):
 *   w*    a unit vector in R^D drawn from task_seed (files with the same
 *         task_seed and D share it: make train and test splits with different
 *         seeds and the same task_seed);
 *   c_k   K prompt centres, N(0, prompt_std^2 I);
 *   pair  prompt k uniform; category fine with probability-exact share
 *         fine_frac, else coarse;
 *         coarse: x_a, x_b = c_k + spread * N(0, I) each;
 *         fine:   m = c_k + spread * N(0, I), x_a, x_b = m + fine_scale *
 *                 spread * N(0, I) each (differences fine_scale times smaller);
 *   label chosen = the response with the higher w*.x, then swapped with
 *         probability noise (the same for both categories);
 *   separable: no label noise, and a pair whose |w*.(x_a - x_b)| is below
 *         gap * (its category's standard deviation of that difference,
 *         sqrt(2) * spread or sqrt(2) * fine_scale * spread) is moved apart
 *         along w* (x_a + t w*, x_b - t w*) to exactly that gap.
 * Rows 2i and 2i+1 are pair i's responses a and b. Deterministic from the
 * parameters: independent streams for w*, prompts, categories and pairs. */
#ifndef BTRM_SYNTH_H
#define BTRM_SYNTH_H

#include <stdint.h>

typedef struct btrm_synth_params {
    int64_t n_pairs;     /* --pairs N (default 4000) */
    int dim;             /* --dim D (default 64) */
    uint64_t seed;       /* --seed: prompts, responses, categories, labels (default 1) */
    uint64_t task_seed;  /* --task-seed: the planted direction w* (default 1) */
    int n_prompts;       /* --prompts K (default 100) */
    double fine_frac;    /* --fine-frac in [0, 1] (default 0.5) */
    double fine_scale;   /* --fine-scale in (0, 1] (default 0.1) */
    double spread;       /* --spread > 0 (default 1) */
    double prompt_std;   /* --prompt-std >= 0 (default 1) */
    double noise;        /* --noise in [0, 0.5] (default 0.1) */
    int separable;       /* --separable: noise 0 and a gap along w* */
    double gap;          /* --gap > 0 (default 0.5), separable only */
    int margins;         /* --margins: fill margin[] = |w*.(x_c - x_r)| */
} btrm_synth_params;

enum { BTRM_SYNTH_FINE = 0, BTRM_SYNTH_COARSE = 1 };    /* category codes */
enum { BTRM_SYNTH_CLEAN = 0, BTRM_SYNTH_FLIPPED = 1 };  /* subset codes */
extern const char *const btrm_synth_categories[2];      /* "fine", "coarse" */
extern const char *const btrm_synth_subsets[2];         /* "clean", "flipped" */

typedef struct btrm_synth {
    int64_t n_pairs, n_rows; /* n_rows = 2 n_pairs */
    int dim;
    float *features;         /* [n_rows, dim] */
    int64_t *chosen, *rejected;
    int32_t *category;       /* BTRM_SYNTH_FINE | BTRM_SYNTH_COARSE */
    int32_t *subset;         /* BTRM_SYNTH_CLEAN | BTRM_SYNTH_FLIPPED (label swapped) */
    float *margin;           /* [n_pairs] with params.margins, else NULL */
    double *w_star;          /* [dim], unit norm */
    int64_t n_fine, n_flipped;
} btrm_synth;

void btrm_synth_defaults(btrm_synth_params *sp);
/* Range checks; BTRM_EUSAGE with a message naming the option. */
int btrm_synth_check(const btrm_synth_params *sp);
int btrm_synth_generate(btrm_synth *s, const btrm_synth_params *sp);
void btrm_synth_free(btrm_synth *s);

#endif
