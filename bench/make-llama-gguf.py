#!/usr/bin/env python3
"""bench/make-llama-gguf.py: a Llama-shaped GGUF with random weights, for
bench/llama-bench (written with tests/gguf_quantize.py's GGUF writer).

    make-llama-gguf.py OUT.gguf [--dim 4096] [--layers 2] [--heads 32] [--kv-heads 8]
                       [--ffn 14336] [--type f32|f16|bf16|q8_0] [--vocab-from MODEL.gguf]
                       [--seed 1]

Weights are N(0, 1/in) (so activations keep their scale through the layers),
norms 1. The tokenizer metadata (and so the vocabulary size) is copied from
--vocab-from (default: $BTRM_SHARED/models/stories260K/stories260K.gguf, 512
tokens), so `btrm embed` and `btrm generate` can open the file too. Sizes:
params = vocab*dim*2 + layers*(2*dim*dim + 2*dim*kv_dim + 3*dim*ffn); at the
defaults 2 x 218.1 M + 4.2 M = 440.4 M, 1.76 GB in f32, 0.47 GB in q8_0.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import gguf_quantize as gq  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--ffn", type=int, default=14336)
    p.add_argument("--type", default="f32", choices=sorted(gq.TYPE_NAMES))
    shared = os.environ.get("BTRM_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    p.add_argument("--vocab-from", default=os.path.join(shared, "models", "stories260K", "stories260K.gguf"))
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    _, src_kvs, src_tensors, _ = gq.read_gguf(a.vocab_from)
    vocab = [t for t in src_tensors if t[0] == "token_embd.weight"][0][1][1]
    hd = a.dim // a.heads
    kvs = [("general.architecture", gq.STRING, "llama"),
           ("general.name", gq.STRING, f"synthetic-llama-d{a.dim}-l{a.layers}"),
           ("llama.context_length", gq.U32, 4096),
           ("llama.embedding_length", gq.U32, a.dim),
           ("llama.block_count", gq.U32, a.layers),
           ("llama.feed_forward_length", gq.U32, a.ffn),
           ("llama.attention.head_count", gq.U32, a.heads),
           ("llama.attention.head_count_kv", gq.U32, a.kv_heads),
           ("llama.rope.dimension_count", gq.U32, hd),
           ("llama.rope.freq_base", gq.F32, 500000.0),
           ("llama.attention.layer_norm_rms_epsilon", gq.F32, 1e-5)]
    kvs += [kv for kv in src_kvs if kv[0].startswith("tokenizer.")]
    rng = np.random.default_rng(a.seed)
    want = gq.TYPE_NAMES[a.type]
    tensors = []

    def matrix(name, rows, cols):
        x = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(1 / np.sqrt(cols))
        t = gq.GGML_F16 if want == gq.GGML_Q8_0 and cols % 32 else want
        tensors.append((name, [cols, rows], t, gq.convert(t, x)))

    def vector(name, n):
        tensors.append((name, [n], gq.GGML_F32, np.ones(n, dtype="<f4").tobytes()))

    kv_dim = a.kv_heads * hd
    matrix("token_embd.weight", vocab, a.dim)
    vector("output_norm.weight", a.dim)
    matrix("output.weight", vocab, a.dim)
    for l in range(a.layers):
        vector(f"blk.{l}.attn_norm.weight", a.dim)
        matrix(f"blk.{l}.attn_q.weight", a.dim, a.dim)
        matrix(f"blk.{l}.attn_k.weight", kv_dim, a.dim)
        matrix(f"blk.{l}.attn_v.weight", kv_dim, a.dim)
        matrix(f"blk.{l}.attn_output.weight", a.dim, a.dim)
        vector(f"blk.{l}.ffn_norm.weight", a.dim)
        matrix(f"blk.{l}.ffn_gate.weight", a.ffn, a.dim)
        matrix(f"blk.{l}.ffn_down.weight", a.dim, a.ffn)
        matrix(f"blk.{l}.ffn_up.weight", a.ffn, a.dim)
    gq.write_gguf(a.out, kvs, tensors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
