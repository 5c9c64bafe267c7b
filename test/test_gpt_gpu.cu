/*
The CUDA trainers' checks, the llm.c way (its test_gpt2.cu): this file includes a trainer with
TESTING defined (which leaves out the trainer's main) and checks its own functions. Built twice by
the Makefile, against train_gpt_window.cu and, with -DFULL, train_gpt_full.cu; make test-gpu runs
both.

    ./test/test_gpt_window_gpu --check-dump build/test/dumps/gpu_window_sinks [DUMP ...]
    ./test/test_gpt_window_gpu --check-cache out/rope/model_00000600.bin 4000 [CHECKPOINT N ...]

--check-dump DUMP: forward, backward and AdamW steps of DUMP_model.bin against test/reference.py's
DUMP_ref.bin at bf16 tolerances, and the same steps twice give the same bits.
--check-cache CHECKPOINT N: N tokens through the rolling KV cache against the full forward.
The last line is `TRAINER --check-dump: N passed, M failed` (or --check-cache).

    ./test/test_gpt_window_gpu --check-launch [--identify] [--nccl-init HOW] [--nccl-timeout S] [--linger S]

--check-launch: how the several-GPU processes find out who they are and meet, without a GPU (so
test/test_launch.sh runs it in CI): prints this process's rank, world, launcher and meeting, and whether the build has MPI; with
several processes, meets the others as the trainer does, passing 128 random bytes from rank 0 in
place of NCCL's id, and prints their hash (every rank must print the same); then stays S seconds
(--linger: a run's length, for the watchdog's tests) and ends as the trainer does. --identify stops
before the meeting.
*/
#define TESTING
#ifdef FULL
#include "../train_gpt_full.cu"
#define TEST_NAME "test/test_gpt_full_gpu"
#else
#include "../train_gpt_window.cu"
#define TEST_NAME "test/test_gpt_window_gpu"
#endif
#include "check.h"  // check, relative_error

static void gpt2_gpu_load(GPT2GPU* model, const char* path) {
    size_t n;
    float* host = checkpoint_read(path, &model->config, &n);
    gpt2_gpu_build(model, host, path);
    free(host);
}

// ----------------------------------------------------------------------------
// --check-dump: the model against a PyTorch reference dump (test/reference.py) at bf16 tolerances

static float* read_floats(FILE* f, size_t n, const char* path) {
    float* x = (float*)malloc_check(n * sizeof(float));
    fread_check(x, sizeof(float), n, f, path);
    return x;
}

static void check_dump(const char* prefix) {
    char model_path[4200], dump_path[4200];
    snprintf(model_path, sizeof(model_path), "%s_model.bin", prefix);
    snprintf(dump_path, sizeof(dump_path), "%s_ref.bin", prefix);
    GPT2GPU model;
    memset(&model, 0, sizeof(model));
    gpt2_gpu_load(&model, model_path);
    FILE* f = fopen_check(dump_path, "rb");
    int h[HEADER_INTS];
    float hyper[16];
    fread_check(h, sizeof(int), HEADER_INTS, f, dump_path);
    if (h[0] != 20261122 || h[1] != 1) { die("'%s' is not a reference dump", dump_path); }
    fread_check(hyper, sizeof(float), 16, f, dump_path);
    int B = h[2], T = h[3], V = h[4], Vp = h[5], steps = h[7];
    size_t n = (size_t)h[6];
    if (n != model.num_parameters) { die("'%s' has %zu parameters, the checkpoint %zu", dump_path, n, model.num_parameters); }
    int* inputs = (int*)malloc_check((size_t)B * T * sizeof(int));
    int* targets = (int*)malloc_check((size_t)B * T * sizeof(int));
    fread_check(inputs, sizeof(int), (size_t)B * T, f, dump_path);
    fread_check(targets, sizeof(int), (size_t)B * T, f, dump_path);
    float* ref_logits = read_floats(f, (size_t)B * T * V, dump_path);
    float ref_loss;
    fread_check(&ref_loss, sizeof(float), 1, f, dump_path);
    float* ref_grads = read_floats(f, n, dump_path);
    float* ref_losses = read_floats(f, steps, dump_path);
    fclose(f);
    const char* name = strrchr(prefix, '/') ? strrchr(prefix, '/') + 1 : prefix;
    gpt2_gpu_allocate(&model, B, T);

    // logits and loss (forward without gradient: the logits stay)
    gpt2_gpu_forward(&model, inputs, targets, 0.0f);
    floatX* logits_x = (floatX*)malloc_check((size_t)B * T * Vp * sizeof(floatX));
    cudaCheck(cudaMemcpy(logits_x, model.acts.logits, (size_t)B * T * Vp * sizeof(floatX), cudaMemcpyDeviceToHost));
    float* logits = (float*)malloc_check((size_t)B * T * V * sizeof(float));
    for (size_t bt = 0; bt < (size_t)B * T; bt++) {
        for (int v = 0; v < V; v++) { logits[bt * V + v] = __bfloat162float(logits_x[bt * Vp + v]); }
    }
    double e = relative_error(logits, ref_logits, (size_t)B * T * V);
    check(e < 1e-2, "%s: logits relative error %.2e (bf16 tolerance 1e-2)", name, e);
    float loss = gpt2_gpu_mean_loss(&model);
    double le = fabs(loss - ref_loss) / ref_loss;
    check(le < 1e-2, "%s: loss %.6f vs reference %.6f", name, loss, ref_loss);

    // gradients, tensor by tensor
    gpt2_gpu_zero_grad(&model);
    gpt2_gpu_forward(&model, inputs, targets, 1.0f / (B * T));
    gpt2_gpu_backward(&model, 0);
    float* grads = (float*)malloc_check(n * sizeof(float));
    cudaCheck(cudaMemcpy(grads, model.grads_memory, n * sizeof(float), cudaMemcpyDeviceToHost));
    static const char* names[NUM_PARAMETER_TENSORS] = {"wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw",
        "attprojb", "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};
    size_t offset = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        size_t sz = model.param_sizes[k];
        if (sz > 0) {
            double ge = relative_error(grads + offset, ref_grads + offset, sz);
            check(ge < 1e-2, "%s: gradient of %-8s relative error %.2e (bf16 tolerance 1e-2)", name, names[k], ge);
        }
        offset += sz;
    }

    // the reference's AdamW steps on the same batch
    double worst = 0.0;
    for (int s = 0; s < steps; s++) {
        gpt2_gpu_zero_grad(&model);
        gpt2_gpu_forward(&model, inputs, targets, 1.0f / (B * T));
        double d = fabs(gpt2_gpu_mean_loss(&model) - ref_losses[s]) / ref_losses[s];
        if (!(d <= worst)) { worst = d; }
        gpt2_gpu_backward(&model, 0);
        gpt2_gpu_update(&model, hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5], s + 1, gpt2_gpu_grad_norm(&model));
    }
    check(worst < 1e-2, "%s: %d AdamW steps, losses within %.2e of the reference (last %.6f)",
           name, steps, worst, ref_losses[steps - 1]);

    // determinism: the same steps again from the same checkpoint give the same bits
    GPT2GPU again;
    memset(&again, 0, sizeof(again));
    gpt2_gpu_load(&again, model_path);
    gpt2_gpu_allocate(&again, B, T);
    for (int s = 0; s < steps; s++) {
        gpt2_gpu_zero_grad(&again);
        gpt2_gpu_forward(&again, inputs, targets, 1.0f / (B * T));
        gpt2_gpu_backward(&again, 0);
        gpt2_gpu_update(&again, hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5], s + 1, gpt2_gpu_grad_norm(&again));
    }
    float* w1 = (float*)malloc_check(n * sizeof(float));
    float* w2 = (float*)malloc_check(n * sizeof(float));
    cudaCheck(cudaMemcpy(w1, model.master, n * sizeof(float), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(w2, again.master, n * sizeof(float), cudaMemcpyDeviceToHost));
    check(memcmp(w1, w2, n * sizeof(float)) == 0, "%s: two runs of %d steps give bit-identical weights", name, steps);
    free(w1); free(w2); free(grads); free(logits); free(logits_x);
    free(inputs); free(targets); free(ref_logits); free(ref_grads); free(ref_losses);
}

// --check-cache: the logits of N tokens fed one at a time through the rolling KV cache against the
// full forward over the same N tokens (for a windowed rotary model N may pass maxT: the cache then
// holds S + W entries per layer and the forward runs at T = N). A second check makes sure the first
// can fail: a cache that keeps only half of each window (half of N for a full layer) must miss the
// full forward by more than the tolerance. (A freshly initialized model's logits barely depend on
// the context, so the tests give this a trained checkpoint.)
static void check_cache(const char* path, int N) {
    GPT2GPU model;
    memset(&model, 0, sizeof(model));
    gpt2_gpu_load(&model, path);
    const GPT2Config* c = &model.config;
    if (!kv_cache_covers(c)) { die("--check-cache: '%s' has a pattern the KV cache does not cover", path); }
    if (!c->rope && N > c->max_seq_len) { die("--check-cache: %d tokens, but '%s' has learned positions up to %d", N, path, c->max_seq_len); }
    int V = c->vocab_size, Vp = c->padded_vocab_size;
    int* tokens = (int*)malloc_check((size_t)N * sizeof(int));
    uint64_t rng = 1234;
    for (int t = 0; t < N; t++) { tokens[t] = (int)(random_u32(&rng) % (uint32_t)V); }
    gpt2_gpu_allocate(&model, 1, N);
    gpt2_gpu_forward(&model, tokens, tokens, 0.0f);
    floatX* full_x = (floatX*)malloc_check((size_t)N * Vp * sizeof(floatX));
    cudaCheck(cudaMemcpy(full_x, model.acts.logits, (size_t)N * Vp * sizeof(floatX), cudaMemcpyDeviceToHost));
    float* full = (float*)malloc_check((size_t)V * sizeof(float));
    float* cached = (float*)malloc_check((size_t)V * sizeof(float));
    floatX* row = (floatX*)malloc_check((size_t)V * sizeof(floatX));
    KVCache kc;
    kv_cache_init(&kc, c, N);
    int steps = 0;
    double worst = 0.0;
    while (steps < N && kv_cache_step(&model, &kc, tokens[steps])) {
        cudaCheck(cudaMemcpy(row, model.acts.logits, V * sizeof(floatX), cudaMemcpyDeviceToHost));
        for (int v = 0; v < V; v++) {
            cached[v] = __bfloat162float(row[v]);
            full[v] = __bfloat162float(full_x[(size_t)steps * Vp + v]);
        }
        double e = relative_error(cached, full, V);
        if (!(e <= worst)) { worst = e; }
        steps++;
    }
    int has_full_layer = 0, ring = 0;  // a windowed model's cache: the largest S + W of its layers
    for (int l = 0; l < c->num_layers; l++) {
        const AttnPattern* p = &c->pattern.patterns[c->pattern.layer_pattern[l]];
        has_full_layer |= p->window == 0;
        if (p->sinks + p->window > ring) { ring = p->sinks + p->window; }
    }
    int expected = (!c->rope || has_full_layer) && N > c->max_seq_len ? c->max_seq_len : N;
    int capacity_ok = has_full_layer || kc.capacity == (ring < N ? ring : N);  // the cache holds no more than it is fed
    const char* name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    check(steps == expected && capacity_ok && worst < 1e-2,
           "%s: %d tokens through the KV cache (%d entries per layer, maxT %d) give the full forward's logits, "
           "worst row relative error %.2e (bf16 tolerance 1e-2)", name, steps, kc.capacity, c->max_seq_len, worst);
    kv_cache_free(&kc);

    // the negative control: the same tokens through a cache whose windows are cut in half (a full
    // layer's to N / 2; a window of 1 loses its sinks instead)
    ModelPattern kept = model.config.pattern;
    for (int k = 0; k < model.config.pattern.num_patterns; k++) {
        AttnPattern* p = &model.config.pattern.patterns[k];
        if (p->window > 1) { p->window /= 2; }
        else if (p->window == 0) { p->window = N / 2 > 1 ? N / 2 : 1; }
        else { p->sinks = 0; }
    }
    kv_cache_init(&kc, c, N);
    double wrong = 0.0;
    for (int t = 0; t < steps && kv_cache_step(&model, &kc, tokens[t]); t++) {
        cudaCheck(cudaMemcpy(row, model.acts.logits, V * sizeof(floatX), cudaMemcpyDeviceToHost));
        for (int v = 0; v < V; v++) {
            cached[v] = __bfloat162float(row[v]);
            full[v] = __bfloat162float(full_x[(size_t)t * Vp + v]);
        }
        double e = relative_error(cached, full, V);
        if (!(e <= wrong)) { wrong = e; }
    }
    kv_cache_free(&kc);
    model.config.pattern = kept;
    check(wrong > 1e-2, "%s: a cache that keeps half of each window misses the full forward by %.2e (> 1e-2): the check "
           "above can fail", name, wrong);
    free(tokens); free(full_x); free(full); free(cached); free(row);
}

// ----------------------------------------------------------------------------

// ----------------------------------------------------------------------------
// --check-launch: launch_identify, meet_spec, meet_others and the watchdog, with no GPU

static int check_launch(int argc, char** argv) {
    const char* nccl_init = NULL;
    float timeout = 300.0f, linger = 0.0f;
    int identify_only = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--identify") == 0) { identify_only = 1; continue; }
        if (i + 1 >= argc) { die("%s needs a value", argv[i]); }
        if (strcmp(argv[i], "--nccl-init") == 0) { nccl_init = argv[++i]; }
        else if (strcmp(argv[i], "--nccl-timeout") == 0) { timeout = parse_float(argv[i], argv[i + 1], 1.0f); i++; }
        else if (strcmp(argv[i], "--linger") == 0) { linger = parse_float(argv[i], argv[i + 1], 0.0f); i++; }
        else { die("--check-launch: unknown flag '%s'", argv[i]); }
    }
    launch_identify();
    MeetSpec meet = meet_spec(nccl_init);
    static const char* HOW[] = {"none", "tcp", "file", "mpi"};
    printf("launch: rank %d of %d, local rank %d, by %s, meeting %s\n", multi.rank, multi.world, multi.local_rank,
           multi.launcher, HOW[meet.how]);
#ifdef USE_MPI
    printf("build: MPI yes\n");
#else
    printf("build: MPI no\n");
#endif
    if (timeout > 86400.0f) { die("--nccl-timeout: expected at most 86400 seconds"); }
    if (identify_only || multi.world == 1) { return 0; }
    unsigned char id[128];  // NCCL_UNIQUE_ID_BYTES
    memset(id, 0, sizeof(id));
    if (multi.rank == 0) {
        FILE* f = fopen_check("/dev/urandom", "rb");
        fread_check(id, sizeof(id), 1, f, "/dev/urandom");
        fclose(f);
    }
    multi.timeout = timeout;
    meet_others(&meet, id, sizeof(id), timeout);
    watchdog_start();  // as multi_gpu_init does, right after the meeting
    uint64_t hash = 1469598103934665603ull;  // FNV-1a
    for (size_t i = 0; i < sizeof(id); i++) { hash = (hash ^ id[i]) * 1099511628211ull; }
    printf("rank %d: id %016llx\n", multi.rank, (unsigned long long)hash);
    for (double end = now_seconds() + linger; now_seconds() < end;) { usleep(20000); }
    meet_finish();
    printf("rank %d: done\n", multi.rank);
    return 0;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "--check-launch") == 0) { return check_launch(argc, argv); }
    int dump = argc >= 3 && strcmp(argv[1], "--check-dump") == 0;
    int cache = argc >= 4 && argc % 2 == 0 && strcmp(argv[1], "--check-cache") == 0;
    if (!dump && !cache) {
        die("usage: %s --check-dump DUMP [DUMP ...] | --check-cache CHECKPOINT N [CHECKPOINT N ...] | --check-launch [...]", TEST_NAME);
    }
    cudaDeviceProp props;
    cudaCheck(cudaGetDeviceProperties(&props, 0));
    cublasCheck(cublasLtCreate(&lt_handle));
    cudaCheck(cudaMalloc(&lt_workspace, LT_WORKSPACE_BYTES));
    printf("device: %s; attention: %s (%s)\n", props.name, ATTENTION_NAME, attention_kernels());
    if (dump) {
        for (int i = 2; i < argc; i++) { check_dump(argv[i]); }
    } else {
        for (int i = 2; i + 1 < argc; i += 2) { check_cache(argv[i], parse_int("--check-cache N", argv[i + 1], 1)); }
    }
    printf("%s %s: %d passed, %d failed\n", TRAINER_NAME, argv[1], checks_passed, checks_failed);
    return checks_failed == 0 ? 0 : 1;
}
