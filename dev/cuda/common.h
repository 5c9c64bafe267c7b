/*
Dev-only helpers shared by the attention kernel stories in dev/cuda (llm.c dev/cuda style).

What lives here:
- error checking: cudaCheck (file:line, exit) and cudaCheckLaunch() after every kernel launch
- the attention pattern (SPEC §1, causal fast path): window W, sinks S, and the tile logic that
  every tiled kernel uses to decide which tiles to visit and which tiles need a per-element mask
- CPU reference attention forward / backward (double accumulation) for that pattern
- deterministic random init rounded to bf16, bf16 host/device conversions
- NaN poisoning of output buffers, relative-error checks that fail on any NaN
- CUDA-event timing (warm-up, median of N runs, rotating input sets to defeat the L2)
- FLOP / byte accounting on allowed pairs (SPEC §1), the H200 limits (SPEC §5)
- tensor-core primitives (ldmatrix, mma.sync m16n8k16 bf16, cp.async) used by the fast versions,
  Hopper's wgmma and its TMA loads (tensor maps, mbarriers) for the sm_90a versions

Layouts used by all kernels (what the trainers use, so no permutes are needed):
  qkv  (B, T, 3, NH, D) bf16   == llm.c's (B, T, 3C) with C = NH*D
  out  (B, T, NH, D)    bf16
  lse  (B, NH, T)       fp32    natural-log log-sum-exp of the scaled scores, for the backward
  dout (B, T, NH, D)    bf16
  dqkv (B, T, 3, NH, D) bf16
*/
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda.h>             // CUtensorMap and its enums (types only: the encoder is fetched at run time)
#include <cudaTypedefs.h>     // PFN_cuTensorMapEncodeTiled, the encoder's signature

typedef __nv_bfloat16 bf16;

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

// @copy-begin attn-allowed
__host__ __device__ inline bool attn_allowed(int i, int j, int W, int S) {
    return j <= i && (W == 0 || i - j < W || j < S);
}
// @copy-end attn-allowed

// the per-element test used on edge tiles (forward v3-v5, backward v3-v7): rows past T are masked
// too (they are zero-filled padding)
__host__ __device__ inline bool attn_valid(int i, int j, int W, int S, int T) {
    return i < T && attn_allowed(i, j, W, S);
}

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
static inline double attention_fwd_flops(int B, int NH, int T, int D, int W, int S) {
    return attention_pairs_fwd_flops(allowed_pairs(T, W, S), B, NH, D);
}
static inline double attention_bwd_flops(int B, int NH, int T, int D, int W, int S) {
    return 2.5 * attention_fwd_flops(B, NH, T, D, W, S);
}
// compulsory traffic: every input read once, every output written once
static inline double attention_fwd_bytes(int B, int NH, int T, int D) {
    double tok = (double)B * T, C = (double)NH * D;
    return tok * 3 * C * 2 + tok * C * 2 + tok * NH * 4;              // qkv + out + lse
}
static inline double attention_bwd_bytes(int B, int NH, int T, int D) {
    double tok = (double)B * T, C = (double)NH * D;
    return tok * 3 * C * 2 + 2 * tok * C * 2 + tok * NH * 4 + tok * 3 * C * 2; // qkv, out, dout, lse in; dqkv out
}

// SPEC §5: the H200's limits. On an H100 the bandwidth limit is 3.0 TB/s, the table says which device ran.
static const double H200_TFLOPS = 790.0;   // dense bf16 tensor-core, TFLOP/s
static const double H200_GBPS   = 4300.0;  // HBM3e, GB/s

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

static inline uint16_t f32_to_bf16_bits(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // keep NaN a NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float round_bf16(float f) { return bf16_bits_to_f32(f32_to_bf16_bits(f)); }

// host float (already bf16-representable or not) -> device bf16
static inline void upload_bf16(bf16* d, const float* h, size_t n) {
    std::vector<uint16_t> tmp(n);
    for (size_t i = 0; i < n; i++) tmp[i] = f32_to_bf16_bits(h[i]);
    cudaCheck(cudaMemcpy(d, tmp.data(), n * sizeof(uint16_t), cudaMemcpyHostToDevice));
}

// ----------------------------------------------------------------------------
// random init: deterministic (splitmix64), values rounded to bf16 so the CPU reference sees exactly
// the inputs the GPU sees

static uint64_t rng_state = 0x853c49e6748fea9bULL;
static inline uint64_t rng_next() {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline float rng_uniform(float lo, float hi) {   // in [lo, hi)
    return lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}
// fill with uniform [-a, a) rounded to bf16; never all zeros (SPEC §5)
static inline void fill_random_bf16(float* x, size_t n, float a) {
    for (size_t i = 0; i < n; i++) x[i] = round_bf16(rng_uniform(-a, a));
}
// qkv (B, T, 3, NH, D): q and k in [-2, 2) so scaled scores have std ~1.3 (peaky enough that the
// running max of the online softmax really moves between tiles), v in [-1, 1)
static inline void fill_random_qkv(float* qkv, int B, int T, int NH, int D) {
    size_t C = (size_t)NH * D;
    for (size_t t = 0; t < (size_t)B * T; t++) {
        for (int p = 0; p < 3; p++) {
            float a = (p < 2) ? 2.0f : 1.0f;
            fill_random_bf16(qkv + (t * 3 + p) * C, C, a);
        }
    }
}

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

// one timed run (for deciding how many runs a slow kernel gets)
template<class Launch>
static inline float time_once_ms(Launch launch) {
    cudaEvent_t start, stop;
    cudaCheck(cudaEventCreate(&start));
    cudaCheck(cudaEventCreate(&stop));
    cudaCheck(cudaEventRecord(start));
    launch(0);
    cudaCheck(cudaEventRecord(stop));
    cudaCheck(cudaEventSynchronize(stop));
    float ms = 0.f;
    cudaCheck(cudaEventElapsedTime(&ms, start, stop));
    cudaCheck(cudaEventDestroy(start));
    cudaCheck(cudaEventDestroy(stop));
    return ms;
}

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

// 8 floats -> 8 bf16 in a uint4 (the CUDA-core versions' stores)
__device__ __forceinline__ uint4 pack_bf16x8(const float* f) {
    uint4 u;
    u.x = pack_bf16x2(f[0], f[1]); u.y = pack_bf16x2(f[2], f[3]);
    u.z = pack_bf16x2(f[4], f[5]); u.w = pack_bf16x2(f[6], f[7]);
    return u;
}

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
