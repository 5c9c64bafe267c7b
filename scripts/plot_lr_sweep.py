"""Plots scripts/lr_sweep.sh's sweep.csv: final val loss against the peak learning rate, one line
per group (a model, sequence length and attention), log-x.

    python3 scripts/plot_lr_sweep.py SWEEP_CSV OUT_PNG
"""
import csv
import sys
from collections import defaultdict

import matplotlib
matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_lr_sweep.py SWEEP_CSV OUT_PNG")
    path, out = sys.argv[1], sys.argv[2]
    try:
        rows = list(csv.DictReader(open(path)))
    except OSError as e:
        sys.exit(f"error: cannot read '{path}': {e.strerror}")
    groups = defaultdict(list)
    for r in rows:
        if r["val_loss"]:
            label = f"{r['group']} ({r['model']}, T={r['T']}, " + (f"W={r['window']}" if r["window"] != "0" else "full") \
                    + f", {r['steps']} steps)"
            groups[label].append((float(r["lr"]), float(r["val_loss"])))
    if not groups:
        sys.exit(f"error: '{path}' has no finished runs")
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, points in sorted(groups.items()):
        points.sort()
        ax.plot(*zip(*points), "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final val loss (nats/byte)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(path)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
