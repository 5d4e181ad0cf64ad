/* rng.h: the project's own PRNG (xoshiro256** seeded by splitmix64), so that
 * permutations and initialisations are identical on every rank, platform and
 * library version. Math layer. */
#ifndef BTRM_RNG_H
#define BTRM_RNG_H

#include <stdint.h>

typedef struct btrm_rng {
    uint64_t s[4];
} btrm_rng;

/* Independent streams from one seed: (seed, stream) -> state. */
void btrm_rng_seed(btrm_rng *rng, uint64_t seed, uint64_t stream);
uint64_t btrm_rng_next(btrm_rng *rng);
double btrm_rng_uniform(btrm_rng *rng);           /* [0, 1), 53 bits */
uint64_t btrm_rng_below(btrm_rng *rng, uint64_t n); /* [0, n), unbiased */
double btrm_rng_normal(btrm_rng *rng);            /* standard normal */
/* perm[0..n) = a permutation of 0..n-1 drawn from (seed, epoch) (Fisher-Yates). */
void btrm_rng_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm);

#endif
