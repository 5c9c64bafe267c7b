#!/usr/bin/env bash
# CPU training throughput, full vs windowed attention (window 64, 4 sinks), at T = 256, 1024, 4096
# with 4096 tokens per step, on a small model (2 layers, 128 channels, 2 heads of 64).
# Writes bench/cpu_full_vs_window.md. Settings: MODEL, STEPS, TOKENS, WINDOW, SINKS, TS.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-l2c128h2} STEPS=${STEPS:-4} TOKENS=${TOKENS:-4096} WINDOW=${WINDOW:-64} SINKS=${SINKS:-4}
TS=${TS:-"256 1024 4096"}
OUT=bench/cpu_full_vs_window.md
make -s train_gpt_cpu
/usr/bin/python3 data/prepare.py > /dev/null
threads=$(nproc)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
source test/lib.sh  # median
# median tokens/s of the steps after the first (which pays for allocation and page faults)
run() {  # run T extra-flags...
    local T=$1; shift
    ./train_gpt_cpu -e "$MODEL" -b $((TOKENS / T)) -t "$T" -x "$STEPS" -v 0 "$@" |
        awk '/^step/ { n++; if (n > 1) print $(NF-1) }' | median
}
{
    echo "# CPU training throughput: full vs windowed attention"
    echo
    echo "\`bash scripts/bench_cpu.sh\` on $cpu, $threads threads, $(date -u +%Y-%m-%d)."
    echo "Model $MODEL, $TOKENS tokens per step (B = $TOKENS / T), window $WINDOW with $SINKS sinks;"
    echo "median tokens/s over steps 2..$STEPS."
    echo
    echo "| T | full tok/s | window tok/s | window / full |"
    echo "| --- | --- | --- | --- |"
} > "$OUT"
for T in $TS; do
    full=$(run "$T")
    win=$(run "$T" --window "$WINDOW" --sinks "$SINKS")
    ratio=$(awk -v a="$win" -v b="$full" 'BEGIN { printf "%.2f", a / b }')
    echo "| $T | $full | $win | ${ratio}x |" | tee -a "$OUT"
done
echo "wrote $OUT"
