#!/usr/bin/env python3
"""tests/llama_train_ref.py: an independent float64 reference of the Llama
forward and backward with LoRA adapters or top_k master weights (torch
autograd in float64), for tests/test-llama-train.c.

    llama_train_ref.py MODEL.bin DIR CASE...

MODEL.bin: a llama2.c checkpoint, read by tests/llama_ref.py's load_bin.
For each CASE, DIR holds what the C test wrote:
  CASE.json    type (lora|top_k), rank, alpha, pool (last|mean), loss (the C
               value), lens, ids (back to back), v [dim], c [n, dim] (the
               test loss), tensors [{name, offset, rows, cols}]
  CASE.params  float32 parameters, CASE.grads the C gradients,
  CASE.pooled  the C pooled states [n, dim].
The model: llama.h's equations (RMSNorm eps 1e-5, RoPE on adjacent pairs,
grouped-query causal attention, SwiGLU, final RMSNorm; pooled = the last
token's or the mean of the final-norm states), the effective weight of a
projection W + (alpha/r) B A (LoRA) or the master copy (top_k), GGUF tensor
names (blk.N.attn_q.weight.lora_a, blk.N.ffn_norm.weight, output_norm.weight).
The loss: sum over pairs (i, n/2 + i) of softplus(-(v.h_i - v.h_{n/2+i}))
plus sum_s c_s.h_s.

Prints one line per quantity: "CASE loss REL", "CASE pooled REL", and
"CASE KIND REL NAME" for every tensor (KIND lora_a, lora_b, weight, norm;
REL = max|C - ref| / max|ref| over the tensor). Exit 0 when it ran.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_ref import load_bin  # noqa: E402

PROJ = {"attn_q": "wq", "attn_k": "wk", "attn_v": "wv", "attn_output": "wo",
        "ffn_gate": "w1", "ffn_up": "w3", "ffn_down": "w2"}


def rmsnorm(x, g, eps=1e-5):
    return x / torch.sqrt(torch.mean(x * x, dim=-1, keepdim=True) + eps) * g


def rope(x, n_heads, hd, theta=10000.0):
    """x [T, n_heads*hd]: rotate the pairs (2j, 2j+1) of each head by t * theta^(-2j/hd)."""
    T = x.shape[0]
    x = x.reshape(T, n_heads, hd // 2, 2)
    j = torch.arange(hd // 2, dtype=torch.float64)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-2.0 * j / hd)[None, :]
    c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x0, x1 = x[..., 0], x[..., 1]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).reshape(T, n_heads * hd)


def run_case(hp, W, d, case):
    meta = json.load(open(os.path.join(d, case + ".json")))
    params = np.fromfile(os.path.join(d, case + ".params"), dtype="<f4").astype(np.float64)
    grads_c = np.fromfile(os.path.join(d, case + ".grads"), dtype="<f4").astype(np.float64)
    dim, n_layers, hd = hp["dim"], hp["n_layers"], hp["head"]
    n_heads, n_kv = hp["n_heads"], hp["n_kv"]
    lens = meta["lens"]
    n = len(lens)
    pooled_c = np.fromfile(os.path.join(d, case + ".pooled"), dtype="<f4").astype(np.float64)
    pooled_c = pooled_c.reshape(n, dim)
    leaves = {}
    for t in meta["tensors"]:
        a = params[t["offset"]:t["offset"] + t["rows"] * t["cols"]].reshape(t["rows"], t["cols"])
        leaves[t["name"]] = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    scale = meta["alpha"] / meta["rank"] if meta["type"] == "lora" else 0.0

    def weight(l, proj):
        name = "blk.%d.%s.weight" % (l, proj)
        w = leaves.get(name, W[PROJ[proj]][l])
        if name + ".lora_a" in leaves:
            w = w + scale * (leaves[name + ".lora_b"] @ leaves[name + ".lora_a"])
        return w

    def norm(name, base):
        return leaves[name].reshape(-1) if name in leaves else base

    ids = meta["ids"]
    group = n_heads // n_kv
    pooled = []
    off = 0
    for T in lens:
        x = W["emb"][ids[off:off + T]]
        off += T
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        for l in range(n_layers):
            xn = rmsnorm(x, norm("blk.%d.attn_norm.weight" % l, W["rms_att"][l]))
            q = rope(xn @ weight(l, "attn_q").T, n_heads, hd)
            k = rope(xn @ weight(l, "attn_k").T, n_kv, hd)
            v = xn @ weight(l, "attn_v").T
            heads = []
            for h in range(n_heads):
                g = h // group
                s = q[:, h * hd:(h + 1) * hd] @ k[:, g * hd:(g + 1) * hd].T / np.sqrt(hd)
                p = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
                heads.append(p @ v[:, g * hd:(g + 1) * hd])
            x = x + torch.cat(heads, dim=1) @ weight(l, "attn_output").T
            xn = rmsnorm(x, norm("blk.%d.ffn_norm.weight" % l, W["rms_ffn"][l]))
            h1 = xn @ weight(l, "ffn_gate").T
            h3 = xn @ weight(l, "ffn_up").T
            x = x + (torch.nn.functional.silu(h1) * h3) @ weight(l, "ffn_down").T
        hfin = rmsnorm(x, norm("output_norm.weight", W["rms_final"]))
        pooled.append(hfin[-1] if meta["pool"] == "last" else hfin.mean(dim=0))
    h = torch.stack(pooled)
    v = torch.tensor(meta["v"], dtype=torch.float64)
    c = torch.tensor(meta["c"], dtype=torch.float64).reshape(n, dim)
    npairs = n // 2
    loss = (c * h).sum()
    for i in range(npairs):
        loss = loss + torch.nn.functional.softplus(-(v @ h[i] - v @ h[npairs + i]))
    loss.backward()
    L = loss.item()
    print("%s loss %.3e" % (case, abs(meta["loss"] - L) / abs(L)))
    href = h.detach().numpy()
    print("%s pooled %.3e" % (case, np.max(np.abs(pooled_c - href)) / np.max(np.abs(href))))
    for t in meta["tensors"]:
        g = leaves[t["name"]].grad.numpy().reshape(-1)
        gc = grads_c[t["offset"]:t["offset"] + g.size]
        name = t["name"]
        kind = ("lora_a" if name.endswith(".lora_a") else "lora_b" if name.endswith(".lora_b")
                else "norm" if "norm" in name else "weight")
        print("%s %s %.3e %s" % (case, kind, np.max(np.abs(gc - g)) / np.max(np.abs(g)), name))


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    hp, w = load_bin(sys.argv[1])
    W = {k: torch.tensor(np.ascontiguousarray(a), dtype=torch.float64) for k, a in w.items()}
    for case in sys.argv[3:]:
        run_case(hp, W, sys.argv[2], case)


if __name__ == "__main__":
    main()
