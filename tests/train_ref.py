#!/usr/bin/python3
"""Float64 reference of `btrm train` for full-batch training of an mlp head
(train.global_batch: all), test oracle of tests/train-bf16.sh.

  train_ref.py DATA.h5 INIT.h5 OUT.h5 --steps N [--bf16] [--lr LR] [--loss bt|normbt]
               [--warmup W] [--clip C] [--wd WD]
  train_ref.py --compare DATA.h5 A.h5 B.h5
      RMS over DATA's feature rows of the reward difference of two models,
      relative to the RMS reward of A: how far apart two trained heads are
      as functions (the parameters themselves wander where AdamW normalises
      gradients near zero, without changing the function)

DATA.h5 is a pair store, INIT.h5 the model `btrm train` starts from (its
train.steps: 0 output), OUT.h5 gets the trained tensors in the same /model
layout. Every step follows src/run/train.c and src/math/{head,loss,optim}.c
in float64: GELU (exact erf form), NormBT's weights from the distances of the
representations, the out layer's gradient pair by pair, global-norm clipping,
the cosine schedule with linear warmup and torch's AdamW. With --bf16, the
inputs of every hidden layer's matrix product (forward: the layer input and
W; backward: delta and the layer input for dW, delta and W for the input
gradient) are rounded to bfloat16 exactly as btrm rounds them (round to
nearest even of the float32 value); everything else stays float64.
"""
import argparse
import math

import h5py
import numpy as np

SQRT2 = math.sqrt(2.0)


def bf16(x):
    """float32(x) rounded to bfloat16 (nearest even), as btrm_float_to_bf16."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32).astype(np.float64)


def erf_vec(z):
    return np.vectorize(math.erf)(z)


def gelu_and_grad(z):
    phi_cdf = 0.5 * (1.0 + erf_vec(z / SQRT2))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z * phi_cdf, phi_cdf + z * pdf


def load_model(path):
    with h5py.File(path, "r") as f:
        names = sorted(k for k in f["model"] if k.startswith("fc")) + ["out"]
        W = [f["model/%s/weight" % k][()].astype(np.float64) for k in names]
        b = [f["model/%s/bias" % k][()].astype(np.float64) for k in names]
    return names, W, b


def rewards(W, b, x):
    h = x
    for l in range(len(W) - 1):
        h, _ = gelu_and_grad(h @ W[l].T + b[l])
    return h @ W[-1][0] + b[-1][0]


def compare(data, path_a, path_b):
    with h5py.File(data, "r") as f:
        x = f["features"][()].astype(np.float64)
    _, Wa, ba = load_model(path_a)
    _, Wb, bb = load_model(path_b)
    ra, rb = rewards(Wa, ba, x), rewards(Wb, bb, x)
    print("%.3e" % (math.sqrt(np.mean((ra - rb) ** 2)) / math.sqrt(np.mean(ra ** 2))))


def sched(step, warmup, total):
    if step < warmup:
        return step / max(1, warmup)
    span = max(1, total - warmup)
    progress = (step - warmup) / span
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def main():
    import sys
    if len(sys.argv) == 5 and sys.argv[1] == "--compare":
        compare(*sys.argv[2:])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("init")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--loss", default="normbt")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--clip", type=float, default=0.0)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--ema", type=float, default=0.9)
    a = ap.parse_args()
    rnd = bf16 if a.bf16 else (lambda v: v)

    with h5py.File(a.data, "r") as f:
        feats = f["features"][()].astype(np.float64)
        ch = f["pairs/chosen"][()]
        rj = f["pairs/rejected"][()]
    names, W, b = load_model(a.init)
    x = np.vstack([feats[ch], feats[rj]])
    n = len(ch)
    params = W + b
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    dbar = 0.0
    L = len(W)
    for step in range(a.steps):
        # forward
        ins, zs, acts = [], [], []
        h = x
        for l in range(L - 1):
            ins.append(rnd(h))
            z = ins[-1] @ rnd(W[l]).T + b[l]
            act, _ = gelu_and_grad(z)
            zs.append(z)
            acts.append(act)
            h = act
        r = h @ W[-1][0] + b[-1][0]
        hc, hr = h[:n], h[n:]
        d = np.sqrt(np.sum((hc - hr) ** 2, axis=1))
        mu = d.mean()
        dbar = mu if step == 0 else a.ema * dbar + (1.0 - a.ema) * mu
        dr = r[:n] - r[n:]
        omega = dbar / np.maximum(d, 1e-6) if a.loss == "normbt" else np.ones(n)
        sig = 0.5 * (1.0 + np.tanh(-0.5 * dr))  # sigmoid(-dr)
        g_diff = (1.0 / n) * omega * -sig
        # backward
        gW = [np.zeros_like(w) for w in W]
        gb = [np.zeros_like(v) for v in b]
        gW[-1][0] = g_diff @ (hc - hr)
        g_row = np.concatenate([g_diff, -g_diff])
        _, gp = gelu_and_grad(zs[-1])
        delta = g_row[:, None] * W[-1][0][None, :] * gp
        for l in range(L - 2, -1, -1):
            gW[l] = rnd(delta).T @ ins[l]
            gb[l] = delta.sum(axis=0)
            if l == 0:
                break
            _, gp = gelu_and_grad(zs[l - 1])
            delta = (rnd(delta) @ rnd(W[l])) * gp
        grads = gW + gb
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        coef = 1.0
        if a.clip > 0:
            coef = min(1.0, a.clip / (norm + 1e-6))
        lr = a.lr * sched(step, a.warmup, a.steps)
        t = step + 1
        for i, p in enumerate(params):
            g = grads[i] * coef
            p *= 1.0 - lr * a.wd
            m1[i] = m1[i] + (1.0 - b1) * (g - m1[i])
            m2[i] = b2 * m2[i] + (1.0 - b2) * g * g
            step_size = lr / (1.0 - b1 ** t)
            denom = np.sqrt(m2[i]) / math.sqrt(1.0 - b2 ** t) + eps
            p -= step_size * m1[i] / denom
    with h5py.File(a.out, "w") as f:
        for k, w, v in zip(names, W, b):
            f["model/%s/weight" % k] = w
            f["model/%s/bias" % k] = v


if __name__ == "__main__":
    main()
