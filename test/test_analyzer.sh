#!/usr/bin/env bash
# scripts/analyze_pattern.py against the CPU trainer: its allowed-pair count for every SPEC §1
# example and more patterns must be the trainer's own (test/pattern_pairs, built from
# train_gpt_cpu.c with -DTESTING), its receptive field of a plain band must be L*(W-1) clamped to
# the sequence, its prediction must give back the measurement it was taken from, and bad input
# gets one line and exit 1; the PyTorch twin's attention mask is the trainer's on the same patterns. A few seconds.
#   bash test/test_analyzer.sh BUILD_DIR        (test/pattern_pairs built by make)
set -u
dir=${1:?usage: test_analyzer.sh BUILD_DIR}
work=$dir/analyzer
rm -rf "$work" && mkdir -p "$work"
py=${PYTHON:-python3}                    # the analyzer needs only the standard library
plot_py=${REF_PYTHON:-/usr/bin/python3}  # --png needs matplotlib, which Debian's python3 has
analyzer=scripts/analyze_pattern.py
source test/lib.sh  # pass, fail, check, bad, finish, ...
# jget EXPR FILE: a value of the analyzer's --json output (r is the object)
jget() { "$py" -c "import json, sys; r = json.load(open(sys.argv[1])); print($1)" "$2"; }

# ---- the pair count equals the trainer's: same T W S R d K CAUSAL [GLOBAL ...] [-- WANT]
same() {
    local T=$1 W=$2 S=$3 R=$4 d=$5 K=$6 causal=$7; shift 7
    local g=() want_spec=""
    while [ $# -gt 0 ]; do if [ "$1" = "--" ]; then want_spec=$2; break; fi; g+=("$1"); shift; done
    local globals; globals=$(IFS=,; echo "${g[*]}")
    local want got what="T=$T W=$W S=$S R=$R d=$d K=$K causal=$causal G={$globals}"
    want=$(./test/pattern_pairs "$T" "$W" "$S" "$R" "$d" "$K" "$causal" "${g[@]}" 2>&1)
    echo "$T $W $S $R $d $K $causal $want ${globals:--}" >> "$work/cases.txt"   # for the twin's mask below
    "$py" $analyzer -T "$T" -W "$W" -S "$S" --lookahead "$R" --dilation "$d" --dilated-keys "$K" --causal "$causal" \
        ${globals:+--global "$globals"} -L 1 --json > "$work/same.json" 2> "$work/same.err"
    got=$(jget 'r["pairs"]' "$work/same.json" 2>/dev/null)
    if [ -n "$want_spec" ] && [ "$want" != "$want_spec" ]; then fail "$what: the trainer counts $want, SPEC §1 says $want_spec"
    elif [ -n "$got" ] && [ "$want" = "$got" ]; then pass "$what: $got pairs, as the trainer counts${want_spec:+ and SPEC §1 says}"
    else fail "$what: analyzer '$got' $(head -c 200 "$work/same.err"), trainer '$want'"; fi
}
same 6 3 0 0 1 0 1 -- 15            # SPEC §1: band-diagonal, row i attends i-2..i: 1+2+3*4
same 8 3 0 0 1 0 0 0 -- 33          # SPEC §1: non-causal, G={0}: row 0 all 8, rows 1..7 {0} u [i-2, i]
same 300 64 16 0 1 0 1              # SPEC §1: StreamingLLM, W=64 S=16
same 500 96 0 0 4 0 1               # SPEC §1: every 4th token before the window (seeds/001)
same 120 7 0 3 1 0 0                # non-causal band with lookahead
same 60 5 1 2 1 0 0 20 33           # non-causal with lookahead, a sink and globals
same 90 6 2 1 3 4 0 40              # non-causal with dilation, lookahead, sinks, a global
same 50 6 0 0 3 3 1                 # dilation with K = 3 dilated keys (offsets 6, 9, 12)
same 200 10 0 0 4 5 1               # dilation with K > 0, W not a multiple of d
same 100 8 3 0 1 0 1 10 40 41       # sinks and globals, causal
same 100 8 3 0 5 2 1 2 50 90        # sinks, globals and dilation together (a sink and a global on dilated keys)
same 200 0 0 0 1 0 1 -- 20100       # W = 0: full causal, T(T+1)/2
same 100 0 0 0 1 0 0 -- 5050        # W = 0 non-causal without lookahead: still the lower triangle (SPEC §1 literally)
same 100 0 0 99 1 0 0 -- 10000      # W = 0 non-causal with lookahead T-1: full non-causal, T^2
same 40 0 0 0 1 0 0 0 -- 859        # W = 0 non-causal, G={0}: row 0 sees all 40, the others 0..i
RANDOM=7                            # more patterns, drawn from a fixed seed
for n in 1 2 3 4 5 6 7 8; do
    T=$(( RANDOM % 300 + 1 )) causal=$(( RANDOM % 2 )) W=$(( RANDOM % 40 )) S=$(( RANDOM % 5 ))
    d=1 K=0 R=0
    [ "$W" -gt 0 ] && d=$(( RANDOM % 4 + 1 ))
    [ "$d" -gt 1 ] && K=$(( RANDOM % 4 ))
    [ "$causal" = 0 ] && R=$(( RANDOM % 6 ))
    g1=$(( RANDOM % T )) g2=$(( RANDOM % T ))
    [ "$g2" = "$g1" ] && g2=
    same "$T" "$W" "$S" "$R" "$d" "$K" "$causal" "$g1" $g2
done

# ---- the PyTorch twin's mask (scripts/train_torch_twin.py: FlexAttention's mask_mod and the CPU
# stand-in) on every pattern above: its pair count is the trainer's, and every element is the
# analyzer's brute-force allowed(i, j)
if "$plot_py" -c 'import torch' 2>/dev/null; then
    "$plot_py" - "$work/cases.txt" > "$work/twin.out" 2>&1 <<'PY'
import sys
sys.path.insert(0, "scripts")
import torch
import analyze_pattern
import train_torch_twin
bad = 0
lines = open(sys.argv[1]).read().split("\n")
for line in filter(None, lines):
    T, W, S, R, d, K, causal, want, G = line.split()
    T, W, S, R, d, K, causal, want = map(int, (T, W, S, R, d, K, causal, want))
    G = [] if G == "-" else [int(g) for g in G.split(",")]
    p = analyze_pattern.pattern(W, S, R, d, K, causal, G)
    mask = train_torch_twin.dense_mask(T, p, torch.device("cpu"))
    ref = torch.tensor([[analyze_pattern.allowed(p, i, j) for j in range(T)] for i in range(T)])
    if int(mask.sum()) != want or not torch.equal(mask, ref):
        bad += 1
        print(f"differs: {line}: the twin counts {int(mask.sum())}, the trainer {want}")
print(f"{len(list(filter(None, lines)))} patterns, {bad} differ")
PY
    if [ $? = 0 ] && grep -q " 0 differ" "$work/twin.out"; then pass "the PyTorch twin's mask on the $(wc -l < "$work/cases.txt") patterns above: the trainer's pair counts, allowed(i, j) element by element"
    else fail "the PyTorch twin's mask: $(tail -3 "$work/twin.out" | tr '\n' ' ')"; fi
else
    echo "SKIP the PyTorch twin's mask: $plot_py has no torch"
fi

out=$("$py" $analyzer --self-test 2>&1)
check "the fast count and receptive field equal a brute-force allowed() on random small patterns: $out" \
    grep -q '^self-test: .* equal the brute-force' <<< "$out"

# ---- receptive field by depth: a plain band reaches l*(W-1) back, clamped to T-1
rf() { "$py" $analyzer "$@" --json > "$work/rf.json" && jget "$RF" "$work/rf.json"; }
RF='" ".join(str(x["back"]) for x in r["receptive_field"])'
check "a causal band of 50 at T=1000 reaches 49 98 147 196 245 back through 1..5 layers" \
    test "$(rf -T 1000 -W 50 -L 5)" = "49 98 147 196 245"
check "a causal band of 30 at T=100 reaches 29 58 87 99 99 back (clamped to T-1)" \
    test "$(rf -T 100 -W 30 -L 5)" = "29 58 87 99 99"
RF='" ".join(str(x["back"]) + "/" + str(x["contiguous_back"]) + "/" + str(x["formula_back"]) for x in r["receptive_field"])'
check "band: farthest, every position and formula agree at every depth (W=50, L=5)" \
    test "$(rf -T 1000 -W 50 -L 5)" = "49/49/49 98/98/98 147/147/147 196/196/196 245/245/245"
RF='" ".join(str(x["back"]) + "," + str(x["forward"]) for x in r["receptive_field"])'
check "non-causal band W=10 R=3 from query 100: l*(W-1) back, l*R forward" \
    test "$(rf -T 200 -W 10 --causal 0 -R 3 --query 100 -L 4)" = "9,3 18,6 27,9 36,12"
RF='" ".join(str(x["positions"]) for x in r["receptive_field"])'
check "window 256 + 4 sinks at T=4096: 260 positions through one layer, 255 more per layer" \
    test "$(rf -T 4096 -W 256 -S 4 -L 3)" = "260 515 770"
check "--layer-windows 4,0: the full second layer reaches every position at depth 2" \
    test "$(rf -T 64 --layer-windows 4,0)" = "4 64"

# ---- the text report: counts, FLOPs, memory, and a prediction that names its source
"$py" $analyzer -T 4096 -W 256 -S 4 -L 12 --heads 12 -D 64 -B 8 > "$work/report.txt" 2>&1
check "the report gives P = 1,031,290 of 8,390,656 (W=256 S=4 T=4096)" grep -q 'allowed pairs P per batch and head: 1,031,290 of 8,390,656' "$work/report.txt"
check "the report names the measured row its prediction uses and says it is a prediction" \
    grep -q 'rates from bench/attention_compare_h200.csv row T=4096 B=8: streaming W=256 S=4' "$work/report.txt"
check "the report prints the receptive field table up to 12 layers" grep -qE '^ +12 +3,065 ' "$work/report.txt"
"$py" $analyzer -T 4096 -W 256 -S 4 -L 1 --heads 12 -D 64 -B 8 --json > "$work/pred.json"
pred=$(jget '"%.4f %.4f" % (r["prediction"]["fwd_ms"], r["prediction"]["dense_causal"]["fwd_ms"])' "$work/pred.json")
meas=$(awk -F, '$1 == 4096 { printf "%.4f %.4f", $8, $7 }' bench/attention_compare_h200.csv)
check "for the measured case (T=4096 B=8 W=256 S=4, one layer) the prediction gives back the measured ms: $pred vs $meas" \
    awk -v a="$pred" -v b="$meas" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(y[1] > 0 && (x[1] - y[1])^2 < (0.01 * y[1])^2 && (x[2] - y[2])^2 < (0.01 * y[2])^2) }'
check "FLOPs: forward = 4*P*D*B*NH, forward+backward = 3.5x" \
    test "$(jget '"%d %d" % (r["flops"]["fwd"], r["flops"]["fwdbwd"])' "$work/pred.json")" = "$((4 * 1031290 * 64 * 96)) $((14 * 1031290 * 64 * 96))"
"$py" $analyzer -T 500 -W 96 --dilation 4 -L 2 > "$work/dilated.txt" 2>&1
check "a dilated pattern reaching 202 back is predicted from a row that ran version 5 (dilated64 at T=1024, reach 256; seeds001 at T=1024 reaches 464 and splits), with a note" \
    bash -c "grep -q 'rates from bench/attention_general_vs_flex.md row 12x64 dilated64 T=1024 ' '$work/dilated.txt' &&
             grep -q 'note: layers on the general path.*rates of version 5' '$work/dilated.txt' && grep -qE 'forward\+backward [0-9.]+ ms' '$work/dilated.txt'"
"$py" $analyzer -T 8192 -W 96 --dilation 4 -L 2 > "$work/dilated_split.txt" 2>&1
check "at T=8192 (reach 4048) from a row where the split ran (seeds001 at T=1024..16384), as the trainers dispatch" \
    bash -c "grep -qE 'rates from bench/attention_general_vs_flex.md row 12x64 seeds001 T=(1024|2048|4096|16384) ' '$work/dilated_split.txt' &&
             grep -q 'note: dilated layers whose keys reach 448' '$work/dilated_split.txt'"
"$py" $analyzer -T 3000 -W 128 -R 128 --causal 0 --global 0,700,1400 -L 2 > "$work/globals.txt" 2>&1
check "a non-causal pattern with globals at T=3000 runs version 7, whose rates the table lacks: predicted from the longformer rows, with a note saying so" \
    bash -c "grep -qE 'rates from bench/attention_general_vs_flex.md row 12x64 longformer T=(1024|2048|4096|16384) ' '$work/globals.txt' &&
             grep -q 'note: non-causal layers with global positions and no dilation run version 7 at T >= 2048' '$work/globals.txt'"
"$py" $analyzer -T 3000 -W 128 --global 0,700,1400 -L 2 > "$work/globals_causal.txt" 2>&1
"$py" $analyzer -T 1024 -W 128 -R 128 --causal 0 --global 0,700 -L 2 > "$work/globals_short.txt" 2>&1
check "no version 7 note where the trainers keep version 5: causal globals (T=3000), non-causal globals at T=1024" \
    bash -c "grep -q 'rates from' '$work/globals_causal.txt' && grep -q 'rates from' '$work/globals_short.txt' &&
             ! grep -q 'run version 7' '$work/globals_causal.txt' '$work/globals_short.txt'"

# ---- the picture: written with matplotlib, skipped with a note without it
if "$plot_py" -c 'import matplotlib' 2>/dev/null; then
    "$plot_py" $analyzer -T 300 -W 64 -S 16 -L 1 --png "$work/mask.png" > "$work/png.out" 2>&1
    check "--png writes the mask (T=300)" test -s "$work/mask.png"
    "$plot_py" $analyzer -T 5000 -W 96 --dilation 4 --dilated-keys 8 --global 2500 -L 1 --png "$work/zoom.png" --zoom 2400:2700 > "$work/zoom.out" 2>&1
    check "--png --zoom 2400:2700 at T=5000 writes the zoomed mask" test -s "$work/zoom.png"
else
    echo "SKIP --png: $plot_py has no matplotlib"
fi
"$py" -c 'import runpy, sys; sys.modules["matplotlib"] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")' \
    $analyzer -T 50 -W 8 -L 1 --png "$work/none.png" > "$work/none.out" 2>&1
check "without matplotlib --png is skipped with a note, exit 0" \
    bash -c "[ $? -eq 0 ] && grep -q '^note: matplotlib is missing' '$work/none.out' && [ ! -e '$work/none.png' ]"

# ---- bad input: one line naming the culprit, exit 1
bad_flags() { local what=$1; shift; bad "$what" "" "$py" $analyzer "$@"; }  # bad "what" args...
bad_flags "T = 0" -T 0
bad_flags "T not a number" -T abc
bad_flags "an unknown flag" -T 10 --windw 3
bad_flags "no -T" -W 4
bad_flags "a global position past T" -T 10 --global 3,12
bad_flags "a repeated global position" -T 10 --global 3,3
bad_flags "lookahead in a causal pattern" -T 10 --lookahead 2
bad_flags "dilation 0" -T 10 -W 4 --dilation 0
bad_flags "dilation without a window" -T 10 --dilation 2
bad_flags "dilated keys without dilation" -T 10 -W 4 --dilated-keys 3
bad_flags "causal 2" -T 10 --causal 2
bad_flags "--layer-windows against -L" -T 10 --layer-windows 4,4 -L 3
bad_flags "--zoom past T" -T 10 --zoom 5:20
bad_flags "--query past T" -T 10 --query 10
check "the trainer refuses what the analyzer refuses (lookahead in a causal pattern)" \
    bash -c '! ./test/pattern_pairs 10 3 0 2 1 0 1 > /dev/null 2>&1'

finish test_analyzer
