#!/usr/bin/env python3
"""Statistics and plots of a full-vs-window experiment (scripts/experiment.sh).

    python3 scripts/experiment_stats.py MANIFEST OUT_DIR [--title TEXT]
    python3 scripts/experiment_stats.py --self-test

MANIFEST is experiment.sh's runs/manifest.csv (run, attention, seed, position, dir); each dir holds
a trainer's log.csv, and dir.out its console output. Per attention and metric (final val loss,
tokens/s, peak memory): mean, standard deviation and the 95% interval of the mean; for the
difference window - full: Welch's t-test, Cohen's d, and a paired t-test over the runs (each pair
shares its seed). Writes OUT_DIR/results.md, results.json and four plots (curves.png,
distributions.png, per_run.png, tradeoff.png; skipped with a note when matplotlib is missing).
Standard library only for the statistics: the t distribution comes from the regularized
incomplete beta function below.
"""
import argparse
import csv
import json
import math
import os
import re
import statistics
import sys

SKIP_STEPS = 3  # the first steps pay for warm-up: left out of the tokens/s median


# ---------------------------------------------------------------------------- the t distribution

def betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b): Lentz's continued fraction (Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below this point
        return 1.0 - betainc(b, a, 1.0 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return math.exp(log_front) * f / a


def t_two_sided_p(t, df):
    """P(|T| >= |t|) for Student's t with df degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(q, df):
    """The t value with P(T <= t) = q (q > 0.5), by bisection on the two-sided p."""
    target = 2.0 * (1.0 - q)
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_two_sided_p(mid, df) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


# ---------------------------------------------------------------------------- the tests

def describe(xs):
    n = len(xs)
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs) if n > 1 else 0.0
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return dict(n=n, mean=mean, sd=sd, ci95=[mean - half, mean + half])


def welch(a, b):
    """Welch's t-test of mean(b) - mean(a), with Cohen's d (pooled standard deviation)."""
    na, nb = len(a), len(b)
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    va, vb = statistics.variance(a), statistics.variance(b)
    se2 = va / na + vb / nb
    diff = mb - ma
    if se2 == 0.0:
        t, df, p = (0.0, na + nb - 2, 1.0) if diff == 0.0 else (math.copysign(math.inf, diff), na + nb - 2, 0.0)
    else:
        t = diff / math.sqrt(se2)
        df = se2 * se2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1)) if va + vb > 0 else na + nb - 2
        p = t_two_sided_p(t, df)
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    d = diff / pooled if pooled > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    half = t_quantile(0.975, df) * math.sqrt(se2) if se2 > 0 else 0.0
    return dict(diff=diff, t=t, df=df, p=p, cohens_d=d, ci95=[diff - half, diff + half])


def paired(a, b):
    """Paired t-test of b - a over the runs (same seed in each pair)."""
    diffs = [y - x for x, y in zip(a, b)]
    n = len(diffs)
    m = statistics.fmean(diffs)
    sd = statistics.stdev(diffs)
    if sd == 0.0:
        return dict(mean_diff=m, t=0.0 if m == 0 else math.copysign(math.inf, m), df=n - 1, p=1.0 if m == 0 else 0.0)
    t = m / (sd / math.sqrt(n))
    return dict(mean_diff=m, t=t, df=n - 1, p=t_two_sided_p(t, n - 1))


# ---------------------------------------------------------------------------- reading the runs

def read_log(path):
    steps, losses, val_steps, vals, tok = [], [], [], [], []
    with open(path) as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            steps.append(step)
            losses.append(float(row["loss"]))
            if row["val_loss"]:
                val_steps.append(step)
                vals.append(float(row["val_loss"]))
            tok.append(float(row["tokens_per_s"]))
    return steps, losses, val_steps, vals, tok


def peak_memory_mib(out_path):
    """The GPU trainers' "GPU memory in use", or /usr/bin/time's maximum resident set; None if neither."""
    try:
        text = open(out_path, errors="replace").read()
    except OSError:
        return None
    m = re.search(r"GPU memory in use: ([0-9.]+) GiB", text)
    if m:
        return float(m.group(1)) * 1024.0
    m = re.search(r"max resident set: ([0-9]+) KiB", text)
    return int(m.group(1)) / 1024.0 if m else None


def load(manifest):
    runs = []
    with open(manifest) as f:
        for row in csv.DictReader(f):
            log = os.path.join(row["dir"], "log.csv")
            if not os.path.isfile(log):
                sys.exit(f"error: {manifest}: run {row['run']} {row['attention']} has no {log}")
            steps, losses, val_steps, vals, tok = read_log(log)
            if not vals:
                sys.exit(f"error: {log}: no val loss (train with -v)")
            kept = tok[SKIP_STEPS:] or tok
            runs.append(dict(run=int(row["run"]), attention=row["attention"], seed=int(row["seed"]),
                             position=int(row["position"]), steps=steps, losses=losses, val_steps=val_steps,
                             vals=vals, val_loss=vals[-1], tokens_per_s=statistics.median(kept),
                             memory_mib=peak_memory_mib(row["dir"] + ".out")))
    return runs


# ---------------------------------------------------------------------------- report and plots

METRICS = [("val_loss", "final val loss", "{:.4f}"), ("tokens_per_s", "tokens/s", "{:,.0f}"),
           ("memory_mib", "peak memory (MiB)", "{:,.1f}")]


def analyse(runs):
    by = {a: sorted([r for r in runs if r["attention"] == a], key=lambda r: r["run"]) for a in ("full", "window")}
    if len(by["full"]) < 2 or len(by["window"]) < 2 or [r["run"] for r in by["full"]] != [r["run"] for r in by["window"]]:
        sys.exit("error: the manifest needs at least 2 runs of each attention, paired by run number")
    result = {"runs": len(by["full"]), "metrics": {}}
    for key, _, _ in METRICS:
        a = [r[key] for r in by["full"]]
        b = [r[key] for r in by["window"]]
        if any(x is None for x in a + b):
            continue
        result["metrics"][key] = dict(full=describe(a), window=describe(b), welch=welch(a, b), paired=paired(a, b),
                                      relative=(statistics.fmean(b) / statistics.fmean(a) - 1.0) if statistics.fmean(a) else None)
    result["per_run"] = [dict(run=f["run"], seed=f["seed"], first=("full" if f["position"] == 0 else "window"),
                              **{f"full_{k}": f[k] for k, _, _ in METRICS}, **{f"window_{k}": w[k] for k, _, _ in METRICS})
                         for f, w in zip(by["full"], by["window"])]
    return by, result


def p_text(p):
    return "< 1e-4" if p < 1e-4 else f"{p:.4f}"


def write_markdown(path, result, title):
    lines = ["# Full vs window: randomized experiment", "", f"{title}. {result['runs']} pairs of runs; each pair",
             "shares a seed and runs its two trainings in a random order. Intervals: 95% (t). Tests compare",
             "window - full: Welch's t-test (two samples), Cohen's d, and a paired t-test over the seeds.", "",
             "| metric | full: mean ± sd [95% CI] | window: mean ± sd [95% CI] | window vs full | Welch p | Cohen's d | paired p |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, label, fmt in METRICS:
        m = result["metrics"].get(key)
        if not m:
            lines.append(f"| {label} | not recorded | | | | | |")
            continue
        cell = lambda s: f"{fmt.format(s['mean'])} ± {fmt.format(s['sd'])} [{fmt.format(s['ci95'][0])}, {fmt.format(s['ci95'][1])}]"
        rel = f"{100 * m['relative']:+.2f}%" if m["relative"] is not None else "-"
        lines.append(f"| {label} | {cell(m['full'])} | {cell(m['window'])} | {rel} | {p_text(m['welch']['p'])} | "
                     f"{m['welch']['cohens_d']:+.2f} | {p_text(m['paired']['p'])} |")
    lines += ["", "Per run:", "", "| run | seed | first | full val loss | window val loss | full tok/s | window tok/s |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["per_run"]:
        lines.append(f"| {r['run']} | {r['seed']} | {r['first']} | {r['full_val_loss']:.4f} | {r['window_val_loss']:.4f} | "
                     f"{r['full_tokens_per_s']:,.0f} | {r['window_tokens_per_s']:,.0f} |")
    open(path, "w").write("\n".join(lines) + "\n")


def mean_band(curves):
    """Element-wise mean and standard deviation of equally long lists."""
    n = min(len(c) for c in curves)
    cols = [[c[i] for c in curves] for i in range(n)]
    return [statistics.fmean(c) for c in cols], [statistics.stdev(c) if len(c) > 1 else 0.0 for c in cols]


def plot(by, result, out_dir, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is missing: no plots (scripts/install_deps.sh plot)")
        return []
    colors = {"full": "tab:blue", "window": "tab:orange"}
    written = []

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for attention, runs in by.items():
        for ax, xs_key, ys_key, label in ((axes[0], "steps", "losses", "train loss"), (axes[1], "val_steps", "vals", "val loss")):
            mean, sd = mean_band([r[ys_key] for r in runs])
            xs = runs[0][xs_key][:len(mean)]
            ax.plot(xs, mean, color=colors[attention], label=f"{attention} (mean of {len(runs)})")
            ax.fill_between(xs, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)], color=colors[attention], alpha=0.25)
            ax.set_xlabel("step")
            ax.set_ylabel(label)
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"Loss curves, mean ± sd over runs\n{title}", fontsize=9)
    written.append(save(fig, out_dir, "curves.png"))

    keys = [k for k, _, _ in METRICS if k in result["metrics"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 4.5))
    axes = axes if len(keys) > 1 else [axes]
    for ax, key in zip(axes, keys):
        data = [[r[key] for r in by[a]] for a in ("full", "window")]
        ax.boxplot(data)
        ax.set_xticks([1, 2], ["full", "window"])  # (boxplot renamed its labels argument in matplotlib 3.9)
        for i, values in enumerate(data):
            ax.scatter([i + 1 + 0.08 * (j - len(values) / 2) / len(values) for j in range(len(values))], values,
                       color=colors[("full", "window")[i]], s=14, zorder=3)
        label = dict((k, l) for k, l, _ in METRICS)[key]
        p = p_text(result['metrics'][key]['welch']['p'])
        ax.set_title(f"{label}\nWelch p {p if p.startswith('<') else '= ' + p}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    written.append(save(fig, out_dir, "distributions.png"))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    runs_n = [r["run"] for r in by["full"]]
    width = 0.4
    for ax, key, label in ((axes[0], "val_loss", "final val loss"), (axes[1], "tokens_per_s", "tokens/s")):
        for i, attention in enumerate(("full", "window")):
            values = [r[key] for r in by[attention]]
            ax.bar([x + (i - 0.5) * width for x in runs_n], values, width, color=colors[attention], label=attention)
            ax.axhline(statistics.fmean(values), color=colors[attention], linestyle="--", linewidth=1)
        ax.set_xlabel("run (dashed: means)")
        ax.set_ylabel(label)
        ax.set_xticks(runs_n)
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
        if key == "val_loss":
            lo = min(r[key] for a in by for r in by[a])
            hi = max(r[key] for a in by for r in by[a])
            ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
    fig.suptitle(f"Per run\n{title}", fontsize=9)
    written.append(save(fig, out_dir, "per_run.png"))

    fig, ax = plt.subplots(figsize=(6, 5))
    for attention, runs in by.items():
        ax.scatter([r["tokens_per_s"] for r in runs], [r["val_loss"] for r in runs], color=colors[attention], label=attention)
    ax.set_xlabel("tokens/s")
    ax.set_ylabel("final val loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"Speed against quality, one point per run\n{title}", fontsize=8)
    written.append(save(fig, out_dir, "tradeoff.png"))
    return written


def save(fig, out_dir, name):
    import matplotlib.pyplot as plt
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- self-test

def self_test():
    """Known values of the t distribution and the tests (textbook tables; scipy agrees)."""
    failures = 0

    def check(what, got, want, tol):
        nonlocal failures
        ok = abs(got - want) <= tol
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'} {what}: {got:.6g} (expected {want:.6g})")

    check("t(10) two-sided p at 2.228", t_two_sided_p(2.228, 10), 0.05, 2e-4)
    check("t(1) two-sided p at 12.706", t_two_sided_p(12.706, 1), 0.05, 2e-4)
    check("t(30) two-sided p at 2.750", t_two_sided_p(2.750, 30), 0.01, 2e-4)
    check("t(1000) p at 1.96, near the normal's", t_two_sided_p(1.96, 1000), 0.0503, 5e-4)
    check("t(9) 97.5% quantile", t_quantile(0.975, 9), 2.262, 1e-3)
    check("I_0.3(2, 5)", betainc(2.0, 5.0, 0.3), 0.579825, 1e-6)
    a, b = [1, 2, 3, 4, 5], [3, 4, 5, 6, 7]
    w = welch(a, b)
    check("Welch t of two shifted samples", w["t"], 2.0, 1e-9)
    check("Welch df", w["df"], 8.0, 1e-9)
    check("Welch p", w["p"], 0.080516, 1e-5)
    check("Cohen's d", w["cohens_d"], 1.264911, 1e-6)
    pr = paired([1, 2, 3, 4], [1.5, 2.9, 3.2, 4.6])
    check("paired t (hand: mean 0.55, sd 0.288675, n 4)", pr["t"], 3.810512, 1e-5)
    print(f"experiment_stats self-test: {11 - failures} passed, {failures} failed")
    return failures == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", nargs="?")
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--title", default="")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return 0 if self_test() else 1
    if not args.manifest or not args.out_dir:
        ap.error("MANIFEST and OUT_DIR are needed (or --self-test)")
    runs = load(args.manifest)
    by, result = analyse(runs)
    result["title"] = args.title
    os.makedirs(args.out_dir, exist_ok=True)
    write_markdown(os.path.join(args.out_dir, "results.md"), result, args.title)
    json.dump(result, open(os.path.join(args.out_dir, "results.json"), "w"), indent=1)
    plots = plot(by, result, args.out_dir, args.title)
    for key, label, fmt in METRICS:
        m = result["metrics"].get(key)
        if m:
            print(f"{label:18s} full {fmt.format(m['full']['mean'])} ± {fmt.format(m['full']['sd'])}, "
                  f"window {fmt.format(m['window']['mean'])} ± {fmt.format(m['window']['sd'])} "
                  f"({100 * m['relative']:+.2f}%), Welch p {p_text(m['welch']['p'])}, d {m['welch']['cohens_d']:+.2f}")
    print(f"wrote {os.path.join(args.out_dir, 'results.md')}, results.json" + (f" and {len(plots)} plots" if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
