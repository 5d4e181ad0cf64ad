/* rng.c: xoshiro256** (Blackman and Vigna 2018) seeded by splitmix64. */
#include "rng.h"

#include <math.h>

/* splitmix64's output function: a bijection of uint64 with mix(0) = 0. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint64_t btrm_rng_splitmix64(uint64_t *state)
{
    *state += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(*state);
}

void btrm_rng_seed(btrm_rng *rng, uint64_t seed, uint64_t stream)
{
    /* Distinct streams of one seed start splitmix64 at unrelated points; the
     * state cannot become all zero (splitmix64 never outputs four zeros). */
    uint64_t sm = seed ^ mix64(stream);
    for (int i = 0; i < 4; i++)
        rng->s[i] = btrm_rng_splitmix64(&sm);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t btrm_rng_next(btrm_rng *rng)
{
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double btrm_rng_uniform(btrm_rng *rng)
{
    /* The top 53 bits, scaled by 2^-53: every double k * 2^-53, k < 2^53. */
    return (double)(btrm_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t btrm_rng_below(btrm_rng *rng, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Rejection: accept r >= 2^64 mod n, so that the accepted range is a
     * multiple of n and r % n is exactly uniform (fewer than one draw in two
     * is rejected in the worst case, almost none for small n). */
    const uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t r = btrm_rng_next(rng);
        if (r >= threshold)
            return r % n;
    }
}

double btrm_rng_normal(btrm_rng *rng)
{
    /* Marsaglia's polar method, one value per call (the second is dropped so
     * that the generator carries no cache): only sqrt and log, no sin/cos. */
    for (;;) {
        double u = 2.0 * btrm_rng_uniform(rng) - 1.0;
        double v = 2.0 * btrm_rng_uniform(rng) - 1.0;
        double s = u * u + v * v;
        if (s > 0.0 && s < 1.0)
            return u * sqrt(-2.0 * log(s) / s);
    }
}

void btrm_rng_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm)
{
    btrm_rng rng;
    btrm_rng_seed(&rng, seed, BTRM_RNG_STREAM_PERM + (uint64_t)epoch);
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    /* Fisher-Yates (Durstenfeld): position i takes a uniform element of [0, i]. */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)btrm_rng_below(&rng, (uint64_t)i + 1);
        int64_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}
