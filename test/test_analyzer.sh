#!/usr/bin/env bash
# scripts/analyze_pattern.py against the CPU trainer: its allowed-pair count for every SPEC §1
# example and more patterns must be the trainer's own (test/pattern_pairs), its receptive field of a
# plain band must be L*(W-1), and bad input gets one line.
#   bash test/test_analyzer.sh BUILD_DIR        (test/pattern_pairs built by make)
set -u
dir=${1:?usage: test_analyzer.sh BUILD_DIR}
work=$dir/analyzer
rm -rf "$work" && mkdir -p "$work"
py=${REF_PYTHON:-/usr/bin/python3}  # the analyzer needs numpy, which the oracle's python has
passed=0 failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

# same T W S R d K CAUSAL [GLOBAL ...]: the analyzer's pair count equals the trainer's
same() {
    local T=$1 W=$2 S=$3 R=$4 d=$5 K=$6 causal=$7; shift 7
    local globals; globals=$(IFS=,; echo "$*")
    local want got
    want=$(./test/pattern_pairs "$T" "$W" "$S" "$R" "$d" "$K" "$causal" "$@")
    got=$("$py" scripts/analyze_pattern.py -T "$T" -W "$W" -S "$S" --lookahead "$R" --dilation "$d" --dilated-keys "$K" \
          --causal "$causal" ${globals:+--global "$globals"} -L 1 --json | "$py" -c 'import json, sys; print(json.load(sys.stdin)["pairs"])')
    if [ -n "$want" ] && [ "$want" = "$got" ]; then pass "T=$T W=$W S=$S R=$R d=$d K=$K causal=$causal G={$globals}: $got pairs, as the trainer counts"
    else fail "T=$T W=$W S=$S R=$R d=$d K=$K causal=$causal G={$globals}: analyzer $got, trainer $want"; fi
}
same 6 3 0 0 1 0 1                 # SPEC §1: band-diagonal, row i attends i-2..i
same 8 3 0 0 1 0 0 0               # SPEC §1: non-causal, G={0}
same 300 64 16 0 1 0 1             # SPEC §1: StreamingLLM
same 500 96 0 0 4 0 1              # SPEC §1: every 4th token before the window
same 60 5 1 2 1 0 0 20 33          # non-causal with lookahead, a sink and globals
same 50 6 0 0 3 3 1                # dilation with K dilated keys
same 100 8 3 0 1 0 1 10 40         # sinks and globals, causal
same 200 0 0 0 1 0 1               # full causal
same 100 0 0 3 1 0 0               # full non-causal
RANDOM=7                           # a few more, drawn from a fixed seed
for n in 1 2 3 4 5 6; do
    T=$(( RANDOM % 300 + 1 )) causal=$(( RANDOM % 2 ))
    W=$(( RANDOM % 40 )) S=$(( RANDOM % 5 )) d=$(( RANDOM % 4 + 1 )) K=$(( RANDOM % 4 ))
    R=0; [ $causal = 0 ] && R=$(( RANDOM % 6 ))
    same "$T" "$W" "$S" "$R" "$d" "$K" "$causal" $(( RANDOM % T ))
done

rf=$("$py" scripts/analyze_pattern.py -T 1000 -W 50 -L 5 --json | "$py" -c 'import json, sys; print(" ".join(str(x["contiguous"]) for x in json.load(sys.stdin)["receptive_field"]))')
if [ "$rf" = "49 98 147 196 245" ]; then pass "a band of 50 reaches L*(W-1) back through L = 1..5 layers: $rf"
else fail "band receptive field by depth: $rf, expected 49 98 147 196 245"; fi

bad() {  # bad "what" args...: one line naming the culprit, exit 1
    local what=$1; shift
    local err rc
    err=$("$py" scripts/analyze_pattern.py "$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -eq 1 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && printf '%s' "$err" | grep -q '^error: '; then pass "bad input: $what -> $err"
    else fail "bad input: $what (exit $rc): $err"; fi
}
bad "T = 0" -T 0
bad "a global position past T" -T 10 --global 3,12
bad "lookahead in a causal pattern" -T 10 --lookahead 2
bad "dilation 0" -T 10 -W 4 --dilation 0

echo "test_analyzer: $passed passed, $failed failed"
[ $failed -eq 0 ]
