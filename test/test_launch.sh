#!/usr/bin/env bash
# How the CUDA trainers' processes learn who they are and meet (train_gpt_window.cu's "several
# GPUs" section), without a GPU: launchers' environments, --nccl-init's ways (tcp, file, mpi),
# bounded waits, and the watchdog that stops the others when one process dies. Runs
# test/test_gpt_window_gpu --check-launch (test/test_gpt_gpu.cu), which is that code with random
# bytes in place of NCCL's id, and the trainers' refusals of bad flags (before any CUDA call).
#   bash test/test_launch.sh OUT_DIR
# The last line is `launch: N passed, M failed`.
set -u
cd "$(dirname "$0")/.."
source test/lib.sh
out=${1:?usage: test_launch.sh OUT_DIR}
mkdir -p "$out"
T=test/test_gpt_window_gpu
if [ ! -x $T ]; then
    echo "skipped: $T is not built (nvcc not found; CI builds it)"
    finish launch
    exit
fi

has_mpi=$($T --check-launch --identify | grep -c "build: MPI yes")
under_mpi=$([ "$has_mpi" = 1 ] && echo mpi || echo none)  # the default meeting under mpirun

# a TCP port nobody listens on now
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# identity ENV... -- WANT: the --identify line under the environment ENV (nothing else inherited)
identity() {
    local want=${*: -1} got
    got=$(env -i PATH="$PATH" "${@:1:$#-2}" $T --check-launch --identify 2>&1 | head -1)
    check "identity: ${*:1:$#-2} -> $want" [ "$got" = "launch: $want" ]
}
identity -- "rank 0 of 1, local rank -1, by one process, meeting none"
identity RANK=2 WORLD_SIZE=4 LOCAL_RANK=0 -- "rank 2 of 4, local rank 0, by RANK/WORLD_SIZE, meeting none"
identity RANK=1 WORLD_SIZE=2 NCCL_ID_FILE=/tmp/x -- "rank 1 of 2, local rank -1, by RANK/WORLD_SIZE, meeting file"
identity OMPI_COMM_WORLD_RANK=3 OMPI_COMM_WORLD_SIZE=8 OMPI_COMM_WORLD_LOCAL_RANK=3 -- \
    "rank 3 of 8, local rank 3, by Open MPI's mpirun, meeting $under_mpi"
identity PMI_RANK=1 PMI_SIZE=2 MPI_LOCALRANKID=1 -- \
    "rank 1 of 2, local rank 1, by MPICH's mpirun, meeting $under_mpi"
identity SLURM_PROCID=5 SLURM_STEP_NUM_TASKS=8 SLURM_LOCALID=1 SLURM_NTASKS=8 -- "rank 5 of 8, local rank 1, by Slurm's srun, meeting none"
# a batch script's shell: SLURM_PROCID and the job's SLURM_NTASKS, but one process
identity SLURM_PROCID=0 SLURM_NTASKS=8 -- "rank 0 of 1, local rank -1, by one process, meeting none"
# explicit variables first; mpirun inside a Slurm job is MPI's
identity RANK=1 WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=4 -- "rank 1 of 2, local rank -1, by RANK/WORLD_SIZE, meeting none"
identity PMI_RANK=1 PMI_SIZE=2 SLURM_PROCID=0 SLURM_STEP_NUM_TASKS=1 -- \
    "rank 1 of 2, local rank -1, by MPICH's mpirun, meeting $under_mpi"

# bad environments and flags: one line naming the variable or flag
bad "RANK without WORLD_SIZE" "RANK=1 without WORLD_SIZE" env RANK=1 $T --check-launch --identify
bad "RANK >= WORLD_SIZE" "RANK=2: expected 0 .. WORLD_SIZE - 1 = 1" env RANK=2 WORLD_SIZE=2 $T --check-launch --identify
bad "WORLD_SIZE not a number" "WORLD_SIZE='two'" env RANK=0 WORLD_SIZE=two $T --check-launch --identify
bad "Open MPI rank without size" "OMPI_COMM_WORLD_RANK=0 without OMPI_COMM_WORLD_SIZE" env OMPI_COMM_WORLD_RANK=0 $T --check-launch --identify
bad "LOCAL_RANK negative" "LOCAL_RANK='-1'" env RANK=0 WORLD_SIZE=2 LOCAL_RANK=-1 $T --check-launch --identify
bad "tcp without a port" "--nccl-init 'tcp://host': expected tcp://HOST:PORT" $T --check-launch --nccl-init tcp://host
bad "tcp without a host" "expected tcp://HOST:PORT" $T --check-launch --nccl-init tcp://:29500
bad "tcp port 0" "PORT '0': expected an integer from 1 to 65535" $T --check-launch --nccl-init tcp://h:0
bad "tcp port 70000" "PORT '70000'" $T --check-launch --nccl-init tcp://h:70000
bad "an unknown way" "'udp://h:1': expected tcp://HOST:PORT, file:PATH or mpi" $T --check-launch --nccl-init udp://h:1
bad "file: without a path" "expected tcp://HOST:PORT, file:PATH or mpi" $T --check-launch --nccl-init file:
bad "mpi outside mpirun" "--nccl-init mpi: this $([ "$has_mpi" = 1 ] && echo 'process was not started by mpirun' || echo 'build has no MPI')" env -u OMPI_COMM_WORLD_RANK -u PMI_RANK $T --check-launch --nccl-init mpi
bad "several processes, no way to meet" "RANK/WORLD_SIZE says 2 processes, and they have no way to meet" \
    env -u NCCL_ID_FILE RANK=0 WORLD_SIZE=2 $T --check-launch
bad "tcp host unknown" "host 'no-such-host.invalid'" env RANK=1 WORLD_SIZE=2 $T --check-launch --nccl-init tcp://no-such-host.invalid:29500 --nccl-timeout 2
# the trainers check these before touching a GPU, so a GPU-less machine can see their refusals
for trainer in ./train_gpt_window ./train_gpt_full; do
    [ -x $trainer ] || continue
    bad "$trainer --nccl-init" "--nccl-init 'tcp://h': expected" $trainer --nccl-init tcp://h
    bad "$trainer -z 2" "-z '2': expected an integer from 0 to 1" $trainer -z 2
    bad "$trainer --nccl-timeout 0" "--nccl-timeout '0': expected a number >= 1" $trainer --nccl-timeout 0
    bad "$trainer --nccl-timeout a week" "--nccl-timeout 604800: expected at most 86400" $trainer --nccl-timeout 604800
    bad "$trainer RANK without WORLD_SIZE" "RANK=1 without WORLD_SIZE" env RANK=1 $trainer
done

# start N RANK... ARGS: the ranks in the background (env RANK/WORLD_SIZE=N), output in $out/rank$R
start() {
    local n=$1; shift
    local ranks=()
    while [[ ${1:-} =~ ^[0-9]+$ ]]; do ranks+=("$1"); shift; done
    for r in "${ranks[@]}"; do
        RANK=$r WORLD_SIZE=$n $T --check-launch "$@" > "$out/rank$r" 2>&1 &
        eval "pid$r=$!"
    done
}
# the id lines of the ranks' outputs: all present and equal
same_id() {
    local ids
    ids=$(for r in "$@"; do grep -o 'id [0-9a-f]*' "$out/rank$r" || echo missing; done | sort -u)
    [ "$(echo "$ids" | wc -l)" -eq 1 ] && [ "$ids" != missing ]
}
# reap VAR PID: VAR = the exit status of PID, a child of this shell (so not in a $(...) subshell)
reap() { wait "$2"; eval "$1=$?"; }

# tcp: three ranks meet, get the same id, end well (rank 0 first, then the others)
port=$(free_port)
start 3 0 1 2 --nccl-init tcp://127.0.0.1:$port --linger 0.5
reap rc0 $pid0; reap rc1 $pid1; reap rc2 $pid2
check "tcp: 3 ranks meet, one id, all exit 0 ($rc0 $rc1 $rc2)" eval '[ "$rc0$rc1$rc2" = 000 ] && same_id 0 1 2'
# rank 0 lingers longest: the others' goodbyes come first and are no deaths
port=$(free_port)
start 2 1 --nccl-init tcp://127.0.0.1:$port --linger 0
sleep 0.3   # rank 1 starts before rank 0 listens: it must keep trying
start 2 0 --nccl-init tcp://127.0.0.1:$port --linger 1
reap rc0 $pid0; reap rc1 $pid1
check "tcp: rank 1 before rank 0 listens, rank 0 ends last: both exit 0 ($rc0 $rc1)" eval '[ "$rc0$rc1" = 00 ] && same_id 0 1'

# file: as scripts/multi_gpu.sh, through NCCL_ID_FILE and through --nccl-init file:
dir=$(mktemp -d)
start 2 0 1 --nccl-init "file:$dir/id"
reap rc0 $pid0; reap rc1 $pid1
check "file:PATH: 2 ranks, one id ($rc0 $rc1)" eval '[ "$rc0$rc1" = 00 ] && same_id 0 1'
NCCL_ID_FILE=$dir/id2 start 2 0 1
reap rc0 $pid0; reap rc1 $pid1
check "NCCL_ID_FILE: 2 ranks, one id ($rc0 $rc1)" eval '[ "$rc0$rc1" = 00 ] && same_id 0 1'
rm -rf "$dir"

# bounded waits: a rank alone says what it waited for, in about --nccl-timeout seconds
port=$(free_port)
t0=$(date +%s)
err=$(RANK=1 WORLD_SIZE=2 $T --check-launch --nccl-init tcp://127.0.0.1:$port --nccl-timeout 2 2>&1 >/dev/null); rc=$?
check "tcp: rank 1 without rank 0 stops after 2 s: $err" eval '[ $rc -eq 1 ] && [ $(( $(date +%s) - t0 )) -le 5 ] && one_line "$err" "rank 1 found no rank 0 at 127.0.0.1:$port within 2 s"'
t0=$(date +%s)
err=$(RANK=0 WORLD_SIZE=4 $T --check-launch --nccl-init tcp://127.0.0.1:$port --nccl-timeout 2 2>&1 >/dev/null); rc=$?
check "tcp: rank 0 without the others names them: $err" eval '[ $rc -eq 1 ] && [ $(( $(date +%s) - t0 )) -le 5 ] && one_line "$err" "0 of the other 3 ranks came; missing: 1, 2, 3"'
dir=$(mktemp -d)
err=$(RANK=1 WORLD_SIZE=2 $T --check-launch --nccl-init "file:$dir/id" --nccl-timeout 1 2>&1 >/dev/null); rc=$?
check "file: rank 1 without rank 0 stops: $err" eval '[ $rc -eq 1 ] && one_line "$err" "rank 1 found no id from rank 0 in"'
rm -rf "$dir"

# two launches on one port, and two processes with one rank: rank 0 refuses, the others follow
port=$(free_port)
start 2 0 --nccl-init tcp://127.0.0.1:$port --nccl-timeout 10
RANK=1 WORLD_SIZE=3 $T --check-launch --nccl-init tcp://127.0.0.1:$port --nccl-timeout 10 > "$out/rank1" 2>&1
rc1=$?; reap rc0 $pid0
check "tcp: ranks that disagree on the count: rank 0 says so, rank 1 follows ($rc0 $rc1)" \
    eval '[ "$rc0$rc1" = 11 ] && grep -q "rank 1 says there are 3 processes, rank 0 that there are 2" "$out/rank0" && grep -q "got no NCCL id from rank 0" "$out/rank1"'
port=$(free_port)
start 3 0 1 --nccl-init tcp://127.0.0.1:$port --nccl-timeout 10
sleep 0.5
RANK=1 WORLD_SIZE=3 $T --check-launch --nccl-init tcp://127.0.0.1:$port --nccl-timeout 10 > "$out/rank1b" 2>&1
reap rc0 $pid0; wait $pid1 2>/dev/null
check "tcp: two processes say rank 1: rank 0 refuses ($rc0)" eval '[ "$rc0" = 1 ] && grep -q "a second process says it is rank 1" "$out/rank0"'

# a rank that connected and died before the others came: rank 0 names it instead of sending the id
port=$(free_port)
start 3 0 1 --nccl-init tcp://127.0.0.1:$port --nccl-timeout 20
sleep 0.5
kill -9 $pid1; wait $pid1 2>/dev/null
start 3 2 --nccl-init tcp://127.0.0.1:$port --nccl-timeout 20
reap rc0 $pid0; reap rc2 $pid2
check "tcp: rank 1 dies after its hello: rank 0 says so, rank 2 follows ($rc0 $rc2)" \
    eval '[ "$rc0$rc2" = 11 ] && grep -q "rank 1 left before all 3 ranks came" "$out/rank0" && grep -q "got no NCCL id from rank 0" "$out/rank2"'

# a stranger's connection to the port is ignored, and the ranks still meet
port=$(free_port)
start 2 0 --nccl-init tcp://127.0.0.1:$port --nccl-timeout 30
sleep 0.5
/usr/bin/python3 -c "import socket; s = socket.create_connection(('127.0.0.1', $port)); s.sendall(b'GET / HTTP/1.0\r\n\r\n'); s.close()"
start 2 1 --nccl-init tcp://127.0.0.1:$port --nccl-timeout 30
reap rc0 $pid0; reap rc1 $pid1
check "tcp: a stray connection is ignored ($rc0 $rc1)" eval '[ "$rc0$rc1" = 00 ] && same_id 0 1 && grep -q "ignored a connection that is not a rank of this run" "$out/rank0"'

# the watchdog: a killed rank stops the others within seconds, not an all-reduce's for ever
for victim in 2 0; do
    port=$(free_port)
    start 3 0 1 2 --nccl-init tcp://127.0.0.1:$port --linger 60
    for _ in $(seq 100); do same_id 0 1 2 2>/dev/null && break; sleep 0.1; done
    eval "kill -9 \$pid$victim"
    t0=$(date +%s)
    rcs=""
    for r in 0 1 2; do [ $r -eq $victim ] && { eval "wait \$pid$r"; continue; }; eval "reap rc \$pid$r"; rcs=$rcs$rc; done 2>/dev/null  # no "Killed" line
    took=$(( $(date +%s) - t0 ))
    check "watchdog: rank $victim killed, the others exit 1 within ${took} s" \
        eval '[ "$rcs" = 11 ] && [ $took -le 10 ] && grep -q "stopped before the end of the run" "$out/rank$(( (victim + 1) % 3 ))"'
done

# scripts/slurm_train.sbatch under a stand-in srun (each task with SLURM_PROCID, SLURM_LOCALID and
# SLURM_STEP_NUM_TASKS, as srun sets them) and scontrol: its tasks meet at the first node's port
fake=$out/fake_slurm
mkdir -p "$fake"
cat > "$fake/scontrol" <<'FAKE'
#!/usr/bin/env bash
[ "$1 $2" = "show hostnames" ] && echo "$3" | tr ',' '\n'
FAKE
cat > "$fake/srun" <<'FAKE'
#!/usr/bin/env bash
while [[ $1 == --* ]]; do shift; done   # srun's own flags
pids=()
for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_STEP_NUM_TASKS=$SLURM_NTASKS "$@" & pids+=($!); done
status=0
for p in "${pids[@]}"; do wait $p || status=1; done
exit $status
FAKE
chmod +x "$fake/scontrol" "$fake/srun"
NCCL_INIT_PORT=$(free_port) PATH="$fake:$PATH" SLURM_JOB_NODELIST=127.0.0.1,node2 SLURM_NTASKS=3 SLURM_JOB_NUM_NODES=1 \
    bash scripts/slurm_train.sbatch $T --check-launch > "$out/slurm.log" 2>&1; rc=$?
ids=$(grep -o 'id [0-9a-f]*' "$out/slurm.log" | sort -u | wc -l)
check "slurm_train.sbatch under a stand-in srun: 3 tasks by Slurm's variables meet over tcp at the first node (exit $rc)" \
    eval '[ $rc -eq 0 ] && [ $ids -eq 1 ] && [ $(grep -c "by Slurm.s srun, meeting tcp" "$out/slurm.log") -eq 3 ] && [ $(grep -c "done" "$out/slurm.log") -eq 3 ]'
bad "slurm_train.sbatch outside a job" "SLURM_JOB_NODELIST is not set" env -u SLURM_JOB_NODELIST bash scripts/slurm_train.sbatch ./train_gpt_window

# mpirun (Open MPI), where this build has MPI and mpirun is installed: the id by MPI_Bcast, the
# default under mpirun; and tcp under mpirun
if command -v mpirun >/dev/null && [ "$has_mpi" = 1 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI runs as root
    mpirun --oversubscribe -np 2 $T --check-launch > "$out/mpi.log" 2>&1; rc=$?
    ids=$(grep -o 'id [0-9a-f]*' "$out/mpi.log" | sort -u | wc -l)
    check "mpirun -np 2: Open MPI's ranks meet by MPI_Bcast, one id (exit $rc)" \
        eval '[ $rc -eq 0 ] && [ $ids -eq 1 ] && [ $(grep -c "by Open MPI.s mpirun, meeting mpi" "$out/mpi.log") -eq 2 ] && [ $(grep -c "id " "$out/mpi.log") -eq 2 ]'
    port=$(free_port)
    mpirun --oversubscribe -np 2 $T --check-launch --nccl-init tcp://127.0.0.1:$port > "$out/mpi_tcp.log" 2>&1; rc=$?
    ids=$(grep -o 'id [0-9a-f]*' "$out/mpi_tcp.log" | sort -u | wc -l)
    check "mpirun -np 2 --nccl-init tcp://: one id (exit $rc)" eval '[ $rc -eq 0 ] && [ $ids -eq 1 ] && [ $(grep -c "meeting tcp" "$out/mpi_tcp.log") -eq 2 ]'
else
    echo "note: no mpirun, or $T built without MPI: the mpirun cases are not run"
fi
finish launch
