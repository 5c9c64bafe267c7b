/*
Tests of the CPU trainer: the PyTorch reference dumps (test/reference.py), the mask examples of
SPEC §1, key lists against the brute-force definition, checkpoints, and token shards.

    test_gpt_cpu DUMP_DIR TINY_SHARD_DIR TINY_TEXT

Like llm.c's test_gpt2.c it includes the trainer itself, so it tests the very code that trains.
*/
#define TESTING
#include "../train_gpt_cpu.c"
#include <sys/resource.h>  // setrlimit: make a checkpoint write fail halfway
#include <sys/wait.h>      // waitpid
#include <signal.h>        // SIGXFSZ
#include "check.h"         // check, relative_error

// ----------------------------------------------------------------------------
// SPEC §1's examples, exactly

static ModelPattern one_pattern(int causal, AttnPattern p) {
    ModelPattern mp;
    memset(&mp, 0, sizeof(mp));
    mp.causal = causal;
    mp.num_patterns = 1;
    mp.patterns[0] = p;
    return mp;
}

static void test_mask_examples(void) {
    // W=3, T=6, causal: seeds/004's band-diagonal mask
    const char* band[6] = {"100000", "110000", "111000", "011100", "001110", "000111"};
    ModelPattern mp = one_pattern(1, (AttnPattern){3, 0, 0, 1, 0});
    int ok = 1;
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < 6; j++) { ok &= allowed(&mp.patterns[0], &mp, i, j) == (band[i][j] == '1'); }
    }
    check(ok, "mask W=3 T=6 causal is seeds/004's band diagonal");

    // W=3, T=8, causal=0, R=0, G={0}: SPEC §1's reading of seeds/002 (Longformer with a global
    // token): row 0 attends all 8, row i > 0 attends {0} and [i-2, i]. The picture drawn in
    // seeds/002 shows a 2-wide band, against its own rule [i - window_size + 1, i]; SPEC follows the rule.
    mp = one_pattern(0, (AttnPattern){3, 0, 0, 1, 0});
    mp.num_globals = 1;
    mp.globals[0] = 0;
    ok = 1;
    for (int i = 0; i < 8; i++) {
        for (int j = 0; j < 8; j++) {
            int expect = i == 0 || j == 0 || (j >= i - 2 && j <= i);
            ok &= allowed(&mp.patterns[0], &mp, i, j) == expect;
        }
    }
    check(ok, "mask W=3 T=8 non-causal G={0}: row 0 sees all, row i sees {0} and [i-2, i] (SPEC, seeds/002)");

    // W=64, S=16, causal: StreamingLLM, row i sees [0,16) and [i-63, i]
    mp = one_pattern(1, (AttnPattern){64, 16, 0, 1, 0});
    ok = 1;
    for (int i = 0; i < 300; i++) {
        for (int j = 0; j < 300; j++) {
            int expect = j <= i && (j < 16 || i - j < 64);
            ok &= allowed(&mp.patterns[0], &mp, i, j) == expect;
        }
    }
    check(ok, "mask W=64 S=16 causal is sinks plus band (seeds/003)");

    // W=96, d=4, K=0, causal: every 4th token before the window (seeds/001)
    mp = one_pattern(1, (AttnPattern){96, 0, 0, 4, 0});
    ok = 1;
    for (int i = 0; i < 400; i++) {
        for (int j = 0; j < 400; j++) {
            int o = i - j;
            int expect = o >= 0 && (o < 96 || o % 4 == 0);
            ok &= allowed(&mp.patterns[0], &mp, i, j) == expect;
        }
    }
    check(ok, "mask W=96 d=4 K=0 causal: band plus every 4th key beyond (seeds/001)");
}

// The key lists the trainer loops over must be exactly the allowed set, for any pattern.
static void test_pairlists_random(void) {
    uint64_t rng = 42;
    int bad_patterns = 0, tried = 0;
    size_t total_pairs = 0;
    for (int trial = 0; trial < 300; trial++) {
        int T = 1 + random_u32(&rng) % 90;
        ModelPattern mp;
        memset(&mp, 0, sizeof(mp));
        mp.causal = random_u32(&rng) % 2;
        mp.num_patterns = 1;
        AttnPattern* p = &mp.patterns[0];
        p->window = random_u32(&rng) % 3 == 0 ? 0 : (int)(random_u32(&rng) % 20);
        p->sinks = random_u32(&rng) % 2 ? (int)(random_u32(&rng) % 6) : 0;
        p->lookahead = mp.causal ? 0 : (int)(random_u32(&rng) % 5);
        p->dilation = random_u32(&rng) % 2 ? 1 : 2 + (int)(random_u32(&rng) % 4);
        p->dilated_keys = (int)(random_u32(&rng) % 4);
        int ng = random_u32(&rng) % 3;
        for (int g = 0; g < ng; g++) {
            int pos = random_u32(&rng) % T;
            if (mp.num_globals == 0 || pos > mp.globals[mp.num_globals - 1]) { mp.globals[mp.num_globals++] = pos; }
        }
        PairList pl;
        pairlist_build(&pl, p, &mp, T);
        int ok = 1;
        size_t r = 0;
        for (int i = 0; i < T && ok; i++) {
            ok &= pl.row_start[i] == r;
            for (int j = 0; j < T; j++) {
                if (allowed(p, &mp, i, j)) { ok &= r < pl.num_pairs && pl.keys[r] == j; r++; }
            }
        }
        ok &= r == pl.num_pairs && pl.row_start[T] == r;
        total_pairs += pl.num_pairs;
        bad_patterns += !ok;
        tried++;
        pairlist_free(&pl);
    }
    check(bad_patterns == 0, "key lists equal brute-force allowed() on %d random patterns (%zu pairs), %d wrong",
          tried, total_pairs, bad_patterns);

    // memory scales with allowed pairs: T=4096, W=64 lists 4096*64 - 64*63/2 pairs, not T*T
    ModelPattern mp = one_pattern(1, (AttnPattern){64, 0, 0, 1, 0});
    PairList pl;
    pairlist_build(&pl, &mp.patterns[0], &mp, 4096);
    check(pl.num_pairs == (size_t)4096 * 64 - 64 * 63 / 2, "T=4096 W=64 has %zu pairs (expected %d)",
          pl.num_pairs, 4096 * 64 - 64 * 63 / 2);
    pairlist_free(&pl);
}

// ----------------------------------------------------------------------------
// the PyTorch reference dumps

typedef struct {
    int header[HEADER_INTS];
    float hyper[16];
    int* inputs;
    int* targets;
    float* logits;
    float loss;
    float* grads;
    float* losses;
    float* final_params;  // after the AdamW steps
} Dump;

static void dump_load(Dump* d, const char* path) {
    FILE* f = fopen_check(path, "rb");
    fread_check(d->header, sizeof(int), HEADER_INTS, f, path);
    if (d->header[0] != 20261122 || d->header[1] != 1) { die("'%s' is not a reference dump (magic %d)", path, d->header[0]); }
    int B = d->header[2], T = d->header[3], V = d->header[4], n = d->header[6], steps = d->header[7];
    fread_check(d->hyper, sizeof(float), 16, f, path);
    d->inputs = (int*)malloc_check((size_t)B * T * sizeof(int));
    d->targets = (int*)malloc_check((size_t)B * T * sizeof(int));
    d->logits = (float*)malloc_check((size_t)B * T * V * sizeof(float));
    d->grads = (float*)malloc_check((size_t)n * sizeof(float));
    d->losses = (float*)malloc_check((size_t)steps * sizeof(float));
    d->final_params = (float*)malloc_check((size_t)n * sizeof(float));
    fread_check(d->inputs, sizeof(int), (size_t)B * T, f, path);
    fread_check(d->targets, sizeof(int), (size_t)B * T, f, path);
    fread_check(d->logits, sizeof(float), (size_t)B * T * V, f, path);
    fread_check(&d->loss, sizeof(float), 1, f, path);
    fread_check(d->grads, sizeof(float), (size_t)n, f, path);
    fread_check(d->losses, sizeof(float), (size_t)steps, f, path);
    fread_check(d->final_params, sizeof(float), (size_t)n, f, path);
    fclose(f);
}

static void dump_free(Dump* d) {
    free(d->inputs);
    free(d->targets);
    free(d->logits);
    free(d->grads);
    free(d->losses);
    free(d->final_params);
}

static const char* parameter_names[NUM_PARAMETER_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"
};

static void test_reference_case(const char* dir, const char* name) {
    char path[4200];
    GPT2 model;
    memset(&model, 0, sizeof(model));
    snprintf(path, sizeof(path), "%s/%s_model.bin", dir, name);
    gpt2_build_from_checkpoint(&model, path);
    Dump d;
    snprintf(path, sizeof(path), "%s/%s_ref.bin", dir, name);
    dump_load(&d, path);
    int B = d.header[2], T = d.header[3], V = d.header[4], Vp = d.header[5], steps = d.header[7];
    check(model.num_parameters == (size_t)d.header[6] && model.config.vocab_size == V && model.config.padded_vocab_size == Vp,
          "%s: checkpoint sizes match the dump (%zu parameters)", name, model.num_parameters);
    if (model.num_parameters != (size_t)d.header[6]) { dump_free(&d); gpt2_free(&model); return; }

    gpt2_forward(&model, d.inputs, d.targets, B, T);
    float* logits = (float*)malloc_check((size_t)B * T * V * sizeof(float));
    for (size_t bt = 0; bt < (size_t)B * T; bt++) { memcpy(logits + bt * V, model.acts.logits + bt * Vp, V * sizeof(float)); }
    double err = relative_error(logits, d.logits, (size_t)B * T * V);
    check(err < 1e-4, "%s: logits relative error %.2e", name, err);
    free(logits);
    double loss_err = fabs(model.mean_loss - d.loss) / fabs(d.loss);
    check(loss_err < 1e-5, "%s: loss %.6f vs reference %.6f", name, model.mean_loss, d.loss);

    gpt2_zero_grad(&model);
    gpt2_backward(&model, 1.0f);
    size_t offset = 0;
    double worst = 0.0;
    const char* worst_name = "";
    int all_ok = 1;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        size_t n = model.param_sizes[k];
        if (n == 0) { continue; }
        double e = relative_error(model.grads_memory + offset, d.grads + offset, n);
        if (e > worst) { worst = e; worst_name = parameter_names[k]; }
        if (!(e < 1e-4)) { all_ok = 0; printf("  %s: gradient of %s relative error %.2e\n", name, parameter_names[k], e); }
        offset += n;
    }
    check(all_ok, "%s: every gradient within 1e-4 (worst %s %.2e)", name, worst_name, worst);

    // ten AdamW steps on the same batch, as the reference trained; the change of every tensor is
    // compared, which tells decayed from undecayed tensors (the losses barely do)
    float* initial = (float*)malloc_check(model.num_parameters * sizeof(float));
    memcpy(initial, model.params_memory, model.num_parameters * sizeof(float));
    AdamWConfig opt = {d.hyper[0], d.hyper[1], d.hyper[2], d.hyper[3], d.hyper[4], d.hyper[5]};
    double worst_step = 0.0;
    for (int step = 0; step < steps; step++) {
        gpt2_forward(&model, d.inputs, d.targets, B, T);
        double e = fabs(model.mean_loss - d.losses[step]) / fabs(d.losses[step]);
        if (!(e <= worst_step)) { worst_step = e; }
        gpt2_zero_grad(&model);
        gpt2_backward(&model, 1.0f);
        gpt2_update(&model, &opt, opt.learning_rate, step + 1, gpt2_grad_norm(&model));
    }
    check(worst_step < 1e-4, "%s: %d AdamW steps, losses within %.2e of the reference (last %.6f)",
          name, steps, worst_step, d.losses[steps - 1]);
    offset = 0;
    worst = 0.0;
    all_ok = 1;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        size_t n = model.param_sizes[k];
        float* ours = (float*)malloc_check(n * sizeof(float));
        float* theirs = (float*)malloc_check(n * sizeof(float));
        size_t m = 0;
        size_t C = (size_t)model.config.channels;
        for (size_t i = 0; i < n; i++) {
            // The key bias (qkvb's middle third) shifts every score of a query equally, so softmax
            // ignores it: its true gradient is 0, and Adam turns rounding-level gradients into full
            // steps of arbitrary sign on both sides. Its update is compared nowhere.
            if (k == 5 && i % (3 * C) >= C && i % (3 * C) < 2 * C) { continue; }
            ours[m] = model.params_memory[offset + i] - initial[offset + i];
            theirs[m] = d.final_params[offset + i] - initial[offset + i];
            m++;
        }
        double e = m ? relative_error(ours, theirs, m) : 0.0;
        if (e > worst) { worst = e; worst_name = parameter_names[k]; }
        if (!(e < 1e-4)) { all_ok = 0; printf("  %s: update of %s relative error %.2e\n", name, parameter_names[k], e); }
        free(ours);
        free(theirs);
        offset += n;
    }
    check(all_ok, "%s: every tensor's change over the steps within 1e-4 (worst %s %.2e)", name, worst_name, worst);
    free(initial);
    dump_free(&d);
    gpt2_free(&model);
}

// An llm.c checkpoint (slot 8 = 0) must load as full causal attention with learned positions.
static void test_llmc_checkpoint_defaults(const char* dir) {
    char path[4200];
    GPT2 model;
    memset(&model, 0, sizeof(model));
    snprintf(path, sizeof(path), "%s/full_learned_llmc_model.bin", dir);
    gpt2_build_from_checkpoint(&model, path);
    const ModelPattern* mp = &model.config.pattern;
    int ok = !model.config.rope && mp->causal == 1 && mp->num_patterns == 1 && mp->patterns[0].window == 0 &&
             mp->patterns[0].sinks == 0 && mp->num_globals == 0;
    check(ok, "an llm.c checkpoint (zero slots) loads as full causal attention with learned positions");
    gpt2_free(&model);
}

// ----------------------------------------------------------------------------
// checkpoint round trip

static void test_checkpoint_round_trip(const char* dir) {
    char path[4200], out[4200];
    GPT2 a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    snprintf(path, sizeof(path), "%s/layer_mix_model.bin", dir);
    gpt2_build_from_checkpoint(&a, path);
    a.config.pattern.num_globals = 2;  // exercise every slot group
    a.config.pattern.globals[0] = 5;
    a.config.pattern.globals[1] = 9;
    snprintf(out, sizeof(out), "/tmp/test_gpt_cpu_roundtrip_%d.bin", (int)getpid());
    gpt2_save_checkpoint(&a, out);
    gpt2_build_from_checkpoint(&b, out);
    int ok = a.num_parameters == b.num_parameters &&
             memcmp(a.params_memory, b.params_memory, a.num_parameters * sizeof(float)) == 0 &&
             memcmp(&a.config, &b.config, sizeof(GPT2Config)) == 0;
    check(ok, "checkpoint round trip keeps every parameter bit and the whole pattern (%zu parameters)", a.num_parameters);
    struct stat st;
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    check(stat(tmp, &st) != 0, "no temporary file is left after a checkpoint write");
    remove(out);
    gpt2_free(&a);
    gpt2_free(&b);
}


// ----------------------------------------------------------------------------
// the optimizer and schedule, on their own

// With zero gradients AdamW only decays: decayed tensors become p * (1 - lr*wd), the rest stay.
static void test_weight_decay_mask(const char* dir) {
    char path[4200];
    GPT2 model;
    memset(&model, 0, sizeof(model));
    snprintf(path, sizeof(path), "%s/full_model.bin", dir);
    gpt2_build_from_checkpoint(&model, path);
    float* before = (float*)malloc_check(model.num_parameters * sizeof(float));
    memcpy(before, model.params_memory, model.num_parameters * sizeof(float));
    model.grads_memory = (float*)calloc_check(model.num_parameters, sizeof(float));
    point_parameters(&model.grads, model.param_sizes, model.grads_memory);
    AdamWConfig opt = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.5f, 1.0f};
    gpt2_update(&model, &opt, opt.learning_rate, 1, gpt2_grad_norm(&model));
    // GPT-2 practice (llm.c, nanoGPT): decay the matrices and embeddings, not biases or LayerNorm
    const char* decayed[] = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"};
    size_t offset = 0;
    int ok = 1;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        int should = 0;
        for (int d = 0; d < 6; d++) { should |= strcmp(parameter_names[k], decayed[d]) == 0; }
        float factor = should ? 1.0f - opt.learning_rate * opt.weight_decay : 1.0f;
        for (size_t i = 0; i < model.param_sizes[k]; i++) {
            if (model.params_memory[offset + i] != before[offset + i] * factor) { ok = 0; }
        }
        offset += model.param_sizes[k];
    }
    check(ok, "AdamW decays exactly wte, wpe, qkvw, attprojw, fcw, fcprojw (zero gradients, one step)");
    free(before);
    gpt2_free(&model);
}

static void test_learning_rate_schedule(void) {
    // warmup 10 to a peak of 1.0, cosine to 0.1 at step 110
    int ok = fabsf(learning_rate_at(0, 110, 10, 1.0f, 0.1f) - 0.1f) < 1e-7f &&
             fabsf(learning_rate_at(9, 110, 10, 1.0f, 0.1f) - 1.0f) < 1e-7f &&
             fabsf(learning_rate_at(10, 110, 10, 1.0f, 0.1f) - 1.0f) < 1e-7f &&
             fabsf(learning_rate_at(60, 110, 10, 1.0f, 0.1f) - 0.55f) < 1e-6f &&
             fabsf(learning_rate_at(110, 110, 10, 1.0f, 0.1f) - 0.1f) < 1e-6f;
    check(ok, "learning rate: linear warmup to the peak, cosine halfway at the midpoint, final fraction at the end");
}

// ----------------------------------------------------------------------------
// shapes the dumps do not cover

// A causal model's first t outputs depend only on the first t tokens: a forward over a 47-token
// prefix (B*T not a multiple of 8: the matmul's leftover-row path) reproduces the dump's logits.
static void test_odd_prefix(const char* dir) {
    char path[4200];
    GPT2 model;
    memset(&model, 0, sizeof(model));
    snprintf(path, sizeof(path), "%s/window_sinks_model.bin", dir);
    gpt2_build_from_checkpoint(&model, path);
    Dump d;
    snprintf(path, sizeof(path), "%s/window_sinks_ref.bin", dir);
    dump_load(&d, path);
    int V = d.header[4], Vp = d.header[5], Tp = 47;
    gpt2_forward(&model, d.inputs, d.targets, 1, Tp);
    float* logits = (float*)malloc_check((size_t)Tp * V * sizeof(float));
    for (int t = 0; t < Tp; t++) { memcpy(logits + (size_t)t * V, model.acts.logits + (size_t)t * Vp, V * sizeof(float)); }
    double err = relative_error(logits, d.logits, (size_t)Tp * V);
    check(err < 1e-4, "B=1 T=47 prefix (B*T not a multiple of 8) gives the dump's logits, relative error %.2e", err);
    free(logits);
    dump_free(&d);
    gpt2_free(&model);
}

// llm.c's bf16 checkpoints (version 5) load as the float32 values of their bf16 bits
static void test_bf16_checkpoint(const char* dir) {
    char path[4200], out[4200];
    GPT2 a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    snprintf(path, sizeof(path), "%s/rope_model.bin", dir);
    gpt2_build_from_checkpoint(&a, path);
    snprintf(out, sizeof(out), "/tmp/test_gpt_cpu_bf16_%d.bin", (int)getpid());
    FILE* f = fopen_check(out, "wb");
    int h[HEADER_INTS];
    FILE* src = fopen_check(path, "rb");
    fread_check(h, sizeof(int), HEADER_INTS, src, path);
    fclose(src);
    h[1] = 5;
    fwrite_check(h, sizeof(int), HEADER_INTS, f, out);
    for (size_t i = 0; i < a.num_parameters; i++) {
        uint32_t bits;
        memcpy(&bits, &a.params_memory[i], 4);
        uint16_t top = (uint16_t)(bits >> 16);  // truncation: any rounding gives a valid bf16 file
        fwrite_check(&top, 2, 1, f, out);
        bits &= 0xffff0000u;
        memcpy(&a.params_memory[i], &bits, 4);
    }
    fclose(f);
    gpt2_build_from_checkpoint(&b, out);
    int ok = b.num_parameters == a.num_parameters && b.config.rope == 1 &&
             memcmp(a.params_memory, b.params_memory, a.num_parameters * sizeof(float)) == 0;
    check(ok, "a bf16 (version 5) checkpoint loads with the exact bf16 values");
    remove(out);
    gpt2_free(&a);
    gpt2_free(&b);
}

// A checkpoint write that dies halfway (here: the file-size limit makes a write fail) must leave
// the previous checkpoint under that name untouched.
static void test_interrupted_checkpoint_write(const char* dir) {
    char path[4200], out[4200];
    GPT2 model;
    memset(&model, 0, sizeof(model));
    snprintf(path, sizeof(path), "%s/full_model.bin", dir);
    gpt2_build_from_checkpoint(&model, path);
    snprintf(out, sizeof(out), "/tmp/test_gpt_cpu_interrupt_%d.bin", (int)getpid());
    gpt2_save_checkpoint(&model, out);
    size_t n0;
    unsigned char* original = NULL;
    {
        FILE* f = fopen_check(out, "rb");
        n0 = (size_t)file_size(out);
        original = (unsigned char*)malloc_check(n0);
        fread_check(original, 1, n0, f, out);
        fclose(f);
    }
    fflush(stdout);  // the child exits through exit(), which would print our buffered lines again
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit lim = {100000, 100000};  // far less than the 480 KB checkpoint
        setrlimit(RLIMIT_FSIZE, &lim);
        signal(SIGXFSZ, SIG_IGN);
        freopen("/dev/null", "w", stderr);
        for (size_t i = 0; i < model.num_parameters; i++) { model.params_memory[i] += 1.0f; }
        gpt2_save_checkpoint(&model, out);
        _exit(0);  // reaching here means the write did not fail: the test's premise is broken
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int failed_write = WIFEXITED(status) && WEXITSTATUS(status) == 1;
    FILE* f = fopen_check(out, "rb");
    unsigned char* now = (unsigned char*)malloc_check(n0);
    int same = (size_t)file_size(out) == n0 && fread(now, 1, n0, f) == n0 && memcmp(now, original, n0) == 0;
    fclose(f);
    check(failed_write && same, "a checkpoint write that fails halfway exits 1 and leaves the previous file byte for byte");
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    remove(tmp);
    remove(out);
    free(original);
    free(now);
    gpt2_free(&model);
}


// ----------------------------------------------------------------------------
// generation with the rolling KV cache equals the full forward over the same tokens, also past
// the model's maxT when positions are rotary (the cache then holds only S + W entries per layer)

static void test_kv_cache(const char* dir, const char* name, int N) {
    char path[4200];
    GPT2 full, cached;
    memset(&full, 0, sizeof(full));
    memset(&cached, 0, sizeof(cached));
    snprintf(path, sizeof(path), "%s/%s_model.bin", dir, name);
    gpt2_build_from_checkpoint(&full, path);
    gpt2_build_from_checkpoint(&cached, path);
    Dump d;
    snprintf(path, sizeof(path), "%s/%s_ref.bin", dir, name);
    dump_load(&d, path);
    int T0 = d.header[3], V = d.header[4], Vp = d.header[5];
    int* tokens = (int*)malloc_check(N * sizeof(int));
    for (int i = 0; i < N; i++) { tokens[i] = d.inputs[i % T0]; }
    gpt2_forward(&full, tokens, NULL, 1, N);  // the reference: every position at once
    KVCache kc;
    kv_cache_init(&kc, &cached.config, N);
    double diff = 0.0, ref = 0.0;
    int steps = 0;
    for (int t = 0; t < N && kv_cache_step(&cached, &kc, tokens[t]); t++, steps++) {
        for (int v = 0; v < V; v++) {
            double e = (double)kc.logits[v] - full.acts.logits[(size_t)t * Vp + v];
            diff += e * e;
            ref += (double)full.acts.logits[(size_t)t * Vp + v] * full.acts.logits[(size_t)t * Vp + v];
        }
    }
    double err = isfinite(diff) ? sqrt(diff / ref) : INFINITY;
    const AttnPattern* p = &cached.config.pattern.patterns[0];
    int expected_capacity = p->window ? p->sinks + p->window : cached.config.max_seq_len;
    check(steps == N && err < 1e-5 && kc.capacity == expected_capacity,
          "%s: %d tokens through the KV cache (%d entries per layer, maxT %d) give the full forward's logits, relative error %.2e",
          name, steps, kc.capacity, cached.config.max_seq_len, err);
    kv_cache_free(&kc);
    free(tokens);
    dump_free(&d);
    gpt2_free(&full);
    gpt2_free(&cached);
}

// ----------------------------------------------------------------------------
// token shards: text -> shard -> text, and the loader's batches

static unsigned char* read_all(const char* path, size_t* n) {
    FILE* f = fopen_check(path, "rb");
    size_t size = (size_t)file_size(path);
    unsigned char* buf = (unsigned char*)malloc_check(size);
    fread_check(buf, 1, size, f, path);
    fclose(f);
    *n = size;
    return buf;
}

static void test_shards(const char* shard_dir, const char* text_path) {
    size_t text_len;
    unsigned char* text = read_all(text_path, &text_len);
    const char* base = strrchr(shard_dir, '/') ? strrchr(shard_dir, '/') + 1 : shard_dir;
    char train_path[4200], val_path[4200];
    snprintf(train_path, sizeof(train_path), "%s/%s_train.bin", shard_dir, base);
    snprintf(val_path, sizeof(val_path), "%s/%s_val.bin", shard_dir, base);
    size_t ntrain = shard_check(train_path, 1), nval = shard_check(val_path, 1);
    size_t n1, n2;
    unsigned char* train = read_all(train_path, &n1);
    unsigned char* val = read_all(val_path, &n2);
    int ok = ntrain + nval == text_len;
    for (size_t i = 0; ok && i < ntrain; i++) {
        uint16_t tok;
        memcpy(&tok, train + 1024 + 2 * i, 2);
        ok &= tok == text[i];
    }
    for (size_t i = 0; ok && i < nval; i++) {
        uint16_t tok;
        memcpy(&tok, val + 1024 + 2 * i, 2);
        ok &= tok == text[ntrain + i];
    }
    check(ok, "text -> shards -> text round trip: %zu train + %zu val tokens equal the %zu text bytes", ntrain, nval, text_len);

    // the loader's first two batches are consecutive windows, targets shifted by one
    DataLoader d;
    dataloader_init(&d, train_path, 2, 16, 256, "-i");
    dataloader_next_batch(&d);
    int ok2 = 1;
    for (int i = 0; i < 32; i++) { ok2 &= d.inputs[i] == text[i] && d.targets[i] == text[i + 1]; }
    dataloader_next_batch(&d);
    for (int i = 0; i < 32; i++) { ok2 &= d.inputs[i] == text[32 + i] && d.targets[i] == text[33 + i]; }
    check(ok2, "data loader batches are consecutive B*T windows with targets shifted by one");
    dataloader_free(&d);
    free(text);
    free(train);
    free(val);
}

// ----------------------------------------------------------------------------

int main(int argc, char** argv) {
    if (argc != 4) { die("usage: test_gpt_cpu DUMP_DIR TINY_SHARD_DIR TINY_TEXT"); }
    const char* dump_dir = argv[1];
    test_mask_examples();
    test_pairlists_random();
    const char* cases[] = {"full", "window", "window_sinks", "dilation", "noncausal_global", "rope", "layer_mix",
                           "full_learned_llmc", "gpu_full", "gpu_window_sinks", "gpu_rope", "gpu_dilation",
                           "gpu_longformer", "gpu_heads128", "gpu_heads128_full", "gpu_heads128_general", "gpu_layer_mix"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) { test_reference_case(dump_dir, cases[i]); }
    test_llmc_checkpoint_defaults(dump_dir);
    test_checkpoint_round_trip(dump_dir);
    test_weight_decay_mask(dump_dir);
    test_learning_rate_schedule();
    test_odd_prefix(dump_dir);
    test_bf16_checkpoint(dump_dir);
    test_interrupted_checkpoint_write(dump_dir);
    test_kv_cache(dump_dir, "window_sinks", 48);   // learned positions: up to maxT
    test_kv_cache(dump_dir, "full", 64);           // a full layer keeps every position
    test_kv_cache(dump_dir, "rope", 150);          // rotary: a stream of 150 through 10 entries, maxT 64
    test_shards(argv[2], argv[3]);
    printf("test_gpt_cpu: %d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed == 0 ? 0 : 1;
}
