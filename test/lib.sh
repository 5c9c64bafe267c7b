# Shell helpers of the test and bench scripts, sourced by them (`source test/lib.sh`, from the
# repository root). A test script counts with pass/fail/check and ends with `finish NAME`, whose
# line `NAME: N passed, M failed` test/summary.sh adds up.

passed=0 failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

# bad "what" "expected words in the message" command...: the command must refuse in exactly one
# line on stderr, `error: ...` with the words in it, exit status 1 (never a crash or a silent 0)
bad() {
    local what=$1 words=$2; shift 2
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -eq 1 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && printf '%s' "$err" | grep -q "^error: .*$words"; then
        pass "bad input: $what -> $err"
    else
        fail "bad input: $what (exit $rc): $err"
    fi
}

# one_line ERR WORDS: ERR (captured stderr) is one line holding WORDS
one_line() { [ "$(printf '%s\n' "$1" | wc -l)" -eq 1 ] && printf '%s' "$1" | grep -q -- "$2"; }

# within A B TOL: |A - B| <= TOL * |B|, both numbers present
within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b; exit !(a != "" && b != "" && d <= t * b) }'; }

# the training losses of a run's log.csv, one per line
losses() { cut -d, -f2 "$1/log.csv" | tail -n +2; }

# worst_loss_diff DIR1 DIR2 N: the worst relative difference of two runs' losses, step by step,
# or 1 when they do not both have N steps
worst_loss_diff() {
    paste -d, <(losses "$1") <(losses "$2") |
        awk -F, -v want="$3" 'NF == 2 && $1 > 0 { d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > w) w = d; n++ }
                              END { if (n != want) print 1; else printf "%.2e", w }'
}

# median of the numbers on stdin (mean of the middle two for an even count); empty if none
median() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# step_field_median LOG F SKIP: the median of field F (split at '|': 5 "X ms", 6 "X tok/s", 7 "MFU X%")
# over a trainer's step lines after the first SKIP
step_field_median() {
    awk -F'|' -v f="$2" -v skip="$3" '/^step +[0-9]+\/[0-9]+ \|/ { n++; if (n > skip) { v = $f; gsub(/[^0-9.eE+-]/, "", v); print v } }' "$1" | median
}

# finish NAME: the summary line; the exit status says whether anything failed
finish() { echo "$1: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; }
