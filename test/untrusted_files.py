#!/usr/bin/env python3
"""The crafted files of test/test_untrusted.sh (issue 12, "Untrusted files and flags"): tiny valid
checkpoints with one header field or weight changed, optimizer states beside them, and token shards
with a token outside the vocabulary.

    python3 test/untrusted_files.py WORKDIR TRAIN_SHARD VAL_SHARD

Writes into WORKDIR (file names are what test_untrusted.sh expects):
  model.bin              a valid l1c64h1 checkpoint: V 256, maxT 64, learned positions, full causal
                         (a head of 64: the size every trainer's attention takes)
  window_huge.bin        pattern 0: window 2^31-1, sinks 2
  wrapped_sizes.bin      L 4, C 619920243, NH 1, maxT 468952, V 256: the parameter count wraps in
                         64 bits to 113402, and the file has exactly the bytes that count says
  lookahead_2e30.bin     non-causal, window 4, lookahead 2^30
  nan_weight.bin         qkvw[0] = NaN
  state_{neg,max,nan,done}/model_00000005.bin + state_00000005.bin
                         the state's step -2, 2^31-1, NaN in the first moments, or a valid step 5
                         (B 2, T 16, total batch 32, as test_untrusted.sh runs them)
  train_bad_token.bin, val_bad_token.bin
                         the shards with their last token set to 300
Checkpoints and states follow test/fuzz_seeds.py (checkpoint_write / state_save in train_gpt_cpu.c).
Standard library only; the same bytes every time.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fuzz_seeds import checkpoint_bytes, checkpoint_header, state_bytes  # noqa: E402

BASE = dict(maxT=64, V=256, L=1, NH=1, C=64)
STEP = 5


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: untrusted_files.py WORKDIR TRAIN_SHARD VAL_SHARD")
    work, train, val = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    model = checkpoint_bytes(1, **BASE)
    write(os.path.join(work, "model.bin"), model)

    # one header field changed
    write(os.path.join(work, "window_huge.bin"), with_header_slots(model, {16: 2**31 - 1, 17: 2}))
    write(os.path.join(work, "lookahead_2e30.bin"), with_header_slots(model, {11: 0, 16: 4, 18: 2**30}))
    h, _, _ = checkpoint_header(maxT=468952, V=256, L=4, NH=1, C=619920243)
    wrapped = struct.pack("<256i", *h)
    write(os.path.join(work, "wrapped_sizes.bin"), wrapped + bytes(454632 - len(wrapped)))

    # a NaN weight: the first entry of qkvw (after wte, wpe, ln1w, ln1b)
    Vp, C, maxT, L = 256, BASE["C"], BASE["maxT"], BASE["L"]
    qkvw = 256 + Vp * C + maxT * C + 2 * L * C
    nan = bytearray(model)
    nan[4 * qkvw:4 * qkvw + 4] = struct.pack("<f", float("nan"))
    write(os.path.join(work, "nan_weight.bin"), bytes(nan))

    # optimizer states beside the model, at step 5
    n = (len(model) - 1024) // 4
    states = {
        "neg": with_header_slots(state_bytes(n, step=STEP, position=STEP * 32), {2: -2}),
        "max": with_header_slots(state_bytes(n, step=STEP, position=STEP * 32), {2: 2**31 - 1}),
        "nan": nan_moment(state_bytes(n, step=STEP, position=STEP * 32)),
        "done": state_bytes(n, step=STEP, position=STEP * 32),
    }
    for name, state in states.items():
        d = os.path.join(work, "state_" + name)
        os.makedirs(d, exist_ok=True)
        write(os.path.join(d, "model_%08d.bin" % STEP), model)
        write(os.path.join(d, "state_%08d.bin" % STEP), state)

    # shards whose last token is outside a 256-token vocabulary
    for src, name in ((train, "train_bad_token.bin"), (val, "val_bad_token.bin")):
        data = bytearray(open(src, "rb").read())
        data[-2:] = struct.pack("<H", 300)
        write(os.path.join(work, name), bytes(data))
    print("untrusted files written to %s" % work)


def with_header_slots(data, slots):
    """data with int32 header slots {index: value} replaced"""
    data = bytearray(data)
    for index, value in slots.items():
        data[4 * index:4 * index + 4] = struct.pack("<i", value)
    return bytes(data)


def nan_moment(state):
    data = bytearray(state)
    data[1024 + 4 * 3:1024 + 4 * 4] = struct.pack("<f", float("nan"))  # m[3]
    return bytes(data)


if __name__ == "__main__":
    main()
