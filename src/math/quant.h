/* quant.h: ggml's tensor encodings (the weights of GGUF files) on plain
 * buffers: block layouts, row sizes, dequantisation into a GEMM input
 * precision, and the 8-bit quantisation of activations that the integer
 * kernels (qgemm.h) use. Math layer: no files, no MPI.
 *
 * The layouts and formulas are ggml's (ggml/src/ggml-common.h and
 * ggml-quants.c are the specification; this is an independent
 * implementation). Types are numbered as ggml numbers them, so a GGUF
 * tensor's type passes through unchanged. A row of n values of a block type
 * is n / block consecutive blocks; n must be a multiple of the block size.
 * fp16 fields are IEEE binary16, little-endian; all multi-byte fields are
 * read with memcpy (GGUF data need not be aligned to their size).
 *
 *   type  block bytes  value of element i of a block
 *   F32       1     4  the float
 *   F16       1     2  binary16
 *   BF16      1     2  bfloat16
 *   Q4_0     32    18  d * (q - 8); d fp16, q 4-bit: byte j low nibble = element j,
 *                      high nibble = element j + 16
 *   Q4_1     32    20  d * q + m; d, m fp16, q as Q4_0
 *   Q5_0     32    22  d * (q - 16); d fp16, qh u32 (bit j = 5th bit of element j),
 *                      low 4 bits as Q4_0
 *   Q5_1     32    24  d * q + m; d, m fp16, qh, qs as Q5_0
 *   Q8_0     32    34  d * q; d fp16, q int8
 *   Q2_K    256    84  d * sc * q - dmin * m over 16 groups of 16; scales[16] (sc low
 *                      nibble, m high nibble), qs[64] 2-bit, d, dmin fp16
 *   Q3_K    256   110  d * (sc - 32) * (q - 4 * !hbit) over 16 groups of 16; hmask[32],
 *                      qs[64] 2-bit, scales[12] (16 6-bit values), d fp16
 *   Q4_K    256   144  d * sc * q - dmin * m over 8 groups of 32; d, dmin fp16,
 *                      scales[12] (8 6-bit sc and 8 6-bit m), qs[128] 4-bit
 *   Q5_K    256   176  as Q4_K with a 5th bit per element from qh[32]
 *   Q6_K    256   210  d * sc * (q - 32) over 16 groups of 16; ql[128] low 4 bits,
 *                      qh[64] high 2 bits, sc int8[16], d fp16
 *   Q8_K    256   292  d * q; d float32, q int8[256], bsums int16[16] (sums of q)
 * quant.c spells out where each bit of each element lives. */
#ifndef BTRM_QUANT_H
#define BTRM_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml's type numbers (only those btrm reads; btrm_quant_name covers the
 * rest for messages). */
enum btrm_qtype {
    BTRM_Q_F32 = 0,
    BTRM_Q_F16 = 1,
    BTRM_Q_Q4_0 = 2,
    BTRM_Q_Q4_1 = 3,
    BTRM_Q_Q5_0 = 6,
    BTRM_Q_Q5_1 = 7,
    BTRM_Q_Q8_0 = 8,
    BTRM_Q_Q2_K = 10,
    BTRM_Q_Q3_K = 11,
    BTRM_Q_Q4_K = 12,
    BTRM_Q_Q5_K = 13,
    BTRM_Q_Q6_K = 14,
    BTRM_Q_Q8_K = 15,
    BTRM_Q_BF16 = 30,
};
#define BTRM_QK 256 /* values per K-quant super-block */

/* Whether btrm reads the type. */
int btrm_quant_supported(int type);
/* Values per block (1 for F32/F16/BF16) and bytes per block; 0 for a type
 * btrm does not read. */
int btrm_quant_block(int type);
int btrm_quant_block_bytes(int type);
/* Bytes of a row of n values; 0 when the type is not read or n is not a
 * multiple of its block. */
size_t btrm_quant_row_bytes(int type, int64_t n);
/* "Q4_K", "IQ2_XS", ... for any ggml type number; "type N" (written into
 * buf) for numbers ggml does not define. */
const char *btrm_quant_name(int type, char *buf, size_t size);
/* "F32, F16, BF16, Q4_0, ..." the types btrm reads, for messages. */
const char *btrm_quant_supported_names(void);

/* IEEE binary16 and bfloat16 fields convert with dtype.h's functions. */

/* Dequantisation of n values (a multiple of the type's block) starting at
 * src into the GEMM input precision prec (gemm.h: BTRM_PREC_FP32 -> float
 * dst[n], BTRM_PREC_BF16 -> uint16_t dst[n] bfloat16, rounded to nearest
 * even from the float32 value). Each value is computed in float32 exactly as
 * ggml's dequantize_row_* does (same products, same order), so an F32 model
 * of the dequantised weights is bitwise the same model. */
void btrm_quant_dequant(int type, const void *src, int64_t n, int prec, void *dst);
/* The same into float32 (prec = BTRM_PREC_FP32). */
void btrm_quant_dequant_f32(int type, const void *src, int64_t n, float *dst);

#endif
