#!/usr/bin/env bash
# Learning-rate sweep: trains one short run per line of an arms file and tabulates each run's final
# val loss, training time and tokens/s, so the trainers' default learning rate can be chosen from
# runs (README, "Learning rate"). One line per run, fields separated by spaces:
#
#   GROUP PROGRAM MODEL B T WINDOW SINKS LR STEPS WARMUP [FLAG ...]
#
# e.g. `d12_T1024 train_gpt_window d12 16 1024 256 4 3e-4 1500 100` (WINDOW 0 = full attention,
# PROGRAM one of train_gpt_cpu, train_gpt_window, train_gpt_full); flags after WARMUP go to the
# trainer as they are (e.g. --pos rope). Lines starting with # are skipped.
#
#   bash scripts/lr_sweep.sh ARMS_FILE OUT_DIR
#
# Writes OUT_DIR/sweep.csv (one row per run, appended as each ends, so an interrupted sweep keeps
# what it finished and a rerun skips those rows) and OUT_DIR/sweep.png (scripts/plot_lr_sweep.py:
# val loss against learning rate, one line per group). TRAIN and VAL name the token shards (default
# Jane Austen); VAL_BATCHES (default 4) sets -m.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: lr_sweep.sh ARMS_FILE OUT_DIR" >&2; exit 1; }
arms=$1 out=$2
[ -f "$arms" ] || { echo "error: lr_sweep.sh: arms file '$arms' not found" >&2; exit 1; }
TRAIN=${TRAIN:-data/austen/austen_train.bin} VAL=${VAL:-data/austen/austen_val.bin} VAL_BATCHES=${VAL_BATCHES:-4}
# the sweeps in bench/lr_sweep/ ran on Jane Austen's text, no longer the default corpus
[ -f "$TRAIN" ] || [ "$TRAIN" != data/austen/austen_train.bin ] || python3 data/prepare.py --corpus austen > /dev/null
mkdir -p "$out/runs"
csv=$out/sweep.csv
[ -f "$csv" ] || echo "group,program,model,B,T,window,sinks,lr,steps,warmup,val_loss,train_seconds,tokens_per_s" > "$csv"
while read -r group program model B T window sinks lr steps warmup rest; do
    [[ -z "${group:-}" || $group == \#* ]] && continue
    [ -z "${warmup:-}" ] && { echo "error: lr_sweep.sh: '$arms': a line has fewer than 10 fields (group $group)" >&2; exit 1; }
    key="$group,$program,$model,$B,$T,$window,$sinks,$lr,$steps,$warmup,"
    if grep -qF "$key" "$csv"; then echo "$group $model lr $lr: done before, skipped"; continue; fi
    dir=$out/runs/${group}_lr${lr}
    pattern=()
    [ "$window" != 0 ] && pattern=(--window "$window" --sinks "$sinks")
    if ! ./"$program" -e "$model" -b "$B" -t "$T" -x "$steps" -l "$lr" -u "$warmup" -v $(( steps / 5 )) -m "$VAL_BATCHES" \
            -i "$TRAIN" -j "$VAL" "${pattern[@]}" ${rest:-} -o "$dir" > "$dir.out" 2>&1; then
        echo "error: lr_sweep.sh: $program failed; the last lines of $dir.out:" >&2; tail -n 5 "$dir.out" >&2; exit 1
    fi
    rm -f "$dir"/model_*.bin "$dir"/state_*.bin
    # final val loss, the summed step times, and the median tokens/s of the steps after the first 3
    tokens_per_s=$(awk -F, 'NR > 4 { print $6 }' "$dir/log.csv" | sort -g | awk '{ t[NR] = $1 } END { printf "%.0f", NR ? t[int((NR + 1) / 2)] : 0 }')
    summary=$(awk -F, -v tps="$tokens_per_s" 'NR > 1 { if ($3 != "") v = $3; s += $5 / 1000 } END { printf "%s,%.1f,%s", v, s, tps }' "$dir/log.csv")
    echo "$key$summary" >> "$csv"
    echo "$group $model lr $lr: val loss, seconds, tokens/s = $summary"
done < "$arms"
"${PYTHON:-/usr/bin/python3}" scripts/plot_lr_sweep.py "$csv" "$out/sweep.png"
