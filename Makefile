# Builds the trainers, the attention comparison, the dev/ kernels and the tests.
# CPU targets need only a C compiler (OpenMP when it is there); CUDA targets need nvcc and are
# skipped, with the reason, where it is missing.

CC ?= gcc
CFLAGS ?= -O3 -march=native -Wall -Wextra
LDLIBS = -lm
# Debian's python3 is the one python3-torch installs into; the oracle needs it
REF_PYTHON ?= /usr/bin/python3
PYTHON ?= python3

# OpenMP: used when the compiler accepts -fopenmp
ifeq ($(shell echo 'int main(){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes),yes)
  OMP_FLAGS = -fopenmp -DOMP
else
  $(info OpenMP not found: the CPU trainer runs on one thread)
  OMP_FLAGS =
endif

# CUDA: nvcc on the PATH or in /usr/local/cuda; the GPU architecture can be overridden
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
GPU_ARCH ?= sm_90
NVCC_FLAGS ?= -O3 -std=c++17 -arch=$(GPU_ARCH) -lineinfo
NVCC_LIBS = -lcublasLt -lcublas
# NCCL (several GPUs) is linked only where its header is found
NCCL_HEADER := $(firstword $(wildcard /usr/include/nccl.h /usr/local/cuda/include/nccl.h))
ifneq ($(NCCL_HEADER),)
  NVCC_NCCL = -DUSE_NCCL -lnccl
endif

CUDA_TARGETS = train_gpt_full train_gpt_window attention_compare

.PHONY: all cuda dev data test test-cpu test-gpu bench-cpu clean

all: train_gpt_cpu cuda

train_gpt_cpu: train_gpt_cpu.c
	$(CC) $(CFLAGS) $(OMP_FLAGS) $< $(LDLIBS) -o $@

ifeq ($(NVCC),)
$(CUDA_TARGETS):
	@echo "skipping $@: nvcc not found (install the CUDA toolkit or set NVCC=/path/to/nvcc)"
dev:
	@echo "skipping dev/: nvcc not found"
else
$(CUDA_TARGETS): %: %.cu
	$(NVCC) $(NVCC_FLAGS) $< $(NVCC_LIBS) $(NVCC_NCCL) -o $@
dev:
	$(MAKE) -C dev/cuda NVCC=$(NVCC) GPU_ARCH=$(GPU_ARCH)
endif

cuda: $(CUDA_TARGETS)

# the default corpus (Jane Austen, byte-level); a no-op once prepared
data:
	$(PYTHON) data/prepare.py

# ---------------------------------------------------------------------------
# tests: the CPU trainer against the PyTorch oracle, then the command line end to end

TEST_DIR ?= build/test

test/test_gpt_cpu: test/test_gpt_cpu.c train_gpt_cpu.c
	$(CC) $(CFLAGS) -Wno-unused-function $(OMP_FLAGS) $< $(LDLIBS) -o $@

test: test-cpu

test-cpu: train_gpt_cpu test/test_gpt_cpu
	@mkdir -p $(TEST_DIR)
	$(PYTHON) data/prepare.py --text data/tiny/tiny.txt --out $(TEST_DIR)/tiny
	$(REF_PYTHON) test/reference.py --out $(TEST_DIR)/dumps
	./test/test_gpt_cpu $(TEST_DIR)/dumps $(TEST_DIR)/tiny data/tiny/tiny.txt | tee $(TEST_DIR)/unit.log
	bash test/test_cli.sh $(TEST_DIR) | tee $(TEST_DIR)/cli.log
	@bash test/summary.sh $(TEST_DIR)/unit.log $(TEST_DIR)/cli.log

# GPU tests, run on a machine with a GPU (the device machine): the dev/ kernel checks
test-gpu: dev
	$(MAKE) -C dev/cuda check

# CPU tokens/s, full vs windowed, at T = 256, 1024, 4096 (writes bench/cpu_full_vs_window.md)
bench-cpu: train_gpt_cpu
	bash scripts/bench_cpu.sh

clean:
	rm -rf train_gpt_cpu test/test_gpt_cpu $(CUDA_TARGETS) build
	-$(MAKE) -C dev/cuda clean 2>/dev/null
