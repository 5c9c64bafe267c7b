#!/usr/bin/env python3
"""Issue 18's side by side on one GPU: the general attention path (dev/cuda/attention_general.cu,
every version, through build/libattention_general.so) against FlexAttention with the same mask_mod,
on the patterns the fast band kernels do not take.

Patterns (SPEC §1), at B·T = 32768 and T = 1024 ... 16384:
  seeds001     causal window 96 with every 4th key beyond it (seeds/001's study)
  dilated64    causal window 256 with 64 dilated keys at stride 4
  longformer   non-causal window and lookahead 256 with 16 global positions T/16 apart (seeds/002)
Ours: each version of the general path (v1 walks every key and is skipped past T = 4096: minutes);
the last (the newest) is the one compared. FlexAttention: compiled, block mask built once from
scripts/train_torch_twin.py's pattern_allows (SPEC §1's rule, checked against the trainer's pairs by
`make test`). The last version's output and gradients are checked against FlexAttention's and every
other version's against the last (relative error under 1e-2, bf16); a case that disagrees is
reported and the script exits non-zero. Times: triton's do_bench medians (L2 flushed). TFLOP/s on
allowed pairs: forward 4·P·D per head, forward+backward 3.5x that. Run on the GPU machine:

    make build/libattention_general.so && python3 scripts/attention_general_vs_flex.py

Writes bench/attention_general_vs_flex.md (the table) and .png (time per token against T: flat
where work follows the allowed pairs).
"""
import argparse
import ctypes
import datetime
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import analyze_pattern  # noqa: E402  (SPEC §1 in Python: pair counts, descriptions)
from attention_vs_torch import TOL, first_line, gpu_bench, parse_heads, rel_err  # noqa: E402
from train_torch_twin import global_flags, pattern_allows  # noqa: E402

PATTERNS = analyze_pattern.GENERAL_PATTERNS   # one home: analyze_pattern.py reads their rates back by name
V1_MAX_T = 4096


def load_library(path):
    if not os.path.exists(path):
        sys.exit(f"error: {path} not found: build it with `make {path}`")
    lib = ctypes.CDLL(path)
    ptr, i = ctypes.c_void_p, ctypes.c_int
    pattern_args = [i, i, i, i, i, i, i, ptr]   # causal, W, S, R, d, K, number of globals, globals
    lib.gen_forward.argtypes = [i, ptr, ptr, ptr, i, i, i, i] + pattern_args
    lib.gen_backward.argtypes = [i, ptr, ptr, ptr, ptr, ptr, ptr, i, i, i, i] + pattern_args
    lib.gen_version_name.restype = ctypes.c_char_p
    lib.gen_pair_count.argtypes = [i] + pattern_args
    lib.gen_pair_count.restype = ctypes.c_longlong
    return lib


def pattern_call_args(p):
    G = (ctypes.c_int * max(1, len(p["G"])))(*p["G"])
    return [p["causal"], p["W"], p["S"], p["R"], p["d"], p["K"], len(p["G"]), ctypes.cast(G, ctypes.c_void_p)], G


def run_case(lib, versions, B, T, NH, D, p, do_bench):
    dev = "cuda"
    torch._dynamo.reset()  # each case compiles FlexAttention afresh
    g = torch.Generator(device=dev).manual_seed(4321 + T + D)
    qkv = torch.randn(B, T, 3, NH, D, device=dev, dtype=torch.bfloat16, generator=g)   # ours: (B, T, 3, NH, D)
    dout = torch.randn(B, T, NH, D, device=dev, dtype=torch.bfloat16, generator=g)
    out = torch.empty(B, T, NH, D, device=dev, dtype=torch.bfloat16)
    lse = torch.empty(B, NH, T, device=dev, dtype=torch.float32)
    dqkv = torch.empty_like(qkv)
    dsum = torch.empty(B, NH, T, device=dev, dtype=torch.float32)
    args, keep = pattern_call_args(p)

    def fwd(v):
        if lib.gen_forward(v, qkv.data_ptr(), out.data_ptr(), lse.data_ptr(), B, T, NH, D, *args):
            sys.exit(f"error: gen_forward refused version {v} (its reason is above)")

    def fwd_bwd(v):
        fwd(v)
        if lib.gen_backward(v, qkv.data_ptr(), out.data_ptr(), dout.data_ptr(), lse.data_ptr(), dqkv.data_ptr(),
                            dsum.data_ptr(), B, T, NH, D, *args):
            sys.exit(f"error: gen_backward refused version {v} (its reason is above)")

    ours, outputs = {}, {}
    for v, name in versions:
        if v == 1 and T > V1_MAX_T:
            continue
        out.fill_(float("nan"))   # poisoned: every element must be written
        dqkv.fill_(float("nan"))
        fwd_bwd(v)
        torch.cuda.synchronize()
        outputs[name] = (out.clone(), dqkv.clone())
        ours[name] = (do_bench(lambda: fwd(v)), do_bench(lambda: fwd_bwd(v)))
    last = versions[-1][1]
    ref_out, ref_dqkv = outputs[last]
    problems = []
    for name, (o, d) in outputs.items():
        err = max(rel_err(o, ref_out), rel_err(d, ref_dqkv))
        if not err < TOL:
            problems.append(f"{name} disagrees with {last}: max rel err {err:.1e}")

    # FlexAttention on (B, NH, T, D) leaves made once (the layout change is not timed)
    flex, flex_err = None, None
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        is_global = global_flags(T, p, dev)

        def mask_mod(b, h, q_idx, kv_idx):
            return pattern_allows(p, q_idx, kv_idx, is_global)
        block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=T, KV_LEN=T, device=dev)
        compiled = torch.compile(flex_attention, dynamic=False)
        q, k, v = (qkv[:, :, j].transpose(1, 2).contiguous().requires_grad_(True) for j in range(3))
        dout_t = dout.transpose(1, 2).contiguous()
        o = compiled(q, k, v, block_mask=block_mask)
        o.backward(dout_t)
        torch.cuda.synchronize()
        flex_err = max(rel_err(ref_out, o.transpose(1, 2)), rel_err(ref_dqkv[:, :, 0], q.grad.transpose(1, 2)),
                       rel_err(ref_dqkv[:, :, 1], k.grad.transpose(1, 2)), rel_err(ref_dqkv[:, :, 2], v.grad.transpose(1, 2)))
        if not flex_err < TOL:
            problems.append(f"FlexAttention disagrees with {last}: max rel err {flex_err:.1e}")

        def flex_fwd():
            with torch.no_grad():
                compiled(q, k, v, block_mask=block_mask)

        def flex_fwd_bwd():
            compiled(q, k, v, block_mask=block_mask).backward(dout_t)
        flex = (do_bench(flex_fwd), do_bench(flex_fwd_bwd, grad_to_none=[q, k, v]))
    except Exception as e:  # no FlexAttention in this PyTorch, or it failed on this mask
        problems.append(f"FlexAttention did not run: {first_line(e)}")
    del keep
    pairs = analyze_pattern.count_pairs(p, T)
    args, keep = pattern_call_args(p)
    walked = lib.gen_pair_count(T, *args)
    if walked != pairs:   # the FLOP count below would be wrong, and so would one of the two rules
        problems.append(f"the kernels' walk allows {walked} pairs, analyze_pattern.count_pairs {pairs}")
    return dict(ours=ours, flex=flex, flex_err=flex_err, problems=problems, fwd_flops=4.0 * pairs * D * B * NH)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default="build/libattention_general.so")
    ap.add_argument("--tokens", type=int, default=32768, help="B*T of every case (SPEC §5: 32768)")
    ap.add_argument("--heads", default="12x64", help="heads x head size, comma-separated (e.g. 12x64,6x128)")
    ap.add_argument("--ts", default="1024,2048,4096,8192,16384")
    ap.add_argument("--patterns", default=",".join(PATTERNS), help=f"comma-separated, of {', '.join(PATTERNS)}")
    ap.add_argument("--from-version", type=int, default=1,
                    help="time versions from this one on (default 1: all; the newest is always compared)")
    ap.add_argument("--md", default="bench/attention_general_vs_flex.md")
    ap.add_argument("--png", default="bench/attention_general_vs_flex.png")
    a = ap.parse_args()
    heads = parse_heads(a.heads)
    try:
        ts = [int(x) for x in a.ts.split(",")]
    except ValueError:
        sys.exit(f"error: --ts '{a.ts}': expected comma-separated integers")
    if any(T < 64 or a.tokens % T for T in ts):
        sys.exit(f"error: --ts '{a.ts}': each T at least 64 and dividing --tokens {a.tokens}")
    names = a.patterns.split(",")
    if any(n not in PATTERNS for n in names):
        sys.exit(f"error: --patterns '{a.patterns}': expected names from {', '.join(PATTERNS)}")
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device: this script runs on the GPU machine")
    do_bench = gpu_bench(warmup=25, rep=100)

    lib = load_library(a.lib)
    if not 1 <= a.from_version <= lib.gen_num_versions():
        sys.exit(f"error: --from-version {a.from_version}: the library has versions 1 to {lib.gen_num_versions()}")
    versions = [(v, lib.gen_version_name(v).decode()) for v in range(a.from_version, lib.gen_num_versions() + 1)]
    rows = []
    for NH, D in heads:
        for name in names:
            for T in ts:
                p = PATTERNS[name](T)
                r = run_case(lib, versions, a.tokens // T, T, NH, D, p, do_bench)
                r.update(name=name, what=analyze_pattern.describe(p), NH=NH, D=D, T=T)
                rows.append(r)
                last = versions[-1][1]
                o = r["ours"][last]
                line = f"{NH}x{D} {name} T={T:5d}: ours ({last}) {o[0]:.3f} / {o[1]:.3f} ms"
                if r["flex"]:
                    line += f", FlexAttention {r['flex'][0]:.3f} / {r['flex'][1]:.3f} ms: {r['flex'][0] / o[0]:.2f}x / {r['flex'][1] / o[1]:.2f}x"
                print(line + "".join(f" | {x}" for x in r["problems"]), flush=True)

    last = versions[-1][1]
    lines = [
        "# The general attention path vs FlexAttention", "",
        f"`python3 scripts/attention_general_vs_flex.py` on {torch.cuda.get_device_name(0)}, PyTorch {torch.__version__}, "
        f"{datetime.date.today().isoformat()}. bf16, B·T = {a.tokens}. Ours: dev/cuda/attention_general.cu's versions "
        f"({', '.join(n for _, n in versions)}; {last}, the newest, is compared; train_gpt_window.cu's attention dispatch says which one the trainers run), FlexAttention compiled with the same "
        "mask_mod (block mask built once). Medians of triton's do_bench (L2 flushed); TFLOP/s on allowed pairs (SPEC §1); "
        f"ratio = FlexAttention's time / ours ({last}): above 1, ours is faster. Issue 18's target: 1.5x, forward and "
        "forward+backward.", "",
        f"| heads | pattern | T | ours fwd / fwd+bwd TFLOP/s ({last}) | FlexAttention fwd / fwd+bwd TFLOP/s | "
        f"ratio fwd | ratio fwd+bwd | ns per token fwd+bwd, by version | checks |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        o = r["ours"][last]
        tf = lambda ms, k: k * r["fwd_flops"] / ms / 1e9  # noqa: E731  (ms -> TFLOP/s)
        per_version = ", ".join(f"{n} {ms[1] * 1e6 / a.tokens:.1f}" for n, ms in r["ours"].items())
        flex = f"{tf(r['flex'][0], 1):.0f} / {tf(r['flex'][1], 3.5):.0f}" if r["flex"] else "did not run"
        ratios = (f"{r['flex'][0] / o[0]:.2f}x", f"{r['flex'][1] / o[1]:.2f}x") if r["flex"] else ("", "")
        checks = "; ".join(r["problems"]) or f"agree (FlexAttention {r['flex_err']:.0e})"
        lines.append(f"| {r['NH']}x{r['D']} | {r['name']}: {r['what']} | {r['T']} | {tf(o[0], 1):.0f} / {tf(o[1], 3.5):.0f} | "
                     f"{flex} | {ratios[0]} | {ratios[1]} | {per_version} | {checks} |")
    os.makedirs(os.path.dirname(a.md) or ".", exist_ok=True)
    open(a.md, "w").write("\n".join(lines) + "\n")
    print(f"wrote {a.md}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        panels = [(NH, D, n) for NH, D in heads for n in names]
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
        for ax, (NH, D, n) in zip(axes[0], panels):
            sel = [r for r in rows if (r["NH"], r["D"], r["name"]) == (NH, D, n)]
            for _, vname in versions:
                pts = [(r["T"], r["ours"][vname][1] * 1e6 / a.tokens) for r in sel if vname in r["ours"]]
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=f"ours {vname}")
            pts = [(r["T"], r["flex"][1] * 1e6 / a.tokens) for r in sel if r["flex"]]
            if pts:
                ax.plot(*zip(*pts), marker="s", color="k", label="FlexAttention")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("T (B·T fixed)")
            ax.set_ylabel("ns per token, forward+backward")
            ax.set_title(f"{n}, {NH}x{D}", fontsize=9)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(a.png, dpi=110)
        print(f"wrote {a.png}")
    except ImportError:
        print("matplotlib missing: no plot")
    bad = [r for r in rows if any("disagrees" in x or "pairs" in x for x in r["problems"])]
    if bad:
        sys.exit(f"error: {len(bad)} cases where the versions, FlexAttention or the pair counts disagree (see the table's checks)")


if __name__ == "__main__":
    main()
