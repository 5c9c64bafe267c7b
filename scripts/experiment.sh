#!/usr/bin/env bash
# The randomized full-vs-window experiment (seeds/001): RUNS pairs of training runs, dense causal
# attention against a window W with S sinks, each pair with a fresh random seed (the same for both
# of its runs) and its two runs in a random order, then statistics and plots by
# scripts/experiment_stats.py: mean, standard deviation and 95% interval per metric, Welch's t-test
# and Cohen's d for the difference, and a paired t-test over the seeds.
#
#   bash scripts/experiment.sh                 # GPU trainers when there is a GPU, else the CPU trainer
#   RUNS=10 STEPS=300 MODEL=d6 T=1024 WINDOW=128 bash scripts/experiment.sh
#
# Settings (environment): RUNS (10), STEPS, MODEL, B, T, WINDOW, SINKS, LR, VAL_EVERY, SEED (the
# master seed; drawn at random and printed when unset), DEVICE (gpu or cpu; default: gpu when
# nvidia-smi lists one), TRAIN and VAL (token shards; default: Jane Austen, prepared if missing),
# OUT (out/experiment), PYTHON (one with matplotlib; default /usr/bin/python3). Results:
# OUT/results.md, OUT/results.json, OUT/*.png; each run's log and output in OUT/runs/ (checkpoints
# are deleted after each run). The metrics: final val loss, tokens/s (median over the steps after
# the first 3), peak memory (GPU: the trainer's "GPU memory in use"; CPU: maximum resident set).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DEVICE:-}" ]; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then DEVICE=gpu; else DEVICE=cpu; fi
fi
case $DEVICE in
    gpu) RUNS=${RUNS:-10} STEPS=${STEPS:-300} MODEL=${MODEL:-d12} B=${B:-16} T=${T:-1024} WINDOW=${WINDOW:-256} ;;
    cpu) RUNS=${RUNS:-10} STEPS=${STEPS:-60} MODEL=${MODEL:-l2c128h2} B=${B:-8} T=${T:-256} WINDOW=${WINDOW:-64} ;;
    *) echo "error: experiment.sh: DEVICE='$DEVICE': expected gpu or cpu" >&2; exit 1 ;;
esac
SINKS=${SINKS:-4} LR=${LR:-1e-3} OUT=${OUT:-out/experiment}
VAL_EVERY=${VAL_EVERY:-$(( STEPS / 10 > 0 ? STEPS / 10 : 1 ))}
for v in RUNS STEPS B T VAL_EVERY; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "error: experiment.sh: $v='${!v}': expected a positive integer" >&2; exit 1; }
done
[[ $WINDOW =~ ^[1-9][0-9]*$ ]] || { echo "error: experiment.sh: WINDOW='$WINDOW': expected a window >= 1" >&2; exit 1; }
[ "$RUNS" -ge 2 ] || { echo "error: experiment.sh: RUNS=$RUNS: statistics need at least 2 runs" >&2; exit 1; }
SEED=${SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
[[ $SEED =~ ^[0-9]+$ ]] || { echo "error: experiment.sh: SEED='$SEED': expected a non-negative integer" >&2; exit 1; }

if [ -z "${TRAIN:-}" ]; then
    [ -f data/austen/austen_train.bin ] || python3 data/prepare.py
    TRAIN=data/austen/austen_train.bin VAL=data/austen/austen_val.bin
fi
VAL=${VAL:-$TRAIN}
if [ $DEVICE = gpu ]; then
    make -s train_gpt_full train_gpt_window
    full_cmd=(./train_gpt_full) window_cmd=(./train_gpt_window --window "$WINDOW" --sinks "$SINKS")
else
    make -s train_gpt_cpu
    full_cmd=(./train_gpt_cpu) window_cmd=(./train_gpt_cpu --window "$WINDOW" --sinks "$SINKS")
fi
timer=()
if [ $DEVICE = cpu ] && [ -x /usr/bin/time ]; then timer=(/usr/bin/time -f 'max resident set: %M KiB'); fi

rm -rf "$OUT/runs" && mkdir -p "$OUT/runs"
manifest=$OUT/runs/manifest.csv
echo "run,attention,seed,position,dir" > "$manifest"
RANDOM=$SEED  # every draw below follows from the master seed: SEED=... repeats the experiment
echo "experiment: $RUNS pairs on the $DEVICE, master seed $SEED; $MODEL, B=$B T=$T, $STEPS steps, window $WINDOW + $SINKS sinks"
for ((run = 1; run <= RUNS; run++)); do
    seed=$(( RANDOM * 32768 + RANDOM + 1 ))
    if (( RANDOM % 2 )); then order=(window full); else order=(full window); fi
    for position in 0 1; do
        attention=${order[$position]}
        dir=$OUT/runs/${attention}_$run
        if [ "$attention" = full ]; then cmd=("${full_cmd[@]}"); else cmd=("${window_cmd[@]}"); fi
        cmd+=(-e "$MODEL" -b "$B" -t "$T" -x "$STEPS" -l "$LR" -u $(( STEPS / 10 )) -v "$VAL_EVERY" -m 8
              -r "$seed" -i "$TRAIN" -j "$VAL" -o "$dir")
        printf 'run %2d/%d, %-6s (seed %d): ' "$run" "$RUNS" "$attention" "$seed"
        if ! "${timer[@]}" "${cmd[@]}" > "$dir.out" 2>&1; then
            echo "failed; the last lines of $dir.out:"; tail -n 5 "$dir.out"; exit 1
        fi
        echo "$(grep -E '^val loss' "$dir.out" | tail -n 1)"
        rm -f "$dir"/model_*.bin "$dir"/state_*.bin  # the logs are what the statistics read
        echo "$run,$attention,$seed,$position,$dir" >> "$manifest"
    done
done
"${PYTHON:-/usr/bin/python3}" scripts/experiment_stats.py "$manifest" "$OUT" --title "$DEVICE, $MODEL, B=$B T=$T, $STEPS steps, window $WINDOW + $SINKS sinks, master seed $SEED"
