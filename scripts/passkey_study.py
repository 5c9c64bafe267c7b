#!/usr/bin/env python3
"""Passkey retrieval by attention pattern (issue 13 item 1, seeds/004): one model per pattern trained
on passkey rows mixed with text (scripts/passkey.py), then the greedy retrieval accuracy of the 5
digits for every (pattern, distance) over --trials rows each (the trainers' --eval --eval-greedy 5),
beside whether the key is inside the pattern's theoretical receptive field (scripts/analyze_pattern.py,
propagated through the model's layers). Writes DIR/results.csv, DIR/results.md, DIR/heatmap.png;
scripts/passkey_seeds.py joins the DIRs of runs with other --seed values.
Beside the exact answers, each cell's digits (the share of the 5 digits right, and of the first
digit alone: each row's answer from --eval-rows), which tell a model that copies the key but for
one digit from one that never found it.

    python3 scripts/passkey_study.py                       GPU: d6, T=2048, 6000 steps an arm, up to 8 keys a training row (bench/passkey)
    python3 scripts/passkey_study.py --device cpu --dir out/passkey -T 128 --model l2c32h2 --steps 40 --episodes 1 \\
        --filler-train build/test/tiny/tiny_train.bin --filler-val build/test/tiny/tiny_val.bin --trials 8
                                                           a miniature on train_gpt_cpu, to check the script

The arms, with windows scaled to T (the values at T = 2048): full; window T/16 (128) and window T/4
(512), whose receptive fields L(W-1) lie below and above the longest distances; window T/16 + 4
sinks; window T/16 + dilation 8 x T/64 keys; window T/16 + global positions every T/64 (the key is
put on such a position: passkey.py --align); and a local/global mix (every third layer full).
"""
import argparse
import csv
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import analyze_pattern  # noqa: E402  (the receptive field, exactly as the trainers' masks give it)

PROG = "passkey_study.py"


def arms(T, L):
    w, wl, g = T // 16, T // 4, max(T // 64, 1)
    globals_ = list(range(0, T, g))[:64]  # every key passkey.py --align g places is one of them (T <= 64 g)
    mix = [0 if (l + 1) % 3 == 0 else w for l in range(L)]  # with fewer than 3 layers: the window arm again
    return [  # (name, trainer flags, layer patterns for analyze_pattern)
        ("full", [], [analyze_pattern.pattern()] * L),
        ("window %d" % w, ["--window", str(w)], [analyze_pattern.pattern(W=w)] * L),
        ("window %d" % wl, ["--window", str(wl)], [analyze_pattern.pattern(W=wl)] * L),
        ("window %d + 4 sinks" % w, ["--window", str(w), "--sinks", "4"], [analyze_pattern.pattern(W=w, S=4)] * L),
        ("window %d + dilation 8 x %d" % (w, g), ["--window", str(w), "--dilation", "8", "--dilated-keys", str(g)],
         [analyze_pattern.pattern(W=w, d=8, K=g)] * L),
        ("window %d + globals every %d" % (w, g), ["--window", str(w), "--global", ",".join(map(str, globals_))],
         [analyze_pattern.pattern(W=w, G=globals_)] * L),
        ("mix: window %d, every 3rd layer full" % w, ["--layer-windows", ",".join(map(str, mix))],
         [analyze_pattern.pattern(W=x) for x in mix]),
    ], g


def key_reachable(layer_patterns, T, distance):
    """Does the position that predicts the answer's first digit (T-6) reach the key's first digit
    (T-5-distance) through all the layers?"""
    q = T - 6
    reach = 1 << q
    for lp in reversed(layer_patterns):
        reach = analyze_pattern.attended(lp, reach, T)
    return bool(reach >> (T - 5 - distance) & 1)


def run(cmd, log):
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        tail = open(log).read().strip().splitlines()[-1:]
        sys.exit("error: %s: %s failed (exit %d): %s (log: %s)" % (PROG, cmd[0], r.returncode, tail, log))


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="gpu", choices=["gpu", "cpu"])
    ap.add_argument("--dir", default="bench/passkey")
    ap.add_argument("-T", type=int, default=2048)
    ap.add_argument("--model", default="d6")
    ap.add_argument("-b", type=int, default=8, help="batch (rows) for training and evaluation")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--train-rows", type=int, default=0, help="default: enough for one pass of the steps")
    ap.add_argument("--filler-train", default="data/books/books_train.bin")
    ap.add_argument("--filler-val", default="data/books/books_val.bin")
    ap.add_argument("--only", help="comma-separated arm numbers (0-based) to run, default all")
    ap.add_argument("--marker", default="#", help="passkey.py --marker: the byte before the key (default '#'; '' = a space)")
    ap.add_argument("--passkey-fraction", type=float, default=1.0, help="passkey.py --passkey-fraction (default 1)")
    ap.add_argument("--seed", type=int, default=1337,
                    help="the trainer's -r: seed of each arm's initial weights (default 1337); another seed wants another --dir")
    ap.add_argument("--episodes", type=int, default=8, help="passkey.py --episodes: up to this many keys a training row (default 8)")
    args = ap.parse_args()
    T = args.T
    if args.seed < 1:
        sys.exit("error: %s: --seed %d: expected 1 or more (the trainers' -r)" % (PROG, args.seed))
    if args.device == "gpu" and subprocess.run(["sh", "-c", "nvidia-smi -L"], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL).returncode != 0:
        sys.exit("error: %s: no GPU here (nvidia-smi lists none): --device cpu runs the miniature (see -h)" % PROG)
    os.makedirs(args.dir, exist_ok=True)
    binary = "./train_gpt_window" if args.device == "gpu" else "./train_gpt_cpu"
    subprocess.run(["make", binary[2:]], check=True, stdout=subprocess.DEVNULL)
    L = int(args.model[1:]) if args.model.startswith("d") else int(args.model[1:].split("c")[0])
    arm_list, align = arms(T, L)
    data = os.path.join(args.dir, "data")
    rows = args.train_rows or args.steps * args.b
    if args.trials < args.b:
        sys.exit("error: %s: --trials %d: at least one batch of -b %d rows per distance" % (PROG, args.trials, args.b))
    # the data and results in --dir belong to one set of settings: a re-run with others is refused
    settings = "model=%s T=%d b=%d steps=%d trials=%d train_rows=%d filler=%s,%s marker='%s' passkey_fraction=%g episodes=%d" % (
        args.model, T, args.b, args.steps, args.trials, rows, args.filler_train, args.filler_val, args.marker,
        args.passkey_fraction, args.episodes) + ("" if args.seed == 1337 else " seed=%d" % args.seed)
    settings_path = os.path.join(args.dir, "settings.txt")
    if os.path.exists(settings_path) and open(settings_path).read().strip() != settings:
        sys.exit("error: %s: --dir %s holds a study with other settings (%s; now %s): use another --dir"
                 % (PROG, args.dir, open(settings_path).read().strip(), settings))
    open(settings_path, "w").write(settings + "\n")
    if not os.path.exists(os.path.join(data, "distances.txt")):
        run([sys.executable, os.path.join(os.path.dirname(__file__), "passkey.py"), "--filler-train", args.filler_train,
             "--filler-val", args.filler_val, "-T", str(T), "--out", data, "--trials", str(args.trials),
             "--train-rows", str(rows), "--align", str(align), "--marker", args.marker,
             "--passkey-fraction", str(args.passkey_fraction), "--episodes", str(args.episodes)],
            os.path.join(args.dir, "passkey_data.log"))
    distances = [int(d) for d in open(os.path.join(data, "distances.txt")).read().split()]
    results_path = os.path.join(args.dir, "results.csv")
    done = {}
    if os.path.exists(results_path):  # resume: arms already evaluated are kept
        for r in csv.DictReader(open(results_path)):
            done[(r["arm"], int(r["distance"]))] = r
    chosen = range(len(arm_list)) if not args.only else [int(x) for x in args.only.split(",")]
    for k in chosen:
        name, flags, layer_patterns = arm_list[k]
        if all((name, d) in done for d in distances):
            print("%s: done already" % name)
            continue
        out = os.path.join(args.dir, "arm%d" % k)
        ckpt = os.path.join(out, "model_%08d.bin" % args.steps)
        t0 = time.time()
        if not os.path.exists(ckpt):
            run([binary, "-i", os.path.join(data, "passkey_train.bin"), "-j", os.path.join(data, "passkey_val.bin"),
                 "-e", args.model, "-b", str(args.b), "-t", str(T), "-x", str(args.steps), "-v", str(max(args.steps // 5, 1)),
                 "-m", "4", "--pos", "rope", "-r", str(args.seed), "-o", out] + flags, os.path.join(args.dir, "arm%d_train.log" % k))
        train_s = time.time() - t0
        val = [l for l in open(os.path.join(args.dir, "arm%d_train.log" % k)) if l.startswith("val loss")]
        for d in distances:
            log = os.path.join(args.dir, "arm%d_d%d.log" % (k, d))
            answers = os.path.join(args.dir, "arm%d_d%d.csv" % (k, d))
            run([binary, "--eval", "-e", ckpt, "-j", os.path.join(data, "passkey_d%d.bin" % d), "-b", str(args.b),
                 "-t", str(T), "--eval-greedy", "5", "--eval-rows", answers], log)
            text = open(log).read()
            decoding = "cache" if "decoded greedily through the KV cache" in text else "forward"
            line = [l for l in text.splitlines() if l.startswith("greedy:")][0].split()
            exact, total = int(line[1]), int(line[3])
            digits, first = digit_accuracy(answers)
            done[(name, d)] = dict(arm=name, arm_index=k, flags=" ".join(flags), distance=d, exact=exact, trials=total,
                                   accuracy="%.4f" % (exact / total), digit_accuracy="%.4f" % digits,
                                   first_digit_accuracy="%.4f" % first, key_in_receptive_field=int(key_reachable(layer_patterns, T, d)),
                                   final_val_loss=val[-1].split()[-1] if val else "", train_seconds="%.0f" % train_s,
                                   decoding=decoding)
            print("%-40s distance %5d: %3d of %d exact, digits %.2f, first digit %.2f" % (name, d, exact, total, digits, first),
                  flush=True)
        with open(results_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(next(iter(done.values())).keys()))
            w.writeheader()
            for key in sorted(done, key=lambda x: (int(done[x]["arm_index"]), x[1])):
                w.writerow(done[key])
    report(args, arm_list, distances, done, T, L)


def digit_accuracy(path):
    """From --eval-rows: the share of answer digits decoded right, and of first digits"""
    right = first = n = 0
    for r in csv.DictReader(open(path)):
        got, want = r["decoded"].split(), r["expected"].split()
        right += sum(g == w for g, w in zip(got, want)) / len(want)
        first += got[0] == want[0]
        n += 1
    return right / n, first / n


def report(args, arm_list, distances, done, T, L):
    names = [a[0] for a in arm_list if any((a[0], d) in done for d in distances)]
    lines = ["# Passkey retrieval by attention pattern", "",
             "%s, rotary, seed %d, T=%d, %d steps on passkey rows mixed with text (scripts/passkey.py --marker '%s' "
             "--passkey-fraction %g --episodes %d); %s rows per distance; "
             "greedy decoding of the 5 digits (`--eval --eval-greedy 5`). A cell: exact answers / rows; "
             "* = the key lies outside the theoretical receptive field of the position that answers; decoded: through "
             "the KV cache (cache) or by re-running the forward for each digit (forward)."
             % (args.model, args.seed, T, args.steps, args.marker, args.passkey_fraction, args.episodes, args.trials), "",
             "| pattern | val loss | " + " | ".join("d=%d" % d for d in distances) + " | decoded |",
             "| --- | --- |" + " --- |" * (len(distances) + 1)]
    for n in names:
        cells = []
        for d in distances:
            r = done.get((n, d))
            cells.append("" if r is None else "%.2f%s" % (float(r["accuracy"]), "" if int(r["key_in_receptive_field"]) else "*"))
        val = next((done[(n, d)]["final_val_loss"] for d in distances if (n, d) in done), "")
        # through the KV cache, or by re-running the forward (patterns the cache does not cover, and
        # every result written before the cache path existed)
        how = next((done[(n, d)].get("decoding") or "forward" for d in distances if (n, d) in done), "")
        lines.append("| %s | %s | %s | %s |" % (n, val, " | ".join(cells), how))
    lines += ["", "Digits right (greedy decoding, each digit after the model's own; chance 0.10): all five / the first alone.", "",
              "| pattern | " + " | ".join("d=%d" % d for d in distances) + " |", "| --- |" + " --- |" * len(distances)]
    for n in names:
        cells = []
        for d in distances:
            r = done.get((n, d))
            cells.append("" if r is None or "digit_accuracy" not in r else
                         "%.2f / %.2f" % (float(r["digit_accuracy"]), float(r["first_digit_accuracy"])))
        lines.append("| %s | %s |" % (n, " | ".join(cells)))
    open(os.path.join(args.dir, "results.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no matplotlib, heatmap.png skipped")
        return
    grid = [[float(done[(n, d)]["accuracy"]) if (n, d) in done else float("nan") for d in distances] for n in names]
    fig, ax = plt.subplots(figsize=(1.4 + 1.1 * len(distances), 1.2 + 0.5 * len(names)))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i, n in enumerate(names):
        for j, d in enumerate(distances):
            if (n, d) in done:
                outside = not int(done[(n, d)]["key_in_receptive_field"])
                ax.text(j, i, "%.2f%s" % (grid[i][j], "*" if outside else ""), ha="center", va="center",
                        color="white" if grid[i][j] < 0.6 else "black", fontsize=8)
    ax.set_xticks(range(len(distances)), [str(d) for d in distances])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("distance from the key to the answer (tokens); * = outside the theoretical receptive field")
    ax.set_title("passkey retrieval, greedy exact match (%s, T=%d, %d steps)" % (args.model, T, args.steps), fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(os.path.join(args.dir, "heatmap.png"), dpi=110)
    print("wrote %s" % os.path.join(args.dir, "heatmap.png"))


if __name__ == "__main__":
    main()
