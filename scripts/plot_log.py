"""Plots a trainer's log.csv (step, loss, val_loss, lr, ms, tokens_per_s): loss and throughput.

    python3 scripts/plot_log.py LOG_CSV OUT_PNG
"""
import csv
import sys

import matplotlib
matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_log.py LOG_CSV OUT_PNG")
    path, out = sys.argv[1], sys.argv[2]
    try:
        rows = list(csv.DictReader(open(path)))
    except OSError as e:
        sys.exit(f"error: cannot read '{path}': {e.strerror}")
    if not rows or "loss" not in rows[0]:
        sys.exit(f"error: '{path}' has no rows with a loss column")
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    val = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
    tok_s = [float(r["tokens_per_s"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(steps, loss, label="train")
    if val:
        ax1.plot(*zip(*val), "o-", label="val")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss (nats/token)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(steps, tok_s)
    ax2.set_xlabel("step")
    ax2.set_ylabel("tokens/s")
    ax2.grid(alpha=0.3)
    fig.suptitle(path)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
