#!/usr/bin/env python3
"""Plots of attention_compare's CSV (./attention_compare --sweep --csv FILE): dense vs streaming.

    python3 scripts/plot_attention_compare.py FILE.csv [--out PREFIX]

writes PREFIX_runtime.png (ms vs T, log-log, forward and forward+backward), PREFIX_speedup.png
(dense time / streaming time vs T) and PREFIX_memory.png (fwd+bwd working memory vs T, with the
size a materialized T x T bf16 score matrix would take, for scale). PREFIX defaults to the CSV's
path without .csv.
"""
import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"error: {path} has no data rows")
    need = ["T", "B", "NH", "W", "S", "dense_fwd_ms", "stream_fwd_ms", "dense_fwdbwd_ms", "stream_fwdbwd_ms",
            "dense_mem_mb", "stream_mem_mb"]
    missing = [c for c in need if c not in rows[0]]
    if missing:
        sys.exit(f"error: {path} lacks columns {', '.join(missing)} (is it attention_compare's CSV?)")
    rows.sort(key=lambda r: int(r["T"]))
    return rows


def col(rows, name, conv=float):
    return [conv(r[name]) for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--out", help="output prefix (default: the CSV path without .csv)")
    args = ap.parse_args()
    rows = load(args.csv)
    prefix = args.out or os.path.splitext(args.csv)[0]
    r0 = rows[0]
    T = col(rows, "T", int)
    W, S = int(r0["W"]), int(r0["S"])
    device = r0.get("device", "").strip('"')
    title_tail = f"W={W}, S={S}, NH={r0['NH']}, D={r0.get('D', '?')}" + (f" — {device}" if device else "")
    written = []

    # runtime, log-log
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.loglog(T, col(rows, "dense_fwd_ms"), "o-", color="tab:red", label="dense, forward")
    ax.loglog(T, col(rows, "stream_fwd_ms"), "o-", color="tab:blue", label="streaming, forward")
    ax.loglog(T, col(rows, "dense_fwdbwd_ms"), "s--", color="tab:red", label="dense, forward+backward")
    ax.loglog(T, col(rows, "stream_fwdbwd_ms"), "s--", color="tab:blue", label="streaming, forward+backward")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length T (B·T fixed)" if len(set(col(rows, "B", int))) > 1 else "sequence length T")
    ax.set_ylabel("time per call (ms, median)")
    ax.set_title(f"attention runtime vs T\n{title_tail}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    written.append(f"{prefix}_runtime.png")
    fig.savefig(written[-1], dpi=130)
    plt.close(fig)

    # speedup
    fig, ax = plt.subplots(figsize=(7, 5))
    fwd = [d / s for d, s in zip(col(rows, "dense_fwd_ms"), col(rows, "stream_fwd_ms"))]
    fb = [d / s for d, s in zip(col(rows, "dense_fwdbwd_ms"), col(rows, "stream_fwdbwd_ms"))]
    ax.plot(T, fwd, "o-", label="forward")
    ax.plot(T, fb, "s--", label="forward+backward")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    for t, v in zip(T, fb):
        ax.annotate(f"{v:.1f}x", (t, v), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("speedup (dense time / streaming time)")
    ax.set_title(f"streaming speedup over dense\n{title_tail}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    written.append(f"{prefix}_speedup.png")
    fig.savefig(written[-1], dpi=130)
    plt.close(fig)

    # memory
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot(T, col(rows, "dense_mem_mb"), "o-", color="tab:red", label="dense (measured)")
    ax.plot(T, col(rows, "stream_mem_mb"), "s--", color="tab:blue", label="streaming (measured)")
    scores = [int(r["B"]) * int(r["NH"]) * int(r["T"]) ** 2 * 2 / 2**20 for r in rows]
    ax.plot(T, scores, ":", color="gray", label="a materialized B·NH·T² bf16 score matrix (not used)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("GPU memory (MiB)")
    ax.set_title(f"fwd+bwd working memory (cudaMemGetInfo delta)\n{title_tail}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(f"{prefix}_memory.png")
    fig.savefig(written[-1], dpi=130)
    plt.close(fig)

    for w in written:
        print(f"wrote {w}")


if __name__ == "__main__":
    main()
