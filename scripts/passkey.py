#!/usr/bin/env python3
"""Passkey-retrieval data (issue 13 item 1, seeds/004): byte-level token shards whose rows are
filler text with a random 5-digit key stated once, and at the row's end a prompt that asks for it.

    python3 scripts/passkey.py --filler-train TRAIN.bin --filler-val VAL.bin -T 2048 --out DIR
        [--distances 64,128,...] [--trials 200] [--train-rows 20000] [--align 32] [--seed 1]

writes
    DIR/passkey_train.bin     --train-rows rows of T tokens: half passkey rows at random distances,
                              half plain filler (so the model keeps modelling text)
    DIR/passkey_val.bin       plain filler rows of the val split (the val loss of a training run)
    DIR/passkey_dD.bin        --trials passkey rows at distance D each, filler from the val split
A passkey row of T bytes reads

    ...filler... The pass key is 71432. Remember it. ...filler... What is the pass key? The pass key is 71432

with the answer's 5 digits as the row's last 5 tokens, which `train_gpt_* --eval --eval-greedy 5`
decodes greedily and counts. The distance D is from the key's first digit to the answer's first
digit. --align A puts the key's first digit on a multiple of A (so that a pattern with global
positions every A tokens holds the key in a global position). Standard library only.
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
import prepare  # noqa: E402  (the shard format: read_shard, shard_bytes)

KEY_BEFORE, KEY_AFTER = b" The pass key is ", b". Remember it. "
PROMPT = b" What is the pass key? The pass key is "
DIGITS = 5
PROG = "passkey.py"
Fail = prepare.Fail


def read_bytes(path):
    """The tokens of a byte-level shard, as bytes."""
    _, tokens = prepare.read_shard(path)
    if any(tokens[1::2]):
        raise Fail("%s: tokens above 255: passkey rows need a byte-level shard" % path)
    return tokens[0::2]


def write_shard(path, rows):
    """rows, then one newline: a batch of B rows reads B*T + 1 tokens (the next one is the last target)"""
    try:
        prepare.write_if_changed(path, prepare.shard_bytes(b"".join(rows) + b"\n"))
    except OSError as e:
        raise Fail("%s: %s" % (path, e.strerror))


def filler(text, n, rng):
    """n bytes of text from a random offset"""
    start = rng.randrange(0, len(text) - n)
    return text[start:start + n]


def min_distance():
    return DIGITS + len(KEY_AFTER) + len(PROMPT)


def aligned(T, distance, align):
    """The distance nearest below (or, at the row's start, above) distance whose key starts on a
    multiple of align"""
    key_at = T - DIGITS - distance
    key_at -= key_at % align
    if key_at < len(KEY_BEFORE):
        key_at += align
    return T - DIGITS - key_at


def passkey_row(text, T, distance, rng):
    """A row of T bytes: the key's first digit at T - DIGITS - distance, the answer at the end."""
    key = b"%05d" % rng.randrange(100000)
    key_at = T - DIGITS - distance
    head = filler(text, key_at - len(KEY_BEFORE), rng) + KEY_BEFORE
    gap = (T - DIGITS - len(PROMPT)) - (key_at + DIGITS + len(KEY_AFTER))
    assert key_at >= len(KEY_BEFORE) and gap >= 0, (T, distance)
    row = head + key + KEY_AFTER + filler(text, gap, rng) + PROMPT + key
    assert len(row) == T and row[key_at:key_at + DIGITS] == key
    return row


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--filler-train", required=True, help="byte-level shard the training rows' filler comes from")
    ap.add_argument("--filler-val", required=True, help="byte-level shard the test rows' filler comes from")
    ap.add_argument("-T", type=int, required=True, help="row length (the models' sequence length)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--distances", help="comma-separated test distances (default: 64, 128, ... doubling, and the largest that fits)")
    ap.add_argument("--trials", type=int, default=200, help="test rows per distance (default 200)")
    ap.add_argument("--train-rows", type=int, default=20000, help="training rows (default 20000)")
    ap.add_argument("--align", type=int, default=1, help="the key's first digit on a multiple of this (default 1)")
    ap.add_argument("--seed", type=int, default=1, help="seed of keys, distances and filler offsets (default 1)")
    args = ap.parse_args()
    T = args.T
    largest = T - DIGITS - len(KEY_BEFORE)  # the key's sentence must start at position >= 0
    if args.align < 1 or args.align > T // 4:
        raise Fail("--align %d: expected 1 to T/4 = %d" % (args.align, T // 4))
    if T < 2 * min_distance() or T > 1 << 20:
        raise Fail("-T %d: expected %d to %d (a row holds the key, the prompt and the answer)" % (T, 2 * min_distance(), 1 << 20))
    if args.distances:
        try:
            distances = [int(d) for d in args.distances.split(",")]
        except ValueError:
            raise Fail("--distances '%s': expected comma-separated integers" % args.distances)
    else:
        distances, d = [], 64
        while d < largest:
            distances.append(d)
            d *= 2
        distances.append(largest)
        distances = sorted(set(aligned(T, d, args.align) for d in distances))
    for d in distances:
        if not min_distance() <= d <= largest:
            raise Fail("--distances: %d does not fit a row of %d: expected %d to %d" % (d, T, min_distance(), largest))
        if aligned(T, d, args.align) != d:
            raise Fail("--distances: %d puts the key at %d, not on a multiple of --align %d (%d would)"
                       % (d, T - DIGITS - d, args.align, aligned(T, d, args.align)))
    if args.trials < 1 or args.train_rows < 0:
        raise Fail("--trials >= 1 and --train-rows >= 0 expected")
    train_text, val_text = read_bytes(args.filler_train), read_bytes(args.filler_val)
    for name, text in (("--filler-train", train_text), ("--filler-val", val_text)):
        if len(text) < 2 * T:
            raise Fail("%s: %d bytes, fewer than two rows of %d" % (name, len(text), T))
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.train_rows):
        if i % 2 == 0:
            rows.append(passkey_row(train_text, T, aligned(T, rng.randint(min_distance(), largest), args.align), rng))
        else:
            rows.append(filler(train_text, T, rng))
    write_shard(os.path.join(args.out, "passkey_train.bin"), rows)
    write_shard(os.path.join(args.out, "passkey_val.bin"), [filler(val_text, T, rng) for _ in range(max(args.trials, 8))])
    for d in distances:
        test = [passkey_row(val_text, T, d, rng) for _ in range(args.trials)]
        write_shard(os.path.join(args.out, "passkey_d%d.bin" % d), test)
    print("%s: %d training rows, %d test rows at each of the distances %s, rows of %d tokens -> %s"
          % (PROG, args.train_rows, args.trials, ",".join(map(str, distances)), T, args.out))
    with open(os.path.join(args.out, "distances.txt"), "w") as f:
        f.write(" ".join(map(str, distances)) + "\n")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("error: %s: %s" % (PROG, e), file=sys.stderr)
        sys.exit(1)
