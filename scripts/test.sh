#!/usr/bin/env bash
# The test command of the README: set-up and every test that runs without a GPU.
# CUDA programs are compiled (not run) when nvcc is there; under CI (CI=true) a missing nvcc is a
# failure, since compiling them is part of what CI checks. make test ends with a 2-minute run of the
# loaders' fuzzer (TEST_FUZZ_SECONDS). GPU tests: `make test-gpu` on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh build python torch fuzz mpi
if [ "${CI:-}" = true ] && ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
    echo "error: CI must compile the CUDA programs, but nvcc is not installed" >&2
    exit 1
fi
make cuda dev
make test TEST_FUZZ_SECONDS=${TEST_FUZZ_SECONDS:-120}
