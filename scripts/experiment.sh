#!/usr/bin/env bash
# The randomized attention-pattern study (seeds/001), many arms: dense causal attention ("full")
# against windows of W keys with S sinks. RUNS seeds; every arm trains once per seed with that seed
# (paired: the arms of one seed share its initialization and read the same batches), and the
# whole list of RUNS x arms trainings runs in one random order. The master seed SEED draws the seeds
# and the order: the same SEED repeats both. Every arm has the same data, steps and schedule.
# After training, each run's final checkpoint is evaluated on the whole val split (--eval, with the
# mean loss at each position), then its checkpoints are deleted. Statistics and plots come last,
# from scripts/experiment_stats.py: per arm and metric the mean, standard deviation and 95%
# interval; each window arm against full: Welch's t-test, Cohen's d, and a paired t-test over the
# seeds; the unigram and bigram baselines (scripts/baselines.py) and each arm's margin below the
# bigram, flagged when it is under 0.8 nats (SPEC: only then does a comparison of patterns count).
#
#   bash scripts/experiment.sh                   # GPU trainers when there is a GPU, else the CPU trainer
#   SEED=4242 RUNS=10 STEPS=1000 ARMS="full 64 256 1024" bash scripts/experiment.sh
#   SEED=4242 ... bash scripts/experiment.sh     # again, same settings: continues where it stopped
#
# Resume: a run counts as finished once it has trained, been evaluated and been written to
# OUT/runs/manifest.csv; a re-run with the same settings skips the finished runs and trains the rest
# (a run cut off half-way starts again from step 0). OUT/runs/settings.txt holds the settings; a
# re-run with other settings is refused (use another OUT). SEED may be left out on a re-run: the
# study's own is taken.
#
# Settings (environment)          GPU default                 CPU default
#   ARMS     the arms: full, W..   "full 64 256 1024"          "full 32"
#   SINKS    sinks of every window 4                           4
#   RUNS     seeds per arm (>= 2)  10                          10
#   STEPS    training steps        500                         600
#   MODEL    -e of a new model     d6                          l2c128h2
#   B, T     batch, sequence       8, 4096                     8, 128
#   VAL_EVERY, VAL_BATCHES (-v, -m: val loss during training)  STEPS/10, 4
#   EVAL_B   batch of the final whole-split evaluation         B
#   POS      position encoding, learned or rope (--pos)        rope                        rope
#            (rotary: with learned positions a dense d6 at T=4096 stays on the bigram plateau for
#            800 steps at any learning rate tried, bench/lr_sweep/, so that only windows would learn)
#   LR, WARMUP   -l, -u; left out when unset: the trainers pick both from the model's size
#   SEED     master seed; drawn from /dev/urandom and printed when unset
#   DEVICE   gpu (./train_gpt_full; ./train_gpt_window --window W --sinks S) or cpu (./train_gpt_cpu
#            for every arm); default gpu when nvidia-smi lists one
#   TRAIN, VAL   token shards; default Jane Austen (prepared when missing); VAL defaults to TRAIN
#   OUT      out/experiment;   PYTHON: one with matplotlib for the plots (default /usr/bin/python3)
#   PLAN=1   print the seeds and the order of the runs, and stop: nothing trained, nothing written
#
# Outputs: OUT/results.md, OUT/results.json, OUT/curves.png, positions.png, tradeoff.png,
# distributions.png; OUT/runs/: manifest.csv (run,arm,window,sinks,seed,order,dir: one row per
# finished run), settings.txt, baselines.json, and per run ARM_RUN/ (log.csv, positions.csv,
# eval.out) with ARM_RUN.out, the training's console output. Metrics: final val loss (the
# training log's last), eval val loss (whole val split), tokens/s (median over the steps after the
# first 3), peak memory (GPU: the trainer's "GPU memory in use"; CPU: maximum resident set).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "error: experiment.sh: $*" >&2; exit 1; }

if [ -z "${DEVICE:-}" ]; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then DEVICE=gpu; else DEVICE=cpu; fi
fi
case $DEVICE in
    gpu) ARMS=${ARMS:-full 64 256 1024} STEPS=${STEPS:-500} MODEL=${MODEL:-d6} B=${B:-8} T=${T:-4096} ;;
    cpu) ARMS=${ARMS:-full 32} STEPS=${STEPS:-600} MODEL=${MODEL:-l2c128h2} B=${B:-8} T=${T:-128} ;;
    *) die "DEVICE='$DEVICE': expected gpu or cpu" ;;
esac
RUNS=${RUNS:-10} SINKS=${SINKS:-4} VAL_BATCHES=${VAL_BATCHES:-4} OUT=${OUT:-out/experiment}
LR=${LR:-} WARMUP=${WARMUP:-} EVAL_B=${EVAL_B:-$B} POS=${POS:-rope}
[ "$POS" = learned ] || [ "$POS" = rope ] || die "POS='$POS': expected learned or rope"
VAL_EVERY=${VAL_EVERY:-$(( STEPS / 10 > 0 ? STEPS / 10 : 1 ))}
for v in RUNS STEPS B T VAL_EVERY VAL_BATCHES EVAL_B; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v='${!v}': expected a positive integer"
done
[ "$RUNS" -ge 2 ] || die "RUNS=$RUNS: statistics need at least 2 seeds per arm"
[[ $SINKS =~ ^[0-9]+$ ]] || die "SINKS='$SINKS': expected an integer >= 0"
[ -z "$LR" ] || [[ $LR =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] || die "LR='$LR': expected a positive number"
[ -z "$WARMUP" ] || [[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP='$WARMUP': expected an integer >= 0"
read -ra arms <<< "$ARMS"
windows=()  # one per arm: 0 = full
for arm in "${arms[@]}"; do
    if [ "$arm" = full ]; then w=0
    elif [[ $arm =~ ^[1-9][0-9]*$ ]]; then
        w=$arm
        [ "$w" -lt "$T" ] || die "ARMS: window $w is not below T=$T: it would be dense attention"
    else die "ARMS='$ARMS': '$arm' is neither full nor a window >= 1"
    fi
    for seen in "${windows[@]}"; do [ "$seen" != "$w" ] || die "ARMS='$ARMS': '$arm' appears twice"; done
    windows+=("$w")
done
[[ " ${arms[*]} " == *" full "* ]] || die "ARMS='$ARMS': needs full, the arm the windows are compared with"
[ "${#arms[@]}" -ge 2 ] || die "ARMS='$ARMS': needs full and at least one window"

runs_dir=$OUT/runs
manifest=$runs_dir/manifest.csv
settings_file=$runs_dir/settings.txt
if [ -z "${SEED:-}" ] && [ -f "$settings_file" ]; then
    SEED=$(sed -n 's/^SEED=//p' "$settings_file")  # continuing a study: its own master seed
fi
SEED=${SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED='$SEED': expected a non-negative integer"

# every draw below follows from the master seed: one seed per run number, then a random order of
# all (run, arm) pairs (Fisher-Yates)
RANDOM=$SEED
seeds=()
for ((run = 1; run <= RUNS; run++)); do seeds+=($(( RANDOM * 32768 + RANDOM + 1 ))); done
jobs=()
for ((run = 1; run <= RUNS; run++)); do
    for ((a = 0; a < ${#arms[@]}; a++)); do jobs+=("$run $a"); done
done
for ((i = ${#jobs[@]} - 1; i > 0; i--)); do
    j=$(( (RANDOM * 32768 + RANDOM) % (i + 1) ))
    tmp=${jobs[i]} jobs[i]=${jobs[j]} jobs[j]=$tmp
done

arm_label() { if [ "$1" = 0 ]; then echo full; else echo "w$1"; fi; }
described=$(for w in "${windows[@]}"; do if [ "$w" = 0 ]; then printf 'full, '; else printf '%s + %s sinks, ' "$w" "$SINKS"; fi; done)
schedule="lr ${LR:-default}, warmup ${WARMUP:-default}"
echo "experiment: ${#arms[@]} arms x $RUNS seeds = ${#jobs[@]} runs on the $DEVICE, master seed $SEED;" \
     "$MODEL ($POS positions), B=$B T=$T, $STEPS steps, $schedule; arms: ${described%, }"
if [ "${PLAN:-0}" = 1 ]; then  # the plan only: nothing trained, nothing written
    order=0
    for job in "${jobs[@]}"; do
        read -r run a <<< "$job"
        order=$((order + 1))
        printf 'run %3d/%d: seed %2d/%d, %-6s (seed %d)\n' "$order" "${#jobs[@]}" "$run" "$RUNS" "$(arm_label "${windows[a]}")" "${seeds[run - 1]}"
    done
    exit 0
fi

if [ -z "${TRAIN:-}" ]; then
    [ -f data/austen/austen_train.bin ] || python3 data/prepare.py --corpus austen
    TRAIN=data/austen/austen_train.bin VAL=data/austen/austen_val.bin
fi
VAL=${VAL:-$TRAIN}

# the settings that make a study: a re-run continues it only when all of them are the same
settings=$(for v in DEVICE ARMS SINKS RUNS SEED MODEL POS B T STEPS LR WARMUP VAL_EVERY VAL_BATCHES EVAL_B TRAIN VAL; do
    echo "$v=${!v}"; done)
mkdir -p "$runs_dir"
header="run,arm,window,sinks,seed,order,dir"
if [ -f "$manifest" ] && [ "$(head -n 1 "$manifest")" != "$header" ]; then
    die "$manifest is not this script's (its header is not $header): set another OUT"
fi
if [ -f "$settings_file" ]; then
    if [ "$(cat "$settings_file")" != "$settings" ]; then
        differ=$(diff <(cat "$settings_file") <(echo "$settings") | sed -n 's/^< //p' | head -n 1 || true)
        now=$(echo "$settings" | grep "^${differ%%=*}=" || true)
        [ -z "$differ" ] || differ="${differ%%=*}='${differ#*=}'"
        [ -z "$now" ] || now="${now%%=*}='${now#*=}'"
        die "$runs_dir holds a study with ${differ:-other settings}, not ${now:-these}: re-run it with its settings, or set another OUT"
    fi
else
    echo "$settings" > "$settings_file"
fi
[ -f "$manifest" ] || echo "$header" > "$manifest"

if [ "$DEVICE" = gpu ]; then
    make -s train_gpt_full train_gpt_window
else
    make -s train_gpt_cpu
fi
timer=()
if [ "$DEVICE" = cpu ] && [ -x /usr/bin/time ]; then timer=(/usr/bin/time -f 'max resident set: %M KiB'); fi
PYTHON=${PYTHON:-/usr/bin/python3}
if [ ! -s "$runs_dir/baselines.json" ]; then  # once per study: the same TRAIN and VAL throughout
    python3 scripts/baselines.py "$TRAIN" "$VAL" --json > "$runs_dir/baselines.json.tmp"
    mv "$runs_dir/baselines.json.tmp" "$runs_dir/baselines.json"
fi

total=${#jobs[@]} order=0 trained=0
for job in "${jobs[@]}"; do
    read -r run a <<< "$job"
    order=$((order + 1))
    w=${windows[a]} seed=${seeds[run - 1]}
    arm=$(arm_label "$w")
    dir=$runs_dir/${arm}_$run
    printf 'run %3d/%d: seed %2d/%d, %-6s (seed %d): ' "$order" "$total" "$run" "$RUNS" "$arm" "$seed"
    if grep -q "^$run,$arm," "$manifest"; then echo "done already (in $manifest)"; continue; fi
    rm -rf "$dir" "$dir.out"  # a run cut off before it was recorded starts again
    if [ "$DEVICE" = gpu ]; then
        if [ "$w" = 0 ]; then program=(./train_gpt_full); else program=(./train_gpt_window); fi
    else
        program=(./train_gpt_cpu)
    fi
    pattern=()
    [ "$w" = 0 ] || pattern=(--window "$w" --sinks "$SINKS")
    cmd=("${program[@]}" "${pattern[@]}" --pos "$POS" -e "$MODEL" -b "$B" -t "$T" -x "$STEPS" -v "$VAL_EVERY" -m "$VAL_BATCHES"
         -r "$seed" -i "$TRAIN" -j "$VAL" -o "$dir")
    [ -z "$LR" ] || cmd+=(-l "$LR")
    [ -z "$WARMUP" ] || cmd+=(-u "$WARMUP")
    if ! "${timer[@]}" "${cmd[@]}" > "$dir.out" 2>&1; then
        echo "failed; the last lines of $dir.out:"; tail -n 5 "$dir.out"; exit 1
    fi
    # the final checkpoint on the whole val split, read once; it carries its attention pattern
    checkpoint=$(printf '%s/model_%08d.bin' "$dir" "$STEPS")
    if ! "${program[@]}" --eval -e "$checkpoint" -j "$VAL" -b "$EVAL_B" -t "$T" --eval-positions "$dir/positions.csv" \
            > "$dir/eval.out" 2>&1; then
        echo "evaluation failed; the last lines of $dir/eval.out:"; tail -n 5 "$dir/eval.out"; exit 1
    fi
    rm -f "$dir"/model_*.bin "$dir"/state_*.bin  # the logs are what the statistics read
    echo "$(grep -E '^val loss' "$dir.out" | tail -n 1 | cut -d' ' -f3) (training), $(grep -E '^val loss' "$dir/eval.out" | cut -d' ' -f3) (whole val split)"
    echo "$run,$arm,$w,$([ "$w" = 0 ] && echo 0 || echo "$SINKS"),$seed,$order,$dir" >> "$manifest"
    trained=$((trained + 1))
done
echo "experiment: $trained runs trained now, $((total - trained)) done before"
"$PYTHON" scripts/experiment_stats.py "$manifest" "$OUT" --baselines "$runs_dir/baselines.json" \
    --title "$DEVICE, $MODEL ($POS positions), B=$B T=$T, $STEPS steps, $schedule, sinks $SINKS, master seed $SEED"
