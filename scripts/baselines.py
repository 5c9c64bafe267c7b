#!/usr/bin/env python3
"""The unigram and bigram baselines of a val split: what a model that sees no context (unigram) or
only the current token (bigram) scores, in nats per token, so that a trained model's val loss can
be read against them (SPEC §6: a result counts when it is far below the bigram level).

    python3 scripts/baselines.py TRAIN_SHARD VAL_SHARD [--tokens N] [--json | --values]

Both models are fit on the train shard's counts and scored on the val shard as mean -ln p:
unigram p(b) = (n(b) + 1) / (N + V), bigram p(b | a) = (n(a, b) + 1) / (n(a) + V) (add-one, so a pair
never seen in train still has a finite loss), V = 256 for byte-level shards, else the largest token
+ 1 of the two shards. --tokens N scores only the first N predictions (tokens 1..N of val, each
after the one before it): what a trainer's `--eval -m M` reads with M x B x T = N. Standard library
only; llm.c's shard format (data/README.md).
"""
import argparse
import array
import json
import math
import struct
import sys
from collections import Counter

MAGIC, HEADER_BYTES = 20240520, 1024


def read_tokens(path):
    try:
        with open(path, "rb") as f:
            header = f.read(HEADER_BYTES)
            body = f.read()
    except OSError as e:
        sys.exit(f"error: baselines.py: '{path}': {e.strerror}")
    if len(header) < HEADER_BYTES or struct.unpack("<i", header[:4])[0] != MAGIC:
        sys.exit(f"error: baselines.py: '{path}' is not a token shard (magic {MAGIC} expected)")
    n = struct.unpack("<i", header[8:12])[0]
    if len(body) != 2 * n or n < 2:
        sys.exit(f"error: baselines.py: '{path}': header says {n} tokens, the file holds {len(body) // 2}")
    tokens = array.array("H")
    tokens.frombytes(body)
    if sys.byteorder == "big":
        tokens.byteswap()
    return tokens


def baselines(train, val):
    V = max(256, max(train) + 1, max(val) + 1)
    unigram = Counter(train)
    # bigram counts as one integer key a * V + b: far faster than tuples for millions of pairs
    pairs = Counter(a * V + b for a, b in zip(train, train[1:]))
    firsts = Counter(train[:-1])
    N = len(train)
    uni = -sum(math.log((unigram[b] + 1) / (N + V)) for b in val[1:]) / (len(val) - 1)
    bi = -sum(math.log((pairs[a * V + b] + 1) / (firsts[a] + V)) for a, b in zip(val, val[1:])) / (len(val) - 1)
    return {"vocab": V, "train_tokens": N, "val_tokens": len(val), "unigram": uni, "bigram": bi}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train")
    ap.add_argument("val")
    ap.add_argument("--tokens", type=int, help="score the first N predictions of val only (default: all)")
    ap.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    ap.add_argument("--values", action="store_true", help="print the unigram and bigram losses alone, on one line")
    args = ap.parse_args()
    val = read_tokens(args.val)
    if args.tokens is not None:
        if not 1 <= args.tokens < len(val):
            sys.exit(f"error: baselines.py: --tokens {args.tokens}: expected 1 to {len(val) - 1} (the val shard's predictions)")
        val = val[:args.tokens + 1]
    r = baselines(read_tokens(args.train), val)
    if args.json:
        print(json.dumps(r))
    elif args.values:
        print(f"{r['unigram']:.4f} {r['bigram']:.4f}")
    else:
        print(f"baselines of {args.val} (fit on {args.train}, {r['train_tokens']} tokens): "
              f"unigram {r['unigram']:.4f}, bigram {r['bigram']:.4f} nats/token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
