#!/usr/bin/env python3
"""Statistics and plots of the randomized attention-pattern study (scripts/experiment.sh).

    python3 scripts/experiment_stats.py MANIFEST OUT_DIR [--baselines FILE.json] [--title TEXT]
    python3 scripts/experiment_stats.py --self-test

MANIFEST is experiment.sh's runs/manifest.csv (run, arm, window, sinks, seed, order, dir: one row
per finished run; arm is full or wW, the runs of one run number share their seed). Each dir holds
the trainer's log.csv, eval.out (the --eval of the final checkpoint on the whole val split) and
positions.csv (its mean loss at each position), and dir.out the training's console output.
Metrics per run: final val loss (the log's last), eval val loss (whole split), tokens/s (median
over the steps after the first 3), peak memory (GPU memory in use, or the maximum resident set).
Per arm and metric: mean, standard deviation and the 95% interval of the mean; each window arm
against full: the difference, Welch's t-test, Cohen's d, and a paired t-test over the seeds both
arms ran. --baselines: scripts/baselines.py --json's unigram and bigram of the val split, and each
arm's margin below the bigram, flagged when its mean eval val loss is not at least 0.8 nats below
it (SPEC: only then does a comparison of patterns count).
Writes OUT_DIR/results.md, results.json and four plots: curves.png (val and train loss against
the step, mean ± sd per arm, the baselines as lines), positions.png (mean loss at each position
per arm, log x), tradeoff.png (eval val loss against tokens/s, one point per run),
distributions.png (box plots per arm and metric); the plots are skipped with a note when
matplotlib is missing. Standard library only for the statistics: the t distribution comes from
the regularized incomplete beta function below.
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
MARGIN = 0.8    # nats: an arm's mean eval val loss must be this far below the bigram to count (SPEC)


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


def eval_loss(path):
    """The "val loss X" line of a --eval run's output."""
    try:
        m = re.search(r"^val loss ([0-9.eE+-]+|nan|inf)$", open(path, errors="replace").read(), re.M)
    except OSError:
        return None
    return float(m.group(1)) if m else None


def read_positions(path):
    """positions.csv (position,loss): the mean loss at positions 0..T-1, in order."""
    with open(path) as f:
        rows = [(int(r["position"]), float(r["loss"])) for r in csv.DictReader(f)]
    if [p for p, _ in rows] != list(range(len(rows))) or not rows:
        sys.exit(f"error: {path}: expected one row per position 0..T-1")
    return [loss for _, loss in rows]


def arm_key(arm):
    """full first, then the windows from the narrowest."""
    return (0, 0) if arm == "full" else (1, int(arm.lstrip("w")) if arm.lstrip("w").isdigit() else 0, arm)


def load(manifest):
    runs = []
    with open(manifest) as f:
        for row in csv.DictReader(f):
            missing = [k for k in ("run", "arm", "seed", "dir") if k not in row]
            if missing:
                sys.exit(f"error: {manifest}: no column {missing[0]} (run,arm,window,sinks,seed,order,dir expected)")
            name = f"run {row['run']} {row['arm']}"
            log = os.path.join(row["dir"], "log.csv")
            if not os.path.isfile(log):
                sys.exit(f"error: {manifest}: {name} has no {log}")
            steps, losses, val_steps, vals, tok = read_log(log)
            if not vals:
                sys.exit(f"error: {log}: no val loss (train with -v)")
            ev = eval_loss(os.path.join(row["dir"], "eval.out"))
            if ev is None:
                sys.exit(f"error: {manifest}: {name} has no 'val loss' in {os.path.join(row['dir'], 'eval.out')}")
            positions = os.path.join(row["dir"], "positions.csv")
            if not os.path.isfile(positions):
                sys.exit(f"error: {manifest}: {name} has no {positions}")
            kept = tok[SKIP_STEPS:] or tok
            window = int(row.get("window") or (0 if row["arm"] == "full" else row["arm"].lstrip("w")))
            runs.append(dict(run=int(row["run"]), arm=row["arm"], window=window, sinks=int(row.get("sinks") or 0),
                             seed=int(row["seed"]), order=int(row.get("order") or 0), steps=steps, losses=losses,
                             val_steps=val_steps, vals=vals, val_loss=vals[-1], eval_loss=ev,
                             tokens_per_s=statistics.median(kept), memory_mib=peak_memory_mib(row["dir"] + ".out"),
                             positions=read_positions(positions)))
    return runs


# ---------------------------------------------------------------------------- the analysis

METRICS = [("val_loss", "final val loss (training log)", "{:.4f}"), ("eval_loss", "eval val loss (whole split)", "{:.4f}"),
           ("tokens_per_s", "tokens/s", "{:,.0f}"), ("memory_mib", "peak memory (MiB)", "{:,.1f}")]
LABELS = {k: label for k, label, _ in METRICS}


def arm_label(runs):
    r = runs[0]
    return "full" if r["arm"] == "full" else f"window {r['window']} + {r['sinks']} sinks"


def position_buckets(T):
    """Position ranges 0, 1, 2-3, 4-7, ... up to T-1: the per-position losses summarized on a log scale."""
    buckets, lo = [(0, 0)], 1
    while lo < T:
        hi = min(2 * lo - 1, T - 1)
        buckets.append((lo, hi))
        lo = 2 * lo
    return buckets


def analyse(runs, baselines=None):
    by = {}
    for r in runs:
        by.setdefault(r["arm"], []).append(r)
    by = {a: sorted(by[a], key=lambda r: r["run"]) for a in sorted(by, key=arm_key)}
    if "full" not in by:
        sys.exit("error: the manifest has no full arm to compare the windows with")
    short = [a for a, rs in by.items() if len(rs) < 2]
    if short:
        sys.exit(f"error: the manifest needs at least 2 runs of each arm; {short[0]} has {len(by[short[0]])}")
    if len(by) < 2:
        sys.exit("error: the manifest has no window arm to compare with full")
    result = {"arms": [dict(arm=a, label=arm_label(rs), window=rs[0]["window"], sinks=rs[0]["sinks"], runs=len(rs))
                       for a, rs in by.items()],
              "metrics": {}, "comparisons": {}}
    for key, _, _ in METRICS:
        if any(r[key] is None for rs in by.values() for r in rs):
            continue
        result["metrics"][key] = {a: describe([r[key] for r in rs]) for a, rs in by.items()}
    full = by["full"]
    for a, rs in by.items():
        if a == "full":
            continue
        common = sorted({r["run"] for r in full} & {r["run"] for r in rs})
        f_at = {r["run"]: r for r in full}
        w_at = {r["run"]: r for r in rs}
        comparison = {"paired_seeds": len(common)}
        for key in result["metrics"]:
            x, y = [r[key] for r in full], [r[key] for r in rs]
            mx = statistics.fmean(x)
            comparison[key] = dict(welch=welch(x, y),
                                   paired=paired([f_at[n][key] for n in common], [w_at[n][key] for n in common]) if len(common) >= 2 else None,
                                   relative=(statistics.fmean(y) / mx - 1.0) if mx else None)
        result["comparisons"][a] = comparison
    T = min(len(r["positions"]) for rs in by.values() for r in rs)
    result["positions"] = {a: dict(zip(("mean", "sd"), mean_band([r["positions"][:T] for r in rs]))) for a, rs in by.items()}
    result["position_buckets"] = [dict(first=lo, last=hi, **{a: statistics.fmean(result["positions"][a]["mean"][lo:hi + 1]) for a in by})
                                  for lo, hi in position_buckets(T)]
    if baselines:
        result["baselines"] = {k: baselines[k] for k in ("unigram", "bigram") if k in baselines}
        if "bigram" in baselines and "eval_loss" in result["metrics"]:
            result["bigram_margin"] = {}
            for a in by:
                margin = baselines["bigram"] - result["metrics"]["eval_loss"][a]["mean"]
                result["bigram_margin"][a] = dict(margin=margin, counts=margin >= MARGIN)
    result["per_run"] = [dict(run=r["run"], seed=r["seed"], arm=r["arm"], order=r["order"],
                              **{k: r[k] for k, _, _ in METRICS}) for rs in by.values() for r in rs]
    result["per_run"].sort(key=lambda r: (r["run"], arm_key(r["arm"])))
    return by, result


def mean_band(curves):
    """Element-wise mean and standard deviation of lists, over the length of the shortest."""
    n = min(len(c) for c in curves)
    cols = [[c[i] for c in curves] for i in range(n)]
    return [statistics.fmean(c) for c in cols], [statistics.stdev(c) if len(c) > 1 else 0.0 for c in cols]


# ---------------------------------------------------------------------------- report and plots

def p_text(p):
    return "< 1e-4" if p < 1e-4 else f"{p:.4f}"


def write_markdown(path, result, title):
    arms = [a["arm"] for a in result["arms"]]
    labels = {a["arm"]: a["label"] for a in result["arms"]}
    seeds = max(a["runs"] for a in result["arms"])
    lines = ["# Attention patterns: randomized multi-arm study", "",
             f"{title}. Arms: {', '.join(labels[a] for a in arms)}; {seeds} seeds, each shared by the runs of every arm",
             "(paired), all runs trained in one random order. Intervals: 95% (t). Each window arm is compared with full",
             "(window - full): Welch's t-test, Cohen's d, and a paired t-test over the seeds both ran.", ""]
    margins = result.get("bigram_margin")
    if margins:
        failing = [a for a in arms if not margins[a]["counts"]]
        if failing:
            lines += [f"**WARNING: {', '.join(labels[a] for a in failing)}: mean eval val loss not {MARGIN} nats below the "
                      "bigram. Comparisons of patterns involving "
                      f"{'it' if len(failing) == 1 else 'them'} do not count (SPEC).**", ""]
    if "baselines" in result:
        b = result["baselines"]
        lines += ["## Baselines", "",
                  f"On the val split (scripts/baselines.py, add-one counts from the train split): unigram "
                  f"{b.get('unigram', float('nan')):.4f}, bigram {b.get('bigram', float('nan')):.4f} nats per token. "
                  f"A comparison counts only for arms at least {MARGIN} nats below the bigram.", ""]
        if margins:
            lines += ["| arm | eval val loss (mean) | below the bigram | counts |", "| --- | --- | --- | --- |"]
            for a in arms:
                m = margins[a]
                lines.append(f"| {labels[a]} | {result['metrics']['eval_loss'][a]['mean']:.4f} | {m['margin']:+.4f} | "
                             + ("yes" if m["counts"] else f"**NO: less than {MARGIN} nats below the bigram**") + " |")
            lines.append("")
    lines += ["## Per arm: mean ± sd [95% CI]", "", "| metric | " + " | ".join(labels[a] for a in arms) + " |",
              "| --- |" + " --- |" * len(arms)]
    for key, label, fmt in METRICS:
        m = result["metrics"].get(key)
        if not m:
            lines.append(f"| {label} |" + " not recorded |" * len(arms))
            continue
        cell = lambda s: f"{fmt.format(s['mean'])} ± {fmt.format(s['sd'])} [{fmt.format(s['ci95'][0])}, {fmt.format(s['ci95'][1])}]"
        lines.append(f"| {label} | " + " | ".join(cell(m[a]) for a in arms) + " |")
    lines += ["", "## Each window against full", "",
              "| arm | metric | window - full [95% CI] | relative | Welch t | Welch p | Cohen's d | paired t | paired p (seeds) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for a, comparison in result["comparisons"].items():
        for key, label, fmt in METRICS:
            c = comparison.get(key)
            if not c:
                continue
            w, pr = c["welch"], c["paired"]
            diff = f"{fmt.format(w['diff'])} [{fmt.format(w['ci95'][0])}, {fmt.format(w['ci95'][1])}]"
            rel = f"{100 * c['relative']:+.2f}%" if c["relative"] is not None else "-"
            paired_cells = f"{pr['t']:+.2f} | {p_text(pr['p'])} ({comparison['paired_seeds']})" if pr else "- | -"
            lines.append(f"| {labels[a]} | {label} | {diff} | {rel} | {w['t']:+.2f} | {p_text(w['p'])} | {w['cohens_d']:+.2f} | {paired_cells} |")
    lines += ["", "## Mean loss by position (eval, whole val split; mean over seeds)", "",
              "| positions | " + " | ".join(labels[a] for a in arms) + " |", "| --- |" + " --- |" * len(arms)]
    for bucket in result["position_buckets"]:
        span = str(bucket["first"]) if bucket["first"] == bucket["last"] else f"{bucket['first']}-{bucket['last']}"
        lines.append(f"| {span} | " + " | ".join(f"{bucket[a]:.4f}" for a in arms) + " |")
    lines += ["", "## Per run", "", "| run | seed | arm | order | final val loss | eval val loss | tok/s | peak memory (MiB) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["per_run"]:
        memory = f"{r['memory_mib']:,.1f}" if r["memory_mib"] is not None else "-"
        lines.append(f"| {r['run']} | {r['seed']} | {r['arm']} | {r['order']} | {r['val_loss']:.4f} | {r['eval_loss']:.4f} | "
                     f"{r['tokens_per_s']:,.0f} | {memory} |")
    open(path, "w").write("\n".join(lines) + "\n")


def plot(by, result, out_dir, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is missing: no plots (scripts/install_deps.sh plot)")
        return []
    palette = plt.get_cmap("tab10").colors
    colors = {a: palette[i % len(palette)] for i, a in enumerate(by)}
    labels = {a["arm"]: a["label"] for a in result["arms"]}
    baselines = result.get("baselines", {})
    written = []

    def baseline_lines(ax):
        for name, style in (("bigram", "--"), ("unigram", ":")):
            if name in baselines:
                ax.axhline(baselines[name], color="gray", linestyle=style, linewidth=1, label=f"{name} {baselines[name]:.3f}")

    def band(ax, xs, mean, sd, color, label):
        ax.plot(xs, mean, color=color, label=label)
        ax.fill_between(xs, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)], color=color, alpha=0.2)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for a, runs in by.items():
        for ax, xs_key, ys_key in ((axes[0], "val_steps", "vals"), (axes[1], "steps", "losses")):
            mean, sd = mean_band([r[ys_key] for r in runs])
            band(ax, runs[0][xs_key][:len(mean)], mean, sd, colors[a], f"{labels[a]} ({len(runs)} seeds)")
    for ax, label in ((axes[0], "val loss"), (axes[1], "train loss")):
        baseline_lines(ax)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Loss curves, mean ± sd over seeds\n{title}", fontsize=9)
    written.append(save(fig, out_dir, "curves.png"))

    # Each run's per-position loss averaged over log-spaced bins of positions (8 a decade) before the
    # mean and sd over seeds: a val split of a few dozen rows leaves one position's loss mostly noise
    # of the text that happens to sit there.
    T = min(len(r["positions"]) for rs in by.values() for r in rs)
    edges = sorted({0} | {min(T, round(10 ** (k / 8.0))) for k in range(0, int(8 * math.log10(T)) + 2)})
    bins = [(lo, hi) for lo, hi in zip(edges, edges[1:]) if hi > lo]
    centers = [math.sqrt((lo + 1) * hi) for lo, hi in bins]  # positions + 1, geometric middle of the bin
    fig, ax = plt.subplots(figsize=(8, 5))
    for a in by:
        binned = [[statistics.fmean(r["positions"][lo:hi]) for lo, hi in bins] for r in by[a]]
        mean, sd = mean_band(binned)
        band(ax, centers, mean, sd, colors[a], labels[a])
        if by[a][0]["window"]:
            ax.axvline(by[a][0]["window"] + 1, color=colors[a], linestyle=":", linewidth=1)
    baseline_lines(ax)
    ax.set_xscale("log")
    ax.set_xlabel("position + 1 (log; mean over bins of 8 a decade; dotted: each window's width)")
    ax.set_ylabel("mean eval loss at the position")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"Loss by position, whole val split, mean ± sd over seeds\n{title}", fontsize=8)
    written.append(save(fig, out_dir, "positions.png"))

    fig, ax = plt.subplots(figsize=(7, 5))
    for a, runs in by.items():
        xs, ys = [r["tokens_per_s"] for r in runs], [r["eval_loss"] for r in runs]
        ax.scatter(xs, ys, color=colors[a], label=labels[a], s=18)
        ax.scatter([statistics.fmean(xs)], [statistics.fmean(ys)], color=colors[a], marker="X", s=120, edgecolors="black")
    ax.set_xlabel("tokens/s (median of a run's steps)")
    ax.set_ylabel("final checkpoint's val loss (whole split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Speed against quality, one point per run (X: arm means)\n{title}", fontsize=8)
    written.append(save(fig, out_dir, "tradeoff.png"))

    keys = [k for k, _, _ in METRICS if k in result["metrics"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(max(4.5, 1.3 * len(by)) * len(keys) / 1.2, 4.8))
    axes = axes if len(keys) > 1 else [axes]
    for ax, key in zip(axes, keys):
        data = [[r[key] for r in runs] for runs in by.values()]
        ax.boxplot(data)
        ticks = []
        for i, a in enumerate(by):
            c = result["comparisons"].get(a, {}).get(key)
            ticks.append(a if c is None else f"{a}\np {p_text(c['welch']['p'])}")
            n = len(data[i])
            ax.scatter([i + 1 + 0.15 * (j - (n - 1) / 2) / max(n, 1) for j in range(n)], data[i], color=colors[a], s=12, zorder=3)
        ax.set_xticks(range(1, len(by) + 1), ticks, fontsize=8)  # (boxplot renamed its labels argument in matplotlib 3.9)
        ax.set_title(f"{LABELS[key]}\n(p: Welch, against full)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    written.append(save(fig, out_dir, "distributions.png"))
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
    """Known values of the t distribution and the tests (textbook tables; scipy agrees), and the
    analysis of a made-up three-arm study."""
    failures = checks = 0

    def check(what, got, want, tol):
        nonlocal failures, checks
        ok = abs(got - want) <= tol
        failures += not ok
        checks += 1
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

    # a made-up study: full and w16 ran seeds 1..4, w64 only 1..3; w16 = full + 0.5 + seed noise
    def run(n, arm, loss):
        return dict(run=n, arm=arm, window=0 if arm == "full" else int(arm[1:]), sinks=0 if arm == "full" else 4,
                    seed=100 + n, order=0, steps=[1, 2], losses=[loss + 1, loss], val_steps=[2], vals=[loss],
                    val_loss=loss, eval_loss=loss, tokens_per_s=1000.0 * n, memory_mib=None, positions=[loss + 1, loss, loss - 1])
    losses = {1: 2.0, 2: 2.2, 3: 2.1, 4: 2.4}
    runs = ([run(n, "full", x) for n, x in losses.items()] + [run(n, "w16", x + 0.5 + 0.01 * n) for n, x in losses.items()]
            + [run(n, "w64", x + 0.1) for n, x in losses.items() if n < 4])
    by, result = analyse(runs, {"unigram": 4.0, "bigram": 3.0})
    check("arms in order full, w16, w64", float([x["arm"] for x in result["arms"]] == ["full", "w16", "w64"]), 1.0, 0)
    check("w16 - full, paired over 4 seeds", result["comparisons"]["w16"]["eval_loss"]["paired"]["mean_diff"], 0.525, 1e-9)
    check("w64 paired over the 3 seeds both arms ran", result["comparisons"]["w64"]["paired_seeds"], 3, 0)
    check("w16 margin below the bigram (3 - 2.7)", result["bigram_margin"]["w16"]["margin"], 0.3, 1e-9)
    check("w16 flagged (not 0.8 below the bigram), full not", float(not result["bigram_margin"]["w16"]["counts"]
                                                                     and result["bigram_margin"]["full"]["counts"]), 1.0, 0)
    check("memory not recorded: left out", float("memory_mib" not in result["metrics"]), 1.0, 0)
    check("mean loss at position 2 of full", result["positions"]["full"]["mean"][2], 1.175, 1e-9)
    print(f"experiment_stats self-test: {checks - failures} passed, {failures} failed")
    return failures == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", nargs="?")
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--baselines", help="scripts/baselines.py --json's output for the val split")
    ap.add_argument("--title", default="")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return 0 if self_test() else 1
    if not args.manifest or not args.out_dir:
        ap.error("MANIFEST and OUT_DIR are needed (or --self-test)")
    baselines = None
    if args.baselines:
        try:
            baselines = json.load(open(args.baselines))
        except (OSError, ValueError) as e:
            sys.exit(f"error: --baselines '{args.baselines}': {e}")
    runs = load(args.manifest)
    by, result = analyse(runs, baselines)
    result["title"] = args.title
    os.makedirs(args.out_dir, exist_ok=True)
    write_markdown(os.path.join(args.out_dir, "results.md"), result, args.title)
    json.dump(result, open(os.path.join(args.out_dir, "results.json"), "w"), indent=1)
    plots = plot(by, result, args.out_dir, args.title)
    labels = {a["arm"]: a["label"] for a in result["arms"]}
    for a in by:
        line = ", ".join(f"{label.split(' (')[0]} {fmt.format(result['metrics'][key][a]['mean'])}"
                         for key, label, fmt in METRICS if key in result["metrics"])
        margin = result.get("bigram_margin", {}).get(a)
        if margin:
            line += f"; {margin['margin']:.3f} below the bigram" + ("" if margin["counts"] else f" (NOT {MARGIN}: does not count)")
        print(f"{labels[a]:24s} {line}")
    for a, c in result["comparisons"].items():
        if "eval_loss" in c:
            e = c["eval_loss"]
            print(f"{labels[a]} - full, eval val loss: {e['welch']['diff']:+.4f} ({100 * e['relative']:+.2f}%), Welch p "
                  f"{p_text(e['welch']['p'])}, d {e['welch']['cohens_d']:+.2f}"
                  + (f", paired p {p_text(e['paired']['p'])}" if e["paired"] else ""))
    print(f"wrote {os.path.join(args.out_dir, 'results.md')}, results.json" + (f" and {len(plots)} plots" if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
