#!/usr/bin/env bash
# End-to-end GPT-2 d12 training throughput on one GPU: this project's CUDA trainers against the
# PyTorch twin (scripts/train_torch_twin.py: torch.compile, bf16 autocast, fused AdamW, SDPA for
# full attention, FlexAttention with the same mask for every other pattern), at T = 1024, 4096,
# 16384 with B*T = 32768 tokens per step, full causal and window 256 with 4 sinks; on request
# (ATTNS) also seeds/001's dilated band (`dilated`: W=96, every 4th key beyond it) and the
# Longformer pattern (`longformer`: non-causal W = R = 256 with 16 global positions, T/16 apart;
# an encoder's pattern, trained here on the same next-token loss, which it can see: a throughput
# figure only). Writes bench/train_vs_torch.md.
#
#   bash scripts/bench_train.sh                 # on the GPU machine, from anywhere
#   TS="1024 4096" bash scripts/bench_train.sh  # a subset; KEEP=1 adds to the rows of an earlier run
#
# Settings (environment): TS, ATTNS ("full window"; also dilated, longformer), TOKENS (32768), STEPS (12), SKIP (3 steps
# left out of the medians), WINDOW (256), SINKS (4), MODEL (d12), VOCAB (50257), PYTHON (python3,
# the one with PyTorch 2.x), RUN_TIMEOUT (seconds per run, 420), MD (output file), LOGS (run logs,
# build/bench_train), KEEP (1: keep the rows already in LOGS/rows.md), NO_BUILD (1: use the
# binaries as they are).
#
# A run that fails or times out puts its error into its table row; the other runs go on. The
# table is rewritten after every run, so an interrupted benchmark still leaves the rows it
# finished. Time: the CUDA builds take a minute or two, each trainer run seconds, each twin run
# about a minute (mostly torch.compile; Inductor's cache in /tmp makes later runs faster).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

TS=${TS:-"1024 4096 16384"}
ATTNS=${ATTNS:-"full window"}
TOKENS=${TOKENS:-32768}
STEPS=${STEPS:-12}
SKIP=${SKIP:-3}
WINDOW=${WINDOW:-256}
SINKS=${SINKS:-4}
MODEL=${MODEL:-d12}
VOCAB=${VOCAB:-50257}
PYTHON=${PYTHON:-python3}
RUN_TIMEOUT=${RUN_TIMEOUT:-420}
MD=${MD:-bench/train_vs_torch.md}
LOGS=${LOGS:-build/bench_train}
KEEP=${KEEP:-0}
NO_BUILD=${NO_BUILD:-0}
export PYTHONUNBUFFERED=1

mkdir -p "$LOGS" "$(dirname "$MD")"
ROWS=$LOGS/rows.md     # table rows so far
CMDS=$LOGS/cmds.md     # the exact command of each run
if [ "$KEEP" != 1 ]; then : > "$ROWS"; : > "$CMDS"; fi
touch "$ROWS" "$CMDS"

# ---------------------------------------------------------------- data
# Byte-level tokens are valid GPT-2 token ids, so V=50257 trains on them (-V 50257).
if [ -f data/austen/austen_train.bin ] && [ -f data/austen/austen_val.bin ]; then
    TRAIN=data/austen/austen_train.bin
    VAL=data/austen/austen_val.bin
else
    # data/tiny/tiny.txt is in git: 46637 train tokens, enough for one batch of 32768 (+1)
    if [ ! -f build/tiny/tiny_train.bin ]; then
        python3 data/prepare.py --text data/tiny/tiny.txt --out build/tiny > "$LOGS/prepare.log" 2>&1 ||
            { echo "error: data/prepare.py failed:"; cat "$LOGS/prepare.log"; exit 1; }
    fi
    TRAIN=build/tiny/tiny_train.bin
    VAL=build/tiny/tiny_train.bin   # the val split (2476 tokens) is shorter than one batch
fi

# ---------------------------------------------------------------- build
declare -A BUILD_ERR=()
if [ "$NO_BUILD" != 1 ]; then
    echo "building train_gpt_full train_gpt_window (log: $LOGS/make.log)"
    make -k -j2 train_gpt_full train_gpt_window > "$LOGS/make.log" 2>&1
fi
for bin in train_gpt_full train_gpt_window; do
    if [ ! -x "./$bin" ]; then
        BUILD_ERR[$bin]="not built: $(grep -m1 -iE 'error|skipping' "$LOGS/make.log" 2>/dev/null | cut -c1-150)"
    elif [ "$NO_BUILD" != 1 ] && ! make -q "$bin" > /dev/null 2>&1; then
        # a failed compile can leave an older binary behind: never time that one
        BUILD_ERR[$bin]="build failed: $(grep -m1 -E 'error' "$LOGS/make.log" | cut -c1-150)"
    fi
done

DEVICE=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1)
DEVICE=${DEVICE:-"an unknown GPU (nvidia-smi failed)"}
TORCH=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "not importable by $PYTHON")
DATE=$(date -u +"%Y-%m-%d %H:%M UTC")
if [ "$KEEP" = 1 ]; then
    [ "$TS" = "1024 4096 16384" ] && [ "$ATTNS" = "full window" ] && INVOCATION="KEEP=1 bash scripts/bench_train.sh" ||
        INVOCATION="TS=\"$TS\" ATTNS=\"$ATTNS\" KEEP=1 bash scripts/bench_train.sh, after earlier runs"
else
    [ "$TS" = "1024 4096 16384" ] && [ "$ATTNS" = "full window" ] && INVOCATION="bash scripts/bench_train.sh" ||
        INVOCATION="TS=\"$TS\" ATTNS=\"$ATTNS\" bash scripts/bench_train.sh"
fi

# ---------------------------------------------------------------- helpers

source test/lib.sh  # median, step_field_median
step_field() { step_field_median "$1" "$2" "$SKIP"; }  # log field: the median after the first SKIP steps

# one line saying why a run failed: its exit status and its last non-empty line, table-safe
why_failed() {  # log rc
    local last
    last=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | cut -c1-160)
    if [ "$2" = 124 ] || [ "$2" = 137 ]; then last="timed out after ${RUN_TIMEOUT}s; last: $last"; fi
    printf '%s' "FAILED (exit $2): $last" | tablesafe
}

tablesafe() { tr '|`\n' '/'"' "; }   # stdin as one table cell

fmt_int() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
fmt_f() { [ -n "$2" ] && awk -v x="$2" -v p="$1" 'BEGIN { printf "%." p "f", x }'; }

render() {
    {
        echo "# GPT-2 training throughput: this project's CUDA trainers vs PyTorch"
        echo
        echo "\`$INVOCATION\` on $DEVICE (nvidia-smi: name, driver, memory), PyTorch $TORCH, $DATE."
        echo
        echo "Model $MODEL (V=$VOCAB, padded to a multiple of 128, learned positions), $TOKENS tokens per step"
        echo "(B = $TOKENS / T), $STEPS steps, medians over steps $((SKIP + 1))..$STEPS (the first $SKIP pay for warm-up and"
        echo "torch.compile). Data: \`$TRAIN\` (byte-level tokens, valid GPT-2 ids). Window: W=$WINDOW with"
        echo "S=$SINKS sinks. Ours: \`train_gpt_full\` / \`train_gpt_window\`; twin: \`scripts/train_torch_twin.py\`"
        echo "(torch.compile, bf16 autocast, fused AdamW; SDPA is_causal=True for full, compiled FlexAttention"
        echo "with a block mask of the same pattern for the others). MFU on SPEC §1's count (allowed attention pairs only) against"
        echo "989.5 TFLOP/s. Ours memory: the trainer's \"GPU memory in use\" line (cudaMemGetInfo after"
        echo "allocation, CUDA context included); twin: torch.cuda.max_memory_allocated (tensors only)."
        echo
        echo "| T | attention | ours tok/s | twin tok/s | ours / twin | ours step ms | ours MFU | ours memory | twin peak memory |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        cat "$ROWS"
        echo
        echo "Commands (logs in \`$LOGS/\`):"
        echo
        cat "$CMDS"
    } > "$MD"
}

# ---------------------------------------------------------------- runs
render
for T in $TS; do
    if [ $((TOKENS % T)) -ne 0 ]; then echo "skipping T=$T: $TOKENS is not a multiple of it"; continue; fi
    B=$((TOKENS / T))
    for attn in $ATTNS; do
        case $attn in
            full) bin=train_gpt_full; extra=(); label="full" ;;
            window) bin=train_gpt_window; extra=(--window "$WINDOW" --sinks "$SINKS"); label="W=$WINDOW S=$SINKS" ;;
            dilated) bin=train_gpt_window; extra=(--window 96 --dilation 4); label="W=96, dilation 4 (seeds/001)" ;;
            longformer)
                bin=train_gpt_window
                globals=$(seq 0 $((T / 16)) $((T - 1)) | head -n 16 | paste -sd, -)
                extra=(--causal 0 --window 256 --lookahead 256 --global "$globals")
                label="non-causal W=R=256, 16 globals (Longformer)" ;;
            *) echo "skipping attention '$attn' (full, window, dilated or longformer)"; continue ;;
        esac
        common=(-e "$MODEL" -V "$VOCAB" -b "$B" -t "$T" -x "$STEPS" -v 0 -i "$TRAIN" -j "$VAL" "${extra[@]}")

        # ours
        ours_log=$LOGS/ours_${attn}_T$T.log
        ours_cmd=(./"$bin" "${common[@]}")
        echo "- ours, T=$T $label: \`${ours_cmd[*]}\`" >> "$CMDS"
        ours_tok="" ours_ms="" ours_mfu="" ours_mem=""
        if [ -n "${BUILD_ERR[$bin]:-}" ]; then
            ours_err=$(printf '%s' "$bin ${BUILD_ERR[$bin]}" | tablesafe)
            echo "$ours_err" > "$ours_log"
        else
            echo "running: ${ours_cmd[*]}"
            timeout -k 10 "$RUN_TIMEOUT" "${ours_cmd[@]}" > "$ours_log" 2>&1
            rc=$?
            ours_tok=$(step_field "$ours_log" 6)
            ours_ms=$(step_field "$ours_log" 5)
            ours_mfu=$(step_field "$ours_log" 7)
            ours_mem=$(sed -n 's/^GPU memory in use: \([0-9.]*\) GiB.*/\1/p' "$ours_log" | head -n1)
            ours_err=""
            if [ "$rc" != 0 ]; then ours_err=$(why_failed "$ours_log" "$rc");
            elif [ -z "$ours_tok" ]; then ours_err="no step lines after the first $SKIP (see $ours_log)"; fi
        fi

        # the PyTorch twin
        twin_log=$LOGS/twin_${attn}_T$T.log
        twin_cmd=("$PYTHON" scripts/train_torch_twin.py "${common[@]}" --warmup-steps-excluded "$SKIP")
        echo "- twin, T=$T $label: \`${twin_cmd[*]}\`" >> "$CMDS"
        echo "running: ${twin_cmd[*]}"
        timeout -k 10 "$RUN_TIMEOUT" "${twin_cmd[@]}" > "$twin_log" 2>&1
        rc=$?
        result=$(grep -m1 '^RESULT ' "$twin_log")
        twin_tok=$(sed -n 's/.*tokens_per_s=\([^ ]*\).*/\1/p' <<< "$result")
        twin_mem=$(sed -n 's/.*peak_mem_gib=\([^ ]*\).*/\1/p' <<< "$result")
        twin_err=""
        if [ "$rc" != 0 ]; then twin_err=$(why_failed "$twin_log" "$rc");
        elif [ -z "$twin_tok" ]; then twin_err="no RESULT line (see $twin_log)"; fi

        # the row
        if [ -n "$ours_err" ]; then
            o_tok="$ours_err" o_ms="-" o_mfu="-" o_mem="-"
        else
            o_tok=$(fmt_int "$ours_tok") o_ms=$(fmt_f 2 "$ours_ms") o_mfu="$(fmt_f 1 "$ours_mfu")%"
            o_mem=${ours_mem:+"$ours_mem GiB"}; o_mem=${o_mem:-"?"}
        fi
        if [ -n "$twin_err" ]; then t_tok="$twin_err" t_mem="-"; else t_tok=$(fmt_int "$twin_tok") t_mem="$twin_mem GiB"; fi
        if [ -z "$ours_err" ] && [ -z "$twin_err" ]; then
            ratio=$(awk -v a="$ours_tok" -v b="$twin_tok" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
        else
            ratio="-"
        fi
        row="| $T | $label | $o_tok | $t_tok | $ratio | $o_ms | $o_mfu | $o_mem | $t_mem |"
        echo "$row"
        echo "$row" >> "$ROWS"
        render
    done
done
echo "wrote $MD"
