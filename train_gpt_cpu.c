/*
GPT-2 training on the CPU in float32, with the attention patterns of SPEC §1:
sliding window, attention sinks, global positions, dilation, causal and non-causal,
learned or rotary positions, and one pattern per layer.

This is the project's reference trainer: the CUDA trainers are checked against it and it is
checked against the PyTorch oracle (test/reference.py). It follows llm.c's train_gpt2.c:
one allocation for all parameters, one for all activations, forward and backward in mirrored
order. Attention touches only allowed (query, key) pairs: each pattern is expanded once per
sequence length into a list of allowed keys per query, so a windowed layer at T=4096, W=64
never allocates or loops over T x T.

Build: make train_gpt_cpu        Run: ./train_gpt_cpu -h
*/
#include <stdio.h>      // printf, FILE, fopen
#include <stdlib.h>     // malloc, exit, strtol, qsort
#include <stdint.h>     // int32_t, uint16_t, uint64_t
#include <string.h>     // memcpy, memset, strcmp
#include <math.h>       // expf, sqrtf, tanhf, cos, sin
#include <time.h>       // clock_gettime
#include <errno.h>      // errno, strerror
#include <unistd.h>     // fsync
#include <fcntl.h>      // open (to fsync a directory)
#include <glob.h>       // glob (shard patterns)
#include <sys/stat.h>   // mkdir, stat
#ifdef OMP
#include <omp.h>        // the parallel loops below
#endif

#define TRAINER_NAME "train_gpt_cpu"

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

// ----------------------------------------------------------------------------
// key lists: the CPU trainer's attention visits only the allowed pairs (the GPU kernels test the
// pattern a tile at a time instead)

static int is_global(const ModelPattern* mp, int pos) {
    for (int g = 0; g < mp->num_globals; g++) { if (mp->globals[g] == pos) { return 1; } }
    return 0;
}

// The one definition of which keys a query sees; everything else (key lists, tests) derives from it.
static int allowed(const AttnPattern* p, const ModelPattern* mp, int i, int j) {
    if (mp->causal && j > i) { return 0; }
    int o = i - j;
    if (o >= 0 && (p->window == 0 || o < p->window)) { return 1; }
    if (!mp->causal && o < 0 && -o <= p->lookahead) { return 1; }
    if (j < p->sinks) { return 1; }
    if (!mp->causal && i < p->sinks) { return 1; }
    if (is_global(mp, j)) { return 1; }
    if (!mp->causal && is_global(mp, i)) { return 1; }
    if (p->dilation > 1 && p->window > 0 && o >= p->window && o % p->dilation == 0 &&
        (p->dilated_keys == 0 || o < p->window + (long long)p->dilated_keys * p->dilation)) { return 1; }
    return 0;
}

// The allowed keys of every query for one pattern and sequence length, ascending per query.
// Memory and work scale with the number of allowed pairs, never with T x T.
typedef struct {
    int T;
    size_t num_pairs;
    size_t* row_start;  // (T+1) offsets into keys
    int* keys;          // (num_pairs)
} PairList;

static int compare_ints(const void* a, const void* b) {
    int x = *(const int*)a, y = *(const int*)b;
    return (x > y) - (x < y);
}

// Candidate keys are a superset of the allowed ones, taken from the few ranges a pattern can
// open; allowed() decides each, and stamp[] drops repeats.
static int collect_row_keys(const AttnPattern* p, const ModelPattern* mp, int T, int i, int* stamp, int* out) {
    int n = 0;
#define CONSIDER(jexpr) do { int j_ = (jexpr); \
        if (j_ >= 0 && j_ < T && stamp[j_] != i && allowed(p, mp, i, j_)) { stamp[j_] = i; out[n++] = j_; } } while (0)
    int sees_all = !mp->causal && (i < p->sinks || is_global(mp, i));
    if (sees_all || p->window == 0) {
        int hi = mp->causal ? i : T - 1;
        for (int j = 0; j <= hi; j++) { CONSIDER(j); }
    } else {  // the band, clipped to 0..T-1 before looping: a window or lookahead may be far longer than T
        long long lo = (long long)i - p->window + 1, hi = mp->causal ? i : (long long)i + p->lookahead;
        if (lo < 0) { lo = 0; }
        if (hi > T - 1) { hi = T - 1; }
        for (long long j = lo; j <= hi; j++) { CONSIDER((int)j); }
        for (int j = 0; j < p->sinks && j < T; j++) { CONSIDER(j); }
        for (int g = 0; g < mp->num_globals; g++) { CONSIDER(mp->globals[g]); }
        if (p->dilation > 1) {
            long long first = ((long long)p->window + p->dilation - 1) / p->dilation * p->dilation;
            for (long long o = first; o <= i; o += p->dilation) {
                if (p->dilated_keys > 0 && o >= p->window + (long long)p->dilated_keys * p->dilation) { break; }
                CONSIDER(i - (int)o);
            }
        }
    }
#undef CONSIDER
    qsort(out, n, sizeof(int), compare_ints);
    return n;
}

static void pairlist_build(PairList* pl, const AttnPattern* p, const ModelPattern* mp, int T) {
    int* stamp = (int*)malloc_check(T * sizeof(int));
    int* row = (int*)malloc_check(T * sizeof(int));
    for (int j = 0; j < T; j++) { stamp[j] = -1; }
    pl->T = T;
    pl->row_start = (size_t*)malloc_check((T + 1) * sizeof(size_t));
    // two passes: count, then fill, so the key array is allocated exactly once
    size_t total = 0;
    for (int i = 0; i < T; i++) {
        pl->row_start[i] = total;
        total += collect_row_keys(p, mp, T, i, stamp, row);
    }
    pl->row_start[T] = total;
    pl->num_pairs = total;
    pl->keys = (int*)malloc_check(total * sizeof(int));
    for (int j = 0; j < T; j++) { stamp[j] = -1; }
    for (int i = 0; i < T; i++) {
        int n = collect_row_keys(p, mp, T, i, stamp, row);
        memcpy(pl->keys + pl->row_start[i], row, n * sizeof(int));
    }
    free(stamp);
    free(row);
}

static void pairlist_free(PairList* pl) {
    free(pl->row_start);
    free(pl->keys);
    pl->row_start = NULL;
    pl->keys = NULL;
}

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

#define NUM_ACTIVATION_TENSORS 22
typedef struct {
    float* encoded;    // (B, T, C)
    float* ln1;        // (L, B, T, C)
    float* ln1_mean;   // (L, B, T)
    float* ln1_rstd;   // (L, B, T)
    float* qkv;        // (L, B, T, 3C)
    float* qkvr;       // (L, B, T, 3C) q and k rotated; size 0 with learned positions (then it is qkv)
    float* atty;       // (L, B, T, C)
    float* att;        // (sum over layers of B * NH * P_l) probabilities on allowed pairs only
    float* attproj;    // (L, B, T, C)
    float* residual2;  // (L, B, T, C)
    float* ln2;        // (L, B, T, C)
    float* ln2_mean;   // (L, B, T)
    float* ln2_rstd;   // (L, B, T)
    float* fch;        // (L, B, T, 4C)
    float* fch_gelu;   // (L, B, T, 4C)
    float* fcproj;     // (L, B, T, C)
    float* residual3;  // (L, B, T, C)
    float* lnf;        // (B, T, C)
    float* lnf_mean;   // (B, T)
    float* lnf_rstd;   // (B, T)
    float* logits;     // (B, T, Vp)
    float* probs;      // (B, T, Vp)
} ActivationTensors;

// ----------------------------------------------------------------------------
// forward and backward passes of the layers, in llm.c's style

static void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
    // out (B, T, C), inp (B, T), wte (Vp, C), wpe (maxT, C) or NULL with rotary positions
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        float* out_bt = out + (size_t)bt * C;
        const float* wte_ix = wte + (size_t)inp[bt] * C;
        for (int i = 0; i < C; i++) { out_bt[i] = wte_ix[i] + (wpe ? wpe[(size_t)t * C + i] : 0.0f); }
    }
}

static void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C) {
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const float* dout_bt = dout + (size_t)bt * C;
        float* dwte_ix = dwte + (size_t)inp[bt] * C;
        for (int i = 0; i < C; i++) {
            dwte_ix[i] += dout_bt[i];
            if (dwpe) { dwpe[(size_t)t * C + i] += dout_bt[i]; }
        }
    }
}

static void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                              const float* bias, int B, int T, int C) {
    // out (B, T, C), mean and rstd (B, T) kept for the backward, inp (B, T, C), weight and bias (C)
    const float eps = 1e-5f;
    for (int bt = 0; bt < B * T; bt++) {
        const float* x = inp + (size_t)bt * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) { m += x[i]; }
        m = m / C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) { float d = x[i] - m; v += d * d; }
        v = v / C;
        float s = 1.0f / sqrtf(v + eps);
        float* o = out + (size_t)bt * C;
        for (int i = 0; i < C; i++) { o[i] = (s * (x[i] - m)) * weight[i] + bias[i]; }
        mean[bt] = m;
        rstd[bt] = s;
    }
}

static void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, const float* mean, const float* rstd, int B, int T, int C) {
    for (int bt = 0; bt < B * T; bt++) {
        const float* dout_bt = dout + (size_t)bt * C;
        const float* inp_bt = inp + (size_t)bt * C;
        float* dinp_bt = dinp + (size_t)bt * C;
        float m = mean[bt], s = rstd[bt];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (inp_bt[i] - m) * s;
            float dnorm = weight[i] * dout_bt[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        for (int i = 0; i < C; i++) {
            float norm = (inp_bt[i] - m) * s;
            float dnorm = weight[i] * dout_bt[i];
            dbias[i] += dout_bt[i];
            dweight[i] += norm * dout_bt[i];
            dinp_bt[i] += s * (dnorm - dnorm_mean - norm * dnorm_norm_mean);
        }
    }
}

static void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                           int B, int T, int C, int OC) {
    // out (B, T, OC) = inp (B, T, C) @ weight (OC, C)^T + bias (OC)
    // eight rows share each weight load: the weight matrix streams from memory once per 8 tokens
    const int ROWS = 8;
    int BT = B * T;
    int blocks = BT / ROWS;
#pragma omp parallel for
    for (int blk = 0; blk < blocks; blk++) {
        int r0 = blk * ROWS;
        for (int o = 0; o < OC; o++) {
            float acc[8];
            for (int r = 0; r < ROWS; r++) { acc[r] = bias ? bias[o] : 0.0f; }
            const float* w = weight + (size_t)o * C;
            for (int i = 0; i < C; i++) {
                float wi = w[i];
                for (int r = 0; r < ROWS; r++) { acc[r] += inp[(size_t)(r0 + r) * C + i] * wi; }
            }
            for (int r = 0; r < ROWS; r++) { out[(size_t)(r0 + r) * OC + o] = acc[r]; }
        }
    }
    for (int bt = blocks * ROWS; bt < BT; bt++) {  // the leftover rows when B*T is not a multiple of 8
        for (int o = 0; o < OC; o++) {
            float acc = bias ? bias[o] : 0.0f;
            for (int i = 0; i < C; i++) { acc += inp[(size_t)bt * C + i] * weight[(size_t)o * C + i]; }
            out[(size_t)bt * OC + o] = acc;
        }
    }
}

static void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, int B, int T, int C, int OC) {
    // dinp (B, T, C) += dout @ weight; dweight (OC, C) += dout^T @ inp; dbias (OC) += sum dout
    int BT = B * T;
#pragma omp parallel for
    for (int bt = 0; bt < BT; bt++) {
        const float* dout_bt = dout + (size_t)bt * OC;
        float* dinp_bt = dinp + (size_t)bt * C;
        for (int o = 0; o < OC; o++) {
            const float* w = weight + (size_t)o * C;
            float d = dout_bt[o];
            for (int i = 0; i < C; i++) { dinp_bt[i] += w[i] * d; }
        }
    }
    // parallel over output channels: each thread owns its rows of dweight, so no two threads add to one value
#pragma omp parallel for
    for (int o = 0; o < OC; o++) {
        float* dw = dweight + (size_t)o * C;
        for (int bt = 0; bt < BT; bt++) {
            float d = dout[(size_t)bt * OC + o];
            if (dbias) { dbias[o] += d; }
            const float* x = inp + (size_t)bt * C;
            for (int i = 0; i < C; i++) { dw[i] += x[i] * d; }
        }
    }
}

// Rotary positions turn q and k of each head by position-dependent angles (README, "half split").
// cos_sin holds (T, hs/2) cosines then (T, hs/2) sines.
static void rope_table(float* cos_sin, int T, int hs, int theta) {
    int half = hs / 2;
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < half; k++) {
            double inv_freq = pow((double)theta, -2.0 * k / hs);
            double a = t * inv_freq;
            cos_sin[(size_t)t * half + k] = (float)cos(a);
            cos_sin[(size_t)T * half + (size_t)t * half + k] = (float)sin(a);
        }
    }
}

static void rope_forward(float* qkvr, const float* qkv, const float* cos_sin, int B, int T, int C, int NH) {
    // qkvr (B, T, 3C): q and k of qkv (B, T, 3C) rotated, v copied
    int hs = C / NH, half = hs / 2;
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const float* c = cos_sin + (size_t)t * half;
        const float* s = cos_sin + (size_t)T * half + (size_t)t * half;
        const float* in = qkv + (size_t)bt * 3 * C;
        float* out = qkvr + (size_t)bt * 3 * C;
        for (int part = 0; part < 2; part++) {  // q, then k
            for (int h = 0; h < NH; h++) {
                const float* x = in + part * C + h * hs;
                float* y = out + part * C + h * hs;
                for (int k = 0; k < half; k++) {
                    y[k] = x[k] * c[k] - x[k + half] * s[k];
                    y[k + half] = x[k + half] * c[k] + x[k] * s[k];
                }
            }
        }
        memcpy(out + 2 * C, in + 2 * C, C * sizeof(float));
    }
}

static void rope_backward(float* dqkv, const float* dqkvr, const float* cos_sin, int B, int T, int C, int NH) {
    // the rotation is orthogonal, so its backward is the inverse rotation
    int hs = C / NH, half = hs / 2;
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const float* c = cos_sin + (size_t)t * half;
        const float* s = cos_sin + (size_t)T * half + (size_t)t * half;
        const float* dy_row = dqkvr + (size_t)bt * 3 * C;
        float* dx_row = dqkv + (size_t)bt * 3 * C;
        for (int part = 0; part < 2; part++) {
            for (int h = 0; h < NH; h++) {
                const float* dy = dy_row + part * C + h * hs;
                float* dx = dx_row + part * C + h * hs;
                for (int k = 0; k < half; k++) {
                    dx[k] += dy[k] * c[k] + dy[k + half] * s[k];
                    dx[k + half] += dy[k + half] * c[k] - dy[k] * s[k];
                }
            }
        }
        for (int i = 0; i < C; i++) { dx_row[2 * C + i] += dy_row[2 * C + i]; }
    }
}

static void attention_forward(float* out, float* att, const float* qkv, const PairList* pl, int B, int T, int C, int NH) {
    // out (B, T, C), att (B, NH, P) softmax probabilities of the allowed pairs, qkv (B, T, 3C)
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t P = pl->num_pairs;
#pragma omp parallel for collapse(3)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int i = 0; i < T; i++) {
                const float* q = qkv + ((size_t)b * T + i) * 3 * C + h * hs;
                size_t r0 = pl->row_start[i], r1 = pl->row_start[i + 1];
                float* att_row = att + ((size_t)b * NH + h) * P + r0;
                float maxval = -INFINITY;
                for (size_t r = r0; r < r1; r++) {
                    const float* k = qkv + ((size_t)b * T + pl->keys[r]) * 3 * C + C + h * hs;
                    float dot = 0.0f;
                    for (int d = 0; d < hs; d++) { dot += q[d] * k[d]; }
                    dot *= scale;
                    att_row[r - r0] = dot;
                    if (dot > maxval) { maxval = dot; }
                }
                float sum = 0.0f;
                for (size_t r = r0; r < r1; r++) {
                    float e = expf(att_row[r - r0] - maxval);
                    att_row[r - r0] = e;
                    sum += e;
                }
                float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // a row with no key (cannot happen, SPEC §1) gives zeros
                float* o = out + ((size_t)b * T + i) * C + h * hs;
                for (int d = 0; d < hs; d++) { o[d] = 0.0f; }
                for (size_t r = r0; r < r1; r++) {
                    float p = att_row[r - r0] * inv;
                    att_row[r - r0] = p;
                    const float* v = qkv + ((size_t)b * T + pl->keys[r]) * 3 * C + 2 * C + h * hs;
                    for (int d = 0; d < hs; d++) { o[d] += p * v[d]; }
                }
            }
        }
    }
}

static void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att,
                               const PairList* pl, int B, int T, int C, int NH) {
    // dqkv (B, T, 3C) +=; dout (B, T, C); att (B, NH, P) from the forward
    // Each (b, h) is one task: a key is shared by many queries, so within a head the queries run in
    // order and no two threads ever add into the same dk or dv.
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t P = pl->num_pairs;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float* att_bh = att + ((size_t)b * NH + h) * P;
            for (int i = 0; i < T; i++) {
                size_t r0 = pl->row_start[i], r1 = pl->row_start[i + 1];
                const float* q = qkv + ((size_t)b * T + i) * 3 * C + h * hs;
                float* dq = dqkv + ((size_t)b * T + i) * 3 * C + h * hs;
                const float* dout_i = dout + ((size_t)b * T + i) * C + h * hs;
                // datt_r = dout_i . v_j; the softmax backward needs sum_r p_r datt_r first
                float dot_sum = 0.0f;
                for (size_t r = r0; r < r1; r++) {
                    const float* v = qkv + ((size_t)b * T + pl->keys[r]) * 3 * C + 2 * C + h * hs;
                    float datt = 0.0f;
                    for (int d = 0; d < hs; d++) { datt += dout_i[d] * v[d]; }
                    dot_sum += att_bh[r] * datt;
                }
                for (size_t r = r0; r < r1; r++) {
                    int j = pl->keys[r];
                    const float* k = qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    const float* v = qkv + ((size_t)b * T + j) * 3 * C + 2 * C + h * hs;
                    float* dk = dqkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    float* dv = dqkv + ((size_t)b * T + j) * 3 * C + 2 * C + h * hs;
                    float p = att_bh[r];
                    float datt = 0.0f;
                    for (int d = 0; d < hs; d++) { datt += dout_i[d] * v[d]; }
                    float dscore = p * (datt - dot_sum) * scale;
                    for (int d = 0; d < hs; d++) {
                        dv[d] += p * dout_i[d];
                        dq[d] += dscore * k[d];
                        dk[d] += dscore * q[d];
                    }
                }
            }
        }
    }
}

#define GELU_SCALING_FACTOR 0.7978845608028654f  // sqrt(2 / pi)
static void gelu_forward(float* out, const float* inp, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALING_FACTOR * (x + 0.044715f * x * x * x)));
    }
}

static void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SCALING_FACTOR * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALING_FACTOR * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += grad * dout[i];
    }
}

static void residual_forward(float* out, const float* a, const float* b, size_t N) {
    for (size_t i = 0; i < N; i++) { out[i] = a[i] + b[i]; }
}

static void residual_backward(float* da, float* db, const float* dout, size_t N) {
    for (size_t i = 0; i < N; i++) { da[i] += dout[i]; db[i] += dout[i]; }
}

static void softmax_forward(float* probs, const float* logits, int B, int T, int V, int Vp) {
    // probs (B, T, Vp): softmax over the first V logits; the padded columns get 0
#pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const float* l = logits + (size_t)bt * Vp;
        float* p = probs + (size_t)bt * Vp;
        float maxval = -INFINITY;
        for (int i = 0; i < V; i++) { if (l[i] > maxval) { maxval = l[i]; } }
        float sum = 0.0f;
        for (int i = 0; i < V; i++) { p[i] = expf(l[i] - maxval); sum += p[i]; }
        for (int i = 0; i < V; i++) { p[i] /= sum; }
        for (int i = V; i < Vp; i++) { p[i] = 0.0f; }
    }
}

static float crossentropy_mean(const float* probs, const int* targets, int B, int T, int Vp) {
    double sum = 0.0;
    for (int bt = 0; bt < B * T; bt++) { sum += -logf(probs[(size_t)bt * Vp + targets[bt]]); }
    return (float)(sum / (B * T));
}

static void crossentropy_softmax_backward(float* dlogits, const float* probs, const int* targets,
                                          float dloss, int B, int T, int V, int Vp) {
    // dlogits (B, T, Vp) += (probs - onehot) * dloss, the padded columns stay 0
    for (int bt = 0; bt < B * T; bt++) {
        float* dl = dlogits + (size_t)bt * Vp;
        const float* p = probs + (size_t)bt * Vp;
        for (int i = 0; i < V; i++) { dl[i] += (p[i] - (i == targets[bt] ? 1.0f : 0.0f)) * dloss; }
    }
}

// ----------------------------------------------------------------------------
// the model

typedef struct {
    GPT2Config config;
    ParameterTensors params;
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    float* params_memory;
    size_t num_parameters;
    ParameterTensors grads;
    float* grads_memory;
    float* m_memory;   // AdamW first moment
    float* v_memory;   // AdamW second moment
    // activations, sized for (batch_size, seq_len) on the first forward
    ActivationTensors acts;
    size_t act_sizes[NUM_ACTIVATION_TENSORS];
    float* acts_memory;
    ActivationTensors grads_acts;
    float* grads_acts_memory;
    size_t grads_acts_total;        // floats in grads_acts_memory
    size_t att_offset[MAX_LAYERS];  // where each layer's probabilities start in acts.att
    PairList pairs[MAX_PATTERNS];   // allowed keys per query, per pattern, for seq_len
    float* rope_cos_sin;            // (2, T, hs/2), rotary positions only
    int batch_size;
    int seq_len;
    int* inputs;   // (B, T)
    int* targets;  // (B, T)
    int forward_batch;  // B of the last forward, which the backward differentiates
    float mean_loss;    // -1 when the last forward had no targets
} GPT2;

// A model of model->config that takes over params (malloc'd, count_parameters of them): main's
// come from model_from_args (a checkpoint, or a new model drawn from a fixed seed)
static void gpt2_build_from_params(GPT2* model, float* params) {
    model->params_memory = params;
    model->num_parameters = count_parameters(&model->config);
    fill_in_parameter_sizes(model->param_sizes, &model->config);
    point_parameters(&model->params, model->param_sizes, model->params_memory);
}

#ifdef TESTING  // the tests' ways in (test/test_gpt_cpu.c, test/fuzz_trainer.c)
static void gpt2_init_random(GPT2* model, uint64_t seed) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    fill_in_parameter_sizes(sizes, &model->config);
    float* params = (float*)malloc_check(count_parameters(&model->config) * sizeof(float));
    params_init_random(params, sizes, &model->config, seed);
    gpt2_build_from_params(model, params);
}

static void gpt2_build_from_checkpoint(GPT2* model, const char* path) {
    size_t n;
    gpt2_build_from_params(model, checkpoint_read(path, &model->config, &n));
}
#endif

static void gpt2_save_checkpoint(const GPT2* model, const char* path) {
    checkpoint_write(path, &model->config, model->params_memory, model->num_parameters);
}

// Sizes the activations for (B, T) and expands every pattern into its key lists.
static void gpt2_allocate_activations(GPT2* model, int B, int T) {
    const GPT2Config* c = &model->config;
    size_t L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size;
    for (int k = 0; k < c->pattern.num_patterns; k++) {
        pairlist_build(&model->pairs[k], &c->pattern.patterns[k], &c->pattern, T);
    }
    size_t att_total = 0;
    for (size_t l = 0; l < L; l++) {
        model->att_offset[l] = att_total;
        att_total += (size_t)B * NH * model->pairs[c->pattern.layer_pattern[l]].num_pairs;
    }
    size_t BT = (size_t)B * T;
    size_t* s = model->act_sizes;
    s[0] = BT * C;
    s[1] = L * BT * C;
    s[2] = L * BT;
    s[3] = L * BT;
    s[4] = L * BT * 3 * C;
    s[5] = c->rope ? L * BT * 3 * C : 0;
    s[6] = L * BT * C;
    s[7] = att_total;
    s[8] = L * BT * C;
    s[9] = L * BT * C;
    s[10] = L * BT * C;
    s[11] = L * BT;
    s[12] = L * BT;
    s[13] = L * BT * 4 * C;
    s[14] = L * BT * 4 * C;
    s[15] = L * BT * C;
    s[16] = L * BT * C;
    s[17] = BT * C;
    s[18] = BT;
    s[19] = BT;
    s[20] = BT * Vp;
    s[21] = BT * Vp;
    // the backward needs no gradient of the probabilities (attention's are recomputed per row, the
    // classifier's go straight into the logits' gradient): those two, the largest, get no room
    size_t gs[NUM_ACTIVATION_TENSORS];
    memcpy(gs, s, sizeof(gs));
    gs[7] = 0;
    gs[21] = 0;
    size_t total = 0, grad_total = 0;
    for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) { total += s[i]; grad_total += gs[i]; }
    model->acts_memory = (float*)calloc_check(total, sizeof(float));
    model->grads_acts_memory = (float*)calloc_check(grad_total, sizeof(float));
    model->grads_acts_total = grad_total;
    ActivationTensors* sets[2] = {&model->acts, &model->grads_acts};
    float* bases[2] = {model->acts_memory, model->grads_acts_memory};
    const size_t* sizes[2] = {s, gs};
    for (int k = 0; k < 2; k++) {
        ActivationTensors* x = sets[k];
        float** ptrs[NUM_ACTIVATION_TENSORS] = {
            &x->encoded, &x->ln1, &x->ln1_mean, &x->ln1_rstd, &x->qkv, &x->qkvr, &x->atty, &x->att,
            &x->attproj, &x->residual2, &x->ln2, &x->ln2_mean, &x->ln2_rstd, &x->fch, &x->fch_gelu,
            &x->fcproj, &x->residual3, &x->lnf, &x->lnf_mean, &x->lnf_rstd, &x->logits, &x->probs
        };
        float* it = bases[k];
        for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) { *ptrs[i] = sizes[k][i] ? it : NULL; it += sizes[k][i]; }
        if (!c->rope) { x->qkvr = x->qkv; }  // no rotation: attention reads qkv directly
    }
    if (c->rope) {
        size_t hs = C / NH;
        model->rope_cos_sin = (float*)malloc_check((size_t)T * hs * sizeof(float));
        rope_table(model->rope_cos_sin, T, (int)hs, c->rope_theta);
    }
    model->inputs = (int*)malloc_check(BT * sizeof(int));
    model->targets = (int*)malloc_check(BT * sizeof(int));
    model->batch_size = B;
    model->seq_len = T;
}

static void gpt2_forward(GPT2* model, const int* inputs, const int* targets, int B, int T) {
    const GPT2Config* c = &model->config;
    int V = c->vocab_size, Vp = c->padded_vocab_size, L = c->num_layers, NH = c->num_heads, C = c->channels;
    if (model->acts_memory == NULL) { gpt2_allocate_activations(model, B, T); }
    if (B > model->batch_size || T != model->seq_len) {
        die("forward with B=%d T=%d, but activations were sized for B<=%d T=%d", B, T, model->batch_size, model->seq_len);
    }
    for (int i = 0; i < B * T; i++) {
        if (inputs[i] < 0 || inputs[i] >= V) { die("input token %d at position %d is outside the vocabulary 0..%d", inputs[i], i, V - 1); }
        if (targets && (targets[i] < 0 || targets[i] >= V)) { die("target token %d at position %d is outside the vocabulary 0..%d", targets[i], i, V - 1); }
    }
    memcpy(model->inputs, inputs, (size_t)B * T * sizeof(int));
    model->forward_batch = B;
    if (targets) { memcpy(model->targets, targets, (size_t)B * T * sizeof(int)); }

    ParameterTensors p = model->params;
    ActivationTensors a = model->acts;
    size_t BTC = (size_t)B * T * C;
    size_t Ls = (size_t)model->batch_size * T;  // layer stride in tokens (activations sized for the allocated B)
    encoder_forward(a.encoded, inputs, p.wte, c->rope ? NULL : p.wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * Ls * C;
        float* l_ln1 = a.ln1 + l * Ls * C;
        float* l_ln1_mean = a.ln1_mean + l * Ls;
        float* l_ln1_rstd = a.ln1_rstd + l * Ls;
        float* l_qkv = a.qkv + l * Ls * 3 * C;
        float* l_qkvr = a.qkvr + l * Ls * 3 * C;
        float* l_atty = a.atty + l * Ls * C;
        float* l_att = a.att + model->att_offset[l];
        float* l_attproj = a.attproj + l * Ls * C;
        float* l_residual2 = a.residual2 + l * Ls * C;
        float* l_ln2 = a.ln2 + l * Ls * C;
        float* l_ln2_mean = a.ln2_mean + l * Ls;
        float* l_ln2_rstd = a.ln2_rstd + l * Ls;
        float* l_fch = a.fch + l * Ls * 4 * C;
        float* l_fch_gelu = a.fch_gelu + l * Ls * 4 * C;
        float* l_fcproj = a.fcproj + l * Ls * C;
        float* l_residual3 = a.residual3 + l * Ls * C;
        const PairList* pl = &model->pairs[c->pattern.layer_pattern[l]];

        layernorm_forward(l_ln1, l_ln1_mean, l_ln1_rstd, residual, p.ln1w + l * C, p.ln1b + l * C, B, T, C);
        matmul_forward(l_qkv, l_ln1, p.qkvw + (size_t)l * 3 * C * C, p.qkvb + l * 3 * C, B, T, C, 3 * C);
        if (c->rope) { rope_forward(l_qkvr, l_qkv, model->rope_cos_sin, B, T, C, NH); }
        attention_forward(l_atty, l_att, l_qkvr, pl, B, T, C, NH);
        matmul_forward(l_attproj, l_atty, p.attprojw + (size_t)l * C * C, p.attprojb + l * C, B, T, C, C);
        residual_forward(l_residual2, residual, l_attproj, BTC);
        layernorm_forward(l_ln2, l_ln2_mean, l_ln2_rstd, l_residual2, p.ln2w + l * C, p.ln2b + l * C, B, T, C);
        matmul_forward(l_fch, l_ln2, p.fcw + (size_t)l * 4 * C * C, p.fcb + l * 4 * C, B, T, C, 4 * C);
        gelu_forward(l_fch_gelu, l_fch, BTC * 4);
        matmul_forward(l_fcproj, l_fch_gelu, p.fcprojw + (size_t)l * C * 4 * C, p.fcprojb + l * C, B, T, 4 * C, C);
        residual_forward(l_residual3, l_residual2, l_fcproj, BTC);
    }
    const float* residual = a.residual3 + (L - 1) * Ls * C;
    layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, residual, p.lnfw, p.lnfb, B, T, C);
    matmul_forward(a.logits, a.lnf, p.wte, NULL, B, T, C, Vp);
    softmax_forward(a.probs, a.logits, B, T, V, Vp);
    model->mean_loss = targets ? crossentropy_mean(a.probs, targets, B, T, Vp) : -1.0f;
}

static void gpt2_zero_grad(GPT2* model) {
    if (model->grads_memory) { memset(model->grads_memory, 0, model->num_parameters * sizeof(float)); }
}

// Adds this batch's gradients, scaled by loss_scale (1 / gradient accumulation steps), to the
// parameter gradients; the activation gradients are cleared here, the parameter ones by zero_grad.
static void gpt2_backward(GPT2* model, float loss_scale) {
    if (model->mean_loss == -1.0f) { die("backward called without targets in the forward"); }
    const GPT2Config* c = &model->config;
    if (model->grads_memory == NULL) {
        model->grads_memory = (float*)calloc_check(model->num_parameters, sizeof(float));
        point_parameters(&model->grads, model->param_sizes, model->grads_memory);
    }
    memset(model->grads_acts_memory, 0, model->grads_acts_total * sizeof(float));
    if (!c->rope) { model->grads_acts.qkvr = model->grads_acts.qkv; }

    int B = model->forward_batch, T = model->seq_len;
    int V = c->vocab_size, Vp = c->padded_vocab_size, L = c->num_layers, NH = c->num_heads, C = c->channels;
    ParameterTensors p = model->params, g = model->grads;
    ActivationTensors a = model->acts, ga = model->grads_acts;
    size_t BTC = (size_t)B * T * C;
    size_t Ls = (size_t)model->batch_size * T;  // layer stride, as in the forward

    float dloss = loss_scale / (B * T);  // the loss is a mean over B*T tokens
    crossentropy_softmax_backward(ga.logits, a.probs, model->targets, dloss, B, T, V, Vp);
    matmul_backward(ga.lnf, g.wte, NULL, ga.logits, a.lnf, p.wte, B, T, C, Vp);
    float* residual = a.residual3 + (L - 1) * Ls * C;
    float* dresidual = ga.residual3 + (L - 1) * Ls * C;
    layernorm_backward(dresidual, g.lnfw, g.lnfb, ga.lnf, residual, p.lnfw, a.lnf_mean, a.lnf_rstd, B, T, C);
    for (int l = L - 1; l >= 0; l--) {
        residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * Ls * C;
        dresidual = l == 0 ? ga.encoded : ga.residual3 + (l - 1) * Ls * C;
        const PairList* pl = &model->pairs[c->pattern.layer_pattern[l]];
        const float* l_ln1 = a.ln1 + l * Ls * C;
        const float* l_qkvr = a.qkvr + l * Ls * 3 * C;
        const float* l_atty = a.atty + l * Ls * C;
        const float* l_att = a.att + model->att_offset[l];
        const float* l_residual2 = a.residual2 + l * Ls * C;
        const float* l_ln2 = a.ln2 + l * Ls * C;
        const float* l_fch = a.fch + l * Ls * 4 * C;
        const float* l_fch_gelu = a.fch_gelu + l * Ls * 4 * C;
        float* dl_ln1 = ga.ln1 + l * Ls * C;
        float* dl_qkv = ga.qkv + l * Ls * 3 * C;
        float* dl_qkvr = ga.qkvr + l * Ls * 3 * C;
        float* dl_atty = ga.atty + l * Ls * C;
        float* dl_attproj = ga.attproj + l * Ls * C;
        float* dl_residual2 = ga.residual2 + l * Ls * C;
        float* dl_ln2 = ga.ln2 + l * Ls * C;
        float* dl_fch = ga.fch + l * Ls * 4 * C;
        float* dl_fch_gelu = ga.fch_gelu + l * Ls * 4 * C;
        float* dl_fcproj = ga.fcproj + l * Ls * C;
        float* dl_residual3 = ga.residual3 + l * Ls * C;

        // the forward in reverse: MLP block, then attention block
        residual_backward(dl_residual2, dl_fcproj, dl_residual3, BTC);
        matmul_backward(dl_fch_gelu, g.fcprojw + (size_t)l * C * 4 * C, g.fcprojb + l * C, dl_fcproj, l_fch_gelu,
                        p.fcprojw + (size_t)l * C * 4 * C, B, T, 4 * C, C);
        gelu_backward(dl_fch, l_fch, dl_fch_gelu, BTC * 4);
        matmul_backward(dl_ln2, g.fcw + (size_t)l * 4 * C * C, g.fcb + l * 4 * C, dl_fch, l_ln2,
                        p.fcw + (size_t)l * 4 * C * C, B, T, C, 4 * C);
        layernorm_backward(dl_residual2, g.ln2w + l * C, g.ln2b + l * C, dl_ln2, l_residual2, p.ln2w + l * C,
                           a.ln2_mean + l * Ls, a.ln2_rstd + l * Ls, B, T, C);
        residual_backward(dresidual, dl_attproj, dl_residual2, BTC);
        matmul_backward(dl_atty, g.attprojw + (size_t)l * C * C, g.attprojb + l * C, dl_attproj, l_atty,
                        p.attprojw + (size_t)l * C * C, B, T, C, C);
        attention_backward(dl_qkvr, dl_atty, l_qkvr, l_att, pl, B, T, C, NH);
        if (c->rope) { rope_backward(dl_qkv, dl_qkvr, model->rope_cos_sin, B, T, C, NH); }
        matmul_backward(dl_ln1, g.qkvw + (size_t)l * 3 * C * C, g.qkvb + l * 3 * C, dl_qkv, l_ln1,
                        p.qkvw + (size_t)l * 3 * C * C, B, T, C, 3 * C);
        layernorm_backward(dresidual, g.ln1w + l * C, g.ln1b + l * C, dl_ln1, residual, p.ln1w + l * C,
                           a.ln1_mean + l * Ls, a.ln1_rstd + l * Ls, B, T, C);
    }
    encoder_backward(g.wte, c->rope ? NULL : g.wpe, ga.encoded, model->inputs, B, T, C);
}

static void gpt2_free(GPT2* model) {
    for (int k = 0; k < model->config.pattern.num_patterns; k++) { pairlist_free(&model->pairs[k]); }
    free(model->params_memory);
    free(model->grads_memory);
    free(model->m_memory);
    free(model->v_memory);
    free(model->acts_memory);
    free(model->grads_acts_memory);
    free(model->rope_cos_sin);
    free(model->inputs);
    free(model->targets);
    memset(model, 0, sizeof(*model));
}

// ----------------------------------------------------------------------------
// optimizer: AdamW with global gradient-norm clipping (torch.optim.AdamW + clip_grad_norm_)

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

typedef struct {
    float learning_rate;
    float beta1;
    float beta2;
    float eps;
    float weight_decay;
    float grad_clip;  // 0: no clipping
} AdamWConfig;

static float gpt2_grad_norm(const GPT2* model) {
    double sum = 0.0;  // serial and in double: the same result whatever the thread count
    for (size_t i = 0; i < model->num_parameters; i++) { sum += (double)model->grads_memory[i] * model->grads_memory[i]; }
    return (float)sqrt(sum);
}

// AdamW's moments, zero; main allocates them before the first step (a run whose every step is
// skipped still writes a state), the tests at their first update
static void gpt2_allocate_moments(GPT2* model) {
    if (model->m_memory == NULL) {
        model->m_memory = (float*)calloc_check(model->num_parameters, sizeof(float));
        model->v_memory = (float*)calloc_check(model->num_parameters, sizeof(float));
    }
}

// One AdamW step (t counts from 1), given the gradient norm (gpt2_grad_norm) for clipping.
static void gpt2_update(GPT2* model, const AdamWConfig* opt, float learning_rate, int t, float norm) {
    gpt2_allocate_moments(model);
    // as torch's clip_grad_norm_: scale by clip / (norm + 1e-6) whenever that is below 1
    float clip_scale = 1.0f;
    if (opt->grad_clip > 0.0f) {
        clip_scale = opt->grad_clip / (norm + 1e-6f);
        if (clip_scale > 1.0f) { clip_scale = 1.0f; }
    }
    float bias_correction1 = 1.0f - powf(opt->beta1, (float)t);
    float bias_correction2 = 1.0f - powf(opt->beta2, (float)t);
    size_t offset = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        float decay = param_is_decayed[k] ? opt->weight_decay : 0.0f;
        size_t n = model->param_sizes[k];
#pragma omp parallel for
        for (size_t i = offset; i < offset + n; i++) {
            float g = model->grads_memory[i] * clip_scale;
            float m = opt->beta1 * model->m_memory[i] + (1.0f - opt->beta1) * g;
            float v = opt->beta2 * model->v_memory[i] + (1.0f - opt->beta2) * g * g;
            model->m_memory[i] = m;
            model->v_memory[i] = v;
            float m_hat = m / bias_correction1;
            float v_hat = v / bias_correction2;
            float p = model->params_memory[i] * (1.0f - learning_rate * decay);
            model->params_memory[i] = p - learning_rate * m_hat / (sqrtf(v_hat) + opt->eps);
        }
        offset += n;
    }
}


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

// ----------------------------------------------------------------------------
// generation with a rolling KV cache: one token at a time, each layer keeping only the keys and
// values that later queries may see. A band + sinks layer keeps its S sinks and a ring of its last
// W positions, so memory stays constant and, with rotary positions, the stream runs past the
// length the model was trained on (seeds/004's "infinite stream"). Full layers keep every position
// up to maxT. Patterns that reach further back (dilation, global positions) or ahead (non-causal)
// are not cached: those models generate by re-running the context.

typedef struct {
    int capacity;     // entries per layer: max over layers of S + W, or maxT where a layer is full
    int position;     // the next token's position
    float* k;         // (L, capacity, C) keys, rotated when positions are rotary
    float* v;         // (L, capacity, C)
    int* pos;         // (L, capacity) the position held by each entry, -1 when empty
    float* x;         // (C) the residual stream of the current token
    float* ln;        // (C)
    float* qkv;       // (3C)
    float* atty;      // (C)
    float* x2;        // (C)
    float* fch;       // (4C)
    float* fch_gelu;  // (4C)
    float* proj;      // (C)
    float* logits;    // (Vp)
    float* scores;    // (capacity)
} KVCache;

static int kv_cache_supported(const GPT2Config* c) {
    const ModelPattern* mp = &c->pattern;
    if (!mp->causal || mp->num_globals > 0) { return 0; }
    for (int k = 0; k < mp->num_patterns; k++) {
        if (mp->patterns[k].dilation > 1) { return 0; }
    }
    return 1;
}

// The cache entry of position p in a layer with pattern pat: sinks keep their own entries, the band
// cycles through W entries after them; a full layer keeps position p in entry p.
static int kv_slot(const AttnPattern* pat, int p) {
    if (pat->window == 0) { return p; }
    if (p < pat->sinks) { return p; }
    return pat->sinks + (p - pat->sinks) % pat->window;
}

// max_tokens bounds every layer's entries: no more positions than the caller will feed (a window
// of 2^30 from a checkpoint must not become a cache of 2^30 entries for 100 tokens).
static void kv_cache_init(KVCache* kc, const GPT2Config* c, int max_tokens) {
    int cap = 1;
    for (int l = 0; l < c->num_layers; l++) {
        const AttnPattern* p = &c->pattern.patterns[c->pattern.layer_pattern[l]];
        long long need = p->window == 0 ? c->max_seq_len : (long long)p->sinks + p->window;
        if (need > max_tokens) { need = max_tokens; }
        if (need > cap) { cap = (int)need; }
    }
    size_t L = c->num_layers, C = c->channels;
    kc->capacity = cap;
    kc->position = 0;
    kc->k = (float*)malloc_check(L * cap * C * sizeof(float));
    kc->v = (float*)malloc_check(L * cap * C * sizeof(float));
    kc->pos = (int*)malloc_check(L * cap * sizeof(int));
    for (size_t i = 0; i < L * cap; i++) { kc->pos[i] = -1; }
    kc->x = (float*)malloc_check(C * sizeof(float));
    kc->ln = (float*)malloc_check(C * sizeof(float));
    kc->qkv = (float*)malloc_check(3 * C * sizeof(float));
    kc->atty = (float*)malloc_check(C * sizeof(float));
    kc->x2 = (float*)malloc_check(C * sizeof(float));
    kc->fch = (float*)malloc_check(4 * C * sizeof(float));
    kc->fch_gelu = (float*)malloc_check(4 * C * sizeof(float));
    kc->proj = (float*)malloc_check(C * sizeof(float));
    kc->logits = (float*)malloc_check((size_t)c->padded_vocab_size * sizeof(float));
    kc->scores = (float*)malloc_check(cap * sizeof(float));
}

static void kv_cache_free(KVCache* kc) {
    float* bufs[] = {kc->k, kc->v, kc->x, kc->ln, kc->qkv, kc->atty, kc->x2, kc->fch, kc->fch_gelu, kc->proj, kc->logits, kc->scores};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) { free(bufs[i]); }
    free(kc->pos);
}

// Rotates one head's q or k (hs) to position t, as rope_table / rope_forward do.
static void rope_rotate(float* x, int hs, int t, int theta) {
    int half = hs / 2;
    for (int k = 0; k < half; k++) {
        double a = t * pow((double)theta, -2.0 * k / hs);
        float c = (float)cos(a), s = (float)sin(a);
        float x0 = x[k], x1 = x[k + half];
        x[k] = x0 * c - x1 * s;
        x[k + half] = x1 * c + x0 * s;
    }
}

// Feeds one token at the cache's next position; leaves its logits (Vp) in kc->logits.
// Returns 0 when the position is past what the model can take (learned positions, or a full layer's maxT).
static int kv_cache_step(GPT2* model, KVCache* kc, int token) {
    const GPT2Config* c = &model->config;
    ParameterTensors p = model->params;
    int C = c->channels, NH = c->num_heads, hs = C / NH, t = kc->position;
    if (!c->rope && t >= c->max_seq_len) { return 0; }
    for (int l = 0; l < c->num_layers; l++) {  // a full layer holds every position: none past its capacity
        if (c->pattern.patterns[c->pattern.layer_pattern[l]].window == 0 && t >= kc->capacity) { return 0; }
    }
    for (int i = 0; i < C; i++) { kc->x[i] = p.wte[(size_t)token * C + i] + (c->rope ? 0.0f : p.wpe[(size_t)t * C + i]); }
    float mean, rstd;
    float scale = 1.0f / sqrtf((float)hs);
    for (int l = 0; l < c->num_layers; l++) {
        const AttnPattern* pat = &c->pattern.patterns[c->pattern.layer_pattern[l]];
        layernorm_forward(kc->ln, &mean, &rstd, kc->x, p.ln1w + l * C, p.ln1b + l * C, 1, 1, C);
        matmul_forward(kc->qkv, kc->ln, p.qkvw + (size_t)l * 3 * C * C, p.qkvb + l * 3 * C, 1, 1, C, 3 * C);
        if (c->rope) {
            for (int h = 0; h < NH; h++) {
                rope_rotate(kc->qkv + h * hs, hs, t, c->rope_theta);
                rope_rotate(kc->qkv + C + h * hs, hs, t, c->rope_theta);
            }
        }
        int slot = kv_slot(pat, t);
        size_t base = (size_t)l * kc->capacity;
        memcpy(kc->k + (base + slot) * C, kc->qkv + C, C * sizeof(float));
        memcpy(kc->v + (base + slot) * C, kc->qkv + 2 * C, C * sizeof(float));
        kc->pos[base + slot] = t;
        for (int h = 0; h < NH; h++) {
            const float* q = kc->qkv + h * hs;
            float maxval = -INFINITY;
            for (int e = 0; e < kc->capacity; e++) {
                int j = kc->pos[base + e];
                kc->scores[e] = -INFINITY;
                if (j < 0 || !allowed(pat, &c->pattern, t, j)) { continue; }
                const float* k = kc->k + (base + e) * C + h * hs;
                float dot = 0.0f;
                for (int d = 0; d < hs; d++) { dot += q[d] * k[d]; }
                kc->scores[e] = dot * scale;
                if (kc->scores[e] > maxval) { maxval = kc->scores[e]; }
            }
            float sum = 0.0f;
            for (int e = 0; e < kc->capacity; e++) {
                kc->scores[e] = kc->scores[e] == -INFINITY ? 0.0f : expf(kc->scores[e] - maxval);
                sum += kc->scores[e];
            }
            float* o = kc->atty + h * hs;
            for (int d = 0; d < hs; d++) { o[d] = 0.0f; }
            for (int e = 0; e < kc->capacity; e++) {
                if (kc->scores[e] == 0.0f) { continue; }
                const float* v = kc->v + (base + e) * C + h * hs;
                for (int d = 0; d < hs; d++) { o[d] += kc->scores[e] / sum * v[d]; }
            }
        }
        matmul_forward(kc->proj, kc->atty, p.attprojw + (size_t)l * C * C, p.attprojb + l * C, 1, 1, C, C);
        residual_forward(kc->x2, kc->x, kc->proj, C);
        layernorm_forward(kc->ln, &mean, &rstd, kc->x2, p.ln2w + l * C, p.ln2b + l * C, 1, 1, C);
        matmul_forward(kc->fch, kc->ln, p.fcw + (size_t)l * 4 * C * C, p.fcb + l * 4 * C, 1, 1, C, 4 * C);
        gelu_forward(kc->fch_gelu, kc->fch, 4 * C);
        matmul_forward(kc->proj, kc->fch_gelu, p.fcprojw + (size_t)l * C * 4 * C, p.fcprojb + l * C, 1, 1, 4 * C, C);
        residual_forward(kc->x, kc->x2, kc->proj, C);
    }
    layernorm_forward(kc->ln, &mean, &rstd, kc->x, p.lnfw, p.lnfb, 1, 1, C);
    matmul_forward(kc->logits, kc->ln, p.wte, NULL, 1, 1, C, c->padded_vocab_size);
    kc->position++;
    return 1;
}

// Samples n tokens after a start token through the KV cache; returns how many it produced.
static int gpt2_generate_cached(GPT2* model, int n, uint64_t* rng, const Tokenizer* tk) {
    const GPT2Config* c = &model->config;
    int V = c->vocab_size, Vp = c->padded_vocab_size;
    int token = V > 256 ? 50256 : '\n';
    if (token >= V) { token = 0; }
    KVCache kc;
    kv_cache_init(&kc, c, n);
    float* probs = (float*)malloc_check((size_t)Vp * sizeof(float));
    int made = 0;
    while (made < n && kv_cache_step(model, &kc, token)) {
        softmax_forward(probs, kc.logits, 1, 1, V, Vp);
        token = sample_from(probs, V, random_f32(rng));
        print_token(tk, V, token);
        fflush(stdout);
        made++;
    }
    printf("\n");
    if (made < n) { fprintf(stderr, "note: generated %d tokens, not %d: learned positions (or a full layer) stop at maxT %d\n", made, n, c->max_seq_len); }
    free(probs);
    kv_cache_free(&kc);
    return made;
}

// Generates n tokens after a start token by re-running the model on the growing context
// (row 0 of the batch), as llm.c's CPU trainer does; the CUDA trainers keep a KV cache.
static void gpt2_generate(GPT2* model, int n, uint64_t* rng, const Tokenizer* tk, int* tokens) {
    int T = model->seq_len, V = model->config.vocab_size, Vp = model->config.padded_vocab_size;
    int start = V > 256 ? 50256 : '\n';  // GPT-2's end-of-text, or a newline for bytes
    if (start >= V) { start = 0; }
    if (n > T - 1) {
        fprintf(stderr, "note: generating %d tokens, not %d: the context is -t %d (the CUDA trainers stream past it)\n", T - 1, n, T);
        n = T - 1;
    }
    for (int i = 0; i < T; i++) { tokens[i] = start; }
    for (int t = 1; t <= n; t++) {
        gpt2_forward(model, tokens, NULL, 1, T);
        const float* probs = model->acts.probs + (size_t)(t - 1) * Vp;
        tokens[t] = sample_from(probs, V, random_f32(rng));
        print_token(tk, V, tokens[t]);
        fflush(stdout);
    }
    printf("\n");
}

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
// main training loop
#ifndef TESTING

// The mean loss of the first `batches` val batches; with position_sums (T) it also adds each
// token's loss to the sum of its position.
static float evaluate(GPT2* model, DataLoader* val, int batches, double* position_sums) {
    dataloader_reset(val);
    float sum = 0.0f;
    int B = val->B, T = val->T;
    size_t Vp = model->config.padded_vocab_size;
    for (int i = 0; i < batches; i++) {
        dataloader_next_batch(val);
        gpt2_forward(model, val->inputs, val->targets, B, T);
        sum += model->mean_loss;
        for (int bt = 0; position_sums && bt < B * T; bt++) {
            position_sums[bt % T] += -logf(model->acts.probs[bt * Vp + val->targets[bt]]);
        }
    }
    return sum / batches;
}

// --stream through the rolling KV cache: losses[t] is the loss of targets[t] after inputs[0..t]
static void stream_losses_cached(GPT2* model, const int* inputs, const int* targets, int n, double* losses) {
    const GPT2Config* c = &model->config;
    if (!kv_cache_supported(c)) {
        die("--stream: the KV cache covers causal patterns without global positions or dilation; use --stream-recompute W");
    }
    KVCache kc;
    kv_cache_init(&kc, c, n);
    float* probs = (float*)malloc_check((size_t)c->padded_vocab_size * sizeof(float));
    for (int t = 0; t < n; t++) {
        if (!kv_cache_step(model, &kc, inputs[t])) {
            die("--stream %d: the cache stops at position %d (learned positions, or a full layer, end at maxT %d); "
                "a rotary model with windowed layers streams on", n, t, c->max_seq_len);
        }
        softmax_forward(probs, kc.logits, 1, 1, c->vocab_size, c->padded_vocab_size);
        losses[t] = -logf(probs[targets[t]]);
    }
    free(probs);
    kv_cache_free(&kc);
}

// --stream-recompute W: losses[t] from a fresh forward over the W tokens that end at t (over tokens
// 0..t while t < W: the first window's own positions), in batches of rows, one window a row
#define STREAM_ROWS 8
static void stream_losses_recompute(GPT2* model, const int* inputs, const int* targets, int n, int W, double* losses) {
    size_t Vp = model->config.padded_vocab_size;
    int* in = (int*)malloc_check((size_t)STREAM_ROWS * W * sizeof(int));  // (rows, W)
    int* tg = (int*)malloc_check((size_t)STREAM_ROWS * W * sizeof(int));  // (rows, W)
    int windows = n - W + 1;  // window k holds tokens k..k+W-1 and gives the loss at t = k+W-1
    for (int k0 = 0; k0 < windows; k0 += STREAM_ROWS) {
        int rows = windows - k0 < STREAM_ROWS ? windows - k0 : STREAM_ROWS;
        for (int r = 0; r < rows; r++) {
            memcpy(in + (size_t)r * W, inputs + k0 + r, W * sizeof(int));
            memcpy(tg + (size_t)r * W, targets + k0 + r, W * sizeof(int));
        }
        gpt2_forward(model, in, tg, rows, W);
        for (int r = 0; r < rows; r++) {
            int first = k0 + r == 0 ? 0 : W - 1;  // window 0 also gives positions 0..W-2
            for (int i = first; i < W; i++) {
                size_t bt = (size_t)r * W + i;
                losses[k0 + r + i] = -logf(model->acts.probs[bt * Vp + tg[bt]]);
            }
        }
    }
    free(in);
    free(tg);
}

// --eval-greedy K on a batch of rows (B, T), in place: position T-K+j becomes the argmax after
// positions 0..T-K-1+j, for j = 0..K-1; top (B, K) gets its logit. By re-running the forward: the
// generation path of the patterns the KV cache does not cover (dilation, global positions,
// lookahead), and the check of the cached path (--greedy-recompute 1).
// the first largest of a row's V logits: both decoding paths break ties alike
static int argmax_row(const float* logits, int V) {
    int best = 0;
    for (int v = 1; v < V; v++) { if (logits[v] > logits[best]) { best = v; } }
    return best;
}

static void greedy_decode(GPT2* model, int* rows, float* top, int B, int T, int K) {
    int V = model->config.vocab_size;
    size_t Vp = model->config.padded_vocab_size;
    for (int j = 0; j < K; j++) {
        gpt2_forward(model, rows, NULL, B, T);
        int pos = T - K - 1 + j;
        for (int b = 0; b < B; b++) {
            const float* logits = model->acts.logits + ((size_t)b * T + pos) * Vp;
            int best = argmax_row(logits, V);
            rows[(size_t)b * T + pos + 1] = best;
            top[(size_t)b * K + j] = logits[best];
        }
    }
}

// The same through the rolling KV cache, as --generate decodes: one forward over the batch gives
// every layer's keys and values of each row's prompt (rotated where positions are rotary; a causal
// position's keys do not depend on the tokens after it, so the answers in the row change nothing).
// They fill the row's cache (a windowed layer keeps its sinks and its last W positions, a full layer
// every position), and the K answer tokens are then decoded one at a time by kv_cache_step.
// The cache can decode rows of T: it covers the pattern, and a full layer, which keeps every
// position up to maxT, holds the T - 1 positions fed (a rotary model may be evaluated past maxT).
static int greedy_cache_fits(const GPT2Config* c, int T) {
    if (!kv_cache_supported(c)) { return 0; }
    for (int l = 0; l < c->num_layers; l++) {
        if (c->pattern.patterns[c->pattern.layer_pattern[l]].window == 0 && c->max_seq_len < T - 1) { return 0; }
    }
    return 1;
}

static void greedy_decode_cached(GPT2* model, int* rows, float* top, int B, int T, int K) {
    const GPT2Config* c = &model->config;
    int V = c->vocab_size, C = c->channels, L = c->num_layers;
    int n = T - K - 1;  // positions 0..n-1 come from the forward; the prompt's last token (n) is stepped
    gpt2_forward(model, rows, NULL, B, T);
    KVCache kc;
    kv_cache_init(&kc, c, T);
    for (int b = 0; b < B; b++) {
        for (size_t e = 0; e < (size_t)L * kc.capacity; e++) { kc.pos[e] = -1; }
        for (int l = 0; l < L; l++) {
            const AttnPattern* pat = &c->pattern.patterns[c->pattern.layer_pattern[l]];
            const float* qkv = model->acts.qkvr + ((size_t)l * B + b) * T * 3 * C;  // (T, 3C) of row b
            size_t base = (size_t)l * kc.capacity;
            for (int p = 0; p < n; p++) {
                if (pat->window > 0 && p >= pat->sinks && p < n - pat->window) { continue; }  // a later one takes its slot
                int slot = kv_slot(pat, p);
                memcpy(kc.k + (base + slot) * C, qkv + (size_t)p * 3 * C + C, C * sizeof(float));
                memcpy(kc.v + (base + slot) * C, qkv + (size_t)p * 3 * C + 2 * C, C * sizeof(float));
                kc.pos[base + slot] = p;
            }
        }
        kc.position = n;
        int* row = rows + (size_t)b * T;
        for (int j = 0; j < K; j++) {
            if (!kv_cache_step(model, &kc, row[n + j])) { die("--eval-greedy: the KV cache stops at position %d", n + j); }
            int best = argmax_row(kc.logits, V);
            row[n + j + 1] = best;
            top[(size_t)b * K + j] = kc.logits[best];
        }
    }
    kv_cache_free(&kc);
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);  // step lines reach a log file as they are printed, also when the run is killed
    Args a;
    parse_args(&a, argc, argv);
    if (a.zero || a.nccl_init) { die("%s: this trainer runs as one process (that flag is the CUDA trainers')", a.zero ? "-z 1" : "--nccl-init"); }
    GPT2 model;
    memset(&model, 0, sizeof(model));
    int resume_step, from_checkpoint;
    size_t n;
    float* params = model_from_args(&a, &model.config, &n, &resume_step, &from_checkpoint);
    gpt2_build_from_params(&model, params);
    uint64_t rng = a.seed ^ 0x9E3779B97F4A7C15ull;
    Tokenizer tokenizer = {0, NULL};
    if (a.tokenizer) { tokenizer_load(&tokenizer, a.tokenizer); }

    if (a.eval) {  // the val loss of a checkpoint: nothing trained, nothing written but the positions' CSV
        if (!from_checkpoint) { die("--eval: -e '%s' is a new model; name a checkpoint file", a.init); }
        if (a.stream) {  // one long stream, e.g. 8x the training length (StreamingLLM's test)
            DataLoader stream;
            stream_open(&a, model.config.vocab_size, &stream);
            double* losses = (double*)malloc_check((size_t)a.stream * sizeof(double));
            if (a.stream_recompute) {
                stream_losses_recompute(&model, stream.inputs, stream.targets, a.stream, a.stream_recompute, losses);
            } else {
                stream_losses_cached(&model, stream.inputs, stream.targets, a.stream, losses);
            }
            stream_report(&a, losses, a.stream, a.T);  // blocks of -t, the training length
            free(losses);
            dataloader_free(&stream);
            tokenizer_free(&tokenizer);
            gpt2_free(&model);
            return 0;
        }
        DataLoader val;
        dataloader_init(&val, a.val_pattern, a.B, a.T, model.config.vocab_size, "-j");
        int batches = val_batches_to_use(&a, &val);
        if (a.eval_greedy) {  // e.g. passkey retrieval: rows that end in their answer
            int* rows = (int*)malloc_check((size_t)a.B * a.T * sizeof(int));  // (B, T)
            float* top = (float*)malloc_check((size_t)a.B * a.eval_greedy * sizeof(float));  // (B, K)
            char tmp[4300];
            FILE* rows_csv = greedy_rows_open(&a, tmp, sizeof(tmp));
            int exact = 0;
            int cached = greedy_cache_fits(&model.config, a.T) && !a.greedy_recompute;
            printf("eval: '%s' on '%s', %d batches of %d rows of %d tokens, the last %d decoded greedily %s\n",
                   a.init, a.val_pattern, batches, a.B, a.T, a.eval_greedy,
                   cached ? "through the KV cache" : "by re-running the forward");
            for (int i = 0; i < batches; i++) {
                dataloader_next_batch(&val);
                memcpy(rows, val.inputs, (size_t)a.B * a.T * sizeof(int));
                if (cached) { greedy_decode_cached(&model, rows, top, a.B, a.T, a.eval_greedy); }
                else { greedy_decode(&model, rows, top, a.B, a.T, a.eval_greedy); }
                exact += greedy_score(rows_csv, i * a.B, rows, val.inputs, top, a.B, a.T, a.eval_greedy);
            }
            greedy_report(&a, rows_csv, tmp, exact, batches * a.B);
            free(rows);
            free(top);
            dataloader_free(&val);
            tokenizer_free(&tokenizer);
            gpt2_free(&model);
            return 0;
        }
        double* position_sums = a.eval_positions ? (double*)calloc_check(a.T, sizeof(double)) : NULL;
        printf("eval: '%s' on '%s', %d batches of %d x %d tokens\n", a.init, a.val_pattern, batches, a.B, a.T);
        printf("val loss %.6f\n", evaluate(&model, &val, batches, position_sums));
        if (position_sums) {
            position_losses_write(a.eval_positions, position_sums, a.T, (size_t)batches * a.B);
            printf("mean loss per position written: %s\n", a.eval_positions);
        }
        free(position_sums);
        dataloader_free(&val);
        tokenizer_free(&tokenizer);
        gpt2_free(&model);
        return 0;
    }
    if (a.generate) {
        if (!model.config.pattern.causal) { die("--generate: a non-causal model cannot generate left to right"); }
        if (kv_cache_supported(&model.config)) {  // constant memory per token; rotary streams past maxT
            gpt2_generate_cached(&model, a.generate, &rng, &tokenizer);
        } else {
            gpt2_allocate_activations(&model, 1, a.T);
            int* tokens = (int*)malloc_check(a.T * sizeof(int));
            gpt2_generate(&model, a.generate, &rng, &tokenizer, tokens);
            free(tokens);
        }
        tokenizer_free(&tokenizer);
        gpt2_free(&model);
        return 0;
    }

    int total_batch;
    int accum = accumulation_steps(&a, 1, &total_batch);
    DataLoader train, val;
    dataloader_init(&train, a.train_pattern, a.B, a.T, model.config.vocab_size, "-i");
    dataloader_init(&val, a.val_pattern, a.B, a.T, model.config.vocab_size, "-j");
    default_schedule(&a, &model.config);
    AdamWConfig opt = {a.lr, 0.9f, 0.95f, 1e-8f, a.weight_decay, a.grad_clip};
    print_config(&model.config, model.num_parameters, &a, accum);
    int val_batches = val_batches_to_use(&a, &val);
    gpt2_allocate_moments(&model);  // zero; a run whose every step is skipped still writes a state
    int start_step = 0;
    if (resume_step >= 0) {
        start_step = resume_from_state(&a, resume_step, total_batch, model.param_sizes, model.m_memory, model.v_memory, &train, &rng);
    }
    FILE* log = start_step < a.steps ? log_open(&a, resume_step) : NULL;
    StepGuard guard = {.z = a.skip_z};

    int* gen_tokens = (int*)malloc_check(a.T * sizeof(int));
    for (int step = start_step; step < a.steps; step++) {
        double t0 = now_seconds();
        gpt2_zero_grad(&model);
        float loss = 0.0f;
        for (int micro = 0; micro < accum; micro++) {
            dataloader_next_batch(&train);
            gpt2_forward(&model, train.inputs, train.targets, a.B, a.T);
            gpt2_backward(&model, 1.0f / accum);
            loss += model.mean_loss / accum;
        }
        float lr = learning_rate_at(step, a.steps, a.warmup, a.lr, a.final_lr_frac);
        float norm = gpt2_grad_norm(&model);
        if (step_guard(&guard, step + 1, loss, norm)) { gpt2_update(&model, &opt, lr, step + 1, norm); }
        double ms = (now_seconds() - t0) * 1000.0;
        double tok_s = total_batch / (ms / 1000.0);
        printf("step %4d/%d | loss %.6f | norm %.4f | lr %.2e | %.2f ms | %.0f tok/s\n",
               step + 1, a.steps, loss, norm, lr, ms, tok_s);
        float val_loss = -1.0f;
        if (is_val_step(&a, step + 1)) {
            val_loss = evaluate(&model, &val, val_batches, NULL);
            printf("val loss %.6f\n", val_loss);
        }
        log_step(log, step + 1, loss, val_loss, lr, ms, tok_s);
        if (is_sample_step(&a, step + 1) && model.config.pattern.causal) {
            printf("---\n");
            gpt2_generate(&model, a.gen_tokens, &rng, &tokenizer, gen_tokens);
            printf("---\n");
        }
        if (is_checkpoint_step(&a, step + 1)) {
            TrainState st = {step + 1, a.B, a.T, total_batch, train.shard_index, train.position, rng};
            char path[4200];
            snprintf(path, sizeof(path), "%s/model_%08d.bin", a.out_dir, step + 1);
            gpt2_save_checkpoint(&model, path);
            snprintf(path, sizeof(path), "%s/state_%08d.bin", a.out_dir, step + 1);
            state_save(path, &st, model.m_memory, model.v_memory, model.num_parameters);
            printf("checkpoint written: %s/model_%08d.bin\n", a.out_dir, step + 1);
        }
    }
    if (log) { fclose(log); }
    free(gen_tokens);
    dataloader_free(&train);
    dataloader_free(&val);
    tokenizer_free(&tokenizer);
    gpt2_free(&model);
    return 0;
}
#endif
