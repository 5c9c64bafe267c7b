#!/usr/bin/python3
"""PyTorch oracle for the C CPU trainer (train_gpt_cpu.c).

A plain GPT-2 (llm.c's) in PyTorch 1.13, float32, with the attention pattern of SPEC.md §1
applied as an explicit boolean mask. For each test case it writes

    DIR/<case>_model.bin   a checkpoint in README.md's format (version 3, float32)
    DIR/<case>_ref.bin     the reference dump (format in test/README.md)

and the C test loads the checkpoint, runs the same batch and compares against the dump.

Usage:  /usr/bin/python3 test/reference.py --out DIR [--case NAME ...]
        /usr/bin/python3 test/reference.py --eval CHECKPOINT SHARD B T M POSITIONS_CSV

Everything is deterministic: each case reseeds torch with the same seed and runs single-threaded,
so two runs write byte-identical files.
"""

import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Constants shared with the C side (README.md "File formats", test/README.md)

MODEL_MAGIC = 20240326      # checkpoint header[0]
MODEL_VERSION_FP32 = 3      # checkpoint header[1]
DUMP_MAGIC = 20261122       # dump header[0]
DUMP_VERSION = 1            # dump header[1]
NSTEPS = 10                 # AdamW steps recorded in the dump

# Optimizer hyperparameters, also written into the dump so the C test need not hard-code them.
LR, BETA1, BETA2, ADAM_EPS, WEIGHT_DECAY, GRAD_CLIP = 1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0

SEED = 1337

# One attention pattern of SPEC.md §1. Defaults are the "off" values: W=0 unlimited, no sinks,
# no lookahead, dilation 1 (disabled), no limit on dilated keys.
def pattern(W=0, S=0, R=0, d=1, K=0):
    return dict(W=W, S=S, R=R, d=d, K=K)


# Default sizes; a case overrides what it needs. V=250 pads to Vp=256 so the padded-vocabulary
# path (rows of wte that never receive gradient, logit columns excluded from the loss) is exercised.
BASE = dict(B=2, T=48, maxT=64, V=250, C=64, NH=4, L=2,
            causal=1, globals=[], rope=False, theta=0, llmc_header=False)

CASES = {
    "full":              dict(patterns=[pattern(W=0)]),
    "window":            dict(patterns=[pattern(W=8)]),
    "window_sinks":      dict(patterns=[pattern(W=8, S=3)]),
    "dilation":          dict(patterns=[pattern(W=6, d=3, K=3)]),
    "noncausal_global":  dict(patterns=[pattern(W=5, R=2, S=1)], causal=0, globals=[20, 33]),
    "rope":              dict(patterns=[pattern(W=8, S=2)], rope=True, theta=10000),
    "layer_mix":         dict(L=3, patterns=[pattern(W=8, S=2), pattern(W=0), pattern(W=4, d=2, K=0)],
                              layer_pattern=[0, 1, 2]),
    # Same model as "full", but the checkpoint carries llm.c's header only (slot 8 = 0, slots
    # 9..255 zero): the C loader must read that as full causal attention with learned positions.
    "full_learned_llmc": dict(patterns=[pattern(W=0)], llmc_header=True),
    # Heads of 64 channels, the head size the GPU attention kernels are built for; T spans two
    # 64-key tiles and ends inside the second, W is not a multiple of the tile.
    "gpu_full":          dict(C=128, NH=2, T=80, maxT=96, patterns=[pattern(W=0)]),
    "gpu_window_sinks":  dict(C=128, NH=2, T=80, maxT=96, patterns=[pattern(W=24, S=3)]),
    # rotary positions through the band kernels (heads of 64); the GPU's rolling KV cache test
    # streams this model far past its maxT
    "gpu_rope":          dict(C=128, NH=2, T=80, maxT=96, patterns=[pattern(W=24, S=3)], rope=True, theta=10000),
    # the general attention path's tile versions with heads of 64 (the cases above with heads of 16
    # take its scalar version): T spans three 64-position tiles and ends inside the third; a dilated
    # band with sinks and a global key, causal; and the Longformer shape, non-causal, whose global
    # rows and columns cross every tile
    "gpu_dilation":      dict(C=128, NH=2, T=150, maxT=160, patterns=[pattern(W=20, S=2, d=4, K=8)], globals=[70]),
    "gpu_longformer":    dict(C=128, NH=2, T=150, maxT=160, patterns=[pattern(W=16, R=16, S=1)], causal=0,
                              globals=[0, 100]),
    # heads of 128: the band kernels' and the general path's second head size
    "gpu_heads128":      dict(C=256, NH=2, T=80, maxT=96, patterns=[pattern(W=24, S=3)]),
    "gpu_heads128_full": dict(C=256, NH=2, T=80, maxT=96, patterns=[pattern(W=0)]),
    "gpu_heads128_general": dict(C=256, NH=2, T=150, maxT=160, patterns=[pattern(W=20, d=3)], globals=[40]),
    # one model whose layers take both paths (issue 18's per-layer mix at heads of 64): a band with
    # sinks and full attention on the band kernels, seeds/001's dilated band on the general path
    "gpu_layer_mix":     dict(C=128, NH=2, L=3, T=150, maxT=160,
                              patterns=[pattern(W=24, S=3), pattern(W=0), pattern(W=20, d=4, K=0)], layer_pattern=[0, 1, 2]),
    # general version 6's split (dilated keys reaching 448 or more back: the residue bands on the band
    # kernels, the rest on version 5, merged): 192 keys at stride 4 beyond a band of 96 (a band of
    # 216 in each residue's subsequence), and sinks with 300 keys at stride 3; T a multiple of
    # neither stride nor 64
    "gpu_dilation_split": dict(C=128, NH=2, L=2, T=302, maxT=320,
                               patterns=[pattern(W=96, d=4, K=192), pattern(W=50, S=2, d=3, K=300)], layer_pattern=[0, 1]),
    # GPT-2's vocabulary (padded to 50304): the GPU classifier's path for rows of ~100 KB
    "gpu_vocab":         dict(V=50257, C=64, NH=1, L=1, T=40, maxT=64, patterns=[pattern(W=24, S=3)]),
}


def case_config(name):
    cfg = dict(BASE)
    cfg.update(CASES[name])
    cfg["name"] = name
    cfg["Vp"] = (cfg["V"] + 127) // 128 * 128
    cfg.setdefault("layer_pattern", [0] * cfg["L"])   # one pattern for all layers unless listed
    assert len(cfg["layer_pattern"]) == cfg["L"]
    assert 1 <= len(cfg["patterns"]) <= 8 and len(cfg["globals"]) <= 64
    assert cfg["C"] % cfg["NH"] == 0 and (cfg["C"] // cfg["NH"]) % 2 == 0
    assert cfg["T"] <= cfg["maxT"]
    return cfg


# ---------------------------------------------------------------------------------------------
# The attention pattern, written exactly as in the brief / SPEC.md §1 so it can be read side by
# side with the C code. Order of the rules matters only for the causal guard, which comes first.

def allowed(i, j, p, causal, G):
    W, S, R, d, K = p["W"], p["S"], p["R"], p["d"], p["K"]
    if causal and j > i:
        return False
    o = i - j
    if o >= 0 and (W == 0 or o < W):             # band, includes the query itself
        return True
    if not causal and o < 0 and -o <= R:          # lookahead
        return True
    if j < S:                                     # sinks
        return True
    if not causal and i < S:                      # sink queries see everything (non-causal)
        return True
    if j in G:
        return True
    if not causal and i in G:
        return True
    if d > 1 and W > 0 and o >= W and o % d == 0 and (K == 0 or o < W + K * d):   # dilation
        return True
    return False


def build_mask(T, p, causal, G):
    """(T, T) bool, [i, j] = query i may attend key j."""
    G = set(G)
    m = torch.tensor([[allowed(i, j, p, causal, G) for j in range(T)] for i in range(T)],
                     dtype=torch.bool)
    # A row with no allowed key would make softmax produce NaN; SPEC says it cannot happen for
    # the patterns we allow, so a violation here is a bug in the case definition.
    assert m.any(dim=1).all(), "attention row with no allowed key"
    return m


# ---------------------------------------------------------------------------------------------
# Parameters: kept as plain tensors in README order, with per-layer tensors stacked over layers,
# so that the flattened gradient list is already in the checkpoint / dump order.

def param_shapes(cfg):
    Vp, C, L, maxT = cfg["Vp"], cfg["C"], cfg["L"], cfg["maxT"]
    shapes = [("wte", (Vp, C))]
    if not cfg["rope"]:
        shapes.append(("wpe", (maxT, C)))         # rotary models have no wpe at all
    shapes += [
        ("ln1w", (L, C)), ("ln1b", (L, C)),
        ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)),
        ("attprojw", (L, C, C)), ("attprojb", (L, C)),
        ("ln2w", (L, C)), ("ln2b", (L, C)),
        ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
        ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
        ("lnfw", (C,)), ("lnfb", (C,)),
    ]
    return shapes


# Matrices get weight decay (llm.c's rule: every 2-D tensor of the unstacked model).
DECAYED = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}


def init_params(cfg):
    """Random init chosen so that every term matters: non-trivial LayerNorm gains and biases,
    non-zero linear biases. Drawn in parameter order from the (already seeded) global RNG."""
    params = {}
    for name, shape in param_shapes(cfg):
        n = torch.randn(shape, dtype=torch.float32)
        if name in ("ln1w", "ln2w", "lnfw"):
            t = 1.0 + 0.1 * n
        elif name in ("ln1b", "ln2b", "lnfb"):
            t = 0.1 * n
        else:                                      # weights, embeddings, linear biases
            t = 0.02 * n
        if name == "wte":
            t[cfg["V"]:] = 0.0                     # padded vocabulary rows are zero, as in llm.c
        params[name] = t.requires_grad_(True)
    return params


# ---------------------------------------------------------------------------------------------
# The model

def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rotary_cos_sin(T, hs, theta):
    """cos/sin tables (T, hs/2) for README's half-split convention. Computed in float64 and
    rounded once to float32, so they are the correctly rounded values the C side should get
    from double-precision cos/sin (float32 angles differ by ~1e-6 at T=48, well inside 1e-4)."""
    k = torch.arange(hs // 2, dtype=torch.float64)
    inv_freq = theta ** (-2.0 * k / hs)                              # theta_k = base^(-2k/hs)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rotary(x, cos, sin):
    """x: (B, NH, T, hs). Pairs (k, k + hs/2) are rotated by angle t * theta_k."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def forward(params, cfg, idx, masks, embedded=None):
    """idx (B, T) int64 -> logits (B, T, Vp). masks[l] is layer l's (T, T) bool mask. embedded
    (B, T, C), if given, stands for wte[idx] (scripts/receptive_field.py differentiates by it)."""
    B, T = idx.shape
    C, NH, L = cfg["C"], cfg["NH"], cfg["L"]
    hs = C // NH
    P = params

    x = P["wte"][idx] if embedded is None else embedded             # (B, T, C)
    if not cfg["rope"]:
        x = x + P["wpe"][:T]
    else:
        cos, sin = (t.to(idx.device) for t in rotary_cos_sin(T, hs, cfg["theta"]))  # on the GPU when the model is

    for l in range(L):
        # attention block
        h = F.layer_norm(x, (C,), P["ln1w"][l], P["ln1b"][l], eps=1e-5)
        qkv = h @ P["qkvw"][l].T + P["qkvb"][l]                     # (B, T, 3C)
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(B, T, NH, hs).transpose(1, 2)                    # (B, NH, T, hs)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        if cfg["rope"]:
            q = apply_rotary(q, cos, sin)
            k = apply_rotary(k, cos, sin)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))     # (B, NH, T, T)
        att = att.masked_fill(~masks[l], float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)              # heads concatenated
        x = x + (y @ P["attprojw"][l].T + P["attprojb"][l])

        # MLP block
        h = F.layer_norm(x, (C,), P["ln2w"][l], P["ln2b"][l], eps=1e-5)
        h = gelu_tanh(h @ P["fcw"][l].T + P["fcb"][l])
        x = x + (h @ P["fcprojw"][l].T + P["fcprojb"][l])

    x = F.layer_norm(x, (C,), P["lnfw"], P["lnfb"], eps=1e-5)
    return x @ P["wte"].T                                           # tied embedding, all Vp columns


def loss_fn(logits, targets, V):
    # Only the first V columns take part in the softmax: padded vocabulary entries are not tokens.
    return F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))


# ---------------------------------------------------------------------------------------------
# Files

def num_params(cfg):
    return sum(math.prod(s) for _, s in param_shapes(cfg))


def checkpoint_header(cfg):
    h = np.zeros(256, dtype="<i4")
    h[0], h[1] = MODEL_MAGIC, MODEL_VERSION_FP32
    h[2], h[3], h[4], h[5], h[6], h[7] = cfg["maxT"], cfg["V"], cfg["L"], cfg["NH"], cfg["C"], cfg["Vp"]
    if cfg["llmc_header"]:
        return h                                   # llm.c file: slot 8 = 0 and 9..255 zero
    h[8] = 1                                       # pattern slots valid
    h[9] = 1 if cfg["rope"] else 0
    h[10] = cfg["theta"] if cfg["rope"] else 0
    h[11] = cfg["causal"]
    h[12] = len(cfg["patterns"])
    h[13] = len(cfg["globals"])
    for p, pat in enumerate(cfg["patterns"]):
        h[16 + 5 * p: 21 + 5 * p] = [pat["W"], pat["S"], pat["R"], pat["d"], pat["K"]]
    for l, p in enumerate(cfg["layer_pattern"]):
        h[64 + l] = p
    for g, pos in enumerate(sorted(cfg["globals"])):
        h[192 + g] = pos
    return h


def flat(tensors):
    return np.concatenate([t.detach().reshape(-1).numpy() for t in tensors]).astype("<f4")


def write_checkpoint(path, cfg, params):
    with open(path, "wb") as f:
        checkpoint_header(cfg).tofile(f)
        flat(params.values()).tofile(f)
    expected = 256 * 4 + num_params(cfg) * 4
    assert os.path.getsize(path) == expected, (path, os.path.getsize(path), expected)


def write_dump(path, cfg, idx, targets, logits, loss, grads, losses, final_params):
    B, T, V = cfg["B"], cfg["T"], cfg["V"]
    nparams = num_params(cfg)
    header = np.zeros(256, dtype="<i4")
    header[:8] = [DUMP_MAGIC, DUMP_VERSION, B, T, V, cfg["Vp"], nparams, NSTEPS]
    hyper = np.zeros(16, dtype="<f4")
    hyper[:6] = [LR, BETA1, BETA2, ADAM_EPS, WEIGHT_DECAY, GRAD_CLIP]
    g = flat(grads)
    assert g.size == nparams
    with open(path, "wb") as f:
        header.tofile(f)
        hyper.tofile(f)
        idx.numpy().astype("<i4").reshape(-1).tofile(f)
        targets.numpy().astype("<i4").reshape(-1).tofile(f)
        logits[..., :V].detach().numpy().astype("<f4").reshape(-1).tofile(f)
        np.array([loss], dtype="<f4").tofile(f)
        g.tofile(f)
        np.array(losses, dtype="<f4").tofile(f)
        flat(final_params).tofile(f)
    expected = 4 * (256 + 16 + 2 * B * T + B * T * V + 1 + 2 * nparams + NSTEPS)
    assert os.path.getsize(path) == expected, (path, os.path.getsize(path), expected)


# ---------------------------------------------------------------------------------------------
# One case: init, forward/backward at the initial weights, then NSTEPS AdamW steps on the batch.

def run_case(name, outdir):
    cfg = case_config(name)
    torch.manual_seed(SEED)
    params = init_params(cfg)
    B, T, V = cfg["B"], cfg["T"], cfg["V"]
    idx = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))

    pmasks = [build_mask(T, p, cfg["causal"], cfg["globals"]) for p in cfg["patterns"]]
    masks = [pmasks[p] for p in cfg["layer_pattern"]]

    # Checkpoint first: it must hold the initial weights, before the optimizer touches them.
    write_checkpoint(os.path.join(outdir, f"{name}_model.bin"), cfg, params)

    plist = list(params.values())
    logits = forward(params, cfg, idx, masks)
    loss = loss_fn(logits, targets, V)
    grads = torch.autograd.grad(loss, plist)

    # Training: two groups as in llm.c / nanoGPT, decay only on the matrices.
    decay = [t for n, t in params.items() if n in DECAYED]
    no_decay = [t for n, t in params.items() if n not in DECAYED]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=ADAM_EPS)
    losses = []
    for _ in range(NSTEPS):
        opt.zero_grad(set_to_none=True)
        step_loss = loss_fn(forward(params, cfg, idx, masks), targets, V)
        losses.append(step_loss.item())
        step_loss.backward()
        # torch scales by grad_clip / (norm + 1e-6) when that is < 1; the C side must match.
        torch.nn.utils.clip_grad_norm_(plist, GRAD_CLIP)
        opt.step()

    # Step 0 runs the same graph at the same weights as the dumped loss.
    assert losses[0] == loss.item(), (losses[0], loss.item())
    # Overfitting one batch: the loss must go down, or the dump would not test training at all.
    assert all(b < a for a, b in zip(losses, losses[1:])), f"{name}: losses not decreasing {losses}"

    # the weights after the last step pin down what the losses cannot: which tensors are decayed
    write_dump(os.path.join(outdir, f"{name}_ref.bin"), cfg, idx, targets, logits,
               loss.item(), grads, losses, [t.detach() for t in plist])
    print(f"{name:18s} num_params {num_params(cfg):7d}  loss {loss.item():.6f}  last loss {losses[-1]:.6f}")


# ---------------------------------------------------------------------------------------------
# Self-checks of the building blocks, run before any case is written.

def self_checks():
    # SPEC §1 examples: W=3, T=6 causal is band-diagonal, row i attends i-2..i.
    m = build_mask(6, pattern(W=3), 1, [])
    want = torch.tensor([[0 <= i - j < 3 for j in range(6)] for i in range(6)])
    assert torch.equal(m, want), m
    # W=3, T=8, non-causal, R=0, G={0}: row 0 attends all; row i>0 attends {0} ∪ [i-2, i].
    m = build_mask(8, pattern(W=3), 0, [0])
    want = torch.tensor([[i == 0 or j == 0 or 0 <= i - j < 3 for j in range(8)] for i in range(8)])
    assert torch.equal(m, want), m
    # W=0 causal is the ordinary lower-triangular mask.
    assert torch.equal(build_mask(10, pattern(), 1, []), torch.ones(10, 10, dtype=torch.bool).tril())
    # Dilation W=6, d=3, K=3: band offsets 0..5, then offsets 6, 9, 12 only.
    row = build_mask(30, pattern(W=6, d=3, K=3), 1, [])[29]
    assert [29 - j for j in range(30) if row[j]] == [12, 9, 6, 5, 4, 3, 2, 1, 0]

    # Rotary is a rotation: it preserves per-head norms at every position, and q·k depends only
    # on the position difference.
    hs, T = 16, 40
    cos, sin = rotary_cos_sin(T, hs, 10000)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, T, hs, generator=g)
    xr = apply_rotary(x, cos, sin)
    assert torch.allclose(xr.norm(dim=-1), x.norm(dim=-1), rtol=1e-5, atol=0)
    assert torch.equal(xr[:, :, 0], x[:, :, 0])                      # position 0: angle 0
    q1, k1 = torch.randn(hs, generator=g), torch.randn(hs, generator=g)
    Q = apply_rotary(q1.expand(1, 1, T, hs), cos, sin)[0, 0]
    K = apply_rotary(k1.expand(1, 1, T, hs), cos, sin)[0, 0]
    assert torch.allclose(Q[10] @ K[7], Q[33] @ K[30], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# --eval: the PyTorch side of the trainers' --eval on an llm.c checkpoint (full causal attention,
# learned positions): the mean loss over the first M batches of B x T tokens of a shard, batched as
# the trainers' loader does (batch k reads tokens k*B*T .. (k+1)*B*T inclusive), and the mean loss
# at each position.

def evaluate_llmc_file(path, shard, B, T, M, positions_csv):
    h = np.fromfile(path, dtype="<i4", count=256)
    if h[0] != MODEL_MAGIC or h[1] != MODEL_VERSION_FP32 or h[8] != 0:
        sys.exit(f"error: {path}: expected an llm.c float32 checkpoint (magic {MODEL_MAGIC}, version 3, slot 8 = 0)")
    cfg = dict(BASE, maxT=int(h[2]), V=int(h[3]), L=int(h[4]), NH=int(h[5]), C=int(h[6]), Vp=int(h[7]))
    flat_params = np.fromfile(path, dtype="<f4", offset=256 * 4)
    assert flat_params.size == num_params(cfg), (flat_params.size, num_params(cfg))
    params, at = {}, 0
    for name, shape in param_shapes(cfg):
        n = math.prod(shape)
        params[name] = torch.from_numpy(flat_params[at:at + n].copy()).reshape(shape)
        at += n
    header = np.fromfile(shard, dtype="<i4", count=256)
    tokens = np.fromfile(shard, dtype="<u2", offset=256 * 4).astype(np.int64)
    assert header[0] == 20240520 and tokens.size == header[2], shard
    if tokens.size < M * B * T + 1:
        sys.exit(f"error: {shard}: {tokens.size} tokens, fewer than {M} batches of {B} x {T} need")
    masks = [build_mask(T, pattern(W=0), 1, [])] * cfg["L"]
    sums, position_sums = 0.0, torch.zeros(T, dtype=torch.float64)
    with torch.no_grad():
        for k in range(M):
            window = torch.from_numpy(tokens[k * B * T: (k + 1) * B * T + 1])
            idx, targets = window[:-1].view(B, T), window[1:].view(B, T)
            logits = forward(params, cfg, idx, masks)[..., :cfg["V"]]
            token_losses = F.cross_entropy(logits.reshape(-1, cfg["V"]), targets.reshape(-1), reduction="none")
            sums += token_losses.mean().item()
            position_sums += token_losses.view(B, T).sum(dim=0).double()
    print(f"val loss {sums / M:.6f}")
    with open(positions_csv, "w") as f:
        f.write("position,loss\n")
        for t in range(T):
            f.write(f"{t},{position_sums[t].item() / (M * B):.6f}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="directory for <case>_model.bin and <case>_ref.bin")
    ap.add_argument("--case", action="append", choices=list(CASES),
                    help="case to write (repeatable); default: all")
    ap.add_argument("--eval", nargs=6, metavar=("CHECKPOINT", "SHARD", "B", "T", "M", "POSITIONS_CSV"),
                    help="print the loss of an llm.c checkpoint over M batches of B x T of SHARD; "
                         "write the mean loss per position to POSITIONS_CSV")
    args = ap.parse_args()
    if args.eval:
        torch.set_num_threads(1)
        ckpt, shard, B, T, M, csv_path = args.eval
        evaluate_llmc_file(ckpt, shard, int(B), int(T), int(M), csv_path)
        return 0
    if not args.out:
        ap.error("--out DIR is needed (or --eval)")

    torch.set_num_threads(1)                       # fixed reduction order: reproducible bytes
    os.makedirs(args.out, exist_ok=True)
    self_checks()
    for name in args.case or list(CASES):
        run_case(name, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
