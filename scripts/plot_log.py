"""Plots trainers' log.csv files (step, loss, val_loss, lr, ms, tokens_per_s): loss and throughput.

    python3 scripts/plot_log.py LOG_CSV OUT_PNG
    python3 scripts/plot_log.py [--bigram B] LABEL=LOG_CSV LABEL=LOG_CSV ... OUT_PNG

With several logs each gets its train and val curves under its label; --bigram draws the bigram
baseline of the val split and the line 1.1 below it (issue 11's bar for the GPU main job).
"""
import argparse
import csv
import sys

import matplotlib
matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt


def read_log(path):
    try:
        rows = list(csv.DictReader(open(path)))
    except OSError as e:
        sys.exit(f"error: cannot read '{path}': {e.strerror}")
    if not rows or "loss" not in rows[0]:
        sys.exit(f"error: '{path}' has no rows with a loss column")
    return rows


def main():
    ap = argparse.ArgumentParser(usage="plot_log.py [--bigram B] [LABEL=]LOG_CSV [...] OUT_PNG")
    ap.add_argument("--bigram", type=float, help="bigram baseline of the val split, drawn with the line 1.1 below it")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if len(args.files) < 2:
        sys.exit("usage: plot_log.py [--bigram B] [LABEL=]LOG_CSV [...] OUT_PNG")
    *logs, out = args.files
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for spec in logs:
        label, path = spec.split("=", 1) if "=" in spec else ("", spec)
        rows = read_log(path)
        steps = [int(r["step"]) for r in rows]
        val = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
        train_line, = ax1.plot(steps, [float(r["loss"]) for r in rows], alpha=0.5 if val else 1.0,
                               label=f"{label} train".strip())
        if val:
            ax1.plot(*zip(*val), "o-", color=train_line.get_color(), label=f"{label} val".strip())
        ax2.plot(steps, [float(r["tokens_per_s"]) for r in rows], label=label or None)
    if args.bigram is not None:
        ax1.axhline(args.bigram, color="gray", ls="--", label=f"bigram {args.bigram:.3f}")
        ax1.axhline(args.bigram - 1.1, color="gray", ls=":", label="bigram - 1.1")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss (nats/token)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("step")
    ax2.set_ylabel("tokens/s")
    ax2.grid(alpha=0.3)
    if len(logs) > 1:
        ax2.legend(fontsize=8)
    fig.suptitle(logs[0] if len(logs) == 1 else "")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
