"""Table and plot of scripts/bench_memory.sh's measurements: peak GPU memory against sequence length.

    python3 scripts/plot_memory.py MEMORY_CSV DIR      -> DIR/memory.md, DIR/memory.png
"""
import csv
import os
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_memory.py MEMORY_CSV DIR")
    path, out_dir = sys.argv[1], sys.argv[2]
    try:
        rows = list(csv.DictReader(open(path)))
    except OSError as e:
        sys.exit(f"error: plot_memory.py: {path}: {e.strerror}")
    series = list(dict.fromkeys((r["program"], r["attention"]) for r in rows))
    lengths = sorted({int(r["T"]) for r in rows})
    cell = {(r["program"], r["attention"], int(r["T"])): r for r in rows}
    lines = ["# Peak GPU memory of d12 training against sequence length", "",
             "B*T = 16K tokens (B = 1 from T = 16K on); peak = nvidia-smi's used memory of the process "
             "(CUDA context included), MiB; the twin's torch.cuda.max_memory_allocated in brackets (GiB).", "",
             "| T | B | " + " | ".join(f"{p} {a}" for p, a in series) + " |",
             "| --- | --- |" + " --- |" * len(series)]
    for T in lengths:
        B = next(r["B"] for r in rows if int(r["T"]) == T)
        cells = []
        for p, a in series:
            r = cell.get((p, a, T))
            if r is None:
                cells.append("")
            elif r["status"] != "ok":
                cells.append(r["status"].replace("_", " "))
            else:
                cells.append(f"{int(r['peak_mib']):,}" + (f" ({float(r['torch_peak_gib']):.2f})" if r["torch_peak_gib"] else ""))
        lines.append(f"| {T} | {B} | " + " | ".join(cells) + " |")
    open(os.path.join(out_dir, "memory.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no matplotlib, memory.png skipped")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p, a in series:
        pts = [(T, int(cell[(p, a, T)]["peak_mib"]) / 1024) for T in lengths
               if (p, a, T) in cell and cell[(p, a, T)]["status"] == "ok"]
        if pts:
            ax.plot(*zip(*pts), "o-" if p == "ours" else "s--", label=f"{p}: {a}")
        oom = [T for T in lengths if (p, a, T) in cell and cell[(p, a, T)]["status"] == "out_of_memory"]
        if oom:  # past the last length that fit: a marker at the top of the axis, drawn once every series is in
            ax.plot(oom, [0.97] * len(oom), "x", color="red", label=f"{p}: {a}: out of memory", transform=ax.get_xaxis_transform())
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length T (B*T = 16K tokens, B = 1 beyond)")
    ax.set_ylabel("peak GPU memory (GiB, nvidia-smi)")
    ax.set_title("d12 training: peak memory against length")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "memory.png"), dpi=110)
    print(f"wrote {os.path.join(out_dir, 'memory.png')}")


if __name__ == "__main__":
    main()
