#!/usr/bin/env python3
"""Passkey-retrieval data (issue 13 item 1, seeds/004): byte-level token shards whose rows are
filler text with a random 5-digit key stated once, and at the row's end a prompt that asks for it.

    python3 scripts/passkey.py --filler-train TRAIN.bin --filler-val VAL.bin -T 2048 --out DIR
        [--distances 64,128,...] [--trials 200] [--train-rows 20000] [--align 32] [--seed 1]
        [--marker '#'] [--passkey-fraction 1] [--episodes 1]

writes
    DIR/passkey_train.bin     --train-rows rows of T tokens: passkey rows at random distances (a
                              --passkey-fraction of them; the rest plain filler), each mostly filler
                              text at large T (the model keeps modelling text); with --episodes N
                              a passkey row holds 1 to N episodes back to back, each its own key
    DIR/passkey_val.bin       plain filler rows of the val split (the val loss of a training run)
    DIR/passkey_dD.bin        --trials passkey rows at distance D each, filler from the val split
A passkey row of T bytes reads

    ...filler... The pass key is #71432. Remember it. ...filler... What is the pass key? The pass key is #71432

with the answer's 5 digits as the row's last 5 tokens, which `train_gpt_* --eval --eval-greedy 5`
decodes greedily and counts. The distance D is from the key's first digit to the answer's first
digit. --align A puts the key's first digit on a multiple of A (so that a pattern with global
positions every A tokens holds the key in a global position). Standard library only.

--marker (default '#', a byte about 4 in a million of the books corpus) is the byte right before the
key, in the statement and in the prompt. With --marker '' that byte is a space, as in the usual
passkey text; but a space is 18% of the filler's bytes, so the token that predicts the answer's
first digit matches ~T/6 positions of its row by its own value, and the key's first digit can only
be found by matching the longer prefix "key is ". A model trained from scratch may not learn that
for a long while: l2c64h2 at T=128, 2500 steps of 32 passkey rows, decoded 0 of 200 keys exactly
with a space (first digit at chance, 0.11; later digits 0.27-0.46, copied from the digit before),
and all of them with '#' (passkey_study.py's first d6 run, with a space, scored 0.00 everywhere).
"""
import argparse
import math
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
import prepare  # noqa: E402  (the shard format: read_shard, shard_bytes)

KEY_BEFORE, KEY_AFTER = b" The pass key is ", b". Remember it. "
PROMPT = b" What is the pass key? The pass key is "
MARKER = b"#"  # --marker: the byte before the key, in KEY_BEFORE and PROMPT
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


def min_distance(marker=MARKER):
    return DIGITS + len(KEY_AFTER) + len(PROMPT + marker)


def largest_distance(n, marker=MARKER):
    """in a row (or episode) of n bytes: the key's sentence must start at position >= 0"""
    return n - DIGITS - len(KEY_BEFORE + marker)


def aligned(T, distance, align, marker=MARKER):
    """The distance nearest below (or, at the row's start, above) distance whose key starts on a
    multiple of align"""
    key_at = T - DIGITS - distance
    key_at -= key_at % align
    if key_at < len(KEY_BEFORE + marker):
        key_at += align
    return T - DIGITS - key_at


def passkey_row(text, T, distance, rng, marker=MARKER):
    """A row of T bytes: the key's first digit at T - DIGITS - distance, the answer at the end."""
    key = b"%05d" % rng.randrange(100000)
    key_at = T - DIGITS - distance
    before, prompt = KEY_BEFORE + marker, PROMPT + marker
    head = filler(text, key_at - len(before), rng) + before
    gap = (T - DIGITS - len(prompt)) - (key_at + DIGITS + len(KEY_AFTER))
    assert key_at >= len(before) and gap >= 0, (T, distance)
    row = head + key + KEY_AFTER + filler(text, gap, rng) + prompt + key
    assert len(row) == T and row[key_at:key_at + DIGITS] == key
    return row


def episode_lengths(T, k, shortest, rng):
    """T cut into k lengths of at least shortest each, at random"""
    spare = T - k * shortest
    cuts = sorted(rng.randint(0, spare) for _ in range(k - 1))
    return [shortest + b - a for a, b in zip([0] + cuts, cuts + [spare])]


def episode_row(text, n, align, rng, marker=MARKER):
    """One passkey episode of n bytes at a random distance, its key on a multiple of align"""
    d = rng.randint(min_distance(marker), largest_distance(n, marker))
    return passkey_row(text, n, aligned(n, d, align, marker), rng, marker)


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
    ap.add_argument("--marker", default=MARKER.decode(),
                    help="the byte right before the key and the answer (default '#'; '' = a space, the usual text)")
    ap.add_argument("--passkey-fraction", type=float, default=1.0,
                    help="the fraction of training rows that are passkey rows, the rest plain filler (default 1)")
    ap.add_argument("--episodes", type=int, default=1,
                    help="a training passkey row holds 1 to this many passkey episodes back to back, each with its "
                         "own key, the row cut at random (default 1: one a row). Test rows hold one.")
    args = ap.parse_args()
    T = args.T
    marker = args.marker.encode()
    if len(marker) > 1 or marker.isdigit():
        raise Fail("--marker '%s': expected one byte that is not a digit, or ''" % args.marker)
    if not 0.0 <= args.passkey_fraction <= 1.0:
        raise Fail("--passkey-fraction %g: expected 0 to 1" % args.passkey_fraction)
    largest = largest_distance(T, marker)
    if args.align < 1 or args.align > T // 4:
        raise Fail("--align %d: expected 1 to T/4 = %d" % (args.align, T // 4))
    if T < 2 * min_distance(marker) or T > 1 << 20:
        raise Fail("-T %d: expected %d to %d (a row holds the key, the prompt and the answer)" % (T, 2 * min_distance(marker), 1 << 20))
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
        distances = sorted(set(aligned(T, d, args.align, marker) for d in distances))
    for d in distances:
        if not min_distance(marker) <= d <= largest:
            raise Fail("--distances: %d does not fit a row of %d: expected %d to %d" % (d, T, min_distance(marker), largest))
        if aligned(T, d, args.align, marker) != d:
            raise Fail("--distances: %d puts the key at %d, not on a multiple of --align %d (%d would)"
                       % (d, T - DIGITS - d, args.align, aligned(T, d, args.align, marker)))
    if args.episodes < 1 or args.episodes * 2 * min_distance(marker) > T:
        raise Fail("--episodes %d: expected 1 to %d (each episode needs %d tokens of a row of %d)"
                   % (args.episodes, T // (2 * min_distance(marker)), 2 * min_distance(marker), T))
    if args.trials < 1 or args.train_rows < 0:
        raise Fail("--trials >= 1 and --train-rows >= 0 expected")
    train_text, val_text = read_bytes(args.filler_train), read_bytes(args.filler_val)
    for name, text in (("--filler-train", train_text), ("--filler-val", val_text)):
        if len(text) < 2 * T:
            raise Fail("%s: %d bytes, fewer than two rows of %d" % (name, len(text), T))
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    rows = []
    passkey_rows = 0
    for i in range(args.train_rows):
        if math.ceil((i + 1) * args.passkey_fraction) > passkey_rows:  # spread evenly, the first row a passkey row
            passkey_rows += 1
            lengths = episode_lengths(T, rng.randint(1, args.episodes), 2 * min_distance(marker), rng)
            # a row of one episode puts its key on a multiple of --align, as the test rows do
            rows.append(b"".join(episode_row(train_text, n, args.align if len(lengths) == 1 else 1, rng, marker)
                                 for n in lengths))
        else:
            rows.append(filler(train_text, T, rng))
    write_shard(os.path.join(args.out, "passkey_train.bin"), rows)
    write_shard(os.path.join(args.out, "passkey_val.bin"), [filler(val_text, T, rng) for _ in range(max(args.trials, 8))])
    for d in distances:
        test = [passkey_row(val_text, T, d, rng, marker) for _ in range(args.trials)]
        write_shard(os.path.join(args.out, "passkey_d%d.bin" % d), test)
    print("%s: %d training rows (%d passkey rows), %d test rows at each of the distances %s, rows of %d tokens -> %s"
          % (PROG, args.train_rows, passkey_rows, args.trials, ",".join(map(str, distances)), T, args.out))
    with open(os.path.join(args.out, "distances.txt"), "w") as f:
        f.write(" ".join(map(str, distances)) + "\n")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("error: %s: %s" % (PROG, e), file=sys.stderr)
        sys.exit(1)
