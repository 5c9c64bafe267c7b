#!/usr/bin/env bash
# Data-parallel training on 2 GPUs (scripts/multi_gpu.sh, NCCL) against one GPU; ZeRO-1 (-z 1)
# against -z 0, its checkpoints on one GPU and resumed on another number of GPUs; the launchers
# (tcp://, Slurm's variables, mpirun where there is one); a killed rank. Run by
# `make test-multi-gpu` on a machine with at least 2 GPUs.
#   bash test/test_multi_gpu.sh BUILD_DIR     (BUILD_DIR/tiny: tiny shards)
set -u
dir=${1:?usage: test_multi_gpu.sh BUILD_DIR}
work=$dir/multi
rm -rf "$work" && mkdir -p "$work"
source test/lib.sh  # pass, fail, check, bad, finish, ...
worst() { worst_loss_diff "$1" "$2" 10; }  # two runs of 10 steps
multi=(bash scripts/multi_gpu.sh 2)
common=(-i "$dir/tiny/tiny_train.bin" -j "$dir/tiny/tiny_val.bin" -e l2c128h2 -V 256 -t 96 -x 10 -u 2 -v 5 -m 2
        -l 3e-3 --window 24 --sinks 3 -n 5)

./train_gpt_window "${common[@]}" -b 4 -o "$work/one" > "$work/one.out" 2>&1
"${multi[@]}" ./train_gpt_window "${common[@]}" -b 2 -o "$work/two" > "$work/two.out" 2>&1
check "2 GPUs x -b 2 train 10 steps" test $? -eq 0 -a "$(wc -l < "$work/two/log.csv" 2>/dev/null || echo 0)" -eq 11
check "only rank 0 prints: one line per step" test "$(grep -c '^step ' "$work/two.out")" -eq 10
s1=$(losses "$work/one" | head -1); s2=$(losses "$work/two" | head -1)
check "the first step's loss is the one GPU's with -b 4 (the same rows: $s1 vs $s2)" \
    awk -v a="$s1" -v b="$s2" 'BEGIN { d = (a - b) / a; if (d < 0) d = -d; exit !(d < 1e-4) }'
w=$(worst "$work/one" "$work/two")
check "10 steps on 2 GPUs x -b 2 match 1 GPU x -b 4 within 1e-2 (worst relative difference $w)" \
    awk -v w="$w" 'BEGIN { exit !(w < 1e-2) }'

"${multi[@]}" ./train_gpt_window "${common[@]}" -b 2 -o "$work/again" > /dev/null 2>&1
check "two 2-GPU runs give bit-identical losses and weights" \
    bash -c "cmp -s <(cut -d, -f1-3 '$work/two/log.csv') <(cut -d, -f1-3 '$work/again/log.csv') && cmp -s '$work/two/model_00000010.bin' '$work/again/model_00000010.bin'"

mkdir -p "$work/r" && cp "$work/two/model_00000005.bin" "$work/two/state_00000005.bin" "$work/two/log.csv" "$work/r/"
"${multi[@]}" ./train_gpt_window "${common[@]}" -b 2 -o "$work/r" -y 1 > "$work/r.out" 2>&1
check "a 2-GPU run resumed at step 5 gives the same losses and weights bit for bit" \
    bash -c "cmp -s <(cut -d, -f1-3 '$work/two/log.csv') <(cut -d, -f1-3 '$work/r/log.csv') && cmp -s '$work/two/model_00000010.bin' '$work/r/model_00000010.bin'"

"${multi[@]}" ./train_gpt_window "${common[@]}" -b 1 -d 384 -o "$work/accum" > /dev/null 2>&1
w=$(worst "$work/one" "$work/accum")
check "2 GPUs x -b 1 x 2 accumulation steps match 1 GPU x -b 4 within 1e-2 (worst $w)" awk -v w="$w" 'BEGIN { exit !(w < 1e-2) }'

full=(-i "$dir/tiny/tiny_train.bin" -j "$dir/tiny/tiny_val.bin" -e l2c128h2 -V 256 -t 96 -x 10 -v 0 -l 3e-3)
./train_gpt_full "${full[@]}" -b 4 -o "$work/full1" > /dev/null 2>&1
"${multi[@]}" ./train_gpt_full "${full[@]}" -b 2 -o "$work/full2" > /dev/null 2>&1
w=$(worst "$work/full1" "$work/full2")
check "train_gpt_full: 2 GPUs x -b 2 match 1 GPU x -b 4 within 1e-2 (worst $w)" awk -v w="$w" 'BEGIN { exit !(w < 1e-2) }'

err=$("${multi[@]}" ./train_gpt_window "${common[@]}" -b 2 -d 100 2>&1 >/dev/null | grep -v multi_gpu.sh | sort -u)
check "a total batch that is not a multiple of B*T*GPUs: one line naming -d" one_line "$err" '-d 100'
err=$(env -u NCCL_ID_FILE WORLD_SIZE=2 RANK=0 ./train_gpt_window "${common[@]}" -b 2 2>&1 >/dev/null)
check "WORLD_SIZE=2 and no way to meet: one line naming --nccl-init" one_line "$err" "no way to meet: give --nccl-init"

# ---- ZeRO-1 (-z 1): the same training, each GPU keeping its shard of the optimizer
"${multi[@]}" ./train_gpt_window "${common[@]}" -b 2 -z 1 -o "$work/z1" > "$work/z1.out" 2>&1
check "-z 1: 2 GPUs train 10 steps" test $? -eq 0 -a "$(wc -l < "$work/z1/log.csv" 2>/dev/null || echo 0)" -eq 11
w=$(worst "$work/two" "$work/z1")
check "-z 1 matches -z 0 on 2 GPUs within 1e-2 (worst relative difference $w)" awk -v w="$w" 'BEGIN { exit !(w < 1e-2) }'
z0_mem=$(sed -n 's/.*master weights and moments \([0-9.]*\) GiB.*/\1/p' "$work/two.out")
z1_mem=$(sed -n "s/.*master weights and moments \([0-9.]*\) GiB (ZeRO-1: this GPU's shard).*/\1/p" "$work/z1.out")
check "-z 1 prints its shard's memory: $z1_mem GiB of master weights and moments against $z0_mem" test -n "$z1_mem" -a -n "$z0_mem"
"${multi[@]}" ./train_gpt_window "${common[@]}" -b 2 -z 1 -o "$work/z1again" > /dev/null 2>&1
check "two -z 1 runs give bit-identical losses and checkpoints" \
    bash -c "cmp -s <(cut -d, -f1-3 '$work/z1/log.csv') <(cut -d, -f1-3 '$work/z1again/log.csv') && cmp -s '$work/z1/model_00000010.bin' '$work/z1again/model_00000010.bin' && cmp -s '$work/z1/state_00000010.bin' '$work/z1again/state_00000010.bin'"
check "a -z 1 checkpoint holds the whole model and optimizer (the sizes of -z 0's)" \
    bash -c "[ \$(stat -c %s '$work/z1/model_00000010.bin') = \$(stat -c %s '$work/two/model_00000010.bin') ] && [ \$(stat -c %s '$work/z1/state_00000010.bin') = \$(stat -c %s '$work/two/state_00000010.bin') ]"
v1=$(./train_gpt_window --eval -e "$work/z1/model_00000010.bin" -i "$dir/tiny/tiny_train.bin" -j "$dir/tiny/tiny_val.bin" -b 4 -t 96 -m 2 2>&1 | sed -n 's/^val loss //p')
v0=$(./train_gpt_window --eval -e "$work/two/model_00000010.bin" -i "$dir/tiny/tiny_train.bin" -j "$dir/tiny/tiny_val.bin" -b 4 -t 96 -m 2 2>&1 | sed -n 's/^val loss //p')
check "a -z 1 checkpoint loads on one GPU: val loss $v1 against -z 0's $v0" within "$v1" "$v0" 1e-2
mkdir -p "$work/z1r" && cp "$work/z1/model_00000005.bin" "$work/z1/state_00000005.bin" "$work/z1/log.csv" "$work/z1r/"
"${multi[@]}" ./train_gpt_window "${common[@]}" -b 2 -z 1 -o "$work/z1r" -y 1 > /dev/null 2>&1
check "a -z 1 run resumed at step 5 on 2 GPUs gives the same losses and checkpoint bit for bit" \
    bash -c "cmp -s <(cut -d, -f1-3 '$work/z1/log.csv') <(cut -d, -f1-3 '$work/z1r/log.csv') && cmp -s '$work/z1/model_00000010.bin' '$work/z1r/model_00000010.bin'"
mkdir -p "$work/z1on1" && cp "$work/z1/model_00000005.bin" "$work/z1/state_00000005.bin" "$work/z1/log.csv" "$work/z1on1/"
./train_gpt_window "${common[@]}" -b 2 -d 384 -o "$work/z1on1" -y 1 > /dev/null 2>&1
w=$(worst "$work/z1" "$work/z1on1")
check "a -z 1 run resumes on one GPU (-b 2 -d 384: two accumulation steps for the two GPUs): within 1e-2 of its 2-GPU steps (worst $w)" awk -v w="$w" 'BEGIN { exit !(w < 1e-2) }'
mkdir -p "$work/z0to1" && cp "$work/two/model_00000005.bin" "$work/two/state_00000005.bin" "$work/two/log.csv" "$work/z0to1/"
"${multi[@]}" ./train_gpt_window "${common[@]}" -b 2 -z 1 -o "$work/z0to1" -y 1 > /dev/null 2>&1
w=$(worst "$work/two" "$work/z0to1")
check "a -z 0 run resumes with -z 1 (its optimizer state sharded): within 1e-2 (worst $w)" awk -v w="$w" 'BEGIN { exit !(w < 1e-2) }'

# ---- launchers: the same 2-GPU run by hand over tcp://, as Slurm's srun would start it, and by mpirun
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
p=$(port)
for r in 0 1; do
    WORLD_SIZE=2 RANK=$r LOCAL_RANK=$r ./train_gpt_window "${common[@]}" -b 2 -o "$work/tcp" --nccl-init tcp://127.0.0.1:$p > "$work/tcp$r.out" 2>&1 &
done
wait
check "--nccl-init tcp://: the 2-GPU run bit for bit" bash -c "cmp -s <(cut -d, -f1-3 '$work/two/log.csv') <(cut -d, -f1-3 '$work/tcp/log.csv')"
p=$(port)
for r in 0 1; do
    env -u WORLD_SIZE -u RANK -u LOCAL_RANK SLURM_PROCID=$r SLURM_LOCALID=$r SLURM_STEP_NUM_TASKS=2 SLURM_NTASKS=2 \
        ./train_gpt_window "${common[@]}" -b 2 -o "$work/slurm" --nccl-init tcp://127.0.0.1:$p > "$work/slurm$r.out" 2>&1 &
done
wait
check "Slurm's variables (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID): the 2-GPU run bit for bit" \
    bash -c "grep -q \"Slurm's srun\" '$work/slurm0.out' && cmp -s <(cut -d, -f1-3 '$work/two/log.csv') <(cut -d, -f1-3 '$work/slurm/log.csv')"
if command -v mpirun >/dev/null && ./test/test_gpt_window_gpu --check-launch --identify | grep -q "build: MPI yes"; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 \
        ./train_gpt_window "${common[@]}" -b 2 -o "$work/mpi" > "$work/mpi.out" 2>&1
    check "mpirun -np 2 (NCCL's id by MPI_Bcast): the 2-GPU run bit for bit" \
        bash -c "cmp -s <(cut -d, -f1-3 '$work/two/log.csv') <(cut -d, -f1-3 '$work/mpi/log.csv')"
else
    echo "note: no mpirun, or a build without MPI: the mpirun case is not run"
fi

# ---- a killed rank stops the others (tcp://: the watchdog; multi_gpu.sh: the script), no hang
long=("${common[@]}" -x 100000 -v 0 -n 0)
p=$(port)
for r in 0 1; do
    WORLD_SIZE=2 RANK=$r LOCAL_RANK=$r ./train_gpt_window "${long[@]}" -b 2 --nccl-init tcp://127.0.0.1:$p > "$work/kill$r.out" 2>&1 &
    eval "kill_pid$r=$!"
done
for _ in $(seq 600); do grep -q '^step *20/' "$work/kill0.out" && break; sleep 0.1; done
kill -9 $kill_pid1
t0=$(date +%s)
wait $kill_pid0; rc=$?
took=$(( $(date +%s) - t0 ))
wait $kill_pid1 2>/dev/null
check "tcp://: rank 1 killed mid-run, rank 0 exits $rc within $took s" \
    bash -c "[ $rc -eq 1 ] && [ $took -le 15 ] && grep -q 'rank 1 stopped before the end of the run' '$work/kill0.out'"
"${multi[@]}" ./train_gpt_window "${long[@]}" -b 2 > "$work/killsh.out" 2>&1 &
sh_pid=$!
for _ in $(seq 600); do grep -q '^step *20/' "$work/killsh.out" && break; sleep 0.1; done
victim=$(pgrep -P $sh_pid -f train_gpt_window | tail -1)
kill -9 $victim
t0=$(date +%s)
wait $sh_pid; rc=$?
took=$(( $(date +%s) - t0 ))
check "multi_gpu.sh: one trainer killed mid-run, the script stops the other and exits $rc within $took s" \
    bash -c "[ $rc -ne 0 ] && [ $took -le 15 ] && ! pgrep -P $sh_pid >/dev/null"

finish test_multi_gpu
