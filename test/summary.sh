#!/usr/bin/env bash
# Adds up the "N passed, M failed" lines of the test logs; a log without one crashed.
passed=0 failed=0
for log in "$@"; do
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -z "$line" ]; then echo "$log: no summary line (the test crashed)"; failed=$((failed + 1)); continue; fi
    p=$(echo "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    passed=$((passed + p)); failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
