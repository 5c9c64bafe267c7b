// @twin-begin the description
/*
train_gpt_window.cu: GPT-2 training on one GPU or several with sliding-window + sink attention (SPEC §1).

bf16 parameters and activations, float32 master weights, gradients and AdamW moments; matmuls
through cuBLASLt (bias and residual fused into the product); every reduction in a fixed order, so
the same inputs give bit-identical results run to run. The kernels of the attention and the
LayerNorm backward are copies of dev/cuda's fastest versions, the host code shared with
train_gpt_cpu.c copies of its text (the contents list below names each copy and its original).

What it does: training from token shards with the CPU trainer's flags, log, checkpoints and exact
resume; learned or rotary positions; every pattern of SPEC §1 (the non-band ones on a
correct-first O(T^2) path); sampling (-s, --generate) through a rolling KV cache of S + W entries per
layer, so a rotary model streams past its training length; --eval, --stream, --eval-greedy; several
GPUs, data parallel through NCCL (scripts/multi_gpu.sh). Its forward, backward and AdamW are checked
against the PyTorch reference dumps and its cache against the full forward by test/test_gpt_gpu.cu.

    ./train_gpt_window -e d12 -b 16 -t 1024 --window 256 --sinks 4 --pos rope -o out/run
    bash scripts/multi_gpu.sh 2 ./train_gpt_window -e d12 -b 16 -t 1024 --window 256 --sinks 4
*/
#define TRAINER_NAME "train_gpt_window"
// @twin-end
/*
Contents, in file order. `// @copy-begin NAME` ... `// @copy-end NAME` hold copies that
scripts/sync_copies.py keeps the same text as their originals (edit those, then run it); the rest is
this file's own and, outside the @twin regions, the same text in both trainers (test/check_twins.py).

  host code shared with the CPU trainer (originals in train_gpt_cpu.c)
    trainer-helpers     die() and the checked file and memory helpers
    trainer-pattern     SPEC §1's attention pattern
    trainer-config      model configuration, parameters, checkpoints
    trainer-schedule    the learning-rate schedule and the training guard
    trainer-data        the token-shard data loader
    trainer-state       optimizer state for exact resume
    trainer-sampling    sampling and printing tokens
    trainer-cli         flags, and the host side of main
  CUDA checks, several GPUs (NCCL), matmuls (cuBLASLt), column sums, the layers' kernels
    ln-backward         LayerNorm backward v4 (dev/cuda/layernorm_backward.cu)
  optimizer: gradient norm, AdamW
  attention: dev/cuda's band kernels; attention_kernels() names the versions that run
    attn-pattern attn-bf16-pack attn-mma attn-load-rows          dev/cuda/common.h
    attn-forward-consts attn-forward-tiles attn-forward-epilogue
    attn-forward-v6-tiles attn-forward-v7                        forward v7 (attention_forward.cu)
    attn-wgmma attn-tma                                          dev/cuda/common.h
    attn-forward-softmax attn-forward-v10 attn-forward-v11       forward v11 (attention_forward.cu)
    attn-backward-dot attn-backward-tiles attn-backward-sink-reduce attn-backward-launch-helpers
    attn-backward-v8-phases attn-backward-v9                     backward v9 (attention_backward.cu)
    attn-backward-v10 attn-backward-v13                          backward v13 (attention_backward.cu)
    attention_forward_best, attention_backward_best, attention_kernels: the version per GPU
    @twin region: the patterns this trainer takes, and their dispatch; train_gpt_window.cu adds
    attn-general-spec attn-general-v1 attn-general-walk attn-general-warp attn-general-v3
    attn-general-bits attn-general-v4 attn-general-v5 attn-general-v6 attn-general-v7
                        every other SPEC §1 pattern on the tiles that hold an allowed pair: v5
                        (v4's wgmma + TMA kernels with 64-bit row masks) on sm_90a, v3 (mma.sync)
                        elsewhere, both for heads of 64 and 128; v2 (a warp a row) for other head
                        sizes; v6 for dilated keys that reach far on sm_90a (residue bands on the
                        band kernels, the rest on v5, merged); v7 for non-causal global positions
                        without dilation at T >= 2048 (the band without them on v5, the globals'
                        pairs on CUDA-core kernels, merged) (dev/cuda/attention_general.cu)
  the model on the GPU: buffers, forward, backward, update
  generation through a rolling KV cache
  training: main (test/test_gpt_gpu.cu includes this file for its checks: PyTorch's dumps, the cache)
*/
#include <stdio.h>          // printf, FILE
#include <stdlib.h>         // malloc, exit
#include <stdint.h>         // uint16_t, uint64_t
#include <string.h>         // memcpy, memset
#include <math.h>           // sqrtf, fabs
#include <time.h>           // clock_gettime
#include <errno.h>          // errno
#include <unistd.h>         // fsync
#include <fcntl.h>          // open
#include <glob.h>           // glob
#include <sys/stat.h>       // stat
#include <sys/socket.h>     // the processes' meeting (--nccl-init tcp://) and its watchdog
#include <netinet/in.h>     // sockaddr_in
#include <netinet/tcp.h>    // TCP_KEEPIDLE
#include <netdb.h>          // getaddrinfo
#include <poll.h>           // poll
#include <pthread.h>        // the watchdog thread
#include <cuda_runtime.h>   // the runtime API
#include <cuda_bf16.h>      // __nv_bfloat16
#include <cuda.h>           // CUtensorMap (types only: the TMA encoder is fetched through the runtime)
#include <cudaTypedefs.h>   // PFN_cuTensorMapEncodeTiled, the encoder's signature
#include <cublasLt.h>       // matmuls
#include <algorithm>        // std::min, in the copied attention launchers
#ifdef USE_NCCL
#include <nccl.h>           // the gradients' all-reduce across GPUs (the Makefile defines USE_NCCL where it finds NCCL)
#endif
#ifdef USE_MPI
#include <mpi.h>            // --nccl-init mpi: NCCL's id from rank 0 by MPI_Bcast (USE_MPI where the Makefile finds mpicc)
#endif

typedef __nv_bfloat16 floatX;  // parameters and activations on the GPU
typedef __nv_bfloat16 bf16;    // the name the dev/cuda attention kernels use

// @copy-begin trainer-helpers
// ----------------------------------------------------------------------------
// checked helpers: every failure names the file or value and exits non-zero

#define CHECKPOINT_MAGIC 20240326
#define STATE_MAGIC 20240327
#define SHARD_MAGIC 20240520
#define HEADER_INTS 256
#define MAX_PATTERNS 8
#define MAX_LAYERS 128
#define MAX_GLOBALS 64
// Bounds on what a file or flag may say, so that every size below is computed without overflow:
// a pattern field (window, sinks, lookahead, dilation, the reach of the dilated keys, a global
// position) is at most 2^30, as is B*T; a model is at most 2^16 channels, a vocabulary of 2^16
// and 2^24 positions, which keeps every parameter count far below 2^63.
#define PATTERN_LIMIT (1 << 30)
#define MAX_CHANNELS 65536
#define MAX_VOCAB 65536
#define MAX_SEQ_LEN (1 << 24)

static void die(const char* fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#include <stdarg.h>     // va_list, for die
#ifdef FUZZING          // test/fuzz_trainer.c: a refusal returns to the fuzzer instead of ending the process
#include <setjmp.h>
static jmp_buf die_jump;
#endif
static void die(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, args);
    fprintf(stderr, "\n");
    va_end(args);
#ifdef FUZZING
    longjmp(die_jump, 1);
#endif
    exit(EXIT_FAILURE);
}

static FILE* fopen_check(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (f == NULL) { die("cannot open '%s' (mode %s): %s", path, mode, strerror(errno)); }
    return f;
}

static void fread_check(void* dst, size_t size, size_t count, FILE* f, const char* path) {
    if (fread(dst, size, count, f) != count) { die("'%s' is truncated: expected %zu more bytes", path, size * count); }
}

static void fwrite_check(const void* src, size_t size, size_t count, FILE* f, const char* path) {
    if (fwrite(src, size, count, f) != count) { die("writing '%s' failed: %s", path, strerror(errno)); }
}

static void* malloc_check(size_t size) {
    void* p = malloc(size == 0 ? 1 : size);
    if (p == NULL) { die("out of memory allocating %zu bytes", size); }
    return p;
}

static void* calloc_check(size_t count, size_t size) {
    void* p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
    if (p == NULL) { die("out of memory allocating %zu x %zu bytes", count, size); }
    return p;
}

static long file_size(const char* path) {
    struct stat st;
    if (stat(path, &st) != 0) { die("cannot stat '%s': %s", path, strerror(errno)); }
    if (!S_ISREG(st.st_mode)) { die("'%s' is not a regular file", path); }
    return (long)st.st_size;
}

// A crash mid-write must never leave a half-written checkpoint under the real name: write to
// path.tmp, flush it to disk, then rename (atomic on POSIX) and sync the directory entry.
static FILE* atomic_open(const char* path, char* tmp_path, size_t tmp_len) {
    snprintf(tmp_path, tmp_len, "%s.tmp", path);
    return fopen_check(tmp_path, "wb");
}

static void atomic_commit(FILE* f, const char* tmp_path, const char* path) {
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) { die("flushing '%s' failed: %s", tmp_path, strerror(errno)); }
    if (fclose(f) != 0) { die("closing '%s' failed: %s", tmp_path, strerror(errno)); }
    if (rename(tmp_path, path) != 0) { die("renaming '%s' to '%s' failed: %s", tmp_path, path, strerror(errno)); }
    char dir[4300];
    snprintf(dir, sizeof(dir), "%s", path);
    char* slash = strrchr(dir, '/');
    if (slash) { *slash = '\0'; } else { snprintf(dir, sizeof(dir), "."); }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// @copy-end trainer-helpers

// @copy-begin trainer-pattern
// ----------------------------------------------------------------------------
// the attention pattern (SPEC §1)

typedef struct {
    int window;        // W: keys 0 <= i-j < W (including the query itself); 0 = unlimited
    int sinks;         // S: keys j < S always attended
    int lookahead;     // R: non-causal only, keys 0 < j-i <= R
    int dilation;      // d: beyond the band, every d-th key; 1 = off
    int dilated_keys;  // K: how many dilated keys; 0 = no limit
} AttnPattern;

typedef struct {
    int causal;                          // 1: never j > i
    int num_patterns;                    // distinct patterns, 1..MAX_PATTERNS
    AttnPattern patterns[MAX_PATTERNS];
    int layer_pattern[MAX_LAYERS];       // which pattern each layer uses
    int num_globals;
    int globals[MAX_GLOBALS];            // global positions, ascending
} ModelPattern;

static void pattern_validate(const ModelPattern* mp, int num_layers, const char* source) {
    if (num_layers < 1 || num_layers > MAX_LAYERS) { die("%s: %d layers, expected 1..%d", source, num_layers, MAX_LAYERS); }
    if (mp->causal != 0 && mp->causal != 1) { die("%s: causal must be 0 or 1, got %d", source, mp->causal); }
    if (mp->num_patterns < 1 || mp->num_patterns > MAX_PATTERNS) {
        die("%s: number of attention patterns must be 1..%d, got %d", source, MAX_PATTERNS, mp->num_patterns);
    }
    for (int k = 0; k < mp->num_patterns; k++) {
        const AttnPattern* p = &mp->patterns[k];
        if (p->window < 0) { die("%s: window must be >= 0 (0 = full), got %d", source, p->window); }
        if (p->sinks < 0) { die("%s: sinks must be >= 0, got %d", source, p->sinks); }
        if (p->lookahead < 0) { die("%s: lookahead must be >= 0, got %d", source, p->lookahead); }
        if (p->lookahead > 0 && mp->causal) { die("%s: lookahead %d needs non-causal attention (causal 0)", source, p->lookahead); }
        if (p->dilation < 1) { die("%s: dilation must be >= 1 (1 = off), got %d", source, p->dilation); }
        if (p->dilated_keys < 0) { die("%s: dilated keys must be >= 0 (0 = no limit), got %d", source, p->dilated_keys); }
        if (p->dilation > 1 && p->window == 0) { die("%s: dilation %d needs a window (with window 0 every key is seen already)", source, p->dilation); }
        if (p->dilated_keys > 0 && p->dilation == 1) { die("%s: dilated keys %d need a dilation > 1", source, p->dilated_keys); }
        const int fields[5] = {p->window, p->sinks, p->lookahead, p->dilation, p->dilated_keys};
        const char* names[5] = {"window", "sinks", "lookahead", "dilation", "dilated keys"};
        for (int f = 0; f < 5; f++) {
            if (fields[f] > PATTERN_LIMIT) { die("%s: %s %d is more than %d", source, names[f], fields[f], PATTERN_LIMIT); }
        }
        if (p->dilated_keys > 0 && p->window + (long long)p->dilated_keys * p->dilation > PATTERN_LIMIT) {
            die("%s: window %d + %d dilated keys x dilation %d reaches past %d", source, p->window, p->dilated_keys,
                p->dilation, PATTERN_LIMIT);
        }
    }
    for (int l = 0; l < num_layers; l++) {
        if (mp->layer_pattern[l] < 0 || mp->layer_pattern[l] >= mp->num_patterns) {
            die("%s: layer %d uses pattern %d, expected 0..%d", source, l, mp->layer_pattern[l], mp->num_patterns - 1);
        }
    }
    if (mp->num_globals < 0 || mp->num_globals > MAX_GLOBALS) {
        die("%s: number of global positions must be 0..%d, got %d", source, MAX_GLOBALS, mp->num_globals);
    }
    for (int g = 0; g < mp->num_globals; g++) {
        if (mp->globals[g] < 0 || mp->globals[g] >= PATTERN_LIMIT || (g > 0 && mp->globals[g] <= mp->globals[g - 1])) {
            die("%s: global positions must be ascending, >= 0 and < %d, got %d", source, PATTERN_LIMIT, mp->globals[g]);
        }
    }
}

static ModelPattern default_pattern(void) {
    ModelPattern mp;
    memset(&mp, 0, sizeof(mp));
    mp.causal = 1;
    mp.num_patterns = 1;
    mp.patterns[0] = (AttnPattern){0, 0, 0, 1, 0};
    return mp;
}

static void pattern_describe(const AttnPattern* p, char* buf, size_t len) {
    if (p->window == 0) { snprintf(buf, len, "full"); return; }
    int n = snprintf(buf, len, "window %d", p->window);
    if (p->sinks) { n += snprintf(buf + n, len - n, ", sinks %d", p->sinks); }
    if (p->lookahead) { n += snprintf(buf + n, len - n, ", lookahead %d", p->lookahead); }
    if (p->dilation > 1 && p->dilated_keys > 0) { snprintf(buf + n, len - n, ", dilation %d x %d keys", p->dilation, p->dilated_keys); }
    else if (p->dilation > 1) { snprintf(buf + n, len - n, ", dilation %d, every such key", p->dilation); }
}

// @copy-end trainer-pattern

// @copy-begin trainer-config
// ----------------------------------------------------------------------------
// model configuration and parameters

typedef struct {
    int max_seq_len;        // maxT
    int vocab_size;         // V
    int padded_vocab_size;  // Vp, V rounded up to a multiple of 128
    int num_layers;         // L
    int num_heads;          // NH
    int channels;           // C
    int rope;               // 0: learned positions (wpe), 1: rotary
    int rope_theta;
    ModelPattern pattern;
} GPT2Config;

#define NUM_PARAMETER_TENSORS 16
typedef struct {
    float* wte;       // (Vp, C)
    float* wpe;       // (maxT, C), absent (size 0) with rotary positions
    float* ln1w;      // (L, C)
    float* ln1b;      // (L, C)
    float* qkvw;      // (L, 3C, C)
    float* qkvb;      // (L, 3C)
    float* attprojw;  // (L, C, C)
    float* attprojb;  // (L, C)
    float* ln2w;      // (L, C)
    float* ln2b;      // (L, C)
    float* fcw;       // (L, 4C, C)
    float* fcb;       // (L, 4C)
    float* fcprojw;   // (L, C, 4C)
    float* fcprojb;   // (L, C)
    float* lnfw;      // (C)
    float* lnfb;      // (C)
} ParameterTensors;

static const char* param_names[NUM_PARAMETER_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"
};

// the matrices AdamW decays; biases and LayerNorm parameters are left alone (as llm.c's CUDA trainer)
static const int param_is_decayed[NUM_PARAMETER_TENSORS] = {1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0};

static void fill_in_parameter_sizes(size_t* sizes, const GPT2Config* cfg) {
    size_t Vp = cfg->padded_vocab_size, C = cfg->channels, L = cfg->num_layers, maxT = cfg->max_seq_len;
    sizes[0] = Vp * C;
    sizes[1] = cfg->rope ? 0 : maxT * C;
    sizes[2] = L * C;
    sizes[3] = L * C;
    sizes[4] = L * (3 * C) * C;
    sizes[5] = L * (3 * C);
    sizes[6] = L * C * C;
    sizes[7] = L * C;
    sizes[8] = L * C;
    sizes[9] = L * C;
    sizes[10] = L * (4 * C) * C;
    sizes[11] = L * (4 * C);
    sizes[12] = L * C * (4 * C);
    sizes[13] = L * C;
    sizes[14] = C;
    sizes[15] = C;
}

static float* point_parameters(ParameterTensors* params, const size_t* sizes, float* memory) {
    float** ptrs[] = {
        &params->wte, &params->wpe, &params->ln1w, &params->ln1b, &params->qkvw, &params->qkvb,
        &params->attprojw, &params->attprojb, &params->ln2w, &params->ln2b, &params->fcw, &params->fcb,
        &params->fcprojw, &params->fcprojb, &params->lnfw, &params->lnfb
    };
    float* it = memory;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { *(ptrs[i]) = it; it += sizes[i]; }
    return memory;
}

static void config_validate(const GPT2Config* c, const char* source) {
    if (c->max_seq_len <= 0 || c->vocab_size <= 0 || c->num_layers <= 0 || c->num_heads <= 0 || c->channels <= 0) {
        die("%s: model sizes must be positive (maxT %d, V %d, L %d, NH %d, C %d)", source,
            c->max_seq_len, c->vocab_size, c->num_layers, c->num_heads, c->channels);
    }
    if (c->vocab_size > MAX_VOCAB) { die("%s: vocabulary %d does not fit uint16 tokens", source, c->vocab_size); }
    if (c->padded_vocab_size < c->vocab_size || c->padded_vocab_size % 128 != 0 || c->padded_vocab_size > MAX_VOCAB) {
        die("%s: padded vocabulary %d must be a multiple of 128, >= V %d and <= %d", source, c->padded_vocab_size,
            c->vocab_size, MAX_VOCAB);
    }
    if (c->channels > MAX_CHANNELS) { die("%s: %d channels, at most %d supported", source, c->channels, MAX_CHANNELS); }
    if (c->max_seq_len > MAX_SEQ_LEN) { die("%s: maximum sequence length %d, at most %d supported", source, c->max_seq_len, MAX_SEQ_LEN); }
    if (c->channels % c->num_heads != 0) { die("%s: channels %d not divisible by heads %d", source, c->channels, c->num_heads); }
    if (c->num_layers > MAX_LAYERS) { die("%s: %d layers, at most %d supported", source, c->num_layers, MAX_LAYERS); }
    if (c->rope && ((c->channels / c->num_heads) % 2 != 0 || c->rope_theta <= 0)) {
        die("%s: rotary positions need an even head size and a positive theta", source);
    }
    if (c->rope != 0 && c->rope != 1) { die("%s: position encoding %d, expected 0 (learned) or 1 (rotary)", source, c->rope); }
    pattern_validate(&c->pattern, c->num_layers, source);
    for (int g = 0; g < c->pattern.num_globals; g++) {
        if (c->pattern.globals[g] >= c->max_seq_len) {
            die("%s: global position %d is beyond the model's maximum sequence length %d", source, c->pattern.globals[g], c->max_seq_len);
        }
    }
}

static void header_to_pattern(const int* h, GPT2Config* c) {
    ModelPattern* mp = &c->pattern;
    memset(mp, 0, sizeof(*mp));
    if (h[8] == 0) {  // llm.c's file: full causal attention, learned positions
        *mp = default_pattern();
        c->rope = 0;
        c->rope_theta = 0;
        return;
    }
    c->rope = h[9];
    c->rope_theta = h[10];
    mp->causal = h[11];
    mp->num_patterns = h[12];
    mp->num_globals = h[13];
    for (int k = 0; k < MAX_PATTERNS; k++) {
        const int* s = h + 16 + 5 * k;
        mp->patterns[k] = (AttnPattern){s[0], s[1], s[2], s[3], s[4]};
    }
    for (int l = 0; l < MAX_LAYERS; l++) { mp->layer_pattern[l] = h[64 + l]; }
    for (int g = 0; g < MAX_GLOBALS; g++) { mp->globals[g] = h[192 + g]; }
}

static void pattern_to_header(const GPT2Config* c, int* h) {
    const ModelPattern* mp = &c->pattern;
    h[8] = 1;
    h[9] = c->rope;
    h[10] = c->rope ? c->rope_theta : 0;
    h[11] = mp->causal;
    h[12] = mp->num_patterns;
    h[13] = mp->num_globals;
    for (int k = 0; k < mp->num_patterns; k++) {
        int* s = h + 16 + 5 * k;
        const AttnPattern* p = &mp->patterns[k];
        s[0] = p->window; s[1] = p->sinks; s[2] = p->lookahead; s[3] = p->dilation; s[4] = p->dilated_keys;
    }
    for (int l = 0; l < c->num_layers; l++) { h[64 + l] = mp->layer_pattern[l]; }
    for (int g = 0; g < mp->num_globals; g++) { h[192 + g] = mp->globals[g]; }
}

static float bf16_to_float(uint16_t x) {
    uint32_t bits = (uint32_t)x << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

// xorshift*, as in llm.c: the same draws on every platform, so runs repeat exactly
static uint32_t random_u32(uint64_t* state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}
static float random_f32(uint64_t* state) { return (random_u32(state) >> 8) / 16777216.0f; }
static float random_normal(uint64_t* state) {
    float u1 = random_f32(state), u2 = random_f32(state);
    if (u1 < 1e-7f) { u1 = 1e-7f; }
    return sqrtf(-2.0f * logf(u1)) * cosf(2.0f * (float)M_PI * u2);
}

static size_t count_parameters(const GPT2Config* c) {
    size_t sizes[NUM_PARAMETER_TENSORS], n = 0;
    fill_in_parameter_sizes(sizes, c);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { n += sizes[i]; }
    return n;
}

// A NaN or Inf weight trains to NaN or samples garbage without a word: refuse it, naming the tensor.
static void params_check_finite(const float* params, const GPT2Config* c, const char* path, const char* verb) {
    size_t sizes[NUM_PARAMETER_TENSORS], offset = 0;
    fill_in_parameter_sizes(sizes, c);
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        for (size_t i = 0; i < sizes[t]; i++) {
            if (!isfinite(params[offset + i])) {
                die("'%s' %s a non-finite weight: %s[%zu] = %g", path, verb, param_names[t], i, params[offset + i]);
            }
        }
        offset += sizes[t];
    }
}

// Reads a checkpoint (float32 or bf16): fills the config and returns its parameters as float32
// (malloc'd), *n of them. Every size is checked before anything large is allocated.
static float* checkpoint_read(const char* path, GPT2Config* c, size_t* n) {
    file_size(path);  // a directory opens but reads as nothing: name it for what it is
    FILE* f = fopen_check(path, "rb");
    int h[HEADER_INTS];
    fread_check(h, sizeof(int), HEADER_INTS, f, path);
    if (h[0] != CHECKPOINT_MAGIC) { die("'%s' is not a model checkpoint: magic %d, expected %d", path, h[0], CHECKPOINT_MAGIC); }
    if (h[1] != 3 && h[1] != 5) { die("'%s': checkpoint version %d, expected 3 (float32) or 5 (bf16)", path, h[1]); }
    if (h[8] != 0 && h[8] != 1) { die("'%s': pattern slots version %d, expected 0 or 1", path, h[8]); }
    c->max_seq_len = h[2];
    c->vocab_size = h[3];
    c->num_layers = h[4];
    c->num_heads = h[5];
    c->channels = h[6];
    c->padded_vocab_size = h[7];
    header_to_pattern(h, c);
    config_validate(c, path);  // its bounds keep the parameter count and the byte count below 2^50
    *n = count_parameters(c);
    size_t bytes_per = h[1] == 3 ? 4 : 2;
    long expected = (long)(HEADER_INTS * sizeof(int) + *n * bytes_per);
    if (file_size(path) != expected) {
        die("'%s' has %ld bytes, expected %ld for its header's sizes", path, file_size(path), expected);
    }
    float* params = (float*)malloc_check(*n * sizeof(float));
    if (h[1] == 3) {
        fread_check(params, sizeof(float), *n, f, path);
    } else {
        uint16_t* tmp = (uint16_t*)malloc_check(*n * sizeof(uint16_t));
        fread_check(tmp, sizeof(uint16_t), *n, f, path);
        for (size_t i = 0; i < *n; i++) { params[i] = bf16_to_float(tmp[i]); }
        free(tmp);
    }
    fclose(f);
    params_check_finite(params, c, path, "holds");
    return params;
}

static void checkpoint_write(const char* path, const GPT2Config* c, const float* params, size_t n) {
    params_check_finite(params, c, path, "would get");  // a diverged model is never written
    int h[HEADER_INTS];
    memset(h, 0, sizeof(h));
    h[0] = CHECKPOINT_MAGIC;
    h[1] = 3;
    h[2] = c->max_seq_len;
    h[3] = c->vocab_size;
    h[4] = c->num_layers;
    h[5] = c->num_heads;
    h[6] = c->channels;
    h[7] = c->padded_vocab_size;
    pattern_to_header(c, h);
    char tmp[4300];
    FILE* f = atomic_open(path, tmp, sizeof(tmp));
    fwrite_check(h, sizeof(int), HEADER_INTS, f, tmp);
    fwrite_check(params, sizeof(float), n, f, tmp);
    atomic_commit(f, tmp, path);
}
// GPT-2's initialization (normal 0.02, residual projections scaled by 1/sqrt(2L), LayerNorm 1
// and 0) from a fixed seed, into params laid out by sizes.
static void params_init_random(float* params, const size_t* sizes, const GPT2Config* c, uint64_t seed) {
    uint64_t rng = seed;
    float residual_std = 0.02f / sqrtf(2.0f * c->num_layers);
    float* p = params;
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        size_t n = sizes[t];
        int is_ln_weight = (t == 2 || t == 8 || t == 14);
        int is_bias = (t == 3 || t == 5 || t == 7 || t == 9 || t == 11 || t == 13 || t == 15);
        float std = (t == 6 || t == 12) ? residual_std : 0.02f;
        for (size_t i = 0; i < n; i++) {
            if (is_ln_weight) { p[i] = 1.0f; }
            else if (is_bias) { p[i] = 0.0f; }
            else { p[i] = std * random_normal(&rng); }
        }
        if (t == 0) {  // padded vocabulary rows are never used: keep them zero as llm.c does
            memset(p + (size_t)c->vocab_size * c->channels, 0,
                   (size_t)(c->padded_vocab_size - c->vocab_size) * c->channels * sizeof(float));
        }
        p += n;
    }
}
// @copy-end trainer-config

// @copy-begin trainer-schedule
// linear warmup, then cosine decay from the peak to peak * final_fraction at the last step
static float learning_rate_at(int step, int total_steps, int warmup, float peak, float final_fraction) {
    if (step < warmup) { return peak * (step + 1) / warmup; }
    if (total_steps <= warmup) { return peak; }
    float progress = (float)(step - warmup) / (float)(total_steps - warmup);
    if (progress > 1.0f) { progress = 1.0f; }
    float cosine = 0.5f * (1.0f + cosf((float)M_PI * progress));
    return peak * (final_fraction + (1.0f - final_fraction) * cosine);
}

// The training guard. A step whose loss or gradient norm is NaN or Inf skips its update (one bad
// batch must not poison the weights); with --skip-z Z, so does a step whose loss or norm lies more
// than Z standard deviations above the mean of the last GUARD_WINDOW good steps (llm.c's outlier
// test). GUARD_MAX_SKIPS skips in a row mean the run has diverged: it stops, exit status 1.
#define GUARD_WINDOW 128
#define GUARD_MAX_SKIPS 5
typedef struct {
    float z;             // 0: no outlier test
    int skipped_in_row;
    int count;           // good steps seen, the last GUARD_WINDOW of them kept
    double loss[GUARD_WINDOW];
    double norm[GUARD_WINDOW];
} StepGuard;

// x in standard deviations above the window's mean; 0 until the window is full
static double guard_zscore(const double* window, int count, double x) {
    if (count < GUARD_WINDOW) { return 0.0; }
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < GUARD_WINDOW; i++) { mean += window[i]; }
    mean /= GUARD_WINDOW;
    for (int i = 0; i < GUARD_WINDOW; i++) { var += (window[i] - mean) * (window[i] - mean); }
    var /= GUARD_WINDOW;
    return var > 0.0 ? (x - mean) / sqrt(var) : 0.0;
}

// 1: apply this step's update; 0: skip it (said on stdout)
static int step_guard(StepGuard* g, int step, float loss, float norm) {
    char why[128] = "";
    if (!isfinite(loss) || !isfinite(norm)) {
        snprintf(why, sizeof(why), "not finite");
    } else if (g->z > 0.0f) {
        double zl = guard_zscore(g->loss, g->count, loss), zn = guard_zscore(g->norm, g->count, norm);
        if (zl > g->z || zn > g->z) {
            snprintf(why, sizeof(why), "%.1f and %.1f standard deviations above the mean of the last %d steps (--skip-z %g)",
                     zl, zn, GUARD_WINDOW, g->z);
        }
    }
    if (why[0] == '\0') {
        g->loss[g->count % GUARD_WINDOW] = loss;
        g->norm[g->count % GUARD_WINDOW] = norm;
        g->count++;
        g->skipped_in_row = 0;
        return 1;
    }
    g->skipped_in_row++;
    printf("step %d: loss %g, gradient norm %g: %s; update skipped (%d in a row)\n", step, loss, norm, why, g->skipped_in_row);
    if (g->skipped_in_row >= GUARD_MAX_SKIPS) {
        die("steps %d to %d all skipped their update (loss or gradient norm not finite or an outlier): the run diverged, "
            "stopping without writing the model", step - GUARD_MAX_SKIPS + 1, step);
    }
    return 0;
}
// @copy-end trainer-schedule

// @copy-begin trainer-data
// ----------------------------------------------------------------------------
// data loader: llm.c's token shards, read B*T+1 tokens at a time, walking the shards in order

typedef struct {
    glob_t paths;
    size_t num_shards;
    size_t shard_index;
    size_t position;      // token index of the next batch in the current shard
    size_t shard_tokens;  // tokens in the current shard
    size_t batches_per_pass;  // batches before the loader wraps around to the first shard
    unsigned char* scanned;   // (num_shards) 1 once a shard's tokens were checked against V
    FILE* file;
    int B, T;
    int vocab_size;
    uint16_t* buffer;     // (B*T+1)
    int* inputs;          // (B, T)
    int* targets;         // (B, T)
} DataLoader;

static size_t shard_check(const char* path, size_t min_tokens) {
    FILE* f = fopen_check(path, "rb");
    int h[HEADER_INTS];
    if (fread(h, sizeof(int), HEADER_INTS, f) != HEADER_INTS) { die("shard '%s' is truncated: no 1024-byte header", path); }
    fclose(f);
    if (h[0] != SHARD_MAGIC) { die("'%s' is not a token shard: magic %d, expected %d", path, h[0], SHARD_MAGIC); }
    if (h[1] != 1) { die("shard '%s': version %d, expected 1", path, h[1]); }
    if (h[2] < 0) { die("shard '%s': negative token count %d", path, h[2]); }
    long expected = (long)HEADER_INTS * 4 + 2L * h[2];
    if (file_size(path) != expected) {
        die("shard '%s' has %ld bytes, expected %ld for its %d tokens (truncated?)", path, file_size(path), expected, h[2]);
    }
    if ((size_t)h[2] < min_tokens) { die("shard '%s' has %d tokens, fewer than one batch needs (%zu)", path, h[2], min_tokens); }
    return (size_t)h[2];
}

// A token outside the vocabulary would index past the embedding table: each shard is read through
// once, the first time it is opened, so that a bad token is named before a step uses the shard.
static void shard_scan_tokens(FILE* f, const char* path, size_t n, int vocab_size) {
    uint16_t chunk[32768];
    if (fseek(f, HEADER_INTS * 4, SEEK_SET) != 0) { die("seek in '%s' failed", path); }
    for (size_t done = 0; done < n; ) {
        size_t count = n - done < 32768 ? n - done : 32768;
        fread_check(chunk, sizeof(uint16_t), count, f, path);
        for (size_t i = 0; i < count; i++) {
            if (chunk[i] >= vocab_size) {
                die("shard '%s': token %u at %zu is outside the model's vocabulary (V=%d)", path, chunk[i], done + i, vocab_size);
            }
        }
        done += count;
    }
}

static void dataloader_open_shard(DataLoader* d, size_t index) {
    if (d->file) { fclose(d->file); }
    d->shard_index = index;
    const char* path = d->paths.gl_pathv[index];
    d->shard_tokens = shard_check(path, (size_t)d->B * d->T + 1);
    d->file = fopen_check(path, "rb");
    if (!d->scanned[index]) {
        shard_scan_tokens(d->file, path, d->shard_tokens, d->vocab_size);
        d->scanned[index] = 1;
    }
}

static void dataloader_init(DataLoader* d, const char* pattern, int B, int T, int vocab_size, const char* flag) {
    memset(d, 0, sizeof(*d));
    d->B = B;
    d->T = T;
    d->vocab_size = vocab_size;
    if (glob(pattern, 0, NULL, &d->paths) != 0 || d->paths.gl_pathc == 0) {
        die("%s '%s': no token shard matches (run `make data` or `python3 data/prepare.py`)", flag, pattern);
    }
    d->num_shards = d->paths.gl_pathc;
    d->scanned = (unsigned char*)calloc_check(d->num_shards, 1);
    for (size_t i = 0; i < d->num_shards; i++) {  // a batch reads B*T+1 tokens and moves on by B*T
        d->batches_per_pass += (shard_check(d->paths.gl_pathv[i], (size_t)B * T + 1) - 1) / ((size_t)B * T);
    }
    d->buffer = (uint16_t*)malloc_check(((size_t)B * T + 1) * sizeof(uint16_t));
    d->inputs = (int*)malloc_check((size_t)B * T * sizeof(int));
    d->targets = (int*)malloc_check((size_t)B * T * sizeof(int));
    dataloader_open_shard(d, 0);
}

static void dataloader_seek(DataLoader* d, size_t shard_index, size_t position) {
    if (shard_index >= d->num_shards) { die("resume: shard index %zu, but only %zu shards match", shard_index, d->num_shards); }
    dataloader_open_shard(d, shard_index);
    if (position > d->shard_tokens) { die("resume: position %zu is past the end of shard %zu", position, shard_index); }
    d->position = position;
}

static void dataloader_reset(DataLoader* d) { dataloader_seek(d, 0, 0); }

static void dataloader_next_batch(DataLoader* d) {
    size_t n = (size_t)d->B * d->T + 1;
    if (d->position + n > d->shard_tokens) {  // not enough left: next shard (wrapping around)
        dataloader_open_shard(d, (d->shard_index + 1) % d->num_shards);
        d->position = 0;
    }
    const char* path = d->paths.gl_pathv[d->shard_index];
    if (fseek(d->file, HEADER_INTS * 4 + (long)d->position * 2, SEEK_SET) != 0) { die("seek in '%s' failed", path); }
    fread_check(d->buffer, sizeof(uint16_t), n, d->file, path);  // tokens < V: shard_scan_tokens
    for (size_t i = 0; i + 1 < n; i++) { d->inputs[i] = d->buffer[i]; d->targets[i] = d->buffer[i + 1]; }
    d->position += (size_t)d->B * d->T;
}

static void dataloader_free(DataLoader* d) {
    if (d->file) { fclose(d->file); }
    globfree(&d->paths);
    free(d->scanned);
    free(d->buffer);
    free(d->inputs);
    free(d->targets);
}
// @copy-end trainer-data

// @copy-begin trainer-state
// ----------------------------------------------------------------------------
// optimizer state: what an exact resume needs beyond the weights

typedef struct {
    int step;
    int B, T, total_batch;  // the batch shape the run was started with
    size_t shard_index;
    size_t position;
    uint64_t rng;
} TrainState;

static void state_save(const char* path, const TrainState* s, const float* m, const float* v, size_t num_parameters) {
    int h[HEADER_INTS];
    memset(h, 0, sizeof(h));
    h[0] = STATE_MAGIC;
    h[1] = 1;
    h[2] = s->step;
    h[3] = (int)(num_parameters & 0xffffffffu);
    h[4] = (int)(num_parameters >> 32);
    h[5] = (int)s->shard_index;
    h[6] = (int)(s->position & 0xffffffffu);
    h[7] = (int)(s->position >> 32);
    h[8] = (int)(s->rng & 0xffffffffu);
    h[9] = (int)(s->rng >> 32);
    h[10] = s->B;
    h[11] = s->T;
    h[12] = s->total_batch;
    char tmp[4300];
    FILE* f = atomic_open(path, tmp, sizeof(tmp));
    fwrite_check(h, sizeof(int), HEADER_INTS, f, tmp);
    fwrite_check(m, sizeof(float), num_parameters, f, tmp);
    fwrite_check(v, sizeof(float), num_parameters, f, tmp);
    atomic_commit(f, tmp, path);
}

// Reads a state file into s and the preallocated m and v (the sum of param_sizes each). The step
// must be the one in the file's name (the model file beside it holds that step's weights), and the
// moments finite, v >= 0: a bad state is named here, not found as a NaN loss later.
static void state_load(const char* path, int expected_step, TrainState* s, float* m, float* v, const size_t* param_sizes) {
    size_t num_parameters = 0;
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) { num_parameters += param_sizes[t]; }
    FILE* f = fopen_check(path, "rb");
    int h[HEADER_INTS];
    fread_check(h, sizeof(int), HEADER_INTS, f, path);
    if (h[0] != STATE_MAGIC) { die("'%s' is not an optimizer state file: magic %d, expected %d", path, h[0], STATE_MAGIC); }
    if (h[1] != 1) { die("'%s': state version %d, expected 1", path, h[1]); }
    size_t n = (size_t)(uint32_t)h[3] | ((size_t)(uint32_t)h[4] << 32);
    if (n != num_parameters) { die("'%s' holds %zu parameters, the model has %zu", path, n, num_parameters); }
    long expected = (long)(HEADER_INTS * 4 + 2 * n * sizeof(float));
    if (file_size(path) != expected) { die("'%s' has %ld bytes, expected %ld", path, file_size(path), expected); }
    s->step = h[2];
    s->shard_index = (size_t)h[5];
    s->position = (size_t)(uint32_t)h[6] | ((size_t)(uint32_t)h[7] << 32);
    s->rng = (uint64_t)(uint32_t)h[8] | ((uint64_t)(uint32_t)h[9] << 32);
    s->B = h[10];
    s->T = h[11];
    s->total_batch = h[12];
    if (s->step != expected_step) { die("'%s' says step %d, expected %d (the step in its name)", path, s->step, expected_step); }
    if (s->B < 1 || s->T < 1 || s->total_batch < 1) {
        die("'%s': batch shape B=%d T=%d total %d, expected positive values", path, s->B, s->T, s->total_batch);
    }
    fread_check(m, sizeof(float), n, f, path);
    fread_check(v, sizeof(float), n, f, path);
    fclose(f);
    size_t offset = 0;
    for (int t = 0; t < NUM_PARAMETER_TENSORS; t++) {
        for (size_t i = offset; i < offset + param_sizes[t]; i++) {
            if (!isfinite(m[i]) || !isfinite(v[i]) || v[i] < 0.0f) {
                die("'%s': the Adam moments of %s[%zu] are m = %g, v = %g; expected finite values, v >= 0",
                    path, param_names[t], i - offset, m[i], v[i]);
            }
        }
        offset += param_sizes[t];
    }
}

// the newest step in dir that has both a model and a state file, or -1
static int latest_checkpoint_step(const char* dir) {
    char pattern[4200];
    snprintf(pattern, sizeof(pattern), "%s/state_*.bin", dir);
    glob_t g;
    int best = -1;
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const char* name = strrchr(g.gl_pathv[i], '/') + 1;
            int step;
            char model_path[4200];
            if (sscanf(name, "state_%d.bin", &step) != 1) { continue; }
            snprintf(model_path, sizeof(model_path), "%s/model_%08d.bin", dir, step);
            struct stat st;
            if (stat(model_path, &st) == 0 && step > best) { best = step; }
        }
        globfree(&g);
    }
    return best;
}
// @copy-end trainer-state

// @copy-begin trainer-sampling
// ----------------------------------------------------------------------------
// sampling and printing tokens

static int sample_from(const float* probs, int n, float coin) {
    float cdf = 0.0f;
    for (int i = 0; i < n; i++) {
        cdf += probs[i];
        if (coin < cdf) { return i; }
    }
    return n - 1;  // rounding left the cdf a hair under 1
}

// llm.c's GPT-2 tokenizer file (written by its data scripts), for printing GPT-2 tokens as text
typedef struct {
    int vocab_size;
    char** tokens;
} Tokenizer;

static void tokenizer_load(Tokenizer* tk, const char* path) {
    FILE* f = fopen_check(path, "rb");
    uint32_t h[256];
    fread_check(h, sizeof(uint32_t), 256, f, path);
    if (h[0] != 20240328 || (h[1] != 1 && h[1] != 2)) { die("'%s' is not an llm.c tokenizer file (magic %u)", path, h[0]); }
    if (h[2] < 1 || h[2] > MAX_VOCAB) { die("'%s': tokenizer of %u tokens, expected 1..%d", path, h[2], MAX_VOCAB); }
    tk->vocab_size = (int)h[2];
    tk->tokens = (char**)malloc_check(tk->vocab_size * sizeof(char*));
    for (int i = 0; i < tk->vocab_size; i++) {
        unsigned char len;
        fread_check(&len, 1, 1, f, path);
        tk->tokens[i] = (char*)malloc_check(len + 1);
        fread_check(tk->tokens[i], 1, len, f, path);
        tk->tokens[i][len] = '\0';
    }
    fclose(f);
}

static void tokenizer_free(Tokenizer* tk) {
    for (int i = 0; tk->tokens && i < tk->vocab_size; i++) { free(tk->tokens[i]); }
    free(tk->tokens);
    tk->tokens = NULL;
}

static void print_token(const Tokenizer* tk, int vocab_size, int token) {
    if (tk && tk->tokens && token < tk->vocab_size) { fputs(tk->tokens[token], stdout); }
    else if (vocab_size <= 256) { putchar(token); }  // byte-level: the token is the byte
    else { printf("<%d>", token); }
}
// @copy-end trainer-sampling

// @copy-begin trainer-cli
// ----------------------------------------------------------------------------
// command line

static void usage(void) {
    printf(
        "usage: %s [flags]\n"
        "data and output:\n"
        "  -i PATTERN   train token shards (glob)            default data/books/books_train.bin\n"
        "  -j PATTERN   val token shards (glob)              default data/books/books_val.bin\n"
        "  -o DIR       output: log.csv, model_/state_ checkpoints   default none\n"
        "  -e INIT      checkpoint file, or a new model: dN (N layers, N heads of 64) or lLcChH (e.g. l2c64h4)  default d4\n"
        "  -V N         vocabulary of a new model            default: 256 if the train shard is bytes, else 50257\n"
        "  -y 1         resume from the newest checkpoint in -o\n"
        "training:\n"
        "  -b B  -t T   batch size, sequence length          default 4, 256\n"
        "  -d N         total batch in tokens (gradient accumulation)  default B*T\n"
        "  -x N         steps                                default 100\n"
        "  -l LR  -u N  -q F   peak learning rate, warmup steps, final lr fraction (cosine)\n"
        "               default: lr and warmup from the model's size (README, \"Learning rate\"), 0.1\n"
        "  -c WD        weight decay                         default 0.1\n"
        "  -k CLIP      gradient norm clip (0 = off)         default 1.0\n"
        "  -r SEED      seed for a new model and sampling (>= 1)   default 1337\n"
        "  -v N  -m M   val loss every N steps, over M batches (at most the val split's)   default 25, 8\n"
        "  -n N         checkpoint every N steps (and at the end) with -o   default 0 (end only)\n"
        "  -s N  -g N   sample every N steps, N tokens       default 0 (off), 64\n"
        "  --skip-z Z   skip the update of a step whose loss or gradient norm is Z standard deviations\n"
        "               above the mean of the last 128 (0 = off; NaN/Inf steps are always skipped;\n"
        "               the 128 restart on resume)   default 0\n"
        "attention pattern and positions of a new model (or to override a checkpoint's pattern):\n"
        "  --window W        keys 0 <= i-j < W; 0 = full         default 0\n"
        "  --sinks S         keys j < S always                   default 0\n"
        "  --causal 0|1                                          default 1\n"
        "  --lookahead R     non-causal only: 0 < j-i <= R       default 0\n"
        "  --global P,P,...  global positions                    default none\n"
        "  --dilation d  --dilated-keys K   every d-th key beyond the window, K of them (0 = all)  default 1, 0\n"
        "  --layer-windows W,W,...   one window per layer (0 = full), sinks/dilation shared\n"
        "  --full-every k    every k-th layer full, the others windowed (Gemma-style)\n"
        "  --pos learned|rope  --rope-theta N   position encoding    default learned, 10000\n"
        "  --max-seq-len N   maxT of a new model                 default T\n"
        "other:\n"
        "  --generate N      load -e, print N sampled tokens, exit\n"
        "  --eval            load -e CHECKPOINT, print its loss over the val split (-j; -m M: the first M\n"
        "                    batches of B x T), exit without training or writing\n"
        "  --eval-positions FILE.csv   with --eval: also the mean loss at each position 0..T-1\n"
        "  --stream N        with --eval: the first N+1 val tokens as one stream through the rolling KV cache\n"
        "                    (causal, no globals or dilation; rotary positions go past maxT), each token's\n"
        "                    loss to --eval-positions, the mean of each block of -t tokens printed\n"
        "  --stream-recompute W   with --stream: each token's loss from a fresh forward over the W tokens\n"
        "                    that end at it instead (the sliding window recomputed, no cache)\n"
        "  --eval-greedy K   with --eval: each val row of -t tokens is a prompt (its first T-K) and an answer\n"
        "                    (its last K): decode K tokens greedily after the prompt, count exact answers\n"
        "                    (passkey retrieval: scripts/passkey_study.py)\n"
        "  --eval-rows FILE.csv   with --eval-greedy: each row's answer, decoded and expected\n"
        "  --greedy-recompute 1   with --eval-greedy: decode by re-running the forward for each answer token\n"
        "                    (the path of patterns the KV cache does not cover) where the cache would\n"
        "                    decode; 0 (default): through the cache where it covers the pattern\n"
        "  --tokenizer FILE  llm.c's gpt2_tokenizer.bin to print GPT-2 tokens\n"
        "several GPUs (the CUDA trainers; one process per GPU, README \"Several GPUs and machines\"):\n"
        "  -z 0|1            ZeRO-1: each GPU keeps the master weights and AdamW moments of its shard only  default 0\n"
        "  --nccl-init HOW   how the processes meet: tcp://HOST:PORT (rank 0's address), file:PATH or mpi\n"
        "                    default: file:$NCCL_ID_FILE where set, else mpi under mpirun in an MPI build\n"
        "  --nccl-timeout S  seconds a process waits for the others at the start   default 300\n", TRAINER_NAME);
}

static int parse_int_in(const char* flag, const char* value, int min_value, int max_value) {
    char* end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || *end != '\0' || end == value || v < min_value || v > max_value) {
        if (max_value == 2147483647) { die("%s '%s': expected an integer >= %d", flag, value, min_value); }
        die("%s '%s': expected an integer from %d to %d", flag, value, min_value, max_value);
    }
    return (int)v;
}

static int parse_int(const char* flag, const char* value, int min_value) {
    return parse_int_in(flag, value, min_value, 2147483647);
}

// a pattern field (window, sinks, ...): at most PATTERN_LIMIT (sums of two are taken in 64 bits)
static int parse_pattern_int(const char* flag, const char* value, int min_value) {
    return parse_int_in(flag, value, min_value, PATTERN_LIMIT);
}

static float parse_float(const char* flag, const char* value, float min_value) {
    char* end;
    errno = 0;
    float v = strtof(value, &end);
    if (errno || *end != '\0' || end == value || !(v >= min_value) || !isfinite(v)) {
        die("%s '%s': expected a number >= %g", flag, value, min_value);
    }
    return v;
}

// "a,b,c": every item an integer in 0..PATTERN_LIMIT (no empty items); with ascending, each larger
// than the one before
static int parse_int_list(const char* flag, const char* value, int* out, int max_count, int ascending) {
    int n = 0;
    const char* item = value;
    for (;;) {
        const char* comma = strchr(item, ',');
        size_t len = comma ? (size_t)(comma - item) : strlen(item);
        char buf[32];
        if (len == 0 || len >= sizeof(buf)) { die("%s '%s': expected a comma-separated list of integers", flag, value); }
        if (n == max_count) { die("%s '%s': more than %d values", flag, value, max_count); }
        memcpy(buf, item, len);
        buf[len] = '\0';
        out[n] = parse_int_in(flag, buf, 0, PATTERN_LIMIT - 1);
        if (ascending && n > 0 && out[n] <= out[n - 1]) { die("%s '%s': expected ascending positions, no repeats", flag, value); }
        n++;
        if (!comma) { break; }
        item = comma + 1;
    }
    return n;
}

typedef struct {
    const char* train_pattern;
    const char* val_pattern;
    const char* out_dir;
    const char* init;
    const char* tokenizer;
    int vocab_size;  // 0: decide from the data
    int resume;
    int B, T, total_batch;
    int steps, warmup, val_every, val_batches, ckpt_every, sample_every, gen_tokens, generate;
    float lr, final_lr_frac, weight_decay, grad_clip;  // lr, warmup < 0: from the model (default_schedule)
    uint64_t seed;
    // pattern flags; -1 marks "not given" so a checkpoint's pattern is kept unless overridden
    int window, sinks, causal, lookahead, dilation, dilated_keys, full_every;
    int num_layer_windows, layer_windows[MAX_LAYERS];
    int num_globals, globals[MAX_GLOBALS];
    int rope, rope_theta, max_seq_len;
    float skip_z;           // --skip-z: the training guard's outlier threshold, 0 = off
    int val_batches_given;  // -m given: --eval evaluates that many batches, not the whole split
    int eval;               // --eval: report the val loss of -e CHECKPOINT and exit
    const char* eval_positions;  // --eval-positions: CSV of the mean loss per position
    int stream;                  // --stream N: tokens fed through the KV cache (0 = off)
    int stream_recompute;        // --stream-recompute W: each token's loss from a fresh W-token forward
    int eval_greedy;             // --eval-greedy K: decode each row's last K tokens greedily (0 = off)
    int greedy_recompute;        // --greedy-recompute 1: decode by re-running the forward, not through the KV cache
    const char* eval_rows;       // --eval-rows: CSV of each row's decoded and expected answer
    int zero;                    // -z 1: ZeRO-1, each GPU keeps its shard of the optimizer (CUDA trainers)
    const char* nccl_init;       // --nccl-init: how several processes meet (CUDA trainers; NULL = default)
    float nccl_timeout;          // --nccl-timeout: seconds a process waits for the others at the start
    int lr_from_model, warmup_from_model;  // set by default_schedule, for the printout
} Args;

static void parse_args(Args* a, int argc, char** argv) {
    *a = (Args){
        .train_pattern = "data/books/books_train.bin", .val_pattern = "data/books/books_val.bin",
        .out_dir = NULL, .init = "d4", .tokenizer = NULL, .vocab_size = 0, .resume = 0,
        .B = 4, .T = 256, .total_batch = 0, .steps = 100, .warmup = -1, .val_every = 25, .val_batches = 8,
        .ckpt_every = 0, .sample_every = 0, .gen_tokens = 64, .generate = 0,
        .lr = -1.0f, .final_lr_frac = 0.1f, .weight_decay = 0.1f, .grad_clip = 1.0f, .seed = 1337,
        .window = -1, .sinks = -1, .causal = -1, .lookahead = -1, .dilation = -1, .dilated_keys = -1,
        .full_every = 0, .num_layer_windows = 0, .num_globals = -1, .rope = -1, .rope_theta = 10000, .max_seq_len = 0,
        .skip_z = 0.0f, .val_batches_given = 0, .eval = 0, .eval_positions = NULL, .stream = 0, .stream_recompute = 0,
        .eval_greedy = 0, .greedy_recompute = 0, .eval_rows = NULL, .zero = 0, .nccl_init = NULL, .nccl_timeout = 300.0f,
    };
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) { usage(); exit(EXIT_SUCCESS); }
        if (f[0] != '-') { die("unexpected argument '%s' (flags start with '-'; see -h)", f); }
        if (strcmp(f, "--eval") == 0) { a->eval = 1; continue; }  // the one flag without a value
        if (i + 1 >= argc) { die("flag %s needs a value (see -h)", f); }
        const char* v = argv[++i];
        if (strcmp(f, "-i") == 0) { a->train_pattern = v; }
        else if (strcmp(f, "-j") == 0) { a->val_pattern = v; }
        else if (strcmp(f, "-o") == 0) {
            if (*v == '\0') { die("-o '': expected a directory name"); }
            a->out_dir = v;
        }
        else if (strcmp(f, "-e") == 0) { a->init = v; }
        else if (strcmp(f, "-V") == 0) { a->vocab_size = parse_int(f, v, 1); }
        else if (strcmp(f, "-y") == 0) { a->resume = parse_int(f, v, 0); }
        else if (strcmp(f, "-b") == 0) { a->B = parse_int(f, v, 1); }
        else if (strcmp(f, "-t") == 0) { a->T = parse_int(f, v, 1); }
        else if (strcmp(f, "-d") == 0) { a->total_batch = parse_int(f, v, 1); }
        else if (strcmp(f, "-x") == 0) { a->steps = parse_int(f, v, 0); }
        else if (strcmp(f, "-l") == 0) { a->lr = parse_float(f, v, 0.0f); }
        else if (strcmp(f, "-u") == 0) { a->warmup = parse_int(f, v, 0); }
        else if (strcmp(f, "-q") == 0) { a->final_lr_frac = parse_float(f, v, 0.0f); }
        else if (strcmp(f, "-c") == 0) { a->weight_decay = parse_float(f, v, 0.0f); }
        else if (strcmp(f, "-k") == 0) { a->grad_clip = parse_float(f, v, 0.0f); }
        else if (strcmp(f, "-r") == 0) { a->seed = (uint64_t)parse_int(f, v, 1); }  // xorshift from 0 stays 0
        else if (strcmp(f, "-v") == 0) { a->val_every = parse_int(f, v, 0); }
        else if (strcmp(f, "-m") == 0) { a->val_batches = parse_int(f, v, 1); a->val_batches_given = 1; }
        else if (strcmp(f, "-n") == 0) { a->ckpt_every = parse_int(f, v, 0); }
        else if (strcmp(f, "-s") == 0) { a->sample_every = parse_int(f, v, 0); }
        else if (strcmp(f, "-g") == 0) { a->gen_tokens = parse_int(f, v, 1); }
        else if (strcmp(f, "--window") == 0) { a->window = parse_pattern_int(f, v, 0); }
        else if (strcmp(f, "--sinks") == 0) { a->sinks = parse_pattern_int(f, v, 0); }
        else if (strcmp(f, "--causal") == 0) {
            a->causal = parse_int(f, v, 0);
            if (a->causal > 1) { die("--causal '%s': expected 0 or 1", v); }
        }
        else if (strcmp(f, "--lookahead") == 0) { a->lookahead = parse_pattern_int(f, v, 0); }
        else if (strcmp(f, "--dilation") == 0) { a->dilation = parse_pattern_int(f, v, 1); }
        else if (strcmp(f, "--dilated-keys") == 0) { a->dilated_keys = parse_pattern_int(f, v, 0); }
        else if (strcmp(f, "--global") == 0) { a->num_globals = parse_int_list(f, v, a->globals, MAX_GLOBALS, 1); }
        else if (strcmp(f, "--layer-windows") == 0) { a->num_layer_windows = parse_int_list(f, v, a->layer_windows, MAX_LAYERS, 0); }
        else if (strcmp(f, "--full-every") == 0) { a->full_every = parse_int_in(f, v, 1, MAX_LAYERS); }
        else if (strcmp(f, "--pos") == 0) {
            if (strcmp(v, "learned") == 0) { a->rope = 0; }
            else if (strcmp(v, "rope") == 0) { a->rope = 1; }
            else { die("--pos '%s': expected learned or rope", v); }
        }
        else if (strcmp(f, "--rope-theta") == 0) { a->rope_theta = parse_int(f, v, 1); }
        else if (strcmp(f, "--max-seq-len") == 0) { a->max_seq_len = parse_int_in(f, v, 1, MAX_SEQ_LEN); }
        else if (strcmp(f, "--skip-z") == 0) { a->skip_z = parse_float(f, v, 0.0f); }
        else if (strcmp(f, "--stream") == 0) { a->stream = parse_int_in(f, v, 1, PATTERN_LIMIT); }
        else if (strcmp(f, "--stream-recompute") == 0) { a->stream_recompute = parse_int_in(f, v, 1, PATTERN_LIMIT); }
        else if (strcmp(f, "--eval-greedy") == 0) { a->eval_greedy = parse_int_in(f, v, 1, PATTERN_LIMIT); }
        else if (strcmp(f, "--greedy-recompute") == 0) { a->greedy_recompute = parse_int_in(f, v, 0, 1); }
        else if (strcmp(f, "--eval-rows") == 0) {
            if (*v == '\0') { die("--eval-rows '': expected a file name"); }
            a->eval_rows = v;
        }
        else if (strcmp(f, "-z") == 0) { a->zero = parse_int_in(f, v, 0, 1); }
        else if (strcmp(f, "--nccl-init") == 0) { a->nccl_init = v; }  // checked where it is used
        else if (strcmp(f, "--nccl-timeout") == 0) {
            a->nccl_timeout = parse_float(f, v, 1.0f);
            if (a->nccl_timeout > 86400.0f) { die("--nccl-timeout %s: expected at most 86400 seconds (a day)", v); }
        }
        else if (strcmp(f, "--generate") == 0) { a->generate = parse_int(f, v, 1); }
        else if (strcmp(f, "--tokenizer") == 0) { a->tokenizer = v; }
        else if (strcmp(f, "--eval-positions") == 0) {
            if (*v == '\0') { die("--eval-positions '': expected a file name"); }
            a->eval_positions = v;
        }
        else { die("unknown flag '%s' (see -h)", f); }
    }
    if (a->resume && a->out_dir == NULL) { die("-y 1 (resume) needs -o DIR holding the checkpoints"); }
    if ((a->num_layer_windows > 0) + (a->full_every > 0) + (a->window >= 0 && a->num_layer_windows > 0) > 1) {
        die("--layer-windows sets every layer's window: drop --window / --full-every");
    }
    if (a->final_lr_frac > 1.0f) { die("-q %g: the final learning-rate fraction must be in [0, 1]", a->final_lr_frac); }
    if (a->resume > 1) { die("-y %d: expected 0 or 1", a->resume); }
    if (a->eval_positions && !a->eval) { die("--eval-positions needs --eval"); }
    if (a->stream && !a->eval) { die("--stream needs --eval (it evaluates -e CHECKPOINT)"); }
    if (a->stream_recompute && !a->stream) { die("--stream-recompute needs --stream N"); }
    if (a->eval_greedy && !a->eval) { die("--eval-greedy needs --eval (it evaluates -e CHECKPOINT)"); }
    if (a->eval_greedy && a->stream) { die("--eval-greedy and --stream: one evaluation at a time"); }
    if (a->eval_greedy >= a->T) { die("--eval-greedy %d: the answer must be shorter than the row, -t %d", a->eval_greedy, a->T); }
    if (a->eval_rows && !a->eval_greedy) { die("--eval-rows needs --eval-greedy K"); }
    if (a->greedy_recompute && !a->eval_greedy) { die("--greedy-recompute needs --eval-greedy K"); }
    if (a->eval_positions && a->eval_greedy) { die("--eval-positions and --eval-greedy: --eval-rows FILE.csv holds the greedy answers"); }
    if (a->stream_recompute > a->stream) { die("--stream-recompute %d: the window must be at most --stream %d", a->stream_recompute, a->stream); }
    if (a->eval && (a->generate || a->resume)) { die("--eval: drop --generate / -y (it only evaluates -e CHECKPOINT)"); }
    if ((long long)a->B * a->T > (1LL << 30)) { die("-b %d -t %d: B*T = %lld tokens per micro-batch is more than 2^30", a->B, a->T, (long long)a->B * a->T); }
}

static int pattern_flags_given(const Args* a) {
    return a->window >= 0 || a->sinks >= 0 || a->causal >= 0 || a->lookahead >= 0 || a->dilation >= 0 ||
           a->dilated_keys >= 0 || a->num_globals >= 0 || a->num_layer_windows > 0 || a->full_every > 0;
}

// The pattern the flags describe, on top of base (the defaults for a new model, or a
// checkpoint's pattern when flags override it): a flag replaces its field in every layer, fields
// no flag names keep base's per-layer values.
static void pattern_from_args(const Args* a, int num_layers, const ModelPattern* base, ModelPattern* mp) {
    if (num_layers < 1 || num_layers > MAX_LAYERS) { die("%d layers, expected 1..%d", num_layers, MAX_LAYERS); }
    AttnPattern layer[MAX_LAYERS];
    for (int l = 0; l < num_layers; l++) {
        AttnPattern p = base->patterns[base->layer_pattern[l]];
        if (a->window >= 0) { p.window = a->window; }
        if (a->full_every > 0) { p.window = (l + 1) % a->full_every == 0 ? 0 : p.window; }
        if (a->num_layer_windows > 0) {
            if (a->num_layer_windows != num_layers) {
                die("--layer-windows has %d values, the model has %d layers", a->num_layer_windows, num_layers);
            }
            p.window = a->layer_windows[l];
        }
        if (a->sinks >= 0) { p.sinks = a->sinks; }
        if (a->lookahead >= 0) { p.lookahead = a->lookahead; }
        if (a->dilation >= 0) { p.dilation = a->dilation; }
        if (a->dilated_keys >= 0) { p.dilated_keys = a->dilated_keys; }
        layer[l] = p;
    }
    ModelPattern out;
    memset(&out, 0, sizeof(out));
    out.causal = a->causal >= 0 ? a->causal : base->causal;
    for (int l = 0; l < num_layers; l++) {  // layers with equal patterns share one entry
        int k = 0;
        while (k < out.num_patterns && memcmp(&out.patterns[k], &layer[l], sizeof(AttnPattern)) != 0) { k++; }
        if (k == out.num_patterns) {
            if (k == MAX_PATTERNS) { die("more than %d distinct per-layer patterns", MAX_PATTERNS); }
            out.patterns[out.num_patterns++] = layer[l];
        }
        out.layer_pattern[l] = k;
    }
    if (a->num_globals > 0) {
        out.num_globals = a->num_globals;
        memcpy(out.globals, a->globals, a->num_globals * sizeof(int));  // ascending: parse_int_list
    } else {
        out.num_globals = base->num_globals;
        memcpy(out.globals, base->globals, sizeof(out.globals));
    }
    *mp = out;
}

// the same attention in every layer (pattern slots no layer uses do not count)
static int patterns_equal(const ModelPattern* x, const ModelPattern* y, int num_layers) {
    if (x->causal != y->causal || x->num_globals != y->num_globals) { return 0; }
    if (memcmp(x->globals, y->globals, x->num_globals * sizeof(int)) != 0) { return 0; }
    for (int l = 0; l < num_layers; l++) {
        if (memcmp(&x->patterns[x->layer_pattern[l]], &y->patterns[y->layer_pattern[l]], sizeof(AttnPattern)) != 0) { return 0; }
    }
    return 1;
}

// A checkpoint's pattern with the pattern flags on top (e.g. fine-tune an llm.c GPT-2 with a window)
static void pattern_override(const Args* a, GPT2Config* c) {
    if (!pattern_flags_given(a)) { return; }
    ModelPattern from_checkpoint = c->pattern;
    pattern_from_args(a, c->num_layers, &from_checkpoint, &c->pattern);
    config_validate(c, "flags");
    if (!patterns_equal(&from_checkpoint, &c->pattern, c->num_layers)) {
        printf("attention pattern taken from the flags, not the checkpoint\n");
    }
}

// A resumed run's last step: 1 when the checkpoint is at -x already (said; nothing to train), a
// checkpoint past -x is refused.
static int resume_nothing_left(const Args* a, int start_step) {
    if (start_step > a->steps) {
        die("-x %d: the newest checkpoint in '%s' is at step %d, past the last step", a->steps, a->out_dir, start_step);
    }
    if (start_step == a->steps) {
        printf("resume: '%s' is at step %d, the last of -x %d: nothing left to train\n", a->out_dir, start_step, a->steps);
        return 1;
    }
    return 0;
}

// -e names a new model (dN, lLcChH) or else a checkpoint file
static int is_model_descriptor(const char* desc) {
    int n, L, C, NH;
    char extra;
    return sscanf(desc, "d%d%c", &n, &extra) == 1 || sscanf(desc, "l%dc%dh%d%c", &L, &C, &NH, &extra) == 3;
}

static void config_from_descriptor(GPT2Config* c, const char* desc, int T, int vocab_size) {
    int n, L, C, NH;
    char extra;
    if (sscanf(desc, "d%d%c", &n, &extra) == 1) {
        if (n < 1 || n > MAX_LAYERS) { die("-e '%s': dN needs 1 <= N <= %d layers", desc, MAX_LAYERS); }
        L = n; C = 64 * n; NH = n;
    }
    else if (sscanf(desc, "l%dc%dh%d%c", &L, &C, &NH, &extra) == 3) {}
    else { die("-e '%s': expected dN (e.g. d4) or lLcChH (e.g. l2c64h4) with positive sizes", desc); }
    if (L < 1 || L > MAX_LAYERS || C < 1 || C > MAX_CHANNELS || NH < 1 || C % NH != 0) {  // before anything is sized by them
        die("-e '%s': expected 1..%d layers, 1..%d channels and a number of heads dividing the channels", desc, MAX_LAYERS, MAX_CHANNELS);
    }
    memset(c, 0, sizeof(*c));
    c->max_seq_len = T;
    c->vocab_size = vocab_size;
    c->padded_vocab_size = (vocab_size + 127) / 128 * 128;
    c->num_layers = L;
    c->num_heads = NH;
    c->channels = C;
}

// 256 when every token of the first train shard is a byte, else GPT-2's 50257
static int vocab_from_data(const char* pattern) {
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        die("-i '%s': no token shard matches (run `make data` or `python3 data/prepare.py`)", pattern);
    }
    const char* path = g.gl_pathv[0];
    size_t n = shard_check(path, 1);
    uint16_t* tokens = (uint16_t*)malloc_check(n * sizeof(uint16_t));
    FILE* f = fopen_check(path, "rb");
    fseek(f, HEADER_INTS * 4, SEEK_SET);
    fread_check(tokens, sizeof(uint16_t), n, f, path);
    fclose(f);
    int max_token = 0;
    for (size_t i = 0; i < n; i++) { if (tokens[i] > max_token) { max_token = tokens[i]; } }
    free(tokens);
    globfree(&g);
    return max_token < 256 ? 256 : 50257;
}

// The peak learning rate and warmup of a run that does not set them (-l, -u). The peak falls with
// the width, lr = LR_TIMES_WIDTH / C: the lr sweeps in bench/lr_sweep/ (README, "Learning rate")
// put the best final val loss of a d12 (C = 768) near 3e-4, where llm.c's usual 6e-4 to 1e-3 keeps
// a d12 on byte-level text on the bigram plateau for longer; a d6 did slightly better at 1.2e-3
// than at the rule's 6.3e-4, so the rule errs low. Warmup grows with the depth, 25 steps a layer,
// but takes at most a tenth of the run.
#define LR_TIMES_WIDTH 0.24f
static void default_schedule(Args* a, const GPT2Config* c) {
    a->lr_from_model = a->lr < 0.0f;
    a->warmup_from_model = a->warmup < 0;
    if (a->lr < 0.0f) { a->lr = LR_TIMES_WIDTH / c->channels; }
    if (a->warmup < 0) {
        a->warmup = 25 * c->num_layers;
        if (a->warmup > a->steps / 10) { a->warmup = a->steps / 10; }
    }
}

// The val batches to evaluate: -m M (8 when not given; the whole split in --eval when not given),
// never more than the split holds, so that a short split is said, not silently read twice.
static int val_batches_to_use(const Args* a, const DataLoader* val) {
    size_t have = val->batches_per_pass;  // >= 1: dataloader_init refuses shards shorter than a batch
    if (have > 2147483647u) { have = 2147483647u; }
    if (a->eval && !a->val_batches_given) { return (int)have; }
    if ((size_t)a->val_batches > have) {
        printf("val: -m %d asks for %d batches of %d x %d tokens; the val split '%s' holds %zu: evaluating %zu\n",
               a->val_batches, a->val_batches, val->B, val->T, a->val_pattern, have, have);
        return (int)have;
    }
    return a->val_batches;
}

// --eval-positions: row t is the mean loss at position t of the sequence over the rows evaluated
// (the curve that shows how much context a model uses; one row for --stream, each position's own loss)
static void position_losses_write(const char* path, const double* sums, int T, size_t rows) {
    char tmp[4300];
    FILE* f = atomic_open(path, tmp, sizeof(tmp));
    fprintf(f, "position,loss\n");
    for (int t = 0; t < T; t++) { fprintf(f, "%d,%.6f\n", t, sums[t] / rows); }
    atomic_commit(f, tmp, path);
}

static void print_config(const GPT2Config* c, size_t num_parameters, const Args* a, int accum) {
    printf("model: L=%d C=%d NH=%d V=%d (padded %d) maxT=%d, %zu parameters, positions %s\n",
           c->num_layers, c->channels, c->num_heads, c->vocab_size, c->padded_vocab_size, c->max_seq_len,
           num_parameters, c->rope ? "rotary" : "learned");
    printf("attention: %s", c->pattern.causal ? "causal" : "non-causal");
    if (c->pattern.num_globals) {
        printf(", global positions");
        for (int g = 0; g < c->pattern.num_globals; g++) { printf(" %d", c->pattern.globals[g]); }
    }
    printf("\n");
    for (int l = 0; l < c->num_layers; l++) {
        char desc[128];
        pattern_describe(&c->pattern.patterns[c->pattern.layer_pattern[l]], desc, sizeof(desc));
        printf("  layer %d: %s\n", l, desc);
    }
    printf("batch: B=%d T=%d, %d micro-steps per step (%d tokens), %d steps\n", a->B, a->T, accum, a->B * a->T * accum, a->steps);
    char lr_note[80] = "";
    if (a->lr_from_model) { snprintf(lr_note, sizeof(lr_note), " (default: %g / C)", LR_TIMES_WIDTH); }
    printf("schedule: peak lr %.2e%s, warmup %d steps%s, cosine to %.2f of the peak\n", a->lr, lr_note, a->warmup,
           a->warmup_from_model ? " (default: 25 a layer, at most a tenth of the run)" : "", a->final_lr_frac);
#ifdef OMP
    printf("threads: %d\n", omp_get_max_threads());
#endif
}

static void mkdir_p(const char* dir) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char* p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) { die("-o '%s': cannot create '%s': %s", dir, buf, strerror(errno)); }
            *p = c;
            if (c == '\0') { break; }
        }
    }
}

// A resumed run rewrites the steps after its checkpoint: drop them from the log first, so each
// step appears once.
static void log_truncate(const char* path, int last_step) {
    FILE* f = fopen(path, "r");
    if (f == NULL) { return; }
    char tmp[4300];
    FILE* out = atomic_open(path, tmp, sizeof(tmp));
    char line[1024];
    int first = 1;
    while (fgets(line, sizeof(line), f)) {
        if (first || atoi(line) <= last_step) { fputs(line, out); }
        first = 0;
    }
    fclose(f);
    atomic_commit(out, tmp, path);
}

// ----------------------------------------------------------------------------
// the host side of main, one text for the three trainers: each main keeps only its device calls

// Where the model comes from, for messages: the checkpoint's path (written into path[size] when it
// is -o's model_STEP.bin), or "flags" for a new model.
static const char* model_source(const Args* a, int resume_step, char* path, size_t size) {
    if (resume_step >= 0) {
        snprintf(path, size, "%s/model_%08d.bin", a->out_dir, resume_step);
        return path;
    }
    return is_model_descriptor(a->init) ? "flags" : a->init;
}

// The model the flags ask for: the newest checkpoint in -o (-y 1), a checkpoint file, or a new
// model (dN, lLcChH) drawn from -r, with the pattern flags on top. Fills c and returns the float32
// parameters (malloc'd, *n of them); *resume_step is the step resumed from, or -1.
static float* model_from_args(const Args* a, GPT2Config* c, size_t* n, int* resume_step, int* from_checkpoint) {
    *resume_step = -1;
    if (a->resume) {
        *resume_step = latest_checkpoint_step(a->out_dir);
        if (*resume_step < 0) { die("-y 1: no model_/state_ checkpoint pair in '%s'", a->out_dir); }
    }
    *from_checkpoint = *resume_step >= 0 || !is_model_descriptor(a->init);
    float* params;
    if (*from_checkpoint) {
        char path[4200];
        params = checkpoint_read(model_source(a, *resume_step, path, sizeof(path)), c, n);
        if (a->rope >= 0 && a->rope != c->rope) {
            die("--pos: the checkpoint uses %s positions; they cannot be changed", c->rope ? "rotary" : "learned");
        }
        pattern_override(a, c);
    } else {
        int V = a->vocab_size ? a->vocab_size : vocab_from_data(a->train_pattern);
        config_from_descriptor(c, a->init, a->max_seq_len ? a->max_seq_len : a->T, V);
        c->rope = a->rope == 1;
        c->rope_theta = a->rope_theta;
        ModelPattern defaults = default_pattern();
        pattern_from_args(a, c->num_layers, &defaults, &c->pattern);
        config_validate(c, "flags");
        size_t sizes[NUM_PARAMETER_TENSORS];
        fill_in_parameter_sizes(sizes, c);
        *n = count_parameters(c);
        params = (float*)malloc_check(*n * sizeof(float));
        params_init_random(params, sizes, c, a->seed);
    }
    // a non-causal query sees the tokens after it: greedy answers and recomputed windows would read
    // the very tokens they are scored on
    if ((a->eval_greedy || a->stream) && !c->pattern.causal) {
        die("%s: the model's attention is non-causal (it sees later tokens); decoding needs causal attention",
            a->eval_greedy ? "--eval-greedy" : "--stream");
    }
    // the longest forward the run will do (--stream reads no -t: the cache checks its own positions);
    // rotary positions have no table to run out of
    int T = a->stream ? a->stream_recompute : a->T;
    if (T > c->max_seq_len && !c->rope) {
        die("%s %d exceeds the model's maximum sequence length %d", a->stream ? "--stream-recompute" : "-t", T, c->max_seq_len);
    }
    return params;
}

// -d: the total batch in tokens, a multiple of B*T*workers; returns the micro-steps per step
static int accumulation_steps(const Args* a, int workers, int* total_batch) {
    long long per_step = (long long)a->B * a->T * workers;  // B*T <= 2^30 (parse_args), times the GPUs
    if (per_step > 2147483647LL) { die("-b %d -t %d on %d GPUs: %lld tokens a step, more than 2^31 - 1", a->B, a->T, workers, per_step); }
    *total_batch = a->total_batch ? a->total_batch : (int)per_step;
    if (*total_batch % per_step != 0) {
        die("-d %d: the total batch must be a multiple of B*T%s = %lld", *total_batch, workers > 1 ? "*GPUs" : "", per_step);
    }
    return (int)(*total_batch / per_step);
}

// Resume (-y 1): the optimizer state beside the checkpoint into m and v (host, one float per
// parameter each), the train loader moved to where the run stopped, the sampler's rng restored.
// Returns the step to go on from; a->steps when nothing is left (said).
static int resume_from_state(const Args* a, int resume_step, int total_batch, const size_t* param_sizes,
                             float* m, float* v, DataLoader* train, uint64_t* rng) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/state_%08d.bin", a->out_dir, resume_step);
    TrainState st;
    state_load(path, resume_step, &st, m, v, param_sizes);
    // -b is per process and -d counts every process's rows: with both the same, a run may resume on
    // another number of GPUs (its accumulation steps make up the difference) and reads the same rows
    if (st.B != a->B || st.T != a->T || st.total_batch != total_batch) {
        die("resume: '%s' was trained with -b %d -t %d -d %d; pass the same (got -b %d -t %d -d %d)",
            path, st.B, st.T, st.total_batch, a->B, a->T, total_batch);
    }
    dataloader_seek(train, st.shard_index, st.position);
    *rng = st.rng;
    printf("resumed from step %d of '%s'\n", st.step, a->out_dir);
    return resume_nothing_left(a, st.step) ? a->steps : st.step;
}

// log.csv in -o (none without -o): a resumed run drops the steps after its checkpoint and appends
static FILE* log_open(const Args* a, int resume_step) {
    if (a->out_dir == NULL) { return NULL; }
    char path[4200];
    mkdir_p(a->out_dir);
    snprintf(path, sizeof(path), "%s/log.csv", a->out_dir);
    if (resume_step >= 0) { log_truncate(path, resume_step); }
    FILE* log = fopen_check(path, resume_step >= 0 ? "a" : "w");
    if (resume_step < 0) { fprintf(log, "step,loss,val_loss,lr,ms,tokens_per_s\n"); }
    return log;
}

// A step's line in log.csv; val_loss < 0 on steps without evaluation
static void log_step(FILE* log, int step, float loss, float val_loss, float lr, double ms, double tok_s) {
    if (log == NULL) { return; }
    fprintf(log, "%d,%.6f,", step, loss);
    if (val_loss >= 0.0f) { fprintf(log, "%.6f", val_loss); }
    fprintf(log, ",%.6e,%.3f,%.1f\n", lr, ms, tok_s);
    fflush(log);
}

// --stream: the first N+1 tokens of the val split (-j) as one stream (the loader's one row of N)
static void stream_open(const Args* a, int vocab_size, DataLoader* stream) {
    dataloader_init(stream, a->val_pattern, 1, a->stream, vocab_size, "-j");
    dataloader_next_batch(stream);
}

// --stream's result: each token's loss (to --eval-positions) and the mean over each block of -t
// tokens, meant to be the training length (block 0 is what the model was trained on; later blocks
// lie past it)
static void stream_report(const Args* a, const double* losses, int n, int block) {
    printf("stream: %d tokens of '%s', %s\n", n, a->val_pattern,
           a->stream_recompute ? "each from a fresh forward over the tokens that end at it" : "through the KV cache");
    if (a->stream_recompute) { printf("stream: recomputed window %d tokens\n", a->stream_recompute); }
    double total = 0.0;
    for (int start = 0; start < n; start += block) {
        int end = start + block < n ? start + block : n;
        double sum = 0.0;
        for (int t = start; t < end; t++) { sum += losses[t]; }
        total += sum;
        printf("stream block %d (positions %d..%d): mean loss %.6f\n", start / block, start, end - 1, sum / (end - start));
    }
    printf("val loss %.6f\n", total / n);
    if (a->eval_positions) {
        position_losses_write(a->eval_positions, losses, n, 1);  // one stream: each position's own loss
        printf("loss per position written: %s\n", a->eval_positions);
    }
}

// --eval-greedy: row r of the batch decoded (B, T: the prompt, then the K tokens decoded) against
// the expected one (B, T); counts exact answers, writes each to --eval-rows with the logit of each
// decoded token (top, (B, K): what tells one decoding path from another where the argmax agrees)
static int greedy_score(FILE* rows_csv, int row0, const int* decoded, const int* expected, const float* top, int B, int T, int K) {
    int exact = 0;
    for (int b = 0; b < B; b++) {
        const int* got = decoded + (size_t)b * T + T - K;
        const int* want = expected + (size_t)b * T + T - K;
        int match = memcmp(got, want, K * sizeof(int)) == 0;
        exact += match;
        if (rows_csv) {
            fprintf(rows_csv, "%d,%d,", row0 + b, match);
            for (int k = 0; k < K; k++) { fprintf(rows_csv, "%s%d", k ? " " : "", got[k]); }
            fprintf(rows_csv, ",");
            for (int k = 0; k < K; k++) { fprintf(rows_csv, "%s%d", k ? " " : "", want[k]); }
            fprintf(rows_csv, ",");
            for (int k = 0; k < K; k++) { fprintf(rows_csv, "%s%.8g", k ? " " : "", top[(size_t)b * K + k]); }
            fprintf(rows_csv, "\n");
        }
    }
    return exact;
}

static FILE* greedy_rows_open(const Args* a, char* tmp, size_t tmp_len) {
    if (a->eval_rows == NULL) { return NULL; }
    FILE* f = atomic_open(a->eval_rows, tmp, tmp_len);
    fprintf(f, "row,exact,decoded,expected,logits\n");
    return f;
}

static void greedy_report(const Args* a, FILE* rows_csv, const char* tmp, int exact, int rows) {
    printf("greedy: %d of %d rows decoded their last %d tokens exactly (accuracy %.4f)\n", exact, rows, a->eval_greedy,
           (double)exact / rows);
    if (rows_csv) {
        atomic_commit(rows_csv, tmp, a->eval_rows);
        printf("each row's answer written: %s\n", a->eval_rows);
    }
}

// what a step does besides its update: evaluate, sample, checkpoint, by the flags
static int is_val_step(const Args* a, int step) { return a->val_every > 0 && (step % a->val_every == 0 || step == a->steps); }
static int is_sample_step(const Args* a, int step) { return a->sample_every > 0 && (step % a->sample_every == 0 || step == a->steps); }
static int is_checkpoint_step(const Args* a, int step) {
    return a->out_dir && ((a->ckpt_every > 0 && step % a->ckpt_every == 0) || step == a->steps);
}

// @copy-end trainer-cli

// ----------------------------------------------------------------------------
// CUDA and cuBLAS checks: every call is checked, every launch followed by cudaGetLastError

static void cuda_check_at(cudaError_t err, const char* file, int line) {
    if (err != cudaSuccess) { die("CUDA error at %s:%d: %s", file, line, cudaGetErrorString(err)); }
}
#define cudaCheck(err) cuda_check_at((err), __FILE__, __LINE__)
#define cudaCheckLaunch() cuda_check_at(cudaGetLastError(), __FILE__, __LINE__)

static void cublas_check_at(cublasStatus_t status, const char* file, int line) {
    if (status != CUBLAS_STATUS_SUCCESS) { die("cuBLAS status %d at %s:%d", (int)status, file, line); }
}
#define cublasCheck(status) cublas_check_at((status), __FILE__, __LINE__)

static int ceil_div(long long a, long long b) { return (int)((a + b - 1) / b); }

// ----------------------------------------------------------------------------
// several GPUs: one process per GPU, data parallel. Each process reads its own rows of every batch,
// the gradients are summed across the processes through NCCL, and every process takes the same
// AdamW step, so the weights stay identical without a broadcast.
//
// Who a process is comes from its launcher's environment (launch_identify): RANK / WORLD_SIZE /
// LOCAL_RANK (scripts/multi_gpu.sh, torchrun, or by hand), Open MPI's or MPICH's mpirun, or Slurm's
// srun. The processes then meet once (--nccl-init, meet_others) so that rank 0 can hand NCCL's
// unique id to the others:
//   tcp://HOST:PORT  rank 0 listens on PORT, the others connect to HOST. The connections stay open
//                    for the whole run: when a process dies its connection closes, and the others
//                    stop at once (watchdog_main) instead of waiting in an all-reduce for ever.
//   file:PATH        rank 0 writes the id to PATH, a fresh path on a filesystem every process sees
//                    (or NCCL_ID_FILE=PATH: scripts/multi_gpu.sh's way). Stopping the others when
//                    one dies is the launcher's job (multi_gpu.sh does it).
//   mpi              MPI_Bcast, in a build with MPI (USE_MPI: the Makefile finds mpicc), under
//                    mpirun, which stops the others when one dies. The default under mpirun.
// Every wait is bounded by --nccl-timeout seconds, after which a process says whom it missed. Under
// every way the watchdog also asks NCCL each second for an error it met on its own (a peer on
// another machine whose connection broke) and stops the process if there is one.

typedef struct {
    int world, rank, local_rank;
    const char* launcher;  // the environment that named them
    int* peers;            // (world) tcp: the open connection to each rank, -1 where there is none
    volatile int* peer_done;  // (world) set when that rank said goodbye (watchdog_main)
    volatile int finishing;   // past the last collective (multi_gpu_finish): closes and errors are no deaths
    double timeout;           // --nccl-timeout, also the bound of the goodbyes
    int mpi;               // MPI_Init was called
#ifdef USE_NCCL
    ncclComm_t comm;
    int comm_live;            // the watchdog may ask comm for errors (under comm_lock)
    pthread_mutex_t comm_lock;
#endif
    cudaStream_t comm_stream;  // the gradients' all-reduce while the backward computes (gpt2_gpu_backward)
    float* dev_scalar;  // (1) for all-reducing the loss
} MultiGPU;

static MultiGPU multi = {.world = 1, .rank = 0, .local_rank = 0, .launcher = "one process",
#ifdef USE_NCCL
                         .comm_lock = PTHREAD_MUTEX_INITIALIZER
#endif
};

#ifdef USE_NCCL
static void nccl_check_at(ncclResult_t r, const char* file, int line) {
    if (r != ncclSuccess) { die("NCCL %s at %s:%d", ncclGetErrorString(r), file, line); }
}
#define ncclCheck(r) nccl_check_at((r), __FILE__, __LINE__)
#endif

#ifdef USE_MPI
static void mpi_check_at(int r, const char* file, int line) {
    if (r != MPI_SUCCESS) {
        char text[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(r, text, &len);
        die("MPI %s at %s:%d", text, file, line);
    }
}
#define mpiCheck(r) mpi_check_at((r), __FILE__, __LINE__)
#endif

static int env_int(const char* name, int fallback, int min_value) {
    const char* v = getenv(name);
    if (!v || !*v) { return fallback; }
    char* end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end != '\0' || x < min_value || x > 1 << 20) { die("environment %s='%s': expected an integer >= %d", name, v, min_value); }
    return (int)x;
}

// The variables each launcher sets; the first set whose rank variable is there names this process.
// MPI's come before Slurm's because mpirun inside a Slurm job inherits the job's SLURM_PROCID = 0.
// Slurm's count is SLURM_STEP_NUM_TASKS, which srun gives its tasks, and not SLURM_NTASKS, which a
// batch script's own shell has too (the job's count, though that shell is one process).
enum { LAUNCH_ENV, LAUNCH_OPEN_MPI, LAUNCH_MPICH, LAUNCH_SLURM, LAUNCHERS };
static const struct { const char *name, *rank, *size, *local_rank; } LAUNCH_VARS[LAUNCHERS] = {
    {"RANK/WORLD_SIZE", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
    {"Open MPI's mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"MPICH's mpirun", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
    {"Slurm's srun", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"},
};
static int launched_by = -1;  // LAUNCH_*, or -1: one process, no launcher

// This process's rank, the number of processes and its GPU's index on its machine (-1 where the
// launcher did not say: the GPU is then chosen in multi_gpu_init). Reads nothing but the environment.
static void launch_identify(void) {
    multi.world = 1, multi.rank = 0, multi.local_rank = -1, multi.launcher = "one process";
    for (int i = 0; i < LAUNCHERS; i++) {
        const char* rank = getenv(LAUNCH_VARS[i].rank);
        if (!rank || !*rank) { continue; }
        const char* size = getenv(LAUNCH_VARS[i].size);
        if (!size || !*size) {
            if (i == LAUNCH_SLURM) { continue; }  // a batch script's shell, not an srun task
            die("environment %s=%s without %s: expected both (and %s, the GPU on its machine)",
                LAUNCH_VARS[i].rank, rank, LAUNCH_VARS[i].size, LAUNCH_VARS[i].local_rank);
        }
        multi.world = env_int(LAUNCH_VARS[i].size, 1, 1);
        multi.rank = env_int(LAUNCH_VARS[i].rank, 0, 0);
        multi.local_rank = env_int(LAUNCH_VARS[i].local_rank, -1, 0);
        if (multi.rank >= multi.world) {
            die("environment %s=%d: expected 0 .. %s - 1 = %d", LAUNCH_VARS[i].rank, multi.rank, LAUNCH_VARS[i].size, multi.world - 1);
        }
        multi.launcher = LAUNCH_VARS[i].name;
        launched_by = i;
        return;
    }
    multi.local_rank = env_int("LOCAL_RANK", -1, 0);  // one process: LOCAL_RANK may still pick its GPU
}

// --nccl-init's value, checked (and its default filled in) before anything waits or touches a GPU
enum { MEET_NONE, MEET_TCP, MEET_FILE, MEET_MPI };
typedef struct {
    int how;          // MEET_*
    const char* text;  // as given, for messages
    char host[256];
    char port[8];
    const char* path;
} MeetSpec;

static MeetSpec meet_spec(const char* given) {
    MeetSpec m;
    memset(&m, 0, sizeof(m));
    const char* id_file = getenv("NCCL_ID_FILE");
    if (!given) {  // the default: NCCL_ID_FILE, else MPI under mpirun in a build with MPI
        if (id_file && *id_file) { m.how = MEET_FILE, m.path = id_file, m.text = "NCCL_ID_FILE"; return m; }
#ifdef USE_MPI
        if (launched_by == LAUNCH_OPEN_MPI || launched_by == LAUNCH_MPICH) { m.how = MEET_MPI, m.text = "mpi"; }
#endif
        return m;
    }
    m.text = given;
    if (strncmp(given, "tcp://", 6) == 0) {
        const char* host = given + 6;
        const char* colon = strrchr(host, ':');
        size_t host_len = colon ? (size_t)(colon - host) : 0;
        if (!colon || host_len == 0 || host_len >= sizeof(m.host)) {
            die("--nccl-init '%s': expected tcp://HOST:PORT (rank 0's address, and a free port there)", given);
        }
        memcpy(m.host, host, host_len);
        int port = parse_int_in("--nccl-init's PORT", colon + 1, 1, 65535);
        snprintf(m.port, sizeof(m.port), "%d", port);
        m.how = MEET_TCP;
    } else if (strncmp(given, "file:", 5) == 0 && given[5] != '\0') {
        m.how = MEET_FILE, m.path = given + 5;
    } else if (strcmp(given, "mpi") == 0) {
#ifndef USE_MPI
        die("--nccl-init mpi: this build has no MPI (the Makefile builds with it where it finds mpicc, e.g. Debian's libopenmpi-dev)");
#endif
        if (launched_by != LAUNCH_OPEN_MPI && launched_by != LAUNCH_MPICH) {
            die("--nccl-init mpi: this process was not started by mpirun (no OMPI_COMM_WORLD_RANK or PMI_RANK)");
        }
        m.how = MEET_MPI;
    } else {
        die("--nccl-init '%s': expected tcp://HOST:PORT, file:PATH or mpi", given);
    }
    return m;
}

// The ranks in [0, world) that joined[] lacks, as "1, 3, 4" (at most 16 named), for messages.
static const char* missing_ranks(const int* joined, int world, char* out, size_t len) {
    size_t used = 0;
    int named = 0, more = 0;
    out[0] = '\0';
    for (int r = 1; r < world; r++) {  // rank 0 is the one asking
        if (joined[r] >= 0) { continue; }
        if (named == 16) { more++; continue; }
        used += snprintf(out + used, len - used, "%s%d", named ? ", " : "", r);
        named++;
        if (used >= len) { break; }
    }
    if (more && used < len) { snprintf(out + used, len - used, " and %d more", more); }
    return out;
}

// Reads exactly n bytes from a socket before the deadline; NULL, or why not.
static const char* read_before(int fd, void* buf, size_t n, double deadline) {
    size_t got = 0;
    while (got < n) {
        int left_ms = (int)((deadline - now_seconds()) * 1000.0);
        if (left_ms <= 0) { return "no answer in time"; }
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, left_ms);
        if (r < 0 && errno != EINTR) { return strerror(errno); }
        if (r <= 0) { continue; }
        ssize_t k = recv(fd, (char*)buf + got, n - got, 0);
        if (k == 0) { return "the connection closed"; }
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN) { continue; }
            return strerror(errno);
        }
        got += (size_t)k;
    }
    return NULL;
}

static const char* write_all(int fd, const void* buf, size_t n) {
    size_t sent = 0;
    while (sent < n) {
        ssize_t k = send(fd, (const char*)buf + sent, n - sent, MSG_NOSIGNAL);  // a closed peer: EPIPE, not SIGPIPE
        if (k < 0) {
            if (errno == EINTR) { continue; }
            return strerror(errno);
        }
        sent += (size_t)k;
    }
    return NULL;
}

// A dead machine sends nothing, not even a close: keepalive probes find it within about 25 s.
static void socket_keepalive(int fd) {
    int on = 1, idle = 10, interval = 5, count = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

// What a rank says first when it connects: who it is, and how many it thinks there are.
typedef struct { char magic[8]; int32_t world, rank; } MeetHello;
static const char MEET_MAGIC[8] = {'g', 'p', 't', 'm', 'e', 'e', 't', '1'};

// rank 0 of tcp://HOST:PORT: listens, takes world - 1 hellos, answers each with the id
static void meet_tcp_rank0(const MeetSpec* m, const void* id, size_t n, double deadline, double timeout) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { die("--nccl-init %s: socket: %s", m->text, strerror(errno)); }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));  // a restart need not wait out TIME_WAIT
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET, addr.sin_addr.s_addr = htonl(INADDR_ANY), addr.sin_port = htons((uint16_t)atoi(m->port));
    if (bind(fd, (struct sockaddr*)&addr, sizeof(addr)) != 0) {
        die("--nccl-init %s: rank 0 cannot listen on port %s: %s", m->text, m->port, strerror(errno));
    }
    if (listen(fd, multi.world) != 0) { die("--nccl-init %s: listen: %s", m->text, strerror(errno)); }
    int joined = 0;
    while (joined < multi.world - 1) {
        int left_ms = (int)((deadline - now_seconds()) * 1000.0);
        struct pollfd p = {fd, POLLIN, 0};
        int r = left_ms > 0 ? poll(&p, 1, left_ms) : 0;
        if (r < 0 && errno == EINTR) { continue; }
        if (r <= 0) {
            char names[160];
            die("--nccl-init %s: rank 0 waited %.0f s (--nccl-timeout) and %d of the other %d ranks came; missing: %s",
                m->text, timeout, joined, multi.world - 1, missing_ranks(multi.peers, multi.world, names, sizeof(names)));
        }
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE) { die("--nccl-init %s: rank 0 cannot accept a connection: %s", m->text, strerror(errno)); }
            usleep(10000);  // e.g. a connection reset before it was taken
            continue;
        }
        MeetHello hello;
        double hello_deadline = fmin(deadline, now_seconds() + 10.0);  // a rank sends its hello at once
        if (read_before(c, &hello, sizeof(hello), hello_deadline) || memcmp(hello.magic, MEET_MAGIC, 8) != 0) {
            fprintf(stderr, "note: --nccl-init %s: rank 0 ignored a connection that is not a rank of this run\n", m->text);
            close(c);
            continue;
        }
        if (hello.world != multi.world) {
            die("--nccl-init %s: rank %d says there are %d processes, rank 0 that there are %d: two runs share the port?",
                m->text, hello.rank, hello.world, multi.world);
        }
        if (hello.rank < 1 || hello.rank >= multi.world || multi.peers[hello.rank] >= 0) {
            die("--nccl-init %s: a second process says it is rank %d", m->text, hello.rank);
        }
        socket_keepalive(c);
        multi.peers[hello.rank] = c;
        joined++;
    }
    close(fd);
    for (int r = 1; r < multi.world; r++) {
        // a live rank sends nothing after its hello: anything readable is its end (it gave up waiting)
        struct pollfd p = {multi.peers[r], POLLIN, 0};
        if (poll(&p, 1, 0) != 0) {
            die("--nccl-init %s: rank %d left before all %d ranks came (its own --nccl-timeout?)", m->text, r, multi.world);
        }
        const char* err = write_all(multi.peers[r], id, n);
        if (err) { die("--nccl-init %s: sending NCCL's id to rank %d: %s", m->text, r, err); }
    }
}

// rank > 0 of tcp://HOST:PORT: connects (again and again while rank 0 is not yet listening), says
// hello, reads the id
static void meet_tcp_rank(const MeetSpec* m, void* id, size_t n, double deadline, double timeout) {
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET, hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(m->host, m->port, &hints, &found);
    if (gai != 0) { die("--nccl-init %s: host '%s': %s", m->text, m->host, gai_strerror(gai)); }
    int fd = -1;
    const char* why = "no answer";
    while (fd < 0) {
        if (now_seconds() > deadline) {
            die("--nccl-init %s: rank %d found no rank 0 at %s:%s within %.0f s (--nccl-timeout): %s",
                m->text, multi.rank, m->host, m->port, timeout, why);
        }
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) { die("--nccl-init %s: socket: %s", m->text, strerror(errno)); }
        // non-blocking, so that an address that never answers costs the deadline and no more
        int r = connect(fd, found->ai_addr, found->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            int left_ms = (int)((deadline - now_seconds()) * 1000.0);
            struct pollfd p = {fd, POLLOUT, 0};
            int error = ETIMEDOUT;
            socklen_t len = sizeof(error);
            if (left_ms > 0 && poll(&p, 1, left_ms) == 1) { getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len); }
            r = error == 0 ? 0 : -1;
            errno = error;
        }
        if (r != 0) {
            why = strerror(errno);
            close(fd);
            fd = -1;
            usleep(100000);  // rank 0 may not be listening yet
        }
    }
    freeaddrinfo(found);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    MeetHello hello;
    memcpy(hello.magic, MEET_MAGIC, 8);
    hello.world = multi.world, hello.rank = multi.rank;
    const char* err = write_all(fd, &hello, sizeof(hello));
    // rank 0, listening already, waits at most its own --nccl-timeout for the rest from now on
    if (!err) { err = read_before(fd, id, n, now_seconds() + timeout + 5.0); }
    if (err) {
        die("--nccl-init %s: rank %d got no NCCL id from rank 0 (%s): see rank 0's error", m->text, multi.rank, err);
    }
    socket_keepalive(fd);
    multi.peers[0] = fd;
}

// file:PATH: rank 0 writes the id (whole or not at all), the others wait for it
static void meet_file(const MeetSpec* m, void* id, size_t n, double deadline, double timeout) {
    if (multi.rank == 0) {
        char tmp[4300];
        FILE* f = atomic_open(m->path, tmp, sizeof(tmp));  // the others never see half an id
        fwrite_check(id, n, 1, f, tmp);
        atomic_commit(f, tmp, m->path);
        return;
    }
    struct stat st;
    while (stat(m->path, &st) != 0 || st.st_size != (off_t)n) {
        if (now_seconds() > deadline) {
            die("--nccl-init %s: rank %d found no id from rank 0 in '%s' within %.0f s (--nccl-timeout)", m->text, multi.rank, m->path, timeout);
        }
        usleep(10000);
    }
    FILE* f = fopen_check(m->path, "rb");
    fread_check(id, n, 1, f, m->path);
    fclose(f);
}

// The watchdog, a thread of every process of a several-GPU run. With tcp://, a rank's connection
// that closes before the rank said it finished means the rank died (killed, or an error: its own
// output says which), and the survivors would wait for it in NCCL for ever. So this process stops
// too, with a non-zero status; rank 0's stopping closes its connections, which stops the rest.
// Each second it also asks NCCL whether the communicator met an error of its own.
static void* watchdog_main(void* unused) {
    (void)unused;
    struct pollfd* fds = (struct pollfd*)calloc_check(multi.world, sizeof(struct pollfd));
    int* ranks = (int*)calloc_check(multi.world, sizeof(int));
    int n = 0;
    for (int r = 0; multi.peers && r < multi.world; r++) {
        if (multi.peers[r] >= 0) { fds[n].fd = multi.peers[r], fds[n].events = POLLIN, ranks[n++] = r; }
    }
    while (1) {
#ifdef USE_NCCL
        pthread_mutex_lock(&multi.comm_lock);
        ncclResult_t state = ncclSuccess;
        if (multi.comm_live && !multi.finishing && ncclCommGetAsyncError(multi.comm, &state) == ncclSuccess &&
            state != ncclSuccess && state != ncclInProgress) {
            fprintf(stderr, "error: rank %d: NCCL %s (%s); stopping\n", multi.rank, ncclGetErrorString(state), ncclGetLastError(multi.comm));
            _exit(EXIT_FAILURE);
        }
        pthread_mutex_unlock(&multi.comm_lock);
#endif
        if (poll(fds, n, 1000) <= 0) { continue; }  // n = 0: a one-second sleep
        for (int i = 0; i < n; i++) {
            if (!fds[i].revents) { continue; }
            char byte;
            ssize_t k = recv(fds[i].fd, &byte, 1, 0);
            if (k == 1) { multi.peer_done[ranks[i]] = 1; continue; }  // its goodbye
            if (k < 0 && errno == EINTR) { continue; }
            if (!multi.peer_done[ranks[i]] && !multi.finishing) {
                fprintf(stderr, "error: rank %d: rank %d stopped before the end of the run (see its output); stopping too\n",
                        multi.rank, ranks[i]);
                _exit(EXIT_FAILURE);
            }
            fds[i].fd = -1;  // a finished rank's close: poll skips it from now on
        }
    }
    return NULL;
}

// The processes meet and rank 0's id reaches every rank (n bytes: NCCL's ncclUniqueId). A build
// without NCCL runs no several-GPU training, but test/test_gpt_gpu.cu's --check-launch still tests
// the meeting and the watchdog there: [[maybe_unused]].
[[maybe_unused]] static void meet_others(const MeetSpec* m, void* id, size_t n, double timeout) {
    double deadline = now_seconds() + timeout;
    if (m->how == MEET_NONE) {
        die("%s says %d processes, and they have no way to meet: give --nccl-init tcp://HOST:PORT, "
            "file:PATH or mpi (or NCCL_ID_FILE=PATH)", multi.launcher, multi.world);
    }
    if (m->how == MEET_MPI) {
#ifdef USE_MPI
        mpiCheck(MPI_Init(NULL, NULL));
        multi.mpi = 1;
        int rank, world;
        mpiCheck(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
        mpiCheck(MPI_Comm_size(MPI_COMM_WORLD, &world));
        if (rank != multi.rank || world != multi.world) {
            die("--nccl-init mpi: MPI says rank %d of %d, the environment (%s) rank %d of %d", rank, world, multi.launcher, multi.rank, multi.world);
        }
        mpiCheck(MPI_Bcast(id, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD));
#endif
        return;
    }
    if (m->how == MEET_FILE) { meet_file(m, id, n, deadline, timeout); return; }
    multi.peers = (int*)malloc_check(multi.world * sizeof(int));
    multi.peer_done = (volatile int*)calloc_check(multi.world, sizeof(int));
    for (int r = 0; r < multi.world; r++) { multi.peers[r] = -1; }
    if (multi.rank == 0) {
        meet_tcp_rank0(m, id, n, deadline, timeout);
    } else {
        meet_tcp_rank(m, id, n, deadline, timeout);
    }
}

[[maybe_unused]] static void watchdog_start(void) {
    pthread_t watchdog;
    if (pthread_create(&watchdog, NULL, watchdog_main, NULL) != 0) { die("cannot start the watchdog thread"); }
    pthread_detach(watchdog);
}

// The end of a run that went well, once every process is past its last collective: goodbyes over
// tcp://, so that no close is taken for a death. Each rank says goodbye to rank 0 and waits for
// rank 0's, which rank 0 sends when it has every other's; so no process closes a connection with
// a goodbye still unread on it (a reset, not an orderly close), and none leaves before rank 0.
static void meet_finish(void) {
    multi.finishing = 1;
    if (multi.peers) {
        double deadline = now_seconds() + multi.timeout;
        int from = multi.rank == 0 ? 1 : 0, to = multi.rank == 0 ? multi.world : 1;
        if (multi.rank != 0) { write_all(multi.peers[0], "b", 1); }
        for (int r = from; r < to; r++) {  // the watchdog reads them
            while (!multi.peer_done[r] && now_seconds() < deadline) { usleep(1000); }
        }
        for (int r = 1; multi.rank == 0 && r < multi.world; r++) { write_all(multi.peers[r], "b", 1); }
    }
#ifdef USE_MPI
    if (multi.mpi) { mpiCheck(MPI_Finalize()); }
#endif
}

// Picks this process's GPU and, with several processes, joins the others. Before any other CUDA call.
static void multi_gpu_init(const Args* a) {
    launch_identify();
    MeetSpec meet = meet_spec(a->nccl_init);  // checked even for one process
    int devices = 0;
    cudaCheck(cudaGetDeviceCount(&devices));
    // a launcher that gives each process its own GPU through CUDA_VISIBLE_DEVICES leaves it one
    int device = multi.local_rank >= 0 ? multi.local_rank : multi.rank;
    if (devices == 1 && getenv("CUDA_VISIBLE_DEVICES")) { device = 0; }
    if (device >= devices) {
        die("%s: this process's GPU would be %d, and this machine shows %d GPUs (set %s, the GPU on its machine)",
            multi.launcher, device, devices, launched_by >= 0 ? LAUNCH_VARS[launched_by].local_rank : "LOCAL_RANK");
    }
    multi.local_rank = device;
    cudaCheck(cudaSetDevice(device));
    if (multi.world == 1) { return; }
#ifdef USE_NCCL
    ncclUniqueId id;
    if (multi.rank == 0) { ncclCheck(ncclGetUniqueId(&id)); }
    multi.timeout = a->nccl_timeout;
    meet_others(&meet, &id, sizeof(id), a->nccl_timeout);
    watchdog_start();  // before NCCL's start, which would wait for ever for a rank that died after the meeting
    ncclCheck(ncclCommInitRank(&multi.comm, multi.world, id, multi.rank));
    pthread_mutex_lock(&multi.comm_lock);
    multi.comm_live = 1;
    pthread_mutex_unlock(&multi.comm_lock);
    cudaCheck(cudaMalloc(&multi.dev_scalar, sizeof(float)));
    // non-blocking: the legacy default stream, where everything else runs, must not wait for it
    cudaCheck(cudaStreamCreateWithFlags(&multi.comm_stream, cudaStreamNonBlocking));
#else
    (void)meet;
    die("%s says %d processes: this build has no NCCL (the Makefile links it where it finds nccl.h and libnccl)", multi.launcher, multi.world);
#endif
}

// The sum of a host float over the processes (the gradients' sums: gpt2_gpu_reduce_grads).
static float multi_gpu_host_sum(float x) {
    if (multi.world == 1) { return x; }
    cudaCheck(cudaMemcpy(multi.dev_scalar, &x, sizeof(float), cudaMemcpyHostToDevice));
#ifdef USE_NCCL
    ncclCheck(ncclAllReduce(multi.dev_scalar, multi.dev_scalar, 1, ncclFloat, ncclSum, multi.comm, 0));
#endif
    cudaCheck(cudaMemcpy(&x, multi.dev_scalar, sizeof(float), cudaMemcpyDeviceToHost));
    return x;
}

static float multi_gpu_mean(float x) { return multi_gpu_host_sum(x) / multi.world; }

// The end of a several-GPU run: a barrier through NCCL (so no process tears down while another,
// e.g. rank 0 writing the last checkpoint, still works: its peers' teardown could look like an
// error to its watchdog), the goodbyes, then NCCL's end.
static void multi_gpu_finish(void) {
    if (multi.world == 1) { return; }
    multi_gpu_host_sum(0.0f);  // the barrier: every process here, every collective before it done
    cudaCheck(cudaDeviceSynchronize());
    meet_finish();
#ifdef USE_NCCL
    pthread_mutex_lock(&multi.comm_lock);  // the watchdog stops asking the communicator first
    multi.comm_live = 0;
    pthread_mutex_unlock(&multi.comm_lock);
    ncclCheck(ncclCommDestroy(multi.comm));
#endif
}

// ----------------------------------------------------------------------------
// matmuls: cuBLASLt, bf16 operands, float32 accumulation

static cublasLtHandle_t lt_handle;
static void* lt_workspace;
static const size_t LT_WORKSPACE_BYTES = 32 << 20;

// What a matmul may add after the product: nothing, a bias, GELU of (product + bias) keeping the
// pre-activation in aux, or the GELU gradient at aux applied to the product.
enum Epilogue { EPI_NONE, EPI_BIAS, EPI_GELU_BIAS, EPI_DGELU };

// cuBLASLt's algorithm choice per matmul shape, asked once: the heuristic query costs more host
// time than many of the launches it picks for.
typedef struct { int m, n, k, trans_a, trans_b, d_type, epilogue, has_c; cublasLtMatmulAlgo_t algo; } AlgoEntry;
static AlgoEntry algo_cache[256];
static int algo_cache_size = 0;

// Column-major, as cuBLAS sees it: D (m, n) = op(A) (m, k) @ op(B) (k, n) + beta * C, then the
// epilogue. For the row-major tensors of this file, D^T = B^T A^T: see the callers.
static void matmul(void* d, cudaDataType_t d_type, const floatX* a, const floatX* b, const void* c, float beta,
                   Epilogue epilogue, const floatX* bias, floatX* aux, int m, int n, int k, bool trans_a, bool trans_b) {
    cublasLtMatmulDesc_t desc;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
    cublasLtEpilogue_t epi = epilogue == EPI_BIAS ? CUBLASLT_EPILOGUE_BIAS
                           : epilogue == EPI_GELU_BIAS ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                           : epilogue == EPI_DGELU ? CUBLASLT_EPILOGUE_DGELU : CUBLASLT_EPILOGUE_DEFAULT;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (epilogue == EPI_BIAS || epilogue == EPI_GELU_BIAS) {
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
        cudaDataType_t bias_type = CUDA_R_16BF;
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    }
    if (epilogue == EPI_GELU_BIAS || epilogue == EPI_DGELU) {
        int64_t ld = m;
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)));
    }
    cublasLtMatrixLayout_t la, lb, lc;
    cublasCheck(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, trans_a ? k : m, trans_a ? m : k, trans_a ? k : m));
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, trans_b ? n : k, trans_b ? k : n, trans_b ? n : k));
    cublasCheck(cublasLtMatrixLayoutCreate(&lc, d_type, m, n, m));
    AlgoEntry key = {m, n, k, trans_a, trans_b, (int)d_type, (int)epilogue, c != NULL || beta != 0.0f};
    int hit = -1;
    for (int i = 0; i < algo_cache_size && hit < 0; i++) {
        const AlgoEntry* e = &algo_cache[i];
        if (e->m == m && e->n == n && e->k == k && e->trans_a == key.trans_a && e->trans_b == key.trans_b &&
            e->d_type == key.d_type && e->epilogue == key.epilogue && e->has_c == key.has_c) { hit = i; }
    }
    if (hit < 0) {
        cublasLtMatmulPreference_t pref;
        cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
        cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                         &LT_WORKSPACE_BYTES, sizeof(LT_WORKSPACE_BYTES)));
        cublasLtMatmulHeuristicResult_t heuristic;
        int found = 0;
        cublasCheck(cublasLtMatmulAlgoGetHeuristic(lt_handle, desc, la, lb, lc, lc, pref, 1, &heuristic, &found));
        cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
        if (found == 0) { die("cuBLASLt has no algorithm for m=%d n=%d k=%d epilogue %d", m, n, k, (int)epilogue); }
        if (algo_cache_size == (int)(sizeof(algo_cache) / sizeof(algo_cache[0]))) { die("more than 256 matmul shapes"); }
        key.algo = heuristic.algo;
        algo_cache[algo_cache_size] = key;
        hit = algo_cache_size++;
    }
    float alpha = 1.0f;
    const void* c_ptr = c ? c : d;
    cublasCheck(cublasLtMatmul(lt_handle, desc, &alpha, a, la, b, lb, &beta, c_ptr, lc, d, lc,
                               &algo_cache[hit].algo, lt_workspace, LT_WORKSPACE_BYTES, 0));
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(lc));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
}

// out (BT, OC) = inp (BT, C) @ weight (OC, C)^T + bias (OC) [+ residual (BT, OC)]
static void matmul_forward(floatX* out, const floatX* inp, const floatX* weight, const floatX* bias,
                           const floatX* residual, int BT, int C, int OC) {
    matmul(out, CUDA_R_16BF, weight, inp, residual, residual ? 1.0f : 0.0f, bias ? EPI_BIAS : EPI_NONE, bias, NULL,
           OC, BT, C, true, false);
}

// out (BT, OC) = gelu(inp @ weight^T + bias), keeping the pre-activation (BT, OC) in pre_gelu
static void matmul_forward_gelu(floatX* out, floatX* pre_gelu, const floatX* inp, const floatX* weight, const floatX* bias,
                                int BT, int C, int OC) {
    matmul(out, CUDA_R_16BF, weight, inp, NULL, 0.0f, EPI_GELU_BIAS, bias, pre_gelu, OC, BT, C, true, false);
}

// ----------------------------------------------------------------------------
// deterministic column sums: fixed row chunks, then the chunks added in order

static const int SUM_CHUNKS = 64;

// partial (SUM_CHUNKS, cols): the sum of each column over one chunk of rows. A block covers 256
// columns (32 threads x 8, read 16 bytes at a time) and 8 row lanes, which add their sums in order.
__global__ void column_sum_partial_kernel(float* partial, const floatX* x, int rows, int cols) {
    __shared__ float red[8][256];
    int c0 = blockIdx.x * 256 + threadIdx.x * 8;
    int per = (rows + SUM_CHUNKS - 1) / SUM_CHUNKS;
    int r0 = blockIdx.y * per, r1 = min(rows, r0 + per);
    float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if (c0 < cols) {
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            union { uint4 u; floatX v[8]; } p;
            p.u = *(const uint4*)(x + (size_t)r * cols + c0);
            for (int k = 0; k < 8; k++) { s[k] += __bfloat162float(p.v[k]); }
        }
    }
    for (int k = 0; k < 8; k++) { red[threadIdx.y][threadIdx.x * 8 + k] = s[k]; }
    __syncthreads();
    int c = threadIdx.y * 32 + threadIdx.x;  // 256 threads finish the block's 256 columns
    if (blockIdx.x * 256 + c < cols) {
        float sum = 0.0f;
        for (int y = 0; y < 8; y++) { sum += red[y][c]; }
        partial[(size_t)blockIdx.y * cols + blockIdx.x * 256 + c] = sum;
    }
}

__global__ void column_sum_finish_kernel(float* out, const float* partial, int cols) {
    // out (cols) += the chunk sums, in chunk order
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= cols) { return; }
    float s = 0.0f;
    for (int k = 0; k < SUM_CHUNKS; k++) { s += partial[(size_t)k * cols + col]; }
    out[col] += s;
}

static float* scratch_partial;  // (SUM_CHUNKS, max columns) and the layernorm partials
static size_t scratch_partial_bytes = 0;

static void bias_backward(float* dbias, const floatX* dout, int rows, int cols) {
    column_sum_partial_kernel<<<dim3(ceil_div(cols, 256), SUM_CHUNKS), dim3(32, 8)>>>(scratch_partial, dout, rows, cols);
    cudaCheckLaunch();
    column_sum_finish_kernel<<<ceil_div(cols, 256), 256>>>(dbias, scratch_partial, cols);
    cudaCheckLaunch();
}

// dinp (BT, C) = dout (BT, OC) @ weight (OC, C), times gelu'(pre_gelu) when the input was a GELU's
// output; dweight (OC, C) += dout^T @ inp; dbias (OC) += sum dout
static void matmul_backward(floatX* dinp, float* dweight, float* dbias, const floatX* dout, const floatX* inp,
                            const floatX* weight, int BT, int C, int OC, floatX* pre_gelu = NULL) {
    matmul(dinp, CUDA_R_16BF, weight, dout, NULL, 0.0f, pre_gelu ? EPI_DGELU : EPI_NONE, NULL, pre_gelu,
           C, BT, OC, false, false);
    matmul(dweight, CUDA_R_32F, inp, dout, NULL, 1.0f, EPI_NONE, NULL, NULL, C, OC, BT, false, true);
    if (dbias) { bias_backward(dbias, dout, BT, OC); }
}

// ----------------------------------------------------------------------------
// kernels of the layers

__global__ void encoder_forward_kernel(floatX* out, const int* inp, const floatX* wte, const floatX* wpe,
                                       int BT, int T, int C) {
    // out (B, T, C) = wte[token] + wpe[t]; wpe is NULL with rotary positions
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)BT * C) { return; }
    int bt = (int)(idx / C), c = (int)(idx % C), t = bt % T;
    float v = __bfloat162float(wte[(size_t)inp[bt] * C + c]);
    if (wpe) { v += __bfloat162float(wpe[(size_t)t * C + c]); }
    out[idx] = __float2bfloat16(v);
}

// Deterministic embedding gradient. The host groups the positions by token (ascending) and cuts each
// token's list into segments of at most EMB_SEGMENT positions: one block per segment sums its rows
// into seg_sums, then one block per token adds its segments in order. (One block per token would
// leave the frequent tokens, thousands of positions each, to a few blocks.)
static const int EMB_SEGMENT = 64;

__global__ void encoder_backward_segment_kernel(float* seg_sums, const floatX* dout, const int* seg_starts,
                                                const int* positions, int C) {
    int seg = blockIdx.x;
    for (int c0 = threadIdx.x * 8; c0 < C; c0 += blockDim.x * 8) {
        float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (int k = seg_starts[seg]; k < seg_starts[seg + 1]; k++) {
            union { uint4 u; floatX v[8]; } p;
            p.u = *(const uint4*)(dout + (size_t)positions[k] * C + c0);
            for (int e = 0; e < 8; e++) { s[e] += __bfloat162float(p.v[e]); }
        }
        for (int e = 0; e < 8; e++) { seg_sums[(size_t)seg * C + c0 + e] = s[e]; }
    }
}

__global__ void encoder_backward_wte_kernel(float* dwte, const float* seg_sums, const int* tokens,
                                            const int* token_segs, int C) {
    int u = blockIdx.x;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float s = 0.0f;
        for (int k = token_segs[u]; k < token_segs[u + 1]; k++) { s += seg_sums[(size_t)k * C + c]; }
        dwte[(size_t)tokens[u] * C + c] += s;
    }
}

__global__ void encoder_backward_wpe_kernel(float* dwpe, const floatX* dout, int B, int T, int C) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)T * C) { return; }
    int t = (int)(idx / C), c = (int)(idx % C);
    float s = 0.0f;
    for (int b = 0; b < B; b++) { s += __bfloat162float(dout[((size_t)b * T + t) * C + c]); }
    dwpe[idx] += s;
}

// Rotary positions turn q and k of each head by position-dependent angles (README, "half split").
// cos_sin holds (T, hs/2) cosines then (T, hs/2) sines for positions t0 .. t0 + T - 1, computed in
// double on the host as train_gpt_cpu's rope_table does, so both trainers turn by the same floats.
static void rope_table(float* cos_sin, int t0, int T, int hs, int theta) {
    int half = hs / 2;
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < half; k++) {
            double a = (double)(t0 + t) * pow((double)theta, -2.0 * k / hs);
            cos_sin[(size_t)t * half + k] = (float)cos(a);
            cos_sin[(size_t)T * half + (size_t)t * half + k] = (float)sin(a);
        }
    }
}

// In place on qkv (BT, 3C): turns each (x[k], x[k + hs/2]) pair of q and k by the angle of its
// position (t = bt % T); sign -1 turns back, which is the backward, since the rotation is orthogonal.
__global__ void rope_kernel(floatX* qkv, const float* cos_sin, int BT, int T, int C, int NH, float sign) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;  // one thread per pair: (BT, 2, NH, hs/2)
    if (idx >= (size_t)BT * C) { return; }
    int hs = C / NH, half = hs / 2;
    int bt = (int)(idx / C), r = (int)(idx % C);
    int part = r / (C / 2), h = (r % (C / 2)) / half, k = r % half, t = bt % T;
    floatX* x = qkv + (size_t)bt * 3 * C + part * C + h * hs;
    float c = cos_sin[(size_t)t * half + k], s = sign * cos_sin[(size_t)T * half + (size_t)t * half + k];
    float x0 = __bfloat162float(x[k]), x1 = __bfloat162float(x[k + half]);
    x[k] = __float2bfloat16(x0 * c - x1 * s);
    x[k + half] = __float2bfloat16(x1 * c + x0 * s);
}

// LayerNorm backward (dinp += ..., dweight, dbias += ...): dev/cuda/layernorm_backward.cu; its Pack8
// and warp_sum serve the LayerNorm forward and the classifier below too
// @copy-begin ln-backward
// ----------------------------------------------------------------------------
// LayerNorm backward (dev/cuda/layernorm_backward.cu version 4; PREFETCH is version 5)

static const int LN_WARPS = 4, LN_MAX_CHUNKS = 8;   // 4 warps per block; C <= 256 * LN_MAX_CHUNKS

// 8 bf16 in one 16-byte load or store; a warp's sum (the trainers' other kernels use both too)
union Pack8 { uint4 u; bf16 x[8]; };

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) { v += __shfl_xor_sync(0xffffffff, v, o); }
    return v;
}

// Lane l of a warp owns the channel chunks [8 (l + 32k), +8), k < CHUNKS = ceil(C / 256), read with
// 16-byte loads. A warp takes rows_per_warp consecutive rows. With PREFETCH (v5), while it computes
// one row the next row's dout, input and input gradient are already loading (the *_next registers;
// past C = 1024 they would spill, so wider rows load as they go).
// The warp's running dweight and dbias sums (and with sum_dinp the updated dinp's) live in shared
// memory as float4s indexed [sum][chunk][half][lane]: a lane only ever touches its own entries (no
// synchronisation), and a warp's 16-byte accesses cover 512 contiguous bytes (no bank conflicts). At
// the end the block adds its warps' sums in warp order into partial (blocks, nsum C): dweight, dbias
// and the dinp sums, nsum = 2 or 3.
// Without the prefetch (v4), up to C = 768 the registers are capped at 96 so that five blocks fit an
// SM (nvcc 13.0: 8 bytes spill since the third sum; the prefetch needs 167-199 registers, 2-3 blocks).
template <int CHUNKS, bool PREFETCH>
constexpr int ln_backward_min_blocks() { return PREFETCH ? 1 : CHUNKS <= 3 ? 5 : CHUNKS == 4 ? 4 : 1; }

template <int CHUNKS, bool PREFETCH>
__global__ void __launch_bounds__(LN_WARPS * 32, (ln_backward_min_blocks<CHUNKS, PREFETCH>()))
layernorm_backward_kernel(bf16* dinp, float* partial, const bf16* dout, const bf16* inp, const bf16* weight,
                          const float* mean, const float* rstd, int rows, int C, int rows_per_warp, bool sum_dinp) {
    extern __shared__ float4 ln_acc[];  // (LN_WARPS, 3, CHUNKS, 2, 32) float4
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float4* my = ln_acc + (size_t)warp * 3 * CHUNKS * 2 * 32;
    Pack8 w[CHUNKS];
    for (int k = 0; k < CHUNKS; k++) {
        int c0 = (lane + 32 * k) * 8;
        if (c0 < C) { w[k].u = *(const uint4*)(weight + c0); }
    }
    for (int e = lane; e < 3 * CHUNKS * 2 * 32; e += 32) { my[e] = make_float4(0.0f, 0.0f, 0.0f, 0.0f); }
    int row0 = (blockIdx.x * LN_WARPS + warp) * rows_per_warp;
    int row_end = min(rows, row0 + rows_per_warp);
    Pack8 g[CHUNKS], x[CHUNKS], d[CHUNKS];
    auto load_row = [&](int row, Pack8* gr, Pack8* xr, Pack8* dr) {
        for (int k = 0; k < CHUNKS; k++) {
            int c0 = (lane + 32 * k) * 8;
            if (c0 >= C) { continue; }
            gr[k].u = *(const uint4*)(dout + (size_t)row * C + c0);
            xr[k].u = *(const uint4*)(inp + (size_t)row * C + c0);
            dr[k].u = *(const uint4*)(dinp + (size_t)row * C + c0);
        }
    };
    if (PREFETCH && row0 < row_end) { load_row(row0, g, x, d); }
    for (int row = row0; row < row_end; row++) {
        Pack8 g_next[CHUNKS], x_next[CHUNKS], d_next[CHUNKS];
        if (PREFETCH && row + 1 < row_end) { load_row(row + 1, g_next, x_next, d_next); }
        if (!PREFETCH) { load_row(row, g, x, d); }
        float m = mean[row], r = rstd[row];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int k = 0; k < CHUNKS; k++) {
            if ((lane + 32 * k) * 8 >= C) { continue; }
            for (int i = 0; i < 8; i++) {
                float dn = __bfloat162float(w[k].x[i]) * __bfloat162float(g[k].x[i]);
                dnorm_mean += dn;
                dnorm_norm_mean += dn * (__bfloat162float(x[k].x[i]) - m) * r;
            }
        }
        dnorm_mean = warp_sum(dnorm_mean) / C;
        dnorm_norm_mean = warp_sum(dnorm_norm_mean) / C;
        for (int k = 0; k < CHUNKS; k++) {
            int c0 = (lane + 32 * k) * 8;
            if (c0 >= C) { continue; }
            float4* dw = my + (0 * CHUNKS + k) * 2 * 32 + lane;   // halves at +0 and +32
            float4* db = my + (1 * CHUNKS + k) * 2 * 32 + lane;
            float4 dw_lo = dw[0], dw_hi = dw[32], db_lo = db[0], db_hi = db[32];
            float* dwf[2] = {&dw_lo.x, &dw_hi.x};
            float* dbf[2] = {&db_lo.x, &db_hi.x};
            for (int i = 0; i < 8; i++) {
                float gk = __bfloat162float(g[k].x[i]);
                float n = (__bfloat162float(x[k].x[i]) - m) * r;
                float dn = __bfloat162float(w[k].x[i]) * gk;
                dwf[i / 4][i % 4] += n * gk;
                dbf[i / 4][i % 4] += gk;
                d[k].x[i] = __float2bfloat16(__bfloat162float(d[k].x[i]) + r * (dn - dnorm_mean - n * dnorm_norm_mean));
            }
            dw[0] = dw_lo; dw[32] = dw_hi; db[0] = db_lo; db[32] = db_hi;
            *(uint4*)(dinp + (size_t)row * C + c0) = d[k].u;
            if (sum_dinp) {  // the rounded values, as the next matmul reads them
                float4* ds = my + (2 * CHUNKS + k) * 2 * 32 + lane;
                float4 ds_lo = ds[0], ds_hi = ds[32];
                float* dsf[2] = {&ds_lo.x, &ds_hi.x};
                for (int i = 0; i < 8; i++) { dsf[i / 4][i % 4] += __bfloat162float(d[k].x[i]); }
                ds[0] = ds_lo; ds[32] = ds_hi;
            }
        }
        if (PREFETCH) {
            for (int k = 0; k < CHUNKS; k++) { g[k] = g_next[k]; x[k] = x_next[k]; d[k] = d_next[k]; }
        }
    }
    __syncthreads();
    const float* accf = (const float*)ln_acc;
    const int nsum = sum_dinp ? 3 : 2;
    for (int c = threadIdx.x; c < nsum * C; c += blockDim.x) {
        int sum = c / C, col = c % C;                  // which sum, which channel
        int chunk = col / 8, i = col % 8;              // chunk = lane + 32 k
        size_t at = ((size_t)((sum * CHUNKS + chunk / 32) * 2 + i / 4) * 32 + chunk % 32) * 4 + i % 4;
        float s = 0.0f;
        for (int v = 0; v < LN_WARPS; v++) { s += accf[(size_t)v * 3 * CHUNKS * 2 * 32 * 4 + at]; }
        partial[(size_t)blockIdx.x * nsum * C + c] = s;
    }
}

// dweight, dbias (C each) and dinp_sum (C, when not NULL) += the column sums of partial (blocks,
// nsum C): 32 columns per block, its 8 thread rows take every 8th partial row, then thread row 0
// adds the 8 in order
__global__ void layernorm_backward_finish_kernel(float* dweight, float* dbias, float* dinp_sum, const float* partial,
                                                 int blocks, int C) {
    __shared__ float red[8][32];
    const int nsum = dinp_sum ? 3 : 2;
    int c = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (c < nsum * C) {
        for (int k = threadIdx.y; k < blocks; k += 8) { s += partial[(size_t)k * nsum * C + c]; }
    }
    red[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || c >= nsum * C) { return; }
    float sum = 0.0f;
    for (int y = 0; y < 8; y++) { sum += red[y][threadIdx.x]; }
    float* out = c < C ? dweight : c < 2 * C ? dbias : dinp_sum;
    out[c % C] += sum;
}

typedef void (*ln_backward_kernel_t)(bf16*, float*, const bf16*, const bf16*, const bf16*, const float*,
                                     const float*, int, int, int, bool);
static ln_backward_kernel_t ln_backward_kernel_for(int C) {
    switch (ceil_div(C, 256)) {
        case 1: return layernorm_backward_kernel<1, false>;
        case 2: return layernorm_backward_kernel<2, false>;
        case 3: return layernorm_backward_kernel<3, false>;
        case 4: return layernorm_backward_kernel<4, false>;
        case 5: return layernorm_backward_kernel<5, false>;
        case 6: return layernorm_backward_kernel<6, false>;
        case 7: return layernorm_backward_kernel<7, false>;
        default: return layernorm_backward_kernel<8, false>;
    }
}
static size_t ln_backward_smem(int C) { return (size_t)LN_WARPS * 3 * ceil_div(C, 256) * 2 * 32 * sizeof(float4); }

// blocks of LN_WARPS warps of `kernel` resident on the whole GPU at once with smem bytes of dynamic
// shared memory (the kernel opted in to that much)
static int ln_resident_blocks(const void* kernel, size_t smem) {
    cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int dev = 0, sms = 0, per_sm = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    cudaCheck(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, LN_WARPS * 32, smem));
    if (per_sm < 1) { fprintf(stderr, "layernorm backward: no block fits an SM with %zu bytes of shared memory\n", smem); exit(EXIT_FAILURE); }
    return sms * per_sm;
}

// The grid is one wave: as many blocks as fit on the GPU at once (fewer for few rows), each warp
// taking an equal run of rows. Blocks (and so the partial sums' order) depend only on rows, C and
// the GPU: the same bits run to run on one GPU.
struct LnBackwardGrid { int blocks, rows_per_warp; };
static LnBackwardGrid ln_backward_grid(ln_backward_kernel_t kernel, int rows, int C) {
    static ln_backward_kernel_t cached_kernel = NULL;
    static int cached_slots = 0;  // resident blocks of that kernel (its smem depends on C's chunks only)
    if (kernel != cached_kernel) {
        cached_slots = ln_resident_blocks((const void*)kernel, ln_backward_smem(C));
        cached_kernel = kernel;
    }
    LnBackwardGrid grid;
    grid.rows_per_warp = ceil_div(rows, cached_slots * LN_WARPS);
    grid.blocks = ceil_div(rows, LN_WARPS * grid.rows_per_warp);
    return grid;
}

static void layernorm_backward_launch(ln_backward_kernel_t kernel, bf16* dinp, float* dweight, float* dbias,
                                      float* dinp_sum, float* partial, const bf16* dout, const bf16* inp,
                                      const bf16* weight, const float* mean, const float* rstd, int rows, int C) {
    if (C % 8 != 0 || C > 256 * LN_MAX_CHUNKS) {
        fprintf(stderr, "layernorm backward: C=%d, expected a multiple of 8 up to %d\n", C, 256 * LN_MAX_CHUNKS);
        exit(EXIT_FAILURE);
    }
    LnBackwardGrid grid = ln_backward_grid(kernel, rows, C);
    kernel<<<grid.blocks, LN_WARPS * 32, ln_backward_smem(C)>>>(dinp, partial, dout, inp, weight, mean, rstd,
                                                                rows, C, grid.rows_per_warp, dinp_sum != NULL);
    cudaCheckLaunch();
    const int nsum = dinp_sum ? 3 : 2;
    layernorm_backward_finish_kernel<<<ceil_div(nsum * C, 32), dim3(32, 8)>>>(dweight, dbias, dinp_sum, partial,
                                                                               grid.blocks, C);
    cudaCheckLaunch();
}

// dinp (rows, C) += the input gradient; dweight, dbias (C) += their gradients; dinp_sum (C), unless
// NULL, += the column sums of the updated dinp. partial: scratch of at least
// layernorm_backward_partial_floats(rows, C) floats.
static size_t layernorm_backward_partial_floats(int rows, int C) {
    return (size_t)ln_backward_grid(ln_backward_kernel_for(C), rows, C).blocks * 3 * C;
}
static void layernorm_backward(bf16* dinp, float* dweight, float* dbias, float* dinp_sum, float* partial,
                               const bf16* dout, const bf16* inp, const bf16* weight, const float* mean,
                               const float* rstd, int rows, int C) {
    layernorm_backward_launch(ln_backward_kernel_for(C), dinp, dweight, dbias, dinp_sum, partial, dout, inp, weight,
                              mean, rstd, rows, C);
}
// @copy-end ln-backward

// LayerNorm forward, one warp per row; lane l owns the channel chunks [8 (l + 32k), +8), k < CHUNKS,
// read and written with 16-byte accesses and held in registers between the two passes
// (mean, then the variance around it). out (rows, C), mean and rstd (rows).
template <int CHUNKS>
__global__ void layernorm_forward_kernel(floatX* out, float* mean, float* rstd, const floatX* inp,
                                         const floatX* weight, const floatX* bias, int rows, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) { return; }
    const floatX* x = inp + (size_t)row * C;
    Pack8 xr[CHUNKS];
    float s = 0.0f;
    for (int k = 0; k < CHUNKS; k++) {
        int c0 = (lane + 32 * k) * 8;
        if (c0 >= C) { continue; }
        xr[k].u = *(const uint4*)(x + c0);
        for (int i = 0; i < 8; i++) { s += __bfloat162float(xr[k].x[i]); }
    }
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int k = 0; k < CHUNKS; k++) {
        int c0 = (lane + 32 * k) * 8;
        if (c0 >= C) { continue; }
        for (int i = 0; i < 8; i++) { float d = __bfloat162float(xr[k].x[i]) - m; v += d * d; }
    }
    float r = rsqrtf(warp_sum(v) / C + 1e-5f);
    floatX* o = out + (size_t)row * C;
    for (int k = 0; k < CHUNKS; k++) {
        int c0 = (lane + 32 * k) * 8;
        if (c0 >= C) { continue; }
        Pack8 w, b, y;
        w.u = *(const uint4*)(weight + c0);
        b.u = *(const uint4*)(bias + c0);
        for (int i = 0; i < 8; i++) {
            float n = (__bfloat162float(xr[k].x[i]) - m) * r;
            y.x[i] = __float2bfloat16(n * __bfloat162float(w.x[i]) + __bfloat162float(b.x[i]));
        }
        *(uint4*)(o + c0) = y.u;
    }
    if (lane == 0) { mean[row] = m; rstd[row] = r; }
}


static void layernorm_forward(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* w,
                              const floatX* b, int rows, int C) {
    typedef void (*kernel_t)(floatX*, float*, float*, const floatX*, const floatX*, const floatX*, int, int);
    static const kernel_t kernels[] = {layernorm_forward_kernel<1>, layernorm_forward_kernel<2>, layernorm_forward_kernel<3>,
                                       layernorm_forward_kernel<4>, layernorm_forward_kernel<5>, layernorm_forward_kernel<6>,
                                       layernorm_forward_kernel<7>, layernorm_forward_kernel<8>};
    kernels[ceil_div(C, 256) - 1]<<<ceil_div(rows, 8), 256>>>(out, mean, rstd, inp, w, b, rows, C);  // C <= 2048: checked at allocation
    cudaCheckLaunch();
}


// classifier_kernel's softmax + cross-entropy (below) with the row staged in shared memory: one
// read and one write of the logits (a step's largest tensor) and no running-max rescales. At GPT-2's
// vocabulary a row is ~100 KB, so two rows share an SM and one block's loads overlap the other's
// exponentials (the earlier version held the row in the registers of 1024 threads: one row per SM
// at a time, 4.1 ms per d12 step at T = 1024). Rows up to CLS_SMEM_MAX_VP columns (57344: two
// blocks per SM; the register version went to 65536); larger vocabularies take classifier_kernel
// below.
static const int CLS_THREADS = 512, CLS_BATCH = 4;   // 16-byte loads in flight per thread
static const int CLS_SMEM_MAX_VP = 112 * 1024 / (int)sizeof(floatX);

__device__ float block_reduce_ordered(float v, bool is_max, float* red) {
    // red: 32 floats; every thread gets the result, combined in warp order
    for (int o = 16; o > 0; o >>= 1) {
        float other = __shfl_xor_sync(0xffffffff, v, o);
        v = is_max ? fmaxf(v, other) : v + other;
    }
    __syncthreads();  // red may still be read by a previous call
    if (threadIdx.x % 32 == 0) { red[threadIdx.x / 32] = v; }
    __syncthreads();
    v = red[0];
    for (int w = 1; w < (int)blockDim.x / 32; w++) { v = is_max ? fmaxf(v, red[w]) : v + red[w]; }
    return v;
}

// the two bf16 of a packed pair as floats (a bf16 is the top half of a float)
__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
// 2^x on the special-function unit, no range fix-ups (x <= 0 here; underflow to 0 is what we want)
__device__ __forceinline__ float exp2_fast(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__global__ void __launch_bounds__(CLS_THREADS, 2)  // two rows per SM: 64 registers at most
classifier_smem_kernel(floatX* logits, float* losses, const int* targets, float dloss, int V, int Vp) {
    extern __shared__ uint4 row[];  // (Vp / 8) packs of 8 logits
    __shared__ float red[32];
    floatX* l = logits + (size_t)blockIdx.x * Vp;
    const int packs = Vp / 8, full_packs = V / 8;  // packs from full_packs on hold padding columns
    // load the row, keeping CLS_BATCH loads in flight per thread, and take the max of the first V
    // (bf16 pairs compared as bf16: exact, half the instructions)
    __nv_bfloat162 m2 = __float2bfloat162_rn(-INFINITY);
    for (int i0 = threadIdx.x; i0 < packs; i0 += CLS_BATCH * CLS_THREADS) {
        uint4 p[CLS_BATCH];
        for (int j = 0; j < CLS_BATCH; j++) {
            int i = i0 + j * CLS_THREADS;
            if (i < packs) { p[j] = ((const uint4*)l)[i]; }
        }
        for (int j = 0; j < CLS_BATCH; j++) {
            int i = i0 + j * CLS_THREADS;
            if (i >= packs) { continue; }
            row[i] = p[j];
            const __nv_bfloat162* h = (const __nv_bfloat162*)&p[j];
            if (i < full_packs) {
                m2 = __hmax2(__hmax2(m2, h[0]), __hmax2(__hmax2(h[1], h[2]), h[3]));
            } else {
                for (int k = 0; k < 8; k++) {
                    if (i * 8 + k < V) { m2 = __hmax2(m2, __bfloat162bfloat162(((const floatX*)&p[j])[k])); }
                }
            }
        }
    }
    float m = fmaxf(__low2float(m2), __high2float(m2));
    float gm = block_reduce_ordered(m, true, red);  // its __syncthreads also publish the row
    const float gm2 = gm * 1.4426950408889634f;     // exp(x - gm) = 2^(x log2(e) - gm log2(e))
    const float l2e = 1.4426950408889634f;
    float s = 0.0f;
    for (int i = threadIdx.x; i < packs; i += CLS_THREADS) {
        uint4 p = row[i];
        const uint32_t w[4] = {p.x, p.y, p.z, p.w};
        if (i < full_packs) {
            for (int k = 0; k < 4; k++) {
                s += exp2_fast(fmaf(bf16_lo(w[k]), l2e, -gm2)) + exp2_fast(fmaf(bf16_hi(w[k]), l2e, -gm2));
            }
        } else {
            for (int k = 0; k < 4; k++) {
                if (i * 8 + 2 * k < V) { s += exp2_fast(fmaf(bf16_lo(w[k]), l2e, -gm2)); }
                if (i * 8 + 2 * k + 1 < V) { s += exp2_fast(fmaf(bf16_hi(w[k]), l2e, -gm2)); }
            }
        }
    }
    float gs = block_reduce_ordered(s, false, red);
    int target = targets[blockIdx.x];
    if (threadIdx.x == 0) { losses[blockIdx.x] = logf(gs) + gm - __bfloat162float(((const floatX*)row)[target]); }
    if (dloss == 0.0f) { return; }
    const float scale = dloss / gs;  // dlogit = (p - onehot) dloss, p = exp(x - gm) / gs
    for (int i = threadIdx.x; i < packs; i += CLS_THREADS) {
        uint4 p = row[i];
        uint32_t w[4] = {p.x, p.y, p.z, p.w};
        for (int k = 0; k < 4; k++) {
            float lo = exp2_fast(fmaf(bf16_lo(w[k]), l2e, -gm2)) * scale;
            float hi = exp2_fast(fmaf(bf16_hi(w[k]), l2e, -gm2)) * scale;
            if (i >= full_packs) {  // padding columns are not tokens: zero gradient
                if (i * 8 + 2 * k >= V) { lo = 0.0f; }
                if (i * 8 + 2 * k + 1 >= V) { hi = 0.0f; }
            }
            if (i == target / 8) {
                if (i * 8 + 2 * k == target) { lo -= dloss; }
                if (i * 8 + 2 * k + 1 == target) { hi -= dloss; }
            }
            __nv_bfloat162 o = __floats2bfloat162_rn(lo, hi);
            w[k] = *(uint32_t*)&o;
        }
        ((uint4*)l)[i] = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

// Softmax + cross-entropy per row without keeping float32 logits: losses (rows) gets -log p[target];
// with dloss != 0 the logits (rows, Vp) are overwritten by their gradient (p - onehot) * dloss.
// 16-byte loads (Vp is a multiple of 128); columns from V on are padding, outside the softmax.
__global__ void classifier_kernel(floatX* logits, float* losses, const int* targets, float dloss, int V, int Vp) {
    __shared__ float red[32];
    int row = blockIdx.x;
    floatX* l = logits + (size_t)row * Vp;
    float m = -INFINITY, s = 0.0f;  // this thread's running max and sum of exp(x - max)
    for (int c0 = threadIdx.x * 8; c0 < V; c0 += blockDim.x * 8) {
        Pack8 p;
        p.u = *(const uint4*)(l + c0);
        float chunk_max = -INFINITY;
        for (int k = 0; k < 8; k++) { if (c0 + k < V) { chunk_max = fmaxf(chunk_max, __bfloat162float(p.x[k])); } }
        float nm = fmaxf(m, chunk_max);
        s = (m == -INFINITY) ? 0.0f : s * expf(m - nm);
        for (int k = 0; k < 8; k++) { if (c0 + k < V) { s += expf(__bfloat162float(p.x[k]) - nm); } }
        m = nm;
    }
    // combine the threads: within warps, then the warp results, in a fixed order
    for (int o = 16; o > 0; o >>= 1) {
        float om = __shfl_xor_sync(0xffffffff, m, o), os = __shfl_xor_sync(0xffffffff, s, o);
        float nm = fmaxf(m, om);
        s = (m == -INFINITY ? 0.0f : s * expf(m - nm)) + (om == -INFINITY ? 0.0f : os * expf(om - nm));
        m = nm;
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    if (lane == 0) { red[warp] = m; }
    __syncthreads();
    float gm = -INFINITY;
    for (int w = 0; w < warps; w++) { gm = fmaxf(gm, red[w]); }
    __syncthreads();
    if (lane == 0) { red[warp] = m == -INFINITY ? 0.0f : s * expf(m - gm); }
    __syncthreads();
    float gs = 0.0f;
    for (int w = 0; w < warps; w++) { gs += red[w]; }
    int target = targets[row];
    if (threadIdx.x == 0) { losses[row] = logf(gs) + gm - __bfloat162float(l[target]); }
    __syncthreads();  // every thread has read the logits it needs before any is overwritten
    if (dloss == 0.0f) { return; }
    float inv = 1.0f / gs;
    for (int c0 = threadIdx.x * 8; c0 < Vp; c0 += blockDim.x * 8) {
        Pack8 p;
        p.u = *(const uint4*)(l + c0);
        for (int k = 0; k < 8; k++) {
            int i = c0 + k;
            float prob = i < V ? expf(__bfloat162float(p.x[k]) - gm) * inv : 0.0f;
            p.x[k] = __float2bfloat16(i < V ? (prob - (i == target ? 1.0f : 0.0f)) * dloss : 0.0f);
        }
        *(uint4*)(l + c0) = p.u;
    }
}

// ----------------------------------------------------------------------------
// optimizer: global gradient norm (fixed-order partial sums) and AdamW on float32 master weights

static const int NORM_BLOCKS = 1024;

__global__ void grad_norm_partial_kernel(float* partial, const float* grads, size_t n) {
    __shared__ float red[256];
    float s = 0.0f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        s += grads[i] * grads[i];
    }
    red[threadIdx.x] = s;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) { red[threadIdx.x] += red[threadIdx.x + h]; }
        __syncthreads();
    }
    if (threadIdx.x == 0) { partial[blockIdx.x] = red[0]; }
}

__global__ void adamw_kernel(float* master, floatX* params, float* m, float* v, const float* grads, size_t n,
                             float lr, float beta1, float beta2, float eps, float decay, float clip_scale,
                             float bias_correction1, float bias_correction2) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    float g = grads[i] * clip_scale;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = master[i] * (1.0f - lr * decay);
    p -= lr * (mi / bias_correction1) / (sqrtf(vi / bias_correction2) + eps);
    master[i] = p;
    params[i] = __float2bfloat16(p);
}

__global__ void float_to_bf16_kernel(floatX* out, const float* in, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { out[i] = __float2bfloat16(in[i]); }
}

// ============================================================================
// attention: dev/cuda's band kernels (SPEC §1's causal band + sinks; dense causal is W = 0, S = 0),
// forward and backward, and the versions this program runs

// @copy-begin attn-pattern
// ----------------------------------------------------------------------------
// the attention pattern (SPEC §1), causal fast path: window W (0 = unlimited) + sinks S
// query i attends key j iff  j <= i  and  (W == 0  or  i - j < W  or  j < S); the kernels test it a
// tile at a time (below), the CPU references a pair at a time (attn_allowed, after this block)

// Which key tiles (of BK keys) does a block of query rows [q0, q_last] have to visit?
// Two contiguous runs: the sink tiles [0, n_sink) and the band tiles [kt_lo, kt_hi].
// Sink tiles are only those strictly below the band run, so no tile is visited twice.
struct KeyTileRange { int n_sink, kt_lo, kt_hi; };

__host__ __device__ inline KeyTileRange key_tiles_for_queries(int q0, int q_last, int W, int S, int BK) {
    KeyTileRange r;
    r.kt_hi = q_last / BK;                                     // causal: no key beyond the last row
    int lo = (W > 0) ? (q0 - W + 1 > 0 ? q0 - W + 1 : 0) : 0;  // first key of the first row's band
    r.kt_lo = lo / BK;
    int ns = (S > 0) ? (S - 1) / BK + 1 : 0;                   // tiles that hold any key < S
    r.n_sink = ns < r.kt_lo ? ns : r.kt_lo;
    return r;
}
__host__ __device__ inline int key_tile_count(KeyTileRange r) { return r.n_sink + (r.kt_hi - r.kt_lo + 1); }
// the it-th visited key tile: sink tiles first, then the band
__host__ __device__ inline int key_tile_at(KeyTileRange r, int it) {
    return it < r.n_sink ? it : r.kt_lo + (it - r.n_sink);
}

// The reverse, for dK/dV: which queries attend some key of [k0, k_last]? One contiguous run
// [k0, q_hi]: causal gives i >= k0; the band reaches k_last + W - 1; a sink key (or W = 0) is seen
// by every later query.
__host__ __device__ inline int last_query_for_keys(int k0, int k_last, int W, int S, int T) {
    if (W == 0 || k0 < S) return T - 1;
    int q_hi = k_last + W - 1;
    return q_hi < T - 1 ? q_hi : T - 1;
}

// A (query block, key block) pair needs no per-element mask iff every pair in it is allowed and in
// range: the whole block lies below the diagonal (k_last <= q0, which also puts every key < T),
// every query row exists (q_last < T), and either there is no window, or the whole block is inside
// the band (q_last - k0 < W), or every key is a sink (k_last < S).
__host__ __device__ inline bool block_fully_allowed(int q0, int nq, int k0, int nk, int W, int S, int T) {
    int q_last = q0 + nq - 1, k_last = k0 + nk - 1;
    if (k_last > q0) return false;
    if (q_last >= T) return false;
    if (W == 0) return true;
    if (q_last - k0 < W) return true;
    if (k_last < S) return true;
    return false;
}

// The opposite question: does the (query block, key block) pair hold ANY allowed pair (with i < T)?
// Used to skip whole 16-key (or 16-query) chunks of a tile inside a warp (forward v5+, backward v7+).
// Causal: the smallest key must not exceed the last real query. Then with no window, or a sink key
// in the block (k0 < S, seen by every query >= k0), some pair is allowed; otherwise the closest pair
// (i - j = max(q0 - k_last, 0), reachable since the ranges overlap or keys lie below) must be in the band.
__host__ __device__ inline bool block_any_allowed(int q0, int nq, int k0, int nk, int W, int S, int T) {
    int q_last = q0 + nq - 1;
    if (q_last > T - 1) q_last = T - 1;
    if (q0 > q_last) return false;          // no real query row
    if (k0 > q_last) return false;          // every key is in the future of every row
    if (W == 0 || k0 < S) return true;
    return q0 - (k0 + nk - 1) < W;
}
// @copy-end attn-pattern

// @copy-begin attn-bf16-pack
// ----------------------------------------------------------------------------
// device helpers: bf16 packing

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);   // .x = lo goes to the low 16 bits
    return *reinterpret_cast<uint32_t*>(&v);
}
// 8 bf16 in a uint4 -> 8 floats
__device__ __forceinline__ void unpack_bf16x8(const uint4& u, float* f) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 t = __bfloat1622float2(h[k]);
        f[2 * k] = t.x; f[2 * k + 1] = t.y;
    }
}
// @copy-end attn-bf16-pack

// @copy-begin attn-mma
// ----------------------------------------------------------------------------
// tensor-core primitives (sm_80+): ldmatrix, mma.sync m16n8k16 bf16 -> fp32, cp.async
//
// mma.m16n8k16 fragments (PTX ISA), with g = lane / 4 and tg = lane % 4:
//   A (16x16, row-major)  a0: (g,   2tg..2tg+1)  a1: (g+8, 2tg..)  a2: (g, 2tg+8..)  a3: (g+8, 2tg+8..)
//   B (16x8,  "col")      b0: (k = 2tg..2tg+1, n = g)              b1: (k = 2tg+8.., n = g)
//   C (16x8,  fp32)       c0,c1: (g, 2tg..2tg+1)                   c2,c3: (g+8, 2tg..2tg+1)
// ldmatrix.x4: lanes 8m..8m+7 give the row addresses of 8x8 matrix m; register m of each lane gets
//   (row lane/4, cols 2(lane%4)..+1) of matrix m; with .trans it gets (rows 2(lane%4)..+1, col lane/4).

// "memory" clobbers: these read/write shared memory behind the compiler's back, and must not be
// cached or moved across __syncthreads / cp.async waits
__device__ __forceinline__ void ldmatrix_x4(uint32_t* r, const bf16* smem) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t* r, const bf16* smem) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
}
// c += a * b, bf16 inputs, fp32 accumulate
__device__ __forceinline__ void mma_bf16_16816(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
// 16-byte async copy global -> shared; when !valid nothing is read and the 16 bytes are zero-filled
// (src-size 0). gmem must still be a valid address, callers pass a clamped one.
__device__ __forceinline__ void cp_async_16(bf16* smem, const bf16* gmem, bool valid) {
    uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(s), "l"(gmem), "r"(n) : "memory");
}
// 4-byte async copy (one float; .cg only allows 16 bytes, so this goes through L1 with .ca),
// zero-filled when !valid
__device__ __forceinline__ void cp_async_4(float* smem, const float* gmem, bool valid) {
    uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    int n = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" :: "r"(s), "l"(gmem), "r"(n) : "memory");
}
// 2^x on the SFU, flush-to-zero: one MUFU.EX2 (exp2f adds range fix-ups for denormal results).
// ex2(-inf) = +0, which the masked scores rely on.
__device__ __forceinline__ float ex2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template<int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }
// @copy-end attn-mma

// @copy-begin attn-load-rows
// ----------------------------------------------------------------------------
// cheap tile loads (forward v7, backward v9): cp.async of rows [t0, t0 + ROWS) of a strided bf16
// tensor (D columns, row stride `stride` elements) into smem rows of LDS elements. Each of the NT
// threads owns fixed (row, 16-byte chunk) slots, so a tile costs one address add per copy; the
// bounds test (rows past T: zero-fill from a valid address) runs only on the tile that crosses T.
template<int D, int ROWS, int LDS, int NT>
__device__ __forceinline__ void load_rows_async(bf16* dst, const bf16* src, size_t stride, int t0, int T, int tid) {
    constexpr int CH = D / 8, RPP = NT / CH, NP = ROWS / RPP;   // rows per pass, passes
    static_assert(NT % CH == 0 && ROWS % RPP == 0, "tile rows must be a multiple of the rows per pass");
    const int lr = tid / CH, lc = (tid % CH) * 8;
    bf16* d = dst + lr * LDS + lc;
    const bf16* s = src + (size_t)(t0 + lr) * stride + lc;
    const size_t ps = (size_t)RPP * stride;
    if (t0 + ROWS <= T) {
#pragma unroll
        for (int p = 0; p < NP; p++) cp_async_16(d + p * RPP * LDS, s + p * ps, true);
    } else {
#pragma unroll
        for (int p = 0; p < NP; p++) {
            const bool ok = t0 + lr + p * RPP < T;
            cp_async_16(d + p * RPP * LDS, ok ? s + p * ps : src, ok);
        }
    }
}
// @copy-end attn-load-rows

// @copy-begin attn-forward-consts
static const float LOG2E = 1.4426950408889634f;
static const float LN2   = 0.6931471805599453f;
// @copy-end attn-forward-consts

// @copy-begin attn-forward-tiles
// ----------------------------------------------------------------------------
// kernels 3 and 4 (and 5-7 after them): tensor cores. Block per (b, h, 64-query tile), 4 warps,
// warp w owns query rows [16w, 16w+16) of the tile. Smem rows are padded to D + 8 elements:
// consecutive rows then start 16 B apart modulo 128 B, so the 8 row addresses of every ldmatrix hit
// 8 different bank groups.

constexpr int TC_BQ = 64, TC_BK = 64, TC_THREADS = 128;
// @copy-end attn-forward-tiles

// @copy-begin attn-forward-epilogue
// Q fragments of this warp's 16 rows, all D/16 k-chunks: matrices (rows +0..7, dims +0..7),
// (rows +8..15, dims +0..7), (rows +0..7, dims +8..15), (rows +8..15, dims +8..15) = a0..a3
template<int D>
__device__ __forceinline__ void load_q_frags(uint32_t (&qf)[D / 16][4], const bf16* Qs, int warp, int lane) {
    constexpr int LDS = D + 8;
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++)
        ldmatrix_x4(qf[kc], Qs + (warp * 16 + (lane % 16)) * LDS + kc * 16 + (lane / 16) * 8);
}

// Epilogue shared by v3, v4, v6, v7: normalize, stage the warp's 16 bf16 rows in its own rows of Qs (no
// other warp ever reads them), then write whole 16-byte chunks of out rows, and the lse.
template<int D>
__device__ __forceinline__ void fwd_epilogue(bf16* out, float* lse, bf16* Qs, float (&o)[D / 8][4],
                                             float (&m)[2], float (&l)[2], int b, int h, int T, int NH,
                                             int q0, int warp, int lane) {
    constexpr int LDS = D + 8, CH = D / 8;
    const int g = lane / 4, tg = lane % 4;
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = (l[r] > 0.f) ? 1.f / l[r] : 0.f;
    }
    __syncwarp();
    bf16* my = Qs + warp * 16 * LDS;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        *reinterpret_cast<uint32_t*>(my + g * LDS + n * 8 + 2 * tg) = pack_bf16x2(o[n][0] * inv[0], o[n][1] * inv[0]);
        *reinterpret_cast<uint32_t*>(my + (g + 8) * LDS + n * 8 + 2 * tg) = pack_bf16x2(o[n][2] * inv[1], o[n][3] * inv[1]);
    }
    __syncwarp();
    for (int x = lane; x < 16 * CH; x += 32) {
        int rr = x / CH, cc = x % CH, t = q0 + warp * 16 + rr;
        if (t < T)
            *reinterpret_cast<uint4*>(out + ((size_t)(b * T + t) * NH + h) * D + cc * 8) =
                *reinterpret_cast<const uint4*>(my + rr * LDS + cc * 8);
    }
    if (tg == 0) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int row = q0 + warp * 16 + g + 8 * r;
            if (row < T) lse[(size_t)(b * NH + h) * T + row] = (m[r] + log2f(l[r])) * LN2;
        }
    }
}
// @copy-end attn-forward-epilogue

// @copy-begin attn-forward-v6-tiles
// v6's tile functions, which v7 runs too: 3 blocks per SM (D = 64), the 16-key chunks of a tile
// with an allowed pair, S = Q K^T on those chunks, and mask / softmax / O += P V
template<int D> __host__ __device__ constexpr int fwd6_min_blocks() { return D == 64 ? 3 : 2; }

// 16-key chunks of key tile k0 with an allowed pair for the warp's 16 rows (bit c: chunk c)
__device__ __forceinline__ unsigned fwd6_need(int wq0, int k0, int W, int S, int T) {
    unsigned need = 0;
#pragma unroll
    for (int c = 0; c < TC_BK / 16; c++)
        if (block_any_allowed(wq0, 16, k0 + 16 * c, 16, W, S, T)) need |= 1u << c;
    return need;
}

// s = Q K^T for one warp (16 rows x 64 keys); chunks not in `need` stay 0 (the mask removes them)
template<int D>
__device__ __forceinline__ void fwd6_qk(float (&s)[TC_BK / 8][4], const uint32_t (&qf)[D / 16][4],
                                        const bf16* Ks, unsigned need, int lane) {
    constexpr int LDS = D + 8, NC = TC_BK / 16;
#pragma unroll
    for (int t = 0; t < TC_BK / 8; t++) { s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
        uint32_t bfr[NC][4];
#pragma unroll
        for (int np = 0; np < NC; np++)
            if (need & (1u << np))
                ldmatrix_x4(bfr[np], Ks + (np * 16 + (lane % 8) + (lane / 16) * 8) * LDS + kc * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int np = 0; np < NC; np++) {
            if (need & (1u << np)) {
                mma_bf16_16816(s[2 * np], qf[kc], bfr[np]);
                mma_bf16_16816(s[2 * np + 1], qf[kc], bfr[np] + 2);
            }
        }
    }
}

// the band + sink mask of an edge tile (s = -inf where the pair is not allowed or the row is past T)
__device__ __forceinline__ void fwd6_band_mask(float (&s)[TC_BK / 8][4], int k0, int wq0, int lane, int W, int S, int T) {
    constexpr int BK = TC_BK;
    const int g = lane / 4, tg = lane % 4;
    if (!block_fully_allowed(wq0, 16, k0, BK, W, S, T)) {
        const int kb = k0 + 2 * tg, sk = S - kb;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = wq0 + g + 8 * r;
            const int hi = (row < T) ? row - kb : -1 - BK;
            const int lo = (W > 0) ? row - W + 1 - kb : -BK;
#pragma unroll
            for (int t = 0; t < BK / 8; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int kk = t * 8 + e;
                    if (!(kk <= hi && (kk >= lo || kk < sk))) s[t][2 * r + e] = -INFINITY;
                }
        }
    }
}

// max, lazy rescale, P = 2^(s sl2 - m), row sums, O += P V for one warp, on scores already masked
// (-inf where not allowed): shared by the band kernels (after fwd6_band_mask) and the general
// path's tile version (after its own mask)
template<int D>
__device__ __forceinline__ void fwd_softmax_pv(float (&o)[D / 8][4], float (&m)[2], float (&l)[2],
                                               float (&s)[TC_BK / 8][4], const bf16* Vs, unsigned need, int lane, float sl2) {
    constexpr int BK = TC_BK, LDS = D + 8, NC = BK / 16;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int t = 0; t < BK / 8; t++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[t][0], s[t][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[t][2], s[t][3]));
    }
    float mnew[2];
    bool grow = false;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        mnew[r] = fmaxf(m[r], mx[r] * sl2);
        grow |= (mnew[r] - m[r] > 8.f);   // -inf -> finite: inf > 8; -inf -> -inf: NaN, false
    }
    if (__any_sync(0xffffffffu, grow)) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const float mu = (mnew[r] == -INFINITY) ? 0.f : mnew[r];
            const float alpha = ex2_approx(m[r] - mu);
            m[r] = mnew[r];
            l[r] *= alpha;
#pragma unroll
            for (int n = 0; n < D / 8; n++) { o[n][2 * r] *= alpha; o[n][2 * r + 1] *= alpha; }
        }
    }
    float mu[2];
#pragma unroll
    for (int r = 0; r < 2; r++) mu[r] = (m[r] == -INFINITY) ? 0.f : m[r];
#pragma unroll
    for (int t = 0; t < BK / 8; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float p = ex2_approx(fmaf(s[t][e], sl2, -mu[e / 2]));
            s[t][e] = p;
            l[e / 2] += p;
        }
#pragma unroll
    for (int kc = 0; kc < NC; kc++) {
        if (need & (1u << kc)) {
            uint32_t a[4];
            a[0] = pack_bf16x2(s[2 * kc][0], s[2 * kc][1]);
            a[1] = pack_bf16x2(s[2 * kc][2], s[2 * kc][3]);
            a[2] = pack_bf16x2(s[2 * kc + 1][0], s[2 * kc + 1][1]);
            a[3] = pack_bf16x2(s[2 * kc + 1][2], s[2 * kc + 1][3]);
#pragma unroll
            for (int np = 0; np < D / 16; np++) {
                uint32_t bfr[4];
                ldmatrix_x4_trans(bfr, Vs + (kc * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LDS + np * 16 + (lane / 16) * 8);
                mma_bf16_16816(o[2 * np], a, bfr);
                mma_bf16_16816(o[2 * np + 1], a, bfr + 2);
            }
        }
    }
}

// mask (edge tiles), then max, lazy rescale, P, row sums, O += P V for one warp
template<int D>
__device__ __forceinline__ void fwd6_softmax_pv(float (&o)[D / 8][4], float (&m)[2], float (&l)[2],
                                                float (&s)[TC_BK / 8][4], const bf16* Vs, int k0, int wq0,
                                                unsigned need, int lane, int W, int S, int T, float sl2) {
    fwd6_band_mask(s, k0, wq0, lane, W, S, T);
    fwd_softmax_pv<D>(o, m, l, s, Vs, need, lane, sl2);
}
// @copy-end attn-forward-v6-tiles

// @copy-begin attn-forward-v7
// forward v7, the fastest on mma.sync: v4's loop (4 warps x 16 query rows, 3 blocks per SM) with
// fewer instructions per mma: fixed-slot cp.async (load_rows_async), ex2.approx.ftz, lazy rescale,
// chunk skipping only on tiles with a skipped chunk, one __syncthreads per tile
template<int D>
__global__ void __launch_bounds__(TC_THREADS, fwd6_min_blocks<D>())
attention_forward_kernel7(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    constexpr int BQ = TC_BQ, BK = TC_BK, NT = TC_THREADS, LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* Ks = Qs + BQ * LDS;                       // (2, BK, LDS)
    bf16* Vs = Ks + 2 * BK * LDS;                   // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;      // longest tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int q0 = qt * BQ, wq0 = q0 + warp * 16;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        load_rows_async<D, BK, LDS, NT>(Ks + buf * BK * LDS, kbase, C3, k0, T, tid);
        load_rows_async<D, BK, LDS, NT>(Vs + buf * BK * LDS, vbase, C3, k0, T, tid);
    };

    load_rows_async<D, BQ, LDS, NT>(Qs, qbase, C3, q0, T, tid);
    load_kv(0, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, Qs, warp, lane);

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f; }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) {
            cp_async_wait<0>();   // tile it has landed
            __syncthreads();      // ... for everyone, and tile it-1 is done in every warp
        }
        if (it + 1 < ntiles) {    // into the buffer of tile it-1
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, k0 = key_tile_at(kr, it) * BK;
        const unsigned need = fwd6_need(wq0, k0, W, S, T);
        float s[BK / 8][4];
        if (need == 0xFu) {       // every chunk: a copy with the chunk predicates folded away
            fwd6_qk<D>(s, qf, Ks + buf * BK * LDS, 0xFu, lane);
            fwd6_softmax_pv<D>(o, m, l, s, Vs + buf * BK * LDS, k0, wq0, 0xFu, lane, W, S, T, sl2);
        } else if (need) {        // band edges and sink tiles: predicated mma on the needed chunks
            fwd6_qk<D>(s, qf, Ks + buf * BK * LDS, need, lane);
            fwd6_softmax_pv<D>(o, m, l, s, Vs + buf * BK * LDS, k0, wq0, need, lane, W, S, T, sl2);
        }
    }
    fwd_epilogue<D>(out, lse, Qs, o, m, l, b, h, T, NH, q0, warp, lane);
}

template<int D>
void attention_forward7(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const size_t smem = (size_t)(TC_BQ + 4 * TC_BK) * (D + 8) * sizeof(bf16);
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel7<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid(B * NH, ceil_div(T, TC_BQ));
    attention_forward_kernel7<D><<<grid, TC_THREADS, smem>>>(out, lse, qkv, B, T, NH, W, S);
    cudaCheckLaunch();
}
// ---- end of version 7
// @copy-end attn-forward-v7

// @copy-begin attn-wgmma
// ----------------------------------------------------------------------------
// Hopper warpgroup MMA (wgmma, sm_90a) building blocks shared by forward v8-v12 and backward v10-v12:
// 128-byte-swizzled tiles filled by cp.async, matrix descriptors, the two wgmma shapes they use
// (S = A B^T with both operands in smem; O += P V with P in registers and V N-major in smem).

// byte offset of 16-byte chunk c (of D / 8) of row r in a tile of ROWS rows, 128-byte swizzle:
// column blocks of 64 elements [c / 8][ROWS][128 B], chunk c % 8 of row r stored at (c % 8) ^ (r % 8)
template<int ROWS>
__device__ __forceinline__ uint32_t wg_swz(int r, int c) {
    return (uint32_t)((c >> 3) * ROWS * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

__device__ __forceinline__ void wg_cp_async(uint32_t s, const bf16* g, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(s), "l"(g), "r"(valid ? 16 : 0) : "memory");
}

// rows [t0, t0 + ROWS) of a strided bf16 tensor into a swizzled tile at shared address dst; each
// thread has fixed (row, chunk) slots (rows per pass is a multiple of 8, so the swizzle phase of a
// thread's rows is fixed); rows past T are zero-filled
template<int D, int ROWS, int NT>
__device__ __forceinline__ void wg_load_rows(uint32_t dst, const bf16* src, size_t stride, int t0, int T, int tid) {
    constexpr int CH = D / 8, RPP = NT / CH, NP = ROWS / RPP;
    static_assert(NT % CH == 0 && ROWS % RPP == 0 && RPP % 8 == 0, "fixed slots need 8-row passes");
    const int lr = tid / CH, c = tid % CH;
    const uint32_t d = dst + wg_swz<ROWS>(lr, c);
    const bf16* s = src + (size_t)(t0 + lr) * stride + c * 8;
    const size_t ps = (size_t)RPP * stride;
    if (t0 + ROWS <= T) {
#pragma unroll
        for (int p = 0; p < NP; p++) wg_cp_async(d + p * RPP * 128, s + p * ps, true);
    } else {
#pragma unroll
        for (int p = 0; p < NP; p++) {
            const bool ok = t0 + lr + p * RPP < T;
            wg_cp_async(d + p * RPP * 128, ok ? s + p * ps : src, ok);
        }
    }
}

// wgmma shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride byte
// offsets (K-major: stride = 1024 B between 8-row groups, leading unused; N-major: leading = the
// step between 64-element column blocks, stride = 1024 B between 8-row groups along K)
__device__ __forceinline__ uint64_t wg_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) | (1ull << 62);
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template<int N>
__device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(N) : "memory"); }
// keeps the compiler from moving accesses of accumulator registers across the wgmma fences / waits
template<int N>
__device__ __forceinline__ void wg_fence_regs(float (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i]) :: "memory");
}

#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define HAS_WGMMA 1
#endif

// s (64 x 64, fp32) = (scale_d ? s : 0) + A (64 x 16, smem, K-major) B^T (16 x 64, smem, K-major),
// e.g. S = Q K^T
__device__ __forceinline__ void wgmma_m64n64_ss(float (&s)[32], uint64_t da, uint64_t db, int scale_d) {
#ifdef HAS_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(s[0]), "+f"(s[1]), "+f"(s[2]), "+f"(s[3]), "+f"(s[4]), "+f"(s[5]), "+f"(s[6]), "+f"(s[7]),
                   "+f"(s[8]), "+f"(s[9]), "+f"(s[10]), "+f"(s[11]), "+f"(s[12]), "+f"(s[13]), "+f"(s[14]), "+f"(s[15]),
                   "+f"(s[16]), "+f"(s[17]), "+f"(s[18]), "+f"(s[19]), "+f"(s[20]), "+f"(s[21]), "+f"(s[22]), "+f"(s[23]),
                   "+f"(s[24]), "+f"(s[25]), "+f"(s[26]), "+f"(s[27]), "+f"(s[28]), "+f"(s[29]), "+f"(s[30]), "+f"(s[31])
                 : "l"(da), "l"(db), "r"(scale_d));
#endif
}

// o (64 x D, fp32) += P (64 x 16, bf16 A fragments in registers) V (16 x D, smem, N-major), e.g. O += P V
template<int D>
__device__ __forceinline__ void wgmma_m64nD_rs(float (&o)[D / 2], const uint32_t (&a)[4], uint64_t db) {
#ifdef HAS_WGMMA
    if constexpr (D == 64) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                     "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                     : "+f"(o[0]), "+f"(o[1]), "+f"(o[2]), "+f"(o[3]), "+f"(o[4]), "+f"(o[5]), "+f"(o[6]), "+f"(o[7]),
                       "+f"(o[8]), "+f"(o[9]), "+f"(o[10]), "+f"(o[11]), "+f"(o[12]), "+f"(o[13]), "+f"(o[14]), "+f"(o[15]),
                       "+f"(o[16]), "+f"(o[17]), "+f"(o[18]), "+f"(o[19]), "+f"(o[20]), "+f"(o[21]), "+f"(o[22]), "+f"(o[23]),
                       "+f"(o[24]), "+f"(o[25]), "+f"(o[26]), "+f"(o[27]), "+f"(o[28]), "+f"(o[29]), "+f"(o[30]), "+f"(o[31])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
    } else {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
                     "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                     : "+f"(o[0]), "+f"(o[1]), "+f"(o[2]), "+f"(o[3]), "+f"(o[4]), "+f"(o[5]), "+f"(o[6]), "+f"(o[7]),
                       "+f"(o[8]), "+f"(o[9]), "+f"(o[10]), "+f"(o[11]), "+f"(o[12]), "+f"(o[13]), "+f"(o[14]), "+f"(o[15]),
                       "+f"(o[16]), "+f"(o[17]), "+f"(o[18]), "+f"(o[19]), "+f"(o[20]), "+f"(o[21]), "+f"(o[22]), "+f"(o[23]),
                       "+f"(o[24]), "+f"(o[25]), "+f"(o[26]), "+f"(o[27]), "+f"(o[28]), "+f"(o[29]), "+f"(o[30]), "+f"(o[31]),
                       "+f"(o[32]), "+f"(o[33]), "+f"(o[34]), "+f"(o[35]), "+f"(o[36]), "+f"(o[37]), "+f"(o[38]), "+f"(o[39]),
                       "+f"(o[40]), "+f"(o[41]), "+f"(o[42]), "+f"(o[43]), "+f"(o[44]), "+f"(o[45]), "+f"(o[46]), "+f"(o[47]),
                       "+f"(o[48]), "+f"(o[49]), "+f"(o[50]), "+f"(o[51]), "+f"(o[52]), "+f"(o[53]), "+f"(o[54]), "+f"(o[55]),
                       "+f"(o[56]), "+f"(o[57]), "+f"(o[58]), "+f"(o[59]), "+f"(o[60]), "+f"(o[61]), "+f"(o[62]), "+f"(o[63])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
    }
#endif
}

// issue acc = A B^T over the head dimension (D / 16 chained wgmma, one commit group); da, db:
// descriptors of 64 rows of A and of B in K-major swizzled tiles of ROWS_A / ROWS_B rows (a k-step
// of 16 columns is 32 bytes; every 4 steps the next 64-column block, ROWS * 128 bytes further)
template<int D, int ROWS_A, int ROWS_B>
__device__ __forceinline__ void wg_issue_abt(float (&acc)[32], uint64_t da, uint64_t db) {
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        const uint32_t offa = (uint32_t)((kk / 4) * ROWS_A * 128 + (kk % 4) * 32) >> 4;
        const uint32_t offb = (uint32_t)((kk / 4) * ROWS_B * 128 + (kk % 4) * 32) >> 4;
        wgmma_m64n64_ss(acc, da + offa, db + offb, kk > 0);
    }
    wg_commit();
}
// issue acc += P B over 64 rows of B (4 chained wgmma, one commit group); db: N-major descriptor
template<int D>
__device__ __forceinline__ void wg_issue_pb(float (&acc)[D / 2], const uint32_t (&pa)[4][4], uint64_t db) {
    wg_fence_regs(acc);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < 4; kc++) wgmma_m64nD_rs<D>(acc, pa[kc], db + ((uint32_t)(kc * 16 * 128) >> 4));
    wg_commit();
}

// does this binary hold the wgmma code for the current device (built for sm_90a)? The wgmma versions
// (forward v8-v12, backward v10-v12) ask before they run; every other build falls back to mma.sync versions.
__global__ void wgmma_probe_kernel(int* ok) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *ok = 1;
#else
    *ok = 0;
#endif
}
static inline bool wgmma_available() {
    static int avail = -1;
    if (avail < 0) {
        int* d_ok;
        cudaCheck(cudaMalloc(&d_ok, sizeof(int)));
        wgmma_probe_kernel<<<1, 1>>>(d_ok);
        cudaCheckLaunch();
        cudaCheck(cudaMemcpy(&avail, d_ok, sizeof(int), cudaMemcpyDeviceToHost));
        cudaCheck(cudaFree(d_ok));
    }
    return avail == 1;
}
// @copy-end attn-wgmma

// @copy-begin attn-forward-softmax
// the key tile and the softmax steps of v8, which v9-v12 share (the programs copy this part only)
constexpr int FWD8_BK = 64;

// edge tiles only (the pair block is not wholly allowed): scores of disallowed pairs, and of rows
// past T, to -inf. s[4t + 2r + e] is row r0 + 8r, key k0 + 8t + 2tg + e.
__device__ __forceinline__ void fwd8_mask(float (&s)[32], int k0, int wq0, int r0, int tg, int W, int S, int T) {
    constexpr int BK = FWD8_BK;
    if (!block_fully_allowed(wq0, 64, k0, BK, W, S, T)) {
        const int kb = k0 + 2 * tg, sk = S - kb;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = r0 + 8 * r;
            const int hi = (row < T) ? row - kb : -1 - BK;
            const int lo = (W > 0) ? row - W + 1 - kb : -BK;
#pragma unroll
            for (int t = 0; t < BK / 8; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int kk = t * 8 + e;
                    if (!(kk <= hi && (kk >= lo || kk < sk))) s[4 * t + 2 * r + e] = -INFINITY;
                }
        }
    }
}
// this thread's part of the row maxima (rows r0, r0 + 8; the row's 4 threads still to be combined)
__device__ __forceinline__ void fwd8_thread_max(const float (&s)[32], float (&mx)[2]) {
    mx[0] = mx[1] = -INFINITY;
#pragma unroll
    for (int t = 0; t < FWD8_BK / 8; t++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[4 * t], s[4 * t + 1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[4 * t + 2], s[4 * t + 3]));
    }
}

// the softmax step of a tile whose scores are masked already: the running max, the rescale of o
// and l when it grows by more than 2^8, and P as bf16 A fragments (the general path's version 4
// masks with its own rule and runs this)
template<int D>
__device__ __forceinline__ void fwd8_online_softmax(float (&s)[32], float (&o)[D / 2], float (&m)[2], float (&l)[2],
                                                    uint32_t (&pa)[FWD8_BK / 16][4], float sl2) {
    constexpr int BK = FWD8_BK;
    float mx[2];
    fwd8_thread_max(s, mx);
    float mnew[2];
    bool grow = false;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        mnew[r] = fmaxf(m[r], mx[r] * sl2);
        grow |= (mnew[r] - m[r] > 8.f);   // -inf -> finite: inf > 8; -inf -> -inf: NaN, false
    }
    if (__any_sync(0xffffffffu, grow)) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const float mu = (mnew[r] == -INFINITY) ? 0.f : mnew[r];
            const float alpha = ex2_approx(m[r] - mu);
            m[r] = mnew[r];
            l[r] *= alpha;
#pragma unroll
            for (int n = 0; n < D / 8; n++) { o[4 * n + 2 * r] *= alpha; o[4 * n + 2 * r + 1] *= alpha; }
        }
    }
    float mu[2];
#pragma unroll
    for (int r = 0; r < 2; r++) mu[r] = (m[r] == -INFINITY) ? 0.f : m[r];
#pragma unroll
    for (int t = 0; t < BK / 8; t++) {   // key chunk kc = accumulator n-tiles 2kc, 2kc + 1
        float p[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            p[e] = ex2_approx(fmaf(s[4 * t + e], sl2, -mu[e / 2]));
            l[e / 2] += p[e];
        }
        pa[t / 2][2 * (t % 2)] = pack_bf16x2(p[0], p[1]);
        pa[t / 2][2 * (t % 2) + 1] = pack_bf16x2(p[2], p[3]);
    }
}

// mask (edge tiles only), row max, lazy rescale (only when some row's max grew by > 8 in log2
// units), P = 2^(s sl2 - m) as bf16 A fragments, row sums. s[4t + 2r + e] is row r0 + 8r, key
// k0 + 8t + 2tg + e. No wgmma may be in flight (o and the P fragments are rewritten).
template<int D>
__device__ __forceinline__ void fwd8_softmax(float (&s)[32], float (&o)[D / 2], float (&m)[2], float (&l)[2],
                                             uint32_t (&pa)[FWD8_BK / 16][4], int k0, int wq0, int r0, int tg,
                                             int W, int S, int T, float sl2) {
    fwd8_mask(s, k0, wq0, r0, tg, W, S, T);
    fwd8_online_softmax<D>(s, o, m, l, pa, sl2);
}

// @copy-end attn-forward-softmax

// @copy-begin attn-tma
// ----------------------------------------------------------------------------
// Hopper's tensor memory accelerator (TMA, sm_90): one thread copies a whole box of a tensor into
// shared memory in the 128-byte swizzle that wgmma reads, and the copy itself tells an mbarrier how
// many bytes landed. Replaces 128 threads' cp.async address arithmetic (forward v10 on, backward v11).

// A (B, T, cols) bf16 tensor (qkv: cols = 3C; dout: cols = C) as a 3-d tensor map. A box is 64
// columns (128 bytes, the swizzle span) of box_rows rows of one batch; rows past T read as zeros.
// Errors go through cudaCheck after a line that says what was wrong: the programs exit, and
// attention_compare's library (whose cudaCheck throws) returns the error to its caller.
static inline CUtensorMap encode_rows_tensor_map(const bf16* base, int B, int T, int cols, int box_rows) {
    static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
    if (!encode) {
        cudaDriverEntryPointQueryResult found;
#if CUDART_VERSION >= 12050
        cudaCheck(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void**)&encode, 12000,
                                                   cudaEnableDefault, &found));
#else
        cudaCheck(cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", (void**)&encode, cudaEnableDefault, &found));
#endif
        if (found != cudaDriverEntryPointSuccess || !encode) {
            fprintf(stderr, "error: the CUDA driver has no cuTensorMapEncodeTiled (TMA needs a CUDA 12+ driver)\n");
            encode = nullptr;
            cudaCheck(cudaErrorNotSupported);
        }
    }
    const size_t row_bytes = (size_t)cols * sizeof(bf16);
    if (((uintptr_t)base % 16) != 0 || row_bytes % 16 != 0) {
        fprintf(stderr, "error: tensor at %p with rows of %zu bytes: TMA needs 16-byte aligned rows\n", (const void*)base, row_bytes);
        cudaCheck(cudaErrorInvalidValue);
    }
    CUtensorMap map;
    const cuuint64_t dims[3] = {(cuuint64_t)cols, (cuuint64_t)T, (cuuint64_t)B};
    const cuuint64_t strides[2] = {(cuuint64_t)row_bytes, (cuuint64_t)(T * row_bytes)};
    const cuuint32_t box[3] = {64, (cuuint32_t)box_rows, 1};
    const cuuint32_t elem_strides[3] = {1, 1, 1};
    const CUresult r = encode(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void*)base, dims, strides, box, elem_strides,
                              CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                              CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        fprintf(stderr, "error: cuTensorMapEncodeTiled failed (%d) for a (%d, %d, %d) tensor\n", (int)r, B, T, cols);
        cudaCheck(cudaErrorInvalidValue);
    }
    return map;
}
// Encoding costs microseconds of host time in front of every launch; a program runs the same few
// buffers again and again (a trainer: one qkv per layer), so the maps are kept. A map depends only on
// its key, so a buffer freed and allocated again at the same address finds a correct map.
static inline CUtensorMap rows_tensor_map(const bf16* base, int B, int T, int cols, int box_rows) {
    struct Entry { const bf16* base; int B, T, cols, box_rows; CUtensorMap map; };
    static Entry cache[64];
    static int used = 0, next = 0;
    for (int i = 0; i < used; i++) {
        const Entry& e = cache[i];
        if (e.base == base && e.B == B && e.T == T && e.cols == cols && e.box_rows == box_rows) return e.map;
    }
    Entry& e = cache[next];
    e = Entry{base, B, T, cols, box_rows, encode_rows_tensor_map(base, B, T, cols, box_rows)};
    next = (next + 1) % 64;
    if (used < 64) used++;
    return e.map;
}

__device__ __forceinline__ void mbar_init(uint32_t bar, int arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(arrivals) : "memory");
}
// makes the initialised barriers visible to the copy engine (then a __syncthreads for the threads)
__device__ __forceinline__ void mbar_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// one arrival that also announces how many bytes the phase waits for
__device__ __forceinline__ void mbar_arrive_expect_bytes(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
}
// more bytes for the current phase, without an arrival (a second copy riding on someone's arrival)
__device__ __forceinline__ void mbar_expect_bytes(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
}
// spin until the barrier's phase with this parity has completed
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    asm volatile("{\n.reg .pred done;\nWAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra WAIT;\n}\n" :: "r"(bar), "r"(parity) : "memory");
}
// box at (column x, row y, batch z) of the map into shared address dst, completing bytes on bar
__device__ __forceinline__ void tma_load_box(uint32_t dst, const CUtensorMap* map, int x, int y, int z, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n"
                 :: "r"(dst), "l"((uint64_t)map), "r"(x), "r"(y), "r"(z), "r"(bar) : "memory");
}

// s (64 x 16, fp32) = A (64 x 16, smem, K-major) B^T (16 x 16 keys, smem, K-major): the 16-key
// sink tiles of forward v11 and backward v12
__device__ __forceinline__ void wgmma_m64n16_ss(float (&s)[8], uint64_t da, uint64_t db, int scale_d) {
#ifdef HAS_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(s[0]), "+f"(s[1]), "+f"(s[2]), "+f"(s[3]), "+f"(s[4]), "+f"(s[5]), "+f"(s[6]), "+f"(s[7])
                 : "l"(da), "l"(db), "r"(scale_d));
#endif
}
// @copy-end attn-tma

// @copy-begin attn-forward-v10
// forward v10 / v11 (NARROW_SINK): one warpgroup of 64 query rows per block on wgmma (v9); Q, K and
// V brought in by the tensor memory accelerator (one thread, one copy per 64 x 64 box, an mbarrier
// per K / V buffer), a head's query tiles side by side in the grid; v11: a 16-key sink tile when
// the sinks fit one (S <= 16) and lie below the band
constexpr int FWD10_SINK_KEYS = 16;
static_assert(FWD10_SINK_KEYS == 16, "the narrow sink tile is one wgmma n16 and one k16 step of P V");
template<int D> __host__ __device__ constexpr int fwd10_min_blocks() { return D == 64 ? 5 : 2; }
template<int D> __host__ __device__ constexpr size_t fwd10_smem() {   // + 1024: base alignment
    return 1024 + (size_t)(64 + 4 * FWD8_BK) * D * sizeof(bf16);
}

// The 16-key sink tile (v11 on): keys 0..15 lie below every row's band, so key j is allowed iff
// j < S. It is the first tile a row sees: m = -inf, l = 0, o = 0 before it, nothing to rescale.
// s8[4t + 2r + e] is row r0 + 8r, key 8t + 2tg + e; ps: P as the A fragment of one k16 step.
template<int D, int BQ, int BK>
__device__ __forceinline__ void fwd10_sink_tile(float (&s8)[8], uint32_t (&ps)[4], float (&m)[2], float (&l)[2],
                                                uint64_t dq, uint64_t dk, int tg, int S, float sl2) {
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        wgmma_m64n16_ss(s8, dq + ((uint32_t)((kk / 4) * BQ * 128 + (kk % 4) * 32) >> 4),
                        dk + ((uint32_t)((kk / 4) * BK * 128 + (kk % 4) * 32) >> 4), kk > 0);
    wg_commit();
    wg_wait<0>();
    wg_fence_regs(s8);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        if (8 * (i / 4) + 2 * tg + (i % 2) >= S) s8[i] = -INFINITY;
        mx[(i / 2) % 2] = fmaxf(mx[(i / 2) % 2], s8[i]);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        m[r] = mx[r] * sl2;   // key 0 is a sink: finite
    }
#pragma unroll
    for (int i = 0; i < 8; i++) {
        s8[i] = ex2_approx(fmaf(s8[i], sl2, -m[(i / 2) % 2]));
        l[(i / 2) % 2] += s8[i];
    }
    // A fragment of m64 x k16: (row g, keys 2tg..), (row g+8, 2tg..), (row g, 8+2tg..), (row g+8, 8+2tg..)
#pragma unroll
    for (int j = 0; j < 4; j++) ps[j] = pack_bf16x2(s8[2 * j], s8[2 * j + 1]);
}

// epilogue of v10 on (as v9): normalise, stage the bf16 rows in Q's swizzled tile (its wgmma are
// done), 16-byte stores; lse in natural log
template<int D>
__device__ __forceinline__ void fwd10_epilogue(bf16* out, float* lse, unsigned char* smem, float (&o)[D / 2],
                                               float (&m)[2], float (&l)[2], int b, int h, int q0, int r0,
                                               int warp, int g, int tg, int tid, int T, int NH) {
    constexpr int BQ = 64, CH = D / 8;
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = (l[r] > 0.f) ? 1.f / l[r] : 0.f;
    }
    const int lrow = warp * 16 + g;
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int r = 0; r < 2; r++)
            *reinterpret_cast<uint32_t*>(smem + wg_swz<BQ>(lrow + 8 * r, n) + 4 * tg) =
                pack_bf16x2(o[4 * n + 2 * r] * inv[r], o[4 * n + 2 * r + 1] * inv[r]);
    if (tg == 0) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = r0 + 8 * r;
            if (row < T) lse[(size_t)(b * NH + h) * T + row] = (m[r] + log2f(l[r])) * LN2;
        }
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < 64 * CH / 128; p++) {
        const int x = tid + p * 128, rr = x / CH, cc = x % CH, t = q0 + rr;
        if (t < T)
            *reinterpret_cast<uint4*>(out + ((size_t)(b * T + t) * NH + h) * D + cc * 8) =
                *reinterpret_cast<const uint4*>(smem + wg_swz<BQ>(rr, cc));
    }
}

template<int D, bool NARROW_SINK>
__global__ void __launch_bounds__(128, fwd10_min_blocks<D>())
attention_forward_kernel10(bf16* out, float* lse, const __grid_constant__ CUtensorMap qkv_map,
                           int B, int T, int NH, int W, int S) {
#ifdef HAS_WGMMA
    constexpr int BQ = 64, BK = FWD8_BK, CB = D / 64;   // CB: 64-column boxes per row
    constexpr uint32_t QBYTES = BQ * D * 2, KVBYTES = BK * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ __align__(8) uint64_t tile_full[2];     // one mbarrier per K / V buffer
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;     // the swizzle repeats every 1024 bytes
    unsigned char* smem = smem_raw + (sbase - raw);
    const uint32_t Qs = sbase;                         // (BQ rows) swizzled
    const uint32_t Ks = Qs + QBYTES;                   // 2 buffers of (BK rows)
    const uint32_t Vs = Ks + 2 * KVBYTES;              // 2 buffers of (BK rows)
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]);

    const int h = blockIdx.y, b = blockIdx.z;
    const int qt = gridDim.x - 1 - blockIdx.x;         // longest tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ;
    const int r0 = q0 + warp * 16 + g;                 // this thread's rows: r0, r0 + 8
    const int C = NH * D;
    const float sl2 = LOG2E / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    // tile 0 is the sink tile and all sinks sit in its first 16 keys: the narrow path
    const bool narrow = NARROW_SINK && kr.n_sink == 1 && S <= FWD10_SINK_KEYS;
    auto issue_kv = [&](int it, int buf) {   // one thread
        const int k0 = key_tile_at(kr, it) * BK;
#pragma unroll
        for (int cb = 0; cb < CB; cb++) {
            tma_load_box(Ks + buf * KVBYTES + cb * BK * 128, &qkv_map, C + h * D + cb * 64, k0, b, bar0 + 8 * buf);
            tma_load_box(Vs + buf * KVBYTES + cb * BK * 128, &qkv_map, 2 * C + h * D + cb * 64, k0, b, bar0 + 8 * buf);
        }
    };
    if (tid == 0) {
        mbar_init(bar0, 1);
        mbar_init(bar0 + 8, 1);
        mbar_init_fence();
        mbar_arrive_expect_bytes(bar0, QBYTES + 2 * KVBYTES);
#pragma unroll
        for (int cb = 0; cb < CB; cb++) tma_load_box(Qs + cb * BQ * 128, &qkv_map, h * D + cb * 64, q0, b, bar0);
        issue_kv(0, 0);
    }
    __syncthreads();   // the barriers are initialised before anyone waits on them

    const uint64_t dq0 = wg_desc(Qs, 16, 1024);
    const uint64_t dk0 = wg_desc(Ks, 16, 1024);
    const uint64_t dv0 = wg_desc(Vs, BK * 128, 1024);
    auto dk = [&](int buf) { return dk0 + (uint32_t)(buf * KVBYTES >> 4); };
    auto dv = [&](int buf) { return dv0 + (uint32_t)(buf * KVBYTES >> 4); };

    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) o[i] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    uint32_t pa[BK / 16][4];

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) __syncthreads();   // every warp is done with tile it-1, whose buffers tile it+1 takes
        if (tid == 0 && it + 1 < ntiles) {
            mbar_arrive_expect_bytes(bar0 + 8 * ((it + 1) & 1), 2 * KVBYTES);
            issue_kv(it + 1, (it + 1) & 1);
        }
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // tile it (and, for it = 0, Q) landed
        if (narrow && it == 0) {
            float s8[8];
            uint32_t ps[4];
            fwd10_sink_tile<D, BQ, BK>(s8, ps, m, l, dq0, dk(0), tg, S, sl2);
            wg_fence_regs(o);
            wg_fence();
            wgmma_m64nD_rs<D>(o, ps, dv(0));
            wg_commit();
            wg_wait<0>();
            continue;
        }
        float s[32];
        wg_issue_abt<D, BQ, BK>(s, dq0, dk(it & 1));   // S = Q K^T
        wg_wait<0>();
        wg_fence_regs(s);
        fwd8_softmax<D>(s, o, m, l, pa, key_tile_at(kr, it) * BK, q0, r0, tg, W, S, T, sl2);
        wg_issue_pb<D>(o, pa, dv(it & 1));               // O += P V
        wg_wait<0>();
    }
    wg_fence_regs(o);

    fwd10_epilogue<D>(out, lse, smem, o, m, l, b, h, q0, r0, warp, g, tg, tid, T, NH);
#endif
}

template<int D, bool NARROW_SINK>
void attention_forward10_launch(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const size_t smem = fwd10_smem<D>();
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel10<D, NARROW_SINK>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    const CUtensorMap map = rows_tensor_map(qkv, B, T, 3 * NH * D, 64);
    dim3 grid(ceil_div(T, 64), NH, B);   // a head's query tiles side by side: they share K / V in the L2
    attention_forward_kernel10<D, NARROW_SINK><<<grid, 128, smem>>>(out, lse, map, B, T, NH, W, S);
    cudaCheckLaunch();
}
// @copy-end attn-forward-v10

// @copy-begin attn-forward-v11
// v11, the programs' forward on sm_90a
template<int D>
void attention_forward11(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    attention_forward10_launch<D, true>(out, lse, qkv, B, T, NH, W, S);
}
// @copy-end attn-forward-v11

// @copy-begin attn-backward-dot
// ----------------------------------------------------------------------------
// D_i = dout_i . out_i, one 16-byte chunk per thread, D/8 lanes per row, butterfly reduction.
// Rows are visited in memory order (b, t, h) so the loads are fully coalesced.

template<int D>
__global__ void attention_backward_dot_kernel(float* Dbuf, const bf16* out, const bf16* dout,
                                              int B, int T, int NH) {
    constexpr int TPR = D / 8;   // 8 or 16 lanes per row
    const int tid = blockIdx.x * blockDim.x + threadIdx.x;
    const int row = tid / TPR, c = tid % TPR;
    const bool ok = row < B * T * NH;
    float sum = 0.f;
    if (ok) {
        float o[8], d[8];
        unpack_bf16x8(*reinterpret_cast<const uint4*>(out + (size_t)row * D + 8 * c), o);
        unpack_bf16x8(*reinterpret_cast<const uint4*>(dout + (size_t)row * D + 8 * c), d);
#pragma unroll
        for (int e = 0; e < 8; e++) sum = fmaf(o[e], d[e], sum);
    }
    // every lane takes part (no early return), out-of-range lanes add zeros
#pragma unroll
    for (int off = TPR / 2; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (ok && c == 0) {
        const int h = row % NH, t = (row / NH) % T, b = row / (NH * T);
        Dbuf[(size_t)(b * NH + h) * T + t] = sum;
    }
}

template<int D>
void launch_dot(float* Dbuf, const bf16* out, const bf16* dout, int B, int T, int NH) {
    const int block_size = 256;
    const int n = B * T * NH * (D / 8);
    attention_backward_dot_kernel<D><<<ceil_div(n, block_size), block_size>>>(Dbuf, out, dout, B, T, NH);
    cudaCheckLaunch();
}
// @copy-end attn-backward-dot

// @copy-begin attn-backward-tiles
// ----------------------------------------------------------------------------
// the mma.sync versions (kernel 3 on): tensor cores (mma.sync m16n8k16 bf16, fp32 accumulate), 4
// warps per block, smem rows padded to D + 8 elements (conflict-free ldmatrix). Fragment conventions
// as in common.h and in attention_forward.cu's v3: a 16-row A operand comes from row-major smem with
// ldmatrix.x4 at (row lane%16, col (lane/16)*8); a B operand from an (n, k) row-major tile with
// ldmatrix.x4 at (n (lane%8) + (lane/16)*8, k ((lane/8)%2)*8); from a (k, n) row-major tile with
// ldmatrix.x4.trans at (k (lane%8) + ((lane/8)%2)*8, n (lane/16)*8). Each gives the b0,b1 of two
// adjacent n-tiles.

constexpr int TCB_THREADS = 128, TCB_BK = 64, TCB_BQ_DQ = 64;
constexpr int SINK_CHUNK_QUERIES = 1024;   // v6: queries per chunk of a sink tile's dK/dV run

// The query tiles (of BQ queries) that the dK/dV block in grid row y streams (v5+). Rows y < nst * nch
// are v6's chunks of the sink key tiles' runs (the longest, so first); the others are one key tile
// each. A key tile's run goes from the query tile holding its first key (causal) to the last query
// that attends one of its keys; chunk c keeps the c-th SINK_CHUNK_QUERIES of it (possibly none:
// ntiles <= 0, and the block writes zero partials).
struct QueryRun { int kt, chunk, qt0, ntiles; };
template<int BK, int BQ>
__device__ __forceinline__ QueryRun dkdv_query_run(int y, int nst, int nch, int W, int S, int T) {
    QueryRun r;
    r.kt = (y < nst * nch) ? y / nch : nst + (y - nst * nch);
    r.chunk = (y < nst * nch) ? y % nch : -1;
    const int k0 = r.kt * BK, k_last = min(k0 + BK, T) - 1;
    const int q_hi = last_query_for_keys(k0, k_last, W, S, T);
    r.qt0 = k0 / BQ;
    int qt_end = q_hi / BQ;
    if (r.chunk >= 0) {
        constexpr int CT = SINK_CHUNK_QUERIES / BQ;
        r.qt0 += r.chunk * CT;
        qt_end = min(qt_end, r.qt0 + CT - 1);
    }
    r.ntiles = qt_end - r.qt0 + 1;
    return r;
}
// query tile of the dK/dV pass: 32 for D = 128 keeps the four accumulators (dK, dV: D/2 floats each;
// S^T, dP^T: BQ/2 each) in registers
template<int D> __host__ __device__ constexpr int dkdv_bq() { return D == 64 ? 64 : 32; }

// A fragments (16 rows) for k-chunk kc of a row-major (rows, LDS) smem tile
template<int LDS>
__device__ __forceinline__ void ldsm_a(uint32_t* a, const bf16* tile, int row0, int kc, int lane) {
    ldmatrix_x4(a, tile + (row0 + (lane % 16)) * LDS + kc * 16 + (lane / 16) * 8);
}
// B fragments of n-tiles [n0, n0+8) and [n0+8, n0+16), k-chunk kc, from an (n, k) row-major tile
template<int LDS>
__device__ __forceinline__ void ldsm_b_nk(uint32_t* bfr, const bf16* tile, int n0, int kc, int lane) {
    ldmatrix_x4(bfr, tile + (n0 + (lane % 8) + (lane / 16) * 8) * LDS + kc * 16 + ((lane / 8) % 2) * 8);
}
// B fragments of n-tiles [n0, n0+8) and [n0+8, n0+16), k-chunk kc, from a (k, n) row-major tile
template<int LDS>
__device__ __forceinline__ void ldsm_b_kn(uint32_t* bfr, const bf16* tile, int n0, int kc, int lane) {
    ldmatrix_x4_trans(bfr, tile + (kc * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LDS + n0 + (lane / 16) * 8);
}
// the C fragments of n-tiles 2kc, 2kc+1 (16 x 16 fp32) as the bf16 A fragment of k-chunk kc
__device__ __forceinline__ void acc_to_a(uint32_t* a, const float* c0, const float* c1) {
    a[0] = pack_bf16x2(c0[0], c0[1]);
    a[1] = pack_bf16x2(c0[2], c0[3]);
    a[2] = pack_bf16x2(c1[0], c1[1]);
    a[3] = pack_bf16x2(c1[2], c1[3]);
}
// write a warp's 16 staged smem rows to global rows [t0, t0+16) (rows past T skipped)
template<int D, int LDS>
__device__ __forceinline__ void store_rows16(bf16* dst, size_t stride, const bf16* src, int t0, int T, int lane) {
    constexpr int CH = D / 8;
    for (int x = lane; x < 16 * CH; x += 32) {
        int rr = x / CH, cc = x % CH, t = t0 + rr;
        if (t < T)
            *reinterpret_cast<uint4*>(dst + (size_t)t * stride + cc * 8) =
                *reinterpret_cast<const uint4*>(src + rr * LDS + cc * 8);
    }
}
// stage a 16 x D fp32 accumulator (times mul) as bf16 into 16 smem rows
template<int D, int LDS>
__device__ __forceinline__ void stage_acc16(bf16* rows, const float (&acc)[D / 8][4], float mul, int lane) {
    const int g = lane / 4, tg = lane % 4;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        *reinterpret_cast<uint32_t*>(rows + g * LDS + n * 8 + 2 * tg) = pack_bf16x2(acc[n][0] * mul, acc[n][1] * mul);
        *reinterpret_cast<uint32_t*>(rows + (g + 8) * LDS + n * 8 + 2 * tg) = pack_bf16x2(acc[n][2] * mul, acc[n][3] * mul);
    }
}
// @copy-end attn-backward-tiles

// @copy-begin attn-backward-sink-reduce
// v6: dK, dV of the sink tiles = the sum of their chunks' fp32 partials, in chunk order (deterministic).
// One thread per (b*NH + h, sink tile, dK|dV, key row, dim), dims fastest: coalesced.
template<int D>
__global__ void sink_reduce_kernel(bf16* dqkv, const float* partial, int B, int T, int NH, int nst, int nch) {
    constexpr int BK = TCB_BK;
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t total = (size_t)B * NH * nst * 2 * BK * D;
    if (idx >= total) return;
    const int d = (int)(idx % D), row = (int)(idx / D % BK), which = (int)(idx / ((size_t)BK * D) % 2);
    const int kt = (int)(idx / ((size_t)2 * BK * D) % nst);
    const int bh = (int)(idx / ((size_t)2 * BK * D * nst));
    const int key = kt * BK + row;
    if (key >= T) return;
    const float* src = partial + ((size_t)bh * nst + kt) * nch * 2 * BK * D + (size_t)which * BK * D + (size_t)row * D + d;
    float sum = 0.f;
    for (int c = 0; c < nch; c++) sum += src[(size_t)c * 2 * BK * D];
    const int b = bh / NH, h = bh % NH;
    const size_t C = (size_t)NH * D;
    dqkv[(size_t)(b * T + key) * 3 * C + (1 + which) * C + h * D + d] = __float2bfloat16(sum);
}
// @copy-end attn-backward-sink-reduce

// @copy-begin attn-backward-launch-helpers
// dynamic smem of the tensor-core kernels: v3 single-buffers everything, v5 double-buffers the
// tiles its loop streams (D = 128: dK/dV 52 / 70 KB, dQ 70 / 104 KB, so all need the > 48 KB opt-in)
template<int D> constexpr size_t dkdv_smem(bool dbuf) {
    return (size_t)(2 * TCB_BK + (dbuf ? 4 : 2) * dkdv_bq<D>()) * (D + 8) * sizeof(bf16)
         + (size_t)(dbuf ? 4 : 2) * dkdv_bq<D>() * sizeof(float);
}
template<int D> constexpr size_t dq_smem(bool dbuf) {
    return (size_t)(2 * TCB_BQ_DQ + (dbuf ? 4 : 2) * TCB_BK) * (D + 8) * sizeof(bf16);
}

// v6's sink split: with a window every later query attends the sink keys, so a sink key tile's
// dK/dV run is T queries long while a band tile's is about W. The first nst key tiles (of BK keys)
// are split into nch chunks of SINK_CHUNK_QUERIES queries (fp32 partials, added in a fixed order).
// Without a window every run is long anyway: no split.
struct SinkSplit { int nst, nch; };
static SinkSplit sink_split(int T, int W, int S, int BK) {
    SinkSplit sp = {0, 1};
    const int nch = ceil_div(T, SINK_CHUNK_QUERIES);
    if (W > 0 && S > 0 && nch > 1) { sp.nst = std::min(ceil_div(S, BK), ceil_div(T, BK)); sp.nch = nch; }
    return sp;
}

// v4+: the dQ pass runs on a side stream beside the dK/dV pass. Fork: the side stream waits for D_i;
// join: the default stream (and so the caller's next work or timing event) waits for dQ.
struct SideStream { cudaStream_t stream; cudaEvent_t fork, join; };
static SideStream side_stream_create() {
    SideStream s;
    cudaCheck(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    cudaCheck(cudaEventCreateWithFlags(&s.fork, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&s.join, cudaEventDisableTiming));
    return s;
}
static void side_stream_fork(const SideStream& s) {
    cudaCheck(cudaEventRecord(s.fork, 0));
    cudaCheck(cudaStreamWaitEvent(s.stream, s.fork, 0));
}
static void side_stream_join(const SideStream& s) {
    cudaCheck(cudaEventRecord(s.join, s.stream));
    cudaCheck(cudaStreamWaitEvent(0, s.join, 0));
}

// fp32 scratch for v6's sink-tile partials, grown on demand (the first call of a shape allocates)
static float* sink_partial = nullptr;
static size_t sink_partial_bytes = 0;
static float* get_sink_partial(size_t bytes) {
    if (bytes > sink_partial_bytes) {
        if (sink_partial) cudaCheck(cudaFree(sink_partial));
        cudaCheck(cudaMalloc(&sink_partial, bytes));
        sink_partial_bytes = bytes;
    }
    return sink_partial;
}
// @copy-end attn-backward-launch-helpers

// @copy-begin attn-backward-v8-phases
// v8's two halves of a tile, which v9 runs too (one after the other): the first two products, then
// the exponentials, dS and the last two products, on the 16-row chunks in `need`
// The first half of both passes, one warp: the two products of its 16 rows [wrow, wrow+16) of A1 and
// A2 with the needed 16-row chunks of B1 and B2 (N rows), c1 = A1 B1^T and c2 = A2 B2^T.
// dK/dV: keys of Ks / Vs against Qs / dOs, S^T = K Q^T and dP^T = V dO^T;
// dQ: queries of Qs / dOs against Ks / Vs, S = Q K^T and dP = dO V^T.
template<int D, int N>
__device__ __forceinline__ void bwd8_phase1(float (&c1)[N / 8][4], float (&c2)[N / 8][4],
                                            const bf16* A1, const bf16* A2, const bf16* B1, const bf16* B2,
                                            unsigned need, int wrow, int lane) {
    constexpr int LDS = D + 8, NC = N / 16;
#pragma unroll
    for (int t = 0; t < N / 8; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) { c1[t][e] = 0.f; c2[t][e] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
        uint32_t a1[4], a2[4];
        ldsm_a<LDS>(a1, A1, wrow, kc, lane);
        ldsm_a<LDS>(a2, A2, wrow, kc, lane);
#pragma unroll
        for (int np = 0; np < NC; np++) {
            if (need & (1u << np)) {
                uint32_t b1[4], b2[4];
                ldsm_b_nk<LDS>(b1, B1, np * 16, kc, lane);
                ldsm_b_nk<LDS>(b2, B2, np * 16, kc, lane);
                mma_bf16_16816(c1[2 * np], a1, b1);
                mma_bf16_16816(c1[2 * np + 1], a1, b1 + 2);
                mma_bf16_16816(c2[2 * np], a2, b2);
                mma_bf16_16816(c2[2 * np + 1], a2, b2 + 2);
            }
        }
    }
}

// dK/dV's last two products over the needed query chunks: dV += P^T dO, dK += dS^T Q (P^T in st,
// dS^T in dpt)
template<int D, int BQ>
__device__ __forceinline__ void dkdv8_products(float (&dk)[D / 8][4], float (&dv)[D / 8][4],
                                               const float (&st)[BQ / 8][4], const float (&dpt)[BQ / 8][4],
                                               const bf16* Qs, const bf16* dOs, unsigned need, int lane) {
    constexpr int LDS = D + 8, NC = BQ / 16;
#pragma unroll
    for (int kc = 0; kc < NC; kc++) {
        if (!(need & (1u << kc))) continue;
        uint32_t pa[4], sa[4];
        acc_to_a(pa, st[2 * kc], st[2 * kc + 1]);
        acc_to_a(sa, dpt[2 * kc], dpt[2 * kc + 1]);
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t bd[4], bq[4];
            ldsm_b_kn<LDS>(bd, dOs, np * 16, kc, lane);
            ldsm_b_kn<LDS>(bq, Qs, np * 16, kc, lane);
            mma_bf16_16816(dv[2 * np], pa, bd);
            mma_bf16_16816(dv[2 * np + 1], pa, bd + 2);
            mma_bf16_16816(dk[2 * np], sa, bq);
            mma_bf16_16816(dk[2 * np + 1], sa, bq + 2);
        }
    }
}

// dK/dV second half: P^T, dS^T (mask on edge tiles), dV += P^T dO, dK += dS^T Q over the needed chunks
template<int D, int BQ>
__device__ __forceinline__ void dkdv8_phase2(float (&dk)[D / 8][4], float (&dv)[D / 8][4],
                                             float (&st)[BQ / 8][4], float (&dpt)[BQ / 8][4],
                                             const bf16* Qs, const bf16* dOs, const float* Ls, const float* Ds,
                                             int q0, int wk0, unsigned need, int lane, int W, int S, int T, float sl2) {
    const int g = lane / 4, tg = lane % 4;
    const bool full = block_fully_allowed(q0, BQ, wk0, 16, W, S, T);
    const int qb = q0 + 2 * tg;
#pragma unroll
    for (int t = 0; t < BQ / 8; t++) {
        const float2 Lv = *reinterpret_cast<const float2*>(Ls + t * 8 + 2 * tg);
        const float2 Dv = *reinterpret_cast<const float2*>(Ds + t * 8 + 2 * tg);
        const float L2[2] = {Lv.x * LOG2E, Lv.y * LOG2E}, Dq[2] = {Dv.x, Dv.y};
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int key = wk0 + g + 8 * r;
            const int lo = key - qb;
            int hi = T - qb;
            if (W > 0 && key >= S) hi = min(hi, key + W - qb);
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int qq = t * 8 + e;
                float p = ex2_approx(fmaf(st[t][2 * r + e], sl2, -L2[e]));
                if (!full && !(qq >= lo && qq < hi)) p = 0.f;
                st[t][2 * r + e] = p;
                dpt[t][2 * r + e] = p * (dpt[t][2 * r + e] - Dq[e]);
            }
        }
    }
    dkdv8_products<D, BQ>(dk, dv, st, dpt, Qs, dOs, need, lane);
}

// dQ's last product over the needed key chunks: dQ += dS K (dS in s)
template<int D, int BK>
__device__ __forceinline__ void dq8_products(float (&dq)[D / 8][4], const float (&s)[BK / 8][4], const bf16* Ks,
                                             unsigned need, int lane) {
    constexpr int LDS = D + 8, NC = BK / 16;
#pragma unroll
    for (int kc = 0; kc < NC; kc++) {
        if (!(need & (1u << kc))) continue;
        uint32_t a[4];
        acc_to_a(a, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t bk[4];
            ldsm_b_kn<LDS>(bk, Ks, np * 16, kc, lane);
            mma_bf16_16816(dq[2 * np], a, bk);
            mma_bf16_16816(dq[2 * np + 1], a, bk + 2);
        }
    }
}

// dQ second half: dS = P (dP - D) (mask on edge tiles), dQ += dS K over the needed key chunks
template<int D, int BK>
__device__ __forceinline__ void dq8_phase2(float (&dq)[D / 8][4], float (&s)[BK / 8][4], float (&dp)[BK / 8][4],
                                           const bf16* Ks, const float (&L2)[2], const float (&Di)[2],
                                           int k0, int wq0, unsigned need, int lane, int W, int S, int T, float sl2) {
    const int g = lane / 4, tg = lane % 4;
    const bool full = block_fully_allowed(wq0, 16, k0, BK, W, S, T);
    const int kb = k0 + 2 * tg, sk = S - kb;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = wq0 + g + 8 * r;
        const int hi = (row < T) ? row - kb : -1 - BK;
        const int lo = (W > 0) ? row - W + 1 - kb : -BK;
#pragma unroll
        for (int t = 0; t < BK / 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int kk = t * 8 + e;
                float p = ex2_approx(fmaf(s[t][2 * r + e], sl2, -L2[r]));
                if (!full && !(kk <= hi && (kk >= lo || kk < sk))) p = 0.f;
                s[t][2 * r + e] = p * (dp[t][2 * r + e] - Di[r]);
            }
    }
    dq8_products<D, BK>(dq, s, Ks, need, lane);
}
// @copy-end attn-backward-v8-phases

// @copy-begin attn-backward-v9
// backward v9, the fastest on mma.sync: v6's passes (dK/dV per 64-key tile, dQ per 64-query tile on
// a second stream, the sink tiles' runs split) on v8's tile halves, with fixed-slot cp.async
// (load_rows_async), ex2.approx.ftz, per-row edge masks, chunk skipping only on partial tiles
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dkdv_kernel9(bf16* dqkv, float* partial, const bf16* qkv, const bf16* dout, const float* lse,
                                const float* Dbuf, int B, int T, int NH, int W, int S, int nst, int nch) {
    constexpr int BK = TCB_BK, BQ = dkdv_bq<D>(), LDS = D + 8, NT = TCB_THREADS;
    constexpr unsigned ALL = (1u << (BQ / 16)) - 1;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Ks  = reinterpret_cast<bf16*>(smem_raw);   // (BK, LDS)
    bf16* Vs  = Ks + BK * LDS;                       // (BK, LDS)
    bf16* Qs  = Vs + BK * LDS;                       // (2, BQ, LDS)
    bf16* dOs = Qs + 2 * BQ * LDS;                   // (2, BQ, LDS)
    float* Ls = reinterpret_cast<float*>(dOs + 2 * BQ * LDS);   // (2, BQ) lse
    float* Ds = Ls + 2 * BQ;                                    // (2, BQ) D_i

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const QueryRun run = dkdv_query_run<BK, BQ>(blockIdx.y, nst, nch, W, S, T);
    const int kt = run.kt, chunk = run.chunk, qt0 = run.qt0, ntiles = run.ntiles;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int k0 = kt * BK, wrow = warp * 16, wk0 = k0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);


    auto load_q_tile = [&](int it, int buf) {
        const int q0 = (qt0 + it) * BQ;
        load_rows_async<D, BQ, LDS, NT>(Qs + buf * BQ * LDS, qbase, C3, q0, T, tid);
        load_rows_async<D, BQ, LDS, NT>(dOs + buf * BQ * LDS, dobase, C, q0, T, tid);
        if (tid < BQ) {
            const int i = q0 + tid;
            const bool ok = i < T;
            cp_async_4(Ls + buf * BQ + tid, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + tid, D_bh + (ok ? i : 0), ok);
        }
    };

    load_rows_async<D, BK, LDS, NT>(Ks, qbase + C, C3, k0, T, tid);
    load_rows_async<D, BK, LDS, NT>(Vs, qbase + 2 * C, C3, k0, T, tid);
    if (ntiles > 0) load_q_tile(0, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) { dk[n][e] = 0.f; dv[n][e] = 0.f; }

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) {
            cp_async_wait<0>();
            __syncthreads();
        }
        if (it + 1 < ntiles) {
            load_q_tile(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, q0 = (qt0 + it) * BQ;
        unsigned need = 0;
#pragma unroll
        for (int c = 0; c < BQ / 16; c++)
            if (block_any_allowed(q0 + 16 * c, 16, wk0, 16, W, S, T)) need |= 1u << c;
        const bf16* Qb = Qs + buf * BQ * LDS;
        const bf16* dOb = dOs + buf * BQ * LDS;
        float st[BQ / 8][4], dpt[BQ / 8][4];
        if (need == ALL) {
            bwd8_phase1<D, BQ>(st, dpt, Ks, Vs, Qb, dOb, ALL, wrow, lane);
            dkdv8_phase2<D, BQ>(dk, dv, st, dpt, Qb, dOb, Ls + buf * BQ, Ds + buf * BQ, q0, wk0, ALL, lane, W, S, T, sl2);
        } else if (need) {
            bwd8_phase1<D, BQ>(st, dpt, Ks, Vs, Qb, dOb, need, wrow, lane);
            dkdv8_phase2<D, BQ>(dk, dv, st, dpt, Qb, dOb, Ls + buf * BQ, Ds + buf * BQ, q0, wk0, need, lane, W, S, T, sl2);
        }
    }
    cp_async_wait<0>();
    if (chunk >= 0) {
        const int g = lane / 4, tg = lane % 4;
        float* pk = partial + (((size_t)bh * nst + kt) * nch + chunk) * 2 * BK * D;
        float* pv = pk + BK * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int row = wrow + g + 8 * r;
                *reinterpret_cast<float2*>(pk + row * D + n * 8 + 2 * tg) = make_float2(dk[n][2 * r] * scale, dk[n][2 * r + 1] * scale);
                *reinterpret_cast<float2*>(pv + row * D + n * 8 + 2 * tg) = make_float2(dv[n][2 * r], dv[n][2 * r + 1]);
            }
        return;
    }
    __syncwarp();
    stage_acc16<D, LDS>(Ks + wrow * LDS, dk, scale, lane);
    stage_acc16<D, LDS>(Vs + wrow * LDS, dv, 1.f, lane);
    __syncwarp();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
    store_rows16<D, LDS>(dkbase, C3, Ks + wrow * LDS, wk0, T, lane);
    store_rows16<D, LDS>(dkbase + C, C3, Vs + wrow * LDS, wk0, T, lane);
}

template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dq_kernel9(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                              const float* Dbuf, int B, int T, int NH, int W, int S) {
    constexpr int BK = TCB_BK, BQ = TCB_BQ_DQ, LDS = D + 8, NT = TCB_THREADS;
    constexpr unsigned ALL = (1u << (BK / 16)) - 1;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs  = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* dOs = Qs + BQ * LDS;                       // (BQ, LDS)
    bf16* Ks  = dOs + BQ * LDS;                      // (2, BK, LDS)
    bf16* Vs  = Ks + 2 * BK * LDS;                   // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4;
    const int q0 = qt * BQ, wrow = warp * 16, wq0 = q0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        load_rows_async<D, BK, LDS, NT>(Ks + buf * BK * LDS, qbase + C, C3, k0, T, tid);
        load_rows_async<D, BK, LDS, NT>(Vs + buf * BK * LDS, qbase + 2 * C, C3, k0, T, tid);
    };

    load_rows_async<D, BQ, LDS, NT>(Qs, qbase, C3, q0, T, tid);
    load_rows_async<D, BQ, LDS, NT>(dOs, dobase, C, q0, T, tid);
    load_kv(0, 0);
    cp_async_commit();
    float L2[2], Di[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = wq0 + g + 8 * r;
        L2[r] = (i < T) ? lse[(size_t)(b * NH + h) * T + i] * LOG2E : 0.f;
        Di[r] = (i < T) ? Dbuf[(size_t)(b * NH + h) * T + i] : 0.f;
    }
    float dq[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f; }
    cp_async_wait<0>();
    __syncthreads();

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) {
            cp_async_wait<0>();
            __syncthreads();
        }
        if (it + 1 < ntiles) {
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, k0 = key_tile_at(kr, it) * BK;
        unsigned need = 0;
#pragma unroll
        for (int c = 0; c < BK / 16; c++)
            if (block_any_allowed(wq0, 16, k0 + 16 * c, 16, W, S, T)) need |= 1u << c;
        const bf16* Kb = Ks + buf * BK * LDS;
        const bf16* Vb = Vs + buf * BK * LDS;
        float s[BK / 8][4], dp[BK / 8][4];
        if (need == ALL) {
            bwd8_phase1<D, BK>(s, dp, Qs, dOs, Kb, Vb, ALL, wrow, lane);
            dq8_phase2<D, BK>(dq, s, dp, Kb, L2, Di, k0, wq0, ALL, lane, W, S, T, sl2);
        } else if (need) {
            bwd8_phase1<D, BK>(s, dp, Qs, dOs, Kb, Vb, need, wrow, lane);
            dq8_phase2<D, BK>(dq, s, dp, Kb, L2, Di, k0, wq0, need, lane, W, S, T, sl2);
        }
    }
    __syncwarp();
    stage_acc16<D, LDS>(Qs + wrow * LDS, dq, scale, lane);
    __syncwarp();
    store_rows16<D, LDS>(dqkv + (size_t)b * T * C3 + h * D, C3, Qs + wrow * LDS, wq0, T, lane);
}

template<int D>
void attention_backward9(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                         const float* lse, int B, int T, int NH, int W, int S) {
    constexpr int BQ = dkdv_bq<D>(), BK = TCB_BK;
    constexpr size_t smem_kv = dkdv_smem<D>(true), smem_q = dq_smem<D>(true);   // v5/v6's layouts
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel9<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
        cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel9<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
        side = side_stream_create();
        configured = true;
    }
    const int nkt = ceil_div(T, BK);
    const SinkSplit sp = sink_split(T, W, S, BK);   // v6's split of the sink tiles' runs
    const int nst = sp.nst, nch = sp.nch;
    float* partial = nst ? get_sink_partial((size_t)B * NH * nst * nch * 2 * BK * D * sizeof(float)) : nullptr;
    const dim3 grid_kv(B * NH, nkt + nst * (nch - 1));
    const dim3 grid_q(B * NH, ceil_div(T, TCB_BQ_DQ));

    launch_dot<D>(Dbuf, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_backward_dkdv_kernel9<D><<<grid_kv, TCB_THREADS, smem_kv>>>(dqkv, partial, qkv, dout, lse, Dbuf,
                                                                          B, T, NH, W, S, nst, nch);
    cudaCheckLaunch();
    if (nst) {
        const size_t n = (size_t)B * NH * nst * 2 * BK * D;
        sink_reduce_kernel<D><<<(unsigned)ceil_div(n, (size_t)256), 256>>>(dqkv, partial, B, T, NH, nst, nch);
        cudaCheckLaunch();
    }
    attention_backward_dq_kernel9<D><<<grid_q, TCB_THREADS, smem_q, side.stream>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S);
    cudaCheckLaunch();
    side_stream_join(side);
}
// ---- end of version 9
// @copy-end attn-backward-v9

// @copy-begin attn-backward-v10
// backward v10-v12 (D = 64): v9's two passes on wgmma, one warpgroup per 64 rows (keys in dK/dV,
// queries in dQ) streaming 64-row tiles of the other side through 128-byte-swizzled, double-buffered
// smem; all seven products are wgmma, the exponentials overlap the next product
constexpr int BWD10_ROWS = 64, BWD10_THREADS = 128;
// blocks per SM: occupancy beats registers, as in forward v8. Measured (H200, backward TFLOP/s at
// T = 1024 / 4096 / 16384 full): dK/dV at 2 blocks (180 registers) 198 / 288 / 310; at 3 blocks
// (166 registers; ptxas serializes the wgmma, C7512) 210 / 294 / 317; with dQ at 4 blocks
// (128 registers, no spills) instead of 3 as well: 223 / 300 / 315; and dS^T formed from the bf16
// P^T fragments (154 registers, no serialization): 230 / 305 / 331
// Heads of 128 (v13): 2 blocks per SM for both passes (the six 16 KB tiles of a block make 2 the
// most that fit in shared memory anyway, and dK, dV of 64 x 128 keep 128 accumulators a thread)
template<int D> __host__ __device__ constexpr int bwd10_dkdv_min_blocks() { return D == 64 ? 3 : 2; }
template<int D> __host__ __device__ constexpr int bwd10_dq_min_blocks() { return D == 64 ? 4 : 2; }
constexpr int BWD12_SINK_KEYS = 16;   // v12: sink chunks with S <= 16 take the sinks as wgmma n16
static_assert(BWD12_SINK_KEYS == 16, "the narrow sink chunk is one wgmma n16 wide");
template<int D> __host__ __device__ constexpr size_t bwd10_smem() {   // 6 tiles (+ lse, D_i) + alignment
    return 1024 + (size_t)6 * BWD10_ROWS * D * sizeof(bf16) + 4 * BWD10_ROWS * sizeof(float);
}

// a 64-row tile of D columns by TMA: D / 64 boxes of 64 columns, the second at dst + 64 rows * 128 B
// (wg_swz's column blocks), all completing bytes on bar. (Written out rather than as a loop: the loop
// changed the D = 64 kernels' code, and they stay byte-identical to what was measured.)
template<int D>
__device__ __forceinline__ void tma_load_tile64(uint32_t dst, const CUtensorMap* map, int col, int row, int z, uint32_t bar) {
    tma_load_box(dst, map, col, row, z, bar);
    if constexpr (D == 128) tma_load_box(dst + 64 * 128, map, col + 64, row, z, bar);
    static_assert(D == 64 || D == 128, "heads of 64 or 128");
}

// a thread's two accumulator rows row0, row0 + 8 of a 64 x D wgmma result (column 8n + 2tg + e at
// acc[4n + 2r + e]) times mul, as bf16 into the rows of dst (stride elements apart); rows past T skipped
template<int D>
__device__ __forceinline__ void bwd10_store_rows(bf16* dst, size_t stride, const float (&acc)[D / 2], int row0, int tg,
                                                 int T, float mul) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = row0 + 8 * r;
        if (row >= T) continue;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            *reinterpret_cast<uint32_t*>(dst + row * stride + n * 8 + 2 * tg) =
                pack_bf16x2(acc[4 * n + 2 * r] * mul, acc[4 * n + 2 * r + 1] * mul);
    }
}

// accumulator columns 8t + 2tg + {0, 1} of rows g, g + 8 -> A fragments of 16-column k-steps
__device__ __forceinline__ void bwd10_pack(uint32_t (&pa)[4][4], const float (&x)[32]) {
#pragma unroll
    for (int t = 0; t < 8; t++) {
        pa[t / 2][2 * (t % 2)] = pack_bf16x2(x[4 * t], x[4 * t + 1]);
        pa[t / 2][2 * (t % 2) + 1] = pack_bf16x2(x[4 * t + 2], x[4 * t + 3]);
    }
}

// v12: wgmma m64n16k16 with A read transposed from smem (a tile stored K rows of 64 contiguous M
// elements, e.g. dO (queries x d) as A = dO^T) and B K-major: the narrow sink chunk's dV^T and dK^T
__device__ __forceinline__ void wgmma_m64n16_tss(float (&acc)[8], uint64_t da, uint64_t db) {
#ifdef HAS_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 1, 0;\n}\n"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3]), "+f"(acc[4]), "+f"(acc[5]), "+f"(acc[6]), "+f"(acc[7])
                 : "l"(da), "l"(db), "r"(1));
#endif
}

// v12's sink chunk: every query of the chunk lies past the band of all keys of sink tile 0, so only
// keys < S <= 16 have pairs with them. Keys are the N = 16 side here (the main loop has them as the
// M = 64 side of S^T): S = Q K_s^T and dP = dO V_s^T are wgmma n16 (thread rows: queries
// 16 warp + g + 8r of the tile, columns: keys 8t + 2tg + e), P^T and dS^T go through smem as
// 16 x 64 K-major B operands, and dV^T += dO^T P, dK^T += Q^T dS take dO and Q transposed as A
// (thread rows: d = 16 warp + g + 8r). A quarter of the tile's products and exponentials.
// Writes the chunk's fp32 partials (dK scaled) for all 64 keys of the tile, zeros past key 15.
template<int D, class LoadTile>
__device__ __forceinline__ void bwd12_sink_chunk(float* pk, float* pv, LoadTile& load_q_tile, uint32_t Ks, uint32_t Vs,
                                                 uint32_t Qs, uint32_t dOs, const float* Ls, const float* Ds,
                                                 uint32_t bar0, int qt0, int ntiles, int T, int S,
                                                 int tid, int warp, int g, int tg, float sl2, float scale) {
#ifdef HAS_WGMMA
    constexpr int BQ = BWD10_ROWS, BK = BWD10_ROWS;
    constexpr uint32_t TILE = BWD10_ROWS * D * 2;
    // P^T, dS^T: rows 16..31 of the K and V tiles (only keys 0..15 are read here), 1024-byte aligned
    const uint32_t Pt = Ks + 16 * 128, dSt = Vs + 16 * 128;
    float dkt[8], dvt[8];
#pragma unroll
    for (int i = 0; i < 8; i++) { dkt[i] = 0.f; dvt[i] = 0.f; }
    const uint64_t dK = wg_desc(Ks, 16, 1024), dV = wg_desc(Vs, 16, 1024);
    for (int it = 0; it < ntiles; it++) {
        cp_async_wait<0>();            // my lse / D_i copies of tile it landed
        __syncthreads();               // ... everyone's; everyone is done with tile it-1 (and its P^T, dS^T)
        if (it + 1 < ntiles) {
            load_q_tile(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);
        const int buf = it & 1, q0 = (qt0 + it) * BQ;
        const uint32_t Qb = Qs + buf * TILE, dOb = dOs + buf * TILE;
        float s8[8], dp8[8];
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            wgmma_m64n16_ss(s8, wg_desc(Qb + kk * 32, 16, 1024), dK + ((uint32_t)(kk * 32) >> 4), kk > 0);
        wg_commit();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            wgmma_m64n16_ss(dp8, wg_desc(dOb + kk * 32, 16, 1024), dV + ((uint32_t)(kk * 32) >> 4), kk > 0);
        wg_commit();
        const float* Lb = Ls + buf * BQ;
        const float* Db = Ds + buf * BQ;
        const int ql = warp * 16 + g;  // this thread's query rows in the tile: ql, ql + 8
        float L2[2], Dq[2];
#pragma unroll
        for (int r = 0; r < 2; r++) { L2[r] = Lb[ql + 8 * r] * LOG2E; Dq[r] = Db[ql + 8 * r]; }
        wg_wait<1>();
        wg_fence_regs(s8);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int r = (i / 2) % 2, key = 8 * (i / 4) + 2 * tg + (i % 2);
            const float p = ex2_approx(fmaf(s8[i], sl2, -L2[r]));
            s8[i] = (key < S && q0 + ql + 8 * r < T) ? p : 0.f;
        }
        wg_wait<0>();
        wg_fence_regs(dp8);
        // P^T and dS^T as [key][query] rows of 128 bytes, 128-byte swizzle
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int r = (i / 2) % 2, key = 8 * (i / 4) + 2 * tg + (i % 2), q = ql + 8 * r;
            const uint32_t off = key * 128 + ((((q >> 3) ^ (key & 7)) << 4) | ((q & 7) << 1));
            const float ds = s8[i] * (dp8[i] - Dq[r]);
            asm volatile("st.shared.b16 [%0], %1;\n" :: "r"(Pt + off), "h"(__bfloat16_as_ushort(__float2bfloat16(s8[i]))) : "memory");
            asm volatile("st.shared.b16 [%0], %1;\n" :: "r"(dSt + off), "h"(__bfloat16_as_ushort(__float2bfloat16(ds))) : "memory");
        }
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");   // visible to wgmma
        __syncthreads();
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < BQ / 16; kk++) {   // k-step: 16 queries, 16 rows down dO / Q, 32 bytes into P^T / dS^T
            wgmma_m64n16_tss(dvt, wg_desc(dOb + kk * 16 * 128, BQ * 128, 1024), wg_desc(Pt + kk * 32, 16, 1024));
            wgmma_m64n16_tss(dkt, wg_desc(Qb + kk * 16 * 128, BQ * 128, 1024), wg_desc(dSt + kk * 32, 16, 1024));
        }
        wg_commit();
        wg_wait<0>();
        wg_fence_regs(dkt);
        wg_fence_regs(dvt);
    }
    cp_async_wait<0>();
    // partials: key rows 0..15 from the accumulators (d = 16 warp + g + 8r, key = 8t + 2tg + e), 16..63 zero
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int d = warp * 16 + g + 8 * ((i / 2) % 2), key = 8 * (i / 4) + 2 * tg + (i % 2);
        pk[key * D + d] = dkt[i] * scale;
        pv[key * D + d] = dvt[i];
    }
    for (int x = tid; x < (BK - 16) * D / 4; x += BWD10_THREADS) {
        reinterpret_cast<float4*>(pk + 16 * D)[x] = make_float4(0.f, 0.f, 0.f, 0.f);
        reinterpret_cast<float4*>(pv + 16 * D)[x] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
#endif
}

// 10a: dK/dV. Block per (b, h, 64 keys); query tiles (Q, dO, lse, D_i) double-buffered. Thread rows
// (keys) k_r = wk0 + 16 warp + g + 8r; accumulator column 8t + 2tg + e is query q0 + 8t + 2tg + e.
// TMA (v11): Q, dO, K, V by the copy engine (the maps: qkv and dout), a head's blocks side by side.
// NARROW_SINK (v12): sink-tile chunks past every band take the sinks as 16 keys (bwd12_sink_chunk).
template<int D, bool TMA, bool NARROW_SINK>
__global__ void __launch_bounds__(BWD10_THREADS, bwd10_dkdv_min_blocks<D>())
attention_backward_dkdv_kernel10(bf16* dqkv, float* partial, const bf16* qkv, const bf16* dout, const float* lse,
                                 const float* Dbuf, int B, int T, int NH, int W, int S, int nst, int nch,
                                 const __grid_constant__ CUtensorMap qkv_map, const __grid_constant__ CUtensorMap dout_map) {
#ifdef HAS_WGMMA
    constexpr int BK = BWD10_ROWS, BQ = BWD10_ROWS, NT = BWD10_THREADS;
    constexpr uint32_t TILE = BWD10_ROWS * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;   // swizzled tiles: 1024-byte alignment
    const uint32_t Ks = sbase;                       // (BK rows) swizzled
    const uint32_t Vs = Ks + TILE;                   // (BK rows)
    const uint32_t Qs = Vs + TILE;                   // 2 buffers of (BQ rows)
    const uint32_t dOs = Qs + 2 * TILE;              // 2 buffers of (BQ rows)
    float* Ls = reinterpret_cast<float*>(smem_raw + (sbase - raw) + 6 * TILE);   // (2, BQ) lse
    float* Ds = Ls + 2 * BQ;                                                     // (2, BQ) D_i
    __shared__ __align__(8) uint64_t tile_full[2];   // TMA: one mbarrier per Q / dO buffer
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]);

    static_assert(TMA || !NARROW_SINK, "the narrow sink chunk waits on the TMA path's mbarriers");
    const int bh = TMA ? blockIdx.z * NH + blockIdx.y : blockIdx.x, b = bh / NH, h = bh % NH;
    const QueryRun run = dkdv_query_run<BK, BQ>(TMA ? blockIdx.x : blockIdx.y, nst, nch, W, S, T);
    const int kt = run.kt, chunk = run.chunk, qt0 = run.qt0, ntiles = run.ntiles;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int k0 = kt * BK, kr0 = k0 + warp * 16 + g;   // this thread's keys: kr0, kr0 + 8
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);


    auto load_q_tile = [&](int it, int buf) {
        const int q0 = (qt0 + it) * BQ;
        if constexpr (TMA) {
            if (tid == 0) {
                mbar_arrive_expect_bytes(bar0 + 8 * buf, 2 * TILE);
                tma_load_tile64<D>(Qs + buf * TILE, &qkv_map, h * D, q0, b, bar0 + 8 * buf);
                tma_load_tile64<D>(dOs + buf * TILE, &dout_map, h * D, q0, b, bar0 + 8 * buf);
            }
        } else {
            wg_load_rows<D, BQ, NT>(Qs + buf * TILE, qbase, C3, q0, T, tid);
            wg_load_rows<D, BQ, NT>(dOs + buf * TILE, dobase, C, q0, T, tid);
        }
        if (tid < BQ) {
            const int i = q0 + tid;
            const bool ok = i < T;
            cp_async_4(Ls + buf * BQ + tid, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + tid, D_bh + (ok ? i : 0), ok);
        }
    };
    auto sync_tiles = [&]() {
        cp_async_wait<0>();                                              // my copies landed
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");   // ... visible to wgmma
        __syncthreads();                                                 // ... everyone's
    };

    // descriptors: K, V (A, K-major); Q, dO as K-major B (S^T, dP^T) and as N-major B (dK, dV)
    const uint64_t dK = wg_desc(Ks, 16, 1024), dV = wg_desc(Vs, 16, 1024);
    auto kmaj = [&](uint32_t tile) { return wg_desc(tile, 16, 1024); };
    auto nmaj = [&](uint32_t tile) { return wg_desc(tile, BQ * 128, 1024); };

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) { dk[i] = 0.f; dv[i] = 0.f; }

    if constexpr (TMA) {
        if (tid == 0) {
            mbar_init(bar0, 1);
            mbar_init(bar0 + 8, 1);
            mbar_init_fence();
            if (ntiles > 0) {          // K and V ride on Q / dO tile 0's phase
                mbar_expect_bytes(bar0, 2 * TILE);
                tma_load_tile64<D>(Ks, &qkv_map, C + h * D, k0, b, bar0);
                tma_load_tile64<D>(Vs, &qkv_map, 2 * C + h * D, k0, b, bar0);
            }
        }
        __syncthreads();               // the barriers are initialised before anyone waits on them
    } else {
        wg_load_rows<D, BK, NT>(Ks, qbase + C, C3, k0, T, tid);
        wg_load_rows<D, BK, NT>(Vs, qbase + 2 * C, C3, k0, T, tid);
    }
    if (ntiles > 0) load_q_tile(0, 0);
    cp_async_commit();
    if constexpr (NARROW_SINK) {
        // a chunk of the sink tile's run whose first query is past the band of the tile's last key:
        // only the sinks (keys < S <= 16) see its queries
        if (chunk >= 0 && kt == 0 && W > 0 && S <= BWD12_SINK_KEYS && qt0 * BQ >= BK - 1 + W) {
            float* pk = partial + (((size_t)bh * nst + kt) * nch + chunk) * 2 * BK * D;
            bwd12_sink_chunk<D>(pk, pk + BK * D, load_q_tile, Ks, Vs, Qs, dOs, Ls, Ds, bar0, qt0, ntiles, T, S,
                                tid, warp, g, tg, sl2, scale);
            return;
        }
    }
    for (int it = 0; it < ntiles; it++) {
        if constexpr (TMA) {
            cp_async_wait<0>();        // my lse / D_i copies of tile it landed
            __syncthreads();           // ... everyone's; everyone is done with tile it-1
        } else {
            sync_tiles();              // tile it landed; everyone is done with tile it-1
        }
        if (it + 1 < ntiles) {         // into the buffers of tile it-1
            load_q_tile(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        if constexpr (TMA) mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // Q, dO (and K, V) of tile it
        const int buf = it & 1, q0 = (qt0 + it) * BQ;
        if (!block_any_allowed(q0, BQ, k0, BK, W, S, T)) continue;   // block-uniform
        const uint32_t Qb = Qs + buf * TILE, dOb = dOs + buf * TILE;
        float st[32], dpt[32];
        wg_issue_abt<D, BK, BQ>(st, dK, kmaj(Qb));     // S^T = K Q^T
        wg_issue_abt<D, BK, BQ>(dpt, dV, kmaj(dOb));   // dP^T = V dO^T
        const float* Lb = Ls + buf * BQ;
        const float* Db = Ds + buf * BQ;
        wg_wait<1>();                  // S^T done, dP^T may still run
        wg_fence_regs(st);
        // P^T (masked on edge tiles): key kr0 + 8r and query qb + 8t + e are a pair iff
        // key <= query < T and (no window, a sink key, or query < key + W)
        const bool full = block_fully_allowed(q0, BQ, k0, BK, W, S, T);
        const int qb = q0 + 2 * tg;
        int lo[2], hi[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int key = kr0 + 8 * r;
            lo[r] = key - qb;
            hi[r] = T - qb;
            if (W > 0 && key >= S) hi[r] = min(hi[r], key + W - qb);
        }
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const float2 Lv = *reinterpret_cast<const float2*>(Lb + 8 * t + 2 * tg);
            const float L2[2] = {Lv.x * LOG2E, Lv.y * LOG2E};
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int qq = 8 * t + e;
                    float p = ex2_approx(fmaf(st[4 * t + 2 * r + e], sl2, -L2[e]));
                    if (!full && !(qq >= lo[r] && qq < hi[r])) p = 0.f;
                    st[4 * t + 2 * r + e] = p;
                }
        }
        uint32_t pa[4][4];
        bwd10_pack(pa, st);
        wg_issue_pb<D>(dv, pa, nmaj(dOb));             // dV += P^T dO
        wg_wait<1>();                  // dP^T done, dV may still run
        wg_fence_regs(dpt);
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const float2 Dv = *reinterpret_cast<const float2*>(Db + 8 * t + 2 * tg);
            const float Dq[2] = {Dv.x, Dv.y};
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                {   // P^T back from its bf16 fragments: st dies at the pack, which keeps ptxas from
                    // serializing the wgmma at 3 blocks / SM (C7512)
                    const uint32_t pp = pa[t / 2][2 * (t % 2) + r];
                    const float p = __uint_as_float(e == 0 ? pp << 16 : pp & 0xffff0000u);
                    dpt[4 * t + 2 * r + e] = p * (dpt[4 * t + 2 * r + e] - Dq[e]);
                }
        }
        uint32_t sa[4][4];
        bwd10_pack(sa, dpt);
        wg_issue_pb<D>(dk, sa, nmaj(Qb));              // dK += dS^T Q
        wg_wait<0>();
        wg_fence_regs(dk);
        wg_fence_regs(dv);
    }
    cp_async_wait<0>();
    if (chunk >= 0) {   // a chunk of a sink tile's run: fp32 partials, reduced in a fixed order later
        float* pk = partial + (((size_t)bh * nst + kt) * nch + chunk) * 2 * BK * D;
        float* pv = pk + BK * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int row = warp * 16 + g + 8 * r;
                *reinterpret_cast<float2*>(pk + row * D + n * 8 + 2 * tg) = make_float2(dk[4 * n + 2 * r] * scale, dk[4 * n + 2 * r + 1] * scale);
                *reinterpret_cast<float2*>(pv + row * D + n * 8 + 2 * tg) = make_float2(dv[4 * n + 2 * r], dv[4 * n + 2 * r + 1]);
            }
        return;
    }
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int key = kr0 + 8 * r;
        if (key >= T) continue;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            *reinterpret_cast<uint32_t*>(dkbase + key * C3 + n * 8 + 2 * tg) =
                pack_bf16x2(dk[4 * n + 2 * r] * scale, dk[4 * n + 2 * r + 1] * scale);
            *reinterpret_cast<uint32_t*>(dkbase + C + key * C3 + n * 8 + 2 * tg) =
                pack_bf16x2(dv[4 * n + 2 * r], dv[4 * n + 2 * r + 1]);
        }
    }
#endif
}

// 10b: dQ. Block per (b, h, 64 queries), longest first; K, V tiles double-buffered. Thread rows
// (queries) r0 = q0 + 16 warp + g (+ 8); accumulator column 8t + 2tg + e is key k0 + 8t + 2tg + e.
template<int D, bool TMA>
__global__ void __launch_bounds__(BWD10_THREADS, bwd10_dq_min_blocks<D>())
attention_backward_dq_kernel10(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                               const float* Dbuf, int B, int T, int NH, int W, int S,
                               const __grid_constant__ CUtensorMap qkv_map, const __grid_constant__ CUtensorMap dout_map) {
#ifdef HAS_WGMMA
    constexpr int BK = BWD10_ROWS, BQ = BWD10_ROWS, NT = BWD10_THREADS;
    constexpr uint32_t TILE = BWD10_ROWS * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;
    const uint32_t Qs = sbase;                  // (BQ rows) swizzled
    const uint32_t dOs = Qs + TILE;             // (BQ rows)
    const uint32_t Ks = dOs + TILE;             // 2 buffers of (BK rows)
    const uint32_t Vs = Ks + 2 * TILE;          // 2 buffers of (BK rows)
    __shared__ __align__(8) uint64_t tile_full[3];   // TMA: K / V buffers 0, 1; Q and dO
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]), qbar = bar0 + 16;

    const int bh = TMA ? blockIdx.z * NH + blockIdx.y : blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = TMA ? gridDim.x - 1 - blockIdx.x : gridDim.y - 1 - blockIdx.y;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ, r0 = q0 + warp * 16 + g;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        if constexpr (TMA) {
            if (tid == 0) {
                mbar_arrive_expect_bytes(bar0 + 8 * buf, 2 * TILE);
                tma_load_tile64<D>(Ks + buf * TILE, &qkv_map, C + h * D, k0, b, bar0 + 8 * buf);
                tma_load_tile64<D>(Vs + buf * TILE, &qkv_map, 2 * C + h * D, k0, b, bar0 + 8 * buf);
            }
        } else {
            wg_load_rows<D, BK, NT>(Ks + buf * TILE, qbase + C, C3, k0, T, tid);
            wg_load_rows<D, BK, NT>(Vs + buf * TILE, qbase + 2 * C, C3, k0, T, tid);
        }
    };
    auto sync_tiles = [&]() {
        cp_async_wait<0>();
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();
    };
    const uint64_t dQd = wg_desc(Qs, 16, 1024), dOd = wg_desc(dOs, 16, 1024);
    auto kmaj = [&](uint32_t tile) { return wg_desc(tile, 16, 1024); };
    auto nmaj = [&](uint32_t tile) { return wg_desc(tile, BK * 128, 1024); };

    if constexpr (TMA) {
        if (tid == 0) {
            for (int i = 0; i < 3; i++) mbar_init(bar0 + 8 * i, 1);
            mbar_init_fence();
            mbar_arrive_expect_bytes(qbar, 2 * TILE);
            tma_load_tile64<D>(Qs, &qkv_map, h * D, q0, b, qbar);
            tma_load_tile64<D>(dOs, &dout_map, h * D, q0, b, qbar);
        }
        __syncthreads();               // the barriers are initialised before anyone waits on them
    } else {
        wg_load_rows<D, BQ, NT>(Qs, qbase, C3, q0, T, tid);
        wg_load_rows<D, BQ, NT>(dOs, dobase, C, q0, T, tid);
    }
    if (ntiles > 0) load_kv(0, 0);
    cp_async_commit();
    float L2[2], Di[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = r0 + 8 * r;
        L2[r] = (i < T) ? lse[(size_t)(b * NH + h) * T + i] * LOG2E : 0.f;
        Di[r] = (i < T) ? Dbuf[(size_t)(b * NH + h) * T + i] : 0.f;
    }
    float dq[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) dq[i] = 0.f;

    if constexpr (TMA) mbar_wait(qbar, 0);
    for (int it = 0; it < ntiles; it++) {
        if constexpr (TMA) {
            if (it > 0) __syncthreads();   // everyone is done with tile it-1, whose buffers tile it+1 takes
        } else {
            sync_tiles();
        }
        if (it + 1 < ntiles) {
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        if constexpr (TMA) mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // K, V of tile it
        const int buf = it & 1, k0 = key_tile_at(kr, it) * BK;
        const uint32_t Kb = Ks + buf * TILE, Vb = Vs + buf * TILE;
        float s[32], dp[32];
        wg_issue_abt<D, BQ, BK>(s, dQd, kmaj(Kb));    // S = Q K^T
        wg_issue_abt<D, BQ, BK>(dp, dOd, kmaj(Vb));   // dP = dO V^T
        wg_wait<1>();
        wg_fence_regs(s);
        const bool full = block_fully_allowed(q0, BQ, k0, BK, W, S, T);
        const int kb = k0 + 2 * tg, sk = S - kb;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = r0 + 8 * r;
            const int hi = (row < T) ? row - kb : -1 - BK;
            const int lo = (W > 0) ? row - W + 1 - kb : -BK;
#pragma unroll
            for (int t = 0; t < 8; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int kk = 8 * t + e;
                    float p = ex2_approx(fmaf(s[4 * t + 2 * r + e], sl2, -L2[r]));
                    if (!full && !(kk <= hi && (kk >= lo || kk < sk))) p = 0.f;
                    s[4 * t + 2 * r + e] = p;
                }
        }
        wg_wait<0>();
        wg_fence_regs(dp);
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    s[4 * t + 2 * r + e] *= dp[4 * t + 2 * r + e] - Di[r];
        uint32_t sa[4][4];
        bwd10_pack(sa, s);
        wg_issue_pb<D>(dq, sa, nmaj(Kb));             // dQ += dS K
        wg_wait<0>();
        wg_fence_regs(dq);
    }
    bwd10_store_rows<D>(dqkv + (size_t)b * T * C3 + h * D, C3, dq, r0, tg, T, scale);
#endif
}

template<int D, bool TMA, bool NARROW_SINK>
void attention_backward10_launch(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                                 const float* lse, int B, int T, int NH, int W, int S) {
    static_assert(D == 64 || (D == 128 && TMA && !NARROW_SINK),
                  "heads of 128 run v13 (v11's TMA path); v10 and v12's 16-key sink chunk are written for 64");
    constexpr int BK = BWD10_ROWS;
    constexpr size_t smem = bwd10_smem<D>();
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel10<D, TMA, NARROW_SINK>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel10<D, TMA>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        side = side_stream_create();
        configured = true;
    }
    const int nkt = ceil_div(T, BK);
    const SinkSplit sp = sink_split(T, W, S, BK);   // v6's split of the sink tiles' runs
    const int nst = sp.nst, nch = sp.nch;
    float* partial = nst ? get_sink_partial((size_t)B * NH * nst * nch * 2 * BK * D * sizeof(float)) : nullptr;
    const int nkv = nkt + nst * (nch - 1), nq = ceil_div(T, BWD10_ROWS);
    // v11: a head's blocks side by side, so that neighbours share tiles in the L2 (forward v10)
    const dim3 grid_kv = TMA ? dim3(nkv, NH, B) : dim3(B * NH, nkv);
    const dim3 grid_q = TMA ? dim3(nq, NH, B) : dim3(B * NH, nq);
    const CUtensorMap qkv_map = TMA ? rows_tensor_map(qkv, B, T, 3 * NH * D, BWD10_ROWS) : CUtensorMap{};
    const CUtensorMap dout_map = TMA ? rows_tensor_map(dout, B, T, NH * D, BWD10_ROWS) : CUtensorMap{};

    launch_dot<D>(Dbuf, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_backward_dkdv_kernel10<D, TMA, NARROW_SINK><<<grid_kv, BWD10_THREADS, smem>>>(dqkv, partial, qkv, dout, lse, Dbuf,
                                                                                B, T, NH, W, S, nst, nch, qkv_map, dout_map);
    cudaCheckLaunch();
    if (nst) {
        const size_t n = (size_t)B * NH * nst * 2 * BK * D;
        sink_reduce_kernel<D><<<(unsigned)ceil_div(n, (size_t)256), 256>>>(dqkv, partial, B, T, NH, nst, nch);
        cudaCheckLaunch();
    }
    attention_backward_dq_kernel10<D, TMA><<<grid_q, BWD10_THREADS, smem, side.stream>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S,
                                                                                         qkv_map, dout_map);
    cudaCheckLaunch();
    side_stream_join(side);
}
// @copy-end attn-backward-v10

// @copy-begin attn-backward-v13
// backward v13, the programs' backward on sm_90a: v12 for heads of 64, v11's path for heads of 128
template<int D>
void attention_backward13(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                          const float* lse, int B, int T, int NH, int W, int S) {
    attention_backward10_launch<D, true, D == 64>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
}
// @copy-end attn-backward-v13

// The fastest versions on an H200 (dev/cuda/notes.md): on wgmma and TMA where this binary holds
// them for the GPU (its sm_90a code: H100 / H200), else on mma.sync (its compute_90 PTX, for other
// GPUs). attention_kernels() names them: the one place that does.
template<int D>
static void attention_forward_best(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    if (wgmma_available()) attention_forward11<D>(out, lse, qkv, B, T, NH, W, S);
    else                   attention_forward7<D>(out, lse, qkv, B, T, NH, W, S);
}
template<int D>
static void attention_backward_best(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                                    const float* lse, int B, int T, int NH, int W, int S) {
    if (wgmma_available()) attention_backward13<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
    else                   attention_backward9<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
}
static const char* attention_kernels(void) {
    return wgmma_available() ? "forward v11 (wgmma, TMA), backward v13 (wgmma, TMA; heads of 64: v12's 16-key sink chunks)"
                             : "forward v7, backward v9";
}

// @twin-begin the attention patterns this trainer takes, and their dispatch: what differs from train_gpt_full.cu
// @copy-begin attn-general-spec
// ----------------------------------------------------------------------------
// the pattern on the device (SPEC §1; spec_allowed, in version 1's block, is train_gpt_cpu.c's
// allowed() rule by rule) and the warp helpers of versions 1 and 2

#define ATTN_MAX_GLOBALS 64
struct AttnSpec {
    int causal, window, sinks, lookahead, dilation, dilated_keys, num_globals;
    // version 6's second part leaves out the pairs its first part (the band kernels) takes: those with
    // i - j a multiple of skip_stride in [0, skip_span) (skip_span 0: any). skip_stride 0: none. Only
    // spec_allowed and version 5's bit sets honour it (the walk stays a superset, the masks exact).
    int skip_stride, skip_span;
    int globals[ATTN_MAX_GLOBALS];
};

__host__ __device__ inline bool spec_skipped(const AttnSpec& p, int i, int j) {
    const int o = i - j;
    return p.skip_stride > 1 && o >= 0 && o % p.skip_stride == 0 && (p.skip_span == 0 || o < p.skip_span);
}

__host__ __device__ inline bool spec_is_global(const AttnSpec& p, int pos) {
    for (int g = 0; g < p.num_globals; g++) { if (p.globals[g] == pos) return true; }
    return false;
}

__device__ inline float general_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}

// lane l holds dims l, l + 32, l + 64, l + 96 (those below D)
#define GEN_DPL 4
// @copy-end attn-general-spec

// @copy-begin attn-general-v1
// ----------------------------------------------------------------------------
// version 1: one warp per query (key) row, every key (query) tested with spec_allowed (the kernels
// are version 2's, attn-general-warp, run without the walk)

// SPEC §1's allowed(i, j), rule by rule (version 1 tests it on every pair; the later versions walk
// the allowed positions instead, and the CPU reference and test/test_attention_walk.cu use it)
__host__ __device__ inline bool spec_allowed(const AttnSpec& p, int i, int j) {
    if (p.causal && j > i) return false;
    if (spec_skipped(p, i, j)) return false;
    int o = i - j;
    if (o >= 0 && (p.window == 0 || o < p.window)) return true;
    if (!p.causal && o < 0 && -o <= p.lookahead) return true;
    if (j < p.sinks) return true;
    if (!p.causal && i < p.sinks) return true;
    if (spec_is_global(p, j)) return true;
    if (!p.causal && spec_is_global(p, i)) return true;
    if (p.dilation > 1 && p.window > 0 && o >= p.window && o % p.dilation == 0 &&
        (p.dilated_keys == 0 || o < p.window + p.dilated_keys * p.dilation)) return true;
    return false;
}
// @copy-end attn-general-v1

// @copy-begin attn-general-walk
// ----------------------------------------------------------------------------
// the allowed positions one after another: the smallest allowed key after j for query i, and the
// smallest query after i that sees key j, or T when there is none. Each part of spec_allowed gives
// its own next position; the smallest of them is the next allowed one (parts may overlap).

__host__ __device__ inline int walk_min(int a, int b) { return a < b ? a : b; }

// The smallest allowed key j' > j of query i (j = -1 for the first), below T (causal: at most i).
__host__ __device__ inline int spec_next_key(const AttnSpec& p, int i, int j, int T) {
    int end = p.causal ? i + 1 : T;  // keys j' < end
    int from = j + 1;
    if (from >= end) return T;
    if (!p.causal && (i < p.sinks || spec_is_global(p, i))) return from;  // this query sees every key
    int best = end;
    // band: i - W < j' <= i (W = 0: every j' <= i)
    int band_lo = p.window > 0 ? i - p.window + 1 : 0;
    int c = from > band_lo ? from : band_lo;
    if (c <= i) best = walk_min(best, c);
    // lookahead: i < j' <= i + R
    if (!p.causal && p.lookahead > 0) {
        c = from > i + 1 ? from : i + 1;
        if ((long long)c <= (long long)i + p.lookahead) best = walk_min(best, c);
    }
    // sinks: j' < S
    if (from < p.sinks) best = walk_min(best, from);
    // global keys
    for (int g = 0; g < p.num_globals; g++) {
        if (p.globals[g] >= from) best = walk_min(best, p.globals[g]);
    }
    // dilated: offsets o = i - j' >= W, multiples of d, below W + K*d (K = 0: no bound); the next key
    // is the largest such offset below i - j
    if (p.dilation > 1 && p.window > 0) {
        long long o_max = (long long)i - from;  // j' >= from
        if (p.dilated_keys > 0) {
            long long limit = (long long)p.window + (long long)p.dilated_keys * p.dilation - 1;
            if (limit < o_max) o_max = limit;
        }
        if (o_max >= p.window) {
            long long o = o_max / p.dilation * p.dilation;
            if (o >= p.window) best = walk_min(best, (int)(i - o));
        }
    }
    return best < end ? best : T;
}

// The smallest query i' > i (i = -1 for the first), below T, for which key j is allowed.
__host__ __device__ inline int spec_next_query(const AttnSpec& p, int j, int i, int T) {
    int from = i + 1;
    if (p.causal && from < j) from = j;  // causal: i' >= j
    if (from >= T) return T;
    if (j < p.sinks || spec_is_global(p, j)) return from;  // every query sees this key
    int best = T;
    // band: j <= i' < j + W (W = 0: every i' >= j)
    int c = from > j ? from : j;
    if (p.window == 0 || (long long)c < (long long)j + p.window) best = walk_min(best, c);
    // lookahead: j - R <= i' < j
    if (!p.causal && p.lookahead > 0) {
        int lo = j - p.lookahead;
        c = from > lo ? from : lo;
        if (c < j) best = walk_min(best, c);
    }
    // non-causal: the first S queries and the global ones see every key
    if (!p.causal) {
        if (from < p.sinks) best = walk_min(best, from);
        for (int g = 0; g < p.num_globals; g++) {
            if (p.globals[g] >= from) best = walk_min(best, p.globals[g]);
        }
    }
    // dilated: i' = j + o, o >= W a multiple of d below W + K*d: the smallest such o with j + o >= from
    if (p.dilation > 1 && p.window > 0) {
        long long o_min = (long long)from - j;
        if (o_min < p.window) o_min = p.window;
        long long o = (o_min + p.dilation - 1) / p.dilation * p.dilation;
        bool below = p.dilated_keys == 0 || o < (long long)p.window + (long long)p.dilated_keys * p.dilation;
        if (below && (long long)j + o < T) best = walk_min(best, (int)(j + o));
    }
    return best;
}
// @copy-end attn-general-walk

// @copy-begin attn-general-warp
// ----------------------------------------------------------------------------
// versions 1 and 2: one warp per query (key) row, the lanes splitting the head dimension. WALK =
// false (version 1) tests every key (query) with spec_allowed; WALK = true (version 2) steps from
// one allowed position to the next with the walk. Both visit the same positions in the same
// ascending order through the same arithmetic, so version 2's results are version 1's bits.

// the smallest allowed key of query i after key j (j = -1 for the first), or T when there is none
template<bool WALK>
__device__ __forceinline__ int gen_key_after(const AttnSpec& p, int i, int j, int T) {
    if constexpr (WALK) {
        return spec_next_key(p, i, j, T);
    } else {
        const int end = p.causal ? i + 1 : T;
        for (j++; j < end; j++) if (spec_allowed(p, i, j)) return j;
        return T;
    }
}
// the smallest query after query i (i = -1 for the first) that sees key j, or T when there is none
template<bool WALK>
__device__ __forceinline__ int gen_query_after(const AttnSpec& p, int j, int i, int T) {
    if constexpr (WALK) {
        return spec_next_query(p, j, i, T);
    } else {
        for (i = (p.causal && i + 1 < j) ? j : i + 1; i < T; i++) if (spec_allowed(p, i, j)) return i;
        return T;
    }
}

template<bool WALK>
__global__ void attention_general_forward_kernel(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D,
                                                 AttnSpec p) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= B * NH * T) return;
    int i = warp % T, h = (warp / T) % NH, b = warp / (T * NH);
    size_t C = (size_t)NH * D, row3 = 3 * C;
    const bf16* q = qkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
    float scale = rsqrtf((float)D);
    float qd[GEN_DPL], o[GEN_DPL];
    for (int k = 0; k < GEN_DPL; k++) {
        int d = lane + 32 * k;
        qd[k] = d < D ? __bfloat162float(q[d]) * scale : 0.0f;
        o[k] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = gen_key_after<WALK>(p, i, -1, T); j < T; j = gen_key_after<WALK>(p, i, j, T)) {
        const bf16* kj = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
        const bf16* vj = kj + C;
        float s = 0.0f;
        for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) s += qd[k] * __bfloat162float(kj[d]); }
        s = general_warp_sum(s);
        float nm = fmaxf(m, s);
        float corr = expf(m - nm), e = expf(s - nm);  // m = -inf at the first key: corr = 0
        l = l * corr + e;
        for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) o[k] = o[k] * corr + e * __bfloat162float(vj[d]); }
        m = nm;
    }
    bf16* orow = out + ((size_t)b * T + i) * C + (size_t)h * D;
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) orow[d] = __float2bfloat16(o[k] * inv); }
    if (lane == 0) lse[((size_t)b * NH + h) * T + i] = l > 0.0f ? m + logf(l) : -INFINITY;
}

template<bool WALK>
__global__ void attention_general_dq_kernel(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                            const float* lse, int B, int T, int NH, int D, AttnSpec p) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= B * NH * T) return;
    int i = warp % T, h = (warp / T) % NH, b = warp / (T * NH);
    size_t C = (size_t)NH * D, row3 = 3 * C;
    const bf16* q = qkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
    const bf16* go = dout + ((size_t)b * T + i) * C + (size_t)h * D;
    const bf16* oo = out + ((size_t)b * T + i) * C + (size_t)h * D;
    float scale = rsqrtf((float)D);
    float qd[GEN_DPL], gd[GEN_DPL], dq[GEN_DPL];
    float dsum = 0.0f;
    for (int k = 0; k < GEN_DPL; k++) {
        int d = lane + 32 * k;
        qd[k] = d < D ? __bfloat162float(q[d]) * scale : 0.0f;
        gd[k] = d < D ? __bfloat162float(go[d]) : 0.0f;
        dsum += d < D ? gd[k] * __bfloat162float(oo[d]) : 0.0f;
        dq[k] = 0.0f;
    }
    dsum = general_warp_sum(dsum);
    float li = lse[((size_t)b * NH + h) * T + i];
    for (int j = gen_key_after<WALK>(p, i, -1, T); j < T; j = gen_key_after<WALK>(p, i, j, T)) {
        const bf16* kj = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
        const bf16* vj = kj + C;
        float s = 0.0f, dp = 0.0f;
        for (int k = 0; k < GEN_DPL; k++) {
            int d = lane + 32 * k;
            if (d < D) { s += qd[k] * __bfloat162float(kj[d]); dp += gd[k] * __bfloat162float(vj[d]); }
        }
        s = general_warp_sum(s);
        dp = general_warp_sum(dp);
        float ds = expf(s - li) * (dp - dsum) * scale;
        for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) dq[k] += ds * __bfloat162float(kj[d]); }
    }
    bf16* dqrow = dqkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
    for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) dqrow[d] = __float2bfloat16(dq[k]); }
    if (lane == 0) Dsum[((size_t)b * NH + h) * T + i] = dsum;
}

template<bool WALK>
__global__ void attention_general_dkdv_kernel(bf16* dqkv, const float* Dsum, const bf16* qkv, const bf16* dout,
                                              const float* lse, int B, int T, int NH, int D, AttnSpec p) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= B * NH * T) return;
    int j = warp % T, h = (warp / T) % NH, b = warp / (T * NH);
    size_t C = (size_t)NH * D, row3 = 3 * C;
    const bf16* kj = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
    const bf16* vj = kj + C;
    float scale = rsqrtf((float)D);
    float kd[GEN_DPL], vd[GEN_DPL], dk[GEN_DPL], dv[GEN_DPL];
    for (int k = 0; k < GEN_DPL; k++) {
        int d = lane + 32 * k;
        kd[k] = d < D ? __bfloat162float(kj[d]) : 0.0f;
        vd[k] = d < D ? __bfloat162float(vj[d]) : 0.0f;
        dk[k] = 0.0f;
        dv[k] = 0.0f;
    }
    for (int i = gen_query_after<WALK>(p, j, -1, T); i < T; i = gen_query_after<WALK>(p, j, i, T)) {
        const bf16* q = qkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
        const bf16* go = dout + ((size_t)b * T + i) * C + (size_t)h * D;
        float s = 0.0f, dp = 0.0f;
        for (int k = 0; k < GEN_DPL; k++) {
            int d = lane + 32 * k;
            if (d < D) { s += __bfloat162float(q[d]) * kd[k]; dp += __bfloat162float(go[d]) * vd[k]; }
        }
        s = general_warp_sum(s) * scale;
        dp = general_warp_sum(dp);
        float pr = expf(s - lse[((size_t)b * NH + h) * T + i]);
        float ds = pr * (dp - Dsum[((size_t)b * NH + h) * T + i]) * scale;
        for (int k = 0; k < GEN_DPL; k++) {
            int d = lane + 32 * k;
            if (d < D) { dv[k] += pr * __bfloat162float(go[d]); dk[k] += ds * __bfloat162float(q[d]); }
        }
    }
    bf16* dkrow = dqkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
    for (int k = 0; k < GEN_DPL; k++) {
        int d = lane + 32 * k;
        if (d < D) { dkrow[d] = __float2bfloat16(dk[k]); dkrow[C + d] = __float2bfloat16(dv[k]); }
    }
}

template<bool WALK>
static void attention_general_warp_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    size_t warps = (size_t)B * NH * T;
    attention_general_forward_kernel<WALK><<<(unsigned)((warps * 32 + 255) / 256), 256>>>(out, lse, qkv, B, T, NH, D, p);
    cudaCheckLaunch();
}

template<bool WALK>
static void attention_general_warp_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                            const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    size_t warps = (size_t)B * NH * T;
    unsigned blocks = (unsigned)((warps * 32 + 255) / 256);
    attention_general_dq_kernel<WALK><<<blocks, 256>>>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
    cudaCheckLaunch();
    attention_general_dkdv_kernel<WALK><<<blocks, 256>>>(dqkv, Dsum, qkv, dout, lse, B, T, NH, D, p);
    cudaCheckLaunch();
}
// @copy-end attn-general-warp

// @copy-begin attn-general-v3
// ----------------------------------------------------------------------------
// version 3: the forward on tensor cores, visiting only the key tiles with an allowed pair

// spec_allowed without its two global-position clauses (v3 answers those from per-tile masks):
// spec_allowed(i, j) == spec_allowed_local(i, j) || (j global && (!causal || j <= i)) || (!causal && i global)
__host__ __device__ inline bool spec_allowed_local(const AttnSpec& p, int i, int j) {
    if (p.causal && j > i) return false;
    int o = i - j;
    if (o >= 0 && (p.window == 0 || o < p.window)) return true;
    if (!p.causal && o < 0 && -o <= p.lookahead) return true;
    if (j < p.sinks) return true;
    if (!p.causal && i < p.sinks) return true;
    // o % d is a division by a value known only at run time (~20 instructions on every masked
    // element); a power-of-two stride, the usual one, takes a mask instead (a uniform branch)
    const bool on_stride = (p.dilation & (p.dilation - 1)) == 0 ? (o & (p.dilation - 1)) == 0 : o % p.dilation == 0;
    if (p.dilation > 1 && p.window > 0 && o >= p.window && on_stride &&
        (p.dilated_keys == 0 || o < p.window + p.dilated_keys * p.dilation)) return true;
    return false;
}

// Every pair of rows [q0, q0 + nq) x keys [k0, k0 + nk) allowed by the band (and lookahead) alone,
// all rows below T: such a block needs no mask. (A sufficient test: sinks, globals and dilated keys
// may allow more.)
__host__ __device__ inline bool spec_block_in_band(const AttnSpec& p, int q0, int nq, int k0, int nk, int T) {
    int q_last = q0 + nq - 1, k_last = k0 + nk - 1;
    if (q_last >= T || k_last >= T) return false;
    int ahead = p.causal ? 0 : p.lookahead;                    // keys up to row + ahead
    if ((long long)k_last > (long long)q0 + ahead) return false;
    if (p.window > 0 && q_last - k0 >= p.window) return false;   // keys down to row - W + 1
    return p.skip_stride == 0;                                   // version 6's part B masks every tile
}

// The smallest of every thread's v (NT threads); `red` is NT / 32 ints of shared memory (a barrier inside)
template<int NT>
__device__ __forceinline__ int gen_block_min(int v, int* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    int m = red[0];
#pragma unroll
    for (int w = 1; w < NT / 32; w++) m = min(m, red[w]);
    return m;
}

// The next key tile (of BK keys) after tile kt that holds an allowed pair for some row of
// [q0, q0 + BQ), or -1: the smallest over the rows of the next allowed key past tile kt. Every thread
// of the block calls it (a barrier inside); `red` is NT / 32 ints of shared memory, and the caller
// puts a barrier between one call's read of it and the next call's write.
template<int BQ, int BK, int NT>
__device__ __forceinline__ int gen_next_key_tile(const AttnSpec& p, int q0, int kt, int T, int* red) {
    const int from = (kt + 1) * BK - 1;
    int best = T;
    for (int r = threadIdx.x; r < BQ; r += NT) {
        const int i = q0 + r;
        if (i < T) best = min(best, spec_next_key(p, i, from, T));
    }
    const int m = gen_block_min<NT>(best, red);
    return m < T ? m / BK : -1;
}

// The 16-key chunks of key tile k0 that hold an allowed pair for the warp's 16 rows (bit c: chunk c):
// lanes 0-15 test chunks 0-1 of row wq0 + lane, lanes 16-31 chunks 2-3 of row wq0 + lane - 16.
__device__ __forceinline__ unsigned gen_chunk_need(const AttnSpec& p, int wq0, int k0, int T, int lane) {
    const int i = wq0 + (lane & 15), c0 = (lane >> 4) * 2;
    bool n0 = false, n1 = false;
    if (i < T) {
        const int a = k0 + 16 * c0;
        const int j0 = spec_next_key(p, i, a - 1, T), j1 = spec_next_key(p, i, a + 15, T);  // T: none
        n0 = j0 < T && j0 <= a + 15;
        n1 = j1 < T && j1 <= a + 31;
    }
    const unsigned b0 = __ballot_sync(0xffffffffu, n0), b1 = __ballot_sync(0xffffffffu, n1);
    return ((b0 & 0xFFFFu) ? 1u : 0u) | ((b1 & 0xFFFFu) ? 2u : 0u) | ((b0 >> 16) ? 4u : 0u) | ((b1 >> 16) ? 8u : 0u);
}

// s = -inf where the pattern does not allow the pair (or the row or key is past T); thread (g, tg)
// holds rows g and g + 8 of the warp, keys k0 + 2 tg + 8 t + e. gkeys: bit x set iff key k0 + x is
// global; row_global: whether each of the thread's two rows is (non-causal patterns only use it).
__device__ __forceinline__ void gen_mask(float (&s)[TC_BK / 8][4], const AttnSpec& p, int k0, int wq0, int lane,
                                         int T, unsigned long long gkeys, const bool (&row_global)[2]) {
    const int g = lane / 4, tg = lane % 4;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = wq0 + g + 8 * r;
#pragma unroll
        for (int t = 0; t < TC_BK / 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int x = 2 * tg + 8 * t + e, j = k0 + x;
                bool ok = i < T && j < T &&
                          (spec_allowed_local(p, i, j) || (((gkeys >> x) & 1ull) && (!p.causal || j <= i)) ||
                           (!p.causal && row_global[r]));
                if (!ok) s[t][2 * r + e] = -INFINITY;
            }
    }
}

// bit x set iff position t0 + x (x < 64) is one of the pattern's global positions
__device__ __forceinline__ unsigned long long gen_global_bits(const AttnSpec& p, int t0) {
    unsigned long long bits = 0;
    for (int gi = 0; gi < p.num_globals; gi++) {
        const int x = p.globals[gi] - t0;
        if (x >= 0 && x < 64) bits |= 1ull << x;
    }
    return bits;
}

template<int D>
__global__ void __launch_bounds__(TC_THREADS, fwd6_min_blocks<D>())
attention_general3_forward_kernel(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, AttnSpec p) {
    constexpr int BQ = TC_BQ, BK = TC_BK, NT = TC_THREADS, LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* Ks = Qs + BQ * LDS;                       // (2, BK, LDS)
    bf16* Vs = Ks + 2 * BK * LDS;                   // (2, BK, LDS)
    __shared__ int red[NT / 32];

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;      // longest tiles first (causal patterns)
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int q0 = qt * BQ, wq0 = q0 + warp * 16;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);
    bool row_global[2];
    for (int r = 0; r < 2; r++) row_global[r] = spec_is_global(p, wq0 + lane / 4 + 8 * r);

    auto load_kv = [&](int kt, int buf) {
        load_rows_async<D, BK, LDS, NT>(Ks + buf * BK * LDS, kbase, C3, kt * BK, T, tid);
        load_rows_async<D, BK, LDS, NT>(Vs + buf * BK * LDS, vbase, C3, kt * BK, T, tid);
    };
    load_rows_async<D, BQ, LDS, NT>(Qs, qbase, C3, q0, T, tid);
    int kt = gen_next_key_tile<BQ, BK, NT>(p, q0, -1, T, red);  // every row has a key (SPEC §1): kt >= 0
    if (kt >= 0) load_kv(kt, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, Qs, warp, lane);

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f; }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    for (int it = 0; kt >= 0; it++) {
        if (it > 0) {
            cp_async_wait<0>();   // tile kt has landed
            __syncthreads();      // ... for everyone, the tile before it is done in every warp, and red was read
        }
        const int kt_next = gen_next_key_tile<BQ, BK, NT>(p, q0, kt, T, red);
        if (kt_next >= 0) {       // into the buffer of the tile before this one
            load_kv(kt_next, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, k0 = kt * BK;
        const unsigned need = gen_chunk_need(p, wq0, k0, T, lane);
        if (need) {
            float s[BK / 8][4];
            if (need == 0xFu) {   // every chunk: the chunk predicates fold away (as in v7)
                fwd6_qk<D>(s, qf, Ks + buf * BK * LDS, 0xFu, lane);
            } else {
                fwd6_qk<D>(s, qf, Ks + buf * BK * LDS, need, lane);
            }
            if (!spec_block_in_band(p, wq0, 16, k0, BK, T))
                gen_mask(s, p, k0, wq0, lane, T, gen_global_bits(p, k0), row_global);
            if (need == 0xFu) {
                fwd_softmax_pv<D>(o, m, l, s, Vs + buf * BK * LDS, 0xFu, lane, sl2);
            } else {
                fwd_softmax_pv<D>(o, m, l, s, Vs + buf * BK * LDS, need, lane, sl2);
            }
        }
        kt = kt_next;
    }
    fwd_epilogue<D>(out, lse, Qs, o, m, l, b, h, T, NH, q0, warp, lane);
}

template<int D>
static void attention_general3_forward_d(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, const AttnSpec& p) {
    const size_t smem = (size_t)(TC_BQ + 4 * TC_BK) * (D + 8) * sizeof(bf16);
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_general3_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid(B * NH, ceil_div(T, TC_BQ));
    attention_general3_forward_kernel<D><<<grid, TC_THREADS, smem>>>(out, lse, qkv, B, T, NH, p);
    cudaCheckLaunch();
}

// heads of 64 and 128 on tensor cores; other head sizes on version 2
static void attention_general3_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (D == 64) { attention_general3_forward_d<64>(out, lse, qkv, B, T, NH, p); return; }
    if (D == 128) { attention_general3_forward_d<128>(out, lse, qkv, B, T, NH, p); return; }
    attention_general_warp_forward<true>(out, lse, qkv, B, T, NH, D, p);
}

// ---- version 3's backward: backward v9's two passes (dK/dV per 64-key tile, dQ per 64-query tile on
// a second stream; attention_backward.cu's tile halves), each walking only the tiles with an allowed
// pair; the mask is -inf on the scores before the exponentials, as in the forward

// The next query tile (of BQ queries) after tile qt that holds an allowed pair for some key of
// [k0, k0 + BK), or -1: gen_next_key_tile transposed (spec_next_query for each key).
template<int BK, int BQ, int NT>
__device__ __forceinline__ int gen_next_query_tile(const AttnSpec& p, int k0, int qt, int T, int* red) {
    const int from = (qt + 1) * BQ - 1;
    int best = T;
    for (int r = threadIdx.x; r < BK; r += NT) {
        const int j = k0 + r;
        if (j < T) best = min(best, spec_next_query(p, j, from, T));
    }
    const int m = gen_block_min<NT>(best, red);
    return m < T ? m / BQ : -1;
}

// The 16-query chunks of query tile q0 (NC of them) that hold an allowed pair for the warp's 16 keys
// [wk0, wk0 + 16) (bit c: chunk c): lanes 0-15 test the even chunks of key wk0 + lane, lanes 16-31
// the odd ones of key wk0 + lane - 16.
template<int NC>
__device__ __forceinline__ unsigned gen_query_chunk_need(const AttnSpec& p, int wk0, int q0, int T, int lane) {
    static_assert(NC % 2 == 0, "the lanes take the chunks in pairs");
    const int j = wk0 + (lane & 15);
    unsigned need = 0;
#pragma unroll
    for (int cc = 0; cc < NC / 2; cc++) {
        const int a = q0 + 16 * (2 * cc + (lane >> 4));
        bool any = false;
        if (j < T) {
            const int i = spec_next_query(p, j, a - 1, T);   // T: none
            any = i < T && i <= a + 15;
        }
        const unsigned vote = __ballot_sync(0xffffffffu, any);
        if (vote & 0xFFFFu) need |= 1u << (2 * cc);
        if (vote >> 16) need |= 1u << (2 * cc + 1);
    }
    return need;
}

// gen_mask transposed, for S^T = K Q^T: thread (g, tg) holds keys wk0 + g + 8 r and queries
// q0 + 2 tg + 8 t + e. gq: bit x set iff query q0 + x is global; key_global: whether each of the
// thread's two keys is.
template<int BQ>
__device__ __forceinline__ void gen_mask_t(float (&st)[BQ / 8][4], const AttnSpec& p, int q0, int wk0, int lane,
                                           int T, unsigned long long gq, const bool (&key_global)[2]) {
    const int g = lane / 4, tg = lane % 4;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = wk0 + g + 8 * r;
#pragma unroll
        for (int t = 0; t < BQ / 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int x = 2 * tg + 8 * t + e, i = q0 + x;
                bool ok = i < T && j < T &&
                          (spec_allowed_local(p, i, j) || (key_global[r] && (!p.causal || j <= i)) ||
                           (!p.causal && ((gq >> x) & 1ull)));
                if (!ok) st[t][2 * r + e] = -INFINITY;
            }
    }
}

// dK/dV's elementwise half on masked scores: P^T = 2^(S^T sl2 - lse_i log2 e), dS^T = P^T (dP^T - D_i);
// a masked score (-inf) gives P = 0 and dS = 0
template<int BQ>
__device__ __forceinline__ void gen_dkdv_elementwise(float (&st)[BQ / 8][4], float (&dpt)[BQ / 8][4],
                                                     const float* Ls, const float* Ds, int lane, float sl2) {
    const int tg = lane % 4;
#pragma unroll
    for (int t = 0; t < BQ / 8; t++) {
        const float2 Lv = *reinterpret_cast<const float2*>(Ls + t * 8 + 2 * tg);
        const float2 Dv = *reinterpret_cast<const float2*>(Ds + t * 8 + 2 * tg);
        const float L2[2] = {Lv.x * LOG2E, Lv.y * LOG2E}, Dq[2] = {Dv.x, Dv.y};
#pragma unroll
        for (int r = 0; r < 2; r++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float pr = ex2_approx(fmaf(st[t][2 * r + e], sl2, -L2[e]));
                st[t][2 * r + e] = pr;
                dpt[t][2 * r + e] = pr * (dpt[t][2 * r + e] - Dq[e]);
            }
    }
}

// dQ's elementwise half on masked scores: dS = P (dP - D_i), P = 2^(S sl2 - lse_i log2 e)
template<int BK>
__device__ __forceinline__ void gen_dq_elementwise(float (&s)[BK / 8][4], const float (&dp)[BK / 8][4],
                                                   const float (&L2)[2], const float (&Di)[2], float sl2) {
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int t = 0; t < BK / 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float pr = ex2_approx(fmaf(s[t][2 * r + e], sl2, -L2[r]));
                s[t][2 * r + e] = pr * (dp[t][2 * r + e] - Di[r]);
            }
}

// dK/dV: block per (b, h, 64 keys), warp w owns keys [16w, 16w + 16); the query tiles that hold an
// allowed pair for the block's keys stream through two buffers (Q, dO, lse, D_i), as in v9.
// Global keys (and sinks) are seen by every later query: their tiles walk all of T, unsplit.
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_general3_dkdv_kernel(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse, const float* Dbuf,
                               int B, int T, int NH, AttnSpec p) {
    constexpr int BK = TCB_BK, BQ = dkdv_bq<D>(), LDS = D + 8, NT = TCB_THREADS;
    constexpr unsigned ALL = (1u << (BQ / 16)) - 1;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Ks  = reinterpret_cast<bf16*>(smem_raw);   // (BK, LDS)
    bf16* Vs  = Ks + BK * LDS;                       // (BK, LDS)
    bf16* Qs  = Vs + BK * LDS;                       // (2, BQ, LDS)
    bf16* dOs = Qs + 2 * BQ * LDS;                   // (2, BQ, LDS)
    float* Ls = reinterpret_cast<float*>(dOs + 2 * BQ * LDS);   // (2, BQ) lse
    float* Ds = Ls + 2 * BQ;                                    // (2, BQ) D_i
    __shared__ int red[NT / 32];

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH, kt = blockIdx.y;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int k0 = kt * BK, wrow = warp * 16, wk0 = k0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);
    bool key_global[2];
    for (int r = 0; r < 2; r++) key_global[r] = spec_is_global(p, wk0 + lane / 4 + 8 * r);

    auto load_q_tile = [&](int qt, int buf) {
        const int q0 = qt * BQ;
        load_rows_async<D, BQ, LDS, NT>(Qs + buf * BQ * LDS, qbase, C3, q0, T, tid);
        load_rows_async<D, BQ, LDS, NT>(dOs + buf * BQ * LDS, dobase, C, q0, T, tid);
        if (tid < BQ) {
            const int i = q0 + tid;
            const bool ok = i < T;
            cp_async_4(Ls + buf * BQ + tid, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + tid, D_bh + (ok ? i : 0), ok);
        }
    };
    load_rows_async<D, BK, LDS, NT>(Ks, qbase + C, C3, k0, T, tid);
    load_rows_async<D, BK, LDS, NT>(Vs, qbase + 2 * C, C3, k0, T, tid);
    int qt = gen_next_query_tile<BK, BQ, NT>(p, k0, -1, T, red);   // every key has its own query (SPEC §1)
    if (qt >= 0) load_q_tile(qt, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) { dk[n][e] = 0.f; dv[n][e] = 0.f; }

    for (int it = 0; qt >= 0; it++) {
        if (it > 0) {
            cp_async_wait<0>();   // tile qt has landed
            __syncthreads();      // ... for everyone, the tile before it is done in every warp, and red was read
        }
        const int qt_next = gen_next_query_tile<BK, BQ, NT>(p, k0, qt, T, red);
        if (qt_next >= 0) {       // into the buffer of the tile before this one
            load_q_tile(qt_next, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, q0 = qt * BQ;
        const unsigned need = gen_query_chunk_need<BQ / 16>(p, wk0, q0, T, lane);
        if (need) {
            const bf16* Qb = Qs + buf * BQ * LDS;
            const bf16* dOb = dOs + buf * BQ * LDS;
            auto tile = [&](unsigned chunks) {
                float st[BQ / 8][4], dpt[BQ / 8][4];
                bwd8_phase1<D, BQ>(st, dpt, Ks, Vs, Qb, dOb, chunks, wrow, lane);
                if (!spec_block_in_band(p, q0, BQ, wk0, 16, T))
                    gen_mask_t<BQ>(st, p, q0, wk0, lane, T, gen_global_bits(p, q0), key_global);
                gen_dkdv_elementwise<BQ>(st, dpt, Ls + buf * BQ, Ds + buf * BQ, lane, sl2);
                dkdv8_products<D, BQ>(dk, dv, st, dpt, Qb, dOb, chunks, lane);
            };
            if (need == ALL) tile(ALL);   // every chunk: the chunk predicates fold away
            else tile(need);
        }
        qt = qt_next;
    }
    cp_async_wait<0>();
    __syncwarp();
    stage_acc16<D, LDS>(Ks + wrow * LDS, dk, scale, lane);   // a warp's own 16 rows of K and V
    stage_acc16<D, LDS>(Vs + wrow * LDS, dv, 1.f, lane);
    __syncwarp();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
    store_rows16<D, LDS>(dkbase, C3, Ks + wrow * LDS, wk0, T, lane);
    store_rows16<D, LDS>(dkbase + C, C3, Vs + wrow * LDS, wk0, T, lane);
}

// dQ: block per (b, h, 64 queries), warp w owns rows [16w, 16w + 16); the key tiles that hold an
// allowed pair stream through two buffers (K, V), walked as in the forward.
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_general3_dq_kernel(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse, const float* Dbuf,
                             int B, int T, int NH, AttnSpec p) {
    constexpr int BK = TCB_BK, BQ = TCB_BQ_DQ, LDS = D + 8, NT = TCB_THREADS;
    constexpr unsigned ALL = (1u << (BK / 16)) - 1;
    static_assert(BK == 64, "gen_chunk_need tests four 16-key chunks");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs  = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* dOs = Qs + BQ * LDS;                       // (BQ, LDS)
    bf16* Ks  = dOs + BQ * LDS;                      // (2, BK, LDS)
    bf16* Vs  = Ks + 2 * BK * LDS;                   // (2, BK, LDS)
    __shared__ int red[NT / 32];

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;        // longest tiles first (causal patterns)
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4;
    const int q0 = qt * BQ, wrow = warp * 16, wq0 = q0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);
    bool row_global[2];
    for (int r = 0; r < 2; r++) row_global[r] = spec_is_global(p, wq0 + g + 8 * r);

    auto load_kv = [&](int kt, int buf) {
        load_rows_async<D, BK, LDS, NT>(Ks + buf * BK * LDS, qbase + C, C3, kt * BK, T, tid);
        load_rows_async<D, BK, LDS, NT>(Vs + buf * BK * LDS, qbase + 2 * C, C3, kt * BK, T, tid);
    };
    load_rows_async<D, BQ, LDS, NT>(Qs, qbase, C3, q0, T, tid);
    load_rows_async<D, BQ, LDS, NT>(dOs, dobase, C, q0, T, tid);
    int kt = gen_next_key_tile<BQ, BK, NT>(p, q0, -1, T, red);    // every row has a key (SPEC §1)
    if (kt >= 0) load_kv(kt, 0);
    cp_async_commit();
    float L2[2], Di[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = wq0 + g + 8 * r;
        L2[r] = (i < T) ? lse[(size_t)(b * NH + h) * T + i] * LOG2E : 0.f;
        Di[r] = (i < T) ? Dbuf[(size_t)(b * NH + h) * T + i] : 0.f;
    }
    float dq[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f; }
    cp_async_wait<0>();
    __syncthreads();

    for (int it = 0; kt >= 0; it++) {
        if (it > 0) {
            cp_async_wait<0>();
            __syncthreads();
        }
        const int kt_next = gen_next_key_tile<BQ, BK, NT>(p, q0, kt, T, red);
        if (kt_next >= 0) {
            load_kv(kt_next, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, k0 = kt * BK;
        const unsigned need = gen_chunk_need(p, wq0, k0, T, lane);
        if (need) {
            const bf16* Kb = Ks + buf * BK * LDS;
            const bf16* Vb = Vs + buf * BK * LDS;
            auto tile = [&](unsigned chunks) {
                float s[BK / 8][4], dp[BK / 8][4];
                bwd8_phase1<D, BK>(s, dp, Qs, dOs, Kb, Vb, chunks, wrow, lane);
                if (!spec_block_in_band(p, wq0, 16, k0, BK, T))
                    gen_mask(s, p, k0, wq0, lane, T, gen_global_bits(p, k0), row_global);
                gen_dq_elementwise<BK>(s, dp, L2, Di, sl2);
                dq8_products<D, BK>(dq, s, Kb, chunks, lane);
            };
            if (need == ALL) tile(ALL);   // every chunk: the chunk predicates fold away
            else tile(need);
        }
        kt = kt_next;
    }
    cp_async_wait<0>();
    __syncwarp();
    stage_acc16<D, LDS>(Qs + wrow * LDS, dq, scale, lane);
    __syncwarp();
    store_rows16<D, LDS>(dqkv + (size_t)b * T * C3 + h * D, C3, Qs + wrow * LDS, wq0, T, lane);
}

template<int D>
static void attention_general3_backward_d(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                          const float* lse, int B, int T, int NH, const AttnSpec& p) {
    constexpr size_t smem_kv = dkdv_smem<D>(true), smem_q = dq_smem<D>(true);   // v9's layouts
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_general3_dkdv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
        cudaCheck(cudaFuncSetAttribute(attention_general3_dq_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
        side = side_stream_create();
        configured = true;
    }
    launch_dot<D>(Dsum, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_general3_dkdv_kernel<D><<<dim3(B * NH, ceil_div(T, TCB_BK)), TCB_THREADS, smem_kv>>>(
        dqkv, qkv, dout, lse, Dsum, B, T, NH, p);
    cudaCheckLaunch();
    attention_general3_dq_kernel<D><<<dim3(B * NH, ceil_div(T, TCB_BQ_DQ)), TCB_THREADS, smem_q, side.stream>>>(
        dqkv, qkv, dout, lse, Dsum, B, T, NH, p);
    cudaCheckLaunch();
    side_stream_join(side);
}

// heads of 64 and 128 on tensor cores; other head sizes on version 2
static void attention_general3_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                        const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (D == 64) { attention_general3_backward_d<64>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
    if (D == 128) { attention_general3_backward_d<128>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
    attention_general_warp_backward<true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}
// @copy-end attn-general-v3

// @copy-begin attn-general-bits
// ----------------------------------------------------------------------------
// version 5's masks: the allowed keys of a query row in a 64-key tile (or the allowed queries of a
// key column in a 64-query tile) as one 64-bit set, built from the pattern's parts once a tile,
// where versions 3 and 4 test spec_allowed on every score (~20 instructions each, 32 a thread)

// positions [lo, hi] (inclusive; none when lo > hi) of the tile [t0, t0 + 64) as bits x = position - t0
__host__ __device__ inline unsigned long long tile_range_bits(long long lo, long long hi, int t0) {
    lo = lo - t0 > 0 ? lo - t0 : 0;
    hi = hi - t0 < 63 ? hi - t0 : 63;
    if (lo > hi) return 0ull;
    const unsigned long long upto = hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1;
    return upto & (~0ull << lo);
}

// bits x of the tile with x = first (mod d), 0 <= first < d
__host__ __device__ inline unsigned long long tile_stride_bits(long long first, int d) {
    if (first >= 64) return 0ull;
    if (d >= 64) return 1ull << first;
    if ((d & (d - 1)) == 0) return (~0ull / ((1ull << d) - 1)) << first;   // d divides 64: 0x1111... for d = 4
    unsigned long long bits = 0ull;
    for (long long x = first; x < 64; x += d) bits |= 1ull << x;
    return bits;
}

// spec_allowed(p, i, k0 + x) for x = 0..63 (false past T), as bits. gkeys: bit x set iff key k0 + x
// is global (gen_global_bits); row_global: whether query i is.
__host__ __device__ inline unsigned long long spec_row_bits_unskipped(const AttnSpec& p, int i, int k0, int T,
                                                                      unsigned long long gkeys, bool row_global) {
    if (i >= T) return 0ull;
    const unsigned long long in_T = tile_range_bits(0, T - 1, k0);
    if (!p.causal && (i < p.sinks || row_global)) return in_T;            // this query sees every key
    const unsigned long long upto_i = tile_range_bits(0, i, k0);           // causal: keys j <= i
    unsigned long long bits = tile_range_bits(p.window > 0 ? (long long)i - p.window + 1 : 0, i, k0);   // band
    if (!p.causal && p.lookahead > 0) bits |= tile_range_bits((long long)i + 1, (long long)i + p.lookahead, k0);
    if (p.sinks > 0) bits |= tile_range_bits(0, p.sinks - 1, k0) & (p.causal ? upto_i : ~0ull);
    bits |= p.causal ? gkeys & upto_i : gkeys;
    if (p.dilation > 1 && p.window > 0) {   // j = i - o, o >= W a multiple of d, o < W + K d (K = 0: any)
        const long long hi = (long long)i - p.window;
        const long long lo = p.dilated_keys > 0 ? hi - (long long)p.dilated_keys * p.dilation + 1 : 0;
        const unsigned long long range = tile_range_bits(lo, hi, k0);
        if (range) bits |= range & tile_stride_bits((((long long)i - k0) % p.dilation + p.dilation) % p.dilation, p.dilation);
    }
    return bits & in_T;
}

// spec_allowed(p, q0 + x, j) for x = 0..63 (false past T), as bits: spec_row_bits transposed. gq: bit
// x set iff query q0 + x is global; key_global: whether key j is.
__host__ __device__ inline unsigned long long spec_col_bits_unskipped(const AttnSpec& p, int j, int q0, int T,
                                                                      unsigned long long gq, bool key_global) {
    if (j >= T) return 0ull;
    const unsigned long long in_T = tile_range_bits(0, T - 1, q0);
    const unsigned long long from_j = p.causal ? tile_range_bits(j, T - 1, q0) : ~0ull;   // causal: queries i >= j
    if (j < p.sinks || key_global) return in_T & from_j;                   // every query sees this key
    unsigned long long bits = tile_range_bits(j, p.window > 0 ? (long long)j + p.window - 1 : (long long)T - 1, q0);
    if (!p.causal) {
        if (p.lookahead > 0) bits |= tile_range_bits((long long)j - p.lookahead, (long long)j - 1, q0);
        if (p.sinks > 0) bits |= tile_range_bits(0, p.sinks - 1, q0);     // the first S queries see every key
        bits |= gq;                                                        // and the global ones
    }
    if (p.dilation > 1 && p.window > 0) {   // i = j + o, o >= W a multiple of d, o < W + K d (K = 0: any)
        const long long lo = (long long)j + p.window;
        const long long hi = p.dilated_keys > 0 ? lo + (long long)p.dilated_keys * p.dilation - 1 : (long long)T - 1;
        const unsigned long long range = tile_range_bits(lo, hi, q0);
        if (range) bits |= range & tile_stride_bits((((long long)j - q0) % p.dilation + p.dilation) % p.dilation, p.dilation);
    }
    return bits & in_T & from_j;
}

// with version 6's skip (spec_skipped): the row's keys j = i - o, o a multiple of skip_stride in
// [0, skip_span), left out
__host__ __device__ inline unsigned long long spec_row_bits(const AttnSpec& p, int i, int k0, int T,
                                                            unsigned long long gkeys, bool row_global) {
    unsigned long long bits = spec_row_bits_unskipped(p, i, k0, T, gkeys, row_global);
    if (p.skip_stride > 1) {
        const unsigned long long range = tile_range_bits(p.skip_span > 0 ? (long long)i - p.skip_span + 1 : 0, i, k0);
        if (range) bits &= ~(range & tile_stride_bits((((long long)i - k0) % p.skip_stride + p.skip_stride) % p.skip_stride, p.skip_stride));
    }
    return bits;
}

// the same for the key's queries i = j + o
__host__ __device__ inline unsigned long long spec_col_bits(const AttnSpec& p, int j, int q0, int T,
                                                            unsigned long long gq, bool key_global) {
    unsigned long long bits = spec_col_bits_unskipped(p, j, q0, T, gq, key_global);
    if (p.skip_stride > 1) {
        const unsigned long long range = tile_range_bits(j, p.skip_span > 0 ? (long long)j + p.skip_span - 1 : (long long)T - 1, q0);
        if (range) bits &= ~(range & tile_stride_bits((((long long)j - q0) % p.skip_stride + p.skip_stride) % p.skip_stride, p.skip_stride));
    }
    return bits;
}

// s[4t + 2r + e] = -inf where bit 8t + 2tg + e of sets[r] is clear: the wgmma accumulator layout,
// thread (warp, g, tg) holding rows (or keys) +0 and +8 of its warp's 16 and columns 8t + 2tg + e
__device__ __forceinline__ void mask_from_sets(float (&s)[32], const unsigned long long (&sets)[2], int tg) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const unsigned long long bits = sets[r] >> (2 * tg);
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++)
                if (!((bits >> (8 * t + e)) & 1ull)) s[4 * t + 2 * r + e] = -INFINITY;
    }
}

// gen_mask_wg with the sets: s[4t + 2r + e] is row r0 + 8r, key k0 + 8t + 2tg + e
__device__ __forceinline__ void gen_mask_wg_bits(float (&s)[32], const AttnSpec& p, int k0, int r0, int tg, int T,
                                                 unsigned long long gkeys, const bool (&row_global)[2]) {
    const unsigned long long sets[2] = {spec_row_bits(p, r0, k0, T, gkeys, row_global[0]),
                                        spec_row_bits(p, r0 + 8, k0, T, gkeys, row_global[1])};
    mask_from_sets(s, sets, tg);
}

// gen_mask_wg_t with the sets: st[4t + 2r + e] is key kr0 + 8r, query q0 + 8t + 2tg + e
__device__ __forceinline__ void gen_mask_wg_t_bits(float (&st)[32], const AttnSpec& p, int q0, int kr0, int tg, int T,
                                                   unsigned long long gq, const bool (&key_global)[2]) {
    const unsigned long long sets[2] = {spec_col_bits(p, kr0, q0, T, gq, key_global[0]),
                                        spec_col_bits(p, kr0 + 8, q0, T, gq, key_global[1])};
    mask_from_sets(st, sets, tg);
}
// @copy-end attn-general-bits

// @copy-begin attn-general-v4
// ----------------------------------------------------------------------------
// version 4: the forward on Hopper's wgmma: forward v10's block (64 query rows, one warpgroup, Q, K
// and V by TMA, two K / V buffers with an mbarrier each) walking version 3's key tiles

// gen_mask for a wgmma accumulator: s[4t + 2r + e] is row r0 + 8r, key k0 + 8t + 2tg + e (64 keys)
__device__ __forceinline__ void gen_mask_wg(float (&s)[32], const AttnSpec& p, int k0, int r0, int tg, int T,
                                            unsigned long long gkeys, const bool (&row_global)[2]) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = r0 + 8 * r;
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int x = 8 * t + 2 * tg + e, j = k0 + x;
                bool ok = i < T && j < T &&
                          (spec_allowed_local(p, i, j) || (((gkeys >> x) & 1ull) && (!p.causal || j <= i)) ||
                           (!p.causal && row_global[r]));
                if (!ok) s[4 * t + 2 * r + e] = -INFINITY;
            }
    }
}

// 4 blocks per SM at D = 64 (v10 runs 5 at 96 registers; the walk and the mask need more)
template<int D> __host__ __device__ constexpr int gen4_min_blocks() { return D == 64 ? 4 : 2; }

template<int D, bool BITS>
__global__ void __launch_bounds__(128, gen4_min_blocks<D>())
attention_general4_forward_kernel(bf16* out, float* lse, const __grid_constant__ CUtensorMap qkv_map,
                                  int B, int T, int NH, AttnSpec p) {
#ifdef HAS_WGMMA
    constexpr int BQ = 64, BK = FWD8_BK, CB = D / 64, NT = 128;   // CB: 64-column boxes per row
    constexpr uint32_t QBYTES = BQ * D * 2, KVBYTES = BK * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ __align__(8) uint64_t tile_full[2];     // one mbarrier per K / V buffer
    __shared__ int red[NT / 32];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;     // the swizzle repeats every 1024 bytes
    unsigned char* smem = smem_raw + (sbase - raw);
    const uint32_t Qs = sbase;                         // (BQ rows) swizzled
    const uint32_t Ks = Qs + QBYTES;                   // 2 buffers of (BK rows)
    const uint32_t Vs = Ks + 2 * KVBYTES;              // 2 buffers of (BK rows)
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]);

    const int h = blockIdx.y, b = blockIdx.z;
    const int qt = gridDim.x - 1 - blockIdx.x;         // longest tiles first (causal patterns)
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ;
    const int r0 = q0 + warp * 16 + g;                 // this thread's rows: r0, r0 + 8
    const int C = NH * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    bool row_global[2];
    for (int r = 0; r < 2; r++) row_global[r] = spec_is_global(p, r0 + 8 * r);

    auto issue_kv = [&](int kt, int buf) {   // one thread
#pragma unroll
        for (int cb = 0; cb < CB; cb++) {
            tma_load_box(Ks + buf * KVBYTES + cb * BK * 128, &qkv_map, C + h * D + cb * 64, kt * BK, b, bar0 + 8 * buf);
            tma_load_box(Vs + buf * KVBYTES + cb * BK * 128, &qkv_map, 2 * C + h * D + cb * 64, kt * BK, b, bar0 + 8 * buf);
        }
    };
    int kt = gen_next_key_tile<BQ, BK, NT>(p, q0, -1, T, red);   // every row has a key (SPEC §1): kt >= 0
    if (tid == 0) {
        mbar_init(bar0, 1);
        mbar_init(bar0 + 8, 1);
        mbar_init_fence();
        mbar_arrive_expect_bytes(bar0, QBYTES + (kt >= 0 ? 2 * KVBYTES : 0));
#pragma unroll
        for (int cb = 0; cb < CB; cb++) tma_load_box(Qs + cb * BQ * 128, &qkv_map, h * D + cb * 64, q0, b, bar0);
        if (kt >= 0) issue_kv(kt, 0);
    }
    __syncthreads();   // the barriers are initialised before anyone waits on them

    const uint64_t dq0 = wg_desc(Qs, 16, 1024);
    const uint64_t dk0 = wg_desc(Ks, 16, 1024);
    const uint64_t dv0 = wg_desc(Vs, BK * 128, 1024);
    auto dk = [&](int buf) { return dk0 + (uint32_t)(buf * KVBYTES >> 4); };
    auto dv = [&](int buf) { return dv0 + (uint32_t)(buf * KVBYTES >> 4); };

    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) o[i] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    uint32_t pa[BK / 16][4];

    int it = 0;
    for (; kt >= 0; it++) {
        if (it > 0) __syncthreads();   // every warp is done with tile it-1 (its buffers take tile it+1) and read red
        const int kt_next = gen_next_key_tile<BQ, BK, NT>(p, q0, kt, T, red);
        if (tid == 0 && kt_next >= 0) {
            mbar_arrive_expect_bytes(bar0 + 8 * ((it + 1) & 1), 2 * KVBYTES);
            issue_kv(kt_next, (it + 1) & 1);
        }
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // tile it (and, for it = 0, Q) landed
        const int k0 = kt * BK;
        float s[32];
        wg_issue_abt<D, BQ, BK>(s, dq0, dk(it & 1));     // S = Q K^T
        wg_wait<0>();
        wg_fence_regs(s);
        if (!spec_block_in_band(p, q0, BQ, k0, BK, T)) {
            if constexpr (BITS) gen_mask_wg_bits(s, p, k0, r0, tg, T, gen_global_bits(p, k0), row_global);
            else                gen_mask_wg(s, p, k0, r0, tg, T, gen_global_bits(p, k0), row_global);
        }
        fwd8_online_softmax<D>(s, o, m, l, pa, sl2);
        wg_issue_pb<D>(o, pa, dv(it & 1));               // O += P V
        wg_wait<0>();
        kt = kt_next;
    }
    if (it == 0) mbar_wait(bar0, 0);   // no key tile (impossible, SPEC §1): Q's copy still lands before the epilogue
    wg_fence_regs(o);
    fwd10_epilogue<D>(out, lse, smem, o, m, l, b, h, q0, r0, warp, g, tg, tid, T, NH);
#endif
}

template<int D, bool BITS = false>
static void attention_general4_forward_d(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, const AttnSpec& p) {
    const size_t smem = fwd10_smem<D>();
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_general4_forward_kernel<D, BITS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    const CUtensorMap map = rows_tensor_map(qkv, B, T, 3 * NH * D, 64);
    dim3 grid(ceil_div(T, 64), NH, B);   // a head's query tiles side by side: they share K / V in the L2
    attention_general4_forward_kernel<D, BITS><<<grid, 128, smem>>>(out, lse, map, B, T, NH, p);
    cudaCheckLaunch();
}

// ---- version 4's backward: backward v11's two passes (wgmma, TMA; dK/dV per 64 keys, dQ per 64
// queries on a second stream) walking version 3's tiles, the mask on the wgmma layout before the
// exponentials

// gen_mask_wg transposed, for S^T = K Q^T: st[4t + 2r + e] is key kr0 + 8r, query q0 + 8t + 2tg + e;
// gq: bit x set iff query q0 + x is global; key_global: whether each of the thread's two keys is
__device__ __forceinline__ void gen_mask_wg_t(float (&st)[32], const AttnSpec& p, int q0, int kr0, int tg, int T,
                                              unsigned long long gq, const bool (&key_global)[2]) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = kr0 + 8 * r;
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int x = 8 * t + 2 * tg + e, i = q0 + x;
                bool ok = i < T && j < T &&
                          (spec_allowed_local(p, i, j) || (key_global[r] && (!p.causal || j <= i)) ||
                           (!p.causal && ((gq >> x) & 1ull)));
                if (!ok) st[4 * t + 2 * r + e] = -INFINITY;
            }
    }
}

// dK/dV: block per (64 keys, head, batch); the query tiles with an allowed pair for the block's keys
// (Q, dO by TMA, lse and D_i by cp.async) through two buffers. Thread rows (keys) kr0, kr0 + 8;
// accumulator column 8t + 2tg + e is query q0 + 8t + 2tg + e.
template<int D, bool BITS>
__global__ void __launch_bounds__(BWD10_THREADS, bwd10_dkdv_min_blocks<D>())
attention_general4_dkdv_kernel(bf16* dqkv, const float* lse, const float* Dbuf, int B, int T, int NH, AttnSpec p,
                               const __grid_constant__ CUtensorMap qkv_map, const __grid_constant__ CUtensorMap dout_map) {
#ifdef HAS_WGMMA
    constexpr int BK = BWD10_ROWS, BQ = BWD10_ROWS, NT = BWD10_THREADS;
    constexpr uint32_t TILE = BWD10_ROWS * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;   // swizzled tiles: 1024-byte alignment
    const uint32_t Ks = sbase;                       // (BK rows) swizzled
    const uint32_t Vs = Ks + TILE;                   // (BK rows)
    const uint32_t Qs = Vs + TILE;                   // 2 buffers of (BQ rows)
    const uint32_t dOs = Qs + 2 * TILE;              // 2 buffers of (BQ rows)
    float* Ls = reinterpret_cast<float*>(smem_raw + (sbase - raw) + 6 * TILE);   // (2, BQ) lse
    float* Ds = Ls + 2 * BQ;                                                     // (2, BQ) D_i
    __shared__ __align__(8) uint64_t tile_full[2];   // one mbarrier per Q / dO buffer
    __shared__ int red[NT / 32];
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]);

    const int kt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int k0 = kt * BK, kr0 = k0 + warp * 16 + g;   // this thread's keys: kr0, kr0 + 8
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);
    bool key_global[2];
    for (int r = 0; r < 2; r++) key_global[r] = spec_is_global(p, kr0 + 8 * r);

    auto load_q_tile = [&](int qt, int buf) {
        const int q0 = qt * BQ;
        if (tid == 0) {
            mbar_arrive_expect_bytes(bar0 + 8 * buf, 2 * TILE);
            tma_load_tile64<D>(Qs + buf * TILE, &qkv_map, h * D, q0, b, bar0 + 8 * buf);
            tma_load_tile64<D>(dOs + buf * TILE, &dout_map, h * D, q0, b, bar0 + 8 * buf);
        }
        if (tid < BQ) {
            const int i = q0 + tid;
            const bool ok = i < T;
            cp_async_4(Ls + buf * BQ + tid, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + tid, D_bh + (ok ? i : 0), ok);
        }
    };
    // descriptors: K, V (A, K-major); Q, dO as K-major B (S^T, dP^T) and as N-major B (dK, dV)
    const uint64_t dK = wg_desc(Ks, 16, 1024), dV = wg_desc(Vs, 16, 1024);
    auto kmaj = [&](uint32_t tile) { return wg_desc(tile, 16, 1024); };
    auto nmaj = [&](uint32_t tile) { return wg_desc(tile, BQ * 128, 1024); };

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) { dk[i] = 0.f; dv[i] = 0.f; }

    int qt = gen_next_query_tile<BK, BQ, NT>(p, k0, -1, T, red);   // every key has its own query (SPEC §1)
    if (tid == 0) {
        mbar_init(bar0, 1);
        mbar_init(bar0 + 8, 1);
        mbar_init_fence();
        if (qt >= 0) {             // K and V ride on Q / dO tile 0's phase
            mbar_expect_bytes(bar0, 2 * TILE);
            tma_load_tile64<D>(Ks, &qkv_map, C + h * D, k0, b, bar0);
            tma_load_tile64<D>(Vs, &qkv_map, 2 * C + h * D, k0, b, bar0);
        }
    }
    __syncthreads();               // the barriers are initialised before anyone waits on them
    if (qt >= 0) load_q_tile(qt, 0);
    cp_async_commit();
    for (int it = 0; qt >= 0; it++) {
        cp_async_wait<0>();        // my lse / D_i copies of tile it landed
        __syncthreads();           // ... everyone's; everyone is done with tile it-1 and read red
        const int qt_next = gen_next_query_tile<BK, BQ, NT>(p, k0, qt, T, red);
        if (qt_next >= 0) {        // into the buffers of tile it-1
            load_q_tile(qt_next, (it + 1) & 1);
            cp_async_commit();
        }
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // Q, dO (and K, V) of tile it
        const int buf = it & 1, q0 = qt * BQ;
        const uint32_t Qb = Qs + buf * TILE, dOb = dOs + buf * TILE;
        float st[32], dpt[32];
        wg_issue_abt<D, BK, BQ>(st, dK, kmaj(Qb));     // S^T = K Q^T
        wg_issue_abt<D, BK, BQ>(dpt, dV, kmaj(dOb));   // dP^T = V dO^T
        const float* Lb = Ls + buf * BQ;
        const float* Db = Ds + buf * BQ;
        wg_wait<1>();                  // S^T done, dP^T may still run
        wg_fence_regs(st);
        if (!spec_block_in_band(p, q0, BQ, k0, BK, T)) {
            if constexpr (BITS) gen_mask_wg_t_bits(st, p, q0, kr0, tg, T, gen_global_bits(p, q0), key_global);
            else                gen_mask_wg_t(st, p, q0, kr0, tg, T, gen_global_bits(p, q0), key_global);
        }
#pragma unroll
        for (int t = 0; t < 8; t++) {  // P^T = 2^(S^T sl2 - lse log2 e): 0 where masked
            const float2 Lv = *reinterpret_cast<const float2*>(Lb + 8 * t + 2 * tg);
            const float L2[2] = {Lv.x * LOG2E, Lv.y * LOG2E};
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    st[4 * t + 2 * r + e] = ex2_approx(fmaf(st[4 * t + 2 * r + e], sl2, -L2[e]));
        }
        uint32_t pa[4][4];
        bwd10_pack(pa, st);
        wg_issue_pb<D>(dv, pa, nmaj(dOb));             // dV += P^T dO
        wg_wait<1>();                  // dP^T done, dV may still run
        wg_fence_regs(dpt);
#pragma unroll
        for (int t = 0; t < 8; t++) {  // dS^T = P^T (dP^T - D_i), P^T back from its bf16 fragments (as v10)
            const float2 Dv = *reinterpret_cast<const float2*>(Db + 8 * t + 2 * tg);
            const float Dq[2] = {Dv.x, Dv.y};
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const uint32_t pp = pa[t / 2][2 * (t % 2) + r];
                    const float pr = __uint_as_float(e == 0 ? pp << 16 : pp & 0xffff0000u);
                    dpt[4 * t + 2 * r + e] = pr * (dpt[4 * t + 2 * r + e] - Dq[e]);
                }
        }
        uint32_t sa[4][4];
        bwd10_pack(sa, dpt);
        wg_issue_pb<D>(dk, sa, nmaj(Qb));              // dK += dS^T Q
        wg_wait<0>();
        wg_fence_regs(dk);
        wg_fence_regs(dv);
        qt = qt_next;
    }
    cp_async_wait<0>();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
    bwd10_store_rows<D>(dkbase, C3, dk, kr0, tg, T, scale);
    bwd10_store_rows<D>(dkbase + C, C3, dv, kr0, tg, T, 1.f);
#endif
}

// dQ: block per (64 queries, head, batch), longest first; the key tiles with an allowed pair (K, V
// by TMA) through two buffers. Thread rows (queries) r0, r0 + 8; accumulator column 8t + 2tg + e is
// key k0 + 8t + 2tg + e.
// 3 blocks per SM at D = 64 (backward v10's dQ runs 4 at 128 registers; this one spills there)
template<int D> __host__ __device__ constexpr int gen4_dq_min_blocks() { return D == 64 ? 3 : 2; }

template<int D, bool BITS>
__global__ void __launch_bounds__(BWD10_THREADS, gen4_dq_min_blocks<D>())
attention_general4_dq_kernel(bf16* dqkv, const float* lse, const float* Dbuf, int B, int T, int NH, AttnSpec p,
                             const __grid_constant__ CUtensorMap qkv_map, const __grid_constant__ CUtensorMap dout_map) {
#ifdef HAS_WGMMA
    constexpr int BK = BWD10_ROWS, BQ = BWD10_ROWS, NT = BWD10_THREADS;
    constexpr uint32_t TILE = BWD10_ROWS * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;
    const uint32_t Qs = sbase;                  // (BQ rows) swizzled
    const uint32_t dOs = Qs + TILE;             // (BQ rows)
    const uint32_t Ks = dOs + TILE;             // 2 buffers of (BK rows)
    const uint32_t Vs = Ks + 2 * TILE;          // 2 buffers of (BK rows)
    __shared__ __align__(8) uint64_t tile_full[3];   // K / V buffers 0, 1; Q and dO
    __shared__ int red[NT / 32];
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]), qbar = bar0 + 16;

    const int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ, r0 = q0 + warp * 16 + g;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);
    bool row_global[2];
    for (int r = 0; r < 2; r++) row_global[r] = spec_is_global(p, r0 + 8 * r);

    auto load_kv = [&](int kt, int buf) {   // one thread
        if (tid == 0) {
            mbar_arrive_expect_bytes(bar0 + 8 * buf, 2 * TILE);
            tma_load_tile64<D>(Ks + buf * TILE, &qkv_map, C + h * D, kt * BK, b, bar0 + 8 * buf);
            tma_load_tile64<D>(Vs + buf * TILE, &qkv_map, 2 * C + h * D, kt * BK, b, bar0 + 8 * buf);
        }
    };
    const uint64_t dQd = wg_desc(Qs, 16, 1024), dOd = wg_desc(dOs, 16, 1024);
    auto kmaj = [&](uint32_t tile) { return wg_desc(tile, 16, 1024); };
    auto nmaj = [&](uint32_t tile) { return wg_desc(tile, BK * 128, 1024); };

    int kt = gen_next_key_tile<BQ, BK, NT>(p, q0, -1, T, red);   // every row has a key (SPEC §1)
    if (tid == 0) {
        for (int i = 0; i < 3; i++) mbar_init(bar0 + 8 * i, 1);
        mbar_init_fence();
        mbar_arrive_expect_bytes(qbar, 2 * TILE);
        tma_load_tile64<D>(Qs, &qkv_map, h * D, q0, b, qbar);
        tma_load_tile64<D>(dOs, &dout_map, h * D, q0, b, qbar);
    }
    __syncthreads();               // the barriers are initialised before anyone waits on them
    if (kt >= 0) load_kv(kt, 0);
    float L2[2], Di[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = r0 + 8 * r;
        L2[r] = (i < T) ? lse[(size_t)(b * NH + h) * T + i] * LOG2E : 0.f;
        Di[r] = (i < T) ? Dbuf[(size_t)(b * NH + h) * T + i] : 0.f;
    }
    float dq[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) dq[i] = 0.f;

    mbar_wait(qbar, 0);
    for (int it = 0; kt >= 0; it++) {
        if (it > 0) __syncthreads();   // everyone is done with tile it-1, whose buffers tile it+1 takes, and read red
        const int kt_next = gen_next_key_tile<BQ, BK, NT>(p, q0, kt, T, red);
        if (kt_next >= 0) load_kv(kt_next, (it + 1) & 1);
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // K, V of tile it
        const int buf = it & 1, k0 = kt * BK;
        const uint32_t Kb = Ks + buf * TILE, Vb = Vs + buf * TILE;
        float s[32], dp[32];
        wg_issue_abt<D, BQ, BK>(s, dQd, kmaj(Kb));    // S = Q K^T
        wg_issue_abt<D, BQ, BK>(dp, dOd, kmaj(Vb));   // dP = dO V^T
        wg_wait<1>();
        wg_fence_regs(s);
        if (!spec_block_in_band(p, q0, BQ, k0, BK, T)) {
            if constexpr (BITS) gen_mask_wg_bits(s, p, k0, r0, tg, T, gen_global_bits(p, k0), row_global);
            else                gen_mask_wg(s, p, k0, r0, tg, T, gen_global_bits(p, k0), row_global);
        }
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    s[4 * t + 2 * r + e] = ex2_approx(fmaf(s[4 * t + 2 * r + e], sl2, -L2[r]));
        wg_wait<0>();
        wg_fence_regs(dp);
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    s[4 * t + 2 * r + e] *= dp[4 * t + 2 * r + e] - Di[r];
        uint32_t sa[4][4];
        bwd10_pack(sa, s);
        wg_issue_pb<D>(dq, sa, nmaj(Kb));             // dQ += dS K
        wg_wait<0>();
        wg_fence_regs(dq);
        kt = kt_next;
    }
    bwd10_store_rows<D>(dqkv + (size_t)b * T * C3 + h * D, C3, dq, r0, tg, T, scale);
#endif
}

template<int D, bool BITS = false>
static void attention_general4_backward_d(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                          const float* lse, int B, int T, int NH, const AttnSpec& p) {
    constexpr size_t smem = bwd10_smem<D>();
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_general4_dkdv_kernel<D, BITS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        cudaCheck(cudaFuncSetAttribute(attention_general4_dq_kernel<D, BITS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        side = side_stream_create();
        configured = true;
    }
    const CUtensorMap qkv_map = rows_tensor_map(qkv, B, T, 3 * NH * D, BWD10_ROWS);
    const CUtensorMap dout_map = rows_tensor_map(dout, B, T, NH * D, BWD10_ROWS);
    const dim3 grid(ceil_div(T, BWD10_ROWS), NH, B);   // a head's blocks side by side (v11)
    launch_dot<D>(Dsum, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_general4_dkdv_kernel<D, BITS><<<grid, BWD10_THREADS, smem>>>(dqkv, lse, Dsum, B, T, NH, p, qkv_map, dout_map);
    cudaCheckLaunch();
    attention_general4_dq_kernel<D, BITS><<<grid, BWD10_THREADS, smem, side.stream>>>(dqkv, lse, Dsum, B, T, NH, p, qkv_map, dout_map);
    cudaCheckLaunch();
    side_stream_join(side);
}

// @copy-end attn-general-v4

// @copy-begin attn-general-v5
// ----------------------------------------------------------------------------
// version 5: version 4's kernels with the masks as 64-bit sets a row (spec_row_bits, spec_col_bits:
// one build a row and tile, then one bit test a score)

static void attention_general5_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (wgmma_available()) {
        if (D == 64) { attention_general4_forward_d<64, true>(out, lse, qkv, B, T, NH, p); return; }
        if (D == 128) { attention_general4_forward_d<128, true>(out, lse, qkv, B, T, NH, p); return; }
    }
    attention_general3_forward(out, lse, qkv, B, T, NH, D, p);
}
static void attention_general5_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                        const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (wgmma_available()) {
        if (D == 64) { attention_general4_backward_d<64, true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
        if (D == 128) { attention_general4_backward_d<128, true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
    }
    attention_general3_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}
// @copy-end attn-general-v5

// @copy-begin attn-general-v6
// ----------------------------------------------------------------------------
// version 6: a dilated pattern split in two and merged by log-sum-exp. Part A: the keys of the
// query's own residue mod d, j = i - a d for 0 <= a < W_A = ceil(W / d) + K (K = 0: every a), are a
// causal band of W_A in the subsequence of that residue (positions r, r + d, r + 2d, ...): q, k, v
// are gathered into B d sequences of ceil(T / d) rows (zeros past T: keys no real query sees) and
// run on the band kernels (forward v11, backward v13). Part B: the rest of the pattern, which is the
// pattern without its dilation minus A's pairs (skip_stride / skip_span), on version 5's kernels,
// whose walk of the undilated pattern visits only the band's tiles. out = e^(lse_A - lse) out_A +
// e^(lse_B - lse) out_B with lse = log(e^lse_A + e^lse_B); each part's backward runs with the merged
// out and lse (its P = e^(S - lse) and D_i = rowsum(dO O) are then the whole pattern's), and A's
// gradient is added into B's. Every sum in a fixed order: deterministic.

// the scratch of version 6 (grows, never shrinks; freed at exit)
static void* gen6_scratch = nullptr;
static size_t gen6_scratch_bytes = 0;
static void* gen6_get_scratch(size_t bytes) {
    if (bytes > gen6_scratch_bytes) {
        if (gen6_scratch) cudaCheck(cudaFree(gen6_scratch));
        cudaCheck(cudaMalloc(&gen6_scratch, bytes));
        gen6_scratch_bytes = bytes;
    }
    return gen6_scratch;
}

// the patterns version 6 can take: dilated, heads of 64 or 128 on a Hopper GPU with this binary's
// sm_90a code (the band kernels' and version 5's condition; the merge's rows of D / 8 threads then
// never cross a warp), a stride no longer than the sequence (the scratch holds B d ceil(T / d) rows)
// and at most 65535 subsequences (the band kernels' grid.z)
static bool gen6_can(const AttnSpec& p, int B, int T, int D) {
    return p.dilation > 1 && p.window > 0 && p.dilation <= T && (long long)B * p.dilation <= 65535 &&
           (D == 64 || D == 128) && wgmma_available();
}

// and those where the split pays for its ~27 ns a token of gathers, merge and second walk (H100,
// 12 x 64, forward+backward): the dilated keys reach far. Measured (the split against version 5):
// W = 256 + 64 keys at stride 4 (a reach of 256) 0.57x; seeds/001's pattern (a row's dilated keys
// reach (T - W) / 2 back on average) 1.06x at T = 1024 (reach 464), 1.9x at 2048, 3.2x at 4096.
// Between 256 and 464 the ratio crosses 1 near 440 if it runs straight: the rule takes 448.
// Subsequences shorter than a 64-row tile waste most of each tile: the split needs T >= 64 d.
static bool gen6_pays(const AttnSpec& p, int T) {
    const long long reach = p.dilated_keys > 0 ? (long long)p.dilated_keys * p.dilation : ((long long)T - p.window) / 2;
    return reach >= 448 && (long long)T >= 64LL * p.dilation;
}

// the split: part A's band width in its subsequence (0: unlimited), and part B's spec
static int gen6_band(const AttnSpec& p) {
    return p.dilated_keys == 0 ? 0 : (p.window + p.dilation - 1) / p.dilation + p.dilated_keys;
}
static AttnSpec gen6_rest(const AttnSpec& p) {
    AttnSpec r = p;
    r.dilation = 1;
    r.dilated_keys = 0;
    r.skip_stride = p.dilation;
    r.skip_span = gen6_band(p) * p.dilation;   // 0: unlimited
    return r;
}

// dst (B d, Ts, cols) <- src (B, T, cols): row (b d + r, a) is row (b, a d + r), zeros past T. cols a
// multiple of 8 (16-byte moves).
__global__ void gen6_gather_kernel(bf16* dst, const bf16* src, int B, int T, int d, int Ts, int cols) {
    const size_t n = (size_t)B * d * Ts * (cols / 8);
    for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < n; x += (size_t)gridDim.x * blockDim.x) {
        const size_t row = x / (cols / 8);
        const int c = (int)(x % (cols / 8)), a = (int)(row % Ts), bd = (int)(row / Ts), b = bd / d, r = bd % d;
        const int t = a * d + r;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (t < T) v = *reinterpret_cast<const uint4*>(src + ((size_t)b * T + t) * cols + 8 * c);
        *reinterpret_cast<uint4*>(dst + row * cols + 8 * c) = v;
    }
}

// dst (B d, NH, Ts) <- src (B, NH, T), zeros past T (for the padding rows, whose dO is zero)
__global__ void gen6_gather_lse_kernel(float* dst, const float* src, int B, int T, int NH, int d, int Ts) {
    const size_t n = (size_t)B * d * NH * Ts;
    for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < n; x += (size_t)gridDim.x * blockDim.x) {
        const int a = (int)(x % Ts), h = (int)(x / Ts % NH), bd = (int)(x / ((size_t)Ts * NH)), b = bd / d, r = bd % d;
        const int t = a * d + r;
        dst[x] = t < T ? src[((size_t)b * NH + h) * T + t] : 0.f;
    }
}

// dst (B, T, cols) += src (B d, Ts, cols) at the gathered rows: both already bf16, added in float and
// rounded again (the two parts' gradients are rounded once each before the sum)
__global__ void gen6_scatter_add_kernel(bf16* dst, const bf16* src, int B, int T, int d, int Ts, int cols) {
    const size_t n = (size_t)B * T * (cols / 8);
    for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < n; x += (size_t)gridDim.x * blockDim.x) {
        const size_t row = x / (cols / 8);
        const int c = (int)(x % (cols / 8)), t = (int)(row % T), b = (int)(row / T);
        const size_t srow = ((size_t)b * d + t % d) * Ts + t / d;
        uint4 u = *reinterpret_cast<const uint4*>(dst + row * cols + 8 * c);
        const uint4 w = *reinterpret_cast<const uint4*>(src + srow * cols + 8 * c);
        bf16* ud = reinterpret_cast<bf16*>(&u);
        const bf16* wd = reinterpret_cast<const bf16*>(&w);
#pragma unroll
        for (int e = 0; e < 8; e++) ud[e] = __float2bfloat16(__bfloat162float(ud[e]) + __bfloat162float(wd[e]));
        *reinterpret_cast<uint4*>(dst + row * cols + 8 * c) = u;
    }
}

// out, lse (part B's, in place) <- the merge with part A's (gathered) out_a, lse_a; both outs are
// bf16 already, so the merged out is rounded twice. D / 8 threads a (t, h) row, all in one warp
// (D = 64 or 128, gen6_can): they read lse before the first of them writes it.
__global__ void gen6_merge_kernel(bf16* out, float* lse, const bf16* out_a, const float* lse_a,
                                  int B, int T, int NH, int D, int d, int Ts) {
    const int per_row = D / 8;
    const size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    const size_t row = x / per_row;   // (b, t, h)
    const int c = (int)(x % per_row);
    const bool live = row < (size_t)B * T * NH;
    float wa = 0.f, wb = 0.f, l = 0.f;
    size_t lse_at = 0, arow = 0;
    if (live) {
        const int h = (int)(row % NH), t = (int)(row / NH % T), b = (int)(row / ((size_t)NH * T));
        const size_t ai = ((size_t)b * d + t % d) * Ts + t / d;   // the gathered row
        lse_at = ((size_t)b * NH + h) * T + t;
        arow = ai * NH + h;
        const float la = lse_a[((size_t)b * d + t % d) * NH * Ts + (size_t)h * Ts + t / d], lb = lse[lse_at];
        const float m = fmaxf(la, lb);   // la is finite: part A holds the diagonal
        const float ea = expf(la - m), eb = expf(lb - m);   // lb = -inf (no key in part B): eb = 0
        l = m + logf(ea + eb);
        wa = ea / (ea + eb);
        wb = eb / (ea + eb);
    }
    __syncwarp();
    if (!live) return;
    if (c == 0) lse[lse_at] = l;
    uint4 u = *reinterpret_cast<const uint4*>(out + row * D + 8 * c);
    const uint4 v = *reinterpret_cast<const uint4*>(out_a + arow * D + 8 * c);
    bf16* ud = reinterpret_cast<bf16*>(&u);
    const bf16* vd = reinterpret_cast<const bf16*>(&v);
#pragma unroll
    for (int e = 0; e < 8; e++) ud[e] = __float2bfloat16(wb * __bfloat162float(ud[e]) + wa * __bfloat162float(vd[e]));
    *reinterpret_cast<uint4*>(out + row * D + 8 * c) = u;
}

static unsigned gen6_blocks(size_t n) { return (unsigned)std::min<size_t>(ceil_div(n, (size_t)256), 8192); }

static void gen6_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    const int d = p.dilation, Ts = ceil_div(T, d), C = NH * D;
    const size_t rows = (size_t)B * d * Ts;
    char* s = (char*)gen6_get_scratch(rows * 4 * C * sizeof(bf16) + rows * NH * sizeof(float));
    bf16* qkv_a = (bf16*)s;                      // (B d, Ts, 3, NH, D)
    bf16* out_a = qkv_a + rows * 3 * C;          // (B d, Ts, NH, D)
    float* lse_a = (float*)(out_a + rows * C);   // (B d, NH, Ts)
    gen6_gather_kernel<<<gen6_blocks(rows * 3 * C / 8), 256>>>(qkv_a, qkv, B, T, d, Ts, 3 * C);
    cudaCheckLaunch();
    const int WA = gen6_band(p);
    if (D == 64) attention_forward11<64>(out_a, lse_a, qkv_a, B * d, Ts, NH, WA, 0);
    else         attention_forward11<128>(out_a, lse_a, qkv_a, B * d, Ts, NH, WA, 0);
    const AttnSpec rest = gen6_rest(p);
    if (D == 64) attention_general4_forward_d<64, true>(out, lse, qkv, B, T, NH, rest);
    else         attention_general4_forward_d<128, true>(out, lse, qkv, B, T, NH, rest);
    const size_t threads = (size_t)B * T * NH * (D / 8);
    gen6_merge_kernel<<<(unsigned)ceil_div(threads, (size_t)256), 256>>>(out, lse, out_a, lse_a, B, T, NH, D, d, Ts);
    cudaCheckLaunch();
}

static void gen6_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                          const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    const int d = p.dilation, Ts = ceil_div(T, d), C = NH * D;
    const size_t rows = (size_t)B * d * Ts;
    char* s = (char*)gen6_get_scratch(rows * 8 * C * sizeof(bf16) + rows * NH * 2 * sizeof(float));
    bf16* qkv_a = (bf16*)s;                       // (B d, Ts, 3, NH, D)
    bf16* dqkv_a = qkv_a + rows * 3 * C;          // (B d, Ts, 3, NH, D)
    bf16* out_a = dqkv_a + rows * 3 * C;          // (B d, Ts, NH, D): the merged out, gathered
    bf16* dout_a = out_a + rows * C;              // (B d, Ts, NH, D)
    float* lse_a = (float*)(dout_a + rows * C);   // (B d, NH, Ts): the merged lse, gathered
    float* dsum_a = lse_a + rows * NH;            // (B d, NH, Ts)
    gen6_gather_kernel<<<gen6_blocks(rows * 3 * C / 8), 256>>>(qkv_a, qkv, B, T, d, Ts, 3 * C);
    cudaCheckLaunch();
    gen6_gather_kernel<<<gen6_blocks(rows * C / 8), 256>>>(out_a, out, B, T, d, Ts, C);
    cudaCheckLaunch();
    gen6_gather_kernel<<<gen6_blocks(rows * C / 8), 256>>>(dout_a, dout, B, T, d, Ts, C);
    cudaCheckLaunch();
    gen6_gather_lse_kernel<<<gen6_blocks(rows * NH), 256>>>(lse_a, lse, B, T, NH, d, Ts);
    cudaCheckLaunch();
    const int WA = gen6_band(p);
    if (D == 64) attention_backward13<64>(dqkv_a, dsum_a, qkv_a, out_a, dout_a, lse_a, B * d, Ts, NH, WA, 0);
    else         attention_backward13<128>(dqkv_a, dsum_a, qkv_a, out_a, dout_a, lse_a, B * d, Ts, NH, WA, 0);
    const AttnSpec rest = gen6_rest(p);
    if (D == 64) attention_general4_backward_d<64, true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, rest);
    else         attention_general4_backward_d<128, true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, rest);
    gen6_scatter_add_kernel<<<gen6_blocks((size_t)B * T * 3 * C / 8), 256>>>(dqkv, dqkv_a, B, T, d, Ts, 3 * C);
    cudaCheckLaunch();
}

// dilated patterns whose keys reach far (gen6_pays) as above; every other one as version 5
static void attention_general6_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen6_can(p, B, T, D) && gen6_pays(p, T)) gen6_forward(out, lse, qkv, B, T, NH, D, p);
    else                    attention_general5_forward(out, lse, qkv, B, T, NH, D, p);
}
static void attention_general6_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                        const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen6_can(p, B, T, D) && gen6_pays(p, T)) gen6_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
    else                    attention_general5_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}
// @copy-end attn-general-v6

// @copy-begin attn-general-v7
// ----------------------------------------------------------------------------
// version 7: the global positions split off and merged by log-sum-exp (the Longformer pattern).
// Version 5 visits, for every 64-query tile, each key tile that holds a global key (1 column of 64
// used), and each tile holding a non-causal global query walks all of T on one block: with 16
// globals the visits per token grow 2.5x from T = 1024 to 16384 and the long walks sit on single
// blocks. Here part 1 is the pattern without its global positions (gen7_band: band, lookahead,
// sinks), on the band kernels (forward v11, backward v13) when it is causal and on version 5's
// kernels otherwise, which then visit only the band's tiles. Part 2 is the pairs the globals add
// (gen7_part2), on CUDA-core kernels over tiles of rows or keys staged in shared memory (GEN7_TILE;
// 64 rows in the narrow forward): a narrow row (any row but a non-causal global query) adds at most
// G keys, its global keys outside its band; a wide row (a non-causal global query) adds every key
// outside its band, a partial (max, sum, weighted values) per key tile merged in a fixed order. out
// and lse are merged as in version 6. The backward runs part 1's backward with the merged out and
// lse (its P and D_i are then the whole pattern's), then adds part 2's gradients: the narrow rows'
// dQ (local to a row), the global keys' dK and dV from the narrow rows (a partial per row tile,
// reduced in order), every key's dK and dV from the wide rows (local to a key), the wide rows' dQ
// (a partial per key tile, reduced in order). Every sum in a fixed order: deterministic. Part 2's
// work is G T pairs a head each way, so the time per token follows the pairs at any T.

#define GEN7_TILE 128   // rows (narrow backward) or keys (wide rows) a part-2 block stages: 4 warps of 32

// part 1: the pattern without its global positions
static AttnSpec gen7_band(const AttnSpec& p) {
    AttnSpec r = p;
    r.num_globals = 0;
    return r;
}

// a wide row: a non-causal global query, which sees every key
__host__ __device__ inline bool gen7_wide(const AttnSpec& p, int i) { return !p.causal && spec_is_global(p, i); }

// global slot g counts once: its position lies in [0, T) and no earlier slot holds it
__host__ __device__ inline bool gen7_slot(const AttnSpec& p, int g, int T) {
    const int pos = p.globals[g];
    if (pos < 0 || pos >= T) return false;
    for (int h = 0; h < g; h++) if (p.globals[h] == pos) return false;
    return true;
}

// part 2: the pairs the pattern allows and its band (p0 = gen7_band(p)) does not. For a narrow row
// they are global keys; for a wide row every key outside p0's row (test/test_attention_walk.cu).
__host__ __device__ inline bool gen7_part2(const AttnSpec& p, const AttnSpec& p0, int i, int j) {
    return spec_allowed(p, i, j) && !spec_allowed(p0, i, j);
}

__device__ inline float gen7_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
    return v;
}

// the slots that count (gen7_slot), and those that are wide rows, as 64-bit sets (one warp's ballots)
__device__ inline void gen7_slot_sets(const AttnSpec& p, int T, unsigned long long& slots, unsigned long long& wide) {
    slots = wide = 0ull;
    #pragma unroll
    for (int kk = 0; kk < 2; kk++) {
        const int g = threadIdx.x % 32 + 32 * kk;
        const bool s = g < p.num_globals && gen7_slot(p, g, T);
        slots |= (unsigned long long)__ballot_sync(0xffffffff, s) << (32 * kk);
        wide |= (unsigned long long)__ballot_sync(0xffffffff, s && gen7_wide(p, p.globals[g])) << (32 * kk);
    }
}

// Rows of a head into shared memory, 16 bytes a thread and step: dst row r (stride SD bf16, even) <-
// the D values at base + (row(r)) * stride, row(r) = r0 + r, or the r-th global position when pos is
// given; zeros for rows past T or slots outside the set.
template<int D>
__device__ inline void gen7_stage(bf16* dst, int SD, const bf16* base, size_t stride, int r0, int n, int T,
                                  const int* pos = nullptr, unsigned long long set = ~0ull) {
    constexpr int V = D / 8;
#pragma unroll 4
    for (int x = threadIdx.x; x < n * V; x += blockDim.x) {
        const int r = x / V, c = x % V, t = pos ? pos[r] : r0 + r;
        uint4 u = make_uint4(0u, 0u, 0u, 0u);
        if (t < T && (!pos || ((set >> r) & 1ull))) u = *reinterpret_cast<const uint4*>(base + (size_t)t * stride + 8 * c);
        unsigned* d = reinterpret_cast<unsigned*>(dst + r * SD + 8 * c);
        d[0] = u.x; d[1] = u.y; d[2] = u.z; d[3] = u.w;
    }
}

// the dot product of two bf16 rows in shared memory (4-byte aligned)
template<int D>
__device__ inline float gen7_dot(const bf16* a, const bf16* b) {
    float s0 = 0.f, s1 = 0.f;
#pragma unroll 8
    for (int e = 0; e < D; e += 4) {
        const float2 a0 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a + e));
        const float2 b0 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(b + e));
        const float2 a1 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a + e + 2));
        const float2 b1 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(b + e + 2));
        s0 += a0.x * b0.x + a0.y * b0.y;
        s1 += a1.x * b1.x + a1.y * b1.y;
    }
    return s0 + s1;
}

// rows of D bf16 in shared memory padded to D + 2: a lane reading its own row and lanes reading one
// row's consecutive values both hit distinct banks (the row stride is an odd number of words)
template<int D> __host__ __device__ constexpr int gen7_sd() { return D + 2; }

// shared memory of the narrow forward: the globals' K and V (G rows), the tile's q and out (64 rows)
template<int D>
static size_t gen7_narrow_fwd_smem(int G) { return (size_t)(2 * G + 2 * 64) * gen7_sd<D>() * sizeof(bf16); }

// narrow rows: out, lse (part 1's, in place) <- merged with each row's global keys outside its band.
// grid (ceil(T / 64), NH, B), 4 warps, each a row at a time, lanes over the global keys.
template<int D>
__global__ void __launch_bounds__(128) gen7_narrow_forward_kernel(bf16* out, float* lse, const bf16* qkv, int T, int NH,
                                                                  AttnSpec p, AttnSpec p0) {
    constexpr int DPL = D / 32, SD = gen7_sd<D>();
    extern __shared__ __align__(16) unsigned char gen7_sh[];
    const int G = p.num_globals;
    bf16* ks = reinterpret_cast<bf16*>(gen7_sh);   // (G, SD) the globals' keys
    bf16* vs = ks + G * SD;                        // (G, SD) and values
    bf16* qs = vs + G * SD;                        // (64, SD) the tile's q
    bf16* os = qs + 64 * SD;                       // (64, SD) and part 1's out
    const int h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = blockIdx.x * 64;
    const size_t C = (size_t)NH * D;
    const float scale = rsqrtf((float)D);
    unsigned long long slots, wide;
    gen7_slot_sets(p, T, slots, wide);
    const bf16* head = qkv + (size_t)b * T * 3 * C + (size_t)h * D;
    gen7_stage<D>(ks, SD, head + C, 3 * C, 0, G, T, p.globals, slots);
    gen7_stage<D>(vs, SD, head + 2 * C, 3 * C, 0, G, T, p.globals, slots);
    gen7_stage<D>(qs, SD, head, 3 * C, r0, 64, T);
    gen7_stage<D>(os, SD, out + (size_t)b * T * C + (size_t)h * D, C, r0, 64, T);
    __syncthreads();
    for (int r = warp; r < 64; r += 4) {
        const int i = r0 + r;
        if (i >= T) break;
        if (gen7_wide(p, i)) continue;   // the wide rows' kernels take it
        bool use[2];
        #pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            const int g = lane + 32 * kk;
            use[kk] = ((slots >> g) & 1ull) && gen7_part2(p, p0, i, p.globals[g]);
        }
        if (!__any_sync(0xffffffff, use[0] || use[1])) continue;   // no global key outside the band
        float s[2];
        #pragma unroll
        for (int kk = 0; kk < 2; kk++) s[kk] = use[kk] ? gen7_dot<D>(qs + r * SD, ks + (lane + 32 * kk) * SD) * scale : -INFINITY;
        const float m = gen7_warp_max(fmaxf(s[0], s[1]));   // finite: some lane has a key
        float ex[2];
        #pragma unroll
        for (int kk = 0; kk < 2; kk++) ex[kk] = use[kk] ? expf(s[kk] - m) : 0.f;
        const float l = general_warp_sum(ex[0] + ex[1]);
        float o[DPL];
#pragma unroll
        for (int k = 0; k < DPL; k++) o[k] = 0.f;
        for (int g = 0; g < G; g++) {   // every slot in order; those without a pair weigh 0
            const float w = __shfl_sync(0xffffffff, g < 32 ? ex[0] : ex[1], g & 31);
            if (w != 0.f) {
#pragma unroll
                for (int k = 0; k < DPL; k++) o[k] += w * __bfloat162float(vs[g * SD + lane + 32 * k]);
            }
        }
        const size_t li = ((size_t)b * NH + h) * T + i;
        const float l1 = lse[li], l2 = m + logf(l), mm = fmaxf(l1, l2);
        const float w1 = expf(l1 - mm), w2 = expf(l2 - mm), inv = 1.f / (w1 + w2);
        bf16* orow = out + ((size_t)b * T + i) * C + (size_t)h * D;
#pragma unroll
        for (int k = 0; k < DPL; k++) {
            const int e = lane + 32 * k;
            orow[e] = __float2bfloat16((w1 * __bfloat162float(os[r * SD + e]) + w2 * o[k] / l) * inv);
        }
        __syncwarp();   // every lane has read lse[li]
        if (lane == 0) lse[li] = mm + logf(w1 + w2);
    }
}

// shared memory of the wide forward: the tile's K and V (GEN7_TILE rows), the wide rows' q (G rows),
// and the 4 warps' partial sums (4, D) fp32
template<int D>
static size_t gen7_wide_fwd_smem(int G) {
    return (size_t)(2 * GEN7_TILE + G) * gen7_sd<D>() * sizeof(bf16) + ((size_t)4 * D + 8) * sizeof(float);
}

// wide rows, forward: one block a (key tile, b h), each warp 32 keys (a key a lane for the scores,
// lanes over dims for the values), each wide row in turn. part (B NH, G, tiles, D + 2): the tile's
// max m, sum l, then the sum of e^(s - m) v (unnormalized).
template<int D>
__global__ void __launch_bounds__(128) gen7_wide_forward_kernel(float* part, const bf16* qkv, int T, int NH,
                                                                AttnSpec p, AttnSpec p0) {
    constexpr int DPL = D / 32, SD = gen7_sd<D>();
    extern __shared__ __align__(16) unsigned char gen7_sh[];
    const int G = p.num_globals;
    bf16* kc = reinterpret_cast<bf16*>(gen7_sh);                     // (GEN7_TILE, SD) the tile's keys
    bf16* vc = kc + GEN7_TILE * SD;                                   // (GEN7_TILE, SD) and values
    bf16* qg = vc + GEN7_TILE * SD;                                   // (G, SD) the wide rows' q
    float* wacc = reinterpret_cast<float*>(qg + G * SD);              // (4, D)
    float* wm = wacc + 4 * D;                                         // (4)
    float* wl = wm + 4;                                               // (4)
    const int c = blockIdx.x, tiles = gridDim.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, j0 = c * GEN7_TILE;
    const size_t C = (size_t)NH * D;
    const float scale = rsqrtf((float)D);
    unsigned long long slots, wide;
    gen7_slot_sets(p, T, slots, wide);
    const bf16* head = qkv + (size_t)b * T * 3 * C + (size_t)h * D;
    gen7_stage<D>(kc, SD, head + C, 3 * C, j0, GEN7_TILE, T);
    gen7_stage<D>(vc, SD, head + 2 * C, 3 * C, j0, GEN7_TILE, T);
    gen7_stage<D>(qg, SD, head, 3 * C, 0, G, T, p.globals, wide);
    __syncthreads();
    const int kr = warp * 32 + lane, j = j0 + kr;   // this lane's key
    for (int g = 0; g < G; g++) {
        if (!((wide >> g) & 1ull)) continue;   // gen7_wide_merge_kernel skips the same slots
        const bool use = j < T && !spec_allowed(p0, p.globals[g], j);   // a wide row sees every key: part 2 is what p0 leaves
        const float s = use ? gen7_dot<D>(qg + g * SD, kc + kr * SD) * scale : -INFINITY;
        const float m = gen7_warp_max(s);   // -inf when no lane has a key
        const float ex = use ? expf(s - m) : 0.f;
        const float l = general_warp_sum(ex);
        float o[DPL];
#pragma unroll
        for (int k = 0; k < DPL; k++) o[k] = 0.f;
        for (int t = 0; t < 32; t++) {
            const float w = __shfl_sync(0xffffffff, ex, t);
            if (w != 0.f) {
#pragma unroll
                for (int k = 0; k < DPL; k++) o[k] += w * __bfloat162float(vc[(warp * 32 + t) * SD + lane + 32 * k]);
            }
        }
        if (lane == 0) { wm[warp] = m; wl[warp] = l; }
#pragma unroll
        for (int k = 0; k < DPL; k++) wacc[warp * D + lane + 32 * k] = o[k];
        __syncthreads();
        const float M = fmaxf(fmaxf(wm[0], wm[1]), fmaxf(wm[2], wm[3]));
        float* dst = part + (((size_t)bh * G + g) * tiles + c) * (D + 2);
        for (int x = threadIdx.x; x < D; x += blockDim.x) {
            float a = 0.f;
            for (int w = 0; w < 4; w++) if (wm[w] > -INFINITY) a += expf(wm[w] - M) * wacc[w * D + x];
            dst[2 + x] = a;
        }
        if (threadIdx.x == 0) {
            float L = 0.f;
            for (int w = 0; w < 4; w++) if (wm[w] > -INFINITY) L += expf(wm[w] - M) * wl[w];
            dst[0] = M;
            dst[1] = L;
        }
        __syncthreads();   // wm, wl, wacc are the next row's
    }
}

// wide rows: out, lse (part 1's) <- merged with the row's tiles in order. grid (G, B NH), one warp.
template<int D>
__global__ void gen7_wide_merge_kernel(bf16* out, float* lse, const float* part, int T, int NH, int tiles, AttnSpec p) {
    constexpr int DPL = D / 32;
    const int g = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, lane = threadIdx.x, i = p.globals[g];
    if (!gen7_slot(p, g, T) || !gen7_wide(p, i)) return;
    const size_t li = (size_t)bh * T + i;
    bf16* orow = out + ((size_t)b * T + i) * NH * D + (size_t)h * D;
    float M = lse[li], L = 1.f, a[DPL];   // part 1 as (m = lse, l = 1, sum = out)
#pragma unroll
    for (int k = 0; k < DPL; k++) a[k] = __bfloat162float(orow[lane + 32 * k]);
    for (int c = 0; c < tiles; c++) {
        const float* src = part + (((size_t)bh * p.num_globals + g) * tiles + c) * (D + 2);
        const float mc = src[0];
        if (mc == -INFINITY) continue;
        const float nm = fmaxf(M, mc), f1 = expf(M - nm), f2 = expf(mc - nm);
        L = L * f1 + src[1] * f2;
#pragma unroll
        for (int k = 0; k < DPL; k++) a[k] = a[k] * f1 + src[2 + lane + 32 * k] * f2;
        M = nm;
    }
#pragma unroll
    for (int k = 0; k < DPL; k++) orow[lane + 32 * k] = __float2bfloat16(a[k] / L);
    __syncwarp();
    if (lane == 0) lse[li] = M + logf(L);
}

// shared memory of the narrow backward: the globals' K and V (G rows), the tile's q, dO and dQ
// (GEN7_TILE rows each), P and dS (GEN7_TILE, G) fp32, the rows' lse and D_i
template<int D>
static size_t gen7_narrow_bwd_smem(int G) {
    return (size_t)(2 * G + 3 * GEN7_TILE) * gen7_sd<D>() * sizeof(bf16) + ((size_t)2 * GEN7_TILE * G + 2 * GEN7_TILE) * sizeof(float);
}

// narrow rows, backward: one block a (tile of GEN7_TILE rows, h, b), 4 warps. First each warp takes
// its 32 rows in turn (lanes over the global keys): P and dS into shared memory, the row's dQ from its
// global keys added to part 1's; then the tile's dK and dV of every global slot, sums over its rows
// in order, go to part_dkv (B NH, tiles, G, 2 D).
template<int D>
__global__ void __launch_bounds__(128) gen7_narrow_backward_kernel(bf16* dqkv, float* part_dkv, const bf16* qkv, const bf16* dout,
                                                                   const float* lse, const float* Dsum, int T, int NH,
                                                                   AttnSpec p, AttnSpec p0) {
    constexpr int DPL = D / 32, SD = gen7_sd<D>();
    extern __shared__ __align__(16) unsigned char gen7_sh[];
    const int G = p.num_globals;
    bf16* ks = reinterpret_cast<bf16*>(gen7_sh);   // (G, SD) the globals' keys
    bf16* vs = ks + G * SD;                        // (G, SD) and values
    bf16* qr = vs + G * SD;                        // (GEN7_TILE, SD) the rows' q
    bf16* gr = qr + GEN7_TILE * SD;                // (GEN7_TILE, SD) dO
    bf16* dqr = gr + GEN7_TILE * SD;               // (GEN7_TILE, SD) and part 1's dQ
    float* ps = reinterpret_cast<float*>(dqr + GEN7_TILE * SD);   // (GEN7_TILE, G) P
    float* dss = ps + GEN7_TILE * G;               // (GEN7_TILE, G) dS
    float* lr = dss + GEN7_TILE * G;               // (GEN7_TILE) lse
    float* dr = lr + GEN7_TILE;                    // (GEN7_TILE) D_i
    const int h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = b * NH + h;
    const int r0 = blockIdx.x * GEN7_TILE;
    const size_t C = (size_t)NH * D;
    const float scale = rsqrtf((float)D);
    unsigned long long slots, wide;
    gen7_slot_sets(p, T, slots, wide);
    const bf16* head = qkv + (size_t)b * T * 3 * C + (size_t)h * D;
    bf16* dhead = dqkv + (size_t)b * T * 3 * C + (size_t)h * D;
    gen7_stage<D>(ks, SD, head + C, 3 * C, 0, G, T, p.globals, slots);
    gen7_stage<D>(vs, SD, head + 2 * C, 3 * C, 0, G, T, p.globals, slots);
    gen7_stage<D>(qr, SD, head, 3 * C, r0, GEN7_TILE, T);
    gen7_stage<D>(gr, SD, dout + (size_t)b * T * C + (size_t)h * D, C, r0, GEN7_TILE, T);
    gen7_stage<D>(dqr, SD, dhead, 3 * C, r0, GEN7_TILE, T);
    for (int r = threadIdx.x; r < GEN7_TILE; r += blockDim.x) {
        const bool in = r0 + r < T;
        lr[r] = in ? lse[(size_t)bh * T + r0 + r] : 0.f;
        dr[r] = in ? Dsum[(size_t)bh * T + r0 + r] : 0.f;
    }
    __syncthreads();
    for (int r = warp * 32; r < warp * 32 + 32; r++) {
        const int i = r0 + r;
        bool use[2] = {false, false};
        if (i < T && !gen7_wide(p, i)) {
            #pragma unroll
            for (int kk = 0; kk < 2; kk++) {
                const int g = lane + 32 * kk;
                use[kk] = ((slots >> g) & 1ull) && gen7_part2(p, p0, i, p.globals[g]);
            }
        }
        float pr[2] = {0.f, 0.f}, ds[2] = {0.f, 0.f};
        #pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            if (use[kk]) {
                const int g = lane + 32 * kk;
                const float s = gen7_dot<D>(qr + r * SD, ks + g * SD) * scale;
                const float dp = gen7_dot<D>(gr + r * SD, vs + g * SD);
                pr[kk] = expf(s - lr[r]);
                ds[kk] = pr[kk] * (dp - dr[r]) * scale;
            }
            if (lane + 32 * kk < G) { ps[r * G + lane + 32 * kk] = pr[kk]; dss[r * G + lane + 32 * kk] = ds[kk]; }
        }
        if (!__any_sync(0xffffffff, use[0] || use[1])) continue;   // the row keeps part 1's dQ
        float dq[DPL];
#pragma unroll
        for (int k = 0; k < DPL; k++) dq[k] = 0.f;
        for (int g = 0; g < G; g++) {   // in slot order, lanes over dims
            const float wd = __shfl_sync(0xffffffff, g < 32 ? ds[0] : ds[1], g & 31);
            if (wd != 0.f) {
#pragma unroll
                for (int k = 0; k < DPL; k++) dq[k] += wd * __bfloat162float(ks[g * SD + lane + 32 * k]);
            }
        }
        bf16* dqrow = dhead + (size_t)i * 3 * C;
#pragma unroll
        for (int k = 0; k < DPL; k++) {
            const int e = lane + 32 * k;
            dqrow[e] = __float2bfloat16(__bfloat162float(dqr[r * SD + e]) + dq[k]);
        }
    }
    __syncthreads();
    // the tile's dK (which = 0) and dV (1) of each slot: sums over the rows in order
    float* dst = part_dkv + ((size_t)bh * gridDim.x + blockIdx.x) * G * 2 * D;
    for (int x = threadIdx.x; x < 2 * G * D; x += blockDim.x) {
        const int which = x / (G * D), g = x / D % G, e = x % D;
        const float* w = which ? ps : dss;
        const bf16* rows = which ? gr : qr;
        float a = 0.f;
        for (int r = 0; r < GEN7_TILE; r++) a += w[r * G + g] * __bfloat162float(rows[r * SD + e]);
        dst[(size_t)g * 2 * D + which * D + e] = a;
    }
}

// the global keys' dK, dV from the narrow rows: part_dkv summed over the row tiles in order, added
// into dqkv. grid (G, B NH), 2 D threads.
template<int D>
__global__ void gen7_narrow_reduce_kernel(bf16* dqkv, const float* part_dkv, int T, int NH, int tiles, AttnSpec p) {
    const int g = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, x = threadIdx.x, G = p.num_globals;
    if (!gen7_slot(p, g, T)) return;
    float a = 0.f;
    for (int c = 0; c < tiles; c++) a += part_dkv[((size_t)bh * tiles + c) * G * 2 * D + (size_t)g * 2 * D + x];
    const size_t C = (size_t)NH * D;
    bf16* el = dqkv + ((size_t)b * T + p.globals[g]) * 3 * C + C + (x < D ? 0 : C) + (size_t)h * D + x % D;
    *el = __float2bfloat16(__bfloat162float(*el) + a);
}

// shared memory of the wide backward: the tile's K and V (GEN7_TILE rows), the wide rows' q and dO
// (G rows each), P and dS (G, GEN7_TILE) fp32, the wide rows' lse and D_i
template<int D>
static size_t gen7_wide_bwd_smem(int G) {
    return (size_t)(2 * GEN7_TILE + 2 * G) * gen7_sd<D>() * sizeof(bf16) + ((size_t)2 * G * GEN7_TILE + 2 * G) * sizeof(float);
}

// wide rows, backward: one block a (key tile, h, b), 4 warps of 32 keys. First the scores, a key a
// lane, each wide row in turn: P and dS into shared memory; then every key's dK, dV from the wide
// rows (sums over the rows in slot order, lanes over dims) added into dqkv, and each wide row's dQ
// over the tile (a sum over its keys in order) into part_dq (B NH, G, tiles, D).
template<int D>
__global__ void __launch_bounds__(128) gen7_wide_backward_kernel(bf16* dqkv, float* part_dq, const bf16* qkv, const bf16* dout,
                                                                 const float* lse, const float* Dsum, int T, int NH,
                                                                 AttnSpec p, AttnSpec p0) {
    constexpr int DPL = D / 32, SD = gen7_sd<D>();
    extern __shared__ __align__(16) unsigned char gen7_sh[];
    const int G = p.num_globals;
    bf16* kc = reinterpret_cast<bf16*>(gen7_sh);   // (GEN7_TILE, SD) the tile's keys
    bf16* vc = kc + GEN7_TILE * SD;                // (GEN7_TILE, SD) and values
    bf16* qg = vc + GEN7_TILE * SD;                // (G, SD) the wide rows' q
    bf16* gg = qg + G * SD;                        // (G, SD) and dO
    float* ps = reinterpret_cast<float*>(gg + G * SD);   // (G, GEN7_TILE) P
    float* dss = ps + G * GEN7_TILE;               // (G, GEN7_TILE) dS
    float* lg = dss + G * GEN7_TILE;               // (G) the wide rows' lse
    float* dg = lg + G;                            // (G) and D_i
    const int h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = b * NH + h;
    const int j0 = blockIdx.x * GEN7_TILE;
    const size_t C = (size_t)NH * D;
    const float scale = rsqrtf((float)D);
    unsigned long long slots, wide;
    gen7_slot_sets(p, T, slots, wide);
    const bf16* head = qkv + (size_t)b * T * 3 * C + (size_t)h * D;
    gen7_stage<D>(kc, SD, head + C, 3 * C, j0, GEN7_TILE, T);
    gen7_stage<D>(vc, SD, head + 2 * C, 3 * C, j0, GEN7_TILE, T);
    gen7_stage<D>(qg, SD, head, 3 * C, 0, G, T, p.globals, wide);
    gen7_stage<D>(gg, SD, dout + (size_t)b * T * C + (size_t)h * D, C, 0, G, T, p.globals, wide);
    for (int g = threadIdx.x; g < G; g += blockDim.x) {
        const bool w = (wide >> g) & 1ull;
        lg[g] = w ? lse[(size_t)bh * T + p.globals[g]] : 0.f;
        dg[g] = w ? Dsum[(size_t)bh * T + p.globals[g]] : 0.f;
    }
    __syncthreads();
    const int kr = warp * 32 + lane, j = j0 + kr;   // this lane's key
    for (int g = 0; g < G; g++) {
        const bool use = ((wide >> g) & 1ull) && j < T && !spec_allowed(p0, p.globals[g], j);
        float pr = 0.f, ds = 0.f;
        if (use) {
            const float s = gen7_dot<D>(qg + g * SD, kc + kr * SD) * scale;
            const float dp = gen7_dot<D>(gg + g * SD, vc + kr * SD);
            pr = expf(s - lg[g]);
            ds = pr * (dp - dg[g]) * scale;
        }
        ps[g * GEN7_TILE + kr] = pr;
        dss[g * GEN7_TILE + kr] = ds;
    }
    __syncthreads();
    // every key's dK, dV from the wide rows: a warp its 32 keys, four at a time, lanes over dims
    for (int t0 = warp * 32; t0 < warp * 32 + 32 && j0 + t0 < T; t0 += 4) {
        float ak[4][DPL], av[4][DPL];
        for (int u = 0; u < 4; u++) {
#pragma unroll
            for (int k = 0; k < DPL; k++) ak[u][k] = av[u][k] = 0.f;
        }
        bool any = false;
        for (int g = 0; g < G; g++) {
            for (int u = 0; u < 4; u++) {
                const float wp = ps[g * GEN7_TILE + t0 + u], wd = dss[g * GEN7_TILE + t0 + u];
                if (wp != 0.f) {
                    any = true;
#pragma unroll
                    for (int k = 0; k < DPL; k++) {
                        ak[u][k] += wd * __bfloat162float(qg[g * SD + lane + 32 * k]);
                        av[u][k] += wp * __bfloat162float(gg[g * SD + lane + 32 * k]);
                    }
                }
            }
        }
        if (!any) continue;
        bf16 cur[4][2][DPL];
        for (int u = 0; u < 4; u++) {
            const bf16* row = dqkv + ((size_t)b * T + j0 + t0 + u) * 3 * C + C + (size_t)h * D;
#pragma unroll
            for (int k = 0; k < DPL; k++) {
                const bool in = j0 + t0 + u < T;
                cur[u][0][k] = in ? row[lane + 32 * k] : __float2bfloat16(0.f);
                cur[u][1][k] = in ? row[C + lane + 32 * k] : __float2bfloat16(0.f);
            }
        }
        for (int u = 0; u < 4; u++) {
            if (j0 + t0 + u >= T) break;
            bf16* row = dqkv + ((size_t)b * T + j0 + t0 + u) * 3 * C + C + (size_t)h * D;
#pragma unroll
            for (int k = 0; k < DPL; k++) {
                row[lane + 32 * k] = __float2bfloat16(__bfloat162float(cur[u][0][k]) + ak[u][k]);
                row[C + lane + 32 * k] = __float2bfloat16(__bfloat162float(cur[u][1][k]) + av[u][k]);
            }
        }
    }
    // each wide row's dQ over the tile's keys, in order
    for (int x = threadIdx.x; x < G * D; x += blockDim.x) {
        const int g = x / D, e = x % D;
        float a = 0.f;
        if ((wide >> g) & 1ull)
            for (int t = 0; t < GEN7_TILE; t++) a += dss[g * GEN7_TILE + t] * __bfloat162float(kc[t * SD + e]);
        part_dq[(((size_t)bh * G + g) * gridDim.x + blockIdx.x) * D + e] = a;
    }
}

// the wide rows' dQ: part_dq summed over the key tiles in order, added into dqkv. grid (G, B NH), D threads.
template<int D>
__global__ void gen7_wide_dq_reduce_kernel(bf16* dqkv, const float* part_dq, int T, int NH, int tiles, AttnSpec p) {
    const int g = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, x = threadIdx.x, i = p.globals[g];
    if (!gen7_slot(p, g, T) || !gen7_wide(p, i)) return;
    float a = 0.f;
    for (int c = 0; c < tiles; c++) a += part_dq[(((size_t)bh * p.num_globals + g) * tiles + c) * D + x];
    bf16* el = dqkv + ((size_t)b * T + i) * 3 * NH * D + (size_t)h * D + x;
    *el = __float2bfloat16(__bfloat162float(*el) + a);
}

// the patterns version 7 takes: global positions and no dilation (dilated patterns with globals stay
// on version 6), heads of 64 or 128, on a Hopper GPU with this binary's sm_90a code (where it was
// measured; its kernels ask for up to 195 KB of shared memory, more than other GPUs have)
static bool gen7_can(const AttnSpec& p, int D) {
    return p.num_globals > 0 && p.dilation <= 1 && p.skip_stride <= 1 && (D == 64 || D == 128) && wgmma_available();
}

// and where it pays (H100, the Longformer pattern, W = R = 256 with 16 globals, 12 x 64, forward +
// backward, ns a token at T = 1024 / 2048 / 4096 / 16384): version 7 103 / 108 / 111 / 114, flat in T;
// version 5 74 / 124 / 161 / 219, growing with the global tiles it visits. So version 7 from T = 2048
// on. Causal patterns with globals (part 1 on the band kernels, no wide rows) were not timed: they
// stay on version 5.
static bool gen7_pays(const AttnSpec& p, int T) { return !p.causal && T >= 2048; }

static bool gen7_has_wide(const AttnSpec& p) { return !p.causal && p.num_globals > 0; }

template<int D>
static void gen7_forward_d(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, const AttnSpec& p) {
    static bool configured = false;
    if (!configured) {   // for the most global slots
        cudaCheck(cudaFuncSetAttribute(gen7_narrow_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)gen7_narrow_fwd_smem<D>(ATTN_MAX_GLOBALS)));
        cudaCheck(cudaFuncSetAttribute(gen7_wide_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)gen7_wide_fwd_smem<D>(ATTN_MAX_GLOBALS)));
        configured = true;
    }
    const AttnSpec p0 = gen7_band(p);
    const int G = p.num_globals;
    if (p0.causal && wgmma_available()) attention_forward11<D>(out, lse, qkv, B, T, NH, p0.window, p0.sinks);
    else                                 attention_general5_forward(out, lse, qkv, B, T, NH, D, p0);
    gen7_narrow_forward_kernel<D><<<dim3(ceil_div(T, 64), NH, B), 128, gen7_narrow_fwd_smem<D>(G)>>>(out, lse, qkv, T, NH, p, p0);
    cudaCheckLaunch();
    if (gen7_has_wide(p)) {
        const int tiles = ceil_div(T, GEN7_TILE);
        float* part = (float*)gen6_get_scratch((size_t)B * NH * G * tiles * (D + 2) * sizeof(float));
        gen7_wide_forward_kernel<D><<<dim3(tiles, B * NH), 128, gen7_wide_fwd_smem<D>(G)>>>(part, qkv, T, NH, p, p0);
        cudaCheckLaunch();
        gen7_wide_merge_kernel<D><<<dim3(G, B * NH), 32>>>(out, lse, part, T, NH, tiles, p);
        cudaCheckLaunch();
    }
}

template<int D>
static void gen7_backward_d(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                            const float* lse, int B, int T, int NH, const AttnSpec& p) {
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(gen7_narrow_backward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)gen7_narrow_bwd_smem<D>(ATTN_MAX_GLOBALS)));
        cudaCheck(cudaFuncSetAttribute(gen7_wide_backward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)gen7_wide_bwd_smem<D>(ATTN_MAX_GLOBALS)));
        configured = true;
    }
    const AttnSpec p0 = gen7_band(p);
    // part 1 with the merged out and lse; it also leaves D_i = rowsum(dO O) in Dsum for part 2
    if (p0.causal && wgmma_available()) attention_backward13<D>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p0.window, p0.sinks);
    else                                 attention_general5_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p0);
    const int G = p.num_globals, tiles = ceil_div(T, GEN7_TILE);
    const size_t dkv_floats = (size_t)B * NH * tiles * G * 2 * D;
    const size_t dq_floats = gen7_has_wide(p) ? (size_t)B * NH * G * tiles * D : 0;
    float* part_dkv = (float*)gen6_get_scratch((dkv_floats + dq_floats) * sizeof(float));
    float* part_dq = part_dkv + dkv_floats;
    gen7_narrow_backward_kernel<D><<<dim3(tiles, NH, B), 128, gen7_narrow_bwd_smem<D>(G)>>>(dqkv, part_dkv, qkv, dout, lse, Dsum,
                                                                                           T, NH, p, p0);
    cudaCheckLaunch();
    gen7_narrow_reduce_kernel<D><<<dim3(G, B * NH), 2 * D>>>(dqkv, part_dkv, T, NH, tiles, p);
    cudaCheckLaunch();
    if (gen7_has_wide(p)) {
        gen7_wide_backward_kernel<D><<<dim3(tiles, NH, B), 128, gen7_wide_bwd_smem<D>(G)>>>(dqkv, part_dq, qkv, dout, lse, Dsum,
                                                                                           T, NH, p, p0);
        cudaCheckLaunch();
        gen7_wide_dq_reduce_kernel<D><<<dim3(G, B * NH), D>>>(dqkv, part_dq, T, NH, tiles, p);
        cudaCheckLaunch();
    }
}

// the split wherever it can run (dev/cuda's main also checks and times it alone, as "v7 split"); every
// other pattern as version 6
static void attention_general7_split_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (!gen7_can(p, D)) { attention_general6_forward(out, lse, qkv, B, T, NH, D, p); return; }
    if (D == 64) gen7_forward_d<64>(out, lse, qkv, B, T, NH, p);
    else         gen7_forward_d<128>(out, lse, qkv, B, T, NH, p);
}
static void attention_general7_split_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                              const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (!gen7_can(p, D)) { attention_general6_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p); return; }
    if (D == 64) gen7_backward_d<64>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p);
    else         gen7_backward_d<128>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p);
}

// the programs' dispatch: the split where it pays, else version 6
static void attention_general7_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen7_pays(p, T)) attention_general7_split_forward(out, lse, qkv, B, T, NH, D, p);
    else                 attention_general6_forward(out, lse, qkv, B, T, NH, D, p);
}
static void attention_general7_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                        const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen7_pays(p, T)) attention_general7_split_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
    else                 attention_general6_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}
// @copy-end attn-general-v7

static const char* ATTENTION_NAME = "sliding window + sinks";

// Layers with a plain causal band (W, 0 = full) plus sinks and heads of 64 or 128 run on the fast
// band kernels; every other pattern of SPEC §1 (dilation, global positions, lookahead, non-causal,
// other head sizes) on the general path of dev/cuda/attention_general.cu: version 5 (version 4's
// wgmma + TMA kernels with 64-bit row masks; sm_90a) or 3 (mma.sync) on the tiles that hold an
// allowed pair for heads of 64 and 128 (on sm_90a version 6 for far-reaching dilated keys, version 7
// for non-causal global positions at T >= 2048), version 2 (one warp a row, walking the allowed
// keys) for the others; all do work in proportion to the allowed pairs.
static bool attention_is_band(const ModelPattern* mp, const AttnPattern* p, int D) {
    return mp->causal && mp->num_globals == 0 && p->dilation == 1 && p->lookahead == 0 && (D == 64 || D == 128);
}

static AttnSpec attention_spec(const ModelPattern* mp, const AttnPattern* p) {
    AttnSpec s;
    memset(&s, 0, sizeof(s));
    s.causal = mp->causal;
    s.window = p->window;
    s.sinks = p->sinks;
    s.lookahead = p->lookahead;
    s.dilation = p->dilation;
    s.dilated_keys = p->dilated_keys;
    s.num_globals = mp->num_globals;
    for (int g = 0; g < mp->num_globals; g++) { s.globals[g] = mp->globals[g]; }
    return s;
}

static void attention_check_pattern(const GPT2Config* c, const char* source) {
    int D = c->channels / c->num_heads;
    if (D > 32 * GEN_DPL) { die("%s: head size %d; %s's attention kernels take at most %d", source, D, TRAINER_NAME, 32 * GEN_DPL); }
    for (int k = 0; k < c->pattern.num_patterns; k++) {
        if (!attention_is_band(&c->pattern, &c->pattern.patterns[k], D)) {
            printf("note: pattern %d runs on the general attention path (%s)\n", k,
                   D == 64 || D == 128 ? "tensor cores on the allowed tiles" : "one warp a row: slower than the band kernels");
        }
    }
}

static void attention_forward(floatX* out, float* lse, const floatX* qkv, int B, int T, int NH, int D,
                              const ModelPattern* mp, const AttnPattern* p) {
    if (!attention_is_band(mp, p, D)) { attention_general7_forward(out, lse, qkv, B, T, NH, D, attention_spec(mp, p)); return; }
    if (D == 64) { attention_forward_best<64>(out, lse, qkv, B, T, NH, p->window, p->sinks); }
    else { attention_forward_best<128>(out, lse, qkv, B, T, NH, p->window, p->sinks); }
    cudaCheckLaunch();
}

static void attention_backward(floatX* dqkv, float* scratch, const floatX* qkv, const floatX* out, const floatX* dout,
                               const float* lse, int B, int T, int NH, int D, const ModelPattern* mp, const AttnPattern* p) {
    if (!attention_is_band(mp, p, D)) {
        attention_general7_backward(dqkv, scratch, qkv, out, dout, lse, B, T, NH, D, attention_spec(mp, p));
        return;
    }
    if (D == 64) { attention_backward_best<64>(dqkv, scratch, qkv, out, dout, lse, B, T, NH, p->window, p->sinks); }
    else { attention_backward_best<128>(dqkv, scratch, qkv, out, dout, lse, B, T, NH, p->window, p->sinks); }
    cudaCheckLaunch();
}
// @twin-end
// ============================================================================

// ----------------------------------------------------------------------------
// the model on the GPU

typedef struct {
    floatX* wte; floatX* wpe; floatX* ln1w; floatX* ln1b; floatX* qkvw; floatX* qkvb; floatX* attprojw; floatX* attprojb;
    floatX* ln2w; floatX* ln2b; floatX* fcw; floatX* fcb; floatX* fcprojw; floatX* fcprojb; floatX* lnfw; floatX* lnfb;
} ParamsX;  // the bf16 copies the forward and backward read, same order as ParameterTensors

typedef struct {
    floatX* encoded;    // (B, T, C)
    floatX* ln1;        // (L, B, T, C)
    float* ln1_mean;    // (L, B, T)
    float* ln1_rstd;    // (L, B, T)
    floatX* qkv;        // (L, B, T, 3C)
    floatX* atty;       // (L, B, T, C)
    float* lse;         // (L, B, NH, T)
    floatX* residual2;  // (L, B, T, C)
    floatX* ln2;        // (L, B, T, C)
    float* ln2_mean;    // (L, B, T)
    float* ln2_rstd;    // (L, B, T)
    floatX* fch;        // (L, B, T, 4C)
    floatX* fch_gelu;   // (L, B, T, 4C)
    floatX* residual3;  // (L, B, T, C)
    floatX* lnf;        // (B, T, C)
    float* lnf_mean;    // (B, T)
    float* lnf_rstd;    // (B, T)
    floatX* logits;     // (B, T, Vp), the logits' gradient after the backward's classifier
    float* losses;      // (B, T)
    // backward scratch
    floatX* dresidual;  // (B, T, C)
    floatX* dbuf;       // (B, T, 4C): d(fch_gelu), then d(fch) in place; then dqkv
    floatX* dbuf_c;     // (B, T, C): d(ln2), d(atty), d(ln1) in turn
    float* attn_scratch;  // (B, NH, T): the attention backward's rowsum(dout * out)
    int* inputs;        // (B, T)
    int* targets;       // (B, T)
} ActsGPU;

typedef struct {
    GPT2Config config;
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    // The optimizer's shard (ZeRO-1, -z 1): this process keeps the master weights and AdamW moments
    // of parameters [shard_offset, shard_offset + shard_own) only, and updates only those; the
    // others come back through an all-gather of the bf16 weights. Every rank's part is shard_size
    // long (the last one padded), so gradients and bf16 weights hold world * shard_size entries, the
    // padding zero. Without ZeRO-1 the shard is the whole model.
    int zero;                  // -z: set before gpt2_gpu_build
    size_t shard_offset, shard_own, shard_size, padded_parameters;
    float* master;          // (shard_size) float32 weights
    floatX* params_memory;  // (padded_parameters) bf16 copies, all of them
    ParamsX params;
    float* grads_memory;    // (padded_parameters)
    ParameterTensors grads;
    float* m_memory;        // (shard_size)
    float* v_memory;        // (shard_size)
    size_t activation_bytes;  // what gpt2_gpu_allocate took, for the memory line
    cudaEvent_t grads_ready;  // recorded on the compute stream, waited for by the communication stream
    ActsGPU acts;
    int B, T;
    float* norm_partial;    // (NORM_BLOCKS)
    int* host_inputs;       // (B, T)
    float* host_losses;     // (B, T)
    int* host_grouping;     // tokens, token_segs, seg_starts, positions of the embedding backward
    int* dev_grouping;      // the same on the GPU
    int* host_count;        // (V + 1)
    float* emb_seg_sums;    // (segments, C): per-segment sums of the embedding backward
    float* rope_cos_sin;    // (2, T, hs/2) rotary positions only
} GPT2GPU;

static void point_parameters_x(ParamsX* p, const size_t* sizes, floatX* memory) {
    floatX** ptrs[] = {&p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw, &p->attprojb,
                       &p->ln2w, &p->ln2b, &p->fcw, &p->fcb, &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb};
    floatX* it = memory;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { *ptrs[i] = it; it += sizes[i]; }
}

// The model from float32 host parameters (all of them): the shard's master weights, the bf16 copies
// of all, zeroed gradients and moments.
static void gpt2_gpu_build(GPT2GPU* model, const float* host, const char* source) {
    const GPT2Config* c = &model->config;
    attention_check_pattern(c, source);
    fill_in_parameter_sizes(model->param_sizes, c);
    size_t n = count_parameters(c);
    model->num_parameters = n;
    size_t parts = model->zero ? (size_t)multi.world : 1;
    // parts of whole 32-byte sectors (8 floats) each, so that every rank's part starts aligned
    model->shard_size = parts == 1 ? n : ((n + parts - 1) / parts + 7) / 8 * 8;
    model->padded_parameters = model->shard_size * parts;
    model->shard_offset = parts == 1 ? 0 : model->shard_size * multi.rank;
    size_t lo = model->shard_offset, shard = model->shard_size;
    model->shard_own = lo >= n ? 0 : (n - lo < shard ? n - lo : shard);
    size_t padded = model->padded_parameters;
    cudaCheck(cudaMalloc(&model->master, shard * sizeof(float)));
    cudaCheck(cudaMalloc(&model->params_memory, padded * sizeof(floatX)));
    cudaCheck(cudaMalloc(&model->grads_memory, padded * sizeof(float)));
    cudaCheck(cudaMalloc(&model->m_memory, shard * sizeof(float)));
    cudaCheck(cudaMalloc(&model->v_memory, shard * sizeof(float)));
    cudaCheck(cudaMemset(model->master, 0, shard * sizeof(float)));
    cudaCheck(cudaMemset(model->m_memory, 0, shard * sizeof(float)));
    cudaCheck(cudaMemset(model->v_memory, 0, shard * sizeof(float)));
    cudaCheck(cudaMemset(model->params_memory, 0, padded * sizeof(floatX)));
    // the bf16 copies of all the weights, through the gradients' memory (zeroed after)
    cudaCheck(cudaMemcpy(model->grads_memory, host, n * sizeof(float), cudaMemcpyHostToDevice));
    float_to_bf16_kernel<<<ceil_div(n, 256), 256>>>(model->params_memory, model->grads_memory, n);
    cudaCheckLaunch();
    cudaCheck(cudaMemset(model->grads_memory, 0, padded * sizeof(float)));
    cudaCheck(cudaMemcpy(model->master, host + lo, model->shard_own * sizeof(float), cudaMemcpyHostToDevice));
    point_parameters_x(&model->params, model->param_sizes, model->params_memory);
    point_parameters(&model->grads, model->param_sizes, model->grads_memory);
    cudaCheck(cudaMalloc(&model->norm_partial, NORM_BLOCKS * sizeof(float)));
    cudaCheck(cudaEventCreateWithFlags(&model->grads_ready, cudaEventDisableTiming));
}

static void gpt2_gpu_allocate(GPT2GPU* model, int B, int T) {
    const GPT2Config* c = &model->config;
    size_t L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size, BT = (size_t)B * T;
    ActsGPU* a = &model->acts;
    if (C % 8 != 0) { die("channels %zu: the kernels read 8 channels at a time, so C must be a multiple of 8", C); }
    // bf16 activations in one allocation, float32 statistics in another, each buffer a (pointer,
    // elements) pair, laid out in this order
    struct { floatX** ptr; size_t n; } xs[] = {
        {&a->encoded, BT * C}, {&a->ln1, L * BT * C}, {&a->qkv, L * BT * 3 * C}, {&a->atty, L * BT * C},
        {&a->residual2, L * BT * C}, {&a->ln2, L * BT * C}, {&a->fch, L * BT * 4 * C}, {&a->fch_gelu, L * BT * 4 * C},
        {&a->residual3, L * BT * C}, {&a->lnf, BT * C}, {&a->logits, BT * Vp}, {&a->dresidual, BT * C},
        {&a->dbuf, BT * 4 * C}, {&a->dbuf_c, BT * C}};
    struct { float** ptr; size_t n; } fs[] = {
        {&a->ln1_mean, L * BT}, {&a->ln1_rstd, L * BT}, {&a->lse, L * B * NH * T}, {&a->ln2_mean, L * BT},
        {&a->ln2_rstd, L * BT}, {&a->lnf_mean, BT}, {&a->lnf_rstd, BT}, {&a->losses, BT}, {&a->attn_scratch, (size_t)B * NH * T}};
    const size_t nxs = sizeof(xs) / sizeof(xs[0]), nfs = sizeof(fs) / sizeof(fs[0]);
    size_t nx = 0, nf = 0;
    for (size_t i = 0; i < nxs; i++) { nx += xs[i].n; }
    for (size_t i = 0; i < nfs; i++) { nf += fs[i].n; }
    floatX* xmem;
    float* fmem;
    cudaCheck(cudaMalloc(&xmem, nx * sizeof(floatX)));
    cudaCheck(cudaMalloc(&fmem, nf * sizeof(float)));
    model->activation_bytes = nx * sizeof(floatX) + nf * sizeof(float);
    for (size_t i = 0; i < nxs; i++) { *xs[i].ptr = xmem; xmem += xs[i].n; }
    for (size_t i = 0; i < nfs; i++) { *fs[i].ptr = fmem; fmem += fs[i].n; }
    cudaCheck(cudaMalloc(&a->inputs, BT * sizeof(int)));
    cudaCheck(cudaMalloc(&a->targets, BT * sizeof(int)));
    // scratch for the fixed-order reductions: column sums and layernorm partials
    size_t partial = (size_t)SUM_CHUNKS * (Vp > 4 * C ? Vp : 4 * C);
    if (C > 256 * LN_MAX_CHUNKS) { die("channels %zu: the layernorm kernels take at most %d", C, 256 * LN_MAX_CHUNKS); }
    size_t ln_partial = layernorm_backward_partial_floats((int)BT, (int)C);
    size_t scratch = (partial > ln_partial ? partial : ln_partial) * sizeof(float);
    if (scratch > scratch_partial_bytes) {  // shared by every model of the process (the tests build several): only grows
        if (scratch_partial) { cudaCheck(cudaFree(scratch_partial)); }
        cudaCheck(cudaMalloc(&scratch_partial, scratch));
        scratch_partial_bytes = scratch;
    }
    model->host_inputs = (int*)malloc_check(BT * sizeof(int));
    model->host_losses = (float*)malloc_check(BT * sizeof(float));
    // segments: at most one per distinct token plus one per EMB_SEGMENT positions
    size_t max_segments = (BT < (size_t)c->vocab_size ? BT : (size_t)c->vocab_size) + BT / EMB_SEGMENT + 1;
    size_t grouping_ints = 2 * BT + 2 * max_segments + 2;
    model->host_grouping = (int*)malloc_check(grouping_ints * sizeof(int));
    model->host_count = (int*)malloc_check((c->vocab_size + 1) * sizeof(int));
    cudaCheck(cudaMalloc(&model->dev_grouping, grouping_ints * sizeof(int)));
    cudaCheck(cudaMalloc(&model->emb_seg_sums, max_segments * C * sizeof(float)));
    if (c->rope) {
        size_t table = (size_t)T * (C / NH);
        float* host_table = (float*)malloc_check(table * sizeof(float));
        rope_table(host_table, 0, T, (int)(C / NH), c->rope_theta);
        cudaCheck(cudaMalloc(&model->rope_cos_sin, table * sizeof(float)));
        cudaCheck(cudaMemcpy(model->rope_cos_sin, host_table, table * sizeof(float), cudaMemcpyHostToDevice));
        free(host_table);
    }
    model->B = B;
    model->T = T;
}

// Forward; with dloss != 0 the classifier also leaves d(loss)/d(logits) in acts.logits for the backward.
static void gpt2_gpu_forward(GPT2GPU* model, const int* inputs, const int* targets, float dloss) {
    const GPT2Config* c = &model->config;
    int B = model->B, T = model->T, L = c->num_layers, NH = c->num_heads, C = c->channels;
    int V = c->vocab_size, Vp = c->padded_vocab_size, D = C / NH, BT = B * T;
    for (int i = 0; i < BT; i++) {
        if (inputs[i] < 0 || inputs[i] >= V || targets[i] < 0 || targets[i] >= V) {
            die("token %d / target %d at position %d is outside the vocabulary 0..%d", inputs[i], targets[i], i, V - 1);
        }
    }
    memcpy(model->host_inputs, inputs, BT * sizeof(int));
    ActsGPU* a = &model->acts;
    ParamsX p = model->params;
    cudaCheck(cudaMemcpy(a->inputs, inputs, BT * sizeof(int), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(a->targets, targets, BT * sizeof(int), cudaMemcpyHostToDevice));
    encoder_forward_kernel<<<ceil_div((size_t)BT * C, 256), 256>>>(a->encoded, a->inputs, p.wte, c->rope ? NULL : p.wpe, BT, T, C);
    cudaCheckLaunch();
    for (int l = 0; l < L; l++) {
        size_t o = (size_t)l * BT;
        const floatX* residual = l == 0 ? a->encoded : a->residual3 + (o - BT) * C;
        const AttnPattern* pat = &c->pattern.patterns[c->pattern.layer_pattern[l]];
        layernorm_forward(a->ln1 + o * C, a->ln1_mean + o, a->ln1_rstd + o, residual, p.ln1w + l * C, p.ln1b + l * C, BT, C);
        matmul_forward(a->qkv + o * 3 * C, a->ln1 + o * C, p.qkvw + (size_t)l * 3 * C * C, p.qkvb + l * 3 * C, NULL, BT, C, 3 * C);
        if (c->rope) {  // in place: the qkv matmul's backward needs no unrotated q, k
            rope_kernel<<<ceil_div((size_t)BT * C, 256), 256>>>(a->qkv + o * 3 * C, model->rope_cos_sin, BT, T, C, NH, 1.0f);
            cudaCheckLaunch();
        }
        attention_forward(a->atty + o * C, a->lse + (size_t)l * B * NH * T, a->qkv + o * 3 * C, B, T, NH, D, &c->pattern, pat);
        matmul_forward(a->residual2 + o * C, a->atty + o * C, p.attprojw + (size_t)l * C * C, p.attprojb + l * C, residual, BT, C, C);
        layernorm_forward(a->ln2 + o * C, a->ln2_mean + o, a->ln2_rstd + o, a->residual2 + o * C, p.ln2w + l * C, p.ln2b + l * C, BT, C);
        matmul_forward_gelu(a->fch_gelu + o * 4 * C, a->fch + o * 4 * C, a->ln2 + o * C, p.fcw + (size_t)l * 4 * C * C,
                            p.fcb + l * 4 * C, BT, C, 4 * C);
        matmul_forward(a->residual3 + o * C, a->fch_gelu + o * 4 * C, p.fcprojw + (size_t)l * C * 4 * C, p.fcprojb + l * C,
                       a->residual2 + o * C, BT, 4 * C, C);
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->residual3 + (size_t)(L - 1) * BT * C, p.lnfw, p.lnfb, BT, C);
    matmul_forward(a->logits, a->lnf, p.wte, NULL, NULL, BT, C, Vp);
    if (Vp <= CLS_SMEM_MAX_VP) {
        static size_t smem_allowed = 48 * 1024;  // above the default 48 KB a kernel must opt in
        size_t smem = (size_t)Vp * sizeof(floatX);
        if (smem > smem_allowed) {
            cudaCheck(cudaFuncSetAttribute(classifier_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
            smem_allowed = smem;
        }
        classifier_smem_kernel<<<BT, CLS_THREADS, smem>>>(a->logits, a->losses, a->targets, dloss, V, Vp);
    } else {
        classifier_kernel<<<BT, 256>>>(a->logits, a->losses, a->targets, dloss, V, Vp);
    }
    cudaCheckLaunch();
}

// The mean loss of the last forward. Reading it waits for the GPU, so the training loop asks only
// after the backward is queued.
static float gpt2_gpu_mean_loss(GPT2GPU* model) {
    int BT = model->B * model->T;
    cudaCheck(cudaMemcpy(model->host_losses, model->acts.losses, BT * sizeof(float), cudaMemcpyDeviceToHost));
    double sum = 0.0;  // on the host, in order: the same loss every run
    for (int i = 0; i < BT; i++) { sum += model->host_losses[i]; }
    return (float)(sum / BT);
}

static void gpt2_gpu_zero_grad(GPT2GPU* model) {
    cudaCheck(cudaMemset(model->grads_memory, 0, model->padded_parameters * sizeof(float)));
}

// ----------------------------------------------------------------------------
// the gradients' all-reduce, overlapped with the backward. A layer's gradients are complete when its
// iteration of the backward loop ends (the one slice another layer's backward writes, fcprojb's,
// comes from the layer above: done earlier). So, with several GPUs and no ZeRO-1, the backward
// hands each layer's slices to the communication stream as soon as they are done, one NCCL group per
// layer, and computes the layers below meanwhile; the embeddings and the final LayerNorm, done last,
// follow. The same calls in the same order every step: the sums are deterministic. ZeRO-1's
// reduce-scatter, whose shards are ranges of the flat gradients and not layers, stays after the
// backward (gpt2_gpu_reduce_grads).

// llm.c's order: wte, wpe, then the twelve per-layer tensors (L, ...), then lnfw, lnfb (used with NCCL)
[[maybe_unused]] static int tensor_is_per_layer(int k) { return k >= 2 && k < NUM_PARAMETER_TENSORS - 2; }

// Sums layer l's slices of the per-layer gradient tensors across the processes (l < 0: the other
// tensors, whole), on the communication stream, after what the compute stream has queued so far.
static void gpt2_gpu_reduce_async(GPT2GPU* model, int l) {
#ifdef USE_NCCL
    cudaCheck(cudaEventRecord(model->grads_ready, 0));
    cudaCheck(cudaStreamWaitEvent(multi.comm_stream, model->grads_ready, 0));
    int L = model->config.num_layers;
    ncclCheck(ncclGroupStart());  // one launch for the layer's slices
    size_t offset = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        size_t sz = model->param_sizes[k];
        if (sz > 0 && tensor_is_per_layer(k) == (l >= 0)) {
            size_t part = l >= 0 ? sz / L : sz;
            float* at = model->grads_memory + offset + (l >= 0 ? (size_t)l * part : 0);
            ncclCheck(ncclAllReduce(at, at, part, ncclFloat, ncclSum, multi.comm, multi.comm_stream));
        }
        offset += sz;
    }
    ncclCheck(ncclGroupEnd());
#else
    (void)model, (void)l;
#endif
}

// The backward of the last forward (which must have had dloss != 0); adds into the gradients. With
// reduce, each layer's gradients are summed across the processes as soon as they are complete
// (several GPUs without ZeRO-1, the last micro-step: gpt2_gpu_reduce_grads then waits for the end).
static void gpt2_gpu_backward(GPT2GPU* model, int reduce) {
    const GPT2Config* c = &model->config;
    int B = model->B, T = model->T, L = c->num_layers, NH = c->num_heads, C = c->channels;
    int Vp = c->padded_vocab_size, D = C / NH, BT = B * T;
    ActsGPU* a = &model->acts;
    ParamsX p = model->params;
    ParameterTensors g = model->grads;
    floatX* dres = a->dresidual;
    cudaCheck(cudaMemset(dres, 0, (size_t)BT * C * sizeof(floatX)));
    // classifier and final LayerNorm; acts.logits holds d(loss)/d(logits)
    matmul_backward(a->dbuf, g.wte, NULL, a->logits, a->lnf, p.wte, BT, C, Vp);
    // the sums of each LayerNorm's updated dres are the bias gradient of the projection that wrote
    // that residual (fcproj for residual3, attproj for residual2): no pass of their own over dres
    layernorm_backward(dres, g.lnfw, g.lnfb, g.fcprojb + (size_t)(L - 1) * C, scratch_partial, a->dbuf,
                       a->residual3 + (size_t)(L - 1) * BT * C, p.lnfw, a->lnf_mean, a->lnf_rstd, BT, C);
    for (int l = L - 1; l >= 0; l--) {
        size_t o = (size_t)l * BT;
        const floatX* residual = l == 0 ? a->encoded : a->residual3 + (o - BT) * C;
        const AttnPattern* pat = &c->pattern.patterns[c->pattern.layer_pattern[l]];
        // dres holds d(residual3) of this layer; residual3 = residual2 + fcproj, so it is also d(residual2)'s start
        matmul_backward(a->dbuf, g.fcprojw + (size_t)l * C * 4 * C, NULL, dres, a->fch_gelu + o * 4 * C,
                        p.fcprojw + (size_t)l * C * 4 * C, BT, 4 * C, C, a->fch + o * 4 * C);  // dbuf = d(fch)
        floatX* dln2 = a->dbuf_c;
        matmul_backward(dln2, g.fcw + (size_t)l * 4 * C * C, g.fcb + l * 4 * C, a->dbuf, a->ln2 + o * C,
                        p.fcw + (size_t)l * 4 * C * C, BT, C, 4 * C);
        layernorm_backward(dres, g.ln2w + l * C, g.ln2b + l * C, g.attprojb + l * C, scratch_partial, dln2,
                           a->residual2 + o * C, p.ln2w + l * C, a->ln2_mean + o, a->ln2_rstd + o, BT, C);
        // attention block: residual2 = residual + attproj(atty)
        floatX* datty = a->dbuf_c;
        matmul_backward(datty, g.attprojw + (size_t)l * C * C, NULL, dres, a->atty + o * C,
                        p.attprojw + (size_t)l * C * C, BT, C, C);
        floatX* dqkv = a->dbuf;
        attention_backward(dqkv, a->attn_scratch, a->qkv + o * 3 * C, a->atty + o * C, datty,
                           a->lse + (size_t)l * B * NH * T, B, T, NH, D, &c->pattern, pat);
        if (c->rope) {
            rope_kernel<<<ceil_div((size_t)BT * C, 256), 256>>>(dqkv, model->rope_cos_sin, BT, T, C, NH, -1.0f);
            cudaCheckLaunch();
        }
        floatX* dln1 = a->dbuf_c;
        matmul_backward(dln1, g.qkvw + (size_t)l * 3 * C * C, g.qkvb + l * 3 * C, dqkv, a->ln1 + o * C,
                        p.qkvw + (size_t)l * 3 * C * C, BT, C, 3 * C);
        layernorm_backward(dres, g.ln1w + l * C, g.ln1b + l * C, l > 0 ? g.fcprojb + (l - 1) * C : NULL,
                           scratch_partial, dln1, residual, p.ln1w + l * C, a->ln1_mean + o, a->ln1_rstd + o, BT, C);
        if (reduce) { gpt2_gpu_reduce_async(model, l); }  // layer l's gradients are done
    }
    // embeddings: positions grouped by token on the host (a counting sort), each token's list cut
    // into segments: tokens (nu), token_segs (nu + 1), seg_starts (nseg + 1), positions (BT)
    int V = c->vocab_size;
    int* count = model->host_count;
    memset(count, 0, (V + 1) * sizeof(int));
    for (int i = 0; i < BT; i++) { count[model->host_inputs[i] + 1]++; }
    for (int v = 0; v < V; v++) { count[v + 1] += count[v]; }
    int* tokens = model->host_grouping;
    int nu = 0, nseg = 0;
    for (int v = 0; v < V; v++) { if (count[v + 1] > count[v]) { tokens[nu++] = v; } }
    int* token_segs = tokens + nu;
    int* seg_starts = token_segs + nu + 1;
    for (int u = 0; u < nu; u++) {
        token_segs[u] = nseg;
        for (int k = count[tokens[u]]; k < count[tokens[u] + 1]; k += EMB_SEGMENT) { seg_starts[nseg++] = k; }
    }
    token_segs[nu] = nseg;
    seg_starts[nseg] = BT;
    int* positions = seg_starts + nseg + 1;
    for (int i = 0; i < BT; i++) { positions[count[model->host_inputs[i]]++] = i; }  // count[v] walks v's slots
    size_t n_ints = (size_t)(positions + BT - tokens);
    cudaCheck(cudaMemcpy(model->dev_grouping, tokens, n_ints * sizeof(int), cudaMemcpyHostToDevice));
    int* dev = model->dev_grouping;
    int* dev_positions = dev + (positions - tokens);
    encoder_backward_segment_kernel<<<nseg, 96>>>(model->emb_seg_sums, dres, dev + (seg_starts - tokens), dev_positions, C);
    cudaCheckLaunch();
    encoder_backward_wte_kernel<<<nu, 256>>>(g.wte, model->emb_seg_sums, dev, dev + nu, C);
    cudaCheckLaunch();
    if (!c->rope) {
        encoder_backward_wpe_kernel<<<ceil_div((size_t)T * C, 256), 256>>>(g.wpe, dres, B, T, C);
        cudaCheckLaunch();
    }
    if (reduce) { gpt2_gpu_reduce_async(model, -1); }  // the embeddings and lnf
}

// The gradients summed across the processes: all of them on every process (all-reduce: started layer
// by layer by the backward, this waits for its end), or with ZeRO-1 each process's shard on that
// process (reduce-scatter, in place: the shard's sums land at their own offset). A no-op on one GPU.
static void gpt2_gpu_reduce_grads(GPT2GPU* model) {
    if (multi.world == 1) { return; }
#ifdef USE_NCCL
    if (model->zero) {
        float* grads = model->grads_memory;
        ncclCheck(ncclReduceScatter(grads, grads + model->shard_offset, model->shard_size, ncclFloat, ncclSum, multi.comm, 0));
        return;
    }
#endif
    // started by the backward (gpt2_gpu_backward with reduce): the compute stream waits for its end
    cudaCheck(cudaEventRecord(model->grads_ready, multi.comm_stream));
    cudaCheck(cudaStreamWaitEvent(0, model->grads_ready, 0));
}

// The global gradient norm, on the host (the training guard and the clipping both need it): over
// the shard's summed gradients (all of them without ZeRO-1), and with ZeRO-1 the shards' squares
// summed across the processes, so every process gets the same norm and all skip a step or none.
static float gpt2_gpu_grad_norm(GPT2GPU* model) {
    grad_norm_partial_kernel<<<NORM_BLOCKS, 256>>>(model->norm_partial, model->grads_memory + model->shard_offset, model->shard_own);
    cudaCheckLaunch();
    float partial[NORM_BLOCKS];
    cudaCheck(cudaMemcpy(partial, model->norm_partial, sizeof(partial), cudaMemcpyDeviceToHost));
    double sum = 0.0;
    for (int i = 0; i < NORM_BLOCKS; i++) { sum += partial[i]; }
    if (model->zero && multi.world > 1) { sum = multi_gpu_host_sum((float)sum); }
    return (float)sqrt(sum);
}

// One AdamW step (t from 1) of the shard, given the gradient norm (gpt2_gpu_grad_norm) for
// clipping; with ZeRO-1 the processes then all-gather their shards' new bf16 weights.
static void gpt2_gpu_update(GPT2GPU* model, float lr, float beta1, float beta2, float eps, float weight_decay,
                            float grad_clip, int t, float norm) {
    float clip_scale = 1.0f;
    if (grad_clip > 0.0f) { clip_scale = fminf(1.0f, grad_clip / (norm + 1e-6f)); }
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
    size_t lo = model->shard_offset, hi = lo + model->shard_own, offset = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {  // each tensor's part in the shard: decay is per tensor
        size_t sz = model->param_sizes[k];
        size_t a = offset > lo ? offset : lo, b = offset + sz < hi ? offset + sz : hi;
        if (a < b) {
            adamw_kernel<<<ceil_div(b - a, 256), 256>>>(model->master + (a - lo), model->params_memory + a,
                model->m_memory + (a - lo), model->v_memory + (a - lo), model->grads_memory + a, b - a, lr, beta1, beta2,
                eps, param_is_decayed[k] ? weight_decay : 0.0f, clip_scale, bc1, bc2);
            cudaCheckLaunch();
        }
        offset += sz;
    }
#ifdef USE_NCCL
    if (model->zero && multi.world > 1) {  // in place: this process's part is already at its offset
        floatX* params = model->params_memory;
        ncclCheck(ncclAllGather(params + lo, params, model->shard_size, ncclBfloat16, multi.comm, 0));
    }
#endif
}

// A sharded float32 vector (the master weights or a moment), whole, into host (n floats; NULL on
// the processes that only help): an all-gather through the gradients' memory, which is free
// between an update and the next step's zeroing. Every process must call it.
static void gpt2_gpu_gather(GPT2GPU* model, const float* shard, float* host) {
    size_t n = model->num_parameters;
    const float* whole = shard;
#ifdef USE_NCCL
    if (model->zero && multi.world > 1) {
        ncclCheck(ncclAllGather(shard, model->grads_memory, model->shard_size, ncclFloat, multi.comm, 0));
        whole = model->grads_memory;
    }
#endif
    if (host) { cudaCheck(cudaMemcpy(host, whole, n * sizeof(float), cudaMemcpyDeviceToHost)); }
}

// What this process keeps on its GPU, by kind: the figures ZeRO-1 changes, and the measured total
static void print_memory(const GPT2GPU* model) {
    const double GiB = 1073741824.0;
    size_t free_bytes, total_bytes;
    cudaCheck(cudaMemGetInfo(&free_bytes, &total_bytes));
    printf("GPU memory by kind: bf16 weights %.2f GiB, fp32 gradients %.2f GiB, fp32 master weights and moments %.2f GiB%s, "
           "activations %.2f GiB\n", model->padded_parameters * sizeof(floatX) / GiB, model->padded_parameters * sizeof(float) / GiB,
           3.0 * model->shard_size * sizeof(float) / GiB, model->zero && multi.world > 1 ? " (ZeRO-1: this GPU's shard)" : "",
           model->activation_bytes / GiB);
    printf("GPU memory in use: %.2f GiB of %.2f GiB\n", (total_bytes - free_bytes) / GiB, total_bytes / GiB);
}

// ----------------------------------------------------------------------------
// generation through a rolling KV cache (train_gpt_cpu's kv_cache_step, in bf16 on the GPU)
// A windowed layer keeps its S sinks and a ring of its last W keys and values: memory per layer is
// fixed, and with rotary positions the stream runs past the training length. A full layer keeps
// every position up to maxT. Patterns the cache does not cover (dilation, global positions,
// lookahead, non-causal) sample by recomputing the context.

typedef struct {
    int capacity;         // entries per layer: S + W for a windowed layer, up to maxT for a full one
    int position;         // of the next token
    floatX* k;            // (L, capacity, C)
    floatX* v;            // (L, capacity, C)
    int* dev_pos;         // (L, capacity) the position each entry holds, -1 while empty
    float* scores;        // (NH, capacity)
    float* cos_sin;       // (2, hs/2) the rotation of the current position
    float* host_cos_sin;  // (2, hs/2)
} KVCache;

static int kv_cache_covers(const GPT2Config* c) {
    if (!c->pattern.causal || c->pattern.num_globals > 0) { return 0; }
    for (int k = 0; k < c->pattern.num_patterns; k++) {
        const AttnPattern* p = &c->pattern.patterns[k];
        if (p->dilation != 1 || p->lookahead != 0) { return 0; }
    }
    return 1;
}

// Where position p lives in a layer's cache: the sinks first, then a ring of W slots.
__host__ __device__ inline int kv_ring_slot(int window, int sinks, int p) {
    if (window == 0 || p < sinks) { return p; }
    return sinks + (p - sinks) % window;
}
static int kv_slot(const AttnPattern* pat, int p) { return kv_ring_slot(pat->window, pat->sinks, p); }

// max_tokens bounds a full layer's entries: no more positions than the caller will feed.
static void kv_cache_init(KVCache* kc, const GPT2Config* c, int max_tokens) {
    int cap = 1;
    for (int l = 0; l < c->num_layers; l++) {
        const AttnPattern* p = &c->pattern.patterns[c->pattern.layer_pattern[l]];
        long long need = p->window == 0 ? c->max_seq_len : (long long)p->sinks + p->window;  // both up to 2^30
        if (need > max_tokens) { need = max_tokens; }
        if (need > cap) { cap = (int)need; }
    }
    size_t L = c->num_layers, C = c->channels, NH = c->num_heads, hs = C / NH;
    kc->capacity = cap;
    kc->position = 0;
    cudaCheck(cudaMalloc(&kc->k, L * cap * C * sizeof(floatX)));
    cudaCheck(cudaMalloc(&kc->v, L * cap * C * sizeof(floatX)));
    cudaCheck(cudaMalloc(&kc->dev_pos, L * cap * sizeof(int)));
    cudaCheck(cudaMalloc(&kc->scores, NH * cap * sizeof(float)));
    cudaCheck(cudaMalloc(&kc->cos_sin, hs * sizeof(float)));
    kc->host_cos_sin = (float*)malloc_check(hs * sizeof(float));
    cudaCheck(cudaMemset(kc->dev_pos, 0xFF, L * cap * sizeof(int)));  // all-ones bytes: -1, every entry empty
}

static void kv_cache_free(KVCache* kc) {
    cudaCheck(cudaFree(kc->k));
    cudaCheck(cudaFree(kc->v));
    cudaCheck(cudaFree(kc->dev_pos));
    cudaCheck(cudaFree(kc->scores));
    cudaCheck(cudaFree(kc->cos_sin));
    free(kc->host_cos_sin);
}

// One query, the newest position t, against a layer's cache; one block per head. The scores of
// the entries the pattern allows, a float32 softmax, then the weighted sum of the values.
__global__ void decode_attention_kernel(floatX* out, float* scores, const floatX* qkv, const floatX* k_cache,
                                        const floatX* v_cache, const int* pos, int capacity, int t, int window,
                                        int sinks, int C, int NH) {
    // out (C), scores (NH, capacity), qkv (3C): q is [0, C); k_cache, v_cache (capacity, C); pos (capacity)
    __shared__ float shared[32];
    int h = blockIdx.x, hs = C / NH;
    float* sc = scores + (size_t)h * capacity;
    const floatX* q = qkv + h * hs;
    float scale = rsqrtf((float)hs);
    float local = -INFINITY;
    for (int e = threadIdx.x; e < capacity; e += blockDim.x) {
        int j = pos[e];
        float s = -INFINITY;
        if (j >= 0 && j <= t && (window == 0 || t - j < window || j < sinks)) {
            const floatX* k = k_cache + (size_t)e * C + h * hs;
            float dot = 0.0f;
            for (int d = 0; d < hs; d++) { dot += __bfloat162float(q[d]) * __bfloat162float(k[d]); }
            s = dot * scale;
        }
        sc[e] = s;
        local = fmaxf(local, s);
    }
    float m = block_reduce_ordered(local, true, shared);
    float sum = 0.0f;
    for (int e = threadIdx.x; e < capacity; e += blockDim.x) {
        float p = sc[e] == -INFINITY ? 0.0f : expf(sc[e] - m);
        sc[e] = p;
        sum += p;
    }
    float total = block_reduce_ordered(sum, false, shared);  // its barriers also publish sc to the whole block
    for (int d = threadIdx.x; d < hs; d += blockDim.x) {
        float acc = 0.0f;
        for (int e = 0; e < capacity; e++) {
            if (sc[e] != 0.0f) { acc += sc[e] * __bfloat162float(v_cache[(size_t)e * C + h * hs + d]); }
        }
        out[h * hs + d] = __float2bfloat16(acc / total);
    }
}

// Feeds one token at the cache's next position through row 0 of the model's activations and leaves
// its logits (Vp) in acts.logits. Returns 0 past what the model can take (learned positions, or a
// full layer's maxT).
static int kv_cache_step(GPT2GPU* model, KVCache* kc, int token) {
    const GPT2Config* c = &model->config;
    int L = c->num_layers, NH = c->num_heads, C = c->channels, Vp = c->padded_vocab_size, t = kc->position;
    if (!c->rope && t >= c->max_seq_len) { return 0; }
    for (int l = 0; l < L; l++) {
        if (c->pattern.patterns[c->pattern.layer_pattern[l]].window == 0 && t >= kc->capacity) { return 0; }
    }
    if (token < 0 || token >= c->vocab_size) { die("token %d is outside the vocabulary 0..%d", token, c->vocab_size - 1); }
    ActsGPU* a = &model->acts;
    ParamsX p = model->params;
    cudaCheck(cudaMemcpy(a->inputs, &token, sizeof(int), cudaMemcpyHostToDevice));
    encoder_forward_kernel<<<ceil_div(C, 256), 256>>>(a->encoded, a->inputs, p.wte, c->rope ? NULL : p.wpe + (size_t)t * C, 1, 1, C);
    cudaCheckLaunch();
    if (c->rope) {
        rope_table(kc->host_cos_sin, t, 1, C / NH, c->rope_theta);
        cudaCheck(cudaMemcpy(kc->cos_sin, kc->host_cos_sin, (C / NH) * sizeof(float), cudaMemcpyHostToDevice));
    }
    const floatX* x = a->encoded;  // (C) the residual stream
    for (int l = 0; l < L; l++) {
        const AttnPattern* pat = &c->pattern.patterns[c->pattern.layer_pattern[l]];
        layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p.ln1w + l * C, p.ln1b + l * C, 1, C);
        matmul_forward(a->qkv, a->ln1, p.qkvw + (size_t)l * 3 * C * C, p.qkvb + l * 3 * C, NULL, 1, C, 3 * C);
        if (c->rope) {
            rope_kernel<<<ceil_div(C, 256), 256>>>(a->qkv, kc->cos_sin, 1, 1, C, NH, 1.0f);
            cudaCheckLaunch();
        }
        size_t entry = (size_t)l * kc->capacity + kv_slot(pat, t);
        cudaCheck(cudaMemcpyAsync(kc->k + entry * C, a->qkv + C, C * sizeof(floatX), cudaMemcpyDeviceToDevice));
        cudaCheck(cudaMemcpyAsync(kc->v + entry * C, a->qkv + 2 * C, C * sizeof(floatX), cudaMemcpyDeviceToDevice));
        cudaCheck(cudaMemcpy(kc->dev_pos + entry, &t, sizeof(int), cudaMemcpyHostToDevice));
        size_t layer = (size_t)l * kc->capacity;
        decode_attention_kernel<<<NH, 128>>>(a->atty, kc->scores, a->qkv, kc->k + layer * C, kc->v + layer * C,
                                             kc->dev_pos + layer, kc->capacity, t, pat->window, pat->sinks, C, NH);
        cudaCheckLaunch();
        matmul_forward(a->residual2, a->atty, p.attprojw + (size_t)l * C * C, p.attprojb + l * C, x, 1, C, C);
        layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->residual2, p.ln2w + l * C, p.ln2b + l * C, 1, C);
        matmul_forward_gelu(a->fch_gelu, a->fch, a->ln2, p.fcw + (size_t)l * 4 * C * C, p.fcb + l * 4 * C, 1, C, 4 * C);
        matmul_forward(a->residual3, a->fch_gelu, p.fcprojw + (size_t)l * C * 4 * C, p.fcprojb + l * C, a->residual2, 1, 4 * C, C);
        x = a->residual3;
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, p.lnfw, p.lnfb, 1, C);
    matmul_forward(a->logits, a->lnf, p.wte, NULL, NULL, 1, C, Vp);
    kc->position++;
    return 1;
}

// Samples from a row of bf16 logits on the GPU (V of them used) with the host's softmax.
static int sample_logits(const floatX* dev_row, int V, floatX* host_row, float* probs, uint64_t* rng) {
    cudaCheck(cudaMemcpy(host_row, dev_row, V * sizeof(floatX), cudaMemcpyDeviceToHost));
    float m = -INFINITY;
    for (int v = 0; v < V; v++) { m = fmaxf(m, __bfloat162float(host_row[v])); }
    double sum = 0.0;
    for (int v = 0; v < V; v++) { probs[v] = expf(__bfloat162float(host_row[v]) - m); sum += probs[v]; }
    for (int v = 0; v < V; v++) { probs[v] = (float)(probs[v] / sum); }
    return sample_from(probs, V, random_f32(rng));
}

// Samples n tokens after a start token: through the KV cache where it covers the pattern, else by
// re-running the forward on the growing context (every batch row holds the same tokens; row 0 is
// read), as train_gpt_cpu does.
static void gpt2_gpu_generate(GPT2GPU* model, int n, uint64_t* rng, const Tokenizer* tk) {
    const GPT2Config* c = &model->config;
    int B = model->B, T = model->T, V = c->vocab_size, Vp = c->padded_vocab_size;
    int start = V > 256 ? 50256 : '\n';  // GPT-2's end-of-text, or a newline for bytes
    if (start >= V) { start = 0; }
    floatX* row = (floatX*)malloc_check(V * sizeof(floatX));
    float* probs = (float*)malloc_check(V * sizeof(float));
    if (kv_cache_covers(c)) {
        KVCache kc;
        kv_cache_init(&kc, c, n);
        int token = start, made = 0;
        while (made < n && kv_cache_step(model, &kc, token)) {
            token = sample_logits(model->acts.logits, V, row, probs, rng);
            print_token(tk, V, token);
            fflush(stdout);
            made++;
        }
        printf("\n");
        if (made < n) { fprintf(stderr, "note: generated %d tokens, not %d: learned positions (or a full layer) stop at maxT %d\n", made, n, c->max_seq_len); }
        kv_cache_free(&kc);
        free(row); free(probs);
        return;
    }
    if (n > T - 1) {
        fprintf(stderr, "note: generating %d tokens, not %d: the context is -t %d (this pattern has no KV cache)\n", T - 1, n, T);
        n = T - 1;
    }
    int* tokens = (int*)malloc_check((size_t)B * T * sizeof(int));
    int* targets = (int*)calloc_check((size_t)B * T, sizeof(int));
    for (int i = 0; i < B * T; i++) { tokens[i] = start; }
    for (int t = 1; t <= n; t++) {
        gpt2_gpu_forward(model, tokens, targets, 0.0f);
        int next = sample_logits(model->acts.logits + (size_t)(t - 1) * Vp, V, row, probs, rng);
        for (int b = 0; b < B; b++) { tokens[(size_t)b * T + t] = next; }
        print_token(tk, V, next);
        fflush(stdout);
    }
    printf("\n");
    free(tokens); free(targets); free(row); free(probs);
}

// ----------------------------------------------------------------------------
// training

// Allowed (query, key) pairs of a causal band W (0 = full) plus S sinks over T positions: SPEC §1's
// FLOP count is on these, never on T x T.
static double band_pairs(int T, int W, int S) {
    double pairs = 0.0;
    for (int i = 0; i < T; i++) {
        int band = W == 0 ? i + 1 : (i + 1 < W ? i + 1 : W);
        int sinks_outside = W == 0 ? 0 : (S < i - W + 1 ? S : i - W + 1);
        pairs += band + (sinks_outside > 0 ? sinks_outside : 0);
    }
    return pairs;
}

// FLOPs of one training step's forward + backward per token: 6 per matmul weight (the embedding
// table counts once, as the classifier) plus attention's 3.5 x 4 x P x D per head and layer.
static double flops_per_token(const GPT2Config* c, int T) {
    double C = c->channels, L = c->num_layers, matmul_weights = L * 12.0 * C * C + (double)c->padded_vocab_size * C;
    double attention = 0.0;
    for (int l = 0; l < c->num_layers; l++) {
        const AttnPattern* p = &c->pattern.patterns[c->pattern.layer_pattern[l]];
        attention += 3.5 * 4.0 * band_pairs(T, p->window, p->sinks) * C;  // C = NH x D
    }
    return 6.0 * matmul_weights + attention / T;
}

static const double PEAK_BF16_FLOPS = 989.5e12;  // H100 / H200 SXM dense bf16, for MFU

// The mean loss of the first `batches` val batches; with position_sums (T) it also adds each
// token's loss to the sum of its position.
static float gpu_evaluate(GPT2GPU* model, DataLoader* val, int batches, double* position_sums) {
    dataloader_reset(val);
    float sum = 0.0f;
    for (int i = 0; i < batches; i++) {
        dataloader_next_batch(val);
        gpt2_gpu_forward(model, val->inputs, val->targets, 0.0f);
        sum += gpt2_gpu_mean_loss(model);  // also brings the (B, T) token losses to host_losses
        for (int bt = 0; position_sums && bt < val->B * val->T; bt++) { position_sums[bt % val->T] += model->host_losses[bt]; }
    }
    return sum / batches;
}

// This process's rows of the next global batch into inputs, targets (B, T): the processes read
// consecutive B*T blocks in rank order, so WORLD_SIZE processes with -b B see the rows one process
// with -b WORLD_SIZE*B would (except at a shard's end, where a rank whose block no longer fits moves
// on to the next shard alone), and all of them end each batch at the same position (the one a
// checkpoint's state records). The blocks of the later ranks overwrite the loader's buffers.
static void dataloader_next_rank_batch(DataLoader* d, int* inputs, int* targets) {
    for (int r = 0; r < multi.rank; r++) { dataloader_next_batch(d); }
    dataloader_next_batch(d);
    memcpy(inputs, d->inputs, (size_t)d->B * d->T * sizeof(int));
    memcpy(targets, d->targets, (size_t)d->B * d->T * sizeof(int));
    for (int r = multi.rank + 1; r < multi.world; r++) { dataloader_next_batch(d); }
}

// --stream through the rolling KV cache: losses[t] is the loss of targets[t] after inputs[0..t],
// from the bf16 logits (train_gpt_cpu's stream_losses_cached)
static void gpu_stream_cached(GPT2GPU* model, const int* inputs, const int* targets, int n, double* losses) {
    const GPT2Config* c = &model->config;
    if (!kv_cache_covers(c)) {
        die("--stream: the KV cache covers causal patterns without global positions or dilation; use --stream-recompute W");
    }
    int V = c->vocab_size;
    KVCache kc;
    kv_cache_init(&kc, c, n);
    floatX* row = (floatX*)malloc_check(V * sizeof(floatX));
    for (int t = 0; t < n; t++) {
        if (!kv_cache_step(model, &kc, inputs[t])) {
            die("--stream %d: the cache stops at position %d (learned positions, or a full layer, end at maxT %d); "
                "a rotary model with windowed layers streams on", n, t, c->max_seq_len);
        }
        cudaCheck(cudaMemcpy(row, model->acts.logits, V * sizeof(floatX), cudaMemcpyDeviceToHost));
        float m = -INFINITY;
        for (int v = 0; v < V; v++) { m = fmaxf(m, __bfloat162float(row[v])); }
        double sum = 0.0;
        for (int v = 0; v < V; v++) { sum += exp((double)__bfloat162float(row[v]) - m); }
        losses[t] = log(sum) + m - __bfloat162float(row[targets[t]]);
    }
    free(row);
    kv_cache_free(&kc);
}

// --stream-recompute W: losses[t] from a fresh forward over the W tokens that end at t (over tokens
// 0..t while t < W), as many windows a forward as STREAM_TOKENS allow (at least one, at most 64);
// the last batch's spare rows repeat its first
#define STREAM_TOKENS 65536
static void gpu_stream_recompute(GPT2GPU* model, const int* inputs, const int* targets, int n, int W, double* losses) {
    int rows_per_forward = W >= STREAM_TOKENS ? 1 : (STREAM_TOKENS / W < 64 ? STREAM_TOKENS / W : 64);
    gpt2_gpu_allocate(model, rows_per_forward, W);
    int* in = (int*)malloc_check((size_t)rows_per_forward * W * sizeof(int));  // (rows, W)
    int* tg = (int*)malloc_check((size_t)rows_per_forward * W * sizeof(int));  // (rows, W)
    int windows = n - W + 1;  // window k holds tokens k..k+W-1 and gives the loss at t = k+W-1
    for (int k0 = 0; k0 < windows; k0 += rows_per_forward) {
        int rows = windows - k0 < rows_per_forward ? windows - k0 : rows_per_forward;
        for (int r = 0; r < rows_per_forward; r++) {
            int k = k0 + (r < rows ? r : 0);
            memcpy(in + (size_t)r * W, inputs + k, W * sizeof(int));
            memcpy(tg + (size_t)r * W, targets + k, W * sizeof(int));
        }
        gpt2_gpu_forward(model, in, tg, 0.0f);
        gpt2_gpu_mean_loss(model);  // brings the (rows, W) token losses to host_losses
        for (int r = 0; r < rows; r++) {
            int first = k0 + r == 0 ? 0 : W - 1;  // window 0 also gives positions 0..W-2
            for (int i = first; i < W; i++) { losses[k0 + r + i] = model->host_losses[(size_t)r * W + i]; }
        }
    }
    free(in);
    free(tg);
}

// --eval-greedy K on a batch of rows (B, T), in place: position T-K+j becomes the argmax of the bf16
// logits after positions 0..T-K-1+j, for j = 0..K-1, and top (B, K) its logit. By re-running the
// forward (train_gpt_cpu's greedy_decode): the path of the patterns the KV cache does not cover,
// and the check of the cached path (--greedy-recompute 1).
// the first largest of a row's V bf16 logits (on the host): both decoding paths break ties alike
static int argmax_bf16(const floatX* logits, int V) {
    int best = 0;
    for (int v = 1; v < V; v++) { if (__bfloat162float(logits[v]) > __bfloat162float(logits[best])) { best = v; } }
    return best;
}

static void gpu_greedy_decode(GPT2GPU* model, int* rows, float* top, int B, int T, int K) {
    int V = model->config.vocab_size;
    size_t Vp = model->config.padded_vocab_size;
    floatX* logits = (floatX*)malloc_check(V * sizeof(floatX));
    int* targets = (int*)calloc_check((size_t)B * T, sizeof(int));  // unused: no loss is wanted
    for (int j = 0; j < K; j++) {
        gpt2_gpu_forward(model, rows, targets, 0.0f);
        int pos = T - K - 1 + j;
        for (int b = 0; b < B; b++) {
            cudaCheck(cudaMemcpy(logits, model->acts.logits + ((size_t)b * T + pos) * Vp, V * sizeof(floatX), cudaMemcpyDeviceToHost));
            int best = argmax_bf16(logits, V);
            rows[(size_t)b * T + pos + 1] = best;
            top[(size_t)b * K + j] = __bfloat162float(logits[best]);
        }
    }
    free(logits);
    free(targets);
}

// Copies one row's keys and values of positions 0..n-1 into a layer's cache: qkv_row (n, 3C), K at
// [C, 2C) and V at [2C, 3C) of each position (rotated where positions are rotary); k_cache, v_cache
// (capacity, C); pos (capacity). A windowed layer keeps its sinks and its last W positions (an
// earlier one's slot belongs to a later one), a full layer every position.
__global__ void kv_cache_fill_kernel(floatX* k_cache, floatX* v_cache, int* pos, const floatX* qkv_row, int n,
                                     int window, int sinks, int C) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)n * C) { return; }
    int p = (int)(idx / C), ch = (int)(idx % C);
    if (window > 0 && p >= sinks && p < n - window) { return; }
    int slot = kv_ring_slot(window, sinks, p);
    k_cache[(size_t)slot * C + ch] = qkv_row[(size_t)p * 3 * C + C + ch];
    v_cache[(size_t)slot * C + ch] = qkv_row[(size_t)p * 3 * C + 2 * C + ch];
    if (ch == 0) { pos[slot] = p; }
}

// The same through the rolling KV cache, as --generate decodes (train_gpt_cpu's
// greedy_decode_cached): one forward over the batch leaves every layer's keys and values of each
// row's prompt in acts.qkv (a causal position's keys do not depend on the answer tokens after it);
// they fill the row's cache, and the K answer tokens are decoded one at a time by kv_cache_step.
// kv_cache_step works in row 0 of the activations (layer 0's first position), so each row's cache
// is filled from the forward before that row's first step overwrites anything it reads.
// The cache can decode rows of T: it covers the pattern, and a full layer, which keeps every
// position up to maxT, holds the T - 1 positions fed (a rotary model may be evaluated past maxT;
// kv_cache_fill_kernel writes slot p of a full layer for every p < T - K - 1 without a bound).
static int greedy_cache_fits(const GPT2Config* c, int T) {
    if (!kv_cache_covers(c)) { return 0; }
    for (int l = 0; l < c->num_layers; l++) {
        if (c->pattern.patterns[c->pattern.layer_pattern[l]].window == 0 && c->max_seq_len < T - 1) { return 0; }
    }
    return 1;
}

static void gpu_greedy_decode_cached(GPT2GPU* model, int* rows, float* top, int B, int T, int K) {
    const GPT2Config* c = &model->config;
    int V = c->vocab_size, C = c->channels, L = c->num_layers;
    int n = T - K - 1;  // positions 0..n-1 come from the forward; the prompt's last token (n) is stepped
    floatX* logits = (floatX*)malloc_check(V * sizeof(floatX));
    int* targets = (int*)calloc_check((size_t)B * T, sizeof(int));  // unused: no loss is wanted
    gpt2_gpu_forward(model, rows, targets, 0.0f);
    KVCache kc;
    kv_cache_init(&kc, c, T);
    for (int b = 0; b < B; b++) {
        cudaCheck(cudaMemset(kc.dev_pos, 0xFF, (size_t)L * kc.capacity * sizeof(int)));  // every entry empty (-1)
        for (int l = 0; l < L && n > 0; l++) {
            const AttnPattern* pat = &c->pattern.patterns[c->pattern.layer_pattern[l]];
            const floatX* qkv_row = model->acts.qkv + ((size_t)l * B + b) * T * 3 * C;  // (T, 3C)
            size_t layer = (size_t)l * kc.capacity;
            kv_cache_fill_kernel<<<ceil_div((size_t)n * C, 256), 256>>>(kc.k + layer * C, kc.v + layer * C, kc.dev_pos + layer,
                                                                          qkv_row, n, pat->window, pat->sinks, C);
            cudaCheckLaunch();
        }
        kc.position = n;
        int* row = rows + (size_t)b * T;
        for (int j = 0; j < K; j++) {
            if (!kv_cache_step(model, &kc, row[n + j])) { die("--eval-greedy: the KV cache stops at position %d", n + j); }
            cudaCheck(cudaMemcpy(logits, model->acts.logits, V * sizeof(floatX), cudaMemcpyDeviceToHost));
            int best = argmax_bf16(logits, V);
            row[n + j + 1] = best;
            top[(size_t)b * K + j] = __bfloat162float(logits[best]);
        }
    }
    kv_cache_free(&kc);
    free(logits);
    free(targets);
}

// A checkpoint of the whole model and optimizer, whatever the sharding (so a ZeRO-1 run's files
// load on one GPU, or resume on another number of them). Every process calls it: with ZeRO-1 each
// sends its shard; rank 0 writes.
static void gpu_save(GPT2GPU* model, const char* dir, const TrainState* st) {
    if (multi.rank != 0 && !(model->zero && multi.world > 1)) { return; }  // nothing to send
    size_t n = model->num_parameters;
    int writer = multi.rank == 0;
    float* host = writer ? (float*)malloc_check(n * sizeof(float)) : NULL;
    float* m = writer ? (float*)malloc_check(n * sizeof(float)) : NULL;
    float* v = writer ? (float*)malloc_check(n * sizeof(float)) : NULL;
    gpt2_gpu_gather(model, model->master, host);
    gpt2_gpu_gather(model, model->m_memory, m);
    gpt2_gpu_gather(model, model->v_memory, v);
    if (!writer) { return; }
    char path[4200];
    snprintf(path, sizeof(path), "%s/model_%08d.bin", dir, st->step);
    checkpoint_write(path, &model->config, host, n);
    snprintf(path, sizeof(path), "%s/state_%08d.bin", dir, st->step);
    state_save(path, st, m, v, n);
    printf("checkpoint written: %s/model_%08d.bin\n", dir, st->step);
    free(host); free(m); free(v);
}

#ifndef TESTING  // test/test_gpt_gpu.cu includes this file for its checks and has its own main
int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);  // step lines reach a log file as they are printed, also when the run is killed
    Args a;
    parse_args(&a, argc, argv);  // -h and bad flags answer without touching a GPU
    multi_gpu_init(&a);
    if (multi.rank != 0 && !freopen("/dev/null", "w", stdout)) { die("cannot silence rank %d's output", multi.rank); }
    cudaDeviceProp props;
    cudaCheck(cudaGetDeviceProperties(&props, multi.local_rank));
    cublasCheck(cublasLtCreate(&lt_handle));
    cudaCheck(cudaMalloc(&lt_workspace, LT_WORKSPACE_BYTES));
    GPT2GPU model;
    memset(&model, 0, sizeof(model));
    model.zero = a.zero;
    int resume_step, from_checkpoint;
    size_t n;
    float* host = model_from_args(&a, &model.config, &n, &resume_step, &from_checkpoint);
    char source_path[4200];
    gpt2_gpu_build(&model, host, model_source(&a, resume_step, source_path, sizeof(source_path)));
    free(host);
    uint64_t rng = a.seed ^ 0x9E3779B97F4A7C15ull;  // the sampler's, kept in the state as on the CPU
    Tokenizer tokenizer = {0, NULL};
    if (a.tokenizer) { tokenizer_load(&tokenizer, a.tokenizer); }
    if (a.eval) {  // the val loss of a checkpoint: nothing trained, nothing written but the positions' CSV
        if (!from_checkpoint) { die("--eval: -e '%s' is a new model; name a checkpoint file", a.init); }
        if (a.stream) {  // one long stream, e.g. 8x the training length (StreamingLLM's test)
            DataLoader stream;
            stream_open(&a, model.config.vocab_size, &stream);
            double* losses = (double*)malloc_check((size_t)a.stream * sizeof(double));
            if (a.stream_recompute) {
                gpu_stream_recompute(&model, stream.inputs, stream.targets, a.stream, a.stream_recompute, losses);
            } else {
                gpt2_gpu_allocate(&model, 1, 1);  // the cache's one-token steps
                gpu_stream_cached(&model, stream.inputs, stream.targets, a.stream, losses);
            }
            if (multi.rank == 0) { stream_report(&a, losses, a.stream, a.T); }  // blocks of -t, the training length
            free(losses);
            dataloader_free(&stream);
            tokenizer_free(&tokenizer);
            multi_gpu_finish();
            return 0;
        }
        DataLoader val;
        dataloader_init(&val, a.val_pattern, a.B, a.T, model.config.vocab_size, "-j");
        int batches = val_batches_to_use(&a, &val);
        double* position_sums = a.eval_positions ? (double*)calloc_check(a.T, sizeof(double)) : NULL;
        gpt2_gpu_allocate(&model, a.B, a.T);
        if (a.eval_greedy) {  // e.g. passkey retrieval: rows that end in their answer
            int* rows = (int*)malloc_check((size_t)a.B * a.T * sizeof(int));  // (B, T)
            float* top = (float*)malloc_check((size_t)a.B * a.eval_greedy * sizeof(float));  // (B, K)
            char tmp[4300];
            FILE* rows_csv = multi.rank == 0 ? greedy_rows_open(&a, tmp, sizeof(tmp)) : NULL;
            int exact = 0;
            int cached = greedy_cache_fits(&model.config, a.T) && !a.greedy_recompute;
            printf("eval: '%s' on '%s', %d batches of %d rows of %d tokens, the last %d decoded greedily %s\n",
                   a.init, a.val_pattern, batches, a.B, a.T, a.eval_greedy,
                   cached ? "through the KV cache" : "by re-running the forward");
            for (int i = 0; i < batches; i++) {
                dataloader_next_batch(&val);
                memcpy(rows, val.inputs, (size_t)a.B * a.T * sizeof(int));
                if (cached) { gpu_greedy_decode_cached(&model, rows, top, a.B, a.T, a.eval_greedy); }
                else { gpu_greedy_decode(&model, rows, top, a.B, a.T, a.eval_greedy); }
                exact += greedy_score(rows_csv, i * a.B, rows, val.inputs, top, a.B, a.T, a.eval_greedy);
            }
            greedy_report(&a, rows_csv, tmp, exact, batches * a.B);
            free(rows);
            free(top);
            dataloader_free(&val);
            tokenizer_free(&tokenizer);
            multi_gpu_finish();
            return 0;
        }
        printf("eval: '%s' on '%s', %d batches of %d x %d tokens\n", a.init, a.val_pattern, batches, a.B, a.T);
        printf("val loss %.6f\n", gpu_evaluate(&model, &val, batches, position_sums));
        if (position_sums && multi.rank == 0) {
            position_losses_write(a.eval_positions, position_sums, a.T, (size_t)batches * a.B);
            printf("mean loss per position written: %s\n", a.eval_positions);
        }
        free(position_sums);
        dataloader_free(&val);
        tokenizer_free(&tokenizer);
        multi_gpu_finish();
        return 0;
    }
    if (a.generate) {
        if (!model.config.pattern.causal) { die("--generate: a non-causal model cannot generate left to right"); }
        gpt2_gpu_allocate(&model, 1, a.T);
        gpt2_gpu_generate(&model, a.generate, &rng, &tokenizer);
        tokenizer_free(&tokenizer);
        multi_gpu_finish();
        return 0;
    }
    int tokens_per_micro = a.B * a.T;  // per GPU
    int total_batch;
    int accum = accumulation_steps(&a, multi.world, &total_batch);
    DataLoader train, val;
    dataloader_init(&train, a.train_pattern, a.B, a.T, model.config.vocab_size, "-i");
    dataloader_init(&val, a.val_pattern, a.B, a.T, model.config.vocab_size, "-j");
    gpt2_gpu_allocate(&model, a.B, a.T);
    printf("device: %s; attention: %s (%s)\n", props.name, ATTENTION_NAME, attention_kernels());
    default_schedule(&a, &model.config);
    print_config(&model.config, model.num_parameters, &a, accum);
    int val_batches = val_batches_to_use(&a, &val);
    if (multi.world > 1) { printf("GPUs: %d processes (%s), each -b %d; the total batch %d tokens\n", multi.world, multi.launcher, a.B, total_batch); }
    print_memory(&model);

    int start_step = 0;
    if (resume_step >= 0) {
        size_t np = model.num_parameters;
        float* m = (float*)malloc_check(np * sizeof(float));
        float* v = (float*)malloc_check(np * sizeof(float));
        start_step = resume_from_state(&a, resume_step, total_batch, model.param_sizes, m, v, &train, &rng);
        // the state file holds the whole optimizer: each process takes its shard (all of it without ZeRO-1)
        cudaCheck(cudaMemcpy(model.m_memory, m + model.shard_offset, model.shard_own * sizeof(float), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(model.v_memory, v + model.shard_offset, model.shard_own * sizeof(float), cudaMemcpyHostToDevice));
        free(m); free(v);
    }
    StepGuard guard = {.z = a.skip_z};
    FILE* log = multi.rank == 0 && start_step < a.steps ? log_open(&a, resume_step) : NULL;
    double step_flops = flops_per_token(&model.config, a.T) * total_batch;
    int* rank_inputs = (int*)malloc_check((size_t)tokens_per_micro * sizeof(int));   // (B, T)
    int* rank_targets = (int*)malloc_check((size_t)tokens_per_micro * sizeof(int));  // (B, T)
    for (int step = start_step; step < a.steps; step++) {
        double t0 = now_seconds();
        gpt2_gpu_zero_grad(&model);
        float loss = 0.0f;
        for (int micro = 0; micro < accum; micro++) {
            dataloader_next_rank_batch(&train, rank_inputs, rank_targets);
            gpt2_gpu_forward(&model, rank_inputs, rank_targets, 1.0f / ((float)tokens_per_micro * accum * multi.world));
            gpt2_gpu_backward(&model, multi.world > 1 && !model.zero && micro == accum - 1);  // the sums once, when complete
            loss += gpt2_gpu_mean_loss(&model) / accum;
        }
        gpt2_gpu_reduce_grads(&model);
        loss = multi_gpu_mean(loss);
        float lr = learning_rate_at(step, a.steps, a.warmup, a.lr, a.final_lr_frac);
        float norm = gpt2_gpu_grad_norm(&model);  // the same on every GPU (summed gradients): all skip or none
        if (step_guard(&guard, step + 1, loss, norm)) {
            gpt2_gpu_update(&model, lr, 0.9f, 0.95f, 1e-8f, a.weight_decay, a.grad_clip, step + 1, norm);
        }
        cudaCheck(cudaDeviceSynchronize());
        double ms = (now_seconds() - t0) * 1000.0;
        double tok_s = total_batch / (ms / 1000.0);
        double mfu = step_flops / (ms / 1000.0) / (PEAK_BF16_FLOPS * multi.world);
        printf("step %4d/%d | loss %.6f | norm %.4f | lr %.2e | %.2f ms | %.0f tok/s | MFU %.1f%%\n",
               step + 1, a.steps, loss, norm, lr, ms, tok_s, 100.0 * mfu);
        float val_loss = -1.0f;
        if (is_val_step(&a, step + 1)) {
            val_loss = gpu_evaluate(&model, &val, val_batches, NULL);
            printf("val loss %.6f\n", val_loss);
        }
        log_step(log, step + 1, loss, val_loss, lr, ms, tok_s);
        if (is_sample_step(&a, step + 1) && model.config.pattern.causal && multi.rank == 0) {
            printf("---\n");
            gpt2_gpu_generate(&model, a.gen_tokens, &rng, &tokenizer);
            printf("---\n");
        }
        if (is_checkpoint_step(&a, step + 1)) {  // every process: ZeRO-1's shards come to rank 0
            TrainState st = {step + 1, a.B, a.T, total_batch, train.shard_index, train.position, rng};
            gpu_save(&model, a.out_dir, &st);
        }
    }
    if (log) { fclose(log); }
    free(rank_inputs); free(rank_targets);
    dataloader_free(&train);
    dataloader_free(&val);
    tokenizer_free(&tokenizer);
    multi_gpu_finish();
    return 0;
}
#endif
