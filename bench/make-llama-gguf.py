#!/usr/bin/env python3
"""bench/make-llama-gguf.py: a GGUF model with random weights, for the prefill
benchmarks (bench/llama-bench.sh, bench/llama-cpp-compare.sh): a thin wrapper
over tests/gguf_quantize.py's synthetic_model with benchmark-sized defaults.

    make-llama-gguf.py OUT.gguf [--arch llama] [--dim 4096] [--layers 2] [--heads 32]
                       [--kv-heads 8] [--ffn 14336] [--type f32|f16|bf16|q8_0|q4_k|q6_k|...]
                       [--vocab-from MODEL.gguf] [--seed 1]

Weights are N(0, 1/in) (so activations keep their scale through the layers),
norms 1 + N(0, 0.1^2). The tokenizer metadata (and so the vocabulary size) is
copied from --vocab-from (default: $BTRM_SHARED/models/stories260K/stories260K.gguf,
512 tokens), so `btrm embed` and llama.cpp can open the file too. Sizes:
params = vocab*dim*2 + layers*(2*dim*dim + 2*dim*kv_dim + 3*dim*ffn); at the
defaults 2 x 218.1 M + 4.2 M = 440.4 M: 1.76 GB in F32, 0.88 GB in F16, 0.47 GB
in Q8_0, 0.25 GB in Q4_K, 0.36 GB in Q6_K.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import gguf_quantize as gq  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--arch", default="llama", choices=sorted(gq.ARCHS))
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
    gq.synthetic_model(a.arch, a.out, a.dim, a.layers, a.heads, a.kv_heads, None, a.ffn,
                       gq.TYPE_NAMES[a.type], a.vocab_from, a.seed,
                       name=f"synthetic-d{a.dim}-l{a.layers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
