#!/usr/bin/env bash
# GPT-2 d12 training throughput on 1 GPU and on N GPUs of one machine (data parallel through NCCL,
# scripts/multi_gpu.sh), the same per-GPU batch: the scaling efficiency is N-GPU tokens/s over
# N x the one-GPU tokens/s. Writes bench/multi_gpu.md.
#
#   bash scripts/bench_multi_gpu.sh            # on a machine with 2 or more GPUs
#
# Settings (environment): GPUS (every GPU nvidia-smi lists), T (1024), B (32, per GPU), STEPS (12),
# SKIP (3 steps left out of the medians), WINDOW (256), SINKS (4), MODEL (d12), VOCAB (50257),
# MD (bench/multi_gpu.md), LOGS (build/bench_multi_gpu).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
GPUS=${GPUS:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')}
T=${T:-1024}; B=${B:-32}; STEPS=${STEPS:-12}; SKIP=${SKIP:-3}; WINDOW=${WINDOW:-256}; SINKS=${SINKS:-4}
MODEL=${MODEL:-d12}; VOCAB=${VOCAB:-50257}; MD=${MD:-bench/multi_gpu.md}; LOGS=${LOGS:-build/bench_multi_gpu}
[ "$GPUS" -ge 2 ] || { echo "error: bench_multi_gpu.sh: GPUS=$GPUS, expected 2 or more" >&2; exit 1; }
mkdir -p "$LOGS" "$(dirname "$MD")"
make -j2 train_gpt_full train_gpt_window > "$LOGS/make.log" 2>&1 || { echo "error: build failed (see $LOGS/make.log)" >&2; exit 1; }
if [ -f data/austen/austen_train.bin ]; then train=data/austen/austen_train.bin; val=data/austen/austen_val.bin
else python3 data/prepare.py --corpus austen > "$LOGS/prepare.log" 2>&1 || { echo "error: data/prepare.py failed (see $LOGS/prepare.log)" >&2; exit 1; }
     train=data/austen/austen_train.bin; val=data/austen/austen_val.bin; fi

source test/lib.sh  # step_field_median
step_field() { step_field_median "$1" "$2" "$SKIP"; }  # log field (5: ms, 6: tok/s): the median after the first SKIP steps

rows=()
for attn in window full; do
    if [ $attn = window ]; then bin=./train_gpt_window; extra=(--window "$WINDOW" --sinks "$SINKS"); label="W=$WINDOW S=$SINKS"
    else bin=./train_gpt_full; extra=(); label=full; fi
    common=(-e "$MODEL" -V "$VOCAB" -b "$B" -t "$T" -x "$STEPS" -v 0 -i "$train" -j "$val" "${extra[@]}")
    echo "running: $bin ${common[*]}  (1 GPU, then $GPUS)"
    "$bin" "${common[@]}" > "$LOGS/${attn}_1.log" 2>&1
    bash scripts/multi_gpu.sh "$GPUS" "$bin" "${common[@]}" > "$LOGS/${attn}_$GPUS.log" 2>&1
    one=$(step_field "$LOGS/${attn}_1.log" 6); many=$(step_field "$LOGS/${attn}_$GPUS.log" 6)
    one_ms=$(step_field "$LOGS/${attn}_1.log" 5); many_ms=$(step_field "$LOGS/${attn}_$GPUS.log" 5)
    if [ -z "$one" ] || [ -z "$many" ]; then
        rows+=("| $label | failed: see $LOGS/${attn}_1.log, ${attn}_$GPUS.log | | | | |")
    else
        eff=$(awk -v a="$many" -v b="$one" -v n="$GPUS" 'BEGIN { printf "%.0f%%", 100 * a / (n * b) }')
        rows+=("| $label | $(printf %.0f "$one") | $(printf %.2f "$one_ms") | $(printf %.0f "$many") | $(printf %.2f "$many_ms") | $eff |")
    fi
    echo "${rows[-1]}"
done
{
    echo "# Several GPUs: data-parallel training throughput"
    echo
    echo "\`bash scripts/bench_multi_gpu.sh\` on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1) x $GPUS, $(date -u +'%Y-%m-%d %H:%M UTC')."
    echo "Model $MODEL (V=$VOCAB), T=$T, -b $B per GPU ($((B * T)) tokens per GPU per step), $STEPS steps, medians over"
    echo "steps $((SKIP + 1))..$STEPS. $GPUS GPUs: \`bash scripts/multi_gpu.sh $GPUS TRAINER ...\` with the same flags (the total batch"
    echo "is $GPUS x larger); the gradients (float32) are summed with one NCCL all-reduce per step. Efficiency:"
    echo "$GPUS-GPU tokens/s over $GPUS x the one-GPU tokens/s. Logs: \`$LOGS/\`."
    echo
    echo "| attention | 1 GPU tok/s | 1 GPU step ms | $GPUS GPUs tok/s | $GPUS GPUs step ms | efficiency |"
    echo "| --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
} > "$MD"
echo "wrote $MD"
