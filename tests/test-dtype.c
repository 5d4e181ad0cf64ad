/* test-dtype.c: the f32/f16/bf16 conversions of src/math/dtype.c. bf16
 * rounding against an independent definition (nearest of the two bf16
 * neighbours in double, ties to the even one), edge cases, and the array
 * forms (compiled for several ISAs, dispatched at run time) bitwise equal to
 * the scalar forms. */
#include "dtype.h"
#include "rng.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int half_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu); }

static void test_half(void)
{
    int round_trip_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = btrm_half_to_float((uint16_t)h);
        uint16_t back = btrm_float_to_half(f);
        if (half_is_nan((uint16_t)h) ? !(isnan(f) && half_is_nan(back)) : back != h)
            round_trip_bad++;
    }
    is_int(round_trip_bad, 0, "half -> float -> half is the identity on all 65536 halves "
           "(NaN stays NaN)");
    is_int(btrm_float_to_half(65504.0f), 0x7bff, "65504 (largest half) is exact");
    is_int(btrm_float_to_half(65519.99f), 0x7bff, "just under 65520 rounds down to 65504");
    is_int(btrm_float_to_half(65520.0f), 0x7c00, "65520 (a tie above 65504) rounds to inf");
    is_int(btrm_float_to_half(ldexpf(1, -24)), 0x0001, "2^-24, the smallest subnormal, is exact");
    is_int(btrm_float_to_half(ldexpf(1, -25)), 0x0000, "2^-25 ties to even zero");
    is_int(btrm_float_to_half(3 * ldexpf(1, -25)), 0x0002, "3 * 2^-25 ties to even 2 * 2^-24");
    is_int(btrm_float_to_half(1 + ldexpf(1, -11)), 0x3c00, "1 + 2^-11 ties to even 1");
    is_int(btrm_float_to_half(1 + 3 * ldexpf(1, -11)), 0x3c02, "1 + 3 * 2^-11 ties to even "
           "1 + 2^-9");
    is_int(btrm_float_to_half(-0.0f), 0x8000, "-0 keeps its sign");
    is_int(btrm_float_to_half(INFINITY), 0x7c00, "inf");
    is_int(btrm_float_to_half(-INFINITY), 0xfc00, "-inf");
    ok(half_is_nan(btrm_float_to_half(NAN)), "NaN converts to a NaN half");
    ok(btrm_half_to_float(0x03ff) == 1023 * ldexpf(1, -24), "largest subnormal half");
    ok(btrm_half_to_float(0x0400) == ldexpf(1, -14), "smallest normal half");
    ok(signbit(btrm_half_to_float(0x8000)) && btrm_half_to_float(0x8000) == 0, "-0 half");
    ok(isinf(btrm_half_to_float(0xfc00)) && btrm_half_to_float(0xfc00) < 0, "-inf half");
#ifdef __FLT16_MAX__
    /* The compiler's _Float16 (libgcc's conversions) as an independent reference. */
    int widen_bad = 0, narrow_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t hh = (uint16_t)h;
        _Float16 ref;
        memcpy(&ref, &hh, sizeof ref);
        float want = (float)ref, got = btrm_half_to_float(hh);
        widen_bad += isnan(want) ? !isnan(got) : bits_of(want) != bits_of(got);
    }
    btrm_rng rng;
    btrm_rng_seed(&rng, 42, 0);
    for (int i = 0; i < 300000; i++) {
        /* random bit patterns, and values near the half range */
        float f = i % 2 ? from_bits((uint32_t)btrm_rng_next(&rng))
                        : (float)((btrm_rng_uniform(&rng) - 0.5) *
                                  ldexp(1.0, (int)btrm_rng_below(&rng, 48) - 30));
        _Float16 ref = (_Float16)f;
        uint16_t want;
        memcpy(&want, &ref, sizeof want);
        uint16_t got = btrm_float_to_half(f);
        narrow_bad += isnan(f) ? !half_is_nan(got) : got != want;
    }
    is_int(widen_bad, 0, "half -> float matches _Float16 on all 65536 halves");
    is_int(narrow_bad, 0, "float -> half matches _Float16 (round to nearest even) on 300000 "
           "floats");
#else
    skip(2, "the compiler has no _Float16 to compare with");
#endif
}


/* bf16 of a finite f by its definition: the nearer of truncation toward zero
 * and the next bf16 away from zero, ties to the even one (in double) */
static uint16_t bf16_reference(float f)
{
    uint32_t u = bits_of(f);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double x = fabs((double)f);
    double a = fabs((double)from_bits((uint32_t)lo << 16));
    double b = (hi & 0x7fffu) == 0x7f80u ? ldexp(1.0, 128) /* the next step is inf */
                                        : fabs((double)from_bits((uint32_t)hi << 16));
    if (x - a < b - x)
        return lo;
    if (x - a > b - x)
        return hi;
    return (lo & 1u) ? hi : lo;
}

int main(void)
{
    plan(37);
    test_half();
    is_int(btrm_float_to_bf16(1.0f), 0x3f80, "1 is exact");
    is_int(btrm_float_to_bf16(from_bits(0x3f808000u)), 0x3f80, "1 + half an ulp ties to even 1");
    is_int(btrm_float_to_bf16(from_bits(0x3f818000u)), 0x3f82, "1 + 3 half ulps ties to even up");
    is_int(btrm_float_to_bf16(from_bits(0x3f808001u)), 0x3f81, "just above a tie rounds up");
    is_int(btrm_float_to_bf16(from_bits(0x7f7fffffu)), 0x7f80, "FLT_MAX rounds to inf");
    is_int(btrm_float_to_bf16(from_bits(0x7f7f7fffu)), 0x7f7f, "below the tie stays finite");
    is_int(btrm_float_to_bf16(-INFINITY), 0xff80, "-inf");
    is_int(btrm_float_to_bf16(-0.0f), 0x8000, "-0 keeps its sign");
    is_int(btrm_float_to_bf16(from_bits(0x00018000u)), 0x0002, "a subnormal tie goes to even (kept, "
           "not flushed)");
    uint16_t nan = btrm_float_to_bf16(from_bits(0x7f800001u));
    ok((nan & 0x7f80u) == 0x7f80u && (nan & 0x7fu) != 0, "a signalling NaN whose payload is in "
       "the low bits stays a NaN (0x%04x)", nan);
    ok(btrm_bf16_to_float(0x4049) == from_bits(0x40490000u), "widening is a shift");

    /* random floats over the whole exponent range */
    btrm_rng rng;
    btrm_rng_seed(&rng, 3, 1);
    enum { N = 200003 }; /* not a multiple of any vector width */
    float *x = malloc(sizeof *x * N), *back = malloc(sizeof *back * N);
    uint16_t *b16 = malloc(sizeof *b16 * N), *h16 = malloc(sizeof *h16 * N);
    int bad_ref = 0;
    for (int i = 0; i < N; i++) {
        uint32_t u = (uint32_t)(btrm_rng_uniform(&rng) * 4294967296.0);
        if (i % 7 == 0) /* exact ties */
            u = (u & 0xffff0000u) | 0x8000u;
        if ((u & 0x7f800000u) == 0x7f800000u)
            u &= 0xbfffffffu; /* finite here; NaN and inf above */
        x[i] = from_bits(u);
        bad_ref += btrm_float_to_bf16(x[i]) != bf16_reference(x[i]);
    }
    ok(bad_ref == 0, "bf16 rounding matches the nearest-even definition on %d floats (%d "
       "differ), ties and subnormals included", N, bad_ref);
    x[5] = NAN;
    x[6] = INFINITY;
    btrm_dtype_from_f32(b16, BTRM_DTYPE_BF16, x, N);
    int bad_arr = 0;
    for (int i = 0; i < N; i++)
        bad_arr += b16[i] != btrm_float_to_bf16(x[i]);
    ok(bad_arr == 0, "the bf16 array conversion equals the scalar one element by element");
    btrm_dtype_to_f32(back, b16, BTRM_DTYPE_BF16, N);
    int bad_back = 0;
    for (int i = 0; i < N; i++)
        bad_back += bits_of(back[i]) != ((uint32_t)b16[i] << 16);
    ok(bad_back == 0, "bf16 -> f32 array widening is exact");
    btrm_dtype_from_f32(h16, BTRM_DTYPE_F16, x, N);
    btrm_dtype_to_f32(back, h16, BTRM_DTYPE_F16, N);
    int bad_half = 0;
    for (int i = 0; i < N; i++)
        bad_half += h16[i] != btrm_float_to_half(x[i]) ||
                    bits_of(back[i]) != bits_of(btrm_half_to_float(h16[i]));
    ok(bad_half == 0, "the f16 array conversions equal the scalar ones");
    ok(btrm_dtype_parse("bf16") == BTRM_DTYPE_BF16 && btrm_dtype_parse("float16") == BTRM_DTYPE_F16 &&
           btrm_dtype_parse("f32") == BTRM_DTYPE_F32 && btrm_dtype_parse("f64") == -1,
       "dtype names parse; an unknown one is -1");
    is_int((int)btrm_dtype_size(BTRM_DTYPE_BF16), 2, "bf16 is 2 bytes");
    ok(!strcmp(btrm_dtype_name(BTRM_DTYPE_BF16), "bf16"), "bf16's name");
    free(x), free(back), free(b16), free(h16);
    return done_testing();
}
