#!/usr/bin/env bash
# Data-parallel training on 2 GPUs (scripts/multi_gpu.sh, NCCL) against one GPU, run by
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
err=$(WORLD_SIZE=2 RANK=0 ./train_gpt_window "${common[@]}" -b 2 2>&1 >/dev/null)
check "WORLD_SIZE=2 without NCCL_ID_FILE: one line naming it" one_line "$err" NCCL_ID_FILE

finish test_multi_gpu
