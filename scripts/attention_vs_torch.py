"""Side by side on one GPU: this project's attention kernels against what a PyTorch user would pick.

The same random bf16 inputs go through
  - ours: build/libattention_compare.so (attention_compare.cu built as a library, `make
    build/libattention_compare.so`), called with ctypes on the tensors' device pointers;
  - PyTorch SDPA with the flash backend, is_causal=True, for full causal attention;
  - FlexAttention (compiled, block mask built once) with the band + sinks mask_mod, for windows.
Our outputs and gradients are checked against theirs (relative error, bf16: under 1e-2), then
forward and forward+backward are timed (triton's do_bench: median, L2 flushed between runs) and the
ratios printed in one table. TFLOP/s count allowed pairs only (SPEC §1): forward 4·P·D per head,
backward 2.5x that. Run on the GPU machine:

    make build/libattention_compare.so && python3 scripts/attention_vs_torch.py

Writes bench/attention_vs_torch.md and bench/attention_vs_torch.png.
"""
import argparse
import ctypes
import datetime
import os
import sys

import torch
import torch.nn.functional as F


def allowed_pairs(T, W, S):
    """Allowed (query, key) pairs of a causal band W (0 = full) plus S sinks, per batch and head."""
    total = 0
    for i in range(T):
        band = i + 1 if W == 0 else min(i + 1, W)
        sinks_outside = 0 if W == 0 else max(0, min(S, i - W + 1))
        total += band + sinks_outside
    return total


def load_library(path):
    if not os.path.exists(path):
        sys.exit(f"error: {path} not found: build it with `make {path}`")
    lib = ctypes.CDLL(path)
    ptr, i = ctypes.c_void_p, ctypes.c_int
    lib.swa_forward.argtypes = [ptr, ptr, ptr, i, i, i, i, i, i, ptr]
    lib.swa_backward.argtypes = [ptr, ptr, ptr, ptr, ptr, i, i, i, i, i, i, ptr]
    lib.swa_error_string.restype = ctypes.c_char_p
    lib.swa_kernel_versions.restype = ctypes.c_char_p
    return lib


def check_rc(lib, rc, what):
    if rc != 0:
        sys.exit(f"error: {what} returned {rc}: {lib.swa_error_string(rc).decode()}")


def rel_err(a, b):
    a, b = a.float(), b.float()
    if not torch.isfinite(a).all():
        return float("inf")
    return ((a - b).norm() / b.norm()).item()


def run_case(lib, B, T, NH, D, W, S, do_bench):
    dev = "cuda"
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    g = torch.Generator(device=dev).manual_seed(1234 + T + W)
    qkv = torch.randn(B, T, 3, NH, D, device=dev, dtype=torch.bfloat16, generator=g)  # ours: (B, T, 3, NH, D)
    dout = torch.randn(B, T, NH, D, device=dev, dtype=torch.bfloat16, generator=g)
    out = torch.full((B, T, NH, D), float("nan"), device=dev, dtype=torch.bfloat16)  # poisoned
    lse = torch.full((B, NH, T), float("nan"), device=dev, dtype=torch.float32)
    dqkv = torch.full_like(qkv, float("nan"))

    def ours_fwd():
        check_rc(lib, lib.swa_forward(qkv.data_ptr(), out.data_ptr(), lse.data_ptr(), B, T, NH, D, W, S, stream), "swa_forward")

    def ours_bwd():
        check_rc(lib, lib.swa_backward(qkv.data_ptr(), out.data_ptr(), dout.data_ptr(), lse.data_ptr(),
                                       dqkv.data_ptr(), B, T, NH, D, W, S, stream), "swa_backward")

    # theirs: (B, NH, T, D) leaves, made once (the layout change is not timed)
    q, k, v = (qkv[:, :, j].transpose(1, 2).contiguous().requires_grad_(True) for j in range(3))
    dout_t = dout.transpose(1, 2).contiguous()
    if W == 0:
        name = "SDPA (flash)"

        def theirs(q, k, v):
            with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        name = "FlexAttention"

        def mask_mod(b, h, q_idx, kv_idx):
            return (q_idx >= kv_idx) & ((q_idx - kv_idx < W) | (kv_idx < S))
        block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=T, KV_LEN=T, device=dev)
        flex = torch.compile(flex_attention, dynamic=False)

        def theirs(q, k, v):
            return flex(q, k, v, block_mask=block_mask)

    # correctness: outputs and gradients against theirs
    ours_fwd()
    ours_bwd()
    ref = theirs(q, k, v)
    ref.backward(dout_t)
    torch.cuda.synchronize()
    errs = {
        "out": rel_err(out, ref.transpose(1, 2)),
        "dq": rel_err(dqkv[:, :, 0], q.grad.transpose(1, 2)),
        "dk": rel_err(dqkv[:, :, 1], k.grad.transpose(1, 2)),
        "dv": rel_err(dqkv[:, :, 2], v.grad.transpose(1, 2)),
    }

    # timing
    def theirs_fwd():
        with torch.no_grad():
            theirs(q, k, v)

    def theirs_fwd_bwd():
        theirs(q, k, v).backward(dout_t)

    def ours_fwd_bwd():
        ours_fwd()
        ours_bwd()
    t = {
        "ours_fwd": do_bench(ours_fwd), "theirs_fwd": do_bench(theirs_fwd),
        "ours_fb": do_bench(ours_fwd_bwd), "theirs_fb": do_bench(theirs_fwd_bwd, grad_to_none=[q, k, v]),
    }
    fwd_flops = 4.0 * allowed_pairs(T, W, S) * D * B * NH
    return name, errs, t, fwd_flops


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default="build/libattention_compare.so")
    ap.add_argument("--tokens", type=int, default=32768, help="B*T of every case (SPEC §5: 32768)")
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--ts", default="4096,16384")
    ap.add_argument("--windows", default="256,1024,0", help="0 = full causal (no sinks)")
    ap.add_argument("--sinks", type=int, default=4)
    ap.add_argument("--md", default="bench/attention_vs_torch.md")
    ap.add_argument("--png", default="bench/attention_vs_torch.png")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device: this script runs on the GPU machine")
    from triton.testing import do_bench as triton_bench

    def do_bench(fn, grad_to_none=None):
        return triton_bench(fn, warmup=50, rep=200, grad_to_none=grad_to_none, return_mode="median")

    lib = load_library(args.lib)
    rows = []
    for T in [int(x) for x in args.ts.split(",")]:
        for W in [int(x) for x in args.windows.split(",")]:
            B = args.tokens // T
            S = args.sinks if W > 0 else 0
            name, errs, t, fwd_flops = run_case(lib, B, T, args.heads, args.head_dim, W, S, do_bench)
            fb_flops = 3.5 * fwd_flops
            row = dict(T=T, W=W, S=S, B=B, theirs=name, errs=errs,
                       ours_fwd=t["ours_fwd"], theirs_fwd=t["theirs_fwd"], ours_fb=t["ours_fb"], theirs_fb=t["theirs_fb"],
                       ours_fwd_tf=fwd_flops / t["ours_fwd"] / 1e9, theirs_fwd_tf=fwd_flops / t["theirs_fwd"] / 1e9,
                       ours_fb_tf=fb_flops / t["ours_fb"] / 1e9, theirs_fb_tf=fb_flops / t["theirs_fb"] / 1e9)
            rows.append(row)
            worst = max(errs.values())
            print(f"T={T:6d} W={W:5d} S={S} vs {name:13s} | fwd {row['ours_fwd_tf']:6.1f} vs {row['theirs_fwd_tf']:6.1f} TFLOP/s "
                  f"({row['theirs_fwd'] / row['ours_fwd']:.2f}x) | fwd+bwd {row['ours_fb_tf']:6.1f} vs {row['theirs_fb_tf']:6.1f} "
                  f"({row['theirs_fb'] / row['ours_fb']:.2f}x) | max rel err {worst:.1e} {'ok' if worst < 1e-2 else 'FAIL'}", flush=True)

    device = torch.cuda.get_device_name(0)
    versions = (lib.swa_kernel_versions() or b"unknown versions").decode()
    lines = [
        "# Attention kernels vs PyTorch (SDPA flash, FlexAttention)", "",
        f"`python3 scripts/attention_vs_torch.py` on {device}, PyTorch {torch.__version__}, "
        f"{datetime.date.today().isoformat()}. bf16, {args.heads} heads of {args.head_dim}, B·T = {args.tokens}; "
        f"windows have 4 sinks. Ours: attention_compare.cu's kernels ({versions}). "
        "Times are medians (triton do_bench, L2 flushed); TFLOP/s on allowed pairs (SPEC §1). "
        "Ratio = their time / our time (above 1: ours is faster). Errors: ours against theirs, relative, on "
        "the output and dq, dk, dv.", "",
        "| T | W | vs | fwd ms ours / theirs | fwd TFLOP/s ours / theirs | fwd ratio | fwd+bwd ms ours / theirs "
        "| fwd+bwd TFLOP/s ours / theirs | fwd+bwd ratio | max rel err |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['T']} | {r['W'] or 'full'} | {r['theirs']} | {r['ours_fwd']:.3f} / {r['theirs_fwd']:.3f} | "
                     f"{r['ours_fwd_tf']:.0f} / {r['theirs_fwd_tf']:.0f} | {r['theirs_fwd'] / r['ours_fwd']:.2f}x | "
                     f"{r['ours_fb']:.3f} / {r['theirs_fb']:.3f} | {r['ours_fb_tf']:.0f} / {r['theirs_fb_tf']:.0f} | "
                     f"{r['theirs_fb'] / r['ours_fb']:.2f}x | {max(r['errs'].values()):.1e} |")
    os.makedirs(os.path.dirname(args.md) or ".", exist_ok=True)
    open(args.md, "w").write("\n".join(lines) + "\n")
    print(f"wrote {args.md}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        labels = [f"T={r['T']}\n{'W=' + str(r['W']) if r['W'] else 'full'}" for r in rows]
        x = range(len(rows))
        fig, ax = plt.subplots(figsize=(10, 4))
        ax.bar([i - 0.2 for i in x], [r["theirs_fwd"] / r["ours_fwd"] for r in rows], 0.4, label="forward")
        ax.bar([i + 0.2 for i in x], [r["theirs_fb"] / r["ours_fb"] for r in rows], 0.4, label="forward+backward")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels)
        ax.set_ylabel("speed vs PyTorch (x)")
        ax.set_title(f"ours vs SDPA (full) / FlexAttention (windows, 4 sinks), {device}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"wrote {args.png}")
    except ImportError:
        print("matplotlib missing: no plot")
    if any(max(r["errs"].values()) >= 1e-2 for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
