#!/usr/bin/env bash
# Runs a CUDA trainer on N GPUs of this machine: one process per GPU, data parallel through NCCL.
#   bash scripts/multi_gpu.sh N ./train_gpt_window -b 8 -t 1024 ...
# Each process reads its own -b rows of every batch (N x -b rows a step; -d, when given, counts all
# of them), the gradients are summed across the GPUs, and rank 0 alone prints, logs and writes
# checkpoints. If one process fails the others are stopped, and the script exits with its status.
#
# Several machines: start the trainer on each GPU of each machine yourself with WORLD_SIZE (GPUs
# in all), RANK (0 .. WORLD_SIZE - 1), LOCAL_RANK (the GPU on its machine) and NCCL_ID_FILE (the same
# fresh path on a filesystem every machine sees; rank 0 writes NCCL's id there).
set -u
n=${1:?usage: multi_gpu.sh N TRAINER [ARGS...]}
shift
[ $# -ge 1 ] || { echo "error: multi_gpu.sh: no trainer to run (usage: multi_gpu.sh N TRAINER [ARGS...])" >&2; exit 1; }
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "error: multi_gpu.sh: N '$n': expected a number of GPUs >= 1" >&2; exit 1; }
have=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
[ "$have" -ge "$n" ] || { echo "error: multi_gpu.sh: $n GPUs asked for, nvidia-smi lists $have" >&2; exit 1; }
# NVLink multicast (NVLS) stays off: it can take a shared host's GPUs out of service
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
id_dir=$(mktemp -d)
pids=()
trap 'rm -rf "$id_dir"' EXIT
# Ctrl-C or a scheduler's SIGTERM stops the trainers too (background jobs ignore SIGINT, so TERM)
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait; exit 130' INT TERM
for ((r = 0; r < n; r++)); do
    WORLD_SIZE=$n RANK=$r LOCAL_RANK=$r NCCL_ID_FILE=$id_dir/nccl_id "$@" &
    pids+=($!)
done
status=0
while [ ${#pids[@]} -gt 0 ]; do
    running=()
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then running+=("$pid"); continue; fi
        wait "$pid"
        rc=$?
        if [ $rc -ne 0 ] && [ $status -eq 0 ]; then
            status=$rc
            echo "error: multi_gpu.sh: a process exited with status $rc; stopping the others" >&2
            for other in "${pids[@]}"; do [ "$other" != "$pid" ] && kill -TERM "$other" 2>/dev/null; done
        fi
    done
    pids=("${running[@]}")
    [ ${#pids[@]} -gt 0 ] && sleep 0.2
done
exit $status
