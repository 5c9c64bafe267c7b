#!/usr/bin/env bash
# Replays every input the fuzzer ever crashed on (DIR: test/fuzz_regressions/, named
# <target>-<what>) through the libFuzzer harness, once each: an input that crashes again fails.
#   bash test/fuzz_replay.sh FUZZ_BINARY DIR
set -u
bin=${1:?usage: fuzz_replay.sh FUZZ_BINARY DIR}
dir=${2:?usage: fuzz_replay.sh FUZZ_BINARY DIR}
source test/lib.sh  # pass, fail, check, bad, finish, ...
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for f in "$dir"/*; do
    [ -f "$f" ] || continue
    case $(basename "$f") in README*) continue ;; esac
    timeout 60 "$bin" -timeout=10 -rss_limit_mb=2560 "$f" > "$out" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        pass "fuzz regression $(basename "$f") replays without a crash"
    else
        what=$(grep -m1 -E 'ERROR: |runtime error: |ALARM|out-of-memory' "$out" | sed -E 's/^==[0-9]+==//')
        fail "fuzz regression $(basename "$f") (exit $rc): ${what:-$(tail -n 1 "$out")}   replay: $bin $f"
    fi
done
finish fuzz_replay
