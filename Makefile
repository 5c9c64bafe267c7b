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
# sm_90 builds carry sm_90a code too (the attention kernels on Hopper's wgmma and TMA, which the
# programs run on an H100 / H200) and compute_90 PTX for other GPUs (the mma.sync attention kernels);
# attention_kernels() in the trainers names the versions
ifeq ($(GPU_ARCH),sm_90)
  ARCH_FLAGS = -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90
else
  ARCH_FLAGS = -arch=$(GPU_ARCH)
endif
NVCC_FLAGS ?= -O3 -std=c++17 $(ARCH_FLAGS) -lineinfo
NVCC_LIBS = -lcublasLt -lcublas
# NCCL (several GPUs: scripts/multi_gpu.sh) is linked where it is found: the system, the CUDA
# toolkit, or the nvidia-nccl Python wheel that PyTorch installs; NCCL_HOME=DIR names another place
PY_NCCL := $(shell $(PYTHON) -c 'import nvidia.nccl as m; print(m.__path__[0])' 2>/dev/null)
NCCL_HOME ?= $(firstword $(foreach d,/usr /usr/local/cuda $(PY_NCCL),$(if $(wildcard $(d)/include/nccl.h),$(d))))
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
ifneq ($(NCCL_HOME),)
  NCCL_LIB_DIR := $(firstword $(foreach d,lib64 lib lib/$(MULTIARCH),$(if $(wildcard $(NCCL_HOME)/$(d)/libnccl.so*),$(NCCL_HOME)/$(d))))
endif
ifneq ($(NCCL_LIB_DIR),)
  NCCL_LIB := $(if $(wildcard $(NCCL_LIB_DIR)/libnccl.so),-lnccl,-l:libnccl.so.2)
  NVCC_NCCL = -DUSE_NCCL -I$(NCCL_HOME)/include -L$(NCCL_LIB_DIR) $(NCCL_LIB) -Xlinker -rpath,$(NCCL_LIB_DIR)
else
  NCCL_NOTE = NCCL not found (nccl.h and libnccl.so under NCCL_HOME=$(NCCL_HOME)): built for one GPU
endif
# MPI (--nccl-init mpi: NCCL's id by MPI_Bcast under mpirun) is built into the trainers where mpicc
# is found (Debian's libopenmpi-dev, or MPICH's); NO_MPI=1 leaves it out
MPICC ?= $(shell command -v mpicc 2>/dev/null)
comma := ,
ifeq ($(NO_MPI)$(if $(MPICC),,none),)
  MPI_FLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null || $(MPICC) -compile_info 2>/dev/null | cut -d' ' -f2-) \
               $(shell $(MPICC) --showme:link 2>/dev/null || $(MPICC) -link_info 2>/dev/null | cut -d' ' -f2-)
  # nvcc takes the host linker's options through -Xlinker, not -Wl,
  NVCC_MPI = -DUSE_MPI $(foreach f,$(MPI_FLAGS),$(if $(filter -Wl$(comma)%,$(f)),-Xlinker $(patsubst -Wl$(comma)%,%,$(f)),$(f)))
endif

CUDA_TARGETS = train_gpt_full train_gpt_window attention_compare

.PHONY: all cuda dev data test test-cpu test-gpu test-multi-gpu test-untrusted fuzz fuzz-replay bench-cpu clean

all: train_gpt_cpu cuda

train_gpt_cpu: train_gpt_cpu.c
	$(CC) $(CFLAGS) $(OMP_FLAGS) $< $(LDLIBS) -o $@

# attention_compare.cu as a shared library (extern "C" swa_forward / swa_backward, for ctypes:
# scripts/attention_vs_torch.py)
ATTN_LIB = build/libattention_compare.so
# dev/cuda/attention_general.cu as a shared library (extern "C" gen_forward / gen_backward with the
# version, for scripts/attention_general_vs_flex.py)
GENERAL_LIB = build/libattention_general.so
# the CUDA trainers' checks (test/test_gpt_gpu.cu includes a trainer, as llm.c's test_gpt2.cu does)
GPU_TESTS = test/test_gpt_window_gpu test/test_gpt_full_gpu
# host-only checks of CUDA code (nvcc builds them; they run without a GPU, so make test runs them)
WALK_TEST = test/test_attention_walk

ifeq ($(NVCC),)
$(CUDA_TARGETS) $(ATTN_LIB) $(GENERAL_LIB) $(GPU_TESTS) $(WALK_TEST):
	@echo "skipping $@: nvcc not found (install the CUDA toolkit or set NVCC=/path/to/nvcc)"
dev:
	@echo "skipping dev/: nvcc not found"
else
$(CUDA_TARGETS): %: %.cu
	$(if $(NCCL_NOTE),@echo "$@: $(NCCL_NOTE)")
	$(NVCC) $(NVCC_FLAGS) $< $(NVCC_LIBS) $(NVCC_NCCL) $(NVCC_MPI) -o $@
$(ATTN_LIB): attention_compare.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -Xcompiler -fPIC -shared -DATTENTION_COMPARE_LIBRARY $< -o $@
$(GENERAL_LIB): dev/cuda/attention_general.cu dev/cuda/attention_forward.cu dev/cuda/attention_backward.cu dev/cuda/common.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -Xcompiler -fPIC -shared -DATTENTION_GENERAL_LIBRARY -DATTENTION_GENERAL_NO_MAIN $< -o $@
test/test_gpt_window_gpu: test/test_gpt_gpu.cu test/check.h train_gpt_window.cu
	$(NVCC) $(NVCC_FLAGS) $< $(NVCC_LIBS) $(NVCC_NCCL) $(NVCC_MPI) -o $@
test/test_gpt_full_gpu: test/test_gpt_gpu.cu test/check.h train_gpt_full.cu
	$(NVCC) $(NVCC_FLAGS) -DFULL $< $(NVCC_LIBS) $(NVCC_NCCL) $(NVCC_MPI) -o $@
$(WALK_TEST): test/test_attention_walk.cu dev/cuda/attention_general.cu dev/cuda/attention_forward.cu dev/cuda/attention_backward.cu dev/cuda/common.h
	$(NVCC) -O2 -std=c++17 $(ARCH_FLAGS) $< -o $@
dev:
	$(MAKE) -C dev/cuda NVCC=$(NVCC) GPU_ARCH=$(GPU_ARCH)
endif

cuda: $(CUDA_TARGETS) $(ATTN_LIB) $(GENERAL_LIB) $(GPU_TESTS) $(WALK_TEST)

# the default corpus (the books corpus, byte-level: data/README.md); a no-op once prepared
data:
	$(PYTHON) data/prepare.py

# ---------------------------------------------------------------------------
# tests: the CPU trainer against the PyTorch oracle, then the command line end to end

TEST_DIR ?= build/test

test/test_gpt_cpu: test/test_gpt_cpu.c test/check.h train_gpt_cpu.c
	$(CC) $(CFLAGS) -Wno-unused-function $(OMP_FLAGS) $< $(LDLIBS) -o $@

# the trainer's own pair count, against which scripts/analyze_pattern.py is checked
test/pattern_pairs: test/pattern_pairs.c train_gpt_cpu.c
	$(CC) $(CFLAGS) -Wno-unused-function $(OMP_FLAGS) $< $(LDLIBS) -o $@

# the CPU trainer under AddressSanitizer and UndefinedBehaviorSanitizer (OpenMP off): what
# test/test_untrusted.sh runs the crafted files and flags against
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -g -O1
build/train_gpt_cpu_asan: train_gpt_cpu.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-unknown-pragmas $(SANITIZE_FLAGS) $< $(LDLIBS) -o $@

# the libFuzzer harness (test/fuzz_trainer.c) of the loaders and the flag parser; needs clang with
# libFuzzer (scripts/install_deps.sh fuzz). Without it the targets below say so and are skipped.
FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-function
FUZZ_OK = $(shell echo 'int LLVMFuzzerTestOneInput(const char* d, unsigned long n) { return 0; }' | \
	$(FUZZ_CC) -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null && echo yes)
FUZZ_SECONDS ?= 600
FUZZ_DIR ?= build/fuzz
build/fuzz_trainer: test/fuzz_trainer.c train_gpt_cpu.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $< $(LDLIBS) -o $@

# every target for FUZZ_SECONDS in all (seeds from test/fuzz_seeds.py); crashes land in FUZZ_DIR
fuzz:
	@if [ "$(FUZZ_OK)" != yes ]; then echo "error: $(FUZZ_CC) with libFuzzer not found (bash scripts/install_deps.sh fuzz)" >&2; exit 1; fi
	@$(MAKE) --no-print-directory build/fuzz_trainer
	$(PYTHON) test/fuzz_seeds.py $(FUZZ_DIR)/seeds
	bash test/fuzz.sh build/fuzz_trainer $(FUZZ_DIR) $(FUZZ_SECONDS)

# the crashes the fuzzer found, kept in test/fuzz_regressions/, run once more: none may crash
fuzz-replay:
	@if [ "$(FUZZ_OK)" != yes ]; then echo "fuzz_replay: skipped, $(FUZZ_CC) with libFuzzer not found (bash scripts/install_deps.sh fuzz): 0 passed, 0 failed"; \
	else $(MAKE) --no-print-directory build/fuzz_trainer >&2 && bash test/fuzz_replay.sh build/fuzz_trainer test/fuzz_regressions; fi

# crafted files and flags against the plain and the sanitized CPU trainer
test-untrusted: train_gpt_cpu build/train_gpt_cpu_asan
	bash test/test_untrusted.sh build/train_gpt_cpu_asan $(TEST_DIR)/untrusted_asan
	bash test/test_untrusted.sh ./train_gpt_cpu $(TEST_DIR)/untrusted

test: test-cpu

# TEST_FUZZ_SECONDS=N (scripts/test.sh: 120) adds an N-second fuzz run to make test's count
TEST_FUZZ_SECONDS ?= 0
test-cpu: train_gpt_cpu test/test_gpt_cpu test/pattern_pairs build/train_gpt_cpu_asan $(if $(NVCC),train_gpt_window train_gpt_full test/test_gpt_window_gpu $(WALK_TEST))
	@mkdir -p $(TEST_DIR)
	$(PYTHON) data/prepare.py --text data/tiny/tiny.txt --out $(TEST_DIR)/tiny
	$(REF_PYTHON) test/reference.py --out $(TEST_DIR)/dumps
	./test/test_gpt_cpu $(TEST_DIR)/dumps $(TEST_DIR)/tiny data/tiny/tiny.txt | tee $(TEST_DIR)/unit.log
	bash test/test_cli.sh $(TEST_DIR) | tee $(TEST_DIR)/cli.log
	REF_PYTHON=$(REF_PYTHON) bash test/test_analyzer.sh $(TEST_DIR) | tee $(TEST_DIR)/analyzer.log
	$(PYTHON) scripts/sync_copies.py --check | tee $(TEST_DIR)/copies.log
	$(PYTHON) test/check_twins.py | tee $(TEST_DIR)/twins.log
	$(PYTHON) test/check_kernels.py | tee $(TEST_DIR)/kernels.log
	bash test/test_launch.sh $(TEST_DIR)/launch | tee $(TEST_DIR)/launch.log
	@if [ -x $(WALK_TEST) ]; then ./$(WALK_TEST) | tail -n 8; else echo "attention walk: 0 passed, 0 failed (skipped: nvcc not found)"; fi | tee $(TEST_DIR)/walk.log
	bash test/test_untrusted.sh build/train_gpt_cpu_asan $(TEST_DIR)/untrusted_asan | tee $(TEST_DIR)/untrusted_asan.log
	bash test/test_untrusted.sh ./train_gpt_cpu $(TEST_DIR)/untrusted | tee $(TEST_DIR)/untrusted.log
	@$(MAKE) --no-print-directory fuzz-replay | tee $(TEST_DIR)/fuzz_replay.log
	@if [ "$(TEST_FUZZ_SECONDS)" != 0 ]; then $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS) | tee $(TEST_DIR)/fuzz.log; \
	else rm -f $(TEST_DIR)/fuzz.log; fi
	@bash test/summary.sh $(TEST_DIR)/unit.log $(TEST_DIR)/cli.log $(TEST_DIR)/analyzer.log $(TEST_DIR)/copies.log $(TEST_DIR)/twins.log $(TEST_DIR)/kernels.log \
		$(TEST_DIR)/launch.log $(TEST_DIR)/walk.log $(TEST_DIR)/untrusted_asan.log $(TEST_DIR)/untrusted.log $(TEST_DIR)/fuzz_replay.log $(if $(filter-out 0,$(TEST_FUZZ_SECONDS)),$(TEST_DIR)/fuzz.log)

# GPU tests, run on a machine with a GPU (the device machine): attention_compare's quick runs
# (CPU-reference check; dense == streaming at W >= T, and dense non-causal == a non-causal band that
# covers every pair, on the general path; a dilated band and non-causal globals; no NaN), the CUDA
# trainers against the PyTorch dumps (bf16 tolerances) and through their command line
# (test/test_gpu.sh: training, resume, the KV cache against the full forward, ...) and crafted
# input, then the dev/ kernel checks (last: the versions the programs do not run yet cannot stop
# the programs' own tests). On the device
# machine the oracle runs with its own python3 (PyTorch 2.x): GPU_REF_PYTHON.
GPU_REF_PYTHON ?= python3
# heads of 64 and 128 on the band kernels; heads of 16 and the non-band patterns on the general
# attention path (gpu_dilation, gpu_longformer and gpu_heads128_general on its tile versions;
# gpu_layer_mix: band, full and dilated layers in one model; gpu_dilation_split: general version 6)
GPU_DUMP_CASES = gpu_window_sinks gpu_rope gpu_vocab gpu_full gpu_heads128 full window window_sinks dilation noncausal_global \
                 rope layer_mix full_learned_llmc gpu_dilation gpu_longformer gpu_heads128_general \
                 gpu_layer_mix gpu_dilation_split
DUMPS = $(TEST_DIR)/dumps
test-gpu: dev attention_compare train_gpt_cpu train_gpt_window train_gpt_full $(GPU_TESTS)
	./attention_compare -T 512 -W 512 -S 4 -B 8 --reps 5 --warmup 1
	./attention_compare -T 512 -W 64 --dilation 4 --dilated-keys 16 -B 4 --reps 3 --warmup 1
	./attention_compare -T 512 --causal 0 -W 64 -R 32 -S 1 --global-spread 4 -B 4 --reps 3 --warmup 1
	./attention_compare -T 256 --causal 0 -W 256 -R 256 -B 4 --reps 3 --warmup 1
	@mkdir -p $(TEST_DIR)
	$(PYTHON) data/prepare.py --text data/tiny/tiny.txt --out $(TEST_DIR)/tiny
	$(GPU_REF_PYTHON) test/reference.py --out $(DUMPS)
	./test/test_gpt_window_gpu --check-dump $(addprefix $(DUMPS)/,$(GPU_DUMP_CASES))
	./test/test_gpt_full_gpu --check-dump $(DUMPS)/gpu_full $(DUMPS)/gpu_heads128_full
	bash test/test_gpu.sh $(TEST_DIR)
	bash test/test_untrusted.sh ./train_gpt_window $(TEST_DIR)/untrusted_window
	bash test/test_untrusted.sh ./train_gpt_full $(TEST_DIR)/untrusted_full
	$(MAKE) -C dev/cuda check

# several GPUs of one machine (at least 2): data-parallel training through NCCL against one GPU
test-multi-gpu: train_gpt_window train_gpt_full test/test_gpt_window_gpu
	@mkdir -p $(TEST_DIR)
	$(PYTHON) data/prepare.py --text data/tiny/tiny.txt --out $(TEST_DIR)/tiny
	bash test/test_multi_gpu.sh $(TEST_DIR)

# CPU tokens/s, full vs windowed, at T = 256, 1024, 4096 (writes bench/cpu_full_vs_window.md)
bench-cpu: train_gpt_cpu
	bash scripts/bench_cpu.sh

clean:
	rm -rf train_gpt_cpu test/test_gpt_cpu test/pattern_pairs $(CUDA_TARGETS) $(GPU_TESTS) $(WALK_TEST) build
	-$(MAKE) -C dev/cuda clean 2>/dev/null
