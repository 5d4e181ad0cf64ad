#!/usr/bin/env python3
"""tests/gguf_quantize.py: rewrite a GGUF file with its matrices in another
tensor type, with nothing but numpy and struct (an independent GGUF writer
for btrm's tests and benchmarks).

    gguf_quantize.py IN.gguf OUT.gguf --type f32|f16|bf16|q8_0
        every 2-D tensor converted to the type (1-D tensors, the norms, stay
        F32, as llama.cpp's quantizers keep them; with q8_0, matrices whose
        rows are not a multiple of 32 values become F16, llama.cpp's
        fallback); metadata copied unchanged
    gguf_quantize.py IN.gguf OUT.gguf --type ... --raw-type NAME=ID
        additionally stores tensor NAME's bytes under ggml type number ID
        without converting them (ID 2 = Q4_0: an unsupported type whose
        blocks happen to have a valid size) -- for error tests
    gguf_quantize.py --info FILE.gguf
        prints the metadata and tensor table

Q8_0 is ggml's reference quantizer (quantize_row_q8_0_ref): blocks of 32
values x, d = max|x| / 127, q = round-half-away(x / d) as int8, stored as
fp16(d) then the 32 q; x is read back as fp16(d) * q. The absolute error of
a weight is at most d/2 plus the fp16 rounding of d (relative 2^-11), i.e.
about max|x|/254 of its block. F16 and BF16 round to nearest even.

As a module: read_gguf(path) -> (version, kvs, tensors, alignment), write_gguf
(path, kvs, tensors, alignment), kv_* helpers to build metadata, and
quantize_q8_0 / to_f16 / to_bf16 (bench/llama-bench.sh writes its synthetic
Llama model with them).
"""
import struct
import sys

import numpy as np

GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
TYPE_NAMES = {"f32": GGML_F32, "f16": GGML_F16, "q8_0": GGML_Q8_0, "bf16": GGML_BF16}
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
    if ttype == GGML_F32:
        return 4 * n
    if ttype in (GGML_F16, GGML_BF16):
        return 2 * n
    if ttype == GGML_Q8_0:
        return n // 32 * 34
    if ttype == 2:  # Q4_0: 32 values in 18 bytes
        return n // 32 * 18
    raise ValueError(f"tensor type {ttype}")


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


def quantize_q8_0(x):
    """x float32 [rows, cols] (cols % 32 == 0) -> Q8_0 bytes, ggml's reference."""
    x = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    amax = np.max(np.abs(x), axis=1)
    d = amax / np.float32(127)
    inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, 1), 0).astype(np.float32)
    v = x * inv[:, None]
    q = np.trunc(v + np.copysign(np.float32(0.5), v)).astype(np.int8)
    out = np.empty((x.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def dequantize_q8_0(raw, n):
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 34)
    d = b[:, :2].copy().view("<f2").astype(np.float32)
    q = b[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(-1)[:n]


def as_f32(ttype, raw, n):
    if ttype == GGML_F32:
        return np.frombuffer(raw, dtype="<f4")
    if ttype == GGML_F16:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if ttype == GGML_BF16:
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    if ttype == GGML_Q8_0:
        return dequantize_q8_0(raw, n)
    raise ValueError(f"cannot read tensor type {ttype}")


def convert(ttype, x):
    if ttype == GGML_F32:
        return np.asarray(x, dtype="<f4").tobytes()
    if ttype == GGML_F16:
        return to_f16(x)
    if ttype == GGML_BF16:
        return to_bf16(x)
    if ttype == GGML_Q8_0:
        return quantize_q8_0(x)
    raise ValueError(ttype)


def main():
    args = sys.argv[1:]
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
            # rows that Q8_0's 32-blocks do not divide fall back to F16, as
            # llama.cpp's quantizer does
            ttype_new = GGML_F16 if want == GGML_Q8_0 and ne[0] % 32 else want
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
