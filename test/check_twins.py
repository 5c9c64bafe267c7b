#!/usr/bin/env python3
"""The two CUDA trainers must be identical outside their `// @twin-begin` ... `// @twin-end`
regions (the description and the attention section), so that a fix to one reaches the other.

    python3 test/check_twins.py [A.cu B.cu]      default: train_gpt_window.cu train_gpt_full.cu
    python3 test/check_twins.py --update [A.cu B.cu]

Prints the first differing lines, and a closing `twins: N passed, M failed` line. --update rewrites
B as A outside the twin regions and B's own text inside them: how a change to the shared code of
one trainer reaches the other.
"""
import difflib
import re
import sys


def outside_twin_regions(path):
    kept, depth = [], 0
    for n, line in enumerate(open(path).read().split("\n"), 1):
        if re.match(r"\s*//\s*@twin-begin\b", line):
            if depth:
                sys.exit(f"error: {path}:{n}: @twin-begin inside a twin region")
            depth = 1
            kept.append("// @twin region")
        elif re.match(r"\s*//\s*@twin-end\b", line):
            if not depth:
                sys.exit(f"error: {path}:{n}: @twin-end without @twin-begin")
            depth = 0
        elif not depth:
            kept.append(line)
    if depth:
        sys.exit(f"error: {path}: a @twin-begin has no @twin-end")
    return kept


def split_regions(path):
    """The file as alternating pieces: outside, region, outside, ..., outside (regions with their markers)."""
    pieces, current, depth = [], [], 0
    for line in open(path).read().split("\n"):
        if not depth and re.match(r"\s*//\s*@twin-begin\b", line):
            pieces.append(current)
            current, depth = [line], 1
        elif depth and re.match(r"\s*//\s*@twin-end\b", line):
            current.append(line)
            pieces.append(current)
            current, depth = [], 0
        else:
            current.append(line)
    pieces.append(current)
    return pieces


def update(a, b):
    pa, pb = split_regions(a), split_regions(b)
    if len(pa) != len(pb):
        sys.exit(f"error: {a} and {b} have different numbers of twin regions")
    merged = [piece for i in range(len(pa)) for piece in [pa[i] if i % 2 == 0 else pb[i]]]
    open(b, "w").write("\n".join(line for piece in merged for line in piece))
    print(f"{b}: rewritten from {a} outside its twin regions")


def main():
    args = sys.argv[1:]
    if args and args[0] == "--update":
        a, b = args[1:3] if len(args) == 3 else ("train_gpt_window.cu", "train_gpt_full.cu")
        outside_twin_regions(a), outside_twin_regions(b)  # well-formed first
        update(a, b)
        return 0
    a, b = args[0:2] if len(args) == 2 else ("train_gpt_window.cu", "train_gpt_full.cu")
    la, lb = outside_twin_regions(a), outside_twin_regions(b)
    same_regions = la.count("// @twin region") == lb.count("// @twin region")
    diff = list(difflib.unified_diff(la, lb, a, b, lineterm="", n=1))
    ok = same_regions and not diff
    if not ok:
        print("\n".join(diff[:40]) if diff else f"{a} and {b} have different numbers of twin regions")
    print(f"{'PASS' if ok else 'FAIL'} {a} and {b} are identical outside their @twin regions ({len(la)} lines compared)")
    print(f"twins: {int(ok)} passed, {int(not ok)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
