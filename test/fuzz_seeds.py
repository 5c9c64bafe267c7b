#!/usr/bin/env python3
"""Seed corpora for test/fuzz_trainer.c: small valid inputs for each of its targets, so that the
fuzzer starts from files the trainer accepts and mutates them field by field.

    python3 test/fuzz_seeds.py OUT_DIR       # writes OUT_DIR/{checkpoint,state,shard,flags}/

Every file starts with the target byte (0 checkpoint, 1 state, 2 shard, 3 flags), then the payload
fuzz_trainer.c describes. Checkpoints follow checkpoint_write in train_gpt_cpu.c (README's "Model
checkpoint"): int32 header[256], then the parameters in llm.c's order, float32 (version 3) or bf16
(version 5). The script is seeded and writes the same bytes every time; standard library only.
"""
import os
import random
import struct
import sys

CHECKPOINT_MAGIC, STATE_MAGIC, SHARD_MAGIC = 20240326, 20240327, 20240520
TARGETS = {"checkpoint": 0, "state": 1, "shard": 2, "flags": 3}


def parameter_sizes(maxT, Vp, L, C, rope):
    """fill_in_parameter_sizes: wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b,
    fcw, fcb, fcprojw, fcprojb, lnfw, lnfb"""
    return [Vp * C, 0 if rope else maxT * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C,
            L * C, L * C, L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C]


def checkpoint_header(maxT, V, L, NH, C, rope=0, theta=10000, causal=1, patterns=((0, 0, 0, 1, 0),),
                      layer_pattern=None, globals_=(), llmc=False, version=3):
    """(W, S, R, d, K) per pattern; layer_pattern[l] indexes patterns (default: all 0)"""
    Vp = (V + 127) // 128 * 128
    h = [0] * 256
    h[0:8] = [CHECKPOINT_MAGIC, version, maxT, V, L, NH, C, Vp]
    if not llmc:
        h[8:14] = [1, rope, theta if rope else 0, causal, len(patterns), len(globals_)]
        for k, p in enumerate(patterns):
            h[16 + 5 * k:21 + 5 * k] = list(p)
        for l in range(L):
            h[64 + l] = layer_pattern[l] if layer_pattern else 0
        for g, pos in enumerate(globals_):
            h[192 + g] = pos
    return h, parameter_sizes(maxT, Vp, L, C, rope and not llmc), Vp


def checkpoint_bytes(seed, **kw):
    h, sizes, Vp = checkpoint_header(**kw)
    rng = random.Random(seed)
    V, C = kw["V"], kw["C"]
    params = []
    for t, n in enumerate(sizes):
        if t in (2, 8, 14):      # LayerNorm weights
            params += [1.0 + 0.1 * rng.gauss(0, 1) for _ in range(n)]
        elif t in (3, 5, 7, 9, 11, 13, 15):  # biases
            params += [0.01 * rng.gauss(0, 1) for _ in range(n)]
        else:
            values = [0.02 * rng.gauss(0, 1) for _ in range(n)]
            if t == 0:           # padded vocabulary rows are zero
                values[V * C:] = [0.0] * ((Vp - V) * C)
            params += values
    head = struct.pack("<256i", *h)
    if h[1] == 3:
        return head + struct.pack("<%df" % len(params), *params)
    bf16 = [struct.unpack("<I", struct.pack("<f", p))[0] >> 16 for p in params]
    return head + struct.pack("<%dH" % len(bf16), *bf16)


def state_bytes(n, step=3, B=2, T=16, total=32, shard=0, position=96, rng_state=0x9E3779B97F4A7C15, seed=0):
    h = [0] * 256
    h[0:13] = [STATE_MAGIC, 1, step, n & 0xFFFFFFFF, n >> 32, shard, position & 0xFFFFFFFF, position >> 32,
               rng_state & 0xFFFFFFFF, rng_state >> 32, B, T, total]
    h = [x - (1 << 32) if x >= (1 << 31) else x for x in h]
    r = random.Random(seed)
    m = [0.01 * r.gauss(0, 1) for _ in range(n)]
    v = [1e-4 * r.random() for _ in range(n)]
    return struct.pack("<256i", *h) + struct.pack("<%df" % n, *m) + struct.pack("<%df" % n, *v)


def shard_bytes(tokens):
    h = [0] * 256
    h[0:3] = [SHARD_MAGIC, 1, len(tokens)]
    return struct.pack("<256i", *h) + struct.pack("<%dH" % len(tokens), *tokens)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fuzz_seeds.py OUT_DIR")
    out = sys.argv[1]
    seeds = {t: {} for t in TARGETS}

    ck = seeds["checkpoint"]
    base = dict(maxT=16, V=256, L=1, NH=2, C=16)
    ck["full_learned"] = checkpoint_bytes(1, **base)
    ck["window_sinks_rope"] = checkpoint_bytes(2, **dict(base, rope=1, patterns=((4, 1, 0, 1, 0),)))
    ck["noncausal_global"] = checkpoint_bytes(3, maxT=16, V=64, L=2, NH=2, C=16, causal=0,
                                              patterns=((3, 1, 2, 1, 0),), globals_=(5, 9))
    ck["dilation_layer_mix"] = checkpoint_bytes(4, maxT=16, V=64, L=2, NH=2, C=16,
                                                patterns=((4, 0, 0, 2, 2), (0, 0, 0, 1, 0)), layer_pattern=(0, 1))
    ck["llmc_header"] = checkpoint_bytes(5, **dict(base, llmc=True))
    ck["bf16"] = checkpoint_bytes(6, **dict(base, version=5, patterns=((8, 2, 0, 1, 0),)))
    ck["rope_dilation"] = checkpoint_bytes(7, maxT=32, V=100, L=1, NH=2, C=8, rope=1, theta=500,
                                           patterns=((4, 0, 0, 3, 0),))

    st = seeds["state"]
    st["small"] = state_bytes(16)
    st["model_sized"] = state_bytes(300, step=7, B=1, T=8, total=16, shard=1, position=1000, seed=1)
    st["zero_moments"] = state_bytes(40, step=1, seed=2)

    sh = seeds["shard"]
    text = b"It was a bright cold day in April, and the clocks were striking thirteen.\n" * 6
    sh["bytes_B2_T16"] = bytes([1, 15, 0]) + shard_bytes(list(text))
    sh["bytes_B4_T64"] = bytes([3, 63, 0]) + shard_bytes(list(text))
    r = random.Random(8)
    sh["gpt2_B1_T8"] = bytes([0, 7, 1]) + shard_bytes([r.randrange(50257) for _ in range(100)] + [50256])
    sh["one_batch"] = bytes([0, 3, 0]) + shard_bytes(list(b"hello"))

    fl = seeds["flags"]
    flag_lists = {
        "window_sinks": "-e l1c16h2 -t 16 -b 2 --window 4 --sinks 1",
        "noncausal_global": "-e l2c16h2 -t 32 --causal 0 --window 4 --lookahead 2 --global 3,7 --sinks 1",
        "dilation": "-e l2c16h2 -t 32 --window 8 --dilation 2 --dilated-keys 3",
        "layer_windows_rope": "-e l3c16h2 -t 16 --layer-windows 4,0,8 --sinks 1 --pos rope",
        "full_every": "-e l4c16h2 -t 16 --full-every 2 --window 4",
        "generate_rope": "-e l1c16h2 -t 16 --generate 5 --window 4 --sinks 2 --pos rope --rope-theta 500",
        "generate_dilation": "-e l1c16h2 -t 16 --generate 5 --window 4 --dilation 2",
        "checkpoint_override": "-e model.bin -t 16 --sinks 4 --window 6",
        "checkpoint_eval": "-e model.bin --eval -t 16 -b 2 -m 2",
        "everything": "-e l1c16h2 -t 16 -V 300 --max-seq-len 64 -d 64 -b 2 -x 3 -l 1e-3 -u 1 -q 0.5 -c 0.1 "
                      "-k 1 -r 7 -v 1 -m 1 -n 1 -s 1 -g 4 --skip-z 3",
        "dropped_files": "-i train.bin -j val.bin -o out -y 1 --tokenizer tok.bin -e d1 -t 32",
        "d1": "-e d1 -t 64 -b 1",
        # the crafted cases of test/test_untrusted.sh
        "huge_sinks": "-e l1c16h2 -x 1 -t 16 --window 1 --sinks 2147483647",
        "huge_window": "-e l1c16h2 -t 16 --window 2000000000",
        "huge_lookahead": "-e l1c16h2 -t 16 --causal 0 --window 4 --lookahead 2147483647",
        "huge_dilation": "-e l1c16h2 -t 16 --dilation 2147483647 --window 4",
        "huge_dilated_keys": "-e l1c16h2 -t 16 --window 4 --dilation 2 --dilated-keys 2000000000",
        "too_many_layers": "-e l200c8h4 -t 16",
        "d129": "-e d129 -t 16",
        "seed_0": "-e l1c16h2 -t 16 -r 0",
        "global_empty_item": "-e l1c16h2 -t 16 --global 1,,2",
        "global_descending": "-e l1c16h2 -t 16 --global 3,1",
    }
    for name, line in flag_lists.items():
        fl[name] = b"\0".join(s.encode() for s in line.split())

    for target, files in seeds.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, payload in files.items():
            data = bytes([TARGETS[target]]) + payload
            if len(data) > 65536:
                sys.exit("fuzz_seeds.py: seed %s/%s is %d bytes, over fuzz.sh's -max_len 65536" % (target, name, len(data)))
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    print("fuzz seeds: %s in %s" % (", ".join("%d %s" % (len(v), k) for k, v in seeds.items()), out))


if __name__ == "__main__":
    main()
