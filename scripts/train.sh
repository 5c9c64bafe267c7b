#!/usr/bin/env bash
# The main job of the README: prepare the default data (the books corpus, byte-level) and train a
# windowed GPT (window W with S attention sinks, rotary positions), then plot its loss and print its final val loss
# beside the unigram and bigram baselines of the same val split (scripts/baselines.py). On a
# machine with an NVIDIA GPU and nvcc it trains with train_gpt_window, otherwise with train_gpt_cpu.
# The learning rate and warmup are the trainers' defaults for the model's size unless LR / WARMUP
# are set. Settings through the environment, e.g. STEPS=500 MODEL=d6 WINDOW=128 POS=learned CORPUS=austen bash scripts/train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh build python
# the plots need matplotlib: the first python3 that has it, else Debian's, with it installed
PY=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$p" -c 'import matplotlib' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { bash scripts/install_deps.sh plot; PY=/usr/bin/python3; }
CORPUS=${CORPUS:-books} POS=${POS:-rope}
/usr/bin/python3 data/prepare.py --corpus "$CORPUS"
train=data/$CORPUS/${CORPUS}_train.bin val=data/$CORPUS/${CORPUS}_val.bin
gpu=0
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "no GPU (nvidia-smi lists none): training on the CPU"
elif ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
    echo "a GPU is here but no nvcc (the CUDA toolkit) to build train_gpt_window: training on the CPU"
else
    gpu=1
fi
if [ $gpu = 1 ]; then
    # GPU: a GPT-2 d12 (124M-sized body) on 1024-byte sequences, about 2.5 minutes of training on an H200
    MODEL=${MODEL:-d12} STEPS=${STEPS:-6000} B=${B:-16} T=${T:-1024} WINDOW=${WINDOW:-256} SINKS=${SINKS:-4}
    OUT=${OUT:-out/train_window_gpu}
    make train_gpt_window
    program=./train_gpt_window
else
    # CPU: a 4-layer, 128-channel GPT on 128-byte sequences, about 7 minutes on 2 cores
    MODEL=${MODEL:-l4c128h4} STEPS=${STEPS:-1200} B=${B:-8} T=${T:-128} WINDOW=${WINDOW:-64} SINKS=${SINKS:-4}
    OUT=${OUT:-out/train_window}
    make train_gpt_cpu
    program=./train_gpt_cpu
fi
schedule=()
[ -n "${LR:-}" ] && schedule+=(-l "$LR")
[ -n "${WARMUP:-}" ] && schedule+=(-u "$WARMUP")
mkdir -p "$OUT"
$program -i "$train" -j "$val" -e "$MODEL" -b "$B" -t "$T" -x "$STEPS" "${schedule[@]}" -v $(( STEPS / 10 > 0 ? STEPS / 10 : 1 )) -m 8 \
    -s "$STEPS" -g $(( T > 300 ? 300 : T - 1 )) --window "$WINDOW" --sinks "$SINKS" --pos "$POS" -o "$OUT"
"$PY" scripts/plot_log.py "$OUT/log.csv" "$OUT/loss.png"
# The final word: the last checkpoint's loss from --eval over the whole val split (or its first
# EVAL_BATCHES batches: a pass over the books corpus's 1.5 MB takes about 5 minutes on 2 cores),
# beside the baselines of the same val bytes.
checkpoint=$(printf '%s/model_%08d.bin' "$OUT" "$STEPS")
eval_m=()
[ -n "${EVAL_BATCHES:-}" ] && eval_m=(-m "$EVAL_BATCHES")
$program --eval -e "$checkpoint" -j "$val" -b "$B" -t "$T" "${eval_m[@]}" | tee "$OUT/eval.txt"
final=$(sed -n 's/^val loss //p' "$OUT/eval.txt")
read -r batches < <(sed -n 's/^eval: .*, \([0-9]*\) batches of .*/\1/p' "$OUT/eval.txt")
read -r unigram bigram < <(/usr/bin/python3 scripts/baselines.py "$train" "$val" --tokens $(( batches * B * T )) --values)
echo "final val loss $final nats/byte over $(( batches * B * T )) bytes of $val; on the same bytes a unigram model" \
     "scores $unigram, a bigram model $bigram ($(awk -v v="$final" -v b="$bigram" 'BEGIN { printf "%.3f", b - v }') below the bigram)"
