/* test-qgemm.c: the integer path (src/math/qgemm.h) for every weight type it
 * takes (Q8_0, Q2_K..Q6_K):
 *  - the activations' 8-bit quantisation as documented (per block scale
 *    max|x| / 127, values in [-127, 127], block sums);
 *  - y against a double-precision sum of (dequantised weight) x (dequantised
 *    activation): the integer arithmetic is the product of those values, up
 *    to float32 rounding of the block terms;
 *  - y against the float32 product with the unquantised activations, within
 *    the activations' rounding (sum_i |w_i| da_i / 2);
 *  - every instruction set this CPU runs (C, AVX2, AVX512-VNNI) gives
 *    bitwise the C kernel's result; beta = 1 accumulates;
 *  - btrm_qgemm_set_isa refuses what the CPU lacks. */
#include "dtype.h"
#include "error.h"
#include "qgemm.h"
#include "quant.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t lcg = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void)
{
    lcg ^= lcg << 13;
    lcg ^= lcg >> 7;
    lcg ^= lcg << 17;
    return (uint32_t)(lcg >> 16);
}
static float frand(void) { return (float)(rnd() % 2000001) / 1000000.0f - 1.0f; }

typedef struct wcase {
    int type;
    const char *name;
    int scale_at[2]; /* fp16 scale fields of a block, -1: none */
} wcase;

static const wcase cases[] = {
    { BTRM_Q_Q8_0, "Q8_0", { 0, -1 } },   { BTRM_Q_Q2_K, "Q2_K", { 80, 82 } },
    { BTRM_Q_Q3_K, "Q3_K", { 108, -1 } }, { BTRM_Q_Q4_K, "Q4_K", { 0, 2 } },
    { BTRM_Q_Q5_K, "Q5_K", { 0, 2 } },    { BTRM_Q_Q6_K, "Q6_K", { 208, -1 } },
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
#define N_TOK 37  /* three tiles of 16, the last one partial */
#define N_ROWS 13 /* two tiles of 8 rows, the last one partial */
#define COLS 512

/* Activation i of token t as the kernels see it: da * qa (qgemm.h layout). */
static double act_value(const btrm_qact *a, int t, int i)
{
    int tile = t / BTRM_QG_TOKENS, lane = t % BTRM_QG_TOKENS;
    int8_t q = a->q[((size_t)tile * (size_t)(a->cols / 4) + (size_t)(i / 4)) * 64 +
                    (size_t)lane * 4 + (size_t)(i % 4)];
    float d = a->d[((size_t)tile * (size_t)(a->cols / a->sb) + (size_t)(i / a->sb)) * 16 +
                   (size_t)lane];
    return (double)d * q;
}

static void test_type(const wcase *c)
{
    size_t row_bytes = btrm_quant_row_bytes(c->type, COLS);
    int block = btrm_quant_block(c->type), bytes = btrm_quant_block_bytes(c->type);
    uint8_t *w = malloc(N_ROWS * row_bytes);
    float *wf = malloc(N_ROWS * COLS * sizeof *wf), *x = malloc(N_TOK * COLS * sizeof *x);
    for (size_t i = 0; i < N_ROWS * row_bytes; i++)
        w[i] = (uint8_t)rnd();
    for (int b = 0; b < N_ROWS * COLS / block; b++)
        for (int s = 0; s < 2; s++)
            if (c->scale_at[s] >= 0) {
                uint16_t h = btrm_float_to_half(0.002f + 0.01f * (float)(rnd() % 100) / 100.0f);
                memcpy(w + (size_t)b * (size_t)bytes + c->scale_at[s], &h, 2);
            }
    for (int r = 0; r < N_ROWS; r++)
        btrm_quant_dequant_f32(c->type, w + r * row_bytes, COLS, wf + r * COLS);
    for (int i = 0; i < N_TOK * COLS; i++)
        x[i] = frand() * (i % 61 == 0 ? 6.0f : 1.0f) * (float)(1 + (i / COLS) % 3);

    btrm_qact a;
    btrm_qgemm_ws ws;
    int rc = btrm_qact_init(&a, c->type, N_TOK, COLS);
    rc |= btrm_qgemm_ws_init(&ws, COLS);
    btrm_qact_quantize(&a, x, N_TOK, COLS);

    /* the activations as documented */
    int act_ok = !rc;
    for (int t = 0; t < N_TOK && act_ok; t++)
        for (int b = 0; b < COLS / a.sb; b++) {
            float amax = 0;
            for (int i = 0; i < a.sb; i++)
                amax = fmaxf(amax, fabsf(x[t * COLS + b * a.sb + i]));
            float d = a.d[((size_t)(t / 16) * (size_t)(COLS / a.sb) + (size_t)b) * 16 + (size_t)(t % 16)];
            float want = amax / 127.0f;
            if (c->type == BTRM_Q_Q8_0) /* fp16 scale, as ggml's block_q8_0 */
                want = btrm_half_to_float(btrm_float_to_half(want));
            act_ok &= d == want;
            /* q is rounded with the float32 scale: the fp16 one can add up to
             * 127 * |fp16(d) - d| <= 127 d 2^-11 */
            double slack = c->type == BTRM_Q_Q8_0 ? 127.0 / 2048 : 0;
            for (int i = 0; i < a.sb; i++) {
                double v = act_value(&a, t, b * a.sb + i);
                act_ok &= fabs(v - x[t * COLS + b * a.sb + i]) <= d * (0.5 + slack) * (1 + 1e-6) &&
                          fabs(v) <= d * 127.0 * (1 + 1e-6);
            }
        }
    for (int t = 0; t < N_TOK && act_ok; t++)
        for (int g = 0; g < COLS / a.group; g++) {
            int32_t sum = 0;
            for (int i = 0; i < a.group; i++) {
                int e = g * a.group + i;
                sum += a.q[((size_t)(t / 16) * (COLS / 4) + (size_t)(e / 4)) * 64 + (size_t)(t % 16) * 4 + (size_t)(e % 4)];
            }
            act_ok &= a.bsum[((size_t)(t / 16) * (size_t)(COLS / a.group) + (size_t)g) * 16 + (size_t)(t % 16)] == sum;
        }
    ok(act_ok, "%s: activations quantised per block of %d (scale max|x|/127%s, |error| <= "
       "scale/2, group sums)", c->name, a.sb, c->type == BTRM_Q_Q8_0 ? " in fp16" : "");

    /* y with the C kernel, then every other instruction set */
    float *y = malloc(N_TOK * N_ROWS * sizeof *y), *y2 = malloc(N_TOK * N_ROWS * sizeof *y2);
    btrm_qgemm_set_isa(BTRM_ISA_C);
    btrm_qgemm(&ws, &a, w, row_bytes, N_ROWS, y, N_ROWS, 0.0f);
    double worst_int = 0, worst_f32 = 0;
    int within = 1;
    for (int t = 0; t < N_TOK; t++)
        for (int r = 0; r < N_ROWS; r++) {
            double exact = 0, scale = 0, f32 = 0, bound = 0;
            for (int i = 0; i < COLS; i++) {
                double wv = wf[r * COLS + i], av = act_value(&a, t, i);
                exact += wv * av;
                scale += fabs(wv * av);
                f32 += wv * x[t * COLS + i];
                float d = a.d[((size_t)(t / 16) * (size_t)(COLS / a.sb) + (size_t)(i / a.sb)) * 16 + (size_t)(t % 16)];
                bound += fabs(wv) * d * 0.5;
            }
            double got = y[t * N_ROWS + r];
            double e_int = fabs(got - exact) / (scale > 0 ? scale : 1);
            worst_int = fmax(worst_int, e_int);
            double e_f32 = fabs(got - f32);
            within &= e_f32 <= bound * 1.001 + 1e-5 * scale;
            worst_f32 = fmax(worst_f32, bound > 0 ? e_f32 / bound : 0);
        }
    ok(worst_int <= 2e-6, "%s: y = sum of dequantised weights x dequantised activations "
       "(relative to sum |w a|: %.2g <= 2e-6)", c->name, worst_int);
    ok(within, "%s: y within the activations' rounding of the float32 product (worst %.2f of "
       "the bound sum |w| da/2)", c->name, worst_f32);
    for (int isa = BTRM_ISA_AVX2; isa <= btrm_qgemm_isa_best(); isa++) {
        btrm_qgemm_set_isa(isa);
        btrm_qgemm(&ws, &a, w, row_bytes, N_ROWS, y2, N_ROWS, 0.0f);
        ok(!memcmp(y, y2, N_TOK * N_ROWS * sizeof *y), "%s: the %s kernel gives the C kernel's "
           "results bitwise", c->name, btrm_qgemm_isa_name(isa));
    }
    for (int isa = btrm_qgemm_isa_best() + 1; isa <= BTRM_ISA_AVX512VNNI; isa++)
        skip(1, "this CPU lacks the instruction set");
    /* beta = 1 adds to y (best instruction set) */
    btrm_qgemm_set_isa(btrm_qgemm_isa_best());
    for (int i = 0; i < N_TOK * N_ROWS; i++)
        y2[i] = 1.0f;
    btrm_qgemm(&ws, &a, w, row_bytes, N_ROWS, y2, N_ROWS, 1.0f);
    int acc = 1;
    for (int i = 0; i < N_TOK * N_ROWS; i++)
        acc &= y2[i] == 1.0f + y[i];
    ok(acc, "%s: beta = 1 accumulates into y", c->name);
    btrm_qact_free(&a);
    btrm_qgemm_ws_free(&ws);
    free(w);
    free(wf);
    free(x);
    free(y);
    free(y2);
}

int main(void)
{
    plan(N_CASES * 6 + 3);
    diag("best instruction set here: %s", btrm_qgemm_isa_name(btrm_qgemm_isa_best()));
    for (int c = 0; c < N_CASES; c++)
        test_type(&cases[c]);
    ok(btrm_qgemm_has_int8(BTRM_Q_Q4_K) && !btrm_qgemm_has_int8(BTRM_Q_Q4_0) &&
       !btrm_qgemm_has_int8(BTRM_Q_F16), "the int8 path takes Q8_0 and the K-quants only");
    btrm_qact a;
    is_int(btrm_qact_init(&a, BTRM_Q_Q4_K, 4, 100), BTRM_EUSAGE,
           "activations of 100 columns for K-quant weights are refused");
    if (btrm_qgemm_isa_best() < BTRM_ISA_AVX512VNNI)
        is_int(btrm_qgemm_set_isa(BTRM_ISA_AVX512VNNI), BTRM_EUSAGE,
               "an instruction set this CPU lacks is refused");
    else
        is_int(btrm_qgemm_set_isa(BTRM_ISA_AVX512VNNI + 1), BTRM_EUSAGE,
               "an unknown instruction set is refused");
    return done_testing();
}
