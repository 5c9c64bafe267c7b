#!/usr/bin/env python3
"""Keep the copies of dev/cuda code in the top-level programs identical to their originals.

Top-level programs (train_gpt_*.cu, attention_compare.cu) are self-contained: one nvcc command,
no project headers. So they carry copies of the kernels that dev/cuda develops and checks. Each
copied region is marked in both places by a pair of lines

    // @copy-begin NAME
    ...
    // @copy-end NAME

The originals live in dev/cuda/*.cu, dev/cuda/*.h and the top-level C files (train_gpt_cpu.c, whose
host code the CUDA trainers share), each NAME exactly once among them; the copies live in the
top-level *.cu files (a NAME at most once per file, in any number of files).

    python3 scripts/sync_copies.py           replace the body of every copy with its original's
    python3 scripts/sync_copies.py --check   change nothing; exit 1 if any copy differs

When the best kernel version changes in dev/cuda, move the markers there to the new version's
code (a version's helpers in blocks of their own, so that a program copies only what it runs:
test/check_kernels.py checks it) and run this script; every copy follows. A program calls the
copied launchers by name, e.g. attention_forward11<D> in the trainers' attention_forward_best:
those calls, and the names in attention_kernels() / kernel_versions() and in each program's
contents list, are the lines to update by hand.

The last line of the output is `copies: N passed, M failed` (test/summary.sh counts it).
"""
import argparse
import glob
import os
import re
import sys

BEGIN = re.compile(r"^\s*//\s*@copy-begin\s+(\S+)\s*$")
END = re.compile(r"^\s*//\s*@copy-end\s+(\S+)\s*$")


class MarkerError(Exception):
    pass


def parse_blocks(path, lines):
    """{name: (begin_index, end_index)} of the marker lines; the body is lines[begin+1:end]."""
    blocks, open_name, open_at = {}, None, None
    for n, line in enumerate(lines):
        text = line.rstrip("\r\n")
        mb, me = BEGIN.match(text), END.match(text)
        if mb:
            if open_name is not None:
                raise MarkerError(f"{path}:{n + 1}: @copy-begin {mb.group(1)} inside block {open_name} (nesting is not allowed)")
            open_name, open_at = mb.group(1), n
        elif me:
            if open_name is None:
                raise MarkerError(f"{path}:{n + 1}: @copy-end {me.group(1)} without a @copy-begin")
            if me.group(1) != open_name:
                raise MarkerError(f"{path}:{n + 1}: @copy-end {me.group(1)} closes block {open_name}")
            if open_name in blocks:
                raise MarkerError(f"{path}:{n + 1}: block {open_name} appears twice in this file")
            blocks[open_name] = (open_at, n)
            open_name = None
    if open_name is not None:
        raise MarkerError(f"{path}:{open_at + 1}: block {open_name} has no @copy-end")
    return blocks


def read_lines(path):
    with open(path, "r", encoding="utf-8", newline="") as f:
        return f.read().splitlines(keepends=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if any copy differs")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                    help="repository root (default: this script's parent folder)")
    args = ap.parse_args(argv)
    root = os.path.normpath(args.root)

    def rel(p):
        return os.path.relpath(p, root)

    passed = failed = 0
    # the originals: each name exactly once over dev/cuda/*.cu, dev/cuda/*.h, ./*.c
    sources = {}
    source_files = sorted(glob.glob(os.path.join(root, "dev", "cuda", "*.cu")) +
                          glob.glob(os.path.join(root, "dev", "cuda", "*.h")) +
                          glob.glob(os.path.join(root, "*.c")))
    for path in source_files:
        lines = read_lines(path)
        try:
            blocks = parse_blocks(rel(path), lines)
        except MarkerError as e:
            print(f"error: {e}")
            print(f"copies: {passed} passed, {failed + 1} failed")
            return 1
        for name, (b, e) in blocks.items():
            if name in sources:
                print(f"error: block {name} is defined twice: in {sources[name][0]} and {rel(path)}")
                failed += 1
                continue
            sources[name] = (rel(path), lines[b + 1:e])

    targets = sorted(glob.glob(os.path.join(root, "*.cu")))
    for path in targets:
        lines = read_lines(path)
        try:
            blocks = parse_blocks(rel(path), lines)
        except MarkerError as e:
            print(f"error: {e}")
            failed += 1
            continue
        if not blocks:
            continue
        new_lines, pos, changed = [], 0, []
        for name, (b, e) in sorted(blocks.items(), key=lambda kv: kv[1][0]):
            new_lines.extend(lines[pos:b + 1])
            pos = e
            if name not in sources:
                print(f"error: block {name} in {rel(path)} has no original in dev/cuda/*.cu|*.h or ./*.c")
                failed += 1
                new_lines.extend(lines[b + 1:e])
                continue
            src_file, body = sources[name]
            # compare without line-ending differences; write with the target's line ending
            nl = "\r\n" if lines[b].endswith("\r\n") else "\n"
            want = [l.rstrip("\r\n") + nl for l in body]
            have = lines[b + 1:e]
            if [l.rstrip("\r\n") for l in have] == [l.rstrip("\r\n") for l in want]:
                passed += 1
                new_lines.extend(have)
            elif args.check:
                print(f"copy differs: block {name} in {rel(path)} != {src_file} "
                      f"(run python3 scripts/sync_copies.py)")
                failed += 1
                new_lines.extend(have)
            else:
                print(f"updated: block {name} in {rel(path)} from {src_file}")
                passed += 1
                changed.append(name)
                new_lines.extend(want)
        new_lines.extend(lines[pos:])
        if changed and not args.check:
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write("".join(new_lines))
            os.replace(tmp, path)

    print(f"copies: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
