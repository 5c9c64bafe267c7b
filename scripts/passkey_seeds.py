#!/usr/bin/env python3
"""Passkey retrieval over several seeds (issue 13 item 1): joins the results of passkey_study.py runs
that differ only in --seed (each in its own --dir) into one table and one plot, so that a pattern's
result can be told from the luck of one initialisation.

    python3 scripts/passkey_seeds.py bench/passkey bench/passkey_seed2 bench/passkey_seed3 --out bench/passkey/seeds
        -> bench/passkey/seeds.md, bench/passkey/seeds.png

A cell lists the exact-retrieval share of each seed, in the order of the directories ('-' where that
seed did not run the arm). Beside the theoretical receptive field through all the layers (*, as in
passkey_study.py), the table marks with + the distances whose key a single layer can attend directly
from the answering position (its own mask, no hops): a pattern can only relay the key through several
layers where a model learned to, and the table shows where that happened.
"""
import argparse
import csv
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import analyze_pattern  # noqa: E402
import passkey_study  # noqa: E402  (the arms and the receptive field the study used)

PROG = "passkey_seeds.py"


def read_study(path):
    """(settings without the seed, seed, rows of results.csv) of one passkey_study.py --dir"""
    try:
        settings = open(os.path.join(path, "settings.txt")).read().strip()
        rows = list(csv.DictReader(open(os.path.join(path, "results.csv"))))
    except OSError as e:
        sys.exit("error: %s: %s: %s (expected a passkey_study.py --dir)" % (PROG, e.filename, e.strerror))
    m = re.search(r" seed=(\d+)$", settings)
    seed = int(m.group(1)) if m else 1337  # passkey_study.py writes the seed only when it is not 1337
    if not rows or not {"arm", "arm_index", "distance", "accuracy", "key_in_receptive_field"} <= set(rows[0]):
        sys.exit("error: %s: %s: expected passkey_study.py's results.csv with its columns" % (PROG, os.path.join(path, "results.csv")))
    return settings[:m.start()] if m else settings, seed, rows


def one_layer_reach(layer_patterns, T, distance):
    """Can one layer's mask let the answering position (T-6) attend the key's first digit (T-5-distance)?"""
    q = T - 6
    return any(analyze_pattern.attended(lp, 1 << q, T) >> (T - 5 - distance) & 1 for lp in layer_patterns)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", help="passkey_study.py --dir of each seed")
    ap.add_argument("--out", required=True, help="prefix: OUT.md and OUT.png")
    args = ap.parse_args()
    studies = [read_study(d) for d in args.dirs]
    base = studies[0][0]
    for d, (settings, seed, _) in zip(args.dirs, studies):
        if settings != base:
            sys.exit("error: %s: %s: settings '%s' differ from %s's '%s' by more than the seed"
                     % (PROG, d, settings, args.dirs[0], base))
    seeds = [s for _, s, _ in studies]
    if len(set(seeds)) != len(seeds):
        sys.exit("error: %s: seeds %s: expected each directory to hold another seed" % (PROG, seeds))
    kv = dict(x.split("=", 1) for x in re.findall(r"(\w+=\S+)", base))
    T, model = int(kv["T"]), kv["model"]
    L = int(model[1:]) if model.startswith("d") else int(model[1:].split("c")[0])
    arm_list, _ = passkey_study.arms(T, L)
    acc, digits, in_rf = {}, {}, {}
    for (_, seed, rows) in studies:
        for r in rows:
            acc[(int(r["arm_index"]), int(r["distance"]), seed)] = float(r["accuracy"])
            if r.get("digit_accuracy"):
                digits[(int(r["arm_index"]), int(r["distance"]), seed)] = float(r["digit_accuracy"])
            in_rf[(int(r["arm_index"]), int(r["distance"]))] = int(r["key_in_receptive_field"])
    arms_run = sorted({k for k, _, _ in acc})
    distances = sorted({d for _, d, _ in acc})

    lines = ["# Passkey retrieval over %d seeds" % len(seeds), "",
             "From %s (settings: %s); seeds %s in that order. A cell: the exact-retrieval share (greedy, all 5 digits) "
             "of each seed; * = the key lies outside the theoretical receptive field through all layers; + = one "
             "layer's own mask reaches the key from the answering position." % (", ".join(args.dirs), base,
                                                                                   " / ".join(map(str, seeds))), "",
             "| pattern | " + " | ".join("d=%d" % d for d in distances) + " | seeds at >= 0.5 anywhere |",
             "| --- |" + " --- |" * (len(distances) + 1)]
    for k in arms_run:
        name, _, layer_patterns = arm_list[k]
        cells = []
        for d in distances:
            vals = ["-" if (k, d, s) not in acc else "%.2f" % acc[(k, d, s)] for s in seeds]
            mark = ("" if in_rf.get((k, d), 1) else "*") + ("+" if one_layer_reach(layer_patterns, T, d) else "")
            cells.append(" ".join(vals) + (" " + mark if mark else ""))
        ran = [s for s in seeds if any((k, d, s) in acc for d in distances)]
        hits = sum(any(acc.get((k, d, s), 0) >= 0.5 for d in distances) for s in ran)
        lines.append("| %s | %s | %d of %d |" % (name, " | ".join(cells), hits, len(ran)))
    lines += ["", "The share of the 5 digits right (chance 0.10), each seed: a model that copies all but one digit "
              "found the key; one at 0.10 did not.", "",
              "| pattern | " + " | ".join("d=%d" % d for d in distances) + " |", "| --- |" + " --- |" * len(distances)]
    for k in arms_run:
        lines.append("| %s | %s |" % (arm_list[k][0], " | ".join(
            " ".join("-" if (k, d, s) not in digits else "%.2f" % digits[(k, d, s)] for s in seeds) for d in distances)))
    open(args.out + ".md", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("wrote %s.md" % args.out)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no matplotlib, %s.png skipped" % args.out)
        return
    cols = min(4, len(arms_run))
    rows_n = -(-len(arms_run) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.2 * cols, 2.6 * rows_n), squeeze=False, sharey=True)
    for ax, k in zip(axes.flat, arms_run):
        name, _, layer_patterns = arm_list[k]
        direct = [d for d in distances if one_layer_reach(layer_patterns, T, d)]
        if direct:
            ax.axvspan(min(distances) * 0.8, max(direct) * 1.1, color="0.9", lw=0)  # one layer's own reach
        for s in seeds:
            pts = [(d, acc[(k, d, s)]) for d in distances if (k, d, s) in acc]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, label="seed %d" % s)
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("distance (tokens)", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(arms_run):]:
        ax.axis("off")
    axes[0][0].set_ylabel("exact retrieval", fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.suptitle("passkey retrieval by seed (%s, T=%d); grey: distances one layer reaches directly" % (model, T), fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=110)
    print("wrote %s.png" % args.out)


if __name__ == "__main__":
    main()
