/* test-rng.c: splitmix64 and xoshiro256** against published vectors and an
 * independent transcription; bounded ints, normals, permutations. */
#include "rng.h"
#include "tap.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* An independent transcription of the reference generators (splitmix64.c and
 * xoshiro256starstar.c of Blackman and Vigna), written without the module's
 * helpers: rotations by explicit shifts, state in four named words. */
static uint64_t ref_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct { uint64_t a, b, c, d; } ref_xo;

static uint64_t ref_next(ref_xo *s)
{
    uint64_t b5 = s->b * 5;
    uint64_t out = ((b5 << 7) | (b5 >> 57)) * 9;
    uint64_t t = s->b << 17;
    s->c ^= s->a;
    s->d ^= s->b;
    s->b ^= s->c;
    s->a ^= s->d;
    s->c ^= t;
    s->d = (s->d << 45) | (s->d >> 19);
    return out;
}

/* The seeding rng.h documents: splitmix64 from seed ^ mix(stream), where
 * mix(z) is splitmix64's output for the state z - golden (so that the
 * increment lands on z). */
static void ref_seed(ref_xo *s, uint64_t seed, uint64_t stream)
{
    uint64_t pre = stream - 0x9e3779b97f4a7c15ULL;
    uint64_t x = seed ^ ref_splitmix(&pre);
    s->a = ref_splitmix(&x);
    s->b = ref_splitmix(&x);
    s->c = ref_splitmix(&x);
    s->d = ref_splitmix(&x);
}

static void test_reference_vectors(void)
{
    /* Rosetta Code "Pseudo-random numbers/Splitmix64": seed 1234567. */
    const uint64_t sm_1234567[5] = {6457827717110365317ULL, 3203168211198807973ULL,
                                    9817491932198370423ULL, 4593380528125082431ULL,
                                    16408922859458223821ULL};
    uint64_t x = 1234567;
    int good = 1;
    for (int i = 0; i < 5; i++)
        good &= btrm_rng_splitmix64(&x) == sm_1234567[i];
    ok(good, "splitmix64 from 1234567 gives the 5 published outputs");
    x = 0;
    ok(btrm_rng_splitmix64(&x) == 0xe220a8397b1dcdafULL,
       "splitmix64 from 0 gives 0xe220a8397b1dcdaf");

    /* Published xoshiro256** outputs from the state {1, 2, 3, 4} (reference
     * implementation; e.g. rand_xoshiro's test). */
    const uint64_t xo_1234[10] = {11520ULL, 0ULL, 1509978240ULL, 1215971899390074240ULL,
                                  1216172134540287360ULL, 607988272756665600ULL,
                                  16172922978634559625ULL, 8476171486693032832ULL,
                                  10595114339597558777ULL, 2904607092377533576ULL};
    btrm_rng rng = {{1, 2, 3, 4}};
    good = 1;
    for (int i = 0; i < 10; i++) {
        uint64_t got = btrm_rng_next(&rng);
        if (got != xo_1234[i]) {
            diag("output %d: got %" PRIu64 ", want %" PRIu64, i, got, xo_1234[i]);
            good = 0;
        }
    }
    ok(good, "xoshiro256** from {1,2,3,4} gives the 10 published outputs");

    ref_xo r = {1, 2, 3, 4};
    for (int i = 0; i < 10; i++)
        good &= ref_next(&r) == xo_1234[i];
    ok(good, "the test's own transcription reproduces the published outputs too");
}

static void test_seeding(void)
{
    /* Stream 0 is the reference seeding: the four words are splitmix64(seed)'s
     * first four outputs. */
    btrm_rng rng;
    btrm_rng_seed(&rng, 42, 0);
    uint64_t x = 42;
    int good = 1;
    for (int i = 0; i < 4; i++)
        good &= rng.s[i] == ref_splitmix(&x);
    ok(good, "seed(42, stream 0) = the first four splitmix64(42) outputs");

    const uint64_t seeds[3] = {0, 1, 0xdeadbeefcafef00dULL};
    const uint64_t streams[4] = {0, 1, 7, BTRM_RNG_STREAM_PERM + 3};
    good = 1;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++) {
            ref_xo r;
            ref_seed(&r, seeds[a], streams[b]);
            btrm_rng_seed(&rng, seeds[a], streams[b]);
            for (int i = 0; i < 1000; i++)
                good &= btrm_rng_next(&rng) == ref_next(&r);
        }
    ok(good, "1000 outputs of 12 (seed, stream) pairs match the independent transcription");

    btrm_rng a, b;
    btrm_rng_seed(&a, 5, 1);
    btrm_rng_seed(&b, 5, 2);
    int differ = 0;
    for (int i = 0; i < 8; i++)
        differ += btrm_rng_next(&a) != btrm_rng_next(&b);
    is_int(differ, 8, "streams 1 and 2 of one seed differ in every one of 8 outputs");
}

static void test_uniform(void)
{
    btrm_rng rng, copy;
    btrm_rng_seed(&rng, 3, 0);
    copy = rng;
    int in_range = 1, exact = 1;
    double sum = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        double u = btrm_rng_uniform(&rng);
        in_range &= u >= 0.0 && u < 1.0;
        exact &= u == ldexp((double)(btrm_rng_next(&copy) >> 11), -53);
        sum += u;
    }
    ok(in_range, "uniform() in [0, 1) for %d draws", n);
    ok(exact, "uniform() = (next >> 11) * 2^-53");
    /* sd of the mean = sqrt(1/12 / n) = 0.0009 */
    is_double_abs(sum / n, 0.5, 0.005, "uniform mean is 1/2");
}

static void test_below(void)
{
    btrm_rng rng;
    btrm_rng_seed(&rng, 11, 0);
    is_int((long long)btrm_rng_below(&rng, 0), 0, "below(0) = 0");
    int good = 1;
    for (int i = 0; i < 100; i++)
        good &= btrm_rng_below(&rng, 1) == 0;
    ok(good, "below(1) is always 0");

    const uint64_t ns[5] = {2, 3, 7, 1000, (1ULL << 63) + 1};
    good = 1;
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < 20000; i++)
            good &= btrm_rng_below(&rng, ns[k]) < ns[k];
    ok(good, "below(n) < n for n = 2, 3, 7, 1000, 2^63 + 1");

    /* Chi-square of 10 bins, 9 degrees of freedom: P(chi2 > 40) < 1e-5. */
    enum { BINS = 10, DRAWS = 100000 };
    long count[BINS] = {0};
    for (int i = 0; i < DRAWS; i++)
        count[btrm_rng_below(&rng, BINS)]++;
    double chi2 = 0;
    for (int b = 0; b < BINS; b++) {
        double e = (double)DRAWS / BINS;
        chi2 += (count[b] - e) * (count[b] - e) / e;
    }
    diag("below(10): chi-square %.2f with 9 degrees of freedom", chi2);
    ok(chi2 < 40.0, "below(10) is uniform (chi-square %.1f < 40)", chi2);

    /* n = 3 * 2^62: plain next % n would put half the draws below 2^62
     * (where 2^64 mod n = 2^62 wraps); unbiased gives one third. */
    const uint64_t big = 3ULL << 62;
    int low = 0;
    const int m = 30000;
    for (int i = 0; i < m; i++)
        low += btrm_rng_below(&rng, big) < (1ULL << 62);
    diag("below(3*2^62): fraction below 2^62 = %.4f (unbiased 1/3, modulo bias 1/2)",
         (double)low / m);
    is_double_abs((double)low / m, 1.0 / 3.0, 0.02, "below(3*2^62) has no modulo bias");
}

static void test_normal(void)
{
    btrm_rng a, b;
    btrm_rng_seed(&a, 9, 4);
    btrm_rng_seed(&b, 9, 4);
    const int n = 200000;
    double s1 = 0, s2 = 0, s4 = 0;
    int same = 1, finite = 1;
    for (int i = 0; i < n; i++) {
        double z = btrm_rng_normal(&a);
        same &= z == btrm_rng_normal(&b);
        finite &= isfinite(z);
        s1 += z;
        s2 += z * z;
        s4 += z * z * z * z;
    }
    ok(same && finite, "normal() is finite and deterministic for one (seed, stream)");
    diag("normal: mean %.4f, variance %.4f, fourth moment %.4f", s1 / n, s2 / n, s4 / n);
    is_double_abs(s1 / n, 0.0, 0.01, "normal mean is 0");
    is_double_abs(s2 / n, 1.0, 0.015, "normal variance is 1");
    is_double_abs(s4 / n, 3.0, 0.1, "normal fourth moment is 3 (Gaussian tails)");
}

static int is_permutation(const int64_t *p, int64_t n)
{
    char *seen = calloc((size_t)n + 1, 1);
    int good = 1;
    for (int64_t i = 0; i < n; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]])
            good = 0;
        else
            seen[p[i]] = 1;
    }
    free(seen);
    return good;
}

static void test_permutation(void)
{
    enum { N = 1000 };
    static int64_t p[N], q[N], r[N], s[N];
    btrm_rng_permutation(7, 0, N, p);
    btrm_rng_permutation(7, 0, N, q);
    btrm_rng_permutation(7, 1, N, r);
    btrm_rng_permutation(8, 0, N, s);
    ok(is_permutation(p, N), "permutation(7, 0, 1000) is a permutation of 0..999");
    ok(is_permutation(r, N), "permutation(7, 1, 1000) is a permutation of 0..999");
    ok(memcmp(p, q, sizeof p) == 0, "same (seed, epoch): same permutation");
    int same_r = 0, same_s = 0, fixed = 0;
    for (int i = 0; i < N; i++) {
        same_r += p[i] == r[i];
        same_s += p[i] == s[i];
        fixed += p[i] == i;
    }
    ok(same_r < 20, "epochs 0 and 1 differ (%d of 1000 positions agree)", same_r);
    ok(same_s < 20, "seeds 7 and 8 differ (%d of 1000 positions agree)", same_s);
    ok(fixed < 20, "the permutation is shuffled (%d fixed points; ~1 expected)", fixed);

    int64_t one = -1;
    btrm_rng_permutation(7, 0, 1, &one);
    is_int(one, 0, "a permutation of 1 element is {0}");
    int64_t untouched[2] = { -5, -6 };
    btrm_rng_permutation(7, 0, 0, untouched);
    ok(untouched[0] == -5 && untouched[1] == -6, "a permutation of 0 elements writes nothing");

    /* All 6 orders of 3 elements equally likely over 60000 epochs
     * (5 degrees of freedom: P(chi2 > 35) < 2e-6). */
    long count[6] = {0};
    const int epochs = 60000;
    for (int e = 0; e < epochs; e++) {
        int64_t t[3];
        btrm_rng_permutation(123, e, 3, t);
        int code = (int)(t[0] * 2 + (t[1] > t[2]));
        count[code]++;
    }
    double chi2 = 0;
    for (int k = 0; k < 6; k++)
        chi2 += (count[k] - epochs / 6.0) * (count[k] - epochs / 6.0) / (epochs / 6.0);
    diag("permutations of 3 over %d epochs: chi-square %.2f, 5 degrees of freedom", epochs,
         chi2);
    ok(chi2 < 35.0, "Fisher-Yates orders of 3 elements are uniform (chi-square %.1f)", chi2);
}

int main(void)
{
    plan(28);
    test_reference_vectors();
    test_seeding();
    test_uniform();
    test_below();
    test_normal();
    test_permutation();
    return done_testing();
}
