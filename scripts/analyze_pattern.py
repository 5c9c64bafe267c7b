#!/usr/bin/env python3
"""What an attention pattern costs and what it can see (seeds/001's pattern analyzer).

    python3 scripts/analyze_pattern.py -T 4096 -W 256 -S 4 -L 12 --heads 12 -D 64 -B 8
    python3 scripts/analyze_pattern.py -T 500 -W 96 --dilation 4 --png mask.png
    python3 scripts/analyze_pattern.py -T 8 -W 3 --causal 0 --global 0 --json

The pattern is SPEC §1's (the flags are the trainers': --window W, --sinks S, --causal,
--lookahead R, --global P,P, --dilation d, --dilated-keys K), the same in every layer. It prints:
- allowed (query, key) pairs P per batch and head, and their share of dense attention (T(T+1)/2
  pairs when causal, T^2 when not);
- the receptive field by depth: the positions that the last query (T-1) can draw on through 1..L
  layers, found by following the mask layer by layer; next to it L*(W-1), the band's formula;
- attention FLOPs on allowed pairs (SPEC §1: forward 4*P*D, backward 2.5x that) for B, heads, L;
- working memory of one layer's attention: what a flash-style kernel keeps (q, k, v and the output
  in bf16, a float log-sum-exp per row; the trainers' kernels) against a dense-mask implementation
  that also materializes the T x T scores and probabilities (bf16) per head, as the seeds' PyTorch
  code does;
- a predicted attention time, forward and forward+backward, from kernel rates measured on an H200
  (bench/attention_compare_h200.csv, the row of the nearest T; a prediction, not a measurement:
  the rates were measured at W=256 with 4 sinks and D=64);
- with --png FILE, a picture of the mask (rows 0..--zoom, default all up to 1024).

The pair count is SPEC §1's allowed(), the same rule as the CPU trainer's (test/test_analyzer.sh
checks the counts against it). Needs numpy; the picture needs matplotlib.
"""
import argparse
import csv
import json
import math
import os
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("error: analyze_pattern.py: needs numpy (apt-get install python3-numpy)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATES_CSV = os.path.join(ROOT, "bench", "attention_compare_h200.csv")
MAX_T = 1 << 16  # rows are counted in blocks of T booleans: beyond this it takes minutes


def fail(message):
    print(f"error: analyze_pattern.py: {message}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------- the mask

def mask_rows(p, rows, T):
    """Boolean (len(rows), T): [r, j] = query rows[r] may attend key j (SPEC §1, in the order of
    the C trainer's allowed(): causality first, then band, lookahead, sinks, globals, dilation)."""
    i = np.asarray(rows)[:, None]
    j = np.arange(T)[None, :]
    o = i - j
    W, S, R, d, K, causal, G = p["W"], p["S"], p["R"], p["d"], p["K"], p["causal"], p["globals"]
    ok = (o >= 0) & ((W == 0) | (o < W))
    if not causal:
        ok |= (o < 0) & (-o <= R)
        ok |= i < S
    ok |= j < S
    if G:
        g = np.zeros(T, dtype=bool)
        g[[x for x in G if x < T]] = True
        ok |= g[None, :]
        if not causal:
            ok |= g[np.asarray(rows)][:, None]
    if d > 1 and W > 0:
        ok |= (o >= W) & (o % d == 0) & ((K == 0) | (o < W + K * d))
    if causal:
        ok &= o >= 0
    return ok


def count_pairs(p, T, block=512):
    return int(sum(mask_rows(p, range(r, min(T, r + block)), T).sum() for r in range(0, T, block)))


def receptive_field(p, T, L):
    """Per depth l = 1..L: how many positions the last query can draw on, the farthest one back, and
    how far back every position is reachable (the contiguous run), following the mask layer by layer."""
    reach = np.zeros(T, dtype=bool)
    reach[T - 1] = True
    out = []
    for _ in range(L):
        rows = np.flatnonzero(reach)
        nxt = np.zeros(T, dtype=bool)
        for r in range(0, len(rows), 256):
            nxt |= mask_rows(p, rows[r:r + 256], T).any(axis=0)
        reach = nxt
        seen = np.flatnonzero(reach)
        gaps = np.flatnonzero(~reach[:T - 1])  # the contiguous run back from T-1 ends at the last gap
        out.append(dict(positions=int(len(seen)), back=int(T - 1 - seen[0]),
                        contiguous=int(T - 2 - gaps[-1]) if len(gaps) else T - 1))
    return out


# ---------------------------------------------------------------------------- costs

def memory_bytes(T, B, NH, D):
    """One layer's attention, forward, as described in the module docstring."""
    qkvo = 4 * B * T * NH * D * 2                 # q, k, v, output in bf16
    flash = qkvo + B * NH * T * 4                 # + float log-sum-exp per row
    dense = qkvo + 2 * B * NH * T * T * 2         # + scores and probabilities, bf16
    return flash, dense


def measured_rates(T):
    """(row, stream fwd / fwd+bwd TFLOP/s, dense fwd / fwd+bwd TFLOP/s) of the CSV row whose T is
    nearest (log scale), or None if the file is missing."""
    try:
        rows = list(csv.DictReader(open(RATES_CSV)))
    except OSError:
        return None
    best = min(rows, key=lambda r: abs(math.log(int(r["T"]) / T)))
    return best, float(best["stream_fwd_tflops"]), float(best["stream_fwdbwd_tflops"]), \
        float(best["dense_fwd_tflops"]), float(best["dense_fwdbwd_tflops"])


def analyse(p, T, L, NH, D, B):
    pairs = count_pairs(p, T)
    dense_pairs = T * (T + 1) // 2 if p["causal"] else T * T
    fwd = 4.0 * pairs * D * B * NH * L
    dense_fwd = 4.0 * (T * (T + 1) // 2) * D * B * NH * L   # dense causal: the baseline
    flash, dense_mem = memory_bytes(T, B, NH, D)
    r = dict(pattern=p, T=T, layers=L, heads=NH, head_size=D, batch=B, pairs=pairs, dense_pairs=dense_pairs,
             sparsity=1.0 - pairs / dense_pairs, fwd_flops=fwd, fwdbwd_flops=3.5 * fwd,
             memory_flash_bytes=flash, memory_dense_mask_bytes=dense_mem,
             receptive_field=receptive_field(p, T, L),
             band_formula=[min(T - 1, l * (p["W"] - 1)) if p["W"] > 0 else T - 1 for l in range(1, L + 1)])
    rates = measured_rates(T)
    if rates:
        row, s_f, s_fb, d_f, d_fb = rates
        r["prediction"] = dict(source=f"{os.path.relpath(RATES_CSV, ROOT)}, row T={row['T']} W={row['W']} S={row['S']}",
                               fwd_ms=fwd / (s_f * 1e12) * 1e3, fwdbwd_ms=3.5 * fwd / (s_fb * 1e12) * 1e3,
                               dense_causal_fwd_ms=dense_fwd / (d_f * 1e12) * 1e3,
                               dense_causal_fwdbwd_ms=3.5 * dense_fwd / (d_fb * 1e12) * 1e3)
    return r


def describe(p):
    parts = ["causal" if p["causal"] else "non-causal", f"window {p['W']}" if p["W"] else "full"]
    if p["S"]:
        parts.append(f"{p['S']} sinks")
    if p["R"]:
        parts.append(f"lookahead {p['R']}")
    if p["d"] > 1:
        parts.append(f"dilation {p['d']}" + (f", {p['K']} dilated keys" if p["K"] else ""))
    if p["globals"]:
        parts.append("globals " + ",".join(map(str, p["globals"])))
    return ", ".join(parts)


def print_report(r):
    p, T = r["pattern"], r["T"]
    print(f"pattern: {describe(p)}; T={T}, L={r['layers']}, {r['heads']} heads of {r['head_size']}, B={r['batch']}")
    print(f"allowed pairs per batch and head: {r['pairs']:,} of {r['dense_pairs']:,} "
          f"({'causal' if p['causal'] else 'full'} dense): sparsity {100 * r['sparsity']:.2f}%")
    print(f"attention FLOPs (all layers): forward {r['fwd_flops'] / 1e9:,.2f} GFLOP, forward+backward {r['fwdbwd_flops'] / 1e9:,.2f} GFLOP")
    print(f"working memory of one layer's attention: {r['memory_flash_bytes'] / 2**20:,.1f} MiB flash-style, "
          f"{r['memory_dense_mask_bytes'] / 2**20:,.1f} MiB with a dense mask (scores and probabilities)")
    print("receptive field of the last query by depth: positions it can draw on, the farthest back, how far back")
    print("it sees every position (band formula: L*(W-1)):")
    for l, (rf, formula) in enumerate(zip(r["receptive_field"], r["band_formula"]), 1):
        print(f"  {l:3d} layers: {rf['positions']:7d} positions, farthest {rf['back']:6d} back, "
              f"every position {rf['contiguous']:6d} back   (formula {formula})")
    pr = r.get("prediction")
    if pr:
        print(f"predicted attention time (all layers; rates from {pr['source']}, a prediction): forward {pr['fwd_ms']:.3f} ms, "
              f"forward+backward {pr['fwdbwd_ms']:.3f} ms; dense causal {pr['dense_causal_fwd_ms']:.3f} / "
              f"{pr['dense_causal_fwdbwd_ms']:.3f} ms: speedup {pr['dense_causal_fwdbwd_ms'] / pr['fwdbwd_ms']:.1f}x")
    else:
        print(f"predicted time: {os.path.relpath(RATES_CSV, ROOT)} not found")


def draw(p, T, zoom, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is missing: no picture (scripts/install_deps.sh plot)")
        return
    n = min(T, zoom)
    m = mask_rows(p, range(n), min(T, n if p["causal"] else T))
    fig, ax = plt.subplots(figsize=(7, 7 * m.shape[0] / m.shape[1] + 0.8))
    ax.imshow(m, cmap="Greys", interpolation="nearest", aspect="equal")
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
    ax.set_title(f"{describe(p)}, T={T}" + (f" (rows 0..{n - 1})" if n < T else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-T", type=int, required=True, help="sequence length")
    ap.add_argument("-W", "--window", type=int, default=0, help="keys 0 <= i-j < W; 0 = full (default)")
    ap.add_argument("-S", "--sinks", type=int, default=0)
    ap.add_argument("--causal", type=int, default=1, choices=(0, 1))
    ap.add_argument("--lookahead", type=int, default=0)
    ap.add_argument("--global", dest="globals", default="", help="global positions, P,P,...")
    ap.add_argument("--dilation", type=int, default=1)
    ap.add_argument("--dilated-keys", type=int, default=0)
    ap.add_argument("-L", "--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("-D", "--head-size", type=int, default=64)
    ap.add_argument("-B", "--batch", type=int, default=8)
    ap.add_argument("--png", help="draw the mask into this file")
    ap.add_argument("--zoom", type=int, default=1024, help="rows drawn by --png (default 1024)")
    ap.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    a = ap.parse_args()
    if not 1 <= a.T <= MAX_T:
        fail(f"-T {a.T}: expected 1 to {MAX_T}")
    for name, value, low in (("--window", a.window, 0), ("--sinks", a.sinks, 0), ("--lookahead", a.lookahead, 0),
                             ("--dilation", a.dilation, 1), ("--dilated-keys", a.dilated_keys, 0), ("--layers", a.layers, 1),
                             ("--heads", a.heads, 1), ("--head-size", a.head_size, 1), ("--batch", a.batch, 1), ("--zoom", a.zoom, 1)):
        if value < low:
            fail(f"{name} {value}: expected an integer >= {low}")
    try:
        globals_ = sorted({int(x) for x in a.globals.split(",") if x != ""}) if a.globals else []
    except ValueError:
        fail(f"--global '{a.globals}': expected positions P,P,...")
    if any(g < 0 or g >= a.T for g in globals_):
        fail(f"--global '{a.globals}': positions must be in 0..{a.T - 1}")
    if a.causal and a.lookahead:
        fail("--lookahead needs --causal 0 (SPEC §1)")
    p = dict(W=a.window, S=a.sinks, R=a.lookahead, d=a.dilation, K=a.dilated_keys, causal=a.causal, globals=globals_)
    r = analyse(p, a.T, a.layers, a.heads, a.head_size, a.batch)
    if a.json:
        print(json.dumps(r))
    else:
        print_report(r)
    if a.png:
        draw(p, a.T, a.zoom, a.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
