/*
libFuzzer harness for the CPU trainer's loaders and flag parser (issue 12, "Untrusted files and
flags"). Like test/test_gpt_cpu.c it includes the trainer itself, so it fuzzes the very code that
loads files; FUZZING makes die() return here (longjmp) instead of ending the process.

The first input byte picks the target (byte % 4), the rest is the payload:
  0 checkpoint  the payload is a checkpoint file: load it; if it loads, a forward pass on a tiny
                batch and, where the KV cache takes the pattern, a few sampled tokens
  1 state       the payload is an optimizer state file, for a model of (size - 1024) / 8 parameters
  2 shard       payload[0], payload[1], payload[2] pick B (1..4), T (1..64) and V (256 or 50257);
                the rest is a token shard: open it, read a few batches
  3 flags       the payload split at NUL bytes is argv: parse_args, then what main() does before
                training (model_from_args: a new model's config and pattern, or the pattern flags on
                top of a tiny checkpoint the harness wrote; the data loaders), the key lists at T and
                one forward at T <= 16
Flags never name real files: -i/-j are the harness's own shard, -e FILE its own checkpoint; -o, -y,
--tokenizer, --eval-positions, --eval-rows and -h are dropped (--stream and --eval-greedy runs stop
after the model is set up). Models above the harness's limits (T > 512, B*T > 4096, more than 2M
parameters, maxT > 65536) are skipped, not reported: those are big, not wrong.

    make fuzz FUZZ_SECONDS=600                      # all four targets (test/fuzz.sh), crashes in build/fuzz/
    FUZZ_TARGET=flags build/fuzz_trainer DIR ...    # one target: inputs for the others are rejected
    build/fuzz_trainer FILE...                      # replay files (test/fuzz_regressions/)

Every allocation and open file of one input is tracked, and what a longjmp out of the trainer left
behind is freed and closed, so that a long run does not run out of memory or file descriptors
(leak detection is off all the same: see __asan_default_options below).
*/
#define TESTING
#define FUZZING
// every header the trainer includes, first, so that the macros below rename only the trainer's calls
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <setjmp.h>
#include <sys/stat.h>

// The sanitizers' settings, built in (ASAN_OPTIONS / UBSAN_OPTIONS add to them): a longjmp out of a
// loader leaks what glob() held; an allocation over 1 GiB returns NULL, so that malloc_check refuses
// it the way an ordinary machine would; undefined behaviour stops the run with a stack trace.
const char* __asan_default_options(void) { return "detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=1024"; }
const char* __ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1"; }

// ----------------------------------------------------------------------------
// what one input allocated and opened, to release after a longjmp

static void** live_blocks;
static size_t num_live_blocks, cap_live_blocks;
#define MAX_OPEN_FILES 64
static FILE* open_files[MAX_OPEN_FILES];
static int num_open_files;

static void* track_block(void* p) {
    if (p == NULL) { return NULL; }
    if (num_live_blocks == cap_live_blocks) {
        cap_live_blocks = cap_live_blocks ? 2 * cap_live_blocks : 256;
        live_blocks = (void**)realloc(live_blocks, cap_live_blocks * sizeof(void*));
        if (live_blocks == NULL) { abort(); }
    }
    live_blocks[num_live_blocks++] = p;
    return p;
}
static void* fuzz_malloc(size_t n) { return track_block(malloc(n)); }
static void* fuzz_calloc(size_t n, size_t size) { return track_block(calloc(n, size)); }
static void fuzz_free(void* p) {
    if (p == NULL) { return; }
    for (size_t i = num_live_blocks; i-- > 0; ) {
        if (live_blocks[i] == p) { live_blocks[i] = live_blocks[--num_live_blocks]; break; }
    }
    free(p);
}
static FILE* fuzz_fopen(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (f != NULL && num_open_files < MAX_OPEN_FILES) { open_files[num_open_files++] = f; }
    return f;
}
static int fuzz_fclose(FILE* f) {
    for (int i = 0; i < num_open_files; i++) {
        if (open_files[i] == f) { open_files[i] = open_files[--num_open_files]; break; }
    }
    return fclose(f);
}
static void release_all(void) {
    for (size_t i = 0; i < num_live_blocks; i++) { free(live_blocks[i]); }
    num_live_blocks = 0;
    for (int i = 0; i < num_open_files; i++) { fclose(open_files[i]); }
    num_open_files = 0;
}

#define malloc fuzz_malloc
#define calloc fuzz_calloc
#define free fuzz_free
#define fopen fuzz_fopen
#define fclose fuzz_fclose
#include "../train_gpt_cpu.c"
// (the macros stay: what the harness allocates for an input is released after a longjmp too)

// ----------------------------------------------------------------------------
// harness limits (skipped, not reported) and files

#define LIMIT_T 512
#define LIMIT_BT 4096
#define LIMIT_PARAMS 2000000
#define LIMIT_MAX_SEQ_LEN 65536
#define FORWARD_T 16         // the tiny forward's sequence length
#define GENERATE_TOKENS 4    // tokens sampled through the KV cache
#define SHARD_TOKENS 8193    // the harness's shard: enough for any B*T <= LIMIT_BT

static char input_path[512];   // this input's payload
static char shard_path[512];   // a valid byte-level shard, for -i / -j
static char model_path[512];   // a tiny valid checkpoint, for -e FILE
static int target_only = -1;   // FUZZ_TARGET: inputs for the other targets are rejected
static const char* target_names[4] = {"checkpoint", "state", "shard", "flags"};

static void remove_files(void) {
    unlink(input_path);
    unlink(shard_path);
    unlink(model_path);
}

static void write_file(const char* path, const uint8_t* data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { fprintf(stderr, "fuzz_trainer: cannot write '%s': %s\n", path, strerror(errno)); abort(); }
    for (size_t done = 0; done < size; ) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) { fprintf(stderr, "fuzz_trainer: writing '%s' failed\n", path); abort(); }
        done += (size_t)w;
    }
    close(fd);
}

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc; (void)argv;
    const char* dir = getenv("TMPDIR");
    struct stat st;
    if (dir == NULL || *dir == '\0') { dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp"; }
    int pid = (int)getpid();
    snprintf(input_path, sizeof(input_path), "%s/fuzz_trainer_%d_input.bin", dir, pid);
    snprintf(shard_path, sizeof(shard_path), "%s/fuzz_trainer_%d_shard.bin", dir, pid);
    snprintf(model_path, sizeof(model_path), "%s/fuzz_trainer_%d_model.bin", dir, pid);
    atexit(remove_files);
    const char* only = getenv("FUZZ_TARGET");
    for (int t = 0; only && t < 4; t++) { if (strcmp(only, target_names[t]) == 0) { target_only = t; } }
    if (only && target_only < 0) { fprintf(stderr, "fuzz_trainer: FUZZ_TARGET '%s': expected checkpoint, state, shard or flags\n", only); exit(1); }

    // the shard: byte tokens of a repeating text
    size_t shard_bytes = HEADER_INTS * 4 + 2 * SHARD_TOKENS;
    uint8_t* shard = (uint8_t*)calloc_check(1, shard_bytes);
    int32_t h[3] = {SHARD_MAGIC, 1, SHARD_TOKENS};
    memcpy(shard, h, sizeof(h));
    const char* text = "It was the best of times, it was the worst of times.\n";
    for (size_t i = 0; i < SHARD_TOKENS; i++) {
        uint16_t tok = (uint8_t)text[i % strlen(text)];
        memcpy(shard + HEADER_INTS * 4 + 2 * i, &tok, 2);
    }
    write_file(shard_path, shard, shard_bytes);
    free(shard);

    // the checkpoint: l2c16h2, V 256, maxT 64, layer 0 window 8 + 2 sinks, layer 1 full
    if (setjmp(die_jump)) { fprintf(stderr, "fuzz_trainer: cannot write the harness's checkpoint\n"); abort(); }
    GPT2 m;
    memset(&m, 0, sizeof(m));
    m.config = (GPT2Config){.max_seq_len = 64, .vocab_size = 256, .padded_vocab_size = 256, .num_layers = 2,
                            .num_heads = 2, .channels = 16, .rope = 0, .rope_theta = 0};
    m.config.pattern = default_pattern();
    m.config.pattern.num_patterns = 2;
    m.config.pattern.patterns[0] = (AttnPattern){8, 2, 0, 1, 0};
    m.config.pattern.patterns[1] = (AttnPattern){0, 0, 0, 1, 0};
    m.config.pattern.layer_pattern[1] = 1;
    config_validate(&m.config, "fuzz_trainer");
    gpt2_init_random(&m, 1337);
    gpt2_save_checkpoint(&m, model_path);
    gpt2_free(&m);
    release_all();
    return 0;
}

// ----------------------------------------------------------------------------
// the targets; state lives in statics so that it survives a longjmp

static GPT2 model;
static DataLoader loader, loader2;
static int* tokens;
static char** args;

// a forward on B = 1, T = min(maxT, FORWARD_T) tokens below V; then a few tokens sampled through the
// KV cache where the pattern allows it
static void tiny_forward_and_sample(int sample) {
    const GPT2Config* c = &model.config;
    int T = c->max_seq_len < FORWARD_T ? c->max_seq_len : FORWARD_T;
    tokens = (int*)malloc(2 * T * sizeof(int));
    for (int t = 0; t < 2 * T; t++) { tokens[t] = (t * 7 + 3) % c->vocab_size; }
    gpt2_forward(&model, tokens, tokens + T, 1, T);
    uint64_t rng = 42;
    Tokenizer tk = {0, NULL};
    if (sample && c->pattern.causal && kv_cache_supported(c)) {
        gpt2_generate_cached(&model, GENERATE_TOKENS, &rng, &tk);
    } else if (sample && c->pattern.causal && T > 1) {  // re-running the context, row 0 of the batch
        gpt2_generate(&model, GENERATE_TOKENS, &rng, &tk, tokens);
    }
    free(tokens);
    tokens = NULL;
}

static void fuzz_checkpoint(const uint8_t* data, size_t size) {
    write_file(input_path, data, size);
    gpt2_build_from_checkpoint(&model, input_path);
    tiny_forward_and_sample(1);
    gpt2_free(&model);
}

static void fuzz_state(const uint8_t* data, size_t size) {
    write_file(input_path, data, size);
    size_t n = size > HEADER_INTS * 4 ? (size - HEADER_INTS * 4) / 8 : 1;
    // the parameters split over the tensors as a model's are: a little in each, the rest in wte
    size_t sizes[NUM_PARAMETER_TENSORS] = {0};
    size_t rest = n;
    for (int t = 1; t < NUM_PARAMETER_TENSORS && rest > 1; t++) { sizes[t] = 1; rest--; }
    sizes[0] = rest;
    int32_t step = 0;
    if (size >= 12) { memcpy(&step, data + 8, 4); }  // as if its name said its own step: the moments get read
    float* m = (float*)malloc(n * sizeof(float));
    float* v = (float*)malloc(n * sizeof(float));
    TrainState st;
    state_load(input_path, step, &st, m, v, sizes);
    free(m);
    free(v);
}

static void fuzz_shard(const uint8_t* data, size_t size) {
    if (size < 3) { return; }
    int B = 1 + data[0] % 4, T = 1 + data[1] % 64, V = data[2] % 2 ? 50257 : 256;
    write_file(input_path, data + 3, size - 3);
    dataloader_init(&loader, input_path, B, T, V, "-i");
    for (int i = 0; i < 5; i++) { dataloader_next_batch(&loader); }
    dataloader_reset(&loader);
    dataloader_next_batch(&loader);
    dataloader_free(&loader);
    memset(&loader, 0, sizeof(loader));
}

static int takes_no_value(const char* f) {
    return strcmp(f, "--eval") == 0;
}

static void fuzz_flags(const uint8_t* data, size_t size) {
    // argv: "train_gpt_cpu" then the payload's NUL-separated strings, at most 64
    enum { MAX_ARGS = 64 };
    char* text = (char*)malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char* raw[MAX_ARGS];
    int num_raw = 0;
    for (char* s = text; s <= text + size && num_raw < MAX_ARGS; s += strlen(s) + 1) { raw[num_raw++] = s; }
    if (size == 0) { num_raw = 0; }
    args = (char**)malloc((MAX_ARGS + 2) * sizeof(char*));
    int argc = 0;
    args[argc++] = (char*)"train_gpt_cpu";
    for (int i = 0; i < num_raw; i++) {  // walks the list as parse_args pairs flags with values
        const char* f = raw[i];
        int has_value = i + 1 < num_raw;
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) { continue; }  // usage() exits
        if (f[0] != '-' || takes_no_value(f)) { args[argc++] = raw[i]; continue; }
        if (strcmp(f, "-o") == 0 || strcmp(f, "-y") == 0 || strcmp(f, "--tokenizer") == 0 ||
            strcmp(f, "--eval-positions") == 0 || strcmp(f, "--eval-rows") == 0) { i += has_value; continue; }
        args[argc++] = raw[i];
        if (!has_value) { continue; }
        i++;
        if (strcmp(f, "-i") == 0 || strcmp(f, "-j") == 0) { args[argc++] = shard_path; }
        else if (strcmp(f, "-e") == 0 && !is_model_descriptor(raw[i])) { args[argc++] = model_path; }
        else { args[argc++] = raw[i]; }
    }
    args[argc] = NULL;
    // unless the flags name them, the trainer's defaults would be the books corpus and a d4
    static char* defaults[] = {(char*)"-i", NULL, (char*)"-j", NULL};
    char* argv2[MAX_ARGS * 2 + 8];
    int argc2 = 0;
    argv2[argc2++] = args[0];
    defaults[1] = shard_path;
    defaults[3] = shard_path;
    for (int i = 0; i < 4; i++) { argv2[argc2++] = defaults[i]; }
    for (int i = 1; i < argc; i++) { argv2[argc2++] = args[i]; }
    argv2[argc2] = NULL;

    Args a;
    parse_args(&a, argc2, argv2);
    if (a.T > LIMIT_T || (long long)a.B * a.T > LIMIT_BT || a.stream_recompute > LIMIT_T) { goto done; }
    if (is_model_descriptor(a.init)) {  // a new model over the limits is skipped before it is drawn
        GPT2Config probe;
        config_from_descriptor(&probe, a.init, a.max_seq_len ? a.max_seq_len : a.T, a.vocab_size ? a.vocab_size : 256);
        probe.rope = a.rope == 1;
        if (probe.max_seq_len > LIMIT_MAX_SEQ_LEN || count_parameters(&probe) > LIMIT_PARAMS) { goto done; }
    }
    // main(): the model from the flags, or from a checkpoint with the pattern flags on top
    int resume_step, from_checkpoint;
    size_t n;
    float* params = model_from_args(&a, &model.config, &n, &resume_step, &from_checkpoint);
    gpt2_build_from_params(&model, params);
    // the key lists at the run's T, then a forward (and sampling) at T <= FORWARD_T
    const ModelPattern* mp = &model.config.pattern;
    for (int k = 0; k < mp->num_patterns; k++) {
        PairList pl;
        pairlist_build(&pl, &mp->patterns[k], mp, a.T);
        pairlist_free(&pl);
    }
    if (a.eval) {
        if (!from_checkpoint || a.stream || a.eval_greedy) { goto done; }  // refused by main; not covered here
        dataloader_init(&loader, a.val_pattern, a.B, a.T, model.config.vocab_size, "-j");
        val_batches_to_use(&a, &loader);
        dataloader_next_batch(&loader);
    } else if (!a.generate) {
        int total_batch;
        int accum = accumulation_steps(&a, 1, &total_batch);
        dataloader_init(&loader, a.train_pattern, a.B, a.T, model.config.vocab_size, "-i");
        dataloader_init(&loader2, a.val_pattern, a.B, a.T, model.config.vocab_size, "-j");
        default_schedule(&a, &model.config);
        print_config(&model.config, model.num_parameters, &a, accum);
        val_batches_to_use(&a, &loader2);
        dataloader_next_batch(&loader);
    }
    tiny_forward_and_sample(a.generate > 0);
done:
    if (loader.paths.gl_pathv) { dataloader_free(&loader); }
    if (loader2.paths.gl_pathv) { dataloader_free(&loader2); }
    memset(&loader, 0, sizeof(loader));
    memset(&loader2, 0, sizeof(loader2));
    if (model.params_memory) { gpt2_free(&model); }
    free(args);
    free(text);
    args = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) { return 0; }
    int target = data[0] % 4;
    if (target_only >= 0 && target != target_only) { return -1; }  // not added to this target's corpus
    if (setjmp(die_jump)) {  // the trainer refused the input: release what it held
        if (loader.paths.gl_pathv) { globfree(&loader.paths); }
        if (loader2.paths.gl_pathv) { globfree(&loader2.paths); }
        release_all();
        memset(&model, 0, sizeof(model));
        memset(&loader, 0, sizeof(loader));
        memset(&loader2, 0, sizeof(loader2));
        tokens = NULL;
        args = NULL;
        return 0;
    }
    switch (target) {
        case 0: fuzz_checkpoint(data + 1, size - 1); break;
        case 1: fuzz_state(data + 1, size - 1); break;
        case 2: fuzz_shard(data + 1, size - 1); break;
        case 3: fuzz_flags(data + 1, size - 1); break;
    }
    release_all();  // whatever the trainer did not free itself
    return 0;
}
