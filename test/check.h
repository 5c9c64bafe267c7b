// The C tests' bookkeeping, shared by test_gpt_cpu.c and test_gpt_gpu.cu (each includes its trainer
// first): every check counts, and the last line says how many passed and failed.
#include <stdarg.h>  // va_list

static int checks_passed = 0, checks_failed = 0;

static void check(int ok, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    printf("%s ", ok ? "PASS" : "FAIL");
    vprintf(fmt, args);
    printf("\n");
    va_end(args);
    if (ok) { checks_passed++; } else { checks_failed++; }
}

// ||a - b|| / ||b||, NaN-proof: a non-finite value on either side gives +inf
static double relative_error(const float* a, const float* b, size_t n) {
    double diff = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) { return INFINITY; }
        double d = (double)a[i] - b[i];
        diff += d * d;
        ref += (double)b[i] * b[i];
    }
    return ref > 0.0 ? sqrt(diff / ref) : sqrt(diff);
}
