/* qgemm.c: the integer path (qgemm.h): activation quantisation, weight
 * unpacking into qgemm_impl.h's tile, the portable C kernel and the driver
 * that picks an instruction set's kernel at run time. */
#include "qgemm_impl.h"

#include "dtype.h"
#include "error.h"
#include "quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int btrm_qgemm_has_int8(int wtype)
{
    switch (wtype) {
    case BTRM_Q_Q8_0: case BTRM_Q_Q2_K: case BTRM_Q_Q3_K: case BTRM_Q_Q4_K:
    case BTRM_Q_Q5_K: case BTRM_Q_Q6_K:
        return 1;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Instruction sets */

static int isa_best = -1, isa_now = -1;

int btrm_qgemm_isa_best(void)
{
    if (isa_best < 0) {
        isa_best = BTRM_ISA_C;
#ifdef BTRM_QG_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2"))
            isa_best = BTRM_ISA_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vnni"))
            isa_best = BTRM_ISA_AVX512VNNI;
#endif
    }
    return isa_best;
}

int btrm_qgemm_isa(void)
{
    if (isa_now < 0)
        isa_now = btrm_qgemm_isa_best();
    return isa_now;
}

const char *btrm_qgemm_isa_name(int isa)
{
    switch (isa) {
    case BTRM_ISA_C: return "c";
    case BTRM_ISA_AVX2: return "avx2";
    case BTRM_ISA_AVX512VNNI: return "avx512vnni";
    default: return "unknown";
    }
}

int btrm_qgemm_set_isa(int isa)
{
    if (isa < BTRM_ISA_C || isa > btrm_qgemm_isa_best())
        return btrm_error_set(BTRM_EUSAGE, "integer kernels: instruction set %s is not "
                              "available on this CPU (best: %s)", btrm_qgemm_isa_name(isa),
                              btrm_qgemm_isa_name(btrm_qgemm_isa_best()));
    isa_now = isa;
    return 0;
}

static qg_kernel kernel_of(int isa)
{
#ifdef BTRM_QG_X86
    if (isa == BTRM_ISA_AVX512VNNI)
        return btrm_qg_kernel_avx512vnni;
    if (isa == BTRM_ISA_AVX2)
        return btrm_qg_kernel_avx2;
#endif
    (void)isa;
    return btrm_qg_kernel_c;
}

/* ------------------------------------------------------------------------ */
/* Activations */

static int act_sb(int wtype) { return wtype == BTRM_Q_Q8_0 ? 32 : BTRM_QK; }
static int act_group(int wtype)
{
    return wtype == BTRM_Q_Q8_0 || wtype == BTRM_Q_Q4_K || wtype == BTRM_Q_Q5_K ? 32 : 16;
}

void btrm_qact_free(btrm_qact *a)
{
    if (!a)
        return;
    free(a->q);
    free(a->d);
    free(a->bsum);
    memset(a, 0, sizeof *a);
}

int btrm_qact_init(btrm_qact *a, int wtype, int max_rows, int cols)
{
    memset(a, 0, sizeof *a);
    if (!btrm_qgemm_has_int8(wtype) || max_rows < 1 || cols < 1 || cols % act_sb(wtype))
        return btrm_error_set(BTRM_EUSAGE, "int8 activations: weight type %d with %d columns",
                              wtype, cols);
    a->wtype = wtype;
    a->cols = cols;
    a->max_rows = max_rows;
    a->sb = act_sb(wtype);
    a->group = act_group(wtype);
    size_t tiles = (size_t)(max_rows + BTRM_QG_TOKENS - 1) / BTRM_QG_TOKENS;
    size_t slots = tiles * BTRM_QG_TOKENS;
    int rc = 0;
    if ((rc = BTRM_MALLOC(a->q, slots * (size_t)cols)) ||
        (rc = BTRM_MALLOC(a->d, slots * (size_t)(cols / a->sb))) ||
        (rc = BTRM_MALLOC(a->bsum, slots * (size_t)(cols / a->group)))) {
        btrm_qact_free(a);
        return btrm_error_wrap(rc, "int8 activations for %d rows of %d", max_rows, cols);
    }
    return 0;
}

void btrm_qact_quantize(btrm_qact *a, const float *x, int rows, int ldx)
{
    int cols = a->cols, n_sb = cols / a->sb, n_groups = cols / a->group;
    int tiles = (rows + BTRM_QG_TOKENS - 1) / BTRM_QG_TOKENS;
    /* padding tokens of the last tile: zero values, zero scales */
    if (rows % BTRM_QG_TOKENS) {
        size_t t0 = (size_t)(tiles - 1) * BTRM_QG_TOKENS;
        memset(a->q + t0 * (size_t)cols, 0, BTRM_QG_TOKENS * (size_t)cols);
        memset(a->d + t0 * (size_t)n_sb, 0, BTRM_QG_TOKENS * (size_t)n_sb * sizeof *a->d);
        memset(a->bsum + t0 * (size_t)n_groups, 0,
               BTRM_QG_TOKENS * (size_t)n_groups * sizeof *a->bsum);
    }
    for (int i = 0; i < rows; i++) {
        const float *xr = x + (size_t)i * (size_t)ldx;
        int tile = i / BTRM_QG_TOKENS, t = i % BTRM_QG_TOKENS;
        for (int b = 0; b < n_sb; b++) {
            const float *xb = xr + (size_t)b * (size_t)a->sb;
            float amax = 0.0f;
            for (int j = 0; j < a->sb; j++)
                amax = fmaxf(amax, fabsf(xb[j]));
            /* Q8_0 activations keep their scale in fp16, as ggml's block_q8_0
             * does (x / d is rounded with the float32 d, as ggml does), so
             * that the int8 path computes what llama.cpp computes */
            float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
            ((float *)qg_act_d(a, tile, b))[t] =
                a->wtype == BTRM_Q_Q8_0 ? btrm_half_to_float(btrm_float_to_half(d)) : d;
            for (int j = 0; j < a->sb; j++) {
                int e = b * a->sb + j;
                long q = lrintf(xb[j] * id);
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                ((int8_t *)qg_act_q(a, tile, e))[4 * t + e % 4] = (int8_t)q;
            }
        }
        for (int g = 0; g < n_groups; g++) {
            int32_t sum = 0;
            for (int j = 0; j < a->group; j++) {
                int e = g * a->group + j;
                sum += qg_act_q(a, tile, e)[4 * t + e % 4];
            }
            ((int32_t *)qg_act_bsum(a, tile, g))[t] = sum;
        }
    }
    a->rows = rows;
}

/* ------------------------------------------------------------------------ */
/* Weights: one block of each type -> v[sb], s/m per group, D, M. Element
 * positions as documented in quant.c. */

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return btrm_half_to_float(h);
}

/* Q8_0: v = q (int8), or q + 128 with m = 128 for the kernels that want
 * unsigned weights (the same integers: sum (q+128) a - 128 sum a). */
static void unpack_q8_0(const uint8_t *b, uint8_t *v, int32_t *s, int32_t *m, float *D,
                        float *M, int offset)
{
    *D = *M = f16_at(b);
    for (int i = 0; i < 32; i++)
        v[i] = (uint8_t)(b[2 + i] ^ (offset ? 0x80 : 0)); /* int8 + 128 as u8 */
    *s = 1;
    *m = offset ? 128 : 0;
}

static void unpack_q2_k(const uint8_t *b, uint8_t *v, int32_t *s, int32_t *m, float *D,
                        float *M)
{
    /* element 128 h + 32 k + j (j < 32): bits 2k.. of qs[32 h + j] */
    const uint8_t *scales = b, *qs = b + 16;
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 32; j++)
                v[128 * h + 32 * k + j] = (uint8_t)((qs[32 * h + j] >> (2 * k)) & 3);
    for (int g = 0; g < 16; g++) {
        s[g] = scales[g] & 0xF;
        m[g] = scales[g] >> 4;
    }
    *D = f16_at(b + 80);
    *M = f16_at(b + 82);
}

static void unpack_q3_k(const uint8_t *b, uint8_t *v, int32_t *s, int32_t *m, float *D,
                        float *M)
{
    const uint8_t *hm = b, *qs = b + 32, *packed = b + 96;
    /* element 128 h + 32 k + j: bits 2k.. of qs[32 h + j], bit 4h + k of
     * hmask[j]; x = d sc (v - 4) */
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 32; j++)
                v[128 * h + 32 * k + j] = (uint8_t)(((qs[32 * h + j] >> (2 * k)) & 3) |
                                                    ((hm[j] >> (4 * h + k)) & 1) << 2);
    for (int g = 0; g < 16; g++) {
        int low = (packed[g % 8] >> (4 * (g / 8))) & 0xF;
        int high = (packed[8 + g % 4] >> (2 * (g / 4))) & 3;
        s[g] = (low | high << 4) - 32;
        m[g] = 4 * s[g];
    }
    *D = *M = f16_at(b + 108);
}

static void scale_min_k4(int j, const uint8_t *q, int32_t *d, int32_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void unpack_q45_k(const uint8_t *b, uint8_t *v, int32_t *s, int32_t *m, float *D,
                         float *M, int five)
{
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
    /* element 64 p + 32 half + l: a nibble of qs[32 p + l], + 16 when bit
     * 2p + half of qh[l] is set (Q5_K) */
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            uint8_t byte = qs[32 * p + l], high = five ? qh[l] : 0;
            v[64 * p + l] = (uint8_t)((byte & 0xF) | ((high >> (2 * p)) & 1) << 4);
            v[64 * p + 32 + l] = (uint8_t)((byte >> 4) | ((high >> (2 * p + 1)) & 1) << 4);
        }
    for (int g = 0; g < 8; g++)
        scale_min_k4(g, scales, &s[g], &m[g]);
    *D = f16_at(b);
    *M = f16_at(b + 2);
}

static void unpack_q6_k(const uint8_t *b, uint8_t *v, int32_t *s, int32_t *m, float *D,
                        float *M)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    /* element 128 h + 32 k + l: the low (k < 2) or high nibble of
     * ql[64 h + 32 (k % 2) + l], bits 2k.. of qh[32 h + l]; x = d sc (v - 32) */
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                uint8_t byte = ql[64 * h + 32 * (k % 2) + l];
                v[128 * h + 32 * k + l] = (uint8_t)((k < 2 ? byte & 0xF : byte >> 4) |
                                                    ((qh[32 * h + l] >> (2 * k)) & 3) << 4);
            }
    for (int g = 0; g < 16; g++) {
        s[g] = sc[g];
        m[g] = 32 * sc[g];
    }
    *D = *M = f16_at(b + 208);
}

/* Rows [0, rows) of W (row stride row_bytes) into the tile; `offset`: Q8_0
 * as unsigned q + 128 (the AVX512-VNNI kernel). */
static void unpack(btrm_qgemm_ws *ws, int wtype, const uint8_t *w, size_t row_bytes, int rows,
                   int cols, int offset, qg_tile *tile)
{
    int sb = act_sb(wtype), group = act_group(wtype);
    int n_sb = cols / sb, gps = sb / group;
    int n_groups = cols / group;
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        uint8_t *v = ws->v + (size_t)r * (size_t)cols;
        int32_t *s = ws->s + (size_t)r * (size_t)n_groups, *m = ws->m + (size_t)r * (size_t)n_groups;
        float *D = ws->D + (size_t)r * (size_t)n_sb, *M = ws->M + (size_t)r * (size_t)n_sb;
        size_t bytes = (size_t)btrm_quant_block_bytes(wtype);
        for (int b = 0; b < n_sb; b++) {
            const uint8_t *blk = row + (size_t)b * bytes;
            uint8_t *vb = v + (size_t)b * (size_t)sb;
            int32_t *sg = s + (size_t)b * (size_t)gps, *mg = m + (size_t)b * (size_t)gps;
            switch (wtype) {
            case BTRM_Q_Q8_0: unpack_q8_0(blk, vb, sg, mg, &D[b], &M[b], offset); break;
            case BTRM_Q_Q2_K: unpack_q2_k(blk, vb, sg, mg, &D[b], &M[b]); break;
            case BTRM_Q_Q3_K: unpack_q3_k(blk, vb, sg, mg, &D[b], &M[b]); break;
            case BTRM_Q_Q4_K: unpack_q45_k(blk, vb, sg, mg, &D[b], &M[b], 0); break;
            case BTRM_Q_Q5_K: unpack_q45_k(blk, vb, sg, mg, &D[b], &M[b], 1); break;
            case BTRM_Q_Q6_K: unpack_q6_k(blk, vb, sg, mg, &D[b], &M[b]); break;
            default: break;
            }
        }
    }
    *tile = (qg_tile){
        .rows = rows, .cols = cols, .sb = sb, .group = group,
        .min_is_d = wtype == BTRM_Q_Q8_0 || wtype == BTRM_Q_Q3_K || wtype == BTRM_Q_Q6_K,
        .v_signed = wtype == BTRM_Q_Q8_0 && !offset,
        .v = ws->v, .s = ws->s, .m = ws->m, .D = ws->D, .M = ws->M,
    };
}

void btrm_qgemm_ws_free(btrm_qgemm_ws *ws)
{
    if (!ws)
        return;
    free(ws->v);
    free(ws->s);
    free(ws->m);
    free(ws->D);
    free(ws->M);
    memset(ws, 0, sizeof *ws);
}

int btrm_qgemm_ws_init(btrm_qgemm_ws *ws, int max_cols)
{
    memset(ws, 0, sizeof *ws);
    size_t rows = BTRM_QG_ROWS, cols = (size_t)(max_cols > 32 ? max_cols : 32);
    int rc = 0;
    if ((rc = BTRM_CALLOC(ws->v, rows * cols)) || (rc = BTRM_CALLOC(ws->s, rows * (cols / 16))) ||
        (rc = BTRM_CALLOC(ws->m, rows * (cols / 16))) ||
        (rc = BTRM_CALLOC(ws->D, rows * (cols / 32))) ||
        (rc = BTRM_CALLOC(ws->M, rows * (cols / 32)))) {
        btrm_qgemm_ws_free(ws);
        return btrm_error_wrap(rc, "int8 kernel work space");
    }
    ws->cols = max_cols;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The portable kernel: qgemm.h's equation, element by element. */

void btrm_qg_kernel_c(const qg_tile *w, const btrm_qact *a, int tile,
                      float out[BTRM_QG_ROWS][BTRM_QG_TOKENS])
{
    int cols = w->cols, n_sb = cols / w->sb, gps = w->sb / w->group;
    int n_groups = cols / w->group;
    for (int r = 0; r < w->rows; r++) {
        const uint8_t *v = w->v + (size_t)r * (size_t)cols;
        const int32_t *s = w->s + (size_t)r * (size_t)n_groups;
        const int32_t *m = w->m + (size_t)r * (size_t)n_groups;
        for (int t = 0; t < BTRM_QG_TOKENS; t++) {
            float acc = 0.0f;
            for (int b = 0; b < n_sb; b++) {
                int32_t isum = 0, msum = 0;
                for (int g = b * gps; g < (b + 1) * gps; g++) {
                    int32_t gsum = 0;
                    for (int e = g * w->group; e < (g + 1) * w->group; e++) {
                        int wv = w->v_signed ? (int)(int8_t)v[e] : (int)v[e];
                        gsum += wv * qg_act_q(a, tile, e)[4 * t + e % 4];
                    }
                    isum += s[g] * gsum;
                    msum += m[g] * qg_act_bsum(a, tile, g)[t];
                }
                float da = qg_act_d(a, tile, b)[t];
                float Dd = w->D[(size_t)r * (size_t)n_sb + (size_t)b] * da, T;
                if (w->min_is_d) {
                    T = Dd * (float)(isum - msum);
                } else {
                    float Md = w->M[(size_t)r * (size_t)n_sb + (size_t)b] * da;
                    T = Dd * (float)isum - Md * (float)msum;
                }
                acc += T;
            }
            out[r][t] = acc;
        }
    }
}

/* ------------------------------------------------------------------------ */

void btrm_qgemm(btrm_qgemm_ws *ws, const btrm_qact *a, const void *w, size_t row_bytes,
                int w_rows, float *y, int ldy, float beta)
{
    int isa = btrm_qgemm_isa();
    qg_kernel kernel = kernel_of(isa);
    int tiles = (a->rows + BTRM_QG_TOKENS - 1) / BTRM_QG_TOKENS;
    float out[BTRM_QG_ROWS][BTRM_QG_TOKENS];
    const uint8_t *wb = w;
    for (int r0 = 0; r0 < w_rows; r0 += BTRM_QG_ROWS) {
        int nr = w_rows - r0 < BTRM_QG_ROWS ? w_rows - r0 : BTRM_QG_ROWS;
        qg_tile tile;
        unpack(ws, a->wtype, wb + (size_t)r0 * row_bytes, row_bytes, nr, a->cols,
               isa == BTRM_ISA_AVX512VNNI, &tile);
        for (int ti = 0; ti < tiles; ti++) {
            kernel(&tile, a, ti, out);
            int nt = a->rows - ti * BTRM_QG_TOKENS;
            nt = nt < BTRM_QG_TOKENS ? nt : BTRM_QG_TOKENS;
            for (int t = 0; t < nt; t++) {
                float *yt = y + (size_t)(ti * BTRM_QG_TOKENS + t) * (size_t)ldy + (size_t)r0;
                for (int r = 0; r < nr; r++)
                    yt[r] = beta != 0.0f ? yt[r] + out[r][t] : out[r][t];
            }
        }
    }
}
