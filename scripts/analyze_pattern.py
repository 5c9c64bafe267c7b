#!/usr/bin/env python3
"""What an attention pattern costs and what it can see (seeds/001's hyperparameter analyzer).

    python3 scripts/analyze_pattern.py -T 4096 -W 256 -S 4 -L 12 --heads 12 -D 64 -B 8
    python3 scripts/analyze_pattern.py -T 500 -W 96 --dilation 4 --png mask.png
    python3 scripts/analyze_pattern.py -T 8 -W 3 --causal 0 --global 0 --json
    python3 scripts/analyze_pattern.py -T 16384 --layer-windows 256,256,0 -S 4 --png m.png --zoom 8000:8512
    python3 scripts/analyze_pattern.py --self-test

The pattern is SPEC §1's, with the trainers' flags: --window W (0 = full), --sinks S, --causal 0|1,
--lookahead R, --global P,P,..., --dilation d, --dilated-keys K (0 = no limit), the same in every
layer, or --layer-windows W,W,... (one window per layer, the rest shared, as in the trainers). It prints:
- allowed (query, key) pairs P per batch and head (per layer), and the sparsity 1 - P / dense, dense
  being T(T+1)/2 pairs when causal and T^2 when not;
- the receptive field by depth: the input positions that query --query (default T-1) draws on through
  the first l = 1..L layers, found by propagating the reachable set through the mask layer by layer
  (exact; sinks, globals and dilation included): how many, the farthest back (and forward when
  non-causal), and how far back every position is reached; beside it the band formula l*(W-1)
  (l*R forward), clamped to the sequence, which is exact only for a plain band;
- attention FLOPs on allowed pairs (SPEC §1): forward 4*P*D per batch and head, backward 2.5x,
  forward+backward 3.5x, times B*NH over the L layers;
- working memory of one layer's attention forward: a flash-style kernel (the trainers') holds Q, K,
  V and O in bf16 (4*B*NH*T*D*2 bytes) and one float log-sum-exp per row (B*NH*T*4); a dense-mask
  implementation (the seeds' PyTorch) holds the same Q, K, V, O plus a T x T score matrix per batch
  and head (B*NH*T^2 elements, given in bf16 and in float32) and the T x T boolean mask (T^2 bytes);
  training keeps each layer's share for the backward, so the totals are also given times L;
- a predicted attention time (forward, forward+backward) on an H200 and the speedup over dense
  causal attention, from TFLOP/s measured on allowed pairs: the nearest measured case (in log T and
  log keys per query) of bench/attention_compare_h200.csv and bench/attention_vs_torch.md (causal
  band + sinks, heads of 64 or 128, the trainers' band kernels); patterns the trainers run on the
  general path (dilation, globals, lookahead, non-causal) take the rates of the version they run
  there on the nearest of bench/attention_general_vs_flex.md's three benchmark patterns whose row
  ran the same version (its compared column is the trainers' dispatch: version 6's split where the
  dilated keys reach 448 or more back, version 5 elsewhere; non-causal layers with global positions
  at T >= 2048 now run version 7, not yet in that table: a note says so). A prediction, not a
  measurement: the file and row are named.
- with --png FILE, a picture of the mask (grey = allowed), band edges marked: the whole T x T
  mask up to T = 2048, beyond that rows 0..511 and the last 512 rows, or rows A..B-1 with --zoom A:B;
  a strip at the left shows sink / global key columns outside the view. Skipped with a note when
  matplotlib is missing.
--json prints the numbers as one JSON object instead of the text. --self-test checks the fast pair
count and receptive field against a brute-force allowed() on random small patterns.

The pair count follows the CPU trainer's allowed() (train_gpt_cpu.c, "trainer-pattern");
test/test_analyzer.sh checks it against the trainer's own count (test/pattern_pairs). Standard
library only; the picture needs matplotlib (scripts/install_deps.sh plot).
"""
import argparse
import csv
import json
import math
import os
import random
import re
import sys

PROG = "analyze_pattern.py"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATES_CSV = "bench/attention_compare_h200.csv"
RATES_MD = "bench/attention_vs_torch.md"
# the general path against FlexAttention: its TFLOP/s on allowed pairs per pattern and T
# (scripts/attention_general_vs_flex.py writes them). Its compared column (the newest version) is the
# trainers' dispatch when it was written: version 6's split on dilated layers whose keys reach far
# (split_pays), version 5 on every other, so a row ran the split exactly where split_pays holds for
# its pattern and T. Version 7 (globals_split) came after it.
GENERAL_MD = "bench/attention_general_vs_flex.md"
SPLIT_REACH = 448   # dev/cuda/attention_general.cu's gen6_pays
# version 7 measured on the Longformer pattern only, outside GENERAL_MD (one script's log)
V7_LOG = "version 7 108-114 ns a token forward+backward where version 5 takes 124-219 at T = 2048-16384, " \
         "bench/attention_general_vs_flex_longformer_h100_v7.log"
MAX_T = 1 << 20       # the pair count walks the rows in Python: about a second per distinct pattern here
PNG_FULL_T = 2048     # up to this T the picture shows the whole mask
ZOOM_ROWS = 512       # beyond it, the first and last this many rows
MAX_PX = 1024         # cells of the picture per axis; beyond, a cell is grey if any pair in it is allowed


class Fail(Exception):
    """An expected failure: main() prints it as one 'error: ...' line and exits 1."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 1, like ours
        raise Fail(message)


def popcount(x):
    return bin(x).count("1")


# ---------------------------------------------------------------------------- the pattern (SPEC §1)

def pattern(W=0, S=0, R=0, d=1, K=0, causal=1, G=()):
    return dict(W=W, S=S, R=R, d=d, K=K, causal=causal, G=sorted(G))


# the general path's benchmark patterns (scripts/attention_general_vs_flex.py runs them; the
# prediction below reads their rates back by name), each a function of T
GENERAL_PATTERNS = {
    "seeds001": lambda T: pattern(W=96, d=4),
    "dilated64": lambda T: pattern(W=256, d=4, K=64),
    "longformer": lambda T: pattern(W=256, R=256, causal=0, G=list(range(0, T, max(1, T // 16)))[:16]),
}


def allowed(p, i, j):
    """SPEC §1 / train_gpt_cpu.c's allowed(), rule by rule: the brute-force reference of --self-test."""
    W, S, R, d, K, causal = p["W"], p["S"], p["R"], p["d"], p["K"], p["causal"]
    if causal and j > i:
        return False
    o = i - j
    if o >= 0 and (W == 0 or o < W):
        return True
    if not causal and o < 0 and -o <= R:
        return True
    if j < S or (not causal and i < S):
        return True
    if j in p["G"] or (not causal and i in p["G"]):
        return True
    return d > 1 and W > 0 and o >= W and o % d == 0 and (K == 0 or o < W + K * d)


def row_count(p, i, T, gset):
    """Allowed keys of query i: the band (with lookahead) is one interval [lo, hi]; sinks, dilated
    keys and globals are added where they fall outside it, each key once."""
    W, S, R, d, K, causal = p["W"], p["S"], p["R"], p["d"], p["K"], p["causal"]
    if not causal and (i < S or i in gset):
        return T
    lo = 0 if W == 0 else max(0, i - W + 1)
    hi = i if causal else min(T - 1, i + R)
    n = hi - lo + 1
    s = min(S, T)
    n += min(s, lo) + (0 if causal else max(0, s - hi - 1))  # sinks left (and, non-causal, right) of it
    dil = d > 1 and W > 0
    if dil:  # offsets o >= W, o % d == 0, o < W + K*d; keys j = i - o < lo, those below s are sinks
        o0 = -(-W // d) * d
        omax = i - s if K == 0 else min(i - s, W + K * d - 1)
        if omax >= o0:
            n += (omax - o0) // d + 1
    for g in p["G"]:
        if g < s or lo <= g <= hi or (causal and g > i):
            continue
        o = i - g
        if dil and o >= W and o % d == 0 and (K == 0 or o < W + K * d):
            continue  # a dilated key, counted already
        n += 1
    return n


def count_pairs(p, T):
    W, S = p["W"], p["S"]
    if p["causal"] and not p["G"] and p["d"] == 1:  # band + sinks: closed form
        if W == 0 or W >= T:
            return T * (T + 1) // 2
        band = W * (W + 1) // 2 + (T - W) * W
        m = T - W  # query i >= W-1 has m = i-W+1 keys left of its band, 0..m; min(S, that) are sinks
        s = min(S, m)
        return band + s * (s + 1) // 2 + (m - s) * S
    gset = set(p["G"])
    return sum(row_count(p, i, T, gset) for i in range(T))


# ---------------------------------------------------------------------------- receptive field

def smear(x, step, n, T):
    """Union of x shifted by k*step for k = 0..n-1 (step < 0: towards higher positions), within 0..T-1."""
    full = (1 << T) - 1
    acc, have = x, 1
    while have < n:
        k = min(have, n - have)
        acc |= (acc >> (k * step)) if step > 0 else (acc << (-k * step)) & full
        have += k
    return acc & full


def attended(p, reach, T):
    """The set (a bit per position) of keys that the queries in reach attend through one layer."""
    W, S, R, d, K, causal = p["W"], p["S"], p["R"], p["d"], p["K"], p["causal"]
    full = (1 << T) - 1
    if reach == 0:
        return 0
    top = reach.bit_length() - 1  # the last query: causal keys never pass it
    s = min(S, T)
    if not causal and ((reach & ((1 << s) - 1)) or any(reach >> g & 1 for g in p["G"])):
        return full  # a sink or global query sees every key
    out = (1 << (top + 1)) - 1 if W == 0 else smear(reach, 1, W, T)
    if not causal and R > 0:
        out |= smear((reach << 1) & full, -1, R, T)
    out |= (1 << (min(s, top + 1) if causal else s)) - 1
    for g in p["G"]:
        if not causal or g <= top:
            out |= 1 << g
    if d > 1 and W > 0:
        o0 = -(-W // d) * d
        last = T - 1 if K == 0 else min(T - 1, W + K * d - 1)
        if last >= o0:
            out |= smear(reach >> o0, d, (last - o0) // d + 1, T)
    return out & full


def receptive_field(layer_patterns, T, q):
    """Per depth l: the input positions the output of layer l at position q depends on (layers l..1)."""
    out = []
    uniform = all(lp == layer_patterns[0] for lp in layer_patterns)
    reach = 1 << q
    full = (1 << T) - 1
    for l in range(1, len(layer_patterns) + 1):
        if uniform:
            reach = attended(layer_patterns[0], reach, T)
        else:
            reach = 1 << q
            for lp in reversed(layer_patterns[:l]):
                reach = attended(lp, reach, T)
        low = (reach & -reach).bit_length() - 1
        miss_back = ~reach & ((1 << (q + 1)) - 1)           # positions 0..q not reached
        miss_fwd = ~reach & full & ~((1 << q) - 1)           # positions q..T-1 not reached
        out.append(dict(layers=l, positions=popcount(reach), back=q - low, forward=reach.bit_length() - 1 - q,
                        contiguous_back=q if miss_back == 0 else q - miss_back.bit_length(),
                        contiguous_forward=T - 1 - q if miss_fwd == 0 else (miss_fwd & -miss_fwd).bit_length() - 2 - q))
    return out


def band_formula(layer_patterns, T, q):
    """l*(W-1) back and l*R forward (summed over layers when they differ), clamped to the sequence."""
    rows, back, fwd = [], 0, 0
    for lp in layer_patterns:
        back = math.inf if lp["W"] == 0 or back == math.inf else back + lp["W"] - 1
        fwd = 0 if lp["causal"] else fwd + lp["R"]
        rows.append(dict(back=int(min(q, back)), forward=int(min(T - 1 - q, fwd))))
    return rows


# ---------------------------------------------------------------------------- measured rates

def measured_cases():
    """Cases with measured TFLOP/s on allowed pairs: (source, T, W, S, fwd, fwd+bwd). Missing files
    are skipped; rows are read by column name."""
    cases = []
    try:
        with open(os.path.join(ROOT, RATES_CSV), newline="") as f:
            for r in csv.DictReader(f):
                T, B = int(r["T"]), int(r["B"])
                cases.append(dict(source=f"{RATES_CSV} row T={T} B={B}: dense causal (W=0) columns dense_fwd_tflops, dense_fwdbwd_tflops",
                                  T=T, W=0, S=0, D=int(r["D"]), fwd=float(r["dense_fwd_tflops"]), fwdbwd=float(r["dense_fwdbwd_tflops"])))
                cases.append(dict(source=f"{RATES_CSV} row T={T} B={B}: streaming W={r['W']} S={r['S']} columns stream_fwd_tflops, stream_fwdbwd_tflops",
                                  T=T, W=int(r["W"]), S=int(r["S"]), D=int(r["D"]),
                                  fwd=float(r["stream_fwd_tflops"]), fwdbwd=float(r["stream_fwdbwd_tflops"])))
    except (OSError, KeyError, ValueError):
        pass
    try:
        with open(os.path.join(ROOT, RATES_MD)) as f:
            for line in f:
                # | T | W | vs | fwd ms | fwd TFLOP/s ours / theirs | ratio | f+b ms | f+b TFLOP/s ours / theirs | ...
                c = [x.strip() for x in line.strip().strip("|").split("|")]
                if len(c) < 8 or not c[0].isdigit():
                    continue
                T, W = int(c[0]), 0 if c[1] == "full" else int(c[1])
                fwd, fwdbwd = float(c[4].split("/")[0]), float(c[7].split("/")[0])
                cases.append(dict(source=f"{RATES_MD} row T={T} W={c[1]} (ours, 4 sinks when windowed)",
                                  T=T, W=W, S=4 if W else 0, D=64, fwd=fwd, fwdbwd=fwdbwd))
    except (OSError, ValueError, IndexError):
        pass
    return cases


def split_pays(p, T):
    """dev/cuda/attention_general.cu's gen6_can (the pattern part) and gen6_pays: the trainers split
    this layer (version 6) when its dilated keys reach SPLIT_REACH or more back and each residue's
    subsequence fills a 64-row tile (T >= 64 d)."""
    if p["d"] <= 1 or p["W"] <= 0:
        return False
    reach = p["K"] * p["d"] if p["K"] > 0 else (T - p["W"]) // 2
    return reach >= SPLIT_REACH and T >= 64 * p["d"]


def globals_split(p, T):
    """dev/cuda/attention_general.cu's gen7_can (the pattern part) and gen7_pays: the trainers run a
    non-causal layer with global positions and no dilation at T >= 2048 on version 7 (the band without
    the globals, the globals' pairs on their own kernels, merged)."""
    return len(p["G"]) > 0 and p["d"] <= 1 and not p["causal"] and T >= 2048


def general_cases(md):
    """The general path's measured cases in md (the version it compares): (source, T, pattern, D, fwd,
    fwd+bwd TFLOP/s on allowed pairs); empty when it is missing."""
    cases = []
    try:
        with open(os.path.join(ROOT, md)) as f:
            for line in f:
                # | heads | pattern: description | T | ours fwd / fwd+bwd TFLOP/s (v4) | FlexAttention ... | ...
                c = [x.strip() for x in line.strip().strip("|").split("|")]
                if len(c) < 4 or not c[2].isdigit():
                    continue
                name, T = c[1].split(":")[0], int(c[2])
                if name not in GENERAL_PATTERNS:
                    continue
                fwd, fwdbwd = (float(x) for x in c[3].split("/"))
                p = GENERAL_PATTERNS[name](T)
                cases.append(dict(source=f"{md} row {c[0]} {name} T={T} (the version it compares)", T=T, pattern=p,
                                  D=int(c[0].split("x")[1]), fwd=fwd, fwdbwd=fwdbwd, kpq=count_pairs(p, T) / T))
    except (OSError, ValueError, IndexError):
        pass
    return cases


def nearest_case(cases, T, keys_per_query):
    """The measured case nearest in log T plus log (allowed keys per query)."""
    best, best_dist = None, math.inf
    for c in cases:
        if "kpq" not in c:
            c["kpq"] = count_pairs(pattern(c["W"], c["S"]), c["T"]) / c["T"]
        dist = abs(math.log(T / c["T"])) + abs(math.log(keys_per_query / c["kpq"]))
        if dist < best_dist:
            best, best_dist = c, dist
    return best


def on_band_kernels(p, D):
    """train_gpt_window.cu's attention_is_band(): the band kernels, else the general path."""
    return p["causal"] and not p["G"] and p["d"] == 1 and p["R"] == 0 and D in (64, 128)


def predict(layer_patterns, pairs, T, NH, D, B):
    cases = measured_cases()
    general = general_cases(GENERAL_MD)
    if not cases:
        return dict(note=f"no measured rates ({RATES_CSV}, {RATES_MD} not found)")
    layers, used, notes = [], {}, set()
    dense = [c for c in cases if c["W"] == 0 and c["source"].startswith(RATES_CSV)] or [c for c in cases if c["W"] == 0]
    dense_case = nearest_case(dense, T, (T + 1) / 2)
    if abs(math.log(T / dense_case["T"])) > math.log(2):
        notes.add(f"dense causal was measured up to T={dense_case['T']}: T={T} is extrapolated")
    dense_fwd = 4.0 * (T * (T + 1) // 2) * D * B * NH
    for lp in layer_patterns:
        key = json.dumps(lp, sort_keys=True)
        P = pairs[key]
        fwd = 4.0 * P * D * B * NH
        if on_band_kernels(lp, D):
            c = nearest_case(cases, T, P / T)
            used[c["source"]] = c
            if abs(math.log(T / c["T"])) > math.log(2) or abs(math.log(P / T / c["kpq"])) > math.log(2):
                notes.add(f"no measured case within 2x of T={T} and {P / T:.0f} keys per query: extrapolated")
            layers.append(dict(path="band", fwd_ms=fwd / (c["fwd"] * 1e12) * 1e3,
                               fwdbwd_ms=3.5 * fwd / (c["fwdbwd"] * 1e12) * 1e3, case=c["source"]))
        else:
            # the measured benchmark pattern of the same causality nearest in T and keys per query, timed
            # on the version the trainers run for this layer
            split = split_pays(lp, T) and D in (64, 128)
            gsplit = globals_split(lp, T) and D in (64, 128)
            same = [c for c in general if c["pattern"]["causal"] == lp["causal"]]
            same = [c for c in same if split_pays(c["pattern"], c["T"]) == split] or same  # rows that ran the same version
            if not same:
                notes.add(f"layers on the general path: no measured rates ({GENERAL_MD} not found), not predicted")
                layers.append(dict(path="general", fwd_ms=None, fwdbwd_ms=None, case=None))
                continue
            c = nearest_case(same, T, P / T)
            used[c["source"]] = c
            if split:
                notes.add(f"dilated layers whose keys reach {SPLIT_REACH} or more back run version 6's split: rates of "
                          f"the nearest of {GENERAL_MD}'s benchmark rows where the split ran")
            elif gsplit:
                notes.add("non-causal layers with global positions and no dilation run version 7 at T >= 2048 (the band, "
                          f"then the globals' pairs, merged), not yet in {GENERAL_MD}: predicted from version 5's rows, "
                          f"too slow there (the Longformer pattern: {V7_LOG})")
            else:
                notes.add("layers on the general path (dilation, globals, lookahead, non-causal): rates of version 5 "
                          f"on the nearest of {GENERAL_MD}'s benchmark rows that ran it; its speed depends on how full the "
                          "visited 64x64 tiles are, so a pattern unlike them can be far off")
            if D not in (64, 128):
                notes.add(f"heads of {D} run on the general path's version 2 (a warp a row), far slower than these rates")
            layers.append(dict(path="general", fwd_ms=fwd / (c["fwd"] * 1e12) * 1e3,
                               fwdbwd_ms=3.5 * fwd / (c["fwdbwd"] * 1e12) * 1e3, case=c["source"]))
    if D != 64:
        notes.add(f"the rates were measured with heads of 64; D={D} moves them")
    if B * T * NH < 32768 * 12 // 4:
        notes.add(f"the rates were measured at B*T*NH = 32768 tokens x 12 heads; B*T*NH = {B * T * NH} leaves the GPU partly idle")
    fwds = [x["fwd_ms"] for x in layers]
    fwd_ms = None if None in fwds else sum(fwds)
    fwdbwd = [x["fwdbwd_ms"] for x in layers]
    fwdbwd_ms = None if None in fwdbwd else sum(fwdbwd)
    L = len(layer_patterns)
    d_fwd_ms = L * dense_fwd / (dense_case["fwd"] * 1e12) * 1e3
    d_fwdbwd_ms = L * 3.5 * dense_fwd / (dense_case["fwdbwd"] * 1e12) * 1e3
    return dict(device="NVIDIA H200", fwd_ms=fwd_ms, fwdbwd_ms=fwdbwd_ms, layers=layers,
                cases=[dict(source=s, fwd_tflops=c.get("fwd"), fwdbwd_tflops=c.get("fwdbwd")) for s, c in used.items()],
                dense_causal=dict(case=dense_case["source"], fwd_tflops=dense_case["fwd"], fwdbwd_tflops=dense_case["fwdbwd"],
                                  fwd_ms=d_fwd_ms, fwdbwd_ms=d_fwdbwd_ms),
                speedup_fwd=None if fwd_ms is None else d_fwd_ms / fwd_ms, speedup_fwdbwd=None if fwdbwd_ms is None else d_fwdbwd_ms / fwdbwd_ms,
                notes=sorted(notes))


# ---------------------------------------------------------------------------- the report

def analyse(layer_patterns, T, NH, D, B, q):
    L = len(layer_patterns)
    pairs = {}
    for lp in layer_patterns:
        key = json.dumps(lp, sort_keys=True)
        if key not in pairs:
            pairs[key] = count_pairs(lp, T)
    causal = layer_patterns[0]["causal"]
    dense_pairs = T * (T + 1) // 2 if causal else T * T
    per_layer = [pairs[json.dumps(lp, sort_keys=True)] for lp in layer_patterns]
    total = sum(per_layer)
    fwd = 4.0 * total * D * B * NH
    qkvo = 4 * B * NH * T * D * 2
    flash = qkvo + B * NH * T * 4
    scores = B * NH * T * T
    memory = dict(flash_bytes=flash, dense_bf16_bytes=qkvo + 2 * scores + T * T, dense_float32_bytes=qkvo + 4 * scores + T * T,
                  qkvo_bf16_bytes=qkvo, lse_float_bytes=B * NH * T * 4, scores_elements=scores, mask_bytes=T * T,
                  layers=L)
    rf = receptive_field(layer_patterns, T, q)
    for row, f in zip(rf, band_formula(layer_patterns, T, q)):
        row["formula_back"], row["formula_forward"] = f["back"], f["forward"]
    return dict(T=T, layers=L, heads=NH, head_size=D, batch=B, query=q, patterns=layer_patterns,
                pairs_per_layer=per_layer, pairs=per_layer[0] if len(set(per_layer)) == 1 else None,
                dense_pairs=dense_pairs, sparsity_per_layer=[1 - x / dense_pairs for x in per_layer],
                sparsity=1 - total / (L * dense_pairs),
                flops=dict(fwd=fwd, bwd=2.5 * fwd, fwdbwd=3.5 * fwd),
                memory=memory, receptive_field=rf, prediction=predict(layer_patterns, pairs, T, NH, D, B))


def describe(p):
    parts = ["causal" if p["causal"] else "non-causal", f"window {p['W']}" if p["W"] else "full"]
    if p["S"]:
        parts.append(f"{p['S']} sinks")
    if p["R"]:
        parts.append(f"lookahead {p['R']}")
    if p["d"] > 1:
        parts.append(f"dilation {p['d']} x " + (f"{p['K']} keys" if p["K"] else "all keys"))
    if p["G"]:
        parts.append("globals " + ",".join(map(str, p["G"])))
    return ", ".join(parts)


def mib(x):
    return f"{x / 2**20:,.1f} MiB"


def print_report(r):
    T, L, NH, D, B, q = r["T"], r["layers"], r["heads"], r["head_size"], r["batch"], r["query"]
    pats = r["patterns"]
    uniform = r["pairs"] is not None and all(p == pats[0] for p in pats)
    if uniform:
        print(f"pattern: {describe(pats[0])}; T={T}, L={L} layers, NH={NH} heads of D={D}, B={B}")
    else:
        shared = describe(dict(pats[0], W=0, d=1)).replace(", full", "")
        print(f"pattern: {shared}, windows per layer {','.join(str(p['W']) for p in pats)}"
              + (f", dilation {pats[0]['d']} x {pats[0]['K'] or 'all'} keys" if pats[0]["d"] > 1 else "")
              + f"; T={T}, L={L} layers, NH={NH} heads of D={D}, B={B}")
    kind = "dense causal, T(T+1)/2" if pats[0]["causal"] else "dense, T^2"
    if uniform:
        P = r["pairs"]
        print(f"allowed pairs P per batch and head: {P:,} of {r['dense_pairs']:,} ({kind}): "
              f"{P / T:,.1f} keys per query, sparsity {100 * r['sparsity']:.2f}%")
    else:
        print(f"allowed pairs P per batch and head, per layer (of {r['dense_pairs']:,}, {kind}):")
        for l, (p, P) in enumerate(zip(pats, r["pairs_per_layer"]), 1):
            print(f"  layer {l:3d}: {P:>14,}  window {p['W']:6d}  sparsity {100 * (1 - P / r['dense_pairs']):6.2f}%")
        print(f"  all layers: sparsity {100 * r['sparsity']:.2f}%")
    f = r["flops"]
    print(f"attention FLOPs on allowed pairs, times B*NH = {B * NH} over {L} layers: forward (4*P*D) {f['fwd'] / 1e9:,.2f} GFLOP, "
          f"backward (2.5x) {f['bwd'] / 1e9:,.2f}, forward+backward (3.5x) {f['fwdbwd'] / 1e9:,.2f}")
    m = r["memory"]
    print(f"working memory of one layer's attention forward (x{L} layers when kept for the backward):")
    print(f"  flash-style (the trainers' kernels): Q, K, V, O bf16 {mib(m['qkvo_bf16_bytes'])} + float log-sum-exp "
          f"per row {mib(m['lse_float_bytes'])} = {mib(m['flash_bytes'])} (x{L}: {mib(L * m['flash_bytes'])})")
    print(f"  dense mask (the seeds' PyTorch): Q, K, V, O + a T x T score matrix per batch and head "
          f"({m['scores_elements']:,} elements) + the T x T bool mask ({mib(m['mask_bytes'])}) = "
          f"{mib(m['dense_bf16_bytes'])} with bf16 scores, {mib(m['dense_float32_bytes'])} with float32 "
          f"(x{L}: {mib(L * m['dense_bf16_bytes'])} / {mib(L * m['dense_float32_bytes'])})")
    noncausal = not pats[0]["causal"]
    print(f"receptive field of position {q} by depth (exact: the mask propagated through layers l..1);")
    print("band formula: l*(W-1) back" + (", l*R forward" if noncausal else "") +
          ", clamped to the sequence (exact only for a plain band):")
    head = f"  {'layers':>6} {'positions':>10} {'farthest back':>14} {'all back to':>12}"
    if noncausal:
        head += f" {'farthest fwd':>13} {'all fwd to':>11}"
    print(head + f" {'formula back':>13}" + (f" {'formula fwd':>12}" if noncausal else ""))
    for x in r["receptive_field"]:
        line = f"  {x['layers']:6d} {x['positions']:10,} {x['back']:14,} {x['contiguous_back']:12,}"
        if noncausal:
            line += f" {x['forward']:13,} {x['contiguous_forward']:11,}"
        print(line + f" {x['formula_back']:13,}" + (f" {x['formula_forward']:12,}" if noncausal else ""))
    pr = r["prediction"]
    if "note" in pr:
        print(f"predicted time: {pr['note']}")
        return
    print(f"predicted attention time, all {L} layers, on an {pr['device']} (a prediction from measured TFLOP/s "
          "on allowed pairs, not a measurement):")
    for c in pr["cases"]:
        rate = f": {c['fwd_tflops']:g} / {c['fwdbwd_tflops']:g} TFLOP/s fwd / fwd+bwd" if c.get("fwd_tflops") else ""
        print(f"  rates from {c['source']}{rate}")
    fw = f"{pr['fwd_ms']:.3f} ms" if pr["fwd_ms"] is not None else "not predicted"
    fb = f"{pr['fwdbwd_ms']:.3f} ms" if pr["fwdbwd_ms"] is not None else "not predicted"
    print(f"  this pattern: forward {fw}, forward+backward {fb}")
    d = pr["dense_causal"]
    print(f"  dense causal ({d['case']}: {d['fwd_tflops']:g} / {d['fwdbwd_tflops']:g} TFLOP/s): "
          f"forward {d['fwd_ms']:.3f} ms, forward+backward {d['fwdbwd_ms']:.3f} ms")
    sf = f"{pr['speedup_fwd']:.2f}x" if pr["speedup_fwd"] is not None else "-"
    sp = f"{pr['speedup_fwdbwd']:.2f}x" if pr["speedup_fwdbwd"] is not None else "-"
    print(f"  predicted speedup over dense causal: forward {sf}, forward+backward {sp}")
    for n in pr["notes"]:
        print(f"  note: {n}")


# ---------------------------------------------------------------------------- the picture

def mask_block(np, p, rows, cols, T):
    """Boolean (len(rows), len(cols)): allowed(rows[a], cols[b]), vectorized."""
    i, j = rows[:, None], cols[None, :]
    o = i - j
    W, S, R, d, K = p["W"], p["S"], p["R"], p["d"], p["K"]
    ok = (o >= 0) & ((W == 0) | (o < W))
    ok = ok | (j < S)
    if not p["causal"]:
        ok = ok | ((o < 0) & (-o <= R)) | (i < S)
    if p["G"]:
        g = np.zeros(T, dtype=bool)
        g[p["G"]] = True
        ok = ok | g[cols][None, :]
        if not p["causal"]:
            ok = ok | g[rows][:, None]
    if d > 1 and W > 0:
        ok = ok | ((o >= W) & (o % d == 0) & ((K == 0) | (o < W + K * d)))
    if p["causal"]:
        ok = ok & (o >= 0)
    return ok


def pooled(np, p, r0, r1, cols, T):
    """The mask of rows r0..r1-1 and the given key columns, at most MAX_PX cells a side (a cell is
    set when any of its pairs is allowed)."""
    fr = -(-(r1 - r0) // MAX_PX)
    fc = -(-len(cols) // MAX_PX)
    nr, nc = -(-(r1 - r0) // fr), -(-len(cols) // fc)
    grid = np.zeros((nr, nc), dtype=bool)
    pad = nc * fc - len(cols)
    for a in range(0, nr, max(1, 64 // fr)):
        b = min(nr, a + max(1, 64 // fr))
        rows = np.arange(r0 + a * fr, min(r1, r0 + b * fr))
        m = mask_block(np, p, rows, cols, T)
        m = np.pad(m, ((0, (b - a) * fr - len(rows)), (0, pad)))
        grid[a:b] = m.reshape(b - a, fr, nc, fc).any(axis=(1, 3))
    return grid, fr, fc


def view_keys(p, T, r0, r1):
    """The key range shown for rows r0..r1-1: the band, lookahead and a bounded stretch of dilated keys."""
    if p["W"] == 0:
        c0 = 0
    else:
        extra = 0
        if p["d"] > 1:
            extra = p["K"] * p["d"] if p["K"] else min(r1 - r0, 4 * p["W"])
        c0 = max(0, r0 - (p["W"] - 1 + extra) - max(8, (r1 - r0) // 16))
    c1 = r1 if p["causal"] else min(T, r1 + p["R"] + max(8, (r1 - r0) // 16))
    return c0, c1


def draw(layer_patterns, T, zoom, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        print(f"note: matplotlib is missing: no picture written to {path} (scripts/install_deps.sh plot)")
        return
    distinct = []
    for lp in layer_patterns:
        if lp not in distinct:
            distinct.append(lp)
    if len(distinct) > 4:
        print(f"note: --png draws the first 4 of {len(distinct)} distinct layer patterns")
        distinct = distinct[:4]
    if zoom:
        spans = [zoom]
    elif T <= PNG_FULL_T:
        spans = [(0, T)]
    else:
        spans = [(0, ZOOM_ROWS), (T - ZOOM_ROWS, T)]
    cmap = matplotlib.colors.ListedColormap(["white", "0.45"])  # allowed in grey: the edge lines stay visible
    fig = plt.figure(figsize=(6.2 * len(spans), 6.0 * len(distinct)))
    outer = fig.add_gridspec(len(distinct), len(spans), hspace=0.25, wspace=0.2)
    for a, p in enumerate(distinct):
        for b, (r0, r1) in enumerate(spans):
            c0, c1 = (0, T) if (r0, r1) == (0, T) else view_keys(p, T, r0, r1)
            side = [j for j in range(min(p["S"], c0, 32))] + [g for g in p["G"] if p["S"] <= g < c0][:32]
            if side:
                inner = outer[a, b].subgridspec(1, 2, width_ratios=[1, 12], wspace=0.04)
                ax_s, ax = fig.add_subplot(inner[0, 0]), fig.add_subplot(inner[0, 1])
                g, fr, _ = pooled(np, p, r0, r1, np.array(side), T)
                ax_s.imshow(g, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto",
                            extent=(-0.5, len(side) - 0.5, r1 - 0.5, r0 - 0.5))
                ax_s.set_xticks(range(len(side)))
                ax_s.set_xticklabels([str(j) for j in side], fontsize=5, rotation=90)
                ax_s.set_ylabel("query i")
                ax_s.set_xlabel("sinks,\nglobals", fontsize=6)
                ax.tick_params(labelleft=False)
            else:
                ax = fig.add_subplot(outer[a, b])
                ax.set_ylabel("query i")
            cols = np.arange(c0, c1)
            g, fr, fc = pooled(np, p, r0, r1, cols, T)
            ax.imshow(g, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto",
                      extent=(c0 - 0.5, c1 - 0.5, r1 - 0.5, r0 - 0.5))
            i = np.array([r0, r1 - 1])
            if p["W"] > 0:  # band edges: j = i - W + 1 on the left, j = i (+R) on the right
                ax.plot(i - p["W"] + 1, i, color="tab:red", lw=1.2, ls="--", label=f"window edge (i-j = W-1 = {p['W'] - 1})")
                if p["d"] > 1 and p["K"]:
                    ax.plot(i - (p["W"] + p["K"] * p["d"]) + 1, i, color="tab:blue", lw=1.2, ls=":",
                            label=f"last dilated key (i-j < W+K*d = {p['W'] + p['K'] * p['d']})")
            ax.plot(i + (0 if p["causal"] else p["R"]), i, color="tab:orange", lw=1.2, ls="--",
                    label="i-j = 0" if p["causal"] or not p["R"] else f"lookahead edge (j-i = R = {p['R']})")
            ax.set_xlim(c0 - 0.5, c1 - 0.5)
            ax.set_ylim(r1 - 0.5, r0 - 0.5)
            ax.set_xlabel("key j")
            cell = f"; a cell is {fr} x {fc} pairs, grey if any is allowed" if fr > 1 or fc > 1 else ""
            ax.set_title(f"{describe(p)}, T={T}\nrows {r0}..{r1 - 1}, keys {c0}..{c1 - 1}{cell}", fontsize=8)
            ax.legend(loc="upper right" if p["causal"] else "lower left", fontsize=6)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


# ---------------------------------------------------------------------------- self-test

def self_test():
    """The fast count and the bitset receptive field against allowed() by brute force."""
    rng = random.Random(1)
    n = 0
    for _ in range(300):
        T = rng.randint(1, 70)
        causal = rng.randint(0, 1)
        W = rng.choice([0, rng.randint(1, 20)])
        d = 1 if W == 0 else rng.choice([1, 1, 2, 3, 5])
        p = pattern(W, rng.choice([0, 0, rng.randint(1, 6)]), 0 if causal else rng.choice([0, rng.randint(1, 6)]),
                    d, 0 if d == 1 else rng.randint(0, 4), causal, rng.sample(range(T), rng.choice([0, 0, 1, 3][:1 + min(3, T - 1)])))
        want = sum(allowed(p, i, j) for i in range(T) for j in range(T))
        got = count_pairs(p, T)
        if got != want:
            raise Fail(f"self-test: {p} T={T}: fast count {got}, brute force {want}")
        q = rng.randrange(T)
        reach = {q}
        rf = receptive_field([p] * 4, T, q)
        for x in rf:
            reach = {j for i in reach for j in range(T) if allowed(p, i, j)}
            if x["positions"] != len(reach) or x["back"] != q - min(reach) or x["forward"] != max(reach) - q:
                raise Fail(f"self-test: {p} T={T} q={q} depth {x['layers']}: receptive field {x}, brute force {sorted(reach)}")
            cb = 0
            while q - cb - 1 >= 0 and q - cb - 1 in reach:
                cb += 1
            cf = 0
            while q + cf + 1 < T and q + cf + 1 in reach:
                cf += 1
            if x["contiguous_back"] != cb or x["contiguous_forward"] != cf:
                raise Fail(f"self-test: {p} T={T} q={q}: contiguous {x}, brute force back {cb} forward {cf}")
        n += 1
    print(f"self-test: {n} random patterns: pair counts and receptive fields equal the brute-force allowed()")


# ---------------------------------------------------------------------------- command line

def int_list(flag, text):
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise Fail(f"{flag} '{text}': expected a comma-separated list of integers")
    return values


def pattern_flags_checked(T, causal, lookahead, dilation, dilated_keys, globals_text):
    """The pattern flags' rules that do not depend on the window (SPEC §1, as the trainers check
    them): one Fail naming the flag. Returns the global positions (globals_text: "P,P,..." or None).
    scripts/train_torch_twin.py checks its flags with it too."""
    if causal not in (0, 1):
        raise Fail(f"--causal {causal}: expected 0 or 1")
    if causal and lookahead:
        raise Fail(f"--lookahead {lookahead} needs non-causal attention (--causal 0)")
    if dilated_keys and dilation == 1:
        raise Fail(f"--dilated-keys {dilated_keys} needs a --dilation > 1")
    G = []
    if globals_text is not None:
        G = int_list("--global", globals_text)
        if any(g < 0 or g >= T for g in G):
            raise Fail(f"--global '{globals_text}': positions must be in 0..{T - 1}")
        if len(set(G)) != len(G):
            raise Fail(f"--global '{globals_text}': a position is repeated")
    return G


def main(argv=None):
    ap = Parser(prog=PROG, description=__doc__, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-T", type=int, help="sequence length")
    ap.add_argument("-W", "--window", type=int, default=0, help="keys 0 <= i-j < W; 0 = full (default 0)")
    ap.add_argument("-S", "--sinks", type=int, default=0, help="keys j < S always (default 0)")
    ap.add_argument("--causal", type=int, default=1, help="1 (default) or 0")
    ap.add_argument("-R", "--lookahead", type=int, default=0, help="non-causal only: keys 0 < j-i <= R (default 0)")
    ap.add_argument("--global", dest="globals", help="global positions P,P,...")
    ap.add_argument("--dilation", type=int, default=1, help="every d-th key beyond the window; 1 = off (default)")
    ap.add_argument("--dilated-keys", type=int, default=0, help="how many dilated keys; 0 = no limit (default)")
    ap.add_argument("--layer-windows", help="W,W,...: one window per layer (sets L; the rest is shared)")
    ap.add_argument("-L", "--layers", type=int, help="layers (default 12, or the count of --layer-windows)")
    ap.add_argument("--heads", type=int, default=12, help="NH (default 12)")
    ap.add_argument("-D", "--head-size", type=int, default=64, help="D (default 64)")
    ap.add_argument("-B", "--batch", type=int, default=8, help="B (default 8)")
    ap.add_argument("--query", type=int, help="the position whose receptive field is traced (default T-1)")
    ap.add_argument("--png", help="draw the mask into this file")
    ap.add_argument("--zoom", help=f"A:B: draw rows A..B-1 (default: all up to T={PNG_FULL_T}, else the first and last {ZOOM_ROWS})")
    ap.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    ap.add_argument("--self-test", action="store_true", help="check the fast counts against a brute-force allowed()")
    a = ap.parse_args(argv)
    if a.self_test:
        self_test()
        return 0
    if a.T is None:
        raise Fail("-T is required (see -h)")
    if not 1 <= a.T <= MAX_T:
        raise Fail(f"-T {a.T}: expected 1 to {MAX_T}")
    for flag, value, low in (("--window", a.window, 0), ("--sinks", a.sinks, 0), ("--lookahead", a.lookahead, 0),
                             ("--dilation", a.dilation, 1), ("--dilated-keys", a.dilated_keys, 0),
                             ("--heads", a.heads, 1), ("--head-size", a.head_size, 1), ("--batch", a.batch, 1)):
        if value < low:
            raise Fail(f"{flag} {value}: expected an integer >= {low}")
    G = pattern_flags_checked(a.T, a.causal, a.lookahead, a.dilation, a.dilated_keys, a.globals)
    if a.layer_windows is not None:
        if a.window:
            raise Fail("--layer-windows sets every layer's window: drop --window")
        windows = int_list("--layer-windows", a.layer_windows)
        if any(w < 0 for w in windows):
            raise Fail(f"--layer-windows '{a.layer_windows}': windows must be >= 0 (0 = full)")
        if a.layers is not None and a.layers != len(windows):
            raise Fail(f"--layer-windows has {len(windows)} values, -L says {a.layers} layers")
    else:
        if a.layers is not None and a.layers < 1:
            raise Fail(f"--layers {a.layers}: expected an integer >= 1")
        windows = [a.window] * (a.layers or 12)
    if a.dilation > 1 and 0 in windows:
        raise Fail(f"--dilation {a.dilation} needs a window in every layer (with window 0 every key is seen already)")
    q = a.T - 1 if a.query is None else a.query
    if not 0 <= q < a.T:
        raise Fail(f"--query {q}: expected a position in 0..{a.T - 1}")
    zoom = None
    if a.zoom is not None:
        m = re.fullmatch(r"(\d+):(\d+)", a.zoom)
        if not m or not 0 <= int(m.group(1)) < int(m.group(2)) <= a.T:
            raise Fail(f"--zoom '{a.zoom}': expected A:B with 0 <= A < B <= T = {a.T}")
        zoom = (int(m.group(1)), int(m.group(2)))
    layer_patterns = [pattern(w, a.sinks, a.lookahead, a.dilation, a.dilated_keys, a.causal, G) for w in windows]
    r = analyse(layer_patterns, a.T, a.heads, a.head_size, a.batch, q)
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        print_report(r)
    if a.png:
        draw(layer_patterns, a.T, zoom, a.png)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        print(f"error: {PROG}: {e}", file=sys.stderr)
        sys.exit(1)
