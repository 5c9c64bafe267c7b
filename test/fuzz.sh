#!/usr/bin/env bash
# Runs the libFuzzer harness (test/fuzz_trainer.c) on each of its four targets, SECONDS in all
# (the targets split them, FUZZ_JOBS at a time: default the number of cores, at most 4).
#   bash test/fuzz.sh FUZZ_BINARY DIR SECONDS      (DIR/seeds/<target>: test/fuzz_seeds.py)
# Each target keeps its corpus in DIR/corpus/<target> (it grows from run to run) and its log in
# DIR/<target>.log; a crash, timeout or out-of-memory input lands in DIR as <target>-crash-<sha1>
# (or -timeout-, -oom-) and fails that target. Keep it: copy it to test/fuzz_regressions/ (make test
# replays every file there).
set -u
bin=${1:?usage: fuzz.sh FUZZ_BINARY DIR SECONDS}
dir=${2:?usage: fuzz.sh FUZZ_BINARY DIR SECONDS}
seconds=${3:?usage: fuzz.sh FUZZ_BINARY DIR SECONDS}
targets=(checkpoint state shard flags)
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -gt ${#targets[@]} ] && jobs=${#targets[@]}
[ "$jobs" -lt 1 ] && jobs=1
waves=$(( (${#targets[@]} + jobs - 1) / jobs ))
per=$(( seconds / waves ))
[ $per -lt 1 ] && per=1
source test/lib.sh  # pass, fail, check, bad, finish, ...
mkdir -p "$dir"
echo "fuzz: ${#targets[@]} targets, $jobs at a time, $per s each (${seconds} s in all)"

run_target() {  # one target in the background; its exit status in DIR/<target>.rc
    local t=$1
    mkdir -p "$dir/corpus/$t" "$dir/seeds/$t"
    (
        FUZZ_TARGET=$t timeout $((per + 120)) "$bin" "$dir/corpus/$t" "$dir/seeds/$t" test/fuzz_regressions \
            -max_total_time=$per -max_len=65536 -timeout=10 -rss_limit_mb=2560 -close_fd_mask=3 \
            -print_final_stats=1 -artifact_prefix="$dir/$t-" > "$dir/$t.log" 2>&1
        echo $? > "$dir/$t.rc"
    ) &
}

for ((w = 0; w < waves; w++)); do
    for ((k = w * jobs; k < (w + 1) * jobs && k < ${#targets[@]}; k++)); do
        t=${targets[$k]}
        rm -f "$dir/$t.rc"
        ls "$dir/$t"-{crash,timeout,oom,leak}-* 2>/dev/null > "$dir/$t.before"
        run_target "$t"
    done
    wait
done

for t in "${targets[@]}"; do
    log=$dir/$t.log
    rc=$(cat "$dir/$t.rc" 2>/dev/null || echo "?")
    runs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    speed=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    corpus=$(ls "$dir/corpus/$t" | wc -l)
    found=$(comm -13 "$dir/$t.before" <(ls "$dir/$t"-{crash,timeout,oom,leak}-* 2>/dev/null))
    if [ "$rc" = 0 ] && [ -z "$found" ]; then
        pass "fuzz $t: $per s, ${runs:-?} inputs (${speed:-?} exec/s), corpus $corpus files, no crash"
    else
        what=$(grep -m1 -E 'ERROR: |runtime error: |Sanitizer|ALARM|out-of-memory' "$log" | sed -E 's/^==[0-9]+==//')
        fail "fuzz $t (exit $rc): ${what:-see $log}"
        for f in $found; do
            echo "  input: $f   replay: $bin $f   keep: cp $f test/fuzz_regressions/"
        done
    fi
    rm -f "$dir/$t.before" "$dir/$t.rc"
done
finish fuzz
