#!/usr/bin/env bash
# The main job of the README: prepare the default data (Jane Austen, byte-level) and train a
# windowed GPT (window 64, 4 attention sinks), then plot its loss.
# Settings can be changed through the environment, e.g. STEPS=500 MODEL=d6 bash scripts/train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-d4} STEPS=${STEPS:-150} B=${B:-8} T=${T:-256} WINDOW=${WINDOW:-64} SINKS=${SINKS:-4}
OUT=${OUT:-out/train_window}
bash scripts/install_deps.sh build python plot
/usr/bin/python3 data/prepare.py
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    echo "a GPU is present, but the CUDA trainer train_gpt_window is not written yet (issue 4): training on the CPU"
fi
make train_gpt_cpu
mkdir -p "$OUT"
./train_gpt_cpu -e "$MODEL" -b "$B" -t "$T" -x "$STEPS" -u 20 -v 25 -m 8 -s "$STEPS" -g 200 \
    --window "$WINDOW" --sinks "$SINKS" -o "$OUT"
/usr/bin/python3 scripts/plot_log.py "$OUT/log.csv" "$OUT/loss.png"
