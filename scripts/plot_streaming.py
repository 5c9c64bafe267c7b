"""Plots and tabulates scripts/streaming.sh's streams: each token's loss along one long val stream,
for each way of decoding, as a running mean against position, and the mean over each block of T
tokens (the training length: block 1 is what the models were trained on).

    python3 scripts/plot_streaming.py DIR T W S      -> DIR/streaming.png, DIR/streaming.md
"""
import csv
import os
import sys

VARIANTS = [  # (file name, label); the order of the table and the legend
    ("full_dense", "dense model, whole past in the cache"),
    ("full_window_sinks", "dense model, window {W} + {S} sinks cache"),
    ("full_window", "dense model, window {W} cache, no sinks"),
    ("full_recompute", "dense model, each window of {W} recomputed"),
    ("window_own", "window {W} + {S} sinks model, its own cache"),
]


def read_losses(path):
    try:
        with open(path) as f:
            return [float(row["loss"]) for row in csv.DictReader(f)]
    except OSError as e:
        sys.exit(f"error: {path}: {e.strerror} (run scripts/streaming.sh first)")


def running_mean(values, span):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= span:
            total -= values[i - span]
        out.append(total / min(i + 1, span))
    return out


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: plot_streaming.py DIR T W S")
    out_dir, T, W, S = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    streams = []
    for name, label in VARIANTS:
        path = os.path.join(out_dir, f"stream_{name}.csv")
        streams.append((name, label.format(W=W, S=S), read_losses(path)))
    n = len(streams[0][2])
    blocks = (n + T - 1) // T
    settings = open(os.path.join(out_dir, "settings.txt")).read().strip() if os.path.exists(os.path.join(out_dir, "settings.txt")) else ""
    lines = ["# Streaming past the training length", "", settings, "",
             f"Mean loss (nats/token) over each block of T = {T} tokens of the stream; block 1 is the training length.", "",
             "| decoding | " + " | ".join(f"block {b + 1}" for b in range(blocks)) + " | all |",
             "| --- |" + " --- |" * (blocks + 1)]
    for name, label, losses in streams:
        means = [sum(losses[b * T:(b + 1) * T]) / len(losses[b * T:(b + 1) * T]) for b in range(blocks)]
        lines.append(f"| {label} | " + " | ".join(f"{m:.4f}" for m in means) + f" | {sum(losses) / len(losses):.4f} |")
    with open(os.path.join(out_dir, "streaming.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no matplotlib, streaming.png skipped")
        return
    fig, ax = plt.subplots(figsize=(10, 4.5))
    span = max(T // 4, 1)
    for name, label, losses in streams:
        ax.plot(range(n), running_mean(losses, span), label=label, lw=1.2)
    for b in range(1, blocks):
        ax.axvline(b * T, color="gray", lw=0.5, ls=":")
    ax.set_xlabel(f"position in the stream (dotted: multiples of the training length {T})")
    ax.set_ylabel(f"loss, running mean over {span} tokens")
    ax.set_title(settings, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "streaming.png"), dpi=110)
    print(f"wrote {os.path.join(out_dir, 'streaming.png')}")


if __name__ == "__main__":
    main()
