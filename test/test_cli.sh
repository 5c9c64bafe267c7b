#!/usr/bin/env bash
# End-to-end tests of ./train_gpt_cpu through its command line: training, exact resume,
# determinism, sampling, every bad input of issue 2, checkpoints that survive a kill, and the
# randomized full-vs-window experiment (scripts/experiment.sh) in miniature.
#   bash test/test_cli.sh BUILD_DIR        (BUILD_DIR/tiny holds the tiny shards)
set -u
dir=${1:?usage: test_cli.sh BUILD_DIR}
bin=./train_gpt_cpu
tiny_train=$dir/tiny/tiny_train.bin
tiny_val=$dir/tiny/tiny_val.bin
work=$dir/cli
rm -rf "$work" && mkdir -p "$work"
passed=0 failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

# a small windowed model; every run below shares these flags
common=(-i "$tiny_train" -j "$tiny_val" -e l2c64h4 -b 2 -t 64 -x 6 -u 2 -v 3 -m 2 --window 16 --sinks 2)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# ---- training runs and writes its log (gradient accumulation and sampling on, so resume covers them)
$bin "${common[@]}" -d 256 -s 2 -g 8 -n 3 -o "$work/a" > "$work/a.out" 2>&1
check "a 6-step windowed run exits 0" test $? -eq 0
check "log.csv has a header and 6 step rows" test "$(wc -l < "$work/a/log.csv")" -eq 7
first=$(sed -n 2p "$work/a/log.csv" | cut -d, -f2)
last=$(sed -n 7p "$work/a/log.csv" | cut -d, -f2)
check "the loss falls over 6 steps ($first -> $last)" awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }'
check "step lines show loss, ms and tok/s" grep -qE '^step +6/6 \| loss [0-9.]+ \|.* ms \| [0-9]+ tok/s' "$work/a.out"
check "val loss is printed and logged" bash -c "grep -q '^val loss' '$work/a.out' && cut -d, -f3 '$work/a/log.csv' | grep -qE '^[0-9]'"
check "checkpoints at step 3 and 6" test -f "$work/a/model_00000003.bin" -a -f "$work/a/state_00000006.bin"

# ---- the same seed and data give the same losses
$bin "${common[@]}" -d 256 -s 2 -g 8 -o "$work/b" > /dev/null 2>&1
check "two identical runs log identical losses" cmp -s <(cut -d, -f1-3 "$work/a/log.csv") <(cut -d, -f1-3 "$work/b/log.csv")

# ---- a run resumed at step 3 logs the same steps 4..6 as one that never stopped
# The step-6 model without its state (as if the run died between the two writes) and a cut-off
# temporary file must be passed over: the newest complete pair is step 3.
mkdir -p "$work/r"
cp "$work/a/model_00000003.bin" "$work/a/state_00000003.bin" "$work/a/model_00000006.bin" "$work/a/log.csv" "$work/r/"
printf 'garbage' > "$work/r/state_00000005.bin.tmp"
$bin "${common[@]}" -d 256 -s 2 -g 8 -o "$work/r" -y 1 > "$work/r.out" 2>&1
check "resume picks step 3, the newest model+state pair, and says so" grep -q 'resumed from step 3' "$work/r.out"
check "resumed losses equal the uninterrupted run's, bit for bit, each step logged once" cmp -s <(cut -d, -f1-3 "$work/a/log.csv") <(cut -d, -f1-3 "$work/r/log.csv")
check "resumed final weights equal the uninterrupted run's" cmp -s "$work/a/model_00000006.bin" "$work/r/model_00000006.bin"
check "resumed samples equal the uninterrupted run's (sampler state restored)" cmp -s <(sed -n '/^---$/,/^---$/p' "$work/a.out" | tail -3) <(sed -n '/^---$/,/^---$/p' "$work/r.out" | tail -3)

# ---- resume exactly where a shard runs out: a 1000-token shard holds 7 batches of 129 tokens
mkdir -p "$work/small"
head -c 1050 data/tiny/tiny.txt > "$work/small/small.txt"
python3 data/prepare.py --text "$work/small/small.txt" --out "$work/small" --val-fraction 0.05 > /dev/null
small=(-i "$work/small/small_train.bin" -j "$tiny_val" -e l1c64h4 -V 256 -b 2 -t 64 -x 9 -v 0 --window 8)
$bin "${small[@]}" -n 7 -o "$work/s1" > /dev/null 2>&1
mkdir -p "$work/s2" && cp "$work/s1/model_00000007.bin" "$work/s1/state_00000007.bin" "$work/s1/log.csv" "$work/s2/"
$bin "${small[@]}" -o "$work/s2" -y 1 > "$work/s2.out" 2>&1
check "the small-shard run and its resume both logged 9 steps" test "$(wc -l < "$work/s1/log.csv")" -eq 10 -a "$(wc -l < "$work/s2/log.csv")" -eq 10
check "resume at the end of a shard wraps to the next batch and matches the uninterrupted run" cmp -s <(cut -d, -f1-2 "$work/s1/log.csv") <(cut -d, -f1-2 "$work/s2/log.csv")

# ---- gradient accumulation: 2 micro-batches of 2 give the gradient of one batch of 4
$bin "${common[@]}" -b 4 -x 2 -v 0 > "$work/big.out" 2>&1
$bin "${common[@]}" -b 2 -d 256 -x 2 -v 0 > "$work/acc.out" 2>&1
norm_big=$(grep -m1 '^step' "$work/big.out" | sed -E 's/.*norm ([0-9.]+).*/\1/')
norm_acc=$(grep -m1 '^step' "$work/acc.out" | sed -E 's/.*norm ([0-9.]+).*/\1/')
check "accumulated gradient norm $norm_acc equals the one-batch norm $norm_big (1e-4)" awk -v a="$norm_acc" -v b="$norm_big" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * b && b > 0) }'

# ---- sampling from a checkpoint prints text
$bin --generate 40 -e "$work/a/model_00000006.bin" -t 64 > "$work/gen.txt" 2>/dev/null
check "--generate 40 prints 40 bytes of text and a newline" test "$(wc -c < "$work/gen.txt")" -eq 41

$bin --generate 150 -e "$dir/dumps/rope_model.bin" > "$work/stream.txt" 2>/dev/null
check "a rotary window + sinks model streams 150 tokens past its maxT of 64 (rolling KV cache)" test "$(wc -c < "$work/stream.txt")" -eq 151

# ---- pattern flags on a checkpoint change only what they name
$bin -e "$work/a/model_00000006.bin" --sinks 4 -i "$tiny_train" -j "$tiny_val" -t 64 -x 0 > "$work/override.out" 2>&1
check "--sinks on a window-16 checkpoint keeps the window (window 16, sinks 4)" grep -q 'layer 0: window 16, sinks 4' "$work/override.out"

# ---- a per-layer pattern and rotary positions train too
$bin -i "$tiny_train" -j "$tiny_val" -e l3c64h4 -b 2 -t 64 -x 2 -v 0 --layer-windows 8,0,16 --sinks 1 --pos rope -o "$work/mix" > "$work/mix.out" 2>&1
check "a per-layer, rotary model trains and describes its layers" grep -q 'layer 1: full' "$work/mix.out"

# ---- bad input: one line naming the culprit, exit code 1, never a crash
bad() {  # bad "what" "expected words in the message" args...
    local what=$1 words=$2; shift 2
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -eq 1 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && printf '%s' "$err" | grep -q "^error: .*$words"; then
        pass "bad input: $what -> $err"
    else
        fail "bad input: $what (exit $rc): $err"
    fi
}
printf 'not a shard at all, not a shard at all, not a shard at all' > "$work/junk.bin"
head -c 2000 "$tiny_train" > "$work/truncated.bin"
python3 - "$work" "$tiny_train" <<'PY'
import struct, sys
work, shard = sys.argv[1], sys.argv[2]
data = bytearray(open(shard, 'rb').read())
data[0:4] = struct.pack('<i', 12345)
open(work + '/wrong_magic.bin', 'wb').write(data)
model = bytearray(open(work + '/a/model_00000006.bin', 'rb').read())
bad = bytearray(model); bad[4:8] = struct.pack('<i', 7)
open(work + '/wrong_version.bin', 'wb').write(bad)
open(work + '/short_model.bin', 'wb').write(model[:-100])
bad = bytearray(model); bad[0:4] = struct.pack('<i', 1)
open(work + '/wrong_model_magic.bin', 'wb').write(bad)
bad = bytearray(model); bad[16:20] = struct.pack('<i', 3)   # L = 3 no longer matches the data
open(work + '/wrong_sizes.bin', 'wb').write(bad)
bad = bytearray(model); bad[4 * 16:4 * 17] = struct.pack('<i', -5)   # pattern 0 window -5
open(work + '/bad_window_slot.bin', 'wb').write(bad)
PY
ck="$work/a/model_00000006.bin"
mkdir -p "$work/dir.bin" "$work/badstate"
: > "$work/empty.bin"
cp "$ck" "$work/badstate/model_00000006.bin"
cp "$ck" "$work/badstate/state_00000006.bin"   # a model where the state belongs
bad "missing train shard" "no token shard matches" $bin -i "$work/none_*.bin" -e l2c64h4
bad "truncated shard" "truncated" $bin -i "$work/truncated.bin" -j "$tiny_val" -V 256 -t 64
bad "shard with wrong magic" "magic 12345" $bin -i "$work/wrong_magic.bin" -j "$tiny_val" -V 256 -t 64
bad "junk as a shard" "truncated" $bin -i "$work/junk.bin" -j "$tiny_val" -V 256 -t 64
bad "checkpoint with wrong magic" "not a model checkpoint" $bin -e "$work/wrong_model_magic.bin" -i "$tiny_train" -j "$tiny_val"
bad "checkpoint with wrong version" "version 7" $bin -e "$work/wrong_version.bin" -i "$tiny_train" -j "$tiny_val"
bad "truncated checkpoint" "bytes, expected" $bin -e "$work/short_model.bin" -i "$tiny_train" -j "$tiny_val"
bad "checkpoint whose sizes disagree with its data" "bytes, expected" $bin -e "$work/wrong_sizes.bin" -i "$tiny_train" -j "$tiny_val"
bad "checkpoint with a negative window slot" "window must be >= 0" $bin -e "$work/bad_window_slot.bin" -i "$tiny_train" -j "$tiny_val"
bad "T above the model's maximum" "exceeds the model's maximum sequence length 64" $bin -e "$ck" -t 128 -i "$tiny_train" -j "$tiny_val"
bad "negative window" "window '-3'" $bin --window -3
bad "window that is not a number" "window 'wide'" $bin --window wide
bad "negative sinks" "sinks '-1'" $bin --sinks -1
bad "dilation 0" "dilation '0'" $bin --dilation 0
bad "lookahead on a causal model" "needs non-causal" $bin "${common[@]}" --lookahead 2
bad "causal 2" "expected 0 or 1" $bin --causal 2
bad "layer-windows of the wrong length" "3 values, the model has 2 layers" $bin -i "$tiny_train" -j "$tiny_val" -e l2c64h4 -t 64 --layer-windows 8,8,8
bad "window and layer-windows together" "drop --window" $bin --window 8 --layer-windows 8,8
bad "dilation without a window" "needs a window" $bin -i "$tiny_train" -j "$tiny_val" -e l1c64h4 -t 64 --dilation 4
bad "dilated keys without dilation" "need a dilation" $bin -i "$tiny_train" -j "$tiny_val" -e l1c64h4 -t 64 --window 8 --dilated-keys 3
bad "global position beyond maxT" "global position 500" $bin -i "$tiny_train" -j "$tiny_val" -e l1c64h4 -t 64 --global 500
bad "final lr fraction above 1" "must be in \[0, 1\]" $bin -q 7
bad "-y 2" "expected 0 or 1" $bin -y 2 -o "$work/a"
bad "B*T overflowing" "more than 2^30" $bin -b 65536 -t 65536
bad "a directory as the checkpoint" "not a regular file" $bin -e "$work/a/" -i "$tiny_train" -j "$tiny_val"
bad "a directory named .bin" "not a regular file" $bin -e "$work/dir.bin" -i "$tiny_train" -j "$tiny_val"
bad "missing checkpoint file" "No such file" $bin -e "$work/nope.bin" -i "$tiny_train" -j "$tiny_val"
bad "zero-byte checkpoint" "truncated" $bin -e "$work/empty.bin" -i "$tiny_train" -j "$tiny_val"
bad "zero-byte shard" "truncated" $bin -i "$work/empty.bin" -j "$tiny_val" -V 256 -t 64
bad "shard shorter than one batch" "fewer than one batch" $bin -i "$work/small/small_val.bin" -j "$tiny_val" -V 256 -t 64
bad "state file with the wrong magic" "not an optimizer state file" $bin "${common[@]}" -d 256 -o "$work/badstate" -y 1
bad "resume with another batch shape" "pass the same" $bin "${small[@]}" -b 1 -o "$work/s2" -y 1
bad "unknown flag" "unknown flag '--frobnicate'" $bin --frobnicate 1
bad "flag without a value" "needs a value" $bin -b
bad "total batch not a multiple of B*T" "multiple of B\*T" $bin "${common[@]}" -d 100
bad "resume without an output dir" "needs -o" $bin -y 1
bad "tokens beyond the model's vocabulary" "outside the model's vocabulary" $bin -i "$tiny_train" -j "$tiny_val" -e l1c64h4 -V 50 -t 64 -x 1

# ---- a checkpoint write killed at any moment leaves every finished checkpoint loadable
kill_dir=$work/kill
intact=1
for delay in 0.3 0.7 1.1 1.6; do
    $bin -i "$tiny_train" -j "$tiny_val" -e l4c128h4 -b 2 -t 64 -x 1000 -v 0 -n 1 -o "$kill_dir" -y 0 > /dev/null 2>&1 &
    pid=$!
    sleep $delay
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    for f in "$kill_dir"/model_*.bin; do
        [ -e "$f" ] || continue
        $bin --generate 1 -e "$f" -t 64 > /dev/null 2>&1 || { intact=0; echo "  unloadable after kill: $f"; }
    done
    rm -rf "$kill_dir"
done
check "checkpoints written every step stay loadable when the run is killed (4 kills)" test $intact -eq 1

# ---- the randomized full-vs-window experiment (scripts/experiment.sh) end to end, tiny: 2 pairs
exp_out=$work/experiment
RUNS=2 STEPS=4 MODEL=l1c64h2 B=2 T=64 WINDOW=16 DEVICE=cpu SEED=7 TRAIN="$tiny_train" VAL="$tiny_val" \
    OUT="$exp_out" PYTHON=${PYTHON:-python3} bash scripts/experiment.sh > "$work/experiment.out" 2>&1
check "experiment.sh runs 2 pairs of full and window and writes results.md" \
    bash -c "[ \$(tail -n +2 '$exp_out/runs/manifest.csv' | wc -l) -eq 4 ] && grep -q '^| final val loss | [0-9]' '$exp_out/results.md'"
check "the same master seed draws the same seeds and orders" \
    bash -c "RUNS=2 STEPS=1 MODEL=l1c64h2 B=2 T=64 WINDOW=16 DEVICE=cpu SEED=7 TRAIN='$tiny_train' VAL='$tiny_val' OUT='$work/experiment2' PYTHON=${PYTHON:-python3} bash scripts/experiment.sh > /dev/null 2>&1 && cmp -s <(cut -d, -f1-4 '$exp_out/runs/manifest.csv') <(cut -d, -f1-4 '$work/experiment2/runs/manifest.csv')"
err=$(RUNS=1 DEVICE=cpu bash scripts/experiment.sh 2>&1 >/dev/null)
check "experiment.sh RUNS=1: one line naming RUNS" bash -c "[ \$(printf '%s\n' \"$err\" | wc -l) -eq 1 ] && printf '%s' \"$err\" | grep -q 'RUNS=1'"
${PYTHON:-python3} scripts/experiment_stats.py --self-test > "$work/stats.out" 2>&1
rc=$?
check "the experiment's statistics match textbook t-distribution values ($(tail -n 1 "$work/stats.out"))" test $rc -eq 0

echo "test_cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
