#!/usr/bin/env bash
# Peak GPU memory of d12 training against sequence length (issue 13 item 5, seeds/004): dense causal
# (train_gpt_full) and window 256 + 4 sinks (train_gpt_window), with the PyTorch twin
# (scripts/train_torch_twin.py: SDPA for dense, FlexAttention for the window; eager, since
# torch.compile would be compiled anew for every length) beside them. B*T = 16K tokens where B >= 1,
# B = 1 beyond. Peak = the largest "used_memory" nvidia-smi reports for the run's process, polled
# every 100 ms (it includes the CUDA context); the twin also prints torch.cuda.max_memory_allocated.
# A run that runs out of memory is a row that says so.
#   bash scripts/bench_memory.sh          -> bench/memory/memory.csv, memory.md, memory.png
# Settings: LENGTHS="1024 2048 ...", TWIN=0 (ours only), STEPS=10, DIR=bench/memory, APPEND=1 (add rows to
# DIR's memory.csv, replacing the rows of the lengths measured again: lets one table be made in several
# runs where a machine's time limit cuts a run short)
set -uo pipefail
cd "$(dirname "$0")/.."
LENGTHS=${LENGTHS:-"1024 2048 4096 8192 16384 32768 65536"} TWIN=${TWIN:-1} STEPS=${STEPS:-10} DIR=${DIR:-bench/memory}
TOKENS=${TOKENS:-16384} APPEND=${APPEND:-0}
TRAIN=${TRAIN:-data/books/books_train.bin} VAL=${VAL:-data/books/books_val.bin}
command -v nvidia-smi > /dev/null || { echo "error: bench_memory.sh needs nvidia-smi (an NVIDIA GPU)" >&2; exit 1; }
[ -f "$TRAIN" ] || python3 data/prepare.py || { echo "error: bench_memory.sh: data/prepare.py failed (no $TRAIN)" >&2; exit 1; }
for f in "$TRAIN" "$VAL"; do [ -f "$f" ] || { echo "error: bench_memory.sh: $f: no such token shard" >&2; exit 1; }; done
make train_gpt_full train_gpt_window > /dev/null || exit 1
mkdir -p "$DIR/logs"
csv=$DIR/memory.csv
header="program,attention,T,B,peak_mib,torch_peak_gib,trainer_gib,status"
if [ "$APPEND" = 1 ] && [ -f "$csv" ]; then
    [ "$(head -n 1 "$csv")" = "$header" ] || { echo "error: bench_memory.sh: APPEND=1: $csv does not start with '$header'" >&2; exit 1; }
    for T in $LENGTHS; do  # rows of the lengths measured now are measured again
        awk -F, -v T="$T" 'NR == 1 || $3 != T' "$csv" > "$csv.tmp" && mv "$csv.tmp" "$csv"
    done
else
    echo "$header" > "$csv"
fi

measure() {  # measure PROGRAM ATTENTION T B LOG command...: runs it, polls its GPU memory
    local program=$1 attention=$2 T=$3 B=$4 log=$5; shift 5
    "$@" > "$log" 2>&1 &
    local pid=$! peak=0
    while kill -0 $pid 2> /dev/null; do
        for pid_mem in $(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2> /dev/null | tr -d ' '); do
            mem=${pid_mem##*,}
            [ "${pid_mem%%,*}" = "$pid" ] && [[ $mem =~ ^[0-9]+$ ]] && [ "$mem" -gt "$peak" ] && peak=$mem
        done
        sleep 0.1
    done
    wait $pid
    local rc=$? status=ok torch_peak=
    if grep -qiE 'out of memory|OutOfMemory|CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation' "$log"; then status=out_of_memory
    elif [ $rc -ne 0 ]; then status="failed_rc_$rc"
    elif [ "$peak" -eq 0 ]; then status=not_measured; fi  # nvidia-smi showed no such process (other PID namespace, MIG)
    torch_peak=$(sed -n 's/.*peak_mem_gib=\([0-9.]*\).*/\1/p' "$log" | tail -n 1)
    # our trainers' own line, after allocating everything: a cross-check of the polled peak
    local trainer=$(sed -n 's/^GPU memory in use: \([0-9.]*\) GiB.*/\1/p' "$log" | tail -n 1)
    echo "$program,$attention,$T,$B,$peak,$torch_peak,$trainer,$status" | tee -a "$csv"
}

for T in $LENGTHS; do
    B=$(( TOKENS / T > 0 ? TOKENS / T : 1 ))
    ours=(-i "$TRAIN" -j "$VAL" -e d12 -b "$B" -t "$T" -x "$STEPS" -v 0)
    measure ours dense "$T" "$B" "$DIR/logs/ours_dense_$T.log" ./train_gpt_full "${ours[@]}"
    measure ours "window 256 + 4 sinks" "$T" "$B" "$DIR/logs/ours_window_$T.log" ./train_gpt_window "${ours[@]}" --window 256 --sinks 4
    if [ "$TWIN" = 1 ]; then
        twin=(python3 scripts/train_torch_twin.py -i "$TRAIN" -j "$VAL" -e d12 -V 256 -b "$B" -t "$T" -x $((STEPS + 2)) -v 0
              --warmup-steps-excluded 2 --no-compile)
        measure twin dense "$T" "$B" "$DIR/logs/twin_dense_$T.log" "${twin[@]}"
        measure twin "window 256 + 4 sinks" "$T" "$B" "$DIR/logs/twin_window_$T.log" "${twin[@]}" --window 256 --sinks 4
    fi
done
python3 scripts/plot_memory.py "$csv" "$DIR"
