#!/usr/bin/env python3
"""tests/llama_ref.py: an independent NumPy reference of the Llama forward pass
(float64), reading a llama2.c legacy checkpoint (.bin) directly.

    llama_ref.py MODEL.bin IDS.txt                 prints {"n", "last", "mean"} per line
    llama_ref.py MODEL.bin IDS.txt BTRM.jsonl [--tol T]
        compares with `btrm generate --hidden IDS.txt` output: for each sequence
        and each of last/mean, max|btrm - ref| / max|ref| <= T (default 1e-5);
        exit 0 when all agree, 1 otherwise.

IDS.txt: one token sequence per line, ids separated by spaces, fed as given.
The model follows llama2.c's run.c: pre-norm blocks, RMSNorm (eps 1e-5),
rotary embedding on adjacent pairs (x[2j], x[2j+1]) with angle
pos * 10000^(-2j/head_size), grouped-query causal attention, SwiGLU,
final RMSNorm; "last" is the final-norm state of the last token, "mean" the
mean over tokens of the final-norm states.
"""
import json
import struct
import sys

import numpy as np


def load_bin(path):
    with open(path, "rb") as f:
        raw = f.read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    head = dim // n_heads
    kv_dim = n_kv * head
    data = np.frombuffer(raw, dtype="<f4", offset=28).astype(np.float64)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        out = data[pos:pos + n].reshape(shape)
        pos += n
        return out

    w = {}
    w["emb"] = take(vocab, dim)
    w["rms_att"] = take(n_layers, dim)
    w["wq"] = take(n_layers, dim, dim)
    w["wk"] = take(n_layers, kv_dim, dim)
    w["wv"] = take(n_layers, kv_dim, dim)
    w["wo"] = take(n_layers, dim, dim)
    w["rms_ffn"] = take(n_layers, dim)
    w["w1"] = take(n_layers, hidden, dim)
    w["w2"] = take(n_layers, dim, hidden)
    w["w3"] = take(n_layers, hidden, dim)
    w["rms_final"] = take(dim)
    take(seq_len, head // 2)  # freq_cis_real
    take(seq_len, head // 2)  # freq_cis_imag
    w["wcls"] = w["emb"] if shared else take(vocab, dim)
    assert pos == data.size, "file size does not match the header"
    hp = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
              vocab=vocab, head=head)
    return hp, w


def rmsnorm(x, weight, eps=1e-5):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x, n_heads, head):
    """x [T, n_heads*head]: rotate pairs (2j, 2j+1) of each head."""
    T = x.shape[0]
    x = x.reshape(T, n_heads, head // 2, 2)
    j = np.arange(head // 2)
    freq = 10000.0 ** (-2.0 * j / head)
    angle = np.arange(T)[:, None] * freq[None, :]  # [T, head/2]
    c, s = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    x0, x1 = x[..., 0], x[..., 1]
    out = np.stack([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
    return out.reshape(T, n_heads * head)


def forward(hp, w, ids):
    T, head, nh, nkv = len(ids), hp["head"], hp["n_heads"], hp["n_kv"]
    x = w["emb"][np.asarray(ids)]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(hp["n_layers"]):
        xb = rmsnorm(x, w["rms_att"][l])
        q = rope(xb @ w["wq"][l].T, nh, head)
        k = rope(xb @ w["wk"][l].T, nkv, head)
        v = xb @ w["wv"][l].T
        att = np.empty_like(q)
        for h in range(nh):
            g = h // (nh // nkv)
            qh, kg, vg = q[:, h * head:(h + 1) * head], k[:, g * head:(g + 1) * head], v[:, g * head:(g + 1) * head]
            s = qh @ kg.T / np.sqrt(head) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            att[:, h * head:(h + 1) * head] = s @ vg
        x = x + att @ w["wo"][l].T
        xb = rmsnorm(x, w["rms_ffn"][l])
        a = xb @ w["w1"][l].T
        x = x + ((a / (1.0 + np.exp(-a))) * (xb @ w["w3"][l].T)) @ w["w2"][l].T
    h = rmsnorm(x, w["rms_final"])
    return h[-1], h.mean(axis=0)


def main():
    args = sys.argv[1:]
    tol = 1e-5
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i:i + 2]
    if len(args) not in (2, 3):
        sys.exit(__doc__)
    hp, w = load_bin(args[0])
    seqs = [[int(t) for t in line.split()] for line in open(args[1])]
    refs = [forward(hp, w, s) for s in seqs]
    if len(args) == 2:
        for s, (last, mean) in zip(seqs, refs):
            print(json.dumps({"n": len(s), "last": last.tolist(), "mean": mean.tolist()}))
        return 0
    got = [json.loads(line) for line in open(args[2])]
    if len(got) != len(seqs):
        print(f"# {args[2]} has {len(got)} lines, want {len(seqs)}")
        return 1
    worst = 0.0
    for i, ((last, mean), g) in enumerate(zip(refs, got)):
        for name, ref in (("last", last), ("mean", mean)):
            b = np.asarray(g[name], dtype=np.float64)
            err = np.max(np.abs(b - ref)) / np.max(np.abs(ref))
            worst = max(worst, err)
            if not err <= tol:
                print(f"# sequence {i} ({len(seqs[i])} tokens) {name}: relative error {err:.3g} > {tol:g}")
    print(f"# worst relative error {worst:.3g} over {len(seqs)} sequences (tolerance {tol:g})")
    return 0 if worst <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
