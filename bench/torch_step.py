#!/usr/bin/env python3
"""bench/torch_step.py: the PyTorch CPU reference for bench/train-bench.sh.

One training step exactly as btrm takes it (docs/training.md), in float32:
gather the chosen and rejected feature rows of B pairs into one [2B, D]
block (torch.index_select into a preallocated buffer), forward through the
head (nn.Linear(D, 1), or nn.Linear(D, H) -> GELU(exact) -> nn.Linear(H, 1)),
the BT loss mean(softplus(-(r_c - r_r))), backward, AdamW (lr 1e-3, betas
(0.9, 0.999), eps 1e-8, weight_decay 0.01, as btrm's defaults). The feature
table has as many rows as bench/train-bench.sh's synthetic set (2N rows of
width D, random values), and batches follow a fresh random permutation per
epoch, so the gather reads rows scattered over the table as btrm's does.

btrm also computes the pair distances ||h_c - h_r|| every step (NormBT's
weights and the dist_mean metric); --with-distance adds the same to the torch
step (under no_grad) for a like-for-like comparison; it is off by default, so
the reference is the leanest BT step. --loss normbt weights each pair by
dbar / d as btrm's NormBT does (distances from float32 h, no gradient through
them). --autocast bf16 runs the forward under torch.autocast("cpu",
dtype=torch.bfloat16): torch's own mixed precision (bf16 matrix products
through its oneDNN, the backward's products in bf16 too).

Threads: --threads T sets torch.set_num_threads(T) and, before torch is
imported, OPENBLAS_NUM_THREADS / OMP_NUM_THREADS = T (Debian's torch calls
the system OpenBLAS for its float32 matrix products; see --show-config).

--ranks 2 runs DistributedDataParallel over the gloo backend on localhost
(2 processes, each with --threads threads and B/2 pairs of every batch); the
gradient all-reduce averages, so the step is the same as on 1 rank.

The AdamW implementation is chosen with --optim: "single" (foreach=False, a
loop over the parameter tensors) or "foreach" (multi-tensor); "best" (the
default) times both and reports the faster. torch 1.13 has no fused CPU
AdamW. Each configuration runs --warmup untimed steps, then --repeat runs of
--steps steps; it prints pairs/s of the best run and the median, and
GFLOP/s counted as in docs/performance.md; cpu_pairs_per_s_best is pairs per
CPU-second of (rank 0's) process (time.process_time), which leaves out the
time other jobs held the core on a shared machine.

Usage: python3 bench/torch_step.py --head mlp --dim 4096 --hidden 1024 \
           --batch 256 --pairs 16384 --threads 1 --ranks 1
Output: one JSON line per configuration on stdout (and a readable line on
stderr).
"""
import argparse
import json
import os
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--head", choices=["linear", "mlp"], default="mlp")
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--batch", type=int, default=256, help="global batch (pairs)")
    p.add_argument("--pairs", type=int, default=16384, help="pairs in the table (2x rows)")
    p.add_argument("--threads", type=int, default=1, help="threads per process")
    p.add_argument("--ranks", type=int, default=1, help="1, or >1 for DDP over gloo")
    p.add_argument("--steps", type=int, default=40, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--optim", choices=["best", "single", "foreach"], default="best")
    p.add_argument("--with-distance", action="store_true")
    p.add_argument("--loss", choices=["bt", "normbt"], default="bt",
                   help="normbt: each pair's loss times dbar / max(d, 1e-6), d = ||h_c - h_r|| "
                        "from float32 h under no_grad, dbar its EMA (0.9) as btrm computes it")
    p.add_argument("--autocast", choices=["none", "bf16"], default="none",
                   help="bf16: forward under torch.autocast('cpu', dtype=torch.bfloat16)")
    p.add_argument("--port", type=int, default=29517)
    p.add_argument("--show-config", action="store_true")
    return p.parse_args()


ARGS = parse()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import torch  # noqa: E402  (after the thread variables)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def step_flops(a, rows):
    """FLOPs of one step on `rows` rows, as docs/performance.md counts them."""
    if a.head == "linear":
        return 4.0 * rows * a.dim
    return 4.0 * rows * a.dim * a.hidden + 4.0 * rows * a.hidden


def make_model(a):
    if a.head == "linear":
        return nn.Linear(a.dim, 1)
    return nn.Sequential(nn.Linear(a.dim, a.hidden), nn.GELU(), nn.Linear(a.hidden, 1))


def run(a, rank, world, optim_kind, result_q=None):
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(2)
    n_rows = 2 * a.pairs
    table = torch.randn(n_rows, a.dim, generator=gen)
    chosen = torch.arange(0, n_rows, 2)
    rejected = torch.arange(1, n_rows, 2)
    model = make_model(a)
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{a.port}",
                                rank=rank, world_size=world)
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01, foreach=(optim_kind == "foreach"))
    # this rank's share of every global batch (the first B mod P ranks take one more)
    base, extra = divmod(a.batch, world)
    n = base + (1 if rank < extra else 0)
    first = rank * base + min(rank, extra)
    x = torch.empty(2 * n, a.dim)
    idx = torch.empty(2 * n, dtype=torch.long)
    steps_per_epoch = a.pairs // a.batch
    perm = None
    dbar = [None]

    def one_step(t):
        nonlocal perm
        k = t % steps_per_epoch
        if k == 0 or perm is None:
            perm = torch.randperm(a.pairs, generator=gen)
        pairs = perm[k * a.batch + first: k * a.batch + first + n]
        torch.index_select(chosen, 0, pairs, out=idx[:n])
        torch.index_select(rejected, 0, pairs, out=idx[n:])
        torch.index_select(table, 0, idx, out=x)
        if a.autocast == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                r = model(x).squeeze(-1).float()
        else:
            r = model(x).squeeze(-1)
        r_c, r_r = r[:n], r[n:]
        weight = None
        if a.with_distance or a.loss == "normbt":
            with torch.no_grad():
                h = x if a.head == "linear" else model_h(x)  # float32, outside autocast
                d = (h[:n] - h[n:]).double().norm(dim=1)
                mu = d.mean().item()  # (one rank's share; DDP runs would all-reduce it)
                dbar[0] = mu if dbar[0] is None else 0.9 * dbar[0] + 0.1 * mu
                weight = (dbar[0] / d.clamp(min=1e-6)).float()
        # mean over the global batch: the DDP average of local means is that
        # mean when the ranks hold equal shares
        per_pair = F.softplus(-(r_c - r_r))
        loss = (per_pair * weight).mean() if a.loss == "normbt" else per_pair.mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        return loss

    def model_h(x):
        m = model.module if world > 1 else model
        return m[1](m[0](x))

    t = 0
    for _ in range(a.warmup):
        one_step(t)
        t += 1
    rates, cpu_rates = [], []
    for _ in range(a.repeat):
        if world > 1:
            dist.barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            one_step(t)
            t += 1
        if world > 1:
            dist.barrier()
        rates.append(a.batch * a.steps / (time.perf_counter() - t0))
        # this process's CPU time (all its threads): pairs per CPU-second of
        # one rank, which leaves out the time other jobs held the core
        cpu_rates.append(a.batch * a.steps / (time.process_time() - c0))
    if world > 1:
        dist.destroy_process_group()
    if result_q is not None:
        if rank == 0:
            result_q.put((rates, cpu_rates))
        return None
    return rates, cpu_rates


def worker(rank, a, world, optim_kind, q):
    run(a, rank, world, optim_kind, q)


def measure(a, optim_kind):
    if a.ranks == 1:
        return run(a, 0, 1, optim_kind)
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    mp.start_processes(worker, args=(a, a.ranks, optim_kind, q), nprocs=a.ranks,
                       join=True, start_method="spawn")
    return q.get()


def main():
    a = ARGS
    if a.show_config:
        print(torch.__config__.show(), file=sys.stderr)
        print(torch.__config__.parallel_info(), file=sys.stderr)
    if a.batch > a.pairs:
        sys.exit("torch_step.py: --batch must not exceed --pairs")
    kinds = ["single", "foreach"] if a.optim == "best" else [a.optim]
    best = None
    for kind in kinds:
        rates, cpu_rates = measure(a, kind)
        rates, cpu_rates = sorted(rates), sorted(cpu_rates)
        res = {"impl": "torch", "torch": torch.__version__, "head": a.head, "dim": a.dim,
               "hidden": a.hidden if a.head == "mlp" else None, "batch": a.batch,
               "ranks": a.ranks, "threads": a.threads, "optim": kind,
               "with_distance": a.with_distance, "loss": a.loss, "autocast": a.autocast,
               "pairs_per_s_best": rates[-1], "pairs_per_s_median": rates[len(rates) // 2],
               "runs": rates, "cpu_pairs_per_s_best": cpu_rates[-1]}
        flops_per_pair = step_flops(a, 2 * a.batch) / a.batch
        res["gflops_best"] = res["pairs_per_s_best"] * flops_per_pair * 1e-9
        print(f"torch {a.head} ranks={a.ranks} threads={a.threads} AdamW({kind}): "
              f"best {rates[-1]:.0f} pairs/s, median {rates[len(rates) // 2]:.0f} pairs/s, "
              f"{res['gflops_best']:.1f} GFLOP/s; per CPU-second of rank 0: {cpu_rates[-1]:.0f} pairs",
              file=sys.stderr)
        if best is None or res["pairs_per_s_best"] > best["pairs_per_s_best"]:
            best = res
        a.port += 1
    print(json.dumps(best))


if __name__ == "__main__":
    main()
