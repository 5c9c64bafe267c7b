#!/usr/bin/env python3
"""PyTorch twin of train_gpt_full / train_gpt_window, for throughput comparisons.

The same GPT-2 as the C/CUDA trainers (llm.c's: pre-LayerNorm, tied input/output embedding, GELU
tanh MLP 4C, vocabulary padded to a multiple of 128, learned positions; the loss over the first V
logits only), trained the way a PyTorch user would train it fast: torch.compile, bf16 autocast,
fused AdamW (betas 0.9/0.95, eps 1e-8, weight decay on 2-D tensors only, gradient-norm clip),
linear warmup then cosine decay (the C trainers' schedule).

Attention (SPEC.md §1, every pattern the C trainers take with one pattern for all layers: window,
sinks, causal or not, lookahead, global positions, dilation; the C trainers' flags):
  full causal  SDPA with is_causal=True (cuDNN or FlashAttention kernels on the GPU)
  the rest     FlexAttention, compiled, with one block mask built up front by create_block_mask from
               a mask_mod that is SPEC §1's allowed(i, j), e.g. (q >= kv) & ((q - kv < W) | (kv < S))
               for a causal window W with S sinks (pattern_allows below)
On --device cpu (for checking only) a plain masked softmax with the same rule stands in where SDPA /
FlexAttention are missing (PyTorch 1.13 has neither). Pair counts (MFU), the flag checks and the
pattern's description come from scripts/analyze_pattern.py, the one home of SPEC §1 in Python.

Data: llm.c token shards (256 int32 header, magic 20240520, uint16 tokens), read like the C
trainers: B*T+1 tokens per micro-batch, advancing B*T, on to the next shard (wrapping) when the
current one has too few left.

Output: llm.c-style step lines
  step    N/M | loss X | norm X | lr X | X ms | X tok/s | MFU X%
with MFU on SPEC §1/§5's count (6 x matmul weights per token + attention 3.5 x 4 x allowed pairs
x D per head and layer, against 989.5 TFLOP/s), and at the end one machine-readable line
  RESULT tokens_per_s=<median> step_ms=<median> peak_mem_gib=<max_memory_allocated> mfu_pct=<median>
over the steps after the first --warmup-steps-excluded (which pay for compilation).

Example (GPU):
  python3 scripts/train_torch_twin.py -e d12 -V 50257 -b 8 -t 4096 -x 12 -v 0 --window 256 --sinks 4 \\
      -i data/books/books_train.bin -j data/books/books_val.bin
CPU check (no GPU, no torch.compile):
  python3 scripts/train_torch_twin.py --device cpu --no-compile -e l2c64h4 -b 2 -t 64 -x 3 \\
      -i build/tiny/tiny_train.bin -j build/tiny/tiny_val.bin --window 16 --sinks 2
"""

import argparse
import contextlib
import glob
import math
import os
import re
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import analyze_pattern  # noqa: E402  (SPEC §1 in Python: the pattern, its pair count, its checks)

SHARD_MAGIC = 20240520
HEADER_INTS = 256
PEAK_BF16_FLOPS = 989.5e12  # H100 / H200 SXM dense bf16, as the C trainers use for MFU
PROG = "train_torch_twin.py"


class Fail(Exception):
    """An expected failure: main() prints it as one 'error: ...' line and exits 1."""


# ---------------------------------------------------------------------------------------------
# arguments (the C trainers' flags where they exist, the same defaults)

def parse_args(argv):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-i", dest="train", default="data/books/books_train.bin", help="train shards (glob)")
    ap.add_argument("-j", dest="val", default="data/books/books_val.bin", help="val shards (glob)")
    ap.add_argument("-e", dest="init", default="d4", help="new model: dN or lLcChH (default d4)")
    ap.add_argument("-V", dest="vocab", type=int, default=0,
                    help="vocabulary (default: 256 if the first train shard holds bytes, else 50257)")
    ap.add_argument("-b", dest="B", type=int, default=4, help="micro-batch size (default 4)")
    ap.add_argument("-t", dest="T", type=int, default=256, help="sequence length (default 256)")
    ap.add_argument("-d", dest="total_batch", type=int, default=0,
                    help="total batch in tokens, a multiple of B*T (default B*T)")
    ap.add_argument("-x", dest="steps", type=int, default=100, help="training steps (default 100)")
    ap.add_argument("-l", dest="lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    ap.add_argument("-u", dest="warmup", type=int, default=10, help="linear warmup steps (default 10)")
    ap.add_argument("-q", dest="final_frac", type=float, default=0.1,
                    help="final learning rate as a fraction of the peak, cosine decay (default 0.1)")
    ap.add_argument("-c", dest="weight_decay", type=float, default=0.1, help="weight decay (default 0.1)")
    ap.add_argument("-k", dest="grad_clip", type=float, default=1.0, help="gradient norm clip, 0 = off (default 1.0)")
    ap.add_argument("-r", dest="seed", type=int, default=1337, help="seed of the weights (default 1337)")
    ap.add_argument("-v", dest="val_every", type=int, default=25, help="val loss every N steps, 0 = off (default 25)")
    ap.add_argument("-m", dest="val_batches", type=int, default=8, help="val batches (default 8)")
    ap.add_argument("--window", type=int, default=0, help="keys 0 <= i-j < W; 0 = full (default 0)")
    ap.add_argument("--sinks", type=int, default=0, help="keys j < S always (default 0)")
    ap.add_argument("--causal", type=int, default=1, help="1 (default) or 0")
    ap.add_argument("--lookahead", type=int, default=0, help="non-causal only: keys 0 < j-i <= R (default 0)")
    ap.add_argument("--global", dest="globals", help="global positions P,P,... (default none)")
    ap.add_argument("--dilation", type=int, default=1, help="every d-th key beyond the window; 1 = off (default)")
    ap.add_argument("--dilated-keys", type=int, default=0, help="how many dilated keys; 0 = no limit (default)")
    ap.add_argument("--max-seq-len", type=int, default=0, help="maxT (rows of wpe) of the model (default T)")
    ap.add_argument("--warmup-steps-excluded", type=int, default=3,
                    help="steps left out of the RESULT medians (compilation, warm-up) (default 3)")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (checking only)")
    ap.add_argument("--no-compile", action="store_true", help="run eagerly (FlexAttention alone is still compiled on cuda)")
    a = ap.parse_args(argv)
    for name, lo in (("B", 1), ("T", 1), ("steps", 0), ("warmup", 0), ("val_every", 0), ("val_batches", 1),
                     ("window", 0), ("sinks", 0), ("warmup_steps_excluded", 0), ("vocab", 0),
                     ("total_batch", 0), ("max_seq_len", 0), ("lookahead", 0), ("dilation", 1), ("dilated_keys", 0)):
        if getattr(a, name) < lo:
            ap.error(f"{name} = {getattr(a, name)}: expected an integer >= {lo}")
    for name in ("lr", "final_frac", "weight_decay", "grad_clip"):
        v = getattr(a, name)
        if not (math.isfinite(v) and v >= 0):
            ap.error(f"{name} = {v}: expected a number >= 0")
    if a.final_frac > 1:
        ap.error(f"-q {a.final_frac}: the final learning-rate fraction must be in [0, 1]")
    if a.total_batch and a.total_batch % (a.B * a.T) != 0:
        ap.error(f"-d {a.total_batch}: the total batch must be a multiple of B*T = {a.B * a.T}")
    if a.device not in ("cuda", "cpu") and not a.device.startswith("cuda:"):
        ap.error(f"--device {a.device}: expected cuda or cpu")
    return a


def model_shape(desc):
    """dN -> (L, C, NH) = (N, 64N, N); lLcChH -> (L, C, H), as the C trainers read -e."""
    m = re.fullmatch(r"d(\d+)", desc)
    if m and int(m.group(1)) > 0:
        n = int(m.group(1))
        return n, 64 * n, n
    m = re.fullmatch(r"l(\d+)c(\d+)h(\d+)", desc)
    if m and all(int(g) > 0 for g in m.groups()):
        L, C, NH = map(int, m.groups())
        if C % NH:
            raise Fail(f"-e '{desc}': {C} channels do not split into {NH} heads")
        return L, C, NH
    raise Fail(f"-e '{desc}': expected dN (e.g. d12) or lLcChH (e.g. l2c64h4); the twin does not load checkpoints")


# ---------------------------------------------------------------------------------------------
# data: llm.c's token shards, the C trainers' sequential loader

def shard_tokens(path, min_tokens):
    """Checks a shard as the C trainers do and returns its tokens (a read-only memmap)."""
    try:
        size = os.path.getsize(path)
        header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    except OSError as e:
        raise Fail(f"cannot read shard '{path}': {e.strerror}")
    if header.size < HEADER_INTS:
        raise Fail(f"shard '{path}' is truncated: no 1024-byte header")
    if header[0] != SHARD_MAGIC:
        raise Fail(f"'{path}' is not a token shard: magic {header[0]}, expected {SHARD_MAGIC}")
    if header[1] != 1:
        raise Fail(f"shard '{path}': version {header[1]}, expected 1")
    n = int(header[2])
    if n < 0:
        raise Fail(f"shard '{path}': negative token count {n}")
    if size != HEADER_INTS * 4 + 2 * n:
        raise Fail(f"shard '{path}' has {size} bytes, expected {HEADER_INTS * 4 + 2 * n} for its {n} tokens (truncated?)")
    if n < min_tokens:
        raise Fail(f"shard '{path}' has {n} tokens, fewer than one batch needs ({min_tokens})")
    if n == 0:
        return np.zeros(0, dtype="<u2")
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_INTS * 4, shape=(n,))


def vocab_from_data(pattern):
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise Fail(f"-i '{pattern}': no token shard matches (run `make data` or `python3 data/prepare.py`)")
    tokens = shard_tokens(paths[0], 1)
    return 256 if int(tokens.max()) < 256 else 50257


class DataLoader:
    def __init__(self, pattern, B, T, V, flag):
        self.paths = sorted(glob.glob(pattern))  # glob(3) in the C trainers sorts too
        if not self.paths:
            raise Fail(f"{flag} '{pattern}': no token shard matches (run `make data` or `python3 data/prepare.py`)")
        self.B, self.T, self.V = B, T, V
        for p in self.paths:
            shard_tokens(p, B * T + 1)
        self.reset()

    def open_shard(self, index):
        self.shard_index = index
        self.tokens = shard_tokens(self.paths[index], self.B * self.T + 1)

    def reset(self):
        self.open_shard(0)
        self.position = 0

    def next_batch(self):
        """(inputs, targets) as int64 CPU tensors of shape (B, T)."""
        n = self.B * self.T + 1
        if self.position + n > len(self.tokens):  # not enough left: next shard, wrapping around
            self.open_shard((self.shard_index + 1) % len(self.paths))
            self.position = 0
        buf = np.asarray(self.tokens[self.position:self.position + n], dtype=np.int64)
        top = int(buf.max())
        if top >= self.V:
            at = self.position + int(buf.argmax())
            raise Fail(f"shard '{self.paths[self.shard_index]}': token {top} at {at} is outside the model's vocabulary (V={self.V})")
        self.position += self.B * self.T
        buf = torch.from_numpy(buf)
        return buf[:-1].view(self.B, self.T), buf[1:].view(self.B, self.T)


# ---------------------------------------------------------------------------------------------
# attention

def attention_pattern(a):
    """The pattern of the flags as scripts/analyze_pattern.py's dict, checked as the C trainers do
    (one Fail naming the flag)."""
    try:
        G = analyze_pattern.pattern_flags_checked(a.T, a.causal, a.lookahead, a.dilation, a.dilated_keys, a.globals)
    except analyze_pattern.Fail as e:
        raise Fail(str(e))
    if a.dilation > 1 and a.window == 0:
        raise Fail(f"--dilation {a.dilation} needs a --window (with window 0 every key is seen already)")
    return analyze_pattern.pattern(a.window, a.sinks, a.lookahead, a.dilation, a.dilated_keys, a.causal, G)


def flops_per_token(L, C, Vp, T, p):
    """Forward + backward FLOPs per token, as flops_per_token() in the C trainers."""
    matmul_weights = L * 12.0 * C * C + Vp * C
    attention = L * 3.5 * 4.0 * analyze_pattern.count_pairs(p, T) * C  # C = NH x D
    return 6.0 * matmul_weights + attention / T


def pattern_allows(p, q, k, is_global):
    """SPEC §1's allowed(i, j) on index tensors: q (queries) and k (keys) broadcast against each other;
    is_global: a (T,) bool tensor, or None without global positions. The clauses of
    analyze_pattern.allowed() in tensor form, for FlexAttention's mask_mod and the CPU stand-in."""
    W, S, R, d, K, causal = p["W"], p["S"], p["R"], p["d"], p["K"], p["causal"]
    o = q - k
    ok = (o >= 0) if W == 0 else (o >= 0) & (o < W)        # the band
    if not causal and R > 0:
        ok = ok | ((o < 0) & (o >= -R))                    # lookahead
    if S > 0:
        ok = ok | (k < S)                                  # sinks; non-causal: they also see every key
        if not causal:
            ok = ok | (q < S)
    if is_global is not None:
        ok = ok | is_global[k]
        if not causal:
            ok = ok | is_global[q]
    if d > 1 and W > 0:                                    # dilated keys beyond the window
        dil = (o >= W) & (o % d == 0)
        if K > 0:
            dil = dil & (o < W + K * d)
        ok = ok | dil
    if causal:
        ok = ok & (o >= 0)
    return ok


def dense_mask(T, p, device):
    """(T, T) bool, [i, j] = query i may attend key j (the same rule as the flex mask_mod)."""
    q = torch.arange(T, device=device)[:, None]
    k = torch.arange(T, device=device)[None, :]
    return pattern_allows(p, q, k, global_flags(T, p, device))


def global_flags(T, p, device):
    if not p["G"]:
        return None
    flags = torch.zeros(T, dtype=torch.bool, device=device)
    flags[torch.tensor(p["G"], device=device)] = True
    return flags


def make_attention(T, p, device, compiled_model):
    """Returns (fn(q, k, v) -> y on (B, NH, T, hs), description)."""
    on_cuda = device.type == "cuda"
    has_sdpa = hasattr(F, "scaled_dot_product_attention")
    full_causal = p["causal"] and p["W"] == 0 and not p["G"] and p["d"] == 1   # sinks add nothing then
    if full_causal and (on_cuda or has_sdpa):
        if not has_sdpa:
            raise Fail("this PyTorch has no scaled_dot_product_attention (2.0 or later is needed on cuda)")
        return (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)), "SDPA is_causal=True"
    what = analyze_pattern.describe(p)
    if on_cuda:
        try:  # imported here: CPU-only builds without FlexAttention still run --device cpu
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        except ImportError as e:
            raise Fail(f"{what} on cuda needs FlexAttention (PyTorch 2.5 or later): {e}")
        is_global = global_flags(T, p, device)

        def mask_mod(b, h, q_idx, kv_idx):
            return pattern_allows(p, q_idx, kv_idx, is_global)

        block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=T, KV_LEN=T, device=device)
        # inside a compiled model dynamo traces flex_attention itself; eager flex_attention is
        # the slow reference path, so an eager model still gets a compiled kernel
        flex = flex_attention if compiled_model else torch.compile(flex_attention)
        return (lambda q, k, v: flex(q, k, v, block_mask=block_mask)), f"FlexAttention, {what} (block mask built once)"
    # CPU stand-in (checking only): an explicit masked softmax
    mask = dense_mask(T, p, device)

    def masked(q, k, v):
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
        att = att.masked_fill(~mask, float("-inf"))
        return torch.softmax(att, dim=-1) @ v

    return masked, f"masked softmax, {what} (CPU stand-in)"


# ---------------------------------------------------------------------------------------------
# the model: llm.c's GPT-2

class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.C, self.NH = C, NH
        self.ln1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)      # rows q, then k, then v, as in llm.c's qkvw
        self.attproj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C)
        self.fc = nn.Linear(C, 4 * C)
        self.fcproj = nn.Linear(4 * C, C)

    def forward(self, x, attn):
        B, T, C = x.shape
        NH, hs = self.NH, C // self.NH
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, NH, hs).transpose(1, 2)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        y = attn(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + self.attproj(y)
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, NH, V, maxT, attn):
        super().__init__()
        self.V, self.Vp = V, (V + 127) // 128 * 128
        self.wte = nn.Embedding(self.Vp, C)   # tied: also the classifier
        self.wpe = nn.Embedding(maxT, C)
        self.blocks = nn.ModuleList([Block(C, NH) for _ in range(L)])
        self.lnf = nn.LayerNorm(C)
        self.attn = attn
        # the C trainers' init: N(0, 0.02), the residual projections N(0, 0.02/sqrt(2L)), biases
        # zero, LayerNorm gains one; padded vocabulary rows zero
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("attproj.weight") or name.endswith("fcproj.weight"):
                    p.normal_(0.0, 0.02 / math.sqrt(2 * L))
                elif p.dim() == 2:
                    p.normal_(0.0, 0.02)
                elif name.endswith("bias"):
                    p.zero_()
                else:
                    p.fill_(1.0)
            self.wte.weight[V:].zero_()

    def forward(self, idx, targets):
        T = idx.size(1)
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x, self.attn)
        logits = F.linear(self.lnf(x), self.wte.weight)            # (B, T, Vp)
        # padded vocabulary entries are not tokens: only the first V columns enter the softmax
        return F.cross_entropy(logits[..., :self.V].reshape(-1, self.V), targets.reshape(-1))


# ---------------------------------------------------------------------------------------------
# training

def learning_rate_at(step, total, warmup, peak, final_frac):
    """The C trainers' schedule: linear warmup, then cosine to peak * final_frac at the end."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if total <= warmup:
        return peak
    progress = min(1.0, (step - warmup) / (total - warmup))
    return peak * (final_frac + (1.0 - final_frac) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def grad_norm(params, clip):
    """Global gradient norm before clipping; clips to `clip` when it is > 0 (torch's rule,
    scale clip / (norm + 1e-6), which the C trainers follow)."""
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(model, loader, batches, device, autocast):
    loader.reset()
    total = 0.0
    with torch.no_grad():
        for _ in range(batches):
            x, y = loader.next_batch()
            x, y = x.to(device), y.to(device)
            with autocast():
                total += model(x, y).item()
    return total / batches


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def run(a):
    device = torch.device(a.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise Fail("--device cuda: no CUDA device is visible to PyTorch (use --device cpu to check on the CPU)")
        if device.index is not None:
            torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    compiled = not a.no_compile
    if compiled and not hasattr(torch, "compile"):
        raise Fail(f"PyTorch {torch.__version__} has no torch.compile: pass --no-compile")

    L, C, NH = model_shape(a.init)
    V = a.vocab or vocab_from_data(a.train)
    maxT = a.max_seq_len or a.T
    if a.T > maxT:
        raise Fail(f"-t {a.T} exceeds the model's maximum sequence length {maxT}")
    pattern = attention_pattern(a)
    tokens_micro = a.B * a.T
    total_batch = a.total_batch or tokens_micro
    accum = total_batch // tokens_micro

    train = DataLoader(a.train, a.B, a.T, V, "-i")
    val = DataLoader(a.val, a.B, a.T, V, "-j") if a.val_every > 0 else None

    torch.manual_seed(a.seed)
    attn, attn_desc = make_attention(a.T, pattern, device, compiled)
    raw = GPT(L, C, NH, V, maxT, attn).to(device)
    model = torch.compile(raw) if compiled else raw
    params = list(raw.parameters())
    nparams = sum(p.numel() for p in params)

    decay = [p for p in params if p.dim() >= 2]       # wte, wpe and the linear weights
    no_decay = [p for p in params if p.dim() < 2]     # biases and LayerNorm
    opt_kwargs = dict(lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    if device.type == "cuda":
        opt_kwargs["fused"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], **opt_kwargs)

    use_amp = device.type == "cuda"

    def autocast():  # bf16 on the GPU; the CPU check runs in float32
        if use_amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; attention: {attn_desc}; "
          f"{'torch.compile' if compiled else 'eager'}{', bf16 autocast, fused AdamW' if use_amp else ', float32'}")
    print(f"model: L={L} C={C} NH={NH} V={V} (padded {raw.Vp}) maxT={maxT}, {nparams} parameters, positions learned")
    print(f"batch: B={a.B} T={a.T}, {accum} micro-steps per step ({total_batch} tokens), {a.steps} steps, "
          f"lr {a.lr:.2e} warmup {a.warmup}")
    sys.stdout.flush()

    step_flops = flops_per_token(L, C, raw.Vp, a.T, pattern) * total_batch
    times, toks, mfus = [], [], []
    for step in range(a.steps):
        sync(device)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        for _ in range(accum):
            x, y = train.next_batch()
            if device.type == "cuda":
                x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
            with autocast():
                loss = model(x, y)
            (loss / accum).backward()
            loss_sum += loss.detach()
        norm = grad_norm(params, a.grad_clip)
        lr = learning_rate_at(step, a.steps, a.warmup, a.lr, a.final_frac)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_v, norm_v = (loss_sum / accum).item(), norm.item()
        sync(device)
        ms = (time.perf_counter() - t0) * 1000.0
        tok_s = total_batch / (ms / 1000.0)
        mfu = step_flops / (ms / 1000.0) / PEAK_BF16_FLOPS
        times.append(ms)
        toks.append(tok_s)
        mfus.append(100.0 * mfu)
        print(f"step {step + 1:4d}/{a.steps} | loss {loss_v:.6f} | norm {norm_v:.4f} | lr {lr:.2e} | "
              f"{ms:.2f} ms | {tok_s:.0f} tok/s | MFU {100.0 * mfu:.1f}%", flush=True)
        if not math.isfinite(loss_v):
            raise Fail(f"step {step + 1}: loss is {loss_v}")
        if val is not None and ((step + 1) % a.val_every == 0 or step + 1 == a.steps):
            print(f"val loss {evaluate(model, val, a.val_batches, device, autocast):.6f}", flush=True)

    skip = a.warmup_steps_excluded
    if a.steps <= skip:
        print(f"warning: {a.steps} steps, all within --warmup-steps-excluded {skip}: RESULT uses every step",
              file=sys.stderr)
        skip = 0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    print(f"RESULT tokens_per_s={median(toks[skip:]):.0f} step_ms={median(times[skip:]):.2f} "
          f"peak_mem_gib={peak:.2f} mfu_pct={median(mfus[skip:]):.1f}", flush=True)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(a)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
