#!/usr/bin/env python3
"""Measured against theoretical receptive field (issue 13 item 2, seeds/004). For each checkpoint:
the norm of the gradient of the last position's loss with respect to the input embedding at
distance k = 0..T-1 back, averaged over val rows, beside the positions the attention pattern lets
the last position reach through all the layers (scripts/analyze_pattern.py, exact).

    python3 scripts/receptive_field.py --val VAL.bin -T 2048 --rows 32 --out bench/receptive_field \\
        "full=bench/passkey/arm0/model_00003000.bin" "window 128=bench/passkey/arm1/model_00003000.bin" ...

writes OUT/receptive_field.csv (name, distance, grad_norm, reachable) and OUT/receptive_field.png
(one panel per checkpoint, log scale, unreachable distances shaded); checkpoints of an earlier run
into the same OUT are kept, so a study can be measured in parts. The gradient comes from
test/reference.py's float32 PyTorch model (the oracle the trainers are tested against), on the GPU
when torch sees one. The checkpoint's pattern (window, sinks, dilation, globals, per layer) is read
from its header.
"""
import argparse
import csv
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "test"))
import analyze_pattern  # noqa: E402
import reference  # noqa: E402

PROG = "receptive_field.py"


def load_checkpoint(path):
    """(cfg, params, layer patterns) of one of our float32 checkpoints (pattern slots read)."""
    h = np.fromfile(path, dtype="<i4", count=256)
    if h.size < 256 or h[0] != reference.MODEL_MAGIC or h[1] != reference.MODEL_VERSION_FP32:
        sys.exit("error: %s: %s: expected a float32 model checkpoint (magic %d, version 3)" % (PROG, path, reference.MODEL_MAGIC))
    cfg = dict(reference.BASE, maxT=int(h[2]), V=int(h[3]), L=int(h[4]), NH=int(h[5]), C=int(h[6]), Vp=int(h[7]))
    L = cfg["L"]
    if h[8] == 1:
        cfg.update(rope=bool(h[9]), theta=int(h[10]), causal=int(h[11]))
        slots = [dict(W=int(h[16 + 5 * k]), S=int(h[17 + 5 * k]), R=int(h[18 + 5 * k]), d=int(h[19 + 5 * k]), K=int(h[20 + 5 * k]))
                 for k in range(int(h[12]))]
        layer_slots = [slots[int(h[64 + l])] for l in range(L)]
        cfg["globals"] = [int(g) for g in h[192:192 + int(h[13])]]
    else:  # llm.c's file: full causal, learned positions
        layer_slots = [reference.pattern()] * L
    flat = np.fromfile(path, dtype="<f4", offset=256 * 4)
    if flat.size != reference.num_params(cfg):
        sys.exit("error: %s: %s holds %d parameters, its header says %d" % (PROG, path, flat.size, reference.num_params(cfg)))
    params, at = {}, 0
    for name, shape in reference.param_shapes(cfg):
        n = int(np.prod(shape))
        params[name] = torch.from_numpy(flat[at:at + n].copy()).reshape(shape)
        at += n
    return cfg, params, layer_slots


def gradient_by_distance(cfg, params, layer_slots, tokens, T, rows, batch, device):
    """mean over rows of |d loss(T-1) / d embedding(T-1-k)|, k = 0..T-1"""
    masks = [reference.build_mask(T, p, cfg["causal"], cfg["globals"]).to(device) for p in layer_slots]
    params = {k: v.to(device) for k, v in params.items()}
    total = torch.zeros(T, dtype=torch.float64)
    done = 0
    while done < rows:
        b = min(batch, rows - done)
        window = torch.from_numpy(tokens[done * T: (done + b) * T + 1].astype(np.int64)).to(device)
        idx, targets = window[:-1].view(b, T), window[1:].view(b, T)
        embedded = params["wte"][idx].detach().requires_grad_(True)
        logits = reference.forward(params, cfg, idx, masks, embedded=embedded)[:, T - 1, :cfg["V"]]
        F.cross_entropy(logits, targets[:, T - 1], reduction="sum").backward()
        total += embedded.grad.norm(dim=-1).sum(dim=0).double().cpu()
        done += b
    return (total / rows).flip(0).numpy()  # index k = distance back from position T-1


def read_results(path, T):
    """[(name, grad, reachable)] of an earlier run's csv at this T, so that a study split over several
    runs (checkpoints trained on different machines) ends in one table and one figure; a csv of
    another T is refused"""
    if not os.path.exists(path):
        return []
    rows = {}
    for r in csv.DictReader(open(path)):
        rows.setdefault(r["name"], []).append((int(r["distance"]), float(r["grad_norm"]), int(r["reachable"])))
    results = []
    for name, got in rows.items():
        if sorted(k for k, _, _ in got) != list(range(T)):
            sys.exit("error: %s: %s holds '%s' at another length than -T %d: use another --out" % (PROG, path, name, T))
        got.sort()
        results.append((name, np.array([g for _, g, _ in got]), [r for _, _, r in got]))
    return results


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="NAME=CHECKPOINT")
    ap.add_argument("--val", required=True, help="val shard the rows come from")
    ap.add_argument("-T", type=int, required=True)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokens = np.fromfile(args.val, dtype="<u2", offset=256 * 4)
    if tokens.size < args.rows * args.T + 1:
        sys.exit("error: %s: --val %s: %d tokens, fewer than --rows %d of -T %d" % (PROG, args.val, tokens.size, args.rows, args.T))
    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, "receptive_field.csv")
    results = read_results(csv_path, args.T)  # earlier runs into --out (other checkpoints) are kept
    for spec in args.checkpoints:
        if "=" not in spec:
            sys.exit("error: %s: '%s': expected NAME=CHECKPOINT" % (PROG, spec))
        name, path = spec.split("=", 1)
        cfg, params, layer_slots = load_checkpoint(path)
        if args.T > cfg["maxT"] and not cfg["rope"]:
            sys.exit("error: %s: -T %d exceeds %s's maxT %d" % (PROG, args.T, path, cfg["maxT"]))
        grad = gradient_by_distance(cfg, params, layer_slots, tokens, args.T, args.rows, args.batch, device)
        lps = [analyze_pattern.pattern(W=p["W"], S=p["S"], R=p["R"], d=p["d"], K=p["K"], causal=cfg["causal"], G=cfg["globals"])
               for p in layer_slots]
        reach = 1 << (args.T - 1)
        for lp in reversed(lps):
            reach = analyze_pattern.attended(lp, reach, args.T)
        reachable = [(reach >> (args.T - 1 - k)) & 1 for k in range(args.T)]
        results = [r for r in results if r[0] != name] + [(name, grad, reachable)]
        inside = [g for g, r in zip(grad, reachable) if r]
        outside = [g for g, r in zip(grad, reachable) if not r]
        print("%-30s gradient norm: mean %.3e where the pattern reaches, %s where it does not"
              % (name, np.mean(inside), "%.3e" % np.mean(outside) if outside else "(reaches everything)"), flush=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "distance", "grad_norm", "reachable"])
        for name, grad, reachable in results:
            for k in range(args.T):
                w.writerow([name, k, "%.6e" % grad[k], reachable[k]])
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no matplotlib, receptive_field.png skipped")
        return
    n = len(results)
    cols = min(n, 3)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.5 * cols, 3.2 * ((n + cols - 1) // cols)), squeeze=False)
    for ax, (name, grad, reachable) in zip(axes.flat, results):
        k = np.arange(args.T)
        ax.semilogy(k, np.maximum(grad, 1e-30), lw=0.8)
        for lo in range(args.T):  # shade the runs of unreachable distances
            if not reachable[lo] and (lo == 0 or reachable[lo - 1]):
                hi = lo
                while hi + 1 < args.T and not reachable[hi + 1]:
                    hi += 1
                ax.axvspan(lo, hi, color="red", alpha=0.12, lw=0)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("distance back from the last position")
        ax.set_ylabel("|d loss / d embedding|")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("measured receptive field (gradient norm) against the theoretical one (red: unreachable)", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "receptive_field.png"), dpi=110)
    print("wrote %s" % os.path.join(args.out, "receptive_field.png"))


if __name__ == "__main__":
    main()
