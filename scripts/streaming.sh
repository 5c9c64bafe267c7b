#!/usr/bin/env bash
# Streaming past the training length (issue 13 item 3; StreamingLLM's claim, tested on our own
# models). Trains two rotary models at sequence length T on the books corpus, one with dense
# causal attention and one with window W + S sinks, then feeds one val stream of N = 8T tokens
# through each (the trainers' --eval --stream, one token at a time through the rolling KV cache)
# and writes each token's loss:
#   full_dense          the dense model, its whole past in the cache (attention past T: extrapolation)
#   full_window_sinks   the dense model decoded with a window-W cache and S sinks
#   full_window         the dense model decoded with a window-W cache, no sinks
#   full_recompute      the dense model, each token from a fresh forward over the W tokens ending at it
#   window_own          the window + sinks model with its own cache
# then plots the running loss against position and tabulates the mean over each T-token block
# (scripts/plot_streaming.py). DEVICE=cpu runs a miniature on train_gpt_cpu (to check the script).
#   bash scripts/streaming.sh                    (GPU: about 2 minutes on an H200)
#   DIR=out/streaming DEVICE=cpu bash scripts/streaming.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-gpu}
if [ "$DEVICE" = gpu ]; then
    MODEL=${MODEL:-d6} T=${T:-1024} B=${B:-16} STEPS=${STEPS:-3000} W=${W:-256} S=${S:-4}
    TRAIN=${TRAIN:-data/books/books_train.bin} VAL=${VAL:-data/books/books_val.bin} DIR=${DIR:-bench/streaming}
    [ -f "$TRAIN" ] || python3 data/prepare.py
    make train_gpt_window
    bin=./train_gpt_window
elif [ "$DEVICE" = cpu ]; then
    MODEL=${MODEL:-l2c64h2} T=${T:-64} B=${B:-8} STEPS=${STEPS:-200} W=${W:-16} S=${S:-2}
    TRAIN=${TRAIN:?DEVICE=cpu needs TRAIN and VAL shards} VAL=${VAL:?DEVICE=cpu needs TRAIN and VAL shards} DIR=${DIR:-out/streaming}
    make train_gpt_cpu
    bin=./train_gpt_cpu
else
    echo "error: DEVICE=$DEVICE: expected gpu or cpu" >&2; exit 1
fi
N=${N:-$((8 * T))}
mkdir -p "$DIR"
echo "streaming: $MODEL rotary, T=$T, window $W + $S sinks, a stream of $N val tokens of $VAL ($DEVICE)" | tee "$DIR/settings.txt"

# the two models: same data, schedule and seed; maxT = N lets the dense model's cache hold the whole stream
train=(-i "$TRAIN" -j "$VAL" -e "$MODEL" -b "$B" -t "$T" -x "$STEPS" -v $((STEPS / 5)) -m 8 -r 1337 --pos rope --max-seq-len "$N")
[ -f "$DIR/full/model_$(printf %08d "$STEPS").bin" ] || $bin "${train[@]}" -o "$DIR/full" | grep -vE '^step' | tee "$DIR/train_full.txt"
[ -f "$DIR/window/model_$(printf %08d "$STEPS").bin" ] || $bin "${train[@]}" --window "$W" --sinks "$S" -o "$DIR/window" | grep -vE '^step' | tee "$DIR/train_window.txt"
full=$DIR/full/model_$(printf %08d "$STEPS").bin window=$DIR/window/model_$(printf %08d "$STEPS").bin

stream() {  # stream NAME CHECKPOINT [flags...]
    local name=$1 ckpt=$2; shift 2
    local t0=$SECONDS
    $bin --eval -e "$ckpt" -j "$VAL" -t "$T" --stream "$N" "$@" --eval-positions "$DIR/stream_$name.csv" > "$DIR/stream_$name.txt"
    echo "$name: $(grep '^val loss' "$DIR/stream_$name.txt"), $((SECONDS - t0)) s"
}
stream full_dense "$full"
stream full_window_sinks "$full" --window "$W" --sinks "$S"
stream full_window "$full" --window "$W" --sinks 0
stream full_recompute "$full" --stream-recompute "$W"
stream window_own "$window"
python3 scripts/plot_streaming.py "$DIR" "$T" "$W" "$S"
