"""Side by side on one GPU: this project's attention kernels against the fastest thing a PyTorch user
can run for the same attention.

The same random bf16 inputs go through
  - ours: build/libattention_compare.so (attention_compare.cu built as a library, `make
    build/libattention_compare.so`), called with ctypes on the tensors' device pointers;
  - for full causal attention, every SDPA backend that runs: SDPA's own choice (the default: cuDNN
    on Hopper), and cuDNN, flash and memory-efficient forced one at a time;
  - FlexAttention (compiled, block mask built once) with the pattern's mask_mod, every case;
  - cuDNN's own band kernel through cudnn-frontend (`torch.ops.cudnn.sdpa_fwd` / `sdpa_bwd` with a
    left window bound), for full causal and for windows without sinks (it has no sinks), where the
    `nvidia-cudnn-frontend` package imports (on the device machine it travels as a wheel).
Every alternative's output and gradients are checked against ours (relative error, bf16: under
1e-2); an alternative that fails the check or does not run is reported and left out of the
comparison. Forward and forward+backward are timed (triton's do_bench: median, L2 flushed between
runs); each case is compared with its fastest alternative, forward and forward+backward separately.
TFLOP/s count allowed pairs only (SPEC §1): forward 4·P·D per head, backward 2.5x that. Run on the
GPU machine:

    make build/libattention_compare.so && python3 scripts/attention_vs_torch.py

Writes bench/attention_vs_torch.md and bench/attention_vs_torch.png.
"""
import argparse
import ctypes
import datetime
import math
import os
import sys

import torch
import torch.nn.functional as F

TOL = 1e-2


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
    if not torch.isfinite(a).all() or not torch.isfinite(b).all():
        return float("inf")
    return ((a - b).norm() / b.norm()).item()


def first_line(e):
    text = str(e).strip().splitlines()
    return (type(e).__name__ + ": " + (text[0] if text else ""))[:160]


# ----------------------------------------------------------------------------
# the alternatives: each a function (q, k, v) -> out on (B, NH, T, D) tensors that autograd can
# differentiate, or a pair (forward, forward_backward) where autograd cannot

def sdpa_alternatives(W, S):
    """SDPA's default and each backend forced, for full causal attention (SDPA has no band mask
    that keeps a fused kernel)."""
    if W != 0:
        return []
    from torch.nn.attention import SDPBackend, sdpa_kernel
    alts = [("SDPA default", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True))]
    for label, backend in [("SDPA cuDNN", SDPBackend.CUDNN_ATTENTION), ("SDPA flash", SDPBackend.FLASH_ATTENTION),
                           ("SDPA efficient", SDPBackend.EFFICIENT_ATTENTION)]:
        def run(q, k, v, backend=backend):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        alts.append((label, run))
    return alts


def flex_alternative(T, W, S, dev):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    def mask_mod(b, h, q_idx, kv_idx):
        if W == 0:
            return q_idx >= kv_idx
        return (q_idx >= kv_idx) & ((q_idx - kv_idx < W) | (kv_idx < S))
    block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=T, KV_LEN=T, device=dev)
    flex = torch.compile(flex_attention, dynamic=False)
    return ("FlexAttention", lambda q, k, v: flex(q, k, v, block_mask=block_mask))


_cudnn_state = {}


def cudnn_frontend_ops():
    """torch.ops.cudnn's sdpa_fwd / sdpa_bwd from nvidia-cudnn-frontend, or the reason there are none."""
    if "ops" not in _cudnn_state:
        try:
            import cudnn
            cudnn.sdpa_torch  # the lazy export registers torch.ops.cudnn.sdpa_fwd / sdpa_bwd
            _cudnn_state["ops"] = (torch.ops.cudnn.sdpa_fwd, torch.ops.cudnn.sdpa_bwd, getattr(cudnn, "__version__", "?"))
        except Exception as e:  # not installed, or no cuDNN it can load
            _cudnn_state["ops"] = first_line(e)
    return _cudnn_state["ops"]


def cudnn_window_arg(fwd, W, D, dev):
    """cudnn-frontend's window_left for our band 0 <= i - j < W: the value whose output matches an
    explicit mask on a small case (the convention, W or W - 1, is decided by measuring, not assumed)."""
    key = (W, D)
    if key in _cudnn_state:
        return _cudnn_state[key]
    g = torch.Generator(device=dev).manual_seed(7)
    T = max(2 * W + 64, 192)
    q, k, v = (torch.randn(1, 2, T, D, device=dev, dtype=torch.bfloat16, generator=g) for _ in range(3))
    i = torch.arange(T, device=dev)
    mask = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < W)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
    errs, why = {}, "no window_left matched an explicit mask"
    for wl in (W - 1, W):  # both, and the clearly better one: one key more or less a row is a small error at large W
        try:
            o, _ = fwd(q, k, v, 1.0 / math.sqrt(D), is_causal=True, window_left=wl, return_lse=True)
            errs[wl] = rel_err(o, ref)
        except Exception as e:
            why = first_line(e)
    best = min(errs, key=errs.get) if errs else None
    other = [e for wl, e in errs.items() if wl != best]
    if best is not None and errs[best] < TOL and (not other or errs[best] < 0.5 * other[0]):
        _cudnn_state[key] = best
    else:
        _cudnn_state[key] = why if not errs else f"window_left {errs}: neither matches an explicit mask clearly"
    return _cudnn_state[key]


def cudnn_band_alternative(W, S, D, dev, dout_t):
    """cuDNN's band kernel (full causal: W = 0) as a (forward, forward_backward) pair, or None with the
    reason."""
    if S != 0 and W != 0:
        return None, "no sinks in cuDNN's band"
    ops = cudnn_frontend_ops()
    if isinstance(ops, str):
        return None, ops
    fwd, bwd, _ = ops
    kw = {"is_causal": True}
    if W > 0:
        wl = cudnn_window_arg(fwd, W, D, dev)
        if isinstance(wl, str):
            return None, wl
        kw["window_left"] = wl
    scale = 1.0 / math.sqrt(D)

    def forward(q, k, v):
        return fwd(q, k, v, scale, return_lse=True, **kw)

    def forward_backward(q, k, v):
        o, lse = forward(q, k, v)
        return bwd(dout_t, q, k, v, o, lse, scale, **kw)
    return (forward, forward_backward), None


# ----------------------------------------------------------------------------

def run_case(lib, B, T, NH, D, W, S, do_bench):
    dev = "cuda"
    torch._dynamo.reset()  # each case compiles FlexAttention afresh: no recompile limit, no eager fallback timed
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    g = torch.Generator(device=dev).manual_seed(1234 + T + W + D)
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

    def ours_fwd_bwd():
        ours_fwd()
        ours_bwd()
    ours_fwd_bwd()
    torch.cuda.synchronize()
    ours_out, ours_dq, ours_dk, ours_dv = out.clone(), dqkv[:, :, 0].clone(), dqkv[:, :, 1].clone(), dqkv[:, :, 2].clone()
    timing = {"ours": (do_bench(ours_fwd), do_bench(ours_fwd_bwd))}

    # theirs: (B, NH, T, D) leaves, made once (the layout change is not timed)
    q, k, v = (qkv[:, :, j].transpose(1, 2).contiguous().requires_grad_(True) for j in range(3))
    dout_t = dout.transpose(1, 2).contiguous()

    def errors(o, dq, dk, dv):
        return max(rel_err(ours_out, o.transpose(1, 2)), rel_err(ours_dq, dq.transpose(1, 2)),
                   rel_err(ours_dk, dk.transpose(1, 2)), rel_err(ours_dv, dv.transpose(1, 2)))

    results = []  # (name, fwd ms, fwd+bwd ms, max rel err) of the alternatives that ran and agreed
    skipped = []  # (name, why)
    autograd_alts = sdpa_alternatives(W, S)
    try:
        autograd_alts.append(flex_alternative(T, W, S, dev))
    except Exception as e:
        skipped.append(("FlexAttention", first_line(e)))
    for name, fn in autograd_alts:
        try:
            q.grad = k.grad = v.grad = None
            ref = fn(q, k, v)
            ref.backward(dout_t)
            torch.cuda.synchronize()
            err = errors(ref, q.grad, k.grad, v.grad)
        except Exception as e:
            skipped.append((name, first_line(e)))
            continue
        if not err < TOL:
            skipped.append((name, f"disagrees with ours: max rel err {err:.1e}"))
            continue

        def fwd_only(fn=fn):
            with torch.no_grad():
                fn(q, k, v)

        def fwd_bwd(fn=fn):
            fn(q, k, v).backward(dout_t)
        results.append((name, do_bench(fwd_only), do_bench(fwd_bwd, grad_to_none=[q, k, v]), err))
    with torch.no_grad():
        qd, kd, vd = q.detach(), k.detach(), v.detach()
        pair, why = cudnn_band_alternative(W, S, D, dev, dout_t)
        name = "cuDNN band (frontend)" if W else "cuDNN (frontend)"
        if pair is None:
            skipped.append((name, why))
        else:
            forward, forward_backward = pair
            try:
                o, _ = forward(qd, kd, vd)
                dq, dk, dv = forward_backward(qd, kd, vd)
                torch.cuda.synchronize()
                err = errors(o, dq, dk, dv)
                if err < TOL:
                    results.append((name, do_bench(lambda: forward(qd, kd, vd)), do_bench(lambda: forward_backward(qd, kd, vd)), err))
                else:
                    skipped.append((name, f"disagrees with ours: max rel err {err:.1e}"))
            except Exception as e:
                skipped.append((name, first_line(e)))
    fwd_flops = 4.0 * allowed_pairs(T, W, S) * D * B * NH
    # ours is the reference of every check: when nothing agrees with it but something ran, it is ours
    # that is in question
    disagreed = [n for n, w in skipped if w.startswith("disagrees")]
    suspect = not results and bool(disagreed)
    return timing["ours"], results, skipped, fwd_flops, suspect


def parse_heads(text):
    """'12x64,6x128' -> [(12, 64), (6, 128)]; one error line for anything else."""
    heads = []
    for h in text.split(","):
        try:
            nh, d = (int(x) for x in h.split("x"))
        except ValueError:
            sys.exit(f"error: --heads '{h}': expected HEADSxSIZE, e.g. 12x64")
        if nh < 1 or d < 8 or d > 128 or d % 8:
            sys.exit(f"error: --heads '{h}': at least one head, a head size that is a multiple of 8 up to 128")
        heads.append((nh, d))
    return heads


def gpu_bench(warmup, rep):
    """triton's do_bench (median, L2 flushed) as bench(fn, grad_to_none=None), with dynamo set so that
    FlexAttention's compiles per shape fit and the eager fallback is never what gets timed."""
    from triton.testing import do_bench as triton_bench
    import torch._dynamo as dynamo  # "import torch._dynamo" in a function would make `torch` a local name
    dynamo.config.cache_size_limit = 64  # FlexAttention compiles per shape, with and without grad
    if hasattr(dynamo.config, "fail_on_recompile_limit_hit"):
        dynamo.config.fail_on_recompile_limit_hit = True

    def bench(fn, grad_to_none=None):
        return triton_bench(fn, warmup=warmup, rep=rep, grad_to_none=grad_to_none, return_mode="median")
    return bench


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default="build/libattention_compare.so")
    ap.add_argument("--tokens", type=int, default=32768, help="B*T of every case (SPEC §5: 32768)")
    ap.add_argument("--heads", default="12x64,6x128", help="heads x head size, comma-separated (C = 768 both)")
    ap.add_argument("--ts", default="4096,16384")
    ap.add_argument("--cases", default="0:0,256:0,256:4,1024:0,1024:4", help="W:S pairs (W = 0: full causal)")
    ap.add_argument("--md", default="bench/attention_vs_torch.md")
    ap.add_argument("--png", default="bench/attention_vs_torch.png")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device: this script runs on the GPU machine")
    heads = parse_heads(args.heads)
    cases = []
    for c in args.cases.split(","):
        try:
            w, s = (int(x) for x in c.split(":"))
        except ValueError:
            sys.exit(f"error: --cases '{c}': expected W:S, e.g. 256:4")
        cases.append((w, s))
    do_bench = gpu_bench(warmup=50, rep=200)

    lib = load_library(args.lib)
    rows = []
    for NH, D in heads:
        for T in [int(x) for x in args.ts.split(",")]:
            for W, S in cases:
                B = args.tokens // T
                ours, results, skipped, fwd_flops, suspect = run_case(lib, B, T, NH, D, W, S, do_bench)
                row = dict(NH=NH, D=D, T=T, W=W, S=S, ours=ours, results=results, skipped=skipped, fwd_flops=fwd_flops,
                           suspect=suspect)
                rows.append(row)
                label = f"{NH}x{D} T={T:5d} {'full' if W == 0 else f'W={W} S={S}'}"
                if not results:
                    print(f"{label}: {'every alternative disagrees with OURS' if suspect else 'no alternative ran'}: {skipped}", flush=True)
                    continue
                bf = min(results, key=lambda r: r[1])
                bb = min(results, key=lambda r: r[2])
                print(f"{label}: fwd {bf[1] / ours[0]:.2f}x {bf[0]}, fwd+bwd {bb[2] / ours[1]:.2f}x {bb[0]}"
                      + "".join(f" | {n} {f:.3f}/{fb:.3f} ms" for n, f, fb, _ in results)
                      + f" | ours {ours[0]:.3f}/{ours[1]:.3f} ms" + "".join(f" | {n}: {w}" for n, w in skipped), flush=True)

    device = torch.cuda.get_device_name(0)
    versions = (lib.swa_kernel_versions() or b"unknown versions").decode()
    cudnn_ops = cudnn_frontend_ops()
    cudnn_note = (f"cudnn-frontend {cudnn_ops[2]}" if not isinstance(cudnn_ops, str) else f"cudnn-frontend not available ({cudnn_ops})")
    lines = [
        "# Attention kernels vs the fastest PyTorch alternative", "",
        f"`python3 scripts/attention_vs_torch.py` on {device}, PyTorch {torch.__version__}, cuDNN "
        f"{torch.backends.cudnn.version()}, {cudnn_note}, {datetime.date.today().isoformat()}. bf16, B·T = {args.tokens}. "
        f"Ours: attention_compare.cu's kernels ({versions}). Alternatives: full causal, SDPA's default and each "
        "backend forced (cuDNN, flash, efficient); every case, FlexAttention (compiled, block mask built once); "
        "full causal and windows without sinks, cuDNN's band kernel through cudnn-frontend. Each alternative's "
        "output and gradients agree with ours within 1e-2 (relative) or it is left out, with the reason below. "
        "Times are medians (triton do_bench, L2 flushed); TFLOP/s on allowed pairs (SPEC §1). Ratio = the "
        "fastest alternative's time / ours (above 1: ours is faster), forward and forward+backward each "
        "against its own fastest.", "",
        "| heads | T | case | fwd TFLOP/s ours | fastest fwd alternative | fwd ratio | fwd+bwd TFLOP/s ours "
        "| fastest fwd+bwd alternative | fwd+bwd ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    detail = ["", "Every alternative, ms forward / forward+backward (max relative error against ours):", "",
              "| heads | T | case | ours | alternatives | left out |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        case = "full" if r["W"] == 0 else f"W={r['W']} S={r['S']}"
        heads_label = f"{r['NH']}x{r['D']}"
        of, ofb = r["ours"]
        tf = r["fwd_flops"] / of / 1e9
        tfb = 3.5 * r["fwd_flops"] / ofb / 1e9
        if r["results"]:
            bf = min(r["results"], key=lambda x: x[1])
            bb = min(r["results"], key=lambda x: x[2])
            lines.append(f"| {heads_label} | {r['T']} | {case} | {tf:.0f} | {bf[0]} ({r['fwd_flops'] / bf[1] / 1e9:.0f}) | "
                         f"{bf[1] / of:.2f}x | {tfb:.0f} | {bb[0]} ({3.5 * r['fwd_flops'] / bb[2] / 1e9:.0f}) | {bb[2] / ofb:.2f}x |")
        else:
            lines.append(f"| {heads_label} | {r['T']} | {case} | {tf:.0f} | none ran | | {tfb:.0f} | none ran | |")
        alts = "; ".join(f"{n} {f:.3f} / {fb:.3f} ({e:.0e})" for n, f, fb, e in r["results"])
        left = "; ".join(f"{n}: {w}" for n, w in r["skipped"])
        detail.append(f"| {heads_label} | {r['T']} | {case} | {of:.3f} / {ofb:.3f} | {alts} | {left} |")
    os.makedirs(os.path.dirname(args.md) or ".", exist_ok=True)
    open(args.md, "w").write("\n".join(lines + detail) + "\n")
    print(f"wrote {args.md}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        shown = [r for r in rows if r["results"]]
        labels = [f"{r['NH']}x{r['D']}\nT={r['T']}\n{'full' if r['W'] == 0 else 'W=%d S=%d' % (r['W'], r['S'])}" for r in shown]
        x = range(len(shown))
        fig, ax = plt.subplots(figsize=(max(10, 0.9 * len(shown)), 4.5))
        ax.bar([i - 0.2 for i in x], [min(a[1] for a in r["results"]) / r["ours"][0] for r in shown], 0.4, label="forward")
        ax.bar([i + 0.2 for i in x], [min(a[2] for a in r["results"]) / r["ours"][1] for r in shown], 0.4, label="forward+backward")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("speed vs the fastest alternative (x)")
        ax.set_title(f"ours vs the fastest of SDPA backends, FlexAttention, cuDNN's band; {device}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"wrote {args.png}")
    except ImportError:
        print("matplotlib missing: no plot")
    bad = [r for r in rows if r["suspect"]]
    if bad:
        sys.exit(f"error: {len(bad)} cases where every alternative that ran disagrees with our kernels (see the table's 'left out')")


if __name__ == "__main__":
    main()
