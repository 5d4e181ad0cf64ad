#!/usr/bin/python3
"""Plots of btrm's outputs (matplotlib; Debian's python3-matplotlib).

  tools/plot.py analyze ANALYZE.json -o OUT.png
      `btrm analyze --json` output: the distribution of the pair distance d per
      category, the gradient share of each d-quintile (BT and NormBT), the
      eigen-spectrum of the pair differences, and each category's mean
      |projection| on the top principal components.
  tools/plot.py curves RUN_DIR -o OUT.png
      a `btrm train` run directory: loss and accuracy from metrics.jsonl (and
      the evaluation accuracy over steps from eval.jsonl), the gradient norm,
      and accuracy and grad_share per distance quintile from the last line of
      eval.jsonl.

Each subcommand is a function registered in COMMANDS: adding a plot is adding
one function and one entry.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_jsonl(path):
    """The JSON objects of a JSONL file ([] when it is missing)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def quintile_labels(bins):
    return ["q%d\n%.3g-%.3g" % (i + 1, b["lo"], b["hi"]) for i, b in enumerate(bins)]


# ---------------------------------------------------------------------------
# analyze

def plot_analyze(args):
    with open(args.file) as f:
        r = json.load(f)
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    fig.suptitle("btrm analyze: %s (%d pairs, h of width %d)" %
                 (os.path.basename(r["file"]), r["n_pairs"], r["dim"]))

    # d histogram per category (or all pairs without categories)
    ax = axes[0][0]
    hist = r["distance"]["histogram"]
    edges = hist["edges"]
    groups = r["distance"]["by_category"] or {"all": r["distance"]["all"]}
    for name, g in sorted(groups.items()):
        ax.stairs(g["hist"], edges, label="%s (n=%d, median %.3g)" %
                  (name, g["n"], g["quantiles"][3]), linewidth=1.8)
    if hist["scale"] == "log":
        ax.set_xscale("log")
    ax.set_xlabel("pair distance d = ||h_c - h_r||")
    ax.set_ylabel("pairs")
    ax.set_title("distance distribution per category")
    ax.legend(fontsize=8)

    # gradient share per d-quintile
    ax = axes[0][1]
    bins = r["by_distance_quintile"]
    x = list(range(len(bins)))
    width = 0.38
    ax.bar([i - width / 2 for i in x], [b["grad_share"] for b in bins], width, label="BT")
    ax.bar([i + width / 2 for i in x], [b["grad_share_normbt"] for b in bins], width,
           label="NormBT")
    ax.axhline(1.0 / len(bins), color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(x)
    ax.set_xticklabels(quintile_labels(bins), fontsize=8)
    ax.set_ylabel("share of the gradient norm")
    top = max(max(b["grad_share"], b["grad_share_normbt"]) for b in bins)
    ax.set_ylim(0, 1.2 * top)
    at = "at the model" if r["grad_share_at"] == "model" else "at w = 0"
    ax.set_title("gradient share by d-quintile (%s)" % at)
    ax.legend(fontsize=8, loc="upper left")

    # eigen-spectrum
    ax = axes[1][0]
    pca = r["pca"]
    spectrum = [max(v, 1e-300) for v in pca["spectrum"]]
    ax.semilogy(range(1, len(spectrum) + 1), spectrum, marker=".", linewidth=1,
                label="eigenvalues of Z^T Z / N")
    ax.set_xlabel("component")
    ax.set_ylabel("eigenvalue")
    ax2 = ax.twinx()
    k = pca["top_k"]
    ax2.plot(range(1, k + 1), pca["cumulative"], color="tab:red", marker="o",
             label="cumulative explained (top %d)" % k)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("cumulative explained variance")
    ax.set_title("spectrum of the pair differences (trace %.4g)" % pca["trace"])
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="center right")

    # mean |z.v_j| per category
    ax = axes[1][1]
    proj = pca["mean_abs_projection"]
    series = dict(proj["by_category"]) or {}
    series["all"] = proj["all"]
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(sorted(series.items())):
        ax.bar([j + 1 + (i - (len(series) - 1) / 2) * width for j in range(len(values))],
               values, width, label=name)
    top = max((max(v) for v in series.values() if v), default=1.0)
    ax.set_ylim(0, 1.25 * top)
    ax.set_xlabel("principal component")
    ax.set_ylabel("mean |z . v|")
    ax.set_title("projection of each category's z on the top components")
    ax.legend(fontsize=8, loc="upper center", ncol=len(series))

    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)
    print("wrote %s" % args.output)
    return 0


# ---------------------------------------------------------------------------
# curves

def plot_curves(args):
    metrics = read_jsonl(os.path.join(args.run_dir, "metrics.jsonl"))
    evals = read_jsonl(os.path.join(args.run_dir, "eval.jsonl"))
    if not metrics:
        print("plot.py curves: no metrics.jsonl in %s" % args.run_dir, file=sys.stderr)
        return 1
    newton = "t_factor" in metrics[-1]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    fig.suptitle("btrm train: %s%s" % (os.path.normpath(args.run_dir),
                                       " (optim.type newton)" if newton else ""))
    steps = [m["step"] for m in metrics]
    xlabel = "Newton iteration" if newton else "step"

    ax = axes[0][0]
    ax.plot(steps, [m["loss"] for m in metrics], marker="." if newton else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training loss")
    ax.set_title("loss")

    ax = axes[0][1]
    if "acc" in metrics[0]:
        ax.plot(steps, [m["acc"] for m in metrics], label="train", marker="." if newton else None)
    for name in sorted({e["file"] for e in evals}):
        es = [e for e in evals if e["file"] == name]
        ax.plot([e["step"] for e in es], [e["accuracy"] for e in es], marker="o",
                label="eval %s" % os.path.basename(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairwise accuracy")
    ax.set_title("accuracy")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    gn = [(m["step"], m["grad_norm"]) for m in metrics if m.get("grad_norm", 0) > 0]
    if gn:
        ax.semilogy([s for s, _ in gn], [g for _, g in gn], marker="." if newton else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("gradient norm")
    ax.set_title("gradient norm" + (" (quadratic convergence)" if newton else ""))

    ax = axes[1][1]
    if evals:
        last = evals[-1]
        bins = last["by_distance_quintile"]
        x = list(range(len(bins)))
        width = 0.38
        ax.bar([i - width / 2 for i in x], [b["accuracy"] for b in bins], width,
               label="accuracy")
        ax.bar([i + width / 2 for i in x], [b["grad_share"] for b in bins], width,
               label="grad_share")
        ax.axhline(1.0 / len(bins), color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(x)
        ax.set_xticklabels(quintile_labels(bins), fontsize=8)
        ax.set_ylim(0, 1.2)
        ax.set_title("by distance quintile: %s at step %d" %
                     (os.path.basename(last["file"]), last["step"]))
        ax.legend(fontsize=8, loc="upper center", ncol=2)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no eval.jsonl", ha="center", va="center")

    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)
    print("wrote %s" % args.output)
    return 0


COMMANDS = {
    "analyze": (plot_analyze, "distances, gradient shares and spectrum of `btrm analyze --json`",
                [("file", {"help": "the JSON written by btrm analyze --json"})]),
    "curves": (plot_curves, "learning curves and quintile bars of a `btrm train` run",
               [("run_dir", {"help": "the run's output directory (run.out_dir)"})]),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (fn, help_text, positionals) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        for arg, kw in positionals:
            p.add_argument(arg, **kw)
        p.add_argument("-o", "--output", required=True, help="the PNG (or PDF, SVG) to write")
        p.add_argument("--dpi", type=int, default=110)
        p.set_defaults(func=fn)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (OSError, KeyError, ValueError) as e:
        print("plot.py %s: %s" % (args.command, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
