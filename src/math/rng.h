/* rng.h: the project's own PRNG (xoshiro256** seeded by splitmix64), so that
 * permutations and initialisations are identical on every rank, platform and
 * library version. Math layer.
 *
 * Seeding: the splitmix64 state starts at seed ^ mix(stream), where mix is
 * splitmix64's output function (a bijection with mix(0) = 0), and the four
 * xoshiro256** words are its first four outputs. Stream 0 is therefore the
 * reference seeding of xoshiro256** by splitmix64(seed). */
#ifndef BTRM_RNG_H
#define BTRM_RNG_H

#include <stdint.h>

typedef struct btrm_rng {
    uint64_t s[4];
} btrm_rng;

/* Streams used by the math layer; other modules use other stream numbers
 * (four-letter tags like these, e.g. synth's "syn?"). */
#define BTRM_RNG_STREAM_INIT UINT64_C(0x696e6974)         /* "init": head parameters */
#define BTRM_RNG_STREAM_PERM UINT64_C(0x7065726d00000000) /* "perm" << 32, + epoch */

/* splitmix64 (Steele, Lea, Flood 2014): advances *state, returns the next output. */
uint64_t btrm_rng_splitmix64(uint64_t *state);

/* Independent streams from one seed: (seed, stream) -> state. */
void btrm_rng_seed(btrm_rng *rng, uint64_t seed, uint64_t stream);
uint64_t btrm_rng_next(btrm_rng *rng);
double btrm_rng_uniform(btrm_rng *rng);           /* [0, 1), 53 bits */
uint64_t btrm_rng_below(btrm_rng *rng, uint64_t n); /* [0, n), unbiased; 0 when n = 0 */
double btrm_rng_normal(btrm_rng *rng);            /* standard normal (Marsaglia polar) */
/* perm[0..n) = a permutation of 0..n-1 drawn from (seed, epoch) (Fisher-Yates),
 * using stream BTRM_RNG_STREAM_PERM + epoch. */
void btrm_rng_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm);

#endif
