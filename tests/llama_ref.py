#!/usr/bin/env python3
"""tests/llama_ref.py: an independent NumPy reference (float64) of the forward
pass of btrm's decoder backbones, reading the model file directly: a
llama2.c legacy checkpoint (.bin) or a GGUF file of architecture llama,
qwen2, qwen3, gemma2, gemma3 or phi3 (tensors dequantised by
tests/gguf_quantize.py).

    llama_ref.py MODEL IDS.txt                 prints {"n", "last", "mean"} per line
    llama_ref.py MODEL IDS.txt BTRM.jsonl [--tol T]
        compares with `btrm generate --hidden IDS.txt` output: for each sequence
        and each of last/mean, max|btrm - ref| / max|ref| <= T (default 1e-5);
        exit 0 when all agree, 1 otherwise.

IDS.txt: one token sequence per line, ids separated by spaces, fed as given.
The model is written from the architectures' definitions (Hugging Face's
modeling files, as llama.cpp converts them): pre-norm blocks, RMSNorm,
rotary embedding on adjacent pairs (x[2j], x[2j+1]) for llama and on the
halves (x[j], x[j + d/2]) for the others, with angle
pos * scale * base^(-2j/d); grouped-query causal attention (sliding window
where the model has one: gemma2 on even layers, gemma3 on layers l % 6 < 5,
phi3 and llama on every layer); SwiGLU or, for Gemma, GELU-tanh gating;
the architectures' extras (q/k/v biases, q/k RMSNorm per head, post-norms,
embedding scale sqrt(dim), query scale, attention soft-cap); final RMSNorm.
"last" is the final-norm state of the last token, "mean" the mean over
tokens of the final-norm states.
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


def load_gguf(path):
    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gguf_quantize as gq
    _, kvs, tensors, _ = gq.read_gguf(path)
    meta = {k: (v.decode() if isinstance(v, bytes) else v) for k, t, v in kvs}
    arch = meta["general.architecture"]
    w = {}
    for name, ne, ttype, raw in tensors:
        n = int(np.prod(ne))
        w[name] = gq.as_f32(ttype, raw, n).astype(np.float64).reshape(list(reversed(ne)))
    key = lambda k, d=None: meta.get(f"{arch}.{k}", d)
    dim, heads = key("embedding_length"), key("attention.head_count")
    hd = key("attention.key_length", dim // heads)
    layers = key("block_count")
    hp = dict(arch=arch, dim=dim, n_layers=layers, n_heads=heads,
              n_kv=key("attention.head_count_kv", heads), head=hd,
              rot=key("rope.dimension_count", hd), eps=key("attention.layer_norm_rms_epsilon", 1e-5),
              base=key("rope.freq_base", 10000.0), hidden=key("feed_forward_length"),
              neox=arch != "llama", window=0, local=lambda l: False, base_local=None,
              scale=1.0, scale_local=None, emb_scale=1.0, q_scale=1.0 / np.sqrt(hd),
              softcap=0.0, gelu=False)
    if key("rope.scaling.type") == "linear":
        hp["scale"] = 1.0 / key("rope.scaling.factor")
    win = key("attention.sliding_window")
    if arch in ("llama", "phi3") and win:
        hp["window"], hp["local"] = win, (lambda l: True)
    if arch == "gemma2":
        hp["window"] = win or 4096
        hp["local"] = lambda l: l % 2 == 0
        hp["softcap"] = key("attn_logit_softcapping", 50.0)
    if arch == "gemma3":
        hp["window"] = win
        hp["local"] = lambda l: l % 6 < 5
        hp["base_local"], hp["scale_local"] = 10000.0, 1.0
    if arch.startswith("gemma"):
        hp["emb_scale"] = np.sqrt(np.float32(dim))
        hp["gelu"] = True
        big = layers == (46 if arch == "gemma2" else 62)
        hp["q_scale"] = 1.0 / np.sqrt(dim // heads if big else hd)
    return hp, w


def rmsnorm(x, weight, eps=1e-5):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x, n_heads, head, rot=None, base=10000.0, scale=1.0, neox=False):
    """x [T, n_heads*head]: rotate, in each head, the first `rot` values: pairs
    (2j, 2j+1) (adjacent) or (j, j + rot/2) (neox)."""
    rot = rot or head
    T = x.shape[0]
    x = x.reshape(T, n_heads, head).copy()
    j = np.arange(rot // 2)
    freq = base ** (-2.0 * j / rot)
    angle = np.arange(T)[:, None] * scale * freq[None, :]  # [T, rot/2]
    c, s = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    if neox:
        i0, i1 = j, j + rot // 2
    else:
        i0, i1 = 2 * j, 2 * j + 1
    x0, x1 = x[:, :, i0].copy(), x[:, :, i1].copy()
    x[:, :, i0] = x0 * c - x1 * s
    x[:, :, i1] = x0 * s + x1 * c
    return x.reshape(T, n_heads * head)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def forward(hp, w, ids):
    """llama2.c's run.c on a .bin checkpoint (load_bin)"""
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


def forward_gguf(hp, w, ids):
    T, hd, nh, nkv, eps = len(ids), hp["head"], hp["n_heads"], hp["n_kv"], hp["eps"]
    x = w["token_embd.weight"][np.asarray(ids)] * hp["emb_scale"]
    pos = np.arange(T)
    for l in range(hp["n_layers"]):
        b = f"blk.{l}."
        lin = lambda name, v: v @ w[b + name + ".weight"].T + w.get(b + name + ".bias", 0.0)
        local = hp["local"](l)
        xb = rmsnorm(x, w[b + "attn_norm.weight"], eps)
        if b + "attn_qkv.weight" in w:
            qkv = lin("attn_qkv", xb)
            q, k, v = np.split(qkv, [nh * hd, nh * hd + nkv * hd], axis=1)
        else:
            q, k, v = lin("attn_q", xb), lin("attn_k", xb), lin("attn_v", xb)
        if b + "attn_q_norm.weight" in w:
            q = rmsnorm(q.reshape(T, nh, hd), w[b + "attn_q_norm.weight"], eps).reshape(T, nh * hd)
            k = rmsnorm(k.reshape(T, nkv, hd), w[b + "attn_k_norm.weight"], eps).reshape(T, nkv * hd)
        base = hp["base_local"] if local and hp["base_local"] else hp["base"]
        scale = hp["scale_local"] if local and hp["scale_local"] else hp["scale"]
        q = rope(q, nh, hd, hp["rot"], base, scale, hp["neox"])
        k = rope(k, nkv, hd, hp["rot"], base, scale, hp["neox"])
        keep = pos[None, :] <= pos[:, None]
        if local and hp["window"]:
            keep &= pos[:, None] - pos[None, :] < hp["window"]
        att = np.empty((T, nh * hd))
        for h in range(nh):
            g = h // (nh // nkv)
            s = (q[:, h * hd:(h + 1) * hd] * hp["q_scale"]) @ k[:, g * hd:(g + 1) * hd].T
            if hp["softcap"]:
                s = hp["softcap"] * np.tanh(s / hp["softcap"])
            s = np.where(keep, s, -np.inf)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            att[:, h * hd:(h + 1) * hd] = s @ v[:, g * hd:(g + 1) * hd]
        o = lin("attn_output", att)
        if b + "post_attention_norm.weight" in w:
            o = rmsnorm(o, w[b + "post_attention_norm.weight"], eps)
        x = x + o
        xb = rmsnorm(x, w[b + "ffn_norm.weight"], eps)
        if b + "ffn_gate.weight" in w:
            gate, up = lin("ffn_gate", xb), lin("ffn_up", xb)
        else:  # phi3: ffn_up = [gate; up]
            gate, up = np.split(lin("ffn_up", xb), 2, axis=1)
        act = gelu_tanh(gate) if hp["gelu"] else gate / (1.0 + np.exp(-gate))
        f = lin("ffn_down", act * up)
        if b + "post_ffw_norm.weight" in w:
            f = rmsnorm(f, w[b + "post_ffw_norm.weight"], eps)
        x = x + f
    h = rmsnorm(x, w["output_norm.weight"], eps)
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
    if open(args[0], "rb").read(4) == b"GGUF":
        hp, w = load_gguf(args[0])
        fwd = forward_gguf
    else:
        hp, w = load_bin(args[0])
        fwd = forward
    seqs = [[int(t) for t in line.split()] for line in open(args[1])]
    refs = [fwd(hp, w, s) for s in seqs]
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
