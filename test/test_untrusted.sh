#!/usr/bin/env bash
# Crafted files and flags (issue 12, "Untrusted files and flags") against one trainer: each is
# refused in one line naming the file or flag, exit status 1, within 20 seconds, with no sanitizer
# report; the few legal ones run to a normal end. Run by make test against build/train_gpt_cpu_asan
# and ./train_gpt_cpu, by make test-gpu against ./train_gpt_window and ./train_gpt_full.
#   bash test/test_untrusted.sh TRAINER WORKDIR       (WORKDIR is emptied; test/untrusted_files.py
#                                                      writes the crafted files into it)
set -u
bin=${1:?usage: test_untrusted.sh TRAINER WORKDIR}
work=${2:?usage: test_untrusted.sh TRAINER WORKDIR}
[ -x "$bin" ] || { echo "error: test_untrusted.sh: '$bin' is not an executable (build it first)" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
source test/lib.sh  # pass, fail, check, bad, finish, ...
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# sanitized builds: leaks at exit are not what this tests; a report gets its own exit status
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:exitcode=87}

python3 data/prepare.py --text data/tiny/tiny.txt --out "$work/tiny" > /dev/null
train=$work/tiny/tiny_train.bin
val=$work/tiny/tiny_val.bin
python3 test/untrusted_files.py "$work" "$train" "$val" > /dev/null || { echo "error: test/untrusted_files.py failed" >&2; exit 1; }
data=(-i "$train" -j "$val")
new=("${data[@]}" -e l1c64h1 -V 256 -b 2 -t 16 -x 1 -v 0)   # a tiny new model (a head of 64), one step

# mentions TEXT WORD: WORD (a flag or a path) appears in TEXT, not as part of a longer word or flag
mentions() {
    local rest=$1 word=$2 before after
    while [[ $rest == *"$word"* ]]; do
        before=${rest%%"$word"*}
        after=${rest#*"$word"}
        if [[ ! ${before: -1} =~ [A-Za-z0-9_-] ]] && [[ ! ${after:0:1} =~ [A-Za-z0-9_-] ]]; then return 0; fi
        rest=$after
    done
    return 1
}

# run ARGS...: the trainer under timeout 20, stdout in $out, stderr in $err, exit status in $rc
run() {
    timeout 20 "$bin" "$@" > "$work/out" 2> "$work/err"
    rc=$?
    out=$(cat "$work/out")
    err=$(cat "$work/err")
}

sanitizer_report() { printf '%s' "$err" | grep -qE 'Sanitizer|runtime error:'; }

# refused "what" "WORD1[|WORD2...]" ARGS...: exit 1 and stderr exactly one line "error: ..." that
# mentions every WORD
refused() {
    local what=$1 words=$2 word missing=""
    shift 2
    run "$@"
    local IFS='|'
    for word in $words; do mentions "$err" "$word" || missing="$missing '$word'"; done
    unset IFS
    if [ $rc -eq 1 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ $err == "error: "* ]] && [ -z "$missing" ] && ! sanitizer_report; then
        pass "$what -> $err"
    else
        local why="exit $rc"
        [ $rc -eq 124 ] && why="timed out after 20 s"
        [ -n "$missing" ] && why="$why, the message does not name$missing"
        fail "$what ($why): $(printf '%s' "$err" | head -c 2000)"
    fi
}

# finishes "what" ARGS...: exit 0 within the timeout, no error and no sanitizer report
finishes() {
    local what=$1
    shift
    run "$@"
    if [ $rc -eq 0 ] && ! printf '%s' "$err" | grep -q '^error: ' && ! sanitizer_report; then
        pass "$what"
    else
        local why="exit $rc"
        [ $rc -eq 124 ] && why="timed out after 20 s"
        fail "$what ($why): $(printf '%s' "$err" | head -c 2000)"
    fi
}

# ---- checkpoints with one header field changed
ck=$work/window_huge.bin
refused "checkpoint with window 2^31-1 and 2 sinks, --generate 20" "$ck" --generate 20 -e "$ck" -t 16
ck=$work/wrapped_sizes.bin
refused "checkpoint L=4 C=619920243 NH=1 maxT=468952 whose parameter count wraps to its 454632 bytes, --generate 10" \
    "$ck" --generate 10 -e "$ck" -t 16
ck=$work/lookahead_2e30.bin
if [[ $(basename "$bin") == *train_gpt_full* ]]; then   # dense causal only: the pattern is refused
    refused "checkpoint with lookahead 2^30 (non-causal), train_gpt_full: refused" "$ck" --eval -e "$ck" -j "$val" -b 2 -t 64 -m 2
else
    finishes "checkpoint with lookahead 2^30 (non-causal): --eval ends normally" --eval -e "$ck" -j "$val" -b 2 -t 64 -m 2
    finishes "checkpoint with lookahead 2^30 (non-causal): a 1-step run ends normally" -e "$ck" "${data[@]}" -b 2 -t 64 -x 1 -v 0
fi
ck=$work/nan_weight.bin
refused "checkpoint with a NaN weight (qkvw[0]), training" "$ck|qkvw" -e "$ck" "${data[@]}" -b 2 -t 16 -x 1 -v 0
refused "checkpoint with a NaN weight (qkvw[0]), --generate 5" "$ck|qkvw" --generate 5 -e "$ck" -t 16

# ---- pattern flags past what any sum of them can hold
refused "--window 1 --sinks 2147483647" "--sinks" "${new[@]}" --window 1 --sinks 2147483647
refused "--window 2000000000" "--window" "${new[@]}" --window 2000000000
refused "--causal 0 --window 4 --lookahead 2147483647" "--lookahead" "${new[@]}" --causal 0 --window 4 --lookahead 2147483647
refused "--dilation 2147483647 --window 4" "--dilation" "${new[@]}" --dilation 2147483647 --window 4
refused "--window 4 --dilation 2 --dilated-keys 2000000000" "--dilated-keys" "${new[@]}" --window 4 --dilation 2 --dilated-keys 2000000000

# ---- model descriptors past MAX_LAYERS
refused "-e l200c64h4 (200 layers)" "-e|l200c64h4" "${data[@]}" -e l200c64h4 -V 256 -b 2 -t 16 -x 1 -v 0
refused "-e d129 (129 layers)" "-e|d129" "${data[@]}" -e d129 -V 256 -b 2 -t 16 -x 1 -v 0

# ---- optimizer states beside model_00000005.bin
for kind in "neg:step -2" "max:step 2^31-1" "nan:a NaN in the first moments"; do
    d=$work/state_${kind%%:*}
    refused "resume from a state with ${kind#*:}" "$d/state_00000005.bin" "${data[@]}" -b 2 -t 16 -x 10 -v 0 -o "$d" -y 1
done
d=$work/state_done
run "${data[@]}" -b 2 -t 16 -x 5 -v 0 -o "$d" -y 1
if [ $rc -eq 0 ] && printf '%s' "$out" | grep -q "nothing left" && ! sanitizer_report && [ ! -e "$d/model_00000006.bin" ]; then
    pass "-y 1 with the newest checkpoint at the last step (-x 5): exit 0, nothing left to train"
else
    fail "-y 1 with the newest checkpoint at the last step (-x 5) (exit $rc, no 'nothing left' on stdout?): $(printf '%s' "$err" | head -c 2000)"
fi

# ---- training that diverges writes no model
d=$work/diverge
run "${new[@]}" -l 1e30 -u 0 -x 30 -o "$d"
models=$(ls "$d"/model_*.bin 2>/dev/null | wc -l)
if [ $rc -eq 1 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ $err == "error: "* ]] && printf '%s' "$err" | grep -qiE 'finite|nan|inf' &&
   [ "$models" -eq 0 ] && ! sanitizer_report; then
    pass "-l 1e30 diverges: exit 1, no model written -> $err"
else
    fail "-l 1e30 diverges (exit $rc, $models model files in $d): $(printf '%s' "$err" | head -c 2000)"
fi

# ---- flags with a value no run can use
refused "-r 0" "-r" "${new[@]}" -r 0
refused "-o ''" "-o" "${new[@]}" -o ''
refused "--global 1,,2" "--global" "${new[@]}" --global 1,,2
refused "--global 3,1" "--global" "${new[@]}" --global 3,1
refused "-z 2" "-z" "${new[@]}" -z 2
refused "--nccl-init udp://h:1" "--nccl-init" "${new[@]}" --nccl-init udp://h:1
refused "--nccl-timeout 1e30" "--nccl-timeout" "${new[@]}" --nccl-timeout 1e30

# ---- a token outside the vocabulary at the very end of a shard: named before any step
for which in train val; do
    bad=$work/${which}_bad_token.bin
    if [ $which = train ]; then args=(-i "$bad" -j "$val"); else args=(-i "$train" -j "$bad"); fi
    refused "token 300 at the end of the $which shard, V=256" "$bad" "${args[@]}" -e l1c64h1 -V 256 -b 2 -t 16 -x 2 -v 1
    if printf '%s' "$out" | grep -q '^step'; then fail "token 300 at the end of the $which shard: a step ran before the refusal"; fi
done

# ---- -h: usage on stdout, nothing on stderr
run -h
if [ $rc -eq 0 ] && [ -z "$err" ] && printf '%s' "$out" | grep -q '^usage:'; then
    pass "-h prints the usage on stdout, exit 0, nothing on stderr"
else
    fail "-h (exit $rc, stderr: $(printf '%s' "$err" | head -c 300))"
fi

finish "test_untrusted ($bin)"
