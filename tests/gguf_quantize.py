#!/usr/bin/env python3
"""tests/gguf_quantize.py: read, write and convert GGUF files with nothing but
numpy and struct (an independent GGUF writer, quantisers and dequantisers for
btrm's tests and benchmarks).

    gguf_quantize.py IN.gguf OUT.gguf --type f32|f16|bf16|q4_0|q4_1|q5_0|q5_1|q8_0|
                                             q2_k|q3_k|q4_k|q5_k|q6_k|q8_k
        every 2-D tensor converted to the type (1-D tensors, the norms and
        biases, stay F32, as llama.cpp's quantizers keep them); matrices whose
        rows are not a multiple of the type's block (32, or 256 for the
        K-quants) become F16; metadata copied unchanged
    gguf_quantize.py IN.gguf OUT.gguf --type ... --raw-type NAME=ID
        additionally stores tensor NAME's bytes under ggml type number ID
        without converting them (ID 20 = IQ4_NL: a type btrm does not read
        whose blocks have Q4_0's size) -- for error tests
    gguf_quantize.py --synthetic ARCH OUT.gguf [--dim N] [--layers N] [--heads N]
        [--kv-heads N] [--head-dim N] [--ffn N] [--type T] [--vocab-from M.gguf]
        [--seed S] [--window N] [--context N]
        a model of architecture ARCH (llama, qwen2, qwen3, gemma2, gemma3, phi3)
        with random weights, its keys and tensor names as llama.cpp's converter
        writes them (synthetic_model below)
    gguf_quantize.py --info FILE.gguf
        prints the metadata and tensor table

The encodings are ggml's (ggml-common.h block layouts; ggml-quants.c's
dequantize_row_* formulas, evaluated here in float32 in the same order, so a
file converted to F32 holds exactly the values btrm and llama.cpp compute).
The quantisers are this file's own, simple ones (not ggml's searches), each
with a bound on its error per value (ERROR_BOUND, checked by tests/quant.sh):
  Q8_0, Q4_0, Q5_0       d = max|x| / (2^(b-1) - 1) per block of 32,
                          q = round(x / d): |err| <= d / 2 (plus fp16(d))
  Q4_1, Q5_1             d = (max - min) / (2^b - 1), m = min:
                          |err| <= d / 2 (plus fp16(d), fp16(m))
  Q2_K, Q4_K, Q5_K       per group: scale (max - min') / (2^b - 1) with
                          min' = min(min, 0), both 4- or 6-bit multiples of a
                          super-block fp16 d / dmin
  Q3_K, Q6_K             per group: scale max|x| / (2^(b-1) - 1), a 6- or
                          8-bit multiple of a super-block d
  Q8_K                   d = max|x| / 127 per 256, float32
F16 and BF16 round to nearest even.

As a module: read_gguf(path) -> (version, kvs, tensors, alignment), write_gguf
(path, kvs, tensors, alignment), convert(type, x) / as_f32(type, raw, n), and
synthetic_model(...) for bench/make-llama-gguf.py and the tests.
"""
import struct
import sys

import numpy as np

GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
GGML_Q4_0, GGML_Q4_1, GGML_Q5_0, GGML_Q5_1 = 2, 3, 6, 7
GGML_Q2_K, GGML_Q3_K, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K, GGML_Q8_K = 10, 11, 12, 13, 14, 15
GGML_IQ4_NL = 20  # not read by btrm; same block size as Q4_0 (error tests)
TYPE_NAMES = {"f32": GGML_F32, "f16": GGML_F16, "bf16": GGML_BF16, "q4_0": GGML_Q4_0,
              "q4_1": GGML_Q4_1, "q5_0": GGML_Q5_0, "q5_1": GGML_Q5_1, "q8_0": GGML_Q8_0,
              "q2_k": GGML_Q2_K, "q3_k": GGML_Q3_K, "q4_k": GGML_Q4_K, "q5_k": GGML_Q5_K,
              "q6_k": GGML_Q6_K, "q8_k": GGML_Q8_K}
# (values per block, bytes per block)
BLOCKS = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_BF16: (1, 2), GGML_Q4_0: (32, 18),
          GGML_Q4_1: (32, 20), GGML_Q5_0: (32, 22), GGML_Q5_1: (32, 24), GGML_Q8_0: (32, 34),
          GGML_Q2_K: (256, 84), GGML_Q3_K: (256, 110), GGML_Q4_K: (256, 144),
          GGML_Q5_K: (256, 176), GGML_Q6_K: (256, 210), GGML_Q8_K: (256, 292),
          GGML_IQ4_NL: (32, 18)}
# GGUF metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return s

    def value(self, vtype):
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            etype, count = self.take("<I"), self.take("<Q")
            return (etype, [self.value(etype) for _ in range(count)])
        return self.take(SCALAR_FMT[vtype])


def tensor_bytes(ttype, ne):
    n = int(np.prod(ne))
    if ttype not in BLOCKS:
        raise ValueError(f"tensor type {ttype}")
    block, size = BLOCKS[ttype]
    return n // block * size


def read_gguf(path):
    """-> (version, kvs [(key, vtype, value)], tensors [(name, ne, ttype, bytes)], alignment)"""
    data = open(path, "rb").read()
    r = Reader(data)
    assert data[:4] == b"GGUF", f"{path}: not GGUF"
    r.pos = 4
    version = r.take("<I")
    n_tensors, n_kv = r.take("<Q"), r.take("<Q")
    kvs = []
    for _ in range(n_kv):
        key = r.string().decode()
        vtype = r.take("<I")
        kvs.append((key, vtype, r.value(vtype)))
    infos = []
    for _ in range(n_tensors):
        name = r.string().decode()
        n_dims = r.take("<I")
        ne = [r.take("<Q") for _ in range(n_dims)]
        ttype, offset = r.take("<I"), r.take("<Q")
        infos.append((name, ne, ttype, offset))
    alignment = 32
    for key, vtype, value in kvs:
        if key == "general.alignment":
            alignment = value
    start = (r.pos + alignment - 1) // alignment * alignment
    tensors = []
    for name, ne, ttype, offset in infos:
        n = tensor_bytes(ttype, ne)
        tensors.append((name, ne, ttype, data[start + offset:start + offset + n]))
    return version, kvs, tensors, alignment


def pack_value(vtype, value):
    if vtype == STRING:
        b = value.encode() if isinstance(value, str) else value
        return struct.pack("<Q", len(b)) + b
    if vtype == ARRAY:
        etype, items = value
        out = [struct.pack("<IQ", etype, len(items))]
        if etype in SCALAR_FMT and etype != BOOL:
            out.append(np.asarray(items, dtype=np.dtype(SCALAR_FMT[etype])).tobytes())
        else:
            out.extend(pack_value(etype, v) for v in items)
        return b"".join(out)
    return struct.pack(SCALAR_FMT[vtype], value)


def write_gguf(path, kvs, tensors, alignment=32, version=3):
    """tensors: [(name, ne, ttype, bytes)] with ne[0] innermost."""
    head = [b"GGUF", struct.pack("<IQQ", version, len(tensors), len(kvs))]
    for key, vtype, value in kvs:
        head += [pack_value(STRING, key), struct.pack("<I", vtype), pack_value(vtype, value)]
    offset = 0
    offsets = []
    for name, ne, ttype, raw in tensors:
        offsets.append(offset)
        offset = (offset + len(raw) + alignment - 1) // alignment * alignment
    for (name, ne, ttype, raw), off in zip(tensors, offsets):
        head += [pack_value(STRING, name), struct.pack("<I", len(ne)),
                 struct.pack(f"<{len(ne)}Q", *ne), struct.pack("<IQ", ttype, off)]
    header = b"".join(head)
    with open(path, "wb") as f:
        f.write(header)
        f.write(b"\0" * ((-len(header)) % alignment))
        for (name, ne, ttype, raw), off in zip(tensors, offsets):
            f.write(raw)
            f.write(b"\0" * ((-len(raw)) % alignment))


def to_f16(x):
    return np.asarray(x, dtype=np.float32).astype("<f2").tobytes()


def to_bf16(x):
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    # round to nearest even on the 16 dropped bits
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype("<u2").tobytes()


# --------------------------------------------------------------------------
# quantisers: x float32 [n] (n a multiple of the block) -> bytes

F4 = np.float32  # (not the metadata type F32)


def _f16(v):
    """float32 values rounded to fp16 and back (what a block stores)."""
    return np.asarray(v, dtype=F4).astype("<f2").astype(F4)


def _f16_bytes(v):
    return np.asarray(v, dtype=F4).astype("<f2").view(np.uint8).reshape(-1, 2)


def _safe_inv(d):
    d = np.asarray(d, dtype=F4)
    return np.where(d != 0, F4(1) / np.where(d != 0, d, F4(1)), F4(0)).astype(F4)


def _round(v):
    """round half away from zero, as C's roundf"""
    v = np.asarray(v, dtype=F4)
    return np.trunc(v + np.copysign(F4(0.5), v))


def _blocks(x, n):
    return np.asarray(x, dtype=F4).reshape(-1, n)


def quantize_q8_0(x):
    """ggml's reference quantiser (quantize_row_q8_0_ref): d = max|x| / 127."""
    x = _blocks(x, 32)
    d = (np.max(np.abs(x), axis=1) / F4(127)).astype(F4)
    q = _round(x * _safe_inv(d)[:, None]).astype(np.int8)
    out = np.empty((x.shape[0], 34), dtype=np.uint8)
    out[:, :2] = _f16_bytes(d)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def _sym_scale(x, levels):
    """d per block so that x / d lies in [-levels, levels]"""
    return (np.max(np.abs(x), axis=1) / F4(levels)).astype(F4)


def _pack_nibbles(q):
    """q [nb, 32] in 0..15 -> [nb, 16]: byte j = q[j] | q[j + 16] << 4"""
    return (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)


def _qh_bits(q):
    """the 5th bits of q [nb, 32] as a little-endian u32 (bit j = element j)"""
    bits = ((q >> 4) & 1).astype(np.uint64) << np.arange(32, dtype=np.uint64)
    return bits.sum(axis=1).astype("<u4").view(np.uint8).reshape(-1, 4)


def quantize_q4_0(x):
    x = _blocks(x, 32)
    d = _f16(_sym_scale(x, 7))
    q = np.clip(_round(x * _safe_inv(d)[:, None]) + 8, 0, 15).astype(np.uint8)
    out = np.empty((x.shape[0], 18), dtype=np.uint8)
    out[:, :2] = _f16_bytes(d)
    out[:, 2:] = _pack_nibbles(q)
    return out.tobytes()


def quantize_q5_0(x):
    x = _blocks(x, 32)
    d = _f16(_sym_scale(x, 15))
    q = np.clip(_round(x * _safe_inv(d)[:, None]) + 16, 0, 31).astype(np.uint8)
    out = np.empty((x.shape[0], 22), dtype=np.uint8)
    out[:, :2] = _f16_bytes(d)
    out[:, 2:6] = _qh_bits(q)
    out[:, 6:] = _pack_nibbles(q & 15)
    return out.tobytes()


def _affine(x, levels):
    """d = (max - min) / levels and m = min, both fp16-rounded"""
    lo, hi = np.min(x, axis=1), np.max(x, axis=1)
    d = _f16((hi - lo) / F4(levels))
    m = _f16(lo)
    return d, m


def quantize_q4_1(x):
    x = _blocks(x, 32)
    d, m = _affine(x, 15)
    q = np.clip(_round((x - m[:, None]) * _safe_inv(d)[:, None]), 0, 15).astype(np.uint8)
    out = np.empty((x.shape[0], 20), dtype=np.uint8)
    out[:, :2], out[:, 2:4] = _f16_bytes(d), _f16_bytes(m)
    out[:, 4:] = _pack_nibbles(q)
    return out.tobytes()


def quantize_q5_1(x):
    x = _blocks(x, 32)
    d, m = _affine(x, 31)
    q = np.clip(_round((x - m[:, None]) * _safe_inv(d)[:, None]), 0, 31).astype(np.uint8)
    out = np.empty((x.shape[0], 24), dtype=np.uint8)
    out[:, :2], out[:, 2:4] = _f16_bytes(d), _f16_bytes(m)
    out[:, 4:8] = _qh_bits(q)
    out[:, 8:] = _pack_nibbles(q & 15)
    return out.tobytes()


def _kq_affine(x, group, levels, scale_bits):
    """K-quants x = d sc q - dmin m: groups of `group` values in super-blocks of
    256; per group min' = min(min, 0), scale (max - min') / levels; the group
    scales and -min' as scale_bits-bit multiples of d, dmin (fp16)."""
    nb = x.shape[0]
    g = x.reshape(nb, 256 // group, group)
    lo = np.minimum(np.min(g, axis=2), F4(0))
    hi = np.max(g, axis=2)
    scale = ((hi - lo) / F4(levels)).astype(F4)
    mins = (-lo).astype(F4)
    top = F4(2 ** scale_bits - 1)
    d = _f16(np.max(scale, axis=1) / top)
    dmin = _f16(np.max(mins, axis=1) / top)
    sc = np.clip(_round(scale * _safe_inv(d)[:, None]), 0, top).astype(np.int32)
    m = np.clip(_round(mins * _safe_inv(dmin)[:, None]), 0, top).astype(np.int32)
    # the stored group scale and min, as the dequantiser computes them
    ds = (d[:, None] * sc.astype(F4)).astype(F4)
    dm = (dmin[:, None] * m.astype(F4)).astype(F4)
    q = np.clip(_round((g + dm[:, :, None]) * _safe_inv(ds)[:, :, None]), 0, levels).astype(np.int32)
    return d, dmin, sc, m, q.reshape(nb, 256)


def _pack_k4_scales(sc, m):
    """8 6-bit scales and mins -> 12 bytes (the inverse of get_scale_min_k4)"""
    out = np.zeros((sc.shape[0], 12), dtype=np.int32)
    for j in range(4):
        out[:, j] = sc[:, j] | ((sc[:, j + 4] >> 4) << 6)
        out[:, j + 4] = m[:, j] | ((m[:, j + 4] >> 4) << 6)
        out[:, j + 8] = (sc[:, j + 4] & 15) | ((m[:, j + 4] & 15) << 4)
    return out.astype(np.uint8)


def quantize_q2_k(x):
    x = _blocks(x, 256)
    d, dmin, sc, m, q = _kq_affine(x, 16, 3, 4)
    nb = x.shape[0]
    qs = (q.reshape(nb, 2, 4, 2, 16) << (2 * np.arange(4)).reshape(1, 1, 4, 1, 1)).sum(axis=2)
    out = np.empty((nb, 84), dtype=np.uint8)
    out[:, :16] = (sc | (m << 4)).astype(np.uint8)
    out[:, 16:80] = qs.reshape(nb, 64).astype(np.uint8)
    out[:, 80:82], out[:, 82:84] = _f16_bytes(d), _f16_bytes(dmin)
    return out.tobytes()


def _quantize_q45_k(x, five):
    x = _blocks(x, 256)
    d, dmin, sc, m, q = _kq_affine(x, 32, 31 if five else 15, 6)
    nb = x.shape[0]
    q = q.reshape(nb, 4, 2, 32)  # p, half, l
    low = q & 15
    out = np.empty((nb, 176 if five else 144), dtype=np.uint8)
    out[:, :2], out[:, 2:4] = _f16_bytes(d), _f16_bytes(dmin)
    out[:, 4:16] = _pack_k4_scales(sc, m)
    if five:
        shifts = 2 * np.arange(4).reshape(1, 4, 1, 1) + np.arange(2).reshape(1, 1, 2, 1)
        out[:, 16:48] = (((q >> 4) & 1) << shifts).sum(axis=(1, 2)).astype(np.uint8)
    out[:, 48 if five else 16:] = (low[:, :, 0, :] | (low[:, :, 1, :] << 4)).reshape(nb, 128).astype(np.uint8)
    return out.tobytes()


def quantize_q4_k(x):
    return _quantize_q45_k(x, False)


def quantize_q5_k(x):
    return _quantize_q45_k(x, True)


def _kq_sym(x, levels, scale_levels):
    """x = d sc q' (q' in [-levels-1, levels]) over 16 groups of 16; sc an
    integer multiple of the super-block d in [-scale_levels, scale_levels]"""
    nb = x.shape[0]
    g = x.reshape(nb, 16, 16)
    scale = (np.max(np.abs(g), axis=2) / F4(levels)).astype(F4)
    d = _f16(np.max(scale, axis=1) / F4(scale_levels))
    sc = np.clip(_round(scale * _safe_inv(d)[:, None]), -scale_levels, scale_levels).astype(np.int32)
    ds = (d[:, None] * sc.astype(F4)).astype(F4)
    q = np.clip(_round(g * _safe_inv(ds)[:, :, None]), -levels - 1, levels).astype(np.int32)
    return d, sc, q.reshape(nb, 256)


def quantize_q3_k(x):
    x = _blocks(x, 256)
    d, sc, q = _kq_sym(x, 3, 31)
    nb = x.shape[0]
    u = (q + 4).reshape(nb, 2, 4, 2, 16)  # h, k, c, l
    qs = ((u & 3) << (2 * np.arange(4)).reshape(1, 1, 4, 1, 1)).sum(axis=2)
    hm = (((u >> 2) & 1) << (4 * np.arange(2).reshape(1, 2, 1, 1, 1) +
                             np.arange(4).reshape(1, 1, 4, 1, 1))).sum(axis=(1, 2))
    s6 = (sc + 32).astype(np.int32)
    packed = np.zeros((nb, 12), dtype=np.int32)
    for j in range(16):
        packed[:, j % 8] |= (s6[:, j] & 15) << (4 * (j // 8))
        packed[:, 8 + j % 4] |= ((s6[:, j] >> 4) & 3) << (2 * (j // 4))
    out = np.empty((nb, 110), dtype=np.uint8)
    out[:, :32] = hm.reshape(nb, 32).astype(np.uint8)
    out[:, 32:96] = qs.reshape(nb, 64).astype(np.uint8)
    out[:, 96:108] = packed.astype(np.uint8)
    out[:, 108:110] = _f16_bytes(d)
    return out.tobytes()


def quantize_q6_k(x):
    x = _blocks(x, 256)
    d, sc, q = _kq_sym(x, 31, 127)
    nb = x.shape[0]
    u = (q + 32).reshape(nb, 2, 4, 32)  # h, k, l
    ql = (u[:, :, 0:2, :] & 15) | ((u[:, :, 2:4, :] & 15) << 4)
    qh = (((u >> 4) & 3) << (2 * np.arange(4)).reshape(1, 1, 4, 1)).sum(axis=2)
    out = np.empty((nb, 210), dtype=np.uint8)
    out[:, :128] = ql.reshape(nb, 128).astype(np.uint8)
    out[:, 128:192] = qh.reshape(nb, 64).astype(np.uint8)
    out[:, 192:208] = sc.astype(np.int8).view(np.uint8)
    out[:, 208:210] = _f16_bytes(d)
    return out.tobytes()


def quantize_q8_k(x):
    x = _blocks(x, 256)
    d = (np.max(np.abs(x), axis=1) / F4(127)).astype(F4)
    q = np.clip(_round(x * _safe_inv(d)[:, None]), -127, 127).astype(np.int8)
    out = np.empty((x.shape[0], 292), dtype=np.uint8)
    out[:, :4] = d.astype("<f4").view(np.uint8).reshape(-1, 4)
    out[:, 4:260] = q.view(np.uint8)
    out[:, 260:] = q.reshape(-1, 16, 16).astype(np.int16).sum(axis=2).astype("<i2").view(np.uint8).reshape(-1, 32)
    return out.tobytes()


# --------------------------------------------------------------------------
# dequantisers: ggml's formulas in float32, in ggml's order

def _blk(raw, size):
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)


def _h(b, at):
    return b[:, at:at + 2].copy().view("<f2").astype(F4).reshape(-1)


def _nibbles(qs):
    """[nb, 16] -> [nb, 32]: element j low nibble of byte j, j + 16 high"""
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int32)


def _qh(b, at):
    qh = b[:, at:at + 4].copy().view("<u4").reshape(-1, 1).astype(np.uint64)
    return ((qh >> np.arange(32, dtype=np.uint64)) & 1).astype(np.int32)


def dequantize_q4_0(raw):
    b = _blk(raw, 18)
    return ((_nibbles(b[:, 2:]) - 8).astype(F4) * _h(b, 0)[:, None]).reshape(-1)


def dequantize_q4_1(raw):
    b = _blk(raw, 20)
    return (_nibbles(b[:, 4:]).astype(F4) * _h(b, 0)[:, None] + _h(b, 2)[:, None]).reshape(-1)


def dequantize_q5_0(raw):
    b = _blk(raw, 22)
    q = _nibbles(b[:, 6:]) | (_qh(b, 2) << 4)
    return ((q - 16).astype(F4) * _h(b, 0)[:, None]).reshape(-1)


def dequantize_q5_1(raw):
    b = _blk(raw, 24)
    q = _nibbles(b[:, 8:]) | (_qh(b, 4) << 4)
    return (q.astype(F4) * _h(b, 0)[:, None] + _h(b, 2)[:, None]).reshape(-1)


def dequantize_q8_0(raw, n=None):
    b = _blk(raw, 34)
    q = b[:, 2:].copy().view(np.int8).astype(F4)
    out = (q * _h(b, 0)[:, None]).reshape(-1)
    return out if n is None else out[:n]


def _k4_scales(s):
    """12 bytes -> (sc, m) [nb, 8] (get_scale_min_k4)"""
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), dtype=np.int32)
    m = np.empty_like(sc)
    for j in range(8):
        if j < 4:
            sc[:, j], m[:, j] = s[:, j] & 63, s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 15) | ((s[:, j - 4] >> 6) << 4)
            m[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc, m


def dequantize_q2_k(raw):
    b = _blk(raw, 84)
    nb = b.shape[0]
    sc = b[:, :16].astype(np.int32)
    qs = b[:, 16:80].astype(np.int32).reshape(nb, 2, 1, 2, 16)
    q = (qs >> (2 * np.arange(4)).reshape(1, 1, 4, 1, 1)) & 3  # h, k, c, l
    d, dmin = _h(b, 80)[:, None], _h(b, 82)[:, None]
    dl = (d * (sc & 15).astype(F4)).reshape(nb, 2, 4, 2, 1)
    ml = (dmin * (sc >> 4).astype(F4)).reshape(nb, 2, 4, 2, 1)
    return (dl * q.astype(F4) - ml).reshape(-1)


def dequantize_q3_k(raw):
    b = _blk(raw, 110)
    nb = b.shape[0]
    hm = b[:, :32].astype(np.int32).reshape(nb, 1, 1, 2, 16)
    qs = b[:, 32:96].astype(np.int32).reshape(nb, 2, 1, 2, 16)
    packed = b[:, 96:108].astype(np.int32)
    scales = np.empty((nb, 16), dtype=np.int32)
    for j in range(16):
        low = (packed[:, j % 8] >> (4 * (j // 8))) & 15
        high = (packed[:, 8 + j % 4] >> (2 * (j // 4))) & 3
        scales[:, j] = (low | (high << 4)) - 32
    k = np.arange(4).reshape(1, 1, 4, 1, 1)
    h = np.arange(2).reshape(1, 2, 1, 1, 1)
    low = (qs >> (2 * k)) & 3
    high = (hm >> (4 * h + k)) & 1
    v = low - np.where(high == 1, 0, 4)
    dl = (_h(b, 108)[:, None] * scales.astype(F4)).reshape(nb, 2, 4, 2, 1)
    return (dl * v.astype(F4)).reshape(-1)


def _dequantize_q45_k(raw, five):
    b = _blk(raw, 176 if five else 144)
    nb = b.shape[0]
    sc, m = _k4_scales(b[:, 4:16])
    qs = b[:, 48 if five else 16:].astype(np.int32).reshape(nb, 4, 1, 32)
    q = np.concatenate([qs & 15, qs >> 4], axis=2)  # p, half, l
    if five:
        qh = b[:, 16:48].astype(np.int32).reshape(nb, 1, 1, 32)
        shift = 2 * np.arange(4).reshape(1, 4, 1, 1) + np.arange(2).reshape(1, 1, 2, 1)
        q = q + np.where((qh >> shift) & 1, 16, 0)
    d, dmin = _h(b, 0)[:, None], _h(b, 2)[:, None]
    d1 = (d * sc.astype(F4)).reshape(nb, 4, 2, 1)
    m1 = (dmin * m.astype(F4)).reshape(nb, 4, 2, 1)
    return (d1 * q.astype(F4) - m1).reshape(-1)


def dequantize_q4_k(raw):
    return _dequantize_q45_k(raw, False)


def dequantize_q5_k(raw):
    return _dequantize_q45_k(raw, True)


def dequantize_q6_k(raw):
    b = _blk(raw, 210)
    nb = b.shape[0]
    ql = b[:, :128].astype(np.int32).reshape(nb, 2, 2, 32)  # h, k % 2, l
    qh = b[:, 128:192].astype(np.int32).reshape(nb, 2, 1, 32)
    sc = b[:, 192:208].copy().view(np.int8).astype(F4).reshape(nb, 2, 4, 2, 1)
    low = np.concatenate([ql & 15, ql >> 4], axis=2)  # k = 0, 1 low nibbles; 2, 3 high
    q = (low | (((qh >> (2 * np.arange(4).reshape(1, 1, 4, 1))) & 3) << 4)) - 32
    d = _h(b, 208).reshape(nb, 1, 1, 1, 1)
    return ((d * sc) * q.reshape(nb, 2, 4, 2, 16).astype(F4)).reshape(-1)


def dequantize_q8_k(raw):
    b = _blk(raw, 292)
    d = b[:, :4].copy().view("<f4").reshape(-1, 1)
    q = b[:, 4:260].copy().view(np.int8).astype(F4)
    return (d * q).reshape(-1)


QUANTIZE = {GGML_Q4_0: quantize_q4_0, GGML_Q4_1: quantize_q4_1, GGML_Q5_0: quantize_q5_0,
            GGML_Q5_1: quantize_q5_1, GGML_Q8_0: quantize_q8_0, GGML_Q2_K: quantize_q2_k,
            GGML_Q3_K: quantize_q3_k, GGML_Q4_K: quantize_q4_k, GGML_Q5_K: quantize_q5_k,
            GGML_Q6_K: quantize_q6_k, GGML_Q8_K: quantize_q8_k}
DEQUANTIZE = {GGML_Q4_0: dequantize_q4_0, GGML_Q4_1: dequantize_q4_1, GGML_Q5_0: dequantize_q5_0,
              GGML_Q5_1: dequantize_q5_1, GGML_Q8_0: dequantize_q8_0, GGML_Q2_K: dequantize_q2_k,
              GGML_Q3_K: dequantize_q3_k, GGML_Q4_K: dequantize_q4_k, GGML_Q5_K: dequantize_q5_k,
              GGML_Q6_K: dequantize_q6_k, GGML_Q8_K: dequantize_q8_k}


def as_f32(ttype, raw, n):
    if ttype == GGML_F32:
        return np.frombuffer(raw, dtype="<f4")[:n]
    if ttype == GGML_F16:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)[:n]
    if ttype == GGML_BF16:
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)[:n]
    if ttype in DEQUANTIZE:
        return DEQUANTIZE[ttype](raw)[:n]
    raise ValueError(f"cannot read tensor type {ttype}")


def convert(ttype, x):
    if ttype == GGML_F32:
        return np.asarray(x, dtype="<f4").tobytes()
    if ttype == GGML_F16:
        return to_f16(x)
    if ttype == GGML_BF16:
        return to_bf16(x)
    if ttype in QUANTIZE:
        return QUANTIZE[ttype](np.asarray(x, dtype=np.float32).reshape(-1))
    raise ValueError(ttype)


def storage_type(want, cols):
    """the type a matrix with rows of `cols` values gets: want, or F16 when its
    blocks do not divide the rows"""
    return want if cols % BLOCKS[want][0] == 0 else GGML_F16


# --------------------------------------------------------------------------
# synthetic models

# What each architecture's converter writes beyond Llama's tensors and keys
# (llama.cpp's llama-arch.cpp tensor names, convert_hf_to_gguf.py keys).
ARCHS = {
    "llama": {},
    "qwen2": {"qkv_bias": True, "add_bos": False},
    "qwen3": {"qk_norm": True, "add_bos": False},
    "gemma2": {"post_norms": True, "window": 4096, "softcap": (5.0, 30.0), "key_length": True},
    "gemma3": {"post_norms": True, "qk_norm": True, "window": 512, "key_length": True,
               "rope_base": 1e6},
    "phi3": {"fused": True, "window": 2047},
}


def synthetic_model(arch, out, dim=256, layers=2, heads=4, kv_heads=2, head_dim=None, ffn=512,
                    want=GGML_F32, vocab_from=None, seed=1, window=None, context=4096,
                    rope_linear=None, name=None, add_bos=None):
    """Writes a model of architecture `arch` with random weights to `out`:
    matrices N(0, 1/in), norm weights 1 + N(0, 0.1^2), biases N(0, 0.1^2).
    The tokenizer.* keys (and so the vocabulary size) are copied from
    vocab_from; add_bos (None: the architecture's usual value) sets
    tokenizer.ggml.add_bos_token. Returns the tensors written."""
    spec = ARCHS[arch]
    _, src_kvs, src_tensors, _ = read_gguf(vocab_from)
    vocab = [len(v[1]) for k, t, v in src_kvs if k == "tokenizer.ggml.tokens"][0]
    hd = head_dim or dim // heads
    q_dim, kv_dim = heads * hd, kv_heads * hd
    a = arch
    kvs = [("general.architecture", STRING, arch),
           ("general.name", STRING, name or f"synthetic-d{dim}-l{layers}"),
           (f"{a}.context_length", U32, context),
           (f"{a}.embedding_length", U32, dim),
           (f"{a}.block_count", U32, layers),
           (f"{a}.feed_forward_length", U32, ffn),
           (f"{a}.attention.head_count", U32, heads),
           (f"{a}.attention.head_count_kv", U32, kv_heads),
           (f"{a}.rope.dimension_count", U32, hd),
           (f"{a}.rope.freq_base", F32, spec.get("rope_base", 500000.0 if a == "llama" else 10000.0)),
           (f"{a}.attention.layer_norm_rms_epsilon", F32, 1e-6 if a.startswith("gemma") else 1e-5)]
    if spec.get("key_length") or head_dim:
        kvs += [(f"{a}.attention.key_length", U32, hd), (f"{a}.attention.value_length", U32, hd)]
    if "window" in spec or window:
        kvs.append((f"{a}.attention.sliding_window", U32, window or spec["window"]))
    if "softcap" in spec:
        kvs += [(f"{a}.attn_logit_softcapping", F32, spec["softcap"][0]),
                (f"{a}.final_logit_softcapping", F32, spec["softcap"][1])]
    if rope_linear:
        kvs += [(f"{a}.rope.scaling.type", STRING, "linear"),
                (f"{a}.rope.scaling.factor", F32, float(rope_linear))]
    tok = [kv for kv in src_kvs if kv[0].startswith("tokenizer.")
           and kv[0] != "tokenizer.ggml.add_bos_token"]
    bos = spec.get("add_bos", True) if add_bos is None else add_bos
    kvs += tok + [("tokenizer.ggml.add_bos_token", BOOL, bool(bos))]
    rng = np.random.default_rng(seed)
    tensors = []

    def matrix(tname, rows, cols):
        x = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(1 / np.sqrt(cols))
        t = storage_type(want, cols)
        tensors.append((tname, [cols, rows], t, convert(t, x)))

    def vector(tname, n, center=1.0):
        v = (center + 0.1 * rng.standard_normal(n)).astype("<f4")
        tensors.append((tname, [n], GGML_F32, v.tobytes()))

    matrix("token_embd.weight", vocab, dim)
    vector("output_norm.weight", dim)
    if a not in ("gemma2", "gemma3"):  # Gemma ties the classifier to the embedding
        matrix("output.weight", vocab, dim)
    for l in range(layers):
        b = f"blk.{l}."
        vector(b + "attn_norm.weight", dim)
        if spec.get("fused"):
            matrix(b + "attn_qkv.weight", q_dim + 2 * kv_dim, dim)
        else:
            matrix(b + "attn_q.weight", q_dim, dim)
            matrix(b + "attn_k.weight", kv_dim, dim)
            matrix(b + "attn_v.weight", kv_dim, dim)
        if spec.get("qkv_bias"):
            vector(b + "attn_q.bias", q_dim, 0.0)
            vector(b + "attn_k.bias", kv_dim, 0.0)
            vector(b + "attn_v.bias", kv_dim, 0.0)
        if spec.get("qk_norm"):
            vector(b + "attn_q_norm.weight", hd)
            vector(b + "attn_k_norm.weight", hd)
        matrix(b + "attn_output.weight", dim, q_dim)
        if spec.get("post_norms"):
            vector(b + "post_attention_norm.weight", dim)
            vector(b + "post_ffw_norm.weight", dim)
        vector(b + "ffn_norm.weight", dim)
        if spec.get("fused"):
            matrix(b + "ffn_up.weight", 2 * ffn, dim)
        else:
            matrix(b + "ffn_gate.weight", ffn, dim)
            matrix(b + "ffn_up.weight", ffn, dim)
        matrix(b + "ffn_down.weight", dim, ffn)
    write_gguf(out, kvs, tensors)
    return tensors


def main():
    args = sys.argv[1:]
    if args[:1] == ["--synthetic"]:
        import argparse
        p = argparse.ArgumentParser(prog="gguf_quantize.py --synthetic")
        p.add_argument("arch", choices=sorted(ARCHS))
        p.add_argument("out")
        p.add_argument("--dim", type=int, default=256)
        p.add_argument("--layers", type=int, default=2)
        p.add_argument("--heads", type=int, default=4)
        p.add_argument("--kv-heads", type=int, default=2)
        p.add_argument("--head-dim", type=int, default=None)
        p.add_argument("--ffn", type=int, default=512)
        p.add_argument("--type", default="f32", choices=sorted(TYPE_NAMES))
        p.add_argument("--vocab-from", required=True)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--window", type=int, default=None)
        p.add_argument("--context", type=int, default=4096)
        p.add_argument("--rope-linear", type=float, default=None)
        p.add_argument("--add-bos", type=int, default=None)
        a = p.parse_args(args[1:])
        synthetic_model(a.arch, a.out, a.dim, a.layers, a.heads, a.kv_heads, a.head_dim, a.ffn,
                        TYPE_NAMES[a.type], a.vocab_from, a.seed, a.window, a.context,
                        a.rope_linear, add_bos=None if a.add_bos is None else bool(a.add_bos))
        return 0
    if args[:1] == ["--info"]:
        version, kvs, tensors, alignment = read_gguf(args[1])
        print(f"GGUF v{version}, alignment {alignment}, {len(kvs)} keys, {len(tensors)} tensors")
        for key, vtype, value in kvs:
            shown = f"[{value[0]}] x {len(value[1])}" if vtype == ARRAY else value
            print(f"  {key} ({vtype}) = {shown}")
        for name, ne, ttype, raw in tensors:
            print(f"  {name} ne={ne} type={ttype} bytes={len(raw)}")
        return 0
    if len(args) < 4 or args[2] != "--type" or args[3] not in TYPE_NAMES:
        sys.exit(__doc__)
    src, dst, want = args[0], args[1], TYPE_NAMES[args[3]]
    raw_types = {}
    rest = args[4:]
    while rest:
        if rest[0] != "--raw-type" or len(rest) < 2:
            sys.exit(__doc__)
        name, tid = rest[1].split("=")
        raw_types[name] = int(tid)
        rest = rest[2:]
    version, kvs, tensors, alignment = read_gguf(src)
    out = []
    for name, ne, ttype, raw in tensors:
        n = int(np.prod(ne))
        if len(ne) == 2:
            ttype_new = storage_type(want, ne[0])
            raw_new = convert(ttype_new, as_f32(ttype, raw, n))
        else:
            ttype_new, raw_new = GGML_F32, convert(GGML_F32, as_f32(ttype, raw, n))
        if name in raw_types:
            ttype_new = raw_types[name]
            raw_new = raw_new[:tensor_bytes(ttype_new, ne)]
        out.append((name, ne, ttype_new, raw_new))
    write_gguf(dst, kvs, out, alignment, version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
