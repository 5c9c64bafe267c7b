#!/usr/bin/env bash
# The main job of the README: prepare the default data (Jane Austen, byte-level) and train a
# windowed GPT (window W with S attention sinks), then plot its loss. On a machine with an NVIDIA
# GPU and nvcc it trains with train_gpt_window, otherwise with train_gpt_cpu.
# Settings through the environment, e.g. STEPS=500 MODEL=d6 WINDOW=128 bash scripts/train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh build python plot
/usr/bin/python3 data/prepare.py
gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; }; then
    gpu=1
fi
if [ $gpu = 1 ]; then
    # GPU: a GPT-2 d12 (124M-sized body) on 1024-byte windows of text
    MODEL=${MODEL:-d12} STEPS=${STEPS:-600} B=${B:-16} T=${T:-1024} WINDOW=${WINDOW:-256} SINKS=${SINKS:-4} LR=${LR:-1e-3}
    OUT=${OUT:-out/train_window_gpu}
    make train_gpt_window
    program=./train_gpt_window
else
    MODEL=${MODEL:-d4} STEPS=${STEPS:-150} B=${B:-8} T=${T:-256} WINDOW=${WINDOW:-64} SINKS=${SINKS:-4} LR=${LR:-1e-3}
    OUT=${OUT:-out/train_window}
    echo "no usable GPU (nvidia-smi and nvcc): training on the CPU"
    make train_gpt_cpu
    program=./train_gpt_cpu
fi
mkdir -p "$OUT"
$program -e "$MODEL" -b "$B" -t "$T" -x "$STEPS" -u 20 -l "$LR" -v 25 -m 8 -s "$STEPS" -g 200 \
    --window "$WINDOW" --sinks "$SINKS" -o "$OUT"
/usr/bin/python3 scripts/plot_log.py "$OUT/log.csv" "$OUT/loss.png"
