#!/usr/bin/env bash
# GPT-2 d12 training throughput on 1 GPU and on N GPUs of one machine (data parallel through NCCL,
# scripts/multi_gpu.sh), the same per-GPU batch: the scaling efficiency is N-GPU tokens/s over
# N x the one-GPU tokens/s; windowed and full at T=1024, windowed with ZeRO-1, windowed at T=16384.
# Then the memory per GPU of a d36 model at T=4096 without and with ZeRO-1. Writes bench/multi_gpu.md.
#
#   bash scripts/bench_multi_gpu.sh            # on a machine with 2 or more GPUs
#
# Settings (environment): GPUS (every GPU nvidia-smi lists), T (1024), B (32, per GPU), STEPS (12),
# SKIP (3 steps left out of the medians), WINDOW (256), SINKS (4), MODEL (d12), VOCAB (50257),
# MD (bench/multi_gpu.md), LOGS (build/bench_multi_gpu), LONG_T (16384), MEM_MODEL (d36), MEM_T (4096),
# MEM_W (1024), MEM_B (4).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
GPUS=${GPUS:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')}
T=${T:-1024}; B=${B:-32}; STEPS=${STEPS:-12}; SKIP=${SKIP:-3}; WINDOW=${WINDOW:-256}; SINKS=${SINKS:-4}
MODEL=${MODEL:-d12}; VOCAB=${VOCAB:-50257}; MD=${MD:-bench/multi_gpu.md}; LOGS=${LOGS:-build/bench_multi_gpu}
[ "$GPUS" -ge 2 ] || { echo "error: bench_multi_gpu.sh: GPUS=$GPUS, expected 2 or more" >&2; exit 1; }
mkdir -p "$LOGS" "$(dirname "$MD")"
make -j2 train_gpt_full train_gpt_window > "$LOGS/make.log" 2>&1 || { echo "error: build failed (see $LOGS/make.log)" >&2; exit 1; }
# the default corpus (throughput does not depend on the text: the vocabulary is fixed by -V)
train=data/books/books_train.bin; val=data/books/books_val.bin
if [ ! -f $train ]; then
    python3 data/prepare.py > "$LOGS/prepare.log" 2>&1 || { echo "error: data/prepare.py failed (see $LOGS/prepare.log)" >&2; exit 1; }
fi

source test/lib.sh  # step_field_median
step_field() { step_field_median "$1" "$2" "$SKIP"; }  # log field (5: ms, 6: tok/s): the median after the first SKIP steps

rows=()
# bench_row LABEL TRAINER MULTI_FLAGS -- FLAGS...: one GPU, then GPUS GPUs with FLAGS plus MULTI_FLAGS
# (e.g. -z 1); a row of the throughput table
bench_row() {
    local label=$1 bin=$2 multi_flags=($3) tag
    shift 4
    tag=$(echo "$label" | tr -c 'A-Za-z0-9=\n' '_')
    echo "running: $bin $* (1 GPU, then $GPUS ${multi_flags[*]})"
    "$bin" "$@" > "$LOGS/${tag}_1.log" 2>&1
    bash scripts/multi_gpu.sh "$GPUS" "$bin" "$@" "${multi_flags[@]}" > "$LOGS/${tag}_$GPUS.log" 2>&1
    local one many one_ms many_ms eff
    one=$(step_field "$LOGS/${tag}_1.log" 6); many=$(step_field "$LOGS/${tag}_$GPUS.log" 6)
    one_ms=$(step_field "$LOGS/${tag}_1.log" 5); many_ms=$(step_field "$LOGS/${tag}_$GPUS.log" 5)
    if [ -z "$one" ] || [ -z "$many" ]; then
        rows+=("| $label | failed: see $LOGS/${tag}_1.log, ${tag}_$GPUS.log | | | | |")
    else
        eff=$(awk -v a="$many" -v b="$one" -v n="$GPUS" 'BEGIN { printf "%.1f%%", 100 * a / (n * b) }')
        rows+=("| $label | $(printf %.0f "$one") | $(printf %.2f "$one_ms") | $(printf %.0f "$many") | $(printf %.2f "$many_ms") | $eff |")
    fi
    echo "${rows[-1]}"
}
data=(-V "$VOCAB" -x "$STEPS" -v 0 -i "$train" -j "$val")
bench_row "$MODEL T=$T W=$WINDOW S=$SINKS" ./train_gpt_window "" -- -e "$MODEL" -b "$B" -t "$T" --window "$WINDOW" --sinks "$SINKS" "${data[@]}"
bench_row "$MODEL T=$T full" ./train_gpt_full "" -- -e "$MODEL" -b "$B" -t "$T" "${data[@]}"
bench_row "$MODEL T=$T W=$WINDOW S=$SINKS, -z 1" ./train_gpt_window "-z 1" -- -e "$MODEL" -b "$B" -t "$T" --window "$WINDOW" --sinks "$SINKS" "${data[@]}"
LONG_T=${LONG_T:-16384}
bench_row "$MODEL T=$LONG_T W=$WINDOW S=$SINKS" ./train_gpt_window "" -- -e "$MODEL" -b $((B * T / LONG_T > 0 ? B * T / LONG_T : 1)) -t "$LONG_T" \
    --window "$WINDOW" --sinks "$SINKS" --pos rope "${data[@]}"

# memory per GPU of a GPT-2 774M-sized model (d36), T=4096, window 1024, on GPUS GPUs, without and with ZeRO-1
MEM_MODEL=${MEM_MODEL:-d36}; MEM_T=${MEM_T:-4096}; MEM_W=${MEM_W:-1024}; MEM_B=${MEM_B:-4}
mem_rows=()
for z in 0 1; do
    log=$LOGS/memory_z$z.log
    bash scripts/multi_gpu.sh "$GPUS" ./train_gpt_window -e "$MEM_MODEL" -b "$MEM_B" -t "$MEM_T" --window "$MEM_W" --sinks 4 --pos rope \
        -V "$VOCAB" -x 6 -v 0 -i "$train" -j "$val" -z $z > "$log" 2>&1
    kinds=$(sed -n 's/^GPU memory by kind: //p' "$log" | head -n1)
    used=$(sed -n 's/^GPU memory in use: \([0-9.]*\) GiB.*/\1/p' "$log" | head -n1)
    tok=$(step_field_median "$log" 6 2)
    if [ -z "$used" ] || [ -z "$tok" ]; then mem_rows+=("| -z $z | failed or out of memory: see $log | | |")
    else mem_rows+=("| -z $z | $used | $(printf %.0f "$tok") | $kinds |"); fi
    echo "${mem_rows[-1]}"
done
{
    echo "# Several GPUs: data-parallel training throughput, and ZeRO-1's memory"
    echo
    echo "\`bash scripts/bench_multi_gpu.sh\` on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1) x $GPUS, $(date -u +'%Y-%m-%d %H:%M UTC')."
    echo "-b $B per GPU at T=$T ($((B * T)) tokens per GPU per step; the same tokens at T=$LONG_T), $STEPS steps, medians over"
    echo "steps $((SKIP + 1))..$STEPS. $GPUS GPUs: \`bash scripts/multi_gpu.sh $GPUS TRAINER ...\` with the same flags (the total batch"
    echo "is $GPUS x larger). The float32 gradients are summed by NCCL layer by layer while the backward computes"
    echo "(one all-reduce per layer on its own stream); with -z 1, reduce-scattered after the backward and the"
    echo "bf16 weights all-gathered after the update. Efficiency: $GPUS-GPU tokens/s over $GPUS x the one-GPU"
    echo "tokens/s. Logs: \`$LOGS/\`."
    echo
    echo "| run | 1 GPU tok/s | 1 GPU step ms | $GPUS GPUs tok/s | $GPUS GPUs step ms | efficiency |"
    echo "| --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Memory per GPU: $MEM_MODEL, T=$MEM_T, window $MEM_W + 4 sinks, rotary, -b $MEM_B per GPU, on $GPUS GPUs. \"in use\":"
    echo "cudaMemGetInfo after every allocation (the trainers allocate everything before the first step)."
    echo
    echo "| ZeRO | GiB in use per GPU | tok/s ($GPUS GPUs) | the trainer's breakdown |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${mem_rows[@]}"
} > "$MD"
echo "wrote $MD"
