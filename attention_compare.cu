/*
attention_compare.cu: dense causal attention vs streaming attention (sliding window W + attention
sinks S, SPEC §1) on one GPU, with the same kernels for both: dev/cuda's fastest versions
(kernel_versions() names those that run; the program prints it). Dense is the W = 0 case of the
same code, so the comparison measures the pattern, not two implementations.

This file is self-contained (one nvcc command, no project headers). The blocks between
`// @copy-begin NAME` and `// @copy-end NAME` are copies of dev/cuda code: do not edit them here;
edit dev/cuda and run `python3 scripts/sync_copies.py` (`make test` checks that they agree).

Contents, in file order (the copies' originals in dev/cuda):
  error checking (the program exits, the library throws SwaError)
    attn-cuda-check attn-ceil-div attn-pattern                   common.h
  the program's helpers, left out of the library
    attn-allowed attn-flops attn-bf16-host attn-cpu-reference
    attn-check-helpers attn-timing attn-init-random              common.h
  forward
    attn-bf16-pack attn-mma                                      common.h
    attn-forward-consts attn-forward-tiles attn-forward-epilogue attention_forward.cu
    attn-load-rows                                               common.h
    attn-forward-v6-tiles attn-forward-v7                        forward v7 (attention_forward.cu)
    attn-wgmma                                                   common.h
    attn-forward-softmax                                         attention_forward.cu
    attn-tma                                                     common.h
    attn-forward-v10 attn-forward-v11                            forward v11 (attention_forward.cu)
  backward
    attn-backward-dot attn-backward-tiles attn-backward-sink-reduce attn-backward-launch-helpers
    attn-backward-v8-phases attn-backward-v9                     backward v9 (attention_backward.cu)
    attn-backward-v10 attn-backward-v13                          backward v13 (attention_backward.cu)
  the other patterns of SPEC §1 (dilation, lookahead, non-causal, global positions)
    attn-general-spec attn-general-v1 attn-general-walk          attention_general.cu
    attn-general-warp attn-general-v3 attn-general-bits          general v5 (v4's wgmma + TMA kernels with
    attn-general-v4 attn-general-v5                              64-bit row masks), v3 elsewhere (v3's
                                                                 fallback for other head sizes: v2)
    attn-general-v6                                              general v6 where dilated keys reach far
                                                                 (residue bands + the rest, merged)
    attn-general-v7                                              general v7 for non-causal global positions
                                                                 at T >= 2048 (the band + the globals' pairs)
  the versions this program runs: kernel_versions(), swa_forward_launch, swa_backward_launch
  the library (-DATTENTION_COMPARE_LIBRARY): swa_forward, swa_backward, swa_error_string
  the program: attn-general-pairs (the pair count), attn-general-cpu (attention_general.cu's
  float64 reference), device-side checks,
  buffers, the CPU-reference check, timing, main

Build (the Makefile does this):
  nvcc -O3 -std=c++17 -arch=sm_90 attention_compare.cu -o attention_compare
  nvcc -O3 -std=c++17 -arch=sm_90 -Xcompiler -fPIC -shared -DATTENTION_COMPARE_LIBRARY \
       attention_compare.cu -o build/libattention_compare.so

Run:
  ./attention_compare                       T=4096, W=256, S=4, B=32768/T, 12 heads of 64
  ./attention_compare -T 16384 -W 1024      one shape
  ./attention_compare 2048 128 32           the seed's positional form: T [W [S]]
  ./attention_compare --sweep --csv out.csv T = 128 .. 16384 (doubling), B*T = 32768 unless -B
  python3 scripts/plot_attention_compare.py out.csv      runtime / speedup / memory plots
  ./attention_compare -W 96 --dilation 4    seeds/001's dilated band, against dense causal
  ./attention_compare --causal 0 -W 256 -R 256 --global-spread 16 --sweep
                                            the Longformer pattern (seeds/002), against dense non-causal

Flags: -T N, -W N (0 = unlimited), -S N, -B N, -H N (heads), -D 64|128, --sweep, --csv FILE,
--reps N (timed runs, median reported; default 20), --warmup N (default 3), -h.
The rest of SPEC §1's pattern: --causal 0|1, -R N (lookahead), --dilation N, --dilated-keys N,
--global LIST, --global-spread G. With any of them the pattern runs on the general path
(attention_general.cu's v5 on sm_90a, v3 elsewhere: the trainers' kernels for such layers), against
dense attention of the same causality (causal: the band kernels with W = 0; non-causal: the general
path with every pair allowed); the CPU check then also covers the general path.

What it does:
1. a CPU-reference check (double precision) of the forward (out, lse) and backward (dq, dk, dv) at
   small shapes, dense and streaming, outputs NaN-poisoned first (SPEC §4 tolerances);
2. per T: the working memory of dense and streaming fwd+bwd (cudaMemGetInfo before allocating the
   buffers and after one fwd+bwd, so the kernels' scratch counts too), and, where W >= T or W = 0
   (the patterns are then identical), the max |difference| between the dense and streaming outputs
   (out and dqkv), which must be within bf16 tolerance;
3. per T: forward and forward+backward times (CUDA events, warm-up, median of --reps runs, input
   sets rotated so that together they are >= 3x the L2, random inputs, outputs NaN-poisoned before
   and checked after), TFLOP/s on allowed pairs (SPEC §1: fwd = 4*P*D, fwd+bwd = 3.5x that);
4. the summary table, and the CSV.
Exit status: 0 when every check passed; 1 when a check failed; 2 on bad flags.

Library (-DATTENTION_COMPARE_LIBRARY: no main), layouts as in dev/cuda:
  qkv (B, T, 3, NH, D) bf16, out / dout (B, T, NH, D) bf16, lse (B, NH, T) fp32, dqkv like qkv
  int swa_forward(const void* qkv, void* out, float* lse, int B, int T, int NH, int D, int W, int S,
                  void* stream);
  int swa_backward(const void* qkv, const void* out, const void* dout, const float* lse, void* dqkv,
                   int B, int T, int NH, int D, int W, int S, void* stream);
  const char* swa_error_string(int code);
They return 0 or a cudaError_t code (cudaErrorInvalidValue for bad arguments). The kernels run on
the legacy default stream; for any other `stream` the call is ordered after the work already on it
and the work after it waits (events). Scratch (D_i, v6's sink partials) is kept between calls; one
caller thread at a time.
*/
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <math.h>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda.h>             // CUtensorMap and its enums (types only: the encoder is fetched at run time)
#include <cudaTypedefs.h>     // PFN_cuTensorMapEncodeTiled, the encoder's signature

typedef __nv_bfloat16 bf16;

#ifdef ATTENTION_COMPARE_LIBRARY
// In the library an error must not exit the caller's process: cudaCheck throws, and the extern "C"
// functions at the bottom catch it and return the code. (The copied code uses the macros only.)
struct SwaError { cudaError_t code; };
static inline void swa_throw_on(cudaError_t e) { if (e != cudaSuccess) throw SwaError{e}; }
#define cudaCheck(err) (swa_throw_on(err))
#define cudaCheckLaunch() (swa_throw_on(cudaGetLastError()))
#else
// @copy-begin attn-cuda-check
// ----------------------------------------------------------------------------
// error checking

static inline void cuda_check(cudaError_t error, const char* file, int line) {
    if (error != cudaSuccess) {
        printf("[CUDA ERROR] at file %s:%d:\n%s\n", file, line, cudaGetErrorString(error));
        exit(EXIT_FAILURE);
    }
}
#define cudaCheck(err) (cuda_check((err), __FILE__, __LINE__))
// a launch error (bad config, too much smem) only shows up in cudaGetLastError
#define cudaCheckLaunch() (cuda_check(cudaGetLastError(), __FILE__, __LINE__))
// @copy-end attn-cuda-check
#endif

// @copy-begin attn-ceil-div
template<class T>
__host__ __device__ inline T ceil_div(T a, T b) { return (a + b - 1) / b; }
// @copy-end attn-ceil-div

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

#ifndef ATTENTION_COMPARE_LIBRARY
// the program's helpers: the CPU reference and its checks, timing, random inputs

// @copy-begin attn-allowed
__host__ __device__ inline bool attn_allowed(int i, int j, int W, int S) {
    return j <= i && (W == 0 || i - j < W || j < S);
}
// @copy-end attn-allowed

// @copy-begin attn-flops
// ----------------------------------------------------------------------------
// FLOPs (SPEC §1: count only allowed pairs; fwd = 4*P*D, bwd = 2.5 x fwd)

// P = number of allowed (i, j) pairs for one (batch, head)
static inline long long allowed_pairs(int T, int W, int S) {
    long long P = 0;
    for (int i = 0; i < T; i++) {
        int band = (W == 0) ? i + 1 : std::min(i + 1, W);        // keys [max(0,i-W+1), i]
        int extra = (W == 0) ? 0 : std::max(0, std::min(S, i - W + 1)); // sinks below the band
        P += band + extra;
    }
    return P;
}
// forward FLOPs of P allowed pairs in each of B * NH heads (any pattern's P)
static inline double attention_pairs_fwd_flops(long long P, int B, int NH, int D) {
    return 4.0 * (double)P * D * B * NH;
}
// @copy-end attn-flops

// @copy-begin attn-bf16-host
// ----------------------------------------------------------------------------
// bf16 helpers (host): device bf16 -> host float, and (below) round-to-nearest-even, exactly what
// __float2bfloat16_rn does

static inline float bf16_bits_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f;
}
static inline void download_bf16(float* h, const bf16* d, size_t n) {
    std::vector<uint16_t> tmp(n);
    cudaCheck(cudaMemcpy(tmp.data(), d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) h[i] = bf16_bits_to_f32(tmp[i]);
}
// @copy-end attn-bf16-host

// @copy-begin attn-cpu-reference
// ----------------------------------------------------------------------------
// CPU reference (double accumulation), straight from the definition: every j is tested with
// attn_allowed, independent of the band/sink range arithmetic the kernels use

// qkv (B, T, 3, NH, D) -> out (B, T, NH, D), lse (B, NH, T)
static inline void attention_forward_cpu(float* out, float* lse, const float* qkv,
                                  int B, int T, int NH, int D, int W, int S) {
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)D);
    std::vector<double> s(T), acc(D);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int i = 0; i < T; i++) {
                const float* q = qkv + (size_t)(b * T + i) * C3 + h * D;
                double mx = -INFINITY;
                for (int j = 0; j < T; j++) {
                    if (!attn_allowed(i, j, W, S)) continue;
                    const float* k = qkv + (size_t)(b * T + j) * C3 + C + h * D;
                    double dot = 0.0;
                    for (int d = 0; d < D; d++) dot += (double)q[d] * (double)k[d];
                    s[j] = dot * scale;
                    mx = std::max(mx, s[j]);
                }
                double sum = 0.0;
                std::fill(acc.begin(), acc.end(), 0.0);
                for (int j = 0; j < T; j++) {
                    if (!attn_allowed(i, j, W, S)) continue;
                    const float* v = qkv + (size_t)(b * T + j) * C3 + 2 * C + h * D;
                    double p = exp(s[j] - mx);
                    sum += p;
                    for (int d = 0; d < D; d++) acc[d] += p * (double)v[d];
                }
                float* o = out + (size_t)(b * T + i) * C + h * D;
                for (int d = 0; d < D; d++) o[d] = (float)(acc[d] / sum);
                lse[(size_t)(b * NH + h) * T + i] = (float)(mx + log(sum));
            }
        }
    }
}

// (qkv, out, dout, lse) -> dqkv (B, T, 3, NH, D). Uses the given out and lse (as the GPU does), so
// both sides start from identical inputs: P = exp(s - lse), D_i = dout_i . out_i,
// dS = P (dP - D_i), dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO
static inline void attention_backward_cpu(float* dqkv, const float* qkv, const float* out, const float* dout,
                                   const float* lse, int B, int T, int NH, int D, int W, int S) {
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)D);
    std::vector<double> acc((size_t)B * T * C3, 0.0);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int i = 0; i < T; i++) {
                const float* q  = qkv  + (size_t)(b * T + i) * C3 + h * D;
                const float* o  = out  + (size_t)(b * T + i) * C + h * D;
                const float* dO = dout + (size_t)(b * T + i) * C + h * D;
                double* dq = acc.data() + (size_t)(b * T + i) * C3 + h * D;
                double Di = 0.0;
                for (int d = 0; d < D; d++) Di += (double)dO[d] * (double)o[d];
                double L = lse[(size_t)(b * NH + h) * T + i];
                for (int j = 0; j < T; j++) {
                    if (!attn_allowed(i, j, W, S)) continue;
                    const float* k = qkv + (size_t)(b * T + j) * C3 + C + h * D;
                    const float* v = qkv + (size_t)(b * T + j) * C3 + 2 * C + h * D;
                    double* dk = acc.data() + (size_t)(b * T + j) * C3 + C + h * D;
                    double* dv = acc.data() + (size_t)(b * T + j) * C3 + 2 * C + h * D;
                    double sdot = 0.0, dp = 0.0;
                    for (int d = 0; d < D; d++) {
                        sdot += (double)q[d] * (double)k[d];
                        dp   += (double)dO[d] * (double)v[d];
                    }
                    double p = exp(sdot * scale - L);
                    double ds = p * (dp - Di);
                    for (int d = 0; d < D; d++) {
                        dv[d] += p * (double)dO[d];
                        dq[d] += ds * scale * (double)k[d];
                        dk[d] += ds * scale * (double)q[d];
                    }
                }
            }
        }
    }
    for (size_t n = 0; n < acc.size(); n++) dqkv[n] = (float)acc[n];
}
// @copy-end attn-cpu-reference

// @copy-begin attn-check-helpers
// ----------------------------------------------------------------------------
// poisoning and checking

// all-ones bytes are a NaN in both bf16 (0xFFFF) and fp32 (0xFFFFFFFF): any element a kernel fails
// to write fails the check
static inline void poison(void* d, size_t bytes) { cudaCheck(cudaMemset(d, 0xFF, bytes)); }

struct CheckResult { double rel; size_t nan_count; double max_abs; size_t worst; bool pass; };

// ||got - ref|| / ||ref|| over the elements where sel(index) is true; NaN/Inf never passes
template<class Sel>
static inline CheckResult rel_error(const float* got, const float* ref, size_t n, double tol, Sel sel) {
    double num = 0.0, den = 0.0, max_abs = 0.0;
    size_t nan_count = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sel(i)) continue;
        double g = got[i], r = ref[i];
        if (!std::isfinite(g)) { if (nan_count == 0) worst = i; nan_count++; continue; }
        double e = g - r;
        num += e * e; den += r * r;
        if (fabs(e) > max_abs && nan_count == 0) { max_abs = fabs(e); worst = i; }
    }
    CheckResult c;
    c.rel = den > 0 ? sqrt(num / den) : sqrt(num);
    c.nan_count = nan_count; c.max_abs = max_abs; c.worst = worst;
    c.pass = (nan_count == 0) && std::isfinite(c.rel) && c.rel < tol;
    return c;
}
static inline CheckResult rel_error(const float* got, const float* ref, size_t n, double tol) {
    return rel_error(got, ref, n, tol, [](size_t) { return true; });
}

// tolerances (SPEC §4)
static const double TOL_BF16 = 1e-2;
static const double TOL_FP32 = 1e-4;
// @copy-end attn-check-helpers

// @copy-begin attn-timing
// ----------------------------------------------------------------------------
// timing: CUDA events, warm-up, median of `reps` runs; launch(set) must launch on input set `set`,
// and the caller allocates enough sets that they do not fit the L2 together

template<class Launch>
static inline float time_median_ms(Launch launch, int n_sets, int warmup, int reps) {
    cudaEvent_t start, stop;
    cudaCheck(cudaEventCreate(&start));
    cudaCheck(cudaEventCreate(&stop));
    for (int w = 0; w < warmup; w++) launch(w % n_sets);
    cudaCheck(cudaDeviceSynchronize());
    std::vector<float> t(reps);
    for (int r = 0; r < reps; r++) {
        cudaCheck(cudaEventRecord(start));
        launch((warmup + r) % n_sets);
        cudaCheck(cudaEventRecord(stop));
        cudaCheck(cudaEventSynchronize(stop));
        cudaCheck(cudaEventElapsedTime(&t[r], start, stop));
    }
    cudaCheck(cudaEventDestroy(start));
    cudaCheck(cudaEventDestroy(stop));
    std::sort(t.begin(), t.end());
    return t[reps / 2];
}

// how many input sets so that all sets together are >= 3x the L2 (at least 2)
static inline int sets_to_defeat_l2(size_t bytes_per_set) {
    int dev = 0; cudaCheck(cudaGetDevice(&dev));
    int l2 = 0; cudaCheck(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    size_t need = 3 * (size_t)l2;
    int n = (int)ceil_div(need, bytes_per_set);
    return n < 2 ? 2 : n;
}

static inline void print_device() {
    int dev = 0; cudaCheck(cudaGetDevice(&dev));
    cudaDeviceProp p; cudaCheck(cudaGetDeviceProperties(&p, dev));
    printf("device: %s, %d SMs, L2 %.0f MB, sm_%d%d\n", p.name, p.multiProcessorCount,
           p.l2CacheSize / 1e6, p.major, p.minor);
}
// @copy-end attn-timing

// @copy-begin attn-init-random
// ----------------------------------------------------------------------------
// device-side random fill for the large timing inputs (host generation of 150 MB would be slow)

__global__ void init_random_bf16_kernel(bf16* x, size_t n, uint64_t seed, float a) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    float u = (float)(z >> 40) * (1.0f / 16777216.0f);   // [0, 1)
    x[i] = __float2bfloat16(a * (2.f * u - 1.f));
}
// @copy-end attn-init-random
#endif

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

// ----------------------------------------------------------------------------
// forward (dev/cuda/attention_forward.cu)

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


// ----------------------------------------------------------------------------
// backward (dev/cuda/attention_backward.cu)

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

// ----------------------------------------------------------------------------
// the versions this program runs (the copied launchers; update these calls when the copies move)

// The fastest versions on an H200 (dev/cuda/notes.md): on wgmma and TMA where this binary holds
// them for the GPU (its sm_90a code: H100 / H200), else on mma.sync (its compute_90 PTX, for other
// GPUs). kernel_versions() names them: the one place that does.
static const char* kernel_versions(void) {
    return wgmma_available() ? "forward v11 (wgmma, TMA, 16-key sink tile), "
                               "backward v13 (wgmma, TMA; heads of 64: v12's 16-key sink chunks); "
                               "other patterns: general v5 (wgmma, TMA, 64-bit row masks), v6 (far dilated keys), "
                               "v7 (non-causal global positions, T >= 2048); dev/cuda/notes.md"
                             : "forward v7, backward v9 (mma.sync, fixed-slot cp.async); "
                               "other patterns: general v3 (mma.sync); dev/cuda/notes.md";
}

static void swa_forward_launch(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, int W, int S) {
    bool wgmma = wgmma_available();
    if (D == 64) { if (wgmma) attention_forward11<64>(out, lse, qkv, B, T, NH, W, S); else attention_forward7<64>(out, lse, qkv, B, T, NH, W, S); }
    else         { if (wgmma) attention_forward11<128>(out, lse, qkv, B, T, NH, W, S); else attention_forward7<128>(out, lse, qkv, B, T, NH, W, S); }
}
static void swa_backward_launch(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                                const float* lse, int B, int T, int NH, int D, int W, int S) {
    bool wgmma = wgmma_available();
    if (D == 64) { if (wgmma) attention_backward13<64>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); else attention_backward9<64>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); }
    else         { if (wgmma) attention_backward13<128>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); else attention_backward9<128>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); }
}

// shapes the kernels take: D in {64, 128}; int index arithmetic (B*T*NH*D/8 threads in launch_dot,
// token indices b*T + t) and grid limits (B*NH blocks in x and T/64 in y; the TMA kernels: T/64 in
// x, NH in y, B in z)
static const char* shape_problem(long long B, long long T, long long NH, long long D, long long W, long long S) {
    if (D != 64 && D != 128) return "D (head size) must be 64 or 128";
    if (B < 1 || T < 1 || NH < 1) return "B, T and NH must be >= 1";
    if (W < 0 || S < 0) return "W and S must be >= 0";
    if (B * T * NH * D >= (1LL << 31)) return "B*T*NH*D must be < 2^31";
    if ((T + 63) / 64 > 65535) return "T must be <= 4194240";
    if (B > 65535) return "B must be <= 65535 (the TMA kernels' grid has the batch in z)";
    return nullptr;
}

#ifdef ATTENTION_COMPARE_LIBRARY
// ----------------------------------------------------------------------------
// the library: extern "C" entry points for ctypes (scripts/attention_vs_torch.py)

static float* lib_Dbuf = nullptr;   // D_i scratch of the backward, grown on demand
static size_t lib_Dbuf_bytes = 0;

// run f() on the legacy default stream (where the copied launchers launch), ordered after the work
// already queued on `stream` and before the work queued on it later
template<class F>
static int swa_call(void* stream, F f) {
    try {
        cudaStream_t s = (cudaStream_t)stream;
        const bool bridge = !(s == nullptr || s == cudaStreamLegacy);
        static cudaEvent_t ev_in = nullptr, ev_out = nullptr;
        if (bridge) {
            if (!ev_in) cudaCheck(cudaEventCreateWithFlags(&ev_in, cudaEventDisableTiming));
            if (!ev_out) cudaCheck(cudaEventCreateWithFlags(&ev_out, cudaEventDisableTiming));
            cudaCheck(cudaEventRecord(ev_in, s));
            cudaCheck(cudaStreamWaitEvent(cudaStreamLegacy, ev_in, 0));
        }
        f();
        if (bridge) {
            cudaCheck(cudaEventRecord(ev_out, cudaStreamLegacy));
            cudaCheck(cudaStreamWaitEvent(s, ev_out, 0));
        }
        return 0;
    } catch (const SwaError& e) {
        return (int)e.code;
    }
}

// which kernel versions this library runs on the current GPU (NULL on a CUDA error)
extern "C" const char* swa_kernel_versions(void) {
    const char* v = nullptr;
    swa_call(nullptr, [&]() { v = kernel_versions(); });
    return v;
}

extern "C" int swa_forward(const void* qkv, void* out, float* lse, int B, int T, int NH, int D, int W, int S,
                           void* stream) {
    if (!qkv || !out || !lse || shape_problem(B, T, NH, D, W, S)) return (int)cudaErrorInvalidValue;
    return swa_call(stream, [&]() {
        swa_forward_launch((bf16*)out, lse, (const bf16*)qkv, B, T, NH, D, W, S);
    });
}

extern "C" int swa_backward(const void* qkv, const void* out, const void* dout, const float* lse, void* dqkv,
                            int B, int T, int NH, int D, int W, int S, void* stream) {
    if (!qkv || !out || !dout || !lse || !dqkv || shape_problem(B, T, NH, D, W, S)) return (int)cudaErrorInvalidValue;
    return swa_call(stream, [&]() {
        const size_t need = (size_t)B * NH * T * sizeof(float);
        if (need > lib_Dbuf_bytes) {
            if (lib_Dbuf) { cudaCheck(cudaFree(lib_Dbuf)); lib_Dbuf = nullptr; lib_Dbuf_bytes = 0; }
            cudaCheck(cudaMalloc(&lib_Dbuf, need));
            lib_Dbuf_bytes = need;
        }
        swa_backward_launch((bf16*)dqkv, lib_Dbuf, (const bf16*)qkv, (const bf16*)out, (const bf16*)dout, lse,
                            B, T, NH, D, W, S);
    });
}

extern "C" const char* swa_error_string(int code) { return cudaGetErrorString((cudaError_t)code); }

#else
// ----------------------------------------------------------------------------
// the program

// @copy-begin attn-general-pairs
// ----------------------------------------------------------------------------
// allowed (i, j) pairs of one (batch, head): the walk, with each row's band (and lookahead) counted
// in one step, since every key in it is allowed (key by key took seconds per T on wide non-causal
// patterns); test/test_attention_walk.cu checks it against spec_allowed
static long long spec_pair_count(const AttnSpec& p, int T) {
    long long n = 0;
    for (int i = 0; i < T; i++) {
        if (!p.causal && (i < p.sinks || spec_is_global(p, i))) { n += T; continue; }   // sees every key
        const int lo = p.window == 0 ? 0 : std::max(0, i - p.window + 1);
        const int hi = p.causal ? i : (int)std::min<long long>(T - 1, (long long)i + p.lookahead);
        for (int j = spec_next_key(p, i, -1, T); j < T;) {
            if (j >= lo && j <= hi) { n += hi - j + 1; j = spec_next_key(p, i, hi, T); }
            else { n++; j = spec_next_key(p, i, j, T); }
        }
    }
    return n;
}
// @copy-end attn-general-pairs

// @copy-begin attn-general-cpu
// ----------------------------------------------------------------------------
// CPU reference in float64 for any pattern: forward, then the backward from its probabilities

static void general_cpu(float* out, float* lse, float* dqkv, const float* qkv, const float* dout,
                        int B, int T, int NH, int D, const AttnSpec& p) {
    size_t C = (size_t)NH * D, row3 = 3 * C;
    double scale = 1.0 / sqrt((double)D);
    std::vector<double> s(T), pr(T), dp(T);
    for (size_t x = 0; x < (size_t)B * T * row3; x++) dqkv[x] = 0.0f;
    std::vector<double> dq(D), dacc((size_t)B * T * row3, 0.0);
    for (int b = 0; b < B; b++) for (int h = 0; h < NH; h++) for (int i = 0; i < T; i++) {
        const float* q = qkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
        double m = -INFINITY;
        for (int j = 0; j < T; j++) {
            if (!spec_allowed(p, i, j)) { s[j] = -INFINITY; continue; }
            const float* k = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
            double dot = 0.0;
            for (int d = 0; d < D; d++) dot += (double)q[d] * k[d];
            s[j] = dot * scale;
            m = std::max(m, s[j]);
        }
        double l = 0.0;
        for (int j = 0; j < T; j++) { pr[j] = s[j] == -INFINITY ? 0.0 : exp(s[j] - m); l += pr[j]; }
        lse[((size_t)b * NH + h) * T + i] = (float)(m + log(l));
        float* o = out + ((size_t)b * T + i) * C + (size_t)h * D;
        const float* g = dout + ((size_t)b * T + i) * C + (size_t)h * D;
        double dsum = 0.0;
        for (int d = 0; d < D; d++) {
            double acc = 0.0;
            for (int j = 0; j < T; j++) if (pr[j] > 0.0) acc += pr[j] / l * qkv[((size_t)b * T + j) * row3 + 2 * C + (size_t)h * D + d];
            o[d] = (float)acc;
            dsum += acc * g[d];
        }
        for (int d = 0; d < D; d++) dq[d] = 0.0;
        for (int j = 0; j < T; j++) {
            if (pr[j] == 0.0) continue;
            double pj = pr[j] / l;
            const float* k = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
            const float* v = k + C;
            double dpj = 0.0;
            for (int d = 0; d < D; d++) dpj += (double)g[d] * v[d];
            double ds = pj * (dpj - dsum) * scale;
            for (int d = 0; d < D; d++) {
                dq[d] += ds * k[d];
                dacc[((size_t)b * T + j) * row3 + C + (size_t)h * D + d] += ds * q[d];
                dacc[((size_t)b * T + j) * row3 + 2 * C + (size_t)h * D + d] += pj * g[d];
            }
        }
        for (int d = 0; d < D; d++) dacc[((size_t)b * T + i) * row3 + (size_t)h * D + d] += dq[d];
    }
    for (size_t x = 0; x < (size_t)B * T * row3; x++) dqkv[x] = (float)dacc[x];
}
// @copy-end attn-general-cpu

static const int TOKENS = 32768;   // SPEC §5: B*T of the canonical workload

struct Args {
    int T = 4096, W = 256, S = 4, B = 0 /* 0: TOKENS / T */, H = 12, D = 64;
    // the rest of SPEC §1's pattern; any of them set runs the pattern on the general path
    int causal = 1, lookahead = 0, dilation = 1, dilated_keys = 0, num_globals = 0, global_spread = 0;
    int globals[ATTN_MAX_GLOBALS];
    int reps = 20, warmup = 3;
    bool sweep = false;
    const char* csv = nullptr;
    bool general() const { return !causal || lookahead > 0 || dilation > 1 || num_globals > 0 || global_spread > 0; }
};

static void usage() {
    printf("usage: attention_compare [-T N] [-W N] [-S N] [-B N] [-H N] [-D 64|128] [--sweep] [--csv FILE]\n"
           "                         [--causal 0|1] [-R N] [--dilation N] [--dilated-keys N] [--global LIST]\n"
           "                         [--reps N] [--warmup N] [T [W [S]]]\n"
           "  dense causal vs streaming (window W, 0 = unlimited, + S sinks) attention, forward and\n"
           "  forward+backward. Defaults: T=4096 W=256 S=4 B=32768/T H=12 D=64 reps=20 warmup=3.\n"
           "  --sweep: T = 128, 256, ..., 16384 with B*T = 32768 (or the given -B). --csv FILE: one row per T.\n"
           "  The rest of SPEC §1's pattern (it then runs on the general path, against dense attention\n"
           "  of the same causality): --causal 0 (an encoder), -R N keys ahead (lookahead, with --causal 0),\n"
           "  --dilation N with --dilated-keys K (K keys at stride N beyond the window; 0 = to the start),\n"
           "  --global LIST (ascending positions every query sees; with --causal 0 they see every key),\n"
           "  --global-spread G (G global positions T/G apart, as scripts/attention_general_vs_flex.py).\n"
           "  e.g. seeds/001: -W 96 -S 0 --dilation 4;  Longformer (seeds/002's kind):\n"
           "  --causal 0 -W 256 -S 0 -R 256 --global-spread 16. -S keeps its default of 4 sinks unless given.\n");
}

// one line, non-zero exit
static void bad_flag(const char* msg, const char* what) {
    fprintf(stderr, "error: %s%s%s (see attention_compare --help)\n", msg, what ? ": " : "", what ? what : "");
    exit(2);
}

static int parse_int(const char* flag, const char* s, long lo, long hi) {
    if (!s) bad_flag("missing value after", flag);
    char* end = nullptr;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0') {
        char msg[160]; snprintf(msg, sizeof(msg), "%s needs an integer, got", flag);
        bad_flag(msg, s);
    }
    if (v < lo || v > hi) {
        char msg[160]; snprintf(msg, sizeof(msg), "%s must be in [%ld, %ld], got", flag, lo, hi);
        bad_flag(msg, s);
    }
    return (int)v;
}

// ascending positions, no repeats, at most ATTN_MAX_GLOBALS (the kernels' AttnSpec holds them)
static int parse_globals(const char* flag, const char* s, int* out) {
    if (!s) bad_flag("missing value after", flag);
    int n = 0;
    const char* item = s;
    for (;;) {
        const char* comma = strchr(item, ',');
        const size_t len = comma ? (size_t)(comma - item) : strlen(item);
        char buf[32];
        if (len == 0 || len >= sizeof(buf)) bad_flag("--global expects ascending positions separated by commas, got", s);
        if (n == ATTN_MAX_GLOBALS) {
            char msg[96]; snprintf(msg, sizeof(msg), "--global takes at most %d positions, got", ATTN_MAX_GLOBALS);
            bad_flag(msg, s);
        }
        memcpy(buf, item, len);
        buf[len] = '\0';
        out[n] = parse_int(flag, buf, 0, (1 << 22) - 1);
        if (n > 0 && out[n] <= out[n - 1]) bad_flag("--global expects ascending positions, no repeats, got", s);
        n++;
        if (!comma) break;
        item = comma + 1;
    }
    return n;
}

// SPEC §1's rules between the pattern's fields (a global position must also lie below every T run)
static const char* pattern_problem(const Args& a, int T) {
    if (a.causal && a.lookahead > 0) return "-R (lookahead) needs --causal 0";
    if (a.dilation > 1 && a.W == 0) return "--dilation needs a window (-W > 0): dilated keys lie beyond it";
    if (a.dilated_keys > 0 && a.dilation == 1) return "--dilated-keys needs --dilation > 1";
    // the kernels take the farthest dilated offset in 32-bit arithmetic, as the trainers' PATTERN_LIMIT
    if ((long long)a.W + (long long)a.dilated_keys * a.dilation > (1LL << 30))
        return "-W + --dilated-keys x --dilation must be at most 2^30 (the farthest dilated key)";
    if (a.num_globals > 0 && a.global_spread > 0) return "--global and --global-spread: give one of them";
    if (a.num_globals > 0 && a.globals[a.num_globals - 1] >= T) return "a --global position is not below T";
    if (a.global_spread > T) return "--global-spread is larger than T";
    return nullptr;
}

// the pattern at one T (--global-spread places its positions by T)
static AttnSpec pattern_spec(const Args& a, int T) {
    AttnSpec p;
    memset(&p, 0, sizeof(p));
    p.causal = a.causal; p.window = a.W; p.sinks = a.S; p.lookahead = a.lookahead;
    p.dilation = a.dilation; p.dilated_keys = a.dilated_keys;
    if (a.global_spread > 0) {
        p.num_globals = a.global_spread;
        for (int g = 0; g < p.num_globals; g++) p.globals[g] = (int)((long long)g * T / a.global_spread);
    } else {
        p.num_globals = a.num_globals;
        for (int g = 0; g < a.num_globals; g++) p.globals[g] = a.globals[g];
    }
    return p;
}

static Args parse_args(int argc, char** argv) {
    Args a;
    int npos = 0;
    bool b_given = false;
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        const char* v = (i + 1 < argc) ? argv[i + 1] : nullptr;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) { usage(); exit(0); }
        else if (!strcmp(f, "-T")) { a.T = parse_int(f, v, 1, 1 << 22); i++; }
        else if (!strcmp(f, "-W")) { a.W = parse_int(f, v, 0, 1 << 22); i++; }
        else if (!strcmp(f, "-S")) { a.S = parse_int(f, v, 0, 1 << 22); i++; }
        else if (!strcmp(f, "-B")) { a.B = parse_int(f, v, 1, 1 << 20); b_given = true; i++; }
        else if (!strcmp(f, "-H")) { a.H = parse_int(f, v, 1, 1024); i++; }
        else if (!strcmp(f, "-D")) {
            a.D = parse_int(f, v, 1, 1 << 20); i++;
            if (a.D != 64 && a.D != 128) bad_flag("-D must be 64 or 128, got", v);
        }
        else if (!strcmp(f, "--causal")) { a.causal = parse_int(f, v, 0, 1); i++; }
        else if (!strcmp(f, "-R") || !strcmp(f, "--lookahead")) { a.lookahead = parse_int(f, v, 0, 1 << 22); i++; }
        else if (!strcmp(f, "--dilation")) { a.dilation = parse_int(f, v, 1, 1 << 22); i++; }
        else if (!strcmp(f, "--dilated-keys")) { a.dilated_keys = parse_int(f, v, 0, 1 << 22); i++; }
        else if (!strcmp(f, "--global")) { a.num_globals = parse_globals(f, v, a.globals); i++; }
        else if (!strcmp(f, "--global-spread")) { a.global_spread = parse_int(f, v, 1, ATTN_MAX_GLOBALS); i++; }
        else if (!strcmp(f, "--reps")) { a.reps = parse_int(f, v, 1, 100000); i++; }
        else if (!strcmp(f, "--warmup")) { a.warmup = parse_int(f, v, 0, 100000); i++; }
        else if (!strcmp(f, "--sweep")) { a.sweep = true; }
        else if (!strcmp(f, "--csv")) { if (!v) bad_flag("missing value after", f); a.csv = v; i++; }
        else if (f[0] == '-' && f[1] != '\0') { bad_flag("unknown flag", f); }
        else {   // the seed's positional form: T [W [S]]
            if (npos == 0) a.T = parse_int("T", f, 1, 1 << 22);
            else if (npos == 1) a.W = parse_int("W", f, 0, 1 << 22);
            else if (npos == 2) a.S = parse_int("S", f, 0, 1 << 22);
            else bad_flag("too many positional arguments (T [W [S]])", f);
            npos++;
        }
    }
    if (!b_given) a.B = 0;
    if (!a.sweep) {
        const int B = a.B ? a.B : std::max(1, TOKENS / a.T);
        const char* p = shape_problem(B, a.T, a.H, a.D, a.W, a.S);
        if (!p) p = pattern_problem(a, a.T);
        if (p) bad_flag(p, nullptr);
    } else {
        for (int T = 128; T <= 16384; T *= 2) {
            const char* p = shape_problem(a.B ? a.B : TOKENS / T, T, a.H, a.D, a.W, a.S);
            if (!p) p = pattern_problem(a, T);
            if (p) bad_flag(p, nullptr);
        }
    }
    return a;
}

// ----------------------------------------------------------------------------
// device-side checks of large outputs (no 100 MB copies to the host)

// counts[0] += elements of x that are NaN / Inf
__global__ void count_nonfinite_bf16_kernel(const bf16* x, size_t n, unsigned long long* count) {
    unsigned long long c = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        if (!isfinite(__bfloat162float(x[i]))) c++;
    if (c) atomicAdd(count, c);
}
__global__ void count_nonfinite_f32_kernel(const float* x, size_t n, unsigned long long* count) {
    unsigned long long c = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        if (!isfinite(x[i])) c++;
    if (c) atomicAdd(count, c);
}
// res[0] = max |a - b| and res[1] = max |a| as float bits (non-negative floats order like their
// bits), res[2] = elements where a or b is not finite
__global__ void max_abs_diff_bf16_kernel(const bf16* a, const bf16* b, size_t n, unsigned int* res) {
    float md = 0.f, ma = 0.f;
    unsigned int bad = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float x = __bfloat162float(a[i]), y = __bfloat162float(b[i]);
        if (!isfinite(x) || !isfinite(y)) { bad++; continue; }
        md = fmaxf(md, fabsf(x - y));
        ma = fmaxf(ma, fabsf(x));
    }
    atomicMax(&res[0], __float_as_uint(md));
    atomicMax(&res[1], __float_as_uint(ma));
    if (bad) atomicAdd(&res[2], bad);
}

static unsigned long long* d_counter = nullptr;   // one device word for the kernels above
static unsigned int* d_diff = nullptr;            // three

static unsigned long long count_nonfinite(const bf16* x, size_t n) {
    cudaCheck(cudaMemset(d_counter, 0, sizeof(unsigned long long)));
    count_nonfinite_bf16_kernel<<<1024, 256>>>(x, n, d_counter);
    cudaCheckLaunch();
    unsigned long long c = 0;
    cudaCheck(cudaMemcpy(&c, d_counter, sizeof(c), cudaMemcpyDeviceToHost));
    return c;
}
static unsigned long long count_nonfinite(const float* x, size_t n) {
    cudaCheck(cudaMemset(d_counter, 0, sizeof(unsigned long long)));
    count_nonfinite_f32_kernel<<<1024, 256>>>(x, n, d_counter);
    cudaCheckLaunch();
    unsigned long long c = 0;
    cudaCheck(cudaMemcpy(&c, d_counter, sizeof(c), cudaMemcpyDeviceToHost));
    return c;
}
struct Diff { double max_diff, max_ref; unsigned bad; };
static Diff max_abs_diff(const bf16* a, const bf16* b, size_t n) {
    cudaCheck(cudaMemset(d_diff, 0, 3 * sizeof(unsigned int)));
    max_abs_diff_bf16_kernel<<<1024, 256>>>(a, b, n, d_diff);
    cudaCheckLaunch();
    unsigned int h[3];
    cudaCheck(cudaMemcpy(h, d_diff, sizeof(h), cudaMemcpyDeviceToHost));
    float md, ma;
    memcpy(&md, &h[0], 4); memcpy(&ma, &h[1], 4);
    return Diff{md, ma, h[2]};
}

// ----------------------------------------------------------------------------
// buffers of one fwd+bwd problem; inputs random (never zeros), outputs NaN-poisoned

struct Bufs {
    bf16 *qkv = nullptr, *dout = nullptr, *out = nullptr, *dqkv = nullptr;
    float *lse = nullptr, *Dbuf = nullptr;
};
struct Shape {
    int B, T, NH, D;
    size_t n_qkv() const { return (size_t)B * T * 3 * NH * D; }
    size_t n_out() const { return (size_t)B * T * NH * D; }
    size_t n_lse() const { return (size_t)B * NH * T; }
    size_t bytes() const { return 2 * n_qkv() * sizeof(bf16) + 2 * n_out() * sizeof(bf16) + 2 * n_lse() * sizeof(float); }
};

// q, k uniform in [-2, 2) (scaled scores with std ~1.3, so the online softmax's max really moves),
// v the same (one fill for the whole qkv), dout in [-1, 1)
static Bufs alloc_bufs(const Shape& sh, uint64_t seed) {
    Bufs b;
    cudaCheck(cudaMalloc(&b.qkv, sh.n_qkv() * sizeof(bf16)));
    cudaCheck(cudaMalloc(&b.dqkv, sh.n_qkv() * sizeof(bf16)));
    cudaCheck(cudaMalloc(&b.out, sh.n_out() * sizeof(bf16)));
    cudaCheck(cudaMalloc(&b.dout, sh.n_out() * sizeof(bf16)));
    cudaCheck(cudaMalloc(&b.lse, sh.n_lse() * sizeof(float)));
    cudaCheck(cudaMalloc(&b.Dbuf, sh.n_lse() * sizeof(float)));
    init_random_bf16_kernel<<<(unsigned)ceil_div(sh.n_qkv(), (size_t)256), 256>>>(b.qkv, sh.n_qkv(), seed, 2.0f);
    cudaCheckLaunch();
    init_random_bf16_kernel<<<(unsigned)ceil_div(sh.n_out(), (size_t)256), 256>>>(b.dout, sh.n_out(), seed + 7777, 1.0f);
    cudaCheckLaunch();
    return b;
}
static void poison_outputs(const Bufs& b, const Shape& sh) {
    poison(b.out, sh.n_out() * sizeof(bf16));
    poison(b.lse, sh.n_lse() * sizeof(float));
    poison(b.dqkv, sh.n_qkv() * sizeof(bf16));
    poison(b.Dbuf, sh.n_lse() * sizeof(float));
}
static void free_bufs(Bufs& b) {
    cudaCheck(cudaFree(b.qkv)); cudaCheck(cudaFree(b.dqkv)); cudaCheck(cudaFree(b.out));
    cudaCheck(cudaFree(b.dout)); cudaCheck(cudaFree(b.lse)); cudaCheck(cudaFree(b.Dbuf));
    b = Bufs();
}

// One side of the comparison: a causal band + sinks on the band kernels, or any other SPEC §1
// pattern on the general path (attention_general7_*: v7 for non-causal global positions at T >= 2048,
// v6 where dilated keys reach far, else v5, on sm_90a; v3 elsewhere)
struct Pat {
    bool general;
    int W, S;        // the band (general: the spec's window and sinks, for the tables)
    AttnSpec spec;   // general only
};
static Pat band_pat(int W, int S) {
    Pat p;
    memset(&p, 0, sizeof(p));
    p.W = W; p.S = S;
    return p;
}
static Pat general_pat(const AttnSpec& spec) {
    Pat p = band_pat(spec.window, spec.sinks);
    p.general = true;
    p.spec = spec;
    return p;
}
// the pattern this run measures, at T
static Pat tested_pat(const Args& a, int T) {
    return a.general() ? general_pat(pattern_spec(a, T)) : band_pat(a.W, a.S);
}
// dense attention of the tested pattern's causality: causal on the band kernels (W = 0); non-causal
// (an encoder) on the general path, every key (no window bound, a lookahead past the end)
static Pat dense_pat(const Args& a, int T) {
    if (a.causal) return band_pat(0, 0);
    AttnSpec d;
    memset(&d, 0, sizeof(d));
    d.causal = 0; d.window = 0; d.lookahead = T; d.dilation = 1;
    return general_pat(d);
}
// P = allowed (i, j) pairs of one (batch, head); the general path's by its walk
static long long pat_pairs(const Pat& p, int T) {
    if (!p.general) return allowed_pairs(T, p.W, p.S);
    return spec_pair_count(p.spec, T);
}
static void run_fwd(const Bufs& b, const Shape& sh, const Pat& p) {
    if (p.general) attention_general7_forward(b.out, b.lse, b.qkv, sh.B, sh.T, sh.NH, sh.D, p.spec);
    else swa_forward_launch(b.out, b.lse, b.qkv, sh.B, sh.T, sh.NH, sh.D, p.W, p.S);
}
static void run_bwd(const Bufs& b, const Shape& sh, const Pat& p) {
    if (p.general) attention_general7_backward(b.dqkv, b.Dbuf, b.qkv, b.out, b.dout, b.lse, sh.B, sh.T, sh.NH, sh.D, p.spec);
    else swa_backward_launch(b.dqkv, b.Dbuf, b.qkv, b.out, b.dout, b.lse, sh.B, sh.T, sh.NH, sh.D, p.W, p.S);
}
// the pattern's fields in one line, for the tables
static void describe_pat(const Pat& p, char* buf, size_t n) {
    if (!p.general) { snprintf(buf, n, "W=%d S=%d", p.W, p.S); return; }
    const AttnSpec& q = p.spec;
    int k = snprintf(buf, n, "%s W=%d S=%d", q.causal ? "causal" : "non-causal", q.window, q.sinks);
    if (!q.causal && k < (int)n) k += snprintf(buf + k, n - k, " R=%d", q.lookahead);
    if (q.dilation > 1 && k < (int)n) k += snprintf(buf + k, n - k, " dilation %d K=%d", q.dilation, q.dilated_keys);
    if (q.num_globals > 0 && k < (int)n) snprintf(buf + k, n - k, " %d globals", q.num_globals);
}
// non-finite elements in the outputs of a fwd (+ bwd) run
static unsigned long long nonfinite_outputs(const Bufs& b, const Shape& sh, bool bwd) {
    unsigned long long c = count_nonfinite(b.out, sh.n_out()) + count_nonfinite(b.lse, sh.n_lse());
    if (bwd) c += count_nonfinite(b.dqkv, sh.n_qkv());
    return c;
}
// v6's sink-partial scratch (a static of the copied launcher) is kept between calls; freeing it makes
// the next memory probe see its allocation
static void reset_backward_scratch() {
    if (sink_partial) cudaCheck(cudaFree(sink_partial));
    sink_partial = nullptr;
    sink_partial_bytes = 0;
}

// ----------------------------------------------------------------------------
// 1. correctness against the CPU reference at small shapes

struct CheckCase { int B, T, NH; Pat pat; const char* why; };

static AttnSpec small_spec(int causal, int W, int S, int R, int d, int K, std::initializer_list<int> globals) {
    AttnSpec p;
    memset(&p, 0, sizeof(p));
    p.causal = causal; p.window = W; p.sinks = S; p.lookahead = R; p.dilation = d; p.dilated_keys = K;
    for (int g : globals) p.globals[p.num_globals++] = g;
    return p;
}

// The band kernels always (dense causal runs on them); with a general pattern also the general
// path: each part of SPEC §1 on its own at odd shapes, non-causal dense, and this run's pattern at
// T = 300 (its --global positions below 300; --global-spread placed by T = 300)
static int run_cpu_checks(const Args& a) {
    std::vector<CheckCase> cases = {
        {2, 200, 3, band_pat(0, 0), "dense causal (W = 0)"},
        {2, 200, 3, band_pat(40, 4), "window 40 + 4 sinks"},
        {1, 2500, 1, band_pat(40, 4), "T > 1024: sink tile split (v6)"},
    };
    if (!a.general()) {
        cases.push_back({2, 200, 2, band_pat(std::min(a.W, 1 << 16), std::min(a.S, 1 << 16)), "this run's -W, -S"});
    } else {
        cases.push_back({2, 190, 2, general_pat(small_spec(1, 16, 0, 0, 4, 0, {})), "dilation 4, to the start"});
        cases.push_back({1, 260, 3, general_pat(small_spec(1, 24, 2, 0, 3, 5, {})), "dilation 3, 5 keys, sinks"});
        cases.push_back({2, 230, 2, general_pat(small_spec(0, 20, 1, 12, 1, 0, {0, 77, 150})), "non-causal, globals"});
        cases.push_back({1, 150, 2, general_pat(small_spec(1, 30, 0, 0, 1, 0, {5, 99})), "causal, globals"});
        cases.push_back({1, 140, 2, dense_pat(a, 140), a.causal ? "dense causal (band kernels)" : "dense non-causal"});
        Args small = a;
        const int T = 300;
        small.num_globals = 0;
        for (int g = 0; g < a.num_globals; g++) if (a.globals[g] < T) small.globals[small.num_globals++] = a.globals[g];
        small.W = std::min(a.W, T); small.S = std::min(a.S, T); small.lookahead = std::min(a.lookahead, T);
        // general_pat, not tested_pat: with every --global position dropped the rest may be a plain
        // band, and the general path is what this run measures
        cases.push_back({1, T, 2, general_pat(pattern_spec(small, T)), "this run's pattern at T = 300"});
    }
    const int D = a.D;
    int fails = 0;
    printf("\n---- CPU reference check (double precision), D = %d; outputs NaN-poisoned before the run ----\n", D);
    printf("pass: bf16 out, dq, dk, dv rel err < %.0e; fp32 lse rel err < %.0e; no NaN\n", TOL_BF16, TOL_FP32);
    printf("%-2s %-5s %-3s %-34s %-30s | %-9s %-9s %-9s %-9s %-9s | %s\n",
           "B", "T", "NH", "pattern", "case", "out", "lse", "dq", "dk", "dv", "result");
    for (const CheckCase& cs : cases) {
        const Shape sh{cs.B, cs.T, cs.NH, D};
        const size_t C = (size_t)cs.NH * D;
        Bufs g = alloc_bufs(sh, 4242 + cs.T);
        poison_outputs(g, sh);
        run_fwd(g, sh, cs.pat);
        run_bwd(g, sh, cs.pat);
        cudaCheck(cudaDeviceSynchronize());
        std::vector<float> qkv(sh.n_qkv()), dout(sh.n_out()), out(sh.n_out()), lse(sh.n_lse()), dqkv(sh.n_qkv());
        download_bf16(qkv.data(), g.qkv, sh.n_qkv());
        download_bf16(dout.data(), g.dout, sh.n_out());
        download_bf16(out.data(), g.out, sh.n_out());
        download_bf16(dqkv.data(), g.dqkv, sh.n_qkv());
        cudaCheck(cudaMemcpy(lse.data(), g.lse, sh.n_lse() * sizeof(float), cudaMemcpyDeviceToHost));
        free_bufs(g);

        std::vector<float> out_ref(sh.n_out()), lse_ref(sh.n_lse()), dqkv_ref(sh.n_qkv());
        if (cs.pat.general) {
            general_cpu(out_ref.data(), lse_ref.data(), dqkv_ref.data(), qkv.data(), dout.data(), cs.B, cs.T, cs.NH, D, cs.pat.spec);
        } else {
            attention_forward_cpu(out_ref.data(), lse_ref.data(), qkv.data(), cs.B, cs.T, cs.NH, D, cs.pat.W, cs.pat.S);
            // the backward reference starts from the GPU's out and lse, as the GPU backward does
            attention_backward_cpu(dqkv_ref.data(), qkv.data(), out.data(), dout.data(), lse.data(),
                                   cs.B, cs.T, cs.NH, D, cs.pat.W, cs.pat.S);
        }
        CheckResult r[5];
        r[0] = rel_error(out.data(), out_ref.data(), sh.n_out(), TOL_BF16);
        r[1] = rel_error(lse.data(), lse_ref.data(), sh.n_lse(), TOL_FP32);
        for (int part = 0; part < 3; part++)
            r[2 + part] = rel_error(dqkv.data(), dqkv_ref.data(), sh.n_qkv(), TOL_BF16,
                                    [&](size_t n) { return (int)((n / C) % 3) == part; });
        bool ok = true;
        for (const CheckResult& c : r) ok = ok && c.pass;
        char desc[96];
        describe_pat(cs.pat, desc, sizeof(desc));
        printf("%-2d %-5d %-3d %-34s %-30s | %-9.2e %-9.2e %-9.2e %-9.2e %-9.2e | %s\n",
               cs.B, cs.T, cs.NH, desc, cs.why, r[0].rel, r[1].rel, r[2].rel, r[3].rel, r[4].rel, ok ? "ok" : "FAIL");
        if (!ok) {
            const char* names[5] = {"out", "lse", "dq", "dk", "dv"};
            for (int k = 0; k < 5; k++)
                if (!r[k].pass) printf("    %s: %zu non-finite, rel err %.3e\n", names[k], r[k].nan_count, r[k].rel);
            fails++;
        }
    }
    return fails;
}

// ----------------------------------------------------------------------------
// 2 + 3. memory, agreement, timing for one T

struct Row {
    int T, B;
    double fwd_ms[2], fb_ms[2];      // [0] dense, [1] streaming
    double fwd_tf[2], fb_tf[2];      // TFLOP/s on allowed pairs
    double mem_mb[2];                // fwd+bwd working memory, cudaMemGetInfo delta
    bool compared;                   // the pattern allows every pair dense does: the two are the same
    double diff_out, diff_dqkv, ref_out, ref_dqkv;
    bool ok;
};

static Row run_one(const Args& a, int T, int B) {
    const Shape sh{B, T, a.H, a.D};
    const Pat pats[2] = {dense_pat(a, T), tested_pat(a, T)};
    const long long pairs[2] = {pat_pairs(pats[0], T), pat_pairs(pats[1], T)};
    const char* side[2] = {"dense", a.general() ? "pattern" : "streaming"};
    Row row{};
    row.T = T; row.B = B; row.ok = true;

    // memory: free memory before allocating one problem's buffers and after one fwd+bwd. The dense
    // probe's buffers stay allocated for the comparison; they do not change the streaming delta.
    Bufs probe[2];
    for (int m = 0; m < 2; m++) {
        reset_backward_scratch();
        cudaCheck(cudaDeviceSynchronize());
        size_t free0 = 0, free1 = 0, total = 0;
        cudaCheck(cudaMemGetInfo(&free0, &total));
        probe[m] = alloc_bufs(sh, 1000);   // the same inputs for both
        poison_outputs(probe[m], sh);
        run_fwd(probe[m], sh, pats[m]);
        run_bwd(probe[m], sh, pats[m]);
        cudaCheck(cudaDeviceSynchronize());
        cudaCheck(cudaMemGetInfo(&free1, &total));
        row.mem_mb[m] = (double)(free0 - free1) / (1 << 20);
        unsigned long long bad = nonfinite_outputs(probe[m], sh, true);
        if (bad) {
            printf("FAIL: T=%d %s: %llu non-finite output elements\n", T, side[m], bad);
            row.ok = false;
        }
    }
    row.compared = pairs[0] == pairs[1];   // the pattern's pairs are a subset of dense's
    if (row.compared) {
        Diff o = max_abs_diff(probe[0].out, probe[1].out, sh.n_out());
        Diff d = max_abs_diff(probe[0].dqkv, probe[1].dqkv, sh.n_qkv());
        row.diff_out = o.max_diff; row.ref_out = o.max_ref;
        row.diff_dqkv = d.max_diff; row.ref_dqkv = d.max_ref;
        // bf16 tolerance: 1e-2 of the largest magnitude (bf16 keeps 8 significant bits: 3.9e-3)
        const bool agree = !o.bad && !d.bad && o.max_diff <= TOL_BF16 * std::max(o.max_ref, 1e-3)
                           && d.max_diff <= TOL_BF16 * std::max(d.max_ref, 1e-3);
        if (!agree) {
            printf("FAIL: T=%d: the %s allows every pair, yet dense and %s differ: max|diff| out %.3e "
                   "(max|out| %.3e), dqkv %.3e (max|dqkv| %.3e), non-finite %u + %u\n",
                   T, side[1], side[1], o.max_diff, o.max_ref, d.max_diff, d.max_ref, o.bad, d.bad);
            row.ok = false;
        }
    }
    free_bufs(probe[0]);
    free_bufs(probe[1]);

    // timing: input sets rotated so that together they are >= 3x the L2
    const int n_sets = sets_to_defeat_l2(sh.bytes());
    std::vector<Bufs> sets(n_sets);
    for (int s = 0; s < n_sets; s++) sets[s] = alloc_bufs(sh, 2000 + 10 * s);
    const int used = std::min(n_sets, a.warmup + a.reps);   // the sets the runs wrote
    for (int m = 0; m < 2; m++) {
        for (int s = 0; s < n_sets; s++) poison_outputs(sets[s], sh);
        const Pat& pat = pats[m];
        float fwd = time_median_ms([&](int s) { run_fwd(sets[s], sh, pat); }, n_sets, a.warmup, a.reps);
        float fb = time_median_ms([&](int s) { run_fwd(sets[s], sh, pat); run_bwd(sets[s], sh, pat); },
                                  n_sets, a.warmup, a.reps);
        cudaCheck(cudaDeviceSynchronize());
        for (int s = 0; s < used; s++) {
            unsigned long long bad = nonfinite_outputs(sets[s], sh, true);
            if (bad) {
                printf("FAIL: T=%d %s timing set %d: %llu non-finite output elements\n", T, side[m], s, bad);
                row.ok = false;
            }
        }
        const double flops = attention_pairs_fwd_flops(pairs[m], B, a.H, a.D);
        row.fwd_ms[m] = fwd;
        row.fb_ms[m] = fb;
        row.fwd_tf[m] = flops / (fwd * 1e-3) / 1e12;
        row.fb_tf[m] = 3.5 * flops / (fb * 1e-3) / 1e12;
    }
    for (Bufs& b : sets) free_bufs(b);
    return row;
}

static void print_table_header(const char* side) {
    printf("\n============================================================================================================================\n");
    printf("SUMMARY TABLE  (ms: median; TF/s: TFLOP/s on allowed pairs; mem: fwd+bwd working memory; diff: max|dense - %s|)\n", side);
    printf("============================================================================================================================\n");
    printf("%-6s %-4s | %-9s %-9s %-8s | %-9s %-9s %-8s | %-6s %-6s %-6s %-6s | %-8s %-8s | %-9s %-9s\n",
           "T", "B", "fwd dense", side, "speedup", "f+b dense", side, "speedup",
           "TF/s", "TF/s", "TF/s", "TF/s", "mem MB", "mem MB", "diff", "diff");
    printf("%-6s %-4s | %-9s %-9s %-8s | %-9s %-9s %-8s | %-6s %-6s %-6s %-6s | %-8s %-8s | %-9s %-9s\n",
           "", "", "ms", "ms", "", "ms", "ms", "", "fwd D", "fwd P", "f+b D", "f+b P", "dense", side, "out", "dqkv");
    printf("----------------------------------------------------------------------------------------------------------------------------\n");
}
static void print_row(const Row& r) {
    char dout_s[32] = "-", ddq_s[32] = "-";
    if (r.compared) {
        snprintf(dout_s, sizeof(dout_s), "%.2e", r.diff_out);
        snprintf(ddq_s, sizeof(ddq_s), "%.2e", r.diff_dqkv);
    }
    printf("%-6d %-4d | %-9.4f %-9.4f %-7.2fx | %-9.4f %-9.4f %-7.2fx | %-6.1f %-6.1f %-6.1f %-6.1f | %-8.1f %-8.1f | %-9s %-9s%s\n",
           r.T, r.B, r.fwd_ms[0], r.fwd_ms[1], r.fwd_ms[0] / r.fwd_ms[1], r.fb_ms[0], r.fb_ms[1], r.fb_ms[0] / r.fb_ms[1],
           r.fwd_tf[0], r.fwd_tf[1], r.fb_tf[0], r.fb_tf[1], r.mem_mb[0], r.mem_mb[1], dout_s, ddq_s,
           r.ok ? "" : "  FAIL");
    fflush(stdout);
}

int main(int argc, char** argv) {
    Args a = parse_args(argc, argv);
    setenv("CUDA_MODULE_LOADING", "EAGER", 0);   // no lazy module loads inside the memory probes
    cudaCheck(cudaSetDevice(0));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    if (prop.major < 8) { fprintf(stderr, "error: %s is sm_%d%d; the kernels need sm_80+\n", prop.name, prop.major, prop.minor); return 1; }
    print_device();
    printf("kernels: %s\n", kernel_versions());
    cudaCheck(cudaMalloc(&d_counter, sizeof(unsigned long long)));
    cudaCheck(cudaMalloc(&d_diff, 3 * sizeof(unsigned int)));

    int fails = run_cpu_checks(a);

    std::vector<int> Ts;
    if (a.sweep) for (int T = 128; T <= 16384; T *= 2) Ts.push_back(T);
    else Ts.push_back(a.T);

    FILE* csv = nullptr;
    if (a.csv) {
        csv = fopen(a.csv, "w");
        if (!csv) { fprintf(stderr, "error: cannot write %s: %s\n", a.csv, strerror(errno)); return 1; }
        fprintf(csv, "T,B,NH,D,W,S,dense_fwd_ms,stream_fwd_ms,fwd_speedup,dense_fwdbwd_ms,stream_fwdbwd_ms,"
                     "fwdbwd_speedup,dense_fwd_tflops,stream_fwd_tflops,dense_fwdbwd_tflops,stream_fwdbwd_tflops,"
                     "dense_mem_mb,stream_mem_mb,max_abs_diff_out,max_abs_diff_dqkv,ok,device,"
                     "causal,lookahead,dilation,dilated_keys,num_globals\n");
    }
    const char* side = a.general() ? "pattern" : "stream";
    char desc[96];
    describe_pat(tested_pat(a, Ts[0]), desc, sizeof(desc));
    printf("\n---- dense %s (W = 0) vs %s (%s%s): NH = %d, D = %d, bf16; %d warm-up + %d timed runs, "
           "median; fwd+bwd FLOPs = 3.5 x fwd (SPEC §1) ----\n", a.causal ? "causal" : "non-causal",
           a.general() ? "the pattern on the general path" : "streaming", desc,
           a.global_spread > 0 ? ", globals T/G apart" : "", a.H, a.D, a.warmup, a.reps);
    print_table_header(side);
    std::vector<Row> rows;
    for (int T : Ts) {
        const int B = a.B ? a.B : std::max(1, TOKENS / T);
        Row r = run_one(a, T, B);
        print_row(r);
        rows.push_back(r);
        if (!r.ok) fails++;
        if (csv) {
            char d1[32] = "", d2[32] = "";
            if (r.compared) { snprintf(d1, sizeof(d1), "%.6g", r.diff_out); snprintf(d2, sizeof(d2), "%.6g", r.diff_dqkv); }
            fprintf(csv, "%d,%d,%d,%d,%d,%d,%.6f,%.6f,%.4f,%.6f,%.6f,%.4f,%.2f,%.2f,%.2f,%.2f,%.1f,%.1f,%s,%s,%d,\"%s\","
                         "%d,%d,%d,%d,%d\n",
                    r.T, r.B, a.H, a.D, a.W, a.S, r.fwd_ms[0], r.fwd_ms[1], r.fwd_ms[0] / r.fwd_ms[1],
                    r.fb_ms[0], r.fb_ms[1], r.fb_ms[0] / r.fb_ms[1], r.fwd_tf[0], r.fwd_tf[1], r.fb_tf[0], r.fb_tf[1],
                    r.mem_mb[0], r.mem_mb[1], d1, d2, r.ok ? 1 : 0, prop.name,
                    a.causal, a.lookahead, a.dilation, a.dilated_keys, a.global_spread ? a.global_spread : a.num_globals);
            fflush(csv);
        }
    }
    printf("----------------------------------------------------------------------------------------------------------------------------\n");
    if (csv) { fclose(csv); printf("wrote %s\n", a.csv); }
    cudaCheck(cudaFree(d_counter));
    cudaCheck(cudaFree(d_diff));
    reset_backward_scratch();

    if (fails) { printf("\n%d CHECK(S) FAILED\n", fails); return 1; }
    printf("\nall checks passed\n");
    return 0;
}
#endif
