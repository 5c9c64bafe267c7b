#!/usr/bin/env bash
# The test command of the README: set-up and every test that runs without a GPU.
# CUDA programs are compiled (not run) when nvcc is there; GPU tests are `make test-gpu` on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh build python torch
make cuda
make test
